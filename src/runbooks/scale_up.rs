//! `pgha scale-up --member M`: GitLab's "Scale Up Patroni" (seed 000) — add a replica that is
//! in the inventory but not yet in the cluster. Provisioning is the operator's (Terraform,
//! Chef): pgha shows what to check and waits for a yes. Then: SSH and disk space on the new
//! host, a silence of its alerts, Patroni enabled and started through the environment's service
//! control, the member followed from `creating replica` to `streaming` with the leader's
//! base-backup progress, caught up, every member agreeing on the membership, and, where Patroni
//! registers services in Consul, the member passing as a replica there.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::steps::{
    DEFAULT_MAX_LAG_BYTES, Host, SILENCE_MARGIN, assume_identity, command_step,
    consul_routes_replica, frame, member, registers_services, remote_host, service_control,
    silenced, wait_streaming_step, with_verification,
};
use super::{Example, ExampleLab, PlanError, Probe, Runbook, leader_database_size};
use crate::inventory::ClusterTarget;
use crate::observe::ClusterView;
use crate::plan::{Action, Check, Gate, Idempotency, ManualAction, Plan, Step, Wait};
use crate::remote::ServiceAction;
use crate::ui::human_bytes;

/// A base backup of a large database takes hours (the seed: "in the order of 6h").
const DEFAULT_TIMEOUT: Duration = Duration::from_hours(8);
/// Patroni registers within a loop or two of starting.
const REGISTER_TIMEOUT: Duration = Duration::from_mins(2);

/// `pgha scale-up`.
pub struct ScaleUp;

// Which member joins, how long its copy may take, and how much room it needs.
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
pub struct Params {
    /// The new member, as the inventory names it
    #[arg(long, value_name = "NAME", value_parser = crate::flags::name)]
    pub member: String,
    /// The replica counts as caught up at this lag
    #[arg(long, value_name = "BYTES", default_value = "1MiB", value_parser = crate::flags::bytes)]
    pub max_lag: u64,
    /// Deadline of the copy and catch-up [default: 8h, or the inventory's timeouts.runbooks.scale-up]
    #[arg(long, value_name = "DURATION", value_parser = crate::flags::duration)]
    #[serde(with = "crate::duration::optional_text")]
    pub timeout: Option<Duration>,
    /// Free space the new host needs [default: the leader's databases, measured]
    #[arg(long, value_name = "BYTES", value_parser = crate::flags::bytes)]
    pub need: Option<u64>,
}

impl Runbook for ScaleUp {
    const NAME: &'static str = "scale-up";
    const ABOUT: &'static str =
        "Add a replica: a member in the inventory, not yet in the cluster (GitLab's scale-up)";
    type Params = Params;

    fn deadline(params: &mut Params) -> Option<&mut Option<Duration>> {
        Some(&mut params.timeout)
    }

    /// The copy's size when the operator gave none: the leader's databases, where pgha has
    /// SQL access.
    async fn measure(
        mut params: Params,
        _target: &ClusterTarget,
        view: &ClusterView,
        probe: &impl Probe,
    ) -> Result<Params, PlanError> {
        if params.need.is_some() {
            return Ok(params);
        }
        if view.leader.as_deref().and_then(|leader| view.member(leader)).is_none() {
            return Err(PlanError::Refused(
                "the cluster has no leader: fix that first".into(),
            ));
        }
        params.need = leader_database_size(view, probe).await?;
        Ok(params)
    }

    fn plan(
        target: &ClusterTarget,
        view: &ClusterView,
        params: &Params,
    ) -> Result<Plan, PlanError> {
        plan(target, view, params)
    }

    fn examples() -> Vec<Example<Params>> {
        vec![Example {
            file: "scale-up",
            params: Params {
                member: "node4".into(),
                max_lag: DEFAULT_MAX_LAG_BYTES,
                timeout: None,
                need: Some(770 * 1024 * 1024),
            },
            lab: ExampleLab::LabWithSpare,
        }]
    }
}

fn plan(target: &ClusterTarget, view: &ClusterView, params: &Params) -> Result<Plan, PlanError> {
    let Params {
        member: name,
        max_lag,
        timeout,
        need,
    } = params;
    let new_member = member(view, name)?;
    let new_host = remote_host(target, view, name)?;
    let leader = view
        .leader
        .clone()
        .ok_or_else(|| PlanError::Refused("the cluster has no leader: fix that first".into()))?;
    let leader_host = member(view, &leader)?.host.clone();
    let need = need.ok_or_else(|| {
        PlanError::Refused(format!(
            "cannot size the copy: add a `postgres:` section to environment {} (pgha measures the leader's databases) or pass --need BYTES",
            target.environment
        ))
    })?;
    let control = service_control(target, "start Patroni")?;
    let host = Host::new(target, view, name)?;
    let timeout = timeout.unwrap_or(DEFAULT_TIMEOUT);
    let mut plan = frame(
        target,
        view,
        format!(
            "Scale up cluster {}: add {name} as a replica",
            target.cluster
        ),
        format!(
            "Adds {name} ({}) to cluster {}: after provisioning, Patroni is enabled and started on it; it registers in the DCS, copies {} from {leader} with a base backup and streams from it. The run ends when {name} lags at most {} and every member lists it.",
            new_host,
            target.cluster,
            human_bytes(need),
            human_bytes(*max_lag)
        ),
    );
    plan.prechecks = prechecks(view, name);
    assume_identity(&mut plan, view);
    plan.steps.push(provisioning_step(target, name, new_host));
    plan.steps.push(host.reachable()?);
    plan.steps.extend(installed_step(control, name, new_host)?);
    plan.steps.push(host.free_space_at_least(need)?);
    let enable = command_step(target, control, ServiceAction::Enable, name)?;
    let start = with_verification(
        command_step(target, control, ServiceAction::Start, name)?,
        vec![Check::HealthyLeader],
        vec![Check::Registered {
            member: name.clone(),
        }],
        REGISTER_TIMEOUT,
    );
    let mut joined = vec![
        Step {
            gate: Gate::None,
            ..enable
        },
        start,
        wait_streaming_step(name, &leader, leader_host, *max_lag, timeout),
        agreement_step(name),
    ];
    joined.extend(consul_routes_replica(view, name));
    silenced(
        &mut plan,
        target,
        new_member,
        "joining the cluster",
        timeout.saturating_add(SILENCE_MARGIN),
        joined,
    );
    if !registers_services(view) {
        plan.steps.push(load_balancing_step(name));
    }
    plan.rollback = Some(format!(
        "`pgha service stop --member {name}` and `pgha service disable --member {name}`; its DCS key expires after `ttl` (or remove it with `patronictl remove` only for the whole cluster: never needed here)."
    ));
    Ok(plan)
}

/// A healthy leader, every other member answering and agreeing, and the new member known to
/// the inventory but neither running Patroni nor registered.
fn prechecks(view: &ClusterView, name: &str) -> Vec<Check> {
    let mut checks = vec![Check::HealthyLeader, Check::TopologyAgreed];
    checks.extend(
        view.members
            .iter()
            .filter(|member| member.name != name && member.dcs.is_some())
            .map(|member| Check::Reachable {
                member: member.name.clone(),
            }),
    );
    checks.push(Check::NotRegistered {
        member: name.into(),
    });
    checks.push(Check::Unreachable {
        member: name.into(),
    });
    checks
}

fn provisioning_step(target: &ClusterTarget, name: &str, host: &str) -> Step {
    Step {
        id: format!("provisioned-{name}"),
        title: format!("Confirm that {name} is provisioned"),
        action: Action::Manual(ManualAction {
            instructions: vec![
                format!("the host {host} exists (Terraform: the Patroni node count was raised and applied)"),
                "configuration management converged on it (Chef): Patroni installed and configured, not started".into(),
                format!(
                    "its Patroni configuration names scope {} and the cluster's DCS",
                    target.cluster
                ),
            ],
        }),
        gate: Gate::ByHand {
            question: format!("Is {name} ({host}) provisioned and Patroni configured but not started?"),
            name: "provisioning".into(),
            skip_flag: None,
        },
        prechecks: Vec::new(),
        verify: None,
        idempotency: Idempotency::SafeToRepeat,
    }
}

/// Patroni's unit (or the lab's configuration) is there, where the platform can tell. `host`
/// is the inventory's (see `remote_host`).
fn installed_step(
    control: &crate::remote::ServiceControl,
    name: &str,
    host: &str,
) -> Result<Option<Step>, PlanError> {
    let check = control
        .installed(name)
        .map_err(|error| PlanError::Refused(error.to_string()))?;
    Ok(check.map(|(transport, command)| Step {
        id: format!("installed-{name}"),
        title: format!("Check that Patroni is installed on {name}"),
        action: Action::Remote(crate::plan::RemoteAction {
            member: name.into(),
            host: host.into(),
            transport,
            command,
            timeout: Duration::from_mins(1),
        }),
        gate: Gate::None,
        prechecks: Vec::new(),
        verify: None,
        idempotency: Idempotency::SafeToRepeat,
    }))
}

/// Without Consul service registration nothing routes reads to the new member by itself: the
/// seed's last step, by hand ("added to load-balancing to start receiving requests").
fn load_balancing_step(name: &str) -> Step {
    Step {
        id: format!("load-balancing-{name}"),
        title: format!("Add {name} to load balancing"),
        action: Action::Manual(ManualAction {
            instructions: vec![
                format!(
                    "add {name} to the read pool (HAProxy backend, PgBouncer, the application's replica list)"
                ),
                format!("check that it receives queries (`pg_stat_activity` on {name})"),
            ],
        }),
        gate: Gate::ByHand {
            question: format!("Is {name} in the load balancing pool?"),
            name: "load-balancing".into(),
            skip_flag: None,
        },
        prechecks: Vec::new(),
        verify: None,
        idempotency: Idempotency::SafeToRepeat,
    }
}

/// The seed's "the list is identical on all nodes": every member, the new one included, lists
/// the same members and the same leader.
fn agreement_step(name: &str) -> Step {
    Step::wait(
        format!("agreement-{name}"),
        format!("Wait until every member lists {name}"),
        Wait {
            until: vec![
                Check::Registered {
                    member: name.into(),
                },
                Check::TopologyAgreed,
            ],
            fail_if: Vec::new(),
            timeout: Duration::from_mins(1),
            poll: Duration::from_millis(500),
            progress: crate::plan::Progress::Checks,
            stuck: Vec::new(),
        },
    )
}
