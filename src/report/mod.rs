//! How a run reads: one line of text per executor event, the same words on the terminal as it
//! happens (`terminal`) and in `pgha runs show` from the journal. Events quote the cluster and
//! its hosts (Patroni's answers, command output, observed states), so every line is made
//! printable here. The executor knows neither reader.

pub mod terminal;

use crate::exec::{Event, Outcome, last_line};
use crate::ui::printable;

/// The event as one printable line.
pub fn line(event: &Event) -> String {
    printable(&text(event)).into_owned()
}

/// How far a line is indented on the terminal: run-level lines, then steps, then what
/// happens within a step.
pub fn depth(event: &Event) -> Depth {
    match event {
        Event::RunStarted { .. } | Event::RunResumed { .. } | Event::RunFinished { .. } => {
            Depth::Run
        }
        Event::Precheck { .. }
        | Event::StepStarted { .. }
        | Event::StepSkipped { .. }
        | Event::Compensating { .. } => Depth::Step,
        _ => Depth::WithinStep,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    Run,
    Step,
    WithinStep,
}

fn text(event: &Event) -> String {
    match event {
        Event::RunStarted {
            run_id,
            plan,
            operator,
            host,
            ..
        } => format!("run {run_id} by {operator} on {host}: {}", plan.title),
        Event::RunResumed {
            operator,
            host,
            plan,
            ..
        } => {
            let what = if plan.is_some() {
                "resumed with a new plan"
            } else {
                "resumed"
            };
            format!("{what} by {operator} on {host}")
        }
        Event::Precheck {
            text,
            passed,
            observed,
        } => {
            let mark = if *passed { "ok  " } else { "FAIL" };
            format!("[{mark}] {text} ({observed})")
        }
        Event::GateAnswered { step, answer, by } => {
            format!("{step}: gate {} ({by})", if *answer { "yes" } else { "no" })
        }
        Event::StepSkipped { step, reason } => format!("{step} skipped: {reason}"),
        Event::StepStarted { title, .. } => title.clone(),
        Event::ActionAnswered {
            step,
            status,
            message,
        } => format!(
            "{step}: Patroni answered HTTP {status}: {}",
            first_line(message)
        ),
        Event::ActionLost { step, error } => {
            format!("{step}: no answer ({error}); verifying by observation")
        }
        Event::SilenceCreated { step, id, url } => format!("{step}: silence {id} created in {url}"),
        Event::SilenceExpired { step, id } => format!("{step}: silence {id} expired"),
        Event::CommandRan {
            step,
            command,
            status,
            stderr,
            ..
        } => {
            let said = last_line(stderr).map_or(String::new(), |line| format!(" ({line})"));
            format!("{step}: {command}: exit {status}{said}")
        }
        Event::Observed { step, observed } => format!("{step}: {observed}"),
        Event::Progress { detail, .. } => detail.clone(),
        Event::StepSucceeded {
            step,
            duration_ms,
            observed,
        } => {
            #[allow(clippy::cast_precision_loss)] // a duration for humans
            let seconds = *duration_ms as f64 / 1000.0;
            format!("{step} done in {seconds:.1}s: {observed}")
        }
        Event::StepFailed { step, reason } => format!("{step} FAILED: {reason}"),
        Event::Compensating { after, title, .. } => {
            format!("stopping after {after} started: undoing it: {title}")
        }
        Event::RunFinished {
            outcome, detail, ..
        } => format!("{}: {detail}", outcome_word(*outcome)),
    }
}

pub fn outcome_word(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Succeeded => "succeeded",
        Outcome::Failed => "failed",
        Outcome::Refused => "refused",
        Outcome::Aborted => "aborted",
        Outcome::Interrupted => "interrupted",
        Outcome::Unreachable => "unreachable",
    }
}

/// Patroni's answers can be long (an HTML error page): the first line, at most 160 bytes.
fn first_line(text: &str) -> &str {
    let line = text.lines().next().unwrap_or("");
    if line.len() > 160 {
        &line[..line.floor_char_boundary(160)]
    } else {
        line
    }
}
