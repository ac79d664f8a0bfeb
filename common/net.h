/* One TCP connection on libuv with optional TLS, batched writes and backpressure. */
#ifndef PARLEY_NET_H
#define PARLEY_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct tls_ctx;
struct tls_sess;

/* A connection owns its uv_tcp_t, timers, TLS session and buffers. It is freed right after
 * on_close returns, never earlier: inside any callback the pointer stays valid even if the
 * callback closed it, but after net_conn_close/abort only getters and further close calls
 * may be used on it. */
struct net_conn;

struct net_conn_cbs {
	/* Outbound: TCP connected (TLS, if started, is still handshaking). */
	void (*on_connect)(struct net_conn *c);
	/* TLS handshake finished; inspect net_conn_tls(c) and decide (close if policy says no). */
	void (*on_secure)(struct net_conn *c);
	/* Plaintext in. p is valid only during the call (copy what you keep). May pause, write,
	 * start TLS or close. */
	void (*on_data)(struct net_conn *c, const uint8_t *p, size_t n);
	/* Queued output fell to <= out_low after having been above out_high. */
	void (*on_drain)(struct net_conn *c);
	/* Last call, exactly once per connection; c is freed right after it returns. reason:
	 * 0 or what was given to net_conn_close/abort, UV_EOF (peer closed, TCP FIN or TLS
	 * close_notify), UV_ECONNREFUSED, UV_ECONNRESET and other libuv errors, PE_TLS (see
	 * tls_sess_error(net_conn_tls(c)), still valid here), PE_TIMEOUT. The first reason
	 * wins. */
	void (*on_close)(struct net_conn *c, int reason);
};

/* Zero fields take the defaults. */
struct net_conn_opts {
	size_t out_high; /* default 4 MiB: above it, the producer should wait for on_drain */
	size_t out_low;	 /* default 1 MiB */
	size_t read_max; /* bytes per read and per on_data chunk; default and maximum 64 KiB */
	size_t out_max;	 /* hard bound on queued output; net_conn_write returns PE_TOOBIG
			    above it; 0 = none (default) */
	unsigned close_timeout_ms; /* a graceful close (flush, FIN, wait for the peer's FIN)
				      is cut short after this long; default 5000 */
	bool keep_buffers; /* keep output buffers between flushes (a busy link); by default an
			      idle connection holds no output memory */
};

/* Called for each accepted connection: set callbacks with net_conn_set_cbs, and possibly
 * net_conn_start_tls, net_conn_set_opts, net_conn_set_timeout. Reading starts after it
 * returns (unless it paused or closed the connection). */
typedef void (*net_accept_cb)(void *arg, struct net_conn *c);

struct net_listener;

/* Listens on an IPv4 or IPv6 address literal (IPv6 sockets are IPV6_V6ONLY; SO_REUSEADDR is
 * set). port 0 picks a free port (see net_listener_port). Returns 0 and *out, or a negative
 * libuv error / PE_INVAL for a bad address. */
int net_listen(uv_loop_t *loop, const char *ip, uint16_t port, int backlog, net_accept_cb cb,
	       void *arg, struct net_listener **out);
/* Stops accepting; memory is released from the loop. Accepted connections are unaffected. */
void net_listener_close(struct net_listener *l);
uint16_t net_listener_port(const struct net_listener *l);

/* Starts connecting to an address literal (DNS is another module). Returns NULL only for an
 * invalid address or allocation failure (no callback follows); otherwise on_connect or
 * on_close(error) follows, asynchronously. Plaintext may be written and TLS started before
 * the connection is up. TCP_NODELAY is on (we batch ourselves). */
struct net_conn *net_connect(uv_loop_t *loop, const char *ip, uint16_t port,
			     const struct net_conn_cbs *cbs, void *arg);

/* cbs is copied. */
void net_conn_set_cbs(struct net_conn *c, const struct net_conn_cbs *cbs, void *arg);
void net_conn_set_opts(struct net_conn *c, const struct net_conn_opts *opts);
void *net_conn_arg(const struct net_conn *c);
/* Process-unique, never 0, for logs. */
uint64_t net_conn_id(const struct net_conn *c);
/* "ip:port", or "[ipv6]:port". */
const char *net_conn_peer(const struct net_conn *c);

/* Starts TLS now: direct TLS right after accept/connect, or STARTTLS mid-stream. Plaintext
 * written before this call goes out in the clear first; plaintext written after it is
 * encrypted; input read after this point is decrypted. ctx is not retained (the session keeps
 * the SSL_CTX alive). sni: client only, may be NULL. Called from on_data, the rest of that
 * chunk was already delivered as plaintext, so a peer that pipelines TLS bytes behind its
 * STARTTLS command fails the handshake (XMPP forbids that anyway). Returns 0, PE_STATE if
 * TLS is already on, PE_CLOSED if closing, PE_NOMEM, PE_TLS (then the connection closes). */
int net_conn_start_tls(struct net_conn *c, struct tls_ctx *ctx, bool server, const char *sni);
/* The TLS session or NULL if plaintext. Owned by c. */
struct tls_sess *net_conn_tls(const struct net_conn *c);

/* Queues plaintext (copied). Output is coalesced and flushed once per loop iteration (and at
 * once when more than 256 KiB are waiting), so many small writes become few TLS records and
 * few write syscalls. Returns 0; PE_CLOSED if closing; PE_TOOBIG over out_max; PE_NOMEM. */
int net_conn_write(struct net_conn *c, const void *p, size_t n);
/* Bytes accepted by net_conn_write and not yet handed to the kernel. */
size_t net_conn_out_queued(const struct net_conn *c);

/* Stops / restarts delivering on_data (and reading from the socket). Input already read is
 * kept and delivered after resume, from the loop, never inside net_conn_resume_read. */
void net_conn_pause_read(struct net_conn *c);
void net_conn_resume_read(struct net_conn *c);

/* Graceful: no more on_data (input is read and discarded); encrypts and flushes queued
 * output, queues TLS close_notify, sends FIN, waits for the peer's FIN, then closes, all
 * within close_timeout_ms; on_close(reason) follows. Plaintext queued on a TLS connection
 * whose handshake has not finished is dropped. Safe from any callback, repeatable (the
 * first reason wins). */
void net_conn_close(struct net_conn *c, int reason);
/* Immediate close without flushing; on_close(reason) follows from the loop. */
void net_conn_abort(struct net_conn *c, int reason);

/* Arms (ms > 0) or disarms (0) a one-shot timer that aborts the connection with PE_TIMEOUT,
 * e.g. for a connect / handshake / idle deadline. Re-arming replaces the previous one. */
void net_conn_set_timeout(struct net_conn *c, uint64_t ms);
void net_conn_set_nodelay(struct net_conn *c, bool on);

/* Process-wide counters, for tests and benchmarks. */
struct net_stats {
	uint64_t conn_writes; /* net_conn_write calls */
	uint64_t flushes;     /* batches handed to the socket layer */
	uint64_t write_calls; /* uv_try_write + uv_write calls */
	uint64_t uv_writes;   /* uv_write calls (socket was full) */
	uint64_t reads;	      /* read callbacks with data */
	uint64_t bytes_out;   /* bytes handed to the kernel */
	uint64_t bytes_in;    /* bytes read from the kernel */
	uint64_t conns_open;  /* connections currently allocated */
};
const struct net_stats *net_stats_get(void);
/* Zeroes all counters except conns_open. */
void net_stats_reset(void);

#endif
