/* SPDX-License-Identifier: MIT */
/*
 * test_upstream.c - the upstream pools of src/upstream on configs loaded from YAML: the
 * smooth weighted round robin sequence, least_conn and random_two under held load,
 * source_hash stability, weights and consistency (removing a server moves only its
 * keys), backups only without a usable primary, retries skipping tried servers, passive
 * failures marking a server down and its trial after the retry period, health check
 * rise/fall, disable/enable by name and address, and state carried across a reload.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config_harness.h"
#include "upstream/upstream.h"

static struct sp_upstreams *pools(const char *yaml, unsigned nshards)
{
	struct sp_config *cfg = load_ok(yaml);
	char err[256];
	struct sp_upstreams *set = sp_upstreams_create(cfg, nshards, err, sizeof(err));
	ck_assert_msg(set != NULL, "%s", err);
	sp_config_unref(cfg); /* the set holds its own reference */
	return set;
}

#define ROUTE "listeners: [{name: l, bind: \"127.0.0.1:1\", route: r}]\n" \
	      "routes: [{name: r, pipeline: [{proxy: {upstream: u}}]}]\n"

/* Pick and give back at once (no load), returning the server index. */
static int pick(struct sp_upstream *u, unsigned shard, uint64_t key)
{
	struct sp_server *s = sp_upstream_pick(u, shard, key, NULL, 0, 1);
	if (!s)
		return -1;
	sp_server_release(s);
	return (int)s->idx;
}

START_TEST(round_robin_smooth)
{
	struct sp_upstreams *set = pools("version: 1\nupstreams:\n- name: u\n  servers:\n"
		"  - {address: \"127.0.0.1:1\", weight: 5}\n"
		"  - {address: \"127.0.0.1:2\", weight: 1}\n"
		"  - {address: \"127.0.0.1:3\", weight: 1}\n" ROUTE, 2);
	struct sp_upstream *u = &set->v[0];
	/* nginx's smooth sequence for 5:1:1 is a a b a c a a: never b or c twice close */
	static const int want[] = { 0, 0, 1, 0, 2, 0, 0 };
	for (int round = 0; round < 3; round++)
		for (int i = 0; i < 7; i++)
			ck_assert_int_eq(pick(u, 0, 0), want[i]);
	/* shard 1 has its own state: it starts the sequence from the beginning */
	ck_assert_int_eq(pick(u, 1, 0), 0);
	ck_assert_int_eq(pick(u, 1, 0), 0);
	ck_assert_int_eq(pick(u, 1, 0), 1);
	sp_upstreams_unref(set);
}
END_TEST

START_TEST(least_conn_and_random_two)
{
	for (int alg = 0; alg < 2; alg++) {
		char yaml[512];
		snprintf(yaml, sizeof(yaml), "version: 1\nupstreams:\n- name: u\n  balance: %s\n"
			 "  servers: [\"127.0.0.1:1\", \"127.0.0.1:2\", {address: \"127.0.0.1:3\", "
			 "weight: 2}]\n" ROUTE, alg ? "random_two" : "least_conn");
		struct sp_upstreams *set = pools(yaml, 1);
		struct sp_upstream *u = &set->v[0];
		/* hold 400 connections: the load follows the weights 1:1:2 */
		for (int i = 0; i < 400; i++)
			ck_assert_ptr_nonnull(sp_upstream_pick(u, 0, 0, NULL, 0, 1));
		unsigned a = u->servers[0].active, b = u->servers[1].active, c = u->servers[2].active;
		ck_assert_uint_eq(a + b + c, 400);
		if (!alg) { /* least_conn is exact */
			ck_assert_uint_eq(a, 100);
			ck_assert_uint_eq(b, 100);
			ck_assert_uint_eq(c, 200);
		} else { /* the lighter of two random picks stays close */
			ck_assert_uint_ge(a, 80);
			ck_assert_uint_le(a, 120);
			ck_assert_uint_ge(c, 160);
			ck_assert_uint_le(c, 240);
		}
		for (int k = 0; k < 3; k++)
			while (u->servers[k].active)
				sp_server_release(&u->servers[k]);
		sp_upstreams_unref(set);
	}
}
END_TEST

START_TEST(source_hash_consistent)
{
	const char *three = "version: 1\nupstreams:\n- name: u\n  balance: source_hash\n"
			    "  servers: [\"127.0.0.1:1\", \"127.0.0.1:2\", \"127.0.0.1:3\"]\n" ROUTE;
	const char *two = "version: 1\nupstreams:\n- name: u\n  balance: source_hash\n"
			  "  servers: [\"127.0.0.1:1\", \"127.0.0.1:3\"]\n" ROUTE;
	struct sp_upstreams *s3 = pools(three, 2), *s2 = pools(two, 2);
	int per[3] = { 0 };
	for (uint64_t key = 0; key < 3000; key++) {
		uint64_t k = key * 0x9e3779b97f4a7c15ull;
		int a = pick(&s3->v[0], 0, k);
		ck_assert_int_eq(pick(&s3->v[0], 1, k), a); /* the same on every shard */
		per[a]++;
		/* without server 2 (index 1), only its keys move */
		int b = pick(&s2->v[0], 0, k);
		const char *was = s3->v[0].servers[a].conf->address.text;
		const char *now = s2->v[0].servers[b].conf->address.text;
		if (a != 1)
			ck_assert_str_eq(was, now);
	}
	for (int i = 0; i < 3; i++) { /* about a third each */
		ck_assert_int_ge(per[i], 850);
		ck_assert_int_le(per[i], 1150);
	}
	/* a down server's keys go elsewhere, the others stay */
	atomic_store(&s3->v[0].servers[0].disabled, true);
	for (uint64_t key = 0; key < 300; key++) {
		ck_assert_int_ne(pick(&s3->v[0], 0, key), 0);
	}
	sp_upstreams_unref(s3);
	sp_upstreams_unref(s2);
}
END_TEST

START_TEST(source_hash_weights)
{
	struct sp_upstreams *set = pools("version: 1\nupstreams:\n- name: u\n  balance: source_hash\n"
		"  servers: [\"127.0.0.1:1\", {address: \"127.0.0.1:2\", weight: 3}]\n" ROUTE, 1);
	int per[2] = { 0 };
	for (uint64_t key = 0; key < 4000; key++)
		per[pick(&set->v[0], 0, key * 0x9e3779b97f4a7c15ull)]++;
	ck_assert_int_ge(per[1], 2800); /* 3 of 4 */
	ck_assert_int_le(per[1], 3200);
	sp_upstreams_unref(set);
}
END_TEST

START_TEST(backup_and_retries)
{
	struct sp_upstreams *set = pools("version: 1\nupstreams:\n- name: u\n  servers:\n"
		"  - \"127.0.0.1:1\"\n  - \"127.0.0.1:2\"\n"
		"  - {address: \"127.0.0.1:9\", backup: true}\n" ROUTE, 1);
	struct sp_upstream *u = &set->v[0];
	for (int i = 0; i < 20; i++)
		ck_assert_int_ne(pick(u, 0, 0), 2); /* primaries up: no backup */
	uint16_t tried[2] = { 0, 1 };
	struct sp_server *s = sp_upstream_pick(u, 0, 0, tried, 1, 1);
	ck_assert_uint_eq(s->idx, 1); /* the next server, not the tried one */
	sp_server_release(s);
	s = sp_upstream_pick(u, 0, 0, tried, 2, 1);
	ck_assert_uint_eq(s->idx, 2); /* every primary tried: the backup */
	sp_server_release(s);
	ck_assert_int_eq(sp_upstream_set_enabled(set, "u", "127.0.0.1:1", false), 0);
	ck_assert_int_eq(sp_upstream_set_enabled(set, "u", "127.0.0.1:2", false), 0);
	ck_assert_str_eq(sp_server_state(&u->servers[0]), "disabled");
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(pick(u, 0, 0), 2); /* no primary usable: the backup */
	ck_assert_int_eq(sp_upstream_set_enabled(set, "u", "127.0.0.1:9", false), 0);
	ck_assert_int_eq(pick(u, 0, 0), -1);
	ck_assert_int_eq(sp_upstream_set_enabled(set, "nope", "127.0.0.1:1", true), -ENOENT);
	ck_assert_int_eq(sp_upstream_set_enabled(set, "u", "127.0.0.1:7", true), -ESRCH);
	ck_assert_int_eq(sp_upstream_set_enabled(set, "u", "127.0.0.1:1", true), 0);
	ck_assert_int_eq(pick(u, 0, 0), 0);
	sp_upstreams_unref(set);
}
END_TEST

START_TEST(passive_failures)
{
	struct sp_upstreams *set = pools("version: 1\nupstreams:\n- name: u\n"
		"  servers: [\"127.0.0.1:1\", \"[::1]:2\"]\n" ROUTE, 1);
	struct sp_upstream *u = &set->v[0];
	struct sp_server *s = &u->servers[0];
	uint64_t now = 1000;
	for (unsigned i = 0; i < SP_PASSIVE_FALL; i++) {
		ck_assert_str_eq(sp_server_state(s), "up");
		ck_assert_ptr_eq(sp_upstream_pick(u, 0, 0, (uint16_t[]){ 1 }, 1, now), s);
		sp_server_failed(s, "Connection refused", now);
	}
	ck_assert_str_eq(sp_server_state(s), "down");
	ck_assert_uint_eq(s->active, 0);
	ck_assert_uint_eq(s->connect_failures, SP_PASSIVE_FALL);
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(pick(u, 0, 0), 1);
	/* after the retry period one connection tries it; success brings it back */
	now += SP_PASSIVE_RETRY_NS;
	struct sp_server *t = sp_upstream_pick(u, 0, 0, NULL, 0, now);
	ck_assert_ptr_eq(t, s);
	ck_assert_ptr_eq(sp_upstream_pick(u, 0, 0, NULL, 0, now), &u->servers[1]);
	sp_server_release(&u->servers[1]);
	sp_server_connected(s);
	sp_server_release(s);
	ck_assert_str_eq(sp_server_state(s), "up");
	ck_assert_uint_eq(s->total, 1);
	/* the printed form of an address finds it too */
	ck_assert_ptr_eq(sp_upstream_server(u, "[::1]:2"), &u->servers[1]);
	sp_upstreams_unref(set);
}
END_TEST

START_TEST(health_rise_fall)
{
	struct sp_upstreams *set = pools("version: 1\nupstreams:\n- name: u\n"
		"  servers: [\"127.0.0.1:1\"]\n"
		"  health_check: {interval: 1s, timeout: 1s, fall: 3, rise: 2}\n" ROUTE, 1);
	struct sp_server *s = &set->v[0].servers[0];
	ck_assert_ptr_nonnull(s->hc);
	sp_server_check_result(s, false, "refused");
	sp_server_check_result(s, false, "refused");
	sp_server_check_result(s, true, NULL); /* a success breaks the run */
	sp_server_check_result(s, false, "refused");
	sp_server_check_result(s, false, "refused");
	ck_assert_str_eq(sp_server_state(s), "up");
	sp_server_check_result(s, false, "refused");
	ck_assert_str_eq(sp_server_state(s), "down");
	sp_server_check_result(s, true, NULL);
	ck_assert_str_eq(sp_server_state(s), "down");
	sp_server_check_result(s, true, NULL);
	ck_assert_str_eq(sp_server_state(s), "up");
	/* with checks, connect failures take it down and only checks bring it back */
	for (int i = 0; i < 3; i++) {
		sp_upstream_pick(&set->v[0], 0, 0, NULL, 0, 1);
		sp_server_failed(s, "refused", 1);
	}
	ck_assert_str_eq(sp_server_state(s), "down");
	ck_assert_ptr_null(sp_upstream_pick(&set->v[0], 0, 0, NULL, 0, UINT64_MAX / 2));
	sp_server_check_result(s, true, NULL);
	sp_server_check_result(s, true, NULL);
	ck_assert_str_eq(sp_server_state(s), "up");
	ck_assert_uint_eq(s->checks_ok, 5);
	ck_assert_uint_eq(s->checks_failed, 5);
	sp_upstreams_unref(set);
}
END_TEST

START_TEST(inherit_across_reload)
{
	const char *yaml = "version: 1\nupstreams:\n- name: u\n"
			   "  servers: [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n" ROUTE;
	struct sp_upstreams *old = pools(yaml, 1);
	sp_upstream_set_enabled(old, "u", "127.0.0.1:2", false);
	atomic_store(&old->v[0].servers[0].down, true);
	atomic_store(&old->v[0].servers[0].total, 7);
	struct sp_upstreams *set = pools("version: 1\nupstreams:\n- name: u\n"
		"  servers: [\"127.0.0.1:2\", \"127.0.0.1:3\", \"127.0.0.1:1\"]\n" ROUTE, 1);
	sp_upstreams_inherit(set, old);
	ck_assert_str_eq(sp_server_state(&set->v[0].servers[0]), "disabled");
	ck_assert_str_eq(sp_server_state(&set->v[0].servers[1]), "up");
	ck_assert_str_eq(sp_server_state(&set->v[0].servers[2]), "down");
	ck_assert_uint_eq(set->v[0].servers[2].total, 7);
	ck_assert_uint_eq(set->v[0].servers[1].total, 0);
	sp_upstreams_unref(old);
	sp_upstreams_unref(set);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("upstream");
	TCase *tc = tcase_create("pools");
	tcase_add_test(tc, round_robin_smooth);
	tcase_add_test(tc, least_conn_and_random_two);
	tcase_add_test(tc, source_hash_consistent);
	tcase_add_test(tc, source_hash_weights);
	tcase_add_test(tc, backup_and_retries);
	tcase_add_test(tc, passive_failures);
	tcase_add_test(tc, health_rise_fall);
	tcase_add_test(tc, inherit_across_reload);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
