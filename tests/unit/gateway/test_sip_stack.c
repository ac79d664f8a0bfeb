/* sip_stack end to end inside one process: a "gateway" stack sends to a "pool" stack
 * over real UDP, TCP and TLS sockets on 127.0.0.60-69; failover, MESSAGE ordering,
 * health checks, keep-alive, fixed answers with NOTIFY, and malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "err.h"
#include "log.h"
#include "sip_stack.h"
#include "sip_transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

static char certdir[64];

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

static const char *cert(const char *name)
{
	static char p[4][160];
	static int i;
	i = (i + 1) % 4;
	snprintf(p[i], sizeof p[i], "%s/%s", certdir, name);
	return p[i];
}

/* --- a TU that records and answers ------------------------------------------------- */

#define HELD 16

struct tu {
	int requests;
	int answer; /* 0 = hold the handle */
	char method[16];
	char body[256];
	char from_tag[64];
	char to_tag[64];
	char call_id[128];
	char sub_state[128];
	char contact[256];
	struct sip_stxn *held[HELD];
	int nheld;
};

static void tu_on_request(void *arg, struct sip_stxn *st, struct sip_msg *req)
{
	struct tu *t = arg;
	const uint8_t *b;
	size_t n;
	t->requests++;
	snprintf(t->method, sizeof t->method, "%s", sip_msg_method(req));
	sip_msg_body(req, &b, &n);
	snprintf(t->body, sizeof t->body, "%.*s", (int)n, (const char *)b);
	snprintf(t->from_tag, sizeof t->from_tag, "%s",
		 sip_msg_from_tag(req) ? sip_msg_from_tag(req) : "");
	snprintf(t->to_tag, sizeof t->to_tag, "%s", sip_msg_to_tag(req) ? sip_msg_to_tag(req) : "");
	snprintf(t->call_id, sizeof t->call_id, "%s", sip_msg_call_id(req));
	snprintf(t->sub_state, sizeof t->sub_state, "%s",
		 sip_msg_subscription_state(req) ? sip_msg_subscription_state(req) : "");
	snprintf(t->contact, sizeof t->contact, "%s",
		 sip_msg_contact_uri(req) ? sip_msg_contact_uri(req) : "");
	if (t->answer) {
		assert_int_equal(sip_stxn_reply(st, t->answer, NULL), 0);
		return;
	}
	assert_true(t->nheld < HELD);
	t->held[t->nheld++] = st;
}

struct final {
	int n;
	int status;
	bool local;
	char to_tag[64];
	char contact[256];
};

static void on_final(void *arg, struct sip_msg *resp)
{
	struct final *f = arg;
	f->n++;
	f->status = sip_msg_status(resp);
	f->local = sip_msg_is_local(resp);
	snprintf(f->to_tag, sizeof f->to_tag, "%s",
		 sip_msg_to_tag(resp) ? sip_msg_to_tag(resp) : "");
	snprintf(f->contact, sizeof f->contact, "%s",
		 sip_msg_contact_uri(resp) ? sip_msg_contact_uri(resp) : "");
}

/* --- fixture ----------------------------------------------------------------------- */

struct fix {
	uv_loop_t loop;
	struct sip_stack *gw, *pool, *pool2;
	struct tu gw_tu, pool_tu, pool2_tu;
};

static void on_tick(uv_timer_t *t)
{
	(void)t;
}

static void run_until(struct fix *f, int *counter, int want, uint64_t ms)
{
	uv_timer_t t;
	uv_timer_init(&f->loop, &t);
	uv_timer_start(&t, on_tick, 5, 5);
	uint64_t end = uv_now(&f->loop) + ms;
	while (uv_now(&f->loop) < end && (!counter || *counter < want))
		uv_run(&f->loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(&f->loop, UV_RUN_NOWAIT);
}

static struct sip_stack *make_stack(struct fix *f, const struct sip_cfg *cfg, struct tu *tu)
{
	struct sip_stack *s = NULL;
	char err[256];
	struct sip_stack_cbs cbs = {.on_request = tu_on_request};
	int r = sip_stack_new(&f->loop, cfg, &cbs, tu, &s, err, sizeof err);
	if (r)
		fprintf(stderr, "sip_stack_new: %s\n", err);
	assert_int_equal(r, 0);
	return s;
}

/* The pool side: listens on 127.0.0.61 on every transport at fixed ports. */
static struct sip_stack *make_pool(struct fix *f, const char *ip, int base, int fixed,
				   struct tu *tu)
{
	char u[64], t[64], s[64];
	snprintf(u, sizeof u, "%s:%d", ip, base);
	snprintf(t, sizeof t, "%s:%d", ip, base);
	snprintf(s, sizeof s, "%s:%d", ip, base + 1);
	static const char *const nopool[] = {"udp:127.0.0.60:5999", NULL};
	struct sip_cfg cfg = {.listen_udp = u,
			      .listen_tcp = t,
			      .listen_tls = s,
			      .pool = nopool,
			      .tls_ca = cert("ca.pem"),
			      .tls_cert = cert("pool.corp.test.pem"),
			      .tls_key = cert("pool.corp.test.key"),
			      .t1_ms = 20,
			      .fixed_answer = fixed};
	return make_stack(f, &cfg, tu);
}

static struct sip_stack *make_gw(struct fix *f, const char *const *pool, uint32_t t1,
				 uint32_t health, uint32_t keepalive)
{
	struct sip_cfg cfg = {.listen_udp = "127.0.0.60:0",
			      .listen_tcp = "127.0.0.60:0",
			      .pool = pool,
			      .tls_ca = cert("ca.pem"),
			      .t1_ms = t1,
			      .health_ms = health,
			      .keepalive_ms = keepalive};
	return make_stack(f, &cfg, &f->gw_tu);
}

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof *f);
	uv_loop_init(&f->loop);
	f->pool_tu.answer = 200;
	f->pool2_tu.answer = 200;
	f->gw_tu.answer = 200;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;
	sip_stack_free(f->gw);
	sip_stack_free(f->pool);
	sip_stack_free(f->pool2);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	free(f);
	return 0;
}

static int group_setup(void **state)
{
	(void)state;
	snprintf(certdir, sizeof certdir, "/tmp/parley-test-sip-XXXXXX");
	if (!mkdtemp(certdir))
		return -1;
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "sh %s/deploy/mkcerts.sh %s pool.corp.test other.corp.test",
		 src_root(), certdir);
	return system(cmd) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", certdir);
	return system(cmd) == 0 ? 0 : -1;
}

static struct sip_msg *message(struct fix *f, const char *to, const char *text)
{
	struct sip_msg *m =
	    sip_stack_new_request(f->gw, "MESSAGE", to, "sip:alice@partner.test", to, NULL);
	assert_non_null(m);
	assert_int_equal(sip_msg_set_body(m, "text/plain;charset=UTF-8", text, strlen(text)), 0);
	return m;
}

/* --- tests ------------------------------------------------------------------------- */

static void send_over(void **state, const char *member)
{
	struct fix *f = *state;
	f->pool = make_pool(f, "127.0.0.61", 15060, 0, &f->pool_tu);
	const char *const pool[] = {member, NULL};
	f->gw = make_gw(f, pool, 50, 0, 0);
	struct final fin = {0};
	assert_int_equal(sip_stack_send(f->gw, message(f, "sip:bob@corp.test", "hello there"), NULL,
					on_final, &fin, NULL),
			 0);
	assert_int_equal(fin.n, 0); /* never from inside the call */
	run_until(f, &fin.n, 1, 3000);
	assert_int_equal(fin.n, 1);
	assert_int_equal(fin.status, 200);
	assert_false(fin.local);
	assert_int_equal(f->pool_tu.requests, 1);
	assert_string_equal(f->pool_tu.method, "MESSAGE");
	assert_string_equal(f->pool_tu.body, "hello there");
	assert_string_equal(fin.to_tag[0] ? "tagged" : "", "tagged");
}

static void test_message_udp(void **state)
{
	send_over(state, "udp:127.0.0.61:15060");
}
static void test_message_tcp(void **state)
{
	send_over(state, "tcp:127.0.0.61:15060");
}
static void test_message_tls(void **state)
{
	send_over(state, "tls:127.0.0.61:15061;name=pool.corp.test");
}

static void test_tls_name_mismatch_fails_over(void **state)
{
	struct fix *f = *state;
	f->pool = make_pool(f, "127.0.0.61", 15060, 0, &f->pool_tu);
	/* the first member's certificate does not carry the expected name */
	const char *const pool[] = {"tls:127.0.0.61:15061;name=other.corp.test",
				    "tcp:127.0.0.61:15060", NULL};
	f->gw = make_gw(f, pool, 50, 0, 0);
	struct final fin = {0};
	assert_int_equal(
	    sip_stack_send(f->gw, message(f, "sip:bob@corp.test", "x"), NULL, on_final, &fin, NULL),
	    0);
	run_until(f, &fin.n, 1, 3000);
	assert_int_equal(fin.status, 200);
	struct sip_stack_stats st;
	sip_stack_stats(f->gw, &st);
	assert_int_equal(st.failovers, 1);
	assert_int_equal(f->pool_tu.requests, 1); /* only the TCP attempt reached the TU */
}

static void test_failover_dead_tcp_member(void **state)
{
	struct fix *f = *state;
	f->pool = make_pool(f, "127.0.0.61", 15060, 0, &f->pool_tu);
	const char *const pool[] = {"tcp:127.0.0.63:15060", "tcp:127.0.0.61:15060", NULL};
	f->gw = make_gw(f, pool, 50, 0, 0);
	struct final fin = {0};
	assert_int_equal(
	    sip_stack_send(f->gw, message(f, "sip:bob@corp.test", "1"), NULL, on_final, &fin, NULL),
	    0);
	run_until(f, &fin.n, 1, 3000);
	assert_int_equal(fin.status, 200);
	struct sip_stack_stats st;
	sip_stack_stats(f->gw, &st);
	assert_int_equal(st.failovers, 1);
	/* the dead member is now marked down and ordered last: no further failover */
	assert_int_equal(
	    sip_stack_send(f->gw, message(f, "sip:bob@corp.test", "2"), NULL, on_final, &fin, NULL),
	    0);
	run_until(f, &fin.n, 2, 3000);
	assert_int_equal(fin.status, 200);
	sip_stack_stats(f->gw, &st);
	assert_int_equal(st.failovers, 1);
	assert_int_equal(f->pool_tu.requests, 2);
}

static void test_failover_on_503_and_timeout(void **state)
{
	struct fix *f = *state;
	f->pool = make_pool(f, "127.0.0.61", 15060, 503, &f->pool_tu);
	f->pool2 = make_pool(f, "127.0.0.62", 15060, 0, &f->pool2_tu);
	/* a silent UDP member (timeout), one answering 503, one that works */
	const char *const pool[] = {"udp:127.0.0.63:15060", "udp:127.0.0.61:15060",
				    "udp:127.0.0.62:15060", NULL};
	f->gw = make_gw(f, pool, 5, 0, 0);
	struct final fin = {0};
	assert_int_equal(
	    sip_stack_send(f->gw, message(f, "sip:bob@corp.test", "x"), NULL, on_final, &fin, NULL),
	    0);
	run_until(f, &fin.n, 1, 3000);
	assert_int_equal(fin.status, 200);
	assert_int_equal(f->pool2_tu.requests, 1);
	struct sip_stack_stats st;
	sip_stack_stats(f->gw, &st);
	assert_int_equal(st.failovers, 2);
	assert_int_equal(st.txn->timeouts, 1);
	/* every member failing: the silent one (marked down) is tried last, and the last
	 * answer comes back */
	f->pool2_tu.answer = 503;
	assert_int_equal(
	    sip_stack_send(f->gw, message(f, "sip:bob@corp.test", "y"), NULL, on_final, &fin, NULL),
	    0);
	run_until(f, &fin.n, 2, 3000);
	assert_int_equal(fin.n, 2);
	assert_int_equal(fin.status, 408);
	assert_true(fin.local);
	assert_int_equal(f->pool2_tu.requests, 2);
	sip_stack_stats(f->gw, &st);
	assert_int_equal(st.failovers, 4);
}

static void test_message_order_per_uri(void **state)
{
	struct fix *f = *state;
	f->pool = make_pool(f, "127.0.0.61", 15060, 0, &f->pool_tu);
	f->pool_tu.answer = 0; /* hold */
	const char *const pool[] = {"tcp:127.0.0.61:15060", NULL};
	f->gw = make_gw(f, pool, 50, 0, 0);
	struct final a = {0}, b = {0}, c = {0}, d = {0};
	struct sip_req *rb;
	assert_int_equal(
	    sip_stack_send(f->gw, message(f, "sip:bob@corp.test", "one"), NULL, on_final, &a, NULL),
	    0);
	assert_int_equal(
	    sip_stack_send(f->gw, message(f, "sip:bob@corp.test", "two"), NULL, on_final, &b, &rb),
	    0);
	assert_int_equal(sip_stack_send(f->gw, message(f, "sip:bob@corp.test", "three"), NULL,
					on_final, &c, NULL),
			 0);
	/* another URI is not held up */
	assert_int_equal(sip_stack_send(f->gw, message(f, "sip:carol@corp.test", "other"), NULL,
					on_final, &d, NULL),
			 0);
	run_until(f, &f->pool_tu.requests, 2, 2000);
	run_until(f, NULL, 0, 50);
	assert_int_equal(f->pool_tu.requests, 2); /* "one" and "other" only */
	assert_string_equal(f->pool_tu.body, "other");
	/* abandoning a waiting one removes it from the queue */
	sip_stack_abandon(rb);
	assert_int_equal(sip_stxn_reply(f->pool_tu.held[0], 200, NULL), 0);
	run_until(f, &f->pool_tu.requests, 3, 2000);
	assert_int_equal(a.n, 1);
	assert_string_equal(f->pool_tu.body, "three");
	struct sip_stack_stats st;
	sip_stack_stats(f->gw, &st);
	assert_int_equal(st.message_queued, 2);
	assert_int_equal(sip_stxn_reply(f->pool_tu.held[2], 202, NULL), 0);
	assert_int_equal(sip_stxn_reply(f->pool_tu.held[1], 200, NULL), 0);
	run_until(f, &c.n, 1, 2000);
	run_until(f, &d.n, 1, 2000);
	assert_int_equal(b.n, 0);
	assert_int_equal(c.status, 202);
	assert_int_equal(d.status, 200);
}

static void test_fixed_answers_and_notify(void **state)
{
	struct fix *f = *state;
	f->pool = make_pool(f, "127.0.0.61", 15060, 488, &f->pool_tu);
	f->pool2 = make_pool(f, "127.0.0.62", 15060, 200, &f->pool2_tu);
	const char *const pool[] = {"udp:127.0.0.61:15060", NULL};
	f->gw = make_gw(f, pool, 50, 0, 0);
	struct final fin = {0};
	assert_int_equal(
	    sip_stack_send(f->gw, message(f, "sip:bob@corp.test", "x"), NULL, on_final, &fin, NULL),
	    0);
	run_until(f, &fin.n, 1, 2000);
	assert_int_equal(fin.status, 488);
	assert_int_equal(f->pool_tu.requests, 0); /* the TU was never asked */

	/* SUBSCRIBE answered 200 by the fixed answer, then a NOTIFY ends it */
	struct sip_msg *sub =
	    sip_stack_new_request(f->gw, "SUBSCRIBE", "sip:bob@partner.test", "sip:alice@corp.test",
				  "sip:bob@partner.test", NULL);
	assert_int_equal(sip_msg_add_header(sub, "Event", "presence"), 0);
	assert_int_equal(sip_msg_add_header(sub, "Expires", "600"), 0);
	char cid[128], ftag[64];
	snprintf(cid, sizeof cid, "%s", sip_msg_call_id(sub));
	snprintf(ftag, sizeof ftag, "%s", sip_msg_from_tag(sub));
	assert_int_equal(
	    sip_stack_send(f->gw, sub, "sip:127.0.0.62:15060;transport=tcp", on_final, &fin, NULL),
	    0);
	run_until(f, &fin.n, 2, 2000);
	assert_int_equal(fin.status, 200);
	/* the 2xx carries the pool's Contact */
	assert_non_null(strstr(fin.contact, "127.0.0.62:15060"));
	run_until(f, &f->gw_tu.requests, 1, 2000);
	assert_int_equal(f->gw_tu.requests, 1);
	assert_string_equal(f->gw_tu.method, "NOTIFY");
	assert_string_equal(f->gw_tu.call_id, cid);
	assert_string_equal(f->gw_tu.to_tag, ftag);
	assert_string_equal(f->gw_tu.from_tag, fin.to_tag);
	assert_string_equal(f->gw_tu.sub_state, "terminated;reason=noresource");
}

static void test_health_checks(void **state)
{
	struct fix *f = *state;
	f->pool2 = make_pool(f, "127.0.0.62", 15060, 0, &f->pool2_tu);
	/* 127.0.0.61 is down at first */
	const char *const pool[] = {"tcp:127.0.0.61:15060", "tcp:127.0.0.62:15060", NULL};
	f->gw = make_gw(f, pool, 50, 40, 0);
	struct sip_stack_stats st;
	sip_stack_stats(f->gw, &st);
	uint64_t end = uv_now(&f->loop) + 2000;
	do {
		run_until(f, NULL, 0, 20);
		sip_stack_stats(f->gw, &st);
	} while (st.health_down < 1 && uv_now(&f->loop) < end);
	assert_true(st.health_down >= 1);
	/* a request now skips the down member without a failover */
	struct final fin = {0};
	assert_int_equal(
	    sip_stack_send(f->gw, message(f, "sip:bob@corp.test", "a"), NULL, on_final, &fin, NULL),
	    0);
	run_until(f, &fin.n, 1, 2000);
	assert_int_equal(fin.status, 200);
	sip_stack_stats(f->gw, &st);
	assert_int_equal(st.failovers, 0);
	assert_int_equal(f->pool2_tu.requests, 1);
	/* the member comes up; a health check marks it up; it is first again */
	f->pool = make_pool(f, "127.0.0.61", 15060, 0, &f->pool_tu);
	uint64_t ups = st.health_up;
	end = uv_now(&f->loop) + 2000;
	int before = f->pool_tu.requests;
	do {
		run_until(f, NULL, 0, 20);
		sip_stack_stats(f->gw, &st);
	} while (st.health_up < ups + 3 && uv_now(&f->loop) < end);
	assert_int_equal(
	    sip_stack_send(f->gw, message(f, "sip:bob@corp.test", "b"), NULL, on_final, &fin, NULL),
	    0);
	run_until(f, &fin.n, 2, 2000);
	assert_int_equal(fin.status, 200);
	assert_int_equal(f->pool_tu.requests, before + 1);
	assert_int_equal(f->pool2_tu.requests, 1);
}

static void test_keepalive(void **state)
{
	struct fix *f = *state;
	f->pool = make_pool(f, "127.0.0.61", 15060, 0, &f->pool_tu);
	const char *const pool[] = {"tcp:127.0.0.61:15060", NULL};
	f->gw = make_gw(f, pool, 50, 0, 30);
	struct final fin = {0};
	assert_int_equal(
	    sip_stack_send(f->gw, message(f, "sip:bob@corp.test", "x"), NULL, on_final, &fin, NULL),
	    0);
	run_until(f, &fin.n, 1, 2000);
	struct sip_stack_stats g, p;
	uint64_t end = uv_now(&f->loop) + 3000;
	do {
		run_until(f, NULL, 0, 30);
		sip_stack_stats(f->gw, &g);
	} while (g.tp->pongs_in < 3 && uv_now(&f->loop) < end);
	sip_stack_stats(f->gw, &g);
	sip_stack_stats(f->pool, &p);
	assert_true(g.tp->pings_out >= 2);
	assert_true(g.tp->pongs_in >= 2);
	assert_true(p.tp->pings_in >= 2);
	assert_int_equal(g.tp->keepalive_closed, 0);
	assert_int_equal(g.tp->flows_open, 1); /* the flow stays up and is reused */
}

/* Writes raw bytes to a listener and collects what comes back until EOF or timeout. */
static size_t raw_tcp(struct fix *f, const char *ip, int port, const char *data, size_t n,
		      char *out, size_t cap, bool *closed)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	inet_pton(AF_INET, ip, &a.sin_addr);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	size_t got = 0;
	*closed = false;
	uint64_t end = uv_now(&f->loop) + 2000;
	while (uv_now(&f->loop) < end) {
		run_until(f, NULL, 0, 10);
		ssize_t r = recv(fd, out + got, cap - 1 - got, MSG_DONTWAIT);
		if (r == 0) {
			*closed = true;
			break;
		}
		if (r > 0)
			got += (size_t)r;
	}
	out[got] = '\0';
	close(fd);
	return got;
}

static void test_malformed_input(void **state)
{
	struct fix *f = *state;
	f->pool = make_pool(f, "127.0.0.61", 15060, 0, &f->pool_tu);
	char out[4096];
	bool closed;
	/* bad Content-Length: 400 copying the Via, then the flow closes */
	const char *bad = "MESSAGE sip:bob@corp.test SIP/2.0\r\n"
			  "Via: SIP/2.0/TCP 127.0.0.69:5060;branch=z9hG4bKbad1\r\n"
			  "From: <sip:a@b>;tag=1\r\nTo: <sip:bob@corp.test>\r\nCall-ID: bad1\r\n"
			  "CSeq: 1 MESSAGE\r\nContent-Length: -5\r\n\r\n";
	raw_tcp(f, "127.0.0.61", 15060, bad, strlen(bad), out, sizeof out, &closed);
	assert_true(closed);
	assert_non_null(strstr(out, "SIP/2.0 400 Bad Request (bad Content-Length)\r\n"));
	assert_non_null(strstr(out, "branch=z9hG4bKbad1"));
	/* binary garbage: a bare 400 and close */
	raw_tcp(f, "127.0.0.61", 15060, "\x16\x03\x01\x02\x00garbage", 12, out, sizeof out,
		&closed);
	assert_true(closed);
	assert_memory_equal(out, "SIP/2.0 400 Bad Request", 23);
	/* missing mandatory header: 400 naming it, the flow stays open */
	const char *nofrom = "OPTIONS sip:bob@corp.test SIP/2.0\r\n"
			     "Via: SIP/2.0/TCP 127.0.0.69:5060;branch=z9hG4bKbad2\r\n"
			     "To: <sip:bob@corp.test>\r\nCall-ID: bad2\r\n"
			     "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
	raw_tcp(f, "127.0.0.61", 15060, nofrom, strlen(nofrom), out, sizeof out, &closed);
	assert_non_null(strstr(out, "SIP/2.0 400 Bad Request (missing From)"));
	/* a huge header block */
	char *big = malloc(40000);
	int n = snprintf(big, 40000, "MESSAGE sip:b@c SIP/2.0\r\nX: ");
	memset(big + n, 'a', 40000 - (size_t)n);
	raw_tcp(f, "127.0.0.61", 15060, big, 40000, out, sizeof out, &closed);
	assert_true(closed);
	assert_memory_equal(out, "SIP/2.0 400 Bad Request", 23);
	free(big);
	/* UDP garbage is dropped */
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(15060)};
	inet_pton(AF_INET, "127.0.0.61", &a.sin_addr);
	sendto(fd, "\x01\x02garbage\r\n\r\n", 13, 0, (struct sockaddr *)&a, sizeof a);
	close(fd);
	run_until(f, NULL, 0, 50);
	struct sip_stack_stats st;
	sip_stack_stats(f->pool, &st);
	assert_int_equal(st.tp->bad_input, 4);
	assert_int_equal(st.txn->bad_requests, 1);
	/* and the stack still works */
	const char *const pool[] = {"tcp:127.0.0.61:15060", NULL};
	f->gw = make_gw(f, pool, 50, 0, 0);
	struct final fin = {0};
	assert_int_equal(
	    sip_stack_send(f->gw, message(f, "sip:bob@corp.test", "x"), NULL, on_final, &fin, NULL),
	    0);
	run_until(f, &fin.n, 1, 2000);
	assert_int_equal(fin.status, 200);
}

static void test_bad_config(void **state)
{
	struct fix *f = *state;
	struct sip_stack *s = NULL;
	char err[256];
	const char *const badpool[] = {"sctp:1.2.3.4", NULL};
	struct sip_cfg cfg = {.listen_udp = "127.0.0.60:0", .pool = badpool};
	assert_int_equal(sip_stack_new(&f->loop, &cfg, NULL, NULL, &s, err, sizeof err), PE_CONFIG);
	assert_non_null(strstr(err, "sctp:1.2.3.4"));
	struct sip_cfg c2 = {.listen_udp = "127.0.0.60:0"};
	assert_int_equal(sip_stack_new(&f->loop, &c2, NULL, NULL, &s, err, sizeof err), PE_CONFIG);
	assert_non_null(strstr(err, "pool"));
	const char *const pool[] = {"udp:127.0.0.61:5060", NULL};
	struct sip_cfg c3 = {
	    .listen_udp = "127.0.0.60:0", .listen_tls = "127.0.0.60:0", .pool = pool};
	assert_int_equal(sip_stack_new(&f->loop, &c3, NULL, NULL, &s, err, sizeof err), PE_CONFIG);
	assert_non_null(strstr(err, "tls_cert"));
	struct sip_cfg c4 = {.listen_udp = "127.0.0.60:x", .pool = pool};
	assert_int_equal(sip_stack_new(&f->loop, &c4, NULL, NULL, &s, err, sizeof err), PE_CONFIG);
	struct sip_cfg c5 = {.listen_udp = "127.0.0.60:0", .pool = pool, .fixed_answer = 180};
	assert_int_equal(sip_stack_new(&f->loop, &c5, NULL, NULL, &s, err, sizeof err), PE_CONFIG);
	assert_null(s);
}

int main(void)
{
	log_init("test_sip_stack", LL_ERROR);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_message_udp, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_message_tcp, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_message_tls, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tls_name_mismatch_fails_over, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failover_dead_tcp_member, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failover_on_503_and_timeout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_message_order_per_uri, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fixed_answers_and_notify, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_health_checks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_keepalive, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_malformed_input, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_config, setup, teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
