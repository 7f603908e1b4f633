"""A local stand-in for Twilio's Messages API, enough for the notification tests.

    twilio_server.py --dir DIR --account-sid AC... --auth-token TOKEN [--port 0]

Serves
  POST /2010-04-01/Accounts/{AccountSid}/Messages.json   (form: To, From, Body)
  GET  /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json
with HTTP basic auth (AccountSid, AuthToken), answering like Twilio does: 201 with a
message resource, 400/401/404/429/500 with Twilio's error document
{"code", "message", "more_info", "status"}.

Every POST is appended to DIR/messages.jsonl: {"to", "from", "body", "sid",
"http_status", "mode", "authorization_ok"}.

The behaviour is read from DIR/mode before every request:
  normal          201 queued; read-back gives "delivered"
  error500        500, code 20500
  ratelimit       429 with Retry-After: 7, code 20429
  reject:CODE     400 with that code (21211 invalid To, 21610 unsubscribed, ...)
  undelivered     201 queued; read-back gives "undelivered" with error_code 30005

Prints "ready PORT" on stdout once it listens.
"""
import argparse
import base64
import datetime
import json
import pathlib
import secrets
import ssl
import threading
import urllib.parse
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ERRORS = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "Internal Server Error",
    21211: "The 'To' number {to} is not a valid phone number.",
    21602: "Message body is required.",
    21603: "The 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
    30005: "Unknown destination handset",
}

LOCK = threading.Lock()
MESSAGES = {}  # sid -> message resource


def error_doc(status, code, extra_headers=(), **fmt):
    """Twilio's error document: (status, document, extra headers)."""
    doc = {
        "code": code,
        "message": ERRORS.get(code, "Error").format(**fmt),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return status, doc, extra_headers


def now_rfc2822():
    return format_datetime(datetime.datetime.now(datetime.timezone.utc))


class Handler(BaseHTTPRequestHandler):
    server_version = "FakeTwilio/1.0"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # keep stderr for real problems
        pass

    # -- helpers -------------------------------------------------------------
    def mode(self):
        try:
            text = (self.server.dir / "mode").read_text().strip()
        except FileNotFoundError:
            return "normal"
        return text or "normal"

    def authorized(self):
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except Exception:
            return False
        return user == self.server.account_sid and password == self.server.auth_token

    def answer(self, status, doc, extra_headers=()):
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra_headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def error(self, status, code, extra_headers=(), **fmt):
        self.answer(*error_doc(status, code, extra_headers, **fmt))

    def record(self, entry):
        with LOCK, open(self.server.dir / "messages.jsonl", "a") as f:
            f.write(json.dumps(entry) + "\n")

    def route(self):
        """(account_sid, message_sid or None) for a Messages URL, else None."""
        parts = urllib.parse.urlsplit(self.path).path.split("/")
        # ['', '2010-04-01', 'Accounts', AC, 'Messages.json'] or [..., 'Messages', 'SM.json']
        if len(parts) == 5 and parts[1:3] == ["2010-04-01", "Accounts"] and parts[4] == "Messages.json":
            return parts[3], None
        if (
            len(parts) == 6
            and parts[1:3] == ["2010-04-01", "Accounts"]
            and parts[4] == "Messages"
            and parts[5].endswith(".json")
        ):
            return parts[3], parts[5][: -len(".json")]
        return None

    # -- verbs ---------------------------------------------------------------
    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8", "replace")
        form = {k: v[0] for k, v in urllib.parse.parse_qs(raw, keep_blank_values=True).items()}
        to, frm, body = form.get("To", ""), form.get("From", ""), form.get("Body", "")
        mode = self.mode()
        auth_ok = self.authorized()
        entry = {"to": to, "from": frm, "body": body, "sid": None, "mode": mode,
                 "authorization_ok": auth_ok,
                 "content_type": self.headers.get("Content-Type", "")}
        status, doc, headers = self.create(entry, mode, auth_ok)
        # Recorded before answering: once the client has the answer, the record exists.
        entry["http_status"] = status
        self.record(entry)
        self.answer(status, doc, headers)

    def create(self, entry, mode, auth_ok):
        """(status, document, extra headers) for a message POST."""
        route = self.route()
        to, frm, body = entry["to"], entry["from"], entry["body"]
        if route is None or route[1] is not None:
            return error_doc(404, 20404)
        if not auth_ok:
            return error_doc(401, 20003, [("WWW-Authenticate", 'Basic realm="Twilio API"')])
        if route[0] != self.server.account_sid:
            return error_doc(404, 20404)
        if mode == "error500":
            return error_doc(500, 20500)
        if mode == "ratelimit":
            return error_doc(429, 20429, [("Retry-After", "7")])
        if mode.startswith("reject:"):
            return error_doc(400, int(mode.split(":", 1)[1]), to=to)
        if not to:
            return error_doc(400, 21604)
        if not frm:
            return error_doc(400, 21603)
        if not body:
            return error_doc(400, 21602)

        sid = "SM" + secrets.token_hex(16)
        created = now_rfc2822()
        resource = {
            "account_sid": self.server.account_sid,
            "api_version": "2010-04-01",
            "body": body,
            "date_created": created,
            "date_sent": None,
            "date_updated": created,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": frm,
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {
                "media": f"/2010-04-01/Accounts/{self.server.account_sid}/Messages/{sid}/Media.json"
            },
            "to": to,
            "uri": f"/2010-04-01/Accounts/{self.server.account_sid}/Messages/{sid}.json",
        }
        with LOCK:
            MESSAGES[sid] = {"resource": resource, "fate": mode}
        entry["sid"] = sid
        return 201, resource, ()

    def do_GET(self):
        route = self.route()
        if route is None or route[1] is None:
            return self.error(404, 20404)
        if not self.authorized():
            return self.error(401, 20003)
        with LOCK:
            found = MESSAGES.get(route[1])
        if found is None or route[0] != self.server.account_sid:
            return self.error(404, 20404)
        resource = dict(found["resource"])
        resource["date_updated"] = now_rfc2822()
        if found["fate"] == "undelivered":
            resource.update(status="undelivered", error_code=30005, error_message=ERRORS[30005])
        else:
            resource.update(status="delivered", date_sent=resource["date_created"])
        self.answer(200, resource)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--account-sid", required=True)
    p.add_argument("--auth-token", required=True)
    p.add_argument("--certfile", help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--keyfile", help="the certificate's private key (PEM)")
    args = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    if args.certfile:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.certfile, args.keyfile)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    server.dir = pathlib.Path(args.dir)
    server.dir.mkdir(parents=True, exist_ok=True)
    server.account_sid = args.account_sid
    server.auth_token = args.auth_token
    print(f"ready {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
