/* One helper thread for pure work, completions back on the loop in submission order. */
#include "worker.h"

#include "err.h"

#include <pthread.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/*
 * Why it is built this way:
 *
 * - The presence bench (NOTIFY -> XMPP, issue #7) spends a third of the loop's time in
 *   expat on PIDF bodies, which is pure work on a copy of the body. One thread is enough to
 *   take it off the loop, and one thread keeps the order without sequence numbers: it runs
 *   jobs in the order it got them and hands them back in that order.
 * - Handing over costs a lock and, when the thread sleeps, a futex wake-up. Jobs are
 *   collected during a loop pass and handed over in one batch by a prepare and a check
 *   handle (jobs submitted by timers are flushed before the poll, those submitted by I/O
 *   after it), or every WORKER_BATCH jobs during a long read.
 * - Results come back through a uv_async_t, which libuv coalesces, in batches of at most
 *   WORKER_BATCH so that the loop can start on them while the thread goes on.
 * - worker_drain is the barrier the owner uses before anything that must see every
 *   completed job (a state change of the same subscription, shutting down). It waits on a
 *   condition the thread signals only while a drain waits.
 */

#define WORKER_BATCH 32

struct worker {
	uv_loop_t *loop;
	uv_thread_t thread;
	uv_mutex_t mu;
	uv_cond_t todo_cond; /* the thread waits for work */
	uv_cond_t done_cond; /* a drain waits for the thread */
	uv_async_t async;
	uv_prepare_t prepare;
	uv_check_t check;
	char name[16];
	void (*at_exit)(void);

	/* loop thread only */
	struct worker_job *batch, **batch_tail;
	size_t nbatch;
	uint64_t submitted, completed; /* completed: done() called */
	bool in_done;
	int open_handles;

	/* under mu */
	struct worker_job *todo, **todo_tail;
	struct worker_job *fin, **fin_tail;
	uint64_t finished; /* run() returned */
	bool idle;	   /* the thread waits on todo_cond */
	bool draining;	   /* the loop waits on done_cond */
	bool stop;
};

static void thread_main(void *arg)
{
	struct worker *w = arg;
	pthread_setname_np(pthread_self(), w->name);
	uv_mutex_lock(&w->mu);
	for (;;) {
		while (!w->todo && !w->stop) {
			w->idle = true;
			uv_cond_wait(&w->todo_cond, &w->mu);
			w->idle = false;
		}
		if (!w->todo)
			break; /* stopping, and nothing left */
		struct worker_job *list = w->todo;
		w->todo = NULL;
		w->todo_tail = &w->todo;
		uv_mutex_unlock(&w->mu);
		while (list) {
			struct worker_job *first = list, *last = NULL;
			uint64_t n = 0;
			while (list && n < WORKER_BATCH) {
				list->run(list);
				last = list;
				list = list->next;
				n++;
			}
			last->next = NULL;
			uv_mutex_lock(&w->mu);
			*w->fin_tail = first;
			w->fin_tail = &last->next;
			w->finished += n;
			bool wake = w->draining;
			uv_mutex_unlock(&w->mu);
			if (wake)
				uv_cond_signal(&w->done_cond);
			uv_async_send(&w->async);
		}
		uv_mutex_lock(&w->mu);
	}
	uv_mutex_unlock(&w->mu);
	if (w->at_exit)
		w->at_exit();
}

/* Hands the loop's batch to the thread. */
static void flush(struct worker *w)
{
	if (!w->batch)
		return;
	uv_mutex_lock(&w->mu);
	*w->todo_tail = w->batch;
	w->todo_tail = w->batch_tail;
	bool wake = w->idle;
	uv_mutex_unlock(&w->mu);
	w->batch = NULL;
	w->batch_tail = &w->batch;
	w->nbatch = 0;
	if (wake)
		uv_cond_signal(&w->todo_cond);
}

/* Calls done() for what the thread finished, in order; a done() may not re-enter. */
static void run_done(struct worker *w)
{
	if (w->in_done)
		return;
	w->in_done = true;
	for (;;) {
		uv_mutex_lock(&w->mu);
		struct worker_job *list = w->fin;
		w->fin = NULL;
		w->fin_tail = &w->fin;
		uv_mutex_unlock(&w->mu);
		if (!list)
			break;
		while (list) {
			struct worker_job *next = list->next;
			w->completed++;
			list->done(list);
			list = next;
		}
	}
	w->in_done = false;
}

static void on_async(uv_async_t *a)
{
	run_done(a->data);
}

static void on_prepare(uv_prepare_t *h)
{
	flush(h->data);
}

static void on_check(uv_check_t *h)
{
	flush(h->data);
}

int worker_new(uv_loop_t *loop, const char *name, void (*at_exit)(void), struct worker **out)
{
	struct worker *w = calloc(1, sizeof *w);
	if (!w)
		return PE_NOMEM;
	w->loop = loop;
	w->at_exit = at_exit;
	snprintf(w->name, sizeof w->name, "%s", name);
	w->batch_tail = &w->batch;
	w->todo_tail = &w->todo;
	w->fin_tail = &w->fin;
	int r = uv_mutex_init(&w->mu);
	if (r)
		goto fail_mu;
	if ((r = uv_cond_init(&w->todo_cond)))
		goto fail_todo;
	if ((r = uv_cond_init(&w->done_cond)))
		goto fail_done;
	if ((r = uv_async_init(loop, &w->async, on_async)))
		goto fail_async;
	uv_prepare_init(loop, &w->prepare);
	uv_check_init(loop, &w->check);
	w->async.data = w->prepare.data = w->check.data = w;
	w->open_handles = 3;
	/* none of them keeps the loop running */
	uv_unref((uv_handle_t *)&w->async);
	uv_prepare_start(&w->prepare, on_prepare);
	uv_unref((uv_handle_t *)&w->prepare);
	uv_check_start(&w->check, on_check);
	uv_unref((uv_handle_t *)&w->check);
	if ((r = uv_thread_create(&w->thread, thread_main, w))) {
		w->stop = true; /* no thread: worker_free only closes the handles */
		worker_free(w);
		return r;
	}
	*out = w;
	return 0;
fail_async:
	uv_cond_destroy(&w->done_cond);
fail_done:
	uv_cond_destroy(&w->todo_cond);
fail_todo:
	uv_mutex_destroy(&w->mu);
fail_mu:
	free(w);
	return r;
}

void worker_submit(struct worker *w, struct worker_job *j)
{
	if (!w) {
		j->run(j);
		j->done(j);
		return;
	}
	j->next = NULL;
	*w->batch_tail = j;
	w->batch_tail = &j->next;
	w->submitted++;
	if (++w->nbatch >= WORKER_BATCH)
		flush(w);
}

void worker_drain(struct worker *w)
{
	if (!w || w->completed == w->submitted || w->in_done)
		return;
	flush(w);
	uv_mutex_lock(&w->mu);
	w->draining = true;
	while (w->finished < w->submitted)
		uv_cond_wait(&w->done_cond, &w->mu);
	w->draining = false;
	uv_mutex_unlock(&w->mu);
	run_done(w);
}

uint64_t worker_outstanding(const struct worker *w)
{
	return w ? w->submitted - w->completed : 0;
}

static void on_closed(uv_handle_t *h)
{
	struct worker *w = h->data;
	if (--w->open_handles)
		return;
	uv_cond_destroy(&w->done_cond);
	uv_cond_destroy(&w->todo_cond);
	uv_mutex_destroy(&w->mu);
	free(w);
}

void worker_free(struct worker *w)
{
	if (!w)
		return;
	if (!w->stop) {
		worker_drain(w);
		uv_mutex_lock(&w->mu);
		w->stop = true;
		uv_mutex_unlock(&w->mu);
		uv_cond_signal(&w->todo_cond);
		uv_thread_join(&w->thread);
	}
	uv_close((uv_handle_t *)&w->async, on_closed);
	uv_close((uv_handle_t *)&w->prepare, on_closed);
	uv_close((uv_handle_t *)&w->check, on_closed);
}
