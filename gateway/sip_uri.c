/* SIP URI splitting. Views only, so server location and the translator can look at a
 * Request-URI without allocating; the grammar is RFC 3261 §19.1 minus validation of
 * the user part, which the translator checks with its own rules (RFC 7247 §6). */
#include "sip_uri.h"

#include "err.h"

#include <string.h>
#include <strings.h>

bool sip_view_eq(struct sip_view v, const char *s)
{
	size_t n = strlen(s);
	return v.n == n && (n == 0 || strncasecmp(v.p, s, n) == 0);
}

char *sip_view_cpy(char *dst, size_t cap, struct sip_view v)
{
	if (cap == 0)
		return dst;
	size_t n = v.n < cap - 1 ? v.n : cap - 1;
	if (n)
		memcpy(dst, v.p, n);
	dst[n] = '\0';
	return dst;
}

static const char *find_char(const char *p, const char *end, char c)
{
	const char *r = memchr(p, c, (size_t)(end - p));
	return r ? r : end;
}

int sip_uri_parse(const char *s, size_t len, struct sip_uri *u)
{
	memset(u, 0, sizeof *u);
	if (len >= 2 && s[0] == '<' && s[len - 1] == '>') {
		s++;
		len -= 2;
	}
	const char *p = s, *end = s + len;
	for (const char *q = s; q < end; q++)
		if ((unsigned char)*q <= 0x20 || *q == 0x7f)
			return PE_PROTO;

	const char *colon = find_char(p, end, ':');
	if (colon == end || colon == p)
		return PE_PROTO;
	for (const char *q = p; q < colon; q++) {
		char c = *q;
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			 (q > p && ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'));
		if (!ok)
			return PE_PROTO;
	}
	u->scheme = (struct sip_view){p, (size_t)(colon - p)};
	u->opaque = (struct sip_view){colon + 1, (size_t)(end - colon - 1)};
	u->sips = sip_view_eq(u->scheme, "sips");
	u->sip = u->sips || sip_view_eq(u->scheme, "sip");
	if (!u->sip)
		return u->opaque.n ? 0 : PE_PROTO;

	p = colon + 1;
	/* Headers first: '?' cannot occur earlier in a valid SIP URI. */
	const char *qm = find_char(p, end, '?');
	if (qm < end)
		u->headers = (struct sip_view){qm + 1, (size_t)(end - qm - 1)};
	const char *hostend = qm;
	/* userinfo ends at the last '@' before parameters; '@' is not allowed unescaped
	 * in the user part but tolerate it in a password by taking the last one. */
	const char *at = NULL;
	for (const char *q = p; q < hostend; q++) {
		if (*q == '@')
			at = q;
	}
	if (at) {
		const char *uc = find_char(p, at, ':');
		u->user = (struct sip_view){p, (size_t)(uc - p)};
		if (u->user.n == 0)
			return PE_PROTO;
		p = at + 1;
	}
	const char *semi;
	if (p < hostend && *p == '[') {
		const char *rb = find_char(p, hostend, ']');
		if (rb == hostend || rb == p + 1)
			return PE_PROTO;
		u->host = (struct sip_view){p + 1, (size_t)(rb - p - 1)};
		u->ipv6 = true;
		for (const char *q = p + 1; q < rb; q++) {
			char c = *q;
			if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
			      (c >= 'A' && c <= 'F') || c == ':' || c == '.'))
				return PE_PROTO;
		}
		p = rb + 1;
		semi = find_char(p, hostend, ';');
		if (p < semi && *p != ':')
			return PE_PROTO;
	} else {
		semi = find_char(p, hostend, ';');
		const char *pc = find_char(p, semi, ':');
		u->host = (struct sip_view){p, (size_t)(pc - p)};
		if (u->host.n == 0)
			return PE_PROTO;
		for (const char *q = p; q < pc; q++) {
			char c = *q;
			if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
			      (c >= 'A' && c <= 'Z') || c == '-' || c == '.' || c == '_'))
				return PE_PROTO;
		}
		p = pc;
	}
	if (p < semi && *p == ':') {
		p++;
		if (p == semi)
			return PE_PROTO;
		long port = 0;
		for (; p < semi; p++) {
			if (*p < '0' || *p > '9')
				return PE_PROTO;
			port = port * 10 + (*p - '0');
			if (port > 65535)
				return PE_PROTO;
		}
		if (port == 0)
			return PE_PROTO;
		u->port = (int)port;
	}
	if (semi < hostend)
		u->params = (struct sip_view){semi + 1, (size_t)(hostend - semi - 1)};
	return 0;
}

bool sip_uri_param(const struct sip_uri *u, const char *name, struct sip_view *val)
{
	if (!u->params.n)
		return false;
	const char *p = u->params.p, *end = u->params.p + u->params.n;
	while (p < end) {
		const char *semi = find_char(p, end, ';');
		const char *eq = find_char(p, semi, '=');
		struct sip_view n = {p, (size_t)(eq - p)};
		if (sip_view_eq(n, name)) {
			if (val)
				*val = eq < semi
					   ? (struct sip_view){eq + 1, (size_t)(semi - eq - 1)}
					   : (struct sip_view){semi, 0};
			return true;
		}
		p = semi + 1;
	}
	return false;
}
