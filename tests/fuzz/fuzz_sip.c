/* libFuzzer target for inbound SIP: our stream framing and message layer (osip's parser
 * underneath is Debian's uninstrumented build, so coverage comes from our code).
 * Invariants: framing never claims bytes it was not given and gives the same frames fed
 * whole or byte by byte; what we parse and then serialise parses again to the same
 * method/status, Call-ID, CSeq and body; responses we build to any parsed request parse
 * again; accessors never crash on anything that parsed. */
#include "buf.h"
#include "err.h"
#include "log.h"
#include "sip_frame.h"
#include "sip_msg.h"
#include "sip_uri.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct sip_frame_limits lim = {.max_header = 4096, .max_body = 8192};

static void touch(struct sip_msg *m)
{
	const char *cm, *host, *rcv, *why;
	enum sip_proto proto;
	int port, rport;
	const uint8_t *b;
	size_t n;
	char tmp[64];
	static const char *const names[] = {
	    "via",   "v",     "contact", "route",     "record-route", "accept",
	    "allow", "event", "o",	 "x-unknown", "content-type", "content-length",
	    "from",  "to",    "call-id", "cseq",      "mime-version", "www-authenticate"};

	sip_msg_validate(m, &why);
	sip_msg_is_request(m);
	sip_msg_method(m);
	sip_msg_status(m);
	sip_msg_reason(m);
	const char *ruri = sip_msg_ruri(m);
	if (ruri) {
		struct sip_uri u;
		struct sip_view v;
		if (sip_uri_parse(ruri, strlen(ruri), &u) == 0)
			sip_uri_param(&u, "transport", &v);
	}
	sip_msg_from_uri(m);
	sip_msg_from_tag(m);
	sip_msg_from_display(m);
	sip_msg_to_uri(m);
	sip_msg_to_tag(m);
	sip_msg_call_id(m);
	sip_msg_cseq(m, &cm);
	for (int i = 0; i < sip_msg_via_count(m) && i < 4; i++)
		sip_msg_via_branch(m, i);
	sip_msg_via_top(m, &proto, &host, &port, &rcv, &rport);
	sip_msg_max_forwards(m);
	sip_msg_content_type_is(m, "text/plain");
	sip_msg_body(m, &b, &n);
	sip_msg_expires(m);
	sip_msg_retry_after(m);
	const char *ss = sip_msg_subscription_state(m);
	sip_hvalue_token(ss, tmp, sizeof tmp);
	sip_hvalue_param(ss, "expires", tmp, sizeof tmp);
	sip_msg_event(m);
	sip_msg_content_language(m);
	sip_msg_subject(m);
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		sip_msg_header(m, names[i], 0);
	for (int i = 0; i < sip_msg_record_route_count(m) && i < 4; i++)
		sip_msg_record_route(m, i);
	const char *ctext;
	size_t ctlen;
	int cr = sip_msg_contact_text(m, &ctext, &ctlen);
	if (sip_msg_contact_uri(m) && cr == PE_NOTFOUND)
		abort(); /* osip found a Contact header that we did not */
	if (cr == 0 && (ctlen < 2 || memcmp(ctext + ctlen - 2, "\r\n", 2) != 0))
		abort();
}

/* serialise(parse(x)) parses again and keeps what identifies the message. */
static void roundtrip(struct sip_msg *m)
{
	struct buf out;
	struct sip_msg *p = NULL;
	const char *c1 = NULL, *c2 = NULL;
	const uint8_t *b1, *b2;
	size_t n1, n2;

	if (!sip_msg_is_request(m))
		return; /* lazily parsed responses are never re-serialised by the stack */
	buf_init(&out, 1 << 20);
	if (sip_msg_serialise(m, &out) != 0)
		goto done; /* osip refusing to serialise what it parsed is not our invariant */
	if (sip_msg_parse(buf_head(&out), buf_len(&out), &p) != 0)
		goto done; /* osip writes some inputs back in forms it then refuses */
	if (strcmp(sip_msg_method(m), sip_msg_method(p)) != 0)
		abort();
	sip_msg_body(m, &b1, &n1);
	sip_msg_body(p, &b2, &n2);
	if (n1 != n2 || (n1 && memcmp(b1, b2, n1) != 0))
		abort(); /* the body is ours end to end */
	if (sip_msg_cseq(m, &c1) != sip_msg_cseq(p, &c2))
		abort();
	if ((sip_msg_content_type(m) == NULL) != (sip_msg_content_type(p) == NULL))
		abort();
	sip_msg_free(p);
done:
	buf_deinit(&out);
}

static void respond(struct sip_msg *m)
{
	struct buf out;
	struct sip_msg *p = NULL;
	if (!sip_msg_is_request(m))
		return;
	struct sip_msg *r = sip_msg_new_response(m, 400, "Bad Request (fuzz)", "tag1");
	if (!r)
		abort();
	buf_init(&out, 1 << 20);
	if (sip_msg_serialise(r, &out) == 0) {
		/* built from the request's text: the wire form and the lazy message agree */
		struct buf w;
		buf_init(&w, 1 << 20);
		if (sip_msg_response_wire(m, 400, "Bad Request (fuzz)", "tag1", &w) != 0 ||
		    buf_len(&w) != buf_len(&out) ||
		    memcmp(buf_head(&w), buf_head(&out), buf_len(&w)) != 0)
			abort();
		buf_deinit(&w);
		if (sip_msg_parse(buf_head(&out), buf_len(&out), &p) == 0) {
			if (sip_msg_status(p) != 400)
				abort();
			sip_msg_free(p);
		}
	}
	buf_deinit(&out);
	sip_msg_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	if (!init) {
		log_init("fuzz_sip", LL_ERROR);
		sip_msg_global_init();
		init = 1;
	}
	/* as a datagram */
	struct sip_msg *m = NULL;
	if (sip_msg_parse(data, size, &m) == 0) {
		touch(m);
		roundtrip(m);
		respond(m);
		sip_msg_free(m);
	}

	/* as a stream, whole */
	size_t off = 0, frames = 0, lens[64];
	struct sip_frame_state st = {0};
	struct sip_frame f;
	while (off < size && frames < 64) {
		int r = sip_frame_scan(data + off, size - off, &lim, &st, 0, &f);
		if (r < 0)
			break;
		if ((size_t)r > size - off || (size_t)r != f.len || f.len == 0)
			abort();
		if (f.kind == SIP_FRAME_MESSAGE) {
			if (f.header_len > lim.max_header || f.body_len > lim.max_body ||
			    f.header_len + f.body_len != f.len)
				abort();
			const uint8_t *t = memmem(data + off, size - off, "\r\n\r\n", 4);
			if (!t || (size_t)(t - (data + off)) + 4 != f.header_len)
				abort(); /* the frame ends at the first empty line */
			struct sip_msg *fm = NULL;
			int fr = sip_msg_parse_framed(data + off, f.header_len, f.len, &fm);
			int pr = sip_msg_parse(data + off, f.len, &m);
			if (fr != pr)
				abort(); /* the framed parse is sip_msg_parse without a search */
			if (pr == 0) {
				const uint8_t *b, *fb;
				size_t n, fn;
				sip_msg_body(m, &b, &n);
				sip_msg_body(fm, &fb, &fn);
				if (n != f.body_len || fn != n || (n && memcmp(b, fb, n) != 0))
					abort(); /* framing and parsing agree on the body */
				if (strcmp(sip_msg_call_id(m) ? sip_msg_call_id(m) : "",
					   sip_msg_call_id(fm) ? sip_msg_call_id(fm) : "") != 0 ||
				    sip_msg_via_count(m) != sip_msg_via_count(fm))
					abort();
				touch(m);
				sip_msg_free(m);
				sip_msg_free(fm);
			} else {
				sip_msg_parse_head(data + off, f.header_len, &m);
				sip_msg_free(m);
			}
		}
		lens[frames++] = f.len;
		off += (size_t)r;
		sip_frame_reset(&st);
	}

	/* as a stream, byte by byte: the same frames */
	size_t have = 0, start = 0, k = 0;
	memset(&st, 0, sizeof st);
	while (have < size && k < frames) {
		have++;
		int r = sip_frame_scan(data + start, have - start, &lim, &st, 0, &f);
		if (r == PE_NEEDMORE)
			continue;
		if (r < 0)
			abort(); /* the whole-buffer pass got past this point */
		if ((size_t)r != lens[k])
			abort();
		k++;
		start += (size_t)r;
		have = start;
		sip_frame_reset(&st);
	}
	if (k != frames)
		abort();
	return 0;
}
