"""Inbound stanzas the edge cannot pass to the gateway link are held for it while it is full,
and bounced to the partner only when they waited [s2s] link_wait or are too large for it; never
dropped, and counted: parley_s2s_in_bounces_total{condition} and one event=s2s_in_bounce log
line each, parley_s2s_in_held_stanzas (now) and parley_s2s_in_held_total (ever). Real
parley-proxy and parley-gateway (test sink: it records every stanza frame before acknowledging
it), a scripted partner (s2sraw) authenticated with SASL EXTERNAL.

- link full: the gateway is SIGSTOPped, so it stops acknowledging while its TCP connection
  stays; 1000 messages in one write fill the proxy's window ([link] window = 64, the ring holds
  twice that) and what was already read beyond it is held: nothing is bounced before link_wait
  (1s here), then every held one is, with <resource-constraint/>. After SIGCONT every other
  message reaches the gateway and nothing more is bounced: bounced + delivered = all,
  disjoint, no duplicates.
- burst with a running gateway: 1000 messages in one read, window 64: all reach the gateway,
  in order, none bounced, though some were held; with XEP-0198 the partner's h counts them in
  order and reaches 1000; a stream closed right behind the burst is closed only after all of
  it went to the link.
- too large: [link] max_frame = 1024 and a 4 KB body -> <policy-violation/>; the stream stays
  usable.

Addresses 127.0.0.160-169 only."""
import os
import re
import signal
import threading
import time
import urllib.request

import pytest

from harness import Daemon, free_port, make_certs, wait_for
from linkconf import gateway_conf, policy_conf, proxy_conf, read_sink, s2s_conf
from s2sraw import S2SClient

EDGE_IP = "127.0.0.160"  # proxy: link, S2S, metrics
GW_IP = "127.0.0.161"    # gateway: metrics
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
METRIC = "parley_s2s_in_bounces_total"
HELD = "parley_s2s_in_held_stanzas"
HELD_TOTAL = "parley_s2s_in_held_total"
SM_A = re.compile(r"<a xmlns='urn:xmpp:sm:3' h='(\d+)'/>")


def scrape(hostport):
    with urllib.request.urlopen("http://%s:%d/metrics" % hostport, timeout=10) as r:
        assert r.status == 200
        return r.read().decode()


def metric(hostport, name, **labels):
    """The value of one sample (labels exactly as given), or None if absent."""
    want = set(labels.items())
    for line in scrape(hostport).splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if got == want:
            return float(m.group(3))
    return None


class Continuer:
    """Registered in `running`: a SIGSTOPped daemon is continued before the daemons fixture
    stops it (by PID) with SIGTERM."""

    def __init__(self, daemon):
        self.daemon = daemon

    def stop(self):
        if self.daemon.alive():
            os.kill(self.daemon.pid, signal.SIGCONT)


def write_while_stopped(daemon, c, data):
    """Writes data while `daemon` (the proxy) is stopped, so that all of it waits in its socket
    buffer and its next read takes a full chunk (64 KB) at once, whatever the scheduling.
    Without this the first read may hold anything from one TLS record to 64 KB."""
    os.kill(daemon.pid, signal.SIGSTOP)
    try:
        t = threading.Thread(target=c.send, args=(data,), daemon=True)
        t.start()
        t.join(0.5)  # ~100 KB fit in the two sockets' buffers on loopback
    finally:
        os.kill(daemon.pid, signal.SIGCONT)
    t.join(10)
    assert not t.is_alive(), "the write did not complete"


class Lab:
    """parley-proxy (S2S, small link limits) + parley-gateway (test sink, no SIP), both with a
    control socket in tmp_path and their own metrics endpoint."""

    def __init__(self, tmp_path, daemons, certs, link_extra, s2s_extra=""):
        self.sink = str(tmp_path / "sink.txt")
        px_sock, gw_sock = str(tmp_path / "px.sock"), str(tmp_path / "gw.sock")
        assert len(gw_sock) < 100, "control socket path too long for sun_path: " + gw_sock
        self.px_metrics = (EDGE_IP, free_port(EDGE_IP))
        self.gw_metrics = (GW_IP, free_port(GW_IP))
        link = free_port(EDGE_IP)
        self.s2s_port = free_port(EDGE_IP)
        self.px = Daemon("parley-proxy", tmp_path, "proxy",
                         proxy_conf(certs, link, host=EDGE_IP,
                                    extra=link_extra + "\n[control]\nsocket = %s\nmetrics = %s:%d\n"
                                    % (px_sock, *self.px_metrics)) +
                         s2s_conf(certs, "%s:%d" % (EDGE_IP, self.s2s_port),
                                  extra=s2s_extra)).start()
        daemons.append(self.px)
        self.px.wait_log(r"event=s2s_listen")
        # the S2S stanza limit (64k) is far above the link's max_frame (1024 in the test)
        self.gw = Daemon("parley-gateway", tmp_path, "gateway",
                         gateway_conf(certs, link, edge_host=EDGE_IP, sink_file=self.sink,
                                      extra="\n[control]\nsocket = %s\nmetrics = %s:%d\n"
                                      % (gw_sock, *self.gw_metrics),
                                      policy=policy_conf(max_stanza_bytes="64k"))).start()
        daemons.append(self.gw)
        self.px.wait_log(r"event=policy_applied")
        self.px.wait_log(r"event=metrics_listen")
        self.gw.wait_log(r"event=metrics_listen")

    def partner(self, certs, sm=False):
        c = S2SClient(EDGE_IP, self.s2s_port, "corp.test", "partner.test", certs=certs,
                      cert_name="partner.test")
        c.authenticate(sm=sm)
        c.buf = ""
        return c

    def partner_then_stop_gateway(self, certs, running):
        """A partner stream whose warm-up message reached the gateway, then the gateway
        SIGSTOPped with the link window empty (continued again by `running`)."""
        c = self.partner(certs)
        c.message("bob@corp.test", "alice@partner.test/pc", "warmup", id="w")
        wait_for(lambda: self.bodies() == ["warmup"], 10, "the warm-up message at the gateway")
        # everything acknowledged: the window is empty when the gateway stops
        wait_for(lambda: metric(self.px_metrics, "parley_link_window_depth",
                                peer="gateways") == 0, 10, "the link window to drain")
        running.append(Continuer(self.gw))
        running.append(Continuer(self.px))
        os.kill(self.gw.pid, signal.SIGSTOP)
        return c

    def bodies(self):
        return [r[3] for r in read_sink(self.sink)]

    def bounces(self, cond):
        return metric(self.px_metrics, METRIC, condition=cond)

    def held(self):
        """(held now, held ever)"""
        return metric(self.px_metrics, HELD), metric(self.px_metrics, HELD_TOTAL)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("bouncecerts")
    make_certs(d, "proxy.link.test", "gateway.link.test", "corp.test", "partner.test")
    return str(d)


def msg(i, body=None):
    return ("<message to='bob@corp.test' from='alice@partner.test/pc' id='m%d'>"
            "<body>%s</body></message>" % (i, body if body is not None else "m%d" % i))


ERR_RX = re.compile(r"<message\b[^>]*type='error'[^>]*>.*?</message>", re.S)


def error_stanzas(c, quiet=1.0, timeout=20):
    """Reads from the partner stream until no new bytes arrived for `quiet` seconds; returns
    the <message type='error'> stanzas received (and leaves the rest in c.buf)."""
    end = time.monotonic() + timeout
    last, last_len = time.monotonic(), -1
    while time.monotonic() < end:
        try:
            c.read_until(r"(?!x)x", timeout=0.2)
        except AssertionError:
            pass
        if len(c.buf) != last_len:
            last, last_len = time.monotonic(), len(c.buf)
        elif time.monotonic() - last >= quiet:
            break
    return ERR_RX.findall(c.buf)


def check_bounce(stanza, cond, etype, text):
    """A bounce: to/from swapped, the original id, the condition and text."""
    m = re.match(r"<message\b([^>]*)>", stanza)
    attrs = dict(re.findall(r"([a-z]+)='([^']*)'", m.group(1)))
    assert attrs["from"] == "bob@corp.test" and attrs["to"] == "alice@partner.test/pc", stanza
    assert attrs["type"] == "error" and re.fullmatch(r"m\d+", attrs["id"]), stanza
    assert re.search(r"<error type='%s'><%s xmlns='%s'/><text xmlns='%s'>%s</text></error>"
                     % (etype, cond, NS_STANZAS, NS_STANZAS, re.escape(text)), stanza), stanza
    return attrs["id"]


def test_link_full_holds_then_bounces_after_link_wait(tmp_path, daemons, running, certs):
    N = 1000
    lab = Lab(tmp_path, daemons, certs, "window = 64\n", s2s_extra="link_wait = 1s\n")
    assert lab.bounces("resource-constraint") == 0 and lab.bounces("policy-violation") == 0
    assert lab.held() == (0, 0)
    c = lab.partner_then_stop_gateway(certs, running)
    try:
        write_while_stopped(lab.px, c, "".join(msg(i) for i in range(N)))  # one write
        t0 = time.monotonic()  # the proxy reads the burst from about now
        # Within link_wait nothing is bounced: what the link cannot take is held.
        time.sleep(0.4)
        try:
            c.read_until(r"(?!x)x", timeout=0.1)
        except AssertionError:
            pass
        early = ERR_RX.findall(c.buf)
        now, ever = lab.held()
        early_bounces = lab.bounces("resource-constraint")
        assert time.monotonic() - t0 < 0.9, "too slow to look inside link_wait"
        assert not early and early_bounces == 0, "bounced before link_wait"
        assert now > 0 and now == ever, (now, ever)
        # after link_wait every held stanza is bounced (the gateway still does not ack)
        errs = error_stanzas(c)
        B = len(errs)
        assert time.monotonic() - t0 >= 1.0
        assert B == ever, "held %d, bounced %d; proxy log tail:\n%s" % (
            ever, B, lab.px.text()[-3000:])
        assert lab.held() == (0, ever)
        lab.px.wait_log(r"event=s2s_in_hold_expired peer=[0-9.]+ domain=partner\.test "
                        r"bounced=%d held=0" % B)
        bounced = [check_bounce(e, "resource-constraint", "wait",
                                "gateway link congested, try again") for e in errs]
        assert len(set(bounced)) == B, "an id bounced twice"
        assert lab.bounces("resource-constraint") == B
        assert lab.bounces("policy-violation") == 0
        logged = re.findall(r"event=s2s_in_bounce peer=[0-9.]+ domain=partner\.test "
                            r"kind=message from=alice@partner\.test/pc to=bob@corp\.test "
                            r"id=(m\d+) cond=resource-constraint answered=1", lab.px.text())
        assert sorted(logged) == sorted(bounced)
        # nothing reached the gateway while it was stopped (it cannot read)
        assert lab.bodies() == ["warmup"]
    finally:
        os.kill(lab.gw.pid, signal.SIGCONT)

    # Once the gateway runs again every id not bounced reaches it: the proxy resumes reading
    # on the gateway's acknowledgements, holds what a read brings beyond the link's ring and
    # hands it over as acknowledgements come, well within link_wait; nothing more is bounced.
    def settled():
        return len(lab.bodies()) - 1 + len(ERR_RX.findall(c.buf)) >= N
    end = time.monotonic() + 60
    while not settled() and time.monotonic() < end:
        try:
            c.read_until(r"(?!x)x", timeout=0.2)
        except AssertionError:
            pass
    assert settled(), "not all accounted for: %d at the gateway, %d bounced" % (
        len(lab.bodies()) - 1, len(ERR_RX.findall(c.buf)))
    time.sleep(0.5)  # a duplicate or a late bounce would show up here
    error_stanzas(c, quiet=0.3)
    errs = ERR_RX.findall(c.buf)
    total = len(errs)
    bounced = [check_bounce(e, "resource-constraint", "wait",
                            "gateway link congested, try again") for e in errs]
    got = lab.bodies()[1:]
    assert len(bounced) == len(set(bounced)), "an id bounced twice"
    assert len(got) == len(set(got)), "duplicates at the gateway"
    assert set(got).isdisjoint(bounced), "a bounced id was also delivered"
    assert sorted(got + bounced, key=lambda i: int(i[1:])) == ["m%d" % i for i in range(N)]
    assert lab.bounces("resource-constraint") == total
    assert lab.bounces("policy-violation") == 0
    assert lab.px.count(r"event=s2s_in_bounce ") == total
    now, ever = lab.held()
    print("held while stopped and bounced: %d, bounced after SIGCONT: %d, delivered: %d, "
          "held in all: %d" % (B, total - B, len(got), ever))
    assert total == B, "bounced after SIGCONT"
    assert got == sorted(got, key=lambda i: int(i[1:])), "delivered out of order"
    assert now == 0

    # the stream is still usable and nothing more is bounced
    c.buf = ""
    c.message("bob@corp.test", "alice@partner.test/pc", "after", id="after")
    wait_for(lambda: lab.bodies()[-1:] == ["after"], 10, "the message after the bounces")
    assert not ERR_RX.findall(c.buf)
    assert lab.bounces("resource-constraint") == total
    c.close()


def test_too_large_for_the_link_bounces_policy_violation(tmp_path, daemons, certs):
    lab = Lab(tmp_path, daemons, certs, "max_frame = 1024\n")
    c = lab.partner(certs)
    c.send(msg(1, "x" * 4096))
    m = c.read_until(r"<message\b[^>]*type='error'[^>]*>.*?</message>")
    assert check_bounce(m.group(0), "policy-violation", "modify",
                        "stanza too large for the gateway link") == "m1"
    assert lab.bounces("policy-violation") == 1
    assert lab.bounces("resource-constraint") == 0
    lab.px.wait_log(r"event=s2s_in_bounce peer=[0-9.]+ domain=partner\.test kind=message "
                    r"from=alice@partner\.test/pc to=bob@corp\.test id=m1 "
                    r"cond=policy-violation answered=1")
    # the stream stays up: a small message afterwards reaches the gateway
    c.buf = ""
    c.send(msg(2))
    wait_for(lambda: lab.bodies() == ["m2"], 10, "the small message at the gateway")
    assert not ERR_RX.findall(c.buf) and not c.closed
    assert lab.bounces("policy-violation") == 1
    # an error stanza that is too large is dropped, not answered (RFC 6120 §8.3), but counted
    c.send("<message to='bob@corp.test' from='alice@partner.test/pc' id='e1' type='error'>"
           "<body>%s</body><error type='cancel'><item-not-found xmlns='%s'/></error></message>"
           % ("y" * 4096, NS_STANZAS))
    lab.px.wait_log(r"event=s2s_in_bounce .*id=e1 cond=policy-violation answered=0")
    assert lab.bounces("policy-violation") == 2
    c.send(msg(3))
    wait_for(lambda: lab.bodies() == ["m2", "m3"], 10, "the next small message")
    assert not ERR_RX.findall(c.buf)
    c.close()


def test_burst_with_a_running_gateway_is_not_bounced(tmp_path, daemons, running, certs):
    N = 1000
    lab = Lab(tmp_path, daemons, certs, "window = 64\n")
    c = lab.partner(certs)
    running.append(Continuer(lab.px))
    # one write, the gateway running throughout
    write_while_stopped(lab.px, c, "".join(msg(i) for i in range(N)))
    wait_for(lambda: len(lab.bodies()) + lab.bounces("resource-constraint") >= N, 30,
             "all %d accounted for" % N)
    assert lab.bounces("resource-constraint") == 0
    assert lab.bodies() == ["m%d" % i for i in range(N)]  # all, in order, once
    now, ever = lab.held()
    assert now == 0 and ever > 0, (now, ever)  # the link's ring alone could not take the read
    assert not ERR_RX.findall(c.buf) and lab.px.count(r"event=s2s_in_bounce ") == 0
    print("held on the way: %d" % ever)
    c.close()


def test_burst_with_stream_management_counts_in_order(tmp_path, daemons, running, certs):
    """XEP-0198: h counts only stanzas handed to the link and acknowledged, in order; the held
    ones count once they went to the link. An <r/> behind the burst (read while stanzas are
    held) is answered at once and again as the gateway catches up, until h = N."""
    N = 1000
    lab = Lab(tmp_path, daemons, certs, "window = 64\n")
    c = lab.partner(certs, sm=True)
    running.append(Continuer(lab.px))
    write_while_stopped(lab.px, c, "".join(msg(i) for i in range(N)) +
                        "<r xmlns='urn:xmpp:sm:3'/>")
    wait_for(lambda: len(lab.bodies()) >= N, 30, "all %d at the gateway" % N)
    assert lab.bodies() == ["m%d" % i for i in range(N)]
    c.read_until(r"<a xmlns='urn:xmpp:sm:3' h='%d'/>" % N, timeout=10)
    hs = [int(h) for h in SM_A.findall(c.buf)]
    assert hs == sorted(hs) and hs[-1] == N, hs
    assert lab.held()[1] > 0 and lab.bounces("resource-constraint") == 0
    c.buf = ""
    c.send("<r xmlns='urn:xmpp:sm:3'/>")
    c.read_until(r"<a xmlns='urn:xmpp:sm:3' h='%d'/>" % N, timeout=10)
    c.close()


def test_close_behind_held_stanzas_waits_for_them(tmp_path, daemons, running, certs):
    """A partner that ends its stream right behind a burst: the edge hands every held stanza to
    the link first, then closes its side; nothing is lost or bounced."""
    N = 1000
    lab = Lab(tmp_path, daemons, certs, "window = 64\n")
    c = lab.partner(certs)
    running.append(Continuer(lab.px))
    write_while_stopped(lab.px, c, "".join(msg(i) for i in range(N)) + "</stream:stream>")
    c.read_until(r"</stream:stream>", timeout=30)
    # the edge closed after handing the last one to the link; the gateway may still be at it
    wait_for(lambda: len(lab.bodies()) >= N, 10, "all %d at the gateway" % N)
    assert lab.bodies() == ["m%d" % i for i in range(N)]
    assert lab.held() == (0, lab.held()[1]) and lab.held()[1] > 0
    assert lab.bounces("resource-constraint") == 0 and not ERR_RX.findall(c.buf)
    assert lab.px.count(r"event=s2s_in_lost ") == 0
    lab.px.wait_log(r"event=s2s_close peer=[0-9.]+ domain=partner\.test stanzas=%d" % N)
    c.close()


def test_stream_error_behind_held_stanzas_answers_them(tmp_path, daemons, running, certs):
    """A stream error in the same read as held stanzas (here a 'from' outside the partner's
    domain, while the gateway is stopped): the held ones are answered with
    <resource-constraint/> before the stream error, not lost; what the link took is
    delivered once the gateway runs again."""
    N = 300
    lab = Lab(tmp_path, daemons, certs, "window = 64\n")
    c = lab.partner_then_stop_gateway(certs, running)
    try:
        write_while_stopped(lab.px, c, "".join(msg(i) for i in range(N)) +
                            "<message to='bob@corp.test' from='eve@elsewhere.test' id='bad'>"
                            "<body>x</body></message>")
        m = c.read_until(r"<stream:error>\s*<invalid-from", timeout=10)
        before = c.buf[:m.start()]
        errs = ERR_RX.findall(before)
        now, ever = lab.held()
        assert ever > 0 and now == 0 and len(errs) == ever, (len(errs), now, ever)
        bounced = [check_bounce(e, "resource-constraint", "wait",
                                "gateway link congested, try again") for e in errs]
        assert lab.bounces("resource-constraint") == len(errs)
        assert lab.px.count(r"event=s2s_in_lost ") == 0
    finally:
        os.kill(lab.gw.pid, signal.SIGCONT)
    wait_for(lambda: len(lab.bodies()) - 1 + len(bounced) >= N, 20, "the rest at the gateway")
    got = lab.bodies()[1:]
    assert got + bounced == ["m%d" % i for i in range(N)]
    c.close()
