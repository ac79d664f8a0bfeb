/* Micro-benchmark of the XML stream layer: 300-byte message stanzas per second, against
 * bare expat on the same bytes, and the heap an idle stream holds. Prints figures only.
 * Times are the thread's CPU time, best of 5 runs (the machine is shared), so the rate
 * is what one core sustains.
 *   bench_xml_stream [seconds per run, default 0.5] */
#include "buf.h"
#include "xml_stream.h"

#include <expat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define READ_SIZE (16 * 1024) /* one TLS record's worth per read */

static const char header[] =
    "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
    "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "
    "to='example.org' from='partner.example' version='1.0' id='bench'>";

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A buffer of whole stanzas, each exactly 300 bytes, at least READ_SIZE long. */
static char *make_stanzas(size_t *len, size_t *count)
{
	static const char pre[] =
	    "<message from='alice@partner.example/phone' "
	    "to='bob@example.org' type='chat' id='%08zu' xml:lang='en'><body>";
	static const char post[] =
	    "</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>";
	size_t n = 0, cnt = 0;
	char *s = malloc(READ_SIZE * 4);
	while (n + 300 <= READ_SIZE * 4) {
		int k = snprintf(s + n, 300, pre, cnt);
		size_t fill = 300 - (size_t)k - (sizeof post - 1);
		for (size_t i = 0; i < fill; i++)
			s[n + (size_t)k + i] = "Lorem ipsum dolor sit amet &amp; co "[i % 36];
		memcpy(s + n + (size_t)k + fill, post, sizeof post - 1);
		/* the entity may have been cut: keep the body plain then */
		for (size_t i = (size_t)k; i < (size_t)k + fill; i++)
			if (s[n + i] == '&' && (size_t)k + fill - i < 5)
				memset(s + n + i, 'x', (size_t)k + fill - i);
		n += 300;
		cnt++;
	}
	*len = n;
	*count = cnt;
	return s;
}

static size_t g_stanzas;
static size_t g_sink;

static void on_stanza(void *ud, const struct xs_stanza *st)
{
	(void)ud;
	g_stanzas++;
	/* touch what a router reads */
	const char *to = xs_elem_attr(st->el, NULL, "to");
	const struct xs_elem *body = xs_elem_child(st->el, XS_NS_SERVER, "body");
	g_sink += (to ? (size_t)to[0] : 0) + (body ? body->text.n : 0);
}

static const struct xs_callbacks cbs = {.on_stanza = on_stanza};

/* One run of the stream layer: returns CPU seconds, stores the stanza count. */
static double run_xs(const char *data, size_t len, double secs, size_t *stanzas)
{
	struct xs *xs = xs_new(&xs_limits_postauth, &cbs, NULL);
	if (xs_feed(xs, header, strlen(header)) != 0)
		abort();
	g_stanzas = 0;
	double t0 = now(), t;
	do {
		for (int rep = 0; rep < 16; rep++)
			for (size_t off = 0; off < len; off += READ_SIZE) {
				size_t k = len - off < READ_SIZE ? len - off : READ_SIZE;
				if (xs_feed(xs, data + off, k) != 0) {
					fprintf(stderr, "error: %s\n",
						xs_cond_name(xs_error(xs)->cond));
					abort();
				}
			}
		t = now() - t0;
	} while (t < secs);
	*stanzas = g_stanzas;
	xs_free(xs);
	return t;
}

/* Bare expat, namespace-aware, counting top-level elements: the floor. */
static int depth;
static size_t bare_count;
static void XMLCALL bare_start(void *ud, const XML_Char *n, const XML_Char **a)
{
	(void)ud, (void)n, (void)a;
	depth++;
}
static void XMLCALL bare_end(void *ud, const XML_Char *n)
{
	(void)ud, (void)n;
	if (--depth == 1)
		bare_count++;
}
static void XMLCALL bare_text(void *ud, const XML_Char *s, int len)
{
	(void)ud, (void)s, (void)len;
}

static double run_expat(const char *data, size_t len, double secs, size_t *stanzas)
{
	XML_Parser p = XML_ParserCreateNS("UTF-8", '\x01');
	XML_SetElementHandler(p, bare_start, bare_end);
	XML_SetCharacterDataHandler(p, bare_text);
	depth = 0;
	bare_count = 0;
	XML_Parse(p, header, (int)strlen(header), 0);
	double t0 = now(), t;
	do {
		for (int rep = 0; rep < 16; rep++)
			for (size_t off = 0; off < len; off += READ_SIZE) {
				size_t k = len - off < READ_SIZE ? len - off : READ_SIZE;
				if (XML_Parse(p, data + off, (int)k, 0) != XML_STATUS_OK)
					abort();
			}
		t = now() - t0;
	} while (t < secs);
	*stanzas = bare_count;
	XML_ParserFree(p);
	return t;
}

static void report(const char *what, double (*run)(const char *, size_t, double, size_t *),
		   const char *data, size_t len, double secs)
{
	double best = 1e9;
	for (int i = 0; i < 5; i++) {
		size_t n;
		double t = run(data, len, secs, &n);
		double ns = t * 1e9 / (double)n;
		if (ns < best)
			best = ns;
	}
	printf("%-11s %9.0f stanzas/s  %6.1f MB/s  %5.0f ns/stanza (best of 5, CPU time)\n", what,
	       1e9 / best, 300.0 * 1e3 / best, best);
}

static void idle_memory(const char *data, size_t len)
{
	struct xs *xs = xs_new(&xs_limits_postauth, &cbs, NULL);
	printf("idle: new stream %zu bytes;", xs_mem_usage(xs));
	xs_feed(xs, header, strlen(header));
	printf(" after the header %zu;", xs_mem_usage(xs));
	xs_feed(xs, data, len);
	printf(" after %zu bytes of stanzas %zu\n", len, xs_mem_usage(xs));
	xs_free(xs);
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 0.5;
	size_t len, count;
	char *data = make_stanzas(&len, &count);
	printf("input: %zu stanzas of 300 bytes per %zu-byte buffer, reads of %d bytes\n", count,
	       len, READ_SIZE);
	report("bare expat:", run_expat, data, len, secs);
	report("xml_stream:", run_xs, data, len, secs);
	idle_memory(data, len);
	printf("sink %zu\n", g_sink % 10);
	free(data);
	return 0;
}
