/* XMPP stanza error <-> SIP status tables (RFC 7247 §7) and reason text cleaning. */
#include "errmap.h"

#include "jid.h"

#include <stdint.h>
#include <string.h>

/*
 * Why things are the way they are:
 *
 * - service-unavailable never becomes 503: a SIP proxy that gets 503 without Retry-After
 *   from the gateway may treat the whole gateway as down and send it nothing more (RFC
 *   7247 §7 note 5, RFC 3263 failover). The gateway's own overload answer (503 with
 *   Retry-After, MAPPING I4) is made elsewhere on purpose.
 * - Where RFC 7247 offers two codes, the choice is a field of struct errmap_xmpp so the
 *   caller, which knows whether the JID was bare or why a domain failed, decides.
 * - Reason text crosses in both directions but comes from a peer: it is only copied when
 *   it is valid UTF-8, controls never pass (a CR LF would end a SIP start line), and it is
 *   bounded.
 */

/* clang-format off */
#define ERRMAP__NAME(name, str, type) [ERRMAP_COND_##name] = str,
static const char *const errmap__names[ERRMAP_COND__COUNT] = {
	[ERRMAP_COND_NONE] = "",
	ERRMAP_COND_MAP(ERRMAP__NAME)
};
#undef ERRMAP__NAME

#define ERRMAP__TYPE(name, str, type) [ERRMAP_COND_##name] = ERRMAP_TYPE_##type,
static const enum errmap_type errmap__types[ERRMAP_COND__COUNT] = {
	[ERRMAP_COND_NONE] = ERRMAP_TYPE_NONE,
	ERRMAP_COND_MAP(ERRMAP__TYPE)
};
#undef ERRMAP__TYPE
/* clang-format on */

static const char *const errmap__type_names[] = {
    [ERRMAP_TYPE_NONE] = "",	     [ERRMAP_TYPE_AUTH] = "auth",
    [ERRMAP_TYPE_CANCEL] = "cancel", [ERRMAP_TYPE_CONTINUE] = "continue",
    [ERRMAP_TYPE_MODIFY] = "modify", [ERRMAP_TYPE_WAIT] = "wait",
};
#define ERRMAP__NTYPES (sizeof errmap__type_names / sizeof errmap__type_names[0])

const char *errmap_cond_name(enum errmap_cond cond)
{
	if ((unsigned)cond >= ERRMAP_COND__COUNT)
		return "";
	return errmap__names[cond];
}

enum errmap_cond errmap_cond_from_name(const char *s, size_t n)
{
	for (unsigned i = 1; i < ERRMAP_COND__COUNT; i++)
		if (strlen(errmap__names[i]) == n && memcmp(errmap__names[i], s, n) == 0)
			return (enum errmap_cond)i;
	return ERRMAP_COND_NONE;
}

const char *errmap_type_name(enum errmap_type type)
{
	if ((unsigned)type >= ERRMAP__NTYPES)
		return "";
	return errmap__type_names[type];
}

enum errmap_type errmap_type_from_name(const char *s, size_t n)
{
	for (unsigned i = 1; i < ERRMAP__NTYPES; i++)
		if (strlen(errmap__type_names[i]) == n && memcmp(errmap__type_names[i], s, n) == 0)
			return (enum errmap_type)i;
	return ERRMAP_TYPE_NONE;
}

enum errmap_type errmap_cond_type(enum errmap_cond cond)
{
	if ((unsigned)cond >= ERRMAP_COND__COUNT)
		return ERRMAP_TYPE_NONE;
	return errmap__types[cond];
}

/* ---- H1 ------------------------------------------------------------------------- */

int errmap_to_sip(const struct errmap_xmpp *e)
{
	switch (e->cond) {
	case ERRMAP_COND_FEATURE_NOT_IMPLEMENTED:
		return e->bare ? 501 : 405;
	case ERRMAP_COND_FORBIDDEN:
		return e->bare ? 603 : 403;
	case ERRMAP_COND_GONE:
		return e->new_address ? 301 : 410;
	case ERRMAP_COND_INTERNAL_SERVER_ERROR:
	case ERRMAP_COND_RESOURCE_CONSTRAINT:
		return 500;
	case ERRMAP_COND_ITEM_NOT_FOUND:
		return e->bare ? 604 : 404;
	case ERRMAP_COND_NOT_ACCEPTABLE:
		return e->bare ? 606 : 406;
	case ERRMAP_COND_NOT_ALLOWED:
	case ERRMAP_COND_POLICY_VIOLATION:
		return 403;
	case ERRMAP_COND_NOT_AUTHORIZED:
		return 401;
	case ERRMAP_COND_RECIPIENT_UNAVAILABLE:
		return e->bare ? 600 : 480;
	case ERRMAP_COND_REDIRECT:
		return 302;
	case ERRMAP_COND_REGISTRATION_REQUIRED:
		return 407;
	case ERRMAP_COND_REMOTE_SERVER_NOT_FOUND:
		return e->unresolvable ? 408 : 404;
	case ERRMAP_COND_REMOTE_SERVER_TIMEOUT:
		return 408;
	case ERRMAP_COND_SERVICE_UNAVAILABLE:
		return e->bare ? 403 : 405;
	case ERRMAP_COND_UNEXPECTED_REQUEST:
		return e->pending ? 491 : 400;
	case ERRMAP_COND_BAD_REQUEST:
	case ERRMAP_COND_CONFLICT:
	case ERRMAP_COND_JID_MALFORMED:
	case ERRMAP_COND_SUBSCRIPTION_REQUIRED:
	case ERRMAP_COND_UNDEFINED_CONDITION:
	default:
		return 400;
	}
}

/* ---- H2, H3 --------------------------------------------------------------------- */

struct errmap_stanza errmap_from_sip(int status)
{
	enum errmap_cond c;
	if (status < 300 || status > 699)
		return (struct errmap_stanza){ERRMAP_COND_NONE, ERRMAP_TYPE_NONE};
	switch (status) {
	case 301:
	case 410:
		c = ERRMAP_COND_GONE;
		break;
	case 400:
		c = ERRMAP_COND_BAD_REQUEST;
		break;
	case 401:
		c = ERRMAP_COND_NOT_AUTHORIZED;
		break;
	case 403:
		c = ERRMAP_COND_FORBIDDEN;
		break;
	case 404:
	case 481:
	case 484:
	case 485:
	case 604:
		c = ERRMAP_COND_ITEM_NOT_FOUND;
		break;
	case 405:
	case 420:
	case 501:
		c = ERRMAP_COND_FEATURE_NOT_IMPLEMENTED;
		break;
	case 406:
	case 415:
	case 416:
	case 482:
	case 483:
	case 488:
	case 606:
		c = ERRMAP_COND_NOT_ACCEPTABLE;
		break;
	case 407:
		c = ERRMAP_COND_REGISTRATION_REQUIRED;
		break;
	case 408:
	case 504:
		c = ERRMAP_COND_REMOTE_SERVER_TIMEOUT;
		break;
	case 413:
	case 414:
	case 489:
		c = ERRMAP_COND_POLICY_VIOLATION;
		break;
	case 423:
		c = ERRMAP_COND_RESOURCE_CONSTRAINT;
		break;
	case 480:
	case 486:
	case 487:
	case 600:
	case 603:
		c = ERRMAP_COND_RECIPIENT_UNAVAILABLE;
		break;
	case 491:
		c = ERRMAP_COND_UNEXPECTED_REQUEST;
		break;
	case 500:
	case 503:
		c = ERRMAP_COND_INTERNAL_SERVER_ERROR;
		break;
	case 502:
		c = ERRMAP_COND_REMOTE_SERVER_NOT_FOUND;
		break;
	default: /* H3: by class */
		switch (status / 100) {
		case 3:
			c = ERRMAP_COND_REDIRECT;
			break;
		case 4:
			c = ERRMAP_COND_BAD_REQUEST;
			break;
		case 5:
			c = ERRMAP_COND_INTERNAL_SERVER_ERROR;
			break;
		default:
			c = ERRMAP_COND_RECIPIENT_UNAVAILABLE;
			break;
		}
	}
	return (struct errmap_stanza){c, errmap_cond_type(c)};
}

/* ---- reason phrases ------------------------------------------------------------- */

static const struct {
	int code;
	const char *reason;
} errmap__reasons[] = {
    {100, "Trying"},
    {180, "Ringing"},
    {181, "Call Is Being Forwarded"},
    {182, "Queued"},
    {183, "Session Progress"},
    {199, "Early Dialog Terminated"},
    {200, "OK"},
    {202, "Accepted"},
    {204, "No Notification"},
    {300, "Multiple Choices"},
    {301, "Moved Permanently"},
    {302, "Moved Temporarily"},
    {305, "Use Proxy"},
    {380, "Alternative Service"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {402, "Payment Required"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {407, "Proxy Authentication Required"},
    {408, "Request Timeout"},
    {410, "Gone"},
    {412, "Conditional Request Failed"},
    {413, "Request Entity Too Large"},
    {414, "Request-URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Unsupported URI Scheme"},
    {417, "Unknown Resource-Priority"},
    {420, "Bad Extension"},
    {421, "Extension Required"},
    {422, "Session Interval Too Small"},
    {423, "Interval Too Brief"},
    {424, "Bad Location Information"},
    {428, "Use Identity Header"},
    {429, "Provide Referrer Identity"},
    {430, "Flow Failed"},
    {433, "Anonymity Disallowed"},
    {436, "Bad Identity-Info"},
    {437, "Unsupported Certificate"},
    {438, "Invalid Identity Header"},
    {439, "First Hop Lacks Outbound Support"},
    {440, "Max-Breadth Exceeded"},
    {469, "Bad Info Package"},
    {470, "Consent Needed"},
    {480, "Temporarily Unavailable"},
    {481, "Call/Transaction Does Not Exist"},
    {482, "Loop Detected"},
    {483, "Too Many Hops"},
    {484, "Address Incomplete"},
    {485, "Ambiguous"},
    {486, "Busy Here"},
    {487, "Request Terminated"},
    {488, "Not Acceptable Here"},
    {489, "Bad Event"},
    {491, "Request Pending"},
    {493, "Undecipherable"},
    {494, "Security Agreement Required"},
    {500, "Server Internal Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Server Time-out"},
    {505, "Version Not Supported"},
    {513, "Message Too Large"},
    {580, "Precondition Failure"},
    {600, "Busy Everywhere"},
    {603, "Decline"},
    {604, "Does Not Exist Anywhere"},
    {606, "Not Acceptable"},
};

const char *errmap_reason(int status)
{
	static const char *const classes[] = {"Provisional",  "Success",      "Redirection",
					      "Client Error", "Server Error", "Global Failure"};
	for (size_t i = 0; i < sizeof errmap__reasons / sizeof errmap__reasons[0]; i++)
		if (errmap__reasons[i].code == status)
			return errmap__reasons[i].reason;
	if (status < 100 || status > 699)
		return "Unknown";
	return classes[status / 100 - 1];
}

/* ---- <text/> <-> Reason-Phrase -------------------------------------------------- */

/* Decodes the code point at s[i] (valid UTF-8 assumed) and its length. */
static uint32_t errmap__cp(const unsigned char *s, size_t i, size_t *n)
{
	unsigned c = s[i];
	if (c < 0x80) {
		*n = 1;
		return c;
	}
	size_t k = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : 1;
	uint32_t cp = c & (0x3f >> k);
	for (size_t j = 1; j <= k; j++)
		cp = (cp << 6) | (s[i + j] & 0x3f);
	*n = k + 1;
	return cp;
}

/* Copies valid UTF-8 s[0..len) to out with every character bad() refuses turned into a
 * space, trimmed, cut at a character boundary to min(cap - 1, ERRMAP_TEXT_MAX). Returns the
 * length (0: nothing printable or not UTF-8). */
static size_t errmap__clean(const char *s, size_t len, bool (*bad)(uint32_t), char *out, size_t cap)
{
	size_t max = cap - 1 < ERRMAP_TEXT_MAX ? cap - 1 : ERRMAP_TEXT_MAX, o = 0, last = 0;
	out[0] = '\0';
	if (!s || !jid_utf8_valid(s, len))
		return 0;
	const unsigned char *u = (const unsigned char *)s;
	for (size_t i = 0, n; i < len; i += n) {
		uint32_t cp = errmap__cp(u, i, &n);
		bool space = cp == ' ' || bad(cp);
		if (space && o == 0)
			continue; /* leading */
		size_t w = space ? 1 : n;
		if (o + w > max)
			break;
		if (space)
			out[o++] = ' ';
		else {
			memcpy(out + o, s + i, n);
			o += n;
			last = o;
		}
	}
	out[last] = '\0'; /* trailing spaces dropped */
	return last;
}

/* SIP Reason-Phrase: anything but controls (RFC 3261 §25.1 allows TEXT-UTF8 and SP/HTAB;
 * HTAB is replaced too, for logs). */
static bool errmap__bad_sip(uint32_t cp)
{
	return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f);
}

/* XML 1.0 Char minus the controls. */
static bool errmap__bad_xml(uint32_t cp)
{
	return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) || cp == 0xfffe ||
	       cp == 0xffff;
}

size_t errmap_reason_from_text(const char *text, size_t len, int status, char *out, size_t cap)
{
	size_t n = errmap__clean(text, len, errmap__bad_sip, out, cap);
	if (n > 0)
		return n;
	const char *r = errmap_reason(status);
	return errmap__clean(r, strlen(r), errmap__bad_sip, out, cap);
}

size_t errmap_text_from_reason(const char *reason, size_t len, char *out, size_t cap)
{
	return errmap__clean(reason, len, errmap__bad_xml, out, cap);
}
