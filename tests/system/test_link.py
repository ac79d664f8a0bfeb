"""The internal link between the real parley-proxy and parley-gateway: TLS 1.3 mutual
authentication with pinned names, refusals, and delivery across cuts, crashes and failover."""
import os
import socket
import ssl
import threading
import time

import pytest

from harness import Daemon, Relay, free_port, wait_for
from linkconf import gateway_conf, proxy_conf, read_refs


def start_pair(tmp_path, daemons, link_certs, source=0, sink=True, gw_kw=None, px_kw=None):
    port = free_port()
    px = Daemon("parley-proxy", tmp_path, "proxy",
                proxy_conf(link_certs, port, source_frames=source, **(px_kw or {}))).start()
    daemons.append(px)
    px.wait_log(r"event=link_listen")
    sink_file = str(tmp_path / "sink.txt") if sink else None
    gw = Daemon("parley-gateway", tmp_path, "gateway",
                gateway_conf(link_certs, port, sink_file=sink_file, **(gw_kw or {}))).start()
    daemons.append(gw)
    return px, gw, port, sink_file


def test_link_comes_up_and_delivers_in_order(tmp_path, daemons, link_certs):
    px, gw, port, sink = start_pair(tmp_path, daemons, link_certs, source=1000)
    px.wait_log(r"event=link_up .*node=gw1 .*tls=TLSv1\.3")
    gw.wait_log(r"event=link_up .*node=edge1 .*tls=TLSv1\.3")
    wait_for(lambda: len(read_refs(sink)) >= 1000, 20, "1000 frames at the sink")
    time.sleep(0.3)
    assert read_refs(sink) == list(range(1, 1001))
    assert gw.stop() == 0
    assert px.stop() == 0
    # a clean stop says goodbye and reports its counters
    assert "event=stopped" in px.text()
    assert "event=shutdown" in gw.text()


def test_refused_untrusted_certificate(tmp_path, daemons, link_certs):
    # the gateway presents a certificate from a CA the edge does not trust
    px, gw, port, _ = start_pair(tmp_path, daemons, link_certs, sink=False,
                                 gw_kw={"cert": "rogue-gateway.link.test"})
    px.wait_log(r"event=link_refused .*(unable to get local issuer|certificate verify failed|unknown ca)")
    gw.wait_log(r"event=link_refused .*refused by the peer: certificate verify failed")
    assert px.count(r"event=link_up") == 0 and gw.count(r"event=link_up") == 0
    assert px.alive() and gw.alive()


def test_refused_untrusted_proxy(tmp_path, daemons, link_certs):
    # the edge presents a certificate the gateway's CA did not issue
    px, gw, port, _ = start_pair(tmp_path, daemons, link_certs, sink=False,
                                 px_kw={"cert": "rogue-proxy.link.test"})
    gw.wait_log(r"event=link_refused .*(unable to get local issuer|certificate verify failed)")
    px.wait_log(r"event=link_refused .*refused by the peer: certificate verify failed")
    assert px.count(r"event=link_up") == 0


def test_refused_wrong_name(tmp_path, daemons, link_certs):
    # a valid certificate, but for a name the edge does not pin
    px, gw, port, _ = start_pair(tmp_path, daemons, link_certs, sink=False,
                                 gw_kw={"cert": "other.link.test"})
    px.wait_log(r"event=link_refused .*names do not match.*other\.link\.test")
    gw.wait_log(r"event=link_refused .*refused by the peer: certificate names do not match")
    assert px.count(r"event=link_up") == 0


def test_refused_plaintext(tmp_path, daemons, link_certs):
    port = free_port()
    px = Daemon("parley-proxy", tmp_path, "proxy", proxy_conf(link_certs, port)).start()
    daemons.append(px)
    px.wait_log(r"event=link_listen")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"\x00\x00\x00\x05hello plaintext frame")
        s.settimeout(5)
        try:
            while s.recv(4096):
                pass
        except (ConnectionResetError, socket.timeout):
            pass
    px.wait_log(r"event=link_refused .*TLS")
    assert px.alive()

    # and the gateway, dialing something that answers in plaintext
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    sport = srv.getsockname()[1]

    def answer():
        try:
            c, _ = srv.accept()
            c.recv(4096)
            c.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
            c.close()
        except OSError:
            pass
    t = threading.Thread(target=answer, daemon=True)
    t.start()
    gw = Daemon("parley-gateway", tmp_path, "gateway", gateway_conf(link_certs, sport)).start()
    daemons.append(gw)
    gw.wait_log(r"event=link_refused .*TLS")
    srv.close()


def test_refused_tls12(tmp_path, daemons, link_certs):
    port = free_port()
    px = Daemon("parley-proxy", tmp_path, "proxy", proxy_conf(link_certs, port)).start()
    daemons.append(px)
    px.wait_log(r"event=link_listen")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(os.path.join(link_certs, "ca.pem"))
    ctx.load_cert_chain(os.path.join(link_certs, "gateway.link.test.pem"),
                        os.path.join(link_certs, "gateway.link.test.key"))
    with pytest.raises(ssl.SSLError):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="proxy.link.test"):
                pass
    px.wait_log(r"event=link_refused .*(unsupported protocol|version)")

    # and the gateway dialing a TLS 1.2-only server
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.maximum_version = ssl.TLSVersion.TLSv1_2
    sctx.load_cert_chain(os.path.join(link_certs, "proxy.link.test.pem"),
                         os.path.join(link_certs, "proxy.link.test.key"))
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    sport = srv.getsockname()[1]

    def serve():
        try:
            c, _ = srv.accept()
            try:
                sctx.wrap_socket(c, server_side=True)
            except (ssl.SSLError, OSError):
                pass
            c.close()
        except OSError:
            pass
    threading.Thread(target=serve, daemon=True).start()
    gw = Daemon("parley-gateway", tmp_path, "gateway", gateway_conf(link_certs, sport)).start()
    daemons.append(gw)
    gw.wait_log(r"event=link_refused .*(protocol version|unsupported protocol|version)")
    srv.close()


N = 100_000


def test_100k_frames_survive_five_cuts(tmp_path, daemons, link_certs):
    port = free_port()
    px = Daemon("parley-proxy", tmp_path, "proxy",
                proxy_conf(link_certs, port, source_frames=N)).start()
    daemons.append(px)
    px.wait_log(r"event=link_listen")
    relay = Relay("127.0.0.1", "127.0.0.1", port)
    sink = str(tmp_path / "sink.txt")
    try:
        gw = Daemon("parley-gateway", tmp_path, "gateway",
                    gateway_conf(link_certs, relay.port, sink_file=sink)).start()
        daemons.append(gw)
        cuts = 0
        for i in range(5):
            # cut at growing fractions of the run, while frames are in flight
            wait_for(lambda: len(read_refs(sink)) >= (i + 1) * N // 7, 60, "progress")
            assert relay.cut() >= 1
            cuts += 1
            gw.wait_log(r"event=link_up", count=i + 2, timeout=20)
        wait_for(lambda: len(read_refs(sink)) >= N, 90, "all frames")
        time.sleep(0.5)
        refs = read_refs(sink)
        assert cuts == 5
        assert len(refs) == N, "delivered %d, want exactly %d" % (len(refs), N)
        assert refs == list(range(1, N + 1)), "not exactly once in order"
        assert relay.accepted >= 6
    finally:
        relay.close()


def test_100k_frames_survive_gateway_sigkill_twice(tmp_path, daemons, link_certs):
    port = free_port()
    px = Daemon("parley-proxy", tmp_path, "proxy",
                proxy_conf(link_certs, port, source_frames=N)).start()
    daemons.append(px)
    px.wait_log(r"event=link_listen")
    sink = str(tmp_path / "sink.txt")
    conf = gateway_conf(link_certs, port, sink_file=sink)
    gw = Daemon("parley-gateway", tmp_path, "gateway", conf).start()
    daemons.append(gw)
    for i in range(2):
        wait_for(lambda: len(read_refs(sink)) >= (i + 1) * N // 3, 60, "progress")
        gw.kill()
        gw.start()
    wait_for(lambda: len(set(read_refs(sink))) >= N, 90, "all frames after restarts")
    time.sleep(0.5)
    refs = read_refs(sink)
    assert set(refs) == set(range(1, N + 1)), "lost frames"
    dups = len(refs) - N
    # duplicates are only what was in flight: at most one window per crash
    assert 0 <= dups <= 2 * 32768, dups
    # first occurrences come in order
    seen, firsts = set(), []
    for r in refs:
        if r not in seen:
            seen.add(r)
            firsts.append(r)
    assert firsts == list(range(1, N + 1))
    gw.stop()
    px.stop()
    # the edge counts what it had to resend to a new gateway epoch
    print("duplicates at the sink after 2 SIGKILLs: %d" % dups)


def test_standby_gateway_takes_over(tmp_path, daemons, link_certs):
    n = 300_000
    port = free_port()
    px = Daemon("parley-proxy", tmp_path, "proxy",
                proxy_conf(link_certs, port, source_frames=n)).start()
    daemons.append(px)
    px.wait_log(r"event=link_listen")
    s1, s2 = str(tmp_path / "sink1.txt"), str(tmp_path / "sink2.txt")
    # the standby connects first: priority, not arrival, decides who is active
    gw2 = Daemon("parley-gateway", tmp_path, "gw2",
                 gateway_conf(link_certs, port, node_id="gw2", priority=20,
                              cert="gateway2.link.test", sink_file=s2)).start()
    daemons.append(gw2)
    px.wait_log(r"event=gateway_active node=gw2")
    gw1 = Daemon("parley-gateway", tmp_path, "gw1",
                 gateway_conf(link_certs, port, node_id="gw1", priority=10, sink_file=s1)).start()
    daemons.append(gw1)
    px.wait_log(r"event=gateway_active node=gw1")
    wait_for(lambda: len(read_refs(s1)) >= 1000, 30, "active gateway progress")
    assert len(set(read_refs(s1)) | set(read_refs(s2))) < n, "run too short to test takeover"
    gw1.kill()
    px.wait_log(r"event=gateway_active node=gw2", count=2)
    wait_for(lambda: len(set(read_refs(s1)) | set(read_refs(s2))) >= n, 120, "takeover")
    got = set(read_refs(s1)) | set(read_refs(s2))
    assert got == set(range(1, n + 1))
    assert len(read_refs(s2)) > 0


def test_dead_peer_detected_and_reconnected(tmp_path, daemons, link_certs):
    port = free_port()
    px = Daemon("parley-proxy", tmp_path, "proxy", proxy_conf(link_certs, port)).start()
    daemons.append(px)
    px.wait_log(r"event=link_listen")
    relay = Relay("127.0.0.1", "127.0.0.1", port)
    try:
        gw = Daemon("parley-gateway", tmp_path, "gateway",
                    gateway_conf(link_certs, relay.port)).start()
        daemons.append(gw)
        gw.wait_log(r"event=link_up")
        relay.frozen = True  # the path goes silent without closing
        gw.wait_log(r"dead-peer timeout", timeout=15)
        relay.frozen = False
        relay.cut()
        gw.wait_log(r"event=link_up", count=2, timeout=20)
    finally:
        relay.close()


def test_check_config_names_file_and_line(tmp_path, link_certs):
    import subprocess
    from harness import BIN
    bad = tmp_path / "bad.conf"
    bad.write_text("[general]\nnode_id = x\n\n[link]\nwindow = 5\n")
    r = subprocess.run([os.path.join(BIN, "parley-proxy"), "-c", str(bad), "--check-config"],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "bad.conf:5:" in r.stderr, r.stderr
    good = tmp_path / "good.conf"
    good.write_text(proxy_conf(link_certs, 23456))
    r = subprocess.run([os.path.join(BIN, "parley-proxy"), "-c", str(good), "--check-config"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([os.path.join(BIN, "parley-gateway"), "-c", str(bad), "--check-config"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "bad.conf:" in r.stderr
