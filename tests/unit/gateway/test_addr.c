/* Unit tests for the address mapping: MAPPING B1/B2 vectors (RFC 7247 §6), XEP-0106
 * escaping tables, round trips, B4, and a table of edge cases for each direction. */
#include "addr.h"
#include "err.h"
#include "jid.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* B1 with a NUL-terminated URI; returns the length or error, JID in out. */
static int b1(const char *uri, char *out, size_t cap)
{
	return addr_sip_to_jid(uri, strlen(uri), out, cap, NULL);
}

static int b2(const char *jid, unsigned flags, char *out, size_t cap)
{
	return addr_jid_to_sip(jid, strlen(jid), flags, out, cap);
}

/* ---- the MAPPING.md vectors ---------------------------------------------------------- */

static void test_b1_vectors(void **state)
{
	(void)state;
	static const struct {
		const char *uri, *jid;
	} T[] = {
	    {"sip:f%C3%BC@sip.example", "f\xc3\xbc@sip.example"},
	    {"sip:o'malley@sip.example", "o\\27malley@sip.example"},
	    {"sip:foo@sip.example;gr=bar", "foo@sip.example/bar"},
	};
	for (size_t i = 0; i < N(T); i++) {
		char out[JID_BUF];
		struct jid j;
		int rc = addr_sip_to_jid(T[i].uri, strlen(T[i].uri), out, sizeof out, &j);
		if (rc < 0)
			fail_msg("B1(%s) failed: %d", T[i].uri, rc);
		assert_string_equal(out, T[i].jid);
		assert_int_equal(rc, strlen(T[i].jid));
		assert_ptr_equal(j.domain.p, strchr(out, '@') + 1);
	}
}

static void test_b2_vectors(void **state)
{
	(void)state;
	static const struct {
		const char *jid, *uri;
	} T[] = {
	    {"m\\26m@xmpp.example", "sip:m&m@xmpp.example"},
	    {"tsch\xc3\xbcss@xmpp.example", "sip:tsch%C3%BCss@xmpp.example"},
	    {"baz@xmpp.example/qux", "sip:baz@xmpp.example;gr=qux"},
	};
	for (size_t i = 0; i < N(T); i++) {
		char out[ADDR_URI_BUF];
		int rc = b2(T[i].jid, 0, out, sizeof out);
		if (rc < 0)
			fail_msg("B2(%s) failed: %d", T[i].jid, rc);
		assert_string_equal(out, T[i].uri);
		assert_int_equal(rc, strlen(T[i].uri));
	}
}

/* B4 (RFC 7572 §4): the From of an outgoing MESSAGE is the bare JID with the resource as
 * GRUU, as a name-addr since the URI has a parameter. */
static void test_b4_from(void **state)
{
	(void)state;
	char out[ADDR_URI_BUF];
	static const struct {
		const char *jid, *from;
	} T[] = {
	    {"Juliet@Example.com/Balcony", "<sip:juliet@example.com;gr=Balcony>"},
	    {"juliet@example.com", "<sip:juliet@example.com>"},
	    {"o\\27hara@example.com/a b", "<sip:o'hara@example.com;gr=a%20b>"},
	};
	for (size_t i = 0; i < N(T); i++) {
		int rc = addr_sip_from(T[i].jid, strlen(T[i].jid), out, sizeof out);
		assert_int_equal(rc, strlen(T[i].from));
		assert_string_equal(out, T[i].from);
	}
	const char *full = T[0].jid;
	/* the Request-URI / To of the same entity: the address of record */
	assert_true(b2(full, ADDR_NO_GR, out, sizeof out) > 0);
	assert_string_equal(out, "sip:juliet@example.com");
	assert_true(b2(full, ADDR_NO_GR | ADDR_NAME_ADDR, out, sizeof out) > 0);
	assert_string_equal(out, "<sip:juliet@example.com>");
	assert_int_equal(addr_sip_from("@x", 2, out, sizeof out), PE_INVAL);
}

/* ---- XEP-0106 ---------------------------------------------------------------------- */

static void test_escape_table(void **state)
{
	(void)state;
	static const struct {
		const char *in, *out;
	} T[] = {
	    /* XEP-0106 §5.1 examples (user input -> escaped localpart) */
	    {"space cadet", "space\\20cadet"},
	    {"call me \"ishmael\"", "call\\20me\\20\\22ishmael\\22"},
	    {"at&t guy", "at\\26t\\20guy"},
	    {"d'artagnan", "d\\27artagnan"},
	    {"/.fanboy", "\\2f.fanboy"},
	    {"::foo::", "\\3a\\3afoo\\3a\\3a"},
	    {"<foo>", "\\3cfoo\\3e"},
	    {"user@host", "user\\40host"},
	    {"c:\\5commas", "c\\3a\\5c5commas"},
	    /* XEP-0106 examples 9-11 escape every backslash ("c:\net" -> "c\3a\5cnet"), which
	     * contradicts its own business rules (§4.1 rule 7, §4.2 step 3, and §4.3: "foo\bar
	     * is not modified"); we follow the rules: only a backslash that begins an escape
	     * sequence is escaped. Unescaping gives the same text either way. */
	    {"c:\\net", "c\\3a\\net"},
	    {"c:\\\\net", "c\\3a\\\\net"},
	    {"c:\\cool stuff", "c\\3a\\cool\\20stuff"},
	    /* §4.3 exceptions: left alone */
	    {"\\2plus\\2is\\4", "\\2plus\\2is\\4"},
	    {"foo\\bar", "foo\\bar"},
	    {"foob\\41r", "foob\\41r"},
	    /* §5.5: the IMPS example */
	    {"\\3and\\2is\\5cool", "\\5c3and\\2is\\5c5cool"},
	    /* §5.2: the email example */
	    {"here's_a_wild_&_/cr%zy/_address", "here\\27s_a_wild_\\26_\\2fcr%zy\\2f_address"},
	    /* each of the ten, and hex case: nodeprep will lower-case "\2F" into an escape */
	    {" \"&'/:<>@\\5c", "\\20\\22\\26\\27\\2f\\3a\\3c\\3e\\40\\5c5c"},
	    {"a\\2Fb", "a\\5c2Fb"},
	    {"a\\5C", "a\\5c5C"},
	    {"\\", "\\"},
	    {"\\2", "\\2"},
	    {"x\\20", "x\\5c20"},
	    {"", ""},
	};
	for (size_t i = 0; i < N(T); i++) {
		char out[256], back[256];
		int rc = addr_escape_local(T[i].in, strlen(T[i].in), out, sizeof out);
		if (rc < 0 || strcmp(out, T[i].out) != 0)
			fail_msg("escape(\"%s\") = \"%s\" (%d), want \"%s\"", T[i].in,
				 rc < 0 ? "" : out, rc, T[i].out);
		/* unescaping gives the input back */
		rc = addr_unescape_local(out, strlen(out), back, sizeof back);
		assert_int_equal(rc, strlen(T[i].in));
		assert_string_equal(back, T[i].in);
	}
}

static void test_unescape_table(void **state)
{
	(void)state;
	static const struct {
		const char *in, *out;
	} T[] = {
	    {"space\\20cadet", "space cadet"},
	    {"\\22\\26\\27\\2f\\3a\\3c\\3e\\40\\5c", "\"&'/:<>@\\"},
	    {"c\\3a\\5cnet", "c:\\net"}, /* XEP-0106 example 9 as escaped there */
	    {"\\5c27", "\\27"},		 /* one pass, left to right */
	    {"\\5c5c", "\\5c"},
	    {"\\2F", "\\2F"}, /* case is significant */
	    {"\\41", "\\41"}, /* not one of the ten */
	    {"\\2", "\\2"},
	    {"a\\", "a\\"},
	    {"\\\\20", "\\ "},
	    {"", ""},
	};
	for (size_t i = 0; i < N(T); i++) {
		char out[256];
		int rc = addr_unescape_local(T[i].in, strlen(T[i].in), out, sizeof out);
		if (rc < 0 || strcmp(out, T[i].out) != 0)
			fail_msg("unescape(\"%s\") = \"%s\", want \"%s\"", T[i].in,
				 rc < 0 ? "" : out, T[i].out);
	}
	/* bounded output */
	char small[4];
	assert_int_equal(addr_escape_local("a'b", 3, small, sizeof small), PE_TOOBIG);
	char six[6];
	assert_int_equal(addr_escape_local("a'b", 3, six, sizeof six), 5);
	assert_string_equal(six, "a\\27b");
	assert_int_equal(addr_escape_local("ab'", 3, six, sizeof six), 5);
	assert_int_equal(addr_escape_local("abc'", 4, six, sizeof six), PE_TOOBIG);
	assert_int_equal(addr_escape_local("abcdef", 6, six, sizeof six), PE_TOOBIG);
	assert_int_equal(addr_escape_local("abcde", 5, six, sizeof six), 5);
	assert_int_equal(addr_unescape_local("abcd", 4, small, sizeof small), PE_TOOBIG);
	assert_int_equal(addr_unescape_local("a\\27b", 5, small, sizeof small), 3);
	assert_string_equal(small, "a'b");
}

/* ---- B1 edge cases ------------------------------------------------------------------ */

static void test_b1_edges(void **state)
{
	(void)state;
	static const struct {
		const char *uri;
		int rc; /* 0: success with jid */
		const char *jid;
	} T[] = {
	    /* A1: sips is never translated (416); other schemes neither */
	    {"sips:alice@sip.example", PE_SCHEME, NULL},
	    {"SIPS:alice@sip.example", PE_SCHEME, NULL},
	    {"tel:+15551234567", PE_SCHEME, NULL},
	    {"http://sip.example/", PE_SCHEME, NULL},
	    {"xmpp:alice@sip.example", PE_SCHEME, NULL},
	    {"SIP:Alice@SIP.Example", 0, "alice@sip.example"},
	    {"pres:alice@sip.example", 0, "alice@sip.example"},
	    {"im:alice@sip.example", 0, "alice@sip.example"},
	    /* malformed */
	    {"", PE_PROTO, NULL},
	    {"alice@sip.example", PE_PROTO, NULL},
	    {":alice@sip.example", PE_PROTO, NULL},
	    {"1sip:a@b", PE_PROTO, NULL},
	    {"sip:", PE_PROTO, NULL},
	    {"sip:@sip.example", PE_PROTO, NULL},
	    {"sip::pw@sip.example", PE_PROTO, NULL},
	    {"sip:alice@", PE_PROTO, NULL},
	    {"sip:alice@;gr=x", PE_PROTO, NULL},
	    {"sip:al ice@sip.example", PE_PROTO, NULL},
	    {"sip:alice@sip.example\r\n", PE_PROTO, NULL},
	    {"sip:al\tice@sip.example", PE_PROTO, NULL},
	    {"sip:a<b@sip.example", PE_PROTO, NULL},
	    {"sip:a\"b@sip.example", PE_PROTO, NULL},
	    {"sip:a#b@sip.example", PE_PROTO, NULL},
	    {"sip:a\\b@sip.example", PE_PROTO, NULL},
	    {"sip:al%2@sip.example", PE_PROTO, NULL},
	    {"sip:al%@sip.example", PE_PROTO, NULL},
	    {"sip:al%zz@sip.example", PE_PROTO, NULL},
	    {"sip:%FF@sip.example", PE_PROTO, NULL},	   /* not UTF-8 */
	    {"sip:%C3@sip.example", PE_PROTO, NULL},	   /* truncated */
	    {"sip:%C0%AF@sip.example", PE_PROTO, NULL},	   /* overlong '/' */
	    {"sip:%ED%A0%80@sip.example", PE_PROTO, NULL}, /* surrogate */
	    {"sip:alice@sip.example:", PE_PROTO, NULL},
	    {"sip:alice@sip.example:99999", PE_PROTO, NULL},
	    {"sip:alice@sip.example:50x0", PE_PROTO, NULL},
	    {"sip:alice@sip.example;", PE_PROTO, NULL},
	    {"sip:alice@sip.example;=x", PE_PROTO, NULL},
	    {"sip:alice@sip.example;a<b", PE_PROTO, NULL},
	    {"sip:alice@sip.example;gr=a\"b", PE_PROTO, NULL},
	    {"sip:alice@sip.example;gr=%FF", PE_PROTO, NULL},
	    {"sip:alice@sip.example;gr=%2", PE_PROTO, NULL},
	    {"sip:alice@sip%2Eexample", PE_PROTO, NULL},
	    {"sip:alice@[::1", PE_PROTO, NULL},
	    {"sip:alice@sip.example x", PE_PROTO, NULL},
	    /* well-formed, but no valid JID */
	    {"sip:%20bob@sip.example", PE_INVAL, NULL}, /* \20 first (XEP-0106) */
	    {"sip:bob%20@sip.example", PE_INVAL, NULL}, /* \20 last */
	    {"sip:a%00b@sip.example", PE_INVAL, NULL},	/* control */
	    {"sip:a%7Fb@sip.example", PE_INVAL, NULL},
	    {"sip:a%E2%80%AEb@sip.example", PE_INVAL, NULL}, /* RLO, prohibited */
	    {"sip:%D7%90a@sip.example", PE_INVAL, NULL},     /* bidi */
	    {"sip:%C2%AD@sip.example", PE_INVAL, NULL},	     /* maps to nothing */
	    {"sip:%3E%CC%81@sip.example", PE_INVAL, NULL},   /* NFKC would eat "\3e"'s 'e' */
	    {"sip:alice@bad_host.example", PE_INVAL, NULL},
	    {"sip:alice@-x.example", PE_INVAL, NULL},
	    {"sip:alice@[zz::1]", PE_INVAL, NULL},
	    {"sip:alice@sip.example;gr=a%01", PE_INVAL, NULL},
	    /* mapped */
	    {"sip:alice@sip.example:5061", 0, "alice@sip.example"},
	    {"sip:alice:secret@sip.example", 0, "alice@sip.example"},
	    {"sip:sip.example", 0, "sip.example"},
	    {"sip:sip.example;gr=x", 0, "sip.example/x"},
	    {"sip:alice@sip.example.", 0, "alice@sip.example"},
	    {"sip:alice@sip.example?Subject=hi%20there&x=@", 0, "alice@sip.example"},
	    {"sip:alice@sip.example;transport=tls;lr;maddr=192.0.2.1", 0, "alice@sip.example"},
	    {"sip:alice@sip.example;gr", 0, "alice@sip.example"},
	    {"sip:alice@sip.example;gr=", 0, "alice@sip.example"},
	    {"sip:alice@sip.example;GR=Office", 0, "alice@sip.example/Office"},
	    {"sip:alice@sip.example;gr=a%20b;gr=second", 0, "alice@sip.example/a b"},
	    {"sip:alice@sip.example;gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6", 0,
	     "alice@sip.example/urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"},
	    {"sip:alice@sip.example;gr=r%C3%A9s", 0, "alice@sip.example/r\xc3\xa9s"},
	    {"sip:alice@[2001:DB8::1]:5060", 0, "alice@[2001:db8::1]"},
	    {"sip:alice@192.0.2.1", 0, "alice@192.0.2.1"},
	    {"sip:alice@B%C3%BCcher.example", PE_PROTO, NULL},
	    {"sip:alice@b\xc3\xbc"
	     "cher.example",
	     0, "alice@xn--bcher-kva.example"},
	    {"sip:f\xc3\xbc@sip.example", 0, "f\xc3\xbc@sip.example"}, /* raw UTF-8 tolerated */
	    {"sip:F%c3%9c@sip.example", 0, "f\xc3\xbc@sip.example"},   /* lower-case hex */
	    {"sip:b%20ob@sip.example", 0, "b\\20ob@sip.example"},
	    {"sip:user%40host@gw.example", 0, "user\\40host@gw.example"},
	    {"sip:c%3A%5Cnet@x.example", 0, "c\\3a\\net@x.example"},
	    {"sip:%5C27@x.example", 0, "\\5c27@x.example"},
	    {"sip:%5C2F@x.example", 0, "\\5c2f@x.example"},
	    /* a full-width backslash is a backslash after NFKC: escaped like one */
	    {"sip:%EF%BC%BC27@x.example", 0, "\\5c27@x.example"},
	    /* a full-width apostrophe becomes "'" under NFKC and is then escaped */
	    {"sip:o%EF%BC%87malley@x.example", 0, "o\\27malley@x.example"},
	    {"sip:%22%26%27%2F%3A%3C%3E%40@x.example", 0,
	     "\\22\\26\\27\\2f\\3a\\3c\\3e\\40@x.example"},
	    {"sip:a&b=c+d$e,f;g?h/i@x.example", 0, "a\\26b=c+d$e,f;g?h\\2fi@x.example"},
	    {"sip:-_.!~*'()@x.example", 0, "-_.!~*\\27()@x.example"},
	    {"sip:+15551234567;phone-context=x@x.example", 0,
	     "+15551234567;phone-context=x@x.example"},
	    {"sip:x.example;a=b@c", 0, "x.example;a=b@c"},
	    {"sip:STRA%C3%9FE@x.example", 0, "strasse@x.example"},
	};
	for (size_t i = 0; i < N(T); i++) {
		char out[JID_BUF];
		int rc = b1(T[i].uri, out, sizeof out);
		if ((rc < 0 ? rc : 0) != T[i].rc)
			fail_msg("B1(\"%s\") = %d (%s), want %d", T[i].uri, rc, rc >= 0 ? out : "",
				 T[i].rc);
		if (rc >= 0 && strcmp(out, T[i].jid) != 0)
			fail_msg("B1(\"%s\") = \"%s\", want \"%s\"", T[i].uri, out, T[i].jid);
	}
}

static void test_b1_limits(void **state)
{
	(void)state;
	static char uri[8192], out[JID_BUF];
	/* a 1023-byte user fits, 1024 does not */
	strcpy(uri, "sip:");
	memset(uri + 4, 'a', JID_PART_MAX);
	strcpy(uri + 4 + JID_PART_MAX, "@x.example");
	assert_int_equal(b1(uri, out, sizeof out), JID_PART_MAX + 10);
	memset(uri + 4, 'a', JID_PART_MAX + 1);
	strcpy(uri + 4 + JID_PART_MAX + 1, "@x.example");
	assert_int_equal(b1(uri, out, sizeof out), PE_TOOBIG);
	/* escaping triples: 341 apostrophes fit (1023), 342 do not */
	strcpy(uri, "sip:");
	memset(uri + 4, '\'', 341);
	strcpy(uri + 4 + 341, "@x.example");
	assert_int_equal(b1(uri, out, sizeof out), 1023 + 10);
	memset(uri + 4, '\'', 342);
	strcpy(uri + 4 + 342, "@x.example");
	assert_int_equal(b1(uri, out, sizeof out), PE_TOOBIG);
	/* percent-encoded bytes count once decoded: 1023 x "%61" */
	strcpy(uri, "sip:");
	for (int i = 0; i < JID_PART_MAX; i++)
		memcpy(uri + 4 + 3 * i, "%61", 3);
	strcpy(uri + 4 + 3 * JID_PART_MAX, "@x.example");
	assert_int_equal(b1(uri, out, sizeof out), JID_PART_MAX + 10);
	/* a gr value over 1023 bytes */
	strcpy(uri, "sip:a@x.example;gr=");
	memset(uri + 19, 'r', JID_PART_MAX + 1);
	uri[19 + JID_PART_MAX + 1] = '\0';
	assert_int_equal(b1(uri, out, sizeof out), PE_TOOBIG);
	uri[19 + JID_PART_MAX] = '\0';
	assert_int_equal(b1(uri, out, sizeof out), 2 + 9 + 1 + JID_PART_MAX);
	/* every output capacity: exact fit or PE_TOOBIG, never an overrun */
	const char *u = "sip:o'malley@sip.example;gr=bar";
	const char *want = "o\\27malley@sip.example/bar";
	for (size_t cap = 0; cap <= strlen(want) + 2; cap++) {
		char *o = malloc(cap ? cap : 1);
		int rc = addr_sip_to_jid(u, strlen(u), o, cap, NULL);
		if (cap > strlen(want)) {
			assert_int_equal(rc, strlen(want));
			assert_string_equal(o, want);
		} else {
			assert_int_equal(rc, PE_TOOBIG);
		}
		free(o);
	}
	/* not NUL-terminated input */
	assert_int_equal(addr_sip_to_jid("sip:a@b.example;gr=cXYZ", 20, out, sizeof out, NULL), 13);
	assert_string_equal(out, "a@b.example/c");
}

/* Every truncated prefix of valid URIs: a result or a PE_* error, never anything else. */
static void test_b1_prefixes(void **state)
{
	(void)state;
	static const char *const U[] = {
	    "sip:f%C3%BC@sip.example:5060;transport=tcp;gr=r%C3%A9s?Subject=x",
	    "sip:alice:pw@[2001:db8::1]:5061;gr=urn:uuid:1234",
	    "pres:o'malley@sip.example",
	};
	for (size_t u = 0; u < N(U); u++) {
		for (size_t n = 0; n <= strlen(U[u]); n++) {
			char out[JID_BUF];
			int rc = addr_sip_to_jid(U[u], n, out, sizeof out, NULL);
			if (rc >= 0) {
				/* whatever came out is a normalised JID */
				char again[JID_BUF];
				assert_int_equal(
				    jid_normalize(out, (size_t)rc, again, sizeof again, NULL), rc);
				assert_string_equal(again, out);
			} else if (rc != PE_PROTO && rc != PE_INVAL && rc != PE_SCHEME) {
				fail_msg("prefix %zu of %s: %d", n, U[u], rc);
			}
		}
	}
}

/* ---- B2 edge cases ------------------------------------------------------------------ */

static void test_b2_edges(void **state)
{
	(void)state;
	static const struct {
		const char *jid;
		unsigned flags;
		int rc;
		const char *uri;
	} T[] = {
	    {"example.com", 0, 0, "sip:example.com"},
	    {"example.com/r", 0, 0, "sip:example.com;gr=r"},
	    {"Alice@Example.COM/Phone", 0, 0, "sip:alice@example.com;gr=Phone"},
	    {"alice@example.com/Phone", ADDR_NO_GR, 0, "sip:alice@example.com"},
	    {"alice@example.com/Phone", ADDR_NAME_ADDR, 0, "<sip:alice@example.com;gr=Phone>"},
	    /* unescaped characters SIP allows in a user come out as they are */
	    {"d\\27artagnan@x.example", 0, 0, "sip:d'artagnan@x.example"},
	    {"a\\2fb@x.example", 0, 0, "sip:a/b@x.example"},
	    {"a;b?c=d+e$f,g\\26h@x.example", 0, 0, "sip:a;b?c=d+e$f,g&h@x.example"},
	    {"-_.!~*()@x.example", 0, 0, "sip:-_.!~*()@x.example"},
	    /* the rest is percent-encoded */
	    {"a\\20b@x.example", 0, 0, "sip:a%20b@x.example"},
	    {"\\22q\\22@x.example", 0, 0, "sip:%22q%22@x.example"},
	    {"c\\3a\\5cnet@x.example", 0, 0, "sip:c%3A%5Cnet@x.example"},
	    {"\\3cfoo\\3e@x.example", 0, 0, "sip:%3Cfoo%3E@x.example"},
	    {"user\\40host@gw.example", 0, 0, "sip:user%40host@gw.example"},
	    {"a\\b@x.example", 0, 0, "sip:a%5Cb@x.example"},
	    {"a#b%c[d]e^f`g{h|i}j@x.example", 0, 0,
	     "sip:a%23b%25c%5Bd%5De%5Ef%60g%7Bh%7Ci%7Dj@x.example"},
	    {"\\5c27@x.example", 0, 0, "sip:%5C27@x.example"},
	    /* nodeprep comes first (XEP-0106 §4.1 rule 2): "\2F" is the escape of '/' */
	    {"\\2F@x.example", 0, 0, "sip:/@x.example"},
	    /* non-ASCII */
	    {"J\xc3\xbcrgen@b\xc3\xbc"
	     "cher.example/Caf\xc3\xa9",
	     0, 0, "sip:j%C3%BCrgen@xn--bcher-kva.example;gr=Caf%C3%A9"},
	    /* resource: paramchar kept, the rest encoded */
	    {"a@x.example/a b;c=d?e", 0, 0, "sip:a@x.example;gr=a%20b%3Bc%3Dd%3Fe"},
	    {"a@x.example/[]/:&+$-_.!~*'()", 0, 0, "sip:a@x.example;gr=[]/:&+$-_.!~*'()"},
	    {"a@x.example/a@b%\"<>", 0, 0, "sip:a@x.example;gr=a%40b%25%22%3C%3E"},
	    {"a@[2001:DB8::1]/r", 0, 0, "sip:a@[2001:db8::1];gr=r"},
	    /* invalid JIDs */
	    {"", 0, PE_INVAL, NULL},
	    {"@x.example", 0, PE_INVAL, NULL},
	    {"a@x.example/", 0, PE_INVAL, NULL},
	    {"o'hara@x.example", 0, PE_INVAL, NULL},
	    {"a@x_y.example", 0, PE_INVAL, NULL},
	};
	for (size_t i = 0; i < N(T); i++) {
		char out[ADDR_URI_BUF];
		int rc = b2(T[i].jid, T[i].flags, out, sizeof out);
		if ((rc < 0 ? rc : 0) != T[i].rc)
			fail_msg("B2(\"%s\") = %d, want %d", T[i].jid, rc, T[i].rc);
		if (rc >= 0 && strcmp(out, T[i].uri) != 0)
			fail_msg("B2(\"%s\") = \"%s\", want \"%s\"", T[i].jid, out, T[i].uri);
	}
}

static void test_b2_limits(void **state)
{
	(void)state;
	/* the worst case fits ADDR_URI_BUF: every local and resource byte encoded */
	static char jid[JID_BUF], out[ADDR_URI_BUF];
	size_t n = 0;
	for (int i = 0; i < 341; i++)
		memcpy(jid + n, "\\20", 3), n += 3; /* 1023 bytes, all becoming %20 */
	jid[n++] = '@';
	for (size_t i = 0; i < JID_PART_MAX; i++)
		jid[n++] = (i % 64 == 63) ? '.' : 'd';
	jid[n++] = '/';
	for (size_t i = 0; i < JID_PART_MAX; i++)
		jid[n++] = '"';
	int rc = addr_jid_to_sip(jid, n, ADDR_NAME_ADDR, out, sizeof out);
	assert_int_equal(rc, 5 + 3 * 341 + 1 + JID_PART_MAX + 4 + 3 * JID_PART_MAX + 1);
	assert_true(rc <= ADDR_URI_MAX);
	/* every capacity: exact fit or PE_TOOBIG */
	const char *j = "o\\27hara@x.example/r 1";
	const char *want = "sip:o'hara@x.example;gr=r%201";
	for (size_t cap = 0; cap <= strlen(want) + 2; cap++) {
		char *o = malloc(cap ? cap : 1);
		rc = b2(j, 0, o, cap);
		if (cap > strlen(want)) {
			assert_int_equal(rc, strlen(want));
			assert_string_equal(o, want);
		} else {
			assert_int_equal(rc, PE_TOOBIG);
		}
		free(o);
	}
}

/* ---- round trips ---------------------------------------------------------------------- */

/* SIP first: B2(B1(uri)) gives the URI back for URIs already in canonical form
 * (lower case, minimal escaping, no port or other parameters). */
static void test_roundtrip_sip(void **state)
{
	(void)state;
	static const char *const U[] = {
	    "sip:f%C3%BC@sip.example",
	    "sip:o'malley@sip.example",
	    "sip:foo@sip.example;gr=bar",
	    "sip:m&m@xmpp.example",
	    "sip:tsch%C3%BCss@xmpp.example",
	    "sip:baz@xmpp.example;gr=qux",
	    "sip:here's_a_wild_&_/cr%25zy/_address@example.com",
	    "sip:a%20b@x.example",
	    "sip:%22ishmael%22@x.example",
	    "sip:user%40host@gw.example",
	    "sip:c%3A%5Cnet@x.example",
	    "sip:%5C27@x.example",
	    "sip:%5C3and%5C2is%5C5cool@x.example",
	    "sip:%3Cfoo%3E@x.example",
	    "sip:a;b?c=d@x.example",
	    "sip:alice@[2001:db8::1];gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
	    "sip:x.example",
	    "sip:x.example;gr=caf%C3%A9%20au%20lait",
	    "sip:%D7%90%D7%91@xn--bcher-kva.example",
	};
	for (size_t i = 0; i < N(U); i++) {
		char jid[JID_BUF], uri[ADDR_URI_BUF], jid2[JID_BUF];
		int rc = b1(U[i], jid, sizeof jid);
		if (rc < 0)
			fail_msg("B1(%s) = %d", U[i], rc);
		rc = b2(jid, 0, uri, sizeof uri);
		if (rc < 0)
			fail_msg("B2(%s) = %d", jid, rc);
		if (strcmp(uri, U[i]) != 0)
			fail_msg("%s -> %s -> %s", U[i], jid, uri);
		assert_int_equal(b1(uri, jid2, sizeof jid2), strlen(jid));
		assert_string_equal(jid2, jid);
	}
}

/* XMPP first: B1(B2(jid)) gives the normalised JID back, for JIDs whose escapes are the
 * ones XEP-0106 would make. */
static void test_roundtrip_xmpp(void **state)
{
	(void)state;
	static const char *const J[] = {
	    "juliet@example.com",
	    "Juliet@Example.COM/Balcony",
	    "d\\27artagnan@musketeers.lit/elder",
	    "space\\20cadet@example.com",
	    "call\\20me\\20\\22ishmael\\22@example.com",
	    "at\\26t\\20guy@example.com",
	    "\\2f.fanboy@example.com",
	    "\\3a\\3afoo\\3a\\3a@example.com",
	    "\\3cfoo\\3e@example.com",
	    "user\\40host@example.com",
	    "c\\3a\\net@example.com",
	    "c\\3a\\5c5commas@example.com",
	    "here\\27s_a_wild_\\26_\\2fcr%zy\\2f_address@example.com",
	    "\\5c3and\\2is\\5c5cool@example.com",
	    "tsch\xc3\xbcss@xmpp.example/Caf\xc3\xa9 1",
	    "example.com/a;b=c",
	    "a#b@[::1]/x@y/z",
	};
	for (size_t i = 0; i < N(J); i++) {
		char norm[JID_BUF], uri[ADDR_URI_BUF], back[JID_BUF];
		assert_true(jid_normalize(J[i], strlen(J[i]), norm, sizeof norm, NULL) > 0);
		int rc = b2(J[i], 0, uri, sizeof uri);
		if (rc < 0)
			fail_msg("B2(%s) = %d", J[i], rc);
		rc = b1(uri, back, sizeof back);
		if (rc < 0 || strcmp(back, norm) != 0)
			fail_msg("%s -> %s -> %s (%d)", J[i], uri, rc < 0 ? "" : back, rc);
	}
}

static void test_status(void **state)
{
	(void)state;
	assert_int_equal(addr_status(PE_SCHEME), 416);
	assert_int_equal(addr_status(PE_TOOBIG), 414);
	assert_int_equal(addr_status(PE_PROTO), 400);
	assert_int_equal(addr_status(PE_INVAL), 400);
	assert_int_equal(addr_status(0), 0);
	assert_int_equal(addr_status(12), 0);
	char out[JID_BUF];
	assert_int_equal(addr_status(b1("sips:bob@corp.test", out, sizeof out)), 416);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_b1_vectors),	   cmocka_unit_test(test_b2_vectors),
	    cmocka_unit_test(test_b4_from),	   cmocka_unit_test(test_escape_table),
	    cmocka_unit_test(test_unescape_table), cmocka_unit_test(test_b1_edges),
	    cmocka_unit_test(test_b1_limits),	   cmocka_unit_test(test_b1_prefixes),
	    cmocka_unit_test(test_b2_edges),	   cmocka_unit_test(test_b2_limits),
	    cmocka_unit_test(test_roundtrip_sip),  cmocka_unit_test(test_roundtrip_xmpp),
	    cmocka_unit_test(test_status),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
