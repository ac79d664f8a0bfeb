/* Hop addresses: conversions kept in one place so every layer formats them alike. */
#include "sip_hop.h"

#include "err.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

int sip_hop_set(struct sip_hop *hop, enum sip_proto proto, const char *ip, int port)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)&hop->addr;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&hop->addr;
	memset(hop, 0, sizeof *hop);
	hop->proto = proto;
	if (port <= 0 || port > 65535 || !ip)
		return PE_INVAL;
	if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		return 0;
	}
	if (inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		return 0;
	}
	return PE_INVAL;
}

void sip_hop_ip(const struct sip_hop *hop, char *ip, size_t cap, int *port)
{
	const struct sockaddr_in *a4 = (const struct sockaddr_in *)&hop->addr;
	const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&hop->addr;
	if (cap)
		ip[0] = '\0';
	if (hop->addr.ss_family == AF_INET)
		inet_ntop(AF_INET, &a4->sin_addr, ip, (socklen_t)cap);
	else if (hop->addr.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &a6->sin6_addr, ip, (socklen_t)cap);
	if (port)
		*port = sip_hop_port(hop);
}

int sip_hop_port(const struct sip_hop *hop)
{
	if (hop->addr.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)&hop->addr)->sin_port);
	if (hop->addr.ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)&hop->addr)->sin6_port);
	return 0;
}

void sip_hop_set_port(struct sip_hop *hop, int port)
{
	if (hop->addr.ss_family == AF_INET)
		((struct sockaddr_in *)&hop->addr)->sin_port = htons((uint16_t)port);
	else if (hop->addr.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&hop->addr)->sin6_port = htons((uint16_t)port);
}

char *sip_hop_str(const struct sip_hop *hop, char *out, size_t cap)
{
	char ip[INET6_ADDRSTRLEN];
	int port;
	sip_hop_ip(hop, ip, sizeof ip, &port);
	if (hop->addr.ss_family == AF_INET6)
		snprintf(out, cap, "%s [%s]:%d", sip_proto_name(hop->proto), ip, port);
	else
		snprintf(out, cap, "%s %s:%d", sip_proto_name(hop->proto), ip, port);
	return out;
}

bool sip_hop_same_addr(const struct sip_hop *a, const struct sip_hop *b)
{
	uint8_t ka[20], kb[20];
	size_t na = sip_hop_key(a, ka), nb = sip_hop_key(b, kb);
	return na == nb && memcmp(ka, kb, na) == 0;
}

size_t sip_hop_key(const struct sip_hop *hop, uint8_t out[20])
{
	uint16_t port = (uint16_t)sip_hop_port(hop);
	out[0] = (uint8_t)hop->proto;
	out[1] = (uint8_t)(port >> 8);
	out[2] = (uint8_t)port;
	if (hop->addr.ss_family == AF_INET) {
		memcpy(out + 3, &((const struct sockaddr_in *)&hop->addr)->sin_addr, 4);
		return 7;
	}
	if (hop->addr.ss_family == AF_INET6) {
		memcpy(out + 3, &((const struct sockaddr_in6 *)&hop->addr)->sin6_addr, 16);
		return 19;
	}
	return 3;
}
