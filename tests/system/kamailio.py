"""Kamailio 5.6 (Debian) as the organisation's front-end pool in system tests: a registrar
and presence server on 127.0.0.x that routes partner domains to the gateway.

    k = Kamailio(workdir, ip="127.0.0.65", partners=["partner.test"],
                 gateway="sip:127.0.0.60:5070;transport=tcp", certs=certdir)
    k.check()    # kamailio -c -f FILE must accept the config
    k.start()    # kamailio -f FILE -DD -E -m 64 -M 8 -P PIDFILE -Y RUNDIR, stopped by PID
    ...
    k.stop()

Known facts (see /work/shared/PEERS.md): dns=no and rev_dns=no with IP next hops so it
never resolves; presence subscriptions in memory (subs_db_mode 0: SQLite locked up);
presence_xml force_active 1 so watchers need no authorisation; record_route() for
SUBSCRIBE so in-dialog NOTIFYs come back through it. Its TLS can crash under OpenSSL 3
(kamailio issue #3791): keep TLS runs small.
"""
import os
import re
import signal
import socket
import sqlite3
import subprocess
import time

KAMAILIO = "/usr/sbin/kamailio"
MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules"
SCHEMA = "/usr/share/kamailio/db_sqlite"
LOADED = ["tm", "tmx", "sl", "rr", "pv", "maxfwd", "usrloc", "registrar", "textops",
          "siputils", "xlog", "sanity", "ctl", "tls", "db_sqlite", "presence", "presence_xml"]

CONFIG = r"""#!KAMAILIO
# Written by tests/system/kamailio.py for one test run.
debug={debug}
log_stderror=yes
log_prefix="{{$mt $rm $ci}} "
children=2
tcp_children=2
dns=no
rev_dns=no
auto_aliases=no
dns_try_naptr=no
use_dns_cache=no
listen=udp:{ip}:{port}
listen=tcp:{ip}:{port}
listen=tls:{ip}:{tls_port}
alias="{domain}"
enable_tls=yes
tcp_connection_lifetime=3605
tcp_accept_no_cl=no
mpath="{modules}"

{loadmodules}

modparam("ctl", "binrpc", "unix:{rundir}/kamailio_ctl")
modparam("tls", "config", "{tls_cfg}")
modparam("usrloc", "db_mode", 0)
modparam("registrar", "max_expires", 3600)
modparam("rr", "enable_full_lr", 1)
modparam("tm", "fr_timer", {fr_timer})
modparam("presence", "db_url", "sqlite://{db}")
modparam("presence", "subs_db_mode", 0)
modparam("presence", "db_update_period", 0)
modparam("presence_xml", "db_url", "sqlite://{db}")
modparam("presence_xml", "force_active", 1)
modparam("presence", "max_expires", {presence_max_expires})

request_route {{
	if (!mf_process_maxfwd_header("10")) {{
		sl_send_reply("483", "Too Many Hops");
		exit;
	}}
	if (!sanity_check("17895", "7")) {{
		xlog("L_WARN", "sanity check failed from $si:$sp\n");
		exit;
	}}
	if (has_totag()) {{
		if (loose_route()) {{
			if (!t_relay()) sl_reply_error();
			exit;
		}}
		if (is_method("ACK")) {{
			if (t_check_trans()) t_relay();
			exit;
		}}
		if (is_method("SUBSCRIBE") && uri == myself) {{
			route(PRESENCE);
		}}
		sl_send_reply("404", "Not here");
		exit;
	}}
	if (is_method("CANCEL")) {{
		if (t_check_trans()) t_relay();
		exit;
	}}
	t_check_trans();
	if (is_method("PUBLISH") && $rd =~ "{partner_re}") {{
		# the gateway publishing a partner user's presence (RFC 3903, MAPPING D9)
		route(PRESENCE);
	}}
	if ($rd =~ "{partner_re}") {{
		# a partner domain: the XMPP gateway serves it
		if (is_method("SUBSCRIBE")) record_route();
		$du = "{gateway}";
		xlog("L_INFO", "to gateway: $rm $ru\n");
		if (!t_relay()) sl_reply_error();
		exit;
	}}
	if (is_method("REGISTER")) {{
		if (!save("location")) sl_reply_error();
		exit;
	}}
	if (is_method("SUBSCRIBE") && $rU =~ "^refuse[0-9][0-9][0-9]$") {{
		# test users whose subscriptions the pool answers with a fixed failure
		$var(code) = $(rU{{s.substr,6,3}}{{s.int}});
		sl_send_reply("$var(code)", "Refused by test");
		exit;
	}}
	if (is_method("PUBLISH|SUBSCRIBE")) {{
		route(PRESENCE);
	}}
	if (!lookup("location")) {{
		sl_send_reply("404", "Not Found");
		exit;
	}}
	if (!t_relay()) sl_reply_error();
}}

route[PRESENCE] {{
	if (!t_newtran()) {{
		sl_reply_error();
		exit;
	}}
	if (is_method("PUBLISH")) {{
		handle_publish();
	}} else {{
		handle_subscribe();
	}}
	exit;
}}
"""

TLS_CFG = """[server:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
private_key = {key}
certificate = {cert}
ca_list = {ca}

[client:default]
method = TLSv1.2+
verify_certificate = {client_verify}
require_certificate = {client_verify}
ca_list = {ca}
"""


class Kamailio:
    """One Kamailio instance with its own config, run directory, database and log."""

    def __init__(self, workdir, ip="127.0.0.65", port=5060, tls_port=5061, domain="corp.test",
                 partners=("partner.test",), gateway="sip:127.0.0.60:5060", certs=None,
                 cert_name="pool.corp.test", debug=2, fr_timer=8000, client_verify=True,
                 presence_max_expires=3600):
        self.workdir = str(workdir)
        self.ip = ip
        self.port = port
        self.tls_port = tls_port
        self.domain = domain
        self.rundir = os.path.join(self.workdir, "kamailio-run-%s" % ip)
        os.makedirs(self.rundir, exist_ok=True)
        self.cfg = os.path.join(self.workdir, "kamailio-%s.cfg" % ip)
        self.tls_cfg = os.path.join(self.workdir, "kamailio-%s-tls.cfg" % ip)
        self.db = os.path.join(self.workdir, "kamailio-%s.sqlite" % ip)
        self.log = os.path.join(self.workdir, "kamailio-%s.log" % ip)
        self.pidfile = os.path.join(self.rundir, "kamailio.pid")
        self.proc = None
        self.exit_code = None
        partner_re = "^(%s)$" % "|".join(re.escape(p) for p in partners)
        loadmodules = "\n".join('loadmodule "%s.so"' % m for m in LOADED)
        with open(self.cfg, "w") as f:
            f.write(CONFIG.format(debug=debug, ip=ip, port=port, tls_port=tls_port,
                                  domain=domain, modules=MODULES, loadmodules=loadmodules,
                                  rundir=self.rundir, tls_cfg=self.tls_cfg, db=self.db,
                                  partner_re=partner_re.replace("\\", "\\\\"),
                                  gateway=gateway, fr_timer=fr_timer,
                                  presence_max_expires=presence_max_expires))
        with open(self.tls_cfg, "w") as f:
            f.write(TLS_CFG.format(key=os.path.join(certs, cert_name + ".key"),
                                   cert=os.path.join(certs, cert_name + ".pem"),
                                   ca=os.path.join(certs, "ca.pem"),
                                   client_verify="yes" if client_verify else "no"))
        self._make_db()

    def _make_db(self):
        if os.path.exists(self.db):
            os.unlink(self.db)
        con = sqlite3.connect(self.db)
        for name in ("standard-create.sql", "presence-create.sql"):
            with open(os.path.join(SCHEMA, name)) as f:
                con.executescript(f.read())
        con.commit()
        con.close()

    def check(self):
        """kamailio -c: raises AssertionError with its output if the config is refused."""
        r = subprocess.run([KAMAILIO, "-c", "-f", self.cfg], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0, "kamailio -c refused %s:\n%s%s" % (self.cfg, r.stdout,
                                                                       r.stderr)
        return r.stdout + r.stderr

    def start(self, timeout=10.0):
        logf = open(self.log, "a")
        self.proc = subprocess.Popen(
            [KAMAILIO, "-f", self.cfg, "-DD", "-E", "-m", "64", "-M", "8", "-P", self.pidfile,
             "-Y", self.rundir],
            stdout=logf, stderr=subprocess.STDOUT, cwd=self.workdir, start_new_session=True)
        logf.close()
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()  # not ready: the caller never gets it to stop
            raise
        return self

    def wait_ready(self, timeout=10.0):
        """Until it answers an OPTIONS over UDP (any status)."""
        deadline = time.monotonic() + timeout
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((self.ip, 0))
        s.settimeout(0.2)
        port = s.getsockname()[1]
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError("kamailio exited with %s:\n%s" % (
                        self.proc.returncode, self.text()[-3000:]))
                msg = ("OPTIONS sip:ping@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s:%d;branch=z9hG4bK%d\r\n"
                       "From: <sip:probe@%s>;tag=p\r\nTo: <sip:ping@%s>\r\nCall-ID: ready-%d\r\n"
                       "CSeq: 1 OPTIONS\r\nMax-Forwards: 5\r\nContent-Length: 0\r\n\r\n" % (
                           self.domain, self.ip, port, time.monotonic_ns(), self.domain,
                           self.domain, time.monotonic_ns()))
                s.sendto(msg.encode(), (self.ip, self.port))
                try:
                    data = s.recv(65535)
                    if data.startswith(b"SIP/2.0 "):
                        return
                except socket.timeout:
                    pass
            raise AssertionError("kamailio not ready in %.1fs:\n%s" % (timeout,
                                                                        self.text()[-3000:]))
        finally:
            s.close()

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=10.0):
        """SIGTERM to the main process (it stops its children), SIGKILL after timeout."""
        if not self.proc:
            return None
        # Kamailio runs in its own process group (start_new_session): signal the group, so
        # its worker processes go too even if the main one has to be killed.
        pgid = self.proc.pid
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        try:
            os.killpg(pgid, signal.SIGKILL)  # any worker left behind
        except (ProcessLookupError, PermissionError):
            pass
        self.exit_code = self.proc.returncode
        return self.exit_code

    def text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def crashed(self):
        """True if the log shows a crash (e.g. kamailio issue #3791 in its TLS)."""
        t = self.text()
        return bool(re.search(r"signal 11|SIGSEGV|segfault|core dumped|child process \d+ "
                              r"exited by a signal", t))
