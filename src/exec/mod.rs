//! The executor: runs a plan's steps in order against the world, through two small traits — an
//! `Observer` that can only look and an `Actuator` that changes things — so that a dry-run, which
//! is only ever given an `Observer`, cannot mutate by construction. Every step: skip if its
//! effect is already observed (check-state-first steps), answer its gate, re-observe and re-check
//! its pre-conditions, record that it starts, act once (never retried), then verify the outcome
//! by observing the cluster within a deadline. Everything that happens is an `Event`; once the
//! record cannot be kept (a journal write failed), no further step that changes anything starts.

mod event;
mod gate;
mod live;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

pub use event::{Event, EventSink, Outcome, Recorder, Sinks, last_line};
pub use gate::{GatePolicy, Prompt, TerminalPrompt};
pub use live::LiveCluster;

use crate::alerts::AlertError;
use crate::consul::ConsulError;
use crate::exit::Exit;
use crate::observe::{ClusterView, ObserveError};
use crate::patroni::config_file;
use crate::patroni::{ActionResponse, PatroniError};
use crate::plan::render::CheckedPrecheck;
use crate::plan::{
    Action, Check, ConsulAction, Idempotency, PatroniAction, Plan, Progress, RemoteAction,
    SilenceAction, SqlAction, Step, TagAction, Verdict, Wait,
};
use crate::postgres::{BackupProgress, SqlError};
use crate::remote::{CommandOutput, RemoteError};
use crate::ui::human_bytes;

/// Looks at the cluster. Never changes it.
#[allow(async_fn_in_trait)] // used generically, never as a trait object
pub trait Observer {
    async fn observe(&self) -> Result<ClusterView, ObserveError>;
    /// A base backup the server at `host` is streaming, if it can be asked.
    async fn backup_progress(&self, host: &str) -> Option<BackupProgress>;
    /// A silence's state in Alertmanager (`active`, `pending`, `expired`), if it can be asked.
    async fn silence_state(&self, url: &str, id: &str) -> Option<String>;
    /// Probes what the plan needs besides the cluster's state, without changing anything:
    /// the REST credentials (a request Patroni rejects before doing anything) when configured,
    /// and each Alertmanager the plan silences through.
    async fn access(&self, plan: &Plan, view: &ClusterView) -> Vec<CheckedPrecheck>;
}

/// Changes the cluster: one call per invocation, never retried here.
#[allow(async_fn_in_trait)]
pub trait Actuator {
    async fn patroni(&self, action: &PatroniAction) -> Result<ActionResponse, PatroniError>;
    async fn sql(&self, action: &SqlAction) -> Result<(), SqlError>;
    /// Runs a command; the output has its secrets masked.
    async fn remote(&self, action: &RemoteAction) -> Result<CommandOutput, RemoteError>;
    /// Runs a command whose input and output are data pgha keeps to itself (a configuration
    /// file holding passwords): `input` on its stdin, the output unmasked, neither recorded.
    async fn remote_private(
        &self,
        action: &RemoteAction,
        input: Option<&[u8]>,
    ) -> Result<CommandOutput, RemoteError>;
    /// Creates a silence; returns its id.
    async fn create_silence(
        &self,
        url: &str,
        labels: &std::collections::BTreeMap<String, String>,
        duration: Duration,
        comment: &str,
    ) -> Result<String, AlertError>;
    async fn expire_silence(&self, url: &str, id: &str) -> Result<(), AlertError>;
    async fn consul(&self, action: &ConsulAction) -> Result<(), ConsulError>;
}

/// Where a run starts: nothing done (a new run), or what the journal says was done.
#[derive(Debug, Clone, Default)]
pub struct ResumePoint {
    pub finished: BTreeSet<String>,
    /// The step that started and did not finish.
    pub unfinished: Option<String>,
    /// Silences this run created and has not expired, by the step that created them.
    pub silences: BTreeMap<String, String>,
}

/// How a run ended, with a line saying why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finish {
    pub outcome: Outcome,
    pub detail: String,
}

impl Finish {
    fn new(outcome: Outcome, detail: impl Into<String>) -> Self {
        Finish {
            outcome,
            detail: detail.into(),
        }
    }
}

/// Evaluates checks against one observation, for pre-checks and dry-runs.
pub fn evaluate(checks: &[Check], view: &ClusterView) -> Vec<CheckedPrecheck> {
    checks
        .iter()
        .map(|check| CheckedPrecheck::new(check, check.evaluate(view)))
        .collect()
}

pub struct Executor<'a, W> {
    world: &'a W,
    /// Silences created in this run and not yet expired: step id → silence id.
    silences: BTreeMap<String, String>,
    /// "run ID by OPERATOR", for silence comments.
    run_label: String,
    prompt: Arc<dyn Prompt>,
    policy: GatePolicy,
    sink: &'a mut dyn EventSink,
    interrupt: watch::Receiver<bool>,
    /// Set when the run's lock in Consul is lost: no further change may be made.
    lease_lost: Option<Arc<AtomicBool>>,
}

/// How a step ended.
enum StepEnd {
    Done,
    Skipped(String),
    Stop(Finish),
}

impl<'a, W: Observer + Actuator> Executor<'a, W> {
    pub fn new(
        world: &'a W,
        prompt: Arc<dyn Prompt>,
        policy: GatePolicy,
        sink: &'a mut dyn EventSink,
        interrupt: watch::Receiver<bool>,
    ) -> Self {
        Executor {
            world,
            silences: BTreeMap::new(),
            run_label: String::new(),
            prompt,
            policy,
            sink,
            interrupt,
            lease_lost: None,
        }
    }

    /// Makes every change conditional on the run's Consul lock still being held.
    #[must_use]
    pub fn with_lease(mut self, lost: Option<Arc<AtomicBool>>) -> Self {
        self.lease_lost = lost;
        self
    }

    /// Names the run in what it leaves behind (silence comments).
    #[must_use]
    pub fn with_run_label(mut self, label: String) -> Self {
        self.run_label = label;
        self
    }

    /// Runs the plan's steps from `resume`, emitting events, and says how it ended. The caller
    /// has checked the plan's pre-checks and records the run's start and finish. A run that is
    /// aborted or refused expires the silences it created; a failed or interrupted one keeps
    /// them for `resume` (they end by themselves at their end time).
    pub async fn run(&mut self, plan: &Plan, resume: &ResumePoint) -> Finish {
        self.silences.clone_from(&resume.silences);
        let mut finish = self.run_steps(plan, resume).await;
        match finish.outcome {
            Outcome::Aborted | Outcome::Refused => self.expire_silences(plan).await,
            Outcome::Failed | Outcome::Interrupted if !self.silences.is_empty() => {
                let ids: Vec<&str> = self.silences.values().map(String::as_str).collect();
                finish.detail = format!(
                    "{}; silence {} stays until it ends (`pgha resume` expires it)",
                    finish.detail,
                    ids.join(", ")
                );
            }
            _ => {}
        }
        finish
    }

    async fn run_steps(&mut self, plan: &Plan, resume: &ResumePoint) -> Finish {
        let total = plan.steps.len();
        for (index, step) in plan.steps.iter().enumerate() {
            if resume.finished.contains(&step.id) {
                continue;
            }
            let interrupted_here = resume.unfinished.as_deref() == Some(step.id.as_str());
            match self.step(plan, index, total, step, interrupted_here).await {
                StepEnd::Done => {}
                StepEnd::Skipped(reason) => self.sink.emit(&Event::StepSkipped {
                    step: step.id.clone(),
                    reason,
                }),
                StepEnd::Stop(finish) => return finish,
            }
        }
        let steps = if total == 1 {
            "1 step".to_string()
        } else {
            format!("{total} steps")
        };
        Finish::new(Outcome::Succeeded, format!("{}: {steps} done", plan.title))
    }

    async fn step(
        &mut self,
        plan: &Plan,
        index: usize,
        total: usize,
        step: &Step,
        interrupted_here: bool,
    ) -> StepEnd {
        // Ctrl-C during the previous step: stop here, before this one starts.
        if *self.interrupt.borrow() {
            return StepEnd::Stop(Finish::new(
                Outcome::Interrupted,
                format!(
                    "stopped before {:?} at the operator's request (Ctrl-C)",
                    step.title
                ),
            ));
        }
        // Look first: a step whose effect is visible is not done twice.
        if let Idempotency::CheckStateFirst { done_when } = &step.idempotency
            && let Ok(view) = self.world.observe().await
            && let Some(observed) = all_hold(done_when, &view)
        {
            return StepEnd::Skipped(format!("already done: {observed}"));
        }
        if interrupted_here && step.idempotency == Idempotency::AskHuman {
            let gate = crate::plan::Gate::Confirm {
                question: format!(
                    "Step {:?} started in an earlier run and did not finish. Run it again?",
                    step.title
                ),
            };
            if let Some(finish) = self.gate(step, &gate).await {
                return StepEnd::Stop(finish);
            }
        }
        if let Some(finish) = self.gate(step, &step.gate).await {
            return StepEnd::Stop(finish);
        }
        // The cluster moves while a human reads a prompt: re-observe and re-check now.
        if (step.action.mutates() || !step.prechecks.is_empty())
            && let Err(finish) = self.recheck(plan, step).await
        {
            return StepEnd::Stop(finish);
        }
        if step.action.mutates()
            && self
                .lease_lost
                .as_ref()
                .is_some_and(|lost| lost.load(Ordering::SeqCst))
        {
            return StepEnd::Stop(self.fail(
                step,
                Outcome::Failed,
                "the run's lock in Consul was lost (its session could not be renewed): stopped before this step, which was not started; `pgha resume` takes the lock again",
            ));
        }
        let started = Instant::now();
        self.sink.emit(&Event::StepStarted {
            step: step.id.clone(),
            index: index + 1,
            title: format!("[{}/{total}] {}", index + 1, step.title),
        });
        // Checked after the step's start was to be recorded: that record is what tells `resume`
        // the step may have acted, so nothing is changed without it.
        if step.action.mutates()
            && let Err(lost) = self.sink.healthy()
        {
            return StepEnd::Stop(self.fail(
                step,
                Outcome::Failed,
                format!("{lost}: stopped before this step changed anything; `pgha resume` continues once that is fixed"),
            ));
        }
        let acted = match &step.action {
            Action::Patroni(action) => self.call_patroni(step, action).await,
            Action::Sql(action) => match self.world.sql(action).await {
                Ok(()) => Ok(String::from("done")),
                Err(error) => {
                    let outcome = outcome_of(error.exit());
                    Err(self.fail(step, outcome, error.to_string()))
                }
            },
            Action::Remote(action) => self.run_command(step, action).await,
            Action::Tag(action) => self.tag(step, action).await,
            Action::Silence(action) => self.silence(step, action).await,
            Action::Consul(action) => self.call_consul(step, action).await,
            // The gate was the operator saying it is done.
            Action::Manual(_) => Ok(format!("confirmed by {}", self.policy.operator)),
            Action::Wait(wait) => self.wait(step, wait).await,
        };
        let mut observed = match acted {
            Ok(observed) => observed,
            Err(finish) => return StepEnd::Stop(finish),
        };
        if let Some(verify) = &step.verify {
            observed = match self.wait(step, verify).await {
                Ok(observed) => observed,
                Err(finish) => return StepEnd::Stop(finish),
            };
        }
        self.sink.emit(&Event::StepSucceeded {
            step: step.id.clone(),
            duration_ms: millis(started.elapsed()),
            observed,
        });
        StepEnd::Done
    }

    /// Answers a gate; `Some` when the run must stop.
    async fn gate(&mut self, step: &Step, gate: &crate::plan::Gate) -> Option<Finish> {
        let answer = gate::answer(gate, &self.policy, &self.prompt, &mut self.interrupt).await;
        match answer {
            gate::Answer::NotNeeded => None,
            gate::Answer::Given { yes, by } => {
                self.sink.emit(&Event::GateAnswered {
                    step: step.id.clone(),
                    answer: yes,
                    by: by.clone(),
                });
                (!yes).then(|| {
                    Finish::new(
                        Outcome::Aborted,
                        format!("declined at {:?} ({by})", step.title),
                    )
                })
            }
            gate::Answer::Interrupted => {
                self.sink.emit(&Event::GateAnswered {
                    step: step.id.clone(),
                    answer: false,
                    by: "Ctrl-C".into(),
                });
                Some(Finish::new(
                    Outcome::Aborted,
                    format!("interrupted at the gate of {:?}", step.title),
                ))
            }
            gate::Answer::Refused(reason) => Some(Finish::new(Outcome::Refused, reason)),
        }
    }

    async fn recheck(&mut self, plan: &Plan, step: &Step) -> Result<(), Finish> {
        let view = match self.world.observe().await {
            Ok(view) => view,
            Err(error) => {
                return Err(self.fail(
                    step,
                    Outcome::Refused,
                    format!("cannot observe the cluster: {error}"),
                ));
            }
        };
        for check in plan.assumes.iter().chain(&step.prechecks) {
            let verdict = check.evaluate(&view);
            if !verdict.passed {
                return Err(self.fail(
                    step,
                    Outcome::Refused,
                    format!("refused: {check} does not hold ({})", verdict.observed),
                ));
            }
        }
        Ok(())
    }

    /// Sends one call. The answer is recorded but not trusted: only an explicit refusal ends
    /// the step here; anything else goes on to verification by observation.
    async fn call_patroni(
        &mut self,
        step: &Step,
        action: &PatroniAction,
    ) -> Result<String, Finish> {
        match self.world.patroni(action).await {
            Ok(answer) => {
                self.sink.emit(&Event::ActionAnswered {
                    step: step.id.clone(),
                    status: answer.status,
                    message: answer.message.clone(),
                });
                // 2xx: accepted. 503: Patroni could not tell ("status unknown") — it may well
                // have happened. Other answers are refusals: nothing was done.
                if answer.is_success() || answer.status == 503 {
                    Ok(format!("HTTP {} {}", answer.status, answer.message))
                } else {
                    Err(self.fail(
                        step,
                        Outcome::Failed,
                        format!(
                            "{} refused the call: HTTP {} {}",
                            action.member, answer.status, answer.message
                        ),
                    ))
                }
            }
            Err(error) if error.is_unreachable() => {
                // Sent, perhaps received: the cluster will tell.
                self.sink.emit(&Event::ActionLost {
                    step: step.id.clone(),
                    error: error.to_string(),
                });
                Ok(format!("no answer ({error}); verifying by observation"))
            }
            Err(error) => Err(self.fail(step, Outcome::Failed, error.to_string())),
        }
    }

    /// One Consul write. A lost answer is settled by the step's verification, like a REST call.
    async fn call_consul(&mut self, step: &Step, action: &ConsulAction) -> Result<String, Finish> {
        match self.world.consul(action).await {
            Ok(()) => Ok(format!("{}: done", action.request_line())),
            Err(error @ ConsulError::Unreachable { .. }) => {
                self.sink.emit(&Event::ActionLost {
                    step: step.id.clone(),
                    error: error.to_string(),
                });
                Ok(format!("no answer ({error}); verifying by observation"))
            }
            Err(error) => Err(self.fail(step, Outcome::Failed, error.to_string())),
        }
    }

    /// Creates or expires a silence, verified by asking Alertmanager for its state.
    async fn silence(&mut self, step: &Step, action: &SilenceAction) -> Result<String, Finish> {
        match action {
            SilenceAction::Create {
                url,
                labels,
                duration,
                comment,
            } => {
                if let Some(id) = self.silences.get(&step.id) {
                    return Ok(format!("silence {id} already created by this run"));
                }
                let comment = if self.run_label.is_empty() {
                    comment.clone()
                } else {
                    format!("{comment} ({})", self.run_label)
                };
                let id = match self
                    .world
                    .create_silence(url, labels, *duration, &comment)
                    .await
                {
                    Ok(id) => id,
                    Err(error) => return Err(self.fail(step, Outcome::Failed, error.to_string())),
                };
                self.sink.emit(&Event::SilenceCreated {
                    step: step.id.clone(),
                    url: url.clone(),
                    id: id.clone(),
                });
                self.silences.insert(step.id.clone(), id.clone());
                match self.world.silence_state(url, &id).await.as_deref() {
                    Some("active" | "pending") => Ok(format!("silence {id} is active")),
                    state => Err(self.fail(
                        step,
                        Outcome::Failed,
                        format!("silence {id} is not active in Alertmanager ({state:?})"),
                    )),
                }
            }
            SilenceAction::Expire { url, created_by } => {
                let Some(id) = self.silences.get(created_by).cloned() else {
                    return Ok("no silence of this run to expire".into());
                };
                if let Err(error) = self.world.expire_silence(url, &id).await {
                    return Err(self.fail(step, Outcome::Failed, error.to_string()));
                }
                self.sink.emit(&Event::SilenceExpired {
                    step: step.id.clone(),
                    id: id.clone(),
                });
                self.silences.remove(created_by);
                match self.world.silence_state(url, &id).await.as_deref() {
                    Some("expired") => Ok(format!("silence {id} expired")),
                    state => Err(self.fail(
                        step,
                        Outcome::Failed,
                        format!("silence {id} did not expire ({state:?})"),
                    )),
                }
            }
        }
    }

    /// Expires what this run silenced: an aborted run must not leave alerts muted.
    async fn expire_silences(&mut self, plan: &Plan) {
        for (creator, id) in std::mem::take(&mut self.silences) {
            let url = plan.steps.iter().find_map(|step| match &step.action {
                Action::Silence(SilenceAction::Create { url, .. }) if step.id == creator => {
                    Some(url.clone())
                }
                _ => None,
            });
            if let Some(url) = url
                && self.world.expire_silence(&url, &id).await.is_ok()
            {
                self.sink.emit(&Event::SilenceExpired { step: creator, id });
            }
        }
    }

    /// Runs one command. Exit 0 goes on to verification; another status is a failure with what
    /// the command said; a timeout or a dropped connection leaves the outcome to observation.
    async fn run_command(&mut self, step: &Step, action: &RemoteAction) -> Result<String, Finish> {
        match self.world.remote(action).await {
            Ok(output) => {
                self.sink.emit(&Event::CommandRan {
                    step: step.id.clone(),
                    command: action.describe(),
                    status: output.status,
                    stdout: clip(&output.stdout),
                    stderr: clip(&output.stderr),
                });
                if output.success() {
                    Ok(format!("{} exited 0", action.command.program))
                } else {
                    let said = last_line(&output.stderr).or_else(|| last_line(&output.stdout));
                    Err(self.fail(step, Outcome::Failed, command_failed(action, &output, said)))
                }
            }
            Err(error) if error.outcome_unknown() => {
                self.sink.emit(&Event::ActionLost {
                    step: step.id.clone(),
                    error: error.to_string(),
                });
                Ok(format!("{error}; verifying by observation"))
            }
            Err(error) => Err(self.fail(step, outcome_of(error.exit()), error.to_string())),
        }
    }

    /// Sets a tag in a member's Patroni configuration file: read, edited in memory (the
    /// smallest change, proven by parsing), written back only if unchanged meanwhile. What the
    /// file says is never recorded: only that it was read and written.
    async fn tag(&mut self, step: &Step, action: &TagAction) -> Result<String, Finish> {
        let over_ssh = |command| RemoteAction {
            member: action.member.clone(),
            host: action.host.clone(),
            transport: crate::remote::Transport::Ssh,
            command,
            timeout: action.timeout,
        };
        let read = over_ssh(action.read_command());
        let original = self.private_command(step, &read, None).await?;
        let edited = match config_file::set_tag(&original, &action.tag, action.value) {
            Ok(None) => {
                return Ok(format!(
                    "tags.{} is already {} in {}",
                    action.tag, action.value, action.path
                ));
            }
            Ok(Some(edited)) => edited,
            Err(error) => {
                return Err(self.fail(
                    step,
                    Outcome::Failed,
                    format!("{} on {}: {error}", action.path, action.host),
                ));
            }
        };
        let write = over_ssh(action.write_command(&crate::plan::sha256_hex(original.as_bytes())));
        self.private_command(step, &write, Some(edited.as_bytes()))
            .await?;
        Ok(format!("set {}", action.describe()))
    }

    /// One command of a private exchange: recorded with its status and errors, never with
    /// its stdout (the data) or its input; the stdout is returned.
    async fn private_command(
        &mut self,
        step: &Step,
        action: &RemoteAction,
        input: Option<&[u8]>,
    ) -> Result<String, Finish> {
        match self.world.remote_private(action, input).await {
            Ok(output) => {
                self.sink.emit(&Event::CommandRan {
                    step: step.id.clone(),
                    command: action.describe(),
                    status: output.status,
                    stdout: "(not recorded: Patroni's configuration holds passwords)".into(),
                    stderr: clip(&output.stderr),
                });
                if output.success() {
                    return Ok(output.stdout);
                }
                // Only stderr: the stdout of a private command is the data kept to itself.
                let said = last_line(&output.stderr);
                Err(self.fail(step, Outcome::Failed, command_failed(action, &output, said)))
            }
            Err(error) => Err(self.fail(step, outcome_of(error.exit()), error.to_string())),
        }
    }

    /// Polls until every `until` check holds, failing at once when a `fail_if` check holds, at
    /// the deadline, or when interrupted (the run is then resumable).
    async fn wait(&mut self, step: &Step, wait: &Wait) -> Result<String, Finish> {
        let started = Instant::now();
        // Durations are capped when parsed; far past any real deadline all the same.
        let deadline = started
            .checked_add(wait.timeout)
            .unwrap_or_else(|| started + crate::duration::MAX);
        let mut last_observed = String::new();
        let mut backup_total: Option<u64> = None;
        loop {
            // A look never holds the wait past its deadline (a member slow to answer, SQL
            // that hangs): it is cut there, and the deadline decides.
            let look_until = deadline.max(Instant::now() + MINIMUM_LOOK);
            let observation = match tokio::time::timeout_at(look_until, self.world.observe()).await
            {
                Ok(observation) => observation.map_err(|error| error.to_string()),
                Err(_) => Err("no answer before the deadline".to_string()),
            };
            let Judgement {
                observed,
                done,
                failed,
            } = judge(wait, observation.as_ref());
            if observed != last_observed {
                self.sink.emit(&Event::Observed {
                    step: step.id.clone(),
                    observed: observed.clone(),
                });
                last_observed.clone_from(&observed);
            }
            if let Some((check, seen)) = failed {
                return Err(self.fail(
                    step,
                    Outcome::Failed,
                    format!("{check} ({seen}): waiting longer cannot help"),
                ));
            }
            if done {
                return Ok(observed);
            }
            let (done_bytes, total_bytes) = tokio::time::timeout_at(
                deadline,
                self.progress_bytes(&wait.progress, &mut backup_total),
            )
            .await
            .unwrap_or((backup_total, backup_total));
            self.sink.emit(&Event::Progress {
                step: step.id.clone(),
                elapsed_ms: millis(started.elapsed()),
                timeout_ms: millis(wait.timeout),
                detail: progress_detail(&wait.progress, &observed, done_bytes, total_bytes),
                done_bytes,
                total_bytes,
            });
            if Instant::now() >= deadline {
                return Err(self.fail(
                    step,
                    Outcome::Failed,
                    format!(
                        "not done within {}: {observed}",
                        humantime::format_duration(wait.timeout)
                    ),
                ));
            }
            tokio::select! {
                () = tokio::time::sleep(wait.poll.min(deadline.saturating_duration_since(Instant::now()))) => {}
                _ = self.interrupt.wait_for(|interrupted| *interrupted) => {
                    return Err(Finish::new(Outcome::Interrupted, format!("interrupted at the operator's request (Ctrl-C) while waiting: {}", step.title)));
                }
            }
        }
    }

    /// Bytes streamed so far and the total. Once a backup was seen and is no longer listed,
    /// the copy is complete: report it whole rather than the last sample.
    async fn progress_bytes(
        &self,
        progress: &Progress,
        known_total: &mut Option<u64>,
    ) -> (Option<u64>, Option<u64>) {
        let Progress::BaseBackup { leader_host, .. } = progress else {
            return (None, None);
        };
        match self.world.backup_progress(leader_host).await {
            Some(backup) => {
                if backup.total.is_some() {
                    *known_total = backup.total;
                }
                (Some(backup.streamed), *known_total)
            }
            None => (*known_total, *known_total),
        }
    }

    fn fail(&mut self, step: &Step, outcome: Outcome, reason: impl Into<String>) -> Finish {
        let reason = reason.into();
        self.sink.emit(&Event::StepFailed {
            step: step.id.clone(),
            reason: reason.clone(),
        });
        Finish::new(outcome, format!("{}: {reason}", step.title))
    }
}

/// "`COMMAND` on HOST exited STATUS: what it said last".
fn command_failed(action: &RemoteAction, output: &CommandOutput, said: Option<&str>) -> String {
    format!(
        "`{}` on {} exited {}: {}",
        action.command,
        action.host,
        output.status,
        said.unwrap_or("no output")
    )
}

/// A step that could not reach its target ends the run as unreachable (exit 3), not failed.
fn outcome_of(exit: Exit) -> Outcome {
    if exit == Exit::Unreachable {
        Outcome::Unreachable
    } else {
        Outcome::Failed
    }
}

/// How long a wait's last look may take even at its deadline: one REST round on loopback.
const MINIMUM_LOOK: Duration = Duration::from_millis(100);

/// What one look at the cluster says about a wait.
struct Judgement {
    observed: String,
    done: bool,
    /// A `fail_if` check that holds, and what was seen.
    failed: Option<(String, String)>,
}

fn judge(wait: &Wait, observation: Result<&ClusterView, &String>) -> Judgement {
    let view = match observation {
        Ok(view) => view,
        Err(error) => {
            return Judgement {
                observed: format!("cannot observe: {error}"),
                done: false,
                failed: None,
            };
        }
    };
    let verdicts: Vec<Verdict> = wait
        .until
        .iter()
        .map(|check| check.evaluate(view))
        .collect();
    let failed = wait
        .fail_if
        .iter()
        .map(|check| (check, check.evaluate(view)))
        .find(|(_, verdict)| verdict.passed)
        .map(|(check, verdict)| (check.to_string(), verdict.observed));
    Judgement {
        observed: verdicts
            .iter()
            .map(|verdict| verdict.observed.clone())
            .collect::<Vec<_>>()
            .join("; "),
        done: verdicts.iter().all(|verdict| verdict.passed),
        failed,
    }
}

/// `Some(what was seen)` when every check holds.
fn all_hold(checks: &[Check], view: &ClusterView) -> Option<String> {
    let verdicts: Vec<Verdict> = checks.iter().map(|check| check.evaluate(view)).collect();
    verdicts.iter().all(|verdict| verdict.passed).then(|| {
        verdicts
            .iter()
            .map(|verdict| verdict.observed.clone())
            .collect::<Vec<_>>()
            .join("; ")
    })
}

fn progress_detail(
    progress: &Progress,
    observed: &str,
    done: Option<u64>,
    total: Option<u64>,
) -> String {
    match (progress, done) {
        (Progress::BaseBackup { leader, member, .. }, Some(done)) => format!(
            "{observed}; {leader} streamed {}{} to {member}",
            human_bytes(done),
            total.map_or_else(String::new, |total| format!(" of {}", human_bytes(total)))
        ),
        _ => observed.to_string(),
    }
}

/// Command output for the journal: the end of it, where errors are.
fn clip(text: &str) -> String {
    const KEEP: usize = 4000;
    if text.len() <= KEEP {
        return text.to_string();
    }
    let start = text.ceil_char_boundary(text.len() - KEEP);
    format!("…{}", &text[start..])
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
