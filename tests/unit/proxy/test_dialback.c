/* Unit tests for dialback keys, elements and the receiving server's checks (proxy/dialback.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "buf.h"
#include "dialback.h"
#include "err.h"
#include "policy.h"
#include "xml_stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- keys ---- */

static void test_xep0185_vector(void **state)
{
	(void)state;
	struct dialback db;
	char key[DIALBACK_KEY_LEN + 1];
	const char *secret = "s3cr3tf0rd14lb4ck";
	dialback_init(&db, secret, strlen(secret));
	/* hex(SHA-256(secret)) is the HMAC key (XEP-0185 §3) */
	assert_string_equal(db.hkey,
			    "a7136eb1f46c9ef18c5e78c36ca257067c69b3d518285f0b18a96c33beae9acc");
	assert_int_equal(dialback_key(&db, "xmpp.example.com", "example.org", "D60000229F", key),
			 0);
	assert_string_equal(key,
			    "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643");
	assert_true(dialback_key_ok(&db, "xmpp.example.com", "example.org", "D60000229F", key, 64));
}

static void test_key_binds_every_input(void **state)
{
	(void)state;
	struct dialback db, other;
	char k[DIALBACK_KEY_LEN + 1], k2[DIALBACK_KEY_LEN + 1];
	dialback_init(&db, "secret-one", 10);
	dialback_init(&other, "secret-two", 10);
	assert_int_equal(dialback_key(&db, "partner.test", "corp.test", "abc", k), 0);
	assert_int_equal(strlen(k), DIALBACK_KEY_LEN);
	assert_true(dialback_key_ok(&db, "partner.test", "corp.test", "abc", k, strlen(k)));
	/* every input changes the key: domains swapped, another stream, another secret */
	assert_false(dialback_key_ok(&db, "corp.test", "partner.test", "abc", k, 64));
	assert_false(dialback_key_ok(&db, "partner.test", "corp.test", "abd", k, 64));
	assert_false(dialback_key_ok(&other, "partner.test", "corp.test", "abc", k, 64));
	assert_int_equal(dialback_key(&db, "partner.test", "corp.test", "abd", k2), 0);
	assert_string_not_equal(k, k2);
	/* a prefix, a longer string, one flipped character, upper case: all refused */
	assert_false(dialback_key_ok(&db, "partner.test", "corp.test", "abc", k, 63));
	char longer[80];
	snprintf(longer, sizeof longer, "%s0", k);
	assert_false(dialback_key_ok(&db, "partner.test", "corp.test", "abc", longer, 65));
	for (size_t i = 0; i < 64; i += 7) {
		char flip[65];
		memcpy(flip, k, 65);
		flip[i] = flip[i] == '0' ? '1' : '0';
		assert_false(dialback_key_ok(&db, "partner.test", "corp.test", "abc", flip, 64));
	}
	/* "a b"+"c" and "a"+"b c" would concatenate alike: domains with spaces are refused */
	assert_int_equal(dialback_key(&db, "a b", "c", "x", k), PE_INVAL);
	assert_int_equal(dialback_key(&db, "a", "b c", "x", k2), PE_INVAL);
	assert_false(dialback_key_ok(&db, "a b", "c", "x", k, 64));
}

static void test_key_rejects_bad_input(void **state)
{
	(void)state;
	struct dialback db;
	char k[DIALBACK_KEY_LEN + 1];
	char big[1100];
	dialback_init(&db, "s", 1);
	assert_int_equal(dialback_key(&db, "", "b", "c", k), PE_INVAL);
	assert_int_equal(dialback_key(&db, "a", "", "c", k), PE_INVAL);
	assert_int_equal(dialback_key(&db, "a", "b", "", k), PE_INVAL);
	assert_int_equal(dialback_key(&db, NULL, "b", "c", k), PE_INVAL);
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = 0;
	assert_int_equal(dialback_key(&db, "a", "b", big, k), PE_INVAL);
	assert_false(dialback_key_ok(&db, "a", "b", big, "0", 1));
}

/* ---- parsing: feed a stream to xml_stream and parse the first top-level element ---- */

struct parsed {
	int rc;
	struct dialback_elem e;
	char from[64], to[64], id[64], key[128], cond[64];
	int n;
};

static void on_stanza(void *ud, const struct xs_stanza *st)
{
	struct parsed *p = ud;
	p->n++;
	p->rc = dialback_parse(st->el, &p->e);
	if (p->rc)
		return;
	snprintf(p->from, sizeof p->from, "%s", p->e.from ? p->e.from : "(null)");
	snprintf(p->to, sizeof p->to, "%s", p->e.to ? p->e.to : "(null)");
	snprintf(p->id, sizeof p->id, "%s", p->e.id ? p->e.id : "(null)");
	snprintf(p->key, sizeof p->key, "%.*s", (int)p->e.keylen, p->e.key);
	snprintf(p->cond, sizeof p->cond, "%s", p->e.error_cond ? p->e.error_cond : "(null)");
}

static const struct xs_callbacks cbs = {.on_stanza = on_stanza};

static struct parsed parse(const char *xml)
{
	struct parsed p;
	memset(&p, 0, sizeof p);
	char in[2048];
	snprintf(
	    in, sizeof in,
	    "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
	    "xmlns:db='jabber:server:dialback' to='corp.test' version='1.0'>%s",
	    xml);
	struct xs *xs = xs_new(&xs_limits_preauth, &cbs, &p);
	assert_non_null(xs);
	assert_int_equal(xs_feed(xs, in, strlen(in)), 0);
	xs_free(xs);
	assert_int_equal(p.n, 1);
	return p;
}

static void test_parse_requests_and_answers(void **state)
{
	(void)state;
	struct parsed p = parse("<db:result from='partner.test' to='corp.test'>abc123</db:result>");
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.e.kind, DB_RESULT);
	assert_int_equal(p.e.type, DB_TYPE_REQUEST);
	assert_string_equal(p.from, "partner.test");
	assert_string_equal(p.to, "corp.test");
	assert_string_equal(p.id, "(null)");
	assert_string_equal(p.key, "abc123");

	/* a pretty-printing peer: whitespace around the key is not part of it */
	p = parse("<db:result from='a' to='b'>\n   k3y \t</db:result>");
	assert_int_equal(p.rc, 0);
	assert_string_equal(p.key, "k3y");
	assert_int_equal(p.e.keylen, 3);

	p = parse("<db:verify from='corp.test' to='partner.test' id='s1'>kk</db:verify>");
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.e.kind, DB_VERIFY);
	assert_string_equal(p.id, "s1");
	assert_string_equal(p.key, "kk");

	p = parse("<db:result from='a' to='b' type='valid'/>");
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.e.type, DB_TYPE_VALID);
	assert_int_equal(p.e.keylen, 0);
	p = parse("<db:verify from='a' to='b' id='x' type='invalid'/>");
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.e.type, DB_TYPE_INVALID);
	p = parse(
	    "<db:result from='a' to='b' type='error'><error type='cancel'>"
	    "<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>");
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.e.type, DB_TYPE_ERROR);
	assert_string_equal(p.cond, "item-not-found");
	/* the namespace counts, not the prefix */
	p = parse("<result xmlns='jabber:server:dialback' from='a' to='b'>k</result>");
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.e.kind, DB_RESULT);
}

static void test_parse_refuses_malformed(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "<db:result to='b'>k</db:result>",			    /* no from */
	    "<db:result from='a'>k</db:result>",		    /* no to */
	    "<db:result from='' to='b'>k</db:result>",		    /* empty from */
	    "<db:verify from='a' to='b'>k</db:verify>",		    /* verify without id */
	    "<db:result from='a' to='b'></db:result>",		    /* request without key */
	    "<db:result from='a' to='b'>  \n </db:result>",	    /* only whitespace */
	    "<db:result from='a' to='b' type='maybe'/>",	    /* unknown type */
	    "<db:other from='a' to='b'>k</db:other>",		    /* unknown element */
	    "<result xmlns='urn:other' from='a' to='b'>k</result>", /* other namespace */
	    "<message from='a' to='b'/>",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct parsed p = parse(bad[i]);
		if (p.rc != PE_PROTO)
			fail_msg("accepted: %s", bad[i]);
	}
}

/* ---- writing ---- */

static const char *str(struct buf *b)
{
	assert_int_equal(buf_append(b, "", 1), 0);
	b->len--;
	return (const char *)buf_head(b);
}

static void test_writers(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 0);
	assert_int_equal(
	    dialback_write_request(&b, DB_RESULT, "corp.test", "partner.test", "ignored", "k1"), 0);
	assert_string_equal(str(&b),
			    "<db:result from='corp.test' to='partner.test'>k1</db:result>");
	buf_consume(&b, b.len);
	assert_int_equal(dialback_write_request(&b, DB_VERIFY, "a", "b", "id<1>", "k&2"), 0);
	assert_string_equal(str(&b),
			    "<db:verify from='a' to='b' id='id&lt;1&gt;'>k&amp;2</db:verify>");
	buf_consume(&b, b.len);
	assert_int_equal(
	    dialback_write_answer(&b, DB_RESULT, "corp.test", "partner.test", NULL, true), 0);
	assert_string_equal(str(&b),
			    "<db:result from='corp.test' to='partner.test' type='valid'/>");
	buf_consume(&b, b.len);
	assert_int_equal(dialback_write_answer(&b, DB_VERIFY, "a", "b", "s1", false), 0);
	assert_string_equal(str(&b), "<db:verify from='a' to='b' id='s1' type='invalid'/>");
	buf_consume(&b, b.len);
	assert_int_equal(dialback_write_error(&b, DB_RESULT, "a", "b", NULL, "not-allowed"), 0);
	assert_string_equal(
	    str(&b), "<db:result from='a' to='b' type='error'><error type='cancel'><not-allowed "
		     "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>");
	buf_deinit(&b);

	/* what does not fit leaves the buffer as it was; bad UTF-8 is refused */
	struct buf small;
	buf_init(&small, 40);
	assert_int_equal(buf_append(&small, "kept", 4), 0);
	assert_int_equal(dialback_write_request(&small, DB_RESULT, "corp.test", "partner.test",
						NULL, "0123456789"),
			 PE_TOOBIG);
	assert_int_equal(small.len, 4);
	assert_int_equal(dialback_write_answer(&small, DB_RESULT, "a\xff", "b", NULL, true),
			 PE_INVAL);
	assert_int_equal(small.len, 4);
	buf_deinit(&small);

	/* the written request parses back to what was written */
	buf_init(&b, 0);
	assert_int_equal(dialback_write_request(&b, DB_VERIFY, "x.test", "y.test", "ID9", "f00d"),
			 0);
	struct parsed p = parse(str(&b));
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.e.kind, DB_VERIFY);
	assert_string_equal(p.from, "x.test");
	assert_string_equal(p.to, "y.test");
	assert_string_equal(p.id, "ID9");
	assert_string_equal(p.key, "f00d");
	buf_deinit(&b);
}

/* ---- the receiving server's checks ---- */

static struct policy *make_policy(void)
{
	Parley__Link__PolicySnapshot s = PARLEY__LINK__POLICY_SNAPSHOT__INIT;
	Parley__Link__Partner p[4];
	Parley__Link__Partner *pp[4];
	char *served[] = {"corp.test"};
	struct {
		const char *d;
		int tls, sasl;
		bool db;
	} def[4] = {
	    {"a.test", PARLEY__LINK__NEGOTIATION__NEG_REQUIRED,
	     PARLEY__LINK__NEGOTIATION__NEG_NOT_SUPPORTED, true},
	    {"b.test", PARLEY__LINK__NEGOTIATION__NEG_REQUIRED,
	     PARLEY__LINK__NEGOTIATION__NEG_REQUIRED, true},
	    {"c.test", PARLEY__LINK__NEGOTIATION__NEG_OPTIONAL,
	     PARLEY__LINK__NEGOTIATION__NEG_OPTIONAL, false},
	    {"d.test", PARLEY__LINK__NEGOTIATION__NEG_NOT_SUPPORTED,
	     PARLEY__LINK__NEGOTIATION__NEG_NOT_SUPPORTED, true},
	};
	for (int i = 0; i < 4; i++) {
		parley__link__partner__init(&p[i]);
		p[i].domain = (char *)def[i].d;
		p[i].has_tls = p[i].has_sasl = p[i].has_dialback = 1;
		p[i].tls = def[i].tls;
		p[i].sasl = def[i].sasl;
		p[i].dialback = def[i].db;
		pp[i] = &p[i];
	}
	s.generation = 1;
	s.n_served_domains = 1;
	s.served_domains = served;
	s.n_partners = 4;
	s.partners = pp;
	return policy_from_snapshot(&s);
}

static void test_result_refusal(void **state)
{
	(void)state;
	struct policy *pol = make_policy();
	struct dialback_elem e = {
	    .kind = DB_RESULT, .from = "a.test", .to = "corp.test", .key = "k", .keylen = 1};
	assert_null(dialback_result_refusal(&e, "a.test", pol, true));
	/* domain comparison ignores case */
	e.from = "A.Test";
	assert_null(dialback_result_refusal(&e, "a.test", pol, true));
	e.from = "a.test";
	/* TLS required for a.test and not in use */
	assert_string_equal(dialback_result_refusal(&e, "a.test", pol, false), "policy-violation");
	/* to: a domain we do not serve */
	e.to = "elsewhere.test";
	assert_string_equal(dialback_result_refusal(&e, "a.test", pol, true), "item-not-found");
	e.to = "corp.test";
	/* piggybacking another domain on this stream */
	e.from = "d.test";
	assert_string_equal(dialback_result_refusal(&e, "a.test", pol, true), "not-allowed");
	/* SASL required (b), dialback off (c), not a partner */
	e.from = "b.test";
	assert_string_equal(dialback_result_refusal(&e, "b.test", pol, true), "not-allowed");
	e.from = "c.test";
	assert_string_equal(dialback_result_refusal(&e, "c.test", pol, true), "not-allowed");
	e.from = "z.test";
	assert_string_equal(dialback_result_refusal(&e, "z.test", pol, true), "not-allowed");
	/* TLS not supported (d): dialback over plain TCP */
	e.from = "d.test";
	assert_null(dialback_result_refusal(&e, "d.test", pol, false));

	assert_true(dialback_allowed(policy_partner(pol, "a.test", 6), true));
	assert_false(dialback_allowed(policy_partner(pol, "a.test", 6), false));
	assert_false(dialback_allowed(policy_partner(pol, "b.test", 6), true));
	assert_false(dialback_allowed(policy_partner(pol, "c.test", 6), true));
	assert_true(dialback_allowed(policy_partner(pol, "d.test", 6), false));
	assert_false(dialback_allowed(NULL, true));
	policy_unref(pol);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_xep0185_vector),
	    cmocka_unit_test(test_key_binds_every_input),
	    cmocka_unit_test(test_key_rejects_bad_input),
	    cmocka_unit_test(test_parse_requests_and_answers),
	    cmocka_unit_test(test_parse_refuses_malformed),
	    cmocka_unit_test(test_writers),
	    cmocka_unit_test(test_result_refusal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
