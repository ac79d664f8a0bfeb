/* The control server: a Unix stream socket (mode 0660: owner and group only) over which
 * parleyctl asks a daemon for its status and tells it to reload or drain. Modules register
 * commands; each answers with one JSON value.
 *
 * Protocol (one request per line, any number of requests per connection, answered in order):
 *   request  = VERB *(SP ARG) LF        at most CTL_MAX_LINE bytes before the LF
 *   VERB     = 1*32 of [a-z0-9_-]
 *   ARG      = 1*(any printable ASCII but SP, '"', '\') | '"' *(char | '\"' | '\\') '"'
 * Spaces and tabs separate words; a quoted ARG may hold spaces and UTF-8; a CR before the LF
 * is ignored; control characters are refused. At most CTL_MAX_ARGS args.
 *   reply    = one JSON object on one line, then LF:
 *     {"ok":true,"cmd":"VERB","result":VALUE}
 *     {"ok":false,"cmd":"VERB","error":"TEXT"}     ("cmd" is null if the line did not parse)
 * The built-in verb "help" lists the registered verbs with their help text. A request line
 * longer than CTL_MAX_LINE gets an error reply and the connection is closed. */
#ifndef PARLEY_CTL_H
#define PARLEY_CTL_H

#include "conf.h"
#include "json.h"

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#define CTL_MAX_LINE 4096
#define CTL_MAX_ARGS 16
#define CTL_MAX_VERB 32
/* Largest reply (a metrics scrape of a busy daemon fits easily). */
#define CTL_MAX_REPLY (8u << 20)
/* Connections served at once; more are accepted and closed at once. */
#define CTL_MAX_CLIENTS 16

/* One parsed request. verb and argv point into storage. */
struct ctl_req {
	const char *verb;
	size_t argc;
	const char *argv[CTL_MAX_ARGS];
	char storage[CTL_MAX_LINE + 1];
};

/* Parses one request line (without its LF; a trailing CR is dropped) into req.
 * Returns 0, PE_INVAL with a reason in why (empty line, bad verb, unterminated quote, bad
 * escape, control character, text glued to a closing quote), or PE_TOOBIG (line longer than
 * CTL_MAX_LINE, more than CTL_MAX_ARGS args). Pure: no allocation, no I/O. */
int ctl_parse_line(const char *line, size_t len, struct ctl_req *req, char *why, size_t whylen);

/* A command handler. Writes exactly one JSON value (usually an object or an array) into j
 * and returns 0; or returns a negative error with a message for the operator in err (what
 * it wrote into j is discarded). It runs on the loop thread inside the socket's read
 * callback; it may call ctl_stop (the reply is still sent). */
typedef int (*ctl_handler)(void *arg, const struct ctl_req *req, struct json *j, char *err,
			   size_t errlen);

struct ctl;

/* An empty registry with the built-in "help". Allocation failure aborts. */
struct ctl *ctl_new(void);
/* Adds verb (copied; must satisfy the VERB rule) with one line of help (copied). A verb
 * registered again replaces the earlier handler. Returns 0 or PE_INVAL. */
int ctl_register(struct ctl *c, const char *verb, const char *help, ctl_handler fn, void *arg);

/* Runs one request line through the registry and appends the whole reply, LF included, to
 * out (whose max bounds it; a reply too big for it becomes an error reply). Returns 0, or a
 * buf error if not even the error reply fits. No I/O: this is what the socket side calls
 * and what unit tests drive. */
int ctl_dispatch(struct ctl *c, const char *line, size_t len, struct buf *out);

/* Binds the socket at path (absolute, shorter than sun_path) with mode 0660, replacing a
 * stale socket file nobody answers on (a live one is PE_STATE: another daemon uses it), and
 * starts accepting. Returns 0, or an error with a reason in err. */
int ctl_listen(struct ctl *c, uv_loop_t *loop, const char *path, char *err, size_t errlen);
/* Stops accepting, removes the socket file, and closes each connection once its pending
 * replies are written. Safe to call from a handler, twice, or without ctl_listen. */
void ctl_stop(struct ctl *c);
/* After the loop has run the close callbacks of ctl_stop (or daemon_close_all). NULL is a
 * no-op. */
void ctl_free(struct ctl *c);

/* The [control] settings both daemons read. Empty strings disable a part. */
struct ctl_conf {
	char *socket;  /* absolute path of the control socket */
	char *metrics; /* host:port of the HTTP metrics endpoint */
};

/* clang-format off */
#define CTL_CONF_OPTIONS(T, m, sock_def, metrics_def)                                              \
	{"control", "socket", CONF_STRING, 0, 107, sock_def, offsetof(T, m.socket), false, false,  \
	 NULL, "control socket for parleyctl (mode 0660); empty disables it"},                     \
	{"control", "metrics", CONF_STRING, 0, 300, metrics_def, offsetof(T, m.metrics), false,    \
	 false, NULL, "host:port serving GET /metrics (Prometheus text); empty disables it"}
/* clang-format on */

/* Checks the values conf_load accepted: socket empty or absolute, metrics empty or
 * host:port / [v6]:port with a numeric address. Returns 0 or PE_CONFIG with a message. */
int ctl_conf_check(const struct ctl_conf *cc, char *err, size_t errlen);

/* Splits "host:port" or "[v6]:port" into host (NUL-terminated, without brackets) and port.
 * Returns 0 or PE_INVAL. */
int ctl_split_hostport(const char *s, char *host, size_t hostcap, uint16_t *port);

#endif
