#!/usr/bin/env python3
"""provision.py IMPORT_FILE DATA_DIR - Prosody accounts and rosters for
bench/compare, written straight into Prosody's internal file store.

IMPORT_FILE is presbench's JSON-lines import file (`presbench xmpp provision`):
one account per line with its password, salt (base64) and iteration count,
and its roster. Every account gets SCRAM-SHA-256 stored keys (what
mod_auth_internal_hashed keeps with password_hash = "SHA-256"), derived once
per (password, salt, iterations): presbench's accounts share them, which is
what keeps 25,000 accounts a matter of seconds (no PBKDF2 per account,
no plaintext on disk). Rosters are RFC 6121 items with subscription "both",
plus the [false] record that holds the roster version.

Layout (util/datamanager.lua): DATA_DIR/<host>/accounts/<user>.dat and
DATA_DIR/<host>/roster/<user>.dat, each a Lua chunk returning a table, names
%-escaped for every non-alphanumeric byte.
"""
import base64
import hashlib
import hmac
import json
import os
import sys


def enc(s):
    return "".join(c if c.isascii() and c.isalnum() else "%%%02x" % ord(c) for c in s)


def lua_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def scram_keys(password, salt, iterations):
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return hashlib.sha256(client).hexdigest(), server.hex()


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: provision.py IMPORT_FILE DATA_DIR")
    src, data = sys.argv[1], sys.argv[2]
    keys = {}
    made = set()
    n = 0
    with open(src) as f:
        for line in f:
            a = json.loads(line)
            user, host = a["jid"].split("@", 1)
            salt = base64.b64decode(a["salt"])
            k = (a["password"], salt, a["iterations"])
            if k not in keys:
                keys[k] = scram_keys(*k)
            stored, server = keys[k]
            d = os.path.join(data, enc(host))
            if d not in made:
                os.makedirs(os.path.join(d, "accounts"), exist_ok=True)
                os.makedirs(os.path.join(d, "roster"), exist_ok=True)
                made.add(d)
            # Prosody compares the salt as the raw string it hands to PBKDF2.
            with open(os.path.join(d, "accounts", enc(user) + ".dat"), "w") as o:
                o.write("return {\n\t[\"iteration_count\"] = %d;\n\t[\"salt\"] = %s;\n"
                        "\t[\"stored_key\"] = \"%s\";\n\t[\"server_key\"] = \"%s\";\n};\n"
                        % (a["iterations"], lua_str(salt.decode("latin-1")), stored, server))
            items = ["\t[false] = {\n\t\t[\"version\"] = 1;\n\t\t[\"pending\"] = {};\n\t};\n"]
            for it in a["roster"]:
                groups = "".join("[%s] = true; " % lua_str(g) for g in it.get("groups", []))
                items.append("\t[%s] = {\n\t\t[\"subscription\"] = %s;\n\t\t[\"name\"] = %s;\n"
                             "\t\t[\"groups\"] = { %s};\n\t};\n"
                             % (lua_str(it["jid"]), lua_str(it["subscription"]),
                                lua_str(it.get("name", "")), groups))
            with open(os.path.join(d, "roster", enc(user) + ".dat"), "w") as o:
                o.write("return {\n" + "".join(items) + "};\n")
            n += 1
    print("prosody: %d accounts written to %s" % (n, data), file=sys.stderr)


if __name__ == "__main__":
    main()
