/* libFuzzer target for the PIDF codec. Invariants checked on every input:
 *  - errors are only PE_PROTO, PE_TOOBIG or PE_NOMEM, and a refused document leaves an
 *    empty struct;
 *  - an accepted document respects the limits and the contract of pidf.h (entity and ids
 *    set, ours decoding to the resource, trimmed non-empty notes, shows only when open,
 *    priorities 0..127, languages well formed);
 *  - it always writes back, the output parses again to an equal document (fixed point),
 *    and writing that one gives the same bytes. */
#include "pidf.h"
#include "buf.h"
#include "err.h"

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

static bool str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void check_doc(const struct pidf_doc *d)
{
	const struct pidf_limits *lim = &pidf_limits_default;
	CHECK(d->entity && d->entity[0]);
	CHECK(d->n <= lim->max_tuples);
	CHECK(d->n == 0 || d->tuples);
	for (size_t i = 0; i < d->n; i++) {
		const struct pidf_tuple *t = &d->tuples[i];
		CHECK(t->id && t->id[0]);
		for (size_t j = 0; j < i; j++)
			CHECK(strcmp(t->id, d->tuples[j].id) != 0);
		char res[PIDF_RESOURCE_MAX + 1];
		int rn = pidf_tuple_id_decode(t->id, res, sizeof res);
		if (t->resource) {
			CHECK(rn > 0 && strcmp(res, t->resource) == 0);
			char id[PIDF_ID_BUF];
			CHECK(pidf_tuple_id_encode(t->resource, id, sizeof id) > 0);
			CHECK(strcmp(id, t->id) == 0);
		} else {
			CHECK(rn <= 0);
		}
		CHECK((unsigned)t->show <= PIDF_SHOW_DND);
		CHECK(t->open || t->show == PIDF_SHOW_NONE);
		if (t->has_priority)
			CHECK(t->priority >= 0 && t->priority <= 127);
		if (t->note) {
			size_t n = strlen(t->note);
			CHECK(n > 0 && n <= lim->max_note);
			CHECK(!is_space(t->note[0]) && !is_space(t->note[n - 1]));
		}
		CHECK(t->note || !t->note_lang);
		if (t->note_lang) {
			size_t n = strlen(t->note_lang);
			CHECK(n > 0 && n <= PIDF_LANG_MAX);
			CHECK(strspn(t->note_lang,
				     "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				     "0123456789-") == n);
		}
	}
}

static void check_equal(const struct pidf_doc *a, const struct pidf_doc *b)
{
	CHECK(str_eq(a->entity, b->entity));
	CHECK(a->n == b->n);
	for (size_t i = 0; i < a->n; i++) {
		const struct pidf_tuple *x = &a->tuples[i], *y = &b->tuples[i];
		CHECK(str_eq(x->resource, y->resource));
		CHECK(str_eq(x->id, y->id));
		CHECK(x->open == y->open);
		CHECK(x->show == y->show);
		CHECK(str_eq(x->note, y->note));
		CHECK(str_eq(x->note_lang, y->note_lang));
		CHECK(x->has_priority == y->has_priority);
		CHECK(!x->has_priority || x->priority == y->priority);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pidf_doc d, back;
	char err[128];
	int rc = pidf_parse((const char *)data, size, NULL, &d, err, sizeof err);
	if (rc < 0) {
		CHECK(rc == PE_PROTO || rc == PE_TOOBIG || rc == PE_NOMEM);
		CHECK(err[0] != '\0');
		CHECK(!d.entity && !d.tuples && d.n == 0);
		return 0;
	}
	CHECK(rc == 0 && size <= pidf_limits_default.max_bytes);
	check_doc(&d);

	struct buf out, again;
	buf_init(&out, 0);
	buf_init(&again, 0);
	CHECK(pidf_write(&out, d.entity, d.tuples, d.n) == 0);
	/* The output may be longer than the input (an entity repeated in each <contact>), so
	 * the second parse lifts the byte bound; everything else stays as it was. */
	struct pidf_limits lim = pidf_limits_default;
	lim.max_bytes = buf_len(&out);
	rc = pidf_parse((const char *)buf_head(&out), buf_len(&out), &lim, &back, err, sizeof err);
	if (rc != 0) {
		fprintf(stderr, "reparse failed (%d: %s):\n%.*s\n", rc, err, (int)buf_len(&out),
			(const char *)buf_head(&out));
		abort();
	}
	check_doc(&back);
	check_equal(&d, &back);
	CHECK(pidf_write(&again, back.entity, back.tuples, back.n) == 0);
	CHECK(buf_len(&again) == buf_len(&out));
	CHECK(memcmp(buf_head(&again), buf_head(&out), buf_len(&out)) == 0);

	buf_deinit(&out);
	buf_deinit(&again);
	pidf_doc_free(&d);
	pidf_doc_free(&back);
	return 0;
}
