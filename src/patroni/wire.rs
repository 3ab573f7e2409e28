//! Raw JSON shapes of Patroni's REST API responses as Patroni 2.x, 3.x and 4.x send them.
//! Every field is optional or defaulted because versions add, rename and drop fields; nothing
//! outside `patroni` sees these types: `model` turns them into one normalised model.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// `GET /patroni` (also the body of the health endpoints).
#[derive(Debug, Default, Deserialize)]
#[allow(clippy::struct_excessive_bools)] // the shape Patroni sends
pub(crate) struct StatusWire {
    pub state: Option<String>,
    pub postmaster_start_time: Option<String>,
    pub role: Option<String>,
    pub server_version: Option<u32>,
    pub xlog: Option<XlogWire>,
    pub timeline: Option<u32>,
    pub replication_state: Option<String>,
    #[serde(default)]
    pub replication: Vec<ReplicationWire>,
    pub dcs_last_seen: Option<i64>,
    pub database_system_identifier: Option<String>,
    pub patroni: Option<PatroniInfoWire>,
    #[serde(default)]
    pub pause: bool,
    #[serde(default)]
    pub pending_restart: bool,
    #[serde(default)]
    pub pending_restart_reason: BTreeMap<String, PendingChangeWire>,
    pub scheduled_restart: Option<ScheduledRestartWire>,
    #[serde(default)]
    pub tags: BTreeMap<String, Value>,
    #[serde(default)]
    pub sync_standby: bool,
    #[serde(default)]
    pub quorum_standby: bool,
    #[serde(default)]
    pub cluster_unlocked: bool,
}

/// The `xlog` object: `location` on a primary; received/replayed positions on a replica.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct XlogWire {
    pub location: Option<u64>,
    pub received_location: Option<u64>,
    pub replayed_location: Option<u64>,
    pub replayed_timestamp: Option<String>,
    #[serde(default)]
    pub paused: bool,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ReplicationWire {
    pub usename: Option<String>,
    pub application_name: Option<String>,
    pub client_addr: Option<String>,
    pub state: Option<String>,
    pub sync_state: Option<String>,
    pub sync_priority: Option<i64>,
}

/// `patroni` object. `name` appeared in 3.3; 2.x and 3.0 only send version and scope.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PatroniInfoWire {
    pub version: Option<String>,
    pub scope: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PendingChangeWire {
    pub old_value: Option<Value>,
    pub new_value: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ScheduledRestartWire {
    pub schedule: Option<String>,
}

/// `GET /cluster`. `scope` appeared in 3.3.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ClusterWire {
    #[serde(default)]
    pub members: Vec<ClusterMemberWire>,
    pub scope: Option<String>,
    #[serde(default)]
    pub pause: bool,
    pub scheduled_switchover: Option<ScheduledSwitchoverWire>,
}

/// One member in `/cluster`. `lsn`, `receive_*` and `replay_*` appeared in 4.1; older versions
/// only send `lag`. Lags and LSNs are the string `"unknown"` when Patroni cannot compute them.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ClusterMemberWire {
    pub name: String,
    pub role: Option<String>,
    pub state: Option<String>,
    pub api_url: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub timeline: Option<u32>,
    pub lag: Option<NumberOrText>,
    pub receive_lag: Option<NumberOrText>,
    pub replay_lag: Option<NumberOrText>,
    pub lsn: Option<NumberOrText>,
    pub receive_lsn: Option<NumberOrText>,
    pub replay_lsn: Option<NumberOrText>,
    #[serde(default)]
    pub pending_restart: bool,
    #[serde(default)]
    pub pending_restart_reason: BTreeMap<String, PendingChangeWire>,
    pub scheduled_restart: Option<ScheduledRestartWire>,
    #[serde(default)]
    pub tags: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ScheduledSwitchoverWire {
    pub at: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// Patroni sends numbers for known values and `"unknown"` (or an LSN string) otherwise.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum NumberOrText {
    Number(u64),
    Text(String),
}
