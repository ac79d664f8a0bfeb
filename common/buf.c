/* Bounded byte buffers. Consumption only moves an offset; compaction happens lazily
 * when space is needed, so a reader that drains in small steps costs no memmove. */
#include "buf.h"

#include "err.h"

#include <stdlib.h>
#include <string.h>

void buf_init(struct buf *b, size_t max)
{
	memset(b, 0, sizeof *b);
	b->max = max;
}

void buf_deinit(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->off = b->len = b->cap = 0;
}

int buf_reserve(struct buf *b, size_t n, uint8_t **out)
{
	if (b->max && (n > b->max || b->len > b->max - n))
		return PE_TOOBIG;
	if (b->cap - b->off - b->len >= n) {
		/* n == 0 on an unallocated buffer: NULL + 0 is undefined behaviour. */
		*out = b->data ? b->data + b->off + b->len : NULL;
		return 0;
	}
	if (b->off) { /* compact first */
		memmove(b->data, b->data + b->off, b->len);
		b->off = 0;
		if (b->cap - b->len >= n) {
			*out = b->data + b->len;
			return 0;
		}
	}
	size_t want = b->cap ? b->cap : 256;
	while (want - b->len < n)
		want *= 2;
	if (b->max && want > b->max)
		want = b->max;
	uint8_t *d = realloc(b->data, want);
	if (!d)
		return PE_NOMEM;
	b->data = d;
	b->cap = want;
	*out = b->data + b->len;
	return 0;
}

void buf_commit(struct buf *b, size_t n) { b->len += n; }

int buf_append(struct buf *b, const void *p, size_t n)
{
	uint8_t *w;
	int r = buf_reserve(b, n, &w);
	if (r)
		return r;
	if (n)
		memcpy(w, p, n);
	b->len += n;
	return 0;
}

void buf_consume(struct buf *b, size_t n)
{
	b->off += n;
	b->len -= n;
	if (b->len == 0)
		b->off = 0;
}

void buf_release_if_empty(struct buf *b)
{
	if (b->len == 0 && b->data) {
		free(b->data);
		b->data = NULL;
		b->cap = b->off = 0;
	}
}
