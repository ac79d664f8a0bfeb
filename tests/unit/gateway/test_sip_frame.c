/* sip_frame: every split point of a stream, keep-alives, every bound and bad length. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "err.h"
#include "sip_frame.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct sip_frame_limits LIM = {.max_header = 1024, .max_body = 4096};

static const char MSG1[] = "MESSAGE sip:bob@partner.test SIP/2.0\r\n"
			   "Via: SIP/2.0/TCP 127.0.0.60:5060;branch=z9hG4bK1\r\n"
			   "Content-Type: text/plain\r\n"
			   "Content-Length: 11\r\n"
			   "\r\n"
			   "hello\r\n\r\nyo";
static const char MSG2[] = "SIP/2.0 200 OK\r\n"
			   "Via: SIP/2.0/TCP 127.0.0.60:5060;branch=z9hG4bK1\r\n"
			   "l:0\r\n"
			   "\r\n";

static int scan(const char *s, size_t n, struct sip_frame_state *st, unsigned flags,
		struct sip_frame *f)
{
	return sip_frame_scan((const uint8_t *)s, n, &LIM, st, flags, f);
}

/* Every proper prefix needs more, with a fresh state and with a carried one. */
static void check_prefixes(const char *msg, size_t len, size_t hlen)
{
	struct sip_frame_state carried = {0};
	struct sip_frame f;
	for (size_t i = 0; i < len; i++) {
		struct sip_frame_state fresh = {0};
		assert_int_equal(scan(msg, i, &fresh, 0, &f), PE_NEEDMORE);
		assert_int_equal(scan(msg, i, &carried, 0, &f), PE_NEEDMORE);
	}
	struct sip_frame_state fresh = {0};
	assert_int_equal(scan(msg, len, &fresh, 0, &f), (int)len);
	assert_int_equal(f.kind, SIP_FRAME_MESSAGE);
	assert_int_equal(f.len, len);
	assert_int_equal(f.header_len, hlen);
	assert_int_equal(scan(msg, len, &carried, 0, &f), (int)len);
	assert_int_equal(f.header_len, hlen);
}

static void test_prefixes(void **state)
{
	(void)state;
	check_prefixes(MSG1, strlen(MSG1), strlen(MSG1) - 11);
	check_prefixes(MSG2, strlen(MSG2), strlen(MSG2));
}

/* A stream driver: feeds the input in two chunks split at every point, scanning and
 * consuming like a connection does, and records what came out. */
struct rec {
	int kinds[16];
	size_t lens[16];
	int n;
	int err;
};

static void drive(const char *in, size_t len, size_t split, unsigned flags, struct rec *r)
{
	char *buf = malloc(len + 1);
	size_t have = 0, off = 0;
	struct sip_frame_state st = {0};
	struct sip_frame f;
	memset(r, 0, sizeof *r);
	for (int chunk = 0; chunk < 2; chunk++) {
		size_t add = chunk == 0 ? split : len - split;
		memcpy(buf + have, in + have, add);
		have += add;
		for (;;) {
			int x =
			    sip_frame_scan((uint8_t *)buf + off, have - off, &LIM, &st, flags, &f);
			if (x == PE_NEEDMORE)
				break;
			if (x < 0) {
				r->err = x;
				free(buf);
				return;
			}
			assert_int_equal((size_t)x, f.len);
			assert_true(r->n < 16);
			r->kinds[r->n] = (int)f.kind;
			r->lens[r->n] = f.len;
			r->n++;
			off += (size_t)x;
			sip_frame_reset(&st);
		}
	}
	free(buf);
}

static void test_every_split_two_messages(void **state)
{
	(void)state;
	char in[1024];
	/* a stray CRLF, a message, a ping, a message */
	int n = snprintf(in, sizeof in, "\r\n%s\r\n\r\n%s", MSG1, MSG2);
	for (size_t split = 0; split <= (size_t)n; split++) {
		struct rec r;
		drive(in, (size_t)n, split, 0, &r);
		assert_int_equal(r.err, 0);
		assert_int_equal(r.n, 4);
		assert_int_equal(r.kinds[0], SIP_FRAME_CRLF);
		assert_int_equal(r.kinds[1], SIP_FRAME_MESSAGE);
		assert_int_equal(r.lens[1], strlen(MSG1));
		assert_int_equal(r.kinds[2], SIP_FRAME_PING);
		assert_int_equal(r.kinds[3], SIP_FRAME_MESSAGE);
		assert_int_equal(r.lens[3], strlen(MSG2));
	}
}

static void test_every_split_byte_by_byte(void **state)
{
	(void)state;
	char in[1024];
	int n = snprintf(in, sizeof in, "%s%s", MSG2, MSG1);
	struct sip_frame_state st = {0};
	struct sip_frame f;
	size_t off = 0;
	int got = 0;
	for (size_t have = 1; have <= (size_t)n; have++) {
		int x = scan(in + off, have - off, &st, 0, &f);
		if (x == PE_NEEDMORE)
			continue;
		assert_true(x > 0);
		off += (size_t)x;
		sip_frame_reset(&st);
		got++;
	}
	assert_int_equal(got, 2);
	assert_int_equal(off, (size_t)n);
}

static void test_keepalive(void **state)
{
	(void)state;
	struct sip_frame_state st = {0};
	struct sip_frame f;
	assert_int_equal(scan("", 0, &st, 0, &f), PE_NEEDMORE);
	assert_int_equal(scan("\r", 1, &st, 0, &f), PE_NEEDMORE);
	assert_int_equal(scan("\r\n", 2, &st, 0, &f), PE_NEEDMORE); /* may become a ping */
	assert_int_equal(scan("\r\n\r", 3, &st, 0, &f), PE_NEEDMORE);
	assert_int_equal(scan("\r\n\r\n", 4, &st, 0, &f), 4);
	assert_int_equal(f.kind, SIP_FRAME_PING);
	/* the pong we wait for after our own ping */
	assert_int_equal(scan("\r\n", 2, &st, SIP_FRAME_EXPECT_PONG, &f), 2);
	assert_int_equal(f.kind, SIP_FRAME_PONG);
	assert_int_equal(scan("\r\nSIP", 5, &st, SIP_FRAME_EXPECT_PONG, &f), 2);
	assert_int_equal(f.kind, SIP_FRAME_PONG);
	assert_int_equal(scan("\r\nSIP", 5, &st, 0, &f), 2);
	assert_int_equal(f.kind, SIP_FRAME_CRLF);
	assert_int_equal(scan("\n\n", 2, &st, 0, &f), PE_PROTO);
	assert_int_equal(scan("\rX", 2, &st, 0, &f), PE_PROTO);
}

static void test_content_length_forms(void **state)
{
	(void)state;
	struct {
		const char *hdrs;
		int want; /* > 0: body length expected; < 0: error */
	} cases[] = {
	    {"Content-Length: 3\r\n", 3},
	    {"content-length:3\r\n", 3},
	    {"l: 3\r\n", 3},
	    {"L:3 \r\n", 3},
	    {"Content-Length:\r\n 3\r\n", 3},	  /* folded */
	    {"Content-Length : 3\r\n", 3},	  /* white space before the colon */
	    {"Content-Length: 3\r\nl: 3\r\n", 3}, /* equal duplicates */
	    {"Content-Length: 3\r\nContent-Length: 4\r\n", PE_PROTO},
	    {"Content-Length: -3\r\n", PE_PROTO},
	    {"Content-Length: 3x\r\n", PE_PROTO},
	    {"Content-Length: 3 4\r\n", PE_PROTO},
	    {"Content-Length: \r\n", PE_PROTO},
	    {"X-Content-Length: 3\r\n", PE_PROTO}, /* not it: missing */
	    {"", PE_PROTO},
	    {"Content-Length: 4097\r\n", PE_TOOBIG},
	    {"Content-Length: 99999999999999999999999999\r\n", PE_TOOBIG},
	    {"Content-Length: 4096\r\n", 4096},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *in = malloc(8192);
		int n = snprintf(in, 8192, "OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n%s\r\n",
				 cases[i].hdrs);
		size_t hl = (size_t)n;
		memset(in + n, 'b', 4096);
		struct sip_frame_state st = {0};
		struct sip_frame f;
		int x = scan(in, hl + 4096, &st, 0, &f);
		if (cases[i].want >= 0) {
			assert_int_equal(x, (int)hl + cases[i].want);
			assert_int_equal(f.body_len, (size_t)cases[i].want);
		} else {
			assert_int_equal(x, cases[i].want);
			/* the header block was complete: the caller may answer 400 */
			assert_int_equal(f.header_len, hl);
		}
		free(in);
	}
}

/* The header block ends at the first CR LF CR LF, whatever LFs and CRs come before it:
 * the search goes from LF to LF, checked against memmem on tricky line endings. */
static void test_terminator_search(void **state)
{
	(void)state;
	static const char *const heads[] = {
	    "OPTIONS sip:a SIP/2.0\r\nl: 0\r\n\r\n",
	    "OPTIONS sip:a SIP/2.0\r\nX: a\n\r\nl: 0\r\n\r\n",
	    "OPTIONS sip:a SIP/2.0\r\nX: \n\n\r\r\n\rl: 0\r\n\r\n",
	    "OPTIONS sip:a SIP/2.0\r\nX: \r\n\r\r\nl: 0\r\n\r\n",
	    "OPTIONS sip:a SIP/2.0\r\nl: 0\r\n\r\n\r\n",
	    "OPTIONS sip:a SIP/2.0\r\nl: 0\r\n\r\n\n",
	};
	char buf[256];
	for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++) {
		size_t n = strlen(heads[i]);
		const char *e = memmem(heads[i], n, "\r\n\r\n", 4);
		size_t hlen = (size_t)(e - heads[i]) + 4;
		memcpy(buf, heads[i], n);
		for (size_t len = 0; len <= n; len++) {
			struct sip_frame_state fresh = {0};
			struct sip_frame f;
			int r = scan(buf, len, &fresh, 0, &f);
			if (len < hlen) {
				assert_int_equal(r, PE_NEEDMORE);
				continue;
			}
			/* "X: a\n" has no Content-Length in the first block on purpose in two
			 * cases: then the frame is refused, at the same header_len */
			if (r < 0) {
				assert_int_equal(r, PE_PROTO);
			} else {
				assert_int_equal(r, (int)hlen);
			}
			assert_int_equal(f.header_len, hlen);
		}
	}
}

static void test_bounds(void **state)
{
	(void)state;
	char *in = malloc(4096);
	struct sip_frame_state st = {0};
	struct sip_frame f;
	/* a header block that never ends is refused once it reaches the bound */
	memcpy(in, "OPTIONS sip:a@b SIP/2.0\r\n", 25);
	memset(in + 25, 'X', 4096 - 25);
	assert_int_equal(scan(in, 1023, &st, 0, &f), PE_NEEDMORE);
	assert_int_equal(scan(in, 1024, &st, 0, &f), PE_TOOBIG);
	assert_int_equal(f.header_len, 0);
	/* a header block of exactly max_header bytes is fine, one more is not */
	sip_frame_reset(&st);
	int n = snprintf(in, 4096, "OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\nX: ");
	memset(in + n, 'y', (size_t)(1024 - n - 4));
	memcpy(in + 1024 - 4, "\r\n\r\n", 4);
	assert_int_equal(scan(in, 1024, &st, 0, &f), 1024);
	sip_frame_reset(&st);
	n = snprintf(in, 4096, "OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\nX: ");
	memset(in + n, 'y', (size_t)(1025 - n - 4));
	memcpy(in + 1025 - 4, "\r\n\r\n", 4);
	assert_int_equal(scan(in, 1025, &st, 0, &f), PE_TOOBIG);
	assert_int_equal(f.header_len, 1025);
	/* binary garbage is refused at once */
	sip_frame_reset(&st);
	assert_int_equal(scan("\x16\x03\x01\x00", 4, &st, 0, &f), PE_PROTO);
	assert_int_equal(scan(" OPTIONS", 8, &st, 0, &f), PE_PROTO);
	free(in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_prefixes),
	    cmocka_unit_test(test_every_split_two_messages),
	    cmocka_unit_test(test_every_split_byte_by_byte),
	    cmocka_unit_test(test_keepalive),
	    cmocka_unit_test(test_content_length_forms),
	    cmocka_unit_test(test_bounds),
	    cmocka_unit_test(test_terminator_search),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
