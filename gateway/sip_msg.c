/* SIP messages on top of libosip2's parser. osip parses the header block only: we cut
 * the body off ourselves (osip re-encodes multipart bodies and rejects a Content-Type
 * without a body), keep Content-Type out of its hands, and serialise the body
 * ourselves. Strings handed out are cached in the message so callers never free. */
#include "sip_msg.h"

#include "err.h"
#include "log.h"

#include <osipparser2/osip_parser.h>

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* Cached strings, one slot each; generic list headers go to the extra list. */
enum smc { SMC_RURI, SMC_FROM_URI, SMC_TO_URI, SMC_CALL_ID, SMC_CONTACT, SMC__N };

struct sm_str {
	struct sm_str *next;
	char s[];
};

/* What a response needs for transaction matching, read without osip. */
struct fast {
	int status;
	char *reason;
	char branch[96]; /* top Via branch, "" if none */
	uint32_t cseq;
	char cseq_method[32]; /* "" if no usable CSeq */
	bool has_from, has_to, has_call_id;
	/* A response we built (sip_msg_new_response): its To tag, "" if unknown or none, so
	 * sip_msg_to_tag needs no osip parse on the send path. */
	char to_tag[64];
};

/* A header line in a received header block: its kind (enum hk), where its value starts
 * (just after the colon) and where the line ends (after its CR LF), as offsets. */
struct hline {
	uint8_t kind;
	uint32_t v, end;
};
#define HLINES 16

struct sip_msg {
	osip_message_t *om; /* NULL while a lazy response is not parsed yet */
	char *lazy;	    /* the header block osip will parse on first need */
	size_t lazy_len;
	struct fast *fast;
	char *ctype;   /* Content-Type value; osip never sees it */
	uint8_t *body; /* body_len bytes: in blk for a received message, else malloc'd */
	size_t body_len;
	/* A received request: its header block as received (Content-Type and -Length
	 * included) then its body, one allocation. Responses are built from the header
	 * text while raw_ok, i.e. no builder changed the osip view since the parse
	 * (sip_msg_via_set_received is recorded in rcv / rport instead). */
	uint8_t *blk;
	size_t raw_len;
	bool raw_ok;
	bool body_in_blk;
	char rcv[48]; /* "received" set on the top Via, "" if none */
	int rport;    /* "rport" value set on the top Via, 0 if none */
	/* A received message: the first Contact header's value in blk as received
	 * (blk offsets, CR LF included) and how many Contact headers there are, so a
	 * dialog can tell an unchanged Contact without osip (sip_msg_contact_text). */
	size_t contact[2];
	int ncontact;
	/* The header lines responses copy (Via, From, To, Call-ID, CSeq, Record-Route) as
	 * scan_head found them, in order, so build_response need not walk the text again;
	 * nlines < 0: more than HLINES, walk it. */
	struct hline lines[HLINES];
	int nlines;
	/* Looked up once while the osip view is as parsed (see seen_ok): the tags and the
	 * top Via branch are asked for many times per request. SEEN_* bits say which. */
	unsigned seen;
	const char *seen_from_tag, *seen_to_tag, *seen_branch;
	char *cache[SMC__N];
	struct sm_str *strs; /* per-message arena for other returned strings */
	bool local;
};

static const char *const proto_names[] = {
#define SIP__PROTO_STR(name, str) str,
    SIP_PROTO_MAP(SIP__PROTO_STR)
#undef SIP__PROTO_STR
};

const char *sip_proto_name(enum sip_proto p)
{
	return (unsigned)p < SIP_PROTO__N ? proto_names[p] : "?";
}

int sip_proto_parse(const char *s, size_t n, enum sip_proto *out)
{
	for (unsigned i = 0; i < SIP_PROTO__N; i++) {
		if (strlen(proto_names[i]) == n && strncasecmp(s, proto_names[i], n) == 0) {
			*out = (enum sip_proto)i;
			return 0;
		}
	}
	return PE_INVAL;
}

/* ---------------------------------------------------------------------------------- */

static void on_osip_trace(const char *fi, int li, osip_trace_level_t level, const char *chfr,
			  va_list ap) __attribute__((format(printf, 4, 0)));
static void on_osip_trace(const char *fi, int li, osip_trace_level_t level, const char *chfr,
			  va_list ap)
{
	char text[512], esc[600];
	int n;

	if (!log_enabled(LL_DEBUG))
		return;
	n = vsnprintf(text, sizeof text, chfr, ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof text)
		n = sizeof text - 1;
	while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
		n--;
	log_escape(esc, sizeof esc, text, (size_t)n);
	log_debug(0, "osip_trace", "file=%s line=%d level=%d msg=\"%s\"", fi ? fi : "?", li,
		  (int)level, esc);
}

void sip_msg_global_init(void)
{
	static bool done;
	if (done)
		return;
	done = true;
	parser_init();
	/* Levels below OSIP_INFO1: fatal, bug, error, warning. */
	osip_trace_initialize_func(OSIP_INFO1, on_osip_trace);
}

/* ---------------------------------------------------------------------------------- */

static struct sip_msg *msg_alloc(void)
{
	struct sip_msg *m = calloc(1, sizeof *m);
	if (!m)
		return NULL;
	if (osip_message_init(&m->om) != 0) {
		free(m);
		return NULL;
	}
	return m;
}

static void cache_clear(struct sip_msg *m)
{
	for (int i = 0; i < SMC__N; i++) {
		free(m->cache[i]);
		m->cache[i] = NULL;
	}
	while (m->strs) {
		struct sm_str *n = m->strs->next;
		free(m->strs);
		m->strs = n;
	}
}

/* Frees the body unless it lives in the received block. */
static void body_release(struct sip_msg *m)
{
	if (!m->body_in_blk)
		free(m->body);
	m->body_in_blk = false;
	m->body = NULL;
	m->body_len = 0;
}

void sip_msg_free(struct sip_msg *m)
{
	if (!m)
		return;
	cache_clear(m);
	if (m->om)
		osip_message_free(m->om);
	free(m->lazy);
	if (m->fast)
		free(m->fast->reason);
	free(m->fast);
	free(m->ctype);
	body_release(m);
	free(m->blk);
	free(m);
}

/* Keeps an osip-allocated string in the arena (osip allocates with malloc: we never
 * install custom osip allocators). Frees s. */
static const char *arena_keep(struct sip_msg *m, char *s)
{
	if (!s)
		return NULL;
	size_t n = strlen(s);
	struct sm_str *e = malloc(sizeof *e + n + 1);
	if (!e) {
		osip_free(s);
		return NULL;
	}
	memcpy(e->s, s, n + 1);
	osip_free(s);
	e->next = m->strs;
	m->strs = e;
	return e->s;
}

static bool is_ws(char c)
{
	return c == ' ' || c == '\t';
}

/* Compact header forms (RFC 3261 §7.3.3 and the registry). */
static const char *long_name(const char *name, size_t n)
{
	static const struct {
		char c;
		const char *name;
	} compact[] = {
	    {'a', "accept-contact"},
	    {'b', "referred-by"},
	    {'c', "content-type"},
	    {'d', "request-disposition"},
	    {'e', "content-encoding"},
	    {'f', "from"},
	    {'i', "call-id"},
	    {'j', "reject-contact"},
	    {'k', "supported"},
	    {'l', "content-length"},
	    {'m', "contact"},
	    {'o', "event"},
	    {'r', "refer-to"},
	    {'s', "subject"},
	    {'t', "to"},
	    {'u', "allow-events"},
	    {'v', "via"},
	    {'x', "session-expires"},
	    {'y', "identity"},
	};
	if (n != 1)
		return NULL;
	for (size_t i = 0; i < sizeof compact / sizeof compact[0]; i++)
		if (tolower((unsigned char)name[0]) == compact[i].c)
			return compact[i].name;
	return NULL;
}

/* True if header name name[0..n) is canonical (long, lowercase) name lname. */
static bool hname_is(const char *name, size_t n, const char *lname)
{
	const char *l = long_name(name, n);
	if (l)
		return strcmp(l, lname) == 0;
	return strlen(lname) == n && strncasecmp(name, lname, n) == 0;
}

/* The headers the hot paths look for, by name (compact forms included): one switch on
 * the length instead of a hname_is per candidate. */
enum hk { HK_OTHER, HK_VIA, HK_FROM, HK_TO, HK_CALL_ID, HK_CSEQ, HK_RR, HK_CT, HK_CL, HK_CONTACT };

/* True if name[1..n) equals rest[0..n-1) case-insensitively (the first letter is known). */
static bool rest_is(const char *name, size_t n, const char *rest)
{
	return strncasecmp(name + 1, rest, n - 1) == 0;
}

static enum hk hkind(const char *name, size_t n)
{
	/* the first letter picks the one candidate of that length: at most one strncasecmp
	 * per header (most headers are none of these) */
	int c = tolower((unsigned char)name[0]);
	switch (n) {
	case 1:
		switch (c) {
		case 'v':
			return HK_VIA;
		case 'f':
			return HK_FROM;
		case 't':
			return HK_TO;
		case 'i':
			return HK_CALL_ID;
		case 'c':
			return HK_CT;
		case 'l':
			return HK_CL;
		case 'm':
			return HK_CONTACT;
		default:
			return HK_OTHER;
		}
	case 2:
		return c == 't' && rest_is(name, n, "o") ? HK_TO : HK_OTHER;
	case 3:
		return c == 'v' && rest_is(name, n, "ia") ? HK_VIA : HK_OTHER;
	case 4:
		return c == 'f' && rest_is(name, n, "rom")   ? HK_FROM
		       : c == 'c' && rest_is(name, n, "seq") ? HK_CSEQ
							     : HK_OTHER;
	case 7:
		return c == 'c' && rest_is(name, n, "all-id")	? HK_CALL_ID
		       : c == 'c' && rest_is(name, n, "ontact") ? HK_CONTACT
								: HK_OTHER;
	case 12:
		return c == 'c' && rest_is(name, n, "ontent-type")   ? HK_CT
		       : c == 'r' && rest_is(name, n, "ecord-route") ? HK_RR
								     : HK_OTHER;
	case 14:
		return c == 'c' && rest_is(name, n, "ontent-length") ? HK_CL : HK_OTHER;
	default:
		return HK_OTHER;
	}
}

static int parse_uint(const char *p, size_t n, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;
	if (n == 0)
		return PE_PROTO;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return PE_PROTO;
		v = v * 10 + (unsigned long)(p[i] - '0');
		if (v > max)
			return PE_PROTO;
	}
	*out = v;
	return 0;
}

/* One pass over the header block: finds Content-Type (which is cut out before osip
 * sees the block) and Content-Length, and rejects bytes no header may contain. */
#define HEAD_CUTS 8
struct head_scan {
	size_t cut[HEAD_CUTS][2]; /* Content-Type/-Length lines, CRLFs included */
	int ncut;
	char *ct_value;		    /* unfolded value, malloc'd */
	long clen;		    /* -1 = absent */
	size_t via[2], cseq[2];	    /* first Via and CSeq values (0,0 = absent) */
	size_t contact[2];	    /* first Contact value, as via */
	int ncontact;		    /* Contact headers */
	struct hline lines[HLINES]; /* as in struct sip_msg */
	int nlines;
	bool from, to, call_id;
};

static int scan_head(const char *h, size_t hlen, bool head_only, struct head_scan *hs)
{
	size_t pos, line_end;
	const char *nl;

	hs->ncut = 0;
	hs->ct_value = NULL;
	hs->clen = -1;
	hs->via[0] = hs->via[1] = hs->cseq[0] = hs->cseq[1] = 0;
	hs->contact[0] = hs->contact[1] = 0;
	hs->ncontact = 0;
	hs->nlines = hlen <= UINT32_MAX ? 0 : -1;
	hs->from = hs->to = hs->call_id = false;
	/* Lines end with CRLF and nothing else: a bare CR or LF would let osip see the
	 * header block end somewhere else than we do. */
	for (size_t i = 0; i < hlen; i++) {
		if (hlen - i >= 8) {
			/* eight bytes at a time: the mask flags bytes below 0x20 (CR, LF and tab
			 * included) and 0x7f; a word with none needs none of the checks below.
			 * Borrows can only flag bytes after a true one, so the lowest flag is
			 * the first byte to look at. */
			uint64_t w, x, mk;
			memcpy(&w, h + i, 8);
			x = w ^ 0x7f7f7f7f7f7f7f7fULL;
			mk = (((w - 0x2020202020202020ULL) & ~w) |
			      ((x - 0x0101010101010101ULL) & ~x)) &
			     0x8080808080808080ULL;
			if (!mk) {
				i += 7;
				continue;
			}
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
			i += (size_t)__builtin_ctzll(mk) / 8;
#endif
		}
		unsigned char c = (unsigned char)h[i];
		if ((c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f)
			return PE_PROTO;
		if (c == '\r' && (i + 1 == hlen || h[i + 1] != '\n'))
			return PE_PROTO;
		if (c == '\n' && (i == 0 || h[i - 1] != '\r'))
			return PE_PROTO;
	}
	nl = memchr(h, '\n', hlen);
	if (!nl)
		return PE_PROTO;
	pos = (size_t)(nl - h) + 1;
	while (pos < hlen) {
		size_t start = pos;
		if (h[pos] == '\r' || h[pos] == '\n')
			break; /* the empty line */
		if (is_ws(h[pos]))
			return PE_PROTO; /* continuation without a header */
		/* extent of this header: its line plus continuation lines */
		line_end = pos;
		for (;;) {
			nl = memchr(h + line_end, '\n', hlen - line_end);
			if (!nl)
				return PE_PROTO;
			line_end = (size_t)(nl - h) + 1;
			if (line_end < hlen && is_ws(h[line_end]))
				continue;
			break;
		}
		const char *colon = memchr(h + start, ':', line_end - start);
		if (!colon)
			return PE_PROTO;
		size_t nlen = (size_t)(colon - h) - start;
		while (nlen && is_ws(h[start + nlen - 1]))
			nlen--;
		if (nlen == 0)
			return PE_PROTO;
		enum hk k = hkind(h + start, nlen);
		size_t vstart = (size_t)(colon - h) + 1;
		if (k >= HK_VIA && k <= HK_RR && hs->nlines >= 0) {
			if (hs->nlines == HLINES) {
				hs->nlines = -1;
			} else {
				hs->lines[hs->nlines].kind = (uint8_t)k;
				hs->lines[hs->nlines].v = (uint32_t)vstart;
				hs->lines[hs->nlines].end = (uint32_t)line_end;
				hs->nlines++;
			}
		}
		if (!hs->via[1] && k == HK_VIA) {
			hs->via[0] = vstart;
			hs->via[1] = line_end;
		} else if (!hs->cseq[1] && k == HK_CSEQ) {
			hs->cseq[0] = vstart;
			hs->cseq[1] = line_end;
		} else if (k == HK_FROM) {
			hs->from = true;
		} else if (k == HK_TO) {
			hs->to = true;
		} else if (k == HK_CALL_ID) {
			hs->call_id = true;
		} else if (k == HK_CONTACT && hs->ncontact++ == 0) {
			hs->contact[0] = vstart;
			hs->contact[1] = line_end;
		}
		bool is_ct = k == HK_CT;
		bool is_cl = k == HK_CL;
		if (is_ct || is_cl) {
			if (hs->ncut == HEAD_CUTS)
				return PE_PROTO;
			hs->cut[hs->ncut][0] = start;
			hs->cut[hs->ncut][1] = line_end;
			hs->ncut++;
			/* unfold the value: CR/LF become nothing, runs of white space one space */
			char val[1024];
			size_t vn = 0;
			const char *v = colon + 1, *vend = h + line_end;
			bool sp = false;
			for (; v < vend; v++) {
				if (*v == '\r' || *v == '\n' || is_ws(*v)) {
					sp = vn > 0;
					continue;
				}
				if (sp) {
					if (vn + 1 >= sizeof val)
						return PE_PROTO;
					val[vn++] = ' ';
					sp = false;
				}
				if (vn + 1 >= sizeof val)
					return PE_PROTO;
				val[vn++] = *v;
			}
			val[vn] = '\0';
			if (is_ct) {
				if (hs->ct_value)
					return PE_PROTO; /* two Content-Types */
				if (vn == 0)
					return PE_PROTO;
				hs->ct_value = strdup(val);
				if (!hs->ct_value)
					return PE_NOMEM;
			} else {
				unsigned long cl;
				if (head_only)
					; /* the length is what was wrong: answer anyway */
				else if (parse_uint(val, vn, 1UL << 30, &cl) != 0 ||
					 (hs->clen >= 0 && (unsigned long)hs->clen != cl))
					return PE_PROTO;
				else
					hs->clen = (long)cl;
			}
		}
		pos = line_end;
	}
	return 0;
}

static int parse(const void *buf, size_t len, size_t hlen, bool head_only, struct sip_msg **out);

/* Reads a response's start line and the fields transaction matching needs. Returns 0,
 * or PE_PROTO if the start line is not "SIP/2.0 NNN reason". */
static int fast_fill(const char *h, size_t hlen, const struct head_scan *hs, struct fast *f)
{
	const char *nl = memchr(h, '\n', hlen), *p, *e;
	size_t n;
	if (!nl || hlen < 12 || strncasecmp(h, "SIP/2.0 ", 8) != 0)
		return PE_PROTO;
	if (h[8] < '1' || h[8] > '6' || h[9] < '0' || h[9] > '9' || h[10] < '0' || h[10] > '9' ||
	    (h[11] != ' ' && h[11] != '\r'))
		return PE_PROTO;
	f->status = (h[8] - '0') * 100 + (h[9] - '0') * 10 + (h[10] - '0');
	p = h + 12;
	e = nl;
	if (e > p && e[-1] == '\r')
		e--;
	if (p > e)
		p = e;
	f->reason = strndup(p, (size_t)(e - p));
	if (!f->reason)
		return PE_NOMEM;
	f->has_from = hs->from;
	f->has_to = hs->to;
	f->has_call_id = hs->call_id;
	if (hs->via[1]) {
		/* the first value of the first Via header; its branch parameter */
		const char *v = h + hs->via[0], *ve = h + hs->via[1];
		const char *comma = memchr(v, ',', (size_t)(ve - v));
		if (comma)
			ve = comma;
		const char *b = memmem(v, (size_t)(ve - v), ";branch=", 8);
		if (!b)
			b = memmem(v, (size_t)(ve - v), "; branch=", 9);
		if (b) {
			b = memchr(b, '=', (size_t)(ve - b)) + 1;
			while (b < ve && is_ws(*b))
				b++;
			n = strcspn(b, ";, \t\r\n");
			if (b + n > ve)
				n = (size_t)(ve - b);
			if (n < sizeof f->branch) {
				memcpy(f->branch, b, n);
				f->branch[n] = '\0';
			}
		}
	}
	if (hs->cseq[1]) {
		const char *c = h + hs->cseq[0], *ce = h + hs->cseq[1];
		unsigned long num;
		while (c < ce && is_ws(*c))
			c++;
		n = 0;
		while (c + n < ce && c[n] >= '0' && c[n] <= '9')
			n++;
		if (parse_uint(c, n, 0xffffffffUL, &num) == 0) {
			c += n;
			while (c < ce && is_ws(*c))
				c++;
			n = 0;
			while (c + n < ce && !is_ws(c[n]) && c[n] != '\r' && c[n] != '\n')
				n++;
			if (n && n < sizeof f->cseq_method) {
				f->cseq = (uint32_t)num;
				memcpy(f->cseq_method, c, n);
				f->cseq_method[n] = '\0';
			}
		}
	}
	return 0;
}

/* The osip view of a message, parsing a lazy response on first use. A lazy response
 * that osip then refuses becomes an empty message: accessors return NULL / 0. */
static osip_message_t *OM(const struct sip_msg *cm)
{
	struct sip_msg *m = (struct sip_msg *)cm;
	if (m->om)
		return m->om;
	if (osip_message_init(&m->om) != 0)
		abort();
	if (osip_message_parse(m->om, m->lazy, m->lazy_len) != 0) {
		osip_message_free(m->om);
		if (osip_message_init(&m->om) != 0)
			abort();
		log_debug(0, "sip_lazy_parse_failed", "status=%d", m->fast->status);
	}
	free(m->lazy);
	m->lazy = NULL;
	return m->om;
}

int sip_msg_parse(const void *buf, size_t len, struct sip_msg **out)
{
	return parse(buf, len, 0, false, out);
}

int sip_msg_parse_framed(const void *buf, size_t hlen, size_t len, struct sip_msg **out)
{
	const uint8_t *b = buf;
	*out = NULL;
	/* a header_len that cannot be sip_frame_scan's: search as sip_msg_parse does */
	if (hlen < 4 || hlen > len || memcmp(b + hlen - 4, "\r\n\r\n", 4) != 0)
		hlen = 0;
	return parse(buf, len, hlen, false, out);
}

int sip_msg_parse_head(const void *buf, size_t len, struct sip_msg **out)
{
	return parse(buf, len, 0, true, out);
}

/* hlen: the header block's length if the caller knows it (the first CR LF CR LF ends
 * there), else 0. */
static int parse(const void *buf, size_t len, size_t hlen, bool head_only, struct sip_msg **out)
{
	const char *b = buf;
	struct head_scan hs;
	struct sip_msg *m = NULL;
	char *tmp = NULL;
	char stk[4096]; /* osip copies what it parses: a request's cut header block fits here */
	const char *end;
	size_t avail, blen;
	int r;

	sip_msg_global_init();
	*out = NULL;
	if (!hlen) {
		end = memmem(b, len, "\r\n\r\n", 4);
		if (!end)
			return PE_PROTO;
		hlen = (size_t)(end - b) + 4;
	}
	r = scan_head(b, hlen, head_only, &hs);
	if (r)
		goto fail;
	avail = head_only ? 0 : len - hlen;
	blen = avail;
	if (hs.clen >= 0 && !head_only) {
		if ((size_t)hs.clen > avail) {
			r = PE_PROTO;
			goto fail;
		}
		blen = (size_t)hs.clen;
	}
	bool lazy = !head_only && len >= 8 && strncasecmp(b, "SIP/2.0 ", 8) == 0;
	m = lazy ? calloc(1, sizeof *m) : msg_alloc();
	if (!m) {
		r = PE_NOMEM;
		goto fail;
	}
	const char *head = b;
	size_t head_len = hlen;
	if (hs.ncut) {
		/* osip sees neither Content-Type nor Content-Length: the body is ours */
		size_t from = 0, o = 0;
		tmp = !lazy && hlen <= sizeof stk ? stk : malloc(hlen);
		if (!tmp) {
			r = PE_NOMEM;
			goto fail;
		}
		for (int i = 0; i < hs.ncut; i++) {
			memcpy(tmp + o, b + from, hs.cut[i][0] - from);
			o += hs.cut[i][0] - from;
			from = hs.cut[i][1];
		}
		memcpy(tmp + o, b + from, hlen - from);
		head = tmp;
		head_len = o + hlen - from;
	}
	if (lazy) {
		/* responses are matched by branch and CSeq alone: osip only if asked */
		m->fast = calloc(1, sizeof *m->fast);
		if (!m->fast) {
			r = PE_NOMEM;
			goto fail;
		}
		r = fast_fill(b, hlen, &hs, m->fast);
		if (r)
			goto fail;
		if (tmp) {
			m->lazy = tmp;
			tmp = NULL;
		} else if (!(m->lazy = malloc(head_len))) {
			r = PE_NOMEM;
			goto fail;
		} else {
			memcpy(m->lazy, head, head_len);
		}
		m->lazy_len = head_len;
	} else if (osip_message_parse(m->om, head, head_len) != 0 ||
		   osip_list_size(&m->om->bodies) != 0) {
		/* a body osip found is one we did not: refuse rather than disagree */
		r = PE_PROTO;
		goto fail;
	}
	/* A start line osip accepted but we cannot use. */
	if (!lazy &&
	    ((!m->om->sip_method && m->om->status_code <= 0) ||
	     (m->om->sip_method && !m->om->req_uri) ||
	     (m->om->status_code && (m->om->status_code < 100 || m->om->status_code > 699)))) {
		r = PE_PROTO;
		goto fail;
	}
	if (tmp != stk)
		free(tmp);
	tmp = NULL;
	m->ctype = hs.ct_value;
	if (!lazy) {
		/* the header text for responses (sip_msg_response_wire) and the body, together */
		m->blk = malloc(hlen + blen);
		if (!m->blk) {
			r = PE_NOMEM;
			goto fail;
		}
		memcpy(m->blk, b, hlen + blen);
		m->raw_len = hlen;
		m->raw_ok = true;
		m->contact[0] = hs.contact[0];
		m->contact[1] = hs.contact[1];
		m->ncontact = hs.ncontact;
		m->nlines = hs.nlines;
		if (hs.nlines > 0)
			memcpy(m->lines, hs.lines, (size_t)hs.nlines * sizeof hs.lines[0]);
		if (blen) {
			m->body = m->blk + hlen;
			m->body_in_blk = true;
			m->body_len = blen;
		}
	} else if (blen) {
		m->body = malloc(blen);
		if (!m->body) {
			r = PE_NOMEM;
			goto fail;
		}
		memcpy(m->body, b + hlen, blen);
		m->body_len = blen;
	}
	*out = m;
	return 0;
fail:
	if (tmp != stk)
		free(tmp);
	free(hs.ct_value);
	if (m)
		m->ctype = NULL;
	sip_msg_free(m);
	return r;
}

/* ---------------------------------------------------------------------------------- */

bool sip_msg_is_request(const struct sip_msg *m)
{
	return !m->fast && m->om->sip_method != NULL;
}

const char *sip_msg_method(const struct sip_msg *m)
{
	return m->fast ? NULL : m->om->sip_method;
}

int sip_msg_status(const struct sip_msg *m)
{
	if (m->fast)
		return m->fast->status;
	return m->om->sip_method ? 0 : m->om->status_code;
}

const char *sip_msg_reason(const struct sip_msg *m)
{
	if (m->fast)
		return m->fast->reason;
	return m->om->reason_phrase ? m->om->reason_phrase : "";
}

bool sip_msg_is_local(const struct sip_msg *m)
{
	return m->local;
}

void sip_msg_set_local(struct sip_msg *m)
{
	m->local = true;
}

static const char *cached_uri(struct sip_msg *m, enum smc slot, osip_uri_t *u)
{
	char *s = NULL;
	if (m->cache[slot])
		return m->cache[slot];
	if (!u || osip_uri_to_str(u, &s) != 0)
		return NULL;
	m->cache[slot] = s; /* osip allocates with malloc */
	return s;
}

const char *sip_msg_ruri(struct sip_msg *m)
{
	return OM(m)->sip_method ? cached_uri(m, SMC_RURI, OM(m)->req_uri) : NULL;
}

const char *sip_msg_from_uri(struct sip_msg *m)
{
	return OM(m)->from ? cached_uri(m, SMC_FROM_URI, OM(m)->from->url) : NULL;
}

const char *sip_msg_to_uri(struct sip_msg *m)
{
	return OM(m)->to ? cached_uri(m, SMC_TO_URI, OM(m)->to->url) : NULL;
}

static const char *addr_tag(osip_from_t *f)
{
	osip_generic_param_t *p = NULL;
	if (!f || osip_from_get_tag(f, &p) != 0 || !p)
		return NULL;
	return p->gvalue;
}

enum { SEEN_FROM_TAG = 1, SEEN_TO_TAG = 2, SEEN_BRANCH = 4 };

/* True while the osip view of a received request is as parsed: every builder that can
 * change From, To or a Via's parameters clears raw_ok first (sip_msg_via_set_received
 * only adds or sets received / rport, which leaves the branch parameter where it is). */
static bool seen_ok(const struct sip_msg *m)
{
	return m->raw_ok && m->blk && !m->fast;
}

const char *sip_msg_from_tag(struct sip_msg *m)
{
	if (!seen_ok(m))
		return addr_tag(OM(m)->from);
	if (!(m->seen & SEEN_FROM_TAG)) {
		m->seen_from_tag = addr_tag(OM(m)->from);
		m->seen |= SEEN_FROM_TAG;
	}
	return m->seen_from_tag;
}

const char *sip_msg_to_tag(struct sip_msg *m)
{
	if (m->fast && !m->om && m->fast->to_tag[0])
		return m->fast->to_tag;
	if (!seen_ok(m))
		return addr_tag(OM(m)->to);
	if (!(m->seen & SEEN_TO_TAG)) {
		m->seen_to_tag = addr_tag(OM(m)->to);
		m->seen |= SEEN_TO_TAG;
	}
	return m->seen_to_tag;
}

const char *sip_msg_from_display(struct sip_msg *m)
{
	return OM(m)->from ? OM(m)->from->displayname : NULL;
}

const char *sip_msg_call_id(struct sip_msg *m)
{
	osip_call_id_t *c = OM(m)->call_id;
	if (m->cache[SMC_CALL_ID])
		return m->cache[SMC_CALL_ID];
	if (!c || !c->number)
		return NULL;
	size_t nn = strlen(c->number), hn = c->host ? strlen(c->host) : 0;
	char *s = malloc(nn + (c->host ? hn + 1 : 0) + 1);
	if (!s)
		return NULL;
	memcpy(s, c->number, nn);
	if (c->host) {
		s[nn] = '@';
		memcpy(s + nn + 1, c->host, hn);
		nn += hn + 1;
	}
	s[nn] = '\0';
	m->cache[SMC_CALL_ID] = s;
	return s;
}

uint32_t sip_msg_cseq(struct sip_msg *m, const char **method)
{
	if (m->fast && !m->om) {
		if (method)
			*method = m->fast->cseq_method[0] ? m->fast->cseq_method : NULL;
		return m->fast->cseq;
	}
	osip_cseq_t *c = OM(m)->cseq;
	unsigned long v = 0;
	if (method)
		*method = c ? c->method : NULL;
	if (!c || !c->number || parse_uint(c->number, strlen(c->number), 0xffffffffUL, &v))
		return 0;
	return (uint32_t)v;
}

int sip_msg_via_count(struct sip_msg *m)
{
	return osip_list_size(&OM(m)->vias);
}

static osip_via_t *via_at(struct sip_msg *m, int idx)
{
	return osip_list_get(&OM(m)->vias, idx);
}

static const char *via_param(osip_via_t *v, const char *name)
{
	osip_generic_param_t *p = NULL;
	if (!v || osip_via_param_get_byname(v, (char *)name, &p) != 0 || !p)
		return NULL;
	return p->gvalue ? p->gvalue : "";
}

const char *sip_msg_via_branch(struct sip_msg *m, int idx)
{
	if (m->fast && !m->om && idx == 0)
		return m->fast->branch[0] ? m->fast->branch : NULL;
	if (idx != 0 || !seen_ok(m))
		return via_param(via_at(m, idx), "branch");
	if (!(m->seen & SEEN_BRANCH)) {
		m->seen_branch = via_param(via_at(m, 0), "branch");
		m->seen |= SEEN_BRANCH;
	}
	return m->seen_branch;
}

int sip_msg_via_top(struct sip_msg *m, enum sip_proto *proto, const char **host, int *port,
		    const char **received, int *rport)
{
	osip_via_t *v = via_at(m, 0);
	unsigned long pv = 0;
	if (!v)
		return PE_NOTFOUND;
	if (proto) {
		*proto = SIP_PROTO_UDP;
		if (v->protocol)
			sip_proto_parse(v->protocol, strlen(v->protocol), proto);
	}
	if (host)
		*host = v->host;
	if (port)
		*port = v->port && !parse_uint(v->port, strlen(v->port), 65535, &pv) ? (int)pv : 0;
	if (received)
		*received = via_param(v, "received");
	if (rport) {
		const char *rp = via_param(v, "rport");
		*rport = -1;
		if (rp)
			*rport = *rp && !parse_uint(rp, strlen(rp), 65535, &pv) ? (int)pv : 0;
	}
	return 0;
}

/* Generic (unstructured) header by canonical name; compact names stored by osip are
 * matched too, since osip keeps unknown compact forms such as "o" as written. */
static const char *generic_header(struct sip_msg *m, const char *lname, int idx)
{
	int pos = 0, seen = 0;
	osip_header_t *h;
	while (!osip_list_eol(&OM(m)->headers, pos)) {
		h = osip_list_get(&OM(m)->headers, pos++);
		if (h->hname && hname_is(h->hname, strlen(h->hname), lname)) {
			if (seen++ == idx)
				return h->hvalue ? h->hvalue : "";
		}
	}
	return NULL;
}

static int int_header(struct sip_msg *m, const char *lname)
{
	const char *v = generic_header(m, lname, 0);
	unsigned long x;
	size_t n = 0;
	if (!v)
		return -1;
	while (is_ws(*v))
		v++;
	while (v[n] >= '0' && v[n] <= '9')
		n++;
	if (parse_uint(v, n, 0x7fffffffUL, &x))
		return -1;
	return (int)x;
}

/* A Max-Forwards value as sip_msg_max_forwards reads it, or -1. */
static int max_forwards_value(const char *v)
{
	unsigned long x;
	while (is_ws(*v))
		v++;
	size_t n = strlen(v);
	while (n && is_ws(v[n - 1]))
		n--;
	if (parse_uint(v, n, 255, &x))
		return -1;
	return (int)x;
}

int sip_msg_max_forwards(struct sip_msg *m)
{
	const char *v = generic_header(m, "max-forwards", 0);
	return v ? max_forwards_value(v) : -1;
}

int sip_msg_expires(struct sip_msg *m)
{
	return int_header(m, "expires");
}

int sip_msg_retry_after(struct sip_msg *m)
{
	return int_header(m, "retry-after");
}

const char *sip_msg_event(struct sip_msg *m)
{
	return generic_header(m, "event", 0);
}

const char *sip_msg_subscription_state(struct sip_msg *m)
{
	return generic_header(m, "subscription-state", 0);
}

const char *sip_msg_content_language(struct sip_msg *m)
{
	return generic_header(m, "content-language", 0);
}

const char *sip_msg_subject(struct sip_msg *m)
{
	return generic_header(m, "subject", 0);
}

const char *sip_msg_content_type(struct sip_msg *m)
{
	return m->ctype;
}

bool sip_msg_content_type_is(struct sip_msg *m, const char *mtype)
{
	const char *ct = m->ctype;
	size_t n, want = strlen(mtype);
	if (!ct)
		return false;
	n = strcspn(ct, "; \t");
	return n == want && strncasecmp(ct, mtype, n) == 0;
}

void sip_msg_body(const struct sip_msg *m, const uint8_t **body, size_t *len)
{
	*body = m->body;
	*len = m->body_len;
}

/* Structured list headers: osip parses them into typed lists. */
typedef int (*to_str_fn)(const void *h, char **dest);
static int ts_via(const void *h, char **d)
{
	return osip_via_to_str(h, d);
}
static int ts_from(const void *h, char **d)
{
	return osip_from_to_str(h, d);
}
static int ts_ctype(const void *h, char **d)
{
	return osip_content_type_to_str(h, d);
}
static int ts_aenc(const void *h, char **d)
{
	return osip_accept_encoding_to_str(h, d);
}
static int ts_cinfo(const void *h, char **d)
{
	return osip_call_info_to_str(h, d);
}
static int ts_clen(const void *h, char **d)
{
	return osip_content_length_to_str(h, d);
}
static int ts_authi(const void *h, char **d)
{
	return osip_authentication_info_to_str(h, d);
}
static int ts_authz(const void *h, char **d)
{
	return osip_authorization_to_str(h, d);
}
static int ts_wwwa(const void *h, char **d)
{
	return osip_www_authenticate_to_str(h, d);
}

static const struct list_hdr {
	const char *lname;
	size_t off;
	to_str_fn fn;
} list_hdrs[] = {
    {"via", offsetof(osip_message_t, vias), ts_via},
    {"contact", offsetof(osip_message_t, contacts), ts_from},
    {"route", offsetof(osip_message_t, routes), ts_from},
    {"record-route", offsetof(osip_message_t, record_routes), ts_from},
    {"accept", offsetof(osip_message_t, accepts), ts_ctype},
    {"accept-encoding", offsetof(osip_message_t, accept_encodings), ts_aenc},
    {"accept-language", offsetof(osip_message_t, accept_languages), ts_aenc},
    {"alert-info", offsetof(osip_message_t, alert_infos), ts_cinfo},
    {"allow", offsetof(osip_message_t, allows), ts_clen},
    {"authentication-info", offsetof(osip_message_t, authentication_infos), ts_authi},
    {"authorization", offsetof(osip_message_t, authorizations), ts_authz},
    {"call-info", offsetof(osip_message_t, call_infos), ts_cinfo},
    {"content-encoding", offsetof(osip_message_t, content_encodings), ts_clen},
    {"error-info", offsetof(osip_message_t, error_infos), ts_cinfo},
    {"proxy-authenticate", offsetof(osip_message_t, proxy_authenticates), ts_wwwa},
    {"proxy-authentication-info", offsetof(osip_message_t, proxy_authentication_infos), ts_authi},
    {"proxy-authorization", offsetof(osip_message_t, proxy_authorizations), ts_authz},
    {"www-authenticate", offsetof(osip_message_t, www_authenticates), ts_wwwa},
};

const char *sip_msg_header(struct sip_msg *m, const char *name, int idx)
{
	size_t n = strlen(name);
	char *s = NULL;
	const char *l = long_name(name, n);
	char lname[64];

	if (idx < 0)
		return NULL;
	if (!l) {
		if (n >= sizeof lname)
			return NULL;
		for (size_t i = 0; i <= n; i++)
			lname[i] = (char)tolower((unsigned char)name[i]);
		l = lname;
	}
	for (size_t i = 0; i < sizeof list_hdrs / sizeof list_hdrs[0]; i++) {
		if (strcmp(l, list_hdrs[i].lname) != 0)
			continue;
		osip_list_t *li = (osip_list_t *)((char *)OM(m) + list_hdrs[i].off);
		void *h = osip_list_get(li, idx);
		if (!h || list_hdrs[i].fn(h, &s) != 0)
			return NULL;
		return arena_keep(m, s);
	}
	if (idx == 0) {
		if (strcmp(l, "content-type") == 0)
			return m->ctype;
		if (strcmp(l, "from") == 0 && OM(m)->from && osip_from_to_str(OM(m)->from, &s) == 0)
			return arena_keep(m, s);
		if (strcmp(l, "to") == 0 && OM(m)->to && osip_from_to_str(OM(m)->to, &s) == 0)
			return arena_keep(m, s);
		if (strcmp(l, "call-id") == 0)
			return sip_msg_call_id(m);
		if (strcmp(l, "cseq") == 0 && OM(m)->cseq && osip_cseq_to_str(OM(m)->cseq, &s) == 0)
			return arena_keep(m, s);
		if (strcmp(l, "content-length") == 0) {
			char tmp[24];
			snprintf(tmp, sizeof tmp, "%zu", m->body_len);
			return arena_keep(m, strdup(tmp));
		}
		if (strcmp(l, "mime-version") == 0 && OM(m)->mime_version &&
		    osip_content_length_to_str(OM(m)->mime_version, &s) == 0)
			return arena_keep(m, s);
	}
	return generic_header(m, l, idx);
}

int sip_msg_record_route_count(struct sip_msg *m)
{
	return osip_list_size(&OM(m)->record_routes);
}

const char *sip_msg_record_route(struct sip_msg *m, int idx)
{
	return sip_msg_header(m, "record-route", idx);
}

const char *sip_msg_contact_uri(struct sip_msg *m)
{
	osip_contact_t *c = osip_list_get(&OM(m)->contacts, 0);
	return c ? cached_uri(m, SMC_CONTACT, c->url) : NULL;
}

int sip_msg_contact_text(const struct sip_msg *m, const char **text, size_t *len)
{
	if (!m->blk || !m->raw_ok || m->fast)
		return PE_STATE;
	if (m->ncontact == 0)
		return PE_NOTFOUND;
	if (m->ncontact > 1)
		return PE_STATE;
	*text = (const char *)m->blk + m->contact[0];
	*len = m->contact[1] - m->contact[0];
	return 0;
}

int sip_msg_validate(struct sip_msg *m, const char **why)
{
	if (m->fast && !m->om) {
		/* a response we have not parsed: what matching needs, and the headers
		 * every response carries (RFC 3261 §8.2.6.2) */
		struct fast *f = m->fast;
		*why = !f->branch[0]	    ? "missing Via branch"
		       : !f->has_from	    ? "missing From"
		       : !f->has_to	    ? "missing To"
		       : !f->has_call_id    ? "missing Call-ID"
		       : !f->cseq_method[0] ? "missing CSeq"
					    : NULL;
		return *why ? PE_PROTO : 0;
	}
	osip_message_t *om = OM(m);
	const char *cm, *mf;
	*why = NULL;
	if (osip_list_size(&om->vias) == 0)
		*why = "missing Via";
	else if (!om->from || !om->from->url)
		*why = "missing From";
	else if (!om->to || !om->to->url)
		*why = "missing To";
	else if (!sip_msg_call_id(m))
		*why = "missing Call-ID";
	else if (!om->cseq || !om->cseq->method || !om->cseq->number)
		*why = "missing CSeq";
	else if (sip_msg_cseq(m, &cm) == 0 && strcmp(om->cseq->number, "0") != 0)
		*why = "bad CSeq number";
	if (!*why && om->sip_method) {
		if (strcmp(om->cseq->method, om->sip_method) != 0)
			*why = "CSeq method differs from request method";
		else if (!sip_msg_via_branch(m, 0))
			*why = "top Via has no branch";
		else if ((mf = generic_header(m, "max-forwards", 0)) && max_forwards_value(mf) < 0)
			*why = "bad Max-Forwards";
	}
	return *why ? PE_PROTO : 0;
}

/* ---------------------------------------------------------------------------------- */

int sip_hvalue_token(const char *hvalue, char *out, size_t cap)
{
	const char *p = hvalue;
	size_t n;
	if (!p || cap == 0)
		return PE_NOTFOUND;
	while (is_ws(*p))
		p++;
	n = strcspn(p, ";");
	while (n && is_ws(p[n - 1]))
		n--;
	if (n == 0)
		return PE_NOTFOUND;
	if (n >= cap)
		n = cap - 1;
	memcpy(out, p, n);
	out[n] = '\0';
	return (int)n;
}

int sip_hvalue_param(const char *hvalue, const char *name, char *out, size_t cap)
{
	const char *p;
	size_t want = strlen(name);
	if (!hvalue || cap == 0)
		return PE_NOTFOUND;
	p = strchr(hvalue, ';');
	while (p) {
		p++;
		while (is_ws(*p))
			p++;
		size_t nl = strcspn(p, "=; \t");
		const char *q = p + nl;
		while (is_ws(*q))
			q++;
		if (nl == want && strncasecmp(p, name, nl) == 0) {
			size_t vn = 0;
			const char *v = q;
			if (*q == '=') {
				v = q + 1;
				while (is_ws(*v))
					v++;
				if (*v == '"') {
					v++;
					vn = strcspn(v, "\"");
				} else {
					vn = strcspn(v, "; \t");
				}
			}
			if (vn >= cap)
				vn = cap - 1;
			memcpy(out, v, vn);
			out[vn] = '\0';
			return (int)vn;
		}
		p = strchr(p, ';');
	}
	return PE_NOTFOUND;
}

/* ---------------------------------------------------------------------------------- */

static bool is_token(const char *s)
{
	if (!s || !*s)
		return false;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (!(isalnum(c) || strchr("-.!%*_+`'~", c)))
			return false;
	}
	return true;
}

static char *xstrdup(const char *s)
{
	return s ? osip_strdup(s) : NULL;
}

struct sip_msg *sip_msg_new_request(const char *method, const char *ruri)
{
	struct sip_msg *m;
	osip_uri_t *u = NULL;

	sip_msg_global_init();
	if (!is_token(method) || !ruri)
		return NULL;
	m = msg_alloc();
	if (!m)
		return NULL;
	if (osip_uri_init(&u) != 0)
		goto fail;
	if (osip_uri_parse(u, ruri) != 0) {
		osip_uri_free(u);
		goto fail;
	}
	osip_message_set_method(OM(m), xstrdup(method));
	osip_message_set_version(OM(m), xstrdup("SIP/2.0"));
	osip_message_set_uri(OM(m), u);
	return m;
fail:
	sip_msg_free(m);
	return NULL;
}

int sip_msg_set_request_uri(struct sip_msg *m, const char *ruri)
{
	osip_uri_t *u = NULL;
	m->raw_ok = false;
	if (!OM(m)->sip_method || osip_uri_init(&u) != 0)
		return PE_INVAL;
	if (osip_uri_parse(u, ruri) != 0) {
		osip_uri_free(u);
		return PE_INVAL;
	}
	osip_uri_free(OM(m)->req_uri);
	OM(m)->req_uri = u;
	cache_clear(m);
	return 0;
}

static int vclone_via(void *s, void **d)
{
	return osip_via_clone(s, (osip_via_t **)d);
}
static int vclone_from(void *s, void **d)
{
	return osip_from_clone(s, (osip_from_t **)d);
}

static bool creates_dialog(const char *method)
{
	return method && (strcmp(method, "SUBSCRIBE") == 0 || strcmp(method, "INVITE") == 0 ||
			  strcmp(method, "REFER") == 0 || strcmp(method, "NOTIFY") == 0);
}

/* --- responses from the request's header text ---------------------------------------
 * A response copies Via, From, To, Call-ID and CSeq from the request (RFC 3261 §8.2.6.2)
 * and, for a 2xx to a dialog-forming request, Record-Route (§12.1.1). Cloning osip's
 * structures and serialising them again costs dozens of small allocations per response;
 * the header text we received already says all of it. The decisions osip's view drives
 * (does To carry a tag, which received/rport the top Via got) are read from osip, so
 * both ways give the same response. */

struct wr {
	char *p;
	size_t n, cap;
	bool over;
};

static void wr_put(struct wr *w, const char *s, size_t n)
{
	if (w->over || n > w->cap - w->n) {
		w->over = true;
		return;
	}
	memcpy(w->p + w->n, s, n);
	w->n += n;
}

static void wr_str(struct wr *w, const char *s)
{
	wr_put(w, s, strlen(s));
}

/* A header value, unfolded: the CR LF of a continuation line go, its white space stays. */
static void wr_value(struct wr *w, const char *v, size_t n)
{
	size_t i = 0;
	while (i < n) {
		const char *cr = memchr(v + i, '\r', n - i);
		size_t k = cr ? (size_t)(cr - v) : n;
		wr_put(w, v + i, k - i);
		i = k + 2; /* CR LF: scan_head allowed no other use of CR */
	}
}

/* End of the text in v[i..n) up to the first c outside a quoted string (n if none).
 * quoted: false if the caller knows v[i..n) holds no '"'. */
static size_t span_to(const char *v, size_t i, size_t n, char c, bool quoted)
{
	if (!quoted) {
		/* no quote in the text: the first c is the one (memchr, not byte by byte) */
		const char *p = memchr(v + i, c, n - i);
		return p ? (size_t)(p - v) : n;
	}
	bool q = false;
	for (; i < n; i++) {
		if (q) {
			if (v[i] == '\\' && i + 1 < n)
				i++;
			else if (v[i] == '"')
				q = false;
		} else if (v[i] == '"') {
			q = true;
		} else if (v[i] == c) {
			return i;
		}
	}
	return n;
}

static size_t trim_end(const char *v, size_t i, size_t n)
{
	while (n > i && (is_ws(v[n - 1]) || v[n - 1] == '\r' || v[n - 1] == '\n'))
		n--;
	return n;
}

/* The top Via value v[0..n) (a whole header line's value: later values after a comma are
 * copied as they are) with the received and rport values sip_msg_via_set_received gave
 * osip's view: an existing parameter takes the new value, a missing received is added. */
static void wr_top_via(struct wr *w, const char *v, size_t n, const char *rcv, int rport)
{
	bool quoted = memchr(v, '"', n) != NULL;
	size_t end = span_to(v, 0, n, ',', quoted), tend = trim_end(v, 0, end);
	size_t i = span_to(v, 0, tend, ';', quoted);
	bool rcv_done = !*rcv;
	char num[16];

	wr_put(w, v, i);
	while (i < tend) {
		size_t j = span_to(v, i + 1, tend, ';', quoted), a = i + 1, b;
		while (a < j && is_ws(v[a]))
			a++;
		b = a;
		while (b < j && v[b] != '=' && !is_ws(v[b]))
			b++;
		if (rport > 0 && b - a == 5 && strncasecmp(v + a, "rport", 5) == 0) {
			snprintf(num, sizeof num, "%d", rport);
			wr_str(w, ";rport=");
			wr_str(w, num);
		} else if (*rcv && b - a == 8 && strncasecmp(v + a, "received", 8) == 0) {
			wr_str(w, ";received=");
			wr_str(w, rcv);
			rcv_done = true;
		} else {
			wr_value(w, v + i, j - i);
		}
		i = j;
	}
	if (!rcv_done) {
		wr_str(w, ";received=");
		wr_str(w, rcv);
	}
	wr_value(w, v + tend, n - tend);
}

/* Next header of a header block that scan_head accepted, from *pos (just after a line's
 * LF). Sets the value [*v, *v + *vn) without leading white space and trailing CR LF /
 * white space. Returns false at the empty line. */
static bool raw_next(const char *h, size_t hlen, size_t *pos, const char **name, size_t *nlen,
		     const char **v, size_t *vn)
{
	size_t start = *pos, line_end = start;
	if (start >= hlen || h[start] == '\r')
		return false;
	for (;;) {
		const char *nl = memchr(h + line_end, '\n', hlen - line_end);
		line_end = (size_t)(nl - h) + 1;
		if (line_end < hlen && is_ws(h[line_end]))
			continue;
		break;
	}
	const char *colon = memchr(h + start, ':', line_end - start);
	size_t vs = (size_t)(colon - h) + 1, ve;
	*name = h + start;
	*nlen = (size_t)(colon - h) - start;
	while (*nlen && is_ws(h[start + *nlen - 1]))
		(*nlen)--;
	while (vs < line_end && is_ws(h[vs]))
		vs++;
	ve = trim_end(h, vs, line_end);
	*v = h + vs;
	*vn = ve - vs;
	*pos = line_end;
	return true;
}

/* Walks the header lines build_response copies: from the lines scan_head recorded, or
 * (more than fit) the text itself. */
struct line_it {
	size_t pos; /* text walk: offset of the next line */
	int idx;    /* recorded lines: the next one */
};

static bool next_line(const struct sip_msg *req, const char *h, size_t hlen, struct line_it *it,
		      enum hk *k, const char **v, size_t *vn)
{
	if (req->nlines >= 0) {
		if (it->idx >= req->nlines)
			return false;
		const struct hline *l = &req->lines[it->idx++];
		size_t vs = l->v;
		while (vs < l->end && is_ws(h[vs]))
			vs++;
		*k = (enum hk)l->kind;
		*v = h + vs;
		*vn = trim_end(h, vs, l->end) - vs;
		return true;
	}
	const char *name;
	size_t nlen;
	while (raw_next(h, hlen, &it->pos, &name, &nlen, v, vn)) {
		*k = hkind(name, nlen);
		if (*k >= HK_VIA && *k <= HK_RR)
			return true;
	}
	return false;
}

/* Writes the response's status line and headers (each line with its CR LF, no empty line
 * and no Content-Length) into w. to_tag is added to To if osip's view of it has none and
 * status > 100. Returns 0 or PE_STATE if req has no usable header text. */
static int build_response(struct sip_msg *req, int status, const char *reason, const char *to_tag,
			  struct wr *w)
{
	const char *h = (const char *)req->blk, *v;
	size_t hlen = req->raw_len, vn, one[HK_CSEQ + 1][2] = {{0}};
	enum hk k;
	struct line_it it;
	bool seen[HK_CSEQ + 1] = {false}, top = true;
	char sl[16] = "SIP/2.0 000 ";

	if (!req->blk || !req->raw_ok || req->fast || !req->om || !req->om->sip_method)
		return PE_STATE;
	if (status < 100 || status > 699)
		return PE_INVAL;
	sl[8] = (char)('0' + status / 100);
	sl[9] = (char)('0' + status / 10 % 10);
	sl[10] = (char)('0' + status % 10);
	wr_put(w, sl, 12);
	wr_str(w, reason ? reason : sip_reason_phrase(status));
	wr_put(w, "\r\n", 2);
	const char *nl = memchr(h, '\n', hlen);
	if (!nl)
		return PE_STATE;
	bool rr = status > 100 && status < 300 && creates_dialog(req->om->sip_method);
	bool any_rr = false;
	it = (struct line_it){.pos = (size_t)(nl - h) + 1};
	while (next_line(req, h, hlen, &it, &k, &v, &vn)) {
		if (k == HK_VIA) {
			wr_put(w, "Via: ", 5);
			if (top)
				wr_top_via(w, v, vn, req->rcv, req->rport);
			else
				wr_value(w, v, vn);
			wr_put(w, "\r\n", 2);
			top = false;
		} else if (k == HK_RR) {
			any_rr = true;
		} else if (k >= HK_FROM && k <= HK_CSEQ && !seen[k]) {
			seen[k] = true;
			one[k][0] = (size_t)(v - h);
			one[k][1] = vn;
		}
	}
	if (rr && any_rr) {
		it = (struct line_it){.pos = (size_t)(nl - h) + 1};
		while (next_line(req, h, hlen, &it, &k, &v, &vn)) {
			if (k != HK_RR)
				continue;
			wr_put(w, "Record-Route: ", 14);
			wr_value(w, v, vn);
			wr_put(w, "\r\n", 2);
		}
	}
	static const char *const names[HK_CSEQ + 1] = {[HK_FROM] = "From: ",
						       [HK_TO] = "To: ",
						       [HK_CALL_ID] = "Call-ID: ",
						       [HK_CSEQ] = "CSeq: "};
	for (int i = HK_FROM; i <= HK_CSEQ; i++) {
		if (!seen[i])
			continue;
		wr_str(w, names[i]);
		wr_value(w, h + one[i][0], one[i][1]);
		if (i == HK_TO && to_tag && status > 100 && !sip_msg_to_tag(req)) {
			wr_put(w, ";tag=", 5);
			wr_str(w, to_tag);
		}
		wr_put(w, "\r\n", 2);
	}
	return w->over ? PE_TOOBIG : 0;
}

/* Room build_response may need: a compact name grows to at most "Call-ID: " and every
 * line is at least "i:x" CR LF, so three times the header block covers the copies. */
static size_t response_bound(const struct sip_msg *req, const char *reason, const char *to_tag)
{
	return 3 * req->raw_len + 128 + strlen(reason ? reason : "") +
	       (to_tag ? strlen(to_tag) : 0) + sizeof req->rcv;
}

int sip_msg_response_wire(struct sip_msg *req, int status, const char *reason, const char *to_tag,
			  struct buf *out)
{
	static const char tail[] = "Content-Length: 0\r\n\r\n";
	uint8_t *p;
	int r;
	if (!req->blk || !req->raw_ok || req->fast)
		return PE_STATE;
	size_t cap = response_bound(req, reason, to_tag) + sizeof tail;
	if ((r = buf_reserve(out, cap, &p)) != 0)
		return r;
	struct wr w = {.p = (char *)p, .cap = cap};
	if ((r = build_response(req, status, reason, to_tag, &w)) != 0)
		return r;
	wr_put(&w, tail, sizeof tail - 1);
	if (w.over)
		return PE_TOOBIG;
	buf_commit(out, w.n);
	return 0;
}

/* sip_msg_new_response without osip: the header text becomes a lazy message (as a
 * received response is) that osip parses only if someone reads or changes more than
 * status, matching fields and To tag. NULL if req has no usable header text. */
static struct sip_msg *lazy_response(struct sip_msg *req, int status, const char *reason,
				     const char *to_tag)
{
	char stk[4096];
	size_t cap = response_bound(req, reason, to_tag) + 2;
	struct wr w = {.p = cap <= sizeof stk ? stk : malloc(cap), .cap = cap};
	struct sip_msg *m = NULL;
	const char *cm = NULL, *br, *tt;

	if (!w.p)
		return NULL;
	if (build_response(req, status, reason, to_tag, &w) != 0)
		goto out;
	wr_put(&w, "\r\n", 2);
	if (w.over || !(m = calloc(1, sizeof *m)) || !(m->fast = calloc(1, sizeof *m->fast)) ||
	    !(m->fast->reason = strdup(reason ? reason : sip_reason_phrase(status))) ||
	    !(m->lazy = malloc(w.n))) {
		sip_msg_free(m);
		m = NULL;
		goto out;
	}
	memcpy(m->lazy, w.p, w.n);
	m->lazy_len = w.n;
	struct fast *f = m->fast;
	f->status = status;
	br = sip_msg_via_branch(req, 0);
	if (br && strlen(br) < sizeof f->branch)
		memcpy(f->branch, br, strlen(br) + 1);
	f->cseq = sip_msg_cseq(req, &cm);
	if (cm && strlen(cm) < sizeof f->cseq_method)
		memcpy(f->cseq_method, cm, strlen(cm) + 1);
	f->has_from = req->om->from != NULL;
	f->has_to = req->om->to != NULL;
	f->has_call_id = req->om->call_id != NULL;
	tt = sip_msg_to_tag(req);
	if (!tt && to_tag && status > 100 && req->om->to)
		tt = to_tag;
	if (tt && strlen(tt) < sizeof f->to_tag)
		memcpy(f->to_tag, tt, strlen(tt) + 1);
out:
	if (w.p != stk)
		free(w.p);
	return m;
}

struct sip_msg *sip_msg_new_response(struct sip_msg *req, int status, const char *reason,
				     const char *to_tag)
{
	struct sip_msg *m;
	osip_message_t *ro, *o;
	if (req->blk && req->raw_ok && (m = lazy_response(req, status, reason, to_tag)))
		return m;
	m = msg_alloc();
	ro = OM(req);
	if (!m)
		return NULL;
	o = OM(m);
	osip_message_set_version(o, xstrdup("SIP/2.0"));
	osip_message_set_status_code(o, status);
	osip_message_set_reason_phrase(o, xstrdup(reason ? reason : sip_reason_phrase(status)));
	if (osip_list_clone(&ro->vias, &o->vias, vclone_via) != 0)
		goto fail;
	if (ro->from && osip_from_clone(ro->from, &o->from) != 0)
		goto fail;
	if (ro->to && osip_to_clone(ro->to, &o->to) != 0)
		goto fail;
	if (ro->call_id && osip_call_id_clone(ro->call_id, &o->call_id) != 0)
		goto fail;
	if (ro->cseq && osip_cseq_clone(ro->cseq, &o->cseq) != 0)
		goto fail;
	if (status > 100 && status < 300 && creates_dialog(ro->sip_method) &&
	    osip_list_clone(&ro->record_routes, &o->record_routes, vclone_from) != 0)
		goto fail;
	if (to_tag && status > 100 && o->to && !addr_tag(o->to))
		osip_from_set_tag(o->to, xstrdup(to_tag));
	return m;
fail:
	sip_msg_free(m);
	return NULL;
}

struct sip_msg *sip_msg_new_bare_response(int status, const char *reason)
{
	struct sip_msg *m;
	sip_msg_global_init();
	m = msg_alloc();
	if (!m)
		return NULL;
	osip_message_set_version(OM(m), xstrdup("SIP/2.0"));
	osip_message_set_status_code(OM(m), status);
	osip_message_set_reason_phrase(OM(m), xstrdup(reason ? reason : sip_reason_phrase(status)));
	return m;
}

static int make_addr(const char *uri, const char *tag, osip_from_t **out)
{
	char tmp[2048];
	int n;
	if (!uri)
		return PE_INVAL;
	if (strchr(uri, '<'))
		n = snprintf(tmp, sizeof tmp, "%s%s%s", uri, tag ? ";tag=" : "", tag ? tag : "");
	else
		n = snprintf(tmp, sizeof tmp, "<%s>%s%s", uri, tag ? ";tag=" : "", tag ? tag : "");
	if (n < 0 || (size_t)n >= sizeof tmp)
		return PE_INVAL;
	if (osip_from_init(out) != 0)
		return PE_NOMEM;
	if (osip_from_parse(*out, tmp) != 0 || !(*out)->url) {
		osip_from_free(*out);
		*out = NULL;
		return PE_INVAL;
	}
	return 0;
}

int sip_msg_set_from(struct sip_msg *m, const char *uri, const char *tag)
{
	osip_from_t *f;
	int r = make_addr(uri, tag, &f);
	m->raw_ok = false;
	if (r)
		return r;
	osip_from_free(OM(m)->from);
	OM(m)->from = f;
	cache_clear(m);
	return 0;
}

int sip_msg_set_to(struct sip_msg *m, const char *uri, const char *tag)
{
	osip_from_t *f;
	int r = make_addr(uri, tag, &f);
	m->raw_ok = false;
	if (r)
		return r;
	osip_to_free(OM(m)->to);
	OM(m)->to = f;
	cache_clear(m);
	return 0;
}

int sip_msg_set_to_tag(struct sip_msg *m, const char *tag)
{
	osip_generic_param_t *p = NULL;
	m->raw_ok = false;
	if (!OM(m)->to || !tag)
		return PE_INVAL;
	if (osip_from_get_tag(OM(m)->to, &p) == 0 && p) {
		osip_free(p->gvalue);
		p->gvalue = xstrdup(tag);
		return 0;
	}
	osip_from_set_tag(OM(m)->to, xstrdup(tag));
	return 0;
}

int sip_msg_set_call_id(struct sip_msg *m, const char *call_id)
{
	osip_call_id_t *c;
	m->raw_ok = false;
	if (!call_id || !*call_id || osip_call_id_init(&c) != 0)
		return PE_INVAL;
	if (osip_call_id_parse(c, call_id) != 0) {
		osip_call_id_free(c);
		return PE_INVAL;
	}
	osip_call_id_free(OM(m)->call_id);
	OM(m)->call_id = c;
	cache_clear(m);
	return 0;
}

int sip_msg_set_cseq(struct sip_msg *m, uint32_t num, const char *method)
{
	osip_cseq_t *c;
	char n[16];
	m->raw_ok = false;
	if (!is_token(method) || osip_cseq_init(&c) != 0)
		return PE_INVAL;
	snprintf(n, sizeof n, "%u", num);
	osip_cseq_set_number(c, xstrdup(n));
	osip_cseq_set_method(c, xstrdup(method));
	osip_cseq_free(OM(m)->cseq);
	OM(m)->cseq = c;
	return 0;
}

int sip_msg_push_via(struct sip_msg *m, enum sip_proto proto, const char *sent_by,
		     const char *branch, bool rport)
{
	char tmp[512];
	osip_via_t *v;
	m->raw_ok = false;
	int n = snprintf(tmp, sizeof tmp, "SIP/2.0/%s %s;branch=%s%s", sip_proto_name(proto),
			 sent_by, branch, rport ? ";rport" : "");
	if (n < 0 || (size_t)n >= sizeof tmp)
		return PE_INVAL;
	if (osip_via_init(&v) != 0)
		return PE_NOMEM;
	if (osip_via_parse(v, tmp) != 0) {
		osip_via_free(v);
		return PE_INVAL;
	}
	if (osip_list_add(&OM(m)->vias, v, 0) < 0) {
		osip_via_free(v);
		return PE_NOMEM;
	}
	return 0;
}

int sip_msg_pop_via(struct sip_msg *m)
{
	osip_via_t *v = osip_list_get(&OM(m)->vias, 0);
	m->raw_ok = false;
	if (!v)
		return PE_NOTFOUND;
	osip_list_remove(&OM(m)->vias, 0);
	osip_via_free(v);
	return 0;
}

static void via_param_set(osip_via_t *v, const char *name, const char *value)
{
	osip_generic_param_t *p = NULL;
	if (osip_via_param_get_byname(v, (char *)name, &p) == 0 && p) {
		osip_free(p->gvalue);
		p->gvalue = xstrdup(value);
		return;
	}
	osip_via_param_add(v, xstrdup(name), xstrdup(value));
}

int sip_msg_via_set_received(struct sip_msg *m, const char *ip, int port)
{
	osip_via_t *v = via_at(m, 0);
	char pb[12];
	if (!v)
		return PE_NOTFOUND;
	if (ip && (!v->host || strcasecmp(v->host, ip) != 0)) {
		via_param_set(v, "received", ip);
		if (strlen(ip) < sizeof m->rcv)
			memcpy(m->rcv, ip, strlen(ip) + 1);
		else
			m->raw_ok = false;
	}
	if (port > 0 && via_param(v, "rport")) {
		snprintf(pb, sizeof pb, "%d", port);
		via_param_set(v, "rport", pb);
		m->rport = port;
	}
	return 0;
}

int sip_msg_remove_header(struct sip_msg *m, const char *name)
{
	int pos = 0, removed = 0;
	osip_header_t *h;
	size_t n = strlen(name);
	const char *l = long_name(name, n);
	char lname[64];
	m->raw_ok = false;
	if (!l) {
		if (n >= sizeof lname)
			return 0;
		for (size_t i = 0; i <= n; i++)
			lname[i] = (char)tolower((unsigned char)name[i]);
		l = lname;
	}
	while (!osip_list_eol(&OM(m)->headers, pos)) {
		h = osip_list_get(&OM(m)->headers, pos);
		if (h->hname && hname_is(h->hname, strlen(h->hname), l)) {
			osip_list_remove(&OM(m)->headers, pos);
			osip_header_free(h);
			removed++;
		} else {
			pos++;
		}
	}
	return removed;
}

int sip_msg_set_max_forwards(struct sip_msg *m, int n)
{
	char v[8];
	m->raw_ok = false;
	if (n < 0 || n > 255)
		return PE_INVAL;
	sip_msg_remove_header(m, "max-forwards");
	snprintf(v, sizeof v, "%d", n);
	return osip_message_set_header(OM(m), "Max-Forwards", v) == 0 ? 0 : PE_NOMEM;
}

static bool hvalue_ok(const char *v)
{
	for (; *v; v++)
		if ((unsigned char)*v < 0x20 && *v != '\t')
			return false;
	return true;
}

/* Headers osip keeps as structures: a lazy message only takes them through osip (a
 * value osip refused would make the later parse fail), Contact excepted after a check. */
static bool osip_structured(const char *name, size_t n)
{
	static const char *const names[] = {"via",  "from",  "to",	     "call-id",
					    "cseq", "route", "record-route", "mime-version"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (hname_is(name, n, names[i]))
			return true;
	for (size_t i = 0; i < sizeof list_hdrs / sizeof list_hdrs[0]; i++)
		if (hname_is(name, n, list_hdrs[i].lname))
			return true;
	return false;
}

/* Appends "name: value" to a lazy message's header text (before its empty line), or
 * goes through osip for a structured header. */
static int lazy_add_header(struct sip_msg *m, const char *name, size_t n, const char *value)
{
	size_t vn = strlen(value);
	if (hname_is(name, n, "contact")) {
		osip_contact_t *c = NULL;
		int bad = osip_contact_init(&c) != 0 || osip_contact_parse(c, value) != 0;
		osip_contact_free(c);
		if (bad)
			return PE_INVAL;
	} else if (osip_structured(name, n)) {
		return osip_message_set_header(OM(m), name, value) == 0 ? 0 : PE_INVAL;
	}
	char *l = realloc(m->lazy, m->lazy_len + n + vn + 4);
	if (!l)
		return PE_NOMEM;
	size_t at = m->lazy_len - 2; /* the empty line's CR LF */
	memcpy(l + at, name, n);
	memcpy(l + at + n, ": ", 2);
	memcpy(l + at + n + 2, value, vn);
	memcpy(l + at + n + 2 + vn, "\r\n\r\n", 4);
	m->lazy = l;
	m->lazy_len += n + vn + 4;
	return 0;
}

int sip_msg_add_header(struct sip_msg *m, const char *name, const char *value)
{
	size_t n;
	m->raw_ok = false;
	if (!is_token(name) || !value || !hvalue_ok(value))
		return PE_INVAL;
	n = strlen(name);
	if (hname_is(name, n, "content-type") || hname_is(name, n, "content-length"))
		return PE_INVAL;
	if (m->lazy && !m->om)
		return lazy_add_header(m, name, n, value);
	/* osip routes the structured ones (Contact, Accept, Route, …) to their lists */
	return osip_message_set_header(OM(m), name, value) == 0 ? 0 : PE_INVAL;
}

int sip_msg_set_contact(struct sip_msg *m, const char *contact)
{
	osip_contact_t *c;
	m->raw_ok = false;
	if (!contact || !hvalue_ok(contact))
		return PE_INVAL;
	while ((c = osip_list_get(&OM(m)->contacts, 0)) != NULL) {
		osip_list_remove(&OM(m)->contacts, 0);
		osip_contact_free(c);
	}
	free(m->cache[SMC_CONTACT]);
	m->cache[SMC_CONTACT] = NULL;
	return osip_message_set_contact(OM(m), contact) == 0 ? 0 : PE_INVAL;
}

int sip_msg_add_route(struct sip_msg *m, const char *route)
{
	m->raw_ok = false;
	if (!route || !hvalue_ok(route))
		return PE_INVAL;
	return osip_message_set_route(OM(m), route) == 0 ? 0 : PE_INVAL;
}

int sip_msg_set_body(struct sip_msg *m, const char *ctype, const void *body, size_t len)
{
	char *c = NULL;
	uint8_t *b = NULL;
	if (ctype && (!*ctype || !hvalue_ok(ctype)))
		return PE_INVAL;
	if (len && !ctype)
		return PE_INVAL;
	if (ctype && !(c = strdup(ctype)))
		return PE_NOMEM;
	if (len) {
		b = malloc(len);
		if (!b) {
			free(c);
			return PE_NOMEM;
		}
		memcpy(b, body, len);
	}
	free(m->ctype);
	body_release(m);
	m->ctype = c;
	m->body = b;
	m->body_len = len;
	return 0;
}

int sip_msg_serialise(struct sip_msg *m, struct buf *out)
{
	static const char tail[] = "Content-Length: 0\r\n\r\n";
	const size_t tl = sizeof tail - 1;
	char *s = NULL;
	size_t l = 0, keep;
	char extra[1100];
	int n, r;
	bool lazy = m->lazy && !m->om;

	if (lazy) {
		/* built or received text nobody changed: as it is, less its empty line */
		s = m->lazy;
		keep = m->lazy_len - 2;
	} else {
		/* osip must write no body and its own "Content-Length: 0" last, which we
		 * replace. */
		if (OM(m)->content_length) {
			osip_content_length_free(OM(m)->content_length);
			OM(m)->content_length = NULL;
		}
		if (OM(m)->content_type) {
			osip_content_type_free(OM(m)->content_type);
			OM(m)->content_type = NULL;
		}
		OM(m)->message_property = 2;
		if (osip_message_to_str(OM(m), &s, &l) != 0 || !s)
			return PE_PROTO;
		if (l < tl || memcmp(s + l - tl, tail, tl) != 0) {
			osip_free(s);
			return PE_PROTO;
		}
		keep = l - tl;
	}
	if (m->ctype)
		n = snprintf(extra, sizeof extra, "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n",
			     m->ctype, m->body_len);
	else
		n = snprintf(extra, sizeof extra, "Content-Length: %zu\r\n\r\n", m->body_len);
	uint8_t *w;
	if (n < 0 || (size_t)n >= sizeof extra)
		r = PE_PROTO;
	else
		r = buf_reserve(out, keep + (size_t)n + m->body_len, &w);
	if (r == 0) {
		memcpy(w, s, keep);
		memcpy(w + keep, extra, (size_t)n);
		if (m->body_len)
			memcpy(w + keep + (size_t)n, m->body, m->body_len);
		buf_commit(out, keep + (size_t)n + m->body_len);
	}
	if (!lazy)
		osip_free(s);
	return r;
}

/* ---------------------------------------------------------------------------------- */

const char *sip_reason_phrase(int status)
{
	switch (status) {
	case 100:
		return "Trying";
	case 180:
		return "Ringing";
	case 181:
		return "Call Is Being Forwarded";
	case 182:
		return "Queued";
	case 183:
		return "Session Progress";
	case 200:
		return "OK";
	case 202:
		return "Accepted";
	case 204:
		return "No Notification";
	case 300:
		return "Multiple Choices";
	case 301:
		return "Moved Permanently";
	case 302:
		return "Moved Temporarily";
	case 305:
		return "Use Proxy";
	case 380:
		return "Alternative Service";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 402:
		return "Payment Required";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 406:
		return "Not Acceptable";
	case 407:
		return "Proxy Authentication Required";
	case 408:
		return "Request Timeout";
	case 410:
		return "Gone";
	case 412:
		return "Conditional Request Failed";
	case 413:
		return "Request Entity Too Large";
	case 414:
		return "Request-URI Too Long";
	case 415:
		return "Unsupported Media Type";
	case 416:
		return "Unsupported URI Scheme";
	case 420:
		return "Bad Extension";
	case 421:
		return "Extension Required";
	case 423:
		return "Interval Too Brief";
	case 480:
		return "Temporarily Unavailable";
	case 481:
		return "Call/Transaction Does Not Exist";
	case 482:
		return "Loop Detected";
	case 483:
		return "Too Many Hops";
	case 484:
		return "Address Incomplete";
	case 485:
		return "Ambiguous";
	case 486:
		return "Busy Here";
	case 487:
		return "Request Terminated";
	case 488:
		return "Not Acceptable Here";
	case 489:
		return "Bad Event";
	case 491:
		return "Request Pending";
	case 493:
		return "Undecipherable";
	case 500:
		return "Server Internal Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Server Time-out";
	case 505:
		return "Version Not Supported";
	case 513:
		return "Message Too Large";
	case 600:
		return "Busy Everywhere";
	case 603:
		return "Decline";
	case 604:
		return "Does Not Exist Anywhere";
	case 606:
		return "Not Acceptable";
	default:
		return "Unknown";
	}
}

/* xoshiro256** seeded once from the kernel: tags and branches need uniqueness, and
 * being hard to guess keeps off-path response spoofing out; they are not secrets. */
static uint64_t rng_s[4];
static bool rng_seeded;

static inline uint64_t rotl(const uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(void)
{
	if (!rng_seeded) {
		if (getrandom(rng_s, sizeof rng_s, 0) != (ssize_t)sizeof rng_s) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			rng_s[0] = (uint64_t)ts.tv_nsec ^ 0x9e3779b97f4a7c15ULL;
			rng_s[1] = (uint64_t)ts.tv_sec * 0xbf58476d1ce4e5b9ULL;
			rng_s[2] = (uint64_t)getpid() * 0x94d049bb133111ebULL;
			rng_s[3] = 0x2545f4914f6cdd1dULL;
		}
		rng_seeded = true;
	}
	const uint64_t result = rotl(rng_s[1] * 5, 7) * 9;
	const uint64_t t = rng_s[1] << 17;
	rng_s[2] ^= rng_s[0];
	rng_s[3] ^= rng_s[1];
	rng_s[1] ^= rng_s[2];
	rng_s[0] ^= rng_s[3];
	rng_s[2] ^= t;
	rng_s[3] = rotl(rng_s[3], 45);
	return result;
}

void sip_random_token(char *out, size_t len)
{
	static const char alpha[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	uint64_t r = 0;
	int left = 0;
	if (len == 0)
		return;
	for (size_t i = 0; i + 1 < len; i++) {
		if (left == 0) {
			r = rng_next();
			left = 12; /* 12 draws of 36 use < 63 bits' worth with small bias */
		}
		out[i] = alpha[r % 36];
		r /= 36;
		left--;
	}
	out[len - 1] = '\0';
}
