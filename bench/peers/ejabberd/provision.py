#!/usr/bin/env python3
"""provision.py IMPORT_FILE DB - ejabberd accounts and rosters for
bench/compare, in the sqlite database of ejabberd's sql backend.

IMPORT_FILE is presbench's JSON-lines import file (`presbench xmpp provision`):
one account per line with its password, salt (base64) and iteration count,
and its roster. The schema is ejabberd's own (/usr/share/ejabberd/sql/lite.sql,
the default, not the multi-host one); the rows are written in one transaction.
Accounts get SCRAM-SHA-256 keys (auth_scram_hash: sha256) as ejabberd stores
them in sql: "sha256:" and the base64 StoredKey in `password` (the prefix
names the hash; without it ejabberd takes SHA-1), base64 ServerKey and salt,
derived once per (password, salt, iterations): presbench's accounts share
them, so no PBKDF2 per account and no plaintext on disk. Roster items have
subscription both ('B', ask 'N'), with their group and a roster version.
"""
import base64
import hashlib
import hmac
import json
import os
import sqlite3
import sys

SCHEMA = "/usr/share/ejabberd/sql/lite.sql"


def scram_keys(password, salt, iterations):
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = base64.b64encode
    return ("sha256:" + b64(hashlib.sha256(client).digest()).decode(),
            b64(server).decode())


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: provision.py IMPORT_FILE DB")
    src, db = sys.argv[1], sys.argv[2]
    if os.path.exists(db):
        os.unlink(db)
    con = sqlite3.connect(db)
    con.executescript(open(SCHEMA).read())
    con.execute("PRAGMA journal_mode = OFF")
    con.execute("PRAGMA synchronous = OFF")
    keys = {}
    users, items, groups, versions = [], [], [], []
    with open(src) as f:
        for line in f:
            a = json.loads(line)
            user = a["jid"].split("@", 1)[0]
            k = (a["password"], a["salt"], a["iterations"])
            if k not in keys:
                keys[k] = scram_keys(a["password"], base64.b64decode(a["salt"]),
                                     a["iterations"])
            stored, server = keys[k]
            users.append((user, stored, server, a["salt"], a["iterations"]))
            for it in a["roster"]:
                sub = {"both": "B", "to": "T", "from": "F"}.get(it["subscription"], "N")
                items.append((user, it["jid"], it.get("name", ""), sub))
                for g in it.get("groups", []):
                    groups.append((user, it["jid"], g))
            versions.append((user, "1"))
    with con:
        con.executemany("INSERT INTO users (username, password, serverkey, salt, "
                        "iterationcount) VALUES (?, ?, ?, ?, ?)", users)
        con.executemany("INSERT INTO rosterusers (username, jid, nick, subscription, ask, "
                        "askmessage, server, subscribe, type) "
                        "VALUES (?, ?, ?, ?, 'N', '', 'N', '', 'item')", items)
        con.executemany("INSERT INTO rostergroups (username, jid, grp) VALUES (?, ?, ?)",
                        groups)
        con.executemany("INSERT INTO roster_version (username, version) VALUES (?, ?)",
                        versions)
    con.close()
    print("ejabberd: %d accounts, %d roster items written to %s" % (len(users), len(items), db),
          file=sys.stderr)


if __name__ == "__main__":
    main()
