"""The daemon's life: configuration errors, the data-dir lock, column
families, SIGHUP, SIGTERM, restart on the same data."""
import os
import signal
import subprocess
import time

import harness
from harness import Node, PRESENCED


def line_of(node, text):
    """The line number of text in the node's config file."""
    with open(node.config_path) as f:
        return f.read().split("\n").index(text) + 1


def test_bad_config_names_file_and_line():
    node = Node(config="[node]\nshards = 2\nshard = 3\n")
    try:
        rc = node.proc.wait(timeout=10)
        assert rc != 0, "presenced started with an unknown key"
        log = node.log_text()
        want = "presenced.conf:%d:" % line_of(node, "shard = 3")
        assert want in log and "unknown key 'shard'" in log, log
    finally:
        node.cleanup()


def test_bad_value_names_file_and_line():
    node = Node(config="[net]\nidle_timeout_s = soon\n")
    try:
        assert node.proc.wait(timeout=10) != 0
        log = node.log_text()
        want = "presenced.conf:%d:" % line_of(node, "idle_timeout_s = soon")
        assert want in log and "idle_timeout_s" in log, log
    finally:
        node.cleanup()


def test_embedded_defaults():
    out = subprocess.run([PRESENCED, "--print-config"], capture_output=True, text=True,
                         timeout=10, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    for want in ("127.0.0.1:8084", "5222", "5223", "5060", "5061", "8082", "8083",
                 "data_dir", "localhost"):
        assert want in out.stdout, (want, out.stdout)


def test_data_dir_lock_and_column_families():
    first = Node().wait_ready()
    try:
        second = Node(data_dir=first.data_dir)
        try:
            rc = second.proc.wait(timeout=15)
            assert rc != 0, "a second node opened a data dir in use"
            log = second.log_text()
            assert "in use" in log and str(first.proc.pid) in log, log
        finally:
            second.cleanup()
        # The first node is unaffected.
        assert first.get("/ready")[0] == 200
        options = [f for f in os.listdir(first.data_dir) if f.startswith("OPTIONS-")]
        assert options, os.listdir(first.data_dir)
        text = open(os.path.join(first.data_dir, sorted(options)[-1])).read()
        for cf in ("accounts", "rosters", "privacy", "presence", "offline", "rooms",
                   "archive"):
            assert '[CFOptions "%s"]' % cf in text, cf
        rc, took = first.stop()
        assert rc == 0, (rc, first.log_text())
        # Lock released: the same data dir opens again.
        third = Node(data_dir=first.data_dir).wait_ready()
        rc, _ = third.stop()
        third.cleanup()
        assert rc == 0
    finally:
        first.cleanup()


def test_sighup_reloads_log_level():
    node = Node(config="[node]\nlog_level = warn\n").wait_ready()
    try:
        with open(node.config_path, "a") as f:
            f.write("[node]\nlog_level = debug\n")
        node.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while "log level is now debug" not in node.log_text():
            assert time.time() < deadline, node.log_text()
            time.sleep(0.05)
        # Still serving after the reload.
        assert node.get("/health")[0] == 200
        rc, _ = node.stop()
        assert rc == 0
        # At debug level, the stop is now logged.
        assert "stopping" in node.log_text()
    finally:
        node.cleanup()


def test_sigterm_and_sigint_exit_zero():
    for sig in (signal.SIGTERM, signal.SIGINT):
        node = Node().wait_ready()
        try:
            rc, took = node.stop(sig=sig)
            assert rc == 0, (sig, rc, node.log_text())
            assert took < 7, took
        finally:
            node.cleanup()


if __name__ == "__main__":
    harness.run([test_bad_config_names_file_and_line, test_bad_value_names_file_and_line,
                 test_embedded_defaults, test_data_dir_lock_and_column_families,
                 test_sighup_reloads_log_level, test_sigterm_and_sigint_exit_zero])
