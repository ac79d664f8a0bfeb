/* Stream framing for SIP over TCP/TLS: where one message ends, before any parsing. */
#ifndef PARLEY_SIP_FRAME_H
#define PARLEY_SIP_FRAME_H

#include <stddef.h>
#include <stdint.h>

/* Bounds are parameters: exceeding one is an error for the connection. */
struct sip_frame_limits {
	size_t max_header; /* start line + headers + the empty line */
	size_t max_body;   /* Content-Length */
};

/* Resumable progress, kept by the caller between calls on the same buffer so a header
 * block arriving in pieces is not rescanned from its start. Zero it (or call
 * sip_frame_reset) after consuming a frame. */
struct sip_frame_state {
	size_t scanned; /* bytes known to hold no "\r\n\r\n" terminator start */
};

enum sip_frame_kind {
	SIP_FRAME_MESSAGE, /* one message: msg_len bytes, header_len of them the header block */
	SIP_FRAME_PING,	   /* RFC 5626 keep-alive "\r\n\r\n": answer with "\r\n" */
	SIP_FRAME_PONG,	   /* a lone "\r\n" while a pong was expected */
	SIP_FRAME_CRLF,	   /* a stray "\r\n" before a message: ignore (RFC 3261 §7.5) */
};

struct sip_frame {
	enum sip_frame_kind kind;
	size_t len;	   /* bytes this frame occupies at the start of the buffer */
	size_t header_len; /* MESSAGE: bytes up to and including the empty line */
	size_t body_len;   /* MESSAGE: Content-Length */
};

/* Flags for sip_frame_scan. */
#define SIP_FRAME_EXPECT_PONG 1u /* we sent a ping: a lone "\r\n" is its pong */

static inline void sip_frame_reset(struct sip_frame_state *st)
{
	st->scanned = 0;
}

/* Looks at buf[0..len) (the unconsumed stream bytes) for one frame. Returns:
 *  > 0          a frame of that many bytes was found and described in *f;
 *  PE_NEEDMORE  no complete frame yet (state updated to resume);
 *  PE_TOOBIG    the header block exceeds max_header or Content-Length max_body;
 *  PE_PROTO     a header block without a valid Content-Length (required on streams:
 *               missing, negative, not a number, or two that disagree), or a header
 *               block that does not start like a SIP message. On PE_PROTO and
 *               PE_TOOBIG with a complete header block f->header_len is set (else 0)
 *               so the caller can try to answer 400 before closing.
 * Pure: no allocation, no I/O. */
int sip_frame_scan(const uint8_t *buf, size_t len, const struct sip_frame_limits *lim,
		   struct sip_frame_state *st, unsigned flags, struct sip_frame *f);

#endif
