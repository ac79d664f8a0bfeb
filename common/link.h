/* The internal link's session layer: Hello, sequenced reliable frames, batched selective
 * acks, replay after reconnect, ping/pong and dead-peer detection, over one net_conn.
 * Wire format and delivery rules: docs/LINK.md. */
#ifndef PARLEY_LINK_H
#define PARLEY_LINK_H

#include "frame.h"
#include "link_seq.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define LINK_VERSION 1

struct net_conn;
struct link_session;

struct link_cfg {
	const char *node_id;
	int role;              /* PARLEY__LINK__ROLE__ROLE_PROXY or _GATEWAY */
	uint32_t priority;     /* gateways: lower is preferred */
	uint32_t window;       /* most unacknowledged frames we send */
	size_t window_bytes;   /* most unacknowledged bytes we send */
	size_t max_frame;      /* largest frame body accepted or sent */
	uint32_t ping_ms;      /* interval between pings */
	uint32_t dead_ms;      /* no input for this long: the peer is dead */
	uint32_t hello_ms;     /* the peer must say Hello within this long */
	const char *const *pinned; /* names the peer certificate must carry */
	size_t npinned;
};

/* A reliable outbound stream of frames in our epoch. The gateway has one per edge; the
 * proxy one shared by all gateways, drained by whichever is active. */
struct link_out {
	struct link_outbox ob;
	struct link_session *tx; /* the session transmitting it, or NULL */
	size_t max_frame;
	bool was_full;
	void (*on_room)(struct link_out *o, void *arg); /* window reopened after full */
	void (*on_acked)(struct link_out *o, void *arg); /* the head moved: frames were acked */
	void *arg;
};

/* One remote node as we know it across connections. */
struct link_peer {
	char node_id[128];
	int role;
	uint32_t priority;
	struct link_inbox in;
	struct link_out *out;       /* what this peer's acks refer to */
	struct link_session *sess;  /* current connection, or NULL */
	uint64_t peer_outbox_depth; /* from its last Ping/Pong */
	uint64_t connects;
	void *data;                 /* application's */
};

struct link_app {
	/* Acceptor: the dialer's Hello arrived. Return the peer to bind (create it if new,
	 * with link_peer_init) or NULL to refuse. Dialers bind their peer at creation. */
	struct link_peer *(*on_hello)(struct link_session *s,
				      const Parley__Link__Hello *h, void *arg);
	/* Hellos exchanged: the session can carry frames. */
	void (*on_up)(struct link_session *s, void *arg);
	/* A reliable frame (stanza, delivered, bounce, policy) seen for the first time in
	 * this peer epoch. The application calls link_peer_processed(peer, seq) once it
	 * reached a final outcome (inside the callback or later). */
	void (*on_frame)(struct link_session *s, uint64_t seq,
			 const Parley__Link__Frame *f, void *arg);
	/* All frames of one read were dispatched (flush batched side effects here). */
	void (*on_batch_end)(struct link_session *s, void *arg);
	/* The connection is gone; the session is freed after this returns. */
	void (*on_down)(struct link_session *s, int reason, void *arg);
};

int link_out_init(struct link_out *o, uint64_t epoch, const struct link_cfg *cfg);
void link_out_deinit(struct link_out *o);
/* Assigns the next seq to f, encodes and queues it, and transmits it if a session is
 * attached. Producers check link_out_full() and pause until on_room; a send past the window
 * still succeeds up to twice the window (what was already read need not be refused).
 * Returns 0, PE_FULL (beyond that hard capacity: nothing queued), or PE_TOOBIG.
 * f->seq is overwritten. */
int link_out_send(struct link_out *o, Parley__Link__Frame *f);
static inline bool link_out_full(const struct link_out *o) { return outbox_full(&o->ob); }
/* Makes s transmit o: re-sends its Hello (so the peer learns first_unacked), then
 * every unacknowledged frame. NULL detaches. */
void link_out_attach(struct link_out *o, struct link_session *s);

int link_peer_init(struct link_peer *p, const char *node_id, uint32_t window);
void link_peer_deinit(struct link_peer *p);
/* Records that frame seq from this peer reached its final outcome; acks follow. Only for
 * completions inside on_frame or the same read's on_batch_end. */
void link_peer_processed(struct link_peer *p, uint64_t seq);
/* The same for a completion that may come later (a SIP final response): epoch is the peer
 * epoch the frame arrived in (p->in.peer_epoch during on_frame). A completion from an epoch
 * that is no longer current is ignored: the restarted sender numbers from 1 again, and the
 * old seq must not mark a new frame as done. */
void link_peer_processed_in(struct link_peer *p, uint64_t epoch, uint64_t seq);

/* Takes over an open net_conn (TLS already started). dialer=true: we send Hello first and
 * peer must be given; otherwise the peer is chosen by app->on_hello. */
struct link_session *link_session_new(uv_loop_t *loop, struct net_conn *c,
				      const struct link_cfg *cfg,
				      const struct link_app *app, void *arg,
				      bool dialer, struct link_peer *peer, uint64_t epoch);
/* Graceful close: Goodbye, flush, close. */
void link_session_close(struct link_session *s, const char *reason);
struct link_peer *link_session_peer(const struct link_session *s);
struct net_conn *link_session_conn(const struct link_session *s);
bool link_session_up(const struct link_session *s);
uint64_t link_session_id(const struct link_session *s);

/* Process-wide counters (for metrics and tests). */
struct link_stats {
	uint64_t frames_in, frames_out, dups_dropped, acks_in, acks_out, resent;
	uint64_t sessions_up, sessions_refused;
};
extern struct link_stats link_stats;

/* A random 64-bit epoch for this process start. */
uint64_t link_new_epoch(void);

#endif
