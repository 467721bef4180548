/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The one event record shared by tcpstate.bpf.c and the Rust loader, which
 * receives it through the skeleton's generated `types`. Fixed-width types
 * only, so the layout is the same on both sides. */
#ifndef __TCPSTATE_H
#define __TCPSTATE_H

#define TCPSTATE_COMM_LEN 16

struct tcpstate_event {
	__u64 skaddr;   /* socket address: the correlation key */
	__u64 ts_ns;    /* bpf_ktime_get_ns(), CLOCK_MONOTONIC */
	__u32 pid;      /* tgid of the current task; meaningful on entry to SYN_SENT only */
	__u32 sk_err;   /* sk->sk_err (positive errno) at this transition */
	__u16 family;   /* AF_INET or AF_INET6 */
	__u16 sport;    /* host order; 0 when the kernel has not bound one yet */
	__u16 dport;    /* host order */
	__u8 oldstate;  /* TCP_* state numbers as in include/net/tcp_states.h */
	__u8 newstate;
	__u8 saddr[16]; /* IPv4 in the first 4 bytes, or IPv6 */
	__u8 daddr[16];
	__u8 comm[TCPSTATE_COMM_LEN];
};

/* Key of the destination LPM trie. IPv4 prefixes are stored v4-mapped
 * (::ffff:a.b.c.d, prefixlen + 96), so one lookup covers AF_INET sockets
 * and v4-mapped AF_INET6 sockets alike. */
struct tcpstate_lpm_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/* Context of the synthetic-load program (bench/sustain): emit `pairs`
 * SYN_SENT/CLOSE event pairs for socket addresses base, base + 64, ... */
#define TCPSTATE_SYNTH_MAX_PAIRS 4096
struct tcpstate_synth {
	__u64 base;
	__u32 pairs;
	__u32 _pad;
};

/* Indexes of the per-CPU counter array. */
enum tcpstate_counter {
	TCPSTATE_CNT_RB_DROPS = 0,   /* bpf_ringbuf_reserve failed */
	TCPSTATE_CNT_MAX,
};

#endif /* __TCPSTATE_H */
