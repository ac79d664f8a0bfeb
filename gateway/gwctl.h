/* The gateway's parleyctl commands (status, link, reload, drain) and its metrics: link
 * counters and window depth per edge, frames from the edges by kind, the edge-to-gateway
 * delay, translation and SIP counters. Other gateway modules add their own commands to
 * ctx->ops->ctl with ctl_register (e.g. partners, subscriptions). */
#ifndef PARLEY_GATEWAY_GWCTL_H
#define PARLEY_GATEWAY_GWCTL_H

#include "edgelink.h"
#include "link.pb-c.h"
#include "ops.h"
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
	void *arg;
};

struct gwctl;

/* Registers the commands on ctx->ops->ctl and the metrics on ctx->ops->m, and installs its
 * collector as ctx->ops's. ctx is copied. Allocation failure aborts. */
struct gwctl *gwctl_new(const struct gwctl_ctx *ctx);
void gwctl_free(struct gwctl *gc);
/* Accounts one reliable frame from an edge (edgelink's on_frame, before handling it). */
void gwctl_frame(struct gwctl *gc, const Parley__Link__Frame *f);

#endif
