/* The edge's end of the internal link: accepts gateways, picks the active one, and keeps one
 * outbound stream of frames that survives gateway restarts and failover. */
#ifndef PARLEY_PROXY_GWLINK_H
#define PARLEY_PROXY_GWLINK_H

#include "link.h"
#include "link_conf.h"

#include <uv.h>

struct gwlink;

struct gwlink_opts {
	const char *node_id;
	const char *listen_host;
	uint16_t listen_port;
	const struct link_conf *conf;
	/* What the S2S side wants to hear about. */
	void (*on_policy)(void *arg, const Parley__Link__PolicySnapshot *snap);
	void (*on_room)(void *arg);  /* the outbound window reopened */
	void (*on_acked)(void *arg); /* the gateway acknowledged frames */
	/* A stanza toward a partner (frame seq from gateway p). The hook owns its outcome and
	 * reports it with gwlink_delivered or gwlink_bounce, which also settle the frame; until
	 * then the gateway keeps it. NULL: such frames are settled at once (logged). */
	void (*on_stanza)(void *arg, struct link_peer *p, uint64_t seq,
			  const Parley__Link__Stanza *st);
	void *hook_arg;
	/* test-only: emit this many stanza frames (ref 1..n) with a body of body_bytes */
	uint64_t source_frames;
	uint32_t source_body_bytes;
};

/* Starts listening. Returns 0 or an error (logged). */
int gwlink_start(uv_loop_t *loop, const struct gwlink_opts *o, struct gwlink **out);
/* Sends Goodbye to every gateway and closes the listener and sessions. */
void gwlink_stop(struct gwlink *g);
void gwlink_free(struct gwlink *g);
/* Reloads the link certificates for new connections. */
int gwlink_reload_tls(struct gwlink *g, const struct link_conf *conf);

/* The shared outbound stream (stanzas toward the active gateway). */
struct link_out *gwlink_out(struct gwlink *g);
/* Outcomes of stanzas handed to on_stanza. They travel on the shared outbound stream, so the
 * active gateway hears them (the only one that sends while it is active; after a failover
 * the new one hears about refs it does not know and ignores them). Delivered refs of one loop
 * turn are batched into one frame. The frame (p, seq) is settled once its reply is queued on
 * the link; if the link's hard capacity is reached, replies wait for room. Strings are
 * copied. */
void gwlink_delivered(struct gwlink *g, struct link_peer *p, uint64_t seq, uint64_t ref);
void gwlink_bounce(struct gwlink *g, struct link_peer *p, uint64_t seq, uint64_t ref,
		   const char *type, const char *cond, const char *text);

/* The newest policy generation received from any gateway, 0 if none. */
uint64_t gwlink_policy_generation(const struct gwlink *g);

/* One gateway as parleyctl shows it. Strings are borrowed: valid during the callback. */
struct gwlink_peer_info {
	const char *node_id;
	uint32_t priority;
	bool up;		    /* a session is up */
	bool active;		    /* it drains the shared outbound stream */
	uint64_t session_id;	    /* connection id of the session, 0 if none */
	uint64_t connects;	    /* sessions it has had */
	uint64_t peer_outbox_depth; /* its unacknowledged frames toward us, from its last ping */
};
typedef void (*gwlink_peer_cb)(void *arg, const struct gwlink_peer_info *pi);
/* Calls cb for every gateway ever seen since start. */
void gwlink_foreach_peer(const struct gwlink *g, gwlink_peer_cb cb, void *arg);
/* Frames on the shared outbound stream not yet acknowledged (the link window's depth). */
uint32_t gwlink_outbox_depth(const struct gwlink *g);

#endif
