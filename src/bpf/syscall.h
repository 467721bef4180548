/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* What a raw_syscalls sys_exit program needs, on each supported
 * architecture: the syscall numbers the fallbacks look at and the decode
 * of the one exiting; and reading memory either from user or kernel. */
#ifndef __TCPSTATE_SYSCALL_H
#define __TCPSTATE_SYSCALL_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#if defined(__TARGET_ARCH_x86)
#define NR_READ 0
#define NR_WRITE 1
#define NR_WRITEV 20
#define NR_CONNECT 42
#define NR_SENDTO 44
#define NR_RECVFROM 45
#define NR_SENDMSG 46
#define NR_RECVMSG 47
#define NR_GETSOCKOPT 55
#define NR_RECVMMSG 299
#define NR_SENDMMSG 307
#elif defined(__TARGET_ARCH_arm64)
#define NR_READ 63
#define NR_WRITE 64
#define NR_WRITEV 66
#define NR_CONNECT 203
#define NR_SENDTO 206
#define NR_RECVFROM 207
#define NR_GETSOCKOPT 209
#define NR_SENDMSG 211
#define NR_RECVMSG 212
#define NR_RECVMMSG 243
#define NR_SENDMMSG 269
#else
#error "unsupported architecture: add its syscall numbers"
#endif

/* The exiting syscall's number, as the entry path saved it in pt_regs. */
static __always_inline long syscall_nr(const struct pt_regs *regs)
{
#if defined(__TARGET_ARCH_x86)
	return regs->orig_ax;
#else
	return regs->syscallno;
#endif
}

/* Memory a hook reads: the calling process's (user) at a syscall's exit,
 * the kernel's in a trampoline, which sees the kernel's own copies. */
static __always_inline long read_mem(void *dst, __u32 size, const void *src, bool user)
{
	return user ? bpf_probe_read_user(dst, size, src) : bpf_probe_read_kernel(dst, size, src);
}

#endif /* __TCPSTATE_SYSCALL_H */
