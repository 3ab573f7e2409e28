//! `pgha rehearse` on a lab shaped like the shared lab's cluster (its own addresses from
//! 127.0.0.171), the target only read: a switchover whose structure is the one the target's
//! dry-run prints, every step timed; again on the lab as it was left (its leader first put
//! back in the target leader's place); a reinit behind the member's name; and a switchover
//! with the leader's machine killed as the old leader rejoins, the fault in the report; the
//! rehearsals' journals then give the real cluster's dry-run an estimate of each step.
//!
//! Then a cluster of another shape (4 members and a spare on the Consul double, one member on
//! Patroni 3.3.11, one tagged nofailover): the rehearsal lab takes its shape; a switchover whose
//! pgha is killed as the old leader rejoins is resumed; a scale-up whose SSH drops mid-run is
//! resumed once SSH is back.

use std::path::Path;
use std::time::Instant;

use crate::harness::{Lab, Pgha, fingerprint, lab_root, scratch, wait_until};

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

/// A rehearsal lab, wiped however the test ends.
pub(crate) struct RehearsalLab(pub(crate) std::path::PathBuf);

impl Drop for RehearsalLab {
    fn drop(&mut self) {
        let down = Pgha::new()
            .args(["lab", "down", "--wipe"])
            .env("PGHA_LAB_DIR", &self.0)
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
    let _wiped = RehearsalLab(lab_root().join("rehearsal"));
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

    // The rehearsals' journals teach the real cluster's dry-run how long a reinit takes.
    let dry_run = Pgha::new()
        .args(["reinit", "--member", &replica, "--dry-run", "-o", "json"])
        .env("PGHA_RUNS_DIR", runs.path())
        .lab(lab)
        .run()
        .json();
    let estimate = &dry_run["estimate"];
    assert_eq!(estimate["runs"], 1, "{estimate}");
    let steps = estimate["steps"].as_array().unwrap();
    assert!(
        steps
            .iter()
            .all(|step| step["runs"] == 1 && step["seconds"].as_f64().is_some()),
        "every step of the rehearsed reinit: {estimate}"
    );
    assert!(
        estimate["total_seconds"].as_f64().unwrap() > 1.0,
        "{estimate}"
    );
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

/// A lab shaped unlike the lab's default: 4 members and a spare on the Consul double, node3 on
/// Patroni 3.3.11, node4 tagged nofailover.
fn a_mixed_consul_cluster() -> crate::harness::DedicatedLab {
    let lab = Lab::dedicated(
        "mixed",
        "127.0.0.181",
        &[
            "--members",
            "4",
            "--spare",
            "1",
            "--dcs",
            "consul",
            "--scope",
            "mixed",
        ],
    );
    for args in [
        &["lab", "member", "stop", "node3"][..],
        &[
            "lab",
            "member",
            "start",
            "node3",
            "--patroni-version",
            "3.3.11",
        ],
    ] {
        Pgha::new().args(args).lab(&lab).run().success();
    }
    // node4 may have won the bootstrap: the tagged member must not lead (no switchover could
    // give a rehearsal lab's lead to it).
    if lab.leader() == "node4" {
        Pgha::new()
            .args([
                "--env",
                "lab",
                "switchover",
                "--candidate",
                "node1",
                "--yes",
            ])
            .lab(&lab)
            .run()
            .success();
    }
    let config = lab.member_config("node4");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("nofailover: false", "nofailover: true"),
    )
    .unwrap();
    Pgha::new()
        .args(["--env", "lab", "reload", "--member", "node4", "--yes"])
        .lab(&lab)
        .run()
        .success();
    wait_until(
        std::time::Duration::from_secs(30),
        "node4 tagged nofailover and node3 streaming",
        || {
            let status = lab.status_json();
            let member = |name: &str| {
                status["members"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|member| member["name"] == name)
                    .cloned()
                    .unwrap()
            };
            member("node4")["tags"]["nofailover"] == true && member("node3")["state"] == "streaming"
        },
    );
    lab
}

#[test]
fn a_cluster_of_another_shape_is_mirrored_and_its_faults_resumed() {
    let target = a_mixed_consul_cluster();
    let runs = scratch();
    let rehearsal_dir = lab_root().join("rehearsal-mixed");
    let _wiped = RehearsalLab(rehearsal_dir.clone());
    let rehearse = |extra: &[&str], runbook: &[&str]| {
        let run = Pgha::new()
            .args([
                "--env", "lab", "rehearse", "--like", "mixed", "--report", "json",
            ])
            .arg_flag_path("--lab-dir", &rehearsal_dir)
            .args(["--first-address", "127.0.0.231"])
            .args(extra)
            .args(runbook)
            .env("PGHA_RUNS_DIR", runs.path())
            .lab(&target)
            .run();
        eprintln!("{}", run.stderr());
        run.json()
    };

    let switchover = rehearse(
        &["--fault", "pgha-kill@wait-rejoin", "--scale", "0.5"],
        &["switchover", "--yes"],
    );
    succeeded_after_a_resume(&switchover);
    let not_mirrored = switchover["not_mirrored"].to_string();
    for mirrored in ["tag", "release", "member names", "members:"] {
        assert!(!not_mirrored.contains(mirrored), "{not_mirrored}");
    }
    assert!(not_mirrored.contains("pgbench -s 1"), "{not_mirrored}");
    assert!(
        switchover["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|step| step["outcome"] == "interrupted"),
        "the step pgha died in: {switchover}"
    );
    let lab = rehearsal_lab_status(&rehearsal_dir);
    let members = lab["members"].as_array().unwrap();
    let shape: Vec<(String, String, bool, bool)> = members
        .iter()
        .map(|member| {
            (
                member["name"].as_str().unwrap().to_string(),
                member["patroni_version"].as_str().unwrap_or("").to_string(),
                member["tags"]["nofailover"] == true,
                member["in_dcs"] == true,
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            ("node1".into(), "4.1.5".into(), false, true),
            ("node2".into(), "4.1.5".into(), false, true),
            ("node3".into(), "3.3.11".into(), false, true),
            ("node4".into(), "4.1.5".into(), true, true),
            ("node5".into(), String::new(), false, false),
        ],
        "{lab}"
    );

    // The spare added while SSH is away: the failed step is resumed once it is back.
    let scale_up = rehearse(
        &["--fault", "ssh-drop@installed"],
        &[
            "scale-up",
            "--member",
            "node5",
            "--yes",
            "--done",
            "provisioning",
        ],
    );
    succeeded_after_a_resume(&scale_up);
    assert!(
        scale_up["faults"][0]["what"]
            .as_str()
            .unwrap()
            .starts_with("SSH dropped"),
        "{scale_up}"
    );
    assert!(
        scale_up["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|step| step["outcome"] == "failed"),
        "a step failed while SSH was away: {scale_up}"
    );
}

fn succeeded_after_a_resume(report: &serde_json::Value) {
    assert_eq!(report["same_structure"], true, "{report}");
    assert_eq!(report["outcome"], "succeeded", "{report}");
    assert_eq!(report["faults"].as_array().unwrap().len(), 1, "{report}");
    let resumes = report["resumes"].as_array().unwrap();
    assert_eq!(resumes.len(), 1, "{report}");
    assert!(
        resumes[0].as_str().unwrap().ends_with(": exit 0"),
        "{report}"
    );
}

/// A rolling upgrade rehearsed like a 3-member cluster on Patroni 3.3.11: the lab starts on the
/// target's release and ends on the new one, the same plan.
#[test]
fn a_rolling_upgrade_is_rehearsed_like_a_cluster_on_an_older_release() {
    let target = Lab::dedicated(
        "upgrade-target",
        "127.0.0.246",
        &["--patroni-version", "3.3.11", "--scope", "old"],
    );
    let runs = scratch();
    let rehearsal_dir = lab_root().join("rehearsal-upgrade");
    let _wiped = RehearsalLab(rehearsal_dir.clone());
    let report = Pgha::new()
        .args([
            "--env", "lab", "rehearse", "--like", "old", "--report", "json",
        ])
        .arg_flag_path("--lab-dir", &rehearsal_dir)
        .args(["--first-address", "127.0.0.251"])
        .args(["rolling-upgrade", "--to", "4.1.5", "--yes"])
        .env("PGHA_RUNS_DIR", runs.path())
        .lab(&target)
        .run()
        .json();
    assert_eq!(report["same_structure"], true, "{report}");
    assert_eq!(report["outcome"], "succeeded", "{report}");
    assert!(
        report["target"]["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|member| member["patroni"] == "3.3.11"),
        "{report}"
    );
    let lab = rehearsal_lab_status(&rehearsal_dir);
    assert!(
        lab["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|member| member["patroni_version"] == "4.1.5"),
        "the lab ends on the new release: {lab}"
    );
    assert!(
        target.status_json()["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|member| member["patroni_version"] == "3.3.11"),
        "the target was only read"
    );
}

/// `pgha status -o json` of the rehearsal lab in `dir`.
fn rehearsal_lab_status(dir: &Path) -> serde_json::Value {
    Pgha::new()
        .arg_flag_path("--config", &dir.join("pgha.yml"))
        .args(["--env", "lab", "status", "-o", "json"])
        .run()
        .success()
        .json()
}
