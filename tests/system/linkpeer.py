"""A gateway-side link peer for system tests: speaks the internal link protocol to a real
parley-proxy (TLS 1.3 with the gateway's test certificate, 4-byte length framing, Frame
protobufs from PARLEY_PY's link_pb2), so a test can push a PolicySnapshot and partner-bound
Stanza frames and see, as the gateway would, the Delivered/Bounce outcomes and the stanzas
that partners sent in.

    lp = LinkPeer("127.0.0.1", link_port, certs).start()
    lp.send_policy(partners={"partner.test": {"sasl": NEG_NOT_SUPPORTED}})
    ref = lp.send_stanza("bob@corp.test", "alice@partner.test", "hi")
    assert lp.wait_outcome(ref)[0] == "delivered"

It dials like the gateway (Hello first, role GATEWAY), acknowledges every reliable frame it
receives as soon as it has recorded it, answers pings, and does not resend after a cut (a
test that needs that uses the real gateway)."""
import os
import random
import socket
import ssl
import struct
import sys
import threading
import time

from harness import PYGEN

sys.path.insert(0, PYGEN)
import link_pb2 as pb  # noqa: E402

NEG_REQUIRED = pb.NEG_REQUIRED
NEG_OPTIONAL = pb.NEG_OPTIONAL
NEG_NOT_SUPPORTED = pb.NEG_NOT_SUPPORTED


class LinkPeer:
    def __init__(self, host, port, certs, cert="gateway.link.test", ca="ca.pem",
                 proxy_name="proxy.link.test", node_id="pygw", priority=5, window=4096):
        self.host, self.port = host, port
        self.certs, self.cert, self.ca, self.proxy_name = certs, cert, ca, proxy_name
        self.node_id, self.priority, self.window = node_id, priority, window
        self.epoch = random.getrandbits(64) or 1
        self.sock = None
        self.wlock = threading.Lock()
        self.cond = threading.Condition()
        self.next_seq = 1
        self.next_ref = 1000
        self.generation = 0
        self.peer_hello = None
        self.received = set()      # reliable seqs received from the edge
        self.acked = set()         # our seqs the edge acknowledged
        self.outcomes = {}         # ref -> ("delivered", None) | ("bounce", (type, cond, text))
        self.outcome_times = {}    # ref -> monotonic time of the outcome
        self.outcome_frames = 0    # Delivered + Bounce frames received
        self.dup_outcomes = 0      # outcomes for a ref that already had one
        self.stanzas = []          # Stanza frames from the edge (partner -> us), in order
        self.sent_at = {}          # ref -> monotonic time we sent it
        self.closed = False
        self.reader = None

    # -- connection

    def start(self, timeout=10.0):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_verify_locations(os.path.join(self.certs, self.ca))
        ctx.load_cert_chain(os.path.join(self.certs, self.cert + ".pem"),
                            os.path.join(self.certs, self.cert + ".key"))
        deadline = time.monotonic() + timeout
        while True:
            try:
                raw = socket.create_connection((self.host, self.port), timeout=timeout)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.sock = ctx.wrap_socket(raw, server_hostname=self.proxy_name)
        self.sock.settimeout(None)
        f = pb.Frame()
        h = f.hello
        h.version = 1
        h.node_id = self.node_id
        h.epoch = self.epoch
        h.role = pb.ROLE_GATEWAY
        h.priority = self.priority
        h.window = self.window
        self._write(f)
        self.reader = threading.Thread(target=self._read_loop, daemon=True)
        self.reader.start()
        self._wait(lambda: self.peer_hello is not None, timeout, "the edge's Hello")
        return self

    def stop(self):
        self.closed = True
        if self.sock is not None:
            try:
                f = pb.Frame()
                f.goodbye.reason = "test over"
                self._write(f)
            except OSError:
                pass
            try:
                self.sock.close()
            except OSError:
                pass
        if self.reader is not None:
            self.reader.join(2)

    def _write(self, frame):
        data = frame.SerializeToString()
        with self.wlock:
            self.sock.sendall(struct.pack("!I", len(data)) + data)

    def _recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def _ack(self):
        f = pb.Frame()
        seqs = sorted(self.received)
        run = None
        for s in seqs:
            if run and s == run[1] + 1:
                run[1] = s
            else:
                if run:
                    r = f.ack.ranges.add()
                    r.first, r.last = run
                run = [s, s]
        if run:
            r = f.ack.ranges.add()
            r.first, r.last = run
        self._write(f)

    def _read_loop(self):
        try:
            while not self.closed:
                (n,) = struct.unpack("!I", self._recv_exact(4))
                f = pb.Frame()
                f.ParseFromString(self._recv_exact(n))
                self._dispatch(f)
        except (OSError, EOFError, ValueError):
            pass
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def _dispatch(self, f):
        kind = f.WhichOneof("body")
        now = time.monotonic()
        with self.cond:
            if kind == "hello":
                self.peer_hello = f.hello
            elif kind == "ack":
                for r in f.ack.ranges:
                    self.acked.update(range(r.first, r.last + 1))
            elif kind == "goodbye":
                # the edge is closing (SIGTERM): let it finish at once, as the gateway does
                self.closed = True
                try:
                    self.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            elif kind == "ping":
                p = pb.Frame()
                p.pong.nonce = f.ping.nonce
                self._write(p)
            elif kind in ("stanza", "delivered", "bounce", "policy"):
                new = f.seq not in self.received
                self.received.add(f.seq)
                if new and kind == "stanza":
                    self.stanzas.append(f.stanza)
                elif new and kind == "delivered":
                    self.outcome_frames += 1
                    for ref in f.delivered.refs:
                        self._outcome(ref, ("delivered", None), now)
                elif new and kind == "bounce":
                    self.outcome_frames += 1
                    e = f.bounce.error
                    self._outcome(f.bounce.ref, ("bounce", (e.type, e.condition, e.text)), now)
                self._ack()
            self.cond.notify_all()

    def _outcome(self, ref, what, now):
        if ref in self.outcomes:
            self.dup_outcomes += 1
            return
        self.outcomes[ref] = what
        self.outcome_times[ref] = now

    def _wait(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not pred():
                left = deadline - time.monotonic()
                if left <= 0 or (self.closed and not pred()):
                    raise AssertionError("link peer: no %s within %.1fs (closed=%s)" % (
                        what, timeout, self.closed))
                self.cond.wait(min(left, 0.2))

    # -- sending

    def _send_reliable(self, frame):
        with self.cond:
            frame.seq = self.next_seq
            self.next_seq += 1
        self._write(frame)
        return frame.seq

    def send_policy(self, served=("corp.test",), partners=None, establishment_s=None,
                    inactivity_s=None, keepalive_s=None, **limits):
        """partners: domain -> dict of Partner fields (tls, sasl, dialback, proxy_host,
        proxy_port, additional_domains, keepalive, connection_limit). Waits until the edge
        acknowledged it."""
        f = pb.Frame()
        p = f.policy
        self.generation += 1
        p.generation = self.generation
        p.served_domains.extend(served)
        for dom, keys in (partners or {"partner.test": {}}).items():
            pp = p.partners.add()
            pp.domain = dom
            for k, v in keys.items():
                if k == "additional_domains":
                    pp.additional_domains.extend(v)
                else:
                    setattr(pp, k, v)
        for k, v in (("establishment_s", establishment_s), ("inactivity_s", inactivity_s),
                     ("keepalive_s", keepalive_s)):
            if v is not None:
                setattr(p.timers, k, v)
        for k, v in limits.items():
            setattr(p.limits, k, v)
        seq = self._send_reliable(f)
        self._wait(lambda: seq in self.acked, 10, "ack of the policy")
        return seq

    def send_stanza(self, frm, to, body=None, kind="message", type="chat", ref=None, **fields):
        """Sends one Stanza frame; returns its ref. fields: id, lang, subject, thread,
        thread_parent, show, status, priority, extra (list of bytes), error (dict)."""
        f = pb.Frame()
        st = f.stanza
        if ref is None:
            with self.cond:
                ref = self.next_ref
                self.next_ref += 1
        st.ref = ref
        st.kind = {"message": pb.KIND_MESSAGE, "presence": pb.KIND_PRESENCE,
                   "iq": pb.KIND_IQ}[kind]
        if type is not None:
            st.type = type
        if frm is not None:
            setattr(st, "from", frm)
        if to is not None:
            st.to = to
        if body is not None:
            st.body = body
        for k, v in fields.items():
            if k == "extra":
                st.extra.extend(v)
            elif k == "error":
                for ek, ev in v.items():
                    setattr(st.error, ek, ev)
            else:
                setattr(st, k, v)
        self.sent_at[ref] = time.monotonic()
        self._send_reliable(f)
        return ref

    # -- what came back

    def wait_outcome(self, ref, timeout=20.0):
        self._wait(lambda: ref in self.outcomes, timeout, "outcome for ref %d" % ref)
        with self.cond:
            return self.outcomes[ref]

    def wait_outcomes(self, refs, timeout=30.0):
        refs = list(refs)
        self._wait(lambda: all(r in self.outcomes for r in refs), timeout,
                   "outcomes for %d refs" % len(refs))
        with self.cond:
            return [self.outcomes[r] for r in refs]

    def outcome_delay(self, ref):
        return self.outcome_times[ref] - self.sent_at[ref]

    def wait_stanzas(self, n, timeout=30.0):
        self._wait(lambda: len(self.stanzas) >= n, timeout, "%d stanzas from the edge" % n)
        with self.cond:
            return list(self.stanzas)

    def all_acked(self, upto=None):
        upto = upto or self.next_seq - 1
        with self.cond:
            return all(s in self.acked for s in range(1, upto + 1))
