/* The gateway's end of the internal link: dials every configured edge, reconnects with
 * jittered exponential backoff, and keeps one outbound stream per edge. */
#ifndef PARLEY_GATEWAY_EDGELINK_H
#define PARLEY_GATEWAY_EDGELINK_H

#include "link.h"
#include "link_conf.h"

#include <uv.h>

struct edgelink;

/* Called for every reliable frame an edge sends (first time seen in its epoch). The
 * handler calls link_peer_processed(peer, seq) once the frame reached a final outcome, or
 * link_peer_processed_in(peer, epoch, seq) when that happens after the callback. */
typedef void (*edgelink_frame_cb)(void *arg, struct link_peer *peer, uint64_t seq,
				  const Parley__Link__Frame *f);
/* Called after all frames of one read were handed over. */
typedef void (*edgelink_batch_cb)(void *arg);

struct edgelink_opts {
	const char *node_id;
	uint32_t priority;
	const char *const *edges; /* "host:port" each */
	size_t nedges;
	const struct link_conf *conf;
	uint64_t reconnect_min_ms;
	uint64_t reconnect_max_ms;
	edgelink_frame_cb on_frame;
	edgelink_batch_cb on_batch_end;
	/* A session to an edge came up: out is that edge's outbound stream (send the policy). */
	void (*on_edge_up)(void *arg, struct link_out *out);
	void *arg;
};

/* Returns 0, or an error (logged) for an unusable edge address or TLS setting. */
int edgelink_start(uv_loop_t *loop, const struct edgelink_opts *o, struct edgelink **out);
void edgelink_stop(struct edgelink *e);
void edgelink_free(struct edgelink *e);
int edgelink_reload_tls(struct edgelink *e, const struct link_conf *conf);
/* Number of edges whose session is up. */
size_t edgelink_up_count(const struct edgelink *e);

/* One configured edge as parleyctl shows it. Strings are borrowed: valid during the
 * callback. */
struct edgelink_edge_info {
	const char *host;
	uint16_t port;
	const char *node_id;	    /* the link's name for the edge (see link_peer) */
	bool up;		    /* a session is up */
	bool connecting;	    /* a connection attempt or session exists */
	uint64_t session_id;	    /* connection id of the session, 0 if none */
	uint64_t connects;	    /* sessions it has had */
	uint32_t outbox_depth;	    /* our unacknowledged frames toward it (window depth) */
	uint64_t peer_outbox_depth; /* its unacknowledged frames toward us, from its last ping */
	uint64_t backoff_ms;	    /* current reconnect delay */
};
typedef void (*edgelink_edge_cb)(void *arg, const struct edgelink_edge_info *ei);
/* Calls cb for every configured edge, in configuration order. */
void edgelink_foreach_edge(const struct edgelink *e, edgelink_edge_cb cb, void *arg);
/* Sends f toward a partner domain: to the edge chosen by hashing the domain over the edges
 * whose session is up, so each edge keeps one stream per domain pair (DESIGN.md). Returns
 * 0, PE_CLOSED when no edge is up, PE_FULL when that edge's window is full (the caller
 * answers 503 + Retry-After), or PE_TOOBIG. */
int edgelink_send_to(struct edgelink *e, const char *domain, Parley__Link__Frame *f);
/* Sends f (a reliable frame, e.g. a new policy) on every edge's outbound stream; edges that
 * are down get it when they reconnect (it waits in their outbox). */
void edgelink_broadcast(struct edgelink *e, Parley__Link__Frame *f);

#endif
