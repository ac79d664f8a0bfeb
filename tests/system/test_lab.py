"""The deployment kit, proved (issue 9): Parley in four network namespaces -- internet
(Prosody partners, their clients, public DNS), dmz (parley-proxy), internal (the gateway
host: parley-gateway) and frontend (the pool host: Kamailio, a SIP UA) -- behind
deploy/nftables/edge.nft and internal.nft.
The lab itself is deploy/lab.py (also `make lab`); each test here is one claim it proves.
A new claim (presence, say) is one more test calling one more Lab.prove_* method.

Also checked here, without namespaces: the systemd units (systemd-analyze verify), the
sample configs against the daemons' --help-config, the nftables files, the certificate kit."""
import os
import re
import shutil
import subprocess
import sys

import pytest

import harness

sys.path.insert(0, os.path.join(harness.ROOT, "deploy"))
import lab as labmod  # noqa: E402

DEPLOY = os.path.join(harness.ROOT, "deploy")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """One lab for the module: building it takes a few seconds, each claim less."""
    if os.geteuid() != 0:
        pytest.fail("the lab needs root (network namespaces, nftables)")
    lb = labmod.Lab(tmp_path_factory.mktemp("lab"))
    findings = []
    try:
        lb.start()
        yield lb
    finally:
        findings = lb.stop()
    assert not findings, "\n".join(findings)
    assert not [n for n in lb.namespaces if n.name in _netns_names()], "namespaces left"


def _netns_names():
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    return {line.split()[0] for line in r.stdout.splitlines() if line.strip()}


def test_im_both_ways(lab):
    lab.prove_im_both_ways()


def test_presence(lab):
    lab.prove_presence()


def test_outbound_to_partner_on_unusual_port(lab):
    lab.prove_odd_port_partner()


def test_edge_cannot_connect_into_internal_network(lab):
    lab.prove_edge_cannot_connect_inside()


def test_internal_rules_hold_without_edge_rules(lab):
    lab.prove_internal_drops_without_edge_rules()


def test_sip_with_pool_crosses_gateway_host_rules(lab):
    lab.prove_sip_crosses_gateway_rules()


def test_only_sip_between_pool_host_and_gateway_host(lab):
    lab.prove_frontend_gateway_undocumented()


def test_internet_cannot_reach_gateway_or_link(lab):
    lab.prove_internet_cannot_reach_inside()


def test_only_documented_ports_answer(lab):
    lab.prove_only_documented_ports()


def test_ipv6_only_s2s_reaches_the_edge(lab):
    lab.prove_ipv6()


def test_dmz_and_gateway_host_do_not_forward(lab):
    for ns in (lab.dmz, lab.internal):
        assert ns.sysctl("net.ipv4.ip_forward") == "0"
        assert ns.sysctl("net.ipv6.conf.all.forwarding") == "0"


def test_metrics_on_loopback(lab):
    lab.prove_monitoring()


def test_certificate_renewal_and_reload(lab):
    lab.prove_certificate_renewal()


def test_firewall_reload_is_atomic_and_repeatable(lab):
    """Loading a ruleset again replaces its table (counters restart), nothing else."""
    lab.dmz.nft_load(lab.edge_nft)
    out = lab.dmz.run("nft", "list", "tables").stdout.split("\n")
    assert [t for t in out if t.strip()] == ["table inet parley_edge"], out
    lab.prove_im_both_ways()  # established streams and the link survive a reload


# --- without namespaces ------------------------------------------------------------------


def _help_config(binary):
    r = subprocess.run([os.path.join(harness.BIN, binary), "--help-config"],
                       capture_output=True, text=True, check=True)
    keys = set()
    for line in r.stdout.splitlines()[1:]:
        f = line.split()
        if f[1] == '"*"':  # a named section: partner "*", user "*"
            if f[2].startswith("("):
                continue
            keys.add((f[0], f[2]))
        else:
            keys.add((f[0], f[1]))
    return keys


def _sample_keys(path):
    """(section, key) of every setting in a sample, set or commented out ("#key = ...")."""
    keys, section = set(), None
    with open(path) as f:
        for line in f:
            m = re.match(r"\s*\[([a-z0-9_]+)(?:\s+\"[^\"]*\")?\]", line)
            if m:
                section = m.group(1)
                continue
            m = re.match(r"\s*#?\s*([a-z_0-9]+)\s*=", line)
            if m and section:
                keys.add((section, m.group(1)))
    return keys


@pytest.mark.parametrize("binary,sample", [("parley-proxy", "proxy.conf"),
                                           ("parley-gateway", "gateway.conf")])
def test_sample_config_is_complete_and_valid(binary, sample):
    path = os.path.join(DEPLOY, "conf", sample)
    missing = _help_config(binary) - _sample_keys(path)
    assert not missing, "%s lacks %s: run deploy/conf/mksamples.py" % (sample, sorted(missing))
    r = subprocess.run([os.path.join(harness.BIN, binary), "-c", path, "--check-config"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, os.path.join(DEPLOY, "conf", "mksamples.py"), "--check",
                        "--bin", harness.BIN], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_systemd_units_verify(tmp_path):
    assert shutil.which("systemd-analyze"), "systemd-analyze missing (deploy/install-deps.sh)"
    units = []
    for name in ("parley-proxy.service", "parley-proxy.socket", "parley-gateway.service"):
        with open(os.path.join(DEPLOY, "systemd", name)) as f:
            text = f.read().replace("@SBINDIR@", harness.BIN).replace("@DOCDIR@", "/tmp")
        (tmp_path / name).write_text(text)
        units.append(str(tmp_path / name))
    r = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True, text=True,
                       cwd=tmp_path)
    assert r.returncode == 0 and not r.stderr.strip() and not r.stdout.strip(), (
        r.stdout + r.stderr)
    for svc in units[0], units[2]:
        r = subprocess.run(["systemd-analyze", "security", "--offline=true", svc],
                           capture_output=True, text=True, cwd=tmp_path)
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout)
        assert m and float(m.group(1)) <= 2.0, r.stdout[-2000:]


def test_certificate_kit(tmp_path):
    d = str(tmp_path / "kit")
    mk = os.path.join(DEPLOY, "mkcerts.sh")
    subprocess.run(["sh", mk, "--kit", "--domain", "corp.example", "--domain", "other.example",
                    d], check=True, capture_output=True)

    def ext(name):
        return subprocess.run(["openssl", "x509", "-in", os.path.join(d, name + ".pem"),
                               "-noout", "-ext", "subjectAltName,extendedKeyUsage"],
                              capture_output=True, text=True, check=True).stdout

    edge = ext("edge")
    assert "DNS:corp.example" in edge and "DNS:other.example" in edge
    assert "DNS:edge.corp.example" in edge and "TLS Web Server Authentication" in edge
    assert "TLS Web Server Authentication" in ext("link-edge")
    assert "TLS Web Client Authentication" in ext("link-gateway")
    assert "Server" not in ext("link-gateway")
    assert "DNS:gw.corp.example" in ext("sip")
    for name in ("edge", "link-edge", "link-gateway", "sip"):
        subprocess.run(["openssl", "verify", "-CAfile", os.path.join(d, "ca.pem"),
                        os.path.join(d, name + ".pem")], check=True, capture_output=True)
        assert os.stat(os.path.join(d, name + ".key")).st_mode & 0o077 == 0
    before = open(os.path.join(d, "sip.pem")).read()
    subprocess.run(["sh", mk, "--kit", d], check=True, capture_output=True)
    assert open(os.path.join(d, "sip.pem")).read() == before  # idempotent
    subprocess.run(["sh", mk, "--kit", "--renew", d], check=True, capture_output=True)
    assert open(os.path.join(d, "sip.pem")).read() != before  # renewed
    # the tests' command line still works exactly as before
    harness.make_certs(tmp_path / "plain", "a.test", "b.test")
    harness.make_certs(tmp_path / "plain", "a.test", ca="rogue")
    assert sorted(os.listdir(tmp_path / "plain")) == [
        ".mkcerts.lock", "a.test.key", "a.test.pem", "b.test.key", "b.test.pem", "ca.key",
        "ca.pem", "rogue-a.test.key", "rogue-a.test.pem", "rogue-ca.key", "rogue-ca.pem"]
