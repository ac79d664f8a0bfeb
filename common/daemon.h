/* What both daemons' main() share: arguments, config loading, the loop's lifecycle. */
#ifndef PARLEY_DAEMON_H
#define PARLEY_DAEMON_H

#include "conf.h"

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

struct daemon_args {
	const char *config;   /* -c FILE */
	bool check_config;    /* --check-config: validate and exit */
	bool help_config;     /* --help-config: print the settings table and exit */
};

/* Parses argv. Returns 0, or prints usage to stderr and returns PE_INVAL. */
int daemon_parse_args(int argc, char **argv, const char *prog, struct daemon_args *a);

/* Loads the config (with its named sections, if any) and reports errors on stderr as
 * "prog: FILE:LINE: message". Returns 0 or PE_CONFIG. */
int daemon_load(const char *prog, const struct conf_option *table, size_t n,
		const struct conf_multi *multi, size_t nmulti, void *cfg, const char *path);

struct sig;

/* A graceful stop in progress. Embed it zeroed. */
struct daemon_stop {
	uv_timer_t timer;
	bool stopping;
};

/* Called on SIGTERM/SIGINT. The first call logs, lets the loop end once every handle is
 * closed (the signal handlers stay installed but stop holding the loop) and arms a drain
 * deadline after which the process exits with 1; the caller then closes its listeners and
 * connections. A second call means the operator insists: the process exits at once with 1
 * (so this returns only the first time). */
void daemon_begin_stop(struct daemon_stop *ds, uv_loop_t *loop, struct sig *sig,
		       uint64_t deadline_ms);

/* Closes every handle still open on loop and runs it until they are gone. */
void daemon_close_all(uv_loop_t *loop);

/* Peak resident set size in KiB (VmHWM), or 0. */
long daemon_peak_rss_kib(void);

#endif
