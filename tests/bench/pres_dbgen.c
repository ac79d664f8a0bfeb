/* pres_dbgen: writes a gateway store with stored subscriptions for the presence benchmarks
 * (run.py, section presence): the state a gateway with that many live subscriptions leaves
 * behind, so that a gateway started on it loads and resumes them.
 *
 *   pres_dbgen --db PATH --pool IP:PORT [--uac N] [--uas M] [--expires-in S]
 *
 * --uac N: u<k>@partner.test watches bob<k>@corp.test, k in 0..N-1: active, with an
 *   established SUBSCRIBE dialog toward the pool (remote target sip:bob<k>@IP:PORT over TCP,
 *   the pool's tag p<k>), expiring S seconds from now (S <= 0: already due, so the gateway
 *   refreshes them all at its first tick).
 * --uas M: bob<k>@corp.test watches u<k>@partner.test, k in 0..M-1: active dialogs whose
 *   watcher is at the pool, with 3600 s left, and u<k>'s last presence (one resource).
 * Prints "dbgen uac=N uas=M elapsed_ms=T". */
#include "log.h"
#include "store.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void must(int r, const char *what)
{
	if (r) {
		fprintf(stderr, "pres_dbgen: %s failed: %d\n", what, r);
		exit(1);
	}
}

/* Subscription k of a direction: u<k>@partner.test and bob<k>@corp.test in an established
 * dialog with the pool; a SIP -> XMPP one also stores u<k>'s last presence. */
static void put_sub(struct store *s, int dir, long k, const char *pool, int64_t now,
		    int64_t expires_at)
{
	bool uac = dir == STORE_SUB_XMPP_TO_SIP;
	char jid[64], sip[64], call_id[64], ltag[32], rtag[32], luri[64], target[128];
	snprintf(jid, sizeof jid, "u%ld@partner.test", k);
	snprintf(sip, sizeof sip, "sip:bob%ld@corp.test", k);
	snprintf(call_id, sizeof call_id,
		 uac ? "db%ld-4f1c9a2e7b@gateway.corp.test" : "w%ld@pres_pool", k);
	snprintf(ltag, sizeof ltag, uac ? "gl%ld" : "gw%ld", k);
	snprintf(rtag, sizeof rtag, uac ? "p%ld" : "w%ld", k);
	snprintf(luri, sizeof luri, "sip:u%ld@partner.test", k);
	snprintf(target, sizeof target, "sip:bob%ld@%s;transport=tcp", k, pool);
	struct store_sub sub = {
	    .dir = dir,
	    .state = STORE_SUB_ACTIVE,
	    .jid = jid,
	    .sip_uri = sip,
	    .watcher = uac ? NULL : call_id,
	    .call_id = call_id,
	    .local_tag = ltag,
	    .remote_tag = rtag,
	    .local_uri = luri,
	    .remote_uri = sip,
	    .remote_target = target,
	    .local_cseq = 1,
	    .remote_cseq = 1,
	    .expires_at = expires_at,
	    .updated_at = now,
	};
	must(store_sub_put(s, &sub), "store_sub_put");
	if (!uac) {
		static const char blob[] = "2\n1\n1\nen\nworking from home today";
		must(store_pres_put(s, jid, "r", blob, sizeof blob - 1, now), "store_pres_put");
	}
	if (k % 10000 == 9999)
		must(store_flush(s), "store_flush");
}

int main(int argc, char **argv)
{
	const char *db = NULL, *pool = NULL;
	long uac = 0, uas = 0, exp_in = 3600;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--db"))
			db = argv[i + 1];
		else if (!strcmp(argv[i], "--pool"))
			pool = argv[i + 1];
		else if (!strcmp(argv[i], "--uac"))
			uac = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--uas"))
			uas = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--expires-in"))
			exp_in = atol(argv[i + 1]);
		else {
			fprintf(stderr, "unknown option %s\n", argv[i]);
			return 2;
		}
	}
	if (!db || !pool || uac < 0 || uas < 0) {
		fprintf(stderr, "usage: pres_dbgen --db PATH --pool IP:PORT [--uac N] [--uas M] "
				"[--expires-in S]\n");
		return 2;
	}
	log_init("pres_dbgen", LL_WARN);
	struct store_conf c = {.path = db, .max_batch = 10000};
	struct store *s;
	char err[256];
	if (store_open(NULL, &c, &s, err, sizeof err)) {
		fprintf(stderr, "pres_dbgen: %s\n", err);
		return 1;
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int64_t now = (int64_t)time(NULL);
	for (long k = 0; k < uac; k++)
		put_sub(s, STORE_SUB_XMPP_TO_SIP, k, pool, now, now + exp_in);
	for (long k = 0; k < uas; k++)
		put_sub(s, STORE_SUB_SIP_TO_XMPP, k, pool, now, now + 3600);
	must(store_flush(s), "store_flush");
	store_close(s);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("dbgen uac=%ld uas=%ld elapsed_ms=%.0f\n", uac, uas,
	       (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	return 0;
}
