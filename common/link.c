/* Link sessions. A session lives exactly as long as its net_conn: it is freed after the
 * connection's close callback and its own timers have closed. Everything that must outlive a
 * connection (what we sent but was not acked, what we received) lives in link_out and
 * link_peer, so a reconnect resumes where the last connection stopped. */
#include "link.h"

#include "err.h"
#include "log.h"
#include "net.h"
#include "tls.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

struct link_stats link_stats;

struct link_session {
	struct net_conn *conn;
	const struct link_cfg *cfg;
	const struct link_app *app;
	void *arg;
	struct link_peer *peer;
	uint64_t epoch; /* ours */
	uint64_t peer_epoch;
	bool dialer;
	bool hello_sent;
	bool hello_rx;
	bool closing;
	bool goodbye_rx;
	char goodbye_reason[160]; /* what the peer said when it closed, escaped */
	bool in_dispatch;
	int handles; /* open uv timers; freed when 0 and the conn is gone */
	bool conn_gone;
	uv_timer_t tick;   /* ping, dead-peer and hello deadline */
	uv_timer_t acker;  /* flushes acks for frames processed outside a read */
	uint64_t last_rx;  /* uv_now at the last input */
	uint64_t started;
	uint64_t ping_nonce;
	struct buf rbuf; /* an incomplete frame carried over between reads */
	struct frame_arena arena;
};

uint64_t link_new_epoch(void)
{
	uint64_t e = 0;
	while (e == 0) {
		if (getrandom(&e, sizeof e, 0) != sizeof e)
			abort();
	}
	return e;
}

/* ---- sending ---- */

static void session_write_frame(struct link_session *s, Parley__Link__Frame *f)
{
	uint8_t stackbuf[512];
	size_t sz = parley__link__frame__get_packed_size(f);
	uint8_t *p = sz + FRAME_HDR <= sizeof stackbuf ? stackbuf : malloc(sz + FRAME_HDR);
	if (!p)
		abort();
	p[0] = (uint8_t)(sz >> 24);
	p[1] = (uint8_t)(sz >> 16);
	p[2] = (uint8_t)(sz >> 8);
	p[3] = (uint8_t)sz;
	parley__link__frame__pack(f, p + FRAME_HDR);
	net_conn_write(s->conn, p, sz + FRAME_HDR);
	if (p != stackbuf)
		free(p);
}

#define LINK_MAX_RANGES 64

static void session_send_hello(struct link_session *s)
{
	Parley__Link__Frame f = PARLEY__LINK__FRAME__INIT;
	Parley__Link__Hello h = PARLEY__LINK__HELLO__INIT;
	Parley__Link__SeqRange rr[LINK_MAX_RANGES];
	Parley__Link__SeqRange *rp[LINK_MAX_RANGES];
	struct seq_range r[LINK_MAX_RANGES];

	h.version = LINK_VERSION;
	h.node_id = (char *)s->cfg->node_id;
	h.epoch = s->epoch;
	h.role = s->cfg->role;
	h.has_priority = 1;
	h.priority = s->cfg->priority;
	h.has_window = 1;
	h.window = s->cfg->window;
	struct link_peer *p = s->peer;
	if (p && p->in.peer_epoch) {
		h.has_peer_epoch = 1;
		h.peer_epoch = p->in.peer_epoch;
		size_t n = inbox_ranges(&p->in, r, LINK_MAX_RANGES);
		size_t i = 0;
		if (n && r[0].first == 1) {
			h.has_processed_upto = 1;
			h.processed_upto = r[0].last;
			i = 1;
		}
		for (; i < n; i++) {
			parley__link__seq_range__init(&rr[h.n_processed]);
			rr[h.n_processed].first = r[i].first;
			rr[h.n_processed].last = r[i].last;
			rp[h.n_processed] = &rr[h.n_processed];
			h.n_processed++;
		}
		h.processed = rp;
	}
	if (p && p->out) {
		h.has_first_unacked = 1;
		h.first_unacked = p->out->ob.head;
	}
	f.body_case = PARLEY__LINK__FRAME__BODY_HELLO;
	f.hello = &h;
	session_write_frame(s, &f);
	s->hello_sent = true;
}

static void session_send_acks(struct link_session *s)
{
	struct link_peer *p = s->peer;
	if (!p || !p->in.ack_due || !s->hello_rx || s->closing)
		return;
	Parley__Link__Frame f = PARLEY__LINK__FRAME__INIT;
	Parley__Link__Ack a = PARLEY__LINK__ACK__INIT;
	Parley__Link__SeqRange rr[LINK_MAX_RANGES];
	Parley__Link__SeqRange *rp[LINK_MAX_RANGES];
	struct seq_range r[LINK_MAX_RANGES];
	size_t n = inbox_ranges(&p->in, r, LINK_MAX_RANGES);
	for (size_t i = 0; i < n; i++) {
		parley__link__seq_range__init(&rr[i]);
		rr[i].first = r[i].first;
		rr[i].last = r[i].last;
		rp[i] = &rr[i];
	}
	a.n_ranges = n;
	a.ranges = rp;
	f.body_case = PARLEY__LINK__FRAME__BODY_ACK;
	f.ack = &a;
	session_write_frame(s, &f);
	link_stats.acks_out++;
}

/* Transmits queued frames while the connection's output is not backed up. */
static void out_pump(struct link_out *o)
{
	struct link_session *s = o->tx;
	if (!s || s->closing || !s->hello_rx)
		return;
	const struct link_item *it;
	uint64_t seq;
	while (net_conn_out_queued(s->conn) < 4u * 1024 * 1024 &&
	       (it = outbox_next(&o->ob, &seq)) != NULL) {
		net_conn_write(s->conn, it->data, it->len);
		link_stats.frames_out++;
	}
}

int link_out_init(struct link_out *o, uint64_t epoch, const struct link_cfg *cfg)
{
	memset(o, 0, sizeof *o);
	o->max_frame = cfg->max_frame;
	return outbox_init(&o->ob, epoch, cfg->window, cfg->window_bytes);
}

void link_out_deinit(struct link_out *o)
{
	if (o->tx)
		o->tx = NULL;
	outbox_deinit(&o->ob);
}

int link_out_send(struct link_out *o, Parley__Link__Frame *f)
{
	if (outbox_depth(&o->ob) > o->ob.mask) {
		o->was_full = true;
		return PE_FULL;
	}
	f->has_seq = 1;
	f->seq = o->ob.next_seq;
	uint32_t len;
	uint8_t *data = frame_pack_alloc(f, o->max_frame, &len);
	if (!data)
		return PE_TOOBIG;
	outbox_push(&o->ob, data, len);
	if (outbox_full(&o->ob))
		o->was_full = true;
	struct link_session *s = o->tx;
	if (s && s->hello_rx && !s->closing && o->ob.cursor + 1 == o->ob.next_seq &&
	    net_conn_out_queued(s->conn) < 4u * 1024 * 1024) {
		/* the common case: nothing backlogged, send it right away */
		uint64_t seq;
		const struct link_item *it = outbox_next(&o->ob, &seq);
		net_conn_write(s->conn, it->data, it->len);
		link_stats.frames_out++;
	}
	return 0;
}

void link_out_attach(struct link_out *o, struct link_session *s)
{
	if (o->tx == s)
		return;
	o->tx = s;
	/* Before the peer's Hello, handle_hello rewinds once the acks it carries are applied, so
	 * `resent` counts only what really goes out again. */
	if (!s || !s->hello_rx)
		return;
	uint64_t before = o->ob.resent_total;
	outbox_rewind(&o->ob);
	link_stats.resent += o->ob.resent_total - before;
	if (s->hello_rx && !s->closing) {
		session_send_hello(s); /* tells the new receiver first_unacked */
		out_pump(o);
	}
}

/* ---- peers ---- */

static void on_acker(uv_timer_t *t);

int link_peer_init(struct link_peer *p, const char *node_id, uint32_t window)
{
	memset(p, 0, sizeof *p);
	snprintf(p->node_id, sizeof p->node_id, "%s", node_id);
	/* A sender pauses at its window but may overshoot it up to its ring, twice the window
	 * (link_out_send): the receive window must cover that much. */
	return inbox_init(&p->in, window > UINT32_MAX / 2 ? UINT32_MAX : window * 2);
}

void link_peer_deinit(struct link_peer *p) { inbox_deinit(&p->in); }

void link_peer_processed(struct link_peer *p, uint64_t seq)
{
	link_peer_processed_in(p, p->in.peer_epoch, seq);
}

void link_peer_processed_in(struct link_peer *p, uint64_t epoch, uint64_t seq)
{
	if (epoch != p->in.peer_epoch) {
		log_debug(0, "link_stale_completion", "node=%s seq=%llu", p->node_id,
			  (unsigned long long)seq);
		return;
	}
	inbox_processed(&p->in, seq);
	struct link_session *s = p->sess;
	if (s && !s->in_dispatch && !s->closing && !uv_is_active((uv_handle_t *)&s->acker))
		uv_timer_start(&s->acker, on_acker, 1, 0);
}

/* ---- receiving ---- */

static void session_fail(struct link_session *s, int err, const char *why)
{
	if (s->closing)
		return;
	log_warn(net_conn_id(s->conn), "link_error", "peer=%s node=%s err=\"%s\" why=\"%s\"",
		 net_conn_peer(s->conn), s->peer ? s->peer->node_id : "-",
		 pe_strerror(err), why);
	s->closing = true;
	net_conn_close(s->conn, err);
}

/* Acks arrived (in an Ack or a Hello) and moved o's head from `head`: tell the producer,
 * and wake it if it paused at a full window. */
static void out_acked(struct link_out *o, uint64_t head)
{
	if (o->ob.head != head && o->on_acked)
		o->on_acked(o, o->arg);
	/* Progress must not hang on one edge-triggered drain event: whenever acks arrive and
	 * frames wait unsent, send what the connection takes now. */
	out_pump(o);
	if (o->was_full && outbox_has_room(&o->ob)) {
		o->was_full = false;
		if (o->on_room)
			o->on_room(o, o->arg);
	}
}

/* A node id is logged unescaped as node=... and kept in link_peer.node_id: one word of
 * printable ASCII that fits, so a peer cannot forge log fields or lines, nor two long ids
 * collapse into one truncated name. */
static bool node_id_ok(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n >= sizeof((struct link_peer *)0)->node_id)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)id[i] <= 0x20 || (unsigned char)id[i] >= 0x7f)
			return false;
	return true;
}

static void handle_hello(struct link_session *s, const Parley__Link__Hello *h)
{
	int want_role = s->cfg->role == PARLEY__LINK__ROLE__ROLE_PROXY
				? PARLEY__LINK__ROLE__ROLE_GATEWAY
				: PARLEY__LINK__ROLE__ROLE_PROXY;
	if (h->version != LINK_VERSION) {
		session_fail(s, PE_PROTO, "unsupported link version");
		return;
	}
	if ((int)h->role != want_role) {
		session_fail(s, PE_PROTO, "peer has the same role as we do");
		return;
	}
	if (!node_id_ok(h->node_id)) {
		session_fail(s, PE_PROTO, "node id empty, too long or not printable ASCII");
		return;
	}
	bool first = !s->hello_rx;
	if (first) {
		if (!s->dialer) {
			struct link_peer *p = s->app->on_hello(s, h, s->arg);
			if (!p) {
				session_fail(s, PE_PROTO, "peer refused by application");
				return;
			}
			if (p->sess && p->sess != s) {
				/* the node reconnected before we noticed its old connection die */
				struct link_session *old = p->sess;
				old->peer = NULL;
				if (p->out && p->out->tx == old)
					p->out->tx = NULL;
				session_fail(old, PE_CLOSED, "replaced by a new connection from the same node");
			}
			s->peer = p;
			p->sess = s;
		}
		if (s->dialer) /* we knew its address; now we know its name */
			snprintf(s->peer->node_id, sizeof s->peer->node_id, "%s", h->node_id);
		s->peer->role = (int)h->role;
		s->peer->priority = h->priority;
		s->peer->connects++;
	}
	struct link_peer *p = s->peer;
	s->peer_epoch = h->epoch;
	/* What we received: a new peer epoch starts from nothing. */
	if (p->in.peer_epoch != h->epoch)
		inbox_reset(&p->in, h->epoch);
	if (h->has_first_unacked)
		inbox_skip_to(&p->in, h->first_unacked);
	/* What we sent: acks carried in the Hello apply only if it refers to our epoch. A
	 * repeated Hello counts too: sending it (link_out_attach) cleared the peer's pending
	 * acks, so it may be the only carrier of them. */
	bool acked = false;
	uint64_t head = p->out ? p->out->ob.head : 0;
	if (p->out && h->has_peer_epoch && h->peer_epoch == p->out->ob.epoch) {
		if (h->has_processed_upto)
			outbox_ack(&p->out->ob, 1, h->processed_upto);
		for (size_t i = 0; i < h->n_processed; i++)
			outbox_ack(&p->out->ob, h->processed[i]->first, h->processed[i]->last);
		acked = true;
	}
	if (!first) { /* a repeated Hello moves the receive window and acks, nothing else */
		if (acked)
			out_acked(p->out, head);
		return;
	}
	s->hello_rx = true;
	if (!s->hello_sent)
		session_send_hello(s);
	link_stats.sessions_up++;
	log_info(net_conn_id(s->conn), "link_up",
		 "peer=%s node=%s epoch=%016llx role=%s tls=%s peer_processed_upto=%llu",
		 net_conn_peer(s->conn), p->node_id, (unsigned long long)h->epoch,
		 h->role == PARLEY__LINK__ROLE__ROLE_PROXY ? "proxy" : "gateway",
		 net_conn_tls(s->conn) ? tls_sess_version(net_conn_tls(s->conn)) : "none",
		 (unsigned long long)h->processed_upto);
	if (p->out && p->out->tx == s) { /* attached before the Hello: replay now */
		uint64_t before = p->out->ob.resent_total;
		outbox_rewind(&p->out->ob);
		link_stats.resent += p->out->ob.resent_total - before;
		out_pump(p->out);
	}
	if (s->app->on_up)
		s->app->on_up(s, s->arg);
	/* The Hello may have acked everything a paused producer waits for: no Ack follows. */
	if (acked)
		out_acked(p->out, head);
}

static void handle_ack(struct link_session *s, const Parley__Link__Ack *a)
{
	struct link_out *o = s->peer->out;
	link_stats.acks_in++;
	if (!o)
		return;
	uint64_t head = o->ob.head;
	for (size_t i = 0; i < a->n_ranges; i++)
		outbox_ack(&o->ob, a->ranges[i]->first, a->ranges[i]->last);
	out_acked(o, head);
}

static void send_pong_or_ping(struct link_session *s, bool pong, uint64_t nonce)
{
	Parley__Link__Frame f = PARLEY__LINK__FRAME__INIT;
	Parley__Link__Ping pg = PARLEY__LINK__PING__INIT;
	Parley__Link__Pong po = PARLEY__LINK__PONG__INIT;
	uint32_t depth = s->peer && s->peer->out ? outbox_depth(&s->peer->out->ob) : 0;
	if (pong) {
		po.nonce = nonce;
		po.has_outbox_depth = 1;
		po.outbox_depth = depth;
		f.body_case = PARLEY__LINK__FRAME__BODY_PONG;
		f.pong = &po;
	} else {
		pg.nonce = nonce;
		pg.has_outbox_depth = 1;
		pg.outbox_depth = depth;
		f.body_case = PARLEY__LINK__FRAME__BODY_PING;
		f.ping = &pg;
	}
	session_write_frame(s, &f);
}

static void dispatch(struct link_session *s, const Parley__Link__Frame *f)
{
	if (!s->hello_rx && f->body_case != PARLEY__LINK__FRAME__BODY_HELLO &&
	    f->body_case != PARLEY__LINK__FRAME__BODY_GOODBYE) {
		session_fail(s, PE_PROTO, "frame before Hello");
		return;
	}
	switch (f->body_case) {
	case PARLEY__LINK__FRAME__BODY_HELLO:
		handle_hello(s, f->hello);
		return;
	case PARLEY__LINK__FRAME__BODY_ACK:
		handle_ack(s, f->ack);
		return;
	case PARLEY__LINK__FRAME__BODY_PING:
		if (s->peer)
			s->peer->peer_outbox_depth = f->ping->outbox_depth;
		send_pong_or_ping(s, true, f->ping->nonce);
		return;
	case PARLEY__LINK__FRAME__BODY_PONG:
		if (s->peer)
			s->peer->peer_outbox_depth = f->pong->outbox_depth;
		return;
	case PARLEY__LINK__FRAME__BODY_GOODBYE: {
		const char *why = f->goodbye->reason ? f->goodbye->reason : "";
		s->goodbye_rx = true;
		log_escape(s->goodbye_reason, sizeof s->goodbye_reason, why, strlen(why));
		if (s->hello_rx)
			log_info(net_conn_id(s->conn), "link_goodbye", "node=%s reason=\"%s\"",
				 s->peer ? s->peer->node_id : "-", s->goodbye_reason);
		return;
	}
	case PARLEY__LINK__FRAME__BODY_STANZA:
	case PARLEY__LINK__FRAME__BODY_DELIVERED:
	case PARLEY__LINK__FRAME__BODY_BOUNCE:
	case PARLEY__LINK__FRAME__BODY_POLICY: {
		if (!f->has_seq) {
			session_fail(s, PE_PROTO, "reliable frame without seq");
			return;
		}
		int v = inbox_receive(&s->peer->in, f->seq);
		if (v < 0) {
			session_fail(s, PE_PROTO, "seq outside the receive window");
			return;
		}
		link_stats.frames_in++;
		if (v == INBOX_DUP) {
			link_stats.dups_dropped++;
			return;
		}
		s->app->on_frame(s, f->seq, f, s->arg);
		return;
	}
	default:
		session_fail(s, PE_PROTO, "unknown frame type");
	}
}

/* Dispatches every complete frame in p[0..n); returns bytes consumed or a negative error. */
static long parse_frames(struct link_session *s, const uint8_t *p, size_t n)
{
	size_t off = 0;
	while (!s->closing) {
		const uint8_t *body;
		size_t blen;
		long r = frame_next(p + off, n - off, s->cfg->max_frame, &body, &blen);
		if (r == PE_NEEDMORE)
			break;
		if (r < 0)
			return r;
		Parley__Link__Frame *f = frame_unpack(&s->arena, body, blen);
		if (!f)
			return PE_PROTO;
		dispatch(s, f);
		off += (size_t)r;
	}
	return (long)off;
}

static void on_data(struct net_conn *c, const uint8_t *p, size_t n)
{
	struct link_session *s = net_conn_arg(c);
	if (s->closing)
		return;
	s->last_rx = uv_now(uv_handle_get_loop((uv_handle_t *)&s->tick));
	s->in_dispatch = true;
	long r;
	if (buf_len(&s->rbuf)) {
		/* complete the carried-over frame first, then go on in place */
		size_t hdr_need = buf_len(&s->rbuf) < FRAME_HDR ? FRAME_HDR - buf_len(&s->rbuf) : 0;
		size_t take = hdr_need < n ? hdr_need : n;
		buf_append(&s->rbuf, p, take);
		p += take;
		n -= take;
		if (buf_len(&s->rbuf) >= FRAME_HDR) {
			const uint8_t *h = buf_head(&s->rbuf);
			size_t flen = FRAME_HDR + ((size_t)h[0] << 24 | (size_t)h[1] << 16 |
						   (size_t)h[2] << 8 | h[3]);
			if (flen - FRAME_HDR > s->cfg->max_frame || flen == FRAME_HDR) {
				r = flen == FRAME_HDR ? PE_PROTO : PE_TOOBIG;
				goto fail;
			}
			size_t more = flen - buf_len(&s->rbuf);
			take = more < n ? more : n;
			if (buf_append(&s->rbuf, p, take)) {
				r = PE_TOOBIG;
				goto fail;
			}
			p += take;
			n -= take;
			if (buf_len(&s->rbuf) == flen) {
				r = parse_frames(s, buf_head(&s->rbuf), flen);
				if (r < 0)
					goto fail;
				buf_consume(&s->rbuf, flen);
				buf_release_if_empty(&s->rbuf);
			}
		}
	}
	r = parse_frames(s, p, n);
	if (r < 0)
		goto fail;
	if (!s->closing && (size_t)r < n && buf_append(&s->rbuf, p + r, n - (size_t)r)) {
		r = PE_TOOBIG;
		goto fail;
	}
	frame_arena_reset(&s->arena);
	s->in_dispatch = false;
	if (s->closing)
		return;
	if (s->app->on_batch_end)
		s->app->on_batch_end(s, s->arg);
	if (!s->closing)
		session_send_acks(s);
	return;
fail:
	frame_arena_reset(&s->arena);
	s->in_dispatch = false;
	session_fail(s, (int)r, r == PE_TOOBIG ? "frame larger than max_frame" : "malformed frame");
}

static void on_drain(struct net_conn *c)
{
	struct link_session *s = net_conn_arg(c);
	if (s->peer && s->peer->out && s->peer->out->tx == s)
		out_pump(s->peer->out);
}

static void session_maybe_free(struct link_session *s)
{
	if (s->conn_gone && s->handles == 0) {
		buf_deinit(&s->rbuf);
		frame_arena_deinit(&s->arena);
		free(s);
	}
}

static void on_timer_closed(uv_handle_t *h)
{
	struct link_session *s = h->data;
	s->handles--;
	session_maybe_free(s);
}

static void on_close(struct net_conn *c, int reason)
{
	struct link_session *s = net_conn_arg(c);
	struct link_peer *p = s->peer;
	s->closing = true;
	if (s->hello_rx) {
		log_info(net_conn_id(c), "link_down", "peer=%s node=%s reason=\"%s\"%s",
			 net_conn_peer(c), p ? p->node_id : "-",
			 reason ? pe_strerror(reason) : "closed",
			 s->goodbye_rx ? " goodbye=1" : "");
	} else if (reason != PE_VERIFY) { /* PE_VERIFY was logged where it was decided */
		struct tls_sess *t = net_conn_tls(c);
		const char *te = t ? tls_sess_error(t) : NULL;
		link_stats.sessions_refused++;
		if (s->goodbye_rx)
			log_warn(net_conn_id(c), "link_refused", "peer=%s reason=\"refused by the peer: %s\"",
				 net_conn_peer(c), s->goodbye_reason);
		else
			log_warn(net_conn_id(c), "link_refused", "peer=%s reason=\"%s%s%s\"",
				 net_conn_peer(c), reason ? pe_strerror(reason) : "closed before Hello",
				 te && *te ? ": " : "", te && *te ? te : "");
	}
	if (p) {
		if (p->sess == s)
			p->sess = NULL;
		if (p->out && p->out->tx == s)
			p->out->tx = NULL;
	}
	if (s->app->on_down)
		s->app->on_down(s, reason, s->arg);
	s->conn_gone = true;
	uv_close((uv_handle_t *)&s->tick, on_timer_closed);
	uv_close((uv_handle_t *)&s->acker, on_timer_closed);
}

static void send_goodbye(struct link_session *s, const char *reason)
{
	Parley__Link__Frame f = PARLEY__LINK__FRAME__INIT;
	Parley__Link__Goodbye g = PARLEY__LINK__GOODBYE__INIT;
	g.reason = (char *)reason;
	f.body_case = PARLEY__LINK__FRAME__BODY_GOODBYE;
	f.goodbye = &g;
	session_write_frame(s, &f);
}

/* Verifies the peer certificate against the pinned names once TLS is up. */
static void on_secure(struct net_conn *c)
{
	struct link_session *s = net_conn_arg(c);
	char why[256];
	struct tls_sess *t = net_conn_tls(c);
	if (!tls_sess_peer_pinned(t, s->cfg->pinned, s->cfg->npinned, why, sizeof why)) {
		link_stats.sessions_refused++;
		log_warn(net_conn_id(c), "link_refused", "peer=%s reason=\"%s\"",
			 net_conn_peer(c), why);
		/* Tell the peer why, so both logs say what to fix; it is our own component. */
		send_goodbye(s, why);
		s->closing = true;
		net_conn_close(c, PE_VERIFY);
		return;
	}
	if (s->dialer)
		session_send_hello(s);
}

static void on_tick(uv_timer_t *t)
{
	struct link_session *s = t->data;
	if (s->closing)
		return;
	uint64_t now = uv_now(t->loop);
	if (!s->hello_rx && now - s->started >= s->cfg->hello_ms) {
		session_fail(s, PE_TIMEOUT, "no Hello from the peer in time");
		return;
	}
	if (now - s->last_rx >= s->cfg->dead_ms) {
		session_fail(s, PE_TIMEOUT, "peer silent past the dead-peer timeout");
		return;
	}
	if (s->hello_rx)
		send_pong_or_ping(s, false, ++s->ping_nonce);
	struct link_out *o = s->peer ? s->peer->out : NULL;
	if (o && o->tx == s && o->ob.cursor < o->ob.next_seq)
		out_pump(o); /* the same safety net, once per tick */
	if (o && o->tx == s)
		log_debug(net_conn_id(s->conn), "link_outbox",
			  "head=%llu cursor=%llu next=%llu depth=%u was_full=%d queued=%zu",
			  (unsigned long long)o->ob.head, (unsigned long long)o->ob.cursor,
			  (unsigned long long)o->ob.next_seq, outbox_depth(&o->ob), o->was_full,
			  net_conn_out_queued(s->conn));
}

static void on_acker(uv_timer_t *t)
{
	session_send_acks(t->data);
}

static const struct net_conn_cbs link_net_cbs = {
	.on_secure = on_secure,
	.on_data = on_data,
	.on_drain = on_drain,
	.on_close = on_close,
};

struct link_session *link_session_new(uv_loop_t *loop, struct net_conn *c,
				      const struct link_cfg *cfg,
				      const struct link_app *app, void *arg,
				      bool dialer, struct link_peer *peer, uint64_t epoch)
{
	struct link_session *s = calloc(1, sizeof *s);
	if (!s)
		abort();
	s->conn = c;
	s->cfg = cfg;
	s->app = app;
	s->arg = arg;
	s->dialer = dialer;
	s->epoch = epoch;
	s->peer = peer;
	if (peer) {
		if (peer->sess && peer->sess != s) {
			struct link_session *old = peer->sess;
			old->peer = NULL;
			/* as in handle_hello: old's on_close no longer knows the peer to detach */
			if (peer->out && peer->out->tx == old)
				peer->out->tx = NULL;
			session_fail(old, PE_CLOSED, "replaced by a new connection");
		}
		peer->sess = s;
	}
	buf_init(&s->rbuf, cfg->max_frame + FRAME_HDR);
	frame_arena_init(&s->arena);
	uv_timer_init(loop, &s->tick);
	uv_timer_init(loop, &s->acker);
	s->tick.data = s->acker.data = s;
	s->handles = 2;
	s->started = s->last_rx = uv_now(loop);
	uint32_t period = cfg->ping_ms < cfg->hello_ms ? cfg->ping_ms : cfg->hello_ms;
	if (period > 1000)
		period = 1000;
	uv_timer_start(&s->tick, on_tick, period, period);
	net_conn_set_cbs(c, &link_net_cbs, s);
	/* one connection carrying everything: keep its buffers rather than regrow them */
	static const struct net_conn_opts link_opts = {.keep_buffers = true};
	net_conn_set_opts(c, &link_opts);
	return s;
}

void link_session_close(struct link_session *s, const char *reason)
{
	if (s->closing)
		return;
	if (s->hello_rx) {
		session_send_acks(s);
		send_goodbye(s, reason);
	}
	s->closing = true;
	net_conn_close(s->conn, 0);
}

struct link_peer *link_session_peer(const struct link_session *s) { return s->peer; }
struct net_conn *link_session_conn(const struct link_session *s) { return s->conn; }
bool link_session_up(const struct link_session *s) { return s->hello_rx && !s->closing; }
uint64_t link_session_id(const struct link_session *s) { return net_conn_id(s->conn); }
