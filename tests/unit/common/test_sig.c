/* Unit tests for signal handling: real signals raised in-process reach the loop callbacks. */
#include "sig.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

struct ctx {
	struct sig s;
	uv_timer_t watchdog;
	int term;
	int hup;
	int stop_after_term; /* sig_stop on this on_term call */
	int raise_on_term;   /* signal to raise from the first on_term, 0 = none */
	int raise_on_hup;    /* signal to raise from on_hup, 0 = none */
	bool timed_out;
};

static void stop_all(struct ctx *c)
{
	sig_stop(&c->s);
	if (!uv_is_closing((uv_handle_t *)&c->watchdog))
		uv_close((uv_handle_t *)&c->watchdog, NULL);
}

static void on_term(void *arg)
{
	struct ctx *c = arg;
	c->term++;
	if (c->term == 1 && c->raise_on_term)
		raise(c->raise_on_term); /* a second signal while "stopping" */
	if (c->term == c->stop_after_term)
		stop_all(c);
}

static void on_hup(void *arg)
{
	struct ctx *c = arg;
	c->hup++;
	if (c->raise_on_hup)
		raise(c->raise_on_hup);
}

static void on_watchdog(uv_timer_t *t)
{
	struct ctx *c = t->data;
	c->timed_out = true;
	stop_all(c);
}

/* Runs the loop until the callbacks stop everything, or 5 s pass. */
static void run(struct ctx *c, const struct sig_handlers *h)
{
	uv_loop_t loop;
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(sig_start(&loop, &c->s, h), 0);
	assert_int_equal(uv_timer_init(&loop, &c->watchdog), 0);
	c->watchdog.data = c;
	assert_int_equal(uv_timer_start(&c->watchdog, on_watchdog, 5000, 0), 0);
	raise(c->raise_on_hup ? SIGHUP : SIGTERM);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	/* Every handle was closed: the loop closes cleanly. */
	assert_int_equal(uv_loop_close(&loop), 0);
	assert_false(c->timed_out);
}

static void test_hup_then_term(void **state)
{
	(void)state;
	struct ctx c = {.stop_after_term = 1, .raise_on_hup = SIGTERM};
	struct sig_handlers h = {.on_term = on_term, .on_hup = on_hup, .arg = &c};
	run(&c, &h);
	assert_int_equal(c.hup, 1);
	assert_int_equal(c.term, 1);
}

static void test_int_is_term(void **state)
{
	(void)state;
	struct ctx c = {.stop_after_term = 1, .raise_on_hup = SIGINT};
	struct sig_handlers h = {.on_term = on_term, .on_hup = on_hup, .arg = &c};
	run(&c, &h);
	assert_int_equal(c.hup, 1);
	assert_int_equal(c.term, 1);
}

static void test_second_term_calls_again(void **state)
{
	(void)state;
	struct ctx c = {.stop_after_term = 3, .raise_on_term = SIGINT};
	struct sig_handlers h = {.on_term = on_term, .on_hup = on_hup, .arg = &c};
	/* SIGTERM -> on_term #1 raises SIGINT -> #2; a third SIGTERM from here -> #3 stops. */
	uv_loop_t loop;
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(sig_start(&loop, &c.s, &h), 0);
	assert_int_equal(uv_timer_init(&loop, &c.watchdog), 0);
	c.watchdog.data = &c;
	assert_int_equal(uv_timer_start(&c.watchdog, on_watchdog, 5000, 0), 0);
	raise(SIGTERM);
	while (c.term < 2 && !c.timed_out)
		uv_run(&loop, UV_RUN_ONCE);
	assert_int_equal(c.term, 2);
	raise(SIGTERM);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
	assert_false(c.timed_out);
	assert_int_equal(c.term, 3);
	assert_int_equal(c.hup, 0);
}

static void test_null_hup_and_sigpipe(void **state)
{
	(void)state;
	struct ctx c = {.stop_after_term = 1};
	struct sig_handlers h = {.on_term = on_term, .on_hup = NULL, .arg = &c};
	uv_loop_t loop;
	struct sigaction sa;

	signal(SIGPIPE, SIG_DFL); /* earlier tests already ignored it */
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(sig_start(&loop, &c.s, &h), 0);
	assert_int_equal(sigaction(SIGPIPE, NULL, &sa), 0);
	assert_true(sa.sa_handler == SIG_IGN);
	raise(SIGPIPE); /* ignored: the process goes on */
	raise(SIGHUP);	/* caught, no callback: the process goes on */
	assert_int_equal(uv_timer_init(&loop, &c.watchdog), 0);
	c.watchdog.data = &c;
	assert_int_equal(uv_timer_start(&c.watchdog, on_watchdog, 5000, 0), 0);
	raise(SIGTERM);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
	assert_false(c.timed_out);
	assert_int_equal(c.term, 1);
	assert_int_equal(c.hup, 0);
	sig_stop(&c.s); /* a second stop is a no-op */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hup_then_term),
	    cmocka_unit_test(test_int_is_term),
	    cmocka_unit_test(test_second_term_calls_again),
	    cmocka_unit_test(test_null_hup_and_sigpipe),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
