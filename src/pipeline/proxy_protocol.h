/* SPDX-License-Identifier: MIT */
/*
 * proxy_protocol.h - the PROXY protocol header, versions 1 (text) and 2 (binary), as
 * HAProxy's proxy-protocol.txt specifies it: parsing what a load balancer in front of a
 * listener sends (`proxy_protocol: true`), and building what the proxy handler sends to
 * its servers (`send_proxy_protocol: v1|v2`). Pure functions over bytes: no I/O here.
 */
#ifndef SP_PROXY_PROTOCOL_H
#define SP_PROXY_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Longest header accepted: a v1 line is at most 107 bytes, a v2 header 16 + its length
 * (addresses, then TLVs, which are skipped). Longer v2 headers are refused. */
#define SP_PP_MAX 1024
/* Room for any header sp_pp_build writes. */
#define SP_PP_BUILD_MAX 108

struct sp_pp_addrs {
	/* AF_INET or AF_INET6 with both addresses; AF_UNSPEC for v1 UNKNOWN, v2 LOCAL and
	 * v2 families other than inet: the connection's own addresses then stand. */
	int family;
	struct sockaddr_storage src, dst;
	socklen_t srclen, dstlen;
};

/*
 * Parse the header at the start of buf. Returns its length once complete (the bytes
 * after it are the client's), 0 when buf is a valid beginning that needs more bytes,
 * -EINVAL when it is not a PROXY header or is malformed, -E2BIG when longer than
 * SP_PP_MAX. A receiver must never guess: no header means -EINVAL.
 */
int sp_pp_parse(const uint8_t *buf, size_t len, struct sp_pp_addrs *out);

/* Write a version 1 or 2 header for a connection from src to dst into out (at least
 * SP_PP_BUILD_MAX bytes); returns its length. Unlike families or non-inet addresses
 * give "PROXY UNKNOWN" (v1) or an AF_UNSPEC header (v2). */
size_t sp_pp_build(int version, const struct sockaddr *src, const struct sockaddr *dst,
		   uint8_t *out);

#endif
