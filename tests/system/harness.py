"""Shared helpers for Parley's system tests: start the real binaries with inline configs,
watch their logs, stop them by PID, make certificates, relay and cut TCP connections."""
import os
import re
import signal
import socket
import subprocess
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("PARLEY_BIN", os.path.join(ROOT, "bin"))
PYGEN = os.environ.get("PARLEY_PY", os.path.join(ROOT, "build", "release", "py"))


def wait_for(pred, timeout, what):
    """Polls pred every 50 ms until it is true; AssertionError naming `what` after timeout s."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def free_port(host="127.0.0.1"):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, 0))
        return s.getsockname()[1]


def listening_socket(host, port=0):
    """A bound, listening TCP socket (for socket activation); returns (socket, port)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(128)
    return s, s.getsockname()[1]


def make_certs(directory, *names, ca=None, eku=None):
    """Runs deploy/mkcerts.sh; returns the directory."""
    cmd = ["bash", os.path.join(ROOT, "deploy", "mkcerts.sh")]
    if ca:
        cmd += ["--ca", ca]
    if eku:
        cmd += ["--eku", eku]
    cmd += [str(directory), *names]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return str(directory)


class Daemon:
    """One parley-proxy or parley-gateway process with its own config and log file."""

    def __init__(self, binary, workdir, name, config_text):
        self.binary = os.path.join(BIN, binary)
        self.workdir = str(workdir)
        self.name = name
        self.conf = os.path.join(self.workdir, name + ".conf")
        self.log = os.path.join(self.workdir, name + ".log")
        if binary == "parley-gateway" and "[sip]" in config_text and "[state]" not in config_text:
            # the translator's store lives with the test: a restart in the same test finds it
            config_text += "\n[state]\npath = %s\n" % os.path.join(self.workdir, name + ".db")
        with open(self.conf, "w") as f:
            f.write(config_text)
        self.proc = None
        self.exit_code = None

    def start(self, listen_socks=()):
        """listen_socks: listening sockets handed over as systemd socket activation does
        (fds 3.., LISTEN_FDS, LISTEN_PID), so they outlive a killed daemon."""
        env = dict(os.environ)
        logf = open(self.log, "a")
        argv = [self.binary, "-c", self.conf]
        fds = [s.fileno() for s in listen_socks]
        if fds:
            moves = " ".join("%d<&%d" % (3 + i, fd) for i, fd in enumerate(fds))
            argv = ["/bin/bash", "-c", 'exec %s; LISTEN_PID=$$ LISTEN_FDS=%d exec "$0" "$@"'
                    % (moves, len(fds))] + argv
        self.proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, env=env,
                                     cwd=self.workdir, pass_fds=fds)
        logf.close()
        return self

    @property
    def pid(self):
        return self.proc.pid

    def text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def count(self, pattern):
        return len(re.findall(pattern, self.text()))

    def wait_log(self, pattern, timeout=10.0, count=1):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count(pattern) >= count:
                return re.findall(pattern, self.text())
            if self.proc and self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError("%s: no %r (x%d) within %.1fs; exit=%s; log tail:\n%s" % (
            self.name, pattern, count, timeout,
            self.proc.poll() if self.proc else None, self.text()[-3000:]))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=10.0):
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None:
            return self.exit_code
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.exit_code = self.proc.returncode
        self.proc = None
        return self.exit_code

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None


def sanitizer_findings(text):
    return re.findall(r"(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:)", text)


def sanitizer_report(daemons):
    """One entry (name, first finding, log tail) per daemon whose log shows sanitizer output."""
    out = []
    for d in daemons:
        found = sanitizer_findings(d.text())
        if found:
            out.append("%s: %s\n%s" % (d.name, found[0], d.text()[-4000:]))
    return out


def stop_daemons(daemons):
    """Stops each daemon (by PID); returns sanitizer_report of them."""
    for d in daemons:
        d.stop()
    return sanitizer_report(daemons)


class Relay:
    """A TCP relay between a client and a server whose connections can be cut on demand,
    standing in for a flaky network between the gateway and the edge."""

    def __init__(self, listen_host, target_host, target_port):
        self.target = (target_host, target_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((listen_host, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.pairs = []
        self.lock = threading.Lock()
        self.frozen = False
        self.accepted = 0
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(self.target, timeout=5)
            except OSError:
                c.close()
                continue
            u.settimeout(None)
            with self.lock:
                self.pairs.append((c, u))
                self.accepted += 1
            threading.Thread(target=self._pump, args=(c, u), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c), daemon=True).start()

    def _pump(self, a, b):
        try:
            while True:
                data = a.recv(262144)
                if not data:
                    break
                while self.frozen and not self.closed:
                    time.sleep(0.01)
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        """Resets every current connection (RST, not a clean close)."""
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for s in pair:
                try:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    s.close()
                except OSError:
                    pass
        return len(pairs)

    def close(self):
        self.closed = True
        self.frozen = False
        self.cut()
        self.sock.close()
