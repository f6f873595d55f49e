/* SPDX-License-Identifier: MIT */
/*
 * http.h - the HTTP/1.x pieces of spargiod that read outside input: a strict request-head
 * parser (RFC 9112), request-path decoding and normalisation, Range and conditional
 * headers, HTTP dates. Pure functions on byte buffers: no I/O, no allocation, no engine;
 * the `files` handler drives them, the Check suite and the libFuzzer target feed them.
 *
 * Strict means: what a lenient parser would guess at is refused with the status a client
 * can act on (400, 405, 413, 414, 431, 501, 505), and the connection is then closed, so
 * two parties never disagree about where a request ends (request smuggling).
 */
#ifndef SP_HTTP_H
#define SP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* A slice of the caller's buffer (not NUL-terminated). */
struct sp_http_str {
	const char *p;
	size_t len;
};

enum sp_http_method { SP_HTTP_GET, SP_HTTP_HEAD, SP_HTTP_OTHER };

struct sp_http_limits {
	size_t max_target;   /* longest request-target; longer: 414 */
	unsigned max_headers; /* most header fields; more: 431 */
};

struct sp_http_request {
	enum sp_http_method method;
	struct sp_http_str method_name, target;
	unsigned minor;  /* HTTP/1.minor: 0 or 1 (1.2 and later are answered as 1.1) */
	bool keep_alive; /* after the version's default and Connection: close/keep-alive */
	unsigned n_headers;
	/* p is NULL for a field that is absent; a present but empty one has p set, len 0 */
	struct sp_http_str host, range, if_range, if_none_match, if_modified_since;
	bool if_none_match_many; /* several If-None-Match fields: never matched */
};

/*
 * Parse the request head at the start of buf[0..len).
 * Returns the head's length (through the empty line) when it is complete and valid, 0 when
 * more bytes are needed, or -STATUS when the request must be refused with STATUS (400,
 * 405, 413, 414, 431, 501, 505). *scanned carries the scan position between calls on a
 * growing buffer (start it at 0), so a head trickling in byte by byte costs O(len) in all.
 * A caller whose buffer is full while the result is 0 answers sp_http_overflow_status().
 * req's slices point into buf.
 */
long sp_http_parse(const char *buf, size_t len, size_t *scanned, const struct sp_http_limits *lim,
		   struct sp_http_request *req);

/* The status for a head that does not fit in len bytes: 414 while the request line is
 * still unfinished, else 431. */
int sp_http_overflow_status(const char *buf, size_t len);

/* The reason phrase of status ("Not Found"), "Unknown" for others. */
const char *sp_http_reason(int status);

/* ------------------------------------------------------------------------------------ */
/* Paths                                                                                 */

enum {
	SP_HTTP_PATH_DIR = 1u << 0,    /* the path ends with '/' (or is the root) */
	SP_HTTP_PATH_DOTSEG = 1u << 1, /* a segment starts with '.' (a dotfile or dot-dir) */
};

/*
 * Turn a request-target into a path relative to the served root: origin form
 * (/a/b?q) or absolute form (http://host/a/b); the query and fragment are dropped;
 * percent-escapes are decoded exactly once; empty and "." segments are removed and ".."
 * removes the segment before it. Writes "a/b" (or "." for the root) NUL-terminated into
 * out[0..size). Returns 0 with SP_HTTP_PATH_* bits in *flags, or -STATUS: 400 for a
 * target that is not a path, a bad or NUL escape, a control byte or backslash after
 * decoding, or ".." above the root; 414 when out is too small.
 */
int sp_http_path(const char *target, size_t len, char *out, size_t size, unsigned *flags);

/* ------------------------------------------------------------------------------------ */
/* Ranges and conditionals                                                               */

enum sp_http_range_kind {
	SP_RANGE_NONE,          /* no Range, or one to ignore (other unit, bad syntax, several
				   ranges: answered with the whole file, as RFC 9110 allows) */
	SP_RANGE_OK,            /* one satisfiable range: [first, last] */
	SP_RANGE_UNSATISFIABLE, /* 416 */
};

/* A Range field value against a representation of size bytes. */
enum sp_http_range_kind sp_http_range(struct sp_http_str value, uint64_t size, uint64_t *first,
				      uint64_t *last);

/* If-None-Match value against our strong etag ("\"...\""): true when one of its entity
 * tags matches by the weak comparison, or it is "*". */
bool sp_http_etag_match_weak(struct sp_http_str value, const char *etag);

/* If-Range: true when it names exactly our strong etag, or is a date equal to mtime. */
bool sp_http_if_range_holds(struct sp_http_str value, const char *etag, time_t mtime);

/* ------------------------------------------------------------------------------------ */
/* Dates                                                                                 */

#define SP_HTTP_DATE_LEN 29 /* "Sun, 06 Nov 1994 08:49:37 GMT" */

/* IMF-fixdate of t into out[SP_HTTP_DATE_LEN + 1]. */
void sp_http_date_format(time_t t, char *out);

/* An HTTP-date in any of its three forms (IMF-fixdate, RFC 850, asctime); -1 if none. */
time_t sp_http_date_parse(struct sp_http_str s);

/* ASCII case-insensitive equality of s and the NUL-terminated lit. */
bool sp_http_str_eq(struct sp_http_str s, const char *lit);

#endif
