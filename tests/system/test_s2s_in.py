"""Inbound S2S at the real parley-proxy, driven by a scripted partner (s2sraw) for exact
control: STARTTLS and direct TLS with SASL EXTERNAL, hand-off to the link, and every refusal
with its exact stream error while the proxy stays up. Interop with Prosody is in
test_s2s_prosody.py."""
import os
import socket
import time

import pytest

from harness import Daemon, free_port, make_certs, wait_for
from linkconf import gateway_conf, policy_conf, proxy_conf, read_sink, s2s_conf
from s2sraw import S2SClient, header

HOST = "127.0.0.10"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("s2scerts")
    make_certs(d, "proxy.link.test", "gateway.link.test", "corp.test", "partner.test",
               "stranger.test", "other.test")
    make_certs(d, "partner.test", ca="rogue")
    return str(d)


class Edge:
    """parley-proxy + parley-gateway (test sink) with a federation policy."""

    def __init__(self, tmp_path, daemons, certs, policy=None, max_per_ip=32, gateway=True,
                 host=HOST, s2s_extra=""):
        self.host = host
        self.port = free_port(host)
        self.tls_port = free_port(host)
        link = free_port()
        fmt = "[%s]:%d" if ":" in host else "%s:%d"
        self.px = Daemon("parley-proxy", tmp_path, "proxy",
                         proxy_conf(certs, link) +
                         s2s_conf(certs, fmt % (host, self.port), fmt % (host, self.tls_port),
                                  max_per_ip=max_per_ip, extra=s2s_extra)).start()
        daemons.append(self.px)
        self.px.wait_log(r"event=s2s_listen .*kind=direct-tls")
        self.sink = str(tmp_path / "sink.txt")
        self.gw = None
        if gateway:
            self.gw = Daemon("parley-gateway", tmp_path, "gateway",
                             gateway_conf(certs, link, sink_file=self.sink,
                                          policy=policy or policy_conf())).start()
            daemons.append(self.gw)
            self.px.wait_log(r"event=policy_applied")

    def client(self, certs, frm="partner.test", to="corp.test", cert="partner.test",
               direct=False, **kw):
        return S2SClient(self.host, self.tls_port if direct else self.port, to, frm, certs=certs,
                         cert_name=cert, direct_tls=direct, **kw)

    def stanzas(self):
        return read_sink(self.sink)


@pytest.mark.parametrize("direct", [False, True], ids=["starttls", "direct-tls"])
def test_external_then_stanzas_reach_the_link(tmp_path, daemons, certs, direct):
    e = Edge(tmp_path, daemons, certs)
    c = e.client(certs, direct=direct)
    c.authenticate(direct_tls=direct)
    for i in range(500):
        c.message("bob@corp.test", "alice@partner.test/phone", "m%d &amp; &lt;%d&gt;" % (i, i))
    wait_for(lambda: len(e.stanzas()) >= 500, 20, "500 stanzas on the link")
    got = e.stanzas()
    assert [s[3] for s in got] == ["m%d & <%d>" % (i, i) for i in range(500)]
    assert all(s[1] == "alice@partner.test/phone" and s[2] == "bob@corp.test" for s in got)
    e.px.wait_log(r"event=s2s_auth .*domain=partner\.test method=EXTERNAL")
    c.close()


def test_no_policy_yet_is_not_authorized(tmp_path, daemons, certs):
    e = Edge(tmp_path, daemons, certs, gateway=False)
    c = e.client(certs)
    c.send(header("corp.test", "partner.test"))
    assert c.stream_error() == "not-authorized"
    assert c.wait_closed()


def refusal(e, certs, **kw):
    return e.client(certs, **kw)


def test_refusals_with_exact_stream_errors(tmp_path, daemons, certs):
    e = Edge(tmp_path, daemons, certs)

    # unknown 'to' in the header
    c = refusal(e, certs, to="nowhere.test")
    c.send(header("nowhere.test", "partner.test"))
    assert c.stream_error() == "host-unknown"

    # a domain that is not a partner
    c = refusal(e, certs, frm="stranger.test", cert="stranger.test")
    c.send(header("corp.test", "stranger.test"))
    assert c.stream_error() == "not-authorized"

    # plaintext where TLS is required: a stanza before STARTTLS
    c = refusal(e, certs)
    c.open()
    c.message("bob@corp.test", "alice@partner.test", "too early")
    assert c.stream_error() == "policy-violation"

    # untrusted certificate (right name, rogue CA)
    c = refusal(e, certs, cert="rogue-partner.test")
    c.open()
    c.starttls()
    c.send(header("corp.test", "partner.test"))
    m = c.read_until(r"<stream:error>\s*<([a-z-]+).*?<text[^>]*>([^<]*)")
    assert m.group(1) == "not-authorized" and "partner.test" in m.group(2)

    # a valid certificate for another domain
    c = refusal(e, certs, cert="other.test")
    c.open()
    c.starttls()
    c.send(header("corp.test", "partner.test"))
    assert c.stream_error() == "not-authorized"

    # a spoofed 'from' after authentication
    c = refusal(e, certs)
    c.authenticate()
    c.message("bob@corp.test", "mallory@evil.test", "spoof")
    assert c.stream_error() == "invalid-from"

    # a stanza to a domain not served here
    c = refusal(e, certs)
    c.authenticate()
    c.message("bob@elsewhere.test", "alice@partner.test", "relay me")
    assert c.stream_error() == "host-unknown"

    # nothing refused reached the link
    time.sleep(0.3)
    assert e.stanzas() == []
    assert e.px.alive()


LAUGHS = ("<!DOCTYPE lolz [<!ENTITY lol 'lol'>"
          + "".join("<!ENTITY lol%d '%s'>" % (i, ("&lol%d;" % (i - 1) if i > 1 else "&lol;") * 10)
                    for i in range(1, 10)) + "]>")


@pytest.mark.parametrize("prolog", ["<!DOCTYPE stream:stream>", LAUGHS], ids=["doctype", "billion-laughs"])
def test_doctype_and_entities_before_the_header(tmp_path, daemons, certs, prolog):
    e = Edge(tmp_path, daemons, certs)
    c = e.client(certs)
    c.send("<?xml version='1.0'?>" + prolog + header("corp.test", "partner.test")[len("<?xml version='1.0'?>"):]
           + "<message xmlns='jabber:server'><body>&lol9;</body></message>")
    assert c.stream_error() == "restricted-xml"
    assert c.wait_closed()
    assert e.px.alive()


@pytest.mark.parametrize("payload,cond", [
    ("<!DOCTYPE stream:stream>", "not-well-formed"),  # after the root element: not XML at all
    ("<!-- a comment -->", "restricted-xml"),
    ("<?pi data?>", "restricted-xml"),
    ("<message xmlns='jabber:server'><body>\xff\xfe</body></message>", "not-well-formed"),
    ("<message xmlns='jabber:server'><body>" + "x" * 20000 + "</body></message>", "policy-violation"),
    ("<message xmlns='jabber:server'>" + "<a>" * 100 + "</a>" * 100 + "</message>", "policy-violation"),
], ids=["late-doctype", "comment", "pi", "bad-utf8", "oversize", "deep"])
def test_restricted_and_malformed_xml(tmp_path, daemons, certs, payload, cond):
    e = Edge(tmp_path, daemons, certs)
    c = e.client(certs)
    c.open()
    data = payload.encode("latin-1") if "\xff" in payload else payload.encode()
    c.send(data)
    assert c.stream_error() == cond
    if cond == "policy-violation" and "x" * 100 in payload:
        assert "stanza-too-big" in c.buf
    assert c.wait_closed()
    assert e.px.alive()


def test_oversize_after_auth_uses_policy_limit(tmp_path, daemons, certs):
    e = Edge(tmp_path, daemons, certs, policy=policy_conf(max_stanza_bytes="16k"))
    c = e.client(certs)
    c.authenticate()
    c.message("bob@corp.test", "alice@partner.test", "x" * 12000)  # fits 16k
    c.message("bob@corp.test", "alice@partner.test", "y" * 20000)  # does not
    assert c.stream_error() == "policy-violation"
    assert "stanza-too-big" in c.buf
    wait_for(lambda: len(e.stanzas()) == 1, 5, "the stanza that fitted")


def test_preauth_slowloris_times_out(tmp_path, daemons, certs):
    e = Edge(tmp_path, daemons, certs, policy=policy_conf(establishment_timeout="2s"))
    c = e.client(certs)
    c.send("<?xml version='1.0'?><stream:stream xmlns='jabber:server' ")  # and never more
    t0 = time.monotonic()
    assert c.stream_error(timeout=6) == "connection-timeout"
    assert 1.5 < time.monotonic() - t0 < 5


def test_connection_flood_is_refused_and_memory_bounded(tmp_path, daemons, certs):
    e = Edge(tmp_path, daemons, certs, max_per_ip=8)
    socks = []
    try:
        for _ in range(8):
            socks.append(socket.create_connection((HOST, e.port), timeout=5))
        time.sleep(0.2)
        extra = e.client(certs)
        assert extra.stream_error() == "policy-violation"
        assert "too many connections" in extra.buf
        for _ in range(300):  # a burst of connects beyond the limit, each refused
            s = socket.create_connection((HOST, e.port), timeout=5)
            s.close()
    finally:
        for s in socks:
            s.close()
    time.sleep(0.5)
    pid = e.px.pid
    with open("/proc/%d/status" % pid) as f:
        rss = int([l for l in f if l.startswith("VmRSS")][0].split()[1])
    assert e.px.alive()
    assert rss < 200 * 1024, rss  # KiB, ASan build included
    # a legitimate partner still gets in
    c = e.client(certs)
    c.authenticate()


def test_sigterm_sends_system_shutdown(tmp_path, daemons, certs):
    e = Edge(tmp_path, daemons, certs)
    c = e.client(certs)
    c.authenticate()
    e.px.proc.send_signal(15)
    assert c.stream_error() == "system-shutdown"
    c.close()  # as a partner does after </stream:stream>
    assert e.px.proc.wait(10) == 0


def test_ipv6_listener(tmp_path, daemons, certs):
    e = Edge(tmp_path, daemons, certs, host="::1")
    for direct in (False, True):
        c = e.client(certs, direct=direct)
        c.authenticate(direct_tls=direct)
        c.message("bob@corp.test", "alice@partner.test", "over v6 %d" % direct)
    wait_for(lambda: len(e.stanzas()) == 2, 10, "both stanzas")
    e.px.wait_log(r"event=s2s_listen addr=::1 .*kind=direct-tls")


def test_per_partner_connection_limit(tmp_path, daemons, certs):
    e = Edge(tmp_path, daemons, certs, policy=policy_conf(per_partner_limit=2))
    a, b = e.client(certs), e.client(certs)
    a.authenticate()
    b.authenticate()
    c = e.client(certs)
    c.send(header("corp.test", "partner.test"))
    assert c.stream_error() == "policy-violation"
    assert "too many connections from this partner" in c.buf
    a.close()
    time.sleep(0.5)
    d = e.client(certs)
    d.authenticate()  # a slot freed


def test_whitespace_keepalive_then_inactivity_close(tmp_path, daemons, certs):
    e = Edge(tmp_path, daemons, certs,
             policy=policy_conf(keepalive="1s", inactivity_timeout="4s"))
    c = e.client(certs)
    c.authenticate()
    c.buf = ""
    t0 = time.monotonic()
    c.read_until(r"^ +", timeout=4)  # RFC 6120 4.6.1 whitespace keepalive
    c.read_until(r"</stream:stream>", timeout=8)  # idle past the inactivity timeout
    assert time.monotonic() - t0 >= 2.5
    assert "<stream:error>" not in c.buf
    assert c.wait_closed()


def test_rate_limit_pauses_reading_without_loss(tmp_path, daemons, certs):
    e = Edge(tmp_path, daemons, certs, s2s_extra="rate_limit = 64k")
    c = e.client(certs)
    c.authenticate()
    t0 = time.monotonic()
    body = "r" * 900
    for i in range(300):  # ~300 KiB: more than four seconds' worth at 64 KiB/s
        c.message("bob@corp.test", "alice@partner.test", "%d %s" % (i, body))
    wait_for(lambda: len(e.stanzas()) == 300, 30, "all 300 stanzas")
    took = time.monotonic() - t0
    # ~300 KiB at 64 KiB/s, less the initial bucket and the last read before a pause: at
    # least ~2.7 s (about 0.1 s without the limit)
    assert took > 2.0, took
    assert [g[3].split()[0] for g in e.stanzas()] == [str(i) for i in range(300)]


def test_server_auth_only_partner_certificate_is_accepted(tmp_path, daemons, certs):
    """Publicly trusted certificates no longer carry clientAuth: a partner presenting a
    serverAuth-only certificate as a TLS client still authenticates by EXTERNAL."""
    import shutil
    d = tmp_path / "eku"
    d.mkdir()
    for f in ("ca.pem", "ca.key"):
        shutil.copy(os.path.join(certs, f), d / f)
    make_certs(d, "partner.test", eku="serverAuth")
    out = __import__("subprocess").run(["openssl", "x509", "-noout", "-ext", "extendedKeyUsage",
                                        "-in", str(d / "partner.test.pem")],
                                       capture_output=True, text=True).stdout
    assert "TLS Web Server Authentication" in out and "Client" not in out, out
    e = Edge(tmp_path, daemons, certs)
    c = S2SClient(HOST, e.port, "corp.test", "partner.test", certs=str(d),
                  cert_name="partner.test")
    c.authenticate()
    c.message("bob@corp.test", "alice@partner.test", "serverAuth only")
    wait_for(lambda: len(e.stanzas()) == 1, 5, "the stanza")
