/* The XMPP XML stream layer on top of expat: restricted XML, limits, stanza trees. */
#include "xml_stream.h"

#include "err.h"

#include <expat.h>

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/*
 * Why things are the way they are:
 *
 * - Expat (with XML_CONTEXT_BYTES, as Debian builds it) copies every XML_Parse() input
 *   into its own buffer and never shrinks it. Feeding it at most XS_CHUNK bytes per call
 *   keeps that buffer at about 4 KiB however large the reads are; only a single huge tag
 *   grows it, and that is bounded by max_stanza_bytes.
 * - The byte limit is enforced before expat sees the bytes: "mark" is the stream offset
 *   where the unit being received (stream header, whitespace, stanza) began, and we never
 *   hand expat more than mark + max_stanza_bytes. So a peer cannot make expat buffer an
 *   endless start tag, and the check does not depend on how the input was split.
 * - Expat may still deliver a few callbacks after XML_StopParser(); every handler checks
 *   the state first, so no event follows an error, a stop or the close.
 * - The outcome must not depend on how the input was split. Expat reports the character
 *   data in front of an invalid "]]>" only when the input was split before it, so errors
 *   found in character data (text between stanzas, text over the limit) are recorded and
 *   raised at the next markup event; an expat error found first wins in every split.
 * - Tree nodes and strings live in a bump arena recycled after each stanza: no malloc
 *   per element, and each text byte is copied once (adjacent runs grow in place). When
 *   a feed ends between stanzas the arena is freed altogether: that costs one malloc per
 *   read, not per stanza, and an idle stream holds no arena.
 * - Expat never gives memory back: one huge token leaves its buffer and pools large for
 *   the life of the stream. When a feed ends exactly between stanzas and expat holds more
 *   than XS_EXPAT_SHED, the parser is replaced by a fresh one primed with a synthetic
 *   stream header that re-declares the peer's root namespace bindings; byte offsets
 *   continue through idx_base. Fuzz builds shed at every chance so that the fuzzer's
 *   split-independence check covers it.
 */

#define XS_SEP '\x01' /* namespace separator: cannot occur in XML names or URIs */
#ifndef XS_CHUNK
#define XS_CHUNK 2048 /* most bytes handed to expat per XML_Parse() call */
#endif
#define XS_ARENA_FIRST 2048 /* kept across the stanzas of one feed: a typical stanza fits */
#define XS_ARENA_MAXBLOCK (256 * 1024)
#ifndef XS_EXPAT_SHED
#ifdef PARLEY_FUZZ
#define XS_EXPAT_SHED 0
#else
#define XS_EXPAT_SHED (32 * 1024) /* expat idles at 10-14 KiB */
#endif
#endif

enum xs_state {
	XS_RUNNING, /* parsing; stream may or may not be open */
	XS_STOPPED, /* a caller asked to stop; waits for xs_reset */
	XS_CLOSED,  /* </stream:stream> received */
	XS_FAILED,  /* stream error; err holds it */
};

struct xs_block {
	struct xs_block *next;
	size_t size; /* bytes of data[] */
	char data[]; /* 16-aligned: malloc's alignment plus a 16-byte header */
};

/* Bump allocator. The first block is kept across the stanzas of one feed; later blocks
 * are freed after each stanza. */
struct xs_arena {
	struct xs_block *first;
	struct xs_block *cur;
	char *ptr, *end;
	size_t bytes; /* malloc'd bytes, for xs_mem_usage */
};

struct xs {
	XML_Parser p;
	const struct xs_callbacks *cb;
	void *ud;
	struct xs_limits lim;
	struct xs_arena arena;
	struct xs_error err;
	int err_rc;

	enum xs_state state;
	enum xs_cond deferred; /* found in character data, raised at the next markup */
	const char *deferred_text;
	bool in_feed;	    /* inside xs_feed */
	bool in_parse;	    /* inside XML_Parse: expat is on the stack */
	bool reset_pending; /* xs_reset called from a callback */
	bool dialback;	    /* root declared jabber:server:dialback */
	const char *content_ns;

	uint32_t depth;	     /* open elements, the stream root included */
	uint32_t nelems;     /* elements in the current stanza */
	struct xs_elem *cur; /* innermost open element of the current stanza */

	uint64_t fed;	       /* stream bytes handed to expat */
	uint64_t mark;	       /* where the unit being received began */
	uint64_t stanza_start; /* offset of the current stanza's '<' */
	uint64_t chunk_base;   /* stream offset of the current xs_feed input */
	const char *chunk;     /* current xs_feed input */
	size_t chunk_len;
	uint64_t ev_end;  /* end offset of the event being delivered */
	uint64_t stop_at; /* where parsing stopped on purpose */
	size_t unparsed;

	size_t expat_mem; /* bytes expat holds, headers included */
	int64_t idx_base; /* stream offset = idx_base + expat's byte index */
	bool priming;	  /* parsing the synthetic header of a replacement parser */
	struct buf hdr;	  /* root namespace declarations, then the synthetic header */
};

const struct xs_limits xs_limits_preauth = {
    .max_stanza_bytes = 8 * 1024,
    .max_elements = 32,
    .max_depth = 16,
    .max_attrs = 16,
    .max_text_bytes = 8 * 1024,
};

const struct xs_limits xs_limits_postauth = {
    .max_stanza_bytes = 256 * 1024,
    .max_elements = 1024,
    .max_depth = 32,
    .max_attrs = 32,
    .max_text_bytes = 256 * 1024,
};

static const char xs__empty[1] = "";
/* Attributes in the XML namespace point here, so serialisation can tell them apart. */
static const char xs__ns_xml[] = XS_NS_XML;

/* ---- conditions ---------------------------------------------------------------- */

/* clang-format off */
#define XS__COND_STR(name, str) [XS_COND_##name] = str,
static const char *const cond_names[XS_COND__COUNT] = {
	[XS_COND_NONE] = "",
	XS_COND_MAP(XS__COND_STR)
};
#undef XS__COND_STR
/* clang-format on */

const char *xs_cond_name(enum xs_cond cond)
{
	if ((unsigned)cond >= XS_COND__COUNT)
		return "";
	return cond_names[cond];
}

enum xs_cond xs_cond_from_name(const char *name, size_t n)
{
	for (unsigned i = 1; i < XS_COND__COUNT; i++)
		if (strlen(cond_names[i]) == n && memcmp(cond_names[i], name, n) == 0)
			return (enum xs_cond)i;
	return XS_COND_NONE;
}

/* ---- memory accounting for expat ----------------------------------------------- */

/* Expat's allocator hooks take no user pointer: the stream whose expat call is on the
 * stack is published here, and each block remembers its owner in a header so that
 * realloc and free (which may run after the owner changed) charge the right counter. */
static _Thread_local struct xs *xs__current;

struct xs_memhdr {
	size_t size;
	size_t *counter;
};
#define XS_MEMHDR 16
_Static_assert(sizeof(struct xs_memhdr) <= XS_MEMHDR, "header fits");

static void *xs__malloc(size_t n)
{
	if (n > SIZE_MAX - XS_MEMHDR)
		return NULL;
	char *b = malloc(n + XS_MEMHDR);
	if (!b)
		return NULL;
	struct xs_memhdr *h = (struct xs_memhdr *)b;
	h->size = n + XS_MEMHDR;
	h->counter = xs__current ? &xs__current->expat_mem : NULL;
	if (h->counter)
		*h->counter += h->size;
	return b + XS_MEMHDR;
}

static void xs__free(void *p)
{
	if (!p)
		return;
	struct xs_memhdr *h = (struct xs_memhdr *)((char *)p - XS_MEMHDR);
	if (h->counter)
		*h->counter -= h->size;
	free(h);
}

static void *xs__realloc(void *p, size_t n)
{
	if (!p)
		return xs__malloc(n);
	if (n > SIZE_MAX - XS_MEMHDR)
		return NULL;
	struct xs_memhdr *h = (struct xs_memhdr *)((char *)p - XS_MEMHDR);
	size_t old = h->size;
	size_t *counter = h->counter;
	struct xs_memhdr *nh = realloc(h, n + XS_MEMHDR);
	if (!nh)
		return NULL;
	nh->size = n + XS_MEMHDR;
	if (counter)
		*counter = *counter - old + nh->size;
	return (char *)nh + XS_MEMHDR;
}

static const XML_Memory_Handling_Suite xs__mem = {xs__malloc, xs__realloc, xs__free};

/* ---- arena ------------------------------------------------------------------------ */

/* Frees every block but the first, and the first too unless keep_first and it is the
 * small standard one (an oversized first block is never kept on an idle stream). */
static void arena_release(struct xs_arena *a, bool keep_first)
{
	if (keep_first && a->first && a->first->size > XS_ARENA_FIRST - sizeof(struct xs_block))
		keep_first = false;
	struct xs_block *b = keep_first && a->first ? a->first->next : a->first;
	while (b) {
		struct xs_block *next = b->next;
		a->bytes -= sizeof *b + b->size;
		free(b);
		b = next;
	}
	if (keep_first && a->first) {
		a->first->next = NULL;
		a->cur = a->first;
		a->ptr = a->first->data;
		a->end = a->first->data + a->first->size;
	} else {
		a->first = a->cur = NULL;
		a->ptr = a->end = NULL;
	}
}

static void *arena_grow(struct xs_arena *a, size_t n)
{
	size_t size = XS_ARENA_FIRST - sizeof(struct xs_block);
	if (a->cur) {
		size = 2 * a->cur->size;
		if (size > XS_ARENA_MAXBLOCK)
			size = XS_ARENA_MAXBLOCK;
	}
	if (size < n)
		size = n;
	struct xs_block *b = malloc(sizeof *b + size);
	if (!b)
		return NULL;
	b->next = NULL;
	b->size = size;
	a->bytes += sizeof *b + size;
	if (a->cur)
		a->cur->next = b;
	else
		a->first = b;
	a->cur = b;
	a->ptr = b->data + n;
	a->end = b->data + size;
	return b->data;
}

/* n bytes aligned for any tree struct (8). */
static inline void *arena_alloc(struct xs_arena *a, size_t n)
{
	uintptr_t p = ((uintptr_t)a->ptr + 7) & ~(uintptr_t)7;
	if (a->ptr && p + n <= (uintptr_t)a->end) {
		a->ptr = (char *)p + n;
		return (void *)p;
	}
	return arena_grow(a, n);
}

/* A NUL-terminated copy of s[0..n). */
static inline char *arena_strdup(struct xs_arena *a, const char *s, size_t n)
{
	char *d;
	if (a->ptr && (size_t)(a->end - a->ptr) > n) {
		d = a->ptr;
		a->ptr += n + 1;
	} else if (!(d = arena_grow(a, n + 1))) {
		return NULL;
	}
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

/* ---- handlers ----------------------------------------------------------------------- */

static void xs__fail(struct xs *xs, enum xs_cond cond, enum xs_app app, const char *text, int rc)
{
	if (xs->state != XS_RUNNING)
		return;
	xs->state = XS_FAILED;
	xs->err.cond = cond;
	xs->err.app = app;
	xs->err.text = text ? text : "";
	xs->err_rc = rc;
	if (xs->in_parse)
		XML_StopParser(xs->p, XML_FALSE);
	if (xs->cb && xs->cb->on_error)
		xs->cb->on_error(xs->ud, &xs->err);
}

/* True when a handler must do nothing: not running, or a deferred error is raised now. */
static bool halted(struct xs *xs)
{
	if (xs->state != XS_RUNNING)
		return true;
	if (xs->deferred == XS_COND_NONE)
		return false;
	xs__fail(xs, xs->deferred, XS_APP_NONE, xs->deferred_text, PE_PROTO);
	return true;
}

static inline void fail_policy(struct xs *xs, const char *text)
{
	xs__fail(xs, XS_COND_POLICY_VIOLATION, XS_APP_NONE, text, PE_PROTO);
}

static inline void fail_restricted(struct xs *xs, const char *text)
{
	if (!halted(xs))
		xs__fail(xs, XS_COND_RESTRICTED_XML, XS_APP_NONE, text, PE_PROTO);
}

static inline void fail_nomem(struct xs *xs)
{
	xs__fail(xs, XS_COND_RESOURCE_CONSTRAINT, XS_APP_NONE, "out of memory", PE_NOMEM);
}

static inline uint64_t ev_start(const struct xs *xs)
{
	return (uint64_t)(xs->idx_base + XML_GetCurrentByteIndex(xs->p));
}

static inline uint64_t ev_end(const struct xs *xs)
{
	return (uint64_t)(xs->idx_base + XML_GetCurrentByteIndex(xs->p) +
			  XML_GetCurrentByteCount(xs->p));
}

/* Splits an expat name "uri SEP local [SEP prefix]" or "local". */
static inline void split_name(const char *s, struct xs_str *ns, struct xs_str *local,
			      const char **prefix)
{
	const char *a = strchr(s, XS_SEP);
	if (!a) {
		ns->p = xs__empty;
		ns->n = 0;
		local->p = s;
		local->n = strlen(s);
		*prefix = NULL;
		return;
	}
	ns->p = s;
	ns->n = (size_t)(a - s);
	local->p = a + 1;
	const char *b = strchr(a + 1, XS_SEP);
	if (b) {
		local->n = (size_t)(b - (a + 1));
		*prefix = b + 1;
	} else {
		local->n = strlen(a + 1);
		*prefix = NULL;
	}
}

static inline bool str_eq(struct xs_str a, const char *b, size_t bn)
{
	return a.n == bn && memcmp(a.p, b, bn) == 0;
}

#define STR_EQ_LIT(s, lit) str_eq((s), (lit), sizeof(lit) - 1)

/* Builds an element (no children yet) from expat's name and attributes. */
static struct xs_elem *build_elem(struct xs *xs, const XML_Char *name, const XML_Char **atts,
				  uint32_t nattrs, struct xs_elem *parent)
{
	struct xs_arena *a = &xs->arena;
	struct xs_elem *el = arena_alloc(a, sizeof *el);
	if (!el)
		return NULL;
	struct xs_str ns, local;
	const char *prefix;
	split_name(name, &ns, &local, &prefix);

	el->node.next = NULL;
	el->node.type = XS_NODE_ELEM;
	el->parent = parent;
	/* Share the namespace string with the parent (or the stream's content namespace)
	 * when equal: saves the copy, and makes serialisation's comparison a pointer test. */
	if (parent && parent->ns.n == ns.n && memcmp(parent->ns.p, ns.p, ns.n) == 0) {
		el->ns = parent->ns;
	} else if (ns.n == 0) {
		el->ns.p = xs__empty;
		el->ns.n = 0;
	} else if (xs->content_ns && strlen(xs->content_ns) == ns.n &&
		   memcmp(xs->content_ns, ns.p, ns.n) == 0) {
		el->ns.p = xs->content_ns;
		el->ns.n = ns.n;
	} else {
		if (!(el->ns.p = arena_strdup(a, ns.p, ns.n)))
			return NULL;
		el->ns.n = ns.n;
	}
	if (!(el->name.p = arena_strdup(a, local.p, local.n)))
		return NULL;
	el->name.n = local.n;
	el->nattrs = nattrs;
	el->ntext = 0;
	el->children = el->last = NULL;
	el->text.p = xs__empty;
	el->text.n = 0;
	el->attrs = NULL;
	if (nattrs) {
		if (!(el->attrs = arena_alloc(a, nattrs * sizeof *el->attrs)))
			return NULL;
		for (uint32_t i = 0; i < nattrs; i++) {
			struct xs_attr *at = &el->attrs[i];
			split_name(atts[2 * i], &ns, &local, &prefix);
			if (ns.n == 0) {
				at->ns.p = xs__empty;
				at->ns.n = 0;
				at->prefix = NULL;
			} else if (STR_EQ_LIT(ns, XS_NS_XML)) {
				at->ns.p = xs__ns_xml;
				at->ns.n = sizeof xs__ns_xml - 1;
				at->prefix = "xml";
			} else {
				if (!(at->ns.p = arena_strdup(a, ns.p, ns.n)))
					return NULL;
				at->ns.n = ns.n;
				at->prefix = NULL;
				if (prefix &&
				    !(at->prefix = arena_strdup(a, prefix, strlen(prefix))))
					return NULL;
			}
			if (!(at->name.p = arena_strdup(a, local.p, local.n)))
				return NULL;
			at->name.n = local.n;
			size_t vn = strlen(atts[2 * i + 1]);
			if (!(at->value.p = arena_strdup(a, atts[2 * i + 1], vn)))
				return NULL;
			at->value.n = vn;
		}
	}
	return el;
}

static void on_root(struct xs *xs, const XML_Char *name, const XML_Char **atts, uint32_t nattrs)
{
	if (xs->priming) {
		xs->depth = 1;
		return;
	}
	struct xs_str ns, local;
	const char *prefix;
	split_name(name, &ns, &local, &prefix);
	if (!STR_EQ_LIT(local, "stream")) {
		xs__fail(xs, XS_COND_BAD_FORMAT, XS_APP_NONE, "root element is not stream",
			 PE_PROTO);
		return;
	}
	if (!STR_EQ_LIT(ns, XS_NS_STREAMS)) {
		xs__fail(xs, XS_COND_INVALID_NAMESPACE, XS_APP_NONE, "wrong stream namespace",
			 PE_PROTO);
		return;
	}
	if (!xs->content_ns) {
		xs__fail(xs, XS_COND_INVALID_NAMESPACE, XS_APP_NONE,
			 "content namespace not jabber:server or jabber:client", PE_PROTO);
		return;
	}
	if (nattrs > xs->lim.max_attrs) {
		fail_policy(xs, "too many attributes");
		return;
	}
	/* Namespace declarations below the root are expat's business only. */
	XML_SetNamespaceDeclHandler(xs->p, NULL, NULL);
	/* The root is in the streams namespace and the default one is the content one, so
	 * the root has a prefix. Keep "<prefix:stream decls>" for a replacement parser. */
	struct buf syn;
	buf_init(&syn, 0);
	if (!prefix || buf_append(&syn, "<", 1) || buf_append(&syn, prefix, strlen(prefix)) ||
	    buf_append(&syn, ":stream", 7) || buf_append(&syn, buf_head(&xs->hdr), xs->hdr.len) ||
	    buf_append(&syn, ">", 1)) {
		buf_deinit(&syn);
		fail_nomem(xs);
		return;
	}
	buf_deinit(&xs->hdr);
	xs->hdr = syn;

	struct xs_elem *root = build_elem(xs, name, atts, nattrs, NULL);
	if (!root) {
		fail_nomem(xs);
		return;
	}
	struct xs_open o = {
	    .to = xs_elem_attr(root, NULL, "to"),
	    .from = xs_elem_attr(root, NULL, "from"),
	    .id = xs_elem_attr(root, NULL, "id"),
	    .version = xs_elem_attr(root, NULL, "version"),
	    .lang = xs_elem_attr(root, XS_NS_XML, "lang"),
	    .content_ns = xs->content_ns,
	    .dialback = xs->dialback,
	    .root = root,
	};
	xs->depth = 1;
	xs->mark = xs->ev_end = ev_end(xs);
	if (xs->cb && xs->cb->on_open)
		xs->cb->on_open(xs->ud, &o);
	arena_release(&xs->arena, true);
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
	struct xs *xs = ud;
	if (halted(xs))
		return;
	uint32_t nattrs = 0;
	while (atts[2 * nattrs])
		nattrs++;
	if (xs->depth == 0) {
		on_root(xs, name, atts, nattrs);
		return;
	}
	if (xs->depth == 1) {
		xs->stanza_start = ev_start(xs);
		xs->nelems = 0;
		xs->cur = NULL;
	}
	/* xs->depth is the stanza depth the new element will have. */
	if (xs->depth > xs->lim.max_depth) {
		fail_policy(xs, "nesting too deep");
		return;
	}
	if (++xs->nelems > xs->lim.max_elements) {
		fail_policy(xs, "too many elements");
		return;
	}
	if (nattrs > xs->lim.max_attrs) {
		fail_policy(xs, "too many attributes");
		return;
	}
	struct xs_elem *parent = xs->cur;
	struct xs_elem *el = build_elem(xs, name, atts, nattrs, parent);
	if (!el) {
		fail_nomem(xs);
		return;
	}
	if (parent) {
		if (parent->last)
			parent->last->next = &el->node;
		else
			parent->children = &el->node;
		parent->last = &el->node;
	}
	xs->cur = el;
	xs->depth++;
}

/* Makes el->text the concatenation of its text children; copies only for mixed content. */
static bool finish_text(struct xs *xs, struct xs_elem *el)
{
	if (el->ntext == 0)
		return true;
	if (el->ntext == 1) {
		for (const struct xs_node *n = el->children; n; n = n->next)
			if (n->type == XS_NODE_TEXT) {
				el->text = ((const struct xs_text *)n)->text;
				return true;
			}
		return true;
	}
	char *d = arena_alloc(&xs->arena, el->text.n + 1);
	if (!d)
		return false;
	size_t off = 0;
	for (const struct xs_node *n = el->children; n; n = n->next)
		if (n->type == XS_NODE_TEXT) {
			const struct xs_text *t = (const struct xs_text *)n;
			memcpy(d + off, t->text.p, t->text.n);
			off += t->text.n;
		}
	d[off] = '\0';
	el->text.p = d;
	return true;
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
	struct xs *xs = ud;
	(void)name;
	if (halted(xs))
		return;
	if (xs->depth == 1) {
		xs->depth = 0;
		xs->state = XS_CLOSED;
		xs->stop_at = xs->ev_end = ev_end(xs);
		XML_StopParser(xs->p, XML_FALSE);
		if (xs->cb && xs->cb->on_close)
			xs->cb->on_close(xs->ud);
		return;
	}
	struct xs_elem *el = xs->cur;
	if (!finish_text(xs, el)) {
		fail_nomem(xs);
		return;
	}
	xs->cur = el->parent;
	if (--xs->depth > 1)
		return;

	uint64_t end = ev_end(xs);
	struct xs_stanza st = {
	    .el = el,
	    .offset = xs->stanza_start,
	    .bytes = (size_t)(end - xs->stanza_start),
	    .raw = NULL,
	};
	if (xs->stanza_start >= xs->chunk_base && end <= xs->chunk_base + xs->chunk_len)
		st.raw = xs->chunk + (xs->stanza_start - xs->chunk_base);
	xs->mark = xs->ev_end = end;
	if (xs->cb && xs->cb->on_stanza)
		xs->cb->on_stanza(xs->ud, &st);
	xs->cur = NULL;
	arena_release(&xs->arena, true);
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
	struct xs *xs = ud;
	if (xs->state != XS_RUNNING || xs->deferred != XS_COND_NONE || len <= 0)
		return;
	size_t n = (size_t)len;
	if (xs->depth <= 1) {
		/* Between stanzas only whitespace (keep-alives) is allowed; it ends the unit.
		 * Whitespace before other text still counts as received, so that the mark is
		 * the same however expat cut the run into callbacks. */
		for (size_t i = 0; i < n; i++)
			if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') {
				xs->deferred = XS_COND_BAD_FORMAT;
				xs->deferred_text = "text outside stanzas";
				xs->mark = ev_start(xs) + i;
				return;
			}
		xs->mark = ev_end(xs);
		return;
	}
	struct xs_elem *el = xs->cur;
	if (el->text.n > xs->lim.max_text_bytes || n > xs->lim.max_text_bytes - el->text.n) {
		xs->deferred = XS_COND_POLICY_VIOLATION;
		xs->deferred_text = "text too long";
		return;
	}
	struct xs_arena *a = &xs->arena;
	struct xs_text *t = (struct xs_text *)el->last;
	if (t && t->node.type == XS_NODE_TEXT) {
		/* Expat splits character data at entities, newlines and buffer ends. Grow the
		 * run in place when it is the arena's last allocation (nearly always). */
		char *tp = (char *)t->text.p;
		if (tp + t->text.n + 1 == a->ptr && (size_t)(a->end - a->ptr) >= n) {
			memcpy(tp + t->text.n, s, n);
			a->ptr += n;
		} else {
			char *d = arena_alloc(a, t->text.n + n + 1);
			if (!d) {
				fail_nomem(xs);
				return;
			}
			memcpy(d, tp, t->text.n);
			memcpy(d + t->text.n, s, n);
			t->text.p = d;
			tp = d;
		}
		t->text.n += n;
		tp[t->text.n] = '\0';
	} else {
		t = arena_alloc(a, sizeof *t);
		char *d = t ? arena_strdup(a, s, n) : NULL;
		if (!d) {
			fail_nomem(xs);
			return;
		}
		t->node.next = NULL;
		t->node.type = XS_NODE_TEXT;
		t->text.p = d;
		t->text.n = n;
		if (el->last)
			el->last->next = &t->node;
		else
			el->children = &t->node;
		el->last = &t->node;
		el->ntext++;
	}
	el->text.n += n;
}

static void XMLCALL on_ns_start(void *ud, const XML_Char *prefix, const XML_Char *uri)
{
	struct xs *xs = ud;
	if (xs->state != XS_RUNNING || xs->depth != 0 || xs->priming)
		return;
	if (!uri)
		uri = "";
	if (buf_append(&xs->hdr, " xmlns", 6) ||
	    (prefix &&
	     (buf_append(&xs->hdr, ":", 1) || buf_append(&xs->hdr, prefix, strlen(prefix)))) ||
	    buf_append(&xs->hdr, "='", 2) || xs_escape(&xs->hdr, uri, strlen(uri), true) ||
	    buf_append(&xs->hdr, "'", 1)) {
		fail_nomem(xs);
		return;
	}
	if (!prefix) {
		if (strcmp(uri, XS_NS_SERVER) == 0)
			xs->content_ns = XS_NS_SERVER;
		else if (strcmp(uri, XS_NS_CLIENT) == 0)
			xs->content_ns = XS_NS_CLIENT;
		else
			xs->content_ns = NULL;
	} else if (strcmp(uri, XS_NS_DIALBACK) == 0) {
		xs->dialback = true;
	}
}

static void XMLCALL on_xmldecl(void *ud, const XML_Char *version, const XML_Char *encoding,
			       int standalone)
{
	struct xs *xs = ud;
	(void)standalone;
	if (halted(xs))
		return;
	if (encoding && strcasecmp(encoding, "UTF-8") != 0) {
		xs__fail(xs, XS_COND_UNSUPPORTED_ENCODING, XS_APP_NONE, "encoding is not UTF-8",
			 PE_PROTO);
		return;
	}
	if (version && strcmp(version, "1.0") != 0)
		xs__fail(xs, XS_COND_BAD_FORMAT, XS_APP_NONE, "XML version is not 1.0", PE_PROTO);
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
			       const XML_Char *pubid, int has_internal_subset)
{
	(void)name, (void)sysid, (void)pubid, (void)has_internal_subset;
	fail_restricted(ud, "DOCTYPE not allowed");
}

static void XMLCALL on_entity_decl(void *ud, const XML_Char *name, int is_pe, const XML_Char *value,
				   int value_len, const XML_Char *base, const XML_Char *sysid,
				   const XML_Char *pubid, const XML_Char *notation)
{
	(void)name, (void)is_pe, (void)value, (void)value_len, (void)base, (void)sysid, (void)pubid,
	    (void)notation;
	fail_restricted(ud, "entity declaration not allowed");
}

static void XMLCALL on_comment(void *ud, const XML_Char *data)
{
	(void)data;
	fail_restricted(ud, "comment not allowed");
}

static void XMLCALL on_pi(void *ud, const XML_Char *target, const XML_Char *data)
{
	(void)target, (void)data;
	fail_restricted(ud, "processing instruction not allowed");
}

static void XMLCALL on_skipped(void *ud, const XML_Char *name, int is_pe)
{
	(void)name, (void)is_pe;
	fail_restricted(ud, "entity reference not allowed");
}

static void XMLCALL on_unparsed(void *ud, const XML_Char *name, const XML_Char *base,
				const XML_Char *sysid, const XML_Char *pubid,
				const XML_Char *notation)
{
	(void)name, (void)base, (void)sysid, (void)pubid, (void)notation;
	fail_restricted(ud, "unparsed entity not allowed");
}

static int XMLCALL on_external(XML_Parser p, const XML_Char *context, const XML_Char *base,
			       const XML_Char *sysid, const XML_Char *pubid)
{
	(void)context, (void)base, (void)sysid, (void)pubid;
	fail_restricted(XML_GetUserData(p), "external entity not allowed");
	return XML_STATUS_ERROR;
}

/* Maps an expat error we did not raise ourselves to a stream error. It wins over a
 * deferred one: in every split expat finds it before the next markup event. */
static void fail_expat(struct xs *xs)
{
	enum XML_Error e = XML_GetErrorCode(xs->p);
	switch (e) {
	case XML_ERROR_NO_MEMORY:
		fail_nomem(xs);
		return;
	case XML_ERROR_UNDEFINED_ENTITY:
	case XML_ERROR_RECURSIVE_ENTITY_REF:
	case XML_ERROR_BINARY_ENTITY_REF:
	case XML_ERROR_ATTRIBUTE_EXTERNAL_ENTITY_REF:
	case XML_ERROR_EXTERNAL_ENTITY_HANDLING:
	case XML_ERROR_ENTITY_DECLARED_IN_PE:
	case XML_ERROR_NOT_STANDALONE:
	case XML_ERROR_MISPLACED_XML_PI:
		xs__fail(xs, XS_COND_RESTRICTED_XML, XS_APP_NONE, XML_ErrorString(e), PE_PROTO);
		return;
	case XML_ERROR_UNKNOWN_ENCODING:
	case XML_ERROR_INCORRECT_ENCODING:
		xs__fail(xs, XS_COND_UNSUPPORTED_ENCODING, XS_APP_NONE, XML_ErrorString(e),
			 PE_PROTO);
		return;
	default:
		xs__fail(xs, XS_COND_NOT_WELL_FORMED, XS_APP_NONE, XML_ErrorString(e), PE_PROTO);
		return;
	}
}

static unsigned long hash_salt(void)
{
	unsigned long salt;
	if (getrandom(&salt, sizeof salt, GRND_NONBLOCK) == (ssize_t)sizeof salt)
		return salt;
	/* No kernel entropy (seccomp, ancient kernel): still vary per process and parser;
	 * the salt only protects expat's hash tables against flooding. */
	static unsigned long counter;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t z = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)getpid() ^
		     (uint64_t)(uintptr_t)&salt ^ (++counter * 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return (unsigned long)(z ^ (z >> 31));
}

static int parser_create(struct xs *xs)
{
	static const XML_Char sep[] = {XS_SEP, 0};
	struct xs *prev = xs__current;
	xs__current = xs;
	XML_Parser p = XML_ParserCreate_MM("UTF-8", &xs__mem, sep);
	xs__current = prev;
	if (!p)
		return PE_NOMEM;
	XML_SetHashSalt(p, hash_salt());
#ifdef HAVE_XML_SETREPARSEDEFERRALENABLED
	/* Otherwise expat may hold back a complete stanza until more bytes arrive. */
	XML_SetReparseDeferralEnabled(p, XML_FALSE);
#endif
	XML_SetReturnNSTriplet(p, 1);
	XML_SetParamEntityParsing(p, XML_PARAM_ENTITY_PARSING_NEVER);
	XML_SetUserData(p, xs);
	XML_SetElementHandler(p, on_start, on_end);
	XML_SetCharacterDataHandler(p, on_text);
	XML_SetNamespaceDeclHandler(p, on_ns_start, NULL);
	XML_SetXmlDeclHandler(p, on_xmldecl);
	XML_SetStartDoctypeDeclHandler(p, on_doctype);
	XML_SetEntityDeclHandler(p, on_entity_decl);
	XML_SetUnparsedEntityDeclHandler(p, on_unparsed);
	XML_SetExternalEntityRefHandler(p, on_external);
	XML_SetSkippedEntityHandler(p, on_skipped);
	XML_SetCommentHandler(p, on_comment);
	XML_SetProcessingInstructionHandler(p, on_pi);
	xs->p = p;
	return 0;
}

/* ---- public -------------------------------------------------------------------------- */

static bool limits_valid(const struct xs_limits *l)
{
	return l && l->max_stanza_bytes && l->max_stanza_bytes <= 64u * 1024 * 1024 &&
	       l->max_elements && l->max_depth && l->max_depth <= 1024 && l->max_attrs &&
	       l->max_text_bytes;
}

struct xs *xs_new(const struct xs_limits *lim, const struct xs_callbacks *cb, void *ud)
{
	if (!limits_valid(lim))
		return NULL;
	struct xs *xs = calloc(1, sizeof *xs);
	if (!xs)
		return NULL;
	xs->lim = *lim;
	xs->cb = cb;
	xs->ud = ud;
	xs->state = XS_RUNNING;
	xs->err.text = "";
	buf_init(&xs->hdr, 0);
	return xs;
}

static void parser_free(struct xs *xs)
{
	if (xs->p) {
		XML_ParserFree(xs->p);
		xs->p = NULL;
	}
}

void xs_free(struct xs *xs)
{
	if (!xs)
		return;
	assert(!xs->in_feed);
	parser_free(xs);
	buf_deinit(&xs->hdr);
	arena_release(&xs->arena, false);
	free(xs);
}

static void do_reset(struct xs *xs)
{
	parser_free(xs);
	buf_deinit(&xs->hdr);
	xs->idx_base = 0;
	arena_release(&xs->arena, true);
	xs->state = XS_RUNNING;
	xs->deferred = XS_COND_NONE;
	xs->reset_pending = false;
	xs->err = (struct xs_error){.cond = XS_COND_NONE, .text = ""};
	xs->err_rc = 0;
	xs->content_ns = NULL;
	xs->dialback = false;
	xs->depth = xs->nelems = 0;
	xs->cur = NULL;
	xs->fed = xs->mark = xs->stanza_start = 0;
}

void xs_reset(struct xs *xs)
{
	if (xs->in_feed) {
		xs_stop(xs);
		xs->reset_pending = true;
		return;
	}
	do_reset(xs);
}

void xs_stop(struct xs *xs)
{
	if (xs->state != XS_RUNNING)
		return;
	xs->state = XS_STOPPED;
	if (xs->in_parse) {
		xs->stop_at = xs->ev_end;
		XML_StopParser(xs->p, XML_FALSE);
	}
}

/* Replaces the parser between stanzas (see the top of the file). Expat holds no bytes
 * then: everything fed ended with the last event. */
static void shed_parser(struct xs *xs)
{
	parser_free(xs);
	if (parser_create(xs) < 0) {
		fail_nomem(xs);
		return;
	}
	struct xs *prev = xs__current;
	xs__current = xs;
	xs->depth = 0;
	xs->priming = xs->in_parse = true;
	enum XML_Status st =
	    XML_Parse(xs->p, (const char *)buf_head(&xs->hdr), (int)xs->hdr.len, XML_FALSE);
	xs->priming = xs->in_parse = false;
	xs__current = prev;
	if (st != XML_STATUS_OK || xs->depth != 1) {
		if (XML_GetErrorCode(xs->p) == XML_ERROR_NO_MEMORY)
			fail_nomem(xs);
		else
			xs__fail(xs, XS_COND_INTERNAL_SERVER_ERROR, XS_APP_NONE,
				 "parser restart failed", PE_PROTO);
		return;
	}
	XML_SetNamespaceDeclHandler(xs->p, NULL, NULL);
	xs->idx_base = (int64_t)xs->fed - (int64_t)xs->hdr.len;
}

int xs_feed(struct xs *xs, const char *p, size_t n)
{
	xs->unparsed = 0;
	switch (xs->state) {
	case XS_RUNNING:
		break;
	case XS_FAILED:
		return xs->err_rc;
	case XS_CLOSED:
		return PE_CLOSED;
	case XS_STOPPED:
		return PE_STATE;
	}
	if (n == 0)
		return 0;
	assert(!xs->in_feed);
	if (!xs->p && parser_create(xs) < 0) {
		fail_nomem(xs);
		return xs->err_rc;
	}
	struct xs *prev = xs__current;
	xs__current = xs;
	xs->in_feed = true;
	xs->chunk = p;
	xs->chunk_len = n;
	xs->chunk_base = xs->fed;
	size_t off = 0;
	while (off < n && xs->state == XS_RUNNING) {
		/* Expat switches to UTF-16 on a BOM or a NUL in the first two bytes even when
		 * told the input is UTF-8, and looks at two bytes only when it has them. So it
		 * gets the first byte alone, and each of the two is checked before it sees it:
		 * the outcome is the same however the input is split. */
		if (xs->fed < 2) {
			uint8_t c = (uint8_t)p[off];
			if (c == 0 || (xs->fed == 0 && (c == 0xfe || c == 0xff))) {
				xs__fail(xs, XS_COND_UNSUPPORTED_ENCODING, XS_APP_NONE,
					 "encoding is not UTF-8", PE_PROTO);
				break;
			}
		}
		uint64_t pending = xs->fed - xs->mark;
		if (pending >= xs->lim.max_stanza_bytes) {
			xs__fail(xs, XS_COND_POLICY_VIOLATION, XS_APP_STANZA_TOO_BIG,
				 "stanza too big", PE_PROTO);
			break;
		}
		size_t k = n - off;
		if (k > xs->lim.max_stanza_bytes - pending)
			k = (size_t)(xs->lim.max_stanza_bytes - pending);
		if (k > XS_CHUNK)
			k = XS_CHUNK;
		if (xs->fed == 0)
			k = 1;
		xs->in_parse = true;
		enum XML_Status st = XML_Parse(xs->p, p + off, (int)k, XML_FALSE);
		xs->in_parse = false;
		xs->fed += k;
		off += k;
		if (st == XML_STATUS_ERROR && xs->state == XS_RUNNING)
			fail_expat(xs);
	}
	xs->in_feed = false;
	xs__current = prev;
	if (xs->state == XS_STOPPED || xs->state == XS_CLOSED) {
		uint64_t used = xs->stop_at - xs->chunk_base;
		xs->unparsed = used < n ? n - (size_t)used : 0;
	}
	xs->chunk = NULL;
	xs->chunk_len = 0;
	if (xs->state != XS_RUNNING) {
		/* This stream is over (or waits for a reset): hold nothing while the caller
		 * writes its own error or close. */
		parser_free(xs);
		arena_release(&xs->arena, false);
	} else if (xs->depth <= 1) {
		arena_release(&xs->arena, false);
	}
	if (xs->state == XS_RUNNING && xs->depth == 1 && xs->fed == xs->mark &&
	    xs->expat_mem > XS_EXPAT_SHED)
		shed_parser(xs);
	int rc = xs->state == XS_FAILED ? xs->err_rc : 0;
	if (xs->reset_pending)
		do_reset(xs);
	return rc;
}

size_t xs_unparsed(const struct xs *xs)
{
	return xs->unparsed;
}

int xs_set_limits(struct xs *xs, const struct xs_limits *lim)
{
	if (!limits_valid(lim))
		return PE_INVAL;
	xs->lim = *lim;
	return 0;
}

const struct xs_limits *xs_get_limits(const struct xs *xs)
{
	return &xs->lim;
}

const struct xs_error *xs_error(const struct xs *xs)
{
	return &xs->err;
}

bool xs_is_open(const struct xs *xs)
{
	return xs->state == XS_RUNNING && xs->depth > 0;
}

const char *xs_content_ns(const struct xs *xs)
{
	return xs->depth > 0 ? xs->content_ns : NULL;
}

size_t xs_mem_usage(const struct xs *xs)
{
	return sizeof *xs + xs->arena.bytes + xs->expat_mem + xs->hdr.cap;
}

/* ---- tree helpers ------------------------------------------------------------------ */

static inline bool ns_match(struct xs_str have, const char *want)
{
	if (!want)
		return have.n == 0;
	size_t n = strlen(want);
	return have.n == n && memcmp(have.p, want, n) == 0;
}

const char *xs_elem_attr(const struct xs_elem *el, const char *ns, const char *name)
{
	size_t nn = strlen(name);
	for (uint32_t i = 0; i < el->nattrs; i++) {
		const struct xs_attr *a = &el->attrs[i];
		if (a->name.n == nn && memcmp(a->name.p, name, nn) == 0 && ns_match(a->ns, ns))
			return a->value.p;
	}
	return NULL;
}

const struct xs_elem *xs_elem_child(const struct xs_elem *el, const char *ns, const char *name)
{
	size_t nn = strlen(name);
	for (const struct xs_node *n = el->children; n; n = n->next) {
		if (n->type != XS_NODE_ELEM)
			continue;
		const struct xs_elem *c = (const struct xs_elem *)n;
		if (c->name.n == nn && memcmp(c->name.p, name, nn) == 0 &&
		    (!ns || ns_match(c->ns, *ns ? ns : NULL)))
			return c;
	}
	return NULL;
}

static const struct xs_elem *next_elem(const struct xs_node *n)
{
	for (; n; n = n->next)
		if (n->type == XS_NODE_ELEM)
			return (const struct xs_elem *)n;
	return NULL;
}

const struct xs_elem *xs_elem_first(const struct xs_elem *el)
{
	return next_elem(el->children);
}

const struct xs_elem *xs_elem_next(const struct xs_elem *el)
{
	return next_elem(el->node.next);
}

const char *xs_elem_text(const struct xs_elem *el, size_t *len)
{
	if (len)
		*len = el->text.n;
	return el->text.p;
}

const char *xs_elem_lang(const struct xs_elem *el)
{
	for (; el; el = el->parent) {
		const char *v = xs_elem_attr(el, XS_NS_XML, "lang");
		if (v)
			return v;
	}
	return NULL;
}

/* ---- output ---------------------------------------------------------------------------- */

/* What each byte needs: copied as is, escaped in text and attributes, escaped in
 * attributes only, forbidden by XML 1.0, or the start of a multi-byte sequence to check. */
enum {
	EC_PLAIN = 0,
	EC_ESC,	 /* & < > CR */
	EC_ATTR, /* ' " TAB LF */
	EC_BAD,	 /* C0 controls, DEL is allowed; 0x80..0xC1, 0xF5..0xFF */
	EC_UTF8, /* lead byte 0xC2..0xF4 */
};

static const uint8_t esc_class[256] = {
    [0x00 ... 0x08] = EC_BAD,
    ['\t'] = EC_ATTR,
    ['\n'] = EC_ATTR,
    [0x0b ... 0x0c] = EC_BAD,
    ['\r'] = EC_ESC,
    [0x0e ... 0x1f] = EC_BAD,
    ['&'] = EC_ESC,
    ['<'] = EC_ESC,
    ['>'] = EC_ESC,
    ['\''] = EC_ATTR,
    ['"'] = EC_ATTR,
    [0x80 ... 0xc1] = EC_BAD,
    [0xc2 ... 0xf4] = EC_UTF8,
    [0xf5 ... 0xff] = EC_BAD,
};

/* Length of the valid XML character encoded at s (RFC 3629 and XML 1.0 Char), or 0. */
static size_t utf8_char(const uint8_t *s, size_t n)
{
	uint8_t c = s[0];
	if (c < 0xe0) {
		return n >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
	}
	if (c < 0xf0) {
		if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		if (c == 0xe0 && s[1] < 0xa0)
			return 0; /* overlong */
		if (c == 0xed && s[1] >= 0xa0)
			return 0; /* surrogate */
		if (c == 0xef && s[1] == 0xbf && s[2] >= 0xbe)
			return 0; /* U+FFFE, U+FFFF */
		return 3;
	}
	if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
		return 0;
	if (c == 0xf0 && s[1] < 0x90)
		return 0; /* overlong */
	if (c == 0xf4 && s[1] >= 0x90)
		return 0; /* above U+10FFFF */
	return 4;
}

int xs_escape(struct buf *out, const char *s, size_t n, bool attr)
{
	const uint8_t *u = (const uint8_t *)s;
	size_t start_len = out->len;
	size_t run = 0; /* start of the pending plain run */
	size_t i = 0;
	int r = 0;
	while (i < n) {
		uint8_t cls = esc_class[u[i]];
		if (cls == EC_PLAIN || (cls == EC_ATTR && !attr)) {
			i++;
			continue;
		}
		if (cls == EC_UTF8) {
			size_t k = utf8_char(u + i, n - i);
			if (!k)
				goto invalid;
			i += k;
			continue;
		}
		if (cls == EC_BAD)
			goto invalid;
		if (i > run && (r = buf_append(out, s + run, i - run)))
			goto fail;
		const char *rep;
		switch (u[i]) {
		case '&':
			rep = "&amp;";
			break;
		case '<':
			rep = "&lt;";
			break;
		case '>':
			rep = "&gt;";
			break;
		case '\'':
			rep = "&apos;";
			break;
		case '"':
			rep = "&quot;";
			break;
		case '\t':
			rep = "&#9;";
			break;
		case '\n':
			rep = "&#10;";
			break;
		default:
			rep = "&#13;";
			break;
		}
		if ((r = buf_append(out, rep, strlen(rep))))
			goto fail;
		run = ++i;
	}
	if (n > run && (r = buf_append(out, s + run, n - run)))
		goto fail;
	return 0;
invalid:
	r = PE_INVAL;
fail:
	out->len = start_len;
	return r;
}

static inline int put(struct buf *out, const char *s, size_t n)
{
	return buf_append(out, s, n);
}

#define PUT_LIT(out, lit) put((out), (lit), sizeof(lit) - 1)

static int put_start_tag(struct buf *out, const struct xs_elem *el, const struct xs_str *scope_ns,
			 bool have_scope)
{
	int r;
	if ((r = PUT_LIT(out, "<")) || (r = put(out, el->name.p, el->name.n)))
		return r;
	bool same =
	    have_scope && (scope_ns->p == el->ns.p ||
			   (scope_ns->n == el->ns.n && !memcmp(scope_ns->p, el->ns.p, el->ns.n)));
	if (!same) {
		if ((r = PUT_LIT(out, " xmlns='")) ||
		    (r = xs_escape(out, el->ns.p, el->ns.n, true)) || (r = PUT_LIT(out, "'")))
			return r;
	}
	/* Namespaced attributes keep the peer's prefix, declared on this element. Prefixes
	 * are unique per element in well-formed input; a missing one gets a generated name. */
	for (uint32_t i = 0; i < el->nattrs; i++) {
		const struct xs_attr *a = &el->attrs[i];
		if (a->ns.n == 0 || a->ns.p == xs__ns_xml)
			continue;
		bool declared = false;
		for (uint32_t j = 0; j < i && !declared; j++) {
			const struct xs_attr *b = &el->attrs[j];
			declared = b->prefix && a->prefix && b->ns.n != 0 &&
				   strcmp(b->prefix, a->prefix) == 0;
		}
		if (declared)
			continue;
		char gen[16];
		const char *pfx = a->prefix;
		if (!pfx) {
			gen[0] = 'n', gen[1] = 's';
			snprintf(gen + 2, sizeof gen - 2, "%u", i);
			pfx = gen;
		}
		if ((r = PUT_LIT(out, " xmlns:")) || (r = put(out, pfx, strlen(pfx))) ||
		    (r = PUT_LIT(out, "='")) || (r = xs_escape(out, a->ns.p, a->ns.n, true)) ||
		    (r = PUT_LIT(out, "'")))
			return r;
	}
	for (uint32_t i = 0; i < el->nattrs; i++) {
		const struct xs_attr *a = &el->attrs[i];
		if ((r = PUT_LIT(out, " ")))
			return r;
		if (a->ns.n) {
			char gen[16];
			const char *pfx = a->prefix;
			if (!pfx) {
				gen[0] = 'n', gen[1] = 's';
				snprintf(gen + 2, sizeof gen - 2, "%u", i);
				pfx = gen;
			}
			if ((r = put(out, pfx, strlen(pfx))) || (r = PUT_LIT(out, ":")))
				return r;
		}
		if ((r = put(out, a->name.p, a->name.n)) || (r = PUT_LIT(out, "='")) ||
		    (r = xs_escape(out, a->value.p, a->value.n, true)) || (r = PUT_LIT(out, "'")))
			return r;
	}
	return 0;
}

int xs_serialize_in(const struct xs_elem *top, const char *parent_ns, struct buf *out)
{
	struct xs_str scope = {parent_ns ? parent_ns : xs__empty,
			       parent_ns ? strlen(parent_ns) : 0};
	const struct xs_elem *el = top;
	int r;
	/* Iterative walk using parent pointers: the depth limit is configurable and the
	 * stack must not be the peer's to choose. */
	for (;;) {
		const struct xs_str *sns = el == top ? &scope : &el->parent->ns;
		if ((r = put_start_tag(out, el, sns, el != top || parent_ns != NULL)))
			return r;
		if (!el->children) {
			if ((r = PUT_LIT(out, "/>")))
				return r;
		} else {
			if ((r = PUT_LIT(out, ">")))
				return r;
			/* Descend: emit text children until the first element child. */
			const struct xs_node *n = el->children;
			for (; n && n->type == XS_NODE_TEXT; n = n->next) {
				const struct xs_text *t = (const struct xs_text *)n;
				if ((r = xs_escape(out, t->text.p, t->text.n, false)))
					return r;
			}
			if (n) {
				el = (const struct xs_elem *)n;
				continue;
			}
			if ((r = PUT_LIT(out, "</")) || (r = put(out, el->name.p, el->name.n)) ||
			    (r = PUT_LIT(out, ">")))
				return r;
		}
		/* el is complete: move to its next sibling element (after text), or close
		 * parents until one has a further sibling. */
		for (;;) {
			if (el == top)
				return 0;
			const struct xs_node *n = el->node.next;
			for (; n && n->type == XS_NODE_TEXT; n = n->next) {
				const struct xs_text *t = (const struct xs_text *)n;
				if ((r = xs_escape(out, t->text.p, t->text.n, false)))
					return r;
			}
			if (n) {
				el = (const struct xs_elem *)n;
				break;
			}
			el = el->parent;
			if ((r = PUT_LIT(out, "</")) || (r = put(out, el->name.p, el->name.n)) ||
			    (r = PUT_LIT(out, ">")))
				return r;
		}
	}
}

int xs_serialize(const struct xs_elem *el, struct buf *out)
{
	return xs_serialize_in(el, NULL, out);
}

int xs_write_stream_error(struct buf *out, const struct xs_error *err)
{
	if (!err || err->cond == XS_COND_NONE || (unsigned)err->cond >= XS_COND__COUNT)
		return PE_INVAL;
	size_t start = out->len;
	const char *name = cond_names[err->cond];
	int r;
	if ((r = PUT_LIT(out, "<stream:error><")) || (r = put(out, name, strlen(name))) ||
	    (r = PUT_LIT(out, " xmlns='" XS_NS_STREAM_ERRORS "'/>")))
		goto fail;
	if (err->text && *err->text) {
		if ((r = PUT_LIT(out, "<text xmlns='" XS_NS_STREAM_ERRORS "'>")) ||
		    (r = xs_escape(out, err->text, strlen(err->text), false)) ||
		    (r = PUT_LIT(out, "</text>")))
			goto fail;
	}
	if (err->app == XS_APP_STANZA_TOO_BIG &&
	    (r = PUT_LIT(out, "<stanza-too-big xmlns='" XS_NS_APP_ERRORS "'/>")))
		goto fail;
	if ((r = PUT_LIT(out, "</stream:error>")))
		goto fail;
	return 0;
fail:
	out->len = start;
	return r;
}
