/* pres_pool: the SIP front-end pool for the presence benchmarks (run.py, section presence).
 * One libuv loop, TCP only, no SIP parser beyond the few headers it needs, so the gateway
 * is the side under test.
 *
 *   pres_pool --tcp IP:PORT [--gw IP:PORT] [--expires E] [--window W]
 *
 * As the presence server of bob<k>@corp.test (the gateway's SUBSCRIBE dialogs):
 *  - a new SUBSCRIBE for sip:bob<k>@corp.test is answered 200 (To tag, Contact, Expires: E),
 *    then a NOTIFY "active" with an open PIDF follows at once in the new dialog, on the
 *    connection the SUBSCRIBE came on;
 *  - an in-dialog SUBSCRIBE (a refresh, or an unsubscribe with Expires: 0) is answered 200
 *    with Expires: E (0 for an unsubscribe) and counted, whether the dialog was made here or
 *    loaded by the gateway from its store;
 *  - "notify M": M NOTIFYs with PIDF bodies round-robin over the dialogs made here, at most
 *    one in flight per dialog and W in all.
 * As N SIP watchers bob<k>@corp.test of u<k>@partner.test ("watch N"): SUBSCRIBEs sent to
 * the gateway at --gw (W in flight), the gateway's NOTIFYs answered 200 and counted by
 * Subscription-State.
 *
 * Commands on stdin, one a line; each answer is one line on stdout:
 *   notify M | watch N | reset | stats | wait COUNTER K IDLE_MS | quit
 * "wait" answers once COUNTER has counted K since the last reset, or when it has not moved
 * for IDLE_MS: "COUNTER n=.. first_to_last_us=.. rate=.. complete=0|1" (rate over the time
 * from the first to the last event counted; first_ns and last_ns are those events' CLOCK_MONOTONIC
 * times). Counters: subs (new dialogs answered), refresh
 * (in-dialog SUBSCRIBEs), unsub, notify_ok / notify_fail (answers to our NOTIFYs), watch_ok /
 * watch_fail (answers to our SUBSCRIBEs), n_active / n_pending / n_terminated (the gateway's
 * NOTIFYs by state). Prints "ready" once listening. */
#include "buf.h"
#include "err.h"
#include "log.h"
#include "net.h"
#include "sip_frame.h"

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <uv.h>

static uv_loop_t *loop;
static const struct sip_frame_limits lim = {.max_header = 16384, .max_body = 65536};
static char my_ip[64];
static int my_port;
static char gw_ip[64];
static int gw_port;
static unsigned expires_s = 3600;
static unsigned window = 256;
static struct net_listener *listener;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- counters ---- */

enum {
	C_SUBS,
	C_REFRESH,
	C_UNSUB,
	C_NOTIFY_OK,
	C_NOTIFY_FAIL,
	C_WATCH_OK,
	C_WATCH_FAIL,
	C_N_ACTIVE,
	C_N_PENDING,
	C_N_TERMINATED,
	C_MAX
};
static const char *const cnames[C_MAX] = {"subs",	 "refresh",	"unsub",      "notify_ok",
					  "notify_fail", "watch_ok",	"watch_fail", "n_active",
					  "n_pending",	 "n_terminated"};
static struct {
	uint64_t n, first, last;
} cnt[C_MAX];

static void count(int c)
{
	uint64_t t = now_ns();
	if (cnt[c].n++ == 0)
		cnt[c].first = t;
	cnt[c].last = t;
}

static void report(int c, bool complete)
{
	double us = (double)(cnt[c].last - cnt[c].first) / 1e3;
	printf("%s n=%llu first_to_last_us=%.0f rate=%.0f complete=%d first_ns=%llu "
	       "last_ns=%llu\n",
	       cnames[c], (unsigned long long)cnt[c].n, us,
	       us > 0 ? (double)(cnt[c].n - 1) * 1e6 / us : 0.0, complete,
	       (unsigned long long)cnt[c].first, (unsigned long long)cnt[c].last);
	fflush(stdout);
}

/* ---- dialogs ---- */

/* One SUBSCRIBE dialog of the gateway toward bob<k> (we are the notifier). */
struct dlg {
	char *call_id, *gw_tag, *gw_from, *gw_contact;
	struct net_conn *conn;
	uint32_t cseq;
	bool busy; /* a NOTIFY in flight */
	bool live;
};
static struct dlg *dlgs;
static size_t ndlg, capdlg;
static size_t *live_idx; /* indexes of live dialogs, in the order they were made */
static size_t nlive;

static uint64_t notify_todo, notify_sent, notify_seq;
static size_t notify_cursor;
static unsigned inflight;

static uint64_t watch_todo, watch_sent;
static unsigned watch_inflight;
static struct net_conn *gw_conn;

static void pump(void);

/* ---- minimal header access ---- */

/* The value of header name (or its compact form c, 0 for none) in the header block
 * p[0..n): *vn bytes at the return value, NULL if absent. */
static const char *hdr(const char *p, size_t n, const char *name, char c, size_t *vn)
{
	const char *end = p + n, *line = memchr(p, '\n', n);
	size_t nl = strlen(name);
	if (!line)
		return NULL;
	for (line++; line < end && *line != '\r' && *line != '\n';) {
		const char *eol = memchr(line, '\n', (size_t)(end - line));
		if (!eol)
			return NULL;
		const char *colon = memchr(line, ':', (size_t)(eol - line));
		if (colon) {
			size_t k = (size_t)(colon - line);
			while (k && (line[k - 1] == ' ' || line[k - 1] == '\t'))
				k--;
			if ((k == nl && strncasecmp(line, name, nl) == 0) ||
			    (c && k == 1 && (line[0] | 0x20) == c)) {
				const char *v = colon + 1;
				while (v < eol && (*v == ' ' || *v == '\t'))
					v++;
				const char *ve = eol;
				while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
					ve--;
				*vn = (size_t)(ve - v);
				return v;
			}
		}
		line = eol + 1;
	}
	return NULL;
}

/* A parameter's value (";name=value") inside v[0..vn), copied into out. */
static bool param(const char *v, size_t vn, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name);
	for (const char *s = v; s < v + vn; s++) {
		if (*s != ';' || (size_t)(v + vn - s) < nl + 2 ||
		    strncasecmp(s + 1, name, nl) != 0 || s[1 + nl] != '=')
			continue;
		const char *a = s + 2 + nl, *b = a;
		while (b < v + vn && *b != ';' && *b != '>' && *b != ' ' && *b != ',')
			b++;
		if ((size_t)(b - a) >= cap)
			return false;
		memcpy(out, a, (size_t)(b - a));
		out[b - a] = 0;
		return true;
	}
	return false;
}

/* The URI of a name-addr or addr-spec value, copied into out. */
static bool uri_of(const char *v, size_t vn, char *out, size_t cap)
{
	const char *a = memchr(v, '<', vn), *b;
	if (a) {
		a++;
		b = memchr(a, '>', (size_t)(v + vn - a));
		if (!b)
			return false;
	} else {
		a = v;
		b = memchr(v, ';', vn);
		if (!b)
			b = v + vn;
	}
	if ((size_t)(b - a) >= cap)
		return false;
	memcpy(out, a, (size_t)(b - a));
	out[b - a] = 0;
	return true;
}

static char *dupn(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (!d)
		abort();
	memcpy(d, s, n);
	d[n] = 0;
	return d;
}

/* k of "sip:bob<k>@" at the start of the URI in v (after an optional '<'); -1 if not. */
static long user_index(const char *v, size_t vn, const char *prefix)
{
	size_t pl = strlen(prefix);
	while (vn && (*v == '<' || *v == '"' || *v == ' ')) {
		v++;
		vn--;
	}
	if (vn <= pl || strncmp(v, prefix, pl) != 0)
		return -1;
	long k = 0;
	size_t i = pl;
	if (v[i] < '0' || v[i] > '9')
		return -1;
	for (; i < vn && v[i] >= '0' && v[i] <= '9'; i++)
		k = k * 10 + (v[i] - '0');
	return i < vn && v[i] == '@' ? k : -1;
}

/* ---- answering ---- */

/* The response to the request in p[0..n): Via, From, To (with our tag if it has none),
 * Call-ID and CSeq copied, then extra (whole header lines) and Content-Length: 0. */
static size_t respond(const char *p, size_t n, int status, const char *totag, const char *extra,
		      char *out, size_t cap)
{
	const char *end = p + n, *line;
	size_t o =
	    (size_t)snprintf(out, cap, "SIP/2.0 %d %s\r\n", status, status == 200 ? "OK" : "Error");
	line = memchr(p, '\n', n);
	if (!line)
		return 0;
	for (line++; line < end && *line != '\r' && *line != '\n';) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		if (!nl)
			break;
		size_t len = (size_t)(nl + 1 - line);
		const char *colon = memchr(line, ':', len);
		size_t k = colon ? (size_t)(colon - line) : 0;
		while (k && (line[k - 1] == ' ' || line[k - 1] == '\t'))
			k--;
#define IS(name, c)                                                                                \
	((k == sizeof(name) - 1 && strncasecmp(line, name, k) == 0) ||                             \
	 (k == 1 && (line[0] | 0x20) == c))
		bool to = IS("To", 't');
		if (IS("Via", 'v') || IS("From", 'f') || to || IS("Call-ID", 'i') ||
		    (k == 4 && strncasecmp(line, "CSeq", 4) == 0)) {
			if (o + len + 64 >= cap)
				return 0;
			memcpy(out + o, line, len);
			o += len;
			if (to && totag && !memmem(line, len, "tag=", 4)) {
				o -= 2;
				o += (size_t)snprintf(out + o, cap - o, ";tag=%s\r\n", totag);
			}
		}
#undef IS
		line = nl + 1;
	}
	o += (size_t)snprintf(out + o, cap - o, "%sContent-Length: 0\r\n\r\n", extra ? extra : "");
	return o < cap ? o : 0;
}

static const char *const activities[] = {"away", "busy", "on-the-phone", NULL};

static void send_notify(struct dlg *d, size_t k, bool first)
{
	char body[1024], msg[4096];
	uint64_t seq = ++notify_seq;
	const char *act = activities[seq % 4];
	int bl = snprintf(body, sizeof body,
			  "<?xml version='1.0' encoding='UTF-8'?>\n"
			  "<presence xmlns='urn:ietf:params:xml:ns:pidf' "
			  "xmlns:dm='urn:ietf:params:xml:ns:pidf:data-model' "
			  "xmlns:rpid='urn:ietf:params:xml:ns:pidf:rpid' "
			  "entity='sip:bob%zu@corp.test'>"
			  "<tuple id='t1'><status><basic>open</basic></status>"
			  "<note xml:lang='en'>note %llu</note></tuple>"
			  "%s%s%s</presence>",
			  k, (unsigned long long)seq,
			  act ? "<dm:person id='p1'><rpid:activities><rpid:" : "", act ? act : "",
			  act ? "/></rpid:activities></dm:person>" : "");
	int ml =
	    snprintf(msg, sizeof msg,
		     "NOTIFY %s SIP/2.0\r\n"
		     "Via: SIP/2.0/TCP %s:%d;branch=z9hG4bKn%zux%u\r\n"
		     "Max-Forwards: 70\r\n"
		     "From: <sip:bob%zu@corp.test>;tag=p%zu\r\n"
		     "To: <%s>;tag=%s\r\n"
		     "Call-ID: %s\r\n"
		     "CSeq: %u NOTIFY\r\n"
		     "Contact: <sip:bob%zu@%s:%d;transport=tcp>\r\n"
		     "Event: presence\r\n"
		     "Subscription-State: active;expires=%u\r\n"
		     "Content-Type: application/pidf+xml\r\n"
		     "Content-Length: %d\r\n\r\n%s",
		     d->gw_contact, my_ip, my_port, k, d->cseq + 1, k, k, d->gw_from, d->gw_tag,
		     d->call_id, d->cseq + 1, k, my_ip, my_port, expires_s, bl, body);
	d->cseq++;
	d->busy = true;
	inflight++;
	if (!first)
		notify_sent++;
	net_conn_write(d->conn, msg, (size_t)ml);
}

/* A new SUBSCRIBE from the gateway: a dialog for bob<k>, 200, then NOTIFY active. */
static void on_new_subscribe(struct net_conn *c, const char *p, size_t n, size_t hl)
{
	char out[4096], tag[128] = "", from[512], contact[512], extra[256];
	size_t vn;
	const char *to = hdr(p, hl, "To", 't', &vn);
	long k = to ? user_index(to, vn, "sip:bob") : -1;
	const char *fv = hdr(p, hl, "From", 'f', &vn);
	size_t fvn = vn;
	const char *cv = hdr(p, hl, "Contact", 'm', &vn);
	size_t cvn = vn;
	const char *iv = hdr(p, hl, "Call-ID", 'i', &vn);
	if (k < 0 || !fv || !cv || !iv || !param(fv, fvn, "tag", tag, sizeof tag) ||
	    !uri_of(fv, fvn, from, sizeof from) || !uri_of(cv, cvn, contact, sizeof contact)) {
		size_t rl = respond(p, n, 400, "x", NULL, out, sizeof out);
		if (rl)
			net_conn_write(c, out, rl);
		return;
	}
	if ((size_t)k >= capdlg) {
		size_t nc = capdlg ? capdlg : 1024;
		while (nc <= (size_t)k)
			nc *= 2;
		dlgs = realloc(dlgs, nc * sizeof *dlgs);
		live_idx = realloc(live_idx, nc * sizeof *live_idx);
		if (!dlgs || !live_idx)
			abort();
		memset(dlgs + capdlg, 0, (nc - capdlg) * sizeof *dlgs);
		capdlg = nc;
	}
	if ((size_t)k >= ndlg)
		ndlg = (size_t)k + 1;
	struct dlg *d = &dlgs[k];
	if (d->live) {
		free(d->call_id);
		free(d->gw_tag);
		free(d->gw_from);
		free(d->gw_contact);
	} else {
		live_idx[nlive++] = (size_t)k;
	}
	d->call_id = dupn(iv, vn);
	d->gw_tag = dupn(tag, strlen(tag));
	d->gw_from = dupn(from, strlen(from));
	d->gw_contact = dupn(contact, strlen(contact));
	d->conn = c;
	d->cseq = 0;
	d->live = true;
	char mytag[32];
	snprintf(mytag, sizeof mytag, "p%ld", k);
	snprintf(extra, sizeof extra,
		 "Contact: <sip:bob%ld@%s:%d;transport=tcp>\r\nExpires: %u\r\n", k, my_ip, my_port,
		 expires_s);
	size_t rl = respond(p, n, 200, mytag, extra, out, sizeof out);
	if (rl)
		net_conn_write(c, out, rl);
	count(C_SUBS);
	if (!d->busy)
		send_notify(d, (size_t)k, true);
}

static void on_request(struct net_conn *c, const char *p, size_t n, size_t hl)
{
	char out[4096], extra[128];
	size_t vn;
	if (n > 10 && memcmp(p, "SUBSCRIBE ", 10) == 0) {
		const char *to = hdr(p, hl, "To", 't', &vn);
		if (!to || !memmem(to, vn, "tag=", 4)) {
			on_new_subscribe(c, p, n, hl);
			return;
		}
		const char *ev = hdr(p, hl, "Expires", 0, &vn);
		bool unsub = ev && vn == 1 && ev[0] == '0';
		snprintf(extra, sizeof extra, "Expires: %u\r\n", unsub ? 0 : expires_s);
		size_t rl = respond(p, n, 200, NULL, extra, out, sizeof out);
		if (rl)
			net_conn_write(c, out, rl);
		count(unsub ? C_UNSUB : C_REFRESH);
		return;
	}
	if (n > 7 && memcmp(p, "NOTIFY ", 7) == 0) {
		const char *ss = hdr(p, hl, "Subscription-State", 0, &vn);
		size_t rl = respond(p, n, 200, NULL, NULL, out, sizeof out);
		if (rl)
			net_conn_write(c, out, rl);
		if (ss && vn >= 6 && strncasecmp(ss, "active", 6) == 0)
			count(C_N_ACTIVE);
		else if (ss && vn >= 7 && strncasecmp(ss, "pending", 7) == 0)
			count(C_N_PENDING);
		else
			count(C_N_TERMINATED);
		return;
	}
	if (n > 4 && memcmp(p, "ACK ", 4) == 0)
		return;
	size_t rl = respond(p, n, 200, "x", NULL, out, sizeof out); /* OPTIONS and the rest */
	if (rl)
		net_conn_write(c, out, rl);
}

/* A response: to our NOTIFY (branch z9hG4bKn<k>x..) or our SUBSCRIBE (z9hG4bKw<k>). */
static void on_response(const char *p, size_t n, size_t hl)
{
	size_t vn;
	int status = n > 12 ? atoi(p + 8) : 0;
	const char *via = hdr(p, hl, "Via", 'v', &vn);
	const char *b = via ? memmem(via, vn, "branch=z9hG4bK", 14) : NULL;
	if (!b || b + 15 >= via + vn)
		return;
	char kind = b[14];
	size_t k = strtoul(b + 15, NULL, 10);
	if (status < 200)
		return;
	if (kind == 'n' && k < ndlg && dlgs[k].busy) {
		dlgs[k].busy = false;
		inflight--;
		count(status < 300 ? C_NOTIFY_OK : C_NOTIFY_FAIL);
	} else if (kind == 'w') {
		watch_inflight--;
		count(status < 300 ? C_WATCH_OK : C_WATCH_FAIL);
	}
	pump();
}

/* ---- streams ---- */

struct conn {
	struct buf in;
	struct sip_frame_state fs;
};

static size_t process(struct net_conn *c, struct conn *k, const uint8_t *p, size_t n)
{
	size_t off = 0;
	struct sip_frame f;
	while (off < n) {
		int r = sip_frame_scan(p + off, n - off, &lim, &k->fs, 0, &f);
		if (r == PE_NEEDMORE)
			break;
		if (r < 0) {
			net_conn_abort(c, r);
			return n;
		}
		sip_frame_reset(&k->fs);
		if (f.kind == SIP_FRAME_PING)
			net_conn_write(c, "\r\n", 2);
		if (f.kind == SIP_FRAME_MESSAGE) {
			const char *m = (const char *)p + off;
			if (f.len > 4 && memcmp(m, "SIP/", 4) == 0)
				on_response(m, f.len, f.header_len);
			else
				on_request(c, m, f.len, f.header_len);
		}
		off += (size_t)r;
	}
	return off;
}

static void on_data(struct net_conn *c, const uint8_t *p, size_t n)
{
	struct conn *k = net_conn_arg(c);
	if (buf_len(&k->in) == 0) {
		size_t used = process(c, k, p, n);
		if (used < n)
			buf_append(&k->in, p + used, n - used);
		return;
	}
	buf_append(&k->in, p, n);
	size_t used = process(c, k, buf_head(&k->in), buf_len(&k->in));
	buf_consume(&k->in, used);
}

static void on_close(struct net_conn *c, int reason)
{
	struct conn *k = net_conn_arg(c);
	if (reason && reason != UV_EOF)
		fprintf(stderr, "pres_pool: connection %s closed: %s\n", net_conn_peer(c),
			pe_strerror(reason));
	for (size_t i = 0; i < ndlg; i++)
		if (dlgs[i].conn == c) {
			dlgs[i].conn = NULL;
			dlgs[i].live = false;
		}
	if (c == gw_conn)
		gw_conn = NULL;
	buf_deinit(&k->in);
	free(k);
}

static const struct net_conn_cbs cbs = {.on_data = on_data, .on_close = on_close};

static struct conn *conn_new(void)
{
	struct conn *k = calloc(1, sizeof *k);
	if (!k)
		abort();
	buf_init(&k->in, 1 << 20);
	return k;
}

static void on_accept(void *arg, struct net_conn *c)
{
	(void)arg;
	struct net_conn_opts o = {.out_high = 64u << 20, .out_low = 1u << 20};
	net_conn_set_cbs(c, &cbs, conn_new());
	net_conn_set_opts(c, &o);
}

/* ---- sending ---- */

static void send_subscribe(uint64_t k)
{
	char msg[2048];
	int ml = snprintf(msg, sizeof msg,
			  "SUBSCRIBE sip:u%llu@partner.test SIP/2.0\r\n"
			  "Via: SIP/2.0/TCP %s:%d;branch=z9hG4bKw%llu\r\n"
			  "Max-Forwards: 70\r\n"
			  "From: <sip:bob%llu@corp.test>;tag=w%llu\r\n"
			  "To: <sip:u%llu@partner.test>\r\n"
			  "Call-ID: w%llu@pres_pool\r\n"
			  "CSeq: 1 SUBSCRIBE\r\n"
			  "Contact: <sip:bob%llu@%s:%d;transport=tcp>\r\n"
			  "Event: presence\r\n"
			  "Accept: application/pidf+xml\r\n"
			  "Expires: %u\r\n"
			  "Content-Length: 0\r\n\r\n",
			  (unsigned long long)k, my_ip, my_port, (unsigned long long)k,
			  (unsigned long long)k, (unsigned long long)k, (unsigned long long)k,
			  (unsigned long long)k, (unsigned long long)k, my_ip, my_port, expires_s);
	watch_inflight++;
	watch_sent++;
	net_conn_write(gw_conn, msg, (size_t)ml);
}

static void pump(void)
{
	/* our NOTIFYs: round-robin over the live dialogs, one in flight each, window in all */
	size_t skipped = 0;
	while (notify_sent < notify_todo && inflight < window && nlive && skipped < nlive) {
		size_t k = live_idx[notify_cursor++ % nlive];
		struct dlg *d = &dlgs[k];
		if (!d->live || d->busy || !d->conn) {
			skipped++;
			continue;
		}
		skipped = 0;
		send_notify(d, k, false);
	}
	while (gw_conn && watch_sent < watch_todo && watch_inflight < window)
		send_subscribe(watch_sent);
}

static void on_gw_connect(struct net_conn *c)
{
	(void)c;
	pump();
}

static const struct net_conn_cbs gw_cbs = {
    .on_connect = on_gw_connect, .on_data = on_data, .on_close = on_close};

/* ---- commands ---- */

static struct {
	int c;
	uint64_t target, idle_ms, seen, since;
	bool on;
} wait_for;
static uv_timer_t wait_timer;
static uv_pipe_t in_pipe;
static uv_signal_t sig_term;
static char line[256];
static size_t nline;

static void on_wait_timer(uv_timer_t *t)
{
	(void)t;
	if (!wait_for.on)
		return;
	uint64_t now = uv_now(loop);
	uint64_t n = cnt[wait_for.c].n;
	if (n >= wait_for.target) {
		wait_for.on = false;
		report(wait_for.c, true);
		return;
	}
	if (n != wait_for.seen) {
		wait_for.seen = n;
		wait_for.since = now;
	} else if (now - wait_for.since >= wait_for.idle_ms) {
		wait_for.on = false;
		report(wait_for.c, false);
	}
}

static void stop_all(void)
{
	if (listener)
		net_listener_close(listener);
	listener = NULL;
	uv_close((uv_handle_t *)&wait_timer, NULL);
	uv_close((uv_handle_t *)&sig_term, NULL);
	if (!uv_is_closing((uv_handle_t *)&in_pipe))
		uv_close((uv_handle_t *)&in_pipe, NULL);
	uv_stop(loop);
}

static void command(char *s)
{
	char name[32];
	unsigned long long a = 0, b = 0;
	if (sscanf(s, "notify %llu", &a) == 1) {
		notify_todo += a;
		pump();
	} else if (sscanf(s, "watch %llu", &a) == 1) {
		watch_todo = a;
		watch_sent = 0;
		if (!gw_conn && gw_port) {
			gw_conn = net_connect(loop, gw_ip, (uint16_t)gw_port, &gw_cbs, conn_new());
			if (gw_conn) {
				struct net_conn_opts o = {.out_high = 64u << 20,
							  .out_low = 1u << 20};
				net_conn_set_opts(gw_conn, &o);
			}
		} else {
			pump();
		}
	} else if (strcmp(s, "reset") == 0) {
		memset(cnt, 0, sizeof cnt);
		printf("reset\n");
		fflush(stdout);
	} else if (strcmp(s, "stats") == 0) {
		printf("stats dialogs=%zu inflight=%u notify_sent=%llu", nlive, inflight,
		       (unsigned long long)notify_sent);
		for (int i = 0; i < C_MAX; i++)
			printf(" %s=%llu", cnames[i], (unsigned long long)cnt[i].n);
		printf("\n");
		fflush(stdout);
	} else if (sscanf(s, "wait %31s %llu %llu", name, &a, &b) == 3) {
		for (int i = 0; i < C_MAX; i++)
			if (strcmp(cnames[i], name) == 0) {
				wait_for.c = i;
				wait_for.target = a;
				wait_for.idle_ms = b;
				wait_for.seen = cnt[i].n;
				wait_for.since = uv_now(loop);
				wait_for.on = true;
				on_wait_timer(&wait_timer);
				return;
			}
		printf("error unknown counter %s\n", name);
		fflush(stdout);
	} else if (strcmp(s, "quit") == 0) {
		stop_all();
	} else {
		printf("error unknown command\n");
		fflush(stdout);
	}
}

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
	static char rb[4096];
	(void)h;
	(void)sz;
	b->base = rb;
	b->len = sizeof rb;
}

static void on_stdin(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	(void)s;
	if (n < 0) {
		stop_all(); /* the driver went away */
		return;
	}
	for (ssize_t i = 0; i < n; i++) {
		char ch = b->base[i];
		if (ch == '\n') {
			line[nline] = 0;
			command(line);
			nline = 0;
		} else if (nline < sizeof line - 1) {
			line[nline++] = ch;
		}
	}
}

static void on_signal(uv_signal_t *s, int signum)
{
	(void)s;
	(void)signum;
	stop_all();
}

static int split(const char *s, char *ip, size_t cap, int *port)
{
	const char *c = strrchr(s, ':');
	if (!c || (size_t)(c - s) >= cap)
		return -1;
	memcpy(ip, s, (size_t)(c - s));
	ip[c - s] = '\0';
	*port = atoi(c + 1);
	return *port > 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	const char *tcp_a = NULL, *gw_a = NULL;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--tcp") == 0)
			tcp_a = argv[i + 1];
		else if (strcmp(argv[i], "--gw") == 0)
			gw_a = argv[i + 1];
		else if (strcmp(argv[i], "--expires") == 0)
			expires_s = (unsigned)atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--window") == 0)
			window = (unsigned)atoi(argv[i + 1]);
		else {
			fprintf(stderr, "unknown option %s\n", argv[i]);
			return 2;
		}
	}
	if (!tcp_a || split(tcp_a, my_ip, sizeof my_ip, &my_port) ||
	    (gw_a && split(gw_a, gw_ip, sizeof gw_ip, &gw_port)) || window == 0) {
		fprintf(
		    stderr,
		    "usage: pres_pool --tcp IP:PORT [--gw IP:PORT] [--expires E] [--window W]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	log_init("pres_pool", LL_WARN);
	loop = uv_default_loop();
	if (net_listen(loop, my_ip, (uint16_t)my_port, 512, on_accept, NULL, &listener)) {
		fprintf(stderr, "cannot listen on %s\n", tcp_a);
		return 1;
	}
	uv_timer_init(loop, &wait_timer);
	uv_timer_start(&wait_timer, on_wait_timer, 20, 20);
	uv_signal_init(loop, &sig_term);
	uv_signal_start(&sig_term, on_signal, SIGTERM);
	uv_pipe_init(loop, &in_pipe, 0);
	uv_pipe_open(&in_pipe, 0);
	uv_read_start((uv_stream_t *)&in_pipe, on_alloc, on_stdin);
	printf("ready\n");
	fflush(stdout);
	uv_run(loop, UV_RUN_DEFAULT);
	return 0;
}
