//! `pgha demote-cluster` (`patronictl demote-cluster`, Patroni 4.1): a primary cluster made a
//! standby cluster of another site — the half of a Geo site swap that takes writes away. The
//! dynamic configuration gains `standby_cluster` (the other site's primary to stream from,
//! or a `restore_command` for its archive), written with the compare-and-set `edit-config`
//! uses; done when the leader runs as `standby_leader` and no member takes writes. Behind the
//! cluster's name typed: from then on the cluster serves reads only.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::steps::{
    answering_members, assume_identity, frame, lab_config_read, leader_running_as,
    read_before_planning, read_config, refuse_unless_every_member_can, standby_switch_step,
};
use super::{Example, ExampleLab, PlanError, Probe, Runbook};
use crate::inventory::ClusterTarget;
use crate::observe::ClusterView;
use crate::patroni::dynamic_config::ConfigRead;
use crate::patroni::PostgresRole;
use crate::plan::{Check, Plan, Progress, Step, Wait};

/// The leader restarts PostgreSQL in recovery: seconds, plus the first WAL it needs.
const DEFAULT_TIMEOUT: Duration = Duration::from_mins(5);

/// `pgha demote-cluster`.
pub struct DemoteCluster;

// Where the standby follows the other site from.
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
pub struct Params {
    /// The other site's primary (or a proxy to it) to stream from
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Its PostgreSQL port [default: 5432]
    #[arg(long, value_name = "PORT", requires = "host")]
    pub port: Option<u16>,
    /// A replication slot on the other site to stream through
    #[arg(long, value_name = "NAME", requires = "host", value_parser = crate::flags::name)]
    pub primary_slot_name: Option<String>,
    /// How to fetch WAL from the other site's archive (PostgreSQL's `restore_command`)
    #[arg(long, value_name = "COMMAND")]
    pub restore_command: Option<String>,
    /// Deadline for the leader to run as standby leader [default: 5m]
    #[arg(long, value_name = "DURATION", value_parser = crate::flags::duration)]
    #[serde(default, with = "crate::duration::optional_text")]
    pub timeout: Option<Duration>,
    /// Measured: the configuration as read before planning, and where from.
    #[arg(skip)]
    #[serde(default)]
    pub read: Option<Box<ConfigRead>>,
}

impl Runbook for DemoteCluster {
    const NAME: &'static str = "demote-cluster";
    const ABOUT: &'static str = "Make a primary cluster a standby of another site (patronictl demote-cluster, Patroni 4.1): verified by its standby leader";
    type Params = Params;

    fn deadline(params: &mut Params) -> Option<&mut Option<Duration>> {
        Some(&mut params.timeout)
    }

    async fn measure(
        mut params: Params,
        _target: &ClusterTarget,
        view: &ClusterView,
        probe: &impl Probe,
    ) -> Result<Params, PlanError> {
        params.read = Some(read_before_planning(params.read, view, probe).await?);
        Ok(params)
    }

    fn plan(target: &ClusterTarget, view: &ClusterView, params: &Params) -> Result<Plan, PlanError> {
        plan(target, view, params)
    }

    fn examples() -> Vec<Example<Params>> {
        vec![Example {
            file: "demote-cluster",
            params: Params {
                host: Some("10.1.0.11".into()),
                port: None,
                primary_slot_name: None,
                restore_command: None,
                timeout: None,
                read: Some(Box::new(lab_config_read())),
            },
            lab: ExampleLab::Lab,
        }]
    }
}

fn plan(target: &ClusterTarget, view: &ClusterView, params: &Params) -> Result<Plan, PlanError> {
    let read = read_config(params.read.as_deref())?;
    refuse_unless_every_member_can(view)?;
    let leader = leader_running_as(view, &PostgresRole::Primary, "demote")?;
    let standby = standby_section(params)?;
    let (write, diff) = standby_switch_step(
        target,
        view,
        read,
        &standby,
        (
            "demote-cluster",
            format!("Write standby_cluster into the configuration of {}", target.cluster),
            format!(
                "Demote {} to a standby cluster? It takes no writes from then on.",
                target.cluster
            ),
        ),
    )?;
    let answering = answering_members(view);
    let mut plan = frame(
        target,
        view,
        format!("Demote cluster {} to a standby cluster", target.cluster),
        format!(
            "Cluster {} stops taking writes: its leader {leader} restarts PostgreSQL in recovery and a standby leader (it, or another member) follows {}; the replicas follow that one. Clients that write must go to the other site. The inventory should then mark it `standby: true` (and `follows:` the other site).\n\n```diff\n{}```",
            target.cluster,
            following(params),
            diff
        ),
    );
    plan.prechecks = vec![
        Check::HealthyLeader,
        Check::LeaderIs {
            member: leader.clone(),
        },
    ];
    assume_identity(&mut plan, view);
    plan.steps.push(write);
    plan.steps.push(Step::wait(
        "standby-leader".into(),
        format!("Wait until a standby leader leads {}", target.cluster),
        Wait {
            // Patroni may hand the leader key to another member as the leader restarts.
            until: vec![
                Check::Any {
                    checks: answering
                        .iter()
                        .map(|member| Check::StandbyLeader {
                            member: member.clone(),
                        })
                        .collect(),
                },
                Check::NoMemberWritable,
            ],
            fail_if: Vec::new(),
            timeout: params.timeout.unwrap_or(DEFAULT_TIMEOUT),
            poll: Duration::from_millis(500),
            progress: Progress::MemberState { member: leader },
            stuck: Vec::new(),
        },
    ));
    plan.rollback = Some(format!(
        "pgha --cluster {} promote-cluster (the cluster takes writes again on a new timeline: only once the other site is demoted or gone)",
        target.cluster
    ));
    Ok(plan)
}

/// `standby_cluster` as the flags give it; one source of WAL at least.
fn standby_section(params: &Params) -> Result<Value, PlanError> {
    if params.host.is_none() && params.restore_command.is_none() {
        return Err(PlanError::BadInput(
            "a standby cluster follows another site: give --host (its primary) or --restore-command (its archive), or both".into(),
        ));
    }
    let mut section = Map::new();
    if let Some(host) = &params.host {
        crate::names::check_host(host).map_err(|why| PlanError::BadInput(format!("--host: {why}")))?;
        section.insert("host".into(), Value::String(host.clone()));
        section.insert("port".into(), Value::from(params.port.unwrap_or(5432)));
    }
    if let Some(slot) = &params.primary_slot_name {
        section.insert("primary_slot_name".into(), Value::String(slot.clone()));
    }
    if let Some(command) = &params.restore_command {
        section.insert("restore_command".into(), Value::String(command.clone()));
    }
    Ok(Value::Object(section))
}

fn following(params: &Params) -> String {
    match (&params.host, &params.restore_command) {
        (Some(host), None) => format!("{host}:{}", params.port.unwrap_or(5432)),
        (Some(host), Some(_)) => format!(
            "{host}:{} (and the archive when it cannot stream)",
            params.port.unwrap_or(5432)
        ),
        (None, _) => "the other site's archive (restore_command)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patroni::Version;
    use crate::plan::{Action, EtcdAction, Gate};
    use crate::runbooks::tests::lab;

    fn params() -> Params {
        DemoteCluster::examples().remove(0).params
    }

    #[test]
    fn the_plan_writes_standby_cluster_behind_the_name_and_waits_for_a_standby_leader() {
        let (target, view) = lab();
        let plan = DemoteCluster::plan(&target, &view, &params()).unwrap();
        let ids: Vec<&str> = plan.steps.iter().map(|step| step.id.as_str()).collect();
        assert_eq!(ids, ["demote-cluster", "standby-leader"]);
        assert_eq!(
            plan.steps[0].gate,
            Gate::TypeToConfirm {
                question: "Demote demo to a standby cluster? It takes no writes from then on."
                    .into(),
                expected: "demo".into()
            }
        );
        let Action::Etcd(EtcdAction::SetConfig { value, .. }) = &plan.steps[0].action else {
            panic!("{:?}", plan.steps[0].action)
        };
        let written: Value = serde_json::from_str(value).unwrap();
        assert_eq!(
            written["standby_cluster"],
            serde_json::json!({"host": "10.1.0.11", "port": 5432})
        );
        assert!(plan.summary.contains("+standby_cluster:"), "{}", plan.summary);
    }

    #[test]
    fn without_a_source_of_wal_or_on_an_old_release_it_is_refused() {
        let (target, mut view) = lab();
        let nowhere = Params {
            host: None,
            ..params()
        };
        assert!(matches!(
            DemoteCluster::plan(&target, &view, &nowhere),
            Err(PlanError::BadInput(line)) if line.contains("--host")
        ));
        let old = view.members.iter_mut().find(|m| m.name == "node2").unwrap();
        old.status.as_mut().unwrap().patroni_version = Some(Version::new(3, 3, 11));
        match DemoteCluster::plan(&target, &view, &params()) {
            Err(PlanError::Refused(line)) => {
                assert!(line.contains("Patroni 4.1.0 on every member: node2 runs 3.3.11"), "{line}");
            }
            other => panic!("{other:?}"),
        }
    }
}
