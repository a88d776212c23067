#!/usr/bin/python3
"""An independent Modbus slave for interop tests: pymodbus (Debian python3-pymodbus 3.0)
serving float32 input registers, high word first (the SDM630 layout), on one unit id,
over RTU on a serial device (e.g. a socat pty) or over Modbus TCP.

    pymodbusFloatSlave.py rtu /dev/pts/7 9600 '{"unit": 1, "input": {"0": 230.1, "72": 12345.6}}'
    pymodbusFloatSlave.py tcp 127.0.0.1:5020  '{"unit": 1, "input": {...}}'

Addresses are wire (PDU) addresses; prints "ready" once the context is built.
Run with Debian's /usr/bin/python3 (another python3 on PATH may lack pymodbus).
"""
import asyncio
import json
import struct
import sys

from pymodbus.datastore import ModbusSequentialDataBlock, ModbusServerContext, ModbusSlaveContext
from pymodbus.server import StartAsyncSerialServer, StartAsyncTcpServer
from pymodbus.transaction import ModbusRtuFramer, ModbusSocketFramer


def context_for(spec):
    words = [0] * 512
    for address, value in spec["input"].items():
        high, low = struct.unpack(">HH", struct.pack(">f", float(value)))
        words[int(address)] = high
        words[int(address) + 1] = low
    # zero_mode: register address N is block index N (pymodbus otherwise shifts by one).
    slave = ModbusSlaveContext(
        ir=ModbusSequentialDataBlock(0, words),
        hr=ModbusSequentialDataBlock(0, [0] * 512),
        zero_mode=True,
    )
    return ModbusServerContext(slaves={int(spec["unit"]): slave}, single=False)


async def main():
    mode = sys.argv[1]
    if mode == "rtu":
        _, _, device, baud, spec = sys.argv
        context = context_for(json.loads(spec))
        print("ready", flush=True)
        await StartAsyncSerialServer(
            context=context, framer=ModbusRtuFramer, port=device, baudrate=int(baud), timeout=0.005
        )
    elif mode == "tcp":
        _, _, address, spec = sys.argv
        host, port = address.rsplit(":", 1)
        context = context_for(json.loads(spec))
        print("ready", flush=True)
        await StartAsyncTcpServer(context=context, address=(host, int(port)), framer=ModbusSocketFramer)
    else:
        sys.exit(f"unknown mode {mode}: rtu or tcp")


asyncio.run(main())
