/* SPDX-License-Identifier: MIT */
/*
 * main.c - spargiod's command line (spargiod(8)):
 *   spargiod [-c FILE] [-t] [-V] [-h]
 * Exit statuses: 0 ok, 1 invalid configuration, 2 bad usage, 3 start-up failure.
 */
#include <errno.h>
#include <getopt.h>
#include <liburing.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/utsname.h>

#include "daemon/daemon.h"
#include "handlers/files.h"

#ifndef SP_SYSCONFDIR
#define SP_SYSCONFDIR "/etc"
#endif
#define DEFAULT_CONFIG SP_SYSCONFDIR "/spargiod/spargiod.yaml"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: spargiod [-c FILE] [-t] [-V] [-h]\n"
		"  -c, --config FILE   config file (default: %s)\n"
		"  -t, --test          validate the config fully and exit\n"
		"  -V, --version       print version and build features\n"
		"  -h, --help          this help\n",
		DEFAULT_CONFIG);
}

static void print_line(void *arg, const char *msg)
{
	fprintf(arg, "%s\n", msg);
}

/* -t: everything a start would check short of binding: schema, references, certs and
 * keys, file roots, commands, users, and what a start checks itself (safety.c). */
static int test_config(const char *path)
{
	struct sp_conf_errors errs = { 0 };
	struct sp_config *cfg = NULL;
	int ret = sp_config_load(path, &cfg, &errs);
	if (ret == 0)
		ret = sp_config_check_resources(cfg, &errs);
	if (cfg && sp_config_check_start(cfg, &errs, print_line, stderr) < 0 && ret == 0)
		ret = -EINVAL;
	if (ret == 0 && sp_gen_unservable(cfg, print_line, stderr))
		ret = -ENOTSUP;
	for (unsigned i = 0; i < errs.count; i++)
		fprintf(stderr, "%s\n", errs.msgs[i]);
	if (errs.dropped)
		fprintf(stderr, "... and %u more errors\n", errs.dropped);
	if (ret < 0 && !errs.count)
		fprintf(stderr, "%s: cannot load the configuration\n", path);
	sp_conf_errors_free(&errs);
	sp_config_unref(cfg);
	if (ret < 0)
		return SP_EXIT_CONFIG;
	printf("configuration OK\n");
	return SP_EXIT_OK;
}

void sp_print_version(void)
{
	static const struct { unsigned op; const char *name; } ops[] = {
		{ IORING_OP_ACCEPT, "accept" }, { IORING_OP_RECV, "recv" },
		{ IORING_OP_SEND, "send" }, { IORING_OP_SPLICE, "splice" },
		{ IORING_OP_OPENAT2, "openat2" }, { IORING_OP_STATX, "statx" },
		{ IORING_OP_MSG_RING, "msg_ring" }, { IORING_OP_LINK_TIMEOUT, "link_timeout" },
		{ IORING_OP_SOCKET, "socket" }, { IORING_OP_PROVIDE_BUFFERS, "provide_buffers" },
	};
	printf("spargiod %s\n", PACKAGE_VERSION);
	printf("io_uring ops:");
	struct io_uring_probe *probe = io_uring_get_probe();
	if (!probe) {
		printf(" unavailable (io_uring_setup refused)\n");
	} else {
		for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
			printf(" %s%s", io_uring_opcode_supported(probe, (int)ops[i].op) ? "+" : "-",
			       ops[i].name);
		printf("\n");
		io_uring_free_probe(probe);
	}
	int e = files_cachestat_probe();
	printf("cachestat: %s\n",
	       !e	     ? "yes (files: sendfile for cached bodies)"
	       : e == ENOSYS ? "no (not in this kernel; files: mincore instead)"
			     : "no (not permitted by a seccomp filter; files: mincore instead)");
	struct utsname u;
	if (uname(&u) == 0)
		printf("kernel: %s %s\n", u.sysname, u.release);
	printf("tls: %s (built with %s)\n", OpenSSL_version(OPENSSL_VERSION), OPENSSL_VERSION_TEXT);
	printf("systemd: notify, socket activation, journald, watchdog\n");
#ifdef SP_BUILD_OPTIONS
	printf("build: %s\n", SP_BUILD_OPTIONS);
#endif
#ifdef SP_BUILD_LIBS
	printf("libraries: %s\n", SP_BUILD_LIBS);
#endif
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "test", no_argument, NULL, 't' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *path = DEFAULT_CONFIG;
	bool test = false;
	int c;

	while ((c = getopt_long(argc, argv, "c:tVh", opts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 't': test = true; break;
		case 'V': sp_print_version(); return SP_EXIT_OK;
		case 'h': usage(stdout); return SP_EXIT_OK;
		default: usage(stderr); return SP_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "spargiod: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return SP_EXIT_USAGE;
	}
	return test ? test_config(path) : sp_daemon_run(path);
}
