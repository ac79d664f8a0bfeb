/* SIP transports. UDP is one uv_udp_t per listener, used for sending too so responses
 * and requests come back to the address in our Via. Streams are net_conn flows: our
 * own framing (sip_frame) turns bytes into messages, parsed straight from the read
 * chunk when nothing is buffered; outbound flows are reused per destination and kept
 * alive with RFC 5626 CRLF pings; bad input gets a 400 and the flow is closed. */
#include "sip_transport.h"

#include "buf.h"
#include "err.h"
#include "log.h"
#include "net.h"
#include "sip_frame.h"
#include "sip_map.h"
#include "tls.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UDP_MAX 65536

struct udp_sock {
	uv_udp_t h;
	struct sip_tp *tp;
	int family;
	struct udp_sock *next;
};

struct tcp_listener {
	struct net_listener *l;
	struct sip_tp *tp;
	enum sip_proto proto;
	struct tcp_listener *next;
};

struct flow {
	struct sip_map_node by_addr;
	struct sip_map_node by_id;
	uint8_t key[20];
	size_t klen;
	struct flow *prev, *next; /* all flows, for the keep-alive sweep */
	struct sip_tp *tp;
	struct net_conn *c;
	uint64_t id;
	struct sip_hop peer; /* proto, address, flow = id, tls_name (outbound) */
	struct buf in;
	struct sip_frame_state fs;
	uint64_t last_rx;
	bool outbound;
	bool closing;
	bool expect_pong;
	bool rx_since_tick;
};

struct sip_tp {
	uv_loop_t *loop;
	struct sip_tp_cfg cfg;
	struct sip_tp_cbs cbs;
	void *arg;
	struct udp_sock *udp;
	struct tcp_listener *listeners;
	struct sip_map flows_by_addr, flows_by_id;
	struct flow *flows;
	uv_timer_t tick;
	bool tick_on;
	bool freeing; /* sip_tp_free called: the last of tick and flows frees tp */
	bool tick_closed;
	struct sip_tp_stats stats;
	uint8_t udp_buf[UDP_MAX];
	bool udp_buf_busy;
	struct sip_frame_limits lim;
};

static void log_excerpt(uint64_t conn, const char *event, const char *peer, const void *p, size_t n,
			const char *why)
{
	char esc[200];
	log_escape(esc, sizeof esc, p, n < 120 ? n : 120);
	log_warn(conn, event, "peer=%s why=\"%s\" len=%zu excerpt=\"%s\"", peer, why, n, esc);
}

/* --- streams ----------------------------------------------------------------------- */

static void flow_on_connect(struct net_conn *c);
static void flow_on_secure(struct net_conn *c);
static void flow_on_data(struct net_conn *c, const uint8_t *p, size_t n);
static void flow_on_close(struct net_conn *c, int reason);

static const struct net_conn_cbs flow_cbs = {
    .on_connect = flow_on_connect,
    .on_secure = flow_on_secure,
    .on_data = flow_on_data,
    .on_close = flow_on_close,
};

static int parse_peer(const char *s, struct sip_hop *hop, enum sip_proto proto)
{
	char ip[64];
	const char *colon;
	size_t n;
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb[1] != ':')
			return PE_INVAL;
		n = (size_t)(rb - s - 1);
		colon = rb + 1;
		s++;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return PE_INVAL;
		n = (size_t)(colon - s);
	}
	if (n >= sizeof ip)
		return PE_INVAL;
	memcpy(ip, s, n);
	ip[n] = '\0';
	return sip_hop_set(hop, proto, ip, atoi(colon + 1));
}

static void tick_start(struct sip_tp *tp);

static struct flow *flow_new(struct sip_tp *tp, struct net_conn *c, const struct sip_hop *peer,
			     bool outbound)
{
	struct flow *f = calloc(1, sizeof *f);
	if (!f)
		return NULL;
	f->tp = tp;
	f->c = c;
	f->id = net_conn_id(c);
	f->peer = *peer;
	f->peer.flow = f->id;
	f->outbound = outbound;
	f->last_rx = uv_now(tp->loop);
	buf_init(&f->in, tp->lim.max_header + tp->lim.max_body + 65536);
	f->klen = sip_hop_key(&f->peer, f->key);
	sip_map_insert(&tp->flows_by_addr, &f->by_addr, f->key, f->klen);
	sip_map_insert(&tp->flows_by_id, &f->by_id, &f->id, sizeof f->id);
	f->next = tp->flows;
	if (tp->flows)
		tp->flows->prev = f;
	tp->flows = f;
	tp->stats.flows_open++;
	struct net_conn_opts o = {.out_max = tp->cfg.out_max};
	net_conn_set_opts(c, &o);
	net_conn_set_cbs(c, &flow_cbs, f);
	tick_start(tp);
	return f;
}

/* Out of the maps at once (nothing new goes to a closing flow); freed in on_close. */
static void flow_detach(struct flow *f)
{
	struct sip_tp *tp = f->tp;
	if (f->closing)
		return;
	f->closing = true;
	sip_map_remove(&tp->flows_by_addr, &f->by_addr);
	sip_map_remove(&tp->flows_by_id, &f->by_id);
}

static void flow_close(struct flow *f, int reason, bool graceful)
{
	flow_detach(f);
	if (graceful)
		net_conn_close(f->c, reason);
	else
		net_conn_abort(f->c, reason);
}

static void flow_on_connect(struct net_conn *c)
{
	struct flow *f = net_conn_arg(c);
	log_debug(f->id, "sip_flow_connected", "peer=%s", net_conn_peer(c));
	if (f->peer.proto != SIP_PROTO_TLS)
		net_conn_set_timeout(c, 0);
}

static void flow_on_secure(struct net_conn *c)
{
	struct flow *f = net_conn_arg(c);
	struct tls_sess *s = net_conn_tls(c);
	net_conn_set_timeout(c, 0);
	if (!f->outbound || f->tp->cfg.tls_no_verify)
		return;
	if (tls_sess_verify_result(s) != X509_V_OK) {
		log_warn(f->id, "sip_tls_verify_failed", "peer=%s why=\"%s\"", net_conn_peer(c),
			 tls_sess_verify_error(s));
		flow_close(f, PE_VERIFY, false);
		return;
	}
	if (f->peer.tls_name[0] && !tls_sess_peer_matches_dns(s, f->peer.tls_name)) {
		log_warn(f->id, "sip_tls_name_mismatch", "peer=%s want=%s", net_conn_peer(c),
			 f->peer.tls_name);
		flow_close(f, PE_VERIFY, false);
		return;
	}
	log_info(f->id, "sip_tls_up", "peer=%s version=%s", net_conn_peer(c), tls_sess_version(s));
}

static void flow_on_close(struct net_conn *c, int reason)
{
	struct flow *f = net_conn_arg(c);
	struct sip_tp *tp = f->tp;
	flow_detach(f);
	if (f->prev)
		f->prev->next = f->next;
	else
		tp->flows = f->next;
	if (f->next)
		f->next->prev = f->prev;
	tp->stats.flows_open--;
	log_info(f->id, "sip_flow_closed", "peer=%s reason=\"%s\"", net_conn_peer(c),
		 reason ? pe_strerror(reason) : "closed");
	buf_deinit(&f->in);
	uint64_t id = f->id;
	free(f);
	if (tp->freeing) {
		if (tp->tick_closed && !tp->flows)
			free(tp);
		return;
	}
	if (tp->cbs.on_flow_closed)
		tp->cbs.on_flow_closed(tp->arg, id, reason);
}

static void flow_write(struct flow *f, const void *p, size_t n)
{
	if (!f->closing)
		net_conn_write(f->c, p, n);
}

/* A stateless 400 for input the transaction layer never saw, then close. */
static void flow_reject(struct flow *f, const uint8_t *head, size_t hlen, const char *why)
{
	struct sip_msg *m = NULL, *resp = NULL;
	struct buf out;
	char reason[96], tag[17];

	f->tp->stats.bad_input++;
	log_excerpt(f->id, "sip_bad_input", net_conn_peer(f->c), head, hlen, why);
	snprintf(reason, sizeof reason, "Bad Request (%s)", why);
	if (hlen && sip_msg_parse_head(head, hlen, &m) == 0 && sip_msg_is_request(m) &&
	    sip_msg_via_count(m) > 0 && strcmp(sip_msg_method(m), "ACK") != 0) {
		sip_random_token(tag, sizeof tag);
		resp = sip_msg_new_response(m, 400, reason, tag);
	} else if (!m || sip_msg_is_request(m)) {
		resp = sip_msg_new_bare_response(400, reason);
	}
	buf_init(&out, 0);
	if (resp && sip_msg_serialise(resp, &out) == 0)
		flow_write(f, buf_head(&out), buf_len(&out));
	buf_deinit(&out);
	sip_msg_free(resp);
	sip_msg_free(m);
	flow_close(f, PE_PROTO, true);
}

/* Frames and dispatches what p[0..n) holds; returns bytes consumed. Stops early when
 * the flow starts closing. */
static size_t flow_process(struct flow *f, const uint8_t *p, size_t n)
{
	struct sip_tp *tp = f->tp;
	size_t off = 0;
	struct sip_frame fr;

	while (!f->closing && off < n) {
		int r = sip_frame_scan(p + off, n - off, &tp->lim, &f->fs,
				       f->expect_pong ? SIP_FRAME_EXPECT_PONG : 0, &fr);
		if (r == PE_NEEDMORE)
			break;
		if (r < 0) {
			flow_reject(f, p + off, fr.header_len,
				    r == PE_TOOBIG ? "message too large" : "bad Content-Length");
			break;
		}
		sip_frame_reset(&f->fs);
		switch (fr.kind) {
		case SIP_FRAME_PING:
			tp->stats.pings_in++;
			flow_write(f, "\r\n", 2);
			break;
		case SIP_FRAME_PONG:
			tp->stats.pongs_in++;
			f->expect_pong = false;
			break;
		case SIP_FRAME_CRLF:
			break;
		case SIP_FRAME_MESSAGE: {
			struct sip_msg *m;
			tp->stats.stream_msgs_in++;
			if (sip_msg_parse_framed(p + off, fr.header_len, fr.len, &m) != 0) {
				flow_reject(f, p + off, fr.header_len, "unparseable");
				return off + fr.len;
			}
			if (tp->cbs.on_message(tp->arg, m, &f->peer) == PE_PROTO && !f->closing) {
				flow_reject(f, NULL, 0, "no usable Via");
				return off + fr.len;
			}
			break;
		}
		}
		off += (size_t)r;
	}
	return off;
}

static void flow_on_data(struct net_conn *c, const uint8_t *p, size_t n)
{
	struct flow *f = net_conn_arg(c);
	size_t used;
	if (f->closing)
		return;
	f->last_rx = uv_now(f->tp->loop);
	f->rx_since_tick = true;
	if (buf_len(&f->in) == 0) {
		/* the common case: frames straight from the read chunk, no copy */
		used = flow_process(f, p, n);
		if (used < n && !f->closing && buf_append(&f->in, p + used, n - used) != 0)
			flow_reject(f, NULL, 0, "input bound");
		return;
	}
	if (buf_append(&f->in, p, n) != 0) {
		flow_reject(f, NULL, 0, "input bound");
		return;
	}
	used = flow_process(f, buf_head(&f->in), buf_len(&f->in));
	if (!f->closing) {
		buf_consume(&f->in, used);
		buf_release_if_empty(&f->in);
	}
}

static void on_accept(void *arg, struct net_conn *c)
{
	struct tcp_listener *tl = arg;
	struct sip_tp *t = tl->tp;
	struct sip_hop peer;
	if (t->stats.flows_open >= t->cfg.max_flows ||
	    parse_peer(net_conn_peer(c), &peer, tl->proto) != 0) {
		log_warn(net_conn_id(c), "sip_flow_refused", "peer=%s open=%llu", net_conn_peer(c),
			 (unsigned long long)t->stats.flows_open);
		net_conn_abort(c, PE_FULL);
		return;
	}
	struct flow *f = flow_new(t, c, &peer, false);
	if (!f) {
		net_conn_abort(c, PE_NOMEM);
		return;
	}
	if (tl->proto == SIP_PROTO_TLS) {
		net_conn_set_timeout(c, t->cfg.connect_ms);
		if (net_conn_start_tls(c, t->cfg.tls_server, true, NULL) != 0)
			flow_close(f, PE_TLS, false);
	}
	log_info(f->id, "sip_flow_accepted", "peer=%s proto=%s", net_conn_peer(c),
		 sip_proto_name(tl->proto));
}

static struct flow *flow_connect(struct sip_tp *tp, const struct sip_hop *hop)
{
	char ip[64];
	int port;
	struct net_conn *c;
	struct flow *f;

	if (hop->proto == SIP_PROTO_TLS && !tp->cfg.tls_client)
		return NULL;
	if (tp->stats.flows_open >= tp->cfg.max_flows)
		return NULL;
	sip_hop_ip(hop, ip, sizeof ip, &port);
	c = net_connect(tp->loop, ip, (uint16_t)port, &flow_cbs, NULL);
	if (!c)
		return NULL;
	f = flow_new(tp, c, hop, true);
	if (!f) {
		net_conn_abort(c, PE_NOMEM);
		return NULL;
	}
	net_conn_set_timeout(c, tp->cfg.connect_ms);
	if (hop->proto == SIP_PROTO_TLS) {
		struct in6_addr tmp;
		const char *sni = hop->tls_name[0] &&
					  inet_pton(AF_INET, hop->tls_name, &tmp) != 1 &&
					  inet_pton(AF_INET6, hop->tls_name, &tmp) != 1
				      ? hop->tls_name
				      : NULL;
		if (net_conn_start_tls(c, tp->cfg.tls_client, false, sni) != 0) {
			flow_close(f, PE_TLS, false);
			return NULL;
		}
	}
	log_info(f->id, "sip_flow_connecting", "peer=%s proto=%s", net_conn_peer(c),
		 sip_proto_name(hop->proto));
	return f;
}

/* --- keep-alive sweep -------------------------------------------------------------- */

static void on_tick(uv_timer_t *t)
{
	struct sip_tp *tp = t->data;
	uint64_t now = uv_now(tp->loop);
	struct flow *f = tp->flows;
	while (f) {
		struct flow *next = f->next;
		if (f->closing) {
			f = next;
			continue;
		}
		if (f->outbound) {
			if (f->expect_pong) {
				tp->stats.keepalive_closed++;
				log_warn(f->id, "sip_keepalive_timeout", "peer=%s",
					 net_conn_peer(f->c));
				flow_close(f, PE_TIMEOUT, false);
			} else if (!f->rx_since_tick) {
				tp->stats.pings_out++;
				f->expect_pong = true;
				flow_write(f, "\r\n\r\n", 4);
			}
		} else if (now - f->last_rx >= tp->cfg.idle_ms) {
			log_info(f->id, "sip_flow_idle", "peer=%s", net_conn_peer(f->c));
			flow_close(f, PE_TIMEOUT, true);
		}
		f->rx_since_tick = false;
		f = next;
	}
	if (!tp->flows) {
		uv_timer_stop(&tp->tick);
		tp->tick_on = false;
	}
}

static void tick_start(struct sip_tp *tp)
{
	if (tp->tick_on)
		return;
	uint64_t iv =
	    tp->cfg.keepalive_ms < tp->cfg.idle_ms ? tp->cfg.keepalive_ms : tp->cfg.idle_ms;
	tp->tick_on = true;
	uv_timer_start(&tp->tick, on_tick, iv, iv);
	uv_unref((uv_handle_t *)&tp->tick); /* flows keep the loop alive, not the sweep */
}

/* --- UDP --------------------------------------------------------------------------- */

static void udp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct udp_sock *u = h->data;
	(void)suggested;
	if (u->tp->udp_buf_busy) {
		b->base = NULL;
		b->len = 0;
		return;
	}
	u->tp->udp_buf_busy = true;
	b->base = (char *)u->tp->udp_buf;
	b->len = UDP_MAX;
}

static void udp_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *b, const struct sockaddr *addr,
		     unsigned flags)
{
	struct udp_sock *u = h->data;
	struct sip_tp *tp = u->tp;
	struct sip_hop src;
	struct sip_msg *m;
	char ip[64], peer[80];
	int port;

	if (b->base == (char *)tp->udp_buf)
		tp->udp_buf_busy = false;
	if (nread <= 0 || !addr || (flags & UV_UDP_PARTIAL))
		return;
	memset(&src, 0, sizeof src);
	src.proto = SIP_PROTO_UDP;
	memcpy(&src.addr, addr,
	       addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
					   : sizeof(struct sockaddr_in));
	tp->stats.udp_in++;
	const uint8_t *p = (const uint8_t *)b->base;
	size_t n = (size_t)nread, i = 0;
	while (i < n && (p[i] == '\r' || p[i] == '\n'))
		i++;
	if (i == n)
		return; /* a keep-alive datagram */
	if (sip_msg_parse(p + i, n - i, &m) != 0) {
		tp->stats.bad_input++;
		sip_hop_ip(&src, ip, sizeof ip, &port);
		snprintf(peer, sizeof peer, "%s:%d", ip, port);
		log_excerpt(0, "sip_bad_datagram", peer, p, n, "unparseable");
		return;
	}
	if (tp->cbs.on_message(tp->arg, m, &src) == PE_PROTO) {
		tp->stats.bad_input++;
		sip_hop_ip(&src, ip, sizeof ip, &port);
		snprintf(peer, sizeof peer, "%s:%d", ip, port);
		log_excerpt(0, "sip_bad_datagram", peer, p, n, "no usable Via");
	}
}

static void on_udp_closed(uv_handle_t *h)
{
	free(h->data);
}

static int udp_listen(struct sip_tp *tp, const char *ip, int port)
{
	struct sockaddr_storage ss;
	struct sip_hop h;
	int r;
	if (sip_hop_set(&h, SIP_PROTO_UDP, ip, port ? port : 1) != 0)
		return PE_INVAL;
	sip_hop_set_port(&h, port);
	ss = h.addr;
	struct udp_sock *u = calloc(1, sizeof *u);
	if (!u)
		return PE_NOMEM;
	u->tp = tp;
	u->family = ss.ss_family;
	uv_udp_init(tp->loop, &u->h);
	u->h.data = u;
	r = uv_udp_bind(&u->h, (const struct sockaddr *)&ss, UV_UDP_REUSEADDR);
	if (r == 0) {
		int sz = 4 << 20;
		uv_recv_buffer_size((uv_handle_t *)&u->h, &sz);
		sz = 4 << 20;
		uv_send_buffer_size((uv_handle_t *)&u->h, &sz);
		r = uv_udp_recv_start(&u->h, udp_alloc, udp_recv);
	}
	if (r) {
		uv_close((uv_handle_t *)&u->h, on_udp_closed);
		return r;
	}
	struct sockaddr_storage bound;
	int blen = sizeof bound;
	uv_udp_getsockname(&u->h, (struct sockaddr *)&bound, &blen);
	u->next = tp->udp;
	tp->udp = u;
	h.addr = bound;
	return sip_hop_port(&h);
}

struct udp_send_req {
	uv_udp_send_t req;
	size_t n;
	char data[];
};

static void on_udp_sent(uv_udp_send_t *req, int status)
{
	(void)status;
	free(req);
}

static int udp_send(struct sip_tp *tp, const struct sip_hop *hop, const uint8_t *p, size_t n)
{
	struct udp_sock *u = tp->udp;
	while (u && u->family != hop->addr.ss_family)
		u = u->next;
	if (!u)
		return PE_STATE;
	uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
	int r = uv_udp_try_send(&u->h, &b, 1, (const struct sockaddr *)&hop->addr);
	tp->stats.udp_out++;
	if (r >= 0)
		return 0;
	if (r != UV_EAGAIN)
		return r;
	struct udp_send_req *q = malloc(sizeof *q + n);
	if (!q)
		return PE_NOMEM;
	memcpy(q->data, p, n);
	b = uv_buf_init(q->data, (unsigned)n);
	r = uv_udp_send(&q->req, &u->h, &b, 1, (const struct sockaddr *)&hop->addr, on_udp_sent);
	if (r)
		free(q);
	return r;
}

/* --- public ------------------------------------------------------------------------ */

struct sip_tp *sip_tp_new(uv_loop_t *loop, const struct sip_tp_cfg *cfg,
			  const struct sip_tp_cbs *cbs, void *arg)
{
	struct sip_tp *tp = calloc(1, sizeof *tp);
	if (!tp)
		return NULL;
	tp->loop = loop;
	tp->cfg = *cfg;
	tp->cbs = *cbs;
	tp->arg = arg;
	if (!tp->cfg.max_header)
		tp->cfg.max_header = 16 << 10;
	if (!tp->cfg.max_body)
		tp->cfg.max_body = 64 << 10;
	if (!tp->cfg.keepalive_ms)
		tp->cfg.keepalive_ms = 30000;
	if (!tp->cfg.idle_ms)
		tp->cfg.idle_ms = 300000;
	if (!tp->cfg.connect_ms)
		tp->cfg.connect_ms = 5000;
	if (!tp->cfg.max_flows)
		tp->cfg.max_flows = 1024;
	if (!tp->cfg.out_max)
		tp->cfg.out_max = 16 << 20;
	tp->lim.max_header = tp->cfg.max_header;
	tp->lim.max_body = tp->cfg.max_body;
	uv_timer_init(loop, &tp->tick);
	tp->tick.data = tp;
	sip_msg_global_init();
	return tp;
}

static void on_tick_closed(uv_handle_t *h)
{
	struct sip_tp *tp = h->data;
	tp->tick_closed = true;
	if (!tp->flows)
		free(tp);
}

void sip_tp_free(struct sip_tp *tp)
{
	if (!tp)
		return;
	while (tp->udp) {
		struct udp_sock *u = tp->udp;
		tp->udp = u->next;
		uv_udp_recv_stop(&u->h);
		uv_close((uv_handle_t *)&u->h, on_udp_closed);
	}
	while (tp->listeners) {
		struct tcp_listener *l = tp->listeners;
		tp->listeners = l->next;
		net_listener_close(l->l);
		free(l);
	}
	tp->freeing = true;
	for (struct flow *f = tp->flows; f; f = f->next)
		if (!f->closing)
			flow_close(f, PE_CLOSED, false);
	sip_map_deinit(&tp->flows_by_addr);
	sip_map_deinit(&tp->flows_by_id);
	uv_timer_stop(&tp->tick);
	/* flows free themselves in on_close; the transport goes after them */
	uv_close((uv_handle_t *)&tp->tick, on_tick_closed);
}

int sip_tp_listen(struct sip_tp *tp, enum sip_proto proto, const char *ip, int port)
{
	if (proto == SIP_PROTO_UDP)
		return udp_listen(tp, ip, port);
	if (proto == SIP_PROTO_TLS && !tp->cfg.tls_server)
		return PE_CONFIG;
	struct tcp_listener *tl = calloc(1, sizeof *tl);
	if (!tl)
		return PE_NOMEM;
	tl->proto = proto;
	tl->tp = tp;
	int r = net_listen(tp->loop, ip, (uint16_t)port, 512, on_accept, tl, &tl->l);
	if (r) {
		free(tl);
		return r;
	}
	tl->next = tp->listeners;
	tp->listeners = tl;
	return net_listener_port(tl->l);
}

int sip_tp_send(struct sip_tp *tp, const struct sip_hop *hop, const uint8_t *p, size_t n,
		uint64_t *flow)
{
	struct flow *f = NULL;
	struct sip_map_node *node;
	int r;

	*flow = 0;
	if (hop->proto == SIP_PROTO_UDP)
		return udp_send(tp, hop, p, n);
	if (hop->flow && (node = sip_map_find(&tp->flows_by_id, &hop->flow, sizeof hop->flow)))
		f = sip_map_entry(node, struct flow, by_id);
	if (!f) {
		uint8_t key[20];
		size_t kl = sip_hop_key(hop, key);
		node = sip_map_find(&tp->flows_by_addr, key, kl);
		if (node)
			f = sip_map_entry(node, struct flow, by_addr);
	}
	if (!f) {
		f = flow_connect(tp, hop);
		if (!f)
			return hop->proto == SIP_PROTO_TLS && !tp->cfg.tls_client ? PE_CONFIG
										  : PE_NOMEM;
	}
	r = net_conn_write(f->c, p, n);
	if (r)
		return r;
	*flow = f->id;
	return 0;
}

int sip_tp_close_flow(struct sip_tp *tp, uint64_t id)
{
	struct sip_map_node *node = sip_map_find(&tp->flows_by_id, &id, sizeof id);
	if (!node)
		return PE_NOTFOUND;
	flow_close(sip_map_entry(node, struct flow, by_id), 0, true);
	return 0;
}

const struct sip_tp_stats *sip_tp_stats(const struct sip_tp *tp)
{
	return &tp->stats;
}
