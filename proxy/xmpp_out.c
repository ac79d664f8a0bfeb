/* The serialiser writes exactly what the link says and nothing it cannot vouch for: every
 * string goes through xs_escape (which also refuses bad UTF-8), and the preserved children,
 * the only bytes copied verbatim, are parsed once more before they reach a partner. */
#include "xmpp_out.h"

#include "err.h"
#include "stanza.h"
#include "xml_stream.h"

#include <expat.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* ---- the fragment check ---- */

struct frag {
	XML_Parser p;
	unsigned depth; /* the wrapper is depth 1 */
	unsigned max_depth;
	unsigned top; /* elements directly inside the wrapper */
	bool bad;
};

static void frag_fail(struct frag *f)
{
	f->bad = true;
	XML_StopParser(f->p, XML_FALSE);
}

static void XMLCALL frag_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
	struct frag *f = ud;
	(void)name;
	(void)atts;
	f->depth++;
	if (f->depth == 2)
		f->top++;
	if (f->top > 1 || f->depth > f->max_depth + 1)
		frag_fail(f);
}

static void XMLCALL frag_end(void *ud, const XML_Char *name)
{
	struct frag *f = ud;
	(void)name;
	f->depth--;
}

static void XMLCALL frag_text(void *ud, const XML_Char *s, int len)
{
	struct frag *f = ud;
	if (f->depth != 1)
		return;
	for (int i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
			frag_fail(f);
}

static void XMLCALL frag_comment(void *ud, const XML_Char *s)
{
	(void)s;
	frag_fail(ud);
}

static void XMLCALL frag_pi(void *ud, const XML_Char *target, const XML_Char *data)
{
	(void)target;
	(void)data;
	frag_fail(ud);
}

static void XMLCALL frag_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
				 const XML_Char *pubid, int has_internal)
{
	(void)name;
	(void)sysid;
	(void)pubid;
	(void)has_internal;
	frag_fail(ud);
}

static void XMLCALL frag_skipped(void *ud, const XML_Char *name, int is_pe)
{
	(void)name;
	(void)is_pe;
	frag_fail(ud);
}

int xmpp_out_check_fragment(const char *p, size_t n, unsigned max_depth)
{
	struct frag f = {.max_depth = max_depth};
	if (n > (size_t)1 << 30)
		return PE_INVAL;
	/* Namespace processing makes an undeclared prefix an error: the fragment must carry
	 * every declaration it uses, because it is inserted where we cannot know what is in
	 * scope. The wrapper declares nothing. */
	f.p = XML_ParserCreateNS("UTF-8", ' ');
	if (!f.p)
		return PE_NOMEM;
	XML_SetUserData(f.p, &f);
	XML_SetElementHandler(f.p, frag_start, frag_end);
	XML_SetCharacterDataHandler(f.p, frag_text);
	XML_SetCommentHandler(f.p, frag_comment);
	XML_SetProcessingInstructionHandler(f.p, frag_pi);
	XML_SetStartDoctypeDeclHandler(f.p, frag_doctype);
	XML_SetSkippedEntityHandler(f.p, frag_skipped);
	bool ok = XML_Parse(f.p, "<w>", 3, XML_FALSE) == XML_STATUS_OK && !f.bad &&
		  XML_Parse(f.p, p, (int)n, XML_FALSE) == XML_STATUS_OK && !f.bad &&
		  XML_Parse(f.p, "</w>", 4, XML_TRUE) == XML_STATUS_OK && !f.bad && f.top == 1;
	XML_ParserFree(f.p);
	return ok ? 0 : PE_INVAL;
}

int xmpp_out_plain_name(const char *s)
{
	size_t n = 0;
	if (!s)
		return 0;
	for (; s[n]; n++) {
		char c = s[n];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') || n >= 64)
			return 0;
	}
	return n > 0 && s[0] != '-';
}

/* ---- writing ---- */

static int put(struct buf *out, const char *s)
{
	return buf_append(out, s, strlen(s));
}

static int attr(struct buf *out, const char *name, const char *v)
{
	int r;
	if (!v)
		return 0;
	if ((r = put(out, " ")) || (r = put(out, name)) || (r = put(out, "='")) ||
	    (r = xs_escape(out, v, strlen(v), true)))
		return r;
	return put(out, "'");
}

/* <name [xml:lang]>text</name>, skipped when text is NULL. */
static int child(struct buf *out, const char *name, const char *text, const char *lang)
{
	int r;
	if (!text)
		return 0;
	if ((r = put(out, "<")) || (r = put(out, name)) || (r = attr(out, "xml:lang", lang)) ||
	    (r = put(out, ">")) || (r = xs_escape(out, text, strlen(text), false)) ||
	    (r = put(out, "</")) || (r = put(out, name)))
		return r;
	return put(out, ">");
}

static int verbatim(struct buf *out, const void *p, size_t n)
{
	int r = xmpp_out_check_fragment(p, n, XMPP_OUT_MAX_DEPTH);
	return r ? r : buf_append(out, p, n);
}

static int error_elem(struct buf *out, const Parley__Link__StanzaError *e)
{
	static const char *const types[] = {"auth", "cancel", "continue", "modify", "wait"};
	const char *type = e->type ? e->type : "cancel";
	const char *cond = e->condition ? e->condition : "undefined-condition";
	bool type_ok = false;
	int r;
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
		type_ok |= strcmp(type, types[i]) == 0;
	if (!type_ok || !xmpp_out_plain_name(cond))
		return PE_INVAL;
	if ((r = put(out, "<error")) || (r = attr(out, "type", type)) ||
	    (r = attr(out, "by", e->by)) || (r = put(out, "><")) || (r = put(out, cond)) ||
	    (r = put(out, " xmlns='" NS_STANZAS "'/>")))
		return r;
	if (e->text) {
		if ((r = put(out, "<text xmlns='" NS_STANZAS "'")) ||
		    (r = attr(out, "xml:lang", e->text_lang)) || (r = put(out, ">")) ||
		    (r = xs_escape(out, e->text, strlen(e->text), false)) ||
		    (r = put(out, "</text>")))
			return r;
	}
	if (e->app_condition && *e->app_condition &&
	    (r = verbatim(out, e->app_condition, strlen(e->app_condition))))
		return r;
	return put(out, "</error>");
}

static int write_stanza(struct buf *out, const Parley__Link__Stanza *st)
{
	const char *name;
	int r;
	switch (st->kind) {
	case PARLEY__LINK__STANZA_KIND__KIND_MESSAGE:
		name = "message";
		break;
	case PARLEY__LINK__STANZA_KIND__KIND_PRESENCE:
		name = "presence";
		break;
	case PARLEY__LINK__STANZA_KIND__KIND_IQ:
		name = "iq";
		break;
	default:
		return PE_INVAL;
	}
	if ((r = put(out, "<")) || (r = put(out, name)) || (r = attr(out, "from", st->from)) ||
	    (r = attr(out, "to", st->to)) || (r = attr(out, "id", st->id)) ||
	    (r = attr(out, "type", st->type)) || (r = attr(out, "xml:lang", st->lang)) ||
	    (r = put(out, ">")))
		return r;
	if (st->kind == PARLEY__LINK__STANZA_KIND__KIND_MESSAGE) {
		if ((r = child(out, "subject", st->subject, NULL)) ||
		    (r = child(out, "body", st->body, NULL)))
			return r;
		if (st->thread) {
			if ((r = put(out, "<thread")) ||
			    (r = attr(out, "parent", st->thread_parent)) || (r = put(out, ">")) ||
			    (r = xs_escape(out, st->thread, strlen(st->thread), false)) ||
			    (r = put(out, "</thread>")))
				return r;
		}
	} else if (st->kind == PARLEY__LINK__STANZA_KIND__KIND_PRESENCE) {
		if ((r = child(out, "show", st->show, NULL)) ||
		    (r = child(out, "status", st->status, NULL)))
			return r;
		if (st->has_priority) {
			char prio[16];
			if (st->priority < -128 || st->priority > 127)
				return PE_INVAL;
			snprintf(prio, sizeof prio, "%d", (int)st->priority);
			if ((r = child(out, "priority", prio, NULL)))
				return r;
		}
	}
	if (st->error && (r = error_elem(out, st->error)))
		return r;
	for (size_t i = 0; i < st->n_extra; i++)
		if ((r = verbatim(out, st->extra[i].data, st->extra[i].len)))
			return r;
	if ((r = put(out, "</")) || (r = put(out, name)))
		return r;
	return put(out, ">");
}

int xmpp_out_stanza(struct buf *out, const Parley__Link__Stanza *st)
{
	size_t mark = out->len;
	int r = write_stanza(out, st);
	if (r)
		out->len = mark;
	return r;
}
