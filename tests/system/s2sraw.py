"""A scripted XMPP server-to-server initiator for tests: speaks exactly the bytes a test wants
(STARTTLS, direct TLS, SASL EXTERNAL, then anything, malformed included) and reads what the
edge answers, so refusals can be checked to the stream error."""
import base64
import re
import socket
import ssl
import time

NS_STREAMS = "http://etherx.jabber.org/streams"


def header(to, frm, version="1.0", extra=""):
    v = " version='%s'" % version if version else ""
    f = " from='%s'" % frm if frm else ""
    return ("<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
            "xmlns:stream='%s' xmlns:db='jabber:server:dialback' to='%s'%s%s%s>"
            % (NS_STREAMS, to, f, v, extra))


class S2SClient:
    def __init__(self, host, port, to, frm, certs=None, cert_name=None, ca="ca.pem",
                 direct_tls=False, timeout=10):
        self.to, self.frm = to, frm
        self.certs, self.cert_name, self.ca = certs, cert_name, ca
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = ""
        self.closed = False
        if direct_tls:
            self._wrap(alpn=True)

    def _ctx(self, alpn=False):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_verify_locations("%s/%s" % (self.certs, self.ca))
        ctx.check_hostname = True
        if self.cert_name:
            ctx.load_cert_chain("%s/%s.pem" % (self.certs, self.cert_name),
                                "%s/%s.key" % (self.certs, self.cert_name))
        if alpn:
            ctx.set_alpn_protocols(["xmpp-server"])
        return ctx

    def _wrap(self, alpn=False):
        self.sock = self._ctx(alpn).wrap_socket(self.sock, server_hostname=self.to)

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def read_until(self, pattern, timeout=None):
        """Reads until pattern (regex over everything received so far) matches; returns the
        match. Raises AssertionError on timeout or EOF."""
        deadline = time.monotonic() + (timeout or self.timeout)
        rx = re.compile(pattern, re.S)
        while True:
            m = rx.search(self.buf)
            if m:
                return m
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                raise AssertionError("no %r in: %r" % (pattern, self.buf[-2000:]))
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                continue
            except (ConnectionResetError, ssl.SSLError, OSError):
                data = b""
            if not data:
                self.closed = True
                continue
            self.buf += data.decode("utf-8", "replace")

    def take(self):
        b, self.buf = self.buf, ""
        return b

    def stream_error(self, timeout=None):
        """Returns the defined condition of the stream error the edge sent."""
        m = self.read_until(r"<stream:error>\s*<([a-z-]+)", timeout)
        return m.group(1)

    def wait_closed(self, timeout=5):
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            try:
                self.read_until(r"(?!x)x", timeout=0.2)
            except AssertionError:
                pass
        return self.closed

    def open(self, **kw):
        self.send(header(self.to, self.frm, **kw))
        m = self.read_until(r"<stream:features>.*?</stream:features>")
        feats = m.group(0)
        self.buf = self.buf[m.end():]
        return feats

    def starttls(self):
        self.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        self.read_until(r"<proceed[^>]*/>")
        self.buf = ""
        self._wrap()

    def external(self, authzid=None):
        az = base64.b64encode((authzid or self.frm).encode()).decode()
        self.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>%s</auth>" % az)
        m = self.read_until(r"<(success|failure)[^>]*?(/>|>.*?</failure>)")
        return m.group(1)

    def authenticate(self, direct_tls=False, sm=False):
        """Header, STARTTLS (unless direct TLS), header, EXTERNAL, header: ready for stanzas."""
        feats = self.open()
        if not direct_tls:
            assert "starttls" in feats, feats
            self.starttls()
            feats = self.open()
        assert "EXTERNAL" in feats, feats
        assert self.external() == "success"
        self.buf = ""
        feats = self.open()
        if sm:
            assert "urn:xmpp:sm:3" in feats, feats
            self.send("<enable xmlns='urn:xmpp:sm:3'/>")
            self.read_until(r"<enabled[^>]*/>")
        return feats

    def message(self, to, frm, body, id=None, extra=""):
        i = " id='%s'" % id if id else ""
        self.send("<message xmlns='jabber:server' to='%s' from='%s' type='chat'%s><body>%s</body>%s</message>"
                  % (to, frm, i, body, extra))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
