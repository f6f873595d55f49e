/* SPDX-License-Identifier: MIT */
/*
 * test_control_parse.c - the control command parser (src/control/parse.c) alone: every
 * command with its arguments, blanks and tabs, and each refusal with its message:
 * unknown commands, wrong arguments, control characters, too many words, empty lines,
 * over-long lines, long words cut on a UTF-8 boundary.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "control/control.h"

static struct sp_ctl_command cmd;
static char err[160];

static int parse(const char *line)
{
	err[0] = 0;
	return sp_control_parse(line, strlen(line), &cmd, err, sizeof(err));
}

START_TEST(every_command)
{
	static const struct { const char *line; enum sp_ctl_cmd cmd; int nargs; } ok[] = {
		{ "status", SP_CTL_STATUS, 0 },       { "stats", SP_CTL_STATS, 0 },
		{ "shards", SP_CTL_SHARDS, 0 },       { "listeners", SP_CTL_LISTENERS, 0 },
		{ "routes", SP_CTL_ROUTES, 0 },       { "upstreams", SP_CTL_UPSTREAMS, 0 },
		{ "reload", SP_CTL_RELOAD, 0 },       { "drain web", SP_CTL_DRAIN, 1 },
		{ "server enable app 10.0.0.1:80", SP_CTL_SERVER_ENABLE, 2 },
		{ "server disable app [::1]:80", SP_CTL_SERVER_DISABLE, 2 },
		{ "  \tstats \t ", SP_CTL_STATS, 0 },
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		ck_assert_msg(parse(ok[i].line) == 0, "%s: %s", ok[i].line, err);
		ck_assert_int_eq(cmd.cmd, ok[i].cmd);
		ck_assert_int_eq(cmd.nargs, ok[i].nargs);
	}
	ck_assert_int_eq(parse("drain\tweb"), 0);
	ck_assert_str_eq(cmd.args[0], "web");
	ck_assert_str_eq(cmd.name, "drain");
	ck_assert_int_eq(parse("server disable app 10.0.0.1:80"), 0);
	ck_assert_str_eq(cmd.args[0], "app");
	ck_assert_str_eq(cmd.args[1], "10.0.0.1:80");
}
END_TEST

START_TEST(refusals)
{
	ck_assert_int_eq(parse("frobnicate now"), -EINVAL);
	ck_assert_str_eq(err, "unknown command 'frobnicate'");
	ck_assert_int_eq(parse("stats now"), -EINVAL);
	ck_assert_str_eq(err, "wrong arguments for 'stats' (see spargioctl(8))");
	ck_assert_int_eq(parse("drain"), -EINVAL);
	ck_assert_str_eq(err, "wrong arguments for 'drain' (see spargioctl(8))");
	ck_assert_int_eq(parse("server toggle app 1.2.3.4:5"), -EINVAL);
	ck_assert_str_eq(err, "wrong arguments for 'server' (see spargioctl(8))");
	ck_assert_int_eq(parse("server enable app"), -EINVAL);
	ck_assert_int_eq(parse(""), -EINVAL);
	ck_assert_str_eq(err, "empty command");
	ck_assert_int_eq(parse(" \t "), -EINVAL);
	ck_assert_str_eq(err, "empty command");
	ck_assert_int_eq(parse("a b c d e f g h i"), -EINVAL);
	ck_assert_str_eq(err, "too many arguments");
	ck_assert_int_eq(parse("stats\x1b[2J"), -EINVAL);
	ck_assert_str_eq(err, "command contains control characters");
	ck_assert_int_eq(parse("stats\x7f"), -EINVAL);
	char nul[] = "stats\0x";
	ck_assert_int_eq(sp_control_parse(nul, 7, &cmd, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "command contains control characters");
	ck_assert_int_eq(parse("STATUS"), -EINVAL); /* commands are lower case */
}
END_TEST

START_TEST(long_input)
{
	char *line = malloc(SP_CTL_LINE_MAX + 2);
	memset(line, 'x', SP_CTL_LINE_MAX + 1);
	line[SP_CTL_LINE_MAX + 1] = 0;
	ck_assert_int_eq(parse(line), -EINVAL);
	ck_assert_str_eq(err, "command line longer than 4096 bytes");
	line[SP_CTL_LINE_MAX] = 0; /* exactly the limit: parsed, an unknown word cut short */
	ck_assert_int_eq(parse(line), -EINVAL);
	ck_assert_uint_lt(strlen(err), 100);
	/* a cut never splits a UTF-8 character: 63 bytes of x, then e-acute (2 bytes) */
	memset(line, 'x', 63);
	strcpy(line + 63, "\xc3\xa9" "yyy");
	ck_assert_int_eq(parse(line), -EINVAL);
	ck_assert_uint_eq(strlen(err), strlen("unknown command ''") + 63);
	free(line);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("control_parse");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, every_command);
	tcase_add_test(tc, refusals);
	tcase_add_test(tc, long_input);
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
