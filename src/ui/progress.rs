//! The terminal's view of a run: executor events rendered on stderr — progress bars on a
//! terminal (bytes of a base backup, or a spinner with the deadline), plain lines elsewhere
//! (CI logs, pipes), each state change once.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::exec::{Event, EventSink, Outcome};

pub struct TerminalSink {
    tty: bool,
    bar: Option<ProgressBar>,
    bar_has_length: bool,
    last_plain_progress: Option<Instant>,
}

impl TerminalSink {
    pub fn new(tty: bool) -> Self {
        TerminalSink {
            tty,
            bar: None,
            bar_has_length: false,
            last_plain_progress: None,
        }
    }

    fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn finish_bar(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        self.bar_has_length = false;
    }

    fn progress(
        &mut self,
        detail: &str,
        elapsed_ms: u64,
        timeout_ms: u64,
        done: Option<u64>,
        total: Option<u64>,
    ) {
        if !self.tty {
            // Plain output: state changes are printed as they happen; bytes copied every 2 s;
            // otherwise a heartbeat every 10 s.
            let every = if done.is_some() {
                Duration::from_secs(2)
            } else {
                Duration::from_secs(10)
            };
            let due = self
                .last_plain_progress
                .is_none_or(|last| last.elapsed() >= every);
            if due {
                self.last_plain_progress = Some(Instant::now());
                eprintln!(
                    "      … {}s of {}s: {detail}",
                    elapsed_ms / 1000,
                    timeout_ms / 1000
                );
            }
            return;
        }
        let bar = self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("      {spinner} [{elapsed_precise}] {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        if let (Some(done), Some(total)) = (done, total) {
            if !self.bar_has_length {
                bar.set_style(
                    ProgressStyle::with_template("      [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} ({eta}) {wide_msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                self.bar_has_length = true;
            }
            bar.set_length(total);
            bar.set_position(done.min(total));
        }
        let deadline = format!(
            "deadline in {}s",
            timeout_ms.saturating_sub(elapsed_ms) / 1000
        );
        bar.set_message(format!("{detail} ({deadline})"));
    }
}

impl EventSink for TerminalSink {
    fn emit(&mut self, event: &Event) {
        match event {
            Event::RunStarted { run_id, plan, .. } => {
                self.line(&format!("pgha: run {run_id}: {}", plan.title));
            }
            Event::RunResumed { plan, .. } => {
                let what = if plan.is_some() {
                    "resumed with a new plan"
                } else {
                    "resumed"
                };
                self.line(&format!("pgha: {what}"));
            }
            Event::Precheck {
                text,
                passed,
                observed,
            } => {
                let mark = if *passed { "ok  " } else { "FAIL" };
                self.line(&format!("  [{mark}] {text} ({observed})"));
            }
            Event::GateAnswered { answer, by, .. } => {
                self.line(&format!(
                    "      gate: {} ({by})",
                    if *answer { "yes" } else { "no" }
                ));
            }
            Event::StepSkipped { step, reason } => self.line(&format!("  skip {step}: {reason}")),
            Event::StepStarted { title, .. } => {
                self.finish_bar();
                self.line(&format!("  {title}"));
            }
            Event::ActionAnswered {
                status, message, ..
            } => {
                self.line(&format!(
                    "      Patroni answered HTTP {status}: {}",
                    first_line(message)
                ));
            }
            Event::CommandRan {
                command,
                status,
                stderr,
                ..
            } => {
                let said = crate::exec::last_line(stderr)
                    .map_or(String::new(), |line| format!(" ({line})"));
                self.line(&format!("      {command}: exit {status}{said}"));
            }
            Event::SilenceCreated { id, url, .. } => {
                self.line(&format!("      silence {id} created in {url}"));
            }
            Event::SilenceExpired { id, .. } => self.line(&format!("      silence {id} expired")),
            Event::ActionLost { error, .. } => self.line(&format!(
                "      no answer ({error}); verifying by observation"
            )),
            Event::Observed { observed, .. } => {
                if self.tty {
                    if let Some(bar) = &self.bar {
                        bar.set_message(observed.clone());
                    }
                } else {
                    eprintln!("      {observed}");
                }
            }
            Event::Progress {
                detail,
                elapsed_ms,
                timeout_ms,
                done_bytes,
                total_bytes,
                ..
            } => self.progress(detail, *elapsed_ms, *timeout_ms, *done_bytes, *total_bytes),
            Event::StepSucceeded {
                duration_ms,
                observed,
                ..
            } => {
                self.finish_bar();
                #[allow(clippy::cast_precision_loss)] // a duration for humans
                let seconds = *duration_ms as f64 / 1000.0;
                self.line(&format!("      done in {seconds:.1}s: {observed}"));
            }
            Event::StepFailed { reason, .. } => {
                self.finish_bar();
                self.line(&format!("      FAILED: {reason}"));
            }
            Event::RunFinished {
                outcome, detail, ..
            } => {
                self.finish_bar();
                self.line(&format!("pgha: {}: {detail}", outcome_word(*outcome)));
            }
        }
    }
}

fn outcome_word(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Succeeded => "succeeded",
        Outcome::Failed => "failed",
        Outcome::Refused => "refused",
        Outcome::Aborted => "aborted",
        Outcome::Interrupted => "interrupted",
        Outcome::Unreachable => "unreachable",
    }
}

fn first_line(text: &str) -> &str {
    let line = text.lines().next().unwrap_or("");
    if line.len() > 160 {
        &line[..line.floor_char_boundary(160)]
    } else {
        line
    }
}
