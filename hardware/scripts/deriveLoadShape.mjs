#!/usr/bin/env node
/**
 * Derives the simulator's daily household load shape (hardware/src/simulator/loadShape.json)
 * from real half-hourly consumption of 10 NSW households (SGSC trial, see
 * /work/shared/data/README.md). The result ships inside the package so the simulator
 * never reads ../shared at run time.
 *
 * Usage: node hardware/scripts/deriveLoadShape.mjs [path/to/sgsc-households-10.csv.gz] > hardware/src/simulator/loadShape.json
 *        npx biome format --write hardware/src/simulator/loadShape.json   (the committed file is Biome-formatted)
 *
 * Method: for each half-hour slot of the local day, the mean `general_supply_kwh` over all
 * households and all days, separately for weekdays (Mon–Fri) and weekends (Sat–Sun). Both
 * curves are divided by the week-weighted mean (5/7 weekday, 2/7 weekend), so a factor of
 * 1 is the average half hour and `meanPowerW` scales the shape back to watts.
 */
import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";

const source = process.argv[2] ?? "/work/shared/data/sgsc-households-10.csv.gz";
const lines = gunzipSync(readFileSync(source)).toString("utf8").trim().split("\n");
const header = lines.shift();
if (header !== "customer_id,reading_datetime_local,general_supply_kwh") {
  throw new Error(`${source}: unexpected header ${header}`);
}

const sums = { weekday: new Array(48).fill(0), weekend: new Array(48).fill(0) };
const counts = { weekday: new Array(48).fill(0), weekend: new Array(48).fill(0) };
const households = new Set();
let first = "";
let last = "";
for (const line of lines) {
  const [customer, datetime, kwhText] = line.split(",");
  const kwh = Number(kwhText);
  const match = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2})/.exec(datetime);
  if (!match || !Number.isFinite(kwh)) continue;
  const [, y, mo, d, h, mi] = match.map(Number);
  // The timestamps are local wall-clock times: weekday from the calendar date alone.
  const dayOfWeek = new Date(Date.UTC(y, mo - 1, d)).getUTCDay();
  const kind = dayOfWeek === 0 || dayOfWeek === 6 ? "weekend" : "weekday";
  const slot = h * 2 + (mi >= 30 ? 1 : 0);
  sums[kind][slot] += kwh;
  counts[kind][slot] += 1;
  households.add(customer);
  if (first === "" || datetime < first) first = datetime;
  if (datetime > last) last = datetime;
}

const meanOf = (kind) => sums[kind].map((s, i) => s / counts[kind][i]);
const weekday = meanOf("weekday");
const weekend = meanOf("weekend");
const average = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const weekMeanKwh = (5 * average(weekday) + 2 * average(weekend)) / 7;
const round4 = (x) => Math.round(x * 10_000) / 10_000;

const result = {
  provenance: {
    source:
      "sgsc-households-10.csv.gz: Smart Grid, Smart City customer trial (NSW, Australia), as packaged in the gravitas R package (smart_meter10); data.gov.au",
    households: households.size,
    readings: lines.length,
    from: first,
    to: last,
    method:
      "mean general_supply_kwh per local half-hour slot over all households and days, weekdays and weekends separately, divided by the week-weighted mean (5/7 weekday + 2/7 weekend)",
    script: "hardware/scripts/deriveLoadShape.mjs",
  },
  slotMinutes: 30,
  meanPowerW: Math.round((weekMeanKwh / 0.5) * 1000),
  weekday: weekday.map((x) => round4(x / weekMeanKwh)),
  weekend: weekend.map((x) => round4(x / weekMeanKwh)),
};
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
