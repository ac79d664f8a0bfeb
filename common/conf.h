/* Table-driven configuration: each daemon's table maps INI keys to fields of its config struct. */
#ifndef PARLEY_CONF_H
#define PARLEY_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Longest accepted line in bytes, without its line ending. Longer lines are an error. */
#define CONF_MAX_LINE 4096

/* X(name, keyword, field type and accepted text). The keyword is what help and errors print. */
#define CONF_TYPE_MAP(X)                                                                           \
	X(BOOL, "bool", "bool: true/false, yes/no, on/off, 1/0")                                   \
	X(INT, "int", "int64_t: decimal, optional sign")                                           \
	X(UINT, "uint", "uint64_t: decimal")                                                       \
	X(DURATION_MS, "duration",                                                                 \
	  "uint64_t ms: 250ms, 30s, 5m, 2h, 1d; a bare number is seconds")                         \
	X(SIZE, "size",                                                                            \
	  "uint64_t bytes: 512, 8k/8KiB, 16M/16MiB, 1G/1GiB, 1T/1TiB (all base 1024)")             \
	X(STRING, "string", "char * (malloc'd); bounds, if set, apply to its length in bytes")     \
	X(PATH, "path", "char * (malloc'd), absolute; relative to the config file's directory")    \
	X(ENUM, "enum", "int: index into enum_names, matched case-insensitively")                  \
	X(STRLIST, "list",                                                                         \
	  "struct conf_strlist: each occurrence appends one value; bounds: length")                \
	X(HOSTPORT, "host:port", "struct conf_hostport: host:port or [v6]:port, port required")

enum conf_type {
#define CONF__ENUM(name, kw, desc) CONF_##name,
	CONF_TYPE_MAP(CONF__ENUM)
#undef CONF__ENUM
};

/* A repeatable key's values in file order. The strings and the array are malloc'd. */
struct conf_strlist {
	char **v;
	size_t n;
};

/* host is malloc'd and has no brackets ("[::1]:5269" gives host "::1"). */
struct conf_hostport {
	char *host;
	uint16_t port;
};

struct conf_option {
	const char *section; /* "" for keys before any [section] */
	const char *name;
	enum conf_type type;
	/* Inclusive bounds; ignored if both are 0. Durations in ms, sizes in bytes, lengths in
	 * bytes for STRING and each STRLIST value, HOSTPORT ports (default 1..65535).
	 * Unsigned types need min >= 0. */
	int64_t min, max;
	const char *def;	       /* default, parsed like a value from the file; NULL = none */
	size_t offset;		       /* offsetof(struct my_config, field) */
	bool reloadable;	       /* may change on SIGHUP */
	bool required;		       /* must appear in the file */
	const char *const *enum_names; /* CONF_ENUM: NULL-terminated */
	const char *help;	       /* one line for --help-config */
};

/* Parses the INI file at path into out according to table[0..n).
 * Syntax: "[section]", "key = value", full-line comments starting with ';' or '#', blank
 * lines. Values are trimmed; a value in double quotes keeps its spaces and may use \" and \\.
 * There are no inline comments: ';' and '#' inside a value are part of it.
 * Every table field of out is first zeroed (not freed), then set from its default, then from
 * the file. Unknown sections and keys, a repeated key that is not a CONF_STRLIST, a value out
 * of bounds, a line over CONF_MAX_LINE bytes and a missing required key are errors. The first
 * occurrence of a CONF_STRLIST key in the file replaces its default.
 * Returns 0; or PE_CONFIG with "FILE:LINE: message" (or "FILE: message") in err, and every
 * table field freed and zeroed. On success the caller owns out's strings: see conf_free. */
int conf_load(const struct conf_option *table, size_t n, void *out, const char *path, char *err,
	      size_t errlen);

/* Frees the strings and lists that conf_load stored in cfg and zeroes those fields.
 * Safe on a zeroed struct and safe to call twice. */
void conf_free(const struct conf_option *table, size_t n, void *cfg);

/* Compares two loaded configurations. Returns 0 if every non-reloadable option is equal, or
 * PE_CONFIG with "[section] key cannot change on reload; restart to apply it" in err for the
 * first one that differs (values are not printed: they may be secrets). */
int conf_diff_nonreloadable(const struct conf_option *table, size_t n, const void *old_cfg,
			    const void *new_cfg, char *err, size_t errlen);

/* Prints one line per option: section, key, type, default, bounds (or enum names),
 * reloadable, help; under a header line. */
void conf_print_help(const struct conf_option *table, size_t n, FILE *f);

/* Returns the keyword of a type ("duration", "host:port", ...). */
const char *conf_type_name(enum conf_type type);

#endif
