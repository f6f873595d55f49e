/* SPDX-License-Identifier: MIT */
/*
 * test_metrics.c - the parts of the metrics handler that need no connection: what it
 * answers to good, odd and hostile request heads (the parser itself has its own suite),
 * incomplete and pipelined heads; and the Prometheus text of a hand-built generation (names, labels escaped,
 * counters summed over shards, histogram buckets cumulative and ending in +Inf).
 */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/metrics.h"
#include "net/listener.h"
#include "pipeline/pipeline.h"

/* Parse s (C string) and return the status, or 0 when more bytes are wanted. */
static int status_of(const char *s, struct sp_mreq *r)
{
	struct sp_mreq tmp;
	size_t scanned = 0;
	if (!r)
		r = &tmp;
	return sp_metrics_request(s, strlen(s), &scanned, r) ? r->status : 0;
}

START_TEST(good_requests)
{
	struct sp_mreq r;
	const char *get = "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n";
	ck_assert_int_eq(status_of(get, &r), 200);
	ck_assert(r.keep_alive && !r.head);
	ck_assert_uint_eq(r.head_len, strlen(get));
	ck_assert_int_eq(status_of("HEAD /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n", &r), 200);
	ck_assert(r.head);
	ck_assert_int_eq(status_of("GET /metrics HTTP/1.0\r\n\r\n", &r), 200);
	ck_assert(!r.keep_alive);
	ck_assert_int_eq(status_of("GET /metrics HTTP/1.1\r\nhOsT:x\r\nConnection: TE, Close\r\n\r\n", &r), 200);
	ck_assert(!r.keep_alive);
	ck_assert_int_eq(status_of("GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", &r), 200);
	ck_assert_int_eq(status_of("GET /metrics HTTP/1.1\r\nHost: \t x \t\r\n\r\n", &r), 200);
}
END_TEST

START_TEST(other_paths_stay_open)
{
	struct sp_mreq r;
	static const char *const other[] = { "/", "/metricsx", "/metrics/", "/Metrics",
					     "/metrics%3f", "http://x/metrics" };
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
		char req[128];
		snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", other[i]);
		ck_assert_msg(status_of(req, &r) == 404, "%s: %d", other[i], r.status);
		ck_assert(r.keep_alive);
	}
}
END_TEST

/* What the parser refuses is answered with its status and closes. */
START_TEST(refusals_close)
{
	static const struct { const char *req; int status; } bad[] = {
		{ "POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 405 },
		{ "DELETE / HTTP/1.1\r\nHost: x\r\n\r\n", 405 },
		{ "get /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 501 },
		{ "GET /metrics HTTP/1.1\nHost: x\n\n", 400 },                    /* bare LF */
		{ "GET /metrics HTTP/1.1\rHost: x\r\n\r\n", 400 },                /* bare CR */
		{ "GET /metrics HTTP/1.1\r\n\r\n", 400 },                         /* no Host */
		{ "GET /metrics HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400 },   /* two */
		{ "GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n", 400 },             /* blank before : */
		{ "GET /metrics HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", 400 }, /* obs-fold */
		{ "GET /metrics HTTP/1.1\r\nHost: x\r\nX: a\x01z\r\n\r\n", 400 },  /* control byte */
		{ "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", 413 },
		{ "GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 413 },
		{ "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -0\r\n\r\n", 400 },
		{ "GET  /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 400 },
		{ "GET /metrics http/1.1\r\nHost: x\r\n\r\n", 400 },
		{ "GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n", 505 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sp_mreq r;
		ck_assert_msg(status_of(bad[i].req, &r) == bad[i].status, "case %zu: %d", i,
			      r.status);
		ck_assert(!r.keep_alive);
	}
}
END_TEST

START_TEST(incomplete_and_oversized)
{
	const char *full = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
	struct sp_mreq r;
	size_t scanned = 0;
	for (size_t n = 0; n < strlen(full); n++) /* a head trickling in */
		ck_assert_int_eq(sp_metrics_request(full, n, &scanned, &r), 0);
	ck_assert_int_eq(sp_metrics_request(full, strlen(full), &scanned, &r), 1);
	ck_assert_int_eq(r.status, 200);

	char *big = malloc(SP_MREQ_HEAD_MAX + 4096);
	strcpy(big, "GET /metrics HTTP/1.1\r\nHost: x\r\nX: ");
	size_t n = strlen(big);
	memset(big + n, 'a', SP_MREQ_HEAD_MAX + 64 - n);
	scanned = 0;
	ck_assert_int_eq(sp_metrics_request(big, SP_MREQ_HEAD_MAX - 1, &scanned, &r), 0);
	ck_assert_int_eq(sp_metrics_request(big, SP_MREQ_HEAD_MAX, &scanned, &r), 1);
	ck_assert_int_eq(r.status, 431);
	ck_assert(!r.keep_alive);
	/* too many fields */
	size_t len = (size_t)sprintf(big, "GET /metrics HTTP/1.1\r\nHost: x\r\n");
	for (int i = 0; i < SP_MREQ_FIELDS_MAX; i++)
		len += (size_t)sprintf(big + len, "X: %d\r\n", i);
	len += (size_t)sprintf(big + len, "\r\n");
	scanned = 0;
	ck_assert_int_eq(sp_metrics_request(big, len, &scanned, &r), 1);
	ck_assert_int_eq(r.status, 431);
	/* an over-long target */
	len = (size_t)sprintf(big, "GET /metrics?");
	memset(big + len, 'q', SP_MREQ_TARGET_MAX);
	len += SP_MREQ_TARGET_MAX;
	len += (size_t)sprintf(big + len, " HTTP/1.1\r\nHost: x\r\n\r\n");
	scanned = 0;
	ck_assert_int_eq(sp_metrics_request(big, len, &scanned, &r), 1);
	ck_assert_int_eq(r.status, 414);
	free(big);
}
END_TEST

START_TEST(pipelined_heads)
{
	const char *two = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n";
	struct sp_mreq r;
	size_t scanned = 0;
	ck_assert_int_eq(sp_metrics_request(two, strlen(two), &scanned, &r), 1);
	ck_assert_int_eq(r.status, 200);
	scanned = 0;
	ck_assert_int_eq(sp_metrics_request(two + r.head_len, strlen(two) - r.head_len, &scanned, &r), 1);
	ck_assert_int_eq(r.status, 404);
}
END_TEST

START_TEST(label_escaping)
{
	struct sp_text t = { 0 };
	sp_text_label(&t, "a\"b\\c\nd");
	ck_assert_str_eq(t.buf, "a\\\"b\\\\c\\nd");
	sp_text_printf(&t, "%s", "");
	ck_assert_uint_eq(t.len, strlen("a\\\"b\\\\c\\nd"));
	sp_text_free(&t);
	ck_assert_ptr_null(t.buf);
	/* growth past the first allocation */
	for (int i = 0; i < 10000; i++)
		sp_text_printf(&t, "%08d\n", i);
	ck_assert_uint_eq(t.len, 90000);
	ck_assert(!t.failed);
	ck_assert_int_eq(memcmp(t.buf + 89991, "00009999\n", 9), 0);
	sp_text_free(&t);
}
END_TEST

/* A generation of one listener and one route over two shards, built by hand. */
START_TEST(text_of_a_generation)
{
	enum { N = 2 };
	struct sp_listener_counters *lc = aligned_alloc(64, sizeof(*lc) * N);
	struct sp_route_counters *rc = aligned_alloc(64, sizeof(*rc) * N);
	struct sp_histogram *h = aligned_alloc(64, sizeof(*h) * N);
	struct sp_acceptor *acc = calloc(N, sizeof(*acc));
	memset(lc, 0, sizeof(*lc) * N);
	memset(rc, 0, sizeof(*rc) * N);
	memset(h, 0, sizeof(*h) * N);
	struct sp_conf_route conf_r = { .name = "web \"main\"\\x" };
	struct sp_route r = { .conf = &conf_r, .counters = rc, .durations = h };
	struct sp_conf_listener conf_l = { .name = "front" };
	struct sp_listener sock = { .nshards = N, .acc = acc, .counters = lc };
	struct sp_gen g = { .number = 7, .nshards = N, .routes = &r, .n_routes = 1 };
	struct sp_gen_listener gl = { .sock = &sock, .conf = &conf_l, .route = &r, .gen = &g };
	g.listeners = &gl;
	g.n_listeners = 1;

	atomic_store(&acc[0].accepted, 3);
	atomic_store(&acc[1].accepted, 4);
	atomic_store(&lc[0].opened, 5);
	atomic_store(&lc[1].closed, 2);
	atomic_store(&lc[1].refused_acl, 2);
	atomic_store(&lc[0].refused_limit, 1);
	atomic_store(&rc[0].opened, 5);
	atomic_store(&rc[1].bytes_in, 1000);
	atomic_store(&rc[0].bytes_out, 2000);
	sp_hist_record(&h[0], 50);      /* 50 us */
	sp_hist_record(&h[1], 2000);    /* 2 ms */
	sp_hist_record(&h[1], 7000000); /* 7 s */

	struct sp_text t = { 0 };
	sp_metrics_text(&t, &g, NULL);
	ck_assert(!t.failed);
	static const char *const want[] = {
		"# TYPE spargiod_listener_accepted_total counter\n",
		"spargiod_listener_accepted_total{listener=\"front\"} 7\n",
		"spargiod_listener_active_connections{listener=\"front\"} 3\n",
		"spargiod_listener_refused_total{listener=\"front\",reason=\"limit\"} 1\n",
		"spargiod_listener_refused_total{listener=\"front\",reason=\"acl\"} 2\n",
		"spargiod_listener_refused_total{listener=\"front\",reason=\"rate_limit\"} 0\n",
		"spargiod_generation 7\n",
		"spargiod_route_sessions_total{route=\"web \\\"main\\\"\\\\x\"} 5\n",
		"spargiod_route_bytes_total{route=\"web \\\"main\\\"\\\\x\",dir=\"in\"} 1000\n",
		"spargiod_route_bytes_total{route=\"web \\\"main\\\"\\\\x\",dir=\"out\"} 2000\n",
		"# TYPE spargiod_route_session_duration_seconds histogram\n",
		"_bucket{route=\"web \\\"main\\\"\\\\x\",le=\"0.0001\"} 1\n",
		"_bucket{route=\"web \\\"main\\\"\\\\x\",le=\"0.001\"} 1\n",
		"_bucket{route=\"web \\\"main\\\"\\\\x\",le=\"0.0025\"} 2\n",
		"_bucket{route=\"web \\\"main\\\"\\\\x\",le=\"5\"} 2\n",
		"_bucket{route=\"web \\\"main\\\"\\\\x\",le=\"10\"} 3\n",
		"_bucket{route=\"web \\\"main\\\"\\\\x\",le=\"+Inf\"} 3\n",
		"spargiod_route_session_duration_seconds_sum{route=\"web \\\"main\\\"\\\\x\"} 7.002050\n",
		"spargiod_route_session_duration_seconds_count{route=\"web \\\"main\\\"\\\\x\"} 3\n",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		ck_assert_msg(strstr(t.buf, want[i]), "missing: %s", want[i]);
	ck_assert_ptr_null(strstr(t.buf, "spargiod_shard_")); /* no engine given */
	/* every line is a comment or "name{labels} value" and the text ends with a newline */
	ck_assert_int_eq(t.buf[t.len - 1], '\n');
	sp_text_free(&t);
	free(lc);
	free(rc);
	free(h);
	free(acc);
}
END_TEST

/* The status stage: GET and HEAD of / and /status.json only, read-only. */
static int status_req(const char *s, struct sp_mreq *r)
{
	size_t scanned = 0;
	return sp_status_request(s, strlen(s), &scanned, r) ? r->status : 0;
}

START_TEST(status_requests)
{
	struct sp_mreq r;
	ck_assert_int_eq(status_req("GET / HTTP/1.1\r\nHost: x\r\n\r\n", &r), 200);
	ck_assert(r.resource == SP_MRES_STATUS_PAGE && r.keep_alive && !r.head);
	ck_assert_int_eq(status_req("HEAD /?x HTTP/1.1\r\nHost: x\r\n\r\n", &r), 200);
	ck_assert(r.resource == SP_MRES_STATUS_PAGE && r.head);
	ck_assert_int_eq(status_req("GET /status.json?t=1 HTTP/1.1\r\nHost: x\r\n\r\n", &r), 200);
	ck_assert(r.resource == SP_MRES_STATUS_JSON);
	ck_assert_int_eq(status_req("HEAD /status.json HTTP/1.0\r\n\r\n", &r), 200);
	ck_assert(r.resource == SP_MRES_STATUS_JSON && r.head && !r.keep_alive);
	/* the metrics stage does not serve the page, nor the status stage /metrics */
	ck_assert_int_eq(status_of("GET /status.json HTTP/1.1\r\nHost: x\r\n\r\n", &r), 404);
	ck_assert_int_eq(status_of("GET / HTTP/1.1\r\nHost: x\r\n\r\n", &r), 404);
	ck_assert_int_eq(status_of("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &r), 200);
	ck_assert(r.resource == SP_MRES_METRICS);
	static const char *const other[] = { "/metrics", "/status", "/status.json/", "//",
					     "/index.html", "/status.jso", "/Status.json" };
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
		char req[128];
		snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", other[i]);
		ck_assert_msg(status_req(req, &r) == 404, "%s: %d", other[i], r.status);
		ck_assert(r.keep_alive);
	}
	/* nothing but GET and HEAD: no command goes through the page */
	static const char *const methods[] = { "POST", "PUT", "DELETE", "PATCH", "OPTIONS",
					       "TRACE", "CONNECT" };
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		char req[128];
		snprintf(req, sizeof(req), "%s /status.json HTTP/1.1\r\nHost: x\r\n\r\n",
			 methods[i]);
		ck_assert_msg(status_req(req, &r) == 405, "%s: %d", methods[i], r.status);
		ck_assert(!r.keep_alive);
	}
	ck_assert_int_eq(status_req("BREW / HTTP/1.1\r\nHost: x\r\n\r\n", &r), 501);
	ck_assert(!r.keep_alive);
}
END_TEST

/* /status.json of a hand-built generation: valid JSON, names escaped, figures summed. */
START_TEST(status_json_of_a_generation)
{
	enum { N = 2 };
	struct sp_listener_counters *lc = aligned_alloc(64, sizeof(*lc) * N);
	struct sp_route_counters *rc = aligned_alloc(64, sizeof(*rc) * N);
	struct sp_histogram *h = aligned_alloc(64, sizeof(*h) * N);
	struct sp_acceptor *acc = calloc(N, sizeof(*acc));
	memset(lc, 0, sizeof(*lc) * N);
	memset(rc, 0, sizeof(*rc) * N);
	memset(h, 0, sizeof(*h) * N);
	struct sp_conf_route conf_r = { .name = "web \"m\xc3\xa4in\"\\x</script>" };
	struct sp_route r = { .conf = &conf_r, .counters = rc, .durations = h };
	struct sp_conf_listener conf_l = { .name = "front", .route = &conf_r };
	conf_l.bind.text = "127.0.0.1:8080";
	struct sp_listener sock = { .nshards = N, .acc = acc, .counters = lc };
	struct sp_gen g = { .number = 7, .nshards = N, .routes = &r, .n_routes = 1 };
	struct sp_gen_listener gl = { .sock = &sock, .conf = &conf_l, .route = &r, .gen = &g };
	g.listeners = &gl;
	g.n_listeners = 1;
	atomic_store(&acc[0].accepted, 3);
	atomic_store(&acc[1].accepted, 4);
	atomic_store(&lc[0].opened, 5);
	atomic_store(&lc[1].closed, 2);
	atomic_store(&rc[0].opened, 5);
	sp_hist_record(&h[1], 2000);

	struct sp_text t = { 0 };
	ck_assert_int_eq(sp_status_json(&t, &g, NULL), 0);
	ck_assert(!t.failed && t.buf[t.len - 1] == '\n');
	json_error_t err;
	json_t *j = json_loadb(t.buf, t.len, 0, &err);
	ck_assert_msg(j != NULL, "not JSON: %s: %s", err.text, t.buf);
	ck_assert(json_is_true(json_object_get(j, "ok")));
	ck_assert_int_eq(json_integer_value(json_object_get(j, "generation")), 7);
	ck_assert(json_is_real(json_object_get(j, "uptime_s")));
	ck_assert_uint_eq(json_array_size(json_object_get(j, "shards")), 0); /* no engine */
	ck_assert_uint_eq(json_array_size(json_object_get(j, "upstreams")), 0);
	json_t *l = json_array_get(json_object_get(j, "listeners"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(l, "name")), "front");
	ck_assert_str_eq(json_string_value(json_object_get(l, "bind")), "127.0.0.1:8080");
	ck_assert_int_eq(json_integer_value(json_object_get(l, "accepted")), 7);
	ck_assert_int_eq(json_integer_value(json_object_get(l, "active")), 3);
	json_t *rj = json_array_get(json_object_get(j, "routes"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(rj, "name")), conf_r.name);
	ck_assert_int_eq(json_integer_value(json_object_get(rj, "sessions")), 5);
	ck_assert(json_is_integer(json_object_get(rj, "p50_us")));
	/* ASCII only (names are \u-escaped): the page reads it with JSON.parse and puts
	 * names in the DOM as text, never as HTML */
	for (size_t i = 0; i < t.len; i++)
		ck_assert((unsigned char)t.buf[i] < 0x80);
	json_decref(j);
	sp_text_free(&t);
	free(lc);
	free(rc);
	free(h);
	free(acc);
}
END_TEST

/* The page is built in whole: one HTML document, nothing loaded from elsewhere. */
START_TEST(status_page_built_in)
{
	ck_assert_uint_eq(strlen(sp_status_page_html), sp_status_page_len);
	ck_assert(sp_status_page_len > 1000);
	ck_assert_int_eq(strncmp(sp_status_page_html, "<!DOCTYPE html>", 15), 0);
	ck_assert_ptr_nonnull(strstr(sp_status_page_html, "</html>\n"));
	ck_assert_ptr_nonnull(strstr(sp_status_page_html, "fetch(\"status.json\""));
	ck_assert_ptr_null(strstr(sp_status_page_html, "http://"));
	ck_assert_ptr_null(strstr(sp_status_page_html, "https://"));
	ck_assert_ptr_null(strstr(sp_status_page_html, " src="));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, good_requests);
	tcase_add_test(tc, other_paths_stay_open);
	tcase_add_test(tc, refusals_close);
	tcase_add_test(tc, incomplete_and_oversized);
	tcase_add_test(tc, pipelined_heads);
	tcase_add_test(tc, label_escaping);
	tcase_add_test(tc, text_of_a_generation);
	tcase_add_test(tc, status_requests);
	tcase_add_test(tc, status_json_of_a_generation);
	tcase_add_test(tc, status_page_built_in);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
