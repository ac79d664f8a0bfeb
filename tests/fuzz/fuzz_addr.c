/* libFuzzer target for the address mapping. Invariants checked on every input:
 *  - as a SIP URI (B1): only the documented errors; a result is a normalised JID, maps to
 *    a SIP URI (B2) which maps back to the very same JID (B1), and B4 wraps the same URI;
 *  - as a JID (B2): a result is printable ASCII starting "sip:" and parses back (B1) to a
 *    valid JID or is refused only for the XEP-0106 reasons; a JID without backslashes
 *    comes back exactly as normalised;
 *  - XEP-0106: unescape(escape(x)) == x for any bytes. */
#include "addr.h"
#include "err.h"
#include "jid.h"

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

static char jid1[JID_BUF], jid2[JID_BUF], norm[JID_BUF];
static char uri1[ADDR_URI_BUF], uri2[ADDR_URI_BUF];
static char esc[3 * 4096 + 1], unesc[4096 + 1];

static void sip_first(const char *s, size_t size)
{
	struct jid j;
	int rc = addr_sip_to_jid(s, size, jid1, sizeof jid1, &j);
	if (rc < 0) {
		CHECK(rc == PE_SCHEME || rc == PE_PROTO || rc == PE_INVAL || rc == PE_TOOBIG ||
		      rc == PE_NOMEM);
		CHECK(addr_status(rc) == 416 || addr_status(rc) == 414 || addr_status(rc) == 400);
		return;
	}
	CHECK((size_t)rc == strlen(jid1));
	/* a normalised JID, with views into it */
	CHECK(jid_normalize(jid1, (size_t)rc, norm, sizeof norm, NULL) == rc);
	CHECK(memcmp(norm, jid1, (size_t)rc) == 0);
	CHECK(j.domain.n > 0 && j.domain.p >= jid1 && j.domain.p + j.domain.n <= jid1 + rc);
	/* XEP-0106: never a leading or trailing escaped space */
	if (j.local.n >= 3) {
		CHECK(memcmp(j.local.p, "\\20", 3) != 0);
		CHECK(memcmp(j.local.p + j.local.n - 3, "\\20", 3) != 0);
	}
	/* B2 then B1 gives the same JID */
	int u = addr_jid_to_sip(jid1, (size_t)rc, 0, uri1, sizeof uri1);
	CHECK(u > 4 && memcmp(uri1, "sip:", 4) == 0);
	int back = addr_sip_to_jid(uri1, (size_t)u, jid2, sizeof jid2, NULL);
	if (back != rc || memcmp(jid2, jid1, (size_t)rc) != 0) {
		fprintf(stderr, "B1 %.*s -> %s -> %s -> %d %s\n", (int)size, s, jid1, uri1, back,
			back >= 0 ? jid2 : "");
		abort();
	}
	/* B4 is the same URI in angle brackets */
	int f = addr_sip_from(jid1, (size_t)rc, uri2, sizeof uri2);
	CHECK(f == u + 2 && uri2[0] == '<' && uri2[f - 1] == '>' &&
	      memcmp(uri2 + 1, uri1, (size_t)u) == 0);
}

static void xmpp_first(const char *s, size_t size)
{
	int u = addr_jid_to_sip(s, size, 0, uri1, sizeof uri1);
	if (u < 0) {
		CHECK(u == PE_INVAL || u == PE_TOOBIG || u == PE_NOMEM);
		return;
	}
	CHECK((size_t)u == strlen(uri1) && u <= ADDR_URI_MAX && memcmp(uri1, "sip:", 4) == 0);
	for (int i = 0; i < u; i++)
		CHECK(uri1[i] > 0x20 && uri1[i] < 0x7f && !strchr("\"<>\\^`{|}#", uri1[i]));
	struct jid j;
	int n = jid_normalize(s, size, norm, sizeof norm, &j);
	CHECK(n > 0);
	/* without the resource */
	int bare = addr_jid_to_sip(s, size, ADDR_NO_GR, uri2, sizeof uri2);
	CHECK(bare > 0 && (j.resource.n ? bare < u : bare == u));
	CHECK(memcmp(uri2, uri1, (size_t)bare) == 0);
	int rc = addr_sip_to_jid(uri1, (size_t)u, jid2, sizeof jid2, NULL);
	if (rc < 0) {
		/* only XEP-0106 trouble: escapes at the ends or ones NFKC would alter */
		CHECK(rc == PE_INVAL || rc == PE_TOOBIG);
		CHECK(j.local.n && memchr(j.local.p, '\\', j.local.n));
		return;
	}
	if (!j.local.n || !memchr(j.local.p, '\\', j.local.n)) {
		if (rc != n || memcmp(jid2, norm, (size_t)n) != 0) {
			fprintf(stderr, "B2 %s -> %s -> %s\n", norm, uri1, jid2);
			abort();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	sip_first(s, size);
	xmpp_first(s, size);
	if (size <= 4096) {
		int e = addr_escape_local(s, size, esc, sizeof esc);
		CHECK(e >= (int)size && e <= 3 * (int)size);
		int d = addr_unescape_local(esc, (size_t)e, unesc, sizeof unesc);
		CHECK(d == (int)size && memcmp(unesc, s, size) == 0);
	}
	return 0;
}
