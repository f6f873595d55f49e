/* SPDX-License-Identifier: MIT */
/*
 * test_proxy_protocol.c - the PROXY protocol parser and builder of src/pipeline: v1 and
 * v2 headers of every family parsed to the right addresses and lengths (the client's
 * bytes after them untouched), every prefix of a valid header asks for more, malformed
 * headers are refused, and what the builder writes parses back to the same addresses.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <string.h>

#include "pipeline/proxy_protocol.h"

static const uint8_t sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };

static int parse_str(const char *s, struct sp_pp_addrs *a)
{
	return sp_pp_parse((const uint8_t *)s, strlen(s), a);
}

static void check_v4(const struct sockaddr_storage *ss, const char *ip, unsigned port)
{
	const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
	char buf[INET_ADDRSTRLEN];
	ck_assert_int_eq(in->sin_family, AF_INET);
	ck_assert_str_eq(inet_ntop(AF_INET, &in->sin_addr, buf, sizeof(buf)), ip);
	ck_assert_uint_eq(ntohs(in->sin_port), port);
}

START_TEST(v1_headers)
{
	struct sp_pp_addrs a;
	const char *h = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET /";
	ck_assert_int_eq(parse_str(h, &a), (int)strlen(h) - 5);
	ck_assert_int_eq(a.family, AF_INET);
	check_v4(&a.src, "192.0.2.1", 56324);
	check_v4(&a.dst, "198.51.100.2", 443);
	h = "PROXY TCP6 2001:db8::1 ::1 1 65535\r\n";
	ck_assert_int_eq(parse_str(h, &a), (int)strlen(h));
	ck_assert_int_eq(a.family, AF_INET6);
	ck_assert_int_eq(parse_str("PROXY UNKNOWN\r\n", &a), 15);
	ck_assert_int_eq(a.family, AF_UNSPEC);
	ck_assert_int_eq(parse_str("PROXY UNKNOWN ffff::1 ::2 1 2\r\n", &a), 31);
	/* every prefix of a valid header wants more */
	h = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n";
	for (size_t n = 1; n < strlen(h); n++)
		ck_assert_int_eq(sp_pp_parse((const uint8_t *)h, n, &a), 0);
}
END_TEST

START_TEST(v1_refused)
{
	static const char *bad[] = {
		"GET / HTTP/1.1\r\n", "PROXY\r\n", "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
		"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", " PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
	};
	struct sp_pp_addrs a;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(parse_str(bad[i], &a) < 0 || (i == 11 && parse_str(bad[i], &a) == 0),
			      "accepted %s", bad[i]);
	/* no CRLF within 107 bytes: not a v1 header */
	char longer[200];
	memset(longer, 'x', sizeof(longer));
	memcpy(longer, "PROXY TCP4 ", 11);
	ck_assert_int_eq(sp_pp_parse((const uint8_t *)longer, sizeof(longer), &a), -EINVAL);
}
END_TEST

START_TEST(v2_headers)
{
	uint8_t h[64];
	struct sp_pp_addrs a;
	memcpy(h, sig, 12);
	h[12] = 0x21; /* v2 PROXY */
	h[13] = 0x11; /* INET STREAM */
	h[14] = 0;
	h[15] = 12 + 3; /* addresses and a 3-byte TLV */
	const uint8_t body[] = { 10, 0, 0, 1, 10, 0, 0, 2, 0x1f, 0x90, 0x00, 0x50, 0x04, 0x00, 0x00 };
	memcpy(h + 16, body, sizeof(body));
	h[31] = 'X'; /* the client's first byte */
	ck_assert_int_eq(sp_pp_parse(h, 32, &a), 31);
	check_v4(&a.src, "10.0.0.1", 8080);
	check_v4(&a.dst, "10.0.0.2", 80);
	for (size_t n = 1; n < 31; n++)
		ck_assert_int_eq(sp_pp_parse(h, n, &a), 0);
	h[12] = 0x20; /* LOCAL: addresses ignored */
	ck_assert_int_eq(sp_pp_parse(h, 31, &a), 31);
	ck_assert_int_eq(a.family, AF_UNSPEC);
	h[12] = 0x31; /* version 3 */
	ck_assert_int_eq(sp_pp_parse(h, 31, &a), -EINVAL);
	h[12] = 0x22; /* command 2 */
	ck_assert_int_eq(sp_pp_parse(h, 31, &a), -EINVAL);
	h[12] = 0x21;
	h[15] = 8; /* too short for INET */
	ck_assert_int_eq(sp_pp_parse(h, 31, &a), -EINVAL);
	h[13] = 0x21; /* INET6 needs 36 */
	h[15] = 20;
	ck_assert_int_eq(sp_pp_parse(h, 36, &a), -EINVAL);
	h[14] = 0xff; /* longer than we take */
	ck_assert_int_eq(sp_pp_parse(h, 36, &a), -E2BIG);
	h[14] = 0;
	h[13] = 0x51; /* unknown family */
	h[15] = 0;
	ck_assert_int_eq(sp_pp_parse(h, 16, &a), -EINVAL);
}
END_TEST

START_TEST(build_round_trip)
{
	struct sockaddr_in s4 = { .sin_family = AF_INET, .sin_port = htons(1234) };
	struct sockaddr_in d4 = { .sin_family = AF_INET, .sin_port = htons(80) };
	inet_pton(AF_INET, "203.0.113.7", &s4.sin_addr);
	inet_pton(AF_INET, "127.0.0.1", &d4.sin_addr);
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_port = htons(5) };
	struct sockaddr_in6 d6 = { .sin6_family = AF_INET6, .sin6_port = htons(6) };
	inet_pton(AF_INET6, "2001:db8::7", &s6.sin6_addr);
	inet_pton(AF_INET6, "::1", &d6.sin6_addr);
	uint8_t out[SP_PP_BUILD_MAX];
	struct sp_pp_addrs a;
	for (int v = 1; v <= 2; v++) {
		size_t n = sp_pp_build(v, (struct sockaddr *)&s4, (struct sockaddr *)&d4, out);
		ck_assert_int_eq(sp_pp_parse(out, n, &a), (int)n);
		check_v4(&a.src, "203.0.113.7", 1234);
		check_v4(&a.dst, "127.0.0.1", 80);
		n = sp_pp_build(v, (struct sockaddr *)&s6, (struct sockaddr *)&d6, out);
		ck_assert_int_eq(sp_pp_parse(out, n, &a), (int)n);
		ck_assert_int_eq(a.family, AF_INET6);
		ck_assert_int_eq(memcmp(&((struct sockaddr_in6 *)&a.src)->sin6_addr, &s6.sin6_addr, 16), 0);
		ck_assert_uint_eq(ntohs(((struct sockaddr_in6 *)&a.dst)->sin6_port), 6);
		/* mixed families: unknown */
		n = sp_pp_build(v, (struct sockaddr *)&s4, (struct sockaddr *)&d6, out);
		ck_assert_int_eq(sp_pp_parse(out, n, &a), (int)n);
		ck_assert_int_eq(a.family, AF_UNSPEC);
	}
	size_t n = sp_pp_build(1, (struct sockaddr *)&s4, (struct sockaddr *)&d4, out);
	ck_assert_int_eq(memcmp(out, "PROXY TCP4 203.0.113.7 127.0.0.1 1234 80\r\n", n), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("proxy_protocol");
	TCase *tc = tcase_create("parse");
	tcase_add_test(tc, v1_headers);
	tcase_add_test(tc, v1_refused);
	tcase_add_test(tc, v2_headers);
	tcase_add_test(tc, build_round_trip);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
