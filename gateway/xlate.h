/* The gateway's translator between link stanzas (XMPP, from and to the edges) and SIP
 * (toward the front-end pool): page-mode IM both ways (RFC 7572, RFC 3428), errors both
 * ways (RFC 7247 §7), iq answers for the served domains. MAPPING.md A, B, C, H. */
#ifndef PARLEY_GATEWAY_XLATE_H
#define PARLEY_GATEWAY_XLATE_H

#include "conf.h"
#include "edgelink.h"
#include "link.h"
#include "presence.h"
#include "sip_stack.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct xlate_conf {
	int message_type;          /* 0 = no type (RFC 7572 §5), 1 = normal, 2 = chat */
	uint64_t max_message;      /* C5: bytes of a translated MESSAGE (RFC 3428 §8: 1300) */
	uint64_t deadline_ms;      /* C4: 202 after this long without Delivered/Bounce */
	uint64_t thread_ttl_ms;    /* C8: how long a thread <-> Call-ID binding lives */
	uint64_t retry_after_s;    /* I4: Retry-After on 503 */
	char *state_path;	   /* the store: subscriptions, presence, threads */
	struct presence_conf presence;
};

#define XLATE_CONF_OPTIONS(T, m)                                                                   \
	{"translate", "message_type", CONF_ENUM, 0, 0, "none", offsetof(T, m.message_type), true, \
	 false, xlate_message_types,                                                               \
	 "type of a SIP page-mode MESSAGE in XMPP: none (RFC 7572), normal, or chat"},             \
	{"translate", "max_message_bytes", CONF_SIZE, 200, 1048576, "1300",                        \
	 offsetof(T, m.max_message), true, false, NULL,                                            \
	 "largest MESSAGE sent to the pool (RFC 3428 §8; raise only if every hop is TCP/TLS)"},    \
	{"translate", "delivery_deadline", CONF_DURATION_MS, 1000, 31000, "25s",                   \
	 offsetof(T, m.deadline_ms), true, false, NULL,                                            \
	 "answer 202 if the edge has not confirmed by then (below SIP Timer F, 32 s)"},            \
	{"translate", "thread_ttl", CONF_DURATION_MS, 1000, 604800000, "1h",                       \
	 offsetof(T, m.thread_ttl_ms), true, false, NULL,                                          \
	 "how long a conversation keeps its thread <-> Call-ID binding"},                          \
	{"translate", "retry_after", CONF_UINT, 1, 3600, "5", offsetof(T, m.retry_after_s), true,  \
	 false, NULL, "Retry-After seconds on 503 when no edge can take a message"},               \
	{"state", "path", CONF_PATH, 0, 0, "/var/lib/parley/gateway.db",                           \
	 offsetof(T, m.state_path), false, false, NULL,                                            \
	 "SQLite database of subscriptions, presence and conversations (WAL mode)"},               \
	{"presence", "max_expires", CONF_UINT, 60, 86400, "3600",                                  \
	 offsetof(T, m.presence.uas_max_expires_s), true, false, NULL,                             \
	 "longest subscription (seconds) granted to a SIP watcher"},                               \
	{"presence", "retry", CONF_UINT, 1, 3600, "60", offsetof(T, m.presence.retry_s), true,     \
	 false, NULL, "seconds before a failed SUBSCRIBE toward the pool is tried again (doubling)"}, \
	{"presence", "publish", CONF_BOOL, 0, 0, "false", offsetof(T, m.presence.publish), true,   \
	 false, NULL, "also PUBLISH partner users' presence to the pool (for a presence server "  \
	 "that serves watchers itself, RFC 3903)"},                                                \
	{"presence", "publish_expires", CONF_UINT, 60, 86400, "3600",                              \
	 offsetof(T, m.presence.publish_expires_s), true, false, NULL,                             \
	 "lifetime (seconds) asked for each publication; refreshed before it runs out"},             \
	{"presence", "pidf_thread", CONF_BOOL, 0, 0, "true", offsetof(T, m.presence.pidf_thread),  \
	 false, false, NULL,                                                                       \
	 "parse the PIDF bodies of NOTIFYs on a second thread (their order is kept); false parses " \
	 "them in the event loop"}

extern const char *const xlate_message_types[];

struct xlate;

/* Opens the store at conf->state_path and loads the presence state. Returns 0 and *out, or
 * PE_CONFIG with err naming the file and what is wrong. */
int xlate_new(uv_loop_t *loop, const struct xlate_conf *conf, struct sip_stack *sip,
	      struct edgelink *edges, struct xlate **out, char *err, size_t errlen);
/* Drops pending state (SIP transactions still open are answered 503) and closes its
 * handles; the memory goes when the loop has run their close callbacks. */
void xlate_free(struct xlate *x);
/* The policy the gateway enforces (served domains, partners); not copied: keep it alive
 * until the next call. */
void xlate_set_policy(struct xlate *x, const Parley__Link__PolicySnapshot *snap);
/* Per-user XMPP access (MAPPING J4) from the gateway's policy config; not copied: keep it
 * alive until the next call. NULL (the default) lets every user federate. */
struct gw_policy_conf;
void xlate_set_access(struct xlate *x, const struct gw_policy_conf *pc);
/* The store and presence the translator opened (for parleyctl: managed partners,
 * subscriptions); valid until xlate_free. */
struct store *xlate_store(const struct xlate *x);
struct presence *xlate_presence(const struct xlate *x);

/* A reliable frame from an edge (edgelink's on_frame). */
void xlate_link_frame(struct xlate *x, struct link_peer *peer, uint64_t seq,
		      const Parley__Link__Frame *f);
/* A SIP request from the front end (sip_stack's on_request). */
void xlate_sip_request(struct xlate *x, struct sip_stxn *st, struct sip_msg *req);

struct xlate_stats {
	uint64_t xmpp_to_sip, sip_to_xmpp, sip_failures, bounces, late_bounces, iq_answered;
	uint64_t overload_503, dropped_errors;
	const struct presence_stats *presence;
};
const struct xlate_stats *xlate_stats(const struct xlate *x);

#endif
