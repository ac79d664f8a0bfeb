/* Inbound XMPP server-to-server streams (RFC 6120): listeners on the external interface,
 * STARTTLS and direct TLS (XEP-0368), SASL EXTERNAL (XEP-0178), validation against the
 * federation policy, limits, XEP-0198 acknowledgements tied to the link's, and hand-off of
 * each accepted stanza to the internal link. */
#ifndef PARLEY_PROXY_S2S_H
#define PARLEY_PROXY_S2S_H

#include "conf.h"
#include "link.h"
#include "policy.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct s2s_conf {
	struct conf_strlist listen;     /* host:port, STARTTLS (5269) */
	struct conf_strlist listen_tls; /* host:port, direct TLS (5270) */
	char *cert;                     /* the edge's certificate: a SAN for every served domain */
	char *key;
	char *ca;                       /* CAs to verify partners; NULL = the system's */
	uint64_t max_per_ip;            /* concurrent inbound connections from one address */
	uint64_t rate_limit;            /* bytes/s read per connection; 0 = none */
	bool stream_management;         /* offer XEP-0198 after authentication */
	uint64_t policy_wait_ms;        /* hold early streams this long for a first policy */
	uint64_t link_wait_ms;          /* a stanza read while the link is full waits this long */
};

#define S2S_CONF_OPTIONS(T, m)                                                                     \
	{"s2s", "listen", CONF_STRLIST, 3, 300, NULL, offsetof(T, m.listen), false, false, NULL,  \
	 "address:port for STARTTLS S2S (repeat for IPv4 and IPv6), e.g. 0.0.0.0:5269"},           \
	{"s2s", "listen_tls", CONF_STRLIST, 3, 300, NULL, offsetof(T, m.listen_tls), false, false, \
	 NULL, "address:port for direct-TLS S2S (XEP-0368), e.g. [::]:5270"},                      \
	{"s2s", "cert", CONF_PATH, 0, 0, NULL, offsetof(T, m.cert), true, false, NULL,           \
	 "the edge's certificate chain, with a subjectAltName for every served domain"},           \
	{"s2s", "key", CONF_PATH, 0, 0, NULL, offsetof(T, m.key), true, false, NULL,             \
	 "its private key"},                                                                       \
	{"s2s", "ca", CONF_PATH, 0, 0, NULL, offsetof(T, m.ca), true, false, NULL,               \
	 "CA bundle to verify partner certificates (default: the system's)"},                      \
	{"s2s", "max_per_ip", CONF_UINT, 1, 100000, "32", offsetof(T, m.max_per_ip), true, false, \
	 NULL, "concurrent inbound connections from one IP address"},                              \
	{"s2s", "rate_limit", CONF_SIZE, 0, 1099511627776, "16M", offsetof(T, m.rate_limit),      \
	 true, false, NULL, "bytes per second read from one connection; beyond it reading pauses"}, \
	{"s2s", "stream_management", CONF_BOOL, 0, 0, "true", offsetof(T, m.stream_management),   \
	 true, false, NULL, "offer XEP-0198 to authenticated partners"},                           \
	{"s2s", "policy_wait", CONF_DURATION_MS, 0, 600000, "10s", offsetof(T, m.policy_wait_ms),  \
	 false, false, NULL,                                                                       \
	 "after start, streams wait this long for the gateway's first policy before refusal"},     \
	{"s2s", "link_wait", CONF_DURATION_MS, 1000, 600000, "10s", offsetof(T, m.link_wait_ms),  \
	 true, false, NULL,                                                                        \
	 "a stanza already read waits this long for room on a full gateway link; after it the "   \
	 "partner gets <resource-constraint/>"}

struct s2s;

/* Starts the listeners. Stanzas go to out (the link toward the gateway). Returns 0 or an
 * error (logged); *res is set whenever a struct was made (free it with s2s_free after the
 * loop's handles are closed, also on error). */
int s2s_start(uv_loop_t *loop, const struct s2s_conf *conf, struct link_out *out,
	      struct s2s **res);
/* Closes every stream with <system-shutdown/> and the listeners. */
void s2s_stop(struct s2s *s);
void s2s_free(struct s2s *s);
/* Reload (SIGHUP): builds a TLS server context from conf's cert, key and ca (conf is only
 * read during the call) and makes it the one new inbound connections use, STARTTLS and
 * direct TLS alike; streams already up keep theirs. On failure (a file missing or
 * unreadable, a key that does not match the certificate, a CA file that does not load) the
 * current context stays, err names the file and PE_CONFIG is returned (also logged as
 * event=s2s_tls_reload). Without listeners there is no inbound context: 0. */
int s2s_reload_tls(struct s2s *s, const struct s2s_conf *conf, char *err, size_t errlen);

struct s2s_out;
struct dialback;
/* Enables server dialback (XEP-0220) on inbound streams: offered where a partner's rules
 * allow it; a db:result is checked with the partner's authoritative server over out's
 * verification streams (receiving role); db:verify is answered with db's keys (authoritative
 * role). Without this call dialback is neither offered nor accepted. out and db must outlive
 * s's streams. */
void s2s_set_dialback(struct s2s *s, struct s2s_out *out, const struct dialback *db);

/* A new policy from the gateway; streams already authenticated keep theirs. */
void s2s_set_policy(struct s2s *s, const Parley__Link__PolicySnapshot *snap);
/* The link has room again: streams paused for it hand it the stanzas they hold, oldest
 * first, and read again once they hold none. */
void s2s_link_room(struct s2s *s);
/* The link acknowledged frames: XEP-0198 streams may report more handled stanzas. */
void s2s_link_acked(struct s2s *s);

struct s2s_stats {
	uint64_t accepted, authenticated, stanzas_in, stream_errors, refused_limit;
	uint64_t auth_external, auth_dialback; /* authenticated, by method */
	uint64_t stanzas_in_kind[4];	       /* by PARLEY__LINK__STANZA_KIND__* (1..3) */
	/* Stanzas the link refused (counted in stanzas_in too), answered with an error unless
	 * they were errors themselves: held past [s2s] link_wait, held past the stream's hold
	 * bound (256 KB packed) or held when the stream ended with a stream error
	 * (resource-constraint); or the frame exceeded [link] max_frame (policy-violation). */
	uint64_t bounced_congested, bounced_too_large;
	/* Stanzas read while the link was full (past twice its window) and held for it rather
	 * than bounced: ever held, held now, and lost because their connection closed while
	 * held (a held stanza that waits past link_wait is bounced: bounced_congested). */
	uint64_t held, held_now, held_lost;
};
const struct s2s_stats *s2s_stats(const struct s2s *s);
size_t s2s_stream_count(const struct s2s *s);

/* One S2S stream as parleyctl shows it (inbound here, outbound from s2s_out). Strings are
 * borrowed: valid only during the callback. */
struct s2s_session_info {
	uint64_t id;		 /* connection id, as in the logs */
	const char *dir;	 /* "in" or "out" */
	const char *local;	 /* our domain ("" until known) */
	const char *remote;	 /* the partner's domain ("" until known) */
	const char *addr;	 /* the partner's IP address ("" if none) */
	const char *state;	 /* e.g. "open", "authenticated", "connecting", "ready" */
	const char *auth;	 /* "sasl-external", "dialback" or "none" */
	const char *tls_version; /* e.g. "TLSv1.3"; "none" without TLS */
	const char *cert;	 /* "valid", "invalid" or "none" (no TLS) */
	bool direct_tls;	 /* XEP-0368 direct TLS rather than STARTTLS */
	bool sm;		 /* XEP-0198 on */
	uint64_t age_ms;	 /* since the connection (in) / the stream became ready (out) */
	uint64_t stanzas;	 /* accepted (in) / written (out) on this stream */
	uint64_t queued;	 /* out: waiting or unacknowledged; in: held for the link */
};
typedef void (*s2s_session_cb)(void *arg, const struct s2s_session_info *si);
/* Calls cb for every inbound stream. cb must not close streams. */
void s2s_foreach_session(const struct s2s *s, s2s_session_cb cb, void *arg);
/* Name of a PARLEY__LINK__AUTH_METHOD__* value: "none", "sasl-external", "dialback". */
const char *s2s_auth_name(int method);

#endif
