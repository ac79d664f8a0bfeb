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

/* True if the SIP user org_jid (bare) has an active subscription to the partner user
 * partner_jid: what a PublicUnverified partner needs to reach that user (DESIGN.md). */
bool presence_user_added(const struct presence *p, const char *org_jid, const char *partner_jid);

struct presence_stats {
	uint64_t subs_uac, subs_uas;		/* live subscriptions each way (gauges) */
	uint64_t subscribe_out, notify_in, notify_out, refreshes, presence_out;
	uint64_t subscribe_failed, leaks_refused;
};
const struct presence_stats *presence_stats(const struct presence *p);

#endif
