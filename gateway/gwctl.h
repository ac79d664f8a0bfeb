/* The gateway's parleyctl commands (status, link, reload, drain; partners, users,
 * subscriptions) and its metrics: link counters and window depth per edge, frames from the
 * edges by kind, the edge-to-gateway delay, translation and SIP counters. The partners
 * added with parleyctl live here (and in the state store); the policy in force is the
 * config's merged with them. */
#ifndef PARLEY_GATEWAY_GWCTL_H
#define PARLEY_GATEWAY_GWCTL_H

#include "edgelink.h"
#include "link.pb-c.h"
#include "ops.h"
#include "policy.h"
#include "sip_stack.h"
#include "xlate.h"

#include <stdbool.h>
#include <stddef.h>

/* What the commands read. The double pointers follow main's fields, which change while
 * the daemon runs (xlate and sip are freed on drain); everything must outlive the gwctl. */
struct gwctl_ctx {
	struct ops *ops;
	const char *node_id;
	const char *config_path;
	struct edgelink *const *edges;
	struct xlate *const *xlate;   /* *xlate may be NULL */
	struct sip_stack *const *sip; /* *sip may be NULL */
	const Parley__Link__PolicySnapshot *const *snap;
	const bool *stopping;
	/* Reloads like SIGHUP: 0, or an error with the reason in err. */
	int (*reload)(void *arg, char *err, size_t errlen);
	/* Begins the graceful stop like SIGTERM (called at most once). */
	void (*drain)(void *arg);
	/* The config's policy ([federation], partners, [access], users); its address stays
	 * valid, its contents change on reload. */
	const struct gw_policy_conf *policy;
	/* Puts in force the config's policy merged with managed (the partners managed with
	 * parleyctl): checks the whole, builds a snapshot with a new generation and pushes it to
	 * every edge. Returns 0, or PE_CONFIG with gw_policy_check's message in err (nothing
	 * changed). */
	int (*apply_policy)(void *arg, const struct gw_policy_conf *managed, char *err,
			    size_t errlen);
	void *arg;
};

struct gwctl;

/* Registers the commands on ctx->ops->ctl and the metrics on ctx->ops->m, and installs its
 * collector as ctx->ops's. ctx is copied. Allocation failure aborts. */
struct gwctl *gwctl_new(const struct gwctl_ctx *ctx);
void gwctl_free(struct gwctl *gc);
/* Loads the partners managed with parleyctl from the translator's store (*ctx->xlate) and
 * puts them in force with apply_policy. One that does not fit the config (refused by the
 * check: a clash with a config partner, say) is left out with an error line naming it.
 * Without a translator (no [sip]) there is no store: nothing to load, and partners
 * add/set/remove are refused. */
void gwctl_load_partners(struct gwctl *gc);
/* The partners managed with parleyctl now in force (only ->partners is used). */
const struct gw_policy_conf *gwctl_managed(const struct gwctl *gc);
/* Accounts one reliable frame from an edge (edgelink's on_frame, before handling it). */
void gwctl_frame(struct gwctl *gc, const Parley__Link__Frame *f);

#endif
