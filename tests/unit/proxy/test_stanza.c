/* Received stanza -> link Stanza: mapped fields, and every other child kept verbatim with
 * its namespace declarations (nothing a partner sends is lost). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "stanza.h"
#include "xml_stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct got {
	struct stanza_scratch scr;
	Parley__Link__Stanza st;
	int rc;
	char extra[4][512];
	size_t nextra;
	char body[256], subject[64], thread[64], parent[64], lang[16], type[16];
	char err_type[16], err_cond[64], err_text[64];
	int kind;
	int has_priority, priority;
	char show[16], status[64];
};

static void copy(char *dst, size_t cap, const char *s)
{
	snprintf(dst, cap, "%s", s ? s : "(null)");
}

static void on_stanza(void *ud, const struct xs_stanza *x)
{
	struct got *g = ud;
	g->rc = stanza_to_link(x->el, "en", &g->scr, &g->st);
	if (g->rc)
		return;
	g->kind = g->st.kind;
	copy(g->body, sizeof g->body, g->st.body);
	copy(g->subject, sizeof g->subject, g->st.subject);
	copy(g->thread, sizeof g->thread, g->st.thread);
	copy(g->parent, sizeof g->parent, g->st.thread_parent);
	copy(g->lang, sizeof g->lang, g->st.lang);
	copy(g->type, sizeof g->type, g->st.type);
	copy(g->show, sizeof g->show, g->st.show);
	copy(g->status, sizeof g->status, g->st.status);
	g->has_priority = g->st.has_priority;
	g->priority = g->st.priority;
	if (g->st.error) {
		copy(g->err_type, sizeof g->err_type, g->st.error->type);
		copy(g->err_cond, sizeof g->err_cond, g->st.error->condition);
		copy(g->err_text, sizeof g->err_text, g->st.error->text);
	}
	g->nextra = g->st.n_extra;
	for (size_t i = 0; i < g->st.n_extra && i < 4; i++)
		snprintf(g->extra[i], sizeof g->extra[i], "%.*s", (int)g->st.extra[i].len,
			 (const char *)g->st.extra[i].data);
}

static void parse(struct got *g, const char *stanza)
{
	static const struct xs_callbacks cb = {.on_stanza = on_stanza};
	memset(g, 0, sizeof *g);
	stanza_scratch_init(&g->scr);
	struct xs *xs = xs_new(&xs_limits_postauth, &cb, g);
	const char *hdr = "<stream:stream xmlns='jabber:server' "
			  "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";
	assert_int_equal(xs_feed(xs, hdr, strlen(hdr)), 0);
	assert_int_equal(xs_feed(xs, stanza, strlen(stanza)), 0);
	xs_free(xs);
	stanza_scratch_deinit(&g->scr);
}

static void test_message_fields_and_extras(void **state)
{
	(void)state;
	struct got g;
	parse(&g, "<message from='a@p.test/r' to='b@c.test' type='chat' id='1' xml:lang='de'>"
		  "<body>Grüße &amp; &lt;tags&gt;</body><body xml:lang='en'>Greetings</body>"
		  "<subject>Betreff</subject><thread parent='p1'>t1</thread>"
		  "<active xmlns='http://jabber.org/protocol/chatstates'/>"
		  "<x xmlns='urn:example:x' a='1'><y>deep &amp; text</y></x></message>");
	assert_int_equal(g.rc, 0);
	assert_int_equal(g.kind, PARLEY__LINK__STANZA_KIND__KIND_MESSAGE);
	assert_string_equal(g.body, "Grüße & <tags>");
	assert_string_equal(g.subject, "Betreff");
	assert_string_equal(g.thread, "t1");
	assert_string_equal(g.parent, "p1");
	assert_string_equal(g.lang, "de");
	assert_string_equal(g.type, "chat");
	/* the English body, the chat state and the unknown element travel verbatim */
	assert_int_equal(g.nextra, 3);
	assert_non_null(strstr(g.extra[0], "Greetings"));
	assert_non_null(strstr(g.extra[0], "xml:lang='en'"));
	assert_string_equal(g.extra[1], "<active xmlns='http://jabber.org/protocol/chatstates'/>");
	assert_non_null(strstr(g.extra[2], "xmlns='urn:example:x'"));
	assert_non_null(strstr(g.extra[2], "deep &amp; text"));
}

static void test_stream_lang_is_the_default(void **state)
{
	(void)state;
	struct got g;
	parse(&g, "<message from='a@p.test' to='b@c.test'><body>x</body></message>");
	assert_string_equal(g.lang, "en");
	assert_string_equal(g.type, "(null)");
}

static void test_presence_fields(void **state)
{
	(void)state;
	struct got g;
	parse(&g, "<presence from='a@p.test/r' to='b@c.test'><show>dnd</show>"
		  "<status>In a meeting</status><priority>-5</priority>"
		  "<c xmlns='http://jabber.org/protocol/caps' node='n' ver='v' hash='sha-1'/>"
		  "</presence>");
	assert_int_equal(g.kind, PARLEY__LINK__STANZA_KIND__KIND_PRESENCE);
	assert_string_equal(g.show, "dnd");
	assert_string_equal(g.status, "In a meeting");
	assert_true(g.has_priority);
	assert_int_equal(g.priority, -5);
	assert_int_equal(g.nextra, 1);
	/* an out-of-range priority is not mapped but kept */
	parse(&g, "<presence from='a@p.test' to='b@c.test'><priority>300</priority></presence>");
	assert_false(g.has_priority);
	assert_int_equal(g.nextra, 1);
}

static void test_error_stanza(void **state)
{
	(void)state;
	struct got g;
	parse(&g, "<message from='p.test' to='b@c.test' type='error' id='9'>"
		  "<error type='cancel' by='p.test'>"
		  "<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
		  "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no such user</text>"
		  "</error></message>");
	assert_string_equal(g.type, "error");
	assert_string_equal(g.err_type, "cancel");
	assert_string_equal(g.err_cond, "item-not-found");
	assert_string_equal(g.err_text, "no such user");
	assert_int_equal(g.nextra, 0);
}

static void test_iq_payload_kept(void **state)
{
	(void)state;
	struct got g;
	parse(&g, "<iq from='a@p.test/r' to='c.test' type='get' id='q1'>"
		  "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
	assert_int_equal(g.kind, PARLEY__LINK__STANZA_KIND__KIND_IQ);
	assert_int_equal(g.nextra, 1);
	assert_string_equal(g.extra[0], "<query xmlns='http://jabber.org/protocol/disco#info'/>");
}

static void test_not_a_stanza(void **state)
{
	(void)state;
	struct got g;
	parse(&g, "<foo xmlns='jabber:server'/>");
	assert_int_not_equal(g.rc, 0);
}

static void test_jid_domain(void **state)
{
	(void)state;
	size_t n;
	const char *d = jid_domain("a@b.test/r@x", &n);
	assert_int_equal(n, 6);
	assert_memory_equal(d, "b.test", 6);
	d = jid_domain("b.test", &n);
	assert_int_equal(n, 6);
	d = jid_domain("b.test/res", &n);
	assert_int_equal(n, 6);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_message_fields_and_extras),
		cmocka_unit_test(test_stream_lang_is_the_default),
		cmocka_unit_test(test_presence_fields),
		cmocka_unit_test(test_error_stanza),
		cmocka_unit_test(test_iq_payload_kept),
		cmocka_unit_test(test_not_a_stanza),
		cmocka_unit_test(test_jid_domain),
	};
	return cmocka_run_group_tests_name("stanza", tests, NULL, NULL);
}
