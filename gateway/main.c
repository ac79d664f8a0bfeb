/* parley-gateway: argv, config, loop and signals. Protocol work lives in the modules. */
#include "daemon.h"
#include "edgelink.h"
#include "err.h"
#include "link.h"
#include "link_conf.h"
#include "log.h"
#include "sig.h"
#include "testsink.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};

struct gateway_config {
	char *node_id;
	int log_level;
	struct conf_strlist edges;
	uint64_t priority;
	uint64_t reconnect_min_ms;
	uint64_t reconnect_max_ms;
	struct link_conf link;
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
	{"test", "sink_file", CONF_PATH, 0, 0, NULL, offsetof(GC, test_sink_file), false, false,
	 NULL, "test only: record the ref of every link stanza in this file"},
	{"test", "sink_expect", CONF_UINT, 0, 1000000000, "0", offsetof(GC, test_sink_expect),
	 false, false, NULL, "test only: log sink_done with the rate after this many stanzas"},
};
#undef GC
#define N_OPTIONS (sizeof gateway_options / sizeof gateway_options[0])

struct gateway {
	uv_loop_t *loop;
	const char *config_path;
	struct gateway_config cfg;
	struct edgelink *edges;
	struct testsink *sink;
	struct sig sig;
	uv_timer_t stop_timer;
	bool stopping;
};

static void on_stop_timeout(uv_timer_t *t)
{
	log_warn(0, "shutdown_forced", "reason=\"drain deadline passed\"");
	uv_stop(t->loop);
}

static void on_term(void *arg)
{
	struct gateway *g = arg;
	if (g->stopping) {
		log_warn(0, "shutdown_forced", "reason=\"second signal\"");
		uv_stop(g->loop);
		return;
	}
	g->stopping = true;
	log_info(0, "shutdown", "reason=signal");
	edgelink_stop(g->edges);
	sig_stop(&g->sig);
	uv_timer_init(g->loop, &g->stop_timer);
	uv_timer_start(&g->stop_timer, on_stop_timeout, 5000, 0);
	uv_unref((uv_handle_t *)&g->stop_timer);
}

static void on_hup(void *arg)
{
	struct gateway *g = arg;
	struct gateway_config next;
	char err[1024];
	if (conf_load(gateway_options, N_OPTIONS, &next, g->config_path, err, sizeof err) != 0) {
		log_error(0, "reload_refused", "err=\"%s\"", err);
		return;
	}
	if (conf_diff_nonreloadable(gateway_options, N_OPTIONS, &g->cfg, &next, err, sizeof err) ||
	    edgelink_reload_tls(g->edges, &next.link) != 0) {
		log_error(0, "reload_refused", "err=\"%s\"", err);
		conf_free(gateway_options, N_OPTIONS, &next);
		return;
	}
	log_set_level((enum log_level)next.log_level);
	log_info(0, "reload", "config=%s", g->config_path);
	conf_free(gateway_options, N_OPTIONS, &next);
}

/* Until translation exists, a frame without a test sink is accounted and acknowledged. */
static void on_frame_plain(void *arg, struct link_peer *peer, uint64_t seq,
			   const Parley__Link__Frame *f)
{
	(void)arg;
	log_debug(0, "link_frame", "edge=%s seq=%llu kind=%d", peer->node_id,
		  (unsigned long long)seq, (int)f->body_case);
	link_peer_processed(peer, seq);
}

int main(int argc, char **argv)
{
	struct daemon_args args;
	struct gateway g;
	memset(&g, 0, sizeof g);
	if (daemon_parse_args(argc, argv, "parley-gateway", &args))
		return 2;
	if (args.help_config) {
		conf_print_help(gateway_options, N_OPTIONS, stdout);
		return 0;
	}
	if (daemon_load("parley-gateway", gateway_options, N_OPTIONS, &g.cfg, args.config))
		return 1;
	if (args.check_config) {
		printf("parley-gateway: %s: configuration OK\n", args.config);
		conf_free(gateway_options, N_OPTIONS, &g.cfg);
		return 0;
	}
	log_init("parley-gateway", (enum log_level)g.cfg.log_level);
	g.config_path = args.config;
	g.loop = uv_default_loop();

	struct edgelink_opts eo = {
		.node_id = g.cfg.node_id,
		.priority = (uint32_t)g.cfg.priority,
		.edges = (const char *const *)g.cfg.edges.v,
		.nedges = g.cfg.edges.n,
		.conf = &g.cfg.link,
		.reconnect_min_ms = g.cfg.reconnect_min_ms,
		.reconnect_max_ms = g.cfg.reconnect_max_ms,
		.on_frame = on_frame_plain,
	};
	if (g.cfg.test_sink_file || g.cfg.test_sink_expect) {
		g.sink = testsink_new(g.cfg.test_sink_file, g.cfg.test_sink_expect);
		if (!g.sink)
			return 1;
		eo.on_frame = testsink_frame;
		eo.on_batch_end = testsink_batch_end;
		eo.arg = g.sink;
	}
	int rc = 0;
	if (edgelink_start(g.loop, &eo, &g.edges) != 0) {
		rc = 1;
		goto out;
	}
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
	daemon_close_all(g.loop);
	edgelink_free(g.edges);
	testsink_free(g.sink);
	uv_loop_close(g.loop);
	conf_free(gateway_options, N_OPTIONS, &g.cfg);
	return rc;
}
