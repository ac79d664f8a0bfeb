/* The [link] settings both daemons share, as conf table rows, and what is built from them. */
#ifndef PARLEY_LINK_CONF_H
#define PARLEY_LINK_CONF_H

#include "conf.h"
#include "link.h"

#include <stddef.h>

struct tls_ctx;

struct link_conf {
	char *cert;                    /* our link certificate chain (PEM) */
	char *key;
	char *ca;                      /* CA that issued the peer's link certificate */
	struct conf_strlist peer_name; /* names the peer's certificate must carry */
	uint64_t window;
	uint64_t window_bytes;
	uint64_t max_frame;
	uint64_t ping_ms;
	uint64_t dead_ms;
	uint64_t hello_ms;
};

/* Table rows for struct link_conf embedded at `member` of `type`, section [link]. */
#define LINK_CONF_OPTIONS(type, member)                                                            \
	{"link", "cert", CONF_PATH, 0, 0, NULL, offsetof(type, member.cert), true, true, NULL,    \
	 "our link certificate chain (PEM); reloaded on SIGHUP"},                                  \
	{"link", "key", CONF_PATH, 0, 0, NULL, offsetof(type, member.key), true, true, NULL,      \
	 "private key of the link certificate"},                                                   \
	{"link", "ca", CONF_PATH, 0, 0, NULL, offsetof(type, member.ca), true, true, NULL,        \
	 "CA that issues the peer's link certificates"},                                           \
	{"link", "peer_name", CONF_STRLIST, 1, 253, NULL, offsetof(type, member.peer_name), false, \
	 true, NULL, "a DNS name the peer's certificate must carry (repeat for several)"},         \
	{"link", "window", CONF_UINT, 64, 1048576, "32768", offsetof(type, member.window), false, \
	 false, NULL, "most unacknowledged frames we send"},                                       \
	{"link", "window_bytes", CONF_SIZE, 65536, 4294967296, "64M",                              \
	 offsetof(type, member.window_bytes), false, false, NULL,                                  \
	 "most unacknowledged bytes we send"},                                                     \
	{"link", "max_frame", CONF_SIZE, 1024, 16777216, "1M", offsetof(type, member.max_frame),   \
	 false, false, NULL, "largest frame accepted or sent"},                                    \
	{"link", "ping_interval", CONF_DURATION_MS, 100, 3600000, "5s",                            \
	 offsetof(type, member.ping_ms), false, false, NULL, "how often each side pings"},          \
	{"link", "dead_timeout", CONF_DURATION_MS, 200, 3600000, "15s",                            \
	 offsetof(type, member.dead_ms), false, false, NULL,                                        \
	 "no input for this long and the peer is taken for dead"},                                 \
	{"link", "hello_timeout", CONF_DURATION_MS, 100, 600000, "10s",                            \
	 offsetof(type, member.hello_ms), false, false, NULL,                                       \
	 "the peer must complete TLS and Hello within this long"}

/* Fills cfg from conf; cfg points into conf (keep conf alive). */
void link_cfg_from_conf(struct link_cfg *cfg, const struct link_conf *conf, const char *node_id,
			int role, uint32_t priority);

/* A TLS 1.3-only context with mutual authentication for the link. */
struct tls_ctx *link_tls_ctx_new(bool server, const struct link_conf *conf, char *err,
				 size_t errlen);
/* Loads new link certificates into ctx for connections made from now on (SIGHUP). */
int link_tls_ctx_reload(struct tls_ctx *ctx, bool server, const struct link_conf *conf,
			char *err, size_t errlen);

#endif
