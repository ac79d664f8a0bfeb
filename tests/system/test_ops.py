"""Operations against the running daemons: every parleyctl verb (tables and --json) on the
control sockets of parley-proxy and parley-gateway, the sockets' mode, the Prometheus
endpoints scraped over HTTP and parsed line by line with the values this test caused,
reload through parleyctl keeping the link up, and drain stopping a daemon within its bound."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

import harness
from harness import Daemon, free_port, make_certs, wait_for
from linkconf import gateway_conf, policy_conf, proxy_conf, read_sink, s2s_conf
from s2sraw import S2SClient

PX_HOST = "127.0.0.21"  # proxy: link, S2S and metrics
GW_HOST = "127.0.0.22"  # gateway: metrics
SOURCE = 40             # stanza frames the proxy's test source sends to the gateway
K = 7                   # stanzas a partner sends over S2S
PARLEYCTL = os.path.join(harness.BIN, "parleyctl")


def control(sock, mport):
    return "\n[control]\nsocket = %s\nmetrics = %s:%d\n" % (sock, mport[0], mport[1])


class Pair:
    """parley-proxy (S2S on, test source on) and parley-gateway (test sink), each with a
    control socket and a metrics endpoint."""

    def __init__(self, workdir, certs, source=SOURCE):
        self.dir = workdir
        # Unix socket paths must stay short (sun_path): a directory of our own under /tmp.
        self.sockdir = tempfile.mkdtemp(prefix="pops")
        self.px_sock = os.path.join(self.sockdir, "px.sock")
        self.gw_sock = os.path.join(self.sockdir, "gw.sock")
        self.px_metrics = (PX_HOST, free_port(PX_HOST))
        self.gw_metrics = (GW_HOST, free_port(GW_HOST))
        link = free_port(PX_HOST)
        self.s2s_port = free_port(PX_HOST)
        self.sink = os.path.join(str(workdir), "sink.txt")
        self.px = Daemon("parley-proxy", workdir, "proxy",
                         proxy_conf(certs, link, host=PX_HOST, source_frames=source,
                                    extra=control(self.px_sock, self.px_metrics)) +
                         s2s_conf(certs, "%s:%d" % (PX_HOST, self.s2s_port)))
        self.gw = Daemon("parley-gateway", workdir, "gateway",
                         gateway_conf(certs, link, edge_host=PX_HOST, sink_file=self.sink,
                                      extra=control(self.gw_sock, self.gw_metrics),
                                      policy=policy_conf()))
        self.px.start()
        self.px.wait_log(r"event=link_listen")
        self.gw.start()
        self.px.wait_log(r"event=policy_applied")
        self.px.wait_log(r"event=ctl_listen")
        self.gw.wait_log(r"event=ctl_listen")
        self.px.wait_log(r"event=metrics_listen")
        self.gw.wait_log(r"event=metrics_listen")

    def stop(self):
        findings = harness.stop_daemons((self.gw, self.px))
        shutil.rmtree(self.sockdir, ignore_errors=True)
        return findings


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("opscerts")
    make_certs(d, "proxy.link.test", "gateway.link.test", "corp.test", "partner.test")
    return str(d)


@pytest.fixture(scope="module")
def pair(tmp_path_factory, certs):
    """One pair for the read-only verbs, with SOURCE link frames and K S2S stanzas sent."""
    p = Pair(tmp_path_factory.mktemp("ops"), certs)
    try:
        c = S2SClient(PX_HOST, p.s2s_port, "corp.test", "partner.test", certs=certs,
                      cert_name="partner.test")
        c.authenticate()
        for i in range(K):
            c.message("bob@corp.test", "alice@partner.test/pc", "hello %d" % i)
        wait_for(lambda: len(read_sink(p.sink)) >= SOURCE + K, 20, "all stanzas at the sink")
        p.s2s = c
        yield p
        c.close()
    finally:
        findings = p.stop()
    assert not findings, "\n".join(findings)


def ctl(sock, *args, as_json=False, check=True):
    argv = [PARLEYCTL, "-s", sock] + (["--json"] if as_json else []) + list(args)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    if check:
        assert r.returncode == 0, "parleyctl %s: rc=%d\n%s%s" % (args, r.returncode, r.stdout,
                                                                  r.stderr)
    return r


def ctl_json(sock, *args):
    r = ctl(sock, *args, as_json=True)
    doc = json.loads(r.stdout)
    assert doc["ok"] is True and doc["cmd"] == args[0], doc
    return doc["result"]


# ---- Prometheus text format ----

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\\\|\\"|\\n)*"'
VALUE = r"(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]Inf|NaN)"
SAMPLE = re.compile(r"^(%s)(?:\{((?:%s)(?:,%s)*)?\})? (%s)(?: -?\d+)?$" % (NAME, LABEL, LABEL, VALUE))
HELP = re.compile(r"^# HELP (%s) (?:[^\\\n]|\\\\|\\n)*$" % NAME)
TYPE = re.compile(r"^# TYPE (%s) (counter|gauge|histogram|summary|untyped)$" % NAME)


def parse_exposition(text):
    """Checks every line and returns {(name, frozenset(labels)): value} and {family: type}."""
    assert text.endswith("\n")
    samples, types = {}, {}
    for n, line in enumerate(text[:-1].split("\n"), 1):
        if line.startswith("#"):
            m = HELP.match(line) or TYPE.match(line)
            assert m, "line %d is not valid exposition format: %r" % (n, line)
            if line.startswith("# TYPE"):
                assert m.group(1) not in types, "second TYPE for %s" % m.group(1)
                types[m.group(1)] = m.group(2)
            continue
        m = SAMPLE.match(line)
        assert m, "line %d is not valid exposition format: %r" % (n, line)
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        fam = name
        for suf in ("_bucket", "_sum", "_count"):
            if name.endswith(suf) and types.get(name[: -len(suf)]) == "histogram":
                fam = name[: -len(suf)]
        assert fam in types, "line %d: sample before its TYPE: %r" % (n, line)
        lab = frozenset(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', labels))
        key = (name, lab)
        assert key not in samples, "line %d: duplicate sample %r" % (n, line)
        samples[key] = float(value)
        if types[fam] == "counter":
            assert samples[key] >= 0
    return samples, types


def val(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


def check_histogram(samples, name):
    """Buckets are cumulative, end with +Inf, and +Inf equals _count. Returns _count."""
    buckets = sorted(((float(dict(k[1])["le"]), v) for k, v in samples.items()
                      if k[0] == name + "_bucket"), key=lambda x: x[0])
    assert buckets and buckets[-1][0] == float("inf")
    assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:]))
    count = val(samples, name + "_count")
    assert buckets[-1][1] == count
    return count


def scrape(hostport, path="/metrics"):
    with urllib.request.urlopen("http://%s:%d%s" % (hostport[0], hostport[1], path),
                                timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return r.read().decode()


# ---- tests ----

def test_sockets_are_owner_and_group_only(pair):
    for path in (pair.px_sock, pair.gw_sock):
        st = os.stat(path)
        import stat as S
        assert S.S_ISSOCK(st.st_mode)
        assert st.st_mode & 0o777 == 0o660, oct(st.st_mode)


def test_status(pair):
    px = ctl_json(pair.px_sock, "status")
    assert px["daemon"] == "parley-proxy" and px["node_id"] == "edge1"
    assert px["pid"] == pair.px.pid and px["state"] == "running"
    assert px["gateways_up"] == 1 and px["active_gateway"] == "gw1"
    assert px["policy_generation"] >= 1 and px["s2s_in_streams"] == 1
    gw = ctl_json(pair.gw_sock, "status")
    assert gw["daemon"] == "parley-gateway" and gw["node_id"] == "gw1"
    assert gw["pid"] == pair.gw.pid and gw["edges"] == 1 and gw["edges_up"] == 1
    assert gw["policy_generation"] == px["policy_generation"]
    out = ctl(pair.px_sock, "status").stdout
    assert re.search(r"^daemon\s+parley-proxy$", out, re.M), out
    assert re.search(r"^active_gateway\s+gw1$", out, re.M), out
    out = ctl(pair.gw_sock, "status").stdout
    assert re.search(r"^edges_up\s+1$", out, re.M), out


def test_link(pair):
    px = ctl_json(pair.px_sock, "link")
    assert px["role"] == "edge" and px["window"] == 32768
    assert [(p["node_id"], p["state"]) for p in px["peers"]] == [("gw1", "active")]
    assert px["frames_out"] >= SOURCE + K and px["frames_in"] >= 1
    gw = ctl_json(pair.gw_sock, "link")
    assert gw["role"] == "gateway"
    assert len(gw["peers"]) == 1 and gw["peers"][0]["state"] == "up"
    assert gw["peers"][0]["edge"].startswith(PX_HOST + ":")
    out = ctl(pair.px_sock, "link").stdout
    assert re.search(r"^peers:\n\s+NODE ID\s+PRIORITY\s+STATE.*\n\s+gw1\s+10\s+active", out,
                     re.M), out
    out = ctl(pair.gw_sock, "link").stdout
    assert re.search(r"^\s+EDGE\s+NODE ID\s+STATE", out, re.M), out
    assert re.search(r"^\s+%s:\d+\s+\S+\s+up\s" % re.escape(PX_HOST), out, re.M), out


def test_sessions(pair):
    s = ctl_json(pair.px_sock, "sessions")
    inbound = [x for x in s if x["dir"] == "in"]
    assert len(inbound) == 1, s
    x = inbound[0]
    assert x["peer"] == "partner.test" and x["local"] == "corp.test"
    assert x["addr"] == "127.0.0.1" or x["addr"].startswith("127.")
    assert x["auth"] == "sasl-external" and x["tls"] == "TLSv1.3" and x["cert"] == "valid"
    assert x["state"] == "authenticated" and x["stanzas"] == K
    assert x["direct_tls"] is False and x["age_s"] >= 0
    out = ctl(pair.px_sock, "sessions").stdout
    lines = out.splitlines()
    assert re.match(r"ID\s+DIR\s+LOCAL\s+PEER\s+ADDR\s+STATE\s+AUTH\s+TLS\s+CERT", lines[0]), out
    assert re.search(r"\bin\s+corp\.test\s+partner\.test\s+\S+\s+authenticated\s+"
                     r"sasl-external\s+TLSv1\.3\s+valid\s+no\s+no\s+\d+\s+%d\s+0$" % K, out,
                     re.M), out
    # the gateway has no S2S: the verb is not registered there
    r = ctl(pair.gw_sock, "sessions", check=False)
    assert r.returncode == 1 and 'unknown command "sessions"' in r.stderr


def test_metrics_over_http(pair):
    text = scrape(pair.px_metrics)
    s, types = parse_exposition(text)
    assert types["parley_link_frames_total"] == "counter"
    assert types["parley_s2s_out_delivery_seconds"] == "histogram"
    # every link frame the proxy sent is a source frame or a partner's stanza: no resends
    assert val(s, "parley_link_frames_total", dir="out") == SOURCE + K
    assert val(s, "parley_link_frames_total", dir="in") >= 1  # the policy
    assert val(s, "parley_link_duplicates_total") == 0
    assert val(s, "parley_link_peers_up") == 1
    assert val(s, "parley_link_window_depth", peer="gateways") == 0
    assert val(s, "parley_s2s_connections_total", dir="in") == 1
    assert val(s, "parley_s2s_authenticated_total", dir="in", auth="sasl-external") == 1
    assert val(s, "parley_s2s_connections", dir="in", auth="sasl-external") == 1
    assert val(s, "parley_s2s_connections", dir="in", auth="dialback") == 0
    assert val(s, "parley_s2s_stanzas_total", dir="in", kind="message") == K
    assert val(s, "parley_s2s_stanzas_total", dir="in", kind="iq") == 0
    assert val(s, "parley_policy_generation") >= 1
    check_histogram(s, "parley_s2s_out_delivery_seconds")

    text = scrape(pair.gw_metrics)
    g, types = parse_exposition(text)
    assert val(g, "parley_link_frames_total", dir="in") == SOURCE + K
    assert val(g, "parley_link_received_total", kind="message") == SOURCE + K
    assert val(g, "parley_link_received_total", kind="presence") == 0
    assert val(g, "parley_link_duplicates_total") == 0
    assert val(g, "parley_link_peers_up") == 1
    edge = [k for k in g if k[0] == "parley_link_window_depth"]
    assert len(edge) == 1 and dict(edge[0][1])["edge"].startswith(PX_HOST + ":")
    # the edge stamps partner stanzas (not the test source's frames): K delays observed
    assert check_histogram(g, "parley_link_stanza_delay_seconds") == K
    assert val(g, "parley_link_stanza_delay_seconds_sum") < 10 * K


def test_metrics_http_errors(pair):
    with pytest.raises(urllib.error.HTTPError) as e:
        scrape(pair.px_metrics, "/")
    assert e.value.code == 404
    req = urllib.request.Request("http://%s:%d/metrics" % pair.gw_metrics, data=b"x",
                                 method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 405
    assert pair.px.alive() and pair.gw.alive()


def test_metrics_verb(pair):
    for sock in (pair.px_sock, pair.gw_sock):
        out = ctl(sock, "metrics").stdout
        s, _ = parse_exposition(out)
        assert ("parley_link_frames_total", frozenset({("dir", "in")})) in s
        doc = ctl_json(sock, "metrics")
        parse_exposition(doc["text"])


def test_help_and_unknown_verbs(pair):
    verbs = [v["verb"] for v in ctl_json(pair.px_sock, "help")]
    assert {"status", "link", "sessions", "reload", "drain", "metrics", "help"} <= set(verbs)
    verbs = [v["verb"] for v in ctl_json(pair.gw_sock, "help")]
    assert {"status", "link", "reload", "drain", "metrics", "help"} <= set(verbs)
    r = ctl(pair.px_sock, "bogus", "x", check=False)
    assert r.returncode == 1 and 'unknown command "bogus"' in r.stderr and r.stdout == ""
    r = ctl(pair.gw_sock, "bogus", as_json=True, check=False)
    doc = json.loads(r.stdout)
    assert r.returncode == 1 and doc["ok"] is False and "unknown command" in doc["error"]
    # the client's own usage errors
    r = subprocess.run([PARLEYCTL], capture_output=True, text=True)
    assert r.returncode == 2 and "usage" in r.stderr
    r = subprocess.run([PARLEYCTL, "-s", os.path.join(pair.sockdir, "none.sock"), "status"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "cannot connect" in r.stderr


def test_oversized_request_is_refused(pair):
    import socket
    with socket.socket(socket.AF_UNIX) as c:
        c.settimeout(10)
        c.connect(pair.px_sock)
        c.sendall(b"status " + b"a" * 5000 + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = c.recv(4096)
            if not chunk:
                break
            data += chunk
        doc = json.loads(data)
        assert doc["ok"] is False and "too long" in doc["error"]
    assert pair.px.alive()


def test_reload_keeps_the_link_up(pair):
    before_px = ctl_json(pair.px_sock, "link")["peers"][0]
    before_gw = ctl_json(pair.gw_sock, "link")["peers"][0]
    gen = ctl_json(pair.gw_sock, "status")["policy_generation"]
    r = ctl_json(pair.px_sock, "reload")
    assert r["reloaded"] is True
    out = ctl(pair.gw_sock, "reload").stdout
    assert re.search(r"^reloaded\s+yes$", out, re.M), out
    pair.px.wait_log(r"event=reload config=", count=1)
    pair.gw.wait_log(r"event=reload config=", count=1)
    time.sleep(0.5)
    after_px = ctl_json(pair.px_sock, "link")["peers"][0]
    after_gw = ctl_json(pair.gw_sock, "link")["peers"][0]
    assert after_px["state"] == "active" and after_gw["state"] == "up"
    assert after_px["session"] == before_px["session"]
    assert after_px["connects"] == before_px["connects"]
    assert after_gw["connects"] == before_gw["connects"]
    assert pair.px.count(r"event=link_down") == 0 and pair.gw.count(r"event=link_down") == 0
    assert ctl_json(pair.gw_sock, "status")["policy_generation"] >= gen
    # the S2S stream is still there too
    assert len([x for x in ctl_json(pair.px_sock, "sessions") if x["dir"] == "in"]) == 1

    # an invalid config is refused with file:line and the daemon keeps running
    with open(pair.px.conf) as f:
        good = f.read()
    try:
        with open(pair.px.conf, "a") as f:
            f.write("this is not ini\n")
        r = ctl(pair.px_sock, "reload", check=False)
        assert r.returncode == 1
        assert re.search(r"reload: .*proxy\.conf:\d+: ", r.stderr), r.stderr
        r = ctl(pair.px_sock, "reload", as_json=True, check=False)
        assert json.loads(r.stdout)["ok"] is False
    finally:
        with open(pair.px.conf, "w") as f:
            f.write(good)
    assert ctl_json(pair.px_sock, "status")["state"] == "running"


def test_drain_stops_within_the_bound(tmp_path, certs):
    p = Pair(tmp_path, certs, source=0)
    try:
        p.px.wait_log(r"event=link_up")
        t0 = time.monotonic()
        r = ctl_json(p.gw_sock, "drain")
        assert r["draining"] is True and r["deadline_ms"] == 10000
        p.gw.proc.wait(timeout=11)
        assert p.gw.proc.returncode == 0
        assert not os.path.exists(p.gw_sock)
        out = ctl(p.px_sock, "drain").stdout
        assert re.search(r"^draining\s+yes$", out, re.M), out
        p.px.proc.wait(timeout=11)
        assert p.px.proc.returncode == 0
        assert time.monotonic() - t0 < 10
        assert not os.path.exists(p.px_sock)
        assert "event=ctl_drain" in p.px.text() and "event=stopped" in p.px.text()
    finally:
        findings = p.stop()
    assert not findings, "\n".join(findings)


def test_bad_control_settings_are_refused(tmp_path, certs):
    d = Daemon("parley-proxy", tmp_path, "proxy",
               proxy_conf(certs, free_port(PX_HOST), host=PX_HOST,
                          extra="\n[control]\nsocket = \nmetrics = localhost:1\n"))
    r = subprocess.run([d.binary, "-c", d.conf, "--check-config"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 1 and "[control] metrics must be" in r.stderr, r.stderr
    d = Daemon("parley-gateway", tmp_path, "gateway",
               gateway_conf(certs, 1, extra="\n[control]\nsocket = relative.sock\n"))
    r = subprocess.run([d.binary, "-c", d.conf, "--check-config"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 1 and "[control] socket must be an absolute path" in r.stderr
