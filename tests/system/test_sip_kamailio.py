"""The gateway's SIP stack against real Kamailio 5.6.3 (registrar + presence) on 127.0.0.6x.

Until parley-gateway carries the stack, tests/bench/sip_harness (the stack alone, driven by
line commands) plays the gateway. Addresses: harness 127.0.0.60, test UAs 127.0.0.61-64,
Kamailio 127.0.0.65, a dead pool member 127.0.0.66.
"""
import os
import re
import socket
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import harness  # noqa: E402
import kamailio  # noqa: E402
import sipua  # noqa: E402

GW_IP = "127.0.0.60"
GW_PORT = 5070
KAM_IP = "127.0.0.65"
DEAD_IP = "127.0.0.66"
SANITIZER = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:")


def harness_binary():
    """The sip_harness built with the sanitizers: $SIP_HARNESS, the bench binaries next to
    $PARLEY_BIN, or built here with the command the Makefile documents."""
    cands = [os.environ.get("SIP_HARNESS", "")]
    if os.environ.get("PARLEY_BENCHBIN"):
        cands.append(os.path.join(os.environ["PARLEY_BENCHBIN"], "sip_harness"))
    cands.append(os.path.join(os.path.dirname(harness.BIN), "benchbin", "sip_harness"))
    for c in cands:
        if c and os.access(c, os.X_OK):
            return c
    target = "build/san/benchbin/sip_harness"
    r = subprocess.run(["make", "-C", harness.ROOT, target, "BUILD=build/san",
                        "SANITIZE=address,undefined", "OPT=-O1 -g"],
                       capture_output=True, text=True)
    path = os.path.join(harness.ROOT, target)
    assert r.returncode == 0 and os.access(path, os.X_OK), \
        "cannot build %s:\n%s" % (target, r.stdout[-2000:] + r.stderr[-2000:])
    return path


class Harness:
    """One sip_harness process: commands in, result lines out, stopped with "quit"."""

    def __init__(self, workdir, certs, pool, fixed=488, extra=()):
        self.log = os.path.join(str(workdir), "harness-%d.log" % time.monotonic_ns())
        args = [harness_binary(), "--udp", "%s:%d" % (GW_IP, GW_PORT),
                "--tcp", "%s:%d" % (GW_IP, GW_PORT), "--tls", "%s:%d" % (GW_IP, GW_PORT + 1),
                "--ca", os.path.join(certs, "ca.pem"),
                "--cert", os.path.join(certs, "gw.corp.test.pem"),
                "--key", os.path.join(certs, "gw.corp.test.key"),
                "--fixed", str(fixed), "--t1", "100"]
        for p in pool:
            args += ["--pool", p]
        args += list(extra)
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=1",
                   UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
        self.errf = open(self.log, "w")
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.errf, text=True, bufsize=1, env=env)
        self.lines = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.wait_line(r"^ready ")

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()

    def send(self, cmd):
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()

    def wait_line(self, pattern, timeout=15.0):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    m = rx.search(line)
                    if m:
                        self.lines.remove(line)
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError("harness: no %r within %.1fs; exit=%s; out=%r; log:\n%s"
                                         % (pattern, timeout, self.proc.poll(), self.lines,
                                            self.text()[-3000:]))
                self.cond.wait(min(left, 0.2))

    def request(self, cmd, ident, timeout=15.0):
        """Sends a msg/sub/opt command; returns (status, local, reason)."""
        self.send(cmd)
        m = self.wait_line(r"^final %s (\d+) local=(\d) reason=(.*)$" % re.escape(ident),
                           timeout)
        return int(m.group(1)), m.group(2) == "1", m.group(3)

    def stats(self):
        self.send("stats")
        line = self.wait_line(r"^stats ").string
        return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}

    def alive(self):
        return self.proc.poll() is None

    def text(self):
        if not self.errf.closed:
            self.errf.flush()
        with open(self.log, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.send("quit")
            except (BrokenPipeError, ValueError):
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.errf.close()
        return self.proc.returncode


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("sipcerts")
    return harness.make_certs(d, "pool.corp.test", "gw.corp.test")


@pytest.fixture(scope="module")
def kam(tmp_path_factory, certs):
    work = tmp_path_factory.mktemp("kamailio")
    k = kamailio.Kamailio(work, ip=KAM_IP, partners=["partner.test"],
                          gateway="sip:%s:%d;transport=tcp" % (GW_IP, GW_PORT), certs=certs)
    k.check()
    k.start()
    yield k
    k.stop()
    assert not k.crashed(), "kamailio crashed (environment fault, see kamailio issue #3791):\n" \
        + k.text()[-3000:]


@pytest.fixture
def started(tmp_path, certs):
    """Starts harnesses and UAs; stops them at the end and fails on sanitizer output."""
    things = []

    def start_harness(pool, fixed=488, extra=()):
        h = Harness(tmp_path, certs, pool, fixed, extra)
        things.append(h)
        return h

    def start_ua(user, ip, transport):
        port = 5061 if transport == "tls" else 5060
        ua = sipua.UA(user, "corp.test", ip, transport=transport, proxy=(KAM_IP, port),
                      ca=os.path.join(certs, "ca.pem"),
                      server_name="pool.corp.test" if transport == "tls" else None)
        ua.start()
        things.append(ua)
        return ua

    yield start_harness, start_ua
    problems = []
    for t in things:
        if isinstance(t, Harness):
            code = t.stop()
            found = SANITIZER.findall(t.text())
            if code != 0 or found:
                problems.append("harness exit=%s %s\n%s" % (code, found, t.text()[-3000:]))
        else:
            t.close()
    assert not problems, "\n".join(problems)


MEMBERS = {
    "udp": "udp:%s:5060" % KAM_IP,
    "tcp": "tcp:%s:5060" % KAM_IP,
    "tls": "tls:%s:5061;name=pool.corp.test" % KAM_IP,
}


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_gateway_message_reaches_registered_ua(kam, started, transport):
    start_harness, start_ua = started
    ua = start_ua("alice", "127.0.0.61", transport)
    assert ua.register().status == 200
    h = start_harness([MEMBERS[transport]])
    status, local, reason = h.request("msg m1 sip:alice@corp.test sip:romeo@partner.test "
                                      "wherefore art thou", "m1")
    if not kam.alive() and transport == "tls":
        pytest.fail("environment fault: kamailio crashed during TLS (kamailio issue #3791)")
    assert (status, local) == (200, False), reason
    req = ua.wait_request("MESSAGE")
    assert req.text == "wherefore art thou"
    assert sipua.addr_uri(req.header("from")) == "sip:romeo@partner.test"
    assert req.header("content-type").startswith("text/plain")
    # our Via went through with the magic cookie; Kamailio added its own on top
    vias = req.header_all("via")
    assert any("branch=z9hG4bK-pl" in v and GW_IP in v for v in vias), vias
    assert h.stats()["failovers"] == 0


def test_unknown_user_gets_404(kam, started):
    start_harness, _ = started
    h = start_harness([MEMBERS["udp"]])
    status, local, reason = h.request("msg m2 sip:nobody@corp.test sip:romeo@partner.test x",
                                      "m2")
    assert (status, local, reason) == (404, False, "Not Found")


def test_partner_domain_message_gets_fixed_answer(kam, started):
    start_harness, start_ua = started
    h = start_harness([MEMBERS["tcp"]], fixed=488)
    ua = start_ua("bob", "127.0.0.62", "udp")
    r = ua.message("sip:juliet@partner.test", "hello across")
    assert r.status == 488
    st = h.stats()
    assert st["requests_in"] == 1


def test_partner_domain_subscribe_and_notify(kam, started):
    start_harness, start_ua = started
    h = start_harness([MEMBERS["tcp"]], fixed=200)
    ua = start_ua("carol", "127.0.0.63", "tcp")
    assert ua.register().status == 200
    r, dialog = ua.subscribe("sip:juliet@partner.test", expires=300)
    assert r.status == 200
    assert r.header("expires") == "300"
    # Kamailio record-routed the SUBSCRIBE, so the dialog's route set names it
    assert dialog.routes and KAM_IP in dialog.routes[0]
    assert GW_IP in r.header("contact")
    n = ua.wait_request("NOTIFY")
    assert n.header("subscription-state") == "terminated;reason=noresource"
    assert n.header("event") == "presence"
    assert n.call_id == dialog.call_id
    assert n.tag("to") == dialog.local_tag and n.tag("from") == dialog.remote_tag
    # the NOTIFY came back through Kamailio (it is on the Via path)
    assert any(KAM_IP in v for v in n.header_all("via"))
    assert h.stats()["requests_in"] == 1


def test_dead_pool_member_skipped(kam, started):
    start_harness, start_ua = started
    ua = start_ua("dave", "127.0.0.64", "udp")
    assert ua.register().status == 200
    h = start_harness(["tcp:%s:5060" % DEAD_IP, MEMBERS["tcp"]])
    assert h.request("msg f1 sip:dave@corp.test sip:romeo@partner.test one", "f1")[:2] == \
        (200, False)
    assert h.stats()["failovers"] == 1
    # marked down: the next request goes straight to the live member
    assert h.request("msg f2 sip:dave@corp.test sip:romeo@partner.test two", "f2")[:2] == \
        (200, False)
    st = h.stats()
    assert st["failovers"] == 1
    assert st["transport_errors"] == 1
    assert [m.text for m in ua.received if m.method == "MESSAGE"] == ["one", "two"]


def test_loop_back_to_us_is_482(kam, started):
    start_harness, _ = started
    # a partner-domain MESSAGE sent to the pool comes straight back to us
    h = start_harness([MEMBERS["tcp"]])
    status, local, _ = h.request("msg l1 sip:juliet@partner.test sip:romeo@partner.test x", "l1")
    assert (status, local) == (482, False)
    assert h.stats()["loops"] == 1


def wait_stats(h, pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        st = h.stats()
        if pred(st) or time.monotonic() > deadline:
            return st
        time.sleep(0.2)


def test_crlf_keepalive_on_idle_flow(kam, started):
    start_harness, start_ua = started
    ua = start_ua("fred", "127.0.0.61", "udp")
    assert ua.register().status == 200
    h = start_harness([MEMBERS["tcp"]], extra=["--keepalive", "200"])
    assert h.request("msg k1 sip:fred@corp.test sip:romeo@partner.test x", "k1")[:2] == \
        (200, False)
    # Kamailio answers our RFC 5626 double-CRLF pings with CRLF; the flow stays up
    st = wait_stats(h, lambda s: s["pongs_in"] >= 3)
    assert st["pings_out"] >= 3 and st["pongs_in"] >= 3
    assert st["flows"] == 1
    assert h.request("msg k2 sip:fred@corp.test sip:romeo@partner.test y", "k2")[:2] == \
        (200, False)
    assert h.stats()["flows"] == 1  # reused, not reopened


def test_health_checks_mark_members(kam, started):
    start_harness, _ = started
    h = start_harness(["tcp:%s:5060" % DEAD_IP, MEMBERS["tcp"]], extra=["--health", "150"])
    st = wait_stats(h, lambda s: s["health_down"] >= 2 and s["health_up"] >= 2)
    # OPTIONS to each member: the dead one is marked down, the live one up
    assert st["health_down"] >= 2
    assert st["health_up"] >= 2
    # so a request goes to the live member without a failover
    status, local, _ = h.request("opt o1 sip:%s" % KAM_IP, "o1")
    assert not local and status in (200, 404)
    assert h.stats()["failovers"] == 0


def tcp_exchange(data, port=GW_PORT, wait=2.0):
    s = socket.create_connection((GW_IP, port), timeout=wait)
    s.sendall(data)
    out = b""
    deadline = time.monotonic() + wait
    try:
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except socket.timeout:
        pass
    s.close()
    return out


def test_malformed_sip_gets_400_and_gateway_stays_up(kam, started):
    start_harness, start_ua = started
    h = start_harness([MEMBERS["udp"]])
    bad_cl = (b"MESSAGE sip:juliet@partner.test SIP/2.0\r\n"
              b"Via: SIP/2.0/TCP 127.0.0.64:5099;branch=z9hG4bKbad1\r\n"
              b"From: <sip:eve@corp.test>;tag=e\r\nTo: <sip:juliet@partner.test>\r\n"
              b"Call-ID: bad-1\r\nCSeq: 1 MESSAGE\r\nContent-Length: 99999999999\r\n\r\n")
    out = tcp_exchange(bad_cl)
    assert out.startswith(b"SIP/2.0 400 "), out
    assert b"branch=z9hG4bKbad1" in out
    missing = (b"MESSAGE sip:juliet@partner.test SIP/2.0\r\n"
               b"Via: SIP/2.0/TCP 127.0.0.64:5099;branch=z9hG4bKbad2\r\n"
               b"To: <sip:juliet@partner.test>\r\nCall-ID: bad-2\r\nCSeq: 1 MESSAGE\r\n"
               b"Content-Length: 0\r\n\r\n")
    out = tcp_exchange(missing, wait=1.0)
    assert out.startswith(b"SIP/2.0 400 Bad Request (missing From)"), out
    out = tcp_exchange(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 200)
    assert out.startswith(b"SIP/2.0 400 "), out
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.sendto(b"\x00\x01garbage\r\n\r\n", (GW_IP, GW_PORT))
    u.sendto(b"MESSAGE sip:x SIP/2.0\r\nVia: nonsense\r\n\r\n", (GW_IP, GW_PORT))
    u.close()
    assert h.alive()
    # still serving: a partner-domain request through Kamailio gets its answer
    ua = start_ua("erin", "127.0.0.61", "udp")
    assert ua.message("sip:juliet@partner.test", "after the noise").status == 488
    st = h.stats()
    assert st["bad_input"] >= 3
    assert st["bad_requests"] >= 1
