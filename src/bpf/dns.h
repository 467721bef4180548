/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* DNS answers that applications receive, and the queries they send, so a
 * failure can name what the application resolved: from fentry on
 * skb_consume_udp, udp_send_skb and udp_v6_send_skb (UDP; TCP streams to
 * port 53 from dns_tcp.h), else sys_exit (UDP, and TCP streams to port
 * 53). */
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
#include "dns_record.h"

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
 * failures (what it skips is counted).
 *
 * The queries (UDP to port 53) are sent too, with the socket, so user
 * space takes an answer only if its socket asked that question with that
 * id (issue 29): a server cannot answer a question it was not asked, and
 * an answer forged into a socket that sent no query is nothing. Where the
 * source port is checked: the skb's own header on the trampoline; at a
 * syscall's exit, the socket's peer when it is connected. An unconnected
 * socket's source address there is the application's buffer (the kernel
 * may have copied nothing into it), so it only pre-filters: such an
 * answer counts only by its socket's query to port 53. */

static __always_inline void dns_answer(const struct sock *sk, const struct sk_buff *skb,
				       bool is_udp)
{
	struct tcpstate_dns *r;
	unsigned char *head;
	__u16 proto, th, nh, sport = 0, ulen = 0;
	struct dns_peer peer = {};
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
	/* The server: the datagram's source address and port. */
	peer.port = sport;
	if (proto == bpf_htons(ETH_P_IP)) {
		peer.family = AF_INET;
		bpf_probe_read_kernel(peer.addr, 4, head + nh + 12);
	} else {
		peer.family = AF_INET6;
		bpf_probe_read_kernel(peer.addr, 16, head + nh + 8);
	}
	r = dns_reserve();
	if (!r)
		return;
	dns_send(r, head + th + 8, n, ulen - 8, false, sk, 0, &peer, 0);
}

SEC("fentry/skb_consume_udp")
int BPF_PROG(handle_dns_fentry, struct sock *sk, struct sk_buff *skb, int len)
{
	dns_answer(sk, skb, true);
	return 0;
}

/* A query leaving in a UDP skb for port `dport` (the flow's, network
 * order), in the sending task: its UDP header is not written yet, its
 * payload is in the linear part (a query is small). */
static __always_inline void dns_query_skb(const struct sk_buff *skb, __u16 dport,
					  const struct dns_peer *peer)
{
	struct tcpstate_dns *r;
	unsigned char *head;
	__u8 hdr[6];
	__u16 th;
	__u64 n, avail, off;

	if (dport != bpf_htons(DNS_PORT))
		return;
	th = skb->transport_header;
	if (th == (__u16)~0U)
		return;
	head = skb->head;
	/* QR clear, a standard query, one question. */
	if (bpf_probe_read_kernel(hdr, sizeof(hdr), head + th + 8) || (hdr[2] & 0xf8) != 0 ||
	    hdr[4] != 0 || hdr[5] != 1)
		return;
	avail = skb->tail - th - 8;
	off = th - (skb->data - head);
	n = skb->len - off - 8;
	if (n > avail)
		n = avail;
	r = dns_reserve();
	if (!r)
		return;
	dns_send(r, head + th + 8, n, n > 0xffff ? 0xffff : n, false, skb->sk, 1, peer, 0);
}

SEC("fentry/udp_send_skb")
int BPF_PROG(handle_dns_query4, struct sk_buff *skb, struct flowi4 *fl4, struct inet_cork *cork)
{
	struct dns_peer peer = { .family = AF_INET, .port = fl4->uli.ports.dport };

	__builtin_memcpy(peer.addr, &fl4->daddr, 4);
	dns_query_skb(skb, fl4->uli.ports.dport, &peer);
	return 0;
}

SEC("fentry/udp_v6_send_skb")
int BPF_PROG(handle_dns_query6, struct sk_buff *skb, struct flowi6 *fl6, struct inet_cork *cork)
{
	struct dns_peer peer = { .family = AF_INET6, .port = fl6->uli.ports.dport };

	load_in6(peer.addr, &fl6->daddr);
	dns_query_skb(skb, fl6->uli.ports.dport, &peer);
	return 0;
}

/* Whether 8 bytes look like the start of a DNS message: QR as expected,
 * a standard query's opcode, one question. */
static __always_inline bool dns_head(const __u8 *h, __u8 query)
{
	return (h[2] & 0xf8) == (query ? 0 : 0x80) && h[4] == 0 && h[5] == 1;
}

/* A buffer of a TCP stream to port 53 (user memory) that starts like a
 * message, or like one behind its length: sent as the call moved it, its
 * first TCPSTATE_DNS_MAX bytes, and framed in user space. Shared by the
 * syscall fallback and the trampolines of dns_tcp.h. */
static __always_inline void dns_tcp_send(const struct sock *sk, const void *buf, __u64 n,
					 __u8 query)
{
	struct tcpstate_dns *r;
	struct dns_peer peer = {};

	peer_of_sock(&peer, sk);
	r = dns_reserve();
	if (!r)
		return;
	dns_send(r, buf, n, n > 0xffff ? 0xffff : n, true, sk, query, &peer, 1);
}

/* A DNS message in a user buffer: on a UDP socket an answer (QR set)
 * from port 53, or a query (QR clear) to it. The port is the socket's
 * peer if it is connected, else the address the syscall names (`addr`, a
 * user sockaddr): for a query, where the kernel sent it; for an answer
 * only a hint (see the top of this file).
 * On a TCP socket connected to port 53 (DNS over TCP: a truncated UDP
 * answer retried, or `options use-vc`), the buffer as the syscall moved
 * it: a message (glibc writes each behind its length in its own iovec,
 * and reads the length, then the message), or messages each behind its
 * 2-byte length (c-ares, Go); user space frames them and counts what the
 * copy or the stream cut. A buffer that starts inside a message (the
 * rest of one the stream split) does not look like either: not sent. */
static __always_inline void dns_from_user(int fd, const void *buf, __u64 n, const void *addr,
					  __u8 query)
{
	struct tcpstate_dns *r;
	struct dns_peer peer = {};
	__u8 hdr[8];
	struct sock *sk;
	__u16 port = 0, proto;
	bool plain;

	if (n < 12 || !buf)
		return;
	/* A query is small: a large write (most of them) is not looked at;
	 * over TCP, two behind their lengths (A and AAAA) may be written at
	 * once. */
	if (query && n > 2 * TCPSTATE_DNS_MAX)
		return;
	if (bpf_probe_read_user(hdr, sizeof(hdr), buf))
		return;
	/* A message at the start, or (TCP only) one behind its length. */
	plain = dns_head(hdr, query);
	if (!plain && (n < 14 || !dns_head(hdr + 2, query)))
		return;
	sk = sock_of_fd(fd);
	if (!sk)
		return;
	proto = BPF_CORE_READ(sk, sk_protocol);
	if (proto == IPPROTO_TCP) {
		/* Only a stream this host opened to port 53. */
		if (BPF_CORE_READ(sk, __sk_common.skc_dport) == bpf_htons(DNS_PORT))
			dns_tcp_send(sk, buf, n, query);
		return;
	}
	if (proto != IPPROTO_UDP || !plain || (query && n > TCPSTATE_DNS_MAX))
		return;
	/* sin_port and sin6_port sit at the same offset. A query's named
	 * address is where it went, even on a connected socket; an answer's,
	 * on an unconnected one, is a hint. */
	if (query && addr) {
		if (bpf_probe_read_user(&port, sizeof(port), addr + 2))
			return;
	} else {
		port = BPF_CORE_READ(sk, __sk_common.skc_dport);
		if (port != bpf_htons(DNS_PORT) && !query && addr &&
		    bpf_probe_read_user(&port, sizeof(port), addr + 2))
			return;
	}
	if (port != bpf_htons(DNS_PORT))
		return;
	/* Where a query went: the address it named, else the socket's peer;
	 * an answer's: the peer, else (unconnected) the address as a hint. */
	if (query && addr) {
		peer_of_user(&peer, addr);
	} else {
		peer_of_sock(&peer, sk);
		if (!peer.port && addr)
			peer_of_user(&peer, addr);
	}
	r = dns_reserve();
	if (!r)
		return;
	dns_send(r, buf, n, n > 0xffff ? 0xffff : n, true, sk, query, &peer, 0);
}

/* writev(): glibc's TCP query, each message behind its length in an
 * iovec of its own ([2][A][2][AAAA]); else a first iovec that holds a
 * message, or messages behind their lengths. One read of the first four
 * iovecs: every writev on the host pays it, and a header read when an
 * iovec can hold a message. */
static __always_inline void dns_from_writev(int fd, const struct iovec *v, __u64 cnt)
{
	struct iovec iov[4] = {};

	if (!v || cnt < 1)
		return;
	if (cnt > 4)
		cnt = 4;
	barrier_var(cnt);
	if (bpf_probe_read_user(iov, cnt * sizeof(iov[0]), v))
		return;
	if (iov[0].iov_len != 2) {
		dns_from_user(fd, iov[0].iov_base, iov[0].iov_len, NULL, 1);
		return;
	}
	if (cnt > 1)
		dns_from_user(fd, iov[1].iov_base, iov[1].iov_len, NULL, 1);
	if (cnt > 3 && iov[2].iov_len == 2)
		dns_from_user(fd, iov[3].iov_base, iov[3].iov_len, NULL, 1);
}

/* The first iovec of a user msghdr, and its name (the address). */
static __always_inline void dns_from_msghdr(int fd, const struct user_msghdr *m, __u64 n,
					    __u8 query)
{
	struct user_msghdr msg;
	struct iovec iov;

	if (bpf_probe_read_user(&msg, sizeof(msg), m) || !msg.msg_iov || msg.msg_iovlen < 1 ||
	    bpf_probe_read_user(&iov, sizeof(iov), msg.msg_iov))
		return;
	if (n > iov.iov_len)
		n = iov.iov_len;
	dns_from_user(fd, iov.iov_base, n, msg.msg_namelen ? msg.msg_name : NULL, query);
}

/* Message i of a user mmsghdr vector, as the kernel left its length. */
static __always_inline void dns_from_mmsg(int fd, struct mmsghdr *v, int i, __u8 query)
{
	__u32 len = 0;

	if (!bpf_probe_read_user(&len, sizeof(len), &v[i].msg_len))
		dns_from_msghdr(fd, (const struct user_msghdr *)&v[i].msg_hdr, len, query);
}

SEC("tp_btf/sys_exit")
int BPF_PROG(handle_dns_sys_exit, struct pt_regs *regs, long ret)
{
	long nr = syscall_nr(regs);
	void *buf, *addr;
	__u8 query;
	int fd;

	if (ret <= 0)
		return 0;
	if (nr == NR_READ || nr == NR_RECVFROM || nr == NR_RECVMSG || nr == NR_RECVMMSG)
		query = 0;
	else if (nr == NR_WRITE || nr == NR_SENDTO || nr == NR_SENDMSG || nr == NR_SENDMMSG ||
		 nr == NR_WRITEV)
		query = 1;
	else
		return 0;
	fd = PT_REGS_PARM1_CORE_SYSCALL(regs);
	buf = (void *)PT_REGS_PARM2_CORE_SYSCALL(regs);
	if (nr == NR_READ || nr == NR_WRITE) {
		dns_from_user(fd, buf, ret, NULL, query);
	} else if (nr == NR_WRITEV) {
		dns_from_writev(fd, buf, PT_REGS_PARM3_CORE_SYSCALL(regs));
	} else if (nr == NR_RECVFROM || nr == NR_SENDTO) {
		addr = (void *)PT_REGS_PARM5_CORE_SYSCALL(regs);
		/* A send's address counts only with its length (sendto ignores
		 * a pointer whose length is 0). */
		if (query && !PT_REGS_PARM6_CORE_SYSCALL(regs))
			addr = NULL;
		dns_from_user(fd, buf, ret, addr, query);
	} else if (nr == NR_RECVMSG || nr == NR_SENDMSG) {
		dns_from_msghdr(fd, buf, ret, query);
	} else {
		/* recvmmsg: the first message; sendmmsg: the first two (glibc
		 * sends its A and AAAA queries in one call). */
		dns_from_mmsg(fd, buf, 0, query);
		if (query && ret > 1)
			dns_from_mmsg(fd, buf, 1, query);
	}
	return 0;
}

#endif /* __TCPSTATE_DNS_H */
