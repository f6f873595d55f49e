/* SPDX-License-Identifier: MIT */
/*
 * yaml_tree.h - a YAML document as a small tree of scalars, mappings and sequences, each
 * node with its 1-based line and column. Built from libyaml's event API with hard bounds
 * against hostile input; the schema code (schema.c, sec_*.c, stages.c) walks it.
 */
#ifndef SP_CONF_YAML_TREE_H
#define SP_CONF_YAML_TREE_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"

#define SP_YAML_MAX_FILE   (1024 * 1024) /* bytes */
#define SP_YAML_MAX_DEPTH  64            /* nested mappings and sequences */
#define SP_YAML_MAX_SCALAR (64 * 1024)   /* bytes in one scalar */

enum sp_ynode_kind { SP_YSCALAR, SP_YMAP, SP_YSEQ };

struct sp_ynode {
	enum sp_ynode_kind kind;
	struct sp_conf_pos pos;
	/* scalar: NUL-terminated text (never contains NUL), quoted = not plain style */
	char *str;
	size_t len;
	bool quoted;
	/* sequence: n items; mapping: n pairs, kids[2i] the key, kids[2i+1] its value */
	struct sp_ynode **kids;
	size_t n;
};

struct sp_arena;
struct sp_conf_report;

/*
 * Parse buf into a tree allocated in arena. Returns the root, or NULL with one
 * positioned error reported (syntax error, a bound exceeded, alias, binary input...).
 * An empty document is reported as an error too.
 */
struct sp_ynode *sp_yaml_parse(const char *buf, size_t len, struct sp_arena *arena,
			       struct sp_conf_report *rep);

#endif
