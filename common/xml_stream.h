/* The XMPP XML stream layer: fed bytes, emits stream open / stanza / close / error events. */
#ifndef PARLEY_XML_STREAM_H
#define PARLEY_XML_STREAM_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * One struct xs parses one direction of one XMPP stream. It owns no socket: the caller
 * feeds it whatever bytes arrived (any split, down to one byte at a time) and gets
 * events through callbacks while xs_feed() runs:
 *
 *   on_open    the stream header <stream:stream ...> arrived and is valid;
 *   on_stanza  one complete top-level child of the stream ("stanza" here, which also
 *              covers stream:features, starttls, SASL, dialback and XEP-0198 elements);
 *   on_close   </stream:stream> arrived;
 *   on_error   a stream error; it is the last event until xs_reset().
 *
 * A stanza is delivered as a tree in a per-stream arena that is recycled after the
 * callback returns: everything reachable from the event is valid only during the
 * callback (copy what you keep). Limits (struct xs_limits) bound every byte the layer
 * and expat hold on behalf of the peer.
 */

#define XS_NS_STREAMS "http://etherx.jabber.org/streams"
#define XS_NS_SERVER "jabber:server"
#define XS_NS_CLIENT "jabber:client"
#define XS_NS_DIALBACK "jabber:server:dialback"
#define XS_NS_XML "http://www.w3.org/XML/1998/namespace"
#define XS_NS_STREAM_ERRORS "urn:ietf:params:xml:ns:xmpp-streams"
#define XS_NS_APP_ERRORS "urn:xmpp:errors"

/* RFC 6120 §4.9.3 stream error conditions: X(enum suffix, element name). */
#define XS_COND_MAP(X)                                                                             \
	X(BAD_FORMAT, "bad-format")                                                                \
	X(BAD_NAMESPACE_PREFIX, "bad-namespace-prefix")                                            \
	X(CONFLICT, "conflict")                                                                    \
	X(CONNECTION_TIMEOUT, "connection-timeout")                                                \
	X(HOST_GONE, "host-gone")                                                                  \
	X(HOST_UNKNOWN, "host-unknown")                                                            \
	X(IMPROPER_ADDRESSING, "improper-addressing")                                              \
	X(INTERNAL_SERVER_ERROR, "internal-server-error")                                          \
	X(INVALID_FROM, "invalid-from")                                                            \
	X(INVALID_NAMESPACE, "invalid-namespace")                                                  \
	X(INVALID_XML, "invalid-xml")                                                              \
	X(NOT_AUTHORIZED, "not-authorized")                                                        \
	X(NOT_WELL_FORMED, "not-well-formed")                                                      \
	X(POLICY_VIOLATION, "policy-violation")                                                    \
	X(REMOTE_CONNECTION_FAILED, "remote-connection-failed")                                    \
	X(RESET, "reset")                                                                          \
	X(RESOURCE_CONSTRAINT, "resource-constraint")                                              \
	X(RESTRICTED_XML, "restricted-xml")                                                        \
	X(SEE_OTHER_HOST, "see-other-host")                                                        \
	X(SYSTEM_SHUTDOWN, "system-shutdown")                                                      \
	X(UNDEFINED_CONDITION, "undefined-condition")                                              \
	X(UNSUPPORTED_ENCODING, "unsupported-encoding")                                            \
	X(UNSUPPORTED_FEATURE, "unsupported-feature")                                              \
	X(UNSUPPORTED_STANZA_TYPE, "unsupported-stanza-type")                                      \
	X(UNSUPPORTED_VERSION, "unsupported-version")

enum xs_cond {
	XS_COND_NONE = 0, /* no error */
#define XS__COND_ENUM(name, str) XS_COND_##name,
	XS_COND_MAP(XS__COND_ENUM)
#undef XS__COND_ENUM
	    XS_COND__COUNT
};

/* Application-specific condition carried next to the defined one (namespace urn:xmpp:errors). */
enum xs_app {
	XS_APP_NONE = 0,       /* none */
	XS_APP_STANZA_TOO_BIG, /* <stanza-too-big xmlns='urn:xmpp:errors'/> */
};

struct xs_error {
	enum xs_cond cond; /* XS_COND_NONE while no error happened */
	enum xs_app app;
	const char *text; /* short human text (static storage), never peer bytes; "" if none */
};

/* Returns the RFC 6120 element name ("policy-violation"), or "" for XS_COND_NONE / out of range. */
const char *xs_cond_name(enum xs_cond cond);
/* Maps an element name of n bytes back to its condition; XS_COND_NONE if unknown. */
enum xs_cond xs_cond_from_name(const char *name, size_t n);

/* Per-stanza bounds. A stanza is a top-level child of the stream; the stream header and
 * the whitespace between stanzas count against max_stanza_bytes too. Exceeding any of
 * them is a policy-violation stream error (stanza-too-big for max_stanza_bytes). */
struct xs_limits {
	uint32_t max_stanza_bytes; /* raw bytes of one stanza, as received */
	uint32_t max_elements;	   /* elements in one stanza, the stanza itself included */
	uint32_t max_depth;	   /* nesting; the stanza element is at depth 1 */
	uint32_t max_attrs;	   /* attributes on one element (namespace declarations excluded) */
	uint32_t max_text_bytes;   /* character data directly inside one element (decoded) */
};

/* Defaults: before authentication 8 KiB / 32 elements / depth 16 / 16 attributes / 8 KiB
 * text; after it 256 KiB / 1024 / 32 / 32 / 256 KiB. */
extern const struct xs_limits xs_limits_preauth;
extern const struct xs_limits xs_limits_postauth;

/* A view of NUL-terminated bytes: p[n] == '\0'; never NULL inside a tree. */
struct xs_str {
	const char *p;
	size_t n;
};

struct xs_attr {
	struct xs_str ns;   /* namespace name; n == 0 for an unprefixed attribute */
	struct xs_str name; /* local name */
	struct xs_str value;
	const char *prefix; /* the peer's prefix for a namespaced attribute, else NULL */
};

enum xs_node_type {
	XS_NODE_ELEM, /* struct xs_elem */
	XS_NODE_TEXT, /* struct xs_text: one run of character data */
};

/* Children of an element in document order: elements and text runs. */
struct xs_node {
	struct xs_node *next;
	enum xs_node_type type;
};

struct xs_text {
	struct xs_node node;
	struct xs_str text; /* decoded, never empty; adjacent runs are merged */
};

struct xs_elem {
	struct xs_node node;	/* node.next: next sibling, element or text */
	struct xs_elem *parent; /* NULL for the stanza (or the stream root in on_open) */
	struct xs_str ns;	/* namespace name; n == 0 if in no namespace */
	struct xs_str name;	/* local name (the peer's prefix is not kept) */
	struct xs_attr *attrs;
	uint32_t nattrs;
	uint32_t ntext;		  /* number of text children */
	struct xs_node *children; /* first child, or NULL */
	struct xs_node *last;	  /* last child, or NULL */
	struct xs_str text;	  /* all direct character data, concatenated ("" if none) */
};

static inline const struct xs_elem *xs_node_elem(const struct xs_node *n)
{
	return n && n->type == XS_NODE_ELEM ? (const struct xs_elem *)n : NULL;
}
static inline const struct xs_text *xs_node_text(const struct xs_node *n)
{
	return n && n->type == XS_NODE_TEXT ? (const struct xs_text *)n : NULL;
}

/* Returns the value (NUL-terminated) of the attribute {ns}name, or NULL if absent.
 * ns NULL or "" means an unprefixed attribute ("to", "type"); XS_NS_XML with "lang"
 * finds xml:lang. */
const char *xs_elem_attr(const struct xs_elem *el, const char *ns, const char *name);
/* Returns the first child element named {ns}name, or NULL. ns NULL matches any
 * namespace; "" matches elements in no namespace. */
const struct xs_elem *xs_elem_child(const struct xs_elem *el, const char *ns, const char *name);
/* Returns the first child element of el / the next sibling element of el, or NULL. */
const struct xs_elem *xs_elem_first(const struct xs_elem *el);
const struct xs_elem *xs_elem_next(const struct xs_elem *el);
/* Returns el's direct character data (NUL-terminated, "" if none) and stores its
 * length in *len if len is not NULL. */
const char *xs_elem_text(const struct xs_elem *el, size_t *len);
/* Returns the xml:lang in effect for el within its tree (its own, else the nearest
 * ancestor's), or NULL: the caller then falls back to the stream header's. */
const char *xs_elem_lang(const struct xs_elem *el);

/* Appends el and its subtree to out as well-formed XML carrying every namespace
 * declaration it needs: xmlns='...' on el, and on each descendant whose namespace
 * differs from its parent's; xmlns:prefix for namespaced attributes (xml:lang stays
 * xml:lang). Text and attribute values are escaped (see xs_escape). Returns 0, or
 * PE_TOOBIG / PE_NOMEM from out (out then holds a partial tree: truncate it). */
int xs_serialize(const struct xs_elem *el, struct buf *out);
/* Same, for a subtree written where parent_ns is the default namespace in scope (for
 * instance "jabber:server" inside a server stream): el gets no xmlns when its namespace
 * equals parent_ns. parent_ns NULL behaves like xs_serialize. */
int xs_serialize_in(const struct xs_elem *el, const char *parent_ns, struct buf *out);

/* Appends s[0..n) to out escaped for XML character data (attr false: & < > and CR) or
 * for a quoted attribute value (attr true: also ' " TAB LF). Returns 0, PE_INVAL if s is
 * not valid UTF-8 or holds a character XML 1.0 forbids (C0 controls other than TAB, LF,
 * CR; U+FFFE, U+FFFF) — out is then unchanged — or PE_TOOBIG / PE_NOMEM from out. */
int xs_escape(struct buf *out, const char *s, size_t n, bool attr);

/* Appends a complete <stream:error> element (the caller's stream header must bind the
 * "stream" prefix): the condition, the text if non-empty, and the application
 * condition if any. Returns 0, PE_INVAL for XS_COND_NONE, or an error from out. */
int xs_write_stream_error(struct buf *out, const struct xs_error *err);

/* The stream header, as delivered to on_open. Pointers are valid during the callback. */
struct xs_open {
	const char *to, *from, *id, *version, *lang; /* NULL when absent */
	const char *content_ns;	    /* XS_NS_SERVER or XS_NS_CLIENT (static strings) */
	bool dialback;		    /* some prefix was bound to jabber:server:dialback */
	const struct xs_elem *root; /* the stream element with all attributes, no children */
};

struct xs_stanza {
	const struct xs_elem *el; /* the stanza tree */
	uint64_t offset;	  /* stream byte offset of its first byte ('<') */
	size_t bytes;		  /* its size as received */
	/* The received bytes when they all lie in the buffer of the current xs_feed() call,
	 * else NULL. They may use prefixes declared on the stream header. */
	const char *raw;
};

/* All may be NULL. ud is the pointer given to xs_new(). From a callback the caller may
 * call xs_stop(), xs_reset() (deferred until xs_feed returns), xs_set_limits() and any
 * accessor; never xs_free() or xs_feed() on the same stream. */
struct xs_callbacks {
	void (*on_open)(void *ud, const struct xs_open *open);
	void (*on_stanza)(void *ud, const struct xs_stanza *st);
	void (*on_close)(void *ud);
	void (*on_error)(void *ud, const struct xs_error *err);
};

struct xs;

/* Returns a new stream parser with limits *lim (copied) and callbacks *cb (not copied:
 * cb must outlive it), or NULL when out of memory or lim is invalid. The expat parser
 * is created on the first xs_feed(). */
struct xs *xs_new(const struct xs_limits *lim, const struct xs_callbacks *cb, void *ud);
/* Frees xs and everything it holds; NULL is a no-op. Not from one of its callbacks. */
void xs_free(struct xs *xs);

/* Parses n bytes, calling back for each complete event. Returns 0 when all bytes were
 * parsed or parsing stopped on purpose (a callback called xs_stop() or xs_reset(), or
 * the stream closed — xs_unparsed() then tells how many trailing bytes were left);
 * PE_PROTO on a stream error (see xs_error(); on_error was called); PE_NOMEM when out
 * of memory (xs_error() says resource-constraint). After an error every call returns
 * the same code; after on_close PE_CLOSED; after xs_stop() PE_STATE — until xs_reset(). */
int xs_feed(struct xs *xs, const char *p, size_t n);
/* Bytes at the end of the last xs_feed() input that were not parsed because parsing
 * stopped there (xs_stop, xs_reset from a callback, or after </stream:stream>); else 0. */
size_t xs_unparsed(const struct xs *xs);

/* Stops parsing right after the event being delivered (or before the next feed). Used
 * after <starttls/>: bytes behind it belong to TLS, not to this parser. */
void xs_stop(struct xs *xs);
/* Starts a new stream (after STARTTLS or SASL success): drops the expat parser and any
 * partial stanza, keeps limits and callbacks. From a callback it acts as xs_stop()
 * and the reset happens when xs_feed() returns. */
void xs_reset(struct xs *xs);

/* Replaces the limits (for instance after authentication); they apply to the bytes fed
 * from now on. Returns 0 or PE_INVAL (a zero field, depth over 1024, stanza bytes over
 * 64 MiB). */
int xs_set_limits(struct xs *xs, const struct xs_limits *lim);
const struct xs_limits *xs_get_limits(const struct xs *xs);

/* The error that stopped the stream; cond == XS_COND_NONE if none. */
const struct xs_error *xs_error(const struct xs *xs);
/* True between on_open and on_close / error / reset. */
bool xs_is_open(const struct xs *xs);
/* The content namespace of the open stream (XS_NS_SERVER / XS_NS_CLIENT) or NULL. */
const char *xs_content_ns(const struct xs *xs);
/* Heap bytes held now: the struct, the arena blocks and expat's allocations. */
size_t xs_mem_usage(const struct xs *xs);

#endif
