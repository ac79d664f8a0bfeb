/* Chained hash table with embedded nodes: no allocation per entry, O(1) removal
 * from the owner, doubling when the load passes one. libosip2's transaction lists are
 * scanned linearly, which is why this exists. */
#include "sip_map.h"

#include "err.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* Keys are Call-IDs, tags and branches chosen by peers: the hash is keyed with a secret
 * drawn once per process so that a peer cannot aim many keys at one chain. Eight bytes per
 * step (FNV-1a's byte loop was 2-3 % of the gateway's time per NOTIFY in the presence bench). */
static uint64_t map_seed;

static uint64_t mix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

uint64_t sip_map_hash(const void *key, size_t klen)
{
	if (!map_seed) {
		uint64_t s = 0;
		if (getrandom(&s, sizeof s, GRND_NONBLOCK) != (ssize_t)sizeof s)
			s = (uint64_t)(uintptr_t)&s ^ (uint64_t)time(NULL);
		map_seed = s | 1;
	}
	const unsigned char *p = key;
	uint64_t h = map_seed ^ (klen * 0x9e3779b97f4a7c15ULL);
	for (; klen >= 8; p += 8, klen -= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
		h ^= h >> 29;
	}
	uint64_t w = 0;
	memcpy(&w, p, klen);
	h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
	return mix(h);
}

void sip_map_init(struct sip_map *m)
{
	memset(m, 0, sizeof *m);
}

void sip_map_deinit(struct sip_map *m)
{
	free(m->b);
	memset(m, 0, sizeof *m);
}

static int grow(struct sip_map *m)
{
	size_t nb = m->nb ? m->nb * 2 : 64;
	struct sip_map_node **b = calloc(nb, sizeof *b);
	if (!b)
		return PE_NOMEM;
	for (size_t i = 0; i < m->nb; i++) {
		struct sip_map_node *n = m->b[i];
		while (n) {
			struct sip_map_node *next = n->next;
			size_t j = n->hash & (nb - 1);
			n->next = b[j];
			b[j] = n;
			n = next;
		}
	}
	free(m->b);
	m->b = b;
	m->nb = nb;
	return 0;
}

int sip_map_insert(struct sip_map *m, struct sip_map_node *node, const void *key, size_t klen)
{
	int r = 0;
	if (m->n >= m->nb) {
		r = grow(m);
		if (r && !m->nb)
			return r;
	}
	node->key = key;
	node->klen = klen;
	node->hash = sip_map_hash(key, klen);
	size_t i = node->hash & (m->nb - 1);
	node->next = m->b[i];
	m->b[i] = node;
	m->n++;
	return r;
}

struct sip_map_node *sip_map_find(const struct sip_map *m, const void *key, size_t klen)
{
	if (!m->nb)
		return NULL;
	uint64_t h = sip_map_hash(key, klen);
	for (struct sip_map_node *n = m->b[h & (m->nb - 1)]; n; n = n->next)
		if (n->hash == h && n->klen == klen && memcmp(n->key, key, klen) == 0)
			return n;
	return NULL;
}

void sip_map_remove(struct sip_map *m, struct sip_map_node *node)
{
	struct sip_map_node **pp = &m->b[node->hash & (m->nb - 1)];
	while (*pp && *pp != node)
		pp = &(*pp)->next;
	if (*pp) {
		*pp = node->next;
		node->next = NULL;
		m->n--;
	}
}

void sip_map_foreach(struct sip_map *m, void (*fn)(struct sip_map_node *node, void *arg), void *arg)
{
	for (size_t i = 0; i < m->nb; i++) {
		struct sip_map_node *n = m->b[i];
		while (n) {
			struct sip_map_node *next = n->next;
			fn(n, arg);
			n = next;
		}
	}
}
