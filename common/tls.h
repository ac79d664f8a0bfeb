/* A TLS engine over memory: ciphertext in, plaintext out and back; it owns no socket. */
#ifndef PARLEY_TLS_H
#define PARLEY_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

struct buf;

/* What a context is built from. Zero-initialise and fill in; strings are only read during
 * tls_ctx_new / tls_ctx_reload (not kept). */
struct tls_ctx_cfg {
	const char *ca_file;   /* PEM CA bundle to verify peers; NULL = system default paths */
	const char *cert_file; /* our chain (PEM, leaf first); may be NULL for a client */
	const char *key_file;  /* PEM private key for cert_file */
	int min_version, max_version; /* TLS1_2_VERSION / TLS1_3_VERSION; 0 = library default */
	bool require_peer_cert;	      /* server: request and require a client certificate */
	bool request_peer_cert;	 /* server: request one but go on without (S2S, SASL EXTERNAL) */
	const char *const *alpn; /* NULL-terminated ALPN protocol list (preference order) or NULL */
};

/* A refcounted holder of the current SSL_CTX. Clients always verify the server chain against
 * ca_file, and servers verify client chains when they request one; verification results are
 * only recorded (see tls_sess_verify_result), never enforced, and the X.509 purpose (EKU) is
 * not checked, so a serverAuth-only certificate is accepted as a client certificate too.
 * Versions below 1.3 are limited to ECDHE with AEAD ciphers. Session tickets and session
 * caches are off on both sides (every handshake is full, so verification is always fresh).
 * Returns NULL and writes a reason into err on failure. */
struct tls_ctx *tls_ctx_new(bool server, const struct tls_ctx_cfg *cfg, char *err, size_t errlen);
/* Builds a new SSL_CTX from cfg and makes it current for sessions created from now on;
 * existing sessions keep the old one (OpenSSL refcounts it). On failure the current one
 * stays, err is written and PE_CONFIG is returned; 0 on success. */
int tls_ctx_reload(struct tls_ctx *ctx, const struct tls_ctx_cfg *cfg, char *err, size_t errlen);
/* Drops our reference; sessions created from ctx stay valid. NULL is a no-op. */
void tls_ctx_free(struct tls_ctx *ctx);

/* One TLS session: an SSL* whose only BIO reads from an input buffer filled by tls_sess_feed
 * and appends to an output buffer the caller drains. Idle sessions hold no record buffers
 * (SSL_MODE_RELEASE_BUFFERS; our buffers are freed when empty). */
struct tls_sess;

/* sni: client only, the server_name to send (and nothing else: it is not used to verify).
 * Returns NULL only on allocation failure. */
struct tls_sess *tls_sess_new(struct tls_ctx *ctx, bool server, const char *sni);
/* NULL is a no-op. */
void tls_sess_free(struct tls_sess *s);

/* Appends ciphertext received from the network (copied). Returns 0 or PE_NOMEM. */
int tls_sess_feed(struct tls_sess *s, const uint8_t *p, size_t n);
/* Zero-copy variant: returns a pointer to at least n writable bytes at the end of the input
 * buffer (NULL on allocation failure); after reading into it, tls_sess_feed_commit(got). */
uint8_t *tls_sess_feed_reserve(struct tls_sess *s, size_t n);
void tls_sess_feed_commit(struct tls_sess *s, size_t n);

/* Drives the handshake only. Returns 1 when it is done, 0 if it needs more input (check
 * tls_sess_want_write), or PE_TLS (reason in tls_sess_error). */
int tls_sess_handshake(struct tls_sess *s);
/* Drives the handshake, then decrypts as much buffered input as fits in out (cap bytes,
 * several records; cap is clamped to INT_MAX). Returns bytes (> 0); 0 if it needs more input (check
 * tls_sess_want_write for output to flush, e.g. handshake messages); PE_CLOSED once the peer's
 * close_notify is read; PE_TLS on a fatal error, with the reason in tls_sess_error (any alert for
 * the peer is left in the output). Errors are sticky: later calls return the same code. */
int tls_sess_read(struct tls_sess *s, uint8_t *out, size_t cap);
/* true if decrypted or undecrypted input is buffered (tls_sess_read would make progress
 * without new input, unless only a partial record is left). */
bool tls_sess_read_pending(const struct tls_sess *s);

/* Encrypts plaintext of any length into the output: full 16 KiB records for big writes.
 * Before the handshake is done the plaintext is kept and encrypted when it completes.
 * Writing after the peer's close_notify is allowed (half-close). Returns 0, PE_CLOSED after
 * tls_sess_shutdown, PE_TLS after a fatal error, or PE_NOMEM. */
int tls_sess_write(struct tls_sess *s, const uint8_t *p, size_t n);
/* Bytes of plaintext accepted by tls_sess_write and not yet encrypted (before handshake). */
size_t tls_sess_write_pending(const struct tls_sess *s);

/* Ciphertext to send: *p points into the output buffer (valid until the next call on s).
 * Returns its length. Then tls_sess_out_consume(n) for what was sent. */
size_t tls_sess_out_pending(struct tls_sess *s, const uint8_t **p);
void tls_sess_out_consume(struct tls_sess *s, size_t n);
/* true if ciphertext is waiting in the output. */
bool tls_sess_want_write(const struct tls_sess *s);
/* Redirects ciphertext output to a buffer the caller owns (appended after what it already
 * holds, e.g. plaintext queued before STARTTLS), so it can be written without a copy; then
 * tls_sess_out_* work on that buffer. Whatever the internal buffer held is moved to out first.
 * NULL goes back to the internal buffer. out must outlive the session or be detached. */
void tls_sess_attach_out(struct tls_sess *s, struct buf *out);

bool tls_sess_handshake_done(const struct tls_sess *s);
/* Queues close_notify (only after the handshake). Returns 0, or PE_STATE before the
 * handshake is done (nothing queued), or PE_TLS. Later writes return PE_CLOSED. */
int tls_sess_shutdown(struct tls_sess *s);

/* Last error: e.g. "unsupported protocol", "tlsv1 alert protocol version",
 * "peer did not return a certificate". "" if none. Static to s. */
const char *tls_sess_error(const struct tls_sess *s);
/* Negotiated version, e.g. "TLSv1.3". */
const char *tls_sess_version(const struct tls_sess *s);
/* Selected ALPN protocol (NUL-terminated copy kept in s) or NULL. */
const char *tls_sess_alpn(const struct tls_sess *s);
/* Server: the server_name the client sent, or NULL. */
const char *tls_sess_sni(const struct tls_sess *s);

/* Peer verification is recorded, never enforced inside OpenSSL: policy decides later.
 * Returns X509_V_OK if the peer presented a chain that verified; the first verification
 * error otherwise; X509_V_ERR_UNSPECIFIED if the peer presented no certificate. Meaningful
 * once the handshake is done. */
long tls_sess_verify_result(const struct tls_sess *s);
/* X509_verify_cert_error_string of the above, or "no peer certificate". */
const char *tls_sess_verify_error(const struct tls_sess *s);
bool tls_sess_peer_has_cert(const struct tls_sess *s);
/* Borrowed peer leaf certificate or NULL (valid while s lives), for identity checks that
 * need more than DNS-IDs (SRV-ID, XmppAddr). */
X509 *tls_sess_peer_cert(const struct tls_sess *s);
/* true if the peer certificate has a DNS-ID (subjectAltName dNSName) matching name:
 * X509_check_host, never the subject CN, no partial wildcards. Does not look at the chain. */
bool tls_sess_peer_matches_dns(const struct tls_sess *s, const char *name);
/* For pinned peers: true if the chain verified AND one of names[0..n) matches a DNS-ID.
 * On false writes a reason (peer names sanitised to printable ASCII) into why. */
bool tls_sess_peer_pinned(const struct tls_sess *s, const char *const *names, size_t n, char *why,
			  size_t whylen);

/* The underlying SSL*, for what this API does not cover. Do not change its BIOs. */
SSL *tls_sess_ssl(struct tls_sess *s);

#endif
