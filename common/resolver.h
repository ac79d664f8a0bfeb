/* Asynchronous DNS (SRV, A/AAAA, NAPTR) with c-ares, driven by a libuv loop.
 *
 * How it sits on libuv:
 * - c-ares owns its sockets. It tells us which ones it wants watched through
 *   ARES_OPT_SOCK_STATE_CB; each gets a uv_poll_t, started for the readable/writable
 *   interest c-ares asks for and closed when c-ares says (0, 0). A readiness event calls
 *   ares_process_fd() for that socket only.
 * - One uv_timer_t is re-armed after every call into c-ares from ares_timeout(), and on
 *   expiry calls ares_process_fd(BAD, BAD) so c-ares retries or fails timed-out queries.
 *   The timer is active exactly while queries are outstanding, so the resolver keeps the
 *   loop alive only while it has work.
 * - User callbacks never run from inside c-ares, nor from inside a resolver_* call: every
 *   finished request is queued and delivered from one uv_idle_t on the next loop turn. So a
 *   callback may freely start queries, cancel others, or call resolver_free().
 * - c-ares never searches domains (ARES_FLAG_NOSEARCH) and never reads /etc/hosts (lookups
 *   "b"); all names are queried as given.
 *
 * One resolver belongs to one loop and one thread.
 */
#ifndef PARLEY_RESOLVER_H
#define PARLEY_RESOLVER_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

/* At most this many records (per family for addresses) are returned by one request;
 * the rest of a larger answer is dropped after ordering. */
#define RESOLVER_MAX_RECORDS 64

struct resolver;

struct resolver_cfg {
	/* NULL-terminated list: "127.0.0.153:53", "[::1]:5353", "127.0.0.1" (port 53), "::1"
	 * (a bare IPv6 address never carries a port). Tried in list order.
	 * NULL or empty list = the servers of /etc/resolv.conf. */
	const char *const *servers;
	uint32_t timeout_ms; /* first try per server; 0 = 2000. c-ares doubles it on each
				later round over the server list. */
	uint32_t tries;	     /* rounds over the server list; 0 = 2 */
};

/* Creates a resolver on loop. cfg may be NULL (all defaults). Returns 0 and *out, or
 * PE_CONFIG (a server does not parse; err says which), PE_INVAL (timeout or tries out of
 * range), PE_DNS (c-ares failed to initialise) or PE_NOMEM; err (errlen bytes, may be
 * NULL) gets a one-line reason on failure. */
int resolver_new(uv_loop_t *loop, const struct resolver_cfg *cfg, struct resolver **out, char *err,
		 size_t errlen);

/* Ends every outstanding request: callbacks not cancelled run now, from inside this call,
 * with status PE_CLOSED and no records. Then releases c-ares and closes the handles; the
 * memory is freed from the last close callback, so run the loop afterwards. May be called
 * from a resolver callback. Must not be called twice. NULL is a no-op. */
void resolver_free(struct resolver *r);

/* Prevents every callback of every outstanding request whose arg is arg: once this
 * returns, they never run. Safe to call from any resolver callback and with an arg that
 * has nothing outstanding. The underlying DNS queries finish or time out silently. */
void resolver_cancel(struct resolver *r, void *arg);

/* Number of requests still held (including cancelled ones whose DNS query has not ended
 * yet). For tests and metrics. */
size_t resolver_pending(const struct resolver *r);

/* Status codes handed to callbacks: 0 ok; PE_NOTFOUND for NXDOMAIN or NODATA; PE_TIMEOUT
 * when no server answered in time; PE_CLOSED when resolver_free() ended the request;
 * PE_NOMEM; PE_DNS for any other failure (SERVFAIL, REFUSED, unreachable server, bad
 * response). Callbacks run on the loop, never from inside the call that started them.
 * Record memory is owned by the resolver and valid during the callback only. */

struct resolver_srv {
	char *target; /* host name without the trailing dot */
	uint16_t port, priority, weight;
};

/* no_service is true (with status 0 and n 0) when the answer is the single record with
 * target "." (RFC 2782: the service is decidedly not available at this domain) — which
 * is not NXDOMAIN. Other "." records mixed with real ones are dropped. recs are ordered
 * per RFC 2782: priority ascending, weighted random order within one priority. */
typedef void (*resolver_srv_cb)(void *arg, int status, const struct resolver_srv *recs, size_t n,
				bool no_service);
/* Queries SRV for name (e.g. "_xmpp-server._tcp.example.org"). Returns 0 (cb will run
 * exactly once unless cancelled), PE_INVAL for a malformed name (see resolver__name_ok),
 * PE_CLOSED after resolver_free, or PE_NOMEM. */
int resolver_srv(struct resolver *r, const char *name, resolver_srv_cb cb, void *arg);

/* addrs[i] is a text literal ("192.0.2.1", "2001:db8::1") of family families[i]
 * (AF_INET or AF_INET6); IPv6 addresses come first. Status 0 means n >= 1. */
typedef void (*resolver_addr_cb)(void *arg, int status, const char *const *addrs,
				 const int *families, size_t n);
/* Looks up A (AF_INET), AAAA (AF_INET6) or both (AF_UNSPEC: two queries, merged; one
 * family failing while the other answers is still success). An IPv4 or IPv6 literal host
 * is answered without DNS on the next loop turn, in canonical text form, or PE_NOTFOUND
 * if its family was not asked for. Returns as resolver_srv(), plus PE_INVAL for another
 * family. */
int resolver_addr(struct resolver *r, const char *host, int family, resolver_addr_cb cb, void *arg);

/* NAPTR record (RFC 3403). Character-strings are cut at an embedded NUL. replacement is
 * "" for the root name "." (use the regexp), else a domain without the trailing dot. */
struct resolver_naptr {
	uint16_t order, preference;
	char *flags, *service, *regexp, *replacement;
};
/* recs are sorted by order, then preference (stable otherwise). */
typedef void (*resolver_naptr_cb)(void *arg, int status, const struct resolver_naptr *recs,
				  size_t n);
/* Queries NAPTR for name. Returns as resolver_srv(). */
int resolver_naptr(struct resolver *r, const char *name, resolver_naptr_cb cb, void *arg);

/* ---- Internal, exposed for unit tests and the fuzz target. ---- */

struct resolver_server {
	int family; /* AF_INET or AF_INET6 */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} addr;
	uint16_t port; /* 1..65535 */
};

/* Parses one server spec (grammar at resolver_cfg.servers) from s[0..len), which need not
 * be NUL-terminated. Returns 0 and fills *out, or PE_INVAL. Pure. */
int resolver__parse_server(const char *s, size_t len, struct resolver_server *out);

/* Writes the canonical spec ("192.0.2.1:53", "[2001:db8::1]:53") of srv into dst.
 * Returns its length, or PE_TOOBIG if cap is too small (64 always suffices). */
int resolver__format_server(const struct resolver_server *srv, char *dst, size_t cap);

/* True if name is a host/service name we will put on the wire: 1..253 characters (one
 * trailing dot allowed on top), labels of 1..63 characters from [A-Za-z0-9_-]. */
bool resolver__name_ok(const char *name);

/* Uniform random integer in [0, bound] (inclusive). */
typedef uint32_t (*resolver_rnd_fn)(void *ctx, uint32_t bound);

/* Orders recs[0..n) in place per RFC 2782: stably by priority ascending, then within one
 * priority by repeated weighted selection (weight-0 records first in the candidate list,
 * random number in [0, sum of weights], first record whose running sum reaches it).
 * rnd NULL = arc4random_uniform. n must be at most 65536 (the weight sum then fits in 32
 * bits). Returns 0 or PE_NOMEM (recs then unchanged). Pure apart from rnd. */
int resolver__srv_order(struct resolver_srv *recs, size_t n, resolver_rnd_fn rnd, void *ctx);

#endif
