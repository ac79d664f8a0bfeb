/* Server identity in certificates for XMPP (RFC 6125 / RFC 9525, RFC 6120 §13.7.1.2,
 * RFC 7673 SRV-ID): DNS-ID, SRV-ID for _xmpp-server / _xmpps-server, XmppAddr. Never the CN. */
#ifndef PARLEY_CERTID_H
#define PARLEY_CERTID_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/x509.h>

enum certid_kind {
	CERTID_NONE = 0,
	CERTID_DNS,      /* subjectAltName dNSName, wildcard only as the whole left label */
	CERTID_SRV,      /* otherName id-on-dnsSRV "_xmpp-server.domain" / "_xmpps-server.domain" */
	CERTID_XMPPADDR, /* otherName id-on-xmppAddr equal to the domain */
};

/* Which identity in cert, if any, names the XMPP server domain (an A-label, ASCII). */
enum certid_kind certid_xmpp_server(X509 *cert, const char *domain);
const char *certid_kind_name(enum certid_kind k);

/* Writes the certificate's identities ("DNS:a, SRV:_xmpp-server.b, XMPP:c") into out for
 * logs, sanitised to printable ASCII and truncated to cap. */
void certid_describe(X509 *cert, char *out, size_t cap);

#endif
