"""make bench, SIP part: MESSAGE transactions/s through the gateway's SIP stack (the
sip_harness binary, pinned to one core) against the minimal C UAS (sip_uas, on another
core) over UDP, TCP and TLS, with the stack's peak RSS."""
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "system"))

from harness import make_certs  # noqa: E402

UAS_IP = "127.0.0.66"
GW_IP = "127.0.0.60"


def pin(cpu):
    def f():
        try:
            os.sched_setaffinity(0, {cpu})
        except OSError:
            pass
    return f


def run_load(benchbin, member, certs, n, conc, users):
    args = [os.path.join(benchbin, "sip_harness"), "--udp", GW_IP + ":0", "--tcp", GW_IP + ":0",
            "--pool", member, "--ca", os.path.join(certs, "ca.pem"), "--log", "warn"]
    p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                         preexec_fn=pin(0))
    try:
        p.stdout.readline()  # ready
        p.stdin.write("load %d %d %d corp.test sip:load@partner.test\n" % (n, conc, users))
        p.stdin.flush()
        line = p.stdout.readline()
        p.stdin.write("quit\n")
        p.stdin.flush()
        p.wait(30)
    finally:
        if p.poll() is None:
            p.kill()
    m = re.search(r"rate=(\d+) maxrss_kb=(\d+)", line)
    if not m:
        raise RuntimeError("sip_harness: %r" % line)
    return int(m.group(1)), int(m.group(2))


def bench_sip(n=300_000, conc=200, users=20_000):
    """MESSAGE transactions/s over UDP, TCP and TLS, one core for the stack."""
    benchbin = os.environ.get("PARLEY_BENCHBIN", "")
    if not os.access(os.path.join(benchbin, "sip_harness"), os.X_OK):
        print("sip: no sip_harness in %r" % benchbin, flush=True)
        return
    work = tempfile.mkdtemp(prefix="parley-bench-sip-")
    make_certs(work, "pool.corp.test")
    uas = subprocess.Popen(
        [os.path.join(benchbin, "sip_uas"), "--udp", UAS_IP + ":25060", "--tcp",
         UAS_IP + ":25060", "--tls", UAS_IP + ":25061", "--cert",
         os.path.join(work, "pool.corp.test.pem"), "--key", os.path.join(work, "pool.corp.test.key")],
        stdout=subprocess.PIPE, text=True, preexec_fn=pin(1 if os.cpu_count() > 1 else 0))
    try:
        uas.stdout.readline()
        members = {"udp": "udp:%s:25060" % UAS_IP, "tcp": "tcp:%s:25060" % UAS_IP,
                   "tls": "tls:%s:25061;name=pool.corp.test" % UAS_IP}
        for t, member in members.items():
            best, rss = 0, 0
            for _ in range(2):
                rate, kb = run_load(benchbin, member, work, n, conc, users)
                if rate > best:
                    best, rss = rate, kb
                time.sleep(0.2)
            print("sip %s: %d MESSAGE transactions/s (%d in flight, stack on one core); "
                  "peak RSS %d KiB" % (t.upper(), best, conc, rss), flush=True)
    finally:
        uas.terminate()
        uas.wait(10)
