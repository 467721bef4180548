//! Who connected: the cgroup id each record carries, resolved to its path
//! (`cgroup`, the only part that reads the filesystem, through bounded
//! caches); what the path says, the systemd unit, container and pod
//! (`cgroup_path`, pure); and the containers' and pods' names from the
//! files their runtimes write (`containers`, with their formats parsed in
//! `runtime_names`, pure).

pub mod cgroup;
pub mod cgroup_path;
pub mod containers;
pub mod runtime_names;
