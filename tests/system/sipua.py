"""A SIP user agent for tests, on the Python standard library only (socket, ssl, threading).

REGISTER, MESSAGE, SUBSCRIBE/NOTIFY and PUBLISH over UDP, TCP and TLS. Incoming requests
are recorded and answered automatically (MESSAGE with a configurable status, NOTIFY with
200, anything else with 200 or what `answers` says).

    ua = UA("alice", "corp.test", "127.0.0.62", transport="tcp", proxy=("127.0.0.65", 5060))
    ua.start()
    assert ua.register().status == 200
    r = ua.message("sip:bob@corp.test", "hello")
    req = ua.wait_request("MESSAGE")
    ua.close()

Streams use one connection to the proxy, and the Contact names that connection's local
address, so the proxy sends requests for us back over it (what RFC 5626 flows do without
the ;ob machinery). Debian's sipp has no TLS, hence this.
"""
import queue
import random
import socket
import ssl
import string
import threading
import time

COMPACT = {
    "v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact", "l": "content-length",
    "c": "content-type", "o": "event", "s": "subject", "k": "supported", "e": "content-encoding",
    "u": "allow-events", "r": "refer-to", "b": "referred-by", "x": "session-expires",
}

REASONS = {100: "Trying", 200: "OK", 202: "Accepted", 400: "Bad Request", 403: "Forbidden",
           404: "Not Found", 405: "Method Not Allowed", 480: "Temporarily Unavailable",
           481: "Call/Transaction Does Not Exist", 486: "Busy Here", 488: "Not Acceptable Here",
           489: "Bad Event", 500: "Server Internal Error", 503: "Service Unavailable"}


def token(n=12):
    return "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(n))


def canon(name):
    n = name.strip().lower()
    return COMPACT.get(n, n)


def param(value, name):
    """The value of ;name=... in a header value, or None."""
    if value is None:
        return None
    for part in value.split(";")[1:]:
        k, _, v = part.partition("=")
        if k.strip().lower() == name:
            return v.strip().strip('"')
    return None


def addr_uri(value):
    """The URI inside a name-addr "<sip:...>" (or an addr-spec)."""
    if value is None:
        return None
    if "<" in value:
        return value[value.index("<") + 1:value.index(">")]
    return value.split(";")[0].strip()


class Message:
    """One SIP message: start line, ordered headers, body (bytes)."""

    def __init__(self, start, headers, body=b""):
        self.start = start
        self.headers = list(headers)
        self.body = body
        parts = start.split(" ", 2)
        if parts[0].startswith("SIP/"):
            self.method = None
            self.status = int(parts[1])
            self.reason = parts[2] if len(parts) > 2 else ""
            self.ruri = None
        else:
            self.method = parts[0]
            self.ruri = parts[1] if len(parts) > 1 else ""
            self.status = None
            self.reason = None

    def header(self, name):
        want = canon(name)
        for n, v in self.headers:
            if canon(n) == want:
                return v
        return None

    def header_all(self, name):
        want = canon(name)
        out = []
        for n, v in self.headers:
            if canon(n) != want:
                continue
            if want in ("via", "route", "record-route"):
                out.extend(x.strip() for x in split_commas(v))
            else:
                out.append(v)
        return out

    @property
    def call_id(self):
        return self.header("call-id")

    @property
    def cseq(self):
        num, _, method = (self.header("cseq") or "0 ?").strip().partition(" ")
        return int(num), method.strip()

    def tag(self, which):
        return param(self.header(which), "tag")

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def to_bytes(self):
        head = self.start + "\r\n"
        for n, v in self.headers:
            if canon(n) != "content-length":
                head += "%s: %s\r\n" % (n, v)
        head += "Content-Length: %d\r\n\r\n" % len(self.body)
        return head.encode() + self.body

    def __repr__(self):
        return "<Message %s>" % self.start


def split_commas(v):
    out, depth, cur, quote = [], 0, "", False
    for ch in v:
        if ch == '"':
            quote = not quote
        if not quote and ch == "<":
            depth += 1
        if not quote and ch == ">":
            depth -= 1
        if ch == "," and depth == 0 and not quote:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur)
    return out


def parse(data):
    """Parses one complete message (bytes). Raises ValueError."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError("no end of headers")
    lines = head.decode("utf-8", "replace").split("\r\n")
    headers = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:
            headers[-1] = (headers[-1][0], headers[-1][1] + " " + line.strip())
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise ValueError("header without colon: %r" % line)
        headers.append((name.strip(), value.strip()))
    m = Message(lines[0], headers, b"")
    cl = m.header("content-length")
    m.body = body[: int(cl)] if cl is not None else body
    return m


class Framer:
    """Stream framing: complete messages out of a byte stream; CRLF keep-alives."""

    def __init__(self):
        self.buf = b""

    def feed(self, data):
        """Returns a list of items: Message, or the strings "ping" / "pong"."""
        self.buf += data
        out = []
        while self.buf:
            if self.buf.startswith(b"\r\n\r\n"):
                out.append("ping")
                self.buf = self.buf[4:]
                continue
            if self.buf.startswith(b"\r\n"):
                if len(self.buf) < 4 and b"\r\n\r\n".startswith(self.buf):
                    if len(self.buf) == 2:
                        out.append("pong")
                        self.buf = b""
                    break
                out.append("pong")
                self.buf = self.buf[2:]
                continue
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                break
            m = parse(self.buf[: end + 4])
            cl = int(m.header("content-length") or 0)
            if len(self.buf) < end + 4 + cl:
                break
            m.body = self.buf[end + 4: end + 4 + cl]
            self.buf = self.buf[end + 4 + cl:]
            out.append(m)
        return out


class Dialog:
    """What a subscription needs to match and send in-dialog requests."""

    def __init__(self, call_id, local_tag, remote_tag, local_uri, remote_uri, target, routes,
                 cseq):
        self.call_id = call_id
        self.local_tag = local_tag
        self.remote_tag = remote_tag
        self.local_uri = local_uri
        self.remote_uri = remote_uri
        self.target = target
        self.routes = routes
        self.cseq = cseq


class UA:
    """One test user agent bound to a local address, talking to one proxy."""

    T1 = 0.5

    def __init__(self, user, domain, ip, transport="udp", proxy=("127.0.0.65", 5060),
                 ca=None, server_name=None, port=0, message_status=200, answers=None,
                 display=None):
        self.user = user
        self.domain = domain
        self.ip = ip
        self.transport = transport.lower()
        self.proxy = proxy
        self.ca = ca
        self.server_name = server_name
        self.port = port
        self.message_status = message_status
        self.answers = dict(answers or {})
        self.display = display
        self.aor = "sip:%s@%s" % (user, domain)
        self.received = []          # requests received (Message), in order
        self.responses = []         # every response received
        self.pings = 0
        self.pongs = 0
        self._cond = threading.Condition()
        self._pending = {}          # branch -> queue of responses
        self._sock = None
        self._thread = None
        self._closing = False
        self._send_lock = threading.Lock()
        self.local = None           # (ip, port) our Contact names

    # --- lifecycle -----------------------------------------------------------------------

    def start(self):
        if self.transport == "udp":
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((self.ip, self.port))
            self._sock = s
        else:
            raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            raw.bind((self.ip, self.port))
            raw.settimeout(5)
            raw.connect(self.proxy)
            if self.transport == "tls":
                ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca)
                ctx.check_hostname = self.server_name is not None
                if self.server_name is None:
                    ctx.verify_mode = ssl.CERT_REQUIRED
                raw = ctx.wrap_socket(raw, server_hostname=self.server_name)
            raw.settimeout(None)
            self._sock = raw
        self.local = self._sock.getsockname()[:2]
        self._thread = threading.Thread(target=self._reader, daemon=True)
        self._thread.start()
        return self

    def close(self):
        self._closing = True
        try:
            if self.transport != "udp":
                self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        if self._thread:
            self._thread.join(timeout=2)

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.close()

    # --- wire ----------------------------------------------------------------------------

    def send_raw(self, data, dest=None):
        with self._send_lock:
            if self.transport == "udp":
                self._sock.sendto(data, dest or self.proxy)
            else:
                self._sock.sendall(data)

    def ping(self):
        """RFC 5626 double-CRLF keep-alive (streams)."""
        self.send_raw(b"\r\n\r\n")

    def _reader(self):
        framer = Framer()
        while not self._closing:
            try:
                if self.transport == "udp":
                    data, src = self._sock.recvfrom(65535)
                    if not data.strip(b"\r\n"):
                        continue
                    items = [parse(data)]
                    for it in items:
                        it.source = src
                else:
                    data = self._sock.recv(65536)
                    if not data:
                        break
                    items = framer.feed(data)
            except (OSError, ValueError):
                if self._closing:
                    break
                continue
            for it in items:
                if it == "ping":
                    self.pings += 1
                    try:
                        self.send_raw(b"\r\n")
                    except OSError:
                        pass
                elif it == "pong":
                    self.pongs += 1
                elif it.method is None:
                    self._on_response(it)
                else:
                    self._on_request(it)

    def _on_response(self, m):
        with self._cond:
            self.responses.append(m)
            self._cond.notify_all()
        vias = m.header_all("via")
        branch = param(vias[0], "branch") if vias else None
        q = self._pending.get(branch)
        if q:
            q.put(m)

    def _on_request(self, m):
        with self._cond:
            self.received.append(m)
            self._cond.notify_all()
        if m.method == "ACK":
            return
        if m.method == "MESSAGE":
            status = self.message_status
        else:
            status = self.answers.get(m.method, 200)
        try:
            self.respond(m, status)
        except OSError:
            if not self._closing:
                raise

    def respond(self, req, status, reason=None, headers=()):
        hs = [("Via", v) for v in req.header_all("via")]
        to = req.header("to")
        if param(to, "tag") is None and status > 100:
            to += ";tag=" + token(8)
        hs += [("From", req.header("from")), ("To", to), ("Call-ID", req.call_id),
               ("CSeq", req.header("cseq"))]
        hs += list(headers)
        r = Message("SIP/2.0 %d %s" % (status, reason or REASONS.get(status, "Answer")), hs)
        dest = getattr(req, "source", None)
        if self.transport == "udp" and dest is None:
            dest = self.proxy
        self.send_raw(r.to_bytes(), dest)

    # --- requests ------------------------------------------------------------------------

    def contact(self):
        ip, port = self.local
        t = "" if self.transport == "udp" else ";transport=" + self.transport
        return "<sip:%s@%s:%d%s>" % (self.user, ip, port, t)

    def via(self, branch):
        ip, port = self.local
        return "SIP/2.0/%s %s:%d;branch=%s;rport" % (self.transport.upper(), ip, port, branch)

    def request(self, method, ruri, to=None, headers=(), body=b"", content_type=None,
                timeout=10.0, dialog=None, call_id=None, from_tag=None, cseq=1):
        """Sends a request and returns its final response (TimeoutError if none)."""
        branch = "z9hG4bK" + token(16)
        if isinstance(body, str):
            body = body.encode()
        if dialog:
            dialog.cseq += 1
            ruri = dialog.target
            hs = [("Via", self.via(branch)), ("Max-Forwards", "70")]
            hs += [("Route", r) for r in dialog.routes]
            hs += [("From", "<%s>;tag=%s" % (dialog.local_uri, dialog.local_tag)),
                   ("To", "<%s>;tag=%s" % (dialog.remote_uri, dialog.remote_tag)),
                   ("Call-ID", dialog.call_id), ("CSeq", "%d %s" % (dialog.cseq, method))]
        else:
            frm = "<%s>;tag=%s" % (self.aor, from_tag or token(8))
            if self.display:
                frm = '"%s" %s' % (self.display, frm)
            hs = [("Via", self.via(branch)), ("Max-Forwards", "70"), ("From", frm),
                  ("To", "<%s>" % (to or ruri)), ("Call-ID", call_id or token(20)),
                  ("CSeq", "%d %s" % (cseq, method))]
        if method in ("REGISTER", "SUBSCRIBE", "NOTIFY", "INVITE"):
            hs.append(("Contact", self.contact()))
        hs += list(headers)
        if body:
            hs.append(("Content-Type", content_type or "text/plain;charset=UTF-8"))
        m = Message("%s %s SIP/2.0" % (method, ruri), hs, body)
        q = queue.Queue()
        self._pending[branch] = q
        data = m.to_bytes()
        try:
            self.send_raw(data)
            deadline = time.monotonic() + timeout
            interval = self.T1
            next_rtx = time.monotonic() + interval
            while True:
                now = time.monotonic()
                if now >= deadline:
                    raise TimeoutError("%s %s: no final response" % (method, ruri))
                wait = min(deadline, next_rtx) - now if self.transport == "udp" else deadline - now
                try:
                    r = q.get(timeout=max(wait, 0.001))
                except queue.Empty:
                    if self.transport == "udp" and time.monotonic() >= next_rtx:
                        self.send_raw(data)
                        interval = min(interval * 2, 4.0)
                        next_rtx = time.monotonic() + interval
                    continue
                if r.status >= 200:
                    r.request = m
                    return r
        finally:
            self._pending.pop(branch, None)

    def register(self, expires=3600):
        return self.request("REGISTER", "sip:" + self.domain, to=self.aor,
                            headers=[("Expires", str(expires))])

    def message(self, to_uri, text, content_type="text/plain;charset=UTF-8", headers=(),
                timeout=10.0):
        return self.request("MESSAGE", to_uri, headers=headers, body=text,
                            content_type=content_type, timeout=timeout)

    def subscribe(self, to_uri, event="presence", expires=600,
                  accept="application/pidf+xml", dialog=None, timeout=10.0):
        """Returns (final response, Dialog or None)."""
        hs = [("Event", event), ("Expires", str(expires)), ("Accept", accept)]
        r = self.request("SUBSCRIBE", to_uri, headers=hs, dialog=dialog, timeout=timeout)
        if dialog or r.status >= 300:
            return r, dialog
        req = r.request
        routes = list(reversed(r.header_all("record-route")))
        d = Dialog(req.call_id, req.tag("from"), r.tag("to"), self.aor, to_uri,
                   addr_uri(r.header("contact")) or to_uri, routes, req.cseq[0])
        return r, d

    def publish(self, to_uri=None, body="", event="presence", expires=600, etag=None,
                content_type="application/pidf+xml"):
        hs = [("Event", event), ("Expires", str(expires))]
        if etag:
            hs.append(("SIP-If-Match", etag))
        return self.request("PUBLISH", to_uri or self.aor, headers=hs, body=body,
                            content_type=content_type if body else None)

    # --- waiting -------------------------------------------------------------------------

    def wait_request(self, method, timeout=10.0, pred=None, count=1):
        """Waits until count requests of method (matching pred) were received; returns the
        last of them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [m for m in self.received
                       if m.method == method and (pred is None or pred(m))]
                if len(got) >= count:
                    return got[count - 1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no %s (x%d) within %.1fs; got %r" % (
                        method, count, timeout, [m.start for m in self.received]))
                self._cond.wait(left)
