/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Who is connecting: the calling task's ids and names, and its cgroup's
 * names, sent once per cgroup id (a short-lived unit's cgroup may be gone
 * before user space could look the id up). */
#ifndef __TCPSTATE_CALLER_H
#define __TCPSTATE_CALLER_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "maps.h"
#include "ring.h"

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
	r = ring_reserve(sizeof(*r));
	if (!r)
		return;
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

#endif /* __TCPSTATE_CALLER_H */
