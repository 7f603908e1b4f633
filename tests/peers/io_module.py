"""A Modbus I/O module for cryowatch's local alarm output tests (pymodbus 3.16).

Serves, as unit 1 over Modbus TCP, 32 coils and 32 holding registers (all 0 at start;
32 discrete inputs and input registers besides, as pymodbus wants every kind)
with pymodbus' SimDevice simulator, and journals every write a client makes:

    io_module.py --tcp 127.0.0.1:0 --journal FILE

Once serving, prints one line on stdout and flushes it:

    ready tcp=127.0.0.1:40123

Each write request a client sends becomes one JSON line of FILE, flushed at once:

    {"t": 1765152000.123, "fc": 5, "kind": "coil", "address": 16, "values": [1]}

(fc 5 / 15: coils; 6 / 16: holding registers; values as 0/1 or register values).

Lines on stdin change the module's values as someone at the module would, without a
client (so they are not journalled as writes, but as `set`):

    set coil 16 0
    set holding 16 1

and each is acknowledged on stdout with `ok` once applied (or `error ...`).
"""

import argparse
import asyncio
import json
import logging
import sys
import time

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator.simdata import SimData
from pymodbus.simulator.simdevice import SimDevice
from pymodbus.simulator.simutils import DataType

UNIT = 1
COUNT = 32
WRITES = {5: "coil", 15: "coil", 6: "holding", 16: "holding"}


class Journal:
    def __init__(self, path: str):
        self.file = open(path, "a", encoding="utf-8")
        # Set while the test's own `set` is applied: not a client's write.
        self.setting = False

    def line(self, entry: dict):
        self.file.write(json.dumps(entry) + "\n")
        self.file.flush()

    async def action(self, fc, start_address, address, count, current_registers, set_values):
        if set_values is None or fc not in WRITES or self.setting:
            return None
        values = set_values if isinstance(set_values, list) else [set_values]
        self.line({
            "t": time.time(),
            "fc": fc,
            "kind": WRITES[fc],
            "address": address,
            "values": [int(v) for v in values],
        })
        return None


async def control(server, journal: Journal):
    """Applies `set KIND ADDRESS VALUE` lines from stdin."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        words = line.decode().split()
        try:
            if len(words) != 4 or words[0] != "set" or words[1] not in ("coil", "holding"):
                raise ValueError(f"expected `set coil|holding ADDRESS VALUE`, got {words}")
            kind, address, value = words[1], int(words[2]), int(words[3])
            fc, values = (5, [bool(value)]) if kind == "coil" else (6, [value])
            journal.setting = True
            try:
                failed = await server.context.async_setValues(UNIT, fc, address, values)
            finally:
                journal.setting = False
            if failed is not None:
                raise ValueError(f"refused: {failed}")
            journal.line({"t": time.time(), "set": kind, "address": address, "values": [value]})
            print("ok", flush=True)
        except ValueError as e:
            print(f"error {e}", flush=True)


async def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tcp", required=True, help="HOST:PORT to listen on (port 0: any free port)")
    ap.add_argument("--journal", required=True)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    journal = Journal(args.journal)
    coils = [SimData(0, values=[False] * COUNT, datatype=DataType.BITS)]
    inputs = [SimData(0, values=[False] * COUNT, datatype=DataType.BITS)]
    holding = [SimData(0, values=[0] * COUNT, datatype=DataType.REGISTERS)]
    registers = [SimData(0, values=[0] * COUNT, datatype=DataType.REGISTERS)]
    device = SimDevice(id=UNIT, simdata=(coils, inputs, holding, registers), action=journal.action)
    host, port = args.tcp.rsplit(":", 1)
    server = ModbusTcpServer(device, address=(host, int(port)))
    await server.serve_forever(background=True)
    bound = server.transport.sockets[0].getsockname()
    print(f"ready tcp={bound[0]}:{bound[1]}", flush=True)
    await control(server, journal)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
