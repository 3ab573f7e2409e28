//! `pgha switchover [--candidate M] [--at TIME] [--checkpoint]`: hand the leader role to a
//! replica. Without `--candidate`, the synchronous standby is chosen first, then the replica
//! with the lowest lag; a member tagged `nofailover`, not streaming, or lagging more than the
//! threshold is never chosen (and refused when named). With `--checkpoint`, the leader runs a
//! CHECKPOINT first so its shutdown checkpoint is short. The outcome is verified by observing
//! the new leader and the new timeline, never by the HTTP status alone.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::steps::{
    DEFAULT_MAX_LAG_BYTES, Switch, candidate_ready, checkpoint_step, choose_candidate, cluster_api,
    consul_routes_leader, frame, member, rejoin_step, switchover_step,
};
use super::{Example, ExampleLab, PlanError, Runbook};
use crate::inventory::ClusterTarget;
use crate::observe::ClusterView;
use crate::plan::{Check, Plan, cluster_timeline};

/// Patroni answers the switchover after up to 20 s; the new leader runs within seconds.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(90);

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

/// What happens, for the plan's reader: a standby cluster's leader is handed over, not promoted.
fn summary(standby: bool, leader: &str, candidate: &str) -> String {
    if standby {
        format!(
            "Patroni hands the standby leader role of this standby cluster from {leader} to {candidate}: \
             neither is promoted and no writes stop (the cluster takes none); {candidate} then replays \
             from the primary site and {leader} rejoins as its replica, on the same timeline."
        )
    } else {
        format!(
            "Patroni demotes {leader} and promotes {candidate}. Writes stop for a few seconds while the roles \
             change (measured on the lab: 1.5-2.5 s); {leader} rejoins as a replica of {candidate}."
        )
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
        summary(target.standby, &leader, &candidate),
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
    if target.standby {
        // A standby cluster the inventory names but that takes writes (split from its site):
        // no switchover's verification would fit it; `pgha status` says what it is.
        plan.prechecks.push(Check::StandbyLeader {
            member: leader.clone(),
        });
    }
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
        standby: target.standby,
    };
    plan.steps
        .push(switchover_step(&switch, api, candidate_ready));
    if at.is_none() {
        plan.steps.push(rejoin_step(&leader, &candidate));
        plan.steps.extend(consul_routes_leader(
            view,
            &candidate,
            target.standby,
            Some(&leader),
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

