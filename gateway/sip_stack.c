/* The SIP stack: glue between transport, transactions and server location, plus what
 * sits above one transaction — failover across targets, per-URI MESSAGE ordering, pool
 * health checks, the fixed answer used until translation exists. */
#include "sip_stack.h"

#include "err.h"
#include "log.h"
#include "resolver.h"
#include "sip_locate.h"
#include "sip_map.h"
#include "sip_transport.h"
#include "sip_uri.h"
#include "tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum req_state {
	RS_QUEUED,   /* a MESSAGE waiting behind another to the same URI */
	RS_LOCATING, /* server location running */
	RS_SENDING,  /* a client transaction is running */
};

struct mq { /* out-of-dialog MESSAGEs to one Request-URI, RFC 3428 §8 */
	struct sip_map_node node;
	struct sip_req *head, *tail; /* head is the one in progress */
	char key[];
};

struct sip_req {
	struct sip_stack *s;
	struct sip_req *prev, *next; /* all requests */
	struct sip_req *qnext;	     /* MESSAGE queue */
	struct mq *q;
	struct sip_msg *msg;
	sip_stack_cb cb;
	void *arg;
	char *next_hop;
	enum req_state state;
	struct sip_target *t; /* this request's targets, in order */
	size_t nt, cur;
	struct sip_ctxn *ctxn;
	bool health; /* an OPTIONS health check: never fails over */
};

struct dlg_ent {
	struct sip_map_node node;
	struct sip_dialog *d;
	char key[];
};

struct sip_stack {
	uv_loop_t *loop;
	struct sip_stack_cbs cbs;
	void *arg;
	int fixed_answer;
	char *contact_user;
	char *sent_by[SIP_PROTO__N];
	int port[SIP_PROTO__N];
	struct tls_ctx *tls_client, *tls_server;
	struct resolver *res;
	struct sip_locate *loc;
	struct sip_tp *tp;
	struct sip_txn_layer *txn;
	struct sip_req *reqs;
	struct sip_map mqs;
	struct sip_map dialogs;
	uv_timer_t health;
	uint32_t health_ms;
	struct sip_stack_stats stats;
};

/* --- glue -------------------------------------------------------------------------- */

static int io_send(void *arg, const struct sip_hop *hop, const uint8_t *p, size_t n, uint64_t *flow)
{
	struct sip_stack *s = arg;
	return sip_tp_send(s->tp, hop, p, n, flow);
}

static int tp_on_message(void *arg, struct sip_msg *m, const struct sip_hop *src)
{
	struct sip_stack *s = arg;
	return sip_txn_input(s->txn, m, src);
}

static void tp_on_flow_closed(void *arg, uint64_t flow, int reason)
{
	struct sip_stack *s = arg;
	(void)reason;
	sip_txn_flow_failed(s->txn, flow);
}

static void on_request(void *arg, struct sip_stxn *st, struct sip_msg *req);

/* --- helpers ----------------------------------------------------------------------- */

/* Splits "ip:port" / "[v6]:port" into ip and port. */
static int split_hostport(const char *s, char *ip, size_t cap, int *port)
{
	const char *c;
	size_t n;
	if (!s)
		return PE_INVAL;
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb[1] != ':')
			return PE_INVAL;
		n = (size_t)(rb - s - 1);
		s++;
		c = rb + 1;
	} else {
		c = strrchr(s, ':');
		if (!c)
			return PE_INVAL;
		n = (size_t)(c - s);
	}
	if (n == 0 || n >= cap)
		return PE_INVAL;
	memcpy(ip, s, n);
	ip[n] = '\0';
	char *end;
	long v = strtol(c + 1, &end, 10);
	if (end == c + 1 || *end || v < 0 || v > 65535)
		return PE_INVAL;
	*port = (int)v;
	return 0;
}

static bool needs_contact(const char *method)
{
	return strcmp(method, "SUBSCRIBE") == 0 || strcmp(method, "NOTIFY") == 0 ||
	       strcmp(method, "REFER") == 0 || strcmp(method, "INVITE") == 0;
}

static int contact_for(struct sip_stack *s, enum sip_proto p, char *out, size_t cap)
{
	static const char *const tp[] = {"udp", "tcp", "tls"};
	/* name a transport we really listen on */
	if (!s->port[p] && p != SIP_PROTO_UDP)
		p = p == SIP_PROTO_TLS ? SIP_PROTO_TCP : SIP_PROTO_TLS;
	if (!s->sent_by[p] || !s->port[p])
		return PE_STATE;
	int n =
	    snprintf(out, cap, "<sip:%s@%s;transport=%s>", s->contact_user, s->sent_by[p], tp[p]);
	return n < 0 || (size_t)n >= cap ? PE_TOOBIG : 0;
}

/* --- lifecycle --------------------------------------------------------------------- */

static void on_health(uv_timer_t *t);

int sip_stack_new(uv_loop_t *loop, const struct sip_cfg *cfg, const struct sip_stack_cbs *cbs,
		  void *arg, struct sip_stack **out, char *err, size_t errlen)
{
	struct sip_stack *s = calloc(1, sizeof *s);
	char ebuf[256] = "";
	int r = PE_CONFIG;

	*out = NULL;
	if (!s)
		return PE_NOMEM;
	if (err && errlen)
		err[0] = '\0';
	s->loop = loop;
	if (cbs)
		s->cbs = *cbs;
	s->arg = arg;
	s->fixed_answer = cfg->fixed_answer;
	s->contact_user = strdup(cfg->contact_user ? cfg->contact_user : "parley");
	uv_timer_init(loop, &s->health);
	s->health.data = s;
	if (!s->contact_user)
		goto nomem;
	if (cfg->fixed_answer && (cfg->fixed_answer < 200 || cfg->fixed_answer > 699)) {
		snprintf(ebuf, sizeof ebuf, "fixed_answer %d is not a final status",
			 cfg->fixed_answer);
		goto fail;
	}

	/* TLS */
	if (cfg->tls_ca || cfg->tls_no_verify) {
		struct tls_ctx_cfg tc = {
		    .ca_file = cfg->tls_ca, .cert_file = cfg->tls_cert, .key_file = cfg->tls_key};
		s->tls_client = tls_ctx_new(false, &tc, ebuf, sizeof ebuf);
		if (!s->tls_client)
			goto fail;
	}
	if (cfg->listen_tls) {
		struct tls_ctx_cfg tc = {
		    .ca_file = cfg->tls_ca, .cert_file = cfg->tls_cert, .key_file = cfg->tls_key};
		if (!cfg->tls_cert || !cfg->tls_key) {
			snprintf(ebuf, sizeof ebuf, "listen_tls needs tls_cert and tls_key");
			goto fail;
		}
		s->tls_server = tls_ctx_new(true, &tc, ebuf, sizeof ebuf);
		if (!s->tls_server)
			goto fail;
	}

	/* transport and listeners */
	struct sip_tp_cfg tpc = {.max_header = cfg->max_header,
				 .max_body = cfg->max_body,
				 .keepalive_ms = cfg->keepalive_ms,
				 .idle_ms = cfg->idle_ms,
				 .connect_ms = cfg->connect_ms,
				 .tls_client = s->tls_client,
				 .tls_server = s->tls_server,
				 .tls_no_verify = cfg->tls_no_verify};
	struct sip_tp_cbs tcb = {.on_message = tp_on_message, .on_flow_closed = tp_on_flow_closed};
	s->tp = sip_tp_new(loop, &tpc, &tcb, s);
	if (!s->tp)
		goto nomem;
	const char *listen[SIP_PROTO__N] = {cfg->listen_udp, cfg->listen_tcp, cfg->listen_tls};
	for (int p = 0; p < SIP_PROTO__N; p++) {
		char ip[64], sb[300];
		int port;
		if (!listen[p])
			continue;
		if (split_hostport(listen[p], ip, sizeof ip, &port) != 0) {
			snprintf(ebuf, sizeof ebuf, "bad listen address \"%s\"", listen[p]);
			goto fail;
		}
		int got = sip_tp_listen(s->tp, (enum sip_proto)p, ip, port);
		if (got < 0) {
			snprintf(ebuf, sizeof ebuf, "cannot listen on %s %s: %s",
				 sip_proto_name((enum sip_proto)p), listen[p], pe_strerror(got));
			goto fail;
		}
		s->port[p] = got;
		const char *host = cfg->advertise ? cfg->advertise : ip;
		if (strchr(host, ':'))
			snprintf(sb, sizeof sb, "[%s]:%d", host, got);
		else
			snprintf(sb, sizeof sb, "%s:%d", host, got);
		if (!(s->sent_by[p] = strdup(sb)))
			goto nomem;
		log_info(0, "sip_listen", "proto=%s addr=%s:%d", sip_proto_name((enum sip_proto)p),
			 ip, got);
	}

	/* A stream transport we do not listen on still needs a sent-by: the other stream
	 * listener's (responses come back on the same connection anyway). */
	if (!s->sent_by[SIP_PROTO_TLS] && s->sent_by[SIP_PROTO_TCP] &&
	    !(s->sent_by[SIP_PROTO_TLS] = strdup(s->sent_by[SIP_PROTO_TCP])))
		goto nomem;
	if (!s->sent_by[SIP_PROTO_TCP] && s->sent_by[SIP_PROTO_TLS] &&
	    !(s->sent_by[SIP_PROTO_TCP] = strdup(s->sent_by[SIP_PROTO_TLS])))
		goto nomem;

	/* transactions */
	struct sip_txn_cfg txc = {.t1_ms = cfg->t1_ms, .t2_ms = cfg->t2_ms, .t4_ms = cfg->t4_ms};
	for (int p = 0; p < SIP_PROTO__N; p++)
		txc.sent_by[p] = s->sent_by[p];
	struct sip_txn_io io = {.send = io_send, .on_request = on_request};
	s->txn = sip_txn_layer_new(loop, &txc, &io, s);
	if (!s->txn)
		goto nomem;

	/* server location */
	if (cfg->pool_domain || cfg->dns_servers) {
		struct resolver_cfg rc = {.servers = cfg->dns_servers};
		r = resolver_new(loop, &rc, &s->res, ebuf, sizeof ebuf);
		if (r) {
			r = PE_CONFIG;
			goto fail;
		}
	}
	if (!cfg->pool && !cfg->pool_domain) {
		snprintf(ebuf, sizeof ebuf, "neither pool members nor pool_domain configured");
		r = PE_CONFIG;
		goto fail;
	}
	struct sip_locate_cfg lc = {
	    .pool = cfg->pool, .domain = cfg->pool_domain, .sips = cfg->pool_sips};
	s->loc = sip_locate_new(loop, s->res, &lc, ebuf, sizeof ebuf);
	if (!s->loc) {
		r = PE_CONFIG;
		goto fail;
	}
	s->health_ms = cfg->health_ms;
	if (s->health_ms) {
		uv_timer_start(&s->health, on_health, s->health_ms, s->health_ms);
		uv_unref((uv_handle_t *)&s->health);
	}
	*out = s;
	return 0;
nomem:
	r = PE_NOMEM;
	snprintf(ebuf, sizeof ebuf, "out of memory");
fail:
	if (r != PE_NOMEM)
		r = PE_CONFIG;
	if (err && errlen)
		snprintf(err, errlen, "%s", ebuf);
	sip_stack_free(s);
	return r;
}

static void req_free(struct sip_req *r);

static void on_health_closed(uv_handle_t *h)
{
	free(h->data);
}

static void free_dlg(struct sip_map_node *n, void *arg)
{
	(void)arg;
	free(sip_map_entry(n, struct dlg_ent, node));
}

static void free_mq(struct sip_map_node *n, void *arg)
{
	(void)arg;
	free(sip_map_entry(n, struct mq, node));
}

void sip_stack_free(struct sip_stack *s)
{
	if (!s)
		return;
	while (s->reqs) {
		struct sip_req *r = s->reqs;
		if (r->state == RS_SENDING && r->ctxn)
			sip_ctxn_abandon(r->ctxn);
		r->q = NULL;
		req_free(r);
	}
	sip_map_foreach(&s->mqs, free_mq, NULL);
	sip_map_deinit(&s->mqs);
	sip_map_foreach(&s->dialogs, free_dlg, NULL);
	sip_map_deinit(&s->dialogs);
	sip_locate_free(s->loc);
	sip_txn_layer_free(s->txn);
	sip_tp_free(s->tp);
	resolver_free(s->res);
	tls_ctx_free(s->tls_client);
	tls_ctx_free(s->tls_server);
	for (int p = 0; p < SIP_PROTO__N; p++)
		free(s->sent_by[p]);
	free(s->contact_user);
	uv_timer_stop(&s->health);
	uv_close((uv_handle_t *)&s->health, on_health_closed);
}

int sip_stack_port(const struct sip_stack *s, enum sip_proto proto)
{
	return (unsigned)proto < SIP_PROTO__N ? s->port[proto] : 0;
}

void sip_stack_stats(const struct sip_stack *s, struct sip_stack_stats *out)
{
	*out = s->stats;
	out->txn = sip_txn_stats(s->txn);
	out->tp = sip_tp_stats(s->tp);
}

/* --- outgoing ---------------------------------------------------------------------- */

struct sip_msg *sip_stack_new_request(struct sip_stack *s, const char *method, const char *ruri,
				      const char *from, const char *to, const char *call_id)
{
	char tag[17], cid[64];
	struct sip_msg *m = sip_msg_new_request(method, ruri);
	(void)s;
	if (!m)
		return NULL;
	sip_random_token(tag, sizeof tag);
	if (!call_id) {
		sip_random_token(cid, 25);
		call_id = cid;
	}
	if (sip_msg_set_from(m, from, tag) || sip_msg_set_to(m, to, NULL) ||
	    sip_msg_set_call_id(m, call_id) || sip_msg_set_cseq(m, 1, method) ||
	    sip_msg_set_max_forwards(m, 70)) {
		sip_msg_free(m);
		return NULL;
	}
	return m;
}

static void req_unlink(struct sip_req *r)
{
	struct sip_stack *s = r->s;
	if (r->prev)
		r->prev->next = r->next;
	else if (s->reqs == r)
		s->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
}

static void req_release(struct sip_req *r)
{
	sip_msg_free(r->msg);
	free(r->next_hop);
	free(r->t);
	free(r);
}

static void req_free(struct sip_req *r)
{
	req_unlink(r);
	if (r->state == RS_LOCATING)
		sip_locate_cancel(r->s->loc, r);
	req_release(r);
}

static void req_start(struct sip_req *r);

/* The request is over: the next queued MESSAGE to the same URI may go. */
static void req_release_queue(struct sip_req *r)
{
	struct mq *q = r->q;
	struct sip_stack *s = r->s;
	if (!q)
		return;
	r->q = NULL;
	if (q->head == r) {
		q->head = r->qnext;
		if (!q->head)
			q->tail = NULL;
		if (q->head) {
			req_start(q->head);
			return;
		}
	} else {
		/* abandoned while waiting: unlink from the middle */
		struct sip_req *p = q->head;
		while (p && p->qnext != r)
			p = p->qnext;
		if (p) {
			p->qnext = r->qnext;
			if (q->tail == r)
				q->tail = p;
		}
		return;
	}
	sip_map_remove(&s->mqs, &q->node);
	free(q);
}

static void req_done(struct sip_req *r, struct sip_msg *resp)
{
	sip_stack_cb cb = r->cb;
	void *arg = r->arg;
	req_unlink(r);
	req_release_queue(r);
	r->state = RS_SENDING; /* nothing to cancel any more */
	if (cb)
		cb(arg, resp);
	req_release(r);
}

static void req_fail_local(struct sip_req *r, int status)
{
	struct sip_msg *resp = sip_msg_new_response(r->msg, status, NULL, NULL);
	if (!resp)
		abort();
	sip_msg_set_local(resp);
	req_done(r, resp);
	sip_msg_free(resp);
}

static void req_attempt(struct sip_req *r);

static void on_final(void *arg, struct sip_msg *resp)
{
	struct sip_req *r = arg;
	struct sip_stack *s = r->s;
	int st = sip_msg_status(resp);
	bool local = sip_msg_is_local(resp);
	const struct sip_hop *hop = &r->t[r->cur].hop;

	r->ctxn = NULL;
	if (local && (st == 503 || st == 408))
		sip_locate_mark(s->loc, hop, false);
	else
		sip_locate_mark(s->loc, hop, true);
	if (!r->health && (st == 503 || (local && st == 408)) && r->cur + 1 < r->nt) {
		char hs[96];
		r->cur++;
		s->stats.failovers++;
		log_info(0, "sip_failover", "status=%d%s next=\"%s\"", st, local ? " (local)" : "",
			 sip_hop_str(&r->t[r->cur].hop, hs, sizeof hs));
		req_attempt(r);
		return;
	}
	if (r->health) {
		if (local && (st == 503 || st == 408))
			s->stats.health_down++;
		else
			s->stats.health_up++;
	}
	req_done(r, resp);
}

static void req_attempt(struct sip_req *r)
{
	struct sip_stack *s = r->s;
	while (r->cur < r->nt) {
		const struct sip_hop *hop = &r->t[r->cur].hop;
		const char *method = sip_msg_method(r->msg);
		char contact[400];
		/* the Contact names the transport of this attempt */
		if (needs_contact(method) &&
		    contact_for(s, hop->proto, contact, sizeof contact) == 0)
			sip_msg_set_contact(r->msg, contact);
		int rc = sip_txn_request(s->txn, r->msg, hop, on_final, r, &r->ctxn);
		if (rc == 0) {
			r->state = RS_SENDING;
			return;
		}
		char hs[96];
		log_info(0, "sip_attempt_failed", "target=\"%s\" err=\"%s\"",
			 sip_hop_str(hop, hs, sizeof hs), pe_strerror(rc));
		r->cur++;
	}
	req_fail_local(r, 503);
}

static void on_located(void *arg, int status, const struct sip_target *t, size_t n)
{
	struct sip_req *r = arg;
	if (status || n == 0) {
		log_info(0, "sip_locate_failed", "hop=%s err=\"%s\"",
			 r->next_hop ? r->next_hop : "pool",
			 pe_strerror(status ? status : PE_NOTFOUND));
		r->state = RS_SENDING;
		req_fail_local(r, 503);
		return;
	}
	r->t = malloc(n * sizeof t[0]);
	if (!r->t)
		abort();
	memcpy(r->t, t, n * sizeof t[0]);
	r->nt = n;
	r->cur = 0;
	req_attempt(r);
}

static void req_start(struct sip_req *r)
{
	r->state = RS_LOCATING;
	/* next_hop was checked in sip_stack_send: only allocation can fail here */
	if (sip_locate_resolve(r->s->loc, r->next_hop, on_located, r) != 0)
		abort();
}

int sip_stack_send(struct sip_stack *s, struct sip_msg *req, const char *next_hop, sip_stack_cb cb,
		   void *arg, struct sip_req **out)
{
	struct sip_req *r;
	const char *method = sip_msg_method(req);

	if (out)
		*out = NULL;
	struct sip_uri u;
	if (!method ||
	    (next_hop && (sip_uri_parse(next_hop, strlen(next_hop), &u) != 0 || !u.sip))) {
		sip_msg_free(req);
		return PE_INVAL;
	}
	r = calloc(1, sizeof *r);
	if (!r || (next_hop && !(r->next_hop = strdup(next_hop)))) {
		free(r);
		sip_msg_free(req);
		return PE_NOMEM;
	}
	r->s = s;
	r->msg = req;
	r->cb = cb;
	r->arg = arg;
	r->next = s->reqs;
	if (s->reqs)
		s->reqs->prev = r;
	s->reqs = r;
	s->stats.requests_out++;
	if (out)
		*out = r;

	if (strcmp(method, "MESSAGE") == 0 && !sip_msg_to_tag(req)) {
		const char *ruri = sip_msg_ruri(req);
		size_t kl = ruri ? strlen(ruri) : 0;
		struct sip_map_node *n = ruri ? sip_map_find(&s->mqs, ruri, kl) : NULL;
		if (n) {
			struct mq *q = sip_map_entry(n, struct mq, node);
			r->q = q;
			r->state = RS_QUEUED;
			q->tail->qnext = r;
			q->tail = r;
			s->stats.message_queued++;
			return 0;
		}
		if (ruri) {
			struct mq *q = calloc(1, sizeof *q + kl + 1);
			if (q) {
				memcpy(q->key, ruri, kl + 1);
				q->head = q->tail = r;
				r->q = q;
				sip_map_insert(&s->mqs, &q->node, q->key, kl);
			}
		}
	}
	req_start(r);
	return 0;
}

void sip_stack_abandon(struct sip_req *r)
{
	if (!r)
		return;
	if (r->state == RS_SENDING && r->ctxn)
		sip_ctxn_abandon(r->ctxn);
	r->ctxn = NULL;
	req_unlink(r);
	if (r->state == RS_LOCATING)
		sip_locate_cancel(r->s->loc, r);
	r->state = RS_SENDING;
	req_release_queue(r);
	req_release(r);
}

/* --- health checks ----------------------------------------------------------------- */

static void on_health(uv_timer_t *t)
{
	struct sip_stack *s = t->data;
	size_t n;
	const struct sip_target *pool = sip_locate_pool(s->loc, &n);
	for (size_t i = 0; i < n; i++) {
		char ip[64], ruri[128], from[200];
		int port;
		const struct sip_hop *hop = &pool[i].hop;
		if (!s->sent_by[hop->proto])
			continue;
		sip_hop_ip(hop, ip, sizeof ip, &port);
		if (hop->addr.ss_family == AF_INET6)
			snprintf(ruri, sizeof ruri, "sip:[%s]:%d", ip, port);
		else
			snprintf(ruri, sizeof ruri, "sip:%s:%d", ip, port);
		snprintf(from, sizeof from, "sip:%s@%s", s->contact_user, s->sent_by[hop->proto]);
		struct sip_msg *m = sip_stack_new_request(s, "OPTIONS", ruri, from, ruri, NULL);
		if (!m)
			continue;
		struct sip_req *r = calloc(1, sizeof *r);
		if (!r) {
			sip_msg_free(m);
			continue;
		}
		r->s = s;
		r->msg = m;
		r->health = true;
		r->t = malloc(sizeof *r->t);
		if (!r->t)
			abort();
		r->t[0] = pool[i];
		r->nt = 1;
		r->next = s->reqs;
		if (s->reqs)
			s->reqs->prev = r;
		s->reqs = r;
		req_attempt(r);
	}
}

/* --- incoming ---------------------------------------------------------------------- */

struct sip_msg *sip_stack_response(struct sip_stack *s, struct sip_stxn *st, int status,
				   const char *reason)
{
	struct sip_msg *resp = sip_stxn_response(st, status, reason);
	struct sip_msg *req = sip_stxn_request(st);
	char contact[400];
	if (resp && status >= 200 && status < 300 &&
	    strcmp(sip_msg_method(req), "SUBSCRIBE") == 0 &&
	    contact_for(s, sip_stxn_source(st)->proto, contact, sizeof contact) == 0)
		sip_msg_add_header(resp, "Contact", contact);
	return resp;
}

static void on_notify_done(void *arg, struct sip_msg *resp)
{
	(void)arg;
	log_debug(0, "sip_fixed_notify_done", "status=%d", sip_msg_status(resp));
}

/* The fixed answer's SUBSCRIBE: accept, then end the subscription at once with a
 * NOTIFY, as RFC 6665 requires a NOTIFY after a 2xx. */
static void fixed_subscribe(struct sip_stack *s, struct sip_stxn *st, struct sip_msg *req)
{
	struct sip_dialog d;
	struct sip_msg *resp = sip_stack_response(s, st, s->fixed_answer, NULL);
	char event[128] = "presence", next[1024], expv[16];
	int exp = sip_msg_expires(req);

	/* req goes away with the final response on a stream: copy what we need first */
	if (sip_msg_event(req))
		snprintf(event, sizeof event, "%s", sip_msg_event(req));

	snprintf(expv, sizeof expv, "%d", exp < 0 || exp > 3600 ? 3600 : exp);
	sip_msg_add_header(resp, "Expires", expv);
	if (sip_dialog_init_uas(&d, req, sip_stxn_local_tag(st), 0) != 0) {
		/* no Contact: cannot form a dialog */
		sip_msg_free(resp);
		sip_stxn_reply(st, 400, "Bad Request (missing Contact)");
		return;
	}
	sip_stxn_respond(st, resp);
	struct sip_msg *n = sip_dialog_new_request(&d, "NOTIFY");
	if (n && sip_dialog_next_hop(&d, next, sizeof next) == 0) {
		sip_msg_add_header(n, "Event", event);
		sip_msg_add_header(n, "Subscription-State", "terminated;reason=noresource");
		sip_stack_send(s, n, next, on_notify_done, NULL, NULL);
	} else {
		sip_msg_free(n);
	}
	sip_dialog_deinit(&d);
}

static void on_request(void *arg, struct sip_stxn *st, struct sip_msg *req)
{
	struct sip_stack *s = arg;
	const char *method = sip_msg_method(req);

	if (strcmp(method, "OPTIONS") == 0) {
		struct sip_msg *resp = sip_stack_response(s, st, 200, NULL);
		sip_msg_add_header(resp, "Allow", "MESSAGE, SUBSCRIBE, NOTIFY, PUBLISH, OPTIONS");
		sip_msg_add_header(resp, "Accept", "text/plain, application/pidf+xml");
		sip_stxn_respond(st, resp);
		return;
	}
	s->stats.requests_in++;
	if (s->fixed_answer) {
		if (sip_msg_to_tag(req) && !sip_stack_dialog_find(s, req)) {
			sip_stxn_reply(st, 481, NULL);
			return;
		}
		if (strcmp(method, "SUBSCRIBE") == 0 && s->fixed_answer < 300 &&
		    !sip_msg_to_tag(req)) {
			fixed_subscribe(s, st, req);
			return;
		}
		sip_stxn_reply(st, s->fixed_answer, NULL);
		return;
	}
	if (!s->cbs.on_request) {
		sip_stxn_reply(st, 501, NULL);
		return;
	}
	s->cbs.on_request(s->arg, st, req);
}

/* --- dialogs ----------------------------------------------------------------------- */

int sip_stack_dialog_register(struct sip_stack *s, struct sip_dialog *d)
{
	char key[1024];
	int n = sip_dialog_key(d, key, sizeof key);
	if (n < 0)
		return n;
	struct dlg_ent *e = calloc(1, sizeof *e + (size_t)n + 1);
	if (!e)
		return PE_NOMEM;
	e->d = d;
	memcpy(e->key, key, (size_t)n + 1);
	sip_map_insert(&s->dialogs, &e->node, e->key, (size_t)n);
	return 0;
}

void sip_stack_dialog_unregister(struct sip_stack *s, struct sip_dialog *d)
{
	char key[1024];
	int n = sip_dialog_key(d, key, sizeof key);
	if (n < 0)
		return;
	struct sip_map_node *node = sip_map_find(&s->dialogs, key, (size_t)n);
	if (!node)
		return;
	sip_map_remove(&s->dialogs, node);
	free(sip_map_entry(node, struct dlg_ent, node));
}

struct sip_dialog *sip_stack_dialog_find(struct sip_stack *s, struct sip_msg *req)
{
	char key[1024];
	int n = sip_dialog_key_of_request(req, key, sizeof key);
	if (n < 0)
		return NULL;
	struct sip_map_node *node = sip_map_find(&s->dialogs, key, (size_t)n);
	if (!node)
		return NULL;
	struct sip_dialog *d = sip_map_entry(node, struct dlg_ent, node)->d;
	return sip_dialog_matches(d, req) ? d : NULL;
}
