/* Federation policy: the gateway's [federation] and [partner "DOMAIN"] settings, their
 * cross-field rules, and the PolicySnapshot the edges enforce.
 *
 * The edge compares domains byte for byte after ASCII lower-casing, so everything that goes
 * into a snapshot is first brought to one form here: lower-case A-labels. Doing it on the
 * gateway keeps libidn off the DMZ host and means an operator's "Bücher.example" and a
 * partner's "xn--bcher-kva.example" are the same partner. */
#include "policy.h"

#include "err.h"
#include "jid.h"
#include "log.h"

#include <arpa/inet.h>
#include <idna.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

const char *const gw_partner_type_names[] = {"federated", "public-verified", "public-unverified",
					     NULL};
const char *const gw_neg_names[] = {"required", "optional", "not-supported", NULL};
const char *const gw_access_names[] = {"allow", "deny", NULL};

const struct conf_option gw_user_options[] = {
    {"", "xmpp", CONF_ENUM, 0, 0, NULL, offsetof(struct gw_user_conf, xmpp), true, true,
     gw_access_names, "allow or deny this user XMPP federation"},
};
_Static_assert(sizeof gw_user_options / sizeof gw_user_options[0] == GW_USER_N_OPTIONS,
	       "GW_USER_N_OPTIONS must count gw_user_options");

#define PC struct gw_partner_conf
const struct conf_option gw_partner_options[] = {
    {"", "type", CONF_ENUM, 0, 0, "public-unverified", offsetof(PC, type), true, false,
     gw_partner_type_names,
     "federated sees status notes; public-unverified reaches only users "
     "who added the contact"},
    {"", "tls", CONF_ENUM, 0, 0, "required", offsetof(PC, tls), true, false, gw_neg_names,
     "TLS negotiation with this partner"},
    {"", "sasl", CONF_ENUM, 0, 0, "required", offsetof(PC, sasl), true, false, gw_neg_names,
     "SASL EXTERNAL negotiation (needs TLS)"},
    {"", "dialback", CONF_BOOL, 0, 0, "true", offsetof(PC, dialback), true, false, NULL,
     "accept server dialback (XEP-0220)"},
    {"", "keepalive", CONF_BOOL, 0, 0, "true", offsetof(PC, keepalive), true, false, NULL,
     "send keep-alives on idle streams"},
    {"", "connection_limit", CONF_UINT, 0, 100000, "0", offsetof(PC, connection_limit), true, false,
     NULL, "most S2S connections with this partner; 0 = [federation] per_partner_limit"},
    {"", "proxy", CONF_HOSTPORT, 0, 0, NULL, offsetof(PC, proxy), true, false, NULL,
     "fixed proxy host:port for this partner, instead of SRV"},
    {"", "additional_domain", CONF_STRLIST, 1, 253, NULL, offsetof(PC, additional_domains), true,
     false, NULL, "a further domain this partner serves (repeat for several)"},
    {"", "description", CONF_STRING, 0, 1024, NULL, offsetof(PC, description), true, false, NULL,
     "free text"},
};
#undef PC
_Static_assert(sizeof gw_partner_options / sizeof gw_partner_options[0] == GW_PARTNER_N_OPTIONS,
	       "GW_PARTNER_N_OPTIONS must count gw_partner_options");

/* Snapshot allocations are small control allocations: failing them ends the process. */
static void *gw_policy__xalloc(void *p)
{
	if (!p) {
		fputs("parley: out of memory while building the federation policy\n", stderr);
		abort();
	}
	return p;
}

static char *gw_policy__xstrdup(const char *s)
{
	return gw_policy__xalloc(strdup(s));
}

__attribute__((format(printf, 3, 4))) static void gw_policy__why(char *why, size_t whylen,
								 const char *fmt, ...)
{
	va_list ap;
	if (!why || whylen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

/* Checks LDH labels in s (already lower-case ASCII, len bytes). Returns 0 or -1 with why. */
static int gw_policy__ldh(const char *s, size_t len, char *why, size_t whylen)
{
	size_t start = 0;
	bool digits_only = true;

	for (size_t i = 0; i <= len; i++) {
		if (i < len && s[i] != '.') {
			char ch = s[i];
			if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-')) {
				char esc[8];
				gw_policy__why(
				    why, whylen,
				    "'%s' is not a letter, digit or '-' (use A-labels or "
				    "UTF-8 for international names)",
				    log_escape(esc, sizeof esc, &s[i], 1));
				return -1;
			}
			continue;
		}
		size_t ll = i - start;
		if (ll == 0) {
			gw_policy__why(why, whylen, "empty label");
			return -1;
		}
		if (ll > 63) {
			gw_policy__why(why, whylen, "a label of %zu bytes, above the maximum 63",
				       ll);
			return -1;
		}
		if (s[start] == '-' || s[i - 1] == '-') {
			gw_policy__why(why, whylen, "a label starts or ends with '-'");
			return -1;
		}
		digits_only = true;
		for (size_t k = start; k < i; k++)
			digits_only = digits_only && s[k] >= '0' && s[k] <= '9';
		start = i + 1;
	}
	if (digits_only) {
		gw_policy__why(why, whylen,
			       "the last label is all digits (an IP address is not "
			       "a domain)");
		return -1;
	}
	return 0;
}

int gw_policy_domain(const char *domain, char *out, size_t cap, char *why, size_t whylen)
{
	const char *src = domain;
	char *idn = NULL;
	int ret = PE_INVAL;

	for (const char *p = domain; *p; p++) {
		if ((unsigned char)*p >= 0x80) {
			/* STD3 rules make libidn refuse what is not LDH after nameprep. */
			int r = idna_to_ascii_8z(domain, &idn, IDNA_USE_STD3_ASCII_RULES);
			if (r != IDNA_SUCCESS) {
				gw_policy__why(why, whylen, "IDNA conversion failed: %s",
					       r == IDNA_ICONV_ERROR ? "not valid UTF-8"
								     : idna_strerror(r));
				return PE_INVAL;
			}
			src = idn;
			break;
		}
	}
	size_t len = strlen(src);
	if (len == 0) {
		gw_policy__why(why, whylen, "empty domain");
		goto out;
	}
	if (src[len - 1] == '.') {
		gw_policy__why(why, whylen, "ends with a dot");
		goto out;
	}
	if (len > GW_DOMAIN_MAX) {
		gw_policy__why(why, whylen, "%zu bytes, above the maximum %d", len, GW_DOMAIN_MAX);
		goto out;
	}
	if (len >= cap) {
		gw_policy__why(why, whylen, "longer than the buffer");
		goto out;
	}
	for (size_t i = 0; i <= len; i++)
		out[i] = src[i] >= 'A' && src[i] <= 'Z' ? (char)(src[i] - 'A' + 'a') : src[i];
	if (gw_policy__ldh(out, len, why, whylen) < 0)
		goto out;
	ret = 0;
out:
	free(idn);
	return ret;
}

/* Where a domain of the policy was configured, for messages and duplicate checks. */
enum gw_policy__kind {
	KIND_SERVED,	 /* [federation] domain */
	KIND_PARTNER,	 /* a [partner "NAME"] header */
	KIND_ADDITIONAL, /* [partner "NAME"] additional_domain */
};

struct gw_policy__dom {
	char name[GW_DOMAIN_BUF]; /* gw_policy_domain's form */
	enum gw_policy__kind kind;
	size_t partner; /* KIND_PARTNER, KIND_ADDITIONAL: index into partners */
	size_t order;	/* position in the file's order: served first, then partner by partner */
};

struct gw_policy__check {
	const struct gw_policy_conf *c;
	char *err;
	size_t errlen;
	struct gw_policy__dom *doms;
	size_t ndoms;
};

__attribute__((format(printf, 2, 3))) static int gw_policy__fail(struct gw_policy__check *k,
								 const char *fmt, ...)
{
	va_list ap;
	if (k->err && k->errlen) {
		va_start(ap, fmt);
		vsnprintf(k->err, k->errlen, fmt, ap);
		va_end(ap);
	}
	return PE_CONFIG;
}

/* Writes `partner "NAME"` for messages, the name escaped. */
static const char *gw_policy__partner(const struct gw_policy_conf *c, size_t i, char *dst,
				      size_t cap)
{
	char esc[4 * GW_DOMAIN_MAX + 8];
	const char *name = c->partners.names[i];
	snprintf(dst, cap, "partner \"%s\"", log_escape(esc, sizeof esc, name, strlen(name)));
	return dst;
}

/* Writes the section and key a domain entry came from, as in "[partner \"x\"] proxy". */
static const char *gw_policy__where(const struct gw_policy__check *k,
				    const struct gw_policy__dom *d, char *dst, size_t cap)
{
	char sec[4 * GW_DOMAIN_MAX + 32];
	switch (d->kind) {
	case KIND_SERVED:
		snprintf(dst, cap, "[federation] domain");
		break;
	case KIND_PARTNER:
		snprintf(dst, cap, "[%s]", gw_policy__partner(k->c, d->partner, sec, sizeof sec));
		break;
	case KIND_ADDITIONAL:
		snprintf(dst, cap, "[%s] additional_domain",
			 gw_policy__partner(k->c, d->partner, sec, sizeof sec));
		break;
	}
	return dst;
}

/* Normalises raw into a new entry. Returns 0 or PE_CONFIG naming where it was configured. */
static int gw_policy__add(struct gw_policy__check *k, const char *raw, enum gw_policy__kind kind,
			  size_t partner)
{
	struct gw_policy__dom *d = &k->doms[k->ndoms];
	char why[160], where[1200], esc[4 * GW_DOMAIN_MAX + 8];

	d->kind = kind;
	d->partner = partner;
	d->order = k->ndoms;
	if (gw_policy_domain(raw, d->name, sizeof d->name, why, sizeof why) < 0) {
		gw_policy__where(k, d, where, sizeof where);
		if (kind == KIND_PARTNER)
			return gw_policy__fail(k, "%s: the name is not a valid domain: %s", where,
					       why);
		return gw_policy__fail(k, "%s: '%s' is not a valid domain: %s", where,
				       log_escape(esc, sizeof esc, raw, strlen(raw)), why);
	}
	k->ndoms++;
	return 0;
}

static int gw_policy__cmp(const void *a, const void *b)
{
	const struct gw_policy__dom *x = a, *y = b;
	int r = strcmp(x->name, y->name);
	if (r)
		return r;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Finds a domain given twice. Sorting makes this n log n for large partner lists; of all
 * clashes the one whose second occurrence comes first in the file is reported. */
static int gw_policy__duplicates(struct gw_policy__check *k)
{
	const struct gw_policy__dom *first = NULL, *second = NULL;
	char a[1200], b[1200];

	qsort(k->doms, k->ndoms, sizeof *k->doms, gw_policy__cmp);
	for (size_t i = 1; i < k->ndoms; i++) {
		const struct gw_policy__dom *x = &k->doms[i - 1], *y = &k->doms[i];
		/* Only the first two of a run of equal names: they are its earliest. */
		if (strcmp(x->name, y->name) != 0 ||
		    (i >= 2 && strcmp(k->doms[i - 2].name, x->name) == 0))
			continue;
		if (!second || y->order < second->order) {
			first = x;
			second = y;
		}
	}
	if (!second)
		return 0;
	gw_policy__where(k, second, b, sizeof b);
	if (first->kind == KIND_SERVED && second->kind == KIND_SERVED)
		return gw_policy__fail(k, "%s: %s is given twice", b, second->name);
	if (first->kind == KIND_SERVED)
		return gw_policy__fail(k, "%s: %s is a served domain", b, second->name);
	if (first->partner == second->partner)
		return gw_policy__fail(k, "%s: %s is given twice for this partner", b,
				       second->name);
	gw_policy__where(k, first, a, sizeof a);
	return gw_policy__fail(k, "%s: %s is already a domain of %s", b, second->name, a);
}

static int gw_policy__seconds(struct gw_policy__check *k, const char *key, uint64_t ms)
{
	if (ms % 1000 == 0)
		return 0;
	return gw_policy__fail(k, "[federation] %s: %llums is not a whole number of seconds", key,
			       (unsigned long long)ms);
}

static int gw_policy__check_partner(struct gw_policy__check *k, size_t i)
{
	const struct gw_policy_conf *c = k->c;
	const struct gw_partner_conf *p = (const struct gw_partner_conf *)c->partners.items + i;
	char sec[4 * GW_DOMAIN_MAX + 32];

	gw_policy__partner(c, i, sec, sizeof sec);
	if (gw_policy__add(k, c->partners.names[i], KIND_PARTNER, i) < 0)
		return PE_CONFIG;
	for (size_t j = 0; j < p->additional_domains.n; j++)
		if (gw_policy__add(k, p->additional_domains.v[j], KIND_ADDITIONAL, i) < 0)
			return PE_CONFIG;
	if (p->proxy.host) {
		struct in6_addr a;
		char dom[GW_DOMAIN_BUF], why[160], esc[4 * GW_DOMAIN_MAX + 8];
		const char *h = p->proxy.host;
		if (inet_pton(AF_INET, h, &a) != 1 && inet_pton(AF_INET6, h, &a) != 1 &&
		    gw_policy_domain(h, dom, sizeof dom, why, sizeof why) < 0)
			return gw_policy__fail(k, "[%s] proxy: '%s' is not a valid host: %s", sec,
					       log_escape(esc, sizeof esc, h, strlen(h)), why);
	}
	if (p->tls == GW_NEG_NOT_SUPPORTED && p->sasl != GW_NEG_NOT_SUPPORTED)
		return gw_policy__fail(k, "[%s] sasl: sasl = %s needs TLS, but tls = not-supported",
				       sec, gw_neg_names[p->sasl]);
	if (p->sasl == GW_NEG_NOT_SUPPORTED && !p->dialback)
		return gw_policy__fail(k,
				       "[%s]: no way to authenticate: sasl = not-supported and "
				       "dialback = false",
				       sec);
	return 0;
}

/* The bare, normalised form of a user's jid into out (JID_BUF): a local part is required.
 * Returns 0 or PE_INVAL. */
static int gw_policy__bare(const char *jid, char *out, size_t cap)
{
	if (jid_normalize_bare(jid, out, cap) != 0 || !strchr(out, '@'))
		return PE_INVAL;
	return 0;
}

static int gw_policy__user_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* [user "JID"]: a bare JID with a local part, in a served domain, each user once. */
static int gw_policy__check_users(struct gw_policy__check *k)
{
	const struct gw_policy_conf *c = k->c;
	char esc[4 * 300], *norm[1] = {NULL};
	char **v = c->users.n ? gw_policy__xalloc(calloc(c->users.n, sizeof *v)) : norm;
	int ret = PE_CONFIG;
	size_t n = 0;

	for (size_t i = 0; i < c->users.n; i++) {
		const char *name = c->users.names[i];
		char b[JID_BUF], dom[GW_DOMAIN_BUF];
		struct jid j;
		log_escape(esc, sizeof esc, name, strlen(name));
		if (jid_normalize(name, strlen(name), b, sizeof b, &j) < 0 || !j.local.n ||
		    j.resource.n) {
			gw_policy__fail(
			    k, "[user \"%s\"]: the name is not a bare JID (user@domain)", esc);
			goto out;
		}
		b[(size_t)(j.domain.p + j.domain.n - b)] = '\0';
		bool served = false;
		for (size_t d = 0; d < c->domains.n && !served; d++)
			served = gw_policy_domain(c->domains.v[d], dom, sizeof dom, NULL, 0) == 0 &&
				 strcmp(dom, j.domain.p) == 0;
		if (!served) {
			gw_policy__fail(k, "[user \"%s\"]: %s is not a served domain", esc,
					j.domain.p);
			goto out;
		}
		v[n++] = gw_policy__xstrdup(b);
	}
	qsort(v, n, sizeof *v, gw_policy__user_cmp);
	for (size_t i = 1; i < n; i++)
		if (strcmp(v[i - 1], v[i]) == 0) {
			gw_policy__fail(k, "[user \"%s\"]: %s is given twice",
					log_escape(esc, sizeof esc, v[i], strlen(v[i])), v[i]);
			goto out;
		}
	ret = 0;
out:
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	if (v != norm)
		free(v);
	return ret;
}

int gw_policy_check(const struct gw_policy_conf *c, char *err, size_t errlen)
{
	struct gw_policy__check k = {.c = c, .err = err, .errlen = errlen};
	size_t n = c->domains.n + c->partners.n;
	int ret = PE_CONFIG;

	if (err && errlen)
		err[0] = '\0';
	if (gw_policy__seconds(&k, "keepalive", c->keepalive_ms) < 0 ||
	    gw_policy__seconds(&k, "establishment_timeout", c->establishment_ms) < 0 ||
	    gw_policy__seconds(&k, "inactivity_timeout", c->inactivity_ms) < 0 ||
	    gw_policy__seconds(&k, "subscription_refresh", c->subscription_refresh_ms) < 0)
		return PE_CONFIG;
	if (c->preauth_stanza_bytes > c->max_stanza_bytes)
		return gw_policy__fail(&k,
				       "[federation] preauth_stanza_bytes: %llu bytes is above "
				       "max_stanza_bytes (%llu bytes)",
				       (unsigned long long)c->preauth_stanza_bytes,
				       (unsigned long long)c->max_stanza_bytes);

	for (size_t i = 0; i < c->partners.n; i++)
		n += ((const struct gw_partner_conf *)c->partners.items)[i].additional_domains.n;
	k.doms = gw_policy__xalloc(calloc(n ? n : 1, sizeof *k.doms));
	for (size_t i = 0; i < c->domains.n; i++)
		if (gw_policy__add(&k, c->domains.v[i], KIND_SERVED, 0) < 0)
			goto out;
	for (size_t i = 0; i < c->partners.n; i++)
		if (gw_policy__check_partner(&k, i) < 0)
			goto out;
	if (gw_policy__duplicates(&k) < 0)
		goto out;
	if (gw_policy__check_users(&k) < 0)
		goto out;
	ret = 0;
out:
	free(k.doms);
	return ret;
}

/* Strictly increasing in this process; CLOCK_REALTIME keeps it increasing across restarts,
 * so an edge that outlives a gateway restart still takes the new gateway's snapshot. */
static uint64_t gw_policy__generation(void)
{
	static _Atomic uint64_t last;
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t now = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	uint64_t prev = atomic_load(&last), next;
	do {
		next = now > prev ? now : prev + 1;
	} while (!atomic_compare_exchange_weak(&last, &prev, next));
	return next;
}

/* A domain already accepted by gw_policy_check, in its normalised form, malloc'd. */
static char *gw_policy__dup_domain(const char *raw)
{
	char d[GW_DOMAIN_BUF];
	if (gw_policy_domain(raw, d, sizeof d, NULL, 0) < 0)
		abort(); /* gw_policy_check passed on this very config */
	return gw_policy__xstrdup(d);
}

static Parley__Link__Partner *gw_policy__partner_msg(const struct gw_policy_conf *c, size_t i)
{
	const struct gw_partner_conf *p = (const struct gw_partner_conf *)c->partners.items + i;
	Parley__Link__Partner *m = gw_policy__xalloc(malloc(sizeof *m));

	parley__link__partner__init(m);
	m->domain = gw_policy__dup_domain(c->partners.names[i]);
	m->n_additional_domains = p->additional_domains.n;
	if (p->additional_domains.n)
		m->additional_domains =
		    gw_policy__xalloc(calloc(p->additional_domains.n, sizeof(char *)));
	for (size_t j = 0; j < p->additional_domains.n; j++)
		m->additional_domains[j] = gw_policy__dup_domain(p->additional_domains.v[j]);
	if (p->description)
		m->description = gw_policy__xstrdup(p->description);
	/* The proto's enums are our indexes plus one. */
	m->has_type = true;
	m->type = (Parley__Link__PartnerType)(p->type + 1);
	m->has_tls = true;
	m->tls = (Parley__Link__Negotiation)(p->tls + 1);
	m->has_sasl = true;
	m->sasl = (Parley__Link__Negotiation)(p->sasl + 1);
	m->has_dialback = true;
	m->dialback = p->dialback;
	m->has_keepalive = true;
	m->keepalive = p->keepalive;
	m->has_connection_limit = true;
	m->connection_limit = (uint32_t)p->connection_limit;
	if (p->proxy.host) {
		struct in6_addr a;
		const char *h = p->proxy.host;
		bool ip = inet_pton(AF_INET, h, &a) == 1 || inet_pton(AF_INET6, h, &a) == 1;
		m->proxy_host = ip ? gw_policy__xstrdup(h) : gw_policy__dup_domain(h);
		m->has_proxy_port = true;
		m->proxy_port = p->proxy.port;
	}
	return m;
}

_Static_assert(PARLEY__LINK__PARTNER_TYPE__PARTNER_FEDERATED == GW_PARTNER_FEDERATED + 1 &&
		   PARLEY__LINK__PARTNER_TYPE__PARTNER_PUBLIC_UNVERIFIED ==
		       GW_PARTNER_PUBLIC_UNVERIFIED + 1,
	       "PartnerType is enum gw_partner_type + 1");
_Static_assert(PARLEY__LINK__NEGOTIATION__NEG_REQUIRED == GW_NEG_REQUIRED + 1 &&
		   PARLEY__LINK__NEGOTIATION__NEG_NOT_SUPPORTED == GW_NEG_NOT_SUPPORTED + 1,
	       "Negotiation is enum gw_neg + 1");

Parley__Link__PolicySnapshot *gw_policy_snapshot(const struct gw_policy_conf *c)
{
	if (gw_policy_check(c, NULL, 0) < 0)
		return NULL;

	Parley__Link__PolicySnapshot *s = gw_policy__xalloc(malloc(sizeof *s));
	parley__link__policy_snapshot__init(s);
	s->generation = gw_policy__generation();
	s->n_served_domains = c->domains.n;
	if (c->domains.n)
		s->served_domains = gw_policy__xalloc(calloc(c->domains.n, sizeof(char *)));
	for (size_t i = 0; i < c->domains.n; i++)
		s->served_domains[i] = gw_policy__dup_domain(c->domains.v[i]);
	s->n_partners = c->partners.n;
	if (c->partners.n)
		s->partners =
		    gw_policy__xalloc(calloc(c->partners.n, sizeof(Parley__Link__Partner *)));
	for (size_t i = 0; i < c->partners.n; i++)
		s->partners[i] = gw_policy__partner_msg(c, i);

	Parley__Link__Limits *l = gw_policy__xalloc(malloc(sizeof *l));
	parley__link__limits__init(l);
	l->has_connection_limit = true;
	l->connection_limit = (uint32_t)c->connection_limit;
	l->has_per_partner_limit = true;
	l->per_partner_limit = (uint32_t)c->per_partner_limit;
	l->has_max_stanza_bytes = true;
	l->max_stanza_bytes = (uint32_t)c->max_stanza_bytes;
	l->has_preauth_stanza_bytes = true;
	l->preauth_stanza_bytes = (uint32_t)c->preauth_stanza_bytes;
	s->limits = l;

	Parley__Link__Timers *t = gw_policy__xalloc(malloc(sizeof *t));
	parley__link__timers__init(t);
	t->has_keepalive_s = true;
	t->keepalive_s = (uint32_t)(c->keepalive_ms / 1000);
	t->has_establishment_s = true;
	t->establishment_s = (uint32_t)(c->establishment_ms / 1000);
	t->has_inactivity_s = true;
	t->inactivity_s = (uint32_t)(c->inactivity_ms / 1000);
	t->has_subscription_refresh_s = true;
	t->subscription_refresh_s = (uint32_t)(c->subscription_refresh_ms / 1000);
	s->timers = t;

	s->has_log_message_bodies = true;
	s->log_message_bodies = c->log_message_bodies;
	return s;
}

void gw_policy_snapshot_free(Parley__Link__PolicySnapshot *s)
{
	/* Built with malloc throughout, so protobuf-c's own walk (system allocator) frees it. */
	if (s)
		parley__link__policy_snapshot__free_unpacked(s, NULL);
}

/* ---- file:line for gw_policy_check's messages ---- */

/* Reads the section and key a message of gw_policy_check names: "[federation] key: ...",
 * "[partner \"NAME\"] key: ...", "[user \"NAME\"]: ...". The name is unescaped only for
 * \" and \\ (what the file itself would need); log_escape's other escapes do not occur in
 * names conf accepted. Returns false if msg has another shape. */
static bool gw_policy__msg_where(const char *msg, char *sec, size_t seccap, char *name,
				 size_t namecap, char *key, size_t keycap)
{
	const char *p = msg;
	size_t n = 0;
	if (*p++ != '[')
		return false;
	while (*p && *p != ']' && *p != ' ' && n + 1 < seccap)
		sec[n++] = *p++;
	sec[n] = '\0';
	name[0] = '\0';
	if (*p == ' ') {
		p++;
		if (*p++ != '"')
			return false;
		n = 0;
		while (*p && *p != '"' && n + 1 < namecap) {
			if (*p == '\\' && p[1])
				p++;
			name[n++] = *p++;
		}
		name[n] = '\0';
		if (*p++ != '"')
			return false;
	}
	if (*p++ != ']')
		return false;
	n = 0;
	if (*p == ' ')
		for (p++; *p && *p != ':' && *p != ' ' && n + 1 < keycap;)
			key[n++] = *p++;
	key[n] = '\0';
	return true;
}

static char *gw_policy__trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
		s[--n] = '\0';
	return s;
}

/* The line of key in section [sec] or [sec "name"] of the file at path: the key's first
 * line there, else the section's header, else 0. Parses headers as conf does, loosely: a
 * file conf accepted. */
static int gw_policy__find_line(const char *path, const char *sec, const char *name,
				const char *key)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	char line[CONF_MAX_LINE + 2];
	int lineno = 0, header = 0, found = 0;
	bool in = false;
	while (!found && fgets(line, sizeof line, f)) {
		lineno++;
		char *t = gw_policy__trim(line);
		if (*t == '[') {
			char hs[64], hn[CONF_MAX_LINE], hk[8];
			/* reuse the message reader: a header "[partner \"x\"]" has its shape */
			in = gw_policy__msg_where(t, hs, sizeof hs, hn, sizeof hn, hk, sizeof hk) &&
			     strcmp(hs, sec) == 0 && strcmp(hn, name) == 0;
			if (in && !header)
				header = lineno;
			continue;
		}
		if (!in || !*key)
			continue;
		char *eq = strchr(t, '=');
		if (!eq)
			continue;
		*eq = '\0';
		if (strcmp(gw_policy__trim(t), key) == 0)
			found = lineno;
	}
	fclose(f);
	return found ? found : header;
}

int gw_policy_check_file(const struct gw_policy_conf *c, const char *path, char *err, size_t errlen)
{
	char msg[1024];
	if (gw_policy_check(c, msg, sizeof msg) == 0)
		return 0;
	char sec[64], name[GW_DOMAIN_BUF + JID_BUF], key[64];
	int line = 0;
	if (gw_policy__msg_where(msg, sec, sizeof sec, name, sizeof name, key, sizeof key))
		line = gw_policy__find_line(path, sec, name, key);
	if (err && errlen) {
		if (line > 0)
			snprintf(err, errlen, "%s:%d: %s", path, line, msg);
		else
			snprintf(err, errlen, "%s: %s", path, msg);
	}
	return PE_CONFIG;
}

/* ---- per-user access ---- */

int gw_policy_user_access(const struct gw_policy_conf *c, const char *jid, bool *overridden)
{
	char want[JID_BUF], have[JID_BUF];
	if (overridden)
		*overridden = false;
	if (gw_policy__bare(jid, want, sizeof want) < 0)
		return GW_ACCESS_DENY;
	/* Operators list a few exceptions, so a scan with a cheap pre-filter (the names
	 * gw_policy_check accepted are mostly in normal form already) beats an index that
	 * every reload would rebuild. */
	for (size_t i = 0; i < c->users.n; i++) {
		const char *name = c->users.names[i];
		if (strcasecmp(name, want) != 0 &&
		    (gw_policy__bare(name, have, sizeof have) < 0 || strcmp(have, want) != 0))
			continue;
		if (overridden)
			*overridden = true;
		return ((const struct gw_user_conf *)c->users.items)[i].xmpp;
	}
	return c->access_default;
}

bool gw_policy_user_allowed(const struct gw_policy_conf *c, const char *jid)
{
	return gw_policy_user_access(c, jid, NULL) == GW_ACCESS_ALLOW;
}

/* ---- partners managed with parleyctl ---- */

struct gw_policy__holder {
	struct gw_policy_conf p;
};
static const struct conf_multi gw_policy__partner_multi[] = {
    {"partner", gw_partner_options, GW_PARTNER_N_OPTIONS, sizeof(struct gw_partner_conf),
     offsetof(struct gw_policy__holder, p.partners), NULL},
};

/* Appends src's items and names to dst (moving them: src's arrays are freed, not their
 * contents). */
static void gw_policy__append(struct conf_array *dst, struct conf_array *src, size_t item_size)
{
	if (!src->n)
		goto out;
	dst->items = gw_policy__xalloc(realloc(dst->items, (dst->n + src->n) * item_size));
	dst->names = gw_policy__xalloc(realloc(dst->names, (dst->n + src->n) * sizeof(char *)));
	memcpy((char *)dst->items + dst->n * item_size, src->items, src->n * item_size);
	memcpy(dst->names + dst->n, src->names, src->n * sizeof(char *));
	dst->n += src->n;
out:
	free(src->items);
	free(src->names);
	memset(src, 0, sizeof *src);
}

int gw_policy_managed_add(struct gw_policy_conf *managed, const char *domain, const char *settings,
			  char *err, size_t errlen)
{
	struct gw_policy__holder h;
	char esc[4 * GW_DOMAIN_MAX + 8], tmp[1024];
	size_t dl = strlen(domain);

	if (err && errlen)
		err[0] = '\0';
	/* A name conf would refuse or that would break out of the header line. */
	for (size_t i = 0; i < dl; i++)
		if ((unsigned char)domain[i] < 0x20 || domain[i] == '"' || domain[i] == '\\' ||
		    domain[i] == ']') {
			if (err && errlen)
				snprintf(err, errlen,
					 "[partner \"%s\"]: the name is not a valid domain",
					 log_escape(esc, sizeof esc, domain, dl));
			return PE_CONFIG;
		}
	for (const char *p = settings; *p; p++)
		if (*p == '[' && (p == settings || p[-1] == '\n')) {
			if (err && errlen)
				snprintf(err, errlen,
					 "[partner \"%s\"]: a setting may not start a section",
					 log_escape(esc, sizeof esc, domain, dl));
			return PE_CONFIG;
		}
	size_t cap = dl + strlen(settings) + 32;
	char *text = gw_policy__xalloc(malloc(cap));
	snprintf(text, cap, "[partner \"%s\"]\n%s\n", domain, settings);
	int r = conf_load_ex_text(NULL, 0, gw_policy__partner_multi, 1, &h, "parleyctl", text, tmp,
				  sizeof tmp);
	free(text);
	if (r != 0) {
		/* "parleyctl:LINE: [partner ...] key: ..." -> the part after "LINE: " */
		const char *m = strstr(tmp, ": [");
		if (err && errlen)
			snprintf(err, errlen, "%s", m ? m + 2 : tmp);
		return PE_CONFIG;
	}
	gw_policy__append(&managed->partners, &h.p.partners, sizeof(struct gw_partner_conf));
	return 0;
}

void gw_policy_managed_free(struct gw_policy_conf *managed)
{
	struct gw_policy__holder h;
	memset(&h, 0, sizeof h);
	h.p.partners = managed->partners;
	conf_free_ex(NULL, 0, gw_policy__partner_multi, 1, &h);
	memset(managed, 0, sizeof *managed);
}

void gw_policy_merge(const struct gw_policy_conf *config, const struct gw_policy_conf *managed,
		     struct gw_policy_conf *out)
{
	size_t sz = sizeof(struct gw_partner_conf);
	size_t a = config->partners.n, b = managed ? managed->partners.n : 0;
	*out = *config;
	out->partners.n = a + b;
	out->partners.items = gw_policy__xalloc(malloc((a + b ? a + b : 1) * sz));
	out->partners.names = gw_policy__xalloc(malloc((a + b ? a + b : 1) * sizeof(char *)));
	if (a) {
		memcpy(out->partners.items, config->partners.items, a * sz);
		memcpy(out->partners.names, config->partners.names, a * sizeof(char *));
	}
	if (b) {
		memcpy((char *)out->partners.items + a * sz, managed->partners.items, b * sz);
		memcpy(out->partners.names + a, managed->partners.names, b * sizeof(char *));
	}
}

void gw_policy_merge_release(struct gw_policy_conf *out)
{
	free(out->partners.items);
	free(out->partners.names);
	memset(out, 0, sizeof *out);
}

long gw_policy_find_partner(const struct gw_policy_conf *c, const char *domain)
{
	char want[GW_DOMAIN_BUF], have[GW_DOMAIN_BUF];
	if (gw_policy_domain(domain, want, sizeof want, NULL, 0) < 0)
		return -1;
	for (size_t i = 0; i < c->partners.n; i++)
		if (gw_policy_domain(c->partners.names[i], have, sizeof have, NULL, 0) == 0 &&
		    strcmp(have, want) == 0)
			return (long)i;
	return -1;
}
