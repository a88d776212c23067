import { readFileSync } from "node:fs";
import { EdgemeterError } from "@edgemeter/shared";
import type { Logger } from "pino";
import type { SqlClient } from "../store/sqlClient.js";
import { assignTariff, cancelBill, finaliseBills, putTariff, runBilling } from "./billingRun.js";

/** The options `edgemeter-cloud billing …` and `tariff import|assign` read. */
export interface BillingCommandOptions {
  period?: string | undefined;
  "dry-run"?: boolean | undefined;
  bill?: string | undefined;
  reason?: string | undefined;
  actor?: string | undefined;
  id?: string | undefined;
  tariff?: string | undefined;
  meter?: string | undefined;
  from?: string | undefined;
  to?: string | undefined;
}

export const BILLING_COMMANDS = ["billing run", "billing finalise", "billing cancel", "tariff import", "tariff assign"];

export const BILLING_USAGE = `  billing run --period YYYY-MM [--dry-run] --config FILE
                                       bill every meter for a month (progress on stderr, summary JSON on stdout)
  billing finalise --period YYYY-MM [--actor NAME] --config FILE
                                       finalise the month's draft bills (immutable from then on)
  billing cancel --bill ID --reason TEXT [--actor NAME] --config FILE
                                       cancel a bill (audited); the next run of its month rebills it
  tariff import --id TARIFF_ID --tariff URDB.json --config FILE
  tariff assign --meter METER --id TARIFF_ID --from ISO_TIME [--to ISO_TIME] --config FILE`;

function need(value: string | undefined, what: string): string {
  if (value === undefined || value.trim() === "") throw new EdgemeterError("config.usage", `needs ${what}`);
  return value;
}

function time(value: string, what: string): Date {
  const date = new Date(value);
  if (!/[zZ]|[+-]\d\d:\d\d$/.test(value) || Number.isNaN(date.getTime())) {
    throw new EdgemeterError(
      "config.usage",
      `${what} "${value}": expected an ISO 8601 time with a zone, like 2026-10-01T00:00:00+02:00`,
    );
  }
  return date;
}

/** A one-line progress bar on stderr (a TTY redraws it; a log file gets a line per 10 %). */
function progressBar(stream: NodeJS.WriteStream) {
  let lastTenth = -1;
  return (done: number, total: number) => {
    const share = total === 0 ? 1 : done / total;
    if (stream.isTTY) {
      const width = 30;
      const filled = Math.round(share * width);
      stream.write(`\r[${"#".repeat(filled)}${".".repeat(width - filled)}] ${done}/${total} meters`);
      if (done === total) stream.write("\n");
    } else if (Math.floor(share * 10) !== lastTenth) {
      lastTenth = Math.floor(share * 10);
      stream.write(`billing: ${done}/${total} meters\n`);
    }
  };
}

export async function billingCommand(
  command: string,
  options: BillingCommandOptions,
  sql: SqlClient,
  defaultZone: string,
  logger: Logger,
): Promise<number> {
  const now = () => new Date();
  const actor = options.actor ?? process.env.USER ?? "cli";
  switch (command) {
    case "billing run": {
      const summary = await runBilling(sql, {
        period: need(options.period, "--period YYYY-MM"),
        dryRun: options["dry-run"] === true,
        trigger: "cli",
        defaultZone,
        now,
        logger,
        onProgress: progressBar(process.stderr),
      });
      process.stdout.write(`${JSON.stringify(summary)}\n`);
      return summary.skipped === "locked" ? 1 : 0;
    }
    case "billing finalise": {
      const count = await finaliseBills(sql, need(options.period, "--period YYYY-MM"), actor, now());
      process.stdout.write(`finalised ${count} bill(s)\n`);
      return 0;
    }
    case "billing cancel": {
      const id = Number(need(options.bill, "--bill ID"));
      if (!Number.isSafeInteger(id) || id <= 0) throw new EdgemeterError("config.usage", "--bill must be a bill id");
      await cancelBill(sql, id, actor, need(options.reason, "--reason TEXT"), now());
      process.stdout.write(`cancelled bill ${id}; the next run of its period rebills it\n`);
      return 0;
    }
    case "tariff import": {
      const file = need(options.tariff, "--tariff URDB.json");
      let record: unknown;
      try {
        record = JSON.parse(readFileSync(file, "utf8"));
      } catch (cause) {
        throw new EdgemeterError("config.tariff", `${file}: ${(cause as Error).message}`, { cause });
      }
      const tariff = await putTariff(sql, need(options.id, "--id TARIFF_ID"), record, file);
      process.stdout.write(
        `tariff ${options.id}: ${tariff.label ?? tariff.name ?? "(no label)"} (${tariff.currency})\n`,
      );
      return 0;
    }
    case "tariff assign": {
      const meter = need(options.meter, "--meter METER");
      const from = time(need(options.from, "--from ISO_TIME"), "--from");
      const to = options.to === undefined ? null : time(options.to, "--to");
      await assignTariff(sql, meter, need(options.id, "--id TARIFF_ID"), from, to);
      process.stdout.write(
        `meter ${meter}: tariff ${options.id} from ${from.toISOString()}${to ? ` to ${to.toISOString()}` : ""}\n`,
      );
      return 0;
    }
    default:
      throw new EdgemeterError("config.usage", `unknown command: ${command}`);
  }
}
