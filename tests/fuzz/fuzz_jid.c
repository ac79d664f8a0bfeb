/* libFuzzer target for JIDs. Invariants checked on every input:
 *  - jid_parse's views tile the input (parts plus separators, nothing lost);
 *  - jid_normalize's result is valid UTF-8, within the part limits, rebuilt exactly by its
 *    views, a fixed point of jid_normalize, and equal (jid_compare) to the input;
 *  - each part preparation is idempotent, and so is nodeprep's mapping step, whose result
 *    nodeprep's equals whenever nodeprep accepts;
 *    a prepared domain is LDH or a bracketed IP literal;
 *  - on short ASCII input the fast paths give exactly what libidn gives. */
#include "err.h"
#include "jid.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stringprep.h>

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__,         \
				__LINE__);                                                         \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static bool known_err(int rc)
{
	return rc == PE_INVAL || rc == PE_TOOBIG;
}

typedef int (*prep_fn)(const char *, size_t, char *, size_t);

/* Runs one part preparation and checks idempotence; returns its result. */
static int check_prep(prep_fn fn, const char *s, size_t n, char *out)
{
	int rc = fn(s, n, out, JID_PART_MAX + 1);
	if (rc < 0) {
		CHECK(known_err(rc) || rc == PE_NOMEM);
		return rc;
	}
	CHECK(rc > 0 && rc <= JID_PART_MAX && (size_t)rc == strlen(out));
	CHECK(jid_utf8_valid(out, (size_t)rc));
	char again[JID_PART_MAX + 1];
	CHECK(fn(out, (size_t)rc, again, sizeof again) == rc);
	CHECK(memcmp(again, out, (size_t)rc + 1) == 0);
	/* a buffer one byte short is refused, not overrun */
	char *tight = malloc((size_t)rc);
	CHECK(fn(s, n, tight, (size_t)rc) == PE_TOOBIG);
	free(tight);
	return rc;
}

static bool ascii_no_nul(const uint8_t *d, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (d[i] == 0 || d[i] >= 0x80)
			return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;

	/* structure */
	struct jid j;
	int rc = jid_parse(s, size, &j);
	CHECK(rc == 0 || known_err(rc));
	if (rc == 0) {
		CHECK(j.domain.n > 0);
		size_t total = j.local.n + (j.local.n ? 1 : 0) + j.domain.n +
			       (j.resource.n ? 1 + j.resource.n : 0);
		CHECK(total == size);
		CHECK(j.domain.p + j.domain.n == s + size || j.domain.p[j.domain.n] == '/');
		CHECK(!j.local.n || (j.local.p == s && j.local.p[j.local.n] == '@'));
	}

	/* whole JID */
	char out[JID_BUF];
	struct jid v;
	rc = jid_normalize(s, size, out, sizeof out, &v);
	if (rc >= 0) {
		CHECK((size_t)rc == strlen(out) && rc <= JID_MAX);
		CHECK(jid_utf8_valid(out, (size_t)rc));
		CHECK(v.domain.n > 0 && v.local.n <= JID_PART_MAX && v.domain.n <= JID_PART_MAX &&
		      v.resource.n <= JID_PART_MAX);
		char rebuilt[JID_BUF];
		int n = snprintf(rebuilt, sizeof rebuilt, "%.*s%s%.*s%s%.*s", (int)v.local.n,
				 v.local.p, v.local.n ? "@" : "", (int)v.domain.n, v.domain.p,
				 v.resource.n ? "/" : "", (int)v.resource.n, v.resource.p);
		CHECK(n == rc && memcmp(rebuilt, out, (size_t)rc) == 0);
		char twice[JID_BUF];
		CHECK(jid_normalize(out, (size_t)rc, twice, sizeof twice, NULL) == rc);
		CHECK(memcmp(twice, out, (size_t)rc + 1) == 0);
		int cmp = 99;
		CHECK(jid_compare(s, size, out, (size_t)rc, 0, &cmp) == 0 && cmp == 0);
		CHECK(jid_equal(out, (size_t)rc, s, size));
		/* the bare JID is the prefix up to the domain's end */
		size_t bare = (size_t)(v.domain.p + v.domain.n - out);
		CHECK(jid_compare(out, bare, s, size, JID_CMP_BARE, &cmp) == 0 && cmp == 0);
	} else {
		CHECK(known_err(rc) || rc == PE_NOMEM);
	}

	/* the part preparations on the whole input */
	char a[JID_PART_MAX + 1], b[JID_PART_MAX + 1];
	int node = check_prep(jid_nodeprep, s, size, a);
	int map = jid_nodeprep_map(s, size, b, sizeof b);
	if (map >= 0) {
		/* the mapping is stable: XEP-0106 escaping relies on it (gateway/addr.c) */
		char m2[JID_PART_MAX + 1];
		CHECK(jid_nodeprep_map(b, (size_t)map, m2, sizeof m2) == map);
		CHECK(memcmp(m2, b, (size_t)map) == 0);
	} else {
		CHECK(known_err(map) || map == PE_NOMEM);
	}
	if (node >= 0) {
		/* nodeprep is its mapping plus checks */
		CHECK(map == node && memcmp(a, b, (size_t)node) == 0);
		for (int i = 0; i < node; i++)
			CHECK(!strchr("\"&'/:<>@ ", a[i]) && (unsigned char)a[i] > 0x20 &&
			      a[i] != 0x7f);
	}
	int res = check_prep(jid_resourceprep, s, size, a);
	(void)res;
	int dom = check_prep(jid_domainprep, s, size, a);
	if (dom >= 0 && a[0] != '[') {
		for (int i = 0; i < dom; i++)
			CHECK((a[i] >= 'a' && a[i] <= 'z') || (a[i] >= '0' && a[i] <= '9') ||
			      a[i] == '-' || a[i] == '.');
	}

	/* ASCII fast paths against libidn */
	if (size > 0 && size < 256 && ascii_no_nul(data, size)) {
		char ref[1024];
		memcpy(ref, s, size);
		ref[size] = '\0';
		int lr = stringprep_xmpp_nodeprep(ref, sizeof ref);
		rc = jid_nodeprep(s, size, a, sizeof a);
		CHECK((lr == STRINGPREP_OK) == (rc >= 0));
		CHECK(rc < 0 || strcmp(a, ref) == 0);
		memcpy(ref, s, size);
		ref[size] = '\0';
		lr = stringprep_xmpp_resourceprep(ref, sizeof ref);
		rc = jid_resourceprep(s, size, a, sizeof a);
		CHECK((lr == STRINGPREP_OK) == (rc >= 0));
		CHECK(rc < 0 || strcmp(a, ref) == 0);
	}
	return 0;
}
