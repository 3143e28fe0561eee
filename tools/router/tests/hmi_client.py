"""An HMI on pymodbus against twinloop routers (tools/router/tests/pymodbus_router.rs).

    python3 hmi_client.py STOP_FILE UNITS PORT [PORT...]

Sets its client id through each router (registers 14..15), then, until STOP_FILE
exists, goes round the routers and the units: reads the status block and the counter
program's tags (registers 0..67 in one read), and every fourth round writes 1 to the
tag `add` (register 68) of one unit, waiting for its answer. Prints one JSON line of
figures at the end: reads and read failures, the longest read outage (from a failed
read to the next good one of that unit) and the slowest read, writes acknowledged per
unit and write failures with their reasons, and per unit the range of the CPU share the
status blocks said (register 16, per mille).
"""
import json
import os
import sys
import time

from pymodbus.client import ModbusTcpClient

CLIENT_ID = 0x484D4931  # "HMI1"
TOTAL = 64
ADD = 68
CPU_SHARE = 16
READ_COUNT = 68


def main():
    stop_file, units = sys.argv[1], [int(u) for u in sys.argv[2].split(",")]
    ports = [int(p) for p in sys.argv[3:]]
    # No retries of its own: a retry with a new transaction id would be a new write. The
    # router retries with the HMI's transaction id, within its deadline (below this).
    clients = [ModbusTcpClient("127.0.0.1", port=p, timeout=30, retries=0) for p in ports]
    for c in clients:
        if not c.connect():
            raise SystemExit(f"cannot connect to a router on {c.comm_params.port}")
        r = c.write_registers(14, [CLIENT_ID >> 16, CLIENT_ID & 0xFFFF], device_id=units[0])
        if r.isError():
            raise SystemExit(f"client id refused: {r}")
        r = c.read_holding_registers(14, count=2, device_id=units[0])
        if r.isError() or r.registers != [CLIENT_ID >> 16, CLIENT_ID & 0xFFFF]:
            raise SystemExit(f"client id not read back: {r}")
    figures = {
        "reads": 0,
        "read_failures": 0,
        "longest_read_outage_ms": 0,
        "slowest_read_ms": 0,
        "slowest_write_ms": 0,
        "writes": {str(u): 0 for u in units},
        "write_failures": [],
        "last_total": {},
        "last_status": {},
        "cpu_permille": {str(u): [None, None] for u in units},
    }
    failing_since = {}
    n = 0
    while not os.path.exists(stop_file):
        n += 1
        client = clients[n % len(clients)]
        for unit in units:
            t0 = time.monotonic()
            try:
                r = client.read_holding_registers(0, count=READ_COUNT, device_id=unit)
                ok = not r.isError()
            except Exception as e:  # connection errors and timeouts
                ok, r = False, e
            t1 = time.monotonic()
            figures["reads"] += 1
            if ok:
                regs = r.registers
                if regs[0] != 0x544C:
                    raise SystemExit(f"not a twinloop status block: {regs[:16]}")
                figures["slowest_read_ms"] = max(figures["slowest_read_ms"], round((t1 - t0) * 1000))
                figures["last_total"][str(unit)] = regs[TOTAL] << 16 | regs[TOTAL + 1]
                figures["last_status"][str(unit)] = regs[2:4]
                low, high = figures["cpu_permille"][str(unit)]
                cpu = regs[CPU_SHARE]
                figures["cpu_permille"][str(unit)] = [
                    cpu if low is None else min(low, cpu),
                    cpu if high is None else max(high, cpu),
                ]
                if unit in failing_since:
                    outage = round((t1 - failing_since.pop(unit)) * 1000)
                    figures["longest_read_outage_ms"] = max(figures["longest_read_outage_ms"], outage)
            else:
                figures["read_failures"] += 1
                failing_since.setdefault(unit, t0)
        if n % 4 == 0:
            unit = units[(n // 4) % len(units)]
            t0 = time.monotonic()
            try:
                r = client.write_register(ADD, 1, device_id=unit)
                figures["slowest_write_ms"] = max(figures["slowest_write_ms"], round((time.monotonic() - t0) * 1000))
                if r.isError():
                    figures["write_failures"].append(f"unit {unit}: {r}")
                else:
                    figures["writes"][str(unit)] += 1
            except Exception as e:
                figures["write_failures"].append(f"unit {unit}: {e!r}")
    for c in clients:
        c.close()
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
