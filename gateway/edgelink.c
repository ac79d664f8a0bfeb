/* The internal network dials out to the DMZ, never the reverse (DESIGN.md). Each edge keeps
 * its own outbox, so frames for an edge that is down wait for it and are replayed when it
 * comes back; the edge drops what it already processed in the same epoch. */
#include "edgelink.h"

#include "err.h"
#include "log.h"
#include "net.h"
#include "tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

struct edge {
	struct edgelink *el;
	char host[256];
	uint16_t port;
	struct link_peer peer;
	struct link_out out;
	uv_timer_t retry;
	uint64_t backoff_ms;
	bool connecting; /* a net_conn exists for this edge */
};

struct edgelink {
	uv_loop_t *loop;
	struct edgelink_opts opts;
	struct link_cfg cfg;
	uint64_t epoch;
	struct tls_ctx *tls;
	struct edge *edges;
	size_t nedges;
	bool stopping;
	int open_timers;
};

static int parse_hostport(const char *s, char *host, size_t hostcap, uint16_t *port)
{
	const char *colon;
	const char *h = s;
	size_t hl;
	if (*s == '[') {
		const char *end = strchr(s, ']');
		if (!end || end[1] != ':')
			return PE_CONFIG;
		h = s + 1;
		hl = (size_t)(end - h);
		colon = end + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return PE_CONFIG;
		hl = (size_t)(colon - s);
	}
	char *endp;
	unsigned long p = strtoul(colon + 1, &endp, 10);
	if (*endp || p == 0 || p > 65535 || hl == 0 || hl >= hostcap)
		return PE_CONFIG;
	memcpy(host, h, hl);
	host[hl] = 0;
	*port = (uint16_t)p;
	return 0;
}

static void edge_connect(struct edge *e);

static void on_retry(uv_timer_t *t)
{
	struct edge *e = t->data;
	if (!e->el->stopping)
		edge_connect(e);
}

/* Full jitter between half and all of the current backoff, then double it. */
static void schedule_retry(struct edge *e)
{
	struct edgelink *el = e->el;
	if (el->stopping)
		return;
	uint32_t rnd;
	if (getrandom(&rnd, sizeof rnd, 0) != sizeof rnd)
		rnd = 0;
	uint64_t delay = e->backoff_ms / 2 + (e->backoff_ms / 2 ? rnd % (e->backoff_ms / 2 + 1) : 0);
	e->backoff_ms *= 2;
	if (e->backoff_ms > el->opts.reconnect_max_ms)
		e->backoff_ms = el->opts.reconnect_max_ms;
	log_debug(0, "link_retry", "edge=%s:%u in_ms=%llu", e->host, e->port,
		  (unsigned long long)delay);
	uv_timer_start(&e->retry, on_retry, delay, 0);
}

static void on_up(struct link_session *s, void *arg)
{
	(void)arg;
	struct edge *e = link_session_peer(s)->data;
	e->backoff_ms = e->el->opts.reconnect_min_ms;
	if (e->el->opts.on_edge_up)
		e->el->opts.on_edge_up(e->el->opts.arg, &e->out);
}

static void on_frame(struct link_session *s, uint64_t seq, const Parley__Link__Frame *f,
		     void *arg)
{
	struct edgelink *el = arg;
	el->opts.on_frame(el->opts.arg, link_session_peer(s), seq, f);
}

static void on_batch_end(struct link_session *s, void *arg)
{
	struct edgelink *el = arg;
	(void)s;
	if (el->opts.on_batch_end)
		el->opts.on_batch_end(el->opts.arg);
}

static void on_down(struct link_session *s, int reason, void *arg)
{
	(void)arg;
	(void)reason;
	struct link_peer *p = link_session_peer(s);
	if (!p) /* replaced by a newer session of the same edge: that one carries on */
		return;
	struct edge *e = p->data;
	e->connecting = false;
	schedule_retry(e);
}

static const struct link_app edge_app = {
	.on_up = on_up,
	.on_frame = on_frame,
	.on_batch_end = on_batch_end,
	.on_down = on_down,
};

static void on_connect(struct net_conn *c)
{
	struct edge *e = net_conn_arg(c);
	struct edgelink *el = e->el;
	net_conn_set_nodelay(c, true);
	const char *sni = el->cfg.npinned ? el->cfg.pinned[0] : NULL;
	if (net_conn_start_tls(c, el->tls, false, sni) != 0) {
		net_conn_abort(c, PE_TLS);
		return;
	}
	struct link_session *s = link_session_new(el->loop, c, &el->cfg, &edge_app, el, true, &e->peer,
						  el->epoch);
	link_out_attach(&e->out, s);
}

/* Only reached when the TCP connect fails (after on_connect the session owns the conn). */
static void on_connect_close(struct net_conn *c, int reason)
{
	struct edge *e = net_conn_arg(c);
	log_warn(net_conn_id(c), "link_connect_failed", "edge=%s:%u err=\"%s\"", e->host,
		 e->port, pe_strerror(reason));
	e->connecting = false;
	schedule_retry(e);
}

static const struct net_conn_cbs dial_cbs = {
	.on_connect = on_connect,
	.on_close = on_connect_close,
};

static void edge_connect(struct edge *e)
{
	if (e->connecting)
		return;
	e->connecting = true;
	if (!net_connect(e->el->loop, e->host, e->port, &dial_cbs, e)) {
		e->connecting = false;
		schedule_retry(e);
	}
}

int edgelink_start(uv_loop_t *loop, const struct edgelink_opts *o, struct edgelink **out)
{
	char err[512];
	struct edgelink *el = calloc(1, sizeof *el);
	if (!el)
		abort();
	el->loop = loop;
	el->opts = *o;
	el->epoch = link_new_epoch();
	link_cfg_from_conf(&el->cfg, o->conf, o->node_id, PARLEY__LINK__ROLE__ROLE_GATEWAY,
			   o->priority);
	el->tls = link_tls_ctx_new(false, o->conf, err, sizeof err);
	if (!el->tls) {
		log_error(0, "link_tls", "err=\"%s\"", err);
		free(el);
		return PE_TLS;
	}
	el->edges = calloc(o->nedges, sizeof *el->edges);
	el->nedges = o->nedges;
	for (size_t i = 0; i < o->nedges; i++) {
		struct edge *e = &el->edges[i];
		e->el = el;
		if (parse_hostport(o->edges[i], e->host, sizeof e->host, &e->port)) {
			log_error(0, "link_config", "edge=\"%s\" err=\"not host:port\"", o->edges[i]);
			el->nedges = i;
			edgelink_free(el);
			return PE_CONFIG;
		}
		link_peer_init(&e->peer, o->edges[i], 1u << 20);
		e->peer.data = e;
		link_out_init(&e->out, el->epoch, &el->cfg);
		e->peer.out = &e->out;
		e->backoff_ms = o->reconnect_min_ms;
		uv_timer_init(loop, &e->retry);
		e->retry.data = e;
		el->open_timers++;
	}
	log_info(0, "link_start", "node=%s epoch=%016llx edges=%zu priority=%u", o->node_id,
		 (unsigned long long)el->epoch, o->nedges, o->priority);
	for (size_t i = 0; i < el->nedges; i++)
		edge_connect(&el->edges[i]);
	*out = el;
	return 0;
}

void edgelink_stop(struct edgelink *el)
{
	el->stopping = true;
	for (size_t i = 0; i < el->nedges; i++) {
		struct edge *e = &el->edges[i];
		uv_timer_stop(&e->retry);
		if (e->peer.sess)
			link_session_close(e->peer.sess, "system-shutdown");
	}
}

void edgelink_free(struct edgelink *el)
{
	if (!el)
		return;
	for (size_t i = 0; i < el->nedges; i++) {
		link_peer_deinit(&el->edges[i].peer);
		link_out_deinit(&el->edges[i].out);
	}
	free(el->edges);
	tls_ctx_free(el->tls);
	free(el);
}

int edgelink_reload_tls(struct edgelink *el, const struct link_conf *conf)
{
	char err[512];
	int r = link_tls_ctx_reload(el->tls, false, conf, err, sizeof err);
	if (r)
		log_error(0, "link_tls_reload", "err=\"%s\"", err);
	return r;
}

size_t edgelink_up_count(const struct edgelink *el)
{
	size_t n = 0;
	for (size_t i = 0; i < el->nedges; i++)
		if (el->edges[i].peer.sess && link_session_up(el->edges[i].peer.sess))
			n++;
	return n;
}

void edgelink_broadcast(struct edgelink *el, Parley__Link__Frame *f)
{
	for (size_t i = 0; i < el->nedges; i++) {
		int r = link_out_send(&el->edges[i].out, f);
		if (r)
			log_warn(0, "link_send", "edge=%s:%u err=\"%s\"", el->edges[i].host,
				 el->edges[i].port, pe_strerror(r));
	}
}

/* FNV-1a over the lower-cased domain: stable across processes, so every gateway picks
 * the same edge for a domain. */
static uint64_t domain_hash(const char *d)
{
	uint64_t h = 1469598103934665603ull;
	for (; *d; d++) {
		unsigned char c = (unsigned char)*d;
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		h = (h ^ c) * 1099511628211ull;
	}
	return h;
}

int edgelink_send_to(struct edgelink *el, const char *domain, Parley__Link__Frame *f)
{
	size_t up = edgelink_up_count(el);
	if (!up)
		return PE_CLOSED;
	size_t k = (size_t)(domain_hash(domain) % up);
	for (size_t i = 0; i < el->nedges; i++) {
		struct edge *e = &el->edges[i];
		if (!e->peer.sess || !link_session_up(e->peer.sess))
			continue;
		if (k-- == 0) {
			if (link_out_full(&e->out))
				return PE_FULL;
			return link_out_send(&e->out, f);
		}
	}
	return PE_CLOSED;
}

void edgelink_foreach_edge(const struct edgelink *el, edgelink_edge_cb cb, void *arg)
{
	for (size_t i = 0; i < el->nedges; i++) {
		const struct edge *e = &el->edges[i];
		bool up = e->peer.sess && link_session_up(e->peer.sess);
		struct edgelink_edge_info ei = {
		    .host = e->host,
		    .port = e->port,
		    .node_id = e->peer.node_id,
		    .up = up,
		    .connecting = e->connecting,
		    .session_id = e->peer.sess ? link_session_id(e->peer.sess) : 0,
		    .connects = e->peer.connects,
		    .outbox_depth = outbox_depth(&e->out.ob),
		    .peer_outbox_depth = e->peer.peer_outbox_depth,
		    .backoff_ms = e->backoff_ms,
		};
		cb(arg, &ei);
	}
}
