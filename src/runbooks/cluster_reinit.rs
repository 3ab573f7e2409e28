//! `pgha cluster-reinit --i-understand-data-loss`: a whole Patroni cluster thrown away and
//! bootstrapped anew (seed 004, Patroni issue 1108): Patroni stopped on every member, every data
//! directory wiped, the cluster's DCS keys deleted, one member started alone so that it
//! initialises a new database and leads, then the others started so that they clone it. Every
//! database of the cluster is lost: besides the flag, the gates ask for the cluster's name and
//! for its current leader's. A standby cluster is rebuilt from its backup instead
//! (`geo-resetup`). The new cluster has a new system identifier: the plan assumes none.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::steps::{
    DEFAULT_MAX_LAG_BYTES, Groups, Host, consul_routing, delete_tree_of, frame, listed,
    member_names, service_control, start_verified, stop_everywhere,
};
use super::{Example, ExampleLab, PlanError, Runbook};
use crate::inventory::ClusterTarget;
use crate::observe::{ClusterView, MemberView};
use crate::plan::{Check, Gate, Plan, Progress, Step, Wait};

/// initdb and the first checkpoint of an empty cluster: seconds; a clone of it likewise.
const DEFAULT_TIMEOUT: Duration = Duration::from_mins(10);

/// `pgha cluster-reinit`.
pub struct ClusterReinit;

// The member that bootstraps, and the flag without which nothing is planned.
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
pub struct Params {
    /// Every database of the cluster is deleted: required
    #[arg(long)]
    pub i_understand_data_loss: bool,
    /// The member that initialises the new cluster and leads it [default: the current leader,
    /// else the first the inventory lists]
    #[arg(long, value_name = "NAME", value_parser = crate::flags::name)]
    pub first: Option<String>,
    /// Deadline for the new cluster's leader, and for each clone [default: 10m]
    #[arg(long, value_name = "DURATION", value_parser = crate::flags::duration)]
    #[serde(with = "crate::duration::optional_text")]
    pub timeout: Option<Duration>,
}

impl Runbook for ClusterReinit {
    const NAME: &'static str = "cluster-reinit";
    const ABOUT: &'static str =
        "Throw a whole cluster away and bootstrap it anew (every database is lost)";
    type Params = Params;

    fn deadline(params: &mut Params) -> Option<&mut Option<Duration>> {
        Some(&mut params.timeout)
    }

    fn plan(target: &ClusterTarget, view: &ClusterView, params: &Params) -> Result<Plan, PlanError> {
        plan(target, view, params)
    }

    fn examples() -> Vec<Example<Params>> {
        vec![Example {
            file: "cluster-reinit",
            params: Params {
                i_understand_data_loss: true,
                first: None,
                timeout: None,
            },
            lab: ExampleLab::EtcdLab,
        }]
    }
}

fn plan(target: &ClusterTarget, view: &ClusterView, params: &Params) -> Result<Plan, PlanError> {
    if target.standby {
        return Err(PlanError::Refused(format!(
            "cluster {} is a standby cluster (`standby: true`): rebuild it from the primary site's backup with `pgha geo-resetup`",
            target.cluster
        )));
    }
    if !params.i_understand_data_loss {
        return Err(PlanError::Refused(format!(
            "cluster-reinit deletes every database of cluster {}: pass --i-understand-data-loss",
            target.cluster
        )));
    }
    let members: Vec<&MemberView> = target
        .members
        .iter()
        .map(|member| listed(target, view, &member.name))
        .collect::<Result<_, _>>()?;
    let leader = view.leader.clone();
    let first = match (&params.first, &leader) {
        (Some(name), _) => listed(target, view, name)?.name.clone(),
        (None, Some(leader)) => leader.clone(),
        (None, None) => members
            .first()
            .map(|member| member.name.clone())
            .ok_or_else(|| PlanError::Refused("the inventory lists no member".into()))?,
    };
    let control = service_control(target, "stop and start Patroni")?;
    let timeout = params.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let mut plan = frame(
        target,
        view,
        format!("Reinitialise cluster {} (every database is lost)", target.cluster),
        format!(
            "Throws cluster {} away and bootstraps it anew (seed 004, Patroni issue 1108). Patroni is stopped on every member ({}), every data directory is wiped and the cluster's DCS keys are deleted; {first} starts alone, initialises a new database and leads; then the others start and clone it. EVERY DATABASE OF THE CLUSTER IS LOST: the gates ask for the cluster's name{}.",
            target.cluster,
            member_names(&members),
            leader
                .as_deref()
                .map_or_else(String::new, |leader| format!(
                    " and for its current leader's, {leader}"
                )),
        ),
    );
    let mut groups = Groups::default();
    let stops = stop_everywhere(
        target,
        control,
        &members,
        Gate::TypeToConfirm {
            question: format!(
                "Stop Patroni on every member of {} and delete every database it holds?",
                target.cluster
            ),
            expected: target.cluster.clone(),
        },
    )?;
    groups.add(&mut plan, stops);
    let wipes = wipe_steps(target, view, &members, leader.as_deref())?;
    groups.add(&mut plan, wipes);
    plan.steps.push(delete_tree_of(target, view)?);
    plan.steps.push(start_verified(target, control, &first)?);
    plan.steps.push(new_leader_step(&first, timeout));
    let others: Vec<&str> = members
        .iter()
        .map(|member| member.name.as_str())
        .filter(|name| *name != first)
        .collect();
    let starts = others
        .iter()
        .map(|name| start_verified(target, control, name))
        .collect::<Result<_, _>>()?;
    groups.add(&mut plan, starts);
    plan.steps.push(cloned_step(&first, &others, timeout));
    // Where Patroni registers services, clients find the new cluster through Consul.
    let mut routed = vec![Check::ConsulPassing {
        member: first.clone(),
        tag: "primary".into(),
    }];
    routed.extend(others.iter().map(|name| Check::ConsulPassing {
        member: (*name).to_string(),
        tag: "replica".into(),
    }));
    plan.steps.extend(consul_routing(
        view,
        "consul-routing".into(),
        format!(
            "Wait until Consul routes to every member of {} again",
            target.cluster
        ),
        routed,
    ));
    plan.parallel = groups.into_parallel();
    plan.rollback = Some(
        "none: the databases are gone. Restore them from a backup into the new cluster.".into(),
    );
    Ok(plan)
}

/// Every data directory wiped: the current leader's behind its own name, the others behind the
/// cluster's.
fn wipe_steps(
    target: &ClusterTarget,
    view: &ClusterView,
    members: &[&MemberView],
    leader: Option<&str>,
) -> Result<Vec<Step>, PlanError> {
    members
        .iter()
        .map(|member| {
            let step = Host::new(target, view, &member.name)?.wipe_data_directory()?;
            let is_leader = leader == Some(member.name.as_str());
            let expected = if is_leader {
                member.name.clone()
            } else {
                target.cluster.clone()
            };
            Ok(Step {
                gate: Gate::TypeToConfirm {
                    question: format!(
                        "Wipe {}'s data directory{} (the reinit of {})?",
                        member.name,
                        if is_leader { ", the leader's" } else { "" },
                        target.cluster
                    ),
                    expected,
                },
                // Stopped, the leader key released: not the leader any more.
                prechecks: vec![Check::Unreachable {
                    member: member.name.clone(),
                }],
                ..step
            })
        })
        .collect()
}

fn new_leader_step(first: &str, timeout: Duration) -> Step {
    Step::wait(
        format!("bootstrapped-{first}"),
        format!("Wait until {first} has initialised the new cluster and leads it"),
        Wait {
            until: vec![
                Check::LeaderIs {
                    member: first.into(),
                },
                Check::HealthyLeader,
            ],
            fail_if: Vec::new(),
            timeout,
            poll: Duration::from_secs(1),
            progress: Progress::MemberState {
                member: first.into(),
            },
            stuck: Vec::new(),
        },
    )
}

fn cloned_step(first: &str, others: &[&str], timeout: Duration) -> Step {
    let mut until = vec![
        Check::LeaderIs {
            member: first.into(),
        },
        Check::HealthyLeader,
    ];
    for name in others {
        until.extend(Check::caught_up(name, DEFAULT_MAX_LAG_BYTES));
    }
    Step::wait(
        "cloned".into(),
        format!("Wait until {} stream from {first}", others.join(", ")),
        Wait {
            until,
            fail_if: Vec::new(),
            timeout,
            poll: Duration::from_secs(1),
            progress: Progress::Checks,
            stuck: Vec::new(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runbooks::tests::{etcd_lab, standby_lab};

    fn params() -> Params {
        ClusterReinit::examples().remove(0).params
    }

    #[test]
    fn stop_wipe_forget_then_one_bootstraps_and_the_others_clone() {
        let (target, view) = etcd_lab();
        let plan = ClusterReinit::plan(&target, &view, &params()).unwrap();
        let ids: Vec<&str> = plan.steps.iter().map(|step| step.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "stop-patroni-node1",
                "stop-patroni-node2",
                "stop-patroni-node3",
                "wipe-data-node1",
                "wipe-data-node2",
                "wipe-data-node3",
                "delete-etcd-tree",
                "start-patroni-node1",
                "bootstrapped-node1",
                "start-patroni-node2",
                "start-patroni-node3",
                "cloned",
            ]
        );
        assert!(plan.assumes.is_empty(), "a new database: no identity carried");
        let asked: Vec<(&str, &str)> = plan
            .steps
            .iter()
            .filter_map(|step| match &step.gate {
                Gate::TypeToConfirm { expected, .. } => Some((step.id.as_str(), expected.as_str())),
                _ => None,
            })
            .collect();
        assert!(asked.contains(&("wipe-data-node1", "node1")), "the leader's name: {asked:?}");
        assert!(asked.contains(&("stop-patroni-node1", "demo")), "{asked:?}");
        assert!(asked.contains(&("delete-etcd-tree", "demo")), "{asked:?}");
    }

    #[test]
    fn without_the_flag_or_on_a_standby_cluster_it_is_refused() {
        let (target, view) = etcd_lab();
        let unflagged = Params {
            i_understand_data_loss: false,
            ..params()
        };
        let error = ClusterReinit::plan(&target, &view, &unflagged).unwrap_err();
        assert!(error.to_string().contains("--i-understand-data-loss"), "{error}");
        let (target, view) = standby_lab();
        let error = ClusterReinit::plan(&target, &view, &params()).unwrap_err();
        assert!(error.to_string().contains("geo-resetup"), "{error}");
    }
}
