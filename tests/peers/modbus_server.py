"""An independent Modbus peer for cryowatch's integration tests (pymodbus 3.16).

Serves one device over Modbus TCP or RTU with pymodbus' SimDevice/SimData simulator
and writes a JSON manifest describing every point it serves: where it lives
(register kind, address, type, byte order, scale, offset, fault values) and what
cryowatch must record for it (quality and value). Values are encoded here, with
Python's struct module or pymodbus' own DataType encoders, never with cryowatch's
decoder, so a decoding mistake on either side shows up as a mismatch.

    modbus_server.py --tcp 127.0.0.1:0 --manifest FILE [--units 1,2,3]
    modbus_server.py --rtu /tmp/x/ttyA --manifest FILE [--baud 9600] [--unit 1]

With --units, the TCP server serves the same map as each of those unit ids (as a
gateway in front of a bus of identical devices does) and stays silent for any other
unit, like a gateway whose unit does not answer.

Once serving, prints one line on stdout and flushes it:

    ready tcp=127.0.0.1:40123 manifest=FILE      (or: ready rtu=/tmp/x/ttyA ...)

Point ids in the manifest:
- `hr.<type>.<order>` / `ir.<type>.<order>`: every type (u16 i16 u32 i32 u64 i64 f32
  f64) in every byte order (abcd cdab badc dcba), holding and input registers, each
  with a different value;
- `co.<addr>` / `di.<addr>`: coils and discrete inputs with a known bit pattern;
- `hr.scale.*`, `ir.scale.*`, `hr.fault.*`, ...: scale/offset and fault sentinels;
- `gap.*`: points next to (or on) unmapped addresses; a read touching an unmapped
  address gets exception 2 (IllegalDataAddress), so the `expect` of a point on an
  unmapped address is `comm_error`.

Over RTU a request for another unit id gets no answer at all (ignore_missing_devices),
as on a shared RS-485 bus.
"""

import argparse
import asyncio
import json
import logging
import math
import os
import struct
import sys

from pymodbus import FramerType
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator.simdata import SimData
from pymodbus.simulator.simdevice import SimDevice
from pymodbus.simulator.simutils import DataType

TYPES = ["u16", "i16", "u32", "i32", "u64", "i64", "f32", "f64"]
ORDERS = ["ABCD", "CDAB", "BADC", "DCBA"]
STRUCT = {"u16": "H", "i16": "h", "u32": "I", "i32": "i", "u64": "Q", "i64": "q", "f32": "f", "f64": "d"}
# pymodbus' own big-endian (ABCD) encoders, used for the ABCD points as a second,
# independent encoder.
NATIVE = {
    "u16": DataType.UINT16,
    "i16": DataType.INT16,
    "u32": DataType.UINT32,
    "i32": DataType.INT32,
    "u64": DataType.UINT64,
    "i64": DataType.INT64,
    "f32": DataType.FLOAT32,
    "f64": DataType.FLOAT64,
}

# Relative tolerance for f32 values: the daemon may store the f32's shortest decimal
# form rather than its exact binary value.
F32_TOLERANCE = 2.0**-23
# Relative tolerance for scaled values: the daemon rounds away binary noise.
SCALE_TOLERANCE = 1e-9


def words(data: bytes) -> list[int]:
    """Bytes as 16-bit registers, each big-endian on the wire."""
    return [(data[i] << 8) | data[i + 1] for i in range(0, len(data), 2)]


def encode(value, typ: str, order: str) -> list[int]:
    """Registers a device using byte order `order` serves for `value`.

    ABCD: most significant word first, most significant byte first in each word.
    DCBA: fully little-endian (least significant byte first).
    BADC: most significant word first, bytes swapped within each word.
    CDAB: least significant word first, bytes in each word most significant first.
    """
    big = struct.pack(">" + STRUCT[typ], value)
    little = struct.pack("<" + STRUCT[typ], value)
    if order == "ABCD":
        return words(big)
    if order == "DCBA":
        return words(little)
    if order == "BADC":
        return [((w & 0xFF) << 8) | (w >> 8) for w in words(big)]
    if order == "CDAB":
        return list(reversed(words(big)))
    raise ValueError(order)


def as_f32(v: float) -> float:
    """The f32 nearest `v`, as a Python float."""
    return struct.unpack(">f", struct.pack(">f", v))[0]


def value_for(kind: str, typ: str, k: int):
    """A different value for every (register kind, type, byte order index k), with
    distinct bytes so any byte-order mix-up changes the value."""
    ir = 1 if kind == "input" else 0
    # Unsigned input registers have the top bit set, so reading them as signed fails.
    if typ == "u16":
        return 0x1234 + 0x0101 * k + 0x8000 * ir
    if typ == "i16":
        return -(0x1234 + 0x0101 * k + 0x2000 * ir)
    if typ == "u32":
        return 0x12345678 + 0x01010101 * k + 0x80000000 * ir
    if typ == "i32":
        return -(0x12345678 + 0x01010101 * k + 0x20000000 * ir)
    # 64-bit integers must survive a trip through f64 exactly: below 2^53, or (top bit
    # set) a multiple of 2^11.
    if typ == "u64":
        if ir:
            return 0x8012_3456_789A_B800 + 0x0001_0101_0101_0800 * k
        return 0x0012_3456_789A_BCDE + 0x0001_0101_0101_0101 * k
    if typ == "i64":
        return -(0x0012_3456_789A_BCDE + 0x0001_0101_0101_0101 * k + 0x0008_0000_0000_0000 * ir)
    if typ == "f32":
        return -196.123 + 1.5 * k + 10.0 * ir
    if typ == "f64":
        return -196.123456789012 + 1.25 * k + 10.0 * ir
    raise ValueError(typ)


class Layout:
    """The SimData blocks of each register kind, and the manifest entries."""

    def __init__(self):
        self.blocks: dict[str, list[SimData]] = {"coil": [], "discrete": [], "holding": [], "input": []}
        self.points: list[dict] = []

    def point(self, pid, register, address, typ, *, order=None, scale=None, offset=None,
              fault_values=None, quality="good", value=None, tolerance=0.0):
        entry = {
            "id": pid,
            "register": register,
            "address": address,
            "type": typ,
            "byte_order": order,
            "scale": scale,
            "offset": offset,
            "fault_values": fault_values or [],
            "expect": {"quality": quality, "value": value, "tolerance": tolerance},
        }
        self.points.append(entry)

    def regs(self, register, address, regs):
        self.blocks[register].append(SimData(address, values=list(regs), datatype=DataType.REGISTERS))

    def typed(self, pid, register, address, typ, order, raw, *, scale=None, offset=None,
              fault_values=None, quality="good", native=False):
        """Serves `raw` as `typ` in `order` at `address` and records the expectation."""
        if native:
            # pymodbus encodes it (big-endian, i.e. ABCD).
            self.blocks[register].append(SimData(address, values=raw, datatype=NATIVE[typ]))
        else:
            self.regs(register, address, encode(raw, typ, order))
        tolerance = 0.0
        if typ == "f32":
            raw = as_f32(raw)
            tolerance = F32_TOLERANCE
        value = raw
        if isinstance(raw, int):
            assert float(raw) == raw, f"{pid}: {raw} is not exact in f64"
        if scale is not None or offset is not None:
            value = raw * (1.0 if scale is None else scale) + (0.0 if offset is None else offset)
            tolerance = max(tolerance, SCALE_TOLERANCE)
        if quality != "good" or (isinstance(value, float) and not math.isfinite(value)):
            value = None
        self.point(pid, register, address, typ, order=order, scale=scale, offset=offset,
                   fault_values=fault_values, quality=quality, value=value, tolerance=tolerance)


def build() -> Layout:
    lay = Layout()
    for register, prefix in (("holding", "hr"), ("input", "ir")):
        addr = 0
        for k, order in enumerate(ORDERS):
            for typ in TYPES:
                raw = value_for(register, typ, k)
                pid = f"{prefix}.{typ}.{order.lower()}"
                lay.typed(pid, register, addr, typ, order, raw, native=(order == "ABCD"))
                addr += struct.calcsize(">" + STRUCT[typ]) // 2
        assert addr == 80, addr

    # Scale, offset and fault sentinels (holding 80..87, input 80..84).
    lay.typed("hr.scale.i16", "holding", 80, "i16", "ABCD", -1905, scale=0.1)
    lay.typed("hr.scale_offset.u16", "holding", 81, "u16", "ABCD", 1234, scale=0.01, offset=-273.15)
    lay.typed("hr.offset.f32.cdab", "holding", 82, "f32", "CDAB", 77.25, offset=-273.15)
    lay.typed("hr.fault.i16", "holding", 84, "i16", "ABCD", -32768, scale=0.1,
              fault_values=[-32768.0], quality="sensor_fault")
    lay.typed("hr.near_fault.i16", "holding", 85, "i16", "ABCD", -32767, fault_values=[-32768.0])
    lay.typed("hr.fault.f32", "holding", 86, "f32", "ABCD", -9999.0,
              fault_values=[-9999.0], quality="sensor_fault")
    lay.typed("ir.nan.f32", "input", 80, "f32", "CDAB", float("nan"), quality="sensor_fault")
    lay.typed("ir.scale.i32.dcba", "input", 82, "i32", "DCBA", -123456, scale=0.001, offset=0.5)
    lay.typed("ir.fault.u16", "input", 84, "u16", "BADC", 65535, fault_values=[65535.0],
              quality="sensor_fault")

    # Bits: 16 coils and 16 discrete inputs with known patterns; coil 16 onwards and
    # discrete input 16 onwards are unmapped.
    coils = [1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 1, 0, 0, 0, 0, 1]
    discrete = [0, 1, 1, 0, 1, 0, 0, 1, 0, 0, 1, 1, 1, 0, 1, 1]
    lay.blocks["coil"].append(SimData(0, values=[bool(b) for b in coils], datatype=DataType.BITS))
    lay.blocks["discrete"].append(SimData(0, values=[bool(b) for b in discrete], datatype=DataType.BITS))
    for a in (0, 1, 2, 3, 4, 9, 15):
        lay.point(f"co.{a}", "coil", a, "bool", value=float(coils[a]))
    for a in (0, 1, 2, 3, 4, 12, 13):
        lay.point(f"di.{a}", "discrete", a, "bool", value=float(discrete[a]))

    # Unmapped neighbours. Holding 96..99 and 102..103 are mapped, 88..95, 100..101 and
    # 104 onwards are not; input 120..121 is mapped, 122 is not (end of the map).
    lay.regs("holding", 96, [11, 22, 33, 44])
    lay.regs("holding", 102, [55, 66])
    lay.point("gap.hr.98", "holding", 98, "u16", value=33.0)
    lay.point("gap.hr.99", "holding", 99, "u16", value=44.0)
    lay.point("gap.hr.100", "holding", 100, "u32", quality="comm_error")
    lay.point("gap.hr.102", "holding", 102, "u16", value=55.0)
    lay.regs("input", 120, [7, 0xFFF9])
    lay.point("gap.ir.120", "input", 120, "u16", value=7.0)
    lay.point("gap.ir.121", "input", 121, "i16", value=-7.0)
    lay.point("gap.ir.122", "input", 122, "u16", quality="comm_error")
    lay.point("gap.co.14", "coil", 14, "bool", value=float(coils[14]))
    lay.point("gap.co.15", "coil", 15, "bool", value=float(coils[15]))
    lay.point("gap.co.16", "coil", 16, "bool", quality="comm_error")
    # Alone in its request: the exception answers the only point there is.
    lay.point("gap.hr.200", "holding", 200, "i16", quality="comm_error")
    return lay


def stay_quiet_for_other_units(server):
    """pymodbus 3.16's simulator core answers a request for a unit id it does not
    simulate with exception 4 (DeviceFailure: it raises KeyError) even with
    ignore_missing_devices=True. On a shared RS-485 bus a missing unit must not answer
    at all, so raise the exception the request handler expects for that case."""
    core = server.context
    find = core._SimCore__get_device  # name-mangled private method of SimCore

    def get_device(device_id):
        if device_id not in core.devices:
            raise NoSuchIdException(f"no unit {device_id} here")
        return find(device_id)

    core._SimCore__get_device = get_device


def write_manifest(path: str, unit: int, endpoint: dict, points: list[dict]):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"unit": unit, **endpoint, "points": points}, f, indent=1, allow_nan=False)
    os.replace(tmp, path)


async def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tcp", help="HOST:PORT to listen on (port 0: any free port)")
    ap.add_argument("--rtu", help="serial device to serve RTU on")
    ap.add_argument("--baud", type=int, default=9600)
    ap.add_argument("--unit", type=int, default=1)
    ap.add_argument("--units", help="TCP: comma-separated unit ids served (default: --unit)")
    ap.add_argument("--manifest", required=True)
    args = ap.parse_args()
    if bool(args.tcp) == bool(args.rtu):
        ap.error("give exactly one of --tcp and --rtu")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    lay = build()
    simdata = (lay.blocks["coil"], lay.blocks["discrete"], lay.blocks["holding"], lay.blocks["input"])
    device = SimDevice(id=args.unit, simdata=simdata)
    if args.tcp:
        host, port = args.tcp.rsplit(":", 1)
        if args.units:
            units = [int(u) for u in args.units.split(",")]
            devices = [SimDevice(id=u, simdata=simdata) for u in units]
            server = ModbusTcpServer(devices, address=(host, int(port)), ignore_missing_devices=True)
            stay_quiet_for_other_units(server)
        else:
            server = ModbusTcpServer(device, address=(host, int(port)))
        await server.serve_forever(background=True)
        bound = server.transport.sockets[0].getsockname()
        endpoint = {"tcp": f"{bound[0]}:{bound[1]}"}
    else:
        server = ModbusSerialServer(
            device,
            framer=FramerType.RTU,
            port=args.rtu,
            baudrate=args.baud,
            bytesize=8,
            parity="N",
            stopbits=1,
            ignore_missing_devices=True,
        )
        stay_quiet_for_other_units(server)
        await server.serve_forever(background=True)
        endpoint = {"rtu": args.rtu}
    write_manifest(args.manifest, args.unit, endpoint, lay.points)
    key, val = next(iter(endpoint.items()))
    print(f"ready {key}={val} manifest={args.manifest}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
