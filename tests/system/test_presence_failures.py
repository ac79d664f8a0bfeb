"""MAPPING.md D4's transient and refresh failure codes (issue 7), end to end: alice@partner.test
(real Prosody over S2S through parley-proxy) subscribes to bob@corp.test; parley-gateway's
SUBSCRIBEs reach sippool.SipPool, which answers them as each test scripts.

- 423 with Min-Expires on the first SUBSCRIBE: asked again at once with at least that;
- 481 on the first SUBSCRIBE: transient, a new SUBSCRIBE after [presence] retry;
- 481 on a refresh: the dialog is gone, a new one at once, alice keeps her subscription;
- 404 on a refresh: the subscription ends, alice gets `unsubscribed`, nothing more is sent;
- 500 on a refresh: retried later in the same dialog.

Refresh times: the gateway refreshes at 90 % of the Expires granted by the 2xx (and of the
expires= of each NOTIFY's Subscription-State), checked on its 1 s presence tick, with no
minimum of its own: the pool grants 4 s (max_expires), so a refresh comes 3.6-4.6 s after
the last of those. A retry waits [presence] retry << failures seconds (then the next tick).

Every process listens on 127.0.0.170-127.0.0.179 only."""
import re
import time

import pytest

from harness import wait_for
from imlab import lab_certs
from poollab import BOB, PendingLab, bob_pidf, ips_from
from sippool import REASONS

IPS = ips_from("127.0.0.17")   # edge .170, Prosody .171, dnsmasq .172, gateway .174, pool .175
SUB_LOG = r"jid=alice@partner.test sip=sip:bob@corp.test"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return lab_certs(tmp_path_factory)


def make_lab(tmp_path, running, daemons, certs, retry, max_expires=3600, **kw):
    return PendingLab(tmp_path, running, daemons, certs, ips=IPS,
                      pool_kw={"max_expires": max_expires},
                      gw_extra="[presence]\nretry = %d\n" % retry, **kw)


def failed_log(status, refresh):
    return r"event=presence_subscribe_failed %s status=%d refresh=%d" % (SUB_LOG, status,
                                                                         refresh)


def types(lab):
    return [e.get("type") for e in lab.from_bob()]


def activate(lab, sub, note, expires):
    """An active NOTIFY in sub's dialog with bob's presence (note), answered 200 and shown
    to alice."""
    r = lab.pool.notify(sub, "active;expires=%d" % expires, body=bob_pidf(note=note))
    assert r.status == 200, r.start
    wait_for(lambda: any(e.get("status") == note for e in lab.from_bob()), 20,
             "bob's presence %r at alice" % note)


def describe(msgs):
    return [(m.start, m.call_id, m.tag("to"), m.header("expires"), getattr(m, "answer", None))
            for m in msgs]


def test_423_asks_again_with_min_expires(tmp_path, running, daemons, certs):
    """423 Interval Too Brief with Min-Expires: 1800 on the first SUBSCRIBE (the policy asks
    600 s): the next SUBSCRIBE, at once and outside a dialog, asks at least 1800; answered
    202 and an active NOTIFY, alice gets `subscribed` and the presence, never
    `unsubscribed`. A gateway that took 423 for a refusal would say `unsubscribed`; one that
    ignored Min-Expires would ask 600 again; one that waited for [presence] retry (5 s)
    would come too late."""
    lab = make_lab(tmp_path, running, daemons, certs, retry=5,
                   federation={"subscription_refresh": "600s"})
    lab.pool.script(423, [("Min-Expires", "1800")])
    lab.alice.subscribe(BOB)
    subs = lab.pool.wait_subscribes(2, timeout=30)
    first, second = subs[0], subs[1]
    assert first.answer == 423 and second.answer == 202, describe(subs)
    assert int(first.header("expires")) == 600, describe(subs)
    assert int(second.header("expires")) >= 1800, describe(subs)
    assert second.tag("to") is None, describe(subs)     # a new dialog: the 423 made none
    assert second.t - first.t < 1.0, "not at once: %.2fs" % (second.t - first.t)
    sub = lab.pool.wait_subscribe(timeout=5)
    assert sub.call_id == second.call_id and sub.expires == 1800, (sub.call_id, sub.expires)
    lab.gw.wait_log(failed_log(423, 0))
    activate(lab, sub, "after 423", 1800)
    ev = types(lab)
    assert "subscribed" in ev, lab.from_bob()
    assert ev.index("subscribed") == 0, lab.from_bob()
    time.sleep(1)   # a late cancellation or another SUBSCRIBE would show by now
    assert "unsubscribed" not in types(lab), lab.from_bob()
    assert len(lab.pool.subscribes()) == 2, describe(lab.pool.subscribes())
    assert "presence_subscription_cancelled" not in lab.gw.text()
    assert lab.gw.count(r"event=presence_subscribe_failed ") == 1
    assert lab.pool.errors == [], lab.pool.errors


def test_481_on_first_subscribe_is_retried(tmp_path, running, daemons, certs):
    """481 on the first SUBSCRIBE is transient: a new SUBSCRIBE (new Call-ID, no To-tag)
    after [presence] retry = 3 s (3-4 s with the 1 s tick), not at once and not never;
    answered 202 and active, alice gets `subscribed` and the presence, no `unsubscribed`."""
    lab = make_lab(tmp_path, running, daemons, certs, retry=3)
    lab.pool.script(481)
    lab.alice.subscribe(BOB)
    lab.gw.wait_log(failed_log(481, 0), timeout=30)
    subs = lab.pool.wait_subscribes(2, timeout=10)
    first, second = subs[0], subs[1]
    assert first.answer == 481 and second.answer == 202, describe(subs)
    assert second.tag("to") is None and second.call_id != first.call_id, describe(subs)
    assert int(first.header("expires")) > 0 and int(second.header("expires")) > 0
    gap = second.t - first.t
    assert 2.5 <= gap <= 6.0, "retried after %.2fs, [presence] retry = 3" % gap
    sub = lab.pool.wait_subscribe(timeout=5)
    assert sub.call_id == second.call_id
    activate(lab, sub, "after 481", 600)
    assert types(lab)[0] == "subscribed", lab.from_bob()
    assert "unsubscribed" not in types(lab), lab.from_bob()
    assert len(lab.pool.subscribes()) == 2, describe(lab.pool.subscribes())
    assert "presence_subscription_cancelled" not in lab.gw.text()
    assert lab.pool.errors == [], lab.pool.errors


def test_481_on_refresh_starts_a_new_dialog(tmp_path, running, daemons, certs):
    """481 on a refresh: the dialog is gone; a new SUBSCRIBE (new Call-ID, no To-tag) at
    once (on the next tick; [presence] retry = 3 s would be later), without `unsubscribed`
    nor `unavailable` at alice; a NOTIFY in the new dialog reaches alice, one in the old
    dialog is refused 481."""
    lab = make_lab(tmp_path, running, daemons, certs, retry=3, max_expires=4)
    lab.pool.script(481, refresh=True)
    old = lab.subscribe()
    assert old.expires == 4, old.expires
    activate(lab, old, "first dialog", 4)
    wait_for(lambda: len(lab.pool.subs) > 1 or
             "presence_subscription_cancelled" in lab.gw.text(), 15,
             "a new dialog after the refresh")
    assert "presence_subscription_cancelled" not in lab.gw.text(), \
        "481 on a refresh ended the subscription (D4: the dialog is gone, start a new " \
        "one): %r" % [ln for ln in lab.gw.text().splitlines() if "presence_sub" in ln]
    new = lab.pool.wait_subscribe(timeout=5, pred=lambda s: s is not old)
    assert len(old.requests) == 2, describe(old.requests)
    refresh = old.requests[1]
    assert refresh.answer == 481 and refresh.tag("to") == old.local_tag, describe(old.requests)
    assert int(refresh.header("expires")) > 0, describe(old.requests)
    # the refresh came at ~90 % of the 4 s the NOTIFY gave, not much later or earlier
    assert 2.5 <= refresh.t - old.notify_responses[-1].t <= 6.0
    start = new.requests[0]
    assert new.call_id != old.call_id and start.tag("to") is None, describe([refresh, start])
    assert int(start.header("expires")) > 0 and start.answer == 202, describe([start])
    gap = start.t - refresh.t
    assert gap < 2.0, "new dialog %.2fs after the 481, not at once" % gap
    lab.gw.wait_log(failed_log(481, 1))
    activate(lab, new, "second dialog", 4)
    r = lab.pool.notify(old, "active;expires=4", body=bob_pidf(note="stale dialog"))
    assert r.status == 481, r.start
    time.sleep(0.5)
    ev = lab.from_bob()
    assert not any(e.get("status") == "stale dialog" for e in ev), ev
    assert not any(e.get("type") in ("unsubscribed", "unavailable") for e in ev), ev
    assert "presence_subscription_cancelled" not in lab.gw.text()
    subs = lab.pool.subscribes()
    # initial, the refused refresh, the new dialog, perhaps its own refreshes (200)
    assert [m.answer for m in subs[:3]] == [202, 481, 202], describe(subs)
    assert all(m.call_id == new.call_id and getattr(m, "answer", 200) == 200
               for m in subs[3:]), describe(subs)   # (one may be on its way to an answer)
    assert lab.pool.errors == [], lab.pool.errors


@pytest.mark.parametrize("code", [404, 405, 480, 489, 604])
def test_refresh_failure_ends_the_subscription(tmp_path, running, daemons, certs, code):
    """D4: 404 (and, one from each part of the list, 405, 480, 489, 604) on a refresh ends
    the subscription: alice gets unavailable for what was shown and `unsubscribed`, and no
    SUBSCRIBE follows for 3 s ([presence] retry = 1 s: a gateway that took the code for
    transient would have tried again)."""
    lab = make_lab(tmp_path, running, daemons, certs, retry=1, max_expires=4)
    lab.pool.script(code, refresh=True)
    sub = lab.subscribe()
    activate(lab, sub, "until the %d" % code, 4)
    wait_for(lambda: "unsubscribed" in types(lab), 15, "unsubscribed at alice")
    assert len(sub.requests) == 2, describe(sub.requests)
    refresh = sub.requests[1]
    assert refresh.answer == code and refresh.tag("to") == sub.local_tag, describe(sub.requests)
    assert refresh.call_id == sub.call_id and int(refresh.header("expires")) > 0
    lab.gw.wait_log(failed_log(code, 1))
    lab.gw.wait_log(r"event=presence_subscription_cancelled %s why=\"%s\""
                    % (SUB_LOG, re.escape(REASONS[code])))
    ev = types(lab)
    assert ev.index("unavailable") < ev.index("unsubscribed"), lab.from_bob()
    n = len(lab.pool.subscribes(fetches=True))
    time.sleep(3)
    assert len(lab.pool.subscribes(fetches=True)) == n, describe(lab.pool.subscribes(True))
    assert [m.answer for m in lab.pool.subscribes()] == [202, code]
    assert len(lab.pool.subs) == 1, [s.call_id for s in lab.pool.subs]
    assert lab.pool.errors == [], lab.pool.errors


def test_500_on_refresh_is_retried_in_the_dialog(tmp_path, running, daemons, certs):
    """500 on a refresh is transient: the same dialog (Call-ID, To-tag, a higher CSeq) asks
    again after [presence] retry = 3 s (3-4 s with the tick), not at once (the next tick,
    within 1 s) and not in a new dialog; alice keeps her subscription and sees nothing go."""
    lab = make_lab(tmp_path, running, daemons, certs, retry=3, max_expires=4)
    lab.pool.script(500, refresh=True)
    sub = lab.subscribe()
    activate(lab, sub, "through the 500", 4)
    wait_for(lambda: len(sub.requests) >= 3 and hasattr(sub.requests[2], "answer") or
             len(lab.pool.subs) > 1 or "unsubscribed" in types(lab), 15,
             "the refresh after the 500")
    assert "unsubscribed" not in types(lab), lab.from_bob()
    assert len(lab.pool.subs) == 1, describe(lab.pool.subscribes())
    refresh, again = sub.requests[1], sub.requests[2]
    assert refresh.answer == 500 and again.answer == 200, describe(sub.requests)
    assert again.call_id == sub.call_id and again.tag("to") == sub.local_tag
    assert again.cseq[0] > refresh.cseq[0], describe(sub.requests)
    assert int(again.header("expires")) > 0, describe(sub.requests)
    gap = again.t - refresh.t
    assert 2.5 <= gap <= 5.5, "retried %.2fs after the 500, [presence] retry = 3" % gap
    lab.gw.wait_log(failed_log(500, 1))
    lab.gw.wait_log(r"event=presence_refreshed %s expires=4" % SUB_LOG)
    time.sleep(0.5)
    ev = lab.from_bob()
    assert not any(e.get("type") in ("unsubscribed", "unavailable") for e in ev), ev
    assert [s.call_id for s in lab.pool.subs if not s.fetch] == [sub.call_id]
    assert all(m.call_id == sub.call_id for m in lab.pool.subscribes())
    assert "presence_subscription_cancelled" not in lab.gw.text()
    assert lab.pool.errors == [], lab.pool.errors
