/* Chat states: the RFC 3994 isComposing document (application/im-iscomposing+xml), its
 * mapping to XEP-0085 chat states (RFC 7573 §6, MAPPING.md F1) and the refresh and
 * timeout rules (F2) as trackers driven by the caller's clock. No I/O, no timers. */
#ifndef PARLEY_CHATSTATE_H
#define PARLEY_CHATSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHATSTATE_NS_ISCOMPOSING "urn:ietf:params:xml:ns:im-iscomposing"
#define CHATSTATE_NS_CHATSTATES "http://jabber.org/protocol/chatstates"
#define CHATSTATE_CONTENT_TYPE "application/im-iscomposing+xml"

/* A reasonable bound on an isComposing body; what chatstate_parse is usually given. */
#define CHATSTATE_DOC_MAX 4096
/* Longest contenttype or lastactive value kept, in bytes. */
#define CHATSTATE_FIELD_MAX 127

/* F2 timing, in seconds. */
#define CHATSTATE_REFRESH_MIN 60     /* no refresh interval shorter (RFC 3994) */
#define CHATSTATE_REFRESH_DEFAULT 90 /* the interval we announce and keep */
#define CHATSTATE_ACTIVE_TIMEOUT 120 /* an active without <refresh> turns idle after this */
/* We stop refreshing a composing XMPP user after this long without a new <composing/>. */
#define CHATSTATE_COMPOSING_MAX 300

/* XEP-0085 chat states (element names in CHATSTATE_NS_CHATSTATES). */
enum chatstate {
	CHATSTATE_NONE = 0,  /* no chat state / nothing to send */
	CHATSTATE_ACTIVE,    /* "active": paying attention */
	CHATSTATE_COMPOSING, /* "composing": typing */
	CHATSTATE_PAUSED,    /* "paused": stopped typing */
	CHATSTATE_INACTIVE,  /* "inactive": not paying attention */
	CHATSTATE_GONE,	     /* "gone": left the conversation */
};

/* "active" ... "gone"; "" for CHATSTATE_NONE or out of range. */
const char *chatstate_name(enum chatstate s);
/* The state named by s[0..n) (exact), or CHATSTATE_NONE. */
enum chatstate chatstate_from_name(const char *s, size_t n);

/* RFC 3994 states. */
enum chatstate_ic {
	CHATSTATE_IC_IDLE = 0, /* "idle" */
	CHATSTATE_IC_ACTIVE,   /* "active": composing */
};

/* One isComposing document. Caller-owned, embeddable; strings are copies. */
struct chatstate_doc {
	enum chatstate_ic state;
	unsigned refresh;			   /* seconds; 0 = absent */
	char contenttype[CHATSTATE_FIELD_MAX + 1]; /* "" = absent */
	char lastactive[CHATSTATE_FIELD_MAX + 1];  /* xs:dateTime as sent; "" = absent */
};

/* Parses an isComposing document buf[0..len) into *d (zeroed first). Expat,
 * namespace-aware, with a random hash salt; a DOCTYPE (hence any entity declaration) is
 * refused; comments and processing instructions are ignored. The root must be
 * {CHATSTATE_NS_ISCOMPOSING}isComposing; its children in that namespace state (required:
 * "active" or "idle", ASCII case-insensitive), lastactive, contenttype, refresh (a
 * positive decimal integer below 10^9) may each appear once, with text only; values are
 * trimmed of XML whitespace and must then hold no control character and fit
 * CHATSTATE_FIELD_MAX bytes. Unknown children and children in other namespaces are
 * ignored (the schema's ##other extension point), as is element order.
 * Returns 0; PE_TOOBIG if len > max; PE_PROTO for anything else wrong; PE_NOMEM. */
int chatstate_parse(const char *buf, size_t len, size_t max, struct chatstate_doc *d);

/* Writes d as an isComposing document (XML declaration, default namespace, children in
 * schema order, absent fields left out, text escaped) to out (cap bytes, NUL-terminated);
 * returns its length. PE_INVAL if a string field is not UTF-8, holds a control character,
 * is longer than CHATSTATE_FIELD_MAX or has leading or trailing spaces, or refresh >=
 * 10^9; PE_TOOBIG if cap is too small (CHATSTATE_DOC_MAX always suffices). */
int chatstate_write(const struct chatstate_doc *d, char *out, size_t cap);

/* F1, XMPP -> SIP (RFC 7573 §6): composing -> active; active, inactive, paused -> idle.
 * Returns true and sets *out for those; false for gone (nothing in page mode) and NONE. */
bool chatstate_to_ic(enum chatstate s, enum chatstate_ic *out);

/* F1, SIP -> XMPP: active -> composing, idle -> active. */
enum chatstate chatstate_from_ic(enum chatstate_ic s);

/* F2: the refresh interval to announce: configured, raised to CHATSTATE_REFRESH_MIN;
 * CHATSTATE_REFRESH_DEFAULT if configured is 0. */
unsigned chatstate_refresh_interval(unsigned configured);

/* F2: seconds after which a received active state turns idle unless refreshed: its
 * <refresh> raised to CHATSTATE_REFRESH_MIN (a peer cannot make us time out faster), or
 * CHATSTATE_ACTIVE_TIMEOUT without one. 0 for an idle document. */
unsigned chatstate_active_timeout(const struct chatstate_doc *d);

/* Receiving side (SIP -> XMPP) of one conversation: turns isComposing documents and the
 * passing of time into XEP-0085 notifications, never repeating a state. Caller-owned;
 * zero-initialise. Times are the caller's monotonic milliseconds. */
struct chatstate_rx {
	bool active;	     /* the SIP user is composing */
	uint64_t expires_ms; /* when active turns idle without a refresh */
};

/* An isComposing document arrived at now_ms. Returns the XEP-0085 state to send to the
 * XMPP user (COMPOSING when active starts, ACTIVE when idle ends it) or NONE (a refresh of
 * active, which only moves the expiry, or idle while idle). */
enum chatstate chatstate_rx_doc(struct chatstate_rx *rx, const struct chatstate_doc *d,
				uint64_t now_ms);
/* A MESSAGE with content arrived: that ends composing (RFC 3994) with no separate
 * notification; the caller puts <active/> on the message it makes. */
void chatstate_rx_message(struct chatstate_rx *rx);
/* Returns ACTIVE, and turns idle, if the active state has expired at now_ms; else NONE. */
enum chatstate chatstate_rx_tick(struct chatstate_rx *rx, uint64_t now_ms);
/* When chatstate_rx_tick next has work: the expiry while active, 0 when idle. */
uint64_t chatstate_rx_deadline(const struct chatstate_rx *rx);

/* Sending side (XMPP -> SIP) of one conversation: turns XEP-0085 notifications into
 * isComposing documents, refreshing active every interval. Caller-owned; set up with
 * chatstate_tx_init. */
struct chatstate_tx {
	bool active;		/* the last document sent said active */
	unsigned refresh;	/* seconds announced in <refresh> */
	uint64_t refresh_at_ms; /* when the next refresh of active is due */
	uint64_t composing_ms;	/* when the XMPP side last said composing */
};

/* refresh_s as for chatstate_refresh_interval. */
void chatstate_tx_init(struct chatstate_tx *tx, unsigned refresh_s);
/* A standalone notification (a message without body) from the XMPP side at now_ms. Returns
 * true and fills *d when a document must be sent as a MESSAGE: composing while idle ->
 * active with <refresh> and contenttype text/plain; active, paused or inactive while
 * active -> idle. A repeated state sends nothing (a repeated composing only restarts the
 * CHATSTATE_COMPOSING_MAX clock); gone sends nothing (page mode) and forgets the active
 * state, leaving the SIP side to time out. */
bool chatstate_tx_state(struct chatstate_tx *tx, enum chatstate s, uint64_t now_ms,
			struct chatstate_doc *d);
/* A message with a body went out as a MESSAGE: the receiver takes content as the end of
 * composing, so the tracker turns idle and sends nothing. */
void chatstate_tx_message(struct chatstate_tx *tx);
/* At now_ms: if active and the refresh is due, returns true with the refresh (active) in
 * *d; if the XMPP side said nothing for CHATSTATE_COMPOSING_MAX, returns true with idle
 * and turns idle. Otherwise false. */
bool chatstate_tx_tick(struct chatstate_tx *tx, uint64_t now_ms, struct chatstate_doc *d);
/* When chatstate_tx_tick next has work, 0 when idle. Refreshes are due at 90% of the
 * announced interval, so that they reach the receiver before its timer runs out. */
uint64_t chatstate_tx_deadline(const struct chatstate_tx *tx);

#endif
