/* SPDX-License-Identifier: MIT */
/*
 * control.h - the control socket (spargioctl(8)): one command per line, one JSON object
 * per answer. It is served by the daemon's main thread, next to the signals: a reload
 * (parsing, binding) is slow work that must never run on a shard, and an answer to
 * `reload` must wait for its verdict. Figures are read from the shards' counters
 * without locks; no control work ever runs on a shard.
 */
#ifndef SP_CONTROL_H
#define SP_CONTROL_H

#include <poll.h>
#include <stddef.h>
#include <sys/types.h>

struct sp_daemon;
struct sp_control;

/* Create the socket at path with mode (a stale socket file is replaced, a live one is
 * an error). Returns NULL with err filled on failure. */
struct sp_control *sp_control_open(struct sp_daemon *d, const char *path, mode_t mode,
				   char *err, size_t errlen);
/* The fds to poll now (listening socket and clients); returns how many were written. */
size_t sp_control_pollfds(struct sp_control *c, struct pollfd *out, size_t max);
/* Serve what poll reported on the fds sp_control_pollfds gave. */
void sp_control_dispatch(struct sp_control *c, const struct pollfd *fds, size_t n);
/* Close every client and the socket, and remove the socket file. NULL ok. */
void sp_control_close(struct sp_control *c);

/* Answer one command line (without the newline): a JSON text the caller frees. Exposed
 * for the fuzz target and unit tests. */
char *sp_control_answer(struct sp_daemon *d, const char *line, size_t len);

#endif
