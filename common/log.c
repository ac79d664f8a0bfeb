/* Structured logging. One write(2) per line so concurrent daemons' lines never interleave. */
#include "log.h"

#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum log_level log__level = LL_INFO;
static const char *log_prog = "parley";
static int log_journal;
static FILE *log_stream;

static const char *const level_names[] = {"error", "warn", "info", "debug"};
/* syslog priorities for the sd-daemon "<N>" prefix */
static const int level_prio[] = {3, 4, 6, 7};

void log_init(const char *prog, enum log_level level)
{
	log_prog = prog;
	log__level = level;
	log_journal = getenv("JOURNAL_STREAM") != NULL;
}

void log_set_level(enum log_level level) { log__level = level; }

void log_set_stream(FILE *f) { log_stream = f; }

const char *log_level_name(enum log_level level)
{
	return (unsigned)level < 4 ? level_names[level] : "?";
}

int log_level_parse(const char *s, enum log_level *out)
{
	for (unsigned i = 0; i < 4; i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return PE_INVAL;
}

void log_emit(enum log_level level, uint64_t conn, const char *event,
	      const char *fmt, ...)
{
	char line[2048];
	size_t n = 0;
	int r;

	if (log_journal) {
		r = snprintf(line, sizeof line, "<%d>", level_prio[level]);
	} else {
		struct timespec ts;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		r = snprintf(line, sizeof line,
			     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ",
			     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			     tm.tm_hour, tm.tm_min, tm.tm_sec,
			     ts.tv_nsec / 1000000, log_prog);
	}
	n = r > 0 ? (size_t)r : 0;
	r = snprintf(line + n, sizeof line - n, "level=%s", level_names[level]);
	n += r > 0 ? (size_t)r : 0;
	if (conn && n < sizeof line) {
		r = snprintf(line + n, sizeof line - n, " conn=%llu",
			     (unsigned long long)conn);
		n += r > 0 ? (size_t)r : 0;
	}
	if (n < sizeof line) {
		r = snprintf(line + n, sizeof line - n, " event=%s", event);
		n += r > 0 ? (size_t)r : 0;
	}
	if (fmt && *fmt && n + 1 < sizeof line) {
		va_list ap;
		line[n++] = ' ';
		va_start(ap, fmt);
		r = vsnprintf(line + n, sizeof line - n, fmt, ap);
		va_end(ap);
		if (r > 0)
			n += (size_t)r;
		else
			n--; /* fields came out empty: drop the separator */
	}
	if (n >= sizeof line - 1)
		n = sizeof line - 2;
	line[n++] = '\n';
	if (log_stream) {
		fwrite(line, 1, n, log_stream);
		fflush(log_stream);
	} else {
		ssize_t w = write(STDERR_FILENO, line, n);
		(void)w;
	}
}

char *log_escape(char *dst, size_t cap, const void *src, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = src;
	size_t o = 0;

	if (cap == 0)
		return dst;
	/* Reserve room for "..." only if the whole rendering cannot fit. */
	size_t total = 0;
	for (size_t i = 0; i < len && total < cap; i++)
		total += s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' && s[i] != '\\' ? 1 : 4;
	int fits = total < cap;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = s[i];
		int plain = c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
		size_t need = plain ? 1 : 4;
		if (!fits && o + need + 4 > cap) { /* keep room for "..." and NUL */
			if (o + 4 <= cap) {
				memcpy(dst + o, "...", 3);
				o += 3;
			}
			break;
		}
		if (plain) {
			dst[o++] = (char)c;
		} else {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		}
	}
	dst[o] = '\0';
	return dst;
}
