"""Read latency, direct to a node and through a router (tools/router/tests/pymodbus_router.rs,
docs/BENCHMARKS.md).

    python3 read_latency.py READS UNIT NODE_PORT ROUTER_PORT

READS reads of registers 0..67 (the status block and the counter's tags) with pymodbus,
one at a time, first straight to the node, then through the router to the same pair;
prints one JSON line: per path, the median, 99th percentile and largest latency in µs.
"""
import json
import sys
import time

from pymodbus.client import ModbusTcpClient


def measure(port, unit, reads):
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=5, retries=0)
    if not client.connect():
        raise SystemExit(f"cannot connect to {port}")
    took = []
    for _ in range(reads):
        t0 = time.perf_counter_ns()
        r = client.read_holding_registers(0, count=68, device_id=unit)
        took.append((time.perf_counter_ns() - t0) // 1000)
        if r.isError():
            raise SystemExit(f"read failed on {port}: {r}")
    client.close()
    took.sort()
    return {"p50_us": took[len(took) // 2], "p99_us": took[len(took) * 99 // 100], "max_us": took[-1]}


def main():
    reads, unit, node, router = (int(a) for a in sys.argv[1:5])
    print(json.dumps({"reads": reads, "direct": measure(node, unit, reads), "router": measure(router, unit, reads)}))


if __name__ == "__main__":
    main()
