/* Turns a received stanza (an xml_stream tree) into a link Stanza: the parsed fields the
 * gateway interprets, and every other child kept as serialised XML with its namespace
 * declarations so nothing a partner sends is lost. */
#ifndef PARLEY_PROXY_STANZA_H
#define PARLEY_PROXY_STANZA_H

#include "buf.h"
#include "link.pb-c.h"
#include "xml_stream.h"

#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"

/* Scratch space reused across stanzas: the serialised extra children live here until the
 * frame is packed. */
struct stanza_scratch {
	struct buf extra;
	size_t *offs; /* offsets into extra of each child, then its end */
	size_t cap;
	ProtobufCBinaryData *bins;
	Parley__Link__StanzaError err;
	Parley__Link__StanzaMeta meta;
};

void stanza_scratch_init(struct stanza_scratch *s);
void stanza_scratch_deinit(struct stanza_scratch *s);

/* Fills out from el (a message, presence or iq in jabber:server). Strings point into el's
 * tree or into s: valid until the xml_stream callback returns or the next call. lang is the
 * stream header's xml:lang, used when the stanza has none. Returns 0 or PE_PROTO for an
 * element that is not a stanza. */
int stanza_to_link(const struct xs_elem *el, const char *lang, struct stanza_scratch *s,
		   Parley__Link__Stanza *out);

/* Domain part of a JID (after '@', before '/'), as a view into jid. */
const char *jid_domain(const char *jid, size_t *len);

#endif
