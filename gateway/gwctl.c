/* The gateway's operator commands and metrics. Counters stay where the modules keep them
 * (link_stats, xlate_stats, sip_stack_stats); the collector copies them into the registry
 * at scrape time, so no hot path of another module grows a metrics call. */
#include "gwctl.h"

#include "err.h"
#include "jid.h"
#include "link.h"
#include "log.h"
#include "presence.h"
#include "store.h"
#include "sip_transport.h"
#include "sip_txn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Frames from the edges, by body: stanzas by kind, then the other reliable bodies. */
enum gwctl__fk { FK_MESSAGE, FK_PRESENCE, FK_IQ, FK_DELIVERED, FK_BOUNCE, FK_OTHER, FK_N };
static const char *const gwctl__fk_names[FK_N] = {"message",   "presence", "iq",
						  "delivered", "bounce",   "other"};

/* Per-edge gauges are registered when an edge is first seen; edges are fixed at start. */
#define GWCTL_MAX_EDGES 64

struct gwctl {
	struct gwctl_ctx x;
	uint64_t *frames[FK_N];
	struct metrics_hist *delay;
	uint64_t *link_frames_in, *link_frames_out, *link_dups, *link_resent;
	uint64_t *link_acks_in, *link_acks_out, *link_sessions_up, *link_sessions_refused;
	int64_t *edges_up, *policy_generation;
	int64_t *edge_depth[GWCTL_MAX_EDGES], *edge_peer_depth[GWCTL_MAX_EDGES];
	size_t nedge_slots;
	uint64_t *x_to_sip, *x_to_xmpp, *x_sip_failures, *x_bounces, *x_late_bounces;
	uint64_t *x_iq, *x_503, *x_dropped;
	uint64_t *sip_req_out, *sip_req_in, *sip_failovers, *sip_queued, *sip_down, *sip_up;
	int64_t *txn_client_active, *tp_flows;
	uint64_t *txn_retransmits, *txn_resp_retransmits, *txn_timeouts, *txn_transport_errors;
	uint64_t *txn_loops, *txn_bad, *txn_stray, *txn_absorbed;
	uint64_t *tp_udp_in, *tp_udp_out, *tp_stream_in, *tp_bad, *tp_keepalive_closed;
	/* SIP transactions by side (client, server), method and final status class, and the
	 * client durations by method: registered when first non-zero, so a scrape lists only
	 * what happened (13 methods x 5 classes x 2 sides would be 130 zero lines). */
	uint64_t *txn_final[2][SIP_TXN_M__N][SIP_TXN_CLASSES];
	struct metrics_hist *txn_duration[SIP_TXN_M__N];
	struct gwctl__mp *mp; /* partners managed with parleyctl, as stored */
	size_t nmp;
	struct gw_policy_conf managed; /* the same, parsed (only .partners) */
};

static void *gwctl__xalloc(void *p)
{
	if (!p) {
		fputs("parley-gateway: out of memory\n", stderr);
		abort();
	}
	return p;
}

/* ---- metrics ---- */

void gwctl_frame(struct gwctl *gc, const Parley__Link__Frame *f)
{
	enum gwctl__fk k = FK_OTHER;
	if (!gc)
		return;
	switch (f->body_case) {
	case PARLEY__LINK__FRAME__BODY_STANZA:
		switch (f->stanza ? f->stanza->kind : 0) {
		case PARLEY__LINK__STANZA_KIND__KIND_MESSAGE:
			k = FK_MESSAGE;
			break;
		case PARLEY__LINK__STANZA_KIND__KIND_PRESENCE:
			k = FK_PRESENCE;
			break;
		case PARLEY__LINK__STANZA_KIND__KIND_IQ:
			k = FK_IQ;
			break;
		default:
			break;
		}
		/* The edge stamps the moment it read the stanza (CLOCK_REALTIME, both hosts
		 * are expected to run NTP); a negative delay from clock skew is counted as 0. */
		if (f->stanza && f->stanza->meta && f->stanza->meta->has_received_us) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			uint64_t now =
			    (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
			uint64_t at = f->stanza->meta->received_us;
			metrics_hist_observe(gc->delay, now > at ? (double)(now - at) / 1e6 : 0.0);
		}
		break;
	case PARLEY__LINK__FRAME__BODY_DELIVERED:
		k = FK_DELIVERED;
		break;
	case PARLEY__LINK__FRAME__BODY_BOUNCE:
		k = FK_BOUNCE;
		break;
	default:
		break;
	}
	(*gc->frames[k])++;
}

struct gwctl__edge_walk {
	struct gwctl *gc;
	size_t i;
	int64_t up;
};

static void gwctl__edge_metrics(void *arg, const struct edgelink_edge_info *ei)
{
	struct gwctl__edge_walk *w = arg;
	struct gwctl *gc = w->gc;
	size_t i = w->i++;
	if (ei->up)
		w->up++;
	if (i >= GWCTL_MAX_EDGES)
		return;
	if (i >= gc->nedge_slots) {
		char addr[300], lab[400];
		snprintf(addr, sizeof addr, "%s:%u", ei->host, ei->port);
		ops_label(lab, sizeof lab, "edge", addr);
		gc->edge_depth[i] =
		    metrics_gauge(gc->x.ops->m, "parley_link_window_depth",
				  "frames sent on the link and not yet acknowledged", lab);
		gc->edge_peer_depth[i] = metrics_gauge(
		    gc->x.ops->m, "parley_link_peer_window_depth",
		    "frames the peer sent and we have not acknowledged, from its last ping", lab);
		gc->nedge_slots = i + 1;
	}
	*gc->edge_depth[i] = ei->outbox_depth;
	*gc->edge_peer_depth[i] = (int64_t)ei->peer_outbox_depth;
}

static void gwctl__txn_metrics(struct gwctl *gc, const struct sip_txn_stats *t)
{
	static const char *const side[2] = {"client", "server"};
	static const uint64_t bounds_us[SIP_TXN_DURATION_N] = SIP_TXN_DURATION_BOUNDS_US;
	struct metrics *m = gc->x.ops->m;
	char lab[128];
	for (int s = 0; s < 2; s++)
		for (int mi = 0; mi < SIP_TXN_M__N; mi++)
			for (int c = 0; c < SIP_TXN_CLASSES; c++) {
				uint64_t v = s ? t->server_final[mi][c] : t->client_final[mi][c];
				uint64_t **slot = &gc->txn_final[s][mi][c];
				if (!*slot && !v)
					continue;
				if (!*slot) {
					snprintf(lab, sizeof lab,
						 "side=\"%s\",method=\"%s\",status=\"%dxx\"", side[s],
						 sip_txn_method_name(mi), c + 2);
					*slot = metrics_counter(
					    m, "parley_sip_transactions_total",
					    "SIP transactions ended, by side (client: requests we sent, "
					    "by the final response received or synthesised, 408 on "
					    "timeout and 503 on transport failure; server: requests we "
					    "received, by the final response we sent), method and status "
					    "class",
					    lab);
				}
				if (*slot)
					**slot = v;
			}
	for (int mi = 0; mi < SIP_TXN_M__N; mi++) {
		uint64_t n = 0;
		for (int b = 0; b <= SIP_TXN_DURATION_N; b++)
			n += t->client_duration[mi][b];
		if (!gc->txn_duration[mi] && !n)
			continue;
		if (!gc->txn_duration[mi]) {
			double bounds[SIP_TXN_DURATION_N];
			for (int b = 0; b < SIP_TXN_DURATION_N; b++)
				bounds[b] = (double)bounds_us[b] / 1e6;
			snprintf(lab, sizeof lab, "method=\"%s\"", sip_txn_method_name(mi));
			gc->txn_duration[mi] = metrics_histogram(
			    m, "parley_sip_client_transaction_duration_seconds",
			    "SIP client transactions, from the first send to the final response "
			    "(received or synthesised), by method",
			    lab, bounds, SIP_TXN_DURATION_N);
		}
		metrics_hist_set(gc->txn_duration[mi], t->client_duration[mi],
				 SIP_TXN_DURATION_N + 1, (double)t->client_duration_sum_us[mi] / 1e6);
	}
}

static void gwctl__collect(void *arg)
{
	struct gwctl *gc = arg;
	*gc->link_frames_in = link_stats.frames_in;
	*gc->link_frames_out = link_stats.frames_out;
	*gc->link_dups = link_stats.dups_dropped;
	*gc->link_resent = link_stats.resent;
	*gc->link_acks_in = link_stats.acks_in;
	*gc->link_acks_out = link_stats.acks_out;
	*gc->link_sessions_up = link_stats.sessions_up;
	*gc->link_sessions_refused = link_stats.sessions_refused;
	if (*gc->x.edges) {
		struct gwctl__edge_walk w = {.gc = gc};
		edgelink_foreach_edge(*gc->x.edges, gwctl__edge_metrics, &w);
		*gc->edges_up = w.up;
	}
	if (*gc->x.snap)
		*gc->policy_generation = (int64_t)(*gc->x.snap)->generation;
	if (*gc->x.xlate) {
		const struct xlate_stats *s = xlate_stats(*gc->x.xlate);
		*gc->x_to_sip = s->xmpp_to_sip;
		*gc->x_to_xmpp = s->sip_to_xmpp;
		*gc->x_sip_failures = s->sip_failures;
		*gc->x_bounces = s->bounces;
		*gc->x_late_bounces = s->late_bounces;
		*gc->x_iq = s->iq_answered;
		*gc->x_503 = s->overload_503;
		*gc->x_dropped = s->dropped_errors;
	}
	if (*gc->x.sip) {
		struct sip_stack_stats s;
		sip_stack_stats(*gc->x.sip, &s);
		*gc->sip_req_out = s.requests_out;
		*gc->sip_req_in = s.requests_in;
		*gc->sip_failovers = s.failovers;
		*gc->sip_queued = s.message_queued;
		*gc->sip_down = s.health_down;
		*gc->sip_up = s.health_up;
		if (s.txn) {
			*gc->txn_client_active = (int64_t)s.txn->client_active;
			*gc->txn_retransmits = s.txn->retransmits;
			*gc->txn_resp_retransmits = s.txn->resp_retransmits;
			*gc->txn_timeouts = s.txn->timeouts;
			*gc->txn_transport_errors = s.txn->transport_errors;
			*gc->txn_loops = s.txn->loops;
			*gc->txn_bad = s.txn->bad_requests;
			*gc->txn_stray = s.txn->stray_responses;
			*gc->txn_absorbed = s.txn->absorbed;
			gwctl__txn_metrics(gc, s.txn);
		}
		if (s.tp) {
			*gc->tp_flows = (int64_t)s.tp->flows_open;
			*gc->tp_udp_in = s.tp->udp_in;
			*gc->tp_udp_out = s.tp->udp_out;
			*gc->tp_stream_in = s.tp->stream_msgs_in;
			*gc->tp_bad = s.tp->bad_input;
			*gc->tp_keepalive_closed = s.tp->keepalive_closed;
		}
	}
}

static void gwctl__metrics_setup(struct gwctl *gc)
{
	struct metrics *m = gc->x.ops->m;
	char lab[64];
	for (int k = 0; k < FK_N; k++) {
		snprintf(lab, sizeof lab, "kind=\"%s\"", gwctl__fk_names[k]);
		gc->frames[k] = metrics_counter(
		    m, "parley_link_received_total",
		    "reliable frames from the edges handed to the gateway, by kind (stanzas by "
		    "stanza kind)",
		    lab);
	}
	static const double delay[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
				       0.1,    0.25,  0.5,    1,     2.5,  5,	  10};
	gc->delay = metrics_histogram(
	    m, "parley_link_stanza_delay_seconds",
	    "from the edge reading a partner's stanza to the gateway receiving its frame", NULL,
	    delay, sizeof delay / sizeof delay[0]);
	const char *fr = "reliable link frames, by direction (resends included)";
	gc->link_frames_in = metrics_counter(m, "parley_link_frames_total", fr, "dir=\"in\"");
	gc->link_frames_out = metrics_counter(m, "parley_link_frames_total", fr, "dir=\"out\"");
	gc->link_dups = metrics_counter(m, "parley_link_duplicates_total",
					"frames received again after a reconnect or a peer's "
					"crash, dropped as already processed",
					NULL);
	gc->link_resent = metrics_counter(m, "parley_link_resent_total",
					  "frames sent again after a reconnect or failover", NULL);
	const char *ak = "link acknowledgements, by direction";
	gc->link_acks_in = metrics_counter(m, "parley_link_acks_total", ak, "dir=\"in\"");
	gc->link_acks_out = metrics_counter(m, "parley_link_acks_total", ak, "dir=\"out\"");
	const char *ls = "link sessions, by outcome of the handshake";
	gc->link_sessions_up =
	    metrics_counter(m, "parley_link_sessions_total", ls, "result=\"up\"");
	gc->link_sessions_refused =
	    metrics_counter(m, "parley_link_sessions_total", ls, "result=\"refused\"");
	gc->edges_up =
	    metrics_gauge(m, "parley_link_peers_up", "link peers with a session up", NULL);
	gc->policy_generation = metrics_gauge(m, "parley_policy_generation",
					      "generation of the federation policy in force", NULL);

	const char *xl = "stanzas and requests translated, by direction";
	gc->x_to_sip = metrics_counter(m, "parley_xlate_total", xl, "dir=\"xmpp_to_sip\"");
	gc->x_to_xmpp = metrics_counter(m, "parley_xlate_total", xl, "dir=\"sip_to_xmpp\"");
	gc->x_sip_failures = metrics_counter(m, "parley_xlate_sip_failures_total",
					     "SIP requests toward the pool that failed", NULL);
	const char *bo = "bounces from the edges turned into SIP errors (late: after the 202)";
	gc->x_bounces = metrics_counter(m, "parley_xlate_bounces_total", bo, "late=\"false\"");
	gc->x_late_bounces = metrics_counter(m, "parley_xlate_bounces_total", bo, "late=\"true\"");
	gc->x_iq = metrics_counter(m, "parley_xlate_iq_answered_total",
				   "iq requests the gateway answered itself", NULL);
	gc->x_503 =
	    metrics_counter(m, "parley_xlate_overload_total",
			    "SIP requests answered 503 because no edge could take them", NULL);
	gc->x_dropped =
	    metrics_counter(m, "parley_xlate_dropped_errors_total",
			    "error stanzas dropped rather than answered (no loops)", NULL);

	const char *rq = "SIP requests, by direction";
	gc->sip_req_out = metrics_counter(m, "parley_sip_requests_total", rq, "dir=\"out\"");
	gc->sip_req_in = metrics_counter(m, "parley_sip_requests_total", rq, "dir=\"in\"");
	gc->sip_failovers = metrics_counter(m, "parley_sip_failovers_total",
					    "SIP attempts moved to the next pool target", NULL);
	gc->sip_queued =
	    metrics_counter(m, "parley_sip_message_queued_total",
			    "MESSAGEs that waited behind another to the same URI", NULL);
	const char *hl = "pool targets marked down or up again by health checks";
	gc->sip_down = metrics_counter(m, "parley_sip_target_health_total", hl, "to=\"down\"");
	gc->sip_up = metrics_counter(m, "parley_sip_target_health_total", hl, "to=\"up\"");
	gc->txn_client_active = metrics_gauge(m, "parley_sip_client_transactions",
					      "client transactions not yet answered", NULL);
	const char *te = "SIP transaction events";
	gc->txn_retransmits =
	    metrics_counter(m, "parley_sip_transaction_events_total", te, "event=\"retransmit\"");
	gc->txn_resp_retransmits = metrics_counter(m, "parley_sip_transaction_events_total", te,
						   "event=\"response_retransmit\"");
	gc->txn_timeouts =
	    metrics_counter(m, "parley_sip_transaction_events_total", te, "event=\"timeout\"");
	gc->txn_transport_errors = metrics_counter(m, "parley_sip_transaction_events_total", te,
						   "event=\"transport_error\"");
	gc->txn_loops =
	    metrics_counter(m, "parley_sip_transaction_events_total", te, "event=\"loop_482\"");
	gc->txn_bad = metrics_counter(m, "parley_sip_transaction_events_total", te,
				      "event=\"bad_request_400\"");
	gc->txn_stray = metrics_counter(m, "parley_sip_transaction_events_total", te,
					"event=\"stray_response\"");
	gc->txn_absorbed = metrics_counter(m, "parley_sip_transaction_events_total", te,
					   "event=\"absorbed_retransmit\"");
	gc->tp_flows = metrics_gauge(m, "parley_sip_flows", "SIP connection flows open", NULL);
	const char *tm = "SIP messages at the transport, by carrier and direction";
	gc->tp_udp_in = metrics_counter(m, "parley_sip_transport_messages_total", tm,
					"transport=\"udp\",dir=\"in\"");
	gc->tp_udp_out = metrics_counter(m, "parley_sip_transport_messages_total", tm,
					 "transport=\"udp\",dir=\"out\"");
	gc->tp_stream_in = metrics_counter(m, "parley_sip_transport_messages_total", tm,
					   "transport=\"stream\",dir=\"in\"");
	gc->tp_bad = metrics_counter(m, "parley_sip_transport_bad_input_total",
				     "unparseable or unframeable SIP input", NULL);
	gc->tp_keepalive_closed = metrics_counter(m, "parley_sip_keepalive_closed_total",
						  "flows closed for a missed keep-alive", NULL);
}

/* ---- commands ---- */

struct gwctl__sum {
	size_t up, n;
};

static void gwctl__sum_edge(void *arg, const struct edgelink_edge_info *ei)
{
	struct gwctl__sum *s = arg;
	s->n++;
	if (ei->up)
		s->up++;
}

static int gwctl__status(void *arg, const struct ctl_req *req, struct json *j, char *err,
			 size_t errlen)
{
	struct gwctl *gc = arg;
	struct gwctl__sum s = {0};
	(void)req, (void)err, (void)errlen;
	if (*gc->x.edges)
		edgelink_foreach_edge(*gc->x.edges, gwctl__sum_edge, &s);
	json_obj_begin(j);
	ops_status_common(gc->x.ops, j);
	json_kv_str(j, "node_id", gc->x.node_id);
	json_kv_str(j, "config", gc->x.config_path);
	json_kv_str(j, "state", *gc->x.stopping ? "draining" : "running");
	json_kv_uint(j, "policy_generation", *gc->x.snap ? (*gc->x.snap)->generation : 0);
	json_kv_uint(j, "edges", s.n);
	json_kv_uint(j, "edges_up", s.up);
	json_kv_bool(j, "sip", *gc->x.sip != NULL);
	if (*gc->x.xlate) {
		const struct xlate_stats *xs = xlate_stats(*gc->x.xlate);
		json_kv_uint(j, "xmpp_to_sip", xs->xmpp_to_sip);
		json_kv_uint(j, "sip_to_xmpp", xs->sip_to_xmpp);
	}
	json_obj_end(j);
	return 0;
}

static void gwctl__json_edge(void *arg, const struct edgelink_edge_info *ei)
{
	struct json *j = arg;
	char addr[300];
	snprintf(addr, sizeof addr, "%s:%u", ei->host, ei->port);
	json_obj_begin(j);
	json_kv_str(j, "edge", addr);
	json_kv_str(j, "node_id", ei->node_id);
	json_kv_str(j, "state", ei->up ? "up" : ei->connecting ? "connecting" : "down");
	json_kv_uint(j, "session", ei->session_id);
	json_kv_uint(j, "connects", ei->connects);
	json_kv_uint(j, "window_depth", ei->outbox_depth);
	json_kv_uint(j, "peer_unacked", ei->peer_outbox_depth);
	json_kv_uint(j, "backoff_ms", ei->backoff_ms);
	json_obj_end(j);
}

static int gwctl__link(void *arg, const struct ctl_req *req, struct json *j, char *err,
		       size_t errlen)
{
	struct gwctl *gc = arg;
	(void)req, (void)err, (void)errlen;
	json_obj_begin(j);
	json_kv_str(j, "role", "gateway");
	json_kv_str(j, "node_id", gc->x.node_id);
	json_kv_uint(j, "policy_generation", *gc->x.snap ? (*gc->x.snap)->generation : 0);
	json_kv_uint(j, "frames_in", link_stats.frames_in);
	json_kv_uint(j, "frames_out", link_stats.frames_out);
	json_kv_uint(j, "duplicates", link_stats.dups_dropped);
	json_kv_uint(j, "resent", link_stats.resent);
	json_key(j, "peers");
	json_arr_begin(j);
	if (*gc->x.edges)
		edgelink_foreach_edge(*gc->x.edges, gwctl__json_edge, j);
	json_arr_end(j);
	json_obj_end(j);
	return 0;
}

static int gwctl__reload(void *arg, const struct ctl_req *req, struct json *j, char *err,
			 size_t errlen)
{
	struct gwctl *gc = arg;
	(void)req;
	log_info(0, "ctl_reload", "config=%s", gc->x.config_path);
	int rc = gc->x.reload(gc->x.arg, err, errlen);
	if (rc)
		return rc;
	json_obj_begin(j);
	json_kv_bool(j, "reloaded", true);
	json_kv_str(j, "config", gc->x.config_path);
	json_kv_uint(j, "policy_generation", *gc->x.snap ? (*gc->x.snap)->generation : 0);
	json_obj_end(j);
	return 0;
}

static int gwctl__drain(void *arg, const struct ctl_req *req, struct json *j, char *err,
			size_t errlen)
{
	struct gwctl *gc = arg;
	(void)req;
	if (*gc->x.stopping) {
		snprintf(err, errlen, "already draining");
		return PE_STATE;
	}
	log_info(0, "ctl_drain", "deadline_ms=%d", 10000);
	gc->x.drain(gc->x.arg);
	json_obj_begin(j);
	json_kv_bool(j, "draining", true);
	json_kv_uint(j, "deadline_ms", 10000);
	json_obj_end(j);
	return 0;
}

/* ---- federation partners, users, subscriptions ---- */

/* A partner managed with parleyctl, as stored: its domain (gw_policy_domain's form) and the
 * body of its [partner] section. */
struct gwctl__mp {
	char *domain;
	char *settings;
	int64_t updated_at;
};

static char *gwctl__xstrdup(const char *s)
{
	return gwctl__xalloc(strdup(s));
}

static void gwctl__mp_free(struct gwctl__mp *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].domain);
		free(v[i].settings);
	}
	free(v);
}

/* Parses every entry of v into a managed set. Returns 0, or PE_CONFIG with the first
 * entry's error in err (out freed). */
static int gwctl__mp_parse(const struct gwctl__mp *v, size_t n, struct gw_policy_conf *out,
			   char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	for (size_t i = 0; i < n; i++)
		if (gw_policy_managed_add(out, v[i].domain, v[i].settings, err, errlen) != 0) {
			gw_policy_managed_free(out);
			return PE_CONFIG;
		}
	return 0;
}

/* Replaces the managed set by v[0..n) if the merged policy passes: parsed, checked and
 * pushed by apply_policy. Takes v either way. */
static int gwctl__mp_install(struct gwctl *gc, struct gwctl__mp *v, size_t n, char *err,
			     size_t errlen)
{
	struct gw_policy_conf next;
	if (gwctl__mp_parse(v, n, &next, err, errlen) != 0 ||
	    gc->x.apply_policy(gc->x.arg, &next, err, errlen) != 0) {
		gw_policy_managed_free(&next);
		gwctl__mp_free(v, n);
		return PE_CONFIG;
	}
	gw_policy_managed_free(&gc->managed);
	gc->managed = next;
	gwctl__mp_free(gc->mp, gc->nmp);
	gc->mp = v;
	gc->nmp = n;
	return 0;
}

/* A copy of the managed entries with room for one more. */
static struct gwctl__mp *gwctl__mp_copy(const struct gwctl *gc)
{
	struct gwctl__mp *v = gwctl__xalloc(calloc(gc->nmp + 1, sizeof *v));
	for (size_t i = 0; i < gc->nmp; i++) {
		v[i].domain = gwctl__xstrdup(gc->mp[i].domain);
		v[i].settings = gwctl__xstrdup(gc->mp[i].settings);
		v[i].updated_at = gc->mp[i].updated_at;
	}
	return v;
}

static long gwctl__mp_find(const struct gwctl *gc, const char *domain)
{
	for (size_t i = 0; i < gc->nmp; i++)
		if (strcmp(gc->mp[i].domain, domain) == 0)
			return (long)i;
	return -1;
}

struct gwctl__load {
	struct gwctl *gc;
	struct gwctl__mp *v;
	size_t n, cap;
};

static void gwctl__on_stored(void *arg, const char *domain, const char *settings,
			     int64_t updated_at)
{
	struct gwctl__load *l = arg;
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 8;
		l->v = gwctl__xalloc(realloc(l->v, l->cap * sizeof *l->v));
	}
	l->v[l->n++] =
	    (struct gwctl__mp){gwctl__xstrdup(domain), gwctl__xstrdup(settings), updated_at};
}

void gwctl_load_partners(struct gwctl *gc)
{
	struct store *st = *gc->x.xlate ? xlate_store(*gc->x.xlate) : NULL;
	struct gwctl__load l = {.gc = gc};
	char err[1024];
	if (!st)
		return;
	if (store_partner_load(st, gwctl__on_stored, &l) != 0) {
		log_error(0, "partners_load_failed", "why=\"the store could not be read\"");
		gwctl__mp_free(l.v, l.n);
		return;
	}
	/* One at a time, so one entry that no longer fits the config (a partner the file now
	 * lists too) leaves the others in force. */
	size_t kept = 0;
	for (size_t i = 0; i < l.n; i++) {
		struct gwctl__mp *v = gwctl__mp_copy(gc);
		v[gc->nmp] = l.v[i];
		l.v[i] = (struct gwctl__mp){0};
		char dom[4 * GW_DOMAIN_MAX + 8];
		log_escape(dom, sizeof dom, v[gc->nmp].domain, strlen(v[gc->nmp].domain));
		if (gwctl__mp_install(gc, v, gc->nmp + 1, err, sizeof err) != 0)
			log_error(0, "partner_stored_refused", "domain=\"%s\" err=\"%s\"", dom,
				  err);
		else
			kept++;
	}
	gwctl__mp_free(l.v, l.n);
	log_info(0, "partners_loaded", "stored=%zu in_force=%zu", l.n, kept);
}

const struct gw_policy_conf *gwctl_managed(const struct gwctl *gc)
{
	return &gc->managed;
}

static void gwctl__json_partner(struct json *j, const char *name, const struct gw_partner_conf *p,
				const char *source, const struct gwctl__mp *mp)
{
	char dom[GW_DOMAIN_BUF], proxy[300];
	if (gw_policy_domain(name, dom, sizeof dom, NULL, 0) != 0)
		snprintf(dom, sizeof dom, "%s", name);
	json_obj_begin(j);
	json_kv_str(j, "domain", dom);
	json_kv_str(j, "source", source);
	json_kv_str(j, "type", gw_partner_type_names[p->type]);
	json_kv_str(j, "tls", gw_neg_names[p->tls]);
	json_kv_str(j, "sasl", gw_neg_names[p->sasl]);
	json_kv_bool(j, "dialback", p->dialback);
	json_kv_bool(j, "keepalive", p->keepalive);
	json_kv_uint(j, "connection_limit", p->connection_limit);
	if (p->proxy.host)
		snprintf(proxy, sizeof proxy, strchr(p->proxy.host, ':') ? "[%s]:%u" : "%s:%u",
			 p->proxy.host, p->proxy.port);
	json_kv_str(j, "proxy", p->proxy.host ? proxy : "");
	json_key(j, "additional_domains");
	json_arr_begin(j);
	for (size_t i = 0; i < p->additional_domains.n; i++)
		json_str(j, p->additional_domains.v[i]);
	json_arr_end(j);
	json_kv_str(j, "description", p->description ? p->description : "");
	if (mp) {
		json_kv_str(j, "settings", mp->settings);
		json_kv_int(j, "updated_at", mp->updated_at);
	}
	json_obj_end(j);
}

/* Writes "key = value" lines for args k=v... into a malloc'd string appended to base (lines
 * of the keys given are first removed from base: a set replaces; an empty value only
 * removes, back to the default). Returns NULL with err for an arg without '='. */
static char *gwctl__settings(const char *base, const struct ctl_req *req, size_t first, char *err,
			     size_t errlen)
{
	char *out = NULL;
	size_t outlen = 0;
	FILE *f = open_memstream(&out, &outlen);
	if (!f)
		abort();
	for (const char *line = base; line && *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		const char *eq = memchr(line, '=', len);
		size_t kl = eq ? (size_t)(eq - line) : len;
		while (kl && (line[kl - 1] == ' ' || line[kl - 1] == '\t'))
			kl--;
		bool replaced = false;
		for (size_t a = first; a < req->argc && !replaced; a++) {
			const char *ae = strchr(req->argv[a], '=');
			replaced = ae && (size_t)(ae - req->argv[a]) == kl &&
				   strncmp(req->argv[a], line, kl) == 0;
		}
		if (!replaced && len)
			fprintf(f, "%.*s\n", (int)len, line);
		line += len + (nl ? 1 : 0);
	}
	for (size_t a = first; a < req->argc; a++) {
		const char *eq = strchr(req->argv[a], '=');
		if (!eq || eq == req->argv[a]) {
			snprintf(err, errlen,
				 "'%s': expected key=value (keys as in a [partner] section: "
				 "type, tls, sasl, dialback, keepalive, connection_limit, proxy, "
				 "additional_domain, description)",
				 req->argv[a]);
			fclose(f);
			free(out);
			return NULL;
		}
		if (eq[1])
			fprintf(f, "%.*s = %s\n", (int)(eq - req->argv[a]), req->argv[a], eq + 1);
	}
	fclose(f);
	return out;
}

/* Persists the managed entry for domain (or its removal) and flushes. */
static void gwctl__persist(struct gwctl *gc, const char *domain, const struct gwctl__mp *e)
{
	struct store *st = xlate_store(*gc->x.xlate);
	int r = e ? store_partner_put(st, domain, e->settings, e->updated_at)
		  : store_partner_del(st, domain);
	if (r == 0)
		r = store_flush(st);
	if (r != 0)
		log_error(0, "partner_store_failed", "domain=%s err=\"%s\" (queued, retried)",
			  domain, pe_strerror(r));
}

static int gwctl__partners(void *arg, const struct ctl_req *req, struct json *j, char *err,
			   size_t errlen)
{
	struct gwctl *gc = arg;
	const struct gw_policy_conf *pc = gc->x.policy;
	const char *sub = req->argc ? req->argv[0] : "list";
	char dom[GW_DOMAIN_BUF], why[160];

	if (strcmp(sub, "list") == 0) {
		json_obj_begin(j);
		json_kv_uint(j, "generation", *gc->x.snap ? (*gc->x.snap)->generation : 0);
		json_key(j, "partners");
		json_arr_begin(j);
		for (size_t i = 0; i < pc->partners.n; i++)
			gwctl__json_partner(j, pc->partners.names[i],
					    (const struct gw_partner_conf *)pc->partners.items + i,
					    "config", NULL);
		for (size_t i = 0; i < gc->managed.partners.n; i++)
			gwctl__json_partner(
			    j, gc->managed.partners.names[i],
			    (const struct gw_partner_conf *)gc->managed.partners.items + i,
			    "parleyctl", NULL);
		json_arr_end(j);
		json_obj_end(j);
		return 0;
	}
	bool add = strcmp(sub, "add") == 0, set = strcmp(sub, "set") == 0;
	bool rm = strcmp(sub, "remove") == 0, show = strcmp(sub, "show") == 0;
	if (!add && !set && !rm && !show) {
		snprintf(err, errlen,
			 "usage: partners [list | show DOMAIN | add DOMAIN [key=value...] "
			 "| set DOMAIN key=value... | remove DOMAIN]");
		return PE_INVAL;
	}
	if (req->argc < 2 || ((show || rm) && req->argc != 2) || (set && req->argc < 3)) {
		snprintf(err, errlen, "usage: partners %s DOMAIN%s", sub,
			 add   ? " [key=value...]"
			 : set ? " key=value..."
			       : "");
		return PE_INVAL;
	}
	if (gw_policy_domain(req->argv[1], dom, sizeof dom, why, sizeof why) != 0) {
		snprintf(err, errlen, "'%s' is not a valid domain: %s", req->argv[1], why);
		return PE_INVAL;
	}
	long ci = gw_policy_find_partner(pc, dom);
	long mi = gwctl__mp_find(gc, dom);
	if (show) {
		if (ci < 0 && mi < 0) {
			snprintf(err, errlen, "no partner %s", dom);
			return PE_NOTFOUND;
		}
		if (ci >= 0)
			gwctl__json_partner(j, pc->partners.names[ci],
					    (const struct gw_partner_conf *)pc->partners.items + ci,
					    "config", NULL);
		else
			gwctl__json_partner(
			    j, gc->managed.partners.names[mi],
			    (const struct gw_partner_conf *)gc->managed.partners.items + mi,
			    "parleyctl", &gc->mp[mi]);
		return 0;
	}
	/* add, set, remove */
	if (ci >= 0) {
		snprintf(err, errlen,
			 "partner %s is in the config file %s, which parleyctl does not change "
			 "(read-only here): edit the file and reload",
			 dom, gc->x.config_path);
		return PE_STATE;
	}
	if (!*gc->x.xlate || !xlate_store(*gc->x.xlate) || *gc->x.stopping) {
		snprintf(err, errlen,
			 "no state store (no [sip] section, or draining): partners "
			 "cannot be changed with parleyctl");
		return PE_STATE;
	}
	if (add && mi >= 0) {
		snprintf(err, errlen,
			 "partner %s was already added with parleyctl: use partners set", dom);
		return PE_STATE;
	}
	if ((set || rm) && mi < 0) {
		snprintf(err, errlen, "no partner %s added with parleyctl", dom);
		return PE_NOTFOUND;
	}
	struct gwctl__mp *v = gwctl__mp_copy(gc);
	size_t n = gc->nmp;
	if (rm) {
		free(v[mi].domain);
		free(v[mi].settings);
		memmove(&v[mi], &v[mi + 1], (n - (size_t)mi - 1) * sizeof *v);
		n--;
	} else {
		char *settings = gwctl__settings(set ? v[mi].settings : NULL, req, 2, err, errlen);
		if (!settings) {
			gwctl__mp_free(v, n);
			return PE_INVAL;
		}
		size_t k = set ? (size_t)mi : n++;
		if (set)
			free(v[k].settings);
		else
			v[k].domain = gwctl__xstrdup(dom);
		v[k].settings = settings;
		v[k].updated_at = (int64_t)time(NULL);
	}
	if (gwctl__mp_install(gc, v, n, err, errlen) != 0) {
		log_info(0, "ctl_partner_refused", "op=%s domain=%s err=\"%s\"", sub, dom, err);
		return PE_CONFIG;
	}
	mi = gwctl__mp_find(gc, dom);
	gwctl__persist(gc, dom, mi >= 0 ? &gc->mp[mi] : NULL);
	uint64_t gen = *gc->x.snap ? (*gc->x.snap)->generation : 0;
	log_info(0, "ctl_partner", "op=%s domain=%s policy_generation=%llu", sub, dom,
		 (unsigned long long)gen);
	json_obj_begin(j);
	json_kv_str(j, rm ? "removed" : add ? "added" : "updated", dom);
	json_kv_uint(j, "generation", gen);
	json_obj_end(j);
	return 0;
}

static int gwctl__users(void *arg, const struct ctl_req *req, struct json *j, char *err,
			size_t errlen)
{
	struct gwctl *gc = arg;
	const struct gw_policy_conf *pc = gc->x.policy;
	if (req->argc > 1) {
		snprintf(err, errlen, "usage: users [JID]");
		return PE_INVAL;
	}
	if (req->argc == 1) {
		char b[JID_BUF];
		struct jid jj;
		const char *jid = req->argv[0];
		if (jid_normalize(jid, strlen(jid), b, sizeof b, &jj) < 0 || !jj.local.n) {
			snprintf(err, errlen, "'%s' is not a user JID (user@domain)", jid);
			return PE_INVAL;
		}
		b[(size_t)(jj.domain.p + jj.domain.n - b)] = '\0';
		bool over;
		int a = gw_policy_user_access(pc, b, &over);
		json_obj_begin(j);
		json_kv_str(j, "jid", b);
		json_kv_str(j, "xmpp", gw_access_names[a]);
		json_kv_str(j, "source", over ? "user" : "default");
		json_kv_str(j, "default", gw_access_names[pc->access_default]);
		json_obj_end(j);
		return 0;
	}
	json_obj_begin(j);
	json_kv_str(j, "default", gw_access_names[pc->access_default]);
	json_key(j, "users");
	json_arr_begin(j);
	for (size_t i = 0; i < pc->users.n; i++) {
		json_obj_begin(j);
		json_kv_str(j, "jid", pc->users.names[i]);
		json_kv_str(
		    j, "xmpp",
		    gw_access_names[((const struct gw_user_conf *)pc->users.items)[i].xmpp]);
		json_obj_end(j);
	}
	json_arr_end(j);
	json_obj_end(j);
	return 0;
}

static void gwctl__json_sub(void *arg, const struct presence_sub_info *si)
{
	static const char *const states[] = {"?", "pending", "active", "terminated"};
	struct json *j = arg;
	int64_t now = (int64_t)time(NULL);
	json_obj_begin(j);
	json_kv_str(j, "dir", si->dir == STORE_SUB_XMPP_TO_SIP ? "xmpp->sip" : "sip->xmpp");
	json_kv_str(j, "jid", si->jid);
	json_kv_str(j, "sip", si->sip);
	json_kv_str(j, "state", states[si->state >= 1 && si->state <= 3 ? si->state : 0]);
	json_kv_int(j, "expires_at", si->expires_at);
	json_kv_int(j, "expires_in_s", si->expires_at > now ? si->expires_at - now : 0);
	json_obj_end(j);
}

static int gwctl__subscriptions(void *arg, const struct ctl_req *req, struct json *j, char *err,
				size_t errlen)
{
	struct gwctl *gc = arg;
	struct presence *p = *gc->x.xlate ? xlate_presence(*gc->x.xlate) : NULL;
	(void)req;
	if (!p) {
		snprintf(err, errlen, "no presence (no [sip] section, or draining)");
		return PE_STATE;
	}
	json_arr_begin(j);
	presence_foreach_sub(p, gwctl__json_sub, j);
	json_arr_end(j);
	return 0;
}

struct gwctl *gwctl_new(const struct gwctl_ctx *ctx)
{
	struct gwctl *gc = gwctl__xalloc(calloc(1, sizeof *gc));
	gc->x = *ctx;
	struct ctl *c = ctx->ops->ctl;
	ctl_register(c, "status", "the daemon's state at a glance", gwctl__status, gc);
	ctl_register(c, "link", "the links to the edges: windows, counters, peers", gwctl__link,
		     gc);
	ctl_register(c, "reload", "reload the configuration and certificates (as SIGHUP)",
		     gwctl__reload, gc);
	ctl_register(c, "drain", "stop gracefully (as SIGTERM)", gwctl__drain, gc);
	ctl_register(c, "partners",
		     "federation partners: list | show D | add D [key=value...] | set D "
		     "key=value... | remove D (config entries are read-only)",
		     gwctl__partners, gc);
	ctl_register(c, "users", "per-user XMPP access: [access] default and overrides, or one JID",
		     gwctl__users, gc);
	ctl_register(c, "subscriptions", "presence subscriptions both ways", gwctl__subscriptions,
		     gc);
	gwctl__metrics_setup(gc);
	ctx->ops->collect = gwctl__collect;
	ctx->ops->arg = gc;
	return gc;
}

void gwctl_free(struct gwctl *gc)
{
	if (!gc)
		return;
	gw_policy_managed_free(&gc->managed);
	gwctl__mp_free(gc->mp, gc->nmp);
	free(gc);
}
