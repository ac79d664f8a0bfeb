/* One helper thread for pure work (PIDF parsing), completions back on the loop in order. */
#ifndef PARLEY_WORKER_H
#define PARLEY_WORKER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/*
 * A job is embedded by its owner. run() executes on the worker thread and may touch only
 * the job (and thread-safe, thread-local state such as pidf's cached parser); done()
 * executes on the loop thread, in the order the jobs were submitted, and owns the job from
 * then on. Jobs submitted during one loop pass are handed over in one batch at the end of
 * the pass (or every WORKER_BATCH jobs), so the loop pays a lock per batch, not per job.
 */
struct worker_job {
	struct worker_job *next;
	void (*run)(struct worker_job *j);
	void (*done)(struct worker_job *j);
};

struct worker;

/* Starts the thread (named name, at most 15 characters); at_exit (may be NULL) runs on it
 * last, to free its thread-local state. 0 or a negative error. */
int worker_new(uv_loop_t *loop, const char *name, void (*at_exit)(void), struct worker **out);
/* Queues j. With w == NULL, runs run() and done() at once (no thread configured). */
void worker_submit(struct worker *w, struct worker_job *j);
/* Waits for every submitted job and runs the done() callbacks not yet run, in order.
 * Cheap when nothing is outstanding. A done() that calls worker_drain returns at once. */
void worker_drain(struct worker *w);
/* Jobs submitted whose done() has not run yet. */
uint64_t worker_outstanding(const struct worker *w);
/* Drains, stops and joins the thread, closes the handles; the memory goes with the loop's
 * close callbacks. NULL is fine. */
void worker_free(struct worker *w);

#endif
