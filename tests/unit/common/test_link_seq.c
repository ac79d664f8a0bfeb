/* Outbox and inbox of the link: windows, selective acks, replay, de-duplication. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "err.h"
#include "link.h"
#include "link_seq.h"

#include <stdlib.h>
#include <string.h>

static uint8_t *item(uint32_t len)
{
	uint8_t *p = malloc(len);
	memset(p, 0xab, len);
	return p;
}

static void test_outbox_window_and_ack(void **state)
{
	(void)state;
	struct link_outbox ob;
	assert_int_equal(outbox_init(&ob, 77, 100, 0), 0);
	for (int i = 0; i < 100; i++)
		assert_int_equal(outbox_push(&ob, item(10), 10), 0);
	assert_true(outbox_full(&ob));
	/* past the window a producer may still finish what it read, up to the capacity */
	while (outbox_depth(&ob) <= ob.mask)
		assert_int_equal(outbox_push(&ob, item(10), 10), 0);
	assert_int_equal(outbox_depth(&ob), 256);
	uint8_t *extra = item(10);
	assert_int_equal(outbox_push(&ob, extra, 10), PE_FULL);
	free(extra);
	outbox_ack(&ob, 101, 256);
	assert_int_equal(outbox_depth(&ob), 256);

	/* selective ack above the head frees nothing yet */
	assert_int_equal(outbox_ack(&ob, 50, 60), 11);
	assert_int_equal(ob.head, 1);
	assert_true(outbox_full(&ob));
	/* acking the head releases through the acked run */
	assert_int_equal(outbox_ack(&ob, 1, 49), 49);
	assert_int_equal(ob.head, 61);
	assert_int_equal(outbox_depth(&ob), 196); /* 61..100 open, 101..256 acked above */
	assert_false(outbox_has_room(&ob));
	/* repeated and out-of-range acks are harmless */
	assert_int_equal(outbox_ack(&ob, 1, 60), 0);
	assert_int_equal(outbox_ack(&ob, 500, 600), 0);
	assert_int_equal(ob.bytes, 1960);
	assert_int_equal(outbox_ack(&ob, 61, 80), 20);
	assert_int_equal(outbox_depth(&ob), 176);
	assert_int_equal(outbox_ack(&ob, 81, 100), 20);
	assert_int_equal(outbox_depth(&ob), 0);
	assert_true(outbox_has_room(&ob));
	assert_int_equal(ob.bytes, 0);
	outbox_deinit(&ob);
}

static void test_outbox_byte_bound(void **state)
{
	(void)state;
	struct link_outbox ob;
	assert_int_equal(outbox_init(&ob, 1, 1000, 1000), 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(outbox_push(&ob, item(100), 100), 0);
	assert_true(outbox_full(&ob));
	outbox_ack(&ob, 1, 3);
	assert_false(outbox_full(&ob));
	outbox_deinit(&ob);
}

static void test_outbox_replay_skips_acked(void **state)
{
	(void)state;
	struct link_outbox ob;
	assert_int_equal(outbox_init(&ob, 1, 64, 0), 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(outbox_push(&ob, item(8), 8), 0);
	uint64_t seq, n = 0;
	while (outbox_next(&ob, &seq))
		n++;
	assert_int_equal(n, 10);
	/* the connection drops; 1-3 and 6 were acked */
	outbox_ack(&ob, 1, 3);
	outbox_ack(&ob, 6, 6);
	outbox_rewind(&ob);
	assert_int_equal(ob.resent_total, 6);
	uint64_t want[] = {4, 5, 7, 8, 9, 10};
	for (size_t i = 0; i < 6; i++) {
		assert_non_null(outbox_next(&ob, &seq));
		assert_int_equal(seq, want[i]);
	}
	assert_null(outbox_next(&ob, &seq));
	outbox_deinit(&ob);
}

static void test_inbox_dedup_and_ranges(void **state)
{
	(void)state;
	struct link_inbox ib;
	struct seq_range r[8];
	assert_int_equal(inbox_init(&ib, 128), 0);
	inbox_reset(&ib, 5);
	assert_int_equal(inbox_receive(&ib, 0), PE_PROTO);
	for (uint64_t s = 1; s <= 10; s++)
		assert_int_equal(inbox_receive(&ib, s), INBOX_NEW);
	assert_int_equal(inbox_receive(&ib, 3), INBOX_DUP);
	/* processed out of order: 1,2,3, 5, 7-8 */
	inbox_processed(&ib, 2);
	inbox_processed(&ib, 1);
	inbox_processed(&ib, 3);
	inbox_processed(&ib, 5);
	inbox_processed(&ib, 7);
	inbox_processed(&ib, 8);
	assert_true(ib.ack_due);
	size_t n = inbox_ranges(&ib, r, 8);
	assert_false(ib.ack_due);
	assert_int_equal(n, 3);
	assert_int_equal(r[0].first, 1);
	assert_int_equal(r[0].last, 3);
	assert_int_equal(r[1].first, 5);
	assert_int_equal(r[1].last, 5);
	assert_int_equal(r[2].first, 7);
	assert_int_equal(r[2].last, 8);
	/* a resend after reconnect: received ones are duplicates, processed or not */
	assert_int_equal(inbox_receive(&ib, 2), INBOX_DUP);
	assert_int_equal(inbox_receive(&ib, 4), INBOX_DUP);
	assert_int_equal(ib.dup_total, 3);
	inbox_processed(&ib, 4);
	inbox_processed(&ib, 6);
	n = inbox_ranges(&ib, r, 8);
	assert_int_equal(n, 1);
	assert_int_equal(r[0].last, 8);
	assert_int_equal(ib.upto, 8);
	/* beyond the window is a protocol error */
	assert_int_equal(inbox_receive(&ib, 8 + 129), PE_PROTO);
	inbox_deinit(&ib);
}

static void test_inbox_wraps_many_times(void **state)
{
	(void)state;
	struct link_inbox ib;
	assert_int_equal(inbox_init(&ib, 64), 0);
	inbox_reset(&ib, 1);
	for (uint64_t s = 1; s <= 100000; s++) {
		assert_int_equal(inbox_receive(&ib, s), INBOX_NEW);
		inbox_processed(&ib, s);
	}
	assert_int_equal(ib.upto, 100000);
	assert_int_equal(ib.dup_total, 0);
	inbox_deinit(&ib);
}

static void test_inbox_skip_to_for_standby(void **state)
{
	(void)state;
	struct link_inbox ib;
	struct seq_range r[4];
	assert_int_equal(inbox_init(&ib, 64), 0);
	inbox_reset(&ib, 9);
	/* another gateway took seqs 1..4999: the sender says its oldest unacked is 5000 */
	inbox_skip_to(&ib, 5000);
	assert_int_equal(ib.upto, 4999);
	assert_int_equal(inbox_receive(&ib, 5000), INBOX_NEW);
	assert_int_equal(inbox_receive(&ib, 4000), INBOX_DUP);
	inbox_processed(&ib, 5000);
	assert_int_equal(inbox_ranges(&ib, r, 4), 1);
	assert_int_equal(r[0].last, 5000);
	/* skipping backwards changes nothing */
	inbox_skip_to(&ib, 10);
	assert_int_equal(ib.upto, 5000);
	/* a small skip keeps what was processed above it */
	assert_int_equal(inbox_receive(&ib, 5003), INBOX_NEW);
	inbox_processed(&ib, 5003);
	inbox_skip_to(&ib, 5003);
	assert_int_equal(ib.upto, 5003);
	inbox_deinit(&ib);
}

static void test_epoch_reset(void **state)
{
	(void)state;
	struct link_inbox ib;
	assert_int_equal(inbox_init(&ib, 64), 0);
	inbox_reset(&ib, 1);
	assert_int_equal(inbox_receive(&ib, 1), INBOX_NEW);
	inbox_processed(&ib, 1);
	inbox_reset(&ib, 2);
	assert_int_equal(ib.upto, 0);
	assert_int_equal(inbox_receive(&ib, 1), INBOX_NEW);
	inbox_deinit(&ib);
}

/* A completion from a sender epoch that is gone must not mark the restarted sender's new
 * frames (numbered from 1 again) as done. */
static void test_stale_completion_ignored(void **state)
{
	(void)state;
	struct link_peer p;
	assert_int_equal(link_peer_init(&p, "edge1", 64), 0);
	inbox_reset(&p.in, 111);
	for (uint64_t s = 1; s <= 3; s++)
		assert_int_equal(inbox_receive(&p.in, s), INBOX_NEW);
	/* the sender restarts before the SIP answers come */
	inbox_reset(&p.in, 222);
	for (uint64_t s = 1; s <= 3; s++)
		assert_int_equal(inbox_receive(&p.in, s), INBOX_NEW);
	for (uint64_t s = 1; s <= 3; s++)
		link_peer_processed_in(&p, 111, s);
	assert_int_equal(p.in.upto, 0);
	assert_false(p.in.ack_due);
	link_peer_processed_in(&p, 222, 1);
	assert_int_equal(p.in.upto, 1);
	link_peer_deinit(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_outbox_window_and_ack),
		cmocka_unit_test(test_outbox_byte_bound),
		cmocka_unit_test(test_outbox_replay_skips_acked),
		cmocka_unit_test(test_inbox_dedup_and_ranges),
		cmocka_unit_test(test_inbox_wraps_many_times),
		cmocka_unit_test(test_inbox_skip_to_for_standby),
		cmocka_unit_test(test_epoch_reset),
		cmocka_unit_test(test_stale_completion_ignored),
	};
	return cmocka_run_group_tests_name("link_seq", tests, NULL, NULL);
}
