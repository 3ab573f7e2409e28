//! The runbook engine against the real lab: each runbook end to end, dry-runs that change
//! nothing, a refused pre-check, SIGKILL during a wait then `resume`, the stale-plan rule, the
//! cluster lock and Ctrl-C at a gate. Each test keeps its own run store (PGHA_RUNS_DIR).

use std::path::Path;
use std::time::Duration;

use crate::harness::{Lab, Pgha, block_on, entry, fingerprint, only_run, scratch, wait_until};

fn postmaster_started(lab: &Lab, member: &str) -> Option<String> {
    let (target, client) = lab.client();
    let url = target.member(member).unwrap().api_url.clone();
    block_on(client.status(&url))
        .ok()
        .and_then(|status| status.postmaster_start_time)
}

fn runbook(lab: &Lab, runs: &Path) -> Pgha {
    Pgha::new().lab(lab).env("PGHA_RUNS_DIR", runs)
}

/// The journal's events, in order.
fn journal(runs: &Path, run_id: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(runs.join(format!("{run_id}.jsonl")))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn last_event(events: &[serde_json::Value]) -> &serde_json::Value {
    events.last().unwrap()
}

/// The id of the silence the run created, from its journal.
fn silence_created(events: &[serde_json::Value]) -> String {
    events
        .iter()
        .find(|event| event["event"] == "silence_created")
        .and_then(|event| event["id"].as_str())
        .expect("the run created a silence")
        .to_string()
}

/// `pgha ARGS` on a terminal, as an operator runs it.
pub(crate) fn at_a_terminal(lab: &Lab, runs: &Path, args: &[&str]) -> rexpect::session::PtySession {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_pgha"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TERM", "xterm")
        .env("PGHA_LAB_DIR", &lab.dir)
        .env("PGHA_RUNS_DIR", runs)
        .env("XDG_CONFIG_HOME", "/nonexistent-pgha-test-config")
        .args(args);
    rexpect::session::spawn_command(command, Some(20_000)).unwrap()
}

#[test]
fn dry_runs_print_the_plan_and_change_nothing() {
    let guard = Lab::shared().read();
    let lab = guard.lab;
    let runs = scratch();
    let before = fingerprint(lab);
    let replica = lab.replica();
    let cases: Vec<Vec<&str>> = vec![
        vec!["switchover", "--checkpoint"],
        vec!["pause"],
        vec!["reinit", "--member", &replica],
        vec!["restart"],
    ];
    for args in cases {
        let run = runbook(lab, runs.path())
            .args(&args)
            .args(["--dry-run", "-o", "json"])
            .run()
            .success();
        let document = run.json();
        assert!(
            document["plan"]["steps"]
                .as_array()
                .is_some_and(|steps| !steps.is_empty()),
            "{args:?}"
        );
        assert_eq!(document["plan_hash"].as_str().map(str::len), Some(64));
        let prechecks = document["prechecks"].as_array().unwrap();
        assert!(
            prechecks.iter().all(|check| check["passed"] == true),
            "{args:?}: {prechecks:?}"
        );
        assert!(
            prechecks
                .iter()
                .any(|check| check["text"] == "the REST credentials are accepted"),
            "credentials are proved in a dry-run"
        );
    }
    let markdown = runbook(lab, runs.path())
        .args(["switchover", "--dry-run", "-o", "markdown"])
        .run()
        .success()
        .stdout();
    assert!(
        markdown.starts_with("# Switch over cluster demo from "),
        "{markdown}"
    );
    assert!(markdown.contains("(basic auth `patroni:***`)"));
    assert!(
        !markdown.contains(&lab.rest_password()),
        "no secret in a plan"
    );
    let reinit = runbook(lab, runs.path())
        .args(["reinit", "--member", &replica, "--dry-run"])
        .run()
        .success()
        .stdout();
    assert!(
        reinit.contains("[ok  ] Alertmanager at http://127.0.0.40:9093 answers (Alertmanager 0."),
        "{reinit}"
    );
    assert_eq!(fingerprint(lab), before, "a dry-run changed the cluster");
    assert!(
        std::fs::read_dir(runs.path()).map_or(true, |mut entries| entries.next().is_none()),
        "a dry-run records no run"
    );
}

#[test]
fn a_failed_precheck_refuses_and_changes_nothing() {
    let guard = Lab::shared().exclusive();
    let lab = guard.lab;
    let runs = scratch();
    let leader = lab.leader();
    let dry = runbook(lab, runs.path())
        .args(["reinit", "--member", &leader, "--dry-run"])
        .run()
        .expect_code(4);
    assert!(
        dry.stdout().contains(&format!(
            "[FAIL] {leader} is not the leader (the leader is {leader}"
        )),
        "{}",
        dry.stdout()
    );
    let before = fingerprint(lab);
    let run = runbook(lab, runs.path())
        .args(["reinit", "--member", &leader, "--yes", "--confirm", &leader])
        .run()
        .expect_code(4);
    assert!(
        run.stderr()
            .contains("pgha: refused: a pre-check failed: nothing was changed"),
        "{}",
        run.stderr()
    );
    assert_eq!(fingerprint(lab), before);
    let events = journal(runs.path(), &only_run(runs.path()));
    assert_eq!(last_event(&events)["outcome"], "refused");
    assert!(events.iter().all(|event| event["event"] != "step_started"));
}

#[test]
fn without_a_terminal_pgha_refuses_before_doing_anything() {
    let guard = Lab::shared().read();
    let runs = scratch();
    let run = runbook(guard.lab, runs.path())
        .args(["pause"])
        .run()
        .expect_code(2);
    assert!(
        run.one_error_line()
            .contains("no terminal to ask for confirmation: pass --yes")
    );
    let replica = guard.lab.replica();
    let run = runbook(guard.lab, runs.path())
        .args(["reinit", "--member", &replica, "--yes"])
        .run()
        .expect_code(2);
    assert!(
        run.one_error_line()
            .contains(&format!("pass --confirm {replica} (--yes is not enough)"))
    );
    // Each destructive gate is answered by its own name only: another member's is refused.
    let leader = guard.lab.leader();
    let run = runbook(guard.lab, runs.path())
        .args(["reinit", "--member", &replica, "--yes"])
        .args(["--confirm", &leader, "--confirm", &replica])
        .run()
        .expect_code(2);
    assert!(
        run.one_error_line().contains(&format!(
            "--confirm {leader} does not match what the destructive steps ask for ({replica})"
        )),
        "{}",
        run.stderr()
    );
    assert!(std::fs::read_dir(runs.path()).map_or(true, |mut entries| entries.next().is_none()));
}

#[test]
fn pause_and_resume_verify_every_member() {
    let guard = Lab::shared().exclusive();
    let lab = guard.lab;
    let runs = scratch();
    let run = runbook(lab, runs.path())
        .args(["pause", "--wait", "--yes"])
        .run()
        .success();
    assert!(
        run.stderr().contains("as reported by all 3 members"),
        "{}",
        run.stderr()
    );
    let status = lab.status_json();
    assert_eq!(status["paused"], true);
    runbook(lab, runs.path())
        .args(["resume", "--wait", "--yes"])
        .run()
        .success();
    assert_eq!(lab.status_json()["paused"], false);
    let listed = runbook(lab, runs.path())
        .args(["runs", "list", "-o", "json"])
        .run()
        .success()
        .json();
    let statuses: Vec<(&str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|run| {
            (
                run["runbook"].as_str().unwrap(),
                run["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(statuses, [("resume", "succeeded"), ("pause", "succeeded")]);
}

/// The runbook written to show the contract (its file, its registry line, its plan in
/// runbooks/, its tests), and the engine's parallel group on a real cluster: the three reloads
/// start before any ends, each member accepts `POST /reload` (202: Patroni schedules it for its
/// next loop) and serves again, and a reload restarts nothing.
#[test]
fn reload_reaches_every_member_and_restarts_nothing() {
    let guard = Lab::shared().exclusive();
    let lab = guard.lab;
    let runs = scratch();
    let before = fingerprint(lab);
    runbook(lab, runs.path())
        .args(["reload", "--yes"])
        .run()
        .success();
    let events = journal(runs.path(), &only_run(runs.path()));
    let mut answered: Vec<(&str, u64)> = events
        .iter()
        .filter(|event| event["event"] == "action_answered")
        .map(|event| {
            (
                event["step"].as_str().unwrap(),
                event["status"].as_u64().unwrap(),
            )
        })
        .collect();
    // In the order they answered: at once, any order.
    answered.sort_unstable();
    assert_eq!(
        answered,
        [
            ("reload-node1", 202),
            ("reload-node2", 202),
            ("reload-node3", 202)
        ]
    );
    let step_events: Vec<&str> = events
        .iter()
        .filter_map(|event| event["event"].as_str())
        .filter(|kind| kind.starts_with("step_"))
        .collect();
    assert_eq!(
        step_events[..3],
        ["step_started", "step_started", "step_started"],
        "all three at once: {step_events:?}"
    );
    assert_eq!(last_event(&events)["outcome"], "succeeded");
    assert_eq!(fingerprint(lab), before, "a reload restarts nothing");
}

#[test]
fn switchover_with_checkpoint_changes_the_leader_and_the_timeline() {
    let guard = Lab::shared().exclusive();
    let lab = guard.lab;
    let runs = scratch();
    let before = fingerprint(lab);
    let candidate = lab.replica();
    let run = runbook(lab, runs.path())
        .args([
            "switchover",
            "--candidate",
            &candidate,
            "--checkpoint",
            "--yes",
        ])
        .run()
        .success();
    assert!(run.stderr().contains("CHECKPOINT on "), "{}", run.stderr());
    assert_eq!(lab.leader(), candidate);
    let status = lab.status_json();
    let old = entry(&status, "members", &before.leader);
    assert_eq!(
        old["state"], "streaming",
        "the old leader rejoined before the run ended"
    );
    assert_eq!(fingerprint(lab).timelines, before.timelines + 1);
    let events = journal(runs.path(), &only_run(runs.path()));
    let answered = events
        .iter()
        .find(|event| event["event"] == "action_answered")
        .unwrap();
    assert_eq!(answered["status"], 200);
    assert_eq!(last_event(&events)["outcome"], "succeeded");
}

#[test]
fn restart_of_one_replica_restarts_postgres_and_waits_for_streaming() {
    let guard = Lab::shared().exclusive();
    let lab = guard.lab;
    let runs = scratch();
    let replica = lab.replica();
    let before = postmaster_started(lab, &replica);
    runbook(lab, runs.path())
        .args(["restart", "--member", &replica, "--yes"])
        .run()
        .success();
    assert_ne!(postmaster_started(lab, &replica), before);
    assert_eq!(
        entry(&lab.status_json(), "members", &replica)["state"],
        "streaming"
    );
}

/// Starts a reinit and SIGKILLs pgha as soon as its journal records the start of the wait.
fn reinit_killed_during_the_wait(lab: &Lab, runs: &Path, member: &str) -> String {
    let command =
        runbook(lab, runs).args(["reinit", "--member", member, "--yes", "--confirm", member]);
    crate::harness::killed_at_step(command, runs, &format!("wait-streaming-{member}"))
}

#[test]
fn a_reinit_killed_during_its_wait_is_finished_by_resume() {
    let guard = Lab::shared().exclusive();
    let lab = guard.lab;
    let runs = scratch();
    let replica = lab.replica();
    let before = postmaster_started(lab, &replica);
    let run_id = reinit_killed_during_the_wait(lab, runs.path(), &replica);

    let listed = runbook(lab, runs.path())
        .args(["runs", "list", "-o", "json"])
        .run()
        .success()
        .json();
    assert_eq!(listed[0]["status"], "running or killed");
    // The journal holds the start of the wait and not its end.
    let events = journal(runs.path(), &run_id);
    assert!(
        events.iter().all(|event| event["event"] != "step_succeeded"
            || event["step"] != format!("wait-streaming-{replica}")),
        "{events:?}"
    );
    assert!(events.iter().all(|event| event["event"] != "run_finished"));
    // The replica's lag alerts stay silenced while nobody runs the plan...
    let silence = silence_created(&events);
    assert_eq!(lab.silence_state(&silence), "active");

    let run = runbook(lab, runs.path())
        .args(["resume", &run_id, "--yes", "--confirm", &replica])
        .run()
        .success();
    assert!(run.stderr().contains("pgha: resumed"), "{}", run.stderr());
    let events = journal(runs.path(), &run_id);
    let kinds: Vec<&str> = events
        .iter()
        .map(|event| event["event"].as_str().unwrap())
        .collect();
    let resumed_at = kinds
        .iter()
        .position(|kind| *kind == "run_resumed")
        .unwrap();
    let after: Vec<&str> = kinds[resumed_at..].to_vec();
    assert!(
        !after.contains(&"action_answered"),
        "the reinitialize call is not sent again: {after:?}"
    );
    assert!(after.contains(&"step_succeeded"));
    assert_eq!(last_event(&events)["outcome"], "succeeded");
    // ... and the resumed run expires that same silence: no second one was created.
    assert_eq!(silence_created(&events), silence);
    assert_eq!(
        kinds
            .iter()
            .filter(|kind| **kind == "silence_created")
            .count(),
        1
    );
    assert_eq!(lab.silence_state(&silence), "expired");
    assert_ne!(
        postmaster_started(lab, &replica),
        before,
        "the member was rebuilt"
    );
    assert_eq!(
        entry(&lab.status_json(), "members", &replica)["state"],
        "streaming"
    );
    let again = runbook(lab, runs.path())
        .args(["resume", &run_id, "--yes"])
        .run()
        .expect_code(2);
    assert!(again.one_error_line().contains("already succeeded"));
}

#[test]
fn a_stale_plan_is_refused_on_resume_unless_replanned() {
    let guard = Lab::shared().exclusive();
    let lab = guard.lab;
    let runs = scratch();
    let leader = lab.leader();
    let replica = lab.replica();
    let run_id = reinit_killed_during_the_wait(lab, runs.path(), &replica);
    wait_until(Duration::from_mins(1), "the rebuilt member streams", || {
        entry(&lab.status_json(), "members", &replica)["state"] == "streaming"
    });
    // Meanwhile someone switches over: the plan was made for another leader.
    let other = ["node1", "node2", "node3"]
        .into_iter()
        .find(|name| *name != leader && *name != replica)
        .unwrap();
    let switch_runs = scratch();
    runbook(lab, switch_runs.path())
        .args(["switchover", "--candidate", other, "--yes"])
        .run()
        .success();

    let run = runbook(lab, runs.path())
        .args(["resume", &run_id, "--yes", "--confirm", &replica])
        .run()
        .expect_code(4);
    let line = run.one_error_line();
    assert!(
        line.contains(&format!(
            "no longer fits the cluster: it assumed {leader} is the leader (the leader is {other})"
        )),
        "{line}"
    );
    assert!(line.contains(&format!("pgha resume {run_id} --replan")));
    assert_eq!(
        last_event(&journal(runs.path(), &run_id))["outcome"],
        "refused"
    );

    let run = runbook(lab, runs.path())
        .args([
            "resume",
            &run_id,
            "--replan",
            "--yes",
            "--confirm",
            &replica,
        ])
        .run()
        .success();
    assert!(
        run.stderr().contains("resumed with a new plan"),
        "{}",
        run.stderr()
    );
    assert_eq!(
        last_event(&journal(runs.path(), &run_id))["outcome"],
        "succeeded"
    );
}

#[test]
fn ctrl_c_at_a_gate_aborts_and_a_second_run_meets_the_lock() {
    let guard = Lab::shared().exclusive();
    let lab = guard.lab;
    let runs = scratch();
    let mut session = at_a_terminal(lab, runs.path(), &["pause"]);
    session
        .exp_string("No automatic failover until it is resumed.")
        .unwrap();
    let run_id = only_run(runs.path());

    // A second run on the same cluster, meanwhile: refused, naming the holder.
    let second = runbook(lab, runs.path())
        .args(["resume", "--yes"])
        .run()
        .expect_code(6);
    let line = second.one_error_line();
    assert!(
        line.contains(&format!("cluster demo is locked by run {run_id} on ")),
        "{line}"
    );
    // The same cluster reached another way is the same cluster: the same lock.
    let by_api = runbook(lab, runs.path())
        .args(["--api", &lab.api_url("node2"), "resume", "--yes"])
        .env("PATRONI_RESTAPI_USERNAME", "patroni")
        .env("PATRONI_RESTAPI_PASSWORD", lab.rest_password())
        .run()
        .expect_code(6);
    assert!(
        by_api
            .one_error_line()
            .contains(&format!("locked by run {run_id} on ")),
        "{}",
        by_api.stderr()
    );
    runbook(lab, runs.path())
        .arg_flag_path("--patroni-config", &lab.member_config("node3"))
        .args(["resume", "--yes"])
        .run()
        .expect_code(6);

    session.send_control('c').unwrap();
    let status = session.process().wait().unwrap();
    assert!(
        format!("{status:?}").ends_with(", 5)"),
        "exit code 5 (aborted): {status:?}"
    );
    assert_eq!(lab.status_json()["paused"], false, "nothing was done");
    let events = journal(runs.path(), &run_id);
    let gate = events
        .iter()
        .find(|event| event["event"] == "gate_answered")
        .unwrap();
    assert_eq!(gate["answer"], false);
    assert_eq!(gate["by"], "Ctrl-C");
    assert_eq!(last_event(&events)["outcome"], "aborted");
    // The lock went with the run.
    runbook(lab, runs.path())
        .args(["pause", "--yes"])
        .run()
        .success();
}

/// Seed 000's silence around a rebuild: an operator who types the wrong name at the gate
/// aborts the run, and the silence it created first is expired on the way out.
#[test]
fn a_reinit_aborted_at_its_gate_expires_its_silence() {
    let guard = Lab::shared().exclusive();
    let lab = guard.lab;
    let runs = scratch();
    let replica = lab.replica();
    let before = postmaster_started(lab, &replica);
    let mut session = at_a_terminal(lab, runs.path(), &["reinit", "--member", &replica]);
    session
        .exp_string(&format!("Type {replica} to proceed"))
        .unwrap();
    let events = journal(runs.path(), &only_run(runs.path()));
    let silence = silence_created(&events);
    assert_eq!(
        lab.silence_state(&silence),
        "active",
        "silenced before the gate"
    );
    let matched = block_on(lab.alertmanager().list())
        .unwrap()
        .into_iter()
        .find(|listed| listed.id == silence)
        .unwrap();
    let host = lab.client().0.member(&replica).unwrap().host.clone();
    assert!(
        matched
            .matchers
            .iter()
            .any(|matcher| matcher.name == "fqdn" && matcher.value == host),
        "{matched:?}"
    );
    assert!(
        matched.comment.contains("by "),
        "run id and operator: {}",
        matched.comment
    );
    session.send_line("not-the-name").unwrap();
    let status = session.process().wait().unwrap();
    assert!(
        format!("{status:?}").ends_with(", 5)"),
        "aborted: {status:?}"
    );
    assert_eq!(lab.silence_state(&silence), "expired");
    let events = journal(runs.path(), &only_run(runs.path()));
    let undone = events
        .iter()
        .find(|event| event["event"] == "compensating")
        .expect("the silence's expiry runs as the plan's declared compensation");
    assert_eq!(undone["step"], format!("undo-silence-{replica}"));
    assert!(
        events
            .iter()
            .any(|event| event["event"] == "silence_expired")
    );
    assert_eq!(last_event(&events)["outcome"], "aborted");
    assert_eq!(
        postmaster_started(lab, &replica),
        before,
        "nothing was rebuilt"
    );
}

/// An Alertmanager that does not answer is a failed pre-check of a plan that silences through
/// it: the dry-run says so, and a real run would refuse before its first step.
#[test]
fn an_unreachable_alertmanager_fails_the_dry_run() {
    let guard = Lab::shared().read();
    let lab = guard.lab;
    let runs = scratch();
    let dir = scratch();
    let text = std::fs::read_to_string(lab.inventory())
        .unwrap()
        .replace("127.0.0.40:9093", "127.0.0.40:9")
        .replace(": secrets/", &format!(": {}/secrets/", lab.dir.display()))
        .replace(": ssh/", &format!(": {}/ssh/", lab.dir.display()));
    let inventory = crate::harness::write(dir.path(), "pgha.yml", &text);
    let replica = lab.replica();
    let run = Pgha::new()
        .env("PGHA_RUNS_DIR", runs.path())
        .arg_flag_path("--config", &inventory)
        .args(["reinit", "--member", &replica, "--dry-run"])
        .run()
        .expect_code(4);
    assert!(
        run.stdout()
            .contains("[FAIL] Alertmanager at http://127.0.0.40:9 answers (http://127.0.0.40:9/api/v2/status: Alertmanager did not answer"),
        "{}",
        run.stdout()
    );
}

/// Ctrl-C while an SSH command runs: said at once, the command is not cut half-way (Patroni
/// comes back), the run stops before its next step (exit 5), and `resume` finishes it.
#[test]
fn ctrl_c_during_an_ssh_command_stops_after_it_and_resume_finishes() {
    let guard = Lab::shared().exclusive();
    let lab = guard.lab;
    let runs = scratch();
    let replica = lab.replica();
    let mut session = at_a_terminal(
        lab,
        runs.path(),
        &["service", "restart", "--member", &replica, "--yes"],
    );
    wait_until(
        Duration::from_secs(20),
        "the restart command starts",
        || {
            std::fs::read_dir(runs.path()).is_ok_and(|mut entries| {
                entries.any(|entry| {
                    entry.is_ok_and(|entry| {
                        std::fs::read_to_string(entry.path())
                            .is_ok_and(|text| text.contains("\"event\":\"step_started\""))
                    })
                })
            })
        },
    );
    std::thread::sleep(Duration::from_millis(300));
    let pressed = std::time::Instant::now();
    session.send_control('c').unwrap();
    session
        .exp_string("stopping after the current action")
        .unwrap();
    assert!(pressed.elapsed() < Duration::from_secs(1), "said at once");
    let status = session.process().wait().unwrap();
    assert!(
        format!("{status:?}").ends_with(", 5)"),
        "exit code 5 (interrupted): {status:?}"
    );
    let run_id = only_run(runs.path());
    let events = journal(runs.path(), &run_id);
    let command = events
        .iter()
        .find(|event| event["event"] == "command_ran")
        .expect("the command ran to its end");
    assert_eq!(command["status"], 0);
    let end = last_event(&events);
    assert_eq!(end["outcome"], "interrupted");
    assert!(
        end["detail"]
            .as_str()
            .unwrap()
            .contains("at the operator's request (Ctrl-C)"),
        "{end}"
    );
    runbook(lab, runs.path())
        .args(["resume", &run_id, "--yes"])
        .run()
        .success();
    assert_eq!(
        entry(&lab.status_json(), "members", &replica)["state"],
        "streaming"
    );
}
