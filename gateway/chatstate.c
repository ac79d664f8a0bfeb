/* isComposing (RFC 3994) codec and XEP-0085 chat state mapping (RFC 7573) with F2 timing. */
#include "chatstate.h"

#include "err.h"
#include "jid.h"

#include <expat.h>

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

/*
 * Why things are the way they are:
 *
 * - An isComposing body comes from a SIP peer, so it gets the same restricted expat as the
 *   XMPP streams (common/xml_stream.c): no DOCTYPE, hence no entity declarations and no
 *   entity expansion; a random hash salt. The document is small and complete (a MESSAGE
 *   body), so it is parsed in one XML_Parse call with its length bounded first, and this
 *   parser stays separate from the streaming one.
 * - Unknown elements are ignored rather than refused: the schema has an ##other extension
 *   point, and a chat state is not worth an error.
 * - A peer's <refresh> below the minimum is raised: it must not make our timers fire more
 *   often than RFC 3994 allows a sender to refresh.
 * - The sender refreshes at 90% of the interval it announced, so a refresh sent on time
 *   is not overtaken by the receiver's timeout.
 */

#define CS_SEP '\x01' /* namespace separator: cannot occur in names or URIs */
#define CS_MAX_DEPTH 16
#define CS_REFRESH_LIMIT 1000000000u

/* ---- names and F1 --------------------------------------------------------------- */

static const char *const cs_names[] = {
    [CHATSTATE_NONE] = "",
    [CHATSTATE_ACTIVE] = "active",
    [CHATSTATE_COMPOSING] = "composing",
    [CHATSTATE_PAUSED] = "paused",
    [CHATSTATE_INACTIVE] = "inactive",
    [CHATSTATE_GONE] = "gone",
};
#define CS_NNAMES (sizeof cs_names / sizeof cs_names[0])

const char *chatstate_name(enum chatstate s)
{
	if ((unsigned)s >= CS_NNAMES)
		return "";
	return cs_names[s];
}

enum chatstate chatstate_from_name(const char *s, size_t n)
{
	for (unsigned i = 1; i < CS_NNAMES; i++)
		if (strlen(cs_names[i]) == n && memcmp(cs_names[i], s, n) == 0)
			return (enum chatstate)i;
	return CHATSTATE_NONE;
}

bool chatstate_to_ic(enum chatstate s, enum chatstate_ic *out)
{
	switch (s) {
	case CHATSTATE_COMPOSING:
		*out = CHATSTATE_IC_ACTIVE;
		return true;
	case CHATSTATE_ACTIVE:
	case CHATSTATE_PAUSED:
	case CHATSTATE_INACTIVE:
		*out = CHATSTATE_IC_IDLE;
		return true;
	default:
		return false;
	}
}

enum chatstate chatstate_from_ic(enum chatstate_ic s)
{
	return s == CHATSTATE_IC_ACTIVE ? CHATSTATE_COMPOSING : CHATSTATE_ACTIVE;
}

/* ---- parsing -------------------------------------------------------------------- */

enum cs_field {
	CS_F_NONE = -1, /* not inside a field we keep */
	CS_F_STATE = 0,
	CS_F_LASTACTIVE,
	CS_F_CONTENTTYPE,
	CS_F_REFRESH,
	CS_F__COUNT
};

static const char *const cs_fields[CS_F__COUNT] = {"state", "lastactive", "contenttype", "refresh"};

struct cs_parse {
	XML_Parser p;
	struct chatstate_doc *d;
	int err;	     /* first error; 0 while all is well */
	int depth;	     /* open elements */
	enum cs_field field; /* the field whose text is being collected */
	unsigned seen;	     /* bit per field */
	size_t tn;
	char text[CHATSTATE_FIELD_MAX + 1];
};

static void cs_fail(struct cs_parse *c, int err)
{
	if (!c->err) {
		c->err = err;
		XML_StopParser(c->p, XML_FALSE);
	}
}

static bool cs_xml_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Splits an expat name "ns<SEP>local" and checks the namespace. */
static bool cs_in_ns(const char *name, const char **local)
{
	static const char ns[] = CHATSTATE_NS_ISCOMPOSING;
	if (strncmp(name, ns, sizeof ns - 1) != 0 || name[sizeof ns - 1] != CS_SEP)
		return false;
	*local = name + sizeof ns;
	return true;
}

static void XMLCALL cs_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
	struct cs_parse *c = ud;
	const char *local;
	(void)attrs;
	if (c->err)
		return;
	c->depth++;
	if (c->depth > CS_MAX_DEPTH) {
		cs_fail(c, PE_PROTO);
		return;
	}
	if (c->depth == 1) {
		if (!cs_in_ns(name, &local) || strcmp(local, "isComposing") != 0)
			cs_fail(c, PE_PROTO);
		return;
	}
	if (c->field != CS_F_NONE) {
		cs_fail(c, PE_PROTO); /* a field holds text only */
		return;
	}
	if (c->depth != 2 || !cs_in_ns(name, &local))
		return;
	for (int f = 0; f < CS_F__COUNT; f++) {
		if (strcmp(local, cs_fields[f]) != 0)
			continue;
		if (c->seen & (1u << f)) {
			cs_fail(c, PE_PROTO);
			return;
		}
		c->seen |= 1u << f;
		c->field = (enum cs_field)f;
		c->tn = 0;
		return;
	}
}

static void XMLCALL cs_text(void *ud, const XML_Char *s, int len)
{
	struct cs_parse *c = ud;
	if (c->err || c->field == CS_F_NONE)
		return;
	size_t n = (size_t)len;
	/* Leading whitespace is dropped as it comes, so it does not count against the bound. */
	while (c->tn == 0 && n > 0 && cs_xml_space(*s))
		s++, n--;
	if (n > sizeof c->text - 1 - c->tn) {
		/* Could still be trailing whitespace only: keep the check exact. */
		size_t room = sizeof c->text - 1 - c->tn;
		for (size_t i = room; i < n; i++)
			if (!cs_xml_space(s[i])) {
				cs_fail(c, PE_PROTO);
				return;
			}
		n = room;
	}
	memcpy(c->text + c->tn, s, n);
	c->tn += n;
}

/* Trims, checks and stores the collected text of the field that just ended. */
static int cs_store(struct cs_parse *c)
{
	char *t = c->text;
	size_t n = c->tn;
	while (n > 0 && cs_xml_space(t[n - 1]))
		n--;
	t[n] = '\0';
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)t[i] < 0x20 || t[i] == 0x7f)
			return PE_PROTO;
	switch (c->field) {
	case CS_F_STATE:
		if (n == 6 && strncasecmp(t, "active", 6) == 0)
			c->d->state = CHATSTATE_IC_ACTIVE;
		else if (n == 4 && strncasecmp(t, "idle", 4) == 0)
			c->d->state = CHATSTATE_IC_IDLE;
		else
			return PE_PROTO;
		return 0;
	case CS_F_REFRESH: {
		unsigned long v = 0;
		if (n == 0 || n > 9)
			return PE_PROTO;
		for (size_t i = 0; i < n; i++) {
			if (t[i] < '0' || t[i] > '9')
				return PE_PROTO;
			v = v * 10 + (unsigned long)(t[i] - '0');
		}
		if (v == 0)
			return PE_PROTO;
		c->d->refresh = (unsigned)v;
		return 0;
	}
	case CS_F_LASTACTIVE:
		if (n == 0)
			return PE_PROTO;
		memcpy(c->d->lastactive, t, n + 1);
		return 0;
	case CS_F_CONTENTTYPE:
		if (n == 0)
			return PE_PROTO;
		memcpy(c->d->contenttype, t, n + 1);
		return 0;
	default:
		return PE_PROTO;
	}
}

static void XMLCALL cs_end(void *ud, const XML_Char *name)
{
	struct cs_parse *c = ud;
	(void)name;
	if (c->err)
		return;
	if (c->depth == 2 && c->field != CS_F_NONE) {
		int rc = cs_store(c);
		c->field = CS_F_NONE;
		if (rc < 0) {
			cs_fail(c, rc);
			return;
		}
	}
	c->depth--;
}

static void XMLCALL cs_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
			       const XML_Char *pubid, int has_internal_subset)
{
	(void)name, (void)sysid, (void)pubid, (void)has_internal_subset;
	cs_fail(ud, PE_PROTO);
}

static void XMLCALL cs_entity(void *ud, const XML_Char *name, int is_param, const XML_Char *value,
			      int value_len, const XML_Char *base, const XML_Char *sysid,
			      const XML_Char *pubid, const XML_Char *notation)
{
	(void)name, (void)is_param, (void)value, (void)value_len, (void)base, (void)sysid;
	(void)pubid, (void)notation;
	cs_fail(ud, PE_PROTO);
}

static unsigned long cs_salt(void)
{
	unsigned long salt;
	if (getrandom(&salt, sizeof salt, GRND_NONBLOCK) != (ssize_t)sizeof salt) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		salt = (unsigned long)ts.tv_nsec ^ ((unsigned long)ts.tv_sec << 20);
	}
	return salt;
}

int chatstate_parse(const char *buf, size_t len, size_t max, struct chatstate_doc *d)
{
	memset(d, 0, sizeof *d);
	if (len > max)
		return PE_TOOBIG;
	if (len > (size_t)INT32_MAX)
		return PE_TOOBIG;
	struct cs_parse c = {.d = d, .field = CS_F_NONE};
	c.p = XML_ParserCreateNS(NULL, CS_SEP);
	if (!c.p)
		return PE_NOMEM;
	XML_SetHashSalt(c.p, cs_salt());
#ifdef HAVE_XML_SETREPARSEDEFERRALENABLED
	XML_SetReparseDeferralEnabled(c.p, XML_FALSE);
#endif
	XML_SetParamEntityParsing(c.p, XML_PARAM_ENTITY_PARSING_NEVER);
	XML_SetUserData(c.p, &c);
	XML_SetElementHandler(c.p, cs_start, cs_end);
	XML_SetCharacterDataHandler(c.p, cs_text);
	XML_SetStartDoctypeDeclHandler(c.p, cs_doctype);
	XML_SetEntityDeclHandler(c.p, cs_entity);
	enum XML_Status st = XML_Parse(c.p, buf, (int)len, XML_TRUE);
	int rc = c.err;
	if (!rc && st != XML_STATUS_OK)
		rc = XML_GetErrorCode(c.p) == XML_ERROR_NO_MEMORY ? PE_NOMEM : PE_PROTO;
	if (!rc && !(c.seen & (1u << CS_F_STATE)))
		rc = PE_PROTO;
	XML_ParserFree(c.p);
	if (rc)
		memset(d, 0, sizeof *d);
	return rc;
}

/* ---- writing -------------------------------------------------------------------- */

struct cs_w {
	char *p;
	size_t cap, n;
	bool over;
};

static void cs_put(struct cs_w *w, const char *s, size_t n)
{
	if (w->over || n >= w->cap - w->n) {
		w->over = true;
		return;
	}
	memcpy(w->p + w->n, s, n);
	w->n += n;
}

static void cs_puts(struct cs_w *w, const char *s)
{
	cs_put(w, s, strlen(s));
}

static bool cs_field_ok(const char *s)
{
	size_t n = strnlen(s, CHATSTATE_FIELD_MAX + 1);
	if (n > CHATSTATE_FIELD_MAX || !jid_utf8_valid(s, n))
		return false;
	if (n > 0 && (s[0] == ' ' || s[n - 1] == ' '))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

static void cs_put_elem(struct cs_w *w, const char *name, const char *val)
{
	cs_puts(w, "  <");
	cs_puts(w, name);
	cs_puts(w, ">");
	for (const char *p = val; *p; p++) {
		if (*p == '&')
			cs_puts(w, "&amp;");
		else if (*p == '<')
			cs_puts(w, "&lt;");
		else if (*p == '>')
			cs_puts(w, "&gt;");
		else
			cs_put(w, p, 1);
	}
	cs_puts(w, "</");
	cs_puts(w, name);
	cs_puts(w, ">\n");
}

int chatstate_write(const struct chatstate_doc *d, char *out, size_t cap)
{
	if (!cs_field_ok(d->contenttype) || !cs_field_ok(d->lastactive) ||
	    d->refresh >= CS_REFRESH_LIMIT ||
	    (d->state != CHATSTATE_IC_IDLE && d->state != CHATSTATE_IC_ACTIVE))
		return PE_INVAL;
	if (cap == 0)
		return PE_TOOBIG;
	struct cs_w w = {out, cap, 0, false};
	cs_puts(&w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		    "<isComposing xmlns=\"" CHATSTATE_NS_ISCOMPOSING "\">\n");
	cs_put_elem(&w, "state", d->state == CHATSTATE_IC_ACTIVE ? "active" : "idle");
	if (d->lastactive[0])
		cs_put_elem(&w, "lastactive", d->lastactive);
	if (d->contenttype[0])
		cs_put_elem(&w, "contenttype", d->contenttype);
	if (d->refresh) {
		char num[16];
		snprintf(num, sizeof num, "%u", d->refresh);
		cs_put_elem(&w, "refresh", num);
	}
	cs_puts(&w, "</isComposing>\n");
	if (w.over)
		return PE_TOOBIG;
	out[w.n] = '\0';
	return (int)w.n;
}

/* ---- F2 ------------------------------------------------------------------------- */

unsigned chatstate_refresh_interval(unsigned configured)
{
	if (configured == 0)
		return CHATSTATE_REFRESH_DEFAULT;
	return configured < CHATSTATE_REFRESH_MIN ? CHATSTATE_REFRESH_MIN : configured;
}

unsigned chatstate_active_timeout(const struct chatstate_doc *d)
{
	if (d->state != CHATSTATE_IC_ACTIVE)
		return 0;
	if (d->refresh == 0)
		return CHATSTATE_ACTIVE_TIMEOUT;
	return d->refresh < CHATSTATE_REFRESH_MIN ? CHATSTATE_REFRESH_MIN : d->refresh;
}

enum chatstate chatstate_rx_doc(struct chatstate_rx *rx, const struct chatstate_doc *d,
				uint64_t now_ms)
{
	if (d->state == CHATSTATE_IC_ACTIVE) {
		bool was = rx->active;
		rx->active = true;
		rx->expires_ms = now_ms + (uint64_t)chatstate_active_timeout(d) * 1000;
		return was ? CHATSTATE_NONE : CHATSTATE_COMPOSING;
	}
	if (!rx->active)
		return CHATSTATE_NONE;
	rx->active = false;
	rx->expires_ms = 0;
	return CHATSTATE_ACTIVE;
}

void chatstate_rx_message(struct chatstate_rx *rx)
{
	rx->active = false;
	rx->expires_ms = 0;
}

enum chatstate chatstate_rx_tick(struct chatstate_rx *rx, uint64_t now_ms)
{
	if (!rx->active || now_ms < rx->expires_ms)
		return CHATSTATE_NONE;
	rx->active = false;
	rx->expires_ms = 0;
	return CHATSTATE_ACTIVE;
}

uint64_t chatstate_rx_deadline(const struct chatstate_rx *rx)
{
	return rx->active ? rx->expires_ms : 0;
}

void chatstate_tx_init(struct chatstate_tx *tx, unsigned refresh_s)
{
	memset(tx, 0, sizeof *tx);
	tx->refresh = chatstate_refresh_interval(refresh_s);
}

static uint64_t cs_refresh_due(const struct chatstate_tx *tx, uint64_t now_ms)
{
	return now_ms + (uint64_t)tx->refresh * 900; /* 90% of the interval, in ms */
}

static void cs_doc(struct chatstate_doc *d, enum chatstate_ic state, unsigned refresh)
{
	memset(d, 0, sizeof *d);
	d->state = state;
	if (state == CHATSTATE_IC_ACTIVE) {
		d->refresh = refresh;
		memcpy(d->contenttype, "text/plain", sizeof "text/plain");
	}
}

bool chatstate_tx_state(struct chatstate_tx *tx, enum chatstate s, uint64_t now_ms,
			struct chatstate_doc *d)
{
	enum chatstate_ic ic;
	if (!chatstate_to_ic(s, &ic)) {
		if (s == CHATSTATE_GONE)
			tx->active = false;
		return false;
	}
	if (ic == CHATSTATE_IC_ACTIVE) {
		tx->composing_ms = now_ms;
		if (tx->active)
			return false;
		tx->active = true;
		tx->refresh_at_ms = cs_refresh_due(tx, now_ms);
		cs_doc(d, CHATSTATE_IC_ACTIVE, tx->refresh);
		return true;
	}
	if (!tx->active)
		return false;
	tx->active = false;
	cs_doc(d, CHATSTATE_IC_IDLE, 0);
	return true;
}

void chatstate_tx_message(struct chatstate_tx *tx)
{
	tx->active = false;
}

bool chatstate_tx_tick(struct chatstate_tx *tx, uint64_t now_ms, struct chatstate_doc *d)
{
	if (!tx->active)
		return false;
	if (now_ms >= tx->composing_ms + (uint64_t)CHATSTATE_COMPOSING_MAX * 1000) {
		tx->active = false;
		cs_doc(d, CHATSTATE_IC_IDLE, 0);
		return true;
	}
	if (now_ms < tx->refresh_at_ms)
		return false;
	tx->refresh_at_ms = cs_refresh_due(tx, now_ms);
	cs_doc(d, CHATSTATE_IC_ACTIVE, tx->refresh);
	return true;
}

uint64_t chatstate_tx_deadline(const struct chatstate_tx *tx)
{
	if (!tx->active)
		return 0;
	uint64_t stop = tx->composing_ms + (uint64_t)CHATSTATE_COMPOSING_MAX * 1000;
	return tx->refresh_at_ms < stop ? tx->refresh_at_ms : stop;
}
