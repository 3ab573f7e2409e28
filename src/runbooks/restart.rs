//! `pgha restart [--member M] [--pending-only]`: restart PostgreSQL through Patroni, one member at
//! a time, replicas first and the leader last, each healthy again before the next. Restarting the
//! leader stops writes until it is back (Patroni does not fail over for a restart), so its gate
//! asks for its name.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::steps::{
    DEFAULT_MAX_LAG_BYTES, RestartOf, assume_identity, frame, listed, restart_steps,
};
use super::{Example, ExampleLab, PlanError, Runbook};
use crate::inventory::ClusterTarget;
use crate::observe::{ClusterView, MemberView};
use crate::plan::{
    Check, Plan,
};

const DEFAULT_TIMEOUT: Duration = Duration::from_mins(10);

/// `pgha restart`.
pub struct Restart;

// Which members, and when each counts as healthy again.
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
pub struct Params {
    /// Only this member
    #[arg(long, value_name = "NAME", value_parser = crate::flags::name)]
    pub member: Option<String>,
    /// Only members with a pending restart
    #[arg(long)]
    pub pending_only: bool,
    /// A replica lagging more counts as not healthy again
    #[arg(long, value_name = "BYTES", default_value = "1MiB", value_parser = crate::flags::bytes)]
    pub max_lag: u64,
    /// Deadline per member [default: 10m]
    #[arg(long, value_name = "DURATION", value_parser = crate::flags::duration)]
    #[serde(with = "crate::duration::optional_text")]
    pub timeout: Option<Duration>,
}

impl Runbook for Restart {
    const NAME: &'static str = "restart";
    const ABOUT: &'static str =
        "Restart PostgreSQL, one member at a time, replicas first, each healthy before the next";
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
            file: "restart",
            params: Params {
                member: None,
                pending_only: false,
                max_lag: DEFAULT_MAX_LAG_BYTES,
                timeout: None,
            },
            lab: ExampleLab::Lab,
        }]
    }
}

fn plan(target: &ClusterTarget, view: &ClusterView, params: &Params) -> Result<Plan, PlanError> {
    let Params {
        member: only,
        pending_only,
        max_lag,
        timeout,
    } = params;
    let leader = view.leader.clone().unwrap_or_default();
    let mut members: Vec<&MemberView> = match only {
        Some(name) => vec![listed(target, view, name)?],
        None => view
            .members
            .iter()
            .filter(|member| member.dcs.is_some())
            .map(|member| listed(target, view, &member.name))
            .collect::<Result<_, _>>()?,
    };
    if *pending_only {
        members.retain(|member| member.pending_restart());
    }
    // Replicas first, by name; the leader last.
    members.sort_by_key(|member| (member.name == leader, member.name.clone()));
    if members.is_empty() {
        return Err(PlanError::Refused(if *pending_only {
            "no member has a pending restart".into()
        } else {
            "no member to restart".into()
        }));
    }
    let names: Vec<&str> = members.iter().map(|member| member.name.as_str()).collect();
    let mut plan = frame(
        target,
        view,
        format!(
            "Restart PostgreSQL on {} in cluster {}",
            names.join(", "),
            target.cluster
        ),
        format!(
            "Patroni restarts PostgreSQL on one member at a time ({}), replicas first, the leader last; each \
             must stream (or lead) again before the next. A restarting replica serves no reads for seconds; \
             restarting the leader stops writes until it is back.",
            names.join(", ")
        ),
    );
    plan.prechecks = vec![Check::HealthyLeader];
    plan.prechecks
        .extend(members.iter().map(|member| Check::Reachable {
            member: member.name.clone(),
        }));
    plan.assumes = vec![Check::LeaderIs {
        member: leader.clone(),
    }];
    assume_identity(&mut plan, view);
    for member in members {
        plan.steps.extend(restart_steps(
            member,
            &RestartOf {
                leader: &leader,
                pending_only: *pending_only,
                max_lag: *max_lag,
                timeout: timeout.unwrap_or(DEFAULT_TIMEOUT),
                also: Vec::new(),
            },
        ));
    }
    plan.rollback = Some("None: a restart changes no data. A member that does not come back is diagnosed from its Patroni and PostgreSQL logs.".into());
    Ok(plan)
}

