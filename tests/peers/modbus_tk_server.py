"""A second independent Modbus TCP peer for cryowatch's tests: modbus-tk (1.1) serving
several units on one TCP server, as an RS-485-to-TCP gateway in front of a bus does.

    modbus_tk_server.py --tcp 127.0.0.1:0 --units 1,2,3,5 --manifest FILE

Each unit serves values of its own, encoded here with Python's struct module, so an
answer taken for another unit's shows up as a wrong value:

    holding 0      u16   1000 * unit + 7
    holding 1..2   f32   -196.25 + unit        (ABCD: most significant word first)
    input 0        i16   -(100 * unit + 3)
    coil 0         bool  unit is odd

A request for a unit that is not served gets no answer at all (a dead unit behind a
gateway: the client times out). Once serving, prints `ready tcp=HOST:PORT manifest=FILE`.
The manifest lists every point with its unit and the value cryowatch must record.
"""

import argparse
import json
import os
import struct
import sys
import time

from modbus_tk import defines
from modbus_tk.modbus import Databank
from modbus_tk.modbus_tcp import TcpServer


def points_of(unit: int) -> list[dict]:
    return [
        {"unit": unit, "id": f"u{unit}.hr0", "register": "holding", "address": 0, "type": "u16",
         "value": 1000 * unit + 7},
        {"unit": unit, "id": f"u{unit}.hr1", "register": "holding", "address": 1, "type": "f32",
         "value": -196.25 + unit},
        {"unit": unit, "id": f"u{unit}.ir0", "register": "input", "address": 0, "type": "i16",
         "value": -(100 * unit + 3)},
        {"unit": unit, "id": f"u{unit}.co0", "register": "coil", "address": 0, "type": "bool",
         "value": float(unit % 2)},
    ]


def serve(server: TcpServer, unit: int):
    slave = server.add_slave(unit)
    hi, lo = struct.unpack(">HH", struct.pack(">f", -196.25 + unit))
    slave.add_block("hr", defines.HOLDING_REGISTERS, 0, 3)
    slave.set_values("hr", 0, [1000 * unit + 7, hi, lo])
    slave.add_block("ir", defines.ANALOG_INPUTS, 0, 1)
    (raw,) = struct.unpack(">H", struct.pack(">h", -(100 * unit + 3)))
    slave.set_values("ir", 0, [raw])
    slave.add_block("co", defines.COILS, 0, 1)
    slave.set_values("co", 0, [unit % 2])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tcp", required=True, help="HOST:PORT to listen on (port 0: any free port)")
    ap.add_argument("--units", required=True, help="comma-separated unit ids served")
    ap.add_argument("--manifest", required=True)
    args = ap.parse_args()
    host, port = args.tcp.rsplit(":", 1)
    units = [int(u) for u in args.units.split(",")]

    server = TcpServer(port=int(port), address=host, databank=Databank(error_on_missing_slave=False))
    for u in units:
        serve(server, u)
    server.start()
    deadline = time.monotonic() + 10
    while server._sock is None:  # bound by the server's own thread
        if time.monotonic() > deadline:
            sys.exit("modbus-tk did not bind")
        time.sleep(0.01)
    bound = server._sock.getsockname()
    endpoint = f"{bound[0]}:{bound[1]}"
    tmp = args.manifest + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"tcp": endpoint, "units": units, "points": [p for u in units for p in points_of(u)]}, f)
    os.replace(tmp, args.manifest)
    print(f"ready tcp={endpoint} manifest={args.manifest}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
