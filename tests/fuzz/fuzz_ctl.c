/* libFuzzer target for the control protocol and the JSON reader. Invariants checked on every
 * input:
 *  - ctl_parse_line either fails with PE_INVAL / PE_TOOBIG or gives a valid verb and at most
 *    CTL_MAX_ARGS args without control characters; quoting them again the way parleyctl does
 *    and parsing that gives the same words (a fixed point);
 *  - ctl_dispatch answers every line with exactly one line that the JSON reader accepts, an
 *    object with a boolean "ok";
 *  - json_parse never crashes on the raw input; what it accepts, written back with the JSON
 *    writer, parses again to the same shape. */
#include "buf.h"
#include "ctl.h"
#include "err.h"
#include "json.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__,         \
				__LINE__);                                                         \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static int h_echo(void *arg, const struct ctl_req *req, struct json *j, char *err, size_t errlen)
{
	(void)arg, (void)err, (void)errlen;
	json_arr_begin(j);
	for (size_t i = 0; i < req->argc; i++)
		json_str(j, req->argv[i]);
	json_arr_end(j);
	return 0;
}

static int h_fail(void *arg, const struct ctl_req *req, struct json *j, char *err, size_t errlen)
{
	(void)arg, (void)j;
	snprintf(err, errlen, "no %s", req->argc ? req->argv[0] : "");
	return PE_NOTFOUND;
}

static bool word_ok(const char *w)
{
	for (const unsigned char *p = (const unsigned char *)w; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

/* Quotes like parleyctl: plain words stay, anything else in quotes with \" and \\. */
static size_t put_word(char *d, const char *w)
{
	size_t n = 0;
	bool plain = *w != 0;
	for (const unsigned char *p = (const unsigned char *)w; *p; p++)
		if (*p == ' ' || *p == '"' || *p == '\\' || *p >= 0x80)
			plain = false;
	if (plain) {
		memcpy(d, w, strlen(w));
		return strlen(w);
	}
	d[n++] = '"';
	for (; *w; w++) {
		if (*w == '"' || *w == '\\')
			d[n++] = '\\';
		d[n++] = *w;
	}
	d[n++] = '"';
	return n;
}

static void write_back(struct json *j, const struct json_val *v)
{
	switch (v->type) {
	case JSON_NULL:
		json_null(j);
		break;
	case JSON_BOOL:
		json_bool(j, v->b);
		break;
	case JSON_NUMBER:
		json_double(j, v->num);
		break;
	case JSON_STRING:
		json_strn(j, v->text, v->len);
		break;
	case JSON_ARRAY:
		json_arr_begin(j);
		for (size_t i = 0; i < v->n; i++)
			write_back(j, &v->items[i]);
		json_arr_end(j);
		break;
	case JSON_OBJECT:
		json_obj_begin(j);
		for (size_t i = 0; i < v->n; i++) {
			json_key(j, v->keys[i]);
			write_back(j, &v->items[i]);
		}
		json_obj_end(j);
		break;
	}
}

static bool same_shape(const struct json_val *a, const struct json_val *b)
{
	if (a->type == JSON_NUMBER && !isfinite(a->num))
		return b->type == JSON_NULL; /* 1e999: the writer has no infinity */
	if (a->type != b->type || a->n != b->n)
		return false;
	if (a->type == JSON_STRING)
		return a->len == b->len && memcmp(a->text, b->text, a->len) == 0;
	if (a->type == JSON_BOOL)
		return a->b == b->b;
	for (size_t i = 0; i < a->n; i++)
		if ((a->keys && strcmp(a->keys[i], b->keys[i]) != 0) ||
		    !same_shape(&a->items[i], &b->items[i]))
			return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ctl *c;
	static struct ctl_req req, again;
	if (!c) {
		c = ctl_new();
		ctl_register(c, "echo", "", h_echo, NULL);
		ctl_register(c, "fail", "", h_fail, NULL);
	}
	const char *s = (const char *)data;
	const char *lf = memchr(s, '\n', size);
	size_t len = lf ? (size_t)(lf - s) : size;
	char why[128];

	int rc = ctl_parse_line(s, len, &req, why, sizeof why);
	CHECK(rc == 0 || rc == PE_INVAL || rc == PE_TOOBIG);
	if (rc == 0) {
		CHECK(req.verb && *req.verb && strlen(req.verb) <= CTL_MAX_VERB);
		CHECK(req.argc <= CTL_MAX_ARGS);
		static char line[4 * CTL_MAX_LINE + 64];
		size_t n = put_word(line, req.verb);
		for (size_t i = 0; i < req.argc; i++) {
			CHECK(word_ok(req.argv[i]));
			line[n++] = ' ';
			n += put_word(line + n, req.argv[i]);
		}
		if (n <= CTL_MAX_LINE) {
			CHECK(ctl_parse_line(line, n, &again, why, sizeof why) == 0);
			CHECK(strcmp(again.verb, req.verb) == 0 && again.argc == req.argc);
			for (size_t i = 0; i < req.argc; i++)
				CHECK(strcmp(again.argv[i], req.argv[i]) == 0);
		}
	}

	struct buf out;
	buf_init(&out, CTL_MAX_REPLY);
	CHECK(ctl_dispatch(c, s, len, &out) == 0);
	const char *t = (const char *)buf_head(&out);
	size_t tn = buf_len(&out);
	CHECK(tn > 1 && t[tn - 1] == '\n' && !memchr(t, '\n', tn - 1));
	struct json_val *v = NULL;
	CHECK(json_parse(t, tn - 1, JSON_MAX_DEPTH, 1u << 20, &v) == 0);
	const struct json_val *ok = json_get(v, "ok");
	CHECK(ok && ok->type == JSON_BOOL &&
	      ok->b ==
		  (rc == 0 && (strcmp(req.verb, "echo") == 0 || strcmp(req.verb, "help") == 0)));
	json_val_free(v);
	buf_deinit(&out);

	v = NULL;
	rc = json_parse(s, size, 16, 4096, &v);
	CHECK(rc == 0 || rc == PE_PROTO || rc == PE_TOOBIG);
	if (rc == 0) {
		struct buf b;
		struct json j;
		buf_init(&b, 0);
		json_init(&j, &b);
		write_back(&j, v);
		CHECK(json_finish(&j) == 0);
		struct json_val *w = NULL;
		CHECK(json_parse((const char *)buf_head(&b), buf_len(&b), 16, 4096, &w) == 0);
		CHECK(same_shape(v, w));
		json_val_free(w);
		buf_deinit(&b);
	}
	json_val_free(v);
	return 0;
}
