//! `pgha failover --candidate M`: make M the leader of a cluster that has none — its leader
//! died while the cluster was paused, or Patroni's own leader race cannot pick anyone — as
//! patronictl's `failover`, but verified. The candidate must answer, not be tagged
//! `nofailover`, and have received at least as much WAL as every other replica that answers:
//! promoting a replica behind another throws away the writes only the other has. While a member
//! holds the leader key — healthy, or not running — a failover takes it without any of a
//! switchover's checks: pgha refuses unless the operator types that leader's name (`pgha
//! switchover` is the tool for a healthy one). Verified
//! by the candidate leading on a new timeline, then by the other replicas streaming from it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::steps::{
    consul_routes_leader, frame, leads_after_handover, member, promotable,
};
use super::{Example, ExampleLab, PlanError, Runbook};
use crate::inventory::ClusterTarget;
use crate::observe::ClusterView;
use crate::plan::{
    Action, Check, Gate, Idempotency, PatroniAction, PatroniCall, Plan, Step, Wait,
    cluster_timeline,
};

/// Patroni promotes within a loop; the new leader runs within seconds.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(90);
/// The other replicas reconnect to the new leader (a restart or a reload of each).
const FOLLOW_TIMEOUT: Duration = Duration::from_mins(2);

/// `pgha failover`.
pub struct Failover;

// Which replica to promote, and how long its promotion may take.
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
pub struct Params {
    /// The replica to promote: answering, not tagged nofailover, no replica further ahead
    #[arg(long, value_name = "NAME", value_parser = crate::flags::name)]
    pub candidate: String,
    /// Deadline for the candidate to lead on a new timeline [default: 90s]
    #[arg(long, value_name = "DURATION", value_parser = crate::flags::duration)]
    #[serde(with = "crate::duration::optional_text")]
    pub timeout: Option<Duration>,
}

impl Runbook for Failover {
    const NAME: &'static str = "failover";
    const ABOUT: &'static str =
        "Promote a replica when the cluster has no leader (with a healthy one, type its name)";
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
        let params = Params {
            candidate: "node2".into(),
            timeout: None,
        };
        vec![
            Example {
                file: "failover",
                params: params.clone(),
                lab: ExampleLab::LeaderlessLab,
            },
            Example {
                file: "failover-healthy-leader",
                params,
                lab: ExampleLab::Lab,
            },
        ]
    }
}

fn plan(target: &ClusterTarget, view: &ClusterView, params: &Params) -> Result<Plan, PlanError> {
    let candidate = member(view, &params.candidate)?;
    if view.leader.as_deref() == Some(candidate.name.as_str()) {
        return Err(PlanError::Refused(format!(
            "{} already holds the leader key: nothing to fail over",
            candidate.name
        )));
    }
    let candidate = candidate.name.clone();
    // Whoever holds the leader key, healthy or not, and how it is: either way a failover takes
    // the key from it, so its name is typed.
    let holder = view
        .leader
        .clone()
        .map(|leader| (leader, Check::HealthyLeader.evaluate(view).observed));
    let timeline = cluster_timeline(view).unwrap_or(0);
    // A standby cluster's new leader is not promoted: it replays from the primary site.
    let promotes = if target.standby {
        format!("makes {candidate} the standby leader, on the same timeline")
    } else {
        format!("promotes {candidate}, which leads on a new timeline")
    };
    let mut plan = frame(
        target,
        view,
        format!("Fail over cluster {} to {candidate}", target.cluster),
        match &holder {
            None => format!(
                "No member leads {}: Patroni {promotes}; \
                 the other replicas follow it.{}",
                target.cluster,
                if target.standby {
                    ""
                } else {
                    " Writes resume once it runs."
                }
            ),
            Some((leader, how)) => format!(
                "{how}: a failover takes the key from {leader} without a switchover's checks \
                 (`pgha switchover --candidate {candidate}` is the way with a healthy leader). \
                 Patroni {promotes}; {leader} rejoins as a replica."
            ),
        },
    );
    let ready = promotable(&candidate);
    plan.prechecks.clone_from(&ready);
    if let Some(identifier) = &view.system_identifier {
        plan.assumes.push(Check::SystemIdentifier {
            identifier: identifier.clone(),
        });
    }
    plan.steps.push(failover_step(
        view,
        &candidate,
        holder.as_ref(),
        leads_after_handover(&candidate, timeline, target.standby),
        params.timeout.unwrap_or(DEFAULT_TIMEOUT),
        ready,
    )?);
    // The replicas that answer now follow the new leader; a dead old leader rejoins when its
    // Patroni starts again, which is not this run's to wait for.
    let followers: Vec<Check> = view
        .members
        .iter()
        .filter(|member| member.name != candidate && member.is_reachable())
        .map(|member| Check::Streaming {
            member: member.name.clone(),
        })
        .collect();
    if !followers.is_empty() {
        plan.steps.push(Step::wait(
            "wait-followers".into(),
            format!("Wait until every other member that answers streams from {candidate}"),
            Wait::for_member(followers, FOLLOW_TIMEOUT, Duration::from_secs(1), &candidate),
        ));
    }
    plan.steps
        .extend(consul_routes_leader(view, &candidate, target.standby, None));
    plan.rollback = Some(format!(
        "A promotion is not undone: the old leader rejoins as a replica when its Patroni starts \
         (Patroni rewinds it); if it cannot, `pgha reinit --cluster {} --member OLD_LEADER`. To \
         move the leader back once every member streams: `pgha switchover --candidate OLD_LEADER`.",
        target.cluster
    ));
    Ok(plan)
}

fn failover_step(
    view: &ClusterView,
    candidate: &str,
    holder: Option<&(String, String)>,
    leading: Vec<Check>,
    timeout: Duration,
    ready: Vec<Check>,
) -> Result<Step, PlanError> {
    let api = member(view, candidate)?;
    let gate = match holder {
        // Taking the key from a leader unchecked: typed, never answered by --yes.
        Some((leader, how)) => Gate::TypeToConfirm {
            question: format!(
                "{how}: fail over to {candidate} anyway? Type {leader} to go on"
            ),
            expected: leader.clone(),
        },
        None => Gate::Confirm {
            question: format!("Promote {candidate} to lead {}?", view.cluster),
        },
    };
    Ok(Step {
        id: "failover".into(),
        title: format!("Fail over to {candidate}"),
        action: Action::Patroni(PatroniAction {
            member: api.name.clone(),
            api_url: api.api_url.clone(),
            call: PatroniCall::Failover {
                candidate: candidate.into(),
            },
        }),
        gate,
        prechecks: ready,
        verify: Some(Wait::for_member(
            leading,
            timeout,
            Duration::from_millis(500),
            candidate,
        )),
        idempotency: Idempotency::CheckStateFirst {
            done_when: vec![Check::LeaderIs {
                member: candidate.into(),
            }],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::testing::view_led_by;

    fn params(candidate: &str) -> Params {
        Params {
            candidate: candidate.into(),
            timeout: None,
        }
    }

    /// The recorded cluster whose leader node3 died: no leader key, node3 not answering.
    fn leaderless() -> (ClusterTarget, ClusterView) {
        let (target, mut view) = view_led_by("4.1.5", "node3", Some(1));
        view.leader = None;
        if let Some(node3) = view.members.iter_mut().find(|member| member.name == "node3") {
            node3.status = Err(crate::observe::ApiFailure {
                unreachable: true,
                message: "connection refused".into(),
            });
        }
        (target, view)
    }

    #[test]
    fn without_a_leader_the_most_advanced_replica_is_promoted_behind_a_confirmation() {
        let (target, view) = leaderless();
        let plan = plan(&target, &view, &params("node1")).unwrap();
        let step = &plan.steps[0];
        assert!(matches!(step.gate, Gate::Confirm { .. }), "{:?}", step.gate);
        let Action::Patroni(action) = &step.action else {
            panic!("a REST call")
        };
        assert_eq!(action.member, "node1", "sent to the candidate itself");
        assert_eq!(action.call.body(), serde_json::json!({"candidate": "node1"}));
        let failed: Vec<String> = plan
            .prechecks
            .iter()
            .filter(|check| !check.evaluate(&view).passed)
            .map(ToString::to_string)
            .collect();
        assert_eq!(failed, Vec::<String>::new());
        // node2 answers and follows; the dead node3 is not waited for.
        assert_eq!(plan.steps[1].id, "wait-followers");
        let Action::Wait(wait) = &plan.steps[1].action else {
            panic!("a wait")
        };
        assert_eq!(
            wait.until,
            [Check::Streaming {
                member: "node2".into()
            }]
        );
    }

    #[test]
    fn a_replica_behind_another_is_refused_by_its_precheck() {
        let (target, mut view) = leaderless();
        // node2 has received more than node1.
        for member in &mut view.members {
            if let Some(entry) = member.dcs.as_mut() {
                let lsn = crate::patroni::Lsn(if member.name == "node2" { 0x5000_0000 } else { 0x4000_0000 });
                entry.receive_lsn = Some(lsn);
                entry.replay_lsn = Some(lsn);
            }
        }
        let plan = plan(&target, &view, &params("node1")).unwrap();
        let refused: Vec<String> = plan
            .prechecks
            .iter()
            .map(|check| check.evaluate(&view))
            .filter(|verdict| !verdict.passed)
            .map(|verdict| verdict.observed)
            .collect();
        assert_eq!(refused, ["node1 is at 0/40000000; further: node2 at 0/50000000"]);
    }

    #[test]
    fn with_a_healthy_leader_the_leaders_name_must_be_typed() {
        let (target, view) = view_led_by("4.1.5", "node3", Some(1));
        let plan = plan(&target, &view, &params("node1")).unwrap();
        assert_eq!(
            plan.steps[0].gate,
            Gate::TypeToConfirm {
                question: "node3 leads and runs: fail over to node1 anyway? Type node3 to go on"
                    .into(),
                expected: "node3".into(),
            }
        );
        assert!(plan.summary.contains("pgha switchover --candidate node1"));
    }

    #[test]
    fn an_unhealthy_leader_holding_the_key_is_named_too() {
        let (target, mut view) = view_led_by("4.1.5", "node3", Some(1));
        for member in view.members.iter_mut().filter(|member| member.name == "node3") {
            if let Ok(status) = member.status.as_mut() {
                status.state = crate::patroni::MemberState::parse("stopped");
            }
            if let Some(entry) = member.dcs.as_mut() {
                entry.state = crate::patroni::MemberState::parse("stopped");
            }
        }
        let plan = plan(&target, &view, &params("node1")).unwrap();
        let Gate::TypeToConfirm { question, expected } = &plan.steps[0].gate else {
            panic!("{:?}", plan.steps[0].gate)
        };
        assert_eq!(expected, "node3");
        assert!(question.starts_with("node3 leads but is stopped:"), "{question}");
    }

    #[test]
    fn the_leader_itself_and_an_unknown_member_are_refused() {
        let (target, view) = view_led_by("4.1.5", "node3", Some(1));
        let refused = plan(&target, &view, &params("node3")).unwrap_err();
        assert!(refused.to_string().contains("node3 already holds the leader key"));
        assert!(matches!(
            plan(&target, &view, &params("node9")),
            Err(PlanError::UnknownMember { .. })
        ));
    }
}
