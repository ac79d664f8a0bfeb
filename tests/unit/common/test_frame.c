/* Frame codec: every truncated prefix, oversize lengths, garbage, round trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "err.h"
#include "frame.h"

#include <stdlib.h>
#include <string.h>

static void make_stanza(Parley__Link__Frame *f, Parley__Link__Stanza *st,
			uint64_t seq, const char *body)
{
	parley__link__frame__init(f);
	parley__link__stanza__init(st);
	st->ref = seq * 7;
	st->kind = PARLEY__LINK__STANZA_KIND__KIND_MESSAGE;
	st->from = "alice@partner.test/phone";
	st->to = "bob@corp.test";
	st->body = (char *)body;
	f->has_seq = 1;
	f->seq = seq;
	f->body_case = PARLEY__LINK__FRAME__BODY_STANZA;
	f->stanza = st;
}

static void test_roundtrip_and_prefixes(void **state)
{
	(void)state;
	Parley__Link__Frame f;
	Parley__Link__Stanza st;
	struct buf b;
	buf_init(&b, 0);
	make_stanza(&f, &st, 42, "héllo <&> world");
	assert_int_equal(frame_pack(&f, &b, FRAME_DEFAULT_MAX), 0);
	size_t total = buf_len(&b);

	const uint8_t *body;
	size_t blen;
	/* every strict prefix needs more */
	for (size_t i = 0; i < total; i++)
		assert_int_equal(frame_next(buf_head(&b), i, FRAME_DEFAULT_MAX,
					    &body, &blen),
				 PE_NEEDMORE);
	assert_int_equal(frame_next(buf_head(&b), total, FRAME_DEFAULT_MAX,
				    &body, &blen),
			 (long)total);
	assert_int_equal(blen, total - FRAME_HDR);

	struct frame_arena a;
	frame_arena_init(&a);
	Parley__Link__Frame *g = frame_unpack(&a, body, blen);
	assert_non_null(g);
	assert_int_equal(g->seq, 42);
	assert_int_equal(g->body_case, PARLEY__LINK__FRAME__BODY_STANZA);
	assert_string_equal(g->stanza->body, "héllo <&> world");
	assert_string_equal(g->stanza->to, "bob@corp.test");
	assert_int_equal(g->stanza->ref, 42 * 7);
	frame_arena_deinit(&a);
	buf_deinit(&b);
}

static void test_two_frames_in_one_buffer(void **state)
{
	(void)state;
	Parley__Link__Frame f;
	Parley__Link__Stanza st;
	struct buf b;
	buf_init(&b, 0);
	make_stanza(&f, &st, 1, "one");
	assert_int_equal(frame_pack(&f, &b, FRAME_DEFAULT_MAX), 0);
	size_t first = buf_len(&b);
	make_stanza(&f, &st, 2, "two");
	assert_int_equal(frame_pack(&f, &b, FRAME_DEFAULT_MAX), 0);
	const uint8_t *body;
	size_t blen;
	long n = frame_next(buf_head(&b), buf_len(&b), FRAME_DEFAULT_MAX, &body,
			    &blen);
	assert_int_equal(n, (long)first);
	n = frame_next(buf_head(&b) + first, buf_len(&b) - first,
		       FRAME_DEFAULT_MAX, &body, &blen);
	assert_int_equal(n, (long)(buf_len(&b) - first));
	buf_deinit(&b);
}

static void test_oversize_rejected_before_body(void **state)
{
	(void)state;
	const uint8_t hdr[4] = {0x7f, 0xff, 0xff, 0xff};
	const uint8_t *body;
	size_t blen;
	/* only the header is present: the bound is checked without waiting for the body */
	assert_int_equal(frame_next(hdr, 4, FRAME_DEFAULT_MAX, &body, &blen),
			 PE_TOOBIG);
	const uint8_t just_over[4] = {0, 0x10, 0, 1}; /* 1 MiB + 1 */
	assert_int_equal(frame_next(just_over, 4, 1024 * 1024, &body, &blen),
			 PE_TOOBIG);
	const uint8_t zero[4] = {0, 0, 0, 0};
	assert_int_equal(frame_next(zero, 4, FRAME_DEFAULT_MAX, &body, &blen),
			 PE_PROTO);
}

static void test_pack_respects_max(void **state)
{
	(void)state;
	char big[2000];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = 0;
	Parley__Link__Frame f;
	Parley__Link__Stanza st;
	make_stanza(&f, &st, 1, big);
	struct buf b;
	buf_init(&b, 0);
	assert_int_equal(frame_pack(&f, &b, 1000), PE_TOOBIG);
	assert_int_equal(buf_len(&b), 0);
	uint32_t len;
	assert_null(frame_pack_alloc(&f, 1000, &len));
	uint8_t *p = frame_pack_alloc(&f, 4096, &len);
	assert_non_null(p);
	assert_true(len > 2000);
	free(p);
	buf_deinit(&b);
}

static void test_garbage_bodies(void **state)
{
	(void)state;
	struct frame_arena a;
	frame_arena_init(&a);
	const uint8_t g1[] = {0xff, 0xff, 0xff, 0xff, 0xff};
	assert_null(frame_unpack(&a, g1, sizeof g1));
	const uint8_t g2[] = {0x08, 0x01}; /* seq only: no body case */
	assert_null(frame_unpack(&a, g2, sizeof g2));
	/* a stanza missing its required fields */
	const uint8_t g3[] = {0x22, 0x00};
	assert_null(frame_unpack(&a, g3, sizeof g3));
	/* a length-delimited field that runs past the end */
	const uint8_t g4[] = {0x22, 0x7f, 0x09};
	assert_null(frame_unpack(&a, g4, sizeof g4));
	frame_arena_deinit(&a);
}

static void test_arena_reuse(void **state)
{
	(void)state;
	struct frame_arena a;
	frame_arena_init(&a);
	Parley__Link__Frame f;
	Parley__Link__Stanza st;
	struct buf b;
	buf_init(&b, 0);
	make_stanza(&f, &st, 9, "reuse");
	assert_int_equal(frame_pack(&f, &b, FRAME_DEFAULT_MAX), 0);
	for (int i = 0; i < 10000; i++) {
		Parley__Link__Frame *g = frame_unpack(
			&a, buf_head(&b) + FRAME_HDR, buf_len(&b) - FRAME_HDR);
		assert_non_null(g);
		assert_int_equal(g->seq, 9);
		if (i % 100 == 99)
			frame_arena_reset(&a);
	}
	frame_arena_deinit(&a);
	buf_deinit(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_and_prefixes),
		cmocka_unit_test(test_two_frames_in_one_buffer),
		cmocka_unit_test(test_oversize_rejected_before_body),
		cmocka_unit_test(test_pack_respects_max),
		cmocka_unit_test(test_garbage_bodies),
		cmocka_unit_test(test_arena_reuse),
	};
	return cmocka_run_group_tests_name("frame", tests, NULL, NULL);
}
