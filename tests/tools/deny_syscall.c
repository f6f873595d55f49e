/* SPDX-License-Identifier: MIT */
/*
 * deny_syscall NR ERRNO PROGRAM [ARG...] - run PROGRAM with system call NR failing with
 * ERRNO, as a seccomp filter does (systemd's SystemCallFilter= with
 * SystemCallErrorNumber=). The tests use it to see how spargiod copes with a filter
 * older than a call it wants. Exits 77 (skip) where it cannot install the filter.
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

#if defined(__x86_64__)
#define ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define ARCH AUDIT_ARCH_AARCH64
#endif

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: deny_syscall NR ERRNO PROGRAM [ARG...]\n");
		return 2;
	}
#ifndef ARCH
	fprintf(stderr, "deny_syscall: unknown architecture\n");
	return 77;
#else
	unsigned nr = (unsigned)atoi(argv[1]), err = (unsigned)atoi(argv[2]);
	struct sock_filter prog[] = {
		/* another architecture's calls (a 32-bit ABI) are let through untouched */
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ARCH, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (err & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog fprog = { sizeof(prog) / sizeof(prog[0]), prog };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog) < 0) {
		perror("deny_syscall: seccomp");
		return 77;
	}
	execvp(argv[3], argv + 3);
	perror("deny_syscall: exec");
	return 127;
#endif
}
