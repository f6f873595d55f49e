/* SPDX-License-Identifier: MIT */
/*
 * test_http.c - the HTTP pieces of src/http: the strict request-head parser (valid
 * heads, every refusal with its status, byte-by-byte arrival), path decoding and
 * normalisation (traversal spellings), Range, If-None-Match, If-Range, HTTP dates and the
 * extension -> Content-Type table.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http/http.h"
#include "http/mime.h"

static const struct sp_http_limits lim = { .max_target = 256, .max_headers = 8 };

static long parse(const char *s, struct sp_http_request *req)
{
	size_t scanned = 0;
	return sp_http_parse(s, strlen(s), &scanned, &lim, req);
}

static bool eq(struct sp_http_str s, const char *lit)
{
	return s.len == strlen(lit) && !memcmp(s.p, lit, s.len);
}

START_TEST(parse_valid)
{
	struct sp_http_request r;
	const char *get = "GET /a/b?x=1 HTTP/1.1\r\nHost: example.com\r\nRange: bytes=0-9\r\n"
			  "If-None-Match: \"x\"\r\nUser-Agent: t\r\n\r\nGET /next";
	long n = parse(get, &r);
	ck_assert_int_eq(n, (long)(strstr(get, "GET /next") - get));
	ck_assert_int_eq(r.method, SP_HTTP_GET);
	ck_assert(eq(r.target, "/a/b?x=1"));
	ck_assert(eq(r.host, "example.com"));
	ck_assert(eq(r.range, "bytes=0-9"));
	ck_assert(eq(r.if_none_match, "\"x\""));
	ck_assert_uint_eq(r.minor, 1);
	ck_assert(r.keep_alive);
	ck_assert_uint_eq(r.n_headers, 4);

	ck_assert_int_gt(parse("HEAD / HTTP/1.0\r\n\r\n", &r), 0);
	ck_assert_int_eq(r.method, SP_HTTP_HEAD);
	ck_assert(!r.keep_alive); /* 1.0 closes unless asked */
	ck_assert_int_gt(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &r), 0);
	ck_assert(r.keep_alive);
	ck_assert_int_gt(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, close\r\n\r\n", &r), 0);
	ck_assert(!r.keep_alive);
	/* leading empty lines are ignored; values lose their surrounding whitespace */
	ck_assert_int_gt(parse("\r\n\r\nGET / HTTP/1.1\r\nHost:\t h \t\r\n\r\n", &r), 0);
	ck_assert(eq(r.host, "h"));
	/* 1.2 is answered as 1.1; Content-Length: 0 is no body */
	ck_assert_int_gt(parse("GET / HTTP/1.2\r\nHost: h\r\nContent-Length: 0\r\n\r\n", &r), 0);
	ck_assert_uint_eq(r.minor, 1);
	ck_assert_int_gt(parse("GET http://h/x HTTP/1.1\r\nHost: h\r\n\r\n", &r), 0);
	ck_assert_int_gt(parse("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", &r), 0);
	ck_assert_int_gt(parse("GET / HTTP/1.1\r\nHost: h\r\nX: caf\xc3\xa9\r\n\r\n", &r), 0);
	/* several If-None-Match fields are noted */
	ck_assert_int_gt(parse("GET / HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"a\"\r\n"
			       "If-None-Match: \"b\"\r\n\r\n", &r), 0);
	ck_assert(r.if_none_match_many);
	/* a field that is absent has no p; an empty one (If-Range: with no value) has one,
	 * so that a handler can tell "no condition" from "a condition that cannot hold" */
	ck_assert_int_gt(parse("GET / HTTP/1.1\r\nHost: h\r\nRange: bytes=0-1\r\n\r\n", &r), 0);
	ck_assert_ptr_null(r.if_range.p);
	ck_assert_int_gt(parse("GET / HTTP/1.1\r\nHost: h\r\nIf-Range: \t \r\n\r\n", &r), 0);
	ck_assert_ptr_nonnull(r.if_range.p);
	ck_assert_uint_eq(r.if_range.len, 0);
	ck_assert(!sp_http_if_range_holds(r.if_range, "\"5-64-1a2b\"", 0));
}
END_TEST

START_TEST(parse_incomplete)
{
	struct sp_http_request r;
	ck_assert_int_eq(parse("", &r), 0);
	ck_assert_int_eq(parse("GET / HTTP/1.1\r\nHost: h\r\n", &r), 0);
	ck_assert_int_eq(parse("GET / HTTP/1.1\r\nHost: h\r\n\r", &r), 0);
	ck_assert_int_eq(parse("\r\n", &r), 0);
	ck_assert_int_eq(parse("\r", &r), 0);
}
END_TEST

START_TEST(parse_byte_by_byte)
{
	const char *req = "\r\nGET /x HTTP/1.1\r\nHost: h\r\nA: b\r\n\r\n";
	size_t len = strlen(req), scanned = 0;
	struct sp_http_request r;
	for (size_t i = 1; i < len; i++)
		ck_assert_int_eq(sp_http_parse(req, i, &scanned, &lim, &r), 0);
	ck_assert_int_eq(sp_http_parse(req, len, &scanned, &lim, &r), (long)len);
	ck_assert(eq(r.target, "/x"));
}
END_TEST

static const struct {
	const char *req;
	int status;
} refusals[] = {
	/* request line */
	{ "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
	{ "GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 400 },
	{ "GET /\r\n\r\n", 400 },
	{ "GET / http/1.1\r\nHost: h\r\n\r\n", 400 },
	{ "GET / HTTP/1.1x\r\nHost: h\r\n\r\n", 400 },
	{ "GET / HTTP/11\r\nHost: h\r\n\r\n", 400 },
	{ "G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
	{ "GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
	{ "GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
	{ "GET / HTTP/1.1\nHost: h\r\n\r\n", 400 },   /* bare LF */
	{ "GET / HTTP/1.1\r\nHost: h\n\n", 400 },
	{ "GET / HTTP/1.1\rHost: h\r\n\r\n", 400 },   /* bare CR */
	{ "\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
	{ "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505 },
	{ "GET / HTTP/0.9\r\nHost: h\r\n\r\n", 505 },
	/* headers */
	{ "GET / HTTP/1.1\r\n\r\n", 400 },                         /* no Host in 1.1 */
	{ "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400 },
	{ "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400 },
	{ "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400 },
	{ "GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400 },              /* space before colon */
	{ "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", 400 }, /* obs-fold */
	{ "GET / HTTP/1.1\r\nHost: h\r\n\tX: a\r\n\r\n", 400 },
	{ "GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", 400 },
	{ "GET / HTTP/1.1\r\nHost: h\r\n: empty\r\n\r\n", 400 },
	{ "GET / HTTP/1.1\r\nHost: h\r\nX: a\x7f\r\n\r\n", 400 },
	{ "GET / HTTP/1.1\r\nHost: h\r\nRange: bytes=0-1\r\nRange: bytes=2-3\r\n\r\n", 400 },
	/* framing */
	{ "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", 400 },
	{ "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 1\r\n\r\n", 400 },
	{ "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400 },
	{ "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n", 400 },
	{ "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
	  "Transfer-Encoding: chunked\r\n\r\n", 400 },
	{ "GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 400 },
	{ "GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400 },
	{ "GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
	  "Transfer-Encoding: chunked\r\n\r\n", 400 },
	{ "GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400 },
	{ "GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501 },
	{ "GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", 413 },
	{ "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n", 413 },
	/* methods */
	{ "POST / HTTP/1.1\r\nHost: h\r\n\r\n", 405 },
	{ "DELETE / HTTP/1.1\r\nHost: h\r\n\r\n", 405 },
	{ "get / HTTP/1.1\r\nHost: h\r\n\r\n", 501 },
	{ "BREW / HTTP/1.1\r\nHost: h\r\n\r\n", 501 },
	/* limits */
	{ "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\nG: 7\r\nH: 8\r\n"
	  "\r\n", 431 },
};

START_TEST(parse_refusals)
{
	for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
		struct sp_http_request r;
		long n = parse(refusals[i].req, &r);
		ck_assert_msg(n == -refusals[i].status, "case %zu: %ld, want -%d", i, n,
			      refusals[i].status);
	}
}
END_TEST

START_TEST(parse_limits)
{
	char req[600];
	struct sp_http_request r;
	char target[300];
	memset(target, 'a', sizeof(target));
	target[0] = '/';
	target[sizeof(target) - 1] = '\0';
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: h\r\n\r\n", target);
	ck_assert_int_eq(parse(req, &r), -414);
	/* a full buffer: no line end yet is a long URI, else big headers */
	ck_assert_int_eq(sp_http_overflow_status("GET /aaaaaaaa", 13), 414);
	ck_assert_int_eq(sp_http_overflow_status("\r\nGET /aaaaaaaa", 15), 414);
	ck_assert_int_eq(sp_http_overflow_status("GET / HTTP/1.1\r\nX: aaaa", 23), 431);
	ck_assert_str_eq(sp_http_reason(431), "Request Header Fields Too Large");
	ck_assert_str_eq(sp_http_reason(299), "Unknown");
}
END_TEST

static int path(const char *target, char *out, unsigned *flags)
{
	return sp_http_path(target, strlen(target), out, 64, flags);
}

START_TEST(path_normalise)
{
	char out[64];
	unsigned f;
	ck_assert_int_eq(path("/", out, &f), 0);
	ck_assert_str_eq(out, ".");
	ck_assert_uint_eq(f, SP_HTTP_PATH_DIR);
	ck_assert_int_eq(path("/a/b.html?x=/../y#z", out, &f), 0);
	ck_assert_str_eq(out, "a/b.html");
	ck_assert_uint_eq(f, 0);
	ck_assert_int_eq(path("//a/./b//c/", out, &f), 0);
	ck_assert_str_eq(out, "a/b/c");
	ck_assert_uint_eq(f, SP_HTTP_PATH_DIR);
	ck_assert_int_eq(path("/a/b/../c", out, &f), 0);
	ck_assert_str_eq(out, "a/c");
	ck_assert_int_eq(path("/a/..", out, &f), 0);
	ck_assert_str_eq(out, ".");
	ck_assert_uint_eq(f & SP_HTTP_PATH_DIR, SP_HTTP_PATH_DIR);
	ck_assert_int_eq(path("/sp%20ace%2Ehtml", out, &f), 0);
	ck_assert_str_eq(out, "sp ace.html");
	ck_assert_int_eq(path("/%252e%252e/x", out, &f), 0); /* decoded once */
	ck_assert_str_eq(out, "%2e%2e/x");
	ck_assert_int_eq(path("/a%2fb", out, &f), 0);
	ck_assert_str_eq(out, "a/b");
	ck_assert_int_eq(path("/.git/config", out, &f), 0);
	ck_assert_uint_eq(f, SP_HTTP_PATH_DOTSEG);
	ck_assert_int_eq(path("/a/.well-known/", out, &f), 0);
	ck_assert_uint_eq(f, SP_HTTP_PATH_DOTSEG | SP_HTTP_PATH_DIR);
	ck_assert_int_eq(path("http://host:80/a/b", out, &f), 0);
	ck_assert_str_eq(out, "a/b");
	ck_assert_int_eq(path("HTTPS://host", out, &f), 0);
	ck_assert_str_eq(out, ".");
	ck_assert_int_eq(path("/caf%C3%A9", out, &f), 0);
	ck_assert_str_eq(out, "caf\xc3\xa9");
}
END_TEST

START_TEST(path_refusals)
{
	static const char *const bad[] = {
		"/../etc/passwd", "/a/../../etc/passwd", "/%2e%2e/etc/passwd", "/%2E%2E%2Fetc",
		"/..%2fetc%2fpasswd", "/a/%2e%2e/%2e%2e/x", "/x%00.html", "/x%0a", "/a\\b",
		"/a%5c..%5cb", "/%", "/%4", "/%zz", "*", "x/y", "", "http:/x", "/a?../..",
	};
	char out[64];
	unsigned f;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int ret = path(bad[i], out, &f);
		if (i == sizeof(bad) / sizeof(bad[0]) - 1) { /* the query is not the path */
			ck_assert_int_eq(ret, 0);
			continue;
		}
		ck_assert_msg(ret == -400, "'%s': %d", bad[i], ret);
	}
	char longp[100];
	memset(longp, 'a', sizeof(longp));
	longp[0] = '/';
	ck_assert_int_eq(sp_http_path(longp, sizeof(longp), out, 64, &f), -414);
	char seg[300] = "/";
	memset(seg + 1, 'b', 280);
	seg[281] = '\0';
	ck_assert_int_eq(sp_http_path(seg, strlen(seg), out, 64, &f), -414);
}
END_TEST

static enum sp_http_range_kind range(const char *v, uint64_t size, uint64_t *a, uint64_t *b)
{
	return sp_http_range((struct sp_http_str){ v, strlen(v) }, size, a, b);
}

START_TEST(ranges)
{
	uint64_t a = 0, b = 0;
	ck_assert_int_eq(range("bytes=0-9", 100, &a, &b), SP_RANGE_OK);
	ck_assert(a == 0 && b == 9);
	ck_assert_int_eq(range("bytes=90-", 100, &a, &b), SP_RANGE_OK);
	ck_assert(a == 90 && b == 99);
	ck_assert_int_eq(range("bytes=90-1000", 100, &a, &b), SP_RANGE_OK);
	ck_assert(a == 90 && b == 99);
	ck_assert_int_eq(range("bytes=-10", 100, &a, &b), SP_RANGE_OK);
	ck_assert(a == 90 && b == 99);
	ck_assert_int_eq(range("bytes=-1000", 100, &a, &b), SP_RANGE_OK);
	ck_assert(a == 0 && b == 99);
	ck_assert_int_eq(range("Bytes=5-5", 100, &a, &b), SP_RANGE_OK);
	ck_assert(a == 5 && b == 5);
	ck_assert_int_eq(range("bytes=100-", 100, &a, &b), SP_RANGE_UNSATISFIABLE);
	ck_assert_int_eq(range("bytes=-0", 100, &a, &b), SP_RANGE_UNSATISFIABLE);
	ck_assert_int_eq(range("bytes=0-", 0, &a, &b), SP_RANGE_UNSATISFIABLE);
	ck_assert_int_eq(range("bytes=99999999999999999999999-", 100, &a, &b),
			 SP_RANGE_UNSATISFIABLE);
	/* ignored: the whole file is sent */
	ck_assert_int_eq(range("bytes=9-0", 100, &a, &b), SP_RANGE_NONE);
	ck_assert_int_eq(range("bytes=0-1,5-6", 100, &a, &b), SP_RANGE_NONE);
	ck_assert_int_eq(range("items=0-1", 100, &a, &b), SP_RANGE_NONE);
	ck_assert_int_eq(range("bytes=", 100, &a, &b), SP_RANGE_NONE);
	ck_assert_int_eq(range("bytes=-", 100, &a, &b), SP_RANGE_NONE);
	ck_assert_int_eq(range("bytes=a-b", 100, &a, &b), SP_RANGE_NONE);
}
END_TEST

static struct sp_http_str S(const char *s)
{
	return (struct sp_http_str){ s, strlen(s) };
}

START_TEST(conditionals)
{
	const char *etag = "\"5-64-1a2b\"";
	ck_assert(sp_http_etag_match_weak(S("\"5-64-1a2b\""), etag));
	ck_assert(sp_http_etag_match_weak(S("W/\"5-64-1a2b\""), etag));
	ck_assert(sp_http_etag_match_weak(S("\"x\", W/\"5-64-1a2b\""), etag));
	ck_assert(sp_http_etag_match_weak(S("*"), etag));
	ck_assert(!sp_http_etag_match_weak(S("\"5-64-1a2c\""), etag));
	ck_assert(!sp_http_etag_match_weak(S("\"5-64-1a2b"), etag));
	ck_assert(!sp_http_etag_match_weak(S("5-64-1a2b"), etag));
	ck_assert(!sp_http_etag_match_weak(S(""), etag));

	time_t t = 784111777; /* Sun, 06 Nov 1994 08:49:37 GMT */
	ck_assert(sp_http_if_range_holds(S("\"5-64-1a2b\""), etag, t));
	ck_assert(!sp_http_if_range_holds(S("W/\"5-64-1a2b\""), etag, t));
	ck_assert(sp_http_if_range_holds(S("Sun, 06 Nov 1994 08:49:37 GMT"), etag, t));
	ck_assert(!sp_http_if_range_holds(S("Sun, 06 Nov 1994 08:49:38 GMT"), etag, t));
	ck_assert(!sp_http_if_range_holds(S("yesterday"), etag, t));
	/* a date on a Wednesday starts with 'W' too, and is still a date */
	ck_assert(sp_http_if_range_holds(S("Wed, 25 Nov 2026 11:10:13 GMT"), etag, 1795605013));
}
END_TEST

START_TEST(dates)
{
	char buf[SP_HTTP_DATE_LEN + 1];
	sp_http_date_format(784111777, buf);
	ck_assert_str_eq(buf, "Sun, 06 Nov 1994 08:49:37 GMT");
	sp_http_date_format(0, buf);
	ck_assert_str_eq(buf, "Thu, 01 Jan 1970 00:00:00 GMT");
	ck_assert_int_eq(sp_http_date_parse(S("Sun, 06 Nov 1994 08:49:37 GMT")), 784111777);
	ck_assert_int_eq(sp_http_date_parse(S("Sunday, 06-Nov-94 08:49:37 GMT")), 784111777);
	ck_assert_int_eq(sp_http_date_parse(S("Sun Nov  6 08:49:37 1994")), 784111777);
	ck_assert_int_eq(sp_http_date_parse(S("Sun, 06 Nov 1994 08:49:37 UTC")), -1);
	ck_assert_int_eq(sp_http_date_parse(S("Sun, 06 Foo 1994 08:49:37 GMT")), -1);
	ck_assert_int_eq(sp_http_date_parse(S("Sun, 06 Nov 1994 24:49:37 GMT")), -1);
	ck_assert_int_eq(sp_http_date_parse(S("Sun, 6 Nov 1994 08:49:37 GMT")), -1);
	ck_assert_int_eq(sp_http_date_parse(S("")), -1);
	ck_assert_int_eq(sp_http_date_parse(S("x")), -1);
	for (time_t t = 0; t < 4000000000; t += 86400 * 97 + 3607) {
		sp_http_date_format(t, buf);
		ck_assert_int_eq(sp_http_date_parse(S(buf)), t);
	}
}
END_TEST

START_TEST(mime_types)
{
	char path[] = "/tmp/test_http_mime.XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	const char *text = "# comment\ntext/x-demo demo DEM2\napplication/x-other html\n"
			   "bad-type-without-slash foo\n\n   \nimage/x-long averyveryverylongextension\n";
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);

	struct sp_mime *m = NULL;
	size_t loaded = 0;
	ck_assert_int_eq(sp_mime_create(path, &m, &loaded), 0);
	unlink(path);
	ck_assert_uint_eq(loaded, 4);
	ck_assert_str_eq(sp_mime_lookup(m, "a/b/index.html"), "text/html; charset=utf-8");
	ck_assert_str_eq(sp_mime_lookup(m, "X.PNG"), "image/png");
	ck_assert_str_eq(sp_mime_lookup(m, "f.demo"), "text/x-demo");
	ck_assert_str_eq(sp_mime_lookup(m, "f.dem2"), "text/x-demo");
	ck_assert_str_eq(sp_mime_lookup(m, "f.foo"), "application/octet-stream");
	ck_assert_str_eq(sp_mime_lookup(m, "noext"), "application/octet-stream");
	ck_assert_str_eq(sp_mime_lookup(m, ".html"), "application/octet-stream");
	ck_assert_str_eq(sp_mime_lookup(m, "dir.html/file"), "application/octet-stream");
	sp_mime_free(m);

	ck_assert_int_eq(sp_mime_create("/nonexistent/mime.types", &m, &loaded), 0);
	ck_assert_uint_eq(loaded, 0);
	ck_assert_str_eq(sp_mime_lookup(m, "a.css"), "text/css; charset=utf-8");
	sp_mime_free(m);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("http");
	TCase *tc = tcase_create("parse");
	tcase_add_test(tc, parse_valid);
	tcase_add_test(tc, parse_incomplete);
	tcase_add_test(tc, parse_byte_by_byte);
	tcase_add_test(tc, parse_refusals);
	tcase_add_test(tc, parse_limits);
	suite_add_tcase(s, tc);
	tc = tcase_create("path");
	tcase_add_test(tc, path_normalise);
	tcase_add_test(tc, path_refusals);
	suite_add_tcase(s, tc);
	tc = tcase_create("headers");
	tcase_add_test(tc, ranges);
	tcase_add_test(tc, conditionals);
	tcase_add_test(tc, dates);
	tcase_add_test(tc, mime_types);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
