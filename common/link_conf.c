/* Link settings shared by both daemons. The link is ours at both ends, so it is TLS 1.3
 * only and both sides present certificates. */
#include "link_conf.h"

#include "tls.h"

#include <string.h>

void link_cfg_from_conf(struct link_cfg *cfg, const struct link_conf *conf, const char *node_id,
			int role, uint32_t priority)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->node_id = node_id;
	cfg->role = role;
	cfg->priority = priority;
	cfg->window = (uint32_t)conf->window;
	cfg->window_bytes = conf->window_bytes;
	cfg->max_frame = conf->max_frame;
	cfg->ping_ms = (uint32_t)conf->ping_ms;
	cfg->dead_ms = (uint32_t)conf->dead_ms;
	cfg->hello_ms = (uint32_t)conf->hello_ms;
	cfg->pinned = (const char *const *)conf->peer_name.v;
	cfg->npinned = conf->peer_name.n;
}

static void link_tls_cfg(struct tls_ctx_cfg *t, bool server, const struct link_conf *conf)
{
	memset(t, 0, sizeof *t);
	t->ca_file = conf->ca;
	t->cert_file = conf->cert;
	t->key_file = conf->key;
	t->min_version = TLS1_3_VERSION;
	t->max_version = TLS1_3_VERSION;
	t->require_peer_cert = server;
}

struct tls_ctx *link_tls_ctx_new(bool server, const struct link_conf *conf, char *err,
				 size_t errlen)
{
	struct tls_ctx_cfg t;
	link_tls_cfg(&t, server, conf);
	return tls_ctx_new(server, &t, err, errlen);
}

int link_tls_ctx_reload(struct tls_ctx *ctx, bool server, const struct link_conf *conf,
			char *err, size_t errlen)
{
	struct tls_ctx_cfg t;
	link_tls_cfg(&t, server, conf);
	return tls_ctx_reload(ctx, &t, err, errlen);
}
