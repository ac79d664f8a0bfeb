/* One TCP connection on libuv: a state machine that owns the socket, its TLS session and its
 * buffers, frees them only from the last close callback, and batches output per loop pass.
 *
 * Byte path. Reads land in a per-thread 64 KiB buffer (plaintext) or straight in the TLS
 * session's input buffer; decrypted data goes to a per-thread 64 KiB buffer and reaches
 * on_data as one chunk. Writes are appended to `out` (plaintext waiting for TLS) or `wire`
 * (bytes for the socket; the TLS session appends its records there too, so plaintext queued
 * before STARTTLS keeps its place). An idle handle flushes once per loop pass: one SSL_write
 * of the whole batch, then one uv_try_write; what the kernel does not take is swapped (not
 * copied) into `inflight` for one uv_write. Idle handles run before the loop polls, and keep
 * it from blocking while active, so a write made from any callback goes out in that pass. */
#include "net.h"

#include "buf.h"
#include "err.h"
#include "log.h"
#include "tls.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#define NET__CHUNK (64 * 1024)		 /* read buffer and plaintext chunk size */
#define NET__BATCH (256 * 1024)		 /* flush at once when this much is waiting */
#define NET__OUT_RESERVE (16 * 1024)	 /* first allocation of an output buffer */
#define NET__DEF_HIGH (4u * 1024 * 1024) /* default out_high */
#define NET__DEF_LOW (1u * 1024 * 1024)	 /* default out_low */
#define NET__DEF_CLOSE_MS 5000		 /* default close_timeout_ms */

enum net_state {
	CS_CONNECTING, /* outbound TCP connect in progress */
	CS_OPEN,       /* connected: on_data flows, writes are accepted */
	CS_FLUSHING,   /* graceful close: writing what is queued; input is discarded */
	CS_LINGER,     /* our FIN is sent: discarding input until the peer's FIN or the timer */
	CS_CLOSED,     /* handles are closing; on_close comes from the last close callback */
};

struct net_conn {
	uv_tcp_t tcp;
	uv_idle_t idle;	  /* deferred flush and deferred TLS input after resume */
	uv_timer_t timer; /* user timeout; once closing, the close deadline */
	uv_connect_t creq;
	uv_write_t wreq;
	uv_shutdown_t sreq;
	struct net_conn_cbs cbs;
	void *arg;
	uint64_t id;
	struct tls_sess *tls;
	struct buf out;	     /* TLS: plaintext not yet encrypted */
	struct buf wire;     /* bytes for the socket not yet given to libuv */
	struct buf inflight; /* bytes of the uv_write in progress */
	size_t out_high, out_low, read_max, out_max;
	unsigned close_timeout_ms;
	bool keep_buffers;
	enum net_state state;
	int reason;
	int pending_closes;
	bool reason_set;
	bool connected;
	bool reading;	  /* uv_read_start is in effect */
	bool paused;	  /* the user paused input */
	bool writing;	  /* wreq is in flight */
	bool shutting;	  /* sreq is in flight */
	bool tls_shut;	  /* close_notify queued (or given up on) */
	bool above_high;  /* queued output went above out_high; on_drain owed */
	bool secure_told; /* on_secure was called */
	bool got_eof;	  /* the peer's FIN was read */
	bool idle_on;
	bool in_pending; /* TLS input left buffered by a pause */
	bool rd_tls;	 /* the last alloc_cb handed out TLS input space */
	char peer[INET6_ADDRSTRLEN + 8];
};

struct net_listener {
	uv_tcp_t tcp;
	net_accept_cb cb;
	void *arg;
	uint16_t port;
};

static struct net_stats net_stats;
static uint64_t net_next_id;
/* Only one read callback runs at a time and on_data must not keep p, so one buffer of each
 * kind per thread serves every connection: idle connections hold no read memory. */
static _Thread_local uint8_t net_rbuf[NET__CHUNK];
static _Thread_local uint8_t net_pbuf[NET__CHUNK];

static void conn_flush(struct net_conn *c, bool may_call_out);
static void on_timer(uv_timer_t *t);
static void on_idle(uv_idle_t *h);

const struct net_stats *net_stats_get(void)
{
	return &net_stats;
}

void net_stats_reset(void)
{
	uint64_t open = net_stats.conns_open;

	memset(&net_stats, 0, sizeof net_stats);
	net_stats.conns_open = open;
}

/* ---- lifecycle ---- */

static void conn_set_reason(struct net_conn *c, int reason)
{
	if (!c->reason_set) {
		c->reason = reason;
		c->reason_set = true;
	}
}

static void conn_finish(struct net_conn *c)
{
	log_debug(c->id, "net.closed", "peer=%s reason=\"%s\"", c->peer,
		  c->reason ? pe_strerror(c->reason) : "normal");
	if (c->cbs.on_close)
		c->cbs.on_close(c, c->reason);
	tls_sess_free(c->tls);
	buf_deinit(&c->out);
	buf_deinit(&c->wire);
	buf_deinit(&c->inflight);
	net_stats.conns_open--;
	free(c);
}

static void on_handle_closed(uv_handle_t *h)
{
	struct net_conn *c = h->data;

	if (--c->pending_closes == 0)
		conn_finish(c);
}

/* Pending requests (connect, write, shutdown) complete with UV_ECANCELED before the TCP
 * handle's close callback, so when the count reaches zero nothing refers to c any more. */
static void conn_close_handles(struct net_conn *c)
{
	if (c->state == CS_CLOSED)
		return;
	c->state = CS_CLOSED;
	c->pending_closes = 3;
	uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
	uv_close((uv_handle_t *)&c->idle, on_handle_closed);
	uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static void conn_fail(struct net_conn *c, int reason)
{
	conn_set_reason(c, reason);
	conn_close_handles(c);
}

static struct net_conn *conn_new(uv_loop_t *loop)
{
	struct net_conn *c = calloc(1, sizeof *c);

	if (!c)
		return NULL;
	if (uv_tcp_init(loop, &c->tcp)) {
		free(c);
		return NULL;
	}
	uv_idle_init(loop, &c->idle);
	uv_timer_init(loop, &c->timer);
	c->tcp.data = c->idle.data = c->timer.data = c;
	c->creq.data = c->wreq.data = c->sreq.data = c;
	c->id = ++net_next_id;
	buf_init(&c->out, 0);
	buf_init(&c->wire, 0);
	buf_init(&c->inflight, 0);
	net_conn_set_opts(c, NULL);
	net_stats.conns_open++;
	return c;
}

static void conn_schedule(struct net_conn *c)
{
	if (!c->idle_on && c->state != CS_CLOSED) {
		uv_idle_start(&c->idle, on_idle);
		c->idle_on = true;
	}
}

/* ---- reading ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct net_conn *c = h->data;

	(void)suggested;
	if (c->tls && c->state == CS_OPEN) {
		uint8_t *p = tls_sess_feed_reserve(c->tls, c->read_max);
		b->base = (char *)p;
		b->len = p ? c->read_max : 0; /* 0 makes libuv report UV_ENOBUFS */
		c->rd_tls = p != NULL;
		return;
	}
	b->base = (char *)net_rbuf;
	b->len = c->read_max;
	c->rd_tls = false;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b);

static void conn_read_start(struct net_conn *c)
{
	if (c->reading || !c->connected || c->got_eof || c->state == CS_CLOSED)
		return;
	int r = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
	if (r) {
		conn_fail(c, r);
		return;
	}
	c->reading = true;
}

static void conn_read_stop(struct net_conn *c)
{
	if (!c->reading)
		return;
	uv_read_stop((uv_stream_t *)&c->tcp);
	c->reading = false;
}

/* Graceful close, also used for the peer's FIN / close_notify and TLS failures (so the
 * alert reaches the peer). */
static void conn_begin_close(struct net_conn *c, int reason)
{
	if (c->state >= CS_FLUSHING)
		return;
	conn_set_reason(c, reason);
	c->state = CS_FLUSHING;
	/* Keep reading (and discarding) so the peer's FIN or RST is seen and a close with
	 * unread input does not turn into a RST that could destroy our last output. */
	conn_read_start(c);
	if (c->state == CS_CLOSED)
		return;
	uv_timer_start(&c->timer, on_timer, c->close_timeout_ms, 0);
	conn_schedule(c);
}

static void conn_tls_failed(struct net_conn *c)
{
	log_debug(c->id, "net.tls_error", "peer=%s reason=\"%s\"", c->peer, tls_sess_error(c->tls));
	conn_begin_close(c, PE_TLS);
}

/* Decrypts what the TLS session holds and hands it out, until it needs more input, the user
 * pauses or the connection closes. */
static void conn_tls_input(struct net_conn *c)
{
	int r;

	c->in_pending = false;
	if (!c->secure_told) {
		r = tls_sess_handshake(c->tls);
		if (tls_sess_want_write(c->tls))
			conn_schedule(c);
		if (r < 0) {
			conn_tls_failed(c);
			return;
		}
		if (r == 0)
			return;
		c->secure_told = true;
		conn_schedule(c); /* plaintext queued during the handshake can go now */
		log_debug(c->id, "net.secure", "peer=%s version=%s", c->peer,
			  tls_sess_version(c->tls));
		if (c->cbs.on_secure)
			c->cbs.on_secure(c);
	}
	while (c->state == CS_OPEN && !c->paused) {
		r = tls_sess_read(c->tls, net_pbuf, c->read_max);
		if (r > 0) {
			if (c->cbs.on_data)
				c->cbs.on_data(c, net_pbuf, (size_t)r);
			continue;
		}
		if (r == PE_CLOSED)
			conn_begin_close(c, UV_EOF);
		else if (r < 0)
			conn_tls_failed(c);
		break;
	}
	if (c->state == CS_OPEN && c->paused && tls_sess_read_pending(c->tls))
		c->in_pending = true;
	if (c->state != CS_CLOSED && tls_sess_want_write(c->tls))
		conn_schedule(c); /* alerts, KeyUpdate replies */
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
	struct net_conn *c = st->data;
	bool was_tls = c->rd_tls;

	c->rd_tls = false;
	if (was_tls)
		tls_sess_feed_commit(c->tls, nread > 0 ? (size_t)nread : 0);
	if (nread == 0 || c->state == CS_CLOSED)
		return;
	if (nread < 0) {
		if (nread != UV_EOF) {
			conn_fail(c, (int)nread);
			return;
		}
		c->got_eof = true;
		c->reading = false; /* libuv stopped reading at EOF */
		switch (c->state) {
		case CS_OPEN:
			if (c->tls && c->in_pending && !c->paused)
				conn_tls_input(c);
			conn_begin_close(c, UV_EOF);
			break;
		case CS_LINGER:
			conn_close_handles(c);
			break;
		default: /* flushing: finish writing, then close without lingering */
			break;
		}
		return;
	}
	net_stats.reads++;
	net_stats.bytes_in += (uint64_t)nread;
	if (c->state != CS_OPEN)
		return; /* closing: discard */
	if (was_tls)
		conn_tls_input(c);
	else if (c->cbs.on_data)
		c->cbs.on_data(c, (const uint8_t *)b->base, (size_t)nread);
}

/* ---- writing ---- */

size_t net_conn_out_queued(const struct net_conn *c)
{
	return c->out.len + c->wire.len + c->inflight.len;
}

static void conn_check_drain(struct net_conn *c)
{
	if (c->above_high && c->state == CS_OPEN && net_conn_out_queued(c) <= c->out_low) {
		c->above_high = false;
		if (c->cbs.on_drain)
			c->cbs.on_drain(c);
	}
}

static void on_shutdown_done(uv_shutdown_t *req, int status)
{
	struct net_conn *c = req->data;

	c->shutting = false;
	if (c->state == CS_CLOSED)
		return;
	if (status < 0 || c->got_eof) {
		conn_close_handles(c);
		return;
	}
	c->state = CS_LINGER; /* the close timer is already running */
}

static void on_write_done(uv_write_t *req, int status)
{
	struct net_conn *c = req->data;

	c->writing = false;
	if (c->state == CS_CLOSED)
		return;
	if (status < 0) {
		conn_fail(c, status);
		return;
	}
	net_stats.bytes_out += c->inflight.len;
	buf_consume(&c->inflight, c->inflight.len); /* storage kept for the next swap */
	conn_flush(c, true);
}

static void buf_swap(struct buf *a, struct buf *b)
{
	struct buf t = *a;
	*a = *b;
	*b = t;
}

/* Encrypts the plaintext batch and starts writing what the socket takes. may_call_out is
 * false when called from inside net_conn_write, where on_drain must not re-enter the user. */
static void conn_flush(struct net_conn *c, bool may_call_out)
{
	if (c->state == CS_CLOSED || !c->connected)
		return;
	if (c->tls && c->out.len && tls_sess_handshake_done(c->tls)) {
		int r = tls_sess_write(c->tls, buf_head(&c->out), c->out.len);
		buf_consume(&c->out, c->out.len);
		if (!c->keep_buffers)
			buf_release_if_empty(&c->out);
		if (r < 0) {
			conn_tls_failed(c);
			if (c->state == CS_CLOSED)
				return;
		}
	}
	if (c->state == CS_FLUSHING && !c->tls_shut) {
		c->tls_shut = true;
		if (c->tls && tls_sess_handshake_done(c->tls))
			(void)tls_sess_shutdown(c->tls); /* queues close_notify into wire */
		/* Nothing more can be encrypted. */
		buf_deinit(&c->out);
	}
	if (!c->writing && c->wire.len) {
		uv_buf_t ub = uv_buf_init((char *)buf_head(&c->wire), (unsigned)c->wire.len);
		net_stats.flushes++;
		net_stats.write_calls++;
		int n = uv_try_write((uv_stream_t *)&c->tcp, &ub, 1);
		if (n > 0) {
			net_stats.bytes_out += (uint64_t)n;
			buf_consume(&c->wire, (size_t)n);
		} else if (n < 0 && n != UV_EAGAIN && n != UV_ENOSYS) {
			conn_fail(c, n);
			return;
		}
		if (c->wire.len) {
			buf_swap(&c->wire, &c->inflight);
			ub = uv_buf_init((char *)buf_head(&c->inflight), (unsigned)c->inflight.len);
			net_stats.write_calls++;
			net_stats.uv_writes++;
			int r = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &ub, 1, on_write_done);
			if (r < 0) {
				conn_fail(c, r);
				return;
			}
			c->writing = true;
		}
	}
	if (!c->writing && c->wire.len == 0) {
		/* Idle connections keep no output memory; a busy link would only regrow it. */
		if (!c->keep_buffers) {
			buf_release_if_empty(&c->wire);
			buf_deinit(&c->inflight);
		}
		if (c->state == CS_FLUSHING && c->tls_shut && !c->shutting) {
			int r = uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown_done);
			if (r < 0) {
				conn_close_handles(c);
				return;
			}
			c->shutting = true;
		}
	}
	if (may_call_out)
		conn_check_drain(c);
}

static void on_idle(uv_idle_t *h)
{
	struct net_conn *c = h->data;

	uv_idle_stop(h);
	c->idle_on = false;
	if (c->in_pending && c->state == CS_OPEN && !c->paused)
		conn_tls_input(c);
	conn_flush(c, true);
}

int net_conn_write(struct net_conn *c, const void *p, size_t n)
{
	struct buf *b;
	size_t batch;
	int r;

	net_stats.conn_writes++;
	if (c->state >= CS_FLUSHING)
		return PE_CLOSED;
	if (n == 0)
		return 0;
	if (c->out_max && net_conn_out_queued(c) + n > c->out_max)
		return PE_TOOBIG;
	b = c->tls ? &c->out : &c->wire;
	if (b->cap == 0) {
		uint8_t *w;
		if ((r = buf_reserve(b, n > NET__OUT_RESERVE ? n : NET__OUT_RESERVE, &w)))
			return r;
	}
	if ((r = buf_append(b, p, n)))
		return r;
	if (net_conn_out_queued(c) > c->out_high)
		c->above_high = true;
	if (c->tls)
		batch = tls_sess_handshake_done(c->tls) ? c->out.len : 0;
	else
		batch = c->writing ? 0 : c->wire.len;
	if (batch >= NET__BATCH)
		conn_flush(c, false);
	else
		conn_schedule(c);
	return 0;
}

/* ---- timers ---- */

static void on_timer(uv_timer_t *t)
{
	struct net_conn *c = t->data;

	switch (c->state) {
	case CS_CONNECTING:
	case CS_OPEN:
		log_debug(c->id, "net.timeout", "peer=%s", c->peer);
		conn_fail(c, PE_TIMEOUT);
		break;
	case CS_FLUSHING:
	case CS_LINGER:
		conn_close_handles(c);
		break;
	case CS_CLOSED:
		break;
	}
}

void net_conn_set_timeout(struct net_conn *c, uint64_t ms)
{
	if (c->state >= CS_FLUSHING)
		return;
	if (ms)
		uv_timer_start(&c->timer, on_timer, ms, 0);
	else
		uv_timer_stop(&c->timer);
}

/* ---- public connection API ---- */

void net_conn_set_cbs(struct net_conn *c, const struct net_conn_cbs *cbs, void *arg)
{
	if (cbs)
		c->cbs = *cbs;
	else
		memset(&c->cbs, 0, sizeof c->cbs);
	c->arg = arg;
}

void net_conn_set_opts(struct net_conn *c, const struct net_conn_opts *o)
{
	static const struct net_conn_opts zero;

	if (!o)
		o = &zero;
	c->out_high = o->out_high ? o->out_high : NET__DEF_HIGH;
	c->out_low = o->out_low ? o->out_low : NET__DEF_LOW;
	if (c->out_low > c->out_high)
		c->out_low = c->out_high;
	c->read_max = o->read_max && o->read_max < NET__CHUNK ? o->read_max : NET__CHUNK;
	c->out_max = o->out_max;
	c->close_timeout_ms = o->close_timeout_ms ? o->close_timeout_ms : NET__DEF_CLOSE_MS;
	c->keep_buffers = o->keep_buffers;
}

void *net_conn_arg(const struct net_conn *c)
{
	return c->arg;
}

uint64_t net_conn_id(const struct net_conn *c)
{
	return c->id;
}

const char *net_conn_peer(const struct net_conn *c)
{
	return c->peer;
}

struct tls_sess *net_conn_tls(const struct net_conn *c)
{
	return c->tls;
}

int net_conn_start_tls(struct net_conn *c, struct tls_ctx *ctx, bool server, const char *sni)
{
	if (c->state >= CS_FLUSHING)
		return PE_CLOSED;
	if (c->tls)
		return PE_STATE;
	struct tls_sess *s = tls_sess_new(ctx, server, sni);
	if (!s)
		return PE_NOMEM;
	/* Records go after whatever plaintext is already queued (e.g. "<proceed/>"). */
	tls_sess_attach_out(s, &c->wire);
	c->tls = s;
	if (!server) {
		if (tls_sess_handshake(s) < 0) { /* writes the ClientHello */
			conn_tls_failed(c);
			return PE_TLS;
		}
		conn_schedule(c);
	}
	return 0;
}

void net_conn_pause_read(struct net_conn *c)
{
	c->paused = true;
	if (c->state == CS_OPEN)
		conn_read_stop(c);
}

void net_conn_resume_read(struct net_conn *c)
{
	if (!c->paused)
		return;
	c->paused = false;
	if (c->state != CS_OPEN)
		return;
	conn_read_start(c);
	if (c->tls && tls_sess_read_pending(c->tls)) {
		c->in_pending = true;
		conn_schedule(c);
	}
}

void net_conn_close(struct net_conn *c, int reason)
{
	conn_begin_close(c, reason);
}

void net_conn_abort(struct net_conn *c, int reason)
{
	conn_fail(c, reason);
}

void net_conn_set_nodelay(struct net_conn *c, bool on)
{
	if (c->state != CS_CLOSED)
		(void)uv_tcp_nodelay(&c->tcp, on);
}

/* ---- connecting ---- */

static int parse_addr(const char *ip, uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof *ss);
	if (uv_ip4_addr(ip, port, (struct sockaddr_in *)ss) == 0)
		return 0;
	if (uv_ip6_addr(ip, port, (struct sockaddr_in6 *)ss) == 0)
		return 0;
	return PE_INVAL;
}

static void format_peer(char *dst, size_t cap, const struct sockaddr *sa)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		uv_ip6_name(s6, ip, sizeof ip);
		snprintf(dst, cap, "[%s]:%u", ip, ntohs(s6->sin6_port));
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		uv_ip4_name(s4, ip, sizeof ip);
		snprintf(dst, cap, "%s:%u", ip, ntohs(s4->sin_port));
	}
}

static void on_connect_done(uv_connect_t *req, int status)
{
	struct net_conn *c = req->data;

	if (c->state == CS_CLOSED)
		return;
	if (status < 0) {
		log_debug(c->id, "net.connect_failed", "peer=%s error=\"%s\"", c->peer,
			  uv_strerror(status));
		conn_fail(c, status);
		return;
	}
	c->connected = true;
	log_debug(c->id, "net.connected", "peer=%s", c->peer);
	if (c->state == CS_CONNECTING) {
		c->state = CS_OPEN;
		if (c->cbs.on_connect)
			c->cbs.on_connect(c);
		if (c->state == CS_CLOSED)
			return;
	}
	if (c->state != CS_OPEN || !c->paused)
		conn_read_start(c);
	conn_schedule(c);
}

struct net_conn *net_connect(uv_loop_t *loop, const char *ip, uint16_t port,
			     const struct net_conn_cbs *cbs, void *arg)
{
	struct sockaddr_storage ss;
	struct net_conn *c;

	if (parse_addr(ip, port, &ss))
		return NULL;
	c = conn_new(loop);
	if (!c)
		return NULL;
	net_conn_set_cbs(c, cbs, arg);
	format_peer(c->peer, sizeof c->peer, (const struct sockaddr *)&ss);
	c->state = CS_CONNECTING;
	int r = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&ss, on_connect_done);
	if (r < 0) {
		conn_fail(c, r); /* on_close follows from the loop */
		return c;
	}
	(void)uv_tcp_nodelay(&c->tcp, 1);
	return c;
}

/* ---- listening ---- */

static void on_connection(uv_stream_t *srv, int status)
{
	struct net_listener *l = srv->data;
	struct sockaddr_storage ss;
	int len = sizeof ss;

	if (status < 0) {
		log_warn(0, "net.accept_failed", "port=%u error=\"%s\"", l->port,
			 uv_strerror(status));
		return;
	}
	struct net_conn *c = conn_new(srv->loop);
	if (!c) {
		log_error(0, "net.accept_failed", "port=%u error=\"out of memory\"", l->port);
		return;
	}
	int r = uv_accept(srv, (uv_stream_t *)&c->tcp);
	if (r) {
		log_warn(0, "net.accept_failed", "port=%u error=\"%s\"", l->port, uv_strerror(r));
		conn_fail(c, r); /* no callbacks set: freed silently */
		return;
	}
	c->connected = true;
	c->state = CS_OPEN;
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0)
		format_peer(c->peer, sizeof c->peer, (const struct sockaddr *)&ss);
	else
		snprintf(c->peer, sizeof c->peer, "?");
	(void)uv_tcp_nodelay(&c->tcp, 1);
	log_debug(c->id, "net.accepted", "peer=%s port=%u", c->peer, l->port);
	l->cb(l->arg, c);
	if (c->state == CS_OPEN && !c->paused)
		conn_read_start(c);
}

static void on_listener_closed(uv_handle_t *h)
{
	free(h->data);
}

/* systemd socket activation: a listening socket passed as fd 3.. (LISTEN_FDS, and LISTEN_PID
 * if set naming us) bound to exactly this address is adopted instead of binding anew, so
 * connections made while the daemon restarts wait in the kernel's backlog. Returns the fd or
 * -1. */
static int inherited_listener(const struct sockaddr_storage *want)
{
	const char *nfds = getenv("LISTEN_FDS"), *pid = getenv("LISTEN_PID");
	if (!nfds || (pid && strtol(pid, NULL, 10) != (long)getpid()))
		return -1;
	long n = strtol(nfds, NULL, 10);
	for (int fd = 3; n > 0 && n < 64 && fd < 3 + n; fd++) {
		struct sockaddr_storage have;
		socklen_t len = sizeof have;
		int listening = 0;
		socklen_t ll = sizeof listening;
		if (getsockname(fd, (struct sockaddr *)&have, &len) != 0 ||
		    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ll) != 0 || !listening ||
		    have.ss_family != want->ss_family)
			continue;
		if (have.ss_family == AF_INET) {
			const struct sockaddr_in *a = (const void *)&have, *b = (const void *)want;
			if (a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr)
				return fd;
		} else if (have.ss_family == AF_INET6) {
			const struct sockaddr_in6 *a = (const void *)&have, *b = (const void *)want;
			if (a->sin6_port == b->sin6_port &&
			    memcmp(&a->sin6_addr, &b->sin6_addr, sizeof a->sin6_addr) == 0)
				return fd;
		}
	}
	return -1;
}

int net_listen(uv_loop_t *loop, const char *ip, uint16_t port, int backlog, net_accept_cb cb,
	       void *arg, struct net_listener **out)
{
	struct sockaddr_storage ss;
	struct net_listener *l;
	int len = sizeof ss;
	int r;

	if (parse_addr(ip, port, &ss))
		return PE_INVAL;
	l = calloc(1, sizeof *l);
	if (!l)
		return PE_NOMEM;
	l->cb = cb;
	l->arg = arg;
	if ((r = uv_tcp_init(loop, &l->tcp))) {
		free(l);
		return r;
	}
	l->tcp.data = l;
	int fd = port ? inherited_listener(&ss) : -1;
	if (fd >= 0) {
		r = uv_tcp_open(&l->tcp, fd);
		if (!r)
			log_info(0, "net.listen_inherited", "ip=%s port=%u fd=%d", ip, port, fd);
	} else {
		/* libuv sets SO_REUSEADDR on bind; a bind error may also surface at listen. */
		r = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&ss,
				ss.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
	}
	if (!r)
		r = uv_listen((uv_stream_t *)&l->tcp, backlog, on_connection);
	if (!r)
		r = uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &len);
	if (r) {
		uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
		return r;
	}
	l->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						 : ((struct sockaddr_in *)&ss)->sin_port);
	log_debug(0, "net.listen", "ip=%s port=%u", ip, l->port);
	*out = l;
	return 0;
}

void net_listener_close(struct net_listener *l)
{
	if (l)
		uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
}

uint16_t net_listener_port(const struct net_listener *l)
{
	return l->port;
}
