/* SPDX-License-Identifier: MIT */
/*
 * parse.c - the strict HTTP/1.x request-head parser (RFC 9112 sections 2-3, 5-6).
 *
 * Two steps. A scan finds the end of the head (an empty line) and refuses bare LF and a
 * CR not followed by LF at once; it resumes where it stopped, so slow clients cost O(n).
 * Then the complete head is parsed field by field. Refused, with the status:
 *   400  bad request line, whitespace before a colon, obs-fold, control bytes, bad or
 *        duplicate Host / Content-Length / Range, Content-Length with Transfer-Encoding,
 *        Transfer-Encoding in HTTP/1.0 or not ending in chunked, missing Host in 1.1
 *   405  a method of RFC 9110 other than GET and HEAD;     501  a method we do not know
 *   413  a request body (we serve files; nothing is uploaded)
 *   414  a request-target over the limit;                  431  too many header fields
 *   501  a transfer coding other than chunked;             505  a major version other than 1
 */
#include <string.h>

#include "http/http.h"

/* tchar of RFC 9110 5.6.2 */
static bool is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* field-vchar, SP and HTAB (obs-text allowed, as the RFC says recipients may) */
static bool is_value_char(unsigned char c)
{
	return c == '\t' || c == ' ' || (c >= 0x21 && c != 0x7f);
}

/* reg-name, IP-literal and port characters of a Host value */
static bool is_host_char(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c && strchr("-._~!$&'()*+,;=%:[]", c) != NULL;
}

bool sp_http_str_eq(struct sp_http_str s, const char *lit)
{
	size_t n = strlen(lit);
	if (s.len != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char a = (unsigned char)s.p[i], b = (unsigned char)lit[i];
		if (a >= 'A' && a <= 'Z')
			a = (unsigned char)(a + 32);
		if (b >= 'A' && b <= 'Z')
			b = (unsigned char)(b + 32);
		if (a != b)
			return false;
	}
	return true;
}

static size_t skip_leading_crlf(const char *buf, size_t len)
{
	size_t i = 0;
	/* RFC 9112 2.2: empty lines before the request line are ignored */
	while (i + 1 < len && buf[i] == '\r' && buf[i + 1] == '\n')
		i += 2;
	return i;
}

int sp_http_overflow_status(const char *buf, size_t len)
{
	size_t start = skip_leading_crlf(buf, len);
	return memchr(buf + start, '\n', len - start) ? 431 : 414;
}

/* Find the end of the head. Returns its length, 0 for more, -400 on a bare LF or CR. */
static long scan(const char *buf, size_t len, size_t *scanned)
{
	size_t start = skip_leading_crlf(buf, len);
	size_t i = *scanned > start ? *scanned : start;

	for (; i < len; i++) {
		char c = buf[i];
		if (i > 0 && buf[i - 1] == '\r' && c != '\n')
			return -400;
		if (c != '\n')
			continue;
		if (i == 0 || buf[i - 1] != '\r')
			return -400;
		/* "\r\n\r\n" ending here, after at least a request line */
		if (i >= start + 3 && buf[i - 2] == '\n')
			return (long)(i + 1);
	}
	*scanned = i;
	return 0;
}

static enum sp_http_method method_of(struct sp_http_str m, int *status)
{
	static const char *const other[] = { "POST", "PUT",   "DELETE", "CONNECT",
					     "OPTIONS", "TRACE", "PATCH",  NULL };
	*status = 0;
	/* methods are case-sensitive (RFC 9110 9.1) */
	if (m.len == 3 && !memcmp(m.p, "GET", 3))
		return SP_HTTP_GET;
	if (m.len == 4 && !memcmp(m.p, "HEAD", 4))
		return SP_HTTP_HEAD;
	*status = 501;
	for (unsigned i = 0; other[i]; i++)
		if (m.len == strlen(other[i]) && !memcmp(m.p, other[i], m.len))
			*status = 405;
	return SP_HTTP_OTHER;
}

/* method SP request-target SP HTTP-version CRLF; returns the offset after it or -status */
static long request_line(const char *p, size_t len, const struct sp_http_limits *lim,
			 struct sp_http_request *req)
{
	size_t i = 0;
	while (i < len && is_tchar((unsigned char)p[i]))
		i++;
	if (i == 0 || i >= len || p[i] != ' ')
		return -400;
	req->method_name = (struct sp_http_str){ p, i };
	size_t t = ++i;
	while (i < len && (unsigned char)p[i] > 0x20 && (unsigned char)p[i] < 0x7f)
		i++;
	if (i == t || i >= len || p[i] != ' ')
		return -400;
	req->target = (struct sp_http_str){ p + t, i - t };
	i++;
	/* "HTTP/" DIGIT "." DIGIT CRLF, case-sensitive */
	if (len - i < 10 || memcmp(p + i, "HTTP/", 5) || p[i + 6] != '.' || p[i + 8] != '\r' ||
	    p[i + 9] != '\n')
		return -400;
	char major = p[i + 5], minor = p[i + 7];
	if (major < '0' || major > '9' || minor < '0' || minor > '9')
		return -400;
	if (major != '1')
		return -505;
	req->minor = minor == '0' ? 0 : 1;
	if (req->target.len > lim->max_target)
		return -414;
	return (long)(i + 10);
}

/* Comma-separated list: calls fn on each non-empty element (OWS trimmed). */
static int each_element(struct sp_http_str v, int (*fn)(struct sp_http_str el, void *arg),
			void *arg)
{
	size_t i = 0;
	while (i < v.len) {
		size_t s = i;
		while (i < v.len && v.p[i] != ',')
			i++;
		size_t e = i;
		while (s < e && (v.p[s] == ' ' || v.p[s] == '\t'))
			s++;
		while (e > s && (v.p[e - 1] == ' ' || v.p[e - 1] == '\t'))
			e--;
		if (e > s) {
			int ret = fn((struct sp_http_str){ v.p + s, e - s }, arg);
			if (ret)
				return ret;
		}
		i++; /* past the comma */
	}
	return 0;
}

struct framing {
	bool has_cl, has_te, conn_close, conn_keep_alive;
	uint64_t content_length;
	int te_status;      /* 0, 400 or 501 from the codings */
	bool te_last_chunked;
};

static int connection_token(struct sp_http_str el, void *arg)
{
	struct framing *f = arg;
	if (sp_http_str_eq(el, "close"))
		f->conn_close = true;
	else if (sp_http_str_eq(el, "keep-alive"))
		f->conn_keep_alive = true;
	return 0;
}

static int te_coding(struct sp_http_str el, void *arg)
{
	struct framing *f = arg;
	/* a coding after chunked is an error: chunked must come last */
	if (f->te_last_chunked)
		f->te_status = 400;
	f->te_last_chunked = sp_http_str_eq(el, "chunked");
	if (!f->te_last_chunked && !f->te_status)
		f->te_status = 501;
	return 0;
}

static int content_length(struct sp_http_str v, uint64_t *out)
{
	if (v.len == 0 || v.len > 18)
		return -400; /* 18 digits cannot overflow 64 bits */
	uint64_t n = 0;
	for (size_t i = 0; i < v.len; i++) {
		if (v.p[i] < '0' || v.p[i] > '9')
			return -400;
		n = n * 10 + (uint64_t)(v.p[i] - '0');
	}
	*out = n;
	return 0;
}

/* Remember a field that may appear once: a second one is a 400. */
static int once(struct sp_http_str *slot, bool *seen, struct sp_http_str v)
{
	if (*seen)
		return -400;
	*seen = true;
	*slot = v;
	return 0;
}

struct seen {
	bool host, range, if_range, ims, inm;
};

static int field(struct sp_http_str name, struct sp_http_str v, struct sp_http_request *req,
		 struct framing *f, struct seen *seen)
{
	switch (name.len) {
	case 4:
		if (sp_http_str_eq(name, "host")) {
			for (size_t i = 0; i < v.len; i++)
				if (!is_host_char((unsigned char)v.p[i]))
					return -400;
			return once(&req->host, &seen->host, v);
		}
		break;
	case 5:
		if (sp_http_str_eq(name, "range"))
			return once(&req->range, &seen->range, v);
		break;
	case 8:
		if (sp_http_str_eq(name, "if-range"))
			return once(&req->if_range, &seen->if_range, v);
		break;
	case 10:
		if (sp_http_str_eq(name, "connection"))
			return each_element(v, connection_token, f);
		break;
	case 13:
		if (sp_http_str_eq(name, "if-none-match")) {
			if (seen->inm)
				req->if_none_match_many = true;
			seen->inm = true;
			req->if_none_match = v;
		}
		break;
	case 14:
		if (sp_http_str_eq(name, "content-length")) {
			if (f->has_cl)
				return -400;
			f->has_cl = true;
			return content_length(v, &f->content_length);
		}
		break;
	case 17:
		if (sp_http_str_eq(name, "if-modified-since"))
			return once(&req->if_modified_since, &seen->ims, v);
		if (sp_http_str_eq(name, "transfer-encoding")) {
			if (f->has_te)
				return -400;
			f->has_te = true;
			each_element(v, te_coding, f);
			if (!f->te_last_chunked)
				return -400; /* RFC 9112 6.3: framing cannot be known */
		}
		break;
	}
	return 0;
}

/* One header line p[0..len) (without CRLF). */
static int header_line(const char *p, size_t len, struct sp_http_request *req, struct framing *f,
		       struct seen *seen)
{
	if (p[0] == ' ' || p[0] == '\t')
		return -400; /* obs-fold */
	size_t i = 0;
	while (i < len && is_tchar((unsigned char)p[i]))
		i++;
	if (i == 0 || i >= len || p[i] != ':')
		return -400; /* no name, a bad byte in it, or whitespace before the colon */
	struct sp_http_str name = { p, i };
	size_t s = i + 1, e = len;
	for (size_t k = s; k < e; k++)
		if (!is_value_char((unsigned char)p[k]))
			return -400;
	while (s < e && (p[s] == ' ' || p[s] == '\t'))
		s++;
	while (e > s && (p[e - 1] == ' ' || p[e - 1] == '\t'))
		e--;
	return field(name, (struct sp_http_str){ p + s, e - s }, req, f, seen);
}

static long parse_head(const char *buf, size_t head_len, const struct sp_http_limits *lim,
		       struct sp_http_request *req)
{
	size_t start = skip_leading_crlf(buf, head_len);
	const char *p = buf + start;
	size_t len = head_len - start - 2; /* the final empty line's CRLF */
	long off = request_line(p, len, lim, req);
	if (off < 0)
		return off;

	struct framing f = { 0 };
	struct seen seen = { 0 };
	size_t i = (size_t)off;
	while (i < len) {
		const char *eol = memchr(p + i, '\r', len - i);
		size_t n = (size_t)(eol - (p + i)); /* the scan guarantees CRLF endings */
		if (++req->n_headers > lim->max_headers)
			return -431;
		int ret = header_line(p + i, n, req, &f, &seen);
		if (ret)
			return ret;
		i += n + 2;
	}

	if (f.has_te) {
		if (f.has_cl || req->minor == 0)
			return -400; /* RFC 9112 6.1: both, or chunked in 1.0: faulty framing */
		if (f.te_status)
			return -f.te_status;
	}
	if (req->minor == 1 && !seen.host)
		return -400;
	int status;
	req->method = method_of(req->method_name, &status);
	if (status)
		return -status;
	if (f.has_te || (f.has_cl && f.content_length > 0))
		return -413;
	req->keep_alive = req->minor == 1 ? !f.conn_close : f.conn_keep_alive && !f.conn_close;
	return (long)head_len;
}

long sp_http_parse(const char *buf, size_t len, size_t *scanned, const struct sp_http_limits *lim,
		   struct sp_http_request *req)
{
	long end = scan(buf, len, scanned);
	if (end <= 0)
		return end;
	memset(req, 0, sizeof(*req));
	return parse_head(buf, (size_t)end, lim, req);
}

const char *sp_http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 416: return "Range Not Satisfiable";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}
