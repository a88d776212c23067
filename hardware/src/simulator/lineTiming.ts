/**
 * Modbus RTU line timing (Modbus over serial line specification v1.02, §2.5.1.1), pure.
 * A character is 1 start bit + data bits + parity bit (if any) + stop bits; frames are
 * separated by at least 3.5 character times of silence (t3.5). Above 19200 baud the spec
 * fixes t3.5 at 1.75 ms, because the UART interrupt load would otherwise be too high.
 */

export type Parity = "none" | "even" | "odd";

export interface LineSettings {
  baudRate: number;
  dataBits: 7 | 8;
  parity: Parity;
  stopBits: 1 | 2;
}

/** Bits per character on the wire: 11 for 8E1, 8O1 and 8N2; 10 for 8N1. */
export function bitsPerCharacter(line: LineSettings): number {
  return 1 + line.dataBits + (line.parity === "none" ? 0 : 1) + line.stopBits;
}

/** One character time (ms). */
export function charTimeMs(line: LineSettings): number {
  return (bitsPerCharacter(line) / line.baudRate) * 1000;
}

/** Inter-frame silence t3.5 (ms): 3.5 character times, fixed at 1.75 ms above 19200 baud (spec §2.5.1.1). */
export function t35Ms(line: LineSettings): number {
  return line.baudRate > 19_200 ? 1.75 : 3.5 * charTimeMs(line);
}

/** Bytes of a read-registers request (function 03/04): unit, fn, address(2), count(2), CRC(2). */
export const READ_REQUEST_BYTES = 8;

/** Bytes of its normal answer: unit, fn, byte count, 2 per register, CRC(2). */
export function readResponseBytes(registers: number): number {
  return 5 + 2 * registers;
}

/**
 * Time one read of `registers` registers occupies the bus (ms): request and answer on the
 * wire, a t3.5 after each, and the meter's turnaround:
 * T(N) = (13 + 2N) × t_char + 2 × t3.5 + t_turn.
 */
export function readTransactionMs(line: LineSettings, registers: number, turnaroundMs: number): number {
  return (READ_REQUEST_BYTES + readResponseBytes(registers)) * charTimeMs(line) + 2 * t35Ms(line) + turnaroundMs;
}

/** CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF), sent low byte first (spec §2.5.1.2, §6.2.2). */
export function crc16Modbus(bytes: Uint8Array): number {
  let crc = 0xffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0xa001 : crc >>> 1;
  }
  return crc;
}

/** `body` followed by its CRC, low byte first. */
export function withCrc(body: readonly number[]): Buffer {
  const frame = Buffer.alloc(body.length + 2);
  frame.set(body);
  const crc = crc16Modbus(frame.subarray(0, body.length));
  frame[body.length] = crc & 0xff;
  frame[body.length + 1] = crc >>> 8;
  return frame;
}
