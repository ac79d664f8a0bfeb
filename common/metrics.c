/* Metrics registry. Lookups happen only at registration; hot paths hold the returned slot,
 * so families and members are plain lists and every member is its own allocation (its
 * address must not move while the registry grows). */
#include "metrics.h"

#include "buf.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum metrics__type {
	MT_COUNTER,   /* monotonically increasing uint64_t */
	MT_GAUGE,     /* int64_t that goes up and down */
	MT_HISTOGRAM, /* bucketed observations with sum and count */
};

static const char *const metrics__type_names[] = {"counter", "gauge", "histogram"};

struct metrics_hist {
	double *bounds;
	size_t nbounds;
	uint64_t *buckets; /* nbounds + 1, not cumulative; the last is +Inf */
	double sum;
	uint64_t count;
};

struct metric {
	struct metric *next;
	char *labels; /* NULL = none */
	union {
		uint64_t counter;
		int64_t gauge;
		struct metrics_hist hist;
	} v;
};

struct metrics__family {
	struct metrics__family *next;
	char *name;
	char *help;
	enum metrics__type type;
	struct metric *first, **tail;
};

struct metrics {
	struct metrics__family *first, **tail;
};

/* Registration is startup-time control allocation: failing it ends the process. */
static void *metrics__xalloc(void *p)
{
	if (!p) {
		fputs("parley: out of memory in metrics registry\n", stderr);
		abort();
	}
	return p;
}

static char *metrics__xstrdup(const char *s)
{
	return s ? metrics__xalloc(strdup(s)) : NULL;
}

struct metrics *metrics_new(void)
{
	struct metrics *m = metrics__xalloc(calloc(1, sizeof *m));
	m->tail = &m->first;
	return m;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	struct metrics__family *f = m->first;
	while (f) {
		struct metrics__family *fnext = f->next;
		struct metric *x = f->first;
		while (x) {
			struct metric *xnext = x->next;
			if (f->type == MT_HISTOGRAM) {
				free(x->v.hist.bounds);
				free(x->v.hist.buckets);
			}
			free(x->labels);
			free(x);
			x = xnext;
		}
		free(f->name);
		free(f->help);
		free(f);
		f = fnext;
	}
	free(m);
}

static bool metrics__valid_name(const char *s)
{
	if (!s || !*s)
		return false;
	for (size_t i = 0; s[i]; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
			  c == ':' || (i > 0 && c >= '0' && c <= '9');
		if (!ok)
			return false;
	}
	return true;
}

static bool metrics__labels_eq(const char *a, const char *b)
{
	/* NULL and "" both mean "no labels". */
	if (!a || !*a || !b || !*b)
		return (!a || !*a) && (!b || !*b);
	return strcmp(a, b) == 0;
}

/* Returns the member for (name, labels), creating family and member as needed; *created
 * tells whether the member is new. NULL on a bad name or a type clash. */
static struct metric *metrics__get(struct metrics *m, const char *name, const char *help,
				   const char *labels, enum metrics__type type, bool *created)
{
	struct metrics__family *f;

	*created = false;
	if (!metrics__valid_name(name))
		return NULL;
	for (f = m->first; f; f = f->next)
		if (strcmp(f->name, name) == 0)
			break;
	if (f && f->type != type)
		return NULL;
	if (!f) {
		f = metrics__xalloc(calloc(1, sizeof *f));
		f->name = metrics__xstrdup(name);
		f->help = metrics__xstrdup(help ? help : "");
		f->type = type;
		f->tail = &f->first;
		*m->tail = f;
		m->tail = &f->next;
	}
	for (struct metric *x = f->first; x; x = x->next)
		if (metrics__labels_eq(x->labels, labels))
			return x;
	struct metric *x = metrics__xalloc(calloc(1, sizeof *x));
	x->labels = labels && *labels ? metrics__xstrdup(labels) : NULL;
	*f->tail = x;
	f->tail = &x->next;
	*created = true;
	return x;
}

uint64_t *metrics_counter(struct metrics *m, const char *name, const char *help, const char *labels)
{
	bool created;
	struct metric *x = metrics__get(m, name, help, labels, MT_COUNTER, &created);
	return x ? &x->v.counter : NULL;
}

int64_t *metrics_gauge(struct metrics *m, const char *name, const char *help, const char *labels)
{
	bool created;
	struct metric *x = metrics__get(m, name, help, labels, MT_GAUGE, &created);
	return x ? &x->v.gauge : NULL;
}

struct metrics_hist *metrics_histogram(struct metrics *m, const char *name, const char *help,
				       const char *labels, const double *bounds, size_t nbounds)
{
	bool created;

	for (size_t i = 0; i < nbounds; i++)
		if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
			return NULL;
	struct metric *x = metrics__get(m, name, help, labels, MT_HISTOGRAM, &created);
	if (!x)
		return NULL;
	if (created) {
		struct metrics_hist *h = &x->v.hist;
		h->nbounds = nbounds;
		h->bounds = metrics__xalloc(malloc((nbounds ? nbounds : 1) * sizeof *h->bounds));
		if (nbounds)
			memcpy(h->bounds, bounds, nbounds * sizeof *bounds);
		h->buckets = metrics__xalloc(calloc(nbounds + 1, sizeof *h->buckets));
	}
	return &x->v.hist;
}

void metrics_hist_observe(struct metrics_hist *h, double v)
{
	size_t i = 0;
	/* Bucket lists are short (about a dozen bounds); a linear scan beats branchy search. */
	while (i < h->nbounds && !(v <= h->bounds[i]))
		i++;
	h->buckets[i]++;
	h->sum += v;
	h->count++;
}

void metrics_hist_set(struct metrics_hist *h, const uint64_t *buckets, size_t n, double sum)
{
	if (!h || n != h->nbounds + 1)
		return;
	h->count = 0;
	for (size_t i = 0; i < n; i++) {
		h->buckets[i] = buckets[i];
		h->count += buckets[i];
	}
	h->sum = sum;
}

__attribute__((format(printf, 2, 3))) static int metrics__printf(struct buf *out, const char *fmt,
								 ...)
{
	va_list ap;
	char small[256];
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof small, fmt, ap);
	va_end(ap);
	if (n < 0)
		return 0;
	if ((size_t)n < sizeof small)
		return buf_append(out, small, (size_t)n);
	/* Long label sets: format straight into the buffer. */
	uint8_t *w;
	int r = buf_reserve(out, (size_t)n + 1, &w);
	if (r)
		return r;
	va_start(ap, fmt);
	vsnprintf((char *)w, (size_t)n + 1, fmt, ap);
	va_end(ap);
	buf_commit(out, (size_t)n);
	return 0;
}

/* Shortest text that reads back as the same double, laid out like Go's
 * strconv.FormatFloat(v, 'g', -1, 64), which the reference Prometheus clients print:
 * an exponent form only below 1e-4 or from 1e6 up ("100000", "1e+06", "1e-07"). */
static const char *metrics__fmt_double(double v, char *dst, size_t cap)
{
	int prec = 1;

	if (isnan(v))
		return "NaN";
	if (isinf(v))
		return v > 0 ? "+Inf" : "-Inf";
	for (; prec < 17; prec++) {
		snprintf(dst, cap, "%.*e", prec - 1, v);
		if (strtod(dst, NULL) == v)
			break;
	}
	snprintf(dst, cap, "%.*e", prec - 1, v);
	const char *e = strchr(dst, 'e');
	int exp = e ? atoi(e + 1) : 0;
	if (exp < -4 || exp >= 6)
		return dst;
	int decimals = prec - 1 - exp;
	snprintf(dst, cap, "%.*f", decimals > 0 ? decimals : 0, v);
	return dst;
}

/* HELP text escapes backslash and newline, per the exposition format. */
static int metrics__help(struct buf *out, const struct metrics__family *f)
{
	int r = metrics__printf(out, "# HELP %s ", f->name);
	for (const char *p = f->help; !r && *p; p++) {
		if (*p == '\\')
			r = buf_append(out, "\\\\", 2);
		else if (*p == '\n')
			r = buf_append(out, "\\n", 2);
		else
			r = buf_append(out, p, 1);
	}
	if (!r)
		r = metrics__printf(out, "\n# TYPE %s %s\n", f->name, metrics__type_names[f->type]);
	return r;
}

static int metrics__hist(struct buf *out, const struct metrics__family *f, const struct metric *x)
{
	const struct metrics_hist *h = &x->v.hist;
	const char *lab = x->labels ? x->labels : "";
	const char *sep = x->labels ? "," : "";
	char num[40];
	uint64_t cum = 0;
	int r = 0;

	for (size_t i = 0; !r && i <= h->nbounds; i++) {
		cum += h->buckets[i];
		const char *le =
		    i < h->nbounds ? metrics__fmt_double(h->bounds[i], num, sizeof num) : "+Inf";
		r = metrics__printf(out, "%s_bucket{%s%sle=\"%s\"} %llu\n", f->name, lab, sep, le,
				    (unsigned long long)cum);
	}
	const char *lo = x->labels ? "{" : "", *lc = x->labels ? "}" : "";
	if (!r)
		r = metrics__printf(out, "%s_sum%s%s%s %s\n", f->name, lo, lab, lc,
				    metrics__fmt_double(h->sum, num, sizeof num));
	if (!r)
		r = metrics__printf(out, "%s_count%s%s%s %llu\n", f->name, lo, lab, lc,
				    (unsigned long long)h->count);
	return r;
}

int metrics_render(const struct metrics *m, struct buf *out)
{
	int r = 0;
	for (const struct metrics__family *f = m->first; !r && f; f = f->next) {
		r = metrics__help(out, f);
		for (const struct metric *x = f->first; !r && x; x = x->next) {
			const char *lo = x->labels ? "{" : "", *lab = x->labels ? x->labels : "",
				   *lc = x->labels ? "}" : "";
			switch (f->type) {
			case MT_COUNTER:
				r = metrics__printf(out, "%s%s%s%s %llu\n", f->name, lo, lab, lc,
						    (unsigned long long)x->v.counter);
				break;
			case MT_GAUGE:
				r = metrics__printf(out, "%s%s%s%s %lld\n", f->name, lo, lab, lc,
						    (long long)x->v.gauge);
				break;
			case MT_HISTOGRAM:
				r = metrics__hist(out, f, x);
				break;
			}
		}
	}
	return r;
}
