import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describeError, EdgemeterError } from "@edgemeter/shared/core";
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from "fastify";
import type { Logger } from "pino";
import type { Clock } from "../time/clock.js";
import type { GatewayState } from "./gatewayState.js";
import { LoginThrottle } from "./loginThrottle.js";
import { type ParsedHash, parsePasswordHash, verifyPassword } from "./password.js";
import { SCHEMA_COMPILERS_ON_FIRST_USE } from "./schemaCompilers.js";
import { SessionStore } from "./sessions.js";
import { createStatusRegistry } from "./statusMetrics.js";

export interface StatusServerOptions {
  host: string;
  /** 0 picks a free port (tests); see url() after start(). */
  port: number;
  /** File holding the technician password's scrypt hash (`edgemeter-gateway hash-password`). */
  passwordHashFile: string;
  sessionTtlMs: number;
  state: GatewayState;
  clock: Clock;
  logger: Logger;
  /** Shortest gap between two live updates on one stream (default 1000 ms). */
  streamMinGapMs?: number;
}

export const SESSION_COOKIE = "edgemeter_status";

/**
 * Static files. They live in src/status/public and are served from there whether this module
 * runs from src (tests, via the source condition) or from dist: both sit two levels below the
 * package root, so the same relative path reaches them without a copy step in the build.
 */
const PUBLIC_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "src", "status", "public");
const require = createRequire(import.meta.url);
const ASSETS: Record<string, { file: string; type: string }> = {
  "app.js": { file: path.join(PUBLIC_DIR, "app.js"), type: "text/javascript; charset=utf-8" },
  "style.css": { file: path.join(PUBLIC_DIR, "style.css"), type: "text/css; charset=utf-8" },
  "icon.svg": { file: path.join(PUBLIC_DIR, "icon.svg"), type: "image/svg+xml" },
  // uPlot is bundled from node_modules: the cabinet often has no internet (issue 6 §1).
  "uPlot.iife.min.js": {
    file: require.resolve("uplot/dist/uPlot.iife.min.js"),
    type: "text/javascript; charset=utf-8",
  },
  "uPlot.min.css": { file: require.resolve("uplot/dist/uPlot.min.css"), type: "text/css; charset=utf-8" },
};

const PAGES = {
  overview: "Overview",
  meters: "Meters",
  meter: "Meter",
  events: "Events",
} as const;
type Page = keyof typeof PAGES;

function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] as string,
  );
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return rest.join("=");
  }
  return undefined;
}

/**
 * The technicians' status page (issue 6): login, overview, meters with live values (SSE),
 * meter charts, events, `/api/status` and `/metrics`. Read-only: no route changes the
 * gateway. Every route but the login page and the static assets needs a session cookie
 * (HttpOnly, SameSite=Strict) or, for the machine routes, HTTP Basic with the same password
 * (a Prometheus scraper has no cookie jar).
 */
export class StatusServer {
  private app: FastifyInstance | undefined;
  private hash: ParsedHash | undefined;
  /**
   * HMAC (a key of this process) of the last password scrypt accepted. A Prometheus scraper
   * sends HTTP Basic with every scrape: scrypt (N=2^15, r=8) takes 32 MiB and ~100 ms of a
   * Pi's CPU each time, so a password seen correct once is recognised by its HMAC, compared in
   * constant time. Only correct passwords are remembered: a wrong one always pays for scrypt
   * (and the throttle). Cleared when the hash is read again.
   */
  private verifiedPassword: Buffer | undefined;
  private readonly passwordMemoKey = randomBytes(32);
  private readonly sessions: SessionStore;
  private readonly throttle = new LoginThrottle();
  private readonly streams = new Set<() => void>();
  private address: { host: string; port: number } | undefined;

  constructor(private readonly options: StatusServerOptions) {
    this.sessions = new SessionStore(options.sessionTtlMs);
  }

  /** `http://host:port` once started. */
  url(): string | undefined {
    if (this.address === undefined) return undefined;
    const host = this.address.host.includes(":") ? `[${this.address.host}]` : this.address.host;
    return `http://${host}:${this.address.port}`;
  }

  /**
   * Reads the password hash and listens.
   * @throws EdgemeterError `config.invalid` when the hash file is missing or malformed;
   *   `config.statusListen` when the port cannot be bound.
   */
  async start(): Promise<void> {
    if (this.app !== undefined) return;
    const { passwordHashFile } = this.options;
    let text: string;
    try {
      text = readFileSync(passwordHashFile, "utf8");
    } catch (error) {
      throw new EdgemeterError("config.invalid", `status.passwordHashFile: cannot read ${passwordHashFile}`, {
        cause: error,
      });
    }
    this.hash = parsePasswordHash(text, passwordHashFile);
    this.verifiedPassword = undefined;
    const app = this.build();
    this.app = app;
    try {
      await app.listen({ host: this.options.host, port: this.options.port });
    } catch (error) {
      throw new EdgemeterError(
        "config.statusListen",
        `status page: cannot listen on ${this.options.host}:${this.options.port}: ${describeError(error)}`,
        { cause: error },
      );
    }
    const address = app.server.address();
    if (address !== null && typeof address === "object") this.address = { host: address.address, port: address.port };
    this.options.logger.info({ url: this.url() }, "status page listening");
  }

  async stop(): Promise<void> {
    const app = this.app;
    if (app === undefined) return;
    this.app = undefined;
    for (const end of [...this.streams]) end();
    await app.close();
  }

  private nowMs(): number {
    return this.options.clock.monotonicMs();
  }

  private hasSession(request: FastifyRequest): boolean {
    return this.sessions.touch(cookieValue(request.headers.cookie, SESSION_COOKIE), this.nowMs());
  }

  /** Checks a password against the hash under the login throttle; `reply` gets the refusal. */
  private async checkPassword(
    request: FastifyRequest,
    password: string,
  ): Promise<{ ok: true } | { ok: false; status: 401 | 429; retryAfterS?: number; message: string }> {
    const client = request.ip;
    const decision = this.throttle.check(client, this.nowMs());
    if (!decision.allowed) {
      const retryAfterS = Math.ceil(decision.retryAfterMs / 1000);
      return {
        ok: false,
        status: 429,
        retryAfterS,
        message: `Too many wrong passwords. Try again in ${retryAfterS} s.`,
      };
    }
    const ok = this.hash !== undefined && password.length <= 1024 && (await this.verify(password, this.hash));
    if (ok) {
      this.throttle.succeeded(client);
      return { ok: true };
    }
    const delayMs = this.throttle.failed(client, this.nowMs());
    this.options.logger.warn({ client, delayMs }, "status page: wrong password");
    return { ok: false, status: 401, message: "Wrong password." };
  }

  private async verify(password: string, hash: ParsedHash): Promise<boolean> {
    const digest = createHmac("sha256", this.passwordMemoKey).update(password, "utf8").digest();
    if (this.verifiedPassword !== undefined && timingSafeEqual(digest, this.verifiedPassword)) return true;
    if (!(await verifyPassword(password, hash))) return false;
    this.verifiedPassword = digest;
    return true;
  }

  /** Session cookie, or for machine routes HTTP Basic auth (any user name, the technician password). */
  private async authorizeMachine(request: FastifyRequest, reply: FastifyReply): Promise<boolean> {
    if (this.hasSession(request)) return true;
    const header = request.headers.authorization;
    if (header?.startsWith("Basic ") === true) {
      const decoded = Buffer.from(header.slice(6), "base64").toString("utf8");
      const result = await this.checkPassword(request, decoded.slice(decoded.indexOf(":") + 1));
      if (result.ok) return true;
      if (result.status === 429) reply.header("retry-after", String(result.retryAfterS));
      await reply.code(result.status).send({ error: { code: "status.unauthorized", message: result.message } });
      return false;
    }
    await reply
      .code(401)
      .header("www-authenticate", 'Basic realm="edgemeter gateway", charset="UTF-8"')
      .send({ error: { code: "status.unauthorized", message: "log in first (session cookie or HTTP Basic)" } });
    return false;
  }

  private build(): FastifyInstance {
    const { state, logger } = this.options;
    // Typed as fastify's logger interface so the instance is the plain FastifyInstance.
    const fastifyLogger: FastifyBaseLogger = logger;
    const app = Fastify({
      loggerInstance: fastifyLogger,
      // A phone polling the page would write a log line per request to the SD card.
      logController: new LogController({ disableRequestLogging: true }),
      forceCloseConnections: true,
      schemaController: { compilersFactory: SCHEMA_COMPILERS_ON_FIRST_USE },
    });
    const registry = createStatusRegistry(state);

    // HTML forms post urlencoded; fastify parses only JSON by itself.
    app.addContentTypeParser(
      "application/x-www-form-urlencoded",
      { parseAs: "string", bodyLimit: 4096 },
      (_request, body, done) => {
        done(null, Object.fromEntries(new URLSearchParams(body as string)));
      },
    );
    app.addHook("onSend", async (_request, reply, payload) => {
      // Everything is local (no CDN); uPlot sets inline styles through the CSSOM only.
      reply.header(
        "content-security-policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'",
      );
      reply.header("x-content-type-options", "nosniff");
      reply.header("referrer-policy", "no-referrer");
      reply.header("x-frame-options", "DENY");
      if (reply.getHeader("cache-control") === undefined) reply.header("cache-control", "no-store");
      return payload;
    });

    app.get<{ Params: { name: string } }>("/assets/:name", async (request, reply) => {
      // Own keys only: "constructor" or "__proto__" must be a 404, not Object.prototype's members.
      const asset = Object.hasOwn(ASSETS, request.params.name) ? ASSETS[request.params.name] : undefined;
      if (asset === undefined)
        return reply.code(404).send({ error: { code: "status.notFound", message: "no such asset" } });
      return reply.type(asset.type).header("cache-control", "public, max-age=3600").send(readFileSync(asset.file));
    });

    app.get<{ Querystring: { error?: string } }>("/login", async (_request, reply) => {
      return reply.type("text/html; charset=utf-8").send(loginPage(null));
    });

    app.post<{ Body: { password?: unknown } }>("/login", async (request, reply) => {
      const password = typeof request.body?.password === "string" ? request.body.password : "";
      const result = await this.checkPassword(request, password);
      if (!result.ok) {
        if (result.status === 429) reply.header("retry-after", String(result.retryAfterS));
        return reply.code(result.status).type("text/html; charset=utf-8").send(loginPage(result.message));
      }
      const token = this.sessions.create(this.nowMs());
      const maxAgeS = Math.floor(this.options.sessionTtlMs / 1000);
      // No `Secure`: the page is plain HTTP on the cabinet's LAN (no certificate a phone would trust).
      reply.header("set-cookie", `${SESSION_COOKIE}=${token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeS}`);
      return reply.redirect("/", 303);
    });

    app.post("/logout", async (request, reply) => {
      this.sessions.delete(cookieValue(request.headers.cookie, SESSION_COOKIE));
      reply.header("set-cookie", `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`);
      return reply.redirect("/login", 303);
    });

    const page = (name: Page) => async (request: FastifyRequest<{ Params: { id?: string } }>, reply: FastifyReply) => {
      if (!this.hasSession(request)) return reply.redirect("/login", 303);
      const meterId = request.params.id;
      if (meterId !== undefined && state.meterHistory(meterId) === undefined) {
        return reply.code(404).type("text/html; charset=utf-8").send(shellPage("meter", meterId)); // the page itself says there is no such meter
      }
      return reply.type("text/html; charset=utf-8").send(shellPage(name, meterId));
    };
    app.get("/", page("overview"));
    app.get("/meters", page("meters"));
    app.get("/meters/:id", page("meter"));
    app.get("/events", page("events"));

    app.get("/api/status", async (request, reply) => {
      if (!(await this.authorizeMachine(request, reply))) return reply;
      return reply.send(state.snapshot());
    });

    app.get<{ Params: { id: string } }>("/api/meters/:id/history", async (request, reply) => {
      if (!(await this.authorizeMachine(request, reply))) return reply;
      const history = state.meterHistory(request.params.id);
      if (history === undefined) {
        return reply.code(404).send({ error: { code: "status.notFound", message: `no meter ${request.params.id}` } });
      }
      return reply.send(history);
    });

    app.get("/metrics", async (request, reply) => {
      if (!(await this.authorizeMachine(request, reply))) return reply;
      return reply.type(registry.contentType).send(await registry.metrics());
    });

    app.get("/api/stream", async (request, reply) => {
      if (!this.hasSession(request)) {
        return reply.code(401).send({ error: { code: "status.unauthorized", message: "log in first" } });
      }
      reply.hijack();
      this.stream(request.raw, reply.raw, cookieValue(request.headers.cookie, SESSION_COOKIE) as string);
      return reply;
    });

    return app;
  }

  /**
   * Server-sent events (https://html.spec.whatwg.org/multipage/server-sent-events.html):
   * a `status` event with the whole snapshot on each change, at most one per streamMinGapMs,
   * and at least every 5 s so ages keep counting.
   */
  private stream(request: IncomingMessage, response: ServerResponse, token: string): void {
    const { state } = this.options;
    const minGapMs = this.options.streamMinGapMs ?? 1_000;
    response.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      connection: "keep-alive",
      "x-content-type-options": "nosniff",
    });
    let lastSentMs = 0;
    let pending: NodeJS.Timeout | undefined;
    const send = () => {
      pending = undefined;
      // A logged-out or expired session ends its stream (the page then goes to the login).
      if (!this.sessions.isLive(token, this.nowMs())) {
        end();
        return;
      }
      lastSentMs = Date.now();
      response.write(`event: status\ndata: ${JSON.stringify(state.snapshot())}\n\n`);
    };
    const schedule = () => {
      if (pending !== undefined) return;
      pending = setTimeout(send, Math.max(0, lastSentMs + minGapMs - Date.now()));
    };
    const heartbeat = setInterval(schedule, 5_000);
    const unsubscribe = state.onChange(schedule);
    const end = () => {
      if (!this.streams.delete(end)) return;
      clearInterval(heartbeat);
      if (pending !== undefined) clearTimeout(pending);
      unsubscribe();
      response.end();
    };
    this.streams.add(end);
    request.on("close", end);
    response.write("retry: 2000\n\n");
    send();
  }
}

function head(title: string, extraCss = ""): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light">
<title>${escapeHtml(title)} · edgemeter gateway</title>
<link rel="icon" href="/assets/icon.svg" type="image/svg+xml">
${extraCss}<link rel="stylesheet" href="/assets/style.css">`;
}

function loginPage(error: string | null): string {
  return `${head("Log in")}
</head>
<body class="login">
<main class="login-box">
<h1>edgemeter gateway</h1>
<p>Technician access. The password is on the gateway's provisioning sheet.</p>
${error === null ? "" : `<p class="alert" role="alert"><span aria-hidden="true">✖ </span>${escapeHtml(error)}</p>`}
<form method="post" action="/login">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Log in</button>
</form>
</main>
</body>
</html>
`;
}

/** The page shell; app.js renders the content from /api/status and keeps it live over SSE. */
function shellPage(page: Page, meterIdOrError?: string): string {
  const title = page === "meter" && meterIdOrError !== undefined ? `Meter ${meterIdOrError}` : PAGES[page];
  const uplot = page === "meter" ? '<link rel="stylesheet" href="/assets/uPlot.min.css">\n' : "";
  const nav = (["overview", "meters", "events"] as const)
    .map((p) => {
      const href = p === "overview" ? "/" : `/${p}`;
      const current = p === page || (p === "meters" && page === "meter") ? ' aria-current="page"' : "";
      return `<a href="${href}"${current}>${PAGES[p]}</a>`;
    })
    .join("\n");
  return `${head(title, uplot)}
${page === "meter" ? '<script src="/assets/uPlot.iife.min.js" defer></script>\n' : ""}<script src="/assets/app.js" defer></script>
</head>
<body data-page="${page}"${page === "meter" && meterIdOrError !== undefined ? ` data-meter="${escapeHtml(meterIdOrError)}"` : ""}>
<header class="top">
<div class="brand"><span class="brand-name">edgemeter</span> <span id="gateway-id" class="gateway-id"></span></div>
<nav aria-label="Sections">
${nav}
</nav>
<form method="post" action="/logout" class="logout"><button type="submit">Log out</button></form>
</header>
<div id="live" class="live">Connecting…</div>
<main id="main">
<h1>${escapeHtml(title)}</h1>
<p>Loading…</p>
</main>
</body>
</html>
`;
}
