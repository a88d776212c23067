/**
 * The worker thread that loads gateway.yaml for loadConfigIsolated: the YAML parser, zod and
 * the meter profile loader live and die with this thread's heap, not the daemon's.
 */
import { parentPort, workerData } from "node:worker_threads";
import { describeError, isEdgemeterError } from "@edgemeter/shared";
import { loadConfig } from "./loadConfig.js";
import type { ConfigWorkerReply } from "./loadConfigIsolated.js";

const { file } = workerData as { file: string };
let reply: ConfigWorkerReply;
try {
  reply = { ok: true, config: loadConfig(file) };
} catch (error) {
  reply = isEdgemeterError(error)
    ? { ok: false, code: error.code, message: error.message, context: error.context }
    : { ok: false, code: "internal.configLoad", message: describeError(error) };
}
parentPort?.postMessage(reply);
