/* Process signals through libuv: SIGTERM/SIGINT ask to stop, SIGHUP asks to reload. */
#ifndef PARLEY_SIG_H
#define PARLEY_SIG_H

#include <stdbool.h>
#include <uv.h>

/* Both callbacks run on the loop thread, never in signal context. */
struct sig_handlers {
	void (*on_term)(void *arg); /* SIGTERM or SIGINT; called again for every repeat */
	void (*on_hup)(void *arg);  /* SIGHUP; NULL = caught and ignored */
	void *arg;
};

/* Embeddable: the caller owns the memory, which must stay valid until the close callbacks
 * of sig_stop have run (the next uv_run turn). */
struct sig {
	uv_signal_t term;
	uv_signal_t intr;
	uv_signal_t hup;
	struct sig_handlers h;
	bool active;
};

/* Starts watching SIGTERM, SIGINT (-> on_term) and SIGHUP (-> on_hup) on loop, and sets
 * SIGPIPE to ignored for the whole process (write errors come back as EPIPE instead).
 * h is copied; on_term must not be NULL. The handles keep the loop alive until sig_stop.
 * Returns 0 or a libuv error, after which nothing is left running. */
int sig_start(uv_loop_t *loop, struct sig *s, const struct sig_handlers *h);
/* Closes the three handles; safe to call twice or after a failed sig_start. */
void sig_stop(struct sig *s);
/* Keeps the handlers installed (a second SIGTERM still reaches on_term) but lets the loop
 * end without them: for draining. */
void sig_unref(struct sig *s);

#endif
