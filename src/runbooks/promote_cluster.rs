//! `pgha promote-cluster` (`patronictl promote-cluster`): a standby cluster made a primary
//! cluster — the half of a Geo site swap that gives this site the writes. `standby_cluster`
//! leaves the dynamic configuration (the compare-and-set `edit-config` uses); done when the
//! standby leader runs as a writable primary on a new timeline. Two primaries are the danger:
//! while the site the inventory says it `follows` still has one, the run is refused unless the
//! operator says `--while-primary-site-writable` (a rehearsal, or a site already cut off).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::steps::{
    assume_identity, followed_site_primary, frame, lab_config_read, leader_running_as,
    read_before_planning, read_config, refuse_unless_every_member_can, standby_switch_step,
};
use super::{Example, ExampleLab, PlanError, Probe, Runbook};
use crate::inventory::ClusterTarget;
use crate::observe::ClusterView;
use crate::patroni::PostgresRole;
use crate::patroni::dynamic_config::ConfigRead;
use crate::plan::{Check, Plan, Progress, Step, Wait};

/// The standby leader leaves recovery in seconds.
const DEFAULT_TIMEOUT: Duration = Duration::from_mins(2);

/// `pgha promote-cluster`.
pub struct PromoteCluster;

// Whether the operator knows the other site still takes writes.
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
pub struct Params {
    /// Promote even though the site this cluster follows still has a writable primary: two
    /// primaries until that one is demoted (a rehearsal, or a site already cut off from clients)
    #[arg(long)]
    pub while_primary_site_writable: bool,
    /// Deadline for the standby leader to run as a writable primary [default: 2m]
    #[arg(long, value_name = "DURATION", value_parser = crate::flags::duration)]
    #[serde(default, with = "crate::duration::optional_text")]
    pub timeout: Option<Duration>,
    /// Measured: the configuration as read before planning, and where from.
    #[arg(skip)]
    #[serde(default)]
    pub read: Option<Box<ConfigRead>>,
    /// Measured: a member of the followed site that answered as a writable primary.
    #[arg(skip)]
    #[serde(default)]
    pub primary_site_writable: Option<String>,
}

impl Runbook for PromoteCluster {
    const NAME: &'static str = "promote-cluster";
    const ABOUT: &'static str = "Make a standby cluster a primary cluster (patronictl promote-cluster): verified by a writable leader on a new timeline";
    type Params = Params;

    fn deadline(params: &mut Params) -> Option<&mut Option<Duration>> {
        Some(&mut params.timeout)
    }

    /// The configuration, and whether the site this one follows still has a primary.
    async fn measure(
        mut params: Params,
        target: &ClusterTarget,
        view: &ClusterView,
        probe: &impl Probe,
    ) -> Result<Params, PlanError> {
        params.read = Some(read_before_planning(params.read, view, probe).await?);
        if let (Some(followed), Ok(Some((host, _)))) =
            (&target.follows, followed_site_primary(target, probe).await)
        {
            params.primary_site_writable = Some(format!("{} at {host}", followed.cluster));
        }
        Ok(params)
    }

    fn plan(target: &ClusterTarget, view: &ClusterView, params: &Params) -> Result<Plan, PlanError> {
        plan(target, view, params)
    }

    fn examples() -> Vec<Example<Params>> {
        let mut read = lab_config_read();
        read.config["standby_cluster"] = serde_json::json!({
            "restore_command": "pgbackrest --stanza=demo archive-get %f \"%p\"",
        });
        vec![Example {
            file: "promote-cluster",
            params: Params {
                while_primary_site_writable: false,
                timeout: None,
                read: Some(Box::new(read)),
                primary_site_writable: None,
            },
            lab: ExampleLab::StandbyLab,
        }]
    }
}

fn plan(target: &ClusterTarget, view: &ClusterView, params: &Params) -> Result<Plan, PlanError> {
    let read = read_config(params.read.as_deref())?;
    refuse_unless_every_member_can(view)?;
    let leader = leader_running_as(view, &PostgresRole::StandbyLeader, "promote")?;
    if let Some(site) = &params.primary_site_writable
        && !params.while_primary_site_writable
    {
        return Err(PlanError::Refused(format!(
            "the site {} follows still has a writable primary ({site}): promoting now makes two primaries; demote it first (`pgha --cluster {} demote-cluster …`), or pass --while-primary-site-writable",
            target.cluster,
            site.split(' ').next().unwrap_or_default()
        )));
    }
    if read.config.get("standby_cluster").is_none_or(serde_json::Value::is_null) {
        return Err(PlanError::Refused(format!(
            "the dynamic configuration of {} has no standby_cluster to remove",
            target.cluster
        )));
    }
    let (write, diff) = standby_switch_step(
        target,
        view,
        read,
        &serde_json::Value::Null,
        (
            "promote-cluster",
            format!("Remove standby_cluster from the configuration of {}", target.cluster),
            format!(
                "Promote {} to a primary cluster? It takes writes from then on.",
                target.cluster
            ),
        ),
    )?;
    let timeline = crate::plan::cluster_timeline(view).unwrap_or(0);
    let mut plan = frame(
        target,
        view,
        format!("Promote standby cluster {} to a primary cluster", target.cluster),
        format!(
            "Cluster {} stops following its primary site: its standby leader {leader} leaves recovery and takes writes on a new timeline; the replicas follow it. The other site must not take writes meanwhile (demote it, or keep clients off it). The inventory should then drop `standby: true` from the cluster.\n\n```diff\n{}```",
            target.cluster,
            diff
        ),
    );
    plan.prechecks = vec![Check::StandbyLeader {
        member: leader.clone(),
    }];
    assume_identity(&mut plan, view);
    plan.steps.push(write);
    plan.steps.push(Step::wait(
        "writable-leader".into(),
        format!("Wait until {} is led by a writable primary on a new timeline", target.cluster),
        Wait {
            until: vec![
                Check::HealthyLeader,
                Check::SomeMemberWritable,
                Check::TimelineAbove { timeline },
            ],
            fail_if: Vec::new(),
            timeout: params.timeout.unwrap_or(DEFAULT_TIMEOUT),
            poll: Duration::from_millis(500),
            progress: Progress::MemberState { member: leader },
            stuck: Vec::new(),
        },
    ));
    plan.rollback = Some(
        "none in place: the promoted cluster has left the other site's timeline; to follow that site again, demote it and rebuild it from the other site's backup (pgha demote-cluster, then pgha geo-resetup)".into(),
    );
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Gate;
    use crate::runbooks::tests::{lab, standby_lab};

    fn params() -> Params {
        PromoteCluster::examples().remove(0).params
    }

    #[test]
    fn a_standby_cluster_loses_standby_cluster_behind_its_name() {
        let (target, view) = standby_lab();
        let plan = PromoteCluster::plan(&target, &view, &params()).unwrap();
        let ids: Vec<&str> = plan.steps.iter().map(|step| step.id.as_str()).collect();
        assert_eq!(ids, ["promote-cluster", "writable-leader"]);
        assert!(matches!(&plan.steps[0].gate, Gate::TypeToConfirm { expected, .. } if *expected == target.cluster));
        assert!(plan.summary.contains("-standby_cluster:"), "{}", plan.summary);
    }

    #[test]
    fn a_primary_cluster_or_a_writable_primary_site_is_refused() {
        let (target, view) = lab();
        assert!(matches!(
            PromoteCluster::plan(&target, &view, &params()),
            Err(PlanError::Refused(line)) if line.contains("not as standby_leader: nothing to promote")
        ));
        let (target, view) = standby_lab();
        let meanwhile = Params {
            primary_site_writable: Some("demo at 127.0.0.141".into()),
            ..params()
        };
        match PromoteCluster::plan(&target, &view, &meanwhile) {
            Err(PlanError::Refused(line)) => {
                assert!(line.contains("two primaries"), "{line}");
                assert!(line.contains("--while-primary-site-writable"), "{line}");
            }
            other => panic!("{other:?}"),
        }
        let knowingly = Params {
            while_primary_site_writable: true,
            ..meanwhile
        };
        assert!(PromoteCluster::plan(&target, &view, &knowingly).is_ok());
    }
}
