"""Prosody (partner.test) -> parley-proxy -> link -> parley-gateway's test sink, found through
dnsmasq SRV records, authenticated by SASL EXTERNAL with the test CA."""
import time

import pytest

from harness import Daemon, free_port, listening_socket, make_certs, wait_for
from linkconf import gateway_conf, policy_conf, proxy_conf, read_sink, s2s_conf
from peers import Dnsmasq, Prosody, xmpp_srv
from xmppclient import XmppClient

EDGE_IP = "127.0.0.10"
PARTNER_IP = "127.0.0.31"
N = 1000


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("interopcerts")
    make_certs(d, "proxy.link.test", "gateway.link.test", "corp.test", "partner.test")
    return str(d)


class _Closer:
    def __init__(self, *socks):
        self.socks = socks

    def stop(self):
        for s in self.socks:
            s.close()


def lab(tmp_path, running, daemons, certs, direct_tls, smacks=False):
    # The S2S listening sockets are handed to the edge as systemd would, so they outlive it.
    ls, port = listening_socket(EDGE_IP)
    lts, tls_port = listening_socket(EDGE_IP)
    running.append(_Closer(ls, lts))
    link = free_port()
    srv = [xmpp_srv("corp.test", "edge.corp.test", tls_port if direct_tls else port,
                    direct_tls=direct_tls),
           xmpp_srv("partner.test", "s2s.partner.test", 5269)]
    dns = Dnsmasq(tmp_path / "dns", srv=srv,
                  hosts=[("edge.corp.test", EDGE_IP), ("s2s.partner.test", PARTNER_IP)])
    running.append(dns.start())
    px = Daemon("parley-proxy", tmp_path, "proxy",
                proxy_conf(certs, link) + s2s_conf(certs, "%s:%d" % (EDGE_IP, port),
                                                   "%s:%d" % (EDGE_IP, tls_port)))
    px.listen_socks = (ls, lts)
    px.start(listen_socks=px.listen_socks)
    daemons.append(px)
    sink = str(tmp_path / "sink.txt")
    gw = Daemon("parley-gateway", tmp_path, "gateway",
                gateway_conf(certs, link, sink_file=sink, policy=policy_conf())).start()
    daemons.append(gw)
    px.wait_log(r"event=policy_applied")
    partner = Prosody(tmp_path / "partner", PARTNER_IP, ["partner.test"], certs, dns=dns,
                      users=[("alice", "partner.test", "pw-a")], smacks=smacks,
                      log_level="info")
    running.append(partner.start())
    alice = XmppClient("alice@partner.test", "pw-a", PARTNER_IP, workdir=tmp_path)
    running.append(alice.start())
    return px, gw, partner, alice, sink


@pytest.mark.parametrize("direct_tls", [False, True], ids=["starttls", "direct-tls"])
def test_prosody_to_edge_1000_messages(tmp_path, running, daemons, certs, direct_tls):
    px, gw, partner, alice, sink = lab(tmp_path, running, daemons, certs, direct_tls)
    # Prosody may reorder what it queued while the stream was being set up (seen with direct
    # TLS): warm the stream up so the run measures an established stream.
    alice.send_message("bob@corp.test", "warm-up")
    wait_for(lambda: len(read_sink(sink)) >= 1, 20, "the warm-up message")
    alice.send_messages("bob@corp.test", N, fmt="msg-%d")
    wait_for(lambda: len(read_sink(sink)) >= N + 1, 60, "%d messages on the link" % N)
    time.sleep(0.5)
    got = read_sink(sink)[1:]
    assert [g[3] for g in got] == ["msg-%d" % i for i in range(N)]
    assert all(g[1].startswith("alice@partner.test") and g[2] == "bob@corp.test" for g in got)
    px.wait_log(r"event=s2s_auth .*domain=partner\.test method=EXTERNAL identity=DNS-ID "
                r"partner=partner\.test tls=TLSv1\.3 direct_tls=%d" % direct_tls)
    assert alice.errors() == []


def test_xep0198_edge_sigkill_loses_nothing(tmp_path, running, daemons, certs):
    """SIGKILL the edge in a 1000-message run from a partner with XEP-0198: the partner
    resends what we had not acknowledged (we acknowledge only what the gateway processed),
    so every message arrives; duplicates only for what was in flight, counted."""
    px, gw, partner, alice, sink = lab(tmp_path, running, daemons, certs, False, smacks=True)
    alice.send_message("bob@corp.test", "warm-up")
    wait_for(lambda: len(read_sink(sink)) >= 1, 20, "the warm-up message")
    px.wait_log(r"event=s2s_sm .*enabled=1")
    alice.send_messages("bob@corp.test", N, fmt="msg-%d", wait=False)
    wait_for(lambda: len(read_sink(sink)) >= 1 + N // 3, 60, "a third of the run")
    px.kill()
    before_kill = len(read_sink(sink))
    px.start(listen_socks=px.listen_socks)
    want = {"msg-%d" % i for i in range(N)}
    wait_for(lambda: want <= {g[3] for g in read_sink(sink)}, 90, "every message after restart")
    time.sleep(1)
    bodies = [g[3] for g in read_sink(sink)][1:]
    dups = len(bodies) - N
    print("XEP-0198 edge SIGKILL: %d messages, %d duplicates (in flight at the kill)" % (N, dups))
    assert set(bodies) == want
    assert 0 <= dups < N // 2
    # first occurrences keep the partner's order
    seen, firsts = set(), []
    for b in bodies:
        if b not in seen:
            seen.add(b)
            firsts.append(b)
    assert firsts == ["msg-%d" % i for i in range(N)]
    assert alice.errors() == []
    if before_kill < N + 1:  # messages were outstanding: the partner came back and resent
        assert px.count(r"event=s2s_auth") >= 2
