"""Reloading the edge's S2S certificate (issue 8 item 6): deploy/mkcerts.sh --renew, then
SIGHUP or `parleyctl reload`. New inbound handshakes (direct TLS and STARTTLS) present the
new certificate and new outbound connections offer it as their client certificate, while
an S2S stream authenticated before the reload stays up and keeps carrying stanzas. A new
certificate that is missing, unreadable or does not match its key is refused with a log
line naming the file, and the old certificate stays in use."""
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading

import pytest

import harness
from harness import Daemon, free_port, make_certs, wait_for
from linkconf import gateway_conf, policy_conf, proxy_conf, read_sink, s2s_conf
from s2sraw import S2SClient, header

PX_HOST = "127.0.0.50"       # parley-proxy: link, S2S (STARTTLS and direct TLS)
PARTNER_HOST = "127.0.0.51"  # a scripted partner.test server (the edge's outbound side)
PARLEYCTL = os.path.join(harness.BIN, "parleyctl")
MKCERTS = os.path.join(harness.ROOT, "deploy", "mkcerts.sh")


def file_cert(path):
    """(serial as upper-case hex without leading zeros, notBefore) of a PEM certificate."""
    out = subprocess.run(["openssl", "x509", "-noout", "-serial", "-startdate", "-in", path],
                         capture_output=True, text=True, check=True).stdout
    serial = re.search(r"serial=([0-9A-Fa-f]+)", out).group(1).upper().lstrip("0")
    start = re.search(r"notBefore=(.+)", out).group(1).strip()
    return serial, start


def peer_cert(d):
    """(serial, notBefore) of a certificate as Python's getpeercert() reports it."""
    return d["serialNumber"].upper().lstrip("0"), d["notBefore"]


def probe_direct(certs, port):
    """A fresh direct-TLS (XEP-0368) handshake to the edge: the certificate it presents."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(os.path.join(certs, "ca.pem"))
    ctx.set_alpn_protocols(["xmpp-server"])
    with socket.create_connection((PX_HOST, port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="corp.test") as s:
            return peer_cert(s.getpeercert())


def probe_starttls(certs, port):
    """A fresh STARTTLS handshake on the 5269-style listener: the certificate it presents."""
    c = S2SClient(PX_HOST, port, "corp.test", "partner.test", certs=certs)
    try:
        feats = c.open()
        assert "starttls" in feats, feats
        c.starttls()
        return peer_cert(c.sock.getpeercert())
    finally:
        c.close()


class FakePartner:
    """partner.test's server as the edge's fixed proxy for that partner: answers the stream
    header with STARTTLS, completes the handshake asking for a client certificate, records
    that certificate and hangs up. Enough to see what outbound connections present."""

    def __init__(self, certs):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(os.path.join(certs, "partner.test.pem"),
                                 os.path.join(certs, "partner.test.key"))
        self.ctx.load_verify_locations(os.path.join(certs, "ca.pem"))
        self.ctx.verify_mode = ssl.CERT_OPTIONAL
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((PARTNER_HOST, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.seen = []  # (serial, notBefore) of each client certificate
        self.errors = []
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _read_until(self, s, pattern, buf=b""):
        while not re.search(pattern, buf):
            data = s.recv(4096)
            if not data:
                raise EOFError(buf)
            buf += data
        return buf

    def _serve(self, s):
        s.settimeout(10)
        self._read_until(s, rb"<stream:stream[^>]*>")
        s.sendall(b"<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                  b"xmlns:stream='http://etherx.jabber.org/streams' from='partner.test' "
                  b"id='fake-1' version='1.0'><stream:features><starttls "
                  b"xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
                  b"</stream:features>")
        self._read_until(s, rb"<starttls[^>]*/>")
        s.sendall(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        t = self.ctx.wrap_socket(s, server_side=True)
        cert = t.getpeercert()
        self.seen.append(peer_cert(cert) if cert else None)
        t.close()

    def _run(self):
        while not self.stopping:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            try:
                self._serve(s)
            except Exception as e:  # the edge may give up first: recorded, not fatal
                self.errors.append(repr(e))
            finally:
                s.close()

    def close(self):
        self.stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)


def ctl(sock, *args, check=True):
    r = subprocess.run([PARLEYCTL, "-s", sock, *args], capture_output=True, text=True,
                       timeout=20)
    if check:
        assert r.returncode == 0, "parleyctl %s: rc=%d\n%s%s" % (args, r.returncode, r.stdout,
                                                                  r.stderr)
    return r


@pytest.fixture
def edge(tmp_path):
    """parley-proxy with S2S on STARTTLS and direct TLS, its certificate from the lab kit's
    plain mode, a control socket; parley-gateway with the test sink pushing a policy whose
    partner.test allows dialback and names the scripted partner as its fixed proxy."""
    certs = str(tmp_path / "certs")
    make_certs(certs, "proxy.link.test", "gateway.link.test", "corp.test", "partner.test",
               "other.test")
    sockdir = tempfile.mkdtemp(prefix="prel")
    partner = FakePartner(certs)
    link = free_port(PX_HOST)
    starttls, direct = free_port(PX_HOST), free_port(PX_HOST)
    sock = os.path.join(sockdir, "px.sock")
    sink = str(tmp_path / "sink.txt")
    px_text = (proxy_conf(certs, link, host=PX_HOST,
                          extra="\n[control]\nsocket = %s\nmetrics = %s:%d\n"
                          % (sock, PX_HOST, free_port(PX_HOST))) +
               s2s_conf(certs, "%s:%d" % (PX_HOST, starttls),
                        listen_tls="%s:%d" % (PX_HOST, direct),
                        extra="dialback_secret = reload-test-secret-0123456789\n"))
    px = Daemon("parley-proxy", tmp_path, "proxy", px_text)
    gw = Daemon("parley-gateway", tmp_path, "gateway",
                gateway_conf(certs, link, edge_host=PX_HOST, sink_file=sink,
                             extra="\n[control]\nsocket = %s\nmetrics =\n"
                             % os.path.join(sockdir, "gw.sock"),
                             policy=policy_conf(partners={"partner.test": {
                                 "sasl": "optional",
                                 "proxy": "%s:%d" % (PARTNER_HOST, partner.port)}})))
    e = type("Edge", (), {})()
    e.certs, e.px, e.gw, e.sock, e.sink, e.partner = certs, px, gw, sock, sink, partner
    e.starttls, e.direct, e.px_text = starttls, direct, px_text
    try:
        px.start()
        px.wait_log(r"event=link_listen")
        gw.start()
        px.wait_log(r"event=policy_applied")
        px.wait_log(r"event=ctl_listen")
        yield e
    finally:
        partner.close()
        findings = harness.stop_daemons((gw, px))
        shutil.rmtree(sockdir, ignore_errors=True)
    assert not findings, "\n".join(findings)


def authenticated_stream(e):
    """An S2S stream from partner.test authenticated with SASL EXTERNAL."""
    c = S2SClient(PX_HOST, e.starttls, "corp.test", "partner.test", certs=e.certs,
                  cert_name="partner.test")
    c.authenticate()
    return c


def outbound_cert(e):
    """Makes the edge open a new outbound connection to partner.test -- a dialback
    verification stream, asked for by an inbound stream claiming partner.test without a
    certificate -- and returns the client certificate the edge presented on it."""
    n = len(e.partner.seen)
    c = S2SClient(PX_HOST, e.starttls, "corp.test", "partner.test", certs=e.certs)
    try:
        c.open()
        c.starttls()
        c.send(header("corp.test", "partner.test"))
        feats = c.read_until(r"<stream:features>.*?</stream:features>").group(0)
        assert "urn:xmpp:features:dialback" in feats, feats
        c.send("<db:result from='partner.test' to='corp.test'>%s</db:result>" % ("ab" * 32))
        wait_for(lambda: len(e.partner.seen) > n, 15,
                 "the edge's outbound connection at the partner (%r)" % e.partner.errors)
    finally:
        c.close()
    assert e.partner.seen[n] is not None, "the edge presented no client certificate"
    return e.partner.seen[n]


def renew(e):
    """mkcerts.sh --renew for the edge's name: a new key and certificate, same CA, the files
    replaced atomically (what certbot does too)."""
    old = file_cert(os.path.join(e.certs, "corp.test.pem"))
    subprocess.run(["sh", MKCERTS, "--renew", e.certs, "corp.test"], check=True,
                   stdout=subprocess.DEVNULL)
    new = file_cert(os.path.join(e.certs, "corp.test.pem"))
    assert new[0] != old[0], "mkcerts.sh --renew kept the serial"
    return old, new


def sessions(e):
    r = ctl(e.sock, "--json", "sessions")
    return json.loads(r.stdout)["result"]


@pytest.mark.parametrize("how", ["sighup", "parleyctl"])
def test_s2s_certificate_reload(edge, how):
    e = edge
    old = file_cert(os.path.join(e.certs, "corp.test.pem"))
    assert probe_direct(e.certs, e.direct) == old
    assert probe_starttls(e.certs, e.starttls) == old
    assert outbound_cert(e) == old
    # an S2S stream that must survive the reload
    c = authenticated_stream(e)
    c.message("bob@corp.test", "alice@partner.test/pc", "before the reload")
    wait_for(lambda: len(read_sink(e.sink)) >= 1, 10, "the first stanza at the sink")
    ids = [s["id"] for s in sessions(e) if s["dir"] == "in" and s["peer"] == "partner.test"]
    assert len(ids) == 1, sessions(e)

    old, new = renew(e)
    n = e.px.count(r"event=reload\b")
    if how == "sighup":
        e.px.proc.send_signal(signal.SIGHUP)
    else:
        r = ctl(e.sock, "reload")
        assert "reloaded" in r.stdout, r.stdout
    e.px.wait_log(r"event=reload\b", count=n + 1)
    e.px.wait_log(r"event=s2s_tls_reloaded dir=in cert=\S*corp\.test\.pem")
    e.px.wait_log(r"event=s2s_tls_reloaded dir=out cert=\S*corp\.test\.pem")
    assert e.px.count(r"event=reload_refused") == 0

    # new connections, inbound on both listeners and outbound, present the new certificate
    assert probe_direct(e.certs, e.direct) == new
    assert probe_starttls(e.certs, e.starttls) == new
    assert outbound_cert(e) == new
    # the stream from before is still up, the same session, and still carries stanzas
    c.message("bob@corp.test", "alice@partner.test/pc", "after the reload")
    wait_for(lambda: len(read_sink(e.sink)) >= 2, 10, "the second stanza at the sink")
    assert [x[3] for x in read_sink(e.sink)] == ["before the reload", "after the reload"]
    assert ids[0] in [s["id"] for s in sessions(e) if s["dir"] == "in"]
    assert not c.closed and "stream:error" not in c.buf, c.buf
    c.close()


def refused(e, cfg_text, what, file_hint):
    """Writes cfg_text as the edge's config, asks for a reload and checks it was refused
    naming file_hint, with the old certificate still presented."""
    before = probe_direct(e.certs, e.direct)
    with open(e.px.conf, "w") as f:
        f.write(cfg_text)
    r = ctl(e.sock, "reload", check=False)
    assert r.returncode != 0, "%s: reload accepted\n%s" % (what, r.stdout)
    assert file_hint in r.stdout + r.stderr, "%s: %s%s" % (what, r.stdout, r.stderr)
    line = e.px.wait_log(r"event=reload_refused [^\n]*")[-1]
    assert file_hint in line, line
    assert probe_direct(e.certs, e.direct) == before, what
    assert probe_starttls(e.certs, e.starttls) == before, what
    return line


def test_bad_new_certificate_is_refused(edge):
    e = edge
    c = authenticated_stream(e)
    orig = e.px_text
    cur = file_cert(os.path.join(e.certs, "corp.test.pem"))
    pem, key = (os.path.join(e.certs, "corp.test" + x) for x in (".pem", ".key"))

    # a key that does not belong to the certificate (another certificate's key)
    other_key = os.path.join(e.certs, "other.test.key")
    refused(e, orig.replace(key, other_key), "mismatched key", other_key)
    n = e.px.count(r"event=reload_refused")
    # a certificate file that is not there
    gone = os.path.join(e.certs, "renewed-edge.pem")
    refused(e, orig.replace(pem, gone), "missing certificate", gone)
    # a certificate file that is unreadable: not PEM at all
    junk = os.path.join(e.certs, "junk.pem")
    with open(junk, "w") as f:
        f.write("this is not a certificate\n")
    refused(e, orig.replace(pem, junk), "unreadable certificate", junk)
    # the certificate renewed in place but the key file left behind (half a renewal)
    old_key = open(key, "rb").read()
    renew(e)
    with open(key, "wb") as f:
        f.write(old_key)
    refused(e, orig, "renewed certificate with the old key", key)
    assert e.px.count(r"event=reload_refused") >= n + 3

    # the daemon kept the old certificate throughout, and the stream is up
    assert outbound_cert(e) == cur
    c.message("bob@corp.test", "alice@partner.test/pc", "still here")
    wait_for(lambda: len(read_sink(e.sink)) >= 1, 10, "a stanza on the old stream")
    assert not c.closed
    c.close()
