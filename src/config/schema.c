/* SPDX-License-Identifier: MIT */
/*
 * schema.c - typed access to the YAML tree with positioned errors (schema.h). The
 * section validators (sec_*.c, stages.c) say what they want; this file says what went
 * wrong and where.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/schema.h"

void sp_cf_error(struct sp_cf_ctx *cx, const struct sp_ynode *at, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	sp_vreport(cx->rep, at ? at->pos : (struct sp_conf_pos){ 1, 1 }, fmt, ap);
	va_end(ap);
}

void *sp_cf_alloc(struct sp_cf_ctx *cx, size_t n, size_t size)
{
	void *p = sp_arena_alloc(cx->arena, n, size);
	if (!p && !cx->oom) {
		cx->oom = true;
		sp_report(cx->rep, (struct sp_conf_pos){ 1, 1 }, "out of memory");
	}
	return p;
}

char *sp_cf_strdup(struct sp_cf_ctx *cx, const char *s)
{
	char *d = sp_cf_alloc(cx, 1, strlen(s) + 1);
	return d ? strcpy(d, s) : NULL;
}

/* ---- what a node is -------------------------------------------------------------- */

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

static bool is_float(const char *s)
{
	if (*s == '+' || *s == '-')
		s++;
	if (!strcmp(s, ".inf") || !strcmp(s, ".Inf") || !strcmp(s, ".INF"))
		return true;
	if (!strcmp(s, ".nan") || !strcmp(s, ".NaN") || !strcmp(s, ".NAN"))
		return true;
	size_t digits = strspn(s, "0123456789");
	s += digits;
	if (*s == '.') {
		size_t frac = strspn(s + 1, "0123456789");
		digits += frac;
		s += 1 + frac;
	}
	if (!digits)
		return false;
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '+' || *s == '-')
			s++;
		if (!all_digits(s))
			return false;
		return true;
	}
	return *s == '\0';
}

enum sp_cf_type sp_cf_type(const struct sp_ynode *n)
{
	if (n->kind == SP_YMAP)
		return SP_CF_MAP;
	if (n->kind == SP_YSEQ)
		return SP_CF_SEQ;
	if (n->quoted)
		return SP_CF_STR;
	const char *s = n->str;
	if (!*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
	    !strcmp(s, "NULL"))
		return SP_CF_NULL;
	if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE") ||
	    !strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
		return SP_CF_BOOL;
	if (all_digits(s + (*s == '-' || *s == '+')))
		return SP_CF_INT;
	if (is_float(s))
		return SP_CF_FLOAT;
	return SP_CF_STR;
}

const char *sp_cf_found(const struct sp_ynode *n, char *buf, size_t size)
{
	static const char *const kinds[] = {
		[SP_CF_NULL] = "null",        [SP_CF_BOOL] = "a boolean", [SP_CF_INT] = "an integer",
		[SP_CF_FLOAT] = "a number",   [SP_CF_STR] = "a string",   [SP_CF_MAP] = "a mapping",
		[SP_CF_SEQ] = "a sequence",
	};
	enum sp_cf_type t = sp_cf_type(n);
	if (t == SP_CF_NULL || t == SP_CF_MAP || t == SP_CF_SEQ) {
		snprintf(buf, size, "%s", kinds[t]);
	} else {
		char show[48];
		sp_show(show, sizeof(show), n->str, n->len);
		snprintf(buf, size, t == SP_CF_STR ? "%s (\"%s\")" : "%s (%s)", kinds[t], show);
	}
	return buf;
}

void sp_cf_type_error(struct sp_cf_ctx *cx, const struct sp_ynode *n, const char *key,
		      const char *expected)
{
	char found[80];
	sp_cf_error(cx, n, "expected %s for '%s', found %s", expected, key,
		    sp_cf_found(n, found, sizeof(found)));
}

/* ---- mappings ------------------------------------------------------------------- */

bool sp_cf_fields(struct sp_cf_ctx *cx, const struct sp_ynode *map, const char *what,
		  const char *const *keys, const struct sp_ynode **vals)
{
	const struct sp_ynode *seen[SP_CF_MAX_KEYS] = { 0 };
	size_t nkeys = 0;
	while (keys[nkeys])
		vals[nkeys++] = NULL;
	if (!map || sp_cf_type(map) == SP_CF_NULL)
		return true;
	if (map->kind != SP_YMAP) {
		char found[80];
		sp_cf_error(cx, map, "expected a mapping for %s, found %s", what,
			    sp_cf_found(map, found, sizeof(found)));
		return false;
	}
	for (size_t i = 0; i < map->n; i++) {
		const struct sp_ynode *k = map->kids[2 * i], *v = map->kids[2 * i + 1];
		char show[64];
		if (k->kind != SP_YSCALAR) {
			sp_cf_error(cx, k, "keys must be strings, found %s in %s",
				    k->kind == SP_YMAP ? "a mapping" : "a sequence", what);
			continue;
		}
		size_t j = 0;
		while (keys[j] && strcmp(keys[j], k->str))
			j++;
		if (!keys[j]) {
			/* hints for people, not for files that are thousands of errors long */
			const char *hint =
				sp_report_count(cx->rep) < 100 ? sp_suggest(k->str, keys) : NULL;
			sp_show(show, sizeof(show), k->str, k->len);
			if (hint)
				sp_cf_error(cx, k, "unknown key '%s' in %s (did you mean '%s'?)", show,
					    what, hint);
			else
				sp_cf_error(cx, k, "unknown key '%s' in %s", show, what);
			continue;
		}
		if (seen[j]) {
			sp_cf_error(cx, k, "duplicate key '%s' in %s (first at %u:%u)", keys[j], what,
				    seen[j]->pos.line, seen[j]->pos.col);
			continue;
		}
		seen[j] = k;
		vals[j] = v;
	}
	return true;
}

bool sp_cf_require(struct sp_cf_ctx *cx, const struct sp_ynode *map, const struct sp_ynode *val,
		   const char *key, const char *what)
{
	if (val)
		return true;
	sp_cf_error(cx, map, "missing required key '%s' in %s", key, what);
	return false;
}

/* ---- scalars -------------------------------------------------------------------- */

bool sp_cf_uint(struct sp_cf_ctx *cx, const struct sp_ynode *n, const char *key, unsigned min,
		unsigned max, unsigned *out)
{
	if (!n)
		return true;
	if (sp_cf_type(n) != SP_CF_INT) {
		sp_cf_type_error(cx, n, key, "an integer");
		return false;
	}
	const char *s = n->str + (n->str[0] == '+');
	unsigned long long v = 0;
	bool neg = *s == '-', big = false;
	for (s += neg; *s; s++) {
		v = v * 10 + (unsigned)(*s - '0');
		if (v > 0xffffffffull) {
			big = true;
			break;
		}
	}
	if (neg && v) /* "-0" is zero */
		big = true;
	if (big || v < min || v > max) {
		char show[40];
		sp_cf_error(cx, n, "'%s' must be from %u to %u (found %s)", key, min, max,
			    sp_show(show, sizeof(show), n->str, n->len));
		return false;
	}
	*out = (unsigned)v;
	return true;
}

bool sp_cf_bool(struct sp_cf_ctx *cx, const struct sp_ynode *n, const char *key, bool *out)
{
	static const char *const yes[] = { "true", "True", "TRUE", "yes", "Yes", "YES",
					   "on",   "On",   "ON",   NULL };
	static const char *const no[] = { "false", "False", "FALSE", "no", "No", "NO",
					  "off",   "Off",   "OFF",   NULL };
	if (!n)
		return true;
	if (n->kind == SP_YSCALAR && !n->quoted) {
		for (size_t i = 0; yes[i]; i++) {
			if (!strcmp(n->str, yes[i])) {
				*out = true;
				return true;
			}
			if (!strcmp(n->str, no[i])) {
				*out = false;
				return true;
			}
		}
	}
	sp_cf_type_error(cx, n, key, "true or false");
	return false;
}

/* The text of a scalar usable as a string: not null, not a collection, not empty. */
static const char *text(struct sp_cf_ctx *cx, const struct sp_ynode *n, const char *key,
			const char *expected)
{
	enum sp_cf_type t = sp_cf_type(n);
	if (t == SP_CF_NULL || t == SP_CF_MAP || t == SP_CF_SEQ) {
		sp_cf_type_error(cx, n, key, expected);
		return NULL;
	}
	if (!n->len) {
		sp_cf_error(cx, n, "'%s' must not be empty", key);
		return NULL;
	}
	return n->str;
}

bool sp_cf_duration(struct sp_cf_ctx *cx, const struct sp_ynode *n, const char *key,
		    uint64_t min_ms, uint64_t *out)
{
	if (!n)
		return true;
	const char *s = text(cx, n, key, "a duration (250ms, 2s, 5m, 1h)");
	if (!s)
		return false;
	uint64_t ms;
	char show[40];
	sp_show(show, sizeof(show), n->str, n->len);
	if (sp_parse_duration_ms(s, &ms) < 0) {
		sp_cf_error(cx, n, "invalid duration '%s' for '%s' (expected a number and a unit: "
				   "250ms, 2s, 5m, 1h)",
			    show, key);
		return false;
	}
	if (ms < min_ms) {
		sp_cf_error(cx, n, "'%s' must be at least %llums (found %s)", key,
			    (unsigned long long)min_ms, show);
		return false;
	}
	if (ms > SP_CF_MAX_DURATION_MS) {
		sp_cf_error(cx, n, "'%s' is too long (found %s, at most 366 days)", key, show);
		return false;
	}
	*out = ms;
	return true;
}

bool sp_cf_str(struct sp_cf_ctx *cx, const struct sp_ynode *n, const char *key, char **out)
{
	if (!n)
		return true;
	const char *s = text(cx, n, key, "a string");
	if (!s)
		return false;
	char *d = sp_cf_strdup(cx, s);
	if (!d)
		return false;
	*out = d;
	return true;
}

bool sp_cf_path(struct sp_cf_ctx *cx, const struct sp_ynode *n, const char *key, char **out)
{
	if (!n)
		return true;
	const char *s = text(cx, n, key, "a path");
	if (!s)
		return false;
	if (s[0] != '/') {
		char show[64];
		sp_cf_error(cx, n, "'%s' must be an absolute path (found '%s')", key,
			    sp_show(show, sizeof(show), n->str, n->len));
		return false;
	}
	if (n->len >= 4096) {
		sp_cf_error(cx, n, "'%s' is longer than a path can be", key);
		return false;
	}
	return sp_cf_str(cx, n, key, out);
}

bool sp_cf_name(struct sp_cf_ctx *cx, const struct sp_ynode *n, const char *key, char **out)
{
	if (!n)
		return true;
	const char *s = text(cx, n, key, "a name");
	if (!s)
		return false;
	size_t ok = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-");
	if (ok != n->len || n->len > 64) {
		char show[80];
		sp_cf_error(cx, n,
			    "invalid %s '%s' (1 to 64 letters, digits, '_', '.' or '-')", key,
			    sp_show(show, sizeof(show), n->str, n->len));
		return false;
	}
	return sp_cf_str(cx, n, key, out);
}

bool sp_cf_account(struct sp_cf_ctx *cx, const struct sp_ynode *n, const char *key, char **out)
{
	if (!n)
		return true;
	const char *s = text(cx, n, key, "a user or group name");
	if (!s)
		return false;
	if (n->len > 32 || strcspn(s, " \t:/") != n->len) {
		char show[48];
		sp_cf_error(cx, n, "invalid %s name '%s' (at most 32 characters, no spaces, ':' or '/')",
			    key, sp_show(show, sizeof(show), n->str, n->len));
		return false;
	}
	return sp_cf_str(cx, n, key, out);
}

bool sp_cf_addr(struct sp_cf_ctx *cx, const struct sp_ynode *n, const char *key,
		struct sp_conf_addr *out)
{
	if (!n)
		return true;
	const char *s = text(cx, n, key, "an address");
	if (!s)
		return false;
	const char *why = "";
	int ret = sp_cf_parse_addr(s, out, &why, cx->arena);
	if (ret == -ENOMEM) {
		cx->oom = true;
		sp_cf_error(cx, n, "out of memory");
	} else if (ret < 0) {
		char show[80];
		sp_cf_error(cx, n, "invalid address '%s' for '%s': %s",
			    sp_show(show, sizeof(show), n->str, n->len), key, why);
	}
	return ret == 0;
}

/* "a, b, c or d" */
static void join_names(char *buf, size_t size, const char *const *names)
{
	size_t o = 0;
	buf[0] = '\0';
	for (size_t i = 0; names[i] && o < size; i++) {
		const char *sep = i == 0 ? "" : names[i + 1] ? ", " : " or ";
		int w = snprintf(buf + o, size - o, "%s%s", sep, names[i]);
		if (w < 0)
			break;
		o += (size_t)w;
	}
}

bool sp_cf_enum(struct sp_cf_ctx *cx, const struct sp_ynode *n, const char *key,
		const char *const *names, int *out)
{
	if (!n)
		return true;
	char choices[160];
	join_names(choices, sizeof(choices), names);
	if (n->kind != SP_YSCALAR || sp_cf_type(n) == SP_CF_NULL) {
		sp_cf_type_error(cx, n, key, choices);
		return false;
	}
	for (int i = 0; names[i]; i++) {
		if (!strcmp(n->str, names[i])) {
			*out = i;
			return true;
		}
	}
	char show[64];
	const char *hint = sp_suggest(n->str, names);
	sp_show(show, sizeof(show), n->str, n->len);
	if (hint)
		sp_cf_error(cx, n, "invalid value '%s' for '%s': expected %s (did you mean '%s'?)",
			    show, key, choices, hint);
	else
		sp_cf_error(cx, n, "invalid value '%s' for '%s': expected %s", show, key, choices);
	return false;
}

bool sp_cf_seq(struct sp_cf_ctx *cx, const struct sp_ynode *n, const char *key)
{
	if (n && n->kind == SP_YSEQ)
		return true;
	if (n)
		sp_cf_type_error(cx, n, key, "a sequence");
	return false;
}

bool sp_cf_strlist(struct sp_cf_ctx *cx, const struct sp_ynode *n, const char *key,
		   char ***out, size_t *count)
{
	if (!n)
		return true;
	if (!sp_cf_seq(cx, n, key))
		return false;
	char **v = sp_cf_alloc(cx, n->n + 1, sizeof(*v));
	if (!v)
		return false;
	bool ok = true;
	for (size_t i = 0; i < n->n; i++)
		ok &= sp_cf_str(cx, n->kids[i], key, &v[i]);
	if (!ok)
		return false;
	*out = v;
	*count = n->n;
	return true;
}

/* ---- names ---------------------------------------------------------------------- */

static int by_name(const void *a, const void *b)
{
	const struct sp_cf_named *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	if (c)
		return c;
	/* the first written comes first, so duplicates are reported where they repeat */
	if (x->node->pos.line != y->node->pos.line)
		return x->node->pos.line < y->node->pos.line ? -1 : 1;
	return (x->node->pos.col > y->node->pos.col) - (x->node->pos.col < y->node->pos.col);
}

void sp_cf_names_sort(struct sp_cf_ctx *cx, struct sp_cf_names *names, const char *kind)
{
	size_t o = 0;
	for (size_t i = 0; i < names->n; i++)
		if (names->v[i].name)
			names->v[o++] = names->v[i];
	names->n = o;
	if (o > 1)
		qsort(names->v, o, sizeof(*names->v), by_name);
	/* equal names sit together, the first written first: report the others there */
	size_t first = 0;
	for (size_t i = 1; i < names->n; i++) {
		const struct sp_cf_named *f = &names->v[first], *dup = &names->v[i];
		if (strcmp(f->name, dup->name)) {
			first = i;
			continue;
		}
		sp_cf_error(cx, dup->node, "duplicate %s '%s' (first defined at %u:%u)", kind,
			    dup->name, f->node->pos.line, f->node->pos.col);
	}
}

static int name_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct sp_cf_named *)elem)->name);
}

void *sp_cf_names_find(const struct sp_cf_names *names, const char *name)
{
	if (!names->n)
		return NULL;
	/* with duplicates (already reported) any match will do */
	const struct sp_cf_named *e = bsearch(name, names->v, names->n, sizeof(*names->v),
					      name_cmp);
	return e ? e->obj : NULL;
}

void *sp_cf_names_ref(struct sp_cf_ctx *cx, const struct sp_cf_names *names,
		      const struct sp_ynode *n, const char *key, const char *kind)
{
	const char *s = text(cx, n, key, "a name");
	if (!s)
		return NULL;
	void *obj = sp_cf_names_find(names, s);
	if (obj)
		return obj;
	/* a hint costs a distance per name: only for configs of ordinary size */
	const char *hint = NULL;
	if (names->n <= 256 && sp_report_count(cx->rep) < 100) {
		const char *cands[257];
		for (size_t i = 0; i < names->n; i++)
			cands[i] = names->v[i].name;
		cands[names->n] = NULL;
		hint = sp_suggest(s, cands);
	}
	char show[80];
	sp_show(show, sizeof(show), n->str, n->len);
	if (hint)
		sp_cf_error(cx, n, "unknown %s '%s' (did you mean '%s'?)", kind, show, hint);
	else if (!names->n)
		sp_cf_error(cx, n, "unknown %s '%s' (no %s is defined)", kind, show, kind);
	else
		sp_cf_error(cx, n, "unknown %s '%s'", kind, show);
	return NULL;
}

void sp_cf_names_free(struct sp_cf_names *names)
{
	free(names->v);
	names->v = NULL;
	names->n = 0;
}
