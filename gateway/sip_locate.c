/* RFC 3263 server location on the common resolver. A job walks NAPTR → SRV → A/AAAA
 * with the queries of one stage in parallel, then answers in RFC order; answers are
 * cached for cache_ms. Down marks are kept per transport+address so a member found
 * dead stays at the back of the list until a health check brings it back. */
#include "sip_locate.h"

#include "err.h"
#include "log.h"
#include "resolver.h"
#include "sip_map.h"
#include "sip_uri.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_NAMES 4  /* SRV names per job */
#define MAX_HOSTS 16 /* SRV targets per job */

struct mark {
	struct sip_map_node node;
	uint8_t key[20];
	bool down;
};

struct cache_ent {
	struct sip_map_node node;
	struct cache_ent *next; /* all entries, for freeing */
	char key[300];
	uint64_t expires;
	struct sip_target t[SIP_LOCATE_MAX];
	size_t n;
};

struct job;

struct sub { /* one outstanding query of a job */
	struct job *j;
	int idx;
};

struct host {
	char name[256];
	int port;
	enum sip_proto proto;
	int name_idx; /* which SRV name it came from: answers are ordered by it */
	int status;
	char addrs[4][64];
	size_t naddr;
};

struct job {
	struct sip_locate *l;
	struct job *next;
	sip_locate_cb cb;
	void *arg;
	bool cancelled;
	bool pool; /* answer becomes the pool list */
	char key[300];
	char host[256];
	bool sips;
	int pending;
	int status;
	/* SRV stage */
	char names[MAX_NAMES][256];
	enum sip_proto name_proto[MAX_NAMES];
	size_t nnames;
	struct host hosts[MAX_HOSTS];
	size_t nhosts;
	int fallback_port;
	enum sip_proto fallback_proto;
	struct sub subs[MAX_HOSTS + MAX_NAMES + 1];
	/* answer */
	struct sip_target t[SIP_LOCATE_MAX];
	size_t n;
};

/* An answer waiting to be delivered from the loop; sized for its targets. */
struct answer {
	struct answer *next;
	sip_locate_cb cb;
	void *arg;
	bool cancelled;
	bool pool;
	int status;
	size_t n;
	struct sip_target t[];
};

struct sip_locate {
	uv_loop_t *loop;
	struct resolver *res;
	struct sip_locate_cfg cfg;
	char *domain;
	struct sip_target statics[SIP_LOCATE_MAX];
	size_t nstatic;
	struct sip_target pool[SIP_LOCATE_MAX];
	size_t npool;
	struct sip_map marks;
	struct sip_map cache;
	struct cache_ent *entries;
	struct job *jobs; /* resolving */
	struct answer *ready, *ready_tail;
	uv_timer_t kick;
	bool kick_armed;
};

/* --- pure parts -------------------------------------------------------------------- */

int sip_target_parse(const char *s, struct sip_target *t)
{
	char buf[512], ip[64], *p, *name;
	enum sip_proto proto;
	int port = 0;
	size_t n;

	memset(t, 0, sizeof *t);
	if (!s || strlen(s) >= sizeof buf)
		return PE_INVAL;
	strcpy(buf, s);
	name = strstr(buf, ";name=");
	if (name) {
		*name = '\0';
		name += 6;
		if (!*name || strlen(name) >= sizeof t->hop.tls_name)
			return PE_INVAL;
	}
	p = strchr(buf, ':');
	if (!p || sip_proto_parse(buf, (size_t)(p - buf), &proto) != 0)
		return PE_INVAL;
	p++;
	if (*p == '[') {
		char *rb = strchr(p, ']');
		if (!rb)
			return PE_INVAL;
		n = (size_t)(rb - p - 1);
		if (n >= sizeof ip)
			return PE_INVAL;
		memcpy(ip, p + 1, n);
		ip[n] = '\0';
		p = rb + 1;
	} else {
		char *c = strchr(p, ':');
		n = c ? (size_t)(c - p) : strlen(p);
		if (n >= sizeof ip)
			return PE_INVAL;
		memcpy(ip, p, n);
		ip[n] = '\0';
		p += n;
	}
	if (*p == ':') {
		char *end;
		long v = strtol(p + 1, &end, 10);
		if (end == p + 1 || *end || v <= 0 || v > 65535)
			return PE_INVAL;
		port = (int)v;
	} else if (*p) {
		return PE_INVAL;
	}
	if (!port)
		port = proto == SIP_PROTO_TLS ? 5061 : 5060;
	if (sip_hop_set(&t->hop, proto, ip, port) != 0)
		return PE_INVAL;
	if (name)
		strcpy(t->hop.tls_name, name);
	return 0;
}

size_t sip_locate__naptr_pick(const struct resolver_naptr *recs, size_t n, bool sips,
			      char (*names)[256], enum sip_proto *protos, size_t cap)
{
	size_t k = 0;
	for (size_t i = 0; i < n && k < cap; i++) {
		enum sip_proto p;
		if (!recs[i].flags || strcasecmp(recs[i].flags, "s") != 0 || !recs[i].service ||
		    !recs[i].replacement || !recs[i].replacement[0] ||
		    strlen(recs[i].replacement) >= 256)
			continue;
		if (strcasecmp(recs[i].service, "SIPS+D2T") == 0)
			p = SIP_PROTO_TLS;
		else if (sips)
			continue;
		else if (strcasecmp(recs[i].service, "SIP+D2T") == 0)
			p = SIP_PROTO_TCP;
		else if (strcasecmp(recs[i].service, "SIP+D2U") == 0)
			p = SIP_PROTO_UDP;
		else
			continue;
		strcpy(names[k], recs[i].replacement);
		protos[k] = p;
		k++;
	}
	return k;
}

void sip_locate__order(struct sip_target *t, size_t n)
{
	struct sip_target tmp[SIP_LOCATE_MAX];
	size_t k = 0, down = 0;
	if (n > SIP_LOCATE_MAX)
		n = SIP_LOCATE_MAX;
	for (size_t i = 0; i < n; i++)
		down += t[i].down;
	if (down == 0 || down == n)
		return; /* the usual case: nothing to move */
	for (size_t i = 0; i < n; i++)
		if (!t[i].down)
			tmp[k++] = t[i];
	for (size_t i = 0; i < n; i++)
		if (t[i].down)
			tmp[k++] = t[i];
	memcpy(t, tmp, n * sizeof *t);
}

/* --- marks ------------------------------------------------------------------------- */

static struct mark *mark_find(struct sip_locate *l, const struct sip_hop *hop, bool create)
{
	uint8_t key[20] = {0};
	size_t kl = sip_hop_key(hop, key);
	struct sip_map_node *n = sip_map_find(&l->marks, key, sizeof key);
	(void)kl;
	if (n || !create)
		return n ? sip_map_entry(n, struct mark, node) : NULL;
	struct mark *m = calloc(1, sizeof *m);
	if (!m)
		return NULL;
	memcpy(m->key, key, sizeof key);
	sip_map_insert(&l->marks, &m->node, m->key, sizeof m->key);
	return m;
}

static void apply_marks(struct sip_locate *l, struct sip_target *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct mark *m = mark_find(l, &t[i].hop, false);
		t[i].down = m && m->down;
	}
	sip_locate__order(t, n);
}

void sip_locate_mark(struct sip_locate *l, const struct sip_hop *hop, bool up)
{
	struct mark *m = mark_find(l, hop, true);
	char hs[96];
	if (!m || m->down == !up)
		return;
	m->down = !up;
	if (up)
		log_info(0, "sip_target_up", "target=\"%s\"", sip_hop_str(hop, hs, sizeof hs));
	else
		log_warn(0, "sip_target_down", "target=\"%s\"", sip_hop_str(hop, hs, sizeof hs));
}

const struct sip_target *sip_locate_pool(const struct sip_locate *l, size_t *n)
{
	*n = l->npool;
	return l->pool;
}

/* --- lifecycle --------------------------------------------------------------------- */

static void on_kick(uv_timer_t *t);

struct sip_locate *sip_locate_new(uv_loop_t *loop, struct resolver *res,
				  const struct sip_locate_cfg *cfg, char *err, size_t errlen)
{
	struct sip_locate *l = calloc(1, sizeof *l);
	if (!l)
		return NULL;
	l->loop = loop;
	l->res = res;
	l->cfg = *cfg;
	l->cfg.pool = NULL;
	if (!l->cfg.cache_ms)
		l->cfg.cache_ms = 30000;
	if (cfg->domain && !(l->domain = strdup(cfg->domain)))
		goto fail;
	l->cfg.domain = l->domain;
	for (size_t i = 0; cfg->pool && cfg->pool[i]; i++) {
		if (i >= SIP_LOCATE_MAX || sip_target_parse(cfg->pool[i], &l->statics[i]) != 0) {
			if (err)
				snprintf(err, errlen, "bad pool member \"%s\"", cfg->pool[i]);
			goto fail;
		}
		l->nstatic = i + 1;
	}
	memcpy(l->pool, l->statics, l->nstatic * sizeof l->statics[0]);
	l->npool = l->nstatic;
	uv_timer_init(loop, &l->kick);
	l->kick.data = l;
	return l;
fail:
	free(l->domain);
	free(l);
	return NULL;
}

static void free_mark(struct sip_map_node *n, void *arg)
{
	(void)arg;
	free(sip_map_entry(n, struct mark, node));
}

static void on_kick_closed(uv_handle_t *h)
{
	free(h->data);
}

static void job_cancel_queries(struct job *j)
{
	for (size_t i = 0; i < sizeof j->subs / sizeof j->subs[0]; i++)
		if (j->l->res)
			resolver_cancel(j->l->res, &j->subs[i]);
}

void sip_locate_free(struct sip_locate *l)
{
	if (!l)
		return;
	while (l->jobs) {
		struct job *j = l->jobs;
		l->jobs = j->next;
		job_cancel_queries(j);
		free(j);
	}
	while (l->ready) {
		struct answer *a = l->ready;
		l->ready = a->next;
		free(a);
	}
	while (l->entries) {
		struct cache_ent *e = l->entries;
		l->entries = e->next;
		free(e);
	}
	sip_map_foreach(&l->marks, free_mark, NULL);
	sip_map_deinit(&l->marks);
	sip_map_deinit(&l->cache);
	free(l->domain);
	uv_timer_stop(&l->kick);
	uv_close((uv_handle_t *)&l->kick, on_kick_closed);
}

void sip_locate_cancel(struct sip_locate *l, void *arg)
{
	for (struct job *j = l->jobs; j; j = j->next)
		if (j->arg == arg)
			j->cancelled = true;
	for (struct answer *a = l->ready; a; a = a->next)
		if (a->arg == arg)
			a->cancelled = true;
}

/* --- delivery ---------------------------------------------------------------------- */

static void unlink_job(struct job **head, struct job *j)
{
	while (*head && *head != j)
		head = &(*head)->next;
	if (*head)
		*head = j->next;
}

static void answer_queue(struct sip_locate *l, sip_locate_cb cb, void *arg, int status,
			 const struct sip_target *t, size_t n, bool pool)
{
	struct answer *a = malloc(sizeof *a + n * sizeof *t);
	if (!a)
		abort(); /* a small control allocation */
	a->next = NULL;
	a->cb = cb;
	a->arg = arg;
	a->cancelled = false;
	a->pool = pool;
	a->status = status;
	a->n = n;
	if (n)
		memcpy(a->t, t, n * sizeof *t);
	if (l->ready_tail)
		l->ready_tail->next = a;
	else
		l->ready = a;
	l->ready_tail = a;
	if (!l->kick_armed) {
		l->kick_armed = true;
		uv_timer_start(&l->kick, on_kick, 0, 0);
	}
}

static void make_ready(struct job *j)
{
	struct sip_locate *l = j->l;
	unlink_job(&l->jobs, j);
	if (!j->cancelled)
		answer_queue(l, j->cb, j->arg, j->status, j->t, j->n, j->pool);
	free(j);
}

static void on_kick(uv_timer_t *t)
{
	struct sip_locate *l = t->data;
	struct answer *list = l->ready;
	l->ready = l->ready_tail = NULL;
	l->kick_armed = false;
	while (list) {
		struct answer *a = list;
		list = a->next;
		if (!a->cancelled) {
			apply_marks(l, a->t, a->n);
			if (a->pool && a->n) {
				memcpy(l->pool, a->t, a->n * sizeof a->t[0]);
				l->npool = a->n;
			}
			a->cb(a->arg, a->status, a->t, a->n);
		}
		free(a);
	}
}

static void cache_store(struct job *j)
{
	struct sip_locate *l = j->l;
	struct sip_map_node *n = sip_map_find(&l->cache, j->key, strlen(j->key));
	struct cache_ent *e;
	if (n) {
		e = sip_map_entry(n, struct cache_ent, node);
	} else {
		e = calloc(1, sizeof *e);
		if (!e)
			return;
		strcpy(e->key, j->key);
		sip_map_insert(&l->cache, &e->node, e->key, strlen(e->key));
		e->next = l->entries;
		l->entries = e;
	}
	e->expires = uv_now(l->loop) + l->cfg.cache_ms;
	memcpy(e->t, j->t, j->n * sizeof j->t[0]);
	e->n = j->n;
}

static void job_finish(struct job *j)
{
	if (j->n) {
		j->status = 0;
		cache_store(j);
	} else if (!j->status) {
		j->status = PE_NOTFOUND;
	}
	make_ready(j);
}

/* --- stages ------------------------------------------------------------------------ */

static void add_target(struct job *j, enum sip_proto proto, const char *ip, int port,
		       const char *name)
{
	if (j->n >= SIP_LOCATE_MAX)
		return;
	struct sip_target *t = &j->t[j->n];
	if (sip_hop_set(&t->hop, proto, ip, port) != 0)
		return;
	if (name && strlen(name) < sizeof t->hop.tls_name)
		strcpy(t->hop.tls_name, name);
	t->down = false;
	j->n++;
}

static void on_addr(void *arg, int status, const char *const *addrs, const int *fam, size_t n)
{
	struct sub *s = arg;
	struct job *j = s->j;
	struct host *h = &j->hosts[s->idx];
	(void)fam;
	h->status = status;
	for (size_t i = 0; status == 0 && i < n && h->naddr < 4; i++)
		snprintf(h->addrs[h->naddr++], sizeof h->addrs[0], "%s", addrs[i]);
	if (--j->pending)
		return;
	for (size_t i = 0; i < j->nhosts; i++) {
		struct host *x = &j->hosts[i];
		/* RFC 5922 §4.1: a TLS server is verified against the SIP domain asked
		 * for, not against the SRV target */
		for (size_t k = 0; k < x->naddr; k++)
			add_target(j, x->proto, x->addrs[k], x->port, j->host);
		if (!j->n && x->status)
			j->status = x->status;
	}
	job_finish(j);
}

static void start_hosts(struct job *j)
{
	j->pending = (int)j->nhosts;
	for (size_t i = 0; i < j->nhosts; i++) {
		j->subs[i].j = j;
		j->subs[i].idx = (int)i;
		if (resolver_addr(j->l->res, j->hosts[i].name, AF_UNSPEC, on_addr, &j->subs[i]) !=
		    0) {
			j->hosts[i].status = PE_DNS;
			j->pending--;
		}
	}
	if (j->pending == 0) {
		j->status = PE_DNS;
		job_finish(j);
	}
}

static void add_host(struct job *j, const char *name, int port, enum sip_proto proto)
{
	if (j->nhosts >= MAX_HOSTS || strlen(name) >= sizeof j->hosts[0].name)
		return;
	struct host *h = &j->hosts[j->nhosts++];
	memset(h, 0, sizeof *h);
	strcpy(h->name, name);
	h->port = port;
	h->proto = proto;
}

static void on_srv(void *arg, int status, const struct resolver_srv *recs, size_t n,
		   bool no_service)
{
	struct sub *s = arg;
	struct job *j = s->j;
	(void)no_service;
	/* answers arrive in any order: tag each target with its name, sort at the end */
	for (size_t i = 0; status == 0 && i < n && j->nhosts < MAX_HOSTS; i++) {
		add_host(j, recs[i].target, recs[i].port, j->name_proto[s->idx]);
		j->hosts[j->nhosts - 1].name_idx = s->idx;
	}
	if (--j->pending)
		return;
	if (j->nhosts == 0) {
		add_host(j, j->host, j->fallback_port, j->fallback_proto);
	} else {
		/* stable order by name index (our transport preference / NAPTR order) */
		struct host tmp[MAX_HOSTS];
		size_t o = 0;
		for (size_t ni = 0; ni < j->nnames; ni++)
			for (size_t i = 0; i < j->nhosts; i++)
				if (j->hosts[i].name_idx == (int)ni)
					tmp[o++] = j->hosts[i];
		memcpy(j->hosts, tmp, o * sizeof tmp[0]);
	}
	start_hosts(j);
}

static void start_srv(struct job *j)
{
	j->pending = (int)j->nnames;
	for (size_t i = 0; i < j->nnames; i++) {
		struct sub *s = &j->subs[MAX_HOSTS + i];
		s->j = j;
		s->idx = (int)i;
		if (resolver_srv(j->l->res, j->names[i], on_srv, s) != 0)
			j->pending--;
	}
	if (j->pending == 0) {
		add_host(j, j->host, j->fallback_port, j->fallback_proto);
		start_hosts(j);
	}
}

static void default_srv_names(struct job *j)
{
	static const struct {
		const char *prefix;
		enum sip_proto proto;
	} pref[] = {{"_sips._tcp.", SIP_PROTO_TLS},
		    {"_sip._tcp.", SIP_PROTO_TCP},
		    {"_sip._udp.", SIP_PROTO_UDP}};
	j->nnames = 0;
	for (size_t i = 0; i < 3; i++) {
		if (j->sips && pref[i].proto != SIP_PROTO_TLS)
			continue;
		snprintf(j->names[j->nnames], sizeof j->names[0], "%s%s", pref[i].prefix, j->host);
		j->name_proto[j->nnames++] = pref[i].proto;
	}
}

static void on_naptr(void *arg, int status, const struct resolver_naptr *recs, size_t n)
{
	struct sub *s = arg;
	struct job *j = s->j;
	j->nnames = status == 0 ? sip_locate__naptr_pick(recs, n, j->sips, j->names, j->name_proto,
							 MAX_NAMES)
				: 0;
	if (j->nnames == 0)
		default_srv_names(j);
	start_srv(j);
}

/* --- entry ------------------------------------------------------------------------- */

static bool is_ip(const char *h)
{
	struct in6_addr a;
	return inet_pton(AF_INET, h, &a) == 1 || inet_pton(AF_INET6, h, &a) == 1;
}

int sip_locate_resolve(struct sip_locate *l, const char *uri, sip_locate_cb cb, void *arg)
{
	char tmp[300];
	struct sip_uri u;
	struct sip_view tv;
	enum sip_proto tproto = SIP_PROTO_UDP;
	bool have_tproto = false;
	struct job *j;

	if (!uri && l->nstatic) {
		answer_queue(l, cb, arg, 0, l->statics, l->nstatic, false);
		return 0;
	}
	if (!uri) {
		if (!l->domain)
			return PE_INVAL;
		snprintf(tmp, sizeof tmp, "%s:%s", l->cfg.sips ? "sips" : "sip", l->domain);
		uri = tmp;
	}
	if (sip_uri_parse(uri, strlen(uri), &u) != 0 || !u.sip || u.host.n >= 256)
		return PE_INVAL;
	if (sip_uri_param(&u, "transport", &tv)) {
		if (sip_proto_parse(tv.p, tv.n, &tproto) != 0)
			return PE_INVAL;
		have_tproto = true;
	}
	bool pool = uri == tmp, sips = u.sips || (pool && l->cfg.sips);
	char host[256], key[300];
	sip_view_cpy(host, sizeof host, u.host);
	if (sips)
		tproto = SIP_PROTO_TLS;
	enum sip_proto fproto = have_tproto || sips ? tproto : SIP_PROTO_UDP;
	int fport = u.port ? u.port : (fproto == SIP_PROTO_TLS ? 5061 : 5060);

	/* an IP literal: no DNS at all (RFC 3263 §4.1, §4.2) */
	if (is_ip(host)) {
		struct sip_target t = {0};
		int st = sip_hop_set(&t.hop, fproto, host, fport);
		answer_queue(l, cb, arg, st ? PE_INVAL : 0, &t, st ? 0 : 1, pool);
		return 0;
	}
	snprintf(key, sizeof key, "%d|%d|%d|%s", sips, have_tproto ? (int)tproto : -1, u.port,
		 host);
	struct sip_map_node *cn = sip_map_find(&l->cache, key, strlen(key));
	if (cn) {
		struct cache_ent *e = sip_map_entry(cn, struct cache_ent, node);
		if (e->expires > uv_now(l->loop)) {
			answer_queue(l, cb, arg, 0, e->t, e->n, pool);
			return 0;
		}
	}
	j = calloc(1, sizeof *j);
	if (!j)
		return PE_NOMEM;
	j->l = l;
	j->cb = cb;
	j->arg = arg;
	j->pool = pool;
	j->sips = sips;
	strcpy(j->host, host);
	strcpy(j->key, key);
	j->fallback_proto = fproto;
	j->fallback_port = fport;
	j->next = l->jobs;
	l->jobs = j;

	if (!l->res) {
		/* a name but no resolver: a failure like any DNS failure, from the loop */
		j->status = PE_STATE;
		make_ready(j);
		return 0;
	}
	if (u.port) {
		add_host(j, j->host, j->fallback_port, j->fallback_proto);
		start_hosts(j);
		return 0;
	}
	if (have_tproto) {
		static const char *const prefix[] = {"_sip._udp.", "_sip._tcp.", "_sips._tcp."};
		snprintf(j->names[0], sizeof j->names[0], "%s%s", prefix[tproto], j->host);
		j->name_proto[0] = tproto;
		j->nnames = 1;
		start_srv(j);
		return 0;
	}
	j->subs[MAX_HOSTS + MAX_NAMES].j = j;
	if (resolver_naptr(l->res, j->host, on_naptr, &j->subs[MAX_HOSTS + MAX_NAMES]) != 0) {
		default_srv_names(j);
		start_srv(j);
	}
	return 0;
}
