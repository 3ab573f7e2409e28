//! `pgha reinit --member M`: rebuild one replica from the leader. Patroni deletes the member's
//! data directory and takes a base backup from the leader; the member goes `creating replica` →
//! `starting` → `streaming`. Never the leader, and only while a healthy leader exists.

use std::time::Duration;

use super::{Params, PlanError, SILENCE_MARGIN, listed, new_plan, silenced, started_at};
use crate::inventory::ClusterTarget;
use crate::observe::ClusterView;
use crate::patroni::{MemberState, Version};
use crate::plan::{
    Action, Check, Gate, Idempotency, PatroniAction, PatroniCall, Plan, Progress, Step, Wait,
};

/// A base backup of a large database takes hours (the seed speaks of six).
const DEFAULT_TIMEOUT: Duration = Duration::from_hours(2);

/// The states a member passes through once Patroni accepted the reinitialize.
const REINIT_UNDER_WAY: [MemberState; 4] = [
    MemberState::Stopping,
    MemberState::Stopped,
    MemberState::CreatingReplica,
    MemberState::Starting,
];

/// States from which waiting longer cannot help.
const FAILED: [MemberState; 4] = [
    MemberState::StartFailed,
    MemberState::Crashed,
    MemberState::StopFailed,
    MemberState::RestartFailed,
];

pub(super) fn plan(
    target: &ClusterTarget,
    view: &ClusterView,
    params: &Params,
) -> Result<Plan, PlanError> {
    let Params::Reinit {
        member: name,
        timeout,
        max_lag,
    } = params
    else {
        unreachable!("dispatched by runbook")
    };
    let replica = listed(target, view, name)?;
    let leader = view.leader.clone().unwrap_or_else(|| "none".into());
    let leader_host = view
        .member(&leader)
        .map(|leader| leader.host.clone())
        .unwrap_or_default();
    let before = started_at(replica);
    // `from_leader` exists from Patroni 4 on; older releases ignore unknown keys, but pgha only
    // sends what the member understands.
    let from_leader = replica
        .patroni_version()
        .filter(|version| *version >= Version::new(4, 0, 0))
        .map(|_| true);

    let mut plan = new_plan(
        target,
        view,
        params,
        format!(
            "Reinitialize {name} from the leader in cluster {}",
            target.cluster
        ),
        format!(
            "Patroni stops PostgreSQL on {name}, deletes its data directory and copies it again from the \
             leader ({leader}) with a base backup, then {name} starts and streams. The leader is not touched; \
             {name} serves no reads until it streams again."
        ),
    );
    plan.prechecks = vec![
        Check::HealthyLeader,
        Check::NotLeader {
            member: name.clone(),
        },
        Check::Reachable {
            member: name.clone(),
        },
        Check::Registered {
            member: name.clone(),
        },
    ];
    plan.assumes = vec![Check::LeaderIs {
        member: leader.clone(),
    }];
    if let Some(identifier) = &view.system_identifier {
        plan.assumes.push(Check::SystemIdentifier {
            identifier: identifier.clone(),
        });
    }
    let under_way = Check::Any {
        checks: vec![
            Check::state_in(name, &REINIT_UNDER_WAY),
            Check::RestartedSince {
                member: name.clone(),
                before,
            },
        ],
    };
    let timeout = timeout.unwrap_or(DEFAULT_TIMEOUT);
    silenced(
        &mut plan,
        target,
        replica,
        &format!("rebuilt from {leader}"),
        timeout.saturating_add(SILENCE_MARGIN),
        [
            reinitialize_step(name, &leader, &replica.api_url, from_leader, under_way),
            wait_streaming_step(name, &leader, leader_host, *max_lag, timeout),
        ]
        .into_iter()
        .chain(super::consul_routes_replica(view, name))
        .collect(),
    );
    plan.rollback = Some(format!(
        "None needed: the data of {name} is rebuilt from {leader}. If the copy fails, fix the cause \
         (disk space, network) and run `pgha reinit --member {name}` again."
    ));
    Ok(plan)
}

/// The call, behind a destructive gate; taken as accepted once the member is seen rebuilding
/// (or already restarted: a small database is copied within one poll).
fn reinitialize_step(
    name: &str,
    leader: &str,
    api_url: &str,
    from_leader: Option<bool>,
    under_way: Check,
) -> Step {
    Step {
        id: format!("reinitialize-{name}"),
        title: format!("Reinitialize {name}"),
        action: Action::Patroni(PatroniAction {
            member: name.into(),
            api_url: api_url.into(),
            call: PatroniCall::Reinitialize {
                force: false,
                from_leader,
            },
        }),
        gate: Gate::TypeToConfirm {
            question: format!(
                "This deletes the data directory of {name} and copies it again from {leader}."
            ),
            expected: name.into(),
        },
        prechecks: vec![
            Check::NotLeader {
                member: name.into(),
            },
            Check::HealthyLeader,
            Check::Reachable {
                member: name.into(),
            },
        ],
        verify: Some(Wait {
            until: vec![under_way.clone()],
            fail_if: Vec::new(),
            timeout: Duration::from_mins(1),
            poll: Duration::from_millis(500),
            progress: Progress::MemberState {
                member: name.into(),
            },
        }),
        idempotency: Idempotency::CheckStateFirst {
            done_when: vec![under_way],
        },
    }
}

/// The member's Patroni died: its API is gone and its DCS key expired (after `ttl`), so
/// waiting longer cannot help. Both, so that one slow answer does not fail a copy of hours.
fn gone(name: &str) -> Check {
    Check::All {
        checks: vec![
            Check::Unreachable {
                member: name.into(),
            },
            Check::NotRegistered {
                member: name.into(),
            },
        ],
    }
}

/// The long wait: hours on a large database, with the bytes the leader has streamed.
pub(super) fn wait_streaming_step(
    name: &str,
    leader: &str,
    leader_host: String,
    max_lag: u64,
    timeout: Duration,
) -> Step {
    Step::wait(
        format!("wait-streaming-{name}"),
        format!("Wait until {name} streams from {leader}"),
        Wait {
            until: Check::caught_up(name, max_lag).into(),
            fail_if: vec![Check::state_in(name, &FAILED), gone(name)],
            timeout,
            poll: Duration::from_secs(1),
            progress: Progress::BaseBackup {
                member: name.into(),
                leader: leader.into(),
                leader_host,
            },
        },
    )
}
