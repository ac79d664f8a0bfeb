/* Bounded byte buffers: every buffer that grows on peer input has a hard maximum. */
#ifndef PARLEY_BUF_H
#define PARLEY_BUF_H

#include <stddef.h>
#include <stdint.h>

/* Readable bytes are data[off .. off+len); the caller owns the struct (embeddable). */
struct buf {
	uint8_t *data;
	size_t off;
	size_t len;
	size_t cap;
	size_t max; /* bound on off-compacted content (len); 0 = unbounded */
};

void buf_init(struct buf *b, size_t max);
/* Frees storage; the buffer may be reused after buf_init. */
void buf_deinit(struct buf *b);

/* NULL while nothing is allocated (after buf_init or buf_release_if_empty). */
static inline uint8_t *buf_head(const struct buf *b) { return b->data ? b->data + b->off : NULL; }
static inline size_t buf_len(const struct buf *b) { return b->len; }

/* Makes at least n writable bytes available after the readable ones and stores their
 * address in *out. Compacts or grows (doubling) as needed. Returns 0, PE_TOOBIG if
 * len + n would exceed max, or PE_NOMEM. */
int buf_reserve(struct buf *b, size_t n, uint8_t **out);
/* Marks n bytes written after a buf_reserve as readable. */
void buf_commit(struct buf *b, size_t n);
/* buf_reserve + memcpy + buf_commit. */
int buf_append(struct buf *b, const void *p, size_t n);
/* Drops n readable bytes from the front (n <= len). */
void buf_consume(struct buf *b, size_t n);
/* Frees storage if the buffer is empty, so idle connections hold no buffer memory. */
void buf_release_if_empty(struct buf *b);

#endif
