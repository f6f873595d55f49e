/* SPDX-License-Identifier: MIT */
/*
 * metrics_http.c - what the `metrics` handler answers to a request head. The head is
 * read by the project's one strict HTTP/1.x parser (src/http/parse.c, shared with the
 * `files` handler); here only the resource is decided: GET or HEAD of /metrics (any
 * query) is a 200, any other path a 404 on a connection that stays open; whatever the
 * parser refuses is answered with its status and closes.
 */
#include <string.h>

#include "handlers/metrics.h"
#include "http/http.h"

static const struct sp_http_limits limits = {
	.max_target = SP_MREQ_TARGET_MAX,
	.max_headers = SP_MREQ_FIELDS_MAX,
};

/* The path of the target (origin form, before any query) is exactly /metrics. */
static bool is_metrics(struct sp_http_str target)
{
	const char *q = memchr(target.p, '?', target.len);
	size_t n = q ? (size_t)(q - target.p) : target.len;
	return n == 8 && memcmp(target.p, "/metrics", 8) == 0;
}

static int refuse(struct sp_mreq *r, int status)
{
	r->status = status;
	r->keep_alive = false;
	return 1;
}

int sp_metrics_request(const char *buf, size_t len, size_t *scanned, struct sp_mreq *r)
{
	struct sp_http_request req;
	*r = (struct sp_mreq){ 0 };
	long n = sp_http_parse(buf, len, scanned, &limits, &req);
	if (n == 0)
		return len >= SP_MREQ_HEAD_MAX ? refuse(r, sp_http_overflow_status(buf, len)) : 0;
	if (n < 0)
		return refuse(r, (int)-n);
	r->head_len = (size_t)n;
	r->head = req.method == SP_HTTP_HEAD;
	r->keep_alive = req.keep_alive;
	r->status = is_metrics(req.target) ? 200 : 404;
	return 1;
}
