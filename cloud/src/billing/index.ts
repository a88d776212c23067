/** Monthly billing (issue 7): tariffs (URDB), VEE, periods, money, the engine, runs, outputs. */
export { assignTariff, cancelBill, finaliseBills, putTariff, type RunSummary, runBilling } from "./billingRun.js";
export { BillingScheduler } from "./billingScheduler.js";
export { billPeriod, type PeriodBill } from "./engine.js";
export { billMeter, type MeterBill } from "./meterBill.js";
export { toMinorUnits } from "./money.js";
export { type BillingPeriod, billingPeriod, calendarFor } from "./periods.js";
export { type BillingTimings, billRollupChunk, rollupChunkStatement } from "./rollupRun.js";
export { parseUrdbTariff, type UrdbTariff } from "./tariff.js";
export { QUALITY, validateReads } from "./vee.js";
export { billHourlyYear } from "./whatIf.js";
