"""Instant messages both ways, end to end (issue 6): alice@partner.test on a real Prosody,
parley-proxy, parley-gateway, Kamailio as the corp.test front end, and bob@corp.test as a
registered SIP user agent. DNS for .test comes from a local dnsmasq."""
import time

import pytest

from harness import wait_for
from imlab import GW_SIP, Lab, lab_certs
from s2soutlab import Blackhole
from sipua import UA


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return lab_certs(tmp_path_factory)


def test_alice_to_bob_and_back(tmp_path, running, daemons, certs):
    lab = Lab(tmp_path, running, daemons, certs)
    lab.alice.send_message("bob@corp.test", "Grüße, Bob <&> 'quoted'", subject="Hallo",
                           thread="conv-1", lang="de")
    m = lab.bob.wait_request("MESSAGE", timeout=30)
    assert m.text == "Grüße, Bob <&> 'quoted'"
    assert m.header("subject") == "Hallo"
    assert m.header("content-language") == "de"
    assert m.header("content-type").startswith("text/plain")
    assert m.call_id == "conv-1"  # C1: thread -> Call-ID
    assert "alice@partner.test" in m.header("from")
    assert m.header("contact") is None  # C7
    # bob answers in the same conversation: the Call-ID comes back as the thread
    r = lab.bob.request("MESSAGE", "sip:alice@partner.test", body="Hi Alice & co ✓",
                        content_type="text/plain;charset=UTF-8",
                        headers=[("Subject", "Re: Hallo"), ("Content-Language", "en")],
                        call_id="conv-1")
    assert r.status == 202, r.start  # C4: Delivered -> 202
    got = lab.alice.received(timeout=20, count=1, sender="bob@corp.test")
    assert got and got[0]["body"] == "Hi Alice & co ✓"
    assert got[0]["subject"] == "Re: Hallo"
    assert got[0]["thread"] == "conv-1"
    assert got[0]["lang"] == "en"
    assert got[0]["type"] in (None, "", "normal")  # C3


def test_thousand_each_way_in_order(tmp_path, running, daemons, certs):
    lab = Lab(tmp_path, running, daemons, certs)
    lab.alice.send_message("bob@corp.test", "warm-up")
    lab.bob.wait_request("MESSAGE", timeout=30)
    n = 1000
    lab.alice.send_messages("bob@corp.test", n, fmt="to-bob-%d", wait=False)
    wait_for(lambda: len(lab.bob_bodies()) >= n + 1, 120, "1000 messages at bob")
    time.sleep(0.5)
    assert lab.bob_bodies()[1:] == ["to-bob-%d" % i for i in range(n)]
    for i in range(n):
        r = lab.bob.message("sip:alice@partner.test", "to-alice-%d" % i)
        assert r.status == 202, (i, r.start)
    wait_for(lambda: len(lab.alice.received(timeout=0.1, sender="bob@corp.test")) >= n, 60,
             "1000 messages at alice")
    bodies = [g["body"] for g in lab.alice.received(timeout=1, sender="bob@corp.test")]
    assert bodies == ["to-alice-%d" % i for i in range(n)]


def test_errors_both_ways(tmp_path, running, daemons, certs):
    lab = Lab(tmp_path, running, daemons, certs,
              partners={"partner.test": {"type": "federated"}, "void.test": {}})
    # an unknown SIP user: Kamailio's 404 comes back to alice as item-not-found
    lab.alice.send_message("carol@corp.test", "are you there?")
    wait_for(lambda: lab.alice.errors(), 30, "an error at alice")
    assert lab.alice.errors()[0]["condition"] == "item-not-found"
    # a partner domain that does not resolve: the mapped failure, not 202
    r = lab.bob.message("sip:zed@void.test", "hello?")
    assert r.status in (404, 408, 604), r.start
    # sips: is never translated (A1)
    r = lab.bob.request("MESSAGE", "sips:alice@partner.test", body="secure?",
                        content_type="text/plain")
    assert r.status == 416, r.start
    # a domain that is not a partner (J1)
    r = lab.bob.message("sip:eve@stranger.test", "hi")
    assert r.status in (403, 404), r.start


ISCOMPOSING = ("<?xml version='1.0' encoding='UTF-8'?><isComposing "
               "xmlns='urn:ietf:params:xml:ns:im-iscomposing'><state>%s</state></isComposing>")


def test_chat_states_both_ways(tmp_path, running, daemons, certs):
    """F1: XEP-0085 composing -> isComposing active; isComposing idle -> XEP-0085 active."""
    lab = Lab(tmp_path, running, daemons, certs, alice_xml=True)
    lab.alice.send_message("bob@corp.test", "hi")
    lab.bob.wait_request("MESSAGE", timeout=30)
    lab.alice.send_raw("<message to='bob@corp.test' type='chat'>"
                       "<composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
    m = lab.bob.wait_request("MESSAGE", timeout=20, count=2)
    assert m.header("content-type").startswith("application/im-iscomposing+xml"), m.start
    assert "<state>active</state>" in m.text and "<refresh>" in m.text
    # F2: a repeated composing is the same state: no second isComposing; paused -> idle
    lab.alice.send_raw("<message to='bob@corp.test' type='chat'>"
                       "<composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
    lab.alice.send_raw("<message to='bob@corp.test' type='chat'>"
                       "<paused xmlns='http://jabber.org/protocol/chatstates'/></message>")
    m = lab.bob.wait_request("MESSAGE", timeout=20, count=3)
    assert "<state>idle</state>" in m.text, m.text
    time.sleep(0.5)
    assert len(lab.bob_bodies()) == 3, lab.bob_bodies()
    r = lab.bob.message("sip:alice@partner.test", ISCOMPOSING % "active",
                        content_type="application/im-iscomposing+xml")
    assert r.status == 202, r.start
    # a refresh of active (F2) only moves the idle timeout: answered, not forwarded
    r = lab.bob.message("sip:alice@partner.test",
                        (ISCOMPOSING % "active").replace("</state>", "</state><refresh>60</refresh>"),
                        content_type="application/im-iscomposing+xml")
    assert r.status == 202, r.start
    r = lab.bob.message("sip:alice@partner.test", ISCOMPOSING % "idle",
                        content_type="application/im-iscomposing+xml")
    assert r.status == 202, r.start
    ev = lab.alice.wait_event(lambda e: e.get("ev") == "message" and "<active" in (e.get("xml") or ""),
                              20, "an <active/> chat state at alice")
    assert "http://jabber.org/protocol/chatstates" in ev["xml"]
    states = [e["xml"] for e in lab.alice.events("message") if "chatstates" in (e.get("xml") or "")]
    assert sum("<composing" in x for x in states) == 1, states
    # content ends composing: a message after active carries <active/> (RFC 3994 3)
    r = lab.bob.message("sip:alice@partner.test", ISCOMPOSING % "active",
                        content_type="application/im-iscomposing+xml")
    assert r.status == 202, r.start
    r = lab.bob.message("sip:alice@partner.test", "typed it")
    assert r.status == 202, r.start
    got = lab.alice.wait_event(lambda e: e.get("ev") == "message" and e.get("body") == "typed it",
                               20, "the message at alice")
    assert "<active" in got["xml"], got["xml"]


def test_late_bounce_after_deadline(tmp_path, running, daemons, certs):
    """C4: with no outcome by the delivery deadline the SIP sender gets 202; when the edge
    bounces the message later, a new MESSAGE tells the SIP user it was not delivered."""
    hole = Blackhole("127.0.0.34")
    running.append(hole)
    lab = Lab(tmp_path, running, daemons, certs,
              partners={"partner.test": {"type": "federated"}, "slow.test": {"proxy": "127.0.0.34:%d" % hole.port}},
              federation={"establishment_timeout": "3s"},
              gw_extra="[translate]\ndelivery_deadline = 1s\n")
    t0 = time.monotonic()
    r = lab.bob.message("sip:zed@slow.test", "into the void")
    took = time.monotonic() - t0
    assert r.status == 202, r.start
    assert 0.8 < took < 2.9, took  # the deadline answered, not the bounce
    m = lab.bob.wait_request("MESSAGE", timeout=20)
    assert "zed@slow.test" in m.header("from"), m.header("from")
    assert "could not be delivered" in m.text and "remote-server-timeout" in m.text, m.text
    lab.gw.wait_log(r"event=xlate_late_bounce")


def test_gateway_sigkill_mid_run_loses_nothing(tmp_path, running, daemons, certs):
    """The edge keeps every stanza the gateway has not acknowledged, and the gateway
    acknowledges only after the SIP final response: a SIGKILL of the gateway loses nothing;
    what it had sent but not acknowledged is sent again (duplicates, counted)."""
    lab = Lab(tmp_path, running, daemons, certs)
    lab.alice.send_message("bob@corp.test", "warm-up")
    lab.bob.wait_request("MESSAGE", timeout=30)
    n = 1000
    lab.alice.send_messages("bob@corp.test", n, fmt="k-%d", wait=False)
    wait_for(lambda: len(lab.bob_bodies()) >= 1 + n // 3, 60, "a third of the run")
    lab.gw.kill()
    lab.gw.start()
    want = {"k-%d" % i for i in range(n)}
    wait_for(lambda: want <= set(lab.bob_bodies()), 120, "every message after the restart")
    time.sleep(1)
    bodies = lab.bob_bodies()[1:]
    dups = len(bodies) - n
    print("gateway SIGKILL during %d messages: %d duplicates" % (n, dups))
    assert set(bodies) == want
    assert 0 <= dups < n // 2
    seen, firsts = set(), []
    for b in bodies:
        if b not in seen:
            seen.add(b)
            firsts.append(b)
    assert firsts == ["k-%d" % i for i in range(n)]
    assert lab.alice.errors() == []


def test_iq_size_limit_and_overload(tmp_path, running, daemons, certs):
    lab = Lab(tmp_path, running, daemons, certs)
    # item 5: the gateway answers iq for the served domain and its users
    info = lab.alice.disco_info("corp.test")
    assert info["ok"] and info["type"] == "result", info
    assert "urn:xmpp:ping" in info["xml"] and "category='gateway'" in info["xml"].replace('"', "'")
    assert lab.alice.ping("corp.test")["ok"]
    vers = lab.alice.iq("version", "bob@corp.test")
    assert not vers["ok"] and vers["condition"] == "service-unavailable", vers
    # C5: a translated MESSAGE over the limit (1300 bytes) -> policy-violation, no SIP
    lab.alice.send_message("bob@corp.test", "x" * 2000)
    wait_for(lambda: lab.alice.errors(), 30, "an error at alice")
    # slixmpp 1.8.3 does not know this RFC 6120 condition by name: read the XML
    err = lab.alice.errors()[0]["xml"]
    assert "<policy-violation xmlns=\"urn:ietf:params:xml:ns:xmpp-stanzas\"" in err, err
    assert 'type="modify"' in err, err
    assert lab.bob_bodies() == []
    # I4: with no edge connected, a SIP request for a partner gets 503 + Retry-After from
    # the gateway (sent straight to it: Kamailio, as a proxy, turns a downstream 503 into
    # 500 per RFC 3261 16.7, which is what bob sees through it)
    lab.px.stop()
    lab.gw.wait_log(r"event=link_down", timeout=15)
    direct = UA("bob", "corp.test", "127.0.0.64", proxy=(GW_SIP, 5060))
    direct.start()
    running.append(direct)
    r = direct.message("sip:alice@partner.test", "anyone?")
    assert r.status == 503, r.start
    assert r.header("retry-after") == "5"
    r = lab.bob.message("sip:alice@partner.test", "anyone?")
    assert r.status == 500, r.start
