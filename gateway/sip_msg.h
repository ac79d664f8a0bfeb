/* SIP messages behind our own interface: libosip2's parser underneath, never visible above. */
#ifndef PARLEY_SIP_MSG_H
#define PARLEY_SIP_MSG_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Transport protocols, as written in Via and in URI transport parameters. */
#define SIP_PROTO_MAP(X)                                                                           \
	X(UDP, "UDP")                                                                              \
	X(TCP, "TCP")                                                                              \
	X(TLS, "TLS")

enum sip_proto {
#define SIP__PROTO_ENUM(name, str) SIP_PROTO_##name,
	SIP_PROTO_MAP(SIP__PROTO_ENUM)
#undef SIP__PROTO_ENUM
	    SIP_PROTO__N
};

/* "UDP", "TCP", "TLS". */
const char *sip_proto_name(enum sip_proto p);
/* Parses a transport token case-insensitively; returns 0 or PE_INVAL. */
int sip_proto_parse(const char *s, size_t n, enum sip_proto *out);
static inline bool sip_proto_reliable(enum sip_proto p)
{
	return p != SIP_PROTO_UDP;
}

/* One SIP request or response. Opaque; created by sip_msg_parse or the builders and
 * released with sip_msg_free. Strings returned by accessors are owned by the message
 * and valid until it is freed (or, for a builder's message, until it is modified). */
struct sip_msg;

/* Initialises libosip2's parser once per process and routes its trace output to our
 * log at debug level (by default osip prints peer bytes to stdout/stderr). Idempotent;
 * sip_msg_parse and the builders call it on first use. */
void sip_msg_global_init(void);

/* Parses one complete message from buf[0..len). For a datagram the body is the rest
 * of the buffer, cut to Content-Length if that is smaller (RFC 3261 §18.3); a shorter
 * datagram than Content-Length is an error. Stream callers pass exactly one framed
 * message (sip_frame). The body never goes through osip (it mangles multipart).
 * Returns 0 with *out set (caller owns), PE_PROTO if unparseable, PE_NOMEM. Does not
 * check for mandatory headers: see sip_msg_validate. */
int sip_msg_parse(const void *buf, size_t len, struct sip_msg **out);

/* sip_msg_parse for a stream message framed by sip_frame_scan: hlen is the frame's
 * header_len (the first CR LF CR LF ends there), which spares searching for it again.
 * Same results as sip_msg_parse(buf, len, out); an hlen not ending with CR LF CR LF is
 * ignored (searched for instead). */
int sip_msg_parse_framed(const void *buf, size_t hlen, size_t len, struct sip_msg **out);

/* Parses only the header block at the start of buf[0..len) and ignores the body and
 * Content-Length: for answering 400 to a stream message that cannot be framed. */
int sip_msg_parse_head(const void *buf, size_t len, struct sip_msg **out);

/* Checks what RFC 3261 §8.1.1 requires of a request (Via with a branch, From, To,
 * Call-ID, a CSeq whose method equals the request method, Max-Forwards if present
 * numeric) or of a response (Via, From, To, Call-ID, CSeq). Returns 0 or PE_PROTO
 * with *why set to a static description. */
int sip_msg_validate(struct sip_msg *m, const char **why);

void sip_msg_free(struct sip_msg *m);

/* --- accessors ------------------------------------------------------------------- */

bool sip_msg_is_request(const struct sip_msg *m);
/* Request method ("MESSAGE"), or NULL for a response. */
const char *sip_msg_method(const struct sip_msg *m);
/* Response status code, or 0 for a request. */
int sip_msg_status(const struct sip_msg *m);
/* Reason phrase of a response, or "" . */
const char *sip_msg_reason(const struct sip_msg *m);
/* Request-URI as a string, or NULL for a response. */
const char *sip_msg_ruri(struct sip_msg *m);
/* From / To addr-spec URI (no display name, no parameters) and tag (NULL if none). */
const char *sip_msg_from_uri(struct sip_msg *m);
const char *sip_msg_from_tag(struct sip_msg *m);
const char *sip_msg_from_display(struct sip_msg *m);
const char *sip_msg_to_uri(struct sip_msg *m);
const char *sip_msg_to_tag(struct sip_msg *m);
/* Call-ID value, or NULL. */
const char *sip_msg_call_id(struct sip_msg *m);
/* CSeq number (0 if absent) and, if method is not NULL, its method (NULL if absent). */
uint32_t sip_msg_cseq(struct sip_msg *m, const char **method);
/* Number of Via header values. */
int sip_msg_via_count(struct sip_msg *m);
/* Branch parameter of the idx-th Via (0 = top), or NULL. */
const char *sip_msg_via_branch(struct sip_msg *m, int idx);
/* Top Via's transport, sent-by host and port (0 if absent), "received" and "rport"
 * parameters (NULL / -1 if absent, 0 for a valueless rport). Any out pointer may be
 * NULL. Returns 0 or PE_NOTFOUND without a Via. */
int sip_msg_via_top(struct sip_msg *m, enum sip_proto *proto, const char **host, int *port,
		    const char **received, int *rport);
/* Max-Forwards value, or -1 if absent or not a number. */
int sip_msg_max_forwards(struct sip_msg *m);
/* Content-Type value as written ("text/plain;charset=UTF-8"), or NULL. */
const char *sip_msg_content_type(struct sip_msg *m);
/* True if the Content-Type's type/subtype equals mtype (case-insensitive, parameters
 * ignored). */
bool sip_msg_content_type_is(struct sip_msg *m, const char *mtype);
/* The body bytes (not NUL-terminated) and their length; *len = 0 without a body. */
void sip_msg_body(const struct sip_msg *m, const uint8_t **body, size_t *len);
/* Expires / Retry-After delta-seconds, or -1 if absent or malformed. */
int sip_msg_expires(struct sip_msg *m);
int sip_msg_retry_after(struct sip_msg *m);
/* Single-valued text headers (compact forms are understood), or NULL. */
const char *sip_msg_event(struct sip_msg *m);
const char *sip_msg_subscription_state(struct sip_msg *m);
const char *sip_msg_content_language(struct sip_msg *m);
const char *sip_msg_subject(struct sip_msg *m);
/* The idx-th value of a header by name (case-insensitive; compact forms understood),
 * or NULL. Works for every header, including those osip keeps as structures (Via,
 * Contact, Route, Record-Route, Accept, Allow, …); list headers written as
 * "a, b" yield one value per element for those. */
const char *sip_msg_header(struct sip_msg *m, const char *name, int idx);
/* Number of Record-Route values and the idx-th one as a string (name-addr), or NULL. */
int sip_msg_record_route_count(struct sip_msg *m);
const char *sip_msg_record_route(struct sip_msg *m, int idx);
/* The first Contact's URI, or NULL. */
const char *sip_msg_contact_uri(struct sip_msg *m);
/* The value of the one Contact header of a received message exactly as received (after
 * the colon, up to and including its CR LF; a view into the message, not NUL-terminated),
 * for telling an unchanged Contact without osip: two messages whose texts are equal have
 * equal sip_msg_contact_uri. Returns 0, PE_NOTFOUND without a Contact header, PE_STATE if
 * there is no such text (a built or changed message, or more than one Contact header):
 * use sip_msg_contact_uri then. */
int sip_msg_contact_text(const struct sip_msg *m, const char **text, size_t *len);
/* True if this message was synthesised locally (a 408 on timeout, a 503 on transport
 * failure) rather than received. */
bool sip_msg_is_local(const struct sip_msg *m);

/* --- header value helpers (pure) ------------------------------------------------- */

/* Copies the first token of a header value ("presence" of "presence;id=1", "active"
 * of "active;expires=60"), trimmed, into out. Returns its length or PE_NOTFOUND. */
int sip_hvalue_token(const char *hvalue, char *out, size_t cap);
/* Copies the value of parameter name (case-insensitive) of a header value into out
 * (quotes removed). Returns its length (0 for a flag) or PE_NOTFOUND. */
int sip_hvalue_param(const char *hvalue, const char *name, char *out, size_t cap);

/* --- builders -------------------------------------------------------------------- */

/* A new request line "METHOD ruri SIP/2.0". Returns NULL if method or ruri is
 * malformed. The caller adds the headers and owns the result. */
struct sip_msg *sip_msg_new_request(const char *method, const char *ruri);
/* A response to req: copies every Via, From, To, Call-ID and CSeq (those present) and
 * adds to_tag to To if To has no tag yet (to_tag may be NULL). reason NULL = the
 * standard phrase. Never fails on a request missing headers (for 400s). Returns NULL
 * only if allocation fails. */
struct sip_msg *sip_msg_new_response(struct sip_msg *req, int status, const char *reason,
				     const char *to_tag);
/* The wire form of the response sip_msg_new_response(req, status, reason, to_tag) would
 * serialise to, with no other header and no body, appended to out and built straight
 * from the header text req was parsed from (no osip work, a few hundred bytes copied).
 * For a received request only: PE_STATE if req was built locally or changed by a
 * builder since the parse (sip_msg_via_set_received excepted), PE_INVAL for a status
 * outside 100-699, PE_TOOBIG (out's bound), PE_NOMEM. sip_msg_new_response uses the
 * same text for such requests (osip parses it only if the response is read or changed
 * beyond status, reason, matching fields, To tag and appended headers). */
int sip_msg_response_wire(struct sip_msg *req, int status, const char *reason, const char *to_tag,
			  struct buf *out);
/* A minimal response with no copied headers: for input too broken to copy from. */
struct sip_msg *sip_msg_new_bare_response(int status, const char *reason);

/* Sets From / To. uri is an addr-spec ("sip:a@b") or a name-addr ("\"A\" <sip:a@b>");
 * tag may be NULL. Returns 0 or PE_INVAL. */
int sip_msg_set_from(struct sip_msg *m, const char *uri, const char *tag);
int sip_msg_set_to(struct sip_msg *m, const char *uri, const char *tag);
/* Sets the To tag (responses, in-dialog requests). Replaces an existing tag. */
int sip_msg_set_to_tag(struct sip_msg *m, const char *tag);
int sip_msg_set_call_id(struct sip_msg *m, const char *call_id);
int sip_msg_set_cseq(struct sip_msg *m, uint32_t num, const char *method);
int sip_msg_set_request_uri(struct sip_msg *m, const char *ruri);
/* Inserts a Via at the top: "SIP/2.0/<proto> sent_by;branch=<branch>[;rport]". */
int sip_msg_push_via(struct sip_msg *m, enum sip_proto proto, const char *sent_by,
		     const char *branch, bool rport);
/* Removes the top Via. Returns 0 or PE_NOTFOUND. */
int sip_msg_pop_via(struct sip_msg *m);
/* Records the RFC 3261 §18.2.1 "received" and RFC 3581 "rport" values in the top Via
 * of a received request (received only if host differs from sent-by; rport only if
 * the Via asked for it). */
int sip_msg_via_set_received(struct sip_msg *m, const char *ip, int port);
int sip_msg_set_max_forwards(struct sip_msg *m, int n);
/* Appends a header line "name: value". Content-Type and Content-Length are refused
 * (PE_INVAL): use sip_msg_set_body. */
int sip_msg_add_header(struct sip_msg *m, const char *name, const char *value);
/* Removes every header named name (generic headers only). Returns how many. */
int sip_msg_remove_header(struct sip_msg *m, const char *name);
/* Replaces every Contact with one value (a name-addr). Returns 0 or PE_INVAL. */
int sip_msg_set_contact(struct sip_msg *m, const char *contact);
/* Appends a Route header value (a name-addr or addr-spec). */
int sip_msg_add_route(struct sip_msg *m, const char *route);
/* Sets the body and its Content-Type (both copied); ctype NULL with len 0 clears. */
int sip_msg_set_body(struct sip_msg *m, const char *ctype, const void *body, size_t len);
/* Appends the wire form to out. Returns 0, PE_NOMEM, PE_TOOBIG (out's bound) or
 * PE_PROTO if osip could not serialise the message. */
int sip_msg_serialise(struct sip_msg *m, struct buf *out);
/* Marks a message as synthesised (see sip_msg_is_local). */
void sip_msg_set_local(struct sip_msg *m);

/* The standard reason phrase for a status code ("Not Found"), or "Unknown". */
const char *sip_reason_phrase(int status);

/* Writes len-1 random characters from [0-9a-z] and a NUL into out (tags, Call-IDs,
 * branches). Seeded from getrandom once; not for secrets. */
void sip_random_token(char *out, size_t len);

#endif
