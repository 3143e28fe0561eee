"""A simulated tank behind a Modbus/TCP server from another project (pymodbus 3.x), for
the gateway's test (tools/gateway/tests/pymodbus_tank.rs) and for trying the gateway by
hand (configs/gateway-tank.toml).

The plant, advanced in 10 ms ticks of wall time at each request:
  level (µm) += 10_000 per tick while the inflow coil is on, -= 5_000 per tick, within
  0..=2_000_000.
The registers (unit 1; any unit id is answered alike):
  input registers 0-1  level in µm, u32 high word first
  input registers 2-3  0
  discrete input 0     high-level switch (level >= 1_800_000)
  coil 0               inflow valve (written by the gateway)
  holding register 1   the level the program echoes, in mm (written by the gateway)
Every write request is appended to --writes as one JSON line:
  {"fc": 5, "address": 0, "values": [1]}
and the file is flushed at once, so the test reads what the server applied.
"""
import argparse
import asyncio
import json
import time

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import SimData, SimDevice
from pymodbus.simulator.simutils import DataType

TICK_S = 0.01


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--writes", help="append each write request here, one JSON line")
    parser.add_argument("--level", type=int, default=1_000_000, help="the level at start, µm")
    args = parser.parse_args()
    writes = open(args.writes, "a", encoding="utf-8") if args.writes else None
    plant = {"level": args.level, "inflow": False, "ticks": 0, "start": time.monotonic()}

    def advance():
        ticks = int((time.monotonic() - plant["start"]) / TICK_S)
        for _ in range(min(ticks - plant["ticks"], 100_000)):
            level = plant["level"] + (10_000 if plant["inflow"] else 0) - 5_000
            plant["level"] = max(0, min(2_000_000, level))
        plant["ticks"] = ticks

    async def action(function_code, start_address, address, count, registers, set_values):
        advance()
        if set_values is not None:
            values = [int(v) for v in set_values]
            if writes:
                writes.write(json.dumps({"fc": function_code, "address": address, "values": values}) + "\n")
                writes.flush()
            if function_code in (5, 15) and address <= 0 < address + len(values):
                plant["inflow"] = bool(values[0 - address])
        elif function_code == 4:
            level = plant["level"]
            registers[0 - start_address] = level >> 16
            registers[1 - start_address] = level & 0xFFFF
        elif function_code == 2:
            registers[0] = 1 if plant["level"] >= 1_800_000 else 0
        return None

    device = SimDevice(
        id=0,
        simdata=(
            [SimData(0, count=16, values=False, datatype=DataType.BITS)],
            [SimData(0, count=16, values=False, datatype=DataType.BITS)],
            [SimData(0, count=16, values=0, datatype=DataType.REGISTERS)],
            [SimData(0, count=16, values=0, datatype=DataType.REGISTERS)],
        ),
        action=action,
    )

    async def serve():
        server = ModbusTcpServer(device, address=("127.0.0.1", args.port))
        await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
