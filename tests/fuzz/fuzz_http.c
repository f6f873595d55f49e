/* SPDX-License-Identifier: MIT */
/*
 * fuzz_http.c - libFuzzer target for the HTTP request parser of src/http: any bytes as a
 * request head, parsed whole and again in two pieces (the scan position carried over
 * must give the same answer), then the parsed target through path decoding and the
 * header values through Range, If-None-Match, If-Range and the date parser. Checks the
 * parser's promises: statuses from its list only, slices inside the buffer, paths
 * without "..", NUL or a leading '/'. Built and run by run-fuzz-http.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

#define CHECK(cond)                                                                            \
	do {                                                                                   \
		if (!(cond))                                                                   \
			abort();                                                               \
	} while (0)

static const struct sp_http_limits lim = { .max_target = 2048, .max_headers = 32 };

static void inside(struct sp_http_str s, const char *buf, size_t len)
{
	if (s.p)
		CHECK(s.p >= buf && s.p + s.len <= buf + len);
}

static void check_path(const struct sp_http_str *t)
{
	char out[512];
	unsigned flags;
	int ret = sp_http_path(t->p, t->len, out, sizeof(out), &flags);
	CHECK(ret == 0 || ret == -400 || ret == -414);
	if (ret)
		return;
	size_t n = strlen(out);
	CHECK(n > 0 && n < sizeof(out) && out[0] != '/');
	CHECK(strcmp(out, "..") && strncmp(out, "../", 3) && !strstr(out, "/../"));
	CHECK(n < 3 || strcmp(out + n - 3, "/.."));
	CHECK(!strchr(out, '\\') && !strstr(out, "//"));
	for (size_t i = 0; i < n; i++)
		CHECK((unsigned char)out[i] >= 0x20 && out[i] != 0x7f);
}

static void check_values(const struct sp_http_request *r)
{
	uint64_t first = 0, last = 0;
	uint64_t size = r->target.len * 97;
	if (sp_http_range(r->range, size, &first, &last) == SP_RANGE_OK)
		CHECK(first <= last && last < size);
	(void)sp_http_etag_match_weak(r->if_none_match, "\"1-2-3\"");
	(void)sp_http_if_range_holds(r->if_range, "\"1-2-3\"", 784111777);
	time_t t = sp_http_date_parse(r->if_modified_since);
	if (t != (time_t)-1) {
		char buf[SP_HTTP_DATE_LEN + 1];
		sp_http_date_format(t, buf);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* a private copy, so reads past the end are caught */
	char *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);

	struct sp_http_request whole, parts;
	size_t scanned = 0;
	long a = sp_http_parse(buf, size, &scanned, &lim, &whole);
	CHECK(a >= 0 || a == -400 || a == -405 || a == -413 || a == -414 || a == -431 ||
	      a == -501 || a == -505);
	CHECK(a <= (long)size);

	size_t cut = size ? data[0] % (size + 1) : 0;
	scanned = 0;
	long b = sp_http_parse(buf, cut, &scanned, &lim, &parts);
	if (b == 0)
		b = sp_http_parse(buf, size, &scanned, &lim, &parts);
	/* resuming the scan gives the answer of one pass over the whole */
	CHECK(b == a);

	if (a > 0) {
		CHECK(whole.method_name.len > 0 && whole.target.len > 0);
		CHECK(whole.target.len <= lim.max_target && whole.n_headers <= lim.max_headers);
		inside(whole.target, buf, (size_t)a);
		inside(whole.host, buf, (size_t)a);
		inside(whole.range, buf, (size_t)a);
		inside(whole.if_range, buf, (size_t)a);
		inside(whole.if_none_match, buf, (size_t)a);
		inside(whole.if_modified_since, buf, (size_t)a);
		check_path(&whole.target);
		check_values(&whole);
	} else if (a == 0 && size) {
		int st = sp_http_overflow_status(buf, size);
		CHECK(st == 414 || st == 431);
	}
	/* the raw bytes as a target and as header values too */
	struct sp_http_str raw = { buf, size };
	check_path(&raw);
	struct sp_http_request r = { .range = raw, .if_none_match = raw, .if_range = raw,
				     .if_modified_since = raw, .target = raw };
	check_values(&r);
	free(buf);
	return 0;
}
