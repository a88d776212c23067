#!/usr/bin/env node
import { chmodSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { describeError, isEdgemeterError } from "@edgemeter/shared/core";
import { loadConfigIsolated } from "./config/loadConfigIsolated.js";
import type { GatewayConfig } from "./config/schema.js";
import { FIELD_TOOLS_USAGE } from "./fieldTools/usage.js";
import { hashPassword } from "./status/password.js";

const USAGE = `usage: edgemeter-gateway <command> [--config gateway.yaml]

commands:
  run            poll the meters and forward readings to the broker until SIGINT/SIGTERM
  check-config   validate the configuration and exit
  hash-password  read the technician password from stdin (first line), print its scrypt hash
                 for status.passwordHashFile, or write it there with --out FILE (mode 0600)
${FIELD_TOOLS_USAGE}

exit codes: 0 ok, 1 runtime failure, 2 invalid configuration or usage`;

/** Exit code for an invalid configuration or command line (the BSD sysexits "usage" tradition). */
const EXIT_INVALID = 2;

async function main(argv: string[]): Promise<number> {
  // The field tools take their own options (--port, --unit…), not --config.
  if (argv[0] === "probe" || argv[0] === "scan") {
    // Loaded only for them: the daemon does not carry the profile loader and its YAML parser.
    const { runFieldTool } = await import("./fieldTools/fieldTools.js");
    return runFieldTool(argv[0], argv.slice(1), {
      out: (line) => process.stdout.write(`${line}\n`),
      err: (line) => process.stderr.write(`${line}\n`),
    });
  }
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    process.stderr.write(`${describeError(error)}\n${USAGE}\n`);
    return EXIT_INVALID;
  }
  const { command, configFile } = parsed;
  if (command === "help") {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (command === "hash-password") return hashPasswordCommand(parsed.out);
  let config: GatewayConfig;
  try {
    config = await loadConfigIsolated(configFile);
  } catch (error) {
    if (isEdgemeterError(error, "config.invalid")) {
      process.stderr.write(`invalid configuration:\n${error.message}\n`);
      return EXIT_INVALID;
    }
    throw error;
  }
  const meters = config.buses.reduce((n, bus) => n + bus.meters.length, 0);
  if (command === "check-config") {
    process.stdout.write(
      `${config.configFile}: ok (gateway ${config.gatewayId}, ${meters} meters on ${config.buses.length} buses)\n`,
    );
    return 0;
  }

  // The daemon's modules load after the configuration worker exited, so the two heaps are
  // never resident at once (issue 4 footprint: the start-up is not the peak).
  const { createGateway } = await import("./main.js");
  const gateway = createGateway(config);
  let signals = 0;
  const stopped = new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        process.stderr.write(`${signal} again: exiting without waiting\n`);
        process.exit(1);
      }
      gateway.stop().then(resolve, (error: unknown) => {
        process.stderr.write(`error while stopping: ${describeError(error)}\n`);
        resolve();
      });
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
  await gateway.start();
  process.stdout.write(`${gateway.summary()}\n`);
  const statusUrl = gateway.statusUrl();
  if (statusUrl !== undefined) process.stdout.write(`status: ${statusUrl}\n`);
  await stopped;
  return 0;
}

/** The password comes on stdin, not as an argument: arguments end up in shell history and `ps`. */
async function hashPasswordCommand(out: string | undefined): Promise<number> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const password = Buffer.concat(chunks).toString("utf8").split(/\r?\n/)[0] ?? "";
  if (password.length === 0) {
    process.stderr.write(
      "hash-password: no password on stdin (e.g. `echo -n 'secret' | edgemeter-gateway hash-password`)\n",
    );
    return EXIT_INVALID;
  }
  const hash = await hashPassword(password);
  if (out === undefined) process.stdout.write(`${hash}\n`);
  else {
    writeFileSync(out, `${hash}\n`, { mode: 0o600 });
    chmodSync(out, 0o600); // `mode` applies only when the file is created.
  }
  return 0;
}

function parse(argv: string[]): {
  command: "run" | "check-config" | "hash-password" | "help";
  configFile: string;
  out?: string;
} {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      config: { type: "string", short: "c", default: "gateway.yaml" },
      out: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help === true) return { command: "help", configFile: values.config };
  const [command, ...rest] = positionals;
  if (rest.length > 0) throw new Error(`unexpected arguments: ${rest.join(" ")}`);
  if (command === "run" || command === "check-config") return { command, configFile: values.config };
  if (command === "hash-password") {
    return { command, configFile: values.config, ...(values.out === undefined ? {} : { out: values.out }) };
  }
  if (command === undefined) throw new Error("missing command");
  throw new Error(`unknown command: ${command}`);
}

main(process.argv.slice(2)).then(
  (code) => {
    // Exit explicitly: after stop() nothing must keep a daemon alive (a stray timer or socket).
    process.exit(code);
  },
  (error: unknown) => {
    process.stderr.write(
      `edgemeter-gateway: ${isEdgemeterError(error) ? `${error.code}: ` : ""}${describeError(error)}\n`,
    );
    process.exitCode = 1;
  },
);
