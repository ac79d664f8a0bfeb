/* SQLite backend of the gateway's store: a coalescing write-behind queue committed in batches. */
#include "store.h"

#include "err.h"
#include "log.h"
#include "sip_map.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define STORE_SCHEMA_VERSION 2
#define STORE_MAX_STR (64 * 1024)
#define STORE_MAX_BLOB (1024 * 1024)
#define STORE_RETRY_MAX_MS 5000

/*
 * Why a queue in front of SQLite: every autocommit write is its own WAL commit (~12 us here),
 * while writes sharing one transaction cost ~1 us each. The caller holds the live state in
 * memory, so nothing reads the queue back except the loads, which flush first.
 *
 * Why the queue is a hash map plus a list: the map coalesces (a refresh every few minutes for
 * thousands of subscriptions, a presence flapping) and the list keeps the order operations
 * arrived in. A repeated operation on a row is moved to the tail rather than updated in
 * place, so a "delete every resource of a contact" queued in between keeps its place
 * relative to the puts around it: the last operation touching a row is always the last one
 * executed for it.
 */
enum op_kind {
	OP_SUB_PUT,
	OP_SUB_DEL,
	OP_PRES_PUT,
	OP_PRES_DEL,
	OP_PRES_DEL_ALL, /* key "A" contact: all resources */
	OP_THREAD_PUT,
	OP_THREAD_DEL,
	OP_PARTNER_PUT,
	OP_PARTNER_DEL,
};

struct op {
	struct sip_map_node node; /* key bytes are in mem[] */
	struct op *prev, *next;	  /* arrival order */
	enum op_kind kind;
	size_t size; /* bytes counted against max_queue_bytes */
	union {
		struct store_sub sub;
		struct {
			const char *contact, *resource;
			const void *data;
			size_t len;
			int64_t updated_at;
		} pres;
		struct {
			const char *thread, *call_id, *jid, *sip_uri;
			int64_t expires_at;
		} thr;
		struct {
			const char *domain, *settings;
			int64_t updated_at;
		} par;
	} u;
	/* Key (a table letter, then the key strings with their NULs), then the other strings and
	 * the blob. The key strings double as the row's strings, so each is stored once. */
	char mem[];
};

/* Portable SQL: "?" placeholders are SQLite's; a PostgreSQL backend numbers them ($1...). */
enum st_id {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_SUB_PUT,
	ST_SUB_DEL,
	ST_SUB_LOAD,
	ST_PRES_PUT,
	ST_PRES_DEL,
	ST_PRES_DEL_ALL,
	ST_PRES_LOAD,
	ST_THREAD_PUT,
	ST_THREAD_DEL,
	ST_THREAD_EXPIRE,
	ST_THREAD_LOAD,
	ST_PARTNER_PUT,
	ST_PARTNER_DEL,
	ST_PARTNER_LOAD,
	ST__COUNT
};

static const char *const st_sql[ST__COUNT] = {
    /* IMMEDIATE takes the write lock at once, so a busy database fails before any work. */
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SUB_PUT] = "INSERT INTO subscription (dir, jid, sip_uri, state, call_id, local_tag, "
		   "remote_tag, local_uri, remote_uri, remote_target, routes, local_cseq, "
		   "remote_cseq, expires_at, updated_at, watcher) "
		   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
		   "ON CONFLICT (dir, jid, sip_uri, watcher) DO UPDATE SET state = excluded.state, "
		   "call_id = excluded.call_id, local_tag = excluded.local_tag, "
		   "remote_tag = excluded.remote_tag, local_uri = excluded.local_uri, "
		   "remote_uri = excluded.remote_uri, remote_target = excluded.remote_target, "
		   "routes = excluded.routes, local_cseq = excluded.local_cseq, "
		   "remote_cseq = excluded.remote_cseq, expires_at = excluded.expires_at, "
		   "updated_at = excluded.updated_at",
    [ST_SUB_DEL] = "DELETE FROM subscription WHERE dir = ? AND jid = ? AND sip_uri = ? AND "
		   "watcher = ?",
    [ST_SUB_LOAD] = "SELECT dir, jid, sip_uri, state, call_id, local_tag, remote_tag, "
		    "local_uri, remote_uri, remote_target, routes, local_cseq, remote_cseq, "
		    "expires_at, updated_at, watcher FROM subscription",
    [ST_PRES_PUT] = "INSERT INTO presence (contact, resource, data, updated_at) "
		    "VALUES (?, ?, ?, ?) ON CONFLICT (contact, resource) DO UPDATE SET "
		    "data = excluded.data, updated_at = excluded.updated_at",
    [ST_PRES_DEL] = "DELETE FROM presence WHERE contact = ? AND resource = ?",
    [ST_PRES_DEL_ALL] = "DELETE FROM presence WHERE contact = ?",
    [ST_PRES_LOAD] = "SELECT contact, resource, data, updated_at FROM presence",
    [ST_THREAD_PUT] = "INSERT INTO thread_call (thread, call_id, jid, sip_uri, expires_at) "
		      "VALUES (?, ?, ?, ?, ?) ON CONFLICT (thread) DO UPDATE SET "
		      "call_id = excluded.call_id, jid = excluded.jid, "
		      "sip_uri = excluded.sip_uri, expires_at = excluded.expires_at",
    [ST_THREAD_DEL] = "DELETE FROM thread_call WHERE thread = ?",
    [ST_THREAD_EXPIRE] = "DELETE FROM thread_call WHERE expires_at <= ?",
    [ST_THREAD_LOAD] = "SELECT thread, call_id, jid, sip_uri, expires_at FROM thread_call",
    [ST_PARTNER_PUT] = "INSERT INTO partner (domain, settings, updated_at) VALUES (?, ?, ?) "
		       "ON CONFLICT (domain) DO UPDATE SET settings = excluded.settings, "
		       "updated_at = excluded.updated_at",
    [ST_PARTNER_DEL] = "DELETE FROM partner WHERE domain = ?",
    [ST_PARTNER_LOAD] = "SELECT domain, settings, updated_at FROM partner ORDER BY domain",
};

/*
 * Schema migrations: migrations[v] takes version v to v + 1. Types are the portable subset;
 * BYTEA is PostgreSQL's binary type and has NUMERIC affinity in SQLite, which stores a bound
 * blob unchanged. uint32 CSeqs are BIGINT because PostgreSQL has no unsigned INTEGER.
 */
static const char *const migrations[STORE_SCHEMA_VERSION] = {
    "CREATE TABLE subscription ("
    " dir INTEGER NOT NULL, jid TEXT NOT NULL, sip_uri TEXT NOT NULL,"
    " watcher TEXT NOT NULL,"
    " state INTEGER NOT NULL,"
    " call_id TEXT, local_tag TEXT, remote_tag TEXT, local_uri TEXT, remote_uri TEXT,"
    " remote_target TEXT, routes TEXT,"
    " local_cseq BIGINT NOT NULL, remote_cseq BIGINT NOT NULL,"
    " expires_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,"
    " PRIMARY KEY (dir, jid, sip_uri, watcher));"
    "CREATE TABLE presence ("
    " contact TEXT NOT NULL, resource TEXT NOT NULL, data BYTEA NOT NULL,"
    " updated_at BIGINT NOT NULL,"
    " PRIMARY KEY (contact, resource));"
    "CREATE TABLE thread_call ("
    " thread TEXT NOT NULL PRIMARY KEY, call_id TEXT NOT NULL, jid TEXT, sip_uri TEXT,"
    " expires_at BIGINT NOT NULL);",
    /* 1 -> 2: federation partners managed with parleyctl */
    "CREATE TABLE partner ("
    " domain TEXT NOT NULL PRIMARY KEY, settings TEXT NOT NULL,"
    " updated_at BIGINT NOT NULL);",
};

struct store {
	sqlite3 *db;
	sqlite3_stmt *st[ST__COUNT];
	uv_loop_t *loop;
	uv_timer_t timer; /* pending batch or retry; only with a loop */
	struct sip_map pending;
	struct op *head, *tail;
	uint32_t flush_ms, max_batch, max_queue;
	uint64_t max_queue_bytes;
	unsigned failures; /* consecutive failed commits */
	bool in_load;
	struct store_stats stats;
	char file[256];	  /* the path, escaped for logs */
	char errmsg[256]; /* SQLite's message for the last failure */
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* For failures at run time: the caller decides whether to retry. */
static int map_rc(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return UV_EBUSY;
	case SQLITE_FULL:
		return UV_ENOSPC;
	case SQLITE_READONLY:
		return UV_EROFS;
	case SQLITE_NOMEM:
		return PE_NOMEM;
	default:
		return UV_EIO;
	}
}

/* For failures while opening: most are the operator's to fix in the configuration. */
static int map_open_rc(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_CANTOPEN:
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_AUTH:
	case SQLITE_NOTADB:
	case SQLITE_CORRUPT:
		return PE_CONFIG;
	default:
		return map_rc(rc);
	}
}

static void keep_errmsg(struct store *s)
{
	snprintf(s->errmsg, sizeof s->errmsg, "%s", sqlite3_errmsg(s->db));
}

/* ---- the queue ---- */

static void list_unlink(struct store *s, struct op *o)
{
	if (o->prev)
		o->prev->next = o->next;
	else
		s->head = o->next;
	if (o->next)
		o->next->prev = o->prev;
	else
		s->tail = o->prev;
	o->prev = o->next = NULL;
}

static void list_append(struct store *s, struct op *o)
{
	o->next = NULL;
	o->prev = s->tail;
	if (s->tail)
		s->tail->next = o;
	else
		s->head = o;
	s->tail = o;
}

static void drop(struct store *s, struct op *o)
{
	list_unlink(s, o);
	sip_map_remove(&s->pending, &o->node);
	s->stats.queued--;
	s->stats.queued_bytes -= o->size;
	free(o);
}

static void drop_all(struct store *s)
{
	while (s->head)
		drop(s, s->head);
}

static size_t slen(const char *p)
{
	return p ? strlen(p) + 1 : 0;
}

/* Copies p (with its NUL) to *w and advances *w; NULL stays NULL. */
static const char *put_str(char **w, const char *p)
{
	if (!p)
		return NULL;
	size_t n = strlen(p) + 1;
	char *d = *w;
	memcpy(d, p, n);
	*w += n;
	return d;
}

static bool str_ok(const char *p)
{
	return !p || strnlen(p, STORE_MAX_STR + 1) <= STORE_MAX_STR;
}

static struct op *op_new(enum op_kind kind, size_t bytes)
{
	struct op *o = malloc(sizeof *o + bytes);
	if (!o)
		return NULL;
	memset(o, 0, sizeof *o);
	o->kind = kind;
	o->size = sizeof *o + bytes;
	return o;
}

static void on_timer(uv_timer_t *t);

/* With a loop: commit now if the batch is full (unless commits are failing: the retry timer
 * paces those), else make sure the timer will. */
static void schedule(struct store *s)
{
	if (!s->loop || !s->stats.queued)
		return;
	if (s->stats.queued >= s->max_batch && !s->failures && !s->in_load) {
		(void)store_flush(s); /* a failure is logged, counted and re-armed there */
		return;
	}
	if (!uv_is_active((uv_handle_t *)&s->timer))
		uv_timer_start(&s->timer, on_timer, s->flush_ms, 0);
}

/* Queues o, replacing a queued operation on the same row (klen key bytes at o->mem). Takes
 * o in every case. */
static int enqueue(struct store *s, struct op *o, size_t klen)
{
	struct sip_map_node *n = sip_map_find(&s->pending, o->mem, klen);
	struct op *old = n ? sip_map_entry(n, struct op, node) : NULL;
	uint64_t bytes = s->stats.queued_bytes - (old ? old->size : 0) + o->size;
	if ((!old && s->stats.queued >= s->max_queue) || bytes > s->max_queue_bytes) {
		s->stats.rejected++;
		free(o);
		return PE_TOOBIG;
	}
	if (old) {
		drop(s, old);
		s->stats.coalesced++;
	}
	int r = sip_map_insert(&s->pending, &o->node, o->mem, klen);
	if (r && !s->pending.nb) {
		free(o);
		return PE_NOMEM;
	}
	list_append(s, o);
	s->stats.queued++;
	s->stats.queued_bytes += o->size;
	schedule(s);
	return 0;
}

int store_sub_put(struct store *s, const struct store_sub *sub)
{
	if (!sub || !sub->jid || !sub->sip_uri ||
	    (sub->dir != STORE_SUB_XMPP_TO_SIP && sub->dir != STORE_SUB_SIP_TO_XMPP) ||
	    sub->state < STORE_SUB_PENDING || sub->state > STORE_SUB_TERMINATED)
		return PE_INVAL;
	const char *watcher = sub->watcher ? sub->watcher : "";
	const char *strs[] = {sub->jid,	       sub->sip_uri,	   watcher,	 sub->call_id,
			      sub->local_tag,  sub->remote_tag,	   sub->local_uri,
			      sub->remote_uri, sub->remote_target, sub->routes};
	size_t bytes = 2;
	for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
		if (!str_ok(strs[i]))
			return PE_TOOBIG;
		bytes += slen(strs[i]);
	}
	struct op *o = op_new(OP_SUB_PUT, bytes);
	if (!o)
		return PE_NOMEM;
	char *w = o->mem;
	*w++ = 'S';
	*w++ = (char)sub->dir;
	o->u.sub = *sub;
	o->u.sub.jid = put_str(&w, sub->jid);
	o->u.sub.sip_uri = put_str(&w, sub->sip_uri);
	o->u.sub.watcher = put_str(&w, watcher);
	size_t klen = (size_t)(w - o->mem) - 1; /* the key ends before watcher's NUL */
	o->u.sub.call_id = put_str(&w, sub->call_id);
	o->u.sub.local_tag = put_str(&w, sub->local_tag);
	o->u.sub.remote_tag = put_str(&w, sub->remote_tag);
	o->u.sub.local_uri = put_str(&w, sub->local_uri);
	o->u.sub.remote_uri = put_str(&w, sub->remote_uri);
	o->u.sub.remote_target = put_str(&w, sub->remote_target);
	o->u.sub.routes = put_str(&w, sub->routes);
	return enqueue(s, o, klen);
}

int store_sub_del(struct store *s, int dir, const char *jid, const char *sip_uri,
		  const char *watcher)
{
	if (!jid || !sip_uri || (dir != STORE_SUB_XMPP_TO_SIP && dir != STORE_SUB_SIP_TO_XMPP))
		return PE_INVAL;
	if (!watcher)
		watcher = "";
	if (!str_ok(jid) || !str_ok(sip_uri) || !str_ok(watcher))
		return PE_TOOBIG;
	struct op *o = op_new(OP_SUB_DEL, 2 + slen(jid) + slen(sip_uri) + slen(watcher));
	if (!o)
		return PE_NOMEM;
	char *w = o->mem;
	*w++ = 'S';
	*w++ = (char)dir;
	o->u.sub.dir = dir;
	o->u.sub.jid = put_str(&w, jid);
	o->u.sub.sip_uri = put_str(&w, sip_uri);
	o->u.sub.watcher = put_str(&w, watcher);
	return enqueue(s, o, (size_t)(w - o->mem) - 1);
}

int store_pres_put(struct store *s, const char *contact, const char *resource, const void *data,
		   size_t len, int64_t updated_at)
{
	if (!contact || !resource || (len && !data))
		return PE_INVAL;
	if (!str_ok(contact) || !str_ok(resource) || len > STORE_MAX_BLOB)
		return PE_TOOBIG;
	struct op *o = op_new(OP_PRES_PUT, 1 + slen(contact) + slen(resource) + len);
	if (!o)
		return PE_NOMEM;
	char *w = o->mem;
	*w++ = 'P';
	o->u.pres.contact = put_str(&w, contact);
	o->u.pres.resource = put_str(&w, resource);
	size_t klen = (size_t)(w - o->mem) - 1;
	if (len)
		memcpy(w, data, len);
	o->u.pres.data = w; /* never NULL, so an empty blob binds as a blob, not NULL */
	o->u.pres.len = len;
	o->u.pres.updated_at = updated_at;
	return enqueue(s, o, klen);
}

int store_pres_del(struct store *s, const char *contact, const char *resource)
{
	if (!contact)
		return PE_INVAL;
	if (!str_ok(contact) || !str_ok(resource))
		return PE_TOOBIG;
	struct op *o =
	    op_new(resource ? OP_PRES_DEL : OP_PRES_DEL_ALL, 1 + slen(contact) + slen(resource));
	if (!o)
		return PE_NOMEM;
	char *w = o->mem;
	*w++ = resource ? 'P' : 'A';
	o->u.pres.contact = put_str(&w, contact);
	o->u.pres.resource = put_str(&w, resource);
	return enqueue(s, o, (size_t)(w - o->mem) - 1);
}

int store_thread_put(struct store *s, const char *thread, const char *call_id, const char *jid,
		     const char *sip_uri, int64_t expires_at)
{
	if (!thread || !call_id)
		return PE_INVAL;
	if (!str_ok(thread) || !str_ok(call_id) || !str_ok(jid) || !str_ok(sip_uri))
		return PE_TOOBIG;
	struct op *o =
	    op_new(OP_THREAD_PUT, 1 + slen(thread) + slen(call_id) + slen(jid) + slen(sip_uri));
	if (!o)
		return PE_NOMEM;
	char *w = o->mem;
	*w++ = 'T';
	o->u.thr.thread = put_str(&w, thread);
	size_t klen = (size_t)(w - o->mem) - 1;
	o->u.thr.call_id = put_str(&w, call_id);
	o->u.thr.jid = put_str(&w, jid);
	o->u.thr.sip_uri = put_str(&w, sip_uri);
	o->u.thr.expires_at = expires_at;
	return enqueue(s, o, klen);
}

int store_thread_del(struct store *s, const char *thread)
{
	if (!thread)
		return PE_INVAL;
	if (!str_ok(thread))
		return PE_TOOBIG;
	struct op *o = op_new(OP_THREAD_DEL, 1 + slen(thread));
	if (!o)
		return PE_NOMEM;
	char *w = o->mem;
	*w++ = 'T';
	o->u.thr.thread = put_str(&w, thread);
	return enqueue(s, o, (size_t)(w - o->mem) - 1);
}

int store_partner_put(struct store *s, const char *domain, const char *settings, int64_t updated_at)
{
	if (!domain || !settings)
		return PE_INVAL;
	if (!str_ok(domain) || !str_ok(settings))
		return PE_TOOBIG;
	struct op *o = op_new(OP_PARTNER_PUT, 1 + slen(domain) + slen(settings));
	if (!o)
		return PE_NOMEM;
	char *w = o->mem;
	*w++ = 'R';
	o->u.par.domain = put_str(&w, domain);
	size_t klen = (size_t)(w - o->mem) - 1;
	o->u.par.settings = put_str(&w, settings);
	o->u.par.updated_at = updated_at;
	return enqueue(s, o, klen);
}

int store_partner_del(struct store *s, const char *domain)
{
	if (!domain)
		return PE_INVAL;
	if (!str_ok(domain))
		return PE_TOOBIG;
	struct op *o = op_new(OP_PARTNER_DEL, 1 + slen(domain));
	if (!o)
		return PE_NOMEM;
	char *w = o->mem;
	*w++ = 'R';
	o->u.par.domain = put_str(&w, domain);
	return enqueue(s, o, (size_t)(w - o->mem) - 1);
}

/* ---- commits ---- */

/* Strings live in the queued op until after the step, hence SQLITE_STATIC. */
static void bind_str(sqlite3_stmt *st, int i, const char *p)
{
	if (p)
		sqlite3_bind_text(st, i, p, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

static int run(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? SQLITE_DONE : rc;
}

static int exec_op(struct store *s, const struct op *o)
{
	sqlite3_stmt *st;
	switch (o->kind) {
	case OP_SUB_PUT: {
		const struct store_sub *u = &o->u.sub;
		st = s->st[ST_SUB_PUT];
		sqlite3_bind_int(st, 1, u->dir);
		bind_str(st, 2, u->jid);
		bind_str(st, 3, u->sip_uri);
		sqlite3_bind_int(st, 4, u->state);
		bind_str(st, 5, u->call_id);
		bind_str(st, 6, u->local_tag);
		bind_str(st, 7, u->remote_tag);
		bind_str(st, 8, u->local_uri);
		bind_str(st, 9, u->remote_uri);
		bind_str(st, 10, u->remote_target);
		bind_str(st, 11, u->routes);
		sqlite3_bind_int64(st, 12, u->local_cseq);
		sqlite3_bind_int64(st, 13, u->remote_cseq);
		sqlite3_bind_int64(st, 14, u->expires_at);
		sqlite3_bind_int64(st, 15, u->updated_at);
		bind_str(st, 16, u->watcher);
		break;
	}
	case OP_SUB_DEL:
		st = s->st[ST_SUB_DEL];
		sqlite3_bind_int(st, 1, o->u.sub.dir);
		bind_str(st, 2, o->u.sub.jid);
		bind_str(st, 3, o->u.sub.sip_uri);
		bind_str(st, 4, o->u.sub.watcher);
		break;
	case OP_PRES_PUT:
		st = s->st[ST_PRES_PUT];
		bind_str(st, 1, o->u.pres.contact);
		bind_str(st, 2, o->u.pres.resource);
		sqlite3_bind_blob(st, 3, o->u.pres.data, (int)o->u.pres.len, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, o->u.pres.updated_at);
		break;
	case OP_PRES_DEL:
		st = s->st[ST_PRES_DEL];
		bind_str(st, 1, o->u.pres.contact);
		bind_str(st, 2, o->u.pres.resource);
		break;
	case OP_PRES_DEL_ALL:
		st = s->st[ST_PRES_DEL_ALL];
		bind_str(st, 1, o->u.pres.contact);
		break;
	case OP_THREAD_PUT:
		st = s->st[ST_THREAD_PUT];
		bind_str(st, 1, o->u.thr.thread);
		bind_str(st, 2, o->u.thr.call_id);
		bind_str(st, 3, o->u.thr.jid);
		bind_str(st, 4, o->u.thr.sip_uri);
		sqlite3_bind_int64(st, 5, o->u.thr.expires_at);
		break;
	case OP_THREAD_DEL:
		st = s->st[ST_THREAD_DEL];
		bind_str(st, 1, o->u.thr.thread);
		break;
	case OP_PARTNER_PUT:
		st = s->st[ST_PARTNER_PUT];
		bind_str(st, 1, o->u.par.domain);
		bind_str(st, 2, o->u.par.settings);
		sqlite3_bind_int64(st, 3, o->u.par.updated_at);
		break;
	case OP_PARTNER_DEL:
		st = s->st[ST_PARTNER_DEL];
		bind_str(st, 1, o->u.par.domain);
		break;
	default:
		return SQLITE_MISUSE;
	}
	return run(st);
}

/* One transaction over the whole queue; on failure it is rolled back and the queue kept, so
 * the retry replays the same operations from the same database state. */
static int commit(struct store *s)
{
	int rc = run(s->st[ST_BEGIN]);
	if (rc != SQLITE_DONE) {
		keep_errmsg(s);
		return rc;
	}
	for (const struct op *o = s->head; o; o = o->next) {
		rc = exec_op(s, o);
		if (rc != SQLITE_DONE)
			goto fail;
	}
	rc = run(s->st[ST_COMMIT]);
	if (rc == SQLITE_DONE)
		return 0;
fail:
	keep_errmsg(s);
	if (!sqlite3_get_autocommit(s->db))
		(void)run(s->st[ST_ROLLBACK]);
	return rc;
}

static void arm_retry(struct store *s)
{
	if (!s->loop)
		return;
	uint64_t ms = s->flush_ms;
	for (unsigned i = 1; i < s->failures && ms < STORE_RETRY_MAX_MS; i++)
		ms *= 2;
	if (ms > STORE_RETRY_MAX_MS)
		ms = STORE_RETRY_MAX_MS;
	uv_timer_start(&s->timer, on_timer, ms, 0);
}

int store_flush(struct store *s)
{
	if (s->in_load)
		return PE_STATE;
	if (!s->stats.queued) {
		if (s->loop)
			uv_timer_stop(&s->timer);
		return 0;
	}
	uint64_t t0 = uv_hrtime();
	int rc = commit(s);
	if (rc) {
		s->failures++;
		s->stats.errors++;
		log_error(0, "store_commit_failed",
			  "file=\"%s\" ops=%llu attempt=%u sqlite_rc=%d error=\"%s\"", s->file,
			  (unsigned long long)s->stats.queued, s->failures, rc, s->errmsg);
		arm_retry(s);
		return map_rc(rc);
	}
	uint64_t n = s->stats.queued;
	if (s->failures)
		log_info(0, "store_commit_recovered", "file=\"%s\" ops=%llu attempts=%u", s->file,
			 (unsigned long long)n, s->failures + 1);
	s->failures = 0;
	drop_all(s);
	s->stats.committed += n;
	s->stats.batches++;
	s->stats.last_batch_us = (uv_hrtime() - t0) / 1000;
	if (s->loop)
		uv_timer_stop(&s->timer);
	return 0;
}

static void on_timer(uv_timer_t *t)
{
	struct store *s = t->data;
	(void)store_flush(s);
}

/* ---- loads ---- */

static int load_begin(struct store *s)
{
	if (s->in_load)
		return PE_STATE;
	int r = store_flush(s);
	if (r)
		return r;
	s->in_load = true;
	return 0;
}

static int load_end(struct store *s, sqlite3_stmt *st, int rc, const char *what)
{
	if (rc != SQLITE_DONE)
		keep_errmsg(s);
	sqlite3_reset(st);
	s->in_load = false;
	schedule(s); /* what the callbacks queued */
	if (rc == SQLITE_DONE)
		return 0;
	log_error(0, "store_load_failed", "file=\"%s\" table=%s sqlite_rc=%d error=\"%s\"", s->file,
		  what, rc, s->errmsg);
	return map_rc(rc);
}

static const char *col_str(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

int store_sub_load(struct store *s, void (*cb)(void *arg, const struct store_sub *sub), void *arg)
{
	int rc = load_begin(s);
	if (rc)
		return rc;
	sqlite3_stmt *st = s->st[ST_SUB_LOAD];
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_sub u = {
		    .dir = sqlite3_column_int(st, 0),
		    .jid = col_str(st, 1),
		    .sip_uri = col_str(st, 2),
		    .state = sqlite3_column_int(st, 3),
		    .call_id = col_str(st, 4),
		    .local_tag = col_str(st, 5),
		    .remote_tag = col_str(st, 6),
		    .local_uri = col_str(st, 7),
		    .remote_uri = col_str(st, 8),
		    .remote_target = col_str(st, 9),
		    .routes = col_str(st, 10),
		    .local_cseq = (uint32_t)sqlite3_column_int64(st, 11),
		    .remote_cseq = (uint32_t)sqlite3_column_int64(st, 12),
		    .expires_at = sqlite3_column_int64(st, 13),
		    .updated_at = sqlite3_column_int64(st, 14),
		    .watcher = col_str(st, 15),
		};
		if (!u.jid || !u.sip_uri)
			continue; /* NOT NULL in the schema; only a hand-edited file gets here */
		cb(arg, &u);
	}
	return load_end(s, st, rc, "subscription");
}

int store_pres_load(struct store *s,
		    void (*cb)(void *arg, const char *contact, const char *resource,
			       const void *data, size_t len, int64_t updated_at),
		    void *arg)
{
	int rc = load_begin(s);
	if (rc)
		return rc;
	sqlite3_stmt *st = s->st[ST_PRES_LOAD];
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *contact = col_str(st, 0), *resource = col_str(st, 1);
		const void *data = sqlite3_column_blob(st, 2);
		size_t len = (size_t)sqlite3_column_bytes(st, 2);
		if (!contact || !resource)
			continue;
		cb(arg, contact, resource, data, len, sqlite3_column_int64(st, 3));
	}
	return load_end(s, st, rc, "presence");
}

int store_thread_load(struct store *s, int64_t now,
		      void (*cb)(void *arg, const char *thread, const char *call_id,
				 const char *jid, const char *sip_uri, int64_t expires_at),
		      void *arg)
{
	int rc = load_begin(s);
	if (rc)
		return rc;
	sqlite3_stmt *st = s->st[ST_THREAD_EXPIRE];
	sqlite3_bind_int64(st, 1, now);
	rc = run(st);
	if (rc != SQLITE_DONE)
		return load_end(s, st, rc, "thread_call");
	int expired = sqlite3_changes(s->db);
	if (expired)
		log_debug(0, "store_thread_expired", "file=\"%s\" rows=%d", s->file, expired);
	st = s->st[ST_THREAD_LOAD];
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *thread = col_str(st, 0), *call_id = col_str(st, 1);
		if (!thread || !call_id)
			continue;
		cb(arg, thread, call_id, col_str(st, 2), col_str(st, 3),
		   sqlite3_column_int64(st, 4));
	}
	return load_end(s, st, rc, "thread_call");
}

int store_partner_load(struct store *s,
		       void (*cb)(void *arg, const char *domain, const char *settings,
				  int64_t updated_at),
		       void *arg)
{
	int rc = load_begin(s);
	if (rc)
		return rc;
	sqlite3_stmt *st = s->st[ST_PARTNER_LOAD];
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *domain = col_str(st, 0), *settings = col_str(st, 1);
		if (!domain || !settings)
			continue;
		cb(arg, domain, settings, sqlite3_column_int64(st, 2));
	}
	return load_end(s, st, rc, "partner");
}

/* ---- open / close ---- */

static int exec_sql(struct store *s, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		snprintf(s->errmsg, sizeof s->errmsg, "%s", msg ? msg : sqlite3_errstr(rc));
	sqlite3_free(msg);
	return rc;
}

static int version_cb(void *arg, int ncol, char **val, char **names)
{
	(void)names;
	if (ncol > 0 && val[0])
		*(int *)arg = atoi(val[0]);
	return 0;
}

/* Creates or migrates the schema in one transaction, so two processes opening a new file at
 * once cannot both create it. Returns 0, or an SQLite code with s->errmsg set, or -1 with
 * *newer set for a schema this build does not know. */
static int migrate(struct store *s, int *version, int *newer)
{
	int rc = exec_sql(s, "BEGIN IMMEDIATE");
	if (rc != SQLITE_OK)
		return rc;
	rc = exec_sql(s, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
	if (rc != SQLITE_OK)
		goto fail;
	int v = 0;
	char *msg = NULL;
	rc = sqlite3_exec(s->db, "SELECT version FROM schema_version", version_cb, &v, &msg);
	if (rc != SQLITE_OK) {
		snprintf(s->errmsg, sizeof s->errmsg, "%s", msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		goto fail;
	}
	*version = v;
	if (v > STORE_SCHEMA_VERSION || v < 0) {
		*newer = v;
		exec_sql(s, "ROLLBACK");
		return -1;
	}
	for (; v < STORE_SCHEMA_VERSION; v++) {
		rc = exec_sql(s, migrations[v]);
		if (rc != SQLITE_OK)
			goto fail;
	}
	if (*version != STORE_SCHEMA_VERSION) {
		char sql[128];
		snprintf(sql, sizeof sql,
			 "DELETE FROM schema_version; "
			 "INSERT INTO schema_version (version) VALUES (%d)",
			 STORE_SCHEMA_VERSION);
		rc = exec_sql(s, sql);
		if (rc != SQLITE_OK)
			goto fail;
	}
	rc = exec_sql(s, "COMMIT");
	if (rc == SQLITE_OK)
		return 0;
fail:
	if (!sqlite3_get_autocommit(s->db)) {
		char keep[sizeof s->errmsg];
		memcpy(keep, s->errmsg, sizeof keep);
		exec_sql(s, "ROLLBACK");
		memcpy(s->errmsg, keep, sizeof keep);
	}
	return rc;
}

static bool is_memory(const char *path)
{
	return !*path || strcmp(path, ":memory:") == 0 || strncmp(path, "file::memory:", 13) == 0;
}

/* Everything but the struct itself (and the timer). */
static void release(struct store *s)
{
	drop_all(s);
	sip_map_deinit(&s->pending);
	for (int i = 0; i < ST__COUNT; i++) {
		sqlite3_finalize(s->st[i]);
		s->st[i] = NULL;
	}
	sqlite3_close(s->db);
	s->db = NULL;
}

static void free_store(struct store *s)
{
	release(s);
	free(s);
}

int store_open(uv_loop_t *loop, const struct store_conf *c, struct store **out, char *err,
	       size_t errlen)
{
	*out = NULL;
	if (!c || !c->path) {
		set_err(err, errlen, "store: no database path");
		return PE_INVAL;
	}
	struct store *s = calloc(1, sizeof *s);
	if (!s) {
		set_err(err, errlen, "%s: out of memory", c->path);
		return PE_NOMEM;
	}
	sip_map_init(&s->pending);
	s->flush_ms = c->flush_ms ? c->flush_ms : 50;
	s->max_batch = c->max_batch ? c->max_batch : 1000;
	s->max_queue = c->max_queue ? c->max_queue : 1000000;
	s->max_queue_bytes = c->max_queue_bytes ? c->max_queue_bytes : (uint64_t)256 << 20;
	log_escape(s->file, sizeof s->file, c->path, strlen(c->path));

	int r, v = 0, newer = 0;
	const char *what = "open";
	int rc =
	    sqlite3_open_v2(c->path, &s->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		if (s->db)
			keep_errmsg(s);
		else
			snprintf(s->errmsg, sizeof s->errmsg, "%s", sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_busy_timeout(s->db, c->busy_ms ? (int)c->busy_ms : 100);

	/* The first statement to touch the file: an unreadable, unwritable or foreign file fails
	 * here. WAL lets readers (a backup, the operator's sqlite3) run beside our commits, and
	 * with it synchronous=NORMAL loses at most the last commits on power loss, never
	 * consistency: the caller's live state is in memory and is re-queued as it changes. */
	what = "journal_mode";
	sqlite3_stmt *st = NULL;
	rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			const char *mode = (const char *)sqlite3_column_text(st, 0);
			if (!is_memory(c->path) && (!mode || strcasecmp(mode, "wal") != 0)) {
				snprintf(s->errmsg, sizeof s->errmsg,
					 "journal_mode is %s, WAL refused (file system without "
					 "shared memory?)",
					 mode ? mode : "?");
				sqlite3_finalize(st);
				set_err(err, errlen, "%s: %s", c->path, s->errmsg);
				free_store(s);
				return PE_CONFIG;
			}
			rc = SQLITE_OK;
		} else {
			keep_errmsg(s);
		}
	} else {
		keep_errmsg(s);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_OK)
		goto fail;
	what = "synchronous";
	rc = exec_sql(s, "PRAGMA synchronous = NORMAL");
	if (rc != SQLITE_OK)
		goto fail;

	what = "schema";
	rc = migrate(s, &v, &newer);
	if (rc == -1) {
		set_err(err, errlen, "%s: schema version %d is newer than this build's %d", c->path,
			newer, STORE_SCHEMA_VERSION);
		free_store(s);
		return PE_CONFIG;
	}
	if (rc != SQLITE_OK)
		goto fail;

	what = "prepare";
	for (int i = 0; i < ST__COUNT; i++) {
		rc = sqlite3_prepare_v3(s->db, st_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i],
					NULL);
		if (rc != SQLITE_OK) {
			keep_errmsg(s);
			goto fail;
		}
	}

	if (loop) {
		r = uv_timer_init(loop, &s->timer);
		if (r) {
			set_err(err, errlen, "%s: timer: %s", c->path, uv_strerror(r));
			free_store(s);
			return r;
		}
		s->timer.data = s;
		s->loop = loop;
	}
	log_info(0, "store_open",
		 "file=\"%s\" schema_version=%d migrated_from=%d flush_ms=%u max_batch=%u", s->file,
		 STORE_SCHEMA_VERSION, v, s->flush_ms, s->max_batch);
	*out = s;
	return 0;

fail:
	r = map_open_rc(rc);
	set_err(err, errlen, "%s: %s: %s", c->path, what, s->errmsg);
	free_store(s);
	return r;
}

static void on_timer_close(uv_handle_t *h)
{
	free(h->data);
}

void store_close(struct store *s)
{
	if (!s)
		return;
	s->in_load = false;
	if (s->stats.queued && store_flush(s))
		log_error(0, "store_close_lost", "file=\"%s\" ops=%llu", s->file,
			  (unsigned long long)s->stats.queued);
	log_info(0, "store_close", "file=\"%s\" committed=%llu batches=%llu errors=%llu", s->file,
		 (unsigned long long)s->stats.committed, (unsigned long long)s->stats.batches,
		 (unsigned long long)s->stats.errors);
	release(s);
	if (s->loop) {
		uv_timer_stop(&s->timer);
		uv_close((uv_handle_t *)&s->timer, on_timer_close);
	} else {
		free(s);
	}
}

const struct store_stats *store_stats(const struct store *s)
{
	return &s->stats;
}

void *store__db(struct store *s)
{
	return s->db;
}
