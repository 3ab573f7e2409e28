//! `pgha service stop|start|restart --member M`: Patroni on one member, through the
//! environment's service control (systemd over SSH, kubectl, the lab). Never the leader for stop
//! and restart. Verified by the cluster, not by the command's exit status alone: stopped means
//! the member's REST API no longer answers; started means it answers and streams again.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::steps::{
    DEFAULT_MAX_LAG_BYTES, assume_identity, capitalized, command_step, consul_routes_replica,
    consul_routing, frame, member, remote_host, service_control, started_at, with_verification,
};
use super::{Example, ExampleLab, PlanError, Runbook};
use crate::inventory::ClusterTarget;
use crate::observe::ClusterView;
use crate::plan::{Check, Plan, Step, Wait};
use crate::remote::ServiceAction;

/// A member catching up after a start: minutes on a busy database.
const DEFAULT_TIMEOUT: Duration = Duration::from_mins(10);

/// `pgha service`.
pub struct Service;

// What to do to Patroni, on which member, and when a started member counts as caught up.
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
pub struct Params {
    #[arg(value_enum)]
    pub action: Verb,
    /// The member (never the leader, to stop or restart)
    #[arg(long, value_name = "NAME", value_parser = crate::flags::name)]
    pub member: String,
    /// A started member lagging more counts as not caught up
    #[arg(long, value_name = "BYTES", default_value = "1MiB", value_parser = crate::flags::bytes)]
    pub max_lag: u64,
    /// Deadline for the member to stream again [default: 10m]
    #[arg(long, value_name = "DURATION", value_parser = crate::flags::duration)]
    #[serde(with = "crate::duration::optional_text")]
    pub timeout: Option<Duration>,
}

/// What the operator asks of Patroni on the member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verb {
    Stop,
    Start,
    Restart,
    Enable,
    Disable,
}

impl From<Verb> for ServiceAction {
    fn from(action: Verb) -> Self {
        match action {
            Verb::Stop => ServiceAction::Stop,
            Verb::Start => ServiceAction::Start,
            Verb::Restart => ServiceAction::Restart,
            Verb::Enable => ServiceAction::Enable,
            Verb::Disable => ServiceAction::Disable,
        }
    }
}

impl Runbook for Service {
    const NAME: &'static str = "service";
    const ABOUT: &'static str =
        "Stop, start or restart Patroni on one member through the environment's service control";
    type Params = Params;

    fn deadline(params: &mut Params) -> Option<&mut Option<Duration>> {
        Some(&mut params.timeout)
    }

    fn plan(
        target: &ClusterTarget,
        view: &ClusterView,
        params: &Params,
    ) -> Result<Plan, PlanError> {
        plan(target, view, params)
    }

    fn examples() -> Vec<Example<Params>> {
        let on_node3 = |action| Params {
            action,
            member: "node3".into(),
            max_lag: DEFAULT_MAX_LAG_BYTES,
            timeout: None,
        };
        vec![
            Example {
                file: "service-stop",
                params: on_node3(Verb::Stop),
                lab: ExampleLab::Lab,
            },
            Example {
                file: "service-start",
                params: on_node3(Verb::Start),
                lab: ExampleLab::Lab,
            },
        ]
    }
}

fn plan(target: &ClusterTarget, view: &ClusterView, params: &Params) -> Result<Plan, PlanError> {
    let Params {
        action,
        member: name,
        max_lag,
        timeout,
    } = params;
    let member_view = member(view, name)?;
    remote_host(target, view, name)?;
    let control = service_control(target, "stop or start Patroni")?;
    let action = &ServiceAction::from(*action);
    let timeout = timeout.unwrap_or(DEFAULT_TIMEOUT);
    let word = action.word();
    let mut plan = frame(
        target,
        view,
        format!(
            "{} Patroni on {name} in cluster {} ({})",
            capitalized(word),
            target.cluster,
            control.kind()
        ),
        summary(*action, name),
    );
    assume_identity(&mut plan, view);
    let command = command_step(target, control, *action, name)?;
    match action {
        ServiceAction::Stop => plan_stop(&mut plan, view, name, command),
        ServiceAction::Start => {
            plan.prechecks = vec![Check::HealthyLeader];
            plan.steps.push(with_verification(
                command,
                Vec::new(),
                vec![Check::Reachable {
                    member: name.clone(),
                }],
                Duration::from_mins(1),
            ));
            plan.steps.push(streaming_step(name, *max_lag, timeout));
            plan.steps.extend(consul_routes_replica(view, name));
            plan.rollback = Some(format!("`pgha service stop --member {name}`"));
        }
        ServiceAction::Restart => {
            plan.prechecks = vec![
                Check::HealthyLeader,
                Check::NotLeader {
                    member: name.clone(),
                },
            ];
            let restarted = Check::RestartedSince {
                member: name.clone(),
                before: started_at(member_view),
            };
            plan.steps.push(with_verification(
                command,
                vec![Check::NotLeader {
                    member: name.clone(),
                }],
                vec![
                    Check::Reachable {
                        member: name.clone(),
                    },
                    restarted,
                ],
                timeout,
            ));
            plan.steps.push(streaming_step(name, *max_lag, timeout));
            plan.steps.extend(consul_routes_replica(view, name));
        }
        ServiceAction::Enable | ServiceAction::Disable => {
            plan.steps.push(command);
        }
    }
    Ok(plan)
}

/// Stop: never the leader; done when the REST API is gone (and Consul no longer lists it).
fn plan_stop(plan: &mut Plan, view: &ClusterView, name: &String, command: Step) {
    plan.prechecks = vec![
        Check::HealthyLeader,
        Check::NotLeader {
            member: name.clone(),
        },
    ];
    plan.steps.push(with_verification(
        command,
        vec![Check::NotLeader {
            member: name.clone(),
        }],
        vec![Check::Unreachable {
            member: name.clone(),
        }],
        Duration::from_mins(1),
    ));
    plan.steps.extend(consul_routing(
        view,
        format!("consul-deregistered-{name}"),
        format!("Wait until Consul no longer lists {name}"),
        vec![Check::ConsulDeregistered {
            member: name.clone(),
        }],
    ));
    plan.rollback = Some(format!("`pgha service start --member {name}`"));
}

fn summary(action: ServiceAction, name: &str) -> String {
    match action {
        ServiceAction::Stop => format!(
            "Patroni on {name} stops through the environment's service control. Unless the cluster is paused, \
             PostgreSQL on {name} stops too and {name} serves no reads; its DCS key expires after `ttl`."
        ),
        ServiceAction::Start => format!(
            "Patroni on {name} starts and rejoins the cluster; the run ends when {name} streams again."
        ),
        ServiceAction::Restart => format!(
            "Patroni and PostgreSQL on {name} restart; the run ends when {name} streams again."
        ),
        ServiceAction::Enable => format!("Patroni on {name} is enabled to start at boot."),
        ServiceAction::Disable => format!("Patroni on {name} is kept from starting at boot."),
    }
}

fn streaming_step(name: &str, max_lag: u64, timeout: Duration) -> Step {
    Step::wait(
        format!("wait-streaming-{name}"),
        format!("Wait until {name} streams"),
        Wait::for_member(
            Check::caught_up(name, max_lag).into(),
            timeout,
            Duration::from_secs(1),
            name,
        ),
    )
}
