/* PIDF presence documents (RFC 3863) with RPID (RFC 4480) and the embedded XMPP <show>:
 * the codec the presence translator uses for MAPPING.md E2-E6, and the Lync-style
 * availability ranges of E9. Pure functions: no I/O, no logging. */
#ifndef PARLEY_PIDF_H
#define PARLEY_PIDF_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PIDF_NS "urn:ietf:params:xml:ns:pidf"
#define PIDF_NS_DM "urn:ietf:params:xml:ns:pidf:data-model"
#define PIDF_NS_RPID "urn:ietf:params:xml:ns:pidf:rpid"
#define PIDF_NS_JABBER "jabber:client"
#define PIDF_CONTENT_TYPE "application/pidf+xml"

/* E6: the tuple id written for a tuple that stands for the bare JID (no resource). It is
 * not a valid encoding of any resource, so it cannot collide with one. */
#define PIDF_BARE_ID "ID-bare"
/* Longest resource pidf_tuple_id_encode accepts, in bytes (RFC 7622 part limit), and a
 * buffer that holds any id it writes, with its NUL. */
#define PIDF_RESOURCE_MAX 1023
#define PIDF_ID_BUF (3 + 2 * PIDF_RESOURCE_MAX + 1)
/* Longest xml:lang value kept; longer or odd-looking ones are dropped (no language). */
#define PIDF_LANG_MAX 63
/* Hard ceiling on pidf_limits.max_depth. */
#define PIDF_DEPTH_CAP 64

/* XMPP <show> values (E5). */
enum pidf_show {
	PIDF_SHOW_NONE = 0, /* available, no <show> (also used for unavailable) */
	PIDF_SHOW_CHAT,	    /* "chat": free for chat */
	PIDF_SHOW_AWAY,	    /* "away" */
	PIDF_SHOW_XA,	    /* "xa": extended away */
	PIDF_SHOW_DND,	    /* "dnd": do not disturb */
};

/* "chat", "away", "xa", "dnd"; NULL for PIDF_SHOW_NONE or a value out of range. */
const char *pidf_show_name(enum pidf_show s);
/* Parses the text of an XMPP <show> (exact, case-sensitive, no surrounding space) into
 * *out. s NULL (no <show>) gives PIDF_SHOW_NONE. Returns 0 or PE_PROTO (*out unchanged). */
int pidf_show_parse(const char *s, enum pidf_show *out);

/* One PIDF tuple = one XMPP resource (E6). Strings are NUL-terminated, malloc'd by
 * pidf_parse and freed by pidf_doc_free; pidf_write only reads them. */
struct pidf_tuple {
	char *resource; /* decoded resource; NULL = bare JID or an id that is not ours */
	char *id;	/* parse: the tuple id as received (never NULL); write: see pidf_write */
	bool open;	/* E2: basic open (no type) / closed (unavailable) */
	enum pidf_show show; /* E5; always NONE when !open after pidf_parse */
	char *note;	     /* E3: <note> text trimmed of XML space, NULL if none or empty */
	char *note_lang;     /* its xml:lang (own or inherited), NULL if none */
	int priority;	     /* E4: XMPP priority; pidf_parse gives 0..127 */
	bool has_priority;   /* priority is meaningful; pidf_write skips it when negative */
};

/* A parsed document. entity is the <presence entity=...> attribute (never NULL after a
 * successful parse); tuples[0..n) in document order. */
struct pidf_doc {
	char *entity;
	struct pidf_tuple *tuples;
	size_t n;
};

/* Bounds for pidf_parse; every field must be non-zero and max_depth <= PIDF_DEPTH_CAP. */
struct pidf_limits {
	size_t max_bytes;  /* document length */
	size_t max_tuples; /* <tuple> elements */
	size_t max_note;   /* bytes of one <note> as received, before trimming */
	size_t max_depth;  /* element nesting, the root counting 1 */
};
/* What pidf_parse uses for lim == NULL: 64 KiB, 64 tuples, 4096 bytes of note, depth 16. */
extern const struct pidf_limits pidf_limits_default;

/*
 * Parses xml[0..len), a PIDF document, into *out (zeroed first; free with pidf_doc_free,
 * also after an error, which leaves it empty). lim NULL: pidf_limits_default.
 *
 * Restricted XML as on the XMPP streams: expat, namespace-aware, random hash salt, no
 * DOCTYPE (so no entity declarations), no comments, no processing instructions. The root
 * must be {PIDF_NS}presence with an entity attribute; each {PIDF_NS}tuple child needs a
 * non-empty id attribute, unique in the document. Everything not listed below is ignored.
 *
 * Per tuple:
 * - open: the first <status><basic> is "open" (XML space around it allowed); "closed",
 *   any other value or no <basic> gives false.
 * - resource: pidf_tuple_id_decode of the id; PIDF_BARE_ID and ids that are not ours give
 *   NULL (the raw id stays in id, so the caller can tell foreign tuples apart).
 * - show (E5), for an open tuple, first of: the first valid {jabber:client}show anywhere in
 *   the tuple; the strongest RPID activity inside the tuple; the strongest RPID activity of
 *   any <dm:person>, but only if no tuple of the document carries a valid embedded show
 *   (then the person is a summary written by an XMPP mapping like ours); else NONE.
 *   Activities: busy, on-the-phone, meeting, performance, presentation -> DND; vacation,
 *   holiday, sleeping, permanent-absence -> XA; away, appointment, meal, breakfast,
 *   dinner -> AWAY; others ignored. Strongest: DND > XA > AWAY. Note text is never parsed.
 * - note (E3): the tuple's first {PIDF_NS}note; else the first <dm:note> of the first
 *   person that has one; else the first document-level {PIDF_NS}note. note_lang is its
 *   xml:lang or the nearest ancestor's ("" resets to none); kept only if it is 1..
 *   PIDF_LANG_MAX of [A-Za-z0-9-].
 * - priority (E4): the first {PIDF_NS}contact's priority attribute, a qvalue 0..1 with at
 *   most three decimals, mapped to round(q * 127); an invalid value is ignored.
 *
 * Returns 0; PE_TOOBIG if len > max_bytes, or more tuples, a longer note or deeper nesting
 * than lim allows; PE_PROTO for malformed XML, a DOCTYPE, comment or PI, a wrong root,
 * a missing entity or tuple id, a duplicate tuple id; PE_INVAL for bad limits; PE_NOMEM.
 * On error err (if errlen > 0) says what, NUL-terminated.
 */
int pidf_parse(const char *xml, size_t len, const struct pidf_limits *lim, struct pidf_doc *out,
	       char *err, size_t errlen);
/* Frees the calling thread's cached parser (pidf_parse keeps one per thread); for a thread
 * that parsed and is about to end. */
void pidf_thread_done(void);
/* Frees what pidf_parse allocated and zeroes *d. NULL or an empty doc is fine. */
void pidf_doc_free(struct pidf_doc *d);

/*
 * Appends a PIDF document for entity (e.g. "pres:alice@partner.test") to out: XML
 * declaration, <presence> with the dm and rpid prefixes declared, one <tuple> per element
 * of tuples[0..n) and, when the open tuple with the highest priority (the first on ties)
 * has show away/xa/dnd, one <dm:person id="p"> with <rpid:activities> <rpid:away/> (away,
 * xa) or <rpid:busy/> (dnd).
 *
 * Each tuple: id = pidf_tuple_id_encode(resource) if resource is set, else the tuple's
 * id if set (so a parsed document writes back with its ids), else PIDF_BARE_ID; then
 * <status><basic>open|closed</basic> and, if open and show != NONE,
 * <show xmlns="jabber:client">; <contact priority="0.xxx"> holding entity if has_priority
 * and priority >= 0 (0..127 -> round(p / 127, 3 decimals)); <note xml:lang=...> if note is
 * non-empty (xml:lang only if note_lang is non-empty). Text and attributes are escaped.
 *
 * Returns 0; PE_INVAL (out unchanged) if entity is NULL or empty, a string is not valid
 * UTF-8 or holds a character XML forbids, a resource cannot be encoded, has_priority is
 * set with a priority above 127, a show is out of range or two tuples would get the same id;
 * PE_TOOBIG or PE_NOMEM from out (out then back at its length on entry).
 */
int pidf_write(struct buf *out, const char *entity, const struct pidf_tuple *tuples, size_t n);

/* E6. Encodes resource (1..PIDF_RESOURCE_MAX bytes of UTF-8 without control characters)
 * as "ID-" + lowercase hex of its bytes, an NCName, into out (cap bytes, NUL-terminated;
 * PIDF_ID_BUF always suffices). Returns the id's length; PE_INVAL for a resource outside
 * that set, PE_TOOBIG if cap is too small. */
int pidf_tuple_id_encode(const char *resource, char *out, size_t cap);
/* E6, the inverse: accepts exactly the ids pidf_tuple_id_encode writes (lowercase hex
 * only, so every resource has one id) and PIDF_BARE_ID. Writes the resource NUL-terminated
 * to out and returns its length, or 0 (out = "") for PIDF_BARE_ID. PE_PROTO if the id is
 * not ours, PE_TOOBIG if cap is too small (PIDF_RESOURCE_MAX + 1 always suffices). */
int pidf_tuple_id_decode(const char *id, char *out, size_t cap);

/* E9, Lync-style availability -> XMPP: 0-4499 available (NONE); 4500-5999 (idle) AWAY;
 * 6000-8999 (busy) DND; 9000-11999 (do not disturb) DND; 12000-14999 (be right back)
 * AWAY; 15000-17999 (away) AWAY, or XA if off_work; >= 18000 offline: returns false with
 * *show = NONE. Returns true (available) otherwise. */
bool pidf_avail_to_show(uint32_t availability, bool off_work, enum pidf_show *show);
/* E9, XMPP -> availability: unavailable 18000; NONE and CHAT 3500; AWAY 15500; XA 15500
 * with *off_work = true; DND 6500. *off_work is false except for XA; off_work may be NULL. */
uint32_t pidf_show_to_avail(bool available, enum pidf_show show, bool *off_work);

#endif
