/* Daemon boilerplate kept out of the two main.c files so they hold only what differs. */
#include "daemon.h"

#include "err.h"
#include "log.h"
#include "sig.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

int daemon_parse_args(int argc, char **argv, const char *prog, struct daemon_args *a)
{
	memset(a, 0, sizeof *a);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			a->config = argv[++i];
		} else if (strcmp(argv[i], "--check-config") == 0) {
			a->check_config = true;
		} else if (strcmp(argv[i], "--help-config") == 0) {
			a->help_config = true;
		} else {
			fprintf(stderr,
				"usage: %s -c FILE [--check-config]\n"
				"       %s --help-config\n",
				prog, prog);
			return PE_INVAL;
		}
	}
	if (!a->config && !a->help_config) {
		fprintf(stderr, "%s: -c FILE is required\n", prog);
		return PE_INVAL;
	}
	return 0;
}

int daemon_load(const char *prog, const struct conf_option *table, size_t n,
		const struct conf_multi *multi, size_t nmulti, void *cfg, const char *path)
{
	char err[1024];
	if (conf_load_ex(table, n, multi, nmulti, cfg, path, err, sizeof err) != 0) {
		fprintf(stderr, "%s: %s\n", prog, err);
		return PE_CONFIG;
	}
	return 0;
}

/* What is still open at the deadline is abandoned on purpose. */
static void on_stop_deadline(uv_timer_t *t)
{
	(void)t;
	log_warn(0, "shutdown_forced", "reason=\"drain deadline passed\"");
	_exit(1);
}

void daemon_begin_stop(struct daemon_stop *ds, uv_loop_t *loop, struct sig *sig,
		       uint64_t deadline_ms)
{
	if (ds->stopping) {
		log_warn(0, "shutdown_forced", "reason=\"second signal\"");
		_exit(1);
	}
	ds->stopping = true;
	log_info(0, "shutdown", "reason=signal drain_deadline_ms=%llu",
		 (unsigned long long)deadline_ms);
	sig_unref(sig);
	uv_timer_init(loop, &ds->timer);
	uv_timer_start(&ds->timer, on_stop_deadline, deadline_ms, 0);
	uv_unref((uv_handle_t *)&ds->timer);
}

static void close_walk(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

void daemon_close_all(uv_loop_t *loop)
{
	uv_walk(loop, close_walk, NULL);
	uv_run(loop, UV_RUN_DEFAULT);
}

long daemon_peak_rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = 0;
	if (!f)
		return 0;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmHWM: %ld", &v) == 1)
			break;
	fclose(f);
	return v;
}
