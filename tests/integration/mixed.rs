//! A mixed-version cluster, as in the middle of a rolling upgrade: one member runs Patroni
//! 2.1.7 (role `master`, no `streaming`, no replay lag) beside 4.1.5 members. pgha must show
//! one consistent picture, including when the old member leads and answers `/cluster`.

use std::time::Duration;

use crate::harness::{Lab, Pgha, block_on, entry, wait_until};

fn run_patroni(lab: &Lab, name: &str, version: &str) {
    Pgha::new()
        .args(["lab", "member", "stop", name])
        .lab(lab)
        .run()
        .success();
    Pgha::new()
        .args(["lab", "member", "start", name, "--patroni-version", version])
        .lab(lab)
        .run()
        .success();
    let (target, client) = lab.client();
    let url = target.member(name).unwrap().api_url.clone();
    wait_until(
        Duration::from_mins(1),
        &format!("{name} runs Patroni {version} as a replica"),
        || {
            block_on(client.status(&url)).is_ok_and(|status| {
                status.patroni_version.map(|v| v.to_string()).as_deref() == Some(version)
                    && status.state == pgha::patroni::MemberState::Running
            })
        },
    );
}

#[test]
fn an_old_member_is_normalised_as_replica_and_as_leader() {
    let guard = Lab::shared().exclusive();
    let lab = guard.lab;
    let original_leader = lab.leader();
    let old = lab.replica();
    // The rolling-upgrade way: pause, swap one member's Patroni; PostgreSQL keeps running.
    lab.set_paused(true);
    run_patroni(lab, &old, "2.1.7");

    let document = lab.status_json();
    let record = entry(&document, "members", &old);
    assert_eq!(record["patroni_version"], "2.1.7");
    assert_eq!(record["role"], "replica");
    assert_eq!(
        record["state"], "running",
        "2.1.7 cannot tell streaming; pgha does not invent it"
    );
    assert!(record["receive_lag_bytes"].as_u64().is_some());
    assert!(
        record["replay_lag_bytes"].as_u64().is_some(),
        "computed from positions"
    );
    assert_eq!(document["warnings"], serde_json::json!([]));
    // The doctor names the unfinished upgrade (and the pause), with both releases.
    let doctor = Pgha::new().args(["doctor", "-o", "json"]).lab(lab).run();
    assert_eq!(doctor.code(), 7, "{}", doctor.stderr());
    let findings = doctor.json()["findings"].clone();
    let mixed = findings
        .as_array()
        .unwrap()
        .iter()
        .find(|finding| finding["code"] == "mixed_patroni_versions")
        .unwrap_or_else(|| panic!("{findings}"));
    assert_eq!(
        mixed["seen"],
        "members run different Patroni releases: 2.1.7, 4.1.5"
    );
    assert!(
        findings
            .as_array()
            .unwrap()
            .iter()
            .any(|finding| finding["code"] == "maintenance_mode"),
        "{findings}"
    );

    // The old member takes over: its /patroni says `master`, its /cluster has no scope, no
    // `streaming` and no receive/replay lags.
    lab.switchover(&original_leader, &old);
    let document = lab.status_json();
    assert_eq!(document["leader"], old.as_str());
    assert_eq!(document["scope"], "demo");
    let record = entry(&document, "members", &old);
    assert_eq!(record["role"], "leader");
    assert_eq!(record["patroni_version"], "2.1.7");
    wait_until(
        Duration::from_secs(30),
        "the 4.1.5 members stream from the old leader",
        || {
            let document = lab.status_json();
            document["members"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|member| member["name"] != old.as_str())
                .all(|member| {
                    member["state"] == "streaming" && member["patroni_version"] == "4.1.5"
                })
        },
    );
    let table = lab.status_table();
    assert!(table.contains("| Leader  | running   |"), "{table}");
    assert!(table.contains(" Maintenance mode: on"), "{table}");

    // Hand back and restore the release; the guard resumes management.
    lab.switchover(&old, &original_leader);
    run_patroni(lab, &old, "4.1.5");
}
