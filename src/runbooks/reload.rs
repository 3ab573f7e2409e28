//! `pgha reload [--member M]`: Patroni re-reads its configuration file (and PostgreSQL its
//! own) on every member at once, or on one — `patronictl reload`. Nothing stops: each member
//! must still answer, running or streaming, once it reloaded. A parameter that only a restart applies
//! shows as a pending restart in `pgha status`, for `pgha restart --pending-only`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::steps::{assume_identity, frame, listed};
use super::{Example, ExampleLab, PlanError, Runbook};
use crate::inventory::ClusterTarget;
use crate::observe::{ClusterView, MemberView};
use crate::patroni::MemberState;
use crate::plan::{
    Action, Check, Gate, Idempotency, ParallelGroup, PatroniAction, PatroniCall, Plan, Progress,
    Step, Wait,
};

/// A reload is applied within Patroni's next loop (`loop_wait`, 10 s by default).
const SETTLE_TIMEOUT: Duration = Duration::from_mins(1);

/// `pgha reload`.
pub struct Reload;

// Which member; every registered one when none is named.
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
pub struct Params {
    /// Only this member [default: every member of the cluster]
    #[arg(long, value_name = "NAME", value_parser = crate::flags::name)]
    pub member: Option<String>,
}

impl Runbook for Reload {
    const NAME: &'static str = "reload";
    const ABOUT: &'static str =
        "Make Patroni re-read its configuration file on every member, or on one (patronictl reload)";
    type Params = Params;

    fn plan(target: &ClusterTarget, view: &ClusterView, params: &Params) -> Result<Plan, PlanError> {
        let members = match &params.member {
            Some(name) => vec![listed(target, view, name)?],
            None => view
                .members
                .iter()
                .filter(|member| member.dcs.is_some())
                .map(|member| listed(target, view, &member.name))
                .collect::<Result<_, _>>()?,
        };
        if members.is_empty() {
            return Err(PlanError::Refused(
                "no member is registered in the DCS: there is no Patroni to reload".into(),
            ));
        }
        let names: Vec<&str> = members.iter().map(|member| member.name.as_str()).collect();
        let mut plan = frame(
            target,
            view,
            format!("Reload Patroni's configuration on {}", names.join(", ")),
            format!(
                "Each of {} re-reads its Patroni configuration file and PostgreSQL its own; nothing stops. A setting only a restart applies leaves the member with a pending restart (see `pgha status`, then `pgha restart --pending-only`).",
                names.join(", ")
            ),
        );
        plan.prechecks = names
            .iter()
            .map(|name| Check::Reachable {
                member: (*name).into(),
            })
            .collect();
        assume_identity(&mut plan, view);
        plan.steps = members.iter().map(|member| reload_step(member)).collect();
        plan.steps[0].gate = Gate::Confirm {
            question: format!("Reload the configuration of {}?", names.join(", ")),
        };
        // Each member reads its own file: nothing orders them (patronictl reloads all at once).
        if plan.steps.len() > 1 {
            plan.parallel.push(ParallelGroup {
                steps: plan.steps.iter().map(|step| step.id.clone()).collect(),
            });
        }
        plan.rollback = Some(
            "restore the previous configuration file on the member, then `pgha reload --member NAME` again".into(),
        );
        Ok(plan)
    }

    fn examples() -> Vec<Example<Params>> {
        vec![Example {
            file: "reload",
            params: Params { member: None },
            lab: ExampleLab::Lab,
        }]
    }
}

/// `POST /reload` to the member, verified by the member answering and serving again.
fn reload_step(member: &MemberView) -> Step {
    let name = &member.name;
    let serving = vec![
        Check::Reachable {
            member: name.clone(),
        },
        Check::state_in(name, &[MemberState::Running, MemberState::Streaming]),
    ];
    Step {
        id: format!("reload-{name}"),
        title: format!("Reload {name}'s configuration"),
        action: Action::Patroni(PatroniAction {
            member: name.clone(),
            api_url: member.api_url.clone(),
            call: PatroniCall::Reload,
        }),
        gate: Gate::None,
        prechecks: Vec::new(),
        verify: Some(Wait {
            until: serving,
            fail_if: Vec::new(),
            timeout: SETTLE_TIMEOUT,
            poll: Duration::from_secs(1),
            progress: Progress::Checks,
            stuck: Vec::new(),
        }),
        // Reading the same file twice changes nothing more.
        idempotency: Idempotency::SafeToRepeat,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runbooks::tests::{lab, lab_with_spare, lab_without};

    fn plan_for(target: &ClusterTarget, view: &ClusterView, member: Option<&str>) -> Result<Plan, PlanError> {
        Reload::plan(
            target,
            view,
            &Params {
                member: member.map(Into::into),
            },
        )
    }

    #[test]
    fn every_registered_member_reloads_after_one_confirmation() {
        // node4 is in the inventory but not started: nothing there reads a file.
        let (target, view) = lab_with_spare();
        let plan = plan_for(&target, &view, None).unwrap();
        let ids: Vec<&str> = plan.steps.iter().map(|step| step.id.as_str()).collect();
        assert_eq!(ids, ["reload-node1", "reload-node2", "reload-node3"]);
        assert_eq!(plan.batches(), vec![0..3], "the three at once");
        assert!(matches!(plan.steps[0].gate, Gate::Confirm { .. }));
        assert!(plan.steps[1..].iter().all(|step| step.gate == Gate::None));
        assert!(plan.typed_confirmations().is_empty(), "nothing destructive");
        for step in &plan.steps {
            let Action::Patroni(action) = &step.action else {
                panic!("a REST call")
            };
            assert_eq!(action.call, PatroniCall::Reload);
            assert!(step.verify.is_some(), "every reload is verified");
        }
    }

    #[test]
    fn one_member_when_named_and_an_unknown_one_is_bad_input() {
        let (target, view) = lab();
        let plan = plan_for(&target, &view, Some("node2")).unwrap();
        assert_eq!(plan.steps.len(), 1);
        assert!(plan.parallel.is_empty());
        assert_eq!(plan.steps[0].id, "reload-node2");
        let error = plan_for(&target, &view, Some("node9")).unwrap_err();
        assert!(matches!(error, PlanError::UnknownMember { .. }), "{error}");
        assert_eq!(error.exit(), crate::exit::Exit::BadInput);
    }

    /// Credentials go only to members pgha was given: one only the DCS lists is refused.
    #[test]
    fn a_member_only_the_dcs_lists_gets_no_call() {
        let (target, view) = lab_without("node3");
        let error = plan_for(&target, &view, None).unwrap_err();
        assert_eq!(error.exit(), crate::exit::Exit::BadInput);
        assert!(error.to_string().contains("node3"), "{error}");
    }
}
