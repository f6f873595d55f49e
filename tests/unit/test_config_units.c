/* SPDX-License-Identifier: MIT */
/* test_config_units.c - the value languages of the config: durations, sizes, rates,
 * addresses, CIDRs and matching addresses against CIDRs (IPv4, IPv6, v4-mapped). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "config/schema.h"
#include "config_harness.h"

START_TEST(test_durations)
{
	static const struct {
		const char *s;
		uint64_t ms;
	} ok[] = {
		{ "0", 0 },	     { "0s", 0 },	  { "250ms", 250 },	 { "2s", 2000 },
		{ "5m", 300000 },    { "1h", 3600000 },	  { "1m30s", 90000 },	 { "1h1m1s1ms", 3661001 },
		{ "007s", 7000 },    { "18446744073709551615ms", UINT64_MAX },
	};
	static const char *const bad[] = { "",	  "5",	  "s",	  "5 s", "5S",	"-1s", "1.5s",
					   "5min", "5sec", "5d",  "ms",	 "1s ", " 1s", "5mss",
					   "1s-", "0x10s" };
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		uint64_t v = 12345;
		ck_assert_msg(sp_parse_duration_ms(ok[i].s, &v) == 0, "%s", ok[i].s);
		ck_assert_msg(v == ok[i].ms, "%s: %llu", ok[i].s, (unsigned long long)v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v = 12345;
		ck_assert_msg(sp_parse_duration_ms(bad[i], &v) == -EINVAL, "%s", bad[i]);
		ck_assert_uint_eq(v, 12345);
	}
	uint64_t v;
	ck_assert_int_eq(sp_parse_duration_ms("18446744073709551616ms", &v), -ERANGE);
	ck_assert_int_eq(sp_parse_duration_ms("18446744073709552s", &v), -ERANGE);
	ck_assert_int_eq(sp_parse_duration_ms("18446744073709551615ms1ms", &v), -ERANGE);
}
END_TEST

START_TEST(test_sizes)
{
	static const struct {
		const char *s;
		uint64_t v;
	} ok[] = {
		{ "0", 0 },
		{ "4096", 4096 },
		{ "4096b", 4096 },
		{ "64k", 65536 },
		{ "64K", 65536 },
		{ "4KiB", 4096 },
		{ "4kb", 4096 },
		{ "16MiB", 16u << 20 },
		{ "16m", 16u << 20 },
		{ "1GiB", 1u << 30 },
		{ "2T", 2ull << 40 },
		{ "16777215TiB", 16777215ull << 40 },
	};
	static const char *const bad[] = { "", "k", "4 KiB", "4KiBs", "-1", "1.5M", "4Ki", "4x" };
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		uint64_t v = 1;
		ck_assert_msg(sp_parse_size(ok[i].s, &v) == 0, "%s", ok[i].s);
		ck_assert_msg(v == ok[i].v, "%s: %llu", ok[i].s, (unsigned long long)v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v;
		ck_assert_msg(sp_parse_size(bad[i], &v) == -EINVAL, "%s", bad[i]);
	}
	uint64_t v;
	ck_assert_int_eq(sp_parse_size("16777216TiB", &v), -ERANGE);
	ck_assert_int_eq(sp_parse_size("99999999999999999999", &v), -ERANGE);
}
END_TEST

START_TEST(test_rates)
{
	double r;
	ck_assert_int_eq(sp_cf_parse_rate("100/s", &r), 0);
	ck_assert(r == 100);
	ck_assert_int_eq(sp_cf_parse_rate("6000/m", &r), 0);
	ck_assert(r == 100);
	ck_assert_int_eq(sp_cf_parse_rate("3600/h", &r), 0);
	ck_assert(r == 1);
	ck_assert_int_eq(sp_cf_parse_rate("0.5/s", &r), 0);
	ck_assert(r == 0.5);
	ck_assert_int_eq(sp_cf_parse_rate("0/s", &r), -ERANGE);
	static const char *const bad[] = { "100", "100/", "100/d", "/s", "1./s", ".5/s", "-1/s",
					   "1e3/s", "100 /s", "10000000000/s" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(sp_cf_parse_rate(bad[i], &r) == -EINVAL, "%s", bad[i]);
}
END_TEST

static void inet_ok(const char *s, int family, const char *host, unsigned port)
{
	struct sp_conf_addr a;
	const char *why = NULL;
	char buf[INET6_ADDRSTRLEN];
	ck_assert_msg(sp_parse_addr(s, &a, &why) == 0, "%s: %s", s, why);
	ck_assert_int_eq(a.kind, SP_ADDR_INET);
	ck_assert_str_eq(a.text, s);
	ck_assert_ptr_null(a.name);
	ck_assert_int_eq(a.sa.ss_family, family);
	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&a.sa;
		ck_assert_uint_eq(a.salen, sizeof(*in));
		ck_assert_uint_eq(ntohs(in->sin_port), port);
		ck_assert_str_eq(inet_ntop(AF_INET, &in->sin_addr, buf, sizeof(buf)), host);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a.sa;
		ck_assert_uint_eq(a.salen, sizeof(*in6));
		ck_assert_uint_eq(ntohs(in6->sin6_port), port);
		ck_assert_str_eq(inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof(buf)), host);
	}
	sp_conf_addr_clear(&a);
	ck_assert_ptr_null(a.text);
}

static void addr_bad(const char *s, const char *want_why)
{
	struct sp_conf_addr a;
	memset(&a, 0x5a, sizeof(a));
	const char *why = NULL;
	ck_assert_msg(sp_parse_addr(s, &a, &why) == -EINVAL, "%s", s);
	ck_assert_msg(why && !strcmp(why, want_why), "%s: %s", s, why);
	ck_assert_int_eq(((unsigned char *)&a)[0], 0x5a); /* untouched */
}

START_TEST(test_addresses)
{
	inet_ok("0.0.0.0:8080", AF_INET, "0.0.0.0", 8080);
	inet_ok("127.0.0.1:0", AF_INET, "127.0.0.1", 0);
	inet_ok("255.255.255.255:65535", AF_INET, "255.255.255.255", 65535);
	inet_ok("[::]:80", AF_INET6, "::", 80);
	inet_ok("[::1]:9002", AF_INET6, "::1", 9002);
	inet_ok("[2001:db8::1]:443", AF_INET6, "2001:db8::1", 443);
	inet_ok("[::ffff:10.1.2.3]:1", AF_INET6, "::ffff:10.1.2.3", 1);

	addr_bad("", "expected HOST:PORT, [IPV6]:PORT, unix:/PATH or systemd:NAME");
	addr_bad("127.0.0.1", "expected HOST:PORT, [IPV6]:PORT, unix:/PATH or systemd:NAME");
	addr_bad("127.0.0.1:", "missing port after ':'");
	addr_bad("127.0.0.1:65536", "the port must be a number from 0 to 65535");
	addr_bad("127.0.0.1:-1", "the port must be a number from 0 to 65535");
	addr_bad("127.0.0.1:80x", "the port must be a number from 0 to 65535");
	addr_bad("127.0.0.1: 80", "the port must be a number from 0 to 65535");
	addr_bad(":80", "missing host (0.0.0.0:PORT or [::]:PORT listen on every address)");
	addr_bad("1.2.3:80", "invalid IPv4 address");
	addr_bad("1.2.3.256:80", "invalid IPv4 address");
	addr_bad("01.2.3.4:80", "invalid IPv4 address");
	addr_bad("example.com:80", "host names are not resolved; use a numeric address (127.0.0.1)");
	addr_bad("*:80", "host names are not resolved; use a numeric address (127.0.0.1)");
	addr_bad("::1:80", "an IPv6 address needs brackets: [::1]:8080");
	addr_bad("[::1]", "missing port after ']'");
	addr_bad("[::1]80", "expected ':' and a port after ']'");
	addr_bad("[::1:80", "missing ']' after an IPv6 address");
	addr_bad("[1.2.3.4]:80", "invalid IPv6 address");
	addr_bad("[fe80::1%eth0]:80", "IPv6 zone ids (%iface) are not supported");
	addr_bad("[]:80", "missing host (0.0.0.0:PORT or [::]:PORT listen on every address)");

	struct sp_conf_addr a;
	const char *why;
	ck_assert_int_eq(sp_parse_addr("unix:/run/x.sock", &a, &why), 0);
	ck_assert_int_eq(a.kind, SP_ADDR_UNIX);
	struct sockaddr_un *un = (struct sockaddr_un *)&a.sa;
	ck_assert_int_eq(un->sun_family, AF_UNIX);
	ck_assert_str_eq(un->sun_path, "/run/x.sock");
	ck_assert_uint_eq(a.salen, offsetof(struct sockaddr_un, sun_path) + 12);
	sp_conf_addr_clear(&a);

	char path[200] = "unix:/";
	memset(path + 6, 'p', 106); /* 107 bytes of path: the most sun_path holds */
	ck_assert_int_eq(sp_parse_addr(path, &a, &why), 0);
	sp_conf_addr_clear(&a);
	path[6 + 106] = 'p';
	addr_bad(path, "a unix socket path is at most 107 bytes");
	addr_bad("unix:", "a unix socket path must be absolute (unix:/run/x.sock) or abstract "
			  "(unix:@name)");
	addr_bad("unix:@", "an abstract socket name is 1 to 107 bytes after '@'");

	ck_assert_int_eq(sp_parse_addr("systemd:web-tls", &a, NULL), 0);
	ck_assert_int_eq(a.kind, SP_ADDR_SYSTEMD);
	ck_assert_str_eq(a.name, "web-tls");
	ck_assert_str_eq(a.text, "systemd:web-tls");
	sp_conf_addr_clear(&a);
	addr_bad("systemd:", "a systemd socket name is 1 to 255 characters (FileDescriptorName=)");
	addr_bad("systemd:a b", "a systemd socket name is printable ASCII without spaces or ':'");
	addr_bad("systemd:a:b", "a systemd socket name is printable ASCII without spaces or ':'");
}
END_TEST

static struct sp_conf_cidr cidr(const char *s)
{
	struct sp_conf_cidr c;
	ck_assert_msg(sp_parse_cidr(s, &c) == 0, "%s", s);
	return c;
}

START_TEST(test_cidrs)
{
	struct sp_conf_cidr c = cidr("10.0.0.0/8");
	ck_assert_int_eq(c.family, AF_INET);
	ck_assert_uint_eq(c.prefix, 8);
	ck_assert_uint_eq(c.addr[0], 10);
	c = cidr("192.168.1.7");
	ck_assert_uint_eq(c.prefix, 32);
	c = cidr("0.0.0.0/0");
	ck_assert_uint_eq(c.prefix, 0);
	c = cidr("::/0");
	ck_assert_int_eq(c.family, AF_INET6);
	ck_assert_uint_eq(c.prefix, 0);
	c = cidr("2001:db8::/32");
	ck_assert_uint_eq(c.prefix, 32);
	ck_assert_uint_eq(c.addr[0], 0x20);
	ck_assert_uint_eq(c.addr[3], 0xb8);
	c = cidr("::1");
	ck_assert_uint_eq(c.prefix, 128);
	c = cidr("10.128.0.0/9");
	ck_assert_uint_eq(c.addr[1], 128);

	static const char *const bad[] = { "",	       "/8",	     "10.0.0.0/",   "10.0.0.0/33",
					   "::/129",   "10.0.0.1/8", "10.0.0.0/8x", "10.0.0.0/-1",
					   "10.0.0/8", "host/8",     "1.2.3.4/ 8",  "fe80::1/10",
					   "1.2.3.4/8/8" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sp_conf_cidr x;
		ck_assert_msg(sp_parse_cidr(bad[i], &x) == -EINVAL, "%s", bad[i]);
	}
	/* the internal form says why and, for host bits, what was meant */
	const char *why;
	ck_assert_int_eq(sp_cf_parse_cidr("10.1.2.3/8", &c, &why), -ERANGE);
	ck_assert_str_eq(why, "bits are set past the prefix length");
	ck_assert_uint_eq(c.addr[0], 10);
	ck_assert_uint_eq(c.addr[1] | c.addr[2] | c.addr[3], 0);
	ck_assert_int_eq(sp_cf_parse_cidr("fe80::1/10", &c, &why), -ERANGE);
	ck_assert_uint_eq(c.addr[0], 0xfe);
	ck_assert_uint_eq(c.addr[1], 0x80);
	ck_assert_uint_eq(c.addr[15], 0);
}
END_TEST

static struct sockaddr_storage sa4(const char *host)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;
	in->sin_family = AF_INET;
	ck_assert_int_eq(inet_pton(AF_INET, host, &in->sin_addr), 1);
	return ss;
}

static struct sockaddr_storage sa6(const char *host)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	in6->sin6_family = AF_INET6;
	ck_assert_int_eq(inet_pton(AF_INET6, host, &in6->sin6_addr), 1);
	return ss;
}

static bool match(const char *c, struct sockaddr_storage ss)
{
	struct sp_conf_cidr x = cidr(c);
	return sp_cidr_match(&x, (struct sockaddr *)&ss);
}

START_TEST(test_cidr_match_v4)
{
	ck_assert(match("10.0.0.0/8", sa4("10.255.1.2")));
	ck_assert(!match("10.0.0.0/8", sa4("11.0.0.0")));
	ck_assert(match("0.0.0.0/0", sa4("203.0.113.9")));
	ck_assert(match("192.168.1.7", sa4("192.168.1.7")));
	ck_assert(!match("192.168.1.7", sa4("192.168.1.6")));
	/* prefixes that split a byte */
	ck_assert(match("10.128.0.0/9", sa4("10.200.0.1")));
	ck_assert(!match("10.128.0.0/9", sa4("10.127.255.255")));
	ck_assert(match("172.16.0.0/12", sa4("172.31.255.255")));
	ck_assert(!match("172.16.0.0/12", sa4("172.32.0.0")));
	ck_assert(match("1.2.3.4/31", sa4("1.2.3.5")));
	ck_assert(!match("1.2.3.4/31", sa4("1.2.3.6")));
	/* an IPv4 CIDR never matches a plain IPv6 client */
	ck_assert(!match("0.0.0.0/0", sa6("::1")));
}
END_TEST

START_TEST(test_cidr_match_v6)
{
	ck_assert(match("::1/128", sa6("::1")));
	ck_assert(!match("::1/128", sa6("::2")));
	ck_assert(match("2001:db8::/32", sa6("2001:db8:ffff::1")));
	ck_assert(!match("2001:db8::/32", sa6("2001:db9::1")));
	ck_assert(match("fe80::/10", sa6("febf::1")));
	ck_assert(!match("fe80::/10", sa6("fec0::1")));
	ck_assert(match("::/0", sa6("2a00::1")));
	/* dual-stack sockets see IPv4 clients as ::ffff:a.b.c.d: IPv4 rules apply */
	ck_assert(match("127.0.0.0/8", sa6("::ffff:127.0.0.1")));
	ck_assert(!match("127.0.0.0/8", sa6("::ffff:128.0.0.1")));
	ck_assert(!match("127.0.0.0/8", sa6("::127.0.0.1"))); /* not mapped */
	/* and IPv6 rules written for mapped addresses apply to plain IPv4 clients */
	ck_assert(match("::ffff:10.0.0.0/104", sa4("10.9.9.9")));
	ck_assert(!match("::ffff:10.0.0.0/104", sa4("11.0.0.0")));
	ck_assert(match("::/0", sa4("10.0.0.1")));

	struct sp_conf_cidr any = cidr("::/0");
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	ck_assert(!sp_cidr_match(&any, (struct sockaddr *)&un));
	ck_assert(!sp_cidr_match(&any, NULL));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("config_units");
	TCase *tc = tcase_create("units");
	tcase_add_test(tc, test_durations);
	tcase_add_test(tc, test_sizes);
	tcase_add_test(tc, test_rates);
	tcase_add_test(tc, test_addresses);
	tcase_add_test(tc, test_cidrs);
	tcase_add_test(tc, test_cidr_match_v4);
	tcase_add_test(tc, test_cidr_match_v6);
	suite_add_tcase(s, tc);
	return run_config_suite(s);
}
