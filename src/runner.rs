//! Running a runbook end to end: resolve the cluster, observe it, plan, then either render the
//! plan with its pre-checks (`--dry-run`, which only ever holds a read-only `Observer`) or take
//! the cluster's lock, open a journal and execute; `resume` of a recorded run, with the
//! stale-plan rule; and `runs list` (every run, unreadable ones included) and `runs show`. The
//! terminal shows the plan and the progress on stderr; stdout is data.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tokio::sync::watch;

use crate::consul::{ConsulLock, LockHolder};
use crate::error::Error;
use crate::exec::{
    self, Event, EventSink, Executor, Finish, GatePolicy, LiveCluster, Observer, Outcome,
    ResumePoint, Sinks, TerminalPrompt,
};
use crate::exit::Exit;
use crate::inventory::{self, ClusterTarget, Selector};
use crate::journal::{self, ClusterIdentity, RunStore, RunSummary};
use crate::observe::ClusterView;
use crate::patroni::PatroniClient;
use crate::plan::render::{self, CheckedPrecheck};
use crate::plan::{Action, Plan};
use crate::postgres::Sql;
use crate::remote::{Masker, Ssh};
use crate::report::terminal::TerminalSink;
use crate::runbooks::{self, Params};

/// How the plan is printed by `--dry-run` and `runs show`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlanFormat {
    #[default]
    Text,
    Markdown,
    Json,
}

/// The options every runbook command shares.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub dry_run: bool,
    pub format: PlanFormat,
    pub assume_yes: bool,
    pub confirm: Option<String>,
    /// By-hand steps done outside pgha (`--done NAME`).
    pub done: Vec<String>,
}

pub fn render(plan: &Plan, checked: Option<&[CheckedPrecheck]>, format: PlanFormat) -> String {
    match format {
        PlanFormat::Text => render::text(plan, checked),
        PlanFormat::Markdown => render::markdown(plan, checked),
        PlanFormat::Json => render::json(plan, checked),
    }
}

async fn connect(selector: &Selector) -> Result<LiveCluster, Error> {
    let target = inventory::resolve(selector).await?;
    let client = PatroniClient::new(&target.rest)?;
    let sql = target.postgres.clone().map(Sql::new);
    let ssh = Ssh::new(
        target.ssh.clone(),
        target
            .rest
            .connect_timeout
            .max(std::time::Duration::from_secs(5)),
    )
    .map_err(|error| Error::BadInput(error.to_string()))?;
    let masker = Masker::new(
        [
            target
                .rest
                .auth
                .as_ref()
                .map(|auth| auth.password.expose().to_string()),
            target
                .postgres
                .as_ref()
                .and_then(|pg| pg.password.as_ref())
                .map(|password| password.expose().to_string()),
            target
                .consul
                .as_ref()
                .and_then(|consul| consul.token.as_ref())
                .map(|token| token.expose().to_string()),
            target
                .alertmanager
                .as_ref()
                .and_then(|alertmanager| alertmanager.auth.as_ref())
                .map(|auth| auth.secret().expose().to_string()),
        ]
        .into_iter()
        .flatten(),
    );
    let consul = crate::commands::consul_client(&target, &client)?;
    Ok(LiveCluster {
        target,
        client,
        sql,
        ssh,
        consul,
        masker,
    })
}

/// Fills in what a runbook needs measured before it can be planned (planners read no database):
/// a scale-up's disk need is the leader's databases, when the operator gave none.
async fn measured(world: &LiveCluster, params: Params) -> Result<Params, Error> {
    let Params::ScaleUp {
        member,
        max_lag,
        timeout,
        need: None,
    } = params
    else {
        return Ok(params);
    };
    let Some(sql) = &world.sql else {
        return Ok(Params::ScaleUp {
            member,
            max_lag,
            timeout,
            need: None,
        });
    };
    let view = world.observe().await?;
    let leader = view
        .leader
        .as_deref()
        .and_then(|leader| view.member(leader))
        .ok_or_else(|| Error::Refused("the cluster has no leader: fix that first".into()))?;
    let size = sql.database_size(&leader.host).await?;
    Ok(Params::ScaleUp {
        member,
        max_lag,
        timeout,
        need: Some(size),
    })
}

/// A plan, its checked pre-conditions, and what the cluster is (for the run lock).
pub struct Prepared {
    pub plan: Plan,
    pub checked: Vec<CheckedPrecheck>,
    pub identity: ClusterIdentity,
}

/// Observes, plans and checks the plan's pre-conditions. Read-only by construction: it is
/// given an `Observer`, which cannot change the cluster. A dry-run is exactly this.
pub async fn prepare<O: Observer>(
    observer: &O,
    target: &ClusterTarget,
    params: &Params,
) -> Result<Prepared, Error> {
    let view = observer.observe().await?;
    let plan = runbooks::plan(target, &view, params)?;
    let mut checked = exec::evaluate(&plan.prechecks, &view);
    checked.extend(observer.access(&plan, &view).await);
    Ok(Prepared {
        plan,
        checked,
        identity: identity_of(&view),
    })
}

fn identity_of(view: &ClusterView) -> ClusterIdentity {
    ClusterIdentity {
        scope: view.scope.clone(),
        system_identifier: view.system_identifier.clone(),
    }
}

pub async fn run(selector: &Selector, params: Params, options: RunOptions) -> Result<Exit, Error> {
    let world = connect(selector).await?;
    let params = params.with_default_timeout(&world.target.runbook_timeouts);
    let params = measured(&world, params).await?;
    let Prepared {
        plan,
        checked,
        identity,
    } = prepare(&world, &world.target, &params).await?;
    if plan
        .steps
        .iter()
        .any(|step| matches!(step.action, Action::Sql(_)))
        && world.sql.is_none()
    {
        return Err(Error::BadInput(format!(
            "{}: this plan runs SQL on the leader; add a `postgres:` section (user, password_env or password_file) to environment {}",
            world.target.origin, world.target.environment
        )));
    }
    let all_passed = checked.iter().all(|check| check.verdict.passed);
    if options.dry_run {
        crate::ui::print_stdout(&render(&plan, Some(&checked), options.format))?;
        return Ok(if all_passed {
            Exit::Success
        } else {
            Exit::PrecheckRefused
        });
    }
    let policy = gate_policy(&options);
    if let Some(reason) = policy.refusal(&plan) {
        return Err(Error::BadInput(reason));
    }
    let store = RunStore::new(journal::default_dir());
    let run_id = RunStore::new_run_id(&plan.runbook);
    // The lock before anything is shown: a refused second run prints one line.
    let _lock = store.lock(&identity, &plan.cluster, &run_id)?;
    let consul_lock = consul_lock(&world, &plan, &run_id, &policy.operator).await?;
    eprint!("{}", render::text(&plan, None));
    let mut journal = store.create(&run_id)?;
    let mut terminal = TerminalSink::new(std::io::stderr().is_terminal());
    let started = tokio::time::Instant::now();
    let finish = {
        let mut sinks = Sinks(vec![&mut journal, &mut terminal]);
        sinks.emit(&Event::RunStarted {
            run_id: run_id.clone(),
            runbook: plan.runbook.clone(),
            environment: plan.environment.clone(),
            cluster: plan.cluster.clone(),
            plan: Box::new(plan.clone()),
            plan_hash: plan.hash(),
            operator: policy.operator.clone(),
            host: journal::hostname(),
            pid: std::process::id(),
            pgha_version: journal::PGHA_VERSION.into(),
            journal_format: journal::FORMAT,
            system_identifier: identity.system_identifier.clone(),
        });
        for check in &checked {
            sinks.emit(&Event::Precheck {
                text: check.text.clone(),
                passed: check.verdict.passed,
                observed: check.verdict.observed.clone(),
            });
        }
        let finish = if all_passed {
            execute(
                &world,
                &plan,
                &ResumePoint::default(),
                (policy, consul_lock.as_ref().map(ConsulLock::lost_flag)),
                &run_id,
                &mut sinks,
            )
            .await
        } else {
            Finish {
                outcome: Outcome::Refused,
                detail: "a pre-check failed: nothing was changed".into(),
            }
        };
        finished(&mut sinks, &finish, started);
        finish
    };
    if let Some(lock) = consul_lock {
        lock.release().await;
    }
    Ok(conclude(&run_id, &journal, &finish))
}

/// Where Consul is reachable for the cluster, the run also holds a lock there: two operators
/// on two machines cannot run runbooks on one cluster at once.
async fn consul_lock(
    world: &LiveCluster,
    plan: &Plan,
    run_id: &str,
    operator: &str,
) -> Result<Option<ConsulLock>, Error> {
    let Some(client) = &world.consul else {
        return Ok(None);
    };
    let holder = LockHolder {
        run_id: run_id.into(),
        operator: operator.into(),
        host: journal::hostname(),
        pid: std::process::id(),
        since: journal::now(),
    };
    let lock = ConsulLock::acquire(client, &plan.scope, &holder).await?;
    tracing::info!("holding the Consul lock {}", lock.key());
    Ok(Some(lock))
}

fn gate_policy(options: &RunOptions) -> GatePolicy {
    GatePolicy {
        assume_yes: options.assume_yes,
        confirm: options.confirm.clone(),
        done: options.done.clone(),
        interactive: std::io::stdin().is_terminal() && std::io::stderr().is_terminal(),
        operator: journal::operator(),
    }
}

async fn execute(
    world: &LiveCluster,
    plan: &Plan,
    point: &ResumePoint,
    (policy, lease): (GatePolicy, Option<Arc<AtomicBool>>),
    run_id: &str,
    sink: &mut dyn EventSink,
) -> Finish {
    let run_label = format!("pgha run {run_id} by {}", policy.operator);
    let (interrupt_sender, interrupt) = watch::channel(false);
    // One listener for the whole run. A first Ctrl-C is said at once and stops the run after
    // the action in flight (a call, a command, a statement: each bounded by its own deadline);
    // at a gate it aborts, during a wait it interrupts. A second one exits at once: the
    // journal then shows the step started, and `resume` treats it by its idempotency class.
    let resume_hint = format!("pgha resume {run_id}");
    let listener = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        eprintln!(
            "pgha: Ctrl-C: stopping after the current action (Ctrl-C again to exit at once); the run stays resumable"
        );
        let _ = interrupt_sender.send(true);
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("pgha: exiting at once; continue with `{resume_hint}`");
            std::process::exit(i32::from(Exit::Aborted.as_code()));
        }
    });
    let mut executor = Executor::new(world, Arc::new(TerminalPrompt), policy, sink, interrupt)
        .with_run_label(run_label)
        .with_lease(lease);
    let finish = executor.run(plan, point).await;
    listener.abort();
    finish
}

fn finished(sink: &mut dyn EventSink, finish: &Finish, started: tokio::time::Instant) {
    sink.emit(&Event::RunFinished {
        outcome: finish.outcome,
        detail: finish.detail.clone(),
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    });
}

fn conclude(run_id: &str, journal: &journal::Journal, finish: &Finish) -> Exit {
    if let Some(error) = &journal.write_error {
        eprintln!(
            "pgha: warning: the journal could not be written ({error}); the run's record is incomplete"
        );
    }
    eprintln!("pgha: journal {}", journal.path().display());
    if finish.outcome.is_resumable() && finish.outcome != Outcome::Refused {
        eprintln!("pgha: continue with `pgha resume {run_id}`");
    }
    finish.outcome.exit()
}

/// `pgha resume RUN_ID [--replan]`.
pub async fn resume(
    selector: &Selector,
    run_id: &str,
    replan: bool,
    options: RunOptions,
) -> Result<Exit, Error> {
    let store = RunStore::new(journal::default_dir());
    let recorded = store.read(run_id)?;
    if recorded.last_outcome() == Some(Outcome::Succeeded) {
        return Err(journal::JournalError::AlreadySucceeded { id: run_id.into() }.into());
    }
    let plan = recorded.verified_plan()?;
    let selector = selector_for(selector, &plan);
    let world = connect(&selector).await?;
    let policy = gate_policy(&options);
    // The identity the run started with: the same lock as the original run, even when the
    // cluster's members no longer answer with their system identifier.
    let identity = ClusterIdentity {
        scope: plan.scope.clone(),
        system_identifier: recorded.system_identifier(),
    };
    let _lock = store.lock(&identity, &plan.cluster, run_id)?;
    let consul_lock = consul_lock(&world, &plan, run_id, &policy.operator).await?;
    let view = world.observe().await?;
    let stale: Vec<CheckedPrecheck> = exec::evaluate(&plan.assumes, &view)
        .into_iter()
        .filter(|check| !check.verdict.passed)
        .collect();
    let (plan, point, new_plan) = if stale.is_empty() {
        (plan, recorded.resume_point(), None)
    } else if replan {
        let params: Params = serde_json::from_value(plan.params.clone()).map_err(|error| {
            Error::BadInput(format!("run {run_id}: cannot read its parameters: {error}"))
        })?;
        let fresh = runbooks::plan(&world.target, &view, &params)?;
        (fresh.clone(), ResumePoint::default(), Some(fresh))
    } else {
        let mut journal = store.reopen(run_id)?;
        let reasons: Vec<String> = stale
            .iter()
            .map(|check| format!("{} ({})", check.text, check.verdict.observed))
            .collect();
        journal.emit(&resumed_event(&policy, None));
        journal.emit(&Event::RunFinished {
            outcome: Outcome::Refused,
            detail: format!("stale plan: {}", reasons.join("; ")),
            duration_ms: 0,
        });
        return Err(Error::Refused(format!(
            "the plan of run {run_id} no longer fits the cluster: it assumed {}; re-plan from the cluster as it is with `pgha resume {run_id} --replan`",
            reasons.join("; ")
        )));
    };
    if let Some(reason) = policy.refusal_on_resume(&plan, &point.finished) {
        return Err(Error::BadInput(reason));
    }
    let mut journal = store.reopen(run_id)?;
    let mut terminal = TerminalSink::new(std::io::stderr().is_terminal());
    let started = tokio::time::Instant::now();
    let finish = {
        let mut sinks = Sinks(vec![&mut journal, &mut terminal]);
        sinks.emit(&resumed_event(&policy, new_plan.as_ref()));
        let lease = consul_lock.as_ref().map(ConsulLock::lost_flag);
        let finish = execute(&world, &plan, &point, (policy, lease), run_id, &mut sinks).await;
        finished(&mut sinks, &finish, started);
        finish
    };
    if let Some(lock) = consul_lock {
        lock.release().await;
    }
    Ok(conclude(run_id, &journal, &finish))
}

fn resumed_event(policy: &GatePolicy, plan: Option<&Plan>) -> Event {
    Event::RunResumed {
        operator: policy.operator.clone(),
        host: journal::hostname(),
        pid: std::process::id(),
        plan_hash: plan.map(Plan::hash).unwrap_or_default(),
        plan: plan.map(|plan| Box::new(plan.clone())),
        pgha_version: journal::PGHA_VERSION.into(),
    }
}

/// A resumed run goes to the cluster it was planned for, whatever the defaults say now.
fn selector_for(selector: &Selector, plan: &Plan) -> Selector {
    let mut selector = selector.clone();
    if plan.environment != "-" && selector.patroni_config.is_none() && selector.api.is_none() {
        selector.environment = Some(plan.environment.clone());
        selector.cluster = Some(plan.cluster.clone());
    }
    selector
}

/// `pgha runs list`.
pub fn list_runs(format: crate::ui::OutputFormat) -> Result<Exit, Error> {
    let store = RunStore::new(journal::default_dir());
    let runs = store.list()?;
    if format == crate::ui::OutputFormat::Table {
        crate::ui::print_stdout(&runs_table(&runs))?;
    } else {
        crate::ui::write_document(format, &runs)?;
    }
    Ok(Exit::Success)
}

/// One row a run, unreadable ones included (their status says why).
fn runs_table(runs: &[RunSummary]) -> String {
    let rows = runs
        .iter()
        .map(|run| {
            vec![
                run.id.clone(),
                run.runbook.clone(),
                format!("{}/{}", run.environment, run.cluster),
                run.started_at.clone(),
                run.operator.clone(),
                run.status.clone(),
            ]
        })
        .collect();
    let mut text = crate::ui::table(
        None,
        &["Run", "Runbook", "Cluster", "Started", "Operator", "Status"],
        rows,
        &[],
    );
    text.push('\n');
    text
}

/// `pgha runs show ID`.
pub fn show_run(run_id: &str, format: PlanFormat) -> Result<Exit, Error> {
    let store = RunStore::new(journal::default_dir());
    let recorded = store.read(run_id)?;
    crate::ui::print_stdout(&render_run(&recorded, format)?)?;
    Ok(Exit::Success)
}

/// A recorded run as `runs show` prints it: the journal's events as they were (JSON), or one
/// line an event (text, or a Markdown table under the plan).
fn render_run(recorded: &journal::RecordedRun, format: PlanFormat) -> Result<String, Error> {
    let run_id = &recorded.id;
    Ok(match format {
        PlanFormat::Json => {
            let mut text = crate::ui::json::pretty(&recorded.entries)?;
            text.push('\n');
            text
        }
        PlanFormat::Markdown => {
            let plan = recorded.verified_plan()?;
            let mut text = render::markdown(&plan, None);
            let _ = write!(
                text,
                "\n## What happened (run {run_id})\n\n| at | event |\n| --- | --- |\n"
            );
            for entry in &recorded.entries {
                let _ = writeln!(
                    text,
                    "| {} | {} |",
                    crate::ui::printable(&entry.at),
                    crate::report::line(&entry.event).replace('|', "\\|")
                );
            }
            text
        }
        PlanFormat::Text => recorded
            .entries
            .iter()
            .fold(String::new(), |mut text, entry| {
                let _ = writeln!(
                    text,
                    "{}  {}",
                    crate::ui::printable(&entry.at),
                    crate::report::line(&entry.event)
                );
                text
            }),
    })
}

/// One line for one event, for `runs show`, made printable: events quote Patroni's answers,
/// command output and observed states exactly as they came.
#[cfg(test)]
mod tests {
    use super::*;

    /// A paused run whose journal quotes a hostile cluster: a member name from the DCS in a
    /// step's title, Patroni's answer, a command's output, the failure they led to.
    fn hostile_run() -> journal::RecordedRun {
        let (target, view) = crate::observe::testing::view_led_by("4.1.5", "node3", Some(1));
        let mut plan = runbooks::plan(&target, &view, &Params::Pause { wait: true }).unwrap();
        plan.steps[0].title = "Pause node9\x1b[2J\x1b[31m".into();
        let step = || plan.steps[0].id.clone();
        let events = vec![
            Event::RunStarted {
                run_id: "r1".into(),
                runbook: plan.runbook.clone(),
                environment: plan.environment.clone(),
                cluster: plan.cluster.clone(),
                plan: Box::new(plan.clone()),
                plan_hash: plan.hash(),
                operator: "tester".into(),
                host: "here".into(),
                pid: 1,
                pgha_version: journal::PGHA_VERSION.into(),
                journal_format: journal::FORMAT,
                system_identifier: None,
            },
            Event::ActionAnswered {
                step: step(),
                status: 200,
                message: "paused\n\x1b[1A\rforged line\x07".into(),
            },
            Event::CommandRan {
                step: step(),
                command: "systemctl status patroni".into(),
                status: 3,
                stdout: String::new(),
                stderr: "inactive\x1b]0;pwned\x07 (dead)\u{9b}2J\n".into(),
            },
            Event::StepFailed {
                step: step(),
                reason: "node9\x1b[2J: \x08\x08boom".into(),
            },
        ];
        journal::RecordedRun {
            id: "r1".into(),
            path: "r1.jsonl".into(),
            entries: events
                .into_iter()
                .map(|event| journal::Entry {
                    at: "2026-11-23T20:00:00.000Z".into(),
                    event,
                })
                .collect(),
        }
    }

    fn controls(text: &str) -> Vec<char> {
        text.chars()
            .filter(|character| character.is_control() && *character != '\n')
            .collect()
    }

    #[test]
    fn runs_show_prints_no_control_characters_from_the_cluster() {
        let run = hostile_run();
        let text = render_run(&run, PlanFormat::Text).unwrap();
        assert_eq!(controls(&text), Vec::<char>::new(), "{text}");
        assert_eq!(
            text.lines().count(),
            run.entries.len(),
            "one line an event:\n{text}"
        );
        for shown in [
            "Patroni answered HTTP 200: paused",
            "exit 3 (inactive (dead))",
            "FAILED: node9: boom",
        ] {
            assert!(text.contains(shown), "{shown:?} in\n{text}");
        }
        let markdown = render_run(&run, PlanFormat::Markdown).unwrap();
        assert_eq!(controls(&markdown), Vec::<char>::new(), "{markdown}");
        assert!(markdown.contains("Pause node9\n"), "{markdown}");
    }

    #[test]
    fn runs_list_shows_a_run_it_cannot_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("r1.jsonl"), "garbage\n").unwrap();
        let runs = RunStore::new(dir.path().to_path_buf()).list().unwrap();
        let table = runs_table(&runs);
        let row = table.lines().find(|line| line.contains("r1"));
        assert!(
            row.is_some_and(|row| row.contains("?/?")
                && row.contains("unreadable: line 1: expected value at line 1 column 1")),
            "{table}"
        );
    }
}
