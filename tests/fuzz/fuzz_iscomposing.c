/* libFuzzer target for the isComposing codec. Invariants checked on every input:
 *  - only PE_PROTO or PE_TOOBIG (or PE_NOMEM) as errors, and a refused document leaves a
 *    zeroed struct;
 *  - an accepted document has a known state, bounded, trimmed, control-free fields;
 *  - it writes back within CHATSTATE_DOC_MAX and that parses to the identical struct;
 *  - the receiving tracker turns it into at most one notification with a sane expiry. */
#include "chatstate.h"
#include "err.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__,         \
				__LINE__);                                                         \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static void check_field(const char *f)
{
	size_t n = strnlen(f, CHATSTATE_FIELD_MAX + 1);
	CHECK(n <= CHATSTATE_FIELD_MAX);
	for (size_t i = 0; i < n; i++)
		CHECK((unsigned char)f[i] >= 0x20 && f[i] != 0x7f);
	CHECK(n == 0 || (f[0] != ' ' && f[n - 1] != ' '));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct chatstate_doc d, back;
	static const struct chatstate_doc zero;
	int rc = chatstate_parse((const char *)data, size, CHATSTATE_DOC_MAX, &d);
	if (rc < 0) {
		CHECK(rc == PE_PROTO || rc == PE_TOOBIG || rc == PE_NOMEM);
		CHECK(rc != PE_TOOBIG || size > CHATSTATE_DOC_MAX);
		CHECK(memcmp(&d, &zero, sizeof d) == 0);
		return 0;
	}
	CHECK(rc == 0 && size <= CHATSTATE_DOC_MAX);
	CHECK(d.state == CHATSTATE_IC_IDLE || d.state == CHATSTATE_IC_ACTIVE);
	CHECK(d.refresh < 1000000000u);
	check_field(d.contenttype);
	check_field(d.lastactive);

	char out[CHATSTATE_DOC_MAX];
	int n = chatstate_write(&d, out, sizeof out);
	CHECK(n > 0 && (size_t)n == strlen(out));
	CHECK(chatstate_parse(out, (size_t)n, CHATSTATE_DOC_MAX, &back) == 0);
	CHECK(memcmp(&back, &d, sizeof d) == 0);

	unsigned t = chatstate_active_timeout(&d);
	CHECK(d.state == CHATSTATE_IC_ACTIVE ? t >= CHATSTATE_REFRESH_MIN : t == 0);
	struct chatstate_rx rx = {0};
	enum chatstate s = chatstate_rx_doc(&rx, &d, 1000);
	CHECK(s == (d.state == CHATSTATE_IC_ACTIVE ? CHATSTATE_COMPOSING : CHATSTATE_NONE));
	CHECK(chatstate_rx_doc(&rx, &d, 2000) == CHATSTATE_NONE); /* never twice */
	CHECK(chatstate_rx_deadline(&rx) == (t ? 2000 + (uint64_t)t * 1000 : 0));
	return 0;
}
