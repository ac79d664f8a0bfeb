/* link: sessions over real TLS loopback connections on one libuv loop, with certificates from
 * mkcerts.sh. P is the edge (acceptor, role proxy); G and H are gateways (dialers). Raw peers
 * speak crafted bytes over TLS to exercise the protocol checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "buf.h"
#include "err.h"
#include "frame.h"
#include "link.h"
#include "link_conf.h"
#include "log.h"
#include "net.h"
#include "tls.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* No single wait may take longer than this; a hang is a failure, not a stuck test run. */
#define GUARD_MS 5000

static char certdir[64];

/* ---- a growable list of seqs ---- */

struct seqv {
	uint64_t *v;
	size_t n, cap;
};

static void seqv_push(struct seqv *s, uint64_t x)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 256;
		s->v = realloc(s->v, s->cap * sizeof *s->v);
		if (!s->v)
			abort();
	}
	s->v[s->n++] = x;
}

static void seqv_free(struct seqv *s)
{
	free(s->v);
	memset(s, 0, sizeof *s);
}

static bool seqv_has(const struct seqv *s, uint64_t x)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i] == x)
			return true;
	return false;
}

/* Fails unless v holds exactly first..last, in that order. */
static void assert_seqs(const struct seqv *v, uint64_t first, uint64_t last)
{
	if (v->n != last - first + 1)
		fail_msg("got %zu frames, want %llu (seq %llu..%llu)", v->n,
			 (unsigned long long)(last - first + 1), (unsigned long long)first,
			 (unsigned long long)last);
	for (size_t i = 0; i < v->n; i++)
		if (v->v[i] != first + i)
			fail_msg("frame #%zu is seq %llu, want %llu", i,
				 (unsigned long long)v->v[i], (unsigned long long)(first + i));
}

/* ---- the application ends ---- */

struct end;

/* A link_peer and what the application saw through it. */
struct ppeer {
	struct link_peer lp;
	struct end *e;
	bool inited;
	struct seqv got;     /* seqs handed to on_frame, in call order */
	struct seqv pend;    /* handed over and not processed yet */
	struct seqv done;    /* processed (link_peer_processed called) */
	uint64_t hold_from;  /* on_frame holds seq >= hold_from in pend; 0 processes all at once */
	bool async;	     /* the processing timer works pend off (in reverse order) */
	uint64_t last_epoch; /* on_frame order check, per peer epoch */
	uint64_t last_seq;
	int disorder; /* a seq not above the previous one of the same peer epoch */
	int bad;      /* a frame whose content does not match its seq */
};

struct end {
	bool dialer;
	struct link_cfg cfg;
	const char *pin[1];
	uint64_t epoch;
	struct link_out out;
	struct ppeer pp[3]; /* dialer: its edge (pp[1] after a restart); acceptor: per node */
	int npp;
	struct tls_ctx *tls; /* dialer: client context */
	int n_up, n_down, last_down;
	uint64_t t_up, t_down;
	bool refuse;	       /* acceptor: on_hello returns NULL */
	bool no_attach;	       /* dialer: do not attach in on_connect; acceptor: not in on_up */
	uint64_t hold_default; /* acceptor: hold_from of peers it creates */
	/* producer: frames with ref next_ref..goal, pausing at link_out_full until on_room */
	uint64_t goal, next_ref;
	bool overshoot; /* ignore link_out_full: send until PE_FULL */
	int n_full, n_room, send_err, paused;
	int n_acked; /* on_acked: the outbox head moved */
};

static struct {
	uv_loop_t loop;
	uv_timer_t tick; /* keeps UV_RUN_ONCE returning */
	uv_timer_t proc; /* asynchronous processing */
	struct net_listener *l;
	uint16_t port;
	struct tls_ctx *ctx_proxy, *ctx_gw, *ctx_other_srv, *ctx_other_cli;
	struct tls_ctx *srv_tls; /* what the listener uses */
	struct end P, G, H;
	struct raw *raw_srv;  /* non-NULL: accepted connections go to this raw peer */
	struct raw *raws[32]; /* every raw peer of the test, freed by teardown */
	int nraw;
	int connect_failed;
	FILE *log;
	char *logbuf;
	size_t loglen;
} W;

static void ppeer_init(struct ppeer *pp, struct end *e, const char *node, uint32_t window)
{
	memset(pp, 0, sizeof *pp);
	assert_int_equal(link_peer_init(&pp->lp, node, window), 0);
	pp->lp.out = &e->out;
	pp->lp.data = pp;
	pp->e = e;
	pp->inited = true;
}

static void ppeer_deinit(struct ppeer *pp)
{
	if (!pp->inited)
		return;
	link_peer_deinit(&pp->lp);
	seqv_free(&pp->got);
	seqv_free(&pp->pend);
	seqv_free(&pp->done);
	pp->inited = false;
}

static void process(struct ppeer *pp, uint64_t seq)
{
	link_peer_processed(&pp->lp, seq);
	seqv_push(&pp->done, seq);
}

/* Processes the held seqs in [first, last] (in ascending order) and forgets them. */
static void process_range(struct ppeer *pp, uint64_t first, uint64_t last)
{
	size_t k = 0;
	for (size_t i = 0; i < pp->pend.n; i++) {
		uint64_t s = pp->pend.v[i];
		if (s >= first && s <= last)
			process(pp, s);
		else
			pp->pend.v[k++] = s;
	}
	pp->pend.n = k;
}

static void send_one(struct end *e, uint64_t ref, int *r)
{
	char body[32];
	Parley__Link__Frame f = PARLEY__LINK__FRAME__INIT;
	Parley__Link__Stanza st = PARLEY__LINK__STANZA__INIT;
	snprintf(body, sizeof body, "m%llu", (unsigned long long)ref);
	st.ref = ref;
	st.kind = PARLEY__LINK__STANZA_KIND__KIND_MESSAGE;
	st.from = "juliet@partner.test/balcony";
	st.to = "romeo@corp.test";
	st.body = body;
	f.body_case = PARLEY__LINK__FRAME__BODY_STANZA;
	f.stanza = &st;
	*r = link_out_send(&e->out, &f);
	if (*r == 0 && (!f.has_seq || f.seq != ref))
		e->send_err = PE_STATE; /* the seq must follow the producer's count */
}

static void pump(struct end *e)
{
	while (e->next_ref <= e->goal) {
		if (!e->overshoot && link_out_full(&e->out)) {
			e->paused++;
			return;
		}
		int r;
		send_one(e, e->next_ref, &r);
		if (r == PE_FULL) {
			e->n_full++;
			return;
		}
		if (r) {
			e->send_err = r;
			return;
		}
		e->next_ref++;
	}
}

static void on_room(struct link_out *o, void *arg)
{
	(void)o;
	struct end *e = arg;
	e->n_room++;
	pump(e);
}

static void on_acked(struct link_out *o, void *arg)
{
	(void)o;
	struct end *e = arg;
	e->n_acked++;
}

static void end_init(struct end *e, bool dialer, const char *node, int role, const char *pin)
{
	memset(e, 0, sizeof *e);
	e->dialer = dialer;
	e->pin[0] = pin;
	e->cfg = (struct link_cfg){
	    .node_id = node,
	    .role = role,
	    .priority = dialer ? 7 : 0,
	    .window = 256,
	    .window_bytes = 64u << 20,
	    .max_frame = 4096,
	    .ping_ms = 1000,
	    .dead_ms = 4000,
	    .hello_ms = 2000,
	    .pinned = e->pin,
	    .npinned = 1,
	};
	e->epoch = link_new_epoch();
	e->next_ref = 1;
	e->tls = W.ctx_gw;
}

/* Call after changing cfg.window / window_bytes / max_frame. */
static void end_start_out(struct end *e)
{
	assert_int_equal(link_out_init(&e->out, e->epoch, &e->cfg), 0);
	e->out.on_room = on_room;
	e->out.on_acked = on_acked;
	e->out.arg = e;
}

static void end_deinit(struct end *e)
{
	for (int i = 0; i < 3; i++)
		ppeer_deinit(&e->pp[i]);
	if (e->out.ob.ring)
		link_out_deinit(&e->out);
}

/* ---- link_app ---- */

static struct link_peer *app_on_hello(struct link_session *s, const Parley__Link__Hello *h,
				      void *arg)
{
	(void)s;
	struct end *e = arg;
	if (e->refuse)
		return NULL;
	for (int i = 0; i < e->npp; i++)
		if (strcmp(e->pp[i].lp.node_id, h->node_id) == 0)
			return &e->pp[i].lp;
	if (e->npp == 3)
		return NULL;
	struct ppeer *pp = &e->pp[e->npp++];
	/* like gwlink: the receive window covers what the dialer says it sends */
	ppeer_init(pp, e, h->node_id, h->has_window ? h->window : e->cfg.window);
	pp->hold_from = e->hold_default;
	return &pp->lp;
}

static void app_on_up(struct link_session *s, void *arg)
{
	struct end *e = arg;
	e->n_up++;
	e->t_up = uv_now(&W.loop);
	if (!e->dialer && !e->no_attach && !e->out.tx)
		link_out_attach(&e->out, s); /* the first gateway up is the active one */
}

static void app_on_frame(struct link_session *s, uint64_t seq, const Parley__Link__Frame *f,
			 void *arg)
{
	(void)arg;
	struct ppeer *pp = link_session_peer(s)->data;
	char body[32];
	snprintf(body, sizeof body, "m%llu", (unsigned long long)seq);
	if (pp->lp.in.peer_epoch != pp->last_epoch) {
		pp->last_epoch = pp->lp.in.peer_epoch;
		pp->last_seq = 0;
	}
	if (seq <= pp->last_seq)
		pp->disorder++;
	pp->last_seq = seq;
	if (f->body_case != PARLEY__LINK__FRAME__BODY_STANZA || f->stanza->ref != seq ||
	    !f->stanza->body || strcmp(f->stanza->body, body) != 0)
		pp->bad++;
	seqv_push(&pp->got, seq);
	if (pp->hold_from && seq >= pp->hold_from)
		seqv_push(&pp->pend, seq);
	else
		process(pp, seq);
}

static void app_on_down(struct link_session *s, int reason, void *arg)
{
	struct end *e = arg;
	e->n_down++;
	e->last_down = reason;
	e->t_down = uv_now(&W.loop);
	if (e->dialer || e->no_attach || e->out.tx)
		return;
	/* the active gateway is gone: the next one that is up takes over */
	for (int i = 0; i < e->npp; i++) {
		struct link_session *o = e->pp[i].lp.sess;
		if (o && o != s && link_session_up(o)) {
			link_out_attach(&e->out, o);
			return;
		}
	}
}

static const struct link_app app = {
    .on_hello = app_on_hello,
    .on_up = app_on_up,
    .on_frame = app_on_frame,
    .on_down = app_on_down,
};

/* ---- raw peers: TLS connections that speak crafted bytes ---- */

struct raw {
	struct net_conn *c;
	struct buf rx;	  /* plaintext received */
	struct buf early; /* written as soon as TLS is started */
	int n_secure, n_close, reason;
	uint64_t t_close;
};

static void raw_start(struct raw *r, struct net_conn *c, bool server)
{
	r->c = c;
	if (server)
		assert_int_equal(net_conn_start_tls(c, W.ctx_proxy, true, NULL), 0);
	else
		assert_int_equal(net_conn_start_tls(c, W.ctx_gw, false, "proxy.link.test"), 0);
	if (buf_len(&r->early))
		assert_int_equal(net_conn_write(c, buf_head(&r->early), buf_len(&r->early)), 0);
}

static void raw_on_connect(struct net_conn *c)
{
	raw_start(net_conn_arg(c), c, false);
}

static void raw_on_secure(struct net_conn *c)
{
	struct raw *r = net_conn_arg(c);
	r->n_secure++;
}

static void raw_on_data(struct net_conn *c, const uint8_t *p, size_t n)
{
	struct raw *r = net_conn_arg(c);
	if (buf_append(&r->rx, p, n))
		abort();
}

static void raw_on_close(struct net_conn *c, int reason)
{
	struct raw *r = net_conn_arg(c);
	r->n_close++;
	r->reason = reason;
	r->c = NULL;
	r->t_close = uv_now(&W.loop);
}

static const struct net_conn_cbs raw_cbs = {
    .on_connect = raw_on_connect,
    .on_secure = raw_on_secure,
    .on_data = raw_on_data,
    .on_close = raw_on_close,
};

static void raw_init(struct raw *r)
{
	memset(r, 0, sizeof *r);
	buf_init(&r->rx, 0);
	buf_init(&r->early, 0);
}

static void raw_deinit(struct raw *r)
{
	buf_deinit(&r->rx);
	buf_deinit(&r->early);
}

static struct raw *raw_new(void)
{
	assert_true(W.nraw < 32);
	struct raw *r = malloc(sizeof *r);
	assert_non_null(r);
	raw_init(r);
	W.raws[W.nraw++] = r;
	return r;
}

static void raw_dial(struct raw *r)
{
	r->c = net_connect(&W.loop, "127.0.0.1", W.port, &raw_cbs, r);
	assert_non_null(r->c);
}

static void put_frame(struct buf *b, const Parley__Link__Frame *f)
{
	assert_int_equal(frame_pack(f, b, 1 << 20), 0);
}

static void put_hello_from(struct buf *b, const char *node, uint32_t version, int role,
			   uint64_t epoch)
{
	Parley__Link__Frame f = PARLEY__LINK__FRAME__INIT;
	Parley__Link__Hello h = PARLEY__LINK__HELLO__INIT;
	h.version = version;
	h.node_id = (char *)node;
	h.epoch = epoch;
	h.role = role;
	h.has_window = 1;
	h.window = 64;
	f.body_case = PARLEY__LINK__FRAME__BODY_HELLO;
	f.hello = &h;
	put_frame(b, &f);
}

static void put_hello(struct buf *b, uint32_t version, int role, uint64_t epoch)
{
	put_hello_from(b, "raw-node", version, role, epoch);
}

static void put_stanza(struct buf *b, bool has_seq, uint64_t seq)
{
	char body[32];
	Parley__Link__Frame f = PARLEY__LINK__FRAME__INIT;
	Parley__Link__Stanza st = PARLEY__LINK__STANZA__INIT;
	snprintf(body, sizeof body, "m%llu", (unsigned long long)seq);
	st.ref = seq;
	st.kind = PARLEY__LINK__STANZA_KIND__KIND_MESSAGE;
	st.body = body;
	f.has_seq = has_seq;
	f.seq = seq;
	f.body_case = PARLEY__LINK__FRAME__BODY_STANZA;
	f.stanza = &st;
	put_frame(b, &f);
}

/* What a raw peer received, frame by frame. */
struct seen {
	int n[16]; /* per body case */
	int nframes;
	bool torn; /* bytes that are not whole, parseable frames */
	uint64_t ack_upto;
	uint64_t hello_first_unacked;
	uint32_t ping_depth;
	char goodbye[256];
};

static void raw_parse(const struct raw *r, struct seen *out)
{
	struct frame_arena a;
	const uint8_t *p = buf_head(&r->rx);
	size_t n = buf_len(&r->rx), off = 0;
	memset(out, 0, sizeof *out);
	frame_arena_init(&a);
	while (off < n) {
		const uint8_t *body;
		size_t blen;
		long k = frame_next(p + off, n - off, 1 << 20, &body, &blen);
		Parley__Link__Frame *f = k > 0 ? frame_unpack(&a, body, blen) : NULL;
		if (!f) {
			out->torn = true;
			break;
		}
		out->nframes++;
		if ((unsigned)f->body_case < 16)
			out->n[f->body_case]++;
		switch (f->body_case) {
		case PARLEY__LINK__FRAME__BODY_ACK:
			for (size_t i = 0; i < f->ack->n_ranges; i++)
				if (f->ack->ranges[i]->first == 1 &&
				    f->ack->ranges[i]->last > out->ack_upto)
					out->ack_upto = f->ack->ranges[i]->last;
			break;
		case PARLEY__LINK__FRAME__BODY_HELLO:
			out->hello_first_unacked = f->hello->first_unacked;
			break;
		case PARLEY__LINK__FRAME__BODY_PING:
			out->ping_depth = f->ping->outbox_depth;
			break;
		case PARLEY__LINK__FRAME__BODY_GOODBYE:
			snprintf(out->goodbye, sizeof out->goodbye, "%s",
				 f->goodbye->reason ? f->goodbye->reason : "");
			break;
		default:
			break;
		}
		off += (size_t)k;
		frame_arena_reset(&a);
	}
	frame_arena_deinit(&a);
}

/* ---- connections ---- */

static void on_accept(void *arg, struct net_conn *c)
{
	(void)arg;
	if (W.raw_srv) {
		net_conn_set_cbs(c, &raw_cbs, W.raw_srv);
		raw_start(W.raw_srv, c, true);
		return;
	}
	if (net_conn_start_tls(c, W.srv_tls, true, NULL) != 0) {
		net_conn_abort(c, PE_TLS);
		return;
	}
	link_session_new(&W.loop, c, &W.P.cfg, &app, &W.P, false, NULL, W.P.epoch);
}

static void dial_on_connect(struct net_conn *c)
{
	struct ppeer *pp = net_conn_arg(c);
	struct end *e = pp->e;
	if (net_conn_start_tls(c, e->tls, false, "proxy.link.test") != 0) {
		net_conn_abort(c, PE_TLS);
		return;
	}
	struct link_session *s =
	    link_session_new(&W.loop, c, &e->cfg, &app, e, true, &pp->lp, e->epoch);
	if (!e->no_attach)
		link_out_attach(&e->out, s);
}

/* Only reached if the TCP connect fails: afterwards the session owns the connection. */
static void dial_on_close(struct net_conn *c, int reason)
{
	(void)c;
	(void)reason;
	W.connect_failed++;
}

static const struct net_conn_cbs dial_cbs = {
    .on_connect = dial_on_connect,
    .on_close = dial_on_close,
};

static void dial(struct ppeer *pp)
{
	assert_non_null(net_connect(&W.loop, "127.0.0.1", W.port, &dial_cbs, pp));
}

/* Dials G's first peer, or H's, and waits until both ends saw the session come up. */
static void connect_up(struct end *d)
{
	int pu = W.P.n_up, du = d->n_up;
	dial(&d->pp[0]);
	for (uint64_t t0 = uv_now(&W.loop); W.P.n_up == pu || d->n_up == du;) {
		if (uv_now(&W.loop) - t0 > GUARD_MS)
			fail_msg("%s did not come up", d->cfg.node_id);
		uv_run(&W.loop, UV_RUN_ONCE);
	}
}

static struct net_conn *conn_of(struct ppeer *pp)
{
	assert_non_null(pp->lp.sess);
	return link_session_conn(pp->lp.sess);
}

/* ---- running the loop ---- */

/* What each end saw, for a wait that timed out. */
static void dump_state(void)
{
	struct end *ends[] = {&W.P, &W.G, &W.H};
	for (size_t k = 0; k < 3; k++) {
		struct end *e = ends[k];
		print_error("%s: up=%d down=%d last_down=%d next_ref=%llu goal=%llu paused=%d "
			    "room=%d full=%d head=%llu next_seq=%llu cursor=%llu tx=%p\n",
			    e->cfg.node_id, e->n_up, e->n_down, e->last_down,
			    (unsigned long long)e->next_ref, (unsigned long long)e->goal, e->paused,
			    e->n_room, e->n_full, (unsigned long long)e->out.ob.head,
			    (unsigned long long)e->out.ob.next_seq,
			    (unsigned long long)e->out.ob.cursor, (void *)e->out.tx);
		for (int i = 0; i < 3; i++) {
			struct ppeer *pp = &e->pp[i];
			if (pp->inited)
				print_error("  peer %s: got=%zu pend=%zu upto=%llu sess=%p\n",
					    pp->lp.node_id, pp->got.n, pp->pend.n,
					    (unsigned long long)pp->lp.in.upto,
					    (void *)pp->lp.sess);
		}
	}
}

#define RUN_UNTIL(cond)                                                                            \
	do {                                                                                       \
		uint64_t t0__ = uv_now(&W.loop);                                                   \
		while (!(cond)) {                                                                  \
			if (uv_now(&W.loop) - t0__ > GUARD_MS) {                                   \
				dump_state();                                                      \
				fail_msg("line %d: timed out waiting for %s", __LINE__, #cond);    \
			}                                                                          \
			uv_run(&W.loop, UV_RUN_ONCE);                                              \
		}                                                                                  \
	} while (0)

static void run_for(uint64_t ms)
{
	uint64_t t0 = uv_now(&W.loop);
	while (uv_now(&W.loop) - t0 < ms)
		uv_run(&W.loop, UV_RUN_ONCE);
}

static void on_tick(uv_timer_t *t)
{
	(void)t;
}

static void on_proc(uv_timer_t *t)
{
	(void)t;
	struct end *ends[] = {&W.P, &W.G, &W.H};
	for (size_t k = 0; k < 3; k++)
		for (int i = 0; i < 3; i++) {
			struct ppeer *pp = &ends[k]->pp[i];
			if (!pp->inited || !pp->async)
				continue;
			/* newest first: completions out of order need selective acks */
			while (pp->pend.n)
				process(pp, pp->pend.v[--pp->pend.n]);
		}
}

/* ---- logs ---- */

static size_t log_mark(void)
{
	fflush(W.log);
	return W.loglen;
}

/* The first log line after mark that contains all of the given strings, or NULL. */
static const char *log_find(size_t mark, const char *a, const char *b)
{
	fflush(W.log);
	const char *p = W.logbuf + mark;
	while (p && *p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		char line[2048];
		snprintf(line, sizeof line, "%.*s", (int)len, p);
		if (strstr(line, a) && (!b || strstr(line, b)))
			return p;
		p = nl ? nl + 1 : NULL;
	}
	return NULL;
}

#define assert_logged(mark, a, b)                                                                  \
	do {                                                                                       \
		if (!log_find((mark), (a), (b)))                                                   \
			fail_msg("no log line with \"%s\"%s%s%s", (a), (b) ? " and \"" : "",       \
				 (b) ? (const char *)(b) : "", (b) ? "\"" : "");                   \
	} while (0)

/* ---- fixtures ---- */

static const char *src_root(void)
{
	static char root[512];
	const char *env = getenv("PARLEY_SRCDIR");
	if (env)
		return env;
	const char *f = __FILE__;
	const char *t = strstr(f, "tests/unit/");
	size_t n = t ? (size_t)(t - f) : 0;
	if (n == 0)
		return ".";
	snprintf(root, sizeof root, "%.*s", (int)n, f);
	return root;
}

static struct tls_ctx *mkctx(bool server, const char *name)
{
	char cert[160], key[160], ca[160], err[256] = "";
	snprintf(cert, sizeof cert, "%s/%s.pem", certdir, name);
	snprintf(key, sizeof key, "%s/%s.key", certdir, name);
	snprintf(ca, sizeof ca, "%s/ca.pem", certdir);
	/* the daemons' own context: TLS 1.3 only, the server requires a client certificate */
	struct link_conf lc = {.cert = cert, .key = key, .ca = ca};
	struct tls_ctx *x = link_tls_ctx_new(server, &lc, err, sizeof err);
	if (!x)
		print_error("link_tls_ctx_new(%s): %s\n", name, err);
	return x;
}

static int group_setup(void **state)
{
	(void)state;
	snprintf(certdir, sizeof certdir, "/tmp/parley-test-link-XXXXXX");
	if (!mkdtemp(certdir))
		return -1;
	char cmd[1024];
	snprintf(cmd, sizeof cmd,
		 "sh %s/deploy/mkcerts.sh %s proxy.link.test gateway.link.test other.link.test",
		 src_root(), certdir);
	if (system(cmd) != 0)
		return -1;
	W.ctx_proxy = mkctx(true, "proxy.link.test");
	W.ctx_gw = mkctx(false, "gateway.link.test");
	W.ctx_other_srv = mkctx(true, "other.link.test");
	W.ctx_other_cli = mkctx(false, "other.link.test");
	return W.ctx_proxy && W.ctx_gw && W.ctx_other_srv && W.ctx_other_cli ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	tls_ctx_free(W.ctx_proxy);
	tls_ctx_free(W.ctx_gw);
	tls_ctx_free(W.ctx_other_srv);
	tls_ctx_free(W.ctx_other_cli);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", certdir);
	return system(cmd) == 0 ? 0 : -1;
}

static int setup(void **state)
{
	(void)state;
	W.l = NULL;
	W.raw_srv = NULL;
	W.connect_failed = 0;
	W.srv_tls = W.ctx_proxy;
	assert_int_equal(uv_loop_init(&W.loop), 0);
	uv_timer_init(&W.loop, &W.tick);
	uv_timer_start(&W.tick, on_tick, 2, 2);
	uv_timer_init(&W.loop, &W.proc);
	W.log = open_memstream(&W.logbuf, &W.loglen);
	assert_non_null(W.log);
	log_set_stream(W.log);
	memset(&link_stats, 0, sizeof link_stats);
	end_init(&W.P, false, "proxy-1", PARLEY__LINK__ROLE__ROLE_PROXY, "gateway.link.test");
	end_init(&W.G, true, "gw-a", PARLEY__LINK__ROLE__ROLE_GATEWAY, "proxy.link.test");
	end_init(&W.H, true, "gw-b", PARLEY__LINK__ROLE__ROLE_GATEWAY, "proxy.link.test");
	W.H.cfg.priority = 9;
	assert_int_equal(net_listen(&W.loop, "127.0.0.1", 0, 64, on_accept, NULL, &W.l), 0);
	W.port = net_listener_port(W.l);
	return 0;
}

/* Everything set up by the test must be gone after the loop drains: no connection, timer or
 * session left (uv_loop_close fails on an open handle; ASan reports leaked memory). */
static int teardown(void **state)
{
	(void)state;
	int rc = 0;
	struct end *ends[] = {&W.P, &W.G, &W.H};
	for (size_t k = 0; k < 3; k++)
		for (int i = 0; i < 3; i++)
			if (ends[k]->pp[i].inited && ends[k]->pp[i].lp.sess)
				link_session_close(ends[k]->pp[i].lp.sess, "test over");
	for (int i = 0; i < W.nraw; i++)
		if (W.raws[i]->c)
			net_conn_abort(W.raws[i]->c, 0);
	if (W.l)
		net_listener_close(W.l);
	W.l = NULL;
	uint64_t t0 = uv_now(&W.loop);
	while (net_stats_get()->conns_open != 0) {
		if (uv_now(&W.loop) - t0 > GUARD_MS) {
			print_error("connections still open: %llu\n",
				    (unsigned long long)net_stats_get()->conns_open);
			rc = -1;
			break;
		}
		uv_run(&W.loop, UV_RUN_ONCE);
	}
	uv_close((uv_handle_t *)&W.tick, NULL);
	uv_close((uv_handle_t *)&W.proc, NULL);
	if (rc == 0) {
		uv_run(&W.loop, UV_RUN_DEFAULT);
		int r = uv_loop_close(&W.loop);
		if (r) {
			print_error("uv_loop_close: %s (a handle was left open)\n", uv_strerror(r));
			rc = -1;
		}
	}
	for (size_t k = 0; k < 3; k++) {
		for (int i = 0; i < 3; i++)
			if (ends[k]->pp[i].inited && ends[k]->pp[i].lp.sess) {
				print_error("%s: a link_peer still names a session\n",
					    ends[k]->cfg.node_id);
				rc = -1;
			}
		end_deinit(ends[k]);
	}
	if (W.connect_failed) {
		print_error("%d TCP connects failed\n", W.connect_failed);
		rc = -1;
	}
	for (int i = 0; i < W.nraw; i++) {
		raw_deinit(W.raws[i]);
		free(W.raws[i]);
	}
	W.nraw = 0;
	log_set_stream(NULL);
	fclose(W.log);
	if (getenv("PARLEY_TEST_LOG"))
		fputs(W.logbuf, stderr);
	free(W.logbuf);
	W.logbuf = NULL;
	return rc;
}

/* The usual pair: P (edge, acceptor) and G (gateway, dialer); G's peer is sized to P's
 * window as the gateway would. */
static void start_pg(void)
{
	end_start_out(&W.P);
	end_start_out(&W.G);
	ppeer_init(&W.G.pp[0], &W.G, "edge-1", W.P.cfg.window);
	W.G.npp = 1;
}

static uint32_t depth(const struct end *e)
{
	return outbox_depth(&e->out.ob);
}

/* ==== 1. Hello ==== */

static void test_hello_exchange(void **state)
{
	(void)state;
	start_pg();
	size_t mark = log_mark();
	connect_up(&W.G);
	struct ppeer *pg = &W.P.pp[0], *gp = &W.G.pp[0];
	assert_int_equal(W.P.npp, 1);
	assert_non_null(pg->lp.sess);
	assert_non_null(gp->lp.sess);
	assert_true(link_session_up(pg->lp.sess));
	assert_true(link_session_up(gp->lp.sess));
	assert_ptr_equal(link_session_peer(pg->lp.sess), &pg->lp);
	assert_ptr_equal(link_session_peer(gp->lp.sess), &gp->lp);
	assert_int_equal(link_session_id(gp->lp.sess), net_conn_id(conn_of(gp)));
	assert_true(link_session_id(gp->lp.sess) != link_session_id(pg->lp.sess));
	/* each side learnt who the other is from its Hello */
	assert_string_equal(pg->lp.node_id, "gw-a");
	assert_int_equal(pg->lp.role, PARLEY__LINK__ROLE__ROLE_GATEWAY);
	assert_int_equal(pg->lp.priority, 7);
	assert_int_equal(pg->lp.in.peer_epoch, W.G.epoch);
	assert_string_equal(gp->lp.node_id, "proxy-1");
	assert_int_equal(gp->lp.role, PARLEY__LINK__ROLE__ROLE_PROXY);
	assert_int_equal(gp->lp.in.peer_epoch, W.P.epoch);
	assert_int_equal(pg->lp.connects, 1);
	assert_int_equal(gp->lp.connects, 1);
	/* both outboxes are transmitted by the new sessions */
	assert_ptr_equal(W.P.out.tx, pg->lp.sess);
	assert_ptr_equal(W.G.out.tx, gp->lp.sess);
	assert_int_equal(link_stats.sessions_up, 2);
	assert_int_equal(link_stats.sessions_refused, 0);
	assert_logged(mark, "event=link_up", "node=gw-a");
	assert_logged(mark, "event=link_up", "node=proxy-1");
	assert_logged(mark, "event=link_up", "tls=TLSv1.3");

	/* a graceful close says Goodbye; the other side logs it and both go down */
	mark = log_mark();
	link_session_close(gp->lp.sess, "maintenance");
	RUN_UNTIL(W.P.n_down == 1 && W.G.n_down == 1);
	assert_null(W.P.out.tx);
	assert_null(W.G.out.tx);
	assert_null(pg->lp.sess);
	assert_null(gp->lp.sess);
	assert_int_equal(W.G.last_down, 0);
	assert_logged(mark, "event=link_goodbye", "reason=\"maintenance\"");
	assert_logged(mark, "event=link_down", "goodbye=1");
}

static void test_same_role_refused(void **state)
{
	(void)state;
	W.G.cfg.role = PARLEY__LINK__ROLE__ROLE_PROXY; /* two edges */
	start_pg();
	size_t mark = log_mark();
	dial(&W.G.pp[0]);
	RUN_UNTIL(W.P.n_down == 1 && W.G.n_down == 1);
	assert_int_equal(W.P.n_up, 0);
	assert_int_equal(W.G.n_up, 0);
	assert_int_equal(W.P.last_down, PE_PROTO);
	assert_int_equal(link_stats.sessions_up, 0);
	assert_int_equal(link_stats.sessions_refused, 2);
	assert_logged(mark, "event=link_error", "peer has the same role as we do");
	assert_logged(mark, "event=link_refused", NULL);
}

/* The dialer checks the acceptor's Hello as well: role and version. */
static void test_dialer_checks_hello(void **state)
{
	(void)state;
	start_pg();
	static const struct {
		uint32_t version;
		int role;
		const char *why;
	} cases[] = {
	    {1, PARLEY__LINK__ROLE__ROLE_GATEWAY, "peer has the same role as we do"},
	    {2, PARLEY__LINK__ROLE__ROLE_PROXY, "unsupported link version"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct raw *srv = raw_new();
		put_hello(&srv->early, cases[i].version, cases[i].role, 42);
		W.raw_srv = srv;
		size_t mark = log_mark();
		int downs = W.G.n_down;
		dial(&W.G.pp[0]);
		RUN_UNTIL(W.G.n_down == downs + 1 && srv->n_close == 1);
		assert_int_equal(W.G.n_up, 0);
		assert_int_equal(W.G.last_down, PE_PROTO);
		assert_logged(mark, "event=link_error", cases[i].why);
		/* it said Hello first, as the dialer does */
		struct seen sn;
		raw_parse(srv, &sn);
		assert_int_equal(sn.n[PARLEY__LINK__FRAME__BODY_HELLO], 1);
		W.raw_srv = NULL;
	}
}

/* ==== 2. reliable frames ==== */

static void stream_both_ways(bool async)
{
	const uint64_t N = 10000;
	start_pg();
	W.G.pp[0].hold_from = async ? 1 : 0;
	W.G.pp[0].async = async;
	W.P.hold_default = async ? 1 : 0;
	if (async)
		uv_timer_start(&W.proc, on_proc, 1, 1);
	connect_up(&W.G);
	struct ppeer *pg = &W.P.pp[0], *gp = &W.G.pp[0];
	pg->async = async;
	W.P.goal = W.G.goal = N;
	pump(&W.P);
	pump(&W.G);
	RUN_UNTIL(pg->got.n == N && gp->got.n == N && depth(&W.P) == 0 && depth(&W.G) == 0);
	assert_seqs(&pg->got, 1, N);
	assert_seqs(&gp->got, 1, N);
	assert_int_equal(pg->disorder + gp->disorder + pg->bad + gp->bad, 0);
	assert_int_equal(W.P.send_err, 0);
	assert_int_equal(W.G.send_err, 0);
	/* the producers paused at the window and were woken by acks */
	assert_true(W.P.paused > 0 && W.P.n_room > 0);
	assert_true(W.G.paused > 0 && W.G.n_room > 0);
	assert_int_equal(W.P.n_full + W.G.n_full, 0);
	assert_int_equal(link_stats.frames_out, 2 * N);
	assert_int_equal(link_stats.frames_in, 2 * N);
	assert_int_equal(link_stats.dups_dropped, 0);
	assert_int_equal(link_stats.resent, 0);
	assert_true(link_stats.acks_out > 0 && link_stats.acks_in > 0);
	assert_true(W.P.n_acked > 0 && W.G.n_acked > 0);
	assert_int_equal(pg->lp.in.upto, N);
	assert_int_equal(gp->lp.in.upto, N);
	assert_int_equal(pg->pend.n + gp->pend.n, 0);
	assert_int_equal(W.P.n_down + W.G.n_down, 0);
}

static void test_stream_both_ways(void **state)
{
	(void)state;
	stream_both_ways(false);
}

/* Frames processed later, from a timer and newest first, are acknowledged all the same. */
static void test_stream_async_processing(void **state)
{
	(void)state;
	stream_both_ways(true);
}

/* ==== 3. window ==== */

static void test_window(void **state)
{
	(void)state;
	W.G.cfg.window = 64;
	start_pg();
	W.P.hold_default = 1;
	connect_up(&W.G);
	struct ppeer *pg = &W.P.pp[0];
	size_t mark = log_mark();

	/* a well-behaved producer stops at the window while the receiver sits on its frames */
	W.G.goal = 300;
	pump(&W.G);
	assert_int_equal(W.G.next_ref, 65);
	assert_true(link_out_full(&W.G.out));
	RUN_UNTIL(pg->got.n == 64);
	run_for(100);
	assert_int_equal(pg->got.n, 64);
	assert_int_equal(W.G.next_ref, 65);
	assert_int_equal(W.G.n_room, 0);
	assert_int_equal(depth(&W.G), 64);

	/* processing opens the window: on_room, and the rest flows */
	pg->hold_from = 0;
	process_range(pg, 1, 64);
	RUN_UNTIL(pg->got.n == 300 && depth(&W.G) == 0);
	assert_true(W.G.n_room >= 1);
	assert_seqs(&pg->got, 1, 300);
	assert_int_equal(link_stats.dups_dropped, 0);

	/* A producer that finishes what it already read may go past the window, up to the ring
	 * (twice the window); only then PE_FULL. The receiver must take all of it: its receive
	 * window was sized from the window the sender announced. */
	pg->hold_from = 301;
	W.G.overshoot = true;
	W.G.goal = 600;
	pump(&W.G);
	assert_int_equal(W.G.n_full, 1);
	assert_int_equal(W.G.next_ref, 301 + 128);
	int r;
	send_one(&W.G, W.G.next_ref, &r);
	assert_int_equal(r, PE_FULL);
	RUN_UNTIL(pg->got.n == 428 || W.P.n_down > 0);
	assert_int_equal(W.P.n_down, 0);
	assert_null(log_find(mark, "event=link_error", NULL));
	pg->hold_from = 0;
	process_range(pg, 301, 428);
	RUN_UNTIL(pg->got.n == 600 && depth(&W.G) == 0);
	assert_seqs(&pg->got, 1, 600);
	assert_int_equal(pg->disorder + pg->bad, 0);
	assert_int_equal(W.P.n_down + W.G.n_down, 0);
}

/* The window in bytes, and a frame larger than max_frame: no session needed. */
static void test_send_limits(void **state)
{
	(void)state;
	W.G.cfg.window = 1024;
	W.G.cfg.window_bytes = 1000;
	end_start_out(&W.G);
	W.G.goal = 1000;
	pump(&W.G);
	uint64_t sent = W.G.next_ref - 1;
	assert_true(link_out_full(&W.G.out));
	assert_true(W.G.out.ob.bytes >= 1000);
	assert_true(W.G.out.ob.bytes - W.G.out.ob.bytes / sent < 1000); /* full on the last one */
	assert_true(sent > 5 && sent < 1000);

	Parley__Link__Frame f = PARLEY__LINK__FRAME__INIT;
	Parley__Link__Stanza st = PARLEY__LINK__STANZA__INIT;
	char big[5000];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = 0;
	st.kind = PARLEY__LINK__STANZA_KIND__KIND_MESSAGE;
	st.body = big;
	f.body_case = PARLEY__LINK__FRAME__BODY_STANZA;
	f.stanza = &st;
	uint64_t next = W.G.out.ob.next_seq;
	assert_int_equal(link_out_send(&W.G.out, &f), PE_TOOBIG);
	assert_int_equal(W.G.out.ob.next_seq, next); /* no seq was used up */
}

/* ==== 4. reconnect in the same epochs ==== */

/* G sends 100; P has processed 1..40 (acked), 41..60 (not acked yet) and holds 61..100
 * when the connection is cut. G queues 101..150 meanwhile. After the reconnect P's Hello
 * acks 41..60, G sends only 61..150, and P drops 61..100 as duplicates. */
static void test_reconnect_same_epochs(void **state)
{
	(void)state;
	start_pg();
	W.P.hold_default = 1;
	connect_up(&W.G);
	struct ppeer *pg = &W.P.pp[0], *gp = &W.G.pp[0];
	size_t mark = log_mark();
	W.G.goal = 100;
	pump(&W.G);
	RUN_UNTIL(pg->got.n == 100);
	process_range(pg, 1, 40);
	RUN_UNTIL(W.G.out.ob.head == 41);
	/* 41..60 processed and the connection dies before the ack leaves */
	process_range(pg, 41, 60);
	net_conn_abort(conn_of(pg), PE_CLOSED);
	RUN_UNTIL(W.P.n_down == 1 && W.G.n_down == 1);
	assert_int_equal(W.P.last_down, PE_CLOSED);
	assert_int_equal(W.G.out.ob.head, 41);
	assert_null(W.G.out.tx);
	W.G.goal = 150;
	pump(&W.G); /* queued while disconnected */
	assert_int_equal(W.G.next_ref, 151);

	struct link_stats before = link_stats;
	int acked = W.G.n_acked;
	dial(gp);
	RUN_UNTIL(W.P.n_up == 2 && W.G.n_up == 2 && pg->got.n == 150);
	assert_int_equal(W.G.out.ob.head, 61);	  /* P's Hello acknowledged 41..60 */
	assert_int_equal(W.G.n_acked, acked + 1); /* and the producer heard of it */
	process_range(pg, 61, 150);
	RUN_UNTIL(depth(&W.G) == 0);
	assert_seqs(&pg->got, 1, 150);
	assert_int_equal(pg->disorder + pg->bad, 0);
	/* only 61..100 went out twice; P recognised each of them */
	assert_int_equal(link_stats.frames_out - before.frames_out, 90);
	assert_int_equal(link_stats.resent - before.resent, 40);
	assert_int_equal(link_stats.dups_dropped - before.dups_dropped, 40);
	assert_int_equal(pg->lp.connects, 2);
	assert_int_equal(gp->lp.connects, 2);
	assert_null(log_find(mark, "event=link_error", NULL));
}

/* Both directions streaming, the dialer's connection cut in the middle: exactly once, in
 * order, whatever was in flight. */
static void test_reconnect_midstream(void **state)
{
	(void)state;
	const uint64_t N = 5000;
	start_pg();
	connect_up(&W.G);
	struct ppeer *pg = &W.P.pp[0], *gp = &W.G.pp[0];
	W.P.goal = W.G.goal = N;
	pump(&W.P);
	pump(&W.G);
	RUN_UNTIL(pg->got.n >= 2000);
	assert_true(pg->got.n < N);
	net_conn_abort(conn_of(gp), PE_CLOSED);
	RUN_UNTIL(W.P.n_down == 1 && W.G.n_down == 1);
	dial(gp);
	RUN_UNTIL(pg->got.n == N && gp->got.n == N && depth(&W.P) == 0 && depth(&W.G) == 0);
	assert_seqs(&pg->got, 1, N);
	assert_seqs(&gp->got, 1, N);
	assert_int_equal(pg->disorder + gp->disorder + pg->bad + gp->bad, 0);
	assert_int_equal(W.P.n_up, 2);
	assert_int_equal(W.G.n_up, 2);
	/* anything dropped as a duplicate had been sent again; nothing was lost */
	assert_true(link_stats.dups_dropped <= link_stats.resent);
	assert_int_equal(link_stats.frames_in - link_stats.dups_dropped, 2 * N);
}

/* ==== 5. a new receiver epoch (the gateway restarted) ==== */

static void test_receiver_restart(void **state)
{
	(void)state;
	start_pg();
	W.G.pp[0].hold_from = 1;
	connect_up(&W.G);
	struct ppeer *pg = &W.P.pp[0], *g1 = &W.G.pp[0];
	W.P.goal = 100;
	pump(&W.P);
	W.G.goal = 10;
	pump(&W.G);
	RUN_UNTIL(g1->got.n == 100 && pg->got.n == 10 && depth(&W.G) == 0);
	process_range(g1, 1, 40);
	RUN_UNTIL(W.P.out.ob.head == 41);
	process_range(g1, 41, 60);
	net_conn_abort(conn_of(g1), PE_CLOSED); /* the gateway dies: 41..60 done, not acked */
	RUN_UNTIL(W.P.n_down == 1 && W.G.n_down == 1);
	assert_int_equal(W.P.out.ob.head, 41);

	/* It starts again: a new epoch, a new outbox, a new record of what it received. */
	W.G.epoch = link_new_epoch();
	link_out_deinit(&W.G.out);
	end_start_out(&W.G);
	W.G.next_ref = 1;
	W.G.goal = 0;
	struct ppeer *g2 = &W.G.pp[1];
	ppeer_init(g2, &W.G, "edge-1", W.P.cfg.window);
	W.G.npp = 2;
	W.P.goal = 150;
	pump(&W.P);
	struct link_stats before = link_stats;
	dial(g2);
	RUN_UNTIL(W.P.n_up == 2 && W.G.n_up == 2);
	W.G.goal = 10;
	pump(&W.G);
	RUN_UNTIL(g2->got.n == 110 && pg->got.n == 20 && depth(&W.P) == 0 && depth(&W.G) == 0);

	/* every unacknowledged frame came again, nothing twice on the new side */
	assert_seqs(&g2->got, 41, 150);
	assert_int_equal(g2->disorder + g2->bad, 0);
	assert_int_equal(link_stats.dups_dropped - before.dups_dropped, 0);
	assert_int_equal(link_stats.resent - before.resent, 60);
	/* across both lives: nothing lost, and only processed-but-unacked frames done twice */
	for (uint64_t s = 1; s <= 150; s++) {
		bool old = seqv_has(&g1->done, s), now = seqv_has(&g2->done, s);
		if (!old && !now)
			fail_msg("seq %llu was never processed", (unsigned long long)s);
		if (old && now && (s < 41 || s > 60))
			fail_msg("seq %llu processed twice but it had been acked or not processed",
				 (unsigned long long)s);
		if ((s >= 41 && s <= 60) != (old && now))
			fail_msg("seq %llu: want a duplicate exactly for 41..60",
				 (unsigned long long)s);
	}
	/* P saw the new epoch start from seq 1 again, and took those as new frames */
	assert_int_equal(pg->lp.in.peer_epoch, W.G.epoch);
	assert_int_equal(pg->disorder + pg->bad, 0);
	for (size_t i = 0; i < 20; i++)
		assert_int_equal(pg->got.v[i], i % 10 + 1);
}

/* ==== 6. standby takeover: first_unacked ==== */

/* G is active and has processed 1..250 of P's frames; H is a standby that never saw any.
 * When G dies H becomes active; the re-Hello tells it first_unacked = 251, so it accepts 251
 * although that is far beyond its receive window counted from 0. */
static void test_standby_takeover(void **state)
{
	(void)state;
	W.P.cfg.window = 64;
	start_pg();
	end_start_out(&W.H);
	ppeer_init(&W.H.pp[0], &W.H, "edge-1", W.P.cfg.window);
	W.H.npp = 1;
	W.G.pp[0].hold_from = 251;
	connect_up(&W.G);
	connect_up(&W.H);
	struct ppeer *pg = &W.P.pp[0], *ph = &W.P.pp[1], *g = &W.G.pp[0], *h = &W.H.pp[0];
	assert_string_equal(ph->lp.node_id, "gw-b");
	assert_ptr_equal(W.P.out.tx, pg->lp.sess);
	size_t mark = log_mark();
	W.P.goal = 300;
	pump(&W.P);
	RUN_UNTIL(g->got.n == 300 && W.P.out.ob.head == 251);
	assert_int_equal(h->got.n, 0);
	assert_int_equal(h->lp.in.upto, 0);

	struct link_stats before = link_stats;
	net_conn_abort(conn_of(g), PE_CLOSED);
	RUN_UNTIL(W.G.n_down == 1 && W.P.out.tx == ph->lp.sess && depth(&W.P) == 0);
	assert_seqs(&h->got, 251, 300);
	assert_int_equal(link_stats.resent - before.resent, 50);
	W.P.goal = 360;
	pump(&W.P);
	RUN_UNTIL(h->got.n == 110 && depth(&W.P) == 0);
	assert_seqs(&h->got, 251, 360);
	assert_int_equal(h->disorder + h->bad, 0);
	assert_int_equal(h->lp.in.upto, 360);
	assert_true(link_session_up(h->lp.sess));
	assert_int_equal(W.H.n_down, 0);
	assert_null(log_find(mark, "event=link_error", NULL));
}

/* Frames from the standby processed asynchronously just before it becomes active: the
 * re-Hello sent by link_out_attach carries their acknowledgement, which must not be lost. */
static void test_takeover_keeps_pending_acks(void **state)
{
	(void)state;
	start_pg();
	end_start_out(&W.H);
	ppeer_init(&W.H.pp[0], &W.H, "edge-1", W.P.cfg.window);
	W.H.npp = 1;
	connect_up(&W.G);
	W.P.hold_default = 1;
	connect_up(&W.H);
	struct ppeer *ph = &W.P.pp[1];
	W.H.goal = 10;
	pump(&W.H);
	RUN_UNTIL(ph->got.n == 10);
	process_range(ph, 1, 10);
	link_out_attach(&W.P.out, ph->lp.sess); /* H takes over before the ack timer ran */
	RUN_UNTIL(depth(&W.H) == 0);
	assert_int_equal(W.H.out.ob.head, 11);
}

/* ==== acks carried by a Hello wake a paused producer ==== */

/* G fills its window; P processes everything but the connection dies before the Ack
 * leaves. After the reconnect P's Hello acknowledges the whole window: G's outbox is empty
 * and no Ack will ever come, so on_room must fire from the Hello. */
static void test_room_from_hello_acks(void **state)
{
	(void)state;
	W.G.cfg.window = 64;
	start_pg();
	W.P.hold_default = 1;
	connect_up(&W.G);
	struct ppeer *pg = &W.P.pp[0];
	W.G.goal = 200;
	pump(&W.G);
	assert_int_equal(W.G.next_ref, 65);
	RUN_UNTIL(pg->got.n == 64);
	process_range(pg, 1, 64);
	net_conn_abort(conn_of(pg), PE_CLOSED);
	RUN_UNTIL(W.P.n_down == 1 && W.G.n_down == 1);
	assert_int_equal(depth(&W.G), 64);
	assert_int_equal(W.G.n_room, 0);
	pg->hold_from = 0;
	dial(&W.G.pp[0]);
	RUN_UNTIL(pg->got.n == 200 && depth(&W.G) == 0);
	assert_true(W.G.n_room >= 1);
	assert_seqs(&pg->got, 1, 200);
}

/* ==== a second session for the same peer ==== */

/* The dialer opens a new session for a peer whose old session is still up and attaches its
 * outbox later (say in on_up). The old session must not stay attached after it is freed. */
static void test_new_session_replaces_old(void **state)
{
	(void)state;
	start_pg();
	connect_up(&W.G);
	struct ppeer *pg = &W.P.pp[0], *gp = &W.G.pp[0];
	size_t mark = log_mark();
	W.G.no_attach = true;
	dial(gp);
	RUN_UNTIL(W.G.n_down == 1 && W.G.n_up == 2 && W.P.n_down == 1 && W.P.n_up == 2);
	assert_logged(mark, "event=link_error", "replaced by a new connection");
	run_for(20); /* the old session is freed by now */
	assert_non_null(gp->lp.sess);
	assert_true(link_session_up(gp->lp.sess));
	assert_null(W.G.out.tx);
	W.G.goal = 5;
	pump(&W.G); /* queued: nothing transmits it */
	link_out_attach(&W.G.out, gp->lp.sess);
	RUN_UNTIL(pg->got.n == 5 && depth(&W.G) == 0);
	assert_seqs(&pg->got, 1, 5);
}

/* ==== 7. protocol errors ==== */

enum raw_script {
	RS_BYTES,      /* the bytes as given */
	RS_HELLO_THEN, /* a valid Hello, then the bytes */
};

static void test_protocol_errors(void **state)
{
	(void)state;
	start_pg();
	static const uint8_t oversize[] = {0, 0, 0x10, 0x01};		 /* 4097 > max_frame */
	static const uint8_t zero[] = {0, 0, 0, 0};			 /* a frame has a body */
	static const uint8_t garbage[] = {0, 0, 0, 3, 0xff, 0xff, 0xff}; /* not protobuf */
	static const uint8_t nobody[] = {0, 0, 0, 2, 0x08, 0x01};	 /* seq only, no body */
	char long_node[200];
	memset(long_node, 'g', sizeof long_node - 1);
	long_node[sizeof long_node - 1] = 0;
	struct {
		const char *name;
		enum raw_script script;
		const char *node; /* a Hello from this node id instead (version 1, gateway) */
		const uint8_t *bytes;
		size_t len;
		uint32_t version; /* Hello cases: 0 = none */
		int role;
		bool has_seq;
		uint64_t seq; /* stanza cases: 0 = none, unless has_seq */
		bool refuse;
		int err;
		const char *why;
	} cases[] = {
	    {"frame before Hello", RS_BYTES, NULL, NULL, 0, 0, 0, true, 1, false, PE_PROTO,
	     "frame before Hello"},
	    {"oversize length", RS_BYTES, NULL, oversize, sizeof oversize, 0, 0, false, 0, false,
	     PE_TOOBIG, "frame larger than max_frame"},
	    {"zero length", RS_BYTES, NULL, zero, sizeof zero, 0, 0, false, 0, false, PE_PROTO,
	     "malformed frame"},
	    {"garbage protobuf", RS_BYTES, NULL, garbage, sizeof garbage, 0, 0, false, 0, false,
	     PE_PROTO, "malformed frame"},
	    {"frame without a body", RS_BYTES, NULL, nobody, sizeof nobody, 0, 0, false, 0, false,
	     PE_PROTO, "malformed frame"},
	    {"version mismatch", RS_BYTES, NULL, NULL, 0, 2, PARLEY__LINK__ROLE__ROLE_GATEWAY,
	     false, 0, false, PE_PROTO, "unsupported link version"},
	    {"same role", RS_BYTES, NULL, NULL, 0, 1, PARLEY__LINK__ROLE__ROLE_PROXY, false, 0,
	     false, PE_PROTO, "peer has the same role as we do"},
	    {"refused by the application", RS_BYTES, NULL, NULL, 0, 1,
	     PARLEY__LINK__ROLE__ROLE_GATEWAY, false, 0, true, PE_PROTO,
	     "peer refused by application"},
	    {"seq beyond the window", RS_HELLO_THEN, NULL, NULL, 0, 0, 0, true, 1000, false,
	     PE_PROTO, "seq outside the receive window"},
	    {"seq 0", RS_HELLO_THEN, NULL, NULL, 0, 0, 0, true, 0, false, PE_PROTO,
	     "seq outside the receive window"},
	    {"reliable frame without seq", RS_HELLO_THEN, NULL, NULL, 0, 0, 0, false, 1, false,
	     PE_PROTO, "reliable frame without seq"},
	    {"oversize after Hello", RS_HELLO_THEN, NULL, oversize, sizeof oversize, 0, 0, false, 0,
	     false, PE_TOOBIG, "frame larger than max_frame"},
	    {"garbage after Hello", RS_HELLO_THEN, NULL, garbage, sizeof garbage, 0, 0, false, 0,
	     false, PE_PROTO, "malformed frame"},
	    /* node ids end up in log lines and in a fixed-size link_peer field */
	    {"node id with a newline", RS_BYTES, "gw\nlevel=error event=forged", NULL, 0, 0, 0,
	     false, 0, false, PE_PROTO, "node id"},
	    {"node id with a space", RS_BYTES, "gw event=forged", NULL, 0, 0, 0, false, 0, false,
	     PE_PROTO, "node id"},
	    {"empty node id", RS_BYTES, "", NULL, 0, 0, 0, false, 0, false, PE_PROTO, "node id"},
	    {"node id too long", RS_BYTES, long_node, NULL, 0, 0, 0, false, 0, false, PE_PROTO,
	     "node id"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct raw *r = raw_new();
		bool hello = cases[i].script == RS_HELLO_THEN;
		if (hello)
			put_hello(&r->early, 1, PARLEY__LINK__ROLE__ROLE_GATEWAY, 1000 + i);
		if (cases[i].version)
			put_hello(&r->early, cases[i].version, cases[i].role, 1000 + i);
		if (cases[i].node)
			put_hello_from(&r->early, cases[i].node, 1,
				       PARLEY__LINK__ROLE__ROLE_GATEWAY, 1000 + i);
		if (cases[i].seq || cases[i].has_seq)
			put_stanza(&r->early, cases[i].has_seq, cases[i].seq);
		if (cases[i].bytes)
			assert_int_equal(buf_append(&r->early, cases[i].bytes, cases[i].len), 0);
		W.P.refuse = cases[i].refuse;
		int downs = W.P.n_down, ups = W.P.n_up;
		size_t mark = log_mark();
		raw_dial(r);
		RUN_UNTIL(W.P.n_down == downs + 1 && r->n_close == 1);
		if (W.P.last_down != cases[i].err)
			fail_msg("%s: closed with %s, want %s", cases[i].name,
				 pe_strerror(W.P.last_down), pe_strerror(cases[i].err));
		if (!log_find(mark, "event=link_error", cases[i].why))
			fail_msg("%s: no link_error log line with \"%s\"", cases[i].name,
				 cases[i].why);
		/* only a valid Hello brings the session up, and no frame reached the app */
		assert_int_equal(W.P.n_up - ups, hello ? 1 : 0);
		for (int k = 0; k < W.P.npp; k++)
			assert_int_equal(W.P.pp[k].got.n, 0);
		struct seen sn;
		raw_parse(r, &sn);
		assert_false(sn.torn);
		assert_int_equal(sn.n[PARLEY__LINK__FRAME__BODY_HELLO] > 0, hello);
	}
	assert_null(log_find(0, "level=error event=forged", NULL));
	assert_null(log_find(0, "event=link_up", "event=forged"));
	W.P.refuse = false;
	assert_int_equal(link_stats.frames_in, 0);
}

/* Frames arriving one byte at a time are put together across reads; an oversize length
 * split across reads is caught before its body is awaited. */
static void test_split_reads(void **state)
{
	(void)state;
	start_pg();
	struct raw *r = raw_new();
	struct buf out;
	buf_init(&out, 0);
	put_hello(&out, 1, PARLEY__LINK__ROLE__ROLE_GATEWAY, 77);
	for (uint64_t s = 1; s <= 3; s++)
		put_stanza(&out, true, s);
	raw_dial(r);
	RUN_UNTIL(r->n_secure == 1);
	for (size_t i = 0; i < buf_len(&out); i++) {
		assert_int_equal(net_conn_write(r->c, buf_head(&out) + i, 1), 0);
		run_for(1);
	}
	RUN_UNTIL(W.P.npp == 1 && W.P.pp[0].got.n == 3);
	assert_seqs(&W.P.pp[0].got, 1, 3);
	assert_int_equal(W.P.pp[0].bad, 0);
	struct seen sn;
	RUN_UNTIL((raw_parse(r, &sn), sn.ack_upto == 3));
	assert_int_equal(sn.n[PARLEY__LINK__FRAME__BODY_HELLO] >= 1, 1);

	/* now a length of 4097 in two halves */
	size_t mark = log_mark();
	static const uint8_t half1[] = {0, 0}, half2[] = {0x10, 0x01};
	assert_int_equal(net_conn_write(r->c, half1, 2), 0);
	run_for(20);
	assert_int_equal(W.P.n_down, 0);
	assert_int_equal(net_conn_write(r->c, half2, 2), 0);
	RUN_UNTIL(W.P.n_down == 1 && r->n_close == 1);
	assert_int_equal(W.P.last_down, PE_TOOBIG);
	assert_logged(mark, "event=link_error", "frame larger than max_frame");
	buf_deinit(&out);
}

/* ==== 8. liveness ==== */

static void test_dead_peer(void **state)
{
	(void)state;
	W.P.cfg.ping_ms = 50;
	W.P.cfg.dead_ms = 200;
	start_pg();
	struct raw *r = raw_new();
	put_hello(&r->early, 1, PARLEY__LINK__ROLE__ROLE_GATEWAY, 5);
	size_t mark = log_mark();
	raw_dial(r); /* says Hello, then nothing: not even Pongs */
	RUN_UNTIL(W.P.n_up == 1);
	RUN_UNTIL(W.P.n_down == 1);
	uint64_t silent = W.P.t_down - W.P.t_up;
	assert_int_equal(W.P.last_down, PE_TIMEOUT);
	if (silent < 190 || silent > 1000)
		fail_msg("closed after %llu ms of silence, want about 200",
			 (unsigned long long)silent);
	assert_logged(mark, "event=link_error", "peer silent past the dead-peer timeout");
	assert_logged(mark, "event=link_down", "timed out");
	RUN_UNTIL(r->n_close == 1);
	struct seen sn;
	raw_parse(r, &sn);
	assert_true(sn.n[PARLEY__LINK__FRAME__BODY_PING] >= 2); /* it was pinged meanwhile */
}

static void test_hello_timeout(void **state)
{
	(void)state;
	W.P.cfg.ping_ms = 50;
	W.P.cfg.hello_ms = 150;
	start_pg();
	struct raw *r = raw_new();
	size_t mark = log_mark();
	uint64_t t0 = uv_now(&W.loop);
	raw_dial(r); /* completes TLS and says nothing */
	RUN_UNTIL(W.P.n_down == 1 && r->n_close == 1);
	assert_int_equal(r->n_secure, 1);
	assert_int_equal(W.P.n_up, 0);
	assert_int_equal(W.P.last_down, PE_TIMEOUT);
	assert_true(W.P.t_down - t0 >= 150);
	assert_logged(mark, "event=link_error", "no Hello from the peer in time");
	assert_logged(mark, "event=link_refused", NULL);

	/* the dialer's side: an edge that completes TLS and never answers the Hello */
	W.G.cfg.ping_ms = 50;
	W.G.cfg.hello_ms = 150;
	struct raw *srv = raw_new();
	W.raw_srv = srv;
	mark = log_mark();
	dial(&W.G.pp[0]);
	RUN_UNTIL(W.G.n_down == 1 && srv->n_close == 1);
	assert_int_equal(W.G.last_down, PE_TIMEOUT);
	assert_int_equal(W.G.n_up, 0);
	assert_logged(mark, "event=link_error", "no Hello from the peer in time");
	W.raw_srv = NULL;
}

/* Pings keep an idle link alive and carry the sender's outbox depth. */
static void test_keepalive(void **state)
{
	(void)state;
	W.P.cfg.ping_ms = W.G.cfg.ping_ms = 50;
	W.P.cfg.dead_ms = W.G.cfg.dead_ms = 200;
	start_pg();
	W.P.hold_default = 1;
	connect_up(&W.G);
	W.G.goal = 5;
	pump(&W.G);
	run_for(700);
	assert_int_equal(W.P.n_down + W.G.n_down, 0);
	assert_true(link_session_up(W.P.pp[0].lp.sess));
	assert_true(link_session_up(W.G.pp[0].lp.sess));
	assert_int_equal(W.P.pp[0].lp.peer_outbox_depth, 5);
	assert_int_equal(W.G.pp[0].lp.peer_outbox_depth, 0);
	process_range(&W.P.pp[0], 1, 5);
	RUN_UNTIL(depth(&W.G) == 0);
	run_for(120);
	assert_int_equal(W.P.pp[0].lp.peer_outbox_depth, 0);
}

/* ==== 9. pinning ==== */

static void test_pinning_refuses_dialer(void **state)
{
	(void)state;
	start_pg();
	W.G.tls = W.ctx_other_cli; /* a valid chain, the wrong name */
	size_t mark = log_mark();
	dial(&W.G.pp[0]);
	RUN_UNTIL(W.P.n_down == 1 && W.G.n_down == 1);
	assert_int_equal(W.P.n_up + W.G.n_up, 0);
	assert_int_equal(W.P.last_down, PE_VERIFY);
	assert_int_equal(link_stats.sessions_refused, 2);
	assert_logged(mark, "event=link_refused", "want gateway.link.test");
	assert_logged(mark, "event=link_refused", "have DNS:other.link.test");
	/* the refused side was told why */
	assert_logged(mark, "refused by the peer: certificate names do not match",
		      "other.link.test");
}

static void test_pinning_refuses_acceptor(void **state)
{
	(void)state;
	start_pg();
	W.srv_tls = W.ctx_other_srv;
	size_t mark = log_mark();
	dial(&W.G.pp[0]);
	RUN_UNTIL(W.P.n_down == 1 && W.G.n_down == 1);
	assert_int_equal(W.P.n_up + W.G.n_up, 0);
	assert_int_equal(W.G.last_down, PE_VERIFY);
	assert_logged(mark, "event=link_refused", "want proxy.link.test");
	assert_logged(mark, "refused by the peer: certificate names do not match",
		      "other.link.test");

	/* and the Goodbye itself, as a raw client sees it */
	struct raw *r = raw_new();
	W.srv_tls = W.ctx_proxy;
	static const char *const nobody[] = {"nobody.link.test"};
	W.P.cfg.pinned = nobody;
	raw_dial(r);
	RUN_UNTIL(r->n_close == 1 && W.P.n_down == 2);
	struct seen sn;
	raw_parse(r, &sn);
	assert_int_equal(sn.n[PARLEY__LINK__FRAME__BODY_GOODBYE], 1);
	assert_int_equal(sn.nframes, 1);
	if (!strstr(sn.goodbye, "want nobody.link.test") ||
	    !strstr(sn.goodbye, "DNS:gateway.link.test"))
		fail_msg("Goodbye reason \"%s\"", sn.goodbye);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_hello_exchange, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_same_role_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dialer_checks_hello, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stream_both_ways, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stream_async_processing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_window, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_send_limits, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reconnect_same_epochs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reconnect_midstream, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_receiver_restart, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_standby_takeover, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_takeover_keeps_pending_acks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_room_from_hello_acks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_new_session_replaces_old, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_protocol_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_split_reads, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dead_peer, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hello_timeout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_keepalive, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pinning_refuses_dialer, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pinning_refuses_acceptor, setup, teardown),
	};
	/* TEST_FILTER=glob runs a subset; PARLEY_TEST_LOG=1 prints each test's log lines. */
	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	log_init("test_link", LL_INFO);
	/* as the daemons do (sig.c): a write to a connection the peer reset is EPIPE, not death */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
