/* Non-INVITE transactions, RFC 3261 §17.1.2 and §17.2.2. Transactions live in hash
 * tables keyed by branch (client) and branch + sent-by + method (server, §17.2.3).
 *
 * Timers do not get a libuv handle each: every timer of one kind has the same
 * duration (F and J are 64*T1, K is T4, E takes one of a few doubling values), so
 * each duration gets a FIFO list whose order is the expiry order, and one uv_timer
 * is armed for the earliest head. Adding, cancelling and firing are O(1), and a
 * finished transaction is freed at once instead of after a uv_close round trip. */
#include "sip_txn.h"

#include "err.h"
#include "log.h"
#include "sip_map.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- timer lists ------------------------------------------------------------------- */

struct tq_link {
	struct tq_link *prev, *next; /* next == NULL: not linked */
	uint64_t due;
};

struct tq {
	struct tq_link head;
	uint64_t ival;
};

static void tq_init(struct tq *q, uint64_t ival)
{
	q->head.prev = q->head.next = &q->head;
	q->ival = ival;
}

static void tq_unlink(struct tq_link *e)
{
	if (!e->next)
		return;
	e->prev->next = e->next;
	e->next->prev = e->prev;
	e->next = e->prev = NULL;
}

static struct tq_link *tq_first(struct tq *q)
{
	return q->head.next == &q->head ? NULL : q->head.next;
}

/* --- types ------------------------------------------------------------------------- */

enum txn_kind {
	TK_CLIENT, /* a client transaction */
	TK_SERVER, /* a server transaction */
	TK_GHOST,  /* what is left of a completed UDP client transaction during Timer K */
};

enum ctxn_state {
	CS_TRYING,     /* request sent, nothing heard */
	CS_PROCEEDING, /* a provisional response came */
	CS_COMPLETED,  /* final response delivered; absorbing retransmissions (UDP) */
	CS_FAILING,    /* send failed or flow died: 503 due from the loop */
};

enum stxn_state {
	SS_TRYING,     /* request handed to the TU, no response yet */
	SS_PROCEEDING, /* a provisional response was sent */
	SS_COMPLETED,  /* final response sent; re-sent for retransmissions (UDP) */
};

/* Both transaction kinds start with this so a timer list entry finds its owner. */
struct txn_base {
	struct tq_link rtx;  /* Timer E */
	struct tq_link life; /* Timers F, K, J, or the "now" list */
	uint8_t kind;
	uint8_t state;
};

/* The part of a client transaction that Timer K keeps: enough to recognise and absorb
 * a retransmitted final response. A full transaction is about 700 bytes; at 50 000
 * transactions/s over UDP, T4 = 5 s of them would hold 175 MB instead of 40 MB. */
struct txn_hdr {
	struct txn_base b;
	struct sip_map_node node; /* in cmap, keyed by branch */
	char method[32];
	char branch[64];
};

struct sip_ctxn {
	struct txn_hdr h;
	uint8_t rtx_idx; /* index of the E interval list used last */
	uint8_t mi;	 /* enum sip_txn_method, for the counters */
	bool reliable;
	uint64_t start_ns; /* uv_hrtime() at the first send, for the duration histogram */
	struct sip_ctxn *anext, *aprev; /* active (unanswered) list */
	struct sip_txn_layer *l;
	struct sip_msg *req; /* borrowed until the callback */
	sip_ctxn_cb cb;
	void *arg;
	int fail_status; /* CS_FAILING: what to synthesise */
	struct sip_hop hop;
	uint64_t flow;
	uint8_t *wire; /* UDP: the request, for retransmission */
	size_t wire_len;
};

struct sip_stxn {
	struct txn_base b;
	uint8_t mi; /* enum sip_txn_method, for the counters */
	bool reliable;
	bool final_sent;
	struct sip_map_node node;
	struct sip_txn_layer *l;
	struct sip_msg *req;
	struct sip_hop src;  /* where the request came from */
	struct sip_hop dest; /* where responses go (RFC 3261 §18.2.2, RFC 3581) */
	uint8_t *last;	     /* UDP: the last response, for retransmitted requests */
	size_t last_len;
	char tag[24];
	size_t klen;
	char key[];
};

#define RTX_LISTS 16

struct sip_txn_layer {
	uv_loop_t *loop;
	uv_timer_t timer;
	uint64_t armed; /* due time the timer is armed for; UINT64_MAX = stopped */
	struct tq rtx[RTX_LISTS];
	int nrtx;
	struct tq q64; /* F and J: 64*T1 */
	struct tq qk;  /* K: T4 */
	struct tq qnow;
	struct sip_map cmap, smap;
	struct sip_ctxn *active;
	struct sip_txn_io io;
	void *io_arg;
	char *sent_by[SIP_PROTO__N];
	char marker[32];
	size_t marker_len;
	uint32_t t1, t2, t4;
	struct buf scratch;
	/* Ghosts are many, equal and long-lived next to everything else: a free list of
	 * them carved from blocks keeps them out of malloc's way. */
	struct txn_hdr *ghost_free;
	struct ghost_block *ghost_blocks;
	struct sip_txn_stats stats;
};

#define GHOSTS_PER_BLOCK 1024
struct ghost_block {
	struct ghost_block *next;
	struct txn_hdr g[GHOSTS_PER_BLOCK];
};

static void arm(struct sip_txn_layer *l);
static void on_timer(uv_timer_t *timer);

static void tq_push(struct sip_txn_layer *l, struct tq *q, struct tq_link *e)
{
	tq_unlink(e);
	e->due = uv_now(l->loop) + q->ival;
	e->prev = q->head.prev;
	e->next = &q->head;
	q->head.prev->next = e;
	q->head.prev = e;
	if (e->due < l->armed)
		arm(l);
}

static void arm(struct sip_txn_layer *l)
{
	uint64_t min = UINT64_MAX, now;
	struct tq_link *e;
	for (int i = 0; i < l->nrtx; i++)
		if ((e = tq_first(&l->rtx[i])) && e->due < min)
			min = e->due;
	struct tq *lq[] = {&l->q64, &l->qk, &l->qnow};
	for (size_t i = 0; i < 3; i++)
		if ((e = tq_first(lq[i])) && e->due < min)
			min = e->due;
	if (min == l->armed)
		return;
	l->armed = min;
	if (min == UINT64_MAX) {
		uv_timer_stop(&l->timer);
		return;
	}
	now = uv_now(l->loop);
	uv_timer_start(&l->timer, on_timer, min > now ? min - now : 0, 0);
}

/* --- counters ---------------------------------------------------------------------- */

static const char *const sip_txn__method_names[SIP_TXN_M__N] = {
#define SIP_TXN__N(m) #m,
    SIP_TXN_METHOD_MAP(SIP_TXN__N)
#undef SIP_TXN__N
};

const char *sip_txn_method_name(int m)
{
	return m >= 0 && m < SIP_TXN_M__N ? sip_txn__method_names[m] : NULL;
}

enum sip_txn_method sip_txn_method_of(const char *method)
{
	if (!method)
		return SIP_TXN_M_OTHER;
	/* One candidate per (length, first letter): at most one strcmp. */
	enum sip_txn_method c = SIP_TXN_M_OTHER;
	switch (strlen(method)) {
	case 3:
		c = SIP_TXN_M_BYE;
		break;
	case 4:
		c = method[0] == 'I' ? SIP_TXN_M_INFO : SIP_TXN_M_OTHER;
		break;
	case 5:
		c = method[0] == 'R'   ? SIP_TXN_M_REFER
		    : method[0] == 'P' ? SIP_TXN_M_PRACK
				       : SIP_TXN_M_OTHER;
		break;
	case 6:
		c = method[0] == 'N'   ? SIP_TXN_M_NOTIFY
		    : method[0] == 'C' ? SIP_TXN_M_CANCEL
		    : method[0] == 'U' ? SIP_TXN_M_UPDATE
				       : SIP_TXN_M_OTHER;
		break;
	case 7:
		c = method[0] == 'M'   ? SIP_TXN_M_MESSAGE
		    : method[0] == 'P' ? SIP_TXN_M_PUBLISH
		    : method[0] == 'O' ? SIP_TXN_M_OPTIONS
				       : SIP_TXN_M_OTHER;
		break;
	case 8:
		c = SIP_TXN_M_REGISTER;
		break;
	case 9:
		c = SIP_TXN_M_SUBSCRIBE;
		break;
	default:
		break;
	}
	return c != SIP_TXN_M_OTHER && strcmp(method, sip_txn__method_names[c]) == 0
		   ? c
		   : SIP_TXN_M_OTHER;
}

static unsigned status_class(int status)
{
	return status < 200    ? 0
	       : status >= 600 ? SIP_TXN_CLASSES - 1
			       : (unsigned)(status / 100 - 2);
}

/* A client transaction's final outcome: counts and duration, before it is freed. */
static void count_client_final(struct sip_txn_layer *l, const struct sip_ctxn *t, int status)
{
	static const uint64_t bounds[SIP_TXN_DURATION_N] = SIP_TXN_DURATION_BOUNDS_US;
	uint64_t us = (uv_hrtime() - t->start_ns) / 1000u;
	unsigned b = 0;
	while (b < SIP_TXN_DURATION_N && us > bounds[b])
		b++;
	l->stats.client_final[t->mi][status_class(status)]++;
	l->stats.client_duration[t->mi][b]++;
	l->stats.client_duration_sum_us[t->mi] += us;
}

/* --- layer ------------------------------------------------------------------------- */

static bool valid_sent_by(const char *s)
{
	if (!s || !*s || strlen(s) > 200)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || *s == ';' || *s == ',' || *s == 0x7f)
			return false;
	return true;
}

struct sip_txn_layer *sip_txn_layer_new(uv_loop_t *loop, const struct sip_txn_cfg *cfg,
					const struct sip_txn_io *io, void *io_arg)
{
	struct sip_txn_layer *l = calloc(1, sizeof *l);
	char inst[9];
	if (!l)
		return NULL;
	sip_msg_global_init();
	l->loop = loop;
	l->io = *io;
	l->io_arg = io_arg;
	l->t1 = cfg->t1_ms ? cfg->t1_ms : 500;
	l->t2 = cfg->t2_ms ? cfg->t2_ms : 4000;
	l->t4 = cfg->t4_ms ? cfg->t4_ms : 5000;
	if (l->t2 < l->t1)
		l->t2 = l->t1;
	for (int i = 0; i < SIP_PROTO__N; i++) {
		if (!cfg->sent_by[i])
			continue;
		if (!valid_sent_by(cfg->sent_by[i]) || !(l->sent_by[i] = strdup(cfg->sent_by[i])))
			goto fail;
	}
	/* E doubles from T1 and stops at T2: one list per distinct interval */
	uint64_t iv = l->t1;
	for (l->nrtx = 0; l->nrtx < RTX_LISTS - 1 && iv < l->t2; l->nrtx++, iv *= 2)
		tq_init(&l->rtx[l->nrtx], iv);
	tq_init(&l->rtx[l->nrtx++], l->t2);
	tq_init(&l->q64, 64ULL * l->t1);
	tq_init(&l->qk, l->t4);
	tq_init(&l->qnow, 0);
	if (cfg->instance) {
		size_t n = 0;
		for (const char *p = cfg->instance; *p && n < 8; p++)
			if ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
			    (*p >= 'A' && *p <= 'Z'))
				inst[n++] = *p;
		inst[n] = '\0';
	} else {
		sip_random_token(inst, sizeof inst);
	}
	l->marker_len = (size_t)snprintf(l->marker, sizeof l->marker, "z9hG4bK-pl%s.", inst);
	buf_init(&l->scratch, 0);
	l->armed = UINT64_MAX;
	if (uv_timer_init(loop, &l->timer) != 0)
		goto fail;
	l->timer.data = l;
	return l;
fail:
	for (int i = 0; i < SIP_PROTO__N; i++)
		free(l->sent_by[i]);
	free(l);
	return NULL;
}

static void ctxn_free(struct sip_ctxn *t);
static void stxn_free(struct sip_stxn *st);

static void ghost_free(struct sip_txn_layer *l, struct txn_hdr *g);

static void drop_client(struct sip_map_node *n, void *arg)
{
	struct txn_hdr *h = sip_map_entry(n, struct txn_hdr, node);
	if (h->b.kind == TK_GHOST)
		ghost_free(arg, h);
	else
		ctxn_free((struct sip_ctxn *)h);
}

static void drop_server(struct sip_map_node *n, void *arg)
{
	(void)arg;
	stxn_free(sip_map_entry(n, struct sip_stxn, node));
}

static void on_layer_closed(uv_handle_t *h)
{
	struct sip_txn_layer *l = h->data;
	while (l->ghost_blocks) {
		struct ghost_block *b = l->ghost_blocks;
		l->ghost_blocks = b->next;
		free(b);
	}
	for (int i = 0; i < SIP_PROTO__N; i++)
		free(l->sent_by[i]);
	free(l);
}

void sip_txn_layer_free(struct sip_txn_layer *l)
{
	if (!l)
		return;
	sip_map_foreach(&l->cmap, drop_client, l);
	sip_map_foreach(&l->smap, drop_server, NULL);
	sip_map_deinit(&l->cmap);
	sip_map_deinit(&l->smap);
	buf_deinit(&l->scratch);
	uv_timer_stop(&l->timer);
	uv_close((uv_handle_t *)&l->timer, on_layer_closed);
}

const struct sip_txn_stats *sip_txn_stats(const struct sip_txn_layer *l)
{
	return &l->stats;
}

bool sip_txn_is_own_branch(const struct sip_txn_layer *l, const char *branch)
{
	return branch && strncmp(branch, l->marker, l->marker_len) == 0;
}

/* Serialises m into the scratch buffer; returns its length or a negative error. */
static int serialise(struct sip_txn_layer *l, struct sip_msg *m)
{
	buf_consume(&l->scratch, buf_len(&l->scratch));
	int r = sip_msg_serialise(m, &l->scratch);
	return r ? r : (int)buf_len(&l->scratch);
}

/* --- client ------------------------------------------------------------------------ */

static void active_unlink(struct sip_ctxn *t)
{
	struct sip_txn_layer *l = t->l;
	if (!t->aprev && l->active != t)
		return;
	if (t->aprev)
		t->aprev->anext = t->anext;
	else
		l->active = t->anext;
	if (t->anext)
		t->anext->aprev = t->aprev;
	t->anext = t->aprev = NULL;
	l->stats.client_active--;
}

static void ctxn_free(struct sip_ctxn *t)
{
	struct sip_txn_layer *l = t->l;
	tq_unlink(&t->h.b.rtx);
	tq_unlink(&t->h.b.life);
	active_unlink(t);
	sip_map_remove(&l->cmap, &t->h.node);
	l->stats.client_total--;
	free(t->wire);
	free(t);
}

static struct txn_hdr *ghost_alloc(struct sip_txn_layer *l)
{
	if (!l->ghost_free) {
		struct ghost_block *b = malloc(sizeof *b);
		if (!b)
			return NULL;
		b->next = l->ghost_blocks;
		l->ghost_blocks = b;
		for (int i = 0; i < GHOSTS_PER_BLOCK; i++) {
			b->g[i].node.next = (struct sip_map_node *)l->ghost_free;
			l->ghost_free = &b->g[i];
		}
	}
	struct txn_hdr *g = l->ghost_free;
	l->ghost_free = (struct txn_hdr *)g->node.next;
	return g;
}

static void ghost_free(struct sip_txn_layer *l, struct txn_hdr *g)
{
	tq_unlink(&g->b.life);
	sip_map_remove(&l->cmap, &g->node);
	l->stats.client_total--;
	g->node.next = (struct sip_map_node *)l->ghost_free;
	l->ghost_free = g;
}

/* Delivers the final response. The transaction is gone before the callback runs, so
 * nothing the TU does there can reach it; on UDP a ghost absorbs retransmitted finals
 * for Timer K. */
static void ctxn_deliver(struct sip_ctxn *t, struct sip_msg *resp, bool linger)
{
	struct sip_txn_layer *l = t->l;
	sip_ctxn_cb cb = t->cb;
	void *arg = t->arg;
	struct txn_hdr *g = NULL;

	if (linger && (g = ghost_alloc(l)) != NULL) {
		memset(&g->b, 0, sizeof g->b);
		g->b.kind = TK_GHOST;
		g->b.state = CS_COMPLETED;
		memcpy(g->method, t->h.method, sizeof g->method);
		memcpy(g->branch, t->h.branch, sizeof g->branch);
	}
	ctxn_free(t);
	if (g) {
		sip_map_insert(&l->cmap, &g->node, g->branch, strlen(g->branch));
		l->stats.client_total++;
		tq_push(l, &l->qk, &g->b.life);
	}
	if (cb)
		cb(arg, resp);
}

/* Ends a transaction with a response we make up (RFC 3261 §8.1.3.1 and §8.1.3.5). */
static void ctxn_synthesise(struct sip_ctxn *t, int status)
{
	struct sip_msg *resp = NULL;
	count_client_final(t->l, t, status);
	if (t->cb && t->req) {
		resp = sip_msg_new_response(t->req, status, NULL, NULL);
		if (!resp)
			abort();
		sip_msg_set_local(resp);
	}
	ctxn_deliver(t, resp, false);
	sip_msg_free(resp);
}

static void ctxn_on_e(struct sip_ctxn *t)
{
	struct sip_txn_layer *l = t->l;
	uint64_t flow = 0;
	if (t->h.b.state == CS_PROCEEDING)
		t->rtx_idx = (uint8_t)(l->nrtx - 1);
	else if (t->rtx_idx + 1 < l->nrtx)
		t->rtx_idx++;
	l->stats.retransmits++;
	l->io.send(l->io_arg, &t->hop, t->wire, t->wire_len, &flow);
	tq_push(l, &l->rtx[t->rtx_idx], &t->h.b.rtx);
}

static void ctxn_on_life(struct sip_ctxn *t)
{
	struct sip_txn_layer *l = t->l;
	switch ((enum ctxn_state)t->h.b.state) {
	case CS_TRYING:
	case CS_PROCEEDING:
		l->stats.timeouts++;
		log_info(0, "sip_txn_timeout", "branch=%s method=%s", t->h.branch, t->h.method);
		ctxn_synthesise(t, 408);
		break;
	case CS_FAILING:
		l->stats.transport_errors++;
		ctxn_synthesise(t, t->fail_status);
		break;
	case CS_COMPLETED: /* completed transactions live on as ghosts */
		break;
	}
}

int sip_txn_request(struct sip_txn_layer *l, struct sip_msg *req, const struct sip_hop *hop,
		    sip_ctxn_cb cb, void *arg, struct sip_ctxn **out)
{
	struct sip_ctxn *t;
	const char *method = sip_msg_method(req), *top;
	int n, r;

	if (out)
		*out = NULL;
	if (!method || strlen(method) >= sizeof t->h.method || strcmp(method, "INVITE") == 0 ||
	    strcmp(method, "ACK") == 0 || (unsigned)hop->proto >= SIP_PROTO__N ||
	    !l->sent_by[hop->proto])
		return PE_INVAL;
	t = calloc(1, sizeof *t);
	if (!t)
		return PE_NOMEM;
	t->h.b.kind = TK_CLIENT;
	t->l = l;
	t->req = req;
	t->cb = cb;
	t->arg = arg;
	t->hop = *hop;
	t->reliable = sip_proto_reliable(hop->proto);
	t->mi = (uint8_t)sip_txn_method_of(method);
	memcpy(t->h.method, method, strlen(method) + 1);
	memcpy(t->h.branch, l->marker, l->marker_len);
	sip_random_token(t->h.branch + l->marker_len, 21);

	top = sip_msg_via_branch(req, 0);
	if (top && sip_txn_is_own_branch(l, top))
		sip_msg_pop_via(req);
	r = sip_msg_push_via(req, hop->proto, l->sent_by[hop->proto], t->h.branch,
			     hop->proto == SIP_PROTO_UDP);
	if (r == 0 && sip_msg_max_forwards(req) < 0)
		r = sip_msg_set_max_forwards(req, 70);
	if (r) {
		free(t);
		return r;
	}
	n = serialise(l, req);
	if (n < 0) {
		sip_msg_pop_via(req);
		free(t);
		return n;
	}
	if (!t->reliable) {
		t->wire = malloc((size_t)n);
		if (!t->wire) {
			sip_msg_pop_via(req);
			free(t);
			return PE_NOMEM;
		}
		memcpy(t->wire, buf_head(&l->scratch), (size_t)n);
		t->wire_len = (size_t)n;
	}
	sip_map_insert(&l->cmap, &t->h.node, t->h.branch, strlen(t->h.branch));
	l->stats.client_total++;
	l->stats.client_active++;
	t->anext = l->active;
	if (l->active)
		l->active->aprev = t;
	l->active = t;

	t->start_ns = uv_hrtime();
	r = l->io.send(l->io_arg, hop, buf_head(&l->scratch), (size_t)n, &t->flow);
	if (r) {
		char hs[96];
		log_info(0, "sip_send_failed", "hop=\"%s\" method=%s err=\"%s\"",
			 sip_hop_str(hop, hs, sizeof hs), t->h.method, pe_strerror(r));
		t->h.b.state = CS_FAILING;
		t->fail_status = 503;
		tq_push(l, &l->qnow, &t->h.b.life);
	} else {
		t->h.b.state = CS_TRYING;
		tq_push(l, &l->q64, &t->h.b.life);
		if (!t->reliable) {
			t->rtx_idx = 0;
			tq_push(l, &l->rtx[0], &t->h.b.rtx);
		}
	}
	if (out)
		*out = t;
	return 0;
}

void sip_ctxn_abandon(struct sip_ctxn *t)
{
	if (t)
		ctxn_free(t);
}

void sip_txn_flow_failed(struct sip_txn_layer *l, uint64_t flow)
{
	if (!flow)
		return;
	for (struct sip_ctxn *t = l->active; t; t = t->anext) {
		if (t->flow != flow || !t->reliable || t->h.b.state == CS_FAILING)
			continue;
		t->h.b.state = CS_FAILING;
		t->fail_status = 503;
		tq_unlink(&t->h.b.rtx);
		tq_push(l, &l->qnow, &t->h.b.life);
	}
}

static void client_response(struct sip_txn_layer *l, struct sip_msg *m)
{
	const char *branch = sip_msg_via_branch(m, 0), *cm = NULL;
	struct sip_map_node *node;
	struct sip_ctxn *t;
	int status = sip_msg_status(m);

	node = branch ? sip_map_find(&l->cmap, branch, strlen(branch)) : NULL;
	sip_msg_cseq(m, &cm);
	if (!node) {
		l->stats.stray_responses++;
		log_debug(0, "sip_stray_response", "status=%d", status);
		goto out;
	}
	struct txn_hdr *h = sip_map_entry(node, struct txn_hdr, node);
	if (!cm || strcmp(cm, h->method) != 0) {
		l->stats.stray_responses++;
		goto out;
	}
	if (h->b.kind == TK_GHOST)
		goto out; /* a retransmitted final during Timer K */
	t = (struct sip_ctxn *)h;
	switch ((enum ctxn_state)t->h.b.state) {
	case CS_TRYING:
	case CS_PROCEEDING:
		if (status < 200) {
			t->h.b.state = CS_PROCEEDING;
			break;
		}
		count_client_final(l, t, status);
		ctxn_deliver(t, m, !t->reliable);
		break;
	case CS_COMPLETED:
	case CS_FAILING:
		break; /* a retransmission, or too late */
	}
out:
	sip_msg_free(m);
}

/* --- server ------------------------------------------------------------------------ */

static void stxn_free(struct sip_stxn *st)
{
	struct sip_txn_layer *l = st->l;
	tq_unlink(&st->b.rtx);
	tq_unlink(&st->b.life);
	sip_map_remove(&l->smap, &st->node);
	l->stats.server_total--;
	sip_msg_free(st->req);
	free(st->last);
	free(st);
}

struct sip_msg *sip_stxn_request(struct sip_stxn *st)
{
	return st->req;
}

const struct sip_hop *sip_stxn_source(const struct sip_stxn *st)
{
	return &st->src;
}

const char *sip_stxn_local_tag(const struct sip_stxn *st)
{
	return st->tag;
}

struct sip_msg *sip_stxn_response(struct sip_stxn *st, int status, const char *reason)
{
	return sip_msg_new_response(st->req, status, reason, st->tag);
}

static int send_scratch(struct sip_txn_layer *l, const struct sip_hop *hop, size_t n,
			uint8_t **keep, size_t *keep_len);

static int send_copy(struct sip_txn_layer *l, const struct sip_hop *hop, struct sip_msg *m,
		     uint8_t **keep, size_t *keep_len)
{
	int n = serialise(l, m);
	if (n < 0)
		return n;
	return send_scratch(l, hop, (size_t)n, keep, keep_len);
}

/* Sends the n bytes of a response in the scratch buffer, keeping a copy on UDP for
 * retransmitted requests. */
static int send_scratch(struct sip_txn_layer *l, const struct sip_hop *hop, size_t n,
			uint8_t **keep, size_t *keep_len)
{
	uint64_t flow = 0;
	if (keep) {
		uint8_t *c = malloc(n);
		if (c) {
			memcpy(c, buf_head(&l->scratch), n);
			free(*keep);
			*keep = c;
			*keep_len = n;
		}
	}
	return l->io.send(l->io_arg, hop, buf_head(&l->scratch), n, &flow);
}

static int stxn_sent(struct sip_stxn *st, int status, int r);

int sip_stxn_respond(struct sip_stxn *st, struct sip_msg *resp)
{
	struct sip_txn_layer *l = st->l;
	int status = sip_msg_status(resp), r;

	if (st->final_sent || status < 100) {
		sip_msg_free(resp);
		return PE_STATE;
	}
	if (status > 100 && !sip_msg_to_tag(resp))
		sip_msg_set_to_tag(resp, st->tag);
	r = send_copy(l, &st->dest, resp, st->reliable ? NULL : &st->last, &st->last_len);
	sip_msg_free(resp);
	return stxn_sent(st, status, r);
}

/* After a response went out (r: how the send went): provisional or final bookkeeping. */
static int stxn_sent(struct sip_stxn *st, int status, int r)
{
	struct sip_txn_layer *l = st->l;
	if (r) {
		char hs[96];
		log_info(0, "sip_respond_failed", "hop=\"%s\" status=%d err=\"%s\"",
			 sip_hop_str(&st->dest, hs, sizeof hs), status, pe_strerror(r));
	}
	if (status < 200) {
		st->b.state = SS_PROCEEDING;
		return r;
	}
	st->final_sent = true;
	st->b.state = SS_COMPLETED;
	l->stats.server_final[st->mi][status_class(status)]++;
	if (st->reliable) {
		stxn_free(st); /* Timer J is zero on reliable transports */
	} else {
		/* Timer J keeps only the key and the response: 64*T1 of parsed requests
		 * would be the biggest memory cost under UDP load */
		sip_msg_free(st->req);
		st->req = NULL;
		tq_push(l, &l->q64, &st->b.life);
	}
	return r;
}

int sip_stxn_reply(struct sip_stxn *st, int status, const char *reason)
{
	struct sip_txn_layer *l = st->l;
	if (st->final_sent || status < 100)
		return PE_STATE;
	/* the common case: the bytes straight from the request's header text */
	buf_consume(&l->scratch, buf_len(&l->scratch));
	if (sip_msg_response_wire(st->req, status, reason, st->tag, &l->scratch) == 0) {
		int r = send_scratch(l, &st->dest, buf_len(&l->scratch),
				     st->reliable ? NULL : &st->last, &st->last_len);
		return stxn_sent(st, status, r);
	}
	struct sip_msg *resp = sip_stxn_response(st, status, reason);
	if (!resp)
		abort();
	return sip_stxn_respond(st, resp);
}

/* Response destination, RFC 3261 §18.2.2 with RFC 3581: the source address; on UDP
 * the Via port unless rport was asked for; on a stream the same flow, or failing that
 * a new connection to the source address at the Via port. */
static void response_hop(struct sip_msg *req, const struct sip_hop *src, struct sip_hop *dst)
{
	int vport = 0, rport = -1;
	*dst = *src;
	sip_msg_via_top(req, NULL, NULL, &vport, NULL, &rport);
	if (src->proto == SIP_PROTO_UDP) {
		if (rport < 0)
			sip_hop_set_port(dst, vport ? vport : 5060);
	} else {
		/* dst->flow is tried first; the address is for when that flow has closed */
		sip_hop_set_port(dst, vport ? vport : (src->proto == SIP_PROTO_TLS ? 5061 : 5060));
	}
}

static void respond_stateless(struct sip_txn_layer *l, struct sip_msg *req,
			      const struct sip_hop *src, int status, const char *reason)
{
	struct sip_hop dst;
	char tag[17];
	sip_random_token(tag, sizeof tag);
	struct sip_msg *resp = sip_msg_new_response(req, status, reason, tag);
	if (!resp)
		abort();
	response_hop(req, src, &dst);
	send_copy(l, &dst, resp, NULL, NULL);
	sip_msg_free(resp);
}

/* Builds the §17.2.3 key into out: branch, sent-by and method (ACK matches INVITE);
 * for a pre-RFC 3261 branch the RFC 2543 fields instead. Returns the length or 0. */
static size_t server_key(struct sip_msg *m, char *out, size_t cap)
{
	const char *method = sip_msg_method(m), *branch = sip_msg_via_branch(m, 0), *host = NULL;
	int port = 0, n;
	enum sip_proto proto = SIP_PROTO_UDP;
	if (strcmp(method, "ACK") == 0)
		method = "INVITE";
	sip_msg_via_top(m, &proto, &host, &port, NULL, NULL);
	if (branch && strncmp(branch, "z9hG4bK", 7) == 0) {
		/* every request takes this path: no printf */
		size_t bl = strlen(branch), hl = host ? strlen(host) : 0, ml = strlen(method), o;
		char pb[8];
		int pl = 0;
		unsigned pv = (unsigned)port;
		do
			pb[sizeof pb - 1 - pl++] = (char)('0' + pv % 10);
		while ((pv /= 10) && pl < (int)sizeof pb);
		if (bl + hl + (size_t)pl + ml + 3 >= cap)
			return 0;
		memcpy(out, branch, bl);
		o = bl;
		out[o++] = '\n';
		if (hl)
			memcpy(out + o, host, hl);
		o += hl;
		out[o++] = ':';
		memcpy(out + o, pb + sizeof pb - pl, (size_t)pl);
		o += (size_t)pl;
		out[o++] = '\n';
		memcpy(out + o, method, ml + 1);
		return o + ml;
	}
	n = snprintf(out, cap, "2543\n%s\n%s\n%u\n%s:%d\n%s\n%s", sip_msg_call_id(m),
		     sip_msg_from_tag(m) ? sip_msg_from_tag(m) : "", sip_msg_cseq(m, NULL),
		     host ? host : "", port, method, branch ? branch : "");
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static bool looped(struct sip_txn_layer *l, struct sip_msg *m)
{
	int n = sip_msg_via_count(m);
	for (int i = 0; i < n; i++)
		if (sip_txn_is_own_branch(l, sip_msg_via_branch(m, i)))
			return true;
	return false;
}

static struct sip_stxn *stxn_new(struct sip_txn_layer *l, struct sip_msg *m,
				 const struct sip_hop *src, const char *key, size_t klen)
{
	struct sip_stxn *st = calloc(1, sizeof *st + klen + 1);
	const char *tt;
	if (!st)
		return NULL;
	st->b.kind = TK_SERVER;
	st->b.state = SS_TRYING;
	st->mi = (uint8_t)sip_txn_method_of(sip_msg_method(m));
	st->l = l;
	st->req = m;
	st->src = *src;
	st->reliable = sip_proto_reliable(src->proto);
	response_hop(m, src, &st->dest);
	tt = sip_msg_to_tag(m);
	if (tt && strlen(tt) < sizeof st->tag)
		memcpy(st->tag, tt, strlen(tt) + 1);
	else
		sip_random_token(st->tag, 17);
	memcpy(st->key, key, klen);
	st->klen = klen;
	sip_map_insert(&l->smap, &st->node, st->key, klen);
	l->stats.server_total++;
	return st;
}

/* sip_hop_ip for the source of every request: an IPv4 address is written here, the same
 * dotted quad inet_ntop gives, without its sprintf. */
static void source_ip(const struct sip_hop *src, char *ip, size_t cap, int *port)
{
	if (src->addr.ss_family == AF_INET && cap >= INET_ADDRSTRLEN) {
		const uint8_t *a =
		    (const uint8_t *)&((const struct sockaddr_in *)&src->addr)->sin_addr;
		char *o = ip;
		for (int i = 0; i < 4; i++) {
			unsigned v = a[i];
			if (v >= 100)
				*o++ = (char)('0' + v / 100);
			if (v >= 10)
				*o++ = (char)('0' + v / 10 % 10);
			*o++ = (char)('0' + v % 10);
			*o++ = i < 3 ? '.' : '\0';
		}
		*port = sip_hop_port(src);
		return;
	}
	sip_hop_ip(src, ip, cap, port);
}

static int server_request(struct sip_txn_layer *l, struct sip_msg *m, const struct sip_hop *src)
{
	const char *why = NULL, *method = sip_msg_method(m);
	char key[1024], ip[64], esc[160];
	size_t klen;
	int port;
	struct sip_map_node *node;
	struct sip_stxn *st;

	if (sip_msg_via_count(m) == 0) {
		sip_msg_free(m);
		return PE_PROTO;
	}
	source_ip(src, ip, sizeof ip, &port);
	sip_msg_via_set_received(m, ip, port);
	bool is_ack = strcmp(method, "ACK") == 0;
	if (sip_msg_validate(m, &why) != 0) {
		log_escape(esc, sizeof esc, why, strlen(why));
		log_warn(0, "sip_bad_request", "from=%s:%d method=%s why=\"%s\"", ip, port, method,
			 esc);
		if (!is_ack) {
			char reason[96];
			l->stats.bad_requests++;
			snprintf(reason, sizeof reason, "Bad Request (%s)", why);
			respond_stateless(l, m, src, 400, reason);
		}
		sip_msg_free(m);
		return 0;
	}
	klen = server_key(m, key, sizeof key);
	if (!klen) {
		if (!is_ack) {
			l->stats.bad_requests++;
			respond_stateless(l, m, src, 400, "Bad Request (header too long)");
		}
		sip_msg_free(m);
		return 0;
	}
	node = sip_map_find(&l->smap, key, klen);
	if (node) {
		st = sip_map_entry(node, struct sip_stxn, node);
		if (!is_ack) {
			if (st->last) {
				uint64_t flow = 0;
				l->stats.resp_retransmits++;
				l->io.send(l->io_arg, &st->dest, st->last, st->last_len, &flow);
			} else {
				l->stats.absorbed++;
			}
		}
		sip_msg_free(m);
		return 0;
	}
	if (is_ack) { /* an ACK for nothing we know: never answered */
		sip_msg_free(m);
		return 0;
	}
	st = stxn_new(l, m, src, key, klen);
	if (!st) {
		sip_msg_free(m);
		return PE_NOMEM;
	}
	if (looped(l, m)) {
		l->stats.loops++;
		log_warn(0, "sip_loop", "from=%s:%d method=%s call_id_len=%zu", ip, port, method,
			 strlen(sip_msg_call_id(m)));
		sip_stxn_reply(st, 482, NULL);
		return 0;
	}
	if (strcmp(method, "CANCEL") == 0) {
		/* only INVITE can be cancelled; we hold no INVITE that is still pending */
		char ikey[1024];
		memcpy(ikey, key, klen);
		size_t il = klen - strlen("CANCEL");
		bool known = il + 6 < sizeof ikey && (memcpy(ikey + il, "INVITE", 6),
						      sip_map_find(&l->smap, ikey, il + 6) != NULL);
		sip_stxn_reply(st, known ? 200 : 481, NULL);
		return 0;
	}
	l->io.on_request(l->io_arg, st, m);
	return 0;
}

int sip_txn_input(struct sip_txn_layer *l, struct sip_msg *m, const struct sip_hop *src)
{
	if (sip_msg_is_request(m))
		return server_request(l, m, src);
	const char *why;
	if (sip_msg_validate(m, &why) != 0) {
		l->stats.stray_responses++;
		log_debug(0, "sip_bad_response", "why=\"%s\"", why);
		sip_msg_free(m);
		return 0;
	}
	client_response(l, m);
	return 0;
}

/* --- timer ------------------------------------------------------------------------- */

static void fire_life(struct sip_txn_layer *l, struct tq_link *e)
{
	struct txn_base *b = (struct txn_base *)((char *)e - offsetof(struct txn_base, life));
	if (b->kind == TK_CLIENT) {
		ctxn_on_life((struct sip_ctxn *)b);
	} else if (b->kind == TK_GHOST) {
		ghost_free(l, (struct txn_hdr *)b); /* Timer K */
	} else {
		stxn_free((struct sip_stxn *)b); /* Timer J */
	}
}

static void on_timer(uv_timer_t *timer)
{
	struct sip_txn_layer *l = timer->data;
	uint64_t now = uv_now(l->loop);
	struct tq_link *e;

	l->armed = UINT64_MAX;
	for (int i = 0; i < l->nrtx; i++) {
		while ((e = tq_first(&l->rtx[i])) && e->due <= now) {
			tq_unlink(e);
			ctxn_on_e((struct sip_ctxn *)e); /* rtx is the first member */
		}
	}
	struct tq *lq[] = {&l->qnow, &l->q64, &l->qk};
	for (size_t i = 0; i < 3; i++) {
		while ((e = tq_first(lq[i])) && e->due <= now) {
			tq_unlink(e);
			fire_life(l, e);
		}
	}
	l->armed = 0; /* force a recomputation */
	arm(l);
}
