/* Dialback keys and elements. The key binds the receiving domain, the originating domain and
 * the receiving server's stream id to a secret only our edges know, so a key seen on one
 * stream is worthless on any other, and any edge with the secret can vouch for it. */
#include "dialback.h"

#include "err.h"
#include "stanza.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void hex(const unsigned char *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = 0;
}

void dialback_init(struct dialback *db, const void *secret, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	if (!EVP_Digest(secret, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
		abort();
	hex(md, 32, db->hkey);
	OPENSSL_cleanse(md, sizeof md);
}

int dialback_key(const struct dialback *db, const char *receiving, const char *originating,
		 const char *stream_id, char out[DIALBACK_KEY_LEN + 1])
{
	char msg[1024];
	if (!receiving || !originating || !stream_id || !*receiving || !*originating || !*stream_id)
		return PE_INVAL;
	/* The space separates the inputs: a domain holding one would make two input sets give
	 * one key. Domains never do; refuse rather than be ambiguous. */
	if (strchr(receiving, ' ') || strchr(originating, ' '))
		return PE_INVAL;
	int n = snprintf(msg, sizeof msg, "%s %s %s", receiving, originating, stream_id);
	if (n < 0 || (size_t)n >= sizeof msg)
		return PE_INVAL;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	if (!HMAC(EVP_sha256(), db->hkey, 64, (const unsigned char *)msg, (size_t)n, md, &mdlen) ||
	    mdlen != 32)
		abort();
	hex(md, 32, out);
	return 0;
}

bool dialback_key_ok(const struct dialback *db, const char *receiving, const char *originating,
		     const char *stream_id, const char *key, size_t keylen)
{
	char want[DIALBACK_KEY_LEN + 1];
	if (keylen != DIALBACK_KEY_LEN ||
	    dialback_key(db, receiving, originating, stream_id, want) != 0)
		return false;
	/* the hex we send is lower-case; a peer echoes it byte for byte */
	return CRYPTO_memcmp(want, key, DIALBACK_KEY_LEN) == 0;
}

int dialback_parse(const struct xs_elem *el, struct dialback_elem *out)
{
	memset(out, 0, sizeof *out);
	if (strcmp(el->ns.p, XS_NS_DIALBACK) != 0)
		return PE_PROTO;
	if (strcmp(el->name.p, "result") == 0)
		out->kind = DB_RESULT;
	else if (strcmp(el->name.p, "verify") == 0)
		out->kind = DB_VERIFY;
	else
		return PE_PROTO;
	out->from = xs_elem_attr(el, NULL, "from");
	out->to = xs_elem_attr(el, NULL, "to");
	out->id = xs_elem_attr(el, NULL, "id");
	if (!out->from || !out->to || !*out->from || !*out->to)
		return PE_PROTO;
	if (out->kind == DB_VERIFY && (!out->id || !*out->id))
		return PE_PROTO;
	const char *type = xs_elem_attr(el, NULL, "type");
	if (!type)
		out->type = DB_TYPE_REQUEST;
	else if (strcmp(type, "valid") == 0)
		out->type = DB_TYPE_VALID;
	else if (strcmp(type, "invalid") == 0)
		out->type = DB_TYPE_INVALID;
	else if (strcmp(type, "error") == 0)
		out->type = DB_TYPE_ERROR;
	else
		return PE_PROTO;
	out->key = "";
	if (out->type == DB_TYPE_REQUEST) {
		out->key = xs_elem_text(el, &out->keylen);
		/* whitespace around the key is not part of it (pretty-printing peers) */
		while (out->keylen && (*out->key == ' ' || *out->key == '\n' || *out->key == '\t' ||
				       *out->key == '\r')) {
			out->key++;
			out->keylen--;
		}
		while (out->keylen &&
		       (out->key[out->keylen - 1] == ' ' || out->key[out->keylen - 1] == '\n' ||
			out->key[out->keylen - 1] == '\t' || out->key[out->keylen - 1] == '\r'))
			out->keylen--;
		if (!out->keylen)
			return PE_PROTO;
	} else if (out->type == DB_TYPE_ERROR) {
		const struct xs_elem *err = xs_elem_child(el, NULL, "error");
		for (const struct xs_elem *c = err ? xs_elem_first(err) : NULL; c;
		     c = xs_elem_next(c)) {
			if (strcmp(c->ns.p, NS_STANZAS) == 0 && strcmp(c->name.p, "text") != 0) {
				out->error_cond = c->name.p;
				break;
			}
		}
	}
	return 0;
}

static int put(struct buf *out, const char *s)
{
	return buf_append(out, s, strlen(s));
}

static int put_attr(struct buf *out, const char *name, const char *v)
{
	int r;
	if (!v)
		return 0;
	if ((r = put(out, " ")) || (r = put(out, name)) || (r = put(out, "='")))
		return r;
	if ((r = xs_escape(out, v, strlen(v), true)))
		return r;
	return put(out, "'");
}

static int open_tag(struct buf *out, enum dialback_kind kind, const char *from, const char *to,
		    const char *id)
{
	int r;
	if ((r = put(out, kind == DB_RESULT ? "<db:result" : "<db:verify")) ||
	    (r = put_attr(out, "from", from)) || (r = put_attr(out, "to", to)))
		return r;
	return kind == DB_VERIFY ? put_attr(out, "id", id) : 0;
}

/* Writers restore out on failure, so a half-written element never reaches a peer. */
static int finish(struct buf *out, size_t mark, int r)
{
	if (r && out->len > mark)
		out->len = mark;
	return r;
}

int dialback_write_request(struct buf *out, enum dialback_kind kind, const char *from,
			   const char *to, const char *id, const char *key)
{
	size_t mark = out->len;
	int r = open_tag(out, kind, from, to, id);
	if (!r)
		r = put(out, ">");
	if (!r)
		r = xs_escape(out, key, strlen(key), false);
	if (!r)
		r = put(out, kind == DB_RESULT ? "</db:result>" : "</db:verify>");
	return finish(out, mark, r);
}

int dialback_write_answer(struct buf *out, enum dialback_kind kind, const char *from,
			  const char *to, const char *id, bool valid)
{
	size_t mark = out->len;
	int r = open_tag(out, kind, from, to, id);
	if (!r)
		r = put(out, valid ? " type='valid'/>" : " type='invalid'/>");
	return finish(out, mark, r);
}

int dialback_write_error(struct buf *out, enum dialback_kind kind, const char *from, const char *to,
			 const char *id, const char *cond)
{
	size_t mark = out->len;
	int r = open_tag(out, kind, from, to, id);
	if (!r)
		r = put(out, " type='error'><error type='cancel'><");
	if (!r)
		r = put(out, cond);
	if (!r)
		r = put(out, " xmlns='" NS_STANZAS "'/></error>");
	if (!r)
		r = put(out, kind == DB_RESULT ? "</db:result>" : "</db:verify>");
	return finish(out, mark, r);
}

bool dialback_allowed(const struct partner *p, bool tls)
{
	return p && p->dialback && p->sasl != NEG_REQUIRED && (tls || p->tls != NEG_REQUIRED);
}

const char *dialback_result_refusal(const struct dialback_elem *e, const char *stream_from,
				    const struct policy *pol, bool tls)
{
	if (!policy_serves(pol, e->to, strlen(e->to)))
		return "item-not-found";
	/* Domain names compare case-insensitively; stream_from is already lower-case. */
	if (strlen(e->from) != strlen(stream_from) || strcasecmp(e->from, stream_from) != 0)
		return "not-allowed";
	const struct partner *p = policy_partner(pol, e->from, strlen(e->from));
	if (!p || !p->dialback || p->sasl == NEG_REQUIRED)
		return "not-allowed";
	if (!tls && p->tls == NEG_REQUIRED)
		return "policy-violation";
	return NULL;
}
