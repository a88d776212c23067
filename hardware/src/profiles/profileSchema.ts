import {
  EdgemeterError,
  formatInputIssues,
  type InputIssue,
  MEASUREMENT_NAMES,
  toInputIssues,
} from "@edgemeter/shared";
import { parseDocument } from "yaml";
import { z } from "zod";
import {
  type MeterProfile,
  MODBUS_MAX_REGISTERS_PER_REQUEST,
  REGISTER_TYPES,
  type RegisterDef,
  type RegisterType,
  WORDS_PER_TYPE,
} from "./profileTypes.js";

/**
 * Meter profiles are data (CONVENTIONS §1): one YAML file per meter model, checked here
 * by a strict schema before any register is read. Every problem is reported at once as
 * `file: path: message`, so fixing a profile is one edit, not a loop.
 */

export {
  type MeterProfile,
  MODBUS_MAX_REGISTERS_PER_REQUEST,
  REGISTER_TYPES,
  type RegisterDef,
  type RegisterFn,
  type RegisterType,
  WORDS_PER_TYPE,
} from "./profileTypes.js";

const MODICON_HINT =
  "Modicon 3xxxx/4xxxx register numbers are not accepted: give the register without the 30000/40000 prefix and say whether it counts from 0 or 1";

/** A missing key says so, rather than "must be a string". */
function orRequired(message: string): (issue: { input: unknown }) => string {
  return (issue) => (issue.input === undefined ? "is required" : message);
}

const HEX_PATTERN = /^0x[0-9A-Fa-f]+$/;

const RegisterSchema = z
  .strictObject({
    measurement: z.enum(MEASUREMENT_NAMES, {
      error: (issue) =>
        issue.input === undefined
          ? "is required"
          : `unknown measurement ${JSON.stringify(issue.input)}: use a name from @edgemeter/shared MEASUREMENTS (voltageL1V, activePowerW, importEnergyKwh, …)`,
    }),
    address: z
      .number({ error: orRequired(`must be an integer register address such as 0x0048 (${MODICON_HINT})`) })
      .int("must be an integer")
      .min(0, "must be 0 or more")
      .max(0xffff, "must be at most 0xFFFF (65535)"),
    fn: z.enum(["input", "holding"], { error: orRequired('must be "input" (function 04) or "holding" (function 03)') }),
    type: z.enum(REGISTER_TYPES, { error: orRequired(`must be one of ${REGISTER_TYPES.join(", ")}`) }),
    wordOrder: z.enum(["big", "little"], {
      error: orRequired('must be "big" (high word first) or "little" (low word first)'),
    }),
    scale: z
      .number({ error: orRequired("must be a finite number (1 for none)") })
      .refine((s) => s !== 0, "must not be 0")
      .default(1),
    invalid: z
      .array(
        z
          .string({ error: 'must be "allOnes" or a hex pattern such as "0xFFFFFFFF"' })
          .refine(
            (pattern) => pattern === "allOnes" || HEX_PATTERN.test(pattern),
            'must be "allOnes" or a hex pattern such as "0xFFFFFFFF"',
          ),
      )
      .default([]),
  })
  .superRefine((register, ctx) => {
    // zod runs this refinement even when fields above failed: only judge what is valid.
    if (!Object.hasOwn(WORDS_PER_TYPE, register.type) || !Array.isArray(register.invalid)) return;
    const hexDigits = WORDS_PER_TYPE[register.type] * 4;
    register.invalid.forEach((pattern, index) => {
      if (typeof pattern === "string" && HEX_PATTERN.test(pattern) && pattern.length - 2 !== hexDigits) {
        ctx.addIssue({
          code: "custom",
          path: ["invalid", index],
          message: `"${pattern}" has ${pattern.length - 2} hex digits but a ${register.type} register has ${hexDigits}`,
        });
      }
    });
  });

type RawRegister = z.output<typeof RegisterSchema>;

const ProfileSchema = z.strictObject({
  id: z
    .string({ error: orRequired("must be a string") })
    .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, "must be 1-64 characters of a-z 0-9 _ - (it names the file: <id>.yaml)"),
  manufacturer: z.string({ error: orRequired("must be a string") }).min(1, "must not be empty"),
  model: z.string({ error: orRequired("must be a string") }).min(1, "must not be empty"),
  datasheet: z.url({
    protocol: /^https?$/,
    error: orRequired("must be the http(s) URL of the protocol document the addresses come from"),
  }),
  addressing: z.enum(["0-based", "1-based"], {
    error: orRequired(
      `must be "0-based" (the addresses are wire/PDU addresses) or "1-based" (register numbers counted from 1; 1 is subtracted); ${MODICON_HINT}`,
    ),
  }),
  maxRegistersPerRequest: z
    .number({ error: orRequired("must be an integer") })
    .int("must be an integer")
    .min(1, "must be at least 1")
    .max(MODBUS_MAX_REGISTERS_PER_REQUEST, "must be at most 125 (the Modbus limit for one read)"),
  maxGap: z
    .number({ error: orRequired("must be an integer") })
    .int("must be an integer")
    .min(0, "must be 0 or more"),
  registers: z
    .array(RegisterSchema, { error: orRequired("must be a list of registers") })
    .min(1, "must list at least one register"),
});

function wordCount(register: { type: RegisterType }): number {
  return WORDS_PER_TYPE[register.type];
}

function hexPattern(pattern: string, words: number): string {
  if (pattern === "allOnes") return `0x${"F".repeat(words * 4)}`;
  return `0x${pattern.slice(2).toUpperCase()}`;
}

/**
 * Checks that need several registers at once (duplicates, overlaps) and those that depend
 * on `addressing`. Runs on every register that is valid on its own, even when other parts
 * of the file are broken, so one run reports every problem.
 */
function crossCheck(where: string, raw: unknown): InputIssue[] {
  if (typeof raw !== "object" || raw === null) return [];
  const record = raw as Record<string, unknown>;
  const addressing = record.addressing === "1-based" ? "1-based" : "0-based";
  const rawRegisters = Array.isArray(record.registers) ? (record.registers as unknown[]) : [];
  const issues: InputIssue[] = [];
  const valid: { index: number; register: RawRegister; wire: number }[] = [];
  rawRegisters.forEach((candidate, index) => {
    const parsed = RegisterSchema.safeParse(candidate);
    if (!parsed.success) return;
    const register = parsed.data;
    const path = `registers.${index}.address`;
    if (addressing === "1-based") {
      if (register.address === 0) {
        issues.push({ where, path, message: "must be 1 or more in a 1-based profile" });
        return;
      }
      const modiconBase = register.fn === "input" ? 30_000 : 40_000;
      if (register.address > modiconBase && register.address < modiconBase + 10_000) {
        issues.push({
          where,
          path,
          message: `${register.address} looks like a Modicon ${register.fn === "input" ? "3xxxx" : "4xxxx"} number: ${MODICON_HINT}`,
        });
        return;
      }
    }
    const wire = addressing === "1-based" ? register.address - 1 : register.address;
    if (wire + wordCount(register) - 1 > 0xffff) {
      issues.push({ where, path, message: `a ${register.type} at this address runs past 0xFFFF` });
      return;
    }
    valid.push({ index, register, wire });
  });

  const firstByMeasurement = new Map<string, number>();
  for (const { index, register } of valid) {
    const first = firstByMeasurement.get(register.measurement);
    if (first === undefined) firstByMeasurement.set(register.measurement, index);
    else
      issues.push({
        where,
        path: `registers.${index}.measurement`,
        message: `${register.measurement} is already read by registers.${first}`,
      });
  }

  for (const fn of ["input", "holding"] as const) {
    const sorted = valid.filter((v) => v.register.fn === fn).sort((a, b) => a.wire - b.wire || a.index - b.index);
    for (let i = 1; i < sorted.length; i++) {
      const previous = sorted[i - 1];
      const current = sorted[i];
      if (previous === undefined || current === undefined) continue;
      if (current.wire < previous.wire + wordCount(previous.register)) {
        issues.push({
          where,
          path: `registers.${Math.max(previous.index, current.index)}.address`,
          message: `${fn} registers of ${current.register.measurement} overlap those of ${previous.register.measurement} (registers.${Math.min(previous.index, current.index)})`,
        });
      }
    }
  }
  return issues;
}

/**
 * Validates already-parsed profile data (e.g. from YAML). `where` names the source in
 * every message. Throws EdgemeterError("profile.invalid") listing every problem.
 */
export function validateProfile(data: unknown, where: string): MeterProfile {
  const parsed = ProfileSchema.safeParse(data);
  const issues = parsed.success ? [] : toInputIssues(where, parsed.error.issues);
  issues.push(...crossCheck(where, data));
  if (!parsed.success || issues.length > 0) {
    throw new EdgemeterError("profile.invalid", formatInputIssues(issues), { context: { issues, source: where } });
  }
  const profile = parsed.data;
  const offset = profile.addressing === "1-based" ? 1 : 0;
  const registers: RegisterDef[] = profile.registers
    .map((r) => ({
      measurement: r.measurement,
      address: r.address - offset,
      fn: r.fn,
      type: r.type,
      wordOrder: r.wordOrder,
      scale: r.scale,
      invalid: [...new Set(r.invalid.map((p) => hexPattern(p, wordCount(r))))],
    }))
    .sort((a, b) => (a.fn === b.fn ? a.address - b.address : a.fn === "input" ? -1 : 1));
  return {
    id: profile.id,
    manufacturer: profile.manufacturer,
    model: profile.model,
    datasheet: profile.datasheet,
    maxRegistersPerRequest: profile.maxRegistersPerRequest,
    maxGap: profile.maxGap,
    registers,
    source: where,
  };
}

/** Parses a profile from YAML text. YAML syntax errors are reported as `file: line L, column C: message`. */
export function parseProfileYaml(text: string, where: string): MeterProfile {
  const document = parseDocument(text, { uniqueKeys: true });
  if (document.errors.length > 0) {
    const issues: InputIssue[] = document.errors.map((error) => {
      const position = error.linePos?.[0];
      return {
        where,
        path: position ? `line ${position.line}, column ${position.col}` : "(yaml)",
        // yaml's pretty message repeats the position and quotes the source below it: keep the first sentence.
        message: (error.message.split("\n")[0] ?? error.message).replace(/ at line \d+, column \d+:?$/, ""),
      };
    });
    throw new EdgemeterError("profile.invalid", formatInputIssues(issues), { context: { issues, source: where } });
  }
  return validateProfile(document.toJS(), where);
}
