import { readFile } from "node:fs/promises";
import type { Socket } from "node:net";
import tls, { TLSSocket } from "node:tls";
import { EdgemeterError } from "@edgemeter/shared";
import { Aedes, type AuthErrorCode, type AuthenticateError, type Client } from "aedes";
import type pino from "pino";
import { type ClientIdentity, identityFromSubject, mayConnectAs, mayPublish, maySubscribe } from "./brokerAcl.js";

export interface EmbeddedBrokerOptions {
  host: string;
  /** 0 picks a free port; the started broker reports the one it got. */
  port: number;
  /** PEM CA bundle that client certificates must chain to (the provisioning CA). */
  caFile: string;
  /** PEM server certificate (with a SAN for `host`) and its key. */
  certFile: string;
  keyFile: string;
  /** PEM CRL of the CA: revoked gateway certificates are refused at the TLS handshake. */
  crlFile?: string;
  logger: pino.Logger;
}

export interface EmbeddedBroker {
  port: number;
  /** Stops accepting, disconnects every client, resolves once the port is free. */
  close(): Promise<void>;
}

// MQTT 3.1.1 CONNACK return codes (spec §3.2.2.3); aedes declares them as an ambient const enum.
const IDENTIFIER_REJECTED = 2 as AuthErrorCode;
const NOT_AUTHORIZED = 5 as AuthErrorCode;

function authError(message: string, returnCode: AuthErrorCode): AuthenticateError {
  return Object.assign(new Error(message), { returnCode });
}

async function readPem(file: string, what: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (cause) {
    throw new EdgemeterError("config.invalid", `${file}: cannot read the broker's ${what}: ${String(cause)}`, {
      cause,
    });
  }
}

/**
 * Logs a repeated failure once at warn, then at debug (CONVENTIONS §8): a misconfigured gateway
 * reconnecting every few seconds must not fill the disk with the same line.
 */
class OnceAtWarn {
  private readonly seen = new Set<string>();
  constructor(private readonly logger: pino.Logger) {}

  log(key: string, fields: Record<string, unknown>, message: string): void {
    if (this.seen.has(key)) {
      this.logger.debug(fields, message);
      return;
    }
    if (this.seen.size >= 1_000) this.seen.clear();
    this.seen.add(key);
    this.logger.warn(fields, message);
  }
}

/**
 * The embedded MQTT broker for a single site or a demo: Aedes behind mutual TLS, with a
 * per-certificate ACL (brokerAcl.ts). Production fleets use Mosquitto or AWS IoT Core.
 *
 * Protocol: Aedes 1.2 speaks MQTT 3.1.1 only and refuses an MQTT 5 CONNECT ("unacceptable
 * protocol version"), so clients connect to it with `protocolVersion: 4`. MQTT 3.1.1 has no
 * negative PUBACK: on a publish its ACL denies, Aedes closes the connection without a PUBACK,
 * so a gateway never deletes a reading the broker refused (it resends it after reconnecting
 * and the operator sees the uplink failing). A denied subscription gets SUBACK 0x80.
 * Retained messages and last wills are Aedes built-ins, kept in memory: they do not survive
 * a restart of this process. Shared subscriptions (`$share/…`) are not supported.
 */
export async function startEmbeddedBroker(options: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
  const logger = options.logger.child({ component: "broker" });
  const [ca, cert, key, crl] = await Promise.all([
    readPem(options.caFile, "caFile"),
    readPem(options.certFile, "certFile"),
    readPem(options.keyFile, "keyFile"),
    options.crlFile === undefined ? undefined : readPem(options.crlFile, "crlFile"),
  ]);
  const refusals = new OnceAtWarn(logger);
  const identities = new WeakMap<Client, ClientIdentity>();

  const aedes = await Aedes.createBroker({
    authenticate(client, _username, _password, done) {
      // The MQTT username and password are ignored on purpose: only the certificate grants anything.
      const conn = client.conn;
      if (!(conn instanceof TLSSocket) || !conn.authorized) {
        done(authError("no verified client certificate", NOT_AUTHORIZED), false);
        return;
      }
      const identity = identityFromSubject(conn.getPeerCertificate().subject);
      if ("refused" in identity) {
        refusals.log(`cert:${identity.refused}`, { remoteAddress: conn.remoteAddress }, identity.refused);
        done(authError(identity.refused, NOT_AUTHORIZED), false);
        return;
      }
      const decision = mayConnectAs(identity, client.id);
      if (!decision.allowed) {
        refusals.log(`id:${identity.commonName}:${client.id}`, { cn: identity.commonName }, decision.reason);
        done(authError(decision.reason, IDENTIFIER_REJECTED), false);
        return;
      }
      identities.set(client, identity);
      done(null, true);
    },
    authorizePublish(client, packet, done) {
      // A null client is the broker itself; wills arrive here too, so a will outside the root is dropped.
      if (client === null) return done(null);
      const identity = identities.get(client);
      const decision =
        identity === undefined
          ? { allowed: false as const, reason: "unauthenticated" }
          : mayPublish(identity, packet.topic);
      if (decision.allowed) return done(null);
      refusals.log(`pub:${client.id}:${packet.topic}`, { clientId: client.id, topic: packet.topic }, decision.reason);
      done(new Error(decision.reason));
    },
    authorizeSubscribe(client, subscription, done) {
      const identity = identities.get(client);
      const decision =
        identity === undefined
          ? { allowed: false as const, reason: "unauthenticated" }
          : maySubscribe(identity, subscription.topic);
      if (decision.allowed) return done(null, subscription);
      refusals.log(
        `sub:${client.id}:${subscription.topic}`,
        { clientId: client.id, topic: subscription.topic },
        decision.reason,
      );
      // A null subscription answers SUBACK 0x80 for this filter instead of dropping the connection.
      done(null, null);
    },
  });

  aedes.on("clientReady", (client) => {
    logger.info({ clientId: client.id, role: identities.get(client)?.role }, "client connected");
  });
  aedes.on("clientDisconnect", (client) => {
    logger.info({ clientId: client.id }, "client disconnected");
  });
  aedes.on("clientError", (client, error) => {
    logger.debug({ clientId: client.id, err: error }, "client error");
  });
  aedes.on("connectionError", (_client, error) => {
    logger.debug({ err: error }, "connection error");
  });

  const server = tls.createServer(
    {
      ca,
      cert,
      key,
      ...(crl === undefined ? {} : { crl }),
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: "TLSv1.2",
    },
    aedes.handle,
  );
  // Tracked so close() can end half-open handshakes, which server.close() would wait for.
  const sockets = new Set<Socket>();
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  server.on("tlsClientError", (error, socket) => {
    refusals.log(
      `tls:${socket.remoteAddress ?? ""}:${error.message}`,
      { remoteAddress: socket.remoteAddress, err: error.message },
      "TLS handshake refused",
    );
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  }).catch(async (cause: unknown) => {
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    throw new EdgemeterError(
      "config.invalid",
      `broker cannot listen on ${options.host}:${options.port}: ${String(cause)}`,
      {
        cause,
      },
    );
  });
  server.on("error", (error) => logger.error({ err: error }, "broker server error"));

  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : options.port;
  logger.info({ host: options.host, port }, "embedded MQTT broker listening (mTLS, MQTT 3.1.1)");

  let closing: Promise<void> | undefined;
  return {
    port,
    close() {
      closing ??= (async () => {
        const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
        await new Promise<void>((resolve) => aedes.close(() => resolve()));
        for (const socket of sockets) socket.destroy();
        await serverClosed;
        logger.info("embedded MQTT broker closed");
      })();
      return closing;
    },
  };
}
