#!/usr/bin/env python3
"""make demo: runs what Parley can do today on loopback and explains it as it goes.

Now: a throwaway CA and link certificates, parley-proxy (edge) and parley-gateway
(internal) joined by the TLS 1.3 mutual-auth link, frames flowing edge -> gateway with
acknowledgements, a link cut healed without loss, then a clean stop."""
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "system"))

from harness import Daemon, Relay, free_port, make_certs  # noqa: E402
from linkconf import gateway_conf, proxy_conf, read_refs  # noqa: E402

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
        print("\nLogs and configs are in %s" % work)
        return 0 if refs == list(range(1, N + 1)) else 1
    finally:
        if relay:
            relay.close()
        for d in started:
            d.stop()


if __name__ == "__main__":
    sys.exit(main())
