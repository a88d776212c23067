import { EdgemeterError, type MeasurementName } from "@edgemeter/shared/core";
import { type MeterProfile, type RegisterDef, type RegisterFn, WORDS_PER_TYPE } from "../profiles/profileTypes.js";
import { decodeRegister } from "./registerCodec.js";

/** One Modbus read: `count` registers from `address` with function `fn`, covering `registers`. */
export interface ReadRequest {
  fn: RegisterFn;
  /** Wire (PDU) address of the first register read. */
  address: number;
  /** Registers read, including the gaps thrown away between `registers`. */
  count: number;
  /** Sorted by address; all lie inside [address, address + count). */
  registers: readonly RegisterDef[];
}

export interface DecodedValues {
  values: Partial<Record<MeasurementName, number>>;
  /** One entry per register that could not be decoded (its measurement is absent from `values`). */
  errors: { code: string; message: string }[];
}

function endOf(register: RegisterDef): number {
  return register.address + WORDS_PER_TYPE[register.type];
}

function requestFor(fn: RegisterFn, registers: readonly RegisterDef[]): ReadRequest {
  const first = registers[0];
  const last = registers[registers.length - 1];
  if (first === undefined || last === undefined) {
    throw new EdgemeterError("internal.emptyRequest", "a read request needs at least one register");
  }
  return { fn, address: first.address, count: endOf(last) - first.address, registers };
}

/**
 * The fewest reads that cover every register of the profile: per function code, registers
 * in address order are merged into one request while the hole between them is at most
 * `maxGap` registers and the whole read stays within `maxRegistersPerRequest`. Greedy is
 * optimal here: any feasible request's sub-range is feasible too, so extending each request
 * as far as possible never costs a later one.
 */
export function planReads(profile: MeterProfile): ReadRequest[] {
  const requests: ReadRequest[] = [];
  for (const fn of ["input", "holding"] as const) {
    const registers = profile.registers.filter((r) => r.fn === fn).sort((a, b) => a.address - b.address);
    let group: RegisterDef[] = [];
    for (const register of registers) {
      const first = group[0];
      const last = group[group.length - 1];
      const fits =
        first !== undefined &&
        last !== undefined &&
        register.address - endOf(last) <= profile.maxGap &&
        endOf(register) - first.address <= profile.maxRegistersPerRequest;
      if (!fits && group.length > 0) {
        requests.push(requestFor(fn, group));
        group = [];
      }
      group.push(register);
    }
    if (group.length > 0) requests.push(requestFor(fn, group));
  }
  return requests;
}

/**
 * Splits a request into two, each tight around half of its registers: the step of a
 * bisection when a meter answers a merged read with "Illegal Data Address" (some meters
 * refuse reads that span undocumented registers). Throws EdgemeterError
 * ("internal.cannotSplit") for a request of one register: that register itself is refused.
 */
export function splitRequest(request: ReadRequest): [ReadRequest, ReadRequest] {
  if (request.registers.length < 2) {
    throw new EdgemeterError(
      "internal.cannotSplit",
      `cannot split a read of one register (${request.fn} 0x${request.address.toString(16)})`,
    );
  }
  const middle = Math.ceil(request.registers.length / 2);
  return [
    requestFor(request.fn, request.registers.slice(0, middle)),
    requestFor(request.fn, request.registers.slice(middle)),
  ];
}

/**
 * Decodes a read's answer. `words` are the 16-bit registers starting at request.address.
 * A register that cannot be decoded (short answer, "not available" pattern, NaN) is left
 * out of `values` and explained in `errors`: a missing value, never a made-up number.
 */
export function decodeResponse(request: ReadRequest, words: readonly number[]): DecodedValues {
  const result: DecodedValues = { values: {}, errors: [] };
  for (const register of request.registers) {
    const offset = register.address - request.address;
    const own = words.slice(offset, offset + WORDS_PER_TYPE[register.type]);
    const outcome = decodeRegister(register, own);
    if (outcome.ok) result.values[register.measurement] = outcome.value;
    else result.errors.push({ code: outcome.code, message: outcome.message });
  }
  return result;
}
