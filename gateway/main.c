/* parley-gateway: argv, config, loop and signals. Protocol work lives in the modules. */
#include "daemon.h"
#include "edgelink.h"
#include "err.h"
#include "gwctl.h"
#include "link.h"
#include "link_conf.h"
#include "log.h"
#include "ops.h"
#include "policy.h"
#include "sig.h"
#include "sip_conf.h"
#include "sip_stack.h"
#include "testsink.h"
#include "xlate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};

struct gateway_config {
	char *node_id;
	int log_level;
	struct conf_strlist edges;
	uint64_t priority;
	uint64_t reconnect_min_ms;
	uint64_t reconnect_max_ms;
	struct link_conf link;
	struct gw_policy_conf policy;
	struct sip_conf sip;
	struct xlate_conf xlate;
	struct ctl_conf control;
	char *test_sink_file;
	uint64_t test_sink_expect;
};

#define GC struct gateway_config
static const struct conf_option gateway_options[] = {
	{"general", "node_id", CONF_STRING, 1, 100, "gateway", offsetof(GC, node_id), false, false,
	 NULL, "this gateway's name on the link"},
	{"general", "log_level", CONF_ENUM, 0, 0, "info", offsetof(GC, log_level), true, false,
	 log_levels, "error, warn, info or debug"},
	{"link", "edge", CONF_STRLIST, 3, 300, NULL, offsetof(GC, edges), false, true, NULL,
	 "an edge proxy's internal address, host:port (repeat for each edge)"},
	{"link", "priority", CONF_UINT, 0, 1000, "10", offsetof(GC, priority), false, false, NULL,
	 "standby order: the connected gateway with the lowest value is active"},
	{"link", "reconnect_min", CONF_DURATION_MS, 10, 60000, "100ms",
	 offsetof(GC, reconnect_min_ms), false, false, NULL, "first reconnect delay"},
	{"link", "reconnect_max", CONF_DURATION_MS, 100, 600000, "10s",
	 offsetof(GC, reconnect_max_ms), false, false, NULL, "longest reconnect delay"},
	LINK_CONF_OPTIONS(GC, link),
	GW_POLICY_OPTIONS(GC, policy),
	SIP_CONF_OPTIONS(GC, sip),
	XLATE_CONF_OPTIONS(GC, xlate),
	CTL_CONF_OPTIONS(GC, control, "/run/parley/gateway.sock", "127.0.0.1:9470"),
	{"test", "sink_file", CONF_PATH, 0, 0, NULL, offsetof(GC, test_sink_file), false, false,
	 NULL, "test only: record the ref of every link stanza in this file"},
	{"test", "sink_expect", CONF_UINT, 0, 1000000000, "0", offsetof(GC, test_sink_expect),
	 false, false, NULL, "test only: log sink_done with the rate after this many stanzas"},
};
static const struct conf_multi gateway_multi[] = {GW_POLICY_MULTI(GC, policy)};
#undef GC
#define N_OPTIONS (sizeof gateway_options / sizeof gateway_options[0])
#define N_MULTI (sizeof gateway_multi / sizeof gateway_multi[0])

struct gateway {
	uv_loop_t *loop;
	const char *config_path;
	struct gateway_config cfg;
	struct edgelink *edges;
	struct testsink *sink;
	Parley__Link__PolicySnapshot *snap;
	struct sip_stack *sip;
	struct xlate *xlate;
	struct sig sig;
	struct daemon_stop stop;
	struct ops ops;	    /* control socket and metrics endpoint */
	struct gwctl *gwctl; /* this daemon's commands and metrics */
};

static void on_term(void *arg)
{
	struct gateway *g = arg;
	daemon_begin_stop(&g->stop, g->loop, &g->sig, 10000);
	ops_stop(&g->ops);
	edgelink_stop(g->edges);
	xlate_free(g->xlate);
	g->xlate = NULL;
	sip_stack_free(g->sip);
	g->sip = NULL;
}

static void send_policy(struct gateway *g, struct link_out *out)
{
	Parley__Link__Frame f = PARLEY__LINK__FRAME__INIT;
	f.body_case = PARLEY__LINK__FRAME__BODY_POLICY;
	f.policy = g->snap;
	if (out) {
		int r = link_out_send(out, &f);
		if (r)
			log_warn(0, "policy_send", "err=\"%s\"", pe_strerror(r));
	} else {
		edgelink_broadcast(g->edges, &f);
	}
}

static void on_edge_up(void *arg, struct link_out *out)
{
	send_policy(arg, out);
}

/* Loads and checks a config; on error prints "FILE:LINE: message" into err. */
static int load_config(const char *path, struct gateway_config *c, char *err, size_t errlen)
{
	if (conf_load_ex(gateway_options, N_OPTIONS, gateway_multi, N_MULTI, c, path, err,
			 errlen) != 0)
		return PE_CONFIG;
	if (gw_policy_check_file(&c->policy, path, err, errlen) != 0) {
		conf_free_ex(gateway_options, N_OPTIONS, gateway_multi, N_MULTI, c);
		return PE_CONFIG;
	}
	return 0;
}

/* The snapshot of pc merged with the partners managed with parleyctl (NULL: none), or NULL
 * with gw_policy_check's message in err. */
static Parley__Link__PolicySnapshot *build_policy(const struct gw_policy_conf *pc,
						  const struct gw_policy_conf *managed, char *err,
						  size_t errlen)
{
	struct gw_policy_conf m;
	Parley__Link__PolicySnapshot *snap = NULL;
	gw_policy_merge(pc, managed, &m);
	if (gw_policy_check(&m, err, errlen) == 0)
		snap = gw_policy_snapshot(&m);
	gw_policy_merge_release(&m);
	return snap;
}

static void install_policy(struct gateway *g, Parley__Link__PolicySnapshot *snap)
{
	if (g->xlate)
		xlate_set_policy(g->xlate, snap);
	gw_policy_snapshot_free(g->snap);
	g->snap = snap;
	send_policy(g, NULL);
}

/* gwctl's apply_policy: partners added, changed or removed with parleyctl. */
static int apply_managed(void *arg, const struct gw_policy_conf *managed, char *err,
			 size_t errlen)
{
	struct gateway *g = arg;
	Parley__Link__PolicySnapshot *snap = build_policy(&g->cfg.policy, managed, err, errlen);
	if (!snap)
		return PE_CONFIG;
	install_policy(g, snap);
	log_info(0, "policy_pushed", "why=parleyctl policy_generation=%llu partners=%zu",
		 (unsigned long long)snap->generation, snap->n_partners);
	return 0;
}

/* SIGHUP and parleyctl reload. Returns 0, or PE_CONFIG with the reason in err (the old
 * configuration stays in force). */
static int reload(struct gateway *g, char *err, size_t errlen)
{
	struct gateway_config next;
	if (load_config(g->config_path, &next, err, errlen) != 0) {
		log_error(0, "reload_refused", "err=\"%s\"", err);
		return PE_CONFIG;
	}
	int bad = conf_diff_nonreloadable_ex(gateway_options, N_OPTIONS, gateway_multi, N_MULTI,
					     &g->cfg, &next, err, errlen);
	if (!bad && edgelink_reload_tls(g->edges, &next.link) != 0) {
		snprintf(err, errlen, "link certificates could not be loaded (see the log)");
		bad = PE_CONFIG;
	}
	if (bad) {
		log_error(0, "reload_refused", "err=\"%s\"", err);
		conf_free_ex(gateway_options, N_OPTIONS, gateway_multi, N_MULTI, &next);
		return PE_CONFIG;
	}
	/* The partners added with parleyctl must still fit next to the new file's. */
	char why[1024];
	Parley__Link__PolicySnapshot *snap =
	    build_policy(&next.policy, g->gwctl ? gwctl_managed(g->gwctl) : NULL, why, sizeof why);
	if (!snap) {
		snprintf(err, errlen, "%s: %s (with the partners added by parleyctl)",
			 g->config_path, why);
		log_error(0, "reload_refused", "err=\"%s\"", err);
		conf_free_ex(gateway_options, N_OPTIONS, gateway_multi, N_MULTI, &next);
		return PE_CONFIG;
	}
	/* The policy config is all reloadable; the translator reads per-user access through
	 * &g->cfg.policy, so the new one moves in there and the old one is freed with next. */
	struct gw_policy_conf old = g->cfg.policy;
	g->cfg.policy = next.policy;
	next.policy = old;
	install_policy(g, snap);
	log_set_level((enum log_level)next.log_level);
	log_info(0, "reload", "config=%s policy_generation=%llu", g->config_path,
		 (unsigned long long)g->snap->generation);
	conf_free_ex(gateway_options, N_OPTIONS, gateway_multi, N_MULTI, &next);
	return 0;
}

static void on_hup(void *arg)
{
	char err[1024];
	reload(arg, err, sizeof err);
}

static int gw_reload(void *arg, char *err, size_t errlen) { return reload(arg, err, errlen); }

/* Until translation exists, a frame without a test sink is accounted and acknowledged. */
static void on_frame(void *arg, struct link_peer *peer, uint64_t seq,
		     const Parley__Link__Frame *f)
{
	struct gateway *g = arg;
	gwctl_frame(g->gwctl, f);
	if (g->sink) {
		testsink_frame(g->sink, peer, seq, f);
		return;
	}
	if (g->xlate) {
		xlate_link_frame(g->xlate, peer, seq, f);
		return;
	}
	log_debug(0, "link_frame", "edge=%s seq=%llu kind=%d", peer->node_id,
		  (unsigned long long)seq, (int)f->body_case);
	link_peer_processed(peer, seq);
}

static void on_sip_request(void *arg, struct sip_stxn *st, struct sip_msg *req)
{
	struct gateway *g = arg;
	if (g->xlate)
		xlate_sip_request(g->xlate, st, req);
	else
		sip_stxn_reply(st, 503, "Starting");
}

static void on_batch_end(void *arg)
{
	struct gateway *g = arg;
	if (g->sink)
		testsink_batch_end(g->sink);
}

int main(int argc, char **argv)
{
	struct daemon_args args;
	struct gateway g;
	memset(&g, 0, sizeof g);
	if (daemon_parse_args(argc, argv, "parley-gateway", &args))
		return 2;
	if (args.help_config) {
		conf_print_help_ex(gateway_options, N_OPTIONS, gateway_multi, N_MULTI, stdout);
		return 0;
	}
	char err[1024];
	if (load_config(args.config, &g.cfg, err, sizeof err) != 0) {
		fprintf(stderr, "parley-gateway: %s\n", err);
		return 1;
	}
	if (ctl_conf_check(&g.cfg.control, err, sizeof err) != 0) {
		fprintf(stderr, "parley-gateway: %s: %s\n", args.config, err);
		conf_free_ex(gateway_options, N_OPTIONS, gateway_multi, N_MULTI, &g.cfg);
		return 1;
	}
	if (args.check_config) {
		printf("parley-gateway: %s: configuration OK\n", args.config);
		conf_free_ex(gateway_options, N_OPTIONS, gateway_multi, N_MULTI, &g.cfg);
		return 0;
	}
	log_init("parley-gateway", (enum log_level)g.cfg.log_level);
	g.config_path = args.config;
	g.loop = uv_default_loop();
	ops_init(&g.ops, g.loop, "parley-gateway", NULL, NULL); /* gwctl_new sets the collector */
	struct gwctl_ctx gx = {
	    .ops = &g.ops,
	    .node_id = g.cfg.node_id,
	    .config_path = g.config_path,
	    .edges = &g.edges,
	    .xlate = &g.xlate,
	    .sip = &g.sip,
	    .snap = (const Parley__Link__PolicySnapshot *const *)&g.snap,
	    .stopping = &g.stop.stopping,
	    .reload = gw_reload,
	    .drain = on_term,
	    .policy = &g.cfg.policy,
	    .apply_policy = apply_managed,
	    .arg = &g,
	};
	g.gwctl = gwctl_new(&gx);

	struct edgelink_opts eo = {
		.node_id = g.cfg.node_id,
		.priority = (uint32_t)g.cfg.priority,
		.edges = (const char *const *)g.cfg.edges.v,
		.nedges = g.cfg.edges.n,
		.conf = &g.cfg.link,
		.reconnect_min_ms = g.cfg.reconnect_min_ms,
		.reconnect_max_ms = g.cfg.reconnect_max_ms,
		.on_frame = on_frame,
		.on_batch_end = on_batch_end,
		.on_edge_up = on_edge_up,
		.arg = &g,
	};
	g.snap = gw_policy_snapshot(&g.cfg.policy);
	if (!g.snap)
		abort(); /* load_config checked it */
	if (g.cfg.test_sink_file || g.cfg.test_sink_expect) {
		g.sink = testsink_new(g.cfg.test_sink_file, g.cfg.test_sink_expect);
		if (!g.sink)
			return 1;
	}
	int rc = 0;
	if (edgelink_start(g.loop, &eo, &g.edges) != 0) {
		rc = 1;
		goto out;
	}
	if (sip_conf_enabled(&g.cfg.sip)) {
		struct sip_cfg sc;
		static const struct sip_stack_cbs sip_cbs = {.on_request = on_sip_request};
		if (sip_conf_to_cfg(&g.cfg.sip, &sc, err, sizeof err) != 0 ||
		    sip_stack_new(g.loop, &sc, &sip_cbs, &g, &g.sip, err, sizeof err) != 0) {
			log_error(0, "sip_start", "err=\"%s\"", err);
			rc = 1;
			goto out;
		}
		log_info(0, "sip_start", "udp=%d tcp=%d tls=%d", sip_stack_port(g.sip, SIP_PROTO_UDP),
			 sip_stack_port(g.sip, SIP_PROTO_TCP), sip_stack_port(g.sip, SIP_PROTO_TLS));
		if (xlate_new(g.loop, &g.cfg.xlate, g.sip, g.edges, &g.xlate, err, sizeof err) != 0) {
			log_error(0, "state_open", "err=\"%s\"", err);
			fprintf(stderr, "parley-gateway: %s\n", err);
			rc = 1;
			goto out;
		}
		xlate_set_policy(g.xlate, g.snap);
		xlate_set_access(g.xlate, &g.cfg.policy);
		gwctl_load_partners(g.gwctl); /* parleyctl's partners, from the store */
	}
	ops_listen(&g.ops, &g.cfg.control);
	struct sig_handlers sh = {.on_term = on_term, .on_hup = on_hup, .arg = &g};
	sig_start(g.loop, &g.sig, &sh);
	log_info(0, "started", "config=%s pid=%ld", args.config, (long)getpid());
	uv_run(g.loop, UV_RUN_DEFAULT);
	log_info(0, "stopped",
		 "frames_in=%llu frames_out=%llu dups_dropped=%llu resent=%llu peak_rss_kib=%ld",
		 (unsigned long long)link_stats.frames_in, (unsigned long long)link_stats.frames_out,
		 (unsigned long long)link_stats.dups_dropped, (unsigned long long)link_stats.resent,
		 daemon_peak_rss_kib());
out:
	xlate_free(g.xlate);
	sip_stack_free(g.sip);
	daemon_close_all(g.loop);
	edgelink_free(g.edges);
	sip_conf_release(&g.cfg.sip);
	testsink_free(g.sink);
	gw_policy_snapshot_free(g.snap);
	ops_free(&g.ops);
	gwctl_free(g.gwctl);
	uv_loop_close(g.loop);
	conf_free_ex(gateway_options, N_OPTIONS, gateway_multi, N_MULTI, &g.cfg);
	return rc;
}
