//! The runbooks, and the contract each follows. A runbook is one file here that owns, side by
//! side: its parameters (the flags with their help, validated by their parsers into a plain
//! struct that is also what the journal records), what it must measure before it can plan (read
//! only), its pure `plan()`, and its default deadline. `registry.rs` lists them once; dispatch,
//! help, completions, the man page and the committed `runbooks/*.md` all come from that list.
//! What several runbooks share lives in `steps`, never in a sibling runbook.

mod registry;
pub mod steps;
#[cfg(test)]
mod tests;

use std::fmt::Debug;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use host::HostOperation;
pub use registry::{PlanOutput, RunFlags};
pub use resume::Params as ResumeParams;
pub(crate) use steps::Host;
pub use steps::{BackupTool, DEFAULT_MAX_LAG_BYTES};

use crate::exit::Exit;
use crate::inventory::ClusterTarget;
use crate::observe::ClusterView;
use crate::patroni::Lsn;
use crate::patroni::dynamic_config::ConfigRead;
use crate::plan::Plan;
use crate::postgres::SqlError;

// The one list of runbooks: `Variant in module`. Each line declares the runbook's module and
// makes `Variant` its subcommand, its `Params` variant and its dispatch (see `registry`).
registry::registry! {
    Reinit in reinit,
    ScaleUp in scale_up,
    ScaleDown in scale_down,
    Switchover in switchover,
    Failover in failover,
    Flush in flush,
    Pause in pause,
    Resume in resume,
    Restart in restart,
    RollingUpgrade in rolling_upgrade,
    GeoResetup in geo_resetup,
    ClusterReinit in cluster_reinit,
    Reload in reload,
    EditConfig in edit_config,
    DemoteCluster in demote_cluster,
    PromoteCluster in promote_cluster,
    Service in service,
    Host in host,
    #[command(name = "dcs")]
    DcsDeleteTree in dcs_delete_tree,
    #[command(name = "consul")]
    ConsulDeleteTree in consul_delete_tree,
}

/// What every runbook is. Implemented by a unit struct in the runbook's file.
#[allow(async_fn_in_trait)] // dispatched statically by the registry, never as a trait object
pub trait Runbook {
    /// The command (`reinit`, `scale-up`): also the plan's `runbook` and the key of the
    /// inventory's `timeouts.runbooks`.
    const NAME: &'static str;
    /// One line for `pgha --help`.
    const ABOUT: &'static str;
    /// The flags (clap derives them, each with its help and parser) and what the journal keeps.
    type Params: clap::Args + Serialize + DeserializeOwned + Clone + Debug + PartialEq;

    /// The operator's deadline for the runbook's long wait, for the inventory's
    /// `timeouts.runbooks.<name>` to fill when the operator gave none.
    fn deadline(_params: &mut Self::Params) -> Option<&mut Option<Duration>> {
        None
    }

    /// What the plan needs that the cluster's view does not hold (a database's size), read
    /// before planning: planners read no database.
    async fn measure(
        params: Self::Params,
        _target: &ClusterTarget,
        _view: &ClusterView,
        _probe: &impl Probe,
    ) -> Result<Self::Params, PlanError> {
        Ok(params)
    }

    /// The plan. Pure: the same inputs give the same plan.
    fn plan(
        target: &ClusterTarget,
        view: &ClusterView,
        params: &Self::Params,
    ) -> Result<Plan, PlanError>;

    /// The parameters `pgha resume --replan` plans with. A runbook whose own steps can leave
    /// the cluster half-way (a Patroni this run stopped when pgha was killed) lets the new plan
    /// take that on here; the operator approved it when the run started.
    fn replanning(params: Self::Params) -> Self::Params {
        params
    }

    /// The plans committed in `runbooks/*.md`, each planned against a lab of a known shape.
    fn examples() -> Vec<Example<Self::Params>> {
        Vec::new()
    }
}

/// Reads a runbook may need before planning. Never changes anything.
#[allow(async_fn_in_trait)]
pub trait Probe {
    /// The size of every database on the server at `host`; `None` without SQL access.
    async fn database_size(&self, host: &str) -> Option<Result<u64, SqlError>>;
    /// How long the oldest open transaction on the server at `host` has been open (`None`
    /// inside: none is); `None` without SQL access.
    async fn oldest_transaction(&self, host: &str) -> Option<Result<Option<Duration>, SqlError>>;
    /// The current WAL position of the server at `host` when it is a primary (`None` inside:
    /// it is in recovery); `None` without SQL access.
    async fn primary_position(&self, host: &str) -> Option<Result<Option<Lsn>, SqlError>>;
    /// The dynamic configuration and where it was read (the DCS where pgha knows it, with
    /// its revision; else a member's `GET /config`), or why it could not be.
    async fn dynamic_config(&self, _view: &ClusterView) -> Result<ConfigRead, String> {
        Err("this probe reads no dynamic configuration".into())
    }
}

/// The size of every database on the leader, where pgha has SQL access: what a copy of the
/// cluster needs room for. `None` without a leader or without SQL access.
pub(crate) async fn leader_database_size(
    view: &ClusterView,
    probe: &impl Probe,
) -> Result<Option<u64>, PlanError> {
    let Some(leader) = view
        .leader
        .as_deref()
        .and_then(|leader| view.member(leader))
    else {
        return Ok(None);
    };
    Ok(probe.database_size(&leader.host).await.transpose()?)
}

/// A committed plan: `runbooks/<file>.md`, planned with `params` against `lab`.
pub struct Example<P> {
    pub file: &'static str,
    pub params: P,
    pub lab: ExampleLab,
}

/// The clusters the committed plans are rendered for (the tests build each from recorded
/// answers of a real lab).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExampleLab {
    /// `pgha lab up`: three members on etcd.
    Lab,
    /// The lab whose leader died while it was paused: no leader key, the old leader's API
    /// silent.
    LeaderlessLab,
    /// The lab with a switchover scheduled from its leader to a replica.
    LabWithScheduledSwitchover,
    /// `pgha lab up --spare 1`: node4 configured, not started.
    LabWithSpare,
    /// `pgha lab up --dcs consul`: Patroni registering its services in Consul.
    ConsulLab,
    /// `pgha lab up` with every Patroni stopped, its keys in etcd (before a tree delete).
    EtcdLab,
    /// `pgha lab up --patroni-version 2.1.7`: the members on an old release, to upgrade.
    LabOnOldPatroni,
    /// The same cluster as pods of a StatefulSet (service control `kubernetes`).
    KubernetesOnOldPatroni,
    /// `pgha lab up --standby-cluster`'s standby cluster: a standby leader following the
    /// primary site from its archive, the inventory's `standby: true` and `backup:`.
    StandbyLab,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cluster {cluster} has no member {member:?} (members: {})", .known.join(", "))]
    UnknownMember {
        cluster: String,
        member: String,
        known: Vec<String>,
    },
    #[error("no member can take over from {leader}: {reasons}")]
    NoCandidate { leader: String, reasons: String },
    /// A remote step for a member the inventory does not list: like an unknown member, the
    /// operator's input (the inventory, or the way the cluster was named) is what must change.
    #[error(transparent)]
    NotARemoteTarget(#[from] crate::inventory::RemoteTargetError),
    /// A measurement before planning could not be made.
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error("{0}")]
    Refused(String),
    /// What the operator asked for cannot be done as asked (a malformed value, a setting
    /// Patroni would ignore): nothing was planned.
    #[error("{0}")]
    BadInput(String),
}

impl PlanError {
    pub fn exit(&self) -> Exit {
        match self {
            PlanError::UnknownMember { .. }
            | PlanError::NotARemoteTarget(_)
            | PlanError::BadInput(_) => Exit::BadInput,
            PlanError::NoCandidate { .. } | PlanError::Refused(_) => Exit::PrecheckRefused,
            PlanError::Sql(error) => error.exit(),
        }
    }
}

/// Plans a runbook. Pure: the same inputs give the same plan.
pub fn plan(
    target: &ClusterTarget,
    view: &ClusterView,
    params: &Params,
) -> Result<Plan, PlanError> {
    params.plan(target, view)
}

#[cfg(test)]
mod shell_proof;
