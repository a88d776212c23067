/** Test-only: an outage of the database, as a fake in front of a real Store. */
import { EdgemeterError, type TelemetryPayload } from "@edgemeter/shared";
import type { Store } from "../store/store.js";

/**
 * A Store whose landTelemetry fails, for batches of `gatewayId`, the next `failures` times with the error a dropped database
 * connection produces, then delegates to the real store: a fake of an outage, not a mock of SQL.
 */
export function flakyStore(store: Store, failures: { remaining: number }, gatewayId: string): Store {
  return new Proxy(store, {
    get(target, property) {
      if (property === "landTelemetry" && failures.remaining > 0) {
        // Only this test's gateway: the shared test broker also carries other tests' traffic.
        return async (payload: TelemetryPayload, receivedAt: Date) => {
          if (payload.gatewayId !== gatewayId) return target.landTelemetry(payload, receivedAt);
          failures.remaining -= 1;
          throw new EdgemeterError("storage.unavailable", "query failed: Connection terminated unexpectedly", {
            retryable: true,
          });
        };
      }
      const value: unknown = Reflect.get(target, property, target);
      // Bound to the real store: its #private fields do not exist on the proxy.
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
