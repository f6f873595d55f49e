/* SPDX-License-Identifier: MIT */
/*
 * logging.c - where log lines go: journald with structured fields under systemd (or
 * `log.target: journal`), else stderr. The access log is one line per finished
 * connection; in the journal its figures are fields too (CLIENT=, ROUTE=, BYTES_IN=...).
 * Lines are queued by sp_log's writer thread: a shard never waits for the journal.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "engine/log.h"


/* The log writer thread calls this: MESSAGE, PRIORITY and the line's own fields. */
static void journal_sink(int level, const char *msg, const char *fields)
{
	struct iovec iov[16];
	char m[1024], p[32];
	int n = 0;
	snprintf(m, sizeof(m), "MESSAGE=%s", msg);
	snprintf(p, sizeof(p), "PRIORITY=%d", level);
	iov[n++] = (struct iovec){ m, strlen(m) };
	iov[n++] = (struct iovec){ p, strlen(p) };
	iov[n++] = (struct iovec){ (char *)"SYSLOG_IDENTIFIER=spargiod", 26 };
	for (const char *f = fields; f && *f && n < 16;) {
		const char *end = strchr(f, '\n');
		size_t len = end ? (size_t)(end - f) : strlen(f);
		iov[n++] = (struct iovec){ (char *)f, len };
		f += len + (end ? 1 : 0);
	}
	sd_journal_sendv(iov, n);
}

/* systemd connects stderr to the journal and says so in JOURNAL_STREAM=dev:ino. */
static bool stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	struct stat st;
	unsigned long long dev, ino;
	if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
		return false;
	return st.st_dev == dev && st.st_ino == ino;
}

void sp_logging_setup(enum sp_log_target target, int level)
{
	bool to_journal = target == SP_LOG_TARGET_JOURNAL ||
			  (target == SP_LOG_TARGET_AUTO && stderr_is_journal());
	sp_log_set_sink(to_journal ? journal_sink : NULL);
	sp_log_set_level(level);
}

void sp_access_log(const struct sp_session *s)
{
	char client[80], fields[384];
	sp_sockaddr_str((const struct sockaddr *)&s->peer, s->peerlen, client, sizeof(client));
	double ms = (double)(sp_now_ns() - s->started_ns) / 1e6;
	const char *end = s->end_reason ? s->end_reason : "closed";

	/* journal fields are bounded too: a cut-off last field is still a valid one */
	if (snprintf(fields, sizeof(fields),
		 "SPARGIOD_EVENT=access\nLISTENER=%s\nROUTE=%s\nCLIENT=%s\nDURATION_MS=%.3f\n"
		 "BYTES_IN=%" PRIu64 "\nBYTES_OUT=%" PRIu64 "\nEND=%s\nSPARGIOD_EXTRA=%s",
		 s->lst->conf->name, s->route->conf->name, client, ms, s->bytes_in, s->bytes_out,
		 end, s->log_extra) >= (int)sizeof(fields))
		fields[sizeof(fields) - 1] = 0;
	sp_log_fields(SP_LOG_INFO, fields,
		      "access listener=%s route=%s client=%s duration_ms=%.3f in=%" PRIu64
		      " out=%" PRIu64 " end=%s%s%s", s->lst->conf->name, s->route->conf->name,
		      client, ms, s->bytes_in, s->bytes_out, end, s->log_extra[0] ? " " : "",
		      s->log_extra);
}

void sp_access_log_denied(const struct sp_gen_listener *l, const struct sockaddr *peer,
			  const char *stage)
{
	char client[80], fields[256];
	sp_sockaddr_str(peer, sizeof(struct sockaddr_storage), client, sizeof(client));
	snprintf(fields, sizeof(fields),
		 "SPARGIOD_EVENT=denied\nLISTENER=%s\nROUTE=%s\nCLIENT=%s\nSTAGE=%s",
		 l->conf->name, l->route->conf->name, client, stage);
	sp_log_fields(SP_LOG_INFO, fields, "access listener=%s route=%s client=%s end=denied stage=%s",
		      l->conf->name, l->route->conf->name, client, stage);
}
