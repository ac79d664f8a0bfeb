/* Dialog state. Only what SUBSCRIBE/NOTIFY needs: no INVITE session, no re-INVITE
 * glare; the route set and target refresh rules are RFC 3261 §12.1 and §12.2. */
#include "sip_dialog.h"

#include "err.h"
#include "sip_uri.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

void sip_dialog_deinit(struct sip_dialog *d)
{
	free(d->call_id);
	free(d->local_tag);
	free(d->remote_tag);
	free(d->local_uri);
	free(d->remote_uri);
	free(d->remote_target);
	free(d->contact_text);
	for (int i = 0; i < d->nroute; i++)
		free(d->route[i]);
	memset(d, 0, sizeof *d);
}

static int copy_routes(struct sip_dialog *d, struct sip_msg *m, bool reverse)
{
	int n = sip_msg_record_route_count(m);
	if (n > SIP_DIALOG_MAX_ROUTES)
		return PE_PROTO;
	for (int i = 0; i < n; i++) {
		const char *rr = sip_msg_record_route(m, reverse ? n - 1 - i : i);
		if (!rr || !(d->route[i] = strdup(rr)))
			return rr ? PE_NOMEM : PE_PROTO;
		d->nroute = i + 1;
	}
	return 0;
}

static bool is_secure(struct sip_msg *req)
{
	const char *ruri = sip_msg_ruri(req);
	return ruri && strncasecmp(ruri, "sips:", 5) == 0;
}

int sip_dialog_init_uac(struct sip_dialog *d, struct sip_msg *req, struct sip_msg *est)
{
	const char *contact = sip_msg_contact_uri(est);
	bool est_is_req = sip_msg_is_request(est);
	/* a NOTIFY's From tag is their tag; a response's To tag is */
	const char *rtag = est_is_req ? sip_msg_from_tag(est) : sip_msg_to_tag(est);
	int r;

	memset(d, 0, sizeof *d);
	if (!contact || !rtag || !sip_msg_from_tag(req) || !sip_msg_call_id(req))
		return PE_PROTO;
	d->call_id = dup_or_null(sip_msg_call_id(req));
	d->local_tag = dup_or_null(sip_msg_from_tag(req));
	d->remote_tag = dup_or_null(rtag);
	d->local_uri = dup_or_null(sip_msg_from_uri(req));
	d->remote_uri = dup_or_null(sip_msg_to_uri(req));
	d->remote_target = dup_or_null(contact);
	d->local_cseq = sip_msg_cseq(req, NULL);
	d->secure = is_secure(req);
	if (!d->call_id || !d->local_tag || !d->remote_tag || !d->local_uri || !d->remote_uri ||
	    !d->remote_target) {
		sip_dialog_deinit(d);
		return PE_NOMEM;
	}
	if (est_is_req)
		d->remote_cseq = sip_msg_cseq(est, NULL);
	r = copy_routes(d, est, !est_is_req);
	if (r)
		sip_dialog_deinit(d);
	return r;
}

int sip_dialog_establish_uac(struct sip_dialog *d, struct sip_msg *est)
{
	if (d->remote_target)
		return 0;
	bool est_is_req = sip_msg_is_request(est);
	const char *contact = sip_msg_contact_uri(est);
	const char *rtag = est_is_req ? sip_msg_from_tag(est) : sip_msg_to_tag(est);
	if (!contact || !rtag)
		return PE_PROTO;
	if (!d->remote_tag && !(d->remote_tag = strdup(rtag)))
		return PE_NOMEM;
	if (!(d->remote_target = strdup(contact)))
		return PE_NOMEM;
	if (est_is_req)
		d->remote_cseq = sip_msg_cseq(est, NULL);
	return copy_routes(d, est, !est_is_req);
}

int sip_dialog_init_uas(struct sip_dialog *d, struct sip_msg *req, const char *local_tag,
			uint32_t cseq_start)
{
	const char *contact = sip_msg_contact_uri(req);
	int r;
	memset(d, 0, sizeof *d);
	if (!contact || !local_tag || !sip_msg_from_tag(req) || !sip_msg_call_id(req))
		return PE_PROTO;
	d->call_id = dup_or_null(sip_msg_call_id(req));
	d->local_tag = dup_or_null(local_tag);
	d->remote_tag = dup_or_null(sip_msg_from_tag(req));
	d->local_uri = dup_or_null(sip_msg_to_uri(req));
	d->remote_uri = dup_or_null(sip_msg_from_uri(req));
	d->remote_target = dup_or_null(contact);
	d->remote_cseq = sip_msg_cseq(req, NULL);
	d->local_cseq = cseq_start;
	d->secure = is_secure(req);
	if (!d->call_id || !d->local_tag || !d->remote_tag || !d->local_uri || !d->remote_uri ||
	    !d->remote_target) {
		sip_dialog_deinit(d);
		return PE_NOMEM;
	}
	r = copy_routes(d, req, false);
	if (r)
		sip_dialog_deinit(d);
	return r;
}

static int make_key(const char *call_id, const char *tag, char *out, size_t cap)
{
	if (!call_id || !tag)
		return PE_NOTFOUND;
	/* once per in-dialog request: copies, not snprintf */
	size_t cl = strlen(call_id), tl = strlen(tag), n = cl + 1 + tl;
	if (n >= cap || n > INT_MAX)
		return PE_TOOBIG;
	memcpy(out, call_id, cl);
	out[cl] = '\n';
	memcpy(out + cl + 1, tag, tl + 1);
	return (int)n;
}

int sip_dialog_key(const struct sip_dialog *d, char *out, size_t cap)
{
	return make_key(d->call_id, d->local_tag, out, cap);
}

int sip_dialog_key_of_request(struct sip_msg *req, char *out, size_t cap)
{
	return make_key(sip_msg_call_id(req), sip_msg_to_tag(req), out, cap);
}

int sip_dialog_key_of_response(struct sip_msg *resp, char *out, size_t cap)
{
	return make_key(sip_msg_call_id(resp), sip_msg_from_tag(resp), out, cap);
}

bool sip_dialog_matches(const struct sip_dialog *d, struct sip_msg *req)
{
	const char *cid = sip_msg_call_id(req), *tt = sip_msg_to_tag(req),
		   *ft = sip_msg_from_tag(req);
	if (!cid || !tt || strcmp(cid, d->call_id) != 0 || strcmp(tt, d->local_tag) != 0)
		return false;
	if (d->remote_tag)
		return ft && strcmp(ft, d->remote_tag) == 0;
	return true;
}

static void forget_contact_text(struct sip_dialog *d)
{
	free(d->contact_text);
	d->contact_text = NULL;
	d->contact_text_len = 0;
	d->contact_uri = NULL;
}

/* Every in-dialog request carries a Contact, nearly always the one before: the same
 * header text gives the same URI, so only a changed text costs osip's URI serialisation
 * (several sprintfs and allocations per request). The URI is kept next to the text, so
 * the result does not depend on who else changed remote_target meanwhile. */
static int refresh_target(struct sip_dialog *d, struct sip_msg *m)
{
	const char *text = NULL, *contact;
	size_t tlen = 0;
	bool have_text = sip_msg_contact_text(m, &text, &tlen) == 0;
	bool known = have_text && d->contact_text && tlen == d->contact_text_len &&
		     memcmp(text, d->contact_text, tlen) == 0;
	contact = known ? d->contact_uri : sip_msg_contact_uri(m);
	if (contact && (!d->remote_target || strcmp(contact, d->remote_target) != 0)) {
		char *c = strdup(contact);
		if (!c)
			return PE_NOMEM;
		free(d->remote_target);
		d->remote_target = c;
	}
	if (known)
		return 0;
	forget_contact_text(d);
	if (contact && have_text) {
		size_t ul = strlen(contact);
		char *blk = malloc(tlen + ul + 1);
		if (blk) { /* without it, the next refresh asks osip again */
			memcpy(blk, text, tlen);
			memcpy(blk + tlen, contact, ul + 1);
			d->contact_text = blk;
			d->contact_text_len = tlen;
			d->contact_uri = blk + tlen;
		}
	}
	return 0;
}

int sip_dialog_on_request(struct sip_dialog *d, struct sip_msg *req)
{
	uint32_t cseq = sip_msg_cseq(req, NULL);
	if (d->remote_cseq && cseq <= d->remote_cseq)
		return PE_STATE;
	d->remote_cseq = cseq;
	if (!d->remote_tag && sip_msg_from_tag(req)) {
		d->remote_tag = strdup(sip_msg_from_tag(req));
		if (!d->remote_tag)
			return PE_NOMEM;
	}
	return refresh_target(d, req);
}

int sip_dialog_on_response(struct sip_dialog *d, struct sip_msg *resp)
{
	int st = sip_msg_status(resp);
	if (st < 200 || st >= 300)
		return 0;
	if (!d->remote_tag && sip_msg_to_tag(resp)) {
		d->remote_tag = strdup(sip_msg_to_tag(resp));
		if (!d->remote_tag)
			return PE_NOMEM;
	}
	return refresh_target(d, resp);
}

/* The URI inside a route value "<sip:x;lr>;param" (or a bare one). */
static int route_uri(const char *route, char *out, size_t cap)
{
	const char *s = strchr(route, '<'), *e;
	size_t n;
	if (s) {
		s++;
		e = strchr(s, '>');
		if (!e)
			return PE_PROTO;
	} else {
		s = route;
		e = s + strcspn(s, ";, \t");
	}
	n = (size_t)(e - s);
	if (n == 0)
		return PE_PROTO;
	if (n >= cap)
		return PE_TOOBIG;
	memcpy(out, s, n);
	out[n] = '\0';
	return 0;
}

static bool loose_router(const char *route)
{
	char uri[1024];
	struct sip_uri u;
	if (route_uri(route, uri, sizeof uri) != 0 || sip_uri_parse(uri, strlen(uri), &u) != 0)
		return true; /* cannot tell: treat as loose, the common case */
	return sip_uri_param(&u, "lr", NULL);
}

int sip_dialog_next_hop(const struct sip_dialog *d, char *out, size_t cap)
{
	if (d->nroute)
		return route_uri(d->route[0], out, cap);
	if (strlen(d->remote_target) >= cap)
		return PE_TOOBIG;
	memcpy(out, d->remote_target, strlen(d->remote_target) + 1);
	return 0;
}

struct sip_msg *sip_dialog_new_request(struct sip_dialog *d, const char *method)
{
	struct sip_msg *m;
	char first[1024];
	int start = 0;

	if (d->nroute && !loose_router(d->route[0])) {
		/* strict router: it becomes the Request-URI (RFC 3261 §12.2.1.1) */
		if (route_uri(d->route[0], first, sizeof first) != 0)
			return NULL;
		m = sip_msg_new_request(method, first);
		start = 1;
	} else {
		m = sip_msg_new_request(method, d->remote_target);
	}
	if (!m)
		return NULL;
	if (sip_msg_set_from(m, d->local_uri, d->local_tag) != 0 ||
	    sip_msg_set_to(m, d->remote_uri, d->remote_tag) != 0 ||
	    sip_msg_set_call_id(m, d->call_id) != 0 ||
	    sip_msg_set_cseq(m, d->local_cseq + 1, method) != 0)
		goto fail;
	for (int i = start; i < d->nroute; i++)
		if (sip_msg_add_route(m, d->route[i]) != 0)
			goto fail;
	if (start) {
		char tmp[1100];
		snprintf(tmp, sizeof tmp, "<%s>", d->remote_target);
		if (sip_msg_add_route(m, tmp) != 0)
			goto fail;
	}
	d->local_cseq++;
	return m;
fail:
	sip_msg_free(m);
	return NULL;
}
