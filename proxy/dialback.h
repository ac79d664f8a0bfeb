/* Server dialback (XEP-0220): keys per XEP-0185, the db:result / db:verify elements, and the
 * receiving server's first look at a db:result. Pure: no sockets, no timers. */
#ifndef PARLEY_PROXY_DIALBACK_H
#define PARLEY_PROXY_DIALBACK_H

#include "buf.h"
#include "policy.h"
#include "xml_stream.h"

#include <stdbool.h>
#include <stddef.h>

/* A key is the lower-case hex of an HMAC-SHA256: 64 characters. */
#define DIALBACK_KEY_LEN 64
#define NS_DIALBACK_FEATURE "urn:xmpp:features:dialback"

/* The edge's dialback secret in the form XEP-0185 feeds to HMAC: hex(SHA-256(secret)).
 * The same secret on every edge gives the same keys, so any edge can answer db:verify for a
 * key another edge sent. Embeddable; holds no heap memory. */
struct dialback {
	char hkey[65];
};

/* Derives the HMAC key from secret[0..len) (any bytes, len > 0). */
void dialback_init(struct dialback *db, const void *secret, size_t len);

/* XEP-0185 §3: key = hex(HMAC-SHA256(hex(SHA256(secret)),
 * receiving + ' ' + originating + ' ' + stream_id)). Domains are used as given (the caller
 * lower-cases them). Writes DIALBACK_KEY_LEN characters and a NUL into out. Returns 0, or
 * PE_INVAL for an empty or over-long (> 1023 bytes) input, or a domain with a space (it would
 * make the concatenation ambiguous). */
int dialback_key(const struct dialback *db, const char *receiving, const char *originating,
		 const char *stream_id, char out[DIALBACK_KEY_LEN + 1]);

/* True if key[0..keylen) is the key for these inputs. Compared in constant time; a key of
 * another length is false. */
bool dialback_key_ok(const struct dialback *db, const char *receiving, const char *originating,
		     const char *stream_id, const char *key, size_t keylen);

enum dialback_kind {
	DB_RESULT, /* <db:result/>: originating <-> receiving server */
	DB_VERIFY, /* <db:verify/>: receiving <-> authoritative server */
};

enum dialback_type {
	DB_TYPE_REQUEST = 0, /* no type attribute: a key to check */
	DB_TYPE_VALID,
	DB_TYPE_INVALID,
	DB_TYPE_ERROR,
};

/* A parsed dialback element: views into the element's tree (valid while it is). */
struct dialback_elem {
	enum dialback_kind kind;
	enum dialback_type type;
	const char *from, *to, *id; /* id: db:verify only; NULL when absent */
	const char *key;	    /* the key text of a request ("" otherwise) */
	size_t keylen;
	const char *error_cond; /* type='error': the defined condition, or NULL */
};

/* Parses el (a top-level element in jabber:server:dialback). Returns 0, or PE_PROTO when it
 * is not db:result / db:verify, lacks 'from' or 'to', is a db:verify without 'id', carries an
 * unknown type, or is a request without a key. */
int dialback_parse(const struct xs_elem *el, struct dialback_elem *out);

/* Appends a request: <db:result from to>key</db:result>, or <db:verify from to id>key...
 * (id is ignored for DB_RESULT). The caller's stream header binds the db prefix. Values are
 * escaped. Returns 0 or an error from out. */
int dialback_write_request(struct buf *out, enum dialback_kind kind, const char *from,
			   const char *to, const char *id, const char *key);
/* Appends the answer <db:result|db:verify from to [id] type='valid|invalid'/>. */
int dialback_write_answer(struct buf *out, enum dialback_kind kind, const char *from,
			  const char *to, const char *id, bool valid);
/* Appends a dialback error (XEP-0220 §2.4, for peers that announced <errors/>):
 * <db:result from to type='error'><error type='cancel'><COND xmlns=stanzas/></error>... */
int dialback_write_error(struct buf *out, enum dialback_kind kind, const char *from, const char *to,
			 const char *id, const char *cond);

/* The receiving server's checks on a db:result request that arrived on an inbound stream
 * whose header said `stream_from` (lower-case): `to` must be a domain we serve, `from` must
 * be the stream's initiating domain (we do not accept piggybacked domains), that partner
 * must allow dialback under its SASL rule, and TLS must be on where the partner requires it.
 * Returns NULL when the key may be sent to the authoritative server for verification, or the
 * XEP-0220 error condition to answer with: "item-not-found" (unserved to),
 * "not-allowed" (another domain, or dialback not allowed for this partner),
 * "policy-violation" (TLS required but not in use). */
const char *dialback_result_refusal(const struct dialback_elem *e, const char *stream_from,
				    const struct policy *pol, bool tls);

/* Whether our rules for partner p let dialback authenticate a stream (either direction):
 * dialback on, SASL not Required, and TLS in use unless TLS is not Required. */
bool dialback_allowed(const struct partner *p, bool tls);

#endif
