//! Secrets never leave pgha: a switchover and a reinit run for real, their dry-runs in every
//! format, `status`, `doctor` and `history`, all with `-vvv` and `PGHA_LOG=trace`; every byte
//! they print, and every journal they write, is searched for every password of the lab (REST,
//! PostgreSQL superuser, replication and rewind).

use std::path::Path;

use crate::harness::{Lab, Pgha, scratch};

/// Every secret of the lab: the files under `secrets/`.
fn secrets(lab: &Lab) -> Vec<(String, String)> {
    std::fs::read_dir(lab.dir.join("secrets"))
        .unwrap()
        .flatten()
        .map(|entry| {
            let value = std::fs::read_to_string(entry.path()).unwrap();
            (
                entry.file_name().to_string_lossy().into_owned(),
                value.trim().to_string(),
            )
        })
        .filter(|(_, value)| value.len() >= 8)
        .collect()
}

fn traced(lab: &Lab, runs: &Path, args: &[&str]) -> String {
    let run = Pgha::new()
        .args(["-vvv"])
        .args(args)
        .env("PGHA_LOG", "trace")
        .env("PGHA_RUNS_DIR", runs)
        .lab(lab)
        .run();
    format!("{}\n{}", run.stdout(), run.stderr())
}

#[test]
fn no_secret_appears_in_any_output_log_or_journal() {
    let lab = Lab::shared();
    let _guard = lab.exclusive();
    let runs = scratch();
    let secrets = secrets(lab);
    assert!(secrets.len() >= 4, "{secrets:?}");
    let replica = lab.replica();
    let mut printed = Vec::new();
    for format in ["text", "markdown", "json"] {
        printed.push(traced(
            lab,
            runs.path(),
            &["switchover", "--dry-run", "-o", format],
        ));
        printed.push(traced(
            lab,
            runs.path(),
            &["reinit", "--member", &replica, "--dry-run", "-o", format],
        ));
    }
    printed.push(traced(lab, runs.path(), &["status", "-o", "json"]));
    printed.push(traced(lab, runs.path(), &["doctor", "-o", "json"]));
    printed.push(traced(lab, runs.path(), &["history"]));
    printed.push(traced(lab, runs.path(), &["inventory", "-o", "json"]));
    printed.push(traced(
        lab,
        runs.path(),
        &[
            "reinit",
            "--member",
            &replica,
            "--yes",
            "--confirm",
            &replica,
        ],
    ));
    printed.push(traced(
        lab,
        runs.path(),
        &[
            "switchover",
            "--candidate",
            &replica,
            "--yes",
            "--checkpoint",
        ],
    ));
    assert_eq!(
        lab.leader(),
        replica,
        "the switchover ran: {}",
        printed.last().unwrap()
    );
    let journals: Vec<String> = std::fs::read_dir(runs.path())
        .unwrap()
        .flatten()
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "jsonl"))
        .map(|entry| std::fs::read_to_string(entry.path()).unwrap())
        .collect();
    assert_eq!(journals.len(), 2, "a journal for each run");
    let traced_lines: usize = printed.iter().map(|text| text.lines().count()).sum();
    assert!(
        traced_lines > 200,
        "trace logging was on: {traced_lines} lines"
    );
    for (name, value) in &secrets {
        for (index, text) in printed.iter().chain(&journals).enumerate() {
            assert!(
                !text.contains(value.as_str()),
                "secret {name} in output {index}"
            );
        }
    }
}
