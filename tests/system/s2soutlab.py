"""The lab the outbound and dialback system tests share: a dnsmasq answering for `.test` on
127.0.0.154 (a free port), parley-proxy on 127.0.0.80 (inbound S2S listeners, outbound resolver pointed at
that dnsmasq), a Python link peer in the gateway's place (tests/system/linkpeer.py), and real
Prosody partners with slixmpp clients."""
import os
import re
import socket
import ssl
import threading
import time

from harness import Daemon, free_port
from linkconf import proxy_conf, s2s_conf
from linkpeer import LinkPeer
from peers import Dnsmasq, Prosody, xmpp_no_service, xmpp_srv
from xmppclient import XmppClient

DNS_IP = "127.0.0.154"
EDGE_IP = "127.0.0.80"
PARTNER_IP = "127.0.0.81"
WRONG_IP = "127.0.0.83"
HOLE_IP = "127.0.0.86"
FAKE_IP = "127.0.0.84"
SECRET = "lab-dialback-secret-0123456789"


class Blackhole:
    """A listening socket that never accepts nor answers: TCP connects (the kernel completes
    the handshake into the backlog) and then nothing ever comes back."""

    def __init__(self, host):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]

    def stop(self):
        self.sock.close()


class ScriptedPartner:
    """A scripted partner server on host: STARTTLS with the partner's own certificate, SASL
    EXTERNAL accepted without question. Subclasses set their state, then call this
    __init__ (which starts accepting), and implement _serve with _negotiate."""

    def __init__(self, host, certs, domain):
        self.certs, self.domain = certs, domain
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _read_until(self, conn, buf, pattern):
        rx = re.compile(pattern, re.S)
        while True:
            m = rx.search(buf)
            if m:
                return m, buf[m.end():]
            data = conn.recv(65536)
            if not data:
                raise EOFError
            buf += data.decode("utf-8", "replace")

    def _header(self, sid):
        return ("<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                "xmlns:stream='http://etherx.jabber.org/streams' from='%s' id='%s' "
                "version='1.0'>" % (self.domain, sid))

    def _negotiate(self, conn, features):
        """STARTTLS, SASL EXTERNAL, then the authenticated stream's header with features.
        Returns the TLS connection and what was read past the header."""
        buf = ""
        _, buf = self._read_until(conn, buf, r"<stream:stream[^>]*>")
        conn.sendall((self._header("s1") + "<stream:features><starttls "
                      "xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
                      "</stream:features>").encode())
        _, buf = self._read_until(conn, buf, r"<starttls[^>]*/>")
        conn.sendall(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(self.certs, self.domain + ".pem"),
                            os.path.join(self.certs, self.domain + ".key"))
        conn = ctx.wrap_socket(conn, server_side=True)
        buf = ""
        _, buf = self._read_until(conn, buf, r"<stream:stream[^>]*>")
        conn.sendall((self._header("s2") + "<stream:features><mechanisms "
                      "xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL"
                      "</mechanism></mechanisms></stream:features>").encode())
        _, buf = self._read_until(conn, buf, r"<auth[^>]*>[^<]*</auth>")
        conn.sendall(b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
        _, buf = self._read_until(conn, buf, r"<stream:stream[^>]*>")
        conn.sendall((self._header("s3") + "<stream:features>%s</stream:features>"
                      % features).encode())
        return conn, buf


class FakePartner(ScriptedPartner):
    """A scripted partner server for exact control of XEP-0198: <sm/> offered and enabled,
    then it records each <message/> and answers <r/> only when the test says so (ack())."""

    def __init__(self, host, certs, domain):
        self.lock = threading.Condition()
        self.conns = []          # one list of received message bodies per connection
        self.r_seen = 0          # <r/> received on the current connection
        self.current = None      # the current connection's socket
        super().__init__(host, certs, domain)

    def _serve(self, conn):
        try:
            conn, buf = self._negotiate(conn, "<sm xmlns='urn:xmpp:sm:3'/>")
            _, buf = self._read_until(conn, buf, r"<enable[^>]*/>")
            conn.sendall(b"<enabled xmlns='urn:xmpp:sm:3'/>")
            got = []
            with self.lock:
                self.conns.append(got)
                self.current = conn
                self.r_seen = 0
                self.lock.notify_all()
            rx = re.compile(r"<message\b.*?</message>|<r xmlns='urn:xmpp:sm:3'/>", re.S)
            while True:
                m = rx.search(buf)
                if not m:
                    data = conn.recv(65536)
                    if not data:
                        break
                    buf += data.decode("utf-8", "replace")
                    continue
                buf = buf[m.end():]
                with self.lock:
                    if m.group(0).startswith("<r"):
                        self.r_seen += 1
                    else:
                        got.append(re.search(r"<body>(.*?)</body>", m.group(0)).group(1))
                    self.lock.notify_all()
        except (OSError, EOFError, ssl.SSLError):
            pass
        try:
            conn.close()
        except OSError:
            pass

    def ack(self, h):
        with self.lock:
            self.current.sendall(b"<a xmlns='urn:xmpp:sm:3' h='%d'/>" % h)

    def wait(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        with self.lock:
            while not pred():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("fake partner: no %s within %.1fs (conns=%r r=%d)" % (
                        what, timeout, self.conns, self.r_seen))
                self.lock.wait(min(left, 0.1))

    def stop(self):
        self.closed = True
        self.sock.close()
        with self.lock:
            if self.current is not None:
                try:
                    self.current.close()
                except OSError:
                    pass


class Lab:
    def __init__(self, tmp_path, running, daemons, certs):
        self.tmp_path, self.running, self.daemons, self.certs = tmp_path, running, daemons, certs
        self.edge_port = free_port(EDGE_IP)
        self.edge_tls_port = free_port(EDGE_IP)
        self.link_port = free_port()
        self.hole = Blackhole(HOLE_IP)
        running.append(self.hole)
        self.dns = None
        self.px = None
        self.lp = None
        self.partner = None

    def start_dns(self, partner_direct_tls=False, extra_srv=(), extra_hosts=(),
                  partner_v6=None):
        """partner_v6: also an AAAA record for partner.test's server (tried first)."""
        srv = [xmpp_srv("corp.test", "edge.corp.test", self.edge_port),
               xmpp_srv("partner.test", "s2s.partner.test", 5269),
               xmpp_srv("wrong.test", "s2s.wrong.test", 5269),
               xmpp_srv("hole.test", "s2s.hole.test", self.hole.port),
               xmpp_no_service("void.test"),
               xmpp_no_service("void.test", direct_tls=True)]
        if partner_direct_tls:
            srv.append(xmpp_srv("partner.test", "s2s.partner.test", 5270, direct_tls=True))
        partner_addrs = (PARTNER_IP, partner_v6) if partner_v6 else (PARTNER_IP,)
        hosts = [("edge.corp.test", EDGE_IP), ("s2s.partner.test",) + partner_addrs,
                 ("s2s.wrong.test", WRONG_IP), ("s2s.hole.test", HOLE_IP)]
        self.dns = Dnsmasq(self.tmp_path / "dns", address=DNS_IP, srv=list(srv) + list(extra_srv),
                           hosts=hosts + list(extra_hosts))
        self.running.append(self.dns.start())
        return self.dns

    def start_edge(self, s2s_extra="", log_level="info"):
        extra = "resolver = %s:%d\ndialback_secret = %s\n%s" % (DNS_IP, self.dns.port, SECRET,
                                                                s2s_extra)
        conf = proxy_conf(self.certs, self.link_port) + s2s_conf(
            self.certs, "%s:%d" % (EDGE_IP, self.edge_port),
            "%s:%d" % (EDGE_IP, self.edge_tls_port), extra=extra)
        conf = conf.replace("log_level = info", "log_level = %s" % log_level)
        self.px = Daemon("parley-proxy", self.tmp_path, "proxy", conf).start()
        self.daemons.append(self.px)
        self.px.wait_log(r"event=s2s_listen .*kind=direct-tls")
        self.lp = LinkPeer("127.0.0.1", self.link_port, self.certs).start()
        self.running.append(self.lp)
        return self.px

    def policy(self, partners, **kw):
        self.lp.send_policy(partners=partners, **kw)
        self.px.wait_log(r"event=policy_applied generation=%d" % self.lp.generation)

    def start_prosody(self, domain="partner.test", ip=PARTNER_IP, users=(), **kw):
        p = Prosody(self.tmp_path / domain, ip, [domain], self.certs, dns=self.dns,
                    users=users, **kw)
        self.running.append(p.start())
        return p

    def client(self, jid, password, ip, **kw):
        c = XmppClient(jid, password, ip, workdir=self.tmp_path, **kw)
        self.running.append(c.start())
        return c


def certs_dir(tmp_path_factory, name):
    from harness import make_certs
    d = tmp_path_factory.mktemp(name)
    make_certs(d, "proxy.link.test", "gateway.link.test", "corp.test", "partner.test",
               "other.test", "fake.test")
    return str(d)


def cert_paths(certs, name):
    return (os.path.join(certs, name + ".pem"), os.path.join(certs, name + ".key"))
