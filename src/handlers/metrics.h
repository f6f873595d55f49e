/* SPDX-License-Identifier: MIT */
/*
 * metrics.h - the pieces of the `metrics` handler that need no connection, for unit
 * tests and the fuzz target: the HTTP/1.1 request-head reader and the Prometheus text
 * builder. The handler itself (metrics.c) moves the bytes; it also serves the `status`
 * stage (the live status page, status.c), over the same HTTP code.
 */
#ifndef SP_METRICS_H
#define SP_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sp_engine;
struct sp_gen;

/* ------------------------------------------------------------------------------------ */
/* Requests (metrics_http.c): heads read by the strict parser of src/http               */

#define SP_MREQ_HEAD_MAX 8192   /* a longer head is answered 431 (or 414) */
#define SP_MREQ_TARGET_MAX 2048 /* a longer request-target: 414 */
#define SP_MREQ_FIELDS_MAX 64   /* more header fields: 431 */

/* What a 200 answers with. */
enum sp_mres {
	SP_MRES_METRICS,     /* metrics: GET /metrics, the Prometheus text */
	SP_MRES_STATUS_PAGE, /* status: GET /, the HTML page */
	SP_MRES_STATUS_JSON, /* status: GET /status.json, the figures of `spargioctl --json stats` */
};

struct sp_mreq {
	size_t head_len; /* bytes of the head, final blank line included (0 when refused) */
	int status;      /* 200, 404, or the parser's refusal (400, 405, 413, 414, 431, 501,
			  * 505), which closes the connection */
	bool head;       /* HEAD: the answer has no body */
	bool keep_alive; /* the connection stays open after the answer */
	enum sp_mres resource; /* when status is 200 */
};

/*
 * What to answer to the request head at buf[0..len): returns 1 with r filled when the
 * head is complete or refused, 0 when more bytes may complete it. *scanned carries the
 * parser's position between calls on a growing buffer (0 for a new head). Only GET and
 * HEAD of /metrics (any query) get 200.
 */
int sp_metrics_request(const char *buf, size_t len, size_t *scanned, struct sp_mreq *r);
/* The same for the `status` stage: GET and HEAD of / and /status.json (any query) get
 * 200; every other path 404; every other method 405 (or 501), which closes. */
int sp_status_request(const char *buf, size_t len, size_t *scanned, struct sp_mreq *r);

/* ------------------------------------------------------------------------------------ */
/* The status page (status.c)                                                            */

extern const char sp_status_page_html[]; /* generated from status_page.html */
extern const size_t sp_status_page_len;
struct sp_text;
/* Append the text of /status.json: sp_stats_json of gen and eng. Returns 0 or -ENOMEM. */
int sp_status_json(struct sp_text *t, const struct sp_gen *gen, struct sp_engine *eng);

/* ------------------------------------------------------------------------------------ */
/* Prometheus text (metrics_text.c)                                                      */

/* A growable text buffer; on allocation failure `failed` is set and appends stop. */
struct sp_text {
	char *buf;
	size_t len, cap;
	bool failed;
};

void sp_text_printf(struct sp_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* value as a Prometheus label value: backslash, double quote and newline escaped */
void sp_text_label(struct sp_text *t, const char *value);
void sp_text_free(struct sp_text *t);

/*
 * Append the exposition (text format 0.0.4) of generation gen and the shards of eng:
 * listeners, routes (session durations as a histogram in seconds), shard counters.
 * Reads the same per-shard counters as the control socket, through stats/figures.h;
 * never blocks, takes no lock. eng may be NULL (no shard families).
 */
void sp_metrics_text(struct sp_text *t, const struct sp_gen *gen, struct sp_engine *eng);

#endif
