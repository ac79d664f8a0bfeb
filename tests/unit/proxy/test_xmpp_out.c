/* Unit tests for the link Stanza -> XMPP serialiser (proxy/xmpp_out.c): exact output, escaping,
 * refusals that leave the buffer untouched, the check on verbatim children (every truncated
 * prefix of a good child is refused), and a round trip through our own inbound parser. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "buf.h"
#include "err.h"
#include "stanza.h"
#include "xml_stream.h"
#include "xmpp_out.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *str(struct buf *b)
{
	assert_int_equal(buf_append(b, "", 1), 0);
	b->len--;
	return (const char *)buf_head(b);
}

static Parley__Link__Stanza msg(const char *from, const char *to, const char *body)
{
	Parley__Link__Stanza st = PARLEY__LINK__STANZA__INIT;
	st.kind = PARLEY__LINK__STANZA_KIND__KIND_MESSAGE;
	st.from = (char *)from;
	st.to = (char *)to;
	st.body = (char *)body;
	return st;
}

static void test_message_exact(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 0);
	Parley__Link__Stanza st = msg("bob@corp.test/desk", "alice@partner.test", "hi & <bye>");
	st.type = "chat";
	st.id = "m'1";
	st.lang = "de";
	st.subject = "s";
	st.thread = "t1";
	st.thread_parent = "t0";
	ProtobufCBinaryData ex[2] = {
	    {strlen("<active xmlns='http://jabber.org/protocol/chatstates'/>"),
	     (uint8_t *)"<active xmlns='http://jabber.org/protocol/chatstates'/>"},
	    {strlen("<x xmlns='urn:x' a='1'><y>z</y></x>"),
	     (uint8_t *)"<x xmlns='urn:x' a='1'><y>z</y></x>"}};
	st.n_extra = 2;
	st.extra = ex;
	assert_int_equal(xmpp_out_stanza(&b, &st), 0);
	assert_string_equal(
	    str(&b),
	    "<message from='bob@corp.test/desk' to='alice@partner.test' id='m&apos;1' "
	    "type='chat' xml:lang='de'><subject>s</subject><body>hi &amp; &lt;bye&gt;</body>"
	    "<thread parent='t0'>t1</thread>"
	    "<active xmlns='http://jabber.org/protocol/chatstates'/>"
	    "<x xmlns='urn:x' a='1'><y>z</y></x></message>");
	buf_deinit(&b);
}

static void test_presence_iq_error_exact(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 0);
	Parley__Link__Stanza st = PARLEY__LINK__STANZA__INIT;
	st.kind = PARLEY__LINK__STANZA_KIND__KIND_PRESENCE;
	st.from = "bob@corp.test/d";
	st.to = "alice@partner.test";
	st.show = "away";
	st.status = "in a meeting";
	st.has_priority = 1;
	st.priority = -5;
	assert_int_equal(xmpp_out_stanza(&b, &st), 0);
	assert_string_equal(str(&b), "<presence from='bob@corp.test/d' to='alice@partner.test'>"
				     "<show>away</show><status>in a meeting</status>"
				     "<priority>-5</priority></presence>");
	buf_consume(&b, b.len);

	Parley__Link__Stanza iq = PARLEY__LINK__STANZA__INIT;
	Parley__Link__StanzaError e = PARLEY__LINK__STANZA_ERROR__INIT;
	iq.kind = PARLEY__LINK__STANZA_KIND__KIND_IQ;
	iq.from = "corp.test";
	iq.to = "partner.test";
	iq.id = "p1";
	iq.type = "error";
	e.type = "cancel";
	e.condition = "service-unavailable";
	e.text = "no <such> thing";
	e.text_lang = "en";
	e.by = "corp.test";
	e.app_condition = "<gone xmlns='urn:app'/>";
	iq.error = &e;
	assert_int_equal(xmpp_out_stanza(&b, &iq), 0);
	assert_string_equal(
	    str(&b), "<iq from='corp.test' to='partner.test' id='p1' type='error'>"
		     "<error type='cancel' by='corp.test'><service-unavailable "
		     "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text "
		     "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>no &lt;such&gt; "
		     "thing</text><gone xmlns='urn:app'/></error></iq>");
	buf_consume(&b, b.len);
	/* an error without type or condition gets RFC 6120's safest defaults */
	Parley__Link__StanzaError bare = PARLEY__LINK__STANZA_ERROR__INIT;
	iq.error = &bare;
	assert_int_equal(xmpp_out_stanza(&b, &iq), 0);
	assert_non_null(strstr(str(&b), "<error type='cancel'><undefined-condition "));
	buf_deinit(&b);
}

/* Every refusal leaves what was in the buffer, and only that. */
static void test_refusals_leave_buffer_unchanged(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 0);
	assert_int_equal(buf_append(&b, "PREFIX", 6), 0);
	Parley__Link__Stanza st = msg("a@corp.test", "b@partner.test", "bad \xc3\x28 utf8");
	assert_int_equal(xmpp_out_stanza(&b, &st), PE_INVAL);
	st.body = "ctl \x01 char";
	assert_int_equal(xmpp_out_stanza(&b, &st), PE_INVAL);
	st.body = "ok";
	st.from = "a\xff@corp.test";
	assert_int_equal(xmpp_out_stanza(&b, &st), PE_INVAL);
	st.from = "a@corp.test";
	st.kind = 99;
	assert_int_equal(xmpp_out_stanza(&b, &st), PE_INVAL);
	st.kind = PARLEY__LINK__STANZA_KIND__KIND_MESSAGE;
	Parley__Link__StanzaError e = PARLEY__LINK__STANZA_ERROR__INIT;
	st.error = &e;
	static const char *const bad_conds[] = {"Bad",
						"a b",
						"x'/><evil",
						"",
						"-x",
						"toolong-toolong-toolong-toolong-toolong-toolong-"
						"toolong-toolong-toolong-"};
	for (size_t i = 0; i < sizeof bad_conds / sizeof bad_conds[0]; i++) {
		e.condition = (char *)bad_conds[i];
		assert_int_equal(xmpp_out_stanza(&b, &st), PE_INVAL);
	}
	e.condition = "item-not-found";
	e.type = "whatever";
	assert_int_equal(xmpp_out_stanza(&b, &st), PE_INVAL);
	e.type = "modify";
	e.app_condition = "<two/><roots/>";
	assert_int_equal(xmpp_out_stanza(&b, &st), PE_INVAL);
	st.error = NULL;
	ProtobufCBinaryData ex = {5, (uint8_t *)"<a/>x"};
	st.n_extra = 1;
	st.extra = &ex;
	assert_int_equal(xmpp_out_stanza(&b, &st), PE_INVAL);
	Parley__Link__Stanza pr = PARLEY__LINK__STANZA__INIT;
	pr.kind = PARLEY__LINK__STANZA_KIND__KIND_PRESENCE;
	pr.has_priority = 1;
	pr.priority = 128;
	assert_int_equal(xmpp_out_stanza(&b, &pr), PE_INVAL);
	assert_string_equal(str(&b), "PREFIX");
	/* a bounded buffer: too big, and still unchanged */
	struct buf small;
	buf_init(&small, 30);
	assert_int_equal(buf_append(&small, "P", 1), 0);
	Parley__Link__Stanza big = msg("a@corp.test", "b@partner.test", "0123456789");
	assert_int_equal(xmpp_out_stanza(&small, &big), PE_TOOBIG);
	assert_int_equal(small.len, 1);
	buf_deinit(&small);
	buf_deinit(&b);
}

static void test_fragment_check(void **state)
{
	(void)state;
	static const char *const good[] = {
	    "<a xmlns='x'/>",
	    "<a xmlns='x'><b/>text<c d='e'>&amp;&#65;&lt;</c></a>",
	    "  <a xmlns='x'/>\n",
	    "<p:a xmlns:p='urn:p' p:q='1'/>",
	    "<a xmlns='x' xml:lang='en'>\xc3\xa9</a>",
	    "<a xmlns='x'><![CDATA[<not markup>]]></a>",
	};
	static const char *const bad[] = {
	    "",
	    "   ",
	    "text",
	    "<a/><b/>",
	    "<a>",
	    "<a/>junk",
	    "junk<a/>",
	    "</w><w>",
	    "<a/></w><w>",
	    "<p:a/>",
	    "<a xmlns='x'><!-- c --></a>",
	    "<!-- c --><a/>",
	    "<?pi x?><a/>",
	    "<a><?pi x?></a>",
	    "<a>&foo;</a>",
	    "<!DOCTYPE a><a/>",
	    "<?xml version='1.0'?><a/>",
	    "<a>\xff</a>",
	    "<a b='1' b='2'/>",
	    "<a></b>",
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		if (xmpp_out_check_fragment(good[i], strlen(good[i]), XMPP_OUT_MAX_DEPTH) != 0)
			fail_msg("refused: %s", good[i]);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (xmpp_out_check_fragment(bad[i], strlen(bad[i]), XMPP_OUT_MAX_DEPTH) == 0)
			fail_msg("accepted: %s", bad[i]);
	/* an embedded NUL is not XML */
	assert_int_equal(xmpp_out_check_fragment("<a>\0</a>", 8, 4), PE_INVAL);
	/* depth: exactly max is fine, one more is not */
	char deep[512] = "";
	for (int i = 0; i < 5; i++)
		strcat(deep, "<d>");
	for (int i = 0; i < 5; i++)
		strcat(deep, "</d>");
	assert_int_equal(xmpp_out_check_fragment(deep, strlen(deep), 5), 0);
	assert_int_equal(xmpp_out_check_fragment(deep, strlen(deep), 4), PE_INVAL);
	/* every truncated prefix of a good child is refused (no partial element slips out) */
	const char *g = "<x xmlns='urn:x' a='v'><y>t&amp;u</y><z/></x>";
	for (size_t n = 0; n < strlen(g); n++)
		if (xmpp_out_check_fragment(g, n, XMPP_OUT_MAX_DEPTH) == 0)
			fail_msg("accepted prefix of %zu bytes", n);
	assert_true(xmpp_out_plain_name("remote-server-not-found"));
	assert_false(xmpp_out_plain_name(NULL));
}

/* ---- round trip: what we write, our inbound side parses back to the same fields ---- */

struct rt {
	int n;
	int rc;
	char out[4096];
	struct stanza_scratch scratch;
};

static void put_field(char *out, size_t cap, const char *name, const char *v)
{
	size_t l = strlen(out);
	snprintf(out + l, cap - l, "%s=%s|", name, v ? v : "(null)");
}

static void describe(const Parley__Link__Stanza *st, char *out, size_t cap)
{
	out[0] = 0;
	put_field(out, cap, "from", st->from);
	put_field(out, cap, "to", st->to);
	put_field(out, cap, "id", st->id);
	put_field(out, cap, "type", st->type);
	put_field(out, cap, "lang", st->lang);
	put_field(out, cap, "body", st->body);
	put_field(out, cap, "subject", st->subject);
	put_field(out, cap, "thread", st->thread);
	put_field(out, cap, "parent", st->thread_parent);
	put_field(out, cap, "show", st->show);
	put_field(out, cap, "status", st->status);
	char prio[16];
	snprintf(prio, sizeof prio, "%d", st->has_priority ? (int)st->priority : 999);
	put_field(out, cap, "prio", prio);
	if (st->error) {
		put_field(out, cap, "etype", st->error->type);
		put_field(out, cap, "econd", st->error->condition);
		put_field(out, cap, "etext", st->error->text);
		put_field(out, cap, "elang", st->error->text_lang);
		put_field(out, cap, "eby", st->error->by);
	}
	for (size_t i = 0; i < st->n_extra; i++) {
		char x[1024];
		snprintf(x, sizeof x, "%.*s", (int)st->extra[i].len,
			 (const char *)st->extra[i].data);
		put_field(out, cap, "extra", x);
	}
}

static void rt_stanza(void *ud, const struct xs_stanza *s)
{
	struct rt *r = ud;
	Parley__Link__Stanza st;
	r->n++;
	r->rc = stanza_to_link(s->el, NULL, &r->scratch, &st);
	if (!r->rc)
		describe(&st, r->out, sizeof r->out);
}

static const struct xs_callbacks rt_cbs = {.on_stanza = rt_stanza};

static void round_trip(const Parley__Link__Stanza *st)
{
	struct buf b;
	struct rt r;
	char want[4096];
	memset(&r, 0, sizeof r);
	stanza_scratch_init(&r.scratch);
	buf_init(&b, 0);
	const char *hdr = "<stream:stream xmlns='jabber:server' "
			  "xmlns:stream='http://etherx.jabber.org/streams' to='partner.test' "
			  "version='1.0'>";
	assert_int_equal(buf_append(&b, hdr, strlen(hdr)), 0);
	assert_int_equal(xmpp_out_stanza(&b, st), 0);
	struct xs *xs = xs_new(&xs_limits_postauth, &rt_cbs, &r);
	/* one byte at a time: the output also survives every split point */
	for (size_t i = 0; i < b.len; i++)
		assert_int_equal(xs_feed(xs, (const char *)buf_head(&b) + i, 1), 0);
	xs_free(xs);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.rc, 0);
	describe(st, want, sizeof want);
	assert_string_equal(r.out, want);
	stanza_scratch_deinit(&r.scratch);
	buf_deinit(&b);
}

static void test_round_trip(void **state)
{
	(void)state;
	Parley__Link__Stanza m = msg("bob@corp.test/r", "alice@partner.test",
				     "<&>'\"\t\r\n \xe4\xb8\xad\xf0\x9f\x98\x80 ]]>");
	m.id = "a'b\"c";
	m.type = "chat";
	m.lang = "fr";
	m.subject = "sub & ject";
	m.thread = "t<1>";
	m.thread_parent = "p&0";
	ProtobufCBinaryData ex[2] = {
	    {strlen("<active xmlns='http://jabber.org/protocol/chatstates'/>"),
	     (uint8_t *)"<active xmlns='http://jabber.org/protocol/chatstates'/>"},
	    {strlen("<body xmlns='jabber:server' xml:lang='en'>hello</body>"),
	     (uint8_t *)"<body xmlns='jabber:server' xml:lang='en'>hello</body>"}};
	m.n_extra = 2;
	m.extra = ex;
	round_trip(&m);

	Parley__Link__Stanza p = PARLEY__LINK__STANZA__INIT;
	p.kind = PARLEY__LINK__STANZA_KIND__KIND_PRESENCE;
	p.from = "bob@corp.test/r";
	p.to = "alice@partner.test";
	p.show = "dnd";
	p.status = "busy > idle";
	p.has_priority = 1;
	p.priority = 127;
	round_trip(&p);

	Parley__Link__Stanza e = msg("corp.test", "alice@partner.test", NULL);
	Parley__Link__StanzaError err = PARLEY__LINK__STANZA_ERROR__INIT;
	e.type = "error";
	e.id = "x1";
	err.type = "wait";
	err.condition = "resource-constraint";
	err.text = "later, please";
	err.text_lang = "en";
	err.by = "corp.test";
	e.error = &err;
	round_trip(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_message_exact),
	    cmocka_unit_test(test_presence_iq_error_exact),
	    cmocka_unit_test(test_refusals_leave_buffer_unchanged),
	    cmocka_unit_test(test_fragment_check),
	    cmocka_unit_test(test_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
