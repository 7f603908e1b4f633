"""SMTP peer for the notification tests, built on aiosmtpd.

Every accepted message is written atomically to OUTDIR as N.eml (raw, with the
envelope in X-Envelope-* headers, like testbed/smtp_sink.py) and N.json (envelope,
decoded headers and the decoded text body, parsed by Python's email package).

    smtp_server.py --dir OUTDIR [--port 0] [--auth USER:PASSWORD]
                   [--tls-cert CERT --tls-key KEY [--implicit-tls]]

--auth        offer AUTH PLAIN/LOGIN over plain text and require it before MAIL
--tls-cert    offer STARTTLS with this certificate (or, with --implicit-tls, speak
              TLS from the first byte)

Failure modes are read from OUTDIR/mode before every RCPT and DATA: the file holds
"STAGE REPLY", e.g. "rcpt 451 4.3.0 Try again later" or "data 550 5.1.1 Mailbox
unavailable"; "normal" (or no file) accepts everything.

Prints "ready PORT" on stdout once it listens.
"""
import argparse
import asyncio
import email
import email.policy
import itertools
import json
import pathlib
import signal
import ssl

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--auth")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--implicit-tls", action="store_true")
    return p.parse_args()


class Handler:
    def __init__(self, out: pathlib.Path):
        self.out = out
        # Continue numbering after files left by an earlier run on the same directory.
        start = 1 + max((int(f.stem) for f in out.glob("*.json") if f.stem.isdigit()), default=0)
        self.seq = itertools.count(start)

    def failure(self, stage):
        try:
            text = (self.out / "mode").read_text().strip()
        except FileNotFoundError:
            return None
        if not text or text == "normal":
            return None
        want, _, reply = text.partition(" ")
        return reply if want == stage else None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.failure("rcpt")
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        reply = self.failure("data")
        if reply:
            return reply
        n = next(self.seq)
        raw = envelope.original_content or b""
        hdr = f"X-Envelope-From: {envelope.mail_from}\nX-Envelope-To: {', '.join(envelope.rcpt_tos)}\n"
        tmp = self.out / f".{n}.eml.tmp"
        tmp.write_bytes(hdr.encode() + raw)
        tmp.rename(self.out / f"{n}.eml")
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        part = msg.get_body(preferencelist=("plain",))
        record = {
            "n": n,
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "authenticated": bool(session.authenticated),
            "headers": [[k, str(v)] for k, v in msg.items()],
            "content_type": msg.get_content_type(),
            "body": part.get_content().replace("\r\n", "\n") if part is not None else "",
        }
        tmp = self.out / f".{n}.json.tmp"
        tmp.write_text(json.dumps(record))
        tmp.rename(self.out / f"{n}.json")
        return f"250 2.0.0 Ok: queued as {n}"


def make_authenticator(user, password):
    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        # handled=False: aiosmtpd answers 535 itself when the credentials are wrong.
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    return authenticator


async def main():
    args = parse_args()
    out = pathlib.Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    handler = Handler(out)
    loop = asyncio.get_running_loop()

    kwargs = {"hostname": "smtp.test.invalid", "loop": loop}
    if args.auth:
        user, _, password = args.auth.partition(":")
        kwargs.update(
            authenticator=make_authenticator(user, password),
            auth_required=True,
            auth_require_tls=False,
        )
    server_ssl = None
    if args.tls_cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        if args.implicit_tls:
            server_ssl = ctx
        else:
            kwargs["tls_context"] = ctx

    server = await loop.create_server(
        lambda: SMTP(handler, **kwargs), "127.0.0.1", args.port, ssl=server_ssl
    )
    port = server.sockets[0].getsockname()[1]
    print(f"ready {port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
