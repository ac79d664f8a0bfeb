/* Unit tests for the control protocol: the request-line parser, dispatch through the
 * registry, and the socket (mode 0660, stale and live socket files, a real round trip). */
#include "buf.h"
#include "ctl.h"
#include "err.h"
#include "json.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- parser ---- */

struct pcase {
	const char *line;
	int rc;
	const char *verb;
	size_t argc;
	const char *argv[4];
};

static void test_parse_table(void **state)
{
	(void)state;
	static const struct pcase cases[] = {
	    {"status", 0, "status", 0, {0}},
	    {"  status  \r", 0, "status", 0, {0}},
	    {"partners add a.example", 0, "partners", 2, {"add", "a.example"}},
	    {"x \"two words\" \"q\\\"b\\\\s\" \"\"", 0, "x", 3, {"two words", "q\"b\\s", ""}},
	    {"x\t\"\xc3\xa9t\xc3\xa9\"", 0, "x", 1, {"\xc3\xa9t\xc3\xa9"}},
	    {"set-1_a k=v", 0, "set-1_a", 1, {"k=v"}},
	    {"", PE_INVAL, NULL, 0, {0}},
	    {"   \t ", PE_INVAL, NULL, 0, {0}},
	    {"Status", PE_INVAL, NULL, 0, {0}},
	    {"\"status\"", 0, "status", 0, {0}}, /* a quoted verb is still a verb */
	    {"st.atus", PE_INVAL, NULL, 0, {0}},
	    {"x \"open", PE_INVAL, NULL, 0, {0}},
	    {"x \"bad\\n\"", PE_INVAL, NULL, 0, {0}},
	    {"x \"a\"b", PE_INVAL, NULL, 0, {0}},
	    {"x a\"b", PE_INVAL, NULL, 0, {0}},
	    {"x a\\b", PE_INVAL, NULL, 0, {0}},
	    {"x a\x01", PE_INVAL, NULL, 0, {0}},
	    {"x \"a\x01\"", PE_INVAL, NULL, 0, {0}},
	    {"x \xc3\xa9", PE_INVAL, NULL, 0, {0}},
	    {"x \"\\", PE_INVAL, NULL, 0, {0}},
	    {"abcdefghijabcdefghijabcdefghijab", 0, "abcdefghijabcdefghijabcdefghijab", 0, {0}},
	    {"abcdefghijabcdefghijabcdefghijabc", PE_INVAL, NULL, 0, {0}},
	};
	struct ctl_req *r = malloc(sizeof *r);
	char why[128];
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct pcase *c = &cases[i];
		int rc = ctl_parse_line(c->line, strlen(c->line), r, why, sizeof why);
		if (rc != c->rc)
			fail_msg("case %zu \"%s\": rc %d, expected %d (%s)", i, c->line, rc, c->rc,
				 rc ? why : "");
		if (rc)
			continue;
		assert_string_equal(r->verb, c->verb);
		assert_int_equal(r->argc, c->argc);
		for (size_t a = 0; a < c->argc; a++)
			assert_string_equal(r->argv[a], c->argv[a]);
	}
	free(r);
}

static void test_parse_limits(void **state)
{
	(void)state;
	struct ctl_req *r = malloc(sizeof *r);
	char line[CTL_MAX_LINE + 8];
	char why[128];
	/* exactly CTL_MAX_ARGS args pass, one more does not */
	size_t n = (size_t)snprintf(line, sizeof line, "v");
	for (int i = 0; i < CTL_MAX_ARGS; i++)
		n += (size_t)snprintf(line + n, sizeof line - n, " a%d", i);
	assert_int_equal(ctl_parse_line(line, n, r, why, sizeof why), 0);
	assert_int_equal(r->argc, CTL_MAX_ARGS);
	assert_string_equal(r->argv[CTL_MAX_ARGS - 1], "a15");
	n += (size_t)snprintf(line + n, sizeof line - n, " z");
	assert_int_equal(ctl_parse_line(line, n, r, why, sizeof why), PE_TOOBIG);
	/* the longest line passes (plus a CR), one byte more does not */
	memset(line, 'a', CTL_MAX_LINE);
	line[CTL_MAX_LINE] = '\r';
	assert_int_equal(ctl_parse_line(line, CTL_MAX_LINE + 1, r, why, sizeof why), PE_INVAL);
	line[0] = 'v';
	line[1] = ' ';
	assert_int_equal(ctl_parse_line(line, CTL_MAX_LINE + 1, r, why, sizeof why), 0);
	assert_int_equal(strlen(r->argv[0]), CTL_MAX_LINE - 2);
	line[CTL_MAX_LINE] = 'a';
	assert_int_equal(ctl_parse_line(line, CTL_MAX_LINE + 1, r, why, sizeof why), PE_TOOBIG);
	/* every prefix of a valid line either parses or is refused cleanly */
	const char *l = "partners set \"a b\" \"c\\\"d\" e";
	for (size_t k = 0; k <= strlen(l); k++) {
		int rc = ctl_parse_line(l, k, r, why, sizeof why);
		assert_true(rc == 0 || rc == PE_INVAL);
	}
	free(r);
}

/* ---- dispatch ---- */

static int h_echo(void *arg, const struct ctl_req *req, struct json *j, char *err, size_t errlen)
{
	int *calls = arg;
	(void)err, (void)errlen;
	(*calls)++;
	json_obj_begin(j);
	json_key(j, "args");
	json_arr_begin(j);
	for (size_t i = 0; i < req->argc; i++)
		json_str(j, req->argv[i]);
	json_arr_end(j);
	json_obj_end(j);
	return 0;
}

static int h_fail(void *arg, const struct ctl_req *req, struct json *j, char *err, size_t errlen)
{
	(void)arg, (void)req;
	json_obj_begin(j); /* discarded */
	snprintf(err, errlen, "partner \"%s\" not found", req->argc ? req->argv[0] : "");
	return PE_NOTFOUND;
}

static int h_broken(void *arg, const struct ctl_req *req, struct json *j, char *err, size_t errlen)
{
	(void)arg, (void)req, (void)err, (void)errlen;
	json_obj_begin(j); /* never closed: the reply must still be valid JSON */
	return 0;
}

static int h_big(void *arg, const struct ctl_req *req, struct json *j, char *err, size_t errlen)
{
	(void)arg, (void)req, (void)err, (void)errlen;
	json_arr_begin(j);
	for (int i = 0; i < 100; i++)
		json_str(j, "0123456789012345678901234567890123456789");
	json_arr_end(j);
	return 0;
}

/* Dispatches line; returns the parsed reply (checks it is one JSON line). */
static struct json_val *run(struct ctl *c, const char *line, size_t max)
{
	struct buf out;
	buf_init(&out, max);
	assert_int_equal(ctl_dispatch(c, line, strlen(line), &out), 0);
	const char *t = (const char *)buf_head(&out);
	size_t n = buf_len(&out);
	assert_true(n > 1);
	assert_int_equal(t[n - 1], '\n');
	assert_null(memchr(t, '\n', n - 1));
	struct json_val *v = NULL;
	assert_int_equal(json_parse(t, n - 1, JSON_MAX_DEPTH, 100000, &v), 0);
	buf_deinit(&out);
	assert_int_equal(v->type, JSON_OBJECT);
	return v;
}

static void assert_error(struct json_val *v, const char *substr)
{
	assert_false(json_get(v, "ok")->b);
	const struct json_val *e = json_get(v, "error");
	assert_non_null(e);
	if (!strstr(e->text, substr))
		fail_msg("error \"%s\" lacks \"%s\"", e->text, substr);
}

static void test_dispatch(void **state)
{
	(void)state;
	int calls = 0;
	struct ctl *c = ctl_new();
	assert_int_equal(ctl_register(c, "echo", "repeat", h_echo, &calls), 0);
	assert_int_equal(ctl_register(c, "fail", "always fails", h_fail, NULL), 0);
	assert_int_equal(ctl_register(c, "broken", "bad handler", h_broken, NULL), 0);
	assert_int_equal(ctl_register(c, "big", "large", h_big, NULL), 0);
	assert_int_equal(ctl_register(c, "Bad", "x", h_echo, NULL), PE_INVAL);
	assert_int_equal(ctl_register(c, "", "x", h_echo, NULL), PE_INVAL);

	struct json_val *v = run(c, "echo a \"b c\"", 0);
	assert_true(json_get(v, "ok")->b);
	assert_string_equal(json_get(v, "cmd")->text, "echo");
	const struct json_val *a = json_get(json_get(v, "result"), "args");
	assert_int_equal(a->n, 2);
	assert_string_equal(a->items[1].text, "b c");
	assert_int_equal(calls, 1);
	json_val_free(v);

	v = run(c, "nosuch x", 0);
	assert_error(v, "unknown command \"nosuch\"");
	assert_string_equal(json_get(v, "cmd")->text, "nosuch");
	json_val_free(v);

	v = run(c, "echo \"open", 0);
	assert_error(v, "unterminated quote");
	assert_int_equal(json_get(v, "cmd")->type, JSON_NULL);
	json_val_free(v);

	v = run(c, "fail a.example", 0);
	assert_error(v, "partner \"a.example\" not found");
	json_val_free(v);

	v = run(c, "broken", 0);
	assert_error(v, "operation not valid");
	json_val_free(v);

	/* a reply too large for the output bound becomes an error reply that fits */
	v = run(c, "big", 1024);
	assert_error(v, "reply too large");
	json_val_free(v);

	/* help lists everything registered, in order, and re-registration replaces */
	assert_int_equal(ctl_register(c, "echo", "repeat again", h_echo, &calls), 0);
	v = run(c, "help", 0);
	const struct json_val *r = json_get(v, "result");
	assert_int_equal(r->type, JSON_ARRAY);
	assert_int_equal(r->n, 5);
	assert_string_equal(json_get(&r->items[0], "verb")->text, "help");
	assert_string_equal(json_get(&r->items[1], "verb")->text, "echo");
	assert_string_equal(json_get(&r->items[1], "help")->text, "repeat again");
	json_val_free(v);
	ctl_free(c);
}

/* ---- socket ---- */

struct client {
	char path[108];
	atomic_int done;
	char reply[8192];
	int connect_errno;
};

static void *client_main(void *arg)
{
	struct client *cl = arg;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", cl->path);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		cl->connect_errno = errno;
		close(fd);
		atomic_store(&cl->done, 1);
		return NULL;
	}
	/* two requests in one write, one split across writes */
	const char *req = "echo 1\necho \"two\"\nech";
	send(fd, req, strlen(req), 0);
	usleep(20000);
	send(fd, "o 3\r\n", 5, 0);
	size_t n = 0;
	int lines = 0;
	while (lines < 3 && n < sizeof cl->reply - 1) {
		ssize_t r = recv(fd, cl->reply + n, sizeof cl->reply - 1 - n, 0);
		if (r <= 0)
			break;
		for (ssize_t i = 0; i < r; i++)
			if (cl->reply[n + (size_t)i] == '\n')
				lines++;
		n += (size_t)r;
	}
	cl->reply[n] = 0;
	close(fd);
	atomic_store(&cl->done, 1);
	return NULL;
}

static void test_socket(void **state)
{
	(void)state;
	char dir[] = "/tmp/parley-test-ctl-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[108];
	snprintf(path, sizeof path, "%s/ctl.sock", dir);
	uv_loop_t loop;
	uv_loop_init(&loop);
	int calls = 0;
	struct ctl *c = ctl_new();
	ctl_register(c, "echo", "repeat", h_echo, &calls);
	char err[256];

	/* a stale socket file (nobody listening) is replaced */
	int sfd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	assert_int_equal(bind(sfd, (struct sockaddr *)&sa, sizeof sa), 0);
	close(sfd);

	mode_t old = umask(0); /* the mode must not depend on the caller's umask */
	assert_int_equal(ctl_listen(c, &loop, path, err, sizeof err), 0);
	umask(old);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0660);

	/* a second server on the same live path is refused */
	struct ctl *c2 = ctl_new();
	assert_int_equal(ctl_listen(c2, &loop, path, err, sizeof err), PE_STATE);
	assert_non_null(strstr(err, "in use"));
	ctl_free(c2);
	/* a relative path is refused */
	c2 = ctl_new();
	assert_int_equal(ctl_listen(c2, &loop, "rel.sock", err, sizeof err), PE_CONFIG);
	ctl_free(c2);

	struct client cl = {0};
	snprintf(cl.path, sizeof cl.path, "%s", path);
	pthread_t th;
	pthread_create(&th, NULL, client_main, &cl);
	for (int i = 0; i < 5000 && !atomic_load(&cl.done); i++) {
		uv_run(&loop, UV_RUN_NOWAIT);
		usleep(1000);
	}
	pthread_join(th, NULL);
	assert_int_equal(cl.connect_errno, 0);
	assert_string_equal(cl.reply,
			    "{\"ok\":true,\"cmd\":\"echo\",\"result\":{\"args\":[\"1\"]}}\n"
			    "{\"ok\":true,\"cmd\":\"echo\",\"result\":{\"args\":[\"two\"]}}\n"
			    "{\"ok\":true,\"cmd\":\"echo\",\"result\":{\"args\":[\"3\"]}}\n");
	assert_int_equal(calls, 3);

	ctl_stop(c);
	ctl_stop(c);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(stat(path, &st), -1); /* removed */
	ctl_free(c);
	assert_int_equal(uv_loop_close(&loop), 0);
	rmdir(dir);
}

static void test_conf_check(void **state)
{
	(void)state;
	char err[256];
	struct ctl_conf cc = {.socket = "", .metrics = ""};
	assert_int_equal(ctl_conf_check(&cc, err, sizeof err), 0);
	cc = (struct ctl_conf){.socket = "/run/parley/proxy.sock", .metrics = "127.0.0.1:9469"};
	assert_int_equal(ctl_conf_check(&cc, err, sizeof err), 0);
	cc.metrics = "[::1]:9469";
	assert_int_equal(ctl_conf_check(&cc, err, sizeof err), 0);
	cc.metrics = "localhost:9469";
	assert_int_equal(ctl_conf_check(&cc, err, sizeof err), PE_CONFIG);
	cc.metrics = "127.0.0.1";
	assert_int_equal(ctl_conf_check(&cc, err, sizeof err), PE_CONFIG);
	cc.metrics = "127.0.0.1:70000";
	assert_int_equal(ctl_conf_check(&cc, err, sizeof err), PE_CONFIG);
	cc.metrics = "::1:9469";
	assert_int_equal(ctl_conf_check(&cc, err, sizeof err), PE_CONFIG);
	cc = (struct ctl_conf){.socket = "run/x.sock", .metrics = ""};
	assert_int_equal(ctl_conf_check(&cc, err, sizeof err), PE_CONFIG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_table), cmocka_unit_test(test_parse_limits),
	    cmocka_unit_test(test_dispatch),	cmocka_unit_test(test_socket),
	    cmocka_unit_test(test_conf_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
