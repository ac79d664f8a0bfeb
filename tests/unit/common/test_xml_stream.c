/* Unit tests for the XMPP XML stream layer (common/xml_stream.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "buf.h"
#include "err.h"
#include "xml_stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- recorder: every event becomes one line of a log --------------------------- */

struct rec {
	struct xs *xs;
	struct buf log;
	const char *input; /* whole input, to check st->raw against */
	size_t input_len;
	bool terminal; /* an error or close was seen */
	int nstanza;
	uint64_t ends[64];			/* end offset of each stanza */
	int stop_at_stanza;			/* xs_stop() in the n-th stanza (1-based) */
	int reset_at_stanza;			/* xs_reset() in the n-th stanza */
	const struct xs_limits *on_open_limits; /* xs_set_limits() in on_open */
	int nerror;
};

static void rec_printf(struct rec *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rec_printf(struct rec *r, const char *fmt, ...)
{
	char tmp[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < sizeof tmp);
	assert_int_equal(buf_append(&r->log, tmp, (size_t)n), 0);
}

#define NZ(s) ((s) ? (s) : "-")

static void cb_open(void *ud, const struct xs_open *o)
{
	struct rec *r = ud;
	assert_false(r->terminal);
	assert_non_null(o->root);
	rec_printf(r, "open to=%s from=%s id=%s version=%s lang=%s ns=%s db=%d\n", NZ(o->to),
		   NZ(o->from), NZ(o->id), NZ(o->version), NZ(o->lang), o->content_ns, o->dialback);
	assert_true(xs_is_open(r->xs));
	assert_string_equal(xs_content_ns(r->xs), o->content_ns);
	if (r->on_open_limits)
		assert_int_equal(xs_set_limits(r->xs, r->on_open_limits), 0);
}

static void cb_stanza(void *ud, const struct xs_stanza *st)
{
	struct rec *r = ud;
	assert_false(r->terminal);
	r->nstanza++;
	if ((size_t)r->nstanza <= sizeof r->ends / sizeof r->ends[0])
		r->ends[r->nstanza - 1] = st->offset + st->bytes;
	assert_true(st->bytes >= 3);
	if (st->raw) {
		assert_int_equal(st->raw[0], '<');
		assert_int_equal(st->raw[st->bytes - 1], '>');
		if (r->input) {
			assert_true(st->offset + st->bytes <= r->input_len);
			assert_memory_equal(st->raw, r->input + st->offset, st->bytes);
		}
	}
	rec_printf(r, "stanza ");
	assert_int_equal(xs_serialize(st->el, &r->log), 0);
	rec_printf(r, "\n");
	if (r->nstanza == r->stop_at_stanza)
		xs_stop(r->xs);
	if (r->nstanza == r->reset_at_stanza)
		xs_reset(r->xs);
}

static void cb_close(void *ud)
{
	struct rec *r = ud;
	assert_false(r->terminal);
	r->terminal = true;
	rec_printf(r, "close\n");
}

static void cb_error(void *ud, const struct xs_error *e)
{
	struct rec *r = ud;
	assert_false(r->terminal);
	r->terminal = true;
	r->nerror++;
	assert_non_null(e->text);
	assert_true(e->text[0] != '\0');
	rec_printf(r, "error %s%s\n", xs_cond_name(e->cond),
		   e->app == XS_APP_STANZA_TOO_BIG ? " stanza-too-big" : "");
}

static const struct xs_callbacks rec_cb = {cb_open, cb_stanza, cb_close, cb_error};

static void rec_init(struct rec *r, const struct xs_limits *lim, const char *in, size_t n)
{
	memset(r, 0, sizeof *r);
	buf_init(&r->log, 0);
	r->input = in;
	r->input_len = n;
	r->xs = xs_new(lim ? lim : &xs_limits_postauth, &rec_cb, r);
	assert_non_null(r->xs);
}

static void rec_deinit(struct rec *r)
{
	xs_free(r->xs);
	buf_deinit(&r->log);
}

/* The log as a NUL-terminated string (valid until the next append). */
static const char *rec_log(struct rec *r)
{
	assert_int_equal(buf_append(&r->log, "", 1), 0);
	r->log.len--;
	return (const char *)buf_head(&r->log);
}

/* Feeds in[0..n) cut at cuts[]; after an error every later feed must return the same
 * code and emit nothing. Returns the first non-zero return code, or 0. */
static int feed_cuts(struct rec *r, const char *in, size_t n, const size_t *cuts, size_t ncuts)
{
	int first = 0;
	size_t from = 0;
	for (size_t i = 0; i <= ncuts; i++) {
		size_t to = i < ncuts ? cuts[i] : n;
		int rc = xs_feed(r->xs, in + from, to - from);
		if (rc == PE_CLOSED) /* feeding after the close is refused, not an error */
			continue;
		if (first)
			assert_int_equal(rc, first);
		if (rc && !first)
			first = rc;
		from = to;
	}
	return first;
}

static int feed_step(struct rec *r, const char *in, size_t n, size_t step)
{
	int first = 0;
	for (size_t off = 0; off < n; off += step) {
		size_t k = n - off < step ? n - off : step;
		int rc = xs_feed(r->xs, in + off, k);
		if (rc && !first)
			first = rc;
	}
	return first;
}

/* Runs a whole input with the given cuts and returns its log (caller frees). */
static char *run_cuts(const char *in, size_t n, const size_t *cuts, size_t ncuts,
		      const struct xs_limits *lim, int *rc)
{
	struct rec r;
	rec_init(&r, lim, in, n);
	int x = feed_cuts(&r, in, n, cuts, ncuts);
	if (rc)
		*rc = x;
	char *s = strdup(rec_log(&r));
	rec_deinit(&r);
	return s;
}

static char *run_step(const char *in, size_t n, size_t step, const struct xs_limits *lim, int *rc)
{
	struct rec r;
	rec_init(&r, lim, in, n);
	int x = feed_step(&r, in, n, step);
	if (rc)
		*rc = x;
	char *s = strdup(rec_log(&r));
	rec_deinit(&r);
	return s;
}

static char *run1(const char *in, const struct xs_limits *lim, int *rc)
{
	return run_cuts(in, strlen(in), NULL, 0, lim, rc);
}

/* ---- inputs ----------------------------------------------------------------------- */

#define HDR                                                                                        \
	"<?xml version='1.0'?><stream:stream xmlns='jabber:server' "                               \
	"xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "       \
	"to='example.org' from='partner.example' version='1.0' xml:lang='en' id='s1'>"
#define OPEN_LOG                                                                                   \
	"open to=example.org from=partner.example id=s1 version=1.0 lang=en ns=jabber:server "     \
	"db=1\n"
#define HDR_PLAIN                                                                                  \
	"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "    \
	"to='example.org' version='1.0'>"
#define OPEN_PLAIN_LOG "open to=example.org from=- id=- version=1.0 lang=- ns=jabber:server db=0\n"
#define CLOSE "</stream:stream>"

static const char s2s_stream[] =
    HDR "\n"
	"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>"
	"</starttls><dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>"
	"</stream:features>\n"
	"<message from='a@partner.example/r' to='b@example.org' type='chat' id='m1' "
	"xml:lang='en'><body>Hello &amp; welcome &lt;3 &#x263A;</body><thread>t1</thread>"
	"<active xmlns='http://jabber.org/protocol/chatstates'/></message>\n"
	"<db:result from='partner.example' to='example.org'>abcdef</db:result>"
	"<iq type='get' id='p1' from='partner.example' to='example.org'>"
	"<ping xmlns='urn:xmpp:ping'/></iq>  \r\n\t"
	"<r xmlns='urn:xmpp:sm:3'/>\n" CLOSE;

static const char s2s_log[] = OPEN_LOG
    "stanza <features xmlns='http://etherx.jabber.org/streams'><starttls "
    "xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls><dialback "
    "xmlns='urn:xmpp:features:dialback'><errors/></dialback></features>\n"
    "stanza <message xmlns='jabber:server' from='a@partner.example/r' to='b@example.org' "
    "type='chat' id='m1' xml:lang='en'><body>Hello &amp; welcome &lt;3 \xe2\x98\xba</body>"
    "<thread>t1</thread><active xmlns='http://jabber.org/protocol/chatstates'/></message>\n"
    "stanza <result xmlns='jabber:server:dialback' from='partner.example' "
    "to='example.org'>abcdef</result>\n"
    "stanza <iq xmlns='jabber:server' type='get' id='p1' from='partner.example' "
    "to='example.org'><ping xmlns='urn:xmpp:ping'/></iq>\n"
    "stanza <r xmlns='urn:xmpp:sm:3'/>\n"
    "close\n";

/* A short stream with one stanza, for the quadratic (3-chunk) split test. */
static const char one_stanza[] =
    HDR_PLAIN "<message to='b@example.org' from='a@partner.example' id='x'>"
	      "<body>caf\xc3\xa9 &amp; \xf0\x9f\x98\x80</body></message>" CLOSE;
static const char one_stanza_log[] = OPEN_PLAIN_LOG
    "stanza <message xmlns='jabber:server' to='b@example.org' from='a@partner.example' "
    "id='x'><body>caf\xc3\xa9 &amp; \xf0\x9f\x98\x80</body></message>\n"
    "close\n";

/* End offsets of the open event, each stanza and the close, from a full run. */
static size_t event_ends(const char *in, size_t n, uint64_t *ends, size_t max)
{
	struct rec r;
	rec_init(&r, NULL, in, n);
	assert_int_equal(xs_feed(r.xs, in, n), 0);
	const char *hdr = strstr(in, "<stream:stream");
	assert_non_null(hdr);
	size_t k = 0;
	ends[k++] = (uint64_t)(strchr(hdr, '>') + 1 - in);
	for (int i = 0; i < r.nstanza && k < max; i++)
		ends[k++] = r.ends[i];
	const char *cl = strstr(in, CLOSE);
	if (cl && k < max)
		ends[k++] = (uint64_t)(cl + strlen(CLOSE) - in);
	rec_deinit(&r);
	return k;
}

/* The first k lines of log. */
static size_t log_prefix_len(const char *log, size_t k)
{
	const char *p = log;
	for (size_t i = 0; i < k; i++) {
		p = strchr(p, '\n');
		assert_non_null(p);
		p++;
	}
	return (size_t)(p - log);
}

/* ---- valid streams ------------------------------------------------------------------- */

static void test_full_stream(void **state)
{
	(void)state;
	int rc;
	char *log = run1(s2s_stream, NULL, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(log, s2s_log);
	free(log);

	log = run1(one_stanza, NULL, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(log, one_stanza_log);
	free(log);
}

struct valid_case {
	const char *in;
	const char *log;
};

static const struct valid_case valid_cases[] = {
    /* jabber:client, no XML declaration, no dialback namespace */
    {"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
     "to='example.org'><presence/>" CLOSE,
     "open to=example.org from=- id=- version=- lang=- ns=jabber:client db=0\n"
     "stanza <presence xmlns='jabber:client'/>\nclose\n"},
    /* dialback namespace under another prefix; double-quoted attributes; encoding utf-8 */
    {"<?xml version=\"1.0\" encoding=\"utf-8\"?><s:stream xmlns:s=\"http://etherx.jabber.org/"
     "streams\" xmlns=\"jabber:server\" xmlns:d=\"jabber:server:dialback\" id=\"a&amp;b\">"
     "<d:verify id='i'>k</d:verify></s:stream>",
     "open to=- from=- id=a&b version=- lang=- ns=jabber:server db=1\n"
     "stanza <verify xmlns='jabber:server:dialback' id='i'>k</verify>\nclose\n"},
    /* CDATA, character references, entities in attributes, CR normalisation */
    {HDR_PLAIN "<message id='&lt;&#x41;&gt;' type=\"&quot;'\"><body><![CDATA[<b>&amp;]]> &#13;x"
	       "\r\ny</body></message>" CLOSE,
     OPEN_PLAIN_LOG "stanza <message xmlns='jabber:server' id='&lt;A&gt;' "
		    "type='&quot;&apos;'><body>&lt;b&gt;&amp;amp; &#13;x\ny</body></message>\n"
		    "close\n"},
    /* tab/newline in attributes: literal ones normalise to spaces, references survive */
    {HDR_PLAIN "<iq id='a\tb\nc' type='x&#9;y&#10;z&#13;'/>" CLOSE,
     OPEN_PLAIN_LOG "stanza <iq xmlns='jabber:server' id='a b c' type='x&#9;y&#10;z&#13;'/>\n"
		    "close\n"},
    /* a stream error from the peer is a stanza like any other */
    {HDR_PLAIN "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
	       "</stream:error>" CLOSE,
     OPEN_PLAIN_LOG "stanza <error xmlns='http://etherx.jabber.org/streams'><host-unknown "
		    "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></error>\nclose\n"},
    /* empty stream element */
    {"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'/>",
     "open to=- from=- id=- version=- lang=- ns=jabber:server db=0\nclose\n"},
    /* UTF-8 BOM, whitespace before the header */
    {"\xef\xbb\xbf \n" HDR_PLAIN "<presence/>",
     OPEN_PLAIN_LOG "stanza <presence xmlns='jabber:server'/>\n"},
    /* DEL and the largest code points are allowed */
    {HDR_PLAIN "<message><body>\x7f\xef\xbf\xbd\xf4\x8f\xbf\xbf</body></message>",
     OPEN_PLAIN_LOG "stanza <message xmlns='jabber:server'><body>\x7f\xef\xbf\xbd"
		    "\xf4\x8f\xbf\xbf</body></message>\n"},
};

static void test_valid_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof valid_cases / sizeof valid_cases[0]; i++) {
		const struct valid_case *c = &valid_cases[i];
		size_t n = strlen(c->in);
		int rc;
		char *log = run1(c->in, NULL, &rc);
		if (strcmp(log, c->log) != 0)
			print_error("case %zu\n", i);
		assert_string_equal(log, c->log);
		assert_int_equal(rc, 0);
		free(log);
		/* the same, byte by byte */
		log = run_step(c->in, n, 1, NULL, &rc);
		assert_string_equal(log, c->log);
		free(log);
	}
}

/* Every truncated prefix: no error, and exactly the events whose last byte is in the
 * prefix — an event is neither premature nor held back (reparse deferral). */
static void check_prefixes(const char *in, const char *full_log)
{
	size_t n = strlen(in);
	uint64_t ends[64];
	size_t nends = event_ends(in, n, ends, 64);
	for (size_t len = 0; len <= n; len++) {
		struct rec r;
		rec_init(&r, NULL, in, n);
		assert_int_equal(xs_feed(r.xs, in, len), 0);
		size_t k = 0;
		while (k < nends && ends[k] <= len)
			k++;
		const char *log = rec_log(&r);
		size_t want = log_prefix_len(full_log, k);
		if (strlen(log) != want || memcmp(log, full_log, want) != 0)
			print_error("prefix %zu: got\n%s\n", len, log);
		assert_int_equal(strlen(log), want);
		assert_memory_equal(log, full_log, want);
		assert_int_equal(xs_error(r.xs)->cond, XS_COND_NONE);
		rec_deinit(&r);
	}
}

static void test_every_prefix(void **state)
{
	(void)state;
	check_prefixes(s2s_stream, s2s_log);
	check_prefixes(one_stanza, one_stanza_log);
}

/* Every split into 2 chunks of the long stream, and into 3 chunks of the short one. */
static void test_every_split(void **state)
{
	(void)state;
	size_t n = strlen(s2s_stream);
	for (size_t i = 0; i <= n; i++) {
		int rc;
		char *log = run_cuts(s2s_stream, n, &i, 1, NULL, &rc);
		assert_int_equal(rc, 0);
		if (strcmp(log, s2s_log) != 0)
			print_error("split at %zu\n", i);
		assert_string_equal(log, s2s_log);
		free(log);
	}
	n = strlen(one_stanza);
	for (size_t i = 0; i <= n; i++)
		for (size_t j = i; j <= n; j++) {
			size_t cuts[2] = {i, j};
			int rc;
			char *log = run_cuts(one_stanza, n, cuts, 2, NULL, &rc);
			assert_int_equal(rc, 0);
			if (strcmp(log, one_stanza_log) != 0)
				print_error("split at %zu,%zu\n", i, j);
			assert_string_equal(log, one_stanza_log);
			free(log);
		}
}

static void test_byte_by_byte(void **state)
{
	(void)state;
	for (size_t step = 1; step <= 7; step++) {
		int rc;
		char *log = run_step(s2s_stream, strlen(s2s_stream), step, NULL, &rc);
		assert_int_equal(rc, 0);
		assert_string_equal(log, s2s_log);
		free(log);
	}
}

/* ---- errors ---------------------------------------------------------------------------- */

struct err_case {
	const char *name;
	const char *in;
	size_t len; /* 0: strlen(in) */
	enum xs_cond cond;
	int nstanza; /* stanzas delivered before the error */
};

#define BILLION_LAUGHS                                                                             \
	"<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"                                 \
	"<!ENTITY lol1 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>"                      \
	"<!ENTITY lol2 '&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;'>"            \
	"<!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>"            \
	"<!ENTITY lol4 '&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;'>"            \
	"<!ENTITY lol5 '&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;'>"            \
	"<!ENTITY lol6 '&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;'>"            \
	"<!ENTITY lol7 '&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;'>"            \
	"<!ENTITY lol8 '&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;'>"            \
	"<!ENTITY lol9 '&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;'>]>"          \
	"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>"    \
	"<message><body>&lol9;</body></message>"

#define M_OPEN "<message><body>"
#define M_CLOSE "</body></message>"

static const struct err_case err_cases[] = {
    /* restricted XML (RFC 6120 §11.1) */
    {"doctype", "<?xml version='1.0'?><!DOCTYPE stream:stream>" HDR_PLAIN, 0,
     XS_COND_RESTRICTED_XML, 0},
    {"doctype system", "<!DOCTYPE s SYSTEM 'http://evil/x.dtd'>" HDR_PLAIN, 0,
     XS_COND_RESTRICTED_XML, 0},
    {"billion laughs", BILLION_LAUGHS, 0, XS_COND_RESTRICTED_XML, 0},
    {"external entity",
     "<!DOCTYPE s [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>" HDR_PLAIN "<a>&x;</a>", 0,
     XS_COND_RESTRICTED_XML, 0},
    {"comment before root", "<!-- hi -->" HDR_PLAIN, 0, XS_COND_RESTRICTED_XML, 0},
    {"comment at stream level", HDR_PLAIN "<presence/><!-- hi --><presence/>", 0,
     XS_COND_RESTRICTED_XML, 1},
    {"comment in stanza", HDR_PLAIN "<message><!--x--></message>", 0, XS_COND_RESTRICTED_XML, 0},
    {"pi before root", "<?foo bar?>" HDR_PLAIN, 0, XS_COND_RESTRICTED_XML, 0},
    {"pi in stanza", HDR_PLAIN "<message><?php echo 1; ?></message>", 0, XS_COND_RESTRICTED_XML, 0},
    {"misplaced xml decl", HDR_PLAIN "<?xml version='1.0'?>", 0, XS_COND_RESTRICTED_XML, 0},
    {"undefined entity", HDR_PLAIN M_OPEN "&foo;" M_CLOSE, 0, XS_COND_RESTRICTED_XML, 0},
    {"undefined entity in attr", HDR_PLAIN "<message id='&foo;'/>", 0, XS_COND_RESTRICTED_XML, 0},
    /* encodings */
    {"latin1 declared", "<?xml version='1.0' encoding='ISO-8859-1'?>" HDR_PLAIN, 0,
     XS_COND_UNSUPPORTED_ENCODING, 0},
    {"utf-16 declared", "<?xml version='1.0' encoding='UTF-16'?>" HDR_PLAIN, 0,
     XS_COND_UNSUPPORTED_ENCODING, 0},
    {"xml 1.1", "<?xml version='1.1'?>" HDR_PLAIN, 0, XS_COND_BAD_FORMAT, 0},
    /* expat would switch to UTF-16 on these even when told the input is UTF-8 */
    {"utf-16le bom", "\xff\xfe<\0s\0", 6, XS_COND_UNSUPPORTED_ENCODING, 0},
    {"utf-16be bom", "\xfe\xff\0<\0s", 6, XS_COND_UNSUPPORTED_ENCODING, 0},
    {"utf-16le", "<\0s\0", 4, XS_COND_UNSUPPORTED_ENCODING, 0},
    {"utf-16be", "\0<\0s", 4, XS_COND_UNSUPPORTED_ENCODING, 0},
    {"http", "GET / HTTP/1.1\r\n", 0, XS_COND_NOT_WELL_FORMED, 0},
    /* invalid UTF-8 in text */
    {"overlong 2", HDR_PLAIN M_OPEN "\xc0\xaf" M_CLOSE, 0, XS_COND_NOT_WELL_FORMED, 0},
    {"overlong 2b", HDR_PLAIN M_OPEN "\xc1\xbf" M_CLOSE, 0, XS_COND_NOT_WELL_FORMED, 0},
    {"overlong 3", HDR_PLAIN M_OPEN "\xe0\x80\xaf" M_CLOSE, 0, XS_COND_NOT_WELL_FORMED, 0},
    {"overlong 4", HDR_PLAIN M_OPEN "\xf0\x80\x80\xaf" M_CLOSE, 0, XS_COND_NOT_WELL_FORMED, 0},
    {"surrogate high", HDR_PLAIN M_OPEN "\xed\xa0\x80" M_CLOSE, 0, XS_COND_NOT_WELL_FORMED, 0},
    {"surrogate low", HDR_PLAIN M_OPEN "\xed\xbf\xbf" M_CLOSE, 0, XS_COND_NOT_WELL_FORMED, 0},
    {"above U+10FFFF", HDR_PLAIN M_OPEN "\xf4\x90\x80\x80" M_CLOSE, 0, XS_COND_NOT_WELL_FORMED, 0},
    {"byte F5", HDR_PLAIN M_OPEN "\xf5\x80\x80\x80" M_CLOSE, 0, XS_COND_NOT_WELL_FORMED, 0},
    {"byte FF", HDR_PLAIN M_OPEN "\xff" M_CLOSE, 0, XS_COND_NOT_WELL_FORMED, 0},
    {"lone continuation", HDR_PLAIN M_OPEN "a\x80z" M_CLOSE, 0, XS_COND_NOT_WELL_FORMED, 0},
    {"truncated sequence", HDR_PLAIN M_OPEN "\xe2\x82" M_CLOSE, 0, XS_COND_NOT_WELL_FORMED, 0},
    {"truncated 4-byte", HDR_PLAIN M_OPEN "\xf0\x9f\x98" M_CLOSE, 0, XS_COND_NOT_WELL_FORMED, 0},
    {"U+FFFE", HDR_PLAIN M_OPEN "\xef\xbf\xbe" M_CLOSE, 0, XS_COND_NOT_WELL_FORMED, 0},
    {"U+FFFF", HDR_PLAIN M_OPEN "\xef\xbf\xbf" M_CLOSE, 0, XS_COND_NOT_WELL_FORMED, 0},
    {"control char", HDR_PLAIN M_OPEN "\x01" M_CLOSE, 0, XS_COND_NOT_WELL_FORMED, 0},
    {"NUL", HDR_PLAIN M_OPEN "a\0b" M_CLOSE, sizeof(HDR_PLAIN M_OPEN "a\0b" M_CLOSE) - 1,
     XS_COND_NOT_WELL_FORMED, 0},
    {"bad char ref", HDR_PLAIN M_OPEN "&#1;" M_CLOSE, 0, XS_COND_NOT_WELL_FORMED, 0},
    {"bad char ref surrogate", HDR_PLAIN M_OPEN "&#xD800;" M_CLOSE, 0, XS_COND_NOT_WELL_FORMED, 0},
    /* invalid UTF-8 elsewhere */
    {"invalid utf-8 in attr", HDR_PLAIN "<message id='\xed\xa0\x80'/>", 0, XS_COND_NOT_WELL_FORMED,
     0},
    {"invalid utf-8 in name",
     HDR_PLAIN "<m\xc0\xaf"
	       "essage/>",
     0, XS_COND_NOT_WELL_FORMED, 0},
    {"invalid utf-8 in header", "<stream:stream to='\xf8\x88\x80\x80\x80'", 0,
     XS_COND_NOT_WELL_FORMED, 0},
    /* malformed XML */
    {"mismatched tag", HDR_PLAIN "<message></iq>", 0, XS_COND_NOT_WELL_FORMED, 0},
    {"duplicate attribute", HDR_PLAIN "<message id='a' id='b'/>", 0, XS_COND_NOT_WELL_FORMED, 0},
    {"duplicate expanded attribute",
     HDR_PLAIN "<message xmlns:a='urn:x' xmlns:b='urn:x' a:i='1' b:i='2'/>", 0,
     XS_COND_NOT_WELL_FORMED, 0},
    {"unbound prefix", HDR_PLAIN "<foo:bar/>", 0, XS_COND_NOT_WELL_FORMED, 0},
    {"lt in attribute", HDR_PLAIN "<message id='<'/>", 0, XS_COND_NOT_WELL_FORMED, 0},
    {"second root",
     "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber."
     "org/streams'/><x/>",
     0, XS_COND_NONE, 0}, /* stops at the close: the junk is unparsed, not an error */
    {"text at stream level", HDR_PLAIN "<presence/>hello<presence/>", 0, XS_COND_BAD_FORMAT, 1},
    {"text at stream level before close", HDR_PLAIN " \n hello " CLOSE, 0, XS_COND_BAD_FORMAT, 0},
    /* raised at the next markup, so that it does not depend on the split: */
    {"text at stream level, no markup yet", HDR_PLAIN "<presence/>hello", 0, XS_COND_NONE, 1},
    /* expat reports "abc" only when "]]>" arrives later: the result is the same */
    {"text then ]]> at stream level", HDR_PLAIN "<presence/>abc]]>", 0, XS_COND_NOT_WELL_FORMED, 1},
    {"text then ]]> in stanza", HDR_PLAIN M_OPEN "abc]]>" M_CLOSE, 0, XS_COND_NOT_WELL_FORMED, 0},
    /* namespaces and root */
    {"wrong stream namespace",
     "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streamz'>", 0,
     XS_COND_INVALID_NAMESPACE, 0},
    {"stream in content namespace", "<stream xmlns='jabber:server'>", 0, XS_COND_INVALID_NAMESPACE,
     0},
    {"wrong root",
     "<stream:features xmlns='jabber:server' "
     "xmlns:stream='http://etherx.jabber.org/streams'>",
     0, XS_COND_BAD_FORMAT, 0},
    {"html root", "<html><body>", 0, XS_COND_BAD_FORMAT, 0},
    {"no default namespace", "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>", 0,
     XS_COND_INVALID_NAMESPACE, 0},
    {"unknown default namespace",
     "<stream:stream xmlns='jabber:component:accept' "
     "xmlns:stream='http://etherx.jabber.org/streams'>",
     0, XS_COND_INVALID_NAMESPACE, 0},
    {"empty default namespace",
     "<stream:stream xmlns='' xmlns:stream='http://etherx.jabber.org/streams'>", 0,
     XS_COND_INVALID_NAMESPACE, 0},
    {"streams ns as default", "<stream xmlns='http://etherx.jabber.org/streams'>", 0,
     XS_COND_INVALID_NAMESPACE, 0},
};

static void check_err_case(const struct err_case *c, size_t step)
{
	size_t n = c->len ? c->len : strlen(c->in);
	struct rec r;
	rec_init(&r, NULL, c->in, n);
	int rc = step ? feed_step(&r, c->in, n, step) : feed_cuts(&r, c->in, n, NULL, 0);
	if (xs_error(r.xs)->cond != c->cond)
		print_error("case '%s' step %zu: got %s, log:\n%s\n", c->name, step,
			    xs_cond_name(xs_error(r.xs)->cond), rec_log(&r));
	assert_int_equal(xs_error(r.xs)->cond, c->cond);
	assert_int_equal(r.nstanza, c->nstanza);
	if (c->cond != XS_COND_NONE) {
		assert_int_equal(rc, PE_PROTO);
		assert_int_equal(r.nerror, 1);
		/* sticky: more input gives the same code and no event */
		assert_int_equal(xs_feed(r.xs, "<presence/>", 11), PE_PROTO);
		assert_int_equal(r.nerror, 1);
		assert_int_equal(r.nstanza, c->nstanza);
		assert_false(xs_is_open(r.xs));
		/* a failed stream gives its parser and arena back at once */
		assert_true(xs_mem_usage(r.xs) < 1024);
	}
	rec_deinit(&r);
}

static void test_error_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof err_cases / sizeof err_cases[0]; i++) {
		check_err_case(&err_cases[i], 0);
		check_err_case(&err_cases[i], 1);
		check_err_case(&err_cases[i], 5);
	}
}

/* The entity declarations never expand: the parser stops at <!DOCTYPE and its memory
 * stays at its idle size. */
static void test_billion_laughs_memory(void **state)
{
	(void)state;
	struct rec r;
	rec_init(&r, &xs_limits_preauth, NULL, 0);
	assert_int_equal(xs_feed(r.xs, BILLION_LAUGHS, strlen(BILLION_LAUGHS)), PE_PROTO);
	assert_int_equal(xs_error(r.xs)->cond, XS_COND_RESTRICTED_XML);
	assert_string_equal(xs_error(r.xs)->text, "DOCTYPE not allowed");
	assert_true(xs_mem_usage(r.xs) < 1024);
	assert_string_equal(rec_log(&r), "error restricted-xml\n");
	rec_deinit(&r);
}

/* ---- limits ----------------------------------------------------------------------------- */

/* A stream header and one stanza of exactly `bytes` bytes (a message with a body). */
static char *make_sized(size_t bytes, size_t *hdr_len)
{
	static const char pre[] = "<message><body>", post[] = "</body></message>";
	size_t fill = bytes - (sizeof pre - 1) - (sizeof post - 1);
	size_t h = strlen(HDR_PLAIN);
	char *s = malloc(h + bytes + 1);
	memcpy(s, HDR_PLAIN, h);
	memcpy(s + h, pre, sizeof pre - 1);
	memset(s + h + sizeof pre - 1, 'x', fill);
	memcpy(s + h + sizeof pre - 1 + fill, post, sizeof post);
	if (hdr_len)
		*hdr_len = h;
	return s;
}

static void check_size(const struct xs_limits *lim, size_t bytes, bool ok, size_t step)
{
	char *s = make_sized(bytes, NULL);
	size_t n = strlen(s);
	struct rec r;
	rec_init(&r, lim, s, n);
	int rc = step ? feed_step(&r, s, n, step) : xs_feed(r.xs, s, n);
	if (ok) {
		assert_int_equal(rc, 0);
		assert_int_equal(r.nstanza, 1);
		assert_int_equal(r.ends[0], n);
	} else {
		assert_int_equal(rc, PE_PROTO);
		assert_int_equal(r.nstanza, 0);
		assert_int_equal(xs_error(r.xs)->cond, XS_COND_POLICY_VIOLATION);
		assert_int_equal(xs_error(r.xs)->app, XS_APP_STANZA_TOO_BIG);
	}
	rec_deinit(&r);
	free(s);
}

static void test_limit_bytes(void **state)
{
	(void)state;
	static const size_t steps[] = {0, 1, 7, 1000, 4096};
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		check_size(&xs_limits_preauth, 8192, true, steps[i]);
		check_size(&xs_limits_preauth, 8193, false, steps[i]);
		check_size(&xs_limits_postauth, 8193, true, steps[i]);
		if (steps[i] != 1) {
			check_size(&xs_limits_postauth, 256 * 1024, true, steps[i]);
			check_size(&xs_limits_postauth, 256 * 1024 + 1, false, steps[i]);
		}
	}
}

/* An endless start tag never completes a token: the limit still fires, before expat
 * buffers more than max_stanza_bytes of it. */
static void test_limit_endless_tag(void **state)
{
	(void)state;
	struct rec r;
	rec_init(&r, &xs_limits_preauth, NULL, 0);
	assert_int_equal(xs_feed(r.xs, HDR_PLAIN "<message id='", strlen(HDR_PLAIN) + 13), 0);
	char chunk[1000];
	memset(chunk, 'a', sizeof chunk);
	int rc = 0;
	for (int i = 0; i < 100 && rc == 0; i++)
		rc = xs_feed(r.xs, chunk, sizeof chunk);
	assert_int_equal(rc, PE_PROTO);
	assert_int_equal(xs_error(r.xs)->app, XS_APP_STANZA_TOO_BIG);
	assert_true(xs_mem_usage(r.xs) < 64 * 1024);
	rec_deinit(&r);

	/* a huge stream header too */
	rec_init(&r, &xs_limits_preauth, NULL, 0);
	assert_int_equal(xs_feed(r.xs, "<stream:stream to='", 19), 0);
	rc = 0;
	for (int i = 0; i < 100 && rc == 0; i++)
		rc = xs_feed(r.xs, chunk, sizeof chunk);
	assert_int_equal(rc, PE_PROTO);
	assert_int_equal(xs_error(r.xs)->cond, XS_COND_POLICY_VIOLATION);
	rec_deinit(&r);
}

/* Whitespace keep-alives between stanzas end a unit: they never add up to a limit. */
static void test_limit_keepalives(void **state)
{
	(void)state;
	struct rec r;
	rec_init(&r, &xs_limits_preauth, NULL, 0);
	assert_int_equal(xs_feed(r.xs, HDR_PLAIN, strlen(HDR_PLAIN)), 0);
	static char ws[20000];
	memset(ws, ' ', sizeof ws);
	for (int i = 0; i < 50; i++) {
		assert_int_equal(xs_feed(r.xs, " ", 1), 0);
		assert_int_equal(xs_feed(r.xs, "<presence/>", 11), 0);
	}
	assert_int_equal(xs_feed(r.xs, ws, sizeof ws), 0); /* 20000 bytes of whitespace at once */
	assert_int_equal(xs_feed(r.xs, "<presence/>\r\n", 13), 0);
	assert_int_equal(r.nstanza, 51);
	rec_deinit(&r);
}

static char *nested(int depth)
{
	struct buf b;
	buf_init(&b, 0);
	buf_append(&b, HDR_PLAIN, strlen(HDR_PLAIN));
	for (int i = 0; i < depth; i++)
		buf_append(&b, "<a>", 3);
	for (int i = 0; i < depth; i++)
		buf_append(&b, "</a>", 4);
	buf_append(&b, "", 1);
	char *s = strdup((char *)buf_head(&b));
	buf_deinit(&b);
	return s;
}

static char *flat(int elements, int attrs, size_t text)
{
	struct buf b;
	buf_init(&b, 0);
	buf_append(&b, HDR_PLAIN "<message", strlen(HDR_PLAIN) + 8);
	for (int i = 0; i < attrs; i++) {
		char a[32];
		int n = snprintf(a, sizeof a, " a%d='%d'", i, i);
		buf_append(&b, a, (size_t)n);
	}
	buf_append(&b, ">", 1);
	for (size_t i = 0; i < text; i++)
		buf_append(&b, i % 2 ? "&amp;" : "t", i % 2 ? 5 : 1);
	for (int i = 1; i < elements; i++)
		buf_append(&b, "<x/>", 4);
	buf_append(&b, "</message>", 11);
	char *s = strdup((char *)buf_head(&b));
	buf_deinit(&b);
	return s;
}

static void expect_policy(char *s, const struct xs_limits *lim, bool ok)
{
	for (size_t step = 0; step <= 3; step += 3) {
		int rc;
		char *log = step ? run_step(s, strlen(s), step, lim, &rc) : run1(s, lim, &rc);
		if (ok) {
			assert_int_equal(rc, 0);
			assert_non_null(strstr(log, "stanza "));
		} else {
			assert_int_equal(rc, PE_PROTO);
			assert_null(strstr(log, "stanza "));
			assert_non_null(strstr(log, "error policy-violation\n"));
		}
		free(log);
	}
	free(s);
}

static void test_limit_depth_elements_attrs_text(void **state)
{
	(void)state;
	const struct xs_limits *pre = &xs_limits_preauth, *post = &xs_limits_postauth;
	expect_policy(nested(16), pre, true);
	expect_policy(nested(17), pre, false);
	expect_policy(nested(32), post, true);
	expect_policy(nested(33), post, false);
	expect_policy(flat(32, 0, 0), pre, true);
	expect_policy(flat(33, 0, 0), pre, false);
	expect_policy(flat(1024, 0, 0), post, true);
	expect_policy(flat(1025, 0, 0), post, false);
	expect_policy(flat(1, 16, 0), pre, true);
	expect_policy(flat(1, 17, 0), pre, false);
	expect_policy(flat(1, 32, 0), post, true);
	expect_policy(flat(1, 33, 0), post, false);
	/* text limit counts decoded bytes: "&amp;" is one */
	struct xs_limits lim = *post;
	lim.max_text_bytes = 100;
	expect_policy(flat(1, 0, 100), &lim, true);
	expect_policy(flat(1, 0, 101), &lim, false);
	/* over-long text followed by malformed XML: not-well-formed however it is split */
	char *base = flat(1, 0, 120);
	size_t head = (size_t)(strstr(base, "</message>") - base);
	char *bad = malloc(head + sizeof "]]></message>");
	memcpy(bad, base, head);
	strcpy(bad + head, "]]></message>");
	free(base);
	for (size_t step = 0; step <= 3; step++) {
		int rc;
		char *log =
		    step ? run_step(bad, strlen(bad), step, &lim, &rc) : run1(bad, &lim, &rc);
		assert_int_equal(rc, PE_PROTO);
		assert_non_null(strstr(log, "error not-well-formed\n"));
		free(log);
	}
	free(bad);
	/* the stream header's attributes are limited too */
	char hdr[512] = "<stream:stream xmlns='jabber:server' "
			"xmlns:stream='http://etherx.jabber.org/streams'";
	for (int i = 0; i < 17; i++)
		snprintf(hdr + strlen(hdr), sizeof hdr - strlen(hdr), " a%d=''", i);
	strcat(hdr, ">");
	expect_policy(strdup(hdr), pre, false);
}

/* The limits switch after authentication, even from inside a callback. */
static void test_limit_switch(void **state)
{
	(void)state;
	char *s = make_sized(20000, NULL);
	int rc;
	char *log = run1(s, &xs_limits_preauth, &rc);
	assert_int_equal(rc, PE_PROTO);
	free(log);

	struct rec r;
	rec_init(&r, &xs_limits_preauth, s, strlen(s));
	r.on_open_limits = &xs_limits_postauth;
	assert_int_equal(xs_feed(r.xs, s, strlen(s)), 0);
	assert_int_equal(r.nstanza, 1);
	assert_int_equal(xs_get_limits(r.xs)->max_stanza_bytes,
			 xs_limits_postauth.max_stanza_bytes);
	/* and back down: the next big stanza is refused */
	assert_int_equal(xs_set_limits(r.xs, &xs_limits_preauth), 0);
	const char *body = strstr(s, "<message>");
	assert_int_equal(xs_feed(r.xs, body, strlen(body)), PE_PROTO);
	assert_int_equal(r.nstanza, 1);
	rec_deinit(&r);
	free(s);

	struct xs_limits bad = xs_limits_preauth;
	bad.max_depth = 0;
	assert_null(xs_new(&bad, &rec_cb, NULL));
	struct xs *xs = xs_new(&xs_limits_preauth, NULL, NULL);
	assert_int_equal(xs_set_limits(xs, &bad), PE_INVAL);
	bad = xs_limits_preauth;
	bad.max_stanza_bytes = 0;
	assert_int_equal(xs_set_limits(xs, &bad), PE_INVAL);
	bad = xs_limits_preauth;
	bad.max_depth = 5000;
	assert_int_equal(xs_set_limits(xs, &bad), PE_INVAL);
	assert_int_equal(xs_get_limits(xs)->max_depth, xs_limits_preauth.max_depth);
	/* no callbacks at all is fine */
	assert_int_equal(xs_feed(xs, one_stanza, strlen(one_stanza)), 0);
	assert_int_equal(xs_feed(xs, "x", 1), PE_CLOSED);
	xs_free(xs);
	xs_free(NULL);
}

/* ---- serialisation ---------------------------------------------------------------- */

/* Parses `stanza` inside a jabber:server stream and checks xs_serialize of the stanza
 * and of each of its children against expectations. */
struct ser_ctx {
	const char *const *want; /* [0] = stanza, [1..] = children */
	size_t nwant;
	int calls;
};

static void ser_on_stanza(void *ud, const struct xs_stanza *st)
{
	struct ser_ctx *c = ud;
	c->calls++;
	struct buf b;
	buf_init(&b, 0);
	assert_int_equal(xs_serialize(st->el, &b), 0);
	buf_append(&b, "", 1);
	assert_string_equal((char *)buf_head(&b), c->want[0]);
	size_t i = 1;
	for (const struct xs_elem *ch = xs_elem_first(st->el); ch; ch = xs_elem_next(ch), i++) {
		assert_true(i < c->nwant);
		b.len = 0;
		assert_int_equal(xs_serialize(ch, &b), 0);
		buf_append(&b, "", 1);
		assert_string_equal((char *)buf_head(&b), c->want[i]);
	}
	assert_int_equal(i, c->nwant);
	buf_deinit(&b);
}

static void check_ser(const char *stanza, const char *const *want, size_t nwant)
{
	static const struct xs_callbacks cb = {.on_stanza = ser_on_stanza};
	struct ser_ctx c = {want, nwant, 0};
	struct xs *xs = xs_new(&xs_limits_postauth, &cb, &c);
	assert_int_equal(xs_feed(xs, HDR_PLAIN, strlen(HDR_PLAIN)), 0);
	assert_int_equal(xs_feed(xs, stanza, strlen(stanza)), 0);
	assert_int_equal(c.calls, 1);
	xs_free(xs);

	/* the stanza's serialisation parses back to the same serialisation */
	c.calls = 0;
	xs = xs_new(&xs_limits_postauth, &cb, &c);
	assert_int_equal(xs_feed(xs, HDR_PLAIN, strlen(HDR_PLAIN)), 0);
	assert_int_equal(xs_feed(xs, want[0], strlen(want[0])), 0);
	assert_int_equal(c.calls, 1);
	xs_free(xs);
}

static void test_serialize_unknown_children(void **state)
{
	(void)state;
	static const char *const w1[] = {
	    "<message xmlns='jabber:server' to='b@example.org' xml:lang='de'>"
	    "<body>Hallo</body>"
	    "<x xmlns='jabber:x:data' type='form'><field var='a'><value>1</value></field></x>"
	    "<bar xmlns='urn:foo' xmlns:foo='urn:foo' xmlns:q='urn:q' foo:attr='v' q:z='&apos;' "
	    "xml:lang='fr'>t<baz/></bar>"
	    "<html xmlns='http://jabber.org/protocol/xhtml-im'><body "
	    "xmlns='http://www.w3.org/1999/xhtml'><p>Hi <b>there</b>!</p></body></html>"
	    "<y xmlns='urn:y'><z xmlns=''/></y>"
	    "</message>",
	    "<body xmlns='jabber:server'>Hallo</body>",
	    "<x xmlns='jabber:x:data' type='form'><field var='a'><value>1</value></field></x>",
	    "<bar xmlns='urn:foo' xmlns:foo='urn:foo' xmlns:q='urn:q' foo:attr='v' q:z='&apos;' "
	    "xml:lang='fr'>t<baz/></bar>",
	    "<html xmlns='http://jabber.org/protocol/xhtml-im'><body "
	    "xmlns='http://www.w3.org/1999/xhtml'><p>Hi <b>there</b>!</p></body></html>",
	    "<y xmlns='urn:y'><z xmlns=''/></y>",
	};
	check_ser("<message to='b@example.org' xml:lang='de'><body>Hallo</body>"
		  "<x xmlns='jabber:x:data' type='form'><field var='a'><value>1</value></field></x>"
		  "<foo:bar xmlns:foo='urn:foo' foo:attr='v' q:z=\"'\" xmlns:q='urn:q' "
		  "xml:lang='fr'>t<foo:baz/></foo:bar>"
		  "<html xmlns='http://jabber.org/protocol/xhtml-im'><body "
		  "xmlns='http://www.w3.org/1999/xhtml'><p>Hi <b>there</b>!</p></body></html>"
		  "<y xmlns='urn:y'><z xmlns=''/></y>"
		  "</message>",
		  w1, sizeof w1 / sizeof w1[0]);

	/* two attributes sharing a prefix declare it once; special characters round-trip */
	static const char *const w2[] = {
	    "<iq xmlns='jabber:server' type='set'><e xmlns='urn:a' xmlns:p='urn:p' p:x='1' "
	    "p:y='&lt;&amp;&gt;&quot;'>a&amp;b&lt;c&gt;d'e\"f&#13;</e></iq>",
	    "<e xmlns='urn:a' xmlns:p='urn:p' p:x='1' p:y='&lt;&amp;&gt;&quot;'>"
	    "a&amp;b&lt;c&gt;d'e\"f&#13;</e>",
	};
	check_ser("<iq type='set'><e xmlns='urn:a' xmlns:p='urn:p' p:x='1' p:y='&lt;&amp;>\"'>"
		  "a&amp;b&lt;c>d'e\"f&#13;</e></iq>",
		  w2, 2);
}

static const struct xs_elem *g_el;
static struct buf g_out;
static void keep_serialized(void *ud, const struct xs_stanza *st)
{
	(void)ud;
	g_el = st->el;
	g_out.len = 0;
	/* exercise the tree helpers while the tree is alive */
	const struct xs_elem *m = st->el;
	assert_string_equal(xs_elem_attr(m, NULL, "to"), "b@example.org");
	assert_string_equal(xs_elem_attr(m, "", "to"), "b@example.org");
	assert_null(xs_elem_attr(m, "urn:x", "to"));
	assert_string_equal(xs_elem_attr(m, "urn:x", "a"), "1");
	assert_null(xs_elem_attr(m, NULL, "a"));
	assert_string_equal(xs_elem_attr(m, XS_NS_XML, "lang"), "en");
	assert_null(xs_elem_attr(m, NULL, "nope"));
	const struct xs_elem *body = xs_elem_child(m, XS_NS_SERVER, "body");
	assert_non_null(body);
	size_t len;
	assert_string_equal(xs_elem_text(body, &len), "one & two");
	assert_int_equal(len, 9);
	assert_string_equal(xs_elem_lang(body), "en");
	assert_null(xs_elem_child(m, "urn:other", "body"));
	assert_ptr_equal(xs_elem_child(m, NULL, "body"), body);
	const struct xs_elem *nons = xs_elem_child(m, "", "plain");
	assert_non_null(nons);
	assert_int_equal(nons->ns.n, 0);
	assert_string_equal(xs_elem_lang(nons), "fr");
	assert_null(xs_elem_child(m, NULL, "nope"));
	/* mixed content: text concatenated, children in order */
	assert_string_equal(xs_elem_text(m, NULL), " x y ");
	assert_int_equal(m->ntext, 3);
	assert_string_equal(xs_elem_text(nons, NULL), "");
	int nel = 0;
	for (const struct xs_elem *c = xs_elem_first(m); c; c = xs_elem_next(c))
		nel++;
	assert_int_equal(nel, 2);
	const struct xs_node *n = m->children;
	assert_non_null(xs_node_text(n));
	assert_null(xs_node_elem(n));
	assert_string_equal(xs_node_text(n)->text.p, " x");
	assert_ptr_equal(xs_node_elem(n->next), body);
	assert_ptr_equal(body->parent, m);
	assert_null(m->parent);
	/* serialising into a jabber:server context omits the redundant xmlns */
	assert_int_equal(xs_serialize_in(m, XS_NS_SERVER, &g_out), 0);
}

static void test_tree_helpers(void **state)
{
	(void)state;
	static const struct xs_callbacks cb = {.on_stanza = keep_serialized};
	buf_init(&g_out, 0);
	struct xs *xs = xs_new(&xs_limits_preauth, &cb, NULL);
	static const char in[] =
	    HDR_PLAIN "<message to='b@example.org' xmlns:u='urn:x' u:a='1' xml:lang='en'> "
		      "x<body>one &amp; two</body> y<plain xmlns='' xml:lang='fr'/> </message>";
	assert_int_equal(xs_feed(xs, in, strlen(in)), 0);
	assert_non_null(g_el);
	buf_append(&g_out, "", 1);
	assert_string_equal(
	    (char *)buf_head(&g_out),
	    "<message xmlns:u='urn:x' to='b@example.org' u:a='1' xml:lang='en'> "
	    "x<body>one &amp; two</body> y<plain xmlns='' xml:lang='fr'/> </message>");
	xs_free(xs);
	buf_deinit(&g_out);
}

static void test_escape(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		bool attr;
		const char *out;
	} ok[] = {
	    {"plain", false, "plain"},
	    {"", true, ""},
	    {"a&b<c>d'e\"f", false, "a&amp;b&lt;c&gt;d'e\"f"},
	    {"a&b<c>d'e\"f", true, "a&amp;b&lt;c&gt;d&apos;e&quot;f"},
	    {"t\tn\nr\r", false, "t\tn\nr&#13;"},
	    {"t\tn\nr\r", true, "t&#9;n&#10;r&#13;"},
	    {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf \x7f", true,
	     "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf \x7f"},
	    {"\xef\xbf\xbd\xed\x9f\xbf\xee\x80\x80", false, "\xef\xbf\xbd\xed\x9f\xbf\xee\x80\x80"},
	};
	struct buf b;
	buf_init(&b, 0);
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		b.len = 0;
		b.off = 0;
		assert_int_equal(xs_escape(&b, ok[i].in, strlen(ok[i].in), ok[i].attr), 0);
		buf_append(&b, "", 1);
		assert_string_equal((char *)buf_head(&b), ok[i].out);
	}
	static const char *const bad[] = {
	    "\x01",
	    "a\x1f",
	    "\x0b",
	    "\x80",
	    "\xc0\x80",
	    "\xc1\xbf",
	    "\xc2",
	    "\xe2\x82",
	    "\xe0\x9f\xbf",
	    "\xed\xa0\x80",
	    "\xef\xbf\xbe",
	    "\xef\xbf\xbf",
	    "\xf0\x8f\xbf\xbf",
	    "\xf4\x90\x80\x80",
	    "\xf5\x80\x80\x80",
	    "\xff",
	    "ok\xe2\x28\xa1",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		b.len = 0;
		b.off = 0;
		buf_append(&b, "keep", 4);
		assert_int_equal(xs_escape(&b, bad[i], strlen(bad[i]), i % 2), PE_INVAL);
		assert_int_equal(b.len, 4); /* unchanged */
	}
	/* an embedded NUL is forbidden too */
	assert_int_equal(xs_escape(&b, "a\0b", 3, false), PE_INVAL);
	buf_deinit(&b);
	/* a bounded buffer reports its bound and keeps its content */
	buf_init(&b, 8);
	assert_int_equal(xs_escape(&b, "abc", 3, false), 0);
	assert_int_equal(xs_escape(&b, "<<", 2, false), PE_TOOBIG);
	assert_int_equal(b.len, 3);
	buf_deinit(&b);
}

static void test_stream_error_xml(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 0);
	struct xs_error e = {XS_COND_POLICY_VIOLATION, XS_APP_STANZA_TOO_BIG, "stanza <too> big"};
	assert_int_equal(xs_write_stream_error(&b, &e), 0);
	buf_append(&b, "", 1);
	assert_string_equal((char *)buf_head(&b),
			    "<stream:error><policy-violation "
			    "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text "
			    "xmlns='urn:ietf:params:xml:ns:xmpp-streams'>stanza &lt;too&gt; "
			    "big</text><stanza-too-big xmlns='urn:xmpp:errors'/></stream:error>");
	b.len = 0;
	e = (struct xs_error){XS_COND_HOST_UNKNOWN, XS_APP_NONE, ""};
	assert_int_equal(xs_write_stream_error(&b, &e), 0);
	buf_append(&b, "", 1);
	assert_string_equal((char *)buf_head(&b),
			    "<stream:error><host-unknown "
			    "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>");
	e.cond = XS_COND_NONE;
	assert_int_equal(xs_write_stream_error(&b, &e), PE_INVAL);
	buf_deinit(&b);
}

static void test_cond_names(void **state)
{
	(void)state;
	static const char *const rfc6120[] = {
	    "bad-format",
	    "bad-namespace-prefix",
	    "conflict",
	    "connection-timeout",
	    "host-gone",
	    "host-unknown",
	    "improper-addressing",
	    "internal-server-error",
	    "invalid-from",
	    "invalid-namespace",
	    "invalid-xml",
	    "not-authorized",
	    "not-well-formed",
	    "policy-violation",
	    "remote-connection-failed",
	    "reset",
	    "resource-constraint",
	    "restricted-xml",
	    "see-other-host",
	    "system-shutdown",
	    "undefined-condition",
	    "unsupported-encoding",
	    "unsupported-feature",
	    "unsupported-stanza-type",
	    "unsupported-version",
	};
	assert_int_equal(XS_COND__COUNT - 1, sizeof rfc6120 / sizeof rfc6120[0]);
	for (size_t i = 0; i < sizeof rfc6120 / sizeof rfc6120[0]; i++) {
		enum xs_cond c = xs_cond_from_name(rfc6120[i], strlen(rfc6120[i]));
		assert_int_not_equal(c, XS_COND_NONE);
		assert_string_equal(xs_cond_name(c), rfc6120[i]);
	}
	assert_string_equal(xs_cond_name(XS_COND_RESTRICTED_XML), "restricted-xml");
	assert_string_equal(xs_cond_name(XS_COND_NONE), "");
	assert_string_equal(xs_cond_name((enum xs_cond)999), "");
	assert_int_equal(xs_cond_from_name("reset", 4), XS_COND_NONE);
	assert_int_equal(xs_cond_from_name("bogus", 5), XS_COND_NONE);
}

/* ---- close, stop, reset ----------------------------------------------------------------- */

static void test_close(void **state)
{
	(void)state;
	struct rec r;
	static const char in[] = HDR_PLAIN "<presence/>" CLOSE "junk<after>";
	rec_init(&r, NULL, in, strlen(in));
	assert_int_equal(xs_feed(r.xs, in, strlen(in)), 0);
	assert_string_equal(rec_log(&r), OPEN_PLAIN_LOG "stanza <presence xmlns='jabber:server'/>\n"
							"close\n");
	assert_int_equal(xs_unparsed(r.xs), strlen("junk<after>"));
	assert_false(xs_is_open(r.xs));
	assert_int_equal(xs_error(r.xs)->cond, XS_COND_NONE);
	assert_int_equal(xs_feed(r.xs, "<presence/>", 11), PE_CLOSED);
	assert_int_equal(xs_unparsed(r.xs), 0);
	assert_string_equal(rec_log(&r), OPEN_PLAIN_LOG "stanza <presence xmlns='jabber:server'/>\n"
							"close\n");
	rec_deinit(&r);
}

/* STARTTLS: the stanza callback stops the parser; the bytes behind <starttls/> are not
 * parsed; a reset starts a new stream with a new parser and the same limits. */
static void test_stop_and_reset(void **state)
{
	(void)state;
	static const char in[] = HDR_PLAIN "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
					   "\x16\x03\x01\x02\x05";
	for (int deferred = 0; deferred < 2; deferred++) {
		struct rec r;
		rec_init(&r, &xs_limits_preauth, in, strlen(in));
		if (deferred)
			r.reset_at_stanza = 1;
		else
			r.stop_at_stanza = 1;
		assert_int_equal(xs_feed(r.xs, in, strlen(in)), 0);
		assert_int_equal(r.nstanza, 1);
		assert_int_equal(xs_unparsed(r.xs), 5);
		if (!deferred) {
			assert_int_equal(xs_feed(r.xs, "<x/>", 4), PE_STATE);
			size_t held = xs_mem_usage(r.xs);
			xs_reset(r.xs);
			assert_true(xs_mem_usage(r.xs) < held);
		}
		/* after the reset: expat is gone until the next feed */
		assert_true(xs_mem_usage(r.xs) <= 4096);
		assert_false(xs_is_open(r.xs));
		assert_null(xs_content_ns(r.xs));
		static const char again[] =
		    "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
		    "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:"
		    "dialback' to='example.org' version='1.0'><auth xmlns='urn:ietf:params:xml:ns:"
		    "xmpp-sasl' mechanism='EXTERNAL'>=</auth>";
		r.input = again; /* offsets restart at 0 on the new stream */
		r.input_len = strlen(again);
		assert_int_equal(xs_feed(r.xs, again, strlen(again)), 0);
		assert_string_equal(
		    rec_log(&r), OPEN_PLAIN_LOG
		    "stanza <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\n"
		    "open to=example.org from=- id=- version=1.0 lang=- ns=jabber:server db=1\n"
		    "stanza <auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
		    "mechanism='EXTERNAL'>=</auth>\n");
		assert_int_equal(xs_get_limits(r.xs)->max_stanza_bytes, 8192);
		rec_deinit(&r);
	}

	/* stop before any feed; reset after an error restores a working parser */
	struct rec r;
	rec_init(&r, NULL, NULL, 0);
	xs_stop(r.xs);
	assert_int_equal(xs_feed(r.xs, "<", 1), PE_STATE);
	xs_reset(r.xs);
	assert_int_equal(xs_feed(r.xs, "<!DOCTYPE x>", 12), PE_PROTO);
	r.terminal = false;
	xs_reset(r.xs);
	assert_int_equal(xs_error(r.xs)->cond, XS_COND_NONE);
	assert_int_equal(xs_feed(r.xs, one_stanza, strlen(one_stanza)), 0);
	assert_int_equal(r.nstanza, 1);
	rec_deinit(&r);
}

/* ---- memory -------------------------------------------------------------------------- */

static void test_memory_idle(void **state)
{
	(void)state;
	struct rec r;
	rec_init(&r, &xs_limits_postauth, NULL, 0);
	assert_true(xs_mem_usage(r.xs) < 512); /* no parser, no arena yet */
	assert_int_equal(xs_feed(r.xs, HDR, strlen(HDR)), 0);
	/* 64 KiB reads of 300-byte stanzas */
	struct buf b;
	buf_init(&b, 0);
	while (b.len < 64 * 1024) {
		static const char m[] =
		    "<message from='alice@partner.example/phone' to='bob@example.org' "
		    "type='chat' id='0123456789abcdef' xml:lang='en'><body>Lorem ipsum dolor sit "
		    "amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut "
		    "labore et dolore magna aliqua.</body><active "
		    "xmlns='http://jabber.org/protocol/chatstates'/></message>";
		buf_append(&b, m, sizeof m - 1);
	}
	assert_int_equal(xs_feed(r.xs, (char *)buf_head(&b), b.len), 0);
	size_t idle_small = xs_mem_usage(r.xs);
	print_message("idle after 64 KiB of small stanzas: %zu bytes\n", idle_small);
	assert_true(idle_small <= 24 * 1024);

	/* one 200 KiB stanza, fed in one piece: afterwards memory drops back */
	char *big = make_sized(200 * 1024, NULL);
	const char *msg = strstr(big, "<message>");
	assert_int_equal(xs_feed(r.xs, msg, strlen(msg)), 0);
	size_t idle_big = xs_mem_usage(r.xs);
	print_message("idle after a 200 KiB stanza: %zu bytes\n", idle_big);
	assert_true(idle_big <= idle_small + 4096);
	/* a stanza with a 6000-byte attribute (one big token) grows expat's buffer only
	 * to its size */
	char tag[7000];
	memcpy(tag, "<iq id='", 8);
	memset(tag + 8, 'i', 6000);
	memcpy(tag + 6008, "'/>", 4);
	assert_int_equal(xs_feed(r.xs, tag, strlen(tag)), 0);
	assert_true(xs_mem_usage(r.xs) <= idle_small + 32 * 1024);
	assert_int_equal(r.nstanza > 200, true);
	free(big);
	buf_deinit(&b);
	rec_deinit(&r);
}

/* One huge token inflates expat for good; between stanzas the parser is replaced by a
 * fresh one that still knows the root's prefixes, and offsets run on. */
static void test_memory_shed(void **state)
{
	(void)state;
	struct buf in;
	buf_init(&in, 0);
	buf_append(&in, HDR, strlen(HDR));
	buf_append(&in, "<iq id='", 8);
	for (int i = 0; i < 200 * 1024; i++)
		buf_append(&in, "a", 1);
	buf_append(&in, "'/>", 3);
	size_t cut1 = in.len;
	static const char rest1[] =
	    "<db:result from='partner.example' to='example.org'>k</db:result>";
	buf_append(&in, rest1, strlen(rest1));
	size_t cut2 = in.len;
	static const char rest2[] =
	    "<message xml:lang='de'><body>x</body></message><stream:features/>" CLOSE;
	buf_append(&in, rest2, strlen(rest2));

	struct rec r;
	const char *s = (const char *)buf_head(&in);
	rec_init(&r, &xs_limits_postauth, s, in.len);
	assert_int_equal(xs_feed(r.xs, s, cut1), 0);
	size_t after_big = xs_mem_usage(r.xs);
	print_message("after a 200 KiB attribute: %zu bytes\n", after_big);
	assert_true(after_big < 20 * 1024);
	assert_int_equal(xs_feed(r.xs, s + cut1, cut2 - cut1), 0);
	assert_int_equal(xs_feed(r.xs, s + cut2, in.len - cut2), 0);
	const char *log = rec_log(&r);
	const char *second = strchr(strchr(log, '\n') + 1, '\n') + 1;
	assert_string_equal(
	    second, "stanza <result xmlns='jabber:server:dialback' from='partner.example' "
		    "to='example.org'>k</result>\n"
		    "stanza <message xmlns='jabber:server' xml:lang='de'><body>x</body></message>\n"
		    "stanza <features xmlns='http://etherx.jabber.org/streams'/>\n"
		    "close\n");
	assert_int_equal(r.ends[1], cut2);
	assert_int_equal(r.ends[3], in.len - strlen(CLOSE));
	rec_deinit(&r);
	buf_deinit(&in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_full_stream),
	    cmocka_unit_test(test_valid_cases),
	    cmocka_unit_test(test_every_prefix),
	    cmocka_unit_test(test_every_split),
	    cmocka_unit_test(test_byte_by_byte),
	    cmocka_unit_test(test_error_cases),
	    cmocka_unit_test(test_billion_laughs_memory),
	    cmocka_unit_test(test_limit_bytes),
	    cmocka_unit_test(test_limit_endless_tag),
	    cmocka_unit_test(test_limit_keepalives),
	    cmocka_unit_test(test_limit_depth_elements_attrs_text),
	    cmocka_unit_test(test_limit_switch),
	    cmocka_unit_test(test_serialize_unknown_children),
	    cmocka_unit_test(test_tree_helpers),
	    cmocka_unit_test(test_escape),
	    cmocka_unit_test(test_stream_error_xml),
	    cmocka_unit_test(test_cond_names),
	    cmocka_unit_test(test_close),
	    cmocka_unit_test(test_stop_and_reset),
	    cmocka_unit_test(test_memory_idle),
	    cmocka_unit_test(test_memory_shed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
