/* SPDX-License-Identifier: MIT */
/*
 * logging.c - where log lines go: journald with structured fields under systemd (or
 * `log.target: journal`), else stderr. The access log is one line per finished
 * connection; in the journal its figures are fields too (CLIENT=, ROUTE=, BYTES_IN=...).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <syslog.h>
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "engine/log.h"

static bool to_journal;

static void journal_sink(int level, const char *msg)
{
	sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", level,
			"SYSLOG_IDENTIFIER=spargiod", NULL);
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
	to_journal = target == SP_LOG_TARGET_JOURNAL ||
		     (target == SP_LOG_TARGET_AUTO && stderr_is_journal());
	sp_log_set_sink(to_journal ? journal_sink : NULL);
	sp_log_set_level(level);
}

void sp_access_log(const struct sp_session *s)
{
	char client[80];
	sp_sockaddr_str((const struct sockaddr *)&s->peer, s->peerlen, client, sizeof(client));
	double ms = (double)(sp_now_ns() - s->started_ns) / 1e6;
	const char *end = s->end_reason ? s->end_reason : "closed";

	if (to_journal) {
		sd_journal_send("MESSAGE=access %s %s %s %.3fms in=%" PRIu64 " out=%" PRIu64 " %s %s",
				s->lst->conf->name, s->route->conf->name, client, ms, s->bytes_in,
				s->bytes_out, end, s->log_extra, "SPARGIOD_EXTRA=%s", s->log_extra,
				"PRIORITY=%d", LOG_INFO, "SYSLOG_IDENTIFIER=spargiod",
				"SPARGIOD_EVENT=access", "LISTENER=%s", s->lst->conf->name,
				"ROUTE=%s", s->route->conf->name, "CLIENT=%s", client,
				"DURATION_MS=%.3f", ms, "BYTES_IN=%" PRIu64, s->bytes_in,
				"BYTES_OUT=%" PRIu64, s->bytes_out, "END=%s", end, NULL);
		return;
	}
	sp_log(SP_LOG_INFO, "access listener=%s route=%s client=%s duration_ms=%.3f in=%" PRIu64
	       " out=%" PRIu64 " end=%s%s%s", s->lst->conf->name, s->route->conf->name, client, ms,
	       s->bytes_in, s->bytes_out, end, s->log_extra[0] ? " " : "", s->log_extra);
}

void sp_access_log_denied(const struct sp_gen_listener *l, const struct sockaddr *peer,
			  const char *stage)
{
	char client[80];
	sp_sockaddr_str(peer, sizeof(struct sockaddr_storage), client, sizeof(client));
	if (to_journal) {
		sd_journal_send("MESSAGE=access %s %s %s denied by %s", l->conf->name,
				l->route->conf->name, client, stage, "PRIORITY=%d", LOG_INFO,
				"SYSLOG_IDENTIFIER=spargiod", "SPARGIOD_EVENT=denied",
				"LISTENER=%s", l->conf->name, "ROUTE=%s", l->route->conf->name,
				"CLIENT=%s", client, "STAGE=%s", stage, NULL);
		return;
	}
	sp_log(SP_LOG_INFO, "access listener=%s route=%s client=%s end=denied stage=%s",
	       l->conf->name, l->route->conf->name, client, stage);
}
