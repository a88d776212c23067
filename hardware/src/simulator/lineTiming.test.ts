import { describe, expect, it } from "vitest";
import { bitsPerCharacter, charTimeMs, crc16Modbus, readTransactionMs, t35Ms, withCrc } from "./lineTiming.js";

const line8E1 = (baudRate: number) => ({
  baudRate,
  dataBits: 8 as const,
  parity: "even" as const,
  stopBits: 1 as const,
});

describe("RTU line timing", () => {
  it("counts bits per character: 11 for 8E1 and 8N2, 10 for 8N1", () => {
    expect(bitsPerCharacter(line8E1(9_600))).toBe(11);
    expect(bitsPerCharacter({ baudRate: 9_600, dataBits: 8, parity: "none", stopBits: 2 })).toBe(11);
    expect(bitsPerCharacter({ baudRate: 9_600, dataBits: 8, parity: "none", stopBits: 1 })).toBe(10);
  });

  it("t3.5 is 3.5 characters up to 19200 baud and 1.75 ms above", () => {
    expect(t35Ms(line8E1(9_600))).toBeCloseTo((3.5 * 11 * 1000) / 9_600, 9);
    expect(t35Ms(line8E1(19_200))).toBeCloseTo((3.5 * 11 * 1000) / 19_200, 9);
    expect(t35Ms(line8E1(38_400))).toBe(1.75);
  });

  it("T(N) = (13 + 2N) t_char + 2 t3.5 + t_turn", () => {
    // 9600 8E1, two registers, 10 ms turnaround: 17 × 1.1458 + 2 × 4.0104 + 10 ms.
    expect(readTransactionMs(line8E1(9_600), 2, 10)).toBeCloseTo(17 * (11_000 / 9_600) + 2 * (38_500 / 9_600) + 10, 9);
    expect(readTransactionMs(line8E1(38_400), 80, 0)).toBeCloseTo(173 * charTimeMs(line8E1(38_400)) + 3.5, 9);
  });

  it("CRC-16/MODBUS matches the spec's example and goes low byte first", () => {
    // Modbus over serial line v1.02 §6.2.2 check value for "123456789" is 0x4B37.
    expect(crc16Modbus(Buffer.from("123456789"))).toBe(0x4b37);
    // Read holding register 0 of unit 1: 01 03 00 00 00 01 84 0A (a frame every Modbus tool shows).
    expect(withCrc([1, 3, 0, 0, 0, 1]).toString("hex")).toBe("010300000001840a");
  });
});
