import type { EventEmitter } from "node:events";
import { EdgemeterError } from "@edgemeter/shared/core";
import modbusSerial from "modbus-serial";
import type { Logger } from "pino";
import type { ModbusPort, RegisterFunction } from "./modbusPort.js";

interface ModbusSerialCommonOptions {
  /**
   * Longest wait for an answer, and for the TCP connect. modbus-serial has no default: a dead
   * meter without a timeout would stall every meter behind it on the bus.
   */
  timeoutMs: number;
  /**
   * Silence kept after each answer before the next request. On RTU the bus needs at least
   * t3.5 (spec §2.5.1.1); modbus-serial's buffered RTU port returns as soon as the frame is
   * complete, and the write of the next request takes the request's own character time,
   * so a few ms here are only needed for slow meters or converters.
   */
  interFrameGapMs: number;
  logger: Logger;
}

/** Modbus TCP, or Modbus RTU frames over TCP (`framing: "rtu"`, RS-485/Ethernet converters in transparent mode). */
export interface ModbusSerialTcpOptions extends ModbusSerialCommonOptions {
  host: string;
  port: number;
  /** "tcp" (MBAP header, default) or "rtu" (RTU frames with CRC over the socket). */
  framing?: "tcp" | "rtu";
}

/** Modbus RTU on a serial port (RS-485 adapter or HAT). */
export interface ModbusSerialRtuOptions extends ModbusSerialCommonOptions {
  /** e.g. /dev/ttyUSB0 or a /dev/serial/by-id/… path. Opened exclusively (flock): a second opener fails. */
  path: string;
  baudRate: number;
  parity: "none" | "even" | "odd";
  dataBits: 7 | 8;
  stopBits: 1 | 2;
}

export type ModbusSerialPortOptions = ModbusSerialTcpOptions | ModbusSerialRtuOptions;

function isRtu(options: ModbusSerialPortOptions): options is ModbusSerialRtuOptions {
  return "path" in options;
}

// modbus-serial is CommonJS with `module.exports.default = module.exports`: under NodeNext the
// default import is the module object for TypeScript and the class at run time; `.default`
// is the class for both.
const ModbusRTU = modbusSerial.default;
type ModbusRTU = InstanceType<typeof ModbusRTU>;

/** Exception codes after which the same request may well succeed (Modbus Application Protocol v1.1b3 §7). */
const RETRYABLE_EXCEPTIONS = new Set([5, 6, 11]);

/**
 * The ModbusPort over modbus-serial: Modbus TCP, RTU over TCP, or RTU on a serial port
 * (`connectRTUBuffered`, which reassembles frames that arrive in pieces). Requests are
 * serialised through a FIFO because modbus-serial keeps the unit id as client state
 * (`setID`): two reads in flight on one client would mix meters up, and RS-485 is
 * half-duplex anyway. A broken connection is dropped and reopened by the next request.
 */
export class ModbusSerialPort implements ModbusPort {
  private client: ModbusRTU | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly where: string;

  constructor(private readonly options: ModbusSerialPortOptions) {
    this.where = isRtu(options) ? options.path : `${options.host}:${options.port}`;
  }

  readRegisters(unitId: number, fn: RegisterFunction, address: number, count: number): Promise<number[]> {
    const run = this.queue.then(() => this.read(unitId, fn, address, count));
    // The queue only orders requests; each caller sees its own outcome.
    this.queue = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.drop();
  }

  private async read(unitId: number, fn: RegisterFunction, address: number, count: number): Promise<number[]> {
    if (this.closed) throw this.connectionError("the port is closed");
    const client = await this.open();
    const request = { unitId, fn, address, count };
    if (isRtu(this.options)) discardStaleBytes(client);
    client.setID(unitId);
    try {
      const result =
        fn === "input"
          ? await client.readInputRegisters(address, count)
          : await client.readHoldingRegisters(address, count);
      if (result.data.length !== count) {
        throw new EdgemeterError(
          "modbus.shortAnswer",
          `unit ${unitId} answered ${result.data.length} of ${count} registers`,
          {
            retryable: true,
            context: request,
          },
        );
      }
      // Checked first: the arguments (a hex copy of every answer) would be built even when trace is off.
      if (this.options.logger.isLevelEnabled("trace")) {
        this.options.logger.trace({ ...request, hex: result.buffer.toString("hex") }, "modbus answer");
      }
      return result.data;
    } catch (error) {
      throw await this.translate(error, request);
    } finally {
      if (this.options.interFrameGapMs > 0) await new Promise((r) => setTimeout(r, this.options.interFrameGapMs));
    }
  }

  private async open(): Promise<ModbusRTU> {
    if (this.client?.isOpen === true) return this.client;
    await this.drop();
    const client = new ModbusRTU();
    // modbus-serial re-emits socket errors: without a listener Node would crash the process.
    (client as unknown as EventEmitter).on("error", (error: Error) => {
      this.options.logger.debug({ where: this.where, err: error.message }, "modbus socket error");
    });
    client.setTimeout(this.options.timeoutMs);
    try {
      const options = this.options;
      if (isRtu(options)) {
        await client.connectRTUBuffered(options.path, {
          baudRate: options.baudRate,
          parity: options.parity,
          dataBits: options.dataBits,
          stopBits: options.stopBits,
          // serialport takes an exclusive flock on the device: a second gateway (or a stray
          // mbpoll) opening the same RS-485 adapter would garble both.
          lock: true,
        } as Parameters<ModbusRTU["connectRTUBuffered"]>[1]);
      } else if (options.framing === "rtu") {
        // modbus-serial calls raw RTU-over-TCP "telnet" (its TcpRTUBufferedPort speaks MBAP instead).
        await client.connectTelnet(options.host, { port: options.port });
      } else {
        await client.connectTCP(options.host, { port: options.port });
      }
    } catch (error) {
      // destroy, not close: the socket may still be half-way through connecting.
      client.destroy(() => undefined);
      throw this.connectionError(`cannot connect: ${describe(error)}`, error);
    }
    this.client = client;
    this.options.logger.debug({ where: this.where }, "modbus connection open");
    return client;
  }

  private async drop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client === undefined) return;
    await new Promise<void>((resolve) => {
      if (!client.isOpen) {
        resolve();
        return;
      }
      client.close(() => resolve());
      setTimeout(resolve, 1_000).unref();
    });
  }

  private async translate(
    error: unknown,
    request: { unitId: number; fn: RegisterFunction; address: number; count: number },
  ): Promise<EdgemeterError> {
    if (error instanceof EdgemeterError) return error;
    const fields = (typeof error === "object" && error !== null ? error : {}) as {
      errno?: unknown;
      modbusCode?: unknown;
      name?: unknown;
    };
    const what = `${request.fn} registers ${request.address}+${request.count} of unit ${request.unitId} at ${this.where}`;
    if (typeof fields.modbusCode === "number") {
      return new EdgemeterError("modbus.exception", `${what}: ${describe(error)}`, {
        cause: error,
        retryable: RETRYABLE_EXCEPTIONS.has(fields.modbusCode),
        context: { ...request, exceptionCode: fields.modbusCode },
      });
    }
    const message = describe(error);
    if (/CRC error|Data length error/.test(message)) {
      // Noise on the line or a collision: the next attempt may well get through.
      return new EdgemeterError("modbus.crc", `${what}: ${message}`, {
        cause: error,
        retryable: true,
        context: request,
      });
    }
    if (fields.errno === "ETIMEDOUT" || fields.name === "TransactionTimedOutError") {
      return new EdgemeterError("modbus.timeout", `${what}: no answer within ${this.options.timeoutMs} ms`, {
        cause: error,
        retryable: true,
        context: request,
      });
    }
    // Anything else means the connection is unusable: reopen it on the next request.
    await this.drop();
    return this.connectionError(`${what}: ${describe(error)}`, error, request);
  }

  private connectionError(message: string, cause?: unknown, context: object = {}): EdgemeterError {
    return new EdgemeterError("modbus.connection", `${this.where}: ${message}`, {
      cause,
      retryable: true,
      context: { ...context, where: this.where },
    });
  }
}

function describe(error: unknown): string {
  if (typeof error === "object" && error !== null && "message" in error) return String(error.message);
  return String(error);
}

/**
 * RTU has no transaction id: modbus-serial's buffered RTU port keeps received bytes and takes
 * the first frame whose unit, function and length match the request. On a half-duplex bus
 * nothing may arrive before our request, so whatever sits in that buffer now (garbage, the
 * tail of a garbled frame, a slow meter's answer after its timeout) is stale: drop it, or it
 * could be taken for the next answer. (A private field of modbus-serial 8.0.x, checked at
 * run time; a later version without it only loses this cleanup. The scheduler also moves on
 * to another unit id after a timeout, so a very late answer is discarded by its unit id.)
 */
function discardStaleBytes(client: unknown): void {
  const port = (client as { _port?: { _buffer?: unknown } })._port;
  if (port !== undefined && Buffer.isBuffer(port._buffer) && port._buffer.length > 0) port._buffer = Buffer.alloc(0);
}
