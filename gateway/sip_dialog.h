/* SIP dialog state (RFC 3261 §12) for SUBSCRIBE/NOTIFY: identifiers, CSeq, route set. */
#ifndef PARLEY_SIP_DIALOG_H
#define PARLEY_SIP_DIALOG_H

#include "sip_msg.h"

#include <stdbool.h>
#include <stdint.h>

#define SIP_DIALOG_MAX_ROUTES 16

/* Caller-owned; strings are owned by the dialog (sip_dialog_deinit frees them). */
struct sip_dialog {
	char *call_id;
	char *local_tag;
	char *remote_tag;    /* NULL until known (a NOTIFY may come before the 2xx) */
	char *local_uri;     /* our From in requests we send */
	char *remote_uri;    /* their address, our To */
	char *remote_target; /* their Contact URI: Request-URI of our requests */
	/* Private to sip_dialog: the last Contact header text a target refresh saw
	 * (sip_msg_contact_text) and the URI it gives, in one allocation, so a refresh with
	 * the same text needs no osip URI serialisation. NULL = none. */
	char *contact_text;
	size_t contact_text_len;
	const char *contact_uri;	    /* NUL-terminated, inside the contact_text allocation */
	char *route[SIP_DIALOG_MAX_ROUTES]; /* route set, in the order we send it */
	int nroute;
	uint32_t local_cseq;  /* last CSeq we used */
	uint32_t remote_cseq; /* last CSeq seen from them; 0 = none yet */
	bool secure;	      /* sips Request-URI or TLS throughout */
};

/* UAC side: our request (SUBSCRIBE) and the message that established the dialog — its
 * 2xx response, or a NOTIFY that came first (RFC 6665 §4.1.2.4). The route set is the
 * Record-Route of that message, reversed for a response, as-is for a request; the
 * remote target is its Contact. Returns 0, PE_PROTO (missing Contact, To tag or From
 * tag), PE_NOMEM. */
int sip_dialog_init_uac(struct sip_dialog *d, struct sip_msg *req, struct sip_msg *est);
/* UAS side: a received request (SUBSCRIBE) and the To tag we answer with; the route
 * set is its Record-Route in order, the remote target its Contact. local_cseq starts
 * at cseq_start. Returns as sip_dialog_init_uac. */
int sip_dialog_init_uas(struct sip_dialog *d, struct sip_msg *req, const char *local_tag,
			uint32_t cseq_start);
void sip_dialog_deinit(struct sip_dialog *d);

/* UAC side built before the request goes out (so an early NOTIFY can be matched): the
 * caller has set call_id, local_tag, local_uri, remote_uri and local_cseq. This completes
 * it from the establishing message (a 2xx or a NOTIFY), as sip_dialog_init_uac would:
 * remote tag, remote target, route set. A dialog already established is left alone.
 * Returns 0, PE_PROTO (no Contact or tag), PE_NOMEM. */
int sip_dialog_establish_uac(struct sip_dialog *d, struct sip_msg *est);

/* Key for hash maps: "call-id\nlocal-tag", written into out. Returns its length or
 * PE_TOOBIG. From a dialog, or from a received in-dialog request (whose To tag is our
 * local tag), or from a received response to our request (whose From tag is ours). */
int sip_dialog_key(const struct sip_dialog *d, char *out, size_t cap);
int sip_dialog_key_of_request(struct sip_msg *req, char *out, size_t cap);
int sip_dialog_key_of_response(struct sip_msg *resp, char *out, size_t cap);

/* True if the received request belongs to d: same Call-ID, To tag = local tag, and
 * From tag = remote tag (or the remote tag is not known yet). */
bool sip_dialog_matches(const struct sip_dialog *d, struct sip_msg *req);
/* Updates the remote CSeq from a received in-dialog request. Returns 0, or PE_STATE
 * for a CSeq lower than or equal to the last one (answer 500, RFC 3261 §12.2.2). Also
 * learns the remote tag if unknown, and a changed Contact as the new remote target. */
int sip_dialog_on_request(struct sip_dialog *d, struct sip_msg *req);
/* Learns the remote tag (and target refresh) from a response to an in-dialog request
 * or the establishing 2xx arriving after a NOTIFY. */
int sip_dialog_on_response(struct sip_dialog *d, struct sip_msg *resp);

/* A new in-dialog request: Request-URI = remote target (or, if the first route is a
 * strict router without ";lr", that route, with the remote target appended as the
 * last Route), Route = the route set, From/To with our/their tag, Call-ID, CSeq =
 * ++local_cseq. NULL on allocation failure or a malformed stored URI. */
struct sip_msg *sip_dialog_new_request(struct sip_dialog *d, const char *method);

/* The URI the next hop is found from (RFC 3261 §8.1.2): the first route's URI if there
 * is a route set, else the remote target. Copied into out (cap bytes). Returns 0 or
 * PE_TOOBIG/PE_PROTO. */
int sip_dialog_next_hop(const struct sip_dialog *d, char *out, size_t cap);

#endif
