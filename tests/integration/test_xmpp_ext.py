"""The XMPP extensions clients expect, against a real presenced: carbons,
blocking, vCards and service discovery with slixmpp; stream management with
resumption, client state indication, caps passthrough, idle handling, the
stanza size bound, in-band registration and test authentication on raw
streams where the exact bytes matter."""
import asyncio
import re
import subprocess
import time

import harness
import xmpp_client as xc
from harness import Node
from test_xmpp import Session, add_user, both_ways, ctl, users_on_two_shards
from xmpp_raw import Raw

MORE = ("xep_0030", "xep_0054", "xep_0191", "xep_0280")


def test_carbons_between_devices():
    node = Node().wait_ready()
    s = Session(node)
    try:
        add_user(node, "alice")
        add_user(node, "bob")
        both_ways(node, "alice", "bob")
        phone = s.login("alice", resource="phone", plugins=MORE, send_presence=False)
        desk = s.login("alice", resource="desk", plugins=MORE, send_presence=False)
        tablet = s.login("alice", resource="tablet", plugins=MORE, send_presence=False)
        phone.send_presence(ppriority=5)
        desk.send_presence(ppriority=1)
        tablet.send_presence(ppriority=1)
        for c in (phone, desk):
            xc.run(s.loop, c.plugin["xep_0280"].enable())
        received, sent = asyncio.Queue(), asyncio.Queue()
        desk.add_event_handler("carbon_received", lambda m: received.put_nowait(m))
        desk.add_event_handler("carbon_sent", lambda m: sent.put_nowait(m))
        tablet_copies = asyncio.Queue()
        tablet.add_event_handler("carbon_received", lambda m: tablet_copies.put_nowait(m))
        bob = s.login("bob")
        s.settle()
        bob.send_message(mto="alice@localhost", mbody="hello alice", mtype="chat")
        m = s.wait(phone.messages)
        assert m["body"] == "hello alice"
        copy = s.wait(received)
        inner = copy["carbon_received"]
        assert inner["body"] == "hello alice" and inner["from"] == "bob@localhost/r", copy
        phone.send_message(mto="bob@localhost", mbody="hello bob", mtype="chat")
        assert s.wait(bob.messages)["body"] == "hello bob"
        copy = s.wait(sent)
        assert copy["carbon_sent"]["body"] == "hello bob", copy
        assert copy["carbon_sent"]["to"] == "bob@localhost"
        # <private/> is not copied; a client without carbons gets no copies.
        msg = phone.make_message(mto="bob@localhost", mbody="just here", mtype="chat")
        msg.append(__import__("slixmpp").xmlstream.ET.fromstring(
            "<private xmlns='urn:xmpp:carbons:2'/>"))
        msg.send()
        assert s.wait(bob.messages)["body"] == "just here"
        s.settle(0.5)
        assert sent.empty(), "a private message was copied"
        assert tablet_copies.empty() and tablet.messages.empty()
        assert node.metric_sum("xmpp_carbons_total") == 2
    finally:
        s.close()
        node.stop()
        node.cleanup()


def test_blocking_across_shards_and_restart():
    node = Node().wait_ready()
    data_dir = node.data_dir
    s = Session(node)
    try:
        a, b = users_on_two_shards(node)
        both_ways(node, a, b)
        ca = s.login(a, plugins=MORE)
        other = s.login(a, resource="other", plugins=MORE)
        cb = s.login(b, plugins=MORE)
        s.wait(ca.presences, match=lambda p: p["from"].bare == "%s@localhost" % b)
        s.wait(cb.presences, match=lambda p: p["from"].bare == "%s@localhost" % a)
        xc.run(s.loop, other.plugin["xep_0191"].get_blocked())   # asks for pushes
        pushes = asyncio.Queue()
        other.add_event_handler("blocked", lambda iq: pushes.put_nowait(iq))
        xc.run(s.loop, ca.plugin["xep_0191"].block("%s@localhost" % b))
        # The blocked contact sees the user go offline; the other resource is told.
        gone = s.wait(cb.presences, match=lambda p: p["from"].bare == "%s@localhost" % a
                      and p["type"] == "unavailable")
        assert gone is not None
        push = s.wait(pushes)
        assert "%s@localhost" % b in [str(j) for j in push["block"]["items"]], push
        blocked = xc.run(s.loop, ca.plugin["xep_0191"].get_blocked())
        assert [str(j) for j in blocked["blocklist"]["items"]] == ["%s@localhost" % b]
        # Nothing from the blocked user arrives; a message gets an error.
        errors = asyncio.Queue()
        cb.add_event_handler("message_error", lambda m: errors.put_nowait(m))
        cb.send_message(mto="%s@localhost" % a, mbody="can you hear me", mtype="chat")
        err = s.wait(errors)
        assert err["error"]["condition"] == "service-unavailable", err
        cb.send_presence(pstatus="changed while blocked")
        s.settle(0.5)
        assert ca.messages.empty()
        assert all(p["status"] != "changed while blocked" for p in drain(ca.presences))
        # Sending to a blocked JID is refused with the blocking error.
        mine = asyncio.Queue()
        ca.add_event_handler("message_error", lambda m: mine.put_nowait(m))
        ca.send_message(mto="%s@localhost" % b, mbody="hi", mtype="chat")
        err = s.wait(mine)
        assert err["error"]["condition"] == "not-acceptable"
        assert "urn:xmpp:blocking:errors" in str(err), err
        assert node.metric_sum("xmpp_blocked_stanzas_total") >= 2
        # Kept across a restart.
        s.close()
        assert node.stop()[0] == 0
        node2 = Node(data_dir=data_dir).wait_ready()
        s2 = Session(node2)
        try:
            ca = s2.login(a, plugins=MORE)
            blocked = xc.run(s2.loop, ca.plugin["xep_0191"].get_blocked())
            assert [str(j) for j in blocked["blocklist"]["items"]] == ["%s@localhost" % b]
            cb = s2.login(b, plugins=MORE)
            s2.settle(0.5)
            assert all(p["from"].bare != "%s@localhost" % a for p in drain(cb.presences))
            xc.run(s2.loop, ca.plugin["xep_0191"].unblock("%s@localhost" % b))
            back = s2.wait(cb.presences, match=lambda p: p["from"].bare == "%s@localhost" % a
                           and p["type"] == "available")
            assert back is not None
            cb.send_message(mto="%s@localhost" % a, mbody="welcome back", mtype="chat")
            assert s2.wait(ca.messages)["body"] == "welcome back"
        finally:
            s2.close()
            node2.stop()
            node2.cleanup()
    finally:
        node.cleanup()


def drain(queue):
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


def test_vcards_and_discovery():
    node = Node().wait_ready()
    s = Session(node)
    try:
        a, b = users_on_two_shards(node)
        ca = s.login(a, plugins=MORE)
        cb = s.login(b, plugins=MORE)
        card = ca.plugin["xep_0054"].make_vcard()
        card["FN"] = "Alice Example"
        card["NICKNAME"] = "ally"
        xc.run(s.loop, ca.plugin["xep_0054"].publish_vcard(card))
        mine = xc.run(s.loop, ca.plugin["xep_0054"].get_vcard("%s@localhost" % a))
        assert mine["vcard_temp"]["FN"] == "Alice Example", mine
        theirs = xc.run(s.loop, cb.plugin["xep_0054"].get_vcard("%s@localhost" % a))
        assert theirs["vcard_temp"]["FN"] == "Alice Example", theirs
        assert "<NICKNAME>ally</NICKNAME>" in str(theirs), theirs
        empty = xc.run(s.loop, ca.plugin["xep_0054"].get_vcard("%s@localhost" % b))
        assert empty["vcard_temp"]["FN"] == ""
        info = xc.run(s.loop, ca.plugin["xep_0030"].get_info(jid="localhost"))
        features = set(info["disco_info"]["features"])
        for f in ("urn:xmpp:carbons:2", "urn:xmpp:blocking", "vcard-temp", "urn:xmpp:ping",
                  "http://jabber.org/protocol/disco#info"):
            assert f in features, (f, features)
        items = xc.run(s.loop, ca.plugin["xep_0030"].get_items(jid="localhost"))
        assert list(items["disco_items"]["items"]) == []
        acct = xc.run(s.loop, cb.plugin["xep_0030"].get_info(jid="%s@localhost" % a))
        assert ("account", "registered", None, None) in acct["disco_info"]["identities"], acct
    finally:
        s.close()
        node.stop()
        node.cleanup()


def test_client_state_and_caps_passthrough():
    node = Node().wait_ready()
    s = Session(node)
    try:
        add_user(node, "carl")
        add_user(node, "dina")
        both_ways(node, "carl", "dina")
        d = Raw(node.xmpps_port).login("dina", "pw-dina")
        d.send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq><presence/>")
        d.read_until(r"id='r1'")
        c = s.login("carl")
        d.read_until(r"<presence[^>]*from='carl@localhost/r'")
        d.send("<inactive xmlns='urn:xmpp:csi:0'/>")
        time.sleep(0.2)
        caps = ("<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' "
                "node='https://example.org/client' ver='QgayPKawpkPSDYmwT/WM94uAlu0='/>")
        for i in range(3):
            c.send_presence(pstatus="status %d" % i)
        s.settle()      # send_raw overtakes slixmpp's queue
        c.send_raw("<presence><status>status 3</status>%s</presence>" % caps)
        s.settle(0.5)
        held = d.read_for(0.5)
        assert "status" not in held, "presence reached an inactive client: %r" % held
        # A message is not held, and what was held comes first.
        c.send_message(mto="dina@localhost", mbody="urgent", mtype="chat")
        s.settle()      # the slixmpp loop runs only when a test waits on it
        got = d.read_until(r"urgent").string
        assert "status 3" in got and got.index("status 3") < got.index("urgent"), got
        assert "status 0" not in got and "status 1" not in got, got
        assert "QgayPKawpkPSDYmwT/WM94uAlu0=" in got, "caps not passed through: %r" % got
        d.send("<active xmlns='urn:xmpp:csi:0'/>")
        c.send_presence(pstatus="live again")
        s.settle()
        d.read_until(r"live again")
        d.close()
    finally:
        s.close()
        node.stop()
        node.cleanup()


def enable_sm(raw):
    raw.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
    m = raw.read_until(r"<enabled[^>]*id='([^']+)'[^>]*/>")
    return m.group(1)


def test_stream_management_and_resumption():
    node = Node().wait_ready()
    s = Session(node)
    try:
        add_user(node, "amy")
        add_user(node, "ben")
        amy = Raw(node.xmpps_port).login("amy", "pw-amy", resource="laptop")
        sm_id = enable_sm(amy)
        amy.send("<r xmlns='urn:xmpp:sm:3'/>")
        amy.read_until(r"<a xmlns='urn:xmpp:sm:3' h='0'/>")
        amy.send("<presence/><r xmlns='urn:xmpp:sm:3'/>")
        amy.read_until(r"<a xmlns='urn:xmpp:sm:3' h='1'/>")
        ben = s.login("ben")
        for i in (1, 2):
            ben.send_message(mto="amy@localhost/laptop", mbody="m%d" % i, mtype="chat")
        s.settle()
        amy.read_until(r"m2")
        amy.kill()
        time.sleep(0.3)
        ben.send_message(mto="amy@localhost/laptop", mbody="m3", mtype="chat")
        s.settle(0.3)
        assert node.metric_sum("xmpp_sessions_detached_total") == 1
        # A new stream takes the session over, acknowledging m1 only.
        back = Raw(node.xmpps_port).login("amy", "pw-amy", bind=False)
        back.send("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='1'/>" % sm_id)
        back.read_until(r"<resumed[^>]*h='1'[^>]*/>|<resumed[^>]*/>")
        text = back.read_until(r"m3").string
        assert "m2" in text and "m1" not in text.split("<resumed")[-1], text
        back.send("<r xmlns='urn:xmpp:sm:3'/>")
        back.read_until(r"<a xmlns='urn:xmpp:sm:3' h='1'/>")
        ben.send_message(mto="amy@localhost/laptop", mbody="m4", mtype="chat")
        s.settle()
        back.read_until(r"m4")
        assert node.metric_sum("xmpp_sessions_resumed_total") == 1
        # An unknown session cannot be resumed; the stream may still bind.
        other = Raw(node.xmpps_port).login("amy", "pw-amy", bind=False)
        other.send("<resume xmlns='urn:xmpp:sm:3' previd='nope' h='0'/>")
        other.read_until(r"<failed xmlns='urn:xmpp:sm:3'><item-not-found")
        other.close()
        back.close()
    finally:
        s.close()
        node.stop()
        node.cleanup()


def test_unresumed_session_ends_and_keeps_messages():
    node = Node(config="[xmpp]\nresume_timeout_s = 1\n").wait_ready()
    s = Session(node)
    try:
        add_user(node, "cleo")
        add_user(node, "dan")
        both_ways(node, "cleo", "dan")
        dan = s.login("dan")
        cleo = Raw(node.xmpps_port).login("cleo", "pw-cleo", resource="phone")
        enable_sm(cleo)
        cleo.send("<presence/>")
        s.wait(dan.presences, match=lambda p: p["from"].bare == "cleo@localhost"
               and p["type"] == "available")
        dan.send_message(mto="cleo@localhost", mbody="never acked", mtype="chat")
        s.settle()
        cleo.read_until(r"never acked")
        cleo.kill()
        # Still online while it may be resumed, then unavailable.
        gone = s.wait(dan.presences, match=lambda p: p["from"].bare == "cleo@localhost"
                      and p["type"] == "unavailable", timeout=6)
        assert gone is not None
        again = s.login("cleo")
        m = s.wait(again.messages)
        assert m["body"] == "never acked", m
    finally:
        s.close()
        node.stop()
        node.cleanup()


def test_idle_ping_keepalive_and_timeout():
    node = Node(config="[net]\nidle_timeout_s = 1\n").wait_ready()
    try:
        add_user(node, "eve")
        quiet = Raw(node.xmpps_port).login("eve", "pw-eve", resource="quiet")
        talker = Raw(node.xmpps_port).login("eve", "pw-eve", resource="talker")
        quiet.read_until(r"<iq[^>]*id='idle-ping'[^>]*>\s*<ping xmlns='urn:xmpp:ping'/>", timeout=4)
        end = time.time() + 2.5
        while time.time() < end:
            talker.send(" ")        # whitespace keepalive (RFC 6120 §4.6.1)
            time.sleep(0.3)
        quiet.read_until(r"<connection-timeout", timeout=4)
        assert "idle-ping" not in talker.read_for(0.2)
        talker.send("<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")
        talker.read_until(r"id='p'")
        talker.close()
        assert node.metric_sum("xmpp_stream_errors_total", label_filter="connection-timeout") == 1
    finally:
        node.stop()
        node.cleanup()


def test_stanza_size_bound():
    node = Node(config="[xmpp]\nmax_stanza_bytes = 2048\n").wait_ready()
    try:
        add_user(node, "fay")
        big = Raw(node.xmpps_port).login("fay", "pw-fay", resource="big")
        small = Raw(node.xmpps_port).login("fay", "pw-fay", resource="small")
        big.send("<message to='fay@localhost/small'><body>%s</body></message>" % ("x" * 4000))
        big.read_until(r"<policy-violation")
        small.send("<message to='fay@localhost/small'><body>%s</body></message>" % ("y" * 1500))
        small.read_until(r"y{1500}")
        small.close()
    finally:
        node.stop()
        node.cleanup()


def test_in_band_registration():
    node = Node(config="[xmpp]\nregistration = true\n").wait_ready()
    s = Session(node)
    try:
        r = Raw(node.xmpps_port)
        r.send(xc_header())
        feats = r.read_until(r"</stream:features>").string
        assert "http://jabber.org/features/iq-register" in feats, feats
        r.send("<iq type='get' id='g'><query xmlns='jabber:iq:register'/></iq>")
        form = r.read_until(r"<iq[^>]*id='g'.*?</iq>").group(0)
        assert "<username/>" in form and "<password/>" in form, form
        r.send("<iq type='set' id='s'><query xmlns='jabber:iq:register'>"
               "<username>zoe</username><password>first secret</password></query></iq>")
        ok = r.read_until(r"<iq[^>]*id='s'[^>]*>").group(0)
        assert "result" in ok, ok
        r.send("<iq type='set' id='d'><query xmlns='jabber:iq:register'>"
               "<username>zoe</username><password>other</password></query></iq>")
        dup = r.read_until(r"<iq[^>]*id='d'.*?</iq>").group(0)
        assert "<conflict" in dup, dup
        r.send("<iq type='set' id='e'><query xmlns='jabber:iq:register'>"
               "<username>bad user</username><password>x</password></query></iq>")
        bad = r.read_until(r"<iq[^>]*id='e'.*?</iq>").group(0)
        assert "<not-acceptable" in bad, bad
        r.close()
        z = s.login("zoe", password="first secret", mech="SCRAM-SHA-256")
        assert z.failed is None
        zr = Raw(node.xmpps_port).login("zoe", "first secret")
        zr.send("<iq type='set' id='pw'><query xmlns='jabber:iq:register'>"
                "<username>zoe</username><password>second secret</password></query></iq>")
        ok = zr.read_until(r"<iq[^>]*id='pw'[^>]*>").group(0)
        assert "result" in ok, ok
        zr.close()
        z2 = s.login("zoe", resource="again", password="second secret", mech="SCRAM-SHA-1")
        assert z2.failed is None
        old = s.login("zoe", resource="old", password="first secret", mech="PLAIN")
        assert old.failed is not None
    finally:
        s.close()
        node.stop()
        node.cleanup()
    # Off by default: the same request before authentication ends the stream.
    node = Node().wait_ready()
    try:
        r = Raw(node.xmpps_port)
        r.send(xc_header())
        feats = r.read_until(r"</stream:features>").string
        assert "iq-register" not in feats
        r.send("<iq type='set' id='s'><query xmlns='jabber:iq:register'>"
               "<username>zed</username><password>pw</password></query></iq>")
        r.read_until(r"<not-authorized")
    finally:
        node.stop()
        node.cleanup()


def xc_header():
    from xmpp_raw import HEADER
    return HEADER


def test_test_authentication_mode():
    node = Node(config="[xmpp]\ntest_auth = true\n").wait_ready()
    s = Session(node)
    try:
        assert "test_auth is on" in node.log_text()
        c = s.login("newcomer", password="anything at all")
        assert c.failed is None, c.failed
        s.settle(0.5)
        out = ctl(node, "user", "show", "newcomer@localhost")
        assert "newcomer@localhost" in out, out
        again = s.login("newcomer", resource="two", password="another one")
        assert again.failed is None
    finally:
        s.close()
        node.stop()
        node.cleanup()
    node = Node(config="[xmpp]\ntest_auth = true\nlisten = 0.0.0.0:%d\n" % harness.free_port())
    try:
        rc = node.proc.wait(timeout=15)
        assert rc != 0
        assert "test_auth" in node.log_text() and "loopback" in node.log_text()
    finally:
        node.cleanup()


def test_stream_error_conditions():
    node = Node().wait_ready()
    try:
        add_user(node, "gus")
        # RFC 6120 §7.7.2.2: the same resource again; the old stream is told.
        first = Raw(node.xmpps_port).login("gus", "pw-gus", resource="desk")
        second = Raw(node.xmpps_port).login("gus", "pw-gus", resource="desk")
        first.read_until(r"<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>")
        # §4.9.3.1: text between stanzas.
        second.send("this is not a stanza")
        second.read_until(r"<bad-format")
        # §4.9.3.23: the node stops; every stream hears why.
        last = Raw(node.xmpps_port).login("gus", "pw-gus", resource="last")
        assert node.stop()[0] == 0
        last.read_until(r"<system-shutdown", timeout=10)
    finally:
        node.stop()
        node.cleanup()


if __name__ == "__main__":
    harness.raise_nofile()
    harness.run([
        test_carbons_between_devices,
        test_blocking_across_shards_and_restart,
        test_vcards_and_discovery,
        test_client_state_and_caps_passthrough,
        test_stream_management_and_resumption,
        test_unresumed_session_ends_and_keeps_messages,
        test_idle_ping_keepalive_and_timeout,
        test_stanza_size_bound,
        test_in_band_registration,
        test_test_authentication_mode,
        test_stream_error_conditions,
    ])
