//! `pgha reinit --member M`: rebuild one replica from the leader. Patroni deletes the member's
//! data directory and takes a base backup from the leader; the member goes `creating replica` →
//! `starting` → `streaming`. Never the leader, and only while a healthy leader exists.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::steps::{
    DEFAULT_MAX_LAG_BYTES, SILENCE_MARGIN, consul_routes_replica, frame, listed, silenced,
    started_at, wait_streaming_step,
};
use super::{Example, ExampleLab, PlanError, Runbook};
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

/// `pgha reinit`.
pub struct Reinit;

// Which replica, how long the copy may take, when it counts as caught up.
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
pub struct Params {
    /// The member to rebuild (never the leader)
    #[arg(long, value_name = "NAME", value_parser = crate::flags::name)]
    pub member: String,
    /// Deadline of the wait for streaming [default: 2h, or the inventory's timeouts.runbooks.reinit]
    #[arg(long, value_name = "DURATION", value_parser = crate::flags::duration)]
    #[serde(with = "crate::duration::optional_text")]
    pub timeout: Option<Duration>,
    /// A replica lagging more counts as not caught up
    #[arg(long, value_name = "BYTES", default_value = "1MiB", value_parser = crate::flags::bytes)]
    pub max_lag: u64,
}

impl Runbook for Reinit {
    const NAME: &'static str = "reinit";
    const ABOUT: &'static str = "Rebuild one replica from the leader (deletes its data directory)";
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
        vec![Example {
            file: "reinit",
            params: Params {
                member: "node3".into(),
                timeout: None,
                max_lag: DEFAULT_MAX_LAG_BYTES,
            },
            lab: ExampleLab::Lab,
        }]
    }
}

fn plan(target: &ClusterTarget, view: &ClusterView, params: &Params) -> Result<Plan, PlanError> {
    let Params {
        member: name,
        timeout,
        max_lag,
    } = params;
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

    let mut plan = frame(
        target,
        view,
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
        .chain(consul_routes_replica(view, name))
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
            stuck: Vec::new(),
        }),
        idempotency: Idempotency::CheckStateFirst {
            done_when: vec![under_way],
        },
    }
}
