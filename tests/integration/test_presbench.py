"""presbench, the XMPP load generator, against a real presenced at small N:
accounts provisioned through presencectl import, then every phase of a run
(login storm, rosters, initial presence, presence and message stages, logout
storm) with its JSON report checked for zero errors, every login bound,
every offered delivery delivered and latencies that make sense."""
import json
import os
import subprocess

import harness
from harness import Node

PRESENCECTL = os.path.join(harness.BUILD, "presencectl")
PRESBENCH = os.path.join(harness.BUILD, "bench", "presbench")

USERS = 60
CONTACTS = 6
# The node reads SCRAM keys from the import; no plaintext TLS-less login
# would pass the default require_tls.
CONFIG = "[xmpp]\nrequire_tls = false\n"


def presbench(*args, timeout=120):
    out = subprocess.run([PRESBENCH] + [str(a) for a in args], capture_output=True, text=True,
                         timeout=timeout)
    return out


def provision(node, users=USERS, contacts=CONTACTS):
    path = os.path.join(node.tmp, "users.jsonl")
    out = presbench("xmpp", "provision", "--users", users, "--contacts", contacts,
                    "--out", path)
    assert out.returncode == 0, out.stderr
    imp = subprocess.run([PRESENCECTL, "--admin", "127.0.0.1:%d" % node.admin_port, "import",
                          path], capture_output=True, text=True, timeout=120)
    assert imp.returncode == 0, imp.stderr


def check_lat(lat, n, hi):
    """A latency block: n samples, ordered percentiles, all above 0 and below hi."""
    assert lat["n"] == n, lat
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p999"] <= lat["max"] < hi, lat


def run_json(node, *extra, users=USERS, contacts=CONTACTS):
    path = os.path.join(node.tmp, "run.json")
    out = presbench("xmpp", "run", "--port", node.xmpp_port, "--users", users, "--contacts",
                    contacts, "--threads", 2, "--duration", 2, "--settle", 0.3, "--quiet", 0.5,
                    "--server-pid", node.proc.pid, "--json", path, "--label", "presenced",
                    *extra)
    assert out.returncode == 0, "presbench exited %d:\n%s\n%s" % (out.returncode, out.stdout,
                                                                 out.stderr)
    with open(path) as f:
        return json.load(f), out.stdout


def test_run_every_phase():
    node = Node(config=CONFIG).wait_ready()
    try:
        provision(node)
        r, table = run_json(node, "--rates", "100,300", "--msg-rate", "50")
        assert r["label"] == "presenced", r.get("label")
        assert r["errors"] == {}, r["errors"]
        assert "errors: none" in table, table
        assert r["login"]["bound"] == USERS, r["login"]
        check_lat(r["login"]["latency_ms"], USERS, 10000)
        assert r["roster"]["fetched"] == USERS, r["roster"]
        # Each user hears each contact's initial presence once: by broadcast
        # when it was online first, else by the answer to its probe.
        assert r["initial"]["delivered"] >= USERS * CONTACTS, r["initial"]
        assert len(r["stages"]) == 2
        for st, rate in zip(r["stages"], (100, 300)):
            assert st["rate"] == rate
            # 2 s at the rate, give or take the first and last tick.
            assert abs(st["changes"] - 2 * rate) <= rate * 0.1 + 2, st
            assert st["expected"] == st["changes"] * CONTACTS, st
            assert st["delivered"] == st["expected"], st
            check_lat(st["latency_us"], st["delivered"], 2e6)
            m = st["messages"]
            assert abs(m["sent"] - 2 * 50) <= 7, m
            assert m["delivered"] == m["sent"], m
            check_lat(m["latency_us"], m["delivered"], 2e6)
            assert m["delivered_per_s"] > 0, m
            assert st["server_cores"] >= 0 and st["server_rss_kib"] > 0, st
        lo = r["logout"]
        assert lo["closed"] == USERS, lo
        assert 0 < lo["seconds"] < 10 and lo["per_s"] > 0, lo
        # One sample a second, each with the node's CPU and memory.
        ts = r["timeseries"]
        assert len(ts) >= 4, ts
        assert all(s["server_rss_kib"] > 0 for s in ts), ts
        assert sum(s["logins"] for s in ts) == USERS, ts
        assert sum(s["deliveries"] for s in ts) >= sum(st["delivered"] for st in r["stages"])
        assert sum(s["messages"] for s in ts) == sum(st["messages"]["delivered"]
                                                      for st in r["stages"])
        assert sum(s["logouts"] for s in ts) == USERS, ts
        staged = [s for s in ts if s["phase"].startswith("stage")]
        assert staged and all(0 < s["lat_p50_us"] <= s["lat_p99_us"] < 2e6 for s in staged), ts
        assert all(0 < s["msg_p50_us"] <= s["msg_p99_us"] < 2e6 for s in staged), ts
    finally:
        node.stop()
        node.cleanup()


def test_errors_are_reported():
    """A run against accounts that do not exist fails every login and says so:
    the smoke test above would catch nothing if errors went uncounted."""
    node = Node(config=CONFIG).wait_ready()
    try:
        path = os.path.join(node.tmp, "run.json")
        out = presbench("xmpp", "run", "--port", node.xmpp_port, "--users", 10, "--contacts", 2,
                        "--rates", "10", "--duration", 1, "--quiet", 0.3, "--json", path)
        assert out.returncode == 3, (out.returncode, out.stderr)
        with open(path) as f:
            r = json.load(f)
        assert r["errors"].get("sasl_failure") == 10, r["errors"]
        assert r["login"]["bound"] == 0
    finally:
        node.stop()
        node.cleanup()


def register(node, users, contacts, *extra):
    path = os.path.join(node.tmp, "register.json")
    out = presbench("xmpp", "register", "--port", node.xmpp_port, "--users", users,
                    "--contacts", contacts, "--concurrency", 8, "--phase-timeout", 30,
                    "--json", path, *extra)
    with open(path) as f:
        return out, json.load(f)


def test_register_then_run():
    """The generic provisioning path: XEP-0077 for every user and the RFC 6121
    handshake for every edge, after which a run finds every roster right."""
    users, contacts = 40, 6
    node = Node(config=CONFIG + "registration = true\n").wait_ready()
    try:
        out, r = register(node, users, contacts)
        assert out.returncode == 0, out.stdout + out.stderr
        assert r["mode"] == "xmpp-register" and r["errors"] == {}, r
        assert r["register"]["registered"] == users and r["register"]["existed"] == 0, r
        assert r["login"]["bound"] == users, r
        s = r["subscribe"]
        assert s["handshakes"] == users * contacts // 2, s
        # One request from each end of every edge.
        assert s["requests"] == users * contacts, s
        assert s["users_complete"] == users and 0 < s["seconds"] < 30, s
        assert r["verify"] == {"rosters": users, "wrong": 0}, r
        # A second time finds every account and every subscription in place.
        out, r = register(node, users, contacts)
        assert out.returncode == 0, out.stdout + out.stderr
        assert r["register"]["existed"] == users and r["subscribe"]["users_complete"] == users
        assert r["verify"]["wrong"] == 0, r
        # The run checks each roster holds exactly the graph's contacts. Each
        # user every 0.4 s is 100 changes/s; a message every 2 s, 20/s.
        r, _ = run_json(node, "--every", "0.4", "--msg-every", "2", users=users,
                        contacts=contacts)
        assert r["errors"] == {}, r["errors"]
        assert r["roster"]["fetched"] == users
        st = r["stages"][0]
        assert st["rate"] == 100 and st["messages"]["offered_per_s"] == 20, st
        assert st["delivered"] == st["expected"] == st["changes"] * contacts, st
        assert st["messages"]["delivered"] == st["messages"]["sent"] > 0, st
    finally:
        node.stop()
        node.cleanup()


def test_register_refused():
    node = Node(config=CONFIG).wait_ready()     # registration off
    try:
        out, r = register(node, 10, 2)
        assert out.returncode == 3, (out.returncode, out.stderr)
        assert r["errors"].get("no_register") == 10, r["errors"]
        assert r["register"]["registered"] == 0
    finally:
        node.stop()
        node.cleanup()


def sip_node(import_file):
    """A node serving SIP without authentication on a port of its own, with the
    accounts of sipbench's import file; returns (node, sip_port)."""
    port = harness.free_port()
    # XMPP stays on: its session manager keeps the subscription records that
    # authorise the SIP watchers.
    node = Node(config=CONFIG + "[sip]\nlisten = 127.0.0.1:%d\nauth = off\n" % port)
    node.wait_ready()
    try:
        path = os.path.join(node.tmp, "users.jsonl")
        with open(path, "w") as f:
            f.write(import_file)
        imp = subprocess.run([PRESENCECTL, "--admin", "127.0.0.1:%d" % node.admin_port,
                              "import", path], capture_output=True, text=True, timeout=120)
        assert imp.returncode == 0, imp.stderr
    except BaseException:
        node.stop()
        node.cleanup()
        raise
    return node, port


def sip_provision(presentities, watchers):
    out = presbench("sip", "provision", "--presentities", presentities, "--watchers", watchers)
    assert out.returncode == 0, out.stderr
    return out.stdout


def sip_run(node, port, presentities, watchers, *extra):
    out_json = os.path.join(node.tmp, "sip.json")
    out = presbench("sip", "run", "--port", port, "--presentities", presentities, "--watchers",
                    watchers, "--rates", 50, "--duration", 2, "--quiet", 0.5, "--json", out_json,
                    *extra)
    assert out.returncode == 0, out.stdout + out.stderr
    with open(out_json) as f:
        return json.load(f), out.stdout


def test_sip_mode_is_sipbench():
    """`presbench sip` is sipbench: the same import file, and a short run of
    SUBSCRIBE/PUBLISH/NOTIFY against presenced with every NOTIFY owed received."""
    sipbench = os.path.join(harness.BUILD, "bench", "sipbench")
    args = ["provision", "--presentities", "20", "--watchers", "3"]
    a = subprocess.run([PRESBENCH, "sip"] + args, capture_output=True, text=True, timeout=60)
    b = subprocess.run([sipbench] + args, capture_output=True, text=True, timeout=60)
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    assert a.stdout == b.stdout and a.stdout.count("\n") == 20 * 4, a.stdout[:500]
    node, port = sip_node(a.stdout)
    try:
        r, _ = sip_run(node, port, 20, 3)
        assert r["transport"] == "udp", r["transport"]
        assert r["errors"] == {} or not any(r["errors"].values()), r["errors"]
        st = r["stages"][0]
        assert st["notifies"] == st["expected"] and st["expected"] > 0, st
        # presenced's NOTIFYs are what the generator's quick reader expects: none of
        # them needed the full parser.
        assert r["notify"]["read_whole"] == 0, r["notify"]
    finally:
        node.stop()
        node.cleanup()


def test_sip_over_tcp():
    """--transport tcp: 4 connections carry every dialog, as a SIP trunk does.
    Every subscription becomes active, every NOTIFY owed arrives over the
    connection its SUBSCRIBE came on, nothing is retransmitted (RFC 3261
    §17.1.2.2: no Timer E on a reliable transport) and no connection closes."""
    presentities, watchers = 30, 4
    node, port = sip_node(sip_provision(presentities, watchers))
    try:
        r, table = sip_run(node, port, presentities, watchers, "--transport", "tcp",
                           "--sockets", 4)
        assert r["transport"] == "tcp" and "over TCP" in table, table
        assert r["errors"] == {}, r["errors"]
        assert "errors: none" in table, table
        subs = presentities * watchers
        assert r["subscribe"]["accepted"] == subs, r["subscribe"]
        assert r["subscribe"]["active"] == subs, r["subscribe"]
        assert r["subscribe"]["first_notifies"] == subs, r["subscribe"]
        st = r["stages"][0]
        assert st["publish_ok"] == st["publishes"] > 0, st
        assert st["expected"] == st["publishes"] * watchers, st
        assert st["notifies"] == st["expected"], st
        check_lat(st["latency_us"], st["notifies"], 2e6)
        assert all(v == 0 for v in r["retransmitted_by_us"].values()), r["retransmitted_by_us"]
        assert r["notify"]["retransmissions_seen"] == 0, r["notify"]
        assert r["notify"]["read_whole"] == 0, r["notify"]
        assert r["unsubscribe"]["accepted"] == subs, r["unsubscribe"]
        assert r["unsubscribe"]["final_notifies"] == subs, r["unsubscribe"]
        assert r["unpublish"]["accepted"] == presentities, r["unpublish"]
    finally:
        node.stop()
        node.cleanup()


if __name__ == "__main__":
    harness.run([test_run_every_phase, test_errors_are_reported, test_register_then_run,
                 test_register_refused, test_sip_mode_is_sipbench, test_sip_over_tcp])
