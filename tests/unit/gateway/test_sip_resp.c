/* Responses built from the request's header text (sip_msg_response_wire and the lazy
 * sip_msg_new_response) against the osip-built ones, for a table of requests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "buf.h"
#include "err.h"
#include "sip_msg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rcase {
	const char *name;
	const char *req;
	int status;
	const char *reason; /* NULL = standard phrase */
	const char *to_tag; /* passed to the builder */
	const char *rcv_ip; /* sip_msg_via_set_received, NULL = not called */
	int rcv_port;
	const char *want_tag; /* To tag the response must carry, NULL = none */
	int want_vias, want_rr;
};

#define BODY "<presence/>"

static const struct rcase cases[] = {
    {"notify in dialog, like the bench",
     "NOTIFY sip:parley@127.0.0.72:5060;transport=tcp SIP/2.0\r\n"
     "Via: SIP/2.0/TCP 127.0.0.73:40000;branch=z9hG4bKn7x3\r\n"
     "Max-Forwards: 70\r\n"
     "From: <sip:bob7@corp.test>;tag=p7\r\n"
     "To: <sip:u7@partner.test>;tag=gwtag\r\n"
     "Call-ID: cid-7@127.0.0.72\r\n"
     "CSeq: 3 NOTIFY\r\n"
     "Contact: <sip:bob7@127.0.0.73:40000;transport=tcp>\r\n"
     "Event: presence\r\n"
     "Subscription-State: active;expires=3600\r\n"
     "Content-Type: application/pidf+xml\r\n"
     "Content-Length: 11\r\n\r\n" BODY,
     200, "OK", "localtag", NULL, 0, "gwtag", 1, 0},
    {"several Vias (compact, comma list), Record-Route, To without tag",
     "SUBSCRIBE sip:bob@partner.test SIP/2.0\r\n"
     "Via: SIP/2.0/TCP 127.0.0.61:5060;branch=z9hG4bK-top;rport\r\n"
     "v: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK-2, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK-3\r\n"
     "Record-Route: <sip:127.0.0.70;lr>\r\n"
     "f: \"Alice A\" <sip:alice@corp.test>;tag=ftag1\r\n"
     "Record-Route: <sip:127.0.0.71;lr>, <sip:127.0.0.72;lr>\r\n"
     "t: <sip:bob@partner.test>\r\n"
     "i: abc123@corp.test\r\n"
     "CSeq: 7 SUBSCRIBE\r\n"
     "Contact: <sip:alice@127.0.0.61:5060;transport=tcp>\r\n"
     "o: presence\r\n"
     "l: 0\r\n\r\n",
     200, NULL, "t1", "127.0.0.99", 40000, "t1", 3, 3},
    {"error to a dialog-forming request: no Record-Route",
     "SUBSCRIBE sip:bob@partner.test SIP/2.0\r\n"
     "Via: SIP/2.0/UDP 127.0.0.61;branch=z9hG4bK-e\r\n"
     "Record-Route: <sip:127.0.0.70;lr>\r\n"
     "From: <sip:alice@corp.test>;tag=f\r\n"
     "To: <sip:bob@partner.test>\r\n"
     "Call-ID: e@x\r\n"
     "CSeq: 1 SUBSCRIBE\r\n\r\n",
     489, NULL, "t2", NULL, 0, "t2", 1, 0},
    {"MESSAGE 200: not dialog-forming, Record-Route not copied",
     "MESSAGE sip:bob@partner.test SIP/2.0\r\n"
     "Via: SIP/2.0/TLS 127.0.0.61:5061;branch=z9hG4bK-m\r\n"
     "Record-Route: <sip:127.0.0.70;lr>\r\n"
     "From: <sip:alice@corp.test>;tag=f\r\n"
     "To: <sip:bob@partner.test>\r\n"
     "Call-ID: m@x\r\n"
     "CSeq: 1 MESSAGE\r\n"
     "c: text/plain\r\n"
     "l: 2\r\n\r\nhi",
     200, NULL, "t3", NULL, 0, "t3", 1, 0},
    {"folded From, spaces in CSeq and Call-ID, lower-case names",
     "NOTIFY sip:gw@127.0.0.72 SIP/2.0\r\n"
     "via:   SIP/2.0/TCP 127.0.0.73:5060 ;branch=z9hG4bK-f  \r\n"
     "from: <sip:bob@corp.test>\r\n"
     "   ;tag=folded\r\n"
     "to:<sip:u@partner.test>;tag=tt\r\n"
     "call-id:    fold@x   \r\n"
     "cseq:  9   NOTIFY\r\n"
     "Contact: <sip:bob@127.0.0.73>\r\n"
     "Event: presence\r\n\r\n",
     200, NULL, "ignored", NULL, 0, "tt", 1, 0},
    {"addr-spec To without brackets gets the tag as a header parameter",
     "OPTIONS sip:gw@127.0.0.72 SIP/2.0\r\n"
     "Via: SIP/2.0/UDP 127.0.0.73:5060;branch=z9hG4bK-o\r\n"
     "From: sip:bob@corp.test;tag=ff\r\n"
     "To: sip:gw@127.0.0.72\r\n"
     "Call-ID: o@x\r\n"
     "CSeq: 1 OPTIONS\r\n\r\n",
     200, NULL, "t4", NULL, 0, "t4", 1, 0},
    {"quoted display name with ; and < in To",
     "OPTIONS sip:gw@127.0.0.72 SIP/2.0\r\n"
     "Via: SIP/2.0/UDP 127.0.0.73:5060;branch=z9hG4bK-q\r\n"
     "From: <sip:bob@corp.test>;tag=ff\r\n"
     "To: \"Gw; <not a uri>\" <sip:gw@127.0.0.72>\r\n"
     "Call-ID: q@x\r\n"
     "CSeq: 1 OPTIONS\r\n\r\n",
     404, "Nobody Here", "t5", NULL, 0, "t5", 1, 0},
    {"received already present and rport with a value are replaced",
     "OPTIONS sip:gw@127.0.0.72 SIP/2.0\r\n"
     "Via: SIP/2.0/UDP 192.0.2.1:5060;received=198.51.100.1;branch=z9hG4bK-r;rport=1\r\n"
     "Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK-r2;rport\r\n"
     "From: <sip:bob@corp.test>;tag=ff\r\n"
     "To: <sip:gw@127.0.0.72>\r\n"
     "Call-ID: r@x\r\n"
     "CSeq: 1 OPTIONS\r\n\r\n",
     200, NULL, "t6", "127.0.0.5", 5099, "t6", 2, 0},
    {"IPv6 sent-by, received and rport added",
     "OPTIONS sip:gw@[::1] SIP/2.0\r\n"
     "Via: SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK-6;rport\r\n"
     "From: <sip:bob@corp.test>;tag=ff\r\n"
     "To: <sip:gw@[::1]>\r\n"
     "Call-ID: v6@x\r\n"
     "CSeq: 2 OPTIONS\r\n\r\n",
     200, NULL, "t7", "::1", 6000, "t7", 1, 0},
    {"quoted Via parameter holding ; , and rport=: the quoted span is skipped whole",
     "OPTIONS sip:gw@127.0.0.72 SIP/2.0\r\n"
     "Via: SIP/2.0/UDP 192.0.2.1:5060;x=\"a;rport=9, b\\\"c\";branch=z9hG4bK-qv;rport\r\n"
     "From: <sip:bob@corp.test>;tag=ff\r\n"
     "To: <sip:gw@127.0.0.72>\r\n"
     "Call-ID: qv@x\r\n"
     "CSeq: 1 OPTIONS\r\n\r\n",
     200, NULL, "t10", "127.0.0.5", 5099, "t10", 1, 0},
    {"more header lines than are recorded (15 Vias, 2 Record-Routes, From..CSeq): the text is "
     "walked",
     "SUBSCRIBE sip:bob@partner.test SIP/2.0\r\n"
     "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-many1\r\n"
     "Via: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK-many2\r\n"
     "Via: SIP/2.0/UDP 10.0.0.3;branch=z9hG4bK-many3\r\n"
     "Via: SIP/2.0/UDP 10.0.0.4;branch=z9hG4bK-many4\r\n"
     "Via: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bK-many5\r\n"
     "Via: SIP/2.0/UDP 10.0.0.6;branch=z9hG4bK-many6\r\n"
     "Via: SIP/2.0/UDP 10.0.0.7;branch=z9hG4bK-many7\r\n"
     "Via: SIP/2.0/UDP 10.0.0.8;branch=z9hG4bK-many8\r\n"
     "Via: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK-many9\r\n"
     "Via: SIP/2.0/UDP 10.0.0.10;branch=z9hG4bK-many10\r\n"
     "Via: SIP/2.0/UDP 10.0.0.11;branch=z9hG4bK-many11\r\n"
     "Via: SIP/2.0/UDP 10.0.0.12;branch=z9hG4bK-many12\r\n"
     "Via: SIP/2.0/UDP 10.0.0.13;branch=z9hG4bK-many13\r\n"
     "Via: SIP/2.0/UDP 10.0.0.14;branch=z9hG4bK-many14\r\n"
     "Via: SIP/2.0/UDP 10.0.0.15;branch=z9hG4bK-many15\r\n"
     "Record-Route: <sip:127.0.0.70;lr>\r\n"
     "From: <sip:alice@corp.test>;tag=fm\r\n"
     "To: <sip:bob@partner.test>\r\n"
     "Record-Route: <sip:127.0.0.71;lr>\r\n"
     "Call-ID: many@x\r\n"
     "CSeq: 1 SUBSCRIBE\r\n\r\n",
     200, NULL, "t11", "127.0.0.5", 5099, "t11", 15, 2},
    {"exactly as many lines as are recorded (12 Vias, From..CSeq)",
     "NOTIFY sip:bob@partner.test SIP/2.0\r\n"
     "v: SIP/2.0/TCP 10.0.1.1:5060;branch=z9hG4bK-ex1\r\n"
     "v: SIP/2.0/TCP 10.0.1.2:5060;branch=z9hG4bK-ex2\r\n"
     "v: SIP/2.0/TCP 10.0.1.3:5060;branch=z9hG4bK-ex3\r\n"
     "v: SIP/2.0/TCP 10.0.1.4:5060;branch=z9hG4bK-ex4\r\n"
     "v: SIP/2.0/TCP 10.0.1.5:5060;branch=z9hG4bK-ex5\r\n"
     "v: SIP/2.0/TCP 10.0.1.6:5060;branch=z9hG4bK-ex6\r\n"
     "v: SIP/2.0/TCP 10.0.1.7:5060;branch=z9hG4bK-ex7\r\n"
     "v: SIP/2.0/TCP 10.0.1.8:5060;branch=z9hG4bK-ex8\r\n"
     "v: SIP/2.0/TCP 10.0.1.9:5060;branch=z9hG4bK-ex9\r\n"
     "v: SIP/2.0/TCP 10.0.1.10:5060;branch=z9hG4bK-ex10\r\n"
     "v: SIP/2.0/TCP 10.0.1.11:5060;branch=z9hG4bK-ex11\r\n"
     "v: SIP/2.0/TCP 10.0.1.12:5060;branch=z9hG4bK-ex12\r\n"
     "f: <sip:alice@corp.test>;tag=fe\r\n"
     "t: <sip:bob@partner.test>;tag=te\r\n"
     "i: exact@x\r\n"
     "CSeq: 4 NOTIFY\r\n\r\n",
     200, NULL, "t12", NULL, 0, "te", 12, 0},
    {"100 Trying gets no tag",
     "OPTIONS sip:gw@127.0.0.72 SIP/2.0\r\n"
     "Via: SIP/2.0/UDP 127.0.0.73;branch=z9hG4bK-100\r\n"
     "From: <sip:bob@corp.test>;tag=ff\r\n"
     "To: <sip:gw@127.0.0.72>\r\n"
     "Call-ID: t@x\r\n"
     "CSeq: 1 OPTIONS\r\n\r\n",
     100, NULL, "t8", NULL, 0, NULL, 1, 0},
    {"missing From, To, Call-ID and CSeq (a 400 still builds)",
     "OPTIONS sip:a@b SIP/2.0\r\n"
     "Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n",
     400, "Bad Request (missing From)", "t9", NULL, 0, NULL, 1, 0},
};

static struct sip_msg *parse(const char *s, size_t n)
{
	struct sip_msg *m = NULL;
	assert_int_equal(sip_msg_parse(s, n, &m), 0);
	assert_non_null(m);
	return m;
}

static void same_str(const char *a, const char *b, const char *what, const char *name)
{
	if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0)) {
		print_error("%s: %s differs: \"%s\" vs \"%s\"\n", name, what, a ? a : "(null)",
			    b ? b : "(null)");
		fail();
	}
}

/* Parsed responses a (ours) and b (osip's) say the same. */
static void same_response(struct sip_msg *a, struct sip_msg *b, const struct rcase *c)
{
	const char *ma = NULL, *mb = NULL;
	assert_int_equal(sip_msg_status(a), sip_msg_status(b));
	same_str(sip_msg_reason(a), sip_msg_reason(b), "reason", c->name);
	assert_int_equal(sip_msg_via_count(a), sip_msg_via_count(b));
	assert_int_equal(sip_msg_via_count(a), c->want_vias);
	for (int i = 0; i < sip_msg_via_count(a); i++)
		same_str(sip_msg_header(a, "via", i), sip_msg_header(b, "via", i), "Via", c->name);
	assert_int_equal(sip_msg_record_route_count(a), sip_msg_record_route_count(b));
	assert_int_equal(sip_msg_record_route_count(a), c->want_rr);
	for (int i = 0; i < sip_msg_record_route_count(a); i++)
		same_str(sip_msg_record_route(a, i), sip_msg_record_route(b, i), "Record-Route",
			 c->name);
	same_str(sip_msg_header(a, "from", 0), sip_msg_header(b, "from", 0), "From", c->name);
	same_str(sip_msg_header(a, "to", 0), sip_msg_header(b, "to", 0), "To", c->name);
	same_str(sip_msg_to_tag(a), sip_msg_to_tag(b), "To tag", c->name);
	same_str(sip_msg_to_tag(a), c->want_tag, "wanted To tag", c->name);
	same_str(sip_msg_from_tag(a), sip_msg_from_tag(b), "From tag", c->name);
	same_str(sip_msg_call_id(a), sip_msg_call_id(b), "Call-ID", c->name);
	assert_int_equal(sip_msg_cseq(a, &ma), sip_msg_cseq(b, &mb));
	same_str(ma, mb, "CSeq method", c->name);
	/* nothing else is copied */
	assert_null(sip_msg_header(a, "contact", 0));
	assert_null(sip_msg_header(a, "max-forwards", 0));
	assert_null(sip_msg_event(a));
	const uint8_t *body;
	size_t blen;
	sip_msg_body(a, &body, &blen);
	assert_int_equal(blen, 0);
	if (c->rcv_ip) {
		const char *ra = NULL, *rb = NULL;
		int pa = -1, pb = -1;
		sip_msg_via_top(a, NULL, NULL, NULL, &ra, &pa);
		sip_msg_via_top(b, NULL, NULL, NULL, &rb, &pb);
		same_str(ra, rb, "received", c->name);
		assert_int_equal(pa, pb);
	}
}

static void test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct rcase *c = &cases[i];
		size_t n = strlen(c->req);
		struct sip_msg *fast = parse(c->req, n), *slow = parse(c->req, n);
		struct buf wire, lazyw, osipw;
		buf_init(&wire, 1 << 16);
		buf_init(&lazyw, 1 << 16);
		buf_init(&osipw, 1 << 16);
		if (c->rcv_ip) {
			assert_int_equal(sip_msg_via_set_received(fast, c->rcv_ip, c->rcv_port), 0);
			assert_int_equal(sip_msg_via_set_received(slow, c->rcv_ip, c->rcv_port), 0);
		}
		/* any builder call takes a request off the text path: this one changes nothing */
		assert_int_equal(sip_msg_remove_header(slow, "X-None"), 0);
		assert_int_equal(
		    sip_msg_response_wire(slow, c->status, c->reason, c->to_tag, &osipw), PE_STATE);

		assert_int_equal(
		    sip_msg_response_wire(fast, c->status, c->reason, c->to_tag, &wire), 0);
		struct sip_msg *lr = sip_msg_new_response(fast, c->status, c->reason, c->to_tag);
		assert_non_null(lr);
		assert_int_equal(sip_msg_status(lr), c->status);
		same_str(sip_msg_to_tag(lr), c->want_tag, "lazy To tag", c->name);
		assert_int_equal(sip_msg_serialise(lr, &lazyw), 0);
		struct sip_msg * or = sip_msg_new_response(slow, c->status, c->reason, c->to_tag);
		assert_non_null(or);
		assert_int_equal(sip_msg_serialise(or, &osipw), 0);

		/* the lazy message writes exactly the wire bytes */
		assert_int_equal(buf_len(&wire), buf_len(&lazyw));
		assert_memory_equal(buf_head(&wire), buf_head(&lazyw), buf_len(&wire));
		const char *w = (const char *)buf_head(&wire);
		size_t wl = buf_len(&wire);
		assert_true(wl > 21);
		assert_memory_equal(w + wl - 21, "Content-Length: 0\r\n\r\n", 21);

		struct sip_msg *pa = parse(w, wl);
		struct sip_msg *pb = parse((const char *)buf_head(&osipw), buf_len(&osipw));
		same_response(pa, pb, c);
		sip_msg_free(pa);
		sip_msg_free(pb);
		sip_msg_free(lr);
		sip_msg_free(or);
		sip_msg_free(fast);
		sip_msg_free(slow);
		buf_deinit(&wire);
		buf_deinit(&lazyw);
		buf_deinit(&osipw);
	}
}

/* Every prefix of the status line and headers that fits in less room fails cleanly. */
static void test_bounds(void **state)
{
	(void)state;
	const struct rcase *c = &cases[1];
	struct sip_msg *m = parse(c->req, strlen(c->req));
	struct buf full;
	buf_init(&full, 1 << 16);
	assert_int_equal(sip_msg_response_wire(m, 200, NULL, "t", &full), 0);
	for (size_t cap = 1; cap < buf_len(&full); cap += 7) {
		struct buf b;
		buf_init(&b, cap);
		int r = sip_msg_response_wire(m, 200, NULL, "t", &b);
		assert_true(r == PE_TOOBIG);
		assert_int_equal(buf_len(&b), 0);
		buf_deinit(&b);
	}
	struct buf b;
	buf_init(&b, 1 << 16);
	assert_int_equal(sip_msg_response_wire(m, 99, NULL, "t", &b), PE_INVAL);
	assert_int_equal(sip_msg_response_wire(m, 700, NULL, "t", &b), PE_INVAL);
	assert_int_equal(buf_len(&b), 0);
	buf_deinit(&b);
	buf_deinit(&full);
	sip_msg_free(m);
}

/* A lazy response takes appended headers as text, and osip still reads it all. */
static void test_lazy_changes(void **state)
{
	(void)state;
	const struct rcase *c = &cases[1];
	struct sip_msg *req = parse(c->req, strlen(c->req)), *p;
	struct buf b;
	buf_init(&b, 1 << 16);

	struct sip_msg *r = sip_msg_new_response(req, 200, NULL, "tt");
	assert_int_equal(sip_msg_add_header(r, "Expires", "600"), 0);
	assert_int_equal(sip_msg_add_header(r, "Contact", "<sip:parley@127.0.0.72;transport=tcp>"),
			 0);
	assert_int_equal(sip_msg_add_header(r, "Contact", "<sip:broken"), PE_INVAL);
	assert_int_equal(sip_msg_add_header(r, "Content-Length", "5"), PE_INVAL);
	assert_int_equal(sip_msg_add_header(r, "Allow", "MESSAGE, NOTIFY"), 0); /* via osip */
	assert_int_equal(sip_msg_set_body(r, "text/plain", "hello", 5), 0);
	assert_int_equal(sip_msg_serialise(r, &b), 0);
	p = parse((const char *)buf_head(&b), buf_len(&b));
	assert_int_equal(sip_msg_expires(p), 600);
	assert_string_equal(sip_msg_contact_uri(p), "sip:parley@127.0.0.72;transport=tcp");
	assert_non_null(sip_msg_header(p, "allow", 0));
	assert_string_equal(sip_msg_to_tag(p), "tt");
	assert_int_equal(sip_msg_record_route_count(p), 3);
	assert_true(sip_msg_content_type_is(p, "text/plain"));
	const uint8_t *body;
	size_t blen;
	sip_msg_body(p, &body, &blen);
	assert_int_equal(blen, 5);
	assert_memory_equal(body, "hello", 5);
	sip_msg_free(p);
	/* reading through osip after the text changes */
	assert_int_equal(sip_msg_set_to_tag(r, "other"), 0);
	assert_string_equal(sip_msg_to_tag(r), "other");
	assert_int_equal(sip_msg_expires(r), 600);
	sip_msg_free(r);

	/* a request changed by a builder is answered through osip, with the change */
	assert_int_equal(
	    sip_msg_push_via(req, SIP_PROTO_UDP, "192.0.2.7:5060", "z9hG4bKnew", false), 0);
	buf_consume(&b, buf_len(&b));
	assert_int_equal(sip_msg_response_wire(req, 200, NULL, "tt", &b), PE_STATE);
	r = sip_msg_new_response(req, 200, NULL, "tt");
	assert_int_equal(sip_msg_via_count(r), 4);
	assert_string_equal(sip_msg_via_branch(r, 0), "z9hG4bKnew");
	sip_msg_free(r);

	/* a locally built request has no text */
	struct sip_msg *loc = sip_msg_new_request("OPTIONS", "sip:a@b");
	assert_int_equal(sip_msg_response_wire(loc, 200, NULL, NULL, &b), PE_STATE);
	sip_msg_free(loc);
	buf_deinit(&b);
	sip_msg_free(req);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_bounds),
	    cmocka_unit_test(test_lazy_changes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
