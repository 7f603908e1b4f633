#!/usr/bin/env python3
"""A Modbus TCP server that lies: the unit id of each request picks one misbehaviour.

Unit 200 answers honestly (input registers 0-1 hold 21.5 as an ABCD float); units 1..N
each misbehave in their own way (see LIES). A poller must turn every lie into a
`comm_error` (or, for a value no probe can read, a `sensor_fault`) and never a good
reading, without crashing or blocking the honest unit.

    modbus_liar.py PORT          # listens on 127.0.0.1:PORT; prints "ready" when it does
    modbus_liar.py --list        # the lies, one per line: "UNIT NAME"
"""

import asyncio
import os
import struct
import sys

HONEST = 200
GOOD = struct.pack(">f", 21.5)


def frame(tid, unit, pdu, pid=0, length=None):
    if length is None:
        length = len(pdu) + 1
    return struct.pack(">HHHB", tid, pid, length, unit) + pdu


def registers(fc, data, count=None):
    return bytes([fc, len(data) if count is None else count]) + data


# (name, answer(tid, unit, fc, request_pdu, state) -> list of (delay_s, bytes) or "close")
LIES = [
    ("silent", lambda t, u, f, p, s: []),
    ("closes at once", lambda t, u, f, p, s: "close"),
    ("closes mid-frame", lambda t, u, f, p, s: [(0, frame(t, u, registers(f, GOOD))[:9]), (0, "close")]),
    ("wrong transaction id", lambda t, u, f, p, s: [(0, frame((t + 7) & 0xFFFF, u, registers(f, GOOD)))]),
    ("wrong protocol id", lambda t, u, f, p, s: [(0, frame(t, u, registers(f, GOOD), pid=1))]),
    ("wrong unit id", lambda t, u, f, p, s: [(0, frame(t, (u + 1) & 0xFF, registers(f, GOOD)))]),
    ("wrong function code", lambda t, u, f, p, s: [(0, frame(t, u, registers(3 if f != 3 else 4, GOOD)))]),
    ("exception 1 illegal function", lambda t, u, f, p, s: [(0, frame(t, u, bytes([f | 0x80, 1])))]),
    ("exception 2 illegal address", lambda t, u, f, p, s: [(0, frame(t, u, bytes([f | 0x80, 2])))]),
    ("exception 3 illegal value", lambda t, u, f, p, s: [(0, frame(t, u, bytes([f | 0x80, 3])))]),
    ("exception 4 device failure", lambda t, u, f, p, s: [(0, frame(t, u, bytes([f | 0x80, 4])))]),
    ("exception 5 acknowledge", lambda t, u, f, p, s: [(0, frame(t, u, bytes([f | 0x80, 5])))]),
    ("exception 6 busy", lambda t, u, f, p, s: [(0, frame(t, u, bytes([f | 0x80, 6])))]),
    ("exception 10 gateway path", lambda t, u, f, p, s: [(0, frame(t, u, bytes([f | 0x80, 0x0A])))]),
    ("exception 11 gateway target", lambda t, u, f, p, s: [(0, frame(t, u, bytes([f | 0x80, 0x0B])))]),
    ("exception code 0", lambda t, u, f, p, s: [(0, frame(t, u, bytes([f | 0x80, 0])))]),
    ("exception code 255", lambda t, u, f, p, s: [(0, frame(t, u, bytes([f | 0x80, 0xFF])))]),
    ("exception without its code", lambda t, u, f, p, s: [(0, frame(t, u, bytes([f | 0x80])))]),
    ("byte count too small", lambda t, u, f, p, s: [(0, frame(t, u, registers(f, GOOD[:2])))]),
    ("byte count claims more", lambda t, u, f, p, s: [(0, frame(t, u, registers(f, GOOD, count=8)))]),
    ("odd byte count", lambda t, u, f, p, s: [(0, frame(t, u, registers(f, GOOD[:3])))]),
    ("one register for two", lambda t, u, f, p, s: [(0, frame(t, u, registers(f, GOOD[:2])))]),
    ("three registers for two", lambda t, u, f, p, s: [(0, frame(t, u, registers(f, GOOD + b"\x00\x01")))]),
    ("length field too small", lambda t, u, f, p, s: [(0, frame(t, u, registers(f, GOOD), length=3))]),
    ("length field too large", lambda t, u, f, p, s: [(0, frame(t, u, registers(f, GOOD), length=200))]),
    ("length field zero", lambda t, u, f, p, s: [(0, frame(t, u, registers(f, GOOD), length=0))]),
    ("length 65535 and a flood", lambda t, u, f, p, s: [(0, frame(t, u, registers(f, GOOD), length=65535) + os.urandom(4000))]),
    ("header only", lambda t, u, f, p, s: [(0, struct.pack(">HHHB", t, 0, 6, u))]),
    ("garbage", lambda t, u, f, p, s: [(0, os.urandom(23))]),
    ("answers twice", lambda t, u, f, p, s: [(0, frame(t, u, registers(f, GOOD))), (0, frame(t, u, registers(f, struct.pack(">f", 99.0))))]),
    ("answers after the timeout", lambda t, u, f, p, s: [(1.5, frame(t, u, registers(f, GOOD)))]),
    ("one byte at a time, slowly", lambda t, u, f, p, s: [(0.15, bytes([b])) for b in frame(t, u, registers(f, GOOD))]),
    ("replays the previous answer", lambda t, u, f, p, s: [(0, s.get("last") or frame((t - 1) & 0xFFFF, u, registers(f, GOOD)))]),
    ("NaN", lambda t, u, f, p, s: [(0, frame(t, u, registers(f, struct.pack(">f", float("nan")))))]),
    ("infinity", lambda t, u, f, p, s: [(0, frame(t, u, registers(f, struct.pack(">f", float("inf")))))]),
    ("1e38 degrees", lambda t, u, f, p, s: [(0, frame(t, u, registers(f, struct.pack(">f", 1e38))))]),
]


async def serve(reader, writer):
    state = {}
    try:
        while True:
            head = await reader.readexactly(7)
            tid, pid, length, unit = struct.unpack(">HHHB", head)
            pdu = await reader.readexactly(max(length - 1, 0))
            fc = pdu[0] if pdu else 0
            if unit == HONEST:
                answer = [(0, frame(tid, unit, registers(fc, GOOD)))]
            elif 1 <= unit <= len(LIES):
                answer = LIES[unit - 1][1](tid, unit, fc, pdu, state)
                state["last"] = frame(tid, unit, registers(fc, GOOD))
            else:
                answer = [(0, frame(tid, unit, bytes([fc | 0x80, 0x0B])))]
            if answer == "close":
                break
            for delay, data in answer:
                if data == "close":
                    raise ConnectionResetError
                if delay:
                    await asyncio.sleep(delay)
                writer.write(data)
                await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, OSError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def main(port):
    server = await asyncio.start_server(serve, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if sys.argv[1:] == ["--list"]:
        for i, (name, _) in enumerate(LIES, start=1):
            print(i, name)
    else:
        asyncio.run(main(int(sys.argv[1])))
