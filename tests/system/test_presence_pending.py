"""Presence against a scripted presence server (sippool.SipPool) instead of Kamailio, for
what Kamailio never sends. MAPPING.md D2 (issue 7), Subscription-State: pending:
alice@partner.test (real Prosody over S2S through parley-proxy) subscribes to bob@corp.test;
parley-gateway's SUBSCRIBE reaches sippool.SipPool, which answers 202 and then scripts the
NOTIFYs.

- pending (with or without a body) is answered 200 and tells alice nothing: no `subscribed`,
  no presence of bob;
- the first active NOTIFY gives `subscribed`, then bob's presence from its PIDF;
- pending then terminated;reason=rejected gives `unsubscribed` and never `subscribed`.
Also: subscription answers decided while no edge is up wait for one, and a reload that
denies a user ends the subscriptions already running (J4).

Every process listens on 127.0.0.150-127.0.0.159 only (the Lab of imlab.py uses fixed
addresses that other tests use at the same time)."""
import signal
import time

import pytest

from harness import wait_for
from imlab import lab_certs
from poollab import GW_SIP, PendingLab, bob_pidf
from sipua import UA


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return lab_certs(tmp_path_factory)


def first_index(events, pred):
    return next((i for i, e in enumerate(events) if pred(e)), None)


def test_pending_then_active(tmp_path, running, daemons, certs):
    """D2: pending is answered and silent; the first active NOTIFY gives `subscribed`,
    then bob's presence (away, with the note)."""
    lab = PendingLab(tmp_path, running, daemons, certs)
    sub = lab.subscribe()
    lab.pending(sub)
    t_active = time.monotonic()
    r = lab.pool.notify(sub, "active;expires=580",
                        body=bob_pidf(activity="away", note="back in five"))
    assert r.status == 200, r.start
    wait_for(lambda: any(e.get("status") == "back in five" for e in lab.from_bob()), 20,
             "bob's presence at alice")
    ev = lab.from_bob()
    sub_i = first_index(ev, lambda e: e.get("type") == "subscribed")
    pres_i = first_index(ev, lambda e: e.get("status") == "back in five")
    assert sub_i is not None, "no subscribed at alice: %r" % ev
    assert sub_i < pres_i, "presence before subscribed: %r" % ev
    # the `subscribed` answers the active NOTIFY, not a late echo of a pending one (the
    # clients' event times and ours are the same CLOCK_MONOTONIC)
    assert ev[sub_i]["t"] >= t_active, (ev[sub_i], t_active)
    p = ev[pres_i]
    assert p.get("show") == "away", p
    # slixmpp reports an available presence's show as its "type"
    assert p.get("type") in (None, "", "available", "away"), p
    assert all(e.get("status") != "not for alice yet" for e in ev), ev
    assert sub_i == 0, "something of bob before subscribed: %r" % ev
    # every NOTIFY (pending, pending, active) was answered 200 by the gateway
    assert [x.status for x in sub.notify_responses] == [200, 200, 200]
    assert lab.pool.errors == [], lab.pool.errors
    assert "presence_notify_refused" not in lab.gw.text()


def test_pending_then_rejected(tmp_path, running, daemons, certs):
    """D2 + D4: pending, then terminated;reason=rejected: alice gets `unsubscribed` and
    never `subscribed`, and the gateway does not subscribe again."""
    lab = PendingLab(tmp_path, running, daemons, certs)
    sub = lab.subscribe()
    lab.pending(sub)
    r = lab.pool.notify(sub, "terminated;reason=rejected")
    assert r.status == 200, r.start
    wait_for(lambda: any(e.get("type") == "unsubscribed" for e in lab.from_bob()), 20,
             "unsubscribed at alice")
    lab.gw.wait_log(r"event=presence_subscription_cancelled jid=alice@partner.test "
                    r"sip=sip:bob@corp.test why=\"rejected\"")
    time.sleep(1)  # a late `subscribed` or a new SUBSCRIBE would show by now
    ev = lab.from_bob()
    assert not any(e.get("type") == "subscribed" for e in ev), ev
    assert all(e.get("type") in ("unsubscribed", "unavailable") for e in ev), ev
    assert [x.status for x in sub.notify_responses] == [200, 200, 200]
    assert len(lab.pool.requests("SUBSCRIBE")) == 1, lab.pool.requests("SUBSCRIBE")
    assert lab.pool.errors == [], lab.pool.errors


def restart_edge(lab, applied):
    lab.px.start()
    wait_for(lambda: lab.px.text().count("event=policy_applied") > applied, 20,
             "the restarted edge's policy")


def test_subscription_answers_wait_for_an_edge(tmp_path, running, daemons, certs):
    """`subscribed` and `unsubscribed` decided while no edge is connected are kept and sent,
    in order, once an edge is back: the first active NOTIFY comes while the edge is down
    (alice gets `subscribed` then bob's presence after the restart), then a
    terminated;reason=rejected while it is down again (alice gets `unsubscribed`)."""
    lab = PendingLab(tmp_path, running, daemons, certs)
    sub = lab.subscribe()
    applied = lab.px.text().count("event=policy_applied")
    lab.px.kill()
    lab.gw.wait_log(r"event=link_down")
    r = lab.pool.notify(sub, "active;expires=580",
                        body=bob_pidf(activity="away", note="while the edge was down"))
    assert r.status == 200, r.start
    lab.gw.wait_log(r"event=presence_waiting from=bob@corp.test to=alice@partner.test "
                    r"type=subscribed")
    assert lab.from_bob() == []
    restart_edge(lab, applied)
    wait_for(lambda: any(e.get("status") == "while the edge was down" for e in lab.from_bob()),
             40, "bob's presence at alice after the edge restarted")
    ev = lab.from_bob()
    assert ev[0].get("type") == "subscribed", ev
    assert ev[-1].get("show") == "away", ev

    applied = lab.px.text().count("event=policy_applied")
    n = len(lab.from_bob())
    lab.px.kill()
    lab.gw.wait_log(r"event=link_down", count=2)
    r = lab.pool.notify(sub, "terminated;reason=rejected")
    assert r.status == 200, r.start
    lab.gw.wait_log(r"event=presence_waiting from=bob@corp.test to=alice@partner.test "
                    r"type=unsubscribed")
    restart_edge(lab, applied)
    wait_for(lambda: any(e.get("type") == "unsubscribed" for e in lab.from_bob(n)), 40,
             "unsubscribed at alice after the edge restarted")
    assert [x.status for x in sub.notify_responses] == [200, 200]
    assert lab.pool.errors == [], lab.pool.errors


BOB_UA_IP = "127.0.0.156"  # bob's SIP user agent, watching alice through the gateway


def test_revoked_access_ends_subscriptions(tmp_path, running, daemons, certs):
    """J4 for what already runs: alice watches bob and bob watches alice; a reload that
    denies bob XMPP ends both: alice gets unavailable and `unsubscribed`, the pool an
    Expires: 0 in alice's dialog, bob's watcher NOTIFY terminated;reason=rejected, and
    nothing is stored to resume after a restart."""
    lab = PendingLab(tmp_path, running, daemons, certs)
    sub = lab.subscribe()
    r = lab.pool.notify(sub, "active;expires=580", body=bob_pidf(note="at my desk"))
    assert r.status == 200, r.start
    wait_for(lambda: any(e.get("status") == "at my desk" for e in lab.from_bob()), 20,
             "bob's presence at alice")
    bob = UA("bob", "corp.test", BOB_UA_IP, proxy=(GW_SIP, 5060))
    bob.start()
    running.append(bob)
    lab.alice.set_presence(show="away", status="lunch")
    r, _ = bob.subscribe("sip:alice@partner.test", expires=600)
    assert r.status == 200, r.start
    bob.wait_request("NOTIFY", timeout=20,
                     pred=lambda m: "active" in (m.header("subscription-state") or "")
                     and "lunch" in m.text)
    n = len(lab.from_bob())

    with open(lab.gw.conf, "a") as f:
        f.write('\n[user "bob@corp.test"]\nxmpp = deny\n')
    lab.gw.proc.send_signal(signal.SIGHUP)
    lab.gw.wait_log(r"event=reload ")
    lab.gw.wait_log(r"event=presence_revoked dir=xmpp_to_sip jid=alice@partner.test "
                    r"sip=sip:bob@corp.test")
    lab.gw.wait_log(r"event=presence_revoked dir=sip_to_xmpp jid=alice@partner.test "
                    r"sip=sip:bob@corp.test")
    wait_for(lambda: any(e.get("type") == "unsubscribed" for e in lab.from_bob(n)), 20,
             "unsubscribed at alice")
    assert any(e.get("type") == "unavailable" for e in lab.from_bob(n)), lab.from_bob(n)
    end = bob.wait_request("NOTIFY", timeout=20,
                           pred=lambda m: "terminated" in (m.header("subscription-state")
                                                           or ""))
    assert "reason=rejected" in end.header("subscription-state"), end.start
    wait_for(lambda: len(sub.requests) == 2, 20, "the Expires: 0 in alice's dialog")
    assert int(sub.requests[-1].header("expires")) == 0, sub.requests[-1].headers
    # nothing left to resume: a restarted gateway loads no subscription
    lab.gw.stop()
    lab.gw.start()
    lab.gw.wait_log(r"event=presence_loaded uac=0 uas=0 ")
    assert lab.pool.errors == [], lab.pool.errors
