/* An intrusive hash table keyed by byte strings: transactions, flows, dialogs, queues. */
#ifndef PARLEY_SIP_MAP_H
#define PARLEY_SIP_MAP_H

#include <stddef.h>
#include <stdint.h>

/* Embedded in the owner; the key bytes belong to the owner and must stay unchanged
 * while the node is in a map. */
struct sip_map_node {
	struct sip_map_node *next;
	uint64_t hash;
	const void *key;
	size_t klen;
};

/* Caller-owned (embeddable). Zero-initialised is an empty map. */
struct sip_map {
	struct sip_map_node **b;
	size_t nb; /* buckets, a power of two, or 0 before the first insert */
	size_t n;  /* entries */
};

#define sip_map_entry(node, type, member) ((type *)((char *)(node)-offsetof(type, member)))

void sip_map_init(struct sip_map *m);
/* Frees the bucket array; nodes are the owners' business. */
void sip_map_deinit(struct sip_map *m);
/* Inserts node under key[0..klen) (duplicates allowed; find returns the newest).
 * Returns 0 or PE_NOMEM (only when growing fails; the insert still happens, into a
 * fuller table, unless no table exists yet). */
int sip_map_insert(struct sip_map *m, struct sip_map_node *node, const void *key, size_t klen);
struct sip_map_node *sip_map_find(const struct sip_map *m, const void *key, size_t klen);
/* Removes a node that is in the map. */
void sip_map_remove(struct sip_map *m, struct sip_map_node *node);
/* Visits every node; fn may remove the node it is given (and no other). */
void sip_map_foreach(struct sip_map *m, void (*fn)(struct sip_map_node *node, void *arg),
		     void *arg);
uint64_t sip_map_hash(const void *key, size_t klen);

#endif
