/* The edge's end of the internal link: accepts gateways, picks the active one, and keeps one
 * outbound stream of frames that survives gateway restarts and failover. */
#ifndef PARLEY_PROXY_GWLINK_H
#define PARLEY_PROXY_GWLINK_H

#include "link.h"
#include "link_conf.h"

#include <uv.h>

struct gwlink;

struct gwlink_opts {
	const char *node_id;
	const char *listen_host;
	uint16_t listen_port;
	const struct link_conf *conf;
	/* What the S2S side wants to hear about. */
	void (*on_policy)(void *arg, const Parley__Link__PolicySnapshot *snap);
	void (*on_room)(void *arg);  /* the outbound window reopened */
	void (*on_acked)(void *arg); /* the gateway acknowledged frames */
	void *hook_arg;
	/* test-only: emit this many stanza frames (ref 1..n) with a body of body_bytes */
	uint64_t source_frames;
	uint32_t source_body_bytes;
};

/* Starts listening. Returns 0 or an error (logged). */
int gwlink_start(uv_loop_t *loop, const struct gwlink_opts *o, struct gwlink **out);
/* Sends Goodbye to every gateway and closes the listener and sessions. */
void gwlink_stop(struct gwlink *g);
void gwlink_free(struct gwlink *g);
/* Reloads the link certificates for new connections. */
int gwlink_reload_tls(struct gwlink *g, const struct link_conf *conf);

/* The shared outbound stream (stanzas toward the active gateway). */
struct link_out *gwlink_out(struct gwlink *g);
/* The newest policy generation received from any gateway, 0 if none. */
uint64_t gwlink_policy_generation(const struct gwlink *g);

#endif
