"""Federation policy end to end (issue 8 items 1-4, 6, 8; MAPPING.md J1-J4) against the real
parley-proxy and parley-gateway: a scripted partner server (s2sraw) sends over inbound S2S,
the edge's outbound stream reaches a fake partner server (OutPartner, the partner's fixed
proxy) that records every stanza, and SIP user agents stand in for the front-end pool and the
organisation's users. Addresses 127.0.0.40-49.

Where the rules are already tested elsewhere, the tests are referenced, not repeated:
- J1 inbound stream from an unknown domain -> not-authorized:
  test_s2s_in.py::test_refusals_with_exact_stream_errors; a SUBSCRIBE toward a non-partner ->
  403: test_presence.py::test_subscribe_errors. (MESSAGE -> 403 and a stanza from a served
  user toward an unknown domain are checked here.)
- J2 Federated partners see status notes: test_presence.py::test_alice_watches_bob (Prosody,
  Kamailio). Public* never do: test_public_partner_sees_no_notes here (same lab).
- J3 TLS NotSupported + SASL NotSupported + dialback with a real Prosody, both directions:
  test_dialback.py::test_dialback_over_plain_tcp_where_tls_not_supported; dialback refused
  where SASL is required: test_dialback.py::test_dialback_refused_where_rules_require_sasl.
"""
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time

import pytest

import harness
from harness import Daemon, free_port, make_certs, wait_for
from linkconf import gateway_conf, policy_conf, proxy_conf, s2s_conf
from s2soutlab import ScriptedPartner
from s2sraw import S2SClient, header
from sipua import UA

EDGE_IP = "127.0.0.40"
GW_IP = "127.0.0.41"
POOL_IP = "127.0.0.42"
BOB_IP = "127.0.0.43"
OUT_IP = "127.0.0.44"
CAROL_IP = "127.0.0.45"
SECRET = "policy-lab-dialback-secret-0123456789"
PARLEYCTL = os.path.join(harness.BIN, "parleyctl")
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


class OutPartner(ScriptedPartner):
    """The partner's server as the edge's outbound streams reach it (its fixed proxy):
    STARTTLS with the partner's certificate, SASL EXTERNAL accepted; records every stanza it
    receives."""

    def __init__(self, host, certs, domain="partner.test"):
        self.stanzas = []
        self.lock = threading.Lock()
        super().__init__(host, certs, domain)

    def _serve(self, conn):
        try:
            conn, buf = self._negotiate(conn, "")
            rx = re.compile(r"<(message|presence|iq)\b[^>]*?(?:/>|>.*?</\1>)", re.S)
            while True:
                m = rx.search(buf)
                if not m:
                    data = conn.recv(65536)
                    if not data:
                        break
                    buf += data.decode("utf-8", "replace")
                    continue
                buf = buf[m.end():]
                with self.lock:
                    self.stanzas.append(m.group(0))
        except (OSError, EOFError, ssl.SSLError):
            pass
        try:
            conn.close()
        except OSError:
            pass

    def find(self, pattern):
        with self.lock:
            return [s for s in self.stanzas if re.search(pattern, s, re.S)]

    def wait(self, pattern, timeout=15):
        wait_for(lambda: self.find(pattern), timeout, "the partner to receive %r (got %r)"
                 % (pattern, self.stanzas))
        return self.find(pattern)[0]

    def stop(self):
        self.closed = True
        self.sock.close()


def free_udp_port(host):
    """free_port probes TCP; the SIP listeners here are UDP."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def ctl(sock, *args, check=True):
    r = subprocess.run([PARLEYCTL, "-s", sock, "--json"] + list(args), capture_output=True,
                       text=True, timeout=20)
    doc = json.loads(r.stdout) if r.stdout.strip() else {"ok": False, "error": r.stderr}
    if check:
        assert doc["ok"], "parleyctl %s: %s" % (args, doc)
    return doc


class Lab:
    """parley-proxy (S2S on EDGE_IP) + parley-gateway (SIP on GW_IP, pool = a UA on POOL_IP),
    both with control sockets; partner.test's outbound streams go to an OutPartner."""

    def __init__(self, tmp_path, daemons, running, certs, partners=None, gw_policy_extra="",
                 pool_status=200, federation=None):
        self.tmp, self.certs, self.daemons = tmp_path, certs, daemons
        self.sockdir = tempfile.mkdtemp(prefix="ppol")
        running.append(self)  # stop(): removes the socket directory
        self.px_sock = os.path.join(self.sockdir, "px.sock")
        self.gw_sock = os.path.join(self.sockdir, "gw.sock")
        self.out = OutPartner(OUT_IP, certs)
        running.append(self.out)
        self.port, self.tls_port, link = free_port(EDGE_IP), free_port(EDGE_IP), free_port(EDGE_IP)
        self.sip_port = free_udp_port(GW_IP)
        self.px = Daemon("parley-proxy", tmp_path, "proxy",
                         proxy_conf(certs, link, host=EDGE_IP,
                                    extra="\n[control]\nsocket = %s\nmetrics =\n" % self.px_sock)
                         + s2s_conf(certs, "%s:%d" % (EDGE_IP, self.port),
                                    "%s:%d" % (EDGE_IP, self.tls_port),
                                    extra="dialback_secret = %s\n" % SECRET)).start()
        daemons.append(self.px)
        self.px.wait_log(r"event=s2s_listen .*kind=direct-tls")
        self.partners = (partners if partners is not None
                         else {"partner.test": {"type": "federated"}})
        self.federation = dict(federation or {})
        self.gw_policy_extra = gw_policy_extra
        self.link = link
        self.pool = UA("pool", "corp.test", POOL_IP, proxy=(GW_IP, self.sip_port),
                       message_status=pool_status)
        self.pool.start()  # on a port of the kernel's choosing
        running.append(self.pool)
        self.pool_port = self.pool.local[1]
        self.gw = Daemon("parley-gateway", tmp_path, "gateway", self.gw_conf())
        self.gw.start()
        daemons.append(self.gw)
        self.px.wait_log(r"event=policy_applied")
        self.gw.wait_log(r"event=ctl_listen")
        self.px.wait_log(r"event=ctl_listen")
        self.running = running

    def gw_conf(self, partners=None, federation=None, policy_extra=None):
        parts = {}
        for dom, keys in (partners if partners is not None else self.partners).items():
            k = dict(keys)
            if dom == "partner.test":
                k.setdefault("proxy", "%s:%d" % (OUT_IP, self.out.port))
            parts[dom] = k
        fed = dict(self.federation if federation is None else federation)
        extra = self.gw_policy_extra if policy_extra is None else policy_extra
        return gateway_conf(self.certs, self.link, edge_host=EDGE_IP,
                            extra="\n[control]\nsocket = %s\nmetrics =\n" % self.gw_sock,
                            policy=policy_conf(partners=parts, **fed) + extra +
                            "\n[sip]\nlisten_udp = %s:%d\npool = udp:%s:%d\n"
                            % (GW_IP, self.sip_port, POOL_IP, self.pool_port))

    def rewrite(self, **kw):
        with open(self.gw.conf, "w") as f:
            f.write(self.gw_conf(**kw) + "\n[state]\npath = %s\n"
                    % os.path.join(str(self.tmp), "gateway.db"))

    def ua(self, user, ip):
        u = UA(user, "corp.test", ip, proxy=(GW_IP, self.sip_port))
        u.start()
        self.running.append(u)
        return u

    def partner_stream(self, frm="partner.test", cert=None):
        c = S2SClient(EDGE_IP, self.port, "corp.test", frm, certs=self.certs,
                      cert_name=cert or frm)
        c.authenticate()
        return c

    def pool_messages(self, to=None):
        return [m for m in self.pool.received if m.method == "MESSAGE" and
                (to is None or to in m.start)]

    def generation(self, sock=None):
        return ctl(sock or self.gw_sock, "status")["result"]["policy_generation"]

    def stop(self):
        shutil.rmtree(self.sockdir, ignore_errors=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("policycerts")
    make_certs(d, "proxy.link.test", "gateway.link.test", "corp.test", "partner.test",
               "other.test", "third.test", "new.test")
    return str(d)


def stanza_error(stanza):
    m = re.search(r"<error[^>]*>\s*<([a-z-]+) xmlns=['\"]%s" % re.escape(NS_STANZAS), stanza)
    return m and m.group(1)


# ---- J4: per-user access ----

def test_user_without_access_gets_no_xmpp_traffic(tmp_path, daemons, running, certs):
    """J4 both ways: carol (xmpp = deny) gets forbidden / unsubscribed for what partner users
    send her and 403 for MESSAGE and SUBSCRIBE toward them; bob (default allow) passes.
    J1: a MESSAGE toward a domain that is not a partner is 403. The access is reloadable."""
    lab = Lab(tmp_path, daemons, running, certs,
              gw_policy_extra='[access]\ndefault = allow\n[user "Carol@corp.test"]\nxmpp = deny\n')
    c = lab.partner_stream()
    c.message("bob@corp.test", "alice@partner.test/pc", "hello bob", id="m1")
    c.message("carol@corp.test", "alice@partner.test/pc", "hello carol", id="m2")
    c.send("<presence xmlns='jabber:server' type='subscribe' from='alice@partner.test' "
           "to='carol@corp.test' id='s1'/>")
    c.send("<iq xmlns='jabber:server' type='get' from='alice@partner.test/pc' "
           "to='carol@corp.test' id='q1'><query xmlns='http://jabber.org/protocol/disco#info'/>"
           "</iq>")
    wait_for(lambda: lab.pool_messages("bob@corp.test"), 15, "bob's MESSAGE at the pool")
    err = lab.out.wait(r"<message[^>]*id='m2'")
    assert "type='error'" in err and stanza_error(err) == "forbidden", err
    assert "from='carol@corp.test'" in err and "to='alice@partner.test/pc'" in err, err
    pres = lab.out.wait(r"<presence[^>]*type='unsubscribed'")
    assert "from='carol@corp.test'" in pres and "to='alice@partner.test'" in pres, pres
    iq = lab.out.wait(r"<iq[^>]*id='q1'")
    assert stanza_error(iq) == "forbidden", iq
    time.sleep(0.3)
    assert lab.pool_messages("carol@corp.test") == []
    assert not [m for m in lab.pool.received if m.method == "SUBSCRIBE"]
    lab.gw.wait_log(r"event=xlate_refused kind=message from=alice@partner\.test/pc "
                    r"to=carol@corp\.test why=no_xmpp_access")

    carol = lab.ua("carol", CAROL_IP)
    r = carol.message("sip:alice@partner.test", "from carol")
    assert r.status == 403, r.start
    r, _ = carol.subscribe("sip:alice@partner.test")
    assert r.status == 403, r.start
    bob = lab.ua("bob", BOB_IP)
    r = bob.message("sip:alice@partner.test", "from bob")
    assert r.status == 202, r.start
    assert "from bob" in lab.out.wait(r"<message[^>]*from='bob@corp\.test")
    r = bob.message("sip:eve@stranger.test", "to a stranger")  # J1
    assert r.status == 403 and "partner" in r.start.lower(), r.start
    assert not lab.out.find("from carol") and not lab.out.find("to a stranger")

    # parleyctl users: the default, the overrides, one user's effective access
    u = ctl(lab.gw_sock, "users")["result"]
    assert u["default"] == "allow" and u["users"] == [{"jid": "Carol@corp.test", "xmpp": "deny"}]
    assert ctl(lab.gw_sock, "users", "carol@CORP.test/x")["result"] == {
        "jid": "carol@corp.test", "xmpp": "deny", "source": "user", "default": "allow"}
    assert ctl(lab.gw_sock, "users", "bob@corp.test")["result"]["source"] == "default"
    table = subprocess.run([PARLEYCTL, "-s", lab.gw_sock, "users"], capture_output=True,
                           text=True, timeout=10).stdout
    assert re.search(r"JID\s+XMPP", table) and re.search(r"Carol@corp\.test\s+deny", table), table

    # reload: default deny, carol allowed
    lab.rewrite(policy_extra='[access]\ndefault = deny\n[user "carol@corp.test"]\nxmpp = allow\n')
    ctl(lab.gw_sock, "reload")
    assert carol.message("sip:alice@partner.test", "carol again").status == 202
    assert bob.message("sip:alice@partner.test", "bob again").status == 403
    assert ctl(lab.gw_sock, "users", "bob@corp.test")["result"]["xmpp"] == "deny"


# ---- J2: partner types ----

def test_public_unverified_reaches_only_users_who_added_it(tmp_path, daemons, running, certs):
    """J2: a PublicUnverified partner user's message or subscribe to someone who has not
    added them is forbidden; once bob subscribes (SIP) and the partner user approves, the
    subscription is active (parleyctl subscriptions) and their messages reach bob."""
    lab = Lab(tmp_path, daemons, running, certs,
              partners={"partner.test": {"type": "public-unverified"}})
    c = lab.partner_stream()
    c.message("bob@corp.test", "alice@partner.test/pc", "before", id="b1")
    c.send("<presence xmlns='jabber:server' type='subscribe' from='alice@partner.test' "
           "to='dave@corp.test' id='s2'/>")
    err = lab.out.wait(r"<message[^>]*id='b1'")
    assert stanza_error(err) == "forbidden", err
    err = lab.out.wait(r"<presence[^>]*id='s2'")
    assert "type='error'" in err and stanza_error(err) == "forbidden", err
    assert lab.pool_messages() == []
    assert ctl(lab.gw_sock, "subscriptions")["result"] == []

    # bob adds alice: SUBSCRIBE -> subscribe to the partner; alice approves
    bob = lab.ua("bob", BOB_IP)
    r, _ = bob.subscribe("sip:alice@partner.test", expires=600)
    assert r.status == 200, r.start
    lab.out.wait(r"<presence[^>]*type='subscribe'[^>]*to='alice@partner\.test'"
                 r"|<presence[^>]*to='alice@partner\.test'[^>]*type='subscribe'")
    subs = ctl(lab.gw_sock, "subscriptions")["result"]
    assert [(s["dir"], s["jid"], s["state"]) for s in subs] == [
        ("sip->xmpp", "alice@partner.test", "pending")], subs
    c.send("<presence xmlns='jabber:server' type='subscribed' from='alice@partner.test' "
           "to='bob@corp.test'/>")
    wait_for(lambda: ctl(lab.gw_sock, "subscriptions")["result"][0]["state"] == "active", 10,
             "the subscription to become active")
    s = ctl(lab.gw_sock, "subscriptions")["result"][0]
    assert s["sip"] == "sip:bob@corp.test" and s["expires_in_s"] > 0, s
    c.message("bob@corp.test", "alice@partner.test/pc", "after", id="b2")
    wait_for(lambda: lab.pool_messages("bob@corp.test"), 15, "alice's MESSAGE at the pool")
    assert lab.pool_messages()[0].text == "after"
    assert not lab.out.find(r"<message[^>]*id='b2'")
    table = subprocess.run([PARLEYCTL, "-s", lab.gw_sock, "subscriptions"], capture_output=True,
                           text=True, timeout=10).stdout
    assert re.search(r"DIR\s+JID\s+SIP\s+STATE", table), table


# ---- J3: negotiation matrix ----

def features_before_and_after_tls(lab, frm, certs, tls=True):
    c = S2SClient(EDGE_IP, lab.port, "corp.test", frm, certs=certs, cert_name=frm)
    pre = c.open()
    post = None
    if tls:
        c.starttls()
        post = c.open()
    return c, pre, post


def test_negotiation_matrix(tmp_path, daemons, running, certs):
    """J3 with one edge and three partners, the rules pushed from the gateway's config:
    TLS Required + SASL Required + no dialback -> SASL over TLS only; TLS Required + SASL
    Optional + dialback -> SASL, then dialback, over TLS; TLS NotSupported + SASL NotSupported
    + dialback -> dialback over TCP only."""
    lab = Lab(tmp_path, daemons, running, certs, partners={
        "partner.test": {"tls": "required", "sasl": "required", "dialback": "false"},
        "other.test": {"tls": "required", "sasl": "optional", "dialback": "true"},
        "third.test": {"tls": "not-supported", "sasl": "not-supported", "dialback": "true"},
    })
    db = "urn:xmpp:features:dialback"
    # row 1: STARTTLS required, then EXTERNAL alone; nothing before TLS, no dialback after
    c, pre, post = features_before_and_after_tls(lab, "partner.test", certs)
    assert "<required/>" in pre and "EXTERNAL" not in pre and db not in pre, pre
    assert "EXTERNAL" in post and db not in post, post
    assert c.external() == "success"
    c.close()
    c = S2SClient(EDGE_IP, lab.port, "corp.test", "partner.test", certs=certs)
    c.open()
    c.message("bob@corp.test", "alice@partner.test", "plaintext")  # before STARTTLS
    assert c.stream_error() == "policy-violation"
    # row 2: STARTTLS required; after it both EXTERNAL and dialback are offered
    c, pre, post = features_before_and_after_tls(lab, "other.test", certs)
    assert "<required/>" in pre and db not in pre and "EXTERNAL" not in pre, pre
    assert "EXTERNAL" in post and db in post, post
    assert c.external() == "success"
    c.close()
    # row 3: no STARTTLS offered, dialback offered on plain TCP; STARTTLS is refused
    c, pre, _ = features_before_and_after_tls(lab, "third.test", certs, tls=False)
    assert "starttls" not in pre and "EXTERNAL" not in pre and db in pre, pre
    c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    c.read_until(r"<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>|<stream:error>")
    c.close()
    # the edge shows what it enforces, with the gateway's generation
    px = ctl(lab.px_sock, "partners")["result"]
    assert px["generation"] == lab.generation()
    rows = {p["domain"]: (p["tls"], p["sasl"], p["dialback"]) for p in px["partners"]}
    assert rows == {"partner.test": ("required", "required", False),
                    "other.test": ("required", "optional", True),
                    "third.test": ("not-supported", "not-supported", True)}


def test_sasl_without_tls_is_refused_naming_file_and_line(tmp_path):
    """J3: SASL needs TLS. A config with tls = not-supported and sasl required (the default)
    is refused at start and by --check-config, naming file:line."""
    conf = tmp_path / "gateway.conf"
    conf.write_text("[link]\nedge = 127.0.0.1:1\ncert = /x\nkey = /x\nca = /x\npeer_name = p\n"
                    "[federation]\ndomain = corp.test\n"
                    "[partner \"partner.test\"]\ntype = federated\ntls = not-supported\n")
    for argv in (["--check-config"], []):
        r = subprocess.run([os.path.join(harness.BIN, "parley-gateway"), "-c", str(conf)] + argv,
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        assert ("%s:9: [partner \"partner.test\"] sasl: sasl = required needs TLS, but tls = "
                "not-supported" % conf) in r.stderr, r.stderr


# ---- parleyctl partners ----

def test_parleyctl_partners_persisted_and_pushed(tmp_path, daemons, running, certs):
    """partners list/show/add/set/remove on the gateway: validated with the config's rules,
    pushed to the edge with a higher generation (the edge's partners verb shows it and a new
    partner's stream authenticates), kept in the store across a restart; config entries are
    read-only from parleyctl."""
    lab = Lab(tmp_path, daemons, running, certs,
              partners={"partner.test": {"type": "federated"}})
    g0 = lab.generation()
    lst = ctl(lab.gw_sock, "partners")["result"]
    assert lst["generation"] == g0
    assert [(p["domain"], p["source"], p["type"]) for p in lst["partners"]] == [
        ("partner.test", "config", "federated")]
    # not yet a partner: refused by the edge
    c = S2SClient(EDGE_IP, lab.port, "corp.test", "new.test", certs=certs, cert_name="new.test")
    c.send(header("corp.test", "new.test"))
    assert c.stream_error() == "not-authorized"

    r = ctl(lab.gw_sock, "partners", "add", "New.Test", "type=public-verified",
            "description=added by ops", "additional_domain=chat.new.test")["result"]
    assert r["added"] == "new.test" and r["generation"] > g0
    g1 = r["generation"]
    wait_for(lambda: ctl(lab.px_sock, "partners")["result"]["generation"] == g1, 10,
             "the edge to hold the new generation")
    px = {p["domain"]: p for p in ctl(lab.px_sock, "partners")["result"]["partners"]}
    assert px["new.test"]["type"] == "public-verified"
    assert px["new.test"]["additional_domains"] == ["chat.new.test"]
    c = lab.partner_stream("new.test")  # authenticates now
    c.close()
    show = ctl(lab.gw_sock, "partners", "show", "new.test")["result"]
    assert show["source"] == "parleyctl" and show["description"] == "added by ops"
    assert show["tls"] == "required" and show["dialback"] is True  # the documented defaults

    # refusals, each naming what is wrong; nothing changes
    bad = ctl(lab.gw_sock, "partners", "set", "new.test", "tls=not-supported", check=False)
    assert not bad["ok"] and "sasl" in bad["error"] and "needs TLS" in bad["error"], bad
    bad = ctl(lab.gw_sock, "partners", "set", "new.test", "colour=blue", check=False)
    assert not bad["ok"] and "colour" in bad["error"], bad
    bad = ctl(lab.gw_sock, "partners", "set", "new.test", "connection_limit=lots", check=False)
    assert not bad["ok"] and "connection_limit" in bad["error"], bad
    bad = ctl(lab.gw_sock, "partners", "add", "partner.test", check=False)
    assert not bad["ok"] and "config file" in bad["error"] and "read-only" in bad["error"], bad
    bad = ctl(lab.gw_sock, "partners", "remove", "partner.test", check=False)
    assert not bad["ok"] and "read-only" in bad["error"], bad
    bad = ctl(lab.gw_sock, "partners", "add", "new.test", check=False)
    assert not bad["ok"] and "partners set" in bad["error"], bad
    bad = ctl(lab.gw_sock, "partners", "add", "chat.partner.test", "additional_domain=corp.test",
              check=False)
    assert not bad["ok"] and "served domain" in bad["error"], bad
    bad = ctl(lab.gw_sock, "partners", "add", "not a domain", check=False)
    assert not bad["ok"] and "not a valid domain" in bad["error"], bad
    assert lab.generation() == g1

    r = ctl(lab.gw_sock, "partners", "set", "new.test", "tls=not-supported",
            "sasl=not-supported")["result"]
    assert r["updated"] == "new.test" and r["generation"] > g1
    show = ctl(lab.gw_sock, "partners", "show", "new.test")["result"]
    assert (show["tls"], show["sasl"], show["type"]) == ("not-supported", "not-supported",
                                                         "public-verified")
    # tables for people
    out = subprocess.run([PARLEYCTL, "-s", lab.gw_sock, "partners", "list"],
                         capture_output=True, text=True, timeout=10).stdout
    assert re.search(r"DOMAIN\s+SOURCE\s+TYPE", out) and "new.test" in out, out

    # kept across a restart of the gateway
    lab.gw.stop()
    lab.gw.start()
    lab.gw.wait_log(r"event=partners_loaded stored=1 in_force=1")
    lab.gw.wait_log(r"event=ctl_listen", count=2)
    show = ctl(lab.gw_sock, "partners", "show", "new.test")["result"]
    assert show["tls"] == "not-supported" and show["description"] == "added by ops"
    wait_for(lambda: "new.test" in [p["domain"] for p in
                                    ctl(lab.px_sock, "partners")["result"]["partners"]],
             10, "the edge to hold new.test again")

    r = ctl(lab.gw_sock, "partners", "remove", "new.test")["result"]
    assert r["removed"] == "new.test"
    g3 = r["generation"]
    wait_for(lambda: ctl(lab.px_sock, "partners")["result"]["generation"] == g3, 10,
             "the edge to drop new.test")
    assert [p["domain"] for p in ctl(lab.px_sock, "partners")["result"]["partners"]] == [
        "partner.test"]
    c = S2SClient(EDGE_IP, lab.port, "corp.test", "new.test", certs=certs, cert_name="new.test")
    c.send(header("corp.test", "new.test"))
    assert c.stream_error() == "not-authorized"
    bad = ctl(lab.gw_sock, "partners", "show", "new.test", check=False)
    assert not bad["ok"] and "no partner" in bad["error"]


# ---- reload ----

def test_reload_changes_policy_for_new_streams_only(tmp_path, daemons, running, certs):
    """Item 6: a reload that changes partner.test's rules (SASL required -> not supported,
    TLS required -> optional) applies to new streams while the authenticated stream stays
    and keeps carrying stanzas; an invalid config is refused with file:line and the old
    policy stays in force (same generation on both daemons)."""
    lab = Lab(tmp_path, daemons, running, certs,
              partners={"partner.test": {"type": "federated"}})
    old = lab.partner_stream()
    g0 = lab.generation()
    lab.rewrite(partners={"partner.test": {"type": "federated", "tls": "optional",
                                           "sasl": "not-supported"}})
    r = ctl(lab.gw_sock, "reload")["result"]
    assert r["policy_generation"] > g0
    g1 = r["policy_generation"]
    wait_for(lambda: ctl(lab.px_sock, "status")["result"]["policy_generation"] == g1, 10,
             "the edge to take the new policy")
    # a new stream negotiates per the new rules
    c = S2SClient(EDGE_IP, lab.port, "corp.test", "partner.test", certs=certs,
                  cert_name="partner.test")
    pre = c.open()
    assert "<starttls" in pre and "<required/>" not in pre, pre
    assert "urn:xmpp:features:dialback" in pre and "EXTERNAL" not in pre, pre
    c.close()
    # the old stream was not dropped and still delivers
    old.message("bob@corp.test", "alice@partner.test/pc", "still here")
    wait_for(lambda: lab.pool_messages("bob@corp.test"), 15, "the old stream's message")
    assert not old.closed
    sess = ctl(lab.px_sock, "sessions")["result"]
    assert any(s["peer"] == "partner.test" and s["auth"] == "sasl-external" for s in sess), sess

    # an invalid config: refused by parleyctl reload and by SIGHUP, naming file:line
    lab.rewrite(partners={"partner.test": {"type": "federated", "tls": "not-supported"}})
    bad = ctl(lab.gw_sock, "reload", check=False)
    assert not bad["ok"], bad
    assert re.search(r"gateway\.conf:\d+: \[partner \"partner\.test\"\] sasl: sasl = required "
                     r"needs TLS", bad["error"]), bad
    lab.gw.proc.send_signal(signal.SIGHUP)
    lab.gw.wait_log(r"event=reload_refused .*gateway\.conf:\d+: \[partner", count=2)
    assert lab.generation() == g1
    assert ctl(lab.px_sock, "status")["result"]["policy_generation"] == g1
    assert lab.gw.alive() and lab.px.alive()
    # a config parse error too
    with open(lab.gw.conf, "a") as f:
        f.write("\n[federation]\nbogus_key = 1\n")
    bad = ctl(lab.gw_sock, "reload", check=False)
    assert not bad["ok"] and re.search(r"gateway\.conf:\d+: ", bad["error"]), bad
    assert lab.generation() == g1


# ---- item 8: message bodies in logs ----

def test_message_bodies_logged_only_when_enabled(tmp_path, daemons, running, certs):
    """Bodies never reach the logs by default; with [federation] log_message_bodies = true
    (reloaded) the failure line of a message carries its body."""
    lab = Lab(tmp_path, daemons, running, certs, pool_status=480)
    c = lab.partner_stream()
    c.message("bob@corp.test", "alice@partner.test/pc", "secret-body-1234", id="x1")
    lab.out.wait(r"<message[^>]*id='x1'")
    lab.gw.wait_log(r"event=xlate_sip_failure from=alice@partner\.test/pc to=bob@corp\.test "
                    r"status=480 cond=recipient-unavailable\n")
    bob = lab.ua("bob", BOB_IP)
    bob.message("sip:alice@partner.test", "secret-sip-body-5678")
    lab.out.wait("secret-sip-body-5678")
    assert "secret-body-1234" not in lab.gw.text() + lab.px.text()
    assert "secret-sip-body-5678" not in lab.gw.text() + lab.px.text()

    lab.rewrite(federation={"log_message_bodies": "true"})
    ctl(lab.gw_sock, "reload")
    c.message("bob@corp.test", "alice@partner.test/pc", "visible \"body\" 42", id="x2")
    lab.out.wait(r"<message[^>]*id='x2'")
    lab.gw.wait_log(r"event=xlate_sip_failure .*status=480 .*body=\"visible \\x22body\\x22 42\"")
    assert "secret-body-1234" not in lab.gw.text() + lab.px.text()


# ---- J2 notes with Prosody and Kamailio ----

def test_public_partner_sees_no_notes(tmp_path, running, daemons):
    """J2: PublicVerified partners never see status notes (the Federated case, where they do,
    is test_presence.py::test_alice_watches_bob). Uses imlab's fixed addresses: run it only
    while no other IM or presence test runs."""
    from imlab import Lab as ImLab
    from test_presence import bob_pidf, from_bob, wait_presence
    d = tmp_path / "imcerts"
    d.mkdir()
    make_certs(d, "proxy.link.test", "gateway.link.test", "corp.test", "partner.test",
               "pool.corp.test")
    lab = ImLab(tmp_path, running, daemons, str(d),
                partners={"partner.test": {"type": "public-verified"}})
    assert lab.bob.publish(body=bob_pidf(note="at my desk")).status == 200
    lab.alice.subscribe("bob@corp.test")
    wait_for(lambda: any(from_bob(e) and e.get("type") == "subscribed"
                         for e in lab.alice.events("presence")), 30, "subscribed at alice")
    e = wait_presence(lab.alice, lambda e: e.get("type") in (None, "", "available"),
                      "bob's first presence at alice")
    assert not e.get("status"), e
    n = len(lab.alice.events("presence"))
    assert lab.bob.publish(body=bob_pidf(note="back soon", activity="away")).status == 200
    e = wait_presence(lab.alice, lambda e: e.get("show") == "away" or e.get("type") == "away",
                      "bob away at alice", since=n)
    assert not e.get("status"), e
    assert "at my desk" not in str(lab.alice.events("presence"))
