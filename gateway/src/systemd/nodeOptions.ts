/**
 * The Node.js/V8 options the gateway runs with in production: the `NODE_OPTIONS` of
 * hardware/systemd/edgemeter-gateway.service (a test keeps the two equal), and so also what the
 * footprint benchmark (`npm run bench -- uplink`) gives the gateway process it measures.
 *
 * - `--max-old-space-size=96`: a hard ceiling on the old generation, far above what the gateway
 *   holds (~20 MB live), so a leak shows as a restart, not as a Pi swapping.
 * - `--max-semi-space-size=1`: the young generation's semi-spaces at 1 MB instead of up to 16 MB
 *   (64-bit V8 grows them with the allocation rate). The gateway allocates ~2 MB/s of short-lived
 *   objects (Modbus frames, readings); young-generation collections of a 1 MB space cost well
 *   under a millisecond, and the peak RSS drops by ~20 MB (issue 4 footprint).
 * - `--v8-pool-size=1`: one V8 helper thread (background compilation, concurrent marking)
 *   instead of one per core: a heap this small gains nothing from parallel GC, and each helper
 *   thread's malloc arena stays resident (~8 MB less RSS measured).
 * - `--expose-gc`: defines `gc()`, which the running gateway calls every 10 s
 *   (periodicGc.ts: ~4 MB less peak RSS measured, about 0.15 % of a core).
 */
export const GATEWAY_NODE_OPTIONS = "--max-old-space-size=96 --max-semi-space-size=1 --v8-pool-size=1 --expose-gc";

/*
 * No glibc malloc settings in the unit's environment, measured (`npm run bench -- uplink`):
 * - `MALLOC_MMAP_THRESHOLD_=65536` (64 KiB+ allocations in their own mappings, returned to the
 *   kernel when freed) lowered the peak RSS with the status page by ~1.4 MB (83.2/83.1 MB
 *   instead of 84.5/84.6), but every batch SQLite hands the forwarder (up to 120 KB) then costs
 *   an mmap and munmap: the drain's batch reads took twice as long (drain ratio 0.70 instead of
 *   0.81 to a bare mqtt.js publisher).
 * - `MALLOC_ARENA_MAX=2`: no change (with `--v8-pool-size=1` one extra thread allocates).
 */
