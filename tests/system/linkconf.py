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
                 edge_host="127.0.0.1", extra="", policy=""):
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
{sink}
{policy}"""


def read_sink(path):
    """Lines the gateway's test sink wrote: (ref, from, to, body) per stanza, in order."""
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as f:
        for line in f:
            if not line.endswith("\n"):
                break  # being written
            parts = line[:-1].split("\t")
            un = [p.replace("\\t", "\t").replace("\\n", "\n").replace("\\r", "\r")
                  .replace("\\\\", "\\") for p in parts[1:]]
            out.append((int(parts[0]), *un))
    return out


def read_refs(path):
    return [r[0] for r in read_sink(path)]


def policy_conf(served=("corp.test",), partners=None, **federation):
    """[federation] and [partner "..."] sections; partners maps domain -> dict of keys.
    The default partner is federated: a public-unverified one (the config's default type)
    reaches only users who added it (MAPPING J2), which tests of plain IM do not set up."""
    lines = ["[federation]"] + ["domain = %s" % d for d in served]
    lines += ["%s = %s" % (k, v) for k, v in federation.items()]
    for dom, keys in (partners or {"partner.test": {"type": "federated"}}).items():
        lines.append('[partner "%s"]' % dom)
        for k, v in keys.items():
            for one in (v if isinstance(v, (list, tuple)) else [v]):
                lines.append("%s = %s" % (k, one))
    return "\n".join(lines) + "\n"


def s2s_conf(certs, listen, listen_tls=None, cert="corp.test", max_per_ip=32, extra=""):
    tls = "listen_tls = %s\n" % listen_tls if listen_tls else ""
    return f"""
[s2s]
listen = {listen}
{tls}cert = {os.path.join(certs, cert + '.pem')}
key = {os.path.join(certs, cert + '.key')}
ca = {os.path.join(certs, 'ca.pem')}
max_per_ip = {max_per_ip}
{extra}
"""
