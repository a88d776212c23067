import { describe, expect, it } from "vitest";
import { type ClientIdentity, identityFromSubject, mayConnectAs, mayPublish, maySubscribe } from "./brokerAcl.js";

const gw1: ClientIdentity = { role: "gateway", commonName: "gw-1" };
const ingest: ClientIdentity = { role: "service", commonName: "cloud-ingest" };

describe("identityFromSubject", () => {
  it("maps OU=gateway and OU=service certificates to identities", () => {
    expect(identityFromSubject({ CN: "gw-1", OU: "gateway" })).toEqual(gw1);
    expect(identityFromSubject({ CN: "cloud-ingest", OU: "service" })).toEqual(ingest);
  });

  it("refuses missing, repeated or unknown attributes and unsafe gateway ids", () => {
    expect(identityFromSubject(undefined)).toEqual({ refused: "certificate has no single subject CN" });
    expect(identityFromSubject({ CN: "gw-1" })).toEqual({ refused: "certificate gw-1 has no single subject OU" });
    expect(identityFromSubject({ CN: "gw-1", OU: ["gateway", "service"] })).toHaveProperty("refused");
    expect(identityFromSubject({ CN: ["gw-1", "gw-2"], OU: "gateway" })).toHaveProperty("refused");
    expect(identityFromSubject({ CN: "gw-1", OU: "admin" })).toEqual({
      refused: 'certificate gw-1 has OU "admin"; expected gateway or service',
    });
    // A CN of "+" or "a/b" would make the gateway's topic root a wildcard or another gateway's.
    expect(identityFromSubject({ CN: "+", OU: "gateway" })).toHaveProperty("refused");
    expect(identityFromSubject({ CN: "gw-1/x", OU: "gateway" })).toHaveProperty("refused");
  });
});

describe("mayConnectAs", () => {
  it("ties a gateway's clientId to its CN", () => {
    expect(mayConnectAs(gw1, "gw-1").allowed).toBe(true);
    expect(mayConnectAs(gw1, "gw-2").allowed).toBe(false);
    expect(mayConnectAs(gw1, "").allowed).toBe(false);
  });

  it("lets a service use its CN or CN-suffix ids, never a gateway's id", () => {
    expect(mayConnectAs(ingest, "cloud-ingest").allowed).toBe(true);
    expect(mayConnectAs(ingest, "cloud-ingest-2").allowed).toBe(true);
    expect(mayConnectAs(ingest, "gw-1").allowed).toBe(false);
    expect(mayConnectAs(ingest, "cloud-ingestion").allowed).toBe(false);
  });
});

describe("mayPublish", () => {
  it("allows a gateway only below its own root", () => {
    expect(mayPublish(gw1, "edgemeter/v1/gw/gw-1/telemetry")).toEqual({ allowed: true });
    expect(mayPublish(gw1, "edgemeter/v1/gw/gw-1/status")).toEqual({ allowed: true });
    for (const topic of [
      "edgemeter/v1/gw/gw-2/telemetry",
      "edgemeter/v1/gw/gw-1",
      "edgemeter/v1/gw/gw-10/telemetry",
      "edgemeter/v1/gw/gw-1x/telemetry",
      "edgemeter/v2/gw/gw-1/telemetry",
      "other/topic",
    ]) {
      expect(mayPublish(gw1, topic).allowed, topic).toBe(false);
    }
  });

  it("lets a service publish nothing", () => {
    expect(mayPublish(ingest, "edgemeter/v1/gw/gw-1/telemetry")).toEqual({
      allowed: false,
      reason: "service cloud-ingest may not publish",
    });
  });
});

describe("maySubscribe", () => {
  it("lets a gateway subscribe only below its own root", () => {
    expect(maySubscribe(gw1, "edgemeter/v1/gw/gw-1/commands").allowed).toBe(true);
    expect(maySubscribe(gw1, "edgemeter/v1/gw/gw-1/#").allowed).toBe(true);
    for (const filter of [
      "edgemeter/v1/gw/#",
      "edgemeter/v1/gw/+/telemetry",
      "edgemeter/v1/gw/gw-2/#",
      "#",
      "$SYS/#",
    ]) {
      expect(maySubscribe(gw1, filter).allowed, filter).toBe(false);
    }
  });

  it("lets a service subscribe to gateway topics and nothing else", () => {
    for (const filter of ["edgemeter/v1/gw/#", "edgemeter/v1/gw/+/telemetry", "edgemeter/v1/gw/gw-7/status"]) {
      expect(maySubscribe(ingest, filter).allowed, filter).toBe(true);
    }
    for (const filter of ["#", "edgemeter/#", "edgemeter/v1/+/gw-1/telemetry", "edgemeter/v1/gw", "$SYS/#"]) {
      expect(maySubscribe(ingest, filter).allowed, filter).toBe(false);
    }
  });

  it("refuses shared subscriptions, which the embedded broker would never match", () => {
    const decision = maySubscribe(ingest, "$share/edgemeter-ingest/edgemeter/v1/gw/+/telemetry");
    expect(decision.allowed).toBe(false);
    expect(decision).toHaveProperty("reason", expect.stringContaining("$share"));
  });
});
