/* SPDX-License-Identifier: MIT */
/*
 * ctl.h - what spargioctl's files share: one request to the control socket, the clock,
 * and the `watch` screen (watch.c). Exit statuses as spargioctl(8) documents them.
 */
#ifndef SP_CTL_H
#define SP_CTL_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

enum { SP_CTL_EXIT_OK = 0, SP_CTL_EXIT_REFUSED = 1, SP_CTL_EXIT_UNREACHABLE = 2 };

int64_t sp_ctl_now_ms(void);

/* Send one command line (ending in '\n') to the daemon at path and parse its answer;
 * on success *answer is a JSON object the caller frees (json_decref) and *text its raw
 * line (free). On failure prints what went wrong and what to do on stderr and returns
 * SP_CTL_EXIT_UNREACHABLE. timeout_s bounds the whole exchange. */
int sp_ctl_call(const char *path, const char *line, long timeout_s, json_t **answer, char **text);

/* spargioctl watch [-n COUNT] [-i SECONDS]: argv starts after "watch". */
int sp_ctl_watch(const char *path, long timeout_s, int argc, char **argv);

#endif
