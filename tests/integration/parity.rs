//! patronictl's other commands, on the shared lab: `flush` of a scheduled switchover and of a
//! scheduled restart, each verified gone (and refused when nothing is scheduled); `version`,
//! `dsn`, and `status --topology -t --extended` read like patronictl's.

use std::time::Duration;

use pgha::patroni::RestartRequest;

use crate::harness::{Lab, Pgha, block_on, fingerprint};

/// An RFC 3339 time an hour from now, in UTC.
fn in_an_hour() -> String {
    let at = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
    at.strftime("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}

#[test]
fn scheduled_switchovers_and_restarts_are_flushed_and_verified() {
    let lab = Lab::shared();
    let _guard = lab.exclusive();
    let replica = lab.replica();

    let before = fingerprint(lab);
    for what in ["switchover", "restart"] {
        let refused = Pgha::new()
            .args(["flush", what, "--yes"])
            .lab(lab)
            .run()
            .expect_code(4);
        assert!(
            refused.one_error_line().contains("nothing to flush"),
            "{}",
            refused.stderr()
        );
    }
    assert_eq!(fingerprint(lab), before);

    let at = in_an_hour();
    Pgha::new()
        .args(["switchover", "--candidate", &replica, "--at", &at, "--yes"])
        .lab(lab)
        .run()
        .success();
    assert!(lab.status_json()["scheduled_switchover"].is_object());
    let flushed = Pgha::new()
        .args(["flush", "switchover", "--yes"])
        .lab(lab)
        .run()
        .success();
    assert!(
        flushed.stderr().contains("no switchover scheduled"),
        "{}",
        flushed.stderr()
    );
    assert!(lab.status_json()["scheduled_switchover"].is_null());

    let (target, client) = lab.client();
    let url = &target.member(&replica).unwrap().api_url;
    let request = RestartRequest {
        schedule: Some(in_an_hour()),
        ..RestartRequest::default()
    };
    let answer = block_on(client.restart(url, &request)).unwrap();
    assert_eq!(answer.status, 202, "{}", answer.message);
    let member = |name: &str| {
        lab.status_json()["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|member| member["name"] == name)
            .unwrap()
            .clone()
    };
    assert!(member(&replica)["scheduled_restart"].is_string());
    let flushed = Pgha::new()
        .args(["flush", "restart", "--member", &replica, "--yes"])
        .lab(lab)
        .run()
        .success();
    assert!(
        flushed
            .stderr()
            .contains(&format!("{replica} has no restart scheduled")),
        "{}",
        flushed.stderr()
    );
    assert!(member(&replica)["scheduled_restart"].is_null());
    // Patroni empties the failover key on `DELETE /switchover`; the leader's next HA loop
    // removes it.
    crate::harness::wait_until(
        Duration::from_secs(10),
        "nothing but the schedules changed",
        || fingerprint(lab) == before,
    );
    assert_eq!(
        fingerprint(lab),
        before,
        "nothing but the schedules changed"
    );
}

#[test]
fn version_dsn_and_the_topology_read_like_patronictl() {
    let guard = Lab::shared().read();
    let lab = guard.lab;
    let leader = lab.leader();

    let version = Pgha::new().args(["version"]).lab(lab).run().success();
    let lines: Vec<String> = version.stdout().lines().map(str::to_string).collect();
    assert!(lines[0].starts_with("pgha "), "{lines:?}");
    for name in ["node1", "node2", "node3"] {
        let prefix = format!("{name}: Patroni 4.1.5 PostgreSQL 15.");
        assert!(
            lines.iter().any(|line| line.starts_with(&prefix)),
            "{lines:?}"
        );
    }

    let document = Pgha::new()
        .args(["version", "-o", "json"])
        .lab(lab)
        .run()
        .success()
        .json();
    assert_eq!(document["cluster"], "demo");
    let members = document["members"].as_array().unwrap();
    assert_eq!(members.len(), 3, "{document}");
    assert!(
        members
            .iter()
            .all(|member| member["patroni"] == "4.1.5" && member["error"].is_null()),
        "{document}"
    );

    let primary = Pgha::new().args(["dsn"]).lab(lab).run().success();
    assert_eq!(
        primary.stdout(),
        format!("host={} port=5432\n", lab.address(&leader))
    );
    let replica = Pgha::new()
        .args(["dsn", "--role", "replica"])
        .lab(lab)
        .run()
        .success();
    assert_ne!(replica.stdout(), primary.stdout());
    let described = Pgha::new()
        .args(["dsn", "-o", "json"])
        .lab(lab)
        .run()
        .success()
        .json();
    assert_eq!(described["member"], leader.as_str(), "{described}");
    assert_eq!(described["role"], "leader", "{described}");
    assert_eq!(described["port"], 5432, "{described}");
    assert_eq!(
        format!("{}\n", described["dsn"].as_str().unwrap()),
        primary.stdout()
    );

    let table = Pgha::new()
        .args(["status", "--topology", "-t", "--extended"])
        .lab(lab)
        .run()
        .success();
    let text = table.stdout();
    let rows: Vec<&str> = text.lines().filter(|line| line.starts_with("| ")).collect();
    assert!(rows[1].starts_with(&format!("| {leader} ")), "{text}");
    assert!(
        rows[2..].iter().all(|row| row.starts_with("| + node")),
        "{text}"
    );
    assert!(
        text.lines().next().unwrap().ends_with('Z'),
        "the time first: {text}"
    );
    assert!(rows[0].contains("| Scheduled restart |"), "{text}");
}

/// Two clusters in one environment — the shared lab as `demo`, the scale lab's two members as
/// `scale` (each with its own etcd and REST password) — and a third that nothing answers for:
/// one table per cluster read, one summary line per cluster, exit 3 for the unreadable one;
/// without it, exit 0, and JSON carries both documents.
#[test]
fn status_all_shows_every_cluster_of_the_environment() {
    let main = Lab::shared().read();
    let scale = Lab::scale().read();
    let original = std::fs::read_to_string(main.lab.inventory()).unwrap();
    let scale_password = scale.lab.dir.join("secrets/rest-password");
    let second = format!(
        "      scale:\n        scope: demo\n        rest:\n          username: patroni\n          password_file: {}\n        dcs:\n          kind: etcd\n          hosts:\n          - 127.0.0.70:2379\n        members:\n        - name: node1\n          host: 127.0.0.71\n        - name: node2\n          host: 127.0.0.72\n",
        scale_password.display()
    );
    let gone = "      gone:\n        dcs:\n          kind: etcd\n          hosts:\n          - 127.0.0.27:2379\n        members:\n        - name: node1\n          host: 127.0.0.27\n";
    let with = |extra: &str| format!("{original}{second}{extra}");
    let inventory = main.lab.dir.join("pgha-fleet.yml");
    let status = |args: &[&str]| {
        Pgha::new()
            .arg_flag_path("--config", &inventory)
            .args(["--env", "lab", "status", "--all"])
            .args(args)
            .run()
    };

    std::fs::write(&inventory, with(gone)).unwrap();
    // The clusters named, in their order, and only those: `--cluster` repeated.
    let named = Pgha::new()
        .arg_flag_path("--config", &inventory)
        .args([
            "--env",
            "lab",
            "--cluster",
            "scale",
            "--cluster",
            "demo",
            "status",
        ])
        .run()
        .success();
    let text = named.stdout();
    let summary: Vec<&str> = text.lines().rev().take(2).collect();
    assert!(summary[1].starts_with("scale: leader node"), "{text}");
    assert!(summary[0].starts_with("demo: leader node"), "{text}");
    let unknown = Pgha::new()
        .arg_flag_path("--config", &inventory)
        .args([
            "--env",
            "lab",
            "--cluster",
            "scale",
            "--cluster",
            "nope",
            "status",
        ])
        .run()
        .expect_code(2);
    assert!(
        unknown
            .one_error_line()
            .contains("has no cluster \"nope\" (clusters: demo, gone, scale)"),
        "{}",
        unknown.stderr()
    );
    let run = status(&[]).expect_code(3);
    let text = run.stdout();
    assert!(text.contains("+ Cluster: demo ("), "{text}");
    assert!(text.contains("+ Cluster: scale, scope demo ("), "{text}");
    let summary: Vec<&str> = text.lines().rev().take(3).collect();
    assert!(summary[2].starts_with("demo: leader node"), "{text}");
    assert!(
        summary[2].ends_with("2/2 replicas streaming, no warning"),
        "{text}"
    );
    assert!(
        summary[1].starts_with("gone: cannot be read: no member of cluster gone answered"),
        "{text}"
    );
    assert!(summary[0].starts_with("scale: leader node"), "{text}");
    assert!(summary[0].contains("1/1 replicas streaming"), "{text}");

    std::fs::write(&inventory, with("")).unwrap();
    let run = status(&["-o", "json"]).success();
    let document = run.json();
    let clusters: Vec<&str> = document["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|cluster| cluster["cluster"].as_str().unwrap())
        .collect();
    assert_eq!(clusters, ["demo", "scale"]);
    assert_eq!(document["errors"], serde_json::json!([]));
    let _ = std::fs::remove_file(&inventory);
}
