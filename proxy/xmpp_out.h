/* Link Stanza -> XMPP XML for an outbound server-to-server stream: escaping, xml:lang, the
 * error element, and the preserved unknown children inserted verbatim after a check. */
#ifndef PARLEY_PROXY_XMPP_OUT_H
#define PARLEY_PROXY_XMPP_OUT_H

#include "buf.h"
#include "link.pb-c.h"

#include <stddef.h>

/* Deepest nesting accepted inside one preserved child (the child itself is depth 1): placed
 * under the stanza (or under its error), it stays within the 32 levels that our own inbound
 * parser, and most servers', accept after authentication. */
#define XMPP_OUT_MAX_DEPTH 30

/* Appends st as one stanza in the stream's default namespace (jabber:server, declared by the
 * stream header, so the stanza element carries no xmlns):
 *   <message|presence|iq from to id type xml:lang>
 *     message: subject, body, thread (with parent); presence: show, status, priority;
 *     error (type, by, condition, text with its xml:lang, application condition);
 *     then each `extra` child, byte for byte.
 * Strings are escaped (xs_escape). Each extra child and the application condition must be
 * exactly one element that is well-formed on its own, namespace declarations included, with
 * no DOCTYPE, comment or processing instruction (see xmpp_out_check_fragment); the gateway
 * built them, but one bad child would otherwise cost the partner stream.
 * Returns 0; PE_INVAL (out unchanged) when the kind is unknown, a string is not valid XML
 * text (bad UTF-8, forbidden characters), the error type or condition is not a plain name,
 * or an extra child fails the check; PE_TOOBIG / PE_NOMEM from out (out unchanged). */
int xmpp_out_stanza(struct buf *out, const Parley__Link__Stanza *st);

/* Checks that p[0..n) is one element (with only whitespace around it), well-formed and
 * namespace-well-formed by itself, at most max_depth deep, without DOCTYPE, comment,
 * processing instruction or entity reference other than the five predefined and character
 * references. Returns 0 or PE_INVAL. */
int xmpp_out_check_fragment(const char *p, size_t n, unsigned max_depth);

/* True if s is a plain XML name of lower-case ASCII letters, digits and '-' (1..64 bytes):
 * what RFC 6120 error types and conditions are. */
int xmpp_out_plain_name(const char *s);

#endif
