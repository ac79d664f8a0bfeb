/* PIDF/RPID presence codec (RFC 3863, RFC 4480) for MAPPING.md E2-E6, and the E9 ranges. */
#include "pidf.h"

#include "err.h"
#include "jid.h"
#include "xml_stream.h"

#include <expat.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/*
 * Why things are the way they are:
 *
 * - A PIDF body comes from a SIP peer, so it gets the restricted expat of the XMPP
 *   streams: no DOCTYPE (hence no entity declarations or expansion), no comments or PIs,
 *   a random hash salt, and every counter bounded. A body is small and complete (a NOTIFY
 *   or PUBLISH body), so it is parsed in one XML_Parse call after its length is checked.
 * - Anything we do not understand is ignored, not refused: PIDF is an extension format
 *   (##other everywhere), and real servers (Kamailio's presence_xml aggregating several
 *   PUBLISHes) concatenate tuples and <dm:person> elements from different clients.
 * - RPID puts <activities> in <dm:person>, which describes the person, not one device;
 *   XMPP has a show per resource. We write the embedded <show xmlns='jabber:client'>
 *   per tuple for an exact round trip and one person carrying the activity of the
 *   resource XMPP would pick (highest priority) for SIP watchers. On the way back a
 *   person's activities only fill in tuples when no tuple carries an embedded show: once
 *   one does, the document came from an XMPP mapping and its person is only that summary,
 *   so a resource without <show> stays plain available. This also makes parse -> write
 *   -> parse a fixed point, which the fuzzer asserts.
 * - Activities that say "do not disturb me now" (on the phone, in a meeting, presenting)
 *   become dnd, as Lync shows them as Busy (E9 maps Busy to dnd); long absences
 *   (vacation, sleeping) become xa; short ones away. The strongest wins so that the
 *   result does not depend on element order.
 * - A tuple without <basic> is taken as closed: nothing in it claims availability.
 * - Tuple ids are required and unique (RFC 3863 makes id an XML ID): a writer that reuses
 *   the ids it parsed must not produce a document with duplicate ids.
 * - Priority is carried as a qvalue with three decimals: 1/127 is larger than 0.001, so
 *   round(p / 127, 3) -> round(q * 127) gives every priority 0..127 back.
 */

#define PIDF_SEP '\x01' /* namespace separator: cannot occur in names or URIs */
#define PIDF_NS_XML "http://www.w3.org/XML/1998/namespace"
#define PIDF_SHORT_MAX 32 /* longest <basic> or <show> text looked at */

const struct pidf_limits pidf_limits_default = {
    .max_bytes = 64 * 1024,
    .max_tuples = 64,
    .max_note = 4096,
    .max_depth = 16,
};

/* ---- show names and E9 ---------------------------------------------------------- */

static const char *const show_names[] = {
    [PIDF_SHOW_NONE] = NULL, [PIDF_SHOW_CHAT] = "chat", [PIDF_SHOW_AWAY] = "away",
    [PIDF_SHOW_XA] = "xa",   [PIDF_SHOW_DND] = "dnd",
};
#define PIDF_NSHOW (sizeof show_names / sizeof show_names[0])

const char *pidf_show_name(enum pidf_show s)
{
	if ((unsigned)s >= PIDF_NSHOW)
		return NULL;
	return show_names[s];
}

int pidf_show_parse(const char *s, enum pidf_show *out)
{
	if (!s) {
		*out = PIDF_SHOW_NONE;
		return 0;
	}
	for (unsigned i = 1; i < PIDF_NSHOW; i++)
		if (strcmp(s, show_names[i]) == 0) {
			*out = (enum pidf_show)i;
			return 0;
		}
	return PE_PROTO;
}

bool pidf_avail_to_show(uint32_t availability, bool off_work, enum pidf_show *show)
{
	if (availability < 4500)
		*show = PIDF_SHOW_NONE;
	else if (availability < 6000)
		*show = PIDF_SHOW_AWAY; /* idle */
	else if (availability < 12000)
		*show = PIDF_SHOW_DND; /* busy, do not disturb */
	else if (availability < 15000)
		*show = PIDF_SHOW_AWAY; /* be right back */
	else if (availability < 18000)
		*show = off_work ? PIDF_SHOW_XA : PIDF_SHOW_AWAY;
	else {
		*show = PIDF_SHOW_NONE;
		return false;
	}
	return true;
}

uint32_t pidf_show_to_avail(bool available, enum pidf_show show, bool *off_work)
{
	if (off_work)
		*off_work = false;
	if (!available)
		return 18000;
	switch (show) {
	case PIDF_SHOW_AWAY:
		return 15500;
	case PIDF_SHOW_XA:
		if (off_work)
			*off_work = true;
		return 15500;
	case PIDF_SHOW_DND:
		return 6500;
	default:
		return 3500;
	}
}

/* ---- E6 tuple ids ---------------------------------------------------------------- */

static bool resource_ok(const char *s, size_t n)
{
	if (n == 0 || n > PIDF_RESOURCE_MAX || !jid_utf8_valid(s, n))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

int pidf_tuple_id_encode(const char *resource, char *out, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	if (!resource)
		return PE_INVAL;
	size_t n = strnlen(resource, PIDF_RESOURCE_MAX + 1);
	if (!resource_ok(resource, n))
		return PE_INVAL;
	if (cap < 3 + 2 * n + 1)
		return PE_TOOBIG;
	memcpy(out, "ID-", 3);
	for (size_t i = 0; i < n; i++) {
		out[3 + 2 * i] = hex[(unsigned char)resource[i] >> 4];
		out[4 + 2 * i] = hex[(unsigned char)resource[i] & 0xf];
	}
	out[3 + 2 * n] = '\0';
	return (int)(3 + 2 * n);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1; /* upper case too: one id per resource */
}

int pidf_tuple_id_decode(const char *id, char *out, size_t cap)
{
	if (!id || strncmp(id, "ID-", 3) != 0)
		return PE_PROTO;
	if (strcmp(id, PIDF_BARE_ID) == 0) {
		if (cap < 1)
			return PE_TOOBIG;
		out[0] = '\0';
		return 0;
	}
	const char *h = id + 3;
	size_t hn = strnlen(h, 2 * PIDF_RESOURCE_MAX + 1);
	if (hn == 0 || hn % 2 || hn > 2 * PIDF_RESOURCE_MAX)
		return PE_PROTO;
	size_t n = hn / 2;
	char tmp[PIDF_RESOURCE_MAX];
	for (size_t i = 0; i < n; i++) {
		int a = hexval(h[2 * i]), b = hexval(h[2 * i + 1]);
		if (a < 0 || b < 0)
			return PE_PROTO;
		tmp[i] = (char)(a << 4 | b);
	}
	if (!resource_ok(tmp, n))
		return PE_PROTO;
	if (cap < n + 1)
		return PE_TOOBIG;
	memcpy(out, tmp, n);
	out[n] = '\0';
	return (int)n;
}

/* ---- parsing --------------------------------------------------------------------- */

/* What an open element is, as far as we care. */
enum pk {
	PK_OTHER = 0,  /* ignored, or not needed once open */
	PK_PRESENCE,   /* the root */
	PK_TUPLE,      /* {pidf}tuple under the root */
	PK_STATUS,     /* {pidf}status under a tuple */
	PK_ACTIVITIES, /* {rpid}activities in a tuple or a person */
	PK_PERSON,     /* {dm}person under the root */
};

/* Text being collected, at most one at a time. */
enum pc {
	PC_NONE = 0,
	PC_BASIC,   /* tuple <status><basic> */
	PC_SHOW,    /* {jabber:client}show in a tuple */
	PC_TNOTE,   /* {pidf}note in a tuple */
	PC_PNOTE,   /* {dm}note in a person */
	PC_DOCNOTE, /* {pidf}note under the root */
};

/* Parse-time facts about one tuple, beside d->tuples. */
struct ptx {
	bool has_basic;
	bool has_show; /* a valid embedded show was seen */
	bool has_contact;
	enum pidf_show emb; /* the embedded show */
	enum pidf_show act; /* strongest RPID activity inside the tuple */
};

struct note {
	char *text, *lang;
};

static char lang_none[1]; /* an xml:lang="" (or unusable) marker on the lang stack */

struct pp {
	XML_Parser p;
	struct pidf_limits lim;
	struct pidf_doc *d;
	int err;
	char *errbuf;
	size_t errlen;

	size_t depth;
	unsigned char kind[PIDF_DEPTH_CAP + 1];
	char *lang[PIDF_DEPTH_CAP + 1]; /* own xml:lang per depth: NULL, lang_none or malloc'd */

	struct ptx *tx; /* [d->n], grown with d->tuples */
	size_t cap;
	bool in_tuple; /* inside d->tuples[d->n - 1] */
	bool in_person;

	enum pc collect;
	size_t collect_depth;
	char *text;
	size_t tn, tcap;
	bool overlong; /* a short value ran past PIDF_SHORT_MAX */

	struct note person_note, doc_note;
	enum pidf_show person_act;
	bool any_embedded;
};

static void pp_fail(struct pp *pp, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void pp_fail(struct pp *pp, int err, const char *fmt, ...)
{
	if (pp->err)
		return;
	pp->err = err;
	if (pp->errbuf && pp->errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(pp->errbuf, pp->errlen, fmt, ap);
		va_end(ap);
	}
	if (pp->p)
		XML_StopParser(pp->p, XML_FALSE);
}

static bool xml_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Splits an expat name "ns<SEP>local"; a name without namespace gets ns "". */
static void split(const char *name, const char **ns, size_t *nsn, const char **local)
{
	const char *s = strchr(name, PIDF_SEP);
	if (!s) {
		*ns = "";
		*nsn = 0;
		*local = name;
		return;
	}
	*ns = name;
	*nsn = (size_t)(s - name);
	*local = s + 1;
}

static bool ns_is(const char *ns, size_t nsn, const char *want)
{
	return strlen(want) == nsn && memcmp(ns, want, nsn) == 0;
}

static const char *attr(const XML_Char **atts, const char *name)
{
	for (size_t i = 0; atts[i]; i += 2)
		if (strcmp(atts[i], name) == 0)
			return atts[i + 1];
	return NULL;
}

static char *pp_strdup(struct pp *pp, const char *s, size_t n)
{
	char *c = malloc(n + 1);
	if (!c) {
		pp_fail(pp, PE_NOMEM, "out of memory");
		return NULL;
	}
	memcpy(c, s, n);
	c[n] = '\0';
	return c;
}

static bool lang_ok(const char *s)
{
	size_t n = strnlen(s, PIDF_LANG_MAX + 1);
	if (n == 0 || n > PIDF_LANG_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-'))
			return false;
	}
	return true;
}

/* The xml:lang in scope at depth, or NULL. */
static const char *lang_at(const struct pp *pp, size_t depth)
{
	for (size_t i = depth; i >= 1; i--)
		if (pp->lang[i])
			return pp->lang[i] == lang_none ? NULL : pp->lang[i];
	return NULL;
}

/* RPID activity -> show; NONE for activities we do not map. */
static enum pidf_show activity_show(const char *local)
{
	static const struct {
		const char *name;
		enum pidf_show show;
	} T[] = {
	    {"busy", PIDF_SHOW_DND},
	    {"on-the-phone", PIDF_SHOW_DND},
	    {"meeting", PIDF_SHOW_DND},
	    {"performance", PIDF_SHOW_DND},
	    {"presentation", PIDF_SHOW_DND},
	    {"vacation", PIDF_SHOW_XA},
	    {"holiday", PIDF_SHOW_XA},
	    {"sleeping", PIDF_SHOW_XA},
	    {"permanent-absence", PIDF_SHOW_XA},
	    {"away", PIDF_SHOW_AWAY},
	    {"appointment", PIDF_SHOW_AWAY},
	    {"meal", PIDF_SHOW_AWAY},
	    {"breakfast", PIDF_SHOW_AWAY},
	    {"dinner", PIDF_SHOW_AWAY},
	};
	for (size_t i = 0; i < sizeof T / sizeof T[0]; i++)
		if (strcmp(local, T[i].name) == 0)
			return T[i].show;
	return PIDF_SHOW_NONE;
}

/* Strength order for combining activities: DND > XA > AWAY > (CHAT) > NONE. */
static enum pidf_show stronger(enum pidf_show a, enum pidf_show b)
{
	static const int rank[] = {[PIDF_SHOW_NONE] = 0,
				   [PIDF_SHOW_CHAT] = 1,
				   [PIDF_SHOW_AWAY] = 2,
				   [PIDF_SHOW_XA] = 3,
				   [PIDF_SHOW_DND] = 4};
	return rank[b] > rank[a] ? b : a;
}

/* A qvalue "0", "0.d", "0.dd", "0.ddd", "1", "1.0"... (at most three decimals) -> 0..127. */
static bool parse_priority(const char *s, int *out)
{
	if ((s[0] != '0' && s[0] != '1'))
		return false;
	unsigned t = (unsigned)(s[0] - '0') * 1000;
	const char *p = s + 1;
	if (*p == '.') {
		p++;
		unsigned scale = 100;
		for (int i = 0; i < 3 && *p >= '0' && *p <= '9'; i++, p++, scale /= 10)
			t += (unsigned)(*p - '0') * scale;
	}
	if (*p != '\0' || t > 1000)
		return false;
	*out = (int)((t * 127 + 500) / 1000);
	return true;
}

static void start_collect(struct pp *pp, enum pc what)
{
	pp->collect = what;
	pp->collect_depth = pp->depth;
	pp->tn = 0;
	pp->overlong = false;
}

static struct pidf_tuple *cur_tuple(struct pp *pp)
{
	return &pp->d->tuples[pp->d->n - 1];
}
static struct ptx *cur_tx(struct pp *pp)
{
	return &pp->tx[pp->d->n - 1];
}

static void add_tuple(struct pp *pp, const XML_Char **atts)
{
	struct pidf_doc *d = pp->d;
	if (d->n >= pp->lim.max_tuples) {
		pp_fail(pp, PE_TOOBIG, "more than %zu tuples", pp->lim.max_tuples);
		return;
	}
	const char *id = attr(atts, "id");
	if (!id || !*id) {
		pp_fail(pp, PE_PROTO, "tuple %zu without id", d->n + 1);
		return;
	}
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->tuples[i].id, id) == 0) {
			pp_fail(pp, PE_PROTO, "duplicate tuple id");
			return;
		}
	if (d->n == pp->cap) {
		size_t nc = pp->cap ? 2 * pp->cap : 4;
		struct pidf_tuple *t = realloc(d->tuples, nc * sizeof *t);
		if (t)
			d->tuples = t;
		struct ptx *x = t ? realloc(pp->tx, nc * sizeof *x) : NULL;
		if (!x) {
			pp_fail(pp, PE_NOMEM, "out of memory");
			return;
		}
		pp->tx = x;
		pp->cap = nc;
	}
	struct pidf_tuple *t = &d->tuples[d->n];
	memset(t, 0, sizeof *t);
	memset(&pp->tx[d->n], 0, sizeof pp->tx[d->n]);
	d->n++;
	if (!(t->id = pp_strdup(pp, id, strlen(id))))
		return;
	char res[PIDF_RESOURCE_MAX + 1];
	int rn = pidf_tuple_id_decode(id, res, sizeof res);
	if (rn > 0)
		t->resource = pp_strdup(pp, res, (size_t)rn);
	pp->in_tuple = true;
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
	struct pp *pp = ud;
	if (pp->err)
		return;
	if (pp->depth >= pp->lim.max_depth) {
		pp_fail(pp, PE_TOOBIG, "nesting deeper than %zu", pp->lim.max_depth);
		return;
	}
	size_t dep = ++pp->depth;
	pp->kind[dep] = PK_OTHER;
	pp->lang[dep] = NULL;
	const char *xl = attr(atts, PIDF_NS_XML "\x01lang");
	if (xl) {
		if (lang_ok(xl)) {
			if (!(pp->lang[dep] = pp_strdup(pp, xl, strlen(xl))))
				return;
		} else {
			pp->lang[dep] = lang_none;
		}
	}

	const char *ns, *local;
	size_t nsn;
	split(name, &ns, &nsn, &local);
	bool in_pidf = ns_is(ns, nsn, PIDF_NS);
	bool in_rpid = ns_is(ns, nsn, PIDF_NS_RPID);
	bool in_dm = ns_is(ns, nsn, PIDF_NS_DM);

	if (dep == 1) {
		if (!in_pidf || strcmp(local, "presence") != 0) {
			pp_fail(pp, PE_PROTO, "root is not a PIDF presence");
			return;
		}
		const char *e = attr(atts, "entity");
		if (!e || !*e) {
			pp_fail(pp, PE_PROTO, "presence without entity");
			return;
		}
		pp->d->entity = pp_strdup(pp, e, strlen(e));
		pp->kind[dep] = PK_PRESENCE;
		return;
	}
	if (pp->collect != PC_NONE)
		return; /* markup inside a text field: its text is skipped */

	unsigned char parent = pp->kind[dep - 1];
	if (parent == PK_PRESENCE) {
		if (in_pidf && strcmp(local, "tuple") == 0) {
			add_tuple(pp, atts);
			pp->kind[dep] = PK_TUPLE;
		} else if (in_pidf && strcmp(local, "note") == 0 && !pp->doc_note.text) {
			start_collect(pp, PC_DOCNOTE);
		} else if (in_dm && strcmp(local, "person") == 0) {
			pp->kind[dep] = PK_PERSON;
			pp->in_person = true;
		}
		return;
	}
	if (pp->in_tuple && ns_is(ns, nsn, PIDF_NS_JABBER) && strcmp(local, "show") == 0) {
		if (!cur_tx(pp)->has_show)
			start_collect(pp, PC_SHOW);
		return;
	}
	if ((pp->in_tuple || pp->in_person) && in_rpid && strcmp(local, "activities") == 0) {
		pp->kind[dep] = PK_ACTIVITIES;
		return;
	}
	if (parent == PK_ACTIVITIES && in_rpid) {
		enum pidf_show s = activity_show(local);
		if (pp->in_tuple)
			cur_tx(pp)->act = stronger(cur_tx(pp)->act, s);
		else
			pp->person_act = stronger(pp->person_act, s);
		return;
	}
	if (parent == PK_TUPLE && in_pidf) {
		if (strcmp(local, "status") == 0) {
			pp->kind[dep] = PK_STATUS;
		} else if (strcmp(local, "note") == 0 && !cur_tuple(pp)->note) {
			start_collect(pp, PC_TNOTE);
		} else if (strcmp(local, "contact") == 0 && !cur_tx(pp)->has_contact) {
			cur_tx(pp)->has_contact = true;
			const char *q = attr(atts, "priority");
			struct pidf_tuple *t = cur_tuple(pp);
			if (q && parse_priority(q, &t->priority))
				t->has_priority = true;
		}
		return;
	}
	if (parent == PK_STATUS && in_pidf && strcmp(local, "basic") == 0) {
		if (!cur_tx(pp)->has_basic)
			start_collect(pp, PC_BASIC);
		return;
	}
	if (parent == PK_PERSON && in_dm && strcmp(local, "note") == 0 && !pp->person_note.text)
		start_collect(pp, PC_PNOTE);
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
	struct pp *pp = ud;
	if (pp->err || pp->collect == PC_NONE || pp->depth != pp->collect_depth)
		return;
	size_t n = (size_t)len;
	bool is_note = pp->collect >= PC_TNOTE;
	size_t max = is_note ? pp->lim.max_note : PIDF_SHORT_MAX;
	if (n > max - pp->tn) {
		if (is_note) {
			pp_fail(pp, PE_TOOBIG, "note longer than %zu bytes", pp->lim.max_note);
			return;
		}
		pp->overlong = true;
		n = max - pp->tn;
	}
	if (pp->tn + n > pp->tcap) {
		size_t nc = pp->tcap ? pp->tcap : 64;
		while (nc < pp->tn + n)
			nc *= 2;
		char *t = realloc(pp->text, nc + 1);
		if (!t) {
			pp_fail(pp, PE_NOMEM, "out of memory");
			return;
		}
		pp->text = t;
		pp->tcap = nc;
	}
	memcpy(pp->text + pp->tn, s, n);
	pp->tn += n;
}

/* The collected text trimmed of XML space, NUL-terminated in place; *n its length. */
static const char *trimmed(struct pp *pp, size_t *n)
{
	static char empty[1];
	if (!pp->text) {
		*n = 0;
		return empty;
	}
	char *t = pp->text;
	size_t a = 0, b = pp->tn;
	while (a < b && xml_space(t[a]))
		a++;
	while (b > a && xml_space(t[b - 1]))
		b--;
	t[b] = '\0';
	*n = b - a;
	return t + a;
}

static void set_note(struct pp *pp, char **text, char **lang)
{
	size_t n;
	const char *t = trimmed(pp, &n);
	if (n == 0)
		return; /* an empty note counts as none: a later one may still fill in */
	if (!(*text = pp_strdup(pp, t, n)))
		return;
	const char *l = lang_at(pp, pp->depth);
	if (l)
		*lang = pp_strdup(pp, l, strlen(l));
}

static void end_collect(struct pp *pp)
{
	size_t n;
	const char *t;
	enum pidf_show s;
	switch (pp->collect) {
	case PC_BASIC:
		t = trimmed(pp, &n);
		cur_tx(pp)->has_basic = true;
		cur_tuple(pp)->open = !pp->overlong && strcmp(t, "open") == 0;
		break;
	case PC_SHOW:
		t = trimmed(pp, &n);
		if (!pp->overlong && n > 0 && pidf_show_parse(t, &s) == 0) {
			cur_tx(pp)->has_show = true;
			cur_tx(pp)->emb = s;
			pp->any_embedded = true;
		}
		break;
	case PC_TNOTE:
		set_note(pp, &cur_tuple(pp)->note, &cur_tuple(pp)->note_lang);
		break;
	case PC_PNOTE:
		set_note(pp, &pp->person_note.text, &pp->person_note.lang);
		break;
	case PC_DOCNOTE:
		set_note(pp, &pp->doc_note.text, &pp->doc_note.lang);
		break;
	default:
		break;
	}
	pp->collect = PC_NONE;
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
	struct pp *pp = ud;
	(void)name;
	if (pp->err)
		return;
	size_t dep = pp->depth;
	if (pp->collect != PC_NONE && dep == pp->collect_depth)
		end_collect(pp);
	if (pp->kind[dep] == PK_TUPLE)
		pp->in_tuple = false;
	else if (pp->kind[dep] == PK_PERSON)
		pp->in_person = false;
	if (pp->lang[dep] != lang_none)
		free(pp->lang[dep]);
	pp->lang[dep] = NULL;
	pp->depth--;
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
			       const XML_Char *pubid, int has_internal_subset)
{
	(void)name, (void)sysid, (void)pubid, (void)has_internal_subset;
	pp_fail(ud, PE_PROTO, "DOCTYPE not allowed");
}

static void XMLCALL on_entity(void *ud, const XML_Char *name, int is_param, const XML_Char *value,
			      int value_len, const XML_Char *base, const XML_Char *sysid,
			      const XML_Char *pubid, const XML_Char *notation)
{
	(void)name, (void)is_param, (void)value, (void)value_len, (void)base, (void)sysid;
	(void)pubid, (void)notation;
	pp_fail(ud, PE_PROTO, "entity declaration not allowed");
}

static void XMLCALL on_comment(void *ud, const XML_Char *data)
{
	(void)data;
	pp_fail(ud, PE_PROTO, "comment not allowed");
}

static void XMLCALL on_pi(void *ud, const XML_Char *target, const XML_Char *data)
{
	(void)target, (void)data;
	pp_fail(ud, PE_PROTO, "processing instruction not allowed");
}

/* One expat parser per thread, reset between documents, and its salt drawn once: creating
 * and freeing a parser (hash tables, buffers, a getrandom call for the salt) cost more than
 * parsing a NOTIFY's PIDF (make bench, presence: a third of the gateway's time per NOTIFY
 * toward XMPP). A secret salt per parser that lives for the process is what the XMPP
 * streams' long-lived parsers have too. */
static _Thread_local XML_Parser pidf_cached;
static _Thread_local unsigned long pidf_cached_salt;

void pidf_thread_done(void)
{
	if (pidf_cached)
		XML_ParserFree(pidf_cached);
	pidf_cached = NULL;
}

static unsigned long pidf_salt(void)
{
	unsigned long salt;
	if (getrandom(&salt, sizeof salt, GRND_NONBLOCK) != (ssize_t)sizeof salt) {
		/* No kernel entropy: still vary; the salt only guards expat's hash tables. */
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		salt = (unsigned long)ts.tv_nsec ^ ((unsigned long)ts.tv_sec << 20) ^
		       (unsigned long)(uintptr_t)&salt;
	}
	return salt;
}

/* E5 and the note fallbacks, once the whole document is known. */
static void resolve(struct pp *pp)
{
	struct pidf_doc *d = pp->d;
	struct note *fallback = pp->person_note.text ? &pp->person_note : &pp->doc_note;
	for (size_t i = 0; i < d->n && !pp->err; i++) {
		struct pidf_tuple *t = &d->tuples[i];
		const struct ptx *x = &pp->tx[i];
		if (!t->open)
			t->show = PIDF_SHOW_NONE;
		else if (x->has_show)
			t->show = x->emb;
		else if (x->act != PIDF_SHOW_NONE)
			t->show = x->act;
		else if (!pp->any_embedded)
			t->show = pp->person_act;
		else
			t->show = PIDF_SHOW_NONE;
		if (!t->note && fallback->text) {
			t->note = pp_strdup(pp, fallback->text, strlen(fallback->text));
			if (fallback->lang && t->note)
				t->note_lang =
				    pp_strdup(pp, fallback->lang, strlen(fallback->lang));
		}
	}
}

static bool limits_ok(const struct pidf_limits *l)
{
	return l->max_bytes && l->max_tuples && l->max_note && l->max_depth &&
	       l->max_depth <= PIDF_DEPTH_CAP;
}

int pidf_parse(const char *xml, size_t len, const struct pidf_limits *lim, struct pidf_doc *out,
	       char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	if (err && errlen)
		err[0] = '\0';
	struct pp pp = {.d = out, .errbuf = err, .errlen = errlen};
	pp.lim = lim ? *lim : pidf_limits_default;
	if (!limits_ok(&pp.lim)) {
		pp_fail(&pp, PE_INVAL, "invalid limits");
		return PE_INVAL;
	}
	if (len > pp.lim.max_bytes || len > (size_t)INT32_MAX) {
		pp_fail(&pp, PE_TOOBIG, "document of %zu bytes over %zu", len, pp.lim.max_bytes);
		return PE_TOOBIG;
	}
	pp.p = pidf_cached; /* taken, so that a nested call would make its own */
	pidf_cached = NULL;
	if (pp.p && XML_ParserReset(pp.p, NULL) != XML_TRUE) {
		XML_ParserFree(pp.p);
		pp.p = NULL;
	}
	if (!pp.p) {
		pp.p = XML_ParserCreateNS(NULL, PIDF_SEP);
		if (!pp.p)
			return PE_NOMEM;
		pidf_cached_salt = pidf_salt();
	}
	XML_SetHashSalt(pp.p, pidf_cached_salt);
#ifdef HAVE_XML_SETREPARSEDEFERRALENABLED
	/* The whole body is given with isFinal set; switched off as everywhere else. */
	XML_SetReparseDeferralEnabled(pp.p, XML_FALSE);
#endif
	XML_SetParamEntityParsing(pp.p, XML_PARAM_ENTITY_PARSING_NEVER);
	XML_SetUserData(pp.p, &pp);
	XML_SetElementHandler(pp.p, on_start, on_end);
	XML_SetCharacterDataHandler(pp.p, on_text);
	XML_SetStartDoctypeDeclHandler(pp.p, on_doctype);
	XML_SetEntityDeclHandler(pp.p, on_entity);
	XML_SetCommentHandler(pp.p, on_comment);
	XML_SetProcessingInstructionHandler(pp.p, on_pi);
	enum XML_Status st = XML_Parse(pp.p, xml, (int)len, XML_TRUE);
	if (!pp.err && st != XML_STATUS_OK) {
		enum XML_Error e = XML_GetErrorCode(pp.p);
		pp_fail(&pp, e == XML_ERROR_NO_MEMORY ? PE_NOMEM : PE_PROTO,
			"malformed XML: %s at line %lu", XML_ErrorString(e),
			(unsigned long)XML_GetCurrentLineNumber(pp.p));
	}
	if (!pp.err && !out->entity)
		pp_fail(&pp, PE_PROTO, "no presence element");
	if (!pp.err)
		resolve(&pp);
	if (!pidf_cached)
		pidf_cached = pp.p; /* reset when next taken; its buffers stay (<= max_bytes) */
	else
		XML_ParserFree(pp.p);
	/* After a stop the element stack may still hold languages. */
	for (size_t i = 1; i <= pp.depth && i <= PIDF_DEPTH_CAP; i++)
		if (pp.lang[i] != lang_none)
			free(pp.lang[i]);
	free(pp.text);
	free(pp.tx);
	free(pp.person_note.text);
	free(pp.person_note.lang);
	free(pp.doc_note.text);
	free(pp.doc_note.lang);
	if (pp.err)
		pidf_doc_free(out);
	return pp.err;
}

void pidf_doc_free(struct pidf_doc *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++) {
		struct pidf_tuple *t = &d->tuples[i];
		free(t->resource);
		free(t->id);
		free(t->note);
		free(t->note_lang);
	}
	free(d->tuples);
	free(d->entity);
	memset(d, 0, sizeof *d);
}

/* ---- writing --------------------------------------------------------------------- */

static int put(struct buf *out, const char *s)
{
	return buf_append(out, s, strlen(s));
}

static int put_esc(struct buf *out, const char *s, bool attr_value)
{
	return xs_escape(out, s, strlen(s), attr_value);
}

static int write_tuple(struct buf *out, const char *entity, const struct pidf_tuple *t,
		       const char *id)
{
	int r;
	if ((r = put(out, "<tuple id=\"")) || (r = put_esc(out, id, true)) ||
	    (r = put(out, "\"><status><basic>")) || (r = put(out, t->open ? "open" : "closed")) ||
	    (r = put(out, "</basic>")))
		return r;
	if (t->open && t->show != PIDF_SHOW_NONE &&
	    ((r = put(out, "<show xmlns=\"" PIDF_NS_JABBER "\">")) ||
	     (r = put(out, pidf_show_name(t->show))) || (r = put(out, "</show>"))))
		return r;
	if ((r = put(out, "</status>")))
		return r;
	if (t->has_priority && t->priority >= 0) {
		unsigned q = ((unsigned)t->priority * 2000 + 127) / 254; /* round(p * 1000 / 127) */
		char num[16];
		snprintf(num, sizeof num, "%u.%03u", q / 1000, q % 1000);
		if ((r = put(out, "<contact priority=\"")) || (r = put(out, num)) ||
		    (r = put(out, "\">")) || (r = put_esc(out, entity, false)) ||
		    (r = put(out, "</contact>")))
			return r;
	}
	if (t->note && *t->note) {
		if ((r = put(out, "<note")))
			return r;
		if (t->note_lang && *t->note_lang &&
		    ((r = put(out, " xml:lang=\"")) || (r = put_esc(out, t->note_lang, true)) ||
		     (r = put(out, "\""))))
			return r;
		if ((r = put(out, ">")) || (r = put_esc(out, t->note, false)) ||
		    (r = put(out, "</note>")))
			return r;
	}
	return put(out, "</tuple>\n");
}

/* The activity for the person: that of the open tuple with the highest priority. */
static const char *person_activity(const struct pidf_tuple *tuples, size_t n)
{
	const struct pidf_tuple *top = NULL;
	for (size_t i = 0; i < n; i++) {
		const struct pidf_tuple *t = &tuples[i];
		int p = t->has_priority ? t->priority : 0;
		if (t->open && (!top || p > (top->has_priority ? top->priority : 0)))
			top = t;
	}
	if (!top)
		return NULL;
	switch (top->show) {
	case PIDF_SHOW_AWAY:
	case PIDF_SHOW_XA:
		return "away";
	case PIDF_SHOW_DND:
		return "busy";
	default:
		return NULL;
	}
}

int pidf_write(struct buf *out, const char *entity, const struct pidf_tuple *tuples, size_t n)
{
	if (!entity || !*entity || (n && !tuples))
		return PE_INVAL;
	char **ids = n ? calloc(n, sizeof *ids) : NULL;
	if (n && !ids)
		return PE_NOMEM;
	size_t start = out->len;
	int r = 0;
	for (size_t i = 0; i < n && !r; i++) {
		const struct pidf_tuple *t = &tuples[i];
		if ((unsigned)t->show >= PIDF_NSHOW || (t->has_priority && t->priority > 127)) {
			r = PE_INVAL;
			break;
		}
		if (t->resource) {
			char id[PIDF_ID_BUF];
			int k = pidf_tuple_id_encode(t->resource, id, sizeof id);
			if (k < 0) {
				r = PE_INVAL;
				break;
			}
			ids[i] = strdup(id);
		} else {
			ids[i] = strdup(t->id && *t->id ? t->id : PIDF_BARE_ID);
		}
		if (!ids[i]) {
			r = PE_NOMEM;
			break;
		}
		for (size_t j = 0; j < i; j++)
			if (strcmp(ids[j], ids[i]) == 0) {
				r = PE_INVAL;
				break;
			}
	}
	if (!r && !((r = put(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
				  "<presence xmlns=\"" PIDF_NS "\" xmlns:dm=\"" PIDF_NS_DM
				  "\" xmlns:rpid=\"" PIDF_NS_RPID "\" entity=\"")) ||
		    (r = put_esc(out, entity, true)) || (r = put(out, "\">\n")))) {
		for (size_t i = 0; i < n && !r; i++)
			r = write_tuple(out, entity, &tuples[i], ids[i]);
		const char *act = r ? NULL : person_activity(tuples, n);
		if (act && !(r = put(out, "<dm:person id=\"p\"><rpid:activities><rpid:")) &&
		    !(r = put(out, act)))
			r = put(out, "/></rpid:activities></dm:person>\n");
		if (!r)
			r = put(out, "</presence>\n");
	}
	for (size_t i = 0; i < n && ids; i++)
		free(ids[i]);
	free(ids);
	if (r)
		out->len = start;
	return r;
}
