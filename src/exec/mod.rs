//! The executor: runs a plan's steps in order against the world, through two small traits — an
//! `Observer` that can only look and an `Actuator` that changes things — so that a dry-run, which
//! is only ever given an `Observer`, cannot mutate by construction. Every step: skip if its
//! effect is already observed (check-state-first steps), answer its gate, re-observe and re-check
//! its pre-conditions, record that it starts, act once (never retried), then verify the outcome
//! by observing the cluster within a deadline. Everything that happens is an `Event`; once the
//! record cannot be kept (a journal write failed), no further step that changes anything starts.
//! A parallel group (`plan::ParallelGroup`) answers all its gates first, in order, then runs its
//! steps as concurrent futures on this one task (the executor is borrowed, not spawned); once one
//! stops, no sibling starts. A run aborted or refused runs the plan's armed compensations
//! (`plan::Compensation`), the latest armed first; a failed or interrupted one only those marked
//! for failure, and leaves the others to `resume`. A plan's windows (`plan::Window`) bound how
//! long a state between two steps lasts: past a window's limit no step starts and no wait goes
//! on, and the run fails; a call or command in flight is bounded by its own timeout only.

mod event;
mod gate;
mod live;
mod stuck;

use std::cell::{Cell, RefCell};
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
use crate::etcd::EtcdError;
use crate::exit::Exit;
use crate::observe::{ClusterView, ObserveError};
use crate::patroni::config_file;
use crate::patroni::{ActionResponse, PatroniError};
use crate::plan::render::CheckedPrecheck;
use crate::plan::{
    Action, Check, Compensation, ConsulAction, EtcdAction, Idempotency, PatroniAction, Plan,
    Progress, RemoteAction, SilenceAction, SqlAction, Step, TagAction, Verdict, Wait, Window,
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
    /// The dynamic configuration as the member at `api_url` sees it (`GET /config`), if it
    /// answers.
    async fn member_config(&self, api_url: &str) -> Option<serde_json::Value>;
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
    async fn etcd(&self, action: &EtcdAction) -> Result<(), EtcdError>;
}

/// Where a run starts: nothing done (a new run), or what the journal says was done.
#[derive(Debug, Clone, Default)]
pub struct ResumePoint {
    pub finished: BTreeSet<String>,
    /// The steps that started and did not finish: one after a serial step, several after a
    /// parallel group. Each is resumed by its idempotency class.
    pub unfinished: BTreeSet<String>,
    /// The steps that started and were not undone since, in the order they first started:
    /// what arms the plan's compensations.
    pub started: Vec<String>,
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
    silences: RefCell<BTreeMap<String, String>>,
    /// Steps that started, in this run or an earlier one, in the order they first did: what
    /// arms the plan's compensations.
    started: RefCell<Vec<String>>,
    /// "run ID by OPERATOR", for silence comments.
    run_label: String,
    prompt: Arc<dyn Prompt>,
    policy: GatePolicy,
    /// Shared by the steps of a parallel group; never borrowed across an await.
    sink: RefCell<&'a mut dyn EventSink>,
    interrupt: watch::Receiver<bool>,
    /// Set when the run's lock in Consul is lost: no further change may be made.
    lease_lost: Option<Arc<AtomicBool>>,
    /// The plan's windows open now: no step starts, and no wait goes on, past their limits.
    windows: RefCell<Vec<OpenWindow>>,
    /// The plan checks the members' dynamic configuration: each look reads their `/config`.
    reads_dynamic_config: Cell<bool>,
}

/// A window of the plan (`plan::Window`) that is open, and since when.
#[derive(Clone)]
struct OpenWindow {
    window: Window,
    opened: Instant,
}

impl OpenWindow {
    /// When its limit passes; `None` for a limit past any real deadline.
    fn end(&self) -> Option<Instant> {
        self.opened.checked_add(self.window.limit)
    }

    /// `the cluster has been paused for 5m 2s, over its limit of 5m`.
    fn overrun(&self) -> String {
        format!(
            "{} for {}, over its limit of {}",
            self.window.what,
            seconds(self.opened.elapsed()),
            humantime::format_duration(self.window.limit)
        )
    }
}

/// Whether a step may act, once its gates are answered.
enum Ready {
    Go,
    Skipped(String),
    Stop(Finish),
}

/// How a step past its gates ended.
enum Acted {
    Done,
    /// A sibling in its parallel group stopped the group (or Ctrl-C) before it started.
    NotStarted,
    Stop(Finish),
}

/// What a step re-checks before acting: a plan's step, the plan's assumptions and its own
/// pre-checks; a compensation, its own only.
#[derive(Clone, Copy)]
enum Rechecks {
    All,
    StepOnly,
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
            silences: RefCell::new(BTreeMap::new()),
            started: RefCell::new(Vec::new()),
            run_label: String::new(),
            prompt,
            policy,
            sink: RefCell::new(sink),
            interrupt,
            lease_lost: None,
            windows: RefCell::new(Vec::new()),
            reads_dynamic_config: Cell::new(false),
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
    /// aborted or refused runs the plan's armed compensations (the latest armed first); a
    /// failed or interrupted one runs those marked for failure only, an unreachable one none —
    /// it stays resumable — and its end says what the others would have undone. A window the run is
    /// resumed in (its `from` step finished in an earlier run, its `to` step did not) counts
    /// from the start of this run: when the earlier one stopped is not known here.
    pub async fn run(&mut self, plan: &Plan, resume: &ResumePoint) -> Finish {
        self.silences.replace(resume.silences.clone());
        self.started.replace(resume.started.clone());
        self.reads_dynamic_config.set(plan.reads_dynamic_config());
        self.open_resumed_windows(plan, resume);
        let mut finish = self.run_steps(plan, resume).await;
        // Undoing is what ends the state a window bounds: it is not cut short by the window.
        self.windows.borrow_mut().clear();
        let armed = self.armed(plan);
        if armed.is_empty() {
            return finish;
        }
        let undo_now = match finish.outcome {
            Outcome::Aborted | Outcome::Refused => armed.clone(),
            // Ctrl-C stops the run; it must not leave behind what no run may (a paused cluster).
            Outcome::Failed | Outcome::Interrupted => armed
                .iter()
                .copied()
                .filter(|compensation| compensation.on_failure)
                .collect(),
            _ => Vec::new(),
        };
        let left: Vec<&Compensation> = armed
            .iter()
            .copied()
            .filter(|compensation| !undo_now.contains(compensation))
            .collect();
        if !undo_now.is_empty() {
            {
                // Undoing is what stopping means here: the Ctrl-C that stopped the run does
                // not stop it (a second one exits at once, as always).
                let (_calm, quiet) = watch::channel(false);
                self.interrupt = quiet;
                let mut undone = Vec::new();
                let mut not_undone = Vec::new();
                for compensation in undo_now {
                    match self.compensate(plan, compensation).await {
                        Ok(()) => undone.push(compensation.step.title.clone()),
                        Err(reason) => {
                            not_undone.push(format!("{} ({reason})", compensation.step.title));
                        }
                    }
                }
                if !undone.is_empty() {
                    finish.detail = format!("{}; undone: {}", finish.detail, undone.join("; "));
                }
                if !not_undone.is_empty() {
                    finish.detail =
                        format!("{}; NOT undone: {}", finish.detail, not_undone.join("; "));
                }
            }
        }
        if !left.is_empty() && finish.outcome != Outcome::Succeeded {
            let titles: Vec<&str> = left
                .iter()
                .map(|compensation| compensation.step.title.as_str())
                .collect();
            finish.detail = format!(
                "{}; left as it is for `pgha resume` to finish (not undone automatically): {}",
                finish.detail,
                titles.join("; ")
            );
        }
        finish
    }

    /// The plan's compensations whose step has started, the latest armed first (several armed
    /// by one step: the last declared first).
    fn armed<'p>(&self, plan: &'p Plan) -> Vec<&'p Compensation> {
        let started = self.started.borrow();
        let mut armed: Vec<(usize, usize, &Compensation)> = plan
            .compensations
            .iter()
            .enumerate()
            .filter_map(|(declared, compensation)| {
                let at = started.iter().position(|id| *id == compensation.after)?;
                Some((at, declared, compensation))
            })
            .collect();
        armed.sort_by_key(|(at, declared, _)| std::cmp::Reverse((*at, *declared)));
        armed
            .into_iter()
            .map(|(_, _, compensation)| compensation)
            .collect()
    }

    /// Runs one compensation: no gate, its own pre-checks (not the plan's assumptions: the
    /// cluster may have moved, which is often why the run stopped), the action, its
    /// verification. `Err` says why it did not undo.
    async fn compensate(&self, plan: &Plan, compensation: &Compensation) -> Result<(), String> {
        let step = &compensation.step;
        self.emit(&Event::Compensating {
            step: step.id.clone(),
            after: compensation.after.clone(),
            title: step.title.clone(),
        });
        if let Idempotency::CheckStateFirst { done_when } = &step.idempotency
            && let Ok(view) = self.look().await
            && let Some(observed) = all_hold(done_when, &view)
        {
            self.emit(&Event::StepSkipped {
                step: step.id.clone(),
                reason: format!("already undone: {observed}"),
            });
            return Ok(());
        }
        let title = format!("[undo] {}", step.title);
        match self
            .act(plan, step, 0, title, Rechecks::StepOnly, None)
            .await
        {
            Acted::Done => Ok(()),
            Acted::NotStarted => Err("not started".into()),
            Acted::Stop(finish) => Err(finish.detail),
        }
    }

    async fn run_steps(&self, plan: &Plan, resume: &ResumePoint) -> Finish {
        let total = plan.steps.len();
        for batch in plan.batches() {
            let stop = if batch.len() == 1 {
                self.one_step(plan, batch.start, total, resume).await
            } else {
                self.group(plan, batch, total, resume).await
            };
            if let Some(finish) = stop {
                return finish;
            }
        }
        let steps = if total == 1 {
            "1 step".to_string()
        } else {
            format!("{total} steps")
        };
        Finish::new(Outcome::Succeeded, format!("{}: {steps} done", plan.title))
    }

    /// One step on its own; `Some` when the run must stop.
    async fn one_step(
        &self,
        plan: &Plan,
        index: usize,
        total: usize,
        resume: &ResumePoint,
    ) -> Option<Finish> {
        let step = &plan.steps[index];
        if resume.finished.contains(&step.id) {
            return None;
        }
        if let Some(finish) = self.window_passed(step) {
            return Some(finish);
        }
        match self.ready(step, resume.unfinished.contains(&step.id)).await {
            Ready::Go => {}
            Ready::Skipped(reason) => {
                self.emit(&Event::StepSkipped {
                    step: step.id.clone(),
                    reason,
                });
                self.step_finished(plan, step);
                return None;
            }
            Ready::Stop(finish) => return Some(finish),
        }
        // An operator's answer takes as long as it takes: the window is looked at again.
        if let Some(finish) = self.window_passed(step) {
            return Some(finish);
        }
        match self
            .act(
                plan,
                step,
                index + 1,
                title(index, total, step),
                Rechecks::All,
                None,
            )
            .await
        {
            Acted::Done => {
                self.step_finished(plan, step);
                None
            }
            Acted::NotStarted => None,
            Acted::Stop(finish) => Some(finish),
        }
    }

    /// A parallel group: every gate first, in order (a no stops the run before any of the
    /// group's steps starts), then the steps at once. Once one stops, those not yet started are
    /// not started; the others end on their own. `Some` when the run must stop.
    async fn group(
        &self,
        plan: &Plan,
        batch: std::ops::Range<usize>,
        total: usize,
        resume: &ResumePoint,
    ) -> Option<Finish> {
        let mut going = Vec::new();
        for index in batch {
            let step = &plan.steps[index];
            if resume.finished.contains(&step.id) {
                continue;
            }
            if let Some(finish) = self.window_passed(step) {
                return Some(finish);
            }
            match self.ready(step, resume.unfinished.contains(&step.id)).await {
                Ready::Go => going.push(index),
                Ready::Skipped(reason) => {
                    self.emit(&Event::StepSkipped {
                        step: step.id.clone(),
                        reason,
                    });
                    self.step_finished(plan, step);
                }
                Ready::Stop(finish) => return Some(finish),
            }
        }
        // The gates were answered one after the other, by a human perhaps: look again.
        if let Some(finish) = going
            .first()
            .and_then(|&index| self.window_passed(&plan.steps[index]))
        {
            return Some(finish);
        }
        let stopped = Cell::new(false);
        let ends = futures::future::join_all(going.iter().map(|&index| {
            let step = &plan.steps[index];
            let stopped = &stopped;
            async move {
                let acted = self
                    .act(
                        plan,
                        step,
                        index + 1,
                        title(index, total, step),
                        Rechecks::All,
                        Some(stopped),
                    )
                    .await;
                match acted {
                    Acted::Done => self.step_finished(plan, step),
                    Acted::Stop(_) => stopped.set(true),
                    Acted::NotStarted => {}
                }
                (step, acted, Instant::now())
            }
        }))
        .await;
        group_end(ends)
    }

    /// Opens the windows a resumed run starts in: `from` finished in an earlier run, `to` did
    /// not. They count from now.
    fn open_resumed_windows(&self, plan: &Plan, resume: &ResumePoint) {
        let opened = Instant::now();
        let resumed_in = plan.windows.iter().filter(|window| {
            resume.finished.contains(&window.from) && !resume.finished.contains(&window.to)
        });
        self.windows.replace(
            resumed_in
                .map(|window| OpenWindow {
                    window: window.clone(),
                    opened,
                })
                .collect(),
        );
    }

    /// A step of the plan finished, or was skipped as already done: the windows it ends are
    /// closed, those it starts open now.
    fn step_finished(&self, plan: &Plan, step: &Step) {
        let mut open = self.windows.borrow_mut();
        open.retain(|open| open.window.to != step.id);
        for window in &plan.windows {
            let opens = window.from == step.id && window.to != step.id;
            if opens && !open.iter().any(|open| open.window == *window) {
                open.push(OpenWindow {
                    window: window.clone(),
                    opened: Instant::now(),
                });
            }
        }
    }

    /// The open window whose limit passes first, with when; none when none is open (or none
    /// has a limit within reach).
    fn first_to_end(&self) -> Option<(Instant, OpenWindow)> {
        self.windows
            .borrow()
            .iter()
            .filter_map(|open| Some((open.end()?, open)))
            .min_by_key(|(end, _)| *end)
            .map(|(end, open)| (end, open.clone()))
    }

    /// `Some` when an open window's limit has passed: the run stops before `step` starts, as
    /// failed (which undoes what is marked to be undone on failure).
    fn window_passed(&self, step: &Step) -> Option<Finish> {
        let (_, window) = self
            .first_to_end()
            .filter(|(end, _)| Instant::now() >= *end)?;
        Some(Finish::new(
            Outcome::Failed,
            format!("{}: stopped before {:?}", window.overrun(), step.title),
        ))
    }

    /// What comes before a step acts: Ctrl-C since the last step, its effect already there,
    /// its gates (and, for a step an earlier run left unfinished that only a human can judge,
    /// the question whether to run it again).
    async fn ready(&self, step: &Step, interrupted_here: bool) -> Ready {
        // Ctrl-C during the previous step: stop here, before this one starts.
        if self.interrupted() {
            return Ready::Stop(Finish::new(
                Outcome::Interrupted,
                format!(
                    "stopped before {:?} at the operator's request (Ctrl-C)",
                    step.title
                ),
            ));
        }
        // Look first: a step whose effect is visible is not done twice.
        if let Idempotency::CheckStateFirst { done_when } = &step.idempotency
            && let Ok(view) = self.look().await
            && let Some(observed) = all_hold(done_when, &view)
        {
            return Ready::Skipped(format!("already done: {observed}"));
        }
        if interrupted_here && step.idempotency == Idempotency::AskHuman {
            let gate = crate::plan::Gate::Confirm {
                question: format!(
                    "Step {:?} started in an earlier run and did not finish. Run it again?",
                    step.title
                ),
            };
            if let Some(finish) = self.gate(step, &gate).await {
                return Ready::Stop(finish);
            }
        }
        if let Some(finish) = self.gate(step, &step.gate).await {
            return Ready::Stop(finish);
        }
        Ready::Go
    }

    /// A step past its gate: re-check, record its start, act once, verify, record its end.
    /// With `siblings_stopped` (a parallel group), it does not start once a sibling stopped
    /// the group or Ctrl-C was pressed.
    async fn act(
        &self,
        plan: &Plan,
        step: &Step,
        index: usize,
        title: String,
        rechecks: Rechecks,
        siblings_stopped: Option<&Cell<bool>>,
    ) -> Acted {
        let checks: Vec<&Check> = match rechecks {
            Rechecks::All => plan.assumes.iter().chain(&step.prechecks).collect(),
            Rechecks::StepOnly => step.prechecks.iter().collect(),
        };
        // The cluster moves while a human reads a prompt: re-observe and re-check now.
        let recheck = match rechecks {
            Rechecks::All => step.action.mutates() || !step.prechecks.is_empty(),
            Rechecks::StepOnly => !step.prechecks.is_empty(),
        };
        if recheck && let Err(finish) = self.recheck(&checks, step).await {
            return Acted::Stop(finish);
        }
        if siblings_stopped.is_some_and(|stopped| stopped.get() || self.interrupted()) {
            return Acted::NotStarted;
        }
        if let Err(finish) = self.lock_still_held(step) {
            return Acted::Stop(finish);
        }
        let started = Instant::now();
        self.emit(&Event::StepStarted {
            step: step.id.clone(),
            index,
            title,
        });
        if !self.started.borrow().contains(&step.id) {
            self.started.borrow_mut().push(step.id.clone());
        }
        // Checked after the step's start was to be recorded: that record is what tells `resume`
        // the step may have acted, so nothing is changed without it.
        let healthy = self.sink.borrow().healthy();
        if step.action.mutates()
            && let Err(lost) = healthy
        {
            return Acted::Stop(self.fail(
                step,
                Outcome::Failed,
                format!("{lost}: stopped before this step changed anything; `pgha resume` continues once that is fixed"),
            ));
        }
        let mut observed = match self.perform(step).await {
            Ok(observed) => observed,
            Err(finish) => return Acted::Stop(finish),
        };
        if let Some(verify) = &step.verify {
            observed = match self.wait(step, verify).await {
                Ok(observed) => observed,
                Err(finish) => return Acted::Stop(finish),
            };
        }
        self.emit(&Event::StepSucceeded {
            step: step.id.clone(),
            duration_ms: millis(started.elapsed()),
            observed,
        });
        Acted::Done
    }

    /// A mutating step starts only while the run's lock in Consul is held.
    fn lock_still_held(&self, step: &Step) -> Result<(), Finish> {
        let lost = self
            .lease_lost
            .as_ref()
            .is_some_and(|lost| lost.load(Ordering::SeqCst));
        if step.action.mutates() && lost {
            return Err(self.fail(
                step,
                Outcome::Failed,
                "the run's lock in Consul was lost (its session could not be renewed): stopped before this step, which was not started; `pgha resume` takes the lock again",
            ));
        }
        Ok(())
    }

    /// The step's action, once: what it observed, or how the run stops.
    async fn perform(&self, step: &Step) -> Result<String, Finish> {
        match &step.action {
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
            Action::Etcd(action) => self.call_etcd(step, action).await,
            // The gate was the operator saying it is done.
            Action::Manual(_) => Ok(format!("confirmed by {}", self.policy.operator)),
            Action::Wait(wait) => self.wait(step, wait).await,
        }
    }

    /// Answers a gate; `Some` when the run must stop.
    async fn gate(&self, step: &Step, gate: &crate::plan::Gate) -> Option<Finish> {
        let mut interrupt = self.interrupt.clone();
        let answer = gate::answer(gate, &self.policy, &self.prompt, &mut interrupt).await;
        match answer {
            gate::Answer::NotNeeded => None,
            gate::Answer::Given { yes, by } => {
                self.emit(&Event::GateAnswered {
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
                self.emit(&Event::GateAnswered {
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

    async fn recheck(&self, checks: &[&Check], step: &Step) -> Result<(), Finish> {
        let view = match self.look().await {
            Ok(view) => view,
            Err(error) => {
                return Err(self.fail(
                    step,
                    Outcome::Refused,
                    format!("cannot observe the cluster: {error}"),
                ));
            }
        };
        for check in checks {
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
    async fn call_patroni(&self, step: &Step, action: &PatroniAction) -> Result<String, Finish> {
        match self.world.patroni(action).await {
            Ok(answer) => {
                self.emit(&Event::ActionAnswered {
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
            // Sent, perhaps received: the cluster will tell.
            Err(error) if error.is_unreachable() => self.answer_lost(step, &error),
            Err(error) => Err(self.fail(step, Outcome::Failed, error.to_string())),
        }
    }

    /// A write whose answer never came: journalled, then settled by the step's verification.
    /// A step with none cannot be settled: it fails, and what `resume` does with it is its
    /// idempotency's (a restore cut short is never taken for done).
    fn answer_lost(&self, step: &Step, error: &dyn std::fmt::Display) -> Result<String, Finish> {
        self.emit(&Event::ActionLost {
            step: step.id.clone(),
            error: error.to_string(),
        });
        if step.verify.is_some() {
            return Ok(format!("no answer ({error}); verifying by observation"));
        }
        let then = match &step.idempotency {
            Idempotency::SafeToRepeat => "it is safe to run again, and `pgha resume` does",
            Idempotency::CheckStateFirst { .. } => {
                "`pgha resume` looks whether it took effect before running it again"
            }
            Idempotency::AskHuman => "`pgha resume` asks before running it again",
        };
        Err(self.fail(
            step,
            Outcome::Failed,
            format!("{error}; nothing pgha observes settles this step's outcome: {then}"),
        ))
    }

    /// One Consul write. A lost answer is settled by the step's verification, like a REST call.
    async fn call_consul(&self, step: &Step, action: &ConsulAction) -> Result<String, Finish> {
        match self.world.consul(action).await {
            Ok(()) => Ok(format!("{}: done", action.request_line())),
            Err(error @ ConsulError::Unreachable { .. }) => self.answer_lost(step, &error),
            Err(error) => Err(self.fail(step, Outcome::Failed, error.to_string())),
        }
    }

    /// One etcd write. A lost answer is settled by the step's verification, like a REST call.
    async fn call_etcd(&self, step: &Step, action: &EtcdAction) -> Result<String, Finish> {
        match self.world.etcd(action).await {
            Ok(()) => Ok(format!("{}: done", action.request_line())),
            Err(error @ EtcdError::Unreachable { .. }) => self.answer_lost(step, &error),
            Err(error) => Err(self.fail(step, Outcome::Failed, error.to_string())),
        }
    }

    /// Creates or expires a silence, verified by asking Alertmanager for its state.
    async fn silence(&self, step: &Step, action: &SilenceAction) -> Result<String, Finish> {
        match action {
            SilenceAction::Create {
                url,
                labels,
                duration,
                comment,
            } => {
                if let Some(id) = self.silences.borrow().get(&step.id) {
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
                self.emit(&Event::SilenceCreated {
                    step: step.id.clone(),
                    url: url.clone(),
                    id: id.clone(),
                });
                self.silences
                    .borrow_mut()
                    .insert(step.id.clone(), id.clone());
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
                let Some(id) = self.silences.borrow().get(created_by).cloned() else {
                    return Ok("no silence of this run to expire".into());
                };
                if let Err(error) = self.world.expire_silence(url, &id).await {
                    return Err(self.fail(step, Outcome::Failed, error.to_string()));
                }
                self.emit(&Event::SilenceExpired {
                    step: step.id.clone(),
                    id: id.clone(),
                });
                self.silences.borrow_mut().remove(created_by);
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

    /// Runs one command. Exit 0 goes on to verification; another status is a failure with what
    /// the command said; a timeout or a dropped connection leaves the outcome to observation.
    async fn run_command(&self, step: &Step, action: &RemoteAction) -> Result<String, Finish> {
        match self.world.remote(action).await {
            Ok(output) => {
                self.emit(&Event::CommandRan {
                    step: step.id.clone(),
                    command: action.describe(),
                    status: output.status,
                    stdout: clip(&output.stdout),
                    stderr: clip(&output.stderr),
                });
                if output.success() {
                    // What a check command concludes (the space free, the backup's age, a
                    // warning it goes on after) is its last line: shown with the step's end.
                    let program = &action.command.program;
                    Ok(match last_line(&output.stdout) {
                        Some(said) => format!("{program} exited 0: {said}"),
                        None => format!("{program} exited 0"),
                    })
                } else {
                    let said = last_line(&output.stderr).or_else(|| last_line(&output.stdout));
                    Err(self.fail(step, Outcome::Failed, command_failed(action, &output, said)))
                }
            }
            Err(error) if error.outcome_unknown() => self.answer_lost(step, &error),
            Err(error) => Err(self.fail(step, outcome_of(error.exit()), error.to_string())),
        }
    }

    /// Sets a tag in a member's Patroni configuration file: read, edited in memory (the
    /// smallest change, proven by parsing), written back only if unchanged meanwhile. What the
    /// file says is never recorded: only that it was read and written.
    async fn tag(&self, step: &Step, action: &TagAction) -> Result<String, Finish> {
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
        &self,
        step: &Step,
        action: &RemoteAction,
        input: Option<&[u8]>,
    ) -> Result<String, Finish> {
        match self.world.remote_private(action, input).await {
            Ok(output) => {
                self.emit(&Event::CommandRan {
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
    /// the deadline (its own, or an open window's end if that comes first), or when
    /// interrupted (the run is then resumable).
    async fn wait(&self, step: &Step, wait: &Wait) -> Result<String, Finish> {
        let started = Instant::now();
        let began_epoch = jiff::Timestamp::now().as_second();
        // Durations are capped when parsed; far past any real deadline all the same.
        let own_deadline = started
            .checked_add(wait.timeout)
            .unwrap_or_else(|| started + crate::duration::MAX);
        let mut last_observed = String::new();
        let mut sampled = Sampled::default();
        let mut watched: Vec<stuck::Watched> = wait
            .stuck
            .iter()
            .map(|_| stuck::Watched::default())
            .collect();
        let mut interrupt = self.interrupt.clone();
        loop {
            // Looked up at each poll: a step running beside this one may open or close one.
            let window = self.first_to_end().filter(|(end, _)| *end < own_deadline);
            let deadline = window.as_ref().map_or(own_deadline, |(end, _)| *end);
            // A look never holds the wait past its deadline (a member slow to answer, SQL
            // that hangs): it is cut there, and the deadline decides.
            let look_until = deadline.max(Instant::now() + MINIMUM_LOOK);
            let observation = match tokio::time::timeout_at(look_until, self.look()).await {
                Ok(observation) => observation.map_err(|error| error.to_string()),
                Err(_) => Err("no answer before the deadline".to_string()),
            }
            .map(|mut view| {
                view.wait_began = Some(began_epoch);
                view
            });
            let Judgement {
                observed,
                done,
                failed,
            } = judge(wait, observation.as_ref());
            if observed != last_observed {
                self.emit(&Event::Observed {
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
            let view = observation.as_ref().ok();
            if let Some(why) = self.stuck(wait, &mut watched, view, deadline).await {
                return Err(self.fail(step, Outcome::Failed, why));
            }
            let (done_bytes, total_bytes) = tokio::time::timeout_at(
                deadline,
                self.progress_bytes(&wait.progress, &mut sampled),
            )
            .await
            .unwrap_or((sampled.done, sampled.total));
            self.emit(&Event::Progress {
                step: step.id.clone(),
                elapsed_ms: millis(started.elapsed()),
                timeout_ms: millis(wait.timeout),
                detail: progress_detail(&wait.progress, &observed, done_bytes, total_bytes),
                done_bytes,
                total_bytes,
            });
            if Instant::now() >= deadline {
                let reason = match window {
                    Some((_, window)) => {
                        format!("{}: stopped waiting ({observed})", window.overrun())
                    }
                    None => format!(
                        "not done within {}: {observed}",
                        humantime::format_duration(wait.timeout)
                    ),
                };
                return Err(self.fail(step, Outcome::Failed, reason));
            }
            tokio::select! {
                () = tokio::time::sleep(wait.poll.min(deadline.saturating_duration_since(Instant::now()))) => {}
                _ = interrupt.wait_for(|interrupted| *interrupted) => {
                    return Err(Finish::new(Outcome::Interrupted, format!("interrupted at the operator's request (Ctrl-C) while waiting: {}", step.title)));
                }
            }
        }
    }

    /// The cluster as it is now; with each member's view of the dynamic configuration when the
    /// plan checks it (a member that does not answer has none).
    async fn look(&self) -> Result<ClusterView, ObserveError> {
        let mut view = self.world.observe().await?;
        if self.reads_dynamic_config.get() {
            let reads = view.members.iter().map(|member| async {
                if member.is_reachable() {
                    self.world.member_config(&member.api_url).await
                } else {
                    None
                }
            });
            let configs = futures::future::join_all(reads).await;
            for (member, config) in view.members.iter_mut().zip(configs) {
                member.dynamic_config = config;
            }
        }
        Ok(view)
    }

    /// Reads the log of each watched member that has stayed `starting` or `stopped` long enough; `Some(why)`
    /// when one's recovery cannot go on. A read that fails or hangs decides nothing: the wait
    /// goes on to its deadline, as it would without the watch.
    async fn stuck(
        &self,
        wait: &Wait,
        watched: &mut [stuck::Watched],
        view: Option<&ClusterView>,
        deadline: Instant,
    ) -> Option<String> {
        for (watch, history) in wait.stuck.iter().zip(watched.iter_mut()) {
            // `state` says `starting` for a replica that also reports `in archive recovery`;
            // `stopped` is a Patroni that will not start PostgreSQL (on a partial restore).
            let watched_state = view
                .and_then(|view| view.member(&watch.member))
                .and_then(crate::observe::MemberView::state)
                .filter(|state| {
                    matches!(
                        state,
                        crate::patroni::MemberState::Starting
                            | crate::patroni::MemberState::Stopped
                    )
                });
            if !history.due(watched_state, watch.after, Instant::now()) {
                continue;
            }
            let reading =
                match tokio::time::timeout_at(deadline, self.world.remote(&watch.read)).await {
                    Ok(Ok(output)) if output.success() => Some(stuck::read_log(&output.stdout)),
                    _ => None,
                };
            if let Some(why) = history.judge(&watch.member, reading, Instant::now()) {
                return Some(why);
            }
        }
        None
    }

    /// Bytes done so far and the total, when the wait shows them.
    async fn progress_bytes(
        &self,
        progress: &Progress,
        sampled: &mut Sampled,
    ) -> (Option<u64>, Option<u64>) {
        match progress {
            Progress::BaseBackup { leader_host, .. } => {
                // Once a backup was seen and is no longer listed, the copy is complete:
                // report it whole rather than the last sample.
                match self.world.backup_progress(leader_host).await {
                    Some(backup) => {
                        if backup.total.is_some() {
                            sampled.total = backup.total;
                        }
                        (Some(backup.streamed), sampled.total)
                    }
                    None => (sampled.total, sampled.total),
                }
            }
            Progress::DataDirectory {
                expected_bytes,
                read,
                ..
            } => {
                sampled.total = Some(*expected_bytes);
                let due = sampled
                    .read_at
                    .is_none_or(|at| at.elapsed() >= crate::plan::DATA_DIRECTORY_READ_EVERY);
                if due {
                    sampled.read_at = Some(Instant::now());
                    // A read that fails shows the last size; it decides nothing.
                    if let Ok(output) = self.world.remote(read).await
                        && output.success()
                        && let Ok(size) = output.stdout.trim().parse()
                    {
                        sampled.done = Some(size);
                    }
                }
                (sampled.done, sampled.total)
            }
            Progress::MemberState { .. } | Progress::Checks => (None, None),
        }
    }

    fn emit(&self, event: &Event) {
        self.sink.borrow_mut().emit(event);
    }

    /// The operator pressed Ctrl-C.
    fn interrupted(&self) -> bool {
        *self.interrupt.borrow()
    }

    fn fail(&self, step: &Step, outcome: Outcome, reason: impl Into<String>) -> Finish {
        let reason = reason.into();
        self.emit(&Event::StepFailed {
            step: step.id.clone(),
            reason: reason.clone(),
        });
        Finish::new(outcome, format!("{}: {reason}", step.title))
    }
}

/// `[3/7] Restore node1`: a step's title as its start is recorded.
fn title(index: usize, total: usize, step: &Step) -> String {
    format!("[{}/{total}] {}", index + 1, step.title)
}

/// How a parallel group ended, from how each of its steps did (in the plan's order, with when
/// each ended): `None` when all are done. Several stops: the outcome that leaves the most to
/// `resume` wins (a failure over a refusal: a refused or aborted run is undone, a failed one is
/// not), and the detail says each, in the order they happened, then what was not started.
fn group_end(ends: Vec<(&Step, Acted, Instant)>) -> Option<Finish> {
    let mut stops: Vec<(Instant, Finish)> = Vec::new();
    let mut not_started: Vec<String> = Vec::new();
    for (step, acted, at) in ends {
        match acted {
            Acted::Done => {}
            Acted::NotStarted => not_started.push(format!("{:?}", step.title)),
            Acted::Stop(finish) => stops.push((at, finish)),
        }
    }
    if stops.is_empty() && not_started.is_empty() {
        return None;
    }
    if stops.is_empty() {
        return Some(Finish::new(
            Outcome::Interrupted,
            format!(
                "stopped before {} at the operator's request (Ctrl-C)",
                not_started.join(", ")
            ),
        ));
    }
    stops.sort_by_key(|(at, _)| *at);
    let rank = |outcome: Outcome| match outcome {
        Outcome::Failed => 0,
        Outcome::Unreachable => 1,
        Outcome::Interrupted => 2,
        Outcome::Refused => 3,
        Outcome::Aborted => 4,
        Outcome::Succeeded => 5,
    };
    let outcome = stops
        .iter()
        .map(|(_, finish)| finish.outcome)
        .min_by_key(|outcome| rank(*outcome))
        .unwrap_or(Outcome::Failed);
    let mut detail = stops
        .iter()
        .map(|(_, finish)| finish.detail.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    if !not_started.is_empty() {
        detail = format!(
            "{detail}; not started, as a step it runs in parallel with stopped: {}",
            not_started.join(", ")
        );
    }
    Some(Finish::new(outcome, detail))
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
        (Progress::DataDirectory { member, .. }, Some(done)) => format!(
            "{observed}; {member}'s data directory holds {}{}",
            human_bytes(done),
            total.map_or_else(String::new, |total| format!(
                " of the databases' {}",
                human_bytes(total)
            ))
        ),
        _ => observed.to_string(),
    }
}

/// What a wait's progress last measured: bytes done, the total, when the last read began.
#[derive(Default)]
struct Sampled {
    done: Option<u64>,
    total: Option<u64>,
    read_at: Option<Instant>,
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

/// `5m 2s`: a duration to the second, for a reader.
fn seconds(duration: Duration) -> String {
    humantime::format_duration(Duration::from_secs(duration.as_secs())).to_string()
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
