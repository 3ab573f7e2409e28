//! `pgha scale-down --member M`: the mirror of scale-up. A replica is drained (its Patroni
//! tagged `noloadbalance`, so `/replica` answers 503 and load balancers and Consul clients stop
//! sending it reads) — by pgha over SSH where the inventory names the member's Patroni
//! configuration, else by hand — its alerts silenced, Patroni stopped and disabled through the
//! service control, and the run ends when the member has left the DCS, every member agrees, and
//! Consul no longer lists it. Never the leader, never the last replica.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::steps::{
    Host, SILENCE_MARGIN, assume_identity, command_step, consul_routing, frame, member,
    remote_host, service_control, silenced, with_verification,
};
use super::{Example, ExampleLab, PlanError, Runbook};
use crate::inventory::ClusterTarget;
use crate::observe::{ClusterView, MemberView};
use crate::plan::{
    Action, Check, Gate, Idempotency, ManualAction, PatroniAction, PatroniCall, Plan, Progress,
    Step, Wait,
};
use crate::remote::ServiceAction;

/// Reads drain within minutes; an operator can give longer.
const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_mins(10);
/// Patroni's member key expires `ttl` (30 s by default) after it stopped.
const LEAVE_TIMEOUT: Duration = Duration::from_mins(2);
const STOP_TIMEOUT: Duration = Duration::from_mins(1);

/// `pgha scale-down`.
pub struct ScaleDown;

// Which replica leaves, and whether its reads are drained first.
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
pub struct Params {
    /// The replica to remove (never the leader, never the last replica)
    #[arg(long, value_name = "NAME", value_parser = crate::flags::name)]
    pub member: String,
    /// Skip the drain (no load balancer sends this member reads)
    #[arg(long = "no-drain", action = clap::ArgAction::SetFalse)]
    pub drain: bool,
    /// How long a drain by hand may take to show [default: 10m]
    #[arg(long, value_name = "DURATION", value_parser = crate::flags::duration)]
    #[serde(with = "crate::duration::optional_text")]
    pub drain_timeout: Option<Duration>,
    /// When it was asked for (`20261203-041500`): names the copy of the Patroni configuration
    /// the drain edits (planners read no clock).
    #[arg(skip = crate::flags::request_label())]
    #[serde(default)]
    pub label: String,
}

impl Runbook for ScaleDown {
    const NAME: &'static str = "scale-down";
    const ABOUT: &'static str =
        "Remove a replica: drain it, stop and disable Patroni, wait until it left the cluster";
    type Params = Params;

    fn plan(
        target: &ClusterTarget,
        view: &ClusterView,
        params: &Params,
    ) -> Result<Plan, PlanError> {
        plan(target, view, params)
    }

    fn examples() -> Vec<Example<Params>> {
        vec![Example {
            file: "scale-down",
            params: Params {
                member: "node3".into(),
                drain: true,
                drain_timeout: None,
                label: "20261203-041500".into(),
            },
            lab: ExampleLab::Lab,
        }]
    }
}

fn plan(target: &ClusterTarget, view: &ClusterView, params: &Params) -> Result<Plan, PlanError> {
    let Params {
        member: name,
        drain,
        drain_timeout,
        label,
    } = params;
    let leaving = member(view, name)?;
    let host = remote_host(target, view, name)?;
    let control = service_control(target, "stop Patroni")?;
    let drain_timeout = drain_timeout.unwrap_or(DEFAULT_DRAIN_TIMEOUT);
    let mut plan = frame(
        target,
        view,
        format!(
            "Scale down cluster {}: remove the replica {name}",
            target.cluster
        ),
        format!(
            "Removes {name} ({}) from cluster {}: drained from load balancing, then Patroni is stopped and disabled on it; the run ends when it has left the DCS and every member agrees. Its data directory is kept.",
            host, target.cluster
        ),
    );
    plan.prechecks = prechecks(view, name);
    assume_identity(&mut plan, view);
    if *drain {
        let host = Host::new(target, view, name)?;
        let label = if label.is_empty() { "drain" } else { label };
        match host.set_tag("noloadbalance", true, label)? {
            Some(tag) => plan.steps.extend([tag, reload_step(leaving)]),
            None => plan.steps.push(drain_by_hand(name, drain_timeout)),
        }
    }
    let stop = Step {
        gate: Gate::TypeToConfirm {
            question: format!(
                "Stop Patroni and PostgreSQL on {name} and remove it from the cluster?"
            ),
            expected: name.clone(),
        },
        ..with_verification(
            command_step(target, control, ServiceAction::Stop, name)?,
            vec![
                Check::NotLeader {
                    member: name.clone(),
                },
                Check::HealthyLeader,
            ],
            vec![Check::Unreachable {
                member: name.clone(),
            }],
            STOP_TIMEOUT,
        )
    };
    let disable = Step {
        gate: Gate::None,
        ..command_step(target, control, ServiceAction::Disable, name)?
    };
    let mut removal = vec![stop, disable, left_step(name)];
    removal.extend(consul_routing(
        view,
        format!("consul-deregistered-{name}"),
        format!("Wait until Consul no longer lists {name}"),
        vec![Check::ConsulDeregistered {
            member: name.clone(),
        }],
    ));
    silenced(
        &mut plan,
        target,
        leaving,
        "leaving the cluster",
        drain_timeout
            .saturating_add(LEAVE_TIMEOUT)
            .saturating_add(SILENCE_MARGIN),
        removal,
    );
    plan.rollback = Some(format!(
        "`pgha scale-up --member {name}`: its data directory was kept, so it rejoins without a full copy when its timeline still fits."
    ));
    Ok(plan)
}

/// A replica that answers, with at least one other replica streaming: the cluster keeps a
/// failover target.
fn prechecks(view: &ClusterView, name: &str) -> Vec<Check> {
    let others: Vec<Check> = view
        .members
        .iter()
        .filter(|member| member.name != name && !member.is_leader())
        .map(|member| Check::Streaming {
            member: member.name.clone(),
        })
        .collect();
    vec![
        Check::HealthyLeader,
        Check::TopologyAgreed,
        Check::NotLeader {
            member: name.into(),
        },
        Check::Registered {
            member: name.into(),
        },
        Check::Reachable {
            member: name.into(),
        },
        Check::Any { checks: others },
    ]
}

/// `POST /reload`: Patroni reads its configuration again and reports the new tag.
fn reload_step(member: &MemberView) -> Step {
    let tagged = vec![Check::Tagged {
        member: member.name.clone(),
        tag: "noloadbalance".into(),
    }];
    Step {
        id: format!("reload-{}", member.name),
        title: format!(
            "Reload {}'s Patroni so that it applies the tag",
            member.name
        ),
        action: Action::Patroni(PatroniAction {
            member: member.name.clone(),
            api_url: member.api_url.clone(),
            call: PatroniCall::Reload,
        }),
        gate: Gate::None,
        prechecks: Vec::new(),
        verify: Some(Wait {
            until: tagged.clone(),
            fail_if: Vec::new(),
            timeout: Duration::from_mins(1),
            poll: Duration::from_secs(1),
            progress: Progress::Checks,
            stuck: Vec::new(),
        }),
        idempotency: Idempotency::CheckStateFirst { done_when: tagged },
    }
}

/// By hand where pgha cannot edit the member's configuration: set `noloadbalance`, reload.
/// Verified by Patroni reporting the tag.
fn drain_by_hand(name: &str, timeout: Duration) -> Step {
    let drained = vec![Check::Tagged {
        member: name.into(),
        tag: "noloadbalance".into(),
    }];
    Step {
        id: format!("drain-{name}"),
        title: format!("Drain {name} from load balancing"),
        action: Action::Manual(ManualAction {
            instructions: vec![
                format!("set `tags: {{noloadbalance: true}}` in {name}'s Patroni configuration and reload Patroni (`systemctl reload patroni` or `POST /reload`)"),
                "its `/replica` health check then answers 503: HAProxy, PgBouncer pools and Consul clients stop sending it reads".into(),
                "wait until its client connections have drained (the load balancer's backend count at 0)".into(),
            ],
        }),
        gate: Gate::ByHand {
            question: format!("Is {name} drained (tagged noloadbalance, connections at 0)?"),
            name: "drain".into(),
            skip_flag: Some("--no-drain".into()),
        },
        prechecks: Vec::new(),
        verify: Some(Wait {
            until: drained.clone(),
            fail_if: Vec::new(),
            timeout,
            poll: Duration::from_secs(1),
            progress: Progress::Checks,
            stuck: Vec::new(),
        }),
        idempotency: Idempotency::CheckStateFirst { done_when: drained },
    }
}

fn left_step(name: &str) -> Step {
    Step::wait(
        format!("left-{name}"),
        format!("Wait until {name} has left the DCS"),
        Wait {
            until: vec![
                Check::NotRegistered {
                    member: name.into(),
                },
                Check::TopologyAgreed,
            ],
            fail_if: Vec::new(),
            timeout: LEAVE_TIMEOUT,
            poll: Duration::from_secs(1),
            progress: Progress::Checks,
            stuck: Vec::new(),
        },
    )
}
