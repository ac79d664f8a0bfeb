/* sip_dialog: UAC and UAS dialogs, matching, CSeq rules, route sets and in-dialog
 * request building (loose and strict routers). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "buf.h"
#include "err.h"
#include "sip_dialog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct sip_msg *parse(const char *s)
{
	struct sip_msg *m = NULL;
	assert_int_equal(sip_msg_parse(s, strlen(s), &m), 0);
	return m;
}

/* Our SUBSCRIBE as sent, the 200 from the far end through two record-routing proxies. */
static const char SUB[] = "SUBSCRIBE sip:bob@partner.test SIP/2.0\r\n"
			  "Via: SIP/2.0/TCP 127.0.0.60:5060;branch=z9hG4bK-pl1\r\n"
			  "From: <sip:alice@corp.test>;tag=ours\r\n"
			  "To: <sip:bob@partner.test>\r\n"
			  "Call-ID: dlg-1@corp.test\r\n"
			  "CSeq: 10 SUBSCRIBE\r\n"
			  "Contact: <sip:parley@127.0.0.60:5060;transport=tcp>\r\n"
			  "Event: presence\r\n\r\n";
static const char OK[] = "SIP/2.0 200 OK\r\n"
			 "Via: SIP/2.0/TCP 127.0.0.60:5060;branch=z9hG4bK-pl1\r\n"
			 "Record-Route: <sip:127.0.0.72;lr>\r\n"
			 "Record-Route: <sip:127.0.0.71;lr;transport=tcp>\r\n"
			 "From: <sip:alice@corp.test>;tag=ours\r\n"
			 "To: <sip:bob@partner.test>;tag=theirs\r\n"
			 "Call-ID: dlg-1@corp.test\r\n"
			 "CSeq: 10 SUBSCRIBE\r\n"
			 "Contact: <sip:bob@127.0.0.75:5090>\r\n"
			 "Expires: 600\r\n\r\n";

static void test_uac_from_2xx(void **state)
{
	(void)state;
	struct sip_msg *req = parse(SUB), *ok = parse(OK);
	struct sip_dialog d;
	char key[256], hop[256];
	assert_int_equal(sip_dialog_init_uac(&d, req, ok), 0);
	assert_string_equal(d.call_id, "dlg-1@corp.test");
	assert_string_equal(d.local_tag, "ours");
	assert_string_equal(d.remote_tag, "theirs");
	assert_string_equal(d.remote_target, "sip:bob@127.0.0.75:5090");
	assert_int_equal(d.local_cseq, 10);
	/* a response's Record-Route is reversed for the UAC */
	assert_int_equal(d.nroute, 2);
	assert_string_equal(d.route[0], "<sip:127.0.0.71;lr;transport=tcp>");
	assert_string_equal(d.route[1], "<sip:127.0.0.72;lr>");
	assert_int_equal(sip_dialog_next_hop(&d, hop, sizeof hop), 0);
	assert_string_equal(hop, "sip:127.0.0.71;lr;transport=tcp");
	assert_int_equal(sip_dialog_key(&d, key, sizeof key), (int)strlen("dlg-1@corp.test\nours"));
	assert_string_equal(key, "dlg-1@corp.test\nours");
	char rkey[256];
	assert_int_equal(sip_dialog_key_of_response(ok, rkey, sizeof rkey), (int)strlen(key));
	assert_string_equal(rkey, key);

	/* the next in-dialog request: target as Request-URI, route set as Route */
	struct sip_msg *n = sip_dialog_new_request(&d, "SUBSCRIBE");
	assert_non_null(n);
	assert_string_equal(sip_msg_ruri(n), "sip:bob@127.0.0.75:5090");
	assert_string_equal(sip_msg_header(n, "Route", 0), "<sip:127.0.0.71;lr;transport=tcp>");
	assert_string_equal(sip_msg_header(n, "Route", 1), "<sip:127.0.0.72;lr>");
	assert_string_equal(sip_msg_from_tag(n), "ours");
	assert_string_equal(sip_msg_to_tag(n), "theirs");
	assert_int_equal(sip_msg_cseq(n, NULL), 11);
	assert_int_equal(d.local_cseq, 11);
	/* it survives the wire */
	struct buf b;
	struct sip_msg *p;
	buf_init(&b, 0);
	assert_int_equal(sip_msg_push_via(n, SIP_PROTO_TCP, "127.0.0.60:5060", "z9hG4bKx", false),
			 0);
	assert_int_equal(sip_msg_serialise(n, &b), 0);
	assert_int_equal(sip_msg_parse(buf_head(&b), buf_len(&b), &p), 0);
	assert_string_equal(sip_msg_header(p, "route", 1), "<sip:127.0.0.72;lr>");
	sip_msg_free(p);
	buf_deinit(&b);
	sip_msg_free(n);
	sip_dialog_deinit(&d);
	sip_msg_free(req);
	sip_msg_free(ok);
}

/* RFC 6665 §4.1.2.4: the NOTIFY may come before the 200. */
static const char NOTIFY[] = "NOTIFY sip:parley@127.0.0.60:5060;transport=tcp SIP/2.0\r\n"
			     "Via: SIP/2.0/TCP 127.0.0.71;branch=z9hG4bKn1\r\n"
			     "Record-Route: <sip:127.0.0.71;lr>\r\n"
			     "From: <sip:bob@partner.test>;tag=theirs\r\n"
			     "To: <sip:alice@corp.test>;tag=ours\r\n"
			     "Call-ID: dlg-1@corp.test\r\n"
			     "CSeq: 5 NOTIFY\r\n"
			     "Contact: <sip:bob@127.0.0.75:5090>\r\n"
			     "Event: presence\r\n"
			     "Subscription-State: active;expires=600\r\n\r\n";

static void test_uac_from_notify_and_matching(void **state)
{
	(void)state;
	struct sip_msg *req = parse(SUB), *nt = parse(NOTIFY);
	struct sip_dialog d;
	char key[256], nkey[256];
	assert_int_equal(sip_dialog_init_uac(&d, req, nt), 0);
	assert_string_equal(d.remote_tag, "theirs");
	assert_int_equal(d.remote_cseq, 5);
	assert_int_equal(d.nroute, 1); /* a request's Record-Route in order */
	assert_string_equal(d.route[0], "<sip:127.0.0.71;lr>");
	/* a NOTIFY's key (Call-ID + To tag) finds the dialog */
	assert_int_equal(sip_dialog_key(&d, key, sizeof key), 20);
	assert_int_equal(sip_dialog_key_of_request(nt, nkey, sizeof nkey), 20);
	assert_string_equal(key, nkey);
	assert_true(sip_dialog_matches(&d, nt));
	/* CSeq must grow (RFC 3261 §12.2.2) */
	assert_int_equal(sip_dialog_on_request(&d, nt), PE_STATE);
	char txt[1024];
	snprintf(txt, sizeof txt, "%s", NOTIFY);
	char *c = strstr(txt, "CSeq: 5");
	c[6] = '6';
	c = strstr(txt, "Contact: <sip:bob@127.0.0.75:5090>");
	memcpy(c, "Contact: <sip:bob@127.0.0.76:5090>", 34); /* target refresh */
	struct sip_msg *n2 = parse(txt);
	assert_int_equal(sip_dialog_on_request(&d, n2), 0);
	assert_int_equal(d.remote_cseq, 6);
	assert_string_equal(d.remote_target, "sip:bob@127.0.0.76:5090");
	/* another remote tag or Call-ID does not match */
	snprintf(txt, sizeof txt, "%s", NOTIFY);
	memcpy(strstr(txt, "tag=theirs"), "tag=THEIRS", 10);
	struct sip_msg *n3 = parse(txt);
	assert_false(sip_dialog_matches(&d, n3));
	snprintf(txt, sizeof txt, "%s", NOTIFY);
	memcpy(strstr(txt, "Call-ID: dlg-1"), "Call-ID: dlg-2", 14);
	struct sip_msg *n4 = parse(txt);
	assert_false(sip_dialog_matches(&d, n4));
	/* a 2xx after the NOTIFY changes nothing but may refresh the target */
	struct sip_msg *ok = parse(OK);
	assert_int_equal(sip_dialog_on_response(&d, ok), 0);
	assert_string_equal(d.remote_target, "sip:bob@127.0.0.75:5090");
	sip_msg_free(ok);
	sip_msg_free(n2);
	sip_msg_free(n3);
	sip_msg_free(n4);
	sip_dialog_deinit(&d);
	sip_msg_free(req);
	sip_msg_free(nt);
}

/* Target refresh from a Contact's text: an unchanged text keeps the target without osip,
 * any change (another URI, the same URI written differently, two Contacts, none) gives
 * what the URI says, and a target changed behind the dialog's back is put right. */
static struct sip_msg *notify_with(unsigned cseq, const char *contact_lines)
{
	char txt[2048];
	snprintf(txt, sizeof txt,
		 "NOTIFY sip:alice@127.0.0.60:5060 SIP/2.0\r\n"
		 "Via: SIP/2.0/TCP 127.0.0.75:5090;branch=z9hG4bK-n%u\r\n"
		 "From: <sip:bob@partner.test>;tag=theirs\r\n"
		 "To: <sip:alice@corp.test>;tag=ours\r\n"
		 "Call-ID: dlg-1@corp.test\r\n"
		 "CSeq: %u NOTIFY\r\n"
		 "%s"
		 "Event: presence\r\n"
		 "Subscription-State: active;expires=600\r\n\r\n",
		 cseq, cseq, contact_lines);
	return parse(txt);
}

static void test_target_refresh_by_text(void **state)
{
	(void)state;
	struct sip_msg *req = parse(SUB), *nt = parse(NOTIFY);
	struct sip_dialog d;
	static const struct {
		const char *lines, *target;
	} steps[] = {
	    {"Contact: <sip:bob@127.0.0.75:5090>\r\n", "sip:bob@127.0.0.75:5090"},
	    {"Contact: <sip:bob@127.0.0.75:5090>\r\n", "sip:bob@127.0.0.75:5090"},
	    {"Contact: <sip:bob@127.0.0.76:5090>\r\n", "sip:bob@127.0.0.76:5090"},
	    {"Contact: <sip:bob@127.0.0.76:5090>\r\n", "sip:bob@127.0.0.76:5090"},
	    {"Contact: <sip:bob@127.0.0.75:5090>\r\n", "sip:bob@127.0.0.75:5090"},
	    {"Contact: \"Bob\" <sip:bob@127.0.0.75:5090>\r\n", "sip:bob@127.0.0.75:5090"},
	    {"m: <sip:bob@127.0.0.77:5090;transport=tcp>\r\n",
	     "sip:bob@127.0.0.77:5090;transport=tcp"},
	    {"m: <sip:bob@127.0.0.77:5090;transport=tcp>\r\n",
	     "sip:bob@127.0.0.77:5090;transport=tcp"},
	    {"Contact: <sip:bob@127.0.0.78:5090>\r\nContact: <sip:x@127.0.0.79>\r\n",
	     "sip:bob@127.0.0.78:5090"},
	    {"", "sip:bob@127.0.0.78:5090"},
	    {"Contact: <sip:bob@127.0.0.78:5090>\r\n", "sip:bob@127.0.0.78:5090"},
	    {"Contact: <sip:bob@127.0.0.78:5090>\r\n", "sip:bob@127.0.0.78:5090"},
	};
	unsigned cseq = 5;
	assert_int_equal(sip_dialog_init_uac(&d, req, nt), 0);
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		struct sip_msg *n = notify_with(++cseq, steps[i].lines);
		assert_true(sip_dialog_matches(&d, n));
		assert_int_equal(sip_dialog_on_request(&d, n), 0);
		assert_string_equal(d.remote_target, steps[i].target);
		sip_msg_free(n);
	}
	/* someone else set the target: the same Contact text still makes it the Contact's */
	free(d.remote_target);
	d.remote_target = strdup("sip:elsewhere@127.0.0.99");
	struct sip_msg *n = notify_with(++cseq, "Contact: <sip:bob@127.0.0.78:5090>\r\n");
	assert_int_equal(sip_dialog_on_request(&d, n), 0);
	assert_string_equal(d.remote_target, "sip:bob@127.0.0.78:5090");
	sip_msg_free(n);
	/* a response (no usable text) refreshes through osip, as before */
	struct sip_msg *ok = parse(OK);
	assert_int_equal(sip_dialog_on_response(&d, ok), 0);
	assert_string_equal(d.remote_target, "sip:bob@127.0.0.75:5090");
	n = notify_with(++cseq, "Contact: <sip:bob@127.0.0.78:5090>\r\n");
	assert_int_equal(sip_dialog_on_request(&d, n), 0);
	assert_string_equal(d.remote_target, "sip:bob@127.0.0.78:5090");
	sip_msg_free(n);
	sip_msg_free(ok);
	sip_dialog_deinit(&d);
	assert_null(d.contact_text);
	sip_msg_free(req);
	sip_msg_free(nt);
}

/* Dialog keys: "call-id\nlocal-tag", bounded by the caller's buffer. */
static void test_keys(void **state)
{
	(void)state;
	struct sip_dialog d = {.call_id = "abc@x", .local_tag = "t1"};
	char key[16];
	assert_int_equal(sip_dialog_key(&d, key, sizeof key), 8);
	assert_string_equal(key, "abc@x\nt1");
	assert_int_equal(sip_dialog_key(&d, key, 9), 8);
	assert_int_equal(sip_dialog_key(&d, key, 8), PE_TOOBIG);
	d.local_tag = NULL;
	assert_int_equal(sip_dialog_key(&d, key, sizeof key), PE_NOTFOUND);
	struct sip_msg *nt = parse(NOTIFY);
	char k2[64];
	assert_int_equal(sip_dialog_key_of_request(nt, k2, sizeof k2), 20);
	assert_string_equal(k2, "dlg-1@corp.test\nours");
	assert_int_equal(sip_dialog_key_of_request(nt, k2, 20), PE_TOOBIG);
	assert_int_equal(sip_dialog_key_of_request(nt, k2, 21), 20);
	sip_msg_free(nt);
}

static void test_uas_and_strict_router(void **state)
{
	(void)state;
	/* a SUBSCRIBE that came to us through a strict router (no ;lr) */
	const char *in = "SUBSCRIBE sip:alice@corp.test SIP/2.0\r\n"
			 "Via: SIP/2.0/UDP 127.0.0.71;branch=z9hG4bKs1\r\n"
			 "Record-Route: <sip:127.0.0.71>\r\n"
			 "From: <sip:bob@partner.test>;tag=rt\r\n"
			 "To: <sip:alice@corp.test>\r\n"
			 "Call-ID: uas-1\r\n"
			 "CSeq: 3 SUBSCRIBE\r\n"
			 "Contact: <sip:bob@127.0.0.75:5090>\r\n"
			 "Event: presence\r\n\r\n";
	struct sip_msg *req = parse(in);
	struct sip_dialog d;
	char hop[256];
	assert_int_equal(sip_dialog_init_uas(&d, req, "lt", 100), 0);
	assert_string_equal(d.local_tag, "lt");
	assert_string_equal(d.remote_tag, "rt");
	assert_string_equal(d.local_uri, "sip:alice@corp.test");
	assert_string_equal(d.remote_uri, "sip:bob@partner.test");
	assert_int_equal(d.remote_cseq, 3);
	struct sip_msg *n = sip_dialog_new_request(&d, "NOTIFY");
	assert_non_null(n);
	/* strict routing: the route is the Request-URI, the target the last Route */
	assert_string_equal(sip_msg_ruri(n), "sip:127.0.0.71");
	assert_string_equal(sip_msg_header(n, "Route", 0), "<sip:bob@127.0.0.75:5090>");
	assert_null(sip_msg_header(n, "Route", 1));
	assert_int_equal(sip_msg_cseq(n, NULL), 101);
	assert_string_equal(sip_msg_from_tag(n), "lt");
	assert_string_equal(sip_msg_to_tag(n), "rt");
	assert_int_equal(sip_dialog_next_hop(&d, hop, sizeof hop), 0);
	assert_string_equal(hop, "sip:127.0.0.71");
	sip_msg_free(n);
	sip_dialog_deinit(&d);
	sip_msg_free(req);

	/* no Contact: no dialog */
	req = parse(
	    "SUBSCRIBE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
	    "From: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 SUBSCRIBE\r\n\r\n");
	assert_int_equal(sip_dialog_init_uas(&d, req, "lt", 0), PE_PROTO);
	sip_msg_free(req);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_uac_from_2xx),
	    cmocka_unit_test(test_uac_from_notify_and_matching),
	    cmocka_unit_test(test_uas_and_strict_router),
	    cmocka_unit_test(test_target_refresh_by_text),
	    cmocka_unit_test(test_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
