/**
 * `@edgemeter/hardware/decoding`: read planning and register decoding, without the profile
 * loader (YAML, zod) or the simulator: what the gateway daemon needs once its configuration
 * and profiles are loaded (issue 4 footprint).
 */

export type { MeterProfile, RegisterDef, RegisterFn, RegisterType } from "../profiles/profileTypes.js";
export { type DecodedValues, decodeResponse, planReads, type ReadRequest, splitRequest } from "./readPlan.js";
export {
  DECODE_ERROR_CODES,
  type DecodeOutcome,
  decodeRegister,
  encodeValue,
  registerValueRange,
} from "./registerCodec.js";
