/* libFuzzer target for the resolver's own parsing: server specs, name checks, SRV ordering.
 * The first byte picks the function; each asserts its invariants, not just "no crash". */
#include "resolver.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c))                                                                          \
			abort();                                                                   \
	} while (0)

static void fuzz_server(const uint8_t *d, size_t n)
{
	char *s = malloc(n ? n : 1); /* exact size: ASan catches reads past len */
	CHECK(s);
	memcpy(s, d, n);
	struct resolver_server a, b;
	if (resolver__parse_server(s, n, &a) == 0) {
		char out[64], again[64];
		CHECK(a.family == AF_INET || a.family == AF_INET6);
		CHECK(a.port >= 1);
		CHECK(memchr(s, '\0', n) == NULL);
		int len = resolver__format_server(&a, out, sizeof out);
		CHECK(len > 0 && (size_t)len < sizeof out);
		/* The canonical form parses to the same server and formats to itself. */
		CHECK(resolver__parse_server(out, (size_t)len, &b) == 0);
		CHECK(a.family == b.family && a.port == b.port);
		CHECK(memcmp(&a.addr, &b.addr, a.family == AF_INET ? 4 : 16) == 0);
		CHECK(resolver__format_server(&b, again, sizeof again) == len);
		CHECK(strcmp(out, again) == 0);
	}
	free(s);
}

static void fuzz_name(const uint8_t *d, size_t n)
{
	char *s = malloc(n + 1);
	CHECK(s);
	memcpy(s, d, n);
	s[n] = '\0';
	if (resolver__name_ok(s)) {
		size_t len = strlen(s), label = 0;
		if (s[len - 1] == '.')
			len--;
		CHECK(len >= 1 && len <= 253);
		CHECK(s[0] != '.');
		for (size_t i = 0; i < len; i++) {
			unsigned char c = (unsigned char)s[i];
			if (c == '.') {
				CHECK(label > 0);
				label = 0;
				continue;
			}
			CHECK((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			      (c >= '0' && c <= '9') || c == '-' || c == '_');
			label++;
			CHECK(label <= 63);
		}
		CHECK(label > 0);
	}
	free(s);
}

struct rnd_src {
	const uint8_t *d;
	size_t n, i;
	uint64_t max_bound;
};

static uint32_t rnd_fuzz(void *ctx, uint32_t bound)
{
	struct rnd_src *r = ctx;
	CHECK(bound <= r->max_bound);
	uint32_t v = 0;
	for (int k = 0; k < 4; k++)
		v = v << 8 | (r->i < r->n ? r->d[r->i++] : 0);
	/* Mostly in range; the top bit lets a misbehaving source through to the clamp. */
	if (v & 0x80000000u)
		return v;
	return bound == UINT32_MAX ? v : v % (bound + 1);
}

static void fuzz_srv(const uint8_t *d, size_t n)
{
	if (n < 1)
		return;
	size_t count = d[0] % 65;
	d++;
	n--;
	if (n < count * 3)
		count = n / 3;
	struct resolver_srv *v = calloc(count ? count : 1, sizeof *v);
	uint32_t *seen = calloc(count ? count : 1, sizeof *seen);
	CHECK(v && seen);
	uint64_t wsum = 0;
	for (size_t i = 0; i < count; i++) {
		v[i].priority = d[3 * i] % 4;
		v[i].weight = (uint16_t)(d[3 * i + 1] << 8 | d[3 * i + 2]);
		v[i].port = (uint16_t)i; /* identity */
		v[i].target = (char *)"t";
		wsum += v[i].weight;
	}
	struct rnd_src r = {d + count * 3, n - count * 3, 0, wsum};
	CHECK(resolver__srv_order(v, count, rnd_fuzz, &r) == 0);
	for (size_t i = 0; i < count; i++) {
		CHECK(v[i].port < count);
		CHECK(seen[v[i].port]++ == 0); /* a permutation */
		/* Each record kept its own fields (derived from the input by its index). */
		size_t o = v[i].port;
		CHECK(v[i].priority == d[3 * o] % 4);
		CHECK(v[i].weight == (uint16_t)(d[3 * o + 1] << 8 | d[3 * o + 2]));
		if (i)
			CHECK(v[i - 1].priority <= v[i].priority);
	}
	free(v);
	free(seen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0:
		fuzz_server(data + 1, size - 1);
		break;
	case 1:
		fuzz_name(data + 1, size - 1);
		break;
	case 2:
		fuzz_srv(data + 1, size - 1);
		break;
	}
	return 0;
}
