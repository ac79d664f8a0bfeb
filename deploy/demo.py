#!/usr/bin/env python3
"""make demo: runs what Parley can do today on loopback and explains it as it goes.

Act 1, the internal link: a throwaway CA and link certificates, parley-proxy (edge) and
parley-gateway (internal) joined by the TLS 1.3 mutual-auth link, frames flowing
edge -> gateway with acknowledgements, a link cut healed without loss, a clean stop.

Act 2, IM both ways: a real Prosody (partner.test) with its user alice (slixmpp), found
through DNS SRV records from a local dnsmasq; parley-proxy and parley-gateway; Kamailio as
the corp.test SIP front end with bob registered as a SIP user agent. Messages cross both
ways (S2S with TLS and SASL EXTERNAL, the link, SIP MESSAGE) and are shown as a transcript."""
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "system"))

from harness import Daemon, Relay, free_port, make_certs  # noqa: E402
from linkconf import (gateway_conf, policy_conf, proxy_conf, read_refs,  # noqa: E402
                      s2s_conf)
from peers import Dnsmasq, Prosody, xmpp_srv  # noqa: E402
from xmppclient import XmppClient  # noqa: E402
from kamailio import Kamailio  # noqa: E402
from sipua import UA  # noqa: E402

N = 50_000


def say(msg):
    print("\n== " + msg, flush=True)


def show(daemon, pattern, limit=3):
    for line in re.findall(r"^.*(?:%s).*$" % pattern, daemon.text(), re.M)[:limit]:
        print("   %-8s| %s" % (daemon.name, line[:200]))


def wait(pred, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def main():
    work = tempfile.mkdtemp(prefix="parley-demo-")
    started = []
    relay = None
    try:
        say("Making a throwaway CA and link certificates in " + work)
        make_certs(work, "proxy.link.test", "gateway.link.test")
        for f in sorted(os.listdir(work)):
            print("   " + f)

        port = free_port()
        say("Starting parley-proxy (the DMZ edge), link listener on 127.0.0.1:%d" % port)
        px = Daemon("parley-proxy", work, "proxy",
                    proxy_conf(work, port, source_frames=N)).start()
        started.append(px)
        px.wait_log(r"event=link_listen")
        show(px, "event=link_listen")

        relay = Relay("127.0.0.1", "127.0.0.1", port)
        sink = os.path.join(work, "sink.txt")
        say("Starting parley-gateway (internal); it dials the edge (through a relay we can cut)")
        gw = Daemon("parley-gateway", work, "gateway",
                    gateway_conf(work, relay.port, sink_file=sink)).start()
        started.append(gw)
        gw.wait_log(r"event=link_up")
        px.wait_log(r"event=link_up")
        show(gw, "event=link_up")
        show(px, "event=link_up|event=gateway_active")

        say("The edge's test source sends %d stanza frames; the gateway records and acks them" % N)
        wait(lambda: len(read_refs(sink)) >= N // 3, 30)
        print("   frames recorded so far: %d" % len(read_refs(sink)))

        say("Cutting the TCP connection mid-stream (a reset, as a firewall would)")
        relay.cut()
        gw.wait_log(r"event=link_up", count=2, timeout=20)
        show(gw, "event=link_down|event=link_up", limit=4)

        ok = wait(lambda: len(read_refs(sink)) >= N, 60)
        refs = read_refs(sink)
        say("Result: %d frames recorded; exactly once and in order: %s"
            % (len(refs), "yes" if ok and refs == list(range(1, N + 1)) else "NO"))

        say("Stopping both daemons with SIGTERM (Goodbye on the link, counters in the log)")
        gw.stop()
        px.stop()
        show(gw, "event=stopped")
        show(px, "event=stopped")
        if refs != list(range(1, N + 1)):
            return 1
        return act_two(work)
    finally:
        if relay:
            relay.close()
        for d in started:
            d.stop()


def act_two(work):
    edge_ip, partner_ip, kam_ip, gw_sip, bob_ip = ("127.0.0.10", "127.0.0.31", "127.0.0.61",
                                                   "127.0.0.62", "127.0.0.63")
    started = []
    try:
        say("Act 2: IM and presence both ways. Certificates for corp.test (the edge), partner.test, the pool")
        make_certs(work, "corp.test", "partner.test", "pool.corp.test")
        port, link = free_port(edge_ip), free_port()
        dns = Dnsmasq(os.path.join(work, "dns"),
                      srv=[xmpp_srv("corp.test", "edge.corp.test", port),
                           xmpp_srv("partner.test", "s2s.partner.test", 5269)],
                      hosts=[("edge.corp.test", edge_ip), ("s2s.partner.test", partner_ip)])
        started.append(dns.start())
        print("   dnsmasq %s: _xmpp-server._tcp.corp.test -> edge.corp.test:%d (%s),"
              " _xmpp-server._tcp.partner.test -> %s:5269" % (dns.server, port, edge_ip,
                                                              partner_ip))
        px = Daemon("parley-proxy", work, "proxy2",
                    proxy_conf(work, link) +
                    s2s_conf(work, "%s:%d" % (edge_ip, port),
                             extra="dialback_secret = demo-dialback-secret-0123456789\n"
                                   "resolver = %s\n" % dns.server.replace("@", ":"))).start()
        started.append(px)
        gw = Daemon("parley-gateway", work, "gateway2",
                    gateway_conf(work, link,
                                 policy=policy_conf(partners={"partner.test":
                                                              {"type": "federated"}}) +
                                 "\n[sip]\nlisten_udp = %s:5060\npool = udp:%s:5060\n"
                                 % (gw_sip, kam_ip))).start()
        started.append(gw)
        px.wait_log(r"event=policy_applied")
        show(px, "event=policy_applied")
        kam = Kamailio(work, ip=kam_ip, port=5060, partners=["partner.test"],
                       gateway="sip:%s:5060" % gw_sip, certs=work)
        kam.check()
        started.append(kam.start())
        print("   Kamailio (corp.test front end) on %s:5060, routing partner.test to %s:5060"
              % (kam_ip, gw_sip))
        bob = UA("bob", "corp.test", bob_ip, proxy=(kam_ip, 5060))
        bob.start()
        started.append(_Closer(bob))
        r = bob.register()
        print("   bob@corp.test registered at Kamailio: %d %s" % (r.status, r.reason))
        partner = Prosody(os.path.join(work, "partner"), partner_ip, ["partner.test"], work,
                          dns=dns, users=[("alice", "partner.test", "pw-a")], log_level="info")
        started.append(partner.start())
        alice = XmppClient("alice@partner.test", "pw-a", partner_ip, workdir=work)
        started.append(alice.start())
        print("   alice@partner.test logged in to her own server (Prosody %s)" % partner_ip)

        say("Transcript")
        lines = [("alice", "Hi Bob! Grüße aus partner.test"), ("bob", "Hello Alice <3 & welcome"),
                 ("alice", "Subject, thread and language survive the trip"),
                 ("bob", "So do non-ASCII ✓ and XML-special <characters>")]
        ok = True
        for i, (who, text) in enumerate(lines):
            if who == "alice":
                alice.send_message("bob@corp.test", text, thread="demo-thread", lang="en")
                m = bob.wait_request("MESSAGE", timeout=30,
                                     count=1 + sum(1 for w, _ in lines[:i] if w == "alice"))
                got = m.text
                print("   alice (XMPP) -> bob (SIP):   %-48s | bob's UA got %r (Call-ID %s)"
                      % (text, got, m.call_id))
            else:
                r = bob.request("MESSAGE", "sip:alice@partner.test", body=text,
                                content_type="text/plain;charset=UTF-8", call_id="demo-thread")
                msgs = alice.received(timeout=20, sender="bob@corp.test",
                                      count=sum(1 for w, _ in lines[:i + 1] if w == "bob"))
                got = msgs[-1]["body"] if msgs else None
                print("   bob (SIP) -> alice (XMPP):   %-48s | SIP %d, alice got %r (thread %s)"
                      % (text, r.status, got, msgs[-1]["thread"] if msgs else None))
            ok = ok and got == text
        say("Errors cross too: alice writes to carol@corp.test, who does not exist")
        alice.send_message("carol@corp.test", "anyone there?")
        end = time.monotonic() + 20
        while not alice.errors() and time.monotonic() < end:
            time.sleep(0.1)
        errs = alice.errors()
        print("   alice got: %s" % (errs[0]["condition"] if errs else "nothing"))
        ok = presence(alice, bob) and ok
        show(px, "event=s2s_auth", limit=2)
        print("\nLogs and configs are in %s" % work)
        return 0 if ok and errs else 1
    finally:
        for d in reversed(started):
            d.stop()


PIDF = ("<?xml version='1.0'?><presence xmlns='urn:ietf:params:xml:ns:pidf' "
        "xmlns:dm='urn:ietf:params:xml:ns:pidf:data-model' "
        "xmlns:rpid='urn:ietf:params:xml:ns:pidf:rpid' entity='sip:bob@corp.test'>"
        "<tuple id='t1'><status><basic>open</basic></status><note>%s</note></tuple>"
        "<dm:person id='p1'><rpid:activities><rpid:%s/></rpid:activities></dm:person>"
        "</presence>")


def presence(alice, bob):
    """Subscriptions both ways and a change of state each way; True if all arrived."""
    say("Presence: alice subscribes to bob; bob publishes 'busy - in a call'")
    bob.publish(body=PIDF % ("in a call", "busy"))
    alice.subscribe("bob@corp.test")
    seen = None
    end = time.monotonic() + 30
    while time.monotonic() < end and not seen:
        seen = [e for e in alice.events("presence")
                if e["from"].startswith("bob@corp.test") and e.get("status") == "in a call"]
        time.sleep(0.2)
    print("   alice (XMPP) sees bob:      %s" % (
        "show=%s status=%r" % (seen[-1].get("show"), seen[-1].get("status")) if seen
        else "nothing"))
    say("Presence: bob subscribes to alice (SIP SUBSCRIBE); alice sets 'away - lunch'")
    r, _ = bob.subscribe("sip:alice@partner.test", expires=600)
    print("   SUBSCRIBE sip:alice@partner.test: %d %s" % (r.status, r.reason))
    alice.set_presence(show="away", status="lunch")
    note = None
    end = time.monotonic() + 30
    while time.monotonic() < end and not note:
        for m in [m for m in bob.received if m.method == "NOTIFY"]:
            if "<note" in m.text and "lunch" in m.text:
                note = m
        time.sleep(0.2)
    if note:
        shows = re.findall(r"<show[^>]*>(\w+)</show>", note.text)
        print("   bob (SIP) gets NOTIFY:      Subscription-State %s, PIDF show=%s note=lunch"
              % (note.header("subscription-state"), shows[0] if shows else None))
    else:
        print("   bob (SIP) gets NOTIFY:      nothing")
    return bool(seen) and note is not None


class _Closer:
    def __init__(self, ua):
        self.ua = ua

    def stop(self):
        self.ua.close()


if __name__ == "__main__":
    sys.exit(main())
