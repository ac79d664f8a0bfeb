/* sip_uas: a minimal SIP UAS for load: answers every request with a fixed status by
 * copying Via/From/To/Call-ID/CSeq as text — no parser, so the side under test is the
 * bottleneck. UDP, TCP and TLS (common/net).
 *
 *   sip_uas [--udp IP:PORT] [--tcp IP:PORT] [--tls IP:PORT --cert F --key F]
 *           [--status N]
 * Prints "ready" when listening and "answered N" on SIGTERM/SIGINT. */
#include "buf.h"
#include "err.h"
#include "log.h"
#include "net.h"
#include "sip_frame.h"
#include "tls.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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
	for (int i = 1; i + 1 < argc; i += 2) {
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
	return 0;
}
