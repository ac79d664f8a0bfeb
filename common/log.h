/* Structured, line-oriented logging to stderr: level, connection id, event, key=value fields. */
#ifndef PARLEY_LOG_H
#define PARLEY_LOG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum log_level {
	LL_ERROR, /* something failed that an operator must look at */
	LL_WARN,  /* a peer misbehaved or a limit was hit; service goes on */
	LL_INFO,  /* lifecycle events: listen, connect, authenticate, close */
	LL_DEBUG, /* per-frame / per-stanza detail */
};

extern enum log_level log__level;

/* Sets the program name and the level. Under systemd (JOURNAL_STREAM set) lines carry
 * a "<N>" priority prefix and no timestamp; otherwise an RFC 3339 UTC timestamp. */
void log_init(const char *prog, enum log_level level);
void log_set_level(enum log_level level);
/* Parses "error", "warn", "info", "debug"; returns 0 or PE_INVAL. */
int log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level level);

/* Redirects output (tests). NULL restores stderr. */
void log_set_stream(FILE *f);

/* Emits one line: "<ts> <prog> level=L conn=N event=E <fields>". conn 0 = none.
 * fmt produces the key=value fields; escape peer bytes with log_escape first. */
void log_emit(enum log_level level, uint64_t conn, const char *event,
	      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define log_enabled(l) ((l) <= log__level)
#define LOG__AT(l, conn, event, ...)                                           \
	do {                                                                   \
		if (log_enabled(l))                                            \
			log_emit((l), (conn), (event), __VA_ARGS__);           \
	} while (0)
#define log_error(conn, event, ...) LOG__AT(LL_ERROR, conn, event, __VA_ARGS__)
#define log_warn(conn, event, ...) LOG__AT(LL_WARN, conn, event, __VA_ARGS__)
#define log_info(conn, event, ...) LOG__AT(LL_INFO, conn, event, __VA_ARGS__)
#define log_debug(conn, event, ...) LOG__AT(LL_DEBUG, conn, event, __VA_ARGS__)

/* Writes at most cap-1 bytes of a printable, quoted-safe rendering of src[0..len) into
 * dst (NUL-terminated): bytes outside 0x20..0x7e, '"' and '\\' become \xNN; output
 * that would exceed cap ends in "...". Returns dst. */
char *log_escape(char *dst, size_t cap, const void *src, size_t len);

#endif
