//! The executor against a fake world (a recorded cluster that changes once something acts),
//! scripted prompt answers and tokio's paused clock: deadlines, verification by observation,
//! refusals, gates and interruption, in virtual time.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::alerts::AlertError;
use crate::inventory::ClusterTarget;
use crate::observe::testing::view_led_by;
use crate::patroni::{ActionResponse, PatroniError};
use crate::plan::{Gate, Step};
use crate::runbooks::{self, Params};

/// A cluster as recorded: `before` until the first action, `after` from then on.
struct FakeWorld {
    before: ClusterView,
    after: ClusterView,
    answer: Result<ActionResponse, PatroniError>,
    calls: RefCell<Vec<String>>,
    observations: Cell<usize>,
    /// Silences by id, with their state.
    silences: RefCell<BTreeMap<String, String>>,
    /// What SSH and PostgreSQL say instead of running (a host or server that cannot be reached).
    remote_failure: Option<RemoteError>,
    sql_failure: Option<SqlError>,
    /// Files on the hosts, by path, for private commands (`cat`, and the tag's write).
    files: RefCell<BTreeMap<String, String>>,
    /// How long each look at the cluster takes (a member slow to answer).
    observe_delay: Duration,
    /// Pressed while a Patroni call is in flight: the operator's Ctrl-C.
    ctrl_c_during_call: Option<watch::Sender<bool>>,
    /// How long a command takes, by program (a restore takes a while).
    command_delays: BTreeMap<String, Duration>,
    /// Programs that exit 1 (after their delay).
    failing_commands: BTreeSet<String>,
    /// What a program prints, by program (nothing otherwise).
    command_stdout: BTreeMap<String, String>,
    /// When not empty, what each look sees instead, in order; the last one stays.
    script: RefCell<VecDeque<ClusterView>>,
    /// Every member's `/config` before any change is made, and after.
    configs: Option<(serde_json::Value, serde_json::Value)>,
}

impl FakeWorld {
    fn new(
        before: ClusterView,
        after: ClusterView,
        answer: Result<ActionResponse, PatroniError>,
    ) -> Self {
        FakeWorld {
            before,
            after,
            answer,
            calls: RefCell::new(Vec::new()),
            observations: Cell::new(0),
            silences: RefCell::new(BTreeMap::new()),
            remote_failure: None,
            sql_failure: None,
            files: RefCell::new(BTreeMap::new()),
            observe_delay: Duration::ZERO,
            ctrl_c_during_call: None,
            command_delays: BTreeMap::new(),
            failing_commands: BTreeSet::new(),
            command_stdout: BTreeMap::new(),
            script: RefCell::new(VecDeque::new()),
            configs: None,
        }
    }
}

impl Observer for FakeWorld {
    async fn observe(&self) -> Result<ClusterView, ObserveError> {
        tokio::time::sleep(self.observe_delay).await;
        self.observations.set(self.observations.get() + 1);
        let mut script = self.script.borrow_mut();
        if script.len() > 1 {
            return Ok(script.pop_front().unwrap());
        }
        if let Some(last) = script.front() {
            return Ok(last.clone());
        }
        Ok(if self.calls.borrow().is_empty() {
            self.before.clone()
        } else {
            self.after.clone()
        })
    }

    async fn backup_progress(&self, _host: &str) -> Option<BackupProgress> {
        None
    }

    async fn silence_state(&self, _url: &str, id: &str) -> Option<String> {
        self.silences.borrow().get(id).cloned()
    }

    async fn member_config(&self, _api_url: &str) -> Option<serde_json::Value> {
        let (before, after) = self.configs.as_ref()?;
        Some(if self.calls.borrow().is_empty() {
            before.clone()
        } else {
            after.clone()
        })
    }

    async fn access(&self, _plan: &Plan, _view: &ClusterView) -> Vec<CheckedPrecheck> {
        Vec::new()
    }
}

impl Actuator for FakeWorld {
    async fn patroni(&self, action: &PatroniAction) -> Result<ActionResponse, PatroniError> {
        if let Some(ctrl_c) = &self.ctrl_c_during_call {
            let _ = ctrl_c.send(true);
            // The call goes on after the keypress, and completes.
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        self.calls
            .borrow_mut()
            .push(format!("{} {}", action.call.method(), action.call.path()));
        self.answer.clone()
    }

    async fn sql(&self, action: &SqlAction) -> Result<(), SqlError> {
        if let Some(failure) = &self.sql_failure {
            return Err(failure.clone());
        }
        self.calls.borrow_mut().push(action.statement.text());
        Ok(())
    }

    async fn remote(&self, action: &RemoteAction) -> Result<CommandOutput, RemoteError> {
        if let Some(failure) = &self.remote_failure {
            return Err(failure.clone());
        }
        if let Some(ctrl_c) = &self.ctrl_c_during_call {
            let _ = ctrl_c.send(true);
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let program = &action.command.program;
        if let Some(delay) = self.command_delays.get(program) {
            tokio::time::sleep(*delay).await;
        }
        self.calls.borrow_mut().push(action.command.shell_line());
        if self.failing_commands.contains(program) {
            return Ok(CommandOutput {
                status: 1,
                stdout: String::new(),
                stderr: "no space left on device\n".into(),
            });
        }
        Ok(CommandOutput {
            status: 0,
            stdout: self
                .command_stdout
                .get(program)
                .cloned()
                .unwrap_or_default(),
            stderr: String::new(),
        })
    }

    /// `sh -c SCRIPT pgha VALUES…`: a read (`cat`) returns the file; a write checks the
    /// expected checksum (the second value) and stores its input.
    async fn remote_private(
        &self,
        action: &RemoteAction,
        input: Option<&[u8]>,
    ) -> Result<CommandOutput, RemoteError> {
        if let Some(failure) = &self.remote_failure {
            return Err(failure.clone());
        }
        let values = &action.command.args[3..];
        let path = values[0].clone();
        let mut files = self.files.borrow_mut();
        let current = files.get(&path).cloned().unwrap_or_default();
        let output = |status: i32, stdout: String| CommandOutput {
            status,
            stdout,
            stderr: String::new(),
        };
        let Some(input) = input else {
            self.calls.borrow_mut().push(format!("read {path}"));
            return Ok(output(0, current));
        };
        if values[1] != crate::plan::sha256_hex(current.as_bytes()) {
            return Ok(output(3, String::new()));
        }
        self.calls.borrow_mut().push(format!("write {path}"));
        files.insert(path, String::from_utf8(input.to_vec()).unwrap());
        Ok(output(0, String::new()))
    }

    async fn create_silence(
        &self,
        _url: &str,
        labels: &BTreeMap<String, String>,
        _duration: Duration,
        _comment: &str,
    ) -> Result<String, AlertError> {
        let id = format!("silence-{}", self.silences.borrow().len() + 1);
        let matchers: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        self.calls
            .borrow_mut()
            .push(format!("silence {}", matchers.join(",")));
        self.silences
            .borrow_mut()
            .insert(id.clone(), "active".into());
        Ok(id)
    }

    async fn consul(
        &self,
        action: &crate::plan::ConsulAction,
    ) -> Result<(), crate::consul::ConsulError> {
        self.calls.borrow_mut().push(action.request_line());
        Ok(())
    }

    async fn etcd(&self, action: &crate::plan::EtcdAction) -> Result<(), crate::etcd::EtcdError> {
        self.calls.borrow_mut().push(action.request_line());
        Ok(())
    }

    async fn expire_silence(&self, _url: &str, id: &str) -> Result<(), AlertError> {
        self.calls.borrow_mut().push(format!("expire {id}"));
        self.silences
            .borrow_mut()
            .insert(id.into(), "expired".into());
        Ok(())
    }
}

struct Answers {
    confirm: bool,
    typed: &'static str,
}

impl Prompt for Answers {
    fn confirm(&self, _question: &str) -> std::io::Result<bool> {
        Ok(self.confirm)
    }

    fn type_to_confirm(&self, _question: &str, _expected: &str) -> std::io::Result<String> {
        Ok(self.typed.into())
    }
}

#[allow(clippy::unnecessary_wraps)] // the fake world answers with a Result
fn ok(status: u16, message: &str) -> Result<ActionResponse, PatroniError> {
    Ok(ActionResponse {
        status,
        message: message.into(),
    })
}

fn unattended() -> GatePolicy {
    GatePolicy {
        assume_yes: true,
        confirm: Vec::new(),
        done: Vec::new(),
        interactive: false,
        operator: "test".into(),
    }
}

fn interactive() -> GatePolicy {
    GatePolicy {
        interactive: true,
        operator: "test".into(),
        ..GatePolicy::default()
    }
}

/// The recorded 4.1.5 cluster led by node3; a switchover to node1 is the classic plan.
fn switchover_plan(target: &ClusterTarget, view: &ClusterView) -> Plan {
    let params = Params::Switchover(crate::runbooks::switchover::Params {
        candidate: Some("node1".into()),
        at: None,
        checkpoint: false,
        max_lag: runbooks::DEFAULT_MAX_LAG_BYTES,
        timeout: Some(Duration::from_secs(30)),
    });
    runbooks::plan(target, view, &params).unwrap()
}

async fn run(
    world: &FakeWorld,
    plan: &Plan,
    policy: GatePolicy,
    prompt: Answers,
) -> (Finish, Vec<Event>) {
    let mut recorder = Recorder::default();
    let (_interrupt, receiver) = watch::channel(false);
    let finish = Executor::new(world, Arc::new(prompt), policy, &mut recorder, receiver)
        .run(plan, &ResumePoint::default())
        .await;
    (finish, recorder.0)
}

/// Runs `plan` unattended from where `point` says an earlier run stopped.
async fn resume(world: &FakeWorld, plan: &Plan, point: &ResumePoint) -> (Finish, Vec<Event>) {
    resume_as(world, plan, point, unattended(), yes()).await
}

/// The same with `policy` and `prompt`'s answers.
async fn resume_as(
    world: &FakeWorld,
    plan: &Plan,
    point: &ResumePoint,
    policy: GatePolicy,
    prompt: Answers,
) -> (Finish, Vec<Event>) {
    let mut recorder = Recorder::default();
    let (_sender, receiver) = watch::channel(false);
    let finish = Executor::new(world, Arc::new(prompt), policy, &mut recorder, receiver)
        .run(plan, point)
        .await;
    (finish, recorder.0)
}

/// The switchover node3 → node1 against a cluster that, once the call is sent, is led by
/// `winner` on timeline 2; Patroni answers `answer`.
async fn switch_over(
    winner: &str,
    answer: Result<ActionResponse, PatroniError>,
) -> (FakeWorld, Finish, Vec<Event>) {
    let (target, before) = view_led_by("4.1.5", "node3", Some(1));
    let (_, after) = view_led_by("4.1.5", winner, Some(2));
    let world = FakeWorld::new(before.clone(), after, answer);
    let (finish, events) = run(
        &world,
        &switchover_plan(&target, &before),
        unattended(),
        yes(),
    )
    .await;
    (world, finish, events)
}

fn yes() -> Answers {
    Answers {
        confirm: true,
        typed: "",
    }
}

#[tokio::test(start_paused = true)]
async fn a_switchover_is_verified_by_the_new_leader_and_timeline() {
    let (world, finish, events) =
        switch_over("node1", ok(200, "Successfully switched over to \"node1\"")).await;
    assert_eq!(finish.outcome, Outcome::Succeeded, "{}", finish.detail);
    assert_eq!(
        *world.calls.borrow(),
        ["POST /switchover"],
        "sent exactly once"
    );
    assert!(
        events.iter().any(
            |event| matches!(event, Event::StepSucceeded { step, .. } if step == "switchover")
        )
    );
}

/// "A switchover's 200 can name another winner": the answer is not the outcome.
#[tokio::test(start_paused = true)]
async fn a_200_is_not_trusted_when_another_member_won() {
    let started = Instant::now();
    let (world, finish, _) =
        switch_over("node2", ok(200, "Successfully switched over to \"node2\"")).await;
    assert_eq!(finish.outcome, Outcome::Failed);
    assert!(
        finish.detail.contains("not done within 30s"),
        "{}",
        finish.detail
    );
    assert!(
        finish.detail.contains("the leader is node2"),
        "{}",
        finish.detail
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(30) && waited < Duration::from_secs(31),
        "waited {waited:?}"
    );
    assert_eq!(world.calls.borrow().len(), 1, "never retried");
}

/// "A 503 'status unknown' can mean success": observe and decide.
#[tokio::test(start_paused = true)]
async fn a_503_is_settled_by_observation() {
    let (_, finish, _) = switch_over("node1", ok(503, "Switchover status unknown")).await;
    assert_eq!(finish.outcome, Outcome::Succeeded, "{}", finish.detail);
}

#[tokio::test(start_paused = true)]
async fn a_lost_answer_is_recorded_and_settled_by_observation() {
    let lost = Err(PatroniError::Timeout {
        url: "http://127.0.0.33:8008/switchover".into(),
        after: Duration::from_mins(1),
    });
    let (world, finish, events) = switch_over("node1", lost).await;
    assert_eq!(finish.outcome, Outcome::Succeeded, "{}", finish.detail);
    assert!(
        events
            .iter()
            .any(|event| matches!(event, Event::ActionLost { .. }))
    );
    assert_eq!(
        world.calls.borrow().len(),
        1,
        "a lost answer is not a reason to send again"
    );
}

#[tokio::test(start_paused = true)]
async fn a_refusal_fails_at_once_without_waiting() {
    let started = Instant::now();
    let (_, finish, _) = switch_over(
        "node3",
        ok(412, "candidate name does not match with sync_standby"),
    )
    .await;
    assert_eq!(finish.outcome, Outcome::Failed);
    assert!(
        finish
            .detail
            .contains("HTTP 412 candidate name does not match"),
        "{}",
        finish.detail
    );
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn a_declined_gate_stops_before_any_call() {
    let (target, before) = view_led_by("4.1.5", "node3", Some(1));
    let world = FakeWorld::new(before.clone(), before.clone(), ok(200, ""));
    let (finish, events) = run(
        &world,
        &switchover_plan(&target, &before),
        interactive(),
        Answers {
            confirm: false,
            typed: "",
        },
    )
    .await;
    assert_eq!(finish.outcome, Outcome::Aborted);
    assert!(world.calls.borrow().is_empty());
    assert!(events.iter().any(|event| matches!(event, Event::GateAnswered { answer: false, by, .. } if by == "test at the terminal")));
}

#[tokio::test(start_paused = true)]
async fn a_wrong_name_typed_at_a_destructive_gate_cancels() {
    let (target, before) = view_led_by("4.1.5", "node3", Some(1));
    let params = Params::Reinit(crate::runbooks::reinit::Params {
        member: "node1".into(),
        timeout: None,
        max_lag: runbooks::DEFAULT_MAX_LAG_BYTES,
    });
    let plan = runbooks::plan(&target, &before, &params).unwrap();
    let world = FakeWorld::new(before.clone(), before, ok(200, ""));
    let (finish, _) = run(
        &world,
        &plan,
        interactive(),
        Answers {
            confirm: true,
            typed: "node2",
        },
    )
    .await;
    assert_eq!(finish.outcome, Outcome::Aborted);
    assert!(world.calls.borrow().is_empty());
}

/// The cluster moves while a human reads a prompt: the step re-checks after the gate.
#[tokio::test(start_paused = true)]
async fn a_cluster_that_changed_since_planning_is_refused_before_acting() {
    let (target, planned_on) = view_led_by("4.1.5", "node3", Some(1));
    let (_, now) = view_led_by("4.1.5", "node2", Some(2));
    let plan = switchover_plan(&target, &planned_on);
    let world = FakeWorld::new(now.clone(), now, ok(200, ""));
    let (finish, _) = run(&world, &plan, unattended(), yes()).await;
    assert_eq!(finish.outcome, Outcome::Refused);
    assert!(
        finish
            .detail
            .contains("node3 is the leader does not hold (the leader is node2)"),
        "{}",
        finish.detail
    );
    assert!(world.calls.borrow().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_step_whose_effect_is_visible_is_skipped() {
    let (target, view) = view_led_by("4.1.5", "node3", Some(1));
    let (_, paused) = {
        let (target, mut observations) = crate::observe::testing::led_by("4.1.5", "node3", Some(1));
        for observation in &mut observations {
            if let Ok(topology) = &mut observation.topology {
                topology.paused = true;
            }
            if let Ok(status) = &mut observation.status {
                status.paused = true;
            }
        }
        (
            target.clone(),
            crate::observe::merge(&target, observations).unwrap(),
        )
    };
    let plan = runbooks::plan(
        &target,
        &view,
        &Params::Pause(crate::runbooks::pause::Params { wait: true }),
    )
    .unwrap();
    let world = FakeWorld::new(paused.clone(), paused, ok(200, ""));
    let (finish, events) = run(&world, &plan, unattended(), yes()).await;
    assert_eq!(finish.outcome, Outcome::Succeeded);
    assert!(
        world.calls.borrow().is_empty(),
        "already paused: nothing sent"
    );
    assert!(events.iter().any(|event| matches!(event, Event::StepSkipped { reason, .. } if reason.starts_with("already done"))));
}

#[tokio::test(start_paused = true)]
async fn a_wait_polls_at_its_interval_until_its_deadline() {
    let (view, plan) = waiting_for_nothing(Duration::from_secs(10), Duration::from_secs(1));
    let world = FakeWorld::new(view.clone(), view, ok(200, ""));
    let started = Instant::now();
    let (finish, events) = run(&world, &plan, unattended(), yes()).await;
    assert_eq!(finish.outcome, Outcome::Failed);
    assert_eq!(started.elapsed(), Duration::from_secs(10));
    assert_eq!(world.observations.get(), 11, "at 0, 1, …, 10 s");
    let progress = events
        .iter()
        .filter(|event| matches!(event, Event::Progress { .. }))
        .count();
    assert_eq!(progress, 11);
    let observed = events
        .iter()
        .filter(|event| matches!(event, Event::Observed { .. }))
        .count();
    assert_eq!(observed, 1, "an unchanged observation is recorded once");
}

/// node1 `starting` and staying so, its log read through a command `read-log` that prints `log`:
/// a six-hour wait for something that never happens, with the log watched every 30 s.
fn starting_and_watched(log: &str) -> (FakeWorld, Plan) {
    let (target, mut observations) = crate::observe::testing::led_by("4.1.5", "node3", Some(1));
    let starting = observations
        .iter_mut()
        .find(|observation| observation.target.name == "node1")
        .unwrap();
    // As Patroni reports it: recovery begun, consistency not reached.
    let status = starting.status.as_mut().unwrap();
    status.state = crate::patroni::MemberState::Starting;
    status.replication_state = Some(crate::patroni::MemberState::InArchiveRecovery);
    let view = crate::observe::merge(&target, observations).unwrap();
    let (_, mut plan) = waiting_for_nothing(Duration::from_hours(6), Duration::from_secs(1));
    let Action::Wait(wait) = &mut plan.steps[0].action else {
        unreachable!("one wait")
    };
    wait.stuck = vec![crate::plan::StuckWatch {
        member: "node1".into(),
        after: Duration::from_secs(30),
        read: RemoteAction {
            member: "node1".into(),
            host: "127.0.0.11".into(),
            transport: crate::remote::Transport::Ssh,
            command: crate::remote::HostCommand::new("read-log"),
            timeout: Duration::from_secs(20),
        },
    }];
    let mut world = FakeWorld::new(view.clone(), view, ok(200, ""));
    world.command_stdout.insert("read-log".into(), log.into());
    (world, plan)
}

/// Recovery that waits at one WAL position in two reads of the log, 30 s apart, fails the
/// wait then — with the log's tail — not at its six-hour deadline.
#[tokio::test(start_paused = true)]
async fn a_recovery_waiting_at_one_position_fails_the_wait_at_the_second_read_of_its_log() {
    let log = "2026-12-03 12:03:46.657 UTC [19228] LOG:  waiting for WAL to become available at 0/4000028\n";
    let (world, plan) = starting_and_watched(log);
    let started = Instant::now();
    let (finish, _) = run(&world, &plan, unattended(), yes()).await;
    assert_eq!(finish.outcome, Outcome::Failed);
    assert_eq!(
        started.elapsed(),
        Duration::from_mins(1),
        "read at 30 s and at 60 s"
    );
    assert!(
        finish.detail.contains("node1 has been `starting` for 60 s and cannot go on: recovery waits for WAL at 0/4000028"),
        "{}",
        finish.detail
    );
    assert!(
        finish.detail.contains("[19228] LOG:  waiting for WAL"),
        "{}",
        finish.detail
    );
    assert_eq!(world.calls.borrow().len(), 2, "{:?}", world.calls.borrow());
}

/// A log that shows recovery going on (or says nothing known) never fails the wait: it ends at
/// its deadline, as without the watch.
#[tokio::test(start_paused = true)]
async fn a_log_without_a_stuck_recovery_leaves_the_wait_to_its_deadline() {
    let (world, mut plan) =
        starting_and_watched("LOG:  restored log file \"000000010000000000000004\" from archive\n");
    let Action::Wait(wait) = &mut plan.steps[0].action else {
        unreachable!("one wait")
    };
    wait.timeout = Duration::from_mins(5);
    let started = Instant::now();
    let (finish, _) = run(&world, &plan, unattended(), yes()).await;
    assert_eq!(finish.outcome, Outcome::Failed);
    assert_eq!(started.elapsed(), Duration::from_mins(5));
    assert!(!finish.detail.contains("cannot go on"), "{}", finish.detail);
    assert_eq!(world.calls.borrow().len(), 10, "a read every 30 s");
}

/// A restore's progress: the data directory's size, read at most every 5 s however often the
/// wait polls, shown against the databases' size; a size that cannot be read shows none.
#[tokio::test(start_paused = true)]
async fn a_restore_shows_its_data_directory_filling_read_every_five_seconds() {
    let (view, mut plan) = waiting_for_nothing(Duration::from_secs(20), Duration::from_secs(1));
    let Action::Wait(wait) = &mut plan.steps[0].action else {
        unreachable!("one wait")
    };
    wait.progress = Progress::DataDirectory {
        member: "node1".into(),
        expected_bytes: 400 << 20,
        read: RemoteAction {
            member: "node1".into(),
            host: "127.0.0.11".into(),
            transport: crate::remote::Transport::Ssh,
            command: crate::remote::HostCommand::new("du-data"),
            timeout: Duration::from_secs(20),
        },
    };
    let mut world = FakeWorld::new(view.clone(), view, ok(200, ""));
    world
        .command_stdout
        .insert("du-data".into(), format!("{}\n", 100 << 20));
    let (finish, events) = run(&world, &plan, unattended(), yes()).await;
    assert_eq!(finish.outcome, Outcome::Failed, "nothing to wait for");
    assert_eq!(
        world.calls.borrow().len(),
        5,
        "read at 0, 5, 10, 15 and 20 s: {:?}",
        world.calls.borrow()
    );
    let shown: Vec<(Option<u64>, Option<u64>, String)> = events
        .iter()
        .filter_map(|event| match event {
            Event::Progress {
                done_bytes,
                total_bytes,
                detail,
                ..
            } => Some((*done_bytes, *total_bytes, detail.clone())),
            _ => None,
        })
        .collect();
    assert!(shown.len() > 4, "every poll shows progress: {shown:?}");
    for (done, total, detail) in &shown {
        assert_eq!((*done, *total), (Some(100 << 20), Some(400 << 20)));
        assert!(
            detail.ends_with("node1's data directory holds 100.0 MiB of the databases' 400.0 MiB"),
            "{detail}"
        );
    }

    world.failing_commands.insert("du-data".into());
    let (_, events) = run(&world, &plan, unattended(), yes()).await;
    assert!(events.iter().all(|event| !matches!(
        event,
        Event::Progress {
            done_bytes: Some(_),
            ..
        }
    )));
}

#[tokio::test(start_paused = true)]
async fn ctrl_c_during_a_wait_interrupts_the_run() {
    let (view, plan) = waiting_for_nothing(Duration::from_hours(1), Duration::from_secs(5));
    let world = FakeWorld::new(view.clone(), view, ok(200, ""));
    let (sender, receiver) = watch::channel(false);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(12)).await;
        let _ = sender.send(true);
    });
    let mut recorder = Recorder::default();
    let started = Instant::now();
    let finish = Executor::new(
        &world,
        Arc::new(yes()),
        unattended(),
        &mut recorder,
        receiver,
    )
    .run(&plan, &ResumePoint::default())
    .await;
    assert_eq!(finish.outcome, Outcome::Interrupted);
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(12),
        "stops at once, not at the next poll"
    );
}

#[tokio::test(start_paused = true)]
async fn resuming_skips_finished_steps() {
    let (target, before) = view_led_by("4.1.5", "node3", Some(1));
    let (_, after) = view_led_by("4.1.5", "node1", Some(2));
    let plan = switchover_plan(&target, &before);
    let world = FakeWorld::new(after.clone(), after, ok(200, ""));
    let mut point = ResumePoint::default();
    point.finished.insert("switchover".into());
    let (finish, events) = resume(&world, &plan, &point).await;
    assert_eq!(finish.outcome, Outcome::Succeeded);
    assert!(world.calls.borrow().is_empty());
    let started: Vec<&str> = events
        .iter()
        .filter_map(|event| match event {
            Event::StepStarted { step, .. } => Some(step.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(started, ["wait-rejoin-node3"]);
}

#[test]
fn unattended_runs_need_yes_and_destructive_ones_the_name() {
    let (target, view) = view_led_by("4.1.5", "node3", Some(1));
    let reinit = runbooks::plan(
        &target,
        &view,
        &Params::Reinit(crate::runbooks::reinit::Params {
            member: "node1".into(),
            timeout: None,
            max_lag: 1,
        }),
    )
    .unwrap();
    let no_terminal = GatePolicy::default();
    assert!(
        no_terminal
            .refusal(&reinit)
            .unwrap()
            .starts_with("no terminal to ask for confirmation")
    );
    let yes_only = unattended();
    assert!(
        yes_only
            .refusal(&reinit)
            .unwrap()
            .contains("pass --confirm node1 (--yes is not enough)")
    );
    let named = GatePolicy {
        confirm: vec!["node1".into()],
        ..unattended()
    };
    assert_eq!(named.refusal(&reinit), None);
    let wrong = GatePolicy {
        confirm: vec!["node2".into()],
        ..unattended()
    };
    assert!(
        wrong
            .refusal(&reinit)
            .unwrap()
            .contains("does not match what the destructive steps ask for (node1)")
    );
    let at_a_terminal = interactive();
    assert_eq!(
        at_a_terminal.refusal(&reinit),
        None,
        "the name is typed at the gate"
    );
}

/// A plan of one wait, for something that never happens.
fn waiting_for_nothing(timeout: Duration, poll: Duration) -> (ClusterView, Plan) {
    let (target, view) = view_led_by("4.1.5", "node3", Some(1));
    let mut plan = runbooks::plan(
        &target,
        &view,
        &Params::Pause(crate::runbooks::pause::Params { wait: false }),
    )
    .unwrap();
    let never = Check::LeaderIs {
        member: "node9".into(),
    };
    plan.steps = vec![wait_step(never, timeout, poll)];
    (view, plan)
}

fn wait_step(until: Check, timeout: Duration, poll: Duration) -> Step {
    Step {
        id: "wait".into(),
        title: "Wait".into(),
        action: Action::Wait(Wait {
            until: vec![until],
            fail_if: Vec::new(),
            timeout,
            poll,
            progress: Progress::Checks,
            stuck: Vec::new(),
        }),
        gate: Gate::None,
        prechecks: Vec::new(),
        verify: None,
        idempotency: Idempotency::SafeToRepeat,
    }
}

/// The reinit of node1 in the cluster led by node3, with an Alertmanager in the inventory:
/// silence, reinitialize, wait, expire.
fn silenced_reinit() -> (ClusterView, Plan) {
    let (mut target, view) = view_led_by("4.1.5", "node3", Some(1));
    target.alertmanager = Some(crate::inventory::AlertmanagerSettings {
        url: "http://127.0.0.10:9093".into(),
        matchers: BTreeMap::from([("alertname".into(), "Lag".into())]),
        auth: None,
    });
    let params = Params::Reinit(crate::runbooks::reinit::Params {
        member: "node1".into(),
        timeout: None,
        max_lag: 1,
    });
    let plan = runbooks::plan(&target, &view, &params).unwrap();
    (view, plan)
}

/// The reinit's silence steps around other `steps`.
fn silenced(reinit: &Plan, steps: Vec<Step>) -> Plan {
    let mut plan = reinit.clone();
    plan.steps = std::iter::once(reinit.steps[0].clone())
        .chain(steps)
        .chain(reinit.steps.last().cloned())
        .collect();
    plan
}

/// A wait of up to 3 s for `leader` to lead, between the reinit's silence steps.
fn silenced_wait_for_leader(leader: &str) -> (ClusterView, Plan) {
    let (view, reinit) = silenced_reinit();
    let leads = Check::LeaderIs {
        member: leader.into(),
    };
    let wait = wait_step(leads, Duration::from_secs(3), Duration::from_secs(1));
    (view, silenced(&reinit, vec![wait]))
}

/// Seed 000's silence: created first, expired by the last step of a run that went well.
#[tokio::test(start_paused = true)]
async fn a_silence_is_created_before_the_work_and_expired_after_it() {
    let (view, plan) = silenced_wait_for_leader("node3");
    let world = FakeWorld::new(view.clone(), view, ok(200, ""));
    let (finish, events) = run(&world, &plan, unattended(), yes()).await;
    assert_eq!(finish.outcome, Outcome::Succeeded, "{}", finish.detail);
    assert_eq!(
        *world.calls.borrow(),
        ["silence alertname=Lag", "expire silence-1"]
    );
    assert_eq!(world.silences.borrow()["silence-1"], "expired");
    let silence_events = events
        .iter()
        .filter(|event| {
            matches!(
                event,
                Event::SilenceCreated { .. } | Event::SilenceExpired { .. }
            )
        })
        .count();
    assert_eq!(silence_events, 2, "both go to the journal");
}

/// An operator who stops at the gate must not leave the alerts muted.
#[tokio::test(start_paused = true)]
async fn an_aborted_run_expires_the_silence_it_created() {
    let (view, plan) = silenced_reinit();
    let world = FakeWorld::new(view.clone(), view, ok(200, ""));
    let wrong_name = Answers {
        confirm: true,
        typed: "node2",
    };
    let (finish, events) = run(&world, &plan, interactive(), wrong_name).await;
    assert_eq!(finish.outcome, Outcome::Aborted);
    assert_eq!(
        *world.calls.borrow(),
        ["silence alertname=Lag", "expire silence-1"],
        "no REST call, and the silence is gone"
    );
    assert!(events.iter().any(
        |event| matches!(event, Event::Compensating { step, after, .. } if step == "undo-silence-node1" && after == "silence-node1")
    ));
    assert!(events.iter().any(
        |event| matches!(event, Event::SilenceExpired { step, id } if step == "undo-silence-node1" && id == "silence-1")
    ));
    assert!(
        finish
            .detail
            .ends_with("; undone: Expire the silence for node1"),
        "{}",
        finish.detail
    );
}

/// The journal has the silence's id: a resumed run does not create a second one, and its
/// expire step expires the first.
#[tokio::test(start_paused = true)]
async fn a_resumed_run_reuses_the_silence_in_the_journal() {
    let (view, reinit) = silenced_reinit();
    let plan = silenced(&reinit, Vec::new());
    let world = FakeWorld::new(view.clone(), view, ok(200, ""));
    world
        .silences
        .borrow_mut()
        .insert("from-before".into(), "active".into());
    let point = ResumePoint {
        unfinished: BTreeSet::from(["silence-node1".into()]),
        silences: BTreeMap::from([("silence-node1".into(), "from-before".into())]),
        ..ResumePoint::default()
    };
    let (finish, _) = resume(&world, &plan, &point).await;
    assert_eq!(finish.outcome, Outcome::Succeeded, "{}", finish.detail);
    assert_eq!(*world.calls.borrow(), ["expire from-before"]);
}

/// A failed run keeps its silence (the member may still be catching up) and says so.
#[tokio::test(start_paused = true)]
async fn a_failed_run_keeps_its_silence_and_says_so() {
    let (view, plan) = silenced_wait_for_leader("node9");
    let world = FakeWorld::new(view.clone(), view, ok(200, ""));
    let (finish, events) = run(&world, &plan, unattended(), yes()).await;
    assert_eq!(finish.outcome, Outcome::Failed);
    assert!(
        finish.detail.ends_with(
            "; left as it is for `pgha resume` to finish (not undone automatically): Expire the silence for node1"
        ),
        "{}",
        finish.detail
    );
    assert_eq!(world.silences.borrow()["silence-1"], "active");
    assert!(
        !events
            .iter()
            .any(|event| matches!(event, Event::Compensating { .. })),
        "nothing compensated"
    );
}

#[tokio::test]
async fn a_lost_consul_lock_stops_the_run_before_its_next_change() {
    let (target, before) = view_led_by("4.1.5", "node3", Some(1));
    let (_, after) = view_led_by("4.1.5", "node1", Some(2));
    let world = FakeWorld::new(before.clone(), after, ok(200, "Successfully switched over"));
    let plan = switchover_plan(&target, &before);
    let lost = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut recorder = Recorder::default();
    let (_interrupt, receiver) = watch::channel(false);
    let finish = Executor::new(
        &world,
        Arc::new(yes()),
        unattended(),
        &mut recorder,
        receiver,
    )
    .with_lease(Some(lost))
    .run(&plan, &ResumePoint::default())
    .await;
    assert_eq!(finish.outcome, Outcome::Failed);
    assert!(
        finish.detail.contains("lock in Consul was lost"),
        "{}",
        finish.detail
    );
    assert!(world.calls.borrow().is_empty(), "nothing was sent");
    assert!(finish.outcome.is_resumable());
}

/// A journal that cannot be written (`/dev/full` fails every write with ENOSPC, like a full
/// disk) stops the run before its next change, resumable; a step that only looks still runs.
#[tokio::test(start_paused = true)]
async fn a_journal_that_cannot_be_written_stops_the_run_before_its_next_change() {
    let (target, before) = view_led_by("4.1.5", "node3", Some(1));
    let (_, after) = view_led_by("4.1.5", "node1", Some(2));
    let world = FakeWorld::new(before.clone(), after, ok(200, "Successfully switched over"));
    let mut plan = switchover_plan(&target, &before);
    let leads = Check::LeaderIs {
        member: "node3".into(),
    };
    let look = wait_step(leads, Duration::from_secs(10), Duration::from_secs(1));
    plan.steps.insert(0, look);
    let runs = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/dev/full", runs.path().join("r1.jsonl")).unwrap();
    let mut journal = crate::journal::RunStore::new(runs.path().to_path_buf())
        .reopen("r1")
        .unwrap();
    let journal_path = journal.path().display().to_string();
    let mut recorder = Recorder::default();
    let (_interrupt, receiver) = watch::channel(false);
    let finish = {
        let mut sinks = Sinks(vec![&mut journal, &mut recorder]);
        Executor::new(&world, Arc::new(yes()), unattended(), &mut sinks, receiver)
            .run(&plan, &ResumePoint::default())
            .await
    };
    assert!(world.calls.borrow().is_empty(), "nothing was sent");
    assert_eq!(finish.outcome, Outcome::Failed);
    assert!(finish.outcome.is_resumable());
    assert!(
        finish.detail.contains(&format!(
            "the journal could not be written ({journal_path}: No space left on device"
        )) && finish
            .detail
            .contains("stopped before this step changed anything"),
        "{}",
        finish.detail
    );
    let ends: Vec<(&str, &str)> = recorder
        .0
        .iter()
        .filter_map(|event| match event {
            Event::StepSucceeded { step, .. } => Some((step.as_str(), "succeeded")),
            Event::StepFailed { step, .. } => Some((step.as_str(), "failed")),
            _ => None,
        })
        .collect();
    assert_eq!(ends, [("wait", "succeeded"), ("switchover", "failed")]);
}

/// A host or a server that cannot be reached ends the run as unreachable (exit 3), resumable,
/// with nothing sent; not as bad input, and not as a failed change.
#[tokio::test(start_paused = true)]
async fn an_unreachable_host_or_server_ends_the_run_as_unreachable() {
    let (target, before) = view_led_by("4.1.5", "node3", Some(1));
    let (_, after) = view_led_by("4.1.5", "node1", Some(2));
    let mut world = FakeWorld::new(before.clone(), after, ok(200, "Successfully switched over"));
    world.sql_failure = Some(SqlError::Connect {
        host: "127.0.0.33".into(),
        port: 5432,
        reason: "Connection refused (os error 111)".into(),
    });
    let mut plan = switchover_plan(&target, &before);
    plan.steps.insert(0, plan_with_checkpoint(&target, &before));
    let (finish, _) = run(&world, &plan, unattended(), yes()).await;
    assert_eq!(finish.outcome, Outcome::Unreachable, "{}", finish.detail);
    assert_eq!(finish.outcome.exit(), Exit::Unreachable);
    assert!(finish.outcome.is_resumable());
    assert!(world.calls.borrow().is_empty(), "nothing was sent");

    let mut world = FakeWorld::new(before.clone(), before.clone(), ok(200, ""));
    world.remote_failure = Some(RemoteError::Connect {
        host: "127.0.0.31".into(),
        reason: "Connection refused".into(),
    });
    let plan = Plan {
        steps: vec![remote_step("true")],
        ..switchover_plan(&target, &before)
    };
    let (finish, _) = run(&world, &plan, unattended(), yes()).await;
    assert_eq!(finish.outcome, Outcome::Unreachable, "{}", finish.detail);
    assert!(
        finish.detail.contains("cannot connect over SSH"),
        "{}",
        finish.detail
    );

    world.remote_failure = Some(RemoteError::HostKey {
        host: "127.0.0.31".into(),
    });
    let (finish, _) = run(&world, &plan, unattended(), yes()).await;
    assert_eq!(
        finish.outcome,
        Outcome::Failed,
        "a changed host key is no outage: {}",
        finish.detail
    );
}

/// Found by a rehearsal (`ssh-drop@restore-backup`): a restore whose SSH session dropped at
/// once was taken for done — it had nothing to observe — and the run went on over an empty
/// data directory. A lost answer with nothing to settle it fails, for `resume` to run it again.
#[tokio::test(start_paused = true)]
async fn a_dropped_command_with_nothing_to_observe_fails_and_is_not_taken_for_done() {
    let (target, before) = view_led_by("4.1.5", "node3", Some(1));
    let mut world = FakeWorld::new(before.clone(), before.clone(), ok(200, ""));
    world.remote_failure = Some(RemoteError::Dropped {
        host: "127.0.0.31".into(),
        command: "restore".into(),
    });
    let plan = Plan {
        steps: vec![remote_step("restore"), remote_step("start")],
        ..switchover_plan(&target, &before)
    };
    let (finish, events) = run(&world, &plan, unattended(), yes()).await;
    assert_eq!(finish.outcome, Outcome::Failed, "{}", finish.detail);
    assert!(
        finish
            .detail
            .contains("nothing pgha observes settles this step's outcome: it is safe to run again, and `pgha resume` does"),
        "{}",
        finish.detail
    );
    assert!(
        events
            .iter()
            .any(|event| matches!(event, Event::ActionLost { step, .. } if step == "run-restore"))
    );
    assert!(
        !events
            .iter()
            .any(|event| matches!(event, Event::StepStarted { step, .. } if step == "run-start")),
        "nothing after it ran"
    );
}

/// The switchover plan's CHECKPOINT step (`--checkpoint`).
fn plan_with_checkpoint(target: &ClusterTarget, view: &ClusterView) -> Step {
    let params = Params::Switchover(crate::runbooks::switchover::Params {
        candidate: Some("node1".into()),
        at: None,
        checkpoint: true,
        max_lag: runbooks::DEFAULT_MAX_LAG_BYTES,
        timeout: Some(Duration::from_secs(30)),
    });
    runbooks::plan(target, view, &params)
        .unwrap()
        .steps
        .into_iter()
        .find(|step| matches!(step.action, Action::Sql(_)))
        .expect("a CHECKPOINT step")
}

fn remote_step(program: &str) -> Step {
    Step {
        id: format!("run-{program}"),
        title: format!("Run {program}"),
        action: Action::Remote(RemoteAction {
            member: "node1".into(),
            host: "127.0.0.31".into(),
            transport: crate::remote::Transport::Ssh,
            command: crate::remote::HostCommand::new(program),
            timeout: Duration::from_secs(10),
        }),
        gate: Gate::None,
        prechecks: Vec::new(),
        verify: None,
        idempotency: Idempotency::SafeToRepeat,
    }
}

/// The switchover plan with a drain done by hand in front.
fn plan_with_a_step_by_hand(target: &ClusterTarget, view: &ClusterView) -> Plan {
    let mut plan = switchover_plan(target, view);
    plan.steps.insert(
        0,
        Step {
            id: "drain-node1".into(),
            title: "Drain node1".into(),
            action: Action::Manual(crate::plan::ManualAction {
                instructions: vec!["tag it noloadbalance".into()],
            }),
            gate: Gate::ByHand {
                question: "Is node1 drained?".into(),
                name: "drain".into(),
                skip_flag: Some("--no-drain".into()),
            },
            prechecks: Vec::new(),
            verify: None,
            idempotency: Idempotency::SafeToRepeat,
        },
    );
    plan
}

#[tokio::test(start_paused = true)]
async fn yes_never_answers_a_step_done_by_hand() {
    let (target, before) = view_led_by("4.1.5", "node3", Some(1));
    let (_, after) = view_led_by("4.1.5", "node1", Some(2));
    let plan = plan_with_a_step_by_hand(&target, &before);

    let refusal = unattended()
        .refusal(&plan)
        .expect("refused before anything starts");
    assert!(
        refusal.contains("--done drain") && refusal.contains("--no-drain"),
        "{refusal}"
    );
    let misspelt = GatePolicy {
        done: vec!["drane".into()],
        ..unattended()
    };
    assert!(
        misspelt
            .refusal(&plan)
            .is_some_and(|reason| reason.contains("steps done by hand are drain"))
    );

    // At a terminal, --yes still asks: the operator says no, nothing is sent.
    let world = FakeWorld::new(before.clone(), after.clone(), ok(200, "ok"));
    let asked = GatePolicy {
        assume_yes: true,
        ..interactive()
    };
    let no = Answers {
        confirm: false,
        typed: "",
    };
    let (finish, _) = run(&world, &plan, asked, no).await;
    assert_eq!(finish.outcome, Outcome::Aborted, "{}", finish.detail);
    assert!(world.calls.borrow().is_empty());

    // Named with --done: the run goes on, and the journal says who said so.
    let done = GatePolicy {
        done: vec!["drain".into()],
        ..unattended()
    };
    assert_eq!(done.refusal(&plan), None);
    let world = FakeWorld::new(before, after, ok(200, "ok"));
    let (finish, events) = run(&world, &plan, done, yes()).await;
    assert_eq!(finish.outcome, Outcome::Succeeded, "{}", finish.detail);
    assert!(events.iter().any(|event| matches!(
        event,
        Event::GateAnswered { step, by, .. } if step == "drain-node1" && by.starts_with("--done drain")
    )));
}

#[tokio::test(start_paused = true)]
async fn a_tag_is_written_once_and_nothing_of_the_file_is_recorded() {
    const PATH: &str = "/etc/patroni/patroni.yml";
    let (target, view) = view_led_by("4.1.5", "node3", Some(1));
    let world = FakeWorld::new(view.clone(), view.clone(), ok(200, "ok"));
    world.files.borrow_mut().insert(
        PATH.into(),
        "scope: demo\nrestapi:\n  authentication:\n    password: s3cret-rest\ntags:\n  noloadbalance: false # drained by pgha\n".into(),
    );
    let tag = Step {
        id: "tag-noloadbalance-node1".into(),
        title: "Tag node1".into(),
        action: Action::Tag(TagAction {
            member: "node1".into(),
            host: "127.0.0.31".into(),
            path: PATH.into(),
            backup: format!("{PATH}.pgha-1"),
            tag: "noloadbalance".into(),
            value: true,
            sudo: true,
            timeout: Duration::from_mins(1),
        }),
        gate: Gate::None,
        prechecks: Vec::new(),
        verify: None,
        idempotency: Idempotency::SafeToRepeat,
    };
    let plan = Plan {
        steps: vec![tag],
        ..switchover_plan(&target, &view)
    };
    let (finish, events) = run(&world, &plan, unattended(), yes()).await;
    assert_eq!(finish.outcome, Outcome::Succeeded, "{}", finish.detail);
    let file = world.files.borrow()[PATH].clone();
    assert!(
        file.contains("  noloadbalance: true # drained by pgha\n"),
        "{file}"
    );
    assert!(
        file.contains("password: s3cret-rest"),
        "the rest is the operator's"
    );
    let recorded = serde_json::to_string(&events).unwrap();
    assert!(!recorded.contains("s3cret"), "{recorded}");
    assert_eq!(
        *world.calls.borrow(),
        [format!("read {PATH}"), format!("write {PATH}")]
    );

    let (finish, _) = run(&world, &plan, unattended(), yes()).await;
    assert!(finish.detail.contains("1 step done"), "{}", finish.detail);
    assert_eq!(world.calls.borrow().len(), 3, "read again, nothing written");
}

/// A member that takes a minute to answer does not hold a 10 s wait past its deadline.
#[tokio::test(start_paused = true)]
async fn a_slow_look_never_holds_a_wait_past_its_deadline() {
    let (mut world, plan) = {
        let (view, plan) = waiting_for_nothing(Duration::from_secs(10), Duration::from_secs(1));
        (FakeWorld::new(view.clone(), view, ok(200, "")), plan)
    };
    world.observe_delay = Duration::from_mins(1);
    let started = Instant::now();
    let (finish, _) = run(&world, &plan, unattended(), yes()).await;
    assert_eq!(finish.outcome, Outcome::Failed, "{}", finish.detail);
    assert!(
        finish.detail.contains("no answer before the deadline"),
        "{}",
        finish.detail
    );
    assert!(
        started.elapsed() <= Duration::from_secs(10) + MINIMUM_LOOK,
        "{:?}",
        started.elapsed()
    );
}

/// Ctrl-C while a command is in flight: the command completes (nothing is cut half-way), the
/// run stops after it instead of going on to the next step, and it can be resumed from there.
#[tokio::test(start_paused = true)]
async fn ctrl_c_during_an_action_stops_the_run_after_it() {
    let (target, view) = view_led_by("4.1.5", "node3", Some(1));
    let mut world = FakeWorld::new(view.clone(), view.clone(), ok(200, ""));
    let (ctrl_c, interrupt) = watch::channel(false);
    world.ctrl_c_during_call = Some(ctrl_c);
    let plan = Plan {
        steps: vec![remote_step("first"), remote_step("second")],
        ..switchover_plan(&target, &view)
    };
    let mut recorder = Recorder::default();
    let finish = Executor::new(
        &world,
        Arc::new(yes()),
        unattended(),
        &mut recorder,
        interrupt,
    )
    .run(&plan, &ResumePoint::default())
    .await;
    assert_eq!(finish.outcome, Outcome::Interrupted, "{}", finish.detail);
    assert!(
        finish.detail.contains("stopped before \"Run second\""),
        "{}",
        finish.detail
    );
    assert_eq!(
        *world.calls.borrow(),
        ["first"],
        "the command completed; the next step never started"
    );
    assert!(recorder.0.iter().any(|event| matches!(
        event,
        Event::StepSucceeded { step, .. } if step == "run-first"
    )));
}

/// A command on `member` behind a destructive gate that asks for the member's name.
fn wipe_step(member: &str) -> Step {
    Step {
        id: format!("wipe-{member}"),
        title: format!("Wipe {member}"),
        gate: Gate::TypeToConfirm {
            question: format!("Wipe {member}?"),
            expected: member.into(),
        },
        ..remote_step(&format!("wipe-{member}"))
    }
}

/// Two destructive gates, each asking for its own member's name.
fn two_wipes() -> (FakeWorld, Plan) {
    let (target, view) = view_led_by("4.1.5", "node3", Some(1));
    let plan = Plan {
        steps: vec![wipe_step("node1"), wipe_step("node2")],
        ..switchover_plan(&target, &view)
    };
    (FakeWorld::new(view.clone(), view, ok(200, "")), plan)
}

fn confirming(names: &[&str]) -> GatePolicy {
    GatePolicy {
        confirm: names.iter().map(|name| (*name).to_string()).collect(),
        ..unattended()
    }
}

#[tokio::test(start_paused = true)]
async fn a_plan_asking_for_two_names_runs_unattended_only_with_both() {
    let (world, plan) = two_wipes();
    let both = confirming(&["node2", "node1"]);
    assert_eq!(both.refusal(&plan), None);
    let (finish, events) = run(&world, &plan, both, yes()).await;
    assert_eq!(finish.outcome, Outcome::Succeeded, "{}", finish.detail);
    assert_eq!(*world.calls.borrow(), ["wipe-node1", "wipe-node2"]);
    let answered: Vec<(&str, &str)> = events
        .iter()
        .filter_map(|event| match event {
            Event::GateAnswered { step, by, .. } => Some((step.as_str(), by.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        answered,
        [
            ("wipe-node1", "--confirm node1"),
            ("wipe-node2", "--confirm node2")
        ],
        "each gate checked against its own name"
    );
}

#[test]
fn one_name_of_two_is_refused_naming_the_other() {
    let (_, plan) = two_wipes();
    let refusal = confirming(&["node1"]).refusal(&plan).unwrap();
    assert!(
        refusal.contains("pass --confirm node2 (--yes is not enough)")
            && !refusal.contains("--confirm node1"),
        "{refusal}"
    );
    let refusal = confirming(&[]).refusal(&plan).unwrap();
    assert!(
        refusal.contains("pass --confirm node1 --confirm node2 (--yes is not enough)"),
        "{refusal}"
    );
    let refusal = confirming(&["node1", "node2", "node3"])
        .refusal(&plan)
        .unwrap();
    assert!(
        refusal.contains(
            "--confirm node3 does not match what the destructive steps ask for (node1, node2)"
        ),
        "{refusal}"
    );
}

/// Past the up-front check (a resumed run's, say), a gate whose name was not given refuses at
/// that gate: the name given for another gate does not answer it.
#[tokio::test(start_paused = true)]
async fn a_name_given_for_one_gate_never_answers_another() {
    let (world, plan) = two_wipes();
    let (finish, _) = run(&world, &plan, confirming(&["node1"]), yes()).await;
    assert_eq!(finish.outcome, Outcome::Refused, "{}", finish.detail);
    assert!(
        finish.detail.contains("pass --confirm node2"),
        "{}",
        finish.detail
    );
    assert_eq!(*world.calls.borrow(), ["wipe-node1"]);

    // At a terminal, the name not given is typed there.
    let (world, plan) = two_wipes();
    let at_a_terminal = GatePolicy {
        confirm: vec!["node1".into()],
        ..interactive()
    };
    let typed = Answers {
        confirm: true,
        typed: "node2",
    };
    let (finish, events) = run(&world, &plan, at_a_terminal, typed).await;
    assert_eq!(finish.outcome, Outcome::Succeeded, "{}", finish.detail);
    assert!(events.iter().any(|event| matches!(
        event,
        Event::GateAnswered { step, by, .. } if step == "wipe-node2" && by == "test at the terminal"
    )));
}

/// A plan of commands on node1's host: `serial` ones, then `group` as one parallel group, then
/// `after`; the world as recorded, led by node3 before and after.
fn commands(serial: &[&str], group: &[&str], after: &[&str]) -> (FakeWorld, Plan) {
    let (target, view) = view_led_by("4.1.5", "node3", Some(1));
    let steps = serial
        .iter()
        .chain(group)
        .chain(after)
        .map(|program| remote_step(program))
        .collect();
    let plan = Plan {
        steps,
        parallel: if group.is_empty() {
            Vec::new()
        } else {
            vec![crate::plan::ParallelGroup {
                steps: group
                    .iter()
                    .map(|program| format!("run-{program}"))
                    .collect(),
            }]
        },
        ..switchover_plan(&target, &view)
    };
    (FakeWorld::new(view.clone(), view, ok(200, "")), plan)
}

/// Each step's start and end, in the order they were recorded: `+id` started, `=id` succeeded,
/// `!id` failed, `-id` skipped.
fn step_trace(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::StepStarted { step, .. } => Some(format!("+{step}")),
            Event::StepSucceeded { step, .. } => Some(format!("={step}")),
            Event::StepFailed { step, .. } => Some(format!("!{step}")),
            Event::StepSkipped { step, .. } => Some(format!("-{step}")),
            _ => None,
        })
        .collect()
}

/// Each gate answered (`?id`) and each step started (`+id`), in order.
fn gates_and_starts(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::GateAnswered { step, .. } => Some(format!("?{step}")),
            Event::StepStarted { step, .. } => Some(format!("+{step}")),
            _ => None,
        })
        .collect()
}

/// Runs `plan` unattended with a journal in `runs` as well as a recorder: what `resume` reads.
async fn run_journalled(
    world: &FakeWorld,
    plan: &Plan,
    policy: GatePolicy,
    prompt: Answers,
    runs: &std::path::Path,
) -> (Finish, Vec<Event>, ResumePoint) {
    let store = crate::journal::RunStore::new(runs.to_path_buf());
    let mut journal = store.create("r1").unwrap();
    let mut recorder = Recorder::default();
    let (_interrupt, receiver) = watch::channel(false);
    let finish = {
        let mut sinks = Sinks(vec![&mut journal, &mut recorder]);
        Executor::new(world, Arc::new(prompt), policy, &mut sinks, receiver)
            .run(plan, &ResumePoint::default())
            .await
    };
    let point = store.read("r1").unwrap().resume_point();
    (finish, recorder.0, point)
}

/// Three restores of different lengths run at once: the group takes as long as the longest,
/// each step is journalled and verified on its own, and the next step waits for all of them.
#[tokio::test(start_paused = true)]
async fn a_parallel_group_runs_its_steps_at_once_each_journalled_on_its_own() {
    let (mut world, plan) = commands(&[], &["restore1", "restore2", "restore3"], &["start"]);
    world.command_delays = BTreeMap::from([
        ("restore1".into(), Duration::from_secs(10)),
        ("restore2".into(), Duration::from_secs(30)),
        ("restore3".into(), Duration::from_secs(20)),
    ]);
    let started = Instant::now();
    let (finish, events) = run(&world, &plan, unattended(), yes()).await;
    assert_eq!(finish.outcome, Outcome::Succeeded, "{}", finish.detail);
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(30),
        "at once: as long as the longest"
    );
    assert_eq!(
        step_trace(&events),
        [
            "+run-restore1",
            "+run-restore2",
            "+run-restore3",
            "=run-restore1",
            "=run-restore3",
            "=run-restore2",
            "+run-start",
            "=run-start"
        ]
    );
    let indices: Vec<usize> = events
        .iter()
        .filter_map(|event| match event {
            Event::StepStarted { index, .. } => Some(*index),
            _ => None,
        })
        .collect();
    assert_eq!(indices, [1, 2, 3, 4], "each numbered as in the plan");
    assert_eq!(
        *world.calls.borrow(),
        ["restore1", "restore3", "restore2", "start"]
    );
}

/// One step of a group fails: the sibling already running finishes on its own, the one not
/// started yet is never started, nothing after the group runs, and the journal's resume point
/// makes `resume` redo exactly the failed step and the one not started.
#[tokio::test(start_paused = true)]
async fn a_failure_in_a_group_starts_no_sibling_and_resume_redoes_only_what_did_not_finish() {
    let (mut world, plan) = commands(&[], &["slow", "broken", "late"], &["start"]);
    // Each step re-observes the cluster before it starts: one second, side by side.
    world.observe_delay = Duration::from_secs(1);
    world.command_delays = BTreeMap::from([("slow".into(), Duration::from_secs(30))]);
    world.failing_commands = BTreeSet::from(["broken".into()]);
    let runs = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (finish, events, point) =
        run_journalled(&world, &plan, unattended(), yes(), runs.path()).await;
    assert_eq!(finish.outcome, Outcome::Failed, "{}", finish.detail);
    assert!(finish.outcome.is_resumable());
    assert!(
        finish
            .detail
            .contains("`broken` on 127.0.0.31 exited 1: no space left on device")
            && finish
                .detail
                .ends_with("not started, as a step it runs in parallel with stopped: \"Run late\""),
        "{}",
        finish.detail
    );
    assert_eq!(
        step_trace(&events),
        ["+run-slow", "+run-broken", "!run-broken", "=run-slow"],
        "the running sibling finished; the late one and the next step never started"
    );
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(31),
        "the group ends when its last running step does"
    );
    assert_eq!(*world.calls.borrow(), ["broken", "slow"]);
    assert_eq!(point.finished, BTreeSet::from(["run-slow".to_string()]));
    assert_eq!(point.unfinished, BTreeSet::from(["run-broken".to_string()]));

    let (fixed, _) = commands(&[], &["slow", "broken", "late"], &["start"]);
    let (finish, events) = resume(&fixed, &plan, &point).await;
    assert_eq!(finish.outcome, Outcome::Succeeded, "{}", finish.detail);
    assert_eq!(*fixed.calls.borrow(), ["broken", "late", "start"]);
    assert_eq!(
        step_trace(&events),
        [
            "+run-broken",
            "=run-broken",
            "+run-late",
            "=run-late",
            "+run-start",
            "=run-start"
        ],
        "the slow one is not run again"
    );
}

/// A group's gates are answered first, in order, then its steps start; a gate that says no
/// stops the run before any step of the group started (the first one's yes included).
#[tokio::test(start_paused = true)]
async fn a_group_answers_all_its_gates_before_any_of_its_steps_starts() {
    let (world, mut plan) = two_wipes();
    plan.parallel = vec![crate::plan::ParallelGroup {
        steps: vec!["wipe-node1".into(), "wipe-node2".into()],
    }];
    let (finish, events) = run(&world, &plan, confirming(&["node1", "node2"]), yes()).await;
    assert_eq!(finish.outcome, Outcome::Succeeded, "{}", finish.detail);
    let order = gates_and_starts(&events);
    assert_eq!(
        order,
        ["?wipe-node1", "?wipe-node2", "+wipe-node1", "+wipe-node2"]
    );

    let (world, _) = two_wipes();
    let (finish, events) = run(&world, &plan, confirming(&["node1"]), yes()).await;
    assert_eq!(finish.outcome, Outcome::Refused, "{}", finish.detail);
    assert!(world.calls.borrow().is_empty(), "nothing was sent");
    assert!(
        step_trace(&events).is_empty(),
        "no step of the group started"
    );
}

/// Two steps of a group cut short in an earlier run, each only a human can judge: `resume`
/// asks about each, in order, before either runs again.
#[tokio::test(start_paused = true)]
async fn resuming_a_group_asks_about_each_unfinished_step_before_any_runs() {
    let (world, mut plan) = commands(&[], &["stop1", "stop2"], &[]);
    for step in &mut plan.steps {
        step.idempotency = Idempotency::AskHuman;
    }
    let point = ResumePoint {
        unfinished: BTreeSet::from(["run-stop1".into(), "run-stop2".into()]),
        started: vec!["run-stop1".into(), "run-stop2".into()],
        ..ResumePoint::default()
    };
    let (finish, events) = resume(&world, &plan, &point).await;
    assert_eq!(finish.outcome, Outcome::Succeeded, "{}", finish.detail);
    let order = gates_and_starts(&events);
    assert_eq!(
        order,
        ["?run-stop1", "?run-stop2", "+run-stop1", "+run-stop2"]
    );
}

/// `pause`, then `already` (skipped: its effect was there before the run), then `drain`, then a
/// destructive gate; each declares what undoes it.
fn undoable() -> (FakeWorld, Plan) {
    let (world, mut plan) = commands(&["pause", "already", "drain"], &[], &[]);
    plan.steps[1].idempotency = Idempotency::CheckStateFirst {
        done_when: vec![Check::LeaderIs {
            member: "node3".into(),
        }],
    };
    plan.steps.push(wipe_step("node1"));
    plan.compensations = [
        ("run-pause", "unpause"),
        ("run-already", "unalready"),
        ("run-drain", "undrain"),
        ("wipe-node1", "unwipe"),
    ]
    .into_iter()
    .map(|(after, undo)| crate::plan::Compensation {
        after: after.into(),
        step: remote_step(undo),
        on_failure: false,
    })
    .collect();
    (world, plan)
}

/// Declined at a gate, or refused there: what started is undone at once, the latest first,
/// each journalled; a step skipped as already done arms nothing, nor does one never started.
/// Undone steps count as not done: `resume` does them again.
#[tokio::test(start_paused = true)]
async fn an_aborted_or_refused_run_undoes_what_it_started_latest_first() {
    let wrong_name = Answers {
        confirm: true,
        typed: "node2",
    };
    let (world, plan) = undoable();
    let runs = tempfile::tempdir().unwrap();
    let (finish, events, point) =
        run_journalled(&world, &plan, interactive(), wrong_name, runs.path()).await;
    assert_eq!(finish.outcome, Outcome::Aborted, "{}", finish.detail);
    assert_eq!(
        *world.calls.borrow(),
        ["pause", "drain", "undrain", "unpause"]
    );
    assert!(
        finish
            .detail
            .ends_with("; undone: Run undrain; Run unpause"),
        "{}",
        finish.detail
    );
    let undoing: Vec<(&str, &str)> = events
        .iter()
        .filter_map(|event| match event {
            Event::Compensating { step, after, .. } => Some((step.as_str(), after.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        undoing,
        [("run-undrain", "run-drain"), ("run-unpause", "run-pause")]
    );
    assert!(events.iter().any(|event| matches!(
        event,
        Event::StepStarted { step, index: 0, title } if step == "run-undrain" && title == "[undo] Run undrain"
    )));
    assert_eq!(
        point.finished,
        BTreeSet::from(["run-already".to_string()]),
        "what was undone is to be done again"
    );
    assert!(point.started.is_empty(), "{:?}", point.started);
    assert!(point.unfinished.is_empty(), "{:?}", point.unfinished);

    let (world, plan) = undoable();
    let (finish, _) = run(&world, &plan, unattended(), yes()).await;
    assert_eq!(finish.outcome, Outcome::Refused, "{}", finish.detail);
    assert_eq!(
        *world.calls.borrow(),
        ["pause", "drain", "undrain", "unpause"]
    );
}

/// A resumed run knows from the journal what earlier runs started: aborted now, it undoes
/// that too.
#[tokio::test(start_paused = true)]
async fn a_resumed_run_undoes_what_an_earlier_run_started() {
    let (world, plan) = undoable();
    let point = ResumePoint {
        finished: BTreeSet::from(["run-pause".into(), "run-already".into(), "run-drain".into()]),
        started: vec!["run-pause".into(), "run-drain".into()],
        ..ResumePoint::default()
    };
    let (finish, _) = resume(&world, &plan, &point).await;
    assert_eq!(finish.outcome, Outcome::Refused, "{}", finish.detail);
    assert_eq!(*world.calls.borrow(), ["undrain", "unpause"]);
}

/// A failed run undoes nothing (the cluster's state is uncertain; the run is resumable) and
/// says what stays as it is.
#[tokio::test(start_paused = true)]
async fn a_failed_run_undoes_nothing_and_says_what_stays() {
    let (mut world, mut plan) = commands(&["pause", "broken"], &[], &[]);
    world.failing_commands = BTreeSet::from(["broken".into()]);
    plan.compensations = vec![crate::plan::Compensation {
        after: "run-pause".into(),
        step: remote_step("unpause"),
        on_failure: false,
    }];
    let (finish, events) = run(&world, &plan, unattended(), yes()).await;
    assert_eq!(finish.outcome, Outcome::Failed, "{}", finish.detail);
    assert_eq!(*world.calls.borrow(), ["pause", "broken"]);
    assert!(
        finish.detail.ends_with(
            "; left as it is for `pgha resume` to finish (not undone automatically): Run unpause"
        ),
        "{}",
        finish.detail
    );
    assert!(
        !events
            .iter()
            .any(|event| matches!(event, Event::Compensating { .. }))
    );
}

/// A run journalled before compensations existed declared none: resumed, it gets the one its
/// pgha applied without declaring it (expire the run's silence on abort), the very one the
/// planner declares now.
#[test]
fn a_plan_from_before_compensations_expires_its_silence_as_it_did() {
    let (_, declared) = silenced_reinit();
    assert_eq!(declared.compensations.len(), 1);
    let old = Plan {
        compensations: Vec::new(),
        ..declared.clone()
    };
    assert_eq!(old.with_implicit_compensations(), declared);
    let (_, plain) = waiting_for_nothing(Duration::from_secs(1), Duration::from_secs(1));
    assert_eq!(plain.clone().with_implicit_compensations(), plain);
}

/// `run-pause`, then `middle`, then `run-resume`, as a rolling upgrade: the pause may last 5
/// minutes, and is undone (`unpause`) also when the run fails.
fn paused_for_at_most_5m(middle: Vec<Step>) -> (FakeWorld, Plan) {
    let (world, mut plan) = commands(&["pause"], &[], &["resume"]);
    plan.steps.splice(1..1, middle);
    plan.compensations = vec![crate::plan::Compensation {
        after: "run-pause".into(),
        step: remote_step("unpause"),
        on_failure: true,
    }];
    plan.windows = vec![crate::plan::Window {
        from: "run-pause".into(),
        to: "run-resume".into(),
        limit: Duration::from_mins(5),
        what: "the cluster has been paused".into(),
    }];
    (world, plan)
}

fn compensated(events: &[Event]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::Compensating { step, .. } => Some(step.as_str()),
            _ => None,
        })
        .collect()
}

/// A wait inside a window ends at the window's end, not at its own deadline an hour later: the
/// step fails naming the window, and the pause is undone.
#[tokio::test(start_paused = true)]
async fn a_window_ends_a_wait_inside_it_and_the_failed_run_undoes_the_pause() {
    let never = Check::LeaderIs {
        member: "node9".into(),
    };
    let wait = wait_step(never, Duration::from_hours(1), Duration::from_secs(20));
    let (world, plan) = paused_for_at_most_5m(vec![wait]);
    let started = Instant::now();
    let (finish, events) = run(&world, &plan, unattended(), yes()).await;
    assert_eq!(finish.outcome, Outcome::Failed, "{}", finish.detail);
    assert_eq!(
        started.elapsed(),
        Duration::from_mins(5),
        "not the wait's hour"
    );
    assert!(
        finish.detail.starts_with(
            "Wait: the cluster has been paused for 5m, over its limit of 5m: stopped waiting ("
        ) && finish.detail.ends_with("; undone: Run unpause"),
        "{}",
        finish.detail
    );
    assert!(
        !finish.detail.contains("not done within"),
        "{}",
        finish.detail
    );
    assert!(events.iter().any(|event| matches!(
        event,
        Event::StepFailed { step, reason } if step == "wait" && reason.starts_with("the cluster has been paused for 5m")
    )));
    assert_eq!(*world.calls.borrow(), ["pause", "unpause"]);
    assert_eq!(compensated(&events), ["run-unpause"]);
}

/// A step that changes something is not cut off by the window (its effect would be unknown):
/// it ends, and the run stops before the next step, undoing the pause.
#[tokio::test(start_paused = true)]
async fn a_window_that_passes_during_a_step_stops_the_run_before_the_next_one() {
    let (mut world, plan) = paused_for_at_most_5m(vec![remote_step("upgrade")]);
    world.command_delays = BTreeMap::from([("upgrade".into(), Duration::from_mins(6))]);
    let (finish, events) = run(&world, &plan, unattended(), yes()).await;
    assert_eq!(finish.outcome, Outcome::Failed, "{}", finish.detail);
    assert_eq!(
        finish.detail,
        "the cluster has been paused for 6m, over its limit of 5m: stopped before \"Run resume\"; undone: Run unpause"
    );
    assert_eq!(*world.calls.borrow(), ["pause", "upgrade", "unpause"]);
    assert_eq!(
        step_trace(&events),
        [
            "+run-pause",
            "=run-pause",
            "+run-upgrade",
            "=run-upgrade",
            "+run-unpause",
            "=run-unpause"
        ],
        "the upgrade ran to its end; the resume never started"
    );
}

/// Within its limit a window changes nothing; once its last step finished it bounds nothing
/// more (the step after it takes longer than the limit, and the one after that still runs).
#[tokio::test(start_paused = true)]
async fn a_window_within_its_limit_changes_nothing_and_closes_with_its_last_step() {
    let holds = Check::LeaderIs {
        member: "node3".into(),
    };
    let wait = wait_step(holds, Duration::from_hours(1), Duration::from_secs(20));
    let (mut world, mut plan) = paused_for_at_most_5m(vec![remote_step("upgrade"), wait]);
    plan.steps.push(remote_step("settle"));
    plan.steps.push(remote_step("report"));
    world.command_delays = BTreeMap::from([
        ("upgrade".into(), Duration::from_mins(4)),
        ("settle".into(), Duration::from_mins(10)),
    ]);
    let (finish, events) = run(&world, &plan, unattended(), yes()).await;
    assert_eq!(finish.outcome, Outcome::Succeeded, "{}", finish.detail);
    assert_eq!(
        *world.calls.borrow(),
        ["pause", "upgrade", "resume", "settle", "report"]
    );
    assert!(compensated(&events).is_empty());
}

/// Resumed after the pause finished in an earlier run, the window counts from this run's start:
/// open (not forgotten, not already over), it lets 4 minutes pass and stops at 6.
#[tokio::test(start_paused = true)]
async fn a_resumed_run_counts_an_open_window_from_its_own_start() {
    let point = ResumePoint {
        finished: BTreeSet::from(["run-pause".into()]),
        started: vec!["run-pause".into()],
        ..ResumePoint::default()
    };
    let delays = BTreeMap::from([
        ("upgrade".into(), Duration::from_mins(4)),
        ("more".into(), Duration::from_mins(2)),
    ]);

    let (mut world, plan) = paused_for_at_most_5m(vec![remote_step("upgrade")]);
    world.command_delays.clone_from(&delays);
    let (finish, _) = resume(&world, &plan, &point).await;
    assert_eq!(finish.outcome, Outcome::Succeeded, "{}", finish.detail);
    assert_eq!(*world.calls.borrow(), ["upgrade", "resume"]);

    let (mut world, plan) =
        paused_for_at_most_5m(vec![remote_step("upgrade"), remote_step("more")]);
    world.command_delays = delays;
    let (finish, events) = resume(&world, &plan, &point).await;
    assert_eq!(finish.outcome, Outcome::Failed, "{}", finish.detail);
    assert_eq!(
        finish.detail,
        "the cluster has been paused for 6m, over its limit of 5m: stopped before \"Run resume\"; undone: Run unpause"
    );
    assert_eq!(*world.calls.borrow(), ["upgrade", "more", "unpause"]);
    assert_eq!(compensated(&events), ["run-unpause"]);
}

/// Undoing the pause is what ends it: its verification is not cut short by the window that
/// stopped the run (each look at the cluster takes a second here, past the window's end).
#[tokio::test(start_paused = true)]
async fn undoing_on_the_way_out_is_not_bounded_by_the_window() {
    let (mut world, mut plan) = paused_for_at_most_5m(vec![remote_step("upgrade")]);
    world.command_delays = BTreeMap::from([("upgrade".into(), Duration::from_mins(6))]);
    world.observe_delay = Duration::from_secs(1);
    plan.compensations[0].step.verify = Some(Wait {
        until: vec![Check::LeaderIs {
            member: "node3".into(),
        }],
        fail_if: Vec::new(),
        timeout: Duration::from_secs(30),
        poll: Duration::from_secs(1),
        progress: Progress::Checks,
        stuck: Vec::new(),
    });
    let (finish, _) = run(&world, &plan, unattended(), yes()).await;
    assert_eq!(finish.outcome, Outcome::Failed, "{}", finish.detail);
    assert!(
        finish
            .detail
            .ends_with("stopped before \"Run resume\"; undone: Run unpause"),
        "{}",
        finish.detail
    );
}

/// The cluster as a member sees it while its DCS is down: members answer, nobody can read the
/// leader key.
fn dcs_down(view: &ClusterView) -> ClusterView {
    let mut outage = view.clone();
    outage.leader = None;
    outage
        .warnings
        .push(crate::observe::Warning::DcsUnreachable {
            members: outage
                .members
                .iter()
                .map(|member| member.name.clone())
                .collect(),
            message: "no member can read the DCS".into(),
            critical: true,
        });
    outage
}

/// The fault matrix's wait × the DCS down: the wait says what it sees, keeps waiting through
/// the outage (no failure, no action), and ends once the DCS is back and its condition holds.
#[tokio::test(start_paused = true)]
async fn a_wait_rides_out_a_dcs_outage_and_ends_when_the_cluster_is_back() {
    let (target, view) = view_led_by("4.1.5", "node3", Some(1));
    let world = FakeWorld::new(view.clone(), view.clone(), ok(200, ""));
    let outage = dcs_down(&view);
    *world.script.borrow_mut() =
        VecDeque::from([outage.clone(), outage.clone(), outage, view.clone()]);
    let plan = Plan {
        steps: vec![wait_step(
            Check::HealthyLeader,
            Duration::from_hours(1),
            Duration::from_secs(5),
        )],
        ..switchover_plan(&target, &view)
    };
    let started = Instant::now();
    let (finish, events) = run(&world, &plan, unattended(), yes()).await;
    assert_eq!(finish.outcome, Outcome::Succeeded, "{}", finish.detail);
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(15),
        "three looks at the outage, 5 s apart, then the leader"
    );
    let observed: Vec<&str> = events
        .iter()
        .filter_map(|event| match event {
            Event::Observed { observed, .. } => Some(observed.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        observed.len(),
        2,
        "the outage once, then the leader: {observed:?}"
    );
    assert!(
        observed[0].contains("no member holds the leader key"),
        "{observed:?}"
    );
    assert!(world.calls.borrow().is_empty());
}

/// The fault matrix's wait × a failover by itself: the wait ends on its own condition (node1
/// streams, from the new leader node2), and the switchover after it re-checks the leader it
/// assumed and refuses the changed cluster before sending anything; resumable (`--replan`).
#[tokio::test(start_paused = true)]
async fn a_failover_during_a_wait_is_refused_by_the_next_steps_recheck() {
    let (target, view) = view_led_by("4.1.5", "node3", Some(1));
    let (_, failed_over) = view_led_by("4.1.5", "node2", Some(2));
    let mut catching_up = view.clone();
    for member in catching_up.members.iter_mut().filter(|m| m.name == "node1") {
        if let Ok(status) = member.status.as_mut() {
            status.state = crate::patroni::MemberState::Running;
            status.replication_state = None;
        }
        if let Some(entry) = member.dcs.as_mut() {
            entry.state = crate::patroni::MemberState::Running;
        }
    }
    let world = FakeWorld::new(view.clone(), view.clone(), ok(200, ""));
    *world.script.borrow_mut() = VecDeque::from([catching_up.clone(), catching_up, failed_over]);
    // A wait in front of the switchover node3 → node1, whose step names the leader it assumes.
    let mut plan = switchover_plan(&target, &view);
    plan.steps.insert(
        0,
        wait_step(
            Check::Streaming {
                member: "node1".into(),
            },
            Duration::from_hours(1),
            Duration::from_secs(5),
        ),
    );
    let (finish, events) = run(&world, &plan, unattended(), yes()).await;
    assert_eq!(finish.outcome, Outcome::Refused, "{}", finish.detail);
    assert!(finish.outcome.is_resumable());
    assert!(finish.detail.contains("node2"), "{}", finish.detail);
    assert!(
        world.calls.borrow().is_empty(),
        "the switchover was never sent"
    );
    assert_eq!(step_trace(&events)[..2], ["+wait", "=wait"]);
}

/// The fault matrix's gate × pgha killed: a run killed while its gate waited left nothing
/// started for that step; `resume` skips what finished and asks the gate again before acting.
#[tokio::test(start_paused = true)]
async fn a_run_killed_at_a_gate_asks_it_again_on_resume() {
    let (world, mut plan) = commands(&["first", "gated"], &[], &[]);
    plan.steps[1].gate = Gate::Confirm {
        question: "Run gated?".into(),
    };
    let point = ResumePoint {
        finished: BTreeSet::from(["run-first".into()]),
        started: vec!["run-first".into()],
        ..ResumePoint::default()
    };
    let (finish, events) = resume_as(&world, &plan, &point, interactive(), yes()).await;
    assert_eq!(finish.outcome, Outcome::Succeeded, "{}", finish.detail);
    assert_eq!(gates_and_starts(&events), ["?run-gated", "+run-gated"]);
    assert_eq!(
        *world.calls.borrow(),
        ["gated"],
        "the finished step is not run again"
    );

    // Declined this time: nothing runs, and the run can be resumed again.
    let (world, _) = commands(&["first", "gated"], &[], &[]);
    let declined = Answers {
        confirm: false,
        typed: "",
    };
    let (finish, _) = resume_as(&world, &plan, &point, interactive(), declined).await;
    assert_eq!(finish.outcome, Outcome::Aborted, "{}", finish.detail);
    assert!(world.calls.borrow().is_empty());
}

/// The fault matrix's parallel group × Ctrl-C, pressed while the group starts: the step in
/// flight completes (nothing is cut half-way), its siblings not started yet never start,
/// nothing after the group runs, and `resume` runs exactly what did not.
#[tokio::test(start_paused = true)]
async fn ctrl_c_during_a_parallel_group_lets_its_steps_finish_and_starts_nothing_after() {
    let (mut world, plan) = commands(&[], &["stop1", "stop2", "stop3"], &["start"]);
    let (ctrl_c, _) = watch::channel(false);
    world.ctrl_c_during_call = Some(ctrl_c);
    let runs = tempfile::tempdir().unwrap();
    let store = crate::journal::RunStore::new(runs.path().to_path_buf());
    let mut journal = store.create("r1").unwrap();
    let mut recorder = Recorder::default();
    let interrupt = world.ctrl_c_during_call.as_ref().unwrap().subscribe();
    let finish = {
        let mut sinks = Sinks(vec![&mut journal, &mut recorder]);
        Executor::new(&world, Arc::new(yes()), unattended(), &mut sinks, interrupt)
            .run(&plan, &ResumePoint::default())
            .await
    };
    assert_eq!(finish.outcome, Outcome::Interrupted, "{}", finish.detail);
    assert!(
        finish
            .detail
            .contains("stopped before \"Run stop2\", \"Run stop3\""),
        "{}",
        finish.detail
    );
    assert_eq!(
        step_trace(&recorder.0),
        ["+run-stop1", "=run-stop1"],
        "the step in flight finished; its siblings and the next step never started"
    );
    assert_eq!(*world.calls.borrow(), ["stop1"]);
    let point = store.read("r1").unwrap().resume_point();
    assert_eq!(point.finished, BTreeSet::from(["run-stop1".to_string()]));
    assert!(point.unfinished.is_empty());
    let (fresh, _) = commands(&[], &["stop1", "stop2", "stop3"], &["start"]);
    let (finish, _) = resume(&fresh, &plan, &point).await;
    assert_eq!(finish.outcome, Outcome::Succeeded, "{}", finish.detail);
    assert_eq!(*fresh.calls.borrow(), ["stop2", "stop3", "start"]);
}
