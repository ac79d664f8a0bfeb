/* parley-proxy: argv, config, loop and signals. Protocol work lives in the modules. */
#include "daemon.h"
#include "err.h"
#include "gwlink.h"
#include "link.h"
#include "link_conf.h"
#include "log.h"
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
	{"test", "source_frames", CONF_UINT, 0, 100000000, "0", offsetof(PC, test_source_frames),
	 false, false, NULL, "test only: send this many stanza frames to the active gateway"},
	{"test", "source_body_bytes", CONF_UINT, 0, 65536, "200",
	 offsetof(PC, test_source_body), false, false, NULL,
	 "test only: body size of the source's frames"},
};
#undef PC
#define N_OPTIONS (sizeof proxy_options / sizeof proxy_options[0])

struct proxy {
	uv_loop_t *loop;
	const char *config_path;
	struct proxy_config cfg;
	struct gwlink *gw;
	struct s2s *s2s;
	struct s2s_out *s2s_out;
	struct sig sig;
	struct daemon_stop stop;
};

static void on_term(void *arg)
{
	struct proxy *p = arg;
	daemon_begin_stop(&p->stop, p->loop, &p->sig, 10000);
	if (p->s2s)
		s2s_stop(p->s2s);
	if (p->s2s_out)
		s2s_out_stop(p->s2s_out);
	gwlink_stop(p->gw);
}

static void on_hup(void *arg)
{
	struct proxy *p = arg;
	struct proxy_config next;
	char err[1024];
	if (conf_load(proxy_options, N_OPTIONS, &next, p->config_path, err, sizeof err) != 0) {
		log_error(0, "reload_refused", "err=\"%s\"", err);
		return;
	}
	if (conf_diff_nonreloadable(proxy_options, N_OPTIONS, &p->cfg, &next, err, sizeof err)) {
		log_error(0, "reload_refused", "err=\"%s\"", err);
		conf_free(proxy_options, N_OPTIONS, &next);
		return;
	}
	if (gwlink_reload_tls(p->gw, &next.link) != 0) {
		conf_free(proxy_options, N_OPTIONS, &next);
		return;
	}
	log_set_level((enum log_level)next.log_level);
	/* Sessions hold pointers into the old config's link settings; those are non-reloadable
	 * or copied, so the old strings stay valid until exit. */
	log_info(0, "reload", "config=%s", p->config_path);
	conf_free(proxy_options, N_OPTIONS, &next);
}

static void hook_policy(void *arg, const Parley__Link__PolicySnapshot *snap)
{
	struct proxy *p = arg;
	if (p->s2s)
		s2s_set_policy(p->s2s, snap);
	if (p->s2s_out)
		s2s_out_set_policy(p->s2s_out, snap);
}

static void hook_stanza(void *arg, struct link_peer *lp, uint64_t seq,
			const Parley__Link__Stanza *st)
{
	struct proxy *p = arg;
	struct s2s_out_ticket t = {.owner = lp, .seq = seq, .ref = st->ref};
	s2s_out_submit(p->s2s_out, &t, st);
}

static void out_delivered(void *arg, const struct s2s_out_ticket *t)
{
	struct proxy *p = arg;
	gwlink_delivered(p->gw, t->owner, t->seq, t->ref);
}

static void out_bounce(void *arg, const struct s2s_out_ticket *t, const char *type,
		       const char *cond, const char *text)
{
	struct proxy *p = arg;
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
	if (args.check_config) {
		printf("parley-proxy: %s: configuration OK\n", args.config);
		conf_free(proxy_options, N_OPTIONS, &p.cfg);
		return 0;
	}
	log_init("parley-proxy", (enum log_level)p.cfg.log_level);
	p.config_path = args.config;
	p.loop = uv_default_loop();

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
	uv_loop_close(p.loop);
	conf_free(proxy_options, N_OPTIONS, &p.cfg);
	return rc;
}
