/* Control server. The socket's mode is set by us (umask around bind, then chmod) because
 * uv_pipe_chmod can only widen access: the socket must be usable by the daemon's owner and
 * group, nobody else, since drain and reload stop or change service. Requests are parsed by a
 * pure function and dispatched by ctl_dispatch, so the protocol is tested without sockets. */
#include "ctl.h"

#include "buf.h"
#include "err.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

struct ctl__cmd {
	char verb[CTL_MAX_VERB + 1];
	char *help;
	ctl_handler fn;
	void *arg;
};

struct ctl__client {
	struct ctl__client *next;
	struct ctl *ctl;
	uv_pipe_t pipe;
	struct buf in;
	unsigned writes;  /* replies queued and not yet written */
	bool dispatching; /* inside on_read: ctl_stop leaves this one to on_read */
	bool finishing;	  /* close once writes reach 0 */
	bool closing;
};

struct ctl__write {
	uv_write_t w;
	struct ctl__client *cl;
	struct buf b;
};

struct ctl {
	struct ctl__cmd *cmds;
	size_t ncmds, capcmds;
	uv_loop_t *loop;
	uv_pipe_t srv;
	bool listening;
	bool srv_closing;
	bool stopping;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct ctl__client *clients;
	size_t nclients;
	uint64_t next_id;
};

/* ---- request parser ---- */

static bool ctl__verb_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static bool ctl__valid_verb(const char *v)
{
	size_t n = strlen(v);
	if (n == 0 || n > CTL_MAX_VERB)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!ctl__verb_char(v[i]))
			return false;
	return true;
}

static int ctl__why(char *why, size_t whylen, int rc, const char *msg)
{
	if (why && whylen)
		snprintf(why, whylen, "%s", msg);
	return rc;
}

int ctl_parse_line(const char *line, size_t len, struct ctl_req *req, char *why, size_t whylen)
{
	if (len && line[len - 1] == '\r')
		len--;
	if (len > CTL_MAX_LINE)
		return ctl__why(why, whylen, PE_TOOBIG, "request line too long");
	req->verb = NULL;
	req->argc = 0;
	char *d = req->storage;
	size_t i = 0, words = 0;
	for (;;) {
		while (i < len && (line[i] == ' ' || line[i] == '\t'))
			i++;
		if (i == len)
			break;
		if (words == CTL_MAX_ARGS + 1)
			return ctl__why(why, whylen, PE_TOOBIG, "too many arguments");
		char *w = d;
		if (line[i] == '"') {
			i++;
			for (;;) {
				if (i == len)
					return ctl__why(why, whylen, PE_INVAL,
							"unterminated quote");
				unsigned char c = (unsigned char)line[i];
				if (c == '"')
					break;
				if (c < 0x20 || c == 0x7f)
					return ctl__why(why, whylen, PE_INVAL, "control character");
				if (c == '\\') {
					if (i + 1 == len ||
					    (line[i + 1] != '"' && line[i + 1] != '\\'))
						return ctl__why(why, whylen, PE_INVAL,
								"bad escape in quotes");
					i++;
				}
				*d++ = line[i++];
			}
			i++;
			if (i < len && line[i] != ' ' && line[i] != '\t')
				return ctl__why(why, whylen, PE_INVAL, "text after closing quote");
		} else {
			while (i < len && line[i] != ' ' && line[i] != '\t') {
				unsigned char c = (unsigned char)line[i];
				if (c < 0x20 || c >= 0x7f)
					return ctl__why(
					    why, whylen, PE_INVAL,
					    "control or non-ASCII character (quote it)");
				if (c == '"' || c == '\\')
					return ctl__why(why, whylen, PE_INVAL,
							"quote or backslash inside a word");
				*d++ = line[i++];
			}
		}
		*d++ = 0; /* storage holds len + 1 >= every word plus its NUL */
		if (words == 0)
			req->verb = w;
		else
			req->argv[req->argc++] = w;
		words++;
	}
	if (!req->verb)
		return ctl__why(why, whylen, PE_INVAL, "empty request");
	if (!ctl__valid_verb(req->verb))
		return ctl__why(why, whylen, PE_INVAL,
				"bad verb: use lower-case letters, digits, - or _");
	return 0;
}

/* ---- registry and dispatch ---- */

static int ctl__help(void *arg, const struct ctl_req *req, struct json *j, char *err, size_t errlen)
{
	struct ctl *c = arg;
	(void)req, (void)err, (void)errlen;
	json_arr_begin(j);
	for (size_t i = 0; i < c->ncmds; i++) {
		json_obj_begin(j);
		json_kv_str(j, "verb", c->cmds[i].verb);
		json_kv_str(j, "help", c->cmds[i].help);
		json_obj_end(j);
	}
	json_arr_end(j);
	return 0;
}

static void *ctl__xalloc(void *p)
{
	if (!p) {
		fputs("parley: out of memory in control registry\n", stderr);
		abort();
	}
	return p;
}

struct ctl *ctl_new(void)
{
	struct ctl *c = ctl__xalloc(calloc(1, sizeof *c));
	ctl_register(c, "help", "list the commands", ctl__help, c);
	return c;
}

int ctl_register(struct ctl *c, const char *verb, const char *help, ctl_handler fn, void *arg)
{
	if (!verb || !fn || !ctl__valid_verb(verb))
		return PE_INVAL;
	struct ctl__cmd *cmd = NULL;
	for (size_t i = 0; i < c->ncmds; i++)
		if (strcmp(c->cmds[i].verb, verb) == 0)
			cmd = &c->cmds[i];
	if (!cmd) {
		if (c->ncmds == c->capcmds) {
			c->capcmds = c->capcmds ? c->capcmds * 2 : 16;
			c->cmds = ctl__xalloc(realloc(c->cmds, c->capcmds * sizeof *c->cmds));
		}
		cmd = &c->cmds[c->ncmds++];
		memset(cmd, 0, sizeof *cmd);
		snprintf(cmd->verb, sizeof cmd->verb, "%s", verb);
	}
	free(cmd->help);
	cmd->help = ctl__xalloc(strdup(help ? help : ""));
	cmd->fn = fn;
	cmd->arg = arg;
	return 0;
}

static int ctl__error_reply(struct buf *out, const char *verb, const char *msg)
{
	struct json j;
	json_init(&j, out);
	json_obj_begin(&j);
	json_kv_bool(&j, "ok", false);
	json_kv_str(&j, "cmd", verb);
	json_kv_str(&j, "error", msg);
	json_obj_end(&j);
	int rc = json_finish(&j);
	return rc ? rc : buf_append(out, "\n", 1);
}

int ctl_dispatch(struct ctl *c, const char *line, size_t len, struct buf *out)
{
	struct ctl_req *req = malloc(sizeof *req);
	char err[512] = "";
	size_t mark = buf_len(out);
	int rc;

	if (!req)
		return PE_NOMEM;
	if (ctl_parse_line(line, len, req, err, sizeof err) != 0) {
		rc = ctl__error_reply(out, NULL, err);
		goto done;
	}
	const struct ctl__cmd *cmd = NULL;
	for (size_t i = 0; i < c->ncmds; i++)
		if (strcmp(c->cmds[i].verb, req->verb) == 0)
			cmd = &c->cmds[i];
	if (!cmd) {
		snprintf(err, sizeof err, "unknown command \"%s\" (try: help)", req->verb);
		rc = ctl__error_reply(out, req->verb, err);
		goto done;
	}
	struct buf res;
	struct json j;
	buf_init(&res, CTL_MAX_REPLY);
	json_init(&j, &res);
	rc = cmd->fn(cmd->arg, req, &j, err, sizeof err);
	if (rc == 0)
		rc = json_finish(&j);
	if (rc != 0) {
		if (!err[0])
			snprintf(err, sizeof err, "%s", pe_strerror(rc));
		buf_deinit(&res);
		rc = ctl__error_reply(out, req->verb, err);
		goto done;
	}
	struct json h;
	json_init(&h, out);
	json_obj_begin(&h);
	json_kv_bool(&h, "ok", true);
	json_kv_str(&h, "cmd", req->verb);
	json_key(&h, "result");
	/* The result is complete JSON already: splice it in, then close the envelope. */
	rc = h.err ? h.err : buf_append(out, buf_head(&res), buf_len(&res));
	if (!rc)
		rc = buf_append(out, "}\n", 2);
	buf_deinit(&res);
	if (rc) {
		/* Too big for out: drop the partial text and say so. */
		out->len = mark;
		snprintf(err, sizeof err, "reply too large");
		rc = ctl__error_reply(out, req->verb, err);
	}
done:
	free(req);
	return rc;
}

/* ---- socket side ---- */

static void ctl__client_finish(struct ctl__client *cl);

static void ctl__on_client_closed(uv_handle_t *h)
{
	struct ctl__client *cl = h->data;
	struct ctl *c = cl->ctl;
	for (struct ctl__client **pp = &c->clients; *pp; pp = &(*pp)->next)
		if (*pp == cl) {
			*pp = cl->next;
			break;
		}
	c->nclients--;
	buf_deinit(&cl->in);
	free(cl);
}

static void ctl__client_close(struct ctl__client *cl)
{
	/* Someone else (daemon_close_all) may have closed the handle already: then ctl_free
	 * releases the client. */
	if (cl->closing || uv_is_closing((uv_handle_t *)&cl->pipe))
		return;
	cl->closing = true;
	uv_close((uv_handle_t *)&cl->pipe, ctl__on_client_closed);
}

static void ctl__client_finish(struct ctl__client *cl)
{
	if (cl->closing || uv_is_closing((uv_handle_t *)&cl->pipe))
		return;
	uv_read_stop((uv_stream_t *)&cl->pipe);
	cl->finishing = true;
	if (cl->writes == 0)
		ctl__client_close(cl);
}

static void ctl__on_written(uv_write_t *w, int status)
{
	struct ctl__write *wr = (struct ctl__write *)w;
	struct ctl__client *cl = wr->cl;
	buf_deinit(&wr->b);
	free(wr);
	cl->writes--;
	if (status < 0 && status != UV_ECANCELED)
		log_debug(0, "ctl_write", "err=\"%s\"", uv_strerror(status));
	if (status < 0)
		ctl__client_finish(cl);
	else if (cl->finishing && cl->writes == 0)
		ctl__client_close(cl);
}

/* Takes ownership of b. */
static void ctl__send(struct ctl__client *cl, struct buf *b)
{
	struct ctl__write *wr = malloc(sizeof *wr);
	if (!wr) {
		buf_deinit(b);
		ctl__client_finish(cl);
		return;
	}
	wr->cl = cl;
	wr->b = *b;
	uv_buf_t ub = uv_buf_init((char *)buf_head(&wr->b), (unsigned)buf_len(&wr->b));
	int rc = uv_write(&wr->w, (uv_stream_t *)&cl->pipe, &ub, 1, ctl__on_written);
	if (rc) {
		buf_deinit(&wr->b);
		free(wr);
		ctl__client_finish(cl);
		return;
	}
	cl->writes++;
}

static void ctl__on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *ub)
{
	struct ctl__client *cl = h->data;
	uint8_t *p;
	(void)hint;
	/* One byte past the line bound is enough to see that a line is too long. */
	size_t room = CTL_MAX_LINE + 2 - buf_len(&cl->in);
	if (room > 4096)
		room = 4096;
	if (room == 0 || buf_reserve(&cl->in, room, &p) != 0) {
		*ub = uv_buf_init(NULL, 0);
		return;
	}
	*ub = uv_buf_init((char *)p, (unsigned)room);
}

static void ctl__on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *ub)
{
	struct ctl__client *cl = s->data;
	struct ctl *c = cl->ctl;
	(void)ub;
	if (n < 0) {
		ctl__client_finish(cl);
		return;
	}
	if (n == 0) {
		if (ub->base == NULL) /* our alloc refused: the buffer is full */
			ctl__client_finish(cl);
		return;
	}
	buf_commit(&cl->in, (size_t)n);
	cl->dispatching = true;
	while (!cl->finishing) {
		const uint8_t *head = buf_head(&cl->in);
		size_t len = buf_len(&cl->in);
		const uint8_t *lf = len ? memchr(head, '\n', len) : NULL;
		struct buf reply;
		buf_init(&reply, CTL_MAX_REPLY + 1024);
		if (!lf) {
			if (len > CTL_MAX_LINE + 1) {
				log_warn(0, "ctl_refused", "reason=\"request line too long\"");
				ctl__error_reply(&reply, NULL, "request line too long");
				ctl__send(cl, &reply);
				ctl__client_finish(cl);
			} else {
				buf_deinit(&reply);
			}
			break;
		}
		size_t ll = (size_t)(lf - head);
		ctl_dispatch(c, (const char *)head, ll, &reply);
		buf_consume(&cl->in, ll + 1);
		ctl__send(cl, &reply);
	}
	cl->dispatching = false;
	if (c->stopping)
		ctl__client_finish(cl);
}

static void ctl__on_connection(uv_stream_t *srv, int status)
{
	struct ctl *c = srv->data;
	if (status < 0 || c->stopping)
		return;
	struct ctl__client *cl = calloc(1, sizeof *cl);
	if (!cl)
		return;
	cl->ctl = c;
	buf_init(&cl->in, CTL_MAX_LINE + 2);
	uv_pipe_init(c->loop, &cl->pipe, 0);
	cl->pipe.data = cl;
	cl->next = c->clients;
	c->clients = cl;
	c->nclients++;
	if (uv_accept(srv, (uv_stream_t *)&cl->pipe) != 0) {
		ctl__client_close(cl);
		return;
	}
	if (c->nclients > CTL_MAX_CLIENTS) {
		log_warn(0, "ctl_refused", "reason=\"too many control connections\" max=%d",
			 CTL_MAX_CLIENTS);
		ctl__client_close(cl);
		return;
	}
	uv_read_start((uv_stream_t *)&cl->pipe, ctl__on_alloc, ctl__on_read);
}

/* An existing socket file with nobody listening is left over from a crash; one that
 * answers belongs to a running daemon, which must not lose it. */
static int ctl__clear_stale(const char *path, char *err, size_t errlen)
{
	struct stat st;
	if (lstat(path, &st) != 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return PE_CONFIG;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket", path);
		return PE_CONFIG;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return PE_CONFIG;
	}
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	int r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
	close(fd);
	if (r == 0) {
		snprintf(err, errlen, "%s is in use by a running process", path);
		return PE_STATE;
	}
	if (unlink(path) != 0 && errno != ENOENT) {
		snprintf(err, errlen, "unlink %s: %s", path, strerror(errno));
		return PE_CONFIG;
	}
	return 0;
}

int ctl_listen(struct ctl *c, uv_loop_t *loop, const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = -1, rc;

	if (c->listening) {
		snprintf(err, errlen, "already listening");
		return PE_STATE;
	}
	if (!path || path[0] != '/' || strlen(path) >= sizeof sa.sun_path) {
		snprintf(err, errlen, "socket path must be absolute and under %zu bytes",
			 sizeof sa.sun_path);
		return PE_CONFIG;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if ((rc = ctl__clear_stale(path, err, errlen)) != 0)
		return rc;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return PE_CONFIG;
	}
	/* The umask closes the window between bind and chmod in which the socket would carry
	 * the process's default mode. */
	mode_t old = umask(0117);
	int br = bind(fd, (struct sockaddr *)&sa, sizeof sa);
	int berr = errno;
	umask(old);
	if (br != 0) {
		snprintf(err, errlen, "bind %s: %s", path, strerror(berr));
		close(fd);
		return PE_CONFIG;
	}
	if (chmod(path, 0660) != 0 || listen(fd, 16) != 0) {
		snprintf(err, errlen, "chmod/listen %s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return PE_CONFIG;
	}
	c->loop = loop;
	uv_pipe_init(loop, &c->srv, 0);
	c->srv.data = c;
	if ((rc = uv_pipe_open(&c->srv, fd)) != 0 ||
	    (rc = uv_listen((uv_stream_t *)&c->srv, 16, ctl__on_connection)) != 0) {
		snprintf(err, errlen, "listen %s: %s", path, uv_strerror(rc));
		uv_close((uv_handle_t *)&c->srv, NULL); /* closes fd */
		c->srv_closing = true;
		unlink(path);
		return rc;
	}
	snprintf(c->path, sizeof c->path, "%s", path);
	c->listening = true;
	log_info(0, "ctl_listen", "path=%s mode=0660", path);
	return 0;
}

void ctl_stop(struct ctl *c)
{
	if (!c || c->stopping)
		return;
	c->stopping = true;
	if (c->listening) {
		c->listening = false;
		if (!uv_is_closing((uv_handle_t *)&c->srv))
			uv_close((uv_handle_t *)&c->srv, NULL);
		c->srv_closing = true;
		unlink(c->path);
	}
	for (struct ctl__client *cl = c->clients, *next; cl; cl = next) {
		next = cl->next; /* finish may close; the close callback runs later */
		if (!cl->dispatching)
			ctl__client_finish(cl);
	}
}

void ctl_free(struct ctl *c)
{
	if (!c)
		return;
	/* Clients whose handles someone else closed (daemon_close_all) never saw our close
	 * callback: their memory is ours to release now that the loop is done with them. */
	while (c->clients) {
		struct ctl__client *cl = c->clients;
		c->clients = cl->next;
		buf_deinit(&cl->in);
		free(cl);
	}
	if (c->listening)
		unlink(c->path);
	for (size_t i = 0; i < c->ncmds; i++)
		free(c->cmds[i].help);
	free(c->cmds);
	free(c);
}

/* ---- configuration ---- */

int ctl_split_hostport(const char *s, char *host, size_t hostcap, uint16_t *port)
{
	const char *h = s, *colon;
	size_t hl;
	if (!s || !*s)
		return PE_INVAL;
	if (*s == '[') {
		const char *end = strchr(s, ']');
		if (!end || end[1] != ':')
			return PE_INVAL;
		h = s + 1;
		hl = (size_t)(end - h);
		colon = end + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || memchr(s, ':', (size_t)(colon - s)))
			return PE_INVAL;
		hl = (size_t)(colon - s);
	}
	char *endp;
	if (!colon[1] || colon[1] == '-' || colon[1] == '+')
		return PE_INVAL;
	unsigned long p = strtoul(colon + 1, &endp, 10);
	if (*endp || p > 65535 || hl == 0 || hl >= hostcap)
		return PE_INVAL;
	memcpy(host, h, hl);
	host[hl] = 0;
	*port = (uint16_t)p;
	return 0;
}

int ctl_conf_check(const struct ctl_conf *cc, char *err, size_t errlen)
{
	if (cc->socket && cc->socket[0] && cc->socket[0] != '/') {
		snprintf(err, errlen, "[control] socket must be an absolute path");
		return PE_CONFIG;
	}
	if (cc->metrics && cc->metrics[0]) {
		char host[64];
		uint16_t port;
		struct sockaddr_in6 a6;
		struct sockaddr_in a4;
		if (ctl_split_hostport(cc->metrics, host, sizeof host, &port) != 0 ||
		    (uv_ip4_addr(host, port, &a4) != 0 && uv_ip6_addr(host, port, &a6) != 0)) {
			snprintf(err, errlen,
				 "[control] metrics must be ip:port or [ipv6]:port, e.g. "
				 "127.0.0.1:9469");
			return PE_CONFIG;
		}
	}
	return 0;
}
