"""The loopback lab of the IM and presence tests: alice@partner.test on a real Prosody,
parley-proxy, parley-gateway, Kamailio as the corp.test front end and presence server, and
bob@corp.test as a registered SIP user agent. DNS for .test comes from a local dnsmasq."""

from harness import Daemon, free_port, make_certs
from kamailio import Kamailio
from linkconf import gateway_conf, policy_conf, proxy_conf, s2s_conf
from peers import Dnsmasq, Prosody, xmpp_srv
from sipua import UA
from xmppclient import XmppClient

EDGE_IP = "127.0.0.10"
PARTNER_IP = "127.0.0.31"
KAM_IP = "127.0.0.61"
GW_SIP = "127.0.0.62"
BOB_IP = "127.0.0.63"
SECRET = "im-lab-dialback-secret-0123456789"


def lab_certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("imcerts")
    make_certs(d, "proxy.link.test", "gateway.link.test", "corp.test", "partner.test",
               "pool.corp.test")
    return str(d)


class Lab:
    def __init__(self, tmp_path, running, daemons, certs, partners=None, gw_extra="",
                 alice_xml=False, federation=None, partner_users=(), kamailio=None):
        self.tmp, self.running = tmp_path, running
        port, link = free_port(EDGE_IP), free_port()
        self.dns = Dnsmasq(tmp_path / "dns",
                           srv=[xmpp_srv("corp.test", "edge.corp.test", port),
                                xmpp_srv("partner.test", "s2s.partner.test", 5269)],
                           hosts=[("edge.corp.test", EDGE_IP), ("s2s.partner.test", PARTNER_IP)])
        running.append(self.dns.start())
        self.px = Daemon("parley-proxy", tmp_path, "proxy",
                         proxy_conf(certs, link) +
                         s2s_conf(certs, "%s:%d" % (EDGE_IP, port),
                                  extra="dialback_secret = %s\nresolver = %s\n"
                                  % (SECRET, self.dns.server.replace("@", ":")))).start()
        daemons.append(self.px)
        sip = ("\n[sip]\nlisten_udp = %s:5060\npool = udp:%s:5060\n%s"
               % (GW_SIP, KAM_IP, gw_extra))
        self.gw = Daemon("parley-gateway", tmp_path, "gateway",
                         gateway_conf(certs, link,
                                      policy=policy_conf(partners=partners, **(federation or {}))
                                      + sip)
                         ).start()
        daemons.append(self.gw)
        self.px.wait_log(r"event=policy_applied")
        self.kam = Kamailio(tmp_path, ip=KAM_IP, port=5060, partners=["partner.test", "void.test", "slow.test"],
                            gateway="sip:%s:5060" % GW_SIP, certs=certs, **(kamailio or {}))
        self.kam.check()
        running.append(self.kam.start())
        self.bob = UA("bob", "corp.test", BOB_IP, proxy=(KAM_IP, 5060))
        self.bob.start()
        running.append(self.bob)
        assert self.bob.register().status == 200
        self.partner = Prosody(tmp_path / "partner", PARTNER_IP, ["partner.test"], certs,
                               dns=self.dns,
                               users=[("alice", "partner.test", "pw-a")] +
                               [(u, "partner.test", "pw-" + u) for u in partner_users],
                               log_level="info")
        running.append(self.partner.start())
        self.alice = XmppClient("alice@partner.test", "pw-a", PARTNER_IP, workdir=tmp_path,
                                xml=alice_xml)
        running.append(self.alice.start())

    def bob_bodies(self):
        return [m.text for m in self.bob.received if m.method == "MESSAGE"]

    def xmpp_user(self, user, password=None, **kw):
        """Another partner.test user (named in partner_users), logged in."""
        c = XmppClient("%s@partner.test" % user, password or "pw-" + user, PARTNER_IP,
                       workdir=self.tmp, name=user, **kw)
        self.running.append(c.start())
        return c

    def sip_user(self, user, ip):
        """Another corp.test user agent, registered through Kamailio."""
        ua = UA(user, "corp.test", ip, proxy=(KAM_IP, 5060))
        ua.start()
        self.running.append(ua)
        assert ua.register().status == 200
        return ua
