//! The runbooks: one file each, each a pure function from the inventory's target, the observed
//! cluster and the operator's parameters to a `Plan`. No I/O happens here: a reader sees the whole
//! procedure as data, in the order it runs.

mod consul;
mod host;
mod maintenance;
mod reinit;
mod restart;
mod scale_down;
mod scale_up;
mod service;
#[cfg(test)]
mod shell_proof;
mod switchover;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::exit::Exit;
use crate::inventory::ClusterTarget;
use crate::observe::{ClusterView, MemberView};
use crate::plan::{Action, Check, Compensation, Gate, Idempotency, Plan, SilenceAction, Step};

/// The lag under which a replica counts as caught up, unless the operator says otherwise:
/// Patroni's default `maximum_lag_on_failover`.
pub const DEFAULT_MAX_LAG_BYTES: u64 = 1024 * 1024;

/// How long a silence outlives the deadline of the work it covers: the run's last steps (and an
/// operator reading the outcome) need a few minutes after the wait.
const SILENCE_MARGIN: Duration = Duration::from_mins(15);

/// How long Consul may take to route to a member after Patroni registers it again: its check
/// runs every 5 s, the first run staggered within that, and a re-registration keeps the old
/// verdict until then (measured on the lab: all members passing ≈ 11 s after a switchover).
const CONSUL_ROUTING_TIMEOUT: Duration = Duration::from_mins(1);

pub use host::{BackupTool, HostOperation};

/// What the operator asked for. Stored in the plan (and so in the journal) so that a resumed run
/// can be planned again from the same request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "runbook", rename_all = "snake_case")]
pub enum Params {
    Reinit {
        member: String,
        #[serde(with = "crate::duration::optional_text")]
        timeout: Option<Duration>,
        max_lag: u64,
    },
    Switchover {
        candidate: Option<String>,
        /// RFC 3339 with a time zone.
        at: Option<String>,
        checkpoint: bool,
        max_lag: u64,
        #[serde(with = "crate::duration::optional_text")]
        timeout: Option<Duration>,
    },
    Pause {
        wait: bool,
    },
    Resume {
        wait: bool,
    },
    Restart {
        member: Option<String>,
        pending_only: bool,
        max_lag: u64,
        #[serde(with = "crate::duration::optional_text")]
        timeout: Option<Duration>,
    },
    Host {
        member: String,
        #[serde(flatten)]
        operation: HostOperation,
    },
    Service {
        action: crate::remote::ServiceAction,
        member: String,
        max_lag: u64,
        #[serde(with = "crate::duration::optional_text")]
        timeout: Option<Duration>,
    },
    ConsulDeleteTree {
        /// As the operator typed it; the plan refuses anything but the cluster's own prefix.
        prefix: Option<String>,
    },
    ScaleUp {
        member: String,
        max_lag: u64,
        #[serde(with = "crate::duration::optional_text")]
        timeout: Option<Duration>,
        /// Free space the new host needs: given, or measured on the leader before planning.
        need: Option<u64>,
    },
    ScaleDown {
        member: String,
        drain: bool,
        #[serde(with = "crate::duration::optional_text")]
        drain_timeout: Option<Duration>,
        /// When it was asked for (`20261203-041500`): names the copy of the Patroni
        /// configuration the drain edits (planners read no clock).
        #[serde(default)]
        label: String,
    },
}

impl Params {
    /// The parameters with the environment's default deadline where the operator gave none:
    /// `--timeout` wins, then the inventory's `timeouts.runbooks.<runbook>`, then the runbook's.
    #[must_use]
    pub fn with_default_timeout(
        mut self,
        defaults: &std::collections::BTreeMap<String, Duration>,
    ) -> Self {
        let default = defaults.get(self.runbook()).copied();
        match &mut self {
            Params::Reinit { timeout, .. }
            | Params::Switchover { timeout, .. }
            | Params::Restart { timeout, .. }
            | Params::Service { timeout, .. }
            | Params::ScaleUp { timeout, .. } => {
                *timeout = timeout.or(default);
            }
            Params::Pause { .. }
            | Params::Resume { .. }
            | Params::Host { .. }
            | Params::ConsulDeleteTree { .. }
            | Params::ScaleDown { .. } => {}
        }
        self
    }

    pub fn runbook(&self) -> &'static str {
        match self {
            Params::Reinit { .. } => "reinit",
            Params::Switchover { .. } => "switchover",
            Params::Pause { .. } => "pause",
            Params::Resume { .. } => "resume",
            Params::Restart { .. } => "restart",
            Params::Service { .. } => "service",
            Params::Host { .. } => "host",
            Params::ConsulDeleteTree { .. } => "consul-delete-tree",
            Params::ScaleUp { .. } => "scale-up",
            Params::ScaleDown { .. } => "scale-down",
        }
    }
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
    #[error("{0}")]
    Refused(String),
}

impl PlanError {
    pub fn exit(&self) -> Exit {
        match self {
            PlanError::UnknownMember { .. } | PlanError::NotARemoteTarget(_) => Exit::BadInput,
            PlanError::NoCandidate { .. } | PlanError::Refused(_) => Exit::PrecheckRefused,
        }
    }
}

/// Plans a runbook. Pure: the same inputs give the same plan.
pub fn plan(
    target: &ClusterTarget,
    view: &ClusterView,
    params: &Params,
) -> Result<Plan, PlanError> {
    match params {
        Params::Reinit { .. } => reinit::plan(target, view, params),
        Params::Switchover { .. } => switchover::plan(target, view, params),
        Params::Pause { .. } | Params::Resume { .. } => maintenance::plan(target, view, params),
        Params::Restart { .. } => restart::plan(target, view, params),
        Params::Service { .. } => service::plan(target, view, params),
        Params::Host { .. } => host::plan(target, view, params),
        Params::ConsulDeleteTree { .. } => consul::plan(target, view, params),
        Params::ScaleUp { .. } => scale_up::plan(target, view, params),
        Params::ScaleDown { .. } => scale_down::plan(target, view, params),
    }
}

/// The frame every plan shares: where, who, with which parameters.
fn new_plan(
    target: &ClusterTarget,
    view: &ClusterView,
    params: &Params,
    title: String,
    summary: String,
) -> Plan {
    Plan {
        runbook: params.runbook().into(),
        title,
        summary,
        environment: target.environment.clone(),
        cluster: target.cluster.clone(),
        scope: view.scope.clone(),
        params: serde_json::to_value(params).unwrap_or_default(),
        rest_user: target.rest.auth.as_ref().map(|auth| auth.username.clone()),
        prechecks: Vec::new(),
        assumes: Vec::new(),
        steps: Vec::new(),
        rollback: None,
        parallel: Vec::new(),
        compensations: Vec::new(),
    }
}

/// True when Patroni registers the members in Consul (`register_service`): then clients find
/// them there, and a runbook is not done until Consul routes as the cluster now is.
fn registers_services(view: &ClusterView) -> bool {
    view.consul.as_ref().is_some_and(|consul| {
        consul
            .instances
            .as_ref()
            .is_ok_and(|found| !found.is_empty())
    })
}

/// A wait until Consul agrees with the cluster (`until`), where Patroni registers services;
/// nothing otherwise.
fn consul_routing(view: &ClusterView, id: String, title: String, until: Vec<Check>) -> Vec<Step> {
    if !registers_services(view) {
        return Vec::new();
    }
    vec![Step::wait(
        id,
        title,
        crate::plan::Wait {
            until,
            fail_if: Vec::new(),
            timeout: CONSUL_ROUTING_TIMEOUT,
            poll: Duration::from_millis(500),
            progress: crate::plan::Progress::Checks,
        },
    )]
}

/// The wait until `member` is registered as a replica and passing again.
fn consul_routes_replica(view: &ClusterView, member: &str) -> Vec<Step> {
    consul_routing(
        view,
        format!("consul-replica-{member}"),
        format!("Wait until Consul routes replica traffic to {member}"),
        vec![Check::ConsulPassing {
            member: member.into(),
            tag: "replica".into(),
        }],
    )
}

/// The member by name, or the error listing the members there are.
fn member<'a>(view: &'a ClusterView, name: &str) -> Result<&'a MemberView, PlanError> {
    view.member(name).ok_or_else(|| PlanError::UnknownMember {
        cluster: view.cluster.clone(),
        member: name.into(),
        known: view
            .members
            .iter()
            .map(|member| member.name.clone())
            .collect(),
    })
}

/// The host a remote step on `name` runs on: the inventory's, for a member it lists (see
/// `ClusterTarget::remote_host`). A member unknown to the cluster is reported as such first.
fn remote_host<'a>(
    target: &'a ClusterTarget,
    view: &ClusterView,
    name: &str,
) -> Result<&'a str, PlanError> {
    member(view, name)?;
    Ok(target.remote_host(name)?)
}

/// A member the plan sends credentials to (REST writes): one pgha was given, never one only
/// the DCS lists. A member unknown to the cluster is reported as such first.
fn listed<'a>(
    target: &ClusterTarget,
    view: &'a ClusterView,
    name: &str,
) -> Result<&'a MemberView, PlanError> {
    let member = member(view, name)?;
    target.listed_member(name)?;
    Ok(member)
}

/// Where to send cluster-wide calls (`PATCH /config`, `POST /switchover`): the leader when it
/// answers, else the first member that does.
fn cluster_api(view: &ClusterView) -> Result<&MemberView, PlanError> {
    view.leader
        .as_deref()
        .and_then(|leader| view.member(leader))
        .filter(|leader| leader.is_reachable())
        .or_else(|| view.members.iter().find(|member| member.is_reachable()))
        .ok_or_else(|| PlanError::Refused("no member's REST API answers".into()))
}

fn started_at(member: &MemberView) -> String {
    member
        .status
        .as_ref()
        .ok()
        .and_then(|status| status.postmaster_start_time.clone())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests;

/// Appends `steps` that make `member` raise alerts (lag, down) to the plan, wrapped in a silence
/// of the inventory's matchers, created first and expired last. A run aborted or refused once the
/// silence was created expires it too (a compensation); one that fails or dies leaves it to end
/// by itself after `duration`, so nothing stays muted for good. Without an Alertmanager in the
/// inventory, the steps alone.
fn silenced(
    plan: &mut Plan,
    target: &ClusterTarget,
    member: &MemberView,
    why: &str,
    duration: Duration,
    steps: Vec<Step>,
) {
    let Some(alertmanager) = &target.alertmanager else {
        plan.steps.extend(steps);
        return;
    };
    let host = target
        .member(&member.name)
        .map_or(member.host.as_str(), |configured| configured.host.as_str());
    let labels = alertmanager
        .matchers
        .iter()
        .map(|(name, value)| {
            let value = value
                .replace("{member}", &member.name)
                .replace("{host}", host)
                .replace("{cluster}", &target.cluster);
            (name.clone(), value)
        })
        .collect();
    let create_id = format!("silence-{}", member.name);
    let create = Step {
        id: create_id.clone(),
        title: format!("Silence alerts for {} while it is {why}", member.name),
        action: Action::Silence(SilenceAction::Create {
            url: alertmanager.url.clone(),
            labels,
            duration,
            comment: format!("pgha: {} is {why}", member.name),
        }),
        gate: Gate::None,
        prechecks: Vec::new(),
        verify: None,
        // The journal holds the id: a resumed run does not create a second one.
        idempotency: Idempotency::SafeToRepeat,
    };
    let expire = Step {
        id: format!("expire-silence-{}", member.name),
        title: format!("Expire the silence for {}", member.name),
        action: Action::Silence(SilenceAction::Expire {
            url: alertmanager.url.clone(),
            created_by: create_id,
        }),
        gate: Gate::None,
        prechecks: Vec::new(),
        verify: None,
        idempotency: Idempotency::SafeToRepeat,
    };
    plan.compensations.push(Compensation {
        after: create.id.clone(),
        step: Step {
            id: format!("undo-silence-{}", member.name),
            ..expire.clone()
        },
    });
    plan.steps.push(create);
    plan.steps.extend(steps);
    plan.steps.push(expire);
}
