/**
 * Runs edgemeter's command-line programs as real child processes for end-to-end tests:
 * the built `dist/` output, exactly what `npm start` and a Pi run. Every process a test
 * starts is stopped by `stopAllProcesses()` (call it in afterAll), so a failing test never
 * leaves a gateway or a cloud behind.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root, from test/support/*.ts or test/dist/support/*.js alike. */
export const REPO_ROOT = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (path.basename(dir) !== "test") dir = path.dirname(dir);
  return path.dirname(dir);
})();

export const BIN = {
  gateway: path.join(REPO_ROOT, "gateway/dist/cli.js"),
  cloud: path.join(REPO_ROOT, "cloud/dist/cli.js"),
  simulator: path.join(REPO_ROOT, "hardware/dist/simulator/cli.js"),
  provision: path.join(REPO_ROOT, "provisioning/dist/cli.js"),
  start: path.join(REPO_ROOT, "scripts/dist/start.js"),
} as const;

export interface RunningProcess {
  readonly name: string;
  readonly child: ChildProcess;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** Resolves with the first line (already written or still to come) matching `pattern`. */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** Resolves when the process has exited. */
  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends `signal` (SIGTERM by default) and waits for the exit; SIGKILL after timeoutMs. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running = new Set<RunningProcess>();

export function startNode(
  name: string,
  script: string,
  args: readonly string[],
  options: { env?: Record<string, string>; cwd?: string } = {},
): RunningProcess {
  const child = spawn(process.execPath, [script, ...args], {
    cwd: options.cwd ?? REPO_ROOT,
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let text = "";
  const waiters: { pattern: RegExp; resolve: (m: RegExpExecArray) => void }[] = [];
  const onData = (chunk: Buffer) => {
    text += chunk.toString("utf8");
    for (const waiter of [...waiters]) {
      const match = matchLine(text, waiter.pattern);
      if (match !== null) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(match);
      }
    }
  };
  child.stdout?.on("data", onData);
  child.stderr?.on("data", onData);
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => {
      running.delete(handle);
      resolve({ code, signal });
    });
  });

  const handle: RunningProcess = {
    name,
    child,
    output: () => text,
    waitForLine(pattern, timeoutMs = 30_000) {
      const already = matchLine(text, pattern);
      if (already !== null) return Promise.resolve(already);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(
            new Error(`${name}: no line matching ${pattern} within ${timeoutMs} ms. Output:\n${text.slice(-4000)}`),
          );
        }, timeoutMs);
        waiters.push({
          pattern,
          resolve: (m) => {
            clearTimeout(timer);
            resolve(m);
          },
        });
        void exit.then(({ code, signal }) => {
          clearTimeout(timer);
          reject(
            new Error(`${name} exited (${signal ?? code}) before printing ${pattern}. Output:\n${text.slice(-4000)}`),
          );
        });
      });
    },
    exited: () => exit,
    async stop(signal = "SIGTERM", timeoutMs = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return exit;
      child.kill(signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      const result = await exit;
      clearTimeout(timer);
      return result;
    },
  };
  running.add(handle);
  return handle;
}

function matchLine(text: string, pattern: RegExp): RegExpExecArray | null {
  for (const line of text.split("\n")) {
    const match = pattern.exec(line);
    if (match !== null) return match;
  }
  return null;
}

/** Runs a CLI to completion. */
export function runNode(script: string, args: readonly string[], env: Record<string, string> = {}) {
  const result = spawnSync(process.execPath, [script, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    encoding: "utf8",
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Other things tests started (a Mosquitto broker of startCloudStack) that stopAllProcesses stops too. */
const alsoStopped = new Set<() => Promise<void>>();

/** Registers `stop` to run at the next stopAllProcesses(), after the Node.js processes stopped. */
export function stopWithAllProcesses(stop: () => Promise<void>): void {
  alsoStopped.add(stop);
}

export async function stopAllProcesses(): Promise<void> {
  await Promise.all([...running].map((p) => p.stop("SIGKILL")));
  const stops = [...alsoStopped];
  alsoStopped.clear();
  await Promise.all(stops.map((stop) => stop()));
}
