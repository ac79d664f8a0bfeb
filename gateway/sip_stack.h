/* The gateway's SIP stack: what the translator uses. Requests out with one final
 * callback (server location, failover, MESSAGE ordering); requests in with a handle to
 * answer. Built on sip_transport → sip_txn → here; no osip type crosses this header. */
#ifndef PARLEY_SIP_STACK_H
#define PARLEY_SIP_STACK_H

#include "sip_dialog.h"
#include "sip_msg.h"
#include "sip_txn.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Configuration; strings are copied by sip_stack_new. Zero / NULL fields take the
 * defaults given. */
struct sip_cfg {
	/* Listeners, "ip:port" ("[::1]:5060" for IPv6; port 0 = any, for tests). NULL = the
	 * transport is not offered (and cannot be used to send). */
	const char *listen_udp;
	const char *listen_tcp;
	const char *listen_tls;
	/* Host written in Via sent-by and Contact; default: each listener's address. */
	const char *advertise;
	/* Where out-of-dialog requests go: the front-end pool. Either static members
	 * (NULL-terminated, "udp:127.0.0.61:5060", "tls:10.0.0.5:5061;name=pool.corp.test";
	 * tried in order, down members last) or a domain resolved per RFC 3263 (NAPTR →
	 * SRV → A/AAAA; pool_sips = TLS only). */
	const char *const *pool;
	const char *pool_domain;
	bool pool_sips;
	/* DNS servers for RFC 3263 ("127.0.0.153:53"), NULL-terminated; NULL = resolv.conf.
	 * A resolver is only created when pool_domain is set or dns_servers given. */
	const char *const *dns_servers;
	/* TLS: CA bundle to verify the pool (required for TLS targets), our certificate and
	 * key (required for listen_tls; also presented as client certificate if set). */
	const char *tls_ca;
	const char *tls_cert;
	const char *tls_key;
	bool tls_no_verify; /* tests only: accept any server certificate */
	/* RFC 3261 timers: T1 500 ms, T2 4 s, T4 5 s. */
	uint32_t t1_ms, t2_ms, t4_ms;
	/* Flows: CRLF keep-alive 30 s, inbound idle close 300 s, connect deadline 5 s. */
	uint32_t keepalive_ms, idle_ms, connect_ms;
	/* OPTIONS health checks of each pool member every health_ms; 0 = off. A member
	 * that times out or fails at transport level is marked down; any answer marks it up
	 * again. Failures of real requests mark members down too. */
	uint32_t health_ms;
	/* Stream bounds: header block 16 KiB, body 64 KiB. */
	size_t max_header, max_body;
	/* Until translation exists: 0 = hand incoming requests to on_request; otherwise
	 * answer every incoming request (but OPTIONS, which always gets 200) with this
	 * status. A 2xx to SUBSCRIBE is followed by a NOTIFY "terminated;reason=noresource"
	 * in the new dialog (RFC 6665 §4.2.1.2). */
	int fixed_answer;
	/* User part of our Contact, default "parley". */
	const char *contact_user;
};

struct sip_stack;
struct sip_req; /* one outgoing request, across its failover attempts */

struct sip_stack_cbs {
	/* An incoming request (not OPTIONS; not a retransmission; not looped). Answer it
	 * exactly once with a final response through sip_stack_response + sip_stxn_respond,
	 * or sip_stxn_reply (sip_txn.h); st and req stay valid until then. NULL: requests
	 * get 501 unless fixed_answer is set. */
	void (*on_request)(void *arg, struct sip_stxn *st, struct sip_msg *req);
};

/* Creates the stack, its listeners, TLS contexts and resolver. Returns 0 and *out, or
 * PE_CONFIG (err says what: a listener that cannot bind, unreadable TLS files, a bad
 * pool member, no pool), PE_NOMEM. */
int sip_stack_new(uv_loop_t *loop, const struct sip_cfg *cfg, const struct sip_stack_cbs *cbs,
		  void *arg, struct sip_stack **out, char *err, size_t errlen);
/* Drops outstanding requests without callbacks, closes everything; memory is freed
 * from the loop, so run it afterwards. Not from inside a stack callback. NULL is a
 * no-op. */
void sip_stack_free(struct sip_stack *s);

/* The bound port of a listener (useful with port 0), or 0. */
int sip_stack_port(const struct sip_stack *s, enum sip_proto proto);

/* A new out-of-dialog request: Request-URI ruri, From from (an addr-spec or name-addr)
 * with a fresh tag, To to, Call-ID call_id (NULL = fresh), CSeq 1, Max-Forwards 70.
 * The caller adds headers and a body. NULL if a URI is malformed. */
struct sip_msg *sip_stack_new_request(struct sip_stack *s, const char *method, const char *ruri,
				      const char *from, const char *to, const char *call_id);

/* Called exactly once per sip_stack_send that returned 0 (unless abandoned), never from
 * inside sip_stack_send. resp is the final response (sip_msg_is_local for a 408 after
 * Timer F, or a 503 when every target failed at transport level or none was found),
 * valid during the call. */
typedef void (*sip_stack_cb)(void *arg, struct sip_msg *resp);

/* Sends req (ownership taken, even on error). next_hop NULL: to the pool; else to that
 * URI (for in-dialog requests: sip_dialog_next_hop). Each attempt is a new client
 * transaction; the next target is tried on 503, on a transport failure and on a
 * timeout (RFC 3263 §4.3), and targets that failed at transport level are marked down.
 * Dialog-forming and in-dialog methods (SUBSCRIBE, NOTIFY, REFER) get our Contact.
 * Out-of-dialog MESSAGE requests (no To tag) are serialised per Request-URI: at most
 * one pending, later ones wait in order (RFC 3428 §8). *out (may be NULL) is a handle
 * for sip_stack_abandon, valid until the callback starts. Returns 0, PE_INVAL (not a
 * request, or next_hop not a sip/sips URI), PE_NOMEM. */
int sip_stack_send(struct sip_stack *s, struct sip_msg *req, const char *next_hop, sip_stack_cb cb,
		   void *arg, struct sip_req **out);
/* No callback will follow; a queued MESSAGE is dropped from its queue. */
void sip_stack_abandon(struct sip_req *r);

/* A response to an incoming request with our To tag, plus our Contact for a 2xx to a
 * dialog-forming request (SUBSCRIBE). Send it with sip_stxn_respond. */
struct sip_msg *sip_stack_response(struct sip_stack *s, struct sip_stxn *st, int status,
				   const char *reason);

/* Dialogs the translator keeps (subscriptions) can be registered so in-dialog requests
 * are matched for it: sip_stack_dialog_find returns the registered dialog a received
 * request belongs to (Call-ID + To tag = local tag + From tag), or NULL. The dialog
 * must stay valid (and its Call-ID/local tag unchanged) while registered. */
int sip_stack_dialog_register(struct sip_stack *s, struct sip_dialog *d);
void sip_stack_dialog_unregister(struct sip_stack *s, struct sip_dialog *d);
struct sip_dialog *sip_stack_dialog_find(struct sip_stack *s, struct sip_msg *req);

struct sip_stack_stats {
	uint64_t requests_out;	 /* sip_stack_send calls accepted */
	uint64_t failovers;	 /* attempts moved to the next target */
	uint64_t requests_in;	 /* handed to on_request or answered by the fixed answer */
	uint64_t message_queued; /* MESSAGEs that waited behind another to the same URI */
	uint64_t health_down, health_up;
	const struct sip_txn_stats *txn;
	const struct sip_tp_stats *tp;
};
/* Counters (txn and tp point into the layers). */
void sip_stack_stats(const struct sip_stack *s, struct sip_stack_stats *out);

#endif
