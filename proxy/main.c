/* parley-proxy: argv, config, loop and signals. Protocol work lives in the modules. */
#include "daemon.h"
#include "err.h"
#include "gwlink.h"
#include "link.h"
#include "link_conf.h"
#include "log.h"
#include "ops.h"
#include "policy.h"
#include "s2s.h"
#include "s2s_out.h"
#include "sig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};

struct proxy_config {
	char *node_id;
	int log_level;
	struct conf_hostport link_listen;
	struct link_conf link;
	struct s2s_conf s2s;
	struct s2s_out_conf s2s_out;
	struct ctl_conf control;
	uint64_t test_source_frames;
	uint64_t test_source_body;
};

#define PC struct proxy_config
static const struct conf_option proxy_options[] = {
	{"general", "node_id", CONF_STRING, 1, 100, "edge", offsetof(PC, node_id), false, false,
	 NULL, "this edge's name on the link"},
	{"general", "log_level", CONF_ENUM, 0, 0, "info", offsetof(PC, log_level), true, false,
	 log_levels, "error, warn, info or debug"},
	{"link", "listen", CONF_HOSTPORT, 0, 0, "127.0.0.1:23456", offsetof(PC, link_listen),
	 false, false, NULL, "internal-interface address the gateways dial"},
	LINK_CONF_OPTIONS(PC, link),
	S2S_CONF_OPTIONS(PC, s2s),
	S2S_OUT_CONF_OPTIONS(PC, s2s_out),
	CTL_CONF_OPTIONS(PC, control, "/run/parley/proxy.sock", "127.0.0.1:9469"),
	{"test", "source_frames", CONF_UINT, 0, 100000000, "0", offsetof(PC, test_source_frames),
	 false, false, NULL, "test only: send this many stanza frames to the active gateway"},
	{"test", "source_body_bytes", CONF_UINT, 0, 65536, "200",
	 offsetof(PC, test_source_body), false, false, NULL,
	 "test only: body size of the source's frames"},
};
#undef PC
#define N_OPTIONS (sizeof proxy_options / sizeof proxy_options[0])

/* Submit times of partner-bound stanzas, by link seq, for the delivery-latency histogram.
 * A slot is overwritten when more than PX_LAT_SLOTS stanzas are outstanding; such a
 * stanza is simply not measured. */
#define PX_LAT_SLOTS 4096
struct px_lat {
	void *owner;
	uint64_t seq;
	uint64_t t_ns; /* 0 = free */
};

/* Registry slots the collector refreshes from the modules' counters at scrape time. */
struct px_metrics {
	uint64_t *link_frames_in, *link_frames_out, *link_dups, *link_resent;
	uint64_t *link_acks_in, *link_acks_out, *link_sessions_up, *link_sessions_refused;
	int64_t *link_window_depth, *link_gateways_up, *policy_generation;
	uint64_t *in_accepted, *in_auth_external, *in_auth_dialback, *in_stream_errors;
	uint64_t *in_refused_limit, *in_stanzas[4];
	uint64_t *in_bounced_congested, *in_bounced_too_large, *in_held_total, *in_lost;
	int64_t *in_held;
	uint64_t *out_opened, *out_auth_external, *out_auth_dialback, *out_attempts;
	uint64_t *out_submitted, *out_delivered, *out_bounced, *out_stanzas[4];
	uint64_t *verify_sent, *verify_valid, *verify_invalid;
	int64_t *conns[2][3]; /* [in,out][none,sasl-external,dialback] */
	int64_t *out_routes;
	struct metrics_hist *delivery;
};

struct proxy {
	uv_loop_t *loop;
	const char *config_path;
	struct proxy_config cfg;
	struct gwlink *gw;
	struct s2s *s2s;
	struct s2s_out *s2s_out;
	struct sig sig;
	struct daemon_stop stop;
	struct ops ops;
	struct px_metrics pm;
	struct px_lat lat[PX_LAT_SLOTS];
	struct policy *pol; /* the newest snapshot, for parleyctl partners; NULL before one */
	/* Stanzas toward partners that arrived before the first snapshot (a gateway replaying
	 * its unacknowledged frames to a restarted edge sends them ahead of its policy): kept,
	 * packed, until the policy says which domains we serve. */
	struct held *held, **held_tail;
	size_t nheld;
};

#define HELD_MAX 65536

struct held {
	struct held *next;
	struct link_peer *lp;
	uint64_t seq;
	size_t len;
	uint8_t data[];
};

static void on_term(void *arg)
{
	struct proxy *p = arg;
	daemon_begin_stop(&p->stop, p->loop, &p->sig, 10000);
	ops_stop(&p->ops);
	if (p->s2s)
		s2s_stop(p->s2s);
	if (p->s2s_out)
		s2s_out_stop(p->s2s_out);
	gwlink_stop(p->gw);
}

/* The modules read [s2s] through a pointer to cur: the reloadable settings are copied in,
 * and the certificate paths swapped so cur names what is in use (next frees the old). */
static void reload_s2s_settings(struct s2s_conf *cur, struct s2s_conf *next)
{
	char *t;
	cur->max_per_ip = next->max_per_ip;
	cur->rate_limit = next->rate_limit;
	cur->stream_management = next->stream_management;
	cur->link_wait_ms = next->link_wait_ms; /* read when a stanza is held */
	t = cur->cert, cur->cert = next->cert, next->cert = t;
	t = cur->key, cur->key = next->key, next->key = t;
	t = cur->ca, cur->ca = next->ca, next->ca = t;
}

/* SIGHUP and parleyctl reload. Returns 0, or PE_CONFIG with the reason in err (the old
 * configuration stays in force). */
static int reload(struct proxy *p, char *err, size_t errlen)
{
	struct proxy_config next;
	if (conf_load(proxy_options, N_OPTIONS, &next, p->config_path, err, errlen) != 0) {
		log_error(0, "reload_refused", "err=\"%s\"", err);
		return PE_CONFIG;
	}
	if (conf_diff_nonreloadable(proxy_options, N_OPTIONS, &p->cfg, &next, err, errlen)) {
		log_error(0, "reload_refused", "err=\"%s\"", err);
		conf_free(proxy_options, N_OPTIONS, &next);
		return PE_CONFIG;
	}
	/* The S2S certificate first: it is the one renewed most often, and a bad one then
	 * leaves everything as it was. Inbound before outbound: the server context is the
	 * stricter (it needs a certificate), so outbound fails after inbound succeeded only
	 * if the files change between the two reads. */
	if ((p->s2s && s2s_reload_tls(p->s2s, &next.s2s, err, errlen) != 0) ||
	    (p->s2s_out && s2s_out_reload_tls(p->s2s_out, &next.s2s, err, errlen) != 0)) {
		log_error(0, "reload_refused", "err=\"S2S certificate: %s\"", err);
		conf_free(proxy_options, N_OPTIONS, &next);
		return PE_CONFIG;
	}
	if (gwlink_reload_tls(p->gw, &next.link) != 0) {
		snprintf(err, errlen, "link certificates could not be loaded (see the log)");
		conf_free(proxy_options, N_OPTIONS, &next);
		return PE_CONFIG;
	}
	reload_s2s_settings(&p->cfg.s2s, &next.s2s);
	log_set_level((enum log_level)next.log_level);
	/* Sessions hold pointers into the old config's link settings; those are non-reloadable
	 * or copied, so the old strings stay valid until exit. */
	log_info(0, "reload", "config=%s", p->config_path);
	conf_free(proxy_options, N_OPTIONS, &next);
	return 0;
}

static void on_hup(void *arg)
{
	char err[1024];
	reload(arg, err, sizeof err);
}

static void release_held(struct proxy *p);

static void hook_policy(void *arg, const Parley__Link__PolicySnapshot *snap)
{
	struct proxy *p = arg;
	struct policy *np = policy_from_snapshot(snap);
	if (np) {
		if (p->pol)
			policy_unref(p->pol);
		p->pol = np;
	}
	if (p->s2s)
		s2s_set_policy(p->s2s, snap);
	if (p->s2s_out)
		s2s_out_set_policy(p->s2s_out, snap);
	if (p->pol)
		release_held(p);
}

static void submit_stanza(struct proxy *p, struct link_peer *lp, uint64_t seq,
			  const Parley__Link__Stanza *st);

static void hook_stanza(void *arg, struct link_peer *lp, uint64_t seq,
			const Parley__Link__Stanza *st)
{
	struct proxy *p = arg;
	if (!p->pol && p->nheld < HELD_MAX) {
		size_t n = parley__link__stanza__get_packed_size(st);
		struct held *h = malloc(sizeof *h + n);
		if (!h)
			abort();
		*h = (struct held){.lp = lp, .seq = seq, .len = n};
		parley__link__stanza__pack(st, h->data);
		if (!p->held_tail)
			p->held_tail = &p->held;
		*p->held_tail = h;
		p->held_tail = &h->next;
		p->nheld++;
		return;
	}
	submit_stanza(p, lp, seq, st);
}

/* The first policy arrived: what waited for it goes out, in order. */
static void release_held(struct proxy *p)
{
	struct held *h = p->held;
	p->held = NULL;
	p->held_tail = NULL;
	if (h)
		log_info(0, "held_released", "stanzas=%zu", p->nheld);
	p->nheld = 0;
	while (h) {
		struct held *next = h->next;
		Parley__Link__Stanza *st = parley__link__stanza__unpack(NULL, h->len, h->data);
		if (st) {
			submit_stanza(p, h->lp, h->seq, st);
			parley__link__stanza__free_unpacked(st, NULL);
		}
		free(h);
		h = next;
	}
}

static void submit_stanza(struct proxy *p, struct link_peer *lp, uint64_t seq,
			  const Parley__Link__Stanza *st)
{
	struct s2s_out_ticket t = {.owner = lp, .seq = seq, .ref = st->ref};
	(*p->pm.out_stanzas[(unsigned)st->kind & 3u])++;
	struct px_lat *l = &p->lat[seq % PX_LAT_SLOTS];
	*l = (struct px_lat){.owner = lp, .seq = seq, .t_ns = uv_hrtime()};
	s2s_out_submit(p->s2s_out, &t, st);
}

static void out_delivered(void *arg, const struct s2s_out_ticket *t)
{
	struct proxy *p = arg;
	struct px_lat *l = &p->lat[t->seq % PX_LAT_SLOTS];
	if (l->t_ns && l->owner == t->owner && l->seq == t->seq) {
		metrics_hist_observe(p->pm.delivery, (double)(uv_hrtime() - l->t_ns) / 1e9);
		l->t_ns = 0;
	}
	gwlink_delivered(p->gw, t->owner, t->seq, t->ref);
}

static void out_bounce(void *arg, const struct s2s_out_ticket *t, const char *type,
		       const char *cond, const char *text)
{
	struct proxy *p = arg;
	char lab[160];
	uint64_t *c = metrics_counter(p->ops.m, "parley_s2s_bounces_total",
				      "stanzas toward partners bounced, by error condition",
				      ops_label(lab, sizeof lab, "condition", cond ? cond : "none"));
	if (c)
		(*c)++;
	struct px_lat *l = &p->lat[t->seq % PX_LAT_SLOTS];
	if (l->owner == t->owner && l->seq == t->seq)
		l->t_ns = 0;
	gwlink_bounce(p->gw, t->owner, t->seq, t->ref, type, cond, text);
}

static void hook_room(void *arg)
{
	struct proxy *p = arg;
	if (p->s2s)
		s2s_link_room(p->s2s);
}

static void hook_acked(void *arg)
{
	struct proxy *p = arg;
	if (p->s2s)
		s2s_link_acked(p->s2s);
}

/* ---- metrics ---- */

static const char *const kind_names[4] = {"other", "message", "presence", "iq"};
static const char *const auth_names[3] = {"none", "sasl-external", "dialback"};

static void metrics_setup(struct proxy *p)
{
	struct metrics *m = p->ops.m;
	struct px_metrics *x = &p->pm;
	char lab[128];
	const char *fr = "reliable link frames, by direction (resends included)";
	x->link_frames_in = metrics_counter(m, "parley_link_frames_total", fr, "dir=\"in\"");
	x->link_frames_out = metrics_counter(m, "parley_link_frames_total", fr, "dir=\"out\"");
	x->link_dups = metrics_counter(m, "parley_link_duplicates_total",
				       "frames received again after a reconnect or a peer's crash, "
				       "dropped as already processed", NULL);
	x->link_resent = metrics_counter(m, "parley_link_resent_total",
					 "frames sent again after a reconnect or failover", NULL);
	const char *ak = "link acknowledgements, by direction";
	x->link_acks_in = metrics_counter(m, "parley_link_acks_total", ak, "dir=\"in\"");
	x->link_acks_out = metrics_counter(m, "parley_link_acks_total", ak, "dir=\"out\"");
	const char *ls = "link sessions, by outcome of the handshake";
	x->link_sessions_up = metrics_counter(m, "parley_link_sessions_total", ls, "result=\"up\"");
	x->link_sessions_refused =
	    metrics_counter(m, "parley_link_sessions_total", ls, "result=\"refused\"");
	x->link_window_depth = metrics_gauge(m, "parley_link_window_depth",
					     "frames sent on the link and not yet acknowledged",
					     "peer=\"gateways\"");
	x->link_gateways_up =
	    metrics_gauge(m, "parley_link_peers_up", "link peers with a session up", NULL);
	x->policy_generation = metrics_gauge(m, "parley_policy_generation",
					     "generation of the federation policy in force (0: none)",
					     NULL);
	const char *ct = "S2S connections accepted (in) or opened (out)";
	x->in_accepted = metrics_counter(m, "parley_s2s_connections_total", ct, "dir=\"in\"");
	x->out_opened = metrics_counter(m, "parley_s2s_connections_total", ct, "dir=\"out\"");
	const char *au = "S2S streams authenticated, by direction and method";
	x->in_auth_external = metrics_counter(m, "parley_s2s_authenticated_total", au,
					      "dir=\"in\",auth=\"sasl-external\"");
	x->in_auth_dialback = metrics_counter(m, "parley_s2s_authenticated_total", au,
					      "dir=\"in\",auth=\"dialback\"");
	x->out_auth_external = metrics_counter(m, "parley_s2s_authenticated_total", au,
					       "dir=\"out\",auth=\"sasl-external\"");
	x->out_auth_dialback = metrics_counter(m, "parley_s2s_authenticated_total", au,
					       "dir=\"out\",auth=\"dialback\"");
	for (int d = 0; d < 2; d++)
		for (int a = 0; a < 3; a++) {
			snprintf(lab, sizeof lab, "dir=\"%s\",auth=\"%s\"", d ? "out" : "in",
				 auth_names[a]);
			x->conns[d][a] = metrics_gauge(
			    m, "parley_s2s_connections",
			    "S2S streams open now, by direction and authentication method", lab);
		}
	const char *st = "stanzas from partners (in) and toward partners (out), by kind";
	for (int k = 1; k < 4; k++) {
		snprintf(lab, sizeof lab, "dir=\"in\",kind=\"%s\"", kind_names[k]);
		x->in_stanzas[k] = metrics_counter(m, "parley_s2s_stanzas_total", st, lab);
	}
	for (int k = 1; k < 4; k++) {
		snprintf(lab, sizeof lab, "dir=\"out\",kind=\"%s\"", kind_names[k]);
		x->out_stanzas[k] = metrics_counter(m, "parley_s2s_stanzas_total", st, lab);
	}
	/* A kind outside the enum is counted but not rendered under a misleading label. */
	static uint64_t spill;
	x->in_stanzas[0] = x->out_stanzas[0] = &spill;
	x->in_stream_errors = metrics_counter(m, "parley_s2s_stream_errors_total",
					      "inbound streams closed with a stream error", NULL);
	x->in_refused_limit = metrics_counter(m, "parley_s2s_refused_total",
					      "inbound connections refused by a connection limit",
					      "reason=\"limit\"");
	/* Inbound counterpart of parley_s2s_bounces_total (outbound, made on first use): both
	 * conditions exist from the start so a rate can be taken before the first bounce. */
	const char *ib = "stanzas from partners refused at the gateway link, bounced with a "
			 "stanza error (error stanzas are dropped), by condition";
	x->in_bounced_congested = metrics_counter(m, "parley_s2s_in_bounces_total", ib,
						  "condition=\"resource-constraint\"");
	x->in_bounced_too_large =
	    metrics_counter(m, "parley_s2s_in_bounces_total", ib, "condition=\"policy-violation\"");
	x->in_held = metrics_gauge(m, "parley_s2s_in_held_stanzas",
				   "stanzas from partners read while the gateway link was full, "
				   "held now for it ([s2s] link_wait)",
				   NULL);
	x->in_held_total = metrics_counter(m, "parley_s2s_in_held_total",
					   "stanzas from partners held for a full gateway link "
					   "instead of being bounced at once",
					   NULL);
	x->in_lost = metrics_counter(m, "parley_s2s_in_lost_total",
				     "held stanzas lost because their connection closed before the "
				     "link had room (logged as event=s2s_in_lost)",
				     NULL);
	x->out_attempts = metrics_counter(m, "parley_s2s_out_connect_attempts_total",
					  "outbound TCP connection attempts", NULL);
	const char *oc = "stanzas toward partners, by outcome";
	x->out_submitted =
	    metrics_counter(m, "parley_s2s_out_stanzas_total", oc, "outcome=\"submitted\"");
	x->out_delivered =
	    metrics_counter(m, "parley_s2s_out_stanzas_total", oc, "outcome=\"delivered\"");
	x->out_bounced =
	    metrics_counter(m, "parley_s2s_out_stanzas_total", oc, "outcome=\"bounced\"");
	const char *vf = "dialback verifications asked of authoritative servers, by verdict";
	x->verify_sent = metrics_counter(m, "parley_s2s_dialback_verify_total", vf,
					 "result=\"sent\"");
	x->verify_valid = metrics_counter(m, "parley_s2s_dialback_verify_total", vf,
					  "result=\"valid\"");
	x->verify_invalid = metrics_counter(m, "parley_s2s_dialback_verify_total", vf,
					    "result=\"invalid\"");
	x->out_routes = metrics_gauge(m, "parley_s2s_out_routes",
				      "outbound domain pairs with a stream or queued stanzas", NULL);
	static const double lat[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
				     0.25,  0.5,    1,     2.5,  5,     10,   30};
	x->delivery = metrics_histogram(
	    m, "parley_s2s_out_delivery_seconds",
	    "from a stanza's arrival on the link to its delivery to the partner (acknowledged "
	    "where XEP-0198 is on)",
	    NULL, lat, sizeof lat / sizeof lat[0]);
}

static void count_conn(void *arg, const struct s2s_session_info *si)
{
	struct proxy *p = arg;
	int d = strcmp(si->dir, "out") == 0;
	int a = strcmp(si->auth, "sasl-external") == 0 ? 1 : strcmp(si->auth, "dialback") == 0 ? 2 : 0;
	(*p->pm.conns[d][a])++;
}

static void count_peer(void *arg, const struct gwlink_peer_info *pi)
{
	int64_t *n = arg;
	if (pi->up)
		(*n)++;
}

static void metrics_collect(void *arg)
{
	struct proxy *p = arg;
	struct px_metrics *x = &p->pm;
	*x->link_frames_in = link_stats.frames_in;
	*x->link_frames_out = link_stats.frames_out;
	*x->link_dups = link_stats.dups_dropped;
	*x->link_resent = link_stats.resent;
	*x->link_acks_in = link_stats.acks_in;
	*x->link_acks_out = link_stats.acks_out;
	*x->link_sessions_up = link_stats.sessions_up;
	*x->link_sessions_refused = link_stats.sessions_refused;
	if (p->gw) {
		*x->link_window_depth = gwlink_outbox_depth(p->gw);
		*x->policy_generation = (int64_t)gwlink_policy_generation(p->gw);
		*x->link_gateways_up = 0;
		gwlink_foreach_peer(p->gw, count_peer, x->link_gateways_up);
	}
	for (int d = 0; d < 2; d++)
		for (int a = 0; a < 3; a++)
			*x->conns[d][a] = 0;
	if (p->s2s) {
		const struct s2s_stats *s = s2s_stats(p->s2s);
		*x->in_accepted = s->accepted;
		*x->in_auth_external = s->auth_external;
		*x->in_auth_dialback = s->auth_dialback;
		*x->in_stream_errors = s->stream_errors;
		*x->in_refused_limit = s->refused_limit;
		*x->in_bounced_congested = s->bounced_congested;
		*x->in_bounced_too_large = s->bounced_too_large;
		*x->in_held = (int64_t)s->held_now;
		*x->in_held_total = s->held;
		*x->in_lost = s->held_lost;
		for (int k = 1; k < 4; k++)
			*x->in_stanzas[k] = s->stanzas_in_kind[k];
		s2s_foreach_session(p->s2s, count_conn, p);
	}
	if (p->s2s_out) {
		const struct s2s_out_stats *o = s2s_out_stats(p->s2s_out);
		*x->out_opened = o->streams_opened;
		*x->out_auth_external = o->auth_external;
		*x->out_auth_dialback = o->auth_dialback;
		*x->out_attempts = o->connect_attempts;
		*x->out_submitted = o->submitted;
		*x->out_delivered = o->delivered;
		*x->out_bounced = o->bounced;
		*x->verify_sent = o->verify_sent;
		*x->verify_valid = o->verify_valid;
		*x->verify_invalid = o->verify_invalid;
		*x->out_routes = (int64_t)s2s_out_route_count(p->s2s_out);
		s2s_out_foreach_session(p->s2s_out, count_conn, p);
	}
}

/* ---- control commands ---- */

struct peer_summary {
	size_t up;
	const char *active;
};

static void sum_peer(void *arg, const struct gwlink_peer_info *pi)
{
	struct peer_summary *ps = arg;
	if (pi->up)
		ps->up++;
	if (pi->active)
		ps->active = pi->node_id;
}

static int cmd_status(void *arg, const struct ctl_req *req, struct json *j, char *err,
		      size_t errlen)
{
	struct proxy *p = arg;
	struct peer_summary ps = {0};
	(void)req, (void)err, (void)errlen;
	gwlink_foreach_peer(p->gw, sum_peer, &ps);
	json_obj_begin(j);
	ops_status_common(&p->ops, j);
	json_kv_str(j, "node_id", p->cfg.node_id);
	json_kv_str(j, "config", p->config_path);
	json_kv_str(j, "state", p->stop.stopping ? "draining" : "running");
	json_kv_uint(j, "policy_generation", gwlink_policy_generation(p->gw));
	json_kv_uint(j, "gateways_up", ps.up);
	json_kv_str(j, "active_gateway", ps.active);
	json_kv_uint(j, "link_window_depth", gwlink_outbox_depth(p->gw));
	json_kv_uint(j, "s2s_in_streams", p->s2s ? s2s_stream_count(p->s2s) : 0);
	json_kv_uint(j, "s2s_out_routes", p->s2s_out ? s2s_out_route_count(p->s2s_out) : 0);
	json_obj_end(j);
	return 0;
}

static void json_peer(void *arg, const struct gwlink_peer_info *pi)
{
	struct json *j = arg;
	json_obj_begin(j);
	json_kv_str(j, "node_id", pi->node_id);
	json_kv_uint(j, "priority", pi->priority);
	json_kv_str(j, "state", pi->active ? "active" : pi->up ? "standby" : "down");
	json_kv_uint(j, "session", pi->session_id);
	json_kv_uint(j, "connects", pi->connects);
	json_kv_uint(j, "peer_unacked", pi->peer_outbox_depth);
	json_obj_end(j);
}

static int cmd_link(void *arg, const struct ctl_req *req, struct json *j, char *err,
		    size_t errlen)
{
	struct proxy *p = arg;
	char addr[300];
	(void)req, (void)err, (void)errlen;
	snprintf(addr, sizeof addr, "%s:%u", p->cfg.link_listen.host, p->cfg.link_listen.port);
	json_obj_begin(j);
	json_kv_str(j, "role", "edge");
	json_kv_str(j, "node_id", p->cfg.node_id);
	json_kv_str(j, "listen", addr);
	json_kv_uint(j, "window", p->cfg.link.window);
	json_kv_uint(j, "window_depth", gwlink_outbox_depth(p->gw));
	json_kv_uint(j, "policy_generation", gwlink_policy_generation(p->gw));
	json_kv_uint(j, "frames_in", link_stats.frames_in);
	json_kv_uint(j, "frames_out", link_stats.frames_out);
	json_kv_uint(j, "duplicates", link_stats.dups_dropped);
	json_kv_uint(j, "resent", link_stats.resent);
	json_key(j, "peers");
	json_arr_begin(j);
	gwlink_foreach_peer(p->gw, json_peer, j);
	json_arr_end(j);
	json_obj_end(j);
	return 0;
}

static void json_session(void *arg, const struct s2s_session_info *si)
{
	struct json *j = arg;
	json_obj_begin(j);
	json_kv_uint(j, "id", si->id);
	json_kv_str(j, "dir", si->dir);
	json_kv_str(j, "local", si->local);
	json_kv_str(j, "peer", si->remote);
	json_kv_str(j, "addr", si->addr);
	json_kv_str(j, "state", si->state);
	json_kv_str(j, "auth", si->auth);
	json_kv_str(j, "tls", si->tls_version);
	json_kv_str(j, "cert", si->cert);
	json_kv_bool(j, "direct_tls", si->direct_tls);
	json_kv_bool(j, "sm", si->sm);
	json_kv_uint(j, "age_s", si->age_ms / 1000);
	json_kv_uint(j, "stanzas", si->stanzas);
	json_kv_uint(j, "queued", si->queued);
	json_obj_end(j);
}

static int cmd_sessions(void *arg, const struct ctl_req *req, struct json *j, char *err,
			size_t errlen)
{
	struct proxy *p = arg;
	(void)req, (void)err, (void)errlen;
	json_arr_begin(j);
	if (p->s2s)
		s2s_foreach_session(p->s2s, json_session, j);
	if (p->s2s_out)
		s2s_out_foreach_session(p->s2s_out, json_session, j);
	json_arr_end(j);
	return 0;
}

static int cmd_reload(void *arg, const struct ctl_req *req, struct json *j, char *err,
		      size_t errlen)
{
	struct proxy *p = arg;
	(void)req;
	log_info(0, "ctl_reload", "config=%s", p->config_path);
	int rc = reload(p, err, errlen);
	if (rc)
		return rc;
	json_obj_begin(j);
	json_kv_bool(j, "reloaded", true);
	json_kv_str(j, "config", p->config_path);
	json_obj_end(j);
	return 0;
}

static int cmd_drain(void *arg, const struct ctl_req *req, struct json *j, char *err,
		     size_t errlen)
{
	struct proxy *p = arg;
	(void)req;
	if (p->stop.stopping) {
		snprintf(err, errlen, "already draining");
		return PE_STATE;
	}
	log_info(0, "ctl_drain", "deadline_ms=%d", 10000);
	on_term(p);
	json_obj_begin(j);
	json_kv_bool(j, "draining", true);
	json_kv_uint(j, "deadline_ms", 10000);
	json_obj_end(j);
	return 0;
}

/* The snapshot this edge holds, as it enforces it (parleyctl partners). */
static int cmd_partners(void *arg, const struct ctl_req *req, struct json *j, char *err,
			size_t errlen)
{
	static const char *const neg[] = {"?", "required", "optional", "not-supported"};
	static const char *const type[] = {"?", "federated", "public-verified",
					   "public-unverified"};
	struct proxy *p = arg;
	if (req->argc && strcmp(req->argv[0], "list") != 0) {
		snprintf(err, errlen, "the edge only shows the partners it holds (partners [list]); "
				      "change them on the gateway");
		return PE_INVAL;
	}
	json_obj_begin(j);
	json_kv_uint(j, "generation", p->pol ? p->pol->generation : 0);
	json_key(j, "served");
	json_arr_begin(j);
	for (size_t i = 0; p->pol && i < p->pol->nserved; i++)
		json_str(j, p->pol->served[i]);
	json_arr_end(j);
	json_key(j, "partners");
	json_arr_begin(j);
	for (size_t i = 0; p->pol && i < p->pol->npartners; i++) {
		const struct partner *pt = &p->pol->partners[i];
		char proxy[300] = "";
		if (pt->proxy_host)
			snprintf(proxy, sizeof proxy, "%s:%u", pt->proxy_host, pt->proxy_port);
		json_obj_begin(j);
		json_kv_str(j, "domain", pt->domain);
		json_kv_str(j, "type", type[pt->type <= 3 ? pt->type : 0]);
		json_kv_str(j, "tls", neg[pt->tls <= 3 ? pt->tls : 0]);
		json_kv_str(j, "sasl", neg[pt->sasl <= 3 ? pt->sasl : 0]);
		json_kv_bool(j, "dialback", pt->dialback);
		json_kv_bool(j, "keepalive", pt->keepalive);
		json_kv_uint(j, "connection_limit", pt->connection_limit);
		json_kv_str(j, "proxy", proxy);
		json_key(j, "additional_domains");
		json_arr_begin(j);
		for (size_t k = 0; k < pt->nadditional; k++)
			json_str(j, pt->additional[k]);
		json_arr_end(j);
		json_obj_end(j);
	}
	json_arr_end(j);
	json_obj_end(j);
	return 0;
}

static void ops_setup(struct proxy *p)
{
	struct ctl *c = p->ops.ctl;
	ctl_register(c, "status", "the daemon's state at a glance", cmd_status, p);
	ctl_register(c, "link", "the link to the gateways: window, counters, peers", cmd_link, p);
	ctl_register(c, "sessions",
		     "S2S streams: peer, direction, auth method, TLS, certificate, age, stanzas",
		     cmd_sessions, p);
	ctl_register(c, "reload", "reload the configuration and certificates (as SIGHUP)",
		     cmd_reload, p);
	ctl_register(c, "drain", "stop gracefully (as SIGTERM)", cmd_drain, p);
	ctl_register(c, "partners", "the federation policy this edge holds (from the gateway)",
		     cmd_partners, p);
	metrics_setup(p);
}

int main(int argc, char **argv)
{
	struct daemon_args args;
	struct proxy p;
	memset(&p, 0, sizeof p);
	if (daemon_parse_args(argc, argv, "parley-proxy", &args))
		return 2;
	if (args.help_config) {
		conf_print_help(proxy_options, N_OPTIONS, stdout);
		return 0;
	}
	if (daemon_load("parley-proxy", proxy_options, N_OPTIONS, NULL, 0, &p.cfg, args.config))
		return 1;
	char cerr[256];
	if (ctl_conf_check(&p.cfg.control, cerr, sizeof cerr) != 0) {
		fprintf(stderr, "parley-proxy: %s: %s\n", args.config, cerr);
		conf_free(proxy_options, N_OPTIONS, &p.cfg);
		return 1;
	}
	if (args.check_config) {
		printf("parley-proxy: %s: configuration OK\n", args.config);
		conf_free(proxy_options, N_OPTIONS, &p.cfg);
		return 0;
	}
	log_init("parley-proxy", (enum log_level)p.cfg.log_level);
	p.config_path = args.config;
	p.loop = uv_default_loop();
	ops_init(&p.ops, p.loop, "parley-proxy", metrics_collect, &p);
	ops_setup(&p);

	struct gwlink_opts go = {
		.node_id = p.cfg.node_id,
		.listen_host = p.cfg.link_listen.host,
		.listen_port = p.cfg.link_listen.port,
		.conf = &p.cfg.link,
		.source_frames = p.cfg.test_source_frames,
		.source_body_bytes = (uint32_t)p.cfg.test_source_body,
		.on_policy = hook_policy,
		.on_room = hook_room,
		.on_acked = hook_acked,
		.on_stanza = hook_stanza,
		.hook_arg = &p,
	};
	struct s2s_out_hooks oh = {.on_delivered = out_delivered, .on_bounce = out_bounce,
				   .arg = &p};
	int rc = 0;
	if (s2s_out_start(p.loop, &p.cfg.s2s, &p.cfg.s2s_out, &oh, &p.s2s_out) != 0 ||
	    gwlink_start(p.loop, &go, &p.gw) != 0 ||
	    s2s_start(p.loop, &p.cfg.s2s, gwlink_out(p.gw), &p.s2s) != 0) {
		rc = 1;
		goto out;
	}
	s2s_set_dialback(p.s2s, p.s2s_out, s2s_out_dialback(p.s2s_out));
	ops_listen(&p.ops, &p.cfg.control);
	struct sig_handlers sh = {.on_term = on_term, .on_hup = on_hup, .arg = &p};
	sig_start(p.loop, &p.sig, &sh);
	log_info(0, "started", "config=%s pid=%ld", args.config, (long)getpid());
	uv_run(p.loop, UV_RUN_DEFAULT);
	log_info(0, "stopped",
		 "frames_in=%llu frames_out=%llu dups_dropped=%llu resent=%llu peak_rss_kib=%ld",
		 (unsigned long long)link_stats.frames_in, (unsigned long long)link_stats.frames_out,
		 (unsigned long long)link_stats.dups_dropped, (unsigned long long)link_stats.resent,
		 daemon_peak_rss_kib());
out:
	if (p.s2s_out)
		s2s_out_stop(p.s2s_out); /* already done on a signal; not on a failed start */
	daemon_close_all(p.loop);
	s2s_free(p.s2s);
	gwlink_free(p.gw);
	s2s_out_free(p.s2s_out);
	ops_free(&p.ops);
	if (p.pol)
		policy_unref(p.pol);
	for (struct held *h = p.held, *next; h; h = next) {
		next = h->next; /* never released: the gateway sends them again to the next edge */
		free(h);
	}
	uv_loop_close(p.loop);
	conf_free(proxy_options, N_OPTIONS, &p.cfg);
	return rc;
}
