/* SPDX-License-Identifier: MIT */
/*
 * schema.h - the pieces the section validators are built from: a context that carries
 * the report and the config's arena, a mapping walker driven by a key table (unknown and
 * duplicate keys, "did you mean"), and typed getters that turn a node into a value or a
 * positioned error saying what was expected and what was found.
 *
 * Getters leave *out alone when the node is absent (NULL), so callers set defaults first.
 * They return false after reporting an error; callers carry on to find the next one.
 */
#ifndef SP_CONF_SCHEMA_H
#define SP_CONF_SCHEMA_H

#include <stdbool.h>
#include <stdint.h>

#include "config/arena.h"
#include "config/config.h"
#include "config/report.h"
#include "config/yaml_tree.h"

struct sp_cf_ctx {
	struct sp_conf_report *rep;
	struct sp_arena *arena; /* the config's: what is allocated here ends up in it */
	struct sp_config *cfg;
	bool oom;
};

#define SP_CF_MAX_KEYS 16 /* keys of one mapping in the schema */
#define SP_CF_MAX_DURATION_MS (366ull * 24 * 3600 * 1000)

void sp_cf_error(struct sp_cf_ctx *cx, const struct sp_ynode *at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void *sp_cf_alloc(struct sp_cf_ctx *cx, size_t n, size_t size); /* NULL: cx->oom set */
char *sp_cf_strdup(struct sp_cf_ctx *cx, const char *s);

enum sp_cf_type { SP_CF_NULL, SP_CF_BOOL, SP_CF_INT, SP_CF_FLOAT, SP_CF_STR, SP_CF_MAP, SP_CF_SEQ };

/* The YAML core schema type of a node: plain scalars resolve to null, booleans,
 * integers and floats by their text; quoted scalars are strings. */
enum sp_cf_type sp_cf_type(const struct sp_ynode *n);
/* "a string (\"abc\")", "an integer (12)", "a mapping", "null"... for messages. */
const char *sp_cf_found(const struct sp_ynode *n, char *buf, size_t size);
/* "expected EXPECTED for 'KEY', found ..." at n. */
void sp_cf_type_error(struct sp_cf_ctx *cx, const struct sp_ynode *n, const char *key,
		      const char *expected);

/*
 * Walk mapping map against keys (NULL-terminated, at most SP_CF_MAX_KEYS): vals[i] gets
 * the value of keys[i] or NULL. Unknown keys (with a suggestion), duplicate and
 * non-string keys are reported. what names the mapping in messages ("'engine'",
 * "a server"). An absent or null map counts as empty. Returns false if map is not a
 * mapping at all.
 */
bool sp_cf_fields(struct sp_cf_ctx *cx, const struct sp_ynode *map, const char *what,
		  const char *const *keys, const struct sp_ynode **vals);
/* Report "missing required key 'KEY' in WHAT" at map unless val is present. */
bool sp_cf_require(struct sp_cf_ctx *cx, const struct sp_ynode *map, const struct sp_ynode *val,
		   const char *key, const char *what);

bool sp_cf_uint(struct sp_cf_ctx *cx, const struct sp_ynode *n, const char *key, unsigned min,
		unsigned max, unsigned *out);
/* true/false (also yes/no, on/off), plain only */
bool sp_cf_bool(struct sp_cf_ctx *cx, const struct sp_ynode *n, const char *key, bool *out);
/* "250ms" "2s" "5m" "1h" "1m30s", "0"; at least min_ms, at most a year */
bool sp_cf_duration(struct sp_cf_ctx *cx, const struct sp_ynode *n, const char *key,
		    uint64_t min_ms, uint64_t *out);
/* any non-null, non-empty scalar; the copy lives in the config */
bool sp_cf_str(struct sp_cf_ctx *cx, const struct sp_ynode *n, const char *key, char **out);
/* a string that is an absolute path */
bool sp_cf_path(struct sp_cf_ctx *cx, const struct sp_ynode *n, const char *key, char **out);
/* an object name: 1-64 of [A-Za-z0-9_.-], for control commands and stats */
bool sp_cf_name(struct sp_cf_ctx *cx, const struct sp_ynode *n, const char *key, char **out);
/* a user or group name: 1-32 characters, no spaces, ':' or '/' */
bool sp_cf_account(struct sp_cf_ctx *cx, const struct sp_ynode *n, const char *key, char **out);
/* an address (sp_parse_addr syntax), strings in the config */
bool sp_cf_addr(struct sp_cf_ctx *cx, const struct sp_ynode *n, const char *key,
		struct sp_conf_addr *out);
/* one of names (NULL-terminated); *out gets its index */
bool sp_cf_enum(struct sp_cf_ctx *cx, const struct sp_ynode *n, const char *key,
		const char *const *names, int *out);
/* a sequence (an absent node is not one: check presence first) */
bool sp_cf_seq(struct sp_cf_ctx *cx, const struct sp_ynode *n, const char *key);
/* a sequence of strings, copied NULL-terminated into the config */
bool sp_cf_strlist(struct sp_cf_ctx *cx, const struct sp_ynode *n, const char *key,
		   char ***out, size_t *count);

/*
 * Names of a section, sorted for duplicate checks and lookups that stay O(n log n) on
 * hostile files with many entries.
 */
struct sp_cf_names {
	struct sp_cf_named *v;
	size_t n;
};
struct sp_cf_named {
	const char *name;
	const struct sp_ynode *node; /* where the name was written */
	void *obj;
};

/* Sort nv[0..n) (entries with a NULL name are skipped) and report each later duplicate
 * as "duplicate KIND 'NAME' (first defined at L:C)". The array is malloc'd by the
 * caller and freed by sp_cf_names_free. */
void sp_cf_names_sort(struct sp_cf_ctx *cx, struct sp_cf_names *names, const char *kind);
void *sp_cf_names_find(const struct sp_cf_names *names, const char *name);
/* Resolve a reference: the object named by the string at n, or NULL after reporting
 * "unknown KIND 'NAME'" (with the nearest existing name as a hint). */
void *sp_cf_names_ref(struct sp_cf_ctx *cx, const struct sp_cf_names *names,
		      const struct sp_ynode *n, const char *key, const char *kind);
void sp_cf_names_free(struct sp_cf_names *names);

/* Top-level keys, in the order of the key table in config.c. */
enum sp_cf_top {
	SP_TOP_VERSION, SP_TOP_ENGINE, SP_TOP_CONTROL, SP_TOP_LOG, SP_TOP_LIMITS, SP_TOP_PROCESS,
	SP_TOP_UPSTREAMS, SP_TOP_LISTENERS, SP_TOP_ROUTES, SP_TOP_N
};

/* Sections (sec_*.c), in the order config.c runs them. */
void sp_cf_globals(struct sp_cf_ctx *cx, const struct sp_ynode *root,
		   const struct sp_ynode *const top[SP_TOP_N]);
void sp_cf_upstreams(struct sp_cf_ctx *cx, const struct sp_ynode *seq, struct sp_cf_names *names);
void sp_cf_routes(struct sp_cf_ctx *cx, const struct sp_ynode *seq,
		  const struct sp_cf_names *upstreams, struct sp_cf_names *names);
/* binds.c: binds that cannot be bound together though written differently (a
 * wildcard beside another address on a TCP port; unix paths naming one file). bind_at[i]
 * is the bind node of listener i, NULL when it is absent or invalid. */
void sp_cf_binds_overlap(struct sp_cf_ctx *cx, const struct sp_ynode *const *bind_at);
/* path without "//", "/./" and a trailing '/' into out; NULL if it does not fit. */
char *sp_cf_path_norm(const char *path, char *out, size_t size);

void sp_cf_listeners(struct sp_cf_ctx *cx, const struct sp_ynode *seq,
		     const struct sp_cf_names *routes);
/* One pipeline stage (stages.c): item is `- NAME: {options}` (or `- NAME`). */
bool sp_cf_stage(struct sp_cf_ctx *cx, const struct sp_ynode *item,
		 const struct sp_cf_names *upstreams, struct sp_conf_stage *st);

/* Address and CIDR parsing that allocates in an arena (NULL: malloc), with a reason. */
int sp_cf_parse_addr(const char *s, struct sp_conf_addr *out, const char **why,
		     struct sp_arena *arena);
int sp_cf_parse_cidr(const char *s, struct sp_conf_cidr *out, const char **why);
/* "100/s", "6000/m", "0.5/s", "3600/h": events per second */
int sp_cf_parse_rate(const char *s, double *per_sec);

#endif
