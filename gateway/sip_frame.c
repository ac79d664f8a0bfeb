/* SIP stream framing. osip parses only complete messages, so on TCP/TLS we find the
 * boundary ourselves: the empty line, then Content-Length bytes (RFC 3261 §18.3 makes
 * Content-Length mandatory on streams). The scan resumes where it stopped so a header
 * block trickling in costs linear time, and every bound is checked before waiting. */
#include "sip_frame.h"

#include "err.h"

#include <string.h>
#include <strings.h>

static int is_ws(uint8_t c)
{
	return c == ' ' || c == '\t';
}

/* Finds Content-Length in the header block h[0..hlen) (which ends with the empty
 * line). Returns 0 with *cl set, or PE_PROTO / PE_TOOBIG. */
static int find_content_length(const uint8_t *h, size_t hlen, size_t max_body, size_t *cl)
{
	const uint8_t *p, *end = h + hlen - 2; /* stop before the final CRLF */
	const uint8_t *nl = memchr(h, '\n', hlen);
	int found = 0;
	size_t value = 0;

	if (!nl)
		return PE_PROTO;
	p = nl + 1;
	while (p < end) {
		/* one logical header: up to a CRLF not followed by white space */
		const uint8_t *ls = p, *le = p;
		for (;;) {
			const uint8_t *q = memchr(le, '\n', (size_t)(end + 2 - le));
			if (!q)
				return PE_PROTO;
			le = q + 1;
			if (le < end && is_ws(*le))
				continue;
			break;
		}
		p = le;
		/* only a line starting like Content-Length or its compact "l" can be one */
		if ((ls[0] | 0x20) != 'c' && (ls[0] | 0x20) != 'l')
			continue;
		const uint8_t *colon = memchr(ls, ':', (size_t)(le - ls));
		if (!colon)
			continue; /* not our business: the parser will reject it */
		size_t nlen = (size_t)(colon - ls);
		while (nlen && is_ws(ls[nlen - 1]))
			nlen--;
		if (!((nlen == 14 && strncasecmp((const char *)ls, "content-length", 14) == 0) ||
		      (nlen == 1 && (ls[0] == 'l' || ls[0] == 'L'))))
			continue;
		const uint8_t *v = colon + 1;
		while (v < le && (is_ws(*v) || *v == '\r' || *v == '\n'))
			v++;
		size_t x = 0, digits = 0;
		while (v < le && *v >= '0' && *v <= '9') {
			if (x > (max_body + 9) / 10 + 1) {
				/* keep consuming digits to tell "too big" from "garbage" */
				x = max_body + 1;
			} else {
				x = x * 10 + (size_t)(*v - '0');
			}
			v++;
			digits++;
		}
		while (v < le && (is_ws(*v) || *v == '\r' || *v == '\n'))
			v++;
		if (digits == 0 || v != le)
			return PE_PROTO;
		if (found && x != value)
			return PE_PROTO;
		found = 1;
		value = x;
	}
	if (!found)
		return PE_PROTO;
	if (value > max_body)
		return PE_TOOBIG;
	*cl = value;
	return 0;
}

static int is_tchar(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       (c && strchr("-.!%*_+`'~", c));
}

/* The first "\r\n\r\n" in p[0..n), or NULL: memchr from LF to LF (a header block has
 * one every few dozen bytes) instead of memmem's byte-wise search. */
static const uint8_t *find_end(const uint8_t *p, size_t n)
{
	const uint8_t *e = p + n, *q = p;
	if (n < 4)
		return NULL;
	/* the pattern's first LF is at its start + 1; LFs come in order, so the first match
	 * found is the first pattern */
	while ((q = memchr(q, '\n', (size_t)(e - q))) != NULL) {
		if (q > p && e - q >= 3 && q[-1] == '\r' && q[1] == '\r' && q[2] == '\n')
			return q - 1;
		q++;
	}
	return NULL;
}

int sip_frame_scan(const uint8_t *buf, size_t len, const struct sip_frame_limits *lim,
		   struct sip_frame_state *st, unsigned flags, struct sip_frame *f)
{
	const uint8_t *e;
	size_t from, hlen, cl;
	int r;

	memset(f, 0, sizeof *f);
	if (len == 0)
		return PE_NEEDMORE;
	if (buf[0] == '\r' || buf[0] == '\n') {
		/* keep-alives: "\r\n\r\n" ping, "\r\n" pong, or a stray CRLF */
		if (buf[0] != '\r')
			return PE_PROTO;
		if (len < 2)
			return PE_NEEDMORE;
		if (buf[1] != '\n')
			return PE_PROTO;
		if (len >= 4 && buf[2] == '\r' && buf[3] == '\n') {
			f->kind = SIP_FRAME_PING;
			f->len = 4;
			return 4;
		}
		if (flags & SIP_FRAME_EXPECT_PONG) {
			f->kind = SIP_FRAME_PONG;
			f->len = 2;
			return 2;
		}
		if (len == 2 || (len == 3 && buf[2] == '\r'))
			return PE_NEEDMORE; /* may still become a ping */
		f->kind = SIP_FRAME_CRLF;
		f->len = 2;
		return 2;
	}
	if (!is_tchar(buf[0]))
		return PE_PROTO;

	from = st->scanned;
	if (from > len)
		from = 0;
	e = find_end(buf + from, len - from);
	if (!e) {
		/* a terminator not in buf[0..len) ends at len + 1 or later */
		if (len >= lim->max_header)
			return PE_TOOBIG;
		st->scanned = len > 3 ? len - 3 : 0;
		return PE_NEEDMORE;
	}
	hlen = (size_t)(e - buf) + 4;
	st->scanned = (size_t)(e - buf); /* found: the next call finds it at once */
	f->header_len = hlen;
	if (hlen > lim->max_header)
		return PE_TOOBIG;
	r = find_content_length(buf, hlen, lim->max_body, &cl);
	if (r)
		return r;
	f->body_len = cl;
	if (len - hlen < cl)
		return PE_NEEDMORE;
	f->kind = SIP_FRAME_MESSAGE;
	f->len = hlen + cl;
	return (int)f->len;
}
