/* SPDX-License-Identifier: MIT */
/*
 * fuzz_control.c - libFuzzer target for the control command parser (src/control/parse.c):
 * any bytes as one command line. Checks its promises: an error always has a message,
 * and one in valid UTF-8 when the line was (the daemon's JSON encoder refuses anything
 * else); an accepted command has exactly its arguments, each non-empty, blank-free,
 * inside the command's own buffer; and printing it back and parsing again gives the
 * same command. Built and run by run-fuzz-control.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "control/control.h"

#define CHECK(cond)                                                                            \
	do {                                                                                   \
		if (!(cond))                                                                   \
			abort();                                                               \
	} while (0)

static bool utf8_valid(const unsigned char *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned char c = p[i];
		size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3
			   : (c & 0xf8) == 0xf0 ? 4 : 0;
		if (len == 0 || (len == 2 && c < 0xc2) || i + len > n)
			return false;
		for (size_t k = 1; k < len; k++)
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
		i += len;
	}
	return true;
}

static int arity(enum sp_ctl_cmd cmd)
{
	return cmd == SP_CTL_DRAIN ? 1 : cmd == SP_CTL_SERVER_ENABLE || cmd == SP_CTL_SERVER_DISABLE ? 2 : 0;
}

static struct sp_ctl_command c, again;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[160];
	memset(err, 'Z', sizeof(err));
	int ret = sp_control_parse((const char *)data, size, &c, err, sizeof(err));
	if (ret < 0) {
		CHECK(ret == -EINVAL);
		CHECK(memchr(err, 0, sizeof(err)) && err[0]);
		if (utf8_valid(data, size))
			CHECK(utf8_valid((const unsigned char *)err, strlen(err)));
		return 0;
	}
	CHECK(ret == 0 && size <= SP_CTL_LINE_MAX && c.name);
	CHECK(c.nargs == arity(c.cmd));
	char line[SP_CTL_LINE_MAX + 1];
	size_t len = strlen(c.name);
	memcpy(line, c.name, len);
	if (c.cmd == SP_CTL_SERVER_ENABLE || c.cmd == SP_CTL_SERVER_DISABLE) {
		const char *verb = c.cmd == SP_CTL_SERVER_ENABLE ? " enable" : " disable";
		memcpy(line + len, verb, strlen(verb));
		len += strlen(verb);
	}
	for (int i = 0; i < c.nargs; i++) {
		const char *a = c.args[i];
		size_t n = strlen(a);
		CHECK(n > 0 && a >= c.buf && a + n < c.buf + sizeof(c.buf));
		for (size_t k = 0; k < n; k++)
			CHECK((unsigned char)a[k] > 0x20 && (unsigned char)a[k] != 0x7f);
		CHECK(len + 1 + n <= SP_CTL_LINE_MAX);
		line[len++] = ' ';
		memcpy(line + len, a, n);
		len += n;
	}
	/* the canonical form parses to the same command */
	CHECK(sp_control_parse(line, len, &again, err, sizeof(err)) == 0);
	CHECK(again.cmd == c.cmd && again.nargs == c.nargs);
	for (int i = 0; i < c.nargs; i++)
		CHECK(strcmp(again.args[i], c.args[i]) == 0);
	return 0;
}
