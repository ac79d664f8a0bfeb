/* Microbenchmark of the gateway's SIP-side work per incoming in-dialog NOTIFY (issue 7):
 * framing, parse, the transaction layer (validation, key, map, server transaction), the
 * dialog match and CSeq/target refresh presence.c does, the 200 and the frees. The
 * NOTIFYs are the presence bench's (tests/bench/pres_pool.c send_notify), over 10 000
 * dialogs. Prints ns per NOTIFY for the whole path and for its pieces.
 *
 *   bench_sip_notify [notifies] [dialogs]
 */
#include "sip_dialog.h"
#include "sip_frame.h"
#include "sip_hop.h"
#include "sip_map.h"
#include "sip_msg.h"
#include "sip_txn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#define MSG_MAX 4096
#define FAIL(what) (fprintf(stderr, "bench_sip_notify: %s failed\n", what), 1)

struct dent {
	struct sip_map_node node;
	struct sip_dialog d;
	char key[512];
};

static struct sip_map dialogs;
static size_t sent_bytes;
static unsigned long replied;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int fake_send(void *arg, const struct sip_hop *hop, const uint8_t *p, size_t n,
		     uint64_t *flow)
{
	(void)arg;
	(void)hop;
	(void)p;
	sent_bytes += n;
	*flow = 1;
	return 0;
}

/* What presence.c's handle_notify does on the SIP side before the PIDF. */
static void on_request(void *arg, struct sip_stxn *st, struct sip_msg *req)
{
	char key[1024], tok[32], state[24], reason[32], tmp[16];
	(void)arg;
	int kn = sip_dialog_key_of_request(req, key, sizeof key);
	struct sip_map_node *n = kn > 0 ? sip_map_find(&dialogs, key, (size_t)kn) : NULL;
	struct dent *e = n ? sip_map_entry(n, struct dent, node) : NULL;
	if (!e || !sip_dialog_matches(&e->d, req)) {
		sip_stxn_reply(st, 481, NULL);
		return;
	}
	const char *ev = sip_msg_event(req);
	if (!ev || sip_hvalue_token(ev, tok, sizeof tok) < 0 || strcmp(tok, "presence") != 0 ||
	    sip_dialog_establish_uac(&e->d, req) != 0 || sip_dialog_on_request(&e->d, req) != 0) {
		fprintf(stderr, "unexpected NOTIFY handling\n");
		exit(1);
	}
	const char *ss = sip_msg_subscription_state(req);
	sip_hvalue_token(ss, state, sizeof state);
	sip_hvalue_param(ss, "expires", tmp, sizeof tmp);
	sip_hvalue_param(ss, "reason", reason, sizeof reason);
	const uint8_t *body;
	size_t blen;
	sip_msg_body(req, &body, &blen);
	if (!blen || !sip_msg_content_type_is(req, "application/pidf+xml")) {
		fprintf(stderr, "no body\n");
		exit(1);
	}
	sip_stxn_reply(st, 200, "OK");
	replied++;
}

static int build_notify(char *msg, size_t cap, size_t k, unsigned cseq)
{
	char body[1024];
	int bl = snprintf(body, sizeof body,
			  "<?xml version='1.0' encoding='UTF-8'?>\n"
			  "<presence xmlns='urn:ietf:params:xml:ns:pidf' "
			  "xmlns:dm='urn:ietf:params:xml:ns:pidf:data-model' "
			  "xmlns:rpid='urn:ietf:params:xml:ns:pidf:rpid' "
			  "entity='sip:bob%zu@corp.test'>"
			  "<tuple id='t1'><status><basic>open</basic></status>"
			  "<note xml:lang='en'>note %u</note></tuple>"
			  "<dm:person id='p1'><rpid:activities><rpid:away/></rpid:activities>"
			  "</dm:person></presence>",
			  k, cseq);
	return snprintf(msg, cap,
			"NOTIFY sip:gw@127.0.0.2:5060;transport=tcp SIP/2.0\r\n"
			"Via: SIP/2.0/TCP 127.0.0.3:40000;branch=z9hG4bKn%zux%u\r\n"
			"Max-Forwards: 70\r\n"
			"From: <sip:bob%zu@corp.test>;tag=p%zu\r\n"
			"To: <sip:alice%zu@xmpp.test>;tag=g%zutag\r\n"
			"Call-ID: cid%zu-abcdef0123456789@gw.example\r\n"
			"CSeq: %u NOTIFY\r\n"
			"Contact: <sip:bob%zu@127.0.0.3:40000;transport=tcp>\r\n"
			"Event: presence\r\n"
			"Subscription-State: active;expires=%u\r\n"
			"Content-Type: application/pidf+xml\r\n"
			"Content-Length: %d\r\n\r\n%s",
			k, cseq, k, k, k, k, k, cseq, k, 3600u, bl, body);
}

int main(int argc, char **argv)
{
	size_t nmsg = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
	size_t ndlg = argc > 2 ? strtoul(argv[2], NULL, 10) : 10000;
	uv_loop_t loop;
	struct sip_txn_cfg cfg = {.sent_by = {[SIP_PROTO_TCP] = "127.0.0.2:5060"}};
	struct sip_txn_io io = {.send = fake_send, .on_request = on_request};
	struct sip_hop src;
	struct sip_frame_limits lim = {.max_header = 65536, .max_body = 1 << 20};
	struct sip_frame_state fs = {0};
	struct sip_frame fr;
	char(*msgs)[MSG_MAX];
	int *lens;
	static uint8_t rbuf[MSG_MAX];
	const size_t nvar = 4; /* distinct CSeqs kept per dialog, rebuilt as they are used */

	if (ndlg == 0 || nmsg == 0)
		return 2;
	uv_loop_init(&loop);
	sip_map_init(&dialogs);
	sip_hop_set(&src, SIP_PROTO_TCP, "127.0.0.3", 40000);
	src.flow = 1;
	struct sip_txn_layer *l = sip_txn_layer_new(&loop, &cfg, &io, NULL);
	if (!l)
		return FAIL("sip_txn_layer_new");
	struct dent *ds = calloc(ndlg, sizeof *ds);
	msgs = malloc(ndlg * nvar * sizeof *msgs);
	lens = malloc(ndlg * nvar * sizeof *lens);
	if (!ds || !msgs || !lens)
		return FAIL("malloc");
	for (size_t k = 0; k < ndlg; k++) {
		/* the dialog as the gateway holds it after the first NOTIFY */
		char buf[MSG_MAX];
		int n = build_notify(buf, sizeof buf, k, 1);
		struct sip_msg *m;
		if (sip_msg_parse(buf, (size_t)n, &m) != 0)
			return FAIL("first parse");
		char tag[64];
		snprintf(tag, sizeof tag, "g%zutag", k);
		struct sip_dialog *d = &ds[k].d;
		d->call_id = strdup(sip_msg_call_id(m));
		d->local_tag = strdup(tag);
		d->local_uri = strdup(sip_msg_to_uri(m));
		d->remote_uri = strdup(sip_msg_from_uri(m));
		d->local_cseq = 1;
		if (sip_dialog_establish_uac(d, m) != 0)
			return FAIL("dialog setup");
		sip_msg_free(m);
		int kl = sip_dialog_key(d, ds[k].key, sizeof ds[k].key);
		sip_map_insert(&dialogs, &ds[k].node, ds[k].key, (size_t)kl);
	}

	uint64_t t_frame = 0, t_parse = 0, t_rest = 0, t_all = 0;
	unsigned cseq_base = 2;
	size_t done = 0;
	while (done < nmsg) {
		/* one round: every dialog gets nvar NOTIFYs with rising CSeqs, built beforehand */
		for (size_t k = 0; k < ndlg; k++)
			for (size_t v = 0; v < nvar; v++)
				lens[k * nvar + v] = build_notify(msgs[k * nvar + v], MSG_MAX, k,
								  cseq_base + (unsigned)v);
		cseq_base += (unsigned)nvar;
		for (size_t v = 0; v < nvar && done < nmsg; v++) {
			for (size_t k = 0; k < ndlg && done < nmsg; k++, done++) {
				/* as read from the socket: in a hot buffer */
				size_t n = (size_t)lens[k * nvar + v];
				memcpy(rbuf, msgs[k * nvar + v], n);
				const uint8_t *p = rbuf;
				struct sip_msg *m;
				uint64_t t0 = now_ns();
				int r = sip_frame_scan(p, n, &lim, &fs, 0, &fr);
				sip_frame_reset(&fs);
				uint64_t t1 = now_ns();
				if (r != (int)n ||
				    sip_msg_parse_framed(p, fr.header_len, fr.len, &m) != 0) {
					fprintf(stderr, "frame/parse failed\n");
					return 1;
				}
				uint64_t t2 = now_ns();
				sip_txn_input(l, m, &src);
				uint64_t t3 = now_ns();
				t_frame += t1 - t0;
				t_parse += t2 - t1;
				t_rest += t3 - t2;
				t_all += t3 - t0;
			}
		}
	}
	if (replied != nmsg) {
		fprintf(stderr, "replied %lu of %zu\n", replied, nmsg);
		return 1;
	}
	printf("bench_sip_notify notifies=%zu dialogs=%zu ns_per_notify=%.0f frame=%.0f "
	       "parse=%.0f txn_dialog_reply_free=%.0f resp_bytes=%.1f\n",
	       nmsg, ndlg, (double)t_all / (double)nmsg, (double)t_frame / (double)nmsg,
	       (double)t_parse / (double)nmsg, (double)t_rest / (double)nmsg,
	       (double)sent_bytes / (double)nmsg);
	for (size_t k = 0; k < ndlg; k++)
		sip_dialog_deinit(&ds[k].d);
	sip_txn_layer_free(l);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	free(ds);
	free(msgs);
	free(lens);
	return 0;
}
