//! What the runbooks that rebuild a whole cluster share: Patroni stopped on every member at once
//! behind one gate, started again verified, and consecutive steps recorded as parallel groups.

use std::time::Duration;

use super::{PlanError, command_step, with_verification};
use crate::inventory::ClusterTarget;
use crate::observe::MemberView;
use crate::plan::{Check, Gate, ParallelGroup, Plan, Step};
use crate::remote::{ServiceAction, ServiceControl};

/// Patroni leaves, or answers again, within this once its service command returned.
const SERVICE_VERIFY: Duration = Duration::from_mins(2);

/// Patroni stopped on every member, each verified gone; `gate` on the first (the group's one
/// question), none on the others.
pub(crate) fn stop_everywhere(
    target: &ClusterTarget,
    control: &ServiceControl,
    members: &[&MemberView],
    gate: Gate,
) -> Result<Vec<Step>, PlanError> {
    let mut stops: Vec<Step> = members
        .iter()
        .map(|member| {
            command_step(target, control, ServiceAction::Stop, &member.name).map(|step| {
                with_verification(
                    Step {
                        gate: Gate::None,
                        ..step
                    },
                    Vec::new(),
                    vec![Check::Unreachable {
                        member: member.name.clone(),
                    }],
                    SERVICE_VERIFY,
                )
            })
        })
        .collect::<Result<_, _>>()?;
    if let Some(first) = stops.first_mut() {
        first.gate = gate;
    }
    Ok(stops)
}

/// Patroni started on `name` (stopped until then), done when its REST API answers.
pub(crate) fn start_verified(
    target: &ClusterTarget,
    control: &ServiceControl,
    name: &str,
) -> Result<Step, PlanError> {
    let step = command_step(target, control, ServiceAction::Start, name)?;
    Ok(with_verification(
        Step {
            gate: Gate::None,
            ..step
        },
        vec![Check::Unreachable {
            member: name.into(),
        }],
        vec![Check::Reachable {
            member: name.into(),
        }],
        SERVICE_VERIFY,
    ))
}

/// Consecutive steps that run at once, recorded as a parallel group when there are several.
#[derive(Default)]
pub(crate) struct Groups(Vec<ParallelGroup>);

impl Groups {
    pub(crate) fn add(&mut self, plan: &mut Plan, steps: Vec<Step>) {
        if steps.len() > 1 {
            self.0.push(ParallelGroup {
                steps: steps.iter().map(|step| step.id.clone()).collect(),
            });
        }
        plan.steps.extend(steps);
    }

    /// The groups, for `Plan.parallel`.
    pub(crate) fn into_parallel(self) -> Vec<ParallelGroup> {
        self.0
    }
}

/// `node1, node2, node3`.
pub(crate) fn member_names(members: &[&MemberView]) -> String {
    members
        .iter()
        .map(|member| member.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
