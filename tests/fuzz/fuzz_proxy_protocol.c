/* SPDX-License-Identifier: MIT */
/*
 * fuzz_proxy_protocol.c - libFuzzer target for the PROXY protocol parser
 * (src/pipeline/proxy_protocol.c): any bytes as the start of a connection. Checks its
 * promises: a length within the input and SP_PP_MAX; every prefix of an accepted header
 * asks for more (0) rather than accepting or refusing it; bytes after a header never
 * change its length or addresses; addresses of the announced family; and a header the
 * builder writes from parsed addresses parses back to them. Built and run by
 * run-fuzz-proxy-protocol.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "pipeline/proxy_protocol.h"

#define CHECK(cond)                                                                            \
	do {                                                                                   \
		if (!(cond))                                                                   \
			abort();                                                               \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sp_pp_addrs a, b;
	int len = sp_pp_parse(data, size, &a);
	if (len <= 0)
		return 0;
	CHECK((size_t)len <= size && len <= SP_PP_MAX);
	for (int n = 1; n < len; n++)
		CHECK(sp_pp_parse(data, (size_t)n, &b) == 0);
	uint8_t *more = malloc(size + 8);
	CHECK(more);
	memcpy(more, data, size);
	memset(more + size, 'x', 8);
	CHECK(sp_pp_parse(more, (size_t)len + 8, &b) == len);
	CHECK(b.family == a.family);
	free(more);
	if (a.family == AF_UNSPEC)
		return 0;
	CHECK(a.family == AF_INET || a.family == AF_INET6);
	CHECK(a.src.ss_family == a.family && a.dst.ss_family == a.family);
	uint8_t out[SP_PP_BUILD_MAX];
	for (int v = 1; v <= 2; v++) {
		size_t n = sp_pp_build(v, (struct sockaddr *)&a.src, (struct sockaddr *)&a.dst, out);
		CHECK(n <= SP_PP_BUILD_MAX);
		CHECK(sp_pp_parse(out, n, &b) == (int)n);
		CHECK(b.family == a.family && b.srclen == a.srclen);
		CHECK(memcmp(&b.src, &a.src, a.srclen) == 0 && memcmp(&b.dst, &a.dst, a.dstlen) == 0);
	}
	return 0;
}
