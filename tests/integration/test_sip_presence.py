"""SIP presence against a real presenced, with SIPp as the SIP side and
slixmpp as the XMPP side: a publication's entity-tag life cycle, a SIP
watcher that sees an XMPP user's changes, a pending watcher that the user
approves over XMPP, and an XMPP watcher that sees a SIP phone's publication."""
import asyncio
import os
import subprocess
import time

import harness
from harness import Node
from test_sip import SCENARIOS, sip_node, status_of, udp_exchange
from test_xmpp import Session, add_user, ctl


def sipp_args(node, scenario, user, keys, transport="u1"):
    args = ["sipp", "127.0.0.1:%d" % node.sip_port, "-sf", os.path.join(SCENARIOS, scenario),
            "-m", "1", "-t", transport, "-i", "127.0.0.1", "-p", str(harness.free_port()),
            "-s", user, "-timeout", "40", "-timeout_error", "-nostdin", "-trace_err",
            "-error_file", os.path.join(node.tmp, "%s-%s.err" % (scenario, user)),
            "-recv_timeout", "20000"]
    for k, v in keys.items():
        if k == "pause":
            args += ["-d", v]       # what a bare <pause/> waits, in ms
        else:
            args += ["-key", k, v]
    return args


def start_sipp(node, scenario, user, keys, transport="u1", extra=()):
    if scenario == "subscribe.xml":
        keys = dict({"event": "presence"}, **keys)
        extra = tuple(extra) + ("-trace_msg",)
    return subprocess.Popen(sipp_args(node, scenario, user, keys, transport) + list(extra),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL, cwd=node.tmp)


def finish(node, proc, what, timeout=60):
    out, _ = proc.communicate(timeout=timeout)
    errs = ""
    for f in os.listdir(node.tmp):
        if f.endswith(".err"):
            with open(os.path.join(node.tmp, f)) as fh:
                errs += fh.read()[-2000:]
    assert proc.returncode == 0, "%s: rc %s\n%s\n%s" % (what, proc.returncode, out[-1500:], errs)


def sipp_log(node):
    """What SIPp logged with -trace_msg in the node's directory."""
    out = ""
    for f in os.listdir(node.tmp):
        if f.endswith("_messages.log"):
            with open(os.path.join(node.tmp, f)) as fh:
                out += fh.read()
    return out


def notifies(node, proc):
    """The NOTIFYs SIPp's -trace_msg recorded for one run, in order."""
    name = os.path.join(node.tmp, "subscribe_%d_messages.log" % proc.pid)
    with open(name) as f:
        text = f.read()
    return [m for m in text.split("-----------------------------------------------")
            if "received" in m and "NOTIFY sip:" in m]


def relation(node, user, contact, sub):
    ctl(node, "roster", "add", "%s@localhost" % user, "%s@localhost" % contact,
        "--subscription", sub)


def test_publication_life_cycle():
    node = sip_node()
    try:
        add_user(node, "pat")
        for transport in ("u1", "t1"):
            p = start_sipp(node, "publish.xml", "pat", {"note": "first", "pause": "10"},
                           transport)
            finish(node, p, "publish over %s" % transport)
        assert node.metric_sum("sip_publications") == 0
    finally:
        node.stop()
        node.cleanup()


def test_sip_watcher_sees_xmpp_user():
    node = sip_node()
    s = Session(node)
    try:
        add_user(node, "alice")
        add_user(node, "bob")
        relation(node, "alice", "bob", "from")      # bob may see alice
        relation(node, "bob", "alice", "to")
        w = start_sipp(node, "subscribe.xml", "alice", {"watcher": "bob"})
        node.wait_metric("sip_subscriptions", 1)   # alice still offline when it starts
        a = s.login("alice", send_presence=False)
        a.send_presence(pshow="away", pstatus="in the office MARK")
        s.settle(0.5)
        finish(node, w, "watcher of alice")
        seen = notifies(node, w)
        assert "Subscription-State: active" in seen[0] and "<basic>closed</basic>" in seen[0], \
            seen[0]
        last = [n for n in seen if "in the office MARK" in n]
        assert last and "<basic>open</basic>" in last[0] and "away" in last[0], seen
        assert "Content-Type: application/pidf+xml" in last[0]
        assert "terminated" in seen[-1], seen[-1]
        text = node.metrics()
        assert node.metric_sum("sip_notifies_total", text) >= 3, text
        assert node.metric_sum("sip_subscriptions", text) == 0
    finally:
        s.close()
        node.stop()
        node.cleanup()


def test_pending_watcher_approved_over_xmpp():
    node = sip_node()
    s = Session(node)
    try:
        add_user(node, "alice")
        add_user(node, "carol")
        a = s.login("alice")
        a.send_presence(pstatus="reading")
        s.settle()
        w = start_sipp(node, "subscribe.xml", "alice", {"watcher": "carol"})
        req = s.wait(a.subscriptions, match=lambda p: p["type"] == "subscribe")
        assert req["from"].bare == "carol@localhost", req
        a.send_presence(pto="carol@localhost", ptype="subscribed")
        s.settle(0.5)
        a.send_presence(pstatus="reading MARK")
        s.settle(0.5)
        finish(node, w, "pending watcher")
        seen = notifies(node, w)
        assert "Subscription-State: pending" in seen[0] and "pidf" not in seen[0], seen[0]
        active = [n for n in seen if "Subscription-State: active" in n]
        assert active and "<basic>open</basic>" in active[0], seen
        assert any("reading MARK" in n for n in active), seen
    finally:
        s.close()
        node.stop()
        node.cleanup()


def test_xmpp_watcher_sees_sip_publication():
    node = sip_node()
    s = Session(node)
    try:
        add_user(node, "dave")
        add_user(node, "erin")
        relation(node, "dave", "erin", "both")
        relation(node, "erin", "dave", "both")
        e = s.login("erin")
        p = start_sipp(node, "publish.xml", "dave", {"note": "On a call", "pause": "1500"})
        got = s.wait(e.presences, match=lambda x: x["from"].bare == "dave@localhost"
                     and x["type"] != "unavailable", timeout=15)
        assert got["status"] == "On a call" and got["show"] == "dnd", got
        assert got["from"].resource.startswith("sip-"), got
        back = s.wait(e.presences, match=lambda x: x["from"].bare == "dave@localhost"
                      and x["status"] == "back at the desk", timeout=15)
        assert back["show"] in ("", "chat"), back
        gone = s.wait(e.presences, match=lambda x: x["from"].bare == "dave@localhost"
                      and x["type"] == "unavailable", timeout=15)
        assert gone is not None
        finish(node, p, "publisher")
    finally:
        s.close()
        node.stop()
        node.cleanup()


def sip_message(node, sender, to, text, ctype="text/plain"):
    """A MESSAGE (RFC 3428) over UDP; returns the response's status."""
    branch = "z9hG4bKm%d" % int(time.time() * 1e6)
    body = text.encode()
    req = ("MESSAGE sip:%s@localhost SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 127.0.0.1:5999;branch=%s;rport\r\n"
           "Max-Forwards: 70\r\nFrom: <sip:%s@localhost>;tag=m1\r\nTo: <sip:%s@localhost>\r\n"
           "Call-ID: %s@127.0.0.1\r\nCSeq: 1 MESSAGE\r\nContent-Type: %s\r\n"
           "Content-Length: %d\r\n\r\n" % (to, branch, sender, to, branch, ctype, len(body)))
    return status_of(udp_exchange(node.sip_port, req.encode() + body, wait=3))


def test_im_between_sip_and_xmpp():
    node = sip_node()
    s = Session(node)
    try:
        for u in ("dave", "erin", "finn"):
            add_user(node, u)
        e = s.login("erin")
        # SIP to XMPP: delivered to the session (200).
        assert sip_message(node, "dave", "erin", "hello from the phone") == 200
        got = s.wait(e.messages)
        assert got["body"] == "hello from the phone" and got["from"].bare == "dave@localhost"
        # XMPP to SIP: a MESSAGE to the registered phone, over its flow.
        r = start_sipp(node, "register_hold.xml", "dave", {"pause": "3000"},
                       extra=("-oocsf", os.path.join(SCENARIOS, "message_accept.xml"),
                              "-trace_msg"))
        node.wait_metric("sip_registrations", 1)
        errors = asyncio.Queue()
        e.add_event_handler("message_error", lambda msg: errors.put_nowait(msg))
        e.send_message(mto="dave@localhost", mbody="hi phone", mtype="chat")
        s.settle(0.5)
        finish(node, r, "SIP client taking a MESSAGE")
        assert "hi phone" in sipp_log(node), "the phone got no MESSAGE"
        assert errors.empty()
        # A refusal from the phone comes back as an XMPP error.
        r = start_sipp(node, "register_hold.xml", "dave", {"pause": "3000"},
                       extra=("-oocsf", os.path.join(SCENARIOS, "message_refuse.xml")))
        node.wait_metric("sip_registrations", 1)
        e.send_message(mto="dave@localhost", mbody="are you there", mtype="chat")
        err = s.wait(errors, timeout=15)
        assert err["error"]["condition"] == "recipient-unavailable", err
        finish(node, r, "SIP client refusing a MESSAGE")
        # Nobody online: kept for the next login (202), unknown users get 404.
        assert sip_message(node, "dave", "finn", "read this later") == 202
        assert sip_message(node, "dave", "nobody", "anyone?") == 404
        assert sip_message(node, "dave", "finn", "<b>markup</b>", ctype="text/html") == 415
        f = s.login("finn")
        assert s.wait(f.messages)["body"] == "read this later"
    finally:
        s.close()
        node.stop()
        node.cleanup()


def test_watcher_info():
    node = sip_node()
    s = Session(node)
    try:
        add_user(node, "alice")
        add_user(node, "bob")
        # alice watches who watches her (RFC 3857); only she may.
        wi = start_sipp(node, "subscribe.xml", "alice",
                        {"watcher": "alice", "event": "presence.winfo"})
        node.wait_metric("sip_subscriptions", 1)
        pending = start_sipp(node, "subscribe.xml", "alice", {"watcher": "bob"})
        a = s.login("alice")
        s.wait(a.subscriptions, match=lambda p: p["type"] == "subscribe")
        a.send_presence(pto="bob@localhost", ptype="subscribed")
        s.settle(0.5)
        a.send_presence(pstatus="now MARK")      # ends bob's run, then alice's
        s.settle(0.5)
        finish(node, pending, "bob watching alice")
        seen_bob = notifies(node, pending)
        assert any("now MARK" in n for n in seen_bob), seen_bob
        # The marker reaches the winfo run only through bob's entry: stop it by hand
        # once SIPp has logged bob's entry turning active.
        deadline = time.time() + 20
        while time.time() < deadline and not any(
                "sip:bob@localhost" in n and 'status="active"' in n for n in notifies(node, wi)):
            time.sleep(0.1)
        wi.kill()
        wi.wait()
        seen = notifies(node, wi)
        assert seen and "Event: presence.winfo" in seen[0], seen
        assert "application/watcherinfo+xml" in seen[0]
        assert "sip:bob@localhost" not in seen[0], seen[0]
        with_bob = [n for n in seen if "sip:bob@localhost" in n]
        assert with_bob and 'status="pending"' in with_bob[0], seen
        assert any('status="active"' in n for n in with_bob), with_bob
        # Nobody else may watch alice's watchers.
        other = start_sipp(node, "subscribe.xml", "alice",
                           {"watcher": "bob", "event": "presence.winfo"})
        out, _ = other.communicate(timeout=60)
        assert other.returncode != 0 and "403" in out, out[-800:]
    finally:
        s.close()
        node.stop()
        node.cleanup()


def phone_line(event, scenario, refuse_first):
    """A user's phone line watched at a SIPp call control with `event`: the line
    in a call shows as on the phone to an XMPP contact, idle again as the line's
    resource going away; removing the line ends the subscription."""
    cc_port = harness.free_port()
    port = harness.free_port()
    node = Node(config="[sip]\nlisten = 127.0.0.1:%d\nauth = off\n[gateway]\n"
                       "call_control = 127.0.0.1:%d\nretry_s = 1\nevent = %s\n"
                       % (port, cc_port, event)).wait_ready()
    node.sip_port = port
    s = Session(node)
    try:
        add_user(node, "alice")
        add_user(node, "bob")
        relation(node, "alice", "bob", "both")
        relation(node, "bob", "alice", "both")
        b = s.login("bob")
        a = s.login("alice")
        s.wait(b.presences, match=lambda p: p["from"].bare == "alice@localhost")
        def call_control(scenario):
            return subprocess.Popen(
                ["sipp", "-sf", os.path.join(SCENARIOS, scenario), "-i", "127.0.0.1",
                 "-p", str(cc_port), "-m", "1", "-t", "u1", "-d", "2000", "-nostdin",
                 "-timeout", "40", "-timeout_error", "-trace_err",
                 "-error_file", os.path.join(node.tmp, "cc.err")],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                stdin=subprocess.DEVNULL, cwd=node.tmp)
        if refuse_first:
            # The call control refuses at first: the gateway tries again (retry_s).
            cc = call_control("callcontrol_refuse.xml")
            time.sleep(0.5)
        else:
            cc = call_control(scenario)
            time.sleep(0.5)
        ctl(node, "line", "set", "alice@localhost", "sip:1000@127.0.0.1:%d" % cc_port)
        assert "sip:1000@" in ctl(node, "line", "show", "alice@localhost")
        if refuse_first:
            out, _ = cc.communicate(timeout=30)
            assert cc.returncode == 0, out[-1500:]
            cc = call_control(scenario)
        busy = s.wait(b.presences, match=lambda p: p["from"].bare == "alice@localhost"
                      and p["status"] == "On the phone", timeout=15)
        assert busy["show"] == "dnd" and busy["from"].resource == "sip-line", busy
        assert node.metric_sum("sip_gateway_lines", label_filter='state="active"') == 1
        idle = s.wait(b.presences, match=lambda p: str(p["from"]) == "alice@localhost/sip-line"
                      and p["type"] == "unavailable", timeout=15)
        assert idle is not None
        # Removing the line ends the subscription at the call control.
        ctl(node, "line", "del", "alice@localhost")
        out, _ = cc.communicate(timeout=60)
        assert cc.returncode == 0, out[-1500:]
        assert node.metric_sum("sip_gateway_lines") == 0
    finally:
        s.close()
        node.stop()
        node.cleanup()


def test_presence_gateway_phone_line():
    phone_line("dialog", "callcontrol.xml", refuse_first=True)


def test_presence_gateway_event_presence():
    phone_line("presence", "callcontrol_presence.xml", refuse_first=False)


class Watcher:
    """A SIP watcher on a UDP socket that answers every NOTIFY with 200."""

    def __init__(self, node, user="bob"):
        self.node, self.user = node, user
        self.sock = __import__("socket").socket(__import__("socket").AF_INET,
                                                __import__("socket").SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.notifies = []

    def send(self, text):
        self.sock.sendto(text.encode(), ("127.0.0.1", self.node.sip_port))

    def subscribe(self, target, expires, cseq, to_tag="", call_id="w1@127.0.0.1"):
        self.send("SUBSCRIBE sip:%s@localhost SIP/2.0\r\n"
                  "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKs%d%d;rport\r\n"
                  "Max-Forwards: 70\r\nFrom: <sip:%s@localhost>;tag=wt\r\n"
                  "To: <sip:%s@localhost>%s\r\nCall-ID: %s\r\nCSeq: %d SUBSCRIBE\r\n"
                  "Contact: <sip:%s@127.0.0.1:%d>\r\nEvent: presence\r\nExpires: %d\r\n"
                  "Content-Length: 0\r\n\r\n"
                  % (target, self.port, cseq, expires, self.user, target,
                     ";tag=" + to_tag if to_tag else "", call_id, cseq, self.user, self.port,
                     expires))

    def recv(self, timeout):
        """The next datagram, as it came, or None."""
        import socket as _s
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(65536).decode(errors="replace")
        except _s.timeout:
            return None

    def answer(self, notify, status=200, cseq_method="NOTIFY", from_line=None):
        """A response to notify echoing its Via, From, To, Call-ID and CSeq (the CSeq's
        method and the From line replaceable, to answer wrongly)."""
        import re as _re
        keep = []
        for h in notify.split("\r\n\r\n")[0].split("\r\n")[1:]:
            if h.startswith("CSeq:"):
                h = _re.sub(r"NOTIFY$", cseq_method, h)
            if h.startswith("From:") and from_line:
                h = from_line
            if _re.match(r"(Via|From|To|Call-ID|CSeq):", h):
                keep.append(h)
        self.send("SIP/2.0 %d Answer\r\n" % status + "\r\n".join(keep) +
                  "\r\nContent-Length: 0\r\n\r\n")

    def read(self, timeout=5):
        """The next response (NOTIFYs met on the way are answered and kept)."""
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            data = self.recv(left) if left > 0 else None
            if data is None:
                return None
            if data.startswith("NOTIFY "):
                self.notifies.append(data)
                self.answer(data)
                continue
            return data

    def wait_notify(self, pred, timeout=8):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for n in self.notifies:
                if pred(n):
                    return n
            self.read(timeout=0.3)
        raise AssertionError("no such NOTIFY in %r" % self.notifies)


def alice_and_her_watcher(extra=""):
    """A node without digest auth where bob may see alice, and bob's hand-built watcher."""
    node = sip_node(extra="auth = off\n" + extra)
    add_user(node, "alice")
    add_user(node, "bob")
    relation(node, "alice", "bob", "from")
    return node, Watcher(node)


def test_subscription_refresh_and_expiry():
    node, w = alice_and_her_watcher("min_expires_s = 1\n")
    try:
        w.subscribe("alice", 30, 1)
        ok = w.read()
        assert status_of(ok) == 200 and "Expires: 30" in ok, ok
        tag = __import__("re").search(r"^To:.*;tag=([^;\r]+)", ok, __import__("re").M).group(1)
        w.wait_notify(lambda n: "active;expires=" in n)
        # Refresh inside the dialog, shorter (RFC 6665 §4.1.2.2).
        w.subscribe("alice", 2, 2, to_tag=tag)
        ok = w.read()
        assert status_of(ok) == 200 and "Expires: 2" in ok, ok
        w.wait_notify(lambda n: "CSeq: 2 NOTIFY" in n)
        # An unknown dialog is 481.
        w.subscribe("alice", 60, 3, to_tag="nosuchtag")
        assert status_of(w.read()) == 481
        # Left to expire: the last NOTIFY says why (RFC 6665 §4.2.2).
        end = w.wait_notify(lambda n: "terminated" in n, timeout=8)
        assert "reason=timeout" in end, end
        assert node.metric_sum("sip_subscriptions") == 0
    finally:
        node.stop()
        node.cleanup()


def test_notify_carries_the_dialog():
    """Every NOTIFY repeats what the SUBSCRIBE set up (RFC 3261 §12.1.1, RFC 6665
    §4.4.1): the route set from Record-Route, in order, as Route; our tag in From; the
    watcher's From, display name and tag, as To; the Call-ID; the Event's id; and a CSeq
    that grows by one."""
    import re
    node, w = alice_and_her_watcher()
    try:
        rr1 = "<sip:127.0.0.1:%d;lr;r=one>" % w.port
        rr2 = "<sip:127.0.0.1:%d;lr;r=two>" % w.port
        w.send("SUBSCRIBE sip:alice@localhost SIP/2.0\r\n"
               "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKdh1;rport\r\n"
               "Record-Route: %s\r\nRecord-Route: %s\r\n"
               "Max-Forwards: 70\r\nFrom: \"Bob B\" <sip:bob@localhost>;tag=wt9\r\n"
               "To: <sip:alice@localhost>\r\nCall-ID: dh-1@127.0.0.1\r\n"
               "CSeq: 7 SUBSCRIBE\r\nContact: <sip:bob@127.0.0.1:%d>\r\n"
               "Event: presence;id=e7\r\nExpires: 60\r\nContent-Length: 0\r\n\r\n"
               % (w.port, rr1, rr2, w.port))
        ok = w.read()
        assert status_of(ok) == 200, ok
        tag = re.search(r"^To:.*;tag=([^;\r]+)", ok, re.M).group(1)
        first = w.wait_notify(lambda n: "Call-ID: dh-1@127.0.0.1" in n)
        head = first.split("\r\n\r\n")[0].split("\r\n")
        assert head[0] == "NOTIFY sip:bob@127.0.0.1:%d SIP/2.0" % w.port, head
        assert head[1].startswith("Via: SIP/2.0/UDP ") and ";branch=z9hG4bK" in head[1], head
        assert [h for h in head if h.startswith("Route:")] == \
            ["Route: " + rr1, "Route: " + rr2], head
        assert "From: <sip:alice@localhost>;tag=" + tag in head, head
        assert 'To: "Bob B" <sip:bob@localhost>;tag=wt9' in head, head
        assert "Event: presence;id=e7" in head, head
        cseq = int(re.search(r"^CSeq: (\d+) NOTIFY\r", first, re.M).group(1))
        # A change gives the next NOTIFY in the same dialog, one CSeq on.
        assert status_of(publish(w, "alice", 1, note="later")) == 200
        nxt = w.wait_notify(lambda n: "later" in n)
        assert "CSeq: %d NOTIFY\r\n" % (cseq + 1) in nxt, nxt
        for line in ("Route: " + rr1, 'To: "Bob B" <sip:bob@localhost>;tag=wt9',
                     "From: <sip:alice@localhost>;tag=" + tag, "Call-ID: dh-1@127.0.0.1"):
            assert line + "\r\n" in nxt, (line, nxt)
    finally:
        node.stop()
        node.cleanup()


def test_notify_contact_names_the_flow():
    """A NOTIFY's Contact is the presentity at the node's SIP port, with the transport of
    the flow the subscription came in on (RFC 3261 §8.1.1.8): none over UDP, tcp over
    TCP."""
    import re
    import socket
    node, w = alice_and_her_watcher()
    try:
        w.subscribe("alice", 60, 1)
        assert status_of(w.read()) == 200
        udp = w.wait_notify(lambda n: True).split("\r\n\r\n")[0].split("\r\n")
        contact = [h for h in udp if h.startswith("Contact:")]
        assert len(contact) == 1 and re.fullmatch(
            r"Contact: <sip:alice@[^:>;]+:%d>" % node.sip_port, contact[0]), udp
        with socket.create_connection(("127.0.0.1", node.sip_port), timeout=5) as t:
            port = t.getsockname()[1]
            t.sendall(("SUBSCRIBE sip:alice@localhost SIP/2.0\r\n"
                       "Via: SIP/2.0/TCP 127.0.0.1:%d;branch=z9hG4bKct1\r\n"
                       "Max-Forwards: 70\r\nFrom: <sip:bob@localhost>;tag=ct\r\n"
                       "To: <sip:alice@localhost>\r\nCall-ID: ct-1@127.0.0.1\r\n"
                       "CSeq: 1 SUBSCRIBE\r\n"
                       "Contact: <sip:bob@127.0.0.1:%d;transport=tcp>\r\n"
                       "Event: presence\r\nExpires: 60\r\nContent-Length: 0\r\n\r\n"
                       % (port, port)).encode())
            data = b""
            deadline = time.time() + 8
            while b"\r\nNOTIFY " not in b"\r\n" + data and time.time() < deadline:
                data += t.recv(65536)
            start = (b"\r\n" + data).index(b"\r\nNOTIFY ")
            head = data[start:].split(b"\r\n\r\n")[0].decode().split("\r\n")
        contact = [h for h in head if h.startswith("Contact:")]
        assert len(contact) == 1 and re.fullmatch(
            r"Contact: <sip:alice@[^:>;]+:%d;transport=tcp>" % node.sip_port, contact[0]), head
    finally:
        node.stop()
        node.cleanup()


def test_notify_answer_matched_by_branch_and_cseq():
    """A NOTIFY's transaction takes the response whose top Via branch and CSeq method are
    its own (RFC 3261 §17.1.3), and reads no more of it: a 200 with another CSeq method is
    not its answer (the NOTIFY is sent again, Timer E), a 481 with a From no parser takes
    is (the subscription ends, RFC 6665 §4.1.3), and nothing is sent after it."""
    import re
    node, w = alice_and_her_watcher()
    try:
        w.subscribe("alice", 60, 1)
        got = [w.recv(5), w.recv(5)]
        assert got[0] and got[1], got
        ok = [d for d in got if d.startswith("SIP/2.0 ")]
        notify = [d for d in got if d.startswith("NOTIFY ")]
        assert len(ok) == 1 and status_of(ok[0]) == 200 and len(notify) == 1, got
        cseq = re.search(r"^CSeq: (\d+) NOTIFY\r", notify[0], re.M).group(1)
        w.answer(notify[0], 200, "SUBSCRIBE")
        again = w.recv(3)
        assert again and again.startswith("NOTIFY ") and \
            "CSeq: %s NOTIFY\r\n" % cseq in again, again
        assert node.metric_sum("sip_request_retransmissions_total") >= 1
        w.answer(again, 481, "NOTIFY", from_line="From: <<<no address")
        deadline = time.time() + 5
        while node.metric_sum("sip_subscriptions") != 0 and time.time() < deadline:
            time.sleep(0.1)
        assert node.metric_sum("sip_subscriptions") == 0
        assert w.recv(2) is None         # no retransmission after the answer
    finally:
        node.stop()
        node.cleanup()


def publish(w, user, cseq, etag=None, note="here"):
    """A PUBLISH from w's socket (initial, or modifying etag's publication): the response."""
    body = ('<?xml version="1.0" encoding="UTF-8"?>\r\n'
            '<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:%s@localhost">'
            '<tuple id="t1"><status><basic>open</basic></status></tuple>'
            '<note>%s</note></presence>' % (user, note))
    w.send("PUBLISH sip:%s@localhost SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKp%d;rport\r\n"
           "Max-Forwards: 70\r\nFrom: <sip:%s@localhost>;tag=pt\r\n"
           "To: <sip:%s@localhost>\r\nCall-ID: p%d@127.0.0.1\r\nCSeq: %d PUBLISH\r\n"
           "Event: presence\r\nExpires: 60\r\n%s"
           "Content-Type: application/pidf+xml\r\nContent-Length: %d\r\n\r\n%s"
           % (user, w.port, cseq, user, user, cseq, cseq,
              "SIP-If-Match: %s\r\n" % etag if etag else "", len(body), body))
    return w.read()


def test_publish_refused_once_account_deleted():
    """A presentity that publishes is not looked up in the store every time; deleting its
    account must still refuse its next PUBLISH (RFC 3903 §6 step 2 with 404)."""
    import re
    node = sip_node()
    try:
        add_user(node, "pat")
        w = Watcher(node, user="pat")
        etag = None
        for cseq in (1, 2, 3):
            r = publish(w, "pat", cseq, etag, note="n%d" % cseq)
            assert status_of(r) == 200, r
            etag = re.search(r"^SIP-ETag: *(\S+)", r, re.M).group(1)
        ctl(node, "user", "del", "pat@localhost")
        r = publish(w, "pat", 4, etag, note="after")
        assert status_of(r) == 404, r
        add_user(node, "pat")
        r = publish(w, "pat", 5, note="again")
        assert status_of(r) == 200, r
    finally:
        node.stop()
        node.cleanup()


def test_overload_refuses_new_work():
    """Past [sip] max_unanswered NOTIFYs waiting for their answer on any shard, the node
    refuses PUBLISH, MESSAGE and a new SUBSCRIBE with 503 and Retry-After on every shard,
    still answers the rest, and takes new work again once the answers come."""
    import re
    node, w = alice_and_her_watcher("max_unanswered = 1\n")
    try:
        w.subscribe("alice", 60, 1)
        got = [w.recv(5), w.recv(5)]
        notify = [d for d in got if d and d.startswith("NOTIFY ")]
        assert len(notify) == 1, got       # left unanswered: one request waits

        def request(method, cseq, extra="", body=""):
            w.send("%s sip:alice@localhost SIP/2.0\r\n"
                   "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKo%d;rport\r\n"
                   "Max-Forwards: 70\r\nFrom: <sip:bob@localhost>;tag=ot\r\n"
                   "To: <sip:alice@localhost>\r\nCall-ID: o%d@127.0.0.1\r\n"
                   "CSeq: %d %s\r\n%sContent-Length: %d\r\n\r\n%s"
                   % (method, w.port, cseq, cseq, cseq, method, extra, len(body), body))
            while True:      # the NOTIFY's retransmissions are not what we wait for
                r = w.recv(5)
                if r is None or not r.startswith("NOTIFY "):
                    return r

        pidf = ('<?xml version="1.0"?><presence xmlns="urn:ietf:params:xml:ns:pidf" '
                'entity="sip:alice@localhost"><tuple id="t"><status><basic>open</basic>'
                '</status></tuple></presence>')
        r = request("PUBLISH", 10, "Event: presence\r\nExpires: 60\r\n"
                    "Content-Type: application/pidf+xml\r\n", pidf)
        assert status_of(r) == 503 and re.search(r"^Retry-After: *\d+\r$", r, re.M), r
        r = request("MESSAGE", 11, "Content-Type: text/plain\r\n", "hi")
        assert status_of(r) == 503, r
        r = request("SUBSCRIBE", 12, "Event: presence\r\nExpires: 60\r\n"
                    "Contact: <sip:bob@127.0.0.1:%d>\r\n" % w.port)
        assert status_of(r) == 503, r
        assert status_of(request("OPTIONS", 13)) == 200
        assert node.metric_sum("sip_overload_refusals_total") == 3
        # The NOTIFY waits on one shard; PUBLISHes from other flows, which the kernel
        # spreads over both shards, would add to its backlog just the same: all refused.
        for k in range(8):
            other = Watcher(node, user="alice")
            r = publish(other, "alice", 20 + k)
            other.sock.close()
            assert status_of(r) == 503, (k, r)
        assert node.metric_sum("sip_overload_refusals_total") == 11
        # The answer drains the backlog: the same PUBLISH is taken.
        w.answer(notify[0])
        r = request("PUBLISH", 14, "Event: presence\r\nExpires: 60\r\n"
                    "Content-Type: application/pidf+xml\r\n", pidf)
        assert status_of(r) == 200 and "SIP-ETag:" in r, r
        assert node.metric_sum("sip_overload_refusals_total") == 11
    finally:
        node.stop()
        node.cleanup()


def test_overload_a_shard_behind_its_queue():
    """A PUBLISH that waited long in the node's socket queue (the node stopped, as a shard
    that falls behind) is refused with 503; one read at once is taken. Datagrams the full
    queue dropped meanwhile are counted."""
    import signal
    node, w = alice_and_her_watcher()
    try:
        def pub(cseq):
            body = ('<?xml version="1.0"?><presence xmlns="urn:ietf:params:xml:ns:pidf" '
                    'entity="sip:alice@localhost"><tuple id="t"><status><basic>open</basic>'
                    '</status></tuple></presence>')
            w.send("PUBLISH sip:alice@localhost SIP/2.0\r\n"
                   "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKq%d;rport\r\n"
                   "Max-Forwards: 70\r\nFrom: <sip:alice@localhost>;tag=qt\r\n"
                   "To: <sip:alice@localhost>\r\nCall-ID: q%d@127.0.0.1\r\n"
                   "CSeq: %d PUBLISH\r\nEvent: presence\r\nExpires: 60\r\n"
                   "Content-Type: application/pidf+xml\r\nContent-Length: %d\r\n\r\n%s"
                   % (w.port, cseq, cseq, cseq, len(body), body))

        os.kill(node.proc.pid, signal.SIGSTOP)
        try:
            pub(1)                  # first in the queue: read 300 ms late
            time.sleep(0.3)
        finally:
            os.kill(node.proc.pid, signal.SIGCONT)
        r = w.recv(10)
        assert status_of(r) == 503 and "Retry-After:" in r, r
        assert node.metric_sum("sip_overload_refusals_total") == 1
        # Read as it comes, once the backlog is gone: taken (a slow machine may hold one
        # up; a fresh one follows).
        for cseq in (2, 3, 4):
            time.sleep(0.3)
            pub(cseq)
            r = w.recv(10)
            if status_of(r) == 200:
                break
        assert status_of(r) == 200, r
        # A queue overrun: what did not fit is counted when the next datagram gets in.
        os.kill(node.proc.pid, signal.SIGSTOP)
        try:
            for _ in range(20000):
                w.sock.sendto(b"x", ("127.0.0.1", node.sip_port))
        finally:
            os.kill(node.proc.pid, signal.SIGCONT)
        deadline = time.time() + 10
        while node.metric_sum("datagram_queue_drops_total") == 0 and time.time() < deadline:
            w.sock.sendto(b"x", ("127.0.0.1", node.sip_port))
            time.sleep(0.1)
        assert node.metric_sum("datagram_queue_drops_total") > 0
    finally:
        node.stop()
        node.cleanup()


def test_sip_over_tls():
    import socket
    import ssl
    tls_port = harness.free_port()
    node = sip_node(extra="auth = off\ntls_listen = 127.0.0.1:%d\n" % tls_port)
    try:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with ctx.wrap_socket(socket.create_connection(("127.0.0.1", tls_port), timeout=5)) as t:
            t.sendall(("OPTIONS sip:localhost SIP/2.0\r\n"
                       "Via: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bKtls1\r\n"
                       "Max-Forwards: 70\r\nFrom: <sip:x@localhost>;tag=1\r\n"
                       "To: <sip:localhost>\r\nCall-ID: tls1\r\nCSeq: 1 OPTIONS\r\n"
                       "Content-Length: 0\r\n\r\n").encode())
            ans = t.recv(65536).decode()
        assert status_of(ans) == 200 and "Allow:" in ans, ans
    finally:
        node.stop()
        node.cleanup()


if __name__ == "__main__":
    harness.raise_nofile()
    harness.run([
        test_publication_life_cycle,
        test_sip_watcher_sees_xmpp_user,
        test_pending_watcher_approved_over_xmpp,
        test_xmpp_watcher_sees_sip_publication,
        test_im_between_sip_and_xmpp,
        test_watcher_info,
        test_presence_gateway_phone_line,
        test_presence_gateway_event_presence,
        test_subscription_refresh_and_expiry,
        test_notify_carries_the_dialog,
        test_notify_contact_names_the_flow,
        test_notify_answer_matched_by_branch_and_cseq,
        test_publish_refused_once_account_deleted,
        test_overload_refuses_new_work,
        test_overload_a_shard_behind_its_queue,
        test_sip_over_tls,
    ])
