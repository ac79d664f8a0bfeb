/* Load generator for the edge's inbound S2S: acts as the authenticated partner partner.test
 * toward corp.test (stream header, STARTTLS, TLS with a client certificate, SASL EXTERNAL,
 * header again), then either pushes message stanzas as fast as it can (or at a given rate)
 * or holds the streams idle for memory figures. Prints figures only; run.py drives it.
 *
 *   s2s_load --host IP --port P --certs DIR [--conns N] [--stanzas M] [--size BYTES]
 *            [--rate R] [--idle] [--threads T] [--setup-threads S] [--sm] [--no-xmlns]
 *            [--src-base IP --src-count K] [--batch BYTES] [--recipients N] [--stamp]
 *
 * Blocking sockets and OpenSSL in threads: S threads establish the streams (the handshake is
 * latency-bound, so several run at once), then T threads share the streams for sending,
 * each writing large batches of whole stanzas to one stream after another. After sending,
 * every stream is closed with </stream:stream> and the edge's own close is awaited, so the
 * run ends only when the edge has read everything. --idle holds the authenticated streams
 * until SIGTERM/SIGINT. --src-base binds the sockets round-robin to K consecutive source
 * addresses (IP_BIND_ADDRESS_NO_PORT), for more streams than one address has ports.
 * --recipients N spreads each stream's stanzas round-robin over bob<k>@corp.test, k in
 * 0..N-1 written with a fixed number of digits (bob000..bob999 for 1000), instead of one
 * recipient per stream. --stamp starts every body with "t=<20 digits> ": CLOCK_MONOTONIC in
 * nanoseconds just before the write that carries the stanza, for a receiver on the same
 * machine to measure latency (sip_uas --latency). */
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PARTNER "partner.test"
#define SERVED "corp.test"
#define PARTNER_B64 "cGFydG5lci50ZXN0" /* base64("partner.test"): the SASL authzid */
#define IO_TIMEOUT_S 60
#define RX_MAX 8192

static const char header[] =
    "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
    "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "
    "to='" SERVED "' from='" PARTNER "' version='1.0'>";

struct opts {
	const char *host;
	int port;
	const char *certs;
	int conns;
	uint64_t stanzas;
	int size;
	double rate; /* stanzas/s over all streams; 0 = as fast as possible */
	bool idle;
	bool sm;
	bool no_xmlns; /* stanzas inherit jabber:server from the stream instead of declaring it */
	int threads;
	int setup_threads;
	const char *src_base;
	int src_count;
	size_t batch;
	int recipients; /* 0: one recipient per stream */
	bool stamp;
};

struct stream {
	int fd;
	SSL *ssl;
	uint64_t quota; /* stanzas this stream sends */
	uint64_t sent;
	uint64_t next_id; /* ids count per stream: from= tells the streams apart */
	char *tx;	  /* a batch of whole stanzas; ids patched before each write */
	size_t tx_len;
	size_t per_batch;
	size_t to_off;	 /* offset of the recipient digits in a stanza (with --recipients) */
	size_t body_off; /* offset of the body (with --stamp) */
};

static struct opts o = {
    .port = 5269,
    .conns = 1,
    .size = 300,
    .setup_threads = 16,
    .batch = 64 * 1024,
};
static SSL_CTX *ctx;
static struct stream *streams;
static atomic_int next_setup;
static struct in_addr src_base;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(int idx, const char *what, const char *detail)
{
	char e[256] = "";
	unsigned long code = ERR_get_error();
	if (code)
		ERR_error_string_n(code, e, sizeof e);
	fprintf(stderr, "s2s_load: stream %d: %s%s%s%s%s\n", idx, what, detail ? ": " : "",
		detail ? detail : "", *e ? " / " : "", e);
	exit(1);
}

/* ---- one stream's handshake ---- */

struct rx {
	char b[RX_MAX + 1];
	size_t n;
};

static void tx_all(int idx, struct stream *s, const char *p, size_t n)
{
	while (n) {
		ssize_t w;
		if (s->ssl) {
			int r = SSL_write(s->ssl, p, (int)n);
			if (r <= 0)
				die(idx, "SSL_write", NULL);
			w = r;
		} else {
			w = send(s->fd, p, n, MSG_NOSIGNAL);
			if (w < 0)
				die(idx, "send", strerror(errno));
		}
		p += w;
		n -= (size_t)w;
	}
}

static void tx_str(int idx, struct stream *s, const char *p)
{
	tx_all(idx, s, p, strlen(p));
}

/* Reads until `a` and then `b` after it appear; a stream error ends the program with the
 * edge's words. What follows the match is discarded: the edge sends nothing unasked. */
static void rx_until(int idx, struct stream *s, struct rx *x, const char *a, const char *b)
{
	for (;;) {
		x->b[x->n] = 0;
		if (strstr(x->b, "<stream:error"))
			die(idx, "stream error from the edge", x->b);
		const char *p = strstr(x->b, a);
		if (p && (!b || strstr(p, b))) {
			x->n = 0;
			return;
		}
		if (x->n == RX_MAX)
			die(idx, "answer too long", x->b);
		ssize_t r;
		if (s->ssl) {
			int k = SSL_read(s->ssl, x->b + x->n, (int)(RX_MAX - x->n));
			r = k > 0 ? k : -1;
		} else {
			r = recv(s->fd, x->b + x->n, RX_MAX - x->n, 0);
		}
		if (r <= 0) {
			x->b[x->n] = 0;
			die(idx, "closed or timed out waiting for the edge", x->b);
		}
		x->n += (size_t)r;
	}
}

static void stream_open(int idx, struct stream *s)
{
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o.port)};
	if (inet_pton(AF_INET, o.host, &to.sin_addr) != 1)
		die(idx, "bad --host", o.host);
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->fd < 0)
		die(idx, "socket", strerror(errno));
	int one = 1;
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
	setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(s->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (o.src_base) {
		struct sockaddr_in from = {.sin_family = AF_INET};
		from.sin_addr.s_addr =
		    htonl(ntohl(src_base.s_addr) + (uint32_t)(idx % o.src_count));
		setsockopt(s->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
		if (bind(s->fd, (struct sockaddr *)&from, sizeof from) < 0)
			die(idx, "bind", strerror(errno));
	}
	if (connect(s->fd, (struct sockaddr *)&to, sizeof to) < 0)
		die(idx, "connect", strerror(errno));

	struct rx x = {.n = 0};
	tx_str(idx, s, header);
	rx_until(idx, s, &x, "</stream:features>", NULL);
	tx_str(idx, s, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
	rx_until(idx, s, &x, "<proceed", ">");

	s->ssl = SSL_new(ctx);
	if (!s->ssl || !SSL_set_fd(s->ssl, s->fd) || !SSL_set1_host(s->ssl, SERVED) ||
	    !SSL_set_tlsext_host_name(s->ssl, SERVED))
		die(idx, "SSL_new", NULL);
	if (SSL_connect(s->ssl) != 1)
		die(idx, "TLS handshake", NULL);

	tx_str(idx, s, header);
	rx_until(idx, s, &x, "</stream:features>", NULL);
	tx_str(idx, s,
	       "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>" PARTNER_B64
	       "</auth>");
	rx_until(idx, s, &x, "<success", ">");
	tx_str(idx, s, header);
	rx_until(idx, s, &x, "</stream:features>", NULL);
	if (o.sm) {
		tx_str(idx, s, "<enable xmlns='urn:xmpp:sm:3'/>");
		rx_until(idx, s, &x, "<enabled", ">");
	}
}

static void *setup_thread(void *arg)
{
	(void)arg;
	for (;;) {
		int i = atomic_fetch_add(&next_setup, 1);
		if (i >= o.conns)
			return NULL;
		stream_open(i, &streams[i]);
	}
}

/* ---- sending ---- */

/* Fixed-width fields keep every stanza of a batch exactly o.size bytes; only the 8 hex
 * digits of each id change between batches. */
#define ID_DIGITS 8
#define STAMP_DIGITS 20

static int recipient_digits(void)
{
	int w = 1;
	for (int n = o.recipients - 1; n >= 10; n /= 10)
		w++;
	return w;
}

static void batch_build(int idx, struct stream *s)
{
	static const char post[] = "</body></message>";
	char pre[256];
	int tw = o.recipients ? recipient_digits() : 3;
	int plen = snprintf(pre, sizeof pre,
			    "<message%s from='u%03d@" PARTNER "/r' "
			    "to='bob%0*d@" SERVED "' type='chat' id='%0*x'><body>%s",
			    o.no_xmlns ? "" : " xmlns='jabber:server'", idx % 1000, tw,
			    o.recipients ? 0 : idx % 1000, ID_DIGITS, 0,
			    o.stamp ? "t=00000000000000000000 " : "");
	s->to_off = (size_t)(strstr(pre, " to='bob") - pre) + 8;
	s->body_off = (size_t)(strstr(pre, "<body>") - pre) + 6;
	int pad = o.size - plen - (int)sizeof post + 1;
	if (pad < 1) {
		fprintf(stderr, "s2s_load: --size %d is below the smallest stanza (%d)\n", o.size,
			plen + (int)sizeof post);
		exit(2);
	}
	s->per_batch = o.batch / (size_t)o.size;
	if (s->per_batch == 0)
		s->per_batch = 1;
	s->tx = malloc(s->per_batch * (size_t)o.size);
	if (!s->tx)
		abort();
	static const char words[] = "the quick brown fox jumps over the lazy dog ";
	char *p = s->tx;
	for (size_t k = 0; k < s->per_batch; k++) {
		memcpy(p, pre, (size_t)plen);
		p += plen;
		for (int j = 0; j < pad; j++)
			*p++ = words[j % (int)(sizeof words - 1)];
		memcpy(p, post, sizeof post - 1);
		p += sizeof post - 1;
	}
	s->tx_len = (size_t)(p - s->tx);
}

static void put_dec(char *d, int width, uint64_t v)
{
	for (int j = width - 1; j >= 0; j--, v /= 10)
		d[j] = (char)('0' + v % 10);
}

/* Patches ids, and recipients with --recipients; stream idx starts its round-robin at idx so
 * that several streams spread too. */
static void batch_ids(int idx, struct stream *s, size_t count)
{
	static const char hex[] = "0123456789abcdef";
	const size_t id_off = (size_t)(strstr(s->tx, " id='") - s->tx) + 5;
	const int tw = o.recipients ? recipient_digits() : 0;
	for (size_t k = 0; k < count; k++) {
		char *d = s->tx + k * (size_t)o.size + id_off;
		uint64_t v = s->next_id++;
		if (o.recipients)
			put_dec(s->tx + k * (size_t)o.size + s->to_off, tw,
				((uint64_t)idx + v) % (uint64_t)o.recipients);
		for (int j = ID_DIGITS - 1; j >= 0; j--, v >>= 4)
			d[j] = hex[v & 15];
	}
}

/* --stamp: the send time goes in last, right before the write. */
static void batch_stamp(struct stream *s, size_t count)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	for (size_t k = 0; k < count; k++)
		put_dec(s->tx + k * (size_t)o.size + s->body_off + 2, STAMP_DIGITS, ns);
}

/* XEP-0198: the edge sends <a/> as the gateway acknowledges; read it off so its output
 * never backs up. Only what is already there: the sender must not wait. */
static void drain_acks(int idx, struct stream *s)
{
	char b[4096];
	struct pollfd p = {.fd = s->fd, .events = POLLIN};
	while (SSL_pending(s->ssl) > 0 || poll(&p, 1, 0) > 0) {
		if (SSL_read(s->ssl, b, sizeof b) <= 0)
			die(idx, "reading acknowledgements", NULL);
		p.revents = 0;
	}
}

struct sender {
	int t;
	pthread_t th;
	uint64_t bytes;
};

static void *send_thread(void *arg)
{
	struct sender *me = arg;
	double t0 = now_s();
	double per_s = o.rate > 0 ? o.rate / o.threads : 0;
	uint64_t done = 0;
	for (bool more = true; more;) {
		more = false;
		for (int i = me->t; i < o.conns; i += o.threads) {
			struct stream *s = &streams[i];
			if (s->sent >= s->quota)
				continue;
			size_t k = s->per_batch;
			if (k > s->quota - s->sent)
				k = (size_t)(s->quota - s->sent);
			batch_ids(i, s, k);
			if (o.stamp)
				batch_stamp(s, k);
			tx_all(i, s, s->tx, k * (size_t)o.size);
			s->sent += k;
			done += k;
			me->bytes += k * (size_t)o.size;
			if (o.sm)
				drain_acks(i, s);
			if (s->sent < s->quota)
				more = true;
			if (per_s > 0) {
				double ahead = (double)done / per_s - (now_s() - t0);
				if (ahead > 0)
					usleep((useconds_t)(ahead * 1e6));
			}
		}
	}
	return NULL;
}

/* Closes every stream of this thread and waits for the edge's </stream:stream>: it comes
 * only after the edge parsed everything sent before our close. */
static void *close_thread(void *arg)
{
	struct sender *me = arg;
	char b[4096];
	for (int i = me->t; i < o.conns; i += o.threads) {
		struct stream *s = &streams[i];
		tx_str(i, s, "</stream:stream>");
		for (;;) {
			int r = SSL_read(s->ssl, b, sizeof b - 1);
			if (r <= 0)
				break;
			b[r] = 0;
			if (strstr(b, "</stream:stream>"))
				break;
		}
		SSL_free(s->ssl);
		close(s->fd);
	}
	return NULL;
}

static void run_threads(void *(*fn)(void *), struct sender *ts, int n)
{
	for (int t = 0; t < n; t++) {
		ts[t].t = t;
		if (pthread_create(&ts[t].th, NULL, fn, &ts[t]))
			abort();
	}
	for (int t = 0; t < n; t++)
		pthread_join(ts[t].th, NULL);
}

/* ---- main ---- */

static void usage(void)
{
	fprintf(stderr,
		"usage: s2s_load --host IP --port P --certs DIR [--conns N] [--stanzas M]\n"
		"       [--size BYTES] [--rate R] [--idle] [--threads T] [--setup-threads S]\n"
		"       [--sm] [--no-xmlns] [--src-base IP --src-count K] [--batch BYTES]\n"
		"       [--recipients N] [--stamp]\n");
	exit(2);
}

static void parse(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		bool used = true;
		if (!strcmp(a, "--idle")) {
			o.idle = true;
			used = false;
		} else if (!strcmp(a, "--sm")) {
			o.sm = true;
			used = false;
		} else if (!strcmp(a, "--no-xmlns")) {
			o.no_xmlns = true;
			used = false;
		} else if (!strcmp(a, "--stamp")) {
			o.stamp = true;
			used = false;
		} else if (!v) {
			usage();
		} else if (!strcmp(a, "--host")) {
			o.host = v;
		} else if (!strcmp(a, "--port")) {
			o.port = atoi(v);
		} else if (!strcmp(a, "--certs")) {
			o.certs = v;
		} else if (!strcmp(a, "--conns")) {
			o.conns = atoi(v);
		} else if (!strcmp(a, "--stanzas")) {
			o.stanzas = strtoull(v, NULL, 10);
		} else if (!strcmp(a, "--size")) {
			o.size = atoi(v);
		} else if (!strcmp(a, "--rate")) {
			o.rate = atof(v);
		} else if (!strcmp(a, "--threads")) {
			o.threads = atoi(v);
		} else if (!strcmp(a, "--setup-threads")) {
			o.setup_threads = atoi(v);
		} else if (!strcmp(a, "--src-base")) {
			o.src_base = v;
		} else if (!strcmp(a, "--src-count")) {
			o.src_count = atoi(v);
		} else if (!strcmp(a, "--batch")) {
			o.batch = strtoull(v, NULL, 10);
		} else if (!strcmp(a, "--recipients")) {
			o.recipients = atoi(v);
		} else {
			usage();
		}
		if (used)
			i++;
	}
	if (!o.host || !o.certs || o.port <= 0 || o.conns <= 0 || o.size <= 0 ||
	    o.setup_threads <= 0 || o.batch == 0 || o.recipients < 0)
		usage();
	if (o.src_base) {
		if (inet_pton(AF_INET, o.src_base, &src_base) != 1)
			usage();
		if (o.src_count <= 0)
			o.src_count = 1;
	}
	if (o.threads <= 0)
		o.threads = o.conns < 2 ? o.conns : 2;
	if (o.threads > o.conns)
		o.threads = o.conns;
	if (o.setup_threads > o.conns)
		o.setup_threads = o.conns;
}

static void make_ctx(void)
{
	char ca[1024], cert[1024], key[1024];
	snprintf(ca, sizeof ca, "%s/ca.pem", o.certs);
	snprintf(cert, sizeof cert, "%s/" PARTNER ".pem", o.certs);
	snprintf(key, sizeof key, "%s/" PARTNER ".key", o.certs);
	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1 ||
	    SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
		die(-1, "TLS context", o.certs);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	/* Idle streams keep no 16 KiB buffers here either: the generator's memory is not
	 * measured, but 10 000 streams should not need gigabytes. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
}

static void on_stop(int sig)
{
	_exit(sig == SIGTERM || sig == SIGINT ? 0 : 1);
}

int main(int argc, char **argv)
{
	parse(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_stop);
	signal(SIGINT, on_stop);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	make_ctx();

	streams = calloc((size_t)o.conns, sizeof *streams);
	if (!streams)
		abort();
	double t0 = now_s();
	pthread_t *st = calloc((size_t)o.setup_threads, sizeof *st);
	for (int t = 0; t < o.setup_threads; t++)
		if (pthread_create(&st[t], NULL, setup_thread, NULL))
			abort();
	for (int t = 0; t < o.setup_threads; t++)
		pthread_join(st[t], NULL);
	free(st);
	double setup = now_s() - t0;
	printf("s2s_load: setup conns=%d elapsed_ms=%.0f rate=%.0f/s\n", o.conns, setup * 1e3,
	       o.conns / setup);
	fflush(stdout);

	if (o.idle) {
		printf("s2s_load: idle conns=%d\n", o.conns);
		fflush(stdout);
		for (;;)
			pause();
	}

	for (int i = 0; i < o.conns; i++) {
		streams[i].quota = o.stanzas / (uint64_t)o.conns +
				   ((uint64_t)i < o.stanzas % (uint64_t)o.conns ? 1 : 0);
		batch_build(i, &streams[i]);
	}
	struct sender *ts = calloc((size_t)o.threads, sizeof *ts);
	t0 = now_s();
	run_threads(send_thread, ts, o.threads);
	double sent = now_s() - t0;
	uint64_t bytes = 0;
	for (int t = 0; t < o.threads; t++)
		bytes += ts[t].bytes;
	printf("s2s_load: sent stanzas=%llu bytes=%llu conns=%d elapsed_us=%.0f rate=%.0f/s "
	       "mbytes_s=%.1f\n",
	       (unsigned long long)o.stanzas, (unsigned long long)bytes, o.conns, sent * 1e6,
	       (double)o.stanzas / sent, (double)bytes / sent / 1e6);
	fflush(stdout);
	run_threads(close_thread, ts, o.threads);
	printf("s2s_load: closed elapsed_ms=%.0f\n", (now_s() - t0) * 1e3);
	for (int i = 0; i < o.conns; i++)
		free(streams[i].tx);
	free(streams);
	free(ts);
	SSL_CTX_free(ctx);
	return 0;
}
