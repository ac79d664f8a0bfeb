"""A scripted SIP presence server over UDP standing in for the organisation's front-end pool,
for tests that need NOTIFYs Kamailio never sends (Subscription-State: pending, a rejection
after pending, ...). Standard library only; SIP parsing from sipua.py.

    pool = SipPool("127.0.0.155", 5060).start()
    sub = pool.wait_subscribe(timeout=30)     # the gateway's SUBSCRIBE, already answered 202
    r = pool.notify(sub, "pending;expires=600")
    assert r.status == 200
    r = pool.notify(sub, "active;expires=600", body=pidf_text)
    pool.stop()

What it does on its own:
- OPTIONS (health checks): 200.
- SUBSCRIBE outside a dialog: `subscribe_status` (202 by default; 200 when Expires is 0)
  with a To-tag, a Contact and the granted Expires (min of the request's and `max_expires`).
  A new dialog with Expires 0 is a fetch (RFC 6665 §4.4.3): answered, then one NOTIFY
  "terminated;reason=timeout" carrying `fetch_body`. Otherwise the test sends the NOTIFYs.
- SUBSCRIBE in a known dialog: 200 with the granted Expires (a refresh); Expires 0 ends it
  with a NOTIFY "terminated;reason=timeout". Unknown dialog: 481.
- Anything else: 405. A retransmitted request gets the same answer again.

Scripted answers (MAPPING.md D4): `script(status, headers)` queues an answer for the next
SUBSCRIBE outside a dialog, `script(status, headers, refresh=True)` one for the next
SUBSCRIBE inside a known dialog (a refresh); each is used once, in order, and only by
SUBSCRIBEs with Expires > 0 (fetches and unsubscribes keep the answers above). A 2xx is
answered as above with that status; any other status gets a To-tag and only the headers
given (e.g. [("Min-Expires", "1800")] with 423), creates no dialog outside one and leaves
the dialog as it was inside one. With both queues empty the pool behaves as described above.

    pool.script(423, [("Min-Expires", "1800")])   # the first SUBSCRIBE: 423, the next 202
    pool.script(481, refresh=True)                # the first refresh: 481

Every request received carries `t` (time.monotonic() on arrival); every SUBSCRIBE also
`answer`, the status we gave it.

Every request received is in `received`, every response in `responses`; each Sub keeps the
SUBSCRIBEs of its dialog (`requests`) and the final answers to our NOTIFYs (`notify_responses`).
"""
import collections
import queue
import socket
import threading
import time

from sipua import Message, addr_uri, param, parse, token

REASONS = {200: "OK", 202: "Accepted", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 410: "Gone", 416: "Unsupported URI Scheme",
           423: "Interval Too Brief", 480: "Temporarily Unavailable",
           481: "Call/Transaction Does Not Exist", 489: "Bad Event",
           500: "Server Internal Error", 501: "Not Implemented", 503: "Service Unavailable",
           603: "Decline", 604: "Does Not Exist Anywhere"}


def uri_hostport(uri, default_port=5060):
    """(host, port) of a sip: URI such as sip:user@127.0.0.1:5060;transport=udp."""
    rest = uri.split(":", 1)[1]
    rest = rest.split(";", 1)[0].split("?", 1)[0]
    hostport = rest.rsplit("@", 1)[-1]
    host, _, port = hostport.partition(":")
    return host, int(port) if port else default_port


class Sub:
    """One subscription dialog, seen from the notifier (us)."""

    def __init__(self, req, src, local_tag, expires):
        self.call_id = req.call_id
        self.local_tag = local_tag                 # our To-tag
        self.remote_tag = req.tag("from")          # the subscriber's From-tag
        self.local_uri = addr_uri(req.header("to"))
        self.remote_uri = addr_uri(req.header("from"))
        self.target = addr_uri(req.header("contact")) or self.remote_uri
        self.src = src                              # where the SUBSCRIBE came from
        self.cseq = 0                               # our last NOTIFY CSeq
        self.expires = expires                      # granted on the last SUBSCRIBE
        self.requests = [req]                       # SUBSCRIBEs in this dialog
        self.notify_responses = []                  # final answers to our NOTIFYs, in order
        self.fetch = expires == 0


class SipPool:
    """The scripted presence server on ip:port (UDP)."""

    T1 = 0.5

    def __init__(self, ip, port=5060, subscribe_status=202, max_expires=3600,
                 fetch_body=None, domain="corp.test"):
        self.ip, self.port = ip, port
        self.subscribe_status = subscribe_status
        self.max_expires = max_expires
        self.fetch_body = fetch_body
        self.domain = domain
        self.received = []
        self.responses = []
        self.subs = []
        self._answers = {}          # (branch, method) -> bytes of our final answer
        self._pending = {}          # branch -> queue of responses to our requests
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        self._sock = None
        self._thread = None
        self._closing = False
        self.errors = []            # exceptions in the reader thread (a test may assert on it)
        self.new_answers = collections.deque()      # scripted: SUBSCRIBEs outside a dialog
        self.refresh_answers = collections.deque()  # scripted: SUBSCRIBEs inside a dialog

    # -- lifecycle

    def start(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((self.ip, self.port))
        s.settimeout(0.1)  # the reader checks _closing: a closed fd would not wake it
        self._sock = s
        self._thread = threading.Thread(target=self._reader, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Ends the reader, then closes the socket (the port is free when this returns)."""
        self._closing = True
        if self._thread:
            self._thread.join(timeout=5)
        if self._sock:
            self._sock.close()

    # -- wire

    def contact(self):
        return "<sip:pool@%s:%d>" % (self.ip, self.port)

    def _send(self, data, dest):
        with self._send_lock:
            self._sock.sendto(data, dest)

    def _reader(self):
        while not self._closing:
            try:
                data, src = self._sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                if self._closing:
                    break
                continue
            if not data.strip(b"\r\n"):
                continue
            try:
                m = parse(data)
            except ValueError as e:
                self.errors.append(e)
                continue
            m.source = src
            m.t = time.monotonic()
            try:
                if m.method is None:
                    self._on_response(m)
                else:
                    self._on_request(m)
            except Exception as e:  # noqa: BLE001 - keep serving; the test sees errors
                self.errors.append(e)

    def _on_response(self, m):
        with self._cond:
            self.responses.append(m)
            self._cond.notify_all()
        vias = m.header_all("via")
        q = self._pending.get(param(vias[0], "branch") if vias else None)
        if q:
            q.put(m)

    def _reply(self, req, status, to_tag=None, headers=()):
        hs = [("Via", v) for v in req.header_all("via")]
        to = req.header("to")
        if param(to, "tag") is None and to_tag:
            to += ";tag=" + to_tag
        hs += [("From", req.header("from")), ("To", to), ("Call-ID", req.call_id),
               ("CSeq", req.header("cseq"))]
        hs += list(headers)
        r = Message("SIP/2.0 %d %s" % (status, REASONS.get(status, "Answer")), hs)
        data = r.to_bytes()
        vias = req.header_all("via")
        self._answers[(param(vias[0], "branch") if vias else None, req.method)] = data
        self._send(data, req.source)

    def _on_request(self, m):
        vias = m.header_all("via")
        key = (param(vias[0], "branch") if vias else None, m.method)
        if key in self._answers:  # a retransmission: the same answer again
            self._send(self._answers[key], m.source)
            return
        with self._cond:
            self.received.append(m)
            self._cond.notify_all()
        if m.method == "ACK":
            return
        if m.method == "OPTIONS":
            self._reply(m, 200, token(8))
        elif m.method == "SUBSCRIBE":
            self._on_subscribe(m)
        else:
            self._reply(m, 405, token(8), [("Allow", "OPTIONS, SUBSCRIBE")])

    def _granted(self, m):
        try:
            asked = int(m.header("expires") or 3600)
        except ValueError:
            asked = 3600
        return min(asked, self.max_expires)

    def _scripted(self, answers, exp):
        """The next scripted (status, headers) of answers, or None (none, or exp 0)."""
        if exp == 0:
            return None
        with self._cond:
            return answers.popleft() if answers else None

    def _answer(self, m, status, to_tag=None, headers=()):
        m.answer = status
        self._reply(m, status, to_tag, headers)
        with self._cond:
            self._cond.notify_all()

    def _on_subscribe(self, m):
        exp = self._granted(m)
        hdrs = [("Contact", self.contact()), ("Expires", str(exp))]
        if m.tag("to") is None:
            script = self._scripted(self.new_answers, exp)
            if script and not 200 <= script[0] < 300:
                self._answer(m, script[0], token(8), script[1])
                return
            sub = Sub(m, m.source, token(8), exp)
            with self._cond:
                self.subs.append(sub)
                self._cond.notify_all()
            status = script[0] if script else 200 if exp == 0 else self.subscribe_status
            self._answer(m, status, sub.local_tag, hdrs)
            if exp == 0:
                self._notify_later(sub, "terminated;reason=timeout", self.fetch_body)
            return
        sub = self.find(m.call_id, m.tag("to"))
        if sub is None:
            self._answer(m, 481)
            return
        script = self._scripted(self.refresh_answers, exp)
        with self._cond:
            sub.requests.append(m)
            if not script or 200 <= script[0] < 300:
                sub.expires = exp
            self._cond.notify_all()
        if script and not 200 <= script[0] < 300:
            self._answer(m, script[0], None, script[1])
            return
        self._answer(m, script[0] if script else 200, None, hdrs)
        if exp == 0:
            self._notify_later(sub, "terminated;reason=timeout", None)

    def _notify_later(self, sub, state, body):
        """A NOTIFY from another thread: the reader must stay free to take its answer."""
        def run():
            try:
                self.notify(sub, state, body)
            except (OSError, TimeoutError) as e:
                if not self._closing:
                    self.errors.append(e)
        threading.Thread(target=run, daemon=True).start()

    # -- test side

    def script(self, status, headers=(), refresh=False):
        """Queues the answer of the next SUBSCRIBE (Expires > 0) outside a dialog, or with
        refresh inside a known one: status with headers, a list of (name, value)."""
        with self._cond:
            (self.refresh_answers if refresh else self.new_answers).append(
                (status, list(headers)))

    def subscribes(self, fetches=False):
        """The SUBSCRIBEs received, in order (without Expires: 0 ones unless fetches)."""
        with self._cond:
            return [m for m in self.received if m.method == "SUBSCRIBE" and
                    (fetches or int(m.header("expires") or 3600) != 0)]

    def wait_subscribes(self, n, timeout=20.0, fetches=False):
        """Waits until subscribes(fetches) has n entries, all answered; returns them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [m for m in self.received if m.method == "SUBSCRIBE" and
                       (fetches or int(m.header("expires") or 3600) != 0)]
                if len(got) >= n and all(hasattr(m, "answer") for m in got[:n]):
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("%d SUBSCRIBEs within %.1fs, not %d: %r" % (
                        len(got), timeout, n, [(m.start, m.header("expires"),
                                                getattr(m, "answer", None)) for m in got]))
                self._cond.wait(left)

    def find(self, call_id, local_tag):
        with self._cond:
            for s in self.subs:
                if s.call_id == call_id and s.local_tag == local_tag:
                    return s
        return None

    def wait_subscribe(self, timeout=20.0, pred=None, fetch=False):
        """The first subscription dialog (fetches only if fetch) matching pred, waiting up to
        timeout seconds; raises AssertionError if none came."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for s in self.subs:
                    if s.fetch == fetch and (pred is None or pred(s)):
                        return s
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no SUBSCRIBE within %.1fs; got %r" % (
                        timeout, [m.start for m in self.received]))
                self._cond.wait(left)

    def requests(self, method):
        with self._cond:
            return [m for m in self.received if m.method == method]

    def notify(self, sub, state, body=None, content_type="application/pidf+xml",
               timeout=10.0):
        """Sends a NOTIFY in sub's dialog with Subscription-State `state` (and body, if
        any) and returns the final response (kept in sub.notify_responses); retransmits
        over UDP (T1 doubling up to 4 s); TimeoutError if no final answer."""
        branch = "z9hG4bK" + token(16)
        with self._cond:
            sub.cseq += 1
            cseq = sub.cseq
        hs = [("Via", "SIP/2.0/UDP %s:%d;branch=%s;rport" % (self.ip, self.port, branch)),
              ("Max-Forwards", "70"),
              ("From", "<%s>;tag=%s" % (sub.local_uri, sub.local_tag)),
              ("To", "<%s>;tag=%s" % (sub.remote_uri, sub.remote_tag)),
              ("Call-ID", sub.call_id), ("CSeq", "%d NOTIFY" % cseq),
              ("Contact", self.contact()), ("Event", "presence"),
              ("Subscription-State", state)]
        if isinstance(body, str):
            body = body.encode()
        if body:
            hs.append(("Content-Type", content_type))
        m = Message("NOTIFY %s SIP/2.0" % sub.target, hs, body or b"")
        data = m.to_bytes()
        dest = uri_hostport(sub.target)
        q = queue.Queue()
        self._pending[branch] = q
        try:
            self._send(data, dest)
            deadline = time.monotonic() + timeout
            interval = self.T1
            next_rtx = time.monotonic() + interval
            while True:
                now = time.monotonic()
                if now >= deadline:
                    raise TimeoutError("NOTIFY %s (%s): no final response" % (sub.target,
                                                                              state))
                try:
                    r = q.get(timeout=max(min(deadline, next_rtx) - now, 0.001))
                except queue.Empty:
                    if time.monotonic() >= next_rtx:
                        self._send(data, dest)
                        interval = min(interval * 2, 4.0)
                        next_rtx = time.monotonic() + interval
                    continue
                if r.status >= 200:
                    r.request = m
                    with self._cond:
                        sub.notify_responses.append(r)
                    return r
        finally:
            self._pending.pop(branch, None)
