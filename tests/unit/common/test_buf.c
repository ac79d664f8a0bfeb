/* Unit tests for bounded buffers: bounds, growth, compaction, consume, release. */
#include "buf.h"
#include "err.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static void fill(uint8_t *p, size_t n, size_t start)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(start + i);
}

/* The readable bytes are the pattern start, start+1, ... */
static void check_pattern(const struct buf *b, size_t start)
{
	for (size_t i = 0; i < buf_len(b); i++)
		assert_int_equal(buf_head(b)[i], (uint8_t)(start + i));
}

static void test_init_and_append(void **state)
{
	(void)state;
	struct buf b;
	memset(&b, 0x5a, sizeof b);
	buf_init(&b, 1000);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.off, 0);
	assert_int_equal(b.cap, 0);
	assert_int_equal(b.max, 1000);

	/* Nothing allocated: no head, and empty writes allocate nothing (and do no NULL + 0). */
	uint8_t *w = (uint8_t *)&b;
	assert_null(buf_head(&b));
	assert_int_equal(buf_append(&b, "", 0), 0);
	assert_int_equal(buf_reserve(&b, 0, &w), 0);
	assert_null(w);
	assert_null(b.data);

	assert_int_equal(buf_append(&b, "hello", 5), 0);
	assert_int_equal(buf_len(&b), 5);
	assert_memory_equal(buf_head(&b), "hello", 5);
	assert_int_equal(b.cap, 256); /* first allocation */
	assert_int_equal(buf_append(&b, " world", 6), 0);
	assert_memory_equal(buf_head(&b), "hello world", 11);
	assert_int_equal(buf_append(&b, "", 0), 0);
	assert_int_equal(buf_len(&b), 11);
	buf_deinit(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
	assert_int_equal(b.max, 1000); /* the bound survives deinit */
	buf_deinit(&b);		       /* twice is harmless */
}

static void test_growth_doubles(void **state)
{
	(void)state;
	struct buf b;
	uint8_t data[3000];
	fill(data, sizeof data, 0);
	buf_init(&b, 0); /* unbounded */
	assert_int_equal(buf_append(&b, data, 300), 0);
	assert_int_equal(b.cap, 512);
	assert_int_equal(buf_append(&b, data + 300, 300), 0);
	assert_int_equal(b.cap, 1024);
	assert_int_equal(buf_append(&b, data + 600, 2400), 0);
	assert_int_equal(b.cap, 4096);
	assert_int_equal(buf_len(&b), 3000);
	check_pattern(&b, 0);
	buf_deinit(&b);
}

static void test_bounds(void **state)
{
	(void)state;
	struct buf b;
	uint8_t data[400], *w = NULL;
	fill(data, sizeof data, 0);

	buf_init(&b, 100);
	assert_int_equal(buf_reserve(&b, 101, &w), PE_TOOBIG);
	assert_null(b.data); /* a refused reserve allocates nothing */
	assert_int_equal(buf_append(&b, data, 100), 0);
	assert_int_equal(b.cap, 100); /* growth is clamped to the bound */
	assert_int_equal(buf_append(&b, data, 1), PE_TOOBIG);
	assert_int_equal(buf_len(&b), 100);
	check_pattern(&b, 0);
	assert_int_equal(buf_reserve(&b, SIZE_MAX, &w), PE_TOOBIG); /* no overflow */
	assert_int_equal(buf_reserve(&b, 0, &w), 0);
	buf_deinit(&b);

	/* Growth clamps to max when doubling would pass it. */
	buf_init(&b, 300);
	assert_int_equal(buf_append(&b, data, 280), 0);
	assert_int_equal(b.cap, 300);
	assert_int_equal(buf_append(&b, data + 280, 20), 0);
	assert_int_equal(buf_append(&b, data, 1), PE_TOOBIG);
	assert_int_equal(buf_len(&b), 300);
	buf_deinit(&b);
}

/* The bound is on readable bytes: consumed bytes free room again (by compaction). */
static void test_bound_counts_readable_only(void **state)
{
	(void)state;
	struct buf b;
	uint8_t data[256];
	fill(data, sizeof data, 0);
	buf_init(&b, 256);
	assert_int_equal(buf_append(&b, data, 256), 0);
	buf_consume(&b, 100);
	assert_int_equal(buf_len(&b), 156);
	check_pattern(&b, 100);
	assert_int_equal(buf_append(&b, data, 100), 0);
	assert_int_equal(buf_len(&b), 256);
	assert_int_equal(b.off, 0);
	assert_int_equal(b.cap, 256);
	for (size_t i = 0; i < 156; i++)
		assert_int_equal(buf_head(&b)[i], (uint8_t)(100 + i));
	assert_memory_equal(buf_head(&b) + 156, data, 100);
	buf_deinit(&b);
}

static void test_compaction(void **state)
{
	(void)state;
	struct buf b;
	uint8_t data[256], *w = NULL;
	fill(data, sizeof data, 0);
	buf_init(&b, 0);
	assert_int_equal(buf_append(&b, data, 256), 0);
	uint8_t *mem = b.data;
	buf_consume(&b, 200);
	assert_int_equal(b.off, 200); /* consuming only moves the offset */
	assert_int_equal(buf_len(&b), 56);
	check_pattern(&b, 200);

	/* 150 bytes fit once the 56 readable bytes move to the front: no reallocation. */
	assert_int_equal(buf_reserve(&b, 150, &w), 0);
	assert_ptr_equal(b.data, mem);
	assert_int_equal(b.cap, 256);
	assert_int_equal(b.off, 0);
	assert_ptr_equal(w, b.data + 56);
	check_pattern(&b, 200);
	fill(w, 150, 256);
	buf_commit(&b, 150);
	assert_int_equal(buf_len(&b), 206);
	check_pattern(&b, 200);

	/* Reserve with room at the tail uses it without compacting. */
	buf_consume(&b, 6);
	assert_int_equal(buf_reserve(&b, 50, &w), 0);
	assert_int_equal(b.off, 6);
	assert_ptr_equal(w, b.data + 6 + 200);

	/* Too little room even after compaction: grows, keeping the data. */
	assert_int_equal(buf_reserve(&b, 100, &w), 0);
	assert_int_equal(b.off, 0);
	assert_int_equal(b.cap, 512);
	assert_int_equal(buf_len(&b), 200);
	check_pattern(&b, 206);
	buf_deinit(&b);
}

static void test_consume(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 0);
	assert_int_equal(buf_append(&b, "abcdef", 6), 0);
	buf_consume(&b, 0);
	assert_int_equal(buf_len(&b), 6);
	buf_consume(&b, 2);
	assert_memory_equal(buf_head(&b), "cdef", 4);
	buf_consume(&b, 1);
	assert_memory_equal(buf_head(&b), "def", 3);
	/* Draining resets the offset so the next write starts at the front. */
	buf_consume(&b, 3);
	assert_int_equal(buf_len(&b), 0);
	assert_int_equal(b.off, 0);
	assert_int_equal(buf_append(&b, "xy", 2), 0);
	assert_ptr_equal(buf_head(&b), b.data);
	assert_memory_equal(buf_head(&b), "xy", 2);
	buf_deinit(&b);
}

static void test_release_if_empty(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 64);
	buf_release_if_empty(&b); /* nothing allocated yet */
	assert_null(b.data);
	assert_int_equal(buf_append(&b, "abc", 3), 0);
	buf_release_if_empty(&b); /* not empty: kept */
	assert_non_null(b.data);
	assert_memory_equal(buf_head(&b), "abc", 3);
	buf_consume(&b, 3);
	buf_release_if_empty(&b);
	assert_null(b.data);
	assert_int_equal(b.cap, 0);
	assert_int_equal(b.off, 0);
	assert_int_equal(b.max, 64);
	/* Usable again at once, still bounded. */
	assert_int_equal(buf_append(&b, "again", 5), 0);
	assert_memory_equal(buf_head(&b), "again", 5);
	assert_int_equal(b.cap, 64);
	buf_deinit(&b);
}

static void test_reserve_commit_partial(void **state)
{
	(void)state;
	struct buf b;
	uint8_t *w = NULL;
	buf_init(&b, 0);
	assert_int_equal(buf_reserve(&b, 64, &w), 0);
	assert_non_null(w);
	memcpy(w, "read", 4); /* a read(2) that returned less than asked */
	buf_commit(&b, 4);
	assert_int_equal(buf_len(&b), 4);
	assert_int_equal(buf_reserve(&b, 64, &w), 0);
	assert_ptr_equal(w, buf_head(&b) + 4);
	memcpy(w, "more", 4);
	buf_commit(&b, 4);
	assert_memory_equal(buf_head(&b), "readmore", 8);
	buf_deinit(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_init_and_append),
	    cmocka_unit_test(test_growth_doubles),
	    cmocka_unit_test(test_bounds),
	    cmocka_unit_test(test_bound_counts_readable_only),
	    cmocka_unit_test(test_compaction),
	    cmocka_unit_test(test_consume),
	    cmocka_unit_test(test_release_if_empty),
	    cmocka_unit_test(test_reserve_commit_partial),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
