/* JIDs: split into localpart, domainpart and resourcepart (RFC 7622 §3.1), prepare each
 * part (nodeprep, IDNA/lower-case, resourceprep as in RFC 6122), compare prepared forms. */
#ifndef PARLEY_JID_H
#define PARLEY_JID_H

#include <stdbool.h>
#include <stddef.h>

/* Longest part in bytes (RFC 7622 §3.1), the longest JID "local@domain/resource", and a
 * buffer that holds any JID with its NUL. */
#define JID_PART_MAX 1023
#define JID_MAX (3 * JID_PART_MAX + 2)
#define JID_BUF (JID_MAX + 1)

/* A view {p, n} into a caller-owned string; n == 0 means the part is absent. */
struct jid_view {
	const char *p;
	size_t n;
};

/* The three parts of a JID, as views into the string that was parsed or normalised. */
struct jid {
	struct jid_view local;	  /* before the '@'; n == 0: none (a server JID) */
	struct jid_view domain;	  /* never empty after a successful call */
	struct jid_view resource; /* after the first '/'; n == 0: a bare JID */
};

/* Splits s[0..len) by structure only (RFC 7622 §3.2): the resourcepart is everything after
 * the first '/', the localpart everything before the first '@' that precedes it, the
 * domainpart the rest. The views in *j point into s; s need not be NUL-terminated.
 * Characters are not checked here (jid_normalize does that).
 * Returns 0; PE_INVAL for an empty input, an empty part next to its separator ("@d",
 * "l@", "d/"), an empty domainpart or a NUL byte; PE_TOOBIG if a part exceeds JID_PART_MAX
 * bytes. */
int jid_parse(const char *s, size_t len, struct jid *j);

/* The part preparations. Each reads s[0..len) (need not be NUL-terminated), writes the
 * prepared part NUL-terminated to out (cap bytes) and returns its length, 1..JID_PART_MAX.
 * Pure ASCII input never reaches libidn (whose stringprep costs about 1 µs a call).
 * Errors: PE_INVAL for an empty part or result, input that is not UTF-8 (RFC 3629:
 * no overlong forms, no surrogates, nothing above U+10FFFF) or a character the profile
 * prohibits; PE_TOOBIG if the input or the result exceeds JID_PART_MAX bytes or the
 * result does not fit in cap (give cap >= JID_PART_MAX + 1 to see PE_TOOBIG only for
 * over-long parts). */

/* Nodeprep (RFC 3920 Appendix A, libidn's stringprep_xmpp_nodeprep; unassigned code
 * points allowed). ASCII: A-Z lower-cased; controls, space and " & ' / : < > @ refused. */
int jid_nodeprep(const char *s, size_t len, char *out, size_t cap);

/* Nodeprep's mapping steps alone (tables B.1 and B.2, then NFKC) with no prohibition,
 * bidi or length-of-result check: the form XEP-0106 escaping must be applied to, so
 * that the escapes survive the nodeprep that follows. Same contract as jid_nodeprep
 * except that no character is refused (an empty result is PE_INVAL). */
int jid_nodeprep_map(const char *s, size_t len, char *out, size_t cap);

/* The domainpart in the form the gateway compares and routes by, the same form as
 * gw_policy_domain: one trailing dot dropped (RFC 7622 §3.2); an IP literal "[v6]"
 * rewritten canonically (inet_ntop) inside its brackets; otherwise ASCII lower-case
 * letters, digits, '-' and '.', labels of 1..63 bytes that neither start nor end with '-'
 * (STD3). A non-ASCII name is converted to A-labels with libidn's idna_to_ascii_8z
 * (IDNA2003 ToASCII: nameprep, punycode) and then lower-cased. */
int jid_domainprep(const char *s, size_t len, char *out, size_t cap);

/* Resourceprep (RFC 3920 Appendix B, libidn's stringprep_xmpp_resourceprep). ASCII is
 * kept as is, spaces included; controls (0x00-0x1f, 0x7f) refused. */
int jid_resourceprep(const char *s, size_t len, char *out, size_t cap);

/* Parses s[0..len) (jid_parse) and prepares every part. Writes "local@domain/resource"
 * (absent parts and their separators left out) NUL-terminated to out (cap >= JID_BUF
 * always suffices) and returns its length. If j is non-NULL its views point into out;
 * the bare JID is then the prefix of out ending at j->domain. Returns PE_INVAL or
 * PE_TOOBIG as jid_parse and the part preparations do. */
int jid_normalize(const char *s, size_t len, char *out, size_t cap, struct jid *j);

/* The normalised bare JID ("local@domain" or "domain") of the NUL-terminated jid, written
 * to out (cap >= JID_BUF suffices). Returns 0, or PE_INVAL (NULL or not a valid JID),
 * PE_TOOBIG as jid_normalize. */
int jid_normalize_bare(const char *jid, char *out, size_t cap);

/* B3: compares two JIDs after normalising both. flags: JID_CMP_BARE ignores the
 * resourceparts. On success stores in *cmp a value <0, 0 or >0 ordering the normalised
 * forms bytewise (0: the same JID) and returns 0; returns PE_INVAL or PE_TOOBIG if either
 * is not a valid JID (then *cmp is left alone). */
#define JID_CMP_BARE 0x1u
int jid_compare(const char *a, size_t alen, const char *b, size_t blen, unsigned flags, int *cmp);

/* True if a and b are valid JIDs that normalise to the same full JID. */
bool jid_equal(const char *a, size_t alen, const char *b, size_t blen);

/* True if s[0..len) is well-formed UTF-8 (RFC 3629): shortest forms only, no UTF-16
 * surrogates (U+D800..U+DFFF), nothing above U+10FFFF. NUL bytes are well-formed. */
bool jid_utf8_valid(const char *s, size_t len);

#endif
