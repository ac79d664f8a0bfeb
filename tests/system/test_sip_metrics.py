"""SIP transactions by method and status on the gateway's Prometheus endpoint (issue 8 item 7):
parley_sip_transactions_total{side,method,status} and the client transaction duration
histogram, checked against traffic this test causes and counts itself.

parley-proxy and parley-gateway (translating, no test sink) on 127.0.0.55/56; a scripted
partner.test stream sends K messages to bob@corp.test, which the gateway turns into SIP
MESSAGEs toward the "pool" -- a SIP UA on 127.0.0.57 answering 200 (and OPTIONS health
checks 200); a SIP UA on 127.0.0.58 sends M MESSAGEs to a domain that is no partner, which
the gateway answers 403 itself."""
import os
import re
import shutil
import tempfile

import pytest

import harness
from harness import Daemon, free_port, make_certs, wait_for
from linkconf import gateway_conf, policy_conf, proxy_conf, s2s_conf
from s2sraw import S2SClient
from sipua import UA
from test_ops import parse_exposition, scrape

PX_HOST = "127.0.0.55"
GW_HOST = "127.0.0.56"
POOL_HOST = "127.0.0.57"
UA_HOST = "127.0.0.58"
K = 5  # partner -> bob: MESSAGEs the gateway sends (client transactions)
M = 3  # UA -> stranger: MESSAGEs the gateway answers 403 (server transactions)


def txn(samples, side, method, status):
    return samples.get(("parley_sip_transactions_total",
                        frozenset({("side", side), ("method", method),
                                   ("status", status)})), 0)


def histogram(samples, name, **labels):
    """(buckets [(le, cumulative)], sum, count) of one labelled histogram member."""
    want = set(labels.items())
    buckets = sorted((float(dict(k[1])["le"]), v) for k, v in samples.items()
                     if k[0] == name + "_bucket" and want <= set(k[1]))
    key = frozenset(labels.items())
    return buckets, samples[(name + "_sum", key)], samples[(name + "_count", key)]


@pytest.fixture
def gw(tmp_path):
    certs = make_certs(tmp_path / "certs", "proxy.link.test", "gateway.link.test", "corp.test",
                       "partner.test")
    sockdir = tempfile.mkdtemp(prefix="psipm")
    pool = UA("pool", "corp.test", POOL_HOST, port=free_port(POOL_HOST))
    pool.start()
    link, s2s = free_port(PX_HOST), free_port(PX_HOST)
    metrics = (GW_HOST, free_port(GW_HOST))
    sip_port = free_port(GW_HOST)
    px = Daemon("parley-proxy", tmp_path, "proxy",
                proxy_conf(certs, link, host=PX_HOST,
                           extra="\n[control]\nsocket = %s\nmetrics =\n"
                           % os.path.join(sockdir, "px.sock")) +
                s2s_conf(certs, "%s:%d" % (PX_HOST, s2s)))
    sip = ("\n[sip]\nlisten_udp = %s:%d\npool = udp:%s:%d\nhealth_interval = 200ms\n"
           % (GW_HOST, sip_port, POOL_HOST, pool.local[1]))
    g = Daemon("parley-gateway", tmp_path, "gateway",
               gateway_conf(certs, link, edge_host=PX_HOST,
                            extra="\n[control]\nsocket = %s\nmetrics = %s:%d\n"
                            % (os.path.join(sockdir, "gw.sock"), *metrics),
                            policy=policy_conf(partners={"partner.test": {"type": "federated"}})
                            + sip))
    e = type("Env", (), {})()
    e.certs, e.px, e.gw, e.pool, e.metrics, e.s2s = certs, px, g, pool, metrics, s2s
    e.sip = (GW_HOST, sip_port)
    try:
        px.start()
        px.wait_log(r"event=link_listen")
        g.start()
        px.wait_log(r"event=policy_applied")
        g.wait_log(r"event=metrics_listen")
        yield e
    finally:
        pool.close()
        findings = harness.stop_daemons((g, px))
        shutil.rmtree(sockdir, ignore_errors=True)
    assert not findings, "\n".join(findings)


def test_sip_transactions_by_method_and_status(gw):
    e = gw
    samples, types = parse_exposition(scrape(e.metrics))
    assert txn(samples, "client", "MESSAGE", "2xx") == 0

    # client transactions: partner.test -> bob@corp.test, K MESSAGEs to the pool (200 each)
    c = S2SClient(PX_HOST, e.s2s, "corp.test", "partner.test", certs=e.certs,
                  cert_name="partner.test")
    c.authenticate()
    for i in range(K):
        c.message("bob@corp.test", "alice@partner.test/pc", "hello %d" % i)
    wait_for(lambda: len([m for m in e.pool.received if m.method == "MESSAGE"]) >= K, 20,
             "%d MESSAGEs at the pool" % K)
    # server transactions: M MESSAGEs to a domain that is no partner, answered 403
    ua = UA("bob", "corp.test", UA_HOST, proxy=e.sip)
    ua.start()
    try:
        got = [ua.message("sip:eve@stranger.test", "no %d" % i).status for i in range(M)]
    finally:
        ua.close()
    assert got == [403] * M, got
    # the pool answered some health checks too
    wait_for(lambda: any(m.method == "OPTIONS" for m in e.pool.received), 10, "an OPTIONS")
    c.close()

    def counted():
        s, _ = parse_exposition(scrape(e.metrics))
        return (txn(s, "client", "MESSAGE", "2xx") >= K and
                txn(s, "server", "MESSAGE", "4xx") >= M and
                txn(s, "client", "OPTIONS", "2xx") >= 1)
    wait_for(counted, 10, "the transactions in the metrics")
    samples, types = parse_exposition(scrape(e.metrics))
    assert types["parley_sip_transactions_total"] == "counter"
    assert txn(samples, "client", "MESSAGE", "2xx") == K
    assert txn(samples, "server", "MESSAGE", "4xx") == M
    for cls in ("3xx", "4xx", "5xx", "6xx"):
        assert txn(samples, "client", "MESSAGE", cls) == 0
    assert txn(samples, "server", "MESSAGE", "2xx") == 0
    opts = txn(samples, "client", "OPTIONS", "2xx")
    n_opts = len([m for m in e.pool.received if m.method == "OPTIONS"])
    assert 1 <= opts <= n_opts, (opts, n_opts)
    # only what happened is listed
    listed = {dict(k[1])["method"] for k in samples if k[0] == "parley_sip_transactions_total"}
    assert listed <= {"MESSAGE", "OPTIONS", "SUBSCRIBE", "NOTIFY"}, listed

    # the duration histogram of MESSAGE: K observations, cumulative, local round trips
    name = "parley_sip_client_transaction_duration_seconds"
    assert types[name] == "histogram"
    buckets, total, count = histogram(samples, name, method="MESSAGE")
    assert count == K
    assert buckets[-1] == (float("inf"), K)
    assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:]))
    assert [b[0] for b in buckets[:3]] == [0.001, 0.0025, 0.005]
    assert buckets[-2][0] == 32.0
    le_1s = dict(buckets)[1.0]
    assert le_1s == K, buckets  # the pool is a local UA: well under a second
    assert 0 < total < K * 1.0, total
    assert re.search(r"parley_sip_transactions_total\{side=\"client\",method=\"MESSAGE\","
                     r"status=\"2xx\"\} %d\n" % K, scrape(e.metrics))
