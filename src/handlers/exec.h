/* SPDX-License-Identifier: MIT */
/*
 * exec.h - the pieces of the `exec` handler (one process per connection, inetd style),
 * shared by its files and by nothing else:
 *   exec.c        the stage: session start, the end of a session and its access-log fields
 *   exec_route.c  per-route state built at generation init on the main thread (users and
 *                 groups resolved there, never on a shard; the environment template)
 *   exec_queue.c  max_instances and the bounded wait queue
 *   exec_spawn.c  vfork + exec of the child, and what the child resets before exec
 *   exec_life.c   the child's exit seen through its pidfd, timeout, stop
 *   exec_relay.c  `stdio: pipe` relay and the child's stderr, line by line, to the log
 *
 * A session owns its child and the child's process group (the child leads a new session
 * and group): the session ends only once the child is reaped (no zombie) and nothing is
 * left in its group, and a child is counted against max_instances from spawn until then.
 * What the child leaves behind when it exits, or everything when its client goes, gets
 * SIGTERM, then SIGKILL after kill_grace. A process that leaves the group (setsid,
 * setpgid) escapes this: it is no longer told from anybody else's.
 */
#ifndef SP_HANDLERS_EXEC_H
#define SP_HANDLERS_EXEC_H

#include <signal.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "pipeline/pipeline.h"

#define EXEC_RELAY_BUF 16384   /* per direction, `stdio: pipe` */
#define EXEC_ERR_LINE 1024     /* longer stderr lines are logged in pieces */
#define EXEC_ERR_MAX_LINES 256 /* stderr lines logged per child; the rest are counted */
#define EXEC_LINGER_MS 200     /* after the exit: wait this long for stderr's end */
#define EXEC_RETIRE_CHECK_MS 250 /* how often a child looks whether its route is gone */
#define EXEC_GROUP_POLL_MS 20  /* after the exit: how often we look whether its group is empty */
#define EXEC_GROUP_SCAN_MS 100 /* ... and, at most this often, for zombies only (/proc) */
#define EXEC_UNKILLABLE_MS 5000 /* after SIGKILL to the group: give up waiting then */

struct exec_session;

/* ------------------------------------------------------------------------------------ */
/* max_instances and the wait queue (exec_queue.c)                                       */

enum exec_verdict { EXEC_WAITING, EXEC_GRANTED, EXEC_TIMED_OUT, EXEC_STOPPED };

struct exec_queue {
	unsigned max, cap;             /* max_instances, queue */
	uint64_t timeout_ns;           /* queue_timeout */
	unsigned owner;                /* shard that keeps the waiting list */
	_Atomic unsigned running;      /* children alive (spawned, exit not seen yet) */
	_Atomic unsigned waiting;      /* sessions queued, or on their way to the queue */
	_Atomic uint64_t refused;      /* connections turned away */
	_Atomic uint64_t last_note_ns; /* rate limit of the "limit reached" log line */
	/* owner shard only */
	struct exec_session *head, *tail;
	struct sp_timer timer;         /* the head's queue_timeout */
	struct sp_gen *timer_gen;      /* the route's generation, held while timer is armed */
	/* a freed slot, posted to the owner; grant_gen is held until it ran */
	struct sp_msg grant_msg;
	_Atomic bool grant_pending;
	struct sp_gen *grant_gen;
};

enum exec_admit { EXEC_RUN, EXEC_QUEUED, EXEC_REFUSED };

void exec_queue_init(struct exec_queue *q, const struct sp_conf_exec *conf, unsigned nshards);
/* A new session asks for a slot: run now, wait (its on_wake gets the verdict), or not. */
enum exec_admit exec_queue_admit(struct exec_session *e);
/* A child's exit was seen (or its spawn failed): free its slot, serve the queue. */
void exec_queue_release(struct exec_session *e);

/* ------------------------------------------------------------------------------------ */
/* The route (exec_route.c)                                                              */

struct exec_rlimit {
	int resource;
	struct rlimit lim;
};

struct exec_route {
	const struct sp_conf_exec *conf;
	/* who the child runs as: switch only when `user` or `group` asked for it */
	bool set_ids;
	uid_t uid;
	gid_t gid;
	gid_t *groups; /* supplementary groups */
	size_t n_groups;
	/* environment: "K=V" strings before the per-connection ones (owned) */
	char **env;
	size_t n_env;
	struct exec_rlimit rlimits[3]; /* nofile always; as and cpu when configured */
	unsigned n_rlimits;
	_Atomic bool no_waitid;        /* the kernel refused IORING_OP_WAITID: poll the pidfd */
	_Atomic uint64_t spawn_failures, fail_note_ns; /* failed spawns, logged once a second */
	struct exec_queue q;
};

int exec_route_init(struct exec_route *r, const struct sp_conf_exec *conf, unsigned nshards,
		    char *err, size_t errlen);
void exec_route_fini(struct exec_route *r);

/* ------------------------------------------------------------------------------------ */
/* A session                                                                             */

/* One direction of the `stdio: pipe` relay: one read and one write, never both in flight. */
struct exec_dir {
	struct sp_op rd, wr;
	unsigned len, off;
	bool done;
	char buf[EXEC_RELAY_BUF];
};

struct exec_session {
	struct sp_session s;
	struct exec_route *r;
	bool closed;       /* exec_finish ran: callbacks only let go of fds */
	bool stopping;     /* the engine stops: children get SIGTERM, then SIGKILL */
	bool queued;       /* waited in the queue (for the access log) */

	/* wait queue (exec_queue.c) */
	struct sp_msg qmsg;
	struct exec_session *qnext;  /* owner shard only */
	uint64_t q_since_ns, q_deadline_ns;
	_Atomic int verdict;         /* enum exec_verdict, set by the owner shard */

	/* the child */
	pid_t pid;
	int pidfd;
	bool counted;      /* holds a max_instances slot */
	bool exited;       /* reaped; si holds how */
	uint8_t kill_stage; /* 0, 1: SIGTERM sent, 2: SIGKILL sent */
	bool timed_out;
	uint64_t spawned_ns, exited_ns;
	const char *spawn_step;  /* the child failed there before exec (it exits 127) */
	int spawn_err;
	siginfo_t si;
	struct sp_op exit_op;    /* IORING_OP_WAITID, or POLL_ADD on the pidfd */
	struct sp_timer timer;   /* timeout, then kill_grace */
	struct sp_timer linger;  /* after the exit, for the last stderr and stdout bytes */
	uint64_t linger_out;     /* bytes_out when it was armed: is stdout still moving? */
	struct sp_timer retire_tick; /* looks whether a reload removed the route */
	bool retired;            /* it did: the child got SIGTERM, then SIGKILL */
	struct sp_job reap_job;  /* engine stop: wait out kill_grace on a helper thread */
	uint64_t stop_deadline_ns;

	/* what the child left in its process group, after its exit (exec_life.c) */
	bool group_gone;         /* reaped, and its group empty (or given up on) */
	bool client_gone;        /* the client reset the connection or closed it both ways */
	uint8_t group_stage;     /* what was left got 1: SIGTERM, 2: SIGKILL */
	uint64_t group_deadline_ns, group_scan_ns; /* next stage; next /proc scan */
	struct sp_timer group_tick;
	struct sp_job scan_job;  /* zombies only left in the group? (/proc, helper thread) */
	struct sp_op hup_op;     /* stdio: socket: the connection reset or closed both ways */

	/* stderr, to the log line by line */
	int err_fd;
	struct sp_op err_op;
	bool err_done;
	unsigned err_len, err_lines, err_dropped;
	char err_buf[EXEC_ERR_LINE];

	/* stdio: pipe */
	int in_fd, out_fd;       /* our ends of the child's stdin and stdout */
	struct exec_dir up;      /* client -> child's stdin */
	struct exec_dir down;    /* child's stdout -> client */
};

/* exec.c */
/* End the session (idempotent): access-log fields, our fds, sp_session_close. */
void exec_finish(struct exec_session *e, const char *reason);
/* The child exited and everything it wrote is out: finish, or wait for stderr's end. */
void exec_maybe_finish(struct exec_session *e);
/* Close each of our fds that no op has in flight; run again by late callbacks. */
void exec_close_idle_fds(struct exec_session *e);
/* A granted session's spawn (from start, or from on_wake after the queue). */
void exec_launch(struct exec_session *e);
/* -ECANCELED while nothing asked for it: the engine stops. */
bool exec_engine_stopping(void);

/* exec_spawn.c: the child, set up per the route, with fds in/out/err as 0/1/2. Fills
 * e->pid and e->pidfd; returns 0 or -errno (with why: what failed, for the log). */
int exec_spawn(struct exec_session *e, int in, int out, int err, const char **why);
/* The soft RLIMIT_NOFILE this process started with (children get it back). */
rlim_t exec_initial_nofile(void);

/* exec_life.c */
void exec_life_start(struct exec_session *e); /* exit watch, timeout */
void exec_stop(struct exec_session *e);      /* engine stop: SIGTERM, wait, SIGKILL */
/* The client is gone (reset, or closed both ways): the group gets SIGTERM, then SIGKILL. */
void exec_client_gone(struct exec_session *e);
/* "exit=0" / "signal=KILL" into buf. */
const char *exec_status_str(const struct exec_session *e, char *buf, size_t n);

/* exec_relay.c */
void exec_stderr_start(struct exec_session *e);
void exec_stderr_flush(struct exec_session *e); /* a partial last line, dropped count */
void exec_relay_start(struct exec_session *e);

#endif
