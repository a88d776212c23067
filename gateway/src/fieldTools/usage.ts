/** The field tools' lines of the CLI usage (here so that printing it loads no Modbus code). */
export const FIELD_TOOLS_USAGE = `  probe          read one meter once and print every value with its unit:
                 probe --port /dev/ttyUSB0 --baud 9600 [--parity none] --unit 3 --profile sdm630
  scan           list the unit ids that answer:  scan --port /dev/ttyUSB0 --baud 9600 --units 1-247
                 --port takes a serial device, tcp://host:502 (Modbus TCP) or rtu+tcp://host:4001
                 (RTU frames through an RS-485/Ethernet converter); also --data-bits 8 --stop-bits 1
                 --timeout-ms (probe 1000, scan 200)`;
