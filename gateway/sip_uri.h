/* SIP URIs as views: a pure parser that splits an addr-spec without copying it. */
#ifndef PARLEY_SIP_URI_H
#define PARLEY_SIP_URI_H

#include <stdbool.h>
#include <stddef.h>

/* A view {p, n} into a caller-owned string; n == 0 means empty or absent. */
struct sip_view {
	const char *p;
	size_t n;
};

/* The parts of "scheme:[user[:password]@]host[:port][;params][?headers]". Every view
 * points into the parsed input. For a scheme other than sip/sips only scheme and
 * opaque are set. */
struct sip_uri {
	struct sip_view scheme;	 /* "sip", "sips", "tel" …, as written */
	struct sip_view user;	 /* still percent-encoded */
	struct sip_view host;	 /* an IPv6 reference without its brackets */
	struct sip_view params;	 /* after the first ';', up to '?' or the end */
	struct sip_view headers; /* after '?' */
	struct sip_view opaque;	 /* everything after "scheme:" */
	int port;		 /* 0 = absent */
	bool sip;		 /* scheme is sip or sips (case-insensitive) */
	bool sips;		 /* scheme is sips */
	bool ipv6;		 /* host was a bracketed IPv6 reference */
};

/* Parses s[0..len) (an addr-spec, not a name-addr; a leading '<' and trailing '>' are
 * tolerated and skipped). Returns 0 or PE_PROTO for a malformed URI (empty host, bad
 * port, control characters). */
int sip_uri_parse(const char *s, size_t len, struct sip_uri *u);

/* Looks up a URI parameter by name (case-insensitive). Returns true if present and
 * stores its value (empty for a flag such as ";lr") in *val. */
bool sip_uri_param(const struct sip_uri *u, const char *name, struct sip_view *val);

/* Case-insensitive comparison of a view with a NUL-terminated string. */
bool sip_view_eq(struct sip_view v, const char *s);

/* Copies a view into dst (NUL-terminated, truncated to cap-1). Returns dst. */
char *sip_view_cpy(char *dst, size_t cap, struct sip_view v);

#endif
