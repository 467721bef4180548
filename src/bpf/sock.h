/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Reading a socket: its family, ports and addresses, the LPM key of its
 * destination and whether that is watched, and the socket behind a file. */
#ifndef __TCPSTATE_SOCK_H
#define __TCPSTATE_SOCK_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "maps.h"

/* Macros, so vmlinux.h does not carry them. */
#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define S_IFMT 00170000
#define S_IFSOCK 0140000

/* The hot paths read the socket directly: tp_btf and iter programs
 * get BTF-typed pointers, which the verifier lets them dereference (5.5+,
 * "bpf: Introduce BPF_TRACE_RAW_TP" ... BTF-enabled raw tracepoints). The
 * loads carry the same CO-RE relocations as BPF_CORE_READ, through
 * vmlinux.h's preserve_access_index, but each is one load where
 * BPF_CORE_READ is a bpf_probe_read_kernel() call: measured here at about
 * 25 ns a field, which made up a fifth of the tracepoint's cost.
 * BPF_CORE_READ stays where a pointer is not BTF-typed. */

/* Is this destination watched? `addr` is the LPM key's form: IPv6, or
 * IPv4 v4-mapped. */
static __always_inline bool watched(struct tcpstate_lpm_key *key, __u16 dport)
{
	if (filter_ports && !bpf_map_lookup_elem(&ports, &dport))
		return false;
	key->prefixlen = 128;
	if (filter_addrs && !bpf_map_lookup_elem(&dests, key))
		return false;
	return true;
}

/* An IPv4 address into the LPM key, v4-mapped (::ffff:a.b.c.d): the form
 * the dests trie holds IPv4 prefixes in. The caller zeroed the rest. */
static __always_inline void key_v4(struct tcpstate_lpm_key *key, __be32 addr)
{
	key->addr[10] = 0xff;
	key->addr[11] = 0xff;
	__builtin_memcpy(&key->addr[12], &addr, 4);
}

/* An IPv6 address of a BTF-typed socket, as four loads of its u32 words. */
static __always_inline void load_in6(__u8 *dst, const struct in6_addr *a)
{
	__u32 *d = (__u32 *)dst;

	d[0] = a->in6_u.u6_addr32[0];
	d[1] = a->in6_u.u6_addr32[1];
	d[2] = a->in6_u.u6_addr32[2];
	d[3] = a->in6_u.u6_addr32[3];
}

/* The socket's destination as an LPM key; false for other families. */
static __always_inline bool sk_dest(const struct sock *sk, __u16 family,
				    struct tcpstate_lpm_key *key)
{
	if (family == AF_INET) {
		key_v4(key, sk->__sk_common.skc_daddr);
		return true;
	}
	if (family == AF_INET6) {
		load_in6(key->addr, &sk->__sk_common.skc_v6_daddr);
		return true;
	}
	return false;
}

/* Addresses and ports of the socket into the event. */
static __always_inline void sk_addrs(struct tcpstate_event *e, const struct sock *sk,
				     __u16 family, struct tcpstate_lpm_key *key)
{
	e->family = family;
	e->sport = sk->__sk_common.skc_num;
	if (family == AF_INET) {
		*(__be32 *)e->saddr = sk->__sk_common.skc_rcv_saddr;
		__builtin_memcpy(e->daddr, &key->addr[12], 4);
	} else {
		load_in6(e->saddr, &sk->__sk_common.skc_v6_rcv_saddr);
		__builtin_memcpy(e->daddr, key->addr, 16);
	}
}

/* The socket's source port, host order, from inet_sport: at the CLOSE
 * transition skc_num already reads 0 for a port the kernel chose
 * (inet_put_port() clears it first), while inet_sport keeps the port the
 * attempt used. It lies past struct sock, where a BTF-typed load of a
 * `struct sock *` may not reach: one probe read, taken only when skc_num
 * is 0. */
static __always_inline __u16 sk_sport(const struct sock *sk)
{
	return bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
}

static __always_inline bool is_tcp(const struct sock *sk)
{
	/* The tracepoints also fire for DCCP, SCTP and MPTCP. sk_protocol is a
	 * plain u16 since v5.6 (bf9765145b85 "sock: Make sk_protocol a 16-bit
	 * value"), older than the ring buffer (v5.8) this program needs. */
	return sk->sk_protocol == IPPROTO_TCP && sk->sk_type == SOCK_STREAM;
}

/* is_tcp() for a socket pointer that is not BTF-typed: probe reads. */
static __always_inline bool is_tcp_read(struct sock *sk)
{
	return BPF_CORE_READ(sk, sk_protocol) == IPPROTO_TCP &&
	       BPF_CORE_READ(sk, sk_type) == SOCK_STREAM;
}

/* The socket behind a file, or NULL when the file is not a socket (its
 * private_data is then something else). */
static __always_inline struct sock *sock_of_file(struct file *f)
{
	struct socket *sock;

	if ((BPF_CORE_READ(f, f_inode, i_mode) & S_IFMT) != S_IFSOCK)
		return NULL;
	sock = BPF_CORE_READ(f, private_data);
	return BPF_CORE_READ(sock, sk);
}

/* The socket behind a file descriptor of the current task, or NULL. */
static __always_inline struct sock *sock_of_fd(int fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct file **fds;
	struct file *f = NULL;
	unsigned int max;

	if (fd < 0)
		return NULL;
	fds = BPF_CORE_READ(task, files, fdt, fd);
	max = BPF_CORE_READ(task, files, fdt, max_fds);
	if ((unsigned int)fd >= max)
		return NULL;
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) || !f)
		return NULL;
	return sock_of_file(f);
}

#endif /* __TCPSTATE_SOCK_H */
