/* Link frame codec: 4-byte big-endian length + one protobuf Frame. Pure, no I/O. */
#ifndef PARLEY_FRAME_H
#define PARLEY_FRAME_H

#include "buf.h"
#include "link.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FRAME_HDR 4
#define FRAME_DEFAULT_MAX (1024 * 1024)

/* Finds the next complete frame at p[0..n). Returns the number of bytes it spans
 * (FRAME_HDR + body) and sets *body and *body_len, PE_NEEDMORE if incomplete, or PE_TOOBIG
 * if the announced length exceeds max (checked before anything is allocated). A zero
 * length is PE_PROTO: every frame carries a body. */
long frame_next(const uint8_t *p, size_t n, size_t max, const uint8_t **body,
		size_t *body_len);

/* A bump allocator for unpacked frames: protobuf-c allocates every string and
 * sub-message of a frame; here they all come from a few blocks released in one call. */
struct frame_arena {
	ProtobufCAllocator alloc;
	struct frame_arena_block *blocks;
	size_t used; /* bytes used in the head block */
};

void frame_arena_init(struct frame_arena *a);
/* Releases everything unpacked since the last reset, keeping one block for reuse. */
void frame_arena_reset(struct frame_arena *a);
void frame_arena_deinit(struct frame_arena *a);

/* Unpacks a frame body into the arena. Returns NULL (PE_PROTO) if it does not parse or has
 * no body case set. Valid until the next frame_arena_reset. */
Parley__Link__Frame *frame_unpack(struct frame_arena *a, const uint8_t *body,
				  size_t len);

/* True if m or any sub-message carries fields this build does not know (a newer peer, or
 * protobuf-c keeping an over-long tag of field 0, which it rejects when re-encoded). */
bool frame_has_unknown(const ProtobufCMessage *m);

/* Appends the framed encoding of f to out. Returns 0, PE_TOOBIG if the body would exceed
 * max, or a buf error. */
int frame_pack(const Parley__Link__Frame *f, struct buf *out, size_t max);

/* Packs f into a new malloc'd buffer (header included); *len receives its size.
 * Returns NULL on PE_TOOBIG. The caller frees. */
uint8_t *frame_pack_alloc(const Parley__Link__Frame *f, size_t max, uint32_t *len);

#endif
