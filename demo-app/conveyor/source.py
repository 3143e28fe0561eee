# An I/O source for trying the conveyor pair by hand (docs/PROGRAM.md, "Deploying"):
# one frame every 10 ms to both nodes of configs/conveyor-a.toml and conveyor-b.toml.
import os, socket, struct, time

def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF

session = int.from_bytes(os.urandom(2), "little") or 1   # new at every start
nodes = [("127.0.0.1", 7331), ("127.0.0.1", 7332)]
out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
number = 0
while True:
    number += 1
    # bits: 1 start, 2 stop, 4 guard closed, 8 part sensor
    bits = 4 | (1 if number <= 100 else 0) | (8 if number % 50 < 25 else 0)
    head = b"TL\x01\x01" + struct.pack("<HHQ", 1, session, number)
    datagram = head + bytes([bits]) + struct.pack("<I", crc32c(head + bytes([bits])))
    for node in nodes:
        out.sendto(datagram, node)
    time.sleep(0.01)
