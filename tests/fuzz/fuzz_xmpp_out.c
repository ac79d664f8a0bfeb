/* libFuzzer target for the outbound serialiser (proxy/xmpp_out.c) and the check on the
 * children it copies verbatim. The input is cut at NUL bytes into the fields of a link Stanza
 * (the first byte picks the kind and which optional parts are set); the last field is also
 * offered as a preserved child. Invariants checked on every input:
 *  - xmpp_out_stanza either fails and leaves the buffer exactly as it was, or writes bytes
 *    that our own inbound parser accepts, inside a stream header, as exactly one stanza with
 *    no error, whatever the split of those bytes;
 *  - the fields read back (stanza_to_link) are the fields written, and each preserved child
 *    comes back as a child;
 *  - a fragment the check accepts, written as the only child, survives the same parse. */
#include "buf.h"
#include "err.h"
#include "stanza.h"
#include "xml_stream.h"
#include "xmpp_out.h"

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

static const char hdr[] = "<stream:stream xmlns='jabber:server' "
			  "xmlns:stream='http://etherx.jabber.org/streams' to='p.test' "
			  "version='1.0'>";

/* Generous limits: the serialiser's own depth bound is what is being checked. */
static const struct xs_limits lim = {.max_stanza_bytes = 1 << 22,
				     .max_elements = 1 << 16,
				     .max_depth = 64,
				     .max_attrs = 1 << 12,
				     .max_text_bytes = 1 << 22};

struct seen {
	int stanzas, errors;
	const Parley__Link__Stanza *want;
	struct stanza_scratch scratch;
};

static int same(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

static void on_stanza(void *ud, const struct xs_stanza *st)
{
	struct seen *s = ud;
	Parley__Link__Stanza got;
	s->stanzas++;
	CHECK(stanza_to_link(st->el, NULL, &s->scratch, &got) == 0);
	const Parley__Link__Stanza *w = s->want;
	CHECK(got.kind == w->kind);
	CHECK(same(got.from, w->from) && same(got.to, w->to) && same(got.id, w->id));
	CHECK(same(got.type, w->type) && same(got.lang, w->lang));
	/* A preserved child may itself be a jabber:server <body/> that the reader maps, so the
	 * mapped fields are compared only when there is none; otherwise it must come back as at
	 * least one mapped field or child. */
	if (w->n_extra == 0) {
		if (w->kind == PARLEY__LINK__STANZA_KIND__KIND_MESSAGE) {
			CHECK(same(got.body, w->body) && same(got.subject, w->subject));
			CHECK(same(got.thread, w->thread));
		}
		CHECK(got.n_extra == 0);
	} else {
		CHECK(got.n_extra >= 1 || got.body || got.subject || got.thread || got.show ||
		      got.status || got.has_priority || got.error);
	}
}

static void on_error(void *ud, const struct xs_error *e)
{
	struct seen *s = ud;
	(void)e;
	s->errors++;
}

static const struct xs_callbacks cbs = {.on_stanza = on_stanza, .on_error = on_error};

static void parse_back(const struct buf *b, const Parley__Link__Stanza *want, size_t split)
{
	struct seen s;
	memset(&s, 0, sizeof s);
	s.want = want;
	stanza_scratch_init(&s.scratch);
	struct xs *xs = xs_new(&lim, &cbs, &s);
	CHECK(xs != NULL);
	const char *p = (const char *)buf_head(b);
	size_t n = b->len;
	if (split > n)
		split = n;
	CHECK(xs_feed(xs, p, split) == 0);
	CHECK(xs_feed(xs, p + split, n - split) == 0);
	CHECK(s.errors == 0);
	CHECK(s.stanzas == 1);
	xs_free(xs);
	stanza_scratch_deinit(&s.scratch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t flags = data[0];
	char *copy = malloc(size);
	if (!copy)
		return 0;
	memcpy(copy, data + 1, size - 1);
	copy[size - 1] = 0;
	/* fields: from, to, id, type, lang, body, subject, thread, extra */
	char *f[9] = {0};
	size_t nf = 0;
	char *p = copy, *end = copy + size - 1;
	while (nf < 9 && p <= end) {
		f[nf++] = p;
		p += strlen(p) + 1;
	}
	Parley__Link__Stanza st = PARLEY__LINK__STANZA__INIT;
	static const int kinds[] = {PARLEY__LINK__STANZA_KIND__KIND_MESSAGE,
				    PARLEY__LINK__STANZA_KIND__KIND_PRESENCE,
				    PARLEY__LINK__STANZA_KIND__KIND_IQ, 7};
	st.kind = kinds[flags & 3];
	char **dst[8] = {&st.from, &st.to,   &st.id,	  &st.type,
			 &st.lang, &st.body, &st.subject, &st.thread};
	for (size_t i = 0; i < 8 && i < nf; i++)
		if (flags & (1u << (i % 6 + 2)) || i < 2)
			*dst[i] = f[i];
	ProtobufCBinaryData ex;
	if (nf == 9 && (flags & 0x80)) {
		ex.data = (uint8_t *)f[8];
		ex.len = strlen(f[8]);
		st.n_extra = 1;
		st.extra = &ex;
	}

	struct buf b;
	buf_init(&b, 0);
	CHECK(buf_append(&b, hdr, sizeof hdr - 1) == 0);
	size_t before = b.len;
	int r = xmpp_out_stanza(&b, &st);
	if (r) {
		CHECK(r == PE_INVAL);
		CHECK(b.len == before && memcmp(buf_head(&b), hdr, before) == 0);
	} else {
		CHECK(b.len > before);
		parse_back(&b, &st, size % (b.len + 1));
	}

	/* the fragment check alone, on the whole input */
	if (xmpp_out_check_fragment((const char *)data, size, XMPP_OUT_MAX_DEPTH) == 0) {
		Parley__Link__Stanza one = PARLEY__LINK__STANZA__INIT;
		ProtobufCBinaryData frag = {size, (uint8_t *)data};
		one.kind = PARLEY__LINK__STANZA_KIND__KIND_MESSAGE;
		one.n_extra = 1;
		one.extra = &frag;
		b.len = before;
		CHECK(xmpp_out_stanza(&b, &one) == 0);
		parse_back(&b, &one, size / 2);
	}
	buf_deinit(&b);
	free(copy);
	return 0;
}
