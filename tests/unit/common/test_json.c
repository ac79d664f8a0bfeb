/* Unit tests for the bounded JSON writer and reader. */
#include "buf.h"
#include "err.h"
#include "json.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* The buf's readable text as a malloc'd C string. */
static char *text(struct buf *b)
{
	char *s = malloc(buf_len(b) + 1);
	assert_non_null(s);
	if (buf_len(b))
		memcpy(s, buf_head(b), buf_len(b));
	s[buf_len(b)] = 0;
	return s;
}

static void test_writer_document(void **state)
{
	(void)state;
	struct buf b;
	struct json j;
	buf_init(&b, 0);
	json_init(&j, &b);
	json_obj_begin(&j);
	json_kv_str(&j, "s", "a\"b\\c\nd\te\x01");
	json_kv_int(&j, "i", -42);
	json_kv_uint(&j, "u", UINT64_MAX);
	json_kv_bool(&j, "t", true);
	json_key(&j, "n");
	json_null(&j);
	json_key(&j, "d");
	json_double(&j, 0.5);
	json_key(&j, "nan");
	json_double(&j, 0.0 / 0.0);
	json_key(&j, "a");
	json_arr_begin(&j);
	json_int(&j, 1);
	json_str(&j, NULL);
	json_obj_begin(&j);
	json_obj_end(&j);
	json_arr_begin(&j);
	json_arr_end(&j);
	json_arr_end(&j);
	json_obj_end(&j);
	assert_int_equal(json_finish(&j), 0);
	char *s = text(&b);
	assert_string_equal(s, "{\"s\":\"a\\\"b\\\\c\\nd\\te\\u0001\",\"i\":-42,"
			       "\"u\":18446744073709551615,\"t\":true,\"n\":null,\"d\":0.5,"
			       "\"nan\":null,\"a\":[1,null,{},[]]}");
	/* and the reader takes it back */
	struct json_val *v;
	assert_int_equal(json_parse(s, strlen(s), JSON_MAX_DEPTH, 100, &v), 0);
	assert_int_equal(v->type, JSON_OBJECT);
	assert_string_equal(json_get(v, "s")->text, "a\"b\\c\nd\te\x01");
	assert_string_equal(json_get(v, "u")->text, "18446744073709551615");
	assert_int_equal(json_get(v, "i")->num, -42);
	assert_true(json_get(v, "t")->b);
	assert_int_equal(json_get(v, "a")->n, 4);
	assert_null(json_get(v, "missing"));
	json_val_free(v);
	free(s);
	buf_deinit(&b);
}

static void test_writer_utf8(void **state)
{
	(void)state;
	struct buf b;
	struct json j;
	buf_init(&b, 0);
	json_init(&j, &b);
	/* valid 2-, 3- and 4-byte sequences kept; a lone continuation byte, an overlong, a
	 * surrogate and a truncated sequence each become U+FFFD per byte; DEL escaped */
	json_str(&j,
		 "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|\x80|\xc0\xaf|\xed\xa0\x80|\xe2\x82|\x7f");
	assert_int_equal(json_finish(&j), 0);
	char *s = text(&b);
	assert_string_equal(s, "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|\xef\xbf\xbd|"
			       "\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd|"
			       "\xef\xbf\xbd\xef\xbf\xbd|\\u007f\"");
	struct json_val *v;
	assert_int_equal(json_parse(s, strlen(s), 4, 10, &v), 0);
	json_val_free(v);
	free(s);
	buf_deinit(&b);
}

static void test_writer_misuse(void **state)
{
	(void)state;
	struct buf b;
	struct json j;
	buf_init(&b, 0);

	json_init(&j, &b); /* a value in an object without its key */
	json_obj_begin(&j);
	json_int(&j, 1);
	assert_int_equal(json_finish(&j), PE_STATE);

	json_init(&j, &b); /* a key in an array */
	json_arr_begin(&j);
	json_key(&j, "k");
	assert_int_equal(json_finish(&j), PE_STATE);

	json_init(&j, &b); /* unbalanced */
	json_arr_begin(&j);
	json_obj_end(&j);
	assert_int_equal(json_finish(&j), PE_STATE);

	json_init(&j, &b); /* left open */
	json_obj_begin(&j);
	assert_int_equal(json_finish(&j), PE_STATE);

	json_init(&j, &b); /* a key without its value */
	json_obj_begin(&j);
	json_key(&j, "k");
	json_obj_end(&j);
	assert_int_equal(json_finish(&j), PE_STATE);

	json_init(&j, &b); /* two top-level values */
	json_int(&j, 1);
	json_int(&j, 2);
	assert_int_equal(json_finish(&j), PE_STATE);

	json_init(&j, &b); /* nothing */
	assert_int_equal(json_finish(&j), PE_STATE);

	json_init(&j, &b); /* too deep */
	for (int i = 0; i <= JSON_MAX_DEPTH; i++)
		json_arr_begin(&j);
	assert_int_equal(json_finish(&j), PE_STATE);
	buf_deinit(&b);
}

static void test_writer_bound(void **state)
{
	(void)state;
	struct buf b;
	struct json j;
	buf_init(&b, 16);
	json_init(&j, &b);
	json_arr_begin(&j);
	for (int i = 0; i < 100; i++)
		json_str(&j, "0123456789");
	json_arr_end(&j);
	assert_int_equal(json_finish(&j), PE_TOOBIG);
	assert_true(buf_len(&b) <= 16);
	buf_deinit(&b);
}

static void test_reader_valid(void **state)
{
	(void)state;
	static const char *const ok[] = {
	    "0",
	    "-0",
	    "1.5e3",
	    "-12.25E-2",
	    "true",
	    "false",
	    "null",
	    "\"\"",
	    " [ ] ",
	    "{}",
	    "{\"a\":[1,{\"b\":null}],\"c\":\"\\u00e9\\ud83d\\ude00\\/\"}",
	    "\n\t[1 , 2]\r\n",
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		struct json_val *v = NULL;
		int rc = json_parse(ok[i], strlen(ok[i]), JSON_MAX_DEPTH, 100, &v);
		if (rc)
			fail_msg("%s: %d", ok[i], rc);
		json_val_free(v);
	}
	struct json_val *v;
	const char *s = "{\"c\":\"\\u00e9\\ud83d\\ude00\"}";
	assert_int_equal(json_parse(s, strlen(s), 2, 10, &v), 0);
	assert_string_equal(json_get(v, "c")->text, "\xc3\xa9\xf0\x9f\x98\x80");
	json_val_free(v);
	/* a NUL inside a string is kept, with its length */
	s = "\"a\\u0000b\"";
	assert_int_equal(json_parse(s, strlen(s), 2, 10, &v), 0);
	assert_int_equal(v->len, 3);
	assert_memory_equal(v->text, "a\0b", 3);
	json_val_free(v);
}

static void test_reader_invalid(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "",
	    " ",
	    "[",
	    "]",
	    "{",
	    "{\"a\"}",
	    "{\"a\":}",
	    "{a:1}",
	    "[1,]",
	    "[,1]",
	    "01",
	    "1.",
	    ".5",
	    "1e",
	    "-",
	    "+1",
	    "tru",
	    "nul",
	    "\"abc",
	    "\"\\x\"",
	    "\"\\u12\"",
	    "\"\\ud800\"",
	    "\"\\udc00\"",
	    "\"\\ud800\\u0041\"",
	    "\"\x01\"",
	    "\"\xff\"",
	    "\"\xc0\xaf\"",
	    "[1] 2",
	    "{\"a\":1,}",
	    "[1 2]",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct json_val *v = NULL;
		int rc = json_parse(bad[i], strlen(bad[i]), JSON_MAX_DEPTH, 100, &v);
		if (rc != PE_PROTO)
			fail_msg("\"%s\": expected PE_PROTO, got %d", bad[i], rc);
		assert_null(v);
	}
}

static void test_reader_bounds(void **state)
{
	(void)state;
	struct json_val *v = NULL;
	assert_int_equal(json_parse("[[[1]]]", 7, 3, 100, &v), 0);
	json_val_free(v);
	v = NULL;
	assert_int_equal(json_parse("[[[1]]]", 7, 2, 100, &v), PE_TOOBIG);
	assert_null(v);
	assert_int_equal(json_parse("[1,2,3]", 7, 4, 4, &v), 0);
	json_val_free(v);
	v = NULL;
	assert_int_equal(json_parse("[1,2,3]", 7, 4, 3, &v), PE_TOOBIG);
	assert_null(v);
	/* every truncated prefix of a valid document is refused, none crashes */
	const char *doc = "{\"k\":[1,\"two\",{\"x\":true}],\"e\":\"\\u00e9\"}";
	for (size_t n = 0; n < strlen(doc); n++) {
		v = NULL;
		int rc = json_parse(doc, n, JSON_MAX_DEPTH, 100, &v);
		if (rc != PE_PROTO)
			fail_msg("prefix %zu: %d", n, rc);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_writer_document), cmocka_unit_test(test_writer_utf8),
	    cmocka_unit_test(test_writer_misuse),   cmocka_unit_test(test_writer_bound),
	    cmocka_unit_test(test_reader_valid),    cmocka_unit_test(test_reader_invalid),
	    cmocka_unit_test(test_reader_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
