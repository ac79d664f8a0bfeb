/* Unit tests for JIDs: structure, the three stringprep profiles and their ASCII fast
 * paths (checked against libidn byte by byte), domains, limits, comparison (MAPPING B3). */
#include "err.h"
#include "jid.h"

#include <dlfcn.h>
#include <idna.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stringprep.h>

#include <cmocka.h>

/* ---- libidn call counting ---------------------------------------------------------
 * The test binary defines stringprep() and idna_to_ascii_8z(), so jid.c's calls land here
 * first; they count and forward to libidn. This is how "ASCII never reaches libidn" is
 * checked rather than assumed. */

static unsigned g_idn_calls;

int stringprep(char *in, size_t maxlen, Stringprep_profile_flags flags,
	       const Stringprep_profile *profile)
{
	typedef int (*fn_t)(char *, size_t, Stringprep_profile_flags, const Stringprep_profile *);
	static fn_t real;
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "stringprep");
	g_idn_calls++;
	return real(in, maxlen, flags, profile);
}

int idna_to_ascii_8z(const char *input, char **output, int flags)
{
	typedef int (*fn_t)(const char *, char **, int);
	static fn_t real;
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "idna_to_ascii_8z");
	g_idn_calls++;
	return real(input, output, flags);
}

/* ---- helpers ---------------------------------------------------------------------- */

static int norm(const char *in, char *out, size_t cap)
{
	return jid_normalize(in, strlen(in), out, cap, NULL);
}

static void check_view(struct jid_view v, const char *want)
{
	if (!want) {
		assert_int_equal(v.n, 0);
		return;
	}
	assert_int_equal(v.n, strlen(want));
	assert_memory_equal(v.p, want, v.n);
}

/* ---- jid_parse -------------------------------------------------------------------- */

static void test_parse_structure(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		int rc;
		const char *local, *domain, *resource;
	} T[] = {
	    {"example.com", 0, NULL, "example.com", NULL},
	    {"juliet@example.com", 0, "juliet", "example.com", NULL},
	    {"juliet@example.com/balcony", 0, "juliet", "example.com", "balcony"},
	    {"example.com/res", 0, NULL, "example.com", "res"},
	    /* RFC 7622 §3.2: the resource starts at the first '/', '@' and '/' allowed in it */
	    {"a@b/c@d/e", 0, "a", "b", "c@d/e"},
	    {"b/c@d", 0, NULL, "b", "c@d"},
	    /* only the first '@' separates; the rest is the domain's problem */
	    {"a@b@c", 0, "a", "b@c", NULL},
	    {"", PE_INVAL, NULL, NULL, NULL},
	    {"@example.com", PE_INVAL, NULL, NULL, NULL},
	    {"juliet@", PE_INVAL, NULL, NULL, NULL},
	    {"juliet@/r", PE_INVAL, NULL, NULL, NULL},
	    {"example.com/", PE_INVAL, NULL, NULL, NULL},
	    {"/r", PE_INVAL, NULL, NULL, NULL},
	    {"@", PE_INVAL, NULL, NULL, NULL},
	};
	for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
		struct jid j;
		int rc = jid_parse(T[i].in, strlen(T[i].in), &j);
		if (rc != T[i].rc)
			fail_msg("jid_parse(\"%s\") = %d, want %d", T[i].in, rc, T[i].rc);
		if (rc == 0) {
			check_view(j.local, T[i].local);
			check_view(j.domain, T[i].domain);
			check_view(j.resource, T[i].resource);
		}
	}
	/* not NUL-terminated, and a NUL inside */
	struct jid j;
	assert_int_equal(jid_parse("a@b.c/dXXX", 7, &j), 0);
	check_view(j.resource, "d");
	assert_int_equal(jid_parse("a@b\0c", 5, &j), PE_INVAL);
}

static void test_parse_limits(void **state)
{
	(void)state;
	static char buf[4 * JID_PART_MAX];
	struct jid j;
	/* 1023-byte parts are fine, 1024 are not, each part on its own */
	memset(buf, 'a', JID_PART_MAX);
	memcpy(buf + JID_PART_MAX, "@d", 2);
	assert_int_equal(jid_parse(buf, JID_PART_MAX + 2, &j), 0);
	memset(buf, 'a', JID_PART_MAX + 1);
	memcpy(buf + JID_PART_MAX + 1, "@d", 2);
	assert_int_equal(jid_parse(buf, JID_PART_MAX + 3, &j), PE_TOOBIG);
	memset(buf, 'a', JID_PART_MAX + 1);
	assert_int_equal(jid_parse(buf, JID_PART_MAX, &j), 0);
	assert_int_equal(jid_parse(buf, JID_PART_MAX + 1, &j), PE_TOOBIG);
	memcpy(buf, "d/", 2);
	memset(buf + 2, 'r', JID_PART_MAX + 1);
	assert_int_equal(jid_parse(buf, 2 + JID_PART_MAX, &j), 0);
	assert_int_equal(jid_parse(buf, 2 + JID_PART_MAX + 1, &j), PE_TOOBIG);
}

/* ---- the ASCII fast paths against libidn --------------------------------------------- */

/* For every ASCII byte c, "x" c "Y" must be accepted or refused exactly as libidn's
 * profile does, with the same output. */
static void test_ascii_matches_libidn(void **state)
{
	(void)state;
	for (int c = 1; c < 0x80; c++) {
		char in[4] = {'x', (char)c, 'Y', 0}, ref[16], out[16];

		memcpy(ref, in, 4);
		int lr = stringprep_xmpp_nodeprep(ref, sizeof ref);
		int rc = jid_nodeprep(in, 3, out, sizeof out);
		if ((lr == 0) != (rc >= 0))
			fail_msg("nodeprep 0x%02x: libidn %d, ours %d", c, lr, rc);
		if (lr == 0)
			assert_string_equal(out, ref);
		if (lr != 0)
			assert_int_equal(rc, PE_INVAL);

		memcpy(ref, in, 4);
		lr = stringprep_xmpp_resourceprep(ref, sizeof ref);
		rc = jid_resourceprep(in, 3, out, sizeof out);
		if ((lr == 0) != (rc >= 0))
			fail_msg("resourceprep 0x%02x: libidn %d, ours %d", c, lr, rc);
		if (lr == 0)
			assert_string_equal(out, ref);

		/* the mapping alone never refuses and lower-cases like nodeprep */
		memcpy(ref, in, 4);
		assert_int_equal(jid_nodeprep_map(in, 3, out, sizeof out), 3);
		char low = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
		assert_int_equal(out[1], low);
		assert_int_equal(out[2], 'y');

		/* domains: libidn with STD3 rules accepts exactly LDH; so do we */
		char dom[8] = {'a', (char)c, 'b', '.', 'c', 'o', 0};
		char *a = NULL;
		lr = idna_to_ascii_8z(dom, &a, IDNA_USE_STD3_ASCII_RULES);
		rc = jid_domainprep(dom, 6, out, sizeof out);
		/* '.' splits labels in both; all other differences would be a bug */
		if ((lr == 0) != (rc >= 0))
			fail_msg("domain 0x%02x: libidn %d, ours %d", c, lr, rc);
		if (lr == 0) {
			for (char *p = a; *p; p++)
				if (*p >= 'A' && *p <= 'Z')
					*p = (char)(*p + 32);
			assert_string_equal(out, a);
		}
		free(a);
	}
}

static void test_ascii_never_calls_libidn(void **state)
{
	(void)state;
	char out[JID_BUF];
	g_idn_calls = 0;
	assert_true(norm("Juliet@Example.COM/Balcony Phone", out, sizeof out) > 0);
	assert_true(norm("o\\27malley@sip.example", out, sizeof out) > 0);
	assert_true(norm("[2001:DB8::1]", out, sizeof out) > 0);
	assert_int_equal(norm("bad\"quote@x", out, sizeof out), PE_INVAL);
	int cmp;
	assert_int_equal(jid_compare("A@B", 3, "a@b", 3, 0, &cmp), 0);
	assert_int_equal(g_idn_calls, 0);
	/* and the counter does see the slow path */
	assert_true(norm("f\xc3\xbc@b\xc3\xbc"
			 "cher.example/r\xc3\xa9s",
			 out, sizeof out) > 0);
	assert_true(g_idn_calls >= 3);
}

/* ---- the profiles on non-ASCII ------------------------------------------------------ */

static void test_nodeprep_unicode(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		int rc; /* length or error */
		const char *out;
	} T[] = {
	    {"f\xc3\xbc", 3, "f\xc3\xbc"},
	    {"F\xc3\x9c", 3, "f\xc3\xbc"}, /* Ü -> ü */
	    {"Stra\xc3\x9f"
	     "e",
	     7, "strasse"},			   /* ß -> ss (B.2) */
	    {"\xef\xbc\xa1\xef\xbc\xa2", 2, "ab"}, /* full-width AB, NFKC + fold */
	    {"a\xc2\xad"
	     "b",
	     2, "ab"},			  /* soft hyphen mapped to nothing (B.1) */
	    {"\xc2\xad", PE_INVAL, NULL}, /* ... leaving nothing */
	    {"a\xef\xbc\xa0"
	     "b",
	     PE_INVAL, NULL}, /* full-width '@' becomes '@' */
	    {"a\xef\xbc\x87"
	     "b",
	     PE_INVAL, NULL}, /* full-width apostrophe */
	    {"a\xe2\x80\x80"
	     "b",
	     PE_INVAL, NULL}, /* EN QUAD, a non-ASCII space */
	    {"a\xe2\x80\xae"
	     "b",
	     PE_INVAL, NULL}, /* RIGHT-TO-LEFT OVERRIDE (C.8) */
	    {"\xd7\x90"
	     "a",
	     PE_INVAL, NULL},				 /* bidi: Hebrew alef then L */
	    {"\xd7\x90\xd7\x91", 4, "\xd7\x90\xd7\x91"}, /* all RandAL is fine */
	    {"a\xc3", PE_INVAL, NULL},			 /* truncated UTF-8 */
	    {"a\xc0\xaf", PE_INVAL, NULL},		 /* overlong '/' */
	    {"a\xed\xa0\x80", PE_INVAL, NULL},		 /* surrogate */
	    {"a\xf4\x90\x80\x80", PE_INVAL, NULL},	 /* above U+10FFFF */
	    {"\xc3\xa9\0x", PE_INVAL, NULL},		 /* NUL hidden behind non-ASCII */
	};
	for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
		char out[JID_PART_MAX + 1];
		size_t len = strlen(T[i].in);
		if (i == sizeof T / sizeof T[0] - 1)
			len = 4; /* includes the NUL */
		int rc = jid_nodeprep(T[i].in, len, out, sizeof out);
		if (rc != T[i].rc)
			fail_msg("nodeprep case %zu = %d, want %d", i, rc, T[i].rc);
		if (rc >= 0)
			assert_string_equal(out, T[i].out);
	}
	/* the mapping alone keeps what nodeprep then refuses */
	char out[32];
	assert_int_equal(jid_nodeprep_map("A\xef\xbc\x87"
					  "B",
					  5, out, sizeof out),
			 3);
	assert_string_equal(out, "a'b");
	assert_int_equal(jid_nodeprep_map("\xef\xbc\xbc"
					  "27",
					  5, out, sizeof out),
			 3);
	assert_string_equal(out, "\\27");
	assert_int_equal(jid_nodeprep_map("", 0, out, sizeof out), PE_INVAL);
	assert_int_equal(jid_nodeprep_map("\xc2\xad", 2, out, sizeof out), PE_INVAL);
}

static void test_resourceprep(void **state)
{
	(void)state;
	char out[64];
	/* case and spaces kept */
	assert_int_equal(jid_resourceprep("Balcony Phone", 13, out, sizeof out), 13);
	assert_string_equal(out, "Balcony Phone");
	assert_int_equal(jid_resourceprep("a@b/c:\"<>'&", 11, out, sizeof out), 11);
	assert_string_equal(out, "a@b/c:\"<>'&");
	assert_int_equal(jid_resourceprep("a\tb", 3, out, sizeof out), PE_INVAL);
	assert_int_equal(jid_resourceprep("a\x7f", 2, out, sizeof out), PE_INVAL);
	assert_int_equal(jid_resourceprep("", 0, out, sizeof out), PE_INVAL);
	/* non-ASCII: NFKC but no case folding */
	assert_int_equal(jid_resourceprep("\xef\xbc\xa1"
					  "b",
					  4, out, sizeof out),
			 2);
	assert_string_equal(out, "Ab");
	assert_int_equal(jid_resourceprep("R\xc3\xa9s", 4, out, sizeof out), 4);
	assert_string_equal(out, "R\xc3\xa9s");
	/* NO-BREAK SPACE becomes an ASCII space under NFKC, which resources allow */
	assert_int_equal(jid_resourceprep("a\xc2\xa0"
					  "b",
					  4, out, sizeof out),
			 3);
	assert_string_equal(out, "a b");
	/* RIGHT-TO-LEFT OVERRIDE is prohibited (C.8) */
	assert_int_equal(jid_resourceprep("a\xe2\x80\xae", 4, out, sizeof out), PE_INVAL);
	assert_int_equal(jid_resourceprep("\xff", 1, out, sizeof out), PE_INVAL);
}

/* ---- domains ------------------------------------------------------------------------ */

static void test_domainprep(void **state)
{
	(void)state;
	static char l63[80], l64[80];
	memset(l63, 'a', 63);
	strcpy(l63 + 63, ".example");
	memset(l64, 'a', 64);
	strcpy(l64 + 64, ".example");
	const struct {
		const char *in;
		int rc;
		const char *out;
	} T[] = {
	    {"Example.COM", 11, "example.com"},
	    {"example.com.", 11, "example.com"}, /* RFC 7622 §3.2: trailing dot dropped */
	    {"example.com..", PE_INVAL, NULL},
	    {"localhost", 9, "localhost"},
	    {"127.0.0.1", 9, "127.0.0.1"},
	    {"a-b.example", 11, "a-b.example"},
	    {"xn--bcher-kva.example", 21, "xn--bcher-kva.example"},
	    {"B\xc3\xbc"
	     "cher.EXAMPLE",
	     21, "xn--bcher-kva.example"},
	    {"b\xc3\xbc"
	     "cher.example.",
	     21, "xn--bcher-kva.example"},
	    {"b\xc3\xbc"
	     "cher\xe3\x80\x82"
	     "example",
	     21, "xn--bcher-kva.example"}, /* ideographic full stop separates labels */
	    {"[::1]", 5, "[::1]"},
	    {"[0:0:0::1]", 5, "[::1]"},
	    {"[2001:DB8::1]", 13, "[2001:db8::1]"},
	    {"[::ffff:192.0.2.1]", 18, "[::ffff:192.0.2.1]"},
	    {"[::1", PE_INVAL, NULL},
	    {"[]", PE_INVAL, NULL},
	    {"[zz::1]", PE_INVAL, NULL},
	    {"[fe80::1%eth0]", PE_INVAL, NULL},
	    {"[192.0.2.1]", PE_INVAL, NULL},
	    {"", PE_INVAL, NULL},
	    {".", PE_INVAL, NULL},
	    {".example", PE_INVAL, NULL},
	    {"a..b", PE_INVAL, NULL},
	    {"a_b.example", PE_INVAL, NULL},
	    {"-ab.example", PE_INVAL, NULL},
	    {"ab-.example", PE_INVAL, NULL},
	    {"a b.example", PE_INVAL, NULL},
	    {"a:5269", PE_INVAL, NULL},
	    {l63, 71, l63},
	    {l64, PE_INVAL, NULL},
	    {"b\xc3\xbc"
	     "cher_x.example",
	     PE_INVAL, NULL},
	    {"\xe2\x80\xae"
	     "x.example",
	     PE_INVAL, NULL},
	    {"b\xc3", PE_INVAL, NULL},
	};
	for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
		char out[JID_PART_MAX + 1];
		int rc = jid_domainprep(T[i].in, strlen(T[i].in), out, sizeof out);
		if (rc != T[i].rc)
			fail_msg("domainprep(\"%s\") = %d, want %d", T[i].in, rc, T[i].rc);
		if (rc >= 0)
			assert_string_equal(out, T[i].out);
	}
}

/* ---- whole JIDs --------------------------------------------------------------------- */

static void test_normalize(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		int rc;
		const char *out;
	} T[] = {
	    {"Juliet@Example.COM/Balcony", 0, "juliet@example.com/Balcony"},
	    {"EXAMPLE.com", 0, "example.com"},
	    {"example.com./r", 0, "example.com/r"},
	    {"d\\27artagnan@musketeers.lit", 0, "d\\27artagnan@musketeers.lit"},
	    {"T\xc3\x9c"
	     "SS@B\xc3\xbc"
	     "cher.example/\xef\xbc\xa1",
	     0, "t\xc3\xbcss@xn--bcher-kva.example/A"},
	    {"a@b/c@d/e", 0, "a@b/c@d/e"},
	    {"o'malley@example.com", PE_INVAL, NULL},
	    {"a b@example.com", PE_INVAL, NULL},
	    {"a@b@c", PE_INVAL, NULL},
	    {"a@exa_mple.com", PE_INVAL, NULL},
	    {"a@example.com/\x01", PE_INVAL, NULL},
	    {"@example.com", PE_INVAL, NULL},
	};
	for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
		char out[JID_BUF];
		struct jid j;
		int rc = jid_normalize(T[i].in, strlen(T[i].in), out, sizeof out, &j);
		if ((rc < 0 ? rc : 0) != T[i].rc)
			fail_msg("normalize(\"%s\") = %d, want %d", T[i].in, rc, T[i].rc);
		if (rc < 0)
			continue;
		assert_string_equal(out, T[i].out);
		assert_int_equal(rc, strlen(out));
		/* the views point into out and rebuild it */
		char again[JID_BUF];
		snprintf(again, sizeof again, "%.*s%s%.*s%s%.*s", (int)j.local.n, j.local.p,
			 j.local.n ? "@" : "", (int)j.domain.n, j.domain.p, j.resource.n ? "/" : "",
			 (int)j.resource.n, j.resource.p);
		assert_string_equal(again, out);
		assert_ptr_equal(j.local.n ? j.local.p : out, out);
		/* idempotent */
		char twice[JID_BUF];
		assert_int_equal(norm(out, twice, sizeof twice), rc);
		assert_string_equal(twice, out);
	}
}

static void test_normalize_limits(void **state)
{
	(void)state;
	static char in[JID_BUF + 8], out[JID_BUF];
	/* the longest JID: three 1023-byte parts */
	memset(in, 'a', JID_PART_MAX);
	in[JID_PART_MAX] = '@';
	for (size_t i = 0; i < JID_PART_MAX; i++)
		in[JID_PART_MAX + 1 + i] = (i % 64 == 63) ? '.' : 'b';
	in[JID_PART_MAX + 1 + JID_PART_MAX] = '/';
	memset(in + 2 * JID_PART_MAX + 2, 'R', JID_PART_MAX);
	size_t len = JID_MAX;
	assert_int_equal(jid_normalize(in, len, out, sizeof out, NULL), (int)JID_MAX);
	assert_memory_equal(out + 2 * JID_PART_MAX + 2, in + 2 * JID_PART_MAX + 2, JID_PART_MAX);
	/* one byte less of output space, and nothing fits any more */
	assert_int_equal(jid_normalize(in, len, out, JID_MAX, NULL), PE_TOOBIG);
	for (size_t cap = 1; cap < 40; cap++)
		assert_int_equal(jid_normalize("juliet@example.com/balcony", 26, out, cap, NULL),
				 cap > 26 ? 26 : PE_TOOBIG);
	/* a part whose prepared form grows past 1023 bytes: U+3300 SQUARE APAATO (3 bytes)
	 * becomes four katakana under NFKC (12 bytes) */
	static char big[JID_PART_MAX + 16];
	size_t n = 0;
	while (n + 3 <= JID_PART_MAX) {
		memcpy(big + n, "\xe3\x8c\x80", 3);
		n += 3;
	}
	char prep[JID_PART_MAX + 1];
	assert_int_equal(jid_nodeprep(big, n, prep, sizeof prep), PE_TOOBIG);
	assert_int_equal(jid_nodeprep(big, 3, prep, sizeof prep), 12);
	assert_int_equal(jid_nodeprep(big, 3 * 85, prep, sizeof prep), 1020);
	assert_int_equal(jid_nodeprep(big, 3 * 86, prep, sizeof prep), PE_TOOBIG);
}

static void test_compare(void **state)
{
	(void)state;
	static const struct {
		const char *a, *b;
		unsigned flags;
		int rc, eq; /* eq: 1 same, 0 different */
	} T[] = {
	    {"juliet@example.com", "JULIET@EXAMPLE.COM", 0, 0, 1},
	    {"juliet@example.com/r", "juliet@Example.com./r", 0, 0, 1},
	    {"juliet@example.com/R", "juliet@example.com/r", 0, 0, 0}, /* resource is exact */
	    {"juliet@example.com/R", "juliet@example.com/r", JID_CMP_BARE, 0, 1},
	    {"juliet@example.com/R", "juliet@example.com", JID_CMP_BARE, 0, 1},
	    {"juliet@example.com", "romeo@example.com", JID_CMP_BARE, 0, 0},
	    {"f\xc3\xbc@b\xc3\xbc"
	     "cher.example",
	     "F\xc3\x9c@xn--bcher-kva.EXAMPLE", 0, 0, 1},
	    {"stra\xc3\x9f"
	     "e@x",
	     "STRASSE@x", 0, 0, 1},
	    {"\xef\xbc\xaa"
	     "uliet@x",
	     "juliet@x", 0, 0, 1},
	    {"example.com", "example.com/r", 0, 0, 0},
	    {"[::1]", "[0::1]", 0, 0, 1},
	    {"bad@", "x", 0, PE_INVAL, 0},
	    {"x", "a b@x", 0, PE_INVAL, 0},
	};
	for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
		int cmp = 12345, cmp2 = 12345;
		int rc =
		    jid_compare(T[i].a, strlen(T[i].a), T[i].b, strlen(T[i].b), T[i].flags, &cmp);
		if (rc != T[i].rc)
			fail_msg("compare case %zu = %d, want %d", i, rc, T[i].rc);
		if (rc < 0) {
			assert_int_equal(cmp, 12345);
			assert_false(jid_equal(T[i].a, strlen(T[i].a), T[i].b, strlen(T[i].b)));
			continue;
		}
		if ((cmp == 0) != T[i].eq)
			fail_msg("compare case %zu: cmp %d, want %s", i, cmp,
				 T[i].eq ? "equal" : "different");
		/* antisymmetric */
		assert_int_equal(
		    jid_compare(T[i].b, strlen(T[i].b), T[i].a, strlen(T[i].a), T[i].flags, &cmp2),
		    0);
		assert_true((cmp < 0 && cmp2 > 0) || (cmp > 0 && cmp2 < 0) ||
			    (cmp == 0 && cmp2 == 0));
		if (!T[i].flags)
			assert_int_equal(jid_equal(T[i].a, strlen(T[i].a), T[i].b, strlen(T[i].b)),
					 T[i].eq);
	}
	/* a prefix orders first */
	int cmp;
	assert_int_equal(jid_compare("a@x", 3, "a@x/r", 5, 0, &cmp), 0);
	assert_true(cmp < 0);
}

static void test_utf8(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		size_t n;
		bool ok;
	} T[] = {
	    {"", 0, true},
	    {"abc", 3, true},
	    {"a\0b", 3, true},
	    {"\xc2\x80", 2, true},
	    {"\xdf\xbf", 2, true},
	    {"\xe0\xa0\x80", 3, true},
	    {"\xed\x9f\xbf", 3, true},	   /* U+D7FF */
	    {"\xee\x80\x80", 3, true},	   /* U+E000 */
	    {"\xef\xbf\xbf", 3, true},	   /* U+FFFF */
	    {"\xf0\x90\x80\x80", 4, true}, /* U+10000 */
	    {"\xf4\x8f\xbf\xbf", 4, true}, /* U+10FFFF */
	    {"\x80", 1, false},
	    {"\xbf", 1, false},
	    {"\xc0\x80", 2, false}, /* overlong NUL */
	    {"\xc1\xbf", 2, false},
	    {"\xc2", 1, false},
	    {"\xc2\x41", 2, false},
	    {"\xe0\x9f\xbf", 3, false}, /* overlong */
	    {"\xed\xa0\x80", 3, false}, /* U+D800 */
	    {"\xed\xbf\xbf", 3, false}, /* U+DFFF */
	    {"\xe2\x82", 2, false},
	    {"\xf0\x8f\xbf\xbf", 4, false}, /* overlong */
	    {"\xf4\x90\x80\x80", 4, false}, /* U+110000 */
	    {"\xf5\x80\x80\x80", 4, false},
	    {"\xff", 1, false},
	    {"\xf0\x90\x80", 3, false},
	};
	for (size_t i = 0; i < sizeof T / sizeof T[0]; i++)
		if (jid_utf8_valid(T[i].s, T[i].n) != T[i].ok)
			fail_msg("utf8 case %zu: want %s", i, T[i].ok ? "valid" : "invalid");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_structure),
	    cmocka_unit_test(test_parse_limits),
	    cmocka_unit_test(test_ascii_matches_libidn),
	    cmocka_unit_test(test_ascii_never_calls_libidn),
	    cmocka_unit_test(test_nodeprep_unicode),
	    cmocka_unit_test(test_resourceprep),
	    cmocka_unit_test(test_domainprep),
	    cmocka_unit_test(test_normalize),
	    cmocka_unit_test(test_normalize_limits),
	    cmocka_unit_test(test_compare),
	    cmocka_unit_test(test_utf8),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
