/* Unit tests for the PIDF/RPID codec: E2-E6 round trips (every show, notes with and without
 * xml:lang, priorities, escaping, several tuples), E6 ids, E5 precedence on hand-written and
 * realistic (Kamailio, SIP client) documents, refused documents, limits, every truncated
 * prefix, and the E9 ranges at every edge. */
#include "pidf.h"
#include "buf.h"
#include "err.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define NS "urn:ietf:params:xml:ns:pidf"
#define DM "urn:ietf:params:xml:ns:pidf:data-model"
#define RPID "urn:ietf:params:xml:ns:pidf:rpid"
#define ENTITY "pres:alice@partner.test"

static int parse(const char *s, struct pidf_doc *d)
{
	char err[128];
	int rc = pidf_parse(s, strlen(s), NULL, d, err, sizeof err);
	if (rc == 0)
		assert_string_equal(err, "");
	else
		assert_true(err[0] != '\0'); /* an error always says what */
	return rc;
}

/* Writes tuples, checks the result parses, and returns it (caller frees) in *d; the
 * document text is left in *text (caller frees) when text is non-NULL. */
static void write_parse(const struct pidf_tuple *t, size_t n, struct pidf_doc *d, char **text)
{
	struct buf b;
	buf_init(&b, 1 << 20);
	assert_int_equal(pidf_write(&b, ENTITY, t, n), 0);
	char err[128];
	int rc = pidf_parse((const char *)buf_head(&b), buf_len(&b), NULL, d, err, sizeof err);
	if (rc)
		fail_msg("written document refused (%d: %s): %.*s", rc, err, (int)buf_len(&b),
			 (const char *)buf_head(&b));
	assert_string_equal(d->entity, ENTITY);
	assert_int_equal(d->n, n);
	if (text) {
		*text = calloc(1, buf_len(&b) + 1);
		memcpy(*text, buf_head(&b), buf_len(&b));
	}
	buf_deinit(&b);
}

static void assert_str_or_null(const char *got, const char *want)
{
	if (!want)
		assert_null(got);
	else {
		assert_non_null(got);
		assert_string_equal(got, want);
	}
}

/* ---- names, E6 ------------------------------------------------------------------- */

static void test_show_names(void **state)
{
	(void)state;
	static const char *const names[] = {NULL, "chat", "away", "xa", "dnd"};
	for (int s = PIDF_SHOW_NONE; s <= PIDF_SHOW_DND; s++) {
		assert_str_or_null(pidf_show_name((enum pidf_show)s), names[s]);
		enum pidf_show out = PIDF_SHOW_DND;
		assert_int_equal(pidf_show_parse(names[s], &out), 0);
		assert_int_equal(out, s);
	}
	assert_null(pidf_show_name((enum pidf_show)99));
	static const char *const bad[] = {"",	       "Away",	      " away", "away ", "online",
					  "available", "unavailable", "busy",  "xaa"};
	for (size_t i = 0; i < N(bad); i++) {
		enum pidf_show out = PIDF_SHOW_XA;
		assert_int_equal(pidf_show_parse(bad[i], &out), PE_PROTO);
		assert_int_equal(out, PIDF_SHOW_XA);
	}
}

static void test_tuple_ids(void **state)
{
	(void)state;
	static const struct {
		const char *res, *id;
	} T[] = {
	    {"orchard", "ID-6f726368617264"},
	    {"a", "ID-61"},
	    {"caf\xc3\xa9/x y&<'\"", "ID-636166c3a92f782079263c2722"},
	    {"\xf0\x9f\x8d\x8e", "ID-f09f8d8e"},
	};
	for (size_t i = 0; i < N(T); i++) {
		char id[PIDF_ID_BUF], res[PIDF_RESOURCE_MAX + 1];
		int k = pidf_tuple_id_encode(T[i].res, id, sizeof id);
		assert_int_equal(k, (int)strlen(T[i].id));
		assert_string_equal(id, T[i].id);
		assert_int_equal(pidf_tuple_id_decode(id, res, sizeof res), (int)strlen(T[i].res));
		assert_string_equal(res, T[i].res);
		/* exact cap works, one less does not */
		assert_int_equal(pidf_tuple_id_encode(T[i].res, id, (size_t)k + 1), k);
		assert_int_equal(pidf_tuple_id_encode(T[i].res, id, (size_t)k), PE_TOOBIG);
		assert_int_equal(pidf_tuple_id_decode(T[i].id, res, strlen(T[i].res)), PE_TOOBIG);
	}
	char res[PIDF_RESOURCE_MAX + 1] = "x";
	assert_int_equal(pidf_tuple_id_decode(PIDF_BARE_ID, res, sizeof res), 0);
	assert_string_equal(res, "");

	/* The longest resource, and one byte more. */
	char big[PIDF_RESOURCE_MAX + 2];
	memset(big, 'r', sizeof big - 1);
	big[PIDF_RESOURCE_MAX] = '\0';
	char id[PIDF_ID_BUF + 2];
	assert_int_equal(pidf_tuple_id_encode(big, id, PIDF_ID_BUF), PIDF_ID_BUF - 1);
	assert_int_equal(pidf_tuple_id_decode(id, res, sizeof res), PIDF_RESOURCE_MAX);
	assert_int_equal(memcmp(res, big, PIDF_RESOURCE_MAX), 0);
	big[PIDF_RESOURCE_MAX] = 'r';
	big[PIDF_RESOURCE_MAX + 1] = '\0';
	assert_int_equal(pidf_tuple_id_encode(big, id, sizeof id), PE_INVAL);
	strcpy(id, "ID-");
	for (int i = 0; i < PIDF_RESOURCE_MAX + 1; i++)
		strcat(id, "72");
	assert_int_equal(pidf_tuple_id_decode(id, res, sizeof res), PE_PROTO);

	static const char *const bad_res[] = {"",     "a\tb",	  "a\x7f",
					      "\xc3", "\xc0\xaf", "\xed\xa0\x80"};
	for (size_t i = 0; i < N(bad_res); i++)
		assert_int_equal(pidf_tuple_id_encode(bad_res[i], id, sizeof id), PE_INVAL);
	assert_int_equal(pidf_tuple_id_encode(NULL, id, sizeof id), PE_INVAL);

	static const char *const bad_ids[] = {
	    "",	       "ID-",	   "ID-6",   "ID-6g",	 "ID-6F", /* upper case: not ours */
	    "id-61",   "ID_61",	   "61",     "ID-00",	 "ID-610a", "ID-c3",  "ID-c0af",
	    "ID-Bare", "ID-bare2", "0x7f3a", "pj0x1234", "ID- 61",  "ID-61 ",
	};
	for (size_t i = 0; i < N(bad_ids); i++) {
		int rc = pidf_tuple_id_decode(bad_ids[i], res, sizeof res);
		if (rc != PE_PROTO)
			fail_msg("id '%s' decoded: %d", bad_ids[i], rc);
	}
	assert_int_equal(pidf_tuple_id_decode(NULL, res, sizeof res), PE_PROTO);
}

/* ---- round trips ------------------------------------------------------------------- */

static void test_roundtrip_shows(void **state)
{
	(void)state;
	static const char *const langs[] = {NULL, "en", "de-CH"};
	for (int s = PIDF_SHOW_NONE; s <= PIDF_SHOW_DND; s++)
		for (size_t l = 0; l < N(langs); l++)
			for (int with_note = 0; with_note < 2; with_note++) {
				struct pidf_tuple t = {
				    .resource = "desk",
				    .open = true,
				    .show = (enum pidf_show)s,
				    .note = with_note ? "Gone fishing" : NULL,
				    .note_lang = (char *)langs[l],
				};
				struct pidf_doc d;
				char *text;
				write_parse(&t, 1, &d, &text);
				assert_string_equal(d.tuples[0].resource, "desk");
				assert_string_equal(d.tuples[0].id, "ID-6465736b");
				assert_true(d.tuples[0].open);
				assert_int_equal(d.tuples[0].show, s);
				assert_str_or_null(d.tuples[0].note,
						   with_note ? "Gone fishing" : NULL);
				assert_str_or_null(d.tuples[0].note_lang,
						   with_note ? langs[l] : NULL);
				assert_false(d.tuples[0].has_priority);
				/* E5: RPID away for away and xa, busy for dnd; chat has none. */
				const char *act = s == PIDF_SHOW_AWAY || s == PIDF_SHOW_XA
						      ? "<rpid:away/>"
						  : s == PIDF_SHOW_DND ? "<rpid:busy/>"
								       : NULL;
				if (act)
					assert_non_null(strstr(text, act));
				else
					assert_null(strstr(text, "rpid:activities"));
				if (s != PIDF_SHOW_NONE)
					assert_non_null(
					    strstr(text, "<show xmlns=\"jabber:client\">"));
				free(text);
				pidf_doc_free(&d);
			}

	/* Unavailable: basic closed, no show written, the status text kept. */
	struct pidf_tuple t = {.resource = "desk",
			       .open = false,
			       .show = PIDF_SHOW_DND,
			       .note = "Logged out",
			       .note_lang = "en"};
	struct pidf_doc d;
	char *text;
	write_parse(&t, 1, &d, &text);
	assert_non_null(strstr(text, "<basic>closed</basic>"));
	assert_null(strstr(text, "show"));
	assert_null(strstr(text, "rpid:activities"));
	assert_false(d.tuples[0].open);
	assert_int_equal(d.tuples[0].show, PIDF_SHOW_NONE);
	assert_string_equal(d.tuples[0].note, "Logged out");
	assert_string_equal(d.tuples[0].note_lang, "en");
	free(text);
	pidf_doc_free(&d);
	pidf_doc_free(&d); /* twice is fine */
}

static void test_priority(void **state)
{
	(void)state;
	for (int p = 0; p <= 127; p++) {
		struct pidf_tuple t = {
		    .resource = "r", .open = true, .priority = p, .has_priority = true};
		struct pidf_doc d;
		char *text;
		write_parse(&t, 1, &d, &text);
		assert_true(d.tuples[0].has_priority);
		assert_int_equal(d.tuples[0].priority, p);
		if (p == 0)
			assert_non_null(
			    strstr(text, "<contact priority=\"0.000\">" ENTITY "</contact>"));
		if (p == 64)
			assert_non_null(strstr(text, "priority=\"0.504\""));
		if (p == 127)
			assert_non_null(strstr(text, "priority=\"1.000\""));
		free(text);
		pidf_doc_free(&d);
	}
	/* E4: a negative priority is never mapped. */
	static const int neg[] = {-1, -128};
	for (size_t i = 0; i < N(neg); i++) {
		struct pidf_tuple t = {
		    .resource = "r", .open = true, .priority = neg[i], .has_priority = true};
		struct pidf_doc d;
		char *text;
		write_parse(&t, 1, &d, &text);
		assert_null(strstr(text, "contact"));
		assert_false(d.tuples[0].has_priority);
		free(text);
		pidf_doc_free(&d);
	}
	/* Above 127 is a caller bug. */
	struct buf b;
	buf_init(&b, 0);
	struct pidf_tuple t = {
	    .resource = "r", .open = true, .priority = 128, .has_priority = true};
	assert_int_equal(pidf_write(&b, ENTITY, &t, 1), PE_INVAL);
	assert_int_equal(buf_len(&b), 0);
	buf_deinit(&b);

	/* Qvalues as other clients write them. */
	static const struct {
		const char *q;
		bool ok;
		int prio;
	} Q[] = {
	    {"0", true, 0},	{"1", true, 127},     {"1.0", true, 127},   {"1.000", true, 127},
	    {"0.5", true, 64},	{"0.8", true, 102},   {"0.", true, 0},	    {"0.001", true, 0},
	    {"0.004", true, 1}, {"0.996", true, 126}, {"1.001", false, 0},  {"1.5", false, 0},
	    {"2", false, 0},	{"-0.5", false, 0},   {"0.5000", false, 0}, {".5", false, 0},
	    {" 0.5", false, 0}, {"", false, 0},	      {"0.5x", false, 0},   {"0,5", false, 0},
	};
	for (size_t i = 0; i < N(Q); i++) {
		char doc[512];
		snprintf(doc, sizeof doc,
			 "<presence xmlns='" NS "' entity='sip:a@b'><tuple id='t'><status>"
			 "<basic>open</basic></status><contact priority='%s'>sip:a@b</contact>"
			 "<contact priority='0.7'>sip:x@y</contact></tuple></presence>",
			 Q[i].q);
		struct pidf_doc d;
		assert_int_equal(parse(doc, &d), 0);
		if (d.tuples[0].has_priority != Q[i].ok)
			fail_msg("qvalue '%s': has_priority %d", Q[i].q, d.tuples[0].has_priority);
		if (Q[i].ok)
			assert_int_equal(d.tuples[0].priority, Q[i].prio);
		pidf_doc_free(&d);
	}
}

static void test_special_characters(void **state)
{
	(void)state;
	static const char *const notes[] = {
	    "<b>&amp;</b> \"quoted\" 'single' ]]> &lt;", "line one\nline two\r\nthree\ttabbed",
	    "Caf\xc3\xa9 \xe2\x80\x94 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x98\x80",
	    "a", /* one character */
	};
	static const char *const resources[] = {
	    "Gajim.<&>'\"", "\xd0\xbf\xd0\xb5\xd1\x80\xd0\xb5\xd1\x86", "a b/c@d", "x"};
	struct pidf_tuple t[N(notes)];
	for (size_t i = 0; i < N(notes); i++)
		t[i] = (struct pidf_tuple){.resource = (char *)resources[i],
					   .open = true,
					   .show = PIDF_SHOW_CHAT,
					   .note = (char *)notes[i],
					   .note_lang = "en"};
	struct pidf_doc d;
	struct buf b;
	buf_init(&b, 0);
	static const char ent[] = "pres:\"o'brien\"&<co>@partner.test";
	assert_int_equal(pidf_write(&b, ent, t, N(t)), 0);
	assert_int_equal(pidf_parse((const char *)buf_head(&b), buf_len(&b), NULL, &d, NULL, 0), 0);
	assert_string_equal(d.entity, ent);
	assert_int_equal(d.n, N(t));
	for (size_t i = 0; i < N(t); i++) {
		assert_string_equal(d.tuples[i].resource, resources[i]);
		assert_string_equal(d.tuples[i].note, notes[i]);
		assert_int_equal(d.tuples[i].show, PIDF_SHOW_CHAT);
	}
	pidf_doc_free(&d);
	buf_deinit(&b);

	/* Notes are trimmed of XML space; a blank note is none. */
	struct pidf_tuple sp[2] = {{.resource = "a", .open = true, .note = "  padded \n"},
				   {.resource = "b", .open = true, .note = " \t\n "}};
	write_parse(sp, 2, &d, NULL);
	assert_string_equal(d.tuples[0].note, "padded");
	assert_null(d.tuples[1].note);
	pidf_doc_free(&d);
}

static void test_multiple_tuples(void **state)
{
	(void)state;
	struct pidf_tuple t[] = {
	    {.resource = "phone",
	     .open = true,
	     .show = PIDF_SHOW_NONE,
	     .priority = 5,
	     .has_priority = true},
	    {.resource = "laptop",
	     .open = true,
	     .show = PIDF_SHOW_DND,
	     .note = "Focus",
	     .priority = 10,
	     .has_priority = true},
	    {.resource = NULL, .open = false},
	    {.resource = "old",
	     .open = false,
	     .show = PIDF_SHOW_AWAY,
	     .priority = 50,
	     .has_priority = true},
	};
	struct pidf_doc d;
	char *text;
	write_parse(t, N(t), &d, &text);
	/* The person carries the activity of the highest-priority open resource. */
	assert_non_null(strstr(text, "<dm:person id=\"p\"><rpid:activities><rpid:busy/>"));
	assert_non_null(strstr(text, "<tuple id=\"" PIDF_BARE_ID "\">"));
	assert_string_equal(d.tuples[0].resource, "phone");
	assert_int_equal(d.tuples[0].show, PIDF_SHOW_NONE); /* not filled in from the person */
	assert_int_equal(d.tuples[0].priority, 5);
	assert_string_equal(d.tuples[1].resource, "laptop");
	assert_int_equal(d.tuples[1].show, PIDF_SHOW_DND);
	assert_string_equal(d.tuples[1].note, "Focus");
	assert_null(d.tuples[2].resource);
	assert_string_equal(d.tuples[2].id, PIDF_BARE_ID);
	assert_false(d.tuples[2].open);
	assert_string_equal(d.tuples[3].resource, "old");
	assert_false(d.tuples[3].open);
	assert_int_equal(d.tuples[3].show, PIDF_SHOW_NONE);
	free(text);

	/* Written back, a parsed document keeps its ids, foreign ones included. */
	struct buf b;
	buf_init(&b, 0);
	assert_int_equal(pidf_write(&b, d.entity, d.tuples, d.n), 0);
	pidf_doc_free(&d);
	buf_deinit(&b);

	/* No tuples at all is a valid document. */
	write_parse(NULL, 0, &d, &text);
	assert_null(strstr(text, "tuple"));
	free(text);
	pidf_doc_free(&d);
}

static void test_write_errors(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 0);
	buf_append(&b, "keep", 4);
	struct pidf_tuple ok = {.resource = "r", .open = true};
	struct pidf_tuple bad_note = {.resource = "r", .open = true, .note = "bad \xff utf-8"};
	struct pidf_tuple ctl_note = {.resource = "r", .open = true, .note = "bell \x07"};
	struct pidf_tuple bad_res = {.resource = "a\nb", .open = true};
	struct pidf_tuple bad_show = {.resource = "r", .open = true, .show = (enum pidf_show)9};
	struct pidf_tuple dup[] = {{.resource = "r"}, {.resource = "r"}};
	struct pidf_tuple dup_bare[] = {{.open = true}, {.open = false}};
	struct pidf_tuple dup_id[] = {{.id = "x"}, {.id = "x"}};
	assert_int_equal(pidf_write(&b, NULL, &ok, 1), PE_INVAL);
	assert_int_equal(pidf_write(&b, "", &ok, 1), PE_INVAL);
	assert_int_equal(pidf_write(&b, "pres:\xc3", &ok, 1), PE_INVAL);
	assert_int_equal(pidf_write(&b, ENTITY, &bad_note, 1), PE_INVAL);
	assert_int_equal(pidf_write(&b, ENTITY, &ctl_note, 1), PE_INVAL);
	assert_int_equal(pidf_write(&b, ENTITY, &bad_res, 1), PE_INVAL);
	assert_int_equal(pidf_write(&b, ENTITY, &bad_show, 1), PE_INVAL);
	assert_int_equal(pidf_write(&b, ENTITY, dup, 2), PE_INVAL);
	assert_int_equal(pidf_write(&b, ENTITY, dup_bare, 2), PE_INVAL);
	assert_int_equal(pidf_write(&b, ENTITY, dup_id, 2), PE_INVAL);
	assert_int_equal(buf_len(&b), 4);
	assert_memory_equal(buf_head(&b), "keep", 4);
	buf_deinit(&b);

	/* A bounded buffer: too small fails and is left as it was. */
	buf_init(&b, 200);
	buf_append(&b, "keep", 4);
	struct pidf_tuple big = {.resource = "r",
				 .open = true,
				 .note = "a long note that does "
					 "not fit in two hundred bytes "
					 "with the rest of the document"};
	assert_int_equal(pidf_write(&b, ENTITY, &big, 1), PE_TOOBIG);
	assert_int_equal(buf_len(&b), 4);
	buf_deinit(&b);
}

/* ---- E5 and realistic documents ------------------------------------------------------ */

#define DOC_HEAD                                                                                   \
	"<presence xmlns='" NS "' xmlns:dm='" DM "' xmlns:rpid='" RPID "' entity='sip:b@c'>"
#define OPEN "<status><basic>open</basic></status>"

static void test_e5_precedence(void **state)
{
	(void)state;
	static const struct {
		const char *doc;
		enum pidf_show show[2];
		bool open[2];
	} T[] = {
	    /* embedded show beats tuple RPID and person RPID */
	    {DOC_HEAD
	     "<tuple id='a'><status><basic>open</basic><show xmlns='jabber:client'>xa"
	     "</show></status><rpid:activities><rpid:busy/></rpid:activities></tuple>"
	     "<dm:person id='p'><rpid:activities><rpid:away/></rpid:activities></dm:person>"
	     "</presence>",
	     {PIDF_SHOW_XA},
	     {true}},
	    /* tuple RPID beats person RPID */
	    {DOC_HEAD "<tuple id='a'>" OPEN "<rpid:activities><rpid:away/></rpid:activities>"
		      "</tuple><dm:person id='p'><rpid:activities><rpid:busy/></rpid:activities>"
		      "</dm:person></presence>",
	     {PIDF_SHOW_AWAY},
	     {true}},
	    /* person RPID beats basic, applies to every open tuple (before or after it) */
	    {DOC_HEAD "<dm:person id='p'><rpid:activities><rpid:on-the-phone/></rpid:activities>"
		      "</dm:person><tuple id='a'>" OPEN "</tuple><tuple id='b'>" OPEN "</tuple>"
		      "</presence>",
	     {PIDF_SHOW_DND, PIDF_SHOW_DND},
	     {true, true}},
	    /* ... but not once a tuple carries an embedded show */
	    {DOC_HEAD
	     "<tuple id='a'>" OPEN "</tuple><tuple id='b'><status><basic>open</basic>"
	     "<show xmlns='jabber:client'>chat</show></status></tuple>"
	     "<dm:person id='p'><rpid:activities><rpid:busy/></rpid:activities></dm:person>"
	     "</presence>",
	     {PIDF_SHOW_NONE, PIDF_SHOW_CHAT},
	     {true, true}},
	    /* basic alone */
	    {DOC_HEAD "<tuple id='a'>" OPEN "</tuple></presence>", {PIDF_SHOW_NONE}, {true}},
	    /* closed wins over every show */
	    {DOC_HEAD "<tuple id='a'><status><basic>closed</basic><show xmlns='jabber:client'>"
		      "dnd</show></status></tuple><dm:person id='p'><rpid:activities><rpid:away/>"
		      "</rpid:activities></dm:person></presence>",
	     {PIDF_SHOW_NONE},
	     {false}},
	    /* no basic, or a bad one: closed */
	    {DOC_HEAD "<tuple id='a'><status/></tuple><tuple id='b'><status><basic>opened"
		      "</basic></status></tuple></presence>",
	     {PIDF_SHOW_NONE, PIDF_SHOW_NONE},
	     {false, false}},
	    /* whitespace around basic and show; a bad embedded show is skipped */
	    {DOC_HEAD "<tuple id='a'><status><basic>\n open \n</basic></status>"
		      "<show xmlns='jabber:client'>busy</show><show xmlns='jabber:client'> away "
		      "</show></tuple></presence>",
	     {PIDF_SHOW_AWAY},
	     {true}},
	    /* a bad embedded show falls through to RPID */
	    {DOC_HEAD "<tuple id='a'><status><basic>open</basic><show xmlns='jabber:client'>"
		      "Away</show></status></tuple><dm:person id='p'><rpid:activities>"
		      "<rpid:vacation/></rpid:activities></dm:person></presence>",
	     {PIDF_SHOW_XA},
	     {true}},
	    /* the strongest activity wins, in any order; unknown ones count for nothing */
	    {DOC_HEAD "<tuple id='a'>" OPEN "<rpid:activities><rpid:busy/><rpid:away/>"
		      "</rpid:activities></tuple><tuple id='b'>" OPEN "<rpid:activities>"
		      "<rpid:away/><rpid:sleeping/><rpid:unknown/></rpid:activities></tuple>"
		      "</presence>",
	     {PIDF_SHOW_DND, PIDF_SHOW_XA},
	     {true, true}},
	    {DOC_HEAD "<tuple id='a'>" OPEN "<rpid:activities><rpid:unknown/><rpid:other>"
		      "gardening</rpid:other><rpid:tv/></rpid:activities></tuple></presence>",
	     {PIDF_SHOW_NONE},
	     {true}},
	    /* activities in another namespace, or a show in another namespace, are not ours */
	    {DOC_HEAD "<tuple id='a'>" OPEN "<activities xmlns='urn:x'><busy/></activities>"
		      "<show xmlns='jabber:server'>dnd</show></tuple></presence>",
	     {PIDF_SHOW_NONE},
	     {true}},
	    /* several persons (Kamailio aggregating): the strongest of all */
	    {DOC_HEAD "<tuple id='a'>" OPEN "</tuple><dm:person id='p1'><rpid:activities>"
		      "<rpid:meal/></rpid:activities></dm:person><dm:person id='p2'>"
		      "<rpid:activities><rpid:meeting/></rpid:activities></dm:person></presence>",
	     {PIDF_SHOW_DND},
	     {true}},
	};
	for (size_t i = 0; i < N(T); i++) {
		struct pidf_doc d;
		int rc = parse(T[i].doc, &d);
		if (rc)
			fail_msg("case %zu refused: %d", i, rc);
		for (size_t k = 0; k < d.n; k++) {
			if (d.tuples[k].show != T[i].show[k] || d.tuples[k].open != T[i].open[k])
				fail_msg("case %zu tuple %zu: show %d open %d, want %d %d", i, k,
					 d.tuples[k].show, d.tuples[k].open, T[i].show[k],
					 T[i].open[k]);
		}
		pidf_doc_free(&d);
	}
}

/* What Kamailio's presence module sends when it aggregates two PUBLISHes (one from a
 * desk phone with RPID, one from a softphone) for a watcher: tuples with the clients' ids,
 * a person per publication, the CIPID namespace, standalone declaration. */
static const char KAMAILIO_DOC[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
    "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" "
    "xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" "
    "xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" "
    "xmlns:c=\"urn:ietf:params:xml:ns:pidf:cipid\" entity=\"sip:bob@sip.example.com\">\n"
    "  <tuple id=\"0x7f4a1c0b3e20\">\n"
    "    <status>\n      <basic>open</basic>\n    </status>\n"
    "    <contact priority=\"0.8\">sip:bob@192.0.2.7:5060</contact>\n"
    "    <timestamp>2024-05-02T09:14:03Z</timestamp>\n"
    "  </tuple>\n"
    "  <tuple id=\"tid-softphone-1\">\n"
    "    <status><basic>closed</basic></status>\n"
    "    <note xml:lang=\"en\">Offline</note>\n"
    "  </tuple>\n"
    "  <dm:person id=\"pres-0x7f4a1c0b3e20\">\n"
    "    <rpid:activities>\n      <rpid:on-the-phone/>\n    </rpid:activities>\n"
    "    <dm:note>On the phone</dm:note>\n"
    "    <c:display-name>Bob Example</c:display-name>\n"
    "  </dm:person>\n"
    "</presence>\n";

/* A SIP client (Linphone/Jitsi style) with RPID only: no embedded show, activity and note
 * in the person, a document-level note too. */
static const char RPID_ONLY_DOC[] =
    "<?xml version='1.0' encoding='UTF-8'?>"
    "<presence xmlns='urn:ietf:params:xml:ns:pidf' xml:lang='fr' "
    "xmlns:dm='urn:ietf:params:xml:ns:pidf:data-model' "
    "xmlns:rpid='urn:ietf:params:xml:ns:pidf:rpid' entity='sip:carol@example.org'>"
    "<tuple id='qoica'><status><basic>open</basic></status>"
    "<contact>sip:carol@198.51.100.3;transport=tls</contact></tuple>"
    "<note>document note</note>"
    "<dm:person id='pcgyzn'><rpid:activities><rpid:away/></rpid:activities>"
    "<dm:note>Parti d\xc3\xa9jeuner</dm:note>"
    "<dm:timestamp>2024-05-02T12:01:00Z</dm:timestamp></dm:person></presence>";

static void test_kamailio_document(void **state)
{
	(void)state;
	struct pidf_doc d;
	assert_int_equal(parse(KAMAILIO_DOC, &d), 0);
	assert_string_equal(d.entity, "sip:bob@sip.example.com");
	assert_int_equal(d.n, 2);
	assert_null(d.tuples[0].resource); /* not our id */
	assert_string_equal(d.tuples[0].id, "0x7f4a1c0b3e20");
	assert_true(d.tuples[0].open);
	assert_int_equal(d.tuples[0].show, PIDF_SHOW_DND);
	assert_true(d.tuples[0].has_priority);
	assert_int_equal(d.tuples[0].priority, 102);
	assert_string_equal(d.tuples[0].note, "On the phone"); /* from the person */
	assert_null(d.tuples[0].note_lang);
	assert_null(d.tuples[1].resource);
	assert_string_equal(d.tuples[1].id, "tid-softphone-1");
	assert_false(d.tuples[1].open);
	assert_int_equal(d.tuples[1].show, PIDF_SHOW_NONE);
	assert_string_equal(d.tuples[1].note, "Offline");
	assert_string_equal(d.tuples[1].note_lang, "en");
	assert_false(d.tuples[1].has_priority);
	pidf_doc_free(&d);
}

static void test_rpid_only_document(void **state)
{
	(void)state;
	struct pidf_doc d;
	assert_int_equal(parse(RPID_ONLY_DOC, &d), 0);
	assert_int_equal(d.n, 1);
	assert_string_equal(d.tuples[0].id, "qoica");
	assert_true(d.tuples[0].open);
	assert_int_equal(d.tuples[0].show, PIDF_SHOW_AWAY);
	assert_false(d.tuples[0].has_priority); /* contact without priority */
	assert_string_equal(d.tuples[0].note, "Parti d\xc3\xa9jeuner"); /* person note first */
	assert_string_equal(d.tuples[0].note_lang, "fr");		/* inherited */
	pidf_doc_free(&d);
}

static void test_notes_and_langs(void **state)
{
	(void)state;
	static const struct {
		const char *doc, *note, *lang;
	} T[] = {
	    /* the tuple's first non-empty note */
	    {DOC_HEAD "<tuple id='a'>" OPEN "<note>  </note><note xml:lang='en'>one</note>"
		      "<note xml:lang='de'>eins</note></tuple><note>doc</note></presence>",
	     "one", "en"},
	    /* document note when there is no other */
	    {DOC_HEAD "<tuple id='a'>" OPEN "</tuple><note xml:lang='it'>doc</note></presence>",
	     "doc", "it"},
	    /* an inherited language, reset by xml:lang='' and dropped when odd */
	    {"<presence xmlns='" NS "' entity='e' xml:lang='en-GB'><tuple id='a'>" OPEN
	     "<note>x</note></tuple></presence>",
	     "x", "en-GB"},
	    {"<presence xmlns='" NS "' entity='e' xml:lang='en'><tuple id='a' xml:lang=''>" OPEN
	     "<note>x</note></tuple></presence>",
	     "x", NULL},
	    {"<presence xmlns='" NS "' entity='e' xml:lang='en'><tuple id='a'>" OPEN
	     "<note xml:lang='e&quot;n'>x</note></tuple></presence>",
	     "x", NULL},
	    /* CDATA, references and markup inside a note (its text skipped) */
	    {DOC_HEAD "<tuple id='a'>" OPEN "<note>a<![CDATA[<b>]]>&#xe9;&amp;<i>skip</i>z"
		      "</note></tuple></presence>",
	     "a<b>\xc3\xa9&z", NULL},
	    /* a note in a foreign namespace is not ours */
	    {DOC_HEAD "<tuple id='a'>" OPEN "<note xmlns='urn:x'>no</note></tuple></presence>",
	     NULL, NULL},
	};
	for (size_t i = 0; i < N(T); i++) {
		struct pidf_doc d;
		int rc = parse(T[i].doc, &d);
		if (rc)
			fail_msg("case %zu refused: %d", i, rc);
		assert_str_or_null(d.tuples[0].note, T[i].note);
		assert_str_or_null(d.tuples[0].note_lang, T[i].lang);
		pidf_doc_free(&d);
	}
}

/* ---- refused documents, limits, prefixes -------------------------------------------- */

static void test_refused(void **state)
{
	(void)state;
	static const struct {
		const char *doc;
		int rc;
	} T[] = {
	    {"", PE_PROTO},
	    {"   ", PE_PROTO},
	    {"<?xml version='1.0'?><!DOCTYPE presence><presence xmlns='" NS "' entity='e'/>",
	     PE_PROTO},
	    {"<!DOCTYPE p [<!ENTITY a 'aaaa'><!ENTITY b '&a;&a;&a;&a;'>]>"
	     "<presence xmlns='" NS "' entity='&b;'/>",
	     PE_PROTO},
	    {"<!DOCTYPE p SYSTEM 'http://example.com/x.dtd'><presence xmlns='" NS "' entity='e'/>",
	     PE_PROTO},
	    {"<presence xmlns='" NS "' entity='e'><!-- c --></presence>", PE_PROTO},
	    {"<presence xmlns='" NS "' entity='e'><?pi x?></presence>", PE_PROTO},
	    {"<presence xmlns='" NS "' entity='&undefined;'/>", PE_PROTO},
	    {"<presence entity='e'/>", PE_PROTO}, /* no namespace */
	    {"<presence xmlns='urn:ietf:params:xml:ns:cpim-pidf' entity='e'/>", PE_PROTO},
	    {"<p:presence xmlns:p='urn:x' entity='e'/>", PE_PROTO},
	    {"<tuple xmlns='" NS "' id='a'/>", PE_PROTO}, /* wrong root */
	    {"<presence xmlns='" NS "'/>", PE_PROTO},	  /* no entity */
	    {"<presence xmlns='" NS "' entity=''/>", PE_PROTO},
	    {"<presence xmlns='" NS "' entity='e'><tuple>" OPEN "</tuple></presence>", PE_PROTO},
	    {"<presence xmlns='" NS "' entity='e'><tuple id=''/></presence>", PE_PROTO},
	    {"<presence xmlns='" NS "' entity='e'><tuple id='a'/><tuple id='a'/></presence>",
	     PE_PROTO},
	    {"<presence xmlns='" NS "' entity='e'><tuple id='a'></presence>", PE_PROTO},
	    {"<presence xmlns='" NS "' entity='e'/><presence xmlns='" NS "' entity='e'/>",
	     PE_PROTO},
	    {"<presence xmlns='" NS "' entity='e' entity='f'/>", PE_PROTO},
	    {"<presence xmlns='" NS "' entity='e'>\xff</presence>", PE_PROTO},
	    {"<presence xmlns='" NS "' entity='e'>&#1;</presence>", PE_PROTO},
	    {"<presence xmlns='" NS "' entity='e'><x:y/></presence>", PE_PROTO}, /* unbound */
	};
	for (size_t i = 0; i < N(T); i++) {
		struct pidf_doc d;
		int rc = parse(T[i].doc, &d);
		if (rc != T[i].rc)
			fail_msg("case %zu: %d, want %d", i, rc, T[i].rc);
		assert_null(d.entity);
		assert_null(d.tuples);
		assert_int_equal(d.n, 0);
	}
	char err[64];
	struct pidf_doc d;
	static const char doctype[] = "<!DOCTYPE x><presence xmlns='" NS "' entity='e'/>";
	assert_int_equal(pidf_parse(doctype, strlen(doctype), NULL, &d, err, sizeof err), PE_PROTO);
	assert_string_equal(err, "DOCTYPE not allowed");
	/* A small err buffer is truncated, not overrun; errlen 0 leaves it alone. */
	char tiny[4] = "zzz";
	assert_int_equal(pidf_parse(doctype, strlen(doctype), NULL, &d, tiny, 0), PE_PROTO);
	assert_string_equal(tiny, "zzz");
	assert_int_equal(pidf_parse(doctype, strlen(doctype), NULL, &d, tiny, sizeof tiny),
			 PE_PROTO);
	assert_string_equal(tiny, "DOC");
}

static char *make_doc(size_t tuples, size_t note_len, size_t depth)
{
	size_t cap = 256 + tuples * 128 + note_len + depth * 16;
	char *s = malloc(cap), *p = s;
	p += sprintf(p, "<presence xmlns='" NS "' entity='e'>");
	for (size_t i = 0; i < tuples; i++)
		p += sprintf(p, "<tuple id='t%zu'>" OPEN "</tuple>", i);
	if (note_len) {
		p += sprintf(p, "<note>");
		memset(p, 'n', note_len);
		p += note_len;
		p += sprintf(p, "</note>");
	}
	for (size_t i = 1; i < depth; i++)
		p += sprintf(p, "<x>");
	for (size_t i = 1; i < depth; i++)
		p += sprintf(p, "</x>");
	p += sprintf(p, "</presence>");
	return s;
}

static void test_limits(void **state)
{
	(void)state;
	struct pidf_doc d;
	char *s;
	const struct pidf_limits *def = &pidf_limits_default;
	assert_int_equal(def->max_bytes, 64 * 1024);
	assert_int_equal(def->max_tuples, 64);
	assert_int_equal(def->max_note, 4096);
	assert_int_equal(def->max_depth, 16);

	s = make_doc(64, 0, 0);
	assert_int_equal(parse(s, &d), 0);
	assert_int_equal(d.n, 64);
	pidf_doc_free(&d);
	free(s);
	s = make_doc(65, 0, 0);
	assert_int_equal(parse(s, &d), PE_TOOBIG);
	free(s);

	s = make_doc(1, 4096, 0);
	assert_int_equal(parse(s, &d), 0);
	assert_int_equal(strlen(d.tuples[0].note), 4096);
	pidf_doc_free(&d);
	free(s);
	s = make_doc(1, 4097, 0);
	assert_int_equal(parse(s, &d), PE_TOOBIG);
	free(s);

	s = make_doc(1, 0, 16);
	assert_int_equal(parse(s, &d), 0);
	pidf_doc_free(&d);
	free(s);
	s = make_doc(1, 0, 17);
	assert_int_equal(parse(s, &d), PE_TOOBIG);
	free(s);

	/* max_bytes is checked before parsing: one byte over is refused. */
	s = make_doc(1, 0, 0);
	struct pidf_limits lim = *def;
	lim.max_bytes = strlen(s);
	assert_int_equal(pidf_parse(s, strlen(s), &lim, &d, NULL, 0), 0);
	pidf_doc_free(&d);
	lim.max_bytes = strlen(s) - 1;
	assert_int_equal(pidf_parse(s, strlen(s), &lim, &d, NULL, 0), PE_TOOBIG);
	free(s);
	s = make_doc(1, 66000, 0);
	lim = *def;
	lim.max_note = 100000;
	assert_int_equal(pidf_parse(s, strlen(s), &lim, &d, NULL, 0), PE_TOOBIG); /* > 64 KiB */
	free(s);

	/* Custom limits, and invalid ones. */
	lim = (struct pidf_limits){.max_bytes = 1 << 20,
				   .max_tuples = 2,
				   .max_note = 8,
				   .max_depth = 4}; /* presence/tuple/status/basic */
	s = make_doc(2, 8, 4);
	assert_int_equal(pidf_parse(s, strlen(s), &lim, &d, NULL, 0), 0);
	pidf_doc_free(&d);
	free(s);
	static const size_t over[][3] = {{3, 8, 4}, {2, 9, 4}, {2, 8, 5}};
	for (size_t i = 0; i < N(over); i++) {
		s = make_doc(over[i][0], over[i][1], over[i][2]);
		assert_int_equal(pidf_parse(s, strlen(s), &lim, &d, NULL, 0), PE_TOOBIG);
		free(s);
	}
	static const struct pidf_limits bad[] = {
	    {0, 1, 1, 1}, {1, 0, 1, 1}, {1, 1, 0, 1}, {1, 1, 1, 0}, {1, 1, 1, PIDF_DEPTH_CAP + 1}};
	for (size_t i = 0; i < N(bad); i++)
		assert_int_equal(pidf_parse("<x/>", 4, &bad[i], &d, NULL, 0), PE_INVAL);
}

/* Every truncated prefix of a valid document is refused (or, once the root has closed,
 * parsed) without a crash or a leak: the ASan build checks both. */
static void test_truncated_prefixes(void **state)
{
	(void)state;
	struct pidf_tuple t[] = {
	    {.resource = "desk",
	     .open = true,
	     .show = PIDF_SHOW_DND,
	     .note = "caf\xc3\xa9 & <co>",
	     .note_lang = "fr",
	     .priority = 3,
	     .has_priority = true},
	    {.open = false, .note = "bye"},
	};
	struct buf b;
	buf_init(&b, 0);
	assert_int_equal(pidf_write(&b, ENTITY, t, N(t)), 0);
	const char *docs[] = {KAMAILIO_DOC, RPID_ONLY_DOC, (const char *)buf_head(&b)};
	size_t lens[] = {strlen(KAMAILIO_DOC), strlen(RPID_ONLY_DOC), buf_len(&b)};
	for (size_t k = 0; k < N(docs); k++) {
		const char *end = strstr(docs[k], "</presence>");
		assert_non_null(end);
		size_t complete = (size_t)(end - docs[k]) + strlen("</presence>");
		for (size_t n = 0; n <= lens[k]; n++) {
			struct pidf_doc d;
			int rc = pidf_parse(docs[k], n, NULL, &d, NULL, 0);
			if (n < complete && rc != PE_PROTO)
				fail_msg("doc %zu prefix %zu: %d", k, n, rc);
			if (n >= complete && rc != 0)
				fail_msg("doc %zu prefix %zu: %d", k, n, rc);
			pidf_doc_free(&d);
		}
	}
	buf_deinit(&b);
}

/* ---- E9 -------------------------------------------------------------------------- */

static void test_e9(void **state)
{
	(void)state;
	static const struct {
		uint32_t avail;
		bool off_work;
		bool available;
		enum pidf_show show;
	} T[] = {
	    {0, false, true, PIDF_SHOW_NONE},		{3500, false, true, PIDF_SHOW_NONE},
	    {4499, false, true, PIDF_SHOW_NONE},	{4500, false, true, PIDF_SHOW_AWAY},
	    {5999, false, true, PIDF_SHOW_AWAY},	{6000, false, true, PIDF_SHOW_DND},
	    {8999, false, true, PIDF_SHOW_DND},		{9000, false, true, PIDF_SHOW_DND},
	    {11999, false, true, PIDF_SHOW_DND},	{12000, false, true, PIDF_SHOW_AWAY},
	    {14999, false, true, PIDF_SHOW_AWAY},	{15000, false, true, PIDF_SHOW_AWAY},
	    {15000, true, true, PIDF_SHOW_XA},		{17999, false, true, PIDF_SHOW_AWAY},
	    {17999, true, true, PIDF_SHOW_XA},		{14999, true, true, PIDF_SHOW_AWAY},
	    {18000, false, false, PIDF_SHOW_NONE},	{18000, true, false, PIDF_SHOW_NONE},
	    {UINT32_MAX, false, false, PIDF_SHOW_NONE}, {4499, true, true, PIDF_SHOW_NONE},
	};
	for (size_t i = 0; i < N(T); i++) {
		enum pidf_show s = PIDF_SHOW_CHAT;
		bool av = pidf_avail_to_show(T[i].avail, T[i].off_work, &s);
		if (av != T[i].available || s != T[i].show)
			fail_msg("%u off_work %d: available %d show %d", T[i].avail, T[i].off_work,
				 av, s);
	}
	static const struct {
		bool available;
		enum pidf_show show;
		uint32_t avail;
		bool off_work;
	} R[] = {
	    {true, PIDF_SHOW_NONE, 3500, false},  {true, PIDF_SHOW_CHAT, 3500, false},
	    {true, PIDF_SHOW_AWAY, 15500, false}, {true, PIDF_SHOW_XA, 15500, true},
	    {true, PIDF_SHOW_DND, 6500, false},	  {false, PIDF_SHOW_NONE, 18000, false},
	    {false, PIDF_SHOW_DND, 18000, false},
	};
	for (size_t i = 0; i < N(R); i++) {
		bool ow = !R[i].off_work;
		assert_int_equal(pidf_show_to_avail(R[i].available, R[i].show, &ow), R[i].avail);
		assert_int_equal(ow, R[i].off_work);
		assert_int_equal(pidf_show_to_avail(R[i].available, R[i].show, NULL), R[i].avail);
		/* and back: every show but chat survives */
		enum pidf_show s;
		bool av = pidf_avail_to_show(R[i].avail, R[i].off_work, &s);
		assert_int_equal(av, R[i].available);
		if (R[i].available)
			assert_int_equal(s,
					 R[i].show == PIDF_SHOW_CHAT ? PIDF_SHOW_NONE : R[i].show);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_show_names),
	    cmocka_unit_test(test_tuple_ids),
	    cmocka_unit_test(test_roundtrip_shows),
	    cmocka_unit_test(test_priority),
	    cmocka_unit_test(test_special_characters),
	    cmocka_unit_test(test_multiple_tuples),
	    cmocka_unit_test(test_write_errors),
	    cmocka_unit_test(test_e5_precedence),
	    cmocka_unit_test(test_kamailio_document),
	    cmocka_unit_test(test_rpid_only_document),
	    cmocka_unit_test(test_notes_and_langs),
	    cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_truncated_prefixes),
	    cmocka_unit_test(test_e9),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
