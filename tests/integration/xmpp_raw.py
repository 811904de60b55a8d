"""A raw XMPP client over direct TLS for the tests that need exact control of
the wire (stream management acks, idle behaviour, registration before
authentication): it writes the bytes a test gives and reads what comes back."""
import base64
import re
import socket
import ssl
import time

HEADER = ("<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
          "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")


class Raw:
    def __init__(self, port):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10))
        self.buf = ""

    def send(self, text):
        self.sock.sendall(text.encode())

    def read_until(self, pattern, timeout=10):
        """Reads until pattern (a regex) matches the unread text; returns the
        match and consumes the text up to its end."""
        deadline = time.time() + timeout
        rx = re.compile(pattern, re.S)
        while True:
            m = rx.search(self.buf)
            if m:
                self.buf = self.buf[m.end():]
                return m
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError("no %r within %ss; got %r" % (pattern, timeout, self.buf))
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise AssertionError("stream closed waiting for %r; got %r" % (pattern, self.buf))
            self.buf += chunk.decode(errors="replace")

    def read_for(self, seconds):
        """Everything that arrives within seconds (and what was unread)."""
        deadline = time.time() + seconds
        while True:
            left = deadline - time.time()
            if left <= 0:
                break
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, ssl.SSLError):
                break
            if not chunk:
                break
            self.buf += chunk.decode(errors="replace")
        out, self.buf = self.buf, ""
        return out

    def open(self):
        self.send(HEADER)
        self.read_until(r"</stream:features>")

    def login(self, user, password, resource="raw", bind=True):
        self.open()
        token = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
        self.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>"
                  % token)
        self.read_until(r"<success[^>]*/>|<success[^>]*>.*?</success>")
        self.open()
        if bind:
            self.send("<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                      "<resource>%s</resource></bind></iq>" % resource)
            self.read_until(r"<iq[^>]*id='bind'.*?</iq>")
        return self

    def kill(self):
        """Drops the TCP connection without closing the stream."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        except OSError:
            pass
        self.sock.close()

    def close(self):
        try:
            self.send("</stream:stream>")
        except OSError:
            pass
        self.sock.close()
