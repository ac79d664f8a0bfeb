/* sip_uas: a minimal SIP UAS for load: answers every request with a fixed status by
 * copying Via/From/To/Call-ID/CSeq as text — no parser, so the side under test is the
 * bottleneck. UDP, TCP and TLS (common/net).
 *
 *   sip_uas [--udp IP:PORT] [--tcp IP:PORT] [--tls IP:PORT --cert F --key F]
 *           [--status N] [--expect N [--latency]]
 * Prints "ready" when listening and "answered N" on SIGTERM/SIGINT.
 * --expect N: after every N MESSAGE requests, prints "received messages=N elapsed_us=T
 * rate=R" (T from the first to the last of them) and starts counting again. --latency also
 * reads the send time a generator on this machine put at the start of each body as
 * "t=<CLOCK_MONOTONIC ns>" (s2s_load --stamp) and adds "latency n=.. p50_us=.. p99_us=..
 * p999_us=.. max_us=..": the time from that stamp to the read that brought the request. */
#include "buf.h"
#include "err.h"
#include "log.h"
#include "net.h"
#include "sip_frame.h"
#include "tls.h"

#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <uv.h>

static uv_loop_t *loop;
static int status = 200;
static unsigned long answered;
static struct tls_ctx *tls_server;
static uv_udp_t udp;
static bool have_udp;
static struct net_listener *listeners[2];
static uv_signal_t sig_term, sig_int;
static const struct sip_frame_limits lim = {.max_header = 16384, .max_body = 65536};

/* --- counting and latency (--expect, --latency) ------------------------------------ */

static unsigned long expect;
static bool latency;
static unsigned long received;
static uint64_t first_ns, last_ns;
static int64_t *lat; /* ns per stamped MESSAGE of the current round */
static size_t nlat, caplat;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* Nearest rank: the smallest sample with at least q of all samples at or below it. */
static double pct_us(double q)
{
	size_t k = (size_t)(q * (double)nlat + 0.999999);
	if (k == 0)
		k = 1;
	return (double)lat[k - 1] / 1e3;
}

static void report(void)
{
	double us = (double)(last_ns - first_ns) / 1e3;
	printf("received messages=%lu elapsed_us=%.0f rate=%.0f\n", received, us,
	       us > 0 ? (double)(received - 1) * 1e6 / us : 0.0);
	if (latency) {
		if (nlat) {
			qsort(lat, nlat, sizeof *lat, cmp_i64);
			printf("latency n=%zu p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f\n",
			       nlat, pct_us(0.50), pct_us(0.99), pct_us(0.999),
			       (double)lat[nlat - 1] / 1e3);
		} else {
			printf("latency n=0\n");
		}
	}
	fflush(stdout);
	received = 0;
	nlat = 0;
}

/* Counts one request (p[0..n), headers and body) read at now (ns). */
static void note_request(const uint8_t *p, size_t n, uint64_t now)
{
	if (!expect || n < 8 || memcmp(p, "MESSAGE ", 8) != 0)
		return;
	if (received++ == 0)
		first_ns = now;
	last_ns = now;
	if (latency) {
		const uint8_t *b = memmem(p, n, "\r\n\r\n", 4);
		if (b && (size_t)(p + n - b) > 6 && b[4] == 't' && b[5] == '=') {
			uint64_t t = 0;
			for (b += 6; b < p + n && *b >= '0' && *b <= '9'; b++)
				t = t * 10 + (uint64_t)(*b - '0');
			if (nlat == caplat) {
				caplat = caplat ? caplat * 2 : 65536;
				lat = realloc(lat, caplat * sizeof *lat);
				if (!lat)
					abort();
			}
			lat[nlat++] = (int64_t)(now - t);
		}
	}
	if (received == expect)
		report();
}

/* Builds the response to the request in p[0..n) into out. Returns its length or 0. */
static size_t respond(const uint8_t *p, size_t n, char *out, size_t cap)
{
	const char *s = (const char *)p, *end = s + n, *line, *nl;
	size_t o;
	if (n < 4 || memcmp(s, "SIP/", 4) == 0 || memcmp(s, "ACK ", 4) == 0)
		return 0;
	o = (size_t)snprintf(out, cap, "SIP/2.0 %d %s\r\n", status,
			     status == 200   ? "OK"
			     : status == 202 ? "Accepted"
					     : "Answer");
	line = memchr(s, '\n', n);
	if (!line)
		return 0;
	line++;
	while (line < end && *line != '\r' && *line != '\n') {
		nl = memchr(line, '\n', (size_t)(end - line));
		if (!nl)
			break;
		size_t len = (size_t)(nl + 1 - line);
		const char *colon = memchr(line, ':', len);
		size_t nlen = colon ? (size_t)(colon - line) : 0;
		while (nlen && (line[nlen - 1] == ' ' || line[nlen - 1] == '\t'))
			nlen--;
#define IS(name, c)                                                                                \
	((nlen == sizeof(name) - 1 && strncasecmp(line, name, nlen) == 0) ||                       \
	 (nlen == 1 && (line[0] | 0x20) == c))
		bool to = IS("To", 't');
		if (IS("Via", 'v') || IS("From", 'f') || to || IS("Call-ID", 'i') ||
		    (nlen == 4 && strncasecmp(line, "CSeq", 4) == 0)) {
			if (o + len + 16 >= cap)
				return 0;
			memcpy(out + o, line, len);
			o += len;
			if (to && !memmem(line, len, "tag=", 4)) {
				o -= 2; /* before CRLF */
				memcpy(out + o, ";tag=uas1\r\n", 11);
				o += 11;
			}
		}
#undef IS
		line = nl + 1;
	}
	if (o + 24 >= cap)
		return 0;
	memcpy(out + o, "Content-Length: 0\r\n\r\n", 21);
	return o + 21;
}

/* --- streams ----------------------------------------------------------------------- */

struct conn {
	struct buf in;
	struct sip_frame_state fs;
};

static size_t process(struct net_conn *c, struct conn *k, const uint8_t *p, size_t n)
{
	size_t off = 0;
	char out[8192];
	struct sip_frame f;
	uint64_t now = expect ? now_ns() : 0;
	while (off < n) {
		int r = sip_frame_scan(p + off, n - off, &lim, &k->fs, 0, &f);
		if (r == PE_NEEDMORE)
			break;
		if (r < 0) {
			net_conn_abort(c, r);
			return n;
		}
		sip_frame_reset(&k->fs);
		if (f.kind == SIP_FRAME_PING)
			net_conn_write(c, "\r\n", 2);
		if (f.kind == SIP_FRAME_MESSAGE) {
			note_request(p + off, f.len, now);
			size_t rl = respond(p + off, f.len, out, sizeof out);
			if (rl) {
				net_conn_write(c, out, rl);
				answered++;
			}
		}
		off += (size_t)r;
	}
	return off;
}

static void on_data(struct net_conn *c, const uint8_t *p, size_t n)
{
	struct conn *k = net_conn_arg(c);
	if (buf_len(&k->in) == 0) {
		size_t used = process(c, k, p, n);
		if (used < n)
			buf_append(&k->in, p + used, n - used);
		return;
	}
	buf_append(&k->in, p, n);
	size_t used = process(c, k, buf_head(&k->in), buf_len(&k->in));
	buf_consume(&k->in, used);
}

static void on_close(struct net_conn *c, int reason)
{
	struct conn *k = net_conn_arg(c);
	(void)reason;
	buf_deinit(&k->in);
	free(k);
}

static const struct net_conn_cbs cbs = {.on_data = on_data, .on_close = on_close};

static void on_accept(void *arg, struct net_conn *c)
{
	struct conn *k = calloc(1, sizeof *k);
	buf_init(&k->in, 1 << 20);
	net_conn_set_cbs(c, &cbs, k);
	if (arg)
		net_conn_start_tls(c, tls_server, true, NULL);
}

/* --- UDP --------------------------------------------------------------------------- */

static void udp_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
	static char rb[65536];
	(void)h;
	(void)sz;
	b->base = rb;
	b->len = sizeof rb;
}

static void udp_recv(uv_udp_t *h, ssize_t n, const uv_buf_t *b, const struct sockaddr *addr,
		     unsigned flags)
{
	char out[8192];
	(void)flags;
	if (n <= 0 || !addr)
		return;
	note_request((const uint8_t *)b->base, (size_t)n, expect ? now_ns() : 0);
	size_t rl = respond((const uint8_t *)b->base, (size_t)n, out, sizeof out);
	if (!rl)
		return;
	uv_buf_t ob = uv_buf_init(out, (unsigned)rl);
	if (uv_udp_try_send(h, &ob, 1, addr) >= 0)
		answered++;
}

/* --- main -------------------------------------------------------------------------- */

static int split(const char *s, char *ip, size_t cap, int *port)
{
	const char *c = strrchr(s, ':');
	if (!c || (size_t)(c - s) >= cap)
		return -1;
	memcpy(ip, s, (size_t)(c - s));
	ip[c - s] = '\0';
	*port = atoi(c + 1);
	return 0;
}

static void on_signal(uv_signal_t *s, int signum)
{
	(void)s;
	(void)signum;
	printf("answered %lu\n", answered);
	fflush(stdout);
	if (have_udp)
		uv_close((uv_handle_t *)&udp, NULL);
	for (int i = 0; i < 2; i++)
		if (listeners[i])
			net_listener_close(listeners[i]);
	uv_close((uv_handle_t *)&sig_term, NULL);
	uv_close((uv_handle_t *)&sig_int, NULL);
	uv_stop(loop);
}

int main(int argc, char **argv)
{
	const char *udp_a = NULL, *tcp_a = NULL, *tls_a = NULL, *certf = NULL, *keyf = NULL;
	char ip[64], err[256];
	int port;
	for (int i = 1; i < argc; i += 2) {
		if (strcmp(argv[i], "--latency") == 0) {
			latency = true;
			i--;
			continue;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "option %s needs a value\n", argv[i]);
			return 2;
		}
		if (strcmp(argv[i], "--udp") == 0)
			udp_a = argv[i + 1];
		else if (strcmp(argv[i], "--tcp") == 0)
			tcp_a = argv[i + 1];
		else if (strcmp(argv[i], "--tls") == 0)
			tls_a = argv[i + 1];
		else if (strcmp(argv[i], "--cert") == 0)
			certf = argv[i + 1];
		else if (strcmp(argv[i], "--key") == 0)
			keyf = argv[i + 1];
		else if (strcmp(argv[i], "--status") == 0)
			status = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--expect") == 0)
			expect = strtoul(argv[i + 1], NULL, 10);
		else {
			fprintf(stderr, "unknown option %s\n", argv[i]);
			return 2;
		}
	}
	log_init("sip_uas", LL_WARN);
	loop = uv_default_loop();
	if (udp_a) {
		struct sockaddr_in a;
		if (split(udp_a, ip, sizeof ip, &port) || uv_ip4_addr(ip, port, &a)) {
			fprintf(stderr, "bad --udp\n");
			return 2;
		}
		uv_udp_init(loop, &udp);
		if (uv_udp_bind(&udp, (struct sockaddr *)&a, UV_UDP_REUSEADDR)) {
			fprintf(stderr, "cannot bind udp %s\n", udp_a);
			return 1;
		}
		int sz = 8 << 20;
		uv_recv_buffer_size((uv_handle_t *)&udp, &sz);
		uv_udp_recv_start(&udp, udp_alloc, udp_recv);
		have_udp = true;
	}
	if (tcp_a) {
		if (split(tcp_a, ip, sizeof ip, &port) ||
		    net_listen(loop, ip, (uint16_t)port, 512, on_accept, NULL, &listeners[0])) {
			fprintf(stderr, "cannot listen tcp %s\n", tcp_a);
			return 1;
		}
	}
	if (tls_a) {
		struct tls_ctx_cfg tc = {.cert_file = certf, .key_file = keyf};
		tls_server = tls_ctx_new(true, &tc, err, sizeof err);
		if (!tls_server) {
			fprintf(stderr, "tls: %s\n", err);
			return 1;
		}
		if (split(tls_a, ip, sizeof ip, &port) ||
		    net_listen(loop, ip, (uint16_t)port, 512, on_accept, (void *)1,
			       &listeners[1])) {
			fprintf(stderr, "cannot listen tls %s\n", tls_a);
			return 1;
		}
	}
	uv_signal_init(loop, &sig_term);
	uv_signal_start(&sig_term, on_signal, SIGTERM);
	uv_signal_init(loop, &sig_int);
	uv_signal_start(&sig_int, on_signal, SIGINT);
	printf("ready\n");
	fflush(stdout);
	uv_run(loop, UV_RUN_DEFAULT);
	tls_ctx_free(tls_server);
	free(lat);
	return 0;
}
