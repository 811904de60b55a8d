"""SIP against a real presenced with SIPp (Debian's sip-tester) and hand-built
requests: OPTIONS over UDP and TCP, the registrar's life cycle, retransmissions
absorbed by the server transaction, and malformed or unsupported requests that
get the right 4xx/5xx while the node stays up."""
import hashlib
import os
import re
import socket
import subprocess
import time

import harness
from harness import Node
from test_xmpp import add_user

SCENARIOS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sipp")


def sip_node(extra="auth = off\n"):
    """A node serving SIP on a free port; without authentication unless extra
    says otherwise (the digest tests set it up themselves)."""
    port = harness.free_port()
    node = Node(config="[sip]\nlisten = 127.0.0.1:%d\n%s" % (port, extra)).wait_ready()
    node.sip_port = port
    return node


def sipp(node, scenario, transport="u1", user="probe", extra=()):
    """Runs one SIPp call of scenario; returns (exit code, output)."""
    tmp = node.tmp
    args = ["sipp", "127.0.0.1:%d" % node.sip_port, "-sf", os.path.join(SCENARIOS, scenario),
            "-m", "1", "-t", transport, "-i", "127.0.0.1", "-p", str(harness.free_port()),
            "-s", user, "-timeout", "15", "-timeout_error", "-nostdin", "-trace_err",
            "-error_file", os.path.join(tmp, "sipp_err.log"), "-recv_timeout", "5000"]
    out = subprocess.run(args + list(extra), capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL, cwd=tmp)
    err = ""
    if os.path.exists(os.path.join(tmp, "sipp_err.log")):
        with open(os.path.join(tmp, "sipp_err.log")) as f:
            err = f.read()
    return out.returncode, out.stdout[-2000:] + out.stderr[-2000:] + err[-3000:]


def udp_exchange(port, data, wait=1.0, expect=True):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(wait)
    s.bind(("127.0.0.1", 0))
    s.sendto(data.encode() if isinstance(data, str) else data, ("127.0.0.1", port))
    try:
        out = s.recv(65536).decode(errors="replace")
    except socket.timeout:
        out = None
    s.close()
    if expect:
        assert out is not None, "no answer to %r" % data[:80]
    return out


def request(method, extra="", cseq_method=None, version="SIP/2.0", branch="z9hG4bKtest1",
            body="", uri="sip:localhost"):
    return ("%s %s %s\r\n"
            "Via: SIP/2.0/UDP 127.0.0.1:5999;branch=%s;rport\r\n"
            "Max-Forwards: 70\r\n"
            "From: <sip:tester@localhost>;tag=abc\r\n"
            "To: <sip:tester@localhost>\r\n"
            "Call-ID: call-%s@127.0.0.1\r\n"
            "CSeq: 7 %s\r\n"
            "%s"
            "Content-Length: %d\r\n\r\n%s") % (method, uri, version, branch, branch,
                                               cseq_method or method, extra, len(body), body)


def status_of(text):
    m = re.match(r"SIP/2\.0 (\d{3}) ", text or "")
    return int(m.group(1)) if m else None


def test_options_over_udp_and_tcp():
    node = sip_node()
    try:
        for transport in ("u1", "t1"):
            rc, out = sipp(node, "options.xml", transport=transport)
            assert rc == 0, (transport, out)
        text = node.metrics()
        assert node.metric_sum("sip_requests_total", text, 'method="OPTIONS"') == 2, text
        assert node.metric_sum("sip_responses_total", text, 'class="2xx"') == 2, text
    finally:
        node.stop()
        node.cleanup()


def test_registrar_life_cycle():
    node = sip_node()
    try:
        add_user(node, "alice")
        for transport in ("u1", "t1"):
            rc, out = sipp(node, "register.xml", transport=transport, user="alice")
            assert rc == 0, (transport, out)
        rc, out = sipp(node, "register_unknown.xml", user="nobody")
        assert rc == 0, out
        assert node.metric_sum("sip_registrations") == 0
    finally:
        node.stop()
        node.cleanup()


def test_retransmissions_absorbed():
    node = sip_node()
    try:
        add_user(node, "bob")
        reg = request("REGISTER", extra="Contact: <sip:bob@127.0.0.1:5999>\r\nExpires: 300\r\n",
                      branch="z9hG4bKretrans", uri="sip:localhost").replace("tester", "bob")
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(2)
        s.bind(("127.0.0.1", 0))
        answers = []
        for _ in range(3):
            s.sendto(reg.encode(), ("127.0.0.1", node.sip_port))
            answers.append(s.recv(65536).decode())
        s.close()
        assert all(status_of(a) == 200 for a in answers), answers
        tags = {re.search(r"^To:.*tag=([^;\r]+)", a, re.M).group(1) for a in answers}
        assert len(tags) == 1, "a retransmission got a new response: %r" % answers
        assert node.metric_sum("sip_retransmissions_total") == 2
        assert node.metric_sum("sip_registrations") == 1
    finally:
        node.stop()
        node.cleanup()


def test_bad_and_unsupported_requests():
    node = sip_node()
    try:
        port = node.sip_port
        assert udp_exchange(port, "this is not SIP\r\n\r\n", expect=False) is None
        assert status_of(udp_exchange(port, request("REGISTER", cseq_method="OPTIONS",
                                                    branch="z9hG4bKb1"))) == 400
        assert status_of(udp_exchange(port, request("FOO", branch="z9hG4bKb2"))) == 501
        ans = udp_exchange(port, request("INVITE", branch="z9hG4bKb3"))
        assert status_of(ans) == 405 and re.search(r"^Allow: .*REGISTER", ans, re.M), ans
        assert status_of(udp_exchange(port, request("OPTIONS", version="SIP/3.0",
                                                    branch="z9hG4bKb4"))) == 505
        assert status_of(udp_exchange(port, request("OPTIONS", uri="http://localhost/",
                                                    branch="z9hG4bKb5"))) == 416
        ans = udp_exchange(port, request("OPTIONS", extra="Require: 100rel, foo\r\n",
                                         branch="z9hG4bKb9"))
        assert status_of(ans) == 420 and re.search(r"^Unsupported: 100rel, foo\r$", ans, re.M), ans
        no_via = request("OPTIONS", branch="z9hG4bKb6").replace(
            "Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKb6;rport\r\n", "")
        assert udp_exchange(port, no_via, expect=False) is None     # nowhere to answer
        # TCP: a message that cannot be framed is answered, then the connection closes.
        t = socket.create_connection(("127.0.0.1", port), timeout=3)
        t.sendall(request("OPTIONS", branch="z9hG4bKb7").replace("Content-Length: 0\r\n", "")
                  .encode())
        got = b""
        try:
            while True:
                chunk = t.recv(65536)
                if not chunk:
                    break
                got += chunk
        except socket.timeout:
            raise AssertionError("the connection stayed open: %r" % got)
        t.close()
        assert status_of(got.decode()) == 400, got
        # Keep-alive pings over TCP get their pong (RFC 5626 §4.4.1).
        t = socket.create_connection(("127.0.0.1", port), timeout=3)
        t.sendall(b"\r\n\r\n")
        assert t.recv(16) == b"\r\n"
        t.close()
        # Still serving.
        assert status_of(udp_exchange(port, request("OPTIONS", branch="z9hG4bKb8"))) == 200
        assert node.metric_sum("sip_malformed_total") >= 4
    finally:
        node.stop()
        node.cleanup()


def digest_answer(challenge, user, password, method, uri, realm="localhost"):
    """An Authorization value for a WWW-Authenticate value (RFC 7616, qop=auth)."""
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge.split(" ", 1)[1]))
    alg = params.get("algorithm", "MD5")
    h = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}[alg]
    hx = lambda t: h(t.encode()).hexdigest()
    ha1 = hx("%s:%s:%s" % (user, realm, password))
    ha2 = hx("%s:%s" % (method, uri))
    cnonce, nc = "0a4f113b", "00000001"
    resp = hx("%s:%s:%s:%s:auth:%s" % (ha1, params["nonce"], nc, cnonce, ha2))
    return ('Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", '
            'algorithm=%s, cnonce="%s", qop=auth, nc=%s'
            % (user, realm, params["nonce"], uri, resp, alg, cnonce, nc))


def test_digest_authentication():
    node = sip_node(extra="digest = md5\n")
    try:
        add_user(node, "carl")
        rc, out = sipp(node, "register_auth.xml", user="carl", extra=("-auth_uri", "localhost", "-au", "carl",
                                                                     "-ap", "pw-carl"))
        assert rc == 0, out
        rc, out = sipp(node, "register_auth.xml", user="carl", extra=("-auth_uri", "localhost", "-au", "carl",
                                                                     "-ap", "wrong"))
        assert rc != 0, "a wrong password registered"
    finally:
        node.stop()
        node.cleanup()
    node = sip_node(extra="")       # the defaults: digest, SHA-256 offered first
    try:
        add_user(node, "dora")
        add_user(node, "eve")
        reg = lambda branch, auth="": request(
            "REGISTER", extra="Contact: <sip:dora@127.0.0.1:5999>\r\nExpires: 300\r\n" + auth,
            branch=branch).replace("tester", "dora")
        first = udp_exchange(node.sip_port, reg("z9hG4bKa1"))
        assert status_of(first) == 401, first
        challenges = re.findall(r"^WWW-Authenticate: (.*?)\r$", first, re.M)
        assert len(challenges) == 2 and "SHA-256" in challenges[0], challenges
        assert "MD5" in challenges[1], challenges
        good = digest_answer(challenges[0], "dora", "pw-dora", "REGISTER", "sip:localhost")
        ok = udp_exchange(node.sip_port, reg("z9hG4bKa2", "Authorization: %s\r\n" % good))
        assert status_of(ok) == 200, ok
        bad = digest_answer(challenges[0], "dora", "nope", "REGISTER", "sip:localhost")
        assert status_of(udp_exchange(node.sip_port, reg(
            "z9hG4bKa3", "Authorization: %s\r\n" % bad))) == 401
        other = digest_answer(challenges[1], "eve", "pw-eve", "REGISTER", "sip:localhost")
        assert status_of(udp_exchange(node.sip_port, reg(
            "z9hG4bKa4", "Authorization: %s\r\n" % other))) == 403
        assert status_of(udp_exchange(node.sip_port, reg(
            "z9hG4bKa5", "Authorization: Digest username=dora\r\n"))) == 400
        # A watcher from another domain cannot prove who it is.
        sub = request("SUBSCRIBE", extra="Event: presence\r\nContact: <sip:x@127.0.0.1:5999>\r\n",
                      branch="z9hG4bKa6", uri="sip:dora@localhost").replace(
            "From: <sip:tester@localhost>", "From: <sip:mallory@example.net>")
        assert status_of(udp_exchange(node.sip_port, sub)) == 403
    finally:
        node.stop()
        node.cleanup()
    # A trusted peer (call control) acts for users without a password.
    node = sip_node(extra="trusted = 127.0.0.1\n")
    try:
        add_user(node, "fred")
        reg = request("REGISTER", extra="Contact: <sip:fred@127.0.0.1:5999>\r\nExpires: 300\r\n",
                      branch="z9hG4bKt1").replace("tester", "fred")
        assert status_of(udp_exchange(node.sip_port, reg)) == 200
    finally:
        node.stop()
        node.cleanup()


if __name__ == "__main__":
    harness.run([
        test_options_over_udp_and_tcp,
        test_registrar_life_cycle,
        test_retransmissions_absorbed,
        test_bad_and_unsupported_requests,
        test_digest_authentication,
    ])
