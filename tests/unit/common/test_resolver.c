/* Resolver tests: pure helpers by table, and the whole module against a real dnsmasq
 * child on 127.0.0.153, a silent UDP socket (timeouts) and a closed port. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "err.h"
#include "resolver.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define DM_ADDR "127.0.0.153"
#define DNSMASQ "/usr/sbin/dnsmasq"

static pid_t dm_pid;
static char dm_server[64];     /* "127.0.0.153:<port>" */
static char silent_server[64]; /* a bound UDP socket that never answers */
static char closed_server[64]; /* a UDP port nobody listens on */
static int silent_fd = -1;

/* ---- Child processes and sockets ---- */

/* Finds a port free for both UDP and TCP on addr (dnsmasq needs both). */
static uint16_t free_port(const char *addr)
{
	for (int attempt = 0; attempt < 50; attempt++) {
		struct sockaddr_in sa = {.sin_family = AF_INET};
		socklen_t sl = sizeof sa;
		inet_pton(AF_INET, addr, &sa.sin_addr);
		int u = socket(AF_INET, SOCK_DGRAM, 0);
		assert_true(u >= 0);
		assert_int_equal(bind(u, (struct sockaddr *)&sa, sizeof sa), 0);
		assert_int_equal(getsockname(u, (struct sockaddr *)&sa, &sl), 0);
		int t = socket(AF_INET, SOCK_STREAM, 0);
		assert_true(t >= 0);
		int ok = bind(t, (struct sockaddr *)&sa, sizeof sa) == 0;
		close(t);
		close(u);
		if (ok)
			return ntohs(sa.sin_port);
	}
	fail_msg("no free port on %s", addr);
	return 0;
}

static bool tcp_connects(const char *addr, uint16_t port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	inet_pton(AF_INET, addr, &sa.sin_addr);
	int s = socket(AF_INET, SOCK_STREAM, 0);
	bool ok = s >= 0 && connect(s, (struct sockaddr *)&sa, sizeof sa) == 0;
	if (s >= 0)
		close(s);
	return ok;
}

static int start_dnsmasq(void)
{
	uint16_t port = free_port(DM_ADDR);
	char listen[64], portarg[32];
	snprintf(listen, sizeof listen, "--listen-address=%s", DM_ADDR);
	snprintf(portarg, sizeof portarg, "--port=%u", (unsigned)port);
	snprintf(dm_server, sizeof dm_server, "%s:%u", DM_ADDR, (unsigned)port);

	char *argv[] = {
	    DNSMASQ, "--keep-in-foreground", "--no-resolv", "--no-hosts", "--bind-interfaces",
	    listen, portarg, "--pid-file", "--log-facility=/dev/null",
	    /* Unknown names under .test are NXDOMAIN, not forwarded (or REFUSED). */
	    "--local=/test/",
	    /* Two priorities; weights 60 and 0 inside priority 10. */
	    "--srv-host=_xmpp-server._tcp.x.test,c.x.test,5271,20,0",
	    "--srv-host=_xmpp-server._tcp.x.test,a.x.test,5269,10,60",
	    "--srv-host=_xmpp-server._tcp.x.test,b.x.test,5270,10,0",
	    /* No target: dnsmasq answers 0 0 1 "." (checked on the wire). */
	    "--srv-host=_xmpp-server._tcp.none.test",
	    "--host-record=both.x.test,192.0.2.1,2001:db8::1", "--host-record=v4.x.test,192.0.2.2",
	    "--host-record=v6.x.test,2001:db8::6", "--host-record=multi.x.test,192.0.2.10",
	    "--host-record=multi.x.test,192.0.2.11", "--host-record=multi.x.test,2001:db8::10",
	    "--naptr-record=x.test,20,10,S,SIP+D2U,,_sip._udp.x.test",
	    "--naptr-record=x.test,10,20,S,SIP+D2T,,_sip._tcp.x.test",
	    "--naptr-record=x.test,10,10,S,SIPS+D2T,,_sips._tcp.x.test",
	    "--naptr-record=re.test,100,10,U,E2U+sip,!^.*$!sip:info@example.com!", NULL};

	/* 80 SRV records: over 1232 bytes, so the UDP answer is truncated and c-ares
	 * retries over TCP; and more than RESOLVER_MAX_RECORDS. */
	char *many[81];
	char *full[sizeof argv / sizeof argv[0] + 80];
	size_t k = 0;
	for (; argv[k]; k++)
		full[k] = argv[k];
	for (int i = 0; i < 80; i++) {
		char buf[128];
		snprintf(buf, sizeof buf, "--srv-host=_many._tcp.x.test,h%02d.x.test,%d,%d,%d", i,
			 6000 + i, i % 4, i);
		many[i] = strdup(buf);
		full[k++] = many[i];
	}
	full[k] = NULL;

	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDWR);
		if (devnull >= 0)
			dup2(devnull, STDOUT_FILENO);
		execv(DNSMASQ, full);
		_exit(127);
	}
	for (int i = 0; i < 80; i++)
		free(many[i]);
	dm_pid = pid;
	/* dnsmasq listens on TCP as well: a connect proves it is serving. */
	for (int i = 0; i < 500; i++) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			dm_pid = 0;
			fprintf(stderr, "dnsmasq exited early (status %d)\n", st);
			return -1;
		}
		if (tcp_connects(DM_ADDR, port))
			return 0;
		usleep(10000);
	}
	fprintf(stderr, "dnsmasq did not start on %s\n", dm_server);
	return -1;
}

static int group_setup(void **state)
{
	(void)state;
	if (access(DNSMASQ, X_OK) != 0) {
		fprintf(stderr, "%s missing: install dnsmasq-base\n", DNSMASQ);
		return -1;
	}
	if (start_dnsmasq() < 0)
		return -1;

	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof sa;
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	silent_fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (silent_fd < 0 || bind(silent_fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    getsockname(silent_fd, (struct sockaddr *)&sa, &sl) < 0)
		return -1;
	snprintf(silent_server, sizeof silent_server, "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));

	/* A port that was just free: queries there meet ICMP port unreachable. */
	snprintf(closed_server, sizeof closed_server, "127.0.0.1:%u",
		 (unsigned)free_port("127.0.0.1"));
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	if (dm_pid > 0) {
		kill(dm_pid, SIGTERM);
		waitpid(dm_pid, NULL, 0);
		dm_pid = 0;
	}
	if (silent_fd >= 0)
		close(silent_fd);
	return 0;
}

/* ---- Loop fixture ---- */

struct fx {
	uv_loop_t loop;
	uv_timer_t guard;
	bool expired;
	struct resolver *r;
};

static void on_guard(uv_timer_t *t)
{
	struct fx *f = t->data;
	f->expired = true;
	uv_stop(t->loop);
}

static struct fx *fx_new(const char *const *servers, uint32_t timeout_ms, uint32_t tries)
{
	struct fx *f = calloc(1, sizeof *f);
	assert_non_null(f);
	assert_int_equal(uv_loop_init(&f->loop), 0);
	uv_timer_init(&f->loop, &f->guard);
	f->guard.data = f;
	struct resolver_cfg cfg = {.servers = servers, .timeout_ms = timeout_ms, .tries = tries};
	char err[200] = "";
	int rc = resolver_new(&f->loop, &cfg, &f->r, err, sizeof err);
	if (rc != 0)
		fail_msg("resolver_new: %s (%s)", pe_strerror(rc), err);
	return f;
}

static struct fx *fx_dm(void)
{
	static const char *servers[2];
	servers[0] = dm_server;
	return fx_new(servers, 1000, 2);
}

/* Runs the loop until *count reaches want or ms pass (then fails). */
static void run_until(struct fx *f, const int *count, int want, uint64_t ms)
{
	f->expired = false;
	uv_timer_start(&f->guard, on_guard, ms, 0);
	while (*count < want && !f->expired)
		uv_run(&f->loop, UV_RUN_ONCE);
	uv_timer_stop(&f->guard);
	if (*count < want)
		fail_msg("timed out after %llu ms waiting for %d callbacks (got %d)",
			 (unsigned long long)ms, want, *count);
}

/* Runs the loop until the resolver holds nothing, bounded by ms. */
static void run_until_idle(struct fx *f, uint64_t ms)
{
	f->expired = false;
	uv_timer_start(&f->guard, on_guard, ms, 0);
	while (resolver_pending(f->r) > 0 && !f->expired)
		uv_run(&f->loop, UV_RUN_ONCE);
	uv_timer_stop(&f->guard);
	assert_int_equal(resolver_pending(f->r), 0);
}

/* Frees the resolver (if still there), drains the loop and checks nothing is left. */
static void fx_free(struct fx *f)
{
	resolver_free(f->r);
	uv_close((uv_handle_t *)&f->guard, NULL);
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	free(f);
}

/* ---- Result recorders ---- */

#define MAXR 16

struct srv_res {
	int calls;
	int status;
	size_t n;
	bool no_service;
	char target[MAXR][256];
	uint16_t port[MAXR], prio[MAXR], weight[MAXR];
};

static void on_srv(void *arg, int status, const struct resolver_srv *recs, size_t n,
		   bool no_service)
{
	struct srv_res *s = arg;
	s->calls++;
	s->status = status;
	s->n = n;
	s->no_service = no_service;
	assert_true(n <= MAXR);
	assert_true(n == 0 || recs != NULL);
	for (size_t i = 0; i < n; i++) {
		snprintf(s->target[i], sizeof s->target[i], "%s", recs[i].target);
		s->port[i] = recs[i].port;
		s->prio[i] = recs[i].priority;
		s->weight[i] = recs[i].weight;
	}
}

struct addr_res {
	int calls;
	int status;
	size_t n;
	char addr[MAXR][INET6_ADDRSTRLEN];
	int fam[MAXR];
};

static void on_addr(void *arg, int status, const char *const *addrs, const int *families, size_t n)
{
	struct addr_res *a = arg;
	a->calls++;
	a->status = status;
	a->n = n;
	assert_true(n <= MAXR);
	assert_true(status != 0 || n >= 1);
	for (size_t i = 0; i < n; i++) {
		snprintf(a->addr[i], sizeof a->addr[i], "%s", addrs[i]);
		a->fam[i] = families[i];
	}
}

struct naptr_res {
	int calls;
	int status;
	size_t n;
	uint16_t order[MAXR], pref[MAXR];
	char flags[MAXR][16], service[MAXR][32], regexp[MAXR][128], repl[MAXR][128];
};

static void on_naptr(void *arg, int status, const struct resolver_naptr *recs, size_t n)
{
	struct naptr_res *r = arg;
	r->calls++;
	r->status = status;
	r->n = n;
	assert_true(n <= MAXR);
	for (size_t i = 0; i < n; i++) {
		r->order[i] = recs[i].order;
		r->pref[i] = recs[i].preference;
		snprintf(r->flags[i], sizeof r->flags[i], "%s", recs[i].flags);
		snprintf(r->service[i], sizeof r->service[i], "%s", recs[i].service);
		snprintf(r->regexp[i], sizeof r->regexp[i], "%s", recs[i].regexp);
		snprintf(r->repl[i], sizeof r->repl[i], "%s", recs[i].replacement);
	}
}

/* ---- Pure helpers ---- */

struct server_case {
	const char *in;
	int rc;
	const char *canon; /* resolver__format_server of the result */
};

static const struct server_case server_cases[] = {
    {"127.0.0.1", 0, "127.0.0.1:53"},
    {"127.0.0.153:5353", 0, "127.0.0.153:5353"},
    {"10.0.0.1:1", 0, "10.0.0.1:1"},
    {"10.0.0.1:65535", 0, "10.0.0.1:65535"},
    {"10.0.0.1:053", 0, "10.0.0.1:53"},
    {"[::1]:5353", 0, "[::1]:5353"},
    {"[::1]", 0, "[::1]:53"},
    {"::1", 0, "[::1]:53"},
    {"2001:DB8::0:1", 0, "[2001:db8::1]:53"},
    {"2001:db8::1:53", 0, "[2001:db8::1:53]:53"}, /* bare IPv6 never carries a port */
    {"[::ffff:192.0.2.1]:99", 0, "[::ffff:192.0.2.1]:99"},
    {"", PE_INVAL, NULL},
    {":53", PE_INVAL, NULL},
    {"127.0.0.1:", PE_INVAL, NULL},
    {"127.0.0.1:0", PE_INVAL, NULL},
    {"127.0.0.1:65536", PE_INVAL, NULL},
    {"127.0.0.1:123456", PE_INVAL, NULL},
    {"127.0.0.1:+53", PE_INVAL, NULL},
    {"127.0.0.1:5a", PE_INVAL, NULL},
    {"127.0.0.1 ", PE_INVAL, NULL},
    {" 127.0.0.1", PE_INVAL, NULL},
    {"127.0.0", PE_INVAL, NULL},
    {"localhost", PE_INVAL, NULL},
    {"localhost:53", PE_INVAL, NULL},
    {"[127.0.0.1]:53", PE_INVAL, NULL},
    {"[::1", PE_INVAL, NULL},
    {"[::1]:", PE_INVAL, NULL},
    {"[::1]53", PE_INVAL, NULL},
    {"[::1]:53x", PE_INVAL, NULL},
    {"[]:53", PE_INVAL, NULL},
    {"fe80::1%lo", PE_INVAL, NULL},
    {"[fe80::1%lo]:53", PE_INVAL, NULL},
    {"1.2.3.4:5:6", PE_INVAL, NULL},
    {"[1111:2222:3333:4444:5555:6666:7777:8888]:65535", 0,
     "[1111:2222:3333:4444:5555:6666:7777:8888]:65535"},
    {"[0000:0000:0000:0000:0000:ffff:192.168.100.200]:65535000000", PE_INVAL, NULL},
};

static void test_parse_server_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof server_cases / sizeof server_cases[0]; i++) {
		const struct server_case *c = &server_cases[i];
		struct resolver_server s;
		char out[64];
		int rc = resolver__parse_server(c->in, strlen(c->in), &s);
		if (rc != c->rc)
			fail_msg("\"%s\": rc %d, want %d", c->in, rc, c->rc);
		if (rc == 0) {
			assert_true(resolver__format_server(&s, out, sizeof out) > 0);
			assert_string_equal(out, c->canon);
		}
	}
}

/* Every prefix of every case: no crash, and whatever parses formats and re-parses to
 * the same server. Also: the parser must not read past len. */
static void test_parse_server_prefixes(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof server_cases / sizeof server_cases[0]; i++) {
		const char *in = server_cases[i].in;
		size_t len = strlen(in);
		for (size_t k = 0; k <= len; k++) {
			char *p = malloc(k ? k : 1); /* exact size: ASan catches over-reads */
			assert_non_null(p);
			memcpy(p, in, k);
			struct resolver_server a, b;
			if (resolver__parse_server(p, k, &a) == 0) {
				char out[64];
				int n = resolver__format_server(&a, out, sizeof out);
				assert_true(n > 0);
				assert_int_equal(resolver__parse_server(out, (size_t)n, &b), 0);
				assert_int_equal(a.family, b.family);
				assert_int_equal(a.port, b.port);
				assert_memory_equal(&a.addr, &b.addr, a.family == AF_INET ? 4 : 16);
			}
			free(p);
		}
	}
	/* An embedded NUL is never part of an address. */
	struct resolver_server s;
	assert_int_equal(resolver__parse_server("1.2.3.4\0:53", 11, &s), PE_INVAL);
	assert_int_equal(resolver__parse_server("1.2.3.4:53", 10, &s), 0);
	assert_int_equal(s.port, 53);
}

static void test_format_server_small(void **state)
{
	(void)state;
	struct resolver_server s;
	char out[64];
	assert_int_equal(resolver__parse_server("[::1]:5353", 10, &s), 0);
	assert_int_equal(resolver__format_server(&s, out, 10), PE_TOOBIG);
	assert_int_equal(resolver__format_server(&s, out, 11), 10);
	assert_string_equal(out, "[::1]:5353");
}

static void test_name_ok(void **state)
{
	(void)state;
	char l63[64], l64[65], long253[254], long254[255], long253dot[255];
	memset(l63, 'a', 63);
	l63[63] = '\0';
	memset(l64, 'a', 64);
	l64[64] = '\0';
	/* 63+1+63+1+63+1+61 = 253 */
	snprintf(long253, sizeof long253, "%s.%s.%s.%.61s", l63, l63, l63, l63);
	snprintf(long254, sizeof long254, "%s.%s.%s.%.62s", l63, l63, l63, l63);
	snprintf(long253dot, sizeof long253dot, "%s.", long253);
	assert_int_equal(strlen(long253), 253);

	const char *good[] = {"example.org",
			      "example.org.",
			      "_xmpp-server._tcp.example.org",
			      "a",
			      "xn--bcher-kva.example",
			      "A-1.B_2",
			      l63,
			      long253,
			      long253dot};
	const char *bad[] = {"",      ".",   "..",    "a..b",	   ".a",    "a b",
			     "a\tb",  "a/b", "a\\.b", "ä.example", "a.b..", l64,
			     long254, "a:b", "a%b",   "exa\nmple"};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		if (!resolver__name_ok(good[i]))
			fail_msg("rejected \"%s\"", good[i]);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (resolver__name_ok(bad[i]))
			fail_msg("accepted \"%s\"", bad[i]);
}

static uint32_t rnd_zero(void *ctx, uint32_t bound)
{
	(void)ctx;
	(void)bound;
	return 0;
}

static uint32_t rnd_max(void *ctx, uint32_t bound)
{
	(void)ctx;
	return bound;
}

static uint32_t rnd_big(void *ctx, uint32_t bound)
{
	(void)ctx;
	return bound + 99;
}

/* Replays a script of numbers and checks the bounds it was asked for. */
struct script {
	const uint32_t *val;
	const uint32_t *bound;
	size_t i, n;
};

static uint32_t rnd_script(void *ctx, uint32_t bound)
{
	struct script *s = ctx;
	assert_true(s->i < s->n);
	assert_int_equal(bound, s->bound[s->i]);
	return s->val[s->i++];
}

static void srv_fill(struct resolver_srv *v, const char *const *t, const uint16_t *prio,
		     const uint16_t *w, size_t n)
{
	for (size_t i = 0; i < n; i++)
		v[i] = (struct resolver_srv){.target = (char *)t[i],
					     .port = (uint16_t)(i + 1),
					     .priority = prio[i],
					     .weight = w[i]};
}

static void assert_targets(const struct resolver_srv *v, const char *const *want, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].target, want[i]) != 0)
			fail_msg("position %zu: \"%s\", want \"%s\"", i, v[i].target, want[i]);
}

static void test_srv_order_deterministic(void **state)
{
	(void)state;
	const char *t[] = {"p20", "a5", "b0", "c10", "p5"};
	const uint16_t prio[] = {20, 10, 10, 10, 5};
	const uint16_t w[] = {1, 5, 0, 10, 0};
	struct resolver_srv v[5];

	/* Random 0 always picks the head of the zero-weight-first list. */
	srv_fill(v, t, prio, w, 5);
	assert_int_equal(resolver__srv_order(v, 5, rnd_zero, NULL), 0);
	assert_targets(v, (const char *[]){"p5", "b0", "a5", "c10", "p20"}, 5);

	/* Random = sum always picks the last positive weight. */
	srv_fill(v, t, prio, w, 5);
	assert_int_equal(resolver__srv_order(v, 5, rnd_max, NULL), 0);
	assert_targets(v, (const char *[]){"p5", "c10", "a5", "b0", "p20"}, 5);

	/* Running sums in group 10 (list b0, a5, c10): 0, 5, 15. 5 picks a5 (first sum >=
	 * 5); then b0, c10 with sums 0, 10: 1 picks c10; then b0 alone, sum 0. Groups of
	 * one record draw too, with bound = its weight. */
	static const uint32_t val[] = {0, 5, 1, 0, 1};
	static const uint32_t bound[] = {0, 15, 10, 0, 1};
	struct script s = {val, bound, 0, 5};
	srv_fill(v, t, prio, w, 5);
	assert_int_equal(resolver__srv_order(v, 5, rnd_script, &s), 0);
	assert_int_equal(s.i, 5);
	assert_targets(v, (const char *[]){"p5", "a5", "c10", "b0", "p20"}, 5);
	/* Records move whole. */
	assert_int_equal(v[0].port, 5);
	assert_int_equal(v[1].port, 2);
	assert_int_equal(v[1].weight, 5);
	assert_int_equal(v[4].priority, 20);

	/* A broken rnd beyond the bound is clamped, not an overrun. */
	srv_fill(v, t, prio, w, 5);
	assert_int_equal(resolver__srv_order(v, 5, rnd_big, NULL), 0);
	assert_targets(v, (const char *[]){"p5", "c10", "a5", "b0", "p20"}, 5);

	/* n < 2 is left alone and draws nothing. */
	srv_fill(v, t, prio, w, 1);
	assert_int_equal(resolver__srv_order(v, 1, rnd_script, &s), 0);
	assert_int_equal(resolver__srv_order(v, 0, rnd_script, &s), 0);
	assert_string_equal(v[0].target, "p20");
}

/* Equal priorities and all weights 0: order is kept (stable). */
static void test_srv_order_stable(void **state)
{
	(void)state;
	const char *t[] = {"a", "b", "c", "d", "e", "f"};
	const uint16_t prio[] = {1, 0, 1, 0, 1, 0};
	const uint16_t w[] = {0, 0, 0, 0, 0, 0};
	struct resolver_srv v[6];
	srv_fill(v, t, prio, w, 6);
	assert_int_equal(resolver__srv_order(v, 6, NULL, NULL), 0);
	assert_targets(v, (const char *[]){"b", "d", "f", "a", "c", "e"}, 6);
}

/* With the real RNG, weights 1 and 9 put "light" first with probability 2/11 (RFC 2782
 * draws from [0, sum] inclusive, so the first record also wins on 0). */
static void test_srv_order_distribution(void **state)
{
	(void)state;
	const char *t[] = {"light", "heavy"};
	const uint16_t prio[] = {7, 7};
	const uint16_t w[] = {1, 9};
	struct resolver_srv v[2];
	int light = 0, trials = 20000;
	for (int i = 0; i < trials; i++) {
		srv_fill(v, t, prio, w, 2);
		assert_int_equal(resolver__srv_order(v, 2, NULL, NULL), 0);
		light += strcmp(v[0].target, "light") == 0;
	}
	double p = (double)light / trials;
	if (p < 0.15 || p > 0.215)
		fail_msg("light first in %.3f of trials, want about 0.182", p);
}

/* ---- resolver_new ---- */

static void test_new_bad_config(void **state)
{
	(void)state;
	uv_loop_t loop;
	struct resolver *r = NULL;
	char err[200];
	assert_int_equal(uv_loop_init(&loop), 0);

	const char *bad1[] = {"127.0.0.1:53", "dns.example:53", NULL};
	struct resolver_cfg cfg = {.servers = bad1};
	assert_int_equal(resolver_new(&loop, &cfg, &r, err, sizeof err), PE_CONFIG);
	assert_non_null(strstr(err, "dns.example:53"));
	assert_null(r);

	const char *bad2[] = {"127.0.0.1:0", NULL};
	cfg.servers = bad2;
	assert_int_equal(resolver_new(&loop, &cfg, &r, err, sizeof err), PE_CONFIG);
	assert_non_null(strstr(err, "127.0.0.1:0"));

	/* Peer-looking bytes are escaped in the message. */
	const char *bad3[] = {"1.2.3.4\n", NULL};
	cfg.servers = bad3;
	assert_int_equal(resolver_new(&loop, &cfg, &r, err, sizeof err), PE_CONFIG);
	assert_null(strchr(err, '\n'));

	cfg = (struct resolver_cfg){.timeout_ms = 600001};
	assert_int_equal(resolver_new(&loop, &cfg, &r, err, sizeof err), PE_INVAL);
	cfg = (struct resolver_cfg){.tries = 11};
	assert_int_equal(resolver_new(&loop, &cfg, &r, NULL, 0), PE_INVAL);
	assert_null(r);

	/* Nothing was left on the loop. */
	assert_int_equal(uv_run(&loop, UV_RUN_NOWAIT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
}

/* NULL cfg and an empty list both mean resolv.conf; we only build and free (no query:
 * tests talk to loopback only). */
static void test_new_system_default(void **state)
{
	(void)state;
	uv_loop_t loop;
	struct resolver *r = NULL;
	const char *empty[] = {NULL};
	struct resolver_cfg cfg = {.servers = empty};
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(resolver_new(&loop, NULL, &r, NULL, 0), 0);
	assert_int_equal(resolver_pending(r), 0);
	resolver_free(r);
	assert_int_equal(resolver_new(&loop, &cfg, &r, NULL, 0), 0);
	resolver_free(r);
	resolver_free(NULL);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- Against dnsmasq ---- */

static void test_srv_ordered(void **state)
{
	(void)state;
	struct fx *f = fx_dm();
	struct srv_res s = {0};
	assert_int_equal(resolver_srv(f->r, "_xmpp-server._tcp.x.test", on_srv, &s), 0);
	assert_int_equal(s.calls, 0); /* never from inside the call */
	run_until(f, &s.calls, 1, 3000);
	assert_int_equal(s.status, 0);
	assert_false(s.no_service);
	assert_int_equal(s.n, 3);
	assert_int_equal(s.prio[0], 10);
	assert_int_equal(s.prio[1], 10);
	assert_int_equal(s.prio[2], 20);
	assert_string_equal(s.target[2], "c.x.test");
	assert_int_equal(s.port[2], 5271);
	/* Priority 10 holds a.x.test (5269, w 60) and b.x.test (5270, w 0), either order. */
	int a = strcmp(s.target[0], "a.x.test") == 0 ? 0 : 1;
	assert_string_equal(s.target[a], "a.x.test");
	assert_string_equal(s.target[1 - a], "b.x.test");
	assert_int_equal(s.port[a], 5269);
	assert_int_equal(s.weight[a], 60);
	assert_int_equal(s.port[1 - a], 5270);
	assert_int_equal(s.weight[1 - a], 0);
	fx_free(f);
}

struct srv_seen {
	int calls;
	int status;
	size_t n;
	bool sorted, distinct;
	int prio_count[4];
};

static void on_srv_seen(void *arg, int status, const struct resolver_srv *recs, size_t n,
			bool no_service)
{
	struct srv_seen *s = arg;
	bool seen[80] = {false};
	s->calls++;
	s->status = status;
	s->n = n;
	s->sorted = s->distinct = true;
	assert_false(no_service);
	for (size_t i = 0; i < n; i++) {
		int h = -1;
		assert_int_equal(sscanf(recs[i].target, "h%d.x.test", &h), 1);
		assert_true(h >= 0 && h < 80);
		assert_int_equal(recs[i].port, 6000 + h);
		assert_int_equal(recs[i].priority, h % 4);
		assert_int_equal(recs[i].weight, h);
		if (seen[h])
			s->distinct = false;
		seen[h] = true;
		if (i && recs[i].priority < recs[i - 1].priority)
			s->sorted = false;
		s->prio_count[recs[i].priority]++;
	}
}

/* A truncated UDP answer is retried over TCP; the result is capped after ordering, so
 * the cut falls in the last priority. */
static void test_srv_large_answer(void **state)
{
	(void)state;
	struct fx *f = fx_dm();
	struct srv_seen s = {0};
	assert_int_equal(resolver_srv(f->r, "_many._tcp.x.test", on_srv_seen, &s), 0);
	run_until(f, &s.calls, 1, 5000);
	assert_int_equal(s.status, 0);
	assert_int_equal(s.n, RESOLVER_MAX_RECORDS);
	assert_true(s.sorted);
	assert_true(s.distinct);
	assert_int_equal(s.prio_count[0], 20);
	assert_int_equal(s.prio_count[1], 20);
	assert_int_equal(s.prio_count[2], 20);
	assert_int_equal(s.prio_count[3], RESOLVER_MAX_RECORDS - 60);
	fx_free(f);
}

/* With nothing outstanding the resolver does not keep the loop alive: c-ares closes
 * its sockets after the last query and the timer is stopped. */
static void test_loop_not_held(void **state)
{
	(void)state;
	struct fx *f = fx_dm();
	struct addr_res a = {0};
	assert_int_equal(resolver_addr(f->r, "both.x.test", AF_UNSPEC, on_addr, &a), 0);
	run_until(f, &a.calls, 1, 3000);
	assert_int_equal(a.status, 0);
	/* An unreferenced guard fires only if something else holds the loop. */
	f->expired = false;
	uv_unref((uv_handle_t *)&f->guard);
	uv_timer_start(&f->guard, on_guard, 2000, 0);
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	assert_false(f->expired);
	uv_timer_stop(&f->guard);
	uv_ref((uv_handle_t *)&f->guard);
	fx_free(f);
}

static void test_srv_no_service(void **state)
{
	(void)state;
	struct fx *f = fx_dm();
	struct srv_res s = {0};
	assert_int_equal(resolver_srv(f->r, "_xmpp-server._tcp.none.test", on_srv, &s), 0);
	run_until(f, &s.calls, 1, 3000);
	assert_int_equal(s.status, 0);
	assert_int_equal(s.n, 0);
	assert_true(s.no_service);
	fx_free(f);
}

static void test_srv_nxdomain_nodata_refused(void **state)
{
	(void)state;
	struct fx *f = fx_dm();
	struct srv_res nx = {0}, nodata = {0}, refused = {0};
	/* Unknown under --local=/test/: NXDOMAIN. */
	assert_int_equal(resolver_srv(f->r, "_xmpp-server._tcp.nope.test", on_srv, &nx), 0);
	/* The name exists (A/AAAA) but has no SRV: NODATA. */
	assert_int_equal(resolver_srv(f->r, "both.x.test", on_srv, &nodata), 0);
	/* Outside .test with no upstream: dnsmasq answers REFUSED. */
	assert_int_equal(resolver_srv(f->r, "_xmpp-server._tcp.example.org", on_srv, &refused), 0);
	run_until(f, &nx.calls, 1, 3000);
	run_until(f, &nodata.calls, 1, 3000);
	run_until(f, &refused.calls, 1, 10000);
	assert_int_equal(nx.status, PE_NOTFOUND);
	assert_false(nx.no_service);
	assert_int_equal(nx.n, 0);
	assert_int_equal(nodata.status, PE_NOTFOUND);
	assert_false(nodata.no_service);
	assert_int_equal(refused.status, PE_DNS);
	assert_int_equal(refused.n, 0);
	fx_free(f);
}

static void test_addr_merge(void **state)
{
	(void)state;
	struct fx *f = fx_dm();
	struct addr_res both = {0}, v4only = {0}, v6only = {0}, multi = {0};
	assert_int_equal(resolver_addr(f->r, "both.x.test", AF_UNSPEC, on_addr, &both), 0);
	assert_int_equal(resolver_addr(f->r, "v4.x.test", AF_UNSPEC, on_addr, &v4only), 0);
	assert_int_equal(resolver_addr(f->r, "v6.x.test.", AF_UNSPEC, on_addr, &v6only), 0);
	assert_int_equal(resolver_addr(f->r, "multi.x.test", AF_UNSPEC, on_addr, &multi), 0);
	run_until(f, &both.calls, 1, 3000);
	run_until(f, &v4only.calls, 1, 3000);
	run_until(f, &v6only.calls, 1, 3000);
	run_until(f, &multi.calls, 1, 3000);

	assert_int_equal(both.status, 0);
	assert_int_equal(both.n, 2);
	assert_string_equal(both.addr[0], "2001:db8::1");
	assert_int_equal(both.fam[0], AF_INET6);
	assert_string_equal(both.addr[1], "192.0.2.1");
	assert_int_equal(both.fam[1], AF_INET);

	/* AAAA is NODATA, A answers: success with the A alone. */
	assert_int_equal(v4only.status, 0);
	assert_int_equal(v4only.n, 1);
	assert_string_equal(v4only.addr[0], "192.0.2.2");
	assert_int_equal(v4only.fam[0], AF_INET);

	assert_int_equal(v6only.status, 0);
	assert_int_equal(v6only.n, 1);
	assert_string_equal(v6only.addr[0], "2001:db8::6");

	assert_int_equal(multi.status, 0);
	assert_int_equal(multi.n, 3);
	assert_string_equal(multi.addr[0], "2001:db8::10");
	assert_int_equal(multi.fam[1], AF_INET);
	assert_int_equal(multi.fam[2], AF_INET);
	/* dnsmasq may rotate the two A records. */
	assert_true(
	    (strcmp(multi.addr[1], "192.0.2.10") == 0 &&
	     strcmp(multi.addr[2], "192.0.2.11") == 0) ||
	    (strcmp(multi.addr[1], "192.0.2.11") == 0 && strcmp(multi.addr[2], "192.0.2.10") == 0));
	fx_free(f);
}

static void test_addr_single_family(void **state)
{
	(void)state;
	struct fx *f = fx_dm();
	struct addr_res a4 = {0}, a6 = {0}, none6 = {0}, nx = {0};
	assert_int_equal(resolver_addr(f->r, "both.x.test", AF_INET, on_addr, &a4), 0);
	assert_int_equal(resolver_addr(f->r, "both.x.test", AF_INET6, on_addr, &a6), 0);
	assert_int_equal(resolver_addr(f->r, "v4.x.test", AF_INET6, on_addr, &none6), 0);
	assert_int_equal(resolver_addr(f->r, "nope.x.test", AF_UNSPEC, on_addr, &nx), 0);
	run_until(f, &a4.calls, 1, 3000);
	run_until(f, &a6.calls, 1, 3000);
	run_until(f, &none6.calls, 1, 3000);
	run_until(f, &nx.calls, 1, 3000);
	assert_int_equal(a4.status, 0);
	assert_int_equal(a4.n, 1);
	assert_string_equal(a4.addr[0], "192.0.2.1");
	assert_int_equal(a6.status, 0);
	assert_int_equal(a6.n, 1);
	assert_string_equal(a6.addr[0], "2001:db8::1");
	assert_int_equal(a6.fam[0], AF_INET6);
	assert_int_equal(none6.status, PE_NOTFOUND);
	assert_int_equal(none6.n, 0);
	assert_int_equal(nx.status, PE_NOTFOUND);
	assert_int_equal(nx.n, 0);
	assert_int_equal(nx.calls, 1);
	fx_free(f);
}

static void test_naptr(void **state)
{
	(void)state;
	struct fx *f = fx_dm();
	struct naptr_res n = {0}, re = {0}, nx = {0};
	assert_int_equal(resolver_naptr(f->r, "x.test", on_naptr, &n), 0);
	assert_int_equal(resolver_naptr(f->r, "re.test", on_naptr, &re), 0);
	assert_int_equal(resolver_naptr(f->r, "nope.test", on_naptr, &nx), 0);
	run_until(f, &n.calls, 1, 3000);
	run_until(f, &re.calls, 1, 3000);
	run_until(f, &nx.calls, 1, 3000);

	assert_int_equal(n.status, 0);
	assert_int_equal(n.n, 3);
	/* Sorted by order, then preference. */
	assert_int_equal(n.order[0], 10);
	assert_int_equal(n.pref[0], 10);
	assert_string_equal(n.service[0], "SIPS+D2T");
	assert_string_equal(n.repl[0], "_sips._tcp.x.test");
	assert_int_equal(n.order[1], 10);
	assert_int_equal(n.pref[1], 20);
	assert_string_equal(n.service[1], "SIP+D2T");
	assert_string_equal(n.flags[1], "S");
	assert_string_equal(n.regexp[1], "");
	assert_string_equal(n.repl[1], "_sip._tcp.x.test");
	assert_int_equal(n.order[2], 20);
	assert_string_equal(n.service[2], "SIP+D2U");

	assert_int_equal(re.status, 0);
	assert_int_equal(re.n, 1);
	assert_int_equal(re.order[0], 100);
	assert_string_equal(re.flags[0], "U");
	assert_string_equal(re.service[0], "E2U+sip");
	assert_string_equal(re.regexp[0], "!^.*$!sip:info@example.com!");
	assert_string_equal(re.repl[0], ""); /* the root "." */

	assert_int_equal(nx.status, PE_NOTFOUND);
	assert_int_equal(nx.n, 0);
	fx_free(f);
}

static void test_timeout(void **state)
{
	(void)state;
	const char *servers[] = {silent_server, NULL};
	struct fx *f = fx_new(servers, 200, 1);
	struct srv_res s = {0};
	struct addr_res a = {0};
	uint64_t t0 = uv_hrtime();
	assert_int_equal(resolver_srv(f->r, "_xmpp-server._tcp.x.test", on_srv, &s), 0);
	assert_int_equal(resolver_addr(f->r, "both.x.test", AF_UNSPEC, on_addr, &a), 0);
	run_until(f, &s.calls, 1, 3000);
	run_until(f, &a.calls, 1, 3000);
	uint64_t ms = (uv_hrtime() - t0) / 1000000;
	assert_int_equal(s.status, PE_TIMEOUT);
	assert_int_equal(s.n, 0);
	assert_false(s.no_service);
	assert_int_equal(a.status, PE_TIMEOUT);
	assert_int_equal(a.n, 0);
	if (ms < 180 || ms > 1500)
		fail_msg("timed out after %llu ms, want about 200", (unsigned long long)ms);
	fx_free(f);
}

/* The first server never answers: after its 200 ms the second one does. */
static void test_failover(void **state)
{
	(void)state;
	const char *servers[] = {silent_server, dm_server, NULL};
	struct fx *f = fx_new(servers, 200, 1);
	struct addr_res a = {0};
	uint64_t t0 = uv_hrtime();
	assert_int_equal(resolver_addr(f->r, "both.x.test", AF_INET, on_addr, &a), 0);
	run_until(f, &a.calls, 1, 3000);
	uint64_t ms = (uv_hrtime() - t0) / 1000000;
	assert_int_equal(a.status, 0);
	assert_int_equal(a.n, 1);
	assert_string_equal(a.addr[0], "192.0.2.1");
	if (ms < 180)
		fail_msg("answered after %llu ms: the silent server was not tried first",
			 (unsigned long long)ms);
	fx_free(f);
}

/* A closed port answers with ICMP: a fast failure, not a timeout. */
static void test_refused_port(void **state)
{
	(void)state;
	const char *servers[] = {closed_server, NULL};
	struct fx *f = fx_new(servers, 2000, 1);
	struct srv_res s = {0};
	uint64_t t0 = uv_hrtime();
	assert_int_equal(resolver_srv(f->r, "_xmpp-server._tcp.x.test", on_srv, &s), 0);
	run_until(f, &s.calls, 1, 5000);
	uint64_t ms = (uv_hrtime() - t0) / 1000000;
	assert_int_equal(s.status, PE_DNS);
	if (ms > 1000)
		fail_msg("took %llu ms", (unsigned long long)ms);
	fx_free(f);
}

static void test_literals(void **state)
{
	(void)state;
	/* The server never answers: a literal must not need it. */
	const char *servers[] = {silent_server, NULL};
	struct fx *f = fx_new(servers, 2000, 1);
	struct addr_res v4 = {0}, v6 = {0}, v4as6 = {0}, v6as4 = {0}, v4as4 = {0};
	uint64_t t0 = uv_hrtime();
	assert_int_equal(resolver_addr(f->r, "192.0.2.7", AF_UNSPEC, on_addr, &v4), 0);
	assert_int_equal(resolver_addr(f->r, "2001:DB8:0::0:1", AF_UNSPEC, on_addr, &v6), 0);
	assert_int_equal(resolver_addr(f->r, "192.0.2.7", AF_INET6, on_addr, &v4as6), 0);
	assert_int_equal(resolver_addr(f->r, "::1", AF_INET, on_addr, &v6as4), 0);
	assert_int_equal(resolver_addr(f->r, "127.0.0.1", AF_INET, on_addr, &v4as4), 0);
	/* Answered on the next loop turn, not from inside the call. */
	assert_int_equal(v4.calls + v6.calls + v4as6.calls + v6as4.calls + v4as4.calls, 0);
	assert_int_equal(uv_run(&f->loop, UV_RUN_NOWAIT), 0);
	assert_int_equal(v4.calls, 1);
	assert_int_equal(v6.calls, 1);
	assert_int_equal(v4as6.calls, 1);
	assert_int_equal(v6as4.calls, 1);
	assert_int_equal(v4as4.calls, 1);
	assert_true((uv_hrtime() - t0) / 1000000 < 100);

	assert_int_equal(v4.status, 0);
	assert_int_equal(v4.n, 1);
	assert_string_equal(v4.addr[0], "192.0.2.7");
	assert_int_equal(v4.fam[0], AF_INET);
	assert_int_equal(v6.status, 0);
	assert_int_equal(v6.n, 1);
	assert_string_equal(v6.addr[0], "2001:db8::1"); /* canonical text */
	assert_int_equal(v6.fam[0], AF_INET6);
	assert_int_equal(v4as6.status, PE_NOTFOUND);
	assert_int_equal(v4as6.n, 0);
	assert_int_equal(v6as4.status, PE_NOTFOUND);
	assert_int_equal(v4as4.status, 0);
	assert_string_equal(v4as4.addr[0], "127.0.0.1");
	assert_int_equal(resolver_pending(f->r), 0);
	fx_free(f);
}

static void test_bad_arguments(void **state)
{
	(void)state;
	struct fx *f = fx_dm();
	struct addr_res a = {0};
	struct srv_res s = {0};
	struct naptr_res n = {0};
	assert_int_equal(resolver_srv(f->r, "bad name", on_srv, &s), PE_INVAL);
	assert_int_equal(resolver_srv(f->r, "", on_srv, &s), PE_INVAL);
	assert_int_equal(resolver_naptr(f->r, "a..b", on_naptr, &n), PE_INVAL);
	assert_int_equal(resolver_addr(f->r, "x\n.test", AF_UNSPEC, on_addr, &a), PE_INVAL);
	assert_int_equal(resolver_addr(f->r, "fe80::1%lo", AF_UNSPEC, on_addr, &a), PE_INVAL);
	assert_int_equal(resolver_addr(f->r, "both.x.test", AF_UNIX, on_addr, &a), PE_INVAL);
	assert_int_equal(resolver_pending(f->r), 0);
	assert_int_equal(uv_run(&f->loop, UV_RUN_NOWAIT), 0);
	assert_int_equal(a.calls + s.calls + n.calls, 0);
	fx_free(f);
}

/* ---- Cancellation and teardown ---- */

static void test_cancel_answered(void **state)
{
	(void)state;
	struct fx *f = fx_dm();
	struct srv_res gone = {0}, kept = {0};
	struct addr_res gone_a = {0};
	assert_int_equal(resolver_srv(f->r, "_xmpp-server._tcp.x.test", on_srv, &gone), 0);
	assert_int_equal(resolver_addr(f->r, "both.x.test", AF_UNSPEC, on_addr, &gone_a), 0);
	assert_int_equal(resolver_srv(f->r, "_xmpp-server._tcp.x.test", on_srv, &kept), 0);
	resolver_cancel(f->r, &gone);
	resolver_cancel(f->r, &gone_a);
	resolver_cancel(f->r, &f); /* nothing outstanding for this arg: harmless */
	assert_int_equal(resolver_pending(f->r), 3); /* still in flight */
	run_until(f, &kept.calls, 1, 3000);
	/* The cancelled answers arrive too and are dropped. */
	run_until_idle(f, 3000);
	assert_int_equal(kept.status, 0);
	assert_int_equal(kept.n, 3);
	assert_int_equal(gone.calls, 0);
	assert_int_equal(gone_a.calls, 0);
	fx_free(f);
}

static void test_cancel_literal_and_timeout(void **state)
{
	(void)state;
	const char *servers[] = {silent_server, NULL};
	struct fx *f = fx_new(servers, 200, 1);
	struct addr_res lit = {0}, slow = {0};
	assert_int_equal(resolver_addr(f->r, "192.0.2.9", AF_UNSPEC, on_addr, &lit), 0);
	assert_int_equal(resolver_addr(f->r, "both.x.test", AF_UNSPEC, on_addr, &slow), 0);
	resolver_cancel(f->r, &lit);
	resolver_cancel(f->r, &slow);
	/* The timeouts still have to run out inside c-ares. */
	run_until_idle(f, 3000);
	assert_int_equal(lit.calls, 0);
	assert_int_equal(slow.calls, 0);
	fx_free(f);
}

/* A callback cancels a request that is already answered and queued behind it. */
struct canceller {
	struct addr_res res;
	struct resolver *r;
	void *victim;
};

static void on_addr_cancel(void *arg, int status, const char *const *addrs, const int *families,
			   size_t n)
{
	struct canceller *c = arg;
	on_addr(&c->res, status, addrs, families, n);
	resolver_cancel(c->r, c->victim);
}

static void test_cancel_from_callback(void **state)
{
	(void)state;
	struct fx *f = fx_dm();
	struct addr_res victim = {0};
	struct canceller c = {.r = f->r, .victim = &victim};
	assert_int_equal(resolver_addr(f->r, "192.0.2.1", AF_INET, on_addr_cancel, &c), 0);
	assert_int_equal(resolver_addr(f->r, "192.0.2.2", AF_INET, on_addr, &victim), 0);
	assert_int_equal(uv_run(&f->loop, UV_RUN_NOWAIT), 0);
	assert_int_equal(c.res.calls, 1);
	assert_int_equal(victim.calls, 0);
	assert_int_equal(resolver_pending(f->r), 0);
	fx_free(f);
}

/* A callback that starts another literal lookup gets its answer on a later loop turn,
 * not from the same dispatch (which could otherwise spin forever). */
struct requeue {
	struct addr_res res;
	struct resolver *r;
};

static void on_addr_requeue(void *arg, int status, const char *const *addrs, const int *families,
			    size_t n)
{
	struct requeue *q = arg;
	on_addr(&q->res, status, addrs, families, n);
	if (q->res.calls < 5)
		assert_int_equal(resolver_addr(q->r, "::1", AF_UNSPEC, on_addr_requeue, q), 0);
}

static void test_callback_requeue(void **state)
{
	(void)state;
	struct fx *f = fx_dm();
	struct requeue q = {.r = f->r};
	assert_int_equal(resolver_addr(f->r, "::1", AF_UNSPEC, on_addr_requeue, &q), 0);
	uv_run(&f->loop, UV_RUN_NOWAIT);
	assert_int_equal(q.res.calls, 1);
	assert_int_equal(resolver_pending(f->r), 1);
	run_until(f, &q.res.calls, 5, 1000);
	assert_int_equal(q.res.status, 0);
	assert_string_equal(q.res.addr[0], "::1");
	assert_int_equal(resolver_pending(f->r), 0);
	fx_free(f);
}

/* resolver_free reports every outstanding request with PE_CLOSED from inside the call,
 * except cancelled ones, and leaves nothing on the loop. */
static void test_free_outstanding(void **state)
{
	(void)state;
	const char *servers[] = {silent_server, NULL};
	struct fx *f = fx_new(servers, 2000, 2);
	struct srv_res s = {0};
	struct addr_res a = {0}, lit = {0}, cancelled = {0};
	struct naptr_res n = {0};
	assert_int_equal(resolver_srv(f->r, "_xmpp-server._tcp.x.test", on_srv, &s), 0);
	assert_int_equal(resolver_addr(f->r, "both.x.test", AF_UNSPEC, on_addr, &a), 0);
	assert_int_equal(resolver_addr(f->r, "192.0.2.3", AF_UNSPEC, on_addr, &lit), 0);
	assert_int_equal(resolver_addr(f->r, "v4.x.test", AF_INET, on_addr, &cancelled), 0);
	assert_int_equal(resolver_naptr(f->r, "x.test", on_naptr, &n), 0);
	resolver_cancel(f->r, &cancelled);
	/* Let the queries reach the wire (sockets open, polls started). */
	uv_run(&f->loop, UV_RUN_NOWAIT);
	assert_int_equal(lit.calls, 1);
	assert_int_equal(s.calls + a.calls + n.calls, 0);

	resolver_free(f->r);
	f->r = NULL;
	assert_int_equal(s.calls, 1);
	assert_int_equal(s.status, PE_CLOSED);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.status, PE_CLOSED);
	assert_int_equal(a.n, 0);
	assert_int_equal(n.calls, 1);
	assert_int_equal(n.status, PE_CLOSED);
	assert_int_equal(lit.calls, 1);
	assert_int_equal(cancelled.calls, 0);
	fx_free(f); /* resolver_free(NULL), drain, uv_loop_close must succeed */
}

/* A callback frees the resolver while another answer is queued and a query is in flight;
 * then starts nothing more. */
struct freer {
	struct addr_res res;
	struct fx *f;
};

static void on_addr_free(void *arg, int status, const char *const *addrs, const int *families,
			 size_t n)
{
	struct freer *fr = arg;
	on_addr(&fr->res, status, addrs, families, n);
	resolver_free(fr->f->r);
}

static void test_free_from_callback(void **state)
{
	(void)state;
	const char *servers[] = {silent_server, NULL};
	struct fx *f = fx_new(servers, 2000, 2);
	struct freer fr = {.f = f};
	struct addr_res queued = {0}, inflight = {0};
	assert_int_equal(resolver_addr(f->r, "192.0.2.1", AF_INET, on_addr_free, &fr), 0);
	assert_int_equal(resolver_addr(f->r, "192.0.2.2", AF_INET, on_addr, &queued), 0);
	assert_int_equal(resolver_addr(f->r, "both.x.test", AF_UNSPEC, on_addr, &inflight), 0);
	run_until(f, &fr.res.calls, 1, 1000);
	assert_int_equal(fr.res.status, 0);
	/* The queued literal and the in-flight lookup were ended by the free. */
	assert_int_equal(queued.calls, 1);
	assert_int_equal(queued.status, PE_CLOSED);
	assert_int_equal(inflight.calls, 1);
	assert_int_equal(inflight.status, PE_CLOSED);
	f->r = NULL;
	fx_free(f);
}

/* A callback starts the next lookup (SRV then the target's address), as a connector
 * does. */
struct chain {
	struct srv_res srv;
	struct addr_res addr;
	struct resolver *r;
	int rc;
};

static void on_srv_chain(void *arg, int status, const struct resolver_srv *recs, size_t n,
			 bool no_service)
{
	struct chain *c = arg;
	on_srv(&c->srv, status, recs, n, no_service);
	if (status == 0 && n > 0)
		c->rc = resolver_addr(c->r, "both.x.test", AF_UNSPEC, on_addr, &c->addr);
}

static void test_chain_from_callback(void **state)
{
	(void)state;
	struct fx *f = fx_dm();
	struct chain c = {.r = f->r, .rc = 1};
	assert_int_equal(resolver_srv(f->r, "_xmpp-server._tcp.x.test", on_srv_chain, &c), 0);
	run_until(f, &c.addr.calls, 1, 3000);
	assert_int_equal(c.rc, 0);
	assert_int_equal(c.addr.status, 0);
	assert_int_equal(c.addr.n, 2);
	assert_string_equal(c.addr.addr[0], "2001:db8::1");
	fx_free(f);
}

/* After free, new requests are refused (they would never be answered). */
struct after_free {
	struct srv_res srv;
	struct resolver *r;
	int rc_srv, rc_addr, rc_naptr;
};

static void on_srv_after_free(void *arg, int status, const struct resolver_srv *recs, size_t n,
			      bool no_service)
{
	struct after_free *a = arg;
	on_srv(&a->srv, status, recs, n, no_service);
	a->rc_srv = resolver_srv(a->r, "_xmpp-server._tcp.x.test", on_srv, NULL);
	a->rc_addr = resolver_addr(a->r, "192.0.2.1", AF_INET, on_addr, NULL);
	a->rc_naptr = resolver_naptr(a->r, "x.test", on_naptr, NULL);
	resolver_cancel(a->r, a);
}

static void test_requests_during_free(void **state)
{
	(void)state;
	const char *servers[] = {silent_server, NULL};
	struct fx *f = fx_new(servers, 2000, 1);
	struct after_free a = {.r = f->r};
	assert_int_equal(resolver_srv(f->r, "_xmpp-server._tcp.x.test", on_srv_after_free, &a), 0);
	resolver_free(f->r);
	f->r = NULL;
	assert_int_equal(a.srv.calls, 1);
	assert_int_equal(a.srv.status, PE_CLOSED);
	assert_int_equal(a.rc_srv, PE_CLOSED);
	assert_int_equal(a.rc_addr, PE_CLOSED);
	assert_int_equal(a.rc_naptr, PE_CLOSED);
	fx_free(f);
}

/* Many requests at once over one channel, all answered exactly once. */
static void test_many(void **state)
{
	(void)state;
	struct fx *f = fx_dm();
	enum { N = 200 };
	static struct addr_res a[N];
	memset(a, 0, sizeof a);
	int total = 0;
	for (int i = 0; i < N; i++)
		assert_int_equal(resolver_addr(f->r, i % 2 ? "both.x.test" : "nope.x.test",
					       AF_UNSPEC, on_addr, &a[i]),
				 0);
	f->expired = false;
	uv_timer_start(&f->guard, on_guard, 10000, 0);
	while (resolver_pending(f->r) > 0 && !f->expired)
		uv_run(&f->loop, UV_RUN_ONCE);
	uv_timer_stop(&f->guard);
	for (int i = 0; i < N; i++) {
		assert_int_equal(a[i].calls, 1);
		assert_int_equal(a[i].status, i % 2 ? 0 : PE_NOTFOUND);
		assert_int_equal(a[i].n, i % 2 ? 2 : 0);
		total += a[i].calls;
	}
	assert_int_equal(total, N);
	fx_free(f);
}

int main(void)
{
	const struct CMUnitTest pure[] = {
	    cmocka_unit_test(test_parse_server_table),
	    cmocka_unit_test(test_parse_server_prefixes),
	    cmocka_unit_test(test_format_server_small),
	    cmocka_unit_test(test_name_ok),
	    cmocka_unit_test(test_srv_order_deterministic),
	    cmocka_unit_test(test_srv_order_stable),
	    cmocka_unit_test(test_srv_order_distribution),
	    cmocka_unit_test(test_new_bad_config),
	    cmocka_unit_test(test_new_system_default),
	};
	const struct CMUnitTest live[] = {
	    cmocka_unit_test(test_srv_ordered),
	    cmocka_unit_test(test_srv_no_service),
	    cmocka_unit_test(test_srv_large_answer),
	    cmocka_unit_test(test_loop_not_held),
	    cmocka_unit_test(test_srv_nxdomain_nodata_refused),
	    cmocka_unit_test(test_addr_merge),
	    cmocka_unit_test(test_addr_single_family),
	    cmocka_unit_test(test_naptr),
	    cmocka_unit_test(test_timeout),
	    cmocka_unit_test(test_failover),
	    cmocka_unit_test(test_refused_port),
	    cmocka_unit_test(test_literals),
	    cmocka_unit_test(test_bad_arguments),
	    cmocka_unit_test(test_cancel_answered),
	    cmocka_unit_test(test_cancel_literal_and_timeout),
	    cmocka_unit_test(test_cancel_from_callback),
	    cmocka_unit_test(test_callback_requeue),
	    cmocka_unit_test(test_free_outstanding),
	    cmocka_unit_test(test_free_from_callback),
	    cmocka_unit_test(test_chain_from_callback),
	    cmocka_unit_test(test_requests_during_free),
	    cmocka_unit_test(test_many),
	};
	int fails = cmocka_run_group_tests_name("resolver_pure", pure, NULL, NULL);
	fails += cmocka_run_group_tests_name("resolver_dnsmasq", live, group_setup, group_teardown);
	return fails ? 1 : 0;
}
