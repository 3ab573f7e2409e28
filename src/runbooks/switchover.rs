//! `pgha switchover [--candidate M] [--at TIME] [--checkpoint]`: hand the leader role to a
//! replica. Without `--candidate`, the synchronous standby is chosen first, then the replica
//! with the lowest lag; a member tagged `nofailover`, not streaming, or lagging more than the
//! threshold is never chosen (and refused when named). With `--checkpoint`, the leader runs a
//! CHECKPOINT first so its shutdown checkpoint is short. The outcome is verified by observing
//! the new leader and the new timeline, never by the HTTP status alone.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::steps::{DEFAULT_MAX_LAG_BYTES, cluster_api, consul_routing, frame, member};
use super::{Example, ExampleLab, PlanError, Runbook};
use crate::inventory::ClusterTarget;
use crate::observe::{ClusterView, MemberView};
use crate::patroni::{ClusterRole, Lag};
use crate::plan::{
    Action, Check, Gate, Idempotency, PatroniAction, PatroniCall, Plan, SqlAction, SqlStatement,
    Step, Wait, cluster_timeline,
};

/// Patroni answers the switchover after up to 20 s; the new leader runs within seconds.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(90);
const NO_FAILOVER: &str = "nofailover";

/// `pgha switchover`.
pub struct Switchover;

// Which replica, when, whether to CHECKPOINT first, and what counts as caught up.
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
pub struct Params {
    /// The new leader [default: the sync standby, else the replica with the lowest lag]
    #[arg(long, value_name = "NAME", value_parser = crate::flags::name)]
    pub candidate: Option<String>,
    /// Schedule it (RFC 3339 with a time zone, e.g. 2026-11-24T02:00:00+00:00)
    #[arg(long, value_name = "TIME", value_parser = crate::flags::future_time)]
    pub at: Option<String>,
    /// Run CHECKPOINT on the leader first, so its shutdown checkpoint is short
    #[arg(long)]
    pub checkpoint: bool,
    /// Refuse a candidate lagging more than this
    #[arg(long, value_name = "BYTES", default_value = "1MiB", value_parser = crate::flags::bytes)]
    pub max_lag: u64,
    /// Deadline for the new leader to run [default: 90s]
    #[arg(long, value_name = "DURATION", value_parser = crate::flags::duration)]
    #[serde(with = "crate::duration::optional_text")]
    pub timeout: Option<Duration>,
}

impl Runbook for Switchover {
    const NAME: &'static str = "switchover";
    const ABOUT: &'static str = "Hand the leader role to a replica";
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
        let now = Params {
            candidate: None,
            at: None,
            checkpoint: false,
            max_lag: DEFAULT_MAX_LAG_BYTES,
            timeout: None,
        };
        let scheduled = Params {
            candidate: Some("node2".into()),
            at: Some("2026-11-24T02:00:00+00:00".into()),
            checkpoint: true,
            ..now.clone()
        };
        vec![
            Example {
                file: "switchover",
                params: now.clone(),
                lab: ExampleLab::Lab,
            },
            Example {
                file: "switchover-scheduled",
                params: scheduled,
                lab: ExampleLab::Lab,
            },
            Example {
                file: "consul-switchover",
                params: now,
                lab: ExampleLab::ConsulLab,
            },
        ]
    }
}

fn plan(target: &ClusterTarget, view: &ClusterView, params: &Params) -> Result<Plan, PlanError> {
    let Params {
        candidate,
        at,
        checkpoint,
        max_lag,
        timeout,
    } = params;
    let leader = view.leader.clone().ok_or_else(|| {
        PlanError::Refused("no member holds the leader key: nothing to switch over from".into())
    })?;
    let candidate = match candidate {
        Some(name) => member(view, name)?.name.clone(),
        None => choose_candidate(view, &leader, *max_lag)?,
    };
    let timeline = cluster_timeline(view).unwrap_or(0);
    let timeout = timeout.unwrap_or(DEFAULT_TIMEOUT);
    let when = at
        .as_ref()
        .map_or_else(|| "now".to_string(), |at| format!("at {at}"));

    let mut plan = frame(
        target,
        view,
        format!(
            "Switch over cluster {} from {leader} to {candidate} {when}",
            target.cluster
        ),
        format!(
            "Patroni demotes {leader} and promotes {candidate}. Writes stop for a few seconds while the roles \
             change (measured on the lab: 1.5-2.5 s); {leader} rejoins as a replica of {candidate}."
        ),
    );
    let candidate_ready = candidate_ready(&candidate, *max_lag);
    plan.prechecks = [
        vec![
            Check::HealthyLeader,
            Check::LeaderIs {
                member: leader.clone(),
            },
        ],
        candidate_ready.clone(),
    ]
    .concat();
    if at.is_some() {
        // Patroni refuses to schedule while paused.
        plan.prechecks.push(Check::Paused { paused: false });
    }
    if let Some(identifier) = &view.system_identifier {
        plan.assumes.push(Check::SystemIdentifier {
            identifier: identifier.clone(),
        });
    }

    if *checkpoint {
        plan.steps
            .push(checkpoint_step(&leader, &member(view, &leader)?.host));
    }
    let api = cluster_api(view)?;
    let switch = Switch {
        leader: &leader,
        candidate: &candidate,
        at: at.as_deref(),
        timeline,
        timeout,
        cluster: &target.cluster,
    };
    plan.steps
        .push(switchover_step(&switch, api, candidate_ready));
    if at.is_none() {
        plan.steps.push(rejoin_step(&leader, &candidate));
        plan.steps.extend(consul_routing(
            view,
            "consul-routing".into(),
            format!("Wait until Consul routes primary traffic to {candidate} only, and replica traffic to {leader}"),
            vec![
                Check::ConsulServes {
                    tag: "primary".into(),
                    members: vec![candidate.clone()],
                },
                Check::ConsulPassing {
                    member: leader.clone(),
                    tag: "replica".into(),
                },
            ],
        ));
        plan.rollback = Some(format!(
            "Switch back: `pgha switchover --cluster {} --candidate {leader}`.",
            target.cluster
        ));
    } else {
        plan.rollback = Some(format!(
            "Cancel the scheduled switchover before it happens: `curl -X DELETE -u {}:… {}/switchover`.",
            plan.rest_user.clone().unwrap_or_else(|| "patroni".into()),
            api.api_url
        ));
    }
    Ok(plan)
}

/// A candidate must be a reachable, streaming, caught-up replica not tagged `nofailover`.
fn candidate_ready(candidate: &str, max_lag: u64) -> Vec<Check> {
    vec![
        Check::NotLeader {
            member: candidate.into(),
        },
        Check::Reachable {
            member: candidate.into(),
        },
        Check::NotTagged {
            member: candidate.into(),
            tag: NO_FAILOVER.into(),
        },
    ]
    .into_iter()
    .chain(Check::caught_up(candidate, max_lag))
    .collect()
}

/// What the switchover step needs to know.
struct Switch<'a> {
    leader: &'a str,
    candidate: &'a str,
    at: Option<&'a str>,
    timeline: u32,
    timeout: Duration,
    cluster: &'a str,
}

fn checkpoint_step(leader: &str, host: &str) -> Step {
    Step {
        id: format!("checkpoint-{leader}"),
        title: format!("CHECKPOINT on {leader}, so that its shutdown checkpoint is short"),
        action: Action::Sql(SqlAction {
            member: leader.into(),
            host: host.into(),
            statement: SqlStatement::Checkpoint,
        }),
        gate: Gate::None,
        prechecks: vec![Check::LeaderIs {
            member: leader.into(),
        }],
        verify: None,
        idempotency: Idempotency::SafeToRepeat,
    }
}

/// The switchover itself, verified by the new leader and a new timeline (or, scheduled, by the
/// schedule Patroni registered) — never by Patroni's answer alone.
fn switchover_step(switch: &Switch<'_>, api: &MemberView, candidate_ready: Vec<Check>) -> Step {
    let (leader, candidate) = (switch.leader.to_string(), switch.candidate.to_string());
    let when = switch
        .at
        .map_or_else(|| "now".to_string(), |at| format!("at {at}"));
    let (verify, done_when) = if switch.at.is_some() {
        let scheduled = vec![Check::SwitchoverScheduled {
            to: candidate.clone(),
        }];
        (
            wait_for(scheduled.clone(), Duration::from_secs(20), &candidate),
            scheduled,
        )
    } else {
        let switched = vec![
            Check::LeaderIs {
                member: candidate.clone(),
            },
            Check::TimelineAbove {
                timeline: switch.timeline,
            },
        ];
        (
            wait_for(switched, switch.timeout, &candidate),
            vec![Check::LeaderIs {
                member: candidate.clone(),
            }],
        )
    };
    Step {
        id: "switchover".into(),
        title: format!("Switch over from {leader} to {candidate} {when}"),
        action: Action::Patroni(PatroniAction {
            member: api.name.clone(),
            api_url: api.api_url.clone(),
            call: PatroniCall::Switchover {
                leader: leader.clone(),
                candidate: Some(candidate.clone()),
                scheduled_at: switch.at.map(str::to_string),
            },
        }),
        gate: Gate::Confirm {
            question: format!(
                "Switch the leader of {} from {leader} to {candidate} {when}?",
                switch.cluster
            ),
        },
        prechecks: [vec![Check::LeaderIs { member: leader }], candidate_ready].concat(),
        verify: Some(verify),
        idempotency: Idempotency::CheckStateFirst { done_when },
    }
}

fn rejoin_step(leader: &str, candidate: &str) -> Step {
    let rejoined = vec![Check::Streaming {
        member: leader.into(),
    }];
    Step::wait(
        format!("wait-rejoin-{leader}"),
        format!("Wait until {leader} streams from {candidate}"),
        Wait::for_member(
            rejoined,
            Duration::from_mins(2),
            Duration::from_secs(1),
            leader,
        ),
    )
}

fn wait_for(until: Vec<Check>, timeout: Duration, candidate: &str) -> Wait {
    Wait::for_member(until, timeout, Duration::from_millis(500), candidate)
}

/// The synchronous standby first, then the lowest lag; never a member tagged `nofailover`,
/// not streaming, unreachable, or over the lag threshold.
fn choose_candidate(view: &ClusterView, leader: &str, max_lag: u64) -> Result<String, PlanError> {
    let mut eligible: Vec<(&MemberView, u64)> = Vec::new();
    let mut reasons = Vec::new();
    for member in view.members.iter().filter(|member| member.name != leader) {
        let checks = candidate_ready(&member.name, max_lag);
        match checks
            .iter()
            .map(|check| check.evaluate(view))
            .find(|verdict| !verdict.passed)
        {
            Some(failed) => reasons.push(failed.observed),
            None => eligible.push((member, worst_lag(member))),
        }
    }
    eligible.sort_by_key(|(member, lag)| {
        (
            member.role() != Some(ClusterRole::SyncStandby),
            *lag,
            member.name.clone(),
        )
    });
    eligible
        .first()
        .map(|(member, _)| member.name.clone())
        .ok_or_else(|| PlanError::NoCandidate {
            leader: leader.into(),
            reasons: if reasons.is_empty() {
                "no other member".into()
            } else {
                reasons.join("; ")
            },
        })
}

fn worst_lag(member: &MemberView) -> u64 {
    [member.receive_lag(), member.replay_lag()]
        .into_iter()
        .flatten()
        .map(|lag| match lag {
            Lag::Bytes(bytes) => bytes,
            Lag::Unknown => u64::MAX,
        })
        .max()
        .unwrap_or(u64::MAX)
}
