/* Where a SIP message goes or came from: transport, address, stream, TLS name. */
#ifndef PARLEY_SIP_HOP_H
#define PARLEY_SIP_HOP_H

#include "sip_msg.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct sip_hop {
	enum sip_proto proto;
	struct sockaddr_storage addr; /* IPv4 or IPv6 address and port */
	uint64_t flow;		      /* stream it arrived on / should use; 0 = any */
	char tls_name[256];	      /* TLS: name the peer certificate must carry (SNI);
					 "" = verify the chain only */
};

/* Fills hop from an address literal and port. Returns 0 or PE_INVAL. */
int sip_hop_set(struct sip_hop *hop, enum sip_proto proto, const char *ip, int port);
/* "UDP 127.0.0.1:5060", "TLS [::1]:5061" into out. Returns out. */
char *sip_hop_str(const struct sip_hop *hop, char *out, size_t cap);
/* The address as text (no port) and the port. */
void sip_hop_ip(const struct sip_hop *hop, char *ip, size_t cap, int *port);
int sip_hop_port(const struct sip_hop *hop);
void sip_hop_set_port(struct sip_hop *hop, int port);
/* Same transport, address and port (flow and TLS name ignored). */
bool sip_hop_same_addr(const struct sip_hop *a, const struct sip_hop *b);
/* Bytes identifying proto + address + port, for hash keys. Returns the length (<= 20). */
size_t sip_hop_key(const struct sip_hop *hop, uint8_t out[20]);

#endif
