/* XMPP server identity in certificates: DNS-ID, SRV-ID, XmppAddr; never the CN. Certificates
 * are made with the openssl command line in a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "certid.h"

#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char dir[] = "/tmp/parley-certid-XXXXXX";

/* Makes a self-signed certificate with subject CN=cn and the given subjectAltName (or
 * none) and returns it parsed. */
static X509 *make(const char *name, const char *cn, const char *san)
{
	char cmd[2048], path[512];
	snprintf(path, sizeof path, "%s/%s.pem", dir, name);
	snprintf(cmd, sizeof cmd,
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		 "-keyout %s/%s.key -out %s -days 2 -subj '/CN=%s' %s%s%s >/dev/null 2>&1",
		 dir, name, path, cn, san ? "-addext 'subjectAltName=" : "", san ? san : "",
		 san ? "'" : "");
	assert_int_equal(system(cmd), 0);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	return x;
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[256];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_dns_id(void **state)
{
	(void)state;
	X509 *x = make("dns", "ignored.test", "DNS:partner.test,DNS:*.chat.test");
	assert_int_equal(certid_xmpp_server(x, "partner.test"), CERTID_DNS);
	assert_int_equal(certid_xmpp_server(x, "PARTNER.test"), CERTID_DNS);
	assert_int_equal(certid_xmpp_server(x, "muc.chat.test"), CERTID_DNS);
	assert_int_equal(certid_xmpp_server(x, "chat.test"), CERTID_NONE); /* wildcard: one label */
	assert_int_equal(certid_xmpp_server(x, "a.b.chat.test"), CERTID_NONE);
	assert_int_equal(certid_xmpp_server(x, "other.test"), CERTID_NONE);
	assert_int_equal(certid_xmpp_server(x, "ignored.test"), CERTID_NONE); /* never the CN */
	char d[200];
	certid_describe(x, d, sizeof d);
	assert_string_equal(d, "DNS:partner.test, DNS:*.chat.test");
	X509_free(x);
}

static void test_cn_only_never_matches(void **state)
{
	(void)state;
	X509 *x = make("cn", "partner.test", NULL);
	assert_int_equal(certid_xmpp_server(x, "partner.test"), CERTID_NONE);
	char d[200];
	certid_describe(x, d, sizeof d);
	assert_string_equal(d, "no subjectAltName");
	X509_free(x);
}

static void test_xmppaddr(void **state)
{
	(void)state;
	X509 *x = make("xmpp", "x", "otherName:1.3.6.1.5.5.7.8.5;UTF8:partner.test");
	assert_int_equal(certid_xmpp_server(x, "partner.test"), CERTID_XMPPADDR);
	assert_int_equal(certid_xmpp_server(x, "other.test"), CERTID_NONE);
	char d[200];
	certid_describe(x, d, sizeof d);
	assert_string_equal(d, "XMPP:partner.test");
	X509_free(x);
}

static void test_srv_id(void **state)
{
	(void)state;
	X509 *x = make("srv", "x",
		       "otherName:1.3.6.1.5.5.7.8.7;IA5STRING:_xmpp-server.partner.test,"
		       "otherName:1.3.6.1.5.5.7.8.7;IA5STRING:_xmpps-server.tls.test,"
		       "otherName:1.3.6.1.5.5.7.8.7;IA5STRING:_sip._udp.sip.test");
	assert_int_equal(certid_xmpp_server(x, "partner.test"), CERTID_SRV);
	assert_int_equal(certid_xmpp_server(x, "tls.test"), CERTID_SRV);
	assert_int_equal(certid_xmpp_server(x, "sip.test"), CERTID_NONE); /* not an XMPP service */
	assert_int_equal(certid_xmpp_server(x, "_xmpp-server.partner.test"), CERTID_NONE);
	X509_free(x);
}

static void test_null_and_empty(void **state)
{
	(void)state;
	assert_int_equal(certid_xmpp_server(NULL, "partner.test"), CERTID_NONE);
	X509 *x = make("dns2", "x", "DNS:partner.test");
	assert_int_equal(certid_xmpp_server(x, ""), CERTID_NONE);
	assert_int_equal(certid_xmpp_server(x, NULL), CERTID_NONE);
	char d[8];
	certid_describe(x, d, sizeof d); /* truncated, never overflowing */
	assert_true(strlen(d) < sizeof d);
	X509_free(x);
	certid_describe(NULL, d, sizeof d);
	assert_true(strlen(d) < sizeof d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dns_id),
		cmocka_unit_test(test_cn_only_never_matches),
		cmocka_unit_test(test_xmppaddr),
		cmocka_unit_test(test_srv_id),
		cmocka_unit_test(test_null_and_empty),
	};
	return cmocka_run_group_tests_name("certid", tests, setup, teardown);
}
