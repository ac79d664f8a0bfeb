/* What both daemons set up for operators: the control socket (ctl), the metrics registry and
 * its HTTP endpoint (httpd), and the commands every daemon answers the same way. */
#ifndef PARLEY_OPS_H
#define PARLEY_OPS_H

#include "ctl.h"
#include "httpd.h"
#include "json.h"
#include "metrics.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Embeddable; zero it, then ops_init. */
struct ops {
	const char *prog;
	uv_loop_t *loop;
	struct ctl *ctl;	  /* always made by ops_init: modules register commands on it */
	struct metrics *m;	  /* always made by ops_init: modules register metrics on it */
	struct httpd *http;	  /* NULL unless listening */
	httpd_collect_fn collect; /* refreshes m before every render */
	void *arg;
	uint64_t started_ms;
};

/* Makes the command registry (with "help" and "metrics") and the metrics registry. collect
 * (may be NULL) runs before every scrape with arg. prog is kept (a string literal). */
void ops_init(struct ops *o, uv_loop_t *loop, const char *prog, httpd_collect_fn collect,
	      void *arg);
/* Opens what cc enables: the control socket and the metrics endpoint. A part that cannot be
 * opened is logged (event=ctl_listen_failed / metrics_listen_failed) and left off: the
 * daemon serves without it. Returns how many parts failed. */
int ops_listen(struct ops *o, const struct ctl_conf *cc);
/* Closes both (from a drain: safe inside a control handler). Safe twice. */
void ops_stop(struct ops *o);
/* After the loop closed every handle. */
void ops_free(struct ops *o);

/* Writes the members every status reply starts with: "daemon", "pid", "uptime_s". */
void ops_status_common(const struct ops *o, struct json *j);

/* Formats one label pair key="value" into dst (value escaped per the exposition format:
 * backslash, double quote, newline). Returns dst. */
char *ops_label(char *dst, size_t cap, const char *key, const char *value);

#endif
