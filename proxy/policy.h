/* The federation policy as the edge holds it: built from the gateway's PolicySnapshot,
 * immutable, refcounted, and swapped in whole, so a stream keeps the policy it started
 * with while new streams see the newest. */
#ifndef PARLEY_PROXY_POLICY_H
#define PARLEY_PROXY_POLICY_H

#include "link.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum neg {
	NEG_REQUIRED = 1,      /* must be used */
	NEG_OPTIONAL = 2,      /* offered, not demanded */
	NEG_NOT_SUPPORTED = 3, /* never offered */
};

enum partner_type {
	PARTNER_FEDERATED = 1,
	PARTNER_PUBLIC_VERIFIED = 2,
	PARTNER_PUBLIC_UNVERIFIED = 3,
};

struct partner {
	char *domain;
	char **additional; /* further domains the partner serves */
	size_t nadditional;
	enum partner_type type;
	enum neg tls;
	enum neg sasl;
	bool dialback;
	bool keepalive;
	uint32_t connection_limit; /* 0 = the global per-partner limit */
	char *proxy_host;          /* fixed proxy, overrides SRV; NULL if none */
	uint16_t proxy_port;
};

struct policy {
	int refs;
	uint64_t generation;
	char **served;
	size_t nserved;
	struct partner *partners;
	size_t npartners;
	uint32_t connection_limit;
	uint32_t per_partner_limit;
	uint32_t max_stanza_bytes;
	uint32_t preauth_stanza_bytes;
	uint32_t keepalive_s;
	uint32_t establishment_s;
	uint32_t inactivity_s;
	bool log_bodies;
};

/* Builds a policy from a snapshot (copied; domains lower-cased). NULL on out of memory. */
struct policy *policy_from_snapshot(const Parley__Link__PolicySnapshot *s);
struct policy *policy_ref(struct policy *p);
void policy_unref(struct policy *p);

/* Domain comparison is ASCII case-insensitive: snapshots carry A-labels. */
bool policy_serves(const struct policy *p, const char *domain, size_t len);
/* The partner owning domain (its main or an additional domain), or NULL. */
const struct partner *policy_partner(const struct policy *p, const char *domain, size_t len);

#endif
