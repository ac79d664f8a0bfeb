/* TLS over memory. OpenSSL talks to one custom BIO that reads from our input buffer and
 * appends to our output buffer (h2o lib/common/socket.c does the same), so the caller owns all
 * I/O and no ciphertext is copied through a BIO_s_mem in between. */
#include "tls.h"

#include "buf.h"
#include "err.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tls_ctx {
	SSL_CTX *ssl_ctx;
	bool server;
};

enum tls_state {
	TS_HANDSHAKE, /* handshake in progress */
	TS_OPEN,      /* handshake done, data flows */
	TS_CLOSED,    /* peer sent close_notify */
	TS_FAILED,    /* fatal error; err holds the reason */
};

struct tls_sess {
	SSL *ssl;
	struct buf in;	    /* ciphertext fed and not yet consumed by OpenSSL */
	struct buf own_out; /* ciphertext output unless the caller attached its own buffer */
	struct buf *out;    /* where the BIO appends */
	struct buf pend;    /* plaintext written before the handshake finished */
	enum tls_state state;
	bool shut_sent;
	long verify_err; /* first error seen by the verify callback */
	char *alpn;
	char err[128];
};

/* Per-SSL_CTX data that must live exactly as long as the SSL_CTX, because sessions keep
 * using an SSL_CTX after tls_ctx_reload or tls_ctx_free dropped our reference. */
struct tls_ctx_extra {
	unsigned char *alpn; /* wire format: length-prefixed names */
	unsigned alpn_len;
};

static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static BIO_METHOD *tls_bio_method;
static int tls_ctx_exidx = -1;

/* ---- the BIO ---- */

static int bio_write_ex(BIO *b, const char *d, size_t n, size_t *written)
{
	struct tls_sess *s = BIO_get_data(b);

	BIO_clear_retry_flags(b);
	if (buf_append(s->out, d, n))
		return 0;
	*written = n;
	return 1;
}

static int bio_read_ex(BIO *b, char *d, size_t n, size_t *readbytes)
{
	struct tls_sess *s = BIO_get_data(b);

	BIO_clear_retry_flags(b);
	if (s->in.len == 0) {
		BIO_set_retry_read(b);
		return 0;
	}
	if (n > s->in.len)
		n = s->in.len;
	memcpy(d, buf_head(&s->in), n);
	buf_consume(&s->in, n);
	*readbytes = n;
	return 1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct tls_sess *s = BIO_get_data(b);

	(void)num;
	(void)ptr;
	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;
	case BIO_CTRL_PENDING:
		return s ? (long)s->in.len : 0;
	case BIO_CTRL_WPENDING:
		return s ? (long)s->out->len : 0;
	default:
		return 0;
	}
}

static int bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static int bio_destroy(BIO *b)
{
	BIO_set_data(b, NULL);
	return 1;
}

static void ctx_extra_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
			   void *argp)
{
	struct tls_ctx_extra *x = ptr;

	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	if (x) {
		free(x->alpn);
		free(x);
	}
}

static void tls_init_once(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "parley-tls");
	if (!m || !BIO_meth_set_write_ex(m, bio_write_ex) ||
	    !BIO_meth_set_read_ex(m, bio_read_ex) || !BIO_meth_set_ctrl(m, bio_ctrl) ||
	    !BIO_meth_set_create(m, bio_create) || !BIO_meth_set_destroy(m, bio_destroy))
		abort(); /* small control allocation at start-up */
	tls_bio_method = m;
	tls_ctx_exidx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, ctx_extra_free);
	if (tls_ctx_exidx < 0)
		abort();
}

/* ---- contexts ---- */

/* Verification is recorded, not enforced: S2S policy may accept an unverified peer (then
 * authenticate it with dialback), and the link wants its own wording in logs. */
static int verify_cb(int ok, X509_STORE_CTX *xs)
{
	if (!ok) {
		SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
		struct tls_sess *s = ssl ? SSL_get_app_data(ssl) : NULL;
		if (s && s->verify_err == X509_V_OK)
			s->verify_err = X509_STORE_CTX_get_error(xs);
	}
	return 1;
}

/* Server side: first protocol of ours that the client offers; no overlap = no ALPN. */
static int alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
			  const unsigned char *in, unsigned inlen, void *arg)
{
	struct tls_ctx_extra *x = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), tls_ctx_exidx);
	unsigned char *sel;

	(void)arg;
	if (!x || !x->alpn)
		return SSL_TLSEXT_ERR_NOACK;
	if (SSL_select_next_proto(&sel, outlen, x->alpn, x->alpn_len, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

static void ctx_err(char *err, size_t errlen, const char *what, const char *file)
{
	unsigned long e = ERR_peek_last_error();
	char es[160] = "";

	if (e)
		ERR_error_string_n(e, es, sizeof es);
	if (err && errlen)
		snprintf(err, errlen, "%s%s%s%s%s", what, file ? " " : "", file ? file : "",
			 es[0] ? ": " : "", es);
	ERR_clear_error();
}

static int alpn_encode(const char *const *list, unsigned char **out, unsigned *outlen)
{
	size_t total = 0;

	for (size_t i = 0; list[i]; i++) {
		size_t l = strlen(list[i]);
		if (l == 0 || l > 255)
			return PE_INVAL;
		total += 1 + l;
	}
	if (total == 0 || total > 65535)
		return PE_INVAL;
	unsigned char *w = malloc(total);
	if (!w)
		return PE_NOMEM;
	size_t o = 0;
	for (size_t i = 0; list[i]; i++) {
		size_t l = strlen(list[i]);
		w[o++] = (unsigned char)l;
		memcpy(w + o, list[i], l);
		o += l;
	}
	*out = w;
	*outlen = (unsigned)total;
	return 0;
}

static SSL_CTX *ctx_build(bool server, const struct tls_ctx_cfg *cfg, char *err, size_t errlen)
{
	SSL_CTX *c;

	pthread_once(&tls_once, tls_init_once);
	ERR_clear_error();
	c = SSL_CTX_new(TLS_method());
	if (!c) {
		ctx_err(err, errlen, "SSL_CTX_new failed", NULL);
		return NULL;
	}
	SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_NO_TICKET |
				   (server ? SSL_OP_CIPHER_SERVER_PREFERENCE : 0));
	/* Every handshake full: no tickets (also saves their bytes and memory), no caches. */
	SSL_CTX_set_num_tickets(c, 0);
	SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
	if (cfg->min_version && !SSL_CTX_set_min_proto_version(c, cfg->min_version)) {
		ctx_err(err, errlen, "invalid min_version", NULL);
		goto fail;
	}
	if (cfg->max_version && !SSL_CTX_set_max_proto_version(c, cfg->max_version)) {
		ctx_err(err, errlen, "invalid max_version", NULL);
		goto fail;
	}
	/* TLS 1.3 suites stay at the library default (all AEAD). */
	if (!SSL_CTX_set_cipher_list(c, "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL")) {
		ctx_err(err, errlen, "cannot set TLS 1.2 cipher list", NULL);
		goto fail;
	}
	if (cfg->ca_file) {
		if (!SSL_CTX_load_verify_locations(c, cfg->ca_file, NULL)) {
			ctx_err(err, errlen, "cannot load CA file", cfg->ca_file);
			goto fail;
		}
	} else if (!SSL_CTX_set_default_verify_paths(c)) {
		ctx_err(err, errlen, "cannot load the system CA paths", NULL);
		goto fail;
	}
	if (cfg->cert_file) {
		const char *key = cfg->key_file ? cfg->key_file : cfg->cert_file;
		if (!SSL_CTX_use_certificate_chain_file(c, cfg->cert_file)) {
			ctx_err(err, errlen, "cannot load certificate chain", cfg->cert_file);
			goto fail;
		}
		if (!SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM)) {
			ctx_err(err, errlen, "cannot load private key", key);
			goto fail;
		}
		if (!SSL_CTX_check_private_key(c)) {
			ctx_err(err, errlen, "private key does not match certificate", key);
			goto fail;
		}
	} else if (server) {
		ctx_err(err, errlen, "a TLS server needs cert_file", NULL);
		goto fail;
	}

	int mode = SSL_VERIFY_NONE;
	if (!server)
		mode = SSL_VERIFY_PEER;
	else if (cfg->require_peer_cert)
		mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
	else if (cfg->request_peer_cert)
		mode = SSL_VERIFY_PEER;
	SSL_CTX_set_verify(c, mode, verify_cb);
	/* S2S peers often hold serverAuth-only certificates and present them as clients. */
	if (!SSL_CTX_set_purpose(c, X509_PURPOSE_ANY)) {
		ctx_err(err, errlen, "cannot relax the certificate purpose", NULL);
		goto fail;
	}

	if (cfg->alpn && cfg->alpn[0]) {
		unsigned char *wire;
		unsigned wlen;
		if (alpn_encode(cfg->alpn, &wire, &wlen)) {
			ctx_err(err, errlen, "invalid ALPN list", NULL);
			goto fail;
		}
		if (server) {
			struct tls_ctx_extra *x = calloc(1, sizeof *x);
			if (!x || !SSL_CTX_set_ex_data(c, tls_ctx_exidx, x)) {
				free(x);
				free(wire);
				ctx_err(err, errlen, "out of memory", NULL);
				goto fail;
			}
			x->alpn = wire;
			x->alpn_len = wlen;
			SSL_CTX_set_alpn_select_cb(c, alpn_select_cb, NULL);
		} else {
			int r = SSL_CTX_set_alpn_protos(c, wire, wlen); /* 0 = success */
			free(wire);
			if (r) {
				ctx_err(err, errlen, "cannot set ALPN", NULL);
				goto fail;
			}
		}
	}
	ERR_clear_error();
	return c;
fail:
	SSL_CTX_free(c);
	return NULL;
}

struct tls_ctx *tls_ctx_new(bool server, const struct tls_ctx_cfg *cfg, char *err, size_t errlen)
{
	struct tls_ctx *ctx = calloc(1, sizeof *ctx);

	if (!ctx) {
		if (err && errlen)
			snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ctx->server = server;
	ctx->ssl_ctx = ctx_build(server, cfg, err, errlen);
	if (!ctx->ssl_ctx) {
		free(ctx);
		return NULL;
	}
	return ctx;
}

int tls_ctx_reload(struct tls_ctx *ctx, const struct tls_ctx_cfg *cfg, char *err, size_t errlen)
{
	SSL_CTX *c = ctx_build(ctx->server, cfg, err, errlen);

	if (!c)
		return PE_CONFIG;
	SSL_CTX_free(ctx->ssl_ctx); /* sessions hold their own references */
	ctx->ssl_ctx = c;
	return 0;
}

void tls_ctx_free(struct tls_ctx *ctx)
{
	if (!ctx)
		return;
	SSL_CTX_free(ctx->ssl_ctx);
	free(ctx);
}

/* ---- sessions ---- */

struct tls_sess *tls_sess_new(struct tls_ctx *ctx, bool server, const char *sni)
{
	struct tls_sess *s = calloc(1, sizeof *s);
	BIO *b;

	if (!s)
		return NULL;
	buf_init(&s->in, 0);
	buf_init(&s->own_out, 0);
	buf_init(&s->pend, 0);
	s->out = &s->own_out;
	s->verify_err = X509_V_OK;
	s->state = TS_HANDSHAKE;
	s->ssl = SSL_new(ctx->ssl_ctx);
	if (!s->ssl)
		goto fail;
	b = BIO_new(tls_bio_method);
	if (!b)
		goto fail;
	BIO_set_data(b, s);
	SSL_set_bio(s->ssl, b, b); /* one reference, shared by both directions */
	SSL_set_app_data(s->ssl, s);
	if (server) {
		SSL_set_accept_state(s->ssl);
	} else {
		SSL_set_connect_state(s->ssl);
		if (sni && !SSL_set_tlsext_host_name(s->ssl, sni))
			goto fail;
	}
	ERR_clear_error();
	return s;
fail:
	ERR_clear_error();
	tls_sess_free(s);
	return NULL;
}

void tls_sess_free(struct tls_sess *s)
{
	if (!s)
		return;
	SSL_free(s->ssl);
	buf_deinit(&s->in);
	buf_deinit(&s->own_out);
	buf_deinit(&s->pend);
	free(s->alpn);
	free(s);
}

int tls_sess_feed(struct tls_sess *s, const uint8_t *p, size_t n)
{
	return buf_append(&s->in, p, n);
}

uint8_t *tls_sess_feed_reserve(struct tls_sess *s, size_t n)
{
	uint8_t *w;

	return buf_reserve(&s->in, n, &w) ? NULL : w;
}

void tls_sess_feed_commit(struct tls_sess *s, size_t n)
{
	buf_commit(&s->in, n);
	buf_release_if_empty(&s->in);
}

/* Records the reason for a fatal error. The earliest queued error is the cause; later ones
 * are consequences ("shutdown while in init" ...). */
static int sess_fail(struct tls_sess *s, int sslerr)
{
	unsigned long e = ERR_peek_error();

	if (e) {
		const char *r = ERR_reason_error_string(e);
		if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
		    ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED)
			snprintf(s->err, sizeof s->err, "%s: %s",
				 r ? r : "certificate verify failed",
				 X509_verify_cert_error_string(SSL_get_verify_result(s->ssl)));
		else if (r)
			snprintf(s->err, sizeof s->err, "%s", r);
		else
			ERR_error_string_n(e, s->err, sizeof s->err);
	} else if (sslerr == SSL_ERROR_SYSCALL) {
		snprintf(s->err, sizeof s->err, "I/O error on the TLS buffers");
	} else {
		snprintf(s->err, sizeof s->err, "TLS error %d", sslerr);
	}
	ERR_clear_error();
	s->state = TS_FAILED;
	return PE_TLS;
}

static int sess_write_now(struct tls_sess *s, const uint8_t *p, size_t n)
{
	size_t w;

	ERR_clear_error();
	/* Our BIO never pushes back, so the whole buffer goes out as full-size records. */
	if (!SSL_write_ex(s->ssl, p, n, &w))
		return sess_fail(s, SSL_get_error(s->ssl, 0));
	return 0;
}

static int sess_handshake_finished(struct tls_sess *s)
{
	const unsigned char *a;
	unsigned alen;

	s->state = TS_OPEN;
	SSL_get0_alpn_selected(s->ssl, &a, &alen);
	if (alen) {
		s->alpn = malloc(alen + 1);
		if (!s->alpn) {
			snprintf(s->err, sizeof s->err, "out of memory");
			s->state = TS_FAILED;
			return PE_TLS;
		}
		memcpy(s->alpn, a, alen);
		s->alpn[alen] = 0;
	}
	if (s->pend.len) {
		int r = sess_write_now(s, buf_head(&s->pend), s->pend.len);
		buf_deinit(&s->pend);
		if (r)
			return r;
	}
	return 1;
}

int tls_sess_handshake(struct tls_sess *s)
{
	int r, e;

	switch (s->state) {
	case TS_HANDSHAKE:
		break;
	case TS_FAILED:
		return PE_TLS;
	default:
		return 1;
	}
	ERR_clear_error();
	r = SSL_do_handshake(s->ssl);
	if (r == 1)
		return sess_handshake_finished(s);
	e = SSL_get_error(s->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		ERR_clear_error();
		buf_release_if_empty(&s->in);
		return 0;
	}
	return sess_fail(s, e);
}

int tls_sess_read(struct tls_sess *s, uint8_t *out, size_t cap)
{
	size_t got = 0;
	int r;

	if (cap > INT_MAX)
		cap = INT_MAX;
	if (s->state == TS_FAILED)
		return PE_TLS;
	if (s->state == TS_CLOSED)
		return PE_CLOSED;
	if (s->state == TS_HANDSHAKE) {
		r = tls_sess_handshake(s);
		if (r <= 0)
			return r;
	}
	/* SSL_read returns one record at most; loop so the caller gets one big chunk. */
	while (got < cap) {
		size_t n;
		ERR_clear_error();
		if (SSL_read_ex(s->ssl, out + got, cap - got, &n)) {
			got += n;
			continue;
		}
		int e = SSL_get_error(s->ssl, 0);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			ERR_clear_error();
			break;
		}
		if (e == SSL_ERROR_ZERO_RETURN) {
			ERR_clear_error();
			s->state = TS_CLOSED;
			snprintf(s->err, sizeof s->err, "peer sent close_notify");
			if (got)
				break;
			return PE_CLOSED;
		}
		r = sess_fail(s, e);
		if (got)
			break; /* deliver what we have; the error is sticky */
		return r;
	}
	buf_release_if_empty(&s->in);
	return (int)got;
}

bool tls_sess_read_pending(const struct tls_sess *s)
{
	return s->in.len > 0 || SSL_has_pending(s->ssl);
}

int tls_sess_write(struct tls_sess *s, const uint8_t *p, size_t n)
{
	if (s->state == TS_FAILED)
		return PE_TLS;
	/* After the peer's close_notify we may still answer (TLS 1.3 half-close): a reply
	 * queued in the same loop pass as that close_notify must not be lost. */
	if (s->shut_sent)
		return PE_CLOSED;
	if (n == 0)
		return 0;
	if (s->state == TS_HANDSHAKE)
		return buf_append(&s->pend, p, n);
	return sess_write_now(s, p, n);
}

size_t tls_sess_write_pending(const struct tls_sess *s)
{
	return s->pend.len;
}

size_t tls_sess_out_pending(struct tls_sess *s, const uint8_t **p)
{
	*p = buf_head(s->out);
	return s->out->len;
}

void tls_sess_out_consume(struct tls_sess *s, size_t n)
{
	buf_consume(s->out, n);
	if (s->out == &s->own_out)
		buf_release_if_empty(&s->own_out);
}

bool tls_sess_want_write(const struct tls_sess *s)
{
	return s->out->len > 0;
}

void tls_sess_attach_out(struct tls_sess *s, struct buf *out)
{
	if (!out) {
		s->out = &s->own_out;
		return;
	}
	if (s->own_out.len && buf_append(out, buf_head(&s->own_out), s->own_out.len) == 0)
		buf_consume(&s->own_out, s->own_out.len);
	buf_release_if_empty(&s->own_out);
	s->out = out;
}

bool tls_sess_handshake_done(const struct tls_sess *s)
{
	return s->state == TS_OPEN || s->state == TS_CLOSED;
}

int tls_sess_shutdown(struct tls_sess *s)
{
	if (s->state == TS_FAILED)
		return PE_TLS;
	if (s->state == TS_HANDSHAKE)
		return PE_STATE;
	if (s->shut_sent)
		return 0;
	s->shut_sent = true;
	ERR_clear_error();
	/* 0 = sent, waiting for the peer's; 1 = both done. Either way close_notify is queued. */
	int r = SSL_shutdown(s->ssl);
	if (r < 0) {
		int e = SSL_get_error(s->ssl, r);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
			return sess_fail(s, e);
	}
	ERR_clear_error();
	return 0;
}

const char *tls_sess_error(const struct tls_sess *s)
{
	return s->err;
}

const char *tls_sess_version(const struct tls_sess *s)
{
	return SSL_get_version(s->ssl);
}

const char *tls_sess_alpn(const struct tls_sess *s)
{
	return s->alpn;
}

const char *tls_sess_sni(const struct tls_sess *s)
{
	return SSL_get_servername(s->ssl, TLSEXT_NAMETYPE_host_name);
}

X509 *tls_sess_peer_cert(const struct tls_sess *s)
{
	return SSL_get0_peer_certificate(s->ssl);
}

bool tls_sess_peer_has_cert(const struct tls_sess *s)
{
	return tls_sess_peer_cert(s) != NULL;
}

long tls_sess_verify_result(const struct tls_sess *s)
{
	if (!tls_sess_peer_has_cert(s))
		return X509_V_ERR_UNSPECIFIED;
	if (s->verify_err != X509_V_OK)
		return s->verify_err;
	return SSL_get_verify_result(s->ssl);
}

const char *tls_sess_verify_error(const struct tls_sess *s)
{
	if (!tls_sess_peer_has_cert(s))
		return "no peer certificate";
	return X509_verify_cert_error_string(tls_sess_verify_result(s));
}

bool tls_sess_peer_matches_dns(const struct tls_sess *s, const char *name)
{
	X509 *x = tls_sess_peer_cert(s);

	if (!x || !name || !*name)
		return false;
	return X509_check_host(x, name, strlen(name),
			       X509_CHECK_FLAG_NEVER_CHECK_SUBJECT |
				   X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS,
			       NULL) == 1;
}

/* Appends src to dst at *o, replacing anything but printable ASCII with '?'. */
static void why_append(char *dst, size_t cap, size_t *o, const char *src, size_t n)
{
	for (size_t i = 0; i < n && *o + 1 < cap; i++) {
		unsigned char ch = (unsigned char)src[i];
		dst[(*o)++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
	}
	if (cap)
		dst[*o < cap ? *o : cap - 1] = 0;
}

static void why_str(char *dst, size_t cap, size_t *o, const char *src)
{
	why_append(dst, cap, o, src, strlen(src));
}

bool tls_sess_peer_pinned(const struct tls_sess *s, const char *const *names, size_t n, char *why,
			  size_t whylen)
{
	X509 *x = tls_sess_peer_cert(s);
	long v;
	size_t o = 0;

	if (!x) {
		if (why && whylen)
			snprintf(why, whylen, "no peer certificate");
		return false;
	}
	v = tls_sess_verify_result(s);
	if (v != X509_V_OK) {
		if (why && whylen)
			snprintf(why, whylen, "certificate verify failed: %s",
				 X509_verify_cert_error_string(v));
		return false;
	}
	for (size_t i = 0; i < n; i++)
		if (tls_sess_peer_matches_dns(s, names[i]))
			return true;
	if (!why || !whylen)
		return false;

	/* Say what we wanted and what the certificate offers, for the operator. */
	why[0] = 0;
	why_str(why, whylen, &o, "certificate names do not match: want ");
	for (size_t i = 0; i < n; i++) {
		if (i)
			why_str(why, whylen, &o, "|");
		why_str(why, whylen, &o, names[i]);
	}
	why_str(why, whylen, &o, ", have");
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	int have = 0;
	for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		if (g->type != GEN_DNS)
			continue;
		why_str(why, whylen, &o, have ? ", DNS:" : " DNS:");
		have++;
		why_append(why, whylen, &o, (const char *)ASN1_STRING_get0_data(g->d.dNSName),
			   (size_t)ASN1_STRING_length(g->d.dNSName));
	}
	if (!have)
		why_str(why, whylen, &o, " no DNS-ID");
	GENERAL_NAMES_free(gens);
	ERR_clear_error();
	return false;
}

SSL *tls_sess_ssl(struct tls_sess *s)
{
	return s->ssl;
}
