#!/usr/bin/env python3
"""make bench: Parley's performance figures (release build, no sanitizers).

Each benchmark prints one line of figures; nothing here passes or fails. Run one by name:
    make bench BENCH_ARGS="link"
"""
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "system"))

from harness import Daemon, free_port, make_certs  # noqa: E402
from linkconf import gateway_conf, proxy_conf  # noqa: E402

BENCHBIN = os.environ.get("PARLEY_BENCHBIN", "")


def frame_size(body):
    """Size on the wire of one source frame with this body length (header included)."""
    py = os.environ.get("PARLEY_PY")
    sys.path.insert(0, py)
    import link_pb2 as L
    f = L.Frame()
    f.seq = 1_000_000
    s = f.stanza
    s.ref = 1_000_000
    s.kind = L.KIND_MESSAGE
    setattr(s, "from", "load@partner.test/gen")
    s.to = "sink@corp.test"
    s.type = "chat"
    s.body = "x" * body
    return 4 + len(f.SerializeToString())


def bench_link(n=3_000_000, body=236):
    """One-way frames/s from the edge's test source to the gateway's sink over TLS 1.3."""
    work = tempfile.mkdtemp(prefix="parley-bench-link-")
    make_certs(work, "proxy.link.test", "gateway.link.test")
    port = free_port()
    pconf = proxy_conf(work, port, source_frames=n).replace(
        "source_body_bytes = 200", "source_body_bytes = %d" % body)
    px = Daemon("parley-proxy", work, "proxy", pconf).start()
    gw = None
    try:
        time.sleep(0.3)
        gconf = gateway_conf(work, port, sink_expect=n)
        gw = Daemon("parley-gateway", work, "gateway", gconf).start()
        m = gw.wait_log(r"event=sink_done frames=(\d+) elapsed_us=(\d+) rate=(\d+)", timeout=300)
        frames, us, rate = (int(x) for x in m[0])
        gw.stop()
        px.stop()
        rss_p = re.findall(r"event=stopped .*peak_rss_kib=(\d+)", px.text())
        rss_g = re.findall(r"event=stopped .*peak_rss_kib=(\d+)", gw.text())
        size = frame_size(body)
        print("link: %d frames of %d bytes one way over TLS 1.3 in %.2f s: %d frames/s (%.0f MB/s); "
              "peak RSS proxy %s KiB, gateway %s KiB"
              % (frames, size, us / 1e6, rate, rate * size / 1e6,
                 rss_p[-1] if rss_p else "?", rss_g[-1] if rss_g else "?"), flush=True)
    finally:
        if gw:
            gw.stop()
        px.stop()


def bench_binaries():
    """Runs every C micro-benchmark built from tests/bench/*.c that needs no arguments."""
    if not BENCHBIN or not os.path.isdir(BENCHBIN):
        return
    for name in sorted(os.listdir(BENCHBIN)):
        if not name.startswith("bench_"):
            continue
        r = subprocess.run([os.path.join(BENCHBIN, name)], capture_output=True, text=True,
                           timeout=600)
        out = (r.stdout.strip() or r.stderr.strip()).splitlines()
        print("%s: %s" % (name, out[-1] if out else "exit %d" % r.returncode), flush=True)


BENCHES = {"link": bench_link, "micro": bench_binaries}


def main(argv):
    names = argv[1:] or list(BENCHES)
    for n in names:
        if n not in BENCHES:
            print("unknown benchmark %r; have: %s" % (n, ", ".join(BENCHES)))
            return 2
        BENCHES[n]()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
