/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The attempts already in SYN_SENT when tcpstate starts (iter/task_file,
 * iter/tcp), which no state change will announce. */
#ifndef __TCPSTATE_SEED_H
#define __TCPSTATE_SEED_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "sock.h"

/* A seed's addresses and ports from a socket pointer, with probe reads
 * (the task-file walk's pointers are not BTF-typed); false when it is not
 * a watched TCP attempt in SYN_SENT. */
static __always_inline bool seed_fill(struct tcpstate_seed *s, struct sock *sk)
{
	struct tcpstate_lpm_key key = {};

	if (BPF_CORE_READ(sk, __sk_common.skc_state) != TCP_SYN_SENT || !is_tcp_read(sk))
		return false;
	s->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	s->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (s->family == AF_INET) {
		__be32 daddr = BPF_CORE_READ(sk, __sk_common.skc_daddr);

		key_v4(&key, daddr);
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
	struct sock *sk;

	if (!task || !file)
		return 0;
	sk = sock_of_file(file);
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

#endif /* __TCPSTATE_SEED_H */
