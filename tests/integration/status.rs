//! `pgha status`, `history`, `config show` and `inventory` against a healthy real lab.

use std::time::Duration;

use crate::harness::{Lab, Pgha};

#[test]
fn status_table_lists_every_member_like_patronictl() {
    let guard = Lab::shared().read();
    let run = Pgha::new()
        .args(["--env", "lab", "status"])
        .lab(guard.lab)
        .run()
        .success();
    let table = run.stdout();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("+ Cluster: demo ("), "{table}");
    assert!(
        lines[1].contains("| Member")
            && lines[1].contains("Receive LSN")
            && lines[1].contains("Patroni")
    );
    let leader = guard.lab.leader();
    for member in ["node1", "node2", "node3"] {
        let row = lines
            .iter()
            .find(|line| line.starts_with(&format!("| {member} ")))
            .expect(member);
        let expected = if member == leader {
            "| Leader  | running"
        } else {
            "| Replica | streaming"
        };
        assert!(row.contains(expected), "{row}");
        assert!(row.contains("4.1.5"), "{row}");
    }
    assert!(
        !table.contains(" ! "),
        "a healthy lab has no warnings:\n{table}"
    );
    assert!(
        run.stderr().is_empty(),
        "nothing on stderr: {}",
        run.stderr()
    );
}

#[test]
fn status_json_follows_the_documented_schema() {
    let guard = Lab::shared().read();
    let document = Pgha::new()
        .args(["status", "-o", "json", "--env", "lab"])
        .lab(guard.lab)
        .run()
        .success()
        .json();
    assert_eq!(document["schema_version"], 1);
    assert_eq!(document["environment"], "lab");
    assert_eq!(document["scope"], "demo");
    assert_eq!(document["paused"], false);
    assert!(
        document["system_identifier"]
            .as_str()
            .is_some_and(|id| id.len() > 10)
    );
    assert_eq!(document["leader"], guard.lab.leader().as_str());
    assert_eq!(document["warnings"], serde_json::json!([]));
    // The lab's inventory names its etcd: status reads the cluster's keys there too.
    let etcd = &document["etcd"];
    assert_eq!(etcd["prefix"], "/service/demo/", "{etcd}");
    assert!(etcd["error"].is_null(), "{etcd}");
    assert!(
        etcd["keys"]
            .as_array()
            .is_some_and(|keys| keys.iter().any(|key| key == "/service/demo/leader")),
        "{etcd}"
    );
    assert!(
        etcd["endpoints"][0]["leader"].is_string(),
        "etcd follows a leader: {etcd}"
    );
    let members = document["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    for member in members {
        assert_eq!(member["api"], "ok");
        assert_eq!(member["in_dcs"], true);
        assert_eq!(member["patroni_version"], "4.1.5");
        assert!(
            member["postgres_version"]
                .as_str()
                .unwrap()
                .starts_with("15.")
        );
        if member["role"] == "leader" {
            assert_eq!(member["state"], "running");
            assert!(member["receive_lag_bytes"].is_null());
        } else {
            assert_eq!(member["role"], "replica");
            assert_eq!(member["state"], "streaming");
            assert!(member["receive_lag_bytes"].as_u64().is_some());
            assert!(
                member["replay_lsn"]
                    .as_str()
                    .is_some_and(|lsn| lsn.contains('/'))
            );
        }
    }
}

#[test]
fn status_yaml_carries_the_same_document() {
    let guard = Lab::shared().read();
    let run = Pgha::new()
        .args(["--env", "lab", "status", "-o", "yaml"])
        .lab(guard.lab)
        .run()
        .success();
    let yaml = run.stdout();
    assert!(yaml.contains("schema_version: 1"), "{yaml}");
    assert!(yaml.contains("scope: demo"));
    assert_eq!(yaml.matches("- name: node").count(), 3, "{yaml}");
}

#[test]
fn the_lab_is_the_default_when_no_inventory_exists() {
    let guard = Lab::shared().read();
    let run = Pgha::new()
        .args(["status", "-o", "json"])
        .lab(guard.lab)
        .run()
        .success();
    assert_eq!(run.json()["environment"], "lab");
}

#[test]
fn status_answers_quickly() {
    let guard = Lab::shared().read();
    // Not a benchmark (bench/ has those): a guard against a hang or a serial fan-out.
    let run = Pgha::new().args(["status"]).lab(guard.lab).run().success();
    assert!(
        run.elapsed < Duration::from_secs(2),
        "status took {:?}",
        run.elapsed
    );
}

#[test]
fn history_and_config_show_read_the_cluster() {
    let guard = Lab::shared().read();
    let history = Pgha::new()
        .args(["history", "-o", "json"])
        .lab(guard.lab)
        .run()
        .success()
        .json();
    assert_eq!(history["scope"], "demo");
    assert!(history["timelines"].is_array());
    let table = Pgha::new()
        .args(["history"])
        .lab(guard.lab)
        .run()
        .success()
        .stdout();
    let header = table.lines().nth(1).unwrap_or_default();
    for column in ["TL", "LSN", "Reason", "Timestamp", "New Leader"] {
        assert!(header.contains(column), "{table}");
    }
    let config = Pgha::new()
        .args(["config", "show"])
        .lab(guard.lab)
        .run()
        .success()
        .stdout();
    assert!(config.contains("loop_wait: 2"), "{config}");
    assert!(config.contains("ttl: 20"), "{config}");
    let json = Pgha::new()
        .args(["config", "show", "-o", "json"])
        .lab(guard.lab)
        .run()
        .success()
        .json();
    assert_eq!(json["retry_timeout"], 5);
}

#[test]
fn inventory_shows_sources_of_secrets_never_values() {
    let guard = Lab::shared().read();
    let run = Pgha::new()
        .args(["inventory", "-o", "json"])
        .lab(guard.lab)
        .run()
        .success();
    let document = run.json();
    let cluster = &document["environments"]["lab"]["demo"];
    assert_eq!(cluster["members"].as_array().unwrap().len(), 3);
    assert!(
        cluster["rest_password_from"]
            .as_str()
            .unwrap()
            .starts_with("file:")
    );
    assert!(
        !run.stdout().contains(&guard.lab.rest_password()),
        "the password never appears"
    );
}

#[test]
fn watch_refreshes_until_interrupted() {
    use std::io::BufRead as _;
    let guard = Lab::shared().read();
    let mut child = Pgha::new()
        .args(["status", "-o", "json", "--watch", "200ms"])
        .lab(guard.lab)
        .spawn();
    // Read documents as they come, whatever the machine's speed: three refreshes, then Ctrl-C.
    let (lines, documents) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut snapshots: Vec<serde_json::Value> = Vec::new();
    while snapshots.len() < 3 {
        let line = documents
            .recv_timeout(Duration::from_secs(30))
            .expect("a refresh within 30 s");
        snapshots.push(serde_json::from_str(&line).expect("one JSON document per line"));
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::INT,
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("pgha status --watch ignored Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = child.wait().unwrap();
    reader.join().unwrap();
    assert!(status.success(), "Ctrl-C ends --watch cleanly: {status:?}");
    let times: Vec<&str> = snapshots
        .iter()
        .map(|snapshot| snapshot["observed_at"].as_str().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|pair| pair[0] < pair[1]),
        "each document is a new observation: {times:?}"
    );
    assert!(
        snapshots
            .iter()
            .all(|snapshot| snapshot["members"].as_array().unwrap().len() == 3)
    );
}
