/* Identity checks for S2S certificates. The CN is ignored on purpose: RFC 9525 drops it, and
 * a name there is not bound to a usage. */
#include "certid.h"

#include <openssl/objects.h>
#include <openssl/x509v3.h>
#include <string.h>
#include <strings.h>

#define OID_XMPPADDR "1.3.6.1.5.5.7.8.5"
#define OID_DNSSRV "1.3.6.1.5.5.7.8.7"

static bool oid_is(const ASN1_OBJECT *o, const char *dotted)
{
	char buf[64];
	if (OBJ_obj2txt(buf, sizeof buf, o, 1) <= 0)
		return false;
	return strcmp(buf, dotted) == 0;
}

/* The otherName value as a string, if it is one of the string types. */
static bool other_string(const OTHERNAME *on, const unsigned char **p, int *len)
{
	const ASN1_TYPE *v = on->value;
	if (!v)
		return false;
	switch (v->type) {
	case V_ASN1_UTF8STRING:
	case V_ASN1_IA5STRING:
		*p = ASN1_STRING_get0_data(v->value.asn1_string);
		*len = ASN1_STRING_length(v->value.asn1_string);
		return *p != NULL && *len >= 0;
	default:
		return false;
	}
}

static bool eq_nocase(const unsigned char *p, int len, const char *s)
{
	return (size_t)len == strlen(s) && strncasecmp((const char *)p, s, (size_t)len) == 0 &&
	       memchr(p, 0, (size_t)len) == NULL;
}

static bool srv_matches(const unsigned char *p, int len, const char *domain)
{
	static const char *const services[] = {"_xmpp-server.", "_xmpps-server."};
	for (size_t i = 0; i < 2; i++) {
		size_t sl = strlen(services[i]);
		if ((size_t)len > sl && strncasecmp((const char *)p, services[i], sl) == 0 &&
		    eq_nocase(p + sl, len - (int)sl, domain))
			return true;
	}
	return false;
}

enum certid_kind certid_xmpp_server(X509 *cert, const char *domain)
{
	if (!cert || !domain || !*domain)
		return CERTID_NONE;
	enum certid_kind found = CERTID_NONE;
	GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; names && i < sk_GENERAL_NAME_num(names) && !found; i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
		const unsigned char *p;
		int len;
		if (gn->type != GEN_OTHERNAME || !other_string(gn->d.otherName, &p, &len))
			continue;
		if (oid_is(gn->d.otherName->type_id, OID_XMPPADDR) && eq_nocase(p, len, domain))
			found = CERTID_XMPPADDR;
		else if (oid_is(gn->d.otherName->type_id, OID_DNSSRV) && srv_matches(p, len, domain))
			found = CERTID_SRV;
	}
	GENERAL_NAMES_free(names);
	if (found)
		return found;
	/* dNSName, left-most whole-label wildcard only, never the subject CN */
	if (X509_check_host(cert, domain, strlen(domain),
			    X509_CHECK_FLAG_NEVER_CHECK_SUBJECT | X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS,
			    NULL) == 1)
		return CERTID_DNS;
	return CERTID_NONE;
}

const char *certid_kind_name(enum certid_kind k)
{
	switch (k) {
	case CERTID_DNS:
		return "DNS-ID";
	case CERTID_SRV:
		return "SRV-ID";
	case CERTID_XMPPADDR:
		return "XmppAddr";
	default:
		return "none";
	}
}

static void append_clean(char *out, size_t cap, size_t *o, const char *s, size_t n)
{
	for (size_t i = 0; i < n && *o + 4 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		out[(*o)++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	out[*o] = 0;
}

void certid_describe(X509 *cert, char *out, size_t cap)
{
	size_t o = 0;
	if (!cap)
		return;
	out[0] = 0;
	if (!cert) {
		append_clean(out, cap, &o, "no certificate", 14);
		return;
	}
	GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
		const unsigned char *p = NULL;
		int len = 0;
		const char *tag = NULL;
		if (gn->type == GEN_DNS) {
			p = ASN1_STRING_get0_data(gn->d.dNSName);
			len = ASN1_STRING_length(gn->d.dNSName);
			tag = "DNS:";
		} else if (gn->type == GEN_OTHERNAME && other_string(gn->d.otherName, &p, &len)) {
			tag = oid_is(gn->d.otherName->type_id, OID_XMPPADDR) ? "XMPP:"
			      : oid_is(gn->d.otherName->type_id, OID_DNSSRV) ? "SRV:"
									      : "other:";
		}
		if (!tag)
			continue;
		if (o)
			append_clean(out, cap, &o, ", ", 2);
		append_clean(out, cap, &o, tag, strlen(tag));
		append_clean(out, cap, &o, (const char *)p, (size_t)len);
	}
	GENERAL_NAMES_free(names);
	if (!o)
		append_clean(out, cap, &o, "no subjectAltName", 17);
}
