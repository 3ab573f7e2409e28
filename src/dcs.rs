//! What both DCS clients share (etcd's and Consul's): the run lock's holder, as each records it
//! in its lock key. A leaf: the clients depend on it, never the reverse.

use serde::{Deserialize, Serialize};

/// Who holds a run lock: the value of the lock key, in either DCS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    pub run_id: String,
    pub operator: String,
    pub host: String,
    pub pid: u32,
    pub since: String,
}

impl LockHolder {
    /// The lock in `value` was left by a pgha that died on this machine (same host, its pid
    /// gone): a killed run being resumed here may take it over at once instead of waiting for
    /// the DCS to expire it. A holder on another machine is never second-guessed.
    pub fn left_by_dead_process(value: &[u8], ours: &LockHolder) -> bool {
        serde_json::from_slice::<LockHolder>(value).is_ok_and(|holder| {
            holder.host == ours.host
                && holder.pid != ours.pid
                && !std::path::Path::new(&format!("/proc/{}", holder.pid)).exists()
        })
    }

    /// The holder recorded in a lock key's value, for the refusal of a second run.
    pub fn describe(value: &[u8]) -> String {
        serde_json::from_slice::<LockHolder>(value).map_or_else(
            |_| "an unknown holder".to_string(),
            |holder| {
                format!(
                    "run {} of {} on {} (pid {}, since {})",
                    holder.run_id, holder.operator, holder.host, holder.pid, holder.since
                )
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::LockHolder;

    fn holder(host: &str, pid: u32) -> LockHolder {
        LockHolder {
            run_id: "r1".into(),
            operator: "root".into(),
            host: host.into(),
            pid,
            since: "2026-12-03T07:00:00Z".into(),
        }
    }

    #[test]
    fn only_a_dead_process_on_this_machine_leaves_a_lock_to_take_over() {
        let ours = holder("vm", std::process::id());
        let value = |holder: &LockHolder| serde_json::to_vec(holder).unwrap();
        // No process has this pid (above the kernel's pid_max).
        assert!(LockHolder::left_by_dead_process(
            &value(&holder("vm", 4_194_305)),
            &ours
        ));
        // pid 1 is alive; another machine's holder is never second-guessed.
        assert!(!LockHolder::left_by_dead_process(
            &value(&holder("vm", 1)),
            &ours
        ));
        assert!(!LockHolder::left_by_dead_process(
            &value(&holder("bastion-2", 4_194_305)),
            &ours
        ));
        assert!(!LockHolder::left_by_dead_process(b"not json", &ours));
    }
}
