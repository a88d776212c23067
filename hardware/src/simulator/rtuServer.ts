import { performance } from "node:perf_hooks";
import { EdgemeterError } from "@edgemeter/shared";
import type { Logger } from "pino";
import { SerialPort } from "serialport";
import type { RegisterFn } from "../profiles/profileSchema.js";
import {
  charTimeMs,
  crc16Modbus,
  type LineSettings,
  READ_REQUEST_BYTES,
  readResponseBytes,
  t35Ms,
  withCrc,
} from "./lineTiming.js";

/** A fault a simulated meter shows until it is cleared (SimulatorHandle.setFault). */
export type MeterFault =
  /** The meter stays silent: the master times out. */
  | { kind: "noAnswer" }
  /** The answer arrives with a wrong CRC (noise on the line). RTU only; over TCP: no answer. */
  | { kind: "crcError" }
  /** The meter answers this Modbus exception code (spec §7), e.g. 2, 4 or 6. */
  | { kind: "exception"; exceptionCode: number }
  /** Bytes that are no Modbus frame arrive instead of the answer. RTU only; over TCP: no answer. */
  | { kind: "garbage" }
  /** The answer comes this much later than the meter's turnaround. */
  | { kind: "slow"; extraDelayMs: number };

/** What the meter behind a unit id makes of a read, before faults. */
export type ServeOutcome =
  | { kind: "words"; words: number[] }
  | { kind: "exception"; exceptionCode: number }
  /** No such unit on the bus. */
  | { kind: "silent" };

export interface RtuServerOptions extends Partial<LineSettings> {
  /** The simulator's end of the serial line, e.g. one side of a socat pty pair. */
  path: string;
  /**
   * Emulate the line's physical speed: each answer is sent when its last byte would have
   * arrived at `baudRate`, after the request's own transmission time, t3.5 and the
   * turnaround; the line then stays busy for another t3.5. Default true.
   */
  emulateLineTiming?: boolean;
  /** Meter turnaround: from the end of the request to the start of the answer (ms). Default 0. */
  turnaroundMs?: number;
}

export interface RtuServerStats {
  requests: number;
  /** Frames dropped byte by byte because their CRC was wrong or they were no read (a real meter does not answer). */
  badRequests: number;
  answers: number;
}

/** Bytes older than this (after silence) are dropped; a pty delivers a written frame well within it. */
const STALE_BYTES_MS = 20;

type Serve = (unitId: number, fn: RegisterFn, address: number, count: number) => ServeOutcome;

/**
 * A Modbus RTU slave (many unit ids) on a serial port. Frames are taken by length (a read
 * request is always 8 bytes) with CRC resynchronisation, since a pty delivers no line
 * silence to frame on. One transaction at a time, as on a half-duplex RS-485 line.
 */
export class RtuServer {
  private readonly line: LineSettings;
  private readonly emulate: boolean;
  private readonly turnaroundMs: number;
  private port: SerialPort | undefined;
  private buffer = Buffer.alloc(0);
  private queue: Promise<void> = Promise.resolve();
  /** performance.now() until which the emulated line is still busy. */
  private busyUntilMs = 0;
  private lastDataMs = Number.NEGATIVE_INFINITY;
  private closed = false;
  private readonly counters: RtuServerStats = { requests: 0, badRequests: 0, answers: 0 };

  constructor(
    private readonly options: RtuServerOptions,
    private readonly serve: Serve,
    private readonly faultOf: (unitId: number) => MeterFault | undefined,
    private readonly logger: Logger,
  ) {
    this.line = {
      baudRate: options.baudRate ?? 9_600,
      dataBits: options.dataBits ?? 8,
      parity: options.parity ?? "none",
      stopBits: options.stopBits ?? 1,
    };
    this.emulate = options.emulateLineTiming ?? true;
    this.turnaroundMs = options.turnaroundMs ?? 0;
  }

  async open(): Promise<void> {
    const port = new SerialPort({
      path: this.options.path,
      baudRate: this.line.baudRate,
      dataBits: this.line.dataBits,
      parity: this.line.parity,
      stopBits: this.line.stopBits,
      autoOpen: false,
    });
    await new Promise<void>((resolve, reject) =>
      port.open((error) =>
        error
          ? reject(
              new EdgemeterError("config.invalid", `simulator: cannot open ${this.options.path}: ${error.message}`, {
                cause: error,
              }),
            )
          : resolve(),
      ),
    );
    port.on("data", (chunk: Buffer) => this.receive(chunk));
    port.on("error", (error: Error) => this.logger.warn({ err: error.message }, "serial port error"));
    this.port = port;
    this.logger.info({ path: this.options.path, ...this.line, emulate: this.emulate }, "simulator RTU line open");
  }

  stats(): RtuServerStats {
    return { ...this.counters };
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.queue;
    const port = this.port;
    this.port = undefined;
    if (port?.isOpen === true) await new Promise<void>((resolve) => port.close(() => resolve()));
  }

  private receive(chunk: Buffer): void {
    const arrivalMs = performance.now();
    // A silence longer than t3.5 ends any frame (spec §2.5.1.1): leftovers of a broken one
    // must not be glued to the next request. A pty has no real line timing, hence the floor.
    if (arrivalMs - this.lastDataMs > Math.max(t35Ms(this.line), STALE_BYTES_MS)) this.buffer = Buffer.alloc(0);
    this.lastDataMs = arrivalMs;
    this.buffer = Buffer.concat([this.buffer, chunk]);
    while (this.buffer.length >= READ_REQUEST_BYTES) {
      const fn = this.buffer[1];
      const frame = this.buffer.subarray(0, READ_REQUEST_BYTES);
      const crc = crc16Modbus(frame.subarray(0, 6));
      if ((fn !== 3 && fn !== 4) || (frame[6] ?? -1) !== (crc & 0xff) || (frame[7] ?? -1) !== crc >>> 8) {
        // A meter ignores a frame with a bad CRC (and only reads are simulated): resynchronise
        // one byte further on; the CRC makes a false match 1 in 65536.
        this.counters.badRequests++;
        this.logger.trace({ hex: this.buffer.toString("hex") }, "bad or unsupported frame: resynchronising");
        this.buffer = this.buffer.subarray(1);
        continue;
      }
      this.buffer = this.buffer.subarray(READ_REQUEST_BYTES);
      const request = {
        unitId: frame[0] ?? 0,
        fn: fn === 4 ? ("input" as const) : ("holding" as const),
        address: frame.readUInt16BE(2),
        count: frame.readUInt16BE(4),
      };
      this.counters.requests++;
      this.queue = this.queue
        .then(() => this.transact(request, arrivalMs))
        .catch((error: unknown) => {
          this.logger.warn({ err: String(error) }, "simulator RTU transaction failed");
        });
    }
  }

  private async transact(
    request: { unitId: number; fn: RegisterFn; address: number; count: number },
    arrivalMs: number,
  ): Promise<void> {
    const { unitId, fn, address, count } = request;
    // Unit 0 is broadcast: slaves never answer it (spec §2.1).
    const outcome: ServeOutcome = unitId === 0 ? { kind: "silent" } : this.serve(unitId, fn, address, count);
    if (outcome.kind === "silent") return;
    const fault = this.faultOf(unitId);
    if (fault?.kind === "noAnswer") return;
    const fnCode = fn === "input" ? 4 : 3;
    let frame: Buffer;
    if (fault?.kind === "exception") frame = withCrc([unitId, fnCode | 0x80, fault.exceptionCode]);
    else if (outcome.kind === "exception") frame = withCrc([unitId, fnCode | 0x80, outcome.exceptionCode]);
    else {
      const body = [unitId, fnCode, outcome.words.length * 2];
      for (const word of outcome.words) body.push(word >>> 8, word & 0xff);
      frame = withCrc(body);
    }
    if (fault?.kind === "crcError") {
      frame[frame.length - 1] = (frame[frame.length - 1] ?? 0) ^ 0x5a;
    } else if (fault?.kind === "garbage") {
      frame = Buffer.from(Array.from({ length: readResponseBytes(count) }, (_, i) => (i * 37 + 0x5b) & 0xff));
    }
    const extraMs = fault?.kind === "slow" ? fault.extraDelayMs : 0;
    let sendAtMs = performance.now() + this.turnaroundMs + extraMs;
    if (this.emulate) {
      const tChar = charTimeMs(this.line);
      // The pty delivered the request at once; on the wire it took 8 characters, starting
      // no earlier than the end of the previous frame's trailing silence.
      const requestEndMs = Math.max(arrivalMs, this.busyUntilMs) + READ_REQUEST_BYTES * tChar;
      sendAtMs = requestEndMs + t35Ms(this.line) + this.turnaroundMs + extraMs + frame.length * tChar;
      this.busyUntilMs = sendAtMs + t35Ms(this.line);
    }
    await sleepUntil(sendAtMs);
    if (this.closed || this.port === undefined) return;
    this.port.write(frame);
    this.counters.answers++;
    this.logger.trace({ unitId, hex: frame.toString("hex") }, "simulator RTU answer");
  }
}

/**
 * Sleeps until performance.now() reaches `targetMs`: a timer for the bulk, then a short
 * setImmediate loop for the last millisecond, because timers fire up to ~1 ms late and
 * at 38400 baud a character takes 0.29 ms.
 */
async function sleepUntil(targetMs: number): Promise<void> {
  const coarseMs = targetMs - performance.now() - 1;
  if (coarseMs > 0) await new Promise((resolve) => setTimeout(resolve, coarseMs));
  while (performance.now() < targetMs) await new Promise((resolve) => setImmediate(resolve));
}
