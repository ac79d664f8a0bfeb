/* Link frame codec. The length is validated before any allocation so a peer cannot make
 * us reserve memory by announcing a huge frame. */
#include "frame.h"

#include "err.h"

#include <stdlib.h>
#include <string.h>

long frame_next(const uint8_t *p, size_t n, size_t max, const uint8_t **body,
		size_t *body_len)
{
	if (n < FRAME_HDR)
		return PE_NEEDMORE;
	uint32_t len = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
		       (uint32_t)p[2] << 8 | (uint32_t)p[3];
	if (len == 0)
		return PE_PROTO;
	if (len > max)
		return PE_TOOBIG;
	if (n - FRAME_HDR < len)
		return PE_NEEDMORE;
	*body = p + FRAME_HDR;
	*body_len = len;
	return (long)(FRAME_HDR + len);
}

#define ARENA_BLOCK (64 * 1024)

struct frame_arena_block {
	struct frame_arena_block *next;
	size_t size;
	max_align_t data[];
};

static void *arena_alloc(void *ud, size_t size)
{
	struct frame_arena *a = ud;
	size = (size + 15) & ~(size_t)15;
	struct frame_arena_block *b = a->blocks;
	if (!b || a->used + size > b->size) {
		size_t bs = size > ARENA_BLOCK ? size : ARENA_BLOCK;
		b = malloc(sizeof *b + bs);
		if (!b)
			return NULL;
		b->size = bs;
		b->next = a->blocks;
		a->blocks = b;
		a->used = 0;
	}
	void *r = (char *)b->data + a->used;
	a->used += size;
	return r;
}

static void arena_free(void *ud, void *p)
{
	(void)ud;
	(void)p; /* released in bulk by frame_arena_reset */
}

void frame_arena_init(struct frame_arena *a)
{
	memset(a, 0, sizeof *a);
	a->alloc.alloc = arena_alloc;
	a->alloc.free = arena_free;
	a->alloc.allocator_data = a;
}

void frame_arena_reset(struct frame_arena *a)
{
	struct frame_arena_block *b = a->blocks;
	if (!b)
		return;
	/* keep the newest block if it is a standard one; drop the rest */
	struct frame_arena_block *keep = b->size == ARENA_BLOCK ? b : NULL;
	struct frame_arena_block *n = keep ? b->next : b;
	while (n) {
		struct frame_arena_block *next = n->next;
		free(n);
		n = next;
	}
	if (keep)
		keep->next = NULL;
	a->blocks = keep;
	a->used = 0;
}

void frame_arena_deinit(struct frame_arena *a)
{
	frame_arena_reset(a);
	free(a->blocks);
	a->blocks = NULL;
}

Parley__Link__Frame *frame_unpack(struct frame_arena *a, const uint8_t *body,
				  size_t len)
{
	Parley__Link__Frame *f =
		parley__link__frame__unpack(&a->alloc, len, body);
	if (f && f->body_case == PARLEY__LINK__FRAME__BODY__NOT_SET)
		return NULL;
	return f;
}

bool frame_has_unknown(const ProtobufCMessage *m)
{
	if (!m)
		return false;
	if (m->n_unknown_fields)
		return true;
	const ProtobufCMessageDescriptor *d = m->descriptor;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *fd = &d->fields[i];
		if (fd->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		const char *base = (const char *)m + fd->offset;
		if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)((const char *)m + fd->quantifier_offset);
			ProtobufCMessage *const *v = *(ProtobufCMessage *const *const *)base;
			for (size_t k = 0; k < n; k++)
				if (frame_has_unknown(v[k]))
					return true;
			continue;
		}
		if ((fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    *(const uint32_t *)((const char *)m + fd->quantifier_offset) != fd->id)
			continue;
		if (frame_has_unknown(*(ProtobufCMessage *const *)base))
			return true;
	}
	return false;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

int frame_pack(const Parley__Link__Frame *f, struct buf *out, size_t max)
{
	size_t sz = parley__link__frame__get_packed_size(f);
	if (sz > max || sz == 0)
		return PE_TOOBIG;
	uint8_t *w;
	int r = buf_reserve(out, FRAME_HDR + sz, &w);
	if (r)
		return r;
	put_be32(w, (uint32_t)sz);
	parley__link__frame__pack(f, w + FRAME_HDR);
	buf_commit(out, FRAME_HDR + sz);
	return 0;
}

uint8_t *frame_pack_alloc(const Parley__Link__Frame *f, size_t max, uint32_t *len)
{
	size_t sz = parley__link__frame__get_packed_size(f);
	if (sz > max || sz == 0)
		return NULL;
	uint8_t *w = malloc(FRAME_HDR + sz);
	if (!w)
		return NULL;
	put_be32(w, (uint32_t)sz);
	parley__link__frame__pack(f, w + FRAME_HDR);
	*len = (uint32_t)(FRAME_HDR + sz);
	return w;
}
