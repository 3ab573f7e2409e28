//! Handing the leader role over, as a switchover and a rolling upgrade do: the candidate chosen
//! (the synchronous standby first, then the lowest lag; never `nofailover`, never lagging), an
//! optional CHECKPOINT on the leader, the call verified by the new leader (on a new timeline,
//! or as a standby cluster's standby leader on the same one), and the old leader's rejoin.

use std::time::Duration;

use crate::observe::{ClusterView, MemberView};
use crate::patroni::{ClusterRole, Lag};
use crate::plan::{
    Action, Check, Gate, Idempotency, PatroniAction, PatroniCall, SqlAction, SqlStatement, Step,
    Wait,
};
use crate::runbooks::PlanError;

const NO_FAILOVER: &str = "nofailover";

/// A candidate must be a reachable, streaming, caught-up replica not tagged `nofailover`.
pub(crate) fn candidate_ready(candidate: &str, max_lag: u64) -> Vec<Check> {
    eligible(candidate)
        .into_iter()
        .chain(Check::caught_up(candidate, max_lag))
        .collect()
}

/// What a failover's candidate must be when there may be no leader to measure its lag
/// against: eligible, and no replica that answers further ahead.
pub(crate) fn promotable(candidate: &str) -> Vec<Check> {
    eligible(candidate)
        .into_iter()
        .chain([Check::MostAdvanced {
            member: candidate.into(),
        }])
        .collect()
}

/// Not the leader, answering, not tagged `nofailover`.
fn eligible(candidate: &str) -> [Check; 3] {
    [
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
}

/// What the switchover step needs to know.
pub(crate) struct Switch<'a> {
    pub leader: &'a str,
    pub candidate: &'a str,
    pub at: Option<&'a str>,
    pub timeline: u32,
    pub timeout: Duration,
    pub cluster: &'a str,
    /// A standby cluster (`standby: true`): its leader is never promoted.
    pub standby: bool,
}

/// How the member handed the leader role is seen to hold it. A primary cluster's new leader
/// was promoted: it leads on a timeline above `timeline`. A standby cluster's leader only
/// replays what its primary site writes: it leads as standby leader, on the same timeline.
pub(crate) fn leads_after_handover(candidate: &str, timeline: u32, standby: bool) -> Vec<Check> {
    let leads = Check::LeaderIs {
        member: candidate.into(),
    };
    if standby {
        vec![
            leads,
            Check::StandbyLeader {
                member: candidate.into(),
            },
        ]
    } else {
        vec![leads, Check::TimelineAbove { timeline }]
    }
}

pub(crate) fn checkpoint_step(leader: &str, host: &str) -> Step {
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

/// The switchover itself, verified by the new leader as `leads_after_handover` sees it (or,
/// scheduled, by the schedule Patroni registered) — never by Patroni's answer alone.
pub(crate) fn switchover_step(
    switch: &Switch<'_>,
    api: &MemberView,
    candidate_ready: Vec<Check>,
) -> Step {
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
        let switched = leads_after_handover(&candidate, switch.timeline, switch.standby);
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
        // The leader's Patroni demotes it: a leader whose Patroni died keeps the key until its
        // ttl runs out, and a switchover then would only fail half-way.
        prechecks: [
            vec![
                Check::LeaderIs {
                    member: leader.clone(),
                },
                Check::Reachable { member: leader },
            ],
            candidate_ready,
        ]
        .concat(),
        verify: Some(verify),
        idempotency: Idempotency::CheckStateFirst { done_when },
    }
}

pub(crate) fn rejoin_step(leader: &str, candidate: &str) -> Step {
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
pub(crate) fn choose_candidate(
    view: &ClusterView,
    leader: &str,
    max_lag: u64,
) -> Result<String, PlanError> {
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
