//! Recorded runs: `pgha runs list` (every run, unreadable ones included with the reason),
//! `pgha runs show ID` (the journal as text, Markdown under its plan, or JSON — one line an
//! event, in the same words as the terminal used), and `pgha resume ID [--replan]`: the
//! stale-plan rule (or, with `--replan`, a new plan from the cluster as it is), then the same
//! execute-and-record path as a new run.

use std::fmt::Write as _;

use crate::cluster::Connection;
use crate::error::Error;
use crate::exec::{self, Event, EventSink, GatePolicy, Observer, Outcome, ResumePoint};
use crate::exit::Exit;
use crate::inventory::Selector;
use crate::journal::{self, ClusterIdentity, RunStore, RunSummary};
use crate::plan::Plan;
use crate::plan::render::{self, CheckedPrecheck};
use crate::runbooks::{self, Params};
use crate::runner::{Execution, Held, PlanFormat, RunOptions, gate_policy, precheck_events};

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
    // A plan from before compensations is run with the one its pgha applied implicitly.
    let plan = recorded.verified_plan()?.with_implicit_compensations();
    let selector = selector_for(selector, &plan);
    let world = Connection::open(&selector).await?.into_live()?;
    let policy = gate_policy(&options);
    // The identity the run started with: the same lock as the original run, even when the
    // cluster's members no longer answer with their system identifier.
    let identity = ClusterIdentity {
        scope: plan.scope.clone(),
        system_identifier: recorded.system_identifier(),
    };
    let held = Held::take(&store, &world, &identity, &plan, run_id, &policy.operator).await?;
    let view = world.observe().await?;
    let stale: Vec<CheckedPrecheck> = exec::evaluate(&plan.assumes, &view)
        .into_iter()
        .filter(|check| !check.verdict.passed)
        .collect();
    // `--replan` plans again whenever it is given: the operator saw the cluster move (a
    // failover mid-run leaves the plan's assumptions true and its next step refused).
    let inventory_changed = recorded
        .inventory_fingerprint()
        .is_some_and(|recorded| recorded != world.target.fingerprint());
    let mut checked = Vec::new();
    let (plan, point, new_plan) = if replan {
        let params: Params = serde_json::from_value(plan.params.clone()).map_err(|error| {
            Error::BadInput(format!("run {run_id}: cannot read its parameters: {error}"))
        })?;
        let fresh = runbooks::plan(&world.target, &view, &params.replanning())?;
        // A new plan is checked like a new run's: nothing runs when a pre-check fails.
        checked = exec::evaluate(&fresh.prechecks, &view);
        checked.extend(world.access(&fresh, &view).await);
        (fresh.clone(), ResumePoint::default(), Some(fresh))
    } else if inventory_changed {
        // The plan names hosts, paths and commands from the inventory it was made from.
        return Err(refuse(
            &store,
            run_id,
            &policy,
            "inventory changed".into(),
            format!(
                "the inventory of {} changed since run {run_id} was planned ({}): its plan may name hosts, paths or commands that are no longer so; plan again from the inventory as it is with `pgha resume {run_id} --replan`, or put the inventory back",
                plan.cluster, world.target.origin
            ),
        ));
    } else if stale.is_empty() {
        (plan, recorded.resume_point(), None)
    } else {
        let reasons: Vec<String> = stale
            .iter()
            .map(|check| format!("{} ({})", check.text, check.verdict.observed))
            .collect();
        return Err(refuse(
            &store,
            run_id,
            &policy,
            format!("stale plan: {}", reasons.join("; ")),
            format!(
                "the plan of run {run_id} no longer fits the cluster: it assumed {}; re-plan from the cluster as it is with `pgha resume {run_id} --replan`",
                reasons.join("; ")
            ),
        ));
    };
    if let Some(reason) = policy.refusal_on_resume(&plan, &point.finished) {
        return Err(Error::BadInput(reason));
    }
    let journal = store.reopen(run_id)?;
    let fingerprint = new_plan.as_ref().map(|_| world.target.fingerprint());
    let mut opening = vec![resumed_event(&policy, new_plan.as_ref(), fingerprint)];
    let (prechecks, refused) = precheck_events(&checked);
    opening.extend(prechecks);
    let execution = Execution {
        world: &world,
        plan: &plan,
        point,
        policy,
        run_id,
    };
    Ok(execution.record(held, journal, opening, refused).await)
}

/// A resume refused before anything ran: journalled (the run's record says why it stopped),
/// and the error for the operator.
fn refuse(
    store: &RunStore,
    run_id: &str,
    policy: &GatePolicy,
    detail: String,
    message: String,
) -> Error {
    match store.reopen(run_id) {
        Ok(mut journal) => {
            journal.emit(&resumed_event(policy, None, None));
            journal.emit(&Event::RunFinished {
                outcome: Outcome::Refused,
                detail,
                duration_ms: 0,
            });
            Error::Refused(message)
        }
        Err(error) => error.into(),
    }
}

fn resumed_event(
    policy: &GatePolicy,
    plan: Option<&Plan>,
    inventory_fingerprint: Option<String>,
) -> Event {
    Event::RunResumed {
        operator: policy.operator.clone(),
        host: journal::hostname(),
        pid: std::process::id(),
        plan_hash: plan.map(Plan::hash).unwrap_or_default(),
        plan: plan.map(|plan| Box::new(plan.clone())),
        pgha_version: journal::PGHA_VERSION.into(),
        inventory_fingerprint,
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
        let mut plan = runbooks::plan(
            &target,
            &view,
            &Params::Pause(crate::runbooks::pause::Params { wait: true }),
        )
        .unwrap();
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
                inventory_fingerprint: None,
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
