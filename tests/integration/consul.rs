//! A lab with Consul as Patroni's DCS: real Patroni 4.1.5 on pgha's Consul double, with
//! `register_service: true`. Patroni itself validates the double (bootstrap, replication,
//! switchover, failover on session expiry); pgha reads the registrations, deletes the
//! cluster's tree and takes its run lock there.

use std::time::{Duration, Instant};

use pgha::consul::{ConsulClient, ConsulLock};
use pgha::dcs::LockHolder;

use crate::harness::{Lab, Pgha, block_on, entry, wait_until};

fn consul_keys(lab: &Lab) -> Vec<String> {
    let (settings, client) = lab.consul_client();
    block_on(client.keys(&settings.cluster_prefix("demo"))).unwrap()
}

/// A plain KV write, as `consul kv put` would do it: pgha itself never writes keys but locks.
fn put_key(client_address: &str, key: &str, value: &str) {
    let url = format!("{client_address}/v1/kv/{key}");
    let answer = block_on(async {
        reqwest::Client::new()
            .put(&url)
            .body(value.to_string())
            .send()
            .await?
            .text()
            .await
    })
    .unwrap();
    assert_eq!(answer.trim(), "true", "PUT {url}");
}

/// The members passing with `tag`, as a client of `<tag>.demo.service.consul` finds them.
fn passing(client: &ConsulClient, tag: &str) -> Vec<String> {
    let mut names: Vec<String> = block_on(client.health("demo", Some(tag), true))
        .unwrap()
        .into_iter()
        .map(|instance| instance.id.trim_start_matches("demo/").to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn patroni_runs_on_the_double_and_status_shows_each_registration() {
    let guard = Lab::consul().read();
    let lab = guard.lab;
    let document = lab.status_json();
    let leader = document["leader"].as_str().unwrap().to_string();
    assert!(
        document["warnings"].as_array().unwrap().is_empty(),
        "{document}"
    );
    for member in ["node1", "node2", "node3"] {
        let record = entry(&document, "members", member);
        let consul = &record["consul"];
        assert_eq!(consul["registered"], true, "{record}");
        assert_eq!(consul["service_id"], format!("demo/{member}"));
        assert_eq!(consul["status"], "passing", "{record}");
        let tags: Vec<&str> = consul["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|tag| tag.as_str().unwrap())
            .collect();
        if member == leader {
            assert_eq!(tags, ["primary", "master"]);
        } else {
            assert_eq!(record["state"], "streaming");
            assert_eq!(tags, ["replica"]);
        }
    }
    let consul = &document["consul"];
    assert_eq!(consul["service"], "demo");
    assert_eq!(consul["prefix"], "service/demo/");
    assert_eq!(
        consul["passing_primary"],
        serde_json::json!([format!("demo/{leader}")])
    );
    let keys = consul_keys(lab);
    for key in ["config", "initialize", "leader", "members/node1", "status"] {
        assert!(keys.contains(&format!("service/demo/{key}")), "{keys:?}");
    }
    let table = lab.status_table();
    assert!(table.contains("| Consul "), "{table}");
    assert!(table.contains("primary,master passing"), "{table}");
    assert!(
        table.contains(" Consul http://127.0.0.60:8500: service demo"),
        "{table}"
    );
    let components = lab.lab_status_json();
    assert_eq!(
        entry(&components, "components", "consul (double)")["running"],
        true
    );
}

#[test]
fn a_switchover_moves_the_tags_and_the_run_holds_a_consul_lock() {
    let guard = Lab::consul().exclusive();
    let lab = guard.lab;
    let (_, client) = lab.consul_client();
    let leader = lab.leader();
    let candidate = lab.replica();

    // Another operator's run holds the cluster: refused, nothing done.
    let holder = LockHolder {
        run_id: "20261123-other".into(),
        operator: "alice".into(),
        host: "bastion-2".into(),
        pid: 4242,
        since: "2026-11-23T23:00:00Z".into(),
    };
    let other = block_on(ConsulLock::acquire(&client, "demo", &holder)).unwrap();
    let run = Pgha::new()
        .args(["switchover", "--yes", "--candidate", &candidate])
        .lab(lab)
        .run()
        .expect_code(6);
    let line = run.stderr();
    assert!(
        line.contains("pgha/locks/demo")
            && line.contains("run 20261123-other of alice on bastion-2"),
        "{line}"
    );
    assert_eq!(lab.leader(), leader, "nothing was done");
    block_on(other.release());

    let started = Instant::now();
    let run = Pgha::new()
        .args(["switchover", "--yes", "--candidate", &candidate])
        .lab(lab)
        .run()
        .success();
    eprintln!(
        "switchover with Consul routing verified in {:?}",
        started.elapsed()
    );
    assert!(
        run.stderr()
            .contains("Wait until Consul routes primary traffic to"),
        "{}",
        run.stderr()
    );
    // pgha verified it; look again from outside.
    assert_eq!(
        passing(&client, "primary"),
        std::slice::from_ref(&candidate)
    );
    assert!(passing(&client, "replica").contains(&leader));
    let lock = block_on(client.get("pgha/locks/demo")).unwrap();
    assert!(lock.is_none(), "the run released its lock: {lock:?}");
}

#[test]
fn killing_the_leaders_patroni_expires_its_session_and_a_replica_takes_over() {
    let guard = Lab::consul().exclusive();
    let lab = guard.lab;
    let (_, client) = lab.consul_client();
    let leader = lab.leader();
    Pgha::new()
        .args(["lab", "member", "kill", &leader])
        .lab(lab)
        .run()
        .success();
    let killed = Instant::now();
    // ttl 20: the session ends 2 × 10 s after its last renewal, the leader key goes with it.
    wait_until(Duration::from_mins(1), "another member leads", || {
        let document = lab.status_json();
        document["leader"]
            .as_str()
            .is_some_and(|name| name != leader)
    });
    eprintln!("failover after {:?}", killed.elapsed());
    let keys = consul_keys(lab);
    assert!(
        !keys.contains(&format!("service/demo/members/{leader}")),
        "the dead member's key went with its session: {keys:?}"
    );
    // The dead leader stays in the catalog, tagged primary but critical: never trust tags alone.
    let document = lab.status_json();
    let record = entry(&document, "members", &leader);
    assert_ne!(record["consul"]["status"], "passing", "{record}");
    wait_until(Duration::from_secs(30), "one passing primary", || {
        passing(&client, "primary").len() == 1
    });
    assert_ne!(passing(&client, "primary"), [leader]);
}

#[test]
fn delete_tree_refuses_foreign_prefixes_and_running_patroni_then_deletes_only_the_clusters_keys() {
    let guard = Lab::consul().exclusive();
    let lab = guard.lab;
    let (settings, _) = lab.consul_client();
    let address = settings.addresses[0].clone();
    put_key(&address, "service/demo2/leader", "not ours");

    let run = Pgha::new()
        .args([
            "consul",
            "delete-tree",
            "--prefix",
            "service/demo2",
            "--yes",
            "--confirm",
            "demo",
        ])
        .lab(lab)
        .run()
        .expect_code(4);
    assert!(
        run.stderr().contains("is not cluster demo's own prefix"),
        "{}",
        run.stderr()
    );

    // Patroni running everywhere: the pre-checks refuse, nothing is deleted.
    let before = consul_keys(lab);
    Pgha::new()
        .args(["consul", "delete-tree", "--yes", "--confirm", "demo"])
        .lab(lab)
        .run()
        .expect_code(4);
    assert_eq!(consul_keys(lab), before);

    let leader = lab.leader();
    let mut order: Vec<String> = ["node1", "node2", "node3"]
        .iter()
        .filter(|name| **name != leader)
        .map(ToString::to_string)
        .collect();
    order.push(leader.clone());
    for member in &order {
        Pgha::new()
            .args(["lab", "member", "stop", member])
            .lab(lab)
            .run()
            .success();
    }
    let dry = Pgha::new()
        .args(["consul", "delete-tree", "--dry-run"])
        .lab(lab)
        .run()
        .success();
    assert!(
        dry.stdout().contains("service/demo/initialize"),
        "{}",
        dry.stdout()
    );
    // Without the cluster's name typed, a destructive step does not run.
    Pgha::new()
        .args(["consul", "delete-tree", "--yes"])
        .lab(lab)
        .run()
        .expect_code(2);
    Pgha::new()
        .args(["consul", "delete-tree", "--yes", "--confirm", "demo"])
        .lab(lab)
        .run()
        .success();
    assert!(consul_keys(lab).is_empty());
    let (settings, client) = lab.consul_client();
    assert!(
        block_on(client.get("service/demo2/leader"))
            .unwrap()
            .is_some(),
        "{settings:?}"
    );

    // Patroni writes the tree again: the old leader first, with its data, takes the lock.
    Pgha::new()
        .args(["lab", "member", "start", &leader])
        .lab(lab)
        .run()
        .success();
    wait_until(Duration::from_mins(1), "the old leader leads again", || {
        lab.status_json()["leader"] == leader.as_str()
    });
    assert!(consul_keys(lab).contains(&"service/demo/initialize".to_string()));
}

#[test]
fn consul_not_answering_is_one_line_and_nothing_runs() {
    let guard = Lab::consul().read();
    let lab = guard.lab;
    let replica = lab.replica();
    // An agent address where nothing listens: what a dead agent looks like to pgha.
    let inventory = std::fs::read_to_string(lab.inventory())
        .unwrap()
        .replace("127.0.0.60:8500", "127.0.0.60:8599");
    // Beside the lab's own inventory: its relative paths (secrets, keys) still resolve.
    let path = crate::harness::write(&lab.dir, "pgha-dead-consul.yml", &inventory);
    let started = Instant::now();
    let run = Pgha::new()
        .args(["service", "stop", "--yes", "--member", &replica, "-c"])
        .arg_path(&path)
        .run()
        .expect_code(3);
    assert!(started.elapsed() < Duration::from_secs(10));
    let line = run.one_error_line();
    assert!(
        line.contains("127.0.0.60:8599") && line.contains("Consul did not answer"),
        "{line}"
    );
    assert_eq!(
        entry(&lab.status_json(), "members", &replica)["state"],
        "streaming",
        "nothing was done"
    );
    let status = Pgha::new().args(["status", "-c"]).arg_path(&path).run();
    assert!(
        status.stdout().contains("not answering"),
        "{}",
        status.stdout()
    );
}
