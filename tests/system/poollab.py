"""The lab of the presence tests against a scripted presence server (sippool.SipPool)
instead of Kamailio: dnsmasq, parley-proxy, parley-gateway toward the pool, Prosody with
alice@partner.test logged in (the setup of imlab.Lab without Kamailio and bob's user agent).

Every process listens on the addresses given (defaults 127.0.0.150-155, those of
test_presence_pending.py); a test file that runs beside others picks its own range:

    lab = PendingLab(tmp_path, running, daemons, certs, ips=ips_from("127.0.0.17"),
                     gw_extra="[presence]\\nretry = 1\\n", pool_kw={"max_expires": 4})
"""
import time

from harness import Daemon, free_port
from imlab import SECRET
from linkconf import gateway_conf, policy_conf, proxy_conf, s2s_conf
from peers import Dnsmasq, Prosody, xmpp_srv
from sippool import SipPool
from xmppclient import XmppClient

EDGE_IP = "127.0.0.150"     # parley-proxy: S2S and the link
PARTNER_IP = "127.0.0.151"  # Prosody for partner.test
DNS_IP = "127.0.0.152"      # dnsmasq for .test
GW_SIP = "127.0.0.154"      # parley-gateway's SIP listener
POOL_IP = "127.0.0.155"     # the scripted presence server
FEDERATED = {"partner.test": {"type": "federated"}}  # federated partners see status notes
BOB = "bob@corp.test"
QUIET = 1.5                 # how long pending must stay silent at alice

PIDF = """<?xml version='1.0' encoding='UTF-8'?>
<presence xmlns='urn:ietf:params:xml:ns:pidf'
  xmlns:dm='urn:ietf:params:xml:ns:pidf:data-model'
  xmlns:rpid='urn:ietf:params:xml:ns:pidf:rpid' entity='sip:bob@corp.test'>
 <tuple id='t1'><status><basic>{basic}</basic></status>{note}</tuple>
 {person}
</presence>"""


def bob_pidf(basic="open", activity=None, note=None):
    return PIDF.format(
        basic=basic, note="<note xml:lang='en'>%s</note>" % note if note else "",
        person="<dm:person id='p1'><rpid:activities><rpid:%s/></rpid:activities></dm:person>"
        % activity if activity else "")


def ips_from(prefix):
    """The lab's addresses in prefix + 0..5 (e.g. "127.0.0.17" -> 127.0.0.170-175), the
    same layout as the defaults."""
    return {"edge": prefix + "0", "partner": prefix + "1", "dns": prefix + "2",
            "gw_sip": prefix + "4", "pool": prefix + "5"}


def control(tmp_path, name, ip):
    """[control] in the test's directory and range: the defaults (/run/parley/NAME.sock,
    127.0.0.1:9469/9470) are shared with every other lab running at the same time."""
    return "\n[control]\nsocket = %s\nmetrics = %s:%d\n" % (
        tmp_path / (name + ".sock"), ip, free_port(ip))


class PendingLab:
    """dnsmasq, parley-proxy, parley-gateway toward the scripted pool, Prosody with alice
    logged in.

    ips: dict with any of edge, partner, dns, gw_sip, pool (defaults: the module's
    constants); pool_kw: SipPool keyword arguments; gw_extra: config text appended to the
    gateway's (e.g. "[presence]\\nretry = 1\\n"); federation: extra [federation] keys
    (e.g. {"subscription_refresh": "600s"})."""

    def __init__(self, tmp_path, running, daemons, certs, pool_kw=None, ips=None,
                 gw_extra="", federation=None):
        ips = dict({"edge": EDGE_IP, "partner": PARTNER_IP, "dns": DNS_IP, "gw_sip": GW_SIP,
                    "pool": POOL_IP}, **(ips or {}))
        self.ips = ips
        edge, partner, gw_sip = ips["edge"], ips["partner"], ips["gw_sip"]
        self.tmp = tmp_path
        self.pool = SipPool(ips["pool"], 5060, **(pool_kw or {})).start()
        running.append(self.pool)
        s2s_port, link = free_port(edge), free_port(edge)
        self.dns = Dnsmasq(tmp_path / "dns", address=ips["dns"],
                           srv=[xmpp_srv("corp.test", "edge.corp.test", s2s_port),
                                xmpp_srv("partner.test", "s2s.partner.test", 5269)],
                           hosts=[("edge.corp.test", edge),
                                  ("s2s.partner.test", partner)])
        running.append(self.dns.start())
        self.px = Daemon("parley-proxy", tmp_path, "proxy",
                         proxy_conf(certs, link, host=edge) +
                         s2s_conf(certs, "%s:%d" % (edge, s2s_port),
                                  extra="dialback_secret = %s\nresolver = %s\n"
                                  % (SECRET, self.dns.server.replace("@", ":"))) +
                         control(tmp_path, "proxy", edge)).start()
        daemons.append(self.px)
        sip = "\n[sip]\nlisten_udp = %s:5060\npool = udp:%s:5060\n" % (gw_sip, ips["pool"])
        self.gw = Daemon("parley-gateway", tmp_path, "gateway",
                         gateway_conf(certs, link, edge_host=edge,
                                      policy=policy_conf(partners=FEDERATED,
                                                         **(federation or {})) + sip) +
                         control(tmp_path, "gateway", gw_sip) +
                         ("\n" + gw_extra if gw_extra else "")).start()
        daemons.append(self.gw)
        self.px.wait_log(r"event=policy_applied")
        self.partner = Prosody(tmp_path / "partner", partner, ["partner.test"], certs,
                               dns=self.dns, users=[("alice", "partner.test", "pw-a")],
                               log_level="info")
        running.append(self.partner.start())
        self.alice = XmppClient("alice@partner.test", "pw-a", partner, workdir=tmp_path)
        running.append(self.alice.start())

    def from_bob(self, since=0):
        """alice's presence events from bob (any type), since the index given."""
        return [e for e in self.alice.events("presence")[since:]
                if e["from"].split("/")[0] == BOB]

    def subscribe(self):
        """alice subscribes to bob; returns the pool's subscription (already answered)."""
        self.alice.subscribe(BOB)
        sub = self.pool.wait_subscribe(timeout=30)
        req = sub.requests[0]
        assert req.ruri.startswith("sip:bob@corp.test"), req.start
        assert (req.header("event") or "").startswith("presence"), req.headers
        assert int(req.header("expires")) > 0, req.headers
        assert sub.remote_uri == "sip:alice@partner.test", sub.remote_uri
        return sub

    def pending(self, sub):
        """Two pending NOTIFYs (the second with a body, as some servers send a neutral
        document): each answered 200, and alice hears nothing of bob for QUIET seconds."""
        r = self.pool.notify(sub, "pending;expires=600")
        assert r.status == 200, r.start
        r = self.pool.notify(sub, "pending;expires=590",
                             body=bob_pidf(activity="busy", note="not for alice yet"))
        assert r.status == 200, r.start
        end = time.monotonic() + QUIET
        while time.monotonic() < end:
            assert self.from_bob() == [], "pending told alice: %r" % self.from_bob()
            time.sleep(0.05)
        self.gw.wait_log(r"event=presence_subscribe jid=alice@partner.test "
                         r"sip=sip:bob@corp.test")
