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
 */
export const GATEWAY_NODE_OPTIONS = "--max-old-space-size=96 --max-semi-space-size=1 --v8-pool-size=1";

/**
 * glibc malloc settings of the gateway's environment: also on the systemd unit's NODE_OPTIONS
 * line (a test keeps the two equal) and given by the footprint benchmark to the process it
 * measures, so it measures what production runs.
 *
 * - `MALLOC_MMAP_THRESHOLD_=65536`: allocations of 64 KiB and more get their own mapping,
 *   returned to the kernel when freed, instead of coming from the heap. Node reads every socket
 *   chunk into a fresh 64 KiB buffer and shrinks it to the bytes read (the Modbus answers, ~100
 *   a second for 32 meters), and SQLite hands each batch over as one buffer of up to 120 KB:
 *   from the heap, these leave holes that glibc cannot give back, and the heap only grew.
 *   Measured (`npm run bench -- uplink`, status page on, 180 s, two runs each): peak RSS
 *   83.2 and 83.1 MB instead of 84.5 and 84.6 MB, for ~0.1 % of a core more system time
 *   (mmap/munmap per large buffer). glibc reads it once at start, so it cannot be set from
 *   JavaScript: it has to be in the environment (mallopt(3), M_MMAP_THRESHOLD).
 *   Not MALLOC_ARENA_MAX=2: with `--v8-pool-size=1` only one thread besides the main one
 *   allocates, so there is one extra arena anyway (measured: no change).
 */
export const GATEWAY_MALLOC_ENV: Readonly<Record<string, string>> = { MALLOC_MMAP_THRESHOLD_: "65536" };
