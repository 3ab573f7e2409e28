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
