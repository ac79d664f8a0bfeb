"""Config texts for link tests."""
import os


def proxy_conf(certs, port, host="127.0.0.1", peer_names=("gateway.link.test", "gateway2.link.test"),
               cert="proxy.link.test", ca="ca.pem", source_frames=0, extra=""):
    names = "".join("peer_name = %s\n" % n for n in peer_names)
    return f"""[general]
node_id = edge1
log_level = info

[link]
listen = {host}:{port}
cert = {os.path.join(certs, cert + '.pem')}
key = {os.path.join(certs, cert + '.key')}
ca = {os.path.join(certs, ca)}
{names}ping_interval = 1s
dead_timeout = 4s
hello_timeout = 3s
{extra}
[test]
source_frames = {source_frames}
source_body_bytes = 200
"""


def gateway_conf(certs, edge_port, node_id="gw1", priority=10, cert="gateway.link.test",
                 ca="ca.pem", proxy_name="proxy.link.test", sink_file=None, sink_expect=0,
                 edge_host="127.0.0.1", extra=""):
    sink = ""
    if sink_file:
        sink += "sink_file = %s\n" % sink_file
    if sink_expect:
        sink += "sink_expect = %d\n" % sink_expect
    return f"""[general]
node_id = {node_id}
log_level = info

[link]
edge = {edge_host}:{edge_port}
priority = {priority}
cert = {os.path.join(certs, cert + '.pem')}
key = {os.path.join(certs, cert + '.key')}
ca = {os.path.join(certs, ca)}
peer_name = {proxy_name}
reconnect_min = 50ms
reconnect_max = 500ms
ping_interval = 1s
dead_timeout = 4s
hello_timeout = 3s
{extra}
[test]
{sink}"""


def read_refs(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [int(x) for x in f.read().split()]
