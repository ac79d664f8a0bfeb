/* store: the four tables, coalescing, persistence across a restart, PRAGMAs, batching with a
 * loop, a failed commit retried without loss, expiry of thread bindings, open errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "err.h"
#include "log.h"
#include "store.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[64];
static char g_path[128];

static int setup(void **state)
{
	(void)state;
	snprintf(g_dir, sizeof g_dir, "/tmp/parley-test-store-XXXXXX");
	if (!mkdtemp(g_dir))
		return -1;
	snprintf(g_path, sizeof g_path, "%s/state.db", g_dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char p[192];
	const char *sfx[] = {"", "-wal", "-shm", "-journal"};
	for (size_t i = 0; i < 4; i++) {
		snprintf(p, sizeof p, "%s%s", g_path, sfx[i]);
		unlink(p);
	}
	snprintf(p, sizeof p, "%s/garbage.db", g_dir);
	unlink(p);
	rmdir(g_dir);
	return 0;
}

static struct store *open_store(uv_loop_t *loop, struct store_conf *c)
{
	struct store_conf d = {.path = g_path};
	if (!c)
		c = &d;
	if (!c->path)
		c->path = g_path;
	struct store *s = NULL;
	char err[256] = "";
	int r = store_open(loop, c, &s, err, sizeof err);
	if (r)
		fprintf(stderr, "store_open: %s\n", err);
	assert_int_equal(r, 0);
	assert_non_null(s);
	return s;
}

/* A query on a second connection, as another process would see the file. */
static long long peek(const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_open_v2(g_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	long long v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static long long rows(const char *table)
{
	char sql[128];
	snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
	return peek(sql);
}

/* ---- collectors ---- */

#define MAXROWS 64

struct subs {
	int n;
	struct store_sub v[MAXROWS];
	char *strs[MAXROWS][9];
};

static char *dup_or_null(const char *p)
{
	return p ? strdup(p) : NULL;
}

static void on_sub(void *arg, const struct store_sub *u)
{
	struct subs *c = arg;
	assert_true(c->n < MAXROWS);
	struct store_sub *d = &c->v[c->n];
	char **k = c->strs[c->n];
	*d = *u;
	d->jid = k[0] = dup_or_null(u->jid);
	d->sip_uri = k[1] = dup_or_null(u->sip_uri);
	d->call_id = k[2] = dup_or_null(u->call_id);
	d->local_tag = k[3] = dup_or_null(u->local_tag);
	d->remote_tag = k[4] = dup_or_null(u->remote_tag);
	d->local_uri = k[5] = dup_or_null(u->local_uri);
	d->remote_uri = k[6] = dup_or_null(u->remote_uri);
	d->remote_target = k[7] = dup_or_null(u->remote_target);
	d->routes = k[8] = dup_or_null(u->routes);
	c->n++;
}

static void subs_free(struct subs *c)
{
	for (int i = 0; i < c->n; i++)
		for (int j = 0; j < 9; j++)
			free(c->strs[i][j]);
	c->n = 0;
}

static const struct store_sub *sub_find(const struct subs *c, int dir, const char *jid)
{
	for (int i = 0; i < c->n; i++)
		if (c->v[i].dir == dir && strcmp(c->v[i].jid, jid) == 0)
			return &c->v[i];
	return NULL;
}

static void assert_str_or_null(const char *a, const char *b)
{
	if (!a || !b)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

static void assert_sub_equal(const struct store_sub *a, const struct store_sub *b)
{
	assert_non_null(a);
	assert_int_equal(a->dir, b->dir);
	assert_int_equal(a->state, b->state);
	assert_string_equal(a->jid, b->jid);
	assert_string_equal(a->sip_uri, b->sip_uri);
	assert_str_or_null(a->call_id, b->call_id);
	assert_str_or_null(a->local_tag, b->local_tag);
	assert_str_or_null(a->remote_tag, b->remote_tag);
	assert_str_or_null(a->local_uri, b->local_uri);
	assert_str_or_null(a->remote_uri, b->remote_uri);
	assert_str_or_null(a->remote_target, b->remote_target);
	assert_str_or_null(a->routes, b->routes);
	assert_int_equal(a->local_cseq, b->local_cseq);
	assert_int_equal(a->remote_cseq, b->remote_cseq);
	assert_int_equal(a->expires_at, b->expires_at);
	assert_int_equal(a->updated_at, b->updated_at);
}

struct pres {
	int n;
	struct {
		char contact[64], resource[64];
		unsigned char data[64];
		size_t len;
		int64_t updated_at;
	} v[MAXROWS];
};

static void on_pres(void *arg, const char *contact, const char *resource, const void *data,
		    size_t len, int64_t updated_at)
{
	struct pres *c = arg;
	assert_true(c->n < MAXROWS);
	assert_true(len <= sizeof c->v[0].data);
	snprintf(c->v[c->n].contact, 64, "%s", contact);
	snprintf(c->v[c->n].resource, 64, "%s", resource);
	if (len)
		memcpy(c->v[c->n].data, data, len);
	c->v[c->n].len = len;
	c->v[c->n].updated_at = updated_at;
	c->n++;
}

static int pres_find(const struct pres *c, const char *contact, const char *resource)
{
	for (int i = 0; i < c->n; i++)
		if (!strcmp(c->v[i].contact, contact) && !strcmp(c->v[i].resource, resource))
			return i;
	return -1;
}

struct threads {
	int n;
	struct {
		char thread[64], call_id[64], jid[64], sip_uri[64];
		int64_t expires_at;
	} v[MAXROWS];
};

static void on_thread(void *arg, const char *thread, const char *call_id, const char *jid,
		      const char *sip_uri, int64_t expires_at)
{
	struct threads *c = arg;
	assert_true(c->n < MAXROWS);
	snprintf(c->v[c->n].thread, 64, "%s", thread);
	snprintf(c->v[c->n].call_id, 64, "%s", call_id);
	snprintf(c->v[c->n].jid, 64, "%s", jid ? jid : "(null)");
	snprintf(c->v[c->n].sip_uri, 64, "%s", sip_uri ? sip_uri : "(null)");
	c->v[c->n].expires_at = expires_at;
	c->n++;
}

/* ---- fixtures ---- */

static const struct store_sub FULL = {
    .dir = STORE_SUB_SIP_TO_XMPP,
    .state = STORE_SUB_ACTIVE,
    .jid = "juliet@partner.test",
    .sip_uri = "sip:romeo@corp.test",
    .call_id = "a84b4c76e66710@gw.corp.test",
    .local_tag = "1928301774",
    .remote_tag = "xyz-77",
    .local_uri = "sip:juliet@partner.test",
    .remote_uri = "sip:romeo@corp.test",
    .remote_target = "sip:romeo@10.1.2.3:5061;transport=tls",
    .routes = "<sip:fe1.corp.test;lr>\n<sip:fe2.corp.test;lr>",
    .local_cseq = 4000000000u, /* above INT32_MAX: stored as BIGINT */
    .remote_cseq = 17,
    .expires_at = 1700028800,
    .updated_at = 1700000000,
};

static const struct store_sub MINIMAL = {
    .dir = STORE_SUB_XMPP_TO_SIP,
    .state = STORE_SUB_PENDING,
    .jid = "juliet@partner.test",
    .sip_uri = "sip:romeo@corp.test",
    .updated_at = 1700000001,
};

/* ---- tests ---- */

static void test_sub_put_del_load(void **state)
{
	(void)state;
	struct store *s = open_store(NULL, NULL);
	assert_int_equal(store_sub_put(s, &FULL), 0);
	assert_int_equal(store_sub_put(s, &MINIMAL), 0); /* same jid/uri, other direction */
	assert_int_equal(rows("subscription"), 0);	 /* no loop: nothing written yet */
	assert_int_equal(store_flush(s), 0);
	assert_int_equal(rows("subscription"), 2);

	struct subs c = {0};
	assert_int_equal(store_sub_load(s, on_sub, &c), 0);
	assert_int_equal(c.n, 2);
	assert_sub_equal(sub_find(&c, FULL.dir, FULL.jid), &FULL);
	assert_sub_equal(sub_find(&c, MINIMAL.dir, MINIMAL.jid), &MINIMAL);
	subs_free(&c);

	/* an update of an existing row, then a delete of the other */
	struct store_sub upd = FULL;
	upd.state = STORE_SUB_TERMINATED;
	upd.routes = NULL;
	upd.local_cseq = 5;
	assert_int_equal(store_sub_put(s, &upd), 0);
	assert_int_equal(store_sub_del(s, MINIMAL.dir, MINIMAL.jid, MINIMAL.sip_uri, NULL), 0);
	assert_int_equal(store_sub_del(s, STORE_SUB_XMPP_TO_SIP, "nobody@x", "sip:y@z", NULL), 0);
	assert_int_equal(store_sub_load(s, on_sub, &c), 0); /* load flushes first */
	assert_int_equal(c.n, 1);
	assert_sub_equal(&c.v[0], &upd);
	subs_free(&c);

	const struct store_stats *st = store_stats(s);
	assert_int_equal(st->queued, 0);
	assert_int_equal(st->committed, 5);
	assert_int_equal(st->batches, 2);
	assert_int_equal(st->errors, 0);
	store_close(s);
}

/* Several SIP watchers of one pair are separate rows, told apart by watcher. */
static void test_sub_watchers(void **state)
{
	(void)state;
	struct store *s = open_store(NULL, NULL);
	struct store_sub a = MINIMAL, b = MINIMAL;
	a.dir = b.dir = STORE_SUB_SIP_TO_XMPP;
	a.watcher = "call-a";
	b.watcher = "call-b";
	assert_int_equal(store_sub_put(s, &a), 0);
	assert_int_equal(store_sub_put(s, &b), 0);
	assert_int_equal(store_flush(s), 0);
	assert_int_equal(rows("subscription"), 2);
	assert_int_equal(store_sub_del(s, a.dir, a.jid, a.sip_uri, "call-a"), 0);
	struct subs c = {0};
	assert_int_equal(store_sub_load(s, on_sub, &c), 0);
	assert_int_equal(c.n, 1);
	subs_free(&c);
	assert_int_equal(rows("subscription"), 1);
	store_close(s);
}

static void test_pres_put_del_load(void **state)
{
	(void)state;
	struct store *s = open_store(NULL, NULL);
	const unsigned char blob[] = {'<', 0, 0xff, '>', 0};
	assert_int_equal(store_pres_put(s, "juliet@partner.test", "", blob, sizeof blob, 10), 0);
	assert_int_equal(store_pres_put(s, "juliet@partner.test", "balcony", "x", 1, 11), 0);
	assert_int_equal(store_pres_put(s, "juliet@partner.test", "garden", "y", 1, 12), 0);
	assert_int_equal(store_pres_put(s, "sip:romeo@corp.test", "", NULL, 0, 13), 0);
	assert_int_equal(store_pres_put(s, "nurse@partner.test", "r", "z", 1, 14), 0);
	assert_int_equal(store_flush(s), 0);
	assert_int_equal(store_pres_del(s, "juliet@partner.test", "balcony"), 0);

	struct pres c = {0};
	assert_int_equal(store_pres_load(s, on_pres, &c), 0);
	assert_int_equal(c.n, 4);
	int i = pres_find(&c, "juliet@partner.test", "");
	assert_true(i >= 0);
	assert_int_equal(c.v[i].len, sizeof blob);
	assert_memory_equal(c.v[i].data, blob, sizeof blob);
	assert_int_equal(c.v[i].updated_at, 10);
	i = pres_find(&c, "sip:romeo@corp.test", "");
	assert_true(i >= 0);
	assert_int_equal(c.v[i].len, 0);
	assert_int_equal(c.v[i].updated_at, 13);
	assert_int_equal(pres_find(&c, "juliet@partner.test", "balcony"), -1);
	assert_int_equal(peek("SELECT count(*) FROM presence WHERE data IS NULL"), 0);

	/* resource NULL: every resource of the contact */
	assert_int_equal(store_pres_del(s, "juliet@partner.test", NULL), 0);
	/* within one batch the order around a delete-all holds: put, delete all, put */
	assert_int_equal(store_pres_put(s, "mercutio@partner.test", "a", "1", 1, 20), 0);
	assert_int_equal(store_pres_put(s, "mercutio@partner.test", "b", "2", 1, 20), 0);
	assert_int_equal(store_pres_del(s, "mercutio@partner.test", NULL), 0);
	assert_int_equal(store_pres_put(s, "mercutio@partner.test", "a", "3", 1, 21), 0);
	c.n = 0;
	assert_int_equal(store_pres_load(s, on_pres, &c), 0);
	assert_int_equal(c.n, 3);
	assert_int_equal(pres_find(&c, "juliet@partner.test", ""), -1);
	assert_int_equal(pres_find(&c, "juliet@partner.test", "garden"), -1);
	assert_int_equal(pres_find(&c, "mercutio@partner.test", "b"), -1);
	i = pres_find(&c, "mercutio@partner.test", "a");
	assert_true(i >= 0);
	assert_int_equal(c.v[i].data[0], '3');
	assert_true(pres_find(&c, "nurse@partner.test", "r") >= 0);
	assert_true(pres_find(&c, "sip:romeo@corp.test", "") >= 0);
	store_close(s);
}

static void test_thread_put_del_expire(void **state)
{
	(void)state;
	struct store *s = open_store(NULL, NULL);
	assert_int_equal(store_thread_put(s, "t1", "c1@gw", "a@p.test", "sip:b@c.test", 100), 0);
	assert_int_equal(store_thread_put(s, "t2", "c2@gw", NULL, NULL, 200), 0);
	assert_int_equal(store_thread_put(s, "t3", "c3@gw", "a@p.test", "sip:b@c.test", 300), 0);
	assert_int_equal(store_thread_put(s, "t4", "c4@gw", "a@p.test", "sip:b@c.test", 150), 0);
	assert_int_equal(store_thread_del(s, "t3"), 0);
	struct threads c = {0};
	assert_int_equal(store_thread_load(s, 150, on_thread, &c), 0);
	assert_int_equal(c.n, 1); /* t1 and t4 (expires_at <= now) expired, t3 deleted */
	assert_string_equal(c.v[0].thread, "t2");
	assert_string_equal(c.v[0].call_id, "c2@gw");
	assert_string_equal(c.v[0].jid, "(null)");
	assert_string_equal(c.v[0].sip_uri, "(null)");
	assert_int_equal(c.v[0].expires_at, 200);
	/* the expired rows are gone from the file, not only skipped */
	assert_int_equal(rows("thread_call"), 1);
	c.n = 0;
	assert_int_equal(store_thread_load(s, 0, on_thread, &c), 0);
	assert_int_equal(c.n, 1);

	/* an update moves the expiry */
	assert_int_equal(store_thread_put(s, "t2", "c2b@gw", "x@p.test", "sip:y@c.test", 900), 0);
	c.n = 0;
	assert_int_equal(store_thread_load(s, 500, on_thread, &c), 0);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.v[0].call_id, "c2b@gw");
	assert_string_equal(c.v[0].jid, "x@p.test");
	assert_int_equal(c.v[0].expires_at, 900);
	store_close(s);
}

static void test_coalesce(void **state)
{
	(void)state;
	struct store *s = open_store(NULL, NULL);
	struct store_sub u = FULL;
	char tag[32];
	for (int i = 0; i < 1000; i++) {
		snprintf(tag, sizeof tag, "tag-%d", i);
		u.remote_tag = tag;
		u.local_cseq = (uint32_t)i;
		assert_int_equal(store_sub_put(s, &u), 0);
	}
	const struct store_stats *st = store_stats(s);
	assert_int_equal(st->queued, 1);
	assert_int_equal(st->coalesced, 999);
	assert_int_equal(store_flush(s), 0);
	assert_int_equal(st->committed, 1); /* one write for 1000 puts */
	assert_int_equal(st->batches, 1);
	assert_int_equal(rows("subscription"), 1);
	struct subs c = {0};
	assert_int_equal(store_sub_load(s, on_sub, &c), 0);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.v[0].remote_tag, "tag-999");
	assert_int_equal(c.v[0].local_cseq, 999);
	subs_free(&c);

	/* a put then a delete of a new row in one batch writes nothing that stays */
	struct store_sub v = MINIMAL;
	assert_int_equal(store_sub_put(s, &v), 0);
	assert_int_equal(store_sub_del(s, v.dir, v.jid, v.sip_uri, NULL), 0);
	assert_int_equal(st->queued, 1);
	/* and a delete then a put keeps the row */
	assert_int_equal(store_thread_del(s, "t"), 0);
	assert_int_equal(store_thread_put(s, "t", "c", NULL, NULL, 99), 0);
	assert_int_equal(st->queued, 2);
	assert_int_equal(store_flush(s), 0);
	assert_int_equal(rows("subscription"), 1);
	assert_int_equal(rows("thread_call"), 1);
	store_close(s);
}

static void test_restart_persistence(void **state)
{
	(void)state;
	struct store *s = open_store(NULL, NULL);
	assert_int_equal(store_sub_put(s, &FULL), 0);
	assert_int_equal(store_sub_put(s, &MINIMAL), 0);
	assert_int_equal(store_pres_put(s, "juliet@partner.test", "r1", "pidf", 4, 77), 0);
	assert_int_equal(store_thread_put(s, "th", "cid@gw", "a@p.test", "sip:b@c.test", 5000), 0);
	store_close(s); /* flushes what is queued */

	s = open_store(NULL, NULL);
	struct subs c = {0};
	assert_int_equal(store_sub_load(s, on_sub, &c), 0);
	assert_int_equal(c.n, 2);
	assert_sub_equal(sub_find(&c, FULL.dir, FULL.jid), &FULL);
	assert_sub_equal(sub_find(&c, MINIMAL.dir, MINIMAL.jid), &MINIMAL);
	subs_free(&c);
	struct pres p = {0};
	assert_int_equal(store_pres_load(s, on_pres, &p), 0);
	assert_int_equal(p.n, 1);
	assert_int_equal(p.v[0].len, 4);
	assert_memory_equal(p.v[0].data, "pidf", 4);
	assert_int_equal(p.v[0].updated_at, 77);
	struct threads t = {0};
	assert_int_equal(store_thread_load(s, 1000, on_thread, &t), 0);
	assert_int_equal(t.n, 1);
	assert_string_equal(t.v[0].call_id, "cid@gw");
	assert_int_equal(t.v[0].expires_at, 5000);
	store_close(s);
	assert_int_equal(peek("SELECT version FROM schema_version"), 2);
	assert_int_equal(peek("SELECT count(*) FROM schema_version"), 1);
}

static void test_pragmas(void **state)
{
	(void)state;
	struct store *s = open_store(NULL, NULL);
	sqlite3 *db = store__db(s);
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), 0);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA synchronous", -1, &st, NULL), 0);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 1); /* NORMAL */
	sqlite3_finalize(st);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA busy_timeout", -1, &st, NULL), 0);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 100);
	sqlite3_finalize(st);
	/* WAL is a property of the file: a second connection sees it too */
	assert_int_equal(store_thread_put(s, "t", "c", NULL, NULL, 1), 0);
	assert_int_equal(store_flush(s), 0);
	char wal[192];
	snprintf(wal, sizeof wal, "%s-wal", g_path);
	struct stat sb;
	assert_int_equal(stat(wal, &sb), 0);
	store_close(s);

	/* ":memory:" works too (WAL is not available there and is not required) */
	struct store_conf mc = {.path = ":memory:"};
	s = open_store(NULL, &mc);
	assert_int_equal(store_thread_put(s, "t", "c", NULL, NULL, 1), 0);
	struct threads t = {0};
	assert_int_equal(store_thread_load(s, 0, on_thread, &t), 0);
	assert_int_equal(t.n, 1);
	store_close(s);
}

static void test_loop_batching(void **state)
{
	(void)state;
	uv_loop_t loop;
	assert_int_equal(uv_loop_init(&loop), 0);
	struct store_conf c = {.flush_ms = 50, .max_batch = 10};
	struct store *s = open_store(&loop, &c);

	uint64_t t0 = uv_hrtime();
	assert_int_equal(store_sub_put(s, &FULL), 0);
	uv_run(&loop, UV_RUN_NOWAIT);
	assert_int_equal(rows("subscription"), 0); /* not before the timer */
	assert_int_equal(store_stats(s)->queued, 1);
	uv_run(&loop,
	       UV_RUN_DEFAULT); /* returns once the timer has fired: nothing else is active */
	uint64_t ms = (uv_hrtime() - t0) / 1000000;
	assert_int_equal(rows("subscription"), 1);
	assert_true(ms >= 45);
	assert_true(ms < 1000);
	assert_int_equal(store_stats(s)->batches, 1);
	assert_int_equal(store_stats(s)->queued, 0);

	/* max_batch: the 10th queued operation commits at once, without the loop running */
	char tag[32];
	struct store_sub u = MINIMAL;
	for (int i = 0; i < 9; i++) {
		snprintf(tag, sizeof tag, "j%d@p.test", i);
		u.jid = tag;
		assert_int_equal(store_sub_put(s, &u), 0);
	}
	assert_int_equal(rows("subscription"), 1);
	assert_int_equal(store_thread_put(s, "t", "c", NULL, NULL, 1), 0);
	assert_int_equal(rows("subscription"), 10);
	assert_int_equal(rows("thread_call"), 1);
	assert_int_equal(store_stats(s)->batches, 2);

	/* the close flushes, then frees in the timer's close callback */
	assert_int_equal(store_thread_put(s, "t2", "c", NULL, NULL, 1), 0);
	store_close(s);
	assert_int_equal(rows("thread_call"), 2);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
}

/* Holds the write lock from a second connection, as another writer would. */
static sqlite3 *lock_db(void)
{
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(g_path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	return db;
}

static void unlock_db(sqlite3 *db)
{
	assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static void test_commit_retry(void **state)
{
	(void)state;
	char *logbuf = NULL;
	size_t loglen = 0;
	FILE *lf = open_memstream(&logbuf, &loglen);
	assert_non_null(lf);
	log_set_stream(lf);
	log_set_level(LL_INFO);

	struct store_conf c = {.busy_ms = 10};
	struct store *s = open_store(NULL, &c);
	sqlite3 *other = lock_db();
	assert_int_equal(store_sub_put(s, &FULL), 0);
	assert_int_equal(store_pres_put(s, "juliet@partner.test", "", "a", 1, 1), 0);
	assert_int_equal(store_thread_put(s, "t", "c", NULL, NULL, 9), 0);
	assert_int_equal(store_flush(s), UV_EBUSY);
	const struct store_stats *st = store_stats(s);
	assert_int_equal(st->errors, 1);
	assert_int_equal(st->queued, 3);
	assert_int_equal(st->batches, 0);
	/* more changes meanwhile coalesce with what waits */
	assert_int_equal(store_pres_put(s, "juliet@partner.test", "", "b", 1, 2), 0);
	assert_int_equal(store_flush(s), UV_EBUSY);
	assert_int_equal(st->errors, 2);
	assert_int_equal(st->queued, 3);
	unlock_db(other);
	assert_int_equal(store_flush(s), 0);
	assert_int_equal(st->queued, 0);
	assert_int_equal(st->committed, 3);
	assert_int_equal(rows("subscription"), 1);
	assert_int_equal(rows("thread_call"), 1);
	struct pres p = {0};
	assert_int_equal(store_pres_load(s, on_pres, &p), 0);
	assert_int_equal(p.n, 1);
	assert_int_equal(p.v[0].data[0], 'b');
	store_close(s);

	log_set_stream(NULL);
	log_set_level(LL_WARN);
	fclose(lf);
	assert_non_null(strstr(logbuf, "event=store_commit_failed"));
	assert_non_null(strstr(logbuf, g_path));
	assert_non_null(strstr(logbuf, "database is locked"));
	assert_non_null(strstr(logbuf, "event=store_commit_recovered"));
	free(logbuf);
}

static sqlite3 *g_other;

static void on_release(uv_timer_t *t)
{
	unlock_db(g_other);
	g_other = NULL;
	uv_close((uv_handle_t *)t, NULL);
}

/* With a loop, the timer retries on its own until the lock goes. */
static void test_commit_retry_loop(void **state)
{
	(void)state;
	FILE *devnull = fopen("/dev/null", "w");
	assert_non_null(devnull);
	log_set_stream(devnull);
	uv_loop_t loop;
	assert_int_equal(uv_loop_init(&loop), 0);
	struct store_conf c = {.flush_ms = 10, .max_batch = 2, .busy_ms = 5};
	struct store *s = open_store(&loop, &c);
	g_other = lock_db();
	assert_int_equal(store_thread_put(s, "t1", "c", NULL, NULL, 9), 0);
	/* the batch is full: the put commits, fails, and still returns 0 with its op queued */
	assert_int_equal(store_thread_put(s, "t2", "c", NULL, NULL, 9), 0);
	assert_int_equal(store_stats(s)->errors, 1);
	/* while failing, a full batch does not commit on every put (the timer paces retries) */
	assert_int_equal(store_thread_put(s, "t3", "c", NULL, NULL, 9), 0);
	assert_int_equal(store_stats(s)->errors, 1);
	assert_int_equal(store_stats(s)->queued, 3);
	uv_timer_t rel;
	uv_timer_init(&loop, &rel);
	uv_timer_start(&rel, on_release, 120, 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_null(g_other);
	assert_true(store_stats(s)->errors >= 2);
	assert_int_equal(store_stats(s)->queued, 0);
	assert_int_equal(rows("thread_call"), 3);
	store_close(s);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
	log_set_stream(NULL);
	fclose(devnull);
}

static void test_open_errors(void **state)
{
	(void)state;
	struct store *s = (struct store *)1;
	char err[256] = "";
	struct store_conf c = {.path = "/nonexistent-parley-dir/state.db"};
	assert_int_equal(store_open(NULL, &c, &s, err, sizeof err), PE_CONFIG);
	assert_null(s);
	assert_non_null(strstr(err, "/nonexistent-parley-dir/state.db"));
	assert_non_null(strstr(err, "unable to open"));

	/* a directory is not a database file */
	c.path = g_dir;
	err[0] = 0;
	assert_true(store_open(NULL, &c, &s, err, sizeof err) < 0);
	assert_non_null(strstr(err, g_dir));

	/* a file that is not a database */
	char garbage[128];
	snprintf(garbage, sizeof garbage, "%s/garbage.db", g_dir);
	FILE *f = fopen(garbage, "w");
	assert_non_null(f);
	for (int i = 0; i < 200; i++)
		fputs("this is not an SQLite database\n", f);
	fclose(f);
	c.path = garbage;
	err[0] = 0;
	assert_int_equal(store_open(NULL, &c, &s, err, sizeof err), PE_CONFIG);
	assert_non_null(strstr(err, garbage));
	assert_non_null(strstr(err, "not a database"));

	c.path = NULL;
	assert_int_equal(store_open(NULL, &c, &s, err, sizeof err), PE_INVAL);
}

static void test_schema_newer(void **state)
{
	(void)state;
	store_close(open_store(NULL, NULL));
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(g_path, &db), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(db, "UPDATE schema_version SET version = 99", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	struct store *s = NULL;
	char err[256] = "";
	struct store_conf c = {.path = g_path};
	assert_int_equal(store_open(NULL, &c, &s, err, sizeof err), PE_CONFIG);
	assert_non_null(strstr(err, "newer"));
	assert_non_null(strstr(err, g_path));
}

static void test_queue_bound(void **state)
{
	(void)state;
	struct store_conf c = {.max_queue = 10};
	struct store *s = open_store(NULL, &c);
	char t[32];
	for (int i = 0; i < 10; i++) {
		snprintf(t, sizeof t, "t%d", i);
		assert_int_equal(store_thread_put(s, t, "c", NULL, NULL, 1), 0);
	}
	assert_int_equal(store_thread_put(s, "t10", "c", NULL, NULL, 1), PE_TOOBIG);
	assert_int_equal(store_thread_del(s, "t10"), PE_TOOBIG);
	assert_int_equal(store_stats(s)->rejected, 2);
	/* a row already queued can still change */
	assert_int_equal(store_thread_put(s, "t3", "c2", NULL, NULL, 1), 0);
	assert_int_equal(store_flush(s), 0);
	assert_int_equal(store_thread_put(s, "t10", "c", NULL, NULL, 1), 0);
	store_close(s);

	/* the byte bound */
	struct store_conf b = {.max_queue_bytes = 4096};
	s = open_store(NULL, &b);
	static char big[3000];
	memset(big, 'x', sizeof big - 1);
	assert_int_equal(store_pres_put(s, "a", "", big, sizeof big, 1), 0);
	assert_int_equal(store_pres_put(s, "b", "", big, sizeof big, 1), PE_TOOBIG);
	assert_int_equal(store_pres_put(s, "a", "", big, 10, 1), 0); /* replacing frees room */
	assert_int_equal(store_pres_put(s, "b", "", big, 10, 1), 0);
	assert_int_equal(store_pres_put(s, "c", "", big, 2 * 1024 * 1024, 1), PE_TOOBIG);
	store_close(s);
}

static void test_invalid(void **state)
{
	(void)state;
	struct store *s = open_store(NULL, NULL);
	struct store_sub u = FULL;
	u.dir = 3;
	assert_int_equal(store_sub_put(s, &u), PE_INVAL);
	u = FULL;
	u.state = 0;
	assert_int_equal(store_sub_put(s, &u), PE_INVAL);
	u = FULL;
	u.jid = NULL;
	assert_int_equal(store_sub_put(s, &u), PE_INVAL);
	assert_int_equal(store_sub_del(s, 0, "a", "b", NULL), PE_INVAL);
	assert_int_equal(store_pres_put(s, "a", NULL, "x", 1, 0), PE_INVAL);
	assert_int_equal(store_pres_put(s, "a", "", NULL, 1, 0), PE_INVAL);
	assert_int_equal(store_pres_del(s, NULL, NULL), PE_INVAL);
	assert_int_equal(store_thread_put(s, "t", NULL, NULL, NULL, 0), PE_INVAL);
	assert_int_equal(store_thread_del(s, NULL), PE_INVAL);
	char *huge = malloc(70000);
	memset(huge, 'a', 69999);
	huge[69999] = 0;
	assert_int_equal(store_thread_put(s, huge, "c", NULL, NULL, 0), PE_TOOBIG);
	free(huge);
	assert_int_equal(store_stats(s)->queued, 0);
	store_close(s);
}

struct reent {
	struct store *s;
	int seen, flush_rc;
};

static void on_sub_requeue(void *arg, const struct store_sub *u)
{
	struct reent *r = arg;
	struct store_sub v = *u;
	v.local_cseq++;
	assert_int_equal(store_sub_put(r->s, &v), 0);
	r->flush_rc = store_flush(r->s);
	r->seen++;
}

/* A load callback may queue changes (a refresh decided while loading); it may not flush. */
/* ---- partners managed with parleyctl ---- */

struct partners {
	int n;
	char domain[MAXROWS][64];
	char settings[MAXROWS][256];
	int64_t updated_at[MAXROWS];
};

static void on_partner(void *arg, const char *domain, const char *settings, int64_t updated_at)
{
	struct partners *c = arg;
	if (c->n >= MAXROWS)
		return;
	snprintf(c->domain[c->n], sizeof c->domain[0], "%s", domain);
	snprintf(c->settings[c->n], sizeof c->settings[0], "%s", settings);
	c->updated_at[c->n++] = updated_at;
}

static void test_partner_put_del_load(void **state)
{
	(void)state;
	struct store *s = open_store(NULL, NULL);
	assert_int_equal(store_partner_put(s, "b.test", "type = federated\n", 10), 0);
	assert_int_equal(store_partner_put(s, "a.test", "", 11), 0);
	assert_int_equal(store_partner_put(s, "c.test", "tls = optional\n", 12), 0);
	assert_int_equal(store_partner_del(s, "c.test"), 0);
	/* a later put of the same domain replaces the queued one */
	assert_int_equal(store_partner_put(s, "b.test", "type = public-verified\n", 13), 0);
	assert_int_equal(store_stats(s)->queued, 3);
	struct partners c = {0};
	assert_int_equal(store_partner_load(s, on_partner, &c), 0);
	assert_int_equal(c.n, 2); /* in domain order */
	assert_string_equal(c.domain[0], "a.test");
	assert_string_equal(c.settings[0], "");
	assert_int_equal(c.updated_at[0], 11);
	assert_string_equal(c.domain[1], "b.test");
	assert_string_equal(c.settings[1], "type = public-verified\n");
	assert_int_equal(c.updated_at[1], 13);
	assert_int_equal(rows("partner"), 2);
	store_close(s);

	/* kept across a restart; a delete reaches the file */
	s = open_store(NULL, NULL);
	assert_int_equal(store_partner_del(s, "a.test"), 0);
	memset(&c, 0, sizeof c);
	assert_int_equal(store_partner_load(s, on_partner, &c), 0);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.domain[0], "b.test");
	assert_int_equal(store_partner_put(s, NULL, "", 0), PE_INVAL);
	assert_int_equal(store_partner_put(s, "x.test", NULL, 0), PE_INVAL);
	assert_int_equal(store_partner_del(s, NULL), PE_INVAL);
	store_close(s);
	assert_int_equal(rows("partner"), 1);
}

/* A database written by schema 1 (no partner table) is migrated in place, its rows kept. */
static void test_partner_migration_from_v1(void **state)
{
	(void)state;
	sqlite3 *db;
	assert_int_equal(sqlite3_open(g_path, &db), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(db,
			 "CREATE TABLE schema_version (version INTEGER NOT NULL);"
			 "INSERT INTO schema_version VALUES (1);"
			 "CREATE TABLE subscription (dir INTEGER NOT NULL, jid TEXT NOT NULL,"
			 " sip_uri TEXT NOT NULL, watcher TEXT NOT NULL, state INTEGER NOT NULL,"
			 " call_id TEXT, local_tag TEXT, remote_tag TEXT, local_uri TEXT,"
			 " remote_uri TEXT, remote_target TEXT, routes TEXT,"
			 " local_cseq BIGINT NOT NULL, remote_cseq BIGINT NOT NULL,"
			 " expires_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,"
			 " PRIMARY KEY (dir, jid, sip_uri, watcher));"
			 "CREATE TABLE presence (contact TEXT NOT NULL, resource TEXT NOT NULL,"
			 " data BYTEA NOT NULL, updated_at BIGINT NOT NULL,"
			 " PRIMARY KEY (contact, resource));"
			 "CREATE TABLE thread_call (thread TEXT NOT NULL PRIMARY KEY,"
			 " call_id TEXT NOT NULL, jid TEXT, sip_uri TEXT,"
			 " expires_at BIGINT NOT NULL);"
			 "INSERT INTO thread_call VALUES ('t', 'c', NULL, NULL, 99);",
			 NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	struct store *s = open_store(NULL, NULL);
	assert_int_equal(peek("SELECT version FROM schema_version"), 2);
	assert_int_equal(rows("thread_call"), 1);
	assert_int_equal(store_partner_put(s, "p.test", "dialback = false\n", 1), 0);
	assert_int_equal(store_flush(s), 0);
	assert_int_equal(rows("partner"), 1);
	store_close(s);
}

static void test_load_reentry(void **state)
{
	(void)state;
	uv_loop_t loop;
	assert_int_equal(uv_loop_init(&loop), 0);
	struct store_conf c = {.max_batch = 1};
	struct store *s = open_store(&loop, &c);
	assert_int_equal(store_sub_put(s, &FULL), 0); /* max_batch 1: committed now */
	assert_int_equal(store_stats(s)->batches, 1);
	struct reent r = {.s = s};
	assert_int_equal(store_sub_load(s, on_sub_requeue, &r), 0);
	assert_int_equal(r.seen, 1);
	assert_int_equal(r.flush_rc, PE_STATE);
	/* committed when the load ended (the batch was full) */
	assert_int_equal(store_stats(s)->queued, 0);
	assert_int_equal(peek("SELECT local_cseq FROM subscription"),
			 (long long)FULL.local_cseq + 1);
	store_close(s);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
	log_init("test_store", LL_WARN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_sub_put_del_load, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sub_watchers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pres_put_del_load, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_thread_put_del_expire, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_coalesce, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_restart_persistence, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pragmas, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_loop_batching, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_commit_retry, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_commit_retry_loop, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_schema_newer, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_queue_bound, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_invalid, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_load_reentry, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_partner_put_del_load, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_partner_migration_from_v1, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
