"""The test peers proven against themselves, without Parley: dnsmasq serves the `.test` zone
and nothing else, and two real Prosody servers (partner.test, corp.test) federate through it
over STARTTLS and direct TLS with SASL EXTERNAL, and by dialback when a certificate is not
trusted, while slixmpp clients send and receive. If these fail, the Parley system tests that
use the same fixtures cannot be trusted either."""
import time

import pytest

from harness import make_certs
from peers import Dnsmasq, Prosody, xmpp_no_service, xmpp_srv
from xmppclient import XmppClient

PARTNER_IP = "127.0.0.31"
CORP_IP = "127.0.0.32"
N = 200


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """The lab CA with partner.test and corp.test, and a rogue CA's partner.test."""
    d = tmp_path_factory.mktemp("peercerts")
    make_certs(d, "partner.test", "corp.test")
    make_certs(d, "partner.test", ca="rogue")
    return str(d)


def start_dns(tmp_path, running, direct_tls=False):
    srv = [xmpp_srv("corp.test", "s2s.corp.test", 5269),
           xmpp_srv("partner.test", "s2s.partner.test", 5269)]
    if direct_tls:
        srv.append(xmpp_srv("corp.test", "s2s.corp.test", 5270, direct_tls=True))
    dns = Dnsmasq(tmp_path / "dns", srv=srv,
                  hosts=[("s2s.corp.test", CORP_IP), ("s2s.partner.test", PARTNER_IP)])
    running.append(dns.start())
    return dns


def federation(tmp_path, running, certs, direct_tls=False, partner_kw=None, corp_kw=None,
               alice_tls="none"):
    """dnsmasq, both servers, alice@partner.test and bob@corp.test logged in."""
    dns = start_dns(tmp_path, running, direct_tls)
    partner = Prosody(tmp_path / "partner", PARTNER_IP, ["partner.test"], certs, dns=dns,
                      users=[("alice", "partner.test", "pw-a")], **(partner_kw or {}))
    running.append(partner.start())
    corp = Prosody(tmp_path / "corp", CORP_IP, ["corp.test"], certs, dns=dns,
                   users=[("bob", "corp.test", "pw-b")], **(corp_kw or {}))
    running.append(corp.start())
    alice = XmppClient("alice@partner.test", "pw-a", PARTNER_IP, tls=alice_tls,
                       ca=certs + "/ca.pem", workdir=tmp_path)
    running.append(alice.start())
    bob = XmppClient("bob@corp.test", "pw-b", CORP_IP, workdir=tmp_path)
    running.append(bob.start())
    return partner, corp, alice, bob


def assert_all_arrive_in_order(alice, bob, n=N):
    # Prosody may reorder what it queued while the s2s stream was being set up: warm the
    # stream up first, so the order checked is that of an established stream.
    alice.send_message("bob@corp.test", "warm-up")
    assert bob.received(timeout=20, count=1), "the warm-up message did not arrive"
    alice.send_messages("bob@corp.test", n)
    got = bob.received(timeout=20, count=n + 1)
    assert len(got) >= n + 1, "only %d of %d messages arrived" % (len(got) - 1, n)
    time.sleep(0.3)  # anything extra (a duplicate) would show up by now
    got = bob.received()[1:]
    assert [m["body"] for m in got] == ["msg-%d" % i for i in range(n)]
    assert {m["from"].split("/")[0] for m in got} == {"alice@partner.test"}
    assert all(m["type"] == "chat" for m in got)
    assert alice.errors() == [] and bob.errors() == []


def test_dns_answers_only_for_its_records(tmp_path, running):
    dns = Dnsmasq(tmp_path / "dns", srv=[xmpp_srv("corp.test", "s2s.corp.test", 5269),
                                         xmpp_srv("corp.test", "s2s.corp.test", 5270, True),
                                         xmpp_no_service("void.test"),
                                         xmpp_no_service("void.test", direct_tls=True)],
                  hosts=[("s2s.corp.test", CORP_IP, "::1"), ("two.test", "127.0.0.33"),
                         ("two.test", "127.0.0.34")])
    running.append(dns.start())
    for tcp in (False, True):
        a = dns.resolve("_xmpp-server._tcp.corp.test", "SRV", tcp=tcp)
        assert (a.rcode, a.values("SRV")) == ("NOERROR", [(0, 5, 5269, "s2s.corp.test")])
        a = dns.resolve("_xmpps-server._tcp.corp.test", "SRV", tcp=tcp)
        assert a.values("SRV") == [(0, 5, 5270, "s2s.corp.test")]
        # the "no service here" form: one SRV record whose target is the root
        for svc in ("_xmpp-server", "_xmpps-server"):
            a = dns.resolve(svc + "._tcp.void.test", "SRV", tcp=tcp)
            assert a.rcode == "NOERROR"
            assert [r[3] for r in a.values("SRV")] == ["."]
        assert dns.resolve("s2s.corp.test", "A", tcp=tcp).values("A") == [CORP_IP]
        assert dns.resolve("s2s.corp.test", "AAAA", tcp=tcp).values("AAAA") == ["::1"]
        assert sorted(dns.resolve("two.test", "A", tcp=tcp).values("A")) == [
            "127.0.0.33", "127.0.0.34"]
        # unknown .test names are NXDOMAIN, never forwarded
        for name, rtype in (("nowhere.test", "A"), ("_xmpp-server._tcp.nowhere.test", "SRV"),
                            ("_xmpps-server._tcp.partner.test", "SRV")):
            a = dns.resolve(name, rtype, tcp=tcp)
            assert (a.rcode, a.records) == ("NXDOMAIN", []), name
        # an existing name without that type is NODATA, not NXDOMAIN
        a = dns.resolve("s2s.corp.test", "SRV", tcp=tcp)
        assert (a.rcode, a.records) == ("NOERROR", [])
        # outside .test it has no upstream at all
        assert dns.resolve("example.com", "A", tcp=tcp).rcode == "REFUSED"
    log = dns.log_text()
    assert "query[SRV] _xmpp-server._tcp.corp.test" in log
    assert "forwarded" not in log


def test_federation_starttls_with_sasl_external(tmp_path, running, certs):
    partner, corp, alice, bob = federation(tmp_path, running, certs, alice_tls="starttls")
    assert_all_arrive_in_order(alice, bob)
    # partner asked for _xmpps-server first (NXDOMAIN), then used the _xmpp-server record
    assert partner.lines("Resolve _xmpps-server._tcp.corp.test IN SRV")
    assert partner.connect_targets() == ["%s:5269" % CORP_IP]
    assert corp.lines("TLS negotiation started for s2sin_unauthed")
    # authenticated by certificate, in both directions of the stream, never by dialback
    assert corp.external_accepted_from("partner.test")
    assert partner.external_succeeded_to("corp.test")
    assert corp.dialback_result_from("partner.test") == []
    assert corp.s2s_complete("corp.test", "partner.test", incoming=True) == 1
    # a message back travels over corp's own outgoing stream, also by EXTERNAL
    bob.send_messages("alice@partner.test", 3, fmt="re-%d")
    assert [m["body"] for m in alice.received(timeout=10, count=3)] == ["re-0", "re-1", "re-2"]
    assert partner.external_accepted_from("corp.test")
    assert alice.ping("corp.test")["ok"]
    info = alice.disco_info("corp.test")
    assert info["ok"] and "urn:xmpp:ping" in info["xml"]
    # presence across the federation: bob approves alice's subscription (slixmpp's auto
    # authorise) and alice starts getting bob's presence (Prosody turns the inbound
    # "subscribed" into a roster push; the client never sees that presence itself)
    alice.subscribe("bob@corp.test")
    alice.wait_event(lambda e: e["ev"] == "presence" and e["type"] == "available" and
                     e["from"].startswith("bob@corp.test/"), 10, "bob's presence")
    bob.set_presence(show="away", status="in a meeting")
    alice.wait_event(lambda e: e["ev"] == "presence" and e["from"].startswith("bob@corp.test/")
                     and e["show"] == "away" and e["status"] == "in a meeting", 10,
                     "bob's away presence")
    assert any(p["type"] == "subscribe" and p["from"] == "alice@partner.test"
               for p in bob.presence_updates())


def test_federation_direct_tls_with_sasl_external(tmp_path, running, certs):
    partner, corp, alice, bob = federation(tmp_path, running, certs, direct_tls=True)
    assert_all_arrive_in_order(alice, bob)
    assert partner.connect_targets() == ["%s:5270" % CORP_IP]
    assert corp.lines("New connection FD", ", %s, 5270)" % CORP_IP)
    assert corp.lines("TLS negotiation started for s2sin_unauthed") == []
    assert corp.external_accepted_from("partner.test")
    assert partner.external_succeeded_to("corp.test")
    assert corp.dialback_result_from("partner.test") == []


def test_federation_dialback_when_certificate_untrusted(tmp_path, running, certs):
    # partner presents a certificate from a CA corp does not trust; corp lets it in anyway
    # (s2s_secure_auth = false) but cannot offer EXTERNAL, so partner falls back to dialback.
    partner, corp, alice, bob = federation(tmp_path, running, certs,
                                           partner_kw={"cert_prefix": "rogue-"},
                                           corp_kw={"s2s_secure_auth": False})
    assert_all_arrive_in_order(alice, bob)
    assert corp.lines("certificate chain validation result: invalid")
    assert not corp.external_accepted_from("partner.test")
    assert len(corp.dialback_result_from("partner.test")) == 1
    # corp asked partner (the authoritative server) and partner vouched for its key
    assert corp.lines("Sending[s2sout]: <db:verify ", "to='partner.test'")
    assert partner.lines("verified dialback key... it is valid")
    assert partner.dialback_valid_from("corp.test")
    assert corp.s2s_complete("corp.test", "partner.test", incoming=True) == 1


def test_federation_dialback_over_plain_tcp(tmp_path, running, certs):
    # TLS NotSupported: neither server loads mod_tls, so dialback runs over plain TCP.
    plain = {"starttls": False, "s2s_require_encryption": False, "s2s_secure_auth": False}
    partner, corp, alice, bob = federation(tmp_path, running, certs, partner_kw=plain,
                                           corp_kw=plain)
    assert_all_arrive_in_order(alice, bob)
    assert len(corp.dialback_result_from("partner.test")) == 1
    assert partner.dialback_valid_from("corp.test")
    assert "<starttls" not in corp.log_text()
    assert corp.lines("Stream encrypted") == [] and partner.lines("Stream encrypted") == []
    assert not corp.external_accepted_from("partner.test")


def test_secure_auth_refuses_untrusted_certificate(tmp_path, running, certs):
    # the negative control for the EXTERNAL tests: with s2s_secure_auth the rogue
    # certificate gets no stream at all, and the sender gets the messages back as errors.
    partner, corp, alice, bob = federation(tmp_path, running, certs,
                                           partner_kw={"cert_prefix": "rogue-"})
    alice.send_messages("bob@corp.test", 3)
    alice.wait_event(lambda e: len(alice.errors()) >= 3, 10, "3 bounces")
    assert {(e["condition"], e["from"]) for e in alice.errors()} == {
        ("remote-server-timeout", "bob@corp.test")}
    corp.wait_log(r"Forbidding insecure connection to/from partner\.test because its "
                  r"certificate is not trusted")
    assert corp.s2s_complete("corp.test", "partner.test", incoming=True) == 0
    assert bob.received(timeout=0.3) == []


def test_client_checks_server_name_and_unknown_domain_bounces(tmp_path, running, certs):
    dns = start_dns(tmp_path, running)
    partner = Prosody(tmp_path / "partner", PARTNER_IP, ["partner.test"], certs, dns=dns,
                      users=[("alice", "partner.test", "pw-a")], log_level="info")
    running.append(partner.start())
    ca = certs + "/ca.pem"
    # TLS to an IP address: the certificate must still match the name we expect
    wrong = XmppClient("alice@partner.test", "pw-a", PARTNER_IP, tls="starttls", ca=ca,
                       tls_name="corp.test", workdir=tmp_path, name="wrong-name")
    running.append(wrong)
    with pytest.raises(AssertionError, match="Hostname mismatch"):
        wrong.start(timeout=10)
    rogue = XmppClient("alice@partner.test", "pw-a", PARTNER_IP, tls="starttls",
                       ca=certs + "/rogue-ca.pem", workdir=tmp_path, name="rogue-ca")
    running.append(rogue)
    with pytest.raises(AssertionError, match="CERTIFICATE_VERIFY_FAILED"):
        rogue.start(timeout=10)
    badpw = XmppClient("alice@partner.test", "nope", PARTNER_IP, workdir=tmp_path,
                       name="bad-password")
    running.append(badpw)
    with pytest.raises(AssertionError, match="auth failed"):
        badpw.start(timeout=10)
    alice = XmppClient("alice@partner.test", "pw-a", PARTNER_IP, tls="direct", ca=ca,
                       workdir=tmp_path)
    # Prosody here has no direct-TLS c2s port: direct TLS to 5222 must fail, not fall back
    running.append(alice)
    with pytest.raises(AssertionError):
        alice.start(timeout=10)
    alice = XmppClient("alice@partner.test", "pw-a", PARTNER_IP, tls="starttls", ca=ca,
                       workdir=tmp_path, xml=True)
    running.append(alice.start())
    # a domain with no SRV and no address bounces at once
    t0 = time.monotonic()
    alice.send_message("someone@nowhere.test", "hello", id="m1")
    err = alice.wait_event(lambda e: e["ev"] == "error", 5, "a bounce")
    assert time.monotonic() - t0 < 2
    assert (err["condition"], err["id"], err["from"]) == (
        "remote-server-not-found", "m1", "someone@nowhere.test")
    # messages to oneself come back with subject, thread, lang and the raw XML
    alice.send_messages("alice@partner.test", 2, subject="s", thread="th-1", lang="de",
                        id_fmt="id-%d")
    got = alice.received(timeout=5, count=2)
    assert [(m["body"], m["id"], m["subject"], m["thread"], m["lang"]) for m in got] == [
        ("msg-0", "id-0", "s", "th-1", "de"), ("msg-1", "id-1", "s", "th-1", "de")]
    assert "<thread>th-1</thread>" in got[0]["xml"]
    assert alice.stop() == 0


def test_smacks_on_s2s(tmp_path, running, certs):
    partner, corp, alice, bob = federation(tmp_path, running, certs,
                                           partner_kw={"smacks": True},
                                           corp_kw={"smacks": True})
    # The stanzas queued while the stream is set up are flushed before <enable/>, so they are
    # outside XEP-0198; warm the stream up first, as the Parley tests must.
    alice.send_message("bob@corp.test", "warm-up")
    assert [m["body"] for m in bob.received(timeout=10, count=1)] == ["warm-up"]
    partner.wait_log(r"Received\[s2sout\]: <enabled ")
    flushed = partner.lines("sending 1 queued stanzas across new outgoing connection")
    enable = partner.lines("Sending[s2sout]: <enable xmlns='urn:xmpp:sm:3'>")
    assert len(flushed) == 1 and len(enable) == 1
    text = partner.log_text()
    assert text.index(flushed[0]) < text.index(enable[0])
    bob.received(timeout=0)
    alice.send_messages("bob@corp.test", N)
    got = bob.received(timeout=20, count=N + 1)
    assert [m["body"] for m in got] == ["warm-up"] + ["msg-%d" % i for i in range(N)]
    # corp acknowledges exactly the N stanzas sent after <enable/>
    partner.wait_log(r"Received\[s2sout\]: <a [^>]*h='%d'" % N, timeout=10)
    assert corp.lines("Enabling stream management")
