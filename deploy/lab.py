#!/usr/bin/env python3
"""make lab: Parley deployed as it is in production, in four network namespaces behind the
nftables rulesets of deploy/nftables, and what that deployment proves.

    internet ns                     dmz ns                         internal ns (gateway host)
    172.16.0.31 Prosody partner.test   eth0 172.16.0.10 parley-proxy  eth0 10.0.2.7 parley-gateway
      + alice (slixmpp)                  (5269, 5270)                      10.0.2.22 an internal
    172.16.0.32 Prosody odd.test       eth1 10.0.1.5  link 23456        server (22, 80, ...)
      (S2S on 15269) + carol           edge.nft applied, no forwarding eth1 (no address) -> the
    172.16.0.53 dnsmasq (public DNS)                                    front end, /32 routes
    permissive                                                        internal.nft applied, no
                                                                      forwarding
                                                                    frontend ns (the pool host)
                                                                      eth0 10.0.2.10 Kamailio
                                                                           10.0.2.20 bob (SIP UA)
                                                                      decoys (22, 80, ...); an
                                                                      accept-all observer table

Joined by veth pairs created inside the namespaces (nothing is ever added to the root
namespace, its firewall or its addresses). The front end sits on the internal subnet behind
the gateway host's second interface: SIP between the gateway and the pool crosses
internal.nft in both directions, as it does between two real hosts. The edge's and the
gateway's rulesets are the shipped files loaded after the shipped sample variables
(deploy/nftables/*-vars.nft): the lab uses the documented addresses, and redefines only what
it must (the edge's DNS server). The partner-facing DNS records are read from
deploy/dns/partner-facing.zone.

Processes the lab starts itself (port scanner, decoy listeners, nft, sysctl) run under
`ip netns exec NS`. The test helpers it reuses (tests/system: Prosody, Dnsmasq, Kamailio,
XmppClient, sipua.UA, harness.Daemon) are started inside Netns.entered(), which moves the
calling thread into the namespace with setns(2) -- the call `ip netns exec` makes -- so their
children and sockets live there. Everything is stopped by PID and the namespaces deleted.

As a library (tests/system/test_lab.py):

    lab = Lab(workdir).start()          # raises on failure; lab.stop() always
    lab.prove_im_both_ways()            # each prove_* asserts and returns report lines
    ...
    lab.stop()                          # returns sanitizer findings of the daemons

As a script (make lab): starts the lab, runs every proof and prints what it proved.
"""
import contextlib
import ctypes
import json
import os
import re
import resource
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "system"))

import harness  # noqa: E402
from harness import Daemon  # noqa: E402
from kamailio import Kamailio  # noqa: E402
from peers import Dnsmasq, Prosody  # noqa: E402
from sipua import UA  # noqa: E402
from xmppclient import XmppClient  # noqa: E402

PYTHON = "/usr/bin/python3"
IP = "/usr/sbin/ip"
NFT = "/usr/sbin/nft"

# Addresses: the internet side is private 172.16.0.0/24; the DMZ's internal interface and the
# internal network use the addresses of the documentation (README, deploy/conf, the vars).
INET_NET = "172.16.0.0/24"
EDGE_EXT = "172.16.0.10"
PARTNER_IP = "172.16.0.31"
ODD_IP = "172.16.0.32"
DNS_IP = "172.16.0.53"
EDGE_INT = "10.0.1.5"
GW_IP = "10.0.2.7"
POOL_IP = "10.0.2.10"
BOB_IP = "10.0.2.20"
SERVER_IP = "10.0.2.22"
GW_HOST_ADDRS = [GW_IP, SERVER_IP]       # the internal namespace: internal.nft
FRONTEND_ADDRS = [POOL_IP, BOB_IP]       # the frontend namespace: the pool host
INTERNAL_ADDRS = GW_HOST_ADDRS + FRONTEND_ADDRS  # the internal network, as the edge sees it
SIP_PORTS = (5060, 5061)
DMZ_ADDRS = [EDGE_EXT, EDGE_INT]
INET_ADDRS = [PARTNER_IP, ODD_IP, DNS_IP]

# IPv6 (ULA) beside every IPv4 address the rules are about: the rulesets allow IPv6 only
# where a rule names no address family (inbound S2S, outbound S2S); everything else over
# IPv6 must be dropped. The pool host's link to the gateway host gets its own /64.
INET_NET6 = "fd00:172:16::/64"
EDGE_EXT6 = "fd00:172:16::10"
PARTNER_IP6 = "fd00:172:16::31"
EDGE_INT6 = "fd00:10:1::5"
GW_IP6 = "fd00:10:2::7"
GW_FE6 = "fd00:10:3::7"  # the gateway host's address toward the pool host
POOL_IP6 = "fd00:10:3::10"

S2S_PORTS = (5269, 5270)
LINK_PORT = 23456
ODD_PORT = 15269
# What is probed beyond 1..1024: every port the documentation names, and the odd partner's.
METRICS_PORT = {"proxy": 9469, "gateway": 9470}  # the daemons' defaults, on 127.0.0.1
EXTRA_PORTS = [3389, 5060, 5061, 5222, 5269, 5270, 8080, 9469, 9470, ODD_PORT, LINK_PORT]
SCAN_PORTS = list(range(1, 1025)) + EXTRA_PORTS
# The edge tries these on every internal address (the list and a few more).
INSIDE_PORTS = [22, 80, 443, 5060, 5061, 5222, 5269, 8080, LINK_PORT]
# Something listens on these in the internal network and in the DMZ besides Parley, so that
# a port that does not answer across the firewall does answer from inside its own namespace.
INTERNAL_DECOYS = [22, 80, 443, 3389, 8080, LINK_PORT]
DMZ_DECOYS = [22, 80]
FRONTEND_DECOYS = [22, 80, 443, 5222, 8080]
# Undocumented ports tried between the pool host and the gateway host, both ways: SSH and
# web, the metrics port, client XMPP, the link port (the edge's, not the gateway's).
UNDOCUMENTED_PORTS = [22, 80, 443, 5222, 8080, METRICS_PORT["gateway"], LINK_PORT]

# The front end has no firewall of its own; this accept-everything table only counts what
# reaches it, to show what did not come through.
FRONTEND_OBSERVER = """table inet lab_observer
delete table inet lab_observer
table inet lab_observer {
	counter from_gateway_sip { }
	counter from_gateway_other { }
	counter from_elsewhere { }
	chain input {
		type filter hook input priority filter; policy accept;
		iif lo accept
		ip saddr %(gw)s udp dport { 5060, 5061 } counter name from_gateway_sip accept
		ip saddr %(gw)s tcp dport { 5060, 5061 } counter name from_gateway_sip accept
		ip saddr %(gw)s ct state new counter name from_gateway_other accept
		ip saddr != 10.0.2.0/24 counter name from_elsewhere accept
	}
}
""" % {"gw": GW_IP}

SECRET = "lab-dialback-secret-0123456789abcdef"
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


# --------------------------------------------------------------------------------------------
# Network namespaces


class Netns:
    """One named network namespace (/run/netns/NAME)."""

    def __init__(self, name):
        self.name = name
        self.created = False

    def create(self):
        subprocess.run([IP, "netns", "add", self.name], check=True)
        self.created = True
        self.ip("link", "set", "lo", "up")
        return self

    def delete(self):
        if self.created:
            subprocess.run([IP, "netns", "del", self.name], check=False)
            self.created = False

    def ip(self, *args):
        """`ip -n NAME ARGS`: configures the namespace from outside."""
        r = subprocess.run([IP, "-n", self.name, *args], capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError("ip -n %s %s: %s" % (self.name, " ".join(args), r.stderr.strip()))
        return r.stdout

    def argv(self, argv):
        return [IP, "netns", "exec", self.name, *argv]

    def run(self, *argv, check=True, timeout=60, input=None):
        """Runs a command inside (ip netns exec); returns the CompletedProcess."""
        r = subprocess.run(self.argv(argv), capture_output=True, text=True, timeout=timeout,
                           input=input)
        if check and r.returncode:
            raise RuntimeError("[%s] %s failed (%d): %s%s" % (
                self.name, " ".join(argv), r.returncode, r.stdout, r.stderr))
        return r

    def popen(self, argv, **kw):
        """Starts a process inside (ip netns exec execs it: the PID is the command's)."""
        return subprocess.Popen(self.argv(argv), **kw)

    @contextlib.contextmanager
    def entered(self):
        """Moves the calling thread into the namespace for the duration: sockets it creates
        and processes it starts belong to the namespace (threads it starts inherit it).
        Use it from the main thread: /proc/net, which some helpers read, follows the main
        thread."""
        back = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        fd = os.open("/run/netns/" + self.name, os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                e = ctypes.get_errno()
                raise OSError(e, "setns(%s): %s" % (self.name, os.strerror(e)))
            try:
                yield self
            finally:
                if _libc.setns(back, CLONE_NEWNET) != 0:
                    e = ctypes.get_errno()
                    # Staying in a lab namespace would poison everything after: give up.
                    os.write(2, b"lab: cannot return to the original network namespace\n")
                    os._exit(70)
        finally:
            os.close(fd)
            os.close(back)

    # -- nftables

    def nft_load(self, path):
        self.run(NFT, "-f", path)

    def counters(self, table):
        """{counter name: packets} of the named counters of `table` (family inet)."""
        r = self.run(NFT, "-j", "list", "counters", "table", "inet", table)
        out = {}
        for item in json.loads(r.stdout)["nftables"]:
            c = item.get("counter")
            if c:
                out[c["name"]] = c["packets"]
        return out

    def sysctl(self, key, value=None):
        path = "/proc/sys/" + key.replace(".", "/")
        if value is not None:
            self.run("/bin/sh", "-c", "echo %s > %s" % (value, path))
        return self.run("/bin/cat", path).stdout.strip()

    def scan(self, targets, ports, timeout=1.0):
        """A bounded parallel TCP connect scan from inside: {"open": [(ip, port)...],
        "refused": n, "filtered": n (no answer: dropped), "unreachable": n, "elapsed": s}."""
        spec = json.dumps({"targets": list(targets), "ports": list(ports), "timeout": timeout})
        r = self.run(PYTHON, os.path.abspath(__file__), "scan", spec, timeout=120)
        res = json.loads(r.stdout)
        res["open"] = sorted(tuple(x) for x in res["open"])
        return res


# --------------------------------------------------------------------------------------------
# Helpers run inside the namespaces (lab.py scan / lab.py listen)


def _scan_main(spec):
    """Non-blocking connects in batches; a port is open when the handshake completes,
    refused on RST, unreachable on an ICMP error, filtered when nothing comes back."""
    spec = json.loads(spec)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 8192)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    batch = max(64, min(want - 64, 4000))
    probes = [(t, p) for t in spec["targets"] for p in spec["ports"]]
    res = {"open": [], "refused": 0, "filtered": 0, "unreachable": 0}
    t0 = time.monotonic()
    for i in range(0, len(probes), batch):
        sel = selectors.DefaultSelector()
        pending = {}
        for target, port in probes[i:i + batch]:
            s = socket.socket(socket.AF_INET6 if ":" in target else socket.AF_INET,
                              socket.SOCK_STREAM)
            s.setblocking(False)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            err = s.connect_ex((target, port))
            if err in (0, 115):  # 0 or EINPROGRESS
                sel.register(s, selectors.EVENT_WRITE, (target, port))
                pending[s] = (target, port)
            elif err in (1, 13):  # EPERM, EACCES: our own firewall dropped the SYN
                res["filtered"] += 1
                s.close()
            else:
                res["unreachable" if err in (101, 113) else "refused"] += 1
                s.close()
        deadline = time.monotonic() + spec["timeout"]
        while pending and time.monotonic() < deadline:
            for key, _ in sel.select(max(0.0, deadline - time.monotonic())):
                s = key.fileobj
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err == 0:
                    res["open"].append(list(key.data))
                elif err in (101, 113):  # ENETUNREACH, EHOSTUNREACH
                    res["unreachable"] += 1
                else:
                    res["refused"] += 1
                sel.unregister(s)
                s.close()
                del pending[s]
        res["filtered"] += len(pending)
        for s in pending:
            s.close()
        sel.close()
    res["elapsed"] = round(time.monotonic() - t0, 2)
    print(json.dumps(res))
    return 0


def _listen_main(ports):
    """Decoy services: accept on [::]:PORT (IPv4 and IPv6) for each port and close at once."""
    socks = []
    sel = selectors.DefaultSelector()
    for p in ports:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", int(p)))
        s.listen(512)
        sel.register(s, selectors.EVENT_READ)
        socks.append(s)
    print("ready", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        for key, _ in sel.select():
            try:
                c, _ = key.fileobj.accept()
                c.close()
            except OSError:
                pass


# --------------------------------------------------------------------------------------------
# Configuration text


def zone_records(path, origin_from, origin_to, addr_map):
    """The SRV and A records of a zone snippet (the subset of RFC 1035 syntax the snippets
    use: $ORIGIN, $TTL, relative or absolute owners, optional TTL and class), renamed from
    origin_from to origin_to and with addresses mapped through addr_map (records whose address
    is not in it are left out). Returns (srv, hosts) as Dnsmasq(srv=, hosts=) take them."""
    origin = ""
    srv, hosts = [], []

    def absname(n):
        n = origin.rstrip(".") if n == "@" else (n.rstrip(".") if n.endswith(".")
                                                  else n + "." + origin.rstrip("."))
        if n == origin_from or n.endswith("." + origin_from):
            n = n[: len(n) - len(origin_from)] + origin_to
        return n

    with open(path) as f:
        for raw in f:
            line = raw.split(";", 1)[0].strip()
            if not line:
                continue
            words = line.split()
            if words[0] == "$ORIGIN":
                origin = words[1]
                continue
            if words[0].startswith("$"):
                continue
            owner, rest = words[0], words[1:]
            while rest and (rest[0].isdigit() or rest[0] == "IN"):
                rest = rest[1:]
            rtype, rdata = rest[0], rest[1:]
            if rtype == "SRV":
                prio, weight, port, target = rdata
                srv.append((absname(owner), absname(target), int(port), int(prio), int(weight)))
            elif rtype == "A" and rdata[0] in addr_map:
                hosts.append((absname(owner), addr_map[rdata[0]]))
    return srv, hosts


def ini(sections):
    """[(section, [(key, value), ...]), ...] -> config text (a key may repeat)."""
    out = []
    for name, items in sections:
        out.append("[%s]" % name)
        out += ["%s = %s" % kv for kv in items]
        out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# The lab


class Lab:
    """The four namespaces and everything in them. start() builds it, stop() tears it down
    (always call it, also after a failed start)."""

    def __init__(self, workdir, prefix=None, say=None):
        self.work = os.path.abspath(str(workdir))
        os.makedirs(self.work, exist_ok=True)
        self.prefix = prefix or "plab-%d" % os.getpid()
        self.say = say or (lambda msg: None)
        self.inet = Netns(self.prefix + "-internet")
        self.dmz = Netns(self.prefix + "-dmz")
        self.internal = Netns(self.prefix + "-internal")
        self.frontend = Netns(self.prefix + "-frontend")
        self.namespaces = [self.inet, self.dmz, self.internal, self.frontend]
        self.stoppers = []           # (name, callable) in start order
        self.daemons = []
        self.certs = os.path.join(self.work, "certs")

    # -- building

    def start(self):
        t0 = time.monotonic()
        self._network()
        self._firewalls()
        self._certs()
        self._dns()
        self._parley()
        self._internal_side()
        self._partners()
        self.say("lab up in %.1f s" % (time.monotonic() - t0))
        return self

    def _keep(self, name, stop):
        self.stoppers.append((name, stop))

    def _network(self):
        _delete_stale_namespaces()
        for ns in self.namespaces:
            ns.create()
        # veth pairs are created inside the namespaces, never in the root one.
        self.inet.ip("link", "add", "eth0", "type", "veth", "peer", "name", "eth0",
                     "netns", self.dmz.name)
        self.dmz.ip("link", "add", "eth1", "type", "veth", "peer", "name", "eth0",
                    "netns", self.internal.name)
        self.internal.ip("link", "add", "eth1", "type", "veth", "peer", "name", "eth0",
                         "netns", self.frontend.name)
        for addr in INET_ADDRS:
            self.inet.ip("addr", "add", addr + "/24", "dev", "eth0")
        self.dmz.ip("addr", "add", EDGE_EXT + "/24", "dev", "eth0")
        self.dmz.ip("addr", "add", EDGE_INT + "/24", "dev", "eth1")
        for addr in GW_HOST_ADDRS:  # the gateway's address first: it is the source address
            self.internal.ip("addr", "add", addr + "/24", "dev", "eth0")
        for addr in FRONTEND_ADDRS:
            self.frontend.ip("addr", "add", addr + "/24", "dev", "eth0")
        for ns, ifs in ((self.inet, ["eth0"]), (self.dmz, ["eth0", "eth1"]),
                        (self.internal, ["eth0", "eth1"]), (self.frontend, ["eth0"])):
            for i in ifs:
                ns.ip("link", "set", i, "up")
        # The internal network's other subnet sits behind the DMZ host's internal interface
        # (one broadcast domain in the lab, two subnets as in the documentation).
        self.dmz.ip("route", "add", "10.0.2.0/24", "dev", "eth1")
        self.internal.ip("route", "add", "10.0.1.0/24", "dev", "eth0")
        # Towards the internet, the internal network's route leads to the edge, which does not
        # forward; and an attacker on the internet routes the internal prefixes to the edge.
        self.internal.ip("route", "add", INET_NET, "via", EDGE_INT)
        self.inet.ip("route", "add", "10.0.0.0/8", "via", EDGE_EXT)
        # The front end's addresses are on the internal subnet too, behind the gateway host's
        # eth1 (host routes, more specific than eth0's /24); the front end reaches the gateway
        # host on-link (it answers ARP for its addresses on either interface) and nothing
        # else: it has no route out of 10.0.2.0/24, and the gateway host does not forward.
        for addr in FRONTEND_ADDRS:
            self.internal.ip("route", "add", addr + "/32", "dev", "eth1", "src", GW_IP)
        # IPv6 on the same links (nodad: usable at once)
        for ns, addr, dev in ((self.inet, PARTNER_IP6, "eth0"), (self.dmz, EDGE_EXT6, "eth0"),
                              (self.dmz, EDGE_INT6, "eth1"), (self.internal, GW_IP6, "eth0"),
                              (self.internal, GW_FE6, "eth1"), (self.frontend, POOL_IP6, "eth0")):
            ns.ip("-6", "addr", "add", addr + "/64", "dev", dev, "nodad")
        self.dmz.ip("-6", "route", "add", "fd00:10:2::/64", "dev", "eth1")
        self.internal.ip("-6", "route", "add", "fd00:10:1::/64", "dev", "eth0")
        self.internal.ip("-6", "route", "add", INET_NET6, "via", EDGE_INT6)
        self.inet.ip("-6", "route", "add", "fd00:10::/32", "via", EDGE_EXT6)
        for ns in (self.dmz, self.internal):
            ns.sysctl("net.ipv4.ip_forward", 0)
            ns.sysctl("net.ipv6.conf.all.forwarding", 0)
        self.say("namespaces %s, %s, %s, %s joined by veth pairs" % tuple(
            n.name for n in self.namespaces))

    def _firewalls(self):
        nftdir = os.path.join(HERE, "nftables")
        edge = os.path.join(self.work, "edge-load.nft")
        with open(edge, "w") as f:
            f.write('include "%s/edge-vars.nft"\n' % nftdir +
                    "redefine dns_servers = { %s }\n" % DNS_IP +
                    'include "%s/edge.nft"\n' % nftdir)
        internal = os.path.join(self.work, "internal-load.nft")
        with open(internal, "w") as f:
            f.write('include "%s/internal-vars.nft"\n' % nftdir +
                    'include "%s/internal.nft"\n' % nftdir)
        self.edge_nft, self.internal_nft = edge, internal
        observer = os.path.join(self.work, "frontend-observer.nft")
        with open(observer, "w") as f:
            f.write(FRONTEND_OBSERVER)
        self.dmz.nft_load(edge)
        self.internal.nft_load(internal)
        self.frontend.nft_load(observer)
        self.say("dmz: deploy/nftables/edge.nft loaded; internal: deploy/nftables/internal.nft"
                 " loaded; internet: no firewall; frontend: an accept-all table that counts")

    def _certs(self):
        mk = os.path.join(HERE, "mkcerts.sh")
        subprocess.run(["sh", mk, "--kit", "--domain", "corp.test", self.certs], check=True,
                       stdout=subprocess.DEVNULL)
        harness.make_certs(self.certs, "partner.test", "odd.test", "pool.corp.test")

    def _dns(self):
        srv, hosts = zone_records(os.path.join(HERE, "dns", "partner-facing.zone"),
                                  "corp.example", "corp.test", {"192.0.2.10": EDGE_EXT})
        srv += [("_xmpp-server._tcp.partner.test", "s2s.partner.test", 5269, 0, 5),
                ("_xmpp-server._tcp.odd.test", "s2s.odd.test", ODD_PORT, 0, 5)]
        hosts += [("s2s.partner.test", PARTNER_IP), ("s2s.odd.test", ODD_IP)]
        self.dns_records = (srv, hosts)
        with self.inet.entered():
            self.dns = Dnsmasq(os.path.join(self.work, "dns"), address=DNS_IP, port=53,
                               srv=srv, hosts=hosts)
            self.dns.start()
        self._keep("dnsmasq", self.dns.stop)
        self.say("internet: dnsmasq %s:53 serving deploy/dns/partner-facing.zone for corp.test"
                 " and the partners' SRV records" % DNS_IP)

    def _parley(self):
        c = lambda f: os.path.join(self.certs, f)  # noqa: E731
        proxy = ini([
            ("general", [("node_id", "edge1"), ("log_level", "info")]),
            ("link", [("listen", "%s:%d" % (EDGE_INT, LINK_PORT)),
                      ("cert", c("link-edge.pem")), ("key", c("link-edge.key")),
                      ("ca", c("ca.pem")), ("peer_name", "gateway.link.corp.test"),
                      ("ping_interval", "1s"), ("dead_timeout", "4s")]),
            ("s2s", [("listen", "%s:5269" % EDGE_EXT), ("listen_tls", "%s:5270" % EDGE_EXT),
                     ("cert", c("edge.pem")), ("key", c("edge.key")), ("ca", c("ca.pem")),
                     ("dialback_secret", SECRET), ("resolver", "%s:53" % DNS_IP)]),
        ])
        gateway = ini([
            ("general", [("node_id", "gw1"), ("log_level", "info")]),
            ("link", [("edge", "%s:%d" % (EDGE_INT, LINK_PORT)), ("priority", "10"),
                      ("cert", c("link-gateway.pem")), ("key", c("link-gateway.key")),
                      ("ca", c("ca.pem")), ("peer_name", "proxy.link.corp.test"),
                      ("reconnect_min", "50ms"), ("reconnect_max", "500ms"),
                      ("ping_interval", "1s"), ("dead_timeout", "4s")]),
            ("federation", [("domain", "corp.test")]),
            ('partner "partner.test"', [("type", "federated")]),
            ('partner "odd.test"', [("type", "federated")]),
            ("sip", [("listen_udp", "%s:5060" % GW_IP), ("listen_tcp", "%s:5060" % GW_IP),
                     ("listen_tls", "%s:5061" % GW_IP), ("tls_cert", c("sip.pem")),
                     ("tls_key", c("sip.key")), ("tls_ca", c("ca.pem")),
                     ("pool", "udp:%s:5060" % POOL_IP)]),
        ])
        # Operators' endpoints: the control socket in the lab's directory, metrics on each
        # namespace's own loopback.
        proxy += ini([("control", [("socket", os.path.join(self.work, "proxy.sock")),
                                   ("metrics", "127.0.0.1:%d" % METRICS_PORT["proxy"])])])
        gateway += ini([("state", [("path", os.path.join(self.work, "gateway.db"))]),
                        ("control", [("socket", os.path.join(self.work, "gateway.sock")),
                                     ("metrics", "127.0.0.1:%d" % METRICS_PORT["gateway"])])])
        self.metrics = {"proxy": (self.dmz, METRICS_PORT["proxy"]),
                        "gateway": (self.internal, METRICS_PORT["gateway"])}
        with self.dmz.entered():
            self.px = Daemon("parley-proxy", self.work, "proxy", proxy).start()
        self.daemons.append(self.px)
        self._keep("parley-proxy", self.px.stop)
        with self.internal.entered():
            self.gw = Daemon("parley-gateway", self.work, "gateway", gateway).start()
        self.daemons.append(self.gw)
        self._keep("parley-gateway", self.gw.stop)
        self.px.wait_log(r"event=policy_applied", timeout=20)
        self.say("dmz: parley-proxy, S2S on %s:5269/5270, link on %s:%d; internal: "
                 "parley-gateway %s dialled the link, policy applied"
                 % (EDGE_EXT, EDGE_INT, LINK_PORT, GW_IP))

    def _internal_side(self):
        with self.internal.entered():
            self.decoys_int = self.internal.popen(
                [PYTHON, os.path.abspath(__file__), "listen", *map(str, INTERNAL_DECOYS)],
                stdout=subprocess.PIPE, text=True)
            self._keep("internal decoys", lambda: _stop(self.decoys_int))
        with self.frontend.entered():
            self.decoys_front = self.frontend.popen(
                [PYTHON, os.path.abspath(__file__), "listen", *map(str, FRONTEND_DECOYS)],
                stdout=subprocess.PIPE, text=True)
            self._keep("frontend decoys", lambda: _stop(self.decoys_front))
            self.kam = Kamailio(self.work, ip=POOL_IP, port=5060,
                                partners=["partner.test", "odd.test"],
                                gateway="sip:%s:5060" % GW_IP, certs=self.certs)
            self.kam.check()
            self.kam.start()
            self._keep("kamailio", self.kam.stop)
            self.bob = UA("bob", "corp.test", BOB_IP, proxy=(POOL_IP, 5060))
            self.bob.start()
            self._keep("bob", self.bob.close)
        with self.dmz.entered():
            self.decoys_dmz = self.dmz.popen(
                [PYTHON, os.path.abspath(__file__), "listen", *map(str, DMZ_DECOYS)],
                stdout=subprocess.PIPE, text=True)
            self._keep("dmz decoys", lambda: _stop(self.decoys_dmz))
        for p in (self.decoys_int, self.decoys_front, self.decoys_dmz):
            if p.stdout.readline().strip() != "ready":
                raise AssertionError("decoy listeners did not start")
        r = self.bob.register()
        assert r.status == 200, r.start
        self.say("frontend: Kamailio (corp.test pool) %s:5060, bob@corp.test registered from"
                 " %s; decoy services there on %s, on the gateway host on %s and in the DMZ"
                 " on %s" % (POOL_IP, BOB_IP, FRONTEND_DECOYS, INTERNAL_DECOYS, DMZ_DECOYS))

    def _partners(self):
        with self.inet.entered():
            self.partner = Prosody(os.path.join(self.work, "partner"), PARTNER_IP,
                                   ["partner.test"], self.certs, dns="%s@53" % DNS_IP,
                                   users=[("alice", "partner.test", "pw-a")], log_level="info")
            self.partner.start()
            self._keep("prosody partner.test", self.partner.stop)
            self.odd = Prosody(os.path.join(self.work, "odd"), ODD_IP, ["odd.test"], self.certs,
                               dns="%s@53" % DNS_IP, users=[("carol", "odd.test", "pw-c")],
                               log_level="info", s2s_port=ODD_PORT, direct_tls=False)
            self.odd.start()
            self._keep("prosody odd.test", self.odd.stop)
            self.alice = XmppClient("alice@partner.test", "pw-a", PARTNER_IP, workdir=self.work)
            self.alice.start()
            self._keep("alice", self.alice.stop)
            self.carol = XmppClient("carol@odd.test", "pw-c", ODD_IP, workdir=self.work)
            self.carol.start()
            self._keep("carol", self.carol.stop)
        self.say("internet: Prosody partner.test (%s, alice) and odd.test (%s, S2S on port %d,"
                 " carol) logged in" % (PARTNER_IP, ODD_IP, ODD_PORT))

    def stop(self):
        """Stops everything by PID in reverse order and deletes the namespaces. Returns the
        sanitizer findings in the daemons' logs (empty when clean)."""
        for name, stop in reversed(self.stoppers):
            try:
                stop()
            except Exception as e:  # keep tearing down
                print("lab: stopping %s: %r" % (name, e), file=sys.stderr)
        self.stoppers = []
        for ns in self.namespaces:
            ns.delete()
        return harness.sanitizer_report(self.daemons)

    # -- proofs: each asserts, and returns lines for the report

    def bob_bodies(self):
        return [m.text for m in self.bob.received if m.method == "MESSAGE"]

    def prove_im_both_ways(self):
        n0 = len(self.bob_bodies())
        text = "Hello Bob, from the internet to the internal network"
        self.alice.send_message("bob@corp.test", text, thread="lab-1")
        m = self.bob.wait_request("MESSAGE", timeout=30, count=n0 + 1)
        assert m.text == text, m.text
        assert "alice@partner.test" in m.header("from")
        reply = "Hi Alice, from behind two firewalls"
        # wait for one more than alice had (the proof runs again after a reload)
        n1 = len(self.alice.received(timeout=0, count=0, sender="bob@corp.test"))
        r = self.bob.request("MESSAGE", "sip:alice@partner.test", body=reply,
                             content_type="text/plain;charset=UTF-8", call_id="lab-1")
        assert r.status == 202, r.start
        got = self.alice.received(timeout=20, count=n1 + 1, sender="bob@corp.test")
        assert got and got[-1]["body"] == reply, got
        assert got[-1]["thread"] == "lab-1", got[-1]
        return ["alice@partner.test -> bob@corp.test: %r arrived at bob's SIP UA" % text,
                "bob@corp.test -> alice@partner.test: SIP %d, %r arrived at alice (thread %s)"
                % (r.status, reply, got[-1]["thread"])]

    def prove_presence(self):
        """Presence both ways, as tests/system/test_presence.py does on loopback: alice (the
        internet) subscribes to bob (the internal network) and sees the state he PUBLISHed to
        the pool's presence server, and a change of it; bob subscribes to alice and gets a
        NOTIFY with hers. partner.test is `type = federated`, so status notes pass."""
        def from_bob(e):
            return e["from"].split("/")[0] == "bob@corp.test"

        def bob_presence(pred, what, since=0, timeout=30):
            return _wait_after(self.alice, since, pred, what, from_bob, timeout)

        # alice -> bob: SUBSCRIBE toward the pool, bob's PIDF back as XMPP presence
        r = self.bob.publish(body=_pidf("open", note="at my desk, behind two firewalls"))
        assert r.status == 200, r.start
        self.alice.subscribe("bob@corp.test")
        bob_presence(lambda e: e.get("type") == "subscribed", "bob's subscribed at alice")
        first = bob_presence(lambda e: e.get("status") == "at my desk, behind two firewalls",
                             "bob's published state at alice")
        assert first.get("type") in (None, "", "available"), first
        n = len(self.alice.events("presence"))
        r = self.bob.publish(body=_pidf("open", activity="busy", note="in a call"))
        assert r.status == 200, r.start
        busy = bob_presence(lambda e: e.get("status") == "in a call", "bob busy at alice",
                            since=n)
        assert busy.get("show") == "dnd", busy
        # bob -> alice: SUBSCRIBE through the pool to the gateway, NOTIFYs with her state
        self.alice.set_presence(show="away", status="lunch on the internet")
        r, _dialog = self.bob.subscribe("sip:alice@partner.test", expires=600)
        assert r.status == 200, r.start
        m = self.bob.wait_request(
            "NOTIFY", timeout=30,
            pred=lambda m: "active" in (m.header("subscription-state") or "")
            and "lunch on the internet" in m.text)
        assert m.header("content-type").startswith("application/pidf+xml"), m.start
        assert "<basic>open" in m.text and ">away<" in m.text, m.text
        self.alice.set_presence(show="dnd", status="do not disturb")
        m2 = self.bob.wait_request("NOTIFY", timeout=30,
                                   pred=lambda m: "do not disturb" in m.text)
        assert ">dnd<" in m2.text, m2.text
        self._presence_up = True
        return ["alice@partner.test subscribed to bob@corp.test: bob's PUBLISHed note %r "
                "arrived as XMPP presence, then 'busy' as show=%s"
                % (first.get("status"), busy.get("show")),
                "bob@corp.test subscribed to sip:alice@partner.test (SIP %d): NOTIFY %s with "
                "basic=open show=away %r, then show=dnd" % (
                    r.status, m.header("subscription-state"), "lunch on the internet")]

    def prove_edge_cannot_connect_inside(self):
        before = self.dmz.counters("parley_edge")
        truth = self.truth_inside(INSIDE_PORTS)
        res = self.dmz.scan(INTERNAL_ADDRS, INSIDE_PORTS)
        after = self.dmz.counters("parley_edge")
        n = len(INTERNAL_ADDRS) * len(INSIDE_PORTS)
        listening = truth
        assert listening, "nothing listens in the internal network: the proof would be empty"
        assert res["open"] == [], "the edge opened connections inside: %r" % res["open"]
        assert res["filtered"] == n, res
        dropped = after["out_internal"] - before["out_internal"]
        assert dropped >= n, "out_internal counted %d packets for %d attempts" % (dropped, n)
        return ["from the dmz, %d connection attempts to %s on ports %s: 0 answered, %d got no"
                " answer at all (dropped)" % (n, ", ".join(INTERNAL_ADDRS), INSIDE_PORTS,
                                              res["filtered"]),
                "the same ports answer inside the internal network (each host scanning "
                "itself): %s" % _fmt(listening),
                "edge.nft counter out_internal: +%d packets (SYNs and their retries)" % dropped]

    def truth_inside(self, ports):
        """What listens on INTERNAL_ADDRS, each host scanning its own addresses (over its
        loopback, which no ruleset filters)."""
        return sorted(self.internal.scan(GW_HOST_ADDRS, ports)["open"] +
                      self.frontend.scan(FRONTEND_ADDRS, ports)["open"])

    def prove_internal_drops_without_edge_rules(self):
        """Defence in depth: with the edge's ruleset removed (an edge taken over), the
        internal host's own rules still drop and count the edge's attempts, and the front
        end behind it sees none of them."""
        ports = [22, 80, 5060, 5061, LINK_PORT]
        before = self.internal.counters("parley_internal")
        seen0 = self.frontend.counters("lab_observer")
        self.dmz.run(NFT, "delete", "table", "inet", "parley_edge")
        try:
            res = self.dmz.scan(GW_HOST_ADDRS, ports)
            res_fe = self.dmz.scan(FRONTEND_ADDRS, ports)
        finally:
            self.dmz.nft_load(self.edge_nft)
        after = self.internal.counters("parley_internal")
        seen = self.frontend.counters("lab_observer")["from_elsewhere"] - seen0["from_elsewhere"]
        n = len(GW_HOST_ADDRS) * len(ports)
        n_fe = len(FRONTEND_ADDRS) * len(ports)
        assert res["open"] == [], res
        assert res["filtered"] == n, res
        dropped = after["from_edge"] - before["from_edge"]
        assert dropped >= n, "from_edge counted %d packets for %d attempts" % (dropped, n)
        # The front end is behind the gateway host, which does not forward (nor answer ARP
        # for the front end's addresses): nothing comes back, no RST, and nothing arrives.
        assert res_fe["open"] == [] and res_fe["refused"] == 0, res_fe
        assert res_fe["filtered"] + res_fe["unreachable"] == n_fe, res_fe
        assert seen == 0, "the front end received %d packets from outside 10.0.2.0/24" % seen
        return ["with edge.nft removed from the dmz, %d attempts at the gateway host (%s):"
                " 0 answered; internal.nft counter from_edge: +%d packets"
                % (n, ", ".join(GW_HOST_ADDRS), dropped),
                "%d attempts at the front end (%s) behind it: 0 answered, 0 packets arrived"
                " there (the gateway host does not forward); edge.nft reloaded"
                % (n_fe, ", ".join(FRONTEND_ADDRS))]

    def prove_sip_crosses_gateway_rules(self):
        """SIP between the gateway and the pool is real traffic between two hosts: IM and
        presence, each way, move internal.nft's SIP counters (sip_from_pool: packets from the
        pool to the gateway's SIP ports; sip_to_pool: the gateway's to the pool's). Each
        exchange is a request and its response over UDP (the lab's pool entry; both ends use
        port 5060), so both counters move for each."""
        if not getattr(self, "_presence_up", False):
            self.prove_presence()  # the subscriptions both ways this proof changes state on
        steps = []

        def step(what, action):
            c0 = self.internal.counters("parley_internal")
            o0 = self.frontend.counters("lab_observer")
            action()
            c1 = self.internal.counters("parley_internal")
            o1 = self.frontend.counters("lab_observer")
            d = {k: c1[k] - c0[k] for k in ("sip_from_pool", "sip_to_pool")}
            arrived = o1["from_gateway_sip"] - o0["from_gateway_sip"]
            assert d["sip_from_pool"] >= 1 and d["sip_to_pool"] >= 1, (what, d)
            # what left the gateway for the pool's SIP ports arrived there
            assert arrived >= d["sip_to_pool"], (what, d, arrived)
            steps.append("%-34s sip_from_pool +%d, sip_to_pool +%d (front end received +%d)"
                         % (what, d["sip_from_pool"], d["sip_to_pool"], arrived))

        def im_in():
            n0 = len(self.bob_bodies())
            self.alice.send_message("bob@corp.test", "counted on the way in", thread="lab-fw")
            m = self.bob.wait_request("MESSAGE", timeout=30, count=n0 + 1)
            assert m.text == "counted on the way in", m.text

        def im_out():
            n0 = len(self.alice.received(timeout=0, count=0, sender="bob@corp.test"))
            r = self.bob.request("MESSAGE", "sip:alice@partner.test", body="counted on the way"
                                 " out", content_type="text/plain;charset=UTF-8",
                                 call_id="lab-fw")
            assert r.status == 202, r.start
            got = self.alice.received(timeout=20, count=n0 + 1, sender="bob@corp.test")
            assert got and got[-1]["body"] == "counted on the way out", got

        def presence_in():
            n = len(self.alice.events("presence"))
            r = self.bob.publish(body=_pidf("open", note="counted by the gateway host"))
            assert r.status == 200, r.start
            _wait_after(self.alice, n, lambda e: e.get("status") == "counted by the gateway host",
                        "bob's new note", lambda e: e["from"].split("/")[0] == "bob@corp.test",
                        30)

        def presence_out():
            self.alice.set_presence(show="xa", status="counted leaving")
            self.bob.wait_request("NOTIFY", timeout=30, pred=lambda m: "counted leaving" in m.text)

        step("IM alice -> bob (gateway -> pool)", im_in)
        step("IM bob -> alice (pool -> gateway)", im_out)
        step("presence bob -> alice (NOTIFY in)", presence_in)
        step("presence alice -> bob (NOTIFY out)", presence_out)
        return steps

    def prove_frontend_gateway_undocumented(self):
        """Between the pool host and the gateway host only SIP passes: from the front end,
        undocumented ports of the gateway host get no answer and are counted (in_dropped),
        though some listen there; the gateway cannot reach the pool on an undocumented port
        (out_dropped), though something listens there, and nothing of it arrives."""
        ports = UNDOCUMENTED_PORTS
        truth_gw = self.internal.scan([GW_IP], ports)["open"]
        truth_fe = self.frontend.scan([POOL_IP], ports)["open"]
        assert truth_gw and truth_fe, (truth_gw, truth_fe)
        c0 = self.internal.counters("parley_internal")
        o0 = self.frontend.counters("lab_observer")
        res_in = self.frontend.scan([GW_IP], ports)
        c1 = self.internal.counters("parley_internal")
        res_out = self.internal.scan([POOL_IP], ports)
        c2 = self.internal.counters("parley_internal")
        o2 = self.frontend.counters("lab_observer")
        n = len(ports)
        assert res_in["open"] == [] and res_in["filtered"] == n, res_in
        assert res_out["open"] == [] and res_out["filtered"] == n, res_out
        d_in = c1["in_dropped"] - c0["in_dropped"]
        d_out = c2["out_dropped"] - c1["out_dropped"]
        arrived = o2["from_gateway_other"] - o0["from_gateway_other"]
        assert d_in >= n, "in_dropped counted %d packets for %d attempts" % (d_in, n)
        assert d_out >= n, "out_dropped counted %d packets for %d attempts" % (d_out, n)
        assert arrived == 0, "%d new flows from the gateway reached the front end" % arrived
        # and the documented ports do answer, both ways
        sip_in = self.frontend.scan([GW_IP], SIP_PORTS)["open"]
        sip_out = self.internal.scan([POOL_IP], SIP_PORTS)["open"]
        assert sip_in == [(GW_IP, p) for p in SIP_PORTS], sip_in
        assert sip_out == [(POOL_IP, p) for p in SIP_PORTS], sip_out
        return ["front end -> gateway host %s on %s: 0 of %d answered (listening there: %s);"
                " internal.nft in_dropped +%d" % (GW_IP, ports, n, _fmt(truth_gw), d_in),
                "gateway host -> pool %s on %s: 0 of %d answered (listening there: %s);"
                " internal.nft out_dropped +%d; new flows arriving at the front end: %d"
                % (POOL_IP, ports, n, _fmt(truth_fe), d_out, arrived),
                "SIP answers both ways: %s from the front end, %s from the gateway host"
                % (_fmt(sip_in), _fmt(sip_out))]

    def prove_internet_cannot_reach_inside(self):
        before = self.dmz.counters("parley_edge")
        res = self.inet.scan([EDGE_INT, GW_IP, POOL_IP], [LINK_PORT, 5060, 5061, 22, 80])
        after = self.dmz.counters("parley_edge")
        assert res["open"] == [], "reached from the internet: %r" % res["open"]
        refused = after["link_refused"] - before["link_refused"]
        assert refused >= 1, "link_refused did not count the internet's attempt"
        # the link itself is up and reachable from the gateway
        assert self.px.count(r"event=link_up") >= 1
        return ["from the internet (routing 10.0.0.0/8 to the edge): the link port %s:%d, "
                "the gateway %s and the pool %s: 0 of %d probes answered"
                % (EDGE_INT, LINK_PORT, GW_IP, POOL_IP, 15),
                "edge.nft counter link_refused: +%d packets" % refused]

    def prove_only_documented_ports(self):
        """A connect scan of 1..1024 plus the documented ports, from each side."""
        t0 = time.monotonic()
        lines = []
        # The baseline: each namespace scans its own addresses (over its loopback).
        truth_dmz = self.dmz.scan(DMZ_ADDRS, SCAN_PORTS)["open"]
        truth_int = self.internal.scan(GW_HOST_ADDRS, SCAN_PORTS)["open"]
        truth_fe = self.frontend.scan(FRONTEND_ADDRS, SCAN_PORTS)["open"]
        truth_inet = self.inet.scan(INET_ADDRS, SCAN_PORTS)["open"]
        pool_sip = [(POOL_IP, p) for p in SIP_PORTS]
        gw_sip = [(GW_IP, p) for p in SIP_PORTS]
        cases = [
            ("internet", self.inet, "dmz", DMZ_ADDRS, truth_dmz,
             [(EDGE_EXT, 5269), (EDGE_EXT, 5270)]),
            ("internet", self.inet, "internal", GW_HOST_ADDRS, truth_int, []),
            ("internet", self.inet, "frontend", FRONTEND_ADDRS, truth_fe, []),
            ("internal", self.internal, "dmz", DMZ_ADDRS, truth_dmz, [(EDGE_INT, LINK_PORT)]),
            ("internal", self.internal, "internet", INET_ADDRS, truth_inet, []),
            # The gateway reaches the pool's SIP ports only (not bob's UA, not the decoys).
            ("internal", self.internal, "frontend", FRONTEND_ADDRS, truth_fe, pool_sip),
            # The pool reaches the gateway's SIP ports only; it has no route beyond.
            ("frontend", self.frontend, "internal", GW_HOST_ADDRS, truth_int, gw_sip),
            ("frontend", self.frontend, "dmz", DMZ_ADDRS, truth_dmz, []),
            ("frontend", self.frontend, "internet", INET_ADDRS, truth_inet, []),
            ("dmz", self.dmz, "internal", GW_HOST_ADDRS, truth_int, []),
            ("dmz", self.dmz, "frontend", FRONTEND_ADDRS, truth_fe, []),
            # Outbound S2S may go to any TCP port (SRV records name it): all of the
            # internet's listening ports answer the edge.
            ("dmz", self.dmz, "internet", INET_ADDRS, truth_inet, truth_inet),
        ]
        for src, ns, dst, addrs, truth, want in cases:
            res = ns.scan(addrs, SCAN_PORTS)
            assert res["open"] == sorted(want), "%s -> %s: open %r, documented %r" % (
                src, dst, res["open"], sorted(want))
            lines.append("%-8s -> %-8s %5d probes: answered %s (listening there: %d ports)"
                         % (src, dst, len(addrs) * len(SCAN_PORTS), _fmt(res["open"]) or "none",
                            len(truth)))
        assert (EDGE_INT, LINK_PORT) in truth_dmz and (EDGE_EXT, 22) in truth_dmz
        assert set(pool_sip) <= set(truth_fe) and set(gw_sip) <= set(truth_int)
        assert (POOL_IP, 22) in truth_fe and (GW_IP, 22) in truth_int
        elapsed = time.monotonic() - t0
        lines.append("ports 1-1024 and %s on every address; %.1f s in all" % (EXTRA_PORTS,
                                                                             elapsed))
        return lines

    def prove_ipv6(self):
        """The same rules over IPv6: only inbound S2S gets through to the edge, nothing reaches
        the link port or the internal network, the gateway host takes nothing (its allow
        rules name IPv4 addresses). Each namespace first scans its own IPv6 addresses, so
        that what does not answer across is known to answer from inside."""
        lines = []
        ports = SCAN_PORTS
        truth_dmz = self.dmz.scan([EDGE_EXT6, EDGE_INT6], ports)["open"]
        truth_int = self.internal.scan([GW_IP6, GW_FE6], ports)["open"]
        assert (EDGE_EXT6, 22) in truth_dmz and (GW_IP6, 22) in truth_int, (truth_dmz,
                                                                              truth_int)
        e0, i0 = self.dmz.counters("parley_edge"), self.internal.counters("parley_internal")
        # internet -> edge: the S2S ports pass the rules (nothing listens on IPv6 there:
        # refused), every other port is dropped (filtered), decoys included
        res = self.inet.scan([EDGE_EXT6], ports)
        assert res["open"] == [] and res["refused"] == len(S2S_PORTS), res
        assert res["filtered"] == len(ports) - len(S2S_PORTS), res
        lines.append("internet -> edge %s: %d probes, the %d S2S ports pass (refused: no IPv6 "
                     "listener), %d dropped" % (EDGE_EXT6, len(ports), res["refused"],
                                                res["filtered"]))
        # the internet routing the internal prefix to the edge: nothing comes through
        res = self.inet.scan([EDGE_INT6, GW_IP6, POOL_IP6], [LINK_PORT, 5060, 22, 80])
        assert res["open"] == [] and res["refused"] == 0, res
        # the gateway host -> the edge's link port over IPv6: not a listed gateway address
        res = self.internal.scan([EDGE_INT6], [LINK_PORT, 22, 80])
        assert res["open"] == [] and res["refused"] == 0, res
        # the edge -> the internal network: nothing leaves (out_internal)
        res = self.dmz.scan([GW_IP6], INSIDE_PORTS)
        assert res["open"] == [] and res["refused"] == 0, res
        # the pool host -> the gateway host: SIP is allowed from the pool's IPv4 only
        res = self.frontend.scan([GW_FE6], list(SIP_PORTS) + UNDOCUMENTED_PORTS)
        assert res["open"] == [] and res["refused"] == 0, res
        e1, i1 = self.dmz.counters("parley_edge"), self.internal.counters("parley_internal")
        d = {k: e1[k] - e0[k] for k in ("in_dropped", "link_refused", "out_internal")}
        di = i1["in_dropped"] - i0["in_dropped"]
        assert d["in_dropped"] >= len(ports) - len(S2S_PORTS), d
        assert d["link_refused"] >= 1 and d["out_internal"] >= len(INSIDE_PORTS), d
        assert di >= len(SIP_PORTS) + len(UNDOCUMENTED_PORTS), di
        lines.append("internal -> link port, edge -> internal, pool host -> gateway host, "
                     "internet -> internal prefix: 0 answers, all dropped (answer from inside: "
                     "%d ports on the edge, %d on the gateway host)"
                     % (len(truth_dmz), len(truth_int)))
        lines.append("edge.nft counters in_dropped +%(in_dropped)d, link_refused "
                     "+%(link_refused)d, out_internal +%(out_internal)d; internal.nft "
                     "in_dropped +%(di)d" % dict(d, di=di))
        return lines

    def prove_odd_port_partner(self):
        text = "Carol, your server listens on port %d" % ODD_PORT
        r = self.bob.message("sip:carol@odd.test", text, timeout=30)
        assert r.status == 202, r.start
        got = self.carol.received(timeout=20, count=1, sender="bob@corp.test")
        assert got and got[-1]["body"] == text, got
        conn = re.findall(r"event=s2s_out_connect peer=(\S+) from=corp\.test to=odd\.test",
                          self.px.text())
        assert conn and conn[0].endswith(":%d" % ODD_PORT), conn
        return ["_xmpp-server._tcp.odd.test -> s2s.odd.test:%d; the edge connected to %s"
                % (ODD_PORT, conn[0]),
                "bob@corp.test -> carol@odd.test: SIP %d, %r arrived at carol" % (r.status, text)]

    def prove_certificate_renewal(self):
        """The kit renewed in place (same CA), SIGHUP to both daemons: each reloads, the
        link stays up, and a message still crosses."""
        mk = os.path.join(HERE, "mkcerts.sh")
        old = open(os.path.join(self.certs, "link-gateway.pem")).read()
        edge_pem = os.path.join(self.certs, "edge.pem")
        served_before = self.edge_serial()
        assert served_before == _file_serial(edge_pem), served_before
        subprocess.run(["sh", mk, "--kit", "--renew", "--domain", "corp.test", self.certs],
                       check=True, stdout=subprocess.DEVNULL)
        assert open(os.path.join(self.certs, "link-gateway.pem")).read() != old
        assert _file_serial(edge_pem) != served_before
        n_px, n_gw = self.px.count(r"event=reload\b"), self.gw.count(r"event=reload\b")
        for d in (self.px, self.gw):
            d.proc.send_signal(signal.SIGHUP)
        self.px.wait_log(r"event=reload\b", count=n_px + 1, timeout=10)
        self.gw.wait_log(r"event=reload\b", count=n_gw + 1, timeout=10)
        for d in (self.px, self.gw):
            assert d.count(r"event=(link_tls_reload|s2s_tls_reload|reload_refused)\b") == 0, \
                d.text()[-2000:]
        # a partner's new handshake sees the renewed S2S certificate
        served = self.edge_serial()
        assert served == _file_serial(edge_pem), (served, _file_serial(edge_pem))
        lines = self.prove_im_both_ways()
        return ["mkcerts.sh --kit --renew: new link, edge and SIP certificates from the same CA",
                "SIGHUP: parley-proxy and parley-gateway logged event=reload, no refusal",
                "the edge's S2S certificate seen from the internet (%s:5270): serial %s before,"
                " %s after (the renewed file's)" % (EDGE_EXT, served_before, served)] + lines

    def edge_serial(self):
        """The serial of the certificate the edge presents to a new direct-TLS handshake
        from the internet, as upper-case hex."""
        code = ("import socket,ssl,sys\n"
                "c=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); c.load_verify_locations(sys.argv[1])\n"
                "c.set_alpn_protocols(['xmpp-server'])\n"
                "s=c.wrap_socket(socket.create_connection((sys.argv[2],5270),timeout=10),"
                "server_hostname='corp.test')\n"
                "print(s.getpeercert()['serialNumber'])")
        r = self.inet.run(PYTHON, "-c", code, os.path.join(self.certs, "ca.pem"), EDGE_EXT)
        return r.stdout.strip().upper().lstrip("0")

    def prove_monitoring(self):
        """Each daemon serves its metrics on its host's loopback only."""
        lines = []
        for name, (ns, port) in sorted(self.metrics.items()):
            r = ns.run(PYTHON, "-c", "import urllib.request,sys; sys.stdout.write(urllib.request"
                       ".urlopen('http://127.0.0.1:%d/metrics', timeout=5).read().decode())"
                       % port)
            families = re.findall(r"^# TYPE (\S+)", r.stdout, re.M)
            assert families, "%s: no metrics in %r" % (name, r.stdout[:300])
            lines.append("%s: GET http://127.0.0.1:%d/metrics inside its namespace: %d metric "
                         "families (%s, ...)" % (name, port, len(families),
                                                 ", ".join(families[:3])))
        return lines or ["this build has no metrics endpoint"]

    def proofs(self):
        """(title, method) for every proof, in the order make lab runs them. A new check
        (presence, say) is one more prove_* method and one more line here."""
        return [
            ("IM flows both ways across the DMZ", self.prove_im_both_ways),
            ("presence flows both ways across the DMZ", self.prove_presence),
            ("an outbound stream to a partner whose SRV record names port %d" % ODD_PORT,
             self.prove_odd_port_partner),
            ("the edge cannot open any connection into the internal network",
             self.prove_edge_cannot_connect_inside),
            ("the internal host's rules hold even without the edge's",
             self.prove_internal_drops_without_edge_rules),
            ("SIP between gateway and pool crosses the gateway host's rules, counted",
             self.prove_sip_crosses_gateway_rules),
            ("between the pool host and the gateway host only SIP passes",
             self.prove_frontend_gateway_undocumented),
            ("the internet cannot reach the gateway or the link port",
             self.prove_internet_cannot_reach_inside),
            ("only the documented ports answer, scanned from each side",
             self.prove_only_documented_ports),
            ("over IPv6 only inbound S2S reaches the edge, nothing the inside",
             self.prove_ipv6),
            ("monitoring: the metrics endpoints answer on loopback", self.prove_monitoring),
            ("certificates renewed in place and reloaded with SIGHUP",
             self.prove_certificate_renewal),
        ]


def _delete_stale_namespaces():
    """Namespaces a killed lab run left behind (plab-PID-*, PID gone, nothing inside)."""
    r = subprocess.run([IP, "netns", "list"], capture_output=True, text=True)
    for line in r.stdout.splitlines():
        m = re.match(r"(plab-(\d+)-\S+)", line)
        if not m or os.path.exists("/proc/" + m.group(2)):
            continue
        pids = subprocess.run([IP, "netns", "pids", m.group(1)], capture_output=True,
                              text=True).stdout.split()
        if not pids:
            subprocess.run([IP, "netns", "del", m.group(1)], check=False)


_PIDF = """<?xml version='1.0' encoding='UTF-8'?>
<presence xmlns='urn:ietf:params:xml:ns:pidf'
  xmlns:dm='urn:ietf:params:xml:ns:pidf:data-model'
  xmlns:rpid='urn:ietf:params:xml:ns:pidf:rpid' entity='sip:bob@corp.test'>
 <tuple id='t1'><status><basic>%s</basic></status>%s</tuple>%s
</presence>"""


def _pidf(basic, note=None, activity=None):
    """bob's PIDF document as his SIP client PUBLISHes it."""
    return _PIDF % (basic, "<note xml:lang='en'>%s</note>" % note if note else "",
                    "<dm:person id='p1'><rpid:activities><rpid:%s/></rpid:activities>"
                    "</dm:person>" % activity if activity else "")


def _wait_after(client, since, pred, what, sender, timeout):
    """A presence event from sender matching pred among client's events after the first
    `since` presence events."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for e in client.events("presence")[since:]:
            if sender(e) and pred(e):
                return e
        time.sleep(0.05)
    raise AssertionError("%s: no %s within %.0f s; last presence events %r"
                         % (client.name, what, timeout, client.events("presence")[-5:]))


def _file_serial(pem):
    r = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", pem],
                       capture_output=True, text=True, check=True)
    return r.stdout.strip().split("=", 1)[1].upper().lstrip("0")


def _fmt(pairs):
    return ", ".join("%s:%d" % tuple(p) for p in pairs)


def _stop(proc, timeout=5):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    if os.geteuid() != 0:
        print("make lab needs root (network namespaces, nftables)", file=sys.stderr)
        return 1
    work = tempfile.mkdtemp(prefix="parley-lab-")
    print("== Parley in a DMZ behind real firewalls; files in %s" % work, flush=True)
    lab = Lab(work, say=lambda m: print("   " + m, flush=True))
    failed = []
    try:
        lab.start()
        for title, proof in lab.proofs():
            print("\n== " + title, flush=True)
            t0 = time.monotonic()
            try:
                for line in proof():
                    print("   " + line, flush=True)
                print("   PROVED (%.1f s)" % (time.monotonic() - t0), flush=True)
            except (AssertionError, TimeoutError) as e:  # sipua waits raise TimeoutError
                failed.append(title)
                print("   FAILED: %s" % str(e)[:3000], flush=True)
        print("\n== Firewall counters after the run", flush=True)
        for ns, table in ((lab.dmz, "parley_edge"), (lab.internal, "parley_internal"),
                          (lab.frontend, "lab_observer")):
            print("   %-15s %s" % (table, " ".join("%s=%d" % kv for kv in
                                                   sorted(ns.counters(table).items()))))
    finally:
        findings = lab.stop()
    if findings:
        failed.append("sanitizers")
        print("\n".join(findings))
    print("\n== %s" % ("every claim proved" if not failed else "NOT proved: " + "; ".join(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "scan":
        sys.exit(_scan_main(sys.argv[2]))
    if len(sys.argv) >= 2 and sys.argv[1] == "listen":
        sys.exit(_listen_main(sys.argv[2:]))
    sys.exit(main())
