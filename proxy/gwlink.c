/* Gateways dial the edge; the edge never opens a connection inward. Several gateways may be
 * connected; the one with the lowest priority is active and drains the shared outbox. When it
 * goes away the next one gets a fresh Hello carrying first_unacked and every frame the old
 * one had not acknowledged. */
#include "gwlink.h"

#include "err.h"
#include "log.h"
#include "net.h"
#include "tls.h"

#include <stdlib.h>
#include <string.h>

struct gwlink {
	uv_loop_t *loop;
	struct gwlink_opts opts;
	struct link_cfg cfg;
	uint64_t epoch;
	struct tls_ctx *tls;
	struct net_listener *listener;
	struct link_out out;
	struct link_peer **peers;
	size_t npeers;
	struct link_session *active;
	uint64_t policy_generation;
	bool stopping;
	/* test source */
	uint64_t src_next;
	char *src_body;
	/* outcomes of partner-bound stanzas waiting to be queued on the link */
	struct reply *replies;
	size_t nreplies, capreplies;
	uv_check_t flush;
	bool flush_on;
};

/* One Delivered ref or one Bounce, and the frame it settles. */
struct reply {
	struct link_peer *p;
	uint64_t seq;
	uint64_t ref;
	char *type, *cond, *text; /* NULL for Delivered */
};

#define MAX_REFS_PER_FRAME 1024

static void choose_active(struct gwlink *g)
{
	struct link_session *best = NULL;
	uint32_t best_prio = 0;
	for (size_t i = 0; i < g->npeers; i++) {
		struct link_session *s = g->peers[i]->sess;
		if (!s || !link_session_up(s))
			continue;
		if (!best || g->peers[i]->priority < best_prio) {
			best = s;
			best_prio = g->peers[i]->priority;
		}
	}
	/* keep the current one on a tie: failover only when it is gone or a better one comes */
	if (g->active && link_session_up(g->active) && best &&
	    link_session_peer(g->active)->priority <= best_prio)
		best = g->active;
	if (best == g->active)
		return;
	g->active = best;
	if (best)
		log_info(link_session_id(best), "gateway_active", "node=%s priority=%u unacked=%u",
			 link_session_peer(best)->node_id, link_session_peer(best)->priority,
			 outbox_depth(&g->out.ob));
	else
		log_warn(0, "gateway_none", "no gateway connected; holding %u unacked frames",
			 outbox_depth(&g->out.ob));
	link_out_attach(&g->out, best);
}

static void source_pump(struct gwlink *g)
{
	if (!g->opts.source_frames || g->stopping)
		return;
	Parley__Link__Frame f = PARLEY__LINK__FRAME__INIT;
	Parley__Link__Stanza st = PARLEY__LINK__STANZA__INIT;
	f.body_case = PARLEY__LINK__FRAME__BODY_STANZA;
	f.stanza = &st;
	st.kind = PARLEY__LINK__STANZA_KIND__KIND_MESSAGE;
	st.from = "load@partner.test/gen";
	st.to = "sink@corp.test";
	st.type = "chat";
	st.body = g->src_body;
	while (g->src_next <= g->opts.source_frames) {
		if (link_out_full(&g->out)) {
			g->out.was_full = true;
			return;
		}
		st.ref = g->src_next;
		int r = link_out_send(&g->out, &f);
		if (r) {
			log_error(0, "source_error", "err=\"%s\"", pe_strerror(r));
			return;
		}
		g->src_next++;
	}
	log_info(0, "source_done", "frames=%llu", (unsigned long long)g->opts.source_frames);
	g->opts.source_frames = 0;
}

static void flush_replies(struct gwlink *g);
static void free_reply(struct reply *r);

static void on_room(struct link_out *o, void *arg)
{
	struct gwlink *g = arg;
	(void)o;
	flush_replies(g);
	source_pump(g);
	if (g->opts.on_room)
		g->opts.on_room(g->opts.hook_arg);
}

static void on_acked(struct link_out *o, void *arg)
{
	struct gwlink *g = arg;
	(void)o;
	if (g->opts.on_acked)
		g->opts.on_acked(g->opts.hook_arg);
}

static struct link_peer *on_hello(struct link_session *s, const Parley__Link__Hello *h,
				  void *arg)
{
	struct gwlink *g = arg;
	(void)s;
	if (g->stopping)
		return NULL;
	for (size_t i = 0; i < g->npeers; i++)
		if (strcmp(g->peers[i]->node_id, h->node_id) == 0)
			return g->peers[i];
	struct link_peer *p = malloc(sizeof *p);
	struct link_peer **np = realloc(g->peers, (g->npeers + 1) * sizeof *np);
	if (!p || !np)
		abort();
	g->peers = np;
	/* the receive window must cover the gateway's send window */
	link_peer_init(p, h->node_id, h->has_window && h->window > g->cfg.window ? h->window
										    : g->cfg.window);
	p->out = &g->out;
	g->peers[g->npeers++] = p;
	return p;
}

static void on_up(struct link_session *s, void *arg)
{
	struct gwlink *g = arg;
	(void)s;
	choose_active(g);
	source_pump(g);
}

static void on_frame(struct link_session *s, uint64_t seq, const Parley__Link__Frame *f,
		     void *arg)
{
	struct gwlink *g = arg;
	struct link_peer *p = link_session_peer(s);
	switch (f->body_case) {
	case PARLEY__LINK__FRAME__BODY_POLICY:
		if (f->policy->generation > g->policy_generation) {
			g->policy_generation = f->policy->generation;
			log_info(link_session_id(s), "policy_update", "node=%s generation=%llu",
				 p->node_id, (unsigned long long)f->policy->generation);
			if (g->opts.on_policy)
				g->opts.on_policy(g->opts.hook_arg, f->policy);
		}
		break;
	case PARLEY__LINK__FRAME__BODY_STANZA:
		if (g->opts.on_stanza && !g->stopping) {
			/* settled by gwlink_delivered / gwlink_bounce */
			g->opts.on_stanza(g->opts.hook_arg, p, seq, f->stanza);
			return;
		}
		log_warn(link_session_id(s), "link_stanza_dropped",
			 "node=%s seq=%llu ref=%llu reason=\"no S2S side\"", p->node_id,
			 (unsigned long long)seq, (unsigned long long)f->stanza->ref);
		break;
	default:
		/* Delivered/Bounce are for gateways; an edge has nothing to do with them. */
		log_debug(link_session_id(s), "link_frame", "node=%s seq=%llu kind=%d", p->node_id,
			  (unsigned long long)seq, (int)f->body_case);
		break;
	}
	link_peer_processed(p, seq);
}

static void on_down(struct link_session *s, int reason, void *arg)
{
	struct gwlink *g = arg;
	(void)reason;
	if (g->active == s) {
		g->active = NULL;
		if (!g->stopping)
			choose_active(g);
	}
}

static const struct link_app gw_app = {
	.on_hello = on_hello,
	.on_up = on_up,
	.on_frame = on_frame,
	.on_down = on_down,
};

static void on_accept(void *arg, struct net_conn *c)
{
	struct gwlink *g = arg;
	if (g->stopping) {
		net_conn_abort(c, PE_CLOSED);
		return;
	}
	log_info(net_conn_id(c), "link_accept", "peer=%s", net_conn_peer(c));
	net_conn_set_nodelay(c, true);
	if (net_conn_start_tls(c, g->tls, true, NULL) != 0) {
		net_conn_abort(c, PE_TLS);
		return;
	}
	link_session_new(g->loop, c, &g->cfg, &gw_app, g, false, NULL, g->epoch);
}

int gwlink_start(uv_loop_t *loop, const struct gwlink_opts *o, struct gwlink **out)
{
	char err[512];
	struct gwlink *g = calloc(1, sizeof *g);
	if (!g)
		abort();
	g->loop = loop;
	g->opts = *o;
	g->epoch = link_new_epoch();
	link_cfg_from_conf(&g->cfg, o->conf, o->node_id, PARLEY__LINK__ROLE__ROLE_PROXY, 0);
	g->tls = link_tls_ctx_new(true, o->conf, err, sizeof err);
	if (!g->tls) {
		log_error(0, "link_tls", "err=\"%s\"", err);
		free(g);
		return PE_TLS;
	}
	if (link_out_init(&g->out, g->epoch, &g->cfg) != 0)
		abort();
	g->out.on_room = on_room;
	g->out.on_acked = on_acked;
	g->out.arg = g;
	g->src_next = 1;
	if (o->source_frames) {
		g->src_body = malloc(o->source_body_bytes + 1);
		memset(g->src_body, 'x', o->source_body_bytes);
		g->src_body[o->source_body_bytes] = 0;
	}
	int r = net_listen(loop, o->listen_host, o->listen_port, 128, on_accept, g, &g->listener);
	if (r) {
		log_error(0, "link_listen", "addr=%s port=%u err=\"%s\"", o->listen_host,
			  o->listen_port, pe_strerror(r));
		gwlink_free(g);
		return r;
	}
	uv_check_init(loop, &g->flush);
	g->flush.data = g;
	g->flush_on = true;
	log_info(0, "link_listen", "addr=%s port=%u node=%s epoch=%016llx", o->listen_host,
		 net_listener_port(g->listener), o->node_id, (unsigned long long)g->epoch);
	*out = g;
	return 0;
}

void gwlink_stop(struct gwlink *g)
{
	g->stopping = true;
	if (g->listener) {
		net_listener_close(g->listener);
		g->listener = NULL;
	}
	g->active = NULL;
	if (g->flush_on) {
		/* unsent replies leave their frames unsettled: the gateway sends them again */
		uv_close((uv_handle_t *)&g->flush, NULL);
		g->flush_on = false;
	}
	link_out_attach(&g->out, NULL);
	for (size_t i = 0; i < g->npeers; i++)
		if (g->peers[i]->sess)
			link_session_close(g->peers[i]->sess, "system-shutdown");
}

void gwlink_free(struct gwlink *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->npeers; i++) {
		link_peer_deinit(g->peers[i]);
		free(g->peers[i]);
	}
	free(g->peers);
	for (size_t i = 0; i < g->nreplies; i++)
		free_reply(&g->replies[i]);
	free(g->replies);
	link_out_deinit(&g->out);
	tls_ctx_free(g->tls);
	free(g->src_body);
	free(g);
}

int gwlink_reload_tls(struct gwlink *g, const struct link_conf *conf)
{
	char err[512];
	int r = link_tls_ctx_reload(g->tls, true, conf, err, sizeof err);
	if (r)
		log_error(0, "link_tls_reload", "err=\"%s\"", err);
	return r;
}

/* ---- outcomes of partner-bound stanzas ---- */

static void free_reply(struct reply *r)
{
	free(r->type);
	free(r->cond);
	free(r->text);
}

/* Queues as many replies as the link takes, in order: runs of Delivered become one frame.
 * A reply's frame is settled only once the reply itself is on the link. */
static void flush_replies(struct gwlink *g)
{
	size_t i = 0;
	while (i < g->nreplies && !g->stopping) {
		Parley__Link__Frame f = PARLEY__LINK__FRAME__INIT;
		size_t n = 1;
		int r;
		if (!g->replies[i].cond) {
			uint64_t refs[MAX_REFS_PER_FRAME];
			Parley__Link__Delivered d = PARLEY__LINK__DELIVERED__INIT;
			while (i + n < g->nreplies && n < MAX_REFS_PER_FRAME && !g->replies[i + n].cond)
				n++;
			for (size_t k = 0; k < n; k++)
				refs[k] = g->replies[i + k].ref;
			d.n_refs = n;
			d.refs = refs;
			f.body_case = PARLEY__LINK__FRAME__BODY_DELIVERED;
			f.delivered = &d;
			r = link_out_send(&g->out, &f);
		} else {
			Parley__Link__Bounce b = PARLEY__LINK__BOUNCE__INIT;
			Parley__Link__StanzaError e = PARLEY__LINK__STANZA_ERROR__INIT;
			b.ref = g->replies[i].ref;
			e.type = g->replies[i].type;
			e.condition = g->replies[i].cond;
			e.text = g->replies[i].text;
			b.error = &e;
			f.body_case = PARLEY__LINK__FRAME__BODY_BOUNCE;
			f.bounce = &b;
			r = link_out_send(&g->out, &f);
		}
		if (r == PE_FULL)
			break; /* on_room calls again */
		if (r)
			log_error(0, "link_reply_error", "ref=%llu err=\"%s\"",
				  (unsigned long long)g->replies[i].ref, pe_strerror(r));
		for (size_t k = 0; k < n; k++) {
			link_peer_processed(g->replies[i + k].p, g->replies[i + k].seq);
			free_reply(&g->replies[i + k]);
		}
		i += n;
	}
	if (i && i < g->nreplies)
		memmove(g->replies, g->replies + i, (g->nreplies - i) * sizeof *g->replies);
	g->nreplies -= i;
	if (!g->nreplies && g->flush_on)
		uv_check_stop(&g->flush);
}

static void on_flush(uv_check_t *h) { flush_replies(h->data); }

static void add_reply(struct gwlink *g, const struct reply *r)
{
	if (g->nreplies == g->capreplies) {
		g->capreplies = g->capreplies ? g->capreplies * 2 : 64;
		g->replies = realloc(g->replies, g->capreplies * sizeof *g->replies);
		if (!g->replies)
			abort();
	}
	g->replies[g->nreplies++] = *r;
	/* after this loop turn's I/O: everything settled in it travels in one frame */
	if (g->flush_on)
		uv_check_start(&g->flush, on_flush);
}

static char *dup_or_null(const char *s)
{
	char *d = s ? strdup(s) : NULL;
	if (s && !d)
		abort();
	return d;
}

void gwlink_delivered(struct gwlink *g, struct link_peer *p, uint64_t seq, uint64_t ref)
{
	struct reply r = {.p = p, .seq = seq, .ref = ref};
	add_reply(g, &r);
}

void gwlink_bounce(struct gwlink *g, struct link_peer *p, uint64_t seq, uint64_t ref,
		   const char *type, const char *cond, const char *text)
{
	struct reply r = {.p = p,
			  .seq = seq,
			  .ref = ref,
			  .type = dup_or_null(type ? type : "cancel"),
			  .cond = dup_or_null(cond ? cond : "undefined-condition"),
			  .text = dup_or_null(text)};
	add_reply(g, &r);
}

struct link_out *gwlink_out(struct gwlink *g) { return &g->out; }
uint64_t gwlink_policy_generation(const struct gwlink *g) { return g->policy_generation; }

void gwlink_foreach_peer(const struct gwlink *g, gwlink_peer_cb cb, void *arg)
{
	for (size_t i = 0; i < g->npeers; i++) {
		const struct link_peer *p = g->peers[i];
		bool up = p->sess && link_session_up(p->sess);
		struct gwlink_peer_info pi = {
		    .node_id = p->node_id,
		    .priority = p->priority,
		    .up = up,
		    .active = up && g->active == p->sess,
		    .session_id = p->sess ? link_session_id(p->sess) : 0,
		    .connects = p->connects,
		    .peer_outbox_depth = p->peer_outbox_depth,
		};
		cb(arg, &pi);
	}
}

uint32_t gwlink_outbox_depth(const struct gwlink *g) { return outbox_depth(&g->out.ob); }
