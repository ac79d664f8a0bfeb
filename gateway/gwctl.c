/* The gateway's operator commands and metrics. Counters stay where the modules keep them
 * (link_stats, xlate_stats, sip_stack_stats); the collector copies them into the registry
 * at scrape time, so no hot path of another module grows a metrics call. */
#include "gwctl.h"

#include "err.h"
#include "link.h"
#include "log.h"
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
	gwctl__metrics_setup(gc);
	ctx->ops->collect = gwctl__collect;
	ctx->ops->arg = gc;
	return gc;
}

void gwctl_free(struct gwctl *gc)
{
	free(gc);
}
