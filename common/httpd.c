/* HTTP metrics endpoint on libmicrohttpd with an external event loop. MHD is started without
 * any thread flag, so it only works inside MHD_run, which we call when its epoll fd is
 * readable or its own timeout (connection timeouts, pending writes) expires. Everything thus
 * runs on the loop thread and the registry needs no locking. */
#include "httpd.h"

#include "buf.h"
#include "err.h"
#include "log.h"
#include "metrics.h"

#include <microhttpd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct httpd {
	uv_loop_t *loop;
	struct MHD_Daemon *d;
	struct metrics *m;
	httpd_collect_fn collect;
	void *arg;
	uv_poll_t poll;
	uv_timer_t timer;
	bool poll_on, timer_on;
	bool stopped;
	uint16_t port;
	uint64_t scrapes;
};

int httpd_render(struct metrics *m, httpd_collect_fn collect, void *arg, char **text, size_t *len)
{
	struct buf b;
	buf_init(&b, HTTPD_MAX_BODY);
	if (collect)
		collect(arg);
	int rc = metrics_render(m, &b);
	if (!rc)
		rc = buf_append(&b, "", 1);
	if (rc) {
		buf_deinit(&b);
		return rc;
	}
	*len = buf_len(&b) - 1;
	/* Hand over the buffer's storage: a compacted buf holds its text at data + off. */
	char *t = malloc(buf_len(&b));
	if (!t) {
		buf_deinit(&b);
		return PE_NOMEM;
	}
	memcpy(t, buf_head(&b), buf_len(&b));
	buf_deinit(&b);
	*text = t;
	return 0;
}

static enum MHD_Result httpd__reply(struct MHD_Connection *conn, unsigned status, const char *ctype,
				    char *body, size_t len, bool owned)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
	    len, body, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (!r) {
		if (owned)
			free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	enum MHD_Result ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result httpd__on_request(void *cls, struct MHD_Connection *conn, const char *url,
					 const char *method, const char *version,
					 const char *upload, size_t *upload_size, void **con_cls)
{
	struct httpd *h = cls;
	static char not_found[] = "not found: try /metrics\n";
	static char not_allowed[] = "method not allowed\n";
	static char too_big[] = "metrics unavailable\n";
	(void)version, (void)upload, (void)upload_size, (void)con_cls;

	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return httpd__reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", not_allowed,
				    sizeof not_allowed - 1, false);
	if (strcmp(url, "/metrics") != 0)
		return httpd__reply(conn, MHD_HTTP_NOT_FOUND, "text/plain", not_found,
				    sizeof not_found - 1, false);
	char *text;
	size_t len;
	int rc = httpd_render(h->m, h->collect, h->arg, &text, &len);
	if (rc) {
		log_error(0, "metrics_render", "err=\"%s\"", pe_strerror(rc));
		return httpd__reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain", too_big,
				    sizeof too_big - 1, false);
	}
	h->scrapes++;
	return httpd__reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text,
			    len, true);
}

__attribute__((format(printf, 2, 0))) static void httpd__log(void *cls, const char *fmt, va_list ap)
{
	char msg[512], esc[600];
	(void)cls;
	vsnprintf(msg, sizeof msg, fmt, ap);
	size_t n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		n--;
	log_warn(0, "httpd", "msg=\"%s\"", log_escape(esc, sizeof esc, msg, n));
}

static void httpd__on_timer(uv_timer_t *t);

/* After every MHD_run: MHD tells how soon it needs to run again even without I/O. */
static void httpd__rearm(struct httpd *h)
{
	MHD_UNSIGNED_LONG_LONG ms;
	if (h->stopped)
		return;
	if (MHD_get_timeout(h->d, &ms) == MHD_YES)
		uv_timer_start(&h->timer, httpd__on_timer, (uint64_t)ms, 0);
	else
		uv_timer_stop(&h->timer);
}

static void httpd__run(struct httpd *h)
{
	if (h->stopped)
		return;
	MHD_run(h->d);
	httpd__rearm(h);
}

static void httpd__on_poll(uv_poll_t *p, int status, int events)
{
	(void)status, (void)events;
	httpd__run(p->data);
}

static void httpd__on_timer(uv_timer_t *t)
{
	httpd__run(t->data);
}

int httpd_start(uv_loop_t *loop, const char *host, uint16_t port, struct metrics *m,
		httpd_collect_fn collect, void *arg, struct httpd **out, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
	memset(&ss, 0, sizeof ss);
	if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0) {
		if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0) {
			snprintf(err, errlen, "metrics address %s is not a numeric IP address",
				 host);
			return PE_CONFIG;
		}
		flags |= MHD_USE_IPv6;
	}
	struct httpd *h = calloc(1, sizeof *h);
	if (!h) {
		snprintf(err, errlen, "out of memory");
		return PE_NOMEM;
	}
	h->loop = loop;
	h->m = m;
	h->collect = collect;
	h->arg = arg;
	h->d = MHD_start_daemon(
	    flags, port, NULL, NULL, httpd__on_request, h, MHD_OPTION_EXTERNAL_LOGGER, httpd__log,
	    (void *)h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned)32, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768, MHD_OPTION_END);
	if (!h->d) {
		snprintf(err, errlen, "cannot listen on %s port %u (in use?)", host, port);
		free(h);
		return PE_CONFIG;
	}
	const union MHD_DaemonInfo *ei = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
	const union MHD_DaemonInfo *pi = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	h->port = pi ? pi->port : port;
	int rc = ei ? uv_poll_init(loop, &h->poll, ei->epoll_fd) : UV_EINVAL;
	if (rc) {
		snprintf(err, errlen, "cannot watch the HTTP server: %s", uv_strerror(rc));
		MHD_stop_daemon(h->d);
		free(h);
		return rc;
	}
	h->poll.data = h;
	h->poll_on = true;
	uv_timer_init(loop, &h->timer);
	h->timer.data = h;
	h->timer_on = true;
	uv_poll_start(&h->poll, UV_READABLE, httpd__on_poll);
	httpd__rearm(h);
	log_info(0, "metrics_listen", "addr=%s port=%u path=/metrics", host, h->port);
	*out = h;
	return 0;
}

uint16_t httpd_port(const struct httpd *h)
{
	return h->port;
}

void httpd_stop(struct httpd *h)
{
	if (!h || h->stopped)
		return;
	h->stopped = true;
	/* Closing the poll handle takes the epoll fd out of libuv's set at once, before MHD
	 * closes it. */
	if (!uv_is_closing((uv_handle_t *)&h->poll))
		uv_close((uv_handle_t *)&h->poll, NULL);
	if (!uv_is_closing((uv_handle_t *)&h->timer))
		uv_close((uv_handle_t *)&h->timer, NULL);
	MHD_stop_daemon(h->d);
	h->d = NULL;
}

void httpd_free(struct httpd *h)
{
	if (!h)
		return;
	if (h->d) /* never stopped: daemon_close_all closed our handles */
		MHD_stop_daemon(h->d);
	free(h);
}
