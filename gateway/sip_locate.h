/* Locating SIP servers (RFC 3263): NAPTR → SRV → A/AAAA, or a static pool, with
 * members marked down and up by health checks and failures. */
#ifndef PARLEY_SIP_LOCATE_H
#define PARLEY_SIP_LOCATE_H

#include "sip_hop.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct resolver;
struct resolver_naptr;
struct resolver_srv;

#define SIP_LOCATE_MAX 32 /* targets per answer */

/* One place to send a request: a transport, an address and a TLS name. */
struct sip_target {
	struct sip_hop hop; /* proto, address, tls_name: the configured name of a static
			       member, or the SIP domain that was resolved (RFC 5922 §4.1) */
	bool down;	    /* marked down by a health check or a failure */
};

/* Parses a static pool member: "udp:127.0.0.61:5060", "tcp:[::1]:5060",
 * "tls:127.0.0.61:5061;name=pool.corp.test" (default ports 5060/5061). Returns 0 or
 * PE_INVAL. Pure. */
int sip_target_parse(const char *s, struct sip_target *t);

/* RFC 3263 §4.1 for the NAPTR answer: keeps the records with flag "s" and a service we
 * speak ("SIP+D2U", "SIP+D2T", "SIPS+D2T"; only the last when sips) in their order, and
 * writes each one's SRV name and transport. Returns how many (<= cap). Pure. */
size_t sip_locate__naptr_pick(const struct resolver_naptr *recs, size_t n, bool sips,
			      char (*names)[256], enum sip_proto *protos, size_t cap);

/* Orders targets for one attempt (stable): members up first, then members marked down
 * (still tried: all down is better than nothing). Pure. */
void sip_locate__order(struct sip_target *t, size_t n);

struct sip_locate;

struct sip_locate_cfg {
	/* Static pool, NULL-terminated (sip_target_parse syntax). If set, DNS is not used
	 * for the pool. */
	const char *const *pool;
	/* Otherwise: the pool's domain for RFC 3263 (e.g. "corp.test"); sips = TLS only. */
	const char *domain;
	bool sips;
	uint32_t cache_ms; /* keep DNS answers this long, default 30000 */
};

/* res may be NULL when only static pools and IP literals are used. Returns NULL on a
 * bad pool member (err says which) or allocation failure. */
struct sip_locate *sip_locate_new(uv_loop_t *loop, struct resolver *res,
				  const struct sip_locate_cfg *cfg, char *err, size_t errlen);
void sip_locate_free(struct sip_locate *l);

/* Called once from the loop with status 0 and the ordered targets (valid during the
 * call), or PE_DNS/PE_NOTFOUND/PE_TIMEOUT and n = 0. */
typedef void (*sip_locate_cb)(void *arg, int status, const struct sip_target *t, size_t n);

/* Targets for the pool (uri NULL), or for a URI (an in-dialog next hop; RFC 3263 with
 * IP literals answered without DNS). Returns 0 (cb follows, with PE_STATE if a name
 * needs DNS and there is no resolver), PE_INVAL (bad URI) or PE_NOMEM. */
int sip_locate_resolve(struct sip_locate *l, const char *uri, sip_locate_cb cb, void *arg);
/* Drops pending callbacks for arg. */
void sip_locate_cancel(struct sip_locate *l, void *arg);

/* Marks a target (by proto + address) down or up; logs changes. Pool members keep the
 * mark for later answers. */
void sip_locate_mark(struct sip_locate *l, const struct sip_hop *hop, bool up);
/* Pool members (static, or the last DNS answer), for health checks. Valid until the
 * next call into the locator. */
const struct sip_target *sip_locate_pool(const struct sip_locate *l, size_t *n);

#endif
