/* tls: two sessions pumped against each other in memory, with certificates from mkcerts.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "buf.h"
#include "err.h"
#include "tls.h"

#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* ---- OpenSSL allocation accounting (installed before OpenSSL allocates anything) ---- */

static long long ossl_live;

struct hdr {
	size_t n;
	size_t pad;
};

static void *count_malloc(size_t n, const char *file, int line)
{
	(void)file, (void)line;
	struct hdr *h = malloc(sizeof *h + n);
	if (!h)
		return NULL;
	h->n = n;
	ossl_live += (long long)n;
	return h + 1;
}

static void count_free(void *p, const char *file, int line)
{
	(void)file, (void)line;
	if (!p)
		return;
	struct hdr *h = (struct hdr *)p - 1;
	ossl_live -= (long long)h->n;
	free(h);
}

static void *count_realloc(void *p, size_t n, const char *file, int line)
{
	if (!p)
		return count_malloc(n, file, line);
	if (n == 0) {
		count_free(p, file, line);
		return NULL;
	}
	struct hdr *h = (struct hdr *)p - 1;
	size_t old = h->n;
	struct hdr *nh = realloc(h, sizeof *nh + n);
	if (!nh)
		return NULL;
	ossl_live += (long long)n - (long long)old;
	nh->n = n;
	return nh + 1;
}

/* ---- helpers ---- */

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

static int group_setup(void **state)
{
	(void)state;
	snprintf(certdir, sizeof certdir, "/tmp/parley-test-tls-XXXXXX");
	if (!mkdtemp(certdir))
		return -1;
	const char *root = src_root();
	char cmd[1024];
	snprintf(
	    cmd, sizeof cmd,
	    "sh %s/deploy/mkcerts.sh %s proxy.link.test gateway.link.test && "
	    "sh %s/deploy/mkcerts.sh --ca evil %s gateway.link.test && "
	    "sh %s/deploy/mkcerts.sh --eku serverAuth %s srvonly.link.test && "
	    "sh %s/deploy/mkcerts.sh --san 'DNS:x.test,DNS:*.y.test,DNS:f*.z.test' %s multi.test",
	    root, certdir, root, certdir, root, certdir, root, certdir);
	return system(cmd) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", certdir);
	return system(cmd) == 0 ? 0 : -1;
}

static const char *path(const char *name)
{
	static char p[8][160];
	static int i;
	i = (i + 1) % 8;
	snprintf(p[i], sizeof p[i], "%s/%s", certdir, name);
	return p[i];
}

struct ctx_opts {
	const char *cert; /* base name in certdir, NULL = none */
	const char *ca;	  /* base name, default "ca" */
	int min, max;
	bool require, request;
	const char *const *alpn;
};

static struct tls_ctx *mkctx(bool server, struct ctx_opts o)
{
	char certf[32], keyf[32], caf[32], err[256] = "";
	snprintf(caf, sizeof caf, "%s.pem", o.ca ? o.ca : "ca");
	if (o.cert) {
		snprintf(certf, sizeof certf, "%s.pem", o.cert);
		snprintf(keyf, sizeof keyf, "%s.key", o.cert);
	}
	struct tls_ctx_cfg cfg = {
	    .ca_file = path(caf),
	    .cert_file = o.cert ? path(certf) : NULL,
	    .key_file = o.cert ? path(keyf) : NULL,
	    .min_version = o.min,
	    .max_version = o.max,
	    .require_peer_cert = o.require,
	    .request_peer_cert = o.request,
	    .alpn = o.alpn,
	};
	struct tls_ctx *c = tls_ctx_new(server, &cfg, err, sizeof err);
	if (!c)
		print_error("tls_ctx_new: %s\n", err);
	assert_non_null(c);
	return c;
}

struct side {
	struct tls_sess *s;
	struct buf rx;
	int last; /* last non-positive tls_sess_read result */
};

static void side_init(struct side *d, struct tls_ctx *ctx, bool server, const char *sni)
{
	d->s = tls_sess_new(ctx, server, sni);
	assert_non_null(d->s);
	buf_init(&d->rx, 0);
	d->last = 0;
}

static void side_free(struct side *d)
{
	tls_sess_free(d->s);
	buf_deinit(&d->rx);
}

static size_t move(struct side *from, struct side *to)
{
	const uint8_t *p;
	size_t n = tls_sess_out_pending(from->s, &p);
	if (n) {
		assert_int_equal(tls_sess_feed(to->s, p, n), 0);
		tls_sess_out_consume(from->s, n);
	}
	return n;
}

static void drain(struct side *d)
{
	static uint8_t tmp[65536];
	for (;;) {
		int r = tls_sess_read(d->s, tmp, sizeof tmp);
		if (r <= 0) {
			d->last = r;
			return;
		}
		assert_int_equal(buf_append(&d->rx, tmp, (size_t)r), 0);
	}
}

/* Runs both sides until nothing moves. */
static void run(struct side *c, struct side *s)
{
	for (int i = 0; i < 1000; i++) {
		drain(c);
		drain(s);
		size_t moved = move(c, s) + move(s, c);
		if (moved == 0)
			return;
	}
	fail_msg("pump did not settle");
}

/* ---- tests ---- */

static const char *const alpn_client[] = {"parley-link/1", NULL};
static const char *const alpn_server[] = {"h2", "parley-link/1", NULL};

static void test_handshake_and_data(void **state)
{
	(void)state;
	struct tls_ctx *sc = mkctx(true, (struct ctx_opts){.cert = "proxy.link.test",
							   .min = TLS1_3_VERSION,
							   .require = true,
							   .alpn = alpn_server});
	struct tls_ctx *cc =
	    mkctx(false, (struct ctx_opts){.cert = "gateway.link.test", .alpn = alpn_client});
	struct side c, s;
	side_init(&c, cc, false, "proxy.link.test");
	side_init(&s, sc, true, NULL);

	/* Written before the handshake: kept and sent once it completes. */
	assert_int_equal(tls_sess_write(c.s, (const uint8_t *)"early", 5), 0);
	assert_int_equal(tls_sess_write_pending(c.s), 5);
	assert_false(tls_sess_handshake_done(c.s));
	run(&c, &s);

	assert_true(tls_sess_handshake_done(c.s));
	assert_true(tls_sess_handshake_done(s.s));
	assert_int_equal(tls_sess_write_pending(c.s), 0);
	assert_string_equal(tls_sess_version(c.s), "TLSv1.3");
	assert_string_equal(tls_sess_version(s.s), "TLSv1.3");
	assert_string_equal(tls_sess_alpn(c.s), "parley-link/1");
	assert_string_equal(tls_sess_alpn(s.s), "parley-link/1");
	assert_string_equal(tls_sess_sni(s.s), "proxy.link.test");
	assert_int_equal(tls_sess_verify_result(c.s), X509_V_OK);
	assert_int_equal(tls_sess_verify_result(s.s), X509_V_OK);
	assert_string_equal(tls_sess_verify_error(s.s), "ok");
	assert_true(tls_sess_peer_has_cert(c.s));
	assert_true(tls_sess_peer_has_cert(s.s));
	assert_true(tls_sess_peer_matches_dns(c.s, "proxy.link.test"));
	assert_true(tls_sess_peer_matches_dns(s.s, "gateway.link.test"));
	assert_int_equal(s.rx.len, 5);
	assert_memory_equal(buf_head(&s.rx), "early", 5);
	buf_consume(&s.rx, s.rx.len);

	assert_int_equal(tls_sess_write(c.s, (const uint8_t *)"hello", 5), 0);
	assert_int_equal(tls_sess_write(s.s, (const uint8_t *)"world!", 6), 0);
	run(&c, &s);
	assert_int_equal(s.rx.len, 5);
	assert_memory_equal(buf_head(&s.rx), "hello", 5);
	assert_int_equal(c.rx.len, 6);
	assert_memory_equal(buf_head(&c.rx), "world!", 6);
	buf_consume(&s.rx, s.rx.len);
	buf_consume(&c.rx, c.rx.len);

	/* 1 MiB in one write: 64 full-size application-data records. */
	size_t big = 1 << 20;
	uint8_t *data = malloc(big);
	for (size_t i = 0; i < big; i++)
		data[i] = (uint8_t)(i * 7 + (i >> 12));
	assert_int_equal(tls_sess_write(c.s, data, big), 0);
	const uint8_t *p;
	size_t n = tls_sess_out_pending(c.s, &p), off = 0, records = 0;
	assert_true(tls_sess_want_write(c.s));
	while (off + 5 <= n) {
		size_t len = ((size_t)p[off + 3] << 8) | p[off + 4];
		assert_int_equal(p[off], 23); /* application_data (TLS 1.3 outer type) */
		assert_in_range(len, 16384 + 1, 16384 + 256);
		off += 5 + len;
		records++;
	}
	assert_int_equal(off, n);
	assert_int_equal(records, 64);
	run(&c, &s);
	assert_int_equal(s.rx.len, big);
	assert_memory_equal(buf_head(&s.rx), data, big);
	free(data);

	side_free(&c);
	side_free(&s);
	tls_ctx_free(sc);
	tls_ctx_free(cc);
}

static void test_pinned_names(void **state)
{
	(void)state;
	struct tls_ctx *sc = mkctx(true, (struct ctx_opts){.cert = "proxy.link.test"});
	struct tls_ctx *cc = mkctx(false, (struct ctx_opts){0});
	struct side c, s;
	side_init(&c, cc, false, NULL);
	side_init(&s, sc, true, NULL);
	run(&c, &s);
	assert_true(tls_sess_handshake_done(c.s));

	char why[256] = "";
	const char *const ok[] = {"other.link.test", "proxy.link.test"};
	assert_true(tls_sess_peer_pinned(c.s, ok, 2, why, sizeof why));
	const char *const bad[] = {"gateway.link.test"};
	assert_false(tls_sess_peer_pinned(c.s, bad, 1, why, sizeof why));
	assert_contains(why, "do not match");
	assert_contains(why, "gateway.link.test");
	assert_contains(why, "DNS:proxy.link.test");
	/* The server asked for no client certificate. */
	assert_false(tls_sess_peer_has_cert(s.s));
	assert_int_equal(tls_sess_verify_result(s.s), X509_V_ERR_UNSPECIFIED);
	assert_string_equal(tls_sess_verify_error(s.s), "no peer certificate");
	assert_false(tls_sess_peer_pinned(s.s, ok, 2, why, sizeof why));
	assert_string_equal(why, "no peer certificate");

	side_free(&c);
	side_free(&s);
	tls_ctx_free(sc);
	tls_ctx_free(cc);
}

static void test_dns_id_rules(void **state)
{
	(void)state;
	struct tls_ctx *sc = mkctx(true, (struct ctx_opts){.cert = "multi.test"});
	struct tls_ctx *cc = mkctx(false, (struct ctx_opts){0});
	struct side c, s;
	side_init(&c, cc, false, NULL);
	side_init(&s, sc, true, NULL);
	run(&c, &s);
	assert_int_equal(tls_sess_verify_result(c.s), X509_V_OK);
	assert_true(tls_sess_peer_matches_dns(c.s, "x.test"));
	assert_true(tls_sess_peer_matches_dns(c.s, "X.TEST"));
	assert_true(tls_sess_peer_matches_dns(c.s, "a.y.test"));
	assert_false(tls_sess_peer_matches_dns(c.s, "y.test"));	    /* wildcard needs a label */
	assert_false(tls_sess_peer_matches_dns(c.s, "b.a.y.test")); /* one label only */
	assert_false(tls_sess_peer_matches_dns(c.s, "foo.z.test")); /* no partial wildcards */
	assert_false(tls_sess_peer_matches_dns(c.s, "multi.test")); /* CN is never used */
	assert_false(tls_sess_peer_matches_dns(c.s, ""));

	side_free(&c);
	side_free(&s);
	tls_ctx_free(sc);
	tls_ctx_free(cc);
}

static void test_untrusted_ca(void **state)
{
	(void)state;
	/* Server chain from another CA; client cert from another CA too. */
	struct tls_ctx *sc =
	    mkctx(true, (struct ctx_opts){.cert = "evil-gateway.link.test", .require = true});
	struct tls_ctx *cc = mkctx(false, (struct ctx_opts){.cert = "evil-gateway.link.test"});
	struct side c, s;
	side_init(&c, cc, false, NULL);
	side_init(&s, sc, true, NULL);
	run(&c, &s);

	/* Recorded, not enforced: the handshake completes and policy decides. */
	assert_true(tls_sess_handshake_done(c.s));
	assert_true(tls_sess_handshake_done(s.s));
	assert_int_equal(tls_sess_verify_result(c.s), X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
	assert_string_equal(tls_sess_verify_error(c.s), "unable to get local issuer certificate");
	assert_int_equal(tls_sess_verify_result(s.s), X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
	/* The name matches, the chain does not. */
	assert_true(tls_sess_peer_matches_dns(c.s, "gateway.link.test"));
	char why[256] = "";
	const char *const names[] = {"gateway.link.test"};
	assert_false(tls_sess_peer_pinned(c.s, names, 1, why, sizeof why));
	assert_string_equal(why,
			    "certificate verify failed: unable to get local issuer certificate");

	side_free(&c);
	side_free(&s);
	tls_ctx_free(sc);
	tls_ctx_free(cc);
}

static void test_version_mismatch(void **state)
{
	(void)state;
	struct tls_ctx *sc = mkctx(true, (struct ctx_opts){.cert = "proxy.link.test",
							   .min = TLS1_3_VERSION,
							   .max = TLS1_3_VERSION});
	struct tls_ctx *cc = mkctx(false, (struct ctx_opts){.max = TLS1_2_VERSION});
	struct side c, s;
	side_init(&c, cc, false, NULL);
	side_init(&s, sc, true, NULL);
	run(&c, &s);
	assert_int_equal(s.last, PE_TLS);
	assert_int_equal(c.last, PE_TLS);
	assert_contains(tls_sess_error(s.s), "unsupported protocol");
	assert_contains(tls_sess_error(c.s), "protocol version");
	assert_false(tls_sess_handshake_done(s.s));
	/* Sticky. */
	uint8_t tmp[16];
	assert_int_equal(tls_sess_read(s.s, tmp, sizeof tmp), PE_TLS);
	assert_int_equal(tls_sess_write(s.s, tmp, sizeof tmp), PE_TLS);

	side_free(&c);
	side_free(&s);
	tls_ctx_free(sc);
	tls_ctx_free(cc);
}

static void test_tls12_ecdhe_aead(void **state)
{
	(void)state;
	struct tls_ctx *sc = mkctx(true, (struct ctx_opts){.cert = "proxy.link.test"});
	struct tls_ctx *cc = mkctx(false, (struct ctx_opts){.max = TLS1_2_VERSION});
	struct side c, s;
	side_init(&c, cc, false, NULL);
	side_init(&s, sc, true, NULL);
	assert_int_equal(tls_sess_write(s.s, (const uint8_t *)"v12", 3), 0);
	run(&c, &s);
	assert_string_equal(tls_sess_version(c.s), "TLSv1.2");
	const char *cipher = SSL_get_cipher_name(tls_sess_ssl(c.s));
	assert_contains(cipher, "ECDHE");
	assert_true(strstr(cipher, "GCM") || strstr(cipher, "CHACHA20"));
	assert_int_equal(c.rx.len, 3);
	assert_memory_equal(buf_head(&c.rx), "v12", 3);

	side_free(&c);
	side_free(&s);
	tls_ctx_free(sc);
	tls_ctx_free(cc);
}

static void test_serverauth_only_client_cert(void **state)
{
	(void)state;
	struct tls_ctx *sc =
	    mkctx(true, (struct ctx_opts){.cert = "proxy.link.test", .require = true});
	struct tls_ctx *cc = mkctx(false, (struct ctx_opts){.cert = "srvonly.link.test"});
	struct side c, s;
	side_init(&c, cc, false, NULL);
	side_init(&s, sc, true, NULL);
	run(&c, &s);
	assert_true(tls_sess_handshake_done(s.s));
	assert_int_equal(tls_sess_verify_result(s.s), X509_V_OK);
	char why[128] = "";
	const char *const names[] = {"srvonly.link.test"};
	assert_true(tls_sess_peer_pinned(s.s, names, 1, why, sizeof why));

	side_free(&c);
	side_free(&s);
	tls_ctx_free(sc);
	tls_ctx_free(cc);
}

static void test_client_cert_required(void **state)
{
	(void)state;
	struct tls_ctx *sc =
	    mkctx(true, (struct ctx_opts){.cert = "proxy.link.test", .require = true});
	struct tls_ctx *cc = mkctx(false, (struct ctx_opts){0});
	struct side c, s;
	side_init(&c, cc, false, NULL);
	side_init(&s, sc, true, NULL);
	run(&c, &s);
	assert_int_equal(s.last, PE_TLS);
	assert_contains(tls_sess_error(s.s), "peer did not return a certificate");
	assert_int_equal(c.last, PE_TLS); /* the alert reached the client */
	assert_contains(tls_sess_error(c.s), "certificate required");
	side_free(&c);
	side_free(&s);
	tls_ctx_free(sc);

	/* Requested but optional: the handshake succeeds without one. */
	sc = mkctx(true, (struct ctx_opts){.cert = "proxy.link.test", .request = true});
	side_init(&c, cc, false, NULL);
	side_init(&s, sc, true, NULL);
	run(&c, &s);
	assert_true(tls_sess_handshake_done(s.s));
	assert_false(tls_sess_peer_has_cert(s.s));
	assert_string_equal(tls_sess_verify_error(s.s), "no peer certificate");
	side_free(&c);
	side_free(&s);
	tls_ctx_free(sc);
	tls_ctx_free(cc);
}

static void test_shutdown_and_garbage(void **state)
{
	(void)state;
	struct tls_ctx *sc = mkctx(true, (struct ctx_opts){.cert = "proxy.link.test"});
	struct tls_ctx *cc = mkctx(false, (struct ctx_opts){0});
	struct side c, s;
	side_init(&c, cc, false, NULL);
	side_init(&s, sc, true, NULL);
	assert_int_equal(tls_sess_shutdown(c.s), PE_STATE); /* nothing to close yet */
	run(&c, &s);
	assert_int_equal(tls_sess_write(c.s, (const uint8_t *)"last", 4), 0);
	assert_int_equal(tls_sess_shutdown(c.s), 0);
	assert_int_equal(tls_sess_write(c.s, (const uint8_t *)"x", 1), PE_CLOSED);
	run(&c, &s);
	assert_int_equal(s.rx.len, 4); /* data before close_notify arrives */
	assert_int_equal(s.last, PE_CLOSED);
	/* Half-close: the side that received close_notify may still answer. */
	assert_int_equal(tls_sess_write(s.s, (const uint8_t *)"reply", 5), 0);
	run(&c, &s);
	assert_int_equal(c.rx.len, 5);
	assert_memory_equal(buf_head(&c.rx), "reply", 5);
	assert_int_equal(tls_sess_shutdown(s.s), 0);
	assert_int_equal(tls_sess_write(s.s, (const uint8_t *)"x", 1), PE_CLOSED);
	run(&c, &s);
	assert_int_equal(c.last, PE_CLOSED);
	side_free(&c);
	side_free(&s);

	/* Garbage instead of a ClientHello: a fatal error with a reason, sticky. */
	side_init(&s, sc, true, NULL);
	static const uint8_t junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	assert_int_equal(tls_sess_feed(s.s, junk, sizeof junk - 1), 0);
	uint8_t tmp[64];
	assert_int_equal(tls_sess_read(s.s, tmp, sizeof tmp), PE_TLS);
	assert_true(strlen(tls_sess_error(s.s)) > 0);
	assert_int_equal(tls_sess_handshake(s.s), PE_TLS);
	side_free(&s);
	tls_ctx_free(sc);
	tls_ctx_free(cc);
}

static void test_reload_and_lifetime(void **state)
{
	(void)state;
	struct tls_ctx *sc = mkctx(true, (struct ctx_opts){.cert = "proxy.link.test"});
	struct tls_ctx *cc = mkctx(false, (struct ctx_opts){0});
	struct side c1, s1, c2, s2;
	side_init(&c1, cc, false, NULL);
	side_init(&s1, sc, true, NULL); /* created before the reload */

	char err[256] = "";
	struct tls_ctx_cfg bad = {.ca_file = path("ca.pem"), .cert_file = path("missing.pem")};
	assert_int_equal(tls_ctx_reload(sc, &bad, err, sizeof err), PE_CONFIG);
	assert_contains(err, "missing.pem");
	struct tls_ctx_cfg good = {.ca_file = path("ca.pem"),
				   .cert_file = path("gateway.link.test.pem"),
				   .key_file = path("gateway.link.test.key")};
	assert_int_equal(tls_ctx_reload(sc, &good, err, sizeof err), 0);
	side_init(&c2, cc, false, NULL);
	side_init(&s2, sc, true, NULL);
	/* The holder goes away while sessions still use its SSL_CTXs. */
	tls_ctx_free(sc);
	tls_ctx_free(cc);

	run(&c1, &s1);
	run(&c2, &s2);
	assert_true(tls_sess_peer_matches_dns(c1.s, "proxy.link.test"));
	assert_true(tls_sess_peer_matches_dns(c2.s, "gateway.link.test"));
	assert_int_equal(tls_sess_write(s1.s, (const uint8_t *)"old", 3), 0);
	run(&c1, &s1);
	assert_int_equal(c1.rx.len, 3);
	side_free(&c1);
	side_free(&s1);
	side_free(&c2);
	side_free(&s2);
}

static void test_ctx_errors(void **state)
{
	(void)state;
	char err[256] = "";
	struct tls_ctx_cfg cfg = {.ca_file = path("nope-ca.pem")};
	assert_null(tls_ctx_new(false, &cfg, err, sizeof err));
	assert_contains(err, "nope-ca.pem");
	struct tls_ctx_cfg srv = {.ca_file = path("ca.pem")};
	assert_null(tls_ctx_new(true, &srv, err, sizeof err));
	assert_contains(err, "cert_file");
	struct tls_ctx_cfg mism = {.ca_file = path("ca.pem"),
				   .cert_file = path("proxy.link.test.pem"),
				   .key_file = path("gateway.link.test.key")};
	assert_null(tls_ctx_new(true, &mism, err, sizeof err));
	assert_contains(err, "mismatch");
	const char *const empty_alpn[] = {"", NULL};
	struct tls_ctx_cfg al = {.ca_file = path("ca.pem"), .alpn = empty_alpn};
	assert_null(tls_ctx_new(false, &al, err, sizeof err));
	assert_contains(err, "ALPN");
}

static void test_attach_out(void **state)
{
	(void)state;
	struct tls_ctx *sc = mkctx(true, (struct ctx_opts){.cert = "proxy.link.test"});
	struct tls_ctx *cc = mkctx(false, (struct ctx_opts){0});
	struct side c, s;
	side_init(&c, cc, false, NULL);
	side_init(&s, sc, true, NULL);
	assert_int_equal(tls_sess_handshake(c.s), 0); /* ClientHello in the internal buffer */
	const uint8_t *p;
	size_t hello = tls_sess_out_pending(c.s, &p);
	assert_true(hello > 0);

	struct buf wire;
	buf_init(&wire, 0);
	assert_int_equal(buf_append(&wire, "<proceed/>", 10), 0);
	tls_sess_attach_out(c.s, &wire);
	assert_int_equal(wire.len, 10 + hello); /* records after the plaintext */
	assert_memory_equal(buf_head(&wire), "<proceed/>", 10);
	assert_int_equal(buf_head(&wire)[10], 22); /* handshake record */
	assert_int_equal(tls_sess_out_pending(c.s, &p), 10 + hello);
	tls_sess_out_consume(c.s, 10);
	run(&c, &s);
	assert_true(tls_sess_handshake_done(s.s));
	assert_int_equal(wire.len, 0);
	tls_sess_attach_out(c.s, NULL);
	assert_false(tls_sess_want_write(c.s));
	buf_deinit(&wire);
	side_free(&c);
	side_free(&s);
	tls_ctx_free(sc);
	tls_ctx_free(cc);
}

static char *slurp(const char *name)
{
	FILE *f = fopen(path(name), "rb");
	assert_non_null(f);
	static char tmp[8192];
	size_t n = fread(tmp, 1, sizeof tmp - 1, f);
	fclose(f);
	tmp[n] = 0;
	return strdup(tmp);
}

static X509 *load_cert(const char *name)
{
	FILE *f = fopen(path(name), "rb");
	assert_non_null(f);
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	return x;
}

static void test_mkcerts(void **state)
{
	(void)state;
	/* Idempotent: a second run keeps the CA and existing leaves, adds new ones. */
	char *ca1 = slurp("ca.pem"), *leaf1 = slurp("proxy.link.test.pem");
	char cmd[512];
	snprintf(cmd, sizeof cmd, "sh %s/deploy/mkcerts.sh %s proxy.link.test extra.link.test",
		 src_root(), certdir);
	assert_int_equal(system(cmd), 0);
	char *ca2 = slurp("ca.pem"), *leaf2 = slurp("proxy.link.test.pem");
	assert_string_equal(ca1, ca2);
	assert_string_equal(leaf1, leaf2);
	free(ca1), free(ca2), free(leaf1), free(leaf2);

	X509 *ca = load_cert("ca.pem"), *evil = load_cert("evil-ca.pem");
	X509 *both = load_cert("extra.link.test.pem"), *srv = load_cert("srvonly.link.test.pem");
	X509 *eleaf = load_cert("evil-gateway.link.test.pem");
	assert_int_equal(X509_check_ca(ca), 1);
	assert_int_not_equal(X509_NAME_cmp(X509_get_subject_name(ca), X509_get_subject_name(evil)),
			     0);
	assert_int_equal(X509_check_issued(ca, both), X509_V_OK);
	assert_int_equal(X509_check_issued(evil, eleaf), X509_V_OK);
	assert_int_not_equal(X509_check_issued(ca, eleaf), X509_V_OK);
	assert_int_equal(X509_check_ca(both), 0);
	assert_int_equal(X509_get_extended_key_usage(both), XKU_SSL_SERVER | XKU_SSL_CLIENT);
	assert_int_equal(X509_get_extended_key_usage(srv), XKU_SSL_SERVER);
	assert_int_equal(X509_check_host(both, "extra.link.test", 0, 0, NULL), 1);
	X509_free(ca), X509_free(evil), X509_free(both), X509_free(srv), X509_free(eleaf);

	struct stat st;
	assert_int_equal(stat(path("extra.link.test.key"), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stat(path("ca.key"), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* Usage errors are reported. */
	snprintf(cmd, sizeof cmd, "sh %s/deploy/mkcerts.sh --bogus %s x 2>/dev/null", src_root(),
		 certdir);
	assert_int_not_equal(system(cmd), 0);
}

/* Idle sessions must stay small (an idle S2S stream targets <= 48 KiB in total). */
static void test_idle_memory(void **state)
{
	(void)state;
	struct tls_ctx *sc =
	    mkctx(true, (struct ctx_opts){.cert = "proxy.link.test", .require = true});
	struct tls_ctx *cc = mkctx(false, (struct ctx_opts){.cert = "gateway.link.test"});
	enum { N = 8 };
	struct side c[N], s[N];
	/* Warm-up pair: OpenSSL caches (methods, error strings) are not per session. */
	side_init(&c[0], cc, false, NULL);
	side_init(&s[0], sc, true, NULL);
	run(&c[0], &s[0]);
	side_free(&c[0]);
	side_free(&s[0]);

	long long before = ossl_live;
	for (int i = 0; i < N; i++) {
		side_init(&c[i], cc, false, NULL);
		side_init(&s[i], sc, true, NULL);
		run(&c[i], &s[i]);
		static uint8_t blob[100000];
		assert_int_equal(tls_sess_write(c[i].s, blob, sizeof blob), 0);
		assert_int_equal(tls_sess_write(s[i].s, blob, sizeof blob), 0);
		run(&c[i], &s[i]);
		assert_int_equal(s[i].rx.len, sizeof blob);
		buf_deinit(&c[i].rx);
		buf_deinit(&s[i].rx);
	}
	long long per_sess = (ossl_live - before) / (2 * N);
	print_message("idle OpenSSL bytes per session: %lld\n", per_sess);
	assert_in_range(per_sess, 1, 24 * 1024);
	for (int i = 0; i < N; i++) {
		side_free(&c[i]);
		side_free(&s[i]);
	}
	tls_ctx_free(sc);
	tls_ctx_free(cc);
}

int main(void)
{
	/* Before OpenSSL allocates anything. */
	if (!CRYPTO_set_mem_functions(count_malloc, count_realloc, count_free)) {
		fprintf(stderr, "CRYPTO_set_mem_functions failed\n");
		return 1;
	}
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_handshake_and_data),
	    cmocka_unit_test(test_pinned_names),
	    cmocka_unit_test(test_dns_id_rules),
	    cmocka_unit_test(test_untrusted_ca),
	    cmocka_unit_test(test_version_mismatch),
	    cmocka_unit_test(test_tls12_ecdhe_aead),
	    cmocka_unit_test(test_serverauth_only_client_cert),
	    cmocka_unit_test(test_client_cert_required),
	    cmocka_unit_test(test_shutdown_and_garbage),
	    cmocka_unit_test(test_reload_and_lifetime),
	    cmocka_unit_test(test_ctx_errors),
	    cmocka_unit_test(test_attach_out),
	    cmocka_unit_test(test_idle_memory),
	    cmocka_unit_test(test_mkcerts),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
