/* Inbound S2S. One struct s2s_in per connection, owned through its net_conn: it is freed in
 * the connection's close callback (after its timer handle closes), never in a callback chain.
 *
 * Order of a stream: header -> (STARTTLS -> TLS -> header) -> SASL EXTERNAL -> header ->
 * authenticated stanzas. Direct TLS starts at the TLS step. Every stanza accepted becomes one
 * link frame; with XEP-0198 on, the partner hears <a h='n'/> only for stanzas whose frames
 * the gateway acknowledged, so a crash of this process loses nothing the partner keeps. */
#include "s2s.h"

#include "certid.h"
#include "dialback.h"
#include "err.h"
#include "log.h"
#include "net.h"
#include "s2s_out.h"
#include "stanza.h"
#include "tls.h"
#include "xml_stream.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#define NS_TLS "urn:ietf:params:xml:ns:xmpp-tls"
#define NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"
#define NS_SM "urn:xmpp:sm:3"
#define NS_DB_FEATURE "urn:xmpp:features:dialback"
#define DOMAIN_MAX 256

enum in_state {
	IN_HEADER,  /* waiting for a stream header */
	IN_OPEN,    /* header answered, features sent, not yet authenticated */
	IN_AUTHED,  /* authenticated: stanzas flow */
	IN_CLOSING, /* an error or close was sent; nothing more is read */
};

struct s2s_in {
	struct s2s_in *prev, *next;
	struct s2s_in *pnext; /* streams paused for the link window */
	bool on_plist;
	struct s2s_in *anext; /* streams owed a fresh <a/> */
	bool on_alist;
	struct s2s *srv;
	struct net_conn *conn;
	struct xs *xs;
	struct policy *pol;
	const struct partner *partner;
	uint64_t id;
	char ip[64];
	char from[DOMAIN_MAX];
	char to[DOMAIN_MAX];
	char lang[64];
	char stream_id[33];
	enum in_state state;
	int auth; /* PARLEY__LINK__AUTH_METHOD__* */
	bool tls;
	bool direct;
	bool header_sent;
	bool cert_ok; /* chain verified and an identity names `from` */
	bool sm;
	bool paused_link;
	bool paused_rate;
	bool paused_policy; /* arrived before any policy: not read until one comes */
	bool counted_partner;
	bool db_pending; /* a db:result is being checked with the authoritative server */
	uv_timer_t timer;
	uv_timer_t rate_timer;
	int handles;
	bool conn_gone;
	uint64_t started_ms, last_rx_ms, last_tx_ms;
	double tokens;
	uint64_t tokens_ms;
	uint64_t stanzas;
	/* XEP-0198: link seqs of stanzas not yet reported handled, in order; 0 = handled here */
	uint64_t *sm_seq;
	size_t sm_head, sm_len, sm_cap;
	uint64_t sm_h;
	/* stanzas read while the link was full, oldest first (see "stanzas held") */
	struct s2s_held *held_head, **held_tail;
	size_t held_n, held_bytes;
	uv_timer_t hold_timer; /* the oldest held stanza's link_wait */
	bool close_pending;    /* the partner closed its stream behind held stanzas */
	struct buf out;
};

struct counter {
	char key[DOMAIN_MAX];
	uint32_t n;
};

struct s2s {
	uv_loop_t *loop;
	const struct s2s_conf *conf;
	struct link_out *out;
	struct tls_ctx *tls;
	struct net_listener *ls[16];
	size_t nls;
	struct policy *pol;
	struct s2s_in *streams;
	size_t nstreams;
	struct s2s_in *paused;
	struct s2s_in *owed_a;
	struct counter *ips, *partners; /* small linear tables: limits are per IP / per partner */
	size_t nips, npartners, capips, cappartners;
	struct stanza_scratch scratch;
	struct s2s_stats stats;
	bool stopping;
	uv_timer_t policy_timer; /* ends the wait for a first policy */
	bool policy_timer_on;
	bool policy_wait_over;
	struct s2s_out *db_out;	    /* dialback, receiving role: verification streams */
	const struct dialback *db;  /* dialback, authoritative role: our keys */
};

static struct counter *counter_get(struct counter **t, size_t *n, size_t *cap, const char *key,
				   bool create)
{
	for (size_t i = 0; i < *n; i++)
		if (strcasecmp((*t)[i].key, key) == 0)
			return &(*t)[i];
	if (!create)
		return NULL;
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		*t = realloc(*t, *cap * sizeof **t);
		if (!*t)
			abort();
	}
	struct counter *c = &(*t)[(*n)++];
	snprintf(c->key, sizeof c->key, "%s", key);
	c->n = 0;
	return c;
}

static void counter_dec(struct counter *t, size_t *n, const char *key)
{
	for (size_t i = 0; i < *n; i++) {
		if (strcasecmp(t[i].key, key) == 0) {
			if (--t[i].n == 0)
				t[i] = t[--*n];
			return;
		}
	}
}

static uint64_t now_ms(const struct s2s *s) { return uv_now(s->loop); }

/* ---- output ---- */

static void out_flush(struct s2s_in *in)
{
	if (buf_len(&in->out)) {
		net_conn_write(in->conn, buf_head(&in->out), buf_len(&in->out));
		buf_consume(&in->out, buf_len(&in->out));
		buf_release_if_empty(&in->out); /* idle streams hold no output memory */
		in->last_tx_ms = now_ms(in->srv);
	}
}

static void out_str(struct s2s_in *in, const char *s) { buf_append(&in->out, s, strlen(s)); }

static void out_attr(struct s2s_in *in, const char *name, const char *v)
{
	if (!v || !*v)
		return;
	out_str(in, " ");
	out_str(in, name);
	out_str(in, "='");
	if (xs_escape(&in->out, v, strlen(v), true) != 0)
		out_str(in, "invalid");
	out_str(in, "'");
}

static void send_header(struct s2s_in *in)
{
	if (in->header_sent)
		return;
	out_str(in, "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
		    "xmlns:stream='http://etherx.jabber.org/streams' "
		    "xmlns:db='jabber:server:dialback' version='1.0'");
	out_attr(in, "from", in->to[0] ? in->to : NULL);
	out_attr(in, "to", in->from[0] ? in->from : NULL);
	out_attr(in, "id", in->stream_id);
	out_str(in, ">");
	in->header_sent = true;
}

static void in_close(struct s2s_in *in, int reason);
static void hold_bounce_one(struct s2s_in *in);

/* Sends a stream error (with a header first if none went out) and closes. */
static void stream_error(struct s2s_in *in, enum xs_cond cond, enum xs_app app, const char *text)
{
	if (in->state == IN_CLOSING)
		return;
	char esc[160];
	log_warn(in->id, "s2s_stream_error", "peer=%s from=%s to=%s cond=%s text=\"%s\"",
		 in->ip, in->from[0] ? in->from : "-", in->to[0] ? in->to : "-",
		 xs_cond_name(cond), log_escape(esc, sizeof esc, text ? text : "", text ? strlen(text) : 0));
	in->srv->stats.stream_errors++;
	send_header(in);
	/* held stanzas are answered while the stream can still carry the answers */
	while (in->held_head)
		hold_bounce_one(in);
	struct xs_error e = {.cond = cond, .app = app, .text = text ? text : ""};
	xs_write_stream_error(&in->out, &e);
	out_str(in, "</stream:stream>");
	out_flush(in);
	in_close(in, PE_PROTO);
}

static void in_close(struct s2s_in *in, int reason)
{
	if (in->state == IN_CLOSING)
		return;
	in->state = IN_CLOSING;
	net_conn_close(in->conn, reason);
}

static void send_features(struct s2s_in *in)
{
	const struct partner *p = in->partner;
	out_str(in, "<stream:features>");
	if (in->state == IN_AUTHED) {
		if (in->srv->conf->stream_management)
			out_str(in, "<sm xmlns='" NS_SM "'/>");
	} else {
		if (!in->tls && p->tls != NEG_NOT_SUPPORTED)
			out_str(in, p->tls == NEG_REQUIRED
					    ? "<starttls xmlns='" NS_TLS "'><required/></starttls>"
					    : "<starttls xmlns='" NS_TLS "'/>");
		if (in->tls && in->cert_ok && p->sasl != NEG_NOT_SUPPORTED)
			out_str(in, "<mechanisms xmlns='" NS_SASL
				    "'><mechanism>EXTERNAL</mechanism></mechanisms>");
		if (in->srv->db && dialback_allowed(p, in->tls))
			out_str(in, "<dialback xmlns='" NS_DIALBACK_FEATURE "'><errors/></dialback>");
	}
	out_str(in, "</stream:features>");
	out_flush(in);
}

static void on_policy_wait_over(uv_timer_t *t);

/* ---- stream header ---- */

static void check_cert_for_from(struct s2s_in *in);

static bool copy_domain(char *dst, const char *src)
{
	size_t n = src ? strlen(src) : 0;
	if (n == 0 || n >= DOMAIN_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)src[i];
		if (c <= 0x20 || c == '@' || c == '/' || c == '<' || c == '>' || c == '\'' ||
		    c == '"' || c == '&')
			return false;
		dst[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
	}
	dst[n] = 0;
	return true;
}

static void on_open(void *ud, const struct xs_open *o)
{
	struct s2s_in *in = ud;
	struct s2s *s = in->srv;
	uint64_t rnd[2];
	if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd)
		rnd[0] = rnd[1] = in->id;
	snprintf(in->stream_id, sizeof in->stream_id, "%016llx%016llx",
		 (unsigned long long)rnd[0], (unsigned long long)rnd[1]);
	in->header_sent = false;
	snprintf(in->lang, sizeof in->lang, "%s", o->lang ? o->lang : "");

	char to[DOMAIN_MAX], from[DOMAIN_MAX];
	bool to_ok = copy_domain(to, o->to), from_ok = copy_domain(from, o->from);
	if (to_ok)
		memcpy(in->to, to, sizeof to);
	if (from_ok && !in->from[0]) {
		memcpy(in->from, from, sizeof from);
		check_cert_for_from(in); /* direct TLS: the handshake came before the name */
	}
	if (strcmp(o->content_ns, XS_NS_SERVER) != 0) {
		stream_error(in, XS_COND_INVALID_NAMESPACE, XS_APP_NONE, "this is a server port");
		return;
	}
	if (!o->version || strncmp(o->version, "1.", 2) != 0) {
		stream_error(in, XS_COND_UNSUPPORTED_VERSION, XS_APP_NONE, "XMPP 1.0 streams only");
		return;
	}
	if (!in->pol) {
		stream_error(in, XS_COND_NOT_AUTHORIZED, XS_APP_NONE,
			     "no federation policy received from a gateway yet");
		return;
	}
	if (!to_ok || !policy_serves(in->pol, to, strlen(to))) {
		stream_error(in, XS_COND_HOST_UNKNOWN, XS_APP_NONE, "that domain is not served here");
		return;
	}
	if (!from_ok) {
		stream_error(in, XS_COND_NOT_AUTHORIZED, XS_APP_NONE,
			     "a 'from' naming the initiating domain is required");
		return;
	}
	if (in->state != IN_HEADER && strcmp(from, in->from) != 0) {
		stream_error(in, XS_COND_INVALID_FROM, XS_APP_NONE,
			     "the initiating domain changed on stream restart");
		return;
	}
	const struct partner *p = policy_partner(in->pol, from, strlen(from));
	if (!p) {
		stream_error(in, XS_COND_NOT_AUTHORIZED, XS_APP_NONE,
			     "that domain is not an allowed partner");
		return;
	}
	in->partner = p;
	if (!in->counted_partner) {
		struct counter *c = counter_get(&s->partners, &s->npartners, &s->cappartners,
						p->domain, true);
		uint32_t lim = p->connection_limit ? p->connection_limit
						   : in->pol->per_partner_limit;
		if (c->n >= lim) {
			s->stats.refused_limit++;
			stream_error(in, XS_COND_POLICY_VIOLATION, XS_APP_NONE,
				     "too many connections from this partner");
			return;
		}
		c->n++;
		in->counted_partner = true;
	}
	if (in->tls && p->tls == NEG_NOT_SUPPORTED) {
		stream_error(in, XS_COND_POLICY_VIOLATION, XS_APP_NONE,
			     "TLS is not used with this partner");
		return;
	}
	if (in->state == IN_HEADER)
		in->state = IN_OPEN;
	send_header(in);
	if (in->state == IN_OPEN && in->tls && !in->cert_ok &&
	    (p->sasl == NEG_REQUIRED || !p->dialback)) {
		char why[600];
		struct tls_sess *t = net_conn_tls(in->conn);
		char ids[120];
		certid_describe(tls_sess_peer_cert(t), ids, sizeof ids);
		snprintf(why, sizeof why, "certificate not valid for %s: %s; %s", in->from,
			 tls_sess_verify_result(t) == X509_V_OK ? "no matching identity"
								: tls_sess_verify_error(t),
			 ids);
		stream_error(in, XS_COND_NOT_AUTHORIZED, XS_APP_NONE, why);
		return;
	}
	send_features(in);
}

/* ---- TLS ---- */

static void on_secure(struct net_conn *c)
{
	struct s2s_in *in = net_conn_arg(c);
	struct tls_sess *t = net_conn_tls(c);
	in->tls = true;
	if (in->from[0]) {
		in->cert_ok = tls_sess_verify_result(t) == X509_V_OK &&
			      certid_xmpp_server(tls_sess_peer_cert(t), in->from) != CERTID_NONE;
	}
	log_info(in->id, "s2s_tls", "peer=%s from=%s version=%s cert=%s%s", in->ip,
		 in->from[0] ? in->from : "-", tls_sess_version(t),
		 tls_sess_peer_has_cert(t) ? (tls_sess_verify_result(t) == X509_V_OK ? "verified"
										   : "unverified")
					   : "none",
		 in->cert_ok ? ",identity-ok" : "");
}

/* Direct TLS learns `from` only after the handshake: check identity once it is known. */
static void check_cert_for_from(struct s2s_in *in)
{
	if (in->tls && !in->cert_ok && in->from[0]) {
		struct tls_sess *t = net_conn_tls(in->conn);
		in->cert_ok = tls_sess_verify_result(t) == X509_V_OK &&
			      certid_xmpp_server(tls_sess_peer_cert(t), in->from) != CERTID_NONE;
	}
}

/* ---- stanzas ---- */

static void sm_push(struct s2s_in *in, uint64_t seq)
{
	if (!in->sm)
		return;
	if (in->sm_len == in->sm_cap) {
		size_t cap = in->sm_cap ? in->sm_cap * 2 : 64;
		uint64_t *v = malloc(cap * sizeof *v);
		if (!v)
			abort();
		for (size_t i = 0; i < in->sm_len; i++)
			v[i] = in->sm_seq[(in->sm_head + i) % in->sm_cap];
		free(in->sm_seq);
		in->sm_seq = v;
		in->sm_cap = cap;
		in->sm_head = 0;
	}
	in->sm_seq[(in->sm_head + in->sm_len) % in->sm_cap] = seq;
	in->sm_len++;
}

/* Counts the stanzas whose frames the gateway acknowledged (all seqs below the outbox
 * head), in order. Returns true if h moved. */
static bool sm_advance(struct s2s_in *in)
{
	uint64_t head = in->srv->out->ob.head;
	bool moved = false;
	while (in->sm_len && in->sm_seq[in->sm_head] < head) {
		in->sm_head = (in->sm_head + 1) % in->sm_cap;
		in->sm_len--;
		in->sm_h++;
		moved = true;
	}
	if (in->sm_len == 0 && in->sm_cap > 64) { /* a burst is over: give the memory back */
		free(in->sm_seq);
		in->sm_seq = NULL;
		in->sm_cap = in->sm_head = 0;
	}
	return moved;
}

static void sm_send_a(struct s2s_in *in)
{
	char a[96];
	snprintf(a, sizeof a, "<a xmlns='" NS_SM "' h='%llu'/>",
		 (unsigned long long)(in->sm_h & 0xffffffffu));
	out_str(in, a);
	out_flush(in);
}

static void owe_a(struct s2s_in *in)
{
	if (in->on_alist)
		return;
	in->on_alist = true;
	in->anext = in->srv->owed_a;
	in->srv->owed_a = in;
}

static void pause_for_link(struct s2s_in *in)
{
	if (in->paused_link)
		return;
	in->paused_link = true;
	net_conn_pause_read(in->conn);
	if (!in->on_plist) {
		in->on_plist = true;
		in->pnext = in->srv->paused;
		in->srv->paused = in;
	}
}

/* What a refusal needs to know of a stanza: taken from the parsed element when it is
 * refused at once, from its packed link Stanza when it was held first. */
struct refused {
	const char *kind; /* element name: message, presence or iq */
	const char *from, *to, *id, *type;
};

static struct refused refused_from_elem(const struct xs_elem *el, const char *from, const char *to)
{
	return (struct refused){.kind = el->name.p,
				.from = from,
				.to = to,
				.id = xs_elem_attr(el, NULL, "id"),
				.type = xs_elem_attr(el, NULL, "type")};
}

static struct refused refused_from_link(const Parley__Link__Stanza *st)
{
	static const char *const kinds[4] = {"message", "message", "presence", "iq"};
	return (struct refused){.kind = kinds[(unsigned)st->kind & 3u],
				.from = st->from ? st->from : "",
				.to = st->to ? st->to : "",
				.id = st->id,
				.type = st->type};
}

/* Answers a stanza we cannot pass on with an error, as RFC 6120 §8.3 requires (never for
 * an error stanza). */
static void bounce_stanza(struct s2s_in *in, const struct refused *rf, const char *type,
			  const char *cond, const char *text)
{
	if (rf->type && strcmp(rf->type, "error") == 0)
		return;
	out_str(in, "<");
	out_str(in, rf->kind);
	out_attr(in, "from", rf->to);
	out_attr(in, "to", rf->from);
	out_attr(in, "id", rf->id);
	out_str(in, " type='error'><error type='");
	out_str(in, type);
	out_str(in, "'><");
	out_str(in, cond);
	out_str(in, " xmlns='" NS_STANZAS "'/><text xmlns='" NS_STANZAS "'>");
	out_str(in, text);
	out_str(in, "</text></error></");
	out_str(in, rf->kind);
	out_str(in, ">");
	out_flush(in);
}

/* A stanza the link refused is never silently dropped: the partner hears why (RFC 6120
 * §8.3) and operators see each one, counted by condition. An error stanza is not answered
 * (it would loop) but still counted and logged, with answered=0. */
static void refuse_stanza(struct s2s_in *in, const struct refused *rf, bool too_large)
{
	const char *cond = too_large ? "policy-violation" : "resource-constraint";
	bool answered = !(rf->type && strcmp(rf->type, "error") == 0);
	if (too_large)
		in->srv->stats.bounced_too_large++;
	else
		in->srv->stats.bounced_congested++;
	char ek[32], ef[160], et[160], ei[96];
	log_warn(in->id, "s2s_in_bounce",
		 "peer=%s domain=%s kind=%s from=%s to=%s id=%s cond=%s answered=%d", in->ip,
		 in->from, log_escape(ek, sizeof ek, rf->kind, strlen(rf->kind)),
		 log_escape(ef, sizeof ef, rf->from, strlen(rf->from)),
		 log_escape(et, sizeof et, rf->to, strlen(rf->to)),
		 rf->id ? log_escape(ei, sizeof ei, rf->id, strlen(rf->id)) : "-", cond,
		 answered ? 1 : 0);
	bounce_stanza(in, rf, too_large ? "modify" : "wait", cond,
		      too_large ? "stanza too large for the gateway link"
				: "gateway link congested, try again");
}

/* ---- stanzas held for the link ----
 *
 * Reading pauses when the link's window fills, but the stanzas of the read in progress (up
 * to 64 KB) are already parsed. The link takes up to twice its window; what comes past that
 * is kept here, packed, in arrival order, and handed to the link when it has room again,
 * before reading resumes. Only a stanza that waits longer than [s2s] link_wait (the
 * gateway is not acknowledging) or would push the stream's held bytes past HOLD_MAX_BYTES
 * is bounced with <resource-constraint/>. Nothing newer overtakes what is held, so the
 * link sees a stream's stanzas in order and XEP-0198 counts them in that order. */

#define HOLD_MAX_BYTES (256u * 1024u)

static void on_hold_timer(uv_timer_t *t);

struct s2s_held {
	struct s2s_held *next;
	uint64_t t_ms; /* when it was held (loop time) */
	size_t len;
	uint8_t data[]; /* the packed link Stanza */
};

static void hold_arm(struct s2s_in *in)
{
	uint64_t due = in->held_head->t_ms + in->srv->conf->link_wait_ms, now = now_ms(in->srv);
	uv_timer_start(&in->hold_timer, on_hold_timer, due > now ? due - now : 0, 0);
}

/* Returns false (nothing kept) if the stream's held bytes would pass HOLD_MAX_BYTES. */
static bool hold_stanza(struct s2s_in *in, const Parley__Link__Stanza *st)
{
	struct s2s *s = in->srv;
	size_t len = parley__link__stanza__get_packed_size(st);
	if (in->held_bytes + len > HOLD_MAX_BYTES)
		return false;
	struct s2s_held *h = malloc(sizeof *h + len);
	if (!h)
		abort();
	h->next = NULL;
	h->t_ms = now_ms(s);
	h->len = parley__link__stanza__pack(st, h->data);
	*in->held_tail = h;
	in->held_tail = &h->next;
	in->held_n++;
	in->held_bytes += h->len;
	s->stats.held++;
	s->stats.held_now++;
	if (in->held_n == 1)
		hold_arm(in);
	return true;
}

/* Takes the oldest held stanza off the queue and unpacks it; free with
 * parley__link__stanza__free_unpacked. */
static Parley__Link__Stanza *hold_pop(struct s2s_in *in)
{
	struct s2s_held *h = in->held_head;
	in->held_head = h->next;
	if (!in->held_head) {
		in->held_tail = &in->held_head;
		uv_timer_stop(&in->hold_timer);
	}
	in->held_n--;
	in->held_bytes -= h->len;
	in->srv->stats.held_now--;
	/* our own packing: unpacking fails only when memory does */
	Parley__Link__Stanza *st = parley__link__stanza__unpack(NULL, h->len, h->data);
	if (!st)
		abort();
	free(h);
	return st;
}

/* Bounces the oldest held stanza with <resource-constraint/> (or drops it, counted, if it
 * is an error stanza). */
static void hold_bounce_one(struct s2s_in *in)
{
	Parley__Link__Stanza *st = hold_pop(in);
	struct refused rf = refused_from_link(st);
	refuse_stanza(in, &rf, false);
	sm_push(in, 0);
	parley__link__stanza__free_unpacked(st, NULL);
}

/* The connection is gone: held stanzas can be neither passed on nor answered. */
static void hold_lose_all(struct s2s_in *in, const char *why)
{
	size_t n = in->held_n;
	if (!n)
		return;
	while (in->held_head) {
		struct s2s_held *h = in->held_head;
		in->held_head = h->next;
		free(h);
	}
	in->held_tail = &in->held_head;
	in->held_n = in->held_bytes = 0;
	in->srv->stats.held_now -= n;
	in->srv->stats.held_lost += n;
	log_warn(in->id, "s2s_in_lost", "peer=%s domain=%s count=%zu why=\"%s\"", in->ip,
		 in->from[0] ? in->from : "-", n, why);
}

/* Hands held stanzas to the link, oldest first, while its window has room. A frame too
 * large for the link is refused with <policy-violation/> as when it is not held. */
static void hold_drain(struct s2s_in *in)
{
	struct s2s *s = in->srv;
	while (in->held_head && !link_out_full(s->out)) {
		Parley__Link__Stanza *st = hold_pop(in);
		Parley__Link__Frame f = PARLEY__LINK__FRAME__INIT;
		f.body_case = PARLEY__LINK__FRAME__BODY_STANZA;
		f.stanza = st;
		int r = link_out_send(s->out, &f);
		if (r == 0) {
			sm_push(in, f.seq);
		} else {
			/* PE_FULL cannot happen below the window; refuse rather than reorder */
			struct refused rf = refused_from_link(st);
			refuse_stanza(in, &rf, r == PE_TOOBIG);
			sm_push(in, 0);
		}
		parley__link__stanza__free_unpacked(st, NULL);
	}
}

static void close_stream(struct s2s_in *in);

/* Nothing is held any more: a close the partner asked for while stanzas were held
 * happens now, after they went to the link or were answered. */
static void hold_empty(struct s2s_in *in)
{
	if (in->close_pending && in->state != IN_CLOSING)
		close_stream(in);
}

/* The oldest held stanzas waited link_wait: the gateway is not taking them. Each is
 * answered now; the stream stays paused until the link has room. */
static void on_hold_timer(uv_timer_t *t)
{
	struct s2s_in *in = t->data;
	if (in->state == IN_CLOSING || !in->held_head)
		return;
	uint64_t now = now_ms(in->srv), wait = in->srv->conf->link_wait_ms;
	size_t n = 0;
	while (in->held_head && now - in->held_head->t_ms >= wait) {
		hold_bounce_one(in);
		n++;
	}
	if (n)
		log_info(in->id, "s2s_in_hold_expired", "peer=%s domain=%s bounced=%zu held=%zu",
			 in->ip, in->from, n, in->held_n);
	if (in->on_alist && sm_advance(in))
		sm_send_a(in); /* the partner asked: those bounced count as handled */
	if (in->held_head)
		hold_arm(in);
	else
		hold_empty(in);
}

static void handle_stanza(struct s2s_in *in, const struct xs_elem *el)
{
	struct s2s *s = in->srv;
	const char *from = xs_elem_attr(el, NULL, "from");
	const char *to = xs_elem_attr(el, NULL, "to");
	size_t dl;
	const char *d;
	if (!from || !to) {
		stream_error(in, XS_COND_IMPROPER_ADDRESSING, XS_APP_NONE,
			     "server-to-server stanzas need 'from' and 'to'");
		return;
	}
	d = jid_domain(from, &dl);
	if (dl != strlen(in->from) || strncasecmp(d, in->from, dl) != 0) {
		stream_error(in, XS_COND_INVALID_FROM, XS_APP_NONE,
			     "'from' is outside the authenticated domain");
		return;
	}
	d = jid_domain(to, &dl);
	if (!policy_serves(in->pol, d, dl)) {
		stream_error(in, XS_COND_HOST_UNKNOWN, XS_APP_NONE, "'to' is not a served domain");
		return;
	}
	Parley__Link__Frame f = PARLEY__LINK__FRAME__INIT;
	Parley__Link__Stanza st;
	if (stanza_to_link(el, in->lang[0] ? in->lang : NULL, &s->scratch, &st) != 0) {
		stream_error(in, XS_COND_UNSUPPORTED_STANZA_TYPE, XS_APP_NONE, "not a stanza");
		return;
	}
	Parley__Link__StanzaMeta *m = &s->scratch.meta;
	parley__link__stanza_meta__init(m);
	m->peer_domain = in->from;
	m->has_auth = 1;
	m->auth = in->auth;
	m->tls_version = in->tls ? (char *)tls_sess_version(net_conn_tls(in->conn)) : NULL;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	m->has_received_us = 1;
	m->received_us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	m->has_stream_id = 1;
	m->stream_id = in->id;
	st.meta = m;
	st.ref = ((uint64_t)in->id << 32) | (in->stanzas & 0xffffffffu);
	f.body_case = PARLEY__LINK__FRAME__BODY_STANZA;
	f.stanza = &st;
	in->stanzas++;
	s->stats.stanzas_in++;
	s->stats.stanzas_in_kind[(unsigned)st.kind & 3u]++;
	/* Behind held stanzas a new one waits its turn, whatever room the link has. */
	int r = in->held_head ? PE_FULL : link_out_send(s->out, &f);
	if (r == 0) {
		sm_push(in, f.seq);
	} else if (r == PE_FULL && hold_stanza(in, &st)) {
		pause_for_link(in);
	} else {
		struct refused rf = refused_from_elem(el, from, to);
		refuse_stanza(in, &rf, r == PE_TOOBIG);
		sm_push(in, 0);
	}
	if (link_out_full(s->out))
		pause_for_link(in);
}

static void handle_starttls(struct s2s_in *in)
{
	if (in->tls || in->partner->tls == NEG_NOT_SUPPORTED) {
		out_str(in, "<failure xmlns='" NS_TLS "'/></stream:stream>");
		out_flush(in);
		in_close(in, PE_PROTO);
		return;
	}
	out_str(in, "<proceed xmlns='" NS_TLS "'/>");
	out_flush(in);
	xs_reset(in->xs);
	in->state = IN_HEADER;
	in->header_sent = false;
	if (net_conn_start_tls(in->conn, in->srv->tls, true, NULL) != 0)
		in_close(in, PE_TLS);
}

static void handle_auth(struct s2s_in *in, const struct xs_elem *el)
{
	const char *mech = xs_elem_attr(el, NULL, "mechanism");
	if (!in->tls) {
		stream_error(in, XS_COND_POLICY_VIOLATION, XS_APP_NONE, "SASL needs TLS");
		return;
	}
	if (!mech || strcmp(mech, "EXTERNAL") != 0 || in->partner->sasl == NEG_NOT_SUPPORTED) {
		out_str(in, "<failure xmlns='" NS_SASL "'><invalid-mechanism/></failure>");
		out_flush(in);
		return;
	}
	/* XEP-0178: the authzid, if given, must be the stream's initiating domain. */
	size_t tl;
	const char *txt = xs_elem_text(el, &tl);
	if (tl && !(tl == 1 && txt[0] == '=')) {
		unsigned char dec[DOMAIN_MAX + 4];
		int pads = (tl >= 1 && txt[tl - 1] == '=') + (tl >= 2 && txt[tl - 2] == '=');
		int n = tl % 4 == 0 && tl <= 4 * (DOMAIN_MAX / 3)
				? EVP_DecodeBlock(dec, (const unsigned char *)txt, (int)tl)
				: -1;
		if (n > 0)
			n -= pads;
		if (n <= 0 || (size_t)n != strlen(in->from) ||
		    strncasecmp((const char *)dec, in->from, (size_t)n) != 0) {
			out_str(in, "<failure xmlns='" NS_SASL "'><invalid-authzid/></failure>");
			out_flush(in);
			return;
		}
	}
	if (!in->cert_ok) {
		out_str(in, "<failure xmlns='" NS_SASL "'><not-authorized/></failure>");
		out_flush(in);
		return;
	}
	out_str(in, "<success xmlns='" NS_SASL "'/>");
	out_flush(in);
	in->state = IN_AUTHED;
	in->auth = PARLEY__LINK__AUTH_METHOD__AUTH_SASL_EXTERNAL;
	in->srv->stats.authenticated++;
	in->srv->stats.auth_external++;
	xs_reset(in->xs);
	in->header_sent = false;
	struct xs_limits lim = xs_limits_postauth;
	lim.max_stanza_bytes = in->pol->max_stanza_bytes;
	xs_set_limits(in->xs, &lim);
	struct tls_sess *t = net_conn_tls(in->conn);
	log_info(in->id, "s2s_auth",
		 "peer=%s domain=%s method=EXTERNAL identity=%s partner=%s tls=%s direct_tls=%d",
		 in->ip, in->from,
		 certid_kind_name(certid_xmpp_server(tls_sess_peer_cert(t), in->from)),
		 in->partner->domain, tls_sess_version(t), in->direct);
}

static void handle_sm(struct s2s_in *in, const struct xs_elem *el)
{
	const char *n = el->name.p;
	if (strcmp(n, "enable") == 0) {
		if (in->state != IN_AUTHED || !in->srv->conf->stream_management || in->sm) {
			out_str(in, "<failed xmlns='" NS_SM "'><unexpected-request xmlns='" NS_STANZAS
				    "'/></failed>");
		} else {
			in->sm = true;
			out_str(in, "<enabled xmlns='" NS_SM "'/>");
			log_info(in->id, "s2s_sm", "peer=%s domain=%s enabled=1", in->ip, in->from);
		}
		out_flush(in);
	} else if (strcmp(n, "r") == 0 && in->sm) {
		sm_advance(in);
		sm_send_a(in);
		if (in->sm_len || in->held_head)
			owe_a(in); /* tell it again when the gateway catches up */
	} else if (strcmp(n, "a") == 0 && in->sm) {
		/* we send no stanzas on an inbound stream: nothing to release */
	} else if (!in->sm) {
		stream_error(in, XS_COND_UNSUPPORTED_STANZA_TYPE, XS_APP_NONE,
			     "stream management not enabled");
	}
}

/* ---- dialback (XEP-0220): receiving and authoritative roles ---- */

/* The authoritative server's verdict on a db:result this stream sent (receiving role). On
 * 'valid' the stream is authenticated as its initiating domain, without a restart; on
 * 'invalid' it stays unauthenticated, so any stanza on it is refused. */
static void s2s__db_verified(void *arg, int verdict)
{
	struct s2s_in *in = arg;
	in->db_pending = false;
	if (in->state != IN_OPEN)
		return;
	log_info(in->id, "s2s_dialback_result", "peer=%s from=%s to=%s verdict=%s", in->ip,
		 in->from, in->to,
		 verdict == 1 ? "valid" : verdict == 0 ? "invalid" : pe_strerror(verdict));
	if (verdict < 0)
		dialback_write_error(&in->out, DB_RESULT, in->to, in->from, NULL,
				     "remote-connection-failed");
	else
		dialback_write_answer(&in->out, DB_RESULT, in->to, in->from, NULL, verdict == 1);
	out_flush(in);
	if (verdict != 1)
		return;
	in->state = IN_AUTHED;
	in->auth = PARLEY__LINK__AUTH_METHOD__AUTH_DIALBACK;
	in->srv->stats.authenticated++;
	in->srv->stats.auth_dialback++;
	struct xs_limits lim = xs_limits_postauth;
	lim.max_stanza_bytes = in->pol->max_stanza_bytes;
	xs_set_limits(in->xs, &lim);
	struct tls_sess *t = in->tls ? net_conn_tls(in->conn) : NULL;
	log_info(in->id, "s2s_auth",
		 "peer=%s domain=%s method=DIALBACK partner=%s tls=%s direct_tls=%d cert=%s", in->ip,
		 in->from, in->partner->domain, t ? tls_sess_version(t) : "none", in->direct,
		 in->cert_ok ? "valid" : "invalid");
}

/* Receiving role: a db:result for the stream's own domain pair goes to the authoritative
 * server of its initiating domain; anything else is answered with a dialback error. */
static void s2s__db_result(struct s2s_in *in, const struct dialback_elem *e)
{
	const char *refuse = NULL;
	char key[257], esc[96];
	if (in->state != IN_OPEN || in->db_pending)
		refuse = "not-allowed"; /* one domain pair per stream, one check at a time */
	if (!refuse)
		refuse = dialback_result_refusal(e, in->from, in->pol, in->tls);
	if (!refuse && (strlen(e->to) != strlen(in->to) || strcasecmp(e->to, in->to) != 0))
		refuse = "not-allowed"; /* another of our domains than the stream's */
	if (!refuse && e->keylen >= sizeof key)
		refuse = "not-acceptable";
	if (!refuse) {
		memcpy(key, e->key, e->keylen);
		key[e->keylen] = 0;
		if (s2s_out_verify(in->srv->db_out, in->to, in->from, in->stream_id, key,
				   s2s__db_verified, in) != 0)
			refuse = "remote-connection-failed";
	}
	if (refuse) {
		log_warn(in->id, "s2s_dialback_refused", "peer=%s stream_from=%s from=%s cond=%s",
			 in->ip, in->from, log_escape(esc, sizeof esc, e->from, strlen(e->from)),
			 refuse);
		dialback_write_error(&in->out, DB_RESULT, e->to, e->from, NULL, refuse);
		out_flush(in);
		return;
	}
	in->db_pending = true;
	log_info(in->id, "s2s_dialback_verifying", "peer=%s from=%s to=%s", in->ip, in->from,
		 in->to);
}

/* Authoritative role: a key is ours if our secret gives it for (receiving = from,
 * originating = to, stream id). Asked on any stream of an allowed partner, authenticated or
 * not; the answer tells nothing but that. */
static void s2s__db_verify(struct s2s_in *in, const struct dialback_elem *e)
{
	const struct dialback *db = in->srv->db;
	char esc[96];
	if (!policy_serves(in->pol, e->to, strlen(e->to))) {
		dialback_write_error(&in->out, DB_VERIFY, e->to, e->from, e->id, "item-not-found");
		out_flush(in);
		return;
	}
	char to[DOMAIN_MAX], from[DOMAIN_MAX];
	bool ok = copy_domain(to, e->to) && copy_domain(from, e->from) &&
		  dialback_key_ok(db, from, to, e->id, e->key, e->keylen);
	log_info(in->id, "s2s_db_verify", "peer=%s from=%s to=%s verdict=%s", in->ip,
		 log_escape(esc, sizeof esc, e->from, strlen(e->from)), e->to,
		 ok ? "valid" : "invalid");
	dialback_write_answer(&in->out, DB_VERIFY, e->to, e->from, e->id, ok);
	out_flush(in);
}

static void s2s__dialback(struct s2s_in *in, const struct xs_elem *el)
{
	struct dialback_elem e;
	if (!in->srv->db || !in->partner || dialback_parse(el, &e) != 0 ||
	    e.type != DB_TYPE_REQUEST) {
		stream_error(in, XS_COND_UNSUPPORTED_STANZA_TYPE, XS_APP_NONE,
			     "unexpected dialback element");
		return;
	}
	if (e.kind == DB_VERIFY)
		s2s__db_verify(in, &e);
	else
		s2s__db_result(in, &e);
}

static void on_stanza(void *ud, const struct xs_stanza *xst)
{
	struct s2s_in *in = ud;
	const struct xs_elem *el = xst->el;
	if (in->state == IN_CLOSING)
		return;
	if (strcmp(el->ns.p, XS_NS_SERVER) == 0) {
		if (in->state != IN_AUTHED) {
			if (!in->tls && in->partner && in->partner->tls == NEG_REQUIRED)
				stream_error(in, XS_COND_POLICY_VIOLATION, XS_APP_NONE,
					     "TLS is required before anything else");
			else
				stream_error(in, XS_COND_NOT_AUTHORIZED, XS_APP_NONE,
					     "authenticate first");
			return;
		}
		handle_stanza(in, el);
		return;
	}
	if (strcmp(el->ns.p, NS_TLS) == 0 && strcmp(el->name.p, "starttls") == 0 &&
	    in->state == IN_OPEN) {
		handle_starttls(in);
		return;
	}
	if (!in->tls && in->partner && in->partner->tls == NEG_REQUIRED) {
		stream_error(in, XS_COND_POLICY_VIOLATION, XS_APP_NONE, "TLS is required first");
		return;
	}
	if (strcmp(el->ns.p, NS_SASL) == 0 && strcmp(el->name.p, "auth") == 0 &&
	    in->state == IN_OPEN) {
		handle_auth(in, el);
		return;
	}
	if (strcmp(el->ns.p, NS_SM) == 0) {
		handle_sm(in, el);
		return;
	}
	if (strcmp(el->ns.p, XS_NS_DIALBACK) == 0) {
		s2s__dialback(in, el);
		return;
	}
	stream_error(in, XS_COND_UNSUPPORTED_STANZA_TYPE, XS_APP_NONE,
		     in->state == IN_AUTHED ? "unexpected element" : "authenticate first");
}

/* Ends the stream from our side after the partner ended its own. */
static void close_stream(struct s2s_in *in)
{
	log_info(in->id, "s2s_close", "peer=%s domain=%s stanzas=%llu", in->ip,
		 in->from[0] ? in->from : "-", (unsigned long long)in->stanzas);
	send_header(in);
	out_str(in, "</stream:stream>");
	out_flush(in);
	in_close(in, 0);
}

static void on_xs_close(void *ud)
{
	struct s2s_in *in = ud;
	if (in->state == IN_CLOSING)
		return;
	if (in->held_head) {
		/* Stanzas before the close still go to the link (or are answered) first;
		 * reading is paused, so nothing follows. */
		in->close_pending = true;
		return;
	}
	close_stream(in);
}

static void on_xs_error(void *ud, const struct xs_error *e)
{
	struct s2s_in *in = ud;
	stream_error(in, e->cond, e->app, e->text);
}

static const struct xs_callbacks in_xs_cbs = {
	.on_open = on_open,
	.on_stanza = on_stanza,
	.on_close = on_xs_close,
	.on_error = on_xs_error,
};

/* ---- connection plumbing ---- */

/* Reading resumes only when no reason to pause is left. */
static void in_maybe_resume(struct s2s_in *in)
{
	if (!in->paused_link && !in->paused_rate && !in->paused_policy && in->state != IN_CLOSING)
		net_conn_resume_read(in->conn);
}

static void rate_resume(uv_timer_t *t)
{
	struct s2s_in *in = t->data;
	in->paused_rate = false;
	in_maybe_resume(in);
}

/* A token bucket of one second's worth: reading pauses when a connection spends it. */
static void rate_account(struct s2s_in *in, size_t n)
{
	uint64_t rate = in->srv->conf->rate_limit;
	if (!rate)
		return;
	uint64_t now = now_ms(in->srv);
	in->tokens += (double)(now - in->tokens_ms) * (double)rate / 1000.0;
	if (in->tokens > (double)rate)
		in->tokens = (double)rate;
	in->tokens_ms = now;
	in->tokens -= (double)n;
	if (in->tokens < 0 && !in->paused_rate) {
		in->paused_rate = true;
		net_conn_pause_read(in->conn);
		uint64_t wait = (uint64_t)(-in->tokens * 1000.0 / (double)rate) + 1;
		uv_timer_start(&in->rate_timer, rate_resume, wait, 0);
	}
}

static void on_data(struct net_conn *c, const uint8_t *p, size_t n)
{
	struct s2s_in *in = net_conn_arg(c);
	if (in->state == IN_CLOSING)
		return;
	in->last_rx_ms = now_ms(in->srv);
	rate_account(in, n);
	check_cert_for_from(in);
	int r = xs_feed(in->xs, (const char *)p, n);
	(void)r; /* errors arrive through on_xs_error */
	if (in->state == IN_CLOSING)
		return;
	if (xs_unparsed(in->xs) && in->state == IN_HEADER && in->tls &&
	    !tls_sess_handshake_done(net_conn_tls(c))) {
		/* bytes pipelined behind <starttls/>: XMPP forbids it */
		in_close(in, PE_PROTO);
	}
}

static void on_timer(uv_timer_t *t)
{
	struct s2s_in *in = t->data;
	struct s2s *s = in->srv;
	if (in->state == IN_CLOSING)
		return;
	uint64_t now = now_ms(s);
	const struct policy *pol = in->pol ? in->pol : s->pol;
	uint64_t est = (pol ? pol->establishment_s : 60) * 1000u;
	uint64_t idle = (pol ? pol->inactivity_s : 600) * 1000u;
	uint64_t ka = (pol ? pol->keepalive_s : 300) * 1000u;
	if (in->state != IN_AUTHED && now - in->started_ms >= est) {
		stream_error(in, XS_COND_CONNECTION_TIMEOUT, XS_APP_NONE,
			     "stream not established in time");
		return;
	}
	/* a stream holding stanzas is not idle: it waits for the link */
	if (in->state == IN_AUTHED && !in->held_head && now - in->last_rx_ms >= idle) {
		log_info(in->id, "s2s_idle", "peer=%s domain=%s", in->ip, in->from);
		send_header(in);
		out_str(in, "</stream:stream>");
		out_flush(in);
		in_close(in, 0);
		return;
	}
	if (in->state == IN_AUTHED && (!in->partner || in->partner->keepalive) &&
	    now - in->last_tx_ms >= ka) {
		out_str(in, " "); /* RFC 6120 §4.6.1 whitespace keepalive */
		out_flush(in);
	}
}

static void in_maybe_free(struct s2s_in *in)
{
	if (!in->conn_gone || in->handles)
		return;
	xs_free(in->xs);
	buf_deinit(&in->out);
	free(in->sm_seq);
	policy_unref(in->pol);
	free(in);
}

static void on_handle_closed(uv_handle_t *h)
{
	struct s2s_in *in = h->data;
	in->handles--;
	in_maybe_free(in);
}

static void unlink_list(struct s2s_in **head, struct s2s_in *in, size_t off_next)
{
	for (struct s2s_in **pp = head; *pp;
	     pp = (struct s2s_in **)((char *)*pp + off_next)) {
		if (*pp == in) {
			*pp = *(struct s2s_in **)((char *)in + off_next);
			return;
		}
	}
}

static void on_close(struct net_conn *c, int reason)
{
	struct s2s_in *in = net_conn_arg(c);
	struct s2s *s = in->srv;
	log_debug(in->id, "s2s_closed", "peer=%s reason=\"%s\"", in->ip,
		  reason ? pe_strerror(reason) : "closed");
	in->state = IN_CLOSING;
	if (in->prev)
		in->prev->next = in->next;
	else
		s->streams = in->next;
	if (in->next)
		in->next->prev = in->prev;
	s->nstreams--;
	if (in->on_plist)
		unlink_list(&s->paused, in, offsetof(struct s2s_in, pnext));
	if (in->on_alist)
		unlink_list(&s->owed_a, in, offsetof(struct s2s_in, anext));
	if (in->db_pending)
		s2s_out_verify_cancel(s->db_out, in);
	hold_lose_all(in, reason ? pe_strerror(reason) : "connection closed");
	counter_dec(s->ips, &s->nips, in->ip);
	if (in->counted_partner)
		counter_dec(s->partners, &s->npartners, in->partner->domain);
	in->conn_gone = true;
	uv_close((uv_handle_t *)&in->timer, on_handle_closed);
	uv_close((uv_handle_t *)&in->rate_timer, on_handle_closed);
	uv_close((uv_handle_t *)&in->hold_timer, on_handle_closed);
}

static const struct net_conn_cbs in_cbs = {
	.on_secure = on_secure,
	.on_data = on_data,
	.on_close = on_close,
};

static void strip_port(char *ip)
{
	/* "1.2.3.4:5" or "[::1]:5" -> address only */
	if (ip[0] == '[') {
		char *e = strchr(ip, ']');
		if (e) {
			*e = 0;
			memmove(ip, ip + 1, strlen(ip + 1) + 1);
		}
		return;
	}
	char *colon = strrchr(ip, ':');
	if (colon && strchr(ip, ':') == colon)
		*colon = 0;
}

static void accept_stream(struct s2s *s, struct net_conn *c, bool direct)
{
	struct s2s_in *in = calloc(1, sizeof *in);
	if (!in)
		abort();
	in->srv = s;
	in->conn = c;
	in->id = net_conn_id(c);
	in->direct = direct;
	snprintf(in->ip, sizeof in->ip, "%s", net_conn_peer(c));
	strip_port(in->ip);
	in->pol = policy_ref(s->pol);
	struct xs_limits lim = xs_limits_preauth;
	if (in->pol)
		lim.max_stanza_bytes = in->pol->preauth_stanza_bytes;
	in->xs = xs_new(&lim, &in_xs_cbs, in);
	buf_init(&in->out, 0);
	in->started_ms = in->last_rx_ms = in->last_tx_ms = in->tokens_ms = now_ms(s);
	in->tokens = (double)s->conf->rate_limit;
	uv_timer_init(s->loop, &in->timer);
	uv_timer_init(s->loop, &in->rate_timer);
	uv_timer_init(s->loop, &in->hold_timer);
	in->timer.data = in->rate_timer.data = in->hold_timer.data = in;
	in->handles = 3;
	in->held_tail = &in->held_head;
	uv_timer_start(&in->timer, on_timer, 1000, 1000);
	in->next = s->streams;
	if (s->streams)
		s->streams->prev = in;
	s->streams = in;
	s->nstreams++;
	s->stats.accepted++;
	net_conn_set_cbs(c, &in_cbs, in);

	struct counter *ipc = counter_get(&s->ips, &s->nips, &s->capips, in->ip, true);
	ipc->n++;
	uint32_t total = s->pol ? s->pol->connection_limit : 1000;
	if (s->stopping) {
		stream_error(in, XS_COND_SYSTEM_SHUTDOWN, XS_APP_NONE, "shutting down");
	} else if (ipc->n > s->conf->max_per_ip || s->nstreams > total) {
		s->stats.refused_limit++;
		stream_error(in, XS_COND_POLICY_VIOLATION, XS_APP_NONE,
			     ipc->n > s->conf->max_per_ip ? "too many connections from this address"
							  : "connection limit reached");
	} else if (direct && net_conn_start_tls(c, s->tls, true, NULL) != 0) {
		in_close(in, PE_TLS);
	} else if (!s->pol && !s->policy_wait_over) {
		in->paused_policy = true;
		net_conn_pause_read(c);
	}
	log_debug(in->id, "s2s_accept", "peer=%s direct_tls=%d", in->ip, direct);
}

static void on_accept_starttls(void *arg, struct net_conn *c) { accept_stream(arg, c, false); }
static void on_accept_direct(void *arg, struct net_conn *c) { accept_stream(arg, c, true); }

static int parse_hostport(const char *s, char *host, size_t cap, uint16_t *port)
{
	const char *h = s, *colon;
	size_t hl;
	if (*s == '[') {
		const char *e = strchr(s, ']');
		if (!e || e[1] != ':')
			return PE_CONFIG;
		h = s + 1;
		hl = (size_t)(e - h);
		colon = e + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return PE_CONFIG;
		hl = (size_t)(colon - s);
	}
	char *end;
	unsigned long p = strtoul(colon + 1, &end, 10);
	if (*end || p > 65535 || hl == 0 || hl >= cap)
		return PE_CONFIG;
	memcpy(host, h, hl);
	host[hl] = 0;
	*port = (uint16_t)p;
	return 0;
}

static int listen_all(struct s2s *s, const struct conf_strlist *l, net_accept_cb cb,
		      const char *what)
{
	for (size_t i = 0; i < l->n; i++) {
		char host[128];
		uint16_t port;
		if (parse_hostport(l->v[i], host, sizeof host, &port) ||
		    s->nls == sizeof s->ls / sizeof s->ls[0]) {
			log_error(0, "s2s_listen", "addr=\"%s\" err=\"not host:port\"", l->v[i]);
			return PE_CONFIG;
		}
		int r = net_listen(s->loop, host, port, 511, cb, s, &s->ls[s->nls]);
		if (r) {
			log_error(0, "s2s_listen", "addr=%s port=%u err=\"%s\"", host, port,
				  pe_strerror(r));
			return r;
		}
		log_info(0, "s2s_listen", "addr=%s port=%u kind=%s", host,
			 net_listener_port(s->ls[s->nls]), what);
		s->nls++;
	}
	return 0;
}

/* The inbound TLS server context's settings from conf; false without a cert and a key. */
static bool server_tls_cfg(const struct s2s_conf *conf, struct tls_ctx_cfg *t)
{
	static const char *const alpn[] = {"xmpp-server", NULL};
	*t = (struct tls_ctx_cfg){.ca_file = conf->ca,
				  .cert_file = conf->cert,
				  .key_file = conf->key,
				  .min_version = TLS1_2_VERSION,
				  .request_peer_cert = true,
				  .alpn = alpn};
	return conf->cert && conf->key;
}

int s2s_reload_tls(struct s2s *s, const struct s2s_conf *conf, char *err, size_t errlen)
{
	struct tls_ctx_cfg t;
	if (!s->tls)
		return 0; /* no listeners: nothing presents this certificate inbound */
	if (!server_tls_cfg(conf, &t)) {
		snprintf(err, errlen, "[s2s] cert and key are required to listen");
		log_error(0, "s2s_tls_reload", "err=\"%s\"", err);
		return PE_CONFIG;
	}
	/* tls_ctx_reload swaps the SSL_CTX only once the new one is built: handshakes from
	 * now on see the new chain, sessions already made hold a reference to the old. */
	int r = tls_ctx_reload(s->tls, &t, err, errlen);
	if (r) {
		log_error(0, "s2s_tls_reload", "dir=in err=\"%s\"", err);
		return r;
	}
	log_info(0, "s2s_tls_reloaded", "dir=in cert=%s", conf->cert);
	return 0;
}

int s2s_start(uv_loop_t *loop, const struct s2s_conf *conf, struct link_out *out,
	      struct s2s **res)
{
	char err[512];
	struct s2s *s = calloc(1, sizeof *s);
	if (!s)
		abort();
	s->loop = loop;
	s->conf = conf;
	s->out = out;
	stanza_scratch_init(&s->scratch);
	if (conf->listen.n || conf->listen_tls.n) {
		struct tls_ctx_cfg t;
		if (!server_tls_cfg(conf, &t)) {
			log_error(0, "s2s_config", "err=\"[s2s] cert and key are required to listen\"");
			s2s_free(s);
			return PE_CONFIG;
		}
		s->tls = tls_ctx_new(true, &t, err, sizeof err);
		if (!s->tls) {
			log_error(0, "s2s_tls", "err=\"%s\"", err);
			s2s_free(s);
			return PE_TLS;
		}
	}
	uv_timer_init(loop, &s->policy_timer);
	s->policy_timer.data = s;
	s->policy_timer_on = true;
	uv_timer_start(&s->policy_timer, on_policy_wait_over, conf->policy_wait_ms, 0);
	uv_unref((uv_handle_t *)&s->policy_timer);
	/* Even on failure *res is set: the timer belongs to the loop until the caller has
	 * closed every handle, and only then may s2s_free run. */
	*res = s;
	int r = listen_all(s, &conf->listen, on_accept_starttls, "starttls");
	if (!r)
		r = listen_all(s, &conf->listen_tls, on_accept_direct, "direct-tls");
	return r;
}

void s2s_stop(struct s2s *s)
{
	s->stopping = true;
	if (s->policy_timer_on) {
		uv_close((uv_handle_t *)&s->policy_timer, NULL);
		s->policy_timer_on = false;
	}
	for (size_t i = 0; i < s->nls; i++)
		net_listener_close(s->ls[i]);
	s->nls = 0;
	for (struct s2s_in *in = s->streams, *next; in; in = next) {
		next = in->next;
		stream_error(in, XS_COND_SYSTEM_SHUTDOWN, XS_APP_NONE, "the edge is shutting down");
	}
}

void s2s_free(struct s2s *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nls; i++)
		net_listener_close(s->ls[i]);
	policy_unref(s->pol);
	tls_ctx_free(s->tls);
	stanza_scratch_deinit(&s->scratch);
	free(s->ips);
	free(s->partners);
	free(s);
}

void s2s_set_policy(struct s2s *s, const Parley__Link__PolicySnapshot *snap)
{
	if (s->pol && snap->generation <= s->pol->generation)
		return;
	struct policy *p = policy_from_snapshot(snap);
	policy_unref(s->pol);
	s->pol = p;
	log_info(0, "policy_applied", "generation=%llu served=%zu partners=%zu",
		 (unsigned long long)p->generation, p->nserved, p->npartners);
	/* Streams still negotiating pick it up; authenticated ones keep what they agreed to. */
	for (struct s2s_in *in = s->streams; in; in = in->next) {
		if (in->state == IN_HEADER && !in->header_sent) {
			policy_unref(in->pol);
			in->pol = policy_ref(p);
		}
		if (in->paused_policy) {
			in->paused_policy = false;
			in_maybe_resume(in);
		}
	}
}

/* No policy came in time: streams still waiting are read now, and refused. */
static void on_policy_wait_over(uv_timer_t *t)
{
	struct s2s *s = t->data;
	s->policy_wait_over = true;
	if (s->pol)
		return;
	log_warn(0, "policy_missing", "waited_ms=%llu; refusing S2S until a gateway connects",
		 (unsigned long long)s->conf->policy_wait_ms);
	for (struct s2s_in *in = s->streams; in; in = in->next) {
		if (in->paused_policy) {
			in->paused_policy = false;
			in_maybe_resume(in);
		}
	}
}

/* Held stanzas go first, stream by stream; a stream reads again only once it holds
 * nothing and the link is below its window (if it fills again, on_room comes again). */
void s2s_link_room(struct s2s *s)
{
	struct s2s_in *in = s->paused;
	s->paused = NULL;
	while (in) {
		struct s2s_in *next = in->pnext;
		in->on_plist = false;
		in->paused_link = false;
		if (in->state != IN_CLOSING) {
			hold_drain(in);
			if (in->held_head || link_out_full(s->out)) {
				pause_for_link(in);
			} else {
				hold_empty(in);
				in_maybe_resume(in);
			}
		}
		in = next;
	}
}

void s2s_link_acked(struct s2s *s)
{
	struct s2s_in **pp = &s->owed_a;
	while (*pp) {
		struct s2s_in *in = *pp;
		if (sm_advance(in) && in->state == IN_AUTHED)
			sm_send_a(in);
		if (in->sm_len == 0 && !in->held_head) {
			*pp = in->anext;
			in->on_alist = false;
		} else {
			pp = &in->anext;
		}
	}
}

void s2s_set_dialback(struct s2s *s, struct s2s_out *out, const struct dialback *db)
{
	s->db_out = out;
	s->db = db;
}

const struct s2s_stats *s2s_stats(const struct s2s *s) { return &s->stats; }
size_t s2s_stream_count(const struct s2s *s) { return s->nstreams; }

const char *s2s_auth_name(int method)
{
	switch (method) {
	case PARLEY__LINK__AUTH_METHOD__AUTH_SASL_EXTERNAL:
		return "sasl-external";
	case PARLEY__LINK__AUTH_METHOD__AUTH_DIALBACK:
		return "dialback";
	default:
		return "none";
	}
}

void s2s_foreach_session(const struct s2s *s, s2s_session_cb cb, void *arg)
{
	static const char *const states[] = {"header", "open", "authenticated", "closing"};
	uint64_t now = uv_now(s->loop);
	for (const struct s2s_in *in = s->streams; in; in = in->next) {
		struct tls_sess *t =
		    in->tls && in->conn && !in->conn_gone ? net_conn_tls(in->conn) : NULL;
		struct s2s_session_info si = {
		    .id = in->id,
		    .dir = "in",
		    .local = in->to,
		    .remote = in->from,
		    .addr = in->ip,
		    .state = states[in->state],
		    .auth = in->state == IN_AUTHED ? s2s_auth_name(in->auth) : "none",
		    .tls_version = t ? tls_sess_version(t) : "none",
		    .cert = !t ? "none" : in->cert_ok ? "valid" : "invalid",
		    .direct_tls = in->direct,
		    .sm = in->sm,
		    .age_ms = now - in->started_ms,
		    .stanzas = in->stanzas,
		    .queued = in->held_n,
		};
		cb(arg, &si);
	}
}
