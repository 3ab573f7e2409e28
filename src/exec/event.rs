//! The executor's events: what happened, typed. The journal stores them (one JSON line each) and
//! `resume` trusts them; the terminal renders them as lines or progress bars. The executor knows
//! neither consumer: it only asks whether the record is still kept (`EventSink::healthy`).

use serde::{Deserialize, Serialize};

use crate::exit::Exit;
use crate::plan::Plan;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        run_id: String,
        runbook: String,
        environment: String,
        cluster: String,
        plan: Box<Plan>,
        plan_hash: String,
        operator: String,
        host: String,
        pid: u32,
        pgha_version: String,
        /// How the journal is laid out (`journal::FORMAT` when written); journals from before
        /// the field existed are format 1.
        #[serde(default = "first_journal_format")]
        journal_format: u32,
        /// The cluster's database system identifier when the run started: with the plan's
        /// scope, what the run lock is keyed on, also on resume (when Patroni may be stopped).
        #[serde(default)]
        system_identifier: Option<String>,
        /// The inventory the plan was made from (`ClusterTarget::fingerprint`); absent in
        /// journals from before the field existed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        inventory_fingerprint: Option<String>,
    },
    RunResumed {
        operator: String,
        host: String,
        pid: u32,
        /// Set when `--replan` made a new plan from the current cluster.
        plan: Option<Box<Plan>>,
        plan_hash: String,
        /// The pgha that resumed, and serialised the new plan if any (empty in journals from
        /// before the field existed).
        #[serde(default)]
        pgha_version: String,
        /// With a new plan: the inventory it was made from.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        inventory_fingerprint: Option<String>,
    },
    Precheck {
        text: String,
        passed: bool,
        observed: String,
    },
    GateAnswered {
        step: String,
        answer: bool,
        by: String,
    },
    /// The step's effect was already observed, so it was not run (again).
    StepSkipped {
        step: String,
        reason: String,
    },
    /// Recorded before anything is sent: a step that started and did not finish is resumed
    /// according to its idempotency class. `index` counts from 1 in the plan; 0 is a
    /// compensation (see `Compensating`).
    StepStarted {
        step: String,
        index: usize,
        title: String,
    },
    /// Patroni's answer to a call. Not proof of the outcome: verification follows.
    ActionAnswered {
        step: String,
        status: u16,
        message: String,
    },
    /// A command ran and ended (its output with secrets masked, clipped to its last 4000 bytes).
    CommandRan {
        step: String,
        command: String,
        status: i32,
        stdout: String,
        stderr: String,
    },
    /// A silence was created in Alertmanager (its id, for `resume` and cleanup).
    SilenceCreated {
        step: String,
        url: String,
        id: String,
    },
    SilenceExpired {
        step: String,
        id: String,
    },
    /// The call was sent (or may have been) and no answer came: the outcome is unknown until the
    /// cluster is observed.
    ActionLost {
        step: String,
        error: String,
    },
    /// What a wait saw, each time it changed.
    Observed {
        step: String,
        observed: String,
    },
    /// Progress of a wait, for the terminal only (never journaled).
    Progress {
        step: String,
        elapsed_ms: u64,
        timeout_ms: u64,
        detail: String,
        done_bytes: Option<u64>,
        total_bytes: Option<u64>,
    },
    StepSucceeded {
        step: String,
        duration_ms: u64,
        observed: String,
    },
    StepFailed {
        step: String,
        reason: String,
    },
    /// The run was aborted or refused after `after` started: the plan's compensation `step`
    /// undoes it, now. Its own step events follow under its id (`StepStarted` with index 0,
    /// then `StepSucceeded`, `StepSkipped` when already undone, or `StepFailed`); once it
    /// succeeded or was skipped, `resume` counts `after` as not done.
    Compensating {
        step: String,
        after: String,
        title: String,
    },
    RunFinished {
        outcome: Outcome,
        detail: String,
        duration_ms: u64,
    },
}

fn first_journal_format() -> u32 {
    1
}

impl Event {
    /// Progress ticks are for eyes, not for the record.
    pub fn is_journaled(&self) -> bool {
        !matches!(self, Event::Progress { .. })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    /// A step failed: its action was refused or its outcome was not observed in time.
    Failed,
    /// A check refused to let the run start or a step act; nothing was changed by that step.
    Refused,
    /// The operator declined a gate.
    Aborted,
    /// Ctrl-C during a wait: resumable.
    Interrupted,
    /// A step could not reach its target (SSH, PostgreSQL): nothing was sent; resumable.
    Unreachable,
}

impl Outcome {
    pub fn exit(self) -> Exit {
        match self {
            Outcome::Succeeded => Exit::Success,
            Outcome::Failed => Exit::Failed,
            Outcome::Refused => Exit::PrecheckRefused,
            Outcome::Aborted | Outcome::Interrupted => Exit::Aborted,
            Outcome::Unreachable => Exit::Unreachable,
        }
    }

    pub fn is_resumable(self) -> bool {
        !matches!(self, Outcome::Succeeded)
    }
}

/// Something that consumes events: the journal, the terminal, a test's recorder.
pub trait EventSink {
    fn emit(&mut self, event: &Event);

    /// `Err(why)` once the sink has lost events it must keep (a journal that could not be
    /// written): the executor then changes nothing more, since `resume` could not know of it.
    fn healthy(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Several sinks, in order (the journal first: it is the record).
pub struct Sinks<'a>(pub Vec<&'a mut dyn EventSink>);

impl EventSink for Sinks<'_> {
    fn emit(&mut self, event: &Event) {
        for sink in &mut self.0 {
            sink.emit(event);
        }
    }

    /// The first sink's failure, if any.
    fn healthy(&self) -> Result<(), String> {
        self.0.iter().try_for_each(|sink| sink.healthy())
    }
}

/// Keeps every event, for tests.
#[derive(Debug, Default)]
pub struct Recorder(pub Vec<Event>);

impl EventSink for Recorder {
    fn emit(&mut self, event: &Event) {
        self.0.push(event.clone());
    }
}

/// The last non-blank line of a command's output: usually what it said about failing.
pub fn last_line(output: &str) -> Option<&str> {
    output.lines().rfind(|line| !line.trim().is_empty())
}
