/* SIP URI <-> JID address mapping (RFC 7247 §6) with XEP-0106 escaping. */
#include "addr.h"

#include "err.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

/*
 * Why things are the way they are:
 *
 * - XEP-0106 escaping runs on nodeprep's mapped form of the user (case folded, NFKC), not
 *   on the raw user, and the nodeprep after it is checked not to have changed what the
 *   escapes mean. Otherwise a full-width backslash (U+FF3C, which NFKC turns into "\")
 *   followed by "27" would become the escape for "'", and a combining mark after an escape
 *   could fold into its last hex digit; in both cases the JID would map back to a
 *   different SIP user. With the check, B2(B1(uri)) always gives back the user (up to
 *   nodeprep's case folding and normalisation), which the fuzz target asserts.
 * - Characters that RFC 3261 allows unescaped in a user ("& ' /" among them) are written
 *   unescaped by B2, as RFC 7247's vectors show (m\26m -> sip:m&m): %26 and '&' are
 *   different URIs to a SIP proxy because '&' is reserved (RFC 3261 §19.1.4).
 * - Raw bytes >= 0x80 in a URI are not RFC 3261 syntax, but some user agents send UTF-8
 *   that way; they are accepted and go through the same UTF-8 and stringprep checks as
 *   percent-encoded ones.
 */

/* The XEP-0106 escapes, in table order. */
static const struct {
	char c;
	char hex[3];
} addr__esc[] = {
    {' ', "20"}, {'"', "22"}, {'&', "26"}, {'\'', "27"}, {'/', "2f"},
    {':', "3a"}, {'<', "3c"}, {'>', "3e"}, {'@', "40"},	 {'\\', "5c"},
};
#define ADDR__NESC (sizeof addr__esc / sizeof addr__esc[0])

static char addr__lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Index of the escape spelled by a, b (case-insensitive if fold), or -1. */
static int addr__code(char a, char b, bool fold)
{
	if (fold)
		a = addr__lower(a), b = addr__lower(b);
	for (size_t i = 0; i < ADDR__NESC; i++)
		if (addr__esc[i].hex[0] == a && addr__esc[i].hex[1] == b)
			return (int)i;
	return -1;
}

/* ---- character classes (RFC 3261 §25.1) ---------------------------------------- */

enum {
	ADDR__ALNUM = 1, /* letters and digits */
	ADDR__MARK = 2,	 /* - _ . ! ~ * ' ( ): with ALNUM, "unreserved" */
	ADDR__USER = 4,	 /* user-unreserved: & = + $ , ; ? / */
	ADDR__PARAM = 8, /* param-unreserved: [ ] / : & + $ */
	ADDR__XEP = 16,	 /* escaped by XEP-0106: space " & ' / : < > @ */
};

/* The classes of ASCII punctuation, so a URI byte costs one lookup. */
static const unsigned char addr__punct[128] = {
    ['-'] = ADDR__MARK,
    ['_'] = ADDR__MARK,
    ['.'] = ADDR__MARK,
    ['!'] = ADDR__MARK,
    ['~'] = ADDR__MARK,
    ['*'] = ADDR__MARK,
    ['\''] = ADDR__MARK | ADDR__XEP,
    ['('] = ADDR__MARK,
    [')'] = ADDR__MARK,
    ['&'] = ADDR__USER | ADDR__PARAM | ADDR__XEP,
    ['='] = ADDR__USER,
    ['+'] = ADDR__USER | ADDR__PARAM,
    ['$'] = ADDR__USER | ADDR__PARAM,
    [','] = ADDR__USER,
    [';'] = ADDR__USER,
    ['?'] = ADDR__USER,
    ['/'] = ADDR__USER | ADDR__PARAM | ADDR__XEP,
    ['['] = ADDR__PARAM,
    [']'] = ADDR__PARAM,
    [':'] = ADDR__PARAM | ADDR__XEP,
    [' '] = ADDR__XEP,
    ['"'] = ADDR__XEP,
    ['<'] = ADDR__XEP,
    ['>'] = ADDR__XEP,
    ['@'] = ADDR__XEP,
};

static unsigned addr__class(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return ADDR__ALNUM;
	return c < 0x80 ? addr__punct[c] : 0;
}

static bool addr__alnum(unsigned char c)
{
	return addr__class(c) & ADDR__ALNUM;
}

/* unreserved / user-unreserved */
static bool addr__userchar(unsigned char c)
{
	return addr__class(c) & (ADDR__ALNUM | ADDR__MARK | ADDR__USER);
}

/* unreserved / param-unreserved */
static bool addr__paramchar(unsigned char c)
{
	return addr__class(c) & (ADDR__ALNUM | ADDR__MARK | ADDR__PARAM);
}

int addr_escape_local(const char *s, size_t len, char *out, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		int k = -1;
		if (c == '\\') {
			if (i + 2 < len && addr__code(s[i + 1], s[i + 2], true) >= 0)
				k = (int)ADDR__NESC - 1;
		} else if (addr__class((unsigned char)c) & ADDR__XEP) {
			for (size_t e = 0; e + 1 < ADDR__NESC; e++)
				if (addr__esc[e].c == c)
					k = (int)e;
		}
		if (k < 0) {
			if (n + 1 >= cap)
				return PE_TOOBIG;
			out[n++] = c;
			continue;
		}
		if (n + 3 >= cap)
			return PE_TOOBIG;
		out[n++] = '\\';
		out[n++] = addr__esc[k].hex[0];
		out[n++] = addr__esc[k].hex[1];
	}
	if (n >= cap)
		return PE_TOOBIG;
	out[n] = '\0';
	return (int)n;
}

int addr_unescape_local(const char *s, size_t len, char *out, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		int k;
		if (c == '\\' && i + 2 < len && (k = addr__code(s[i + 1], s[i + 2], false)) >= 0) {
			c = addr__esc[k].c;
			i += 2;
		}
		if (n + 1 >= cap)
			return PE_TOOBIG;
		out[n++] = c;
	}
	if (n >= cap)
		return PE_TOOBIG;
	out[n] = '\0';
	return (int)n;
}

static int addr__hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = addr__lower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Checks s[0..n) against a character class (plus '%' escapes and bytes >= 0x80) and
 * percent-decodes it into out. Returns the length, PE_PROTO or PE_TOOBIG. */
static int addr__decode(const char *s, size_t n, bool (*allowed)(unsigned char), char *out,
			size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '%') {
			int hi, lo;
			if (i + 2 >= n)
				return PE_PROTO;
			hi = addr__hexval(s[i + 1]);
			lo = addr__hexval(s[i + 2]);
			if (hi < 0 || lo < 0)
				return PE_PROTO;
			c = (unsigned char)(hi << 4 | lo);
			i += 2;
		} else if (c < 0x80 && !allowed(c)) {
			return PE_PROTO;
		}
		if (o + 1 >= cap)
			return PE_TOOBIG;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return (int)o;
}

/* Output with a bound: writes stop at the capacity and set over. */
struct addr__w {
	char *p;
	size_t cap, n;
	bool over;
};

static void addr__put(struct addr__w *w, const char *s, size_t n)
{
	if (w->over || n >= w->cap - w->n) {
		w->over = true;
		return;
	}
	memcpy(w->p + w->n, s, n);
	w->n += n;
}

/* Writes s[0..n), percent-encoding (upper-case hex) every byte keep() refuses. */
static void addr__put_pct(struct addr__w *w, const char *s, size_t n, bool (*keep)(unsigned char))
{
	static const char hex[] = "0123456789ABCDEF";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x80 && keep(c)) {
			addr__put(w, (const char *)&s[i], 1);
		} else {
			char e[3] = {'%', hex[c >> 4], hex[c & 15]};
			addr__put(w, e, 3);
		}
	}
}

/* ---- B1 ------------------------------------------------------------------------- */

/* The parts of a SIP URI we use, as views into it. */
struct addr__uri {
	const char *user, *host, *gr;
	size_t user_n, host_n, gr_n; /* user_n == 0: no user; gr == NULL: no gr value */
};

static bool addr__hostchar(unsigned char c)
{
	return addr__alnum(c) || c == '-' || c == '.' || c == '_' || c >= 0x80;
}

static int addr__split(const char *s, size_t len, struct addr__uri *u)
{
	memset(u, 0, sizeof *u);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
			return PE_PROTO;
	const char *colon = memchr(s, ':', len);
	if (!colon || colon == s)
		return PE_PROTO;
	size_t sl = (size_t)(colon - s);
	if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
		return PE_PROTO;
	for (size_t i = 1; i < sl; i++)
		if (!addr__alnum((unsigned char)s[i]) && !strchr("+-.", s[i]))
			return PE_PROTO;
	if (!((sl == 3 && strncasecmp(s, "sip", 3) == 0) ||
	      (sl == 4 && strncasecmp(s, "pres", 4) == 0) ||
	      (sl == 2 && strncasecmp(s, "im", 2) == 0)))
		return PE_SCHEME;

	/* The first '@' ends the userinfo: the user may hold '?' and ';' (user-unreserved)
	 * while neither parameters nor headers may hold a literal '@'. */
	const char *p = colon + 1, *end = s + len;
	const char *at = memchr(p, '@', (size_t)(end - p));
	const char *q = memchr(at ? at : p, '?', (size_t)(end - (at ? at : p)));
	if (q)
		end = q; /* headers are dropped */
	if (at) {
		const char *pw = memchr(p, ':', (size_t)(at - p));
		u->user = p;
		u->user_n = (size_t)((pw ? pw : at) - p);
		if (u->user_n == 0)
			return PE_PROTO;
		p = at + 1;
	}

	/* host */
	u->host = p;
	if (p < end && *p == '[') {
		const char *rb = memchr(p, ']', (size_t)(end - p));
		if (!rb)
			return PE_PROTO;
		p = rb + 1;
	} else {
		while (p < end && *p != ':' && *p != ';') {
			if (!addr__hostchar((unsigned char)*p))
				return PE_PROTO;
			p++;
		}
	}
	u->host_n = (size_t)(p - u->host);
	if (u->host_n == 0)
		return PE_PROTO;

	/* port */
	if (p < end && *p == ':') {
		unsigned port = 0;
		size_t digits = 0;
		for (p++; p < end && *p >= '0' && *p <= '9'; p++, digits++)
			port = port * 10 + (unsigned)(*p - '0');
		if (digits == 0 || digits > 5 || port > 65535)
			return PE_PROTO;
	}

	/* parameters */
	while (p < end) {
		if (*p != ';')
			return PE_PROTO;
		const char *name = ++p;
		while (p < end && *p != ';' && *p != '=') {
			if (!addr__paramchar((unsigned char)*p) && *p != '%' &&
			    (unsigned char)*p < 0x80)
				return PE_PROTO;
			p++;
		}
		size_t name_n = (size_t)(p - name);
		if (name_n == 0)
			return PE_PROTO;
		const char *val = NULL;
		size_t val_n = 0;
		if (p < end && *p == '=') {
			val = ++p;
			while (p < end && *p != ';') {
				if (!addr__paramchar((unsigned char)*p) && *p != '%' &&
				    (unsigned char)*p < 0x80)
					return PE_PROTO;
				p++;
			}
			val_n = (size_t)(p - val);
		}
		if (name_n == 2 && strncasecmp(name, "gr", 2) == 0 && !u->gr && val_n > 0) {
			u->gr = val;
			u->gr_n = val_n;
		}
	}
	return 0;
}

/* B1 localpart: decoded user -> nodeprep mapping -> XEP-0106 escapes -> nodeprep, into out. */
static int addr__local(const char *user, size_t n, char *out, size_t cap)
{
	char dec[JID_PART_MAX + 1], map[JID_PART_MAX + 1], esc[3 * JID_PART_MAX + 1];
	char back[JID_PART_MAX + 1];
	int dn = addr__decode(user, n, addr__userchar, dec, sizeof dec);
	if (dn < 0)
		return dn;
	if (!jid_utf8_valid(dec, (size_t)dn))
		return PE_PROTO;
	int mn = jid_nodeprep_map(dec, (size_t)dn, map, sizeof map);
	if (mn < 0)
		return mn;
	int en = addr_escape_local(map, (size_t)mn, esc, sizeof esc);
	if (en < 0)
		return en;
	if (en > JID_PART_MAX)
		return PE_TOOBIG;
	if (en >= 3 && (memcmp(esc, "\\20", 3) == 0 || memcmp(esc + en - 3, "\\20", 3) == 0))
		return PE_INVAL;
	int ln = jid_nodeprep(esc, (size_t)en, out, cap);
	if (ln < 0)
		return ln;
	int bn = addr_unescape_local(out, (size_t)ln, back, sizeof back);
	if (bn != mn || memcmp(back, map, (size_t)mn) != 0)
		return PE_INVAL;
	return ln;
}

int addr_sip_to_jid(const char *uri, size_t len, char *out, size_t cap, struct jid *j)
{
	struct addr__uri u;
	struct jid res;
	memset(&res, 0, sizeof res);
	int rc = addr__split(uri, len, &u);
	if (rc < 0)
		return rc;
	if (cap == 0)
		return PE_TOOBIG;

	/* The resource is decoded first so that a malformed gr is PE_PROTO whatever else. */
	char gr[JID_PART_MAX + 1];
	int grn = 0;
	if (u.gr) {
		grn = addr__decode(u.gr, u.gr_n, addr__paramchar, gr, sizeof gr);
		if (grn < 0)
			return grn;
		if (!jid_utf8_valid(gr, (size_t)grn))
			return PE_PROTO;
	}

	size_t pos = 0;
	if (u.user_n) {
		rc = addr__local(u.user, u.user_n, out, cap);
		if (rc < 0)
			return rc;
		res.local = (struct jid_view){out, (size_t)rc};
		pos = (size_t)rc;
		if (pos + 1 >= cap)
			return PE_TOOBIG;
		out[pos++] = '@';
	}
	rc = jid_domainprep(u.host, u.host_n, out + pos, cap - pos);
	if (rc < 0)
		return rc;
	res.domain = (struct jid_view){out + pos, (size_t)rc};
	pos += (size_t)rc;
	if (grn > 0) {
		if (pos + 1 >= cap)
			return PE_TOOBIG;
		out[pos++] = '/';
		rc = jid_resourceprep(gr, (size_t)grn, out + pos, cap - pos);
		if (rc < 0)
			return rc;
		res.resource = (struct jid_view){out + pos, (size_t)rc};
		pos += (size_t)rc;
	}
	if (j)
		*j = res;
	return (int)pos;
}

/* ---- B2, B4 --------------------------------------------------------------------- */

int addr_jid_to_sip(const char *jid, size_t len, unsigned flags, char *out, size_t cap)
{
	char norm[JID_BUF], local[JID_PART_MAX + 1];
	struct jid j;
	int rc = jid_normalize(jid, len, norm, sizeof norm, &j);
	if (rc < 0)
		return rc;
	if (cap == 0)
		return PE_TOOBIG;
	struct addr__w w = {out, cap, 0, false};
	if (flags & ADDR_NAME_ADDR)
		addr__put(&w, "<", 1);
	addr__put(&w, "sip:", 4);
	if (j.local.n) {
		/* Unescaping only shortens, so the localpart always fits. */
		int ln = addr_unescape_local(j.local.p, j.local.n, local, sizeof local);
		if (ln < 0)
			return ln;
		addr__put_pct(&w, local, (size_t)ln, addr__userchar);
		addr__put(&w, "@", 1);
	}
	addr__put(&w, j.domain.p, j.domain.n);
	if (j.resource.n && !(flags & ADDR_NO_GR)) {
		addr__put(&w, ";gr=", 4);
		addr__put_pct(&w, j.resource.p, j.resource.n, addr__paramchar);
	}
	if (flags & ADDR_NAME_ADDR)
		addr__put(&w, ">", 1);
	if (w.over)
		return PE_TOOBIG;
	out[w.n] = '\0';
	return (int)w.n;
}

int addr_sip_from(const char *jid, size_t len, char *out, size_t cap)
{
	return addr_jid_to_sip(jid, len, ADDR_NAME_ADDR, out, cap);
}

int addr_status(int err)
{
	if (err >= 0)
		return 0;
	switch (err) {
	case PE_SCHEME:
		return 416;
	case PE_TOOBIG:
		return 414;
	default:
		return 400;
	}
}
