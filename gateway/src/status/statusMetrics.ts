import { createRequire } from "node:module";
import type * as PromClient from "prom-client";
import type { GatewayState, MeterState, StatusSnapshot, UplinkHealth } from "./gatewayState.js";

/**
 * prom-client's Gauge and Registry from their own modules, not from its index: the index also
 * loads every other metric type, the default process metrics with @opentelemetry/api (~50
 * modules), the Pushgateway and the cluster aggregator, none of which /metrics uses (issue 4
 * footprint: ~1.3 MB of heap measured). The same classes the index exports (statusMetrics.test.ts
 * checks it, so a prom-client that moves them fails there, not on a gateway).
 */
const require = createRequire(import.meta.url);
const Gauge = require("prom-client/lib/gauge") as typeof PromClient.Gauge;
const Registry = require("prom-client/lib/registry") as typeof PromClient.Registry;
type Registry = PromClient.Registry;
type Gauge = PromClient.Gauge;

const UPLINK_STATES: readonly UplinkHealth[] = ["connected", "retrying", "rejected", "closed"];
const METER_STATES: readonly MeterState[] = ["waiting", "ok", "errors", "offline"];

/**
 * `/metrics` in the Prometheus text format, via prom-client: the same snapshot as the page
 * and /api/status, taken once per scrape. A registry of its own (not prom-client's global
 * one) so two gateways in one test process do not collide.
 */
export function createStatusRegistry(state: GatewayState): Registry {
  const registry = new Registry();
  let snapshot: StatusSnapshot;
  const gauge = (name: string, help: string, labelNames: string[] = []) =>
    new Gauge({ name, help, labelNames, registers: [registry] });

  // Registered first, so collected first: it takes the one snapshot every other gauge of this
  // scrape reads, which keeps a scrape consistent.
  new Gauge({
    name: "edgemeter_gateway_info",
    help: "Gateway id and version (value always 1).",
    labelNames: ["gateway_id", "version"],
    registers: [registry],
    collect,
  });
  const uptime = gauge("edgemeter_gateway_uptime_seconds", "Seconds since the gateway started.");
  const uplink = gauge("edgemeter_uplink_state", "1 for the uplink's current state, 0 for the others.", ["state"]);
  const rejected = gauge("edgemeter_uplink_rejected_batches", "Telemetry batches the broker rejected since start.");
  const buffered = gauge("edgemeter_outbox_buffered_readings", "Readings stored in the outbox, not yet acknowledged.");
  const oldest = gauge(
    "edgemeter_outbox_oldest_unsent_age_seconds",
    "Age of the oldest unsent reading (0 when the outbox is empty).",
  );
  const thinned = gauge(
    "edgemeter_outbox_thinned_readings",
    "Interval readings deleted unsent under the disk cap (energy kept at 15 min), since the outbox was made.",
  );
  const dropped = gauge(
    "edgemeter_outbox_dropped_readings",
    "Readings deleted unsent because thinning could not make room, since the outbox was made.",
  );
  const pendingEvents = gauge("edgemeter_outbox_pending_events", "Fault events not yet acknowledged by the broker.");
  // Labelled by what they measure: without a certificate or a readable disk they have no
  // sample at all (an unlabelled gauge would say 0, i.e. "the certificate expires today").
  const cert = gauge("edgemeter_certificate_expiry_days", "Whole days until the uplink client certificate expires.", [
    "file",
  ]);
  const synced = gauge("edgemeter_clock_synced", "1 when the wall clock is synchronised.");
  const diskUsed = gauge("edgemeter_disk_used_bytes", "Used bytes on the data directory's file system.", ["path"]);
  const diskTotal = gauge("edgemeter_disk_total_bytes", "Size of the data directory's file system in bytes.", ["path"]);
  const meterState = gauge("edgemeter_meter_state", "1 for the meter's current state, 0 for the others.", [
    "meter",
    "state",
  ]);
  const meterAge = gauge("edgemeter_meter_last_reading_age_seconds", "Seconds since the meter's last reading.", [
    "meter",
  ]);
  const meterReadings = gauge("edgemeter_meter_readings", "Readings taken from the meter since start.", ["meter"]);
  const meterErrors = gauge("edgemeter_meter_errors", "Error entries in the meter's readings since start.", ["meter"]);
  const meterValue = gauge("edgemeter_meter_value", "Last value read, by canonical measurement name (unit in name).", [
    "meter",
    "measurement",
  ]);
  const busFailed = gauge("edgemeter_bus_failed_requests", "Failed Modbus requests on the bus since start.", ["bus"]);
  const faults = gauge("edgemeter_faults_active", "Faults active now.");

  function collect(this: Gauge) {
    snapshot = state.snapshot();
    this.reset();
    this.set({ gateway_id: snapshot.gatewayId, version: snapshot.version }, 1);
    uptime.set(snapshot.uptimeS);
    uplink.reset();
    for (const s of UPLINK_STATES) uplink.set({ state: s }, snapshot.uplink.state === s ? 1 : 0);
    rejected.set(snapshot.uplink.rejectedBatches);
    buffered.set(snapshot.outbox.bufferedReadings);
    oldest.set(snapshot.outbox.oldestUnsentAgeS ?? 0);
    thinned.set(snapshot.outbox.thinnedReadings);
    dropped.set(snapshot.outbox.droppedReadings);
    pendingEvents.set(snapshot.outbox.pendingEvents);
    cert.reset();
    if (snapshot.certificate?.expiresInDays != null) {
      cert.set({ file: snapshot.certificate.file }, snapshot.certificate.expiresInDays);
    }
    synced.set(snapshot.clock.synced ? 1 : 0);
    diskUsed.reset();
    diskTotal.reset();
    if (snapshot.disk !== null) {
      diskUsed.set({ path: snapshot.disk.path }, snapshot.disk.usedBytes);
      diskTotal.set({ path: snapshot.disk.path }, snapshot.disk.totalBytes);
    }
    for (const g of [meterState, meterAge, meterReadings, meterErrors, meterValue, busFailed]) g.reset();
    for (const m of snapshot.meters) {
      for (const s of METER_STATES) meterState.set({ meter: m.id, state: s }, m.state === s ? 1 : 0);
      if (m.lastReadingAgeS !== null) meterAge.set({ meter: m.id }, m.lastReadingAgeS);
      meterReadings.set({ meter: m.id }, m.readings);
      meterErrors.set({ meter: m.id }, m.errorCount);
      for (const [measurement, value] of Object.entries(m.values)) meterValue.set({ meter: m.id, measurement }, value);
    }
    for (const b of snapshot.buses) busFailed.set({ bus: b.id }, b.failedRequests);
    faults.set(snapshot.events.filter((e) => e.active).length);
  }
  return registry;
}
