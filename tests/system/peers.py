"""Real XMPP peers for the system tests: a dnsmasq that answers only for `.test`, and Prosody
instances on their own loopback addresses that federate through it.

Both run as children of the test in the foreground, each with its own working directory,
config and log file, and are stopped by PID. Nothing here touches /etc/resolv.conf or
/etc/hosts; Prosody's libunbound is pointed at the dnsmasq explicitly.

    dns = Dnsmasq(tmp_path / "dns", srv=[xmpp_srv("corp.test", "s2s.corp.test", 5269)],
                  hosts=[("s2s.corp.test", "127.0.0.32")]).start()
    corp = Prosody(tmp_path / "corp", "127.0.0.32", ["corp.test"], certs, dns=dns,
                   users=[("bob", "corp.test", "pw")]).start()
    corp.wait_log(r"Accepting SASL EXTERNAL identity from partner\\.test")
"""
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import time

DNSMASQ = "/usr/sbin/dnsmasq"
PROSODY = "/usr/bin/prosody"
PROSODYCTL = "/usr/bin/prosodyctl"


# --------------------------------------------------------------------------------------------
# Process plumbing shared by both peers


def _wait_for(pred, timeout, what, proc=None, log_text=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.05)
    tail = log_text()[-3000:] if log_text else ""
    code = proc.poll() if proc is not None else None
    if proc is not None and code is None:
        # not ready: the caller never gets it to stop, so it goes now (else it would hold
        # its ports for every later test)
        proc.kill()
        proc.wait(5)
    raise AssertionError("timed out waiting for %s (exit=%s); log tail:\n%s" % (
        what, code, tail))


def _tcp_listening(host, port):
    """Whether some socket listens on host:port (or the wildcard), read from /proc/net so
    that no probe connection shows up in the peer's log."""
    want = {(socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host), port)}
    want.add((bytes(16) if ":" in host else bytes(4), port))
    for path, fam in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] != "0A":  # TCP_LISTEN
                        continue
                    addr_hex, port_hex = fields[1].split(":")
                    raw = bytes.fromhex(addr_hex)
                    # /proc prints each 32-bit word in host (little-endian) order
                    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                    if (raw, int(port_hex, 16)) in want:
                        return True
        except FileNotFoundError:
            continue
    return False


def _stop_proc(proc, timeout):
    """SIGTERM, wait, then SIGKILL; returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class _LogFile:
    """Reading and waiting on a log file that a child writes."""

    log = None
    proc = None
    name = "peer"

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def count(self, pattern):
        return len(re.findall(pattern, self.log_text()))

    def wait_log(self, pattern, timeout=10.0, count=1):
        """Waits until `pattern` (a regex) occurs `count` times; returns all matches."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.findall(pattern, self.log_text())
            if len(found) >= count:
                return found
            if self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError("%s: no %r (x%d) within %.1fs; exit=%s; log tail:\n%s" % (
            self.name, pattern, count, timeout,
            self.proc.poll() if self.proc is not None else None, self.log_text()[-3000:]))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid if self.proc is not None else None


# --------------------------------------------------------------------------------------------
# DNS


def xmpp_srv(domain, target, port, direct_tls=False, priority=0, weight=5):
    """An SRV record `_xmpp-server._tcp.DOMAIN` (or `_xmpps-server` when direct_tls) as the
    tuple Dnsmasq(srv=...) takes: (owner, target, port, priority, weight)."""
    svc = "_xmpps-server" if direct_tls else "_xmpp-server"
    return ("%s._tcp.%s" % (svc, domain), target, port, priority, weight)


def xmpp_no_service(domain, direct_tls=False):
    """The "no service here" SRV record (target ".") for DOMAIN."""
    svc = "_xmpps-server" if direct_tls else "_xmpp-server"
    return ("%s._tcp.%s" % (svc, domain), None, 0, 0, 0)


class Dnsmasq(_LogFile):
    """dnsmasq from dnsmasq-base in the foreground on one loopback address and port, answering
    only for `.test` from the records given here: unknown `.test` names are NXDOMAIN and nothing
    is ever forwarded (--no-resolv and --local=/test/). Names outside `.test` get REFUSED.

    srv:   iterable of (owner, target, port, priority, weight); target None is the "."
           no-service form. Use xmpp_srv()/xmpp_no_service() to build them.
    hosts: iterable of (name, address, ...) — A and/or AAAA records; a name may repeat.
    Records may also be added with add_srv()/add_host() before start(); after start they take
    effect on restart()."""

    def __init__(self, workdir, address="127.0.0.153", port=None, srv=(), hosts=(),
                 name="dnsmasq", log_queries=True):
        """port None: a free one, so tests (and a demo) running side by side never collide;
        Prosody's unbound and Parley's resolver both take a port."""
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.address = address
        if port is None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind((address, 0))
                port = u.getsockname()[1]
        self.port = port
        self.name = name
        self.log = os.path.join(self.workdir, name + ".log")
        self.srv = [tuple(r) for r in srv]
        self.hosts = [tuple(h) for h in hosts]
        self.log_queries = log_queries
        self.proc = None

    @property
    def server(self):
        """"IP@PORT" as Prosody's unbound `forward` and our resolver configs spell it."""
        return "%s@%d" % (self.address, self.port)

    def add_srv(self, owner, target, port, priority=0, weight=5):
        self.srv.append((owner, target, port, priority, weight))
        return self

    def add_xmpp_srv(self, domain, target, port, direct_tls=False, priority=0, weight=5):
        self.srv.append(xmpp_srv(domain, target, port, direct_tls, priority, weight))
        return self

    def add_no_service(self, domain, direct_tls=False):
        self.srv.append(xmpp_no_service(domain, direct_tls))
        return self

    def add_host(self, name, *addresses):
        self.hosts.append((name, *addresses))
        return self

    def argv(self):
        args = [DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
                "--no-hosts", "--no-poll", "--bind-interfaces",
                "--listen-address=%s" % self.address, "--port=%d" % self.port,
                "--local=/test/", "--pid-file=", "--user=root", "--group=root",
                "--cache-size=0", "--log-facility=%s" % self.log]
        if self.log_queries:
            args.append("--log-queries")
        for owner, target, port, prio, weight in self.srv:
            if target is None:
                args.append("--srv-host=%s" % owner)
            else:
                args.append("--srv-host=%s,%s,%d,%d,%d" % (owner, target, port, prio, weight))
        for rec in self.hosts:
            name, addrs = rec[0], rec[1:]
            for a in addrs:
                args.append("--host-record=%s,%s" % (name, a))
        return args

    def start(self, timeout=5.0):
        if _udp_port_busy(self.address, self.port):
            raise AssertionError("%s: %s:%d is already in use" % (self.name, self.address,
                                                                   self.port))
        out = open(os.path.join(self.workdir, self.name + ".out"), "a")
        self.proc = subprocess.Popen(self.argv(), stdout=out, stderr=subprocess.STDOUT,
                                     cwd=self.workdir)
        out.close()
        # It is ready once it answers: ask for a name that must be NXDOMAIN.
        def ready():
            try:
                return self.resolve("ready-probe.test", "A", timeout=0.2).rcode == "NXDOMAIN"
            except OSError:
                return False
        _wait_for(ready, timeout, "%s to answer on %s" % (self.name, self.server), self.proc,
                  self._all_output)
        return self

    def _all_output(self):
        try:
            with open(os.path.join(self.workdir, self.name + ".out"), errors="replace") as f:
                out = f.read()
        except FileNotFoundError:
            out = ""
        return out + self.log_text()

    def stop(self, timeout=5.0):
        if self.proc is None:
            return None
        code = _stop_proc(self.proc, timeout)
        self.proc = None
        return code

    def restart(self):
        self.stop()
        return self.start()

    def resolve(self, name, rtype="A", timeout=2.0, tcp=False):
        """Asks this server directly; returns a DnsAnswer."""
        return dns_query(self.address, self.port, name, rtype, timeout=timeout, tcp=tcp)


def _udp_port_busy(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


# A tiny stub resolver, enough to check what the Dnsmasq serves (no dig on these machines).

_RTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28,
           "SRV": 33, "ANY": 255}
_RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


class DnsAnswer:
    """rcode: "NOERROR", "NXDOMAIN", ...; records: list of (type, value) where value is an
    address string for A/AAAA, (priority, weight, port, target) for SRV (target "." for the
    no-service form), and raw bytes otherwise."""

    def __init__(self, rcode, records):
        self.rcode = rcode
        self.records = records

    def values(self, rtype):
        return [v for t, v in self.records if t == rtype]

    def __repr__(self):
        return "DnsAnswer(%s, %r)" % (self.rcode, self.records)


def _encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\x00"


def _decode_name(msg, off):
    labels = []
    jumped = False
    end = off
    for _ in range(128):
        n = msg[off]
        if n & 0xC0 == 0xC0:
            if not jumped:
                end = off + 2
            off = ((n & 0x3F) << 8) | msg[off + 1]
            jumped = True
            continue
        if n == 0:
            if not jumped:
                end = off + 1
            return (".".join(labels) or "."), end
        labels.append(msg[off + 1:off + 1 + n].decode("ascii", "replace"))
        off += 1 + n
    raise ValueError("DNS name loop")


def dns_query(server, port, name, rtype="A", timeout=2.0, tcp=False):
    qid = random.randrange(65536)
    qtype = _RTYPES[rtype]
    query = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + _encode_name(name) + \
        struct.pack("!HH", qtype, 1)
    fam = socket.AF_INET6 if ":" in server else socket.AF_INET
    if tcp:
        with socket.create_connection((server, port), timeout=timeout) as s:
            s.sendall(struct.pack("!H", len(query)) + query)
            buf = b""
            while len(buf) < 2 or len(buf) < 2 + struct.unpack("!H", buf[:2])[0]:
                chunk = s.recv(65535)
                if not chunk:
                    raise OSError("DNS TCP connection closed early")
                buf += chunk
            msg = buf[2:]
    else:
        with socket.socket(fam, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.sendto(query, (server, port))
            while True:
                msg, _ = s.recvfrom(65535)
                if len(msg) >= 12 and struct.unpack("!H", msg[:2])[0] == qid:
                    break
    _, flags, qd, an, _, _ = struct.unpack("!HHHHHH", msg[:12])
    off = 12
    for _ in range(qd):
        _, off = _decode_name(msg, off)
        off += 4
    records = []
    names = {v: k for k, v in _RTYPES.items()}
    for _ in range(an):
        _, off = _decode_name(msg, off)
        t, _, _, rdlen = struct.unpack("!HHIH", msg[off:off + 10])
        off += 10
        rdata = msg[off:off + rdlen]
        tname = names.get(t, str(t))
        if tname == "A":
            value = socket.inet_ntop(socket.AF_INET, rdata)
        elif tname == "AAAA":
            value = socket.inet_ntop(socket.AF_INET6, rdata)
        elif tname == "SRV":
            prio, weight, sport = struct.unpack("!HHH", rdata[:6])
            target, _ = _decode_name(msg, off + 6)
            value = (prio, weight, sport, target)
        elif tname == "CNAME":
            value, _ = _decode_name(msg, off)
        else:
            value = rdata
        records.append((tname, value))
        off += rdlen
    return DnsAnswer(_RCODES.get(flags & 0x0F, str(flags & 0x0F)), records)


# --------------------------------------------------------------------------------------------
# Prosody


def make_capath(directory, *ca_files):
    """A directory holding only the given CA certificates, hashed with `openssl rehash`, as
    OpenSSL's capath wants it; returns its path."""
    directory = str(directory)
    os.makedirs(directory, exist_ok=True)
    for ca in ca_files:
        shutil.copy(str(ca), os.path.join(directory, os.path.basename(str(ca))))
    subprocess.run(["openssl", "rehash", directory], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return directory


def _lua_str(s):
    return '"%s"' % str(s).replace("\\", "\\\\").replace('"', '\\"')


def _lua_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "{ " + "; ".join(_lua_value(x) for x in v) + " }"
    if isinstance(v, dict):
        return "{ " + "; ".join("[%s] = %s" % (_lua_str(k), _lua_value(x))
                                for k, x in v.items()) + " }"
    return _lua_str(v)


class Prosody(_LogFile):
    """One Prosody 0.12 instance serving `domains` on its own loopback address `ip`.

    workdir    its own directory (config, data, pidfile, admin socket, log).
    ip         the only address it listens on (c2s 5222, s2s 5269, direct-TLS s2s 5270).
    domains    the VirtualHosts, e.g. ["partner.test"].
    certs_dir  a directory from harness.make_certs(): the trusted CA is certs_dir/ca.pem (or
               `ca`), and each VirtualHost D presents certs_dir/<cert_prefix>D.pem/.key unless
               `certs` maps D to (cert, key) paths.
    dns        a Dnsmasq or an "IP@PORT" string that libunbound forwards every query to.
    users      (user, domain, password) triples registered with prosodyctl before start.
    s2s_require_encryption, s2s_secure_auth   as in Prosody's config.
    s2s_insecure_domains   domains exempt from s2s_secure_auth (e.g. dialback with a rogue CA).
    dialback   load mod_dialback (default True).
    smacks     load mod_smacks (XEP-0198, also on s2s) with smacks_s2s_resend = smacks_resend.
    direct_tls serve direct-TLS s2s (XEP-0368) on 5270.
    starttls   load mod_tls (STARTTLS on c2s and s2s). False makes a plaintext-only server
               (also turns off direct TLS); pair it with s2s_require_encryption = False and
               s2s_secure_auth = False, leaving dialback over plain TCP.
    log_level  "debug" (every stanza, costs throughput) or "info" etc.
    c2s_require_encryption   False lets slixmpp log in without TLS on loopback.
    extra      more Lua config text appended to the global section.
    host_extra more Lua config text appended to every VirtualHost section."""

    def __init__(self, workdir, ip, domains, certs_dir, dns=None, users=(), name=None,
                 ca="ca.pem", cert_prefix="", certs=None, s2s_require_encryption=True,
                 s2s_secure_auth=True, s2s_insecure_domains=(), dialback=True, smacks=False,
                 smacks_resend=True, direct_tls=True, starttls=True, log_level="debug",
                 c2s_require_encryption=False, c2s_port=5222, s2s_port=5269,
                 s2s_direct_tls_port=5270, extra_modules=(), extra="", host_extra=""):
        self.workdir = os.path.abspath(str(workdir))
        os.makedirs(self.workdir, exist_ok=True)
        self.ip = ip
        self.domains = list(domains)
        self.name = name or ("prosody-" + self.domains[0])
        self.certs_dir = os.path.abspath(str(certs_dir))
        self.ca = ca if os.path.isabs(ca) else os.path.join(self.certs_dir, ca)
        self.certs = {}
        for d in self.domains:
            if certs and d in certs:
                self.certs[d] = tuple(os.path.abspath(p) for p in certs[d])
            else:
                base = os.path.join(self.certs_dir, cert_prefix + d)
                self.certs[d] = (base + ".pem", base + ".key")
        if dns is None:
            self.dns = "127.0.0.153@53"
        elif isinstance(dns, str):
            self.dns = dns
        else:
            self.dns = dns.server
        self.users = [tuple(u) for u in users]
        self.c2s_port = c2s_port
        self.s2s_port = s2s_port
        self.s2s_direct_tls_port = s2s_direct_tls_port if direct_tls and starttls else None
        self.opts = dict(s2s_require_encryption=s2s_require_encryption,
                         s2s_secure_auth=s2s_secure_auth,
                         s2s_insecure_domains=list(s2s_insecure_domains), dialback=dialback,
                         smacks=smacks, smacks_resend=smacks_resend, log_level=log_level,
                         starttls=starttls,
                         c2s_require_encryption=c2s_require_encryption,
                         extra_modules=list(extra_modules), extra=extra, host_extra=host_extra)
        self.conf = os.path.join(self.workdir, "prosody.cfg.lua")
        self.log = os.path.join(self.workdir, "prosody.log")
        self.data = os.path.join(self.workdir, "data")
        self.pidfile = os.path.join(self.workdir, "prosody.pid")
        self.admin_socket = os.path.join(self.workdir, "admin.sock")
        self.capath = os.path.join(self.workdir, "capath")
        self.certificates = os.path.join(self.workdir, "certs")
        self.proc = None
        self.exit_code = None

    # -- config

    def modules(self):
        mods = ["roster", "saslauth", "disco", "ping", "posix"]
        if self.opts["starttls"]:
            mods.append("tls")
        if self.opts["dialback"]:
            mods.append("dialback")
        if self.opts["smacks"]:
            mods.append("smacks")
        return mods + self.opts["extra_modules"]

    def config_text(self):
        o = self.opts
        level = o["log_level"]
        lines = [
            "-- written by tests/system/peers.py",
            "run_as_root = true",
            "pidfile = %s" % _lua_str(self.pidfile),
            "data_path = %s" % _lua_str(self.data),
            "admin_socket = %s" % _lua_str(self.admin_socket),
            "interfaces = { %s }" % _lua_str(self.ip),
            "local_interfaces = { %s }" % _lua_str(self.ip),
            "c2s_ports = { %d }" % self.c2s_port,
            "c2s_direct_tls_ports = { }",
            "s2s_ports = { %d }" % self.s2s_port,
            "s2s_direct_tls_ports = { %s }" % (self.s2s_direct_tls_port or ""),
            "http_ports = { }",
            "https_ports = { }",
            "component_ports = { }",
            "modules_enabled = %s" % _lua_value(self.modules()),
            "authentication = \"internal_hashed\"",
            "storage = \"internal\"",
            "c2s_require_encryption = %s" % _lua_value(o["c2s_require_encryption"]),
            "allow_unencrypted_plain_auth = true",
            "s2s_require_encryption = %s" % _lua_value(o["s2s_require_encryption"]),
            "s2s_secure_auth = %s" % _lua_value(o["s2s_secure_auth"]),
            "s2s_insecure_domains = %s" % _lua_value(o["s2s_insecure_domains"]),
            "s2s_timeout = 20",
            "smacks_s2s_resend = %s" % _lua_value(o["smacks_resend"]),
            "unbound = { resolvconf = false; hoststxt = false; forward = { %s }; "
            "options = { [\"local-zone:\"] = \"test. transparent\" } }" % _lua_str(self.dns),
            "ssl = { cafile = %s; capath = %s }" % (_lua_str(self.ca), _lua_str(self.capath)),
            # Direct-TLS listeners pick the certificate by SNI from this directory (they
            # ignore a VirtualHost's `ssl`): DOMAIN.crt + DOMAIN.key for every VirtualHost.
            "certificates = %s" % _lua_str(self.certificates),
            "log = { { levels = { min = %s }, to = \"file\", filename = %s } }" % (
                _lua_str(level), _lua_str(self.log)),
            o["extra"],
            "",
        ]
        for d in self.domains:
            cert, key = self.certs[d]
            lines += [
                "VirtualHost %s" % _lua_str(d),
                "    ssl = { certificate = %s; key = %s; cafile = %s; capath = %s }" % (
                    _lua_str(cert), _lua_str(key), _lua_str(self.ca), _lua_str(self.capath)),
                "    " + o["host_extra"],
                "",
            ]
        return "\n".join(lines) + "\n"

    def write_config(self):
        os.makedirs(self.data, exist_ok=True)
        make_capath(self.capath, self.ca)
        os.makedirs(self.certificates, exist_ok=True)
        for d, (cert, key) in self.certs.items():
            shutil.copy(cert, os.path.join(self.certificates, d + ".crt"))
            shutil.copy(key, os.path.join(self.certificates, d + ".key"))
        with open(self.conf, "w") as f:
            f.write(self.config_text())

    def prosodyctl(self, *args, check=True):
        return subprocess.run([PROSODYCTL, "--config", self.conf, *args], check=check,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              cwd=self.workdir, timeout=30)

    def register(self, user, domain, password):
        r = self.prosodyctl("register", user, domain, password, check=False)
        if r.returncode != 0:
            raise AssertionError("prosodyctl register %s@%s failed (%d): %s" % (
                user, domain, r.returncode, r.stdout))

    # -- process

    def ports(self):
        return [p for p in (self.c2s_port, self.s2s_port, self.s2s_direct_tls_port) if p]

    def start(self, timeout=15.0):
        for p in self.ports():
            if _tcp_listening(self.ip, p):
                raise AssertionError("%s: %s:%d is already in use" % (self.name, self.ip, p))
        self.write_config()
        for u in self.users:
            self.register(*u)
        out = open(os.path.join(self.workdir, "prosody.out"), "a")
        self.proc = subprocess.Popen([PROSODY, "-F", "--config", self.conf], stdout=out,
                                     stderr=subprocess.STDOUT, cwd=self.workdir)
        out.close()
        _wait_for(lambda: all(_tcp_listening(self.ip, p) for p in self.ports()), timeout,
                  "%s to listen on %s %s" % (self.name, self.ip, self.ports()), self.proc,
                  self._all_output)
        return self

    def _all_output(self):
        try:
            with open(os.path.join(self.workdir, "prosody.out"), errors="replace") as f:
                out = f.read()
        except FileNotFoundError:
            out = ""
        return out + self.log_text()

    def stop(self, timeout=10.0):
        """SIGTERM and wait (SIGKILL after `timeout`); returns the exit code."""
        if self.proc is None:
            return self.exit_code
        self.exit_code = _stop_proc(self.proc, timeout)
        self.proc = None
        return self.exit_code

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self):
        self.stop()
        return self.start()

    # -- what the log says about s2s (Prosody 0.12.3 wording; most need log_level "debug")

    def lines(self, *needles):
        """Log lines containing every one of `needles` (plain substrings, any order: Prosody
        prints a stanza's attributes in no fixed order)."""
        return [ln for ln in self.log_text().splitlines() if all(n in ln for n in needles)]

    def s2s_complete(self, local, remote, incoming=True):
        """Number of authenticated s2s streams remote->local (incoming) or local->remote."""
        if incoming:
            return self.count(r"Incoming s2s connection %s->%s complete" % (
                re.escape(remote), re.escape(local)))
        return self.count(r"Outgoing s2s connection %s->%s complete" % (
            re.escape(local), re.escape(remote)))

    def dialback_result_from(self, remote):
        """Inbound: db:result elements `remote` sent us (debug level)."""
        return self.lines("Received[s2sin_unauthed]: <result ", "jabber:server:dialback",
                          "from='%s'" % remote)

    def dialback_valid_from(self, remote):
        """Outbound: db:result type='valid' that `remote` returned to us (debug level)."""
        return self.lines("Received[s2sout_unauthed]: <result ", "jabber:server:dialback",
                          "type='valid'", "from='%s'" % remote)

    def connect_targets(self):
        """The "IP:PORT" targets its outbound connections tried, in order (debug level)."""
        return re.findall(r"Next target to try is (\S+)", self.log_text())

    def external_accepted_from(self, remote):
        """Inbound: Prosody accepted SASL EXTERNAL from `remote`."""
        return self.count(r"Accepting SASL EXTERNAL identity from %s\b" % re.escape(remote)) > 0

    def external_succeeded_to(self, remote):
        """Outbound: our SASL EXTERNAL to `remote` succeeded."""
        return self.count(r"SASL EXTERNAL with %s succeeded" % re.escape(remote)) > 0
