import { parseOrThrow } from "@edgemeter/shared";
import { z } from "zod";

/**
 * Tariffs as data, in the field layout of the OpenEI Utility Rate Database (URDB), so a record
 * downloaded from https://openei.org/services/doc/rest/util_rates (API v7/v8) imports as is.
 * Field meanings follow the URDB documentation
 * (https://openei.org/wiki/Help:US_Utility_Rate_Database_Data_Entry):
 *
 * - `energyratestructure[period][tier] = {rate, max?, unit?, adj?, sell?}`: $/kWh; `max` is the
 *   tier's upper limit in `unit` ("kWh" per month, or "kWh daily": the limit times the days in
 *   the billing period); `adj` a rider added to `rate`; `sell` the export (net metering) credit.
 * - `energyweekdayschedule` / `energyweekendschedule`: 12 months × 24 hours of 0-based period
 *   indices into `energyratestructure`, applied in the meter's local wall-clock time (the
 *   prevailing time, DST included, as most utilities publish their TOU hours).
 * - `demandratestructure` + `demandweekdayschedule` / `demandweekendschedule`: TOU demand,
 *   $/kW on the month's peak in each period, tiered by `max` kW.
 * - `flatdemandstructure` + `flatdemandmonths`: a demand charge on the month's overall peak.
 * - `fixedchargefirstmeter` ($/month or $/day), `mincharge` ($/month, $/day or $/year).
 *
 * URDB has no fields for taxes, levies and currency; edgemeter adds `taxes` and `currency`
 * (ISO 4217, default USD). Unknown URDB fields are kept (passthrough) and ignored.
 */

const tierSchema = z.looseObject({
  rate: z.number().finite().optional(),
  max: z.number().positive().optional(),
  unit: z.enum(["kWh", "kWh daily", "kWh/kW", "kWh/kW daily"]).optional(),
  adj: z.number().finite().optional(),
  sell: z.number().finite().optional(),
});
export type UrdbEnergyTier = z.infer<typeof tierSchema>;

const demandTierSchema = z.looseObject({
  rate: z.number().finite().optional(),
  max: z.number().positive().optional(),
  adj: z.number().finite().optional(),
});

const hourRow = z.array(z.number().int().nonnegative()).length(24, "must have 24 hours (0–23)");
const schedule = z.array(hourRow).length(12, "must have 12 months (January first)");

const taxSchema = z.union([
  z.strictObject({ name: z.string().min(1), percent: z.number().finite() }),
  z.strictObject({ name: z.string().min(1), perKwh: z.number().finite() }),
]);
export type TaxRule = z.infer<typeof taxSchema>;

export const urdbTariffSchema = z
  .looseObject({
    label: z.string().optional(),
    name: z.string().optional(),
    currency: z
      .string()
      .regex(/^[A-Z]{3}$/, "ISO 4217 code such as USD, EUR")
      .default("USD"),
    /** Minor units per major unit (100 for USD/EUR; 1 for JPY). */
    currencyMinorUnits: z.number().int().positive().default(100),
    energyratestructure: z.array(z.array(tierSchema).min(1)).min(1).optional(),
    energyweekdayschedule: schedule.optional(),
    energyweekendschedule: schedule.optional(),
    demandratestructure: z.array(z.array(demandTierSchema).min(1)).optional(),
    demandweekdayschedule: schedule.optional(),
    demandweekendschedule: schedule.optional(),
    flatdemandstructure: z.array(z.array(demandTierSchema).min(1)).optional(),
    flatdemandmonths: z.array(z.number().int().nonnegative()).length(12).optional(),
    fixedchargefirstmeter: z.number().finite().default(0),
    fixedchargeunits: z.enum(["$/month", "$/day"]).default("$/month"),
    mincharge: z.number().finite().default(0),
    minchargeunits: z.enum(["$/month", "$/day", "$/year"]).default("$/month"),
    usenetmetering: z.boolean().optional(),
    taxes: z.array(taxSchema).default([]),
  })
  .superRefine((tariff, ctx) => {
    const checkSchedule = (key: string, rows: number[][] | undefined, periods: number) => {
      if (rows === undefined) return;
      rows.forEach((row, month) => {
        row.forEach((period, hour) => {
          if (period >= periods) {
            ctx.addIssue({
              code: "custom",
              path: [key, month, hour],
              message: `period ${period} does not exist (${periods} periods defined)`,
            });
          }
        });
      });
    };
    const energyPeriods = tariff.energyratestructure?.length ?? 0;
    if (
      energyPeriods > 0 &&
      (tariff.energyweekdayschedule === undefined || tariff.energyweekendschedule === undefined)
    ) {
      ctx.addIssue({ code: "custom", path: ["energyweekdayschedule"], message: "required with energyratestructure" });
    }
    checkSchedule("energyweekdayschedule", tariff.energyweekdayschedule, energyPeriods);
    checkSchedule("energyweekendschedule", tariff.energyweekendschedule, energyPeriods);
    const demandPeriods = tariff.demandratestructure?.length ?? 0;
    if (
      demandPeriods > 0 &&
      (tariff.demandweekdayschedule === undefined || tariff.demandweekendschedule === undefined)
    ) {
      ctx.addIssue({ code: "custom", path: ["demandweekdayschedule"], message: "required with demandratestructure" });
    }
    checkSchedule("demandweekdayschedule", tariff.demandweekdayschedule, demandPeriods);
    checkSchedule("demandweekendschedule", tariff.demandweekendschedule, demandPeriods);
    tariff.flatdemandmonths?.forEach((period, month) => {
      if (period >= (tariff.flatdemandstructure?.length ?? 0)) {
        ctx.addIssue({ code: "custom", path: ["flatdemandmonths", month], message: `no flat demand period ${period}` });
      }
    });
    const checkTiers = (key: string, structure: { max?: number | undefined }[][] | undefined) => {
      structure?.forEach((tiers, period) => {
        tiers.forEach((tier, index) => {
          const previous = tiers[index - 1]?.max;
          if (index < tiers.length - 1 && tier.max === undefined) {
            ctx.addIssue({
              code: "custom",
              path: [key, period, index, "max"],
              message: "only the last tier may be open",
            });
          }
          if (previous !== undefined && tier.max !== undefined && tier.max <= previous) {
            ctx.addIssue({ code: "custom", path: [key, period, index, "max"], message: "tier limits must rise" });
          }
        });
      });
    };
    checkTiers("energyratestructure", tariff.energyratestructure);
    checkTiers("demandratestructure", tariff.demandratestructure);
    checkTiers("flatdemandstructure", tariff.flatdemandstructure);
  });

export type UrdbTariff = z.output<typeof urdbTariffSchema>;

/**
 * Imports a URDB record as published: either the record itself or the API's `{items:[record]}`
 * envelope (exactly one item). `where` names the source (file path) for error messages.
 * @throws EdgemeterError config.tariff listing every problem as `where: path: message`.
 */
export function parseUrdbTariff(input: unknown, where: string): UrdbTariff {
  let record = input;
  if (typeof input === "object" && input !== null && "items" in input && Array.isArray(input.items)) {
    const items = input.items as unknown[];
    if (items.length !== 1) {
      return parseOrThrow(z.never(), input, `${where} (items: ${items.length} records, expected 1)`, "config.tariff");
    }
    record = items[0];
  }
  return parseOrThrow(urdbTariffSchema, record, where, "config.tariff");
}
