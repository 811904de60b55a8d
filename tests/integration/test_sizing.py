"""presencectl sizing and the presets in tools/profiles/: the plan follows the model (nodes
never fall as users grow, devices multiply connections, contacts and TLS cost memory, heavy
users spread over more nodes), bad input exits 2 with a message and no server is needed;
every profile is a complete configuration the daemon accepts, with the values and the
memory budget that sizing prints for it."""
import os
import re
import shutil
import subprocess
import tempfile

import harness
from harness import BUILD, PRESENCED, SRC

PRESENCECTL = os.path.join(BUILD, "presencectl")
PROFILES = os.path.join(SRC, "tools", "profiles")
DEFAULTS = os.path.join(SRC, "presenced.conf")

ROW = re.compile(r"^(\S+\.conf) +(\d+) +(\d+) +(\d+) +(\d+) MiB$", re.M)
NODE = re.compile(r"per node: (\d+) MiB presenced \(estimated\); (\d+) MiB with kernel sockets "
                  r"and the OS,\n  of a budget of (\d+) MiB \(half of 24576\); (\d+) MiB if every")
SETTINGS = re.compile(r"^profile tools/profiles/(\S+): (.*?)\n\n", re.M | re.S)


def sizing(*args, env=None, pre=()):
    out = subprocess.run([PRESENCECTL] + list(pre) + ["sizing"] + [str(a) for a in args],
                         capture_output=True, text=True, timeout=30, env=env)
    return out.returncode, out.stdout, out.stderr


def plan(*args):
    rc, out, err = sizing(*args)
    assert rc == 0 and err == "", (args, rc, err)
    row, node = ROW.search(out), NODE.search(out)
    assert row and node, out
    return {"profile": row.group(1), "nodes": int(row.group(2)),
            "users_per_node": int(row.group(3)), "conns_per_node": int(row.group(4)),
            "mib": int(row.group(5)), "node_mib": int(node.group(2)),
            "budget_mib": int(node.group(3)), "queues_full_mib": int(node.group(4)),
            "text": out}


def capacity(profile):
    """Connections a preset is rated for, from its name: 25k.conf -> 25000."""
    m = re.fullmatch(r"(\d+)k\.conf", profile)
    assert m, profile
    return int(m.group(1)) * 1000


def profile_files():
    names = sorted((f for f in os.listdir(PROFILES) if f.endswith(".conf")), key=capacity)
    assert names, PROFILES
    return names


def parse_conf(text):
    """{(section, key): value} of an inih file as presenced writes and reads it."""
    out, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        m = re.fullmatch(r"\[(\w+)\]", line)
        if m:
            section = m.group(1)
            continue
        key, _, value = line.partition("=")
        out[(section, key.strip())] = value.split(" ;")[0].strip()
    return out


def check_share(p, users, devices):
    assert p["nodes"] >= 1
    assert p["users_per_node"] == -(-users // p["nodes"]), p
    assert p["conns_per_node"] == p["users_per_node"] * devices, p
    assert p["conns_per_node"] <= capacity(p["profile"]), p
    assert p["node_mib"] <= p["budget_mib"], p


def test_monotonic_in_users():
    last = None
    for users in (1, 400, 1000, 1001, 4999, 5000, 14000, 25000, 25001, 60000, 100000, 100001,
                  250000, 250001, 500000, 1000000, 10000000):
        p = plan("--users", users)
        check_share(p, users, 1)
        if last:
            assert p["nodes"] >= last["nodes"], (users, p, last)
            if p["nodes"] == last["nodes"]:
                assert capacity(p["profile"]) >= capacity(last["profile"]), (users, p, last)
                assert p["mib"] >= last["mib"], (users, p, last)
        last = p
    # The smallest preset that holds a node's share; one node up to the largest preset.
    assert plan("--users", 1000)["profile"] == "1k.conf"
    assert plan("--users", 1001)["profile"] == "5k.conf"
    assert plan("--users", 25000)["profile"] == "25k.conf"
    p = plan("--users", 250000)
    assert (p["profile"], p["nodes"]) == ("250k.conf", 1), p
    assert plan("--users", 250001)["nodes"] == 2
    assert plan("--users", 1000000)["nodes"] == 4


def test_devices_multiply_connections():
    for users in (3000, 40000, 200000):
        last = None
        for devices in (1, 2, 3, 8):
            p = plan("--users", users, "--devices", devices)
            check_share(p, users, devices)
            assert f"{users * devices} connections" in p["text"], p["text"]
            if last:
                assert p["nodes"] >= last["nodes"], (users, devices, p, last)
            last = p
    # Clients, not users, fill a node: 25,000 users with two clients need 50,000 connections.
    p = plan("--users", 25000, "--devices", 2)
    assert p["conns_per_node"] == 50000 and p["profile"] == "100k.conf", p
    p = plan("--users", 200000, "--devices", 2)
    assert p["nodes"] == 2 and p["conns_per_node"] == 200000, p


def test_contacts_and_tls_cost_memory():
    base = plan("--users", 25000)
    more = plan("--users", 25000, "--contacts", 500)
    tls = plan("--users", 25000, "--tls")
    none = plan("--users", 25000, "--contacts", 0)
    assert base["profile"] == more["profile"] == tls["profile"] == none["profile"]
    assert none["mib"] < base["mib"] < more["mib"], (none, base, more)
    assert tls["mib"] > base["mib"], (tls, base)
    assert "TLS state per connection" in tls["text"] and "TLS on" in tls["text"]
    assert "TLS state" not in base["text"]
    # Heavy users spread over more nodes instead of passing a node's budget.
    heavy = plan("--users", 250000, "--contacts", 2000)
    assert heavy["nodes"] > 1, heavy
    check_share(heavy, 250000, 1)
    # The assumptions name their sources.
    for source in ("bench/RESULTS.md", "DESIGN.md", "estimate", "measured"):
        assert source in base["text"], base["text"]


def test_bad_input_exits_2():
    cases = [
        ((), "--users is required"),
        (("--users",), "--users needs a value"),
        (("--users", "0"), "from 1 to 1000000000, not '0'"),
        (("--users", "-3"), "not '-3'"),
        (("--users", "1e3"), "not '1e3'"),
        (("--users", " 5"), "not ' 5'"),
        (("--users", "5000000000"), "not '5000000000'"),
        (("--users", "99999999999999999999999"), "not '99999999999999999999999'"),
        (("--users", "10", "--devices", "0"), "--devices takes a whole number from 1 to 64"),
        (("--users", "10", "--devices", "65"), "not '65'"),
        (("--users", "10", "--contacts", "100001"), "--contacts takes a whole number from 0"),
        (("--users", "10", "--contacts"), "--contacts needs a value"),
        (("--users", "10", "--frobnicate"), "unknown argument '--frobnicate'"),
        (("--users", "10", "tls"), "unknown argument 'tls'"),
    ]
    for args, message in cases:
        rc, out, err = sizing(*args)
        assert rc == 2, (args, rc, out, err)
        assert out == "", (args, out)
        assert err.startswith("presencectl: sizing: ") and message in err, (args, err)
        assert "usage: presencectl sizing --users N" in err, (args, err)
    # No server: an unreachable or malformed admin address does not matter.
    rc, out, err = sizing("--users", 10, pre=("--admin", "127.0.0.1:1"))
    assert rc == 0 and ROW.search(out), (rc, out, err)
    env = dict(os.environ, PRESENCED_ADMIN="no-port-here")
    rc, out, err = sizing("--users", 10, env=env)
    assert rc == 0 and ROW.search(out), (rc, out, err)
    # The general usage text lists the command.
    out = subprocess.run([PRESENCECTL], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "sizing --users N" in out.stderr, out.stderr


def test_profiles_accepted_and_consistent():
    with open(DEFAULTS) as f:
        every_key = set(parse_conf(f.read()))
    names = profile_files()
    with open(os.path.join(PROFILES, "README.md")) as f:
        readme = f.read()
    tmp = tempfile.mkdtemp(prefix="presenced-sizing-")
    try:
        for name in names:
            path = os.path.join(PROFILES, name)
            with open(path) as f:
                text = f.read()
            values = parse_conf(text)
            assert set(values) == every_key, (name, set(values) ^ every_key)
            # The real daemon accepts it and reads back exactly the file's values.
            out = subprocess.run([PRESENCED, "--config", path, "--print-config"], cwd=tmp,
                                 capture_output=True, text=True, timeout=30)
            assert out.returncode == 0, (name, out.returncode, out.stderr)
            assert parse_conf(out.stdout) == values, name
            # The file and presencectl sizing describe the same preset.
            users = capacity(name)
            p, p_tls = plan("--users", users), plan("--users", users, "--tls")
            assert (p["profile"], p["nodes"]) == (name, 1), (name, p)
            settings = SETTINGS.search(p["text"])
            assert settings and settings.group(1) == name, p["text"]
            printed = dict(kv.split(" ") for kv in
                           re.sub(r"\s+", " ", settings.group(2)).strip().split(", "))
            sections = {"shards": "node", "pin_shards": "node", "ring_slots": "mailbox",
                        "max_stanza_bytes": "xmpp"}
            for key, value in printed.items():
                assert values[(sections.get(key, "net"), key)] == value, (name, key, value)
            m = re.search(r"presenced: +(\d+) MiB TLS off, (\d+) MiB TLS on\n#   with kernel "
                          r"sockets, OS: +(\d+) MiB TLS off, (\d+) MiB TLS on", text)
            assert m, name
            assert [int(x) for x in m.groups()] == [p["mib"], p_tls["mib"], p["node_mib"],
                                                    p_tls["node_mib"]], (name, m.groups())
            assert f"{users:,} users" in text, name
            row = r"^\| %s \| %s \|" % (re.escape(name), f"{users:,}")
            assert re.search(row, readme, re.M), name
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    harness.run([test_monotonic_in_users, test_devices_multiply_connections,
                 test_contacts_and_tls_cost_memory, test_bad_input_exits_2,
                 test_profiles_accepted_and_consistent])
