/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* DNS over TCP where trampolines attach (issue 32): the queries an
 * application writes to a TCP socket connected to port 53, and the
 * answers it reads from one, from the TCP send and receive calls
 * themselves. Every TCP send and receive on the host pays the trampoline
 * and one load (the socket's peer port); only a socket connected to port
 * 53 goes on. The bytes are the user buffers the call moves, read as the
 * syscall fallback reads them (dns.h: dns_tcp_send), so user space frames
 * both alike (src/dns/tcp.rs):
 * - fentry/tcp_sendmsg: the iterator's first four segments (glibc writes
 *   [length][A][length][AAAA] with writev()), else its one buffer;
 * - fentry/tcp_recvmsg remembers the iterator's first segment per task,
 *   fexit/tcp_recvmsg reads as many bytes as it returned (glibc reads an
 *   answer's length, then the answer). In fexit the return value follows
 *   every argument, and tcp_recvmsg lost its `nonblock` in 5.19
 *   (ec095263a965 "net: remove noblock parameter from recvmsg()
 *   entities"): two variants, the loader takes the one the kernel's BTF
 *   fits.
 * What cannot be read is counted (TCPSTATE_CNT_DNS_TCP_UNREAD). */
#ifndef __TCPSTATE_DNS_TCP_H
#define __TCPSTATE_DNS_TCP_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "maps.h"
#include "ring.h"
#include "dns.h"

#define MSG_PEEK 2

/* struct iov_iter as the committed vmlinux.h does not have it. Up to
 * 5.13, `type` holds the flavour with the direction in bit 0 (and bvec's
 * no-ref flag in bit 1): 5.14 split it into iter_type and data_source
 * (8cd54c1c8480 "iov_iter: separate direction from flavour"). */
struct iov_iter___v510 {
	unsigned int type;
	size_t iov_offset;
	const struct iovec *iov;
	unsigned long nr_segs;
} __attribute__((preserve_access_index));

/* 5.14 to 6.3: the iovecs in `iov`, which 6.4 renamed `__iov`
 * (de4f5fed3f23 "iov_iter: add iter_iovec() helper"). ITER_UBUF and
 * `ubuf`, one user buffer without an iovec, came in 6.0 (fcb14cb1bdac
 * "new iov_iter flavour - ITER_UBUF"); vmlinux.h has them. */
struct iov_iter___v514 {
	const struct iovec *iov;
} __attribute__((preserve_access_index));

/* The user memory a call's iterator walks: its first segments. */
struct dns_segs {
	struct iovec v[4];
	__u32 n;    /* segments read into v */
	__u32 more; /* the iterator has segments past them */
};

/* The first (up to four) segments of `it`, if it walks user memory (an
 * iovec array, which the kernel has copied in, or one user buffer). */
static __always_inline bool dns_segs_of(struct iov_iter *it, struct dns_segs *s)
{
	const struct iovec *iov;
	__u64 nr, off;
	__u32 i;

	if (bpf_core_field_exists(struct iov_iter___v510, type)) {
		struct iov_iter___v510 *o = (void *)it;

		if ((BPF_CORE_READ(o, type) & ~3U) != bpf_core_enum_value(enum iter_type, ITER_IOVEC))
			return false;
		iov = BPF_CORE_READ(o, iov);
		nr = BPF_CORE_READ(o, nr_segs);
		off = BPF_CORE_READ(o, iov_offset);
	} else {
		__u8 type = BPF_CORE_READ(it, iter_type);

		off = BPF_CORE_READ(it, iov_offset);
		if (bpf_core_enum_value_exists(enum iter_type, ITER_UBUF) &&
		    type == bpf_core_enum_value(enum iter_type, ITER_UBUF)) {
			s->v[0].iov_base = BPF_CORE_READ(it, ubuf) + off;
			s->v[0].iov_len = BPF_CORE_READ(it, count);
			s->n = 1;
			return true;
		}
		if (type != bpf_core_enum_value(enum iter_type, ITER_IOVEC))
			return false;
		if (bpf_core_field_exists(struct iov_iter, __iov))
			iov = BPF_CORE_READ(it, __iov);
		else
			iov = BPF_CORE_READ((struct iov_iter___v514 *)it, iov);
		nr = BPF_CORE_READ(it, nr_segs);
	}
	if (!iov || !nr || bpf_probe_read_kernel(&s->v[0], sizeof(s->v[0]), iov))
		return false;
	/* Where the call starts: at its entry, the first byte. */
	if (off < s->v[0].iov_len) {
		s->v[0].iov_base += off;
		s->v[0].iov_len -= off;
	}
	s->n = 1;
	for (i = 1; i < 4; i++) {
		if (i >= nr || bpf_probe_read_kernel(&s->v[i], sizeof(s->v[i]), &iov[i]))
			break;
		s->n = i + 1;
	}
	s->more = nr > s->n;
	return true;
}

/* A user buffer of a stream to port 53: sent if it starts like a
 * message, or like one behind its length (dns_from_user's test). */
static __always_inline void dns_tcp_user(const struct sock *sk, const void *buf, __u64 n,
					 __u8 query)
{
	__u8 hdr[8];

	if (n < 12 || !buf)
		return;
	if (bpf_probe_read_user(hdr, sizeof(hdr), buf)) {
		count(TCPSTATE_CNT_DNS_TCP_UNREAD);
		return;
	}
	if (!dns_head(hdr, query) && (n < 14 || !dns_head(hdr + 2, query)))
		return;
	dns_tcp_send(sk, buf, n, query);
}

static __always_inline bool to_dns_port(const struct sock *sk)
{
	return sk->__sk_common.skc_dport == bpf_htons(DNS_PORT);
}

SEC("fentry/tcp_sendmsg")
int BPF_PROG(handle_dns_tcp_send, struct sock *sk, struct msghdr *msg, size_t size)
{
	struct dns_segs s = {};

	if (!to_dns_port(sk))
		return 0;
	if (!dns_segs_of(&msg->msg_iter, &s)) {
		count(TCPSTATE_CNT_DNS_TCP_UNREAD);
		return 0;
	}
	/* glibc: each query behind its length, in iovecs of their own. */
	if (s.v[0].iov_len == 2 && s.n > 1) {
		dns_tcp_user(sk, s.v[1].iov_base, s.v[1].iov_len, 1);
		if (s.n > 3 && s.v[2].iov_len == 2)
			dns_tcp_user(sk, s.v[3].iov_base, s.v[3].iov_len, 1);
	} else {
		/* One buffer: a message, or messages behind their lengths. */
		dns_tcp_user(sk, s.v[0].iov_base, s.v[0].iov_len, 1);
	}
	if (s.more)
		count(TCPSTATE_CNT_DNS_TCP_UNREAD);
	return 0;
}

SEC("fentry/tcp_recvmsg")
int BPF_PROG(enter_dns_tcp_recv, struct sock *sk, struct msghdr *msg, size_t len)
{
	struct tcpstate_dns_recv r = {};
	struct dns_segs s = {};
	__u64 id;

	if (!to_dns_port(sk))
		return 0;
	if (!dns_segs_of(&msg->msg_iter, &s)) {
		count(TCPSTATE_CNT_DNS_TCP_UNREAD);
		return 0;
	}
	r.buf = (__u64)s.v[0].iov_base;
	r.len = s.v[0].iov_len;
	r.more = s.n > 1;
	id = bpf_get_current_pid_tgid();
	if (bpf_map_update_elem(&dns_tcp_recvs, &id, &r, BPF_ANY))
		count(TCPSTATE_CNT_DNS_TCP_UNREAD);
	return 0;
}

/* The bytes the receive returned, from the buffer its entry remembered. */
static __always_inline void dns_tcp_received(const struct sock *sk, int flags, int ret)
{
	struct tcpstate_dns_recv *e, r;
	__u64 id, n;

	if (!to_dns_port(sk))
		return;
	id = bpf_get_current_pid_tgid();
	e = bpf_map_lookup_elem(&dns_tcp_recvs, &id);
	if (!e)
		return;
	r = *e;
	bpf_map_delete_elem(&dns_tcp_recvs, &id);
	/* A peek is read again by the receive that takes it. */
	if (ret <= 0 || (flags & MSG_PEEK))
		return;
	n = ret;
	if (n > r.len) {
		/* The rest went to segments not looked at. */
		n = r.len;
		count(TCPSTATE_CNT_DNS_TCP_UNREAD);
	}
	dns_tcp_user(sk, (const void *)r.buf, n, 0);
}

/* tcp_recvmsg(sk, msg, len, flags, addr_len): 5.19 and later. */
SEC("fexit/tcp_recvmsg")
int BPF_PROG(exit_dns_tcp_recv, struct sock *sk, struct msghdr *msg, size_t len, int flags,
	     int *addr_len, int ret)
{
	dns_tcp_received(sk, flags, ret);
	return 0;
}

/* tcp_recvmsg(sk, msg, len, nonblock, flags, addr_len): before 5.19. */
SEC("fexit/tcp_recvmsg")
int BPF_PROG(exit_dns_tcp_recv_nonblock, struct sock *sk, struct msghdr *msg, size_t len,
	     int nonblock, int flags, int *addr_len, int ret)
{
	dns_tcp_received(sk, flags, ret);
	return 0;
}

#endif /* __TCPSTATE_DNS_TCP_H */
