/* The metrics endpoint: GET /metrics over HTTP/1.1 in Prometheus text format (0.0.4), served by
 * libmicrohttpd from our libuv loop (its epoll fd watched by a uv_poll_t, its timeouts by a
 * uv_timer_t; no threads of its own). Anything else gets 404, other methods 405. */
#ifndef PARLEY_HTTPD_H
#define PARLEY_HTTPD_H

#include <stdint.h>
#include <uv.h>

struct metrics;
struct httpd;

/* Called before every render, on the loop thread: the place to copy counters kept by the
 * modules into the registry's gauges and counters. */
typedef void (*httpd_collect_fn)(void *arg);

/* Largest scrape served; a bigger one gets 500 (and a log line). */
#define HTTPD_MAX_BODY (8u << 20)

/* Listens on host (a numeric IPv4 or IPv6 address) and port (0 = any, see httpd_port).
 * m must outlive the server. collect may be NULL. Returns 0 and *out, or an error with a
 * reason in err. */
int httpd_start(uv_loop_t *loop, const char *host, uint16_t port, struct metrics *m,
		httpd_collect_fn collect, void *arg, struct httpd **out, char *err, size_t errlen);
/* The bound port. */
uint16_t httpd_port(const struct httpd *h);
/* Closes the listener and every connection; the handles close on the next loop turn. Safe
 * twice; NULL is a no-op. */
void httpd_stop(struct httpd *h);
/* After the loop ran the close callbacks (httpd_stop or daemon_close_all first). */
void httpd_free(struct httpd *h);

/* Runs collect then renders m into a malloc'd NUL-terminated text (*len without the NUL).
 * Returns 0 or an error (PE_TOOBIG beyond HTTPD_MAX_BODY, PE_NOMEM). Used by the HTTP side
 * and by the control command "metrics". */
int httpd_render(struct metrics *m, httpd_collect_fn collect, void *arg, char **text, size_t *len);

#endif
