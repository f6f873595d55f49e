/* SPDX-License-Identifier: MIT */
/*
 * test_exec.c - the exec handler's route state on hand-built configs: the environment
 * template (a clean PATH, the configured variables over it, systemd's and the
 * per-connection names never taken from the config), the rlimits children get (the
 * starting soft RLIMIT_NOFILE, or the configured limits), users and groups resolved at
 * init (an unknown one fails the route), and max_instances without a queue (admit up to
 * the limit, refuse past it, a released slot admits again).
 */
#include <check.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "handlers/exec.h"

static char *argv_cat[] = { "/bin/cat", NULL };

static struct sp_conf_exec conf(char **env, size_t n_env)
{
	static char *none[] = { NULL };
	return (struct sp_conf_exec){ .argv = argv_cat, .argc = 1, .max_instances = 2,
				      .env = env ? env : none, .n_env = n_env,
				      .working_dir = "/", .queue_timeout_ms = 10000,
				      .kill_grace_ms = 5000 };
}

static const char *env_get(const struct exec_route *r, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < r->n_env; i++)
		if (!strncmp(r->env[i], name, n) && r->env[i][n] == '=')
			return r->env[i] + n + 1;
	return NULL;
}

START_TEST(test_env_template)
{
	char *env[] = { "GREETING=hi there", "PATH=/opt/bin", "NOTIFY_SOCKET=/run/x",
			"LISTEN_FDS=3", "WATCHDOG_USEC=1", "REMOTE_ADDR=1.2.3.4",
			"SPARGIOD_ROUTE=forged", "EMPTY=", NULL };
	struct sp_conf_exec c = conf(env, 8);
	struct exec_route r = { 0 };
	char err[256] = "";
	ck_assert_int_eq(exec_route_init(&r, &c, 2, err, sizeof(err)), 0);
	ck_assert_str_eq(env_get(&r, "GREETING"), "hi there");
	ck_assert_str_eq(env_get(&r, "PATH"), "/opt/bin"); /* the configured one, once */
	ck_assert_str_eq(env_get(&r, "EMPTY"), "");
	ck_assert_uint_eq(r.n_env, 3);
	ck_assert_ptr_null(env_get(&r, "NOTIFY_SOCKET"));
	ck_assert_ptr_null(env_get(&r, "LISTEN_FDS"));
	ck_assert_ptr_null(env_get(&r, "WATCHDOG_USEC"));
	ck_assert_ptr_null(env_get(&r, "REMOTE_ADDR"));
	ck_assert_ptr_null(env_get(&r, "SPARGIOD_ROUTE"));
	ck_assert(!r.set_ids);
	exec_route_fini(&r);

	c = conf(NULL, 0);
	memset(&r, 0, sizeof(r));
	ck_assert_int_eq(exec_route_init(&r, &c, 2, err, sizeof(err)), 0);
	ck_assert_uint_eq(r.n_env, 1);
	ck_assert_str_eq(r.env[0],
			 "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
	exec_route_fini(&r);
}
END_TEST

START_TEST(test_rlimits)
{
	struct sp_conf_exec c = conf(NULL, 0);
	struct exec_route r = { 0 };
	char err[256];
	struct rlimit now;
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &now), 0);
	ck_assert_int_eq(exec_route_init(&r, &c, 1, err, sizeof(err)), 0);
	ck_assert_uint_eq(r.n_rlimits, 1);
	ck_assert_int_eq(r.rlimits[0].resource, RLIMIT_NOFILE);
	ck_assert_uint_eq(r.rlimits[0].lim.rlim_cur, exec_initial_nofile());
	ck_assert_uint_eq(r.rlimits[0].lim.rlim_max, now.rlim_max);
	exec_route_fini(&r);

	c.limits.nofile = 64;
	c.limits.as = 1ull << 30;
	c.limits.cpu = 3;
	memset(&r, 0, sizeof(r));
	ck_assert_int_eq(exec_route_init(&r, &c, 1, err, sizeof(err)), 0);
	ck_assert_uint_eq(r.n_rlimits, 3);
	ck_assert_uint_eq(r.rlimits[0].lim.rlim_cur, 64);
	ck_assert_uint_eq(r.rlimits[0].lim.rlim_max, 64);
	ck_assert_int_eq(r.rlimits[1].resource, RLIMIT_AS);
	ck_assert_uint_eq(r.rlimits[1].lim.rlim_cur, 1ull << 30);
	ck_assert_int_eq(r.rlimits[2].resource, RLIMIT_CPU);
	ck_assert_uint_eq(r.rlimits[2].lim.rlim_cur, 3);
	ck_assert_uint_eq(r.rlimits[2].lim.rlim_max, 4); /* SIGXCPU, then SIGKILL a second on */
	exec_route_fini(&r);
}
END_TEST

START_TEST(test_users)
{
	struct sp_conf_exec c = conf(NULL, 0);
	struct exec_route r = { 0 };
	char err[256] = "";

	c.user = "no-such-user-xyz";
	ck_assert_int_lt(exec_route_init(&r, &c, 1, err, sizeof(err)), 0);
	ck_assert_str_eq(err, "no user 'no-such-user-xyz' on this system");
	exec_route_fini(&r);

	c.user = NULL;
	c.group = "no-such-group-xyz";
	memset(&r, 0, sizeof(r));
	ck_assert_int_lt(exec_route_init(&r, &c, 1, err, sizeof(err)), 0);
	ck_assert_str_eq(err, "no group 'no-such-group-xyz' on this system");
	exec_route_fini(&r);

	if (geteuid() != 0)
		return; /* switching needs root: the rest is for root */
	c.group = NULL;
	c.user = "nobody";
	memset(&r, 0, sizeof(r));
	ck_assert_int_eq(exec_route_init(&r, &c, 1, err, sizeof(err)), 0);
	ck_assert(r.set_ids);
	ck_assert_uint_ne(r.uid, 0);
	ck_assert_uint_ge(r.n_groups, 1);
	ck_assert_str_eq(env_get(&r, "USER"), "nobody");
	ck_assert_str_eq(env_get(&r, "LOGNAME"), "nobody");
	ck_assert_ptr_nonnull(env_get(&r, "HOME"));
	exec_route_fini(&r);

	c.user = NULL;
	c.group = "daemon";
	memset(&r, 0, sizeof(r));
	if (exec_route_init(&r, &c, 1, err, sizeof(err)) == 0) { /* a group alone: just it */
		ck_assert(r.set_ids);
		ck_assert_uint_eq(r.uid, 0);
		ck_assert_uint_eq(r.n_groups, 1);
		ck_assert_uint_eq(r.groups[0], r.gid);
		ck_assert_ptr_null(env_get(&r, "USER"));
	}
	exec_route_fini(&r);
}
END_TEST

START_TEST(test_instances_without_queue)
{
	struct sp_conf_exec c = conf(NULL, 0);
	struct exec_route r = { 0 };
	char err[256];
	struct sp_conf_route rc = { .name = "r" };
	struct sp_route route = { .conf = &rc };
	struct exec_session e[3];

	ck_assert_int_eq(exec_route_init(&r, &c, 1, err, sizeof(err)), 0);
	memset(e, 0, sizeof(e));
	for (int i = 0; i < 3; i++) {
		e[i].r = &r;
		e[i].s.route = &route;
	}
	ck_assert_int_eq(exec_queue_admit(&e[0]), EXEC_RUN);
	ck_assert_int_eq(exec_queue_admit(&e[1]), EXEC_RUN);
	ck_assert_int_eq(exec_queue_admit(&e[2]), EXEC_REFUSED);
	ck_assert_uint_eq(atomic_load(&r.q.running), 2);
	ck_assert_uint_eq(atomic_load(&r.q.refused), 1);
	ck_assert(!e[2].counted);
	exec_queue_release(&e[0]); /* nobody waits: no message to any shard */
	exec_queue_release(&e[0]); /* a second release of the same slot is a no-op */
	ck_assert_uint_eq(atomic_load(&r.q.running), 1);
	ck_assert_int_eq(exec_queue_admit(&e[2]), EXEC_RUN);
	ck_assert_uint_eq(atomic_load(&r.q.running), 2);
	exec_route_fini(&r);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("exec");
	TCase *tc = tcase_create("route");
	tcase_add_test(tc, test_env_template);
	tcase_add_test(tc, test_rlimits);
	tcase_add_test(tc, test_users);
	tcase_add_test(tc, test_instances_without_queue);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
