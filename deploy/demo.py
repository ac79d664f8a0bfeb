#!/usr/bin/env python3
"""make demo: runs what Parley can do today on loopback and explains it as it goes.

Act 1, the internal link: a throwaway CA and link certificates, parley-proxy (edge) and
parley-gateway (internal) joined by the TLS 1.3 mutual-auth link, frames flowing
edge -> gateway with acknowledgements, a link cut healed without loss, a clean stop.

Act 2, a partner: a real Prosody (partner.test) found through DNS SRV records from a local
dnsmasq, its user alice (slixmpp) sending messages to bob@corp.test; they cross the edge
(STARTTLS, SASL EXTERNAL) and the link and arrive at the gateway. SIP toward the
front end comes with the next issues."""
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "system"))

from harness import Daemon, Relay, free_port, make_certs  # noqa: E402
from linkconf import (gateway_conf, policy_conf, proxy_conf, read_refs, read_sink,  # noqa: E402
                      s2s_conf)
from peers import Dnsmasq, Prosody, xmpp_srv  # noqa: E402
from xmppclient import XmppClient  # noqa: E402

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
    edge_ip, partner_ip = "127.0.0.10", "127.0.0.31"
    started = []
    try:
        say("Act 2: a partner XMPP server. Certificates for corp.test (the edge) and partner.test")
        make_certs(work, "corp.test", "partner.test")
        port, link = free_port(edge_ip), free_port()
        dns = Dnsmasq(os.path.join(work, "dns"),
                      srv=[xmpp_srv("corp.test", "edge.corp.test", port),
                           xmpp_srv("partner.test", "s2s.partner.test", 5269)],
                      hosts=[("edge.corp.test", edge_ip), ("s2s.partner.test", partner_ip)])
        started.append(dns.start())
        print("   dnsmasq on %s: _xmpp-server._tcp.corp.test -> edge.corp.test:%d (%s)"
              % (dns.server, port, edge_ip))
        px = Daemon("parley-proxy", work, "proxy2",
                    proxy_conf(work, link) + s2s_conf(work, "%s:%d" % (edge_ip, port))).start()
        started.append(px)
        sink = os.path.join(work, "sink2.txt")
        gw = Daemon("parley-gateway", work, "gateway2",
                    gateway_conf(work, link, sink_file=sink, policy=policy_conf())).start()
        started.append(gw)
        px.wait_log(r"event=policy_applied")
        say("The gateway pushed its federation policy (corp.test served, partner.test allowed)")
        show(px, "event=policy_applied")
        partner = Prosody(os.path.join(work, "partner"), partner_ip, ["partner.test"], work,
                          dns=dns, users=[("alice", "partner.test", "pw-a")], log_level="info")
        started.append(partner.start())
        alice = XmppClient("alice@partner.test", "pw-a", partner_ip, workdir=work)
        started.append(alice.start())
        say("alice@partner.test sends 5 messages to bob@corp.test through her own server")
        for i, text in enumerate(["Hello Bob!", "Grüße aus partner.test", "<b>&amp; XML</b>",
                                  "fourth", "fifth"]):
            alice.send_message("bob@corp.test", text)
        wait(lambda: len(read_sink(sink)) >= 5, 30)
        show(px, "event=s2s_tls|event=s2s_auth")
        say("What reached the gateway over the link (from, to, body):")
        for ref, frm, to, body in read_sink(sink):
            print("   %-28s -> %-15s %r" % (frm, to, body))
        ok = len(read_sink(sink)) == 5
        print("\nLogs and configs are in %s" % work)
        return 0 if ok else 1
    finally:
        for d in reversed(started):
            d.stop()


if __name__ == "__main__":
    sys.exit(main())
