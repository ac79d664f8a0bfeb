/* Metrics registry: counters, gauges and histograms rendered as Prometheus text (format 0.0.4). */
#ifndef PARLEY_METRICS_H
#define PARLEY_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct buf;
struct metrics;	     /* registry; owns every family and member */
struct metric;	     /* one member of a family: a name with one label set */
struct metrics_hist; /* a histogram member */

/* Returns an empty registry. Allocation failure aborts (a control allocation). */
struct metrics *metrics_new(void);
/* Frees the registry and every slot it handed out. NULL is a no-op. */
void metrics_free(struct metrics *m);

/* The registration calls below return the slot for (name, labels), creating it on first use;
 * the same name and labels return the same slot, which stays valid until metrics_free, so
 * hot paths keep the pointer and do (*ctr)++ with no lookup. The registry is not thread-safe.
 * name must match [a-zA-Z_:][a-zA-Z0-9_:]*. labels is NULL or a label list rendered verbatim
 * inside {}, e.g. "peer=\"example.org\",dir=\"in\"": the caller escapes label values.
 * help is taken from the first registration of a family. Strings are copied.
 * Returns NULL if name is invalid or already registered with another type. */
uint64_t *metrics_counter(struct metrics *m, const char *name, const char *help,
			  const char *labels);
int64_t *metrics_gauge(struct metrics *m, const char *name, const char *help, const char *labels);
/* bounds are the finite, strictly increasing upper bounds of the buckets (copied); +Inf is
 * implied. A second registration of the same member keeps the first bounds. Returns NULL also
 * for bounds that are not finite and strictly increasing. */
struct metrics_hist *metrics_histogram(struct metrics *m, const char *name, const char *help,
				       const char *labels, const double *bounds, size_t nbounds);
/* Counts v in the first bucket whose bound is >= v (or only +Inf) and adds it to the sum. */
void metrics_hist_observe(struct metrics_hist *h, double v);
/* Replaces h's state with counts a module keeps itself in fixed buckets (copied by a
 * collector at scrape time, so the module's hot path needs no registry): buckets[0..n) not
 * cumulative, the last one +Inf, n = h's number of bounds + 1 (else nothing changes); the
 * count is their total. NULL h is a no-op. */
void metrics_hist_set(struct metrics_hist *h, const uint64_t *buckets, size_t n, double sum);

/* Appends every family in registration order, members in registration order:
 * "# HELP", "# TYPE", then samples; a histogram gives cumulative name_bucket{...,le="b"}
 * lines ending with le="+Inf", then name_sum and name_count.
 * Returns 0, or a buf_append error (PE_TOOBIG, PE_NOMEM) with out holding a partial text. */
int metrics_render(const struct metrics *m, struct buf *out);

#endif
