export * from "./decoding/index.js";
export { listProfiles, loadAllProfiles, loadProfile, PROFILES_DIR } from "./profiles/loadProfile.js";
export {
  MODBUS_MAX_REGISTERS_PER_REQUEST,
  parseProfileYaml,
  REGISTER_TYPES,
  validateProfile,
  WORDS_PER_TYPE,
} from "./profiles/profileSchema.js";
export {
  bitsPerCharacter,
  charTimeMs,
  crc16Modbus,
  type LineSettings,
  type Parity,
  READ_REQUEST_BYTES,
  readResponseBytes,
  readTransactionMs,
  t35Ms,
  withCrc,
} from "./simulator/lineTiming.js";
export { HOUSEHOLD_MEAN_POWER_W, loadFactorAt } from "./simulator/loadShape.js";
export type { MeterValues } from "./simulator/meterModel.js";
export type { MeterFault, RtuServerOptions, RtuServerStats } from "./simulator/rtuServer.js";
export { applyScenarios, type PowerQualityScenario } from "./simulator/scenarios.js";
export {
  type SimulatedMeterOptions,
  type SimulatorHandle,
  type SimulatorOptions,
  type SimulatorSnapshot,
  startSimulator,
} from "./simulator/simulator.js";
