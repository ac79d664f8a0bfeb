/* Unit tests for the error mapping: every row of MAPPING H1 and H2 as a vector, H3 by
 * class, RFC 6120 error types, "service-unavailable never 503", reason text both ways. */
#include "err.h"
#include "errmap.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- H1 ------------------------------------------------------------------------------ */

/* One row per condition: the status for a full JID, a bare JID, and with the row's flag
 * (new_address, unresolvable or pending) set, as RFC 7247 §7 / MAPPING H1 give them. */
static const struct {
	const char *name;
	int full, bare, flagged;
} H1[] = {
    {"bad-request", 400, 400, 400},
    {"conflict", 400, 400, 400},
    {"feature-not-implemented", 405, 501, 405},
    {"forbidden", 403, 603, 403},
    {"gone", 410, 410, 301},
    {"internal-server-error", 500, 500, 500},
    {"item-not-found", 404, 604, 404},
    {"jid-malformed", 400, 400, 400},
    {"not-acceptable", 406, 606, 406},
    {"not-allowed", 403, 403, 403},
    {"not-authorized", 401, 401, 401},
    {"policy-violation", 403, 403, 403},
    {"recipient-unavailable", 480, 600, 480},
    {"redirect", 302, 302, 302},
    {"registration-required", 407, 407, 407},
    {"remote-server-not-found", 404, 404, 408},
    {"remote-server-timeout", 408, 408, 408},
    {"resource-constraint", 500, 500, 500},
    {"service-unavailable", 405, 403, 405},
    {"subscription-required", 400, 400, 400},
    {"undefined-condition", 400, 400, 400},
    {"unexpected-request", 400, 400, 491},
};

static void test_h1_table(void **state)
{
	(void)state;
	assert_int_equal(N(H1), ERRMAP_COND__COUNT - 1); /* every condition has a row */
	for (size_t i = 0; i < N(H1); i++) {
		enum errmap_cond c = errmap_cond_from_name(H1[i].name, strlen(H1[i].name));
		assert_int_not_equal(c, ERRMAP_COND_NONE);
		struct errmap_xmpp full = {.cond = c};
		struct errmap_xmpp bare = {.cond = c, .bare = true};
		struct errmap_xmpp flag = {
		    .cond = c, .new_address = true, .unresolvable = true, .pending = true};
		int f = errmap_to_sip(&full), b = errmap_to_sip(&bare), g = errmap_to_sip(&flag);
		if (f != H1[i].full || b != H1[i].bare || g != H1[i].flagged)
			fail_msg("H1 %s: %d/%d/%d, want %d/%d/%d", H1[i].name, f, b, g, H1[i].full,
				 H1[i].bare, H1[i].flagged);
	}
	/* the flags only matter to their own rows */
	struct errmap_xmpp e = {.cond = ERRMAP_COND_GONE, .unresolvable = true, .pending = true};
	assert_int_equal(errmap_to_sip(&e), 410);
	e = (struct errmap_xmpp){.cond = ERRMAP_COND_REMOTE_SERVER_NOT_FOUND, .new_address = true};
	assert_int_equal(errmap_to_sip(&e), 404);
	e = (struct errmap_xmpp){.cond = ERRMAP_COND_UNEXPECTED_REQUEST, .bare = true};
	assert_int_equal(errmap_to_sip(&e), 400);
	/* unknown conditions are treated as undefined-condition */
	e = (struct errmap_xmpp){.cond = ERRMAP_COND_NONE};
	assert_int_equal(errmap_to_sip(&e), 400);
	e = (struct errmap_xmpp){.cond = (enum errmap_cond)999};
	assert_int_equal(errmap_to_sip(&e), 400);
}

/* RFC 7247 §7 note 5: a 503 would make SIP stop sending to the gateway. */
static void test_service_unavailable_never_503(void **state)
{
	(void)state;
	for (int c = 0; c <= ERRMAP_COND__COUNT; c++) {
		for (unsigned bits = 0; bits < 16; bits++) {
			struct errmap_xmpp e = {.cond = (enum errmap_cond)c,
						.bare = bits & 1,
						.new_address = bits & 2,
						.unresolvable = bits & 4,
						.pending = bits & 8};
			int s = errmap_to_sip(&e);
			if (s == 503 || s < 300 || s > 699)
				fail_msg("condition %d flags %u -> %d", c, bits, s);
		}
	}
	struct errmap_xmpp su = {.cond = ERRMAP_COND_SERVICE_UNAVAILABLE};
	assert_int_not_equal(errmap_to_sip(&su), 503);
	su.bare = true;
	assert_int_not_equal(errmap_to_sip(&su), 503);
}

/* ---- H2, H3 -------------------------------------------------------------------------- */

static void check_h2(int status, const char *cond)
{
	struct errmap_stanza e = errmap_from_sip(status);
	if (strcmp(errmap_cond_name(e.cond), cond) != 0)
		fail_msg("H2 %d -> %s, want %s", status, errmap_cond_name(e.cond), cond);
	if (e.type != errmap_cond_type(e.cond))
		fail_msg("H2 %d: type %s, want %s", status, errmap_type_name(e.type),
			 errmap_type_name(errmap_cond_type(e.cond)));
}

static void test_h2_table(void **state)
{
	(void)state;
	static const struct {
		int status;
		const char *cond;
	} T[] = {
	    {300, "redirect"},
	    {301, "gone"},
	    {302, "redirect"},
	    {305, "redirect"},
	    {380, "redirect"},
	    {400, "bad-request"},
	    {401, "not-authorized"},
	    {403, "forbidden"},
	    {404, "item-not-found"},
	    {405, "feature-not-implemented"},
	    {406, "not-acceptable"},
	    {407, "registration-required"},
	    {408, "remote-server-timeout"},
	    {410, "gone"},
	    {413, "policy-violation"},
	    {414, "policy-violation"},
	    {415, "not-acceptable"},
	    {416, "not-acceptable"},
	    {420, "feature-not-implemented"},
	    {423, "resource-constraint"},
	    {480, "recipient-unavailable"},
	    {481, "item-not-found"},
	    {482, "not-acceptable"},
	    {483, "not-acceptable"},
	    {484, "item-not-found"},
	    {485, "item-not-found"},
	    {486, "recipient-unavailable"},
	    {487, "recipient-unavailable"},
	    {488, "not-acceptable"},
	    {489, "policy-violation"},
	    {491, "unexpected-request"},
	    {500, "internal-server-error"},
	    {501, "feature-not-implemented"},
	    {502, "remote-server-not-found"},
	    {503, "internal-server-error"},
	    {504, "remote-server-timeout"},
	    {600, "recipient-unavailable"},
	    {603, "recipient-unavailable"},
	    {604, "item-not-found"},
	    {606, "not-acceptable"},
	};
	for (size_t i = 0; i < N(T); i++)
		check_h2(T[i].status, T[i].cond);
}

static void test_h3_classes(void **state)
{
	(void)state;
	static const int r3[] = {303, 304, 390, 399};
	static const int r4[] = {402, 409, 411, 412, 417, 421, 422,
				 428, 429, 433, 470, 493, 494, 499};
	static const int r5[] = {505, 513, 555, 580, 599};
	static const int r6[] = {601, 602, 605, 607, 608, 699};
	for (size_t i = 0; i < N(r3); i++)
		check_h2(r3[i], "redirect");
	for (size_t i = 0; i < N(r4); i++)
		check_h2(r4[i], "bad-request");
	for (size_t i = 0; i < N(r5); i++)
		check_h2(r5[i], "internal-server-error");
	for (size_t i = 0; i < N(r6); i++)
		check_h2(r6[i], "recipient-unavailable");
	/* not failures */
	static const int none[] = {-1, 0, 99, 100, 180, 200, 202, 299, 700, 1000};
	for (size_t i = 0; i < N(none); i++) {
		struct errmap_stanza e = errmap_from_sip(none[i]);
		assert_int_equal(e.cond, ERRMAP_COND_NONE);
		assert_int_equal(e.type, ERRMAP_TYPE_NONE);
	}
	/* every failure code maps to a real condition */
	for (int s = 300; s < 700; s++) {
		struct errmap_stanza e = errmap_from_sip(s);
		assert_int_not_equal(e.cond, ERRMAP_COND_NONE);
		assert_int_not_equal(e.type, ERRMAP_TYPE_NONE);
	}
}

/* RFC 6120 §8.3.3: the recommended type of each condition. */
static void test_cond_types_and_names(void **state)
{
	(void)state;
	static const struct {
		const char *cond, *type;
	} T[] = {
	    {"bad-request", "modify"},
	    {"conflict", "cancel"},
	    {"feature-not-implemented", "cancel"},
	    {"forbidden", "auth"},
	    {"gone", "cancel"},
	    {"internal-server-error", "cancel"},
	    {"item-not-found", "cancel"},
	    {"jid-malformed", "modify"},
	    {"not-acceptable", "modify"},
	    {"not-allowed", "cancel"},
	    {"not-authorized", "auth"},
	    {"policy-violation", "modify"},
	    {"recipient-unavailable", "wait"},
	    {"redirect", "modify"},
	    {"registration-required", "auth"},
	    {"remote-server-not-found", "cancel"},
	    {"remote-server-timeout", "wait"},
	    {"resource-constraint", "wait"},
	    {"service-unavailable", "cancel"},
	    {"subscription-required", "auth"},
	    {"undefined-condition", "cancel"},
	    {"unexpected-request", "wait"},
	};
	assert_int_equal(N(T), ERRMAP_COND__COUNT - 1);
	for (size_t i = 0; i < N(T); i++) {
		enum errmap_cond c = errmap_cond_from_name(T[i].cond, strlen(T[i].cond));
		assert_int_equal(c, (enum errmap_cond)(i + 1)); /* X-macro order */
		assert_string_equal(errmap_cond_name(c), T[i].cond);
		assert_string_equal(errmap_type_name(errmap_cond_type(c)), T[i].type);
	}
	assert_int_equal(errmap_cond_from_name("bad-reques", 10), ERRMAP_COND_NONE);
	assert_int_equal(errmap_cond_from_name("Bad-Request", 11), ERRMAP_COND_NONE);
	assert_int_equal(errmap_cond_from_name("", 0), ERRMAP_COND_NONE);
	assert_int_equal(errmap_cond_from_name("gonex", 4), ERRMAP_COND_GONE);
	assert_string_equal(errmap_cond_name(ERRMAP_COND_NONE), "");
	assert_string_equal(errmap_cond_name((enum errmap_cond) - 1), "");
	assert_string_equal(errmap_cond_name(ERRMAP_COND__COUNT), "");
	assert_int_equal(errmap_cond_type(ERRMAP_COND_NONE), ERRMAP_TYPE_NONE);
	assert_int_equal(errmap_cond_type(ERRMAP_COND__COUNT), ERRMAP_TYPE_NONE);
	static const char *const types[] = {"auth", "cancel", "continue", "modify", "wait"};
	for (size_t i = 0; i < N(types); i++) {
		enum errmap_type t = errmap_type_from_name(types[i], strlen(types[i]));
		assert_int_not_equal(t, ERRMAP_TYPE_NONE);
		assert_string_equal(errmap_type_name(t), types[i]);
	}
	assert_int_equal(errmap_type_from_name("Cancel", 6), ERRMAP_TYPE_NONE);
	assert_string_equal(errmap_type_name((enum errmap_type)42), "");
}

/* ---- reason phrases and <text/> -------------------------------------------------------- */

static void test_reason_phrases(void **state)
{
	(void)state;
	static const struct {
		int status;
		const char *reason;
	} T[] = {
	    {100, "Trying"},
	    {200, "OK"},
	    {202, "Accepted"},
	    {301, "Moved Permanently"},
	    {302, "Moved Temporarily"},
	    {400, "Bad Request"},
	    {401, "Unauthorized"},
	    {403, "Forbidden"},
	    {404, "Not Found"},
	    {405, "Method Not Allowed"},
	    {406, "Not Acceptable"},
	    {407, "Proxy Authentication Required"},
	    {408, "Request Timeout"},
	    {410, "Gone"},
	    {414, "Request-URI Too Long"},
	    {415, "Unsupported Media Type"},
	    {416, "Unsupported URI Scheme"},
	    {480, "Temporarily Unavailable"},
	    {482, "Loop Detected"},
	    {489, "Bad Event"},
	    {491, "Request Pending"},
	    {500, "Server Internal Error"},
	    {501, "Not Implemented"},
	    {503, "Service Unavailable"},
	    {600, "Busy Everywhere"},
	    {603, "Decline"},
	    {604, "Does Not Exist Anywhere"},
	    {606, "Not Acceptable"},
	    /* unregistered: the class */
	    {199, "Early Dialog Terminated"},
	    {150, "Provisional"},
	    {299, "Success"},
	    {399, "Redirection"},
	    {499, "Client Error"},
	    {599, "Server Error"},
	    {699, "Global Failure"},
	    {99, "Unknown"},
	    {700, "Unknown"},
	};
	for (size_t i = 0; i < N(T); i++)
		assert_string_equal(errmap_reason(T[i].status), T[i].reason);
	/* every H1 result has a proper (registered) phrase */
	for (size_t i = 0; i < N(H1); i++) {
		const char *r = errmap_reason(H1[i].bare);
		assert_true(strcmp(r, "Client Error") && strcmp(r, "Global Failure") &&
			    strcmp(r, "Server Error"));
		r = errmap_reason(H1[i].full);
		assert_true(strcmp(r, "Client Error") && strcmp(r, "Server Error"));
	}
}

static void test_reason_from_text(void **state)
{
	(void)state;
	char out[ERRMAP_TEXT_MAX + 8];
	/* <text/> becomes the Reason-Phrase */
	assert_int_equal(errmap_reason_from_text("No such user", 12, 404, out, sizeof out), 12);
	assert_string_equal(out, "No such user");
	/* missing, empty or blank: the standard phrase */
	assert_int_equal(errmap_reason_from_text(NULL, 0, 404, out, sizeof out), 9);
	assert_string_equal(out, "Not Found");
	assert_int_equal(errmap_reason_from_text("", 0, 603, out, sizeof out), 7);
	assert_string_equal(out, "Decline");
	assert_int_equal(errmap_reason_from_text(" \t\r\n", 4, 480, out, sizeof out), 23);
	assert_string_equal(out, "Temporarily Unavailable");
	/* controls never reach the start line: CR LF would end it */
	const char *evil = "  bad\r\nVia: SIP/2.0/TCP evil\x01\x7f ";
	const char *clean = "bad  Via: SIP/2.0/TCP evil";
	assert_int_equal(errmap_reason_from_text(evil, strlen(evil), 400, out, sizeof out),
			 strlen(clean));
	assert_string_equal(out, clean);
	/* UTF-8 is kept; C1 controls are not */
	const char *u = "Utilisateur inconnu \xc3\xa9t\xc3\xa9\xc2\x85!";
	errmap_reason_from_text(u, strlen(u), 404, out, sizeof out);
	assert_string_equal(out, "Utilisateur inconnu \xc3\xa9t\xc3\xa9 !");
	/* not UTF-8: the standard phrase */
	assert_int_equal(errmap_reason_from_text("caf\xe9", 4, 404, out, sizeof out), 9);
	assert_string_equal(out, "Not Found");
	/* bounded, cut at a character boundary */
	static char big[1000];
	memset(big, 'x', sizeof big);
	assert_int_equal(errmap_reason_from_text(big, sizeof big, 400, out, sizeof out),
			 ERRMAP_TEXT_MAX);
	char small[6];
	assert_int_equal(errmap_reason_from_text("ab\xc3\xa9\xc3\xa9", 6, 400, small, sizeof small),
			 4);
	assert_string_equal(small, "ab\xc3\xa9");
	assert_int_equal(errmap_reason_from_text("abcd \xe2\x82\xac", 8, 400, small, sizeof small),
			 4); /* the euro sign does not fit, the space before it is trimmed */
	assert_string_equal(small, "abcd");
	char one[1];
	assert_int_equal(errmap_reason_from_text("abc", 3, 400, one, sizeof one), 0);
	assert_string_equal(one, "");
	/* the fallback is cut too */
	assert_int_equal(errmap_reason_from_text(NULL, 0, 407, small, sizeof small), 5);
	assert_string_equal(small, "Proxy");
}

static void test_text_from_reason(void **state)
{
	(void)state;
	char out[ERRMAP_TEXT_MAX + 8];
	assert_int_equal(errmap_text_from_reason("Not Found", 9, out, sizeof out), 9);
	assert_string_equal(out, "Not Found");
	assert_int_equal(errmap_text_from_reason("", 0, out, sizeof out), 0);
	assert_int_equal(errmap_text_from_reason(NULL, 0, out, sizeof out), 0);
	assert_int_equal(errmap_text_from_reason("   ", 3, out, sizeof out), 0);
	/* XML-forbidden characters become spaces */
	const char *r = "a\x01"
			"b\xef\xbf\xbe"
			"c\xef\xbf\xbf"
			"d <&>";
	assert_int_equal(errmap_text_from_reason(r, strlen(r), out, sizeof out), 11);
	assert_string_equal(out, "a b c d <&>");
	/* not UTF-8: no text at all */
	assert_int_equal(errmap_text_from_reason("\xff\xfe", 2, out, sizeof out), 0);
	assert_string_equal(out, "");
	assert_int_equal(errmap_text_from_reason("ok\xed\xa0\x80", 5, out, sizeof out), 0);
	/* 4-byte characters survive whole or not at all */
	char five[5];
	assert_int_equal(errmap_text_from_reason("\xf0\x9f\x98\x80x", 5, five, sizeof five), 4);
	assert_string_equal(five, "\xf0\x9f\x98\x80");
	assert_int_equal(errmap_text_from_reason("a\xf0\x9f\x98\x80", 5, five, sizeof five), 1);
	assert_string_equal(five, "a");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_h1_table),
	    cmocka_unit_test(test_service_unavailable_never_503),
	    cmocka_unit_test(test_h2_table),
	    cmocka_unit_test(test_h3_classes),
	    cmocka_unit_test(test_cond_types_and_names),
	    cmocka_unit_test(test_reason_phrases),
	    cmocka_unit_test(test_reason_from_text),
	    cmocka_unit_test(test_text_from_reason),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
