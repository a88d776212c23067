import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const DIST = fileURLToPath(new URL("../dist/", import.meta.url));

/**
 * The modules a running daemon loads: the composition root and the status page (what
 * `edgemeter-gateway run` imports once its configuration is loaded), in a fresh Node process,
 * every ESM and CommonJS load recorded. The configuration (YAML, zod, the profile loader) is
 * loaded in a worker thread that exits (config/loadConfigIsolated.ts), mqtt.js's transports
 * other than TCP/TLS are not wanted; any of these back in the daemon's own heap costs
 * megabytes for its whole life (issue 4 footprint, gateway/README.md "Memory").
 */
function daemonModules(): string[] {
  const script = `
    import { register, Module } from "node:module";
    const loaded = new Set();
    const compile = Module.prototype._compile;
    Module.prototype._compile = function (content, filename) { loaded.add(filename); return compile.call(this, content, filename); };
    const { port1, port2 } = new MessageChannel();
    port1.on("message", (url) => loaded.add(url));
    port1.unref();
    register("data:text/javascript," + encodeURIComponent(
      "let port; export function initialize(d) { port = d.port; } " +
      "export async function load(url, context, next) { port.postMessage(url); return next(url, context); }"),
      { data: { port: port2 }, transferList: [port2] });
    await import(${JSON.stringify(`${DIST}main.js`)});
    await import(${JSON.stringify(`${DIST}status/statusServer.js`)});
    await new Promise((resolve) => setTimeout(resolve, 200));
    process.stdout.write(JSON.stringify([...loaded]));
  `;
  const result = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
    encoding: "utf8",
    timeout: 30_000,
  });
  expect(result.stderr).toBe("");
  return JSON.parse(result.stdout) as string[];
}

describe("the daemon's own modules", () => {
  it("leave out zod, the YAML parser, the profile loader and mqtt.js's other transports", () => {
    const modules = daemonModules();
    // What it does load (so an empty list cannot pass): the MQTT client, SQLite, fastify.
    for (const wanted of ["/mqtt/build/lib/client.js", "/better-sqlite3/", "/fastify/fastify.js"]) {
      expect(
        modules.some((m) => m.includes(wanted)),
        wanted,
      ).toBe(true);
    }
    const unwanted = modules.filter((m) =>
      /\/node_modules\/(zod|yaml|ws|socks)\/|\/mqtt\/build\/lib\/connect\/|\/profiles\/(loadProfile|profileSchema)\.js|\/simulator\//.test(
        m,
      ),
    );
    expect(unwanted).toEqual([]);
  });
});
