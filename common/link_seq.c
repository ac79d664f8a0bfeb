/* Outbox and inbox of the internal link. Acknowledgements are idempotent ranges, so
 * a lost or repeated ack, or a Hello repeating what an Ack said, is harmless. */
#include "link_seq.h"

#include "err.h"

#include <stdlib.h>
#include <string.h>

static uint32_t pow2_at_least(uint32_t v)
{
	uint32_t p = 64;
	while (p < v && p < (1u << 30))
		p <<= 1;
	return p;
}

int outbox_init(struct link_outbox *ob, uint64_t epoch, uint32_t window,
		size_t max_bytes)
{
	memset(ob, 0, sizeof *ob);
	/* Twice the window: producers pause at the window but may finish what they already
	 * read (a socket buffer's worth of stanzas) without anything being refused. */
	uint32_t size = pow2_at_least(window) * 2;
	ob->ring = calloc(size, sizeof *ob->ring);
	if (!ob->ring)
		return PE_NOMEM;
	ob->epoch = epoch;
	ob->next_seq = ob->head = ob->cursor = 1;
	ob->window = window;
	ob->mask = size - 1;
	ob->max_bytes = max_bytes;
	return 0;
}

void outbox_deinit(struct link_outbox *ob)
{
	for (uint64_t s = ob->head; s < ob->next_seq; s++)
		free(ob->ring[s & ob->mask].data);
	free(ob->ring);
	ob->ring = NULL;
}

bool outbox_full(const struct link_outbox *ob)
{
	return outbox_depth(ob) >= ob->window ||
	       (ob->max_bytes && ob->bytes >= ob->max_bytes);
}

bool outbox_has_room(const struct link_outbox *ob)
{
	return outbox_depth(ob) < ob->window - ob->window / 4 &&
	       (!ob->max_bytes || ob->bytes < ob->max_bytes - ob->max_bytes / 4);
}

int outbox_push(struct link_outbox *ob, uint8_t *data, uint32_t len)
{
	if (outbox_depth(ob) > ob->mask)
		return PE_FULL;
	struct link_item *it = &ob->ring[ob->next_seq & ob->mask];
	it->data = data;
	it->len = len;
	it->acked = false;
	ob->bytes += len;
	ob->next_seq++;
	return 0;
}

uint64_t outbox_ack(struct link_outbox *ob, uint64_t first, uint64_t last)
{
	uint64_t n = 0;
	if (first < ob->head)
		first = ob->head;
	if (last >= ob->next_seq)
		last = ob->next_seq - 1;
	for (uint64_t s = first; s <= last && s >= first; s++) {
		struct link_item *it = &ob->ring[s & ob->mask];
		if (!it->acked) {
			it->acked = true;
			n++;
		}
	}
	while (ob->head < ob->next_seq && ob->ring[ob->head & ob->mask].acked) {
		struct link_item *it = &ob->ring[ob->head & ob->mask];
		ob->bytes -= it->len;
		free(it->data);
		it->data = NULL;
		it->acked = false;
		ob->head++;
	}
	if (ob->cursor < ob->head)
		ob->cursor = ob->head;
	ob->acked_total += n;
	return n;
}

void outbox_rewind(struct link_outbox *ob)
{
	for (uint64_t s = ob->head; s < ob->cursor; s++)
		if (!ob->ring[s & ob->mask].acked)
			ob->resent_total++;
	ob->cursor = ob->head;
}

const struct link_item *outbox_next(struct link_outbox *ob, uint64_t *seq)
{
	while (ob->cursor < ob->next_seq) {
		uint64_t s = ob->cursor++;
		struct link_item *it = &ob->ring[s & ob->mask];
		if (!it->acked) {
			*seq = s;
			return it;
		}
	}
	return NULL;
}

/* ---- inbox ---- */

#define BIT_GET(v, i) (((v)[(i) >> 6] >> ((i)&63)) & 1)
#define BIT_SET(v, i) ((v)[(i) >> 6] |= (uint64_t)1 << ((i)&63))
#define BIT_CLR(v, i) ((v)[(i) >> 6] &= ~((uint64_t)1 << ((i)&63)))

int inbox_init(struct link_inbox *ib, uint32_t size)
{
	memset(ib, 0, sizeof *ib);
	ib->size = pow2_at_least(size);
	ib->recv = calloc(ib->size / 64, sizeof(uint64_t));
	ib->done = calloc(ib->size / 64, sizeof(uint64_t));
	if (!ib->recv || !ib->done) {
		inbox_deinit(ib);
		return PE_NOMEM;
	}
	return 0;
}

void inbox_deinit(struct link_inbox *ib)
{
	free(ib->recv);
	free(ib->done);
	ib->recv = ib->done = NULL;
}

void inbox_reset(struct link_inbox *ib, uint64_t peer_epoch)
{
	ib->peer_epoch = peer_epoch;
	ib->upto = ib->max_done = 0;
	memset(ib->recv, 0, ib->size / 8);
	memset(ib->done, 0, ib->size / 8);
	ib->ack_due = false;
}

/* Moves upto forward over processed seqs, clearing their bits for reuse. */
static void inbox_advance(struct link_inbox *ib)
{
	uint32_t m = ib->size - 1;
	while (BIT_GET(ib->done, (ib->upto + 1) & m)) {
		ib->upto++;
		BIT_CLR(ib->done, ib->upto & m);
		BIT_CLR(ib->recv, ib->upto & m);
	}
	if (ib->max_done < ib->upto)
		ib->max_done = ib->upto;
}

void inbox_skip_to(struct link_inbox *ib, uint64_t first_unacked)
{
	if (first_unacked == 0 || first_unacked - 1 <= ib->upto)
		return;
	uint64_t target = first_unacked - 1;
	uint32_t m = ib->size - 1;
	if (target - ib->upto >= ib->size) {
		memset(ib->recv, 0, ib->size / 8);
		memset(ib->done, 0, ib->size / 8);
		ib->upto = target;
	} else {
		while (ib->upto < target) {
			ib->upto++;
			BIT_CLR(ib->done, ib->upto & m);
			BIT_CLR(ib->recv, ib->upto & m);
		}
	}
	inbox_advance(ib);
	ib->ack_due = true;
}

int inbox_receive(struct link_inbox *ib, uint64_t seq)
{
	if (seq == 0)
		return PE_PROTO;
	if (seq <= ib->upto) {
		ib->dup_total++;
		return INBOX_DUP;
	}
	if (seq - ib->upto > ib->size)
		return PE_PROTO;
	uint32_t i = seq & (ib->size - 1);
	if (BIT_GET(ib->recv, i)) {
		ib->dup_total++;
		return INBOX_DUP;
	}
	BIT_SET(ib->recv, i);
	return INBOX_NEW;
}

void inbox_processed(struct link_inbox *ib, uint64_t seq)
{
	if (seq <= ib->upto || seq - ib->upto > ib->size)
		return;
	BIT_SET(ib->done, seq & (ib->size - 1));
	if (seq > ib->max_done)
		ib->max_done = seq;
	ib->ack_due = true;
	if (seq == ib->upto + 1)
		inbox_advance(ib);
}

size_t inbox_ranges(struct link_inbox *ib, struct seq_range *out, size_t cap)
{
	size_t n = 0;
	uint32_t m = ib->size - 1;
	ib->ack_due = false;
	if (cap == 0)
		return 0;
	if (ib->upto > 0)
		out[n++] = (struct seq_range){1, ib->upto};
	uint64_t s = ib->upto + 1;
	while (s <= ib->max_done && n < cap) {
		if (!BIT_GET(ib->done, s & m)) {
			s++;
			continue;
		}
		uint64_t first = s;
		while (s + 1 <= ib->max_done && BIT_GET(ib->done, (s + 1) & m))
			s++;
		out[n++] = (struct seq_range){first, s};
		s++;
	}
	return n;
}
