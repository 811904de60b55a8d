#!/usr/bin/env python3
"""xmpp_hold.py - logs N XMPP users in (SASL PLAIN, bind, roster get, initial
presence), holds their streams open and idle, and reports the server's memory
per connected user.

    xmpp_hold.py --port P --users N --pid PID [--tls] [--hold S] [--window W]

Users u0..u<N-1>@localhost with password "presbench" (presbench xmpp
provision). With --tls the streams are direct TLS (XEP-0368, the node's
[xmpp] tls_listen); without, plain TCP (the node needs require_tls = false and
plain_without_tls = true). Everything a client receives is read and dropped,
so nothing waits in socket buffers. Prints one line of JSON: the server's VmRSS
before the first connection and after all users were connected, quiet and idle
for --hold seconds, and the growth per user.

The point is the difference between TLS and plain streams under the same
client: presbench, the load generator for everything else, speaks plain TCP
and SCRAM only.
"""
import argparse
import asyncio
import base64
import json
import ssl
import sys
import time

HEADER = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
          b"xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>")


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for %d" % pid)


class Client:
    def __init__(self, args, i, ctx):
        self.args, self.i, self.ctx = args, i, ctx
        self.buf = b""

    async def until(self, marker):
        while marker not in self.buf:
            if b"<failure" in self.buf or b"<stream:error" in self.buf:
                raise RuntimeError("u%d: %r" % (self.i, self.buf[-200:]))
            data = await asyncio.wait_for(self.reader.read(65536), 60)
            if not data:
                raise RuntimeError("u%d: closed by the server" % self.i)
            self.buf += data
        self.buf = self.buf[self.buf.index(marker) + len(marker):]

    async def login(self):
        self.reader, self.writer = await asyncio.open_connection(
            self.args.host, self.args.port, ssl=self.ctx,
            server_hostname="localhost" if self.ctx else None)
        w = self.writer
        w.write(HEADER)
        await self.until(b"</stream:features>")
        cred = base64.b64encode(b"\0u%d\0presbench" % self.i)
        w.write(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + cred +
                b"</auth>")
        await self.until(b"<success")
        w.write(HEADER)
        await self.until(b"</stream:features>")
        w.write(b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                b"<resource>h</resource></bind></iq>")
        await self.until(b"</bind></iq>")
        w.write(b"<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>")
        await self.until(b"</query></iq>")
        w.write(b"<presence/>")
        await w.drain()

    async def drain_forever(self):
        while True:
            data = await self.reader.read(65536)
            if not data:
                return


async def main(args):
    ctx = None
    if args.tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    rss_before = rss_kib(args.pid)
    window = asyncio.Semaphore(args.window)
    clients = [Client(args, i, ctx) for i in range(args.users)]
    readers = []

    async def one(c):
        async with window:
            await c.login()
        readers.append(asyncio.create_task(c.drain_forever()))

    t0 = time.monotonic()
    await asyncio.gather(*(one(c) for c in clients))
    login_s = time.monotonic() - t0
    # Initial presence answers come and go; then the allocator's decay.
    await asyncio.sleep(args.hold)
    rss_idle = rss_kib(args.pid)
    print(json.dumps({
        "users": args.users, "tls": bool(args.tls), "login_s": round(login_s, 2),
        "rss_before_kib": rss_before, "rss_idle_kib": rss_idle,
        "bytes_per_user": round((rss_idle - rss_before) * 1024 / args.users),
    }))
    sys.stdout.flush()
    for c in clients:
        c.writer.write(b"</stream:stream>")
    for r in readers:
        r.cancel()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--users", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--hold", type=float, default=10)
    ap.add_argument("--window", type=int, default=200)
    asyncio.run(main(ap.parse_args()))
