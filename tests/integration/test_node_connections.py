"""10,000 loopback connections: counted across shards on /metrics, the page
valid per promtool, and a SIGTERM that closes them all and exits 0 within
the drain deadline."""
import os
import select
import shutil
import signal
import socket
import subprocess
import time

import harness
from harness import Node

CONNS = 10000


def promtool_check(text):
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing (Debian package prometheus)"
    out = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr


def open_many(port, n):
    socks = []
    for i in range(n):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\0" * 8)
        s.connect(("127.0.0.1", port))
        socks.append(s)
    return socks


def wait_metric(node, name, want, timeout=30):
    deadline = time.time() + timeout
    while True:
        text = node.metrics()
        got = node.metric_sum(name, text)
        if got >= want or time.time() > deadline:
            return text, got
        time.sleep(0.1)


def test_ten_thousand_connections():
    harness.raise_nofile()
    node = Node(config="[net]\nidle_timeout_s = 600\n[shutdown]\ndrain_timeout_ms = 3000\n",
                shards=2).wait_ready()
    socks = []
    try:
        socks = open_many(node.admin_port, CONNS)
        # The scrape's own connection is open while the page is rendered.
        text, opened = wait_metric(node, "connections_open", CONNS + 1)
        assert opened == CONNS + 1, opened
        per_shard = node.metric_values("connections_open", text)
        assert len(per_shard) == 2, per_shard
        assert all(v > 0 for v in per_shard.values()), per_shard
        accepted = node.metric_sum("connections_accepted_total", text)
        assert accepted >= CONNS + 1, accepted
        assert node.metric_sum("loop_turns_total", text) > 0
        promtool_check(text)

        rc, took = node.stop(signal.SIGTERM, timeout=15)
        assert rc == 0, (rc, node.log_text())
        assert took < 3 + 3, took
        # Every client sees its connection closed.
        poller = select.poll()
        by_fd = {}
        for s in socks:
            s.setblocking(False)
            poller.register(s.fileno(), select.POLLIN | select.POLLHUP | select.POLLERR)
            by_fd[s.fileno()] = s
        closed = 0
        deadline = time.time() + 10
        while by_fd and time.time() < deadline:
            for fd, _ in poller.poll(500):
                try:
                    data = by_fd[fd].recv(1)
                except (ConnectionResetError, BlockingIOError):
                    data = b""
                if data == b"":
                    poller.unregister(fd)
                    del by_fd[fd]
                    closed += 1
        assert closed == CONNS, closed
    finally:
        for s in socks:
            s.close()
        node.cleanup()


if __name__ == "__main__":
    harness.run([test_ten_thousand_connections])
