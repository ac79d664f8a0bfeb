"""Server dialback (XEP-0220) at the real parley-proxy, in every role: as receiving server it
checks a partner's db:result by asking the partner's authoritative server (a real Prosody found
through dnsmasq SRV records) with db:verify; as authoritative server it answers db:verify with
keys from its own secret (XEP-0185); as originating server it is covered by
test_s2s_out.py::test_dialback_when_partner_sasl_not_supported. Prosody -> proxy by dialback
carries 1000 messages exactly once, in order; a forged db:result is answered type='invalid'
and nothing from that stream reaches the link."""
import hashlib
import hmac
import re
import time

import pytest

from linkpeer import NEG_NOT_SUPPORTED, NEG_OPTIONAL
from s2sraw import S2SClient, header
from s2soutlab import EDGE_IP, PARTNER_IP, SECRET, Lab, certs_dir

N = 1000


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return certs_dir(tmp_path_factory, "dialbackcerts")


def xep0185_key(secret, receiving, originating, stream_id):
    k = hashlib.sha256(secret.encode()).hexdigest().encode()
    return hmac.new(k, ("%s %s %s" % (receiving, originating, stream_id)).encode(),
                    hashlib.sha256).hexdigest()


def lab_with_partner(tmp_path, running, daemons, certs, rules, start_prosody=True, **kw):
    lab = Lab(tmp_path, running, daemons, certs)
    lab.start_dns()
    lab.start_edge()
    lab.policy({"partner.test": rules}, **kw)
    partner = None
    if start_prosody:
        partner = lab.start_prosody(users=[("alice", "partner.test", "pw-a")])
    return lab, partner


def raw_client(lab, certs, cert=None, frm="partner.test"):
    return S2SClient(EDGE_IP, lab.edge_port, "corp.test", frm, certs=certs, cert_name=cert)


def stream_id_of(c):
    m = re.search(r"<stream:stream [^>]*\bid='([^']+)'", c.buf)
    assert m, c.buf
    return m.group(1)


def open_after_tls(c):
    """Header, STARTTLS, header again; returns (features, stream id of the TLS stream)."""
    feats = c.open()
    assert "starttls" in feats, feats
    c.starttls()
    c.send(header("corp.test", c.frm))
    m = c.read_until(r"<stream:features>.*?</stream:features>")
    sid = stream_id_of(c)
    feats = m.group(0)
    c.buf = c.buf[m.end():]
    return feats, sid


def test_prosody_to_edge_by_dialback_1000_in_order(tmp_path, running, daemons, certs):
    # Our rules say SASL is not supported with partner.test: EXTERNAL is not offered, so
    # Prosody authenticates with dialback, and we verify its key with Prosody itself.
    lab, partner = lab_with_partner(tmp_path, running, daemons, certs,
                                    {"sasl": NEG_NOT_SUPPORTED})
    alice = lab.client("alice@partner.test", "pw-a", PARTNER_IP)
    # Prosody may reorder what it queued while the stream was being set up: warm it up first
    alice.send_message("bob@corp.test", "warm-up")
    got = lab.lp.wait_stanzas(1, timeout=30)
    assert got[0].body == "warm-up"
    t0 = time.monotonic()
    alice.send_messages("bob@corp.test", N, fmt="msg-%d")
    got = lab.lp.wait_stanzas(N + 1, timeout=90)
    print("figure: Prosody -> edge by dialback: %d messages on the link in %.2f s" % (
        N, time.monotonic() - t0))
    time.sleep(0.5)
    got = lab.lp.stanzas[1:]
    assert [s.body for s in got] == ["msg-%d" % i for i in range(N)]
    assert all(getattr(s, "from").startswith("alice@partner.test") and s.to == "bob@corp.test"
               for s in got)
    assert {s.meta.auth for s in got} == {2}  # AUTH_DIALBACK
    assert {s.meta.peer_domain for s in got} == {"partner.test"}
    px = lab.px
    px.wait_log(r"event=s2s_auth .*domain=partner\.test method=DIALBACK")
    px.wait_log(r"event=s2s_out_verified from=corp\.test to=partner\.test verdict=valid")
    # Prosody vouched for its own key when we asked over our verification stream
    assert partner.lines("verified dialback key... it is valid")
    assert partner.dialback_valid_from("corp.test")
    assert "Accepting SASL EXTERNAL identity from partner.test" not in px.text()
    assert alice.errors() == []


def test_forged_db_result_is_invalid_and_nothing_passes(tmp_path, running, daemons, certs):
    lab, partner = lab_with_partner(tmp_path, running, daemons, certs,
                                    {"sasl": NEG_NOT_SUPPORTED})
    # an impostor claiming partner.test, without any certificate
    c = raw_client(lab, certs)
    feats, sid = open_after_tls(c)
    assert "urn:xmpp:features:dialback" in feats and "EXTERNAL" not in feats
    c.send("<db:result from='partner.test' to='corp.test'>%s</db:result>" % ("ab" * 32))
    m = c.read_until(r"<db:result[^>]*type='(\w+)'[^>]*/>", timeout=15)
    assert m.group(1) == "invalid"
    assert "from='corp.test'" in m.group(0) and "to='partner.test'" in m.group(0)
    # Prosody, the real partner.test, said the key was not its own
    assert partner.lines("Asked to verify a dialback key that was incorrect")
    lab.px.wait_log(r"event=s2s_dialback_result .*from=partner\.test to=corp\.test "
                    r"verdict=invalid")
    # nothing from this stream is accepted
    c.message("bob@corp.test", "alice@partner.test", "forged")
    assert c.stream_error() == "not-authorized"
    assert c.wait_closed()
    time.sleep(0.3)
    assert lab.lp.stanzas == []
    assert lab.px.count(r"event=s2s_auth ") == 0


def test_authoritative_role_answers_db_verify(tmp_path, running, daemons, certs):
    lab, _ = lab_with_partner(tmp_path, running, daemons, certs, {"sasl": NEG_OPTIONAL},
                              start_prosody=False)
    c = raw_client(lab, certs, cert="partner.test")
    feats, _ = open_after_tls(c)
    assert "urn:xmpp:features:dialback" in feats
    good = xep0185_key(SECRET, "partner.test", "corp.test", "S-123")
    c.send("<db:verify from='partner.test' to='corp.test' id='S-123'>%s</db:verify>" % good)
    m = c.read_until(r"<db:verify[^>]*/>")
    assert "type='valid'" in m.group(0) and "id='S-123'" in m.group(0)
    assert "from='corp.test'" in m.group(0) and "to='partner.test'" in m.group(0)
    c.buf = c.buf[m.end():]
    # the same key for another stream id, or a flipped character: invalid
    for sid, key in (("S-124", good), ("S-123", ("0" if good[0] != "0" else "1") + good[1:])):
        c.send("<db:verify from='partner.test' to='corp.test' id='%s'>%s</db:verify>" % (sid, key))
        m = c.read_until(r"<db:verify[^>]*/>")
        assert "type='invalid'" in m.group(0) and "id='%s'" % sid in m.group(0)
        c.buf = c.buf[m.end():]
    # a domain we do not serve
    c.send("<db:verify from='partner.test' to='elsewhere.test' id='S-1'>%s</db:verify>" % good)
    m = c.read_until(r"<db:verify[^>]*type='error'.*?</db:verify>")
    assert "item-not-found" in m.group(0)
    lab.px.wait_log(r"event=s2s_db_verify .*from=partner\.test to=corp\.test verdict=valid")
    assert lab.px.count(r"event=s2s_db_verify .*verdict=invalid") == 2
    c.close()


def test_dialback_refused_where_rules_require_sasl(tmp_path, running, daemons, certs):
    lab, _ = lab_with_partner(tmp_path, running, daemons, certs, {}, start_prosody=False)
    c = raw_client(lab, certs, cert="partner.test")
    feats, _ = open_after_tls(c)
    # SASL Required (the default): dialback is neither offered nor accepted
    assert "urn:xmpp:features:dialback" not in feats and "EXTERNAL" in feats
    c.send("<db:result from='partner.test' to='corp.test'>%s</db:result>" % ("cd" * 32))
    m = c.read_until(r"<db:result[^>]*type='error'.*?</db:result>")
    assert "not-allowed" in m.group(0)
    # piggybacking: a db:result for another domain on this stream
    c.send("<db:result from='other.test' to='corp.test'>%s</db:result>" % ("cd" * 32))
    m = c.read_until(r"<db:result from='corp\.test' to='other\.test' type='error'.*?</db:result>")
    assert "not-allowed" in m.group(0)
    assert lab.px.count(r"event=s2s_out_route ") == 0  # nobody was asked
    c.close()


def test_dialback_over_plain_tcp_where_tls_not_supported(tmp_path, running, daemons, certs):
    # TLS NotSupported + SASL NotSupported + dialback: dialback over TCP only (MAPPING J3).
    lab, _ = lab_with_partner(tmp_path, running, daemons, certs,
                              {"tls": NEG_NOT_SUPPORTED, "sasl": NEG_NOT_SUPPORTED},
                              start_prosody=False)
    # partner.test is a plaintext Prosody here
    plain = lab.start_prosody(users=[("alice", "partner.test", "pw-a")], starttls=False,
                              s2s_require_encryption=False, s2s_secure_auth=False)
    alice = lab.client("alice@partner.test", "pw-a", PARTNER_IP)
    alice.send_message("bob@corp.test", "plain-1")
    got = lab.lp.wait_stanzas(1, timeout=30)
    assert got[0].body == "plain-1" and got[0].meta.auth == 2
    assert not got[0].meta.tls_version
    lab.px.wait_log(r"event=s2s_auth .*domain=partner\.test method=DIALBACK")
    # and the other way: our stream to it is plain too, authenticated by dialback
    ref = lab.lp.send_stanza("bob@corp.test", "alice@partner.test", "plain-back")
    assert lab.lp.wait_outcome(ref) == ("delivered", None)
    assert [m["body"] for m in alice.received(timeout=15, count=1)] == ["plain-back"]
    lab.px.wait_log(r"event=s2s_out_auth .*to=partner\.test method=DIALBACK tls=none")
    assert "<starttls" not in plain.log_text()
