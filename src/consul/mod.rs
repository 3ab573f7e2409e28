//! Consul as Patroni's DCS and as the service catalog: the client pgha reads health and keys
//! with, deletes a cluster's key tree with, and holds a run's lock with. Settings come the
//! Consul way (`CONSUL_HTTP_ADDR`, `CONSUL_HTTP_TOKEN`, `CONSUL_CACERT`, …) or from the
//! inventory, resolved by `inventory`; this module never reads the environment itself.
//!
//! Two rules from running Patroni on Consul: health is read with `?passing`, never from tags
//! alone (a dead leader stays tagged `primary`, critical, until it is reaped), and a key tree
//! is deleted by a prefix ending in `/` (`service/geo` would also delete `service/geo2/…`).

mod client;
pub mod lock;
pub mod model;

use std::time::Duration;

pub use client::ConsulClient;
pub use lock::ConsulLock;
pub use model::{Check, CheckStatus, KvEntry, ServiceInstance};

use crate::exit::Exit;
use crate::patroni::TlsSettings;
use crate::secret::Secret;

/// How to reach the Consul agent of a cluster.
#[derive(Debug, Clone)]
pub struct ConsulSettings {
    /// Agents to ask, in order (`http://127.0.0.1:8500`); the next one only when the previous
    /// refused the connection, so nothing is ever sent twice.
    pub addresses: Vec<String>,
    pub token: Option<Secret>,
    pub tls: TlsSettings,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Patroni's `namespace` without its slashes (default `service`).
    pub namespace: String,
    /// The service Patroni registers (`register_service`): its scope unless the inventory says.
    pub service: Option<String>,
}

impl ConsulSettings {
    /// Patroni's key prefix for a scope: `service/<scope>/`, always with the trailing slash.
    pub fn cluster_prefix(&self, scope: &str) -> String {
        format!("{}/{scope}/", self.namespace)
    }

    pub fn service_name<'a>(&'a self, scope: &'a str) -> &'a str {
        self.service.as_deref().unwrap_or(scope)
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ConsulError {
    #[error("cannot set up the Consul client: {0}")]
    Setup(String),
    #[error("{url}: Consul did not answer: {reason}")]
    Unreachable { url: String, reason: String },
    #[error(
        "{url}: Consul refused the token ({status}: {body}); set CONSUL_HTTP_TOKEN or the inventory's dcs.token_env"
    )]
    Denied {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url}: Consul answered HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error(
        "{url} answered HTTP {status} redirecting to {location}: pgha does not follow redirects; give it the agent's own address (dcs.hosts or CONSUL_HTTP_ADDR)"
    )]
    Redirect {
        url: String,
        status: u16,
        location: String,
    },
    #[error("{url}: not Consul's answer: {reason}")]
    Invalid { url: String, reason: String },
    #[error("refusing to delete {prefix:?}: {reason}")]
    UnsafePrefix { prefix: String, reason: String },
    #[error(
        "{key} changed since it was read (ModifyIndex {read}): someone else edited it meanwhile; nothing was written, plan again to see the new difference"
    )]
    Changed { key: String, read: u64 },
    #[error(
        "the cluster is locked in Consul ({key}) by {holder}; wait for it, or look at that run where it runs"
    )]
    LockHeld { key: String, holder: String },
}

impl ConsulError {
    pub fn exit(&self) -> Exit {
        match self {
            ConsulError::Unreachable { .. } => Exit::Unreachable,
            ConsulError::LockHeld { .. } => Exit::LockHeld,
            // A redirect means the address pgha was given is not the agent's own.
            ConsulError::Denied { .. }
            | ConsulError::UnsafePrefix { .. }
            | ConsulError::Redirect { .. } => Exit::BadInput,
            ConsulError::Setup(_)
            | ConsulError::Status { .. }
            | ConsulError::Invalid { .. }
            | ConsulError::Changed { .. } => Exit::Failed,
        }
    }
}
