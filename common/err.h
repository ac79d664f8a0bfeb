/* Parley's own error codes; libuv's negative errno codes pass through unchanged. */
#ifndef PARLEY_ERR_H
#define PARLEY_ERR_H

/* Our codes live far below libuv's range (UV_EOF is -4095). */
#define PE_ERRNO_MAP(X)                                                        \
	X(NEEDMORE, -20001, "need more input")                                 \
	X(TOOBIG, -20002, "size limit exceeded")                               \
	X(PROTO, -20003, "protocol violation")                                 \
	X(CONFIG, -20004, "configuration error")                               \
	X(TLS, -20005, "TLS failure")                                          \
	X(VERIFY, -20006, "peer verification failed")                          \
	X(NOMEM, -20007, "out of memory")                                      \
	X(STATE, -20008, "operation not valid in this state")                  \
	X(FULL, -20009, "window full")                                         \
	X(CLOSED, -20010, "connection closed")                                 \
	X(DNS, -20011, "DNS failure")                                          \
	X(NOTFOUND, -20012, "not found")                                       \
	X(INVAL, -20013, "invalid argument")                                   \
	X(TIMEOUT, -20014, "timed out")                                        \
	X(SCHEME, -20015, "unsupported URI scheme")

enum pe_err {
#define PE__ENUM(name, val, str) PE_##name = (val),
	PE_ERRNO_MAP(PE__ENUM)
#undef PE__ENUM
};

/* Returns a static string for one of our codes, a libuv code or a negative errno. */
const char *pe_strerror(int err);

#endif
