/* SIP transports on libuv: UDP sockets, and TCP/TLS flows through common/net. */
#ifndef PARLEY_SIP_TRANSPORT_H
#define PARLEY_SIP_TRANSPORT_H

#include "sip_hop.h"
#include "sip_msg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct tls_ctx;
struct sip_tp;

struct sip_tp_cbs {
	/* One parsed message (ownership passed) from src; src->flow is the stream it came
	 * on (0 for UDP). Return 0, or PE_PROTO when it was a request nobody could answer
	 * (no usable Via): a stream then gets a bare 400 and is closed; UDP drops it. */
	int (*on_message)(void *arg, struct sip_msg *m, const struct sip_hop *src);
	/* A stream closed or failed (connect refused, reset, TLS or certificate failure,
	 * keep-alive timeout). Anything still waiting on it will get no answer there. */
	void (*on_flow_closed)(void *arg, uint64_t flow, int reason);
};

/* Zero fields take the defaults. TLS contexts are borrowed and must outlive the
 * transport. */
struct sip_tp_cfg {
	size_t max_header;	    /* stream header block bound, default 16 KiB */
	size_t max_body;	    /* Content-Length bound, default 64 KiB */
	uint32_t keepalive_ms;	    /* RFC 5626 CRLF ping on idle outbound flows, default
				       30000; a flow whose pong does not come by the next
				       tick is closed */
	uint32_t idle_ms;	    /* close inbound flows idle this long, default 300000 */
	uint32_t connect_ms;	    /* TCP connect + TLS handshake deadline, default 5000 */
	size_t max_flows;	    /* open streams, default 1024; more are refused */
	size_t out_max;		    /* queued output bound per flow, default 16 MiB */
	struct tls_ctx *tls_client; /* for outbound TLS; NULL = TLS sends fail */
	struct tls_ctx *tls_server; /* for TLS listeners */
	bool tls_no_verify;	    /* accept an unverified server certificate (tests only) */
};

/* Returns the transport or NULL on allocation failure. */
struct sip_tp *sip_tp_new(uv_loop_t *loop, const struct sip_tp_cfg *cfg,
			  const struct sip_tp_cbs *cbs, void *arg);
/* Closes listeners and flows without callbacks; memory is freed from the loop, so run
 * it afterwards. NULL is a no-op. */
void sip_tp_free(struct sip_tp *tp);

/* Listens for proto on ip:port (port 0 = any free one). Returns the bound port (> 0)
 * or a negative error (libuv codes pass through; PE_INVAL for a bad address, PE_CONFIG
 * for TLS without tls_server). */
int sip_tp_listen(struct sip_tp *tp, enum sip_proto proto, const char *ip, int port);

/* Sends one serialised message to hop. UDP: from the UDP listener of the same address
 * family. Streams: on hop->flow if that stream is open, else on an open stream to the
 * same address, else on a new connection (TLS: verified against the CA, and the
 * certificate must carry hop->tls_name as a DNS-ID when it is set). *flow gets the
 * stream used (0 for UDP). Returns 0 or a negative error (PE_STATE: no UDP listener for
 * that family; PE_TOOBIG: output bound; PE_NOMEM). A failure after 0 is reported
 * through on_flow_closed. */
int sip_tp_send(struct sip_tp *tp, const struct sip_hop *hop, const uint8_t *p, size_t n,
		uint64_t *flow);

/* Closes a stream (tests, shutdown). Returns 0 or PE_NOTFOUND. */
int sip_tp_close_flow(struct sip_tp *tp, uint64_t flow);

struct sip_tp_stats {
	uint64_t flows_open;
	uint64_t udp_in, udp_out;
	uint64_t stream_msgs_in;
	uint64_t bad_input; /* unparseable or unframeable input */
	uint64_t pings_in;  /* CRLFCRLF answered */
	uint64_t pings_out; /* CRLFCRLF sent */
	uint64_t pongs_in;
	uint64_t keepalive_closed;
};
const struct sip_tp_stats *sip_tp_stats(const struct sip_tp *tp);

#endif
