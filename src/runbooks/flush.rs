//! `pgha flush switchover|restart [--member M]`: cancel what is scheduled, as patronictl's
//! `flush`, verified. A scheduled switchover is cancelled through the cluster (`DELETE
//! /switchover`), a scheduled restart on each member that has one, or on the member named
//! (`DELETE /restart`); each is verified by observation, not by the answer. Nothing scheduled is
//! a refusal: there is nothing to flush.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::steps::{cluster_api, frame, member};
use super::{Example, ExampleLab, PlanError, Runbook};
use crate::inventory::ClusterTarget;
use crate::observe::ClusterView;
use crate::plan::{Action, Check, Gate, Idempotency, PatroniAction, PatroniCall, Plan, Step, Wait};

/// Patroni drops the schedule from the DCS within a loop.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(30);

/// `pgha flush`.
pub struct Flush;

/// What is cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheduled {
    /// The scheduled switchover
    Switchover,
    /// Scheduled restarts
    Restart,
}

// What to cancel, and on which member for a restart.
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
pub struct Params {
    /// What to cancel
    #[arg(value_enum)]
    pub what: Scheduled,
    /// For restart: only this member's [default: every member with one]
    #[arg(long, value_name = "NAME", value_parser = crate::flags::name)]
    pub member: Option<String>,
}

impl Runbook for Flush {
    const NAME: &'static str = "flush";
    const ABOUT: &'static str =
        "Cancel a scheduled switchover, or scheduled restarts (patronictl flush), verified";
    type Params = Params;

    fn plan(
        target: &ClusterTarget,
        view: &ClusterView,
        params: &Params,
    ) -> Result<Plan, PlanError> {
        match params.what {
            Scheduled::Switchover => switchover(target, view, params.member.as_deref()),
            Scheduled::Restart => restarts(target, view, params.member.as_deref()),
        }
    }

    fn examples() -> Vec<Example<Params>> {
        vec![Example {
            file: "flush-switchover",
            params: Params {
                what: Scheduled::Switchover,
                member: None,
            },
            lab: ExampleLab::LabWithScheduledSwitchover,
        }]
    }
}

fn switchover(
    target: &ClusterTarget,
    view: &ClusterView,
    member: Option<&str>,
) -> Result<Plan, PlanError> {
    if member.is_some() {
        return Err(PlanError::Refused(
            "--member goes with `flush restart`: a switchover is scheduled for the cluster".into(),
        ));
    }
    let Some(scheduled) = &view.scheduled_switchover else {
        return Err(PlanError::Refused(format!(
            "no switchover is scheduled in {}: nothing to flush",
            target.cluster
        )));
    };
    let at = scheduled.at.clone().unwrap_or_else(|| "an unknown time".into());
    let mut plan = frame(
        target,
        view,
        format!("Cancel the switchover of {} scheduled at {at}", target.cluster),
        format!(
            "The switchover {} scheduled at {at} does not happen; the leader stays.",
            scheduled
                .to
                .as_ref()
                .map_or_else(String::new, |to| format!("to {to}"))
        ),
    );
    let api = cluster_api(view)?;
    plan.prechecks.push(Check::Reachable {
        member: api.name.clone(),
    });
    if let Some(to) = &scheduled.to {
        plan.prechecks
            .push(Check::SwitchoverScheduled { to: to.clone() });
    }
    plan.steps.push(cancel_step(
        "flush-switchover".into(),
        format!("Cancel the switchover scheduled at {at}"),
        api,
        PatroniCall::CancelSwitchover,
        Check::NoSwitchoverScheduled,
    ));
    Ok(plan)
}

fn restarts(
    target: &ClusterTarget,
    view: &ClusterView,
    only: Option<&str>,
) -> Result<Plan, PlanError> {
    let scheduled: Vec<_> = match only {
        Some(name) => vec![member(view, name)?],
        None => view
            .members
            .iter()
            .filter(|member| member.scheduled_restart().is_some())
            .collect(),
    };
    let scheduled: Vec<_> = scheduled
        .into_iter()
        .filter_map(|member| Some((member, member.scheduled_restart()?)))
        .collect();
    if scheduled.is_empty() {
        return Err(PlanError::Refused(format!(
            "no restart is scheduled {}: nothing to flush",
            only.map_or_else(|| format!("in {}", target.cluster), |name| format!("on {name}"))
        )));
    }
    let names: Vec<&str> = scheduled.iter().map(|(member, _)| member.name.as_str()).collect();
    let mut plan = frame(
        target,
        view,
        format!("Cancel the scheduled restarts of {}", names.join(", ")),
        "PostgreSQL is not restarted at the scheduled times; pending settings stay pending.".into(),
    );
    for (member, at) in scheduled {
        plan.prechecks.push(Check::Reachable {
            member: member.name.clone(),
        });
        plan.steps.push(cancel_step(
            format!("flush-restart-{}", member.name),
            format!("Cancel {}'s restart scheduled at {at}", member.name),
            member,
            PatroniCall::CancelRestart,
            Check::NoRestartScheduled {
                member: member.name.clone(),
            },
        ));
    }
    Ok(plan)
}

fn cancel_step(
    id: String,
    title: String,
    api: &crate::observe::MemberView,
    call: PatroniCall,
    cancelled: Check,
) -> Step {
    Step {
        id,
        action: Action::Patroni(PatroniAction {
            member: api.name.clone(),
            api_url: api.api_url.clone(),
            call,
        }),
        gate: Gate::Confirm {
            question: format!("{title}?"),
        },
        prechecks: Vec::new(),
        verify: Some(Wait::for_member(
            vec![cancelled.clone()],
            VERIFY_TIMEOUT,
            Duration::from_millis(500),
            &api.name,
        )),
        idempotency: Idempotency::CheckStateFirst {
            done_when: vec![cancelled],
        },
        title,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::testing::view_led_by;

    #[test]
    fn nothing_scheduled_is_refused_and_member_goes_with_restart() {
        let (target, view) = view_led_by("4.1.5", "node3", Some(1));
        for what in [Scheduled::Switchover, Scheduled::Restart] {
            let refused = Flush::plan(&target, &view, &Params { what, member: None }).unwrap_err();
            assert!(refused.to_string().contains("nothing to flush"), "{refused}");
        }
        let refused = Flush::plan(
            &target,
            &view,
            &Params {
                what: Scheduled::Switchover,
                member: Some("node1".into()),
            },
        )
        .unwrap_err();
        assert!(refused.to_string().contains("--member goes with `flush restart`"));
    }

    #[test]
    fn a_scheduled_restart_is_cancelled_on_its_member_and_verified() {
        let (target, mut view) = view_led_by("4.1.5", "node3", Some(1));
        for member in &mut view.members {
            if member.name == "node1"
                && let Ok(status) = member.status.as_mut()
            {
                status.scheduled_restart = Some("2026-12-24T02:00:00+00:00".into());
            }
        }
        let plan = Flush::plan(
            &target,
            &view,
            &Params {
                what: Scheduled::Restart,
                member: None,
            },
        )
        .unwrap();
        assert_eq!(plan.steps.len(), 1);
        let step = &plan.steps[0];
        let Action::Patroni(action) = &step.action else {
            panic!("a REST call")
        };
        assert_eq!((action.member.as_str(), action.call.method(), action.call.path()), ("node1", "DELETE", "/restart"));
        assert!(!Check::NoRestartScheduled { member: "node1".into() }.evaluate(&view).passed);
    }
}
