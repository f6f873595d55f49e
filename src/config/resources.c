/* SPDX-License-Identifier: MIT */
/*
 * resources.c - the checks of `spargiod -t` that look outside the file: certificates
 * and keys load and match, CA files load, file roots are directories, exec programs are
 * executable, users and groups exist. Kept apart from parsing, which touches nothing
 * but its input (and is fuzzed).
 */
#include <errno.h>
#include <stdbool.h>
#include <grp.h>
#include <stdio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pwd.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/report.h"

/* The last OpenSSL error, in words; empties OpenSSL's error queue. */
static const char *ssl_why(char *buf, size_t size)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;
	snprintf(buf, size, "%s", r ? r : "unknown error");
	ERR_clear_error();
	return buf;
}

/* OpenSSL says "system lib" for a missing file: say what the system said instead. */
static bool readable(struct sp_conf_report *rep, struct sp_conf_pos pos, const char *what,
		     const char *owner, const char *path)
{
	if (access(path, R_OK) == 0)
		return true;
	sp_report(rep, pos, "%s: cannot read %s '%s': %s", owner, what, path, strerror(errno));
	return false;
}

static void tls_server(struct sp_conf_report *rep, const struct sp_conf_listener *l)
{
	const struct sp_conf_tls_server *t = l->tls;
	char why[160], owner[96];
	snprintf(owner, sizeof(owner), "listener '%s'", l->name);
	bool ok = readable(rep, t->pos, "key", owner, t->key);
	if (!readable(rep, t->pos, "certificate", owner, t->cert) || !ok)
		return;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		sp_report(rep, t->pos, "listener '%s': cannot set up TLS: %s", l->name,
			  ssl_why(why, sizeof(why)));
		return;
	}
	/* the key first: loading a certificate next to a key that does not match drops the
	 * key quietly, so that check_private_key can say "does not match" in plain words */
	if (SSL_CTX_use_PrivateKey_file(ctx, t->key, SSL_FILETYPE_PEM) != 1)
		sp_report(rep, t->pos, "listener '%s': cannot load key '%s': %s", l->name, t->key,
			  ssl_why(why, sizeof(why)));
	else if (SSL_CTX_use_certificate_chain_file(ctx, t->cert) != 1)
		sp_report(rep, t->pos, "listener '%s': cannot load certificate '%s': %s", l->name,
			  t->cert, ssl_why(why, sizeof(why)));
	else if (SSL_CTX_check_private_key(ctx) != 1)
		sp_report(rep, t->pos, "listener '%s': key '%s' does not match certificate '%s'",
			  l->name, t->key, t->cert);
	ERR_clear_error();
	SSL_CTX_free(ctx);
}

static void tls_client(struct sp_conf_report *rep, const struct sp_conf_upstream *u)
{
	const struct sp_conf_tls_client *t = u->tls;
	struct stat st;
	char why[160];
	if (!t->ca)
		return;
	if (stat(t->ca, &st) < 0 || access(t->ca, R_OK) < 0) {
		sp_report(rep, t->pos, "upstream '%s': cannot read CA '%s': %s", u->name, t->ca,
			  strerror(errno));
		return;
	}
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		sp_report(rep, t->pos, "upstream '%s': cannot set up TLS: %s", u->name,
			  ssl_why(why, sizeof(why)));
		return;
	}
	int ok = S_ISDIR(st.st_mode) ? SSL_CTX_load_verify_dir(ctx, t->ca)
				     : SSL_CTX_load_verify_file(ctx, t->ca);
	if (ok != 1)
		sp_report(rep, t->pos, "upstream '%s': cannot load CA '%s': %s", u->name, t->ca,
			  ssl_why(why, sizeof(why)));
	ERR_clear_error();
	SSL_CTX_free(ctx);
}

static void user(struct sp_conf_report *rep, struct sp_conf_pos pos, const char *name)
{
	errno = 0;
	if (!getpwnam(name))
		sp_report(rep, pos, "no user '%s' on this system%s%s", name, errno ? ": " : "",
			  errno ? strerror(errno) : "");
}

static void stage(struct sp_conf_report *rep, const struct sp_conf_stage *st)
{
	struct stat sb;
	if (st->kind == SP_STAGE_FILES) {
		const char *root = st->files.root;
		if (stat(root, &sb) < 0)
			sp_report(rep, st->pos, "files root '%s': %s", root, strerror(errno));
		else if (!S_ISDIR(sb.st_mode))
			sp_report(rep, st->pos, "files root '%s' is not a directory", root);
	} else if (st->kind == SP_STAGE_EXEC) {
		const char *prog = st->exec.argv[0];
		if (stat(prog, &sb) < 0)
			sp_report(rep, st->pos, "exec command '%s': %s", prog, strerror(errno));
		else if (!S_ISREG(sb.st_mode) || access(prog, X_OK) < 0)
			sp_report(rep, st->pos, "exec command '%s' is not an executable file", prog);
		if (st->exec.user)
			user(rep, st->pos, st->exec.user);
		errno = 0;
		if (st->exec.group && !getgrnam(st->exec.group))
			sp_report(rep, st->pos, "no group '%s' on this system", st->exec.group);
		const char *dir = st->exec.working_dir;
		if (stat(dir, &sb) < 0)
			sp_report(rep, st->pos, "exec working_dir '%s': %s", dir, strerror(errno));
		else if (!S_ISDIR(sb.st_mode))
			sp_report(rep, st->pos, "exec working_dir '%s' is not a directory", dir);
	}
}

int sp_config_check_resources(const struct sp_config *cfg, struct sp_conf_errors *errs)
{
	struct sp_conf_report rep;
	sp_report_init(&rep, cfg->path);
	for (size_t i = 0; i < cfg->n_listeners; i++)
		if (cfg->listeners[i].tls)
			tls_server(&rep, &cfg->listeners[i]);
	for (size_t i = 0; i < cfg->n_upstreams; i++)
		if (cfg->upstreams[i].tls)
			tls_client(&rep, &cfg->upstreams[i]);
	for (size_t i = 0; i < cfg->n_routes; i++)
		for (size_t j = 0; j < cfg->routes[i].n_stages; j++)
			stage(&rep, &cfg->routes[i].stages[j]);
	if (cfg->process.user)
		user(&rep, cfg->process.pos, cfg->process.user);
	if (cfg->process.group) {
		errno = 0;
		if (!getgrnam(cfg->process.group))
			sp_report(&rep, cfg->process.pos, "no group '%s' on this system",
				  cfg->process.group);
	}
	int ret = sp_report_count(&rep) ? -EINVAL : 0;
	sp_report_finish(&rep, errs);
	return ret;
}
