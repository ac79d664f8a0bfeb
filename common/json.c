/* JSON writer and reader. The writer tracks just enough state to put commas and colons in
 * the right places and to refuse misuse, because control handlers are written by several
 * modules and a reply that is not JSON would break every script reading it. The reader is a
 * plain recursive descent with explicit depth and value-count bounds: it reads replies from a
 * daemon we trust, but a bounded parser costs nothing and is fuzzable. */
#include "json.h"

#include "buf.h"
#include "err.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- writer ---- */

void json_init(struct json *j, struct buf *out)
{
	memset(j, 0, sizeof *j);
	j->out = out;
}

static void json__raw(struct json *j, const void *p, size_t n)
{
	if (!j->err)
		j->err = buf_append(j->out, p, n);
}

/* Called before every value: writes the separator and checks the grammar. */
static bool json__value_start(struct json *j)
{
	if (j->err)
		return false;
	if (j->depth == 0) {
		if (j->done) {
			j->err = PE_STATE;
			return false;
		}
		return true;
	}
	if (j->in_obj[j->depth]) {
		if (!j->after_key) {
			j->err = PE_STATE;
			return false;
		}
		j->after_key = false;
		return true;
	}
	if (j->nonempty[j->depth])
		json__raw(j, ",", 1);
	j->nonempty[j->depth] = true;
	return !j->err;
}

static void json__value_end(struct json *j)
{
	if (j->depth == 0)
		j->done = true;
}

static void json__open(struct json *j, bool obj)
{
	if (!json__value_start(j))
		return;
	if (j->depth >= JSON_MAX_DEPTH) {
		j->err = PE_STATE;
		return;
	}
	json__raw(j, obj ? "{" : "[", 1);
	j->depth++;
	j->in_obj[j->depth] = obj;
	j->nonempty[j->depth] = false;
}

static void json__close(struct json *j, bool obj)
{
	if (j->err)
		return;
	if (j->depth == 0 || j->in_obj[j->depth] != obj || j->after_key) {
		j->err = PE_STATE;
		return;
	}
	json__raw(j, obj ? "}" : "]", 1);
	j->depth--;
	json__value_end(j);
}

void json_obj_begin(struct json *j)
{
	json__open(j, true);
}
void json_obj_end(struct json *j)
{
	json__close(j, true);
}
void json_arr_begin(struct json *j)
{
	json__open(j, false);
}
void json_arr_end(struct json *j)
{
	json__close(j, false);
}

/* Length of the valid UTF-8 sequence at p[0..n), or 0 if it is not one (RFC 3629: no
 * overlongs, no surrogates, nothing above U+10FFFF). */
static size_t json__utf8_len(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	size_t need;
	unsigned cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		need = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (n < need)
		return 0;
	for (size_t i = 1; i < need; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((need == 3 && cp < 0x800) || (need == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return need;
}

static void json__string(struct json *j, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, run = 0;
	json__raw(j, "\"", 1);
	while (!j->err && i < n) {
		unsigned char c = p[i];
		const char *esc = NULL;
		char tmp[8];
		size_t l = 1;
		if (c == '"')
			esc = "\\\"";
		else if (c == '\\')
			esc = "\\\\";
		else if (c == '\n')
			esc = "\\n";
		else if (c == '\r')
			esc = "\\r";
		else if (c == '\t')
			esc = "\\t";
		else if (c < 0x20 || c == 0x7f) {
			snprintf(tmp, sizeof tmp, "\\u%04x", c);
			esc = tmp;
		} else if (c >= 0x80) {
			l = json__utf8_len(p + i, n - i);
			if (l == 0) {
				esc = "\xef\xbf\xbd"; /* U+FFFD for one bad byte */
				l = 1;
			}
		}
		if (!esc) {
			run += l;
			i += l;
			continue;
		}
		json__raw(j, p + i - run, run);
		run = 0;
		json__raw(j, esc, strlen(esc));
		i += l;
	}
	json__raw(j, p + i - run, run);
	json__raw(j, "\"", 1);
}

void json_key(struct json *j, const char *k)
{
	if (j->err)
		return;
	if (j->depth == 0 || !j->in_obj[j->depth] || j->after_key || !k) {
		j->err = PE_STATE;
		return;
	}
	if (j->nonempty[j->depth])
		json__raw(j, ",", 1);
	j->nonempty[j->depth] = true;
	json__string(j, k, strlen(k));
	json__raw(j, ":", 1);
	j->after_key = true;
}

void json_strn(struct json *j, const char *s, size_t n)
{
	if (!json__value_start(j))
		return;
	if (s)
		json__string(j, s, n);
	else
		json__raw(j, "null", 4);
	json__value_end(j);
}

void json_str(struct json *j, const char *s)
{
	json_strn(j, s, s ? strlen(s) : 0);
}

static void json__literal(struct json *j, const char *text)
{
	if (!json__value_start(j))
		return;
	json__raw(j, text, strlen(text));
	json__value_end(j);
}

void json_int(struct json *j, int64_t v)
{
	char t[32];
	snprintf(t, sizeof t, "%lld", (long long)v);
	json__literal(j, t);
}

void json_uint(struct json *j, uint64_t v)
{
	char t[32];
	snprintf(t, sizeof t, "%llu", (unsigned long long)v);
	json__literal(j, t);
}

void json_double(struct json *j, double v)
{
	char t[40];
	if (!isfinite(v)) {
		json__literal(j, "null");
		return;
	}
	snprintf(t, sizeof t, "%.15g", v);
	if (strtod(t, NULL) != v)
		snprintf(t, sizeof t, "%.17g", v);
	json__literal(j, t);
}

void json_bool(struct json *j, bool v)
{
	json__literal(j, v ? "true" : "false");
}
void json_null(struct json *j)
{
	json__literal(j, "null");
}

void json_kv_str(struct json *j, const char *k, const char *v)
{
	json_key(j, k);
	json_str(j, v);
}

void json_kv_int(struct json *j, const char *k, int64_t v)
{
	json_key(j, k);
	json_int(j, v);
}

void json_kv_uint(struct json *j, const char *k, uint64_t v)
{
	json_key(j, k);
	json_uint(j, v);
}

void json_kv_bool(struct json *j, const char *k, bool v)
{
	json_key(j, k);
	json_bool(j, v);
}

int json_finish(struct json *j)
{
	if (j->err)
		return j->err;
	if (j->depth != 0 || !j->done)
		return PE_STATE;
	return 0;
}

/* ---- reader ---- */

struct json__rd {
	const char *s;
	size_t len, pos;
	unsigned max_depth;
	size_t values_left;
	int err;
};

static void json__ws(struct json__rd *r)
{
	while (r->pos < r->len) {
		char c = r->s[r->pos];
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		r->pos++;
	}
}

static int json__fail(struct json__rd *r, int err)
{
	if (!r->err)
		r->err = err;
	return r->err;
}

static void json__free_inner(struct json_val *v)
{
	free(v->text);
	for (size_t i = 0; i < v->n; i++) {
		json__free_inner(&v->items[i]);
		if (v->keys)
			free(v->keys[i]);
	}
	free(v->items);
	free(v->keys);
}

void json_val_free(struct json_val *v)
{
	if (!v)
		return;
	json__free_inner(v);
	free(v);
}

static int json__hex4(struct json__rd *r, unsigned *out)
{
	unsigned v = 0;
	if (r->len - r->pos < 4)
		return json__fail(r, PE_PROTO);
	for (int i = 0; i < 4; i++) {
		char c = r->s[r->pos++];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return json__fail(r, PE_PROTO);
	}
	*out = v;
	return 0;
}

static size_t json__put_utf8(char *d, unsigned cp)
{
	if (cp < 0x80) {
		d[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		d[0] = (char)(0xc0 | (cp >> 6));
		d[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		d[0] = (char)(0xe0 | (cp >> 12));
		d[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		d[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	d[0] = (char)(0xf0 | (cp >> 18));
	d[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	d[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	d[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* At the opening quote. The unescaped text is never longer than the escaped one. */
static int json__string_in(struct json__rd *r, char **out, size_t *outlen)
{
	r->pos++;
	size_t start = r->pos;
	while (r->pos < r->len && r->s[r->pos] != '"') {
		if (r->s[r->pos] == '\\')
			r->pos++;
		r->pos++;
	}
	if (r->pos >= r->len)
		return json__fail(r, PE_PROTO);
	size_t end = r->pos;
	r->pos++;
	char *d = malloc(end - start + 1);
	if (!d)
		return json__fail(r, PE_NOMEM);
	size_t n = 0;
	struct json__rd sub = {.s = r->s, .len = end, .pos = start};
	while (sub.pos < end) {
		unsigned char c = (unsigned char)sub.s[sub.pos];
		if (c < 0x20)
			goto bad;
		if (c >= 0x80) {
			size_t l =
			    json__utf8_len((const unsigned char *)sub.s + sub.pos, end - sub.pos);
			if (!l)
				goto bad;
			memcpy(d + n, sub.s + sub.pos, l);
			n += l;
			sub.pos += l;
			continue;
		}
		if (c != '\\') {
			d[n++] = (char)c;
			sub.pos++;
			continue;
		}
		sub.pos++;
		char e = sub.s[sub.pos++];
		unsigned cp;
		switch (e) {
		case '"':
			d[n++] = '"';
			break;
		case '\\':
			d[n++] = '\\';
			break;
		case '/':
			d[n++] = '/';
			break;
		case 'b':
			d[n++] = '\b';
			break;
		case 'f':
			d[n++] = '\f';
			break;
		case 'n':
			d[n++] = '\n';
			break;
		case 'r':
			d[n++] = '\r';
			break;
		case 't':
			d[n++] = '\t';
			break;
		case 'u':
			if (json__hex4(&sub, &cp))
				goto bad;
			if (cp >= 0xdc00 && cp <= 0xdfff)
				goto bad;
			if (cp >= 0xd800 && cp <= 0xdbff) {
				unsigned lo;
				if (end - sub.pos < 6 || sub.s[sub.pos] != '\\' ||
				    sub.s[sub.pos + 1] != 'u')
					goto bad;
				sub.pos += 2;
				if (json__hex4(&sub, &lo) || lo < 0xdc00 || lo > 0xdfff)
					goto bad;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			}
			/* \uXXXX is 6 bytes in, at most 3 out; a pair is 12 in, 4 out. */
			n += json__put_utf8(d + n, cp);
			break;
		default:
			goto bad;
		}
	}
	d[n] = 0;
	*out = d;
	*outlen = n;
	return 0;
bad:
	free(d);
	return json__fail(r, PE_PROTO);
}

static int json__value(struct json__rd *r, struct json_val *v, unsigned depth);

static int json__grow(struct json__rd *r, struct json_val *v, size_t *cap, bool keys)
{
	if (v->n < *cap)
		return 0;
	size_t nc = *cap ? *cap * 2 : 4;
	struct json_val *it = realloc(v->items, nc * sizeof *it);
	if (!it)
		return json__fail(r, PE_NOMEM);
	v->items = it;
	if (keys) {
		char **k = realloc(v->keys, nc * sizeof *k);
		if (!k)
			return json__fail(r, PE_NOMEM);
		v->keys = k;
	}
	*cap = nc;
	return 0;
}

static int json__container(struct json__rd *r, struct json_val *v, unsigned depth, bool obj)
{
	size_t cap = 0;
	char close = obj ? '}' : ']';
	if (depth >= r->max_depth)
		return json__fail(r, PE_TOOBIG);
	v->type = obj ? JSON_OBJECT : JSON_ARRAY;
	r->pos++;
	json__ws(r);
	if (r->pos < r->len && r->s[r->pos] == close) {
		r->pos++;
		return 0;
	}
	for (;;) {
		if (json__grow(r, v, &cap, obj))
			return r->err;
		struct json_val *it = &v->items[v->n];
		memset(it, 0, sizeof *it);
		if (obj) {
			char *k;
			size_t kl;
			json__ws(r);
			if (r->pos >= r->len || r->s[r->pos] != '"')
				return json__fail(r, PE_PROTO);
			if (json__string_in(r, &k, &kl))
				return r->err;
			v->keys[v->n] = k;
			json__ws(r);
			if (r->pos >= r->len || r->s[r->pos] != ':') {
				v->items[v->n].type = JSON_NULL;
				v->n++; /* so the key is freed */
				return json__fail(r, PE_PROTO);
			}
			r->pos++;
		}
		int rc = json__value(r, it, depth + 1);
		v->n++; /* partially built items are freed with the container */
		if (rc)
			return rc;
		json__ws(r);
		if (r->pos >= r->len)
			return json__fail(r, PE_PROTO);
		char c = r->s[r->pos++];
		if (c == close)
			return 0;
		if (c != ',')
			return json__fail(r, PE_PROTO);
	}
}

static int json__number(struct json__rd *r, struct json_val *v)
{
	size_t st = r->pos;
	const char *s = r->s;
	size_t p = r->pos, n = r->len;
	if (p < n && s[p] == '-')
		p++;
	if (p < n && s[p] == '0') {
		p++;
	} else if (p < n && s[p] >= '1' && s[p] <= '9') {
		while (p < n && s[p] >= '0' && s[p] <= '9')
			p++;
	} else {
		return json__fail(r, PE_PROTO);
	}
	if (p < n && s[p] == '.') {
		p++;
		if (!(p < n && s[p] >= '0' && s[p] <= '9'))
			return json__fail(r, PE_PROTO);
		while (p < n && s[p] >= '0' && s[p] <= '9')
			p++;
	}
	if (p < n && (s[p] == 'e' || s[p] == 'E')) {
		p++;
		if (p < n && (s[p] == '+' || s[p] == '-'))
			p++;
		if (!(p < n && s[p] >= '0' && s[p] <= '9'))
			return json__fail(r, PE_PROTO);
		while (p < n && s[p] >= '0' && s[p] <= '9')
			p++;
	}
	v->type = JSON_NUMBER;
	v->len = p - st;
	v->text = malloc(v->len + 1);
	if (!v->text)
		return json__fail(r, PE_NOMEM);
	memcpy(v->text, s + st, v->len);
	v->text[v->len] = 0;
	v->num = strtod(v->text, NULL);
	r->pos = p;
	return 0;
}

static int json__word(struct json__rd *r, const char *w)
{
	size_t l = strlen(w);
	if (r->len - r->pos < l || memcmp(r->s + r->pos, w, l) != 0)
		return json__fail(r, PE_PROTO);
	r->pos += l;
	return 0;
}

static int json__value(struct json__rd *r, struct json_val *v, unsigned depth)
{
	if (r->values_left == 0)
		return json__fail(r, PE_TOOBIG);
	r->values_left--;
	json__ws(r);
	if (r->pos >= r->len)
		return json__fail(r, PE_PROTO);
	switch (r->s[r->pos]) {
	case '{':
		return json__container(r, v, depth, true);
	case '[':
		return json__container(r, v, depth, false);
	case '"':
		v->type = JSON_STRING;
		return json__string_in(r, &v->text, &v->len);
	case 't':
		v->type = JSON_BOOL;
		v->b = true;
		return json__word(r, "true");
	case 'f':
		v->type = JSON_BOOL;
		return json__word(r, "false");
	case 'n':
		v->type = JSON_NULL;
		return json__word(r, "null");
	default:
		return json__number(r, v);
	}
}

int json_parse(const char *s, size_t len, unsigned max_depth, size_t max_values,
	       struct json_val **out)
{
	struct json__rd r = {.s = s, .len = len, .max_depth = max_depth, .values_left = max_values};
	if (r.max_depth > JSON_MAX_DEPTH)
		r.max_depth = JSON_MAX_DEPTH;
	struct json_val *v = calloc(1, sizeof *v);
	if (!v)
		return PE_NOMEM;
	int rc = json__value(&r, v, 0);
	if (!rc) {
		json__ws(&r);
		if (r.pos != r.len)
			rc = PE_PROTO;
	}
	if (rc) {
		json_val_free(v);
		return rc;
	}
	*out = v;
	return 0;
}

const struct json_val *json_get(const struct json_val *v, const char *key)
{
	if (!v || v->type != JSON_OBJECT)
		return NULL;
	for (size_t i = 0; i < v->n; i++)
		if (strcmp(v->keys[i], key) == 0)
			return &v->items[i];
	return NULL;
}
