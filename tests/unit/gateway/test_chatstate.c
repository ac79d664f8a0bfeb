/* Unit tests for chat states: the isComposing codec (RFC 3994) with a table of refused
 * documents and every truncated prefix, F1 both ways (RFC 7573 §6), F2 timing and the two
 * trackers on a simulated clock. */
#include "chatstate.h"
#include "err.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* The two examples of RFC 3994 (its schemaLocation typo included). */
static const char RFC_ACTIVE[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<isComposing xmlns=\"urn:ietf:params:xml:ns:im-iscomposing\"\n"
    "  xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"\n"
    "  xsi:schemaLocation=\"urn:ietf:params:xml:ns:im-composing iscomposing.xsd\">\n"
    "  <state>active</state>\n"
    "  <contenttype>text/plain</contenttype>\n"
    "  <refresh>90</refresh>\n"
    "</isComposing>\n";

static const char RFC_IDLE[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<isComposing xmlns=\"urn:ietf:params:xml:ns:im-iscomposing\"\n"
    "  xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"\n"
    "  xsi:schemaLocation=\"urn:ietf:params:xml:ns:im-composing iscomposing.xsd\">\n"
    "  <state>idle</state>\n"
    "  <lastactive>2003-01-27T10:43:00Z</lastactive>\n"
    "  <contenttype>audio</contenttype>\n"
    "</isComposing>\n";

#define NS "urn:ietf:params:xml:ns:im-iscomposing"

static int parse(const char *s, struct chatstate_doc *d)
{
	return chatstate_parse(s, strlen(s), CHATSTATE_DOC_MAX, d);
}

static void test_parse_rfc_examples(void **state)
{
	(void)state;
	struct chatstate_doc d;
	assert_int_equal(parse(RFC_ACTIVE, &d), 0);
	assert_int_equal(d.state, CHATSTATE_IC_ACTIVE);
	assert_int_equal(d.refresh, 90);
	assert_string_equal(d.contenttype, "text/plain");
	assert_string_equal(d.lastactive, "");
	assert_int_equal(parse(RFC_IDLE, &d), 0);
	assert_int_equal(d.state, CHATSTATE_IC_IDLE);
	assert_int_equal(d.refresh, 0);
	assert_string_equal(d.contenttype, "audio");
	assert_string_equal(d.lastactive, "2003-01-27T10:43:00Z");
}

static void test_parse_accepts(void **state)
{
	(void)state;
	static const struct {
		const char *doc;
		enum chatstate_ic st;
		unsigned refresh;
		const char *ct;
	} T[] = {
	    {"<isComposing xmlns='" NS "'><state>active</state></isComposing>", CHATSTATE_IC_ACTIVE,
	     0, ""},
	    /* prefixed namespace, whitespace around values, case-insensitive state */
	    {"<ic:isComposing xmlns:ic='" NS "'><ic:state>\n  ACTIVE \t</ic:state>"
	     "<ic:refresh> 0120 </ic:refresh></ic:isComposing>",
	     CHATSTATE_IC_ACTIVE, 120, ""},
	    /* order, unknown children (ours and others'), comments, PIs, attributes */
	    {"<isComposing xmlns='" NS "' x='1'><!-- c --><?pi x?><refresh>60</refresh>"
	     "<future>x<deep/></future><o:ext xmlns:o='urn:other'><o:state>idle</o:state>"
	     "</o:ext><contenttype>text/html; charset=&quot;utf-8&quot; &amp; co</contenttype>"
	     "<state a='b'>idle</state></isComposing>",
	     CHATSTATE_IC_IDLE, 60, "text/html; charset=\"utf-8\" & co"},
	    /* CDATA and character references */
	    {"<isComposing xmlns='" NS "'><state><![CDATA[act]]>&#105;ve</state>"
	     "<contenttype>caf&#xe9;</contenttype></isComposing>",
	     CHATSTATE_IC_ACTIVE, 0, "caf\xc3\xa9"},
	    /* a 127-byte value with whitespace around it */
	    {"<isComposing xmlns='" NS "'><state>idle</state><contenttype>  "
	     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	     "aa"
	     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa    \n  </contenttype></isComposing>",
	     CHATSTATE_IC_IDLE, 0,
	     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	     "aa"
	     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
	    {"<isComposing xmlns='" NS "'><state>active</state><refresh>999999999</refresh>"
	     "</isComposing>",
	     CHATSTATE_IC_ACTIVE, 999999999, ""},
	};
	for (size_t i = 0; i < N(T); i++) {
		struct chatstate_doc d;
		int rc = parse(T[i].doc, &d);
		if (rc != 0)
			fail_msg("case %zu refused: %d", i, rc);
		assert_int_equal(d.state, T[i].st);
		assert_int_equal(d.refresh, T[i].refresh);
		assert_string_equal(d.contenttype, T[i].ct);
	}
}

static void test_parse_refuses(void **state)
{
	(void)state;
	static const char *const T[] = {
	    "",
	    "   ",
	    "<isComposing xmlns='" NS "'><state>active</state>",		   /* unclosed */
	    "<isComposing xmlns='" NS "'><state>active</state></isComposing><x/>", /* two roots */
	    "<isComposing><state>active</state></isComposing>", /* no namespace */
	    "<isComposing xmlns='urn:ietf:params:xml:ns:im-composing'><state>active</state>"
	    "</isComposing>",						       /* wrong ns */
	    "<iscomposing xmlns='" NS "'><state>active</state></iscomposing>", /* wrong name */
	    "<isComposing xmlns='" NS "'></isComposing>",		       /* no state */
	    "<isComposing xmlns='" NS "'><o:state xmlns:o='urn:x'>idle</o:state></isComposing>",
	    "<isComposing xmlns='" NS "'><x><state>idle</state></x></isComposing>", /* too deep */
	    "<isComposing xmlns='" NS "'><state>typing</state></isComposing>",
	    "<isComposing xmlns='" NS "'><state></state></isComposing>",
	    "<isComposing xmlns='" NS "'><state>active</state><state>idle</state></isComposing>",
	    "<isComposing xmlns='" NS "'><state>act<b/>ive</state></isComposing>",
	    "<isComposing xmlns='" NS "'><state>act ive</state></isComposing>",
	    "<isComposing xmlns='" NS "'><state>idle</state><refresh>0</refresh></isComposing>",
	    "<isComposing xmlns='" NS "'><state>idle</state><refresh>-1</refresh></isComposing>",
	    "<isComposing xmlns='" NS "'><state>idle</state><refresh>+5</refresh></isComposing>",
	    "<isComposing xmlns='" NS "'><state>idle</state><refresh>1e3</refresh></isComposing>",
	    "<isComposing xmlns='" NS "'><state>idle</state><refresh>1000000000</refresh>"
	    "</isComposing>",
	    "<isComposing xmlns='" NS "'><state>idle</state><refresh></refresh></isComposing>",
	    "<isComposing xmlns='" NS "'><state>idle</state><refresh>9</refresh><refresh>9"
	    "</refresh></isComposing>",
	    "<isComposing xmlns='" NS "'><state>idle</state><contenttype> </contenttype>"
	    "</isComposing>",
	    "<isComposing xmlns='" NS "'><state>idle</state><contenttype>a\tb</contenttype>"
	    "</isComposing>",
	    "<isComposing xmlns='" NS "'><state>idle</state><lastactive>a&#10;b</lastactive>"
	    "</isComposing>",
	    /* 128 bytes */
	    "<isComposing xmlns='" NS "'><state>idle</state><contenttype>"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa</contenttype></isComposing>",
	    /* DOCTYPE and entities, billion laughs */
	    "<!DOCTYPE isComposing><isComposing xmlns='" NS "'><state>idle</state></isComposing>",
	    "<!DOCTYPE x [<!ENTITY a 'active'>]><isComposing xmlns='" NS "'><state>&a;</state>"
	    "</isComposing>",
	    "<!DOCTYPE x [<!ENTITY a 'x'><!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'>"
	    "<!ENTITY c '&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;'>]><isComposing xmlns='" NS
	    "'><state>idle</state><contenttype>&c;</contenttype></isComposing>",
	    "<!DOCTYPE x SYSTEM 'file:///etc/passwd'><isComposing xmlns='" NS
	    "'><state>idle</state></isComposing>",
	    "<isComposing xmlns='" NS "'><state>&unknown;</state></isComposing>",
	    /* not well-formed */
	    "<isComposing xmlns='" NS "'><state>idle</stat></isComposing>",
	    "<isComposing xmlns='" NS "'><state>idle&#1;</state></isComposing>",
	    "<isComposing xmlns='" NS "'><state>\xff</state></isComposing>",
	    "<isComposing xmlns='" NS "' a='1' a='2'><state>idle</state></isComposing>",
	};
	for (size_t i = 0; i < N(T); i++) {
		struct chatstate_doc d;
		memset(&d, 0x5a, sizeof d);
		int rc = parse(T[i], &d);
		if (rc != PE_PROTO)
			fail_msg("case %zu: %d, want PE_PROTO\n%s", i, rc, T[i]);
		/* nothing half-parsed is left behind */
		assert_int_equal(d.state, 0);
		assert_int_equal(d.refresh, 0);
		assert_string_equal(d.contenttype, "");
	}
	/* too deep */
	char deep[2048];
	int n = snprintf(deep, sizeof deep, "<isComposing xmlns='" NS "'><state>idle</state>");
	for (int i = 0; i < 20; i++)
		n += snprintf(deep + n, sizeof deep - (size_t)n, "<a>");
	for (int i = 0; i < 20; i++)
		n += snprintf(deep + n, sizeof deep - (size_t)n, "</a>");
	snprintf(deep + n, sizeof deep - (size_t)n, "</isComposing>");
	struct chatstate_doc d;
	assert_int_equal(parse(deep, &d), PE_PROTO);
	/* the size bound comes first */
	assert_int_equal(
	    chatstate_parse(RFC_ACTIVE, strlen(RFC_ACTIVE), strlen(RFC_ACTIVE) - 1, &d), PE_TOOBIG);
	assert_int_equal(chatstate_parse(RFC_ACTIVE, strlen(RFC_ACTIVE), strlen(RFC_ACTIVE), &d),
			 0);
}

/* Every truncated prefix of a valid document is refused until the root is closed. */
static void test_parse_prefixes(void **state)
{
	(void)state;
	static const char *const docs[] = {RFC_ACTIVE, RFC_IDLE};
	for (size_t k = 0; k < N(docs); k++) {
		const char *doc = docs[k];
		size_t full = strlen(doc);
		size_t closed = (size_t)(strstr(doc, "</isComposing>") - doc) + 14;
		for (size_t n = 0; n <= full; n++) {
			/* a copy of exactly n bytes, so ASan sees any read past it */
			char *p = malloc(n ? n : 1);
			memcpy(p, doc, n);
			struct chatstate_doc d;
			int rc = chatstate_parse(p, n, CHATSTATE_DOC_MAX, &d);
			free(p);
			if (n >= closed)
				assert_int_equal(rc, 0);
			else if (rc != PE_PROTO)
				fail_msg("doc %zu prefix %zu: %d", k, n, rc);
		}
	}
}

static void test_write(void **state)
{
	(void)state;
	struct chatstate_doc d = {.state = CHATSTATE_IC_ACTIVE, .refresh = 90};
	strcpy(d.contenttype, "text/plain");
	char out[CHATSTATE_DOC_MAX];
	static const char want[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
				   "<isComposing xmlns=\"" NS "\">\n"
				   "  <state>active</state>\n"
				   "  <contenttype>text/plain</contenttype>\n"
				   "  <refresh>90</refresh>\n"
				   "</isComposing>\n";
	assert_int_equal(chatstate_write(&d, out, sizeof out), strlen(want));
	assert_string_equal(out, want);

	static const char want_idle[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
					"<isComposing xmlns=\"" NS "\">\n"
					"  <state>idle</state>\n"
					"  <lastactive>2003-01-27T10:43:00Z</lastactive>\n"
					"  <contenttype>a&lt;b&gt;&amp;c\"</contenttype>\n"
					"</isComposing>\n";
	struct chatstate_doc i = {.state = CHATSTATE_IC_IDLE};
	strcpy(i.lastactive, "2003-01-27T10:43:00Z");
	strcpy(i.contenttype, "a<b>&c\"");
	assert_int_equal(chatstate_write(&i, out, sizeof out), strlen(want_idle));
	assert_string_equal(out, want_idle);

	/* what is written parses back to the same document */
	struct chatstate_doc docs[] = {d, i, {.state = CHATSTATE_IC_IDLE}};
	for (size_t k = 0; k < N(docs); k++) {
		struct chatstate_doc back;
		int n = chatstate_write(&docs[k], out, sizeof out);
		assert_true(n > 0);
		assert_int_equal(chatstate_parse(out, (size_t)n, CHATSTATE_DOC_MAX, &back), 0);
		assert_memory_equal(&back, &docs[k], sizeof back);
	}

	/* every capacity: exact fit or PE_TOOBIG */
	for (size_t cap = 0; cap <= strlen(want) + 1; cap++) {
		char *o = malloc(cap ? cap : 1);
		int rc = chatstate_write(&d, o, cap);
		assert_int_equal(rc, cap > strlen(want) ? (int)strlen(want) : PE_TOOBIG);
		free(o);
	}

	/* refused fields */
	struct chatstate_doc bad = {.state = CHATSTATE_IC_IDLE};
	strcpy(bad.contenttype, "a\nb");
	assert_int_equal(chatstate_write(&bad, out, sizeof out), PE_INVAL);
	strcpy(bad.contenttype, " a");
	assert_int_equal(chatstate_write(&bad, out, sizeof out), PE_INVAL);
	strcpy(bad.contenttype, "a ");
	assert_int_equal(chatstate_write(&bad, out, sizeof out), PE_INVAL);
	strcpy(bad.contenttype, "\xc3");
	assert_int_equal(chatstate_write(&bad, out, sizeof out), PE_INVAL);
	bad.contenttype[0] = '\0';
	memset(bad.lastactive, 'x', sizeof bad.lastactive); /* no NUL within the field */
	assert_int_equal(chatstate_write(&bad, out, sizeof out), PE_INVAL);
	bad.lastactive[0] = '\0';
	bad.refresh = 1000000000;
	assert_int_equal(chatstate_write(&bad, out, sizeof out), PE_INVAL);
	bad.refresh = 0;
	bad.state = (enum chatstate_ic)7;
	assert_int_equal(chatstate_write(&bad, out, sizeof out), PE_INVAL);
}

/* ---- F1 ----------------------------------------------------------------------------- */

static void test_f1(void **state)
{
	(void)state;
	static const struct {
		enum chatstate s;
		bool sent;
		enum chatstate_ic ic;
	} T[] = {
	    {CHATSTATE_COMPOSING, true, CHATSTATE_IC_ACTIVE},
	    {CHATSTATE_ACTIVE, true, CHATSTATE_IC_IDLE},
	    {CHATSTATE_PAUSED, true, CHATSTATE_IC_IDLE},
	    {CHATSTATE_INACTIVE, true, CHATSTATE_IC_IDLE},
	    {CHATSTATE_GONE, false, 0},
	    {CHATSTATE_NONE, false, 0},
	};
	for (size_t i = 0; i < N(T); i++) {
		enum chatstate_ic ic = (enum chatstate_ic)42;
		assert_int_equal(chatstate_to_ic(T[i].s, &ic), T[i].sent);
		if (T[i].sent)
			assert_int_equal(ic, T[i].ic);
		else
			assert_int_equal(ic, 42);
	}
	assert_int_equal(chatstate_from_ic(CHATSTATE_IC_ACTIVE), CHATSTATE_COMPOSING);
	assert_int_equal(chatstate_from_ic(CHATSTATE_IC_IDLE), CHATSTATE_ACTIVE);

	static const char *const names[] = {"active", "composing", "paused", "inactive", "gone"};
	for (size_t i = 0; i < N(names); i++) {
		enum chatstate s = chatstate_from_name(names[i], strlen(names[i]));
		assert_int_equal(s, (enum chatstate)(i + 1));
		assert_string_equal(chatstate_name(s), names[i]);
	}
	assert_int_equal(chatstate_from_name("Active", 6), CHATSTATE_NONE);
	assert_int_equal(chatstate_from_name("gon", 3), CHATSTATE_NONE);
	assert_string_equal(chatstate_name(CHATSTATE_NONE), "");
	assert_string_equal(chatstate_name((enum chatstate)99), "");
}

/* ---- F2 ----------------------------------------------------------------------------- */

static void test_f2_timing(void **state)
{
	(void)state;
	assert_int_equal(chatstate_refresh_interval(0), 90);
	assert_int_equal(chatstate_refresh_interval(1), 60);
	assert_int_equal(chatstate_refresh_interval(59), 60);
	assert_int_equal(chatstate_refresh_interval(60), 60);
	assert_int_equal(chatstate_refresh_interval(300), 300);
	struct chatstate_doc d = {.state = CHATSTATE_IC_ACTIVE};
	assert_int_equal(chatstate_active_timeout(&d), 120); /* no refresh: 120 s */
	d.refresh = 5;
	assert_int_equal(chatstate_active_timeout(&d), 60); /* never below 60 s */
	d.refresh = 90;
	assert_int_equal(chatstate_active_timeout(&d), 90);
	d.refresh = 600;
	assert_int_equal(chatstate_active_timeout(&d), 600);
	d.state = CHATSTATE_IC_IDLE;
	assert_int_equal(chatstate_active_timeout(&d), 0);
}

static void test_rx_tracker(void **state)
{
	(void)state;
	struct chatstate_rx rx = {0};
	struct chatstate_doc act = {.state = CHATSTATE_IC_ACTIVE};
	struct chatstate_doc idle = {.state = CHATSTATE_IC_IDLE};
	uint64_t t = 1000000;

	assert_int_equal(chatstate_rx_deadline(&rx), 0);
	assert_int_equal(chatstate_rx_doc(&rx, &idle, t), CHATSTATE_NONE); /* idle while idle */
	/* active: composing once, refreshes only move the expiry (120 s without refresh) */
	assert_int_equal(chatstate_rx_doc(&rx, &act, t), CHATSTATE_COMPOSING);
	assert_int_equal(chatstate_rx_deadline(&rx), t + 120000);
	assert_int_equal(chatstate_rx_doc(&rx, &act, t + 50000), CHATSTATE_NONE);
	assert_int_equal(chatstate_rx_deadline(&rx), t + 170000);
	assert_int_equal(chatstate_rx_tick(&rx, t + 169999), CHATSTATE_NONE);
	assert_int_equal(chatstate_rx_tick(&rx, t + 170000), CHATSTATE_ACTIVE);
	assert_int_equal(chatstate_rx_tick(&rx, t + 170001), CHATSTATE_NONE);
	assert_int_equal(chatstate_rx_deadline(&rx), 0);
	/* explicit idle ends composing */
	act.refresh = 90;
	assert_int_equal(chatstate_rx_doc(&rx, &act, t), CHATSTATE_COMPOSING);
	assert_int_equal(chatstate_rx_deadline(&rx), t + 90000);
	assert_int_equal(chatstate_rx_doc(&rx, &idle, t + 1), CHATSTATE_ACTIVE);
	assert_int_equal(chatstate_rx_tick(&rx, t + 200000), CHATSTATE_NONE);
	/* a short refresh cannot speed up our timer */
	act.refresh = 1;
	assert_int_equal(chatstate_rx_doc(&rx, &act, t), CHATSTATE_COMPOSING);
	assert_int_equal(chatstate_rx_deadline(&rx), t + 60000);
	/* a content message ends composing without a notification of its own */
	chatstate_rx_message(&rx);
	assert_int_equal(chatstate_rx_deadline(&rx), 0);
	assert_int_equal(chatstate_rx_tick(&rx, t + 1000000), CHATSTATE_NONE);
	assert_int_equal(chatstate_rx_doc(&rx, &idle, t), CHATSTATE_NONE);
}

static void test_tx_tracker(void **state)
{
	(void)state;
	struct chatstate_tx tx;
	struct chatstate_doc d;
	uint64_t t = 5000;
	chatstate_tx_init(&tx, 0);
	assert_int_equal(tx.refresh, 90);
	assert_int_equal(chatstate_tx_deadline(&tx), 0);
	assert_false(chatstate_tx_tick(&tx, t, &d));

	/* idle while idle sends nothing; gone never sends */
	assert_false(chatstate_tx_state(&tx, CHATSTATE_ACTIVE, t, &d));
	assert_false(chatstate_tx_state(&tx, CHATSTATE_PAUSED, t, &d));
	assert_false(chatstate_tx_state(&tx, CHATSTATE_GONE, t, &d));
	assert_false(chatstate_tx_state(&tx, CHATSTATE_NONE, t, &d));

	/* composing -> active with refresh and contenttype */
	assert_true(chatstate_tx_state(&tx, CHATSTATE_COMPOSING, t, &d));
	assert_int_equal(d.state, CHATSTATE_IC_ACTIVE);
	assert_int_equal(d.refresh, 90);
	assert_string_equal(d.contenttype, "text/plain");
	char out[CHATSTATE_DOC_MAX];
	assert_true(chatstate_write(&d, out, sizeof out) > 0);
	/* the refresh is due at 90% of 90 s */
	assert_int_equal(chatstate_tx_deadline(&tx), t + 81000);
	assert_false(chatstate_tx_state(&tx, CHATSTATE_COMPOSING, t + 1000, &d));
	assert_false(chatstate_tx_tick(&tx, t + 80999, &d));
	assert_true(chatstate_tx_tick(&tx, t + 81000, &d));
	assert_int_equal(d.state, CHATSTATE_IC_ACTIVE);
	assert_int_equal(d.refresh, 90);
	assert_int_equal(chatstate_tx_deadline(&tx), t + 162000);
	/* paused -> idle, once */
	assert_true(chatstate_tx_state(&tx, CHATSTATE_PAUSED, t + 90000, &d));
	assert_int_equal(d.state, CHATSTATE_IC_IDLE);
	assert_int_equal(d.refresh, 0);
	assert_false(chatstate_tx_state(&tx, CHATSTATE_INACTIVE, t + 90001, &d));
	assert_int_equal(chatstate_tx_deadline(&tx), 0);
	assert_false(chatstate_tx_tick(&tx, t + 500000, &d));

	/* inactive and active also end it */
	static const enum chatstate enders[] = {CHATSTATE_ACTIVE, CHATSTATE_INACTIVE};
	for (size_t i = 0; i < N(enders); i++) {
		assert_true(chatstate_tx_state(&tx, CHATSTATE_COMPOSING, t, &d));
		assert_true(chatstate_tx_state(&tx, enders[i], t + 1, &d));
		assert_int_equal(d.state, CHATSTATE_IC_IDLE);
	}

	/* gone while composing: nothing sent (page mode), the state is forgotten */
	assert_true(chatstate_tx_state(&tx, CHATSTATE_COMPOSING, t, &d));
	assert_false(chatstate_tx_state(&tx, CHATSTATE_GONE, t + 1, &d));
	assert_int_equal(chatstate_tx_deadline(&tx), 0);
	assert_false(chatstate_tx_tick(&tx, t + 100000, &d));

	/* a message with a body ends composing silently */
	assert_true(chatstate_tx_state(&tx, CHATSTATE_COMPOSING, t, &d));
	chatstate_tx_message(&tx);
	assert_false(chatstate_tx_state(&tx, CHATSTATE_PAUSED, t + 1, &d));
	assert_false(chatstate_tx_tick(&tx, t + 100000, &d));

	/* composing held for CHATSTATE_COMPOSING_MAX without a new one: refreshes, then idle;
	 * a repeated composing restarts that clock */
	chatstate_tx_init(&tx, 60);
	assert_true(chatstate_tx_state(&tx, CHATSTATE_COMPOSING, 0, &d));
	assert_int_equal(d.refresh, 60);
	uint64_t now = 0;
	int refreshes = 0;
	for (;;) {
		now = chatstate_tx_deadline(&tx);
		assert_true(now > 0);
		assert_true(chatstate_tx_tick(&tx, now, &d));
		if (d.state == CHATSTATE_IC_IDLE)
			break;
		refreshes++;
	}
	assert_int_equal(now, CHATSTATE_COMPOSING_MAX * 1000);
	assert_int_equal(refreshes, 5); /* at 54, 108, 162, 216, 270 s */
	assert_int_equal(chatstate_tx_deadline(&tx), 0);
	assert_true(chatstate_tx_state(&tx, CHATSTATE_COMPOSING, 0, &d));
	assert_false(chatstate_tx_state(&tx, CHATSTATE_COMPOSING, 200000, &d));
	assert_false(chatstate_tx_tick(&tx, 299999, &d) && d.state == CHATSTATE_IC_IDLE);
	assert_true(chatstate_tx_tick(&tx, 500000, &d));
	assert_int_equal(d.state, CHATSTATE_IC_IDLE);
	/* a configured interval below the minimum is raised */
	chatstate_tx_init(&tx, 10);
	assert_int_equal(tx.refresh, 60);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_rfc_examples),
	    cmocka_unit_test(test_parse_accepts),
	    cmocka_unit_test(test_parse_refuses),
	    cmocka_unit_test(test_parse_prefixes),
	    cmocka_unit_test(test_write),
	    cmocka_unit_test(test_f1),
	    cmocka_unit_test(test_f2_timing),
	    cmocka_unit_test(test_rx_tracker),
	    cmocka_unit_test(test_tx_tracker),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
