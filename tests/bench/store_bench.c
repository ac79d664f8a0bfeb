/* store: batched vs autocommit upserts, refresh-style updates, and the start-up load of
 * 100 000 subscriptions (time and peak RSS). Prints key=value lines; run by run.py "store".
 *
 *   store_bench [--n ROWS] [--auto ROWS] [--dir DIR]
 *   store_bench load PATH   (internal: the load phase, in a fresh process so its peak RSS is
 *                            its own)
 */
#include "log.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static long maxrss_kib(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

static double ms_since(uint64_t t0)
{
	return (double)(uv_hrtime() - t0) / 1e6;
}

/* Strings of the sizes a Lync/Skype front-end pool and XMPP partners produce. */
struct row {
	char jid[48], sip_uri[64], call_id[64], local_tag[24], remote_tag[24], local_uri[64],
	    remote_target[112], routes[128];
	struct store_sub sub;
};

static void make_row(struct row *r, unsigned i, uint32_t cseq, int64_t expires)
{
	unsigned h = i * 2654435761u;
	snprintf(r->jid, sizeof r->jid, "user%06u@partner%02u.example.org", i, i % 40);
	snprintf(r->sip_uri, sizeof r->sip_uri, "sip:firstname.lastname%06u@corp.example.com", i);
	snprintf(r->call_id, sizeof r->call_id, "%08x%08x%08x%08x@gw01.corp.example.com", h,
		 h ^ 0x5bd1e995u, i, h * 31u);
	snprintf(r->local_tag, sizeof r->local_tag, "%08x%08x", h, i);
	snprintf(r->remote_tag, sizeof r->remote_tag, "%08x-%04x", h ^ i, i & 0xffff);
	snprintf(r->local_uri, sizeof r->local_uri, "sip:user%06u@partner%02u.example.org", i,
		 i % 40);
	snprintf(r->remote_target, sizeof r->remote_target,
		 "sip:firstname.lastname%06u@10.%u.%u.%u:5061;transport=tls;ms-opaque=%08x", i,
		 (i >> 16) & 255, (i >> 8) & 255, i & 255, h);
	snprintf(r->routes, sizeof r->routes,
		 "<sip:fe%02u.pool.corp.example.com:5061;transport=tls;lr>\n"
		 "<sip:dir01.corp.example.com:5061;transport=tls;lr>",
		 i % 12);
	r->sub = (struct store_sub){
	    .dir = (i & 1) ? STORE_SUB_SIP_TO_XMPP : STORE_SUB_XMPP_TO_SIP,
	    .state = STORE_SUB_ACTIVE,
	    .jid = r->jid,
	    .sip_uri = r->sip_uri,
	    .call_id = r->call_id,
	    .local_tag = r->local_tag,
	    .remote_tag = r->remote_tag,
	    .local_uri = r->local_uri,
	    .remote_uri = r->sip_uri,
	    .remote_target = r->remote_target,
	    .routes = r->routes,
	    .local_cseq = cseq,
	    .remote_cseq = 1,
	    .expires_at = expires,
	    .updated_at = 1700000000,
	};
}

static struct store *open_at(const char *path, uint32_t max_batch)
{
	struct store_conf c = {.path = path, .max_batch = max_batch};
	struct store *s = NULL;
	char err[512];
	if (store_open(NULL, &c, &s, err, sizeof err)) {
		fprintf(stderr, "store_bench: %s\n", err);
		exit(1);
	}
	return s;
}

static void must(int r, const char *what)
{
	if (r) {
		fprintf(stderr, "store_bench: %s: %d\n", what, r);
		exit(1);
	}
}

static void rm_db(const char *path)
{
	char p[600];
	const char *sfx[] = {"", "-wal", "-shm"};
	for (int i = 0; i < 3; i++) {
		snprintf(p, sizeof p, "%s%s", path, sfx[i]);
		unlink(p);
	}
}

/* Puts rows [0, n) with the given cseq/expiry, committing every `batch` (1 = autocommit).
 * Returns wall ms; *commit_ms gets the part spent in store_flush. */
static double put_rows(struct store *s, unsigned n, unsigned batch, uint32_t cseq, int64_t expires,
		       double *commit_ms)
{
	struct row r;
	double in_flush = 0;
	uint64_t t0 = uv_hrtime();
	for (unsigned i = 0; i < n; i++) {
		/* Rows in a pseudo-random order (a stride prime to n), as subscriptions and their
		 * refreshes come: sorted keys would fill and update pages in order, which real
		 * traffic never does. */
		make_row(&r, (unsigned)(((uint64_t)i * 7919u + 13u) % n), cseq, expires);
		must(store_sub_put(s, &r.sub), "put");
		if ((i + 1) % batch == 0) {
			uint64_t t1 = uv_hrtime();
			must(store_flush(s), "flush");
			in_flush += ms_since(t1);
		}
	}
	uint64_t t1 = uv_hrtime();
	must(store_flush(s), "flush");
	in_flush += ms_since(t1);
	if (commit_ms)
		*commit_ms = in_flush;
	return ms_since(t0);
}

/* Building the strings is part of put_rows' time; this is what it costs alone. */
static double gen_only(unsigned n)
{
	struct row r;
	volatile unsigned sink = 0;
	uint64_t t0 = uv_hrtime();
	for (unsigned i = 0; i < n; i++) {
		make_row(&r, i, 1, 0);
		sink += (unsigned)r.jid[5];
	}
	(void)sink;
	return ms_since(t0);
}

/* ---- the load phase (a separate process) ---- */

/* What the caller does with each row: keep it, all strings in one allocation. */
struct kept {
	struct store_sub sub;
	char mem[];
};

struct load_ctx {
	struct kept **v;
	size_t n, cap;
	size_t bytes;
};

static char *keep_str(char **w, const char *p)
{
	if (!p)
		return NULL;
	size_t n = strlen(p) + 1;
	char *d = *w;
	memcpy(d, p, n);
	*w += n;
	return d;
}

static void on_keep(void *arg, const struct store_sub *u)
{
	struct load_ctx *c = arg;
	const char *strs[] = {u->jid,	     u->sip_uri,       u->call_id,
			      u->local_tag,  u->remote_tag,    u->local_uri,
			      u->remote_uri, u->remote_target, u->routes};
	size_t len = 0;
	for (size_t i = 0; i < 9; i++)
		len += strs[i] ? strlen(strs[i]) + 1 : 0;
	struct kept *k = malloc(sizeof *k + len);
	if (!k)
		exit(1);
	char *w = k->mem;
	k->sub = *u;
	k->sub.jid = keep_str(&w, u->jid);
	k->sub.sip_uri = keep_str(&w, u->sip_uri);
	k->sub.call_id = keep_str(&w, u->call_id);
	k->sub.local_tag = keep_str(&w, u->local_tag);
	k->sub.remote_tag = keep_str(&w, u->remote_tag);
	k->sub.local_uri = keep_str(&w, u->local_uri);
	k->sub.remote_uri = keep_str(&w, u->remote_uri);
	k->sub.remote_target = keep_str(&w, u->remote_target);
	k->sub.routes = keep_str(&w, u->routes);
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 1024;
		c->v = realloc(c->v, c->cap * sizeof *c->v);
		if (!c->v)
			exit(1);
	}
	c->v[c->n++] = k;
	c->bytes += sizeof *k + len;
}

static void on_count(void *arg, const struct store_sub *u)
{
	(*(size_t *)arg) += (size_t)u->local_cseq & 1;
}

static int load_phase(const char *path)
{
	long rss0 = maxrss_kib();
	uint64_t t0 = uv_hrtime();
	struct store *s = open_at(path, 0);
	double open_ms = ms_since(t0);
	struct load_ctx c = {0};
	t0 = uv_hrtime();
	must(store_sub_load(s, on_keep, &c), "load");
	double load_ms = ms_since(t0);
	long rss1 = maxrss_kib();
	size_t odd = 0;
	t0 = uv_hrtime();
	must(store_sub_load(s, on_count, &odd), "load");
	double scan_ms = ms_since(t0);
	store_close(s);
	printf("store load rows=%zu open_ms=%.2f load_ms=%.1f load_us_per_row=%.2f "
	       "scan_only_ms=%.1f kept_bytes=%zu rss_start_kib=%ld peak_rss_kib=%ld\n",
	       c.n, open_ms, load_ms, load_ms * 1e3 / (double)(c.n ? c.n : 1), scan_ms, c.bytes,
	       rss0, rss1);
	for (size_t i = 0; i < c.n; i++)
		free(c.v[i]);
	free(c.v);
	return 0;
}

static long long file_size(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

int main(int argc, char **argv)
{
	unsigned n = 100000, nauto = 20000;
	const char *dir = NULL;
	log_init("store_bench", LL_WARN);
	if (argc == 3 && strcmp(argv[1], "load") == 0)
		return load_phase(argv[2]);
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--n"))
			n = (unsigned)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--auto"))
			nauto = (unsigned)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--dir"))
			dir = argv[i + 1];
		else {
			fprintf(stderr,
				"usage: store_bench [--n ROWS] [--auto ROWS] [--dir DIR]\n");
			return 2;
		}
	}
	char tmpl[] = "/tmp/parley-store-bench-XXXXXX";
	if (!dir) {
		dir = mkdtemp(tmpl);
		if (!dir) {
			perror("mkdtemp");
			return 1;
		}
	}
	char pa[512], pb[512];
	snprintf(pa, sizeof pa, "%s/autocommit.db", dir);
	snprintf(pb, sizeof pb, "%s/batched.db", dir);
	rm_db(pa);
	rm_db(pb);

	double gen_ms = gen_only(n);
	printf("store gen rows=%u us_per_row=%.3f (building the row strings, included below)\n", n,
	       gen_ms * 1e3 / n);

	/* Batched: inserts of new rows, 1000 per transaction (the default max_batch). */
	struct store *s = open_at(pb, 0);
	double commit_ms = 0;
	double ins_ms = put_rows(s, n, 1000, 1, 1700028800, &commit_ms);
	const struct store_stats *st = store_stats(s);
	printf("store batched_insert rows=%u batch=1000 us_per_op=%.2f commit_us_per_op=%.2f "
	       "queue_us_per_op=%.2f ops_s=%.0f last_batch_us=%llu\n",
	       n, ins_ms * 1e3 / n, commit_ms * 1e3 / n, (ins_ms - commit_ms) * 1e3 / n,
	       n / (ins_ms / 1e3), (unsigned long long)st->last_batch_us);

	/* Refresh: existing rows again with a new expiry and local CSeq (ON CONFLICT ... DO
	 * UPDATE), in batches of 1000, 100 (what a lightly loaded gateway commits every flush_ms)
	 * and 1 (autocommit, the comparison), all on the same table of n rows. */
	static const unsigned batches[] = {10000, 1000, 100, 1};
	for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
		unsigned m = batches[b] == 1 ? nauto : n;
		double upd_ms = put_rows(s, m, batches[b], (uint32_t)(2 + b),
					 1700057600 + (int64_t)b, &commit_ms);
		printf("store %s rows=%u table_rows=%u batch=%u us_per_op=%.2f "
		       "commit_us_per_op=%.2f updates_s=%.0f\n",
		       batches[b] == 1 ? "autocommit_refresh" : "batched_refresh", m, n, batches[b],
		       upd_ms * 1e3 / m, commit_ms * 1e3 / m, m / (upd_ms / 1e3));
	}

	/* Autocommit inserts into a new, small database: the best case for autocommit. */
	struct store *a = open_at(pa, 0);
	double auto_ms = put_rows(a, nauto, 1, 1, 1700028800, NULL);
	store_close(a);
	printf("store autocommit_insert rows=%u (new database) us_per_op=%.2f ops_s=%.0f\n", nauto,
	       auto_ms * 1e3 / nauto, nauto / (auto_ms / 1e3));

	/* Presence: a 400-byte PIDF per contact, batched. */
	char pidf[400];
	memset(pidf, 'p', sizeof pidf);
	char contact[64];
	uint64_t t0 = uv_hrtime();
	for (unsigned i = 0; i < n; i++) {
		unsigned k = (unsigned)(((uint64_t)i * 7919u + 13u) % n);
		snprintf(contact, sizeof contact, "user%06u@partner%02u.example.org", k, k % 40);
		must(store_pres_put(s, contact, "", pidf, sizeof pidf, 1700000000 + i), "pres put");
		if ((i + 1) % 1000 == 0)
			must(store_flush(s), "flush");
	}
	must(store_flush(s), "flush");
	double pres_ms = ms_since(t0);
	printf("store batched_presence rows=%u blob_bytes=%zu us_per_op=%.2f ops_s=%.0f\n", n,
	       sizeof pidf, pres_ms * 1e3 / n, n / (pres_ms / 1e3));
	/* Small rows (thread bindings, ~110 bytes), to compare with the per-row costs above:
	 * autocommit, then batched. */
	char thread[48], call_id[64];
	for (int pass = 0; pass < 2; pass++) {
		unsigned m = pass ? n : nauto, batch = pass ? 1000 : 1;
		t0 = uv_hrtime();
		for (unsigned i = 0; i < m; i++) {
			snprintf(thread, sizeof thread, "th-%08x-%06u", i * 2654435761u, i);
			snprintf(call_id, sizeof call_id, "%08x%08x@gw01.corp.example.com",
				 i * 2654435761u, i);
			must(store_thread_put(s, thread, call_id, "user@partner.example.org",
					      "sip:user@corp.example.com", 1700000000 + i),
			     "thread put");
			if ((i + 1) % batch == 0)
				must(store_flush(s), "flush");
		}
		must(store_flush(s), "flush");
		double th_ms = ms_since(t0);
		printf("store %s_small_row rows=%u batch=%u us_per_op=%.2f ops_s=%.0f\n",
		       pass ? "batched" : "autocommit", m, batch, th_ms * 1e3 / m,
		       m / (th_ms / 1e3));
	}
	store_close(s);
	printf("store file db_bytes=%lld bytes_per_sub_and_presence_row=%.0f\n", file_size(pb),
	       (double)file_size(pb) / n);

	/* The start-up load, in a fresh process. */
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		execl("/proc/self/exe", argv[0], "load", pb, (char *)NULL);
		_exit(127);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	rm_db(pa);
	rm_db(pb);
	if (dir == tmpl)
		rmdir(dir);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
