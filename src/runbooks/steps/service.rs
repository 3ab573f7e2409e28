//! Service control as steps: stop, start, restart, enable or disable Patroni on an inventory
//! member through the environment's template, and the verification that makes such a step done.

use std::time::Duration;

use super::PlanError;
use crate::inventory::ClusterTarget;
use crate::plan::{Action, Check, Gate, Idempotency, Progress, RemoteAction, Step, Wait};
use crate::remote::{ServiceAction, ServiceControl};

/// A service command returns once systemd (or kubectl, or the lab) has acted.
const COMMAND_TIMEOUT: Duration = Duration::from_mins(2);

/// The service command for `action` on the inventory member `name`, at the inventory's host,
/// behind a confirmation.
pub(crate) fn command_step(
    target: &ClusterTarget,
    control: &ServiceControl,
    action: ServiceAction,
    name: &str,
) -> Result<Step, PlanError> {
    let host = target.remote_host(name)?;
    let (transport, command) = control
        .command(action, name)
        .map_err(|error| PlanError::Refused(error.to_string()))?;
    Ok(Step {
        id: format!("{}-patroni-{name}", action.word()),
        title: format!("{} Patroni on {name}", capitalized(action.word())),
        action: Action::Remote(RemoteAction {
            member: name.into(),
            host: host.into(),
            transport,
            command,
            timeout: COMMAND_TIMEOUT,
        }),
        gate: Gate::Confirm {
            question: format!("{} Patroni on {name}?", capitalized(action.word())),
        },
        prechecks: Vec::new(),
        verify: None,
        idempotency: Idempotency::SafeToRepeat,
    })
}

/// The step re-checks `prechecks`, and is done — and verified — when `done` holds.
pub(crate) fn with_verification(
    step: Step,
    prechecks: Vec<Check>,
    done: Vec<Check>,
    timeout: Duration,
) -> Step {
    let member = match &step.action {
        Action::Remote(action) => action.member.clone(),
        _ => String::new(),
    };
    Step {
        prechecks,
        verify: Some(Wait {
            until: done.clone(),
            fail_if: Vec::new(),
            timeout,
            poll: Duration::from_millis(500),
            progress: Progress::MemberState { member },
            stuck: Vec::new(),
        }),
        idempotency: Idempotency::CheckStateFirst { done_when: done },
        ..step
    }
}

pub(crate) fn capitalized(word: &str) -> String {
    let mut characters = word.chars();
    characters.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(characters).collect()
    })
}
