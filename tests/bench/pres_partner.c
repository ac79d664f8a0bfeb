/* pres_partner: the partner server partner.test for the presence benchmarks (run.py, section
 * presence). Two roles in one process, both on blocking sockets with OpenSSL:
 *  - sender: one inbound S2S stream to the edge (STARTTLS, client certificate, SASL
 *    EXTERNAL, as s2s_load) carrying presence stanzas from u<k>@partner.test to
 *    bob<k>@corp.test;
 *  - receiver: the server the edge's outbound S2S stream reaches (the partner's fixed
 *    `proxy` address in the policy): STARTTLS with partner.test's certificate, SASL EXTERNAL
 *    accepted as offered, no XEP-0198; it counts the presence stanzas that arrive, by type.
 *
 *   pres_partner --listen IP:PORT --certs DIR [--host IP --port P] [--src IP]
 *
 * Commands on stdin, one a line; each answer is one line on stdout:
 *   send TYPE N [M]   M (default N) stanzas round-robin over k in 0..N-1; TYPE: subscribe,
 *                     subscribed, unsubscribe, unsubscribed, probe, avail (show and status
 *                     change with every stanza), unavail. Answers "sent type=.. n=..
 *                     elapsed_us=.. rate=.. start_ns=.." (CLOCK_MONOTONIC before the first
 *                     write). The stream is opened on the first send.
 *   wait CAT K IDLE_MS  once CAT (all, avail, subscribed, subscribe, unsubscribed,
 *                     unavailable, probe, other) has counted K since the last reset, or has
 *                     not moved for IDLE_MS: "got CAT n=.. first_to_last_us=.. rate=..
 *                     complete=0|1".
 *   reset | stats | quit
 * Prints "ready" once listening. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PARTNER "partner.test"
#define SERVED "corp.test"
#define PARTNER_B64 "cGFydG5lci50ZXN0" /* base64("partner.test") */
#define RX_MAX 65536

static const char *certs, *listen_a, *edge_host, *src_ip;
static int edge_port;
static SSL_CTX *cctx, *sctx;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, const char *detail)
{
	char e[256] = "";
	unsigned long code = ERR_get_error();
	if (code)
		ERR_error_string_n(code, e, sizeof e);
	fprintf(stderr, "pres_partner: %s%s%s%s%s\n", what, detail ? ": " : "",
		detail ? detail : "", *e ? " / " : "", e);
	exit(1);
}

/* ---- counting (receiver) ---- */

enum {
	K_ALL,
	K_AVAIL,
	K_SUBSCRIBED,
	K_SUBSCRIBE,
	K_UNSUBSCRIBED,
	K_UNAVAIL,
	K_PROBE,
	K_OTHER,
	K_MAX
};
static const char *const knames[K_MAX] = {"all",	  "avail",	 "subscribed", "subscribe",
					  "unsubscribed", "unavailable", "probe",      "other"};
static pthread_mutex_t cnt_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	uint64_t n, first, last;
} cnt[K_MAX];

static void count_n(int k, uint64_t n, uint64_t t)
{
	if (!n)
		return;
	if (cnt[k].n == 0)
		cnt[k].first = t;
	cnt[k].n += n;
	cnt[k].last = t;
}

static bool isalnum_c(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Classifies the start tag p[0..n) of one <presence>. */
static int classify(const char *p, size_t n)
{
	const char *t = memmem(p, n, " type=", 6);
	if (!t)
		return K_AVAIL;
	t += 7;
	size_t left = (size_t)(p + n - t);
#define T(s)                                                                                       \
	(left > sizeof(s) - 1 && memcmp(t, s, sizeof(s) - 1) == 0 && !isalnum_c(t[sizeof(s) - 1]))
	if (T("subscribed"))
		return K_SUBSCRIBED;
	if (T("subscribe"))
		return K_SUBSCRIBE;
	if (T("unsubscribed"))
		return K_UNSUBSCRIBED;
	if (T("unavailable"))
		return K_UNAVAIL;
	if (T("probe"))
		return K_PROBE;
#undef T
	return K_OTHER;
}

/* Counts the presence start tags in b[0..n); returns how many bytes are consumed (a start
 * tag cut at the end of the buffer is kept for the next read). */
static size_t count_buf(const char *b, size_t n)
{
	uint64_t per[K_MAX] = {0};
	size_t off = 0;
	for (;;) {
		const char *s = memmem(b + off, n - off, "<presence", 9);
		if (!s) {
			off = n > 9 ? n - 9 : 0; /* a "<presence" may be cut here */
			break;
		}
		const char *e = memchr(s, '>', (size_t)(b + n - s));
		if (!e) {
			off = (size_t)(s - b);
			break;
		}
		per[classify(s, (size_t)(e - s))]++;
		per[K_ALL]++;
		off = (size_t)(e + 1 - b);
	}
	if (per[K_ALL]) {
		uint64_t t = now_ns();
		pthread_mutex_lock(&cnt_lock);
		for (int k = 0; k < K_MAX; k++)
			count_n(k, per[k], t);
		pthread_mutex_unlock(&cnt_lock);
	}
	return off;
}

/* ---- plain / TLS I/O on one blocking socket ---- */

struct io {
	int fd;
	SSL *ssl;
	char b[RX_MAX + 1];
	size_t n;
};

static void io_write(struct io *x, const char *p, size_t n)
{
	while (n) {
		ssize_t w;
		if (x->ssl) {
			int r = SSL_write(x->ssl, p, (int)n);
			if (r <= 0)
				die("SSL_write", NULL);
			w = r;
		} else {
			w = send(x->fd, p, n, MSG_NOSIGNAL);
			if (w < 0)
				die("send", strerror(errno));
		}
		p += w;
		n -= (size_t)w;
	}
}

static void io_str(struct io *x, const char *s)
{
	io_write(x, s, strlen(s));
}

static ssize_t io_read(struct io *x, char *p, size_t cap)
{
	if (x->ssl) {
		int r = SSL_read(x->ssl, p, (int)cap);
		return r > 0 ? r : -1;
	}
	ssize_t r = recv(x->fd, p, cap, 0);
	return r > 0 ? r : -1;
}

/* Reads until `a` and then `b` after it; keeps what follows the end of b (or a). Returns
 * false if the peer closed first. */
static bool io_until(struct io *x, const char *a, const char *b)
{
	for (;;) {
		x->b[x->n] = 0;
		if (strstr(x->b, "<stream:error"))
			die("stream error", x->b);
		char *p = strstr(x->b, a);
		char *q = p ? (b ? strstr(p, b) : p) : NULL;
		if (q) {
			q += strlen(b ? b : a);
			size_t rest = (size_t)(x->b + x->n - q);
			memmove(x->b, q, rest);
			x->n = rest;
			return true;
		}
		if (x->n == RX_MAX)
			die("answer too long", x->b);
		ssize_t r = io_read(x, x->b + x->n, RX_MAX - x->n);
		if (r <= 0)
			return false;
		x->n += (size_t)r;
	}
}

/* ---- receiver: the edge's outbound stream ---- */

static const char rx_header[] = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
				"xmlns:stream='http://etherx.jabber.org/streams' from='" PARTNER
				"' to='" SERVED "' id='%s' version='1.0'>";

static void *serve(void *arg)
{
	struct io *x = arg;
	char h[512];
	if (!io_until(x, "<stream:stream", ">"))
		goto out;
	snprintf(h, sizeof h, rx_header, "r1");
	io_str(x, h);
	io_str(x, "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>"
		  "</starttls></stream:features>");
	if (!io_until(x, "<starttls", ">"))
		goto out;
	io_str(x, "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
	x->ssl = SSL_new(sctx);
	SSL_set_fd(x->ssl, x->fd);
	if (SSL_accept(x->ssl) != 1) {
		fprintf(stderr, "pres_partner: TLS accept failed\n");
		goto out;
	}
	x->n = 0;
	if (!io_until(x, "<stream:stream", ">"))
		goto out;
	snprintf(h, sizeof h, rx_header, "r2");
	io_str(x, h);
	io_str(x, "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
		  "<mechanism>EXTERNAL</mechanism></mechanisms></stream:features>");
	if (!io_until(x, "<auth", NULL))
		goto out;
	for (;;) { /* <auth .../> or <auth ...>=</auth> */
		x->b[x->n] = 0;
		char *gt = strchr(x->b, '>');
		if (gt && gt > x->b && gt[-1] == '/') {
			size_t rest = (size_t)(x->b + x->n - (gt + 1));
			memmove(x->b, gt + 1, rest);
			x->n = rest;
			break;
		}
		if (gt) {
			if (!io_until(x, "</auth>", NULL))
				goto out;
			break;
		}
		ssize_t r = io_read(x, x->b + x->n, RX_MAX - x->n);
		if (r <= 0)
			goto out;
		x->n += (size_t)r;
	}
	io_str(x, "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
	if (!io_until(x, "<stream:stream", ">"))
		goto out;
	snprintf(h, sizeof h, rx_header, "r3");
	io_str(x, h);
	io_str(x, "<stream:features/>");
	fprintf(stderr, "pres_partner: outbound stream from the edge is up\n");
	for (;;) {
		size_t used = count_buf(x->b, x->n);
		memmove(x->b, x->b + used, x->n - used);
		x->n -= used;
		if (x->n == RX_MAX)
			x->n = 0; /* one start tag longer than the buffer: not ours */
		ssize_t r = io_read(x, x->b + x->n, RX_MAX - x->n);
		if (r <= 0)
			break;
		x->n += (size_t)r;
		if (memmem(x->b, x->n, "</stream:stream>", 16)) {
			count_buf(x->b, x->n);
			io_str(x, "</stream:stream>");
			break;
		}
	}
out:
	if (x->ssl)
		SSL_free(x->ssl);
	close(x->fd);
	free(x);
	return NULL;
}

static int lfd;

static void *accept_thread(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0) {
			if (errno == EINTR)
				continue;
			return NULL;
		}
		struct io *x = calloc(1, sizeof *x);
		if (!x)
			abort();
		x->fd = fd;
		pthread_t t;
		if (pthread_create(&t, NULL, serve, x))
			abort();
		pthread_detach(t);
	}
}

/* ---- sender: our inbound stream to the edge ---- */

static const char tx_header[] =
    "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
    "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "
    "to='" SERVED "' from='" PARTNER "' version='1.0'>";

static struct io *tx;

static void tx_open(void)
{
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)edge_port)};
	if (!edge_host || inet_pton(AF_INET, edge_host, &to.sin_addr) != 1)
		die("no or bad --host", edge_host);
	tx = calloc(1, sizeof *tx);
	if (!tx)
		abort();
	tx->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(tx->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (src_ip) {
		struct sockaddr_in from = {.sin_family = AF_INET};
		inet_pton(AF_INET, src_ip, &from.sin_addr);
		if (bind(tx->fd, (struct sockaddr *)&from, sizeof from) < 0)
			die("bind", strerror(errno));
	}
	if (connect(tx->fd, (struct sockaddr *)&to, sizeof to) < 0)
		die("connect", strerror(errno));
	io_str(tx, tx_header);
	if (!io_until(tx, "</stream:features>", NULL))
		die("edge closed", NULL);
	io_str(tx, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
	if (!io_until(tx, "<proceed", ">"))
		die("edge closed", NULL);
	tx->ssl = SSL_new(cctx);
	if (!tx->ssl || !SSL_set_fd(tx->ssl, tx->fd) || !SSL_set1_host(tx->ssl, SERVED) ||
	    !SSL_set_tlsext_host_name(tx->ssl, SERVED) || SSL_connect(tx->ssl) != 1)
		die("TLS handshake with the edge", NULL);
	tx->n = 0;
	io_str(tx, tx_header);
	if (!io_until(tx, "</stream:features>", NULL))
		die("edge closed", NULL);
	io_str(tx,
	       "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>" PARTNER_B64
	       "</auth>");
	if (!io_until(tx, "<success", ">"))
		die("edge refused SASL EXTERNAL", tx->b);
	io_str(tx, tx_header);
	if (!io_until(tx, "</stream:features>", NULL))
		die("edge closed", NULL);
}

/* Reads off whatever the edge sent on our stream (nothing is expected) without waiting. */
static void tx_drain(void)
{
	char b[4096];
	struct pollfd p = {.fd = tx->fd, .events = POLLIN};
	while (SSL_pending(tx->ssl) > 0 || poll(&p, 1, 0) > 0) {
		int r = SSL_read(tx->ssl, b, sizeof b - 1);
		if (r <= 0)
			die("the edge closed our stream", NULL);
		b[r] = 0;
		if (strstr(b, "<stream:error"))
			die("stream error from the edge", b);
		p.revents = 0;
	}
}

static const char *const shows[] = {"away", "dnd", "xa", "chat"};

static int stanza(char *o, size_t cap, const char *type, uint64_t k, uint64_t i)
{
	if (strcmp(type, "avail") == 0)
		return snprintf(o, cap,
				"<presence from='u%llu@" PARTNER "/r' to='bob%llu@" SERVED "'>"
				"<show>%s</show><status>note %llu</status><priority>1</priority>"
				"</presence>",
				(unsigned long long)k, (unsigned long long)k, shows[i % 4],
				(unsigned long long)i);
	if (strcmp(type, "unavail") == 0)
		return snprintf(o, cap,
				"<presence from='u%llu@" PARTNER "/r' to='bob%llu@" SERVED
				"' type='unavailable'/>",
				(unsigned long long)k, (unsigned long long)k);
	return snprintf(o, cap,
			"<presence from='u%llu@" PARTNER "' to='bob%llu@" SERVED "' type='%s'/>",
			(unsigned long long)k, (unsigned long long)k, type);
}

static void do_send(const char *type, uint64_t n, uint64_t m)
{
	static char batch[64 * 1024];
	if (!tx)
		tx_open();
	uint64_t t0 = now_ns();
	size_t o = 0;
	for (uint64_t i = 0; i < m; i++) {
		if (o + 512 > sizeof batch) {
			io_write(tx, batch, o);
			tx_drain();
			o = 0;
		}
		o += (size_t)stanza(batch + o, sizeof batch - o, type, i % n, i);
	}
	if (o)
		io_write(tx, batch, o);
	double us = (double)(now_ns() - t0) / 1e3;
	printf("sent type=%s n=%llu elapsed_us=%.0f rate=%.0f start_ns=%llu\n", type,
	       (unsigned long long)m, us, us > 0 ? (double)m * 1e6 / us : 0.0,
	       (unsigned long long)t0);
	fflush(stdout);
}

static void do_wait(const char *cat, uint64_t target, uint64_t idle_ms)
{
	int k = -1;
	for (int i = 0; i < K_MAX; i++)
		if (strcmp(knames[i], cat) == 0)
			k = i;
	if (k < 0) {
		printf("error unknown category %s\n", cat);
		fflush(stdout);
		return;
	}
	uint64_t seen = UINT64_MAX, since = now_ns();
	for (;;) {
		pthread_mutex_lock(&cnt_lock);
		uint64_t n = cnt[k].n, first = cnt[k].first, last = cnt[k].last;
		pthread_mutex_unlock(&cnt_lock);
		uint64_t t = now_ns();
		bool done = n >= target;
		if (n != seen) {
			seen = n;
			since = t;
		}
		if (done || t - since >= idle_ms * 1000000u) {
			double us = (double)(last - first) / 1e3;
			printf("got %s n=%llu first_to_last_us=%.0f rate=%.0f complete=%d\n", cat,
			       (unsigned long long)n, us, us > 0 ? (double)(n - 1) * 1e6 / us : 0.0,
			       done);
			fflush(stdout);
			return;
		}
		if (tx)
			tx_drain();
		usleep(5000);
	}
}

/* ---- main ---- */

static SSL_CTX *make_ctx(bool server)
{
	char ca[1024], cert[1024], key[1024];
	snprintf(ca, sizeof ca, "%s/ca.pem", certs);
	snprintf(cert, sizeof cert, "%s/" PARTNER ".pem", certs);
	snprintf(key, sizeof key, "%s/" PARTNER ".key", certs);
	SSL_CTX *c = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (!c || !SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION) ||
	    SSL_CTX_load_verify_locations(c, ca, NULL) != 1 ||
	    SSL_CTX_use_certificate_chain_file(c, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) != 1)
		die("TLS context", certs);
	if (!server)
		SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
	return c;
}

int main(int argc, char **argv)
{
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--listen"))
			listen_a = argv[i + 1];
		else if (!strcmp(argv[i], "--certs"))
			certs = argv[i + 1];
		else if (!strcmp(argv[i], "--host"))
			edge_host = argv[i + 1];
		else if (!strcmp(argv[i], "--port"))
			edge_port = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--src"))
			src_ip = argv[i + 1];
		else {
			fprintf(stderr, "unknown option %s\n", argv[i]);
			return 2;
		}
	}
	if (!listen_a || !certs) {
		fprintf(stderr,
			"usage: pres_partner --listen IP:PORT --certs DIR [--host IP --port "
			"P] [--src IP]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	cctx = make_ctx(false);
	sctx = make_ctx(true);

	char ip[64];
	const char *c = strrchr(listen_a, ':');
	if (!c || (size_t)(c - listen_a) >= sizeof ip)
		die("bad --listen", listen_a);
	memcpy(ip, listen_a, (size_t)(c - listen_a));
	ip[c - listen_a] = 0;
	struct sockaddr_in la = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(c + 1))};
	if (inet_pton(AF_INET, ip, &la.sin_addr) != 1)
		die("bad --listen", listen_a);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(lfd, (struct sockaddr *)&la, sizeof la) < 0 || listen(lfd, 64) < 0)
		die("listen", strerror(errno));
	pthread_t at;
	if (pthread_create(&at, NULL, accept_thread, NULL))
		abort();
	printf("ready\n");
	fflush(stdout);

	char line[256], type[32], cat[32];
	unsigned long long a, b;
	while (fgets(line, sizeof line, stdin)) {
		line[strcspn(line, "\n")] = 0;
		int k = sscanf(line, "send %31s %llu %llu", type, &a, &b);
		if (k >= 2 && a > 0) {
			do_send(type, a, k == 3 ? b : a);
		} else if (sscanf(line, "wait %31s %llu %llu", cat, &a, &b) == 3) {
			do_wait(cat, a, b);
		} else if (!strcmp(line, "reset")) {
			pthread_mutex_lock(&cnt_lock);
			memset(cnt, 0, sizeof cnt);
			pthread_mutex_unlock(&cnt_lock);
			printf("reset\n");
			fflush(stdout);
		} else if (!strcmp(line, "stats")) {
			pthread_mutex_lock(&cnt_lock);
			printf("stats");
			for (int i = 0; i < K_MAX; i++)
				printf(" %s=%llu", knames[i], (unsigned long long)cnt[i].n);
			printf("\n");
			pthread_mutex_unlock(&cnt_lock);
			fflush(stdout);
		} else if (!strcmp(line, "quit")) {
			break;
		} else {
			printf("error unknown command\n");
			fflush(stdout);
		}
	}
	if (tx) {
		io_str(tx, "</stream:stream>");
		shutdown(tx->fd, SHUT_WR);
	}
	return 0;
}
