"""Outbound S2S from the real parley-proxy to real Prosody partners found through dnsmasq SRV
records: link stanzas (pushed by a Python link peer in the gateway's place) reach a slixmpp
client at the partner over STARTTLS and over direct TLS with SASL EXTERNAL, and over dialback
when our rules for the partner say SASL is not supported; every stanza gets exactly one
Delivered or Bounce, with the right condition for a domain without service, an address that
never answers, a partner certificate for another name, and outbound validation."""
import re
import socket
import time

import pytest

from harness import wait_for
from linkpeer import NEG_NOT_SUPPORTED
from s2soutlab import (FAKE_IP, HOLE_IP, PARTNER_IP, WRONG_IP, FakePartner, Lab,
                       cert_paths, certs_dir)
from peers import xmpp_srv

N = 300


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return certs_dir(tmp_path_factory, "s2soutcerts")


def partner_lab(tmp_path, running, daemons, certs, direct_tls=False, partner_rules=None,
                smacks=False, partner_v6=None, log_level="info", **policy_kw):
    lab = Lab(tmp_path, running, daemons, certs)
    lab.start_dns(partner_direct_tls=direct_tls, partner_v6=partner_v6)
    lab.start_edge(log_level=log_level)
    lab.policy({"partner.test": partner_rules or {}}, **policy_kw)
    partner = lab.start_prosody(users=[("alice", "partner.test", "pw-a")], smacks=smacks)
    alice = lab.client("alice@partner.test", "pw-a", PARTNER_IP, xml=True)
    return lab, partner, alice


def send_and_check(lab, alice, n=N, start=0):
    t0 = time.monotonic()
    refs = [lab.lp.send_stanza("bob@corp.test/desk", "alice@partner.test", "m-%d" % i)
            for i in range(start, start + n)]
    outcomes = lab.lp.wait_outcomes(refs, timeout=60)
    print("figure: %d link stanzas -> partner: first outcome %.0f ms, all %.0f ms, in %d "
          "Delivered/Bounce frames so far" % (
              n, 1000 * min(lab.lp.outcome_delay(r) for r in refs),
              1000 * (max(lab.lp.outcome_times[r] for r in refs) - t0), lab.lp.outcome_frames))
    assert outcomes == [("delivered", None)] * n
    got = alice.received(timeout=30, count=start + n)
    assert [m["body"] for m in got][start:] == ["m-%d" % i for i in range(start, start + n)]
    assert all(m["from"] == "bob@corp.test/desk" for m in got[start:])
    return refs


@pytest.mark.parametrize("smacks", [False, True], ids=["plain", "xep0198"])
def test_starttls_external_delivers_and_reuses_one_stream(tmp_path, running, daemons, certs,
                                                          smacks):
    lab, partner, alice = partner_lab(tmp_path, running, daemons, certs, smacks=smacks)
    # the first stanza sets the stream up; the rest are queued behind it or reuse it
    send_and_check(lab, alice)
    px = lab.px
    px.wait_log(r"event=s2s_out_auth .*from=corp\.test to=partner\.test method=EXTERNAL "
                r"tls=TLSv1\.3 direct_tls=0 cert=valid sm=%d" % smacks)
    assert px.count(r"event=s2s_out_auth ") == 1
    assert px.count(r"event=s2s_out_connect ") == 1
    assert partner.external_accepted_from("corp.test")
    assert partner.lines("Received[s2sin_unauthed]: <result ") == []
    # SRV first: the edge asked dnsmasq for both services
    dlog = lab.dns.log_text()
    assert "query[SRV] _xmpps-server._tcp.partner.test" in dlog
    assert "query[SRV] _xmpp-server._tcp.partner.test" in dlog
    if smacks:
        # delivered means acknowledged by the partner's <a h/>
        assert partner.lines("Received[s2sin]: <enable ", "urn:xmpp:sm:3")
        assert partner.lines("Sending[s2sin]: <a ", "h='%d'" % N)
    # a second batch travels on the same stream
    send_and_check(lab, alice, n=20, start=N)
    assert px.count(r"event=s2s_out_auth ") == 1
    if smacks:
        assert partner.lines("Sending[s2sin]: <a ", "h='%d'" % (N + 20))
    assert lab.lp.dup_outcomes == 0
    assert alice.errors() == []


def test_serialisation_reaches_the_client_intact(tmp_path, running, daemons, certs):
    lab, partner, alice = partner_lab(tmp_path, running, daemons, certs)
    chatstate = b"<active xmlns='http://jabber.org/protocol/chatstates'/>"
    ref = lab.lp.send_stanza("bob@corp.test/desk", "alice@partner.test",
                             "a < b & c > 'd' \"e\" \u00e9\u4e2d", subject="s & t",
                             thread="th-1", lang="de", id="id-<1>", extra=[chatstate])
    assert lab.lp.wait_outcome(ref) == ("delivered", None)
    m = alice.received(timeout=20, count=1)[0]
    assert m["body"] == "a < b & c > 'd' \"e\" \u00e9\u4e2d"
    assert (m["subject"], m["thread"], m["lang"], m["id"]) == ("s & t", "th-1", "de", "id-<1>")
    assert "http://jabber.org/protocol/chatstates" in m["xml"] and "<active" in m["xml"]
    # a stanza the gateway built wrongly is bounced, and the stream survives it
    bad = lab.lp.send_stanza("bob@corp.test", "alice@partner.test", "x",
                             extra=[b"<unclosed xmlns='urn:x'>"])
    assert lab.lp.wait_outcome(bad) == ("bounce", ("modify", "bad-request",
                                                   "the stanza cannot be written as XMPP"))
    ok = lab.lp.send_stanza("bob@corp.test", "alice@partner.test", "after")
    assert lab.lp.wait_outcome(ok) == ("delivered", None)
    assert [x["body"] for x in alice.received(timeout=10, count=2)] == [m["body"], "after"]
    assert lab.px.count(r"event=s2s_out_auth ") == 1


def test_direct_tls_via_xmpps_srv(tmp_path, running, daemons, certs):
    lab, partner, alice = partner_lab(tmp_path, running, daemons, certs, direct_tls=True)
    send_and_check(lab, alice, n=100)
    lab.px.wait_log(r"event=s2s_out_tls .*to=partner\.test version=TLSv1\.3 .*cert=verified "
                    r"identity=DNS-ID")
    lab.px.wait_log(r"event=s2s_out_auth .*peer=127\.0\.0\.81:5270 from=corp\.test "
                    r"to=partner\.test method=EXTERNAL tls=TLSv1\.3 direct_tls=1 cert=valid")
    assert partner.external_accepted_from("corp.test")
    assert partner.lines("TLS negotiation started for s2sin_unauthed") == []


def test_dialback_when_partner_sasl_not_supported(tmp_path, running, daemons, certs):
    lab, partner, alice = partner_lab(tmp_path, running, daemons, certs,
                                      partner_rules={"sasl": NEG_NOT_SUPPORTED})
    send_and_check(lab, alice, n=100)
    px = lab.px
    px.wait_log(r"event=s2s_out_auth .*from=corp\.test to=partner\.test method=DIALBACK "
                r"tls=TLSv1\.3 direct_tls=0")
    # Prosody received our db:result, asked us (the authoritative server, found through
    # corp.test's SRV record) with db:verify, and we vouched for the key
    assert len(partner.dialback_result_from("corp.test")) == 1
    assert partner.lines("verified dialback key... it is valid") or partner.lines(
        "<verify", "type='valid'")
    px.wait_log(r"event=s2s_db_verify .*from=partner\.test to=corp\.test verdict=valid")
    assert not partner.external_accepted_from("corp.test")


def test_no_service_bounces_within_a_second(tmp_path, running, daemons, certs):
    lab = Lab(tmp_path, running, daemons, certs)
    lab.start_dns()
    lab.start_edge()
    lab.policy({"nowhere.test": {}, "void.test": {}})
    # nowhere.test: NXDOMAIN for both SRV names and for A/AAAA
    ref = lab.lp.send_stanza("bob@corp.test", "x@nowhere.test", "hi")
    kind, (etype, cond, text) = lab.lp.wait_outcome(ref, timeout=5)
    assert (kind, etype, cond) == ("bounce", "cancel", "remote-server-not-found")
    assert lab.lp.outcome_delay(ref) < 1.0, lab.lp.outcome_delay(ref)
    print("figure: NXDOMAIN bounce after %.1f ms" % (1000 * lab.lp.outcome_delay(ref)))
    assert "nowhere.test" in text
    # void.test: SRV target "." (decidedly no service)
    ref = lab.lp.send_stanza("bob@corp.test", "x@void.test", "hi")
    kind, (etype, cond, text) = lab.lp.wait_outcome(ref, timeout=5)
    assert (kind, cond) == ("bounce", "remote-server-not-found")
    assert lab.lp.outcome_delay(ref) < 1.0
    assert text == "the domain offers no XMPP server service"
    assert "query[A] nowhere.test" in lab.dns.log_text()
    assert "query[A] void.test" not in lab.dns.log_text()


def test_unanswering_address_times_out_at_establishment(tmp_path, running, daemons, certs):
    lab = Lab(tmp_path, running, daemons, certs)
    lab.start_dns()
    lab.start_edge()
    lab.policy({"hole.test": {}}, establishment_s=3)
    refs = [lab.lp.send_stanza("bob@corp.test", "x@hole.test", "m%d" % i) for i in range(5)]
    outs = lab.lp.wait_outcomes(refs, timeout=10)
    assert {(o[0], o[1][0], o[1][1]) for o in outs} == {("bounce", "wait",
                                                         "remote-server-timeout")}
    delays = [lab.lp.outcome_delay(r) for r in refs]
    assert 2.9 <= min(delays) and max(delays) <= 4.0, delays
    print("figure: establishment timeout 3 s -> bounces after %.2f..%.2f s" % (min(delays),
                                                                              max(delays)))
    lab.px.wait_log(r"event=s2s_out_route_failed .*to=hole\.test cond=remote-server-timeout "
                    r"queued=5")
    assert "%s:%d" % (HOLE_IP, lab.hole.port) in lab.px.text()


def test_partner_certificate_for_another_name_is_refused(tmp_path, running, daemons, certs):
    lab = Lab(tmp_path, running, daemons, certs)
    lab.start_dns()
    lab.start_edge()
    lab.policy({"wrong.test": {}})
    wrong = lab.start_prosody("wrong.test", WRONG_IP,
                              certs={"wrong.test": cert_paths(certs, "other.test")})
    ref = lab.lp.send_stanza("bob@corp.test", "x@wrong.test", "hi")
    kind, (etype, cond, text) = lab.lp.wait_outcome(ref, timeout=10)
    assert (kind, cond) == ("bounce", "remote-server-not-found")
    assert "certificate" in text and "wrong.test" in text
    lab.px.wait_log(r"event=s2s_out_tls .*to=wrong\.test .*identity=none ids=\"DNS:other\.test\"")
    assert lab.px.count(r"event=s2s_out_auth ") == 0
    assert wrong.s2s_complete("wrong.test", "corp.test", incoming=True) == 0
    assert not wrong.external_accepted_from("corp.test")


def test_outbound_validation(tmp_path, running, daemons, certs):
    lab = Lab(tmp_path, running, daemons, certs)
    lab.start_dns()
    lab.start_edge()
    lab.policy({"partner.test": {}})
    lp = lab.lp
    cases = [
        (("mallory@evil.test", "alice@partner.test"), ("cancel", "not-allowed")),
        (("bob@corp.test", "eve@stranger.test"), ("cancel", "forbidden")),
        (("bob@corp.test", None), ("modify", "jid-malformed")),
        (("bob@corp.test", "alice@bad domain"), ("modify", "jid-malformed")),
    ]
    for (frm, to), want in cases:
        ref = lp.send_stanza(frm, to, "x")
        kind, (etype, cond, _) = lp.wait_outcome(ref, timeout=5)
        assert (kind, etype, cond) == ("bounce",) + want, (frm, to)
    # nothing was looked up or dialled for them
    assert "stranger.test" not in lab.dns.log_text()
    assert lab.px.count(r"event=s2s_out_route ") == 0
    # every frame was settled on the link once its outcome was queued
    wait_for(lambda: lp.all_acked(), 5, "acks for every frame")


def test_idle_stream_closes_and_reopens(tmp_path, running, daemons, certs):
    lab, partner, alice = partner_lab(tmp_path, running, daemons, certs, inactivity_s=2)
    send_and_check(lab, alice, n=5)
    lab.px.wait_log(r"event=s2s_out_idle from=corp\.test to=partner\.test", timeout=6)
    send_and_check(lab, alice, n=5, start=5)
    assert lab.px.count(r"event=s2s_out_auth ") == 2


def test_fixed_proxy_overrides_srv(tmp_path, running, daemons, certs):
    # the partner's fixed proxy host:port is used instead of its SRV records
    lab, partner, alice = partner_lab(tmp_path, running, daemons, certs,
                                      partner_rules={"proxy_host": PARTNER_IP,
                                                     "proxy_port": 5269})
    send_and_check(lab, alice, n=10)
    lab.px.wait_log(r"event=s2s_out_route .*to=partner\.test purpose=stanzas "
                    r"proxy=127\.0\.0\.81")
    assert "_xmpp-server._tcp.partner.test" not in lab.dns.log_text()
    assert "_xmpps-server._tcp.partner.test" not in lab.dns.log_text()
    assert partner.external_accepted_from("corp.test")


def test_ipv6_tried_first_then_ipv4(tmp_path, running, daemons, certs):
    # s2s.partner.test has AAAA ::1 (nothing listens on [::1]:5269) and A 127.0.0.81: the
    # edge tries IPv6 first and moves on to IPv4 at once when it is refused
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
        assert s.connect_ex(("::1", 5269)) != 0, "something listens on [::1]:5269"
    lab, partner, alice = partner_lab(tmp_path, running, daemons, certs, partner_v6="::1",
                                      log_level="debug")
    send_and_check(lab, alice, n=10)
    attempts = re.findall(r"event=s2s_out_attempt addr=(\S+) port=5269", lab.px.text())
    assert attempts[:2] == ["::1", PARTNER_IP], attempts
    lab.px.wait_log(r"event=s2s_out_auth .*peer=127\.0\.0\.81:5269 .*method=EXTERNAL")
    assert "query[AAAA] s2s.partner.test" in lab.dns.log_text()


def test_xep0198_delivered_only_when_acknowledged(tmp_path, running, daemons, certs):
    """Delivered waits for the partner's <a h/>; a stream whose <r/> goes unanswered past the
    establishment timeout is dropped and its unacknowledged stanzas go out again on a new
    stream, each still reported exactly once."""
    fake = FakePartner(FAKE_IP, certs, "fake.test")
    running.append(fake)
    lab = Lab(tmp_path, running, daemons, certs)
    lab.start_dns(extra_srv=[xmpp_srv("fake.test", "s2s.fake.test", fake.port)],
                  extra_hosts=[("s2s.fake.test", FAKE_IP)])
    lab.start_edge()
    lab.policy({"fake.test": {}}, establishment_s=3)
    lp = lab.lp
    refs = [lp.send_stanza("bob@corp.test", "x@fake.test", "s%d" % i) for i in range(5)]
    fake.wait(lambda: len(fake.conns) == 1 and len(fake.conns[0]) == 5 and fake.r_seen >= 1,
              10, "5 stanzas and an <r/>")
    time.sleep(0.5)
    assert not any(r in lp.outcomes for r in refs)  # written, but not acknowledged
    fake.ack(3)
    lp.wait_outcomes(refs[:3], timeout=5)
    time.sleep(0.3)
    assert not any(r in lp.outcomes for r in refs[3:])
    fake.ack(5)
    assert lp.wait_outcomes(refs, timeout=5) == [("delivered", None)] * 5
    # now the partner stops answering <r/>
    more = [lp.send_stanza("bob@corp.test", "x@fake.test", "t%d" % i) for i in range(2)]
    fake.wait(lambda: len(fake.conns[0]) == 7, 5, "2 more stanzas")
    lab.px.wait_log(r"event=s2s_out_fail .*to=fake\.test cond=remote-server-timeout .*"
                    r"no XEP-0198 acknowledgement", timeout=8)
    # a new stream carries them again (the partner sees them twice: no resumption)
    fake.wait(lambda: len(fake.conns) == 2 and fake.conns[1] == ["t0", "t1"] and
              fake.r_seen >= 1, 10, "the resend on a new stream")
    assert not any(r in lp.outcomes for r in more)
    fake.ack(2)
    assert lp.wait_outcomes(more, timeout=5) == [("delivered", None)] * 2
    assert lp.dup_outcomes == 0
    assert lab.px.count(r"event=s2s_out_auth .*to=fake\.test method=EXTERNAL .*sm=1") == 2
