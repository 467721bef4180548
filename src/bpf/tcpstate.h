/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The records shared by tcpstate.bpf.c and the Rust loader, which receives
 * them through the skeleton's generated `types`. Fixed-width types only,
 * laid out without holes, so the layout is the same on both sides. */
#ifndef __TCPSTATE_H
#define __TCPSTATE_H

#define TCPSTATE_COMM_LEN 16

/* What a record says (tcpstate_event.kind). */
enum tcpstate_kind {
	/* sock:inet_sock_set_state: into or out of SYN_SENT. */
	TCPSTATE_EV_STATE = 0,
	/* connect() returned an error and the state path did not report the
	 * attempt: no SYN left (no route, denied, no local port), or the
	 * socket entered SYN_SENT and closed again inside connect(). */
	TCPSTATE_EV_CONNECT_ERR = 1,
	/* An error reported on a socket still in SYN_SENT (sk_err, or the
	 * sk_err_soft that an application can read away with SO_ERROR). */
	TCPSTATE_EV_SK_ERROR = 2,
	/* This host's netfilter dropped a SYN of a socket in SYN_SENT. */
	TCPSTATE_EV_DROP = 3,
	/* A SYN was retransmitted. */
	TCPSTATE_EV_RETRANS = 4,
	/* An ICMP error reached a socket in SYN_SENT (ip_icmp_error,
	 * ipv6_icmp_error): `family` and `saddr` are the ICMP packet's (its
	 * sender, which may be a router, not the destination), icmp_type and
	 * icmp_code its type and code, sk_err the errno it makes. */
	TCPSTATE_EV_ICMP = 5,
	/* This host dropped a packet of a socket in SYN_SENT for another
	 * reason (skb:kfree_skb, 5.17+): `drop_reason`; `saddr` is the next
	 * hop the packet was for (the gateway, else the destination), `comm`
	 * the device's name. */
	TCPSTATE_EV_SKB_DROP = 6,
	/* A connection this host opened broke after it was established: from
	 * ESTABLISHED, FIN_WAIT1/2, CLOSE_WAIT, LAST_ACK or CLOSING into CLOSE
	 * with sk_err set (an RST, the kernel giving up on retransmissions,
	 * TCP_USER_TIMEOUT or keepalive). oldstate is the state it broke in.
	 * No caller: the current task is a softirq or a timer, and user space
	 * has the owner from the attempt. So `comm` carries tcp_sock's
	 * bytes_acked and bytes_received instead, two native-endian u64s: the
	 * record keeps its size for every other kind. */
	TCPSTATE_EV_BROKEN = 7,
};

struct tcpstate_event {
	__u64 skaddr;    /* socket address: the correlation key (0: unknown) */
	__u64 ts_ns;     /* bpf_ktime_get_ns(), CLOCK_MONOTONIC */
	__u64 cgroup_id; /* cgroup v2 id of the caller, at the attempt */
	__u32 pid;       /* tgid of the caller; meaningful at the attempt only */
	__u32 tid;
	__u32 uid;
	__u32 sk_err;    /* positive errno: sk_err, or connect()'s error */
	__u16 family;    /* AF_INET or AF_INET6 */
	__u16 sport;     /* host order; 0 when not bound yet (entering SYN_SENT) */
	__u16 dport;     /* host order */
	__u8 oldstate;   /* TCP_* state numbers as in include/net/tcp_states.h */
	__u8 newstate;
	__u8 kind;       /* enum tcpstate_kind */
	__u8 icmp_type;  /* TCPSTATE_EV_ICMP only */
	__u8 icmp_code;
	/* TCPSTATE_EV_STATE into CLOSE refused, TCPSTATE_EV_BROKEN reset: the
	 * IPv4 TTL or IPv6 hop limit the RST arrived with (fentry/tcp_reset);
	 * 0: not seen (no hook, or no RST made the errno). */
	__u8 rst_ttl;
	__u8 saddr[16];  /* IPv4 in the first 4 bytes, or IPv6 */
	__u8 daddr[16];
	__u8 comm[TCPSTATE_COMM_LEN];  /* the calling thread's name */
	__u8 pcomm[TCPSTATE_COMM_LEN]; /* its process's (thread-group leader's) */
	/* TCPSTATE_EV_DROP, TCPSTATE_EV_SKB_DROP: the kernel's enum
	 * skb_drop_reason value (user space names it from the kernel's BTF) */
	__u32 drop_reason;
};

/* The names of a cgroup and its ancestors, leaf first, sent the first
 * time its id is seen: a short-lived unit's cgroup may be gone before
 * user space can look its id up in the cgroup tree. A record of its own
 * size in the same ring buffer. */
#define TCPSTATE_CGROUP_DEPTH 8
#define TCPSTATE_CGROUP_NAME_LEN 96
struct tcpstate_cgroup_names {
	__u64 cgroup_id;
	__u32 depth;     /* names filled; the last may be the root's (empty) */
	__u32 truncated; /* the path is deeper than TCPSTATE_CGROUP_DEPTH */
	/* NUL-terminated names, as u64 words: the skeleton's Rust types derive
	 * Default, which byte arrays over 32 long do not have. */
	__u64 names[TCPSTATE_CGROUP_DEPTH][TCPSTATE_CGROUP_NAME_LEN / 8];
};

/* One socket already in SYN_SENT when tcpstate starts, and who holds it.
 * iter/task_file finds them in every task's files, so in every network
 * namespace, with the holder; iter/tcp, in tcpstate's own namespace, also
 * finds the sockets no file holds (the kernel's own clients), and those
 * have pid 0. */
struct tcpstate_seed {
	__u64 skaddr;
	__u64 cgroup_id; /* the holder's cgroup v2 id (0: no holder known) */
	__u32 pid;       /* the holder's tgid (0: no holder known) */
	__u32 uid;       /* the holder's uid, else the socket's */
	__u16 family;
	__u16 dport;     /* host order */
	__u16 sport;     /* host order */
	__u8 _pad[2];
	__u8 saddr[16];
	__u8 daddr[16];
	__u8 comm[TCPSTATE_COMM_LEN];  /* the holding task's name */
	__u8 pcomm[TCPSTATE_COMM_LEN]; /* its thread-group leader's */
};

/* A DNS answer an application received (UDP from port 53, or a TCP
 * stream's from it), as delivered to it, or a query it sent (to port 53): who, on which socket, and
 * the message's first TCPSTATE_DNS_MAX bytes, parsed in user space, where
 * an answer counts only if it answers a query its socket sent. A record
 * of its own size in the same ring buffer. */
#define TCPSTATE_DNS_MAX 512
struct tcpstate_dns {
	__u64 ts_ns;
	__u64 cgroup_id; /* the receiving (sending) task's cgroup v2 id */
	__u64 sk;        /* the socket's address: pairs answers with queries */
	__u32 pid;       /* its tgid */
	__u32 uid;
	__u32 netns;     /* inode number of its network namespace */
	__u16 len;       /* bytes of the message in data */
	__u16 wire_len;  /* the message's length (more than len when cut) */
	__u8 comm[TCPSTATE_COMM_LEN];
	__u8 query;      /* 1: a query sent; 0: an answer received */
	/* 1: from a TCP stream to port 53 (the retry of a truncated answer,
	 * or a resolver that asks over TCP): data is the buffer as the
	 * syscall moved it, one message or messages each behind its 2-byte
	 * length, framed in user space. 0: one UDP datagram. */
	__u8 tcp;
	/* The server: where a query went, or the socket's peer an answer came
	 * from (family 0: unknown), so a failure can say which server. */
	__u16 family;    /* AF_INET or AF_INET6 */
	__u16 port;      /* host order */
	__u8 _pad2[2];
	__u8 peer[16];   /* IPv4 in the first 4 bytes, or IPv6 */
	/* As u64 words: see tcpstate_cgroup_names. */
	__u64 data[TCPSTATE_DNS_MAX / 8];
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
	TCPSTATE_CNT_DNS_SKIPPED = 1, /* DNS answers not sent: the ring was half full */
	/* DNS over TCP the trampolines could not read: an iterator of no user
	 * memory, a receive not remembered (dns_tcp_recvs full), bytes in
	 * iovecs past those looked at, user memory that would not read. */
	TCPSTATE_CNT_DNS_TCP_UNREAD = 2,
	TCPSTATE_CNT_MAX,
};

#endif /* __TCPSTATE_H */
