"""A strict InfluxDB 2.x line-protocol receiver for cryowatch's tests.

VictoriaMetrics accepts lines an InfluxDB 2.x server refuses (it answers 204 for a
malformed line). This HTTP proxy parses every line of each `/api/v2/write` (and
`/write`) body by the InfluxDB 2.x line-protocol rules, answers a batch holding any bad
line with 400 and InfluxDB's JSON error body `{"code":"invalid","message":"..."}`, and
forwards good batches unchanged to the upstream server (VictoriaMetrics). Any other
request is forwarded as it is.

    strict_line_protocol.py --upstream http://127.0.0.1:8428 [--listen 127.0.0.1:0]

Prints `ready PORT` once listening. Each refused batch is logged on stderr.

The rules (docs.influxdata.com, InfluxDB v2, "Line protocol"):
    measurement[,tag_key=tag_value...] field_key=field_value[,...] [timestamp]
- measurement: not empty; `,` and space must be escaped (`\\,` `\\ `);
- tag keys, tag values, field keys: not empty; `,`, `=` and space must be escaped;
- a backslash followed by another backslash is one backslash; followed by any other
  character it is a literal backslash (so `a\\` before a delimiter escapes it);
- field values: float (`1`, `-1.5`, `1e3`), integer (`1i`), unsigned (`1u`), boolean
  (`t T true True TRUE f F false False FALSE`) or a double-quoted string in which `"`
  must be escaped (`\\"`) and `\\\\` is a backslash;
- at least one field; no raw newline inside a line (a newline ends the line);
- timestamp: optional integer within [-9223372036854775806, 9223372036854775806].
"""

import argparse
import json
import re
import sys
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FLOAT = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
INTEGER = re.compile(r"^[+-]?\d+i$")
UNSIGNED = re.compile(r"^\d+u$")
BOOLEAN = {"t", "T", "true", "True", "TRUE", "f", "F", "false", "False", "FALSE"}
TIME_MIN, TIME_MAX = -9223372036854775806, 9223372036854775806


class Bad(Exception):
    pass


def name(line: str, i: int, stops: str, what: str) -> tuple[str, int]:
    """Reads an escaped name from `i` up to an unescaped character of `stops` (or the
    end); returns it unescaped and the index of the stop."""
    out = []
    while i < len(line) and line[i] not in stops:
        ch = line[i]
        if ch == "\\" and i + 1 < len(line) and (line[i + 1] in stops or line[i + 1] == "\\"):
            out.append(line[i + 1])
            i += 2
            continue
        if ch == '"' and what == "field key":
            raise Bad(f"unexpected '\"' in {what}")
        out.append(ch)
        i += 1
    if not out:
        raise Bad(f"missing {what} at column {i + 1}")
    return "".join(out), i


def field_value(line: str, i: int) -> tuple[object, int]:
    if i < len(line) and line[i] == '"':
        out = []
        i += 1
        while True:
            if i >= len(line):
                raise Bad("unterminated string field value")
            ch = line[i]
            if ch == "\\" and i + 1 < len(line) and line[i + 1] in '"\\':
                out.append(line[i + 1])
                i += 2
            elif ch == '"':
                return "".join(out), i + 1
            else:
                out.append(ch)
                i += 1
    j = i
    while j < len(line) and line[j] not in ", ":
        j += 1
    raw = line[i:j]
    if INTEGER.match(raw) or UNSIGNED.match(raw):
        value = int(raw[:-1])
        if not -(2**63) <= value < 2**64:
            raise Bad(f"integer field value out of range: {raw}")
        return value, j
    if FLOAT.match(raw):
        return float(raw), j
    if raw in BOOLEAN:
        return raw[0] in "tT", j
    raise Bad(f"invalid field value {raw!r}")


def parse(line: str) -> dict:
    """One line as {measurement, tags, fields, time}; raises Bad with the reason."""
    measurement, i = name(line, 0, ", ", "measurement")
    tags = {}
    while i < len(line) and line[i] == ",":
        key, i = name(line, i + 1, ",= ", "tag key")
        if i >= len(line) or line[i] != "=":
            raise Bad(f"missing tag value for {key!r}")
        value, i = name(line, i + 1, ",= ", "tag value")
        tags[key] = value
    if i >= len(line) or line[i] != " ":
        raise Bad("missing fields")
    fields = {}
    i += 1
    while True:
        key, i = name(line, i, ",= ", "field key")
        if i >= len(line) or line[i] != "=":
            raise Bad(f"missing field value for {key!r}")
        value, i = field_value(line, i + 1)
        fields[key] = value
        if i < len(line) and line[i] == ",":
            i += 1
            continue
        break
    time = None
    if i < len(line):
        if line[i] != " ":
            raise Bad(f"unexpected {line[i]!r} after the fields")
        raw = line[i + 1:]
        if not re.match(r"^-?\d+$", raw):
            raise Bad(f"invalid timestamp {raw!r}")
        time = int(raw)
        if not TIME_MIN <= time <= TIME_MAX:
            raise Bad(f"timestamp out of range: {raw}")
    return {"measurement": measurement, "tags": tags, "fields": fields, "time": time}


def check(body: str) -> str | None:
    """The first problem of a write body, or None when every line parses."""
    for n, line in enumerate(body.split("\n"), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            parse(line)
        except Bad as e:
            return f"unable to parse line {n} {line!r}: {e}"
    return None


class Proxy(BaseHTTPRequestHandler):
    upstream = ""

    def log_message(self, fmt, *args):
        pass

    def answer(self, status: int, body: bytes, content_type: str = "application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def forward(self, body: bytes | None):
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")}
        req = urllib.request.Request(self.upstream + self.path, data=body, headers=headers, method=self.command)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                self.answer(r.status, r.read(), r.headers.get("Content-Type", "text/plain"))
        except urllib.error.HTTPError as e:
            self.answer(e.code, e.read(), e.headers.get("Content-Type", "text/plain"))

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        path = self.path.split("?", 1)[0]
        if path in ("/api/v2/write", "/write"):
            try:
                problem = check(body.decode("utf-8"))
            except UnicodeDecodeError as e:
                problem = f"body is not UTF-8: {e}"
            if problem:
                print(f"refused: {problem}", file=sys.stderr, flush=True)
                self.answer(400, json.dumps({"code": "invalid", "message": problem}).encode())
                return
        self.forward(body)

    def do_GET(self):
        self.forward(None)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--listen", default="127.0.0.1:0")
    args = ap.parse_args()
    host, port = args.listen.rsplit(":", 1)
    Proxy.upstream = args.upstream.rstrip("/")
    server = ThreadingHTTPServer((host, int(port)), Proxy)
    print(f"ready {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
