//! etcd as Patroni's DCS: the v3 client pgha reads a cluster's keys with, deletes a cluster's
//! key tree with, and holds a run's lock with. It speaks etcd's JSON gateway (`/v3/kv/range`,
//! `/v3/kv/deleterange`, `/v3/kv/txn`, `/v3/lease/*`, `/v3/auth/authenticate`; keys and values
//! in base64) over reqwest, so no gRPC stack is needed; etcd 3.4 and 3.5+ serve it at `/v3/`.
//! Settings come the etcdctl way (`ETCDCTL_ENDPOINTS`, `ETCDCTL_CACERT`, …), from the
//! inventory or from Patroni's `etcd3:` section, resolved by `inventory`; this module never
//! reads the environment itself.
//!
//! The rule from running Patroni on etcd: a cluster's tree is deleted by a prefix ending in `/`
//! (`/service/geo` would also delete `/service/geo2/…`).

mod client;
pub mod lock;

use std::time::Duration;

pub use client::{EndpointStatus, EtcdClient, KeyValue};
pub use lock::EtcdLock;

use crate::exit::Exit;
use crate::patroni::TlsSettings;
use crate::secret::Secret;

/// How to reach the etcd cluster Patroni uses.
#[derive(Debug, Clone, PartialEq)]
pub struct EtcdSettings {
    /// Endpoints to ask, in order (`http://127.0.0.10:2379`); the next one only when the
    /// previous refused the connection, so nothing is ever sent twice.
    pub endpoints: Vec<String>,
    /// etcd's own users (`etcdctl --user`), when authentication is on.
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub tls: TlsSettings,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Patroni's `namespace`: a leading `/`, no trailing one (default `/service`).
    pub namespace: String,
}

impl EtcdSettings {
    /// Patroni's key prefix for a scope: `/service/<scope>/`, always with the trailing slash.
    pub fn cluster_prefix(&self, scope: &str) -> String {
        cluster_prefix(&self.namespace, scope)
    }

    /// The run lock's key: beside the clusters' trees, never inside one (a tree delete must not
    /// take the lock with it, and Patroni reads its own tree).
    pub fn lock_key(&self, scope: &str) -> String {
        lock_key(&self.namespace, scope)
    }
}

fn cluster_prefix(namespace: &str, scope: &str) -> String {
    format!("{namespace}/{scope}/")
}

fn lock_key(namespace: &str, scope: &str) -> String {
    format!("{namespace}/pgha-locks/{scope}")
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum EtcdError {
    #[error("cannot set up the etcd client: {0}")]
    Setup(String),
    #[error("{url}: etcd did not answer: {reason}")]
    Unreachable { url: String, reason: String },
    #[error(
        "{url}: TLS handshake with etcd failed: {reason} (check dcs.tls or ETCDCTL_CACERT, ETCDCTL_CERT, ETCDCTL_KEY)"
    )]
    Tls { url: String, reason: String },
    #[error(
        "{url}: etcd refused the credentials ({reason}); check the inventory's dcs.username and dcs.password_env (or ETCDCTL_USER)"
    )]
    Denied { url: String, reason: String },
    #[error("{url}: etcd answered HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url}: not etcd's answer: {reason}")]
    Invalid { url: String, reason: String },
    #[error("refusing to delete {prefix:?}: {reason}")]
    UnsafePrefix { prefix: String, reason: String },
    #[error(
        "the cluster is locked in etcd ({key}) by {holder}; wait for it, or look at that run where it runs"
    )]
    LockHeld { key: String, holder: String },
    #[error(
        "{key} changed since it was read (revision {read}): someone else edited it meanwhile; nothing was written, plan again to see the new difference"
    )]
    Changed { key: String, read: i64 },
}

impl EtcdError {
    /// Whose fault: the operator's settings (credentials, TLS, the client's setup), which no
    /// retry or other endpoint fixes.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            EtcdError::Denied { .. } | EtcdError::Tls { .. } | EtcdError::Setup(_)
        )
    }

    pub fn exit(&self) -> Exit {
        match self {
            EtcdError::Unreachable { .. } => Exit::Unreachable,
            EtcdError::LockHeld { .. } => Exit::LockHeld,
            EtcdError::Denied { .. } | EtcdError::Tls { .. } | EtcdError::UnsafePrefix { .. } => {
                Exit::BadInput
            }
            EtcdError::Setup(_)
            | EtcdError::Status { .. }
            | EtcdError::Invalid { .. }
            | EtcdError::Changed { .. } => Exit::Failed,
        }
    }
}
