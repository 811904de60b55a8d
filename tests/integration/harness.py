"""Start and stop a real presenced for the integration tests.

Each test starts its own node on 127.0.0.1 with free ports and a fresh data
dir, talks to it over real sockets, and stops it by PID. A check that fails
raises; the test's exit code is what meson counts.
"""
import http.client
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BUILD = os.environ.get("PRESENCED_BUILD_DIR", "build")
SRC = os.environ.get("PRESENCED_SRC_DIR", ".")
PRESENCED = os.path.join(BUILD, "presenced")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Node:
    """A presenced process with its own data dir and config."""

    def __init__(self, config="", shards=2, extra_args=(), data_dir=None):
        self.tmp = tempfile.mkdtemp(prefix="presenced-it-")
        self.data_dir = data_dir or os.path.join(self.tmp, "data")
        self.admin_port = free_port()
        self.xmpp_port = free_port()
        self.xmpps_port = free_port()
        self.config_path = os.path.join(self.tmp, "presenced.conf")
        self.write_config(config)
        self.log_path = os.path.join(self.tmp, "presenced.log")
        self.log = open(self.log_path, "wb")
        args = [PRESENCED, "--config", self.config_path, "--shards", str(shards),
                "--data-dir", self.data_dir] + list(extra_args)
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)

    def write_config(self, config):
        # Every listener on loopback with a free port, never the defaults.
        text = "[admin]\nlisten = 127.0.0.1:%d\n" % self.admin_port
        text += "[xmpp]\nlisten = 127.0.0.1:%d\ntls_listen = 127.0.0.1:%d\n" % (
            self.xmpp_port, self.xmpps_port)
        text += "[sip]\nlisten =\ntls_listen =\n[pws]\nlisten =\ntls_listen =\n"
        with open(self.config_path, "w") as f:
            f.write(text + config)

    def log_text(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_ready(self, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("presenced exited with %s:\n%s"
                                     % (self.proc.returncode, self.log_text()))
            try:
                status, _, _ = self.get("/ready")
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("presenced not ready after %ss:\n%s" % (timeout, self.log_text()))

    def get(self, path, method="GET"):
        c = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=10)
        try:
            c.request(method, path)
            r = c.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            c.close()

    def metrics(self):
        status, headers, body = self.get("/metrics")
        assert status == 200, status
        return body.decode()

    def metric_values(self, name, text=None):
        """{labels: value} for one metric family."""
        text = text if text is not None else self.metrics()
        out = {}
        for m in re.finditer(r"^presenced_%s(\{[^}]*\})? (\S+)$" % re.escape(name), text, re.M):
            out[m.group(1) or ""] = float(m.group(2))
        return out

    def metric_sum(self, name, text=None, label_filter=""):
        return sum(v for k, v in self.metric_values(name, text).items() if label_filter in k)

    def wait_metric(self, name, want, timeout=20, label_filter=""):
        """Waits until metric_sum(name) == want: a peer started in the background has
        reached the node, however slowly the machine runs it."""
        deadline = time.time() + timeout
        while True:
            got = self.metric_sum(name, label_filter=label_filter)
            if got == want or time.time() > deadline:
                break
            time.sleep(0.05)
        assert got == want, "%s is %s after %ss, not %s" % (name, got, timeout, want)

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Signals the node and returns (exit code, seconds taken)."""
        start = time.time()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("presenced did not exit within %ss" % timeout)
        # A sanitizer build reports memory errors and leaks in the log.
        log = self.log_text()
        for mark in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            if mark in log:
                raise AssertionError("presenced reported %r:\n%s" % (mark, log[-6000:]))
        return rc, time.time() - start

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def run(tests):
    """Runs test functions; prints ok/FAIL per test; exits 1 if any failed."""
    failed = []
    for t in tests:
        try:
            t()
            print("ok   %s" % t.__name__, flush=True)
        except Exception as e:  # noqa: BLE001 - report and go on
            failed.append(t.__name__)
            print("FAIL %s: %s: %s" % (t.__name__, type(e).__name__, e), flush=True)
    print("%d ok, %d failed%s" % (len(tests) - len(failed), len(failed),
                                  ": " + ", ".join(failed) if failed else ""), flush=True)
    sys.stderr.flush()
    # Leaving without the interpreter's teardown: slixmpp's tasks, collected there,
    # print tracebacks that would push the lines above out of a log's tail.
    os._exit(1 if failed else 0)
