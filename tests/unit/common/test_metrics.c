/* Unit tests for the metrics registry and its Prometheus text rendering. */
#include "buf.h"
#include "err.h"
#include "metrics.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Renders m and returns a NUL-terminated malloc'd copy. */
static char *render(const struct metrics *m)
{
	struct buf b;
	buf_init(&b, 0);
	assert_int_equal(metrics_render(m, &b), 0);
	char *s = malloc(buf_len(&b) + 1);
	assert_non_null(s);
	if (buf_len(&b))
		memcpy(s, buf_head(&b), buf_len(&b));
	s[buf_len(&b)] = '\0';
	buf_deinit(&b);
	return s;
}

static void test_empty(void **state)
{
	(void)state;
	struct metrics *m = metrics_new();
	char *s = render(m);
	assert_string_equal(s, "");
	free(s);
	metrics_free(m);
	metrics_free(NULL);
}

static void test_render_exact(void **state)
{
	(void)state;
	struct metrics *m = metrics_new();
	static const double bounds[] = {0.25, 1, 2.5};

	uint64_t *c = metrics_counter(m, "parley_stanzas_total", "Stanzas routed.", NULL);
	assert_non_null(c);
	*c += 3;
	int64_t *in = metrics_gauge(m, "parley_connections", "Open connections.", "dir=\"in\"");
	int64_t *out =
	    metrics_gauge(m, "parley_connections", "ignored: first help wins", "dir=\"out\"");
	assert_non_null(in);
	assert_non_null(out);
	assert_ptr_not_equal(in, out);
	*in = 5;
	*out = -2;
	struct metrics_hist *h =
	    metrics_histogram(m, "parley_link_rtt_seconds", "Link round trip.", NULL, bounds, 3);
	assert_non_null(h);
	metrics_hist_observe(h, 0.125);
	metrics_hist_observe(h, 0.25); /* on a bound: counts in that bucket (le) */
	metrics_hist_observe(h, 0.75);
	metrics_hist_observe(h, 2);
	metrics_hist_observe(h, 10);
	struct metrics_hist *hl =
	    metrics_histogram(m, "parley_link_rtt_seconds", NULL, "edge=\"e1\"", bounds, 3);
	assert_non_null(hl);
	metrics_hist_observe(hl, 1);

	char *s = render(m);
	assert_string_equal(s, "# HELP parley_stanzas_total Stanzas routed.\n"
			       "# TYPE parley_stanzas_total counter\n"
			       "parley_stanzas_total 3\n"
			       "# HELP parley_connections Open connections.\n"
			       "# TYPE parley_connections gauge\n"
			       "parley_connections{dir=\"in\"} 5\n"
			       "parley_connections{dir=\"out\"} -2\n"
			       "# HELP parley_link_rtt_seconds Link round trip.\n"
			       "# TYPE parley_link_rtt_seconds histogram\n"
			       "parley_link_rtt_seconds_bucket{le=\"0.25\"} 2\n"
			       "parley_link_rtt_seconds_bucket{le=\"1\"} 3\n"
			       "parley_link_rtt_seconds_bucket{le=\"2.5\"} 4\n"
			       "parley_link_rtt_seconds_bucket{le=\"+Inf\"} 5\n"
			       "parley_link_rtt_seconds_sum 13.125\n"
			       "parley_link_rtt_seconds_count 5\n"
			       "parley_link_rtt_seconds_bucket{edge=\"e1\",le=\"0.25\"} 0\n"
			       "parley_link_rtt_seconds_bucket{edge=\"e1\",le=\"1\"} 1\n"
			       "parley_link_rtt_seconds_bucket{edge=\"e1\",le=\"2.5\"} 1\n"
			       "parley_link_rtt_seconds_bucket{edge=\"e1\",le=\"+Inf\"} 1\n"
			       "parley_link_rtt_seconds_sum{edge=\"e1\"} 1\n"
			       "parley_link_rtt_seconds_count{edge=\"e1\"} 1\n");
	free(s);
	metrics_free(m);
}

/* A collector loading counts a module keeps in its own fixed buckets. */
static void test_hist_set(void **state)
{
	(void)state;
	struct metrics *m = metrics_new();
	static const double bounds[] = {0.001, 0.01};
	struct metrics_hist *h =
	    metrics_histogram(m, "parley_t_seconds", "T.", "method=\"MESSAGE\"", bounds, 2);
	assert_non_null(h);
	metrics_hist_observe(h, 5); /* replaced, not added to */
	const uint64_t b[3] = {4, 0, 1};
	metrics_hist_set(h, b, 2, 9.0); /* wrong length: ignored */
	metrics_hist_set(NULL, b, 3, 1.0);
	metrics_hist_set(h, b, 3, 2.5);
	char *s = render(m);
	assert_string_equal(s, "# HELP parley_t_seconds T.\n"
			       "# TYPE parley_t_seconds histogram\n"
			       "parley_t_seconds_bucket{method=\"MESSAGE\",le=\"0.001\"} 4\n"
			       "parley_t_seconds_bucket{method=\"MESSAGE\",le=\"0.01\"} 4\n"
			       "parley_t_seconds_bucket{method=\"MESSAGE\",le=\"+Inf\"} 5\n"
			       "parley_t_seconds_sum{method=\"MESSAGE\"} 2.5\n"
			       "parley_t_seconds_count{method=\"MESSAGE\"} 5\n");
	free(s);
	metrics_free(m);
}

static void test_same_slot(void **state)
{
	(void)state;
	struct metrics *m = metrics_new();
	uint64_t *a = metrics_counter(m, "x_total", "X.", "k=\"v\"");
	uint64_t *b = metrics_counter(m, "x_total", "other help", "k=\"v\"");
	uint64_t *nolab1 = metrics_counter(m, "x_total", "X.", NULL);
	uint64_t *nolab2 = metrics_counter(m, "x_total", "X.", "");
	assert_ptr_equal(a, b);
	assert_ptr_equal(nolab1, nolab2); /* NULL and "" both mean no labels */
	assert_ptr_not_equal(a, nolab1);
	(*a)++;
	(*b)++;
	(*nolab1) += 10;
	/* Registering many more members must not move the earlier slots. */
	for (int i = 0; i < 100; i++) {
		char lab[32];
		snprintf(lab, sizeof lab, "i=\"%d\"", i);
		assert_non_null(metrics_gauge(m, "y", "Y.", lab));
	}
	assert_ptr_equal(metrics_counter(m, "x_total", NULL, "k=\"v\""), a);
	assert_int_equal(*a, 2);
	char *s = render(m);
	assert_non_null(strstr(s, "# HELP x_total X.\n# TYPE x_total counter\n"
				  "x_total{k=\"v\"} 2\nx_total 10\n# HELP y Y.\n"));
	assert_non_null(strstr(s, "y{i=\"99\"} 0\n"));
	free(s);
	metrics_free(m);
}

static void test_rejects(void **state)
{
	(void)state;
	struct metrics *m = metrics_new();
	static const double ok[] = {1, 2};
	static const double dup[] = {1, 1};
	static const double down[] = {2, 1};
	double inf[] = {1, INFINITY};
	double nan_b[] = {NAN};

	assert_non_null(metrics_counter(m, "a_total", "A.", NULL));
	/* The same name with another type is refused. */
	assert_null(metrics_gauge(m, "a_total", "A.", NULL));
	assert_null(metrics_histogram(m, "a_total", "A.", NULL, ok, 2));
	/* Invalid names. */
	assert_null(metrics_counter(m, "", "E.", NULL));
	assert_null(metrics_counter(m, "9lives", "E.", NULL));
	assert_null(metrics_counter(m, "with-dash", "E.", NULL));
	assert_null(metrics_counter(m, NULL, "E.", NULL));
	assert_non_null(metrics_counter(m, "ns:sub_name9", "Colons are legal.", NULL));
	/* Bounds must be finite and strictly increasing. */
	assert_null(metrics_histogram(m, "h", "H.", NULL, dup, 2));
	assert_null(metrics_histogram(m, "h", "H.", NULL, down, 2));
	assert_null(metrics_histogram(m, "h", "H.", NULL, inf, 2));
	assert_null(metrics_histogram(m, "h", "H.", NULL, nan_b, 1));
	/* No finite bucket at all is allowed: only +Inf. */
	struct metrics_hist *h = metrics_histogram(m, "h", "H.", NULL, NULL, 0);
	assert_non_null(h);
	metrics_hist_observe(h, 0.5);
	/* A second registration keeps the first bounds. */
	assert_ptr_equal(metrics_histogram(m, "h", "H.", NULL, ok, 2), h);
	char *s = render(m);
	assert_string_equal(s, "# HELP a_total A.\n# TYPE a_total counter\na_total 0\n"
			       "# HELP ns:sub_name9 Colons are legal.\n"
			       "# TYPE ns:sub_name9 counter\nns:sub_name9 0\n"
			       "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\n"
			       "h_sum 0.5\nh_count 1\n");
	free(s);
	metrics_free(m);
}

static void test_help_escaping_and_floats(void **state)
{
	(void)state;
	struct metrics *m = metrics_new();
	static const double sorted[] = {1e-07, 0.005, 0.1, 100000, 1e6, 1234567.5};
	assert_non_null(metrics_gauge(m, "g", "Line one\nback\\slash \"quoted\"", NULL));
	struct metrics_hist *h = metrics_histogram(m, "lat", "", NULL, sorted, 6);
	assert_non_null(h);
	metrics_hist_observe(h, 0.1);
	metrics_hist_observe(h, 0.2);
	char *s = render(m);
	/* 0.1 + 0.2 is 0.30000000000000004 in binary; the shortest round-trip text says so. */
	assert_string_equal(s, "# HELP g Line one\\nback\\\\slash \"quoted\"\n# TYPE g gauge\ng 0\n"
			       "# HELP lat \n# TYPE lat histogram\n"
			       "lat_bucket{le=\"1e-07\"} 0\n"
			       "lat_bucket{le=\"0.005\"} 0\n"
			       "lat_bucket{le=\"0.1\"} 1\n"
			       "lat_bucket{le=\"100000\"} 2\n"
			       "lat_bucket{le=\"1e+06\"} 2\n"
			       "lat_bucket{le=\"1.2345675e+06\"} 2\n"
			       "lat_bucket{le=\"+Inf\"} 2\n"
			       "lat_sum 0.30000000000000004\n"
			       "lat_count 2\n");
	free(s);
	metrics_free(m);
}

static void test_long_labels_and_bounded_buf(void **state)
{
	(void)state;
	struct metrics *m = metrics_new();
	char labels[1100];
	memcpy(labels, "peer=\"", 6);
	memset(labels + 6, 'p', 1000);
	memcpy(labels + 1006, "\"", 2);
	uint64_t *c = metrics_counter(m, "long_total", "L.", labels);
	assert_non_null(c);
	*c = UINT64_MAX;
	int64_t *g = metrics_gauge(m, "neg", "N.", NULL);
	*g = INT64_MIN;

	char *s = render(m);
	char want[1300];
	snprintf(
	    want, sizeof want,
	    "# HELP long_total L.\n# TYPE long_total counter\nlong_total{%s} "
	    "18446744073709551615\n# HELP neg N.\n# TYPE neg gauge\nneg -9223372036854775808\n",
	    labels);
	assert_string_equal(s, want);

	/* A bounded output buffer gives PE_TOOBIG, never an overrun. */
	struct buf b;
	buf_init(&b, 64);
	assert_int_equal(metrics_render(m, &b), PE_TOOBIG);
	assert_true(buf_len(&b) <= 64);
	assert_memory_equal(buf_head(&b), want, buf_len(&b));
	buf_deinit(&b);
	buf_init(&b, strlen(want));
	assert_int_equal(metrics_render(m, &b), 0);
	assert_int_equal(buf_len(&b), strlen(want));
	buf_deinit(&b);
	free(s);
	metrics_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_empty),
	    cmocka_unit_test(test_render_exact),
	    cmocka_unit_test(test_hist_set),
	    cmocka_unit_test(test_same_slot),
	    cmocka_unit_test(test_rejects),
	    cmocka_unit_test(test_help_escaping_and_floats),
	    cmocka_unit_test(test_long_labels_and_bounded_buf),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
