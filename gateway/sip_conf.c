/* [sip] settings → struct sip_cfg. */
#include "sip_conf.h"

#include "err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char **null_terminated(const struct conf_strlist *l)
{
	if (!l->n)
		return NULL;
	const char **v = calloc(l->n + 1, sizeof *v);
	if (!v)
		abort();
	for (size_t i = 0; i < l->n; i++)
		v[i] = l->v[i];
	return v;
}

bool sip_conf_enabled(const struct sip_conf *c)
{
	return c->listen_udp || c->listen_tcp || c->listen_tls;
}

int sip_conf_to_cfg(struct sip_conf *c, struct sip_cfg *cfg, char *err, size_t errlen)
{
	memset(cfg, 0, sizeof *cfg);
	if (!c->pool.n && !c->pool_domain) {
		snprintf(err, errlen, "[sip] needs pool (repeat for each member) or pool_domain");
		return PE_CONFIG;
	}
	sip_conf_release(c);
	c->pool_v = null_terminated(&c->pool);
	c->dns_v = null_terminated(&c->dns);
	cfg->listen_udp = c->listen_udp;
	cfg->listen_tcp = c->listen_tcp;
	cfg->listen_tls = c->listen_tls;
	cfg->advertise = c->advertise;
	cfg->pool = c->pool_v;
	cfg->pool_domain = c->pool_domain;
	cfg->pool_sips = c->pool_sips;
	cfg->dns_servers = c->dns_v;
	cfg->tls_ca = c->tls_ca;
	cfg->tls_cert = c->tls_cert;
	cfg->tls_key = c->tls_key;
	cfg->t1_ms = (uint32_t)c->t1_ms;
	cfg->t2_ms = (uint32_t)c->t2_ms;
	cfg->t4_ms = (uint32_t)c->t4_ms;
	cfg->keepalive_ms = (uint32_t)c->keepalive_ms;
	cfg->idle_ms = (uint32_t)c->idle_ms;
	cfg->connect_ms = (uint32_t)c->connect_ms;
	cfg->health_ms = (uint32_t)c->health_ms;
	cfg->max_header = c->max_header;
	cfg->max_body = c->max_body;
	cfg->fixed_answer = (int)c->fixed_answer;
	return 0;
}

void sip_conf_release(struct sip_conf *c)
{
	free(c->pool_v);
	free(c->dns_v);
	c->pool_v = c->dns_v = NULL;
}
