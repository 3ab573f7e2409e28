//! What pgha does the same whichever DCS a cluster runs on (etcd or Consul): the run lock's
//! holder as both record it, and the lock a run holds there so that two operators on two
//! machines cannot run runbooks on one cluster at once.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde::{Deserialize, Serialize};

use crate::consul::ConsulLock;
use crate::etcd::EtcdLock;

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

/// A run's lock in the cluster's DCS.
pub enum DcsLock {
    Consul(ConsulLock),
    Etcd(EtcdLock),
}

impl DcsLock {
    /// Set when the lock could not be kept: the executor stops before its next change.
    pub fn lost_flag(&self) -> Arc<AtomicBool> {
        match self {
            DcsLock::Consul(lock) => lock.lost_flag(),
            DcsLock::Etcd(lock) => lock.lost_flag(),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            DcsLock::Consul(lock) => format!("the Consul lock {}", lock.key()),
            DcsLock::Etcd(lock) => format!("the etcd lock {}", lock.key()),
        }
    }

    pub async fn release(self) {
        match self {
            DcsLock::Consul(lock) => lock.release().await,
            DcsLock::Etcd(lock) => lock.release().await,
        }
    }
}
