//! `pgha scale-up` end to end on a lab with a spare member: the refusals first (a member that
//! already runs, an unknown one, a host SSH cannot reach), then the spare joins — killed during
//! its wait and finished by `resume` — and is taken out again for the next run.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::{Lab, Pgha, entry, killed_at_step, scratch, wait_until};

const SPARE: &str = "node3";

/// The by-hand steps of a scale-up, named as done: unattended, `--yes` does not answer them.
const DONE_BY_HAND: [&str; 4] = ["--done", "provisioning", "--done", "load-balancing"];

fn runbook(lab: &Lab, runs: &Path) -> Pgha {
    Pgha::new().lab(lab).env("PGHA_RUNS_DIR", runs)
}

/// Puts the spare back as `lab up --spare 1` made it: Patroni stopped, no data, not registered.
fn remove_spare(lab: &Lab) {
    Pgha::new()
        .args(["lab", "member", "stop", SPARE])
        .lab(lab)
        .run()
        .success();
    // After a killed Patroni its pg_basebackup may still be writing: it stops at the first file
    // it can no longer create, so delete until the directory stays gone.
    let data = lab.dir.join("members").join(SPARE).join("data");
    wait_until(Duration::from_secs(30), "the spare's data is gone", || {
        let _ = std::fs::remove_dir_all(&data);
        std::thread::sleep(Duration::from_millis(500));
        !data.exists()
    });
    wait_until(
        Duration::from_mins(1),
        "the spare's DCS key expires",
        || entry(&lab.status_json(), "members", SPARE)["in_dcs"] == false,
    );
}

#[test]
fn the_spare_joins_streams_and_survives_a_killed_pgha() {
    let guard = Lab::scale().exclusive();
    let lab = guard.lab;
    if entry(&lab.status_json(), "members", SPARE)["in_dcs"] == true {
        remove_spare(lab);
    }
    let runs = scratch();

    refusals_start_nothing(lab, runs.path());

    // The join, killed while it waits for the copy, finished by resume.
    let dry = runbook(lab, runs.path())
        .args(["scale-up", "--member", SPARE, "--dry-run"])
        .run()
        .success();
    assert!(
        dry.stdout().contains("Confirm that node3 is provisioned"),
        "{}",
        dry.stdout()
    );
    let runs = scratch();
    let started = Instant::now();
    let run_id = killed_at_step(
        runbook(lab, runs.path())
            .args(["scale-up", "--member", SPARE, "--yes"])
            .args(DONE_BY_HAND),
        runs.path(),
        &format!("wait-streaming-{SPARE}"),
    );
    let resumed = runbook(lab, runs.path())
        .args(["resume", &run_id, "--yes", "--done", "load-balancing"])
        .run()
        .success();
    eprintln!("scale-up with a kill and a resume: {:?}", started.elapsed());
    assert!(
        resumed.stderr().contains("pgha: resumed"),
        "{}",
        resumed.stderr()
    );
    let document = lab.status_json();
    let record = entry(&document, "members", SPARE);
    assert_eq!(record["state"], "streaming", "{record}");
    assert!(
        document["warnings"].as_array().unwrap().is_empty(),
        "{document}"
    );
    remove_spare(lab);

    // Uninterrupted, timed against the member's own start-to-streaming.
    let runs = scratch();
    let started = Instant::now();
    let run = runbook(lab, runs.path())
        .args(["scale-up", "--member", SPARE, "--yes"])
        .args(DONE_BY_HAND)
        .run()
        .success();
    eprintln!("scale-up: {:?}\n{}", started.elapsed(), run.stderr());
    assert_eq!(
        entry(&lab.status_json(), "members", SPARE)["state"],
        "streaming"
    );

    // And out again: drained by pgha (the tag set in its Patroni configuration over SSH, the
    // original kept, Patroni reloaded), then removed.
    let config = lab.member_config(SPARE);
    let original = std::fs::read_to_string(&config).unwrap();
    let started = Instant::now();
    let run = runbook(lab, runs.path())
        .args(["scale-down", "--member", SPARE, "--yes", "--confirm", SPARE])
        .run()
        .success();
    eprintln!("scale-down: {:?}\n{}", started.elapsed(), run.stderr());
    let document = lab.status_json();
    assert_eq!(entry(&document, "members", SPARE)["in_dcs"], false);
    assert_eq!(entry(&document, "members", SPARE)["api"], "unreachable");
    let drained = std::fs::read_to_string(&config).unwrap();
    assert_eq!(
        drained,
        original.replace("  noloadbalance: false\n", "  noloadbalance: true\n"),
        "one line changed"
    );
    let backups: Vec<std::path::PathBuf> = std::fs::read_dir(config.parent().unwrap())
        .unwrap()
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.to_string_lossy().contains("patroni.yml.pgha-"))
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert_eq!(std::fs::read_to_string(&backups[0]).unwrap(), original);
    std::fs::remove_file(&backups[0]).unwrap();
    remove_spare(lab);
}

#[test]
fn the_new_members_patroni_dying_during_the_copy_fails_clearly() {
    let guard = Lab::scale().exclusive();
    let lab = guard.lab;
    if entry(&lab.status_json(), "members", SPARE)["in_dcs"] == true {
        remove_spare(lab);
    }
    // A slow copy (pg_basebackup --max-rate), so that Patroni can be killed in the middle of it;
    // the guard's `lab up` writes the configuration back.
    let config = lab.member_config(SPARE);
    let text = std::fs::read_to_string(&config).unwrap();
    let slowed = text.replace(
        "  - checkpoint: fast\n",
        "  - checkpoint: fast\n  - max-rate: 1M\n",
    );
    assert_ne!(text, slowed);
    std::fs::write(&config, slowed).unwrap();
    let runs = scratch();
    let child = runbook(lab, runs.path())
        .args(["scale-up", "--member", SPARE, "--yes"])
        .args(DONE_BY_HAND)
        .spawn();
    wait_until(Duration::from_mins(1), "the copy starts", || {
        entry(&lab.status_json(), "members", SPARE)["state"] == "creating replica"
    });
    Pgha::new()
        .args(["lab", "member", "kill", SPARE])
        .lab(lab)
        .run()
        .success();
    let killed = Instant::now();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("failed {:?} after the kill", killed.elapsed());
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        killed.elapsed() < Duration::from_mins(1),
        "a dead member is a failure, not a hang"
    );
    assert!(
        stderr.contains("node3's REST API does not answer")
            && stderr.contains("node3 is not registered in the DCS"),
        "{stderr}"
    );
    remove_spare(lab);
}

/// Refusals before the join: a member already in the cluster, an unknown one, SSH or
/// PostgreSQL that cannot be reached. Nothing is started.
fn refusals_start_nothing(lab: &Lab, runs: &Path) {
    // --yes does not say that a host was provisioned.
    let by_hand = runbook(lab, runs)
        .args(["scale-up", "--member", SPARE, "--yes"])
        .run()
        .expect_code(2);
    assert!(
        by_hand
            .one_error_line()
            .contains("the step `provisioning` is done by hand and --yes does not answer it"),
        "{}",
        by_hand.stderr()
    );
    // Where the inventory does not say where Patroni's configuration is, the drain is by hand.
    let inventory = std::fs::read_to_string(lab.inventory())
        .unwrap()
        .lines()
        .filter(|line| !line.contains("patroni_config:"))
        .collect::<Vec<_>>()
        .join("\n");
    let path = crate::harness::write(&lab.dir, "pgha-no-config.yml", &inventory);
    let drain = runbook(lab, runs)
        .args([
            "scale-down",
            "--member",
            "node2",
            "--yes",
            "--confirm",
            "node2",
            "-c",
        ])
        .arg_path(&path)
        .run()
        .expect_code(2);
    let line = drain.one_error_line();
    assert!(
        line.contains("pass --done drain") && line.contains("--no-drain"),
        "{line}"
    );
    runbook(lab, runs)
        .args(["scale-up", "--member", "node2", "--yes"])
        .args(DONE_BY_HAND)
        .run()
        .expect_code(4);
    let unknown = runbook(lab, runs)
        .args(["scale-up", "--member", "node9", "--yes"])
        .args(DONE_BY_HAND)
        .run()
        .expect_code(2);
    assert!(unknown.one_error_line().contains("no member \"node9\""));
    // A host or a server that cannot be reached is unreachable (3): not bad input, not a failure.
    let scale_up_with = |name: &str, from: &str, to: &str| {
        let inventory = std::fs::read_to_string(lab.inventory())
            .unwrap()
            .replace(from, to);
        let path = crate::harness::write(&lab.dir, name, &inventory);
        runbook(lab, runs)
            .args(["scale-up", "--member", SPARE, "--yes"])
            .args(DONE_BY_HAND)
            .args(["-c"])
            .arg_path(&path)
            .run()
            .expect_code(3)
    };
    let failed = scale_up_with("pgha-no-ssh.yml", "port: 2222", "port: 2299");
    assert!(
        failed.stderr().contains("cannot connect over SSH"),
        "{}",
        failed.stderr()
    );
    let unreachable = scale_up_with(
        "pgha-no-postgres.yml",
        "sslmode: disable",
        "sslmode: disable\n      port: 5499",
    );
    assert!(
        unreachable
            .one_error_line()
            .contains(":5499: cannot connect"),
        "{}",
        unreachable.stderr()
    );
    assert_eq!(entry(&lab.status_json(), "members", SPARE)["in_dcs"], false);
}
