/* Chained hash table with embedded nodes: no allocation per entry, O(1) removal
 * from the owner, doubling when the load passes one. libosip2's transaction lists are
 * scanned linearly, which is why this exists. */
#include "sip_map.h"

#include "err.h"

#include <stdlib.h>
#include <string.h>

uint64_t sip_map_hash(const void *key, size_t klen)
{
	/* FNV-1a, then a final mix so the low bits we mask with are well spread. */
	const unsigned char *p = key;
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < klen; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
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
