/* Outbound XMPP server-to-server streams: link stanzas toward partners, found through DNS
 * (SRV _xmpps-server then _xmpp-server, else A/AAAA port 5269, or the partner's fixed proxy),
 * reached with staggered IPv6/IPv4 attempts over direct TLS or STARTTLS, authenticated by
 * SASL EXTERNAL or dialback under the partner's rules; one stream per domain pair, reused.
 * Every stanza submitted ends in exactly one outcome: delivered (written to an authenticated
 * stream, and acknowledged by the partner where XEP-0198 is on) or bounced with an XMPP error.
 * Also carries the receiving server's db:verify queries to authoritative servers. */
#ifndef PARLEY_PROXY_S2S_OUT_H
#define PARLEY_PROXY_S2S_OUT_H

#include "conf.h"
#include "dialback.h"
#include "link.pb-c.h"
#include "s2s.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct s2s_out_conf {
	char *dialback_secret;	      /* NULL: a random one per process (single edge only) */
	struct conf_strlist resolver; /* DNS servers "ip[:port]"; empty = /etc/resolv.conf */
	uint64_t resolver_timeout_ms;
	uint64_t queue_max;  /* stanzas waiting or unacknowledged per domain pair */
	uint64_t stagger_ms; /* delay between connection attempts (RFC 8305) */
};

/* clang-format off */
#define S2S_OUT_CONF_OPTIONS(T, m)                                                                 \
	{"s2s", "dialback_secret", CONF_STRING, 16, 1024, NULL, offsetof(T, m.dialback_secret),    \
	 false, false, NULL,                                                                       \
	 "XEP-0185 dialback secret, the same on every edge (unset: random per process)"},          \
	{"s2s", "resolver", CONF_STRLIST, 1, 100, NULL, offsetof(T, m.resolver), false, false,     \
	 NULL, "DNS server for partner lookups, ip or ip:port (repeat; unset: /etc/resolv.conf)"},  \
	{"s2s", "resolver_timeout", CONF_DURATION_MS, 100, 30000, "2s",                            \
	 offsetof(T, m.resolver_timeout_ms), false, false, NULL,                                   \
	 "first DNS try per server (c-ares doubles it per round)"},                                \
	{"s2s", "out_queue", CONF_UINT, 1, 1000000, "10000", offsetof(T, m.queue_max), false,     \
	 false, NULL, "stanzas waiting or unacknowledged per outbound domain pair"},                \
	{"s2s", "connect_stagger", CONF_DURATION_MS, 10, 5000, "250ms",                            \
	 offsetof(T, m.stagger_ms), false, false, NULL,                                            \
	 "delay before the next address is tried while one is still connecting (RFC 8305)"}
/* clang-format on */

/* Who a stanza's outcome goes back to: opaque to this module, copied. */
struct s2s_out_ticket {
	void *owner;  /* the link peer that sent the frame */
	uint64_t seq; /* its frame seq */
	uint64_t ref; /* the stanza's ref */
};

struct s2s_out_hooks {
	void (*on_delivered)(void *arg, const struct s2s_out_ticket *t);
	/* type: RFC 6120 error type; cond: defined condition; text: for humans, no peer bytes */
	void (*on_bounce)(void *arg, const struct s2s_out_ticket *t, const char *type,
			  const char *cond, const char *text);
	void *arg;
};

struct s2s_out;

/* Creates the outbound side: a TLS client context from s2s->cert/key/ca (our certificate is
 * what SASL EXTERNAL shows partners) and a resolver. conf and s2s must outlive it. Returns 0
 * and *res, or an error (logged). */
int s2s_out_start(uv_loop_t *loop, const struct s2s_conf *s2s, const struct s2s_out_conf *conf,
		  const struct s2s_out_hooks *hooks, struct s2s_out **res);
/* Closes every stream. Stanzas still queued get no outcome: their link frames stay
 * unacknowledged, so the gateway sends them again to the edge that serves next. */
void s2s_out_stop(struct s2s_out *o);
/* After the loop closed every handle (s2s_out_stop first). NULL is a no-op. */
void s2s_out_free(struct s2s_out *o);

/* Reload (SIGHUP): new client TLS contexts from s2s's cert, key and ca (only read during the
 * call), used by connections opened from now on; streams already up keep theirs. Both
 * contexts or neither: on failure the current ones stay, err names the file and PE_CONFIG is
 * returned (also logged as event=s2s_tls_reload). */
int s2s_out_reload_tls(struct s2s_out *o, const struct s2s_conf *s2s, char *err, size_t errlen);

/* A new federation policy: used by streams set up from now on. */
void s2s_out_set_policy(struct s2s_out *o, const Parley__Link__PolicySnapshot *snap);

/* Takes one link stanza toward a partner. Exactly one of on_delivered / on_bounce follows
 * for t, possibly from inside this call (validation: `from` must be in a served domain and
 * `to` an allowed partner, else forbidden / not-allowed; a full queue gives
 * resource-constraint). st is serialised at once; nothing of it is kept. */
void s2s_out_submit(struct s2s_out *o, const struct s2s_out_ticket *t,
		    const Parley__Link__Stanza *st);

/* The dialback secret in use (the inbound side answers db:verify with it). */
const struct dialback *s2s_out_dialback(const struct s2s_out *o);

/* Dialback, receiving-server role: asks the authoritative server of `remote` whether key is
 * the one it generated for (receiving = local, originating = remote, stream_id), over a
 * verification stream to `remote`. cb runs once, never from inside this call, with
 * 1 (valid), 0 (invalid) or a negative error (remote unreachable, timeout, refused); unless
 * s2s_out_verify_cancel(o, arg) ran first. Returns 0 or PE_INVAL (bad domain). */
typedef void (*s2s_out_verify_cb)(void *arg, int verdict);
int s2s_out_verify(struct s2s_out *o, const char *local, const char *remote, const char *stream_id,
		   const char *key, s2s_out_verify_cb cb, void *arg);
/* Forgets every verification whose arg is arg (its stream went away). */
void s2s_out_verify_cancel(struct s2s_out *o, void *arg);

struct s2s_out_stats {
	uint64_t submitted, delivered, bounced;
	uint64_t streams_opened, streams_authenticated, connect_attempts;
	uint64_t auth_external, auth_dialback;
	uint64_t verify_sent, verify_valid, verify_invalid;
};
const struct s2s_out_stats *s2s_out_stats(const struct s2s_out *o);
/* Domain pairs with a stream or queued stanzas. */
size_t s2s_out_route_count(const struct s2s_out *o);
/* Calls cb for every outbound route to a partner (dialback verification routes excluded),
 * with or without a stream. cb must not submit or close anything. */
void s2s_out_foreach_session(const struct s2s_out *o, s2s_session_cb cb, void *arg);

#endif
