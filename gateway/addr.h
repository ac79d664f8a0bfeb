/* Address mapping between SIP URIs and JIDs (RFC 7247 §6, XEP-0106 escaping): MAPPING.md
 * B1 (SIP -> JID), B2 (JID -> SIP) and B4 (the From of an outgoing MESSAGE). Pure
 * functions over strings: no osip types, no allocation. */
#ifndef PARLEY_ADDR_H
#define PARLEY_ADDR_H

#include "jid.h"

#include <stddef.h>

/* Longest URI addr_jid_to_sip can write: "<sip:" + every localpart byte percent-encoded
 * + "@" + domain + ";gr=" + every resource byte percent-encoded + ">", and a buffer for
 * it with its NUL. */
#define ADDR_URI_MAX (5 + 3 * JID_PART_MAX + 1 + JID_PART_MAX + 4 + 3 * JID_PART_MAX + 1)
#define ADDR_URI_BUF (ADDR_URI_MAX + 1)

/* B1: maps a SIP URI (an addr-spec "sip:user@host;params?headers", not a name-addr) to a
 * normalised JID, written NUL-terminated to out (cap >= JID_BUF always suffices); returns
 * its length. If j is non-NULL its views point into out.
 *  - The scheme is "sip" ("pres" and "im" URIs, which RFC 7247 maps the same way, are
 *    accepted too), compared case-insensitively.
 *  - The user is what precedes the first '@' (a ":password" is dropped); it is
 *    percent-decoded, must be UTF-8, goes through nodeprep's mapping (case folding, NFKC),
 *    then XEP-0106 escaping (addr_escape_local), then nodeprep. A URI without a user maps
 *    to a domain-only JID.
 *  - The host becomes the domainpart (jid_domainprep); a port is dropped.
 *  - A "gr" parameter with a value becomes the resourcepart (percent-decoded,
 *    resourceprep); every other parameter and the headers are dropped.
 * Errors, with the SIP status addr_status() gives for a Request-URI:
 *  PE_SCHEME (416): "sips:" (RFC 7247 §8: never translated) or any other scheme;
 *  PE_PROTO (400): not a URI we can read: no scheme or host, a control character, space or
 *    character the user/parameter grammar forbids, a bad %-escape, a bad port, a user or
 *    gr value that is not UTF-8;
 *  PE_INVAL (400): a well-formed URI that makes no valid JID: nodeprep or resourceprep
 *    refuses the result, the escaped localpart would begin or end with "\20" (XEP-0106),
 *    the host is not a valid domain, or the escapes would not survive nodeprep (so the
 *    JID would not map back to the same user);
 *  PE_TOOBIG (414): a part longer than JID_PART_MAX bytes, or cap too small. */
int addr_sip_to_jid(const char *uri, size_t len, char *out, size_t cap, struct jid *j);

/* Flags for addr_jid_to_sip. */
#define ADDR_NO_GR 0x1u	    /* leave the resourcepart out: the address of record */
#define ADDR_NAME_ADDR 0x2u /* wrap the URI in "<>" as a header field with params needs */

/* B2: maps a JID to a SIP URI, written NUL-terminated to out (cap >= ADDR_URI_BUF always
 * suffices); returns its length. The JID is normalised first (jid_normalize); then its
 * localpart is XEP-0106-unescaped (addr_unescape_local) and percent-encoded for the SIP
 * user (RFC 3261 unreserved and user-unreserved "& = + $ , ; ? /" are kept, so "\26 \27
 * \2f" come out as "& ' /"; every other byte, non-ASCII included, becomes %XX in upper
 * case); the domainpart is used as normalised (ASCII, A-labels); the resourcepart
 * becomes ";gr=" with RFC 3261 paramchar kept and the rest percent-encoded, unless
 * ADDR_NO_GR. Returns PE_INVAL or PE_TOOBIG for an invalid JID (jid_normalize), or
 * PE_TOOBIG if cap is too small. */
int addr_jid_to_sip(const char *jid, size_t len, unsigned flags, char *out, size_t cap);

/* B4 (RFC 7572 §4): the From header field value (without its tag) of a MESSAGE sent for
 * the XMPP entity jid: the bare JID as the address of record with the resourcepart as a
 * GRUU, "<sip:local@domain;gr=resource>" ("<sip:local@domain>" for a bare JID). Same
 * contract as addr_jid_to_sip. */
int addr_sip_from(const char *jid, size_t len, char *out, size_t cap);

/* XEP-0106 escaping of a localpart: each of space " & ' / : < > @ becomes \20 \22 \26 \27
 * \2f \3a \3c \3e \40, and a backslash becomes \5c only where it begins one of these
 * ten escape sequences (hex digits matched in either case, since nodeprep will lower-case
 * them); any other backslash is kept (XEP-0106 §4.1 rule 7, §4.2 step 3, §4.3).
 * Reads s[0..len), writes NUL-terminated to out, returns the length or PE_TOOBIG if cap
 * is too small (3 * len + 1 always suffices). */
int addr_escape_local(const char *s, size_t len, char *out, size_t cap);

/* XEP-0106 unescaping: exactly the ten lower-case sequences above are replaced, left to
 * right in one pass; partial or unknown sequences are kept. Reads s[0..len), writes
 * NUL-terminated to out, returns the length or PE_TOOBIG if cap <= the result. */
int addr_unescape_local(const char *s, size_t len, char *out, size_t cap);

/* The SIP status to answer a request whose Request-URI addr_sip_to_jid refused with err:
 * 416 for PE_SCHEME, 414 for PE_TOOBIG, 400 for anything else. Returns 0 for err >= 0. */
int addr_status(int err);

#endif
