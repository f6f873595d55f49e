/* SPDX-License-Identifier: MIT */
/*
 * yaml_tree.c - libyaml events to a positioned node tree (yaml_tree.h).
 *
 * Hostile input is stopped early and with bounded memory: the text is checked for
 * UTF-8 and control bytes before libyaml sees it, and the first anchor, alias, tag,
 * second document, over-long scalar or over-deep nesting ends the parse. Without
 * aliases the tree is never bigger than a small multiple of the (<= 1 MiB) input.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "config/arena.h"
#include "config/report.h"
#include "config/yaml_tree.h"

struct level {
	struct sp_ynode *node;
	struct sp_ynode **kids; /* malloc'd, reused by the next collection at this depth */
	size_t n, cap;
};

struct builder {
	struct sp_arena *arena;
	struct sp_conf_report *rep;
	struct level stack[SP_YAML_MAX_DEPTH];
	unsigned depth;
	struct sp_ynode *root;
	unsigned docs;
};

static struct sp_conf_pos mark_pos(yaml_mark_t m)
{
	return (struct sp_conf_pos){ (unsigned)m.line + 1, (unsigned)m.column + 1 };
}

/* Where byte offset off is, counting lines like libyaml (\n, \r\n, \r) and columns in
 * characters. */
static struct sp_conf_pos offset_pos(const char *buf, size_t len, size_t off)
{
	struct sp_conf_pos p = { 1, 1 };
	for (size_t i = 0; i < off && i < len; i++) {
		unsigned char c = (unsigned char)buf[i];
		if (c == '\n' || (c == '\r' && (i + 1 == len || buf[i + 1] != '\n'))) {
			p.line++;
			p.col = 1;
		} else if ((c & 0xc0) != 0x80 && c != '\r') {
			p.col++;
		}
	}
	return p;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 when invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf; /* the range of the second byte */
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0; /* overlong */
		if (c == 0xed)
			hi = 0x9f; /* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90; /* overlong */
		if (c == 0xf4)
			hi = 0x8f; /* past U+10FFFF */
	} else
		return 0;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

/* The file must be UTF-8 text: say where it is not, in words people understand. */
static bool check_text(const char *buf, size_t len, struct sp_conf_report *rep)
{
	const unsigned char *s = (const unsigned char *)buf;
	for (size_t i = 0; i < len;) {
		if (s[i] == 0) {
			sp_report(rep, offset_pos(buf, len, i),
				  "NUL byte: this is binary data, not a YAML configuration");
			return false;
		}
		if ((s[i] < 0x20 && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') || s[i] == 0x7f) {
			sp_report(rep, offset_pos(buf, len, i), "control character 0x%02x is not allowed",
				  s[i]);
			return false;
		}
		size_t n = utf8_len(s + i, len - i);
		if (!n) {
			sp_report(rep, offset_pos(buf, len, i),
				  "invalid UTF-8 (byte 0x%02x): the configuration must be UTF-8 text",
				  s[i]);
			return false;
		}
		i += n;
	}
	return true;
}

static void parser_error(yaml_parser_t *p, const char *buf, size_t len,
			 struct sp_conf_report *rep)
{
	const char *problem = p->problem ? p->problem : "unknown error";
	switch (p->error) {
	case YAML_MEMORY_ERROR:
		sp_report(rep, (struct sp_conf_pos){ 1, 1 }, "out of memory while parsing");
		break;
	case YAML_READER_ERROR:
		sp_report(rep, offset_pos(buf, len, p->problem_offset), "invalid input: %s", problem);
		break;
	default:
		if (p->context)
			sp_report(rep, mark_pos(p->problem_mark),
				  "YAML syntax error: %s (%s started at %u:%u)", problem, p->context,
				  (unsigned)p->context_mark.line + 1,
				  (unsigned)p->context_mark.column + 1);
		else
			sp_report(rep, mark_pos(p->problem_mark), "YAML syntax error: %s", problem);
	}
}

static bool attach(struct builder *b, struct sp_ynode *node)
{
	if (!b->depth) {
		b->root = node;
		return true;
	}
	struct level *lv = &b->stack[b->depth - 1];
	if (lv->n == lv->cap) {
		size_t cap = lv->cap ? lv->cap * 2 : 8;
		struct sp_ynode **v = realloc(lv->kids, cap * sizeof(*v));
		if (!v)
			return false;
		lv->kids = v;
		lv->cap = cap;
	}
	lv->kids[lv->n++] = node;
	return true;
}

static struct sp_ynode *new_node(struct builder *b, enum sp_ynode_kind kind, yaml_mark_t m)
{
	struct sp_ynode *n = sp_arena_alloc(b->arena, 1, sizeof(*n));
	if (n) {
		n->kind = kind;
		n->pos = mark_pos(m);
	}
	return n;
}

static bool oom(struct builder *b, yaml_mark_t m)
{
	sp_report(b->rep, mark_pos(m), "out of memory");
	return false;
}

/* Anchors, aliases and tags are refused outright: no alias expansion means no
 * "billion laughs", and a config has no use for them. */
static bool plain_node(struct builder *b, const yaml_event_t *ev, const yaml_char_t *anchor,
		       const yaml_char_t *tag)
{
	if (anchor) {
		sp_report(b->rep, mark_pos(ev->start_mark),
			  "YAML anchors and aliases are not supported");
		return false;
	}
	if (tag) {
		char show[64];
		sp_report(b->rep, mark_pos(ev->start_mark), "YAML tags are not supported ('%s')",
			  sp_show(show, sizeof(show), (const char *)tag, strlen((const char *)tag)));
		return false;
	}
	return true;
}

static bool on_scalar(struct builder *b, const yaml_event_t *ev)
{
	const char *val = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;
	if (!plain_node(b, ev, ev->data.scalar.anchor, ev->data.scalar.tag))
		return false;
	if (len > SP_YAML_MAX_SCALAR) {
		sp_report(b->rep, mark_pos(ev->start_mark),
			  "value too long (%zu bytes, at most %d)", len, SP_YAML_MAX_SCALAR);
		return false;
	}
	if (memchr(val, '\0', len)) { /* "\0" in a double-quoted string */
		sp_report(b->rep, mark_pos(ev->start_mark), "NUL character in a string");
		return false;
	}
	struct sp_ynode *n = new_node(b, SP_YSCALAR, ev->start_mark);
	if (!n || !(n->str = sp_arena_strndup(b->arena, val, len)))
		return oom(b, ev->start_mark);
	n->len = len;
	n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
	return attach(b, n) || oom(b, ev->start_mark);
}

static bool on_start(struct builder *b, const yaml_event_t *ev, enum sp_ynode_kind kind,
		     const yaml_char_t *anchor, const yaml_char_t *tag)
{
	if (!plain_node(b, ev, anchor, tag))
		return false;
	if (b->depth == SP_YAML_MAX_DEPTH) {
		sp_report(b->rep, mark_pos(ev->start_mark), "nesting deeper than %d levels",
			  SP_YAML_MAX_DEPTH);
		return false;
	}
	struct sp_ynode *n = new_node(b, kind, ev->start_mark);
	if (!n || !attach(b, n))
		return oom(b, ev->start_mark);
	struct level *lv = &b->stack[b->depth++];
	lv->node = n;
	lv->n = 0;
	return true;
}

static bool on_end(struct builder *b, const yaml_event_t *ev)
{
	struct level *lv = &b->stack[--b->depth];
	struct sp_ynode *n = lv->node;
	n->kids = sp_arena_alloc(b->arena, lv->n, sizeof(*n->kids));
	if (!n->kids)
		return oom(b, ev->start_mark);
	if (lv->n)
		memcpy(n->kids, lv->kids, lv->n * sizeof(*n->kids));
	n->n = n->kind == SP_YMAP ? lv->n / 2 : lv->n;
	return true;
}

static bool on_event(struct builder *b, const yaml_event_t *ev)
{
	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		if (b->docs++) {
			sp_report(b->rep, mark_pos(ev->start_mark),
				  "only one YAML document is allowed; a second one starts here");
			return false;
		}
		return true;
	case YAML_ALIAS_EVENT:
		sp_report(b->rep, mark_pos(ev->start_mark),
			  "YAML anchors and aliases are not supported");
		return false;
	case YAML_SCALAR_EVENT:
		return on_scalar(b, ev);
	case YAML_SEQUENCE_START_EVENT:
		return on_start(b, ev, SP_YSEQ, ev->data.sequence_start.anchor,
				ev->data.sequence_start.tag);
	case YAML_MAPPING_START_EVENT:
		return on_start(b, ev, SP_YMAP, ev->data.mapping_start.anchor,
				ev->data.mapping_start.tag);
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		return on_end(b, ev);
	default: /* stream start and end, document end */
		return true;
	}
}

struct sp_ynode *sp_yaml_parse(const char *buf, size_t len, struct sp_arena *arena,
			       struct sp_conf_report *rep)
{
	if (len > SP_YAML_MAX_FILE) {
		/* len may be a cut-off read: say the limit, not the size */
		sp_report(rep, (struct sp_conf_pos){ 1, 1 }, "file too large (at most %d bytes)",
			  SP_YAML_MAX_FILE);
		return NULL;
	}
	if (!check_text(buf, len, rep))
		return NULL;

	struct builder b = { .arena = arena, .rep = rep };
	yaml_parser_t p;
	if (!yaml_parser_initialize(&p)) {
		sp_report(rep, (struct sp_conf_pos){ 1, 1 }, "out of memory");
		return NULL;
	}
	yaml_parser_set_encoding(&p, YAML_UTF8_ENCODING);
	yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);

	bool ok = true;
	for (;;) {
		yaml_event_t ev;
		if (!yaml_parser_parse(&p, &ev)) {
			parser_error(&p, buf, len, rep);
			ok = false;
			break;
		}
		bool end = ev.type == YAML_STREAM_END_EVENT;
		ok = on_event(&b, &ev);
		yaml_event_delete(&ev);
		if (!ok || end)
			break;
	}
	yaml_parser_delete(&p);
	for (unsigned i = 0; i < SP_YAML_MAX_DEPTH; i++)
		free(b.stack[i].kids);

	if (ok && !b.root)
		sp_report(rep, (struct sp_conf_pos){ 1, 1 },
			  "the configuration is empty (it starts with 'version: 1')");
	return ok ? b.root : NULL;
}
