/* The edge validates and routes; it does not interpret. It only pulls out the fields the
 * gateway maps (RFC 7572, RFC 8048, RFC 7247 errors) and keeps the rest verbatim. */
#include "stanza.h"

#include "err.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

void stanza_scratch_init(struct stanza_scratch *s)
{
	memset(s, 0, sizeof *s);
	buf_init(&s->extra, 0);
}

void stanza_scratch_deinit(struct stanza_scratch *s)
{
	buf_deinit(&s->extra);
	free(s->offs);
	free(s->bins);
}

static int keep_extra(struct stanza_scratch *s, const struct xs_elem *child, size_t *n)
{
	if (*n + 2 > s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		size_t *o = realloc(s->offs, cap * sizeof *o);
		ProtobufCBinaryData *b = realloc(s->bins, cap * sizeof *b);
		if (!o || !b)
			abort();
		s->offs = o;
		s->bins = b;
		s->cap = cap;
	}
	s->offs[*n] = buf_len(&s->extra);
	int r = xs_serialize(child, &s->extra);
	if (r)
		return r;
	(*n)++;
	s->offs[*n] = buf_len(&s->extra);
	return 0;
}

/* The first element of a kind whose xml:lang matches the stanza's (or has none) is the
 * one mapped; any other (a body in another language, say) travels as an extra child. */
static bool lang_fits(const struct xs_elem *child, const char *lang)
{
	const char *l = xs_elem_attr(child, XS_NS_XML, "lang");
	return !l || !lang || strcasecmp(l, lang) == 0;
}

static void parse_error(const struct xs_elem *e, struct stanza_scratch *s,
			Parley__Link__Stanza *out)
{
	Parley__Link__StanzaError *err = &s->err;
	parley__link__stanza_error__init(err);
	err->type = (char *)xs_elem_attr(e, NULL, "type");
	err->by = (char *)xs_elem_attr(e, NULL, "by");
	for (const struct xs_elem *c = xs_elem_first(e); c; c = xs_elem_next(c)) {
		if (strcmp(c->ns.p, NS_STANZAS) == 0) {
			if (strcmp(c->name.p, "text") == 0) {
				err->text = (char *)xs_elem_text(c, NULL);
				err->text_lang = (char *)xs_elem_attr(c, XS_NS_XML, "lang");
			} else if (!err->condition) {
				err->condition = (char *)c->name.p;
			}
		}
	}
	out->error = err;
}

int stanza_to_link(const struct xs_elem *el, const char *lang, struct stanza_scratch *s,
		   Parley__Link__Stanza *out)
{
	parley__link__stanza__init(out);
	if (strcmp(el->ns.p, XS_NS_SERVER) != 0)
		return PE_PROTO;
	if (strcmp(el->name.p, "message") == 0)
		out->kind = PARLEY__LINK__STANZA_KIND__KIND_MESSAGE;
	else if (strcmp(el->name.p, "presence") == 0)
		out->kind = PARLEY__LINK__STANZA_KIND__KIND_PRESENCE;
	else if (strcmp(el->name.p, "iq") == 0)
		out->kind = PARLEY__LINK__STANZA_KIND__KIND_IQ;
	else
		return PE_PROTO;
	out->type = (char *)xs_elem_attr(el, NULL, "type");
	out->from = (char *)xs_elem_attr(el, NULL, "from");
	out->to = (char *)xs_elem_attr(el, NULL, "to");
	out->id = (char *)xs_elem_attr(el, NULL, "id");
	const char *own = xs_elem_attr(el, XS_NS_XML, "lang");
	out->lang = (char *)(own ? own : lang);

	buf_consume(&s->extra, buf_len(&s->extra));
	size_t nextra = 0;
	bool is_error = out->type && strcmp(out->type, "error") == 0;
	for (const struct xs_elem *c = xs_elem_first(el); c; c = xs_elem_next(c)) {
		bool mapped = false;
		if (strcmp(c->ns.p, XS_NS_SERVER) == 0) {
			const char *n = c->name.p;
			if (out->kind == PARLEY__LINK__STANZA_KIND__KIND_MESSAGE) {
				if (!out->body && strcmp(n, "body") == 0 && lang_fits(c, out->lang)) {
					out->body = (char *)xs_elem_text(c, NULL);
					mapped = true;
				} else if (!out->subject && strcmp(n, "subject") == 0 &&
					   lang_fits(c, out->lang)) {
					out->subject = (char *)xs_elem_text(c, NULL);
					mapped = true;
				} else if (!out->thread && strcmp(n, "thread") == 0) {
					out->thread = (char *)xs_elem_text(c, NULL);
					out->thread_parent = (char *)xs_elem_attr(c, NULL, "parent");
					mapped = true;
				}
			} else if (out->kind == PARLEY__LINK__STANZA_KIND__KIND_PRESENCE) {
				if (!out->show && strcmp(n, "show") == 0) {
					out->show = (char *)xs_elem_text(c, NULL);
					mapped = true;
				} else if (!out->status && strcmp(n, "status") == 0 &&
					   lang_fits(c, out->lang)) {
					out->status = (char *)xs_elem_text(c, NULL);
					mapped = true;
				} else if (!out->has_priority && strcmp(n, "priority") == 0) {
					char *end;
					long v = strtol(xs_elem_text(c, NULL), &end, 10);
					if (*end == 0 && v >= -128 && v <= 127) {
						out->has_priority = 1;
						out->priority = (int32_t)v;
						mapped = true;
					}
				}
			}
			if (!mapped && is_error && !out->error && strcmp(n, "error") == 0) {
				parse_error(c, s, out);
				mapped = true;
			}
		}
		if (!mapped && keep_extra(s, c, &nextra))
			return PE_TOOBIG;
	}
	for (size_t i = 0; i < nextra; i++) {
		s->bins[i].data = buf_head(&s->extra) + s->offs[i];
		s->bins[i].len = s->offs[i + 1] - s->offs[i];
	}
	out->n_extra = nextra;
	out->extra = nextra ? s->bins : NULL;
	return 0;
}

const char *jid_domain(const char *jid, size_t *len)
{
	const char *slash = strchr(jid, '/');
	size_t n = slash ? (size_t)(slash - jid) : strlen(jid);
	const char *at = memchr(jid, '@', n);
	const char *d = at ? at + 1 : jid;
	*len = n - (size_t)(d - jid);
	return d;
}
