//! The step library: what several runbooks share — the frame of a plan, members looked up by
//! name (and where commands and credentials may go), the identity assumption, silences around
//! a body of work, PostgreSQL restarts, service-control steps with their verification, host commands, waits for
//! streaming and for Consul's routing, a cluster's key tree deleted from its DCS, the dynamic
//! configuration written and verified. Runbooks import from here, never from each other.

mod config;
mod consul;
mod dcs;
mod host;
mod maintenance;
mod rebuild;
mod restart;
mod service;
mod silence;
mod switch;
mod waits;

use std::time::Duration;

use super::PlanError;
use crate::inventory::ClusterTarget;
use crate::observe::{ClusterView, MemberView};
use crate::plan::{Check, Plan};
use crate::remote::ServiceControl;

pub use crate::inventory::BackupTool;
pub(crate) use config::{
    answering_members, applying_loop_wait, config_picked_up_step, config_write_step,
    followed_site_primary, lab_config_read, leader_running_as, read_before_planning, read_config,
    refuse_unless_every_member_can, refuse_what_patroni_would_not_use, standby_switch_step,
};
pub(crate) use consul::{
    consul_routes_leader, consul_routes_replica, consul_routing, registers_services,
};
pub use dcs::{DeleteTreeCommand, DeleteTreeParams};
pub(crate) use dcs::{delete_tree, delete_tree_of};
pub(crate) use host::Host;
pub(crate) use maintenance::{maintenance, maintenance_step};
pub(crate) use rebuild::{Groups, member_names, start_verified, stop_everywhere};
pub(crate) use restart::{RestartOf, restart_steps};
pub(crate) use service::{capitalized, command_step, with_verification};
pub(crate) use silence::silenced;
pub(crate) use switch::{
    Switch, candidate_ready, checkpoint_step, choose_candidate, leads_after_handover, promotable,
    rejoin_step, switchover_step,
};
pub(crate) use waits::wait_streaming_step;

/// The lag under which a replica counts as caught up, unless the operator says otherwise:
/// Patroni's default `maximum_lag_on_failover`.
pub const DEFAULT_MAX_LAG_BYTES: u64 = 1024 * 1024;

/// How long a silence outlives the deadline of the work it covers: the run's last steps (and an
/// operator reading the outcome) need a few minutes after the wait.
pub(crate) const SILENCE_MARGIN: Duration = Duration::from_mins(15);

/// The frame every plan shares: where, and as whom.
pub(crate) fn frame(
    target: &ClusterTarget,
    view: &ClusterView,
    title: String,
    summary: String,
) -> Plan {
    Plan {
        // The registry names the runbook and records its parameters.
        runbook: String::new(),
        title,
        summary,
        environment: target.environment.clone(),
        cluster: target.cluster.clone(),
        scope: view.scope.clone(),
        params: serde_json::Value::Null,
        rest_user: target.rest.auth.as_ref().map(|auth| auth.username.clone()),
        prechecks: Vec::new(),
        assumes: Vec::new(),
        steps: Vec::new(),
        rollback: None,
        parallel: Vec::new(),
        compensations: Vec::new(),
        windows: Vec::new(),
        members: view
            .members
            .iter()
            .map(|member| member.name.clone())
            .collect(),
    }
}

/// The member by name, or the error listing the members there are.
pub(crate) fn member<'a>(view: &'a ClusterView, name: &str) -> Result<&'a MemberView, PlanError> {
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
pub(crate) fn remote_host<'a>(
    target: &'a ClusterTarget,
    view: &ClusterView,
    name: &str,
) -> Result<&'a str, PlanError> {
    member(view, name)?;
    Ok(target.remote_host(name)?)
}

/// Fails while an inactive replication slot on `member` holds back more than `bytes` of WAL
/// (seed 001: slots of members that are gone fill the leader's disk). Read-only.
pub(crate) fn inactive_slots_step(
    target: &ClusterTarget,
    view: &ClusterView,
    member: &str,
    bytes: u64,
) -> Result<crate::plan::Step, PlanError> {
    use crate::plan::{Action, Gate, Idempotency, SqlAction, SqlStatement, Step};
    Ok(Step {
        id: format!("inactive-slots-{member}"),
        title: format!(
            "Check that no inactive replication slot on {member} holds back more than {} of WAL",
            crate::ui::human_bytes(bytes)
        ),
        action: Action::Sql(SqlAction {
            member: member.into(),
            host: remote_host(target, view, member)?.into(),
            statement: SqlStatement::InactiveSlotsRetainAtMost { bytes },
        }),
        gate: Gate::None,
        prechecks: Vec::new(),
        verify: None,
        idempotency: Idempotency::SafeToRepeat,
    })
}

/// A member the plan sends credentials to (REST writes): one pgha was given, never one only
/// the DCS lists. A member unknown to the cluster is reported as such first.
pub(crate) fn listed<'a>(
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
pub(crate) fn cluster_api(view: &ClusterView) -> Result<&MemberView, PlanError> {
    view.leader
        .as_deref()
        .and_then(|leader| view.member(leader))
        .filter(|leader| leader.is_reachable())
        .or_else(|| view.members.iter().find(|member| member.is_reachable()))
        .ok_or_else(|| PlanError::Refused("no member's REST API answers".into()))
}

/// When the member's PostgreSQL started, as it reports it.
pub(crate) fn postmaster_started(member: &MemberView) -> Option<String> {
    member
        .status
        .as_ref()
        .ok()
        .and_then(|status| status.postmaster_start_time.clone())
}

/// The same for the reader: `unknown` where the member does not report it.
pub(crate) fn started_at(member: &MemberView) -> String {
    postmaster_started(member).unwrap_or_else(|| "unknown".into())
}

/// The plan assumes the cluster it was made for: a resumed run refuses another database (a
/// cluster rebuilt, or another one under the same name).
pub(crate) fn assume_identity(plan: &mut Plan, view: &ClusterView) {
    if let Some(identifier) = &view.system_identifier {
        plan.assumes.push(Check::SystemIdentifier {
            identifier: identifier.clone(),
        });
    }
}

/// The environment's service control, or the refusal saying that pgha does not know how `to`
/// there (the inventory's `service:` section is missing).
pub(crate) fn service_control<'a>(
    target: &'a ClusterTarget,
    to: &str,
) -> Result<&'a ServiceControl, PlanError> {
    target.service.as_ref().ok_or_else(|| {
        PlanError::Refused(format!(
            "{}: environment {} has no `service:` section: pgha does not know how to {to} there",
            target.origin, target.environment
        ))
    })
}
