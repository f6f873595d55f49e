/* SPDX-License-Identifier: MIT */
/*
 * files.h - the `files` handler's insides, shared by its files (not by other modules):
 *   files.c        stage init, the request loop: read, parse, dispatch, finish, timeouts
 *   files_open.c   from a path to an open regular file: cache, openat2, statx, index
 *   files_send.c   response heads, error answers, small bodies (one send)
 *   files_body.c   large bodies: read+send or splice, overlapped
 *   files_cache.c  the per-shard open-file cache
 *   files_index.c  autoindex listings, built on a helper thread
 *
 * A session is self-contained: its buffers, pipe and file are its own, so a stealable
 * session may move between shards between any two callbacks. The only thing it shares
 * is a reference on a cache entry of the shard where it looked the file up; references
 * are atomic counts, and only that shard ever reuses or frees the entry.
 */
#ifndef SP_HANDLERS_FILES_H
#define SP_HANDLERS_FILES_H

#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "http/http.h"
#include "http/mime.h"
#include "pipeline/pipeline.h"
#include "stats/figures.h"

#define FILES_CONTENT_MAX (64 * 1024) /* bodies up to this are sent with the head, cached */
#define FILES_CHUNK (256 * 1024)      /* read+send buffer for larger bodies */
#define FILES_PIPE_SIZE (1024 * 1024) /* splice pipe, per large body */
#define FILES_PIPE_MIN (256 * 1024)   /* smaller: read+send instead */
#define FILES_SPLICE_MAX (16u << 20)  /* auto: splice uncached bodies up to this */
#define FILES_SENDFILE_MIN (32 * 1024) /* auto: sendfile cached bodies from this size */
#define FILES_HEAD_MAX 1024           /* a response head */
#define FILES_IN_MIN 1024             /* the request buffer to start with */
#define FILES_PATH_MAX 4096
#define FILES_LINGER_NS (2ull * 1000000000) /* reading what a closed-on client still sends */
#define FILES_ETAG_MAX 64

/* What a response needs to know about a file; copied into the session. */
struct files_meta {
	uint64_t size;
	uint64_t ino, dev;
	int64_t mtime;          /* seconds */
	uint32_t mtime_nsec;
	int64_t ctime;
	uint32_t ctime_nsec;
	const char *mime;       /* from the stage's table, lives as long as the generation */
	char etag[FILES_ETAG_MAX];             /* "\"ino-size-mtime\"" */
	char last_modified[SP_HTTP_DATE_LEN + 1];
};

/* ------------------------------------------------------------------------------------ */
/* files_cache.c                                                                         */

struct files_entry;
struct files_cache;

/* A cache of max_entries per shard (0: a cache that never holds anything). */
struct files_cache *files_cache_create(unsigned max_entries);
void files_cache_destroy(struct files_cache *c); /* every reference must be gone */
/* The live entry for path, NULL if none (on the cache's shard). */
struct files_entry *files_cache_find(struct files_cache *c, const char *path, uint64_t now_ns,
				     uint64_t valid_ns, bool *stale);
/* Add path -> fd (the cache takes fd) with meta; returns the entry, or NULL when every
 * slot is in use (the caller keeps fd). Replaces an older entry for path, or, when that
 * one is the same file (a race of misses), closes fd and returns it. */
struct files_entry *files_cache_insert(struct files_cache *c, const char *path, int fd,
				       const struct files_meta *meta, uint64_t now_ns);
/* Forget path's entry (changed on disk); sessions that hold it keep it until they let
 * go, and the last one closes it. */
void files_cache_drop(struct files_cache *c, struct files_entry *e);
/* Add c's figures to f (any thread; relaxed reads). */
void files_cache_figures(const struct files_cache *c, struct sp_file_cache_figures *f);
/* Keep a copy of the first len bytes as the entry's content, if the budget allows. */
void files_cache_set_content(struct files_cache *c, struct files_entry *e, const char *data,
			     size_t len);
/* The entry was found valid again (any shard). */
void files_entry_validated(struct files_entry *e, uint64_t now_ns);
/* A changed file seen from another shard: the owner drops it at its next lookup. */
void files_entry_mark_stale(struct files_entry *e);

/* References: any shard. */
void files_entry_get(struct files_entry *e);
void files_entry_put(struct files_entry *e);
int files_entry_fd(const struct files_entry *e);
const struct files_meta *files_entry_meta(const struct files_entry *e);
const char *files_entry_content(const struct files_entry *e); /* NULL: none */
/* The file mapped for mincore(2) where cachestat(2) cannot be called; NULL: none. */
const void *files_entry_map(const struct files_entry *e, size_t *len);
const char *files_entry_path(const struct files_entry *e);

/* ------------------------------------------------------------------------------------ */
/* The stage and the session                                                             */

/* What a request needs while it is answered and not while its connection waits: taken
 * from the shard's pool when a request head is in, given back when the answer is out,
 * so an idle keep-alive connection holds none of it. The fields every request touches
 * come first: a pooled one is warm in the cache. */
struct files_work {
	struct files_work *next;     /* pool link */
	struct open_how how;
	struct statx stx;
	char head[FILES_HEAD_MAX];   /* the response head */
	char path[FILES_PATH_MAX];   /* the decoded path, relative to root */
	char out[FILES_HEAD_MAX + FILES_CONTENT_MAX]; /* head + a small body read for it */
};

struct files_pool {                  /* a shard's spare work areas */
	struct files_work *free;
	unsigned n;
};
#define FILES_POOL_KEEP 64           /* spares kept per shard; more are unmapped */

struct files_stage {
	const struct sp_conf_files *conf;
	int root_fd;                /* O_PATH | O_DIRECTORY, opened at init */
	struct sp_mime *mime;
	struct sp_http_limits limits;
	struct files_cache **caches; /* [nshards] */
	struct files_pool *pools;    /* [nshards] */
	unsigned nshards;
	char cache_control[256];    /* "Cache-Control: ...\r\n" or "" */
	bool access_log;
	uint64_t tick_ns;           /* watchdog period: ticks fall on its multiples */
};

enum files_phase {
	PH_IDLE,    /* waiting for a request's first byte */
	PH_HEAD,    /* reading a request head */
	PH_WORK,    /* opening, reading the file */
	PH_SEND,    /* sending the response */
	PH_LINGER,  /* closing: reading and dropping what the client still sends */
};

struct files_session {
	struct sp_session s;
	struct files_stage *fs;
	struct sp_op recv_op, send_op, file_op, aux_op;
	struct sp_timer watchdog;
	struct sp_job job;           /* autoindex */
	enum files_phase phase;
	uint64_t deadline_ns;
	bool closing;

	/* input: the request head(s) */
	bool shedding;               /* idle: the receive is being cancelled to free `in` */
	char *in;                    /* NULL while idle and shed: a poll waits instead */
	size_t in_start, in_len, in_cap; /* unparsed bytes: in[in_start .. in_start + in_len) */
	size_t scanned;
	bool responding;             /* between a complete head and the end of its answer */
	bool peer_closed;            /* the client shut its side while we answered */
	struct sp_http_request req;
	size_t head_len;
	uint64_t req_start_ns;
	bool keep_alive;
	unsigned requests;

	/* the request being served */
	struct files_work *w;        /* while it is: path, head, ... (NULL when idle) */
	unsigned path_flags;
	size_t dir_len;              /* path without "/index.html" */
	enum { OPEN_FILE, OPEN_INDEX, OPEN_DIR_PROBE } open_kind;
	unsigned open_tries;
	int fd;                      /* open file, or -1; owned unless entry is set */
	struct files_entry *entry;   /* cache reference, or NULL */
	struct files_cache *entry_cache; /* where entry lives (content is added there only) */
	struct files_meta meta;
	int status;
	uint64_t body_off, body_left; /* file range still to send */
	uint64_t bytes_sent;         /* this response's bytes, head included */
	bool close_after;            /* answer, then close (errors) */

	/* output */
	size_t head_len_out;         /* of w->head */
	char *chunk;                 /* read+send buffer, allocated on first large body */
	char *listing;               /* autoindex page */
	size_t listing_len;
	struct iovec iov[2], *iov_cur;
	struct msghdr msg;
	struct files_half {          /* read+send: one half of chunk (files_body.c) */
		char *buf;
		size_t len, off;
		int state;
	} half[2];
	unsigned read_idx, send_idx;
	size_t head_off;             /* splice: head bytes sent */
	size_t pipe_size;
	uint64_t range_size;         /* for a 416's Content-Range */
	int pipe[2];                 /* splice: this body's pipe, or -1 */
	bool sock_nonblock;          /* O_NONBLOCK set (the first splice did) */
	bool sock_lowat;             /* TCP_NOTSENT_LOWAT set (the first large body did) */
	size_t pipe_bytes;           /* spliced in, not yet out */
};

/* files.c */
void files_finish(struct files_session *f);
void files_fail(struct files_session *f, const char *reason);
void files_set_deadline(struct files_session *f, enum files_phase phase, uint64_t timeout_ns);
struct files_cache *files_my_cache(struct files_session *f);
bool files_link_recv(struct files_session *f, struct io_uring_sqe *send_sqe);
void files_submit_linked_recv(struct files_session *f);

/* files_open.c: resolve f->w->path (parsed from the request) and serve it */
void files_open_init(struct files_session *f);
void files_open_path(struct files_session *f);

/* files_send.c */
void files_send_init(struct files_session *f);
size_t files_url_encode(char *dst, size_t cap, const char *src, size_t len);
void files_respond_file(struct files_session *f);
void files_respond_error(struct files_session *f, int status, bool close_after);
void files_respond_redirect(struct files_session *f);
void files_respond_listing(struct files_session *f);
void files_release_file(struct files_session *f);
size_t files_status_line(char *p, int status);
void files_meta_from_statx(struct files_meta *m, const struct statx *stx, const char *mime);

/* files_body.c: send f->w->head and body_left bytes at body_off, then files_finish */
void files_body_start(struct files_session *f);
/* A body of FILES_SENDFILE_MIN or more with sendfile from the page cache; false: its
 * first bytes are not in it. */
bool files_sendfile(struct files_session *f);
/* Asks whether cachestat(2) may be called: 0, or the errno that says it may not. */
int files_cachestat_probe(void);
/* Poll the connection for events with op; fn gets the completion. */
void files_poll(struct files_session *f, struct sp_op *op, sp_op_fn fn, unsigned events);
void files_close_pipe(struct files_session *f);

/* files_index.c: f->w->path is a directory without an index: a listing or a 403 */
void files_autoindex_or_forbid(struct files_session *f);

#endif
