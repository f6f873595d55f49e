/* SPDX-License-Identifier: MIT */
/*
 * proxy_protocol.c - PROXY protocol v1/v2 parsing and building (see proxy_protocol.h).
 * Strict: a v1 line must have exactly its six fields, valid addresses of the announced
 * family and ports in 0..65535 without leading zeros; a v2 header must carry version 2,
 * a known command and room for the addresses of its family.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "pipeline/proxy_protocol.h"

static const uint8_t v2_sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
				    0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };
#define V1_MAX 107

static int port_of(const char *s, uint16_t *out)
{
	size_t n = strlen(s);
	if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
		return -EINVAL;
	unsigned v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > 65535)
		return -EINVAL;
	*out = (uint16_t)v;
	return 0;
}

static int inet_of(int family, const char *host, const char *port, struct sockaddr_storage *ss,
		   socklen_t *len)
{
	uint16_t p;
	if (port_of(port, &p) < 0)
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;
		in->sin_family = AF_INET;
		in->sin_port = htons(p);
		*len = sizeof(*in);
		return inet_pton(AF_INET, host, &in->sin_addr) == 1 ? 0 : -EINVAL;
	}
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	in6->sin6_family = AF_INET6;
	in6->sin6_port = htons(p);
	*len = sizeof(*in6);
	return inet_pton(AF_INET6, host, &in6->sin6_addr) == 1 ? 0 : -EINVAL;
}

static int parse_v1(const uint8_t *buf, size_t len, struct sp_pp_addrs *out)
{
	size_t end = 0;
	while (end + 1 < len && !(buf[end] == '\r' && buf[end + 1] == '\n'))
		end++;
	if (end + 1 >= len) /* no CRLF yet */
		return len >= V1_MAX ? -EINVAL : 0;
	if (end + 2 > V1_MAX)
		return -EINVAL;
	char line[V1_MAX + 1];
	memcpy(line, buf, end);
	line[end] = 0;

	char *f[7];
	int n = 0;
	for (char *save = NULL, *tok = strtok_r(line, " ", &save); tok;
	     tok = strtok_r(NULL, " ", &save)) {
		if (n == 7)
			return -EINVAL;
		f[n++] = tok;
	}
	/* single spaces only: the fields' lengths add up to the line's */
	size_t sum = 0;
	for (int i = 0; i < n; i++)
		sum += strlen(f[i]) + 1;
	if (n < 2 || sum != end + 1 || strcmp(f[0], "PROXY") != 0)
		return -EINVAL;
	if (!strcmp(f[1], "UNKNOWN")) {
		out->family = AF_UNSPEC; /* the rest of the line is to be ignored */
		return (int)end + 2;
	}
	int family = !strcmp(f[1], "TCP4") ? AF_INET : !strcmp(f[1], "TCP6") ? AF_INET6 : 0;
	if (!family || n != 6 ||
	    inet_of(family, f[2], f[4], &out->src, &out->srclen) < 0 ||
	    inet_of(family, f[3], f[5], &out->dst, &out->dstlen) < 0)
		return -EINVAL;
	out->family = family;
	return (int)end + 2;
}

static int parse_v2(const uint8_t *buf, size_t len, struct sp_pp_addrs *out)
{
	if (len < 16)
		return 0;
	unsigned ver = buf[12] >> 4, cmd = buf[12] & 0xF, fam = buf[13] >> 4;
	size_t body = (size_t)buf[14] << 8 | buf[15];
	if (ver != 2 || cmd > 1)
		return -EINVAL;
	if (16 + body > SP_PP_MAX)
		return -E2BIG;
	if (len < 16 + body)
		return 0;
	const uint8_t *a = buf + 16;
	out->family = AF_UNSPEC;
	if (cmd == 0) /* LOCAL: the sender's own connection (health checks); keep ours */
		return (int)(16 + body);
	if (fam == 1) {
		if (body < 12)
			return -EINVAL;
		struct sockaddr_in *s = (struct sockaddr_in *)&out->src;
		struct sockaddr_in *d = (struct sockaddr_in *)&out->dst;
		memset(&out->src, 0, sizeof(out->src));
		memset(&out->dst, 0, sizeof(out->dst));
		s->sin_family = d->sin_family = AF_INET;
		memcpy(&s->sin_addr, a, 4);
		memcpy(&d->sin_addr, a + 4, 4);
		memcpy(&s->sin_port, a + 8, 2);
		memcpy(&d->sin_port, a + 10, 2);
		out->srclen = out->dstlen = sizeof(*s);
		out->family = AF_INET;
	} else if (fam == 2) {
		if (body < 36)
			return -EINVAL;
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&out->src;
		struct sockaddr_in6 *d = (struct sockaddr_in6 *)&out->dst;
		memset(&out->src, 0, sizeof(out->src));
		memset(&out->dst, 0, sizeof(out->dst));
		s->sin6_family = d->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, a, 16);
		memcpy(&d->sin6_addr, a + 16, 16);
		memcpy(&s->sin6_port, a + 32, 2);
		memcpy(&d->sin6_port, a + 34, 2);
		out->srclen = out->dstlen = sizeof(*s);
		out->family = AF_INET6;
	} else if (fam == 3 && body < 216) {
		return -EINVAL;
	} else if (fam > 3) {
		return -EINVAL;
	}
	return (int)(16 + body);
}

int sp_pp_parse(const uint8_t *buf, size_t len, struct sp_pp_addrs *out)
{
	static const char v1_sig[] = "PROXY ";
	size_t n = len < 12 ? len : 12;
	if (memcmp(buf, v2_sig, n) == 0)
		return len < 12 ? 0 : parse_v2(buf, len, out);
	n = len < 6 ? len : 6;
	if (memcmp(buf, v1_sig, n) == 0)
		return len < 6 ? 0 : parse_v1(buf, len, out);
	return -EINVAL;
}

size_t sp_pp_build(int version, const struct sockaddr *src, const struct sockaddr *dst,
		   uint8_t *out)
{
	int fam = src->sa_family == dst->sa_family ? src->sa_family : AF_UNSPEC;
	if (fam != AF_INET && fam != AF_INET6)
		fam = AF_UNSPEC;
	const struct sockaddr_in *s4 = (const void *)src, *d4 = (const void *)dst;
	const struct sockaddr_in6 *s6 = (const void *)src, *d6 = (const void *)dst;

	if (version == 1) {
		char sh[INET6_ADDRSTRLEN], dh[INET6_ADDRSTRLEN];
		int n;
		if (fam == AF_INET) {
			inet_ntop(AF_INET, &s4->sin_addr, sh, sizeof(sh));
			inet_ntop(AF_INET, &d4->sin_addr, dh, sizeof(dh));
			n = snprintf((char *)out, SP_PP_BUILD_MAX, "PROXY TCP4 %s %s %u %u\r\n", sh,
				     dh, ntohs(s4->sin_port), ntohs(d4->sin_port));
		} else if (fam == AF_INET6) {
			inet_ntop(AF_INET6, &s6->sin6_addr, sh, sizeof(sh));
			inet_ntop(AF_INET6, &d6->sin6_addr, dh, sizeof(dh));
			n = snprintf((char *)out, SP_PP_BUILD_MAX, "PROXY TCP6 %s %s %u %u\r\n", sh,
				     dh, ntohs(s6->sin6_port), ntohs(d6->sin6_port));
		} else {
			n = snprintf((char *)out, SP_PP_BUILD_MAX, "PROXY UNKNOWN\r\n");
		}
		return (size_t)n;
	}
	memcpy(out, v2_sig, 12);
	out[12] = 0x21; /* version 2, PROXY */
	size_t body = 0;
	if (fam == AF_INET) {
		out[13] = 0x11; /* INET, STREAM */
		memcpy(out + 16, &s4->sin_addr, 4);
		memcpy(out + 20, &d4->sin_addr, 4);
		memcpy(out + 24, &s4->sin_port, 2);
		memcpy(out + 26, &d4->sin_port, 2);
		body = 12;
	} else if (fam == AF_INET6) {
		out[13] = 0x21; /* INET6, STREAM */
		memcpy(out + 16, &s6->sin6_addr, 16);
		memcpy(out + 32, &d6->sin6_addr, 16);
		memcpy(out + 48, &s6->sin6_port, 2);
		memcpy(out + 50, &d6->sin6_port, 2);
		body = 36;
	} else {
		out[13] = 0x00; /* UNSPEC: the receiver keeps the connection's addresses */
	}
	out[14] = (uint8_t)(body >> 8);
	out[15] = (uint8_t)body;
	return 16 + body;
}
