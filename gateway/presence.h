/* Presence and subscriptions both ways (MAPPING.md D and E; RFC 8048, RFC 6665, RFC 3856):
 * XMPP subscriptions to SIP users become SUBSCRIBE dialogs the gateway owns and refreshes;
 * SIP SUBSCRIBEs to partner users become XMPP subscriptions, answered with NOTIFYs built
 * from the partner users' last presence. State lives in memory and is written behind to the
 * store, so a restarted gateway resumes every dialog. */
#ifndef PARLEY_GATEWAY_PRESENCE_H
#define PARLEY_GATEWAY_PRESENCE_H

#include "edgelink.h"
#include "link.h"
#include "sip_stack.h"
#include "store.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct presence_conf {
	uint64_t uas_max_expires_s; /* longest subscription we grant a SIP watcher */
	uint64_t retry_s;	    /* wait before a failed SUBSCRIBE is tried again */
	bool publish;		    /* D9: PUBLISH partner users' presence to the pool */
	uint64_t publish_expires_s; /* lifetime asked for a publication */
	bool pidf_thread;	    /* parse NOTIFY bodies on a second thread (read at start) */
};

struct presence;

/* Loads every stored subscription and presence from st (owned by the caller, kept open
 * while the presence lives), registers the dialogs with sip and schedules refreshes.
 * Returns NULL only if loading failed (logged). */
struct presence *presence_new(uv_loop_t *loop, const struct presence_conf *conf,
			      struct sip_stack *sip, struct edgelink *edges, struct store *st);
/* Unregisters dialogs and closes handles; the memory goes with the loop's close callbacks. */
void presence_free(struct presence *p);
/* Policy (not copied): subscription refresh interval, partner types. */
void presence_set_policy(struct presence *p, const Parley__Link__PolicySnapshot *snap);

/* A presence stanza from an edge, already checked by the translator (a served user, a
 * partner). The presence acknowledges (peer, seq) itself once its effects are stored. */
void presence_from_xmpp(struct presence *p, struct link_peer *peer, uint64_t seq,
			const Parley__Link__Stanza *st);
/* SUBSCRIBE or NOTIFY from the front end: answered (true), or false for other methods. */
bool presence_sip_request(struct presence *p, struct sip_stxn *st, struct sip_msg *req);

/* Ends every subscription, both ways, whose organisation user (bare JID) and partner user
 * (bare JID) allowed() refuses: after a policy change (a user denied, a partner removed).
 * The partner user gets unsubscribed (it watched ours) or unsubscribe (ours watched it),
 * the pool Expires: 0 or the SIP watcher terminated;reason=rejected. */
void presence_revoke(struct presence *p,
		     bool (*allowed)(void *arg, const char *org_jid, const char *partner_jid),
		     void *arg);

/* True if the SIP user org_jid (bare) has an active subscription to the partner user
 * partner_jid: what a PublicUnverified partner needs to reach that user (DESIGN.md). */
bool presence_user_added(const struct presence *p, const char *org_jid, const char *partner_jid);

struct presence_stats {
	uint64_t subs_uac, subs_uas;		/* live subscriptions each way (gauges) */
	uint64_t subscribe_out, notify_in, notify_out, refreshes, presence_out;
	uint64_t subscribe_failed;
	uint64_t contacts_refused; /* presence not cached: MAX_CONTACTS reached */
};
const struct presence_stats *presence_stats(const struct presence *p);

/* One subscription as presence_foreach_sub shows it; the strings live until the next call
 * into the presence. */
struct presence_sub_info {
	int dir;	    /* enum store_sub_dir */
	const char *jid;    /* partner user, bare */
	const char *sip;    /* organisation user's AOR */
	int state;	    /* enum store_sub_state */
	int64_t expires_at; /* unix seconds; 0 = not yet granted */
};
/* Calls cb for every live subscription, both directions (one-shot fetches left out). */
void presence_foreach_sub(const struct presence *p,
			  void (*cb)(void *arg, const struct presence_sub_info *si), void *arg);

#endif
