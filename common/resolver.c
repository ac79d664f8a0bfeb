/* c-ares resolver on a libuv loop: socket/timer plumbing, request lifecycle, answer shaping. */
#include "resolver.h"

#include "err.h"
#include "log.h"

#include <arpa/inet.h>
#include <ares.h>
#include <ares_nameser.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RESOLVER_DEFAULT_TIMEOUT_MS 2000
#define RESOLVER_DEFAULT_TRIES 2
/* c-ares keeps both as int; ten minutes per try or ten rounds would already be absurd. */
#define RESOLVER_MAX_TIMEOUT_MS 600000
#define RESOLVER_MAX_TRIES 10
/* Longest spec we accept: "[" + 45-character IPv6 text + "]:" + 5 digits. */
#define RESOLVER_MAX_SPEC 64

enum rq_kind {
	RQ_SRV,	  /* resolver_srv */
	RQ_ADDR,  /* resolver_addr */
	RQ_NAPTR, /* resolver_naptr */
};

struct rq;

union rq_cb {
	resolver_srv_cb srv;
	resolver_addr_cb addr;
	resolver_naptr_cb naptr;
};

/* One c-ares query of a request; an AF_UNSPEC lookup has two (AAAA in [0], A in [1]). */
struct rq_sub {
	struct rq *q;
	int status;
	char (*addrs)[INET6_ADDRSTRLEN];
	size_t n;
};

/* One user request, from resolver_* until its callback has run (or it is cancelled and
 * its queries have ended). */
struct rq {
	struct resolver *r;
	struct rq *prev, *next; /* r->live */
	struct rq *ready_next;	/* r->ready_head FIFO while queued */
	enum rq_kind kind;
	void *arg;
	union rq_cb cb;
	int nq;		/* c-ares queries not yet called back */
	bool cancelled; /* the user callback must never run */
	bool no_service;
	int status;
	struct rq_sub sub[2];
	struct resolver_srv *srv;
	struct resolver_naptr *naptr;
	size_t nrec;
};

/* A socket c-ares asked us to watch. */
struct rpoll {
	uv_poll_t h;
	struct resolver *r;
	ares_socket_t fd;
	struct rpoll *next;
};

struct resolver {
	uv_loop_t *loop;
	ares_channel channel;
	uv_timer_t timer;
	uv_idle_t idle;
	struct rpoll *polls;
	struct rq *live;
	struct rq *ready_head, *ready_tail;
	size_t nlive;
	unsigned nhandles; /* open libuv handles; the struct is freed when the last closes */
	bool closing;
};

/* ---- Pure helpers ---- */

static int parse_port(const char *s, size_t len, uint16_t *out)
{
	if (len == 0 || len > 5)
		return PE_INVAL;
	uint32_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return PE_INVAL;
		v = v * 10 + (uint32_t)(s[i] - '0');
	}
	if (v == 0 || v > 65535)
		return PE_INVAL;
	*out = (uint16_t)v;
	return 0;
}

int resolver__parse_server(const char *s, size_t len, struct resolver_server *out)
{
	char host[RESOLVER_MAX_SPEC + 1];
	const char *port = NULL;
	size_t hlen, plen = 0;
	int family;

	if (len == 0 || len > RESOLVER_MAX_SPEC)
		return PE_INVAL;
	if (s[0] == '[') {
		const char *close = memchr(s, ']', len);
		if (!close)
			return PE_INVAL;
		hlen = (size_t)(close - s) - 1;
		size_t rest = len - (size_t)(close - s) - 1;
		if (rest) {
			if (close[1] != ':')
				return PE_INVAL;
			port = close + 2;
			plen = rest - 1;
		}
		memcpy(host, s + 1, hlen);
		family = AF_INET6;
	} else {
		const char *c1 = memchr(s, ':', len);
		const char *c2 = c1 ? memchr(c1 + 1, ':', len - (size_t)(c1 - s) - 1) : NULL;
		if (c1 && !c2) { /* IPv4:port */
			hlen = (size_t)(c1 - s);
			port = c1 + 1;
			plen = len - hlen - 1;
			family = AF_INET;
		} else { /* bare IPv4, or bare IPv6 which never has a port */
			hlen = len;
			family = c1 ? AF_INET6 : AF_INET;
		}
		memcpy(host, s, hlen);
	}
	host[hlen] = '\0';
	/* inet_pton stops at the NUL we put there, so an embedded NUL must fail here. */
	if (memchr(s, '\0', len))
		return PE_INVAL;

	struct resolver_server v;
	memset(&v, 0, sizeof v);
	v.family = family;
	v.port = 53;
	if (inet_pton(family, host, family == AF_INET ? (void *)&v.addr.v4 : (void *)&v.addr.v6) !=
	    1)
		return PE_INVAL;
	if (port && parse_port(port, plen, &v.port) < 0)
		return PE_INVAL;
	*out = v;
	return 0;
}

int resolver__format_server(const struct resolver_server *srv, char *dst, size_t cap)
{
	char host[INET6_ADDRSTRLEN];
	int n;

	if (!inet_ntop(srv->family, &srv->addr, host, sizeof host))
		return PE_INVAL;
	if (srv->family == AF_INET6)
		n = snprintf(dst, cap, "[%s]:%u", host, (unsigned)srv->port);
	else
		n = snprintf(dst, cap, "%s:%u", host, (unsigned)srv->port);
	if (n < 0 || (size_t)n >= cap)
		return PE_TOOBIG;
	return n;
}

bool resolver__name_ok(const char *name)
{
	size_t len = strlen(name), label = 0;

	if (len && name[len - 1] == '.')
		len--;
	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0;
}

static uint32_t rnd_default(void *ctx, uint32_t bound)
{
	(void)ctx;
	return bound == UINT32_MAX ? arc4random() : arc4random_uniform(bound + 1);
}

/* Pointers into the caller's array: comparing them as the tie-break keeps qsort stable. */
static int cmp_srv_prio(const void *a, const void *b)
{
	const struct resolver_srv *x = *(const struct resolver_srv *const *)a;
	const struct resolver_srv *y = *(const struct resolver_srv *const *)b;
	if (x->priority != y->priority)
		return x->priority < y->priority ? -1 : 1;
	return x < y ? -1 : x > y;
}

int resolver__srv_order(struct resolver_srv *recs, size_t n, resolver_rnd_fn rnd, void *ctx)
{
	if (n < 2)
		return 0;
	if (!rnd)
		rnd = rnd_default;
	struct resolver_srv **p = malloc(n * sizeof *p);
	struct resolver_srv *out = malloc(n * sizeof *out);
	if (!p || !out) {
		free(p);
		free(out);
		return PE_NOMEM;
	}
	for (size_t i = 0; i < n; i++)
		p[i] = &recs[i];
	qsort(p, n, sizeof *p, cmp_srv_prio);

	size_t o = 0;
	for (size_t g = 0; g < n;) {
		size_t end = g + 1;
		while (end < n && p[end]->priority == p[g]->priority)
			end++;
		/* RFC 2782: zero-weight records go to the front of the candidate list, so the
		 * only way they are picked while others remain is a random number of 0. */
		size_t z = g;
		for (size_t i = g; i < end; i++) {
			if (p[i]->weight == 0) {
				struct resolver_srv *t = p[i];
				memmove(&p[z + 1], &p[z], (i - z) * sizeof *p);
				p[z++] = t;
			}
		}
		while (g < end) {
			uint64_t sum = 0;
			for (size_t i = g; i < end; i++)
				sum += p[i]->weight;
			uint32_t pick = rnd(ctx, (uint32_t)sum);
			if (pick > sum) /* a broken rnd must not walk off the group */
				pick = (uint32_t)sum;
			size_t i = g;
			uint64_t run = p[i]->weight;
			while (run < pick)
				run += p[++i]->weight;
			out[o++] = *p[i];
			memmove(&p[g + 1], &p[g], (i - g) * sizeof *p);
			g++;
		}
	}
	memcpy(recs, out, n * sizeof *out);
	free(p);
	free(out);
	return 0;
}

/* ---- c-ares status and answer shaping ---- */

static int map_ares(int st)
{
	switch (st) {
	case ARES_SUCCESS:
		return 0;
	case ARES_ENODATA:
	case ARES_ENOTFOUND:
		return PE_NOTFOUND;
	case ARES_ETIMEOUT:
		return PE_TIMEOUT;
	case ARES_ENOMEM:
		return PE_NOMEM;
	case ARES_ECANCELLED:
	case ARES_EDESTRUCTION:
		return PE_CLOSED;
	default:
		return PE_DNS;
	}
}

static int shape_srv(struct rq *q, const unsigned char *abuf, int alen)
{
	struct ares_srv_reply *head = NULL;
	int st = ares_parse_srv_reply(abuf, alen, &head);
	if (st != ARES_SUCCESS)
		return map_ares(st);

	size_t n = 0, total = 0;
	for (struct ares_srv_reply *s = head; s; s = s->next)
		total++;
	struct resolver_srv *v = calloc(total, sizeof *v);
	if (!v) {
		ares_free_data(head);
		return PE_NOMEM;
	}
	/* c-ares 1.18 expands the root target "." to "". */
	for (struct ares_srv_reply *s = head; s; s = s->next) {
		if (s->host[0] == '\0')
			continue;
		v[n++] = (struct resolver_srv){.target = s->host,
					       .port = s->port,
					       .priority = s->priority,
					       .weight = s->weight};
	}
	int rc = 0;
	if (n == 0) {
		q->no_service = true;
		goto out;
	}
	if ((rc = resolver__srv_order(v, n, NULL, NULL)) < 0)
		goto out;
	if (n > RESOLVER_MAX_RECORDS)
		n = RESOLVER_MAX_RECORDS;
	for (size_t i = 0; i < n; i++) {
		if (!(v[i].target = strdup(v[i].target))) {
			for (size_t j = 0; j < i; j++)
				free(v[j].target);
			rc = PE_NOMEM;
			goto out;
		}
	}
	q->srv = v;
	q->nrec = n;
	v = NULL;
out:
	free(v);
	ares_free_data(head);
	return rc;
}

struct naptr_tmp {
	struct resolver_naptr rec;
	size_t idx;
};

static int cmp_naptr(const void *a, const void *b)
{
	const struct naptr_tmp *x = a, *y = b;
	if (x->rec.order != y->rec.order)
		return x->rec.order < y->rec.order ? -1 : 1;
	if (x->rec.preference != y->rec.preference)
		return x->rec.preference < y->rec.preference ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static void naptr_free_strings(struct resolver_naptr *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].flags);
		free(v[i].service);
		free(v[i].regexp);
		free(v[i].replacement);
	}
}

static int shape_naptr(struct rq *q, const unsigned char *abuf, int alen)
{
	struct ares_naptr_reply *head = NULL;
	int st = ares_parse_naptr_reply(abuf, alen, &head);
	if (st != ARES_SUCCESS)
		return map_ares(st);

	size_t n = 0;
	for (struct ares_naptr_reply *s = head; s; s = s->next)
		n++;
	struct naptr_tmp *t = calloc(n, sizeof *t);
	if (!t) {
		ares_free_data(head);
		return PE_NOMEM;
	}
	n = 0;
	for (struct ares_naptr_reply *s = head; s; s = s->next, n++) {
		t[n].rec = (struct resolver_naptr){.order = s->order,
						   .preference = s->preference,
						   .flags = (char *)s->flags,
						   .service = (char *)s->service,
						   .regexp = (char *)s->regexp,
						   .replacement = s->replacement};
		t[n].idx = n;
	}
	qsort(t, n, sizeof *t, cmp_naptr);
	if (n > RESOLVER_MAX_RECORDS)
		n = RESOLVER_MAX_RECORDS;

	int rc = 0;
	struct resolver_naptr *v = calloc(n, sizeof *v);
	if (!v) {
		rc = PE_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		v[i].order = t[i].rec.order;
		v[i].preference = t[i].rec.preference;
		v[i].flags = strdup(t[i].rec.flags);
		v[i].service = strdup(t[i].rec.service);
		v[i].regexp = strdup(t[i].rec.regexp);
		v[i].replacement = strdup(t[i].rec.replacement);
		if (!v[i].flags || !v[i].service || !v[i].regexp || !v[i].replacement) {
			naptr_free_strings(v, i + 1);
			free(v);
			rc = PE_NOMEM;
			goto out;
		}
	}
	q->naptr = v;
	q->nrec = n;
out:
	free(t);
	ares_free_data(head);
	return rc;
}

static int shape_addr(struct rq_sub *sub, int family, const unsigned char *abuf, int alen)
{
	struct hostent *he = NULL;
	int st = family == AF_INET ? ares_parse_a_reply(abuf, alen, &he, NULL, NULL)
				   : ares_parse_aaaa_reply(abuf, alen, &he, NULL, NULL);
	if (st != ARES_SUCCESS)
		return map_ares(st);

	size_t n = 0;
	while (he->h_addr_list[n] && n < RESOLVER_MAX_RECORDS)
		n++;
	int rc = 0;
	if (n == 0) {
		rc = PE_NOTFOUND;
	} else if (!(sub->addrs = calloc(n, sizeof *sub->addrs))) {
		rc = PE_NOMEM;
	} else {
		for (size_t i = 0; i < n; i++)
			inet_ntop(family, he->h_addr_list[i], sub->addrs[i], sizeof sub->addrs[i]);
		sub->n = n;
	}
	ares_free_hostent(he);
	return rc;
}

/* ---- Request lifecycle ---- */

static void rq_free(struct rq *q)
{
	if (q->srv) {
		for (size_t i = 0; i < q->nrec; i++)
			free(q->srv[i].target);
		free(q->srv);
	}
	if (q->naptr) {
		naptr_free_strings(q->naptr, q->nrec);
		free(q->naptr);
	}
	free(q->sub[0].addrs);
	free(q->sub[1].addrs);
	free(q);
}

static void rq_unlink(struct rq *q)
{
	struct resolver *r = q->r;
	if (q->prev)
		q->prev->next = q->next;
	else
		r->live = q->next;
	if (q->next)
		q->next->prev = q->prev;
	q->prev = q->next = NULL;
	r->nlive--;
}

static void on_idle(uv_idle_t *h);

/* Queues a finished request; its callback runs from on_idle. */
static void rq_ready(struct rq *q)
{
	struct resolver *r = q->r;
	q->ready_next = NULL;
	if (r->ready_tail)
		r->ready_tail->ready_next = q;
	else
		r->ready_head = q;
	r->ready_tail = q;
	uv_idle_start(&r->idle, on_idle);
}

static struct rq *rq_new(struct resolver *r, enum rq_kind kind, void *arg)
{
	struct rq *q = calloc(1, sizeof *q);
	if (!q)
		return NULL;
	q->r = r;
	q->kind = kind;
	q->arg = arg;
	q->sub[0].q = q->sub[1].q = q;
	q->next = r->live;
	if (r->live)
		r->live->prev = q;
	r->live = q;
	r->nlive++;
	return q;
}

static void deliver_addr(struct rq *q, int status)
{
	const char *p[2 * RESOLVER_MAX_RECORDS];
	int fam[2 * RESOLVER_MAX_RECORDS];
	size_t n = 0;

	if (status == 0) {
		for (int s = 0; s < 2; s++) {
			for (size_t i = 0; i < q->sub[s].n; i++) {
				p[n] = q->sub[s].addrs[i];
				fam[n++] = s == 0 ? AF_INET6 : AF_INET;
			}
		}
		if (n == 0) {
			/* Both families failed: NOTFOUND only if both said so, since a timeout
			 * or SERVFAIL means the name may well exist. */
			status = PE_NOTFOUND;
			for (int s = 0; s < 2; s++)
				if (q->sub[s].status < 0 && q->sub[s].status != PE_NOTFOUND)
					status = q->sub[s].status;
		}
	}
	q->cb.addr(q->arg, status, n ? p : NULL, n ? fam : NULL, n);
}

/* status < 0 forces that status (PE_CLOSED from resolver_free) with no records. */
static void rq_deliver(struct rq *q, int status)
{
	switch (q->kind) {
	case RQ_SRV:
		if (status < 0)
			q->cb.srv(q->arg, status, NULL, 0, false);
		else
			q->cb.srv(q->arg, q->status, q->status ? NULL : q->srv,
				  q->status ? 0 : q->nrec, q->status == 0 && q->no_service);
		break;
	case RQ_NAPTR:
		if (status < 0 || q->status < 0)
			q->cb.naptr(q->arg, status < 0 ? status : q->status, NULL, 0);
		else
			q->cb.naptr(q->arg, 0, q->naptr, q->nrec);
		break;
	case RQ_ADDR:
		deliver_addr(q, status);
		break;
	}
}

static void on_idle(uv_idle_t *h)
{
	struct resolver *r = h->data;
	struct rq *last = r->ready_tail, *q;
	bool more = true;

	/* Only what was queued on entry: a callback that answers itself with a literal
	 * lookup again and again must not keep us here forever. Each request leaves the
	 * live list before its callback, so resolver_free() from that callback neither
	 * reports it nor frees it under us. */
	while (more && !r->closing && (q = r->ready_head)) {
		more = q != last;
		r->ready_head = q->ready_next;
		if (!r->ready_head)
			r->ready_tail = NULL;
		rq_unlink(q);
		if (!q->cancelled)
			rq_deliver(q, 0);
		rq_free(q);
	}
	if (!r->closing && !r->ready_head)
		uv_idle_stop(&r->idle);
}

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct rq_sub *sub = arg;
	struct rq *q = sub->q;
	struct resolver *r = q->r;
	(void)timeouts;

	q->nq--;
	if (r->closing) /* resolver_free() reports and frees everything itself */
		return;
	if (q->cancelled) {
		if (q->nq == 0) {
			rq_unlink(q);
			rq_free(q);
		}
		return;
	}
	int st = map_ares(status);
	if (st == 0) {
		switch (q->kind) {
		case RQ_SRV:
			st = shape_srv(q, abuf, alen);
			break;
		case RQ_NAPTR:
			st = shape_naptr(q, abuf, alen);
			break;
		case RQ_ADDR:
			st = shape_addr(sub, sub == &q->sub[0] ? AF_INET6 : AF_INET, abuf, alen);
			break;
		}
	}
	if (q->kind == RQ_ADDR)
		sub->status = st;
	else
		q->status = st;
	if (q->nq == 0)
		rq_ready(q);
}

/* ---- libuv plumbing ---- */

static void on_timer(uv_timer_t *h);

static void rearm(struct resolver *r)
{
	struct timeval tv;
	if (r->closing)
		return;
	if (!ares_timeout(r->channel, NULL, &tv)) {
		uv_timer_stop(&r->timer);
		return;
	}
	/* Round up: a timer that fires a little early would only spin once more. */
	uint64_t ms = (uint64_t)tv.tv_sec * 1000 + ((uint64_t)tv.tv_usec + 999) / 1000;
	uv_timer_start(&r->timer, on_timer, ms, 0);
}

static void on_timer(uv_timer_t *h)
{
	struct resolver *r = h->data;
	ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	rearm(r);
}

static void handle_closed(struct resolver *r)
{
	if (--r->nhandles == 0 && r->closing) {
		free(r);
		ares_library_cleanup();
	}
}

static void on_handle_close(uv_handle_t *h)
{
	handle_closed(h->data);
}

static void on_poll_close(uv_handle_t *h)
{
	struct rpoll *p = h->data;
	struct resolver *r = p->r;
	free(p);
	handle_closed(r);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct rpoll *p = h->data;
	struct resolver *r = p->r;
	ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;

	/* On a poll error let c-ares read and write, so it meets the socket error itself
	 * and fails over to the next server. */
	if (status < 0 || (events & UV_READABLE))
		rfd = p->fd;
	if (status < 0 || (events & UV_WRITABLE))
		wfd = p->fd;
	ares_process_fd(r->channel, rfd, wfd);
	rearm(r);
}

static void poll_close(struct resolver *r, struct rpoll *p)
{
	for (struct rpoll **pp = &r->polls; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	uv_close((uv_handle_t *)&p->h, on_poll_close);
}

static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct resolver *r = data;
	struct rpoll *p = r->polls;

	while (p && p->fd != fd)
		p = p->next;
	if (!readable && !writable) {
		/* c-ares calls this before it closes fd, so the poll stops first. */
		if (p)
			poll_close(r, p);
		return;
	}
	if (!p) {
		if (!(p = calloc(1, sizeof *p))) {
			log_error(0, "dns_poll", "fd=%d err=%s", (int)fd, pe_strerror(PE_NOMEM));
			return;
		}
		int rc = uv_poll_init_socket(r->loop, &p->h, fd);
		if (rc < 0) {
			/* Without a watcher the query still ends, by timeout. */
			log_error(0, "dns_poll", "fd=%d err=%s", (int)fd, pe_strerror(rc));
			free(p);
			return;
		}
		p->h.data = p;
		p->r = r;
		p->fd = fd;
		p->next = r->polls;
		r->polls = p;
		r->nhandles++;
	}
	uv_poll_start(&p->h, (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0), on_poll);
}

/* ---- Public API ---- */

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t errlen, const char *fmt,
							  ...)
{
	va_list ap;
	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int load_servers(ares_channel ch, const char *const *specs, char *err, size_t errlen)
{
	size_t n = 0;
	while (specs[n])
		n++;
	struct ares_addr_port_node *nodes = calloc(n, sizeof *nodes);
	if (!nodes)
		return PE_NOMEM;
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		struct resolver_server s;
		if (resolver__parse_server(specs[i], strlen(specs[i]), &s) < 0) {
			char esc[80];
			log_escape(esc, sizeof esc, specs[i], strlen(specs[i]));
			set_err(err, errlen,
				"DNS server \"%s\": expected IPv4[:port], [IPv6][:port] or IPv6",
				esc);
			rc = PE_CONFIG;
			goto out;
		}
		nodes[i].next = i + 1 < n ? &nodes[i + 1] : NULL;
		nodes[i].family = s.family;
		if (s.family == AF_INET)
			nodes[i].addr.addr4 = s.addr.v4;
		else
			memcpy(&nodes[i].addr.addr6, &s.addr.v6, sizeof s.addr.v6);
		nodes[i].udp_port = nodes[i].tcp_port = s.port;
	}
	if (ares_set_servers_ports(ch, nodes) != ARES_SUCCESS) {
		set_err(err, errlen, "%s", "c-ares refused the DNS server list");
		rc = PE_DNS;
	}
out:
	free(nodes);
	return rc;
}

int resolver_new(uv_loop_t *loop, const struct resolver_cfg *cfg, struct resolver **out, char *err,
		 size_t errlen)
{
	static const struct resolver_cfg defaults;
	struct ares_options o;
	int rc;

	if (!cfg)
		cfg = &defaults;
	uint32_t timeout = cfg->timeout_ms ? cfg->timeout_ms : RESOLVER_DEFAULT_TIMEOUT_MS;
	uint32_t tries = cfg->tries ? cfg->tries : RESOLVER_DEFAULT_TRIES;
	if (timeout > RESOLVER_MAX_TIMEOUT_MS || tries > RESOLVER_MAX_TRIES) {
		set_err(err, errlen, "%s", "DNS timeout_ms must be <= 600000 and tries <= 10");
		return PE_INVAL;
	}

	struct resolver *r = calloc(1, sizeof *r);
	if (!r)
		return PE_NOMEM;
	r->loop = loop;
	if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) {
		free(r);
		set_err(err, errlen, "%s", "c-ares library init failed");
		return PE_DNS;
	}

	memset(&o, 0, sizeof o);
	o.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_EDNS;
	o.ednspsz = 1232; /* the DNS Flag Day 2020 size: no IP fragmentation */
	o.timeout = (int)timeout;
	o.tries = (int)tries;
	o.lookups = (char *)"b";
	o.sock_state_cb = on_sock_state;
	o.sock_state_cb_data = r;
	int mask = ARES_OPT_FLAGS | ARES_OPT_EDNSPSZ | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
		   ARES_OPT_LOOKUPS | ARES_OPT_SOCK_STATE_CB | ARES_OPT_NOROTATE;
	int st = ares_init_options(&r->channel, &o, mask);
	if (st != ARES_SUCCESS) {
		set_err(err, errlen, "c-ares init failed: %s", ares_strerror(st));
		rc = st == ARES_ENOMEM ? PE_NOMEM : PE_DNS;
		goto fail;
	}
	if (cfg->servers && cfg->servers[0] &&
	    (rc = load_servers(r->channel, cfg->servers, err, errlen)) < 0) {
		ares_destroy(r->channel);
		goto fail;
	}

	uv_timer_init(loop, &r->timer);
	uv_idle_init(loop, &r->idle);
	r->timer.data = r->idle.data = r;
	r->nhandles = 2;
	*out = r;
	return 0;
fail:
	free(r);
	ares_library_cleanup();
	return rc;
}

void resolver_free(struct resolver *r)
{
	if (!r || r->closing)
		return;
	r->closing = true;

	/* Callbacks cannot add requests now (closing) and resolver_cancel only marks, so
	 * the list stays intact while we walk it. */
	for (struct rq *q = r->live; q; q = q->next) {
		if (!q->cancelled) {
			q->cancelled = true;
			rq_deliver(q, PE_CLOSED);
		}
	}
	/* Calls on_answer(ARES_EDESTRUCTION) for queries in flight, which only count down,
	 * and on_sock_state(fd, 0, 0) for open sockets, which closes their polls. */
	ares_destroy(r->channel);
	while (r->live) {
		struct rq *q = r->live;
		rq_unlink(q);
		rq_free(q);
	}
	r->ready_head = r->ready_tail = NULL;
	while (r->polls)
		poll_close(r, r->polls);
	uv_close((uv_handle_t *)&r->timer, on_handle_close);
	uv_close((uv_handle_t *)&r->idle, on_handle_close);
}

void resolver_cancel(struct resolver *r, void *arg)
{
	for (struct rq *q = r->live; q; q = q->next)
		if (q->arg == arg)
			q->cancelled = true;
}

size_t resolver_pending(const struct resolver *r)
{
	return r->nlive;
}

static int start(struct resolver *r, const char *name, enum rq_kind kind, int type, union rq_cb cb,
		 void *arg)
{
	if (r->closing)
		return PE_CLOSED;
	if (!resolver__name_ok(name))
		return PE_INVAL;
	struct rq *q = rq_new(r, kind, arg);
	if (!q)
		return PE_NOMEM;
	q->cb = cb;
	log_debug(0, "dns_query", "type=%s name=%s", kind == RQ_SRV ? "SRV" : "NAPTR", name);
	/* c-ares may call on_answer before ares_query returns (no socket, say); on_answer
	 * only queues, so that is harmless. */
	q->nq = 1;
	ares_query(r->channel, name, C_IN, type, on_answer, &q->sub[0]);
	rearm(r);
	return 0;
}

int resolver_srv(struct resolver *r, const char *name, resolver_srv_cb cb, void *arg)
{
	return start(r, name, RQ_SRV, T_SRV, (union rq_cb){.srv = cb}, arg);
}

int resolver_naptr(struct resolver *r, const char *name, resolver_naptr_cb cb, void *arg)
{
	return start(r, name, RQ_NAPTR, T_NAPTR, (union rq_cb){.naptr = cb}, arg);
}

int resolver_addr(struct resolver *r, const char *host, int family, resolver_addr_cb cb, void *arg)
{
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} bin;
	int lit = 0;

	if (r->closing)
		return PE_CLOSED;
	if (family != AF_INET && family != AF_INET6 && family != AF_UNSPEC)
		return PE_INVAL;
	if (inet_pton(AF_INET6, host, &bin.v6) == 1)
		lit = AF_INET6;
	else if (inet_pton(AF_INET, host, &bin.v4) == 1)
		lit = AF_INET;
	else if (!resolver__name_ok(host))
		return PE_INVAL;

	struct rq *q = rq_new(r, RQ_ADDR, arg);
	if (!q)
		return PE_NOMEM;
	q->cb.addr = cb;
	q->sub[0].status = q->sub[1].status = PE_NOTFOUND;

	if (lit) {
		struct rq_sub *sub = &q->sub[lit == AF_INET6 ? 0 : 1];
		if (family == AF_UNSPEC || family == lit) {
			if (!(sub->addrs = calloc(1, sizeof *sub->addrs))) {
				rq_unlink(q);
				rq_free(q);
				return PE_NOMEM;
			}
			inet_ntop(lit, &bin, sub->addrs[0], sizeof sub->addrs[0]);
			sub->n = 1;
			sub->status = 0;
		}
		rq_ready(q);
		return 0;
	}

	log_debug(0, "dns_query", "type=%s name=%s",
		  family == AF_INET    ? "A"
		  : family == AF_INET6 ? "AAAA"
				       : "AAAA+A",
		  host);
	/* Count both queries before issuing either: the first may end synchronously. */
	q->nq = family == AF_UNSPEC ? 2 : 1;
	if (family != AF_INET)
		ares_query(r->channel, host, C_IN, T_AAAA, on_answer, &q->sub[0]);
	if (family != AF_INET6)
		ares_query(r->channel, host, C_IN, T_A, on_answer, &q->sub[1]);
	rearm(r);
	return 0;
}
