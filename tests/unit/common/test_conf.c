/* Unit tests for the table-driven configuration loader. */
#include "conf.h"
#include "err.h"

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#define LONG_SECTION "a_section_name_that_is_longer_than_the_fifty_bytes_inih_keeps"

struct tcfg {
	char *level;
	bool flag;
	int64_t offset;
	uint64_t window;
	uint64_t timeout;
	uint64_t max_stanza;
	char *secret;
	char *cert;
	int tls;
	struct conf_strlist domains;
	struct conf_hostport listen;
	uint64_t count;
	char *deep;
};

static const char *const tls_modes[] = {"Required", "Optional", "NotSupported", NULL};

#define OFF(f) offsetof(struct tcfg, f)
static const struct conf_option T[] = {
    {.section = "",
     .name = "level",
     .type = CONF_STRING,
     .def = "info",
     .offset = OFF(level),
     .reloadable = true,
     .help = "log level"},
    {.section = "link",
     .name = "flag",
     .type = CONF_BOOL,
     .def = "false",
     .offset = OFF(flag),
     .reloadable = true,
     .help = "a flag"},
    {.section = "link",
     .name = "offset",
     .type = CONF_INT,
     .min = -100,
     .max = 100,
     .def = "-5",
     .offset = OFF(offset),
     .help = "signed"},
    {.section = "link",
     .name = "window",
     .type = CONF_UINT,
     .min = 1,
     .max = 65536,
     .def = "1000",
     .offset = OFF(window),
     .reloadable = true,
     .help = "frames in flight"},
    {.section = "link",
     .name = "timeout",
     .type = CONF_DURATION_MS,
     .min = 100,
     .max = 3600000,
     .def = "30s",
     .offset = OFF(timeout),
     .reloadable = true,
     .help = "idle timeout"},
    {.section = "limits",
     .name = "max_stanza",
     .type = CONF_SIZE,
     .min = 1024,
     .max = 1 << 30,
     .def = "256k",
     .offset = OFF(max_stanza),
     .help = "largest stanza"},
    {.section = "tls",
     .name = "secret",
     .type = CONF_STRING,
     .min = 4,
     .max = 4096,
     .offset = OFF(secret),
     .help = "dialback secret"},
    {.section = "tls",
     .name = "cert",
     .type = CONF_PATH,
     .def = "certs/default.pem",
     .offset = OFF(cert),
     .help = "certificate chain"},
    {.section = "tls",
     .name = "mode",
     .type = CONF_ENUM,
     .def = "Required",
     .offset = OFF(tls),
     .enum_names = tls_modes,
     .reloadable = true,
     .help = "TLS negotiation"},
    {.section = "domains",
     .name = "domain",
     .type = CONF_STRLIST,
     .min = 1,
     .max = 253,
     .def = "default.example",
     .offset = OFF(domains),
     .help = "served domain (repeat)"},
    {.section = "link",
     .name = "listen",
     .type = CONF_HOSTPORT,
     .def = "127.0.0.1:23456",
     .offset = OFF(listen),
     .help = "link listener"},
    {.section = "link",
     .name = "count",
     .type = CONF_UINT,
     .offset = OFF(count),
     .help = "unbounded"},
    {.section = LONG_SECTION,
     .name = "deep",
     .type = CONF_STRING,
     .offset = OFF(deep),
     .reloadable = true,
     .help = "long section"},
};
#define NT (sizeof T / sizeof T[0])

struct rcfg {
	char *cert;
	uint64_t n;
};
static const struct conf_option R[] = {
    {.section = "tls",
     .name = "cert",
     .type = CONF_PATH,
     .offset = offsetof(struct rcfg, cert),
     .required = true,
     .help = "certificate"},
    {.section = "",
     .name = "n",
     .type = CONF_UINT,
     .offset = offsetof(struct rcfg, n),
     .required = true,
     .help = "a number"},
};

static char g_dir[256];	 /* realpath of the per-run temporary directory */
static char g_path[512]; /* g_dir/parley.conf */
static char g_err[512];

static void write_file(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static int load_text(const char *text, struct tcfg *c)
{
	write_file(g_path, text, strlen(text));
	memset(c, 0xa5, sizeof *c); /* conf_load must zero the fields itself */
	return conf_load(T, NT, c, g_path, g_err, sizeof g_err);
}

/* Loads text that must fail, and checks the message after "g_path:". A macro, so that a
 * failure reports the caller's line. */
#define expect_error(text, msg) expect_error_at((text), (msg), __FILE__, __LINE__)
static void expect_error_at(const char *text, const char *msg_after_path, const char *file,
			    int line)
{
	struct tcfg c;
	char want[2048];
	int r = load_text(text, &c);
	snprintf(want, sizeof want, "%s%s", g_path, msg_after_path);
	_assert_int_equal(cast_to_largest_integral_type(r),
			  cast_to_largest_integral_type(PE_CONFIG), file, line);
	_assert_string_equal(g_err, want, file, line);
	/* On error every owned field is freed and zeroed. */
	_assert_true(cast_to_largest_integral_type(c.level == NULL && c.cert == NULL &&
						   c.secret == NULL && c.domains.v == NULL &&
						   c.domains.n == 0 && c.listen.host == NULL),
		     "owned fields zeroed after an error", file, line);
}

static int setup(void **state)
{
	(void)state;
	char tmpl[] = "/tmp/parley-test-conf-XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	char *abs = realpath(tmpl, NULL);
	assert_non_null(abs);
	assert_true(strlen(abs) < sizeof g_dir);
	strcpy(g_dir, abs);
	free(abs);
	snprintf(g_path, sizeof g_path, "%s/parley.conf", g_dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char p[PATH_MAX + 32];
	unlink(g_path);
	snprintf(p, sizeof p, "%s/sub/p.conf", g_dir);
	unlink(p);
	snprintf(p, sizeof p, "%s/sub", g_dir);
	rmdir(p);
	rmdir(g_dir);
	return 0;
}

static void test_defaults(void **state)
{
	(void)state;
	struct tcfg c;
	char want[PATH_MAX + 64];
	assert_int_equal(load_text("; nothing but a comment\n", &c), 0);
	assert_string_equal(c.level, "info");
	assert_false(c.flag);
	assert_int_equal(c.offset, -5);
	assert_int_equal(c.window, 1000);
	assert_int_equal(c.timeout, 30000);
	assert_int_equal(c.max_stanza, 256 * 1024);
	assert_null(c.secret);
	snprintf(want, sizeof want, "%s/certs/default.pem", g_dir);
	assert_string_equal(c.cert, want); /* relative defaults resolve like file values */
	assert_int_equal(c.tls, 0);
	assert_int_equal(c.domains.n, 1);
	assert_string_equal(c.domains.v[0], "default.example");
	assert_string_equal(c.listen.host, "127.0.0.1");
	assert_int_equal(c.listen.port, 23456);
	assert_int_equal(c.count, 0);
	assert_null(c.deep);
	conf_free(T, NT, &c);
	assert_null(c.level);
	conf_free(T, NT, &c); /* twice is harmless */
}

static void test_every_type(void **state)
{
	(void)state;
	struct tcfg c;
	const char *text = "\xef\xbb\xbf"
			   "level = \"  debug; # kept \\\"quoted\\\" \\\\ \"\n"
			   "# comment\n"
			   "\n"
			   "[link]\r\n"
			   "  flag=yes\n"
			   "offset = -100\n"
			   "window = 65536\n"
			   "timeout = 250ms\n"
			   "listen = [::1]:5270\n"
			   "count = 18446744073709551615\n"
			   "[limits]\n"
			   "max_stanza = 16MiB\n"
			   "[tls]\n"
			   "secret = s3cret;#x=y\n"
			   "cert = /etc/parley/cert.pem\n"
			   "mode = notsupported\n"
			   "[domains]\n"
			   "domain = a.example\n"
			   "domain = b.example\n"
			   "[ " LONG_SECTION " ]\n"
			   "deep = yes\n";
	assert_int_equal(load_text(text, &c), 0);
	assert_string_equal(c.level, "  debug; # kept \"quoted\" \\ ");
	assert_true(c.flag);
	assert_int_equal(c.offset, -100);
	assert_int_equal(c.window, 65536);
	assert_int_equal(c.timeout, 250);
	assert_string_equal(c.listen.host, "::1");
	assert_int_equal(c.listen.port, 5270);
	assert_true(c.count == UINT64_MAX);
	assert_int_equal(c.max_stanza, 16 << 20);
	assert_string_equal(c.secret, "s3cret;#x=y"); /* no inline comments; first '=' splits */
	assert_string_equal(c.cert, "/etc/parley/cert.pem");
	assert_int_equal(c.tls, 2);
	/* The file's first occurrence replaces the default list. */
	assert_int_equal(c.domains.n, 2);
	assert_string_equal(c.domains.v[0], "a.example");
	assert_string_equal(c.domains.v[1], "b.example");
	assert_string_equal(c.deep, "yes");
	conf_free(T, NT, &c);
}

static void test_bool_values(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		bool want;
	} cases[] = {{"true", true},   {"TRUE", true}, {"yes", true},  {"on", true}, {"1", true},
		     {"false", false}, {"No", false},  {"off", false}, {"0", false}};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char text[128];
		struct tcfg c;
		snprintf(text, sizeof text, "[link]\nflag = %s\n", cases[i].text);
		assert_int_equal(load_text(text, &c), 0);
		assert_int_equal(c.flag, cases[i].want);
		conf_free(T, NT, &c);
	}
	expect_error("[link]\nflag = maybe\n",
		     ":2: [link] flag: 'maybe' is not a boolean (use true or false)");
}

static void test_durations(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		uint64_t ms;
	} cases[] = {{"250ms", 250}, {"30s", 30000},  {"5m", 300000},  {"1h", 3600000},
		     {"7", 7000},    {"100 ms", 100}, {"59m", 3540000}};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char text[128];
		struct tcfg c;
		snprintf(text, sizeof text, "[link]\ntimeout = %s\n", cases[i].text);
		assert_int_equal(load_text(text, &c), 0);
		assert_int_equal(c.timeout, cases[i].ms);
		conf_free(T, NT, &c);
	}
	expect_error("[link]\ntimeout = 2h\n", ":2: [link] timeout: 2h is above the maximum 1h");
	expect_error("[link]\ntimeout = 50ms\n",
		     ":2: [link] timeout: 50ms is below the minimum 100ms");
	expect_error("[link]\ntimeout = 5x\n",
		     ":2: [link] timeout: '5x' is not a duration (use e.g. 250ms, 30s, 5m, 2h)");
	expect_error("[link]\ntimeout = -5s\n",
		     ":2: [link] timeout: '-5s' is not a duration (use e.g. 250ms, 30s, 5m, 2h)");
	expect_error("[link]\ntimeout = 99999999999999999999s\n",
		     ":2: [link] timeout: '99999999999999999999s' is not a duration (use e.g. "
		     "250ms, 30s, 5m, 2h)");
}

static void test_sizes(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		uint64_t bytes;
	} cases[] = {{"1024", 1024},	  {"8k", 8192},	   {"8KiB", 8192},  {"16M", 16 << 20},
		     {"16MiB", 16 << 20}, {"1G", 1 << 30}, {"2048b", 2048}, {"4 kib", 4096}};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char text[128];
		struct tcfg c;
		snprintf(text, sizeof text, "[limits]\nmax_stanza = %s\n", cases[i].text);
		assert_int_equal(load_text(text, &c), 0);
		assert_int_equal(c.max_stanza, cases[i].bytes);
		conf_free(T, NT, &c);
	}
	expect_error("[limits]\nmax_stanza = 512\n",
		     ":2: [limits] max_stanza: 512 is below the minimum 1KiB");
	expect_error("[limits]\nmax_stanza = 2G\n",
		     ":2: [limits] max_stanza: 2GiB is above the maximum 1GiB");
	expect_error("[limits]\nmax_stanza = 10KB\n",
		     ":2: [limits] max_stanza: '10KB' is not a size (use e.g. 512, 8k, 16MiB, 1G)");
}

static void test_numbers(void **state)
{
	(void)state;
	/* The example of the design brief, on line 12. */
	expect_error("\n\n\n\n\n\n\n\n\n\n[link]\nwindow = 70000\n",
		     ":12: [link] window: 70000 is above the maximum 65536");
	expect_error("[link]\nwindow = 0\n", ":2: [link] window: 0 is below the minimum 1");
	expect_error("[link]\nwindow = -1\n",
		     ":2: [link] window: '-1' is not a non-negative integer");
	expect_error("[link]\nwindow = 12abc\n",
		     ":2: [link] window: '12abc' is not a non-negative integer");
	expect_error("[link]\nwindow =\n", ":2: [link] window: empty value");
	expect_error("[link]\ncount = 18446744073709551616\n",
		     ":2: [link] count: '18446744073709551616' is not a non-negative integer");
	expect_error("[link]\noffset = 101\n", ":2: [link] offset: 101 is above the maximum 100");
	expect_error("[link]\noffset = -101\n",
		     ":2: [link] offset: -101 is below the minimum -100");
	expect_error("[link]\noffset = 1.5\n", ":2: [link] offset: '1.5' is not an integer");

	struct tcfg c;
	assert_int_equal(load_text("[link]\noffset = +7\nwindow = 1\n", &c), 0);
	assert_int_equal(c.offset, 7);
	assert_int_equal(c.window, 1);
	conf_free(T, NT, &c);
}

static void test_strings_and_enums(void **state)
{
	(void)state;
	struct tcfg c;
	assert_int_equal(load_text("level =\n[tls]\nmode = OPTIONAL\n", &c), 0);
	assert_string_equal(c.level, ""); /* an empty string is a value */
	assert_int_equal(c.tls, 1);
	conf_free(T, NT, &c);
	expect_error("[tls]\nsecret = abc\n",
		     ":2: [tls] secret: value is 3 bytes, below the minimum 4");
	expect_error("[tls]\nmode = sometimes\n",
		     ":2: [tls] mode: 'sometimes' is not one of: Required, Optional, NotSupported");
	expect_error("level = \"unterminated\n", ":1: level: missing closing quote");
	expect_error("level = \"a\" b\"\n", ":1: level: text after the closing quote");
	expect_error("level = \"a\\nb\"\n",
		     ":1: level: only \\\" and \\\\ may be escaped in a quoted value");
	/* Peer-controlled bytes in messages are escaped and bounded. */
	expect_error("[link]\nflag = \x01\xff\n",
		     ":2: [link] flag: '\\x01\\xff' is not a boolean (use true or false)");
}

static void test_hostport(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		const char *host;
		uint16_t port;
	} ok[] = {{"127.0.0.1:5269", "127.0.0.1", 5269},
		  {"edge.example.org:23456", "edge.example.org", 23456},
		  {"[::1]:1", "::1", 1},
		  {"[2001:db8::5]:65535", "2001:db8::5", 65535}};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		char text[128];
		struct tcfg c;
		snprintf(text, sizeof text, "[link]\nlisten = %s\n", ok[i].text);
		assert_int_equal(load_text(text, &c), 0);
		assert_string_equal(c.listen.host, ok[i].host);
		assert_int_equal(c.listen.port, ok[i].port);
		conf_free(T, NT, &c);
	}
	expect_error("[link]\nlisten = example.org\n",
		     ":2: [link] listen: missing port (use host:port or [v6]:port)");
	expect_error("[link]\nlisten = ::1:80\n",
		     ":2: [link] listen: an IPv6 address needs brackets, as in [::1]:5269");
	expect_error("[link]\nlisten = [::1]\n", ":2: [link] listen: missing port (use [v6]:port)");
	expect_error("[link]\nlisten = [nothex]:80\n",
		     ":2: [link] listen: 'nothex' is not an IPv6 address");
	expect_error("[link]\nlisten = :80\n", ":2: [link] listen: missing host before ':'");
	expect_error("[link]\nlisten = a:70000\n",
		     ":2: [link] listen: port must be a number from 0 to 65535");
	expect_error("[link]\nlisten = a:0\n", ":2: [link] listen: port 0 is outside 1..65535");
	expect_error("[link]\nlisten = a:\n",
		     ":2: [link] listen: port must be a number from 0 to 65535");
}

static void test_unknown_and_syntax(void **state)
{
	(void)state;
	expect_error("[link]\n\n; x\nfoo = 1\n", ":4: unknown key 'foo' in section [link]");
	expect_error("bar = 1\n", ":1: unknown key 'bar'");
	/* A key valid in another section is still unknown here. */
	expect_error("[tls]\nwindow = 5\n", ":2: unknown key 'window' in section [tls]");
	expect_error("[link]\n[nosuch]\n", ":2: unknown section [nosuch]");
	expect_error("[link\n", ":1: expected ']' at the end of a section header");
	expect_error("[]\n", ":1: invalid section name []");
	expect_error("[link]\njust words\n", ":2: expected 'key = value'");
	expect_error("[link]\n= 5\n", ":2: missing key before '='");
	expect_error("[link]\nbad key = 5\n", ":2: invalid key name 'bad key'");
}

static void test_nul_byte(void **state)
{
	(void)state;
	static const char text[] = "[link]\nwin\0dow = 5\n";
	struct tcfg c;
	char want[PATH_MAX + 64];
	write_file(g_path, text, sizeof text - 1);
	assert_int_equal(conf_load(T, NT, &c, g_path, g_err, sizeof g_err), PE_CONFIG);
	snprintf(want, sizeof want, "%s:2: NUL byte in line", g_path);
	assert_string_equal(g_err, want);
}

static void test_repeated_key(void **state)
{
	(void)state;
	expect_error("[link]\nwindow = 5\nflag = on\n[tls]\n[link]\nwindow = 6\n",
		     ":6: [link] window: repeated key, first set on line 2");
	/* A list key may repeat; a key set only by its default may be set once. */
	struct tcfg c;
	assert_int_equal(load_text("[domains]\ndomain = x\n[link]\n[domains]\ndomain = y\n", &c),
			 0);
	assert_int_equal(c.domains.n, 2);
	assert_string_equal(c.domains.v[1], "y");
	conf_free(T, NT, &c);
	expect_error("[domains]\ndomain =\n", ":2: [domains] domain: empty value");
	/* List values are length-bounded like strings. */
	char text[400];
	memset(text, 'd', sizeof text);
	memcpy(text, "[domains]\ndomain = a\ndomain = ", 30);
	text[30 + 254] = '\n';
	text[30 + 255] = '\0';
	expect_error(text, ":3: [domains] domain: value is 254 bytes, above the maximum 253");
	text[30 + 253] = '\n';
	text[30 + 254] = '\0';
	assert_int_equal(load_text(text, &c), 0);
	assert_int_equal(c.domains.n, 2);
	assert_int_equal(strlen(c.domains.v[1]), 253);
	conf_free(T, NT, &c);
}

/* Lines longer than libinih's 200 bytes keep their full value and the line numbers stay
 * right; lines over CONF_MAX_LINE are an error naming the line. */
static void test_long_lines(void **state)
{
	(void)state;
	struct tcfg c;
	char *text = malloc(8192);
	char value[CONF_MAX_LINE + 1];

	assert_non_null(text);
	memset(value, 'v', 300);
	value[300] = '\0';
	snprintf(text, 8192, "[tls]\nsecret = %s\n[link]\nwindow = 5\n", value);
	assert_int_equal(load_text(text, &c), 0);
	assert_int_equal(strlen(c.secret), 300);
	assert_string_equal(c.secret, value);
	assert_int_equal(c.window, 5);
	conf_free(T, NT, &c);

	snprintf(text, 8192, "[tls]\nsecret = %s\n[link]\nwindow = 0\n", value);
	expect_error(text, ":4: [link] window: 0 is below the minimum 1");

	/* Exactly CONF_MAX_LINE bytes (plus CRLF) is accepted. */
	size_t vlen = CONF_MAX_LINE - strlen("secret = ");
	memset(value, 'w', vlen);
	value[vlen] = '\0';
	snprintf(text, 8192, "[tls]\nsecret = %s\r\nmode = Optional\n", value);
	assert_int_equal(load_text(text, &c), 0);
	assert_int_equal(strlen(c.secret), vlen);
	assert_int_equal(c.tls, 1);
	conf_free(T, NT, &c);

	/* One byte more is refused, with or without a final newline. */
	snprintf(text, 8192, "[tls]\nsecret = %sw\nmode = Optional\n", value);
	expect_error(text, ":2: line longer than 4096 bytes");
	snprintf(text, 8192, "[tls]\nsecret = %sw", value);
	expect_error(text, ":2: line longer than 4096 bytes");

	memset(text, 'x', 8192);
	memcpy(text, "[tls]\nsecret = ", 15);
	text[5000] = '\n';
	text[5001] = '\0';
	expect_error(text, ":2: line longer than 4096 bytes");
	free(text);
}

static void test_relative_paths(void **state)
{
	(void)state;
	char sub[PATH_MAX + 8], path[PATH_MAX + 16], want[PATH_MAX + 64], rel[PATH_MAX + 16];
	struct tcfg c;
	static const char text[] = "[tls]\ncert = certs/a.pem\n";

	snprintf(sub, sizeof sub, "%s/sub", g_dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	snprintf(path, sizeof path, "%s/p.conf", sub);
	write_file(path, text, sizeof text - 1);
	assert_int_equal(conf_load(T, NT, &c, path, g_err, sizeof g_err), 0);
	snprintf(want, sizeof want, "%s/certs/a.pem", sub);
	assert_string_equal(c.cert, want);
	conf_free(T, NT, &c);

	/* A relative config path still yields an absolute, chdir-proof result. */
	char cwd[PATH_MAX];
	assert_non_null(getcwd(cwd, sizeof cwd));
	assert_int_equal(chdir(g_dir), 0);
	snprintf(rel, sizeof rel, "sub/p.conf");
	assert_int_equal(conf_load(T, NT, &c, rel, g_err, sizeof g_err), 0);
	assert_int_equal(chdir(cwd), 0);
	assert_string_equal(c.cert, want);
	conf_free(T, NT, &c);
}

static void test_required(void **state)
{
	(void)state;
	struct rcfg c;
	char want[PATH_MAX + 64];
	static const char only_n[] = "n = 1\n";
	static const char both[] = "n = 2\n[tls]\ncert = /c.pem\n";

	write_file(g_path, only_n, sizeof only_n - 1);
	assert_int_equal(conf_load(R, 2, &c, g_path, g_err, sizeof g_err), PE_CONFIG);
	snprintf(want, sizeof want, "%s: missing required key 'cert' in section [tls]", g_path);
	assert_string_equal(g_err, want);

	write_file(g_path, "", 0);
	assert_int_equal(conf_load(R, 2, &c, g_path, g_err, sizeof g_err), PE_CONFIG);
	snprintf(want, sizeof want, "%s: missing required key 'cert' in section [tls]", g_path);
	assert_string_equal(g_err, want);

	write_file(g_path, both, sizeof both - 1);
	assert_int_equal(conf_load(R, 2, &c, g_path, g_err, sizeof g_err), 0);
	assert_string_equal(c.cert, "/c.pem");
	assert_int_equal(c.n, 2);
	conf_free(R, 2, &c);
}

static void test_open_error_and_small_err(void **state)
{
	(void)state;
	struct tcfg c;
	char want[PATH_MAX + 64], tiny[8];
	char missing[PATH_MAX + 16];

	snprintf(missing, sizeof missing, "%s/nope.conf", g_dir);
	assert_int_equal(conf_load(T, NT, &c, missing, g_err, sizeof g_err), PE_CONFIG);
	snprintf(want, sizeof want, "%s: cannot open: No such file or directory", missing);
	assert_string_equal(g_err, want);
	assert_null(c.level); /* defaults applied before the open are freed again */

	/* A short error buffer is truncated, never overrun. */
	assert_int_equal(conf_load(T, NT, &c, missing, tiny, sizeof tiny), PE_CONFIG);
	snprintf(want, sizeof want, "%.*s", (int)sizeof tiny - 1, missing);
	assert_string_equal(tiny, want);
	assert_int_equal(conf_load(T, NT, &c, missing, NULL, 0), PE_CONFIG);
}

static void test_bad_default(void **state)
{
	(void)state;
	struct {
		uint64_t u;
	} c;
	static const struct conf_option B[] = {
	    {.section = "s",
	     .name = "u",
	     .type = CONF_UINT,
	     .min = 1,
	     .max = 10,
	     .def = "11",
	     .offset = 0},
	};
	char want[PATH_MAX + 64];
	write_file(g_path, "", 0);
	assert_int_equal(conf_load(B, 1, &c, g_path, g_err, sizeof g_err), PE_CONFIG);
	snprintf(want, sizeof want,
		 "%s: bad built-in default for [s] u: 11 is above the maximum 10", g_path);
	assert_string_equal(g_err, want);
}

static void test_diff_nonreloadable(void **state)
{
	(void)state;
	struct tcfg a, b;
	char err[256];
	char *text_a = "[link]\nwindow = 10\noffset = 1\n[domains]\ndomain = x\n";

	assert_int_equal(load_text(text_a, &a), 0);
	/* Identical: no difference. */
	assert_int_equal(load_text(text_a, &b), 0);
	assert_int_equal(conf_diff_nonreloadable(T, NT, &a, &b, err, sizeof err), 0);
	conf_free(T, NT, &b);

	/* Only reloadable options changed (window, timeout, level, mode, flag, deep). */
	assert_int_equal(load_text("level = debug\n[link]\nwindow = 99\noffset = 1\ntimeout = 1m\n"
				   "flag = on\n[tls]\nmode = Optional\n[domains]\ndomain = x\n",
				   &b),
			 0);
	assert_int_equal(conf_diff_nonreloadable(T, NT, &a, &b, err, sizeof err), 0);
	conf_free(T, NT, &b);

	/* A non-reloadable integer changed. */
	assert_int_equal(load_text("[link]\nwindow = 10\noffset = 2\n[domains]\ndomain = x\n", &b),
			 0);
	assert_int_equal(conf_diff_nonreloadable(T, NT, &a, &b, err, sizeof err), PE_CONFIG);
	assert_string_equal(err, "[link] offset cannot change on reload; restart to apply it");
	conf_free(T, NT, &b);

	/* A list grew. */
	assert_int_equal(
	    load_text("[link]\nwindow = 10\noffset = 1\n[domains]\ndomain = x\ndomain = y\n", &b),
	    0);
	assert_int_equal(conf_diff_nonreloadable(T, NT, &a, &b, err, sizeof err), PE_CONFIG);
	assert_string_equal(err, "[domains] domain cannot change on reload; restart to apply it");
	conf_free(T, NT, &b);

	/* A secret changed: the message does not carry the value. */
	assert_int_equal(load_text("[link]\nwindow = 10\noffset = 1\n[domains]\ndomain = x\n"
				   "[tls]\nsecret = hunter2\n",
				   &b),
			 0);
	assert_int_equal(conf_diff_nonreloadable(T, NT, &a, &b, err, sizeof err), PE_CONFIG);
	assert_string_equal(err, "[tls] secret cannot change on reload; restart to apply it");
	conf_free(T, NT, &b);

	/* host:port compares port and host. */
	assert_int_equal(load_text("[link]\nwindow = 10\noffset = 1\nlisten = 127.0.0.1:1\n"
				   "[domains]\ndomain = x\n",
				   &b),
			 0);
	assert_int_equal(conf_diff_nonreloadable(T, NT, &a, &b, err, sizeof err), PE_CONFIG);
	assert_string_equal(err, "[link] listen cannot change on reload; restart to apply it");
	conf_free(T, NT, &b);
	conf_free(T, NT, &a);
}

static void test_print_help(void **state)
{
	(void)state;
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	assert_non_null(f);
	conf_print_help(T, NT, f);
	assert_int_equal(fclose(f), 0);

	char want[512];
	snprintf(want, sizeof want, "%-12s %-28s %-9s %-12s %-16s %-6s %s\n", "link", "window",
		 "uint", "1000", "1..65536", "yes", "frames in flight");
	assert_non_null(strstr(out, want));
	snprintf(want, sizeof want, "%-12s %-28s %-9s %-12s %-16s %-6s %s\n", "link", "timeout",
		 "duration", "30s", "100ms..1h", "yes", "idle timeout");
	assert_non_null(strstr(out, want));
	snprintf(want, sizeof want, "%-12s %-28s %-9s %-12s %-16s %-6s %s\n", "tls", "mode", "enum",
		 "Required", "Required|Optional|NotSupported", "yes", "TLS negotiation");
	assert_non_null(strstr(out, want));
	snprintf(want, sizeof want, "%-12s %-28s %-9s %-12s %-16s %-6s %s\n", "domains", "domain",
		 "list", "default.example", "len 1..253", "no", "served domain (repeat)");
	assert_non_null(strstr(out, want));
	snprintf(want, sizeof want, "%-12s %-28s %-9s %-12s %-16s %-6s %s\n", "-", "level",
		 "string", "info", "-", "yes", "log level");
	assert_non_null(strstr(out, want));
	snprintf(want, sizeof want, "%-12s %-28s %-9s %-12s %-16s %-6s %s\n", "limits",
		 "max_stanza", "size", "256k", "1KiB..1GiB", "no", "largest stanza");
	assert_non_null(strstr(out, want));
	/* Header plus one line per option. */
	size_t lines = 0;
	for (char *p = out; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, NT + 1);
	free(out);

	f = open_memstream(&out, &len);
	conf_print_help(R, 2, f);
	fclose(f);
	snprintf(want, sizeof want, "%-12s %-28s %-9s %-12s %-16s %-6s %s\n", "tls", "cert", "path",
		 "(required)", "-", "no", "certificate");
	assert_non_null(strstr(out, want));
	free(out);
	assert_string_equal(conf_type_name(CONF_HOSTPORT), "host:port");
	assert_string_equal(conf_type_name((enum conf_type)99), "?");
}

/* Named sections: [peer "NAME"] occurs once per peer, each an item with its own defaults. */
struct titem {
	char *desc;
	uint64_t limit;
	int mode;
	bool flag;
	struct conf_strlist alias;
	char *must;
	char *cert;
};

struct mcfg {
	uint64_t window;
	struct conf_array peers;
	struct conf_array zones;
};

struct tzone {
	uint64_t ttl;
};

static const struct conf_option M[] = {
    {.section = "link",
     .name = "window",
     .type = CONF_UINT,
     .min = 1,
     .max = 100,
     .def = "10",
     .offset = offsetof(struct mcfg, window),
     .help = "plain key"},
};

#define IOFF(f) offsetof(struct titem, f)
static const struct conf_option PEER[] = {
    {.section = "ignored",
     .name = "desc",
     .type = CONF_STRING,
     .max = 20,
     .offset = IOFF(desc),
     .reloadable = true,
     .help = "free text"},
    {.name = "limit",
     .type = CONF_UINT,
     .max = 100,
     .def = "5",
     .offset = IOFF(limit),
     .help = "per-peer limit"},
    {.name = "mode",
     .type = CONF_ENUM,
     .def = "Optional",
     .offset = IOFF(mode),
     .enum_names = tls_modes,
     .reloadable = true,
     .help = "negotiation"},
    {.name = "flag",
     .type = CONF_BOOL,
     .def = "true",
     .offset = IOFF(flag),
     .reloadable = true,
     .help = "on by default"},
    {.name = "alias",
     .type = CONF_STRLIST,
     .min = 1,
     .max = 253,
     .def = "none",
     .offset = IOFF(alias),
     .reloadable = true,
     .help = "another name (repeat)"},
    {.name = "must",
     .type = CONF_STRING,
     .offset = IOFF(must),
     .reloadable = true,
     .required = true,
     .help = "required per item"},
    {.name = "cert",
     .type = CONF_PATH,
     .def = "peer.pem",
     .offset = IOFF(cert),
     .reloadable = true,
     .help = "relative to the file"},
};
#define NPEER (sizeof PEER / sizeof PEER[0])

static const struct conf_option ZONE[] = {
    {.name = "ttl",
     .type = CONF_DURATION_MS,
     .def = "1m",
     .offset = offsetof(struct tzone, ttl),
     .reloadable = true,
     .help = "time to live"},
};

static const struct conf_multi MM[] = {
    {.section = "peer",
     .table = PEER,
     .n = NPEER,
     .item_size = sizeof(struct titem),
     .offset = offsetof(struct mcfg, peers),
     .help = "one peer"},
    {.section = "zone",
     .table = ZONE,
     .n = 1,
     .item_size = sizeof(struct tzone),
     .offset = offsetof(struct mcfg, zones),
     .help = "one zone"},
};
#define NMM (sizeof MM / sizeof MM[0])

static int load_multi(const char *text, struct mcfg *c)
{
	write_file(g_path, text, strlen(text));
	memset(c, 0xa5, sizeof *c); /* conf_load_ex must zero the arrays itself */
	return conf_load_ex(M, 1, MM, NMM, c, g_path, g_err, sizeof g_err);
}

static struct titem *peer(struct mcfg *c, size_t i)
{
	assert_true(i < c->peers.n);
	return (struct titem *)c->peers.items + i;
}

#define expect_multi_error(text, msg) expect_multi_error_at((text), (msg), __FILE__, __LINE__)
static void expect_multi_error_at(const char *text, const char *msg_after_path, const char *file,
				  int line)
{
	struct mcfg c;
	char want[2048];
	int r = load_multi(text, &c);
	snprintf(want, sizeof want, "%s%s", g_path, msg_after_path);
	_assert_int_equal(cast_to_largest_integral_type(r),
			  cast_to_largest_integral_type(PE_CONFIG), file, line);
	_assert_string_equal(g_err, want, file, line);
	_assert_true(cast_to_largest_integral_type(c.peers.items == NULL && c.peers.n == 0 &&
						   c.peers.names == NULL && c.zones.n == 0 &&
						   c.zones.items == NULL),
		     "named sections freed and zeroed after an error", file, line);
}

static void test_multi_load(void **state)
{
	(void)state;
	struct mcfg c;
	char want[PATH_MAX + 64];
	const char *text = "[peer \"a.example\"]\n"
			   "must = x\n"
			   "[link]\n"
			   "window = 7\n"
			   "[ peer   \"b \\\"q\\\" \\\\ b\" ]\n"
			   "must = y\n"
			   "limit = 100\n"
			   "mode = NotSupported\n"
			   "flag = off\n"
			   "alias = b1\n"
			   "alias = b2\n"
			   "desc = \"  spaced  \"\n"
			   "cert = /abs.pem\n"
			   "[zone \"z\"]\n"
			   "ttl = 5s\n"
			   "[peer\"b\xc3\xbc\x63her.example\"]\n"
			   "must = z\n"
			   "limit = 0\n";
	assert_int_equal(load_multi(text, &c), 0);
	assert_int_equal(c.window, 7);
	assert_int_equal(c.peers.n, 3);
	assert_string_equal(c.peers.names[0], "a.example");
	assert_string_equal(c.peers.names[1], "b \"q\" \\ b");
	assert_string_equal(c.peers.names[2], "b\xc3\xbc"
					      "cher.example");

	/* Every item starts from the table's defaults. */
	struct titem *a = peer(&c, 0);
	assert_null(a->desc);
	assert_int_equal(a->limit, 5);
	assert_int_equal(a->mode, 1);
	assert_true(a->flag);
	assert_int_equal(a->alias.n, 1);
	assert_string_equal(a->alias.v[0], "none");
	assert_string_equal(a->must, "x");
	snprintf(want, sizeof want, "%s/peer.pem", g_dir);
	assert_string_equal(a->cert, want);

	struct titem *b = peer(&c, 1);
	assert_string_equal(b->desc, "  spaced  ");
	assert_int_equal(b->limit, 100);
	assert_int_equal(b->mode, 2);
	assert_false(b->flag);
	assert_int_equal(b->alias.n, 2); /* the file's list replaces the default, per item */
	assert_string_equal(b->alias.v[0], "b1");
	assert_string_equal(b->alias.v[1], "b2");
	assert_string_equal(b->must, "y");
	assert_string_equal(b->cert, "/abs.pem");

	struct titem *u = peer(&c, 2);
	assert_int_equal(u->limit, 0);
	assert_int_equal(u->mode, 1);
	assert_string_equal(u->alias.v[0], "none");

	assert_int_equal(c.zones.n, 1);
	assert_string_equal(c.zones.names[0], "z");
	assert_int_equal(((struct tzone *)c.zones.items)[0].ttl, 5000);

	conf_free_ex(M, 1, MM, NMM, &c);
	assert_null(c.peers.items);
	assert_null(c.peers.names);
	assert_int_equal(c.peers.n, 0);
	conf_free_ex(M, 1, MM, NMM, &c); /* twice is harmless */

	/* No named section at all: empty arrays. */
	assert_int_equal(load_multi("[link]\nwindow = 3\n", &c), 0);
	assert_int_equal(c.peers.n, 0);
	assert_null(c.peers.items);
	assert_int_equal(c.zones.n, 0);
	conf_free_ex(M, 1, MM, NMM, &c);
}

/* Enough items to grow the arrays many times; every one keeps its own values. */
static void test_multi_many(void **state)
{
	(void)state;
	enum { N = 1000 };
	size_t cap = (size_t)N * 64;
	char *text = malloc(cap), *p = text;
	struct mcfg c;
	assert_non_null(text);
	for (int i = 0; i < N; i++)
		p += snprintf(p, cap - (size_t)(p - text),
			      "[peer \"p%d\"]\nmust = m%d\nlimit = %d\n", i, i, i % 101);
	assert_int_equal(load_multi(text, &c), 0);
	assert_int_equal(c.peers.n, N);
	for (int i = 0; i < N; i++) {
		char want[32];
		snprintf(want, sizeof want, "p%d", i);
		assert_string_equal(c.peers.names[i], want);
		snprintf(want, sizeof want, "m%d", i);
		assert_string_equal(peer(&c, (size_t)i)->must, want);
		assert_int_equal(peer(&c, (size_t)i)->limit, i % 101);
	}
	conf_free_ex(M, 1, MM, NMM, &c);
	free(text);
}

static void test_multi_errors(void **state)
{
	(void)state;
	expect_multi_error("[peer \"x\"]\nmust = 1\nlimit = 101\n",
			   ":3: [peer \"x\"] limit: 101 is above the maximum 100");
	expect_multi_error("[peer \"x\"]\nmust = 1\nfoo = 1\n",
			   ":3: unknown key 'foo' in section [peer \"x\"]");
	/* The table's .section is ignored: window belongs to [link] only. */
	expect_multi_error("[peer \"x\"]\nwindow = 1\n",
			   ":2: unknown key 'window' in section [peer \"x\"]");
	expect_multi_error("[peer \"x\"]\nmust = 1\nlimit = 1\nlimit = 2\n",
			   ":4: [peer \"x\"] limit: repeated key, first set on line 3");
	expect_multi_error("[peer \"x\"]\nmust = 1\n[link]\nwindow = 2\n[peer \"y\"]\nmust = 2\n"
			   "[peer \"x\"]\nmust = 3\n",
			   ":7: [peer \"x\"]: repeated section, first on line 1");
	expect_multi_error("[peer \"\"]\n", ":1: [peer \"\"]: empty name");
	expect_multi_error("[peer \"a\tb\"]\n",
			   ":1: [peer \"a\\x09b\"]: control character in the name");
	expect_multi_error("[peer \"a\x7f\"]\n",
			   ":1: [peer \"a\\x7f\"]: control character in the name");
	expect_multi_error("[peer]\nmust = 1\n",
			   ":1: section [peer] needs a name, as in [peer \"NAME\"]");
	expect_multi_error("[link \"x\"]\n", ":1: section [link] takes no name");
	expect_multi_error("[nosuch \"x\"]\n", ":1: unknown section [nosuch]");
	expect_multi_error("[peer \"x]\n", ":1: section [peer]: name: missing closing quote");
	expect_multi_error("[peer \"x\" y]\n",
			   ":1: section [peer]: name: text after the closing quote");
	expect_multi_error("[\"x\"]\n", ":1: missing section before the quoted name");
	expect_multi_error("[bad word \"x\"]\n", ":1: invalid section name [bad word]");
	/* A missing required key names the item's header line. */
	expect_multi_error("[peer \"a\"]\nmust = 1\n[peer \"b\"]\nlimit = 1\n[zone \"z\"]\n",
			   ":3: [peer \"b\"] must: missing required key");
	/* Names are escaped in messages. */
	expect_multi_error(
	    "[peer \"q\\\"\xc3\xbc\"]\nmust = 1\nlimit = x\n",
	    ":3: [peer \"q\\x22\\xc3\\xbc\"] limit: 'x' is not a non-negative integer");

	/* Names are at most 253 bytes. */
	char text[400], want[PATH_MAX + 64];
	memset(text, 0, sizeof text);
	memcpy(text, "[peer \"", 7);
	memset(text + 7, 'n', 253);
	memcpy(text + 7 + 253, "\"]\nmust = 1\n", 12);
	struct mcfg c;
	assert_int_equal(load_multi(text, &c), 0);
	assert_int_equal(strlen(c.peers.names[0]), 253);
	conf_free_ex(M, 1, MM, NMM, &c);
	memcpy(text + 7 + 253, "n\"]\nmust = 1\n", 13);
	assert_int_equal(load_multi(text, &c), PE_CONFIG);
	snprintf(want, sizeof want, "%s:1: [peer \"", g_path);
	assert_memory_equal(g_err, want, strlen(want));
	assert_non_null(strstr(g_err, "...\"]: the name is 254 bytes, above the maximum 253"));
	assert_int_equal(c.peers.n, 0);
}

static void test_multi_bad_default(void **state)
{
	(void)state;
	struct {
		struct conf_array a;
	} c;
	static const struct conf_option B[] = {
	    {.name = "u", .type = CONF_UINT, .min = 1, .max = 10, .def = "0"},
	};
	static const struct conf_multi BM[] = {
	    {.section = "s", .table = B, .n = 1, .item_size = sizeof(uint64_t), .offset = 0},
	};
	char want[PATH_MAX + 64];
	/* Reported even though the file has no [s "..."] section. */
	write_file(g_path, "", 0);
	assert_int_equal(conf_load_ex(NULL, 0, BM, 1, &c, g_path, g_err, sizeof g_err), PE_CONFIG);
	snprintf(want, sizeof want, "%s: bad built-in default for [s] u: 0 is below the minimum 1",
		 g_path);
	assert_string_equal(g_err, want);
	assert_int_equal(c.a.n, 0);
}

static void test_multi_diff(void **state)
{
	(void)state;
	struct mcfg a, b;
	char err[512];
	const char *base = "[peer \"p\"]\nmust = 1\n[peer \"q\"]\nmust = 2\nlimit = 3\n"
			   "[zone \"z\"]\n";

	assert_int_equal(load_multi(base, &a), 0);

	/* Reloadable rows change, items are reordered, zones (all reloadable) come and go. */
	assert_int_equal(load_multi("[zone \"y\"]\n[zone \"x\"]\nttl = 1s\n[peer \"q\"]\n"
				    "must = 9\nlimit = 3\ndesc = new\nmode = Required\n"
				    "[peer \"p\"]\nmust = 1\nflag = no\nalias = a\n",
				    &b),
			 0);
	assert_int_equal(conf_diff_nonreloadable_ex(M, 1, MM, NMM, &a, &b, err, sizeof err), 0);
	conf_free_ex(M, 1, MM, NMM, &b);

	/* A peer added, or removed. */
	assert_int_equal(load_multi("[peer \"p\"]\nmust = 1\n[peer \"q\"]\nmust = 2\nlimit = 3\n"
				    "[peer \"r\"]\nmust = 3\n",
				    &b),
			 0);
	assert_int_equal(conf_diff_nonreloadable_ex(M, 1, MM, NMM, &a, &b, err, sizeof err),
			 PE_CONFIG);
	assert_string_equal(
	    err, "[peer \"r\"] cannot be added or removed on reload; restart to apply it");
	conf_free_ex(M, 1, MM, NMM, &b);
	assert_int_equal(load_multi("[peer \"q\"]\nmust = 2\nlimit = 3\n", &b), 0);
	assert_int_equal(conf_diff_nonreloadable_ex(M, 1, MM, NMM, &a, &b, err, sizeof err),
			 PE_CONFIG);
	assert_string_equal(
	    err, "[peer \"p\"] cannot be added or removed on reload; restart to apply it");
	conf_free_ex(M, 1, MM, NMM, &b);

	/* A non-reloadable row of one item changed. */
	assert_int_equal(
	    load_multi("[peer \"p\"]\nmust = 1\n[peer \"q\"]\nmust = 2\nlimit = 4\n", &b), 0);
	assert_int_equal(conf_diff_nonreloadable_ex(M, 1, MM, NMM, &a, &b, err, sizeof err),
			 PE_CONFIG);
	assert_string_equal(err, "[peer \"q\"] limit cannot change on reload; restart to apply it");
	conf_free_ex(M, 1, MM, NMM, &b);

	/* Plain rows are still compared. */
	assert_int_equal(load_multi("[link]\nwindow = 11\n[peer \"p\"]\nmust = 1\n[peer \"q\"]\n"
				    "must = 2\nlimit = 3\n",
				    &b),
			 0);
	assert_int_equal(conf_diff_nonreloadable_ex(M, 1, MM, NMM, &a, &b, err, sizeof err),
			 PE_CONFIG);
	assert_string_equal(err, "[link] window cannot change on reload; restart to apply it");
	conf_free_ex(M, 1, MM, NMM, &b);
	conf_free_ex(M, 1, MM, NMM, &a);
}

static void test_multi_help(void **state)
{
	(void)state;
	char *out = NULL;
	size_t len = 0;
	char want[512];
	FILE *f = open_memstream(&out, &len);
	assert_non_null(f);
	conf_print_help_ex(M, 1, MM, NMM, f);
	assert_int_equal(fclose(f), 0);

	snprintf(want, sizeof want, "%-12s %-28s %-9s %-12s %-16s %-6s %s\n", "link", "window",
		 "uint", "10", "1..100", "no", "plain key");
	assert_non_null(strstr(out, want));
	snprintf(want, sizeof want, "%-12s (repeatable section [peer \"NAME\"]) one peer\n",
		 "peer \"*\"");
	assert_non_null(strstr(out, want));
	snprintf(want, sizeof want, "%-12s %-28s %-9s %-12s %-16s %-6s %s\n", "peer \"*\"", "limit",
		 "uint", "5", "0..100", "no", "per-peer limit");
	assert_non_null(strstr(out, want));
	snprintf(want, sizeof want, "%-12s %-28s %-9s %-12s %-16s %-6s %s\n", "peer \"*\"", "must",
		 "string", "(required)", "-", "yes", "required per item");
	assert_non_null(strstr(out, want));
	snprintf(want, sizeof want, "%-12s %-28s %-9s %-12s %-16s %-6s %s\n", "zone \"*\"", "ttl",
		 "duration", "1m", "-", "yes", "time to live");
	assert_non_null(strstr(out, want));
	/* Header, one plain row, and per named section its line and its rows. */
	size_t lines = 0;
	for (char *p = out; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, 1 + 1 + (1 + NPEER) + (1 + 1));
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_every_type),
	    cmocka_unit_test(test_bool_values),
	    cmocka_unit_test(test_durations),
	    cmocka_unit_test(test_sizes),
	    cmocka_unit_test(test_numbers),
	    cmocka_unit_test(test_strings_and_enums),
	    cmocka_unit_test(test_hostport),
	    cmocka_unit_test(test_unknown_and_syntax),
	    cmocka_unit_test(test_nul_byte),
	    cmocka_unit_test(test_repeated_key),
	    cmocka_unit_test(test_long_lines),
	    cmocka_unit_test(test_relative_paths),
	    cmocka_unit_test(test_required),
	    cmocka_unit_test(test_open_error_and_small_err),
	    cmocka_unit_test(test_bad_default),
	    cmocka_unit_test(test_diff_nonreloadable),
	    cmocka_unit_test(test_print_help),
	    cmocka_unit_test(test_multi_load),
	    cmocka_unit_test(test_multi_many),
	    cmocka_unit_test(test_multi_errors),
	    cmocka_unit_test(test_multi_bad_default),
	    cmocka_unit_test(test_multi_diff),
	    cmocka_unit_test(test_multi_help),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
