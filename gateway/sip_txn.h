/* SIP transactions (RFC 3261 §17): non-INVITE client and server, timers on libuv. */
#ifndef PARLEY_SIP_TXN_H
#define PARLEY_SIP_TXN_H

#include "sip_hop.h"
#include "sip_msg.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* Zero fields take the defaults. */
struct sip_txn_cfg {
	uint32_t t1_ms; /* RTT estimate, default 500 */
	uint32_t t2_ms; /* retransmit cap, default 4000 */
	uint32_t t4_ms; /* max message lifetime in the network, default 5000 */
	/* "host:port" we write as Via sent-by, per transport (copied). A transport with
	 * NULL here cannot send requests (PE_INVAL). */
	const char *sent_by[SIP_PROTO__N];
	/* Keys the loop-detection marker in our branches; NULL = random per process. */
	const char *instance;
};

struct sip_txn_layer;
struct sip_ctxn; /* client transaction */
struct sip_stxn; /* server transaction */

/* The layer owns no socket: it sends through io and is fed by sip_txn_input. */
struct sip_txn_io {
	/* Sends one serialised message to hop (hop->flow: a stream to use if still open).
	 * Returns 0 and, for streams, the flow used in *flow (so sip_txn_flow_failed can
	 * find the transactions on it), or a negative error: the client transaction then
	 * ends with a synthesised 503. */
	int (*send)(void *arg, const struct sip_hop *hop, const uint8_t *p, size_t n,
		    uint64_t *flow);
	/* A new request (not a retransmission, not a loop). st is the TU's handle until it
	 * answers with a final response; req is owned by st and valid as long as st. */
	void (*on_request)(void *arg, struct sip_stxn *st, struct sip_msg *req);
};

/* Returns the layer or NULL (allocation failure, or a sent_by that is not host:port). */
struct sip_txn_layer *sip_txn_layer_new(uv_loop_t *loop, const struct sip_txn_cfg *cfg,
					const struct sip_txn_io *io, void *io_arg);
/* Drops every transaction without callbacks (server handles held by the TU become
 * invalid) and closes the timer; memory is freed from the loop, so run it afterwards.
 * Must not be called from one of this layer's callbacks. NULL is a no-op. */
void sip_txn_layer_free(struct sip_txn_layer *l);

/* --- client ------------------------------------------------------------------------ */

/* Exactly one call per sip_txn_request that returned 0 (unless abandoned): resp is the
 * final response (received, or synthesised: 408 on Timer F, 503 on transport failure;
 * see sip_msg_is_local), owned by the layer and valid during the call. The request
 * may be freed from here on. Provisional responses are absorbed. */
typedef void (*sip_ctxn_cb)(void *arg, struct sip_msg *resp);

/* Starts a client transaction: inserts our Via (a fresh branch with the magic cookie
 * and our loop marker; an earlier Via of ours on top, from a previous attempt, is
 * replaced), sets Max-Forwards 70 if absent, serialises and sends req to hop, and runs
 * Timers E (UDP) and F. req is borrowed: keep it alive and unchanged until cb. Never
 * calls cb from inside this call (a synchronous failure is reported from the loop).
 * *out (may be NULL) is a handle for sip_ctxn_abandon, valid until cb starts. Returns
 * 0, PE_INVAL (not a request, or no sent_by for the transport), PE_NOMEM, PE_PROTO
 * (unserialisable). */
int sip_txn_request(struct sip_txn_layer *l, struct sip_msg *req, const struct sip_hop *hop,
		    sip_ctxn_cb cb, void *arg, struct sip_ctxn **out);
/* The TU no longer wants the answer: no callback will follow and req is no longer
 * borrowed. (A non-INVITE request cannot be taken back on the wire.) */
void sip_ctxn_abandon(struct sip_ctxn *t);

/* --- server ------------------------------------------------------------------------ */

struct sip_msg *sip_stxn_request(struct sip_stxn *st);
/* Where the request came from (proto, source address and port, flow). */
const struct sip_hop *sip_stxn_source(const struct sip_stxn *st);
/* The To tag our responses carry (generated unless the request had one). */
const char *sip_stxn_local_tag(const struct sip_stxn *st);
/* A new response to the request with our To tag; the caller adds headers and passes it
 * to sip_stxn_respond. NULL on allocation failure. */
struct sip_msg *sip_stxn_response(struct sip_stxn *st, int status, const char *reason);
/* Sends resp (owned from here on, even on error). A provisional keeps the handle
 * valid; after a final (>= 200) the handle is invalid. Returns 0, PE_STATE if a final
 * was already sent, or a send error (the transaction still completes). */
int sip_stxn_respond(struct sip_stxn *st, struct sip_msg *resp);
/* sip_stxn_response + sip_stxn_respond. */
int sip_stxn_reply(struct sip_stxn *st, int status, const char *reason);

/* --- from the transport ------------------------------------------------------------ */

/* Feeds one parsed message (ownership taken) received from src. Requests: validated
 * (a bad one gets 400 naming what is wrong), loop-checked (482), matched against
 * server transactions (a retransmission is re-answered or absorbed), otherwise handed
 * to on_request. Responses: matched to a client transaction by top Via branch and
 * CSeq method; strays are dropped. Returns 0, or PE_PROTO if the message was a request
 * that could not be answered at all (no usable Via): the transport decides (drop on
 * UDP, bare 400 and close on a stream). */
int sip_txn_input(struct sip_txn_layer *l, struct sip_msg *m, const struct sip_hop *src);

/* A stream failed (connect refused, reset, TLS failure): client transactions waiting
 * on it end with a synthesised 503 (from the loop). */
void sip_txn_flow_failed(struct sip_txn_layer *l, uint64_t flow);

/* True if branch carries this layer's loop marker (one of our own Vias). */
bool sip_txn_is_own_branch(const struct sip_txn_layer *l, const char *branch);

/* Methods the per-method counters know (X-macro: enum and names); any other is OTHER. */
/* clang-format off */
#define SIP_TXN_METHOD_MAP(X)                                                                      \
	X(MESSAGE) X(SUBSCRIBE) X(NOTIFY) X(PUBLISH) X(OPTIONS) X(INFO) X(REFER) X(REGISTER)       \
	X(BYE) X(CANCEL) X(UPDATE) X(PRACK) X(OTHER)
enum sip_txn_method {
#define SIP_TXN__M(m) SIP_TXN_M_##m,
	SIP_TXN_METHOD_MAP(SIP_TXN__M)
#undef SIP_TXN__M
	SIP_TXN_M__N
};
/* clang-format on */
/* "MESSAGE", ..., "OTHER"; NULL outside the enum. */
const char *sip_txn_method_name(int m);
/* The enum value of a method name (exact, case-sensitive as RFC 3261 says); OTHER if unknown
 * or NULL. A switch on length and the first letter: no allocation, no table walk. */
enum sip_txn_method sip_txn_method_of(const char *method);

/* Final status classes 2xx..6xx are indexed 0..4 (status / 100 - 2). */
#define SIP_TXN_CLASSES 5
/* Upper bounds of the client transaction duration histogram, in microseconds (+Inf implied):
 * 1 ms .. 32 s, Timer F's default. */
/* clang-format off */
#define SIP_TXN_DURATION_BOUNDS_US                                                                 \
	{1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000,        \
	 5000000, 10000000, 32000000}
/* clang-format on */
#define SIP_TXN_DURATION_N 14

struct sip_txn_stats {
	uint64_t client_active;	   /* client transactions not yet answered */
	uint64_t client_total;	   /* all client transactions (live in the table) */
	uint64_t server_total;	   /* server transactions in the table */
	uint64_t retransmits;	   /* requests re-sent on Timer E */
	uint64_t resp_retransmits; /* responses re-sent for retransmitted requests */
	uint64_t timeouts;	   /* Timer F expiries */
	uint64_t transport_errors; /* client transactions ended by a transport failure */
	uint64_t loops;		   /* requests answered 482 */
	uint64_t bad_requests;	   /* requests answered 400 */
	uint64_t stray_responses;  /* responses matching no transaction */
	uint64_t absorbed;	   /* retransmitted requests absorbed while waiting */
	/* Client transactions ended, by method and class of the final response (received, or
	 * synthesised: 408 on Timer F, 503 on a transport failure); abandoned ones are not
	 * counted. Server transactions by method and class of the final response we sent
	 * (482 for loops and CANCEL's 200/481 included; stateless 400s are bad_requests). */
	uint64_t client_final[SIP_TXN_M__N][SIP_TXN_CLASSES];
	uint64_t server_final[SIP_TXN_M__N][SIP_TXN_CLASSES];
	/* Client transaction duration, from the first send to the final response, by method:
	 * bucket i counts durations <= bound i (not cumulative), the last one the rest. */
	uint64_t client_duration[SIP_TXN_M__N][SIP_TXN_DURATION_N + 1];
	uint64_t client_duration_sum_us[SIP_TXN_M__N];
};
const struct sip_txn_stats *sip_txn_stats(const struct sip_txn_layer *l);

#endif
