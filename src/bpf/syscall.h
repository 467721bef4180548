/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Which syscall a raw_syscalls sys_exit program sees, on each supported
 * architecture: the numbers the fallbacks look at, and where to read it. */
#ifndef __TCPSTATE_SYSCALL_H
#define __TCPSTATE_SYSCALL_H

#include "vmlinux.h"

#if defined(__TARGET_ARCH_x86)
#define NR_READ 0
#define NR_CONNECT 42
#define NR_RECVFROM 45
#define NR_RECVMSG 47
#define NR_GETSOCKOPT 55
#define NR_RECVMMSG 299
#elif defined(__TARGET_ARCH_arm64)
#define NR_READ 63
#define NR_CONNECT 203
#define NR_RECVFROM 207
#define NR_GETSOCKOPT 209
#define NR_RECVMSG 212
#define NR_RECVMMSG 243
#else
#error "unsupported architecture: add its syscall numbers"
#endif

/* The number of the syscall that is exiting, from the registers it saved
 * on entry (the kernel keeps it apart from the argument and return
 * registers, which the syscall may overwrite). */
static __always_inline long syscall_nr(const struct pt_regs *regs)
{
#if defined(__TARGET_ARCH_x86)
	return regs->orig_ax;
#else
	return regs->syscallno;
#endif
}

#endif /* __TCPSTATE_SYSCALL_H */
