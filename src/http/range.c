/* SPDX-License-Identifier: MIT */
/*
 * range.c - Range (RFC 9110 14.2) and the validators of conditional requests
 * (If-None-Match 13.1.2, If-Range 13.1.5). One byte range is served; a request for
 * several is answered with the whole representation, which the RFC allows and which
 * keeps a client from making us send a file many times over in one response.
 */
#include <string.h>

#include "http/http.h"

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* Digits at p[*i..len) into *out, saturating; false when there are none. */
static bool number(const char *p, size_t len, size_t *i, uint64_t *out)
{
	size_t s = *i;
	uint64_t n = 0;
	while (*i < len && is_digit(p[*i])) {
		uint64_t d = (uint64_t)(p[*i] - '0');
		n = n > (UINT64_MAX - d) / 10 ? UINT64_MAX : n * 10 + d;
		(*i)++;
	}
	*out = n;
	return *i > s;
}

enum sp_http_range_kind sp_http_range(struct sp_http_str v, uint64_t size, uint64_t *first,
				      uint64_t *last)
{
	const char *p = v.p;
	size_t len = v.len, i = 6;
	if (len < 7 || !sp_http_str_eq((struct sp_http_str){ p, 6 }, "bytes="))
		return SP_RANGE_NONE;
	while (i < len && is_ows(p[i]))
		i++;
	uint64_t a = 0, b = UINT64_MAX;
	bool suffix = i < len && p[i] == '-';
	if (suffix) {
		i++;
		if (!number(p, len, &i, &b))
			return SP_RANGE_NONE;
	} else {
		if (!number(p, len, &i, &a) || i >= len || p[i] != '-')
			return SP_RANGE_NONE;
		i++;
		if (i < len && is_digit(p[i]))
			number(p, len, &i, &b);
		if (b < a)
			return SP_RANGE_NONE; /* invalid: ignored */
	}
	while (i < len && is_ows(p[i]))
		i++;
	if (i < len)
		return SP_RANGE_NONE; /* several ranges or trailing bytes: send it all */

	if (suffix) {
		if (b == 0 || size == 0)
			return SP_RANGE_UNSATISFIABLE;
		*first = b >= size ? 0 : size - b;
		*last = size - 1;
		return SP_RANGE_OK;
	}
	if (a >= size)
		return SP_RANGE_UNSATISFIABLE;
	*first = a;
	*last = b >= size ? size - 1 : b;
	return SP_RANGE_OK;
}

bool sp_http_etag_match_weak(struct sp_http_str v, const char *etag)
{
	size_t elen = strlen(etag), i = 0;
	/* our tag is "\"opaque\""; compare the opaque parts, ignoring a W/ on theirs */
	const char *opaque = etag + 1;
	size_t olen = elen - 2;

	while (i < v.len) {
		while (i < v.len && (is_ows(v.p[i]) || v.p[i] == ','))
			i++;
		if (i >= v.len)
			break;
		if (v.p[i] == '*')
			return true;
		if (i + 1 < v.len && v.p[i] == 'W' && v.p[i + 1] == '/')
			i += 2;
		if (i >= v.len || v.p[i] != '"')
			return false; /* not a list of entity tags: no match */
		const char *q = memchr(v.p + i + 1, '"', v.len - i - 1);
		if (!q)
			return false;
		size_t n = (size_t)(q - (v.p + i + 1));
		if (n == olen && !memcmp(v.p + i + 1, opaque, n))
			return true;
		i = (size_t)(q - v.p) + 1;
	}
	return false;
}

bool sp_http_if_range_holds(struct sp_http_str v, const char *etag, time_t mtime)
{
	if (v.len > 1 && (v.p[0] == '"' || (v.p[0] == 'W' && v.p[1] == '/')))
		/* a strong comparison: a weak tag never matches */
		return v.len == strlen(etag) && !memcmp(v.p, etag, v.len);
	time_t t = sp_http_date_parse(v);
	return t != (time_t)-1 && t == mtime;
}
