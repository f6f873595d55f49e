/* SPDX-License-Identifier: MIT */
/*
 * parse.c - a control command line split into words and checked against the command
 * table (name, arguments). No daemon needed: commands.c runs what this accepts, and the
 * fuzz target and unit tests call it alone.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "control/control.h"

static const struct {
	const char *name;
	enum sp_ctl_cmd cmd;
	int nargs; /* words after the name */
} commands[] = {
	{ "status", SP_CTL_STATUS, 0 },       { "stats", SP_CTL_STATS, 0 },
	{ "shards", SP_CTL_SHARDS, 0 },       { "listeners", SP_CTL_LISTENERS, 0 },
	{ "routes", SP_CTL_ROUTES, 0 },       { "upstreams", SP_CTL_UPSTREAMS, 0 },
	{ "reload", SP_CTL_RELOAD, 0 },       { "drain", SP_CTL_DRAIN, 1 },
	{ "server", SP_CTL_SERVER_ENABLE, 3 }, /* server enable|disable UPSTREAM ADDRESS */
};

static int fail(char *err, size_t errlen, const char *msg)
{
	snprintf(err, errlen, "%s", msg);
	return -EINVAL;
}

/* "WHAT 'WORD'REST": the word is cut at 64 bytes (on a UTF-8 character boundary), so
 * the answer stays one short line. */
static int fail_word(char *err, size_t errlen, const char *what, const char *word,
		     const char *rest)
{
	size_t n = strnlen(word, 64);
	while (n > 0 && word[n] && ((unsigned char)word[n] & 0xc0) == 0x80)
		n--;
	snprintf(err, errlen, "%s '%.*s'%s", what, (int)n, word, rest);
	return -EINVAL;
}

int sp_control_parse(const char *line, size_t len, struct sp_ctl_command *c, char *err,
		     size_t errlen)
{
	const char *words[SP_CTL_MAX_WORDS];
	int n = 0;

	memset(c, 0, sizeof(*c));
	if (len > SP_CTL_LINE_MAX)
		return fail(err, errlen, "command line longer than 4096 bytes");
	memcpy(c->buf, line, len);
	c->buf[len] = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)c->buf[i];
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return fail(err, errlen, "command contains control characters");
	}
	for (char *save = NULL, *tok = strtok_r(c->buf, " \t", &save); tok;
	     tok = strtok_r(NULL, " \t", &save)) {
		if (n == SP_CTL_MAX_WORDS)
			return fail(err, errlen, "too many arguments");
		words[n++] = tok;
	}
	if (n == 0)
		return fail(err, errlen, "empty command");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(words[0], commands[i].name) != 0)
			continue;
		bool ok = n - 1 == commands[i].nargs;
		c->cmd = commands[i].cmd;
		if (ok && c->cmd == SP_CTL_SERVER_ENABLE) {
			if (!strcmp(words[1], "disable"))
				c->cmd = SP_CTL_SERVER_DISABLE;
			else if (strcmp(words[1], "enable") != 0)
				ok = false;
		}
		if (!ok)
			return fail_word(err, errlen, "wrong arguments for", words[0],
					 " (see spargioctl(8))");
		c->name = commands[i].name;
		/* the arguments that name things: drain LISTENER, server ... UPSTREAM ADDRESS */
		for (int k = c->cmd == SP_CTL_DRAIN ? 1 : 2; k < n; k++)
			c->args[c->nargs++] = words[k];
		return 0;
	}
	return fail_word(err, errlen, "unknown command", words[0], "");
}
