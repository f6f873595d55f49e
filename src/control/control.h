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

/* Create the socket at path with mode, placed by sp_control_place (also: the uid of
 * process.user, or -1). Returns NULL with err filled on failure. */
struct sp_control *sp_control_open(struct sp_daemon *d, const char *path, mode_t mode,
				   uid_t also, char *err, size_t errlen);
/* place.c: make ready to bind path: its directory created private or checked (owned by
 * root, us or also, writable by nobody else), a dead socket of ours removed; a file that
 * is not a socket, another user's socket or a live one is an error. 0 or -errno. */
int sp_control_place(const char *path, mode_t mode, uid_t also, char *err, size_t errlen);
/* Close idle clients and sum up refusals whose window ended. Returns the ms until the
 * next such deadline, -1 when there is none: the longest the caller may poll. */
int sp_control_tick(struct sp_control *c);
/* The fds to poll now (listening socket and clients); returns how many were written. */
size_t sp_control_pollfds(struct sp_control *c, struct pollfd *out, size_t max);
/* Serve what poll reported on the fds sp_control_pollfds gave. */
void sp_control_dispatch(struct sp_control *c, const struct pollfd *fds, size_t n);
/* Close every client and the socket, and remove the socket file. NULL ok. */
void sp_control_close(struct sp_control *c);

/* Answer one command line (without the newline): a JSON text the caller frees. */
char *sp_control_answer(struct sp_daemon *d, const char *line, size_t len);

/* A command line split and checked (parse.c): what sp_control_answer runs. */
#define SP_CTL_LINE_MAX 4096
#define SP_CTL_MAX_WORDS 8
enum sp_ctl_cmd {
	SP_CTL_STATUS, SP_CTL_STATS, SP_CTL_SHARDS, SP_CTL_LISTENERS, SP_CTL_ROUTES,
	SP_CTL_UPSTREAMS, SP_CTL_RELOAD,
	SP_CTL_DRAIN,          /* args: LISTENER */
	SP_CTL_SERVER_ENABLE,  /* args: UPSTREAM ADDRESS */
	SP_CTL_SERVER_DISABLE, /* args: UPSTREAM ADDRESS */
};
struct sp_ctl_command {
	enum sp_ctl_cmd cmd;
	const char *name;    /* the command word, static */
	const char *args[3]; /* into buf: non-empty, no blank or control character */
	int nargs;
	char buf[SP_CTL_LINE_MAX + 1];
};
/* Parse line (len bytes, no newline; it may hold any byte) into c. Returns 0, or
 * -EINVAL with the reason in err: control characters, empty, too many words, unknown
 * command, wrong arguments. Needs no daemon (the fuzz target calls it alone). */
int sp_control_parse(const char *line, size_t len, struct sp_ctl_command *c, char *err,
		     size_t errlen);

#endif
