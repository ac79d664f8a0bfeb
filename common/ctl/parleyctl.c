/* parleyctl: asks a running parley-proxy or parley-gateway over its control socket (see
 * common/ctl.h for the protocol) and prints the answer as tables, or as JSON with --json. */
#include "ctl.h"
#include "json.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define DEFAULT_PROXY_SOCKET "/run/parley/proxy.sock"
#define DEFAULT_GATEWAY_SOCKET "/run/parley/gateway.sock"
#define TIMEOUT_S 15

static void usage(FILE *f)
{
	fprintf(f,
		"usage: parleyctl [-s SOCKET] [--json] {proxy|gateway} VERB [ARG...]\n"
		"       parleyctl -s SOCKET [--json] VERB [ARG...]\n"
		"  proxy    talks to %s\n"
		"  gateway  talks to %s\n"
		"verbs: status, link, sessions (proxy), reload, drain, metrics, help\n"
		"       (help lists what the daemon answers, including verbs added by modules)\n",
		DEFAULT_PROXY_SOCKET, DEFAULT_GATEWAY_SOCKET);
}

/* ---- request ---- */

/* Appends one word, quoted when the protocol needs it. Returns false for a control char. */
static bool put_word(char *line, size_t cap, size_t *n, const char *w)
{
	bool plain = *w != 0;
	for (const unsigned char *p = (const unsigned char *)w; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return false;
		if (*p == ' ' || *p == '"' || *p == '\\' || *p >= 0x80)
			plain = false;
	}
	if (*n + 1 >= cap)
		return false;
	if (*n)
		line[(*n)++] = ' ';
	if (plain) {
		size_t l = strlen(w);
		if (*n + l >= cap)
			return false;
		memcpy(line + *n, w, l);
		*n += l;
		return true;
	}
	if (*n + 1 >= cap)
		return false;
	line[(*n)++] = '"';
	for (const char *p = w; *p; p++) {
		if (*n + 3 >= cap)
			return false;
		if (*p == '"' || *p == '\\')
			line[(*n)++] = '\\';
		line[(*n)++] = *p;
	}
	line[(*n)++] = '"';
	return true;
}

/* Sends line and reads one reply line into a malloc'd string. Returns 0 or prints why. */
static int ask(const char *path, const char *line, size_t len, char **reply, size_t *rlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof sa.sun_path) {
		fprintf(stderr, "parleyctl: socket path too long: %s\n", path);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		fprintf(stderr, "parleyctl: cannot connect to %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	struct timeval tv = {.tv_sec = TIMEOUT_S};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	size_t off = 0;
	while (off < len) {
		ssize_t w = send(fd, line + off, len - off, MSG_NOSIGNAL);
		if (w <= 0) {
			fprintf(stderr, "parleyctl: write to %s: %s\n", path, strerror(errno));
			close(fd);
			return -1;
		}
		off += (size_t)w;
	}
	size_t cap = 65536, n = 0;
	size_t max = CTL_MAX_REPLY + 4096;
	char *b = malloc(cap);
	for (;;) {
		if (!b) {
			fprintf(stderr, "parleyctl: out of memory\n");
			close(fd);
			return -1;
		}
		if (n && memchr(b, '\n', n))
			break;
		if (n == cap) {
			if (cap >= max) {
				fprintf(stderr, "parleyctl: reply too large\n");
				free(b);
				close(fd);
				return -1;
			}
			cap *= 2;
			char *nb = realloc(b, cap);
			if (!nb)
				free(b);
			b = nb;
			continue;
		}
		ssize_t r = recv(fd, b + n, cap - n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			fprintf(stderr, "parleyctl: %s: %s\n", path,
				r == 0		  ? "connection closed without a reply"
				: errno == EAGAIN ? "no reply (timed out)"
						  : strerror(errno));
			free(b);
			close(fd);
			return -1;
		}
		n += (size_t)r;
	}
	close(fd);
	char *lf = memchr(b, '\n', n);
	*rlen = (size_t)(lf - b);
	b[*rlen] = 0;
	*reply = b;
	return 0;
}

/* ---- output ---- */

/* A cell's text: strings raw, numbers as written, booleans yes/no, null '-', containers as
 * compact JSON. Returns a malloc'd string. */
static char *cell(const struct json_val *v)
{
	char *s = NULL;
	size_t n = 0;
	FILE *f;
	switch (v->type) {
	case JSON_NULL:
		return strdup("-");
	case JSON_BOOL:
		return strdup(v->b ? "yes" : "no");
	case JSON_NUMBER:
		return strdup(v->text);
	case JSON_STRING:
		return strdup(v->len ? v->text : "-");
	case JSON_ARRAY:
	case JSON_OBJECT:
		f = open_memstream(&s, &n);
		if (!f)
			return strdup("?");
		fputc(v->type == JSON_ARRAY ? '[' : '{', f);
		for (size_t i = 0; i < v->n; i++) {
			char *c = cell(&v->items[i]);
			if (v->type == JSON_OBJECT)
				fprintf(f, "%s%s=%s", i ? " " : "", v->keys[i], c ? c : "?");
			else
				fprintf(f, "%s%s", i ? "," : "", c ? c : "?");
			free(c);
		}
		fputc(v->type == JSON_ARRAY ? ']' : '}', f);
		fclose(f);
		return s;
	}
	return strdup("?");
}

static bool is_table(const struct json_val *v)
{
	if (v->type != JSON_ARRAY)
		return false;
	for (size_t i = 0; i < v->n; i++)
		if (v->items[i].type != JSON_OBJECT)
			return false;
	return true;
}

/* Columns are the keys of the first row, in order; later rows are matched by name. */
static void print_table(const struct json_val *arr, const char *indent)
{
	if (arr->n == 0) {
		printf("%s(none)\n", indent);
		return;
	}
	const struct json_val *first = &arr->items[0];
	size_t ncol = first->n;
	size_t *w = calloc(ncol ? ncol : 1, sizeof *w);
	size_t ncells = arr->n * ncol;
	char **cells = calloc(ncells ? ncells : 1, sizeof *cells);
	if (!w || !cells) {
		free(w);
		free(cells);
		return;
	}
	for (size_t c = 0; c < ncol; c++)
		w[c] = strlen(first->keys[c]);
	for (size_t r = 0; r < arr->n; r++)
		for (size_t c = 0; c < ncol; c++) {
			const struct json_val *v = json_get(&arr->items[r], first->keys[c]);
			char *s = v ? cell(v) : strdup("-");
			cells[r * ncol + c] = s;
			if (s && strlen(s) > w[c])
				w[c] = strlen(s);
		}
	printf("%s", indent);
	for (size_t c = 0; c < ncol; c++) {
		for (const char *k = first->keys[c]; *k; k++)
			putchar(*k >= 'a' && *k <= 'z' ? *k - 'a' + 'A' : *k == '_' ? ' ' : *k);
		if (c + 1 < ncol)
			printf("%*s", (int)(w[c] - strlen(first->keys[c]) + 2), "");
	}
	putchar('\n');
	for (size_t r = 0; r < arr->n; r++) {
		printf("%s", indent);
		for (size_t c = 0; c < ncol; c++) {
			const char *s = cells[r * ncol + c] ? cells[r * ncol + c] : "?";
			if (c + 1 < ncol)
				printf("%-*s  ", (int)w[c], s);
			else
				printf("%s", s);
		}
		putchar('\n');
	}
	for (size_t i = 0; i < arr->n * ncol; i++)
		free(cells[i]);
	free(cells);
	free(w);
}

static void print_value(const struct json_val *v, int depth);

static void print_object(const struct json_val *o, int depth)
{
	char indent[64];
	size_t kw = 0;
	snprintf(indent, sizeof indent, "%*s", depth * 2, "");
	for (size_t i = 0; i < o->n; i++)
		if (o->items[i].type != JSON_OBJECT && !is_table(&o->items[i]) &&
		    strlen(o->keys[i]) > kw)
			kw = strlen(o->keys[i]);
	for (size_t i = 0; i < o->n; i++) {
		const struct json_val *v = &o->items[i];
		if (v->type == JSON_ARRAY && v->n == 0) {
			printf("%s%-*s  (none)\n", indent, (int)kw + 1, o->keys[i]);
			continue;
		}
		if (v->type == JSON_OBJECT || (is_table(v) && v->n)) {
			printf("%s%s:\n", indent, o->keys[i]);
			print_value(v, depth + 1);
			continue;
		}
		char *c = cell(v);
		printf("%s%-*s  %s\n", indent, (int)kw + 1, o->keys[i], c ? c : "?");
		free(c);
	}
}

static void print_value(const struct json_val *v, int depth)
{
	char indent[64];
	snprintf(indent, sizeof indent, "%*s", depth * 2, "");
	if (v->type == JSON_OBJECT) {
		print_object(v, depth);
	} else if (is_table(v)) {
		print_table(v, indent);
	} else {
		char *c = cell(v);
		printf("%s%s\n", indent, c ? c : "?");
		free(c);
	}
}

int main(int argc, char **argv)
{
	const char *sock = NULL;
	bool as_json = false;
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-s") == 0 && i + 1 < argc) {
			sock = argv[++i];
		} else if (strcmp(argv[i], "--json") == 0) {
			as_json = true;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (i < argc && strcmp(argv[i], "proxy") == 0) {
		if (!sock)
			sock = DEFAULT_PROXY_SOCKET;
		i++;
	} else if (i < argc && strcmp(argv[i], "gateway") == 0) {
		if (!sock)
			sock = DEFAULT_GATEWAY_SOCKET;
		i++;
	}
	/* --json may also follow the daemon's name */
	for (; i < argc && strcmp(argv[i], "--json") == 0; i++)
		as_json = true;
	if (!sock || i >= argc) {
		usage(stderr);
		return 2;
	}
	const char *verb = argv[i];

	char line[CTL_MAX_LINE + 2];
	size_t n = 0;
	for (int k = i; k < argc; k++)
		if (!put_word(line, CTL_MAX_LINE, &n, argv[k])) {
			fprintf(stderr,
				"parleyctl: argument too long or with a control character\n");
			return 2;
		}
	line[n++] = '\n';

	char *reply;
	size_t rlen;
	if (ask(sock, line, n, &reply, &rlen) != 0)
		return 1;
	struct json_val *doc = NULL;
	if (json_parse(reply, rlen, JSON_MAX_DEPTH, 10u << 20, &doc) != 0 ||
	    doc->type != JSON_OBJECT) {
		fprintf(stderr, "parleyctl: the daemon's reply is not a JSON object\n");
		json_val_free(doc);
		free(reply);
		return 1;
	}
	const struct json_val *ok = json_get(doc, "ok");
	bool good = ok && ok->type == JSON_BOOL && ok->b;
	if (as_json) {
		fwrite(reply, 1, rlen, stdout);
		putchar('\n');
	} else if (!good) {
		const struct json_val *e = json_get(doc, "error");
		fprintf(stderr, "parleyctl: %s: %s\n", verb,
			e && e->type == JSON_STRING ? e->text : "failed");
	} else {
		const struct json_val *res = json_get(doc, "result");
		const struct json_val *text = res ? json_get(res, "text") : NULL;
		if (strcmp(verb, "metrics") == 0 && text && text->type == JSON_STRING)
			fwrite(text->text, 1, text->len, stdout);
		else if (res)
			print_value(res, 0);
	}
	json_val_free(doc);
	free(reply);
	return good ? 0 : 1;
}
