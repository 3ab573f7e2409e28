//! `pgha service stop|start|restart --member M`: Patroni on one member, through the
//! environment's service control (systemd over SSH, kubectl, the lab). Never the leader for stop
//! and restart. Verified by the cluster, not by the command's exit status alone: stopped means
//! the member's REST API no longer answers; started means it answers and streams again.

use std::time::Duration;

use super::{Params, PlanError, member, new_plan, remote_host, started_at};
use crate::inventory::ClusterTarget;
use crate::observe::ClusterView;
use crate::plan::{Action, Check, Gate, Idempotency, Plan, Progress, RemoteAction, Step, Wait};
use crate::remote::{ServiceAction, ServiceControl};

/// A member catching up after a start: minutes on a busy database.
const DEFAULT_TIMEOUT: Duration = Duration::from_mins(10);
/// systemctl, kubectl and the lab answer within seconds; a hung one is cut off.
const COMMAND_TIMEOUT: Duration = Duration::from_mins(2);

pub(super) fn plan(
    target: &ClusterTarget,
    view: &ClusterView,
    params: &Params,
) -> Result<Plan, PlanError> {
    let Params::Service {
        action,
        member: name,
        max_lag,
        timeout,
    } = params
    else {
        unreachable!("dispatched by runbook")
    };
    let member_view = member(view, name)?;
    remote_host(target, view, name)?;
    let control = target.service.as_ref().ok_or_else(|| {
        PlanError::Refused(format!(
            "{}: environment {} has no `service:` section: pgha does not know how to stop or start Patroni there",
            target.origin, target.environment
        ))
    })?;
    let timeout = timeout.unwrap_or(DEFAULT_TIMEOUT);
    let word = action.word();
    let mut plan = new_plan(
        target,
        view,
        params,
        format!(
            "{} Patroni on {name} in cluster {} ({})",
            capitalized(word),
            target.cluster,
            control.kind()
        ),
        summary(*action, name),
    );
    if let Some(identifier) = &view.system_identifier {
        plan.assumes.push(Check::SystemIdentifier {
            identifier: identifier.clone(),
        });
    }
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
            plan.steps.extend(super::consul_routes_replica(view, name));
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
            plan.steps.extend(super::consul_routes_replica(view, name));
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
    plan.steps.extend(super::consul_routing(
        view,
        format!("consul-deregistered-{name}"),
        format!("Wait until Consul no longer lists {name}"),
        vec![Check::ConsulDeregistered {
            member: name.clone(),
        }],
    ));
    plan.rollback = Some(format!("`pgha service start --member {name}`"));
}

fn capitalized(word: &str) -> String {
    let mut characters = word.chars();
    characters.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(characters).collect()
    })
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

/// The service command for `action` on the inventory member `name`, at the inventory's host,
/// behind a confirmation.
pub(super) fn command_step(
    target: &ClusterTarget,
    control: &ServiceControl,
    action: ServiceAction,
    name: &str,
) -> Result<Step, PlanError> {
    let host = target.remote_host(name)?;
    let (transport, command) = control
        .command(action, name)
        .map_err(|error| PlanError::Refused(error.to_string()))?;
    Ok(Step {
        id: format!("{}-patroni-{name}", action.word()),
        title: format!("{} Patroni on {name}", capitalized(action.word())),
        action: Action::Remote(RemoteAction {
            member: name.into(),
            host: host.into(),
            transport,
            command,
            timeout: COMMAND_TIMEOUT,
        }),
        gate: Gate::Confirm {
            question: format!("{} Patroni on {name}?", capitalized(action.word())),
        },
        prechecks: Vec::new(),
        verify: None,
        idempotency: Idempotency::SafeToRepeat,
    })
}

/// The step re-checks `prechecks`, and is done — and verified — when `done` holds.
pub(super) fn with_verification(
    step: Step,
    prechecks: Vec<Check>,
    done: Vec<Check>,
    timeout: Duration,
) -> Step {
    let member = match &step.action {
        Action::Remote(action) => action.member.clone(),
        _ => String::new(),
    };
    Step {
        prechecks,
        verify: Some(Wait {
            until: done.clone(),
            fail_if: Vec::new(),
            timeout,
            poll: Duration::from_millis(500),
            progress: Progress::MemberState { member },
        }),
        idempotency: Idempotency::CheckStateFirst { done_when: done },
        ..step
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
