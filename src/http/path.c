/* SPDX-License-Identifier: MIT */
/*
 * path.c - from a request-target to a path relative to the served root.
 *
 * Decoding happens once, before normalisation, so "%2e%2e/" and "..%2f" are dot-dot
 * segments like "../" and are resolved (or refused) the same way; "%252e" stays the
 * literal "%2e". Normalisation is lexical: the file system check that matters comes
 * after, from openat2(RESOLVE_BENEATH) in the handler, which also catches symbolic links.
 */
#include <string.h>

#include "http/http.h"

static int hex(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Skip "http://authority" or "https://authority" of an absolute-form target. */
static size_t skip_absolute(const char *t, size_t len)
{
	size_t i;
	if (len >= 7 && sp_http_str_eq((struct sp_http_str){ t, 7 }, "http://"))
		i = 7;
	else if (len >= 8 && sp_http_str_eq((struct sp_http_str){ t, 8 }, "https://"))
		i = 8;
	else
		return 0;
	while (i < len && t[i] != '/' && t[i] != '?' && t[i] != '#')
		i++;
	return i;
}

/* Append segment seg[0..n) to out (at *o), resolving "." and "..". */
static int segment(const char *seg, size_t n, char *out, size_t size, size_t *o, unsigned *flags)
{
	if (n == 0 || (n == 1 && seg[0] == '.'))
		return 0;
	if (n == 2 && seg[0] == '.' && seg[1] == '.') {
		if (*o == 0)
			return -400; /* above the root */
		while (*o > 0 && out[*o - 1] != '/')
			(*o)--;
		if (*o > 0)
			(*o)--; /* the '/' before the removed segment */
		return 0;
	}
	if (seg[0] == '.')
		*flags |= SP_HTTP_PATH_DOTSEG;
	if (*o + (*o ? 1 : 0) + n + 1 > size)
		return -414;
	if (*o)
		out[(*o)++] = '/';
	memcpy(out + *o, seg, n);
	*o += n;
	return 0;
}

int sp_http_path(const char *target, size_t len, char *out, size_t size, unsigned *flags)
{
	size_t i = skip_absolute(target, len);
	size_t end = i;
	while (end < len && target[end] != '?' && target[end] != '#')
		end++;
	if (i == end && i > 0) { /* "http://host" alone means the root */
		target = "/";
		i = 0;
		end = 1;
	}
	if (i >= end || target[i] != '/' || size < 2)
		return -400;

	*flags = 0;
	char seg[256];
	size_t n = 0, o = 0;
	for (; i <= end; i++) {
		unsigned char c;
		if (i == end) {
			c = '/'; /* flushes the last segment */
		} else if (target[i] == '%') {
			int h = i + 2 < end ? hex((unsigned char)target[i + 1]) : -1;
			int l = h >= 0 ? hex((unsigned char)target[i + 2]) : -1;
			if (l < 0)
				return -400;
			c = (unsigned char)(h << 4 | l);
			i += 2; /* an encoded '/' separates segments like a plain one */
		} else {
			c = (unsigned char)target[i];
		}
		if (c < 0x20 || c == 0x7f || c == '\\')
			return -400; /* NUL and other control bytes, Windows separators */
		if (c != '/') {
			if (n == sizeof(seg))
				return -414; /* NAME_MAX is 255 */
			seg[n++] = (char)c;
			continue;
		}
		/* a path ending in "/", "/." or "/.." names a directory */
		if (i == end && (n == 0 || (seg[0] == '.' && (n == 1 || (n == 2 && seg[1] == '.')))))
			*flags |= SP_HTTP_PATH_DIR;
		int ret = segment(seg, n, out, size, &o, flags);
		if (ret)
			return ret;
		n = 0;
	}
	if (o == 0) {
		*flags |= SP_HTTP_PATH_DIR;
		out[o++] = '.';
	}
	out[o] = '\0';
	return 0;
}
