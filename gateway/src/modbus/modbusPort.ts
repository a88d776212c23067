/** Modbus function for reading 16-bit registers: 0x04 (input) or 0x03 (holding). */
export type RegisterFunction = "input" | "holding";

/**
 * One Modbus connection (a TCP gateway or, later, an RS-485 line), shared by every meter
 * on it. Implementations send ONE request at a time in call order (a FIFO), because the
 * unit id is connection state in modbus-serial and RS-485 is half-duplex anyway.
 */
export interface ModbusPort {
  /**
   * Reads `count` (1-125) consecutive 16-bit registers starting at wire address `address`
   * (0-65535, as sent in the PDU) from unit `unitId` (1-247).
   * @returns the register values (0-65535), `count` of them.
   * @throws EdgemeterError `modbus.timeout` (retryable): no answer within the port's timeoutMs.
   * @throws EdgemeterError `modbus.exception`: the meter answered with a Modbus exception;
   *   `context.exceptionCode` holds it (2 = illegal data address). Retryable only for 5/6/11
   *   (acknowledge, busy, gateway target failed to respond).
   * @throws EdgemeterError `modbus.connection` (retryable): the connection could not be opened
   *   or broke; the next call reconnects.
   */
  readRegisters(unitId: number, fn: RegisterFunction, address: number, count: number): Promise<number[]>;
  /** Closes the connection; pending and later reads reject with `modbus.connection`. Idempotent. */
  close(): Promise<void>;
}
