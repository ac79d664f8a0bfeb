/* Signal handling through uv_signal_t: libuv turns the signal into a loop event, so our
 * callbacks may do anything (log, reload, start a graceful close) without async-signal
 * restrictions. */
#include "sig.h"

#include <signal.h>
#include <string.h>

static void sig__on_signal(uv_signal_t *handle, int signum)
{
	struct sig *s = handle->data;

	/* Not one-shot: a second SIGTERM while draining reaches on_term again, and the daemon
	 * decides whether that means "exit now". */
	if (signum == SIGHUP) {
		if (s->h.on_hup)
			s->h.on_hup(s->h.arg);
	} else if (s->h.on_term) {
		s->h.on_term(s->h.arg);
	}
}

int sig_start(uv_loop_t *loop, struct sig *s, const struct sig_handlers *h)
{
	struct {
		uv_signal_t *handle;
		int signum;
	} watch[] = {{&s->term, SIGTERM}, {&s->intr, SIGINT}, {&s->hup, SIGHUP}};
	int r = 0;

	memset(s, 0, sizeof *s);
	s->h = *h;
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < sizeof watch / sizeof watch[0]; i++) {
		r = uv_signal_init(loop, watch[i].handle);
		if (r) {
			/* Close what was initialised; the rest are still zeroed (loop NULL). */
			for (size_t k = 0; k < i; k++)
				uv_close((uv_handle_t *)watch[k].handle, NULL);
			return r;
		}
		watch[i].handle->data = s;
	}
	s->active = true;
	for (size_t i = 0; i < sizeof watch / sizeof watch[0]; i++) {
		r = uv_signal_start(watch[i].handle, sig__on_signal, watch[i].signum);
		if (r) {
			sig_stop(s);
			return r;
		}
	}
	return 0;
}

void sig_stop(struct sig *s)
{
	if (!s->active)
		return;
	s->active = false;
	uv_close((uv_handle_t *)&s->term, NULL);
	uv_close((uv_handle_t *)&s->intr, NULL);
	uv_close((uv_handle_t *)&s->hup, NULL);
}

void sig_unref(struct sig *s)
{
	if (!s->active)
		return;
	uv_unref((uv_handle_t *)&s->term);
	uv_unref((uv_handle_t *)&s->intr);
	uv_unref((uv_handle_t *)&s->hup);
}
