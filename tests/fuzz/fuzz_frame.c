/* libFuzzer target for the link frame decoder: framing, protobuf unpack into the arena, and
 * a re-encoding invariant (what we decode re-encodes to a fixed point). */
#include "err.h"
#include "frame.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct frame_arena a;
	static int init;
	if (!init) {
		frame_arena_init(&a);
		init = 1;
	}
	const size_t max = 64 * 1024;
	size_t off = 0;
	while (off < size) {
		const uint8_t *body;
		size_t blen;
		long r = frame_next(data + off, size - off, max, &body, &blen);
		if (r == PE_NEEDMORE || r == PE_TOOBIG || r == PE_PROTO)
			break;
		if (r < (long)(FRAME_HDR + 1) || (size_t)r > size - off)
			abort(); /* consumed must cover header + non-empty body, within input */
		if (body != data + off + FRAME_HDR || blen + FRAME_HDR != (size_t)r)
			abort();
		Parley__Link__Frame *f = frame_unpack(&a, body, blen);
		/* protobuf-c keeps unknown fields (even an over-long tag of field 0, which it
		 * rejects once re-encoded); we never re-encode what we received, so the fixed
		 * point is asserted for frames without them. */
		if (f && !frame_has_unknown(&f->base)) {
			uint32_t l1, l2;
			uint8_t *p1 = frame_pack_alloc(f, max * 4, &l1);
			if (!p1)
				abort();
			Parley__Link__Frame *g = frame_unpack(&a, p1 + FRAME_HDR, l1 - FRAME_HDR);
			if (!g)
				abort(); /* our own encoding must decode */
			uint8_t *p2 = frame_pack_alloc(g, max * 4, &l2);
			if (!p2 || l1 != l2 || memcmp(p1, p2, l1) != 0)
				abort();
			free(p1);
			free(p2);
		}
		frame_arena_reset(&a);
		off += (size_t)r;
	}
	return 0;
}
