/* SPDX-License-Identifier: MIT */
/*
 * config.h - the configuration model: plain data compiled from the YAML of
 * spargiod.yaml(5), immutable once loaded and shared by every shard through a refcount.
 * Parsing and validation live in the files of src/config; nothing here knows about sockets,
 * shards or sessions. The daemon turns a config into a running generation.
 *
 * Every string and array below is owned by the config and freed with it. References
 * between sections (listener -> route, proxy -> upstream) are resolved pointers into the
 * same config.
 */
#ifndef SP_CONFIG_H
#define SP_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* A place in the file: 1-based line and column of the node. */
struct sp_conf_pos {
	unsigned line, col;
};

/* ------------------------------------------------------------------------------------ */
/* Error reporting: every message is "FILE:LINE:COL: text".                              */

#define SP_CONF_MAX_ERRORS 50 /* further errors are counted, not kept */

struct sp_conf_errors {
	char **msgs; /* formatted "FILE:LINE:COL: text" lines */
	unsigned count;   /* kept in msgs (<= SP_CONF_MAX_ERRORS) */
	unsigned dropped; /* reported past the limit */
};

void sp_conf_errors_free(struct sp_conf_errors *errs);

/* ------------------------------------------------------------------------------------ */
/* Values                                                                                */

/* An address as written in `bind:` or `address:`. */
enum sp_addr_kind {
	SP_ADDR_INET,    /* host:port, [v6]:port (numeric hosts only: no DNS at load) */
	SP_ADDR_UNIX,    /* unix:/path (an abstract socket with unix:@name) */
	SP_ADDR_SYSTEMD, /* systemd:NAME, a socket passed by systemd (FileDescriptorName=) */
};

struct sp_conf_addr {
	enum sp_addr_kind kind;
	struct sockaddr_storage sa; /* INET and UNIX */
	socklen_t salen;
	char *text; /* as written, for logs and for comparing binds across reloads */
	char *name; /* SYSTEMD: the fd name */
};

struct sp_conf_cidr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	unsigned prefix;
};

struct sp_conf_tls_server {
	struct sp_conf_pos pos; /* of the tls: mapping, for errors of `spargiod -t` */
	char *cert, *key;
	unsigned min_version; /* TLS1_2_VERSION style: 0x0303 for "1.2", 0x0304 for "1.3" */
	char **alpn;
	size_t n_alpn;
};

struct sp_conf_tls_client {
	struct sp_conf_pos pos; /* of the tls: mapping */
	char *sni; /* NULL: none */
	bool verify;
	char *ca; /* NULL: system default */
};

/* ------------------------------------------------------------------------------------ */
/* Pipeline stages: filters first, exactly one handler last.                             */

enum sp_stage_kind {
	/* filters */
	SP_STAGE_ACL,
	SP_STAGE_RATE_LIMIT,
	/* handlers */
	SP_STAGE_ECHO,
	SP_STAGE_PROXY,
	SP_STAGE_FILES,
	SP_STAGE_EXEC,
	SP_STAGE_UDP_PROXY,
	SP_STAGE_METRICS,
	SP_STAGE_STATUS, /* the live status page */
};

bool sp_stage_is_handler(enum sp_stage_kind kind);
const char *sp_stage_name(enum sp_stage_kind kind);

struct sp_conf_acl {
	struct sp_conf_cidr *allow, *deny; /* deny wins; with an allow list, others denied */
	size_t n_allow, n_deny;
};

struct sp_conf_rate_limit {
	double per_source; /* new connections per second per source address ("100/s", "6000/m") */
	unsigned burst;    /* bucket size; default: max(1, per_source) */
	unsigned max_sources; /* tracked sources per shard (bounded memory); default 65536 */
};

enum sp_proxy_protocol { SP_PP_OFF, SP_PP_V1, SP_PP_V2 };

struct sp_conf_upstream;

struct sp_conf_proxy {
	struct sp_conf_upstream *upstream;
	uint64_t idle_timeout_ms; /* default 300s */
	enum sp_proxy_protocol send_proxy_protocol;
	unsigned notsent_lowat;   /* TCP_NOTSENT_LOWAT once a direction streams, 32 KiB; 0: off */
};

enum sp_dotfiles { SP_DOTFILES_IGNORE, SP_DOTFILES_ALLOW, SP_DOTFILES_DENY };
enum sp_files_splice { SP_SPLICE_AUTO, SP_SPLICE_ON, SP_SPLICE_OFF };

struct sp_conf_files {
	char *root;
	char *index;                   /* default "index.html" */
	uint64_t keepalive_timeout_ms; /* default 60s */
	bool autoindex;                /* HTML listing of a directory without index; false */
	char *cache_control;           /* Cache-Control value; NULL: no header */
	enum sp_dotfiles dotfiles;     /* a path with a segment starting '.': ignore (404) */
	unsigned max_header_size;      /* bytes of a request head, default 8 KiB; over: 431 */
	unsigned max_headers;          /* header fields, default 100; over: 431 */
	uint64_t header_timeout_ms;    /* whole request head, default 10s */
	uint64_t send_timeout_ms;      /* no progress sending, default 60s */
	unsigned file_cache;           /* open files kept per shard, default 1024; 0: none */
	uint64_t file_cache_valid_ms;  /* revalidate a cached file after, default 1s */
	enum sp_files_splice splice;   /* large bodies by splice or read+send; auto */
	unsigned notsent_lowat;        /* TCP_NOTSENT_LOWAT under large bodies, 32 KiB; 0: off */
	bool allow_system_root;        /* serve a root of / /etc /proc /sys...; default false */
};

enum sp_exec_stdio { SP_EXEC_SOCKET, SP_EXEC_PIPE };

struct sp_conf_exec {
	char **argv; /* NULL-terminated, argv[0] an absolute path */
	size_t argc;
	unsigned max_instances; /* default 64 */
	char *user;             /* NULL: the daemon's own */
	uint64_t timeout_ms;    /* 0: none */
	char **env;             /* NULL-terminated "KEY=VALUE" */
	size_t n_env;
	enum sp_exec_stdio stdio;
	char *group;            /* NULL: the user's primary group (or the daemon's) */
	char *working_dir;      /* default "/" */
	unsigned queue;         /* connections that wait past max_instances; 0 (default): refused */
	uint64_t queue_timeout_ms; /* longest wait in that queue, default 10s */
	uint64_t kill_grace_ms; /* SIGTERM to SIGKILL of the process group, default 5s */
	struct {
		uint64_t nofile; /* RLIMIT_NOFILE; 0: the soft limit the daemon started with */
		uint64_t as;     /* RLIMIT_AS in bytes; 0: unchanged */
		uint64_t cpu;    /* RLIMIT_CPU in seconds; 0: unchanged */
	} limits;
};

struct sp_conf_udp_proxy {
	struct sp_conf_upstream *upstream;
	uint64_t session_timeout_ms; /* default 30s */
};

struct sp_conf_stage {
	enum sp_stage_kind kind;
	struct sp_conf_pos pos;
	union {
		struct sp_conf_acl acl;
		struct sp_conf_rate_limit rate_limit;
		struct sp_conf_proxy proxy;
		struct sp_conf_files files;
		struct sp_conf_exec exec;
		struct sp_conf_udp_proxy udp_proxy;
		/* echo, metrics and status take no options */
	};
};

/* ------------------------------------------------------------------------------------ */
/* Sections                                                                              */

enum sp_conf_placement { SP_CONF_PINNED, SP_CONF_ROUND_ROBIN, SP_CONF_STICKY, SP_CONF_STEALABLE };

struct sp_conf_route {
	char *name;
	struct sp_conf_pos pos;
	enum sp_conf_placement placement; /* default stealable */
	struct sp_conf_stage *stages;     /* filters..., handler */
	size_t n_stages;
};

enum sp_listen_proto { SP_PROTO_TCP, SP_PROTO_UDP };

struct sp_conf_listener {
	char *name;
	struct sp_conf_pos pos;
	struct sp_conf_addr bind;
	enum sp_listen_proto protocol; /* default tcp */
	unsigned backlog;              /* default 1024 */
	bool proxy_protocol;           /* default false */
	unsigned max_connections;      /* default 0: limits.max_connections only */
	unsigned per_source;           /* when per_source_set; else limits.per_source */
	bool per_source_set;
	struct sp_conf_tls_server *tls; /* NULL: plain */
	struct sp_conf_route *route;
};

enum sp_balance { SP_BALANCE_ROUND_ROBIN, SP_BALANCE_LEAST_CONN, SP_BALANCE_SOURCE_HASH,
		  SP_BALANCE_RANDOM_TWO };

struct sp_conf_server {
	struct sp_conf_addr address; /* INET or UNIX */
	unsigned weight;             /* default 1, 1..256 */
	bool backup;
};

struct sp_conf_health_check {
	uint64_t interval_ms, timeout_ms; /* defaults 2s, 1s */
	unsigned fall, rise;              /* defaults 3, 2 */
};

struct sp_conf_upstream {
	char *name;
	struct sp_conf_pos pos;
	enum sp_balance balance;     /* default round_robin */
	uint64_t connect_timeout_ms; /* default 2s */
	unsigned retries;            /* default 1 */
	struct sp_conf_server *servers;
	size_t n_servers;
	struct sp_conf_health_check *health_check; /* NULL: none */
	struct sp_conf_tls_client *tls;            /* NULL: plain */
};

enum sp_log_target { SP_LOG_TARGET_AUTO, SP_LOG_TARGET_STDERR, SP_LOG_TARGET_JOURNAL };

struct sp_arena;

struct sp_config {
	_Atomic unsigned refs;
	char *path; /* the file it was loaded from */
	struct sp_arena *arena; /* private to src/config: every allocation of this config */

	struct {
		unsigned shards; /* 0: auto (online CPUs) */
		unsigned ring_entries; /* default 1024, power of two 8..32768 */
		bool steal;            /* default true */
		bool pin_cpus;         /* default false */
		unsigned idle_spin_us; /* default 0 */
	} engine;
	struct {
		char *socket; /* default /run/spargiod/control.sock */
		mode_t mode;  /* default 0660 */
		struct sp_conf_pos pos; /* of the socket: value (0:0 when absent) */
	} control;
	struct {
		int level; /* SP_LOG_* of engine/log.h, default info */
		enum sp_log_target target;
		bool access_log; /* default true */
	} log;
	struct {
		unsigned max_connections; /* default 65536 */
		unsigned per_source;      /* per address and listener; default 0: no cap */
		uint64_t drain_timeout_ms; /* default 30s */
	} limits;
	struct {
		char *user;  /* NULL: stay who we are; set: drop to it after binding (root only) */
		char *group; /* NULL: the user's primary group */
		struct sp_conf_pos pos; /* of the process: mapping (0:0 when absent) */
	} process;

	struct sp_conf_upstream *upstreams;
	size_t n_upstreams;
	struct sp_conf_listener *listeners;
	size_t n_listeners;
	struct sp_conf_route *routes;
	size_t n_routes;
};

/* ------------------------------------------------------------------------------------ */
/* Loading                                                                               */

/*
 * Load, validate and compile path. On success *out holds a config with one reference and
 * errs is empty; on failure (-EINVAL: invalid, or -errno: unreadable) *out is NULL and
 * errs holds every error found (up to SP_CONF_MAX_ERRORS), sorted by position. The call
 * initializes *errs (it may be uninitialized; NULL: errors are not wanted) and the caller
 * frees it with sp_conf_errors_free, on success too. Only an unreadable file gives a
 * message without LINE:COL ("FILE: cannot open: ...").
 * Bounded: files over 1 MiB, nesting over 64 levels, scalars over 64 KiB, aliases and
 * anchors, tags, several documents and non-UTF-8 input are rejected with a positioned
 * error. Pure: nothing outside the file is looked at (see sp_config_check_resources).
 * All memory of a config is one allocation arena: strings and arrays live until the last
 * sp_config_unref, and only configs made by these functions may be unref'd.
 */
int sp_config_load(const char *path, struct sp_config **out, struct sp_conf_errors *errs);

/* The same from a buffer; name stands in for the file name in errors. */
int sp_config_load_buffer(const char *name, const char *buf, size_t len,
			  struct sp_config **out, struct sp_conf_errors *errs);

/* Deeper checks for `spargiod -t`: TLS certs and keys load and match, file roots exist
 * and are directories, exec commands exist and are executable, users exist. Appends to
 * errs (which must be initialized, e.g. by a load or to { 0 }); returns 0 or -EINVAL. */
int sp_config_check_resources(const struct sp_config *cfg, struct sp_conf_errors *errs);

/* What a start checks before binding, and `spargiod -t` and a reload too (safety.c): a
 * files root that is a system directory (/, /etc, /proc, /sys...) without
 * allow_system_root, a control or unix socket path taken by something that is not a
 * socket or by another user's socket, unix paths that name one file. Errors are appended
 * to errs (-EINVAL); warnings ("FILE:LINE:COL: warning: ...", a files root served as
 * root) go to warn(arg, line). */
int sp_config_check_start(const struct sp_config *cfg, struct sp_conf_errors *errs,
			  void (*warn)(void *arg, const char *line), void *arg);
/* The directory of a socket path may hold a socket of ours when it belongs to root, to
 * us or to also and nobody else can write it: 0, or -EPERM with why in err; 1 with a
 * warning in err for a sticky shared one (/tmp). A missing directory is 0. */
int sp_socket_dir_check(const char *path, uid_t also, char *err, size_t errlen);

struct sp_config *sp_config_ref(struct sp_config *cfg);
void sp_config_unref(struct sp_config *cfg); /* frees on the last reference; NULL ok */

/* Lookups by name; NULL when absent. */
struct sp_conf_route *sp_config_route(const struct sp_config *cfg, const char *name);
struct sp_conf_upstream *sp_config_upstream(const struct sp_config *cfg, const char *name);
struct sp_conf_listener *sp_config_listener(const struct sp_config *cfg, const char *name);

/* Parse helpers shared with other parsers of outside input (control commands). */
int sp_parse_duration_ms(const char *s, uint64_t *out); /* "250ms" "2s" "5m" "1h" */
int sp_parse_size(const char *s, uint64_t *out);        /* "4096" "4KiB" "1MiB" "1GiB" */
/* On success text (and name) are malloc'd: free them with sp_conf_addr_clear. On error
 * *why (when why is not NULL) says why in a few words. */
int sp_parse_addr(const char *s, struct sp_conf_addr *out, const char **why);
void sp_conf_addr_clear(struct sp_conf_addr *a);
int sp_parse_cidr(const char *s, struct sp_conf_cidr *out);
bool sp_cidr_match(const struct sp_conf_cidr *c, const struct sockaddr *sa);

#endif
