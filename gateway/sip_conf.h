/* The gateway's [sip] settings as conf table rows, and the struct sip_cfg built from them. */
#ifndef PARLEY_GATEWAY_SIP_CONF_H
#define PARLEY_GATEWAY_SIP_CONF_H

#include "conf.h"
#include "sip_stack.h"

struct sip_conf {
	char *listen_udp, *listen_tcp, *listen_tls;
	char *advertise;
	struct conf_strlist pool; /* "udp:127.0.0.61:5060", "tls:10.0.0.5:5061;name=pool.x" */
	char *pool_domain;
	bool pool_sips;
	struct conf_strlist dns;
	char *tls_ca, *tls_cert, *tls_key;
	uint64_t t1_ms, t2_ms, t4_ms;
	uint64_t keepalive_ms, idle_ms, connect_ms, health_ms;
	uint64_t max_header, max_body;
	uint64_t fixed_answer;
	/* kept NULL-terminated copies of the lists for struct sip_cfg */
	const char **pool_v, **dns_v;
};

#define SIP_CONF_OPTIONS(T, m)                                                                     \
	{"sip",                                                                                    \
	 "listen_udp",                                                                             \
	 CONF_STRING,                                                                              \
	 3,                                                                                        \
	 300,                                                                                      \
	 NULL,                                                                                     \
	 offsetof(T, m.listen_udp),                                                                \
	 false,                                                                                    \
	 false,                                                                                    \
	 NULL,                                                                                     \
	 "ip:port for SIP over UDP from the front end (e.g. 10.0.2.7:5060)"},                      \
	    {"sip",                                                                                \
	     "listen_tcp",                                                                         \
	     CONF_STRING,                                                                          \
	     3,                                                                                    \
	     300,                                                                                  \
	     NULL,                                                                                 \
	     offsetof(T, m.listen_tcp),                                                            \
	     false,                                                                                \
	     false,                                                                                \
	     NULL,                                                                                 \
	     "ip:port for SIP over TCP"},                                                          \
	    {"sip",                                                                                \
	     "listen_tls",                                                                         \
	     CONF_STRING,                                                                          \
	     3,                                                                                    \
	     300,                                                                                  \
	     NULL,                                                                                 \
	     offsetof(T, m.listen_tls),                                                            \
	     false,                                                                                \
	     false,                                                                                \
	     NULL,                                                                                 \
	     "ip:port for SIP over TLS (needs tls_cert and tls_key)"},                             \
	    {"sip",                                                                                \
	     "advertise",                                                                          \
	     CONF_STRING,                                                                          \
	     1,                                                                                    \
	     253,                                                                                  \
	     NULL,                                                                                 \
	     offsetof(T, m.advertise),                                                             \
	     false,                                                                                \
	     false,                                                                                \
	     NULL,                                                                                 \
	     "host written in Via and Contact (default: each listener's address)"},                \
	    {"sip",                                                                                \
	     "pool",                                                                               \
	     CONF_STRLIST,                                                                         \
	     5,                                                                                    \
	     300,                                                                                  \
	     NULL,                                                                                 \
	     offsetof(T, m.pool),                                                                  \
	     false,                                                                                \
	     false,                                                                                \
	     NULL,                                                                                 \
	     "a front-end pool member, proto:ip:port[;name=tls-name] (repeat; tried in order)"},   \
	    {"sip",                                                                                \
	     "pool_domain",                                                                        \
	     CONF_STRING,                                                                          \
	     1,                                                                                    \
	     253,                                                                                  \
	     NULL,                                                                                 \
	     offsetof(T, m.pool_domain),                                                           \
	     false,                                                                                \
	     false,                                                                                \
	     NULL,                                                                                 \
	     "or: the pool's domain, located per RFC 3263 (NAPTR, SRV, A/AAAA)"},                  \
	    {"sip",                                                                                \
	     "pool_sips",                                                                          \
	     CONF_BOOL,                                                                            \
	     0,                                                                                    \
	     0,                                                                                    \
	     "false",                                                                              \
	     offsetof(T, m.pool_sips),                                                             \
	     false,                                                                                \
	     false,                                                                                \
	     NULL,                                                                                 \
	     "with pool_domain: TLS only"},                                                        \
	    {"sip",                                                                                \
	     "dns",                                                                                \
	     CONF_STRLIST,                                                                         \
	     3,                                                                                    \
	     300,                                                                                  \
	     NULL,                                                                                 \
	     offsetof(T, m.dns),                                                                   \
	     false,                                                                                \
	     false,                                                                                \
	     NULL,                                                                                 \
	     "DNS server ip[:port] for RFC 3263 (repeat; default: /etc/resolv.conf)"},             \
	    {"sip",                                                                                \
	     "tls_ca",                                                                             \
	     CONF_PATH,                                                                            \
	     0,                                                                                    \
	     0,                                                                                    \
	     NULL,                                                                                 \
	     offsetof(T, m.tls_ca),                                                                \
	     false,                                                                                \
	     false,                                                                                \
	     NULL,                                                                                 \
	     "CA bundle to verify the pool's certificates"},                                       \
	    {"sip",                                                                                \
	     "tls_cert",                                                                           \
	     CONF_PATH,                                                                            \
	     0,                                                                                    \
	     0,                                                                                    \
	     NULL,                                                                                 \
	     offsetof(T, m.tls_cert),                                                              \
	     false,                                                                                \
	     false,                                                                                \
	     NULL,                                                                                 \
	     "our SIP certificate (listener, and client certificate toward the pool)"},            \
	    {"sip", "tls_key", CONF_PATH, 0,	    0, NULL, offsetof(T, m.tls_key),               \
	     false, false,     NULL,	  "its key"},                                              \
	    {"sip", "t1", CONF_DURATION_MS, 50, 10000, "500ms", offsetof(T, m.t1_ms), false,       \
	     false, NULL, "RFC 3261 T1"},                                                          \
	    {"sip", "t2", CONF_DURATION_MS, 100, 60000, "4s", offsetof(T, m.t2_ms), false,         \
	     false, NULL, "RFC 3261 T2"},                                                          \
	    {"sip", "t4", CONF_DURATION_MS, 100, 60000, "5s", offsetof(T, m.t4_ms), false,         \
	     false, NULL, "RFC 3261 T4"},                                                          \
	    {"sip",                                                                                \
	     "keepalive",                                                                          \
	     CONF_DURATION_MS,                                                                     \
	     1000,                                                                                 \
	     3600000,                                                                              \
	     "30s",                                                                                \
	     offsetof(T, m.keepalive_ms),                                                          \
	     false,                                                                                \
	     false,                                                                                \
	     NULL,                                                                                 \
	     "RFC 5626 CRLF keep-alive on TCP/TLS flows"},                                         \
	    {"sip",                                                                                \
	     "idle_timeout",                                                                       \
	     CONF_DURATION_MS,                                                                     \
	     1000,                                                                                 \
	     86400000,                                                                             \
	     "300s",                                                                               \
	     offsetof(T, m.idle_ms),                                                               \
	     false,                                                                                \
	     false,                                                                                \
	     NULL,                                                                                 \
	     "close inbound flows idle this long"},                                                \
	    {"sip",                                                                                \
	     "connect_timeout",                                                                    \
	     CONF_DURATION_MS,                                                                     \
	     100,                                                                                  \
	     60000,                                                                                \
	     "5s",                                                                                 \
	     offsetof(T, m.connect_ms),                                                            \
	     false,                                                                                \
	     false,                                                                                \
	     NULL,                                                                                 \
	     "TCP/TLS connect deadline"},                                                          \
	    {"sip",                                                                                \
	     "health_interval",                                                                    \
	     CONF_DURATION_MS,                                                                     \
	     0,                                                                                    \
	     3600000,                                                                              \
	     "0",                                                                                  \
	     offsetof(T, m.health_ms),                                                             \
	     false,                                                                                \
	     false,                                                                                \
	     NULL,                                                                                 \
	     "OPTIONS health checks of pool members (0 = off)"},                                   \
	    {"sip",                                                                                \
	     "max_header",                                                                         \
	     CONF_SIZE,                                                                            \
	     1024,                                                                                 \
	     1048576,                                                                              \
	     "16k",                                                                                \
	     offsetof(T, m.max_header),                                                            \
	     false,                                                                                \
	     false,                                                                                \
	     NULL,                                                                                 \
	     "largest SIP header block accepted on a stream"},                                     \
	    {"sip",                                                                                \
	     "max_body",                                                                           \
	     CONF_SIZE,                                                                            \
	     1024,                                                                                 \
	     16777216,                                                                             \
	     "64k",                                                                                \
	     offsetof(T, m.max_body),                                                              \
	     false,                                                                                \
	     false,                                                                                \
	     NULL,                                                                                 \
	     "largest SIP body accepted"},                                                         \
	{                                                                                          \
		"sip", "fixed_answer", CONF_UINT, 0, 699, "0", offsetof(T, m.fixed_answer), false, \
		    false, NULL,                                                                   \
		    "test/bring-up: answer every incoming request with this status (0 = off)"      \
	}

/* Fills cfg from c (pointers into c; keep c alive). Returns 0, or PE_CONFIG with a
 * message when no listener or no pool is configured. */
int sip_conf_to_cfg(struct sip_conf *c, struct sip_cfg *cfg, char *err, size_t errlen);
/* Frees what sip_conf_to_cfg allocated. */
void sip_conf_release(struct sip_conf *c);
/* True if any [sip] listener is configured (the gateway runs without SIP otherwise). */
bool sip_conf_enabled(const struct sip_conf *c);

#endif
