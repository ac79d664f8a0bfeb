import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import harness  # noqa: E402


def pytest_configure(config):
    for b in ("parley-proxy", "parley-gateway"):
        path = os.path.join(harness.BIN, b)
        if not os.access(path, os.X_OK):
            raise pytest.UsageError("missing %s: build first (make, or make test)" % path)


@pytest.fixture(scope="session")
def link_certs(tmp_path_factory):
    """A lab CA with both link certificates, a second gateway, a certificate for a name
    nobody pins, and a rogue CA with a gateway certificate that looks right but is untrusted."""
    d = tmp_path_factory.mktemp("linkcerts")
    harness.make_certs(d, "proxy.link.test", "gateway.link.test", "gateway2.link.test",
                       "other.link.test")
    harness.make_certs(d, "gateway.link.test", "proxy.link.test", ca="rogue")
    return str(d)


@pytest.fixture
def daemons():
    """Collects started daemons; stops them by PID at the end and fails on sanitizer output."""
    started = []
    yield started
    findings = harness.stop_daemons(started)
    assert not findings, "\n".join(findings)


@pytest.fixture
def running():
    """Collects started peers (Prosody, Kamailio, dnsmasq, clients, UAs); stops them in
    reverse order at the end."""
    started = []
    yield started
    for p in reversed(started):
        (p.close if hasattr(p, "close") and not hasattr(p, "stop") else p.stop)()
