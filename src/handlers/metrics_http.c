/* SPDX-License-Identifier: MIT */
/*
 * metrics_http.c - what the `metrics` handler answers to a request head. The head is
 * read by the project's one strict HTTP/1.x parser (src/http/parse.c, shared with the
 * `files` handler); here only the resource is decided: GET or HEAD of /metrics (any
 * query), or for the `status` stage of / and /status.json, is a 200, any other path a
 * 404 on a connection that stays open; whatever the parser refuses (any method but GET
 * and HEAD among them) is answered with its status and closes.
 */
#include <string.h>

#include "handlers/metrics.h"
#include "http/http.h"

static const struct sp_http_limits limits = {
	.max_target = SP_MREQ_TARGET_MAX,
	.max_headers = SP_MREQ_FIELDS_MAX,
};

/* The path of the target (origin form, before any query) is exactly path. */
static bool is_path(struct sp_http_str target, const char *path)
{
	const char *q = memchr(target.p, '?', target.len);
	size_t n = q ? (size_t)(q - target.p) : target.len;
	return n == strlen(path) && memcmp(target.p, path, n) == 0;
}

static int refuse(struct sp_mreq *r, int status)
{
	r->status = status;
	r->keep_alive = false;
	return 1;
}

static int request(const char *buf, size_t len, size_t *scanned, struct sp_mreq *r,
		   bool status)
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
	r->status = 200;
	if (!status && is_path(req.target, "/metrics"))
		r->resource = SP_MRES_METRICS;
	else if (status && is_path(req.target, "/"))
		r->resource = SP_MRES_STATUS_PAGE;
	else if (status && is_path(req.target, "/status.json"))
		r->resource = SP_MRES_STATUS_JSON;
	else
		r->status = 404;
	return 1;
}

int sp_metrics_request(const char *buf, size_t len, size_t *scanned, struct sp_mreq *r)
{
	return request(buf, len, scanned, r, false);
}

int sp_status_request(const char *buf, size_t len, size_t *scanned, struct sp_mreq *r)
{
	return request(buf, len, scanned, r, true);
}
