"""Accounts and contact lists through presencectl and the admin API: create,
change, list, delete, roster items, bulk import (with imported SCRAM salts and
iteration counts), errors that name the problem, and durability: an answered
request survives kill -9."""
import asyncio
import base64
import json
import os
import re
import signal
import socket
import subprocess
import tempfile

import harness
import xmpp_client as xc
from harness import Node, BUILD

PRESENCECTL = os.path.join(BUILD, "presencectl")


def ctl(node, *args, stdin=None):
    out = subprocess.run([PRESENCECTL, "--admin", "127.0.0.1:%d" % node.admin_port] + list(args),
                         input=stdin, capture_output=True, text=True, timeout=60)
    return out.returncode, out.stdout, out.stderr


def test_users_and_roster():
    node = Node().wait_ready()
    try:
        assert ctl(node, "user", "add", "alice@localhost", stdin="wonderland\n")[0] == 0
        # JIDs are normalised (RFC 7622): the same account, password changed.
        assert ctl(node, "user", "passwd", "Alice@LOCALHOST", stdin="looking-glass\n")[0] == 0
        assert ctl(node, "user", "add", "bob@localhost", stdin="builder\n")[0] == 0
        rc, out, _ = ctl(node, "user", "list")
        assert rc == 0 and out.split() == ["alice@localhost", "bob@localhost"], out
        rc, _, err = ctl(node, "roster", "add", "alice@localhost", "bob@localhost",
                         "--name", "Bob", "--group", "Friends", "--subscription", "both")
        assert rc == 0, err
        rc, _, err = ctl(node, "roster", "add", "alice@localhost", "bob@localhost",
                         "--subscription", "sometimes")
        assert rc == 1 and "subscription must be" in err, err
        rc, _, err = ctl(node, "user", "add", "no-at-sign", stdin="x\n")
        assert rc == 1 and "not a user's bare JID" in err, err
        rc, _, err = ctl(node, "user", "add", "a@b/c", stdin="x\n")
        assert rc == 1 and "bare JID" in err, err
        rc, _, err = ctl(node, "user", "add", "carol@localhost", stdin="")
        assert rc == 1 and "no password" in err, err
        assert ctl(node, "user", "del", "bob@localhost")[0] == 0
        rc, _, err = ctl(node, "user", "del", "bob@localhost")
        assert rc == 1 and "404" in err, err
        assert ctl(node, "user", "list")[1].split() == ["alice@localhost"]
        assert node.metric_sum("storage_commits_total") >= 3
    finally:
        node.stop()
        node.cleanup()


def test_import_and_errors():
    node = Node().wait_ready()
    tmp = tempfile.mkdtemp()
    try:
        path = os.path.join(tmp, "users.jsonl")
        with open(path, "w") as f:
            for i in range(300):
                f.write(json.dumps({
                    "jid": "user%d@localhost" % i, "password": "pw%d" % i,
                    "roster": [{"jid": "user%d@localhost" % ((i + k) % 300),
                                "subscription": "both", "groups": ["Team"]}
                               for k in range(1, 6)]}) + "\n")
        rc, _, err = ctl(node, "import", path, "--batch", "50", "--jobs", "3")
        assert rc == 0 and "imported 300 accounts" in err, err
        assert len(ctl(node, "user", "list")[1].split()) == 300
        # A bad line is refused with its line number; nothing of its batch lands.
        with open(path, "w") as f:
            f.write(json.dumps({"jid": "good@localhost", "password": "x"}) + "\n")
            f.write('{"jid": "broken@localhost", "password": }\n')
        rc, _, err = ctl(node, "import", path)
        assert rc == 1 and "line 2" in err, err
        assert "good@localhost" not in ctl(node, "user", "list")[1].split()
    finally:
        node.stop()
        node.cleanup()


def scram_challenge(port, user):
    """Starts SCRAM-SHA-256 for user on a plaintext stream and returns the
    server-first-message's attributes (r, s, i)."""
    first = base64.b64encode(b"n,,n=%s,r=abcdefghijklmnopqrstuvwx" % user.encode()).decode()
    data = ("<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
            "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>%s</auth>"
            % first).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        out = b""
        while b"</challenge>" not in out:
            chunk = sock.recv(65536)
            assert chunk, out
            out += chunk
    m = re.search(rb"<challenge[^>]*>([^<]*)</challenge>", out)
    assert m, out
    return dict(kv.split("=", 1) for kv in base64.b64decode(m.group(1)).decode().split(","))


def test_import_with_salt_and_iterations():
    node = Node(config="[xmpp]\nrequire_tls = false\n").wait_ready()
    tmp = tempfile.mkdtemp()
    loop = asyncio.new_event_loop()
    clients = []
    try:
        salt = base64.b64encode(b"one salt, shared").decode()     # 16 bytes
        path = os.path.join(tmp, "users.jsonl")
        with open(path, "w") as f:
            for name, other in (("gina", "hank"), ("hank", "gina")):
                f.write(json.dumps({"jid": "%s@localhost" % name, "password": "same-pw",
                                    "salt": salt, "iterations": 5000,
                                    "roster": [{"jid": "%s@localhost" % other,
                                                "subscription": "both"}]}) + "\n")
            f.write(json.dumps({"jid": "ivy@localhost", "password": "other-pw"}) + "\n")
        rc, _, err = ctl(node, "import", path)
        assert rc == 0 and "imported 3 accounts" in err, err
        # The server offers exactly the imported salt and count; an account
        # without them gets a random salt and the default count.
        for name in ("gina", "hank"):
            attrs = scram_challenge(node.xmpp_port, name)
            assert attrs["s"] == salt and attrs["i"] == "5000", attrs
        attrs = scram_challenge(node.xmpp_port, "ivy")
        assert attrs["s"] != salt and attrs["i"] == "4096", attrs
        # Both accounts derived from the one salt log in, with each SCRAM family.
        for name, mech in (("gina", "SCRAM-SHA-256"), ("hank", "SCRAM-SHA-256"),
                           ("hank", "SCRAM-SHA-1")):
            c = xc.run(loop, xc.connect(loop, "%s@localhost/%s" % (name, mech), "same-pw",
                                        node.xmpp_port, mech=mech, starttls=False,
                                        send_presence=False))
            clients.append(c)
            assert c.failed is None, (name, mech, c.failed)
        wrong = xc.run(loop, xc.connect(loop, "gina@localhost/x", "other-pw", node.xmpp_port,
                                        mech="SCRAM-SHA-256", starttls=False))
        clients.append(wrong)
        assert wrong.failed is not None
        # Out-of-policy values are refused with the line that carries them.
        for bad, what in (({"salt": base64.b64encode(b"short").decode()}, "salt"),
                          ({"salt": "not base64!"}, "salt"),
                          ({"iterations": 100}, "iterations"),
                          ({"iterations": "5000"}, "iterations")):
            with open(path, "w") as f:
                line = {"jid": "jack@localhost", "password": "pw"}
                line.update(bad)
                f.write(json.dumps(line) + "\n")
            rc, _, err = ctl(node, "import", path)
            assert rc == 1 and "line 1" in err and what in err, (bad, err)
        assert "jack@localhost" not in ctl(node, "user", "list")[1].split()
    finally:
        for c in clients:
            c.disconnect()
        node.stop()
        node.cleanup()


def test_answered_writes_survive_kill_9():
    node = Node(config="[storage]\nsync = batch\n").wait_ready()
    data_dir = node.data_dir
    try:
        for name in ("dora", "eve", "frank"):
            assert ctl(node, "user", "add", "%s@localhost" % name, stdin="pw\n")[0] == 0
        node.proc.send_signal(signal.SIGKILL)
        node.proc.wait()
        again = Node(data_dir=data_dir).wait_ready()
        try:
            users = ctl(again, "user", "list")[1].split()
            assert users == ["dora@localhost", "eve@localhost", "frank@localhost"], users
        finally:
            again.stop()
            again.cleanup()
    finally:
        node.cleanup()


if __name__ == "__main__":
    harness.run([test_users_and_roster, test_import_and_errors, test_import_with_salt_and_iterations,
                 test_answered_writes_survive_kill_9])
