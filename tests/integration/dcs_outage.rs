//! The DCS taken away from a real cluster (`pgha lab dcs stop`): Patroni demotes the leader after
//! `ttl`, and `pgha status` must say so first and loudly — no leader, the members that cannot read
//! the DCS — and fail under `--fail-on`. Then the DCS comes back and the cluster heals.

use std::time::Duration;

use crate::harness::{Lab, Pgha, wait_until};

const UNHEALTHY: i32 = 7;

fn warning_codes(status: &serde_json::Value) -> Vec<String> {
    status["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|warning| warning["code"].as_str().unwrap().to_string())
        .collect()
}

fn status_json(lab: &Lab) -> serde_json::Value {
    // `status` itself succeeds: it reports the cluster, whatever state it is in.
    Pgha::new()
        .args(["status", "-o", "json"])
        .lab(lab)
        .run()
        .success()
        .json()
}

fn dcs(lab: &Lab, action: &str) {
    Pgha::new()
        .args(["lab", "dcs", action])
        .lab(lab)
        .run()
        .success();
}

/// Stops the lab's DCS, checks what status says once the leader has demoted itself, then
/// starts it again and waits until the cluster is healthy.
fn leaderless_after_the_dcs_stops(lab: &Lab) {
    // Healthy first: the same command passes before the outage.
    Pgha::new()
        .args(["status", "--fail-on", "critical"])
        .lab(lab)
        .run()
        .success();
    dcs(lab, "stop");
    wait_until(Duration::from_mins(1), "status reports no leader", || {
        warning_codes(&status_json(lab)).first().map(String::as_str) == Some("no_leader")
    });
    let status = status_json(lab);
    assert_eq!(status["leader"], serde_json::Value::Null);
    let warnings = status["warnings"].as_array().unwrap();
    assert_eq!(warnings[0]["severity"], "critical", "{warnings:?}");
    let unreadable = warnings
        .iter()
        .find(|warning| warning["code"] == "dcs_unreachable")
        .unwrap_or_else(|| panic!("no dcs_unreachable warning: {warnings:?}"));
    assert_eq!(unreadable["severity"], "critical");
    assert_eq!(
        unreadable["members"],
        serde_json::json!(["node1", "node2", "node3"])
    );

    let table = Pgha::new()
        .args(["status", "--fail-on", "critical"])
        .lab(lab)
        .run()
        .expect_code(UNHEALTHY)
        .stdout();
    let first = table.lines().next().unwrap();
    assert!(
        first.starts_with("CRITICAL: no member runs as primary"),
        "the news comes first:\n{table}"
    );
    assert!(
        !table.contains("\x1b["),
        "no colour when stdout is not a terminal"
    );
    for line in table.lines().filter(|line| line.starts_with("| node")) {
        assert!(
            line.contains("(no leader)"),
            "a replica without a leader is not shown healthy: {line}"
        );
    }
    Pgha::new()
        .args(["status", "--fail-on", "warning"])
        .lab(lab)
        .run()
        .expect_code(UNHEALTHY);

    dcs(lab, "start");
    wait_until(Duration::from_mins(1), "the cluster heals", || {
        Pgha::new()
            .args(["status", "--fail-on", "warning"])
            .lab(lab)
            .run()
            .code()
            == 0
    });
}

#[test]
fn without_etcd_status_says_there_is_no_leader_first_and_fails_on_critical() {
    let guard = Lab::shared().exclusive();
    leaderless_after_the_dcs_stops(guard.lab);
}

#[test]
fn without_the_consul_double_status_says_there_is_no_leader_first() {
    let guard = Lab::consul().exclusive();
    leaderless_after_the_dcs_stops(guard.lab);
}

#[test]
fn fail_on_does_not_go_with_watch() {
    let run = Pgha::new()
        .args(["status", "--watch", "--fail-on", "critical"])
        .run()
        .expect_code(2);
    assert!(run.stderr().contains("--fail-on"), "{}", run.stderr());
}
