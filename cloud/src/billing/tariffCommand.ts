import { readFileSync } from "node:fs";
import { EdgemeterError } from "@edgemeter/shared";
import { parseUrdbTariff } from "./tariff.js";
import { billHourlyYear, parseHourlyCsv, type WhatIfCalendar } from "./whatIf.js";

export interface TariffBillOptions {
  tariff?: string | undefined;
  hourly?: string | undefined;
  calendar?: string | undefined;
  zone?: string | undefined;
  year?: string | undefined;
}

function readText(file: string, what: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (cause) {
    throw new EdgemeterError("config.file", `${what} ${file}: cannot read (${(cause as Error).message})`, { cause });
  }
}

/**
 * `edgemeter-cloud tariff bill --tariff <urdb.json> --hourly <csv> [--calendar sam | --zone Z --year Y]`:
 * returns the JSON line to print. Bad arguments and bad files throw config.* (exit code 2).
 */
export function tariffBillCommand(options: TariffBillOptions): string {
  if (options.tariff === undefined || options.hourly === undefined) {
    throw new EdgemeterError("config.usage", "tariff bill needs --tariff <urdb.json> and --hourly <csv>");
  }
  let calendar: WhatIfCalendar;
  if (options.zone !== undefined) {
    if (options.calendar !== undefined) throw new EdgemeterError("config.usage", "give --calendar or --zone, not both");
    const year = Number(options.year);
    if (options.year === undefined || !Number.isInteger(year) || year < 1970 || year > 2200) {
      throw new EdgemeterError("config.usage", "--zone needs --year YYYY (1970–2200)");
    }
    calendar = { kind: "zone", zone: options.zone, year };
  } else if (options.calendar === undefined || options.calendar === "sam") {
    calendar = { kind: "sam" };
  } else {
    throw new EdgemeterError(
      "config.usage",
      `--calendar must be sam (or use --zone Z --year Y), not ${options.calendar}`,
    );
  }
  let record: unknown;
  try {
    record = JSON.parse(readText(options.tariff, "tariff"));
  } catch (cause) {
    if (cause instanceof EdgemeterError) throw cause;
    throw new EdgemeterError("config.tariff", `${options.tariff}: not JSON (${(cause as Error).message})`, { cause });
  }
  const tariff = parseUrdbTariff(record, options.tariff);
  const hourly = parseHourlyCsv(readText(options.hourly, "hourly load"), options.hourly);
  const result = billHourlyYear(tariff, hourly, calendar);
  return JSON.stringify({
    months: result.months.map(({ energy, demand, fixed, minimum, exportCredit, taxes, total, kwh, month }) => ({
      month,
      kwh,
      energy,
      demand,
      fixed,
      minimum,
      exportCredit,
      taxes,
      total,
    })),
    total: result.total,
    energyUnrounded: Number(result.energyExact.toFixed(6)),
    currency: result.currency,
    calendar: result.calendar,
  });
}
