/* Reliable-delivery bookkeeping for the internal link, free of sockets and timers:
 * the sender's outbox of unacknowledged frames and the receiver's record of what it has
 * received and processed. See docs/LINK.md "Delivery". */
#ifndef PARLEY_LINK_SEQ_H
#define PARLEY_LINK_SEQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct link_item {
	uint8_t *data; /* the whole framed encoding, length prefix included */
	uint32_t len;
	bool acked;
};

/* Frames we sent that the peer has not acknowledged, in seq order. Seqs are consecutive
 * within our epoch, so the ring is indexed by seq & mask. */
struct link_outbox {
	uint64_t epoch;
	uint64_t next_seq; /* the seq the next pushed frame gets; starts at 1 */
	uint64_t head;     /* oldest unacknowledged seq; == next_seq when empty */
	uint64_t cursor;   /* next seq to transmit on the current connection */
	uint32_t window;   /* most unacknowledged frames allowed */
	size_t max_bytes;  /* most unacknowledged bytes allowed */
	size_t bytes;
	size_t mask;
	struct link_item *ring;
	uint64_t acked_total;
	uint64_t resent_total; /* frames transmitted again after a reconnect */
};

/* window is rounded up to a power of two. Returns 0 or PE_NOMEM. */
int outbox_init(struct link_outbox *ob, uint64_t epoch, uint32_t window,
		size_t max_bytes);
void outbox_deinit(struct link_outbox *ob);

static inline uint32_t outbox_depth(const struct link_outbox *ob)
{
	return (uint32_t)(ob->next_seq - ob->head);
}
/* True when no more frames may be pushed until acknowledgements arrive. */
bool outbox_full(const struct link_outbox *ob);
/* True when the window has drained to below three quarters (producers resume). */
bool outbox_has_room(const struct link_outbox *ob);

/* Takes ownership of a framed buffer whose Frame.seq is ob->next_seq (the caller encodes
 * it) and queues it. Producers stop at outbox_full (the window) but may overshoot it up to
 * the ring's capacity (twice the window); only beyond that PE_FULL (nothing taken). */
int outbox_push(struct link_outbox *ob, uint8_t *data, uint32_t len);

/* Marks [first, last] acknowledged; seqs outside [head, next_seq) are ignored (old or
 * repeated acks are harmless). Frees frames from the head. Returns how many became acked. */
uint64_t outbox_ack(struct link_outbox *ob, uint64_t first, uint64_t last);

/* After a reconnect: transmit every unacknowledged frame again, from the oldest. */
void outbox_rewind(struct link_outbox *ob);

/* The next frame to transmit, advancing the cursor past acknowledged ones; NULL when all
 * queued frames have been transmitted on this connection. */
const struct link_item *outbox_next(struct link_outbox *ob, uint64_t *seq);

/* What we received from one peer epoch. A frame is "received" when handed to the
 * application (de-duplication) and "processed" when it reached a final outcome (what we
 * acknowledge). Bits cover seqs (upto, upto + size]. */
struct link_inbox {
	uint64_t peer_epoch;
	uint64_t upto;     /* every seq <= upto is processed */
	uint64_t max_done; /* highest processed seq */
	uint32_t size;     /* bitmap bits, a power of two */
	uint64_t *recv;
	uint64_t *done;
	bool ack_due;      /* something was processed since the last ack */
	uint64_t dup_total;
};

/* size is rounded up to a power of two; it must be at least the peer's window. */
int inbox_init(struct link_inbox *ib, uint32_t size);
void inbox_deinit(struct link_inbox *ib);
/* A new peer epoch: forget everything. */
void inbox_reset(struct link_inbox *ib, uint64_t peer_epoch);
/* The peer says every seq below first_unacked is settled (e.g. another gateway had them). */
void inbox_skip_to(struct link_inbox *ib, uint64_t first_unacked);

enum inbox_verdict { INBOX_DUP = 0, INBOX_NEW = 1 };
/* Returns INBOX_NEW the first time a seq arrives, INBOX_DUP afterwards (counted), or
 * PE_PROTO for seq 0 or a seq beyond the window. */
int inbox_receive(struct link_inbox *ib, uint64_t seq);
/* Records that a received seq reached its final outcome. */
void inbox_processed(struct link_inbox *ib, uint64_t seq);

struct seq_range {
	uint64_t first, last;
};
/* Fills out[] with the processed set: [1, upto] (when upto > 0) then the runs above it.
 * Returns the number of ranges written (at most cap; runs beyond cap are left for later,
 * which is safe: acks are cumulative and idempotent). Clears ack_due. */
size_t inbox_ranges(struct link_inbox *ib, struct seq_range *out, size_t cap);

#endif
