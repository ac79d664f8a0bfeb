/* The sink writes a batch to its file before marking the batch processed: a frame is
 * acknowledged to the edge only once it is on record, which is the rule the real translator
 * follows with SIP final responses. */
#include "testsink.h"

#include "buf.h"
#include "log.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

struct pending {
	struct link_peer *peer;
	uint64_t epoch; /* a failed write keeps these across reads, maybe across epochs */
	uint64_t seq;
};

struct testsink {
	int fd;
	uint64_t expect;
	uint64_t seen;
	uint64_t first_us;
	struct buf out;
	struct pending *pend;
	size_t npend, cap;
};

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

struct testsink *testsink_new(const char *path, uint64_t expect)
{
	struct testsink *t = calloc(1, sizeof *t);
	if (!t)
		abort();
	t->fd = -1;
	if (path && *path) {
		t->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (t->fd < 0) {
			log_error(0, "sink_open", "path=%s", path);
			free(t);
			return NULL;
		}
	}
	t->expect = expect;
	buf_init(&t->out, 0);
	return t;
}

void testsink_free(struct testsink *t)
{
	if (!t)
		return;
	if (t->fd >= 0)
		close(t->fd);
	buf_deinit(&t->out);
	free(t->pend);
	free(t);
}

void testsink_frame(void *arg, struct link_peer *peer, uint64_t seq, const Parley__Link__Frame *f)
{
	struct testsink *t = arg;
	if (f->body_case == PARLEY__LINK__FRAME__BODY_STANZA) {
		/* "ref<TAB>from<TAB>to<TAB>body" with TAB/LF/CR/backslash escaped */
		char line[32];
		int n = snprintf(line, sizeof line, "%llu", (unsigned long long)f->stanza->ref);
		if (t->fd >= 0) {
			buf_append(&t->out, line, (size_t)n);
			const char *fields[] = {f->stanza->from, f->stanza->to, f->stanza->body};
			for (size_t i = 0; i < 3; i++) {
				buf_append(&t->out, "\t", 1);
				for (const char *c = fields[i] ? fields[i] : ""; *c; c++) {
					const char *e = *c == '\t' ? "\\t" : *c == '\n' ? "\\n"
						      : *c == '\r' ? "\\r" : *c == '\\' ? "\\\\" : NULL;
					buf_append(&t->out, e ? e : c, e ? 2 : 1);
				}
			}
			buf_append(&t->out, "\n", 1);
		}
		if (t->seen++ == 0)
			t->first_us = now_us();
	}
	if (t->npend == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 1024;
		t->pend = realloc(t->pend, t->cap * sizeof *t->pend);
		if (!t->pend)
			abort();
	}
	t->pend[t->npend++] = (struct pending){peer, peer->in.peer_epoch, seq};
}

void testsink_batch_end(void *arg)
{
	struct testsink *t = arg;
	while (t->fd >= 0 && buf_len(&t->out)) {
		ssize_t w = write(t->fd, buf_head(&t->out), buf_len(&t->out));
		if (w <= 0) {
			log_error(0, "sink_write", "pending=%zu", buf_len(&t->out));
			return; /* nothing acknowledged: the edge will resend */
		}
		buf_consume(&t->out, (size_t)w);
	}
	for (size_t i = 0; i < t->npend; i++)
		link_peer_processed_in(t->pend[i].peer, t->pend[i].epoch, t->pend[i].seq);
	t->npend = 0;
	if (t->expect && t->seen >= t->expect) {
		uint64_t us = now_us() - t->first_us;
		log_info(0, "sink_done", "frames=%llu elapsed_us=%llu rate=%.0f",
			 (unsigned long long)t->seen, (unsigned long long)us,
			 us ? (double)t->seen * 1e6 / (double)us : 0.0);
		t->expect = 0;
	}
}
