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

/* Each threaded test gets a loop and a worker (with on_exit_hook, counting EXITS). */
struct fix {
	uv_loop_t loop;
	struct worker *w;
};

static int EXITS;

static void on_exit_hook(void)
{
	EXITS++;
}

static int setup(void **state)
{
	static struct fix f;
	memset(&f, 0, sizeof f);
	memset(&LOG, 0, sizeof LOG);
	EXITS = 0;
	assert_int_equal(uv_loop_init(&f.loop), 0);
	assert_int_equal(worker_new(&f.loop, "test-worker", on_exit_hook, &f.w), 0);
	*state = &f;
	return 0;
}

/* Frees the worker unless the test did, and closes the loop. */
static int teardown(void **state)
{
	struct fix *f = *state;
	if (f->w)
		worker_free(f->w);
	assert_int_equal(EXITS, 1);
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	return 0;
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
	struct fix *f = *state;
	struct worker *w = f->w;
	struct tjob *first = tjob(0);
	worker_submit(w, &first->j);
	for (int i = 1; i < 3000; i++)
		worker_submit(w, &tjob(i)->j);
	assert_true(worker_outstanding(w) > 0);
	/* the prepare/check handles hand the rest over; the async brings results back. The
	 * worker's handles do not keep a loop alive: an idle handle stands for the daemon's
	 * sockets. */
	uv_idle_t idle;
	uv_idle_init(&f->loop, &idle);
	uv_idle_start(&idle, on_idle);
	for (int spins = 0; spins < 1000000 && worker_outstanding(w); spins++)
		uv_run(&f->loop, UV_RUN_NOWAIT);
	uv_close((uv_handle_t *)&idle, NULL);
	uv_run(&f->loop, UV_RUN_NOWAIT); /* idle lives on this stack: closed before returning */
	assert_int_equal(worker_outstanding(w), 0);
	assert_int_equal(LOG.ndone, 3000);
	for (int i = 0; i < 3000; i++)
		assert_int_equal(LOG.done[i], i);
}

/* worker_drain is a barrier: every job submitted before it has completed when it returns,
 * without the loop running. */
static void test_drain_is_a_barrier(void **state)
{
	struct fix *f = *state;
	struct worker *w = f->w;
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
	uv_run(&f->loop, UV_RUN_NOWAIT);
	assert_int_equal(LOG.ndone, 50 * 51 / 2);
}

static struct worker *REENTER;

static void t_done_reenter(struct worker_job *j)
{
	worker_drain(REENTER); /* from a done(): returns at once */
	t_done(j);
}

/* worker_free delivers what is outstanding, a drain inside a done() does not recurse, and
 * the at_exit hook ran on the way out. */
static void test_free_delivers(void **state)
{
	struct fix *f = *state;
	struct worker *w = f->w;
	REENTER = w;
	for (int i = 0; i < 100; i++) {
		struct tjob *t = tjob(i);
		t->j.done = t_done_reenter;
		worker_submit(w, &t->j);
	}
	worker_free(w);
	f->w = NULL;
	assert_int_equal(EXITS, 1);
	assert_int_equal(LOG.ndone, 100);
	for (int i = 0; i < 100; i++)
		assert_int_equal(LOG.done[i], i);
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
	struct fix *f = *state;
	struct worker *w = f->w;
	struct tjob *t = tjob(3);
	t->j.done = t_done_thread;
	worker_submit(w, &t->j);
	worker_drain(w);
	assert_int_equal(LOG.ndone, 1);
	assert_int_equal(RAN_ON_LOOP_THREAD, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_inline),
	    cmocka_unit_test_setup_teardown(test_order_through_loop, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_drain_is_a_barrier, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_free_delivers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_runs_elsewhere, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
