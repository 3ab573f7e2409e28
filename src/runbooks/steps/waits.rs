//! Waits for a member to stream again after a rebuild or a join: hours on a large database,
//! with the leader's base-backup progress, failing at once when waiting longer cannot help.

use std::time::Duration;

use crate::patroni::MemberState;
use crate::plan::{Check, Progress, Step, Wait};

/// States from which waiting longer cannot help.
const FAILED: [MemberState; 4] = [
    MemberState::StartFailed,
    MemberState::Crashed,
    MemberState::StopFailed,
    MemberState::RestartFailed,
];

/// The member's Patroni died: its API is gone and its DCS key expired (after `ttl`), so
/// waiting longer cannot help. Both, so that one slow answer does not fail a copy of hours.
fn gone(name: &str) -> Check {
    Check::All {
        checks: vec![
            Check::Unreachable {
                member: name.into(),
            },
            Check::NotRegistered {
                member: name.into(),
            },
        ],
    }
}

/// The long wait: hours on a large database, with the bytes the leader has streamed.
pub(crate) fn wait_streaming_step(
    name: &str,
    leader: &str,
    leader_host: String,
    max_lag: u64,
    timeout: Duration,
) -> Step {
    Step::wait(
        format!("wait-streaming-{name}"),
        format!("Wait until {name} streams from {leader}"),
        Wait {
            until: Check::caught_up(name, max_lag).into(),
            fail_if: vec![Check::state_in(name, &FAILED), gone(name)],
            timeout,
            poll: Duration::from_secs(1),
            progress: Progress::BaseBackup {
                member: name.into(),
                leader: leader.into(),
                leader_host,
            },
            stuck: Vec::new(),
        },
    )
}
