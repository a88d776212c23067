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
