/* Unit tests for the structured logger and log_escape. */
#include "err.h"
#include "log.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

static char *g_out;
static size_t g_len;
static FILE *g_f;

static int setup(void **state)
{
	(void)state;
	g_f = open_memstream(&g_out, &g_len);
	assert_non_null(g_f);
	log_set_stream(g_f);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	log_set_stream(NULL);
	fclose(g_f);
	free(g_out);
	g_out = NULL;
	unsetenv("JOURNAL_STREAM");
	return 0;
}

/* Checks the "<RFC 3339 UTC ms> " prefix is a time within a minute of now; returns the rest. */
static const char *skip_timestamp(const char *line)
{
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	const char *p = strptime(line, "%Y-%m-%dT%H:%M:%S", &tm);
	assert_non_null(p);
	assert_true(p[0] == '.' && p[1] >= '0' && p[1] <= '9' && p[2] >= '0' && p[2] <= '9' &&
		    p[3] >= '0' && p[3] <= '9' && p[4] == 'Z' && p[5] == ' ');
	time_t t = timegm(&tm);
	time_t now = time(NULL);
	assert_true(t <= now + 1 && t >= now - 60);
	return p + 6;
}

static void test_format_plain(void **state)
{
	(void)state;
	unsetenv("JOURNAL_STREAM");
	log_init("parley-test", LL_DEBUG);
	log_info(7, "link_up", "peer=%s n=%d", "edge1", 3);
	fflush(g_f);
	assert_non_null(g_out);
	assert_string_equal(skip_timestamp(g_out),
			    "parley-test level=info conn=7 event=link_up peer=edge1 n=3\n");
}

static void test_format_no_conn_no_fields(void **state)
{
	(void)state;
	unsetenv("JOURNAL_STREAM");
	log_init("p", LL_DEBUG);
	log_warn(0, "started", NULL); /* NULL: no fields ("" is a -Wformat error) */
	log_error(UINT64_MAX, "boom", "err=%s", pe_strerror(PE_TOOBIG));
	fflush(g_f);
	const char *rest = skip_timestamp(g_out);
	const char *nl = strchr(rest, '\n');
	assert_non_null(nl);
	assert_int_equal(nl - rest, strlen("p level=warn event=started"));
	assert_memory_equal(rest, "p level=warn event=started", nl - rest);
	assert_string_equal(skip_timestamp(nl + 1),
			    "p level=error conn=18446744073709551615 event=boom "
			    "err=size limit exceeded\n");
}

static void test_format_journal(void **state)
{
	(void)state;
	setenv("JOURNAL_STREAM", "8:12345", 1);
	log_init("parley-proxy", LL_DEBUG);
	log_error(1, "e", "a=1");
	log_warn(2, "w", "b=2");
	log_info(0, "i", "c=3");
	log_debug(4, "d", "d=4");
	fflush(g_f);
	/* No timestamp and no program name: journald adds both. */
	assert_string_equal(g_out, "<3>level=error conn=1 event=e a=1\n"
				   "<4>level=warn conn=2 event=w b=2\n"
				   "<6>level=info event=i c=3\n"
				   "<7>level=debug conn=4 event=d d=4\n");
}

static void test_level_filter(void **state)
{
	(void)state;
	int calls = 0;
	setenv("JOURNAL_STREAM", "1:1", 1);
	log_init("x", LL_WARN);
	/* Arguments of a filtered line are not even evaluated. */
	log_info(1, "quiet", "n=%d", ++calls);
	log_debug(1, "quiet", "n=%d", ++calls);
	log_warn(1, "loud", "n=%d", ++calls);
	fflush(g_f);
	assert_int_equal(calls, 1);
	assert_string_equal(g_out, "<4>level=warn conn=1 event=loud n=1\n");
	log_set_level(LL_DEBUG);
	log_debug(1, "now", "%s", ""); /* fields that come out empty leave no trailing space */
	fflush(g_f);
	assert_string_equal(g_out, "<4>level=warn conn=1 event=loud n=1\n"
				   "<7>level=debug conn=1 event=now\n");
}

static void test_long_line_truncated(void **state)
{
	(void)state;
	char big[3000];
	memset(big, 'z', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	setenv("JOURNAL_STREAM", "1:1", 1);
	log_init("x", LL_INFO);
	log_info(9, "big", "v=%s", big);
	log_info(9, "after", "%s", "");
	fflush(g_f);
	/* One line of at most 2047 bytes, still newline-terminated, then the next line intact. */
	const char *nl = strchr(g_out, '\n');
	assert_non_null(nl);
	assert_int_equal(nl - g_out + 1, 2047);
	const char *head = "<6>level=info conn=9 event=big v=zzz";
	assert_memory_equal(g_out, head, strlen(head));
	assert_string_equal(nl + 1, "<6>level=info conn=9 event=after\n");
}

static void test_levels(void **state)
{
	(void)state;
	static const char *const names[] = {"error", "warn", "info", "debug"};
	for (int i = 0; i < 4; i++) {
		enum log_level l = LL_ERROR;
		assert_int_equal(log_level_parse(names[i], &l), 0);
		assert_int_equal(l, i);
		assert_string_equal(log_level_name((enum log_level)i), names[i]);
	}
	enum log_level l = LL_INFO;
	assert_int_equal(log_level_parse("verbose", &l), PE_INVAL);
	assert_int_equal(log_level_parse("INFO", &l), PE_INVAL);
	assert_int_equal(l, LL_INFO);
	assert_string_equal(log_level_name((enum log_level)9), "?");
}

static void test_escape(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		size_t len;
		size_t cap;
		const char *want;
	} cases[] = {
	    {"plain text", 10, 64, "plain text"},
	    {"q\"b\\", 4, 64, "q\\x22b\\x5c"},
	    {"\0\n\r\t\x7f\x80\xff", 7, 64, "\\x00\\x0a\\x0d\\x09\\x7f\\x80\\xff"},
	    {"<a x='1'/>", 10, 64, "<a x='1'/>"},
	    {"", 0, 8, ""},
	    /* Output that fits exactly is not cut. */
	    {"abcdefghi", 9, 10, "abcdefghi"},
	    {"abcdefg", 7, 10, "abcdefg"},
	    {"\x01\x02", 2, 9, "\\x01\\x02"},
	    /* Output that would not fit ends in "...", within cap. */
	    {"abcdefghij", 10, 10, "abcdef..."},
	    {"abcdefghijklmnop", 16, 10, "abcdef..."},
	    {"ab\x01\x02\x03", 5, 10, "ab\\x01..."},
	    {"\x01\x02\x03", 3, 9, "\\x01..."},
	    {"abcdef", 6, 4, "..."},
	    {"abcdef", 6, 3, ""},
	    {"abcdef", 6, 1, ""},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char dst[80];
		memset(dst, '#', sizeof dst);
		char *r = log_escape(dst, cases[i].cap, cases[i].in, cases[i].len);
		assert_ptr_equal(r, dst);
		assert_string_equal(dst, cases[i].want);
		assert_true(strlen(dst) < cases[i].cap);
		assert_int_equal(dst[cases[i].cap], '#'); /* nothing written past cap */
	}
	char untouched = 'u';
	log_escape(&untouched, 0, "abc", 3);
	assert_int_equal(untouched, 'u');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_format_plain, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_format_no_conn_no_fields, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_format_journal, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_level_filter, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_long_line_truncated, setup, teardown),
	    cmocka_unit_test(test_levels),
	    cmocka_unit_test(test_escape),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
