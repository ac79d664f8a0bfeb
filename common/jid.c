/* JIDs: structure, stringprep profiles with an ASCII fast path, comparison. */
#include "jid.h"

#include "err.h"

#include <arpa/inet.h>
#include <idna.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stringprep.h>

/*
 * Why things are the way they are:
 *
 * - Nearly every JID the gateway sees is ASCII, and libidn's stringprep converts to UCS-4,
 *   normalises and searches tables for about 1 µs a call. For ASCII the profiles reduce to
 *   a few byte rules (checked exhaustively against libidn by the unit tests), so ASCII
 *   input never reaches libidn.
 * - libidn works on NUL-terminated strings: an embedded NUL would silently cut the input
 *   short, so it is refused before the call. Its UTF-8 decoder is also more forgiving than
 *   RFC 3629, hence our own strict check first.
 * - Domains take the form gateway/policy.c compares by (lower-case A-labels, STD3), so a
 *   JID's domain can be looked up in the policy byte for byte.
 * - Unassigned code points are allowed in node- and resourceparts (stringprep flag 0, the
 *   "query" rule), as Prosody does, so we do not refuse what the partner's server accepts.
 */

/* ---- UTF-8 ----------------------------------------------------------------------- */

bool jid_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	while (p < end) {
		unsigned c = *p;
		if (c < 0x80) {
			p++;
			continue;
		}
		size_t n;
		uint32_t cp, min;
		if (c >= 0xc2 && c <= 0xdf)
			n = 1, cp = c & 0x1f, min = 0x80;
		else if (c >= 0xe0 && c <= 0xef)
			n = 2, cp = c & 0x0f, min = 0x800;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 3, cp = c & 0x07, min = 0x10000;
		else
			return false; /* continuation byte, 0xc0/0xc1 or 0xf5.. */
		if ((size_t)(end - p) <= n)
			return false;
		for (size_t i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		p += n + 1;
	}
	return true;
}

static bool jid__ascii(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0x80)
			return false;
	return true;
}

static char jid__lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* ---- libidn ---------------------------------------------------------------------- */

/* Runs a stringprep profile over s[0..len) into out. */
static int jid__stringprep(const char *s, size_t len, const Stringprep_profile *profile, char *out,
			   size_t cap)
{
	if (len > JID_PART_MAX)
		return PE_TOOBIG;
	if (len == 0 || memchr(s, '\0', len) || !jid_utf8_valid(s, len))
		return PE_INVAL;
	char tmp[JID_PART_MAX + 1];
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	int rc = stringprep(tmp, sizeof tmp, 0, profile);
	if (rc == STRINGPREP_TOO_SMALL_BUFFER)
		return PE_TOOBIG;
	if (rc == STRINGPREP_MALLOC_ERROR)
		return PE_NOMEM;
	if (rc != STRINGPREP_OK)
		return PE_INVAL;
	size_t n = strlen(tmp);
	if (n == 0)
		return PE_INVAL;
	if (n >= cap)
		return PE_TOOBIG;
	memcpy(out, tmp, n + 1);
	return (int)n;
}

/* ---- localpart ------------------------------------------------------------------- */

/* Nodeprep's ASCII prohibitions besides controls and space (RFC 3920 Appendix A.5). */
static bool jid__node_forbidden(unsigned char c)
{
	return c <= 0x20 || c == 0x7f || c == '"' || c == '&' || c == '\'' || c == '/' ||
	       c == ':' || c == '<' || c == '>' || c == '@';
}

int jid_nodeprep(const char *s, size_t len, char *out, size_t cap)
{
	if (!jid__ascii(s, len))
		return jid__stringprep(s, len, stringprep_xmpp_nodeprep, out, cap);
	if (len == 0)
		return PE_INVAL;
	if (len > JID_PART_MAX || len >= cap)
		return PE_TOOBIG;
	for (size_t i = 0; i < len; i++) {
		if (jid__node_forbidden((unsigned char)s[i]))
			return PE_INVAL;
		out[i] = jid__lower(s[i]);
	}
	out[len] = '\0';
	return (int)len;
}

int jid_nodeprep_map(const char *s, size_t len, char *out, size_t cap)
{
	if (!jid__ascii(s, len)) {
		/* libidn's nodeprep profile starts with its mapping steps (B.1, B.2, NFKC);
		 * run those alone. */
		Stringprep_profile map[8];
		size_t k = 0;
		for (const Stringprep_profile *t = stringprep_xmpp_nodeprep;
		     k + 1 < sizeof map / sizeof map[0] &&
		     (t->operation == STRINGPREP_MAP_TABLE || t->operation == STRINGPREP_NFKC);
		     t++)
			map[k++] = *t;
		memset(&map[k], 0, sizeof map[k]);
		return jid__stringprep(s, len, map, out, cap);
	}
	if (len == 0)
		return PE_INVAL;
	if (len > JID_PART_MAX || len >= cap)
		return PE_TOOBIG;
	for (size_t i = 0; i < len; i++)
		out[i] = jid__lower(s[i]);
	out[len] = '\0';
	return (int)len;
}

/* ---- resourcepart ---------------------------------------------------------------- */

int jid_resourceprep(const char *s, size_t len, char *out, size_t cap)
{
	if (!jid__ascii(s, len))
		return jid__stringprep(s, len, stringprep_xmpp_resourceprep, out, cap);
	if (len == 0)
		return PE_INVAL;
	if (len > JID_PART_MAX || len >= cap)
		return PE_TOOBIG;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return PE_INVAL;
	memcpy(out, s, len);
	out[len] = '\0';
	return (int)len;
}

/* ---- domainpart ------------------------------------------------------------------ */

/* Lower-cases s[0..len) into out (cap > len checked by the caller) and checks STD3 LDH
 * labels. */
static int jid__ldh(const char *s, size_t len, char *out)
{
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && s[i] != '.') {
			char c = jid__lower(s[i]);
			if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
				return PE_INVAL;
			out[i] = c;
			continue;
		}
		size_t ll = i - start;
		if (ll == 0 || ll > 63 || s[start] == '-' || s[i - 1] == '-')
			return PE_INVAL;
		if (i < len)
			out[i] = '.';
		start = i + 1;
	}
	out[len] = '\0';
	return (int)len;
}

/* "[v6]" to "[canonical v6]". */
static int jid__ip_literal(const char *s, size_t len, char *out, size_t cap)
{
	char in[INET6_ADDRSTRLEN], txt[INET6_ADDRSTRLEN];
	struct in6_addr a;
	if (len < 4 || s[len - 1] != ']' || len - 2 >= sizeof in)
		return PE_INVAL;
	memcpy(in, s + 1, len - 2);
	in[len - 2] = '\0';
	if (memchr(in, '\0', len - 2) || inet_pton(AF_INET6, in, &a) != 1 ||
	    !inet_ntop(AF_INET6, &a, txt, sizeof txt))
		return PE_INVAL;
	size_t n = strlen(txt) + 2;
	if (n >= cap)
		return PE_TOOBIG;
	out[0] = '[';
	memcpy(out + 1, txt, n - 2);
	out[n - 1] = ']';
	out[n] = '\0';
	return (int)n;
}

int jid_domainprep(const char *s, size_t len, char *out, size_t cap)
{
	if (len > JID_PART_MAX)
		return PE_TOOBIG;
	if (len > 1 && s[len - 1] == '.')
		len--;
	if (len == 0)
		return PE_INVAL;
	if (s[0] == '[')
		return jid__ip_literal(s, len, out, cap);
	if (jid__ascii(s, len)) {
		if (len >= cap)
			return PE_TOOBIG;
		return jid__ldh(s, len, out);
	}
	if (memchr(s, '\0', len) || !jid_utf8_valid(s, len))
		return PE_INVAL;
	char tmp[JID_PART_MAX + 1];
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	char *a = NULL;
	int rc = idna_to_ascii_8z(tmp, &a, IDNA_USE_STD3_ASCII_RULES);
	if (rc == IDNA_MALLOC_ERROR)
		return PE_NOMEM;
	if (rc != IDNA_SUCCESS) {
		free(a);
		return PE_INVAL;
	}
	size_t n = strlen(a);
	/* A trailing ideographic full stop comes back as a dot. */
	if (n > 1 && a[n - 1] == '.')
		n--;
	int ret;
	if (n > JID_PART_MAX || n >= cap)
		ret = PE_TOOBIG;
	else
		ret = jid__ldh(a, n, out);
	free(a);
	return ret;
}

/* ---- whole JIDs ------------------------------------------------------------------ */

int jid_parse(const char *s, size_t len, struct jid *j)
{
	memset(j, 0, sizeof *j);
	if (len == 0 || memchr(s, '\0', len))
		return PE_INVAL;
	const char *slash = memchr(s, '/', len);
	size_t pre = slash ? (size_t)(slash - s) : len;
	const char *at = memchr(s, '@', pre);
	const char *d = s;
	if (at) {
		if (at == s)
			return PE_INVAL;
		j->local = (struct jid_view){s, (size_t)(at - s)};
		d = at + 1;
	}
	j->domain = (struct jid_view){d, pre - (size_t)(d - s)};
	if (j->domain.n == 0)
		return PE_INVAL;
	if (slash) {
		j->resource = (struct jid_view){slash + 1, len - pre - 1};
		if (j->resource.n == 0)
			return PE_INVAL;
	}
	if (j->local.n > JID_PART_MAX || j->domain.n > JID_PART_MAX || j->resource.n > JID_PART_MAX)
		return PE_TOOBIG;
	return 0;
}

int jid_normalize(const char *s, size_t len, char *out, size_t cap, struct jid *j)
{
	struct jid in, res;
	memset(&res, 0, sizeof res);
	int rc = jid_parse(s, len, &in);
	if (rc < 0)
		return rc;
	size_t pos = 0;
	if (in.local.n) {
		rc = jid_nodeprep(in.local.p, in.local.n, out, cap);
		if (rc < 0)
			return rc;
		res.local = (struct jid_view){out, (size_t)rc};
		pos = (size_t)rc;
		if (pos + 1 >= cap)
			return PE_TOOBIG;
		out[pos++] = '@';
	}
	rc = jid_domainprep(in.domain.p, in.domain.n, out + pos, cap - pos);
	if (rc < 0)
		return rc;
	res.domain = (struct jid_view){out + pos, (size_t)rc};
	pos += (size_t)rc;
	if (in.resource.n) {
		if (pos + 1 >= cap)
			return PE_TOOBIG;
		out[pos++] = '/';
		rc = jid_resourceprep(in.resource.p, in.resource.n, out + pos, cap - pos);
		if (rc < 0)
			return rc;
		res.resource = (struct jid_view){out + pos, (size_t)rc};
		pos += (size_t)rc;
	}
	if (j)
		*j = res;
	return (int)pos;
}

int jid_compare(const char *a, size_t alen, const char *b, size_t blen, unsigned flags, int *cmp)
{
	char na[JID_BUF], nb[JID_BUF];
	struct jid ja, jb;
	int la = jid_normalize(a, alen, na, sizeof na, &ja);
	if (la < 0)
		return la;
	int lb = jid_normalize(b, blen, nb, sizeof nb, &jb);
	if (lb < 0)
		return lb;
	size_t ma = (size_t)la, mb = (size_t)lb;
	if (flags & JID_CMP_BARE) {
		ma = (size_t)(ja.domain.p + ja.domain.n - na);
		mb = (size_t)(jb.domain.p + jb.domain.n - nb);
	}
	int c = memcmp(na, nb, ma < mb ? ma : mb);
	*cmp = c != 0 ? c : ma < mb ? -1 : ma > mb ? 1 : 0;
	return 0;
}

bool jid_equal(const char *a, size_t alen, const char *b, size_t blen)
{
	int cmp;
	return jid_compare(a, alen, b, blen, 0, &cmp) == 0 && cmp == 0;
}

int jid_normalize_bare(const char *jid, char *out, size_t cap)
{
	struct jid j;
	if (!jid)
		return PE_INVAL;
	int r = jid_normalize(jid, strlen(jid), out, cap, &j);
	if (r < 0)
		return r;
	out[(size_t)(j.domain.p + j.domain.n - out)] = 0;
	return 0;
}
