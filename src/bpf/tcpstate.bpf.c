// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcpstate: report TCP connection attempts and how they end.
 *
 * The core is sock:inet_sock_set_state (tp_btf): attempts entering and
 * leaving SYN_SENT. Around it, each where a failure cannot be seen there:
 * - connect()'s errors that come before any SYN leaves (no route, denied,
 *   no local port), and the error an application reads away with
 *   getsockopt(SO_ERROR) before it closes the socket. From BPF trampolines
 *   on the kernel functions that produce them (fexit/__sys_connect_file,
 *   fentry on the SOL_SOCKET getsockopt), so no other syscall pays; where
 *   the kernel attaches no trampoline, from raw_syscalls sys_exit
 *   (tp_btf), which every syscall on the host then passes through;
 * - skb:kfree_skb with its drop reason (5.17+): this host's netfilter
 *   dropping a SYN;
 * - tcp:tcp_retransmit_skb: SYN retransmits, for the early warning;
 * - iter/task_file and iter/tcp: the attempts already in SYN_SENT when
 *   tcpstate starts, in every network namespace, with who holds them.
 * Everything the user-space correlation does not need returns early: the
 * kernel never copies an event for established traffic, inbound
 * connections, successful connect() calls or unwatched destinations. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "tcpstate.h"

/* Macros, so vmlinux.h does not carry them. */
#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define EINTR 4
#define ENOTSOCK 88
#define ENETUNREACH 101
#define ECONNRESET 104
#define ETIMEDOUT 110
#define ECONNREFUSED 111
#define EHOSTUNREACH 113
#define EISCONN 106
#define EALREADY 114
#define EINPROGRESS 115
/* connect(2)'s number; the kernel-internal restart codes start at 512. */
#if defined(__TARGET_ARCH_x86)
#define NR_CONNECT 42
#define NR_GETSOCKOPT 55
#elif defined(__TARGET_ARCH_arm64)
#define NR_CONNECT 203
#define NR_GETSOCKOPT 209
#else
#error "unsupported architecture: add its connect(2) number"
#endif
#define ERESTART_MIN 512
#define SOL_SOCKET 1
#define SO_ERROR 4

/* Set by the loader before load (rodata), so the verifier prunes what is off. */
const volatile bool filter_addrs = false; /* the dests trie has entries */
const volatile bool filter_ports = false; /* the ports map has entries */
const volatile bool trace_all = false;    /* --verbose: every state change */
/* A connect()/getsockopt() hook is attached (trampolines or sys_exit): a
 * SYN_SENT -> CLOSE inside connect() is left to it (see handle_set_state). */
const volatile bool connect_errors = false;
/* tcpstate's own tgid: its connections (Slack, Alertmanager) are never
 * reported, or a failing webhook would alert about itself. */
const volatile __u32 self_tgid = 0;
/* A busy consumer is woken as the unread bytes cross each multiple of
 * this (0: never; it drains on its own short timer anyway). See submit. */
const volatile __u64 wakeup_bytes = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20); /* resized by the loader (--ring-buffer-size) */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* required for LPM tries */
	__uint(max_entries, 1024);
	__type(key, struct tcpstate_lpm_key);
	__type(value, __u8);
} dests SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u16); /* host order */
	__type(value, __u8);
} ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TCPSTATE_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* tcpstate's own sockets in SYN_SENT, so their end is not reported. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u8);
} own_socks SEC(".maps");
/* Entries in own_socks: almost always 0, and then every other socket's
 * end skips the hash lookup. */
__u32 own_socks_count = 0;

/* Set by user space (through the mmapped .bss) when its loop has found the
 * ring empty and waits without its drain timer: the next record wakes it,
 * and clears this. */
__u32 consumer_waiting = 0;

/* The cgroup id each CPU named or found in named_cgroups last: a storm
 * from one service then skips the LRU lookup. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} last_cgroup SEC(".maps");

/* cgroup ids whose names were sent (see struct tcpstate_cgroup_names). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u8);
} named_cgroups SEC(".maps");

/* Never written: they only put the records into the object's BTF, so the
 * skeleton's generated `types` carries them to Rust. */
struct tcpstate_event _event = {};
struct tcpstate_seed _seed = {};
struct tcpstate_cgroup_names _cgroup_names = {};

/* kernfs_node's parent pointer was renamed __parent in 6.15 (633488947ef6
 * "kernfs: Use RCU to access kernfs_node::parent"): both flavours. */
struct kernfs_node___new {
	struct kernfs_node *__parent;
} __attribute__((preserve_access_index));
struct kernfs_node___old {
	struct kernfs_node *parent;
} __attribute__((preserve_access_index));

static __always_inline struct kernfs_node *kn_parent(struct kernfs_node *kn)
{
	if (bpf_core_field_exists(((struct kernfs_node___new *)0)->__parent))
		return BPF_CORE_READ((struct kernfs_node___new *)kn, __parent);
	return BPF_CORE_READ((struct kernfs_node___old *)kn, parent);
}

static __always_inline void count(__u32 idx);

/* Sends the names of the caller's cgroup, the first time its id is seen
 * (per LRU lifetime); a lookup otherwise. */
static __always_inline void name_cgroup(__u64 id)
{
	struct tcpstate_cgroup_names *r;
	struct task_struct *task;
	struct kernfs_node *kn;
	__u32 zero = 0;
	__u64 *last;
	__u8 one = 1;

	last = bpf_map_lookup_elem(&last_cgroup, &zero);
	if (last && *last == id)
		return;
	if (last)
		*last = id;
	if (bpf_map_lookup_elem(&named_cgroups, &id))
		return;
	bpf_map_update_elem(&named_cgroups, &id, &one, BPF_ANY);
	task = (struct task_struct *)bpf_get_current_task();
	r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		count(TCPSTATE_CNT_RB_DROPS);
		return;
	}
	__builtin_memset(r, 0, sizeof(*r));
	r->cgroup_id = id;
	kn = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn);
	for (int i = 0; i < TCPSTATE_CGROUP_DEPTH; i++) {
		if (!kn)
			break;
		if (bpf_probe_read_kernel_str((char *)r->names[i], TCPSTATE_CGROUP_NAME_LEN,
					      BPF_CORE_READ(kn, name)) < 0)
			r->names[i][0] = 0;
		r->depth = i + 1;
		kn = kn_parent(kn);
	}
	if (kn)
		r->truncated = 1;
	/* The attempt's own record follows at once and wakes the consumer if
	 * need be. */
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
}

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);

	if (v)
		*v += 1; /* per-CPU slot: no other writer, no atomic needed */
}

/* Submits without waking the consumer while it drains on its own short
 * timer: a wake-up per event is what makes per-event tracers expensive for
 * the connecting process. An idle consumer (no timer) is woken by the
 * first record. A busy one is woken only by a record that takes the
 * unread bytes across a multiple of wakeup_bytes, so a burst is drained
 * before the ring fills. Waking it for every record past the mark, as
 * this did first, raised an interrupt per record until the consumer ran:
 * the irq_work behind a wake-up is pending only until it runs. */
static __always_inline void submit(struct tcpstate_event *e)
{
	__u64 flags = BPF_RB_NO_WAKEUP;

	if (consumer_waiting) {
		/* Racy between CPUs: at worst two wake-ups. */
		consumer_waiting = 0;
		flags = BPF_RB_FORCE_WAKEUP;
	} else if (wakeup_bytes) {
		__u64 unread = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);

		/* Another CPU may have reserved after this record: a band of
		 * two records, so a crossing is rarely missed (the timer covers
		 * one that is). */
		if (unread >= wakeup_bytes && unread % wakeup_bytes < 2 * (sizeof(*e) + 8))
			flags = BPF_RB_FORCE_WAKEUP;
	}
	bpf_ringbuf_submit(e, flags);
}

static __always_inline struct tcpstate_event *reserve(void)
{
	struct tcpstate_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		count(TCPSTATE_CNT_RB_DROPS);
		return NULL;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = bpf_ktime_get_ns();
	return e;
}

/* The hot paths below read the socket directly: tp_btf and iter programs
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
		__be32 daddr = sk->__sk_common.skc_daddr;

		key->addr[10] = 0xff;
		key->addr[11] = 0xff;
		__builtin_memcpy(&key->addr[12], &daddr, 4);
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

/* Who is connecting: recorded at the attempt, in the caller's context.
 * At the failure the current task is usually a softirq or a timer.
 * `cgroup_id` is the caller's, named (name_cgroup) before `e` was
 * reserved, so user space reads the names first. */
static __always_inline void caller(struct tcpstate_event *e, __u64 cgroup_id)
{
	__u64 id = bpf_get_current_pid_tgid();

	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->uid = (__u32)bpf_get_current_uid_gid();
	e->cgroup_id = cgroup_id;
	/* bpf_get_current_task_btf() (5.11, 3ca1032ab7ab "bpf: Add
	 * bpf_get_current_task_btf helper") lets both names be plain loads;
	 * 5.10 takes the helper calls. The verifier drops the branch the
	 * kernel's enum bpf_func_id rules out. */
	if (bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_get_current_task_btf)) {
		struct task_struct *task = bpf_get_current_task_btf();

		__builtin_memcpy(e->comm, task->comm, sizeof(e->comm));
		__builtin_memcpy(e->pcomm, task->group_leader->comm, sizeof(e->pcomm));
	} else {
		struct task_struct *task = (struct task_struct *)bpf_get_current_task();

		bpf_get_current_comm(e->comm, sizeof(e->comm));
		BPF_CORE_READ_STR_INTO(&e->pcomm, task, group_leader, comm);
	}
}

static __always_inline bool is_tcp(const struct sock *sk)
{
	/* The tracepoints also fire for DCCP, SCTP and MPTCP. sk_protocol is a
	 * plain u16 since v5.6 (bf9765145b85 "sock: Make sk_protocol a 16-bit
	 * value"), older than the ring buffer (v5.8) this program needs. */
	return sk->sk_protocol == IPPROTO_TCP && sk->sk_type == SOCK_STREAM;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(handle_set_state, const struct sock *sk, int oldstate, int newstate)
{
	struct tcpstate_lpm_key key = {};
	struct tcpstate_event *e;
	__u64 id, cgroup_id = 0, skaddr = (__u64)sk;
	__u16 family, dport;
	__u32 err;

	if (!trace_all && oldstate != TCP_SYN_SENT && newstate != TCP_SYN_SENT)
		return 0;
	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	id = bpf_get_current_pid_tgid();
	if (newstate == TCP_SYN_SENT && self_tgid && (id >> 32) == self_tgid) {
		__u8 one = 1;

		if (!bpf_map_update_elem(&own_socks, &skaddr, &one, BPF_NOEXIST))
			__sync_fetch_and_add(&own_socks_count, 1);
		return 0;
	}
	if (oldstate == TCP_SYN_SENT && own_socks_count &&
	    !bpf_map_delete_elem(&own_socks, &skaddr)) {
		__sync_fetch_and_add(&own_socks_count, -1); /* no fetch: BPF ISA v1 */
		return 0;
	}

	family = sk->__sk_common.skc_family;
	dport = bpf_ntohs(sk->__sk_common.skc_dport);
	if (!sk_dest(sk, family, &key) || !watched(&key, dport))
		return 0;

	err = sk->sk_err;
	/* No SYN ever left: tcp_v4_connect() enters SYN_SENT before it picks a
	 * local port and sends the SYN, and closes again with sk_err 0 when that
	 * fails (EADDRNOTAVAIL): that is a connect() error, not an application
	 * giving up (an application can only close after connect() returned,
	 * when the SYN is out). It is left to the connect() hook, which has the
	 * errno. segs_out counts segments handed to IP, dropped there or not. */
	if (connect_errors && oldstate == TCP_SYN_SENT && newstate == TCP_CLOSE && !err &&
	    !BPF_CORE_READ((struct tcp_sock *)sk, segs_out))
		return 0;

	if (newstate == TCP_SYN_SENT) {
		cgroup_id = bpf_get_current_cgroup_id();
		name_cgroup(cgroup_id);
	}
	e = reserve();
	if (!e)
		return 0;
	e->kind = TCPSTATE_EV_STATE;
	e->skaddr = skaddr;
	/* An ICMP error that arrives while the connecting task holds the socket
	 * lock (common on fast local paths) is kept only in sk_err_soft by
	 * tcp_v4_err/tcp_v6_err; see also so_error_read. */
	if (!err && oldstate == TCP_SYN_SENT)
		err = sk->sk_err_soft;
	e->sk_err = err;
	e->dport = dport;
	e->oldstate = oldstate;
	e->newstate = newstate;
	sk_addrs(e, sk, family, &key);
	if (!e->sport && oldstate == TCP_SYN_SENT)
		e->sport = sk_sport(sk);
	if (newstate == TCP_SYN_SENT)
		caller(e, cgroup_id);
	else
		e->pid = id >> 32;
	submit(e);
	return 0;
}

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
	long rd;

	id = bpf_get_current_pid_tgid();
	if (self_tgid && (id >> 32) == self_tgid)
		return;
	if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP ||
	    BPF_CORE_READ(sk, sk_type) != SOCK_STREAM)
		return;
	/* A SYN went out: the handshake failed, and the state path reports it.
	 * Here the socket is already disconnected (tcp_disconnect() zeroes
	 * segs_out), but write_seq stays: 0 until tcp_v4_connect() has a port
	 * and a route, then set. A connect() error on a socket that connected
	 * before is still reported, unless its errno is a handshake's. */
	if (BPF_CORE_READ((struct tcp_sock *)sk, write_seq) &&
	    (ret == -EHOSTUNREACH || ret == -ENETUNREACH))
		return;
	if (!addr || len < (int)sizeof(struct sockaddr_in))
		return;
	rd = user_addr ? bpf_probe_read_user(&family, sizeof(family), addr)
		       : bpf_probe_read_kernel(&family, sizeof(family), addr);
	if (rd)
		return;
	cgroup_id = bpf_get_current_cgroup_id();
	name_cgroup(cgroup_id);
	e = reserve();
	if (!e)
		return;
	if (family == AF_INET) {
		struct sockaddr_in sin;

		rd = user_addr ? bpf_probe_read_user(&sin, sizeof(sin), addr)
			       : bpf_probe_read_kernel(&sin, sizeof(sin), addr);
		if (rd)
			goto discard;
		dport = bpf_ntohs(sin.sin_port);
		__builtin_memcpy(e->daddr, &sin.sin_addr.s_addr, 4);
		key.addr[10] = 0xff;
		key.addr[11] = 0xff;
		__builtin_memcpy(&key.addr[12], &sin.sin_addr.s_addr, 4);
		BPF_CORE_READ_INTO((__be32 *)e->saddr, sk, __sk_common.skc_rcv_saddr);
	} else if (family == AF_INET6 && len >= (int)sizeof(struct sockaddr_in6)) {
		struct sockaddr_in6 sin6;

		rd = user_addr ? bpf_probe_read_user(&sin6, sizeof(sin6), addr)
			       : bpf_probe_read_kernel(&sin6, sizeof(sin6), addr);
		if (rd)
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

/* The socket behind a file descriptor of the current task, or NULL. */
static __always_inline struct sock *sock_of_fd(int fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct file **fds;
	struct file *f = NULL;
	struct socket *sock;
	unsigned int max;

	if (fd < 0)
		return NULL;
	fds = BPF_CORE_READ(task, files, fdt, fd);
	max = BPF_CORE_READ(task, files, fdt, max_fds);
	if ((unsigned int)fd >= max)
		return NULL;
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) || !f)
		return NULL;
	if ((BPF_CORE_READ(f, f_inode, i_mode) & S_IFMT) != S_IFSOCK)
		return NULL;
	sock = BPF_CORE_READ(f, private_data);
	return BPF_CORE_READ(sock, sk);
}

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
	long nr;

#if defined(__TARGET_ARCH_x86)
	nr = regs->orig_ax;
#else
	nr = regs->syscallno;
#endif
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

/* Events about a socket in SYN_SENT that the correlation keeps with the
 * attempt: an error reported, a SYN dropped here, a SYN retransmitted. */
static __always_inline void attempt_note(const struct sock *sk, __u8 kind, __u32 err)
{
	struct tcpstate_lpm_key key = {};
	struct tcpstate_event *e;
	__u16 family, dport;

	if (!is_tcp(sk) || sk->__sk_common.skc_state != TCP_SYN_SENT)
		return;
	family = sk->__sk_common.skc_family;
	dport = bpf_ntohs(sk->__sk_common.skc_dport);
	if (!sk_dest(sk, family, &key) || !watched(&key, dport))
		return;
	e = reserve();
	if (!e)
		return;
	e->kind = kind;
	e->skaddr = (__u64)sk;
	e->sk_err = err;
	e->dport = dport;
	sk_addrs(e, sk, family, &key);
	submit(e);
}

/* 5.17+ (c504e5c2f964 "net: skb: introduce kfree_skb_reason()"): a SYN
 * dropped by this host's own netfilter. Loaded only where the kernel's
 * enum skb_drop_reason has NETFILTER_DROP (the loader checks). */
SEC("tp_btf/kfree_skb")
int BPF_PROG(handle_drop, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	struct sock *sk;

	if (reason != bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_NETFILTER_DROP))
		return 0;
	sk = skb->sk;
	if (sk)
		attempt_note(sk, TCPSTATE_EV_DROP, 0);
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(handle_retransmit, const struct sock *sk)
{
	attempt_note(sk, TCPSTATE_EV_RETRANS, 0);
	return 0;
}

/* A seed's addresses and ports from a socket pointer, with probe reads
 * (the task-file walk's pointers are not BTF-typed); false when it is not
 * a watched TCP attempt in SYN_SENT. */
static __always_inline bool seed_fill(struct tcpstate_seed *s, struct sock *sk)
{
	struct tcpstate_lpm_key key = {};

	if (BPF_CORE_READ(sk, __sk_common.skc_state) != TCP_SYN_SENT ||
	    BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP ||
	    BPF_CORE_READ(sk, sk_type) != SOCK_STREAM)
		return false;
	s->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	s->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (s->family == AF_INET) {
		__be32 daddr = BPF_CORE_READ(sk, __sk_common.skc_daddr);

		key.addr[10] = 0xff;
		key.addr[11] = 0xff;
		__builtin_memcpy(&key.addr[12], &daddr, 4);
		__builtin_memcpy(s->daddr, &daddr, 4);
		BPF_CORE_READ_INTO((__be32 *)s->saddr, sk, __sk_common.skc_rcv_saddr);
	} else if (s->family == AF_INET6) {
		BPF_CORE_READ_INTO(&key.addr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
		__builtin_memcpy(s->daddr, key.addr, 16);
		BPF_CORE_READ_INTO(&s->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
	} else {
		return false;
	}
	if (!watched(&key, s->dport))
		return false;
	s->skaddr = (__u64)sk;
	s->sport = sk_sport(sk);
	return true;
}

/* The attempts under way at start in every network namespace, with the
 * task holding each (iter/task_file, 5.8+, eaaacd23910f "bpf: Add task and
 * task/file iterator targets"). The walk visits each file table once:
 * threads sharing their leader's are skipped by the kernel. A socket held
 * by several processes (inherited over fork) comes once per holder; user
 * space keeps the first. */
SEC("iter/task_file")
int seed_tasks(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct tcpstate_seed s = {};
	struct socket *sock;
	struct sock *sk;

	if (!task || !file)
		return 0;
	if ((BPF_CORE_READ(file, f_inode, i_mode) & S_IFMT) != S_IFSOCK)
		return 0;
	sock = BPF_CORE_READ(file, private_data);
	sk = BPF_CORE_READ(sock, sk);
	if (!sk || !seed_fill(&s, sk))
		return 0;
	s.pid = BPF_CORE_READ(task, tgid);
	s.uid = BPF_CORE_READ(task, cred, uid.val);
	/* kernfs_node.id is the cgroup id, as bpf_get_current_cgroup_id()
	 * returns it: a u64 since 5.5 (67c0496e87d1 "kernfs: convert
	 * kernfs_node->id from union kernfs_node_id to u64"). */
	s.cgroup_id = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
	BPF_CORE_READ_STR_INTO(&s.comm, task, comm);
	BPF_CORE_READ_STR_INTO(&s.pcomm, task, group_leader, comm);
	bpf_seq_write(ctx->meta->seq, &s, sizeof(s));
	return 0;
}

/* The attempts under way at start in tcpstate's own network namespace
 * (iter/tcp, 5.9+), those no file holds included: the kernel's own
 * clients (NFS, iSCSI, SMB), which the task-file walk cannot see. Those
 * come without a holder; the rest are the walk's too. */
SEC("iter/tcp")
int seed_pending(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct tcpstate_seed s = {};

	if (!skc || !seed_fill(&s, (struct sock *)skc))
		return 0;
	s.uid = ctx->uid;
	bpf_seq_write(ctx->meta->seq, &s, sizeof(s));
	return 0;
}

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

/* Unread ring bytes past which DNS answers are skipped (set by the loader). */
const volatile __u64 dns_ring_limit = 0;

struct tcpstate_dns _dns = {};

static __always_inline void dns_answer(const struct sk_buff *skb, bool is_udp)
{
	struct task_struct *task;
	struct tcpstate_dns *r;
	unsigned char *head;
	__u16 proto, th, nh, sport = 0, ulen = 0;
	__u64 n, avail;
	__u64 id;

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
	if (n > TCPSTATE_DNS_MAX)
		n = TCPSTATE_DNS_MAX;
	if (dns_ring_limit && bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) > dns_ring_limit) {
		count(TCPSTATE_CNT_DNS_SKIPPED);
		return;
	}
	r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		count(TCPSTATE_CNT_RB_DROPS);
		return;
	}
	/* Clamped again where it is used, in the register used: the compiler
	 * may otherwise pass the unclamped copy, which the verifier refuses. */
	barrier_var(n);
	if (n > TCPSTATE_DNS_MAX)
		n = TCPSTATE_DNS_MAX;
	barrier_var(n);
	if (bpf_probe_read_kernel(r->data, n, head + th + 8)) {
		bpf_ringbuf_discard(r, BPF_RB_NO_WAKEUP);
		return;
	}
	r->ts_ns = bpf_ktime_get_ns();
	r->cgroup_id = bpf_get_current_cgroup_id();
	id = bpf_get_current_pid_tgid();
	r->pid = id >> 32;
	r->uid = (__u32)bpf_get_current_uid_gid();
	task = (struct task_struct *)bpf_get_current_task();
	r->netns = BPF_CORE_READ(task, nsproxy, net_ns, ns.inum);
	r->len = n;
	r->wire_len = ulen - 8;
	bpf_get_current_comm(r->comm, sizeof(r->comm));
	/* An application that resolved a name connects next: wake the
	 * consumer if it waits, so the name is known before the attempt. */
	bpf_ringbuf_submit(r, consumer_waiting ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
}

SEC("fentry/skb_consume_udp")
int BPF_PROG(handle_dns_fentry, struct sock *sk, struct sk_buff *skb, int len)
{
	dns_answer(skb, true);
	return 0;
}

#if defined(__TARGET_ARCH_x86)
#define NR_READ 0
#define NR_RECVFROM 45
#define NR_RECVMSG 47
#define NR_RECVMMSG 299
#else
#define NR_READ 63
#define NR_RECVFROM 207
#define NR_RECVMSG 212
#define NR_RECVMMSG 243
#endif

/* The answer in a user buffer: from a UDP socket connected to port 53, or
 * one whose source address (`from`, a user sockaddr) has port 53. */
static __always_inline void dns_from_user(int fd, const void *buf, __u64 n, const void *from)
{
	struct task_struct *task;
	struct tcpstate_dns *r;
	__u8 hdr[6];
	struct sock *sk;
	__u16 port = 0;
	__u64 id;

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
	if (dns_ring_limit && bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) > dns_ring_limit) {
		count(TCPSTATE_CNT_DNS_SKIPPED);
		return;
	}
	r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		count(TCPSTATE_CNT_RB_DROPS);
		return;
	}
	r->wire_len = n > 0xffff ? 0xffff : n;
	if (n > TCPSTATE_DNS_MAX)
		n = TCPSTATE_DNS_MAX;
	barrier_var(n);
	if (n > TCPSTATE_DNS_MAX)
		n = TCPSTATE_DNS_MAX;
	if (bpf_probe_read_user(r->data, n, buf)) {
		bpf_ringbuf_discard(r, BPF_RB_NO_WAKEUP);
		return;
	}
	r->len = n;
	r->ts_ns = bpf_ktime_get_ns();
	r->cgroup_id = bpf_get_current_cgroup_id();
	id = bpf_get_current_pid_tgid();
	r->pid = id >> 32;
	r->uid = (__u32)bpf_get_current_uid_gid();
	task = (struct task_struct *)bpf_get_current_task();
	r->netns = BPF_CORE_READ(task, nsproxy, net_ns, ns.inum);
	bpf_get_current_comm(r->comm, sizeof(r->comm));
	bpf_ringbuf_submit(r, consumer_waiting ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
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
	long nr;
	int fd;

#if defined(__TARGET_ARCH_x86)
	nr = regs->orig_ax;
#else
	nr = regs->syscallno;
#endif
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

#ifdef TCPSTATE_SYNTHETIC
/* Synthetic load for bench/sustain, never attached: run through
 * BPF_PROG_TEST_RUN, it pushes SYN_SENT/CLOSE pairs through the same
 * reserve and submit path as the tracepoint, so the ring buffer and the
 * consumer can be driven harder than real connections can. Compiled only
 * into the bench build (cargo feature "synthetic"; it needs Linux 5.17:
 * BPF_PROG_TYPE_SYSCALL and bpf_loop). */
static __always_inline void synth_one(__u64 skaddr, int oldstate, int newstate, __u32 err)
{
	struct tcpstate_event *e;

	e = reserve();
	if (!e)
		return;
	e->skaddr = skaddr;
	e->pid = 1;
	e->sk_err = err;
	e->family = AF_INET;
	e->dport = 9;
	e->oldstate = oldstate;
	e->newstate = newstate;
	e->saddr[0] = e->daddr[0] = 127;
	e->saddr[3] = e->daddr[3] = 1;
	__builtin_memcpy(e->comm, "synthetic", 10);
	submit(e);
}

static long synth_pair(__u64 i, void *data)
{
	__u64 skaddr = *(__u64 *)data + i * 64;

	synth_one(skaddr, TCP_CLOSE, TCP_SYN_SENT, 0);
	synth_one(skaddr, TCP_SYN_SENT, TCP_CLOSE, 111);
	return 0;
}

SEC("syscall")
int synth(struct tcpstate_synth *ctx)
{
	__u64 base = ctx->base;
	__u32 pairs = ctx->pairs;

	/* bpf_loop (5.17) verifies the body once; an open-coded loop of this
	 * many ring-buffer reservations exceeds the verifier's budget. */
	if (pairs > TCPSTATE_SYNTH_MAX_PAIRS)
		pairs = TCPSTATE_SYNTH_MAX_PAIRS;
	bpf_loop(pairs, synth_pair, &base, 0);
	return 0;
}
#endif /* TCPSTATE_SYNTHETIC */

char LICENSE[] SEC("license") = "Dual BSD/GPL";
