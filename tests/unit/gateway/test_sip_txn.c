/* sip_txn: client and server non-INVITE transactions on a real libuv loop with short
 * timers, a fake transport that records what was sent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "buf.h"
#include "err.h"
#include "log.h"
#include "sip_txn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define T1 20
#define T2 80
#define T4 100

struct sent {
	struct sip_hop hop;
	uint64_t at;
	struct sip_msg *m;
};

struct fix {
	uv_loop_t loop;
	struct sip_txn_layer *l;
	struct sent sent[256];
	int nsent;
	int send_result;
	uint64_t next_flow;
	/* client callbacks */
	int finals;
	int last_status;
	bool last_local;
	/* server side */
	int requests;
	struct sip_stxn *st;
	int auto_answer; /* 0 = keep the handle */
};

static int fake_send(void *arg, const struct sip_hop *hop, const uint8_t *p, size_t n,
		     uint64_t *flow)
{
	struct fix *f = arg;
	if (f->send_result)
		return f->send_result;
	assert_true(f->nsent < 256);
	struct sent *s = &f->sent[f->nsent++];
	s->hop = *hop;
	s->at = uv_now(&f->loop);
	assert_int_equal(sip_msg_parse(p, n, &s->m), 0);
	*flow = hop->proto == SIP_PROTO_UDP ? 0 : (hop->flow ? hop->flow : f->next_flow);
	return 0;
}

static void on_request(void *arg, struct sip_stxn *st, struct sip_msg *req)
{
	struct fix *f = arg;
	assert_ptr_equal(sip_stxn_request(st), req);
	f->requests++;
	f->st = st;
	if (f->auto_answer) {
		assert_int_equal(sip_stxn_reply(st, f->auto_answer, NULL), 0);
		f->st = NULL;
	}
}

static void on_final(void *arg, struct sip_msg *resp)
{
	struct fix *f = arg;
	f->finals++;
	f->last_status = sip_msg_status(resp);
	f->last_local = sip_msg_is_local(resp);
}

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof *f);
	struct sip_txn_cfg cfg = {.t1_ms = T1, .t2_ms = T2, .t4_ms = T4, .instance = "unit1"};
	struct sip_txn_io io = {.send = fake_send, .on_request = on_request};
	cfg.sent_by[SIP_PROTO_UDP] = "127.0.0.60:5060";
	cfg.sent_by[SIP_PROTO_TCP] = "127.0.0.60:5060";
	uv_loop_init(&f->loop);
	f->l = sip_txn_layer_new(&f->loop, &cfg, &io, f);
	assert_non_null(f->l);
	f->next_flow = 77;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;
	for (int i = 0; i < f->nsent; i++)
		sip_msg_free(f->sent[i].m);
	sip_txn_layer_free(f->l);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	free(f);
	return 0;
}

static struct sip_msg *make_request(const char *method)
{
	struct sip_msg *m = sip_msg_new_request(method, "sip:bob@corp.test");
	assert_non_null(m);
	assert_int_equal(sip_msg_set_from(m, "sip:alice@partner.test", "ftag"), 0);
	assert_int_equal(sip_msg_set_to(m, "sip:bob@corp.test", NULL), 0);
	assert_int_equal(sip_msg_set_call_id(m, "cid-1"), 0);
	assert_int_equal(sip_msg_set_cseq(m, 1, method), 0);
	return m;
}

static struct sip_hop hop(enum sip_proto p)
{
	struct sip_hop h;
	assert_int_equal(sip_hop_set(&h, p, "127.0.0.70", 5060), 0);
	return h;
}

static void on_tick(uv_timer_t *t)
{
	(void)t;
}

/* Runs the loop for ms milliseconds of loop time. */
static void run_for(struct fix *f, uint64_t ms)
{
	uv_timer_t t;
	uv_timer_init(&f->loop, &t);
	uv_timer_start(&t, on_tick, ms, 0);
	uint64_t end = uv_now(&f->loop) + ms;
	while (uv_now(&f->loop) < end)
		uv_run(&f->loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(&f->loop, UV_RUN_NOWAIT);
}

/* Feeds a response to recorded request i through the wire form. */
static void answer(struct fix *f, int i, int status, enum sip_proto proto)
{
	struct sip_msg *resp = sip_msg_new_response(f->sent[i].m, status, NULL, "tt");
	struct buf b;
	struct sip_msg *p;
	struct sip_hop src = hop(proto);
	buf_init(&b, 0);
	assert_int_equal(sip_msg_serialise(resp, &b), 0);
	assert_int_equal(sip_msg_parse(buf_head(&b), buf_len(&b), &p), 0);
	assert_int_equal(sip_txn_input(f->l, p, &src), 0);
	sip_msg_free(resp);
	buf_deinit(&b);
}

static void test_client_udp_timeout_and_backoff(void **state)
{
	struct fix *f = *state;
	struct sip_msg *req = make_request("MESSAGE");
	struct sip_hop h = hop(SIP_PROTO_UDP);
	assert_int_equal(sip_txn_request(f->l, req, &h, on_final, f, NULL), 0);
	assert_int_equal(f->nsent, 1);
	/* our Via with the magic cookie and the loop marker, Max-Forwards 70 */
	const char *br = sip_msg_via_branch(f->sent[0].m, 0);
	assert_non_null(br);
	assert_memory_equal(br, "z9hG4bK-plunit1.", 16);
	assert_true(sip_txn_is_own_branch(f->l, br));
	assert_int_equal(sip_msg_max_forwards(f->sent[0].m), 70);
	assert_non_null(sip_msg_header(f->sent[0].m, "via", 0));
	assert_non_null(strstr(sip_msg_header(f->sent[0].m, "via", 0), "rport"));
	run_for(f, 64 * T1 + 60);
	assert_int_equal(f->finals, 1);
	assert_int_equal(f->last_status, 408);
	assert_true(f->last_local);
	/* E: T1, 2T1, then T2 (= 4T1 here) until F at 64*T1: 1 + 2 + 15 sends, fewer if the
	 * loop runs late */
	assert_in_range(f->nsent, 12, 19);
	for (int i = 1; i < f->nsent; i++) {
		uint64_t gap = f->sent[i].at - f->sent[i - 1].at;
		uint64_t want = i == 1 ? T1 : i == 2 ? 2 * T1 : T2;
		assert_in_range(gap, want, want + 20);
		/* retransmissions are the same request, same branch */
		assert_string_equal(sip_msg_via_branch(f->sent[i].m, 0), br);
	}
	assert_int_equal(sip_txn_stats(f->l)->client_total, 0);
	assert_int_equal(sip_txn_stats(f->l)->client_active, 0);
	assert_int_equal(sip_txn_stats(f->l)->timeouts, 1);
	sip_msg_free(req);
}

static void test_client_udp_final_absorbs_and_k(void **state)
{
	struct fix *f = *state;
	struct sip_msg *req = make_request("MESSAGE");
	struct sip_hop h = hop(SIP_PROTO_UDP);
	assert_int_equal(sip_txn_request(f->l, req, &h, on_final, f, NULL), 0);
	answer(f, 0, 200, SIP_PROTO_UDP);
	assert_int_equal(f->finals, 1);
	assert_int_equal(f->last_status, 200);
	assert_false(f->last_local);
	sip_msg_free(req); /* allowed from the final callback on */
	/* the retransmitted final is absorbed; Timer K keeps the transaction for T4 */
	answer(f, 0, 200, SIP_PROTO_UDP);
	assert_int_equal(f->finals, 1);
	assert_int_equal(sip_txn_stats(f->l)->client_total, 1);
	run_for(f, T1 * 3);
	assert_int_equal(f->nsent, 1); /* no retransmission after the final */
	run_for(f, T4 + 10);
	assert_int_equal(sip_txn_stats(f->l)->client_total, 0);
}

static void test_client_udp_proceeding(void **state)
{
	struct fix *f = *state;
	struct sip_msg *req = make_request("SUBSCRIBE");
	struct sip_hop h = hop(SIP_PROTO_UDP);
	assert_int_equal(sip_txn_request(f->l, req, &h, on_final, f, NULL), 0);
	answer(f, 0, 100, SIP_PROTO_UDP);
	assert_int_equal(f->finals, 0);
	run_for(f, T1 + 2 + T2);
	/* after the provisional, E fires once at T1 then every T2 */
	assert_int_equal(f->nsent, 3);
	assert_in_range(f->sent[2].at - f->sent[1].at, T2, T2 + 20);
	answer(f, 0, 202, SIP_PROTO_UDP);
	assert_int_equal(f->finals, 1);
	assert_int_equal(f->last_status, 202);
	sip_msg_free(req);
}

static void test_client_tcp(void **state)
{
	struct fix *f = *state;
	struct sip_msg *req = make_request("MESSAGE");
	struct sip_hop h = hop(SIP_PROTO_TCP);
	assert_int_equal(sip_txn_request(f->l, req, &h, on_final, f, NULL), 0);
	/* no rport on streams */
	assert_null(strstr(sip_msg_header(f->sent[0].m, "via", 0), "rport"));
	answer(f, 0, 404, SIP_PROTO_TCP);
	assert_int_equal(f->finals, 1);
	assert_int_equal(f->last_status, 404);
	/* K is zero on reliable transports */
	assert_int_equal(sip_txn_stats(f->l)->client_total, 0);
	/* a second attempt replaces our own Via instead of stacking another */
	assert_int_equal(sip_txn_request(f->l, req, &h, on_final, f, NULL), 0);
	assert_int_equal(sip_msg_via_count(f->sent[1].m), 1);
	assert_string_not_equal(sip_msg_via_branch(f->sent[1].m, 0),
				sip_msg_via_branch(f->sent[0].m, 0));
	/* timeout without retransmissions */
	run_for(f, 64 * T1 + 30);
	assert_int_equal(f->nsent, 2);
	assert_int_equal(f->finals, 2);
	assert_int_equal(f->last_status, 408);
	sip_msg_free(req);
}

static void test_client_send_failure_is_async_503(void **state)
{
	struct fix *f = *state;
	struct sip_msg *req = make_request("MESSAGE");
	struct sip_hop h = hop(SIP_PROTO_TCP);
	f->send_result = UV_ECONNREFUSED;
	assert_int_equal(sip_txn_request(f->l, req, &h, on_final, f, NULL), 0);
	assert_int_equal(f->finals, 0); /* never from inside the call */
	run_for(f, 5);
	assert_int_equal(f->finals, 1);
	assert_int_equal(f->last_status, 503);
	assert_true(f->last_local);
	assert_int_equal(sip_txn_stats(f->l)->transport_errors, 1);
	sip_msg_free(req);
}

static void test_client_flow_failure(void **state)
{
	struct fix *f = *state;
	struct sip_msg *a = make_request("MESSAGE"), *b = make_request("MESSAGE");
	struct sip_hop h = hop(SIP_PROTO_TCP);
	assert_int_equal(sip_txn_request(f->l, a, &h, on_final, f, NULL), 0);
	f->next_flow = 78;
	assert_int_equal(sip_txn_request(f->l, b, &h, on_final, f, NULL), 0);
	sip_txn_flow_failed(f->l, 77);
	assert_int_equal(f->finals, 0);
	run_for(f, 5);
	assert_int_equal(f->finals, 1);
	assert_int_equal(f->last_status, 503);
	answer(f, 1, 200, SIP_PROTO_TCP);
	assert_int_equal(f->finals, 2);
	assert_int_equal(f->last_status, 200);
	sip_msg_free(a);
	sip_msg_free(b);
}

static void test_client_abandon_and_stray(void **state)
{
	struct fix *f = *state;
	struct sip_msg *req = make_request("MESSAGE");
	struct sip_hop h = hop(SIP_PROTO_UDP);
	struct sip_ctxn *t;
	assert_int_equal(sip_txn_request(f->l, req, &h, on_final, f, &t), 0);
	/* a response with another CSeq method does not match */
	struct sip_msg *resp = sip_msg_new_response(f->sent[0].m, 200, NULL, "x");
	assert_int_equal(sip_msg_set_cseq(resp, 1, "OPTIONS"), 0);
	struct buf bb;
	struct sip_msg *p;
	buf_init(&bb, 0);
	assert_int_equal(sip_msg_serialise(resp, &bb), 0);
	assert_int_equal(sip_msg_parse(buf_head(&bb), buf_len(&bb), &p), 0);
	assert_int_equal(sip_txn_input(f->l, p, &h), 0);
	assert_int_equal(f->finals, 0);
	assert_int_equal(sip_txn_stats(f->l)->stray_responses, 1);
	sip_msg_free(resp);
	buf_deinit(&bb);
	sip_ctxn_abandon(t);
	sip_msg_free(req); /* no longer borrowed */
	answer(f, 0, 200, SIP_PROTO_UDP);
	run_for(f, 64 * T1 + 20);
	assert_int_equal(f->finals, 0);
	assert_int_equal(f->nsent, 1);
	assert_int_equal(sip_txn_stats(f->l)->client_total, 0);
	/* refused requests */
	struct sip_msg *inv = make_request("INVITE");
	assert_int_equal(sip_txn_request(f->l, inv, &h, on_final, f, NULL), PE_INVAL);
	sip_msg_free(inv);
	struct sip_hop tls = hop(SIP_PROTO_TLS); /* no sent-by configured for TLS */
	req = make_request("MESSAGE");
	assert_int_equal(sip_txn_request(f->l, req, &tls, on_final, f, NULL), PE_INVAL);
	sip_msg_free(req);
}

/* The wire form of a request as a peer would send it. */
static struct sip_msg *peer_request(const char *method, const char *branch, const char *extra)
{
	char txt[2048];
	struct sip_msg *m;
	snprintf(txt, sizeof txt,
		 "%s sip:bob@corp.test SIP/2.0\r\n"
		 "Via: SIP/2.0/UDP 127.0.0.71:5070;branch=%s\r\n"
		 "From: <sip:alice@partner.test>;tag=pf\r\nTo: <sip:bob@corp.test>\r\n"
		 "Call-ID: pc-1\r\nCSeq: 3 %s\r\nMax-Forwards: 69\r\n%s\r\n",
		 method, branch, method, extra ? extra : "");
	assert_int_equal(sip_msg_parse(txt, strlen(txt), &m), 0);
	return m;
}

static void test_server_udp(void **state)
{
	struct fix *f = *state;
	struct sip_hop src = hop(SIP_PROTO_UDP);
	sip_hop_set_port(&src, 40000); /* source port differs from the Via port */
	assert_int_equal(sip_txn_input(f->l, peer_request("MESSAGE", "z9hG4bKa1", NULL), &src), 0);
	assert_int_equal(f->requests, 1);
	struct sip_stxn *st = f->st;
	assert_non_null(st);
	assert_int_equal(sip_hop_port(sip_stxn_source(st)), 40000);
	/* the received request carries received= only if the address differs */
	assert_null(sip_msg_header(sip_stxn_request(st), "x-none", 0));
	/* a retransmission before the answer is absorbed */
	assert_int_equal(sip_txn_input(f->l, peer_request("MESSAGE", "z9hG4bKa1", NULL), &src), 0);
	assert_int_equal(f->requests, 1);
	assert_int_equal(sip_txn_stats(f->l)->absorbed, 1);
	assert_int_equal(f->nsent, 0);
	/* a different branch is a new transaction */
	f->auto_answer = 486;
	assert_int_equal(sip_txn_input(f->l, peer_request("MESSAGE", "z9hG4bKa2", NULL), &src), 0);
	assert_int_equal(f->requests, 2);
	assert_int_equal(f->nsent, 1);
	assert_int_equal(sip_msg_status(f->sent[0].m), 486);
	f->auto_answer = 0;
	/* the TU answers the first; no rport: the response goes to the Via port */
	assert_int_equal(sip_stxn_reply(st, 200, NULL), 0);
	assert_int_equal(f->nsent, 2);
	struct sip_msg *r = f->sent[1].m;
	assert_int_equal(sip_msg_status(r), 200);
	assert_int_equal(sip_hop_port(&f->sent[1].hop), 5070);
	assert_non_null(sip_msg_to_tag(r));
	assert_string_equal(sip_msg_to_tag(r), sip_stxn_local_tag(st));
	assert_string_equal(sip_msg_via_branch(r, 0), "z9hG4bKa1");
	/* a retransmitted request gets the same response again, same tag */
	assert_int_equal(sip_txn_input(f->l, peer_request("MESSAGE", "z9hG4bKa1", NULL), &src), 0);
	assert_int_equal(f->requests, 2);
	assert_int_equal(f->nsent, 3);
	assert_string_equal(sip_msg_to_tag(f->sent[2].m), sip_msg_to_tag(r));
	assert_int_equal(sip_txn_stats(f->l)->resp_retransmits, 1);
	/* after Timer J the transaction is gone and the same branch is new again */
	assert_int_equal(sip_txn_stats(f->l)->server_total, 2);
	run_for(f, 64 * T1 + 20);
	assert_int_equal(sip_txn_stats(f->l)->server_total, 0);
	f->auto_answer = 200;
	assert_int_equal(sip_txn_input(f->l, peer_request("MESSAGE", "z9hG4bKa1", NULL), &src), 0);
	assert_int_equal(f->requests, 3);
}

static void test_server_rport_and_tcp(void **state)
{
	struct fix *f = *state;
	struct sip_hop src = hop(SIP_PROTO_UDP);
	sip_hop_set_port(&src, 40001);
	f->auto_answer = 200;
	struct sip_msg *m = peer_request("OPTIONS", "z9hG4bKr1", NULL);
	/* ask for rport */
	char txt[1024];
	snprintf(txt, sizeof txt,
		 "OPTIONS sip:bob@corp.test SIP/2.0\r\n"
		 "Via: SIP/2.0/UDP 10.9.9.9:5070;branch=z9hG4bKr2;rport\r\n"
		 "From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n");
	sip_msg_free(m);
	assert_int_equal(sip_msg_parse(txt, strlen(txt), &m), 0);
	assert_int_equal(sip_txn_input(f->l, m, &src), 0);
	assert_int_equal(f->nsent, 1);
	assert_int_equal(sip_hop_port(&f->sent[0].hop), 40001);
	const char *rcv;
	int rport;
	sip_msg_via_top(f->sent[0].m, NULL, NULL, NULL, &rcv, &rport);
	assert_string_equal(rcv, "127.0.0.70");
	assert_int_equal(rport, 40001);
	/* TCP: answered on the same flow, and Timer J is zero */
	struct sip_hop tsrc = hop(SIP_PROTO_TCP);
	tsrc.flow = 99;
	assert_int_equal(sip_txn_input(f->l, peer_request("MESSAGE", "z9hG4bKt1", NULL), &tsrc), 0);
	assert_int_equal(f->nsent, 2);
	assert_int_equal(f->sent[1].hop.flow, 99);
	assert_int_equal(sip_txn_stats(f->l)->server_total, 1); /* only the UDP one lingers */
}

/* received= carries the source address as inet_ntop writes it (one-, two- and three-digit
 * octets, IPv6), and is left out when the Via already names that address. */
static void test_server_received_forms(void **state)
{
	struct fix *f = *state;
	static const struct {
		const char *src, *via_host, *want; /* want NULL: no received */
	} cases[] = {
	    {"0.0.0.0", "10.9.9.9", "0.0.0.0"},
	    {"1.2.3.4", "10.9.9.9", "1.2.3.4"},
	    {"10.99.100.255", "10.9.9.9", "10.99.100.255"},
	    {"255.255.255.255", "10.9.9.9", "255.255.255.255"},
	    {"192.168.7.9", "192.168.7.9", NULL},
	    {"127.0.0.1", "127.0.0.10", "127.0.0.1"},
	    {"::1", "10.9.9.9", "::1"},
	    {"2001:db8::7", "[2001:db8::7]", NULL}, /* osip's Via host has no brackets */
	};
	f->auto_answer = 200;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct sip_hop src;
		char txt[1024];
		struct sip_msg *m;
		assert_int_equal(sip_hop_set(&src, SIP_PROTO_UDP, cases[i].src, 40000), 0);
		snprintf(txt, sizeof txt,
			 "OPTIONS sip:bob@corp.test SIP/2.0\r\n"
			 "Via: SIP/2.0/UDP %s:5070;branch=z9hG4bKrf%zu\r\n"
			 "From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: rf%zu\r\n"
			 "CSeq: 1 OPTIONS\r\n\r\n",
			 cases[i].via_host, i, i);
		assert_int_equal(sip_msg_parse(txt, strlen(txt), &m), 0);
		int before = f->nsent;
		assert_int_equal(sip_txn_input(f->l, m, &src), 0);
		assert_int_equal(f->nsent, before + 1);
		const char *rcv = NULL;
		sip_msg_via_top(f->sent[before].m, NULL, NULL, NULL, &rcv, NULL);
		if (cases[i].want) {
			assert_non_null(rcv);
			assert_string_equal(rcv, cases[i].want);
		} else {
			assert_null(rcv);
		}
	}
}

static void test_server_loop_bad_ack_cancel(void **state)
{
	struct fix *f = *state;
	struct sip_hop src = hop(SIP_PROTO_UDP);
	char extra[256];
	/* a request carrying one of our own Vias came back: 482, TU not told */
	snprintf(extra, sizeof extra,
		 "Via: SIP/2.0/UDP 127.0.0.60:5060;branch=z9hG4bK-plunit1.x\r\n");
	struct sip_msg *m;
	char txt[1024];
	snprintf(txt, sizeof txt,
		 "MESSAGE sip:bob@partner.test SIP/2.0\r\n"
		 "Via: SIP/2.0/UDP 127.0.0.70:5060;branch=z9hG4bKk1\r\n%s"
		 "From: <sip:a@corp.test>;tag=1\r\nTo: <sip:bob@partner.test>\r\nCall-ID: l1\r\n"
		 "CSeq: 1 MESSAGE\r\n\r\n",
		 extra);
	assert_int_equal(sip_msg_parse(txt, strlen(txt), &m), 0);
	assert_int_equal(sip_txn_input(f->l, m, &src), 0);
	assert_int_equal(f->requests, 0);
	assert_int_equal(f->nsent, 1);
	assert_int_equal(sip_msg_status(f->sent[0].m), 482);
	assert_int_equal(sip_txn_stats(f->l)->loops, 1);

	/* missing From: 400 naming it, statelessly */
	snprintf(
	    txt, sizeof txt,
	    "MESSAGE sip:bob@corp.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.70;branch=z9hG4bKb1\r\n"
	    "To: <sip:bob@corp.test>\r\nCall-ID: b1\r\nCSeq: 1 MESSAGE\r\n\r\n");
	assert_int_equal(sip_msg_parse(txt, strlen(txt), &m), 0);
	assert_int_equal(sip_txn_input(f->l, m, &src), 0);
	assert_int_equal(f->nsent, 2);
	assert_int_equal(sip_msg_status(f->sent[1].m), 400);
	assert_string_equal(sip_msg_reason(f->sent[1].m), "Bad Request (missing From)");
	assert_int_equal(sip_txn_stats(f->l)->bad_requests, 1);
	/* a bad ACK is never answered */
	snprintf(txt, sizeof txt,
		 "ACK sip:bob@corp.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.70;branch=z9hG4bKb2\r\n"
		 "To: <sip:bob@corp.test>\r\nCall-ID: b1\r\nCSeq: 1 ACK\r\n\r\n");
	assert_int_equal(sip_msg_parse(txt, strlen(txt), &m), 0);
	assert_int_equal(sip_txn_input(f->l, m, &src), 0);
	assert_int_equal(f->nsent, 2);
	/* no Via at all: the transport must decide */
	snprintf(txt, sizeof txt, "MESSAGE sip:bob@corp.test SIP/2.0\r\nCall-ID: b1\r\n\r\n");
	assert_int_equal(sip_msg_parse(txt, strlen(txt), &m), 0);
	assert_int_equal(sip_txn_input(f->l, m, &src), PE_PROTO);
	/* CANCEL of nothing: 481 */
	assert_int_equal(sip_txn_input(f->l, peer_request("CANCEL", "z9hG4bKc1", NULL), &src), 0);
	assert_int_equal(f->nsent, 3);
	assert_int_equal(sip_msg_status(f->sent[2].m), 481);
	assert_int_equal(f->requests, 0);
	/* an unmatched ACK is dropped */
	assert_int_equal(sip_txn_input(f->l, peer_request("ACK", "z9hG4bKc2", NULL), &src), 0);
	assert_int_equal(f->nsent, 3);
}

static void test_server_provisional_then_final(void **state)
{
	struct fix *f = *state;
	struct sip_hop src = hop(SIP_PROTO_UDP);
	assert_int_equal(sip_txn_input(f->l, peer_request("SUBSCRIBE", "z9hG4bKp1", NULL), &src),
			 0);
	struct sip_stxn *st = f->st;
	assert_int_equal(sip_stxn_reply(st, 100, NULL), 0);
	assert_null(sip_msg_to_tag(f->sent[0].m)); /* no tag on 100 */
	/* a retransmission re-sends the provisional */
	assert_int_equal(sip_txn_input(f->l, peer_request("SUBSCRIBE", "z9hG4bKp1", NULL), &src),
			 0);
	assert_int_equal(f->nsent, 2);
	assert_int_equal(sip_msg_status(f->sent[1].m), 100);
	struct sip_msg *resp = sip_stxn_response(st, 200, NULL);
	assert_int_equal(sip_msg_add_header(resp, "Expires", "60"), 0);
	assert_int_equal(sip_stxn_respond(st, resp), 0);
	assert_int_equal(sip_msg_status(f->sent[2].m), 200);
	assert_int_equal(sip_msg_expires(f->sent[2].m), 60);
	assert_string_equal(sip_msg_to_tag(f->sent[2].m), sip_stxn_local_tag(st));
}

/* Per-method, per-class counters and the duration histogram: finals received, synthesised
 * (408, 503) and sent; provisionals, retransmissions and abandoned transactions not counted. */
static void test_counters_by_method_and_class(void **state)
{
	struct fix *f = *state;
	struct sip_hop h = hop(SIP_PROTO_TCP);
	const struct sip_txn_stats *s = sip_txn_stats(f->l);
	struct sip_msg *a = make_request("MESSAGE"), *b = make_request("SUBSCRIBE"),
		       *c = make_request("MESSAGE"), *d = make_request("FOO");
	struct sip_ctxn *t;

	assert_int_equal(sip_txn_method_of("MESSAGE"), SIP_TXN_M_MESSAGE);
	assert_int_equal(sip_txn_method_of("PUBLISH"), SIP_TXN_M_PUBLISH);
	assert_int_equal(sip_txn_method_of("OPTIONS"), SIP_TXN_M_OPTIONS);
	assert_int_equal(sip_txn_method_of("PRACK"), SIP_TXN_M_PRACK);
	assert_int_equal(sip_txn_method_of("UPDATE"), SIP_TXN_M_UPDATE);
	assert_int_equal(sip_txn_method_of("message"), SIP_TXN_M_OTHER); /* case-sensitive */
	assert_int_equal(sip_txn_method_of("MESSAGX"), SIP_TXN_M_OTHER);
	assert_int_equal(sip_txn_method_of(""), SIP_TXN_M_OTHER);
	assert_int_equal(sip_txn_method_of(NULL), SIP_TXN_M_OTHER);
	for (int m = 0; m < SIP_TXN_M__N; m++)
		assert_int_equal(sip_txn_method_of(sip_txn_method_name(m)), m);
	assert_null(sip_txn_method_name(SIP_TXN_M__N));

	assert_int_equal(sip_txn_request(f->l, a, &h, on_final, f, NULL), 0);
	assert_int_equal(sip_txn_request(f->l, b, &h, on_final, f, NULL), 0);
	assert_int_equal(sip_txn_request(f->l, d, &h, on_final, f, NULL), 0);
	answer(f, 0, 100, SIP_PROTO_TCP); /* provisional: nothing counted */
	assert_int_equal(s->client_final[SIP_TXN_M_MESSAGE][0], 0);
	answer(f, 0, 202, SIP_PROTO_TCP);
	answer(f, 1, 489, SIP_PROTO_TCP);
	answer(f, 2, 699, SIP_PROTO_TCP);
	assert_int_equal(s->client_final[SIP_TXN_M_MESSAGE][0], 1);
	assert_int_equal(s->client_final[SIP_TXN_M_SUBSCRIBE][2], 1);
	assert_int_equal(s->client_final[SIP_TXN_M_OTHER][4], 1);
	/* a synthesised 503 counts as 5xx; an abandoned transaction not at all */
	f->send_result = UV_ECONNREFUSED;
	assert_int_equal(sip_txn_request(f->l, c, &h, on_final, f, NULL), 0);
	run_for(f, 5);
	assert_int_equal(f->last_status, 503);
	assert_int_equal(s->client_final[SIP_TXN_M_MESSAGE][3], 1);
	f->send_result = 0;
	assert_int_equal(sip_txn_request(f->l, c, &h, on_final, f, &t), 0);
	sip_ctxn_abandon(t);
	uint64_t n = 0, msg = 0;
	for (int m = 0; m < SIP_TXN_M__N; m++)
		for (int k = 0; k < SIP_TXN_CLASSES; k++)
			n += s->client_final[m][k];
	for (int k = 0; k <= SIP_TXN_DURATION_N; k++)
		msg += s->client_duration[SIP_TXN_M_MESSAGE][k];
	assert_int_equal(n, 4);
	assert_int_equal(msg, 2);
	/* answered within the loop's turn: the first bucket (<= 1 ms) */
	assert_int_equal(s->client_duration[SIP_TXN_M_SUBSCRIBE][0], 1);
	assert_true(s->client_duration_sum_us[SIP_TXN_M_MESSAGE] < 1000000);

	/* server side: the final we sent, by method; 482 for a loop counts too */
	struct sip_hop src = hop(SIP_PROTO_UDP);
	f->auto_answer = 200;
	assert_int_equal(sip_txn_input(f->l, peer_request("NOTIFY", "z9hG4bKn1", NULL), &src), 0);
	/* its retransmission is re-answered, not counted again */
	assert_int_equal(sip_txn_input(f->l, peer_request("NOTIFY", "z9hG4bKn1", NULL), &src), 0);
	f->auto_answer = 0;
	assert_int_equal(sip_txn_input(f->l, peer_request("MESSAGE", "z9hG4bKn2", NULL), &src), 0);
	assert_int_equal(sip_stxn_reply(f->st, 100, NULL), 0);
	assert_int_equal(s->server_final[SIP_TXN_M_MESSAGE][0], 0);
	assert_int_equal(sip_stxn_reply(f->st, 404, NULL), 0);
	assert_int_equal(s->server_final[SIP_TXN_M_NOTIFY][0], 1);
	assert_int_equal(s->server_final[SIP_TXN_M_MESSAGE][2], 1);
	sip_msg_free(a);
	sip_msg_free(b);
	sip_msg_free(c);
	sip_msg_free(d);
}

int main(void)
{
	log_init("test_sip_txn", LL_ERROR);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_client_udp_timeout_and_backoff, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_client_udp_final_absorbs_and_k, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_client_udp_proceeding, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_client_tcp, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_client_send_failure_is_async_503, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_client_flow_failure, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_client_abandon_and_stray, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_server_udp, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_server_rport_and_tcp, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_server_received_forms, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_server_loop_bad_ack_cancel, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_server_provisional_then_final, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_counters_by_method_and_class, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
