/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* DNS answers that applications receive, so a failure can name what the
 * application resolved: from fentry/skb_consume_udp, else sys_exit. */
#ifndef __TCPSTATE_DNS_H
#define __TCPSTATE_DNS_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "maps.h"
#include "ring.h"
#include "sock.h"
#include "syscall.h"

/* DNS answers that applications receive (issue 22), so failures can name
 * the destination the application resolved. Where each answer is handed
 * to the application, so the receiving process and cgroup are its own:
 * this works inside containers' network namespaces, for stub resolvers on
 * loopback and across veths alike. Two hooks, the first the kernel has:
 * - fentry/skb_consume_udp (4.10+): udp_recvmsg() and udpv6_recvmsg()
 *   call it after copying a datagram out, so only UDP receives pay;
 * - tp_btf/sys_exit, where the kernel refuses trampolines: at the exit of
 *   read(), recvfrom(), recvmsg() and recvmmsg() (its first message),
 *   the answer as the application's buffer holds it, from a UDP socket
 *   whose peer is port 53. Every other syscall returns at the number
 *   comparison; a read of anything but a DNS response after four bytes
 *   of its buffer. Neither skb_copy_datagram_iovec (udp_recvmsg() copies
 *   a linear datagram with copy_linear_skb(), which does not fire it) nor
 *   consume_skb (6.18 frees UDP datagrams on the CPU that allocated them,
 *   in softirq, since "udp: use skb_attempt_defer_free()") runs in the
 *   receiving task.
 * Only UDP from source port 53 goes on; its first TCPSTATE_DNS_MAX
 * bytes are sent, and parsed in user space. A DNS record never takes the
 * ring past dns_ring_limit: a flood of answers must not crowd out the
 * failures (what it skips is counted). */

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define DNS_PORT 53

/* Room for a DNS record, unless the unread bytes are past the DNS share
 * (dns_ring_limit), so a flood of answers cannot crowd out the failures.
 * NULL otherwise; either miss is counted. */
static __always_inline struct tcpstate_dns *dns_reserve(void)
{
	if (!active())
		return NULL;
	if (dns_ring_limit && bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) > dns_ring_limit) {
		count(TCPSTATE_CNT_DNS_SKIPPED);
		return NULL;
	}
	return ring_reserve(sizeof(struct tcpstate_dns));
}

/* Sends the answer's first n bytes, at most TCPSTATE_DNS_MAX, from `src`
 * (user memory at a syscall's exit, else the kernel's) with who received
 * it: the current task. Discards the record if they cannot be read. */
static __always_inline void dns_send(struct tcpstate_dns *r, const void *src, __u64 n,
				     __u16 wire_len, bool user)
{
	struct task_struct *task;
	__u64 id;

	/* Clamped where it is used, in the register used: the compiler may
	 * otherwise pass an unclamped copy, which the verifier refuses. */
	barrier_var(n);
	if (n > TCPSTATE_DNS_MAX)
		n = TCPSTATE_DNS_MAX;
	barrier_var(n);
	if (read_mem(r->data, n, src, user)) {
		bpf_ringbuf_discard(r, BPF_RB_NO_WAKEUP);
		return;
	}
	r->len = n;
	r->wire_len = wire_len;
	r->ts_ns = bpf_ktime_get_ns();
	r->cgroup_id = bpf_get_current_cgroup_id();
	id = bpf_get_current_pid_tgid();
	r->pid = id >> 32;
	r->uid = (__u32)bpf_get_current_uid_gid();
	task = (struct task_struct *)bpf_get_current_task();
	r->netns = BPF_CORE_READ(task, nsproxy, net_ns, ns.inum);
	bpf_get_current_comm(r->comm, sizeof(r->comm));
	/* An application that resolved a name connects next: wake the
	 * consumer if it waits, so the name is known before the attempt. */
	bpf_ringbuf_submit(r, consumer_waiting ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
}

static __always_inline void dns_answer(const struct sk_buff *skb, bool is_udp)
{
	struct tcpstate_dns *r;
	unsigned char *head;
	__u16 proto, th, nh, sport = 0, ulen = 0;
	__u64 n, avail;

	proto = skb->protocol;
	if (proto != bpf_htons(ETH_P_IP) && proto != bpf_htons(ETH_P_IPV6))
		return;
	th = skb->transport_header;
	nh = skb->network_header;
	if (th == (__u16)~0U || nh == (__u16)~0U)
		return;
	head = skb->head;
	/* Received up to its transport layer: a socket's datagram. A
	 * transmitted skb freed at TX completion (in whatever task was
	 * interrupted) still points at its link-layer header. */
	if ((__u64)(skb->data - head) < th)
		return;
	/* The UDP header's source port, or a TCP header's: the same place. */
	if (bpf_probe_read_kernel(&sport, sizeof(sport), head + th) || sport != bpf_htons(DNS_PORT))
		return;
	if (!is_udp) {
		__u8 l4 = 0;
		/* IPv4's protocol, IPv6's next header (answers carry no extension
		 * headers in practice; one that does is not looked at). */
		__u16 off = proto == bpf_htons(ETH_P_IP) ? 9 : 6;

		if (bpf_probe_read_kernel(&l4, 1, head + nh + off) || l4 != IPPROTO_UDP)
			return;
	}
	if (bpf_probe_read_kernel(&ulen, sizeof(ulen), head + th + 4))
		return;
	ulen = bpf_ntohs(ulen);
	if (ulen <= 8 + 12) /* a UDP header and a DNS header at least */
		return;
	/* Only the linear part: an answer is small enough to be there. */
	avail = skb->tail - th - 8;
	n = ulen - 8;
	if (n > avail)
		n = avail;
	r = dns_reserve();
	if (!r)
		return;
	dns_send(r, head + th + 8, n, ulen - 8, false);
}

SEC("fentry/skb_consume_udp")
int BPF_PROG(handle_dns_fentry, struct sock *sk, struct sk_buff *skb, int len)
{
	dns_answer(skb, true);
	return 0;
}

/* The answer in a user buffer: from a UDP socket connected to port 53, or
 * one whose source address (`from`, a user sockaddr) has port 53. */
static __always_inline void dns_from_user(int fd, const void *buf, __u64 n, const void *from)
{
	struct tcpstate_dns *r;
	__u8 hdr[6];
	struct sock *sk;
	__u16 port = 0;

	if (n < 12 || !buf || bpf_probe_read_user(hdr, sizeof(hdr), buf))
		return;
	/* QR set, a standard query's opcode, one question. */
	if ((hdr[2] & 0xf8) != 0x80 || hdr[4] != 0 || hdr[5] != 1)
		return;
	sk = sock_of_fd(fd);
	if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_UDP)
		return;
	port = BPF_CORE_READ(sk, __sk_common.skc_dport);
	if (port != bpf_htons(DNS_PORT)) {
		/* sin_port and sin6_port sit at the same offset. */
		if (!from || bpf_probe_read_user(&port, sizeof(port), from + 2) ||
		    port != bpf_htons(DNS_PORT))
			return;
	}
	r = dns_reserve();
	if (!r)
		return;
	dns_send(r, buf, n, n > 0xffff ? 0xffff : n, true);
}

/* The first iovec of a user msghdr, and its name (the source address). */
static __always_inline void dns_from_msghdr(int fd, const struct user_msghdr *m, __u64 n)
{
	struct user_msghdr msg;
	struct iovec iov;

	if (bpf_probe_read_user(&msg, sizeof(msg), m) || !msg.msg_iov || msg.msg_iovlen < 1 ||
	    bpf_probe_read_user(&iov, sizeof(iov), msg.msg_iov))
		return;
	if (n > iov.iov_len)
		n = iov.iov_len;
	dns_from_user(fd, iov.iov_base, n, msg.msg_name);
}

SEC("tp_btf/sys_exit")
int BPF_PROG(handle_dns_sys_exit, struct pt_regs *regs, long ret)
{
	long nr = syscall_nr(regs);
	int fd;

	if (ret <= 0 || (nr != NR_READ && nr != NR_RECVFROM && nr != NR_RECVMSG && nr != NR_RECVMMSG))
		return 0;
	fd = PT_REGS_PARM1_CORE_SYSCALL(regs);
	if (nr == NR_READ) {
		dns_from_user(fd, (void *)PT_REGS_PARM2_CORE_SYSCALL(regs), ret, NULL);
	} else if (nr == NR_RECVFROM) {
		dns_from_user(fd, (void *)PT_REGS_PARM2_CORE_SYSCALL(regs), ret,
			      (void *)PT_REGS_PARM5_CORE_SYSCALL(regs));
	} else if (nr == NR_RECVMSG) {
		dns_from_msghdr(fd, (void *)PT_REGS_PARM2_CORE_SYSCALL(regs), ret);
	} else {
		struct mmsghdr *v = (void *)PT_REGS_PARM2_CORE_SYSCALL(regs);
		__u32 len = 0;

		if (!bpf_probe_read_user(&len, sizeof(len), &v->msg_len))
			dns_from_msghdr(fd, (const struct user_msghdr *)&v->msg_hdr, len);
	}
	return 0;
}

#endif /* __TCPSTATE_DNS_H */
