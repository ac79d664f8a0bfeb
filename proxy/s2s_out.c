/* Outbound S2S. A route is one (local domain, remote domain) pair: its queue, its DNS and
 * connection attempts, and at most one stream. A stream (struct oconn) is owned through its
 * net_conn and freed in the connection's close callback; a route outlives its streams and is
 * freed, after its timer closes, once it has nothing queued and no stream.
 *
 * Establishment: SRV _xmpps-server and _xmpp-server in parallel (or the partner's fixed
 * proxy) -> targets ordered by priority, direct TLS first on a tie -> per target A/AAAA ->
 * TCP attempts started stagger_ms apart, IPv6 and IPv4 interleaved, the first to connect
 * wins -> stream header -> STARTTLS (or TLS from the first byte) -> certificate identity ->
 * SASL EXTERNAL, else dialback where the partner's rules allow -> XEP-0198 <enable/> if
 * offered -> ready. All of it under the policy's establishment timeout.
 *
 * Outcomes: without XEP-0198 a stanza is delivered once written to the ready stream; with it,
 * once the partner's <a h/> covers it. A stream lost with unacknowledged stanzas puts them
 * back at the head of the queue for the next stream (the partner may see them twice: that is
 * what XEP-0198 without resumption allows). */
#include "s2s_out.h"

#include "certid.h"
#include "err.h"
#include "log.h"
#include "net.h"
#include "policy.h"
#include "resolver.h"
#include "stanza.h"
#include "tls.h"
#include "xml_stream.h"
#include "xmpp_out.h"

#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#define NS_TLS "urn:ietf:params:xml:ns:xmpp-tls"
#define NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"
#define NS_SM "urn:xmpp:sm:3"
#define DOMAIN_MAX 256
#define MAX_TARGETS 16
#define MAX_ADDRS 16
#define MAX_VREQS 1024
#define MAX_REESTABLISH 3
#define VERIFY_LINGER_MS 10000
/* Stop writing stanzas into a stream whose output the partner does not drain. */
#define OUT_BACKLOG_MAX (1024 * 1024)

/* ---- types ---- */

struct item {
	struct item *next;
	struct s2s_out_ticket t;
	size_t len;
	char data[];
};

struct vreq {
	struct vreq *next;
	s2s_out_verify_cb cb;
	void *arg;
	bool sent;
	char id[128];
	char key[257];
};

struct target {
	char host[DOMAIN_MAX];
	uint16_t port;
	uint16_t priority;
	bool direct;
};

enum route_state {
	R_IDLE,	      /* nothing under way */
	R_RESOLVING,  /* SRV lookups (or none, with a fixed proxy) */
	R_CONNECTING, /* addresses of one target, staggered TCP attempts */
	R_STREAM,     /* one connection negotiates the stream */
	R_READY,      /* authenticated (verification routes: open): traffic flows */
};

enum oc_state {
	OC_CONNECTING, /* TCP attempt */
	OC_TLS,	       /* TLS handshake (direct, or after <proceed/>) */
	OC_HEADER,     /* our header sent, waiting for theirs and the features */
	OC_STARTTLS,   /* <starttls/> sent */
	OC_SASL,       /* <auth mechanism='EXTERNAL'/> sent */
	OC_DIALBACK,   /* <db:result/> sent, waiting for the verdict */
	OC_SM,	       /* <enable/> sent */
	OC_READY,      /* stanzas flow */
	OC_CLOSING,    /* closed or closing; nothing more is read */
};

struct route;

struct oconn {
	struct oconn *next; /* in the route's attempt list */
	struct route *r;    /* NULL once detached */
	struct s2s_out *so;
	struct net_conn *c;
	uint64_t id;
	char addr[64];
	uint16_t port;
	bool direct;
	enum oc_state st;
	struct xs *xs;
	bool tls, cert_ok, authed, sasl_tried, header_db, sm;
	int method; /* PARLEY__LINK__AUTH_METHOD__* */
	char stream_id[128];
	/* why it failed, for the route's bounce */
	const char *fail_cond;
	char fail_text[512];
	bool fatal; /* another address would not help */
};

struct route {
	struct route *next;
	struct s2s_out *so;
	uint64_t id;
	char local[DOMAIN_MAX], remote[DOMAIN_MAX];
	bool verify; /* carries db:verify queries, no authentication */
	enum route_state state;
	struct policy *pol;
	const struct partner *partner;
	/* stanzas waiting, and written but not yet acknowledged (XEP-0198) */
	struct item *q, **qtail;
	size_t qn;
	struct item *sent, **senttail;
	size_t sentn;
	uint32_t sm_h;	    /* the partner's last <a h/> */
	bool r_out;	    /* an <r/> is unanswered */
	uint64_t r_sent_ms; /* when it was sent */
	bool r_due;	    /* on the s2s_out's r list */
	struct route *rnext;
	struct vreq *vq;
	size_t nvq;
	/* resolution */
	int srv_pending;
	bool no_service[2]; /* [0] _xmpps-server, [1] _xmpp-server */
	struct target targets[MAX_TARGETS];
	size_t ntargets, tnext;
	bool addr_pending;
	char addrs[MAX_ADDRS][64];
	size_t naddrs, anext;
	struct oconn *attempts;
	unsigned nattempts;
	struct oconn *conn;
	uint64_t deadline_at, stagger_at;
	unsigned reestablish; /* stream losses in a row without progress */
	uv_timer_t timer;
	bool start_pending; /* route_start from the timer, not from the caller's stack */
	bool freeing;
	uint64_t last_use_ms, last_tx_ms;
	uint64_t ready_ms; /* when the current stream became ready (parleyctl) */
	uint64_t written;  /* stanzas written on this route's streams (parleyctl) */
	const char *fail_cond;
	char fail_text[512];
};

struct s2s_out {
	uv_loop_t *loop;
	const struct s2s_conf *s2s;
	const struct s2s_out_conf *conf;
	struct s2s_out_hooks hooks;
	struct tls_ctx *tls_starttls, *tls_direct;
	struct resolver *res;
	struct policy *pol;
	struct dialback db;
	struct route *routes;
	size_t nroutes;
	struct route *rlist; /* routes owed an <r/> */
	uv_check_t check;
	struct buf scratch;
	struct s2s_out_stats stats;
	uint64_t next_route_id;
	bool stopping;
};

static uint64_t now_ms(const struct s2s_out *so)
{
	return uv_now(so->loop);
}

/* ---- small helpers ---- */

static bool copy_domain(char *dst, const char *src, size_t n)
{
	if (n == 0 || n >= DOMAIN_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)src[i];
		if (c <= 0x20 || c >= 0x7f || c == '@' || c == '/' || c == '<' || c == '>' ||
		    c == '\'' || c == '"' || c == '&' || c == ':' || c == '[' || c == ']')
			return false;
		dst[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
	}
	dst[n] = 0;
	return true;
}

static void oc_write(struct oconn *oc, const void *p, size_t n)
{
	if (oc->st == OC_CLOSING)
		return;
	net_conn_write(oc->c, p, n);
	if (oc->r)
		oc->r->last_tx_ms = now_ms(oc->so);
}

static void oc_puts(struct oconn *oc, const char *s)
{
	oc_write(oc, s, strlen(s));
}

static void route_arm(struct route *r);
static void route_maybe_free(struct route *r);
static void route_next_attempt(struct route *r);
static void route_fail(struct route *r, const char *cond, const char *text);
static void route_start(struct route *r);

/* ---- outcomes ---- */

static void deliver(struct s2s_out *so, struct item *it)
{
	so->stats.delivered++;
	if (so->hooks.on_delivered)
		so->hooks.on_delivered(so->hooks.arg, &it->t);
	free(it);
}

static void bounce_ticket(struct s2s_out *so, const struct s2s_out_ticket *t, const char *type,
			  const char *cond, const char *text, const char *local, const char *remote)
{
	char esc[700];
	so->stats.bounced++;
	log_info(0, "s2s_out_bounce", "ref=%llu from=%s to=%s cond=%s text=\"%s\"",
		 (unsigned long long)t->ref, local ? local : "-", remote ? remote : "-", cond,
		 log_escape(esc, sizeof esc, text, strlen(text)));
	if (so->hooks.on_bounce)
		so->hooks.on_bounce(so->hooks.arg, t, type, cond, text);
}

static const char *cond_type(const char *cond)
{
	if (strcmp(cond, "remote-server-timeout") == 0 || strcmp(cond, "resource-constraint") == 0)
		return "wait";
	if (strcmp(cond, "bad-request") == 0 || strcmp(cond, "jid-malformed") == 0)
		return "modify";
	return "cancel";
}

/* ---- stream output ---- */

static void send_header(struct oconn *oc)
{
	char h[700];
	snprintf(h, sizeof h,
		 "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
		 "xmlns:stream='http://etherx.jabber.org/streams' "
		 "xmlns:db='jabber:server:dialback' from='%s' to='%s' version='1.0'>",
		 oc->r->local, oc->r->remote);
	oc_puts(oc, h);
	oc->st = OC_HEADER;
}

/* Ends the stream and the connection. Stanzas of a dead stream are the route's business. */
static void oc_close(struct oconn *oc, int reason, bool send_close)
{
	if (oc->st == OC_CLOSING)
		return;
	if (send_close && oc->st >= OC_HEADER)
		oc_puts(oc, "</stream:stream>");
	oc->st = OC_CLOSING;
	net_conn_close(oc->c, reason);
}

/* Records why this connection failed, then closes it; the route moves on when the close
 * callback runs. */
static void oc_fail(struct oconn *oc, const char *cond, bool fatal, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void oc_fail(struct oconn *oc, const char *cond, bool fatal, const char *fmt, ...)
{
	if (oc->st == OC_CLOSING)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(oc->fail_text, sizeof oc->fail_text, fmt, ap);
	va_end(ap);
	oc->fail_cond = cond;
	oc->fatal = fatal;
	log_warn(oc->id, "s2s_out_fail", "peer=%s:%u from=%s to=%s cond=%s fatal=%d why=\"%s\"",
		 oc->addr, oc->port, oc->r ? oc->r->local : "-", oc->r ? oc->r->remote : "-", cond,
		 fatal, oc->fail_text);
	oc_close(oc, PE_PROTO, true);
}

static void oc_stream_error(struct oconn *oc, enum xs_cond cond, const char *text)
{
	struct buf b;
	if (oc->st == OC_CLOSING)
		return;
	buf_init(&b, 0);
	struct xs_error e = {.cond = cond, .app = XS_APP_NONE, .text = text};
	if (xs_write_stream_error(&b, &e) == 0)
		oc_write(oc, buf_head(&b), buf_len(&b));
	buf_deinit(&b);
	oc_fail(oc, "remote-server-not-found", true, "we ended the stream: %s (%s)",
		xs_cond_name(cond), text);
}

/* ---- XEP-0198 ---- */

static void want_r(struct route *r)
{
	if (r->r_due || !r->conn || !r->conn->sm)
		return;
	r->r_due = true;
	r->rnext = r->so->rlist;
	r->so->rlist = r;
}

/* After the I/O of one loop turn: one <r/> per route for everything written in it. */
static void on_check(uv_check_t *h)
{
	struct s2s_out *so = h->data;
	struct route *r = so->rlist;
	so->rlist = NULL;
	while (r) {
		struct route *next = r->rnext;
		r->r_due = false;
		r->rnext = NULL;
		if (r->conn && r->conn->st == OC_READY && r->conn->sm && r->sentn && !r->r_out) {
			oc_puts(r->conn, "<r xmlns='" NS_SM "'/>");
			r->r_out = true;
			r->r_sent_ms = now_ms(so);
		}
		r = next;
	}
}

static void handle_ack(struct route *r, const char *hs)
{
	char *end;
	unsigned long long h = hs ? strtoull(hs, &end, 10) : 0;
	if (!hs || *end || h > 0xffffffffull) {
		oc_stream_error(r->conn, XS_COND_INVALID_XML, "bad 'h' in <a/>");
		return;
	}
	uint32_t n = (uint32_t)h - r->sm_h;
	if (n > r->sentn) {
		oc_stream_error(r->conn, XS_COND_UNDEFINED_CONDITION,
				"<a/> acknowledges more stanzas than were sent");
		return;
	}
	r->sm_h = (uint32_t)h;
	r->r_out = false;
	if (n)
		r->reestablish = 0;
	while (n--) {
		struct item *it = r->sent;
		r->sent = it->next;
		if (!r->sent)
			r->senttail = &r->sent;
		r->sentn--;
		deliver(r->so, it);
	}
	if (r->sentn)
		want_r(r);
}

/* ---- the ready stream ---- */

static void flush_queue(struct route *r)
{
	struct oconn *oc = r->conn;
	while (r->q && oc && oc->st == OC_READY && net_conn_out_queued(oc->c) <= OUT_BACKLOG_MAX) {
		struct item *it = r->q;
		r->q = it->next;
		if (!r->q)
			r->qtail = &r->q;
		r->qn--;
		oc_write(oc, it->data, it->len);
		r->written++;
		if (oc->sm) {
			it->next = NULL;
			*r->senttail = it;
			r->senttail = &it->next;
			r->sentn++;
		} else {
			r->reestablish = 0;
			deliver(r->so, it);
		}
	}
	if (r->sentn)
		want_r(r);
}

static void flush_vreqs(struct route *r)
{
	struct oconn *oc = r->conn;
	struct buf b;
	buf_init(&b, 0);
	for (struct vreq *v = r->vq; v; v = v->next) {
		if (v->sent)
			continue;
		if (dialback_write_request(&b, DB_VERIFY, r->local, r->remote, v->id, v->key) ==
		    0) {
			v->sent = true;
			r->so->stats.verify_sent++;
		}
	}
	if (buf_len(&b))
		oc_write(oc, buf_head(&b), buf_len(&b));
	buf_deinit(&b);
}

static void go_ready(struct oconn *oc)
{
	struct route *r = oc->r;
	struct s2s_out *so = oc->so;
	struct tls_sess *t = net_conn_tls(oc->c);
	oc->st = OC_READY;
	r->state = R_READY;
	r->last_use_ms = r->ready_ms = now_ms(so);
	if (!r->verify) {
		so->stats.streams_authenticated++;
		if (oc->method == PARLEY__LINK__AUTH_METHOD__AUTH_SASL_EXTERNAL)
			so->stats.auth_external++;
		else
			so->stats.auth_dialback++;
	}
	log_info(oc->id, r->verify ? "s2s_out_verify_stream" : "s2s_out_auth",
		 "peer=%s:%u from=%s to=%s method=%s tls=%s direct_tls=%d cert=%s sm=%d queued=%zu",
		 oc->addr, oc->port, r->local, r->remote,
		 r->verify						       ? "none"
		 : oc->method == PARLEY__LINK__AUTH_METHOD__AUTH_SASL_EXTERNAL ? "EXTERNAL"
									       : "DIALBACK",
		 t ? tls_sess_version(t) : "none", oc->direct, oc->cert_ok ? "valid" : "invalid",
		 oc->sm, r->qn);
	route_arm(r);
	if (r->verify)
		flush_vreqs(r);
	else
		flush_queue(r);
}

/* ---- negotiation ---- */

static void send_db_result(struct oconn *oc)
{
	struct route *r = oc->r;
	char key[DIALBACK_KEY_LEN + 1];
	struct buf b;
	if (!oc->stream_id[0] ||
	    dialback_key(&oc->so->db, r->remote, r->local, oc->stream_id, key) != 0) {
		oc_fail(oc, "remote-server-not-found", false,
			"the partner's stream has no usable id for dialback");
		return;
	}
	buf_init(&b, 0);
	if (dialback_write_request(&b, DB_RESULT, r->local, r->remote, NULL, key) == 0)
		oc_write(oc, buf_head(&b), buf_len(&b));
	buf_deinit(&b);
	oc->st = OC_DIALBACK;
	oc->method = PARLEY__LINK__AUTH_METHOD__AUTH_DIALBACK;
}

static void send_external(struct oconn *oc)
{
	unsigned char b64[4 * (DOMAIN_MAX / 3 + 2)];
	char msg[sizeof b64 + 128];
	const char *local = oc->r->local;
	EVP_EncodeBlock(b64, (const unsigned char *)local, (int)strlen(local));
	snprintf(msg, sizeof msg, "<auth xmlns='" NS_SASL "' mechanism='EXTERNAL'>%s</auth>",
		 (const char *)b64);
	oc_puts(oc, msg);
	oc->sasl_tried = true;
	oc->st = OC_SASL;
	oc->method = PARLEY__LINK__AUTH_METHOD__AUTH_SASL_EXTERNAL;
}

static bool offers_external(const struct xs_elem *mechs)
{
	for (const struct xs_elem *m = mechs ? xs_elem_first(mechs) : NULL; m;
	     m = xs_elem_next(m)) {
		size_t n;
		const char *t = xs_elem_text(m, &n);
		if (strcmp(m->name.p, "mechanism") == 0 && n == 8 && memcmp(t, "EXTERNAL", 8) == 0)
			return true;
	}
	return false;
}

static const char *neg_name(enum neg n)
{
	return n == NEG_REQUIRED ? "required" : n == NEG_OPTIONAL ? "optional" : "not-supported";
}

static void handle_features(struct oconn *oc, const struct xs_elem *el)
{
	struct route *r = oc->r;
	const struct partner *p = r->partner;
	const struct xs_elem *starttls = xs_elem_child(el, NS_TLS, "starttls");
	const struct xs_elem *mechs = xs_elem_child(el, NS_SASL, "mechanisms");
	bool db_feature = xs_elem_child(el, NS_DIALBACK_FEATURE, "dialback") != NULL;
	bool sm_feature = xs_elem_child(el, NS_SM, "sm") != NULL;

	if (oc->authed) { /* the features of the stream restarted after SASL */
		if (sm_feature && oc->so->s2s->stream_management) {
			oc_puts(oc, "<enable xmlns='" NS_SM "'/>");
			oc->st = OC_SM;
		} else {
			go_ready(oc);
		}
		return;
	}
	if (!oc->tls) {
		if (starttls && p->tls != NEG_NOT_SUPPORTED) {
			oc_puts(oc, "<starttls xmlns='" NS_TLS "'/>");
			oc->st = OC_STARTTLS;
			return;
		}
		if (p->tls == NEG_REQUIRED) {
			oc_fail(oc, "remote-server-not-found", false,
				"the server does not offer STARTTLS and our rules require TLS");
			return;
		}
		if (starttls && xs_elem_child(starttls, NS_TLS, "required")) {
			oc_fail(oc, "remote-server-not-found", true,
				"the partner requires TLS and our rules say TLS is not supported");
			return;
		}
	}
	if (r->verify) {
		go_ready(oc);
		return;
	}
	if (oc->tls && !oc->sasl_tried && p->sasl != NEG_NOT_SUPPORTED && offers_external(mechs)) {
		send_external(oc);
		return;
	}
	if (dialback_allowed(p, oc->tls) && (db_feature || oc->header_db)) {
		send_db_result(oc);
		return;
	}
	oc_fail(oc, "remote-server-not-found", true,
		"no acceptable authentication: EXTERNAL %s, dialback %s; our rules: tls=%s "
		"sasl=%s dialback=%d",
		offers_external(mechs) ? "offered" : "not offered",
		db_feature || oc->header_db ? "offered" : "not offered", neg_name(p->tls),
		neg_name(p->sasl), p->dialback);
}

static void handle_db(struct oconn *oc, const struct xs_elem *el)
{
	struct route *r = oc->r;
	struct dialback_elem e;
	if (dialback_parse(el, &e) != 0 || e.type == DB_TYPE_REQUEST) {
		oc_stream_error(oc, XS_COND_UNSUPPORTED_STANZA_TYPE,
				"unexpected dialback element on an outgoing stream");
		return;
	}
	bool ours = strcasecmp(e.from, r->remote) == 0 && strcasecmp(e.to, r->local) == 0;
	if (e.kind == DB_RESULT) {
		if (oc->st != OC_DIALBACK || !ours) {
			oc_stream_error(oc, XS_COND_INVALID_XML, "unexpected db:result");
			return;
		}
		if (e.type != DB_TYPE_VALID) {
			oc_fail(oc, "remote-server-not-found", true,
				"the partner refused our dialback key (%s%s%s)",
				e.type == DB_TYPE_INVALID ? "invalid" : "error",
				e.error_cond ? ": " : "", e.error_cond ? e.error_cond : "");
			return;
		}
		oc->authed = true;
		go_ready(oc);
		return;
	}
	/* db:verify answer on a verification stream */
	if (!r->verify || oc->st != OC_READY || !ours) {
		oc_stream_error(oc, XS_COND_INVALID_XML, "unexpected db:verify");
		return;
	}
	struct vreq **pp = &r->vq;
	while (*pp && !((*pp)->sent && strcmp((*pp)->id, e.id) == 0))
		pp = &(*pp)->next;
	if (!*pp) {
		log_warn(oc->id, "s2s_out_verify_unknown", "from=%s to=%s", r->local, r->remote);
		return;
	}
	struct vreq *v = *pp;
	*pp = v->next;
	r->nvq--;
	int verdict = e.type == DB_TYPE_VALID ? 1 : e.type == DB_TYPE_INVALID ? 0 : PE_VERIFY;
	if (verdict == 1)
		r->so->stats.verify_valid++;
	else
		r->so->stats.verify_invalid++;
	log_info(oc->id, "s2s_out_verified", "from=%s to=%s verdict=%s", r->local, r->remote,
		 verdict == 1	? "valid"
		 : verdict == 0 ? "invalid"
				: "error");
	r->last_use_ms = now_ms(r->so);
	v->cb(v->arg, verdict);
	free(v);
}

static void on_xs_open(void *ud, const struct xs_open *o)
{
	struct oconn *oc = ud;
	if (oc->st == OC_CLOSING || !oc->r)
		return;
	if (strcmp(o->content_ns, XS_NS_SERVER) != 0) {
		oc_stream_error(oc, XS_COND_INVALID_NAMESPACE, "a server stream was expected");
		return;
	}
	if (!o->version || strncmp(o->version, "1.", 2) != 0) {
		oc_stream_error(oc, XS_COND_UNSUPPORTED_VERSION, "XMPP 1.0 streams only");
		return;
	}
	snprintf(oc->stream_id, sizeof oc->stream_id, "%s", o->id ? o->id : "");
	if (o->id && strlen(o->id) >= sizeof oc->stream_id)
		oc->stream_id[0] = 0; /* not usable for dialback; says so if it comes to that */
	oc->header_db = o->dialback;
}

static void on_xs_stanza(void *ud, const struct xs_stanza *xst)
{
	struct oconn *oc = ud;
	const struct xs_elem *el = xst->el;
	if (oc->st == OC_CLOSING || !oc->r)
		return;
	const char *ns = el->ns.p, *n = el->name.p;
	if (strcmp(ns, XS_NS_STREAMS) == 0 && strcmp(n, "features") == 0 && oc->st == OC_HEADER) {
		handle_features(oc, el);
	} else if (strcmp(ns, XS_NS_STREAMS) == 0 && strcmp(n, "error") == 0) {
		const char *cond = "undefined-condition";
		for (const struct xs_elem *c = xs_elem_first(el); c; c = xs_elem_next(c))
			if (strcmp(c->ns.p, XS_NS_STREAM_ERRORS) == 0 && strcmp(c->name.p, "text"))
				cond = c->name.p;
		char esc[64];
		log_escape(esc, sizeof esc, cond, strlen(cond));
		bool ready = oc->st == OC_READY;
		oc_fail(oc, "remote-server-not-found", !ready,
			"the partner ended the stream with <%s/>", esc);
	} else if (strcmp(ns, NS_TLS) == 0 && oc->st == OC_STARTTLS) {
		if (strcmp(n, "proceed") != 0) {
			oc_fail(oc, "remote-server-not-found", false, "STARTTLS refused");
			return;
		}
		xs_reset(oc->xs);
		oc->st = OC_TLS;
		if (net_conn_start_tls(oc->c, oc->so->tls_starttls, false, oc->r->remote) != 0)
			oc_fail(oc, "remote-server-not-found", false, "cannot start TLS");
	} else if (strcmp(ns, NS_SASL) == 0 && oc->st == OC_SASL) {
		if (strcmp(n, "success") == 0) {
			oc->authed = true;
			xs_reset(oc->xs);
			send_header(oc);
		} else if (dialback_allowed(oc->r->partner, oc->tls)) {
			log_info(oc->id, "s2s_out_external_refused",
				 "from=%s to=%s fallback=dialback", oc->r->local, oc->r->remote);
			oc->st = OC_HEADER;
			send_db_result(oc);
		} else {
			oc_fail(
			    oc, "remote-server-not-found", true,
			    "the partner refused SASL EXTERNAL and our rules allow no dialback");
		}
	} else if (strcmp(ns, XS_NS_DIALBACK) == 0) {
		handle_db(oc, el);
	} else if (strcmp(ns, NS_SM) == 0) {
		if (oc->st == OC_SM && (strcmp(n, "enabled") == 0 || strcmp(n, "failed") == 0)) {
			oc->sm = strcmp(n, "enabled") == 0;
			oc->r->sm_h = 0;
			go_ready(oc);
		} else if (oc->st == OC_READY && oc->sm && strcmp(n, "a") == 0) {
			handle_ack(oc->r, xs_elem_attr(el, NULL, "h"));
		} else if (oc->st == OC_READY && oc->sm && strcmp(n, "r") == 0) {
			/* nothing is received on an outgoing stream */
			oc_puts(oc, "<a xmlns='" NS_SM "' h='0'/>");
		} else {
			oc_stream_error(oc, XS_COND_UNSUPPORTED_STANZA_TYPE,
					"unexpected stream management element");
		}
	} else {
		oc_stream_error(oc, XS_COND_UNSUPPORTED_STANZA_TYPE,
				"nothing but stream control is accepted on an outgoing stream");
	}
}

static void on_xs_close(void *ud)
{
	struct oconn *oc = ud;
	if (oc->st == OC_CLOSING)
		return;
	if (oc->st != OC_READY) {
		oc_fail(oc, "remote-server-not-found", false,
			"the partner closed the stream during negotiation");
		return;
	}
	log_info(oc->id, "s2s_out_closed_by_peer", "from=%s to=%s", oc->r ? oc->r->local : "-",
		 oc->r ? oc->r->remote : "-");
	oc_close(oc, 0, true);
}

static void on_xs_error(void *ud, const struct xs_error *e)
{
	struct oconn *oc = ud;
	oc_stream_error(oc, e->cond, e->text);
}

static const struct xs_callbacks oc_xs_cbs = {
    .on_open = on_xs_open,
    .on_stanza = on_xs_stanza,
    .on_close = on_xs_close,
    .on_error = on_xs_error,
};

/* ---- connection callbacks ---- */

static void on_oc_connect(struct net_conn *c)
{
	struct oconn *oc = net_conn_arg(c);
	struct route *r = oc->r;
	if (!r || oc->st == OC_CLOSING)
		return;
	/* the first attempt to connect wins; the others are called off */
	for (struct oconn **pp = &r->attempts; *pp;) {
		struct oconn *a = *pp;
		*pp = a->next;
		a->next = NULL;
		if (a != oc) {
			a->r = NULL;
			a->st = OC_CLOSING;
			net_conn_abort(a->c, PE_CLOSED);
		}
	}
	r->nattempts = 0;
	r->conn = oc;
	r->state = R_STREAM;
	r->so->stats.streams_opened++;
	route_arm(r);
	log_info(oc->id, "s2s_out_connect", "peer=%s:%u from=%s to=%s direct_tls=%d%s", oc->addr,
		 oc->port, r->local, r->remote, oc->direct, r->verify ? " purpose=verify" : "");
	if (oc->direct) {
		oc->st = OC_TLS;
		if (net_conn_start_tls(c, oc->so->tls_direct, false, r->remote) != 0)
			oc_fail(oc, "remote-server-not-found", false, "cannot start TLS");
	} else {
		send_header(oc);
	}
}

static void on_oc_secure(struct net_conn *c)
{
	struct oconn *oc = net_conn_arg(c);
	struct route *r = oc->r;
	struct tls_sess *t = net_conn_tls(c);
	if (!r || oc->st == OC_CLOSING)
		return;
	oc->tls = true;
	enum certid_kind k = certid_xmpp_server(tls_sess_peer_cert(t), r->remote);
	oc->cert_ok = tls_sess_verify_result(t) == X509_V_OK && k != CERTID_NONE;
	char ids[160];
	certid_describe(tls_sess_peer_cert(t), ids, sizeof ids);
	log_info(oc->id, "s2s_out_tls",
		 "peer=%s:%u to=%s version=%s alpn=%s cert=%s identity=%s "
		 "ids=\"%s\"",
		 oc->addr, oc->port, r->remote, tls_sess_version(t),
		 tls_sess_alpn(t) ? tls_sess_alpn(t) : "-",
		 tls_sess_verify_result(t) == X509_V_OK ? "verified" : tls_sess_verify_error(t),
		 certid_kind_name(k), ids);
	/* The partner's certificate must name it unless dialback, which trusts DNS, may
	 * authenticate the stream under its rules (the same rule the inbound side applies). */
	if (!oc->cert_ok && !r->verify && !dialback_allowed(r->partner, true)) {
		oc_fail(oc, "remote-server-not-found", false,
			"the certificate of %s's server is not valid for it: %s", r->remote,
			tls_sess_verify_result(t) == X509_V_OK ? "no matching identity"
							       : tls_sess_verify_error(t));
		return;
	}
	send_header(oc);
}

static void on_oc_data(struct net_conn *c, const uint8_t *p, size_t n)
{
	struct oconn *oc = net_conn_arg(c);
	if (oc->st == OC_CLOSING || !oc->r)
		return;
	xs_feed(oc->xs, (const char *)p, n);
}

static void on_oc_drain(struct net_conn *c)
{
	struct oconn *oc = net_conn_arg(c);
	if (oc->r && oc->r->conn == oc && oc->st == OC_READY && !oc->r->verify)
		flush_queue(oc->r);
}

static void requeue_sent(struct route *r)
{
	if (!r->sent)
		return;
	/* unacknowledged stanzas go back in front, in their order */
	*r->senttail = r->q;
	if (!r->q)
		r->qtail = r->senttail;
	r->q = r->sent;
	r->qn += r->sentn;
	r->sent = NULL;
	r->senttail = &r->sent;
	r->sentn = 0;
}

static void on_oc_close(struct net_conn *c, int reason)
{
	struct oconn *oc = net_conn_arg(c);
	struct route *r = oc->r;
	log_debug(oc->id, "s2s_out_closed", "peer=%s:%u reason=\"%s\"", oc->addr, oc->port,
		  reason ? pe_strerror(reason) : "closed");
	if (r && !r->so->stopping) {
		if (!oc->fail_cond && oc->st != OC_READY && oc->st != OC_CLOSING) {
			oc->fail_cond = "remote-server-not-found";
			snprintf(oc->fail_text, sizeof oc->fail_text, "%s:%u: %s", oc->addr,
				 oc->port, reason ? pe_strerror(reason) : "closed");
			if (reason == PE_TLS) {
				struct tls_sess *t = net_conn_tls(c);
				snprintf(oc->fail_text, sizeof oc->fail_text,
					 "TLS with %s:%u failed: %s", oc->addr, oc->port,
					 t ? tls_sess_error(t) : "?");
			}
		}
		if (oc->fail_cond) {
			r->fail_cond = oc->fail_cond;
			snprintf(r->fail_text, sizeof r->fail_text, "%s", oc->fail_text);
		}
		if (r->conn == oc) {
			bool was_ready = r->state == R_READY;
			r->conn = NULL;
			r->r_out = false;
			if (was_ready) {
				log_info(oc->id, "s2s_out_down",
					 "from=%s to=%s unacked=%zu queued=%zu", r->local,
					 r->remote, r->sentn, r->qn);
				requeue_sent(r);
				r->state = R_IDLE;
				if (r->qn || r->nvq) {
					if (++r->reestablish > MAX_REESTABLISH)
						route_fail(r, "remote-server-timeout",
							   "the partner's stream keeps failing");
					else
						route_start(r);
				}
			} else if (oc->fatal) {
				route_fail(r, r->fail_cond, r->fail_text);
			} else {
				r->state = R_CONNECTING;
				route_next_attempt(r);
			}
		} else {
			for (struct oconn **pp = &r->attempts; *pp; pp = &(*pp)->next) {
				if (*pp == oc) {
					*pp = oc->next;
					r->nattempts--;
					break;
				}
			}
			if (r->state == R_CONNECTING && !r->nattempts)
				route_next_attempt(r);
		}
		route_maybe_free(r);
	}
	xs_free(oc->xs);
	free(oc);
}

static const struct net_conn_cbs oc_cbs = {
    .on_connect = on_oc_connect,
    .on_secure = on_oc_secure,
    .on_data = on_oc_data,
    .on_drain = on_oc_drain,
    .on_close = on_oc_close,
};

/* ---- establishment ---- */

static void detach_all(struct route *r)
{
	for (struct oconn *a = r->attempts, *next; a; a = next) {
		next = a->next;
		a->next = NULL;
		a->r = NULL;
		a->st = OC_CLOSING;
		net_conn_abort(a->c, PE_CLOSED);
	}
	r->attempts = NULL;
	r->nattempts = 0;
	if (r->conn) {
		struct oconn *oc = r->conn;
		r->conn = NULL;
		if (oc->st == OC_READY) {
			oc_close(oc, PE_CLOSED, true);
		} else {
			/* abandoned mid-negotiation: nothing worth flushing to a peer that may
			 * never read it */
			oc->st = OC_CLOSING;
			net_conn_abort(oc->c, PE_CLOSED);
		}
		oc->r = NULL;
	}
	resolver_cancel(r->so->res, r);
	r->srv_pending = 0;
	r->addr_pending = false;
}

/* Bounces every stanza and fails every verification of the route. */
static void route_fail(struct route *r, const char *cond, const char *text)
{
	struct s2s_out *so = r->so;
	char t[600];
	snprintf(t, sizeof t, "%s", text && *text ? text : "no stream could be established");
	log_warn(0, "s2s_out_route_failed",
		 "route=%llu from=%s to=%s cond=%s queued=%zu "
		 "verifications=%zu why=\"%s\"",
		 (unsigned long long)r->id, r->local, r->remote, cond, r->qn + r->sentn, r->nvq, t);
	detach_all(r);
	r->state = R_IDLE;
	r->reestablish = 0;
	requeue_sent(r);
	struct item *q = r->q;
	r->q = NULL;
	r->qtail = &r->q;
	r->qn = 0;
	struct vreq *vq = r->vq;
	r->vq = NULL;
	r->nvq = 0;
	while (q) {
		struct item *next = q->next;
		bounce_ticket(so, &q->t, cond_type(cond), cond, t, r->local, r->remote);
		free(q);
		q = next;
	}
	while (vq) {
		struct vreq *next = vq->next;
		vq->cb(vq->arg, strcmp(cond, "remote-server-timeout") == 0 ? PE_TIMEOUT : PE_DNS);
		free(vq);
		vq = next;
	}
	route_arm(r);
	route_maybe_free(r);
}

static void on_addr(void *arg, int status, const char *const *addrs, const int *families, size_t n);

static void connect_target(struct route *r)
{
	while (r->tnext < r->ntargets) {
		struct target *t = &r->targets[r->tnext];
		r->naddrs = r->anext = 0;
		r->addr_pending = true;
		r->state = R_CONNECTING;
		if (resolver_addr(r->so->res, t->host, AF_UNSPEC, on_addr, r) == 0)
			return;
		r->addr_pending = false;
		r->tnext++;
	}
	route_fail(r, r->fail_cond ? r->fail_cond : "remote-server-not-found",
		   r->fail_text[0] ? r->fail_text : "no server of the domain could be reached");
}

/* Starts the next TCP attempt of the current target, or moves to the next target once
 * every address was tried and no attempt is left. */
static void route_next_attempt(struct route *r)
{
	struct s2s_out *so = r->so;
	if (r->state != R_CONNECTING || r->addr_pending)
		return;
	while (r->anext < r->naddrs) {
		const struct target *t = &r->targets[r->tnext];
		const char *addr = r->addrs[r->anext++];
		struct oconn *oc = calloc(1, sizeof *oc);
		if (!oc)
			abort();
		oc->so = so;
		oc->r = r;
		oc->port = t->port;
		oc->direct = t->direct;
		snprintf(oc->addr, sizeof oc->addr, "%s", addr);
		oc->xs = xs_new(&xs_limits_preauth, &oc_xs_cbs, oc);
		if (!oc->xs)
			abort();
		oc->c = net_connect(so->loop, addr, t->port, &oc_cbs, oc);
		if (!oc->c) {
			xs_free(oc->xs);
			free(oc);
			continue;
		}
		oc->id = net_conn_id(oc->c);
		so->stats.connect_attempts++;
		log_debug(oc->id, "s2s_out_attempt", "addr=%s port=%u host=%s to=%s direct_tls=%d",
			  addr, t->port, t->host, r->remote, t->direct);
		oc->next = r->attempts;
		r->attempts = oc;
		r->nattempts++;
		r->stagger_at = now_ms(so) + so->conf->stagger_ms;
		route_arm(r);
		return;
	}
	if (r->nattempts)
		return; /* wait for those under way */
	r->tnext++;
	connect_target(r);
}

static void on_addr(void *arg, int status, const char *const *addrs, const int *families, size_t n)
{
	struct route *r = arg;
	r->addr_pending = false;
	const struct target *t = &r->targets[r->tnext];
	if (status != 0) {
		r->fail_cond =
		    status == PE_TIMEOUT ? "remote-server-timeout" : "remote-server-not-found";
		snprintf(r->fail_text, sizeof r->fail_text, "cannot resolve %s: %s", t->host,
			 pe_strerror(status));
		r->tnext++;
		connect_target(r);
		return;
	}
	/* RFC 8305: alternate the families, IPv6 first */
	size_t i6 = 0, i4 = 0;
	r->naddrs = r->anext = 0;
	while (r->naddrs < MAX_ADDRS && (i6 < n || i4 < n)) {
		while (i6 < n && families[i6] != AF_INET6)
			i6++;
		if (i6 < n && r->naddrs < MAX_ADDRS)
			snprintf(r->addrs[r->naddrs++], sizeof r->addrs[0], "%s", addrs[i6++]);
		while (i4 < n && families[i4] != AF_INET)
			i4++;
		if (i4 < n && r->naddrs < MAX_ADDRS)
			snprintf(r->addrs[r->naddrs++], sizeof r->addrs[0], "%s", addrs[i4++]);
	}
	log_debug(0, "s2s_out_addrs", "route=%llu host=%s port=%u n=%zu first=%s",
		  (unsigned long long)r->id, t->host, t->port, r->naddrs,
		  r->naddrs ? r->addrs[0] : "-");
	route_next_attempt(r);
}

static void add_targets(struct route *r, const struct resolver_srv *recs, size_t n, bool direct)
{
	for (size_t i = 0; i < n && r->ntargets < MAX_TARGETS; i++) {
		if (!recs[i].target || !*recs[i].target || !resolver__name_ok(recs[i].target) ||
		    strlen(recs[i].target) >= DOMAIN_MAX || !recs[i].port)
			continue;
		struct target *t = &r->targets[r->ntargets++];
		snprintf(t->host, sizeof t->host, "%s", recs[i].target);
		t->port = recs[i].port;
		t->priority = recs[i].priority;
		t->direct = direct;
	}
}

/* Merges by priority (stable; each list keeps its RFC 2782 order), direct TLS first on a
 * tie (XEP-0368 §3). */
static void order_targets(struct route *r)
{
	for (size_t i = 1; i < r->ntargets; i++) {
		struct target t = r->targets[i];
		size_t j = i;
		while (j > 0 && (r->targets[j - 1].priority > t.priority ||
				 (r->targets[j - 1].priority == t.priority && t.direct &&
				  !r->targets[j - 1].direct))) {
			r->targets[j] = r->targets[j - 1];
			j--;
		}
		r->targets[j] = t;
	}
}

static void srv_done(struct route *r)
{
	if (--r->srv_pending > 0)
		return;
	if (r->no_service[1] && r->ntargets == 0) {
		/* "_xmpp-server ... SRV 0 0 0 ." : decidedly no XMPP service here */
		route_fail(r, "remote-server-not-found",
			   "the domain offers no XMPP server service");
		return;
	}
	order_targets(r);
	if (r->ntargets == 0) {
		/* RFC 6120 §3.2.2: no SRV records, fall back to the domain's addresses */
		struct target *t = &r->targets[r->ntargets++];
		snprintf(t->host, sizeof t->host, "%s", r->remote);
		t->port = 5269;
		t->direct = false;
	}
	r->tnext = 0;
	connect_target(r);
}

static void on_srv(struct route *r, int status, const struct resolver_srv *recs, size_t n,
		   bool no_service, bool direct)
{
	if (status == 0 && no_service)
		r->no_service[direct ? 0 : 1] = true;
	else if (status == 0 && (!direct || r->partner->tls != NEG_NOT_SUPPORTED))
		add_targets(r, recs, n, direct);
	else if (status == PE_TIMEOUT || status == PE_DNS) {
		r->fail_cond =
		    status == PE_TIMEOUT ? "remote-server-timeout" : "remote-server-not-found";
		snprintf(r->fail_text, sizeof r->fail_text, "SRV lookup for %s failed: %s",
			 r->remote, pe_strerror(status));
	}
	srv_done(r);
}

static void on_srv_direct(void *arg, int status, const struct resolver_srv *recs, size_t n,
			  bool no_service)
{
	on_srv(arg, status, recs, n, no_service, true);
}

static void on_srv_starttls(void *arg, int status, const struct resolver_srv *recs, size_t n,
			    bool no_service)
{
	on_srv(arg, status, recs, n, no_service, false);
}

static void route_start(struct route *r)
{
	struct s2s_out *so = r->so;
	if (r->state != R_IDLE || so->stopping)
		return;
	policy_unref(r->pol);
	r->pol = policy_ref(so->pol);
	r->partner = policy_partner(r->pol, r->remote, strlen(r->remote));
	r->ntargets = r->tnext = 0;
	r->no_service[0] = r->no_service[1] = false;
	r->fail_cond = NULL;
	r->fail_text[0] = 0;
	r->state = R_RESOLVING;
	uint64_t est = (r->pol ? r->pol->establishment_s : 60) * 1000u;
	r->deadline_at = now_ms(so) + est;
	route_arm(r);
	if (!r->partner) {
		route_fail(r, "forbidden", "the domain is not an allowed partner");
		return;
	}
	log_info(0, "s2s_out_route", "route=%llu from=%s to=%s purpose=%s proxy=%s",
		 (unsigned long long)r->id, r->local, r->remote, r->verify ? "verify" : "stanzas",
		 r->partner->proxy_host ? r->partner->proxy_host : "-");
	if (r->partner->proxy_host) {
		struct target *t = &r->targets[r->ntargets++];
		snprintf(t->host, sizeof t->host, "%s", r->partner->proxy_host);
		t->port = r->partner->proxy_port ? r->partner->proxy_port : 5269;
		t->direct = false;
		connect_target(r);
		return;
	}
	char name[DOMAIN_MAX + 32];
	r->srv_pending = 0;
	snprintf(name, sizeof name, "_xmpps-server._tcp.%s", r->remote);
	if (resolver_srv(so->res, name, on_srv_direct, r) == 0)
		r->srv_pending++;
	snprintf(name, sizeof name, "_xmpp-server._tcp.%s", r->remote);
	if (resolver_srv(so->res, name, on_srv_starttls, r) == 0)
		r->srv_pending++;
	if (r->srv_pending == 0) {
		route_fail(r, "remote-server-not-found", "the domain name cannot be looked up");
		return;
	}
}

/* ---- route timer: establishment deadline, stagger, idle and keep-alive ---- */

static void on_route_timer(uv_timer_t *t)
{
	struct route *r = t->data;
	struct s2s_out *so = r->so;
	uint64_t now = now_ms(so);
	if (r->freeing)
		return;
	if (r->start_pending) {
		r->start_pending = false;
		route_start(r);
		route_maybe_free(r);
		return;
	}
	if (r->state != R_IDLE && r->state != R_READY) {
		if (now >= r->deadline_at) {
			char why[1024];
			snprintf(why, sizeof why, "no stream to %s within %llu s%s%s", r->remote,
				 (unsigned long long)(r->pol ? r->pol->establishment_s : 60),
				 r->fail_text[0] ? "; last: " : "", r->fail_text);
			route_fail(r, "remote-server-timeout", why);
			return;
		}
		if (r->state == R_CONNECTING && r->nattempts && now >= r->stagger_at)
			route_next_attempt(r);
		route_arm(r);
		return;
	}
	if (r->state == R_READY && r->conn) {
		const struct policy *pol = r->pol;
		uint64_t idle = (pol ? pol->inactivity_s : 600) * 1000u;
		/* a verification stream lingers briefly for more queries, then goes */
		if (r->verify && idle > VERIFY_LINGER_MS)
			idle = VERIFY_LINGER_MS;
		uint64_t ka = (pol ? pol->keepalive_s : 300) * 1000u;
		uint64_t est = (pol ? pol->establishment_s : 60) * 1000u;
		if (r->r_out && now - r->r_sent_ms >= est) {
			/* no <a/> for our <r/>: the stream is no use; the next one resends */
			oc_fail(r->conn, "remote-server-timeout", false,
				"no XEP-0198 acknowledgement within %llu s",
				(unsigned long long)(est / 1000));
			return;
		}
		if (!r->qn && !r->sentn && !r->nvq && now - r->last_use_ms >= idle) {
			log_info(r->conn->id, "s2s_out_idle", "from=%s to=%s", r->local, r->remote);
			oc_close(r->conn, 0, true);
			return;
		}
		if (r->partner && r->partner->keepalive && now - r->last_tx_ms >= ka)
			oc_puts(r->conn, " "); /* RFC 6120 §4.6.1 */
		route_arm(r);
	}
}

static void route_arm(struct route *r)
{
	uint64_t now = now_ms(r->so);
	if (r->freeing || r->start_pending)
		return;
	if (r->state == R_IDLE) {
		uv_timer_stop(&r->timer);
		return;
	}
	uint64_t at = r->state == R_READY ? now + 1000 : r->deadline_at;
	if (r->state == R_CONNECTING && r->nattempts && r->anext < r->naddrs && r->stagger_at < at)
		at = r->stagger_at;
	uv_timer_start(&r->timer, on_route_timer, at > now ? at - now : 0, 0);
}

static void on_route_timer_closed(uv_handle_t *h)
{
	struct route *r = h->data;
	policy_unref(r->pol);
	free(r);
}

/* Frees a route that has nothing left: no stanza, no verification, no stream. */
static void route_maybe_free(struct route *r)
{
	if (r->freeing || r->qn || r->sentn || r->nvq || r->conn || r->nattempts ||
	    r->state != R_IDLE || r->start_pending)
		return;
	struct s2s_out *so = r->so;
	r->freeing = true;
	for (struct route **pp = &so->routes; *pp; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			so->nroutes--;
			break;
		}
	}
	if (r->r_due) {
		for (struct route **pp = &so->rlist; *pp; pp = &(*pp)->rnext) {
			if (*pp == r) {
				*pp = r->rnext;
				break;
			}
		}
	}
	resolver_cancel(so->res, r);
	uv_close((uv_handle_t *)&r->timer, on_route_timer_closed);
}

static struct route *route_get(struct s2s_out *so, const char *local, const char *remote,
			       bool verify)
{
	for (struct route *r = so->routes; r; r = r->next)
		if (r->verify == verify && strcmp(r->local, local) == 0 &&
		    strcmp(r->remote, remote) == 0)
			return r;
	struct route *r = calloc(1, sizeof *r);
	if (!r)
		abort();
	r->so = so;
	r->id = ++so->next_route_id;
	snprintf(r->local, sizeof r->local, "%s", local);
	snprintf(r->remote, sizeof r->remote, "%s", remote);
	r->verify = verify;
	r->qtail = &r->q;
	r->senttail = &r->sent;
	uv_timer_init(so->loop, &r->timer);
	r->timer.data = r;
	r->next = so->routes;
	so->routes = r;
	so->nroutes++;
	return r;
}

/* ---- public ---- */

/* Both client contexts from s2s's cert/key/ca: STARTTLS without ALPN, direct TLS with
 * "xmpp-server" (XEP-0368). Both or neither: returns 0, or PE_CONFIG with err written. */
static int client_tls_new(const struct s2s_conf *s2s, struct tls_ctx **starttls,
			  struct tls_ctx **direct, char *err, size_t errlen)
{
	static const char *const alpn[] = {"xmpp-server", NULL};
	struct tls_ctx_cfg t = {.ca_file = s2s->ca,
				.cert_file = s2s->cert,
				.key_file = s2s->key,
				.min_version = TLS1_2_VERSION};
	*starttls = tls_ctx_new(false, &t, err, errlen);
	t.alpn = alpn;
	*direct = *starttls ? tls_ctx_new(false, &t, err, errlen) : NULL;
	if (!*direct) {
		tls_ctx_free(*starttls);
		*starttls = NULL;
		return PE_CONFIG;
	}
	return 0;
}

int s2s_out_reload_tls(struct s2s_out *so, const struct s2s_conf *s2s, char *err, size_t errlen)
{
	struct tls_ctx *st, *dt;
	if (client_tls_new(s2s, &st, &dt, err, errlen)) {
		log_error(0, "s2s_tls_reload", "dir=out err=\"%s\"", err);
		return PE_CONFIG;
	}
	/* Streams only take a context when they start TLS (net_conn_start_tls makes the
	 * session then), so swapping the pointers is enough: sessions made from the old
	 * contexts hold their own SSL_CTX references. */
	tls_ctx_free(so->tls_starttls);
	tls_ctx_free(so->tls_direct);
	so->tls_starttls = st;
	so->tls_direct = dt;
	log_info(0, "s2s_tls_reloaded", "dir=out cert=%s", s2s->cert ? s2s->cert : "none");
	return 0;
}

int s2s_out_start(uv_loop_t *loop, const struct s2s_conf *s2s, const struct s2s_out_conf *conf,
		  const struct s2s_out_hooks *hooks, struct s2s_out **res)
{
	char err[512];
	struct s2s_out *so = calloc(1, sizeof *so);
	if (!so)
		abort();
	so->loop = loop;
	so->s2s = s2s;
	so->conf = conf;
	so->hooks = *hooks;
	buf_init(&so->scratch, 0);
	if (client_tls_new(s2s, &so->tls_starttls, &so->tls_direct, err, sizeof err)) {
		log_error(0, "s2s_out_tls", "err=\"%s\"", err);
		s2s_out_free(so);
		return PE_TLS;
	}
	if (conf->dialback_secret) {
		dialback_init(&so->db, conf->dialback_secret, strlen(conf->dialback_secret));
	} else {
		uint8_t rnd[32];
		if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd)
			abort();
		dialback_init(&so->db, rnd, sizeof rnd);
		log_warn(0, "s2s_dialback_secret",
			 "msg=\"[s2s] dialback_secret unset: using a random one; keys from this "
			 "edge verify only here and only until it restarts\"");
	}
	const char *servers[101];
	size_t ns = 0;
	for (; ns < conf->resolver.n && ns < 100; ns++)
		servers[ns] = conf->resolver.v[ns];
	servers[ns] = NULL;
	struct resolver_cfg rc = {.servers = ns ? servers : NULL,
				  .timeout_ms = (uint32_t)conf->resolver_timeout_ms,
				  .tries = 2};
	int r = resolver_new(loop, &rc, &so->res, err, sizeof err);
	if (r) {
		log_error(0, "s2s_out_resolver", "err=\"%s\"", err);
		s2s_out_free(so);
		return r;
	}
	uv_check_init(loop, &so->check);
	so->check.data = so;
	uv_check_start(&so->check, on_check);
	uv_unref((uv_handle_t *)&so->check);
	*res = so;
	return 0;
}

void s2s_out_stop(struct s2s_out *so)
{
	if (so->stopping)
		return;
	so->stopping = true;
	for (struct route *r = so->routes, *next; r; r = next) {
		next = r->next;
		detach_all(r);
		/* no outcome: the gateway resends what it did not hear about */
		for (struct item *it = r->q, *n2; it; it = n2) {
			n2 = it->next;
			free(it);
		}
		for (struct item *it = r->sent, *n2; it; it = n2) {
			n2 = it->next;
			free(it);
		}
		for (struct vreq *v = r->vq, *n2; v; v = n2) {
			n2 = v->next;
			free(v);
		}
		r->q = r->sent = NULL;
		r->qtail = &r->q;
		r->senttail = &r->sent;
		r->qn = r->sentn = r->nvq = 0;
		r->vq = NULL;
		r->state = R_IDLE;
		route_maybe_free(r);
	}
	so->rlist = NULL;
	uv_close((uv_handle_t *)&so->check, NULL);
	resolver_free(so->res);
	so->res = NULL;
}

void s2s_out_free(struct s2s_out *so)
{
	if (!so)
		return;
	tls_ctx_free(so->tls_starttls);
	tls_ctx_free(so->tls_direct);
	policy_unref(so->pol);
	buf_deinit(&so->scratch);
	free(so);
}

void s2s_out_set_policy(struct s2s_out *so, const Parley__Link__PolicySnapshot *snap)
{
	if (so->pol && snap->generation <= so->pol->generation)
		return;
	policy_unref(so->pol);
	so->pol = policy_from_snapshot(snap);
}

const struct dialback *s2s_out_dialback(const struct s2s_out *so)
{
	return &so->db;
}

void s2s_out_submit(struct s2s_out *so, const struct s2s_out_ticket *t,
		    const Parley__Link__Stanza *st)
{
	char local[DOMAIN_MAX], remote[DOMAIN_MAX];
	size_t fl, tl;
	const char *fd, *td;
	so->stats.submitted++;
	if (so->stopping)
		return; /* no outcome: resent by the gateway */
	if (!st->from || !st->to || !*st->from || !*st->to) {
		bounce_ticket(so, t, "modify", "jid-malformed", "'from' and 'to' are required",
			      NULL, NULL);
		return;
	}
	fd = jid_domain(st->from, &fl);
	td = jid_domain(st->to, &tl);
	if (!copy_domain(local, fd, fl) || !copy_domain(remote, td, tl)) {
		bounce_ticket(so, t, "modify", "jid-malformed", "malformed 'from' or 'to' domain",
			      NULL, NULL);
		return;
	}
	if (!policy_serves(so->pol, local, strlen(local))) {
		bounce_ticket(so, t, "cancel", "not-allowed", "'from' is not in a served domain",
			      local, remote);
		return;
	}
	if (!policy_partner(so->pol, remote, strlen(remote))) {
		bounce_ticket(so, t, "cancel", "forbidden", "'to' is not an allowed partner", local,
			      remote);
		return;
	}
	struct route *r = route_get(so, local, remote, false);
	if (r->qn + r->sentn >= so->conf->queue_max) {
		bounce_ticket(so, t, "wait", "resource-constraint",
			      "too many stanzas waiting for this partner", local, remote);
		route_maybe_free(r);
		return;
	}
	struct buf *b = &so->scratch;
	buf_consume(b, buf_len(b));
	int e = xmpp_out_stanza(b, st);
	if (e) {
		bounce_ticket(so, t, "modify", "bad-request",
			      e == PE_INVAL ? "the stanza cannot be written as XMPP"
					    : "the stanza is too large",
			      local, remote);
		route_maybe_free(r);
		return;
	}
	struct item *it = malloc(sizeof *it + buf_len(b));
	if (!it)
		abort();
	it->next = NULL;
	it->t = *t;
	it->len = buf_len(b);
	memcpy(it->data, buf_head(b), it->len);
	buf_consume(b, buf_len(b));
	*r->qtail = it;
	r->qtail = &it->next;
	r->qn++;
	r->last_use_ms = now_ms(so);
	if (r->state == R_READY)
		flush_queue(r);
	else if (r->state == R_IDLE)
		route_start(r);
}

int s2s_out_verify(struct s2s_out *so, const char *local, const char *remote, const char *stream_id,
		   const char *key, s2s_out_verify_cb cb, void *arg)
{
	char l[DOMAIN_MAX], rm[DOMAIN_MAX];
	if (so->stopping)
		return PE_CLOSED;
	if (!copy_domain(l, local, strlen(local)) || !copy_domain(rm, remote, strlen(remote)) ||
	    !resolver__name_ok(rm) || strlen(stream_id) >= sizeof((struct vreq *)0)->id ||
	    strlen(key) >= sizeof((struct vreq *)0)->key)
		return PE_INVAL;
	struct route *r = route_get(so, l, rm, true);
	if (r->nvq >= MAX_VREQS) {
		route_maybe_free(r);
		return PE_FULL;
	}
	struct vreq *v = calloc(1, sizeof *v);
	if (!v)
		abort();
	v->cb = cb;
	v->arg = arg;
	snprintf(v->id, sizeof v->id, "%s", stream_id);
	snprintf(v->key, sizeof v->key, "%s", key);
	struct vreq **pp = &r->vq;
	while (*pp)
		pp = &(*pp)->next;
	*pp = v;
	r->nvq++;
	r->last_use_ms = now_ms(so);
	if (r->state == R_READY) {
		flush_vreqs(r);
	} else if (r->state == R_IDLE && !r->start_pending) {
		/* from the loop: a route that fails at once must not call back into the caller */
		r->start_pending = true;
		uv_timer_start(&r->timer, on_route_timer, 0, 0);
	}
	return 0;
}

void s2s_out_verify_cancel(struct s2s_out *so, void *arg)
{
	for (struct route *r = so->routes; r; r = r->next) {
		if (!r->verify)
			continue;
		for (struct vreq **pp = &r->vq; *pp;) {
			if ((*pp)->arg == arg) {
				struct vreq *v = *pp;
				*pp = v->next;
				r->nvq--;
				free(v);
			} else {
				pp = &(*pp)->next;
			}
		}
	}
}

const struct s2s_out_stats *s2s_out_stats(const struct s2s_out *so)
{
	return &so->stats;
}
size_t s2s_out_route_count(const struct s2s_out *so)
{
	return so->nroutes;
}

void s2s_out_foreach_session(const struct s2s_out *so, s2s_session_cb cb, void *arg)
{
	static const char *const states[] = {"idle", "resolving", "connecting", "negotiating",
					     "ready"};
	uint64_t now = uv_now(so->loop);
	for (const struct route *r = so->routes; r; r = r->next) {
		if (r->verify)
			continue;
		const struct oconn *oc = r->conn;
		struct tls_sess *t = oc && oc->c && oc->tls ? net_conn_tls(oc->c) : NULL;
		bool ready = r->state == R_READY && oc;
		struct s2s_session_info si = {
		    .id = oc ? oc->id : 0,
		    .dir = "out",
		    .local = r->local,
		    .remote = r->remote,
		    .addr = oc ? oc->addr : "",
		    .state = states[r->state],
		    .auth = ready ? s2s_auth_name(oc->method) : "none",
		    .tls_version = t ? tls_sess_version(t) : "none",
		    .cert = !t ? "none" : oc->cert_ok ? "valid" : "invalid",
		    .direct_tls = oc && oc->direct,
		    .sm = oc && oc->sm,
		    .age_ms = ready ? now - r->ready_ms : 0,
		    .stanzas = r->written,
		    .queued = r->qn + r->sentn,
		};
		cb(arg, &si);
	}
}
