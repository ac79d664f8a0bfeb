/* gateway/worker: jobs run off the loop, completions come back in submission order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "worker.h"

#include <pthread.h>
#include <string.h>

struct tjob {
	struct worker_job j;
	int n;
	int squared;
	pthread_t ran_on;
};

struct log {
	int done[4096];
	size_t ndone;
};

static struct log LOG;

static void t_run(struct worker_job *j)
{
	struct tjob *t = (struct tjob *)j;
	t->squared = t->n * t->n;
	t->ran_on = pthread_self();
}

static void t_done(struct worker_job *j)
{
	struct tjob *t = (struct tjob *)j;
	assert_int_equal(t->squared, t->n * t->n);
	assert_true(LOG.ndone < 4096);
	LOG.done[LOG.ndone++] = t->n;
	free(t);
}

static struct tjob *tjob(int n)
{
	struct tjob *t = calloc(1, sizeof *t);
	assert_non_null(t);
	t->j.run = t_run;
	t->j.done = t_done;
	t->n = n;
	return t;
}

/* Without a worker, a job runs and completes inside worker_submit. */
static void test_inline(void **state)
{
	(void)state;
	memset(&LOG, 0, sizeof LOG);
	worker_submit(NULL, &tjob(7)->j);
	assert_int_equal(LOG.ndone, 1);
	assert_int_equal(LOG.done[0], 7);
	worker_drain(NULL);
	assert_int_equal(worker_outstanding(NULL), 0);
	worker_free(NULL);
}

static void on_idle(uv_idle_t *h)
{
	(void)h;
}

/* 3000 jobs (batches of 32 and a partial one) come back in order through the loop's
 * async handle, and run on another thread. */
static void test_order_through_loop(void **state)
{
	(void)state;
	memset(&LOG, 0, sizeof LOG);
	uv_loop_t loop;
	assert_int_equal(uv_loop_init(&loop), 0);
	struct worker *w = NULL;
	assert_int_equal(worker_new(&loop, "test-worker", NULL, &w), 0);
	struct tjob *first = tjob(0);
	worker_submit(w, &first->j);
	for (int i = 1; i < 3000; i++)
		worker_submit(w, &tjob(i)->j);
	assert_true(worker_outstanding(w) > 0);
	/* the prepare/check handles hand the rest over; the async brings results back. The
	 * worker's handles do not keep a loop alive: an idle handle stands for the daemon's
	 * sockets. */
	uv_idle_t idle;
	uv_idle_init(&loop, &idle);
	uv_idle_start(&idle, on_idle);
	for (int spins = 0; spins < 1000000 && worker_outstanding(w); spins++)
		uv_run(&loop, UV_RUN_NOWAIT);
	uv_close((uv_handle_t *)&idle, NULL);
	assert_int_equal(worker_outstanding(w), 0);
	assert_int_equal(LOG.ndone, 3000);
	for (int i = 0; i < 3000; i++)
		assert_int_equal(LOG.done[i], i);
	worker_free(w);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
}

/* worker_drain is a barrier: every job submitted before it has completed when it returns,
 * without the loop running. */
static void test_drain_is_a_barrier(void **state)
{
	(void)state;
	memset(&LOG, 0, sizeof LOG);
	uv_loop_t loop;
	assert_int_equal(uv_loop_init(&loop), 0);
	struct worker *w = NULL;
	assert_int_equal(worker_new(&loop, "test-worker", NULL, &w), 0);
	for (int round = 0; round < 50; round++) {
		size_t before = LOG.ndone;
		for (int i = 0; i < round + 1; i++)
			worker_submit(w, &tjob((int)before + i)->j);
		worker_drain(w);
		assert_int_equal(worker_outstanding(w), 0);
		assert_int_equal(LOG.ndone, before + (size_t)round + 1);
	}
	for (size_t i = 0; i < LOG.ndone; i++)
		assert_int_equal(LOG.done[i], (int)i);
	/* the async wake-ups left behind find nothing to do */
	uv_run(&loop, UV_RUN_NOWAIT);
	assert_int_equal(LOG.ndone, 50 * 51 / 2);
	worker_free(w);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
}

static struct worker *REENTER;

static void t_done_reenter(struct worker_job *j)
{
	worker_drain(REENTER); /* from a done(): returns at once */
	t_done(j);
}

static int EXITS;

static void on_exit_hook(void)
{
	EXITS++;
}

/* worker_free delivers what is outstanding, a drain inside a done() does not recurse, and
 * the at_exit hook ran on the way out. */
static void test_free_delivers(void **state)
{
	(void)state;
	memset(&LOG, 0, sizeof LOG);
	uv_loop_t loop;
	assert_int_equal(uv_loop_init(&loop), 0);
	struct worker *w = NULL;
	assert_int_equal(worker_new(&loop, "test-worker", on_exit_hook, &w), 0);
	REENTER = w;
	EXITS = 0;
	for (int i = 0; i < 100; i++) {
		struct tjob *t = tjob(i);
		t->j.done = t_done_reenter;
		worker_submit(w, &t->j);
	}
	worker_free(w);
	assert_int_equal(EXITS, 1);
	assert_int_equal(LOG.ndone, 100);
	for (int i = 0; i < 100; i++)
		assert_int_equal(LOG.done[i], i);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
}

static int RAN_ON_LOOP_THREAD = -1;

static void t_done_thread(struct worker_job *j)
{
	struct tjob *t = (struct tjob *)j;
	RAN_ON_LOOP_THREAD = pthread_equal(t->ran_on, pthread_self()) ? 1 : 0;
	t_done(j);
}

/* Jobs run on the worker thread; their done() on the caller's. */
static void test_runs_elsewhere(void **state)
{
	(void)state;
	memset(&LOG, 0, sizeof LOG);
	uv_loop_t loop;
	assert_int_equal(uv_loop_init(&loop), 0);
	struct worker *w = NULL;
	assert_int_equal(worker_new(&loop, "test-worker", NULL, &w), 0);
	struct tjob *t = tjob(3);
	t->j.done = t_done_thread;
	worker_submit(w, &t->j);
	worker_drain(w);
	assert_int_equal(LOG.ndone, 1);
	assert_int_equal(RAN_ON_LOOP_THREAD, 0);
	worker_free(w);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_inline),
	    cmocka_unit_test(test_order_through_loop),
	    cmocka_unit_test(test_drain_is_a_barrier),
	    cmocka_unit_test(test_free_delivers),
	    cmocka_unit_test(test_runs_elsewhere),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
