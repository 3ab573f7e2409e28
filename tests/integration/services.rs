//! Service control through the environment's template — for the lab, `pgha lab member …` run
//! over SSH on the member's own address — driven by `pgha service`: a member's Patroni stops
//! and the member leaves, starts and rejoins; the leader is refused.

use crate::harness::{Lab, Pgha, entry, scratch, write};

fn service(lab: &Lab, runs: &std::path::Path) -> Pgha {
    Pgha::new().lab(lab).env("PGHA_RUNS_DIR", runs)
}

#[test]
fn stop_and_start_a_members_patroni_over_ssh() {
    let guard = Lab::shared().exclusive();
    let lab = guard.lab;
    let runs = scratch();
    let member = lab.replica();
    let run = service(lab, runs.path())
        .args(["service", "stop", "--member", &member, "--yes"])
        .run()
        .success();
    let ssh_line = format!(
        "ssh {}: ",
        lab.api_url(&member)
            .trim_start_matches("http://")
            .trim_end_matches(":8008")
    );
    assert!(
        run.stderr().contains(&ssh_line),
        "the command went over SSH: {}",
        run.stderr()
    );
    assert!(
        run.stderr()
            .contains(&format!("member stop {member}: exit 0")),
        "{}",
        run.stderr()
    );
    let status = lab.status_json();
    assert_eq!(
        entry(&status, "members", &member)["api"],
        "unreachable",
        "the member left"
    );

    service(lab, runs.path())
        .args(["service", "start", "--member", &member, "--yes"])
        .run()
        .success();
    assert_eq!(
        entry(&lab.status_json(), "members", &member)["state"],
        "streaming",
        "the member rejoined"
    );

    // The journal holds each command with its exit status and output.
    let journals: Vec<String> = std::fs::read_dir(runs.path())
        .unwrap()
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path()).ok())
        .collect();
    assert_eq!(journals.len(), 2);
    assert!(
        journals
            .iter()
            .all(|journal| journal.contains("\"event\":\"command_ran\"")
                && journal.contains("\"status\":0"))
    );
}

#[test]
fn the_leaders_patroni_is_never_stopped() {
    let guard = Lab::shared().read();
    let runs = scratch();
    let leader = guard.lab.leader();
    let run = service(guard.lab, runs.path())
        .args(["service", "stop", "--member", &leader, "--yes"])
        .run()
        .expect_code(4);
    assert!(
        run.stderr()
            .contains(&format!("[FAIL] {leader} is not the leader")),
        "{}",
        run.stderr()
    );
}

#[test]
fn a_dry_run_shows_the_exact_command_line() {
    let guard = Lab::shared().read();
    let member = guard.lab.replica();
    let markdown = Pgha::new()
        .lab(guard.lab)
        .args([
            "service",
            "restart",
            "--member",
            &member,
            "--dry-run",
            "-o",
            "markdown",
        ])
        .run()
        .success()
        .stdout();
    let values = format!(
        "' pgha {} {} {member}",
        env!("CARGO_BIN_EXE_pgha"),
        guard.lab.dir.display()
    );
    assert!(
        markdown.contains(r#""$pgha" lab --dir "$dir" member stop "$member""#)
            && markdown.contains(&values),
        "{markdown}"
    );
    assert!(markdown.contains("- **Command** on "), "{markdown}");
}

#[test]
fn an_environment_without_service_control_is_refused() {
    let guard = Lab::shared().read();
    let dir = scratch();
    let inventory = write(
        dir.path(),
        "pgha.yml",
        &guard.lab.inventory_yaml(
            "bare",
            "      username: patroni\n      password_env: LAB_PASSWORD\n",
            &["node1", "node2", "node3"],
        ),
    );
    let run = Pgha::new()
        .args(["-c"])
        .arg_path(&inventory)
        .args(["service", "stop", "--member", "node2", "--dry-run"])
        .env("LAB_PASSWORD", guard.lab.rest_password())
        .run()
        .expect_code(4);
    assert!(
        run.one_error_line()
            .contains("environment bare has no `service:` section")
    );
}
