"""A small synchronous wrapper around slixmpp (Debian's python3-slixmpp) for
the integration tests: connect, wait for events, send, and disconnect, each
with a timeout, on one asyncio loop per client."""
import asyncio
import ssl

import slixmpp


def _ssl_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE     # the node's generated self-signed certificate
    return ctx


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password, mech=None, plugins=()):
        slixmpp.ClientXMPP.__init__(self, jid, password, sasl_mech=mech)
        self.ssl_context = _ssl_context()
        self.register_plugin("xep_0199")
        for p in plugins:
            self.register_plugin(p)
        self.messages = asyncio.Queue()
        self.presences = asyncio.Queue()
        self.subscriptions = asyncio.Queue()
        self.failed = None
        self.add_event_handler("message", lambda m: self.messages.put_nowait(m))
        # slixmpp names presence events after <show> ("presence_away"), so
        # take them all and sort them here.
        self.add_event_handler("presence", self._presence)
        self.add_event_handler("failed_auth", self._failed)
        self.add_event_handler("stream_error", self._failed)
        # Roster handling stays manual: the tests decide about subscriptions.
        self.auto_authorize = None
        self.auto_subscribe = False

    def _presence(self, p):
        if p["type"] in ("subscribe", "subscribed", "unsubscribe", "unsubscribed"):
            self.subscriptions.put_nowait(p)
        elif p["type"] != "error":
            self.presences.put_nowait(p)

    def _failed(self, what):
        self.failed = what


def run(loop, coro, timeout=15):
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


async def connect(loop, jid, password, port, mech=None, direct_tls=False, starttls=True,
                  send_presence=True, get_roster=True, plugins=()):
    asyncio.set_event_loop(loop)
    c = Client(jid, password, mech=mech, plugins=plugins)
    session = asyncio.Event()
    c.add_event_handler("session_start", lambda _e: session.set())
    c.add_event_handler("failed_auth", lambda _e: session.set())
    c.connect(("127.0.0.1", port), use_ssl=direct_tls, force_starttls=starttls and not direct_tls,
              disable_starttls=not starttls)
    await session.wait()
    if c.failed is None:
        if get_roster:
            await c.get_roster()
        if send_presence:
            c.send_presence()
    return c


async def next_event(queue, timeout=10, match=lambda _x: True):
    deadline = asyncio.get_event_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_event_loop().time()
        if left <= 0:
            raise AssertionError("no matching event within %ss" % timeout)
        item = await asyncio.wait_for(queue.get(), left)
        if match(item):
            return item
