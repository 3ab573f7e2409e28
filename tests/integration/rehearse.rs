//! `pgha rehearse`: a switchover rehearsed on a lab shaped like the shared lab's cluster (its
//! own addresses from 127.0.0.171), the target only read; the report's structure is the one
//! the target's dry-run prints, every step timed, the lab led by another member at the end;
//! a second rehearsal on that lab first puts its leader back in the target leader's place.

use std::time::Instant;

use crate::harness::{Lab, Pgha, fingerprint, lab_root, scratch};

#[test]
fn a_switchover_rehearsed_like_the_lab_is_the_plan_its_dry_run_shows() {
    let guard = Lab::shared().read();
    let lab = guard.lab;
    let runs = scratch();
    let rehearsal = lab_root().join("rehearsal");
    let before = fingerprint(lab);
    let dry_run = Pgha::new()
        .args(["switchover", "--dry-run", "-o", "json"])
        .lab(lab)
        .run()
        .success()
        .json();
    let rehearse = || {
        Pgha::new()
            .args([
                "--env", "lab", "rehearse", "--like", "demo", "--report", "json",
            ])
            .arg_flag_path("--lab-dir", &rehearsal)
            .args(["--first-address", "127.0.0.171", "switchover", "--yes"])
            .env("PGHA_RUNS_DIR", runs.path())
            .lab(lab)
            .run()
    };
    let started = Instant::now();
    let run = rehearse();
    let took = started.elapsed();
    // Again on the lab as the first left it, led by the other member: the rehearsal first
    // puts the lab's leader in the target leader's place, or it would rehearse the reverse.
    let again = rehearse();
    let down = Pgha::new()
        .args(["lab", "down", "--wipe"])
        .env("PGHA_LAB_DIR", &rehearsal)
        .run();
    eprintln!("rehearsal in {took:?}\n{}", run.stderr());
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(again.code(), 0, "{}", again.stderr());
    assert!(
        again.stderr().contains("switching over to"),
        "{}",
        again.stderr()
    );
    assert_eq!(again.json()["same_structure"], true);
    assert_eq!(down.code(), 0, "{}", down.stderr());
    let report = run.json();
    assert_eq!(report["same_structure"], true, "{report}");
    assert_eq!(
        report["target_structure"], dry_run["plan_structure"],
        "the rehearsal's structure is the one the real dry-run prints"
    );
    assert_eq!(report["outcome"], "succeeded", "{report}");
    let steps = report["steps"].as_array().unwrap();
    assert!(!steps.is_empty(), "{report}");
    assert!(
        steps.iter().all(|step| step["outcome"] == "succeeded"),
        "{report}"
    );
    assert_eq!(report["target"]["members"].as_array().unwrap().len(), 3);
    assert!(
        report["lab_at_end"]
            .as_str()
            .unwrap()
            .contains("2/2 replicas streaming"),
        "{report}"
    );
    assert_eq!(fingerprint(lab), before, "the target was only read");
}
