"""Presence and subscriptions both ways (issue 7, MAPPING.md D and E), end to end: Prosody
(alice@partner.test) <-> parley-proxy <-> parley-gateway <-> Kamailio's presence server
(bob@corp.test publishes and watches through it)."""
import os
import re
import shutil
import sqlite3
import time

import pytest

from harness import wait_for
from imlab import GW_SIP, Lab, lab_certs
from sipua import UA

ALICE = "alice@partner.test"
FEDERATED = {"partner.test": {"type": "federated"}}  # federated partners see status notes
BOB = "sip:bob@corp.test"

PIDF = """<?xml version='1.0' encoding='UTF-8'?>
<presence xmlns='urn:ietf:params:xml:ns:pidf'
  xmlns:dm='urn:ietf:params:xml:ns:pidf:data-model'
  xmlns:rpid='urn:ietf:params:xml:ns:pidf:rpid' entity='sip:bob@corp.test'>
 <tuple id='{tid}'><status><basic>{basic}</basic>{show}</status>{note}</tuple>
 {person}
</presence>"""


def bob_pidf(basic="open", activity=None, note=None, show=None, tid="t1"):
    return PIDF.format(
        tid=tid, basic=basic,
        show="<show xmlns='jabber:client'>%s</show>" % show if show else "",
        note="<note xml:lang='en'>%s</note>" % note if note else "",
        person="<dm:person id='p1'><rpid:activities><rpid:%s/></rpid:activities></dm:person>"
        % activity if activity else "")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return lab_certs(tmp_path_factory)


def from_bob(e):
    return e["from"].split("/")[0] == "bob@corp.test"


def presences(client, since=0):
    return [e for e in client.events("presence")[since:] if from_bob(e)]


def wait_presence(client, pred, what, since=0, timeout=20):
    def found():
        return [e for e in presences(client, since) if pred(e)]
    wait_for(lambda: found(), timeout, what)
    return found()[-1]


def notifies(ua, pred=None):
    return [m for m in ua.received if m.method == "NOTIFY" and (pred is None or pred(m))]


def pidf_fields(text):
    """basic, show, note of the first tuple of a PIDF we wrote."""
    basic = re.search(r"<basic>(\w+)</basic>", text)
    show = re.search(r"<show[^>]*>(\w+)</show>", text)
    note = re.search(r"<note[^>]*>([^<]*)</note>", text)
    return (basic and basic.group(1), show and show.group(1), note and note.group(1))


def subscribe_alice_to_bob(lab):
    assert lab.bob.publish(body=bob_pidf(note="at my desk")).status == 200
    lab.alice.subscribe("bob@corp.test")
    wait_for(lambda: any(from_bob(e) and e.get("type") == "subscribed"
                         for e in lab.alice.events("presence")), 30, "subscribed at alice")
    return wait_presence(lab.alice, lambda e: e.get("type") in (None, "", "available"),
                         "bob's first presence at alice")


def subscribe_bob_to_alice(lab):
    lab.alice.set_presence(show="away", status="lunch")
    r, dialog = lab.bob.subscribe("sip:alice@partner.test", expires=600)
    assert r.status == 200, r.start  # D8: never 202
    m = lab.bob.wait_request("NOTIFY", timeout=20,
                             pred=lambda m: "active" in (m.header("subscription-state") or "")
                             and "<basic>open" in m.text)
    return dialog, m


@pytest.mark.parametrize("pidf_thread", ["true", "false"])
def test_alice_watches_bob(tmp_path, running, daemons, certs, pidf_thread):
    """D1, D2, E2-E5: bob's states reach alice with the mapped show and status, with the
    NOTIFY bodies parsed on the PIDF thread (the default) and in the loop."""
    lab = Lab(tmp_path, running, daemons, certs, partners=FEDERATED,
              gw_extra="[presence]\npidf_thread = %s\n" % pidf_thread)
    lab.gw.wait_log(r"event=presence_loaded .*pidf_thread=%d" % (pidf_thread == "true"))
    first = subscribe_alice_to_bob(lab)
    assert first.get("show") in (None, "", "available", "chat"), first
    assert first.get("status") == "at my desk", first
    states = [
        (dict(activity="away", note="back soon"), "away", "back soon"),
        (dict(activity="busy", note="in a call"), "dnd", "in a call"),
        (dict(show="dnd", note="do not disturb"), "dnd", "do not disturb"),
        (dict(activity="vacation", note="on holiday"), "xa", "on holiday"),
        (dict(note="around again"), None, "around again"),
    ]
    for kw, show, status in states:
        n = len(lab.alice.events("presence"))
        assert lab.bob.publish(body=bob_pidf(**kw)).status == 200
        e = wait_presence(lab.alice, lambda e: e.get("status") == status,
                          "bob %s at alice" % status, since=n)
        assert (e.get("show") or None) in ((show,) if show else (None, "available", "chat")), e
        # slixmpp reports an available presence's show as its "type"
        assert e.get("type") in (None, "", "available", show), e
    n = len(lab.alice.events("presence"))
    assert lab.bob.publish(body=bob_pidf(basic="closed", note="gone home")).status == 200
    e = wait_presence(lab.alice, lambda e: e.get("type") == "unavailable",
                      "bob offline at alice", since=n)
    assert e.get("status") == "gone home", e


def test_bob_watches_alice(tmp_path, running, daemons, certs):
    """D6, E2-E6: alice's changes reach bob's SIP watcher as PIDF with the mapped values."""
    lab = Lab(tmp_path, running, daemons, certs, partners=FEDERATED)
    dialog, m = subscribe_bob_to_alice(lab)
    assert m.header("event").startswith("presence")
    assert m.header("content-type").startswith("application/pidf+xml")
    assert pidf_fields(m.text) == ("open", "away", "lunch"), m.text
    assert "<rpid:away" in m.text or ":away/>" in m.text, m.text  # E5
    for show, status in (("dnd", "busy now"), ("xa", "on leave"), (None, "free")):
        k = len(notifies(lab.bob))
        lab.alice.set_presence(show=show, status=status)
        wait_for(lambda: len(notifies(lab.bob, lambda m: status in m.text)) > 0
                 and len(notifies(lab.bob)) > k, 20, "NOTIFY with %s" % status)
        m = notifies(lab.bob, lambda m: status in m.text)[-1]
        assert pidf_fields(m.text) == ("open", show, status), m.text
    # E6: the tuple id encodes alice's resource, a valid XML ID
    assert re.search(r"<tuple id=\"ID-[0-9a-f]+\"", m.text) or \
        re.search(r"<tuple id='ID-[0-9a-f]+'", m.text), m.text
    k = len(notifies(lab.bob))
    lab.alice.set_presence(ptype="unavailable", status="bye")
    wait_for(lambda: any("<basic>closed" in n.text for n in notifies(lab.bob)[k:]), 20,
             "a closed NOTIFY")


def test_unsubscribe_both_ways(tmp_path, running, daemons, certs):
    """D5, D7: unsubscribing on either side ends the SIP dialog and the XMPP subscription."""
    lab = Lab(tmp_path, running, daemons, certs, partners=FEDERATED)
    subscribe_alice_to_bob(lab)
    dialog, _ = subscribe_bob_to_alice(lab)
    # alice unsubscribes from bob: SUBSCRIBE Expires: 0 to the pool, unsubscribed to alice
    # (Prosody does not pass that `unsubscribed` on: alice's roster already says none)
    lab.alice.unsubscribe("bob@corp.test")
    lab.gw.wait_log(r"event=presence_sip_unsubscribed jid=alice@partner.test "
                    r"sip=sip:bob@corp.test status=200")
    n = len(presences(lab.alice))
    assert lab.bob.publish(body=bob_pidf(activity="away", note="unseen")).status == 200
    time.sleep(2)
    assert not any(e.get("status") == "unseen" for e in presences(lab.alice, n))
    # bob unsubscribes from alice: NOTIFY terminated;reason=timeout with closed PIDF
    r, _ = lab.bob.subscribe("sip:alice@partner.test", expires=0, dialog=dialog)
    assert r.status == 200, r.start
    m = lab.bob.wait_request("NOTIFY", timeout=20,
                             pred=lambda m: "terminated" in (m.header("subscription-state")
                                                             or ""))
    assert "reason=timeout" in m.header("subscription-state")
    assert "<basic>closed" in m.text, m.text
    e = lab.alice.wait_event(lambda e: e.get("ev") == "presence" and from_bob(e) and
                             e.get("type") == "unsubscribe", 20, "unsubscribe at alice")
    assert e


def test_no_presence_leaks(tmp_path, running, daemons, certs):
    """E8: a notification goes only to its own subscriber, in both directions."""
    lab = Lab(tmp_path, running, daemons, certs, partners=FEDERATED, partner_users=("dave",))
    dave = lab.xmpp_user("dave", auto_authorize=False)
    carol = lab.sip_user("carol", "127.0.0.64")
    subscribe_alice_to_bob(lab)
    subscribe_bob_to_alice(lab)
    lab.alice.set_presence(show="dnd", status="secret-a")
    assert lab.bob.publish(body=bob_pidf(activity="away", note="secret-b")).status == 200
    wait_for(lambda: notifies(lab.bob, lambda m: "secret-a" in m.text), 20, "bob's NOTIFY")
    wait_presence(lab.alice, lambda e: e.get("status") == "secret-b", "alice's update")
    time.sleep(1)
    assert notifies(carol) == []
    assert [e for e in dave.events("presence") if "corp.test" in e["from"]] == []
    # a SIP watcher the partner user refuses learns nothing
    dave.set_presence(show="chat", status="secret-d")
    r, _ = carol.subscribe("sip:dave@partner.test", expires=600)
    assert r.status == 200, r.start
    e = dave.wait_event(lambda e: e.get("ev") == "presence" and e.get("type") == "subscribe",
                        20, "carol's subscribe at dave")
    assert e["from"].startswith("carol@corp.test")
    dave.unsubscribed("carol@corp.test")
    m = carol.wait_request("NOTIFY", timeout=20,
                           pred=lambda m: "terminated" in (m.header("subscription-state") or ""))
    assert "reason=rejected" in m.header("subscription-state")
    assert all("secret-d" not in n.text for n in notifies(carol))


def test_gateway_sigkill_keeps_subscriptions(tmp_path, running, daemons, certs):
    """Store: after a SIGKILL and restart of the gateway, updates keep flowing both ways
    without anyone subscribing again."""
    lab = Lab(tmp_path, running, daemons, certs, partners=FEDERATED)
    subscribe_alice_to_bob(lab)
    subscribe_bob_to_alice(lab)
    time.sleep(0.5)  # past the store's write-behind delay
    lab.gw.kill()
    lab.gw.start()
    lab.gw.wait_log(r"event=presence_loaded uac=1 uas=1")
    lab.px.wait_log(r"event=gateway_active", timeout=20)
    n = len(lab.alice.events("presence"))
    assert lab.bob.publish(body=bob_pidf(activity="busy", note="after restart")).status == 200
    e = wait_presence(lab.alice, lambda e: e.get("status") == "after restart",
                      "bob's update after the restart", since=n)
    assert e.get("show") == "dnd"
    k = len(notifies(lab.bob))
    lab.alice.set_presence(show="xa", status="still here")
    wait_for(lambda: notifies(lab.bob, lambda m: "still here" in m.text), 20,
             "alice's update at bob after the restart")
    m = notifies(lab.bob, lambda m: "still here" in m.text)[-1]
    assert pidf_fields(m.text) == ("open", "xa", "still here")
    # the NOTIFYs kept one dialog with rising CSeq
    cseqs = [n.cseq[0] for n in notifies(lab.bob)[k - 1:]]
    assert cseqs == sorted(cseqs) and len(set(cseqs)) == len(cseqs), cseqs


def test_subscribe_errors(tmp_path, running, daemons, certs):
    """D8 and A1/J1 for SUBSCRIBE, sent straight to the gateway."""
    Lab(tmp_path, running, daemons, certs, partners=FEDERATED)
    ua = UA("bob", "corp.test", "127.0.0.65", proxy=(GW_SIP, 5060))
    ua.start()
    running.append(ua)
    r, _ = ua.subscribe("sip:alice@partner.test", event="dialog")
    assert r.status == 489, r.start
    assert "presence" in (r.header("allow-events") or "")
    r, _ = ua.subscribe("sip:alice@partner.test", accept="text/plain")
    assert r.status == 406, r.start
    r = ua.request("SUBSCRIBE", "sips:alice@partner.test",
                   headers=[("Event", "presence"), ("Expires", "60")])
    assert r.status == 416, r.start
    r, _ = ua.subscribe("sip:eve@stranger.test")
    assert r.status == 403, r.start
    r = ua.request("NOTIFY", "sip:%s:5060" % GW_SIP,
                   headers=[("Event", "presence"), ("Subscription-State", "active")])
    assert r.status == 481, r.start


def test_refresh_at_the_granted_expiry(tmp_path, running, daemons, certs):
    """D3: the gateway owns the refresh: with the pool granting 6 s it re-SUBSCRIBEs in the
    dialog before that runs out, and updates keep flowing."""
    lab = Lab(tmp_path, running, daemons, certs, partners=FEDERATED,
              kamailio={"presence_max_expires": 6})
    subscribe_alice_to_bob(lab)
    lab.gw.wait_log(r"event=presence_refreshed jid=alice@partner.test sip=sip:bob@corp.test "
                    r"expires=6", timeout=15)
    time.sleep(7)  # past the first grant: the dialog lives on through the refreshes
    n = len(lab.alice.events("presence"))
    assert lab.bob.publish(body=bob_pidf(activity="away", note="still subscribed")).status == 200
    wait_presence(lab.alice, lambda e: e.get("status") == "still subscribed",
                  "an update after the first grant ran out", since=n)


def test_subscribe_failures(tmp_path, running, daemons, certs):
    """D4: 403/489/603 cancel the authorisation (unsubscribed); a transient failure (480 on
    the first SUBSCRIBE) is retried."""
    lab = Lab(tmp_path, running, daemons, certs, partners=FEDERATED,
              gw_extra="[presence]\nretry = 1\n")
    for code in (403, 489, 603):
        lab.alice.subscribe("refuse%d@corp.test" % code)
        e = lab.alice.wait_event(
            lambda e: e.get("ev") == "presence" and e.get("type") == "unsubscribed" and
            e["from"].startswith("refuse%d@" % code), 20, "unsubscribed after %d" % code)
        assert e
    lab.alice.subscribe("refuse480@corp.test")
    lab.gw.wait_log(r"event=presence_subscribe_failed jid=alice@partner.test "
                    r"sip=sip:refuse480@corp.test status=480")
    end = time.monotonic() + 15
    while time.monotonic() < end and lab.gw.text().count("sip=sip:refuse480@corp.test status=480") < 2:
        time.sleep(0.2)
    assert lab.gw.text().count("sip=sip:refuse480@corp.test status=480") >= 2
    assert not any(e.get("type") == "unsubscribed" and e["from"].startswith("refuse480@")
                   for e in lab.alice.events("presence"))


def test_probe_fetches_current_state(tmp_path, running, daemons, certs):
    """E7: when alice logs in again her server probes bob; the gateway fetches bob's state
    (SUBSCRIBE Expires: 0 in a new dialog) and answers with it."""
    lab = Lab(tmp_path, running, daemons, certs, partners=FEDERATED)
    subscribe_alice_to_bob(lab)
    assert lab.bob.publish(body=bob_pidf(activity="busy", note="fetched")).status == 200
    wait_presence(lab.alice, lambda e: e.get("status") == "fetched", "bob busy at alice")
    lab.alice.stop()
    again = lab.xmpp_user("alice", password="pw-a")
    e = wait_presence(again, lambda e: e.get("status") == "fetched", "bob's state after login")
    assert e.get("show") == "dnd"
    lab.gw.wait_log(r"event=presence_fetch jid=alice@partner.test sip=sip:bob@corp.test")


def presentity(lab, user):
    """Kamailio's stored publications of user@partner.test: [(etag, body)], read from a copy
    of its database (Kamailio's SQLite has no busy timeout: a reader's lock fails its write)."""
    copy = os.path.join(str(lab.tmp), "presentity-copy.sqlite")
    shutil.copyfile(lab.kam.db, copy)
    con = sqlite3.connect(copy)
    try:
        return con.execute("SELECT etag, body FROM presentity WHERE username = ? AND "
                           "domain = 'partner.test'", (user,)).fetchall()
    finally:
        con.close()


def test_publish_to_the_pool(tmp_path, running, daemons, certs):
    """D9: with [presence] publish on, partner users' presence is PUBLISHed to the pool's
    presence server (SIP-ETag kept, SIP-If-Match on changes) and a lost publication
    (412) starts again."""
    lab = Lab(tmp_path, running, daemons, certs, partners=FEDERATED,
              gw_extra="[presence]\npublish = true\nretry = 1\n")
    subscribe_bob_to_alice(lab)
    wait_for(lambda: any(b"lunch" in (row[1] or b"") if isinstance(row[1], bytes)
                         else "lunch" in (row[1] or "") for row in presentity(lab, "alice")),
             20, "alice's publication at the pool")
    first = presentity(lab, "alice")[0][0]
    lab.alice.set_presence(show="dnd", status="publishing")
    wait_for(lambda: any("publishing" in str(row[1]) for row in presentity(lab, "alice")), 20,
             "the modified publication")
    assert len(presentity(lab, "alice")) == 1  # the same publication, modified
    assert presentity(lab, "alice")[0][0] != first  # a new entity tag each time
    # the pool forgets it: a restart with the row gone answers SIP-If-Match with 412
    lab.kam.stop()
    con = sqlite3.connect(lab.kam.db)
    con.execute("DELETE FROM presentity")
    con.commit()
    con.close()
    lab.kam.start()
    lab.alice.set_presence(show="away", status="after 412")
    lab.gw.wait_log(r"event=presence_publish_expired jid=alice@partner.test")
    wait_for(lambda: any("after 412" in str(row[1]) for row in presentity(lab, "alice")), 20,
             "a new publication after the 412")


def test_two_sip_devices_most_available_wins(tmp_path, running, daemons, certs):
    """Kamailio aggregates the publications of bob's two devices into one document whose
    tuples are not ours: alice sees bob's most available state, not the first tuple's."""
    lab = Lab(tmp_path, running, daemons, certs, partners=FEDERATED)
    subscribe_alice_to_bob(lab)
    phone = UA("bob", "corp.test", "127.0.0.64", proxy=("127.0.0.61", 5060))
    phone.start()
    running.append(phone)
    # (a person-level RPID activity would describe bob on every device: per tuple here)
    assert lab.bob.publish(body=bob_pidf(show="dnd", note="desk busy")).status == 200
    n = len(lab.alice.events("presence"))
    assert phone.publish(body=bob_pidf(note="phone free", tid="phone")).status == 200
    e = wait_presence(lab.alice, lambda e: e.get("status") == "phone free",
                      "the phone's available state", since=n)
    assert (e.get("show") or None) in (None, "available"), e
    # the desk publishes again (whichever comes first in the pool's document): still the phone
    n = len(lab.alice.events("presence"))
    assert lab.bob.publish(body=bob_pidf(show="dnd", note="desk still busy")).status == 200
    wait_for(lambda: len(presences(lab.alice, n)) > 0, 20, "a presence after the desk's update")
    time.sleep(1)
    last = presences(lab.alice, n)[-1]
    assert last.get("status") == "phone free" and (last.get("show") or None) in (
        None, "available"), presences(lab.alice, n)


def test_proxy_restart_keeps_presence_flowing(tmp_path, running, daemons, certs):
    """The edge keeps no presence state: after it is killed and restarted, the partner's
    server reconnects, the gateway relinks, a change made while no edge was connected is
    delivered, and updates flow both ways in the same SIP dialogs, with no one subscribing
    again."""
    lab = Lab(tmp_path, running, daemons, certs, partners=FEDERATED)
    subscribe_alice_to_bob(lab)
    subscribe_bob_to_alice(lab)
    applied = lab.px.text().count("event=policy_applied")
    lab.px.kill()
    lab.gw.wait_log(r"event=link_down")
    # a change while no edge is connected is kept and sent when one is back
    assert lab.bob.publish(body=bob_pidf(activity="busy", note="while it was down")).status == 200
    lab.gw.wait_log(r"event=presence_lost from=bob@corp.test")
    lab.px.start()
    wait_for(lambda: lab.px.text().count("event=policy_applied") > applied, 20,
             "the restarted edge's policy")
    assert "event=s2s_out_bounce" not in lab.px.text()  # replayed frames wait for the policy
    e = wait_presence(lab.alice, lambda e: e.get("status") == "while it was down",
                      "the change made while the edge was down", timeout=40)
    assert e.get("show") == "dnd"
    n = len(lab.alice.events("presence"))
    assert lab.bob.publish(body=bob_pidf(activity="away", note="after the edge")).status == 200
    wait_presence(lab.alice, lambda e: e.get("status") == "after the edge",
                  "bob's update after the edge restarted", since=n, timeout=40)
    lab.alice.set_presence(show="dnd", status="edge back")
    wait_for(lambda: notifies(lab.bob, lambda m: "edge back" in m.text), 40,
             "alice's update at bob after the edge restarted")
    assert lab.gw.text().count("event=presence_subscribe ") == 1  # nobody subscribed again
