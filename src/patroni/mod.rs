//! Patroni: the REST client (`client`), the raw response shapes (`wire`), the model normalised
//! across Patroni 2.x–4.x (`model`), the one edit pgha makes to a member's configuration
//! file (`config_file`), and what the dynamic configuration may hold (`dynamic_config`). Everything else in pgha speaks the model.

mod client;
pub mod config_file;
pub mod dynamic_config;
mod error;
pub mod model;
mod wire;

pub use client::{
    ActionResponse, BasicAuth, FailoverRequest, HealthCheck, PatroniClient, ReinitializeRequest,
    RestSettings, RestartRequest, SwitchoverRequest, TlsSettings,
};
pub(crate) use client::{http_client, tls_failure};
pub use error::PatroniError;
pub use model::{
    ClusterMember, ClusterRole, ClusterTopology, Lag, Lsn, MemberState, MemberStatus, PostgresRole,
    TimelineSwitch, Version, WalPosition, format_server_version,
};

/// Test helpers: parse recorded responses the way the client does.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::{ClusterTopology, MemberStatus, TimelineSwitch, model, wire};

    pub(crate) fn status(json: &str) -> MemberStatus {
        serde_json::from_str::<wire::StatusWire>(json)
            .unwrap()
            .into()
    }

    pub(crate) fn cluster(json: &str) -> ClusterTopology {
        serde_json::from_str::<wire::ClusterWire>(json)
            .unwrap()
            .into()
    }

    pub(crate) fn history(json: &str) -> Vec<TimelineSwitch> {
        model::history_from_rows(serde_json::from_str(json).unwrap())
    }

    /// A recorded response of one Patroni release, captured from the lab by
    /// scripts/capture-fixtures.sh.
    pub(crate) fn recorded(version: &str, name: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/patroni/{version}/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
    }
}

#[cfg(test)]
mod tests;
