import { Worker } from "node:worker_threads";
import { EdgemeterError, type ErrorCode } from "@edgemeter/shared/core";
import type { GatewayConfig } from "./schema.js";

export type ConfigWorkerReply =
  | { ok: true; config: GatewayConfig }
  | { ok: false; code: ErrorCode; message: string; context?: Record<string, unknown> };

/**
 * loadConfig (gateway.yaml and the meter profiles it names, validated) in a worker thread
 * that exits once it answered. The configuration comes back as plain data; the YAML parser,
 * zod, the schemas and the profile loader never enter the daemon's own heap, and the worker's
 * heap is handed back to the system when it exits: ~4 MB less resident for the daemon's whole
 * life (issue 4 footprint, gateway/README.md "Memory").
 *
 * @throws EdgemeterError as loadConfig does (`config.invalid` with `context.issues`).
 */
export function loadConfigIsolated(file: string): Promise<GatewayConfig> {
  return new Promise((resolve, reject) => {
    let reply: ConfigWorkerReply | undefined;
    let failure: Error | undefined;
    const worker = new Worker(new URL("./configWorker.js", import.meta.url), { workerData: { file } });
    worker.once("message", (message: ConfigWorkerReply) => {
      reply = message;
    });
    worker.once("error", (error) => {
      failure = error;
    });
    // Answered only once the thread is gone: the caller loads the daemon's modules next, and
    // the worker's heap must be released by then, not torn down alongside (a start-up peak).
    worker.once("exit", (code) => {
      if (reply?.ok === true) resolve(reply.config);
      else if (reply !== undefined) {
        reject(new EdgemeterError(reply.code, reply.message, reply.context ? { context: reply.context } : {}));
      } else {
        const why = failure === undefined ? `the loader exited (${code}) without an answer` : failure.message;
        reject(new EdgemeterError("internal.configLoad", `loading ${file} failed: ${why}`, { cause: failure }));
      }
    });
  });
}
