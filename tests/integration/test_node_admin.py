"""The admin endpoint over real HTTP (curl and raw sockets): /health, /ready,
/metrics, errors for bad requests, pipelining, the output bound for a reader
that does not drain, and idle timeouts."""
import re
import socket
import subprocess
import time

import harness
from harness import Node


def raw(port, data, read_until_close=True, timeout=5):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    out = b""
    if read_until_close:
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except socket.timeout:
            pass
    s.close()
    return out


def curl(*args):
    out = subprocess.run(["curl", "-s", "-S", "--max-time", "10"] + list(args),
                         capture_output=True, text=True, timeout=20)
    return out


def test_endpoints_with_curl():
    node = Node().wait_ready()
    try:
        base = "http://127.0.0.1:%d" % node.admin_port
        out = curl("-i", base + "/health")
        assert out.returncode == 0 and "200 OK" in out.stdout and "ok" in out.stdout, out
        out = curl("-o", "/dev/null", "-w", "%{http_code}", base + "/ready")
        assert out.stdout == "200", out
        out = curl("-i", base + "/metrics")
        assert "200 OK" in out.stdout
        assert "Content-Type: text/plain; version=0.0.4" in out.stdout, out.stdout[:400]
        assert "# TYPE presenced_connections_open gauge" in out.stdout
        assert "presenced_ready 1" in out.stdout
        assert "presenced_storage_open 1" in out.stdout
        out = curl("-o", "/dev/null", "-w", "%{http_code}", base + "/nope")
        assert out.stdout == "404", out
        out = curl("-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", base + "/metrics")
        assert out.stdout == "405", out
        out = curl("-I", base + "/health")
        assert "200 OK" in out.stdout and "Content-Length: 3" in out.stdout, out
    finally:
        rc, _ = node.stop()
        node.cleanup()
        assert rc == 0


def test_bad_requests_get_errors_and_node_stays_up():
    node = Node().wait_ready()
    try:
        port = node.admin_port
        assert raw(port, b"BLAH\r\n\r\n").startswith(b"HTTP/1.1 400"), "garbage"
        big = b"GET / HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n"
        assert raw(port, big).startswith(b"HTTP/1.1 431"), "huge header"
        assert raw(port, b"GET /health HTTP/9.9\r\n\r\n")[:12] in (b"HTTP/1.1 400", b"HTTP/1.1 505")
        smuggle = (b"POST /metrics HTTP/1.1\r\nContent-Length: 4\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        assert raw(port, smuggle).startswith(b"HTTP/1.1 400"), "smuggling"
        assert node.get("/health")[0] == 200
        assert node.proc.poll() is None
    finally:
        node.stop()
        node.cleanup()


def test_pipelined_requests_answered_in_order():
    node = Node().wait_ready()
    try:
        reqs = b"".join(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % p
                        for p in (b"/health", b"/nope", b"/ready"))
        reqs += b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        out = raw(node.admin_port, reqs)
        codes = re.findall(rb"HTTP/1\.1 (\d{3}) ", out)
        assert codes == [b"200", b"404", b"200", b"200"], out
    finally:
        node.stop()
        node.cleanup()


def test_reader_that_does_not_drain_is_disconnected():
    # A small output bound; pipelined scrapes that the client never reads.
    node = Node(config="[net]\noutput_queue_max_bytes = 65536\n").wait_ready()
    try:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", node.admin_port))
        req = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
        s.settimeout(0.5)
        sent = 0
        try:
            for _ in range(20000):
                s.sendall(req)
                sent += 1
        except (socket.timeout, BrokenPipeError, ConnectionResetError):
            pass
        deadline = time.time() + 15
        overflows = 0
        while time.time() < deadline:
            overflows = node.metric_sum("output_queue_overflows_total")
            if overflows >= 1:
                break
            time.sleep(0.1)
        assert overflows == 1, overflows
        closed = node.metric_sum("connections_closed_total", label_filter='reason="overflow"')
        assert closed == 1, closed
        s.close()
        assert node.get("/health")[0] == 200
    finally:
        node.stop()
        node.cleanup()


def test_idle_connections_time_out():
    node = Node(config="[net]\nidle_timeout_s = 1\n").wait_ready()
    try:
        idle = socket.create_connection(("127.0.0.1", node.admin_port), timeout=5)
        start = time.time()
        assert idle.recv(1) == b""          # closed by the server
        took = time.time() - start
        assert 0.5 < took < 4, took
        assert node.metric_sum("connections_closed_total", label_filter='reason="idle"') >= 1
    finally:
        node.stop()
        node.cleanup()


if __name__ == "__main__":
    harness.run([test_endpoints_with_curl, test_bad_requests_get_errors_and_node_stays_up,
                 test_pipelined_requests_answered_in_order,
                 test_reader_that_does_not_drain_is_disconnected,
                 test_idle_connections_time_out])
