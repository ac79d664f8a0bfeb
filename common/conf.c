/* Configuration loader: inih drives the parse; our line reader owns lengths, lines, values.
 *
 * Debian builds libinih with a 200-byte stack line buffer: a longer line is cut, and the rest
 * is parsed as a line of its own, so values would be silently truncated and line numbers
 * shifted. Its handler also gets no line number. So inih never sees a raw line: our reader
 * reads one physical line (up to CONF_MAX_LINE), keeps it, records its number, stashes the
 * trimmed value in the context and hands inih a short normalised line ("[section]" or
 * "key="). The handler then takes the value from the context, where it is never truncated.
 * inih also truncates section names to 50 bytes, so the section is tracked here as well.
 *
 * A named section ([partner "a.example"]) reaches inih as its bare word; which item the
 * following keys fill is tracked here, like the section itself. */
#include "conf.h"

#include "err.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Where the items of one named section were defined, parallel to its struct conf_array. */
struct conf__items {
	size_t cap;	/* items allocated in the conf_array and here */
	int *header;	/* per item: line of its [section "NAME"] */
	int **set_line; /* per item: per row of the multi's table, the line that set it */
};

struct conf__ctx {
	const struct conf_option *table;
	size_t n;
	const struct conf_multi *multi;
	size_t nmulti;
	struct conf__items *items; /* per multi */
	void *out;
	const char *path;
	char *dir; /* absolute directory of the file, for CONF_PATH */
	FILE *f;
	int lineno;		      /* number of the line last handed to inih */
	int *set_line;		      /* per option: line that set it, 0 = not set by the file */
	const char *section;	      /* the current section's word */
	const struct conf_multi *cur; /* the named section being read, or NULL */
	char *value;		      /* the current key's value, inside line[] */
	char *err;
	size_t errlen;
	bool failed;
	char section_buf[CONF_MAX_LINE + 1];
	char secdisp[CONF_MAX_LINE + 4 * CONF_MAX_SECTION_NAME + 8]; /* cur's `word "NAME"` */
	char line[CONF_MAX_LINE + 2];
};

static const char *const conf__type_names[] = {
#define CONF__NAME(name, kw, desc) kw,
    CONF_TYPE_MAP(CONF__NAME)
#undef CONF__NAME
};

const char *conf_type_name(enum conf_type type)
{
	if ((unsigned)type < sizeof conf__type_names / sizeof conf__type_names[0])
		return conf__type_names[type];
	return "?";
}

/* Configuration strings are small control allocations: failing them ends the process. */
static void *conf__xalloc(void *p)
{
	if (!p) {
		fputs("parley: out of memory while loading configuration\n", stderr);
		abort();
	}
	return p;
}

static char *conf__xstrdup(const char *s)
{
	return conf__xalloc(strdup(s));
}

static void *conf__field(const struct conf_option *o, const void *cfg)
{
	return (char *)cfg + o->offset;
}

static struct conf_array *conf__array(const struct conf_multi *m, const void *cfg)
{
	return (struct conf_array *)((char *)cfg + m->offset);
}

static void *conf__item(const struct conf_multi *m, const struct conf_array *a, size_t i)
{
	return (char *)a->items + i * m->item_size;
}

/* Writes "[section] key" or "key" for messages; section is a plain section's word or a
 * named section's display form. */
static const char *conf__optname(const char *section, const char *key, char *dst, size_t cap)
{
	if (section[0])
		snprintf(dst, cap, "[%s] %s", section, key);
	else
		snprintf(dst, cap, "%s", key);
	return dst;
}

/* Writes a named section as messages show it: word "NAME", the name escaped and bounded
 * to about cap bytes in all. */
static const char *conf__secname(const char *word, const char *name, size_t len, char *dst,
				 size_t cap)
{
	char esc[4 * CONF_MAX_SECTION_NAME + 8];
	size_t wl = strlen(word) + 3;
	size_t ecap = cap > wl + 8 ? cap - wl : 8;
	snprintf(dst, cap, "%s \"%s\"", word,
		 log_escape(esc, ecap < sizeof esc ? ecap : sizeof esc, name, len));
	return dst;
}

/* Records the first error only: later ones are usually consequences of it. */
__attribute__((format(printf, 3, 4))) static void conf__fail(struct conf__ctx *c, int line,
							     const char *fmt, ...)
{
	va_list ap;
	int r;

	if (c->failed)
		return;
	c->failed = true;
	if (!c->err || c->errlen == 0)
		return;
	if (line > 0)
		r = snprintf(c->err, c->errlen, "%s:%d: ", c->path, line);
	else
		r = snprintf(c->err, c->errlen, "%s: ", c->path);
	if (r < 0 || (size_t)r >= c->errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(c->err + r, c->errlen - (size_t)r, fmt, ap);
	va_end(ap);
}

static char *conf__trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	return s;
}

static bool conf__valid_name(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.'))
			return false;
	}
	return true;
}

static bool conf__known_section(const struct conf__ctx *c, const char *name)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->table[i].section, name) == 0)
			return true;
	return false;
}

static const struct conf_multi *conf__find_multi(const struct conf__ctx *c, const char *name)
{
	for (size_t i = 0; i < c->nmulti; i++)
		if (strcmp(c->multi[i].section, name) == 0)
			return &c->multi[i];
	return NULL;
}

/* Reads one physical line into c->line without its "\n" or "\r\n".
 * Returns 1 for a line, 0 at end of file, -1 after recording an error. */
static int conf__read_line(struct conf__ctx *c)
{
	size_t n = 0;
	bool any = false;
	int ch;

	while ((ch = getc(c->f)) != EOF) {
		if (!any) {
			any = true;
			c->lineno++;
		}
		if (ch == '\n')
			break;
		if (ch == '\0') {
			conf__fail(c, c->lineno, "NUL byte in line");
			return -1;
		}
		if (n == CONF_MAX_LINE + 1) { /* one spare byte for a '\r' */
			conf__fail(c, c->lineno, "line longer than %d bytes", CONF_MAX_LINE);
			return -1;
		}
		c->line[n++] = (char)ch;
	}
	if (ferror(c->f)) {
		conf__fail(c, c->lineno + (any ? 0 : 1), "read error: %s", strerror(errno));
		return -1;
	}
	if (!any)
		return 0;
	if (n && c->line[n - 1] == '\r')
		n--;
	if (n > CONF_MAX_LINE) {
		conf__fail(c, c->lineno, "line longer than %d bytes", CONF_MAX_LINE);
		return -1;
	}
	c->line[n] = '\0';
	return 1;
}

static void conf__item_new(struct conf__ctx *c, const struct conf_multi *m, const char *name,
			   int line);
static int conf__unquote(char *v, char *why, size_t whylen);

/* Checks a named section's name (already unquoted, len bytes). Returns 0 or -1 (recorded). */
static int conf__check_section_name(struct conf__ctx *c, const char *word, const char *name,
				    size_t len)
{
	char disp[160];
	const struct conf_array *a = conf__array(c->cur, c->out);
	const struct conf__items *it = &c->items[c->cur - c->multi];

	conf__secname(word, name, len, disp, sizeof disp);
	if (len == 0) {
		conf__fail(c, c->lineno, "[%s]: empty name", disp);
		return -1;
	}
	if (len > CONF_MAX_SECTION_NAME) {
		conf__fail(c, c->lineno, "[%s]: the name is %zu bytes, above the maximum %d", disp,
			   len, CONF_MAX_SECTION_NAME);
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)name[i];
		if (ch < 0x20 || ch == 0x7f) {
			conf__fail(c, c->lineno, "[%s]: control character in the name", disp);
			return -1;
		}
	}
	for (size_t i = 0; i < a->n; i++) {
		if (strcmp(a->names[i], name) == 0) {
			conf__fail(c, c->lineno, "[%s]: repeated section, first on line %d", disp,
				   it->header[i]);
			return -1;
		}
	}
	return 0;
}

/* Handles the text between '[' and ']' of a header line: "word" for a plain section or
 * word "NAME" for a named one. Writes inih's normalised line to str and returns it, or
 * returns NULL after recording an error. */
static char *conf__header(struct conf__ctx *c, char *inner, char *str, int num)
{
	char esc[80];
	char *q = strchr(inner, '"');
	size_t wl = q ? (size_t)(q - inner) : strlen(inner);

	while (wl && (inner[wl - 1] == ' ' || inner[wl - 1] == '\t'))
		wl--;
	if (q && wl == 0) {
		conf__fail(c, c->lineno, "missing section before the quoted name");
		return NULL;
	}
	if (!conf__valid_name(inner, wl)) {
		conf__fail(c, c->lineno, "invalid section name [%s]",
			   log_escape(esc, sizeof esc, inner, q ? wl : strlen(inner)));
		return NULL;
	}
	memcpy(c->section_buf, inner, wl);
	c->section_buf[wl] = '\0';
	const char *word = c->section_buf;
	const struct conf_multi *m = conf__find_multi(c, word);
	bool plain = conf__known_section(c, word);

	if (!q && !plain && m) {
		conf__fail(c, c->lineno, "section [%s] needs a name, as in [%s \"NAME\"]", word,
			   word);
		return NULL;
	}
	if (q && !m && plain) {
		conf__fail(c, c->lineno, "section [%s] takes no name", word);
		return NULL;
	}
	if (q ? !m : !plain) {
		conf__fail(c, c->lineno, "unknown section [%s]", word);
		return NULL;
	}
	if (wl + 4 > (size_t)num) {
		conf__fail(c, c->lineno, "section name longer than %d bytes", num - 4);
		return NULL;
	}
	c->cur = NULL;
	if (q) {
		char why[128];
		if (conf__unquote(q, why, sizeof why) < 0) {
			conf__fail(c, c->lineno, "section [%s]: name: %s", word, why);
			return NULL;
		}
		c->cur = m;
		if (conf__check_section_name(c, word, q, strlen(q)) < 0)
			return NULL;
		conf__secname(word, q, strlen(q), c->secdisp, sizeof c->secdisp);
		conf__item_new(c, m, q, c->lineno);
		if (c->failed)
			return NULL;
	}
	c->section = word;
	snprintf(str, (size_t)num, "[%s]\n", word);
	return str;
}

/* inih's fgets-style reader. Returns NULL at end of file and after an error, which ends
 * the parse; comments and blank lines come back as "\n" so inih's count stays ours. */
static char *conf__reader(char *str, int num, void *stream)
{
	struct conf__ctx *c = stream;
	char *s;

	if (c->failed)
		return NULL;
	if (num < 8) { /* never with a sane inih; fail rather than read nothing */
		conf__fail(c, c->lineno + 1, "inih line buffer of %d bytes is too small", num);
		return NULL;
	}
	int r = conf__read_line(c);
	if (r <= 0)
		return NULL;
	s = c->line;
	if (c->lineno == 1 && strncmp(s, "\xef\xbb\xbf", 3) == 0)
		s += 3;
	s = conf__trim(s);
	c->value = NULL;
	if (*s == '\0' || *s == ';' || *s == '#') {
		memcpy(str, "\n", 2);
		return str;
	}
	if (*s == '[') {
		size_t len = strlen(s);
		if (s[len - 1] != ']') {
			conf__fail(c, c->lineno, "expected ']' at the end of a section header");
			return NULL;
		}
		s[len - 1] = '\0';
		return conf__header(c, conf__trim(s + 1), str, num);
	}
	char *eq = strchr(s, '=');
	if (!eq) {
		conf__fail(c, c->lineno, "expected 'key = value'");
		return NULL;
	}
	*eq = '\0';
	char *key = conf__trim(s);
	if (!conf__valid_name(key, strlen(key))) {
		char esc[80];
		if (*key)
			conf__fail(c, c->lineno, "invalid key name '%s'",
				   log_escape(esc, sizeof esc, key, strlen(key)));
		else
			conf__fail(c, c->lineno, "missing key before '='");
		return NULL;
	}
	if (strlen(key) + 3 > (size_t)num) {
		conf__fail(c, c->lineno, "key longer than %d bytes", num - 3);
		return NULL;
	}
	c->value = conf__trim(eq + 1);
	snprintf(str, (size_t)num, "%s=\n", key);
	return str;
}

/* Strips one level of double quotes in place, resolving \" and \\. Returns 0 or -1. */
static int conf__unquote(char *v, char *why, size_t whylen)
{
	if (v[0] != '"')
		return 0;
	size_t len = strlen(v);
	char *o = v;
	for (size_t i = 1; i < len; i++) {
		if (v[i] == '\\') {
			if (i + 1 < len && (v[i + 1] == '"' || v[i + 1] == '\\')) {
				*o++ = v[++i];
				continue;
			}
			snprintf(why, whylen,
				 "only \\\" and \\\\ may be escaped in a quoted value");
			return -1;
		}
		if (v[i] == '"') {
			if (i != len - 1) {
				snprintf(why, whylen, "text after the closing quote");
				return -1;
			}
			*o = '\0';
			return 0;
		}
		*o++ = v[i];
	}
	snprintf(why, whylen, "missing closing quote");
	return -1;
}

/* Parses decimal digits into *out; returns the first byte after them, or NULL on no digits
 * or overflow. */
static const char *conf__digits(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	const char *p = s;
	while (*p >= '0' && *p <= '9') {
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return NULL;
		v = v * 10 + d;
		p++;
	}
	if (p == s)
		return NULL;
	*out = v;
	return p;
}

static const char *conf__skip_space(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

static int conf__parse_duration(const char *s, uint64_t *out)
{
	static const struct {
		const char *unit;
		uint64_t ms;
	} units[] = {{"", 1000},       {"ms", 1},	   {"s", 1000},
		     {"m", 60 * 1000}, {"h", 3600 * 1000}, {"d", 86400 * 1000}};
	uint64_t v;
	const char *p = conf__digits(s, &v);
	if (!p)
		return -1;
	p = conf__skip_space(p);
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (strcmp(p, units[i].unit) == 0) {
			if (v > UINT64_MAX / units[i].ms)
				return -1;
			*out = v * units[i].ms;
			return 0;
		}
	}
	return -1;
}

static int conf__parse_size(const char *s, uint64_t *out)
{
	/* Decimal units (KB, MB) are refused rather than guessed at. */
	static const struct {
		const char *unit;
		unsigned shift;
	} units[] = {{"", 0},	  {"b", 0},  {"k", 10},	  {"kib", 10}, {"m", 20},
		     {"mib", 20}, {"g", 30}, {"gib", 30}, {"t", 40},   {"tib", 40}};
	uint64_t v;
	const char *p = conf__digits(s, &v);
	if (!p)
		return -1;
	p = conf__skip_space(p);
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (strcasecmp(p, units[i].unit) == 0) {
			if (v > (UINT64_MAX >> units[i].shift))
				return -1;
			*out = v << units[i].shift;
			return 0;
		}
	}
	return -1;
}

static int conf__parse_int(const char *s, int64_t *out)
{
	bool neg = false;
	uint64_t v;
	if (*s == '-' || *s == '+')
		neg = *s++ == '-';
	const char *p = conf__digits(s, &v);
	if (!p || *p)
		return -1;
	if (neg) {
		if (v > (uint64_t)INT64_MAX + 1)
			return -1;
		*out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
	} else {
		if (v > (uint64_t)INT64_MAX)
			return -1;
		*out = (int64_t)v;
	}
	return 0;
}

/* Renders a numeric value the way an operator would write it. */
static const char *conf__fmt_num(enum conf_type type, uint64_t v, char *dst, size_t cap)
{
	if (type == CONF_DURATION_MS && v) {
		static const struct {
			uint64_t ms;
			const char *unit;
		} u[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}, {1, "ms"}};
		for (size_t i = 0; i < sizeof u / sizeof u[0]; i++)
			if (v % u[i].ms == 0) {
				snprintf(dst, cap, "%llu%s", (unsigned long long)(v / u[i].ms),
					 u[i].unit);
				return dst;
			}
	}
	if (type == CONF_SIZE && v) {
		static const char *const u[] = {"TiB", "GiB", "MiB", "KiB"};
		for (unsigned i = 0; i < 4; i++) {
			unsigned shift = 40 - 10 * i;
			if (v % (UINT64_C(1) << shift) == 0) {
				snprintf(dst, cap, "%llu%s", (unsigned long long)(v >> shift),
					 u[i]);
				return dst;
			}
		}
	}
	snprintf(dst, cap, "%llu", (unsigned long long)v);
	return dst;
}

static bool conf__bounded(const struct conf_option *o)
{
	return o->min != 0 || o->max != 0;
}

static int conf__check_unsigned(const struct conf_option *o, uint64_t v, char *why, size_t whylen)
{
	char a[32], b[32];
	if (!conf__bounded(o))
		return 0;
	uint64_t min = o->min > 0 ? (uint64_t)o->min : 0;
	uint64_t max = o->max > 0 ? (uint64_t)o->max : 0;
	if (v < min) {
		snprintf(why, whylen, "%s is below the minimum %s",
			 conf__fmt_num(o->type, v, a, sizeof a),
			 conf__fmt_num(o->type, min, b, sizeof b));
		return -1;
	}
	if (v > max) {
		snprintf(why, whylen, "%s is above the maximum %s",
			 conf__fmt_num(o->type, v, a, sizeof a),
			 conf__fmt_num(o->type, max, b, sizeof b));
		return -1;
	}
	return 0;
}

/* Bounds of CONF_STRING and CONF_STRLIST apply to the length in bytes. */
static int conf__check_length(const struct conf_option *o, const char *v, char *why, size_t whylen)
{
	size_t len = strlen(v);
	if (conf__bounded(o) && (int64_t)len < o->min) {
		snprintf(why, whylen, "value is %zu bytes, below the minimum %lld", len,
			 (long long)o->min);
		return -1;
	}
	if (conf__bounded(o) && (int64_t)len > o->max) {
		snprintf(why, whylen, "value is %zu bytes, above the maximum %lld", len,
			 (long long)o->max);
		return -1;
	}
	return 0;
}

static int conf__parse_hostport(const struct conf_option *o, const char *s,
				struct conf_hostport *hp, char *why, size_t whylen)
{
	const char *host, *colon;
	size_t hostlen;

	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (!rb) {
			snprintf(why, whylen, "missing ']' after an IPv6 address");
			return -1;
		}
		host = s + 1;
		hostlen = (size_t)(rb - host);
		char a6[INET6_ADDRSTRLEN + 1];
		struct in6_addr in6;
		if (hostlen == 0 || hostlen >= sizeof a6) {
			snprintf(why, whylen, "'[...]' must hold an IPv6 address");
			return -1;
		}
		memcpy(a6, host, hostlen);
		a6[hostlen] = '\0';
		if (inet_pton(AF_INET6, a6, &in6) != 1) {
			snprintf(why, whylen, "'%s' is not an IPv6 address", a6);
			return -1;
		}
		if (rb[1] != ':') {
			snprintf(why, whylen, "missing port (use [v6]:port)");
			return -1;
		}
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon) {
			snprintf(why, whylen, "missing port (use host:port or [v6]:port)");
			return -1;
		}
		if (strchr(s, ':') != colon) {
			snprintf(why, whylen, "an IPv6 address needs brackets, as in [::1]:5269");
			return -1;
		}
		host = s;
		hostlen = (size_t)(colon - s);
		if (hostlen == 0) {
			snprintf(why, whylen, "missing host before ':'");
			return -1;
		}
		for (size_t i = 0; i < hostlen; i++) {
			if (host[i] == ' ' || host[i] == '\t') {
				snprintf(why, whylen, "space in host name");
				return -1;
			}
		}
	}
	uint64_t port;
	const char *p = conf__digits(colon + 1, &port);
	if (!p || *p || port > 65535) {
		snprintf(why, whylen, "port must be a number from 0 to 65535");
		return -1;
	}
	uint64_t min = conf__bounded(o) ? (uint64_t)(o->min > 0 ? o->min : 0) : 1;
	uint64_t max = conf__bounded(o) ? (uint64_t)(o->max > 0 ? o->max : 0) : 65535;
	if (port < min || port > max) {
		snprintf(why, whylen, "port %llu is outside %llu..%llu", (unsigned long long)port,
			 (unsigned long long)min, (unsigned long long)max);
		return -1;
	}
	free(hp->host);
	hp->host = conf__xalloc(strndup(host, hostlen));
	hp->port = (uint16_t)port;
	return 0;
}

/* Parses v (already unquoted) into the option's field of the struct at base. Returns 0, or
 * -1 with why set. */
static int conf__parse_value(struct conf__ctx *c, const struct conf_option *o, void *base,
			     const char *v, char *why, size_t whylen)
{
	void *field = conf__field(o, base);
	char esc[72];
#define ESC(s) log_escape(esc, sizeof esc, (s), strlen(s))

	if (*v == '\0' && o->type != CONF_STRING) {
		snprintf(why, whylen, "empty value");
		return -1;
	}
	switch (o->type) {
	case CONF_BOOL: {
		static const char *const yes[] = {"true", "yes", "on", "1"};
		static const char *const no[] = {"false", "no", "off", "0"};
		for (unsigned i = 0; i < 4; i++) {
			if (strcasecmp(v, yes[i]) == 0 || strcasecmp(v, no[i]) == 0) {
				*(bool *)field = strcasecmp(v, yes[i]) == 0;
				return 0;
			}
		}
		snprintf(why, whylen, "'%s' is not a boolean (use true or false)", ESC(v));
		return -1;
	}
	case CONF_INT: {
		int64_t x;
		if (conf__parse_int(v, &x) < 0) {
			snprintf(why, whylen, "'%s' is not an integer", ESC(v));
			return -1;
		}
		if (conf__bounded(o) && x < o->min) {
			snprintf(why, whylen, "%lld is below the minimum %lld", (long long)x,
				 (long long)o->min);
			return -1;
		}
		if (conf__bounded(o) && x > o->max) {
			snprintf(why, whylen, "%lld is above the maximum %lld", (long long)x,
				 (long long)o->max);
			return -1;
		}
		*(int64_t *)field = x;
		return 0;
	}
	case CONF_UINT:
	case CONF_DURATION_MS:
	case CONF_SIZE: {
		uint64_t x;
		int r;
		if (o->type == CONF_UINT) {
			const char *p = conf__digits(v, &x);
			r = p && !*p ? 0 : -1;
		} else if (o->type == CONF_DURATION_MS) {
			r = conf__parse_duration(v, &x);
		} else {
			r = conf__parse_size(v, &x);
		}
		if (r < 0) {
			static const char *const hint[] = {
			    [CONF_UINT] = "is not a non-negative integer",
			    [CONF_DURATION_MS] = "is not a duration (use e.g. 250ms, 30s, 5m, 2h)",
			    [CONF_SIZE] = "is not a size (use e.g. 512, 8k, 16MiB, 1G)",
			};
			snprintf(why, whylen, "'%s' %s", ESC(v), hint[o->type]);
			return -1;
		}
		if (conf__check_unsigned(o, x, why, whylen) < 0)
			return -1;
		*(uint64_t *)field = x;
		return 0;
	}
	case CONF_STRING: {
		if (conf__check_length(o, v, why, whylen) < 0)
			return -1;
		char **s = field;
		free(*s);
		*s = conf__xstrdup(v);
		return 0;
	}
	case CONF_PATH: {
		char **s = field;
		free(*s);
		if (v[0] == '/') {
			*s = conf__xstrdup(v);
		} else {
			size_t len = strlen(c->dir) + 1 + strlen(v) + 1;
			*s = conf__xalloc(malloc(len));
			snprintf(*s, len, "%s/%s", c->dir, v);
		}
		return 0;
	}
	case CONF_ENUM: {
		char names[200];
		size_t o_len = 0;
		if (!o->enum_names) {
			snprintf(why, whylen, "the option table gives no enum names");
			return -1;
		}
		for (int i = 0; o->enum_names[i]; i++) {
			if (strcasecmp(v, o->enum_names[i]) == 0) {
				*(int *)field = i;
				return 0;
			}
			int r = snprintf(names + o_len, sizeof names - o_len, "%s%s", i ? ", " : "",
					 o->enum_names[i]);
			if (r > 0 && o_len + (size_t)r < sizeof names)
				o_len += (size_t)r;
		}
		names[o_len] = '\0';
		snprintf(why, whylen, "'%s' is not one of: %s", ESC(v), names);
		return -1;
	}
	case CONF_STRLIST: {
		struct conf_strlist *l = field;
		if (conf__check_length(o, v, why, whylen) < 0)
			return -1;
		l->v = conf__xalloc(reallocarray(l->v, l->n + 1, sizeof *l->v));
		l->v[l->n++] = conf__xstrdup(v);
		return 0;
	}
	case CONF_HOSTPORT:
		return conf__parse_hostport(o, v, field, why, whylen);
	}
#undef ESC
	snprintf(why, whylen, "unknown option type %d", (int)o->type);
	return -1;
}

static void conf__free_field(const struct conf_option *o, void *cfg)
{
	void *field = conf__field(o, cfg);
	switch (o->type) {
	case CONF_STRING:
	case CONF_PATH:
		free(*(char **)field);
		*(char **)field = NULL;
		break;
	case CONF_STRLIST: {
		struct conf_strlist *l = field;
		for (size_t i = 0; i < l->n; i++)
			free(l->v[i]);
		free(l->v);
		l->v = NULL;
		l->n = 0;
		break;
	}
	case CONF_HOSTPORT: {
		struct conf_hostport *hp = field;
		free(hp->host);
		hp->host = NULL;
		hp->port = 0;
		break;
	}
	default:
		break;
	}
}

static void conf__zero_field(const struct conf_option *o, void *cfg)
{
	void *field = conf__field(o, cfg);
	switch (o->type) {
	case CONF_BOOL:
		*(bool *)field = false;
		break;
	case CONF_INT:
		*(int64_t *)field = 0;
		break;
	case CONF_UINT:
	case CONF_DURATION_MS:
	case CONF_SIZE:
		*(uint64_t *)field = 0;
		break;
	case CONF_STRING:
	case CONF_PATH:
		*(char **)field = NULL;
		break;
	case CONF_ENUM:
		*(int *)field = 0;
		break;
	case CONF_STRLIST:
		memset(field, 0, sizeof(struct conf_strlist));
		break;
	case CONF_HOSTPORT:
		memset(field, 0, sizeof(struct conf_hostport));
		break;
	}
}

/* Sets option o of the struct at base from text v found on line (0 for its default);
 * *set_line is the line that last set it. section names it in messages.
 * Returns 0 or -1 (recorded). */
static int conf__set(struct conf__ctx *c, const struct conf_option *o, void *base, int *set_line,
		     const char *section, char *v, int line)
{
	char name[sizeof c->secdisp + 64], why[512];

	conf__optname(section, o->name, name, sizeof name);
	if (line > 0) {
		if (o->type != CONF_STRLIST && *set_line) {
			conf__fail(c, line, "%s: repeated key, first set on line %d", name,
				   *set_line);
			return -1;
		}
		if (o->type == CONF_STRLIST && !*set_line)
			conf__free_field(o, base); /* the file replaces the default list */
		*set_line = line;
	}
	if (conf__unquote(v, why, sizeof why) < 0 ||
	    conf__parse_value(c, o, base, v, why, sizeof why) < 0) {
		if (line > 0)
			conf__fail(c, line, "%s: %s", name, why);
		else
			conf__fail(c, 0, "bad built-in default for %s: %s", name, why);
		return -1;
	}
	return 0;
}

static int conf__handler(void *user, const char *section, const char *name, const char *value)
{
	struct conf__ctx *c = user;
	(void)section; /* inih cuts section names at 50 bytes; ours is exact */
	(void)value;   /* always "" : the real value is c->value */

	if (c->failed || !c->value)
		return 0;
	if (c->cur) {
		const struct conf_multi *m = c->cur;
		struct conf_array *a = conf__array(m, c->out);
		int *set_line = c->items[m - c->multi].set_line[a->n - 1];
		for (size_t i = 0; i < m->n; i++) {
			if (strcmp(m->table[i].name, name) == 0)
				return conf__set(c, &m->table[i], conf__item(m, a, a->n - 1),
						 &set_line[i], c->secdisp, c->value,
						 c->lineno) == 0;
		}
		conf__fail(c, c->lineno, "unknown key '%s' in section [%s]", name, c->secdisp);
		return 0;
	}
	for (size_t i = 0; i < c->n; i++) {
		const struct conf_option *o = &c->table[i];
		if (strcmp(o->section, c->section) == 0 && strcmp(o->name, name) == 0)
			return conf__set(c, o, c->out, &c->set_line[i], o->section, c->value,
					 c->lineno) == 0;
	}
	if (c->section[0])
		conf__fail(c, c->lineno, "unknown key '%s' in section [%s]", name, c->section);
	else
		conf__fail(c, c->lineno, "unknown key '%s'", name);
	return 0;
}

/* Absolute directory of path, so that paths stay valid after a chdir (daemons chdir("/")). */
static char *conf__dir_of(const char *path)
{
	char *copy = conf__xstrdup(path);
	char *d = dirname(copy);
	char *abs = realpath(d, NULL);
	if (!abs)
		abs = conf__xstrdup(d);
	free(copy);
	return abs;
}

/* Sets the defaults of table[0..n) in the struct at base. Returns 0 or -1 (recorded). */
static int conf__defaults(struct conf__ctx *c, const struct conf_option *table, size_t n,
			  void *base, int *set_line, const char *section)
{
	for (size_t i = 0; i < n && !c->failed; i++) {
		if (table[i].def) {
			/* A default may be quoted, so give conf__unquote a writable copy. */
			char *def = conf__xstrdup(table[i].def);
			conf__set(c, &table[i], base, &set_line[i],
				  section ? section : table[i].section, def, 0);
			free(def);
		}
	}
	return c->failed ? -1 : 0;
}

/* Appends an item named name to m's array, zeroed and then given its defaults (checked
 * before the file was opened, so they cannot fail here). Items grow by doubling, so a
 * file with thousands of partners does not copy them thousands of times. */
static void conf__item_new(struct conf__ctx *c, const struct conf_multi *m, const char *name,
			   int line)
{
	struct conf_array *a = conf__array(m, c->out);
	struct conf__items *it = &c->items[m - c->multi];
	size_t i = a->n;

	if (i == it->cap) {
		size_t cap = it->cap ? 2 * it->cap : 4;
		a->items =
		    conf__xalloc(reallocarray(a->items, cap, m->item_size ? m->item_size : 1));
		a->names = conf__xalloc(reallocarray(a->names, cap, sizeof *a->names));
		it->header = conf__xalloc(reallocarray(it->header, cap, sizeof *it->header));
		it->set_line = conf__xalloc(reallocarray(it->set_line, cap, sizeof *it->set_line));
		it->cap = cap;
	}
	void *base = conf__item(m, a, i);
	memset(base, 0, m->item_size);
	for (size_t r = 0; r < m->n; r++)
		conf__zero_field(&m->table[r], base);
	a->names[i] = conf__xstrdup(name);
	it->header[i] = line;
	it->set_line[i] = conf__xalloc(calloc(m->n ? m->n : 1, sizeof(int)));
	a->n = i + 1;
	conf__defaults(c, m->table, m->n, base, it->set_line[i], c->secdisp);
}

/* Applies each named section's defaults to a scratch item, so that a bad built-in default
 * is reported even by a file that has no such section. */
static int conf__check_multi_defaults(struct conf__ctx *c)
{
	for (size_t k = 0; k < c->nmulti && !c->failed; k++) {
		const struct conf_multi *m = &c->multi[k];
		void *scratch = conf__xalloc(calloc(1, m->item_size ? m->item_size : 1));
		int *set_line = conf__xalloc(calloc(m->n ? m->n : 1, sizeof *set_line));
		conf__defaults(c, m->table, m->n, scratch, set_line, m->section);
		for (size_t r = 0; r < m->n; r++)
			conf__free_field(&m->table[r], scratch);
		free(set_line);
		free(scratch);
	}
	return c->failed ? -1 : 0;
}

static int conf__check_required(struct conf__ctx *c)
{
	for (size_t i = 0; i < c->n; i++) {
		const struct conf_option *o = &c->table[i];
		if (o->required && !c->set_line[i]) {
			if (o->section[0])
				conf__fail(c, 0, "missing required key '%s' in section [%s]",
					   o->name, o->section);
			else
				conf__fail(c, 0, "missing required key '%s'", o->name);
			return -1;
		}
	}
	for (size_t k = 0; k < c->nmulti; k++) {
		const struct conf_multi *m = &c->multi[k];
		const struct conf_array *a = conf__array(m, c->out);
		for (size_t i = 0; i < a->n; i++) {
			for (size_t r = 0; r < m->n; r++) {
				if (!m->table[r].required || c->items[k].set_line[i][r])
					continue;
				conf__secname(m->section, a->names[i], strlen(a->names[i]),
					      c->secdisp, sizeof c->secdisp);
				conf__fail(c, c->items[k].header[i],
					   "[%s] %s: missing required key", c->secdisp,
					   m->table[r].name);
				return -1;
			}
		}
	}
	return 0;
}

int conf_load(const struct conf_option *table, size_t n, void *out, const char *path, char *err,
	      size_t errlen)
{
	return conf_load_ex(table, n, NULL, 0, out, path, err, errlen);
}

/* text NULL: read the file at path; else read text, and path only names it in errors. */
static int conf__load(const struct conf_option *table, size_t n, const struct conf_multi *multi,
		      size_t nmulti, void *out, const char *path, const char *text, char *err,
		      size_t errlen)
{
	struct conf__ctx *c = conf__xalloc(calloc(1, sizeof *c));
	int ret = PE_CONFIG;

	c->table = table;
	c->n = n;
	c->multi = multi;
	c->nmulti = nmulti;
	c->out = out;
	c->path = path;
	c->err = err;
	c->errlen = errlen;
	c->section = "";
	c->set_line = conf__xalloc(calloc(n ? n : 1, sizeof *c->set_line));
	c->items = conf__xalloc(calloc(nmulti ? nmulti : 1, sizeof *c->items));
	if (err && errlen)
		err[0] = '\0';

	for (size_t i = 0; i < n; i++)
		conf__zero_field(&table[i], out);
	for (size_t k = 0; k < nmulti; k++)
		memset(conf__array(&multi[k], out), 0, sizeof(struct conf_array));
	c->dir = conf__dir_of(path);
	if (conf__defaults(c, table, n, out, c->set_line, NULL) < 0 ||
	    conf__check_multi_defaults(c) < 0)
		goto out;

	c->f = text ? fmemopen((void *)text, strlen(text), "r") : fopen(path, "r");
	if (!c->f) {
		conf__fail(c, 0, "cannot open: %s", strerror(errno));
		goto out;
	}
	int r = ini_parse_stream(conf__reader, c, conf__handler, c);
	if (c->failed)
		goto out;
	if (r != 0) {
		/* Our normalised lines should never upset inih; say so if they do. */
		conf__fail(c, r > 0 ? r : 0, "syntax error (inih returned %d)", r);
		goto out;
	}
	if (conf__check_required(c) < 0)
		goto out;
	ret = 0;
out:
	for (size_t k = 0; k < nmulti; k++) {
		const struct conf_array *a = conf__array(&multi[k], out);
		for (size_t i = 0; i < a->n; i++)
			free(c->items[k].set_line[i]);
		free(c->items[k].set_line);
		free(c->items[k].header);
	}
	if (ret != 0)
		conf_free_ex(table, n, multi, nmulti, out);
	if (c->f)
		fclose(c->f);
	free(c->items);
	free(c->dir);
	free(c->set_line);
	free(c);
	return ret;
}

int conf_load_ex(const struct conf_option *table, size_t n, const struct conf_multi *multi,
		 size_t nmulti, void *out, const char *path, char *err, size_t errlen)
{
	return conf__load(table, n, multi, nmulti, out, path, NULL, err, errlen);
}

int conf_load_ex_text(const struct conf_option *table, size_t n, const struct conf_multi *multi,
		      size_t nmulti, void *out, const char *name, const char *text, char *err,
		      size_t errlen)
{
	return conf__load(table, n, multi, nmulti, out, name, text, err, errlen);
}

void conf_free(const struct conf_option *table, size_t n, void *cfg)
{
	for (size_t i = 0; i < n; i++)
		conf__free_field(&table[i], cfg);
}

void conf_free_ex(const struct conf_option *table, size_t n, const struct conf_multi *multi,
		  size_t nmulti, void *cfg)
{
	conf_free(table, n, cfg);
	for (size_t k = 0; k < nmulti; k++) {
		const struct conf_multi *m = &multi[k];
		struct conf_array *a = conf__array(m, cfg);
		for (size_t i = 0; i < a->n; i++) {
			conf_free(m->table, m->n, conf__item(m, a, i));
			free(a->names[i]);
		}
		free(a->items);
		free(a->names);
		memset(a, 0, sizeof *a);
	}
}

static bool conf__str_eq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

static bool conf__equal(const struct conf_option *o, const void *a, const void *b)
{
	const void *fa = conf__field(o, a), *fb = conf__field(o, b);
	switch (o->type) {
	case CONF_BOOL:
		return *(const bool *)fa == *(const bool *)fb;
	case CONF_INT:
		return *(const int64_t *)fa == *(const int64_t *)fb;
	case CONF_UINT:
	case CONF_DURATION_MS:
	case CONF_SIZE:
		return *(const uint64_t *)fa == *(const uint64_t *)fb;
	case CONF_STRING:
	case CONF_PATH:
		return conf__str_eq(*(char *const *)fa, *(char *const *)fb);
	case CONF_ENUM:
		return *(const int *)fa == *(const int *)fb;
	case CONF_STRLIST: {
		const struct conf_strlist *la = fa, *lb = fb;
		if (la->n != lb->n)
			return false;
		for (size_t i = 0; i < la->n; i++)
			if (!conf__str_eq(la->v[i], lb->v[i]))
				return false;
		return true;
	}
	case CONF_HOSTPORT: {
		const struct conf_hostport *ha = fa, *hb = fb;
		return ha->port == hb->port && conf__str_eq(ha->host, hb->host);
	}
	}
	return false;
}

/* Compares the non-reloadable rows of two structs; section names them in the message
 * (NULL: each row's own section). */
static int conf__diff_rows(const struct conf_option *table, size_t n, const char *section,
			   const void *old_cfg, const void *new_cfg, char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		const struct conf_option *o = &table[i];
		if (o->reloadable || conf__equal(o, old_cfg, new_cfg))
			continue;
		if (err && errlen) {
			char name[4 * CONF_MAX_SECTION_NAME + 256];
			snprintf(err, errlen, "%s cannot change on reload; restart to apply it",
				 conf__optname(section ? section : o->section, o->name, name,
					       sizeof name));
		}
		return PE_CONFIG;
	}
	return 0;
}

int conf_diff_nonreloadable(const struct conf_option *table, size_t n, const void *old_cfg,
			    const void *new_cfg, char *err, size_t errlen)
{
	return conf__diff_rows(table, n, NULL, old_cfg, new_cfg, err, errlen);
}

/* Index of the item named name in a, or a->n. */
static size_t conf__find_item(const struct conf_array *a, const char *name)
{
	size_t i = 0;
	while (i < a->n && strcmp(a->names[i], name) != 0)
		i++;
	return i;
}

int conf_diff_nonreloadable_ex(const struct conf_option *table, size_t n,
			       const struct conf_multi *multi, size_t nmulti, const void *old_cfg,
			       const void *new_cfg, char *err, size_t errlen)
{
	char sec[4 * CONF_MAX_SECTION_NAME + 128];

	if (conf__diff_rows(table, n, NULL, old_cfg, new_cfg, err, errlen) < 0)
		return PE_CONFIG;
	for (size_t k = 0; k < nmulti; k++) {
		const struct conf_multi *m = &multi[k];
		const struct conf_array *a = conf__array(m, old_cfg), *b = conf__array(m, new_cfg);
		bool all = true;
		for (size_t r = 0; r < m->n; r++)
			all = all && m->table[r].reloadable;
		if (all)
			continue;
		/* Removed items first, then added ones, each in file order. */
		for (int pass = 0; pass < 2; pass++) {
			const struct conf_array *x = pass ? b : a, *y = pass ? a : b;
			for (size_t i = 0; i < x->n; i++) {
				if (conf__find_item(y, x->names[i]) < y->n)
					continue;
				if (err && errlen)
					snprintf(
					    err, errlen,
					    "[%s] cannot be added or removed on reload; restart "
					    "to apply it",
					    conf__secname(m->section, x->names[i],
							  strlen(x->names[i]), sec, sizeof sec));
				return PE_CONFIG;
			}
		}
		for (size_t i = 0; i < a->n; i++) {
			size_t j = conf__find_item(b, a->names[i]);
			conf__secname(m->section, a->names[i], strlen(a->names[i]), sec,
				      sizeof sec);
			if (conf__diff_rows(m->table, m->n, sec, conf__item(m, a, i),
					    conf__item(m, b, j), err, errlen) < 0)
				return PE_CONFIG;
		}
	}
	return 0;
}

#define CONF__HELP_FMT "%-12s %-28s %-9s %-12s %-16s %-6s %s\n"

/* One line of help for o, under the section name shown as section. */
static void conf__help_row(const struct conf_option *o, const char *section, FILE *f)
{
	char bounds[256] = "-", a[32], b[32];
	const char *def = o->def ? o->def : o->required ? "(required)" : "-";

	if (o->type == CONF_ENUM && o->enum_names) {
		size_t len = 0;
		for (int k = 0; o->enum_names[k]; k++) {
			int r = snprintf(bounds + len, sizeof bounds - len, "%s%s", k ? "|" : "",
					 o->enum_names[k]);
			if (r < 0 || len + (size_t)r >= sizeof bounds)
				break;
			len += (size_t)r;
		}
	} else if (conf__bounded(o) && (o->type == CONF_STRING || o->type == CONF_STRLIST)) {
		snprintf(bounds, sizeof bounds, "len %lld..%lld", (long long)o->min,
			 (long long)o->max);
	} else if (conf__bounded(o) && o->type == CONF_INT) {
		snprintf(bounds, sizeof bounds, "%lld..%lld", (long long)o->min, (long long)o->max);
	} else if (conf__bounded(o)) {
		enum conf_type t =
		    o->type == CONF_DURATION_MS || o->type == CONF_SIZE ? o->type : CONF_UINT;
		snprintf(bounds, sizeof bounds, "%s..%s",
			 conf__fmt_num(t, o->min > 0 ? (uint64_t)o->min : 0, a, sizeof a),
			 conf__fmt_num(t, o->max > 0 ? (uint64_t)o->max : 0, b, sizeof b));
	}
	fprintf(f, CONF__HELP_FMT, section[0] ? section : "-", o->name, conf_type_name(o->type),
		def, bounds, o->reloadable ? "yes" : "no", o->help ? o->help : "");
}

void conf_print_help(const struct conf_option *table, size_t n, FILE *f)
{
	conf_print_help_ex(table, n, NULL, 0, f);
}

void conf_print_help_ex(const struct conf_option *table, size_t n, const struct conf_multi *multi,
			size_t nmulti, FILE *f)
{
	fprintf(f, CONF__HELP_FMT, "SECTION", "KEY", "TYPE", "DEFAULT", "BOUNDS", "RELOAD", "HELP");
	for (size_t i = 0; i < n; i++)
		conf__help_row(&table[i], table[i].section, f);
	for (size_t k = 0; k < nmulti; k++) {
		const struct conf_multi *m = &multi[k];
		char sec[256];
		snprintf(sec, sizeof sec, "%s \"*\"", m->section);
		fprintf(f, "%-12s (repeatable section [%s \"NAME\"]) %s\n", sec, m->section,
			m->help ? m->help : "");
		for (size_t r = 0; r < m->n; r++)
			conf__help_row(&m->table[r], sec, f);
	}
}
