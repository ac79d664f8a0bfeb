/* net: real loopback connections on a libuv loop, plaintext and TLS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "buf.h"
#include "err.h"
#include "log.h"
#include "net.h"
#include "tls.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char certdir[64];

#define assert_contains(hay, needle)                                                               \
	do {                                                                                       \
		const char *h__ = (hay), *n__ = (needle);                                          \
		if (!h__ || !strstr(h__, n__)) {                                                   \
			print_error("\"%s\" does not contain \"%s\"\n", h__ ? h__ : "(null)",      \
				    n__);                                                          \
			fail();                                                                    \
		}                                                                                  \
	} while (0)

/* ---- a small world: one loop, one listener, a client peer and accepted server peers ---- */

struct world;

struct peer {
	struct world *w;
	struct net_conn *c;
	struct buf rx;
	int n_connect, n_secure, n_data, n_drain, n_close;
	int reason;
	char tls_err[160];
	bool data_while_paused;
	bool paused;
	size_t expect; /* client: close gracefully once this much arrived (0 = never) */
	void (*on_connect)(struct peer *p);
	void (*on_secure)(struct peer *p);
	void (*on_data)(struct peer *p, const uint8_t *d, size_t n);
	void (*on_drain)(struct peer *p);
	void (*on_accept)(struct peer *p);
	uint64_t u[4]; /* test scratch */
};

struct world {
	uv_loop_t loop;
	uv_timer_t watchdog;
	uv_timer_t t; /* test timer */
	struct net_listener *l;
	uint16_t port;
	struct tls_ctx *sctx, *cctx;
	bool srv_tls;
	struct peer srv_tpl; /* copied into each accepted peer */
	struct peer srv[4];
	int nsrv;
	int expect_accepts;
	int open;
	struct peer cli;
};

static struct world W;

static void g_on_connect(struct net_conn *c)
{
	struct peer *p = net_conn_arg(c);
	p->n_connect++;
	if (p->on_connect)
		p->on_connect(p);
}

static void g_on_secure(struct net_conn *c)
{
	struct peer *p = net_conn_arg(c);
	p->n_secure++;
	if (p->on_secure)
		p->on_secure(p);
}

static void g_on_data(struct net_conn *c, const uint8_t *d, size_t n)
{
	struct peer *p = net_conn_arg(c);
	assert_true(n > 0);
	p->n_data++;
	if (p->paused)
		p->data_while_paused = true;
	assert_int_equal(buf_append(&p->rx, d, n), 0);
	if (p->on_data)
		p->on_data(p, d, n);
	if (p->expect && p->rx.len >= p->expect)
		net_conn_close(c, 0);
}

static void g_on_drain(struct net_conn *c)
{
	struct peer *p = net_conn_arg(c);
	p->n_drain++;
	if (p->on_drain)
		p->on_drain(p);
}

static void maybe_finish(struct world *w)
{
	if (w->open == 0 && w->nsrv >= w->expect_accepts && w->l) {
		net_listener_close(w->l);
		w->l = NULL;
	}
}

static void g_on_close(struct net_conn *c, int reason)
{
	struct peer *p = net_conn_arg(c);
	p->n_close++;
	p->reason = reason;
	if (net_conn_tls(c))
		snprintf(p->tls_err, sizeof p->tls_err, "%s", tls_sess_error(net_conn_tls(c)));
	p->c = NULL;
	p->w->open--;
	maybe_finish(p->w);
}

static const struct net_conn_cbs gcbs = {
    .on_connect = g_on_connect,
    .on_secure = g_on_secure,
    .on_data = g_on_data,
    .on_drain = g_on_drain,
    .on_close = g_on_close,
};

static void on_accept(void *arg, struct net_conn *c)
{
	struct world *w = arg;
	assert_true(w->nsrv < 4);
	struct peer *p = &w->srv[w->nsrv++];
	*p = w->srv_tpl;
	p->w = w;
	p->c = c;
	buf_init(&p->rx, 0);
	w->open++;
	net_conn_set_cbs(c, &gcbs, p);
	if (w->srv_tls)
		assert_int_equal(net_conn_start_tls(c, w->sctx, true, NULL), 0);
	if (p->on_accept)
		p->on_accept(p);
}

static void on_watchdog(uv_timer_t *t)
{
	(void)t;
	fail_msg("test timed out");
}

static const char *src_root(void)
{
	static char root[512];
	const char *env = getenv("PARLEY_SRCDIR");
	if (env)
		return env;
	const char *f = __FILE__;
	const char *t = strstr(f, "tests/unit/");
	size_t n = t ? (size_t)(t - f) : 0;
	if (n == 0)
		return ".";
	snprintf(root, sizeof root, "%.*s", (int)n, f);
	return root;
}

static const char *path(const char *name)
{
	static char p[8][160];
	static int i;
	i = (i + 1) % 8;
	snprintf(p[i], sizeof p[i], "%s/%s", certdir, name);
	return p[i];
}

static struct tls_ctx *mkctx(bool server, const char *cert, const char *ca, int min, int max)
{
	char err[256] = "", c[64], k[64], a[64];
	snprintf(c, sizeof c, "%s.pem", cert ? cert : "");
	snprintf(k, sizeof k, "%s.key", cert ? cert : "");
	snprintf(a, sizeof a, "%s.pem", ca);
	struct tls_ctx_cfg cfg = {
	    .ca_file = path(a),
	    .cert_file = cert ? path(c) : NULL,
	    .key_file = cert ? path(k) : NULL,
	    .min_version = min,
	    .max_version = max,
	    .require_peer_cert = server,
	};
	struct tls_ctx *x = tls_ctx_new(server, &cfg, err, sizeof err);
	if (!x)
		print_error("tls_ctx_new: %s\n", err);
	assert_non_null(x);
	return x;
}

static int group_setup(void **state)
{
	(void)state;
	snprintf(certdir, sizeof certdir, "/tmp/parley-test-net-XXXXXX");
	if (!mkdtemp(certdir))
		return -1;
	const char *root = src_root();
	char cmd[1024];
	snprintf(cmd, sizeof cmd,
		 "sh %s/deploy/mkcerts.sh %s proxy.link.test gateway.link.test && "
		 "sh %s/deploy/mkcerts.sh --ca evil %s proxy.link.test",
		 root, certdir, root, certdir);
	return system(cmd) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", certdir);
	return system(cmd) == 0 ? 0 : -1;
}

static int setup(void **state)
{
	(void)state;
	memset(&W, 0, sizeof W);
	assert_int_equal(uv_loop_init(&W.loop), 0);
	uv_timer_init(&W.loop, &W.watchdog);
	uv_timer_start(&W.watchdog, on_watchdog, 20000, 0);
	uv_unref((uv_handle_t *)&W.watchdog);
	uv_timer_init(&W.loop, &W.t);
	uv_unref((uv_handle_t *)&W.t);
	W.expect_accepts = 1;
	W.cli.w = &W;
	buf_init(&W.cli.rx, 0);
	net_stats_reset();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	uv_close((uv_handle_t *)&W.watchdog, NULL);
	uv_close((uv_handle_t *)&W.t, NULL);
	uv_run(&W.loop, UV_RUN_DEFAULT);
	int r = uv_loop_close(&W.loop);
	if (r)
		print_error("uv_loop_close: %s (handles leaked)\n", uv_strerror(r));
	buf_deinit(&W.cli.rx);
	for (int i = 0; i < W.nsrv; i++)
		buf_deinit(&W.srv[i].rx);
	tls_ctx_free(W.sctx);
	tls_ctx_free(W.cctx);
	if (net_stats_get()->conns_open != 0) {
		print_error("connections still allocated: %llu\n",
			    (unsigned long long)net_stats_get()->conns_open);
		return -1;
	}
	return r ? -1 : 0;
}

static void listen_on(const char *ip)
{
	assert_int_equal(net_listen(&W.loop, ip, 0, 64, on_accept, &W, &W.l), 0);
	W.port = net_listener_port(W.l);
	assert_true(W.port > 0);
}

static void client_connect(const char *ip)
{
	W.cli.c = net_connect(&W.loop, ip, W.port, &gcbs, &W.cli);
	assert_non_null(W.cli.c);
	W.open++;
}

static void run(void)
{
	uv_run(&W.loop, UV_RUN_DEFAULT);
}

static void echo(struct peer *p, const uint8_t *d, size_t n)
{
	if (p->c)
		assert_int_equal(net_conn_write(p->c, d, n), 0);
}

static void fill(uint8_t *d, size_t n, size_t off)
{
	for (size_t i = 0; i < n; i++)
		d[i] = (uint8_t)((off + i) * 31 % 251);
}

static void check_pattern(const struct buf *b)
{
	for (size_t i = 0; i < b->len; i++)
		if (buf_head(b)[i] != (uint8_t)(i * 31 % 251))
			fail_msg("byte %zu is %u, want %u", i, buf_head(b)[i],
				 (unsigned)(i * 31 % 251));
}

/* ---- tests ---- */

static void plain_hello(struct peer *p)
{
	char expect[32];
	snprintf(expect, sizeof expect, "127.0.0.1:%u", p->w->port);
	assert_string_equal(net_conn_peer(p->c), expect);
	for (int i = 0; i < 100; i++)
		assert_int_equal(net_conn_write(p->c, "hello world\n", 12), 0);
}

static void test_plain_echo(void **state)
{
	(void)state;
	listen_on("127.0.0.1");
	W.srv_tpl.on_data = echo;
	W.cli.on_connect = plain_hello;
	W.cli.expect = 1200;
	client_connect("127.0.0.1");
	assert_int_equal(net_conn_out_queued(W.cli.c), 0);
	run();
	assert_int_equal(W.cli.n_connect, 1);
	assert_int_equal(W.cli.n_close, 1);
	assert_int_equal(W.cli.reason, 0);
	assert_int_equal(W.cli.rx.len, 1200);
	for (size_t i = 0; i < 1200; i += 12)
		assert_memory_equal(buf_head(&W.cli.rx) + i, "hello world\n", 12);
	assert_int_equal(W.nsrv, 1);
	assert_int_equal(W.srv[0].n_close, 1);
	assert_int_equal(W.srv[0].reason, UV_EOF);
	assert_int_equal(W.srv[0].n_connect, 0);
	assert_int_equal(W.srv[0].n_secure, 0);
	/* 100 writes in one callback: one flush. */
	assert_in_range(net_stats_get()->write_calls, 1, 20);
}

static void ipv6_hello(struct peer *p)
{
	char expect[48];
	snprintf(expect, sizeof expect, "[::1]:%u", p->w->port);
	assert_string_equal(net_conn_peer(p->c), expect);
	assert_int_equal(net_conn_write(p->c, "six", 3), 0);
}

static void ipv6_srv_echo(struct peer *p, const uint8_t *d, size_t n)
{
	assert_memory_equal(net_conn_peer(p->c), "[::1]:", 6);
	echo(p, d, n);
}

static void test_ipv6_echo(void **state)
{
	(void)state;
	listen_on("::1");
	W.srv_tpl.on_data = ipv6_srv_echo;
	W.cli.on_connect = ipv6_hello;
	W.cli.expect = 3;
	client_connect("::1");
	run();
	assert_int_equal(W.cli.reason, 0);
	assert_int_equal(W.cli.rx.len, 3);
	assert_int_equal(W.srv[0].n_data, 1);
	assert_int_equal(W.srv[0].reason, UV_EOF);
}

enum { SMALL_N = 10000, SMALL_LEN = 30 };

static void tls_small_writes(struct peer *p)
{
	struct tls_sess *s = net_conn_tls(p->c);
	char why[128];
	const char *const names[] = {"proxy.link.test"};
	assert_string_equal(tls_sess_version(s), "TLSv1.3");
	assert_true(tls_sess_peer_pinned(s, names, 1, why, sizeof why));
	net_stats_reset();
	for (int i = 0; i < SMALL_N; i++) {
		char m[48];
		snprintf(m, sizeof m, "message %05d padding.......\n", i % 100000);
		assert_int_equal(net_conn_write(p->c, m, SMALL_LEN), 0);
	}
	assert_true(net_conn_out_queued(p->c) > 0);
}

static void srv_check_client(struct peer *p)
{
	char why[128];
	const char *const names[] = {"gateway.link.test"};
	assert_true(tls_sess_peer_pinned(net_conn_tls(p->c), names, 1, why, sizeof why));
}

static void test_tls_echo_coalesced(void **state)
{
	(void)state;
	W.sctx = mkctx(true, "proxy.link.test", "ca", TLS1_3_VERSION, 0);
	W.cctx = mkctx(false, "gateway.link.test", "ca", 0, 0);
	W.srv_tls = true;
	listen_on("127.0.0.1");
	W.srv_tpl.on_data = echo;
	W.srv_tpl.on_secure = srv_check_client;
	W.cli.on_secure = tls_small_writes;
	W.cli.expect = SMALL_N * SMALL_LEN;
	client_connect("127.0.0.1");
	/* TLS before the TCP connect completes: the ClientHello waits for it. */
	assert_int_equal(net_conn_start_tls(W.cli.c, W.cctx, false, "proxy.link.test"), 0);
	assert_int_equal(net_conn_start_tls(W.cli.c, W.cctx, false, NULL), PE_STATE);
	run();
	assert_int_equal(W.cli.n_connect, 1);
	assert_int_equal(W.cli.n_secure, 1);
	assert_int_equal(W.srv[0].n_secure, 1);
	assert_int_equal(W.cli.reason, 0);
	assert_int_equal(W.srv[0].reason, UV_EOF);
	assert_int_equal(W.cli.rx.len, SMALL_N * SMALL_LEN);
	for (int i = 0; i < SMALL_N; i++) {
		char m[48];
		snprintf(m, sizeof m, "message %05d padding.......\n", i % 100000);
		assert_memory_equal(buf_head(&W.cli.rx) + (size_t)i * SMALL_LEN, m, SMALL_LEN);
	}
	const struct net_stats *st = net_stats_get();
	print_message("conn_writes=%llu write_calls=%llu uv_writes=%llu flushes=%llu\n",
		      (unsigned long long)st->conn_writes, (unsigned long long)st->write_calls,
		      (unsigned long long)st->uv_writes, (unsigned long long)st->flushes);
	assert_true(st->conn_writes >= SMALL_N);
	assert_in_range(st->write_calls, 1, 200); /* 10 000 writes -> a few dozen syscalls */
}

/* Server: answers the first chunk, closes from inside on_data, must get no more data. */
static void close_in_data(struct peer *p, const uint8_t *d, size_t n)
{
	(void)d, (void)n;
	assert_int_equal(p->n_data, 1);
	assert_int_equal(net_conn_write(p->c, "bye", 3), 0);
	net_conn_close(p->c, 0);
	net_conn_close(p->c, PE_PROTO); /* repeated: first reason wins */
	assert_int_equal(net_conn_write(p->c, "more", 4), PE_CLOSED);
	assert_int_equal(net_conn_start_tls(p->c, p->w->sctx, true, NULL), PE_CLOSED);
}

static void cli_send_then_more(struct peer *p)
{
	assert_int_equal(net_conn_write(p->c, "first", 5), 0);
}

static void cli_more_on_bye(struct peer *p, const uint8_t *d, size_t n)
{
	(void)d, (void)n;
	/* The server is closing; these bytes are discarded, not delivered. */
	if (p->c)
		(void)net_conn_write(p->c, "ignored", 7);
}

static void run_close_inside(bool tls)
{
	if (tls) {
		W.sctx = mkctx(true, "proxy.link.test", "ca", 0, 0);
		W.cctx = mkctx(false, "gateway.link.test", "ca", 0, 0);
		W.srv_tls = true;
	}
	listen_on("127.0.0.1");
	W.srv_tpl.on_data = close_in_data;
	if (tls)
		W.cli.on_secure = cli_send_then_more;
	else
		W.cli.on_connect = cli_send_then_more;
	W.cli.on_data = cli_more_on_bye;
	client_connect("127.0.0.1");
	if (tls)
		assert_int_equal(net_conn_start_tls(W.cli.c, W.cctx, false, NULL), 0);
	run();
	assert_int_equal(W.srv[0].n_data, 1);
	assert_int_equal(W.srv[0].n_close, 1);
	assert_int_equal(W.srv[0].reason, 0);
	assert_int_equal(W.cli.n_close, 1);
	assert_int_equal(W.cli.reason, UV_EOF);
	assert_int_equal(W.cli.rx.len, 3);
	assert_memory_equal(buf_head(&W.cli.rx), "bye", 3);
}

static void test_close_inside_on_data_plain(void **state)
{
	(void)state;
	run_close_inside(false);
}

static void test_close_inside_on_data_tls(void **state)
{
	(void)state;
	run_close_inside(true);
}

static void abort_in_data(struct peer *p, const uint8_t *d, size_t n)
{
	(void)d, (void)n;
	net_conn_write(p->c, "never", 5);
	net_conn_abort(p->c, PE_PROTO);
	net_conn_abort(p->c, PE_TLS);
	net_conn_close(p->c, 0);
}

static void test_abort_inside_on_data(void **state)
{
	(void)state;
	listen_on("127.0.0.1");
	W.srv_tpl.on_data = abort_in_data;
	W.cli.on_connect = cli_send_then_more;
	client_connect("127.0.0.1");
	run();
	assert_int_equal(W.srv[0].n_close, 1);
	assert_int_equal(W.srv[0].reason, PE_PROTO);
	assert_int_equal(W.cli.n_close, 1);
	assert_true(W.cli.reason == UV_EOF || W.cli.reason == UV_ECONNRESET);
	assert_int_equal(W.cli.rx.len, 0); /* queued output was not flushed */
}

static void run_until(bool *flag)
{
	for (int i = 0; i < 10000 && !*flag; i++)
		uv_run(&W.loop, UV_RUN_ONCE);
	assert_true(*flag);
}

static bool got_data;
static void mark_data(struct peer *p, const uint8_t *d, size_t n)
{
	(void)p, (void)d, (void)n;
	got_data = true;
}

static void test_peer_reset(void **state)
{
	(void)state;
	listen_on("127.0.0.1");
	W.srv_tpl.on_data = mark_data;
	got_data = false;

	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(W.port)};
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(write(fd, "x", 1), 1);
	run_until(&got_data);
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
	close(fd); /* RST */
	run();
	assert_int_equal(W.srv[0].n_close, 1);
	assert_int_equal(W.srv[0].reason, UV_ECONNRESET);
}

static void test_connect_refused(void **state)
{
	(void)state;
	listen_on("127.0.0.1");
	net_listener_close(W.l); /* the port is now closed */
	W.l = NULL;
	W.expect_accepts = 0;
	client_connect("127.0.0.1");
	run();
	assert_int_equal(W.cli.n_connect, 0);
	assert_int_equal(W.cli.n_close, 1);
	assert_int_equal(W.cli.reason, UV_ECONNREFUSED);
	assert_null(net_connect(&W.loop, "not-an-ip", 1, &gcbs, &W.cli));
	struct net_listener *l;
	assert_int_equal(net_listen(&W.loop, "999.1.1.1", 0, 8, on_accept, &W, &l), PE_INVAL);
}

static void test_listen_in_use(void **state)
{
	(void)state;
	listen_on("127.0.0.1");
	struct net_listener *l2 = NULL;
	int r = net_listen(&W.loop, "127.0.0.1", W.port, 8, on_accept, &W, &l2);
	assert_int_equal(r, UV_EADDRINUSE);
	assert_null(l2);
	net_listener_close(W.l);
	W.l = NULL;
	run();
}

/* ---- backpressure ---- */

enum { BP_CHUNK = 64 * 1024 };

static bool bp_filled, bp_paused;

/* The server resumes only once the client has filled its queue AND the server is paused
 * (either can happen first). */
static void on_resume_timer(uv_timer_t *t);
static void bp_maybe_resume(void)
{
	if (bp_filled && bp_paused) {
		W.t.data = &W.srv[0];
		uv_timer_start(&W.t, on_resume_timer, 50, 0);
	}
}

static void on_resume_timer(uv_timer_t *t)
{
	struct peer *p = t->data;
	assert_int_equal(p->n_data, 0); /* nothing was delivered while paused */
	p->paused = false;
	net_conn_resume_read(p->c);
}

static void bp_fill(struct peer *p)
{
	static uint8_t chunk[BP_CHUNK];
	size_t sent = 0;
	/* Write until the queue is above out_high (the kernel buffers take some first). */
	while (net_conn_out_queued(p->c) <= 256 * 1024) {
		fill(chunk, sizeof chunk, sent);
		assert_int_equal(net_conn_write(p->c, chunk, sizeof chunk), 0);
		sent += sizeof chunk;
		assert_true(sent < 512u * 1024 * 1024);
	}
	p->u[0] = sent;
	/* The bound: writing past out_max is refused, nothing is queued. */
	size_t q = net_conn_out_queued(p->c);
	assert_int_equal(net_conn_write(p->c, chunk, 64 * 1024 * 1024), PE_TOOBIG);
	assert_int_equal(net_conn_out_queued(p->c), q);
	bp_filled = true;
	bp_maybe_resume();
}

static void bp_connected(struct peer *p)
{
	struct net_conn_opts o = {
	    .out_high = 256 * 1024, .out_low = 64 * 1024, .out_max = 60 * 1024 * 1024};
	net_conn_set_opts(p->c, &o);
	if (!net_conn_tls(p->c))
		bp_fill(p);
}

static void bp_drained(struct peer *p)
{
	assert_true(net_conn_out_queued(p->c) <= 64 * 1024);
	/* One last chunk, then a graceful close that must deliver everything. */
	static uint8_t chunk[1000];
	fill(chunk, sizeof chunk, p->u[0]);
	assert_int_equal(net_conn_write(p->c, chunk, sizeof chunk), 0);
	p->u[0] += sizeof chunk;
	net_conn_close(p->c, 0);
}

static void pause_now(struct peer *p)
{
	net_conn_pause_read(p->c);
	p->paused = true;
	bp_paused = true;
	bp_maybe_resume();
}

static void run_backpressure(bool tls)
{
	if (tls) {
		W.sctx = mkctx(true, "proxy.link.test", "ca", 0, 0);
		W.cctx = mkctx(false, "gateway.link.test", "ca", 0, 0);
		W.srv_tls = true;
	}
	listen_on("127.0.0.1");
	/* Paused from the start (TLS: once the handshake, which needs reading, is done). */
	bp_filled = bp_paused = false;
	if (tls)
		W.srv_tpl.on_secure = pause_now;
	else
		W.srv_tpl.on_accept = pause_now;
	W.cli.on_connect = bp_connected;
	if (tls)
		W.cli.on_secure = bp_fill;
	W.cli.on_drain = bp_drained;
	client_connect("127.0.0.1");
	if (tls)
		assert_int_equal(net_conn_start_tls(W.cli.c, W.cctx, false, NULL), 0);
	run();
	assert_int_equal(W.cli.n_drain, 1);
	assert_int_equal(W.cli.n_close, 1);
	assert_int_equal(W.cli.reason, 0);
	assert_false(W.srv[0].data_while_paused);
	assert_int_equal(W.srv[0].reason, UV_EOF);
	assert_int_equal(W.srv[0].rx.len, W.cli.u[0]);
	check_pattern(&W.srv[0].rx);
	print_message("backpressure (%s): %llu bytes, %d on_data calls\n", tls ? "tls" : "plain",
		      (unsigned long long)W.cli.u[0], W.srv[0].n_data);
}

static void test_backpressure_plain(void **state)
{
	(void)state;
	run_backpressure(false);
}

static void test_backpressure_tls(void **state)
{
	(void)state;
	run_backpressure(true);
}

/* ---- pause with decrypted input still buffered ---- */

static void on_unpause(uv_timer_t *t)
{
	struct peer *p = t->data;
	p->u[1] = (uint64_t)p->n_data;
	p->paused = false;
	net_conn_resume_read(p->c);
	assert_int_equal(p->n_data, (int)p->u[1]); /* never delivered inside resume */
}

static void pause_each_chunk(struct peer *p, const uint8_t *d, size_t n)
{
	(void)d, (void)n;
	assert_true(n <= 64 * 1024);
	net_conn_pause_read(p->c);
	p->paused = true;
	W.t.data = p;
	uv_timer_start(&W.t, on_unpause, 1, 0);
}

static void send_big(struct peer *p)
{
	static uint8_t big[300000];
	fill(big, sizeof big, 0);
	assert_int_equal(net_conn_write(p->c, big, sizeof big), 0);
	net_conn_close(p->c, 0);
}

static void test_pause_with_buffered_tls(void **state)
{
	(void)state;
	W.sctx = mkctx(true, "proxy.link.test", "ca", 0, 0);
	W.cctx = mkctx(false, "gateway.link.test", "ca", 0, 0);
	W.srv_tls = true;
	listen_on("127.0.0.1");
	W.srv_tpl.on_data = pause_each_chunk;
	W.cli.on_secure = send_big;
	client_connect("127.0.0.1");
	assert_int_equal(net_conn_start_tls(W.cli.c, W.cctx, false, NULL), 0);
	run();
	assert_false(W.srv[0].data_while_paused);
	assert_int_equal(W.srv[0].rx.len, 300000);
	check_pattern(&W.srv[0].rx);
	assert_true(W.srv[0].n_data >= 5); /* 300 000 bytes in <= 64 KiB chunks */
	assert_int_equal(W.cli.reason, 0);
}

/* ---- TLS failures and policy ---- */

static void test_tls_version_failure(void **state)
{
	(void)state;
	W.sctx = mkctx(true, "proxy.link.test", "ca", TLS1_3_VERSION, TLS1_3_VERSION);
	W.cctx = mkctx(false, "gateway.link.test", "ca", 0, TLS1_2_VERSION);
	W.srv_tls = true;
	listen_on("127.0.0.1");
	client_connect("127.0.0.1");
	assert_int_equal(net_conn_start_tls(W.cli.c, W.cctx, false, NULL), 0);
	run();
	assert_int_equal(W.srv[0].n_secure, 0);
	assert_int_equal(W.cli.n_secure, 0);
	assert_int_equal(W.srv[0].reason, PE_TLS);
	assert_contains(W.srv[0].tls_err, "unsupported protocol");
	assert_int_equal(W.cli.reason, PE_TLS);
	assert_contains(W.cli.tls_err, "protocol version"); /* the alert arrived */
}

static void policy_check(struct peer *p)
{
	char why[160];
	const char *const names[] = {"proxy.link.test"};
	if (!tls_sess_peer_pinned(net_conn_tls(p->c), names, 1, why, sizeof why)) {
		snprintf(p->tls_err, sizeof p->tls_err, "%s", why);
		net_conn_close(p->c, PE_VERIFY);
	}
}

static void test_policy_close_on_secure(void **state)
{
	(void)state;
	W.sctx = mkctx(true, "evil-proxy.link.test", "ca", 0, 0);
	W.cctx = mkctx(false, "gateway.link.test", "ca", 0, 0);
	W.srv_tls = true;
	listen_on("127.0.0.1");
	W.cli.on_secure = policy_check;
	client_connect("127.0.0.1");
	assert_int_equal(net_conn_start_tls(W.cli.c, W.cctx, false, NULL), 0);
	run();
	assert_int_equal(W.cli.n_secure, 1);
	assert_int_equal(W.cli.reason, PE_VERIFY);
	assert_int_equal(W.srv[0].reason, UV_EOF);
}

/* ---- STARTTLS in the middle of a plaintext stream ---- */

static void st_server(struct peer *p, const uint8_t *d, size_t n)
{
	if (net_conn_tls(p->c)) {
		/* Decrypted. */
		assert_int_equal(n, 6);
		assert_memory_equal(d, "secret", 6);
		assert_int_equal(net_conn_write(p->c, "secret-ack", 10), 0);
		return;
	}
	assert_int_equal(n, 9);
	assert_memory_equal(d, "STARTTLS\n", 9);
	assert_int_equal(net_conn_write(p->c, "GO\n", 3), 0); /* in the clear */
	assert_int_equal(net_conn_start_tls(p->c, p->w->sctx, true, NULL), 0);
	assert_int_equal(net_conn_write(p->c, "hello-tls", 9), 0); /* encrypted */
}

static void st_client_connect(struct peer *p)
{
	assert_int_equal(net_conn_write(p->c, "STARTTLS\n", 9), 0);
}

static void st_client(struct peer *p, const uint8_t *d, size_t n)
{
	if (!net_conn_tls(p->c)) {
		assert_int_equal(n, 3);
		assert_memory_equal(d, "GO\n", 3);
		assert_int_equal(net_conn_start_tls(p->c, p->w->cctx, false, "proxy.link.test"), 0);
		assert_int_equal(net_conn_write(p->c, "secret", 6), 0);
	}
}

static void test_starttls(void **state)
{
	(void)state;
	W.sctx = mkctx(true, "proxy.link.test", "ca", 0, 0);
	W.cctx = mkctx(false, "gateway.link.test", "ca", 0, 0);
	listen_on("127.0.0.1");
	W.srv_tpl.on_data = st_server;
	W.cli.on_connect = st_client_connect;
	W.cli.on_data = st_client;
	W.cli.expect = 3 + 9 + 10;
	client_connect("127.0.0.1");
	run();
	assert_int_equal(W.cli.n_secure, 1);
	assert_int_equal(W.srv[0].n_secure, 1);
	assert_int_equal(W.cli.rx.len, 22);
	assert_memory_equal(buf_head(&W.cli.rx), "GO\nhello-tlssecret-ack", 22);
	assert_int_equal(W.cli.reason, 0);
	assert_int_equal(W.srv[0].reason, UV_EOF);
}

/* ---- timers and early writes ---- */

static void test_timeout(void **state)
{
	(void)state;
	W.cctx = mkctx(false, "gateway.link.test", "ca", 0, 0);
	listen_on("127.0.0.1"); /* plaintext server: the handshake never completes */
	client_connect("127.0.0.1");
	assert_int_equal(net_conn_start_tls(W.cli.c, W.cctx, false, NULL), 0);
	net_conn_set_timeout(W.cli.c, 100);
	uint64_t t0 = uv_now(&W.loop);
	run();
	assert_int_equal(W.cli.reason, PE_TIMEOUT);
	assert_true(uv_now(&W.loop) - t0 >= 100);
	assert_int_equal(W.cli.n_secure, 0);
	assert_true(W.srv[0].rx.len > 0); /* it got the ClientHello */
	assert_true(W.srv[0].reason == UV_EOF || W.srv[0].reason == UV_ECONNRESET);
}

static void test_write_and_close_before_connect(void **state)
{
	(void)state;
	listen_on("127.0.0.1");
	client_connect("127.0.0.1");
	assert_int_equal(net_conn_write(W.cli.c, "early", 5), 0);
	net_conn_close(W.cli.c, 0);
	assert_int_equal(net_conn_write(W.cli.c, "late", 4), PE_CLOSED);
	run();
	assert_int_equal(W.srv[0].rx.len, 5);
	assert_memory_equal(buf_head(&W.srv[0].rx), "early", 5);
	assert_int_equal(W.srv[0].reason, UV_EOF);
	assert_int_equal(W.cli.reason, 0);
	assert_int_equal(W.cli.n_close, 1);
}

static void test_ids_unique(void **state)
{
	(void)state;
	/* No listener: both are aborted before the loop runs. */
	W.expect_accepts = 0;
	struct peer a = {.w = &W}, b = {.w = &W};
	buf_init(&a.rx, 0);
	buf_init(&b.rx, 0);
	a.c = net_connect(&W.loop, "127.0.0.1", 9, &gcbs, &a);
	b.c = net_connect(&W.loop, "127.0.0.1", 9, &gcbs, &b);
	W.open += 2;
	assert_true(net_conn_id(a.c) != 0);
	assert_true(net_conn_id(a.c) != net_conn_id(b.c));
	assert_ptr_equal(net_conn_arg(a.c), &a);
	assert_string_equal(net_conn_peer(a.c), "127.0.0.1:9");
	assert_int_equal(net_stats_get()->conns_open, 2);
	net_conn_abort(a.c, PE_STATE);
	net_conn_abort(b.c, 0);
	run();
	assert_int_equal(a.n_close, 1);
	assert_int_equal(a.reason, PE_STATE);
	assert_int_equal(b.n_close, 1);
	assert_int_equal(b.reason, 0);
	assert_int_equal(a.n_connect, 0);
	buf_deinit(&a.rx);
	buf_deinit(&b.rx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_plain_echo, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ipv6_echo, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tls_echo_coalesced, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_close_inside_on_data_plain, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_close_inside_on_data_tls, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_abort_inside_on_data, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_peer_reset, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_connect_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_listen_in_use, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_backpressure_plain, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_backpressure_tls, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pause_with_buffered_tls, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tls_version_failure, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_policy_close_on_secure, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_starttls, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_write_and_close_before_connect, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ids_unique, setup, teardown),
	};
	/* TEST_FILTER=glob runs a subset; PARLEY_TEST_LOG=debug shows net's log lines. */
	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	enum log_level lv = LL_WARN;
	if (getenv("PARLEY_TEST_LOG"))
		log_level_parse(getenv("PARLEY_TEST_LOG"), &lv);
	log_init("test_net", lv);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
