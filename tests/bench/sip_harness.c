/* sip_harness: the gateway's SIP stack alone, driven by line commands on stdin, for
 * system tests against Kamailio and for load. Until the gateway binary carries the
 * stack this is how the stack meets real peers.
 *
 *   sip_harness [--udp IP:PORT] [--tcp IP:PORT] [--tls IP:PORT] [--advertise HOST]
 *               [--pool MEMBER]... [--pool-domain D [--pool-sips]] [--dns SERVER]...
 *               [--ca F] [--cert F] [--key F] [--fixed STATUS] [--t1 MS] [--health MS]
 *               [--keepalive MS] [--log LEVEL]
 *
 * Commands (one per line):
 *   msg ID RURI FROM TEXT...        send a MESSAGE (text/plain)
 *   sub ID RURI FROM EXPIRES        send a SUBSCRIBE (Event: presence)
 *   opt ID RURI                     send an OPTIONS
 *   load N CONC USERS RURI-DOMAIN FROM   N MESSAGEs, CONC outstanding, to USERS users
 *   stats                           print counters
 *   quit
 * Output lines: "ready udp=P tcp=P tls=P", "final ID STATUS local=0|1 reason=...",
 * "load n=N ok=K secs=S rate=R maxrss_kb=M", "stats k=v ...". */
#include "err.h"
#include "log.h"
#include "sip_stack.h"
#include "sip_transport.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <uv.h>

#define MAXLIST 16

static uv_loop_t *loop;
static struct sip_stack *stack;
static uv_pipe_t in_pipe;
static uv_signal_t sig_term, sig_int;
static char line[8192];
static size_t line_len;
static bool quitting;

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

struct pending {
	char id[64];
};

static void on_final(void *arg, struct sip_msg *resp)
{
	struct pending *p = arg;
	out("final %s %d local=%d reason=%s", p->id, sip_msg_status(resp),
	    sip_msg_is_local(resp) ? 1 : 0, sip_msg_reason(resp));
	free(p);
}

/* --- load -------------------------------------------------------------------------- */

static struct {
	bool on;
	long total, sent, done, ok, conc, users;
	char domain[128], from[256];
	double t0;
} load;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void load_send_one(void);

static void on_load_final(void *arg, struct sip_msg *resp)
{
	(void)arg;
	load.done++;
	if (sip_msg_status(resp) == 200 || sip_msg_status(resp) == 202)
		load.ok++;
	if (load.sent < load.total)
		load_send_one();
	if (load.done == load.total) {
		double secs = now_s() - load.t0;
		struct rusage ru;
		getrusage(RUSAGE_SELF, &ru);
		out("load n=%ld ok=%ld secs=%.3f rate=%.0f maxrss_kb=%ld", load.total, load.ok,
		    secs, (double)load.total / secs, ru.ru_maxrss);
		load.on = false;
	}
}

static void load_send_one(void)
{
	char ruri[256];
	snprintf(ruri, sizeof ruri, "sip:u%ld@%s", load.sent % load.users, load.domain);
	struct sip_msg *m = sip_stack_new_request(stack, "MESSAGE", ruri, load.from, ruri, NULL);
	if (!m) {
		out("error bad load target");
		exit(2);
	}
	sip_msg_set_body(m, "text/plain;charset=UTF-8", "load test message", 17);
	load.sent++;
	if (sip_stack_send(stack, m, NULL, on_load_final, NULL, NULL) != 0) {
		out("error send failed");
		exit(2);
	}
}

/* --- commands ---------------------------------------------------------------------- */

static void shutdown_all(void);

static void print_stats(void)
{
	struct sip_stack_stats st;
	sip_stack_stats(stack, &st);
	out("stats requests_out=%llu requests_in=%llu failovers=%llu queued=%llu "
	    "health_down=%llu health_up=%llu timeouts=%llu transport_errors=%llu "
	    "bad_requests=%llu loops=%llu retransmits=%llu bad_input=%llu flows=%llu "
	    "pings_out=%llu pongs_in=%llu pings_in=%llu",
	    (unsigned long long)st.requests_out, (unsigned long long)st.requests_in,
	    (unsigned long long)st.failovers, (unsigned long long)st.message_queued,
	    (unsigned long long)st.health_down, (unsigned long long)st.health_up,
	    (unsigned long long)st.txn->timeouts, (unsigned long long)st.txn->transport_errors,
	    (unsigned long long)st.txn->bad_requests, (unsigned long long)st.txn->loops,
	    (unsigned long long)st.txn->retransmits, (unsigned long long)st.tp->bad_input,
	    (unsigned long long)st.tp->flows_open, (unsigned long long)st.tp->pings_out,
	    (unsigned long long)st.tp->pongs_in, (unsigned long long)st.tp->pings_in);
}

static void command(char *l)
{
	char *save = NULL, *cmd = strtok_r(l, " ", &save);
	if (!cmd)
		return;
	if (strcmp(cmd, "quit") == 0) {
		shutdown_all();
		return;
	}
	if (strcmp(cmd, "stats") == 0) {
		print_stats();
		return;
	}
	if (strcmp(cmd, "load") == 0) {
		char *n = strtok_r(NULL, " ", &save), *c = strtok_r(NULL, " ", &save);
		char *u = strtok_r(NULL, " ", &save), *d = strtok_r(NULL, " ", &save);
		char *f = strtok_r(NULL, " ", &save);
		if (!n || !c || !u || !d || !f) {
			out("error usage: load N CONC USERS DOMAIN FROM");
			return;
		}
		load.total = atol(n);
		load.conc = atol(c);
		load.users = atol(u);
		snprintf(load.domain, sizeof load.domain, "%s", d);
		snprintf(load.from, sizeof load.from, "%s", f);
		load.sent = load.done = load.ok = 0;
		load.on = true;
		load.t0 = now_s();
		for (long i = 0; i < load.conc && load.sent < load.total; i++)
			load_send_one();
		return;
	}
	char *id = strtok_r(NULL, " ", &save), *ruri = strtok_r(NULL, " ", &save);
	if (!id || !ruri) {
		out("error usage");
		return;
	}
	struct sip_msg *m = NULL;
	if (strcmp(cmd, "msg") == 0) {
		char *from = strtok_r(NULL, " ", &save);
		char *text = save ? save : (char *)"";
		if (!from)
			goto usage;
		m = sip_stack_new_request(stack, "MESSAGE", ruri, from, ruri, NULL);
		if (m)
			sip_msg_set_body(m, "text/plain;charset=UTF-8", text, strlen(text));
	} else if (strcmp(cmd, "sub") == 0) {
		char *from = strtok_r(NULL, " ", &save), *exp = strtok_r(NULL, " ", &save);
		if (!from || !exp)
			goto usage;
		m = sip_stack_new_request(stack, "SUBSCRIBE", ruri, from, ruri, NULL);
		if (m) {
			sip_msg_add_header(m, "Event", "presence");
			sip_msg_add_header(m, "Accept", "application/pidf+xml");
			sip_msg_add_header(m, "Expires", exp);
		}
	} else if (strcmp(cmd, "opt") == 0) {
		m = sip_stack_new_request(stack, "OPTIONS", ruri, "sip:harness@corp.test", ruri,
					  NULL);
	} else {
		goto usage;
	}
	if (!m) {
		out("final %s 0 local=1 reason=bad-request-arguments", id);
		return;
	}
	struct pending *p = calloc(1, sizeof *p);
	snprintf(p->id, sizeof p->id, "%s", id);
	if (sip_stack_send(stack, m, NULL, on_final, p, NULL) != 0) {
		out("final %s 0 local=1 reason=send-refused", id);
		free(p);
	}
	return;
usage:
	out("error usage");
}

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
	static char rb[4096];
	(void)h;
	(void)sz;
	b->base = rb;
	b->len = sizeof rb;
}

static void on_stdin(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	(void)s;
	if (n < 0) {
		shutdown_all();
		return;
	}
	for (ssize_t i = 0; i < n && !quitting; i++) {
		char c = b->base[i];
		if (c == '\n') {
			line[line_len] = '\0';
			line_len = 0;
			command(line);
		} else if (line_len + 1 < sizeof line) {
			line[line_len++] = c;
		}
	}
}

static void on_signal(uv_signal_t *s, int signum)
{
	(void)s;
	(void)signum;
	shutdown_all();
}

static void shutdown_all(void)
{
	if (quitting)
		return;
	quitting = true;
	sip_stack_free(stack);
	stack = NULL;
	uv_close((uv_handle_t *)&in_pipe, NULL);
	uv_close((uv_handle_t *)&sig_term, NULL);
	uv_close((uv_handle_t *)&sig_int, NULL);
}

int main(int argc, char **argv)
{
	struct sip_cfg cfg = {0};
	const char *pool[MAXLIST + 1] = {0}, *dns[MAXLIST + 1] = {0};
	int npool = 0, ndns = 0;
	enum log_level level = LL_INFO;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--pool-sips") == 0) {
			cfg.pool_sips = true;
			continue;
		}
		if (!v) {
			fprintf(stderr, "missing value for %s\n", a);
			return 2;
		}
		i++;
		if (strcmp(a, "--udp") == 0)
			cfg.listen_udp = v;
		else if (strcmp(a, "--tcp") == 0)
			cfg.listen_tcp = v;
		else if (strcmp(a, "--tls") == 0)
			cfg.listen_tls = v;
		else if (strcmp(a, "--advertise") == 0)
			cfg.advertise = v;
		else if (strcmp(a, "--pool") == 0 && npool < MAXLIST)
			pool[npool++] = v;
		else if (strcmp(a, "--pool-domain") == 0)
			cfg.pool_domain = v;
		else if (strcmp(a, "--dns") == 0 && ndns < MAXLIST)
			dns[ndns++] = v;
		else if (strcmp(a, "--ca") == 0)
			cfg.tls_ca = v;
		else if (strcmp(a, "--cert") == 0)
			cfg.tls_cert = v;
		else if (strcmp(a, "--key") == 0)
			cfg.tls_key = v;
		else if (strcmp(a, "--fixed") == 0)
			cfg.fixed_answer = atoi(v);
		else if (strcmp(a, "--t1") == 0)
			cfg.t1_ms = (uint32_t)atoi(v);
		else if (strcmp(a, "--health") == 0)
			cfg.health_ms = (uint32_t)atoi(v);
		else if (strcmp(a, "--keepalive") == 0)
			cfg.keepalive_ms = (uint32_t)atoi(v);
		else if (strcmp(a, "--log") == 0 && log_level_parse(v, &level) == 0)
			;
		else {
			fprintf(stderr, "unknown option %s\n", a);
			return 2;
		}
	}
	if (npool)
		cfg.pool = pool;
	if (ndns)
		cfg.dns_servers = dns;
	log_init("sip_harness", level);
	loop = uv_default_loop();
	char err[256];
	int r = sip_stack_new(loop, &cfg, NULL, NULL, &stack, err, sizeof err);
	if (r) {
		fprintf(stderr, "sip_harness: %s\n", err);
		return 1;
	}
	uv_pipe_init(loop, &in_pipe, 0);
	uv_pipe_open(&in_pipe, 0);
	uv_read_start((uv_stream_t *)&in_pipe, on_alloc, on_stdin);
	uv_signal_init(loop, &sig_term);
	uv_signal_start(&sig_term, on_signal, SIGTERM);
	uv_signal_init(loop, &sig_int);
	uv_signal_start(&sig_int, on_signal, SIGINT);
	out("ready udp=%d tcp=%d tls=%d", sip_stack_port(stack, SIP_PROTO_UDP),
	    sip_stack_port(stack, SIP_PROTO_TCP), sip_stack_port(stack, SIP_PROTO_TLS));
	uv_run(loop, UV_RUN_DEFAULT);
	uv_loop_close(loop);
	return 0;
}
