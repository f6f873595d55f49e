/* SPDX-License-Identifier: MIT */
/*
 * units.c - the small languages inside config values: durations, sizes, rates,
 * addresses and CIDRs, and matching an address against a CIDR. Pure functions of their
 * input: no DNS, no file system, so they are safe to fuzz and to share with the
 * control-socket parser.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "config/schema.h"

/* Digits at *s into *v (at most max); advances *s. -EINVAL without digits, -ERANGE past
 * max. */
static int digits(const char **s, uint64_t max, uint64_t *v)
{
	const char *p = *s;
	uint64_t x = 0;
	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (x > (max - d) / 10)
			return -ERANGE;
		x = x * 10 + d;
	}
	*s = p;
	*v = x;
	return 0;
}

/* "250ms", "2s", "5m", "1h", or parts of them in a row ("1m30s"); "0" alone needs no
 * unit. */
int sp_parse_duration_ms(const char *s, uint64_t *out)
{
	static const struct {
		const char *unit;
		uint64_t ms;
	} units[] = { { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 } };
	uint64_t total = 0;
	if (!strcmp(s, "0")) {
		*out = 0;
		return 0;
	}
	if (!*s)
		return -EINVAL;
	while (*s) {
		uint64_t n;
		int ret = digits(&s, UINT64_MAX, &n);
		if (ret < 0)
			return ret;
		size_t i, ulen = 0;
		/* the longest unit that matches: "ms" before "m" */
		for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			ulen = strlen(units[i].unit);
			if (!strncmp(s, units[i].unit, ulen) && (s[ulen] < 'a' || s[ulen] > 'z'))
				break;
		}
		if (i == sizeof(units) / sizeof(units[0]))
			return -EINVAL;
		if (n > UINT64_MAX / units[i].ms || total > UINT64_MAX - n * units[i].ms)
			return -ERANGE;
		total += n * units[i].ms;
		s += ulen;
	}
	*out = total;
	return 0;
}

/* "4096", "64k", "4KiB", "16MiB", "1G": multiples of 1024 whatever the spelling, since
 * nobody sizes a buffer in powers of ten. */
int sp_parse_size(const char *s, uint64_t *out)
{
	static const struct {
		const char *suffix;
		unsigned shift;
	} units[] = { { "", 0 },    { "b", 0 },	  { "k", 10 },	 { "kb", 10 }, { "kib", 10 },
		      { "m", 20 },  { "mb", 20 }, { "mib", 20 }, { "g", 30 },  { "gb", 30 },
		      { "gib", 30 }, { "t", 40 },  { "tb", 40 },  { "tib", 40 } };
	uint64_t n;
	int ret = digits(&s, UINT64_MAX, &n);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcasecmp(s, units[i].suffix))
			continue;
		if (n > UINT64_MAX >> units[i].shift)
			return -ERANGE;
		*out = n << units[i].shift;
		return 0;
	}
	return -EINVAL;
}

int sp_cf_parse_rate(const char *s, double *per_sec)
{
	const char *p = s;
	uint64_t whole, frac = 0, scale = 1;
	if (digits(&p, 1000000000, &whole) < 0)
		return -EINVAL;
	if (*p == '.') {
		p++;
		const char *f = p;
		if (digits(&p, 999999, &frac) < 0)
			return -EINVAL;
		for (; f < p; f++)
			scale *= 10;
	}
	double n = (double)whole + (double)frac / (double)scale;
	if (!strcmp(p, "/s"))
		*per_sec = n;
	else if (!strcmp(p, "/m"))
		*per_sec = n / 60;
	else if (!strcmp(p, "/h"))
		*per_sec = n / 3600;
	else
		return -EINVAL;
	return n > 0 ? 0 : -ERANGE;
}

/* ---- addresses ------------------------------------------------------------------ */

static char *dup_in(struct sp_arena *arena, const char *s, size_t len)
{
	if (arena)
		return sp_arena_strndup(arena, s, len);
	char *d = malloc(len + 1);
	if (d) {
		memcpy(d, s, len);
		d[len] = '\0';
	}
	return d;
}

static int parse_port(const char *s, in_port_t *port, const char **why)
{
	uint64_t v;
	if (!*s) {
		*why = "missing port after ':'";
		return -EINVAL;
	}
	if (digits(&s, 65535, &v) < 0 || *s) {
		*why = "the port must be a number from 0 to 65535";
		return -EINVAL;
	}
	*port = htons((in_port_t)v);
	return 0;
}

static int parse_unix(const char *path, struct sp_conf_addr *a, const char **why)
{
	struct sockaddr_un *un = (struct sockaddr_un *)&a->sa;
	size_t len = strlen(path);
	un->sun_family = AF_UNIX;
	if (path[0] == '@') { /* abstract: a leading NUL, no terminator */
		if (len < 2 || len > sizeof(un->sun_path)) {
			*why = "an abstract socket name is 1 to 107 bytes after '@'";
			return -EINVAL;
		}
		memcpy(un->sun_path + 1, path + 1, len - 1);
		a->salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
		return 0;
	}
	if (path[0] != '/') {
		*why = "a unix socket path must be absolute (unix:/run/x.sock) or abstract (unix:@name)";
		return -EINVAL;
	}
	if (len >= sizeof(un->sun_path)) {
		*why = "a unix socket path is at most 107 bytes";
		return -EINVAL;
	}
	/* one file, one spelling: "/x/./u.sock" binds, logs and compares as "/x/u.sock" */
	if (!sp_cf_path_norm(path, un->sun_path, sizeof(un->sun_path))) {
		*why = "a unix socket path is at most 107 bytes";
		return -EINVAL;
	}
	a->salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(un->sun_path) + 1);
	return 0;
}

static int parse_systemd(const char *name, const char **why)
{
	size_t len = strlen(name);
	if (!len || len > 255) {
		*why = "a systemd socket name is 1 to 255 characters (FileDescriptorName=)";
		return -EINVAL;
	}
	for (const char *p = name; *p; p++) {
		/* systemd allows printable ASCII except ':' in fd names */
		if (*p <= ' ' || *p >= 0x7f || *p == ':') {
			*why = "a systemd socket name is printable ASCII without spaces or ':'";
			return -EINVAL;
		}
	}
	return 0;
}

static int parse_inet(const char *s, struct sp_conf_addr *a, const char **why)
{
	char host[64];
	const char *colon, *hs = s;
	size_t hlen;
	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (!end) {
			*why = "missing ']' after an IPv6 address";
			return -EINVAL;
		}
		if (end[1] != ':') {
			*why = end[1] ? "expected ':' and a port after ']'" : "missing port after ']'";
			return -EINVAL;
		}
		hs = s + 1;
		hlen = (size_t)(end - hs);
		colon = end + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon) {
			*why = "expected HOST:PORT, [IPV6]:PORT, unix:/PATH or systemd:NAME";
			return -EINVAL;
		}
		hlen = (size_t)(colon - s);
		if (memchr(s, ':', hlen)) {
			*why = "an IPv6 address needs brackets: [::1]:8080";
			return -EINVAL;
		}
	}
	if (!hlen) {
		*why = "missing host (0.0.0.0:PORT or [::]:PORT listen on every address)";
		return -EINVAL;
	}
	if (hlen >= sizeof(host)) {
		*why = "the host is not a numeric IP address";
		return -EINVAL;
	}
	memcpy(host, hs, hlen);
	host[hlen] = '\0';

	in_port_t port;
	if (parse_port(colon + 1, &port, why) < 0)
		return -EINVAL;
	if (s[0] == '[') {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a->sa;
		if (strchr(host, '%')) {
			*why = "IPv6 zone ids (%iface) are not supported";
			return -EINVAL;
		}
		if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1) {
			*why = "invalid IPv6 address";
			return -EINVAL;
		}
		in6->sin6_family = AF_INET6;
		in6->sin6_port = port;
		a->salen = sizeof(*in6);
	} else {
		struct sockaddr_in *in4 = (struct sockaddr_in *)&a->sa;
		if (inet_pton(AF_INET, host, &in4->sin_addr) != 1) {
			bool name = strspn(host, "0123456789.") != hlen;
			*why = name ? "host names are not resolved; use a numeric address (127.0.0.1)"
				    : "invalid IPv4 address";
			return -EINVAL;
		}
		in4->sin_family = AF_INET;
		in4->sin_port = port;
		a->salen = sizeof(*in4);
	}
	return 0;
}

int sp_cf_parse_addr(const char *s, struct sp_conf_addr *out, const char **why,
		     struct sp_arena *arena)
{
	struct sp_conf_addr a;
	const char *dummy;
	int ret;
	if (!why)
		why = &dummy;
	memset(&a, 0, sizeof(a));
	if (!strncmp(s, "unix:", 5)) {
		a.kind = SP_ADDR_UNIX;
		ret = parse_unix(s + 5, &a, why);
	} else if (!strncmp(s, "systemd:", 8)) {
		a.kind = SP_ADDR_SYSTEMD;
		ret = parse_systemd(s + 8, why);
	} else {
		a.kind = SP_ADDR_INET;
		ret = parse_inet(s, &a, why);
	}
	if (ret < 0)
		return ret;
	char norm[sizeof("unix:") + sizeof(((struct sockaddr_un *)0)->sun_path)];
	const struct sockaddr_un *un = (const struct sockaddr_un *)&a.sa;
	if (a.kind == SP_ADDR_UNIX && un->sun_path[0] == '/') /* as parse_unix spelled it */
		s = strcat(strcpy(norm, "unix:"), un->sun_path);
	a.text = dup_in(arena, s, strlen(s));
	if (a.text && a.kind == SP_ADDR_SYSTEMD && !(a.name = dup_in(arena, s + 8, strlen(s + 8)))) {
		if (!arena)
			free(a.text);
		a.text = NULL;
	}
	if (!a.text) {
		*why = "out of memory";
		return -ENOMEM;
	}
	*out = a;
	return 0;
}

int sp_parse_addr(const char *s, struct sp_conf_addr *out, const char **why)
{
	return sp_cf_parse_addr(s, out, why, NULL);
}

void sp_conf_addr_clear(struct sp_conf_addr *a)
{
	free(a->text);
	free(a->name);
	a->text = a->name = NULL;
}

/* ---- CIDRs ---------------------------------------------------------------------- */

/* -ERANGE: valid, but with bits set past the prefix; out then holds the network, so the
 * caller can suggest it. */
int sp_cf_parse_cidr(const char *s, struct sp_conf_cidr *out, const char **why)
{
	struct sp_conf_cidr c;
	char host[64];
	const char *slash = strchr(s, '/');
	size_t hlen = slash ? (size_t)(slash - s) : strlen(s);
	const char *dummy;
	if (!why)
		why = &dummy;
	memset(&c, 0, sizeof(c));
	if (!hlen || hlen >= sizeof(host)) {
		*why = "expected ADDRESS/PREFIX (10.0.0.0/8, fd00::/8)";
		return -EINVAL;
	}
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	c.family = strchr(host, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(c.family, host, c.addr) != 1) {
		*why = c.family == AF_INET6 ? "invalid IPv6 address" : "invalid IPv4 address";
		return -EINVAL;
	}
	unsigned bits = c.family == AF_INET6 ? 128 : 32;
	c.prefix = bits;
	if (slash) {
		const char *p = slash + 1;
		uint64_t v;
		if (digits(&p, 999, &v) < 0 || *p || v > bits) {
			*why = c.family == AF_INET6 ? "the prefix length must be from 0 to 128"
						    : "the prefix length must be from 0 to 32";
			return -EINVAL;
		}
		c.prefix = (unsigned)v;
	}
	bool host_bits = false;
	for (unsigned i = 0; i < bits / 8; i++) {
		unsigned keep = c.prefix >= (i + 1) * 8 ? 8 : c.prefix > i * 8 ? c.prefix - i * 8 : 0;
		uint8_t mask = (uint8_t)(keep ? 0xff << (8 - keep) : 0);
		if (c.addr[i] & ~mask)
			host_bits = true;
		c.addr[i] &= mask;
	}
	*out = c;
	if (host_bits) {
		*why = "bits are set past the prefix length";
		return -ERANGE;
	}
	return 0;
}

int sp_parse_cidr(const char *s, struct sp_conf_cidr *out)
{
	struct sp_conf_cidr c;
	if (sp_cf_parse_cidr(s, &c, NULL) < 0)
		return -EINVAL;
	*out = c;
	return 0;
}

static bool prefix_eq(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
	unsigned full = prefix / 8, rest = prefix % 8;
	if (memcmp(a, b, full))
		return false;
	if (!rest)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (a[full] & mask) == (b[full] & mask);
}

/* IPv4 clients of a dual-stack socket arrive as ::ffff:a.b.c.d; they match IPv4 CIDRs,
 * and IPv4 addresses match ::ffff:0:0/96-style CIDRs. */
bool sp_cidr_match(const struct sp_conf_cidr *c, const struct sockaddr *sa)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	uint8_t v6[16];
	const uint8_t *v4 = NULL;
	if (!sa)
		return false;
	if (sa->sa_family == AF_INET) {
		v4 = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
		memcpy(v6, mapped, 12);
		memcpy(v6 + 12, v4, 4);
	} else if (sa->sa_family == AF_INET6) {
		memcpy(v6, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		if (!memcmp(v6, mapped, 12))
			v4 = v6 + 12;
	} else {
		return false;
	}
	if (c->family == AF_INET)
		return v4 && prefix_eq(v4, c->addr, c->prefix);
	if (c->family == AF_INET6)
		return prefix_eq(v6, c->addr, c->prefix);
	return false;
}
