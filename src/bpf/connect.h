/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* connect()'s errors that come before any SYN leaves, and the error an
 * application reads away with getsockopt(SO_ERROR): from trampolines on the
 * kernel functions, else from raw_syscalls sys_exit. */
#ifndef __TCPSTATE_CONNECT_H
#define __TCPSTATE_CONNECT_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "maps.h"
#include "ring.h"
#include "sock.h"
#include "caller.h"
#include "syscall.h"

/* Macros, so vmlinux.h does not carry them. */
#define EINTR 4
#define EACCES 13
#define ENONET 64
#define EPROTO 71
#define ENOPROTOOPT 92
#define EOPNOTSUPP 95
#define ENOTSOCK 88
#define ENETUNREACH 101
#define ECONNRESET 104
#define EISCONN 106
#define ETIMEDOUT 110
#define ECONNREFUSED 111
#define EHOSTDOWN 112
#define EHOSTUNREACH 113
#define EALREADY 114
#define EINPROGRESS 115
/* The kernel-internal restart codes start at 512. */
#define ERESTART_MIN 512
#define SOL_SOCKET 1
#define SO_ERROR 4

/* Not failures: done, under way, or interrupted (the attempt goes on and
 * the state path sees how it ends); and the errnos only a handshake gives
 * (a RST, or SYNs unanswered), which the state path reports: a refused
 * storm costs no socket lookup. */
static __always_inline bool connect_failed(long ret)
{
	if (ret >= 0 || ret == -EINPROGRESS || ret == -EALREADY || ret == -EISCONN ||
	    ret == -EINTR || ret <= -ERESTART_MIN)
		return false;
	if (ret == -ECONNREFUSED || ret == -ETIMEDOUT || ret == -ECONNRESET)
		return false;
	return true;
}

/* The errnos an ICMP error ends a handshake with (icmp_err_convert in
 * net/ipv4/icmp.c, icmpv6_err_convert in net/ipv6/icmp.c; ECONNREFUSED is
 * left out above already). */
static __always_inline bool icmp_errno(long ret)
{
	return ret == -EHOSTUNREACH || ret == -ENETUNREACH || ret == -EACCES ||
	       ret == -EHOSTDOWN || ret == -ENONET || ret == -ENOPROTOOPT ||
	       ret == -EPROTO || ret == -EOPNOTSUPP;
}

/* connect() failed on a watched TCP socket and no SYN left: an error the
 * state path cannot see (no route, denied, no local port). `addr` is the
 * destination as the caller passed it: user memory at the syscall's exit,
 * the kernel's copy in a trampoline. `sk` is not BTF-typed (it came
 * through bpf_probe_read_kernel): BPF_CORE_READ throughout. */
static __always_inline void connect_error(struct sock *sk, const void *addr, int len,
					  long ret, bool user_addr)
{
	struct tcpstate_lpm_key key = {};
	struct tcpstate_event *e;
	__u16 family, dport;
	__u64 id, cgroup_id;

	id = bpf_get_current_pid_tgid();
	if (from_self(id))
		return;
	if (!sk || !is_tcp_read(sk))
		return;
	/* A SYN went out: the handshake failed, and the state path reports it.
	 * Here the socket is already disconnected (tcp_disconnect() zeroes
	 * segs_out), but write_seq stays: 0 until tcp_v4_connect() has a port
	 * and a route, then set. A connect() error on a socket that connected
	 * before is still reported, unless its errno is a handshake's (one an
	 * ICMP error makes: ICMPv6 admin-prohibited is EACCES). */
	if (BPF_CORE_READ((struct tcp_sock *)sk, write_seq) && icmp_errno(ret))
		return;
	if (!addr || len < (int)sizeof(struct sockaddr_in))
		return;
	if (read_mem(&family, sizeof(family), addr, user_addr))
		return;
	cgroup_id = bpf_get_current_cgroup_id();
	name_cgroup(cgroup_id);
	e = reserve();
	if (!e)
		return;
	if (family == AF_INET) {
		struct sockaddr_in sin;

		if (read_mem(&sin, sizeof(sin), addr, user_addr))
			goto discard;
		dport = bpf_ntohs(sin.sin_port);
		__builtin_memcpy(e->daddr, &sin.sin_addr.s_addr, 4);
		key_v4(&key, sin.sin_addr.s_addr);
		BPF_CORE_READ_INTO((__be32 *)e->saddr, sk, __sk_common.skc_rcv_saddr);
	} else if (family == AF_INET6 && len >= (int)sizeof(struct sockaddr_in6)) {
		struct sockaddr_in6 sin6;

		if (read_mem(&sin6, sizeof(sin6), addr, user_addr))
			goto discard;
		dport = bpf_ntohs(sin6.sin6_port);
		__builtin_memcpy(e->daddr, sin6.sin6_addr.in6_u.u6_addr8, 16);
		__builtin_memcpy(key.addr, sin6.sin6_addr.in6_u.u6_addr8, 16);
		BPF_CORE_READ_INTO(&e->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
	} else {
		goto discard;
	}
	if (!watched(&key, dport))
		goto discard;
	e->kind = TCPSTATE_EV_CONNECT_ERR;
	e->skaddr = (__u64)sk;
	e->sk_err = -ret;
	e->family = family;
	e->dport = dport;
	e->sport = sk_sport(sk);
	caller(e, cgroup_id);
	submit(e);
	return;
discard:
	bpf_ringbuf_discard(e, BPF_RB_NO_WAKEUP);
}

/* getsockopt(SO_ERROR) on a watched TCP socket still in SYN_SENT: an ICMP
 * error that arrived while connect() held the socket lock sits in
 * sk_err_soft, and this read takes it away; a client polling a
 * non-blocking connect (curl, Go, Node.js, Java NIO, nginx) then closes
 * the socket with no error left on it. The error is kept for the attempt.
 * (sock:inet_sk_error_report fires too early for this: on 6.18 it runs
 * before sk_err_soft is written, so tcpstate does not use it.) The
 * correlation needs only the socket's address: it keeps the error for an
 * attempt it has pending, which is a watched one, and drops it otherwise. */
static __always_inline void so_error_read(struct sock *sk, int err)
{
	struct tcpstate_event *e;

	if (err <= 0 || !sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP ||
	    BPF_CORE_READ(sk, __sk_common.skc_state) != TCP_SYN_SENT)
		return;
	e = reserve();
	if (!e)
		return;
	e->kind = TCPSTATE_EV_SK_ERROR;
	e->skaddr = (__u64)sk;
	e->sk_err = err;
	e->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	submit(e);
}

/* What SO_ERROR is about to return and clear (sock_error(), then
 * sk_err_soft: net/core/sock.c), read on the way in. */
static __always_inline void so_error_entry(struct sock *sk, int level, int optname)
{
	int err;

	if (level != SOL_SOCKET || optname != SO_ERROR || !sk)
		return;
	err = BPF_CORE_READ(sk, sk_err);
	if (!err)
		err = BPF_CORE_READ(sk, sk_err_soft);
	so_error_read(sk, err);
}

/* --- Trampolines: only connect() and getsockopt() calls pay. --------- */

/* connect(2), socketcall(2) and io_uring's IORING_OP_CONNECT all end in
 * __sys_connect_file (5.5+, bd3ded3146da "net: add __sys_connect_file()
 * helper"), which is handed the kernel's copy of the address. */
SEC("fexit/__sys_connect_file")
int BPF_PROG(exit_connect_file, struct file *file, void *address,
	     int addrlen, int file_flags, int ret)
{
	struct socket *sock;

	/* -ENOTSOCK: not a socket, and file->private_data is something else. */
	if (!connect_failed(ret) || ret == -ENOTSOCK)
		return 0;
	sock = BPF_CORE_READ(file, private_data);
	connect_error(BPF_CORE_READ(sock, sk), address, addrlen, ret, false);
	return 0;
}

/* getsockopt(SOL_SOCKET): sock_getsockopt() up to 6.7; 6.8 calls
 * sk_getsockopt() from do_sock_getsockopt() (0b05b0c19ab6 "net/socket:
 * Break down __sys_getsockopt"), and sock_getsockopt() is gone. The
 * loader picks the one the kernel's BTF has. Both are read on entry,
 * before the read clears the error. */
SEC("fentry/sock_getsockopt")
int BPF_PROG(enter_sock_getsockopt, struct socket *sock, int level, int optname)
{
	if (level == SOL_SOCKET && optname == SO_ERROR)
		so_error_entry(sock->sk, level, optname);
	return 0;
}

SEC("fentry/sk_getsockopt")
int BPF_PROG(enter_sk_getsockopt, struct sock *sk, int level, int optname)
{
	so_error_entry(sk, level, optname);
	return 0;
}

/* --- The fallback: raw_syscalls sys_exit. --------------------------- */

/* The generic raw_syscalls tracepoint, not syscalls:sys_exit_connect: it
 * attaches through BTF, without tracefs, which a hardened service cannot
 * read. Used only where the trampolines above cannot attach: every
 * syscall of every process on the host then takes the kernel's
 * syscall-tracing exit path and runs this, so the start line says so.
 * Every other syscall returns at the first comparisons; the arguments are
 * still in the saved user registers. */
SEC("tp_btf/sys_exit")
int BPF_PROG(handle_sys_exit, struct pt_regs *regs, long ret)
{
	long nr = syscall_nr(regs);

	if (nr == NR_CONNECT) {
		if (connect_failed(ret))
			connect_error(sock_of_fd(PT_REGS_PARM1_CORE_SYSCALL(regs)),
				      (void *)PT_REGS_PARM2_CORE_SYSCALL(regs),
				      PT_REGS_PARM3_CORE_SYSCALL(regs), ret, true);
	} else if (nr == NR_GETSOCKOPT) {
		void *optval = (void *)PT_REGS_PARM4_CORE_SYSCALL(regs);
		int err = 0;

		/* At the exit the error is gone from the socket: what the read
		 * returned is in the caller's buffer. */
		if (ret != 0 || PT_REGS_PARM2_CORE_SYSCALL(regs) != SOL_SOCKET ||
		    PT_REGS_PARM3_CORE_SYSCALL(regs) != SO_ERROR || !optval ||
		    bpf_probe_read_user(&err, sizeof(err), optval) || err <= 0)
			return 0;
		so_error_read(sock_of_fd(PT_REGS_PARM1_CORE_SYSCALL(regs)), err);
	}
	return 0;
}

#endif /* __TCPSTATE_CONNECT_H */
