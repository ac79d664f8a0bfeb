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

/* The items of a named section that may occur many times, e.g. [partner "a.example"], in
 * file order. items holds n structs of the conf_multi's item_size bytes; names[i] is item
 * i's quoted name, unescaped. Everything is malloc'd; see conf_free_ex. */
struct conf_array {
	void *items;
	size_t n;
	char **names;
};

/* A named section: [section "NAME"] opens a new item, filled from table like the top level
 * (defaults, bounds, required keys and repeated-key rules apply per item; the rows' .section
 * is ignored and their .offset is into one item). */
struct conf_multi {
	const char *section;		 /* "partner" matches [partner "NAME"] */
	const struct conf_option *table; /* rows for one item */
	size_t n;
	size_t item_size; /* sizeof the item struct */
	size_t offset;	  /* offsetof(struct my_config, its struct conf_array) */
	const char *help; /* one line for --help-config */
};

/* Longest name of a named section, in bytes (a DNS name's limit). */
#define CONF_MAX_SECTION_NAME 253

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

/* conf_load plus the named sections multi[0..nmulti). A header is [section "NAME"]: the
 * name is in double quotes (\" and \\ escape), 1..CONF_MAX_SECTION_NAME bytes, without
 * control characters, and unique within its section (compared byte for byte). A named
 * section without a name, a plain section with one, and a name repeated are errors; the
 * last names both lines. Errors inside an item read
 * "FILE:LINE: [partner \"NAME\"] key: message" (the name escaped like log_escape); a
 * missing required key of an item names the line of its header. Each conf_array is zeroed
 * first like every other field, and freed on error. */
int conf_load_ex(const struct conf_option *table, size_t n, const struct conf_multi *multi,
		 size_t nmulti, void *out, const char *path, char *err, size_t errlen);

/* conf_load_ex over text (NUL-terminated, non-empty) instead of a file; name stands for the
 * file in errors ("NAME:LINE: ...") and relative paths resolve against its directory. */
int conf_load_ex_text(const struct conf_option *table, size_t n, const struct conf_multi *multi,
		      size_t nmulti, void *out, const char *name, const char *text, char *err,
		      size_t errlen);

/* Frees the strings and lists that conf_load stored in cfg and zeroes those fields.
 * Safe on a zeroed struct and safe to call twice. */
void conf_free(const struct conf_option *table, size_t n, void *cfg);
/* conf_free plus every item of the named sections, their names and arrays. */
void conf_free_ex(const struct conf_option *table, size_t n, const struct conf_multi *multi,
		  size_t nmulti, void *cfg);

/* Compares two loaded configurations. Returns 0 if every non-reloadable option is equal, or
 * PE_CONFIG with "[section] key cannot change on reload; restart to apply it" in err for the
 * first one that differs (values are not printed: they may be secrets). */
int conf_diff_nonreloadable(const struct conf_option *table, size_t n, const void *old_cfg,
			    const void *new_cfg, char *err, size_t errlen);
/* conf_diff_nonreloadable plus the named sections. A named section whose rows are all
 * reloadable may change freely, items added and removed included. Otherwise items are
 * matched by name: one added or removed gives
 * "[partner \"NAME\"] cannot be added or removed on reload; restart to apply it", and a
 * non-reloadable row that differs "[partner \"NAME\"] key cannot change on reload; ...". */
int conf_diff_nonreloadable_ex(const struct conf_option *table, size_t n,
			       const struct conf_multi *multi, size_t nmulti, const void *old_cfg,
			       const void *new_cfg, char *err, size_t errlen);

/* Prints one line per option: section, key, type, default, bounds (or enum names),
 * reloadable, help; under a header line. */
void conf_print_help(const struct conf_option *table, size_t n, FILE *f);
/* conf_print_help plus, for each named section, a line "partner \"*\"  (repeatable section
 * [partner \"NAME\"]) help" and its rows with the section shown as partner "*". */
void conf_print_help_ex(const struct conf_option *table, size_t n, const struct conf_multi *multi,
			size_t nmulti, FILE *f);

/* Returns the keyword of a type ("duration", "host:port", ...). */
const char *conf_type_name(enum conf_type type);

#endif
