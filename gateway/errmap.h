/* Error mapping between XMPP stanza errors and SIP responses (RFC 7247 §7): MAPPING.md H1
 * (XMPP -> SIP), H2 and H3 (SIP -> XMPP), Reason-Phrase <-> <text/>. Pure tables. */
#ifndef PARLEY_ERRMAP_H
#define PARLEY_ERRMAP_H

#include <stdbool.h>
#include <stddef.h>

/* RFC 6120 §8.3.3 stanza error conditions: X(enum suffix, element name, the error type
 * §8.3.3 recommends for it). */
#define ERRMAP_COND_MAP(X)                                                                         \
	X(BAD_REQUEST, "bad-request", MODIFY)                                                      \
	X(CONFLICT, "conflict", CANCEL)                                                            \
	X(FEATURE_NOT_IMPLEMENTED, "feature-not-implemented", CANCEL)                              \
	X(FORBIDDEN, "forbidden", AUTH)                                                            \
	X(GONE, "gone", CANCEL)                                                                    \
	X(INTERNAL_SERVER_ERROR, "internal-server-error", CANCEL)                                  \
	X(ITEM_NOT_FOUND, "item-not-found", CANCEL)                                                \
	X(JID_MALFORMED, "jid-malformed", MODIFY)                                                  \
	X(NOT_ACCEPTABLE, "not-acceptable", MODIFY)                                                \
	X(NOT_ALLOWED, "not-allowed", CANCEL)                                                      \
	X(NOT_AUTHORIZED, "not-authorized", AUTH)                                                  \
	X(POLICY_VIOLATION, "policy-violation", MODIFY)                                            \
	X(RECIPIENT_UNAVAILABLE, "recipient-unavailable", WAIT)                                    \
	X(REDIRECT, "redirect", MODIFY)                                                            \
	X(REGISTRATION_REQUIRED, "registration-required", AUTH)                                    \
	X(REMOTE_SERVER_NOT_FOUND, "remote-server-not-found", CANCEL)                              \
	X(REMOTE_SERVER_TIMEOUT, "remote-server-timeout", WAIT)                                    \
	X(RESOURCE_CONSTRAINT, "resource-constraint", WAIT)                                        \
	X(SERVICE_UNAVAILABLE, "service-unavailable", CANCEL)                                      \
	X(SUBSCRIPTION_REQUIRED, "subscription-required", AUTH)                                    \
	X(UNDEFINED_CONDITION, "undefined-condition", CANCEL)                                      \
	X(UNEXPECTED_REQUEST, "unexpected-request", WAIT)

enum errmap_cond {
	ERRMAP_COND_NONE = 0, /* no error, or an unknown element name */
#define ERRMAP__COND_ENUM(name, str, type) ERRMAP_COND_##name,
	ERRMAP_COND_MAP(ERRMAP__COND_ENUM)
#undef ERRMAP__COND_ENUM
	    ERRMAP_COND__COUNT
};

/* RFC 6120 §8.3.2 error types. */
enum errmap_type {
	ERRMAP_TYPE_NONE = 0, /* no error, or an unknown type name */
	ERRMAP_TYPE_AUTH,     /* retry after providing credentials */
	ERRMAP_TYPE_CANCEL,   /* do not retry: the error cannot be remedied */
	ERRMAP_TYPE_CONTINUE, /* proceed: the condition was only a warning */
	ERRMAP_TYPE_MODIFY,   /* retry after changing the data sent */
	ERRMAP_TYPE_WAIT,     /* retry after waiting: the error is temporary */
};

/* The element name ("item-not-found"), or "" for ERRMAP_COND_NONE or out of range. */
const char *errmap_cond_name(enum errmap_cond cond);
/* The condition named by s[0..n) (exact, case-sensitive), or ERRMAP_COND_NONE. */
enum errmap_cond errmap_cond_from_name(const char *s, size_t n);
/* "auth", "cancel", "continue", "modify", "wait", or "" for NONE / out of range. */
const char *errmap_type_name(enum errmap_type type);
/* The type named by s[0..n) (exact), or ERRMAP_TYPE_NONE. */
enum errmap_type errmap_type_from_name(const char *s, size_t n);
/* The type RFC 6120 §8.3.3 recommends for cond; ERRMAP_TYPE_NONE for NONE / out of
 * range. undefined-condition, which may take any type, gets cancel. */
enum errmap_type errmap_cond_type(enum errmap_cond cond);

/* An XMPP error to answer on the SIP side, with what the table's alternatives depend on. */
struct errmap_xmpp {
	enum errmap_cond cond;
	bool bare;	   /* the error concerns a bare JID: the second code of "4xx / 6xx" rows
			      (RFC 7247 §7 note 2); a full JID when false */
	bool new_address;  /* <gone/> names a new address: 301 (with a Contact) instead of 410 */
	bool unresolvable; /* <remote-server-not-found/> because the domain could not be
			      resolved or reached now (408), not because it does not exist (404) */
	bool pending;	   /* <unexpected-request/> because another request is still pending
			      (491 Request Pending) rather than out of order (400) */
};

/* H1: the SIP status for an XMPP error. bad-request, conflict, jid-malformed,
 * subscription-required, undefined-condition 400; feature-not-implemented 405 (full) /
 * 501 (bare); forbidden 403 / 603; gone 301 with a new address, else 410;
 * internal-server-error and resource-constraint 500; item-not-found 404 / 604;
 * not-acceptable 406 / 606; not-allowed and policy-violation 403; not-authorized 401;
 * recipient-unavailable 480 / 600; redirect 302; registration-required 407;
 * remote-server-not-found 404, or 408 if unresolvable; remote-server-timeout 408;
 * service-unavailable 405 (full) / 403 (bare), never 503, which would make SIP proxies
 * stop sending anything to the gateway (RFC 7247 §7 note 5; 503 is kept for overload);
 * unexpected-request 400, or 491 if pending. A 405 response needs an Allow header field
 * (RFC 3261 §21.4.6), the caller adds it. An unknown condition (ERRMAP_COND_NONE or out
 * of range) is treated as undefined-condition. */
int errmap_to_sip(const struct errmap_xmpp *e);

/* An XMPP error made from a SIP failure. */
struct errmap_stanza {
	enum errmap_cond cond; /* ERRMAP_COND_NONE if status is not a failure (300..699) */
	enum errmap_type type; /* errmap_cond_type(cond) */
};

/* H2 and H3: the XMPP condition and type for a SIP final status. Listed codes: 301 gone,
 * other 3xx redirect; 400 bad-request; 401 not-authorized; 403 forbidden; 404, 481, 484,
 * 485, 604 item-not-found; 405, 420, 501 feature-not-implemented; 406, 415, 416, 482, 483,
 * 488, 606 not-acceptable; 407 registration-required; 408, 504 remote-server-timeout; 410
 * gone; 413, 414, 489 policy-violation; 423 resource-constraint; 480, 486, 487, 600, 603
 * recipient-unavailable; 491 unexpected-request; 500, 503 internal-server-error; 502
 * remote-server-not-found. Unlisted codes by class: 3xx redirect, 4xx bad-request, 5xx
 * internal-server-error, 6xx recipient-unavailable. Anything outside 300..699 gives
 * {NONE, NONE}. */
struct errmap_stanza errmap_from_sip(int status);

/* The standard Reason-Phrase for status (RFC 3261 §21 and the registry's later codes, e.g.
 * 404 "Not Found", 416 "Unsupported URI Scheme"); for an unregistered code the class name
 * ("Client Error" for 4xx ...), "Unknown" outside 100..699. A static string. */
const char *errmap_reason(int status);

/* Longest Reason-Phrase or <text/> the two functions below write, in bytes. */
#define ERRMAP_TEXT_MAX 256

/* XMPP <text/> -> SIP Reason-Phrase: writes the reason for a response with the given
 * status to out (cap bytes, NUL-terminated) and returns its length. text[0..len) (UTF-8,
 * may be NULL / empty) is used when it is valid UTF-8 with something printable: control
 * characters (CR and LF included) become spaces, leading and trailing spaces are trimmed,
 * and it is cut at a character boundary to fit min(cap - 1, ERRMAP_TEXT_MAX). Otherwise
 * errmap_reason(status), cut the same way. Requires cap >= 1. */
size_t errmap_reason_from_text(const char *text, size_t len, int status, char *out, size_t cap);

/* SIP Reason-Phrase -> XMPP <text/>: the phrase made safe for XML character data (valid
 * UTF-8 required, else nothing; characters XML 1.0 forbids, and other controls, become
 * spaces; trimmed; cut at a character boundary to fit min(cap - 1, ERRMAP_TEXT_MAX)),
 * NUL-terminated in out. Returns its length; 0 means send no <text/>. Requires cap >= 1.
 * The caller still XML-escapes it when serialising. */
size_t errmap_text_from_reason(const char *reason, size_t len, char *out, size_t cap);

#endif
