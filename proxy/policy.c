/* Policy lookups are linear over a handful of partners, which is what deployments have;
 * a hash belongs here if someone federates with thousands. */
#include "policy.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static char *lower_dup(const char *s)
{
	char *d = strdup(s ? s : "");
	if (!d)
		abort();
	for (char *c = d; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	return d;
}

static bool eq(const char *a, const char *b, size_t blen)
{
	return strlen(a) == blen && strncasecmp(a, b, blen) == 0;
}

struct policy *policy_from_snapshot(const Parley__Link__PolicySnapshot *s)
{
	struct policy *p = calloc(1, sizeof *p);
	if (!p)
		abort();
	p->refs = 1;
	p->generation = s->generation;
	p->served = calloc(s->n_served_domains + 1, sizeof *p->served);
	for (size_t i = 0; i < s->n_served_domains; i++)
		p->served[i] = lower_dup(s->served_domains[i]);
	p->nserved = s->n_served_domains;
	p->partners = calloc(s->n_partners + 1, sizeof *p->partners);
	for (size_t i = 0; i < s->n_partners; i++) {
		const Parley__Link__Partner *sp = s->partners[i];
		struct partner *d = &p->partners[i];
		d->domain = lower_dup(sp->domain);
		d->additional = calloc(sp->n_additional_domains + 1, sizeof *d->additional);
		for (size_t k = 0; k < sp->n_additional_domains; k++)
			d->additional[k] = lower_dup(sp->additional_domains[k]);
		d->nadditional = sp->n_additional_domains;
		d->type = (enum partner_type)sp->type;
		d->tls = (enum neg)sp->tls;
		d->sasl = (enum neg)sp->sasl;
		d->dialback = sp->dialback;
		d->keepalive = sp->keepalive;
		d->connection_limit = sp->connection_limit;
		d->proxy_host = sp->proxy_host ? lower_dup(sp->proxy_host) : NULL;
		d->proxy_port = (uint16_t)sp->proxy_port;
	}
	p->npartners = s->n_partners;
	const Parley__Link__Limits *l = s->limits;
	const Parley__Link__Timers *t = s->timers;
	p->connection_limit = l && l->has_connection_limit ? l->connection_limit : 1000;
	p->per_partner_limit = l && l->has_per_partner_limit ? l->per_partner_limit : 20;
	p->max_stanza_bytes = l && l->has_max_stanza_bytes ? l->max_stanza_bytes : 262144;
	p->preauth_stanza_bytes = l && l->has_preauth_stanza_bytes ? l->preauth_stanza_bytes : 8192;
	p->keepalive_s = t && t->has_keepalive_s ? t->keepalive_s : 300;
	p->establishment_s = t && t->has_establishment_s ? t->establishment_s : 60;
	p->inactivity_s = t && t->has_inactivity_s ? t->inactivity_s : 600;
	p->log_bodies = s->has_log_message_bodies && s->log_message_bodies;
	return p;
}

struct policy *policy_ref(struct policy *p)
{
	if (p)
		p->refs++;
	return p;
}

void policy_unref(struct policy *p)
{
	if (!p || --p->refs > 0)
		return;
	for (size_t i = 0; i < p->nserved; i++)
		free(p->served[i]);
	free(p->served);
	for (size_t i = 0; i < p->npartners; i++) {
		struct partner *d = &p->partners[i];
		free(d->domain);
		for (size_t k = 0; k < d->nadditional; k++)
			free(d->additional[k]);
		free(d->additional);
		free(d->proxy_host);
	}
	free(p->partners);
	free(p);
}

bool policy_serves(const struct policy *p, const char *domain, size_t len)
{
	for (size_t i = 0; p && i < p->nserved; i++)
		if (eq(p->served[i], domain, len))
			return true;
	return false;
}

const struct partner *policy_partner(const struct policy *p, const char *domain, size_t len)
{
	for (size_t i = 0; p && i < p->npartners; i++) {
		const struct partner *d = &p->partners[i];
		if (eq(d->domain, domain, len))
			return d;
		for (size_t k = 0; k < d->nadditional; k++)
			if (eq(d->additional[k], domain, len))
				return d;
	}
	return NULL;
}
