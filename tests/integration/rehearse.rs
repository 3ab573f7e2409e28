//! `pgha rehearse` on a lab shaped like the shared lab's cluster (its own addresses from
//! 127.0.0.171), the target only read: a switchover whose structure is the one the target's
//! dry-run prints, every step timed; again on the lab as it was left (its leader first put
//! back in the target leader's place); a reinit behind the member's name; and a switchover
//! with the leader's machine killed as the old leader rejoins, the fault in the report.

use std::path::Path;
use std::time::Instant;

use crate::harness::{Lab, Pgha, fingerprint, lab_root, scratch};

/// `pgha --env lab rehearse --like demo --report json [extra] RUNBOOK…` on the rehearsal lab.
fn rehearse(lab: &Lab, runs: &Path, extra: &[&str], runbook: &[&str]) -> serde_json::Value {
    let run = Pgha::new()
        .args([
            "--env", "lab", "rehearse", "--like", "demo", "--report", "json",
        ])
        .arg_flag_path("--lab-dir", &lab_root().join("rehearsal"))
        .args(["--first-address", "127.0.0.171"])
        .args(extra)
        .args(runbook)
        .env("PGHA_RUNS_DIR", runs)
        .lab(lab)
        .run();
    eprintln!("{}", run.stderr());
    run.json()
}

/// Wiped however the test ends.
struct RehearsalLab;

impl Drop for RehearsalLab {
    fn drop(&mut self) {
        let down = Pgha::new()
            .args(["lab", "down", "--wipe"])
            .env("PGHA_LAB_DIR", lab_root().join("rehearsal"))
            .run();
        if down.code() != 0 {
            eprintln!("wiping the rehearsal lab failed: {}", down.stderr());
        }
    }
}

#[test]
fn runbooks_rehearsed_like_the_lab_are_the_plans_their_dry_runs_show() {
    let guard = Lab::shared().read();
    let lab = guard.lab;
    let runs = scratch();
    let _wiped = RehearsalLab;
    let before = fingerprint(lab);
    let dry_run = Pgha::new()
        .args(["switchover", "--dry-run", "-o", "json"])
        .lab(lab)
        .run()
        .success()
        .json();

    let started = Instant::now();
    let report = rehearse(lab, runs.path(), &[], &["switchover", "--yes"]);
    eprintln!("rehearsal in {:?}", started.elapsed());
    assert_eq!(
        report["target_structure"], dry_run["plan_structure"],
        "the rehearsal's structure is the one the real dry-run prints"
    );
    succeeded_on_the_same_plan(&report);
    assert_eq!(report["target"]["members"].as_array().unwrap().len(), 3);
    assert!(
        report["lab_at_end"]
            .as_str()
            .unwrap()
            .contains("2/2 replicas streaming"),
        "{report}"
    );
    // Again on the lab as the first left it, led by the other member.
    succeeded_on_the_same_plan(&rehearse(lab, runs.path(), &[], &["switchover", "--yes"]));

    let replica = lab.replica();
    let reinit = rehearse(
        lab,
        runs.path(),
        &[],
        &[
            "reinit",
            "--member",
            &replica,
            "--yes",
            "--confirm",
            &replica,
        ],
    );
    succeeded_on_the_same_plan(&reinit);
    let confirmed = format!("--confirm {replica}");
    assert!(
        reinit["gates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|gate| gate.as_str().unwrap().contains(&confirmed)),
        "{reinit}"
    );

    // A fault at a named step: the new leader's machine dies while the old one rejoins.
    let faulted = rehearse(
        lab,
        runs.path(),
        &["--fault", "kill-leader@wait-rejoin"],
        &["switchover", "--yes"],
    );
    let fault = &faulted["faults"][0];
    assert_eq!(fault["fault"], "kill-leader@wait-rejoin", "{faulted}");
    assert!(
        fault["step"].as_str().unwrap().starts_with("wait-rejoin-"),
        "{faulted}"
    );
    assert!(
        fault["what"]
            .as_str()
            .unwrap()
            .ends_with("Patroni and PostgreSQL killed"),
        "{faulted}"
    );
    assert!(
        faulted["steps"].as_array().unwrap().len() >= 2,
        "the report says how the run went on: {faulted}"
    );
    assert_eq!(fingerprint(lab), before, "the target was only read");
}

fn succeeded_on_the_same_plan(report: &serde_json::Value) {
    assert_eq!(report["same_structure"], true, "{report}");
    assert_eq!(report["outcome"], "succeeded", "{report}");
    let steps = report["steps"].as_array().unwrap();
    assert!(!steps.is_empty(), "{report}");
    assert!(
        steps.iter().all(|step| step["outcome"] == "succeeded"),
        "{report}"
    );
}
