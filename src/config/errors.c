/* SPDX-License-Identifier: MIT */
/*
 * errors.c - collecting config errors (report.h), handing them out as sp_conf_errors,
 * and the helpers that make messages readable: safe quoting and "did you mean".
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/report.h"

/* Errors kept before sorting. A hostile file could cause one per line; keeping a few
 * thousand is plenty to show the first SP_CONF_MAX_ERRORS in file order. */
#define REPORT_KEEP 2000

void sp_conf_errors_free(struct sp_conf_errors *errs)
{
	if (!errs)
		return;
	for (unsigned i = 0; i < errs->count; i++)
		free(errs->msgs[i]);
	free(errs->msgs);
	errs->msgs = NULL;
	errs->count = errs->dropped = 0;
}

void sp_report_init(struct sp_conf_report *r, const char *name)
{
	memset(r, 0, sizeof(*r));
	r->name = name;
}

void sp_vreport(struct sp_conf_report *r, struct sp_conf_pos pos, const char *fmt, va_list ap)
{
	if (r->n == REPORT_KEEP) {
		r->dropped++;
		return;
	}
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct sp_report_entry *v = realloc(r->v, cap * sizeof(*v));
		if (!v) {
			r->dropped++;
			return;
		}
		r->v = v;
		r->cap = cap;
	}
	char text[1024];
	vsnprintf(text, sizeof(text), fmt, ap);
	/* one error, one line: a path or name from the file may hold escaped control
	 * characters, and the line goes to logs and the control socket */
	for (char *p = text; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';

	char *msg = NULL;
	int ret = pos.line ? asprintf(&msg, "%s:%u:%u: %s", r->name, pos.line, pos.col, text)
			   : asprintf(&msg, "%s: %s", r->name, text);
	if (ret < 0) {
		r->dropped++;
		return;
	}
	r->v[r->n].pos = pos;
	r->v[r->n].msg = msg;
	r->n++;
}

void sp_report(struct sp_conf_report *r, struct sp_conf_pos pos, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	sp_vreport(r, pos, fmt, ap);
	va_end(ap);
}

unsigned sp_report_count(const struct sp_conf_report *r)
{
	return (unsigned)r->n + r->dropped;
}

void sp_report_finish(struct sp_conf_report *r, struct sp_conf_errors *errs)
{
	/* a stable sort keeps errors at one place in the order they were reported; the
	 * list is short (bounded by REPORT_KEEP) and mostly in order already */
	for (size_t i = 1; i < r->n; i++) {
		struct sp_report_entry e = r->v[i];
		size_t j = i;
		while (j > 0 && (r->v[j - 1].pos.line > e.pos.line ||
				 (r->v[j - 1].pos.line == e.pos.line && r->v[j - 1].pos.col > e.pos.col))) {
			r->v[j] = r->v[j - 1];
			j--;
		}
		r->v[j] = e;
	}

	for (size_t i = 0; i < r->n; i++) {
		char *msg = r->v[i].msg;
		if (!errs) {
			free(msg);
			continue;
		}
		if (errs->count >= SP_CONF_MAX_ERRORS) {
			errs->dropped++;
			free(msg);
			continue;
		}
		char **v = realloc(errs->msgs, (errs->count + 1) * sizeof(*v));
		if (!v) {
			errs->dropped++;
			free(msg);
			continue;
		}
		errs->msgs = v;
		errs->msgs[errs->count++] = msg;
	}
	if (errs)
		errs->dropped += r->dropped;
	free(r->v);
	r->v = NULL;
	r->n = r->cap = 0;
	r->dropped = 0;
}

char *sp_show(char *buf, size_t size, const char *s, size_t len)
{
	size_t max = size - 1, o = 0;
	bool cut = len > max;
	if (cut)
		max -= 3;
	for (size_t i = 0; i < len && o < max; i++) {
		unsigned char c = (unsigned char)s[i];
		buf[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	/* do not leave half of a UTF-8 sequence before the "..." */
	if (cut)
		while (o > 0 && ((unsigned char)buf[o - 1] & 0xc0) == 0x80)
			o--;
	if (cut && o > 0 && ((unsigned char)buf[o - 1] & 0xc0) == 0xc0)
		o--;
	if (cut) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

/* Edit distance counting a swap of neighbours as one edit ("tsl" -> "tls"); both
 * words are short (callers skip long ones). */
static unsigned distance(const char *a, const char *b)
{
	enum { MAXW = 64 };
	unsigned char d[MAXW + 1][MAXW + 1];
	size_t la = strlen(a), lb = strlen(b);
	if (la > MAXW || lb > MAXW)
		return 255;
	for (size_t i = 0; i <= la; i++)
		d[i][0] = (unsigned char)i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = (unsigned char)j;
	for (size_t i = 1; i <= la; i++) {
		for (size_t j = 1; j <= lb; j++) {
			unsigned v = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
			if (d[i - 1][j] + 1u < v)
				v = d[i - 1][j] + 1u;
			if (d[i][j - 1] + 1u < v)
				v = d[i][j - 1] + 1u;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    d[i - 2][j - 2] + 1u < v)
				v = d[i - 2][j - 2] + 1u;
			d[i][j] = (unsigned char)v;
		}
	}
	return d[la][lb];
}

const char *sp_suggest(const char *word, const char *const *cands)
{
	const char *best = NULL;
	unsigned best_d = 3; /* a typo is at most two edits away */
	size_t len = strlen(word);
	if (len > 64)
		return NULL;
	for (size_t i = 0; cands[i]; i++) {
		size_t cl = strlen(cands[i]);
		if (cl > len + 2 || len > cl + 2)
			continue; /* more than two edits apart, without counting them */
		unsigned d = distance(word, cands[i]);
		/* and it leaves most of the word standing ("ca" is not a typo of "sni") */
		if (d < best_d && d * 2 <= len && d < cl) {
			best = cands[i];
			best_d = d;
		}
	}
	return best;
}
