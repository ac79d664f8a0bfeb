/* Error strings for Parley's codes, falling back to libuv's. */
#include "err.h"

#include <uv.h>

const char *pe_strerror(int err)
{
	switch (err) {
#define PE__CASE(name, val, str)                                               \
	case PE_##name:                                                        \
		return str;
		PE_ERRNO_MAP(PE__CASE)
#undef PE__CASE
	case 0:
		return "success";
	default:
		return uv_strerror(err);
	}
}
