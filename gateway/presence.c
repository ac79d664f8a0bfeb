/* Presence both ways. Two kinds of subscription, both kept in memory and written behind to
 * the store:
 *  - UAC (XMPP -> SIP): a partner user subscribed to an organisation user. We own a
 *    SUBSCRIBE dialog toward the pool, refresh it, and turn its NOTIFYs into presence.
 *  - UAS (SIP -> XMPP): an organisation user's SUBSCRIBE to a partner user. We are the
 *    notifier: each change of the partner user's presence becomes a NOTIFY in that dialog.
 * A presence stanza from an edge is acknowledged only after the store has committed what
 * it changed, so a gateway that dies loses nothing the edge was told it had. */
#include "presence.h"

#include "addr.h"
#include "buf.h"
#include "err.h"
#include "jid.h"
#include "log.h"
#include "pidf.h"
#include "sip_map.h"
#include "worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define TICK_MS 1000
#define MAX_SUBSCRIBES_PER_TICK 10000 /* about 6 MB toward the pool per tick */
#define MAX_RESOURCES 16	      /* resources remembered per contact */
#define MAX_ACKS 65536		      /* stanzas waiting for a commit before the link is told */
#define MAX_CONTACTS 1000000 /* partner users whose presence is cached (peer-driven: bounded) */
#define MAX_OUTBOX 65536     /* subscription stanzas waiting for an edge */
#define MAX_PARSING 4096     /* NOTIFY bodies queued for the PIDF thread (about 2 KB each) */
#define REFRESH_MARGIN 0.9   /* refresh at 90% of the granted time */
#define DEFAULT_UAS_EXPIRES 3600
/* Our CSeq in a dialog is written every CSEQ_STRIDE requests, and a restarted gateway
 * starts CSEQ_STRIDE above what it finds: always higher than anything it sent, without a
 * store write per NOTIFY. */
#define CSEQ_STRIDE 256

/* One available resource of a partner user, as last received. */
struct xres {
	char *resource; /* "" for the bare JID */
	enum pidf_show show;
	char *status, *lang;
	int priority;
	bool has_priority;
};

/* A partner user's last presence: what SIP watchers are told (full state, E6). */
struct xcontact {
	struct sip_map_node node; /* by bare JID */
	struct presence *p;
	char *jid;
	struct xres res[MAX_RESOURCES];
	size_t n;
	/* D9: our publication of this user's state at the pool (RFC 3903) */
	char *etag;	      /* SIP-ETag of the live publication, NULL if none */
	struct sip_req *pub;  /* PUBLISH in flight */
	bool pub_dirty;	      /* the state changed while it was */
	uint64_t pub_due_ms;  /* refresh due; 0 = none */
	unsigned pub_retries; /* 412s in a row */
};

struct psub {
	struct sip_map_node by_dialog; /* call-id \n local tag */
	struct sip_map_node by_pair;   /* "dir\njid\nsip" -> first of a chain */
	struct psub *pair_next;
	struct psub *prev, *next;
	struct presence *p;
	int dir;   /* enum store_sub_dir */
	int state; /* enum store_sub_state */
	char *jid; /* partner user, bare */
	char *sip; /* organisation user's AOR */
	char *org; /* organisation user as a bare JID */
	struct sip_dialog d;
	bool in_dialog_map, registered, dead, fetch;
	struct sip_req *req; /* request in flight (one at a time per dialog) */
	bool dirty;	     /* UAS: presence changed while a NOTIFY was in flight */
	bool ending;	     /* UAS: the terminating NOTIFY is out; free after it */
	bool told_subscribed;
	int64_t expires_at; /* unix seconds */
	uint64_t due_ms;    /* next refresh / retry (UAC), expiry (UAS); 0 = none */
	unsigned failures;
	char *shown[MAX_RESOURCES]; /* UAC: resources announced to the partner user */
	size_t nshown;
	char *undelivered; /* UAC: the last NOTIFY body no edge could take; resent each tick */
	size_t undelivered_len;
	unsigned parsing; /* UAC: NOTIFY bodies with the PIDF thread (their pjobs hold ps) */
};

/* A subscribe / subscribed / unsubscribe / unsubscribed no edge could take. */
struct outmsg {
	struct outmsg *next;
	char *from, *to, *type;
};

struct ack {
	struct link_peer *peer;
	uint64_t epoch, seq;
};

struct presence {
	uv_loop_t *loop;
	const struct presence_conf *conf;
	struct sip_stack *sip;
	struct edgelink *edges;
	struct store *store;
	const Parley__Link__PolicySnapshot *pol;
	struct sip_map dialogs, pairs, contacts;
	struct psub *head;
	struct psub *zombies; /* dropped while a request was in flight */
	uv_timer_t tick, ack_timer;
	struct ack *acks;
	size_t nacks;
	struct presence_stats stats;
	struct buf scratch;
	struct worker *pidf_thread; /* NULL: PIDF parsed in the loop */
	struct outmsg *out_head, **out_tail; /* waiting for an edge, in the order decided */
	size_t nout;
	bool closing;
};

/* Before anything that may change what a UAC subscription showed, or drop one, the PIDF
 * thread's NOTIFYs that came earlier are delivered: a stanza never overtakes an earlier
 * NOTIFY's presence, and no psub goes while a pjob points at it. Free when none is out. */
static void sync_pidf(struct presence *p)
{
	worker_drain(p->pidf_thread);
}

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

static int64_t wall_now(void)
{
	return (int64_t)time(NULL);
}

static uint32_t refresh_s(const struct presence *p)
{
	uint32_t r = p->pol && p->pol->timers ? p->pol->timers->subscription_refresh_s : 28800;
	return r ? r : 28800;
}

/* The resourcepart of jid (normalised) into out, "" if none. */
static void resource_of(const char *jid, char *out, size_t cap)
{
	char n[JID_BUF];
	struct jid j;
	out[0] = 0;
	if (jid && jid_normalize(jid, strlen(jid), n, sizeof n, &j) >= 0 && j.resource.n)
		snprintf(out, cap, "%.*s", (int)j.resource.n, j.resource.p);
}

static const char *domain_part(const char *bare)
{
	const char *at = strchr(bare, '@');
	return at ? at + 1 : bare;
}

/* Federated partners see status notes; public ones never do (DESIGN.md). */
static bool sees_notes(const struct presence *p, const char *partner_bare)
{
	const char *d = domain_part(partner_bare);
	for (size_t i = 0; p->pol && i < p->pol->n_partners; i++) {
		const Parley__Link__Partner *pt = p->pol->partners[i];
		bool match = strcasecmp(pt->domain, d) == 0;
		for (size_t k = 0; !match && k < pt->n_additional_domains; k++)
			match = strcasecmp(pt->additional_domains[k], d) == 0;
		if (match)
			return !pt->has_type ||
			       pt->type == PARLEY__LINK__PARTNER_TYPE__PARTNER_FEDERATED;
	}
	return false;
}

static int pair_key(int dir, const char *jid, const char *sip, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%d\n%s\n%s", dir, jid, sip);
	return n < 0 || (size_t)n >= cap ? PE_TOOBIG : n;
}

/* ---- subscriptions in memory ---- */

static struct psub *pair_find(const struct presence *p, int dir, const char *jid, const char *sip)
{
	char key[3 * JID_BUF];
	int n = pair_key(dir, jid, sip, key, sizeof key);
	if (n < 0)
		return NULL;
	struct sip_map_node *node = sip_map_find(&p->pairs, key, (size_t)n);
	return node ? sip_map_entry(node, struct psub, by_pair) : NULL;
}

static void pair_link(struct presence *p, struct psub *ps)
{
	char key[3 * JID_BUF];
	int n = pair_key(ps->dir, ps->jid, ps->sip, key, sizeof key);
	if (n < 0)
		return;
	struct psub *first = pair_find(p, ps->dir, ps->jid, ps->sip);
	if (first) {
		ps->pair_next = first->pair_next;
		first->pair_next = ps;
		return;
	}
	/* the map keeps a pointer to the key: one the chain owns, freed in pair_unlink */
	char *k = malloc((size_t)n + 1);
	if (!k)
		abort();
	memcpy(k, key, (size_t)n + 1);
	sip_map_insert(&p->pairs, &ps->by_pair, k, (size_t)n);
}

static void pair_unlink(struct presence *p, struct psub *ps)
{
	struct psub *first = pair_find(p, ps->dir, ps->jid, ps->sip);
	if (!first)
		return;
	if (first != ps) {
		for (struct psub *q = first; q; q = q->pair_next)
			if (q->pair_next == ps) {
				q->pair_next = ps->pair_next;
				break;
			}
		ps->pair_next = NULL;
		return;
	}
	char *k = (char *)ps->by_pair.key;
	sip_map_remove(&p->pairs, &ps->by_pair); /* k stays allocated for an heir */
	struct psub *heir = ps->pair_next;
	ps->pair_next = NULL;
	if (heir) {
		sip_map_insert(&p->pairs, &heir->by_pair, k, strlen(k));
	} else {
		free(k);
	}
}

static void dialog_index(struct presence *p, struct psub *ps)
{
	char key[1024];
	int n = sip_dialog_key(&ps->d, key, sizeof key);
	if (n < 0 || ps->in_dialog_map)
		return;
	char *k = malloc((size_t)n + 1);
	if (!k)
		abort();
	memcpy(k, key, (size_t)n + 1);
	sip_map_insert(&p->dialogs, &ps->by_dialog, k, (size_t)n);
	ps->in_dialog_map = true;
	if (sip_stack_dialog_register(p->sip, &ps->d) == 0)
		ps->registered = true;
}

static void dialog_unindex(struct presence *p, struct psub *ps)
{
	if (ps->registered)
		sip_stack_dialog_unregister(p->sip, &ps->d);
	ps->registered = false;
	if (ps->in_dialog_map) {
		char *k = (char *)ps->by_dialog.key;
		sip_map_remove(&p->dialogs, &ps->by_dialog);
		free(k);
		ps->in_dialog_map = false;
	}
}

static struct psub *psub_new(struct presence *p, int dir, const char *jid, const char *sip,
			     const char *org)
{
	struct psub *ps = calloc(1, sizeof *ps);
	if (!ps)
		abort();
	ps->p = p;
	ps->dir = dir;
	ps->state = STORE_SUB_PENDING;
	ps->jid = dup0(jid);
	ps->sip = dup0(sip);
	ps->org = dup0(org);
	ps->next = p->head;
	if (p->head)
		p->head->prev = ps;
	p->head = ps;
	pair_link(p, ps);
	if (dir == STORE_SUB_XMPP_TO_SIP)
		p->stats.subs_uac++;
	else
		p->stats.subs_uas++;
	return ps;
}

static void shown_clear(struct psub *ps)
{
	for (size_t i = 0; i < ps->nshown; i++)
		free(ps->shown[i]);
	ps->nshown = 0;
}

static void psub_free(struct psub *ps)
{
	free(ps->undelivered);
	sip_dialog_deinit(&ps->d);
	shown_clear(ps);
	free(ps->jid);
	free(ps->sip);
	free(ps->org);
	free(ps);
}

/* A dropped psub's request has completed (or is abandoned): now it can go. */
static void zombie_free(struct psub *ps)
{
	struct presence *p = ps->p;
	if (ps->prev)
		ps->prev->next = ps->next;
	else
		p->zombies = ps->next;
	if (ps->next)
		ps->next->prev = ps->prev;
	psub_free(ps);
}

/* Takes ps out of every index; the memory goes now, or when its request completes. */
static void psub_drop(struct psub *ps)
{
	struct presence *p = ps->p;
	if (ps->dead)
		return;
	if (ps->parsing)
		sync_pidf(p); /* the callers synchronise first; this only keeps ps alive */
	ps->dead = true;
	dialog_unindex(p, ps);
	pair_unlink(p, ps);
	if (ps->prev)
		ps->prev->next = ps->next;
	else
		p->head = ps->next;
	if (ps->next)
		ps->next->prev = ps->prev;
	if (ps->dir == STORE_SUB_XMPP_TO_SIP)
		p->stats.subs_uac--;
	else
		p->stats.subs_uas--;
	if (!ps->req) {
		psub_free(ps);
		return;
	}
	ps->prev = NULL;
	ps->next = p->zombies;
	if (ps->next)
		ps->next->prev = ps;
	p->zombies = ps;
}

/* ---- persistence ---- */

static void persist(struct psub *ps)
{
	if (ps->fetch || ps->dead)
		return;
	char routes[SIP_DIALOG_MAX_ROUTES * 256];
	size_t o = 0;
	routes[0] = 0;
	for (int i = 0; i < ps->d.nroute; i++)
		o += (size_t)snprintf(routes + o, o < sizeof routes ? sizeof routes - o : 0, "%s%s",
				      i ? "\n" : "", ps->d.route[i]);
	struct store_sub s = {
	    .dir = ps->dir,
	    .state = ps->state,
	    .jid = ps->jid,
	    .sip_uri = ps->sip,
	    .watcher = ps->dir == STORE_SUB_SIP_TO_XMPP ? ps->d.call_id : NULL,
	    .call_id = ps->d.call_id,
	    .local_tag = ps->d.local_tag,
	    .remote_tag = ps->d.remote_tag,
	    .local_uri = ps->d.local_uri,
	    .remote_uri = ps->d.remote_uri,
	    .remote_target = ps->d.remote_target,
	    .routes = ps->d.nroute && o < sizeof routes ? routes : NULL,
	    .local_cseq = ps->d.local_cseq,
	    .remote_cseq = ps->d.remote_cseq,
	    .expires_at = ps->expires_at,
	    .updated_at = wall_now(),
	};
	int r = store_sub_put(ps->p->store, &s);
	if (r)
		log_error(0, "presence_store_failed", "jid=%s sip=%s err=\"%s\"", ps->jid, ps->sip,
			  pe_strerror(r));
}

static void unpersist(struct psub *ps)
{
	if (ps->fetch)
		return;
	int r = store_sub_del(ps->p->store, ps->dir, ps->jid, ps->sip,
			      ps->dir == STORE_SUB_SIP_TO_XMPP ? ps->d.call_id : NULL);
	if (r)
		log_error(0, "presence_store_failed", "jid=%s sip=%s err=\"%s\"", ps->jid, ps->sip,
			  pe_strerror(r));
}

/* ---- toward XMPP ---- */

/* Returns false if no edge could take it (logged). */
static int send_now(struct presence *p, const char *from, const char *to, const char *type,
		    enum pidf_show show, const char *status, const char *lang, const int *priority)
{
	Parley__Link__Frame f = PARLEY__LINK__FRAME__INIT;
	Parley__Link__Stanza s = PARLEY__LINK__STANZA__INIT;
	static uint64_t ref;
	s.ref = ((uint64_t)0x70 << 56) | ++ref; /* nobody waits for its Delivered */
	s.kind = PARLEY__LINK__STANZA_KIND__KIND_PRESENCE;
	s.type = (char *)type;
	s.from = (char *)from;
	s.to = (char *)to;
	s.show = (char *)pidf_show_name(show);
	s.status = (char *)status;
	s.lang = (char *)lang;
	if (priority) {
		s.has_priority = true;
		s.priority = *priority;
	}
	f.body_case = PARLEY__LINK__FRAME__BODY_STANZA;
	f.stanza = &s;
	int r = edgelink_send_to(p->edges, domain_part(to), &f);
	if (!r)
		p->stats.presence_out++;
	return r;
}

static void outmsg_free(struct outmsg *m)
{
	free(m->from);
	free(m->to);
	free(m->type);
	free(m);
}

/* Sends the subscription stanzas that wait, in order; what still finds no edge stays.
 * 0 if none is left, else the last send's error. */
static int waiting_flush(struct presence *p)
{
	struct outmsg **pp = &p->out_head;
	int err = 0;
	while (*pp) {
		struct outmsg *m = *pp;
		int r = send_now(p, m->from, m->to, m->type, PIDF_SHOW_NONE, NULL, NULL, NULL);
		if (r == 0) {
			*pp = m->next;
			p->nout--;
			outmsg_free(m);
		} else {
			err = r;
			pp = &m->next;
		}
	}
	p->out_tail = pp;
	return err;
}

static void waiting_push(struct presence *p, const char *from, const char *to, const char *type)
{
	if (p->nout == MAX_OUTBOX) {
		struct outmsg *old = p->out_head;
		log_warn(0, "presence_lost", "from=%s to=%s type=%s why=\"too many waiting\"", old->from,
			 old->to, old->type);
		p->out_head = old->next;
		if (!p->out_head)
			p->out_tail = &p->out_head;
		p->nout--;
		outmsg_free(old);
	}
	struct outmsg *m = calloc(1, sizeof *m);
	if (!m)
		abort();
	m->from = dup0(from);
	m->to = dup0(to);
	m->type = dup0(type);
	*p->out_tail = m;
	p->out_tail = &m->next;
	p->nout++;
}

/* A presence stanza toward the edge serving to's domain. Subscription stanzas that no edge
 * takes wait (p->out_head) and go, in order, once one does (each tick, or before the next
 * stanza); for availability false is returned and the caller keeps the state to resend. */
static bool send_presence(struct presence *p, const char *from, const char *to, const char *type,
			  enum pidf_show show, const char *status, const char *lang,
			  const int *priority)
{
	int r = p->out_head ? waiting_flush(p) : 0;
	if (!r)
		r = send_now(p, from, to, type, show, status, lang, priority);
	if (!r)
		return true;
	if (type && (!strcmp(type, "subscribe") || !strcmp(type, "subscribed") ||
		     !strcmp(type, "unsubscribe") || !strcmp(type, "unsubscribed"))) {
		log_info(0, "presence_waiting", "from=%s to=%s type=%s err=\"%s\"", from, to, type,
			 pe_strerror(r));
		waiting_push(p, from, to, type);
		return true;
	}
	log_warn(0, "presence_lost", "from=%s to=%s type=%s err=\"%s\"", from, to,
		 type ? type : "available", pe_strerror(r));
	return false;
}

/* ---- partner users' presence (the cache SIP watchers are told from) ---- */

static struct xcontact *contact_get(struct presence *p, const char *jid, bool create)
{
	struct sip_map_node *n = sip_map_find(&p->contacts, jid, strlen(jid));
	if (n || !create)
		return n ? sip_map_entry(n, struct xcontact, node) : NULL;
	if (p->contacts.n >= MAX_CONTACTS) {
		p->stats.contacts_refused++;
		return NULL;
	}
	struct xcontact *c = calloc(1, sizeof *c);
	if (!c)
		abort();
	c->p = p;
	c->jid = dup0(jid);
	sip_map_insert(&p->contacts, &c->node, c->jid, strlen(c->jid));
	return c;
}

static void xres_clear(struct xres *r)
{
	free(r->resource);
	free(r->status);
	free(r->lang);
	memset(r, 0, sizeof *r);
}

static void contact_free(struct presence *p, struct xcontact *c)
{
	sip_map_remove(&p->contacts, &c->node);
	for (size_t i = 0; i < c->n; i++)
		xres_clear(&c->res[i]);
	if (c->pub)
		sip_stack_abandon(c->pub);
	free(c->etag);
	free(c->jid);
	free(c);
}

/* The stored form of one resource: show, priority, lang, status separated by '\n'. */
static void contact_save(struct presence *p, struct xcontact *c, struct xres *r)
{
	char blob[8192];
	int n =
	    snprintf(blob, sizeof blob, "%d\n%d\n%d\n%s\n%s", (int)r->show, r->has_priority ? 1 : 0,
		     r->priority, r->lang ? r->lang : "", r->status ? r->status : "");
	if (n < 0 || (size_t)n >= sizeof blob)
		n = (int)sizeof blob - 1;
	store_pres_put(p->store, c->jid, r->resource, blob, (size_t)n, wall_now());
}

/* Records an available (or, with avail false, unavailable) resource. Returns true if the
 * contact's state changed. */
static bool contact_update(struct presence *p, const char *bare, const char *resource, bool avail,
			   enum pidf_show show, const char *status, const char *lang,
			   const int *priority, bool save)
{
	struct xcontact *c = contact_get(p, bare, avail);
	if (!c)
		return false;
	size_t i = 0;
	while (i < c->n && strcmp(c->res[i].resource, resource) != 0)
		i++;
	if (!avail) {
		if (i == c->n)
			return false;
		xres_clear(&c->res[i]);
		c->res[i] = c->res[--c->n];
		memset(&c->res[c->n], 0, sizeof c->res[c->n]);
		if (save)
			store_pres_del(p->store, bare, resource);
		if (c->n == 0 && !p->conf->publish)
			contact_free(p, c); /* nothing left to tell: closed is the default */
		return true;
	}
	if (i == c->n) {
		if (c->n == MAX_RESOURCES)
			i = c->n - 1; /* the last one makes way */
		else
			c->n++;
	}
	struct xres *r = &c->res[i];
	xres_clear(r);
	r->resource = dup0(resource);
	r->show = show;
	r->status = dup0(status && *status ? status : NULL);
	r->lang = dup0(lang && *lang ? lang : NULL);
	r->has_priority = priority != NULL;
	r->priority = priority ? *priority : 0;
	if (save)
		contact_save(p, c, r);
	return true;
}

/* The PIDF for a partner user's current state (E2-E6): one tuple per resource; none
 * available means one closed tuple. */
static int contact_pidf(struct presence *p, const char *bare, struct buf *out)
{
	struct xcontact *c = contact_get(p, bare, false);
	struct pidf_tuple t[MAX_RESOURCES];
	size_t n = 0;
	memset(t, 0, sizeof t);
	for (size_t i = 0; c && i < c->n; i++, n++) {
		t[n].resource = *c->res[i].resource ? c->res[i].resource : NULL;
		t[n].open = true;
		t[n].show = c->res[i].show;
		t[n].note = c->res[i].status;
		t[n].note_lang = c->res[i].lang;
		t[n].priority = c->res[i].priority;
		t[n].has_priority = c->res[i].has_priority;
	}
	if (n == 0) {
		t[0].open = false;
		n = 1;
	}
	char entity[JID_BUF + 8];
	snprintf(entity, sizeof entity, "pres:%s", bare);
	buf_consume(out, buf_len(out));
	return pidf_write(out, entity, t, n);
}

/* ---- D9: publications at the pool ---- */

static void contact_publish(struct xcontact *c, bool refresh);

static void on_publish_response(void *arg, struct sip_msg *resp)
{
	struct xcontact *c = arg;
	struct presence *p = c->p;
	int status = sip_msg_status(resp);
	c->pub = NULL;
	if (status >= 200 && status < 300) {
		const char *et = sip_msg_header(resp, "SIP-ETag", 0);
		free(c->etag);
		c->etag = dup0(et);
		int exp = sip_msg_expires(resp);
		if (exp <= 0)
			exp = (int)p->conf->publish_expires_s;
		c->pub_due_ms = uv_now(p->loop) + (uint64_t)(exp * 1000.0 * REFRESH_MARGIN);
		c->pub_retries = 0;
	} else if (status == 412 && c->pub_retries++ < 3) {
		/* Conditional Request Failed: the publication is gone; start a new one */
		log_info(0, "presence_publish_expired", "jid=%s", c->jid);
		free(c->etag);
		c->etag = NULL;
		c->pub_dirty = true;
	} else {
		log_info(0, "presence_publish_failed", "jid=%s status=%d", c->jid, status);
		c->pub_due_ms = uv_now(p->loop) + p->conf->retry_s * 1000;
		c->pub_dirty = true;
		return;
	}
	if (c->pub_dirty)
		contact_publish(c, false);
}

/* PUBLISH of the user's current state (refresh: only the lifetime, no body) to the pool,
 * for the user's address of record; one in flight per user. */
static void contact_publish(struct xcontact *c, bool refresh)
{
	struct presence *p = c->p;
	char aor[ADDR_URI_BUF];
	if (c->pub) {
		c->pub_dirty |= !refresh;
		return;
	}
	if (addr_jid_to_sip(c->jid, strlen(c->jid), ADDR_NO_GR, aor, sizeof aor) < 0)
		return;
	struct sip_msg *req = sip_stack_new_request(p->sip, "PUBLISH", aor, aor, aor, NULL);
	if (!req)
		return;
	char ev[16];
	snprintf(ev, sizeof ev, "%llu", (unsigned long long)p->conf->publish_expires_s);
	sip_msg_add_header(req, "Event", "presence");
	sip_msg_add_header(req, "Expires", ev);
	if (c->etag)
		sip_msg_add_header(req, "SIP-If-Match", c->etag);
	if ((!refresh || !c->etag) && contact_pidf(p, c->jid, &p->scratch) == 0)
		sip_msg_set_body(req, "application/pidf+xml", buf_head(&p->scratch),
				 buf_len(&p->scratch));
	c->pub_dirty = false;
	c->pub_due_ms = 0;
	if (sip_stack_send(p->sip, req, NULL, on_publish_response, c, &c->pub) != 0)
		c->pub = NULL;
}

static void refresh_publication(struct sip_map_node *n, void *arg)
{
	struct xcontact *c = sip_map_entry(n, struct xcontact, node);
	uint64_t now = *(uint64_t *)arg;
	if (c->pub_due_ms && c->pub_due_ms <= now)
		contact_publish(c, !c->pub_dirty);
}

/* ---- UAS: NOTIFYs to SIP watchers ---- */

static void uas_notify(struct psub *ps, const char *substate);

static void on_notify_response(void *arg, struct sip_msg *resp)
{
	struct psub *ps = arg;
	ps->req = NULL;
	int status = sip_msg_status(resp);
	if (ps->dead) {
		zombie_free(ps);
		return;
	}
	bool transient = status < 300 || status == 491 || status == 500 || status == 503;
	if (ps->ending || !transient) {
		/* RFC 6665 §4.2.2: a failure ends the subscription */
		if (status >= 300)
			log_info(0, "presence_watcher_gone", "sip=%s jid=%s status=%d", ps->sip,
				 ps->jid, status);
		unpersist(ps);
		psub_drop(ps);
		return;
	}
	if (ps->dirty) {
		ps->dirty = false;
		uas_notify(ps, NULL);
	}
}

/* Sends the watcher the partner user's current state. substate NULL: "active" or
 * "pending" with the remaining time, as the subscription stands. One NOTIFY in flight per
 * dialog keeps CSeq order over UDP; changes meanwhile are sent once it is answered. */
static void uas_notify(struct psub *ps, const char *substate)
{
	struct presence *p = ps->p;
	if (ps->req) {
		ps->dirty = true;
		return;
	}
	char ss[96], next[1024];
	if (!substate) {
		int64_t left = ps->expires_at - wall_now();
		snprintf(ss, sizeof ss, "%s;expires=%lld",
			 ps->state == STORE_SUB_ACTIVE ? "active" : "pending",
			 (long long)(left > 0 ? left : 0));
		substate = ss;
	}
	struct sip_msg *n = sip_dialog_new_request(&ps->d, "NOTIFY");
	if (!n || sip_dialog_next_hop(&ps->d, next, sizeof next) != 0) {
		sip_msg_free(n);
		log_warn(0, "presence_notify_failed", "sip=%s jid=%s why=\"bad dialog\"", ps->sip,
			 ps->jid);
		return;
	}
	sip_msg_add_header(n, "Event", "presence");
	sip_msg_add_header(n, "Subscription-State", substate);
	/* pending and rejected say nothing of the user; an ended subscription says closed
	 * (D7); active gives the state */
	int r = -1;
	if (strncmp(substate, "active", 6) == 0) {
		r = contact_pidf(p, ps->jid, &p->scratch);
	} else if (strncmp(substate, "terminated", 10) == 0 && !strstr(substate, "rejected")) {
		struct pidf_tuple closed = {.open = false};
		char entity[JID_BUF + 8];
		snprintf(entity, sizeof entity, "pres:%s", ps->jid);
		buf_consume(&p->scratch, buf_len(&p->scratch));
		r = pidf_write(&p->scratch, entity, &closed, 1);
	}
	if (r == 0)
		sip_msg_set_body(n, "application/pidf+xml", buf_head(&p->scratch),
				 buf_len(&p->scratch));
	if (ps->d.local_cseq % CSEQ_STRIDE == 0)
		persist(ps);
	if (sip_stack_send(p->sip, n, next, on_notify_response, ps, &ps->req) != 0) {
		ps->req = NULL;
		return;
	}
	p->stats.notify_out++;
}

/* Ends a watcher's subscription with a final NOTIFY ("terminated;reason=..."). */
static void uas_end(struct psub *ps, const char *reason)
{
	char ss[64];
	snprintf(ss, sizeof ss, "terminated;reason=%s", reason);
	ps->ending = true;
	ps->dirty = false;
	unpersist(ps);
	if (ps->req) {
		/* the final NOTIFY supersedes the one in flight */
		sip_stack_abandon(ps->req);
		ps->req = NULL;
	}
	uas_notify(ps, ss);
	if (!ps->req)
		psub_drop(ps);
}

/* A partner user's presence changed: tell every SIP watcher of it (E8: only those whose
 * subscription names this partner user and this organisation user). */
static void notify_watchers(struct presence *p, const char *jid, const char *org_sip)
{
	for (struct psub *ps = pair_find(p, STORE_SUB_SIP_TO_XMPP, jid, org_sip); ps;
	     ps = ps->pair_next)
		if (ps->state == STORE_SUB_ACTIVE && !ps->ending)
			uas_notify(ps, NULL);
}

/* ---- UAC: our SUBSCRIBEs to organisation users ---- */

static void uac_subscribe(struct psub *ps, uint32_t expires);

static void uac_schedule_retry(struct psub *ps)
{
	uint64_t wait = ps->p->conf->retry_s * 1000ull << (ps->failures < 5 ? ps->failures : 5);
	ps->failures++;
	ps->due_ms = uv_now(ps->p->loop) + wait;
}

/* Ends a partner user's subscription: `unsubscribed` (authorization cancelled, D4) or
 * only unavailable for what was shown. */
static void uac_announce_gone(struct psub *ps)
{
	for (size_t i = 0; i < ps->nshown; i++) {
		char from[2 * JID_BUF];
		if (*ps->shown[i])
			snprintf(from, sizeof from, "%s/%s", ps->org, ps->shown[i]);
		else
			snprintf(from, sizeof from, "%s", ps->org);
		send_presence(ps->p, from, ps->jid, "unavailable", PIDF_SHOW_NONE, NULL, NULL,
			      NULL);
	}
	shown_clear(ps);
}

static void uac_cancelled(struct psub *ps, const char *why)
{
	log_info(0, "presence_subscription_cancelled", "jid=%s sip=%s why=\"%s\"", ps->jid, ps->sip,
		 why);
	uac_announce_gone(ps);
	if (!ps->fetch)
		send_presence(ps->p, ps->org, ps->jid, "unsubscribed", PIDF_SHOW_NONE, NULL, NULL,
			      NULL);
	unpersist(ps);
	psub_drop(ps);
}

/* Ends a partner user's subscription from our side: unavailable for what was shown,
 * Expires: 0 in its dialog (D5), gone from the store and from memory. */
static void uac_end(struct psub *ps)
{
	uac_announce_gone(ps);
	unpersist(ps);
	if (ps->d.remote_target && !ps->req) {
		ps->fetch = true; /* no longer ours to keep */
		uac_subscribe(ps, 0);
	}
	psub_drop(ps);
}

/* Back to a fresh dialog later (the old one is gone). */
static void uac_restart_later(struct psub *ps)
{
	dialog_unindex(ps->p, ps);
	sip_dialog_deinit(&ps->d);
	uac_schedule_retry(ps);
	persist(ps);
}

static bool refresh_fatal(int status)
{
	/* D4: on refresh these end the subscription */
	return status == 404 || status == 405 || status == 410 || status == 416 ||
	       (status >= 480 && status <= 485) || status == 489 || status == 501 || status == 604;
}

static void on_subscribe_response(void *arg, struct sip_msg *resp)
{
	struct psub *ps = arg;
	struct presence *p = ps->p;
	sync_pidf(p);
	ps->req = NULL;
	if (ps->dead) {
		/* the Expires: 0 of an unsubscribe (D5) */
		log_info(0, "presence_sip_unsubscribed", "jid=%s sip=%s status=%d", ps->jid,
			 ps->sip, sip_msg_status(resp));
		zombie_free(ps);
		return;
	}
	int status = sip_msg_status(resp);
	bool refresh = ps->d.remote_target != NULL; /* the dialog existed before this request */
	if (status >= 200 && status < 300) {
		sip_dialog_establish_uac(&ps->d, resp);
		sip_dialog_on_response(&ps->d, resp);
		int exp = sip_msg_expires(resp);
		if (ps->fetch) {
			ps->due_ms = uv_now(p->loop) + 32000; /* its NOTIFY carries the answer */
			return;
		}
		if (exp < 0)
			exp = (int)refresh_s(p);
		if (exp == 0) {
			/* our unsubscribe (D5) was accepted */
			return;
		}
		if (refresh)
			log_info(0, "presence_refreshed", "jid=%s sip=%s expires=%d", ps->jid,
				 ps->sip, exp);
		ps->failures = 0;
		ps->expires_at = wall_now() + exp;
		ps->due_ms = uv_now(p->loop) + (uint64_t)(exp * 1000.0 * REFRESH_MARGIN);
		persist(ps);
		return;
	}
	p->stats.subscribe_failed++;
	log_info(0, "presence_subscribe_failed", "jid=%s sip=%s status=%d refresh=%d", ps->jid,
		 ps->sip, status, refresh);
	if (ps->fetch) {
		psub_drop(ps);
		return;
	}
	if (refresh && status == 481) {
		/* the dialog is gone, not the authorisation (D4: 481 is transient, although it is
		 * in the refresh list's 480-485): a new dialog at once */
		uac_restart_later(ps);
		ps->due_ms = uv_now(p->loop);
		return;
	}
	if (status == 403 || status == 489 || status == 603 || (refresh && refresh_fatal(status))) {
		uac_cancelled(ps, sip_msg_reason(resp) ? sip_msg_reason(resp) : "refused");
		return;
	}
	if (status == 423) {
		/* Interval Too Brief: ask again with the minimum it names */
		const char *me = sip_msg_header(resp, "Min-Expires", 0);
		int min = me ? atoi(me) : 0;
		if (min > 0 && min <= 86400 && ps->failures < 3) {
			ps->failures++;
			uint32_t want = refresh_s(p);
			uac_subscribe(ps, want > (uint32_t)min ? want : (uint32_t)min);
			return;
		}
	}
	/* 423/481 on a first SUBSCRIBE, timeouts, 5xx: transient, try again later */
	if (!ps->d.remote_target)
		uac_restart_later(ps);
	else
		uac_schedule_retry(ps);
}

/* Sends SUBSCRIBE: a new dialog when none is established, else in the dialog (a refresh,
 * or with expires 0 the unsubscribe). */
static void uac_subscribe(struct psub *ps, uint32_t expires)
{
	struct presence *p = ps->p;
	struct sip_msg *req;
	char next[1024];
	const char *hop = NULL;
	if (ps->req)
		return;
	if (ps->d.remote_target) {
		req = sip_dialog_new_request(&ps->d, "SUBSCRIBE");
		if (!req || sip_dialog_next_hop(&ps->d, next, sizeof next) != 0) {
			sip_msg_free(req);
			return;
		}
		hop = next;
		p->stats.refreshes += expires > 0;
	} else {
		char from[ADDR_URI_BUF];
		if (addr_jid_to_sip(ps->jid, strlen(ps->jid), ADDR_NO_GR, from, sizeof from) < 0)
			return;
		req = sip_stack_new_request(p->sip, "SUBSCRIBE", ps->sip, from, ps->sip, NULL);
		if (!req)
			return;
		dialog_unindex(p, ps); /* a retry: forget the old identifiers */
		sip_dialog_deinit(&ps->d);
		ps->d.call_id = dup0(sip_msg_call_id(req));
		ps->d.local_tag = dup0(sip_msg_from_tag(req));
		ps->d.local_uri = dup0(sip_msg_from_uri(req));
		ps->d.remote_uri = dup0(ps->sip);
		ps->d.local_cseq = sip_msg_cseq(req, NULL);
		dialog_index(p, ps); /* an early NOTIFY must find us */
		p->stats.subscribe_out++;
	}
	char ev[16];
	snprintf(ev, sizeof ev, "%u", expires);
	sip_msg_add_header(req, "Event", "presence");
	sip_msg_add_header(req, "Accept", "application/pidf+xml");
	sip_msg_add_header(req, "Expires", ev);
	ps->due_ms = 0;
	persist(ps);
	if (sip_stack_send(p->sip, req, hop, on_subscribe_response, ps, &ps->req) != 0) {
		ps->req = NULL;
		uac_schedule_retry(ps);
	}
}

/* The presence a NOTIFY body gives, to the partner user (D2, E2-E5): one stanza per
 * tuple, unavailable for resources that went away. */
/* How available a show is, most first: chat, none, away, xa, dnd. */
static int show_rank(enum pidf_show s)
{
	switch (s) {
	case PIDF_SHOW_CHAT:
		return 0;
	case PIDF_SHOW_NONE:
		return 1;
	case PIDF_SHOW_AWAY:
		return 2;
	case PIDF_SHOW_XA:
		return 3;
	default:
		return 4;
	}
}

/* The stanzas of a parsed NOTIFY body (doc; body is kept if no edge takes them). */
static void uac_show(struct psub *ps, const char *body, size_t len, const struct pidf_doc *doc)
{
	struct presence *p = ps->p;
	bool notes = sees_notes(p, ps->jid), ok = true;
	/* one stanza per resource; tuples that are not ours (several SIP devices, aggregated
	 * by the presence server) all stand for the bare JID: the most available one speaks */
	const struct pidf_tuple *best[MAX_RESOURCES];
	size_t nbest = 0;
	for (size_t i = 0; i < doc->n; i++) {
		const struct pidf_tuple *t = &doc->tuples[i];
		const char *res = t->resource ? t->resource : "";
		if (!t->open)
			continue;
		size_t k = 0;
		while (k < nbest && strcmp(best[k]->resource ? best[k]->resource : "", res) != 0)
			k++;
		if (k == nbest && nbest < MAX_RESOURCES)
			best[nbest++] = t;
		else if (k < nbest && show_rank(t->show) < show_rank(best[k]->show))
			best[k] = t;
	}
	char *now[MAX_RESOURCES];
	size_t nnow = 0;
	for (size_t i = 0; i < nbest; i++) {
		const struct pidf_tuple *t = best[i];
		const char *res = t->resource ? t->resource : "";
		char from[2 * JID_BUF];
		if (*res)
			snprintf(from, sizeof from, "%s/%s", ps->org, res);
		else
			snprintf(from, sizeof from, "%s", ps->org);
		int prio = t->priority;
		ok &= send_presence(p, from, ps->jid, NULL, t->show, notes ? t->note : NULL,
				    notes ? t->note_lang : NULL, t->has_priority ? &prio : NULL);
		now[nnow++] = dup0(res);
	}
	/* resources shown before and absent now: unavailable (no body = unavailable, D2) */
	for (size_t i = 0; i < ps->nshown; i++) {
		bool still = false;
		for (size_t k = 0; k < nnow; k++)
			still |= strcmp(now[k], ps->shown[i]) == 0;
		if (still)
			continue;
		char from[2 * JID_BUF];
		if (*ps->shown[i])
			snprintf(from, sizeof from, "%s/%s", ps->org, ps->shown[i]);
		else
			snprintf(from, sizeof from, "%s", ps->org);
		const char *st = NULL;
		for (size_t k = 0; notes && k < doc->n; k++)
			if (!doc->tuples[k].open &&
			    strcmp(doc->tuples[k].resource ? doc->tuples[k].resource : "",
				   ps->shown[i]) == 0)
				st = doc->tuples[k].note;
		ok &= send_presence(p, from, ps->jid, "unavailable", PIDF_SHOW_NONE, st, NULL, NULL);
	}
	if (nnow == 0 && ps->nshown == 0) {
		/* nothing available and nothing shown yet: say unavailable once */
		const char *st = NULL;
		for (size_t k = 0; notes && k < doc->n; k++)
			if (doc->tuples[k].note)
				st = doc->tuples[k].note;
		ok &= send_presence(p, ps->org, ps->jid, "unavailable", PIDF_SHOW_NONE, st, NULL,
				    NULL);
	}
	if (!ok) {
		/* no edge: keep the state (a newer NOTIFY replaces it) and what the partner user
		 * was last told, and send it again when an edge takes it (on_tick) */
		for (size_t i = 0; i < nnow; i++)
			free(now[i]);
		if (body != ps->undelivered) {
			free(ps->undelivered);
			ps->undelivered = malloc(len + 1);
			if (!ps->undelivered)
				abort();
			memcpy(ps->undelivered, body, len);
			ps->undelivered[len] = 0;
			ps->undelivered_len = len;
		}
		return;
	}
	free(ps->undelivered); /* delivered now, or superseded by what was */
	ps->undelivered = NULL;
	shown_clear(ps);
	memcpy(ps->shown, now, nnow * sizeof now[0]);
	ps->nshown = nnow;
}

/* Parses a NOTIFY body (empty: unavailable) and shows it to the partner user. */
static void uac_deliver(struct psub *ps, const char *body, size_t len)
{
	struct pidf_doc doc;
	char err[200];
	memset(&doc, 0, sizeof doc);
	if (len && pidf_parse(body, len, NULL, &doc, err, sizeof err) != 0) {
		log_info(0, "presence_bad_pidf", "sip=%s err=\"%s\"", ps->sip, err);
		return;
	}
	uac_show(ps, body, len, &doc);
	pidf_doc_free(&doc);
}

/* An active NOTIFY's body parsed on the PIDF thread. */
struct pjob {
	struct worker_job j;
	struct psub *ps;
	char *body;
	size_t len;
	int rc;
	struct pidf_doc doc;
	char err[200];
};

static void pjob_run(struct worker_job *j)
{
	struct pjob *pj = (struct pjob *)j;
	pj->rc = pidf_parse(pj->body, pj->len, NULL, &pj->doc, pj->err, sizeof pj->err);
}

static void pjob_done(struct worker_job *j)
{
	struct pjob *pj = (struct pjob *)j;
	struct psub *ps = pj->ps;
	ps->parsing--;
	if (pj->rc != 0)
		log_info(0, "presence_bad_pidf", "sip=%s err=\"%s\"", ps->sip, pj->err);
	else if (!ps->dead)
		uac_show(ps, pj->body, pj->len, &pj->doc);
	pidf_doc_free(&pj->doc);
	free(pj->body);
	free(pj);
}

/* Takes body (malloc'd, len > 0): its presence reaches the partner user after the PIDF
 * thread parsed it, in NOTIFY order. */
static void uac_deliver_later(struct psub *ps, char *body, size_t len)
{
	struct pjob *pj = calloc(1, sizeof *pj);
	if (!pj)
		abort();
	pj->j.run = pjob_run;
	pj->j.done = pjob_done;
	pj->ps = ps;
	pj->body = body;
	pj->len = len;
	ps->parsing++;
	worker_submit(ps->p->pidf_thread, &pj->j);
}

/* ---- SIP requests ---- */

/* "active;expires=600" -> state word into st, expires (-1 if absent), reason. */
static void parse_substate(const char *v, char *st, size_t stcap, int *expires, char *reason,
			   size_t rcap)
{
	char tmp[32];
	st[0] = reason[0] = 0;
	*expires = -1;
	if (!v)
		return;
	sip_hvalue_token(v, st, stcap);
	if (sip_hvalue_param(v, "expires", tmp, sizeof tmp) == 0)
		*expires = atoi(tmp);
	sip_hvalue_param(v, "reason", reason, rcap);
}

static void handle_notify(struct presence *p, struct sip_stxn *st, struct sip_msg *req)
{
	/* Our dialogs are indexed under the key the stack's registry uses (Call-ID + local
	 * tag): one lookup here instead of the registry's and then ours. */
	char key[1024];
	struct psub *ps = NULL;
	int kn = sip_dialog_key_of_request(req, key, sizeof key);
	struct sip_map_node *n = kn > 0 ? sip_map_find(&p->dialogs, key, (size_t)kn) : NULL;
	if (n) {
		ps = sip_map_entry(n, struct psub, by_dialog);
		if (!sip_dialog_matches(&ps->d, req))
			ps = NULL;
	}
	if (!ps || ps->dir != STORE_SUB_XMPP_TO_SIP) {
		log_info(0, "presence_notify_refused", "status=481 call_id=%s found_dialog=%d",
			 sip_msg_call_id(req) ? sip_msg_call_id(req) : "-", ps != NULL);
		sip_stxn_reply(st, 481, "Subscription does not exist");
		return;
	}
	const char *ev = sip_msg_event(req);
	char evtok[32] = "";
	if (ev)
		sip_hvalue_token(ev, evtok, sizeof evtok);
	if (strcasecmp(evtok, "presence") != 0) {
		sip_stxn_reply(st, 489, "Bad Event");
		return;
	}
	if (sip_dialog_establish_uac(&ps->d, req) != 0) {
		sip_stxn_reply(st, 400, "Missing Contact");
		return;
	}
	if (sip_dialog_on_request(&ps->d, req) == PE_STATE) {
		sip_stxn_reply(st, 500, "CSeq out of order");
		return;
	}
	p->stats.notify_in++;
	char state[24], reason[32];
	int exp;
	parse_substate(sip_msg_subscription_state(req), state, sizeof state, &exp, reason,
		       sizeof reason);
	/* copy the body before answering: on a stream req goes with the final response */
	const uint8_t *body;
	size_t blen;
	sip_msg_body(req, &body, &blen);
	char *copy = NULL;
	if (blen && sip_msg_content_type_is(req, "application/pidf+xml")) {
		copy = malloc(blen + 1);
		if (!copy)
			abort();
		memcpy(copy, body, blen);
		copy[blen] = 0;
	} else {
		blen = 0;
	}
	sip_stxn_reply(st, 200, "OK");

	/* the common case, an active NOTIFY with a body, goes through the PIDF thread; any
	 * other first delivers what the thread has, in order. A thread that falls behind
	 * (MAX_PARSING queued) is caught up with here: the queue stays bounded. */
	bool later = copy && p->pidf_thread && !ps->fetch && strcasecmp(state, "active") == 0;
	if (!later || worker_outstanding(p->pidf_thread) >= MAX_PARSING)
		sync_pidf(p);
	if (strcasecmp(state, "terminated") == 0) {
		if (ps->fetch) {
			uac_deliver(ps, copy, blen);
			psub_drop(ps);
		} else if (strcasecmp(reason, "rejected") == 0 ||
			   strcasecmp(reason, "noresource") == 0 ||
			   strcasecmp(reason, "invariant") == 0) {
			/* authorisation withdrawn, or no such user: unsubscribed (D4) */
			uac_cancelled(ps, reason);
		} else {
			/* timeout, deactivated, probation, giveup: subscribe again (RFC 6665
			 * §4.1.3) */
			uac_announce_gone(ps);
			uac_restart_later(ps);
			if (strcasecmp(reason, "deactivated") == 0 ||
			    strcasecmp(reason, "timeout") == 0)
				ps->due_ms = uv_now(p->loop);
		}
		free(copy);
		return;
	}
	int64_t old_expiry = ps->expires_at;
	if (exp > 0 && !ps->fetch) {
		ps->expires_at = wall_now() + exp;
		ps->due_ms = uv_now(p->loop) + (uint64_t)(exp * 1000.0 * REFRESH_MARGIN);
	}
	bool changed = ps->state != STORE_SUB_ACTIVE;
	if (strcasecmp(state, "active") == 0) {
		if (!ps->told_subscribed && !ps->fetch) {
			/* D2: the first active NOTIFY means authorised */
			send_presence(p, ps->org, ps->jid, "subscribed", PIDF_SHOW_NONE, NULL, NULL,
				      NULL);
			ps->told_subscribed = true;
		}
		ps->state = STORE_SUB_ACTIVE;
		if (later) {
			uac_deliver_later(ps, copy, blen);
			copy = NULL;
		} else {
			uac_deliver(ps, copy, blen);
		}
	}
	/* pending: answered, no stanza (D2). The store needs a write only when the state or
	 * the expiry moved: their CSeqs are not kept (a restarted gateway takes the next one) */
	if (changed || ps->expires_at - old_expiry > 60 || old_expiry - ps->expires_at > 60)
		persist(ps);
	free(copy);
}

static void respond_subscribe(struct presence *p, struct sip_stxn *st, int expires)
{
	struct sip_msg *resp = sip_stack_response(p->sip, st, 200, "OK");
	if (!resp)
		return;
	char ev[16];
	snprintf(ev, sizeof ev, "%d", expires);
	sip_msg_add_header(resp, "Expires", ev);
	sip_stxn_respond(st, resp);
}

/* D8: Event presence and an Accept we can satisfy. Answers and returns false if not. */
static bool subscribe_acceptable(struct presence *p, struct sip_stxn *st, struct sip_msg *req)
{
	const char *ev = sip_msg_event(req);
	char evtok[32] = "";
	if (ev)
		sip_hvalue_token(ev, evtok, sizeof evtok);
	if (strcasecmp(evtok, "presence") != 0) {
		struct sip_msg *resp = sip_stack_response(p->sip, st, 489, "Bad Event");
		if (resp) {
			sip_msg_add_header(resp, "Allow-Events", "presence");
			sip_stxn_respond(st, resp);
		}
		return false;
	}
	bool ok = true;
	for (int i = 0;; i++) {
		const char *a = sip_msg_header(req, "Accept", i);
		if (!a)
			break;
		ok = false;
		if (strcasestr(a, "application/pidf+xml") || strstr(a, "*/*") ||
		    strcasestr(a, "application/*")) {
			ok = true;
			break;
		}
	}
	if (!ok) {
		struct sip_msg *resp = sip_stack_response(p->sip, st, 406, "Not Acceptable");
		if (resp) {
			sip_msg_add_header(resp, "Accept", "application/pidf+xml");
			sip_stxn_respond(st, resp);
		}
	}
	return ok;
}

static void on_fetch_notify_response(void *arg, struct sip_msg *resp)
{
	(void)arg;
	(void)resp;
}

static void handle_subscribe(struct presence *p, struct sip_stxn *st, struct sip_msg *req)
{
	if (!subscribe_acceptable(p, st, req))
		return;
	int exp = sip_msg_expires(req);
	if (exp < 0)
		exp = DEFAULT_UAS_EXPIRES; /* D6 */
	if ((uint64_t)exp > p->conf->uas_max_expires_s)
		exp = (int)p->conf->uas_max_expires_s;

	if (sip_msg_to_tag(req)) {
		/* in-dialog: a refresh, or Expires: 0 to end it (D7) */
		struct sip_dialog *d = sip_stack_dialog_find(p->sip, req);
		char key[1024];
		struct psub *ps = NULL;
		if (d && sip_dialog_key(d, key, sizeof key) > 0) {
			struct sip_map_node *n = sip_map_find(&p->dialogs, key, strlen(key));
			ps = n ? sip_map_entry(n, struct psub, by_dialog) : NULL;
		}
		if (!ps || ps->dir != STORE_SUB_SIP_TO_XMPP || ps->ending) {
			sip_stxn_reply(st, 481, "Subscription does not exist");
			return;
		}
		if (sip_dialog_on_request(&ps->d, req) == PE_STATE) {
			sip_stxn_reply(st, 500, "CSeq out of order");
			return;
		}
		respond_subscribe(p, st, exp);
		if (exp == 0) {
			log_info(0, "presence_watcher_unsubscribed", "sip=%s jid=%s", ps->sip,
				 ps->jid);
			send_presence(p, ps->org, ps->jid, "unavailable", PIDF_SHOW_NONE, NULL,
				      NULL, NULL);
			if (!ps->pair_next && pair_find(p, ps->dir, ps->jid, ps->sip) == ps)
				send_presence(p, ps->org, ps->jid, "unsubscribe", PIDF_SHOW_NONE,
					      NULL, NULL, NULL);
			uas_end(ps, "timeout");
			return;
		}
		ps->expires_at = wall_now() + exp;
		ps->due_ms = uv_now(p->loop) + (uint64_t)exp * 1000;
		uas_notify(ps, NULL);
		return;
	}

	const char *ruri = sip_msg_ruri(req);
	char jid[JID_BUF], org[JID_BUF], tmp[JID_BUF];
	int r = addr_sip_to_jid(ruri, strlen(ruri), tmp, sizeof tmp, NULL);
	if (r < 0) {
		sip_stxn_reply(st, addr_status(r), NULL);
		return;
	}
	jid_normalize_bare(tmp, jid, sizeof jid);
	const char *fu = sip_msg_from_uri(req);
	if (!fu || addr_sip_to_jid(fu, strlen(fu), tmp, sizeof tmp, NULL) < 0 ||
	    jid_normalize_bare(tmp, org, sizeof org) != 0) {
		sip_stxn_reply(st, 400, "Bad From URI");
		return;
	}
	char aor[ADDR_URI_BUF];
	if (addr_jid_to_sip(org, strlen(org), ADDR_NO_GR, aor, sizeof aor) < 0) {
		sip_stxn_reply(st, 400, "Bad From URI");
		return;
	}
	if (exp == 0) {
		/* a fetch (E7): the state we have, then ask the partner only if we know nothing */
		struct sip_dialog d;
		if (sip_dialog_init_uas(&d, req, sip_stxn_local_tag(st), 0) != 0) {
			sip_stxn_reply(st, 400, "Missing Contact");
			return;
		}
		respond_subscribe(p, st, 0);
		char next[1024];
		struct sip_msg *n = sip_dialog_new_request(&d, "NOTIFY");
		if (n && sip_dialog_next_hop(&d, next, sizeof next) == 0 &&
		    contact_pidf(p, jid, &p->scratch) == 0) {
			sip_msg_add_header(n, "Event", "presence");
			sip_msg_add_header(n, "Subscription-State", "terminated;reason=timeout");
			sip_msg_set_body(n, "application/pidf+xml", buf_head(&p->scratch),
					 buf_len(&p->scratch));
			if (sip_stack_send(p->sip, n, next, on_fetch_notify_response, NULL, NULL) ==
			    0)
				p->stats.notify_out++;
		} else {
			sip_msg_free(n);
		}
		sip_dialog_deinit(&d);
		if (!contact_get(p, jid, false) && presence_user_added(p, org, jid))
			send_presence(p, org, jid, "probe", PIDF_SHOW_NONE, NULL, NULL, NULL);
		return;
	}
	struct psub *approved = pair_find(p, STORE_SUB_SIP_TO_XMPP, jid, aor);
	while (approved && approved->state != STORE_SUB_ACTIVE)
		approved = approved->pair_next;
	struct psub *ps = psub_new(p, STORE_SUB_SIP_TO_XMPP, jid, aor, org);
	if (sip_dialog_init_uas(&ps->d, req, sip_stxn_local_tag(st), 0) != 0) {
		psub_drop(ps);
		sip_stxn_reply(st, 400, "Missing Contact");
		return;
	}
	dialog_index(p, ps);
	ps->expires_at = wall_now() + exp;
	ps->due_ms = uv_now(p->loop) + (uint64_t)exp * 1000;
	if (approved)
		ps->state = STORE_SUB_ACTIVE;
	respond_subscribe(p, st, exp);
	log_info(0, "presence_watcher_subscribed", "sip=%s jid=%s state=%s", aor, jid,
		 approved ? "active" : "pending");
	uas_notify(ps, NULL); /* RFC 6665 §4.2.1.2: a NOTIFY at once */
	/* D6: the XMPP side decides; a subscription it already approved is answered at once
	 * by the partner's server, with the user's presence */
	send_presence(p, org, jid, "subscribe", PIDF_SHOW_NONE, NULL, NULL, NULL);
	/* a probe only where it is authorised: the partner's server answers anyone else's
	 * probe with `unsubscribed` (RFC 6121 §4.3.2), which would end this subscription */
	if (approved && !contact_get(p, jid, false))
		send_presence(p, org, jid, "probe", PIDF_SHOW_NONE, NULL, NULL, NULL);
}

bool presence_sip_request(struct presence *p, struct sip_stxn *st, struct sip_msg *req)
{
	const char *m = sip_msg_method(req);
	if (strcmp(m, "SUBSCRIBE") == 0) {
		sync_pidf(p);
		handle_subscribe(p, st, req);
	} else if (strcmp(m, "NOTIFY") == 0) {
		handle_notify(p, st, req); /* synchronises itself, past its fast path */
	} else {
		return false;
	}
	return true;
}

/* ---- from XMPP ---- */

static void on_ack_timer(uv_timer_t *t)
{
	struct presence *p = t->data;
	int r = store_flush(p->store);
	if (r) {
		/* nothing acknowledged until it is stored: the edge keeps the stanzas */
		uv_timer_start(&p->ack_timer, on_ack_timer, 500, 0);
		return;
	}
	for (size_t i = 0; i < p->nacks; i++)
		link_peer_processed_in(p->acks[i].peer, p->acks[i].epoch, p->acks[i].seq);
	p->nacks = 0;
}

static void ack_later(struct presence *p, struct link_peer *peer, uint64_t seq)
{
	if (p->nacks == MAX_ACKS) {
		on_ack_timer(&p->ack_timer);
		if (p->nacks == MAX_ACKS) {
			link_peer_processed(peer, seq); /* the store is failing: do not stall */
			return;
		}
	}
	p->acks[p->nacks++] = (struct ack){peer, peer->in.peer_epoch, seq};
	if (!uv_is_active((uv_handle_t *)&p->ack_timer))
		uv_timer_start(&p->ack_timer, on_ack_timer, 2, 0);
}

static struct psub *uac_find(struct presence *p, const char *jid, const char *sip)
{
	struct psub *ps = pair_find(p, STORE_SUB_XMPP_TO_SIP, jid, sip);
	while (ps && ps->fetch)
		ps = ps->pair_next;
	return ps;
}

void presence_from_xmpp(struct presence *p, struct link_peer *peer, uint64_t seq,
			const Parley__Link__Stanza *st)
{
	char jid[JID_BUF], org[JID_BUF], res[JID_BUF], aor[ADDR_URI_BUF];
	const char *type = st->type ? st->type : "";
	sync_pidf(p);
	if (jid_normalize_bare(st->from, jid, sizeof jid) ||
	    jid_normalize_bare(st->to, org, sizeof org) ||
	    addr_jid_to_sip(org, strlen(org), ADDR_NO_GR, aor, sizeof aor) < 0 ||
	    !strchr(org, '@')) {
		link_peer_processed(peer, seq);
		return;
	}
	resource_of(st->from, res, sizeof res);
	struct psub *ps = uac_find(p, jid, aor);

	if (strcmp(type, "subscribe") == 0) {
		if (ps && ps->state == STORE_SUB_ACTIVE) {
			/* already authorised: say so again (RFC 6121 §3.1.3) */
			send_presence(p, org, jid, "subscribed", PIDF_SHOW_NONE, NULL, NULL, NULL);
		} else if (!ps) {
			ps = psub_new(p, STORE_SUB_XMPP_TO_SIP, jid, aor, org);
			log_info(0, "presence_subscribe", "jid=%s sip=%s", jid, aor);
			uac_subscribe(ps, refresh_s(p)); /* D1 */
		} else if (!ps->req && !ps->d.remote_target) {
			uac_subscribe(ps, refresh_s(p)); /* waiting for a retry: now */
		}
	} else if (strcmp(type, "unsubscribe") == 0) {
		/* D5: Expires: 0 in the dialog, then unsubscribed */
		if (ps) {
			log_info(0, "presence_unsubscribe", "jid=%s sip=%s", jid, aor);
			uac_end(ps);
		}
		send_presence(p, org, jid, "unsubscribed", PIDF_SHOW_NONE, NULL, NULL, NULL);
	} else if (strcmp(type, "subscribed") == 0) {
		/* the partner user approved an organisation user's SUBSCRIBE (D6) */
		for (struct psub *w = pair_find(p, STORE_SUB_SIP_TO_XMPP, jid, aor); w;
		     w = w->pair_next) {
			if (w->state != STORE_SUB_ACTIVE && !w->ending) {
				w->state = STORE_SUB_ACTIVE;
				uas_notify(w, NULL);
				persist(w);
			}
		}
	} else if (strcmp(type, "unsubscribed") == 0) {
		/* refused or withdrawn: terminated;reason=rejected (D6) */
		struct psub *w = pair_find(p, STORE_SUB_SIP_TO_XMPP, jid, aor);
		while (w) {
			struct psub *next = w->pair_next;
			if (!w->ending)
				uas_end(w, "rejected");
			w = next;
		}
	} else if (strcmp(type, "probe") == 0) {
		/* E7: a fetch in a new dialog, only for an authorised subscriber; D3: a
		 * subscription waiting to be retried is tried now */
		if (ps && ps->state == STORE_SUB_ACTIVE) {
			log_info(0, "presence_fetch", "jid=%s sip=%s", jid, aor);
			struct psub *f = psub_new(p, STORE_SUB_XMPP_TO_SIP, jid, aor, org);
			f->fetch = true;
			uac_subscribe(f, 0);
		}
		if (ps && !ps->req && !ps->d.remote_target)
			uac_subscribe(ps, refresh_s(p));
	} else if (!*type || strcmp(type, "unavailable") == 0) {
		/* E1: available / unavailable -> NOTIFY to the watchers of this pair only (E8) */
		bool avail = !*type;
		enum pidf_show show = PIDF_SHOW_NONE;
		if (st->show)
			pidf_show_parse(st->show, &show);
		int prio = st->priority;
		if (contact_update(p, jid, res, avail, show, st->status, st->lang,
				   st->has_priority ? &prio : NULL, true)) {
			notify_watchers(p, jid, aor);
			struct xcontact *c = contact_get(p, jid, false);
			if (p->conf->publish && c)
				contact_publish(c, false); /* D9 */
		}
		if (ps && !ps->req && !ps->d.remote_target && avail)
			uac_subscribe(ps, refresh_s(p)); /* D3 */
	}
	/* error and anything else: nothing to do */
	ack_later(p, peer, seq);
}

void presence_revoke(struct presence *p,
		     bool (*allowed)(void *arg, const char *org_jid, const char *partner_jid),
		     void *arg)
{
	sync_pidf(p);
	for (struct psub *ps = p->head, *next; ps; ps = next) {
		next = ps->next;
		if (ps->fetch || ps->ending || allowed(arg, ps->org, ps->jid))
			continue;
		log_info(0, "presence_revoked", "dir=%s jid=%s sip=%s",
			 ps->dir == STORE_SUB_XMPP_TO_SIP ? "xmpp_to_sip" : "sip_to_xmpp", ps->jid,
			 ps->sip);
		if (ps->dir == STORE_SUB_XMPP_TO_SIP) {
			/* RFC 6121 §3.2: the contact cancels the subscription */
			char org[JID_BUF], jid[JID_BUF];
			snprintf(org, sizeof org, "%s", ps->org);
			snprintf(jid, sizeof jid, "%s", ps->jid);
			uac_end(ps);
			send_presence(p, org, jid, "unsubscribed", PIDF_SHOW_NONE, NULL, NULL, NULL);
		} else {
			/* RFC 6665 §4.2.2: rejected, the authorisation policy changed; and the
			 * organisation user no longer asks for the partner user's presence */
			send_presence(p, ps->org, ps->jid, "unsubscribe", PIDF_SHOW_NONE, NULL, NULL,
				      NULL);
			uas_end(ps, "rejected");
		}
	}
}

bool presence_user_added(const struct presence *p, const char *org_jid, const char *partner_jid)
{
	char jid[JID_BUF], org[JID_BUF], aor[ADDR_URI_BUF];
	if (jid_normalize_bare(partner_jid, jid, sizeof jid) ||
	    jid_normalize_bare(org_jid, org, sizeof org) ||
	    addr_jid_to_sip(org, strlen(org), ADDR_NO_GR, aor, sizeof aor) < 0)
		return false;
	for (struct psub *w = pair_find(p, STORE_SUB_SIP_TO_XMPP, jid, aor); w; w = w->pair_next)
		if (w->state == STORE_SUB_ACTIVE)
			return true;
	return false;
}

/* ---- time ---- */

static void on_tick(uv_timer_t *t)
{
	struct presence *p = t->data;
	sync_pidf(p);
	if (p->out_head)
		waiting_flush(p);
	uint64_t now = uv_now(p->loop);
	unsigned started = 0;
	for (struct psub *ps = p->head, *next; ps; ps = next) {
		next = ps->next;
		if (ps->undelivered && !ps->fetch)
			uac_deliver(ps, ps->undelivered, ps->undelivered_len);
		if (!ps->due_ms || ps->due_ms > now || ps->req || ps->ending)
			continue;
		if (ps->fetch) {
			psub_drop(ps); /* its NOTIFY never came */
			continue;
		}
		if (ps->dir == STORE_SUB_XMPP_TO_SIP) {
			/* a burst (a restart after a long stop finds them all due) goes out over
			 * several ticks: 100 000 SUBSCRIBEs at once overflow the pool flow's output
			 * bound and most fail (make bench, presence); the rest stay due */
			if (started++ >= MAX_SUBSCRIBES_PER_TICK)
				continue;
			uac_subscribe(ps, refresh_s(p)); /* refresh, or a retry */
		} else {
			log_info(0, "presence_watcher_expired", "sip=%s jid=%s", ps->sip, ps->jid);
			uas_end(ps, "timeout");
		}
	}
	if (p->conf->publish)
		sip_map_foreach(&p->contacts, refresh_publication, &now);
}

/* ---- start-up ---- */

static void load_sub(void *arg, const struct store_sub *s)
{
	struct presence *p = arg;
	char org[JID_BUF];
	if (addr_sip_to_jid(s->sip_uri, strlen(s->sip_uri), org, sizeof org, NULL) < 0)
		return;
	struct psub *ps = psub_new(p, s->dir, s->jid, s->sip_uri, org);
	ps->state = s->state;
	ps->told_subscribed = s->state == STORE_SUB_ACTIVE;
	ps->expires_at = s->expires_at;
	uint64_t now = uv_now(p->loop);
	if (s->call_id && s->local_tag) {
		ps->d.call_id = dup0(s->call_id);
		ps->d.local_tag = dup0(s->local_tag);
		ps->d.remote_tag = dup0(s->remote_tag);
		ps->d.local_uri = dup0(s->local_uri);
		ps->d.remote_uri = dup0(s->remote_uri);
		ps->d.remote_target = dup0(s->remote_target);
		ps->d.local_cseq = s->local_cseq + CSEQ_STRIDE;
		ps->d.remote_cseq = 0; /* not kept current: accept what comes next */
		for (const char *r = s->routes; r && *r && ps->d.nroute < SIP_DIALOG_MAX_ROUTES;) {
			size_t n = strcspn(r, "\n");
			ps->d.route[ps->d.nroute] = strndup(r, n);
			if (!ps->d.route[ps->d.nroute++])
				abort();
			r += n + (r[n] == '\n');
		}
		dialog_index(p, ps);
	}
	int64_t left = s->expires_at - wall_now();
	if (ps->dir == STORE_SUB_SIP_TO_XMPP) {
		if (!ps->d.remote_target) {
			psub_drop(ps);
			return;
		}
		ps->due_ms = now + (uint64_t)(left > 0 ? left : 0) * 1000;
	} else if (!ps->d.remote_target || left <= 0) {
		ps->due_ms = now + 100; /* no live dialog: a new SUBSCRIBE soon */
		if (!ps->d.remote_target) {
			dialog_unindex(p, ps);
			sip_dialog_deinit(&ps->d);
		}
	} else {
		/* resume the dialog; refresh at the usual point of what is left */
		ps->due_ms = now + (uint64_t)((double)left * 1000.0 * REFRESH_MARGIN);
	}
}

static void load_pres(void *arg, const char *contact, const char *resource, const void *data,
		      size_t len, int64_t updated_at)
{
	struct presence *p = arg;
	(void)updated_at;
	char blob[8192];
	if (len >= sizeof blob)
		return;
	memcpy(blob, data, len);
	blob[len] = 0;
	char *f[5] = {blob, NULL, NULL, NULL, NULL};
	for (int i = 1; i < 5; i++) {
		char *nl = f[i - 1] ? strchr(f[i - 1], '\n') : NULL;
		if (!nl)
			return;
		*nl = 0;
		f[i] = nl + 1;
	}
	int prio = atoi(f[2]);
	contact_update(p, contact, resource, true, (enum pidf_show)atoi(f[0]), f[4], f[3],
		       atoi(f[1]) ? &prio : NULL, false);
}

struct presence *presence_new(uv_loop_t *loop, const struct presence_conf *conf,
			      struct sip_stack *sip, struct edgelink *edges, struct store *st)
{
	struct presence *p = calloc(1, sizeof *p);
	if (!p)
		abort();
	p->loop = loop;
	p->conf = conf;
	p->sip = sip;
	p->edges = edges;
	p->store = st;
	sip_map_init(&p->dialogs);
	sip_map_init(&p->pairs);
	sip_map_init(&p->contacts);
	p->out_tail = &p->out_head;
	buf_init(&p->scratch, 1024 * 1024);
	p->acks = calloc(MAX_ACKS, sizeof *p->acks);
	if (!p->acks)
		abort();
	uv_timer_init(loop, &p->tick);
	uv_timer_init(loop, &p->ack_timer);
	p->tick.data = p->ack_timer.data = p;
	if (store_sub_load(st, load_sub, p) != 0 || store_pres_load(st, load_pres, p) != 0) {
		log_error(0, "presence_load_failed", "why=\"the store could not be read\"");
	}
	if (conf->pidf_thread) {
		int r = worker_new(loop, "parley-pidf", pidf_thread_done, &p->pidf_thread);
		if (r)
			log_warn(0, "presence_pidf_thread", "err=\"%s\" why=\"PIDF parsed in the loop\"",
				 pe_strerror(r));
	}
	log_info(0, "presence_loaded", "uac=%llu uas=%llu contacts=%zu pidf_thread=%d",
		 (unsigned long long)p->stats.subs_uac, (unsigned long long)p->stats.subs_uas,
		 p->contacts.n, p->pidf_thread != NULL);
	uv_timer_start(&p->tick, on_tick, TICK_MS, TICK_MS);
	uv_unref((uv_handle_t *)&p->tick);
	return p;
}

static void on_tick_closed(uv_handle_t *h)
{
	(void)h;
}
static void on_ack_closed(uv_handle_t *h)
{
	free(h->data);
}

static void free_contact(struct sip_map_node *n, void *arg)
{
	struct presence *p = arg;
	contact_free(p, sip_map_entry(n, struct xcontact, node));
}

void presence_free(struct presence *p)
{
	if (!p)
		return;
	worker_free(p->pidf_thread); /* delivers what it has first */
	p->pidf_thread = NULL;
	/* commit what was decided, then tell the link (the stanzas are processed) */
	on_ack_timer(&p->ack_timer);
	while (p->head) {
		struct psub *ps = p->head;
		if (ps->req) {
			sip_stack_abandon(ps->req);
			ps->req = NULL;
		}
		psub_drop(ps);
	}
	while (p->zombies) {
		sip_stack_abandon(p->zombies->req);
		zombie_free(p->zombies);
	}
	sip_map_foreach(&p->contacts, free_contact, p);
	if (p->nout)
		log_warn(0, "presence_lost", "count=%zu why=\"subscription stanzas no edge took before "
			 "the stop\"", p->nout);
	while (p->out_head) {
		struct outmsg *m = p->out_head;
		p->out_head = m->next;
		outmsg_free(m);
	}
	sip_map_deinit(&p->dialogs);
	sip_map_deinit(&p->pairs);
	sip_map_deinit(&p->contacts);
	buf_deinit(&p->scratch);
	free(p->acks);
	uv_close((uv_handle_t *)&p->tick, on_tick_closed);
	uv_close((uv_handle_t *)&p->ack_timer, on_ack_closed); /* frees p */
}

void presence_set_policy(struct presence *p, const Parley__Link__PolicySnapshot *snap)
{
	sync_pidf(p); /* NOTIFYs received under the old policy are shown under it */
	p->pol = snap;
}

const struct presence_stats *presence_stats(const struct presence *p)
{
	return &p->stats;
}

void presence_foreach_sub(const struct presence *p,
			  void (*cb)(void *arg, const struct presence_sub_info *si), void *arg)
{
	/* fetches (E7) are one-shot dialogs, and dead ones are on their way out: neither is a
	 * subscription an operator would recognise */
	for (const struct psub *ps = p->head; ps; ps = ps->next) {
		if (ps->fetch || ps->dead)
			continue;
		struct presence_sub_info si = {.dir = ps->dir,
					       .jid = ps->jid,
					       .sip = ps->sip,
					       .state = ps->state,
					       .expires_at = ps->expires_at};
		cb(arg, &si);
	}
}
