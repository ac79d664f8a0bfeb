/* sip_locate: pool member syntax, failover order with down marks, the NAPTR choice,
 * and RFC 3263 end to end against a dnsmasq on 127.0.0.67:15353. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "err.h"
#include "log.h"
#include "resolver.h"
#include "sip_locate.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

static pid_t dns_pid;

static const char *hopstr(const struct sip_target *t)
{
	static char b[4][96];
	static int i;
	i = (i + 1) % 4;
	return sip_hop_str(&t->hop, b[i], sizeof b[i]);
}

static void test_target_parse(void **state)
{
	(void)state;
	struct sip_target t;
	assert_int_equal(sip_target_parse("udp:127.0.0.61:5070", &t), 0);
	assert_string_equal(hopstr(&t), "UDP 127.0.0.61:5070");
	assert_int_equal(sip_target_parse("TCP:127.0.0.61", &t), 0);
	assert_string_equal(hopstr(&t), "TCP 127.0.0.61:5060");
	assert_int_equal(sip_target_parse("tls:[::1];name=pool.corp.test", &t), 0);
	assert_string_equal(hopstr(&t), "TLS [::1]:5061");
	assert_string_equal(t.hop.tls_name, "pool.corp.test");
	const char *bad[] = {"127.0.0.1:5060",
			     "sctp:127.0.0.1",
			     "udp:pool.corp.test:5060",
			     "udp:127.0.0.1:0",
			     "udp:127.0.0.1:70000",
			     "udp:127.0.0.1:5x",
			     "tls:127.0.0.1;name=",
			     "udp:[::1",
			     NULL};
	for (int i = 0; bad[i]; i++)
		assert_int_equal(sip_target_parse(bad[i], &t), PE_INVAL);
}

static void test_order(void **state)
{
	(void)state;
	struct sip_target t[4];
	const char *m[] = {"udp:127.0.0.61", "udp:127.0.0.62", "udp:127.0.0.63", "udp:127.0.0.64"};
	for (int i = 0; i < 4; i++)
		assert_int_equal(sip_target_parse(m[i], &t[i]), 0);
	t[0].down = true;
	t[2].down = true;
	sip_locate__order(t, 4);
	/* up members first in their order, then the down ones in theirs */
	assert_string_equal(hopstr(&t[0]), "UDP 127.0.0.62:5060");
	assert_string_equal(hopstr(&t[1]), "UDP 127.0.0.64:5060");
	assert_string_equal(hopstr(&t[2]), "UDP 127.0.0.61:5060");
	assert_string_equal(hopstr(&t[3]), "UDP 127.0.0.63:5060");
}

static void test_naptr_pick(void **state)
{
	(void)state;
	struct resolver_naptr recs[] = {
	    {10, 10, "s", "SIP+D2T", "", "_sip._tcp.corp.test"},
	    {15, 10, "u", "E2U+sip", "!^.*$!sip:x@y!", ""}, /* not ours */
	    {20, 10, "s", "SIP+D2U", "", "_sip._udp.corp.test"},
	    {25, 10, "s", "SIP+D2S", "", "_sip._sctp.corp.test"}, /* SCTP: not spoken */
	    {30, 10, "S", "SIPS+D2T", "", "_sips._tcp.corp.test"},
	};
	char names[4][256];
	enum sip_proto protos[4];
	size_t n = sip_locate__naptr_pick(recs, 5, false, names, protos, 4);
	assert_int_equal(n, 3);
	assert_string_equal(names[0], "_sip._tcp.corp.test");
	assert_int_equal(protos[0], SIP_PROTO_TCP);
	assert_string_equal(names[1], "_sip._udp.corp.test");
	assert_int_equal(protos[1], SIP_PROTO_UDP);
	assert_string_equal(names[2], "_sips._tcp.corp.test");
	assert_int_equal(protos[2], SIP_PROTO_TLS);
	/* sips: TLS only */
	n = sip_locate__naptr_pick(recs, 5, true, names, protos, 4);
	assert_int_equal(n, 1);
	assert_int_equal(protos[0], SIP_PROTO_TLS);
	/* bounded by cap */
	assert_int_equal(sip_locate__naptr_pick(recs, 5, false, names, protos, 1), 1);
}

/* --- with a loop ------------------------------------------------------------------- */

struct got {
	int calls;
	int status;
	size_t n;
	char t[8][96];
	char name[8][64];
};

static void on_loc(void *arg, int status, const struct sip_target *t, size_t n)
{
	struct got *g = arg;
	g->calls++;
	g->status = status;
	g->n = n;
	for (size_t i = 0; i < n && i < 8; i++) {
		snprintf(g->t[i], sizeof g->t[i], "%s", hopstr(&t[i]));
		snprintf(g->name[i], sizeof g->name[i], "%s", t[i].hop.tls_name);
	}
}

static void run_until(uv_loop_t *loop, int *c, int want)
{
	uint64_t end = uv_now(loop) + 3000;
	while (*c < want && uv_now(loop) < end)
		uv_run(loop, UV_RUN_ONCE);
}

static void test_static_pool_marks(void **state)
{
	(void)state;
	uv_loop_t loop;
	uv_loop_init(&loop);
	const char *pool[] = {"tcp:127.0.0.61:5060", "tcp:127.0.0.62:5060", "udp:127.0.0.63:5070",
			      NULL};
	struct sip_locate_cfg cfg = {.pool = pool};
	char err[128];
	struct sip_locate *l = sip_locate_new(&loop, NULL, &cfg, err, sizeof err);
	assert_non_null(l);
	struct got g = {0};
	assert_int_equal(sip_locate_resolve(l, NULL, on_loc, &g), 0);
	assert_int_equal(g.calls, 0); /* from the loop only */
	run_until(&loop, &g.calls, 1);
	assert_int_equal(g.n, 3);
	assert_string_equal(g.t[0], "TCP 127.0.0.61:5060");
	/* the first member fails: it goes last until marked up again */
	struct sip_target t;
	sip_target_parse("tcp:127.0.0.61:5060", &t);
	sip_locate_mark(l, &t.hop, false);
	assert_int_equal(sip_locate_resolve(l, NULL, on_loc, &g), 0);
	run_until(&loop, &g.calls, 2);
	assert_string_equal(g.t[0], "TCP 127.0.0.62:5060");
	assert_string_equal(g.t[2], "TCP 127.0.0.61:5060");
	sip_locate_mark(l, &t.hop, true);
	assert_int_equal(sip_locate_resolve(l, NULL, on_loc, &g), 0);
	run_until(&loop, &g.calls, 3);
	assert_string_equal(g.t[0], "TCP 127.0.0.61:5060");
	size_t n;
	assert_non_null(sip_locate_pool(l, &n));
	assert_int_equal(n, 3);
	/* IP literal URIs need no resolver; names do */
	assert_int_equal(sip_locate_resolve(l, "sip:127.0.0.70:5080;transport=tcp", on_loc, &g), 0);
	run_until(&loop, &g.calls, 4);
	assert_int_equal(g.status, 0);
	assert_string_equal(g.t[0], "TCP 127.0.0.70:5080");
	assert_int_equal(sip_locate_resolve(l, "sips:[::1]", on_loc, &g), 0);
	run_until(&loop, &g.calls, 5);
	assert_string_equal(g.t[0], "TLS [::1]:5061");
	assert_int_equal(sip_locate_resolve(l, "sip:pool.corp.test", on_loc, &g), 0);
	run_until(&loop, &g.calls, 6);
	assert_int_equal(g.status, PE_STATE);
	assert_int_equal(g.n, 0);
	assert_int_equal(sip_locate_resolve(l, "mailto:x@y", on_loc, &g), PE_INVAL);
	/* cancel */
	assert_int_equal(sip_locate_resolve(l, NULL, on_loc, &g), 0);
	sip_locate_cancel(l, &g);
	uv_run(&loop, UV_RUN_NOWAIT);
	uv_run(&loop, UV_RUN_NOWAIT);
	assert_int_equal(g.calls, 6);
	sip_locate_free(l);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);

	const char *badpool[] = {"tcp:pool.corp.test", NULL};
	struct sip_locate_cfg bc = {.pool = badpool};
	assert_null(sip_locate_new(&loop, NULL, &bc, err, sizeof err));
	assert_non_null(strstr(err, "pool.corp.test"));
}

static void test_rfc3263_dns(void **state)
{
	(void)state;
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct resolver *res;
	const char *servers[] = {"127.0.0.67:15353", NULL};
	struct resolver_cfg rc = {.servers = servers, .timeout_ms = 500, .tries = 2};
	char err[128];
	assert_int_equal(resolver_new(&loop, &rc, &res, err, sizeof err), 0);
	struct sip_locate_cfg cfg = {.domain = "corp.test"};
	struct sip_locate *l = sip_locate_new(&loop, res, &cfg, err, sizeof err);
	assert_non_null(l);
	struct got g = {0};

	/* the pool: NAPTR → SRV (priority order) → A, TCP before UDP as NAPTR orders */
	assert_int_equal(sip_locate_resolve(l, NULL, on_loc, &g), 0);
	run_until(&loop, &g.calls, 1);
	assert_int_equal(g.status, 0);
	assert_int_equal(g.n, 3);
	assert_string_equal(g.t[0], "TCP 127.0.0.61:5070");
	assert_string_equal(g.name[0], "corp.test"); /* RFC 5922: the SIP domain */
	assert_string_equal(g.t[1], "TCP 127.0.0.62:5071");
	assert_string_equal(g.t[2], "UDP 127.0.0.61:5060");
	size_t n;
	sip_locate_pool(l, &n);
	assert_int_equal(n, 3);

	/* no NAPTR: SRV for each transport we speak, ours in preference order */
	assert_int_equal(sip_locate_resolve(l, "sip:bob@nonaptr.test", on_loc, &g), 0);
	run_until(&loop, &g.calls, 2);
	assert_int_equal(g.status, 0);
	assert_int_equal(g.n, 2);
	assert_string_equal(g.t[0], "TLS 127.0.0.61:5061");
	assert_string_equal(g.t[1], "UDP 127.0.0.62:5060");

	/* no NAPTR, no SRV: A record, UDP 5060 (TLS 5061 for sips) */
	assert_int_equal(sip_locate_resolve(l, "sip:plain.test", on_loc, &g), 0);
	run_until(&loop, &g.calls, 3);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.t[0], "UDP 127.0.0.63:5060");
	assert_int_equal(sip_locate_resolve(l, "sips:plain.test", on_loc, &g), 0);
	run_until(&loop, &g.calls, 4);
	assert_string_equal(g.t[0], "TLS 127.0.0.63:5061");
	assert_string_equal(g.name[0], "plain.test");

	/* an explicit port: A only; an explicit transport: its SRV */
	assert_int_equal(
	    sip_locate_resolve(l, "sip:pool2.corp.test:5099;transport=tcp", on_loc, &g), 0);
	run_until(&loop, &g.calls, 5);
	assert_string_equal(g.t[0], "TCP 127.0.0.62:5099");
	assert_int_equal(sip_locate_resolve(l, "sip:corp.test;transport=udp", on_loc, &g), 0);
	run_until(&loop, &g.calls, 6);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.t[0], "UDP 127.0.0.61:5060");

	/* a name that does not exist */
	assert_int_equal(sip_locate_resolve(l, "sip:nowhere.test", on_loc, &g), 0);
	run_until(&loop, &g.calls, 7);
	assert_int_equal(g.n, 0);
	assert_true(g.status < 0);

	/* cached: answered without DNS even after the server is gone */
	kill(dns_pid, SIGTERM);
	waitpid(dns_pid, NULL, 0);
	dns_pid = 0;
	assert_int_equal(sip_locate_resolve(l, NULL, on_loc, &g), 0);
	run_until(&loop, &g.calls, 8);
	assert_int_equal(g.status, 0);
	assert_int_equal(g.n, 3);

	sip_locate_free(l);
	resolver_free(res);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
}

static int group_setup(void **state)
{
	(void)state;
	dns_pid = fork();
	if (dns_pid == 0) {
		int fd = open("/dev/null", 1);
		dup2(fd, 1);
		dup2(fd, 2);
		execlp("dnsmasq", "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts",
		       "--listen-address=127.0.0.67", "--bind-interfaces", "--port=15353",
		       "--pid-file=", "--conf-file=/dev/null",
		       "--naptr-record=corp.test,10,10,s,SIP+D2T,,_sip._tcp.corp.test",
		       "--naptr-record=corp.test,20,10,s,SIP+D2U,,_sip._udp.corp.test",
		       "--srv-host=_sip._tcp.corp.test,pool2.corp.test,5071,20,5",
		       "--srv-host=_sip._tcp.corp.test,pool1.corp.test,5070,10,5",
		       "--srv-host=_sip._udp.corp.test,pool1.corp.test,5060,10,5",
		       "--srv-host=_sips._tcp.nonaptr.test,pool1.corp.test,5061,10,5",
		       "--srv-host=_sip._udp.nonaptr.test,pool2.corp.test,5060,10,5",
		       "--host-record=pool1.corp.test,127.0.0.61",
		       "--host-record=pool2.corp.test,127.0.0.62",
		       "--host-record=plain.test,127.0.0.63", (char *)NULL);
		_exit(127);
	}
	usleep(300000);
	return dns_pid > 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	if (dns_pid > 0) {
		kill(dns_pid, SIGTERM);
		waitpid(dns_pid, NULL, 0);
	}
	return 0;
}

int main(void)
{
	log_init("test_sip_locate", LL_ERROR);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_target_parse), cmocka_unit_test(test_order),
	    cmocka_unit_test(test_naptr_pick),	 cmocka_unit_test(test_static_pool_marks),
	    cmocka_unit_test(test_rfc3263_dns),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
