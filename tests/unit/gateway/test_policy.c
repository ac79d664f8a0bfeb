/* Unit tests for the gateway's federation policy: config rows, cross-field rules, snapshot,
 * per-user access, file:line of policy errors, partners managed with parleyctl. */
#include "gateway/policy.h" /* not proxy/policy.h, which -Iproxy would find first */

#include "conf.h"
#include "err.h"

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

/* A daemon-like config: one plain key plus the policy rows, as the gateway will embed them. */
struct tgw {
	char *node_id;
	struct gw_policy_conf pol;
};

static const struct conf_option T[] = {
    {"general", "node_id", CONF_STRING, 1, 100, "gw", offsetof(struct tgw, node_id), false, false,
     NULL, "name"},
    GW_POLICY_OPTIONS(struct tgw, pol),
};
#define NT (sizeof T / sizeof T[0])
static const struct conf_multi TM[] = {GW_POLICY_MULTI(struct tgw, pol)};
#define NTM (sizeof TM / sizeof TM[0])

static char g_dir[256];
static char g_path[512];
static char g_err[1024];

/* The example of the brief: [federation] and three partners, one of them all defaults. */
static const char FULL[] = "[general]\n"
			   "node_id = gw1\n"
			   "[federation]\n"
			   "domain = corp.test\n"
			   "domain = Corp2.TEST\n"
			   "connection_limit = 500\n"
			   "per_partner_limit = 10\n"
			   "keepalive = 5m\n"
			   "establishment_timeout = 30s\n"
			   "inactivity_timeout = 20m\n"
			   "subscription_refresh = 4h\n"
			   "log_message_bodies = true\n"
			   "max_stanza_bytes = 512k\n"
			   "preauth_stanza_bytes = 16k\n"
			   "\n"
			   "[partner \"partner.test\"]\n"
			   "type = federated\n"
			   "tls = required\n"
			   "sasl = optional\n"
			   "dialback = false\n"
			   "keepalive = off\n"
			   "connection_limit = 5\n"
			   "proxy = Proxy.Partner.test:5299\n"
			   "additional_domain = chat.partner.test\n"
			   "additional_domain = MUC.partner.test\n"
			   "description = \"Partner, Inc. \\\"main\\\"\"\n"
			   "\n"
			   "[partner \"B\xc3\xbc"
			   "cher.Example\"]\n"
			   "; every key at its default\n"
			   "\n"
			   "[partner \"legacy.test\"]\n"
			   "type = Public-Verified\n"
			   "tls = optional\n"
			   "sasl = not-supported\n"
			   "proxy = [::1]:5269\n"
			   "additional_domain = b\xc3\xbc"
			   "cher.legacy.test\n";

static void write_file(const char *text)
{
	FILE *f = fopen(g_path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
}

static int load(const char *text, struct tgw *c)
{
	write_file(text);
	memset(c, 0x5a, sizeof *c);
	return conf_load_ex(T, NT, TM, NTM, c, g_path, g_err, sizeof g_err);
}

static void unload(struct tgw *c)
{
	conf_free_ex(T, NT, TM, NTM, c);
}

static const struct gw_partner_conf *partner(const struct tgw *c, size_t i)
{
	assert_true(i < c->pol.partners.n);
	return (const struct gw_partner_conf *)c->pol.partners.items + i;
}

static int setup(void **state)
{
	(void)state;
	char tmpl[] = "/tmp/parley-test-policy-XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	char *abs = realpath(tmpl, NULL);
	assert_non_null(abs);
	assert_true(strlen(abs) < sizeof g_dir);
	strcpy(g_dir, abs);
	free(abs);
	snprintf(g_path, sizeof g_path, "%s/gateway.conf", g_dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(g_path);
	rmdir(g_dir);
	return 0;
}

static void test_load_full(void **state)
{
	(void)state;
	struct tgw c;
	assert_int_equal(load(FULL, &c), 0);
	assert_string_equal(c.node_id, "gw1");
	const struct gw_policy_conf *p = &c.pol;
	assert_int_equal(p->domains.n, 2);
	assert_string_equal(p->domains.v[0], "corp.test");
	assert_string_equal(p->domains.v[1],
			    "Corp2.TEST"); /* as written; the snapshot normalises */
	assert_int_equal(p->connection_limit, 500);
	assert_int_equal(p->per_partner_limit, 10);
	assert_int_equal(p->keepalive_ms, 300000);
	assert_int_equal(p->establishment_ms, 30000);
	assert_int_equal(p->inactivity_ms, 1200000);
	assert_int_equal(p->subscription_refresh_ms, 4 * 3600000);
	assert_true(p->log_message_bodies);
	assert_int_equal(p->max_stanza_bytes, 512 * 1024);
	assert_int_equal(p->preauth_stanza_bytes, 16 * 1024);

	assert_int_equal(p->partners.n, 3);
	assert_string_equal(p->partners.names[0], "partner.test");
	assert_string_equal(p->partners.names[1], "B\xc3\xbc"
						  "cher.Example");
	assert_string_equal(p->partners.names[2], "legacy.test");

	const struct gw_partner_conf *a = partner(&c, 0);
	assert_int_equal(a->type, GW_PARTNER_FEDERATED);
	assert_int_equal(a->tls, GW_NEG_REQUIRED);
	assert_int_equal(a->sasl, GW_NEG_OPTIONAL);
	assert_false(a->dialback);
	assert_false(a->keepalive);
	assert_int_equal(a->connection_limit, 5);
	assert_string_equal(a->proxy.host, "Proxy.Partner.test");
	assert_int_equal(a->proxy.port, 5299);
	assert_int_equal(a->additional_domains.n, 2);
	assert_string_equal(a->additional_domains.v[0], "chat.partner.test");
	assert_string_equal(a->additional_domains.v[1], "MUC.partner.test");
	assert_string_equal(a->description, "Partner, Inc. \"main\"");

	/* Lync's defaults for an allowed partner. */
	const struct gw_partner_conf *b = partner(&c, 1);
	assert_int_equal(b->type, GW_PARTNER_PUBLIC_UNVERIFIED);
	assert_int_equal(b->tls, GW_NEG_REQUIRED);
	assert_int_equal(b->sasl, GW_NEG_REQUIRED);
	assert_true(b->dialback);
	assert_true(b->keepalive);
	assert_int_equal(b->connection_limit, 0);
	assert_null(b->proxy.host);
	assert_int_equal(b->additional_domains.n, 0);
	assert_null(b->description);

	const struct gw_partner_conf *l = partner(&c, 2);
	assert_int_equal(l->type, GW_PARTNER_PUBLIC_VERIFIED);
	assert_int_equal(l->tls, GW_NEG_OPTIONAL);
	assert_int_equal(l->sasl, GW_NEG_NOT_SUPPORTED);
	assert_true(l->dialback);
	assert_string_equal(l->proxy.host, "::1");
	assert_int_equal(l->proxy.port, 5269);

	assert_int_equal(gw_policy_check(p, g_err, sizeof g_err), 0);
	assert_string_equal(g_err, "");
	unload(&c);
	assert_int_equal(c.pol.partners.n, 0);
	assert_null(c.pol.partners.items);
}

/* The gateway settings default to Lync's. */
static void test_federation_defaults(void **state)
{
	(void)state;
	struct tgw c;
	assert_int_equal(load("[federation]\ndomain = corp.test\n", &c), 0);
	const struct gw_policy_conf *p = &c.pol;
	assert_int_equal(p->connection_limit, 1000);
	assert_int_equal(p->per_partner_limit, 20);
	assert_int_equal(p->keepalive_ms, 300000);
	assert_int_equal(p->establishment_ms, 60000);
	assert_int_equal(p->inactivity_ms, 600000);
	assert_int_equal(p->subscription_refresh_ms, 28800000);
	assert_false(p->log_message_bodies);
	assert_int_equal(p->max_stanza_bytes, 262144);
	assert_int_equal(p->preauth_stanza_bytes, 8192);
	assert_int_equal(p->partners.n, 0);
	assert_int_equal(gw_policy_check(p, g_err, sizeof g_err), 0);
	unload(&c);
}

#define expect_load_error(text, msg) expect_load_error_at((text), (msg), __FILE__, __LINE__)
static void expect_load_error_at(const char *text, const char *msg_after_path, const char *file,
				 int line)
{
	struct tgw c;
	char want[2048];
	int r = load(text, &c);
	snprintf(want, sizeof want, "%s%s", g_path, msg_after_path);
	_assert_int_equal(cast_to_largest_integral_type(r),
			  cast_to_largest_integral_type(PE_CONFIG), file, line);
	_assert_string_equal(g_err, want, file, line);
	_assert_true(cast_to_largest_integral_type(c.pol.partners.n == 0 &&
						   c.pol.partners.items == NULL &&
						   c.pol.domains.v == NULL),
		     "policy freed after an error", file, line);
}

/* Load errors name FILE:LINE and, inside a partner, the partner. */
static void test_load_errors(void **state)
{
	(void)state;
	expect_load_error("[federation]\ndomain = a.test\n\n[partner \"p.test\"]\ntype = friend\n",
			  ":5: [partner \"p.test\"] type: 'friend' is not one of: federated, "
			  "public-verified, public-unverified");
	expect_load_error("[partner \"p.test\"]\ntls = mandatory\n",
			  ":2: [partner \"p.test\"] tls: 'mandatory' is not one of: required, "
			  "optional, not-supported");
	expect_load_error("[partner \"p.test\"]\ndialback = perhaps\n",
			  ":2: [partner \"p.test\"] dialback: 'perhaps' is not a boolean (use true "
			  "or false)");
	expect_load_error("[partner \"p.test\"]\nproxy = proxy.p.test\n",
			  ":2: [partner \"p.test\"] proxy: missing port (use host:port or "
			  "[v6]:port)");
	expect_load_error("[partner \"p.test\"]\nconnection_limit = 100001\n",
			  ":2: [partner \"p.test\"] connection_limit: 100001 is above the maximum "
			  "100000");
	expect_load_error("[partner \"p.test\"]\nsecret = x\n",
			  ":2: unknown key 'secret' in section [partner \"p.test\"]");
	expect_load_error("[partner \"p.test\"]\n[partner \"q.test\"]\n[partner \"p.test\"]\n",
			  ":3: [partner \"p.test\"]: repeated section, first on line 1");
	expect_load_error("[partner]\n", ":1: section [partner] needs a name, as in [partner "
					 "\"NAME\"]");
	expect_load_error("[federation]\nconnection_limit = 0\n",
			  ":2: [federation] connection_limit: 0 is below the minimum 1");
	expect_load_error("[federation]\nkeepalive = 0s\n",
			  ":2: [federation] keepalive: 0 is below the minimum 1s");
	expect_load_error("[federation]\nmax_stanza_bytes = 4k\n",
			  ":2: [federation] max_stanza_bytes: 4KiB is below the minimum 10000");
	expect_load_error("[federation]\ndomain =\n", ":2: [federation] domain: empty value");
}

/* Loads text, which must load, and checks gw_policy_check's verdict. */
#define expect_verdict(text, msg) expect_verdict_at((text), (msg), __FILE__, __LINE__)
static void expect_verdict_at(const char *text, const char *msg, const char *file, int line)
{
	struct tgw c;
	int r = load(text, &c);
	_assert_int_equal(cast_to_largest_integral_type(r), 0, file, line);
	r = gw_policy_check(&c.pol, g_err, sizeof g_err);
	_assert_int_equal(cast_to_largest_integral_type(r),
			  cast_to_largest_integral_type(msg ? PE_CONFIG : 0), file, line);
	_assert_string_equal(g_err, msg ? msg : "", file, line);
	/* A config that fails the check yields no snapshot. */
	Parley__Link__PolicySnapshot *s = gw_policy_snapshot(&c.pol);
	_assert_true(cast_to_largest_integral_type((s == NULL) == (msg != NULL)),
		     "snapshot exactly when the check passes", file, line);
	gw_policy_snapshot_free(s);
	unload(&c);
}

static void test_check_negotiation(void **state)
{
	(void)state;
	expect_verdict("[partner \"p.test\"]\ntls = not-supported\n",
		       "[partner \"p.test\"] sasl: sasl = required needs TLS, but tls = "
		       "not-supported");
	expect_verdict("[partner \"p.test\"]\ntls = not-supported\nsasl = optional\n",
		       "[partner \"p.test\"] sasl: sasl = optional needs TLS, but tls = "
		       "not-supported");
	/* Plaintext with dialback only is a (poor) policy Lync allowed. */
	expect_verdict("[partner \"p.test\"]\ntls = not-supported\nsasl = not-supported\n", NULL);
	expect_verdict("[partner \"p.test\"]\ntls = optional\nsasl = required\ndialback = no\n",
		       NULL);
	expect_verdict("[partner \"p.test\"]\nsasl = not-supported\ndialback = false\n",
		       "[partner \"p.test\"]: no way to authenticate: sasl = not-supported and "
		       "dialback = false");
}

static void test_check_domains(void **state)
{
	(void)state;
	const char *fed = "[federation]\ndomain = corp.test\n";
	char text[1024];

	/* A partner that is also served, whatever the case. */
	snprintf(text, sizeof text, "%s[partner \"CORP.test\"]\n", fed);
	expect_verdict(text, "[partner \"CORP.test\"]: corp.test is a served domain");
	snprintf(text, sizeof text, "%s[partner \"p.test\"]\nadditional_domain = corp.test\n", fed);
	expect_verdict(text,
		       "[partner \"p.test\"] additional_domain: corp.test is a served domain");
	/* Served twice. */
	expect_verdict("[federation]\ndomain = corp.test\ndomain = Corp.Test\n",
		       "[federation] domain: corp.test is given twice");
	/* Across partners, and within one. */
	snprintf(text, sizeof text,
		 "%s[partner \"p.test\"]\nadditional_domain = x.test\n"
		 "[partner \"q.test\"]\nadditional_domain = y.test\nadditional_domain = X.TEST\n",
		 fed);
	expect_verdict(text, "[partner \"q.test\"] additional_domain: x.test is already a domain "
			     "of [partner \"p.test\"] additional_domain");
	snprintf(text, sizeof text,
		 "%s[partner \"p.test\"]\nadditional_domain = x.test\n[partner \"x.test\"]\n", fed);
	expect_verdict(text, "[partner \"x.test\"]: x.test is already a domain of [partner "
			     "\"p.test\"] additional_domain");
	snprintf(text, sizeof text, "%s[partner \"p.test\"]\nadditional_domain = P.test\n", fed);
	expect_verdict(text,
		       "[partner \"p.test\"] additional_domain: p.test is given twice for this "
		       "partner");
	/* A U-label and its A-label are one domain. */
	snprintf(text, sizeof text,
		 "%s[partner \"b\xc3\xbc"
		 "cher.test\"]\n"
		 "[partner \"xn--bcher-kva.test\"]\n",
		 fed);
	expect_verdict(text, "[partner \"xn--bcher-kva.test\"]: xn--bcher-kva.test is already a "
			     "domain of [partner \"b\\xc3\\xbccher.test\"]");
	/* Of several clashes, the one met first in the file is reported. */
	snprintf(text, sizeof text,
		 "%s[partner \"zz.test\"]\n[partner \"a.test\"]\n[partner \"ZZ.test\"]\n"
		 "[partner \"A.test\"]\n",
		 fed);
	expect_verdict(text, "[partner \"ZZ.test\"]: zz.test is already a domain of [partner "
			     "\"zz.test\"]");

	/* Syntax, wherever a domain is configured. */
	expect_verdict("[federation]\ndomain = corp..test\n",
		       "[federation] domain: 'corp..test' is not a valid domain: empty label");
	expect_verdict("[federation]\ndomain = 10.0.0.1\n",
		       "[federation] domain: '10.0.0.1' is not a valid domain: the last label is "
		       "all digits (an IP address is not a domain)");
	expect_verdict("[partner \"bad_name.test\"]\n",
		       "[partner \"bad_name.test\"]: the name is not a valid domain: '_' is not a "
		       "letter, digit or '-' (use A-labels or UTF-8 for international names)");
	expect_verdict("[partner \"p.test.\"]\n",
		       "[partner \"p.test.\"]: the name is not a valid domain: ends with a dot");
	expect_verdict("[partner \"p.test\"]\nadditional_domain = -x.p.test\n",
		       "[partner \"p.test\"] additional_domain: '-x.p.test' is not a valid domain: "
		       "a label starts or ends with '-'");
	expect_verdict("[partner \"\xff.test\"]\n",
		       "[partner \"\\xff.test\"]: the name is not a valid domain: IDNA conversion "
		       "failed: not valid UTF-8");
	expect_verdict("[partner \"p.test\"]\nproxy = bad_host.p.test:5269\n",
		       "[partner \"p.test\"] proxy: 'bad_host.p.test' is not a valid host: '_' is "
		       "not a letter, digit or '-' (use A-labels or UTF-8 for international "
		       "names)");
	expect_verdict("[partner \"p.test\"]\nproxy = 192.0.2.7:5269\n", NULL);
	expect_verdict("[partner \"p.test\"]\nproxy = [2001:db8::7]:5269\n", NULL);
}

static void test_check_limits_and_timers(void **state)
{
	(void)state;
	expect_verdict("[federation]\nkeepalive = 1500ms\n",
		       "[federation] keepalive: 1500ms is not a whole number of seconds");
	expect_verdict("[federation]\ninactivity_timeout = 90500ms\n",
		       "[federation] inactivity_timeout: 90500ms is not a whole number of seconds");
	expect_verdict("[federation]\nmax_stanza_bytes = 16k\npreauth_stanza_bytes = 32k\n",
		       "[federation] preauth_stanza_bytes: 32768 bytes is above max_stanza_bytes "
		       "(16384 bytes)");
	expect_verdict("[federation]\nmax_stanza_bytes = 16k\npreauth_stanza_bytes = 16k\n", NULL);
	/* No partner at all is a valid (refuse-everything) policy. */
	expect_verdict("", NULL);
}

static void test_domain_form(void **state)
{
	(void)state;
	static const struct {
		const char *in, *out;
	} ok[] = {
	    {"Example.COM", "example.com"},
	    {"localhost", "localhost"},
	    {"B\xc3\xbc"
	     "cher.Example",
	     "xn--bcher-kva.example"},
	    {"\xc3\x84\xc3\x96\xc3\x9c.de", "xn--4ca0bs.de"},
	    {"\xe2\x98\x83.net", "xn--n3h.net"},
	    {"xn--bcher-kva.example", "xn--bcher-kva.example"},
	    {"a-b.3com", "a-b.3com"},
	};
	char out[GW_DOMAIN_BUF], why[160];
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		assert_int_equal(gw_policy_domain(ok[i].in, out, sizeof out, why, sizeof why), 0);
		assert_string_equal(out, ok[i].out);
	}

	char longest[300];
	memset(longest, 'a', sizeof longest);
	for (int i = 63; i < 253; i += 64)
		longest[i] = '.';
	longest[253] = '\0';
	assert_int_equal(gw_policy_domain(longest, out, sizeof out, why, sizeof why), 0);
	assert_int_equal(strlen(out), 253);
	longest[253] = 'a';
	longest[254] = '\0';
	assert_int_equal(gw_policy_domain(longest, out, sizeof out, why, sizeof why), PE_INVAL);
	assert_string_equal(why, "254 bytes, above the maximum 253");

	static const struct {
		const char *in, *why;
	} bad[] = {
	    {"", "empty domain"},
	    {".a.test", "empty label"},
	    {"a b.test", "' ' is not a letter, digit or '-' (use A-labels or UTF-8 for "
			 "international names)"},
	    {"a\x01.test", "'\\x01' is not a letter, digit or '-' (use A-labels or UTF-8 for "
			   "international names)"},
	    {"x-.test", "a label starts or ends with '-'"},
	    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.test",
	     "a label of 64 bytes, above the maximum 63"},
	    {"1.2.3.4", "the last label is all digits (an IP address is not a domain)"},
	    {"b\xc3\xbc"
	     "cher_x.test",
	     "IDNA conversion failed: Non-digit/letter/hyphen in input"},
	    {"\xc3.test", "IDNA conversion failed: not valid UTF-8"},
	    {"\xc3\xbc.", "ends with a dot"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(gw_policy_domain(bad[i].in, out, sizeof out, why, sizeof why),
				 PE_INVAL);
		assert_string_equal(why, bad[i].why);
	}
	/* A buffer too small is an error, never an overrun; why may be absent. */
	char tiny[4];
	assert_int_equal(gw_policy_domain("abcd.test", tiny, sizeof tiny, NULL, 0), PE_INVAL);
}

/* Every field of FULL as the snapshot must carry it: domains normalised, durations in s. */
static void check_full_snapshot(const Parley__Link__PolicySnapshot *s)
{
	assert_int_equal(s->n_served_domains, 2);
	assert_string_equal(s->served_domains[0], "corp.test");
	assert_string_equal(s->served_domains[1], "corp2.test");

	assert_non_null(s->limits);
	assert_true(s->limits->has_connection_limit);
	assert_int_equal(s->limits->connection_limit, 500);
	assert_true(s->limits->has_per_partner_limit);
	assert_int_equal(s->limits->per_partner_limit, 10);
	assert_true(s->limits->has_max_stanza_bytes);
	assert_int_equal(s->limits->max_stanza_bytes, 512 * 1024);
	assert_true(s->limits->has_preauth_stanza_bytes);
	assert_int_equal(s->limits->preauth_stanza_bytes, 16 * 1024);

	assert_non_null(s->timers);
	assert_true(s->timers->has_keepalive_s);
	assert_int_equal(s->timers->keepalive_s, 300);
	assert_true(s->timers->has_establishment_s);
	assert_int_equal(s->timers->establishment_s, 30);
	assert_true(s->timers->has_inactivity_s);
	assert_int_equal(s->timers->inactivity_s, 1200);
	assert_true(s->timers->has_subscription_refresh_s);
	assert_int_equal(s->timers->subscription_refresh_s, 14400);

	assert_true(s->has_log_message_bodies);
	assert_true(s->log_message_bodies);

	assert_int_equal(s->n_partners, 3);
	const Parley__Link__Partner *a = s->partners[0];
	assert_string_equal(a->domain, "partner.test");
	assert_int_equal(a->n_additional_domains, 2);
	assert_string_equal(a->additional_domains[0], "chat.partner.test");
	assert_string_equal(a->additional_domains[1], "muc.partner.test");
	assert_string_equal(a->description, "Partner, Inc. \"main\"");
	assert_true(a->has_type);
	assert_int_equal(a->type, PARLEY__LINK__PARTNER_TYPE__PARTNER_FEDERATED);
	assert_true(a->has_tls);
	assert_int_equal(a->tls, PARLEY__LINK__NEGOTIATION__NEG_REQUIRED);
	assert_true(a->has_sasl);
	assert_int_equal(a->sasl, PARLEY__LINK__NEGOTIATION__NEG_OPTIONAL);
	assert_true(a->has_dialback);
	assert_false(a->dialback);
	assert_true(a->has_keepalive);
	assert_false(a->keepalive);
	assert_true(a->has_connection_limit);
	assert_int_equal(a->connection_limit, 5);
	assert_string_equal(a->proxy_host, "proxy.partner.test");
	assert_true(a->has_proxy_port);
	assert_int_equal(a->proxy_port, 5299);

	const Parley__Link__Partner *b = s->partners[1];
	assert_string_equal(b->domain, "xn--bcher-kva.example");
	assert_int_equal(b->n_additional_domains, 0);
	assert_null(b->description);
	assert_int_equal(b->type, PARLEY__LINK__PARTNER_TYPE__PARTNER_PUBLIC_UNVERIFIED);
	assert_int_equal(b->tls, PARLEY__LINK__NEGOTIATION__NEG_REQUIRED);
	assert_int_equal(b->sasl, PARLEY__LINK__NEGOTIATION__NEG_REQUIRED);
	assert_true(b->dialback);
	assert_true(b->keepalive);
	assert_true(b->has_connection_limit);
	assert_int_equal(b->connection_limit, 0); /* the global per-partner limit applies */
	assert_null(b->proxy_host);
	assert_false(b->has_proxy_port);

	const Parley__Link__Partner *l = s->partners[2];
	assert_string_equal(l->domain, "legacy.test");
	assert_int_equal(l->n_additional_domains, 1);
	assert_string_equal(l->additional_domains[0], "xn--bcher-kva.legacy.test");
	assert_int_equal(l->type, PARLEY__LINK__PARTNER_TYPE__PARTNER_PUBLIC_VERIFIED);
	assert_int_equal(l->tls, PARLEY__LINK__NEGOTIATION__NEG_OPTIONAL);
	assert_int_equal(l->sasl, PARLEY__LINK__NEGOTIATION__NEG_NOT_SUPPORTED);
	assert_true(l->dialback);
	assert_string_equal(l->proxy_host, "::1"); /* an address is kept as written */
	assert_int_equal(l->proxy_port, 5269);
}

static void test_snapshot_fields_and_wire(void **state)
{
	(void)state;
	struct tgw c;
	assert_int_equal(load(FULL, &c), 0);
	Parley__Link__PolicySnapshot *s = gw_policy_snapshot(&c.pol);
	assert_non_null(s);
	/* The snapshot owns its strings: free the config first. */
	unload(&c);
	check_full_snapshot(s);

	size_t len = parley__link__policy_snapshot__get_packed_size(s);
	uint8_t *wire = malloc(len);
	assert_non_null(wire);
	assert_int_equal(parley__link__policy_snapshot__pack(s, wire), len);
	Parley__Link__PolicySnapshot *u = parley__link__policy_snapshot__unpack(NULL, len, wire);
	assert_non_null(u);
	assert_int_equal(u->generation, s->generation);
	check_full_snapshot(u);
	parley__link__policy_snapshot__free_unpacked(u, NULL);

	/* Fields go out in number order, log_message_bodies last: a truncated snapshot is
	 * refused or visibly incomplete. */
	for (size_t cut = 0; cut < len; cut++) {
		u = parley__link__policy_snapshot__unpack(NULL, cut, wire);
		if (u) {
			assert_false(u->has_log_message_bodies);
			parley__link__policy_snapshot__free_unpacked(u, NULL);
		}
	}
	free(wire);
	gw_policy_snapshot_free(s);
	gw_policy_snapshot_free(NULL);
}

static void test_snapshot_empty(void **state)
{
	(void)state;
	struct tgw c;
	assert_int_equal(load("", &c), 0);
	Parley__Link__PolicySnapshot *s = gw_policy_snapshot(&c.pol);
	unload(&c);
	assert_non_null(s);
	assert_int_equal(s->n_served_domains, 0);
	assert_int_equal(s->n_partners, 0);
	assert_int_equal(s->limits->connection_limit, 1000);
	assert_int_equal(s->limits->per_partner_limit, 20);
	assert_int_equal(s->timers->keepalive_s, 300);
	assert_int_equal(s->timers->establishment_s, 60);
	assert_int_equal(s->timers->inactivity_s, 600);
	assert_int_equal(s->timers->subscription_refresh_s, 28800);
	assert_true(s->has_log_message_bodies);
	assert_false(s->log_message_bodies);

	uint8_t wire[256];
	size_t len = parley__link__policy_snapshot__get_packed_size(s);
	assert_true(len <= sizeof wire);
	parley__link__policy_snapshot__pack(s, wire);
	Parley__Link__PolicySnapshot *u = parley__link__policy_snapshot__unpack(NULL, len, wire);
	assert_non_null(u);
	assert_int_equal(u->generation, s->generation);
	assert_int_equal(u->n_partners, 0);
	assert_int_equal(u->limits->max_stanza_bytes, 262144);
	assert_int_equal(u->limits->preauth_stanza_bytes, 8192);
	parley__link__policy_snapshot__free_unpacked(u, NULL);
	gw_policy_snapshot_free(s);
}

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Generations increase strictly, even for builds within one microsecond, and are never
 * below the wall clock, so a restarted gateway's snapshot supersedes the old one. */
static void test_generations(void **state)
{
	(void)state;
	enum { N = 2000 };
	struct tgw c;
	uint64_t prev = 0;
	assert_int_equal(load("[federation]\ndomain = corp.test\n", &c), 0);
	uint64_t before = now_us();
	for (int i = 0; i < N; i++) {
		Parley__Link__PolicySnapshot *s = gw_policy_snapshot(&c.pol);
		assert_non_null(s);
		assert_true(s->generation > prev);
		assert_true(s->generation >= before);
		prev = s->generation;
		gw_policy_snapshot_free(s);
	}
	/* Bumping by one may run ahead of the clock by at most one per build. */
	assert_true(prev <= now_us() + N);
	unload(&c);
}

/* Every policy row is reloadable: partners may be added, changed and removed on SIGHUP. */
static void test_reload_and_help(void **state)
{
	(void)state;
	struct tgw a, b;
	char err[256];
	assert_int_equal(load(FULL, &a), 0);
	assert_int_equal(load("[general]\nnode_id = gw1\n[federation]\ndomain = other.test\n"
			      "[partner \"new.test\"]\ntype = federated\n",
			      &b),
			 0);
	assert_int_equal(conf_diff_nonreloadable_ex(T, NT, TM, NTM, &a, &b, err, sizeof err), 0);
	unload(&b);
	unload(&a);

	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	assert_non_null(f);
	conf_print_help_ex(T, NT, TM, NTM, f);
	assert_int_equal(fclose(f), 0);
	char want[512];
	snprintf(want, sizeof want, "%-12s %-28s %-9s %-12s %-16s %-6s ", "partner \"*\"", "type",
		 "enum", "public-unverified", "federated|public-verified|public-unverified", "yes");
	assert_non_null(strstr(out, want));
	snprintf(want, sizeof want, "%-12s %-28s %-9s %-12s %-16s %-6s ", "federation", "keepalive",
		 "duration", "300s", "1s..1d", "yes");
	assert_non_null(strstr(out, want));
	free(out);
}

/* J4: [access] default and [user "JID"] overrides, reloadable rows, normalised lookups. */
static void test_user_access(void **state)
{
	(void)state;
	struct tgw c;
	bool over;
	assert_int_equal(load("[federation]\ndomain = corp.test\n", &c), 0);
	assert_int_equal(c.pol.access_default, GW_ACCESS_ALLOW);
	assert_true(gw_policy_user_allowed(&c.pol, "bob@corp.test"));
	assert_int_equal(gw_policy_check(&c.pol, g_err, sizeof g_err), 0);
	unload(&c);

	assert_int_equal(load("[federation]\ndomain = corp.test\n"
			      "[access]\ndefault = deny\n"
			      "[user \"Bob@Corp.Test\"]\nxmpp = allow\n"
			      "[user \"carol@corp.test\"]\nxmpp = deny\n",
			      &c),
			 0);
	assert_int_equal(gw_policy_check(&c.pol, g_err, sizeof g_err), 0);
	assert_int_equal(gw_policy_user_access(&c.pol, "bob@corp.test", &over), GW_ACCESS_ALLOW);
	assert_true(over);
	/* a full JID, another case: the same user */
	assert_true(gw_policy_user_allowed(&c.pol, "BOB@corp.test/phone"));
	assert_int_equal(gw_policy_user_access(&c.pol, "carol@corp.test", &over), GW_ACCESS_DENY);
	assert_true(over);
	assert_int_equal(gw_policy_user_access(&c.pol, "dave@corp.test", &over), GW_ACCESS_DENY);
	assert_false(over);
	assert_false(gw_policy_user_allowed(&c.pol, "not a jid@"));
	unload(&c);

	/* xmpp is required in a [user] section; bad names and duplicates are refused */
	assert_int_not_equal(load("[federation]\ndomain = corp.test\n[user \"a@corp.test\"]\n", &c),
			     0);
	assert_non_null(strstr(g_err, "xmpp"));
	assert_int_equal(
	    load("[federation]\ndomain = corp.test\n[user \"corp.test\"]\nxmpp = deny\n", &c), 0);
	assert_int_equal(gw_policy_check(&c.pol, g_err, sizeof g_err), PE_CONFIG);
	assert_string_equal(g_err,
			    "[user \"corp.test\"]: the name is not a bare JID (user@domain)");
	unload(&c);
	assert_int_equal(
	    load("[federation]\ndomain = corp.test\n[user \"a@else.test\"]\nxmpp = deny\n", &c), 0);
	assert_int_equal(gw_policy_check(&c.pol, g_err, sizeof g_err), PE_CONFIG);
	assert_string_equal(g_err, "[user \"a@else.test\"]: else.test is not a served domain");
	unload(&c);
	assert_int_equal(
	    load("[federation]\ndomain = corp.test\n[user \"A@corp.test\"]\nxmpp = deny\n"
		 "[user \"a@CORP.test\"]\nxmpp = allow\n",
		 &c),
	    0);
	assert_int_equal(gw_policy_check(&c.pol, g_err, sizeof g_err), PE_CONFIG);
	assert_string_equal(g_err, "[user \"a@corp.test\"]: a@corp.test is given twice");
	unload(&c);
}

/* An error of gw_policy_check names the file and the line of the key, or of the section. */
static void test_check_file_line(void **state)
{
	(void)state;
	struct tgw c;
	char want[1024];
	assert_int_equal(load("[federation]\n"
			      "domain = corp.test\n"
			      "[partner \"ok.test\"]\n"
			      "[partner \"p.test\"]\n"
			      "type = federated\n"
			      "sasl = optional\n"
			      "tls = not-supported\n",
			      &c),
			 0);
	assert_int_equal(gw_policy_check_file(&c.pol, g_path, g_err, sizeof g_err), PE_CONFIG);
	snprintf(want, sizeof want,
		 "%s:6: [partner \"p.test\"] sasl: sasl = optional needs TLS, but tls = "
		 "not-supported",
		 g_path);
	assert_string_equal(g_err, want);
	unload(&c);
	/* the key is at its default: the section's header line */
	assert_int_equal(load("[federation]\ndomain = corp.test\n\n[partner \"p.test\"]\n"
			      "tls = not-supported\n",
			      &c),
			 0);
	assert_int_equal(gw_policy_check_file(&c.pol, g_path, g_err, sizeof g_err), PE_CONFIG);
	snprintf(want, sizeof want, "%s:4: [partner \"p.test\"] sasl:", g_path);
	assert_memory_equal(g_err, want, strlen(want));
	unload(&c);
	assert_int_equal(
	    load("[federation]\ndomain = corp.test\n[user \"x@y.test\"]\nxmpp = deny\n", &c), 0);
	assert_int_equal(gw_policy_check_file(&c.pol, g_path, g_err, sizeof g_err), PE_CONFIG);
	snprintf(want, sizeof want, "%s:3: [user \"x@y.test\"]:", g_path);
	assert_memory_equal(g_err, want, strlen(want));
	unload(&c);
	assert_int_equal(load("[federation]\ndomain = corp.test\n", &c), 0);
	assert_int_equal(gw_policy_check_file(&c.pol, g_path, g_err, sizeof g_err), 0);
	unload(&c);
}

/* Partners managed with parleyctl: parsed with the config's rows, merged, checked whole. */
static void test_managed_partners(void **state)
{
	(void)state;
	struct tgw c;
	struct gw_policy_conf m, all;
	char err[512];
	memset(&m, 0, sizeof m);
	assert_int_equal(load("[federation]\ndomain = corp.test\n[partner \"conf.test\"]\n", &c),
			 0);
	assert_int_equal(gw_policy_managed_add(&m, "new.test",
					       "type = federated\nsasl = optional\n"
					       "additional_domain = chat.new.test\n"
					       "description = a b c\n",
					       err, sizeof err),
			 0);
	assert_int_equal(gw_policy_managed_add(&m, "two.test", "", err, sizeof err), 0);
	assert_int_equal(m.partners.n, 2);
	const struct gw_partner_conf *p = m.partners.items;
	assert_int_equal(p[0].type, GW_PARTNER_FEDERATED);
	assert_int_equal(p[0].sasl, GW_NEG_OPTIONAL);
	assert_string_equal(p[0].description, "a b c");
	assert_int_equal(p[1].type, GW_PARTNER_PUBLIC_UNVERIFIED); /* the config's defaults */
	/* errors name the key, as the config's do, without a line */
	assert_int_equal(
	    gw_policy_managed_add(&m, "bad.test", "tls = sometimes\n", err, sizeof err), PE_CONFIG);
	assert_memory_equal(err, "[partner \"bad.test\"] tls:", 22);
	assert_int_equal(gw_policy_managed_add(&m, "bad.test", "colour = blue\n", err, sizeof err),
			 PE_CONFIG);
	assert_non_null(strstr(err, "colour"));
	assert_int_equal(
	    gw_policy_managed_add(&m, "bad.test", "x = 1\n[federation]\n", err, sizeof err),
	    PE_CONFIG);
	assert_int_equal(gw_policy_managed_add(&m, "bad\".test", "", err, sizeof err), PE_CONFIG);
	assert_int_equal(m.partners.n, 2);

	gw_policy_merge(&c.pol, &m, &all);
	assert_int_equal(all.partners.n, 3);
	assert_string_equal(all.partners.names[0], "conf.test");
	assert_string_equal(all.partners.names[2], "two.test");
	assert_int_equal(gw_policy_check(&all, err, sizeof err), 0);
	assert_int_equal(gw_policy_find_partner(&all, "TWO.test"), 2);
	assert_int_equal(gw_policy_find_partner(&all, "chat.new.test"), -1);
	Parley__Link__PolicySnapshot *snap = gw_policy_snapshot(&all);
	assert_non_null(snap);
	assert_int_equal(snap->n_partners, 3);
	assert_string_equal(snap->partners[1]->domain, "new.test");
	gw_policy_snapshot_free(snap);
	gw_policy_merge_release(&all);

	/* a managed partner clashing with the config is refused by the merged check */
	assert_int_equal(gw_policy_managed_add(&m, "CONF.test", "", err, sizeof err), 0);
	gw_policy_merge(&c.pol, &m, &all);
	assert_int_equal(gw_policy_check(&all, err, sizeof err), PE_CONFIG);
	assert_string_equal(err, "[partner \"CONF.test\"]: conf.test is already a domain of "
				 "[partner \"conf.test\"]");
	gw_policy_merge_release(&all);
	/* and one with the SASL-needs-TLS rule broken */
	gw_policy_managed_free(&m);
	assert_int_equal(m.partners.n, 0);
	assert_int_equal(
	    gw_policy_managed_add(&m, "x.test", "tls = not-supported\n", err, sizeof err), 0);
	gw_policy_merge(&c.pol, &m, &all);
	assert_int_equal(gw_policy_check(&all, err, sizeof err), PE_CONFIG);
	assert_string_equal(err, "[partner \"x.test\"] sasl: sasl = required needs TLS, but tls = "
				 "not-supported");
	gw_policy_merge_release(&all);
	gw_policy_merge(&c.pol, NULL, &all);
	assert_int_equal(all.partners.n, 1);
	gw_policy_merge_release(&all);
	gw_policy_managed_free(&m);
	unload(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_load_full),	    cmocka_unit_test(test_federation_defaults),
	    cmocka_unit_test(test_load_errors),	    cmocka_unit_test(test_check_negotiation),
	    cmocka_unit_test(test_check_domains),   cmocka_unit_test(test_check_limits_and_timers),
	    cmocka_unit_test(test_domain_form),	    cmocka_unit_test(test_snapshot_fields_and_wire),
	    cmocka_unit_test(test_snapshot_empty),  cmocka_unit_test(test_generations),
	    cmocka_unit_test(test_reload_and_help), cmocka_unit_test(test_user_access),
	    cmocka_unit_test(test_check_file_line), cmocka_unit_test(test_managed_partners),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
