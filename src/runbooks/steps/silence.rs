//! Silences around a body of work: the alerts a member would raise while it is rebuilt, joins or
//! leaves are muted first and unmuted last.

use std::time::Duration;

use crate::inventory::ClusterTarget;
use crate::observe::MemberView;
use crate::plan::{Action, Compensation, Gate, Idempotency, Plan, SilenceAction, Step};

/// Appends `steps` that make `member` raise alerts (lag, down) to the plan, wrapped in a silence
/// of the inventory's matchers, created first and expired last. A run aborted or refused once the
/// silence was created expires it too (a compensation); one that fails or dies leaves it to end
/// by itself after `duration`, so nothing stays muted for good. Without an Alertmanager in the
/// inventory, the steps alone.
pub(crate) fn silenced(
    plan: &mut Plan,
    target: &ClusterTarget,
    member: &MemberView,
    why: &str,
    duration: Duration,
    steps: Vec<Step>,
) {
    let Some(alertmanager) = &target.alertmanager else {
        plan.steps.extend(steps);
        return;
    };
    let host = target
        .member(&member.name)
        .map_or(member.host.as_str(), |configured| configured.host.as_str());
    let labels = alertmanager
        .matchers
        .iter()
        .map(|(name, value)| {
            let value = value
                .replace("{member}", &member.name)
                .replace("{host}", host)
                .replace("{cluster}", &target.cluster);
            (name.clone(), value)
        })
        .collect();
    let create_id = format!("silence-{}", member.name);
    let create = Step {
        id: create_id.clone(),
        title: format!("Silence alerts for {} while it is {why}", member.name),
        action: Action::Silence(SilenceAction::Create {
            url: alertmanager.url.clone(),
            labels,
            duration,
            comment: format!("pgha: {} is {why}", member.name),
        }),
        gate: Gate::None,
        prechecks: Vec::new(),
        verify: None,
        // The journal holds the id: a resumed run does not create a second one.
        idempotency: Idempotency::SafeToRepeat,
    };
    let expire = Step {
        id: format!("expire-silence-{}", member.name),
        title: format!("Expire the silence for {}", member.name),
        action: Action::Silence(SilenceAction::Expire {
            url: alertmanager.url.clone(),
            created_by: create_id,
        }),
        gate: Gate::None,
        prechecks: Vec::new(),
        verify: None,
        idempotency: Idempotency::SafeToRepeat,
    };
    plan.compensations.push(Compensation {
        after: create.id.clone(),
        step: Step {
            id: format!("undo-silence-{}", member.name),
            ..expire.clone()
        },
        on_failure: false,
    });
    plan.steps.push(create);
    plan.steps.extend(steps);
    plan.steps.push(expire);
}
