/* The translator. It owns no socket: stanzas come from the edges through edgelink, SIP
 * through sip_stack. The rule everywhere is DESIGN.md's: nobody is told "accepted" early.
 * An XMPP message is acknowledged to the edge only when its SIP MESSAGE got a final answer
 * (or an XMPP error went back); a SIP MESSAGE is answered 202 only when the edge wrote the
 * stanza to a partner stream (Delivered), the mapped failure on Bounce, and 202 at the
 * deadline below Timer F, after which a late Bounce reaches the SIP user as a new MESSAGE. */
#include "xlate.h"

#include "addr.h"
#include "buf.h"
#include "chatstate.h"
#include "err.h"
#include "errmap.h"
#include "jid.h"
#include "log.h"
#include "policy.h"
#include "sip_map.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

const char *const xlate_message_types[] = {"none", "normal", "chat", NULL};

#define NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define NS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"
#define NS_PING "urn:xmpp:ping"
#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"
#define LATE_KEEP_MS (10 * 60 * 1000) /* how long a late bounce can still be reported */

/* C8: a conversation's thread and Call-ID, bound both ways, kept while in use. */
struct binding {
	struct sip_map_node by_thread, by_callid;
	struct binding *prev, *next; /* least recently used first */
	uint64_t expires;
	int64_t stored_expiry; /* the expiry the store has, unix seconds */
	char *thread, *callid;
};

/* F2: the chat-state trackers of one conversation, both directions. Key: the XMPP user's
 * bare JID, '\n', the SIP user's bare JID (normalised). Freed when both sides are idle. */
struct conv {
	struct sip_map_node node;
	struct conv *prev, *next;
	char *key;
	char *xmpp_jid;		/* the XMPP side as last seen (full JID) */
	char *sip_jid;		/* the SIP user as a JID */
	struct chatstate_tx tx; /* XMPP -> SIP */
	struct chatstate_rx rx; /* SIP -> XMPP */
};
#define CONV_MAX 100000 /* beyond this, chat states pass through untracked */

/* An XMPP message waiting for the SIP final response. */
struct pend_in {
	struct pend_in *prev, *next; /* every one waiting, for xlate_free */
	struct xlate *x;
	struct link_peer *peer;
	uint64_t epoch, seq;
	int kind;
	char *from, *to, *id;
	char *body; /* only with log_message_bodies: for the failure's log line */
};

/* A SIP MESSAGE waiting for Delivered or Bounce. */
struct pend_out {
	struct sip_map_node node; /* keyed by ref */
	uint64_t ref;
	struct xlate *x;
	struct sip_stxn *st; /* NULL once answered (the deadline passed) */
	uv_timer_t timer;
	char *user_uri;	   /* the SIP sender, for a late failure notice */
	char *partner_uri; /* the XMPP recipient as a SIP URI */
};

struct xlate {
	uv_loop_t *loop;
	const struct xlate_conf *conf;
	struct sip_stack *sip;
	struct edgelink *edges;
	const Parley__Link__PolicySnapshot *pol;
	struct sip_map threads, callids;
	struct binding *lru_head, *lru_tail;
	uv_timer_t sweep;
	struct sip_map pending; /* struct pend_out by ref */
	struct pend_in *pend_ins;
	struct sip_map convs;	/* struct conv by key */
	struct conv *conv_head; /* every conversation with chat-state state */
	uv_timer_t cs_timer;	/* F2: refreshes and idle timeouts, every second while any */
	uint64_t ref_base, ref_next;
	struct xlate_stats stats;
	struct buf scratch;
	struct store *store;
	struct presence *pres;
	const struct gw_policy_conf *access; /* J4: per-user access; NULL = everyone */
};

/* ---- small helpers ---- */

static char *dup0(const char *s)
{
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d)
		abort();
	return d;
}

static bool domain_eq(const char *a, const char *b, size_t blen)
{
	return strlen(a) == blen && strncasecmp(a, b, blen) == 0;
}

static bool serves(const struct xlate *x, const char *d, size_t n)
{
	for (size_t i = 0; x->pol && i < x->pol->n_served_domains; i++)
		if (domain_eq(x->pol->served_domains[i], d, n))
			return true;
	return false;
}

static bool is_partner(const struct xlate *x, const char *d, size_t n)
{
	for (size_t i = 0; x->pol && i < x->pol->n_partners; i++) {
		const Parley__Link__Partner *p = x->pol->partners[i];
		if (domain_eq(p->domain, d, n))
			return true;
		for (size_t k = 0; k < p->n_additional_domains; k++)
			if (domain_eq(p->additional_domains[k], d, n))
				return true;
	}
	return false;
}

/* The domain part of a JID as a view. */
static const char *domain_of(const char *jid, size_t *n)
{
	struct jid j;
	if (!jid || jid_parse(jid, strlen(jid), &j) != 0) {
		*n = 0;
		return "";
	}
	*n = j.domain.n;
	return j.domain.p;
}

/* Header values built from peer text: no CR/LF/controls may reach the wire. */
static void header_safe(char *dst, size_t cap, const char *src)
{
	size_t o = 0;
	for (; src && *src && o + 1 < cap; src++)
		dst[o++] = (unsigned char)*src < 0x20 || *src == 0x7f ? ' ' : *src;
	dst[o] = 0;
}

/* A Content-Language / xml:lang value: a language tag's characters only. */
static bool lang_ok(const char *l)
{
	size_t n = 0;
	for (; l && *l; l++, n++)
		if (!((*l >= 'a' && *l <= 'z') || (*l >= 'A' && *l <= 'Z') ||
		      (*l >= '0' && *l <= '9') || *l == '-'))
			return false;
	return n > 0 && n < 64;
}

/* ---- C8: thread <-> Call-ID ---- */

static void lru_unlink(struct xlate *x, struct binding *b)
{
	if (b->prev)
		b->prev->next = b->next;
	else
		x->lru_head = b->next;
	if (b->next)
		b->next->prev = b->prev;
	else
		x->lru_tail = b->prev;
	b->prev = b->next = NULL;
}

static void lru_append(struct xlate *x, struct binding *b)
{
	b->prev = x->lru_tail;
	b->next = NULL;
	if (x->lru_tail)
		x->lru_tail->next = b;
	else
		x->lru_head = b;
	x->lru_tail = b;
	b->expires = uv_now(x->loop) + x->conf->thread_ttl_ms;
}

/* C8 bindings outlive a restart: written behind, refreshed when a tenth of the TTL has
 * passed so a busy conversation is not a write per message. */
static void binding_store(struct xlate *x, struct binding *b)
{
	int64_t exp = (int64_t)time(NULL) + (int64_t)(x->conf->thread_ttl_ms / 1000);
	if (!x->store || exp - b->stored_expiry < (int64_t)(x->conf->thread_ttl_ms / 10000))
		return;
	b->stored_expiry = exp;
	store_thread_put(x->store, b->thread, b->callid, NULL, NULL, exp);
}

static void binding_free(struct xlate *x, struct binding *b)
{
	lru_unlink(x, b);
	sip_map_remove(&x->threads, &b->by_thread);
	sip_map_remove(&x->callids, &b->by_callid);
	free(b->thread);
	free(b->callid);
	free(b);
}

static struct binding *binding_new(struct xlate *x, const char *thread, const char *callid)
{
	struct binding *b = calloc(1, sizeof *b);
	if (!b)
		abort();
	b->thread = dup0(thread);
	b->callid = dup0(callid);
	sip_map_insert(&x->threads, &b->by_thread, b->thread, strlen(b->thread));
	sip_map_insert(&x->callids, &b->by_callid, b->callid, strlen(b->callid));
	lru_append(x, b);
	binding_store(x, b);
	return b;
}

static void touch(struct xlate *x, struct binding *b)
{
	lru_unlink(x, b);
	lru_append(x, b);
	binding_store(x, b);
}

/* A thread usable as a Call-ID as it is: RFC 3261 "word" characters, bounded. */
static bool callid_ok(const char *s)
{
	size_t n = 0;
	for (; *s; s++, n++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("-.!%*_+`'~()<>:\\\"/[]?{}@", *s)))
			return false;
	return n > 0 && n <= 128;
}

/* The Call-ID for an XMPP thread: the bound one, else the thread itself when it is a valid
 * Call-ID, else a fresh one; bound for the replies. NULL thread: NULL (fresh Call-ID). */
static const char *callid_for_thread(struct xlate *x, const char *thread)
{
	if (!thread || !*thread || strlen(thread) > 256)
		return NULL;
	struct sip_map_node *n = sip_map_find(&x->threads, thread, strlen(thread));
	if (n) {
		struct binding *b = sip_map_entry(n, struct binding, by_thread);
		touch(x, b);
		return b->callid;
	}
	char fresh[40];
	const char *cid = thread;
	if (!callid_ok(thread)) {
		sip_random_token(fresh, 33);
		cid = fresh;
	}
	return binding_new(x, thread, cid)->callid;
}

/* The XMPP thread for a SIP Call-ID: the bound one, else the Call-ID itself. */
static const char *thread_for_callid(struct xlate *x, const char *callid)
{
	if (!callid || !*callid || strlen(callid) > 256)
		return NULL;
	struct sip_map_node *n = sip_map_find(&x->callids, callid, strlen(callid));
	if (n) {
		struct binding *b = sip_map_entry(n, struct binding, by_callid);
		touch(x, b);
		return b->thread;
	}
	return binding_new(x, callid, callid)->thread;
}

static void on_sweep(uv_timer_t *t)
{
	struct xlate *x = t->data;
	uint64_t now = uv_now(x->loop);
	while (x->lru_head && x->lru_head->expires <= now) {
		if (x->store)
			store_thread_del(x->store, x->lru_head->thread);
		binding_free(x, x->lru_head);
	}
}

/* ---- toward XMPP ---- */

static uint64_t new_ref(struct xlate *x)
{
	return x->ref_base | (++x->ref_next & 0xffffffffu);
}

/* Sends an error stanza answering `kind` from->to (swapped) with cond/type/text. */
static void xmpp_error(struct xlate *x, int kind, const char *orig_from, const char *orig_to,
		       const char *id, enum errmap_cond cond, const char *text)
{
	Parley__Link__Frame f = PARLEY__LINK__FRAME__INIT;
	Parley__Link__Stanza st = PARLEY__LINK__STANZA__INIT;
	Parley__Link__StanzaError e = PARLEY__LINK__STANZA_ERROR__INIT;
	e.type = (char *)errmap_type_name(errmap_cond_type(cond));
	e.condition = (char *)errmap_cond_name(cond);
	e.text = (char *)(text && *text ? text : NULL);
	st.ref = new_ref(x);
	st.kind = kind;
	st.type = "error";
	st.from = (char *)orig_to;
	st.to = (char *)orig_from;
	st.id = (char *)id;
	st.error = &e;
	f.body_case = PARLEY__LINK__FRAME__BODY_STANZA;
	f.stanza = &st;
	size_t dn;
	const char *d = domain_of(orig_from, &dn);
	char dom[256];
	snprintf(dom, sizeof dom, "%.*s", (int)dn, d);
	int r = edgelink_send_to(x->edges, dom, &f);
	if (r)
		log_warn(0, "xlate_error_lost", "to=%s cond=%s err=\"%s\"", orig_from, e.condition,
			 pe_strerror(r));
}

static void iq_reply(struct xlate *x, const Parley__Link__Stanza *q, const char *payload)
{
	Parley__Link__Frame f = PARLEY__LINK__FRAME__INIT;
	Parley__Link__Stanza st = PARLEY__LINK__STANZA__INIT;
	ProtobufCBinaryData extra = {payload ? strlen(payload) : 0, (uint8_t *)payload};
	st.ref = new_ref(x);
	st.kind = PARLEY__LINK__STANZA_KIND__KIND_IQ;
	st.type = "result";
	st.from = q->to;
	st.to = q->from;
	st.id = q->id;
	if (payload) {
		st.n_extra = 1;
		st.extra = &extra;
	}
	f.body_case = PARLEY__LINK__FRAME__BODY_STANZA;
	f.stanza = &st;
	size_t dn;
	const char *d = domain_of(q->from, &dn);
	char dom[256];
	snprintf(dom, sizeof dom, "%.*s", (int)dn, d);
	if (edgelink_send_to(x->edges, dom, &f) == 0)
		x->stats.iq_answered++;
}

/* Whether a kept child element (serialised by the edge, which writes xmlns='...' on its
 * root) is in namespace ns; its local name goes to name (cap bytes) if not NULL. */
static bool extra_is(const ProtobufCBinaryData *b, const char *ns, char *name, size_t cap)
{
	const char *p = (const char *)b->data;
	size_t n = b->len;
	const char *end = memchr(p, '>', n);
	if (!end || n < 2 || p[0] != '<')
		return false;
	char want[160], want2[160];
	int w = snprintf(want, sizeof want, "xmlns='%s'", ns);
	int w2 = snprintf(want2, sizeof want2, "xmlns=\"%s\"", ns);
	if (!memmem(p, (size_t)(end - p), want, (size_t)w) &&
	    !memmem(p, (size_t)(end - p), want2, (size_t)w2))
		return false;
	if (name) {
		size_t k = 0;
		for (const char *c = p + 1; c < end && k + 1 < cap && !strchr(" />\t\r\n", *c); c++)
			name[k++] = *c;
		name[k] = 0;
	}
	return true;
}

static bool child_ns_is(const Parley__Link__Stanza *st, const char *ns)
{
	return st->n_extra > 0 && extra_is(&st->extra[0], ns, NULL, 0);
}

/* The XEP-0085 chat state a message carries, or CHATSTATE_NONE. */
static enum chatstate chat_state_of(const Parley__Link__Stanza *st)
{
	char name[32];
	for (size_t i = 0; i < st->n_extra; i++)
		if (extra_is(&st->extra[i], CHATSTATE_NS_CHATSTATES, name, sizeof name))
			return chatstate_from_name(name, strlen(name));
	return CHATSTATE_NONE;
}

/* Item 5: iq to a served domain or user: disco, ping, service-unavailable for the rest.
 * Results and errors need no answer (RFC 6120 §8.2.3). */
static void handle_iq(struct xlate *x, const Parley__Link__Stanza *st)
{
	if (!st->type || (strcmp(st->type, "get") != 0 && strcmp(st->type, "set") != 0))
		return;
	bool get = strcmp(st->type, "get") == 0;
	if (get && child_ns_is(st, NS_DISCO_INFO)) {
		iq_reply(x, st,
			 "<query xmlns='" NS_DISCO_INFO "'>"
			 "<identity category='gateway' type='sip' name='Parley'/>"
			 "<feature var='" NS_DISCO_INFO "'/><feature var='" NS_DISCO_ITEMS "'/>"
			 "<feature var='" NS_PING "'/>"
			 "<feature var='http://jabber.org/protocol/chatstates'/></query>");
	} else if (get && child_ns_is(st, NS_DISCO_ITEMS)) {
		iq_reply(x, st, "<query xmlns='" NS_DISCO_ITEMS "'/>");
	} else if (get && child_ns_is(st, NS_PING)) {
		iq_reply(x, st, NULL);
	} else {
		xmpp_error(x, PARLEY__LINK__STANZA_KIND__KIND_IQ, st->from, st->to, st->id,
			   ERRMAP_COND_SERVICE_UNAVAILABLE, NULL);
		x->stats.iq_answered++;
	}
}

/* ---- F2: chat-state conversations ---- */

static void on_cs_tick(uv_timer_t *t);

static struct conv *conv_get(struct xlate *x, const char *xmpp_jid, const char *sip_jid,
			     bool create)
{
	char a[JID_BUF], b[JID_BUF], key[2 * JID_BUF];
	if (jid_normalize_bare(xmpp_jid, a, sizeof a) || jid_normalize_bare(sip_jid, b, sizeof b))
		return NULL;
	int kn = snprintf(key, sizeof key, "%s\n%s", a, b);
	struct sip_map_node *n = sip_map_find(&x->convs, key, (size_t)kn);
	if (n) {
		struct conv *c = sip_map_entry(n, struct conv, node);
		if (create && strcmp(c->xmpp_jid, xmpp_jid) != 0) {
			free(c->xmpp_jid);
			c->xmpp_jid = dup0(xmpp_jid);
		}
		return c;
	}
	if (!create || x->convs.n >= CONV_MAX)
		return NULL;
	struct conv *c = calloc(1, sizeof *c);
	if (!c)
		abort();
	c->key = dup0(key);
	c->xmpp_jid = dup0(xmpp_jid);
	c->sip_jid = dup0(sip_jid);
	chatstate_tx_init(&c->tx, 0);
	sip_map_insert(&x->convs, &c->node, c->key, (size_t)kn);
	c->next = x->conv_head;
	if (c->next)
		c->next->prev = c;
	x->conv_head = c;
	if (!uv_is_active((uv_handle_t *)&x->cs_timer))
		uv_timer_start(&x->cs_timer, on_cs_tick, 1000, 1000);
	return c;
}

static void conv_free(struct xlate *x, struct conv *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		x->conv_head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	sip_map_remove(&x->convs, &c->node);
	free(c->key);
	free(c->xmpp_jid);
	free(c->sip_jid);
	free(c);
}

/* ---- XMPP -> SIP ---- */

static void pend_in_free(struct pend_in *p)
{
	if (p->prev)
		p->prev->next = p->next;
	else if (p->x->pend_ins == p)
		p->x->pend_ins = p->next;
	if (p->next)
		p->next->prev = p->prev;
	free(p->from);
	free(p->to);
	free(p->id);
	free(p->body);
	free(p);
}

static void on_message_response(void *arg, struct sip_msg *resp)
{
	struct pend_in *p = arg;
	struct xlate *x = p->x;
	int status = sip_msg_status(resp);
	if (status >= 300) {
		struct errmap_stanza e = errmap_from_sip(status);
		char text[ERRMAP_TEXT_MAX + 1];
		const char *reason = sip_msg_reason(resp);
		errmap_text_from_reason(reason, reason ? strlen(reason) : 0, text, sizeof text);
		x->stats.sip_failures++;
		/* Item 8: the body only when [federation] log_message_bodies is on */
		char esc[512];
		if (p->body)
			log_escape(esc, sizeof esc, p->body, strlen(p->body));
		log_info(0, "xlate_sip_failure", "from=%s to=%s status=%d cond=%s%s%s%s", p->from,
			 p->to, status, errmap_cond_name(e.cond), p->body ? " body=\"" : "",
			 p->body ? esc : "", p->body ? "\"" : "");
		xmpp_error(x, p->kind, p->from, p->to, p->id, e.cond, text);
	}
	link_peer_processed_in(p->peer, p->epoch, p->seq);
	pend_in_free(p);
}

static void on_notice_response(void *arg, struct sip_msg *resp)
{
	(void)arg;
	if (sip_msg_status(resp) >= 300)
		log_info(0, "xlate_notice_failed", "status=%d", sip_msg_status(resp));
}

/* A MESSAGE from XMPP address `from` to `to` (Call-ID from thread), or NULL with *fail
 * set to the stanza error to answer. */
static struct sip_msg *page_request(struct xlate *x, const char *from_jid, const char *to_jid,
				    const char *thread, enum errmap_cond *fail)
{
	char ruri[ADDR_URI_BUF], from[ADDR_URI_BUF], to[ADDR_URI_BUF];
	*fail = ERRMAP_COND_NONE;
	if (addr_jid_to_sip(to_jid, strlen(to_jid), 0, ruri, sizeof ruri) < 0 ||
	    addr_jid_to_sip(to_jid, strlen(to_jid), ADDR_NO_GR | ADDR_NAME_ADDR, to, sizeof to) < 0)
		*fail = ERRMAP_COND_JID_MALFORMED;
	else if (addr_sip_from(from_jid, strlen(from_jid), from, sizeof from) < 0)
		*fail = ERRMAP_COND_JID_MALFORMED;
	else if (!strchr(to_jid, '@'))
		*fail = ERRMAP_COND_SERVICE_UNAVAILABLE; /* a message to the domain itself */
	if (*fail != ERRMAP_COND_NONE)
		return NULL;
	struct sip_msg *req =
	    sip_stack_new_request(x->sip, "MESSAGE", ruri, from, to, callid_for_thread(x, thread));
	if (!req)
		*fail = ERRMAP_COND_JID_MALFORMED;
	return req;
}

/* Sends an isComposing document the trackers produced on their own (a refresh, or idle
 * after the XMPP side fell silent): no stanza waits for its answer. */
static void send_composing(struct xlate *x, struct conv *c, const struct chatstate_doc *d)
{
	char doc[CHATSTATE_DOC_MAX];
	enum errmap_cond fail;
	if (chatstate_write(d, doc, sizeof doc) <= 0)
		return;
	struct sip_msg *req = page_request(x, c->xmpp_jid, c->sip_jid, NULL, &fail);
	if (!req)
		return;
	sip_msg_set_body(req, CHATSTATE_CONTENT_TYPE, doc, strlen(doc));
	sip_stack_send(x->sip, req, NULL, on_notice_response, NULL, NULL);
}

/* A standalone XEP-0085 notification to the XMPP user, from the SIP user. */
static void send_chat_state(struct xlate *x, const char *from, const char *to, enum chatstate cs)
{
	char xml[96];
	snprintf(xml, sizeof xml, "<%s xmlns='" CHATSTATE_NS_CHATSTATES "'/>", chatstate_name(cs));
	ProtobufCBinaryData extra = {strlen(xml), (uint8_t *)xml};
	Parley__Link__Frame f = PARLEY__LINK__FRAME__INIT;
	Parley__Link__Stanza s = PARLEY__LINK__STANZA__INIT;
	s.ref = new_ref(x);
	s.kind = PARLEY__LINK__STANZA_KIND__KIND_MESSAGE;
	s.type = "chat";
	s.from = (char *)from;
	s.to = (char *)to;
	s.n_extra = 1;
	s.extra = &extra;
	f.body_case = PARLEY__LINK__FRAME__BODY_STANZA;
	f.stanza = &s;
	size_t dn;
	const char *d = domain_of(to, &dn);
	char dom[256];
	snprintf(dom, sizeof dom, "%.*s", (int)dn, d);
	edgelink_send_to(x->edges, dom, &f);
}

static void on_cs_tick(uv_timer_t *t)
{
	struct xlate *x = t->data;
	uint64_t now = uv_now(x->loop);
	for (struct conv *c = x->conv_head, *next; c; c = next) {
		next = c->next;
		struct chatstate_doc d;
		if (chatstate_tx_tick(&c->tx, now, &d))
			send_composing(x, c, &d);
		if (chatstate_rx_tick(&c->rx, now) == CHATSTATE_ACTIVE)
			send_chat_state(x, c->sip_jid, c->xmpp_jid, CHATSTATE_ACTIVE);
		if (!chatstate_tx_deadline(&c->tx) && !chatstate_rx_deadline(&c->rx))
			conv_free(x, c);
	}
	if (!x->conv_head)
		uv_timer_stop(&x->cs_timer);
}

/* F1/F2: a standalone XEP-0085 notification becomes an isComposing MESSAGE (RFC 7573 §6)
 * only when the state changes: composing -> active (refreshed while it lasts),
 * active/inactive/paused -> idle, gone -> nothing in page mode. */
static bool chat_state_body(struct xlate *x, const Parley__Link__Stanza *st, char *doc, size_t cap)
{
	enum chatstate cs = chat_state_of(st);
	struct chatstate_doc d;
	memset(&d, 0, sizeof d);
	if (cs == CHATSTATE_NONE)
		return false;
	struct conv *c = conv_get(x, st->from, st->to, true);
	if (c) {
		if (!chatstate_tx_state(&c->tx, cs, uv_now(x->loop), &d))
			return false;
	} else {
		/* untracked (bad JIDs or too many conversations): stateless F1 */
		if (!chatstate_to_ic(cs, &d.state))
			return false;
		if (d.state == CHATSTATE_IC_ACTIVE) {
			d.refresh = chatstate_refresh_interval(0);
			snprintf(d.contenttype, sizeof d.contenttype, "text/plain");
		}
	}
	return chatstate_write(&d, doc, cap) > 0;
}

static void message_to_sip(struct xlate *x, struct link_peer *peer, uint64_t seq,
			   const Parley__Link__Stanza *st)
{
	char doc[CHATSTATE_DOC_MAX];
	bool composing = !st->body;
	if (composing && !chat_state_body(x, st, doc, sizeof doc)) {
		link_peer_processed(peer, seq); /* a receipt, gone, a repeat: nothing to send */
		return;
	}
	if (!composing && x->convs.n) {
		struct conv *c = conv_get(x, st->from, st->to, false);
		if (c)
			chatstate_tx_message(&c->tx); /* content ends composing */
	}
	enum errmap_cond fail;
	struct sip_msg *req = page_request(x, st->from, st->to, st->thread, &fail);
	if (req && composing) {
		sip_msg_set_body(req, CHATSTATE_CONTENT_TYPE, doc, strlen(doc));
	} else if (req) {
		sip_msg_set_body(req, "text/plain;charset=UTF-8", st->body, strlen(st->body));
		if (st->subject && *st->subject) {
			char subj[512];
			header_safe(subj, sizeof subj, st->subject);
			sip_msg_add_header(req, "Subject", subj);
		}
		if (lang_ok(st->lang))
			sip_msg_add_header(req, "Content-Language", st->lang);
		/* C5: RFC 3428 §8 bounds the whole request. Serialising it to measure costs as
		 * much as sending it, so only messages that could be near the limit are measured:
		 * the headers we write stay well under the fixed allowance below. */
		size_t est = strlen(st->body) + (st->subject ? strlen(st->subject) : 0) +
			     3 * strlen(st->to) + 2 * strlen(st->from) +
			     2 * (st->thread ? strlen(st->thread) : 0) + 700;
		buf_consume(&x->scratch, buf_len(&x->scratch));
		if (est > x->conf->max_message && (sip_msg_serialise(req, &x->scratch) != 0 ||
						   buf_len(&x->scratch) > x->conf->max_message)) {
			sip_msg_free(req);
			req = NULL;
			fail = ERRMAP_COND_POLICY_VIOLATION;
		}
	}
	if (!req) {
		xmpp_error(x, st->kind, st->from, st->to, st->id, fail,
			   fail == ERRMAP_COND_POLICY_VIOLATION ? "message too large for SIP"
								: NULL);
		link_peer_processed(peer, seq);
		return;
	}
	struct pend_in *p = calloc(1, sizeof *p);
	if (!p)
		abort();
	p->x = x;
	p->peer = peer;
	p->epoch = peer->in.peer_epoch;
	p->seq = seq;
	p->kind = st->kind;
	p->from = dup0(st->from);
	p->to = dup0(st->to);
	p->id = dup0(st->id);
	if (x->pol && x->pol->log_message_bodies && st->body)
		p->body = dup0(st->body);
	p->next = x->pend_ins;
	if (p->next)
		p->next->prev = p;
	x->pend_ins = p;
	x->stats.xmpp_to_sip++;
	if (sip_stack_send(x->sip, req, NULL, on_message_response, p, NULL) != 0) {
		xmpp_error(x, st->kind, st->from, st->to, st->id, ERRMAP_COND_INTERNAL_SERVER_ERROR,
			   NULL);
		link_peer_processed(peer, seq);
		pend_in_free(p);
	}
}

/* ---- policy: per-user access (J4) and PublicUnverified partners (J2) ---- */

/* Whether the organisation user jid may federate ([access], [user "JID"]). */
static bool user_allowed(const struct xlate *x, const char *jid)
{
	return !x->access || gw_policy_user_allowed(x->access, jid);
}

/* Whether jid's domain belongs to a PublicUnverified partner. */
static bool public_unverified(const struct xlate *x, const char *jid)
{
	size_t n;
	const char *d = domain_of(jid, &n);
	for (size_t i = 0; x->pol && i < x->pol->n_partners; i++) {
		const Parley__Link__Partner *p = x->pol->partners[i];
		bool match = domain_eq(p->domain, d, n);
		for (size_t k = 0; !match && k < p->n_additional_domains; k++)
			match = domain_eq(p->additional_domains[k], d, n);
		if (match)
			return p->has_type &&
			       p->type == PARLEY__LINK__PARTNER_TYPE__PARTNER_PUBLIC_UNVERIFIED;
	}
	return false;
}

/* A stanza from a partner user to an organisation user is refused when that user has no
 * XMPP access (J4), or when the sender's partner is PublicUnverified and the user has not
 * added the sender, i.e. holds no active subscription to them (J2, DESIGN.md). Returns
 * the reason for the log, or NULL to let it pass. */
static const char *inbound_refusal(const struct xlate *x, const Parley__Link__Stanza *st)
{
	if (!strchr(st->to, '@'))
		return NULL; /* the domain itself: iq disco and ping */
	if (!user_allowed(x, st->to))
		return "no_xmpp_access";
	if (public_unverified(x, st->from) &&
	    (!x->pres || !presence_user_added(x->pres, st->to, st->from)))
		return "public_unverified_not_added";
	return NULL;
}

/* RFC 6121 §3.2: a refused subscription is answered with unsubscribed, from the bare JID. */
static void send_unsubscribed(struct xlate *x, const Parley__Link__Stanza *st)
{
	char from[JID_BUF];
	if (jid_normalize_bare(st->to, from, sizeof from) != 0)
		return;
	Parley__Link__Frame f = PARLEY__LINK__FRAME__INIT;
	Parley__Link__Stanza s = PARLEY__LINK__STANZA__INIT;
	s.ref = new_ref(x);
	s.kind = PARLEY__LINK__STANZA_KIND__KIND_PRESENCE;
	s.type = "unsubscribed";
	s.from = from;
	s.to = st->from;
	f.body_case = PARLEY__LINK__FRAME__BODY_STANZA;
	f.stanza = &s;
	size_t dn;
	const char *d = domain_of(st->from, &dn);
	char dom[256];
	snprintf(dom, sizeof dom, "%.*s", (int)dn, d);
	edgelink_send_to(x->edges, dom, &f);
}

static void stanza_from_edge(struct xlate *x, struct link_peer *peer, uint64_t seq,
			     const Parley__Link__Stanza *st)
{
	bool is_error = st->type && strcmp(st->type, "error") == 0;
	const char *why;
	if (!st->from || !st->to) {
		link_peer_processed(peer, seq);
		return;
	}
	switch (st->kind) {
	case PARLEY__LINK__STANZA_KIND__KIND_MESSAGE:
		if (is_error) {
			/* an error about something we sent: the SIP side already had its answer
			 * (C4); counted and logged (DESIGN.md invariant 2) */
			x->stats.dropped_errors++;
			log_info(0, "xlate_error_in", "from=%s to=%s cond=%s", st->from, st->to,
				 st->error && st->error->condition ? st->error->condition : "-");
			link_peer_processed(peer, seq);
			return;
		}
		if ((why = inbound_refusal(x, st)) != NULL) {
			/* J2/J4: forbidden back to the partner user, nothing toward SIP */
			log_info(0, "xlate_refused", "kind=message from=%s to=%s why=%s", st->from,
				 st->to, why);
			xmpp_error(x, st->kind, st->from, st->to, st->id, ERRMAP_COND_FORBIDDEN,
				   NULL);
			link_peer_processed(peer, seq);
			return;
		}
		message_to_sip(x, peer, seq, st);
		return;
	case PARLEY__LINK__STANZA_KIND__KIND_IQ:
		if (!is_error && strchr(st->to, '@') && !user_allowed(x, st->to) && st->type &&
		    (strcmp(st->type, "get") == 0 || strcmp(st->type, "set") == 0)) {
			/* J4: a user without access answers nothing of their own */
			xmpp_error(x, st->kind, st->from, st->to, st->id, ERRMAP_COND_FORBIDDEN,
				   NULL);
			link_peer_processed(peer, seq);
			return;
		}
		handle_iq(x, st);
		link_peer_processed(peer, seq);
		return;
	case PARLEY__LINK__STANZA_KIND__KIND_PRESENCE: {
		size_t tn;
		const char *td = domain_of(st->to, &tn);
		if (is_error || !serves(x, td, tn) || !x->pres) {
			link_peer_processed(peer, seq);
			return;
		}
		bool subscribe = st->type && strcmp(st->type, "subscribe") == 0;
		if ((why = inbound_refusal(x, st)) != NULL &&
		    (subscribe || !user_allowed(x, st->to))) {
			/* J4: no presence reaches a user without access, a subscription request is
			 * refused with unsubscribed (RFC 6121 §3.2); J2: a PublicUnverified partner
			 * user may not ask someone who has not added them (forbidden). Other
			 * presence from such a partner reaches only watchers, who added it. */
			log_info(0, "xlate_refused", "kind=presence type=%s from=%s to=%s why=%s",
				 st->type ? st->type : "available", st->from, st->to, why);
			if (subscribe && !user_allowed(x, st->to))
				send_unsubscribed(x, st);
			else if (subscribe)
				xmpp_error(x, st->kind, st->from, st->to, st->id,
					   ERRMAP_COND_FORBIDDEN, NULL);
			link_peer_processed(peer, seq);
			return;
		}
		presence_from_xmpp(x->pres, peer, seq, st);
		return;
	}
	default:
		link_peer_processed(peer, seq);
		return;
	}
}

/* ---- SIP -> XMPP ---- */

static void pend_out_closed(uv_handle_t *h)
{
	struct pend_out *p = h->data;
	free(p->user_uri);
	free(p->partner_uri);
	free(p);
}

static void pend_out_done(struct pend_out *p)
{
	sip_map_remove(&p->x->pending, &p->node);
	uv_close((uv_handle_t *)&p->timer, pend_out_closed);
}

static void reply(struct sip_stxn *st, int status, const char *reason)
{
	sip_stxn_reply(st, status, reason ? reason : errmap_reason(status));
}

/* C4: after the deadline a Bounce reaches the SIP user as a new MESSAGE. */
static void late_notice(struct xlate *x, struct pend_out *p, const char *cond)
{
	char body[600];
	snprintf(body, sizeof body, "Your message to %s could not be delivered (%s).",
		 p->partner_uri, cond);
	struct sip_msg *m = sip_stack_new_request(x->sip, "MESSAGE", p->user_uri, p->partner_uri,
						  p->user_uri, NULL);
	if (!m)
		return;
	sip_msg_set_body(m, "text/plain;charset=UTF-8", body, strlen(body));
	sip_stack_send(x->sip, m, NULL, on_notice_response, NULL, NULL);
	x->stats.late_bounces++;
	log_info(0, "xlate_late_bounce", "user=%s partner=%s cond=%s", p->user_uri, p->partner_uri,
		 cond);
}

static void on_deadline(uv_timer_t *t)
{
	struct pend_out *p = t->data;
	if (p->st) {
		/* neither Delivered nor Bounce in time: accepted, a later Bounce is reported */
		reply(p->st, 202, "Accepted");
		p->st = NULL;
		uv_timer_start(&p->timer, on_deadline, LATE_KEEP_MS, 0);
		return;
	}
	pend_out_done(p);
}

static struct pend_out *pend_out_find(struct xlate *x, uint64_t ref)
{
	struct sip_map_node *n = sip_map_find(&x->pending, &ref, sizeof ref);
	return n ? sip_map_entry(n, struct pend_out, node) : NULL;
}

static void delivered(struct xlate *x, uint64_t ref)
{
	struct pend_out *p = pend_out_find(x, ref);
	if (!p)
		return;
	if (p->st)
		reply(p->st, 202, "Accepted");
	p->st = NULL;
	pend_out_done(p);
}

static void bounced(struct xlate *x, const Parley__Link__Bounce *b)
{
	struct pend_out *p = pend_out_find(x, b->ref);
	if (!p)
		return;
	const char *cname =
	    b->error && b->error->condition ? b->error->condition : "undefined-condition";
	x->stats.bounces++;
	if (p->st) {
		struct errmap_xmpp e = {
		    .cond = errmap_cond_from_name(cname, strlen(cname)),
		    .bare = true, /* page-mode messages go to bare JIDs */
		};
		int status = errmap_to_sip(&e);
		char reason[ERRMAP_TEXT_MAX + 1];
		const char *text = b->error ? b->error->text : NULL;
		errmap_reason_from_text(text, text ? strlen(text) : 0, status, reason,
					sizeof reason);
		reply(p->st, status, reason);
		p->st = NULL;
	} else {
		late_notice(x, p, cname);
	}
	pend_out_done(p);
}

static void message_from_sip(struct xlate *x, struct sip_stxn *st, struct sip_msg *req)
{
	const char *ruri = sip_msg_ruri(req);
	char to[JID_BUF], from[JID_BUF];
	int r = addr_sip_to_jid(ruri, strlen(ruri), to, sizeof to, NULL);
	if (r < 0) {
		reply(st, addr_status(r), NULL); /* A1: sips -> 416 */
		return;
	}
	const char *fu = sip_msg_from_uri(req);
	r = fu ? addr_sip_to_jid(fu, strlen(fu), from, sizeof from, NULL) : PE_PROTO;
	if (r < 0) {
		reply(st, 400, "Bad From URI");
		return;
	}
	size_t tn, fn;
	const char *td = domain_of(to, &tn), *fd = domain_of(from, &fn);
	if (!serves(x, fd, fn)) {
		reply(st, 403, "Sender not in a served domain"); /* A4: never an open relay */
		return;
	}
	if (!is_partner(x, td, tn)) {
		reply(st, 403, "Not a federation partner"); /* J1 */
		return;
	}
	if (!user_allowed(x, from)) {
		log_info(0, "xlate_refused", "kind=MESSAGE from=%s to=%s why=no_xmpp_access", from,
			 to);
		reply(st, 403, "No XMPP federation for this user"); /* J4 */
		return;
	}
	const uint8_t *body;
	size_t blen;
	sip_msg_body(req, &body, &blen);
	char cs_xml[96];
	ProtobufCBinaryData cs_extra = {0, NULL};
	bool with_active = false;
	if (sip_msg_content_type_is(req, CHATSTATE_CONTENT_TYPE)) {
		/* F1/F2: isComposing -> a standalone XEP-0085 notification when the state
		 * changes; a refresh only moves the idle timeout */
		struct chatstate_doc d;
		if (chatstate_parse((const char *)body, blen, CHATSTATE_DOC_MAX, &d) != 0) {
			reply(st, 400, "Bad isComposing document");
			return;
		}
		enum chatstate cs = chatstate_from_ic(d.state);
		struct conv *c = conv_get(x, to, from, true);
		if (c) {
			cs = chatstate_rx_doc(&c->rx, &d, uv_now(x->loop));
			if (cs == CHATSTATE_NONE) {
				reply(st, 202, "Accepted");
				return;
			}
		}
		snprintf(cs_xml, sizeof cs_xml, "<%s xmlns='" CHATSTATE_NS_CHATSTATES "'/>",
			 chatstate_name(cs));
		cs_extra.data = (uint8_t *)cs_xml;
		cs_extra.len = strlen(cs_xml);
		blen = 0;
	} else if (!sip_msg_content_type_is(req, "text/plain")) {
		/* C6: text/plain maps to a body; other types are refused */
		struct sip_msg *resp = sip_stack_response(x->sip, st, 415, NULL);
		if (resp) {
			sip_msg_add_header(resp, "Accept", "text/plain");
			sip_stxn_respond(st, resp);
		}
		return;
	}
	if (!cs_extra.len && x->convs.n) {
		/* content ends composing (RFC 3994 §3): the message says <active/> itself */
		struct conv *c = conv_get(x, to, from, false);
		if (c && c->rx.active) {
			chatstate_rx_message(&c->rx);
			snprintf(cs_xml, sizeof cs_xml,
				 "<active xmlns='" CHATSTATE_NS_CHATSTATES "'/>");
			with_active = true;
		}
	}
	char *text = malloc(blen + 1);
	if (!text)
		abort();
	memcpy(text, body, blen);
	text[blen] = 0;
	if (memchr(text, 0, blen)) {
		free(text);
		reply(st, 400, "NUL in body");
		return;
	}
	Parley__Link__Frame f = PARLEY__LINK__FRAME__INIT;
	Parley__Link__Stanza s = PARLEY__LINK__STANZA__INIT;
	s.ref = new_ref(x);
	s.kind = PARLEY__LINK__STANZA_KIND__KIND_MESSAGE;
	s.type = x->conf->message_type == 1 ? "normal" : x->conf->message_type == 2 ? "chat" : NULL;
	s.from = from;
	s.to = to;
	s.body = cs_extra.len ? NULL : text;
	if (cs_extra.len) {
		s.type = "chat"; /* XEP-0085 notifications belong to chat conversations */
		s.n_extra = 1;
		s.extra = &cs_extra;
	} else if (with_active) {
		cs_extra.data = (uint8_t *)cs_xml;
		cs_extra.len = strlen(cs_xml);
		s.n_extra = 1;
		s.extra = &cs_extra;
	}
	char subj[512], lang[64];
	const char *sh = sip_msg_subject(req);
	if (sh) {
		header_safe(subj, sizeof subj, sh);
		s.subject = subj;
	}
	const char *cl = sip_msg_content_language(req);
	if (cl && lang_ok(cl)) {
		snprintf(lang, sizeof lang, "%s", cl);
		s.lang = lang;
	}
	s.thread = (char *)thread_for_callid(x, sip_msg_call_id(req));
	f.body_case = PARLEY__LINK__FRAME__BODY_STANZA;
	f.stanza = &s;
	char dom[256];
	snprintf(dom, sizeof dom, "%.*s", (int)tn, td);
	r = edgelink_send_to(x->edges, dom, &f);
	free(text);
	if (r == PE_CLOSED || r == PE_FULL) {
		/* I4: overload, not the XMPP service-unavailable mapping */
		struct sip_msg *resp = sip_stack_response(x->sip, st, 503, "Service Unavailable");
		if (resp) {
			char ra[24];
			snprintf(ra, sizeof ra, "%llu", (unsigned long long)x->conf->retry_after_s);
			sip_msg_add_header(resp, "Retry-After", ra);
			sip_stxn_respond(st, resp);
		}
		x->stats.overload_503++;
		return;
	}
	if (r) {
		reply(st, 500, "Cannot forward");
		return;
	}
	x->stats.sip_to_xmpp++;
	struct pend_out *p = calloc(1, sizeof *p);
	if (!p)
		abort();
	p->x = x;
	p->ref = s.ref;
	p->st = st;
	p->user_uri = dup0(fu);
	p->partner_uri = dup0(ruri);
	sip_map_insert(&x->pending, &p->node, &p->ref, sizeof p->ref);
	uv_timer_init(x->loop, &p->timer);
	p->timer.data = p;
	uv_timer_start(&p->timer, on_deadline, x->conf->deadline_ms, 0);
}

/* A new SUBSCRIBE obeys the MESSAGE rules: sips refused (A1), a served sender (A4), a
 * partner target (J1). Answers and returns false if not. */
static bool subscribe_allowed(struct xlate *x, struct sip_stxn *st, struct sip_msg *req)
{
	const char *ruri = sip_msg_ruri(req), *fu = sip_msg_from_uri(req);
	char to[JID_BUF], from[JID_BUF];
	int r = addr_sip_to_jid(ruri, strlen(ruri), to, sizeof to, NULL);
	if (r < 0) {
		reply(st, addr_status(r), NULL);
		return false;
	}
	if (!fu || addr_sip_to_jid(fu, strlen(fu), from, sizeof from, NULL) < 0) {
		reply(st, 400, "Bad From URI");
		return false;
	}
	size_t tn, fn;
	const char *td = domain_of(to, &tn), *fd = domain_of(from, &fn);
	if (!serves(x, fd, fn)) {
		reply(st, 403, "Sender not in a served domain");
		return false;
	}
	if (!is_partner(x, td, tn)) {
		reply(st, 403, "Not a federation partner");
		return false;
	}
	if (!user_allowed(x, from)) {
		log_info(0, "xlate_refused", "kind=SUBSCRIBE from=%s to=%s why=no_xmpp_access",
			 from, to);
		reply(st, 403, "No XMPP federation for this user"); /* J4 */
		return false;
	}
	return true;
}

void xlate_sip_request(struct xlate *x, struct sip_stxn *st, struct sip_msg *req)
{
	const char *m = sip_msg_method(req);
	if (strcmp(m, "MESSAGE") == 0) {
		message_from_sip(x, st, req);
		return;
	}
	if (strcmp(m, "SUBSCRIBE") == 0 && !sip_msg_to_tag(req) && !subscribe_allowed(x, st, req))
		return;
	if (!x->pres || !presence_sip_request(x->pres, st, req))
		reply(st, 501, "Not Implemented");
}

/* ---- from the edges ---- */

void xlate_link_frame(struct xlate *x, struct link_peer *peer, uint64_t seq,
		      const Parley__Link__Frame *f)
{
	switch (f->body_case) {
	case PARLEY__LINK__FRAME__BODY_STANZA:
		stanza_from_edge(x, peer, seq, f->stanza);
		return;
	case PARLEY__LINK__FRAME__BODY_DELIVERED:
		for (size_t i = 0; i < f->delivered->n_refs; i++)
			delivered(x, f->delivered->refs[i]);
		break;
	case PARLEY__LINK__FRAME__BODY_BOUNCE:
		bounced(x, f->bounce);
		break;
	default:
		break;
	}
	link_peer_processed(peer, seq);
}

/* ---- lifecycle ---- */

static void load_thread(void *arg, const char *thread, const char *call_id, const char *jid,
			const char *sip_uri, int64_t expires_at)
{
	struct xlate *x = arg;
	(void)jid;
	(void)sip_uri;
	if (sip_map_find(&x->threads, thread, strlen(thread)) ||
	    sip_map_find(&x->callids, call_id, strlen(call_id)))
		return;
	struct binding *b = binding_new(x, thread, call_id);
	int64_t left = expires_at - (int64_t)time(NULL);
	b->expires = uv_now(x->loop) + (uint64_t)(left > 0 ? left : 0) * 1000;
	b->stored_expiry = expires_at;
}

int xlate_new(uv_loop_t *loop, const struct xlate_conf *conf, struct sip_stack *sip,
	      struct edgelink *edges, struct xlate **out, char *err, size_t errlen)
{
	struct store_conf sc = {.path = conf->state_path};
	struct store *store;
	int r = store_open(loop, &sc, &store, err, errlen);
	if (r)
		return PE_CONFIG;
	struct xlate *x = calloc(1, sizeof *x);
	if (!x)
		abort();
	x->loop = loop;
	x->conf = conf;
	x->sip = sip;
	x->edges = edges;
	sip_map_init(&x->threads);
	sip_map_init(&x->callids);
	sip_map_init(&x->pending);
	sip_map_init(&x->convs);
	uv_timer_init(loop, &x->cs_timer);
	x->cs_timer.data = x;
	uv_unref((uv_handle_t *)&x->cs_timer);
	buf_init(&x->scratch, 1024 * 1024 + 65536);
	uint32_t rnd;
	if (getrandom(&rnd, sizeof rnd, 0) != sizeof rnd)
		rnd = (uint32_t)uv_hrtime();
	x->ref_base = (uint64_t)rnd << 32;
	uv_timer_init(loop, &x->sweep);
	x->sweep.data = x;
	uv_timer_start(&x->sweep, on_sweep, 60000, 60000);
	uv_unref((uv_handle_t *)&x->sweep);
	if (store_thread_load(store, (int64_t)time(NULL), load_thread, x) != 0)
		log_error(0, "xlate_load_failed", "path=%s what=threads", conf->state_path);
	x->store = store; /* after loading: what was just read need not be written again */
	x->pres = presence_new(loop, &conf->presence, sip, edges, store);
	x->stats.presence = presence_stats(x->pres);
	*out = x;
	return 0;
}

static void on_sweep_closed(uv_handle_t *h)
{
	free(h->data);
}

/* The sweep timer's close callback frees x; closes run in order, so this one goes first. */
static void on_cs_timer_closed(uv_handle_t *h)
{
	(void)h;
}

static void free_pending(struct sip_map_node *n, void *arg)
{
	struct xlate *x = arg;
	struct pend_out *p = sip_map_entry(n, struct pend_out, node);
	if (p->st)
		reply(p->st, 503, "Shutting down");
	p->st = NULL;
	sip_map_remove(&x->pending, n);
	uv_close((uv_handle_t *)&p->timer, pend_out_closed);
}

void xlate_free(struct xlate *x)
{
	if (!x)
		return;
	presence_free(x->pres);
	/* their SIP requests are dropped by sip_stack_free without callbacks; the edge sends
	 * the stanzas again to the next gateway process */
	while (x->pend_ins)
		pend_in_free(x->pend_ins);
	sip_map_foreach(&x->pending, free_pending, x);
	while (x->lru_head)
		binding_free(x, x->lru_head);
	while (x->conv_head)
		conv_free(x, x->conv_head);
	sip_map_deinit(&x->convs);
	uv_close((uv_handle_t *)&x->cs_timer, on_cs_timer_closed);
	sip_map_deinit(&x->threads);
	sip_map_deinit(&x->callids);
	sip_map_deinit(&x->pending);
	buf_deinit(&x->scratch);
	store_close(x->store);
	uv_close((uv_handle_t *)&x->sweep, on_sweep_closed); /* frees x */
}

void xlate_set_access(struct xlate *x, const struct gw_policy_conf *pc)
{
	x->access = pc;
}

struct store *xlate_store(const struct xlate *x)
{
	return x->store;
}

struct presence *xlate_presence(const struct xlate *x)
{
	return x->pres;
}

/* Whether a subscription between these two may go on under the policy in force. */
static bool still_allowed(void *arg, const char *org_jid, const char *partner_jid)
{
	const struct xlate *x = arg;
	size_t n;
	const char *d = domain_of(partner_jid, &n);
	return user_allowed(x, org_jid) && is_partner(x, d, n);
}

void xlate_set_policy(struct xlate *x, const Parley__Link__PolicySnapshot *snap)
{
	x->pol = snap;
	presence_set_policy(x->pres, snap);
	/* J4 and J1 for what already runs: a user denied or a partner removed ends them */
	presence_revoke(x->pres, still_allowed, x);
}

const struct xlate_stats *xlate_stats(const struct xlate *x)
{
	return &x->stats;
}
