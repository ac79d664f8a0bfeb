/* libFuzzer target for the XML stream layer. Invariants checked on every input:
 *  - the events do not depend on how the bytes are split (one piece, random pieces,
 *    byte by byte for short inputs);
 *  - no event follows an error or the close; after an error xs_feed keeps failing;
 *  - a delivered stanza, serialised and parsed again, gives the same tree and the same
 *    serialisation;
 *  - the raw byte range of a stanza starts with '<' and ends with '>';
 *  - the memory a stream holds stays within a bound derived from the limits.
 * <starttls/> and SASL <auth/> stop the parser and restart the stream with the bytes
 * behind them (auth also raises the limits), and so does </stream:stream>: restarts and
 * xs_unparsed() are exercised as the proxy will use them. */
#include "buf.h"
#include "err.h"
#include "xml_stream.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Small limits so that inputs of a few KiB reach every limit. */
static const struct xs_limits lim_pre = {.max_stanza_bytes = 1024,
					 .max_elements = 24,
					 .max_depth = 8,
					 .max_attrs = 8,
					 .max_text_bytes = 512};
static const struct xs_limits lim_auth = {.max_stanza_bytes = 4096,
					  .max_elements = 64,
					  .max_depth = 12,
					  .max_attrs = 12,
					  .max_text_bytes = 2048};
static const struct xs_limits lim_reparse = {.max_stanza_bytes = 1 << 24,
					     .max_elements = 1 << 16,
					     .max_depth = 1024,
					     .max_attrs = 1 << 16,
					     .max_text_bytes = 1 << 24};

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__,         \
				__LINE__);                                                         \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

struct run {
	struct xs *xs;
	struct buf log;
	bool terminal; /* error or close seen: no more events until a restart */
	bool restart;  /* a stanza asked for a stream restart */
	bool auth;     /* the restart follows <auth/>: raise the limits */
	const uint8_t *data;
	size_t base; /* input offset where the current stream began */
	size_t size;
};

static void log_str(struct run *r, const char *s)
{
	CHECK(buf_append(&r->log, s, strlen(s)) == 0);
}

static void log_opt(struct run *r, const char *s)
{
	log_str(r, " ");
	if (!s) {
		log_str(r, "-");
		return;
	}
	CHECK(xs_escape(&r->log, s, strlen(s), true) == 0);
}

static bool str_same(struct xs_str a, struct xs_str b)
{
	return a.n == b.n && memcmp(a.p, b.p, a.n) == 0 && a.p[a.n] == '\0' && b.p[b.n] == '\0';
}

/* Structural equality: namespaces, names, attributes (prefixes aside), text runs. */
static bool tree_same(const struct xs_elem *a, const struct xs_elem *b)
{
	if (!str_same(a->ns, b->ns) || !str_same(a->name, b->name) || a->nattrs != b->nattrs ||
	    a->ntext != b->ntext || !str_same(a->text, b->text))
		return false;
	for (uint32_t i = 0; i < a->nattrs; i++)
		if (!str_same(a->attrs[i].ns, b->attrs[i].ns) ||
		    !str_same(a->attrs[i].name, b->attrs[i].name) ||
		    !str_same(a->attrs[i].value, b->attrs[i].value))
			return false;
	const struct xs_node *x = a->children, *y = b->children;
	for (; x && y; x = x->next, y = y->next) {
		if (x->type != y->type)
			return false;
		if (x->type == XS_NODE_TEXT) {
			if (!str_same(xs_node_text(x)->text, xs_node_text(y)->text) ||
			    xs_node_text(x)->text.n == 0)
				return false;
		} else {
			if (xs_node_elem(x)->parent != a || xs_node_elem(y)->parent != b)
				return false;
			if (!tree_same(xs_node_elem(x), xs_node_elem(y)))
				return false;
		}
	}
	return !x && !y;
}

/* The re-parse of one serialised stanza. */
struct reparse {
	const struct xs_elem *orig;
	const struct buf *ser;
	int stanzas;
};

static void rp_stanza(void *ud, const struct xs_stanza *st)
{
	struct reparse *p = ud;
	p->stanzas++;
	CHECK(tree_same(p->orig, st->el));
	struct buf again;
	buf_init(&again, 0);
	CHECK(xs_serialize(st->el, &again) == 0);
	CHECK(again.len == p->ser->len && again.len > 0 &&
	      memcmp(buf_head(&again), buf_head(p->ser), again.len) == 0);
	buf_deinit(&again);
}

static void rp_error(void *ud, const struct xs_error *e)
{
	(void)ud;
	fprintf(stderr, "re-parse failed: %s (%s)\n", xs_cond_name(e->cond), e->text);
	abort();
}

static const struct xs_callbacks rp_cb = {.on_stanza = rp_stanza, .on_error = rp_error};

static void check_roundtrip(const struct xs_elem *el, const char *content_ns)
{
	struct buf ser;
	buf_init(&ser, 0);
	CHECK(xs_serialize(el, &ser) == 0);
	struct reparse p = {el, &ser, 0};
	struct xs *xs = xs_new(&lim_reparse, &rp_cb, &p);
	CHECK(xs);
	char hdr[160];
	int n =
	    snprintf(hdr, sizeof hdr,
		     "<stream:stream xmlns='%s' xmlns:stream='http://etherx.jabber.org/streams'>",
		     content_ns);
	CHECK(xs_feed(xs, hdr, (size_t)n) == 0);
	CHECK(xs_feed(xs, (const char *)buf_head(&ser), ser.len) == 0);
	CHECK(p.stanzas == 1);
	xs_free(xs);
	buf_deinit(&ser);
}

static void on_open(void *ud, const struct xs_open *o)
{
	struct run *r = ud;
	CHECK(!r->terminal);
	CHECK(o->content_ns && o->root && xs_is_open(r->xs));
	log_str(r, "open");
	log_opt(r, o->to);
	log_opt(r, o->from);
	log_opt(r, o->id);
	log_opt(r, o->version);
	log_opt(r, o->lang);
	log_opt(r, o->content_ns);
	log_str(r, o->dialback ? " db\n" : "\n");
}

static void on_stanza(void *ud, const struct xs_stanza *st)
{
	struct run *r = ud;
	CHECK(!r->terminal);
	CHECK(st->el && st->el->parent == NULL && st->bytes >= 3);
	CHECK(st->offset + st->bytes <= r->size - r->base);
	if (st->raw) {
		CHECK(st->raw[0] == '<' && st->raw[st->bytes - 1] == '>');
		CHECK((const uint8_t *)st->raw == r->data + r->base + st->offset);
	}
	log_str(r, "stanza ");
	CHECK(xs_serialize(st->el, &r->log) == 0);
	log_str(r, "\n");
	check_roundtrip(st->el, xs_content_ns(r->xs));

	const struct xs_elem *el = st->el;
	if (el->name.n == 8 && memcmp(el->name.p, "starttls", 8) == 0) {
		r->restart = true;
		xs_stop(r->xs);
	} else if (el->name.n == 4 && memcmp(el->name.p, "auth", 4) == 0) {
		r->restart = r->auth = true;
		xs_reset(r->xs); /* deferred: the same as xs_stop, then a reset */
	}
}

static void on_close(void *ud)
{
	struct run *r = ud;
	CHECK(!r->terminal);
	r->terminal = true;
	log_str(r, "close\n");
}

static void on_error(void *ud, const struct xs_error *e)
{
	struct run *r = ud;
	CHECK(!r->terminal);
	CHECK(e->cond != XS_COND_NONE && e->text && e->text[0]);
	r->terminal = true;
	log_str(r, "error ");
	log_str(r, xs_cond_name(e->cond));
	log_str(r, e->app == XS_APP_STANZA_TOO_BIG ? " too-big\n" : "\n");
}

static const struct xs_callbacks cbs = {on_open, on_stanza, on_close, on_error};

/* Bound on what one stream may hold with lim_auth: expat's buffer and pools for one
 * token of at most max_stanza_bytes, and the arena for one stanza. */
#define MEM_BOUND (512 * 1024)

/* Feeds the input in pieces from next_size(); restarts the stream where the proxy
 * would. mode 0: one piece; 1: pseudo-random pieces; 2: byte by byte. */
static void run_input(struct run *r, const uint8_t *data, size_t size, int mode)
{
	memset(r, 0, sizeof *r);
	buf_init(&r->log, 0);
	r->data = data;
	r->size = size;
	r->xs = xs_new(&lim_pre, &cbs, r);
	CHECK(r->xs);
	uint64_t rng = 0x9e3779b97f4a7c15ULL ^ size;
	for (size_t i = 0; i < size && i < 16; i++)
		rng = (rng ^ data[i]) * 0x100000001b3ULL;
	size_t pos = 0;
	int err = 0;
	while (pos < size) {
		size_t k = size - pos;
		if (mode == 2) {
			k = 1;
		} else if (mode == 1) {
			rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
			size_t want =
			    (rng & 3) == 0 ? (size_t)(rng >> 8) % 3000 : (size_t)(rng >> 8) % 40;
			if (want + 1 < k)
				k = want + 1;
		}
		int rc = xs_feed(r->xs, (const char *)data + pos, k);
		CHECK(xs_mem_usage(r->xs) < MEM_BOUND);
		if (rc == PE_PROTO || rc == PE_NOMEM) {
			CHECK(r->terminal && xs_error(r->xs)->cond != XS_COND_NONE);
			err = rc;
			break;
		}
		CHECK(rc == 0);
		if (r->restart || r->terminal) {
			/* stopped on purpose (starttls, auth) or closed: the rest is a new stream
			 */
			size_t left = xs_unparsed(r->xs);
			CHECK(left <= k);
			if (r->auth) /* reset already done when xs_feed returned */
				CHECK(xs_feed(r->xs, "", 0) == 0 && !xs_is_open(r->xs));
			else
				CHECK(xs_feed(r->xs, "", 0) ==
				      (r->terminal ? PE_CLOSED : PE_STATE));
			pos += k - left;
			xs_reset(r->xs);
			if (r->auth)
				CHECK(xs_set_limits(r->xs, &lim_auth) == 0);
			r->restart = r->auth = r->terminal = false;
			r->base = pos;
			log_str(r, "restart\n");
			continue;
		}
		pos += k;
	}
	if (err) {
		/* sticky: more bytes are refused the same way and produce no event */
		size_t before = r->log.len;
		CHECK(xs_feed(r->xs, "<a/>", 4) == err);
		CHECK(r->log.len == before);
	}
	xs_free(r->xs);
	r->xs = NULL;
}

static bool log_same(const struct buf *a, const struct buf *b)
{
	return a->len == b->len && (a->len == 0 || memcmp(buf_head(a), buf_head(b), a->len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run a, b;
	run_input(&a, data, size, 0);
	for (int mode = 1; mode <= 2; mode++) {
		if (mode == 2 && size > 2048)
			break;
		run_input(&b, data, size, mode);
		if (!log_same(&a.log, &b.log)) {
			fprintf(
			    stderr,
			    "split changed the events:\n--- one piece\n%.*s\n--- mode %d\n%.*s\n",
			    (int)a.log.len, (const char *)buf_head(&a.log), mode, (int)b.log.len,
			    (const char *)buf_head(&b.log));
			abort();
		}
		buf_deinit(&b.log);
	}
	buf_deinit(&a.log);
	return 0;
}
