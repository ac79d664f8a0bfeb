/* The federation policy in the gateway's config ([federation], [partner "DOMAIN"], [access]
 * and [user "JID"]), partners managed with parleyctl, and the PolicySnapshot built from both
 * for the edges. */
#ifndef PARLEY_GATEWAY_POLICY_H
#define PARLEY_GATEWAY_POLICY_H

#include "conf.h"
#include "link.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Values of a partner's `type`: indexes into gw_partner_type_names (Lync's
 * Federated / PublicVerified / PublicUnverified). */
enum gw_partner_type {
	GW_PARTNER_FEDERATED,	      /* sees status notes */
	GW_PARTNER_PUBLIC_VERIFIED,   /* no status notes */
	GW_PARTNER_PUBLIC_UNVERIFIED, /* no status notes; reaches only users who added it */
};

/* Values of a partner's `tls` and `sasl`: indexes into gw_neg_names. */
enum gw_neg {
	GW_NEG_REQUIRED,      /* must be used */
	GW_NEG_OPTIONAL,      /* offered, not demanded */
	GW_NEG_NOT_SUPPORTED, /* never offered */
};

/* Values of [access] default and of a [user "JID"] section's xmpp: indexes into
 * gw_access_names. */
enum gw_access {
	GW_ACCESS_ALLOW, /* the user may federate */
	GW_ACCESS_DENY,	 /* no XMPP traffic to or from the user */
};

/* NULL-terminated; what the config file accepts, matched case-insensitively. */
extern const char *const gw_partner_type_names[]; /* federated, public-verified, ... */
extern const char *const gw_neg_names[];	  /* required, optional, not-supported */
extern const char *const gw_access_names[];	  /* allow, deny */

/* One [partner "DOMAIN"] section; its domain is the item's name in gw_policy_conf.partners. */
struct gw_partner_conf {
	int type; /* enum gw_partner_type */
	int tls;  /* enum gw_neg */
	int sasl; /* enum gw_neg */
	bool dialback;
	bool keepalive;
	uint64_t connection_limit;  /* 0 = [federation] per_partner_limit */
	struct conf_hostport proxy; /* fixed proxy, overrides SRV; host NULL = none */
	struct conf_strlist additional_domains;
	char *description; /* NULL if not given */
};

/* One [user "JID"] section; its bare JID is the item's name in gw_policy_conf.users. */
struct gw_user_conf {
	int xmpp; /* enum gw_access */
};

/* [federation] plus the partners. All of it is reloadable: a reload builds a new snapshot. */
struct gw_policy_conf {
	struct conf_strlist domains; /* served domains */
	uint64_t connection_limit;
	uint64_t per_partner_limit;
	uint64_t keepalive_ms;
	uint64_t establishment_ms;
	uint64_t inactivity_ms;
	uint64_t subscription_refresh_ms;
	bool log_message_bodies;
	uint64_t max_stanza_bytes;
	uint64_t preauth_stanza_bytes;
	struct conf_array partners; /* items: struct gw_partner_conf; names: the domains */
	int access_default;	    /* enum gw_access: [access] default */
	struct conf_array users;    /* items: struct gw_user_conf; names: bare JIDs */
};

/* The rows of one partner item, for GW_POLICY_MULTI. */
#define GW_PARTNER_N_OPTIONS 9
extern const struct conf_option gw_partner_options[]; /* GW_PARTNER_N_OPTIONS rows */
/* The rows of one [user "JID"] item. */
#define GW_USER_N_OPTIONS 1
extern const struct conf_option gw_user_options[];

/* Table rows for struct gw_policy_conf embedded at member m of type T, section [federation].
 * Defaults are Lync's. */
// clang-format off
#define GW_POLICY_OPTIONS(T, m)                                                                    \
	{"federation", "domain", CONF_STRLIST, 1, 253, NULL, offsetof(T, m.domains), true, false, \
	 NULL, "a served domain (repeat the key for several)"},                                    \
	{"federation", "connection_limit", CONF_UINT, 1, 1000000, "1000",                          \
	 offsetof(T, m.connection_limit), true, false, NULL,                                       \
	 "most S2S connections an edge keeps in all"},                                             \
	{"federation", "per_partner_limit", CONF_UINT, 1, 100000, "20",                            \
	 offsetof(T, m.per_partner_limit), true, false, NULL,                                      \
	 "most S2S connections with one partner (a partner's connection_limit overrides it)"},     \
	{"federation", "keepalive", CONF_DURATION_MS, 1000, 86400000, "300s",                      \
	 offsetof(T, m.keepalive_ms), true, false, NULL,                                           \
	 "keep-alive interval on idle S2S streams (whole seconds)"},                               \
	{"federation", "establishment_timeout", CONF_DURATION_MS, 1000, 3600000, "60s",            \
	 offsetof(T, m.establishment_ms), true, false, NULL,                                       \
	 "an S2S stream must be established within this long (whole seconds)"},                   \
	{"federation", "inactivity_timeout", CONF_DURATION_MS, 1000, 86400000, "600s",             \
	 offsetof(T, m.inactivity_ms), true, false, NULL,                                          \
	 "an S2S stream idle this long is closed (whole seconds)"},                                \
	{"federation", "subscription_refresh", CONF_DURATION_MS, 60000, 604800000, "28800s",       \
	 offsetof(T, m.subscription_refresh_ms), true, false, NULL,                                \
	 "how often presence subscriptions are refreshed (whole seconds)"},                        \
	{"federation", "log_message_bodies", CONF_BOOL, 0, 0, "false",                             \
	 offsetof(T, m.log_message_bodies), true, false, NULL,                                     \
	 "log message bodies (Lync's EnableLoggingAllMessageBodies)"},                             \
	{"federation", "max_stanza_bytes", CONF_SIZE, 10000, 16777216, "256k",                     \
	 offsetof(T, m.max_stanza_bytes), true, false, NULL,                                       \
	 "largest stanza accepted from an authenticated partner"},                                 \
	{"federation", "preauth_stanza_bytes", CONF_SIZE, 1024, 1048576, "8k",                     \
	 offsetof(T, m.preauth_stanza_bytes), true, false, NULL,                                   \
	 "largest stanza accepted before authentication"},                                         \
	{"access", "default", CONF_ENUM, 0, 0, "allow", offsetof(T, m.access_default), true,       \
	 false, gw_access_names,                                                                   \
	 "XMPP federation for users without a [user] section: allow or deny"}

/* The conf_multi rows (two: partner, user) for the [partner "DOMAIN"] and [user "JID"]
 * sections of struct gw_policy_conf at member m of T. */
#define GW_POLICY_MULTI(T, m)                                                                      \
	{"partner", gw_partner_options, GW_PARTNER_N_OPTIONS, sizeof(struct gw_partner_conf),      \
	 offsetof(T, m.partners), "an allowed federation partner; NAME is its domain"},            \
	{"user", gw_user_options, GW_USER_N_OPTIONS, sizeof(struct gw_user_conf),                 \
	 offsetof(T, m.users), "a user's own XMPP access, overriding [access] default; NAME is "   \
	 "the bare JID"}
// clang-format on

/* Longest domain in bytes, and a buffer that holds one with its NUL. */
#define GW_DOMAIN_MAX 253
#define GW_DOMAIN_BUF (GW_DOMAIN_MAX + 1)

/* Writes the form of domain the policy compares and sends to out (cap >= GW_DOMAIN_BUF):
 * ASCII lower-cased; a non-ASCII (UTF-8) name converted to A-labels with libidn's
 * idna_to_ascii_8z (IDNA2003). The result must be LDH labels of 1..63 bytes, no label
 * starting or ending with '-', at most 253 bytes, no trailing dot, and a last label that is
 * not all digits. Returns 0, or PE_INVAL with the reason in why (if whylen > 0). */
int gw_policy_domain(const char *domain, char *out, size_t cap, char *why, size_t whylen);

/* Checks the rules a table cannot: every [user "JID"] name a bare JID with a local part in a
 * served domain, none given twice (after normalisation); every domain's syntax (served, partner,
 * additional, a proxy host unless it is an IP address); no partner domain or additional domain that
 * is also served; no domain given twice (served, or across and within partners); sasl needs tls
 * (sasl other than not-supported with tls = not-supported); a partner has a way to authenticate
 * (sasl or dialback); timers in whole seconds; preauth_stanza_bytes at most max_stanza_bytes.
 * Domains compare in gw_policy_domain's form. Returns 0, or PE_CONFIG with a message naming the
 * section, as in
 * "[partner \"a.example\"] sasl: ..." (the name escaped like log_escape), in err. */
int gw_policy_check(const struct gw_policy_conf *c, char *err, size_t errlen);

/* gw_policy_check for a config read from path: the message becomes "PATH:LINE: [section]
 * key: ...", LINE being where that key of that section is in the file (its section header
 * if the key is not there, e.g. a default). Returns 0 or PE_CONFIG. */
int gw_policy_check_file(const struct gw_policy_conf *c, const char *path, char *err,
			 size_t errlen);

/* The effective XMPP access of a user (any JID; the resource is ignored): the [user] section
 * whose name normalises to the same bare JID, else [access] default. *overridden (may be
 * NULL) says whether a [user] section decided. A JID that does not parse is denied.
 * Linear in the number of [user] sections. Returns enum gw_access. */
int gw_policy_user_access(const struct gw_policy_conf *c, const char *jid, bool *overridden);
/* gw_policy_user_access(c, jid, NULL) == GW_ACCESS_ALLOW. */
bool gw_policy_user_allowed(const struct gw_policy_conf *c, const char *jid);

/* ---- partners managed with parleyctl ----
 * They are kept in the state store as a domain and the body of its [partner "DOMAIN"]
 * section ("key = value" lines), parsed with the very rows the config uses. A set of them is
 * a struct gw_policy_conf whose partners alone are used ("managed"); the policy in force is
 * the config's merged with it (gw_policy_merge), checked as a whole by gw_policy_check. */

/* Parses settings (the body of a [partner "domain"] section: "key = value" lines) and
 * appends the partner to managed->partners. The domain is not checked here (gw_policy_check
 * does). Returns 0, or PE_CONFIG with "[partner \"DOMAIN\"] key: message" in err. */
int gw_policy_managed_add(struct gw_policy_conf *managed, const char *domain, const char *settings,
			  char *err, size_t errlen);
/* Frees what gw_policy_managed_add stored and zeroes managed. */
void gw_policy_managed_free(struct gw_policy_conf *managed);

/* Fills out with config's settings and partners followed by managed's partners (NULL:
 * none). Shallow: out points into both and lives no longer than they do. Release it with
 * gw_policy_merge_release (not conf_free). Allocation failure aborts. */
void gw_policy_merge(const struct gw_policy_conf *config, const struct gw_policy_conf *managed,
		     struct gw_policy_conf *out);
void gw_policy_merge_release(struct gw_policy_conf *out);

/* Finds a partner by domain (gw_policy_domain's form compared; additional domains not).
 * Returns its index in c->partners or -1. */
long gw_policy_find_partner(const struct gw_policy_conf *c, const char *domain);

/* Builds the snapshot the edges enforce: domains in gw_policy_domain's form, every field
 * set explicitly (has_* true), a partner's connection_limit as configured (0 = the global
 * per-partner limit), durations in seconds. generation is CLOCK_REALTIME microseconds, or
 * the previous generation + 1 if the clock did not advance, so it strictly increases across
 * the builds of this process and, with a sane clock, across restarts.
 * Returns NULL if c does not pass gw_policy_check. The caller frees the snapshot with
 * gw_policy_snapshot_free; it does not point into c. */
Parley__Link__PolicySnapshot *gw_policy_snapshot(const struct gw_policy_conf *c);

/* Frees a snapshot from gw_policy_snapshot. NULL is ignored. */
void gw_policy_snapshot_free(Parley__Link__PolicySnapshot *s);

#endif
