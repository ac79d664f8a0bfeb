/* sip_msg and sip_uri: parsing, accessors, builders and the wire form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "buf.h"
#include "err.h"
#include "sip_msg.h"
#include "sip_uri.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char REQ[] = "SUBSCRIBE sip:bob@partner.test;transport=tcp SIP/2.0\r\n"
			  "Via: SIP/2.0/TCP 127.0.0.61:5060;branch=z9hG4bK-top;rport\r\n"
			  "v: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK-second\r\n"
			  "Max-Forwards: 69\r\n"
			  "f: \"Alice A\" <sip:alice@corp.test>;tag=ftag1\r\n"
			  "t: <sip:bob@partner.test>\r\n"
			  "i: abc123@corp.test\r\n"
			  "CSeq: 7 SUBSCRIBE\r\n"
			  "o: presence;id=5\r\n"
			  "Accept: application/pidf+xml, text/plain\r\n"
			  "Expires: 3600\r\n"
			  "Record-Route: <sip:127.0.0.70;lr>\r\n"
			  "Record-Route: <sip:127.0.0.71;lr>\r\n"
			  "Contact: <sip:alice@127.0.0.61:5060;transport=tcp>\r\n"
			  "s: hello\r\n"
			  "Content-Language: de\r\n"
			  "Retry-After: 120 (later);duration=60\r\n"
			  "X-Custom: one\r\n"
			  "X-Custom: two\r\n"
			  "Content-Type: multipart/mixed;boundary=XX\r\n"
			  "l: 19\r\n"
			  "\r\n"
			  "--XX\r\nhello\r\n--XX--";

static struct sip_msg *parse(const char *s)
{
	struct sip_msg *m = NULL;
	assert_int_equal(sip_msg_parse(s, strlen(s), &m), 0);
	assert_non_null(m);
	return m;
}

static void test_parse_accessors(void **state)
{
	(void)state;
	struct sip_msg *m = parse(REQ);
	const char *why = NULL, *cm = NULL, *host = NULL, *rcv = NULL;
	enum sip_proto proto;
	int port, rport;
	const uint8_t *body;
	size_t blen;

	assert_int_equal(sip_msg_validate(m, &why), 0);
	assert_true(sip_msg_is_request(m));
	assert_string_equal(sip_msg_method(m), "SUBSCRIBE");
	assert_int_equal(sip_msg_status(m), 0);
	assert_string_equal(sip_msg_ruri(m), "sip:bob@partner.test;transport=tcp");
	assert_string_equal(sip_msg_from_uri(m), "sip:alice@corp.test");
	assert_string_equal(sip_msg_from_tag(m), "ftag1");
	assert_string_equal(sip_msg_from_display(m), "\"Alice A\"");
	assert_string_equal(sip_msg_to_uri(m), "sip:bob@partner.test");
	assert_null(sip_msg_to_tag(m));
	assert_string_equal(sip_msg_call_id(m), "abc123@corp.test");
	assert_int_equal(sip_msg_cseq(m, &cm), 7);
	assert_string_equal(cm, "SUBSCRIBE");
	assert_int_equal(sip_msg_via_count(m), 2);
	assert_string_equal(sip_msg_via_branch(m, 0), "z9hG4bK-top");
	assert_string_equal(sip_msg_via_branch(m, 1), "z9hG4bK-second");
	assert_int_equal(sip_msg_via_top(m, &proto, &host, &port, &rcv, &rport), 0);
	assert_int_equal(proto, SIP_PROTO_TCP);
	assert_string_equal(host, "127.0.0.61");
	assert_int_equal(port, 5060);
	assert_null(rcv);
	assert_int_equal(rport, 0);
	assert_int_equal(sip_msg_max_forwards(m), 69);
	assert_string_equal(sip_msg_event(m), "presence;id=5");
	assert_string_equal(sip_msg_header(m, "Event", 0), "presence;id=5");
	assert_string_equal(sip_msg_header(m, "accept", 0), "application/pidf+xml");
	assert_string_equal(sip_msg_header(m, "Accept", 1), "text/plain");
	assert_null(sip_msg_header(m, "Accept", 2));
	assert_int_equal(sip_msg_expires(m), 3600);
	assert_int_equal(sip_msg_retry_after(m), 120);
	assert_string_equal(sip_msg_subject(m), "hello");
	assert_string_equal(sip_msg_content_language(m), "de");
	assert_null(sip_msg_subscription_state(m));
	assert_string_equal(sip_msg_header(m, "x-custom", 1), "two");
	assert_int_equal(sip_msg_record_route_count(m), 2);
	assert_string_equal(sip_msg_record_route(m, 1), "<sip:127.0.0.71;lr>");
	assert_string_equal(sip_msg_contact_uri(m), "sip:alice@127.0.0.61:5060;transport=tcp");
	assert_string_equal(sip_msg_content_type(m), "multipart/mixed;boundary=XX");
	assert_true(sip_msg_content_type_is(m, "multipart/mixed"));
	assert_false(sip_msg_content_type_is(m, "multipart/mixe"));
	/* the multipart body is ours, byte for byte (osip would re-encode it) */
	sip_msg_body(m, &body, &blen);
	assert_int_equal(blen, 19);
	assert_memory_equal(body, "--XX\r\nhello\r\n--XX--", 19);
	assert_string_equal(sip_msg_header(m, "Content-Length", 0), "19");
	assert_false(sip_msg_is_local(m));
	sip_msg_free(m);
}

static void test_hvalue_helpers(void **state)
{
	(void)state;
	char out[32];
	assert_int_equal(sip_hvalue_token(" active ;expires=60", out, sizeof out), 6);
	assert_string_equal(out, "active");
	assert_int_equal(
	    sip_hvalue_param("active;expires=60;reason=\"x y\"", "expires", out, sizeof out), 2);
	assert_string_equal(out, "60");
	assert_int_equal(
	    sip_hvalue_param("terminated; Reason = \"x y\"", "reason", out, sizeof out), 3);
	assert_string_equal(out, "x y");
	assert_int_equal(sip_hvalue_param("a;lr;x=1", "lr", out, sizeof out), 0);
	assert_int_equal(sip_hvalue_param("a;x=1", "y", out, sizeof out), PE_NOTFOUND);
	assert_int_equal(sip_hvalue_token("  ", out, sizeof out), PE_NOTFOUND);
}

static void test_datagram_body_rules(void **state)
{
	(void)state;
	struct sip_msg *m = NULL;
	const uint8_t *b;
	size_t n;
	const char *base = "MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
			   "From: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\n"
			   "CSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\n";
	char buf[1024];

	/* longer datagram than Content-Length: cut */
	snprintf(buf, sizeof buf, "%sContent-Length: 3\r\n\r\nabcdef", base);
	assert_int_equal(sip_msg_parse(buf, strlen(buf), &m), 0);
	sip_msg_body(m, &b, &n);
	assert_int_equal(n, 3);
	assert_memory_equal(b, "abc", 3);
	sip_msg_free(m);
	/* shorter: rejected */
	snprintf(buf, sizeof buf, "%sContent-Length: 30\r\n\r\nabcdef", base);
	assert_int_equal(sip_msg_parse(buf, strlen(buf), &m), PE_PROTO);
	assert_null(m);
	/* no Content-Length on a datagram: the rest */
	snprintf(buf, sizeof buf, "%s\r\nabcdef", base);
	assert_int_equal(sip_msg_parse(buf, strlen(buf), &m), 0);
	sip_msg_body(m, &b, &n);
	assert_int_equal(n, 6);
	sip_msg_free(m);
	/* conflicting Content-Length values */
	snprintf(buf, sizeof buf, "%sContent-Length: 3\r\nl: 4\r\n\r\nabcdef", base);
	assert_int_equal(sip_msg_parse(buf, strlen(buf), &m), PE_PROTO);
	/* equal duplicates are tolerated */
	snprintf(buf, sizeof buf, "%sContent-Length: 3\r\nl: 3\r\n\r\nabcdef", base);
	assert_int_equal(sip_msg_parse(buf, strlen(buf), &m), 0);
	sip_msg_free(m);
	/* negative */
	snprintf(buf, sizeof buf, "%sContent-Length: -3\r\n\r\nabcdef", base);
	assert_int_equal(sip_msg_parse(buf, strlen(buf), &m), PE_PROTO);
	/* NUL byte in the header block */
	memcpy(buf, base, strlen(base) + 1);
	buf[30] = '\0';
	assert_int_equal(sip_msg_parse(buf, strlen(base) + 2, &m), PE_PROTO);
}

static void test_validate(void **state)
{
	(void)state;
	struct {
		const char *msg;
		const char *why; /* NULL = valid */
	} cases[] = {
	    {"OPTIONS sip:a@b SIP/2.0\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\n"
	     "CSeq: 1 OPTIONS\r\n\r\n",
	     "missing Via"},
	    {"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>\r\n"
	     "Call-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n",
	     "missing From"},
	    {"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>\r\n"
	     "Call-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n",
	     "missing To"},
	    {"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>\r\n"
	     "To: <sip:a@b>\r\nCSeq: 1 OPTIONS\r\n\r\n",
	     "missing Call-ID"},
	    {"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>\r\n"
	     "To: <sip:a@b>\r\nCall-ID: c\r\n\r\n",
	     "missing CSeq"},
	    {"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>\r\n"
	     "To: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 MESSAGE\r\n\r\n",
	     "CSeq method differs from request method"},
	    {"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:x@y>\r\n"
	     "To: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n",
	     "top Via has no branch"},
	    {"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>\r\n"
	     "To: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: lots\r\n\r\n",
	     "bad Max-Forwards"},
	    {"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>\r\n"
	     "To: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n",
	     NULL},
	    {"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>\r\n"
	     "To: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n",
	     NULL},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct sip_msg *m = parse(cases[i].msg);
		const char *why = NULL;
		int r = sip_msg_validate(m, &why);
		if (cases[i].why) {
			assert_int_equal(r, PE_PROTO);
			assert_string_equal(why, cases[i].why);
		} else {
			assert_int_equal(r, 0);
		}
		sip_msg_free(m);
	}
}

static void test_unparseable(void **state)
{
	(void)state;
	const char *bad[] = {
	    "",
	    "garbage\r\n\r\n",
	    "MESSAGE sip:a@b SIP/2.0\r\nVia: x",			  /* no empty line */
	    "SIP/2.0 99 Odd\r\nVia: SIP/2.0/UDP h\r\n\r\n",		  /* status out of range */
	    "MESSAGE sip:a@b SIP/2.0\r\n Via: x\r\n\r\n",		  /* continuation first */
	    "MESSAGE sip:a@b SIP/2.0\r\nVia\r\n\r\n",			  /* header without colon */
	    "MESSAGE sip:a@b SIP/2.0\r\nContent-Type: a\r\nc: b\r\n\r\n", /* two types */
	    /* bare LF / CR: osip would end the header block elsewhere than we do */
	    "PUBLISH sip:a@b SIP/2.0\r\nVia: x\n\nl: 5\r\n\r\nhello",
	    "PUBLISH sip:a@b SIP/2.0\rVia: x\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct sip_msg *m = (struct sip_msg *)1;
		assert_int_equal(sip_msg_parse(bad[i], strlen(bad[i]), &m), PE_PROTO);
		assert_null(m);
	}
}

static struct sip_msg *build_message(void)
{
	struct sip_msg *m = sip_msg_new_request("MESSAGE", "sip:bob@partner.test");
	assert_non_null(m);
	assert_int_equal(sip_msg_set_from(m, "sip:alice@corp.test", "ft"), 0);
	assert_int_equal(sip_msg_set_to(m, "\"Bob\" <sip:bob@partner.test>", NULL), 0);
	assert_int_equal(sip_msg_set_call_id(m, "cid-1@corp.test"), 0);
	assert_int_equal(sip_msg_set_cseq(m, 42, "MESSAGE"), 0);
	assert_int_equal(sip_msg_set_max_forwards(m, 70), 0);
	assert_int_equal(sip_msg_push_via(m, SIP_PROTO_TCP, "127.0.0.60:5060", "z9hG4bKpx1", true),
			 0);
	assert_int_equal(sip_msg_add_header(m, "Subject", "hi there"), 0);
	assert_int_equal(sip_msg_set_body(m, "text/plain;charset=UTF-8", "h\xc3\xa9llo", 6), 0);
	return m;
}

static void test_build_request_roundtrip(void **state)
{
	(void)state;
	struct sip_msg *m = build_message(), *p = NULL;
	struct buf b;
	const uint8_t *body;
	size_t blen;
	const char *why;

	assert_int_equal(sip_msg_add_header(m, "Content-Length", "5"), PE_INVAL);
	assert_int_equal(sip_msg_add_header(m, "X-Bad", "a\r\nInjected: 1"), PE_INVAL);
	assert_int_equal(sip_msg_add_header(m, "Bad Name", "v"), PE_INVAL);
	buf_init(&b, 1 << 16);
	assert_int_equal(sip_msg_serialise(m, &b), 0);
	/* the wire form ends with our Content-Type, Content-Length and the body */
	const char *tail = "Content-Type: text/plain;charset=UTF-8\r\nContent-Length: 6\r\n\r\n"
			   "h\xc3\xa9llo";
	assert_true(buf_len(&b) > strlen(tail));
	assert_memory_equal(buf_head(&b) + buf_len(&b) - strlen(tail), tail, strlen(tail));
	assert_memory_equal(buf_head(&b), "MESSAGE sip:bob@partner.test SIP/2.0\r\n", 38);

	assert_int_equal(sip_msg_parse(buf_head(&b), buf_len(&b), &p), 0);
	assert_int_equal(sip_msg_validate(p, &why), 0);
	assert_string_equal(sip_msg_method(p), "MESSAGE");
	assert_string_equal(sip_msg_from_tag(p), "ft");
	assert_string_equal(sip_msg_to_uri(p), "sip:bob@partner.test");
	assert_string_equal(sip_msg_call_id(p), "cid-1@corp.test");
	assert_int_equal(sip_msg_cseq(p, NULL), 42);
	assert_int_equal(sip_msg_max_forwards(p), 70);
	assert_string_equal(sip_msg_via_branch(p, 0), "z9hG4bKpx1");
	assert_string_equal(sip_msg_subject(p), "hi there");
	sip_msg_body(p, &body, &blen);
	assert_int_equal(blen, 6);
	assert_memory_equal(body, "h\xc3\xa9llo", 6);
	sip_msg_free(p);

	/* replacing the top Via and re-serialising (what failover does) */
	assert_int_equal(sip_msg_pop_via(m), 0);
	assert_int_equal(sip_msg_push_via(m, SIP_PROTO_UDP, "127.0.0.60:5060", "z9hG4bKpx2", false),
			 0);
	buf_consume(&b, buf_len(&b));
	assert_int_equal(sip_msg_serialise(m, &b), 0);
	assert_int_equal(sip_msg_parse(buf_head(&b), buf_len(&b), &p), 0);
	assert_int_equal(sip_msg_via_count(p), 1);
	assert_string_equal(sip_msg_via_branch(p, 0), "z9hG4bKpx2");
	sip_msg_free(p);

	/* a bounded output buffer is respected */
	struct buf small;
	buf_init(&small, 64);
	assert_int_equal(sip_msg_serialise(m, &small), PE_TOOBIG);
	buf_deinit(&small);
	buf_deinit(&b);
	sip_msg_free(m);
}

static void test_build_response(void **state)
{
	(void)state;
	struct sip_msg *req = parse(REQ), *resp, *p = NULL;
	struct buf b;
	const char *cm;

	assert_int_equal(sip_msg_via_set_received(req, "127.0.0.99", 40000), 0);
	resp = sip_msg_new_response(req, 200, NULL, "tt1");
	assert_non_null(resp);
	assert_int_equal(sip_msg_add_header(resp, "Expires", "600"), 0);
	buf_init(&b, 1 << 16);
	assert_int_equal(sip_msg_serialise(resp, &b), 0);
	assert_memory_equal(buf_head(&b), "SIP/2.0 200 OK\r\n", 16);
	assert_int_equal(sip_msg_parse(buf_head(&b), buf_len(&b), &p), 0);
	assert_int_equal(sip_msg_status(p), 200);
	assert_string_equal(sip_msg_reason(p), "OK");
	assert_int_equal(sip_msg_via_count(p), 2);
	assert_string_equal(sip_msg_via_branch(p, 0), "z9hG4bK-top");
	const char *rcv;
	int rport;
	assert_int_equal(sip_msg_via_top(p, NULL, NULL, NULL, &rcv, &rport), 0);
	assert_string_equal(rcv, "127.0.0.99");
	assert_int_equal(rport, 40000);
	assert_string_equal(sip_msg_to_tag(p), "tt1");
	assert_string_equal(sip_msg_from_tag(p), "ftag1");
	assert_string_equal(sip_msg_call_id(p), "abc123@corp.test");
	assert_int_equal(sip_msg_cseq(p, &cm), 7);
	assert_string_equal(cm, "SUBSCRIBE");
	/* 2xx to SUBSCRIBE copies Record-Route (RFC 3261 §12.1.1) */
	assert_int_equal(sip_msg_record_route_count(p), 2);
	assert_int_equal(sip_msg_expires(p), 600);
	sip_msg_free(p);
	sip_msg_free(resp);

	/* an error response keeps an existing To tag and copies no Record-Route */
	resp = sip_msg_new_response(req, 489, NULL, NULL);
	assert_non_null(resp);
	assert_int_equal(sip_msg_set_to_tag(resp, "x"), 0);
	assert_int_equal(sip_msg_set_to_tag(resp, "y"), 0);
	assert_string_equal(sip_msg_to_tag(resp), "y");
	assert_int_equal(sip_msg_record_route_count(resp), 0);
	assert_string_equal(sip_msg_reason(resp), "Bad Event");
	sip_msg_free(resp);
	buf_deinit(&b);
	sip_msg_free(req);

	/* responses to requests missing headers (for 400s) still build */
	req = parse("OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n");
	resp = sip_msg_new_response(req, 400, "Missing From", "t");
	assert_non_null(resp);
	buf_init(&b, 4096);
	assert_int_equal(sip_msg_serialise(resp, &b), 0);
	assert_int_equal(sip_msg_parse(buf_head(&b), buf_len(&b), &p), 0);
	assert_int_equal(sip_msg_status(p), 400);
	assert_string_equal(sip_msg_reason(p), "Missing From");
	sip_msg_free(p);
	sip_msg_free(resp);
	sip_msg_free(req);
	buf_deinit(&b);

	resp = sip_msg_new_bare_response(400, NULL);
	buf_init(&b, 4096);
	assert_int_equal(sip_msg_serialise(resp, &b), 0);
	assert_int_equal(buf_len(&b),
			 strlen("SIP/2.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n"));
	assert_memory_equal(buf_head(&b), "SIP/2.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
			    buf_len(&b));
	sip_msg_free(resp);
	buf_deinit(&b);
}

static void test_builder_rejects(void **state)
{
	(void)state;
	assert_null(sip_msg_new_request("MES SAGE", "sip:a@b"));
	assert_null(sip_msg_new_request("MESSAGE", "not a uri"));
	struct sip_msg *m = sip_msg_new_request("MESSAGE", "sip:a@b");
	assert_int_equal(sip_msg_set_from(m, "<sip:a@b", NULL), PE_INVAL);
	assert_int_equal(sip_msg_set_call_id(m, ""), PE_INVAL);
	assert_int_equal(sip_msg_set_max_forwards(m, 256), PE_INVAL);
	assert_int_equal(sip_msg_set_body(m, NULL, "x", 1), PE_INVAL);
	assert_int_equal(sip_msg_set_body(m, "text/plain\r\nX: y", "x", 1), PE_INVAL);
	sip_msg_free(m);
}

static void test_random_token(void **state)
{
	(void)state;
	char a[17], b[17];
	sip_random_token(a, sizeof a);
	sip_random_token(b, sizeof b);
	assert_int_equal(strlen(a), 16);
	assert_string_not_equal(a, b);
	for (int i = 0; i < 16; i++)
		assert_non_null(strchr("0123456789abcdefghijklmnopqrstuvwxyz", a[i]));
}

/* Received responses are matched without osip; osip runs only when asked for more. */
static void test_lazy_response(void **state)
{
	(void)state;
	const char *txt = "SIP/2.0 503 Service Unavailable\r\n"
			  "v: SIP/2.0/TCP 127.0.0.60:5060;branch=z9hG4bK-pl.ab ;rport=1, "
			  "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKsecond\r\n"
			  "f: <sip:a@corp.test>;tag=f1\r\nt: <sip:b@partner.test>;tag=t1\r\n"
			  "i: cid-9\r\nCSeq:   42   MESSAGE  \r\nRetry-After: 30\r\n"
			  "Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi";
	struct sip_msg *m = parse(txt);
	const char *cm, *why;
	const uint8_t *b;
	size_t n;
	assert_false(sip_msg_is_request(m));
	assert_null(sip_msg_method(m));
	assert_int_equal(sip_msg_status(m), 503);
	assert_string_equal(sip_msg_reason(m), "Service Unavailable");
	assert_string_equal(sip_msg_via_branch(m, 0), "z9hG4bK-pl.ab");
	assert_int_equal(sip_msg_cseq(m, &cm), 42);
	assert_string_equal(cm, "MESSAGE");
	assert_int_equal(sip_msg_validate(m, &why), 0);
	sip_msg_body(m, &b, &n);
	assert_int_equal(n, 2);
	assert_string_equal(sip_msg_content_type(m), "text/plain");
	/* and the rest through osip, on demand */
	assert_string_equal(sip_msg_to_tag(m), "t1");
	assert_int_equal(sip_msg_retry_after(m), 30);
	assert_string_equal(sip_msg_via_branch(m, 1), "z9hG4bKsecond");
	assert_int_equal(sip_msg_cseq(m, &cm), 42);
	assert_int_equal(sip_msg_status(m), 503);
	sip_msg_free(m);

	/* what matching needs is checked without osip */
	struct {
		const char *txt, *why;
	} bad[] = {
	    {"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@b>\r\nTo: <sip:c@d>\r\n"
	     "Call-ID: x\r\nCSeq: 1 MESSAGE\r\n\r\n",
	     "missing Via branch"},
	    {"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:c@d>\r\n"
	     "Call-ID: x\r\nCSeq: 1 MESSAGE\r\n\r\n",
	     "missing From"},
	    {"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>\r\n"
	     "To: <sip:c@d>\r\nCall-ID: x\r\nCSeq: one MESSAGE\r\n\r\n",
	     "missing CSeq"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		m = parse(bad[i].txt);
		assert_int_equal(sip_msg_validate(m, &why), PE_PROTO);
		assert_string_equal(why, bad[i].why);
		sip_msg_free(m);
	}
	/* a start line we cannot read is refused at once */
	struct sip_msg *x = NULL;
	const char *odd = "SIP/2.0 2000 OK\r\nVia: x\r\n\r\n";
	assert_int_equal(sip_msg_parse(odd, strlen(odd), &x), PE_PROTO);
	/* one osip refuses later: accessors give nothing rather than crash */
	m = parse("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <<<\r\n"
		  "To: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 MESSAGE\r\n\r\n");
	assert_int_equal(sip_msg_status(m), 200);
	assert_null(sip_msg_from_uri(m));
	assert_null(sip_msg_to_tag(m));
	assert_int_equal(sip_msg_via_count(m), 0);
	struct sip_msg *r = sip_msg_new_response(m, 400, NULL, NULL); /* copies nothing */
	assert_non_null(r);
	sip_msg_free(r);
	sip_msg_free(m);
}

/* Header text checks skip eight ordinary bytes at a time: a forbidden byte (a control
 * character, DEL, a bare CR or LF) is refused at every offset, and allowed ones (tab,
 * bytes above 0x7f) are not. */
static void test_head_bytes_every_offset(void **state)
{
	(void)state;
	static const char base[] = "OPTIONS sip:a@b SIP/2.0\r\n"
				   "Via: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKx\r\n"
				   "From: <sip:a@b>;tag=1\r\n"
				   "To: <sip:a@b>\r\n"
				   "Call-ID: abcdefghijklmnop\r\n"
				   "CSeq: 1 OPTIONS\r\n"
				   "X-Pad: abcdefghijklmnopqrstuvwxyz0123456789\r\n\r\n";
	const size_t n = sizeof base - 1;
	struct sip_msg *m = NULL;
	char buf[sizeof base];
	assert_int_equal(sip_msg_parse(base, n, &m), 0);
	sip_msg_free(m);
	/* offsets inside header values (after "X-Pad: "): replace one byte */
	const char *pad = strstr(base, "X-Pad: ") + 7;
	size_t first = (size_t)(pad - base), last = first + 36;
	static const unsigned char bad[] = {0x00, 0x01, 0x08, 0x0b, 0x1f, 0x7f, '\r', '\n'};
	static const unsigned char good[] = {'\t', 0x80, 0xc3, 0xff, ' ', '~'};
	for (size_t off = first; off < last; off++) {
		for (size_t k = 0; k < sizeof bad; k++) {
			memcpy(buf, base, n);
			buf[off] = (char)bad[k];
			m = NULL;
			assert_int_equal(sip_msg_parse(buf, n, &m), PE_PROTO);
			assert_null(m);
		}
		for (size_t k = 0; k < sizeof good; k++) {
			memcpy(buf, base, n);
			buf[off] = (char)good[k];
			m = NULL;
			assert_int_equal(sip_msg_parse(buf, n, &m), 0);
			sip_msg_free(m);
		}
	}
	/* a bare CR or LF anywhere in the start line and the other headers too */
	for (size_t off = 1; off < first; off++) {
		if (base[off] == '\r' || base[off] == '\n')
			continue;
		memcpy(buf, base, n);
		buf[off] = '\n';
		m = NULL;
		assert_int_equal(sip_msg_parse(buf, n, &m), PE_PROTO);
		memcpy(buf, base, n);
		buf[off] = 0x7f;
		assert_int_equal(sip_msg_parse(buf, n, &m), PE_PROTO);
	}
}

/* sip_msg_parse_framed: the same message as sip_msg_parse; a wrong header length is
 * searched for instead. */
static void test_parse_framed(void **state)
{
	(void)state;
	static const char msg[] = "MESSAGE sip:a@b SIP/2.0\r\n"
				  "Via: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKx\r\n"
				  "From: <sip:a@b>;tag=1\r\n"
				  "To: <sip:a@b>\r\n"
				  "Call-ID: c1\r\n"
				  "CSeq: 1 MESSAGE\r\n"
				  "Content-Type: text/plain\r\n"
				  "Content-Length: 9\r\n\r\n"
				  "\r\n\r\nhello";
	const size_t n = sizeof msg - 1;
	const size_t hlen = (size_t)(strstr(msg, "\r\n\r\n") - msg) + 4;
	struct sip_msg *m = NULL;
	const uint8_t *b;
	size_t bl;
	const size_t hls[] = {hlen, 0, 3, n + 1, hlen - 1, hlen + 1};
	for (size_t i = 0; i < sizeof hls / sizeof hls[0]; i++) {
		assert_int_equal(sip_msg_parse_framed(msg, hls[i], n, &m), 0);
		sip_msg_body(m, &b, &bl);
		assert_int_equal(bl, 9);
		assert_memory_equal(b, "\r\n\r\nhello", 9);
		assert_string_equal(sip_msg_call_id(m), "c1");
		sip_msg_free(m);
	}
	assert_int_equal(sip_msg_parse_framed(msg, hlen, hlen + 3, &m), PE_PROTO);
	assert_null(m);
}

/* sip_msg_contact_text: the one Contact header's text as received, or why not. */
static void test_contact_text(void **state)
{
	(void)state;
	static const char one[] = "NOTIFY sip:a@b SIP/2.0\r\n"
				  "Via: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKx\r\n"
				  "From: <sip:a@b>;tag=1\r\n"
				  "To: <sip:a@b>;tag=2\r\n"
				  "Call-ID: c1\r\n"
				  "CSeq: 1 NOTIFY\r\n"
				  "cOnTaCt : <sip:x@127.0.0.9:5070;transport=tcp>\r\n"
				  "Event: presence\r\n\r\n";
	struct sip_msg *m = NULL;
	const char *t;
	size_t tl;
	char txt[1024];

	assert_int_equal(sip_msg_parse(one, sizeof one - 1, &m), 0);
	assert_int_equal(sip_msg_contact_text(m, &t, &tl), 0);
	assert_int_equal(tl, strlen(" <sip:x@127.0.0.9:5070;transport=tcp>\r\n"));
	assert_memory_equal(t, " <sip:x@127.0.0.9:5070;transport=tcp>\r\n", tl);
	assert_string_equal(sip_msg_contact_uri(m), "sip:x@127.0.0.9:5070;transport=tcp");
	/* a builder that may change the headers makes the text unusable */
	assert_int_equal(sip_msg_set_contact(m, "<sip:y@127.0.0.9>"), 0);
	assert_int_equal(sip_msg_contact_text(m, &t, &tl), PE_STATE);
	sip_msg_free(m);

	/* the compact form, white space kept as received */
	snprintf(txt, sizeof txt, "%s", one);
	char *c = strstr(txt, "cOnTaCt :");
	memcpy(c, "m:       ", 9);
	assert_int_equal(sip_msg_parse(txt, strlen(txt), &m), 0);
	assert_int_equal(sip_msg_contact_text(m, &t, &tl), 0);
	assert_int_equal(tl, strlen("        <sip:x@127.0.0.9:5070;transport=tcp>\r\n"));
	assert_memory_equal(t, "        <sip:x@127.0.0.9:5070;transport=tcp>\r\n", tl);
	sip_msg_free(m);

	/* two Contact headers: no single text */
	static const char two[] = "NOTIFY sip:a@b SIP/2.0\r\n"
				  "Via: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKx\r\n"
				  "From: <sip:a@b>;tag=1\r\n"
				  "To: <sip:a@b>;tag=2\r\n"
				  "Call-ID: c1\r\n"
				  "CSeq: 1 NOTIFY\r\n"
				  "Contact: <sip:x@127.0.0.9>\r\n"
				  "m: <sip:z@c.d>\r\n\r\n";
	assert_int_equal(sip_msg_parse(two, sizeof two - 1, &m), 0);
	assert_int_equal(sip_msg_contact_text(m, &t, &tl), PE_STATE);
	sip_msg_free(m);

	/* none */
	snprintf(txt, sizeof txt, "%s", one);
	c = strstr(txt, "cOnTaCt");
	memmove(c, strstr(c, "\r\n") + 2, strlen(strstr(c, "\r\n") + 2) + 1);
	assert_int_equal(sip_msg_parse(txt, strlen(txt), &m), 0);
	assert_int_equal(sip_msg_contact_text(m, &t, &tl), PE_NOTFOUND);
	assert_null(sip_msg_contact_uri(m));
	sip_msg_free(m);

	/* a response (parsed lazily) or a built request has no such text */
	static const char resp[] = "SIP/2.0 200 OK\r\n"
				   "Via: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKx\r\n"
				   "From: <sip:a@b>;tag=1\r\n"
				   "To: <sip:a@b>;tag=2\r\n"
				   "Call-ID: c1\r\n"
				   "CSeq: 1 NOTIFY\r\n"
				   "Contact: <sip:x@127.0.0.9>\r\n\r\n";
	assert_int_equal(sip_msg_parse(resp, sizeof resp - 1, &m), 0);
	assert_int_equal(sip_msg_contact_text(m, &t, &tl), PE_STATE);
	sip_msg_free(m);
	m = sip_msg_new_request("NOTIFY", "sip:a@b");
	assert_non_null(m);
	assert_int_equal(sip_msg_contact_text(m, &t, &tl), PE_STATE);
	sip_msg_free(m);
}

/* Tags and the top branch are looked up once for a received request; a builder that
 * changes them is seen at once, and received/rport leave the branch alone. */
static void test_seen_fields_follow_builders(void **state)
{
	(void)state;
	static const char req[] = "NOTIFY sip:a@b SIP/2.0\r\n"
				  "Via: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKtop;rport\r\n"
				  "Via: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKsecond\r\n"
				  "From: <sip:a@b>;tag=ft\r\n"
				  "To: <sip:c@d>;tag=tt\r\n"
				  "Call-ID: c1\r\n"
				  "CSeq: 1 NOTIFY\r\n\r\n";
	struct sip_msg *m = NULL;
	assert_int_equal(sip_msg_parse(req, sizeof req - 1, &m), 0);
	for (int i = 0; i < 2; i++) {
		assert_string_equal(sip_msg_from_tag(m), "ft");
		assert_string_equal(sip_msg_to_tag(m), "tt");
		assert_string_equal(sip_msg_via_branch(m, 0), "z9hG4bKtop");
		assert_string_equal(sip_msg_via_branch(m, 1), "z9hG4bKsecond");
	}
	assert_int_equal(sip_msg_via_set_received(m, "192.0.2.1", 40000), 0);
	assert_string_equal(sip_msg_via_branch(m, 0), "z9hG4bKtop");
	assert_int_equal(sip_msg_via_set_received(m, "192.0.2.2", 40001), 0);
	assert_string_equal(sip_msg_via_branch(m, 0), "z9hG4bKtop");
	assert_string_equal(sip_msg_to_tag(m), "tt");
	assert_int_equal(sip_msg_set_to_tag(m, "new"), 0);
	assert_string_equal(sip_msg_to_tag(m), "new");
	assert_int_equal(sip_msg_set_from(m, "sip:x@y", "f2"), 0);
	assert_string_equal(sip_msg_from_tag(m), "f2");
	assert_int_equal(sip_msg_pop_via(m), 0);
	assert_string_equal(sip_msg_via_branch(m, 0), "z9hG4bKsecond");
	sip_msg_free(m);

	/* no tags at all: NULL, also the second time */
	static const char notag[] = "OPTIONS sip:a@b SIP/2.0\r\n"
				    "Via: SIP/2.0/UDP 10.0.0.1:5070\r\n"
				    "From: <sip:a@b>\r\n"
				    "To: <sip:c@d>\r\n"
				    "Call-ID: c1\r\n"
				    "CSeq: 1 OPTIONS\r\n\r\n";
	assert_int_equal(sip_msg_parse(notag, sizeof notag - 1, &m), 0);
	for (int i = 0; i < 2; i++) {
		assert_null(sip_msg_from_tag(m));
		assert_null(sip_msg_to_tag(m));
		assert_null(sip_msg_via_branch(m, 0));
	}
	assert_int_equal(sip_msg_set_to_tag(m, "t9"), 0);
	assert_string_equal(sip_msg_to_tag(m), "t9");
	assert_int_equal(sip_msg_push_via(m, SIP_PROTO_UDP, "127.0.0.1:5060", "z9hG4bKp", false),
			 0);
	assert_string_equal(sip_msg_via_branch(m, 0), "z9hG4bKp");
	sip_msg_free(m);
}

static void test_uri(void **state)
{
	(void)state;
	struct sip_uri u;
	struct sip_view v;
	char tmp[64];
	const char *s = "sips:f%C3%BC:pw@[2001:db8::1]:5061;transport=tls;lr?subject=x";
	assert_int_equal(sip_uri_parse(s, strlen(s), &u), 0);
	assert_true(u.sip && u.sips && u.ipv6);
	assert_string_equal(sip_view_cpy(tmp, sizeof tmp, u.user), "f%C3%BC");
	assert_string_equal(sip_view_cpy(tmp, sizeof tmp, u.host), "2001:db8::1");
	assert_int_equal(u.port, 5061);
	assert_true(sip_uri_param(&u, "TRANSPORT", &v));
	assert_true(sip_view_eq(v, "tls"));
	assert_true(sip_uri_param(&u, "lr", &v));
	assert_int_equal(v.n, 0);
	assert_false(sip_uri_param(&u, "maddr", &v));
	assert_string_equal(sip_view_cpy(tmp, sizeof tmp, u.headers), "subject=x");

	s = "<sip:corp.test>";
	assert_int_equal(sip_uri_parse(s, strlen(s), &u), 0);
	assert_true(u.sip && !u.sips);
	assert_int_equal(u.user.n, 0);
	assert_string_equal(sip_view_cpy(tmp, sizeof tmp, u.host), "corp.test");
	assert_int_equal(u.port, 0);

	s = "tel:+1-555";
	assert_int_equal(sip_uri_parse(s, strlen(s), &u), 0);
	assert_false(u.sip);
	assert_string_equal(sip_view_cpy(tmp, sizeof tmp, u.opaque), "+1-555");

	const char *bad[] = {"sip:",	 "sip:@h",   "sip:a@",	   "sip:h:0",	"sip:h:70000",
			     "sip:h:5x", "sip:[::1", "sip:a b@h",  ":x",	"sip:[]",
			     "1sip:h",	 "sip:h:",   "sip:[::1]x", "sip:h\x01x"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(sip_uri_parse(bad[i], strlen(bad[i]), &u), PE_PROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_accessors),
	    cmocka_unit_test(test_hvalue_helpers),
	    cmocka_unit_test(test_datagram_body_rules),
	    cmocka_unit_test(test_validate),
	    cmocka_unit_test(test_unparseable),
	    cmocka_unit_test(test_build_request_roundtrip),
	    cmocka_unit_test(test_build_response),
	    cmocka_unit_test(test_builder_rejects),
	    cmocka_unit_test(test_random_token),
	    cmocka_unit_test(test_uri),
	    cmocka_unit_test(test_lazy_response),
	    cmocka_unit_test(test_head_bytes_every_offset),
	    cmocka_unit_test(test_parse_framed),
	    cmocka_unit_test(test_contact_text),
	    cmocka_unit_test(test_seen_fields_follow_builders),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
