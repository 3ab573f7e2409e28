//! Restarting PostgreSQL through Patroni, one member at a time: the restart call verified by
//! the postmaster's start time, then a wait until the member is healthy again.

use std::time::Duration;

use super::started_at;
use crate::observe::MemberView;
use crate::plan::{
    Action, Check, Gate, Idempotency, PatroniAction, PatroniCall, Progress, Step, Wait,
};

/// How a restart is planned: who leads (restarting the leader asks for its name and waits for
/// it to lead again), whether only a pending restart counts, when a replica is caught up, and
/// what else must hold once it is back (the PostgreSQL release after a minor update).
pub(crate) struct RestartOf<'a> {
    pub leader: &'a str,
    pub pending_only: bool,
    pub max_lag: u64,
    pub timeout: Duration,
    pub also: Vec<Check>,
}

/// PostgreSQL restarted on `member` through Patroni (`POST /restart`), verified by its start
/// time, then healthy again before whatever comes next.
pub(crate) fn restart_steps(member: &MemberView, of: &RestartOf<'_>) -> [Step; 2] {
    let RestartOf {
        leader,
        pending_only,
        max_lag,
        timeout,
        ..
    } = *of;
    let name = member.name.clone();
    let is_leader = name == leader;
    let restarted = Check::RestartedSince {
        member: name.clone(),
        before: started_at(member),
    };
    let mut done_when = vec![restarted.clone()];
    if pending_only {
        done_when = vec![Check::Any {
            checks: vec![
                restarted.clone(),
                Check::NoPendingRestart {
                    member: name.clone(),
                },
            ],
        }];
    }
    let (gate, role_check) = if is_leader {
        (
            Gate::TypeToConfirm {
                question: format!(
                    "{name} is the leader: writes stop until PostgreSQL is back (no failover)."
                ),
                expected: name.clone(),
            },
            Check::LeaderIs {
                member: name.clone(),
            },
        )
    } else {
        (
            Gate::Confirm {
                question: format!("Restart PostgreSQL on {name} (replica)?"),
            },
            Check::NotLeader {
                member: name.clone(),
            },
        )
    };
    let mut healthy_again = if is_leader {
        vec![
            Check::LeaderIs {
                member: name.clone(),
            },
            Check::HealthyLeader,
        ]
    } else {
        [
            vec![Check::HealthyLeader],
            Check::caught_up(&name, max_lag).into(),
        ]
        .concat()
    };
    healthy_again.extend(of.also.iter().cloned());
    let restart = Step {
        id: format!("restart-{name}"),
        title: format!(
            "Restart PostgreSQL on {name}{}",
            if is_leader { " (leader)" } else { "" }
        ),
        action: Action::Patroni(PatroniAction {
            member: name.clone(),
            api_url: member.api_url.clone(),
            call: PatroniCall::Restart {
                restart_pending: pending_only.then_some(true),
            },
        }),
        gate,
        prechecks: vec![
            role_check,
            Check::HealthyLeader,
            Check::Reachable {
                member: name.clone(),
            },
        ],
        verify: Some(Wait {
            until: done_when.clone(),
            fail_if: Vec::new(),
            timeout,
            poll: Duration::from_millis(500),
            progress: Progress::MemberState {
                member: name.clone(),
            },
            stuck: Vec::new(),
        }),
        idempotency: Idempotency::CheckStateFirst { done_when },
    };
    [restart, healthy_again_step(&name, healthy_again, timeout)]
}

/// "Healthy before the next": the member streams (or leads) again.
fn healthy_again_step(name: &str, until: Vec<Check>, timeout: Duration) -> Step {
    Step::wait(
        format!("wait-healthy-{name}"),
        format!("Wait until {name} is healthy again"),
        Wait::for_member(until, timeout, Duration::from_secs(1), name),
    )
}
