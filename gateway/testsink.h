/* Test-only consumer of link stanzas: records each stanza's ref in a file, in arrival order,
 * before acknowledging it, so a test can prove exactly-once and in-order delivery across
 * link cuts and crashes. Enabled by [test] sink_file / sink_expect in the gateway config. */
#ifndef PARLEY_GATEWAY_TESTSINK_H
#define PARLEY_GATEWAY_TESTSINK_H

#include "link.h"

#include <stdint.h>

struct testsink;

/* path may be NULL (count only). expect > 0 logs sink_done when that many were seen. */
struct testsink *testsink_new(const char *path, uint64_t expect);
void testsink_free(struct testsink *t);
void testsink_frame(void *arg, struct link_peer *peer, uint64_t seq, const Parley__Link__Frame *f);
/* Writes what the batch recorded, then acknowledges it. */
void testsink_batch_end(void *arg);

#endif
