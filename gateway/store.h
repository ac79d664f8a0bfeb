/* The gateway's persistent state: subscriptions, last presence, thread <-> Call-ID bindings,
 * federation partners managed with parleyctl. */
#ifndef PARLEY_STORE_H
#define PARLEY_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/*
 * A write-behind store. The caller keeps all live state in memory, loads everything once at
 * start (store_*_load) and then queues upserts and deletes as state changes; the store
 * commits what is queued in one transaction per batch. Several operations on the same row
 * within one batch are coalesced: only the last is written. A commit that fails (disk full,
 * database locked) loses nothing: the operations stay queued, an error line is logged, and
 * the next flush retries them.
 *
 * The backend is SQLite (WAL, synchronous=NORMAL). The SQL is kept portable (TEXT, INTEGER,
 * BIGINT, BYTEA; INSERT ... ON CONFLICT (key) DO UPDATE) so a PostgreSQL backend can follow.
 *
 * Not thread-safe: one store belongs to one loop thread.
 */

struct store;

struct store_conf {
	const char *path;   /* database file; ":memory:" for tests */
	uint32_t flush_ms;  /* longest delay of a queued write with a loop; 0 = 50 */
	uint32_t max_batch; /* with a loop, commit as soon as this many are queued; 0 = 1000 */
	uint32_t max_queue; /* operations queued at most (distinct rows); 0 = 1 000 000 */
	uint64_t max_queue_bytes; /* bytes of queued strings and blobs at most; 0 = 256 MiB */
	uint32_t busy_ms;	  /* how long a commit waits for another writer's lock; 0 = 100 */
};

/* Opens or creates the database, sets WAL + synchronous=NORMAL + busy_timeout, creates or
 * migrates the schema (table schema_version) and prepares the statements. loop may be NULL:
 * then only store_flush (and the loads, store_close) write. With a loop, queued writes are
 * committed in one transaction at most flush_ms later (a uv_timer) or, synchronously inside
 * the put, when max_batch are queued. A failed commit is retried by the timer with a growing
 * delay (up to 5 s); meanwhile max_batch no longer triggers a commit.
 * Returns 0 and *out, or PE_CONFIG (cannot open/create the file, read-only, not a database,
 * WAL refused, schema newer than this build), UV_EBUSY (locked by another process for longer
 * than busy_ms), UV_EIO (other SQLite failure), PE_NOMEM, PE_INVAL (no conf or path);
 * err (errlen bytes, may be NULL) then names the file and gives SQLite's message. */
int store_open(uv_loop_t *loop, const struct store_conf *c, struct store **out, char *err,
	       size_t errlen);
/* Commits everything queued now, in one transaction. Returns 0; or UV_EBUSY (locked by
 * another writer), UV_ENOSPC (disk full), UV_EROFS (read-only), PE_NOMEM, UV_EIO (other
 * failures), each with the operations still queued (logged and counted in errors); PE_STATE
 * when called from a load callback. */
int store_flush(struct store *s);
/* Flushes (a failure is logged with the number of operations lost), finalizes and closes the
 * database. With a loop the timer is closed and s freed in its close callback: run the loop
 * once more after this. NULL is a no-op. */
void store_close(struct store *s);

enum store_sub_dir {
	STORE_SUB_XMPP_TO_SIP = 1, /* a partner user watches a SIP user */
	STORE_SUB_SIP_TO_XMPP = 2, /* a SIP user watches a partner user */
};
enum store_sub_state {
	STORE_SUB_PENDING = 1,	  /* asked, not yet authorised */
	STORE_SUB_ACTIVE = 2,	  /* authorised, notifications flow */
	STORE_SUB_TERMINATED = 3, /* ended; kept until the caller deletes it */
};

/* One subscription. Borrowed strings: the store copies what it keeps. */
struct store_sub {
	int dir;	     /* enum store_sub_dir */
	int state;	     /* enum store_sub_state */
	const char *jid;     /* bare XMPP JID of the partner-side user; required */
	const char *sip_uri; /* SIP AOR of the organisation's user; required */
	const char *watcher; /* which of several subscriptions of one pair (a SIP watcher's
			      * dialog, e.g. its Call-ID); NULL = "" (the only one) */
	/* SIP dialog (NULL/0 when none yet) */
	const char *call_id, *local_tag, *remote_tag, *local_uri, *remote_uri, *remote_target;
	const char *routes; /* route set, '\n'-separated, NULL if none */
	uint32_t local_cseq, remote_cseq;
	int64_t expires_at; /* unix seconds the SIP subscription expires / must be refreshed */
	int64_t updated_at;
};

/* Key = (dir, jid, sip_uri, watcher). Queue an upsert or a delete; strings are copied. Return 0,
 * PE_INVAL (bad dir/state, missing key string), PE_TOOBIG (queue bound reached by a new row,
 * or a string longer than 64 KiB), PE_NOMEM; or, when a put triggered a commit (max_batch)
 * that failed, still 0: the operation is queued and the failure logged and counted. */
int store_sub_put(struct store *s, const struct store_sub *sub);
int store_sub_del(struct store *s, int dir, const char *jid, const char *sip_uri,
		  const char *watcher);
/* Flushes, then calls cb for every stored subscription; sub and its strings are valid during
 * the call only. cb may queue puts and deletes but not flush, load or close. Returns 0, a
 * store_flush error (nothing is read then), UV_EIO. */
int store_sub_load(struct store *s, void (*cb)(void *arg, const struct store_sub *sub), void *arg);

/* Last presence of a remote contact (key = contact + resource; contact is a bare JID or a SIP
 * AOR, resource "" for none): an opaque blob the caller encodes (a PIDF, a protobuf), at most
 * 1 MiB. Returns as store_sub_put. */
int store_pres_put(struct store *s, const char *contact, const char *resource, const void *data,
		   size_t len, int64_t updated_at);
/* resource NULL deletes every resource of contact. */
int store_pres_del(struct store *s, const char *contact, const char *resource);
/* As store_sub_load; data may be NULL when len is 0. */
int store_pres_load(struct store *s,
		    void (*cb)(void *arg, const char *contact, const char *resource,
			       const void *data, size_t len, int64_t updated_at),
		    void *arg);

/* Thread <-> Call-ID bindings with an expiry (unix seconds). thread and call_id are required,
 * jid and sip_uri may be NULL. Returns as store_sub_put. */
int store_thread_put(struct store *s, const char *thread, const char *call_id, const char *jid,
		     const char *sip_uri, int64_t expires_at);
int store_thread_del(struct store *s, const char *thread);
/* Flushes, deletes the rows with expires_at <= now, then calls cb for the others. */
int store_thread_load(struct store *s, int64_t now,
		      void (*cb)(void *arg, const char *thread, const char *call_id,
				 const char *jid, const char *sip_uri, int64_t expires_at),
		      void *arg);

/* Federation partners managed with parleyctl (key = domain, in the policy's normalised
 * form): settings is the body of the partner's config section, "key = value" lines; the
 * store does not read it. Returns as store_sub_put. */
int store_partner_put(struct store *s, const char *domain, const char *settings,
		      int64_t updated_at);
int store_partner_del(struct store *s, const char *domain);
/* As store_sub_load, in domain order. */
int store_partner_load(struct store *s,
		       void (*cb)(void *arg, const char *domain, const char *settings,
				  int64_t updated_at),
		       void *arg);

struct store_stats {
	uint64_t queued;	/* operations waiting for a commit now (a gauge) */
	uint64_t committed;	/* operations written by successful commits, coalesced ones once */
	uint64_t batches;	/* successful commits */
	uint64_t errors;	/* failed commits */
	uint64_t last_batch_us; /* duration of the last successful commit */
	uint64_t coalesced;	/* operations that replaced a queued one for the same row */
	uint64_t rejected;	/* operations refused because the queue was full */
	uint64_t queued_bytes;	/* bytes held by the queued operations now (a gauge) */
};
/* The pointer stays valid until store_close; the figures change as the store works. */
const struct store_stats *store_stats(const struct store *s);

/* For tests: the SQLite connection (a sqlite3 *), to query PRAGMAs. */
void *store__db(struct store *s);

#endif
