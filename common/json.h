/* A small bounded JSON writer (for control replies) and a small bounded JSON reader (for
 * parleyctl, which turns replies into tables). */
#ifndef PARLEY_JSON_H
#define PARLEY_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;

/* Deepest nesting of arrays and objects either side accepts. */
#define JSON_MAX_DEPTH 32

/* ---- writer ----
 * Appends one JSON text to a struct buf, whose own max is the size bound. Every call after
 * the first error is a no-op, so a handler may write a whole document and check once, with
 * json_finish. Inside an object a json_key must precede each value; elsewhere keys are a
 * misuse (PE_STATE). Embeddable; holds no memory of its own. */
struct json {
	struct buf *out;
	int err;			   /* first error, 0 if none */
	unsigned depth;			   /* open containers */
	bool in_obj[JSON_MAX_DEPTH + 1];   /* container at each level is an object */
	bool nonempty[JSON_MAX_DEPTH + 1]; /* a member was written at this level */
	bool after_key;			   /* a key was written; its value comes next */
	bool done;			   /* a complete top-level value was written */
};

/* out must stay valid while j is used. */
void json_init(struct json *j, struct buf *out);
void json_obj_begin(struct json *j);
void json_obj_end(struct json *j);
void json_arr_begin(struct json *j);
void json_arr_end(struct json *j);
/* An object member's name (escaped like a string). */
void json_key(struct json *j, const char *k);
/* A string: '"', '\\' and control characters are escaped, valid UTF-8 is kept as is, every
 * byte of an invalid UTF-8 sequence becomes U+FFFD. NULL writes null. */
void json_str(struct json *j, const char *s);
void json_strn(struct json *j, const char *s, size_t n);
void json_int(struct json *j, int64_t v);
void json_uint(struct json *j, uint64_t v);
/* Shortest round-tripping form; NaN and infinities (not JSON) become null. */
void json_double(struct json *j, double v);
void json_bool(struct json *j, bool v);
void json_null(struct json *j);
/* json_key followed by the value. */
void json_kv_str(struct json *j, const char *k, const char *v);
void json_kv_int(struct json *j, const char *k, int64_t v);
void json_kv_uint(struct json *j, const char *k, uint64_t v);
void json_kv_bool(struct json *j, const char *k, bool v);
/* Returns 0 if exactly one complete value was written; else the first error: PE_TOOBIG (the
 * buf's bound), PE_NOMEM, PE_STATE (misuse: a key outside an object, a value without its
 * key, unbalanced ends, nesting deeper than JSON_MAX_DEPTH, a second top-level value, or
 * containers left open). */
int json_finish(struct json *j);

/* ---- reader ---- */
enum json_type {
	JSON_NULL,   /* null */
	JSON_BOOL,   /* b */
	JSON_NUMBER, /* text (as written, NUL-terminated) and num */
	JSON_STRING, /* text (unescaped, NUL-terminated; len excludes the NUL; may hold NULs) */
	JSON_ARRAY,  /* items[0..n) */
	JSON_OBJECT, /* items[0..n) with keys[0..n), in document order; duplicates are kept */
};

struct json_val {
	enum json_type type;
	bool b;
	double num;
	char *text;
	size_t len;
	struct json_val *items;
	char **keys;
	size_t n;
};

/* Parses exactly one JSON value (RFC 8259) from s[0..len), surrounding whitespace allowed.
 * Bounds: nesting up to max_depth (at most JSON_MAX_DEPTH), at most max_values values in all.
 * Strings must be valid UTF-8 after unescaping (lone surrogates are refused).
 * Returns 0 and *out (free it with json_val_free), PE_PROTO for a syntax error, PE_TOOBIG
 * for a bound exceeded, PE_NOMEM. *out is untouched on error. */
int json_parse(const char *s, size_t len, unsigned max_depth, size_t max_values,
	       struct json_val **out);
/* Frees v and everything below it; NULL is a no-op. */
void json_val_free(struct json_val *v);
/* The first member named key of an object, or NULL (also if v is not an object). */
const struct json_val *json_get(const struct json_val *v, const char *key);

#endif
