"""XMPP clients against presenced with a real client (slixmpp from Debian):
every SASL mechanism over STARTTLS and direct TLS, bad credentials, the roster
with pushes to every resource, the subscription handshake between users on
different shards, presence broadcast and probes after reconnect, routing by
priority, restart keeping rosters and pending subscriptions, and bad input
that ends one stream while others carry on."""
import asyncio
import os
import socket
import ssl
import subprocess

import harness
import xmpp_client as xc
from harness import Node

PRESENCECTL = os.path.join(harness.BUILD, "presencectl")


def ctl(node, *args, stdin=None):
    out = subprocess.run([PRESENCECTL, "--admin", "127.0.0.1:%d" % node.admin_port] + list(args),
                         input=stdin, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def add_user(node, name, password=None):
    ctl(node, "user", "add", "%s@localhost" % name, stdin=(password or "pw-" + name) + "\n")


def home_shard(node, name):
    out = ctl(node, "user", "show", "%s@localhost" % name)
    return int(out.split("shard ")[1])


def users_on_two_shards(node):
    """Creates users until two live on different shards; returns their names."""
    names = []
    for i in range(40):
        name = "user%d" % i
        add_user(node, name)
        names.append(name)
        shards = {home_shard(node, n): n for n in names}
        if len(shards) >= 2:
            return shards[0], shards[1]
    raise AssertionError("every user landed on one shard")


def both_ways(node, a, b):
    ctl(node, "roster", "add", "%s@localhost" % a, "%s@localhost" % b, "--subscription", "both")
    ctl(node, "roster", "add", "%s@localhost" % b, "%s@localhost" % a, "--subscription", "both")


class Session:
    """One asyncio loop for the clients of a test."""

    def __init__(self, node):
        self.node = node
        self.loop = asyncio.new_event_loop()
        self.clients = []

    def login(self, name, resource="r", mech=None, direct_tls=False, password=None, **kw):
        c = xc.run(self.loop, xc.connect(self.loop, "%s@localhost/%s" % (name, resource),
                                         password or "pw-" + name,
                                         self.node.xmpps_port if direct_tls else
                                         self.node.xmpp_port,
                                         mech=mech, direct_tls=direct_tls, **kw))
        self.clients.append(c)
        return c

    def wait(self, queue, match=lambda _x: True, timeout=10):
        return xc.run(self.loop, xc.next_event(queue, timeout=timeout, match=match),
                      timeout=timeout + 5)

    def settle(self, seconds=0.3):
        self.loop.run_until_complete(asyncio.sleep(seconds))

    def close(self):
        for c in self.clients:
            c.disconnect()
        self.settle(0.3)
        # The loop is left open: slixmpp's filter tasks end with the process.


def test_sasl_mechanisms_and_tls():
    node = Node().wait_ready()
    s = Session(node)
    try:
        add_user(node, "alice")
        for mech in ("SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"):
            c = s.login("alice", resource=mech, mech=mech)
            assert c.failed is None, (mech, c.failed)
            assert c.is_connected()
        c = s.login("alice", resource="direct", direct_tls=True)
        assert c.failed is None
        wrong = s.login("alice", resource="x", password="nope", mech="SCRAM-SHA-256")
        assert wrong.failed is not None
        ghost = s.login("ghost", resource="x", mech="SCRAM-SHA-1")
        assert ghost.failed is not None
        plain_wrong = s.login("alice", resource="y", password="nope", mech="PLAIN")
        assert plain_wrong.failed is not None
    finally:
        s.close()
        node.stop()
        node.cleanup()


def raw_stream(port, data, read_for=1.0):
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(data)
    sock.settimeout(read_for)
    out = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            out += chunk
    except socket.timeout:
        pass
    sock.close()
    return out


HEADER = (b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
          b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")


def test_negotiation_rules_and_bad_input():
    node = Node().wait_ready()
    s = Session(node)
    try:
        add_user(node, "carol")
        bystander = s.login("carol")
        port = node.xmpp_port
        # Without TLS: STARTTLS is required and nothing can authenticate.
        out = raw_stream(port, HEADER)
        assert b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>" in out, out
        assert b"<mechanism>" not in out, out
        out = raw_stream(port, HEADER + b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                         b"mechanism='PLAIN'>AGNhcm9sAHB3LWNhcm9s</auth>")
        assert b"<encryption-required/>" in out, out
        # Stanzas before authentication.
        out = raw_stream(port, HEADER + b"<message to='carol@localhost'><body>x</body></message>")
        assert b"<not-authorized" in out and b"</stream:stream>" in out, out
        # Malformed XML, a DTD (billion laughs), an unknown host, a huge stanza.
        out = raw_stream(port, HEADER + b"<a><b></a>")
        assert b"<not-well-formed" in out, out
        laughs = (b"<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
                  b"<!ENTITY lol2 '&lol;&lol;&lol;&lol;'>]><stream:stream to='localhost' "
                  b"version='1.0' xmlns='jabber:client' "
                  b"xmlns:stream='http://etherx.jabber.org/streams'>&lol2;")
        out = raw_stream(port, laughs)
        assert b"<restricted-xml" in out, out
        out = raw_stream(port, HEADER.replace(b"to='localhost'", b"to='elsewhere.example'"))
        assert b"<host-unknown" in out, out
        out = raw_stream(port, HEADER + b"<message><body>" + b"x" * 70000 + b"</body></message>")
        assert b"<policy-violation" in out, out
        # The other session carried on through all of it.
        bystander.send_message(mto="carol@localhost/r", mbody="still here", mtype="chat")
        m = s.wait(bystander.messages)
        assert m["body"] == "still here"
        assert node.proc.poll() is None
    finally:
        s.close()
        node.stop()
        node.cleanup()


def test_roster_pushes_to_every_resource():
    node = Node().wait_ready()
    s = Session(node)
    try:
        add_user(node, "dave")
        add_user(node, "erin")
        one = s.login("dave", resource="one")
        two = s.login("dave", resource="two")
        pushes = asyncio.Queue()
        two.add_event_handler("roster_update", lambda iq: pushes.put_nowait(iq))
        xc.run(s.loop, one.update_roster("erin@localhost", name="Erin", groups=["Work"]))
        push = s.wait(pushes)
        item = push["roster"]["items"]["erin@localhost"]
        assert item["name"] == "Erin" and item["groups"] == ["Work"], item
        # A roster fetch shows it (an unchanged version answers empty, XEP-0237,
        # so look at the client's copy it keeps up to date).
        xc.run(s.loop, one.get_roster())
        assert one.client_roster["erin@localhost"]["name"] == "Erin"
        fresh = s.login("dave", resource="three", get_roster=False)
        iq = xc.run(s.loop, fresh.get_roster())
        assert "erin@localhost" in iq["roster"]["items"], iq
        xc.run(s.loop, one.del_roster_item("erin@localhost"))
        push = s.wait(pushes, match=lambda iq: iq["roster"]["items"].get(
            "erin@localhost", {}).get("subscription") == "remove")
        xc.run(s.loop, two.get_roster())
        assert "erin@localhost" not in two.client_roster
    finally:
        s.close()
        node.stop()
        node.cleanup()


def test_subscription_handshake_across_shards_and_presence():
    node = Node(shards=2).wait_ready()
    s = Session(node)
    try:
        a, b = users_on_two_shards(node)
        ca = s.login(a)
        cb = s.login(b)
        ca.send_presence_subscription(pto="%s@localhost" % b)
        req = s.wait(cb.subscriptions, match=lambda p: p["type"] == "subscribe")
        assert req["from"].bare == "%s@localhost" % a
        cb.send_presence(pto="%s@localhost" % a, ptype="subscribed")
        s.wait(ca.subscriptions, match=lambda p: p["type"] == "subscribed")
        # b's presence now reaches a (granted "from" sends current presence).
        p = s.wait(ca.presences, match=lambda p: p["from"].bare == "%s@localhost" % b)
        assert p["type"] == "available", p
        cb.send_presence_subscription(pto="%s@localhost" % a)
        s.wait(ca.subscriptions, match=lambda p: p["type"] == "subscribe")
        ca.send_presence(pto="%s@localhost" % b, ptype="subscribed")
        s.wait(cb.presences, match=lambda p: p["from"].bare == "%s@localhost" % a)
        xc.run(s.loop, ca.get_roster())
        assert ca.client_roster["%s@localhost" % b]["subscription"] == "both"
        # A change of presence is broadcast; a disconnect is unavailable.
        cb.send_presence(pshow="away", pstatus="lunch")
        p = s.wait(ca.presences, match=lambda p: p["show"] == "away")
        assert p["status"] == "lunch"
        cb.disconnect()
        p = s.wait(ca.presences, match=lambda p: p["type"] == "unavailable")
        assert p["from"].bare == "%s@localhost" % b
        # Probes after reconnect: a logs in again and learns b's presence.
        cb2 = s.login(b, resource="again")
        s.wait(ca.presences, match=lambda p: p["from"].resource == "again")
        ca.disconnect()
        ca2 = s.login(a, resource="back")
        p = s.wait(ca2.presences, match=lambda p: p["from"].bare == "%s@localhost" % b)
        assert p["type"] == "available", p
        assert cb2.is_connected()
        # A login accepted by the other shard moves to the home shard; the
        # kernel picks the accepting shard, so try until one lands elsewhere.
        before = node.metric_sum("connection_handoffs_out_total")
        for i in range(20):
            extra = s.login(a, resource="extra%d" % i, send_presence=False)
            if node.metric_sum("connection_handoffs_out_total") > before:
                break
        assert node.metric_sum("connection_handoffs_in_total") > before
        extra.send_message(mto="%s@localhost/again" % b, mbody="after the move", mtype="chat")
        assert s.wait(cb2.messages)["body"] == "after the move"
    finally:
        s.close()
        node.stop()
        node.cleanup()


def test_routing_by_priority_and_directed_presence():
    node = Node().wait_ready()
    s = Session(node)
    try:
        add_user(node, "frank")
        add_user(node, "grace")
        both_ways(node, "frank", "grace")
        low = s.login("grace", resource="low", send_presence=False)
        high = s.login("grace", resource="high", send_presence=False)
        low.send_presence(ppriority=1)
        high.send_presence(ppriority=5)
        f = s.login("frank")
        s.settle()
        f.send_message(mto="grace@localhost", mbody="to the bare JID", mtype="chat")
        m = s.wait(high.messages)
        assert m["body"] == "to the bare JID"
        f.send_message(mto="grace@localhost/low", mbody="to low", mtype="chat")
        m = s.wait(low.messages)
        assert m["body"] == "to low" and m["from"] == "frank@localhost/r"
        s.settle()
        assert low.messages.empty(), "the lower priority resource got the bare message"
        # Directed presence to someone without a subscription.
        add_user(node, "heidi")
        h = s.login("heidi")
        f.send_presence(pto="heidi@localhost/r", pstatus="hello heidi")
        p = s.wait(h.presences, match=lambda p: p["from"].bare == "frank@localhost")
        assert p["status"] == "hello heidi"
    finally:
        s.close()
        node.stop()
        node.cleanup()


def test_offline_messages_and_unknown_users():
    node = Node().wait_ready()
    s = Session(node)
    try:
        add_user(node, "kim")
        add_user(node, "leo")
        k = s.login("kim")
        errors = asyncio.Queue()
        k.add_event_handler("message_error", lambda m: errors.put_nowait(m))
        for i in range(3):
            k.send_message(mto="leo@localhost", mbody="while you were out %d" % i, mtype="chat")
        k.send_message(mto="leo@localhost", mbody="a headline is not kept", mtype="headline")
        k.send_message(mto="nobody@localhost", mbody="hello?", mtype="chat")
        err = s.wait(errors)
        assert err["from"].bare == "nobody@localhost"
        assert err["error"]["condition"] == "service-unavailable", err
        s.settle(0.5)
        assert node.metric_sum("xmpp_offline_stored_total") == 3
        leo = s.login("leo")
        bodies = [s.wait(leo.messages)["body"] for _ in range(3)]
        assert bodies == ["while you were out %d" % i for i in range(3)], bodies
        s.settle(0.5)
        assert leo.messages.empty()
        assert node.metric_sum("xmpp_offline_delivered_total") == 3
        # Delivered means gone: a second login gets nothing again.
        again = s.login("leo", resource="second")
        s.settle(0.5)
        assert again.messages.empty()
        text = node.metrics()
        assert node.metric_sum("xmpp_logins_total", text) >= 3
        assert node.metric_sum("xmpp_stanzas_received_total", text, 'kind="message"') >= 5
        assert node.metric_sum("xmpp_sessions", text) == 3
    finally:
        s.close()
        node.stop()
        node.cleanup()


def test_restart_keeps_rosters_and_pending_subscriptions():
    node = Node().wait_ready()
    data_dir = node.data_dir
    s = Session(node)
    try:
        add_user(node, "ivan")
        add_user(node, "judy")
        ci = s.login("ivan")
        xc.run(s.loop, ci.update_roster("judy@localhost", name="Judy"))
        ci.send_presence_subscription(pto="judy@localhost")     # judy is offline
        s.settle(0.5)
        s.close()
        rc, _ = node.stop()
        assert rc == 0
        again = Node(data_dir=data_dir).wait_ready()
        s2 = Session(again)
        try:
            cj = s2.login("judy")
            req = s2.wait(cj.subscriptions, match=lambda p: p["type"] == "subscribe")
            assert req["from"].bare == "ivan@localhost"
            ci = s2.login("ivan", get_roster=False)
            iq = xc.run(s2.loop, ci.get_roster())
            item = iq["roster"]["items"]["judy@localhost"]
            assert item["name"] == "Judy" and item["ask"] == "subscribe", item
        finally:
            s2.close()
            again.stop()
            again.cleanup()
    finally:
        node.cleanup()


if __name__ == "__main__":
    harness.run([test_sasl_mechanisms_and_tls, test_negotiation_rules_and_bad_input,
                 test_roster_pushes_to_every_resource,
                 test_subscription_handshake_across_shards_and_presence,
                 test_routing_by_priority_and_directed_presence,
                 test_offline_messages_and_unknown_users,
                 test_restart_keeps_rosters_and_pending_subscriptions])
