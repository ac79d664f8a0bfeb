"""A scriptable XMPP client (slixmpp 1.8) for the system tests.

Run as a program it logs in and then obeys JSON commands, one per line on stdin, and reports
JSON events, one per line on stdout (slixmpp's own logging goes to stderr):

    /usr/bin/python3 xmppclient.py --jid alice@partner.test --password pw \\
        --host 127.0.0.31 [--port 5222] [--tls none|starttls|direct] [--ca CA] [--tls-name N]

Commands ({"cmd": ...}):
    send      to, n, start=0, fmt="msg-%d", type="chat", subject, thread, lang, id_fmt
              sends n messages with body fmt % i (i from start) as fast as slixmpp queues them;
              reports {"ev": "sent", "tag", "n"}
    message   to, body, type, subject, thread, lang, id           one message
    raw       xml                                                 send XML as is
    presence  to, ptype, show, status, priority                   a presence stanza
    subscribe / unsubscribe / subscribed / unsubscribed    to     presence subscriptions
    disco_info / disco_items / ping / version   to, tag, timeout  an iq; reports iq_result
    stop                                                          disconnect and exit

Events ({"ev": ..., "t": monotonic seconds}):
    ready       logged in (session started), with "jid" the full JID bound
    failed      reason: connection failed, TLS failure, auth failure (the program exits 1)
    message     from, to, id, type, body, subject, thread, lang (xml with --xml)
    presence    from, to, type, show, status, priority
    error       kind (message|presence|command), from, id, type, condition, text
    sent        tag, n, first, last
    iq_result   tag, ok, from, type, xml (or condition/text when ok is false)
    disconnected

Used from tests through the XmppClient class below, which runs the program as a child.
"""
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"


# --------------------------------------------------------------------------------------------
# The test-side wrapper


class XmppClient:
    """One slixmpp client in a child process.

    jid, password   the account (register it with Prosody(users=...) first).
    host, port      where to connect (no DNS lookups are made).
    tls             "none" (plaintext c2s, Prosody with c2s_require_encryption = false),
                    "starttls" (required) or "direct" (TLS from the first byte).
    ca              the CA file to trust for TLS (required unless tls == "none").
    tls_name        the name the server's certificate must match (default: the JID's
                    domain); slixmpp would skip the check when connecting to an IP address.
    workdir         where the child's stderr log goes (default: a new temporary directory).
    xml             also report each received message's full XML (as "xml").
    debug           slixmpp debug logging into the stderr log.
    auto_authorize, auto_subscribe   slixmpp's roster behaviour on subscription requests.
    """

    def __init__(self, jid, password, host, port=5222, tls="none", ca=None, tls_name=None,
                 workdir=None, name=None, debug=False, xml=False, auto_authorize=True, auto_subscribe=True):
        self.jid = jid
        self.name = name or jid
        self.argv = [PYTHON, os.path.join(HERE, "xmppclient.py"), "--jid", jid, "--password",
                     password, "--host", host, "--port", str(port), "--tls", tls]
        if ca:
            self.argv += ["--ca", str(ca)]
        if tls_name:
            self.argv += ["--tls-name", tls_name]
        if debug:
            self.argv.append("--debug")
        if xml:
            self.argv.append("--xml")
        if not auto_authorize:
            self.argv.append("--no-auto-authorize")
        if not auto_subscribe:
            self.argv.append("--no-auto-subscribe")
        workdir = str(workdir) if workdir else tempfile.mkdtemp(prefix="xmppclient-")
        os.makedirs(workdir, exist_ok=True)
        self.stderr_path = os.path.join(workdir, "xmppclient-%s.log" % self.name.replace("/", "_"))
        self.proc = None
        self.events_list = []
        self.cond = threading.Condition()
        self.reader = None
        self.tag_seq = 0
        self.bound_jid = None

    # -- process

    def start(self, timeout=15.0):
        """Starts the child and waits until it is logged in; raises if it fails."""
        errf = open(self.stderr_path, "a")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=errf, text=True, bufsize=1, cwd=HERE)
        errf.close()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        ev = self.wait_event(lambda e: e["ev"] in ("ready", "failed", "exited"), timeout,
                             "login of %s" % self.jid)
        if ev["ev"] != "ready":
            raise AssertionError("%s: login failed: %r; stderr tail:\n%s" % (
                self.name, ev, self.stderr_text()[-3000:]))
        self.bound_jid = ev.get("jid")
        return self

    def _read(self):
        for line in self.proc.stdout:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            with self.cond:
                self.events_list.append(ev)
                self.cond.notify_all()
        with self.cond:
            self.events_list.append({"ev": "exited", "t": time.monotonic()})
            self.cond.notify_all()

    def stderr_text(self):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=5.0):
        """Disconnects cleanly (or kills after `timeout`); returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self._send({"cmd": "stop"})
            except OSError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        if self.reader is not None:
            self.reader.join(2)
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        self.proc = None
        return code

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    # -- commands

    def _send(self, obj):
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError("%s: client is not running; stderr tail:\n%s" % (
                self.name, self.stderr_text()[-3000:]))
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()

    def _tag(self):
        self.tag_seq += 1
        return "t%d" % self.tag_seq

    def send_messages(self, to, n, start=0, fmt="msg-%d", type="chat", subject=None,
                      thread=None, lang=None, id_fmt=None, wait=True, timeout=30.0):
        """Sends n messages to `to` with bodies fmt % i for i in start..start+n-1 and, when
        id_fmt is given, ids id_fmt % i. Waits until all are handed to slixmpp's send queue
        (wait=False returns at once); returns the tag of the batch."""
        tag = self._tag()
        self._send({"cmd": "send", "tag": tag, "to": to, "n": n, "start": start, "fmt": fmt,
                    "type": type, "subject": subject, "thread": thread, "lang": lang,
                    "id_fmt": id_fmt})
        if wait:
            self.wait_event(lambda e: e["ev"] == "sent" and e.get("tag") == tag, timeout,
                            "%d messages queued" % n)
        return tag

    def send_message(self, to, body, type="chat", subject=None, thread=None, lang=None,
                     id=None):
        self._send({"cmd": "message", "to": to, "body": body, "type": type,
                    "subject": subject, "thread": thread, "lang": lang, "id": id})

    def send_raw(self, xml):
        self._send({"cmd": "raw", "xml": xml})

    def set_presence(self, show=None, status=None, to=None, ptype=None, priority=None):
        self._send({"cmd": "presence", "to": to, "ptype": ptype, "show": show,
                    "status": status, "priority": priority})

    def subscribe(self, to):
        self._send({"cmd": "subscribe", "to": to})

    def unsubscribe(self, to):
        self._send({"cmd": "unsubscribe", "to": to})

    def subscribed(self, to):
        self._send({"cmd": "subscribed", "to": to})

    def unsubscribed(self, to):
        self._send({"cmd": "unsubscribed", "to": to})

    def iq(self, kind, to, timeout=10.0):
        """kind: "disco_info", "disco_items", "ping" or "version"; returns the iq_result
        event (a dict with ok, from, type, xml or condition/text)."""
        tag = self._tag()
        self._send({"cmd": kind, "to": to, "tag": tag, "timeout": timeout})
        return self.wait_event(lambda e: e["ev"] == "iq_result" and e.get("tag") == tag,
                               timeout + 5, "%s to %s" % (kind, to))

    def disco_info(self, to, timeout=10.0):
        return self.iq("disco_info", to, timeout)

    def ping(self, to, timeout=10.0):
        return self.iq("ping", to, timeout)

    # -- what arrived

    def events(self, kind=None):
        with self.cond:
            return [e for e in self.events_list if kind is None or e["ev"] == kind]

    def wait_event(self, pred, timeout, what="event"):
        deadline = time.monotonic() + timeout
        with self.cond:
            seen = 0
            while True:
                for e in self.events_list[seen:]:
                    if pred(e):
                        return e
                seen = len(self.events_list)
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if self.events_list and self.events_list[-1]["ev"] == "exited":
                    break
                self.cond.wait(min(left, 0.5))
        raise AssertionError("%s: no %s within %.1fs; last events %r; stderr tail:\n%s" % (
            self.name, what, timeout, self.events()[-5:], self.stderr_text()[-3000:]))

    def received(self, timeout=10.0, count=None, sender=None):
        """Messages (not errors) received so far, waiting up to `timeout` until there are at
        least `count` (from `sender`'s bare JID if given). Returns the list (possibly short:
        the caller asserts)."""
        def mine():
            return [e for e in self.events_list if e["ev"] == "message" and
                    (sender is None or e["from"].split("/")[0] == sender)]
        deadline = time.monotonic() + timeout
        with self.cond:
            while count is not None and len(mine()) < count:
                left = deadline - time.monotonic()
                if left <= 0 or (self.events_list and self.events_list[-1]["ev"] == "exited"):
                    break
                self.cond.wait(min(left, 0.5))
            return mine()

    def bodies(self, timeout=10.0, count=None, sender=None):
        return [m["body"] for m in self.received(timeout, count, sender)]

    def errors(self):
        return self.events("error")

    def presence_updates(self):
        return self.events("presence")


# --------------------------------------------------------------------------------------------
# The program (runs in the child)


def _main():
    import argparse
    import asyncio
    import logging
    import ssl

    import slixmpp
    from slixmpp.xmlstream.handler import Callback
    from slixmpp.xmlstream.matcher import MatchXPath

    ap = argparse.ArgumentParser()
    ap.add_argument("--jid", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, default=5222)
    ap.add_argument("--tls", choices=("none", "starttls", "direct"), default="none")
    ap.add_argument("--ca")
    ap.add_argument("--tls-name")
    ap.add_argument("--debug", action="store_true")
    ap.add_argument("--xml", action="store_true")
    ap.add_argument("--no-auto-authorize", action="store_true")
    ap.add_argument("--no-auto-subscribe", action="store_true")
    args = ap.parse_args()

    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    out_lock = threading.Lock()

    def emit(ev, **kw):
        kw["ev"] = ev
        kw["t"] = time.monotonic()
        line = json.dumps(kw)
        with out_lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    class Client(slixmpp.ClientXMPP):
        async def get_dns_records(self, domain, port=None):
            # Never ask the machine's resolver: connect exactly where we were told.
            return [(self.tls_name, args.host, args.port)]

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    xmpp = Client(args.jid, args.password)
    xmpp.tls_name = args.tls_name or xmpp.boundjid.domain
    xmpp.auto_authorize = not args.no_auto_authorize
    xmpp.auto_subscribe = not args.no_auto_subscribe
    for plugin in ("xep_0030", "xep_0199", "xep_0092"):
        xmpp.register_plugin(plugin)
    if args.tls != "none":
        if not args.ca:
            ap.error("--ca is required with TLS")
        xmpp.ssl_context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        xmpp.ssl_context.check_hostname = True
        xmpp.ca_certs = args.ca
    finished = asyncio.Event()
    state = {"ready": False, "failed": False}

    def fail(reason):
        if not state["failed"] and not state["ready"]:
            state["failed"] = True
            emit("failed", reason=str(reason))
            xmpp.disconnect(wait=0)
            finished.set()

    async def on_session_start(_):
        # an interested resource (RFC 6121 2.2): subscription stanzas reach it
        try:
            await xmpp.get_roster(timeout=10)
        except Exception as e:  # noqa: BLE001 - reported, the session goes on
            emit("roster_failed", reason=str(e))
        xmpp.send_presence()
        state["ready"] = True
        emit("ready", jid=str(xmpp.boundjid))

    def err_fields(stanza):
        return dict(condition=stanza["error"]["condition"], text=stanza["error"]["text"],
                    type=stanza["error"]["type"])

    def on_message(msg):
        # Every <message/>, with or without a body (slixmpp's "message" event fires only
        # for those with a body and not for errors).
        if msg["type"] == "error":
            emit("error", kind="message", **{"from": str(msg["from"])},
                 id=msg["id"], **err_fields(msg), xml=str(msg))
            return
        emit("message", **{"from": str(msg["from"])}, to=str(msg["to"]), id=msg["id"],
             type=msg["type"], body=msg["body"] or None, subject=msg["subject"] or None,
             thread=msg["thread"] or None, lang=msg["lang"] or None,
             xml=str(msg) if args.xml else None)

    def on_presence(pres):
        if pres["type"] == "error":
            emit("error", kind="presence", **{"from": str(pres["from"])}, id=pres["id"],
                 **err_fields(pres))
            return
        emit("presence", **{"from": str(pres["from"])}, to=str(pres["to"]), type=pres["type"],
             show=pres["show"] or None, status=pres["status"] or None,
             priority=pres["priority"])

    def on_disconnected(_):
        if not state["ready"]:
            fail("disconnected before login")
        emit("disconnected")
        finished.set()

    xmpp.add_event_handler("session_start", on_session_start)
    xmpp.register_handler(Callback("AnyMessage", MatchXPath("{jabber:client}message"),
                                   on_message))
    xmpp.add_event_handler("presence", on_presence)
    xmpp.add_event_handler("failed_auth", lambda _: fail("auth failed"))
    xmpp.add_event_handler("connection_failed", lambda e: fail("connection failed: %s" % e))
    xmpp.add_event_handler("ssl_invalid_chain", lambda e: fail("TLS: %s" % e))
    xmpp.add_event_handler("disconnected", on_disconnected)

    def apply_fields(msg, c):
        if c.get("subject"):
            msg["subject"] = c["subject"]
        if c.get("thread"):
            msg["thread"] = c["thread"]
        if c.get("lang"):
            msg["lang"] = c["lang"]

    async def do_iq(c):
        kind, to, tag = c["cmd"], c["to"], c.get("tag")
        timeout = c.get("timeout") or 10
        try:
            if kind == "disco_info":
                r = await xmpp["xep_0030"].get_info(jid=to, timeout=timeout)
            elif kind == "disco_items":
                r = await xmpp["xep_0030"].get_items(jid=to, timeout=timeout)
            elif kind == "version":
                r = await xmpp["xep_0092"].get_version(to, timeout=timeout)
            else:
                iq = xmpp.Iq()
                iq["type"] = "get"
                iq["to"] = to
                iq.enable("ping")
                r = await iq.send(timeout=timeout)
            emit("iq_result", tag=tag, ok=True, **{"from": str(r["from"])}, type=r["type"],
                 xml=str(r))
        except slixmpp.exceptions.IqError as e:
            emit("iq_result", tag=tag, ok=False, **{"from": str(e.iq["from"])}, type="error",
                 condition=e.iq["error"]["condition"], text=e.iq["error"]["text"])
        except slixmpp.exceptions.IqTimeout:
            emit("iq_result", tag=tag, ok=False, type="timeout", condition="timeout", text="")

    def handle(c):
        cmd = c.get("cmd")
        if cmd == "send":
            start, n = int(c.get("start") or 0), int(c["n"])
            fmt = c.get("fmt") or "msg-%d"
            for i in range(start, start + n):
                msg = xmpp.make_message(mto=c["to"], mbody=fmt % i, mtype=c.get("type") or "chat")
                if c.get("id_fmt"):
                    msg["id"] = c["id_fmt"] % i
                apply_fields(msg, c)
                msg.send()
            emit("sent", tag=c.get("tag"), n=n, first=start, last=start + n - 1)
        elif cmd == "message":
            msg = xmpp.make_message(mto=c["to"], mbody=c.get("body"),
                                    mtype=c.get("type") or "chat")
            if c.get("id"):
                msg["id"] = c["id"]
            apply_fields(msg, c)
            msg.send()
        elif cmd == "raw":
            xmpp.send_raw(c["xml"])
        elif cmd == "presence":
            kw = {}
            if c.get("to"):
                kw["pto"] = c["to"]
            if c.get("ptype"):
                kw["ptype"] = c["ptype"]
            if c.get("show"):
                kw["pshow"] = c["show"]
            if c.get("status"):
                kw["pstatus"] = c["status"]
            if c.get("priority") is not None:
                kw["ppriority"] = c["priority"]
            xmpp.send_presence(**kw)
        elif cmd in ("subscribe", "unsubscribe", "subscribed", "unsubscribed"):
            xmpp.send_presence(pto=c["to"], ptype=cmd)
        elif cmd in ("disco_info", "disco_items", "ping", "version"):
            asyncio.ensure_future(do_iq(c))
        elif cmd == "stop":
            xmpp.disconnect(wait=2)
            loop.call_later(3, finished.set)
        else:
            emit("error", kind="command", condition="bad-command", text=repr(c))

    def stdin_reader():
        for line in sys.stdin:
            line = line.strip()
            if not line:
                continue
            try:
                c = json.loads(line)
            except ValueError:
                continue
            loop.call_soon_threadsafe(handle, c)
        loop.call_soon_threadsafe(lambda: handle({"cmd": "stop"}))

    threading.Thread(target=stdin_reader, daemon=True).start()

    if args.tls == "direct":
        xmpp.connect(address=(args.host, args.port), use_ssl=True)
    elif args.tls == "starttls":
        xmpp.connect(address=(args.host, args.port), force_starttls=True)
    else:
        xmpp.connect(address=(args.host, args.port), disable_starttls=True,
                     force_starttls=False)
    # connect() sets the TLS name only for a host name; for an IP it would be left empty
    # and the certificate's name never checked.
    xmpp.default_domain = xmpp.tls_name
    loop.run_until_complete(finished.wait())
    return 1 if state["failed"] else 0


if __name__ == "__main__":
    sys.exit(_main())
