/* Operator endpoints shared by both daemons. Opening them is best effort on purpose: a
 * missing /run/parley or a port taken by another process must not stop the gateway from
 * carrying traffic, so the failure is an error in the log rather than an exit. */
#include "ops.h"

#include "err.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int ops__metrics_cmd(void *arg, const struct ctl_req *req, struct json *j, char *err,
			    size_t errlen)
{
	struct ops *o = arg;
	char *text;
	size_t len;
	(void)req;
	int rc = httpd_render(o->m, o->collect, o->arg, &text, &len);
	if (rc) {
		snprintf(err, errlen, "cannot render metrics: %s", pe_strerror(rc));
		return rc;
	}
	json_obj_begin(j);
	json_key(j, "text");
	json_strn(j, text, len);
	json_obj_end(j);
	free(text);
	return 0;
}

void ops_init(struct ops *o, uv_loop_t *loop, const char *prog, httpd_collect_fn collect, void *arg)
{
	memset(o, 0, sizeof *o);
	o->prog = prog;
	o->loop = loop;
	o->collect = collect;
	o->arg = arg;
	o->started_ms = uv_now(loop);
	o->ctl = ctl_new();
	o->m = metrics_new();
	ctl_register(o->ctl, "metrics", "the metrics scrape (Prometheus text)", ops__metrics_cmd,
		     o);
}

int ops_listen(struct ops *o, const struct ctl_conf *cc)
{
	char err[512];
	int failed = 0;
	if (cc->socket && cc->socket[0] &&
	    ctl_listen(o->ctl, o->loop, cc->socket, err, sizeof err) != 0) {
		char esc[600];
		log_error(0, "ctl_listen_failed", "path=%s err=\"%s\"", cc->socket,
			  log_escape(esc, sizeof esc, err, strlen(err)));
		failed++;
	}
	if (cc->metrics && cc->metrics[0]) {
		char host[64];
		uint16_t port;
		int rc = ctl_split_hostport(cc->metrics, host, sizeof host, &port);
		if (rc == 0)
			rc = httpd_start(o->loop, host, port, o->m, o->collect, o->arg, &o->http,
					 err, sizeof err);
		else
			snprintf(err, sizeof err, "not host:port");
		if (rc) {
			log_error(0, "metrics_listen_failed", "addr=%s err=\"%s\"", cc->metrics,
				  err);
			failed++;
		}
	}
	return failed;
}

void ops_stop(struct ops *o)
{
	ctl_stop(o->ctl);
	httpd_stop(o->http);
}

void ops_free(struct ops *o)
{
	ctl_free(o->ctl);
	httpd_free(o->http);
	metrics_free(o->m);
	o->ctl = NULL;
	o->http = NULL;
	o->m = NULL;
}

void ops_status_common(const struct ops *o, struct json *j)
{
	json_kv_str(j, "daemon", o->prog);
	json_kv_int(j, "pid", (int64_t)getpid());
	json_kv_uint(j, "uptime_s", (uv_now(o->loop) - o->started_ms) / 1000);
}

char *ops_label(char *dst, size_t cap, const char *key, const char *value)
{
	size_t n = 0;
	if (!cap)
		return dst;
	int w = snprintf(dst, cap, "%s=\"", key);
	if (w < 0 || (size_t)w >= cap)
		return dst;
	n = (size_t)w;
	for (const char *p = value; *p && n + 4 < cap; p++) {
		if (*p == '\\' || *p == '"') {
			dst[n++] = '\\';
			dst[n++] = *p;
		} else if (*p == '\n') {
			dst[n++] = '\\';
			dst[n++] = 'n';
		} else {
			dst[n++] = *p;
		}
	}
	if (n + 2 <= cap) {
		dst[n++] = '"';
		dst[n] = 0;
	} else {
		dst[cap - 1] = 0;
	}
	return dst;
}
