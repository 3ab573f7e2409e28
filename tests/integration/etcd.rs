//! etcd as a first-class DCS on the shared lab (real etcd 3.4, Patroni 4.1.5): status reads the
//! cluster's keys beside the REST APIs and stands on them with every Patroni stopped; a leader
//! key held by a member whose API is down is critical; `pgha dcs delete-tree` deletes only the
//! cluster's own tree (a sibling scope survives), only with every Patroni down; a run's lock
//! lives in etcd, so two run stores (two machines) cannot run on one cluster at once.

use std::time::{Duration, Instant};

use pgha::dcs::LockHolder;
use pgha::etcd::EtcdLock;

use crate::harness::{Lab, Pgha, block_on, etcd_put as put_key, scratch, wait_until};

fn cluster_keys(lab: &Lab) -> Vec<String> {
    let (settings, client) = lab.etcd_client();
    block_on(client.range_prefix(&settings.cluster_prefix("demo")))
        .unwrap()
        .into_iter()
        .map(|kv| kv.key)
        .collect()
}

fn lab_member(lab: &Lab, action: &str, member: &str) {
    Pgha::new()
        .args(["lab", "member", action, member])
        .lab(lab)
        .run()
        .success();
}

/// Every member started again, the old leader first (it has the newest data), and healthy.
fn restart_all(lab: &Lab, first: &str) {
    lab_member(lab, "start", first);
    for member in ["node1", "node2", "node3"] {
        if member != first {
            lab_member(lab, "start", member);
        }
    }
    wait_until(Duration::from_mins(2), "every member streams again", || {
        let status = lab.status_json();
        status["leader"].is_string()
            && status["members"].as_array().is_some_and(|members| {
                members
                    .iter()
                    .all(|member| member["state"] == "running" || member["state"] == "streaming")
            })
    });
}

#[test]
fn a_killed_leaders_key_is_critical_until_it_expires_and_a_replica_takes_over() {
    let guard = Lab::shared().exclusive();
    let lab = guard.lab;
    let leader = lab.leader();
    lab_member(lab, "kill", &leader);
    // Patroni is gone but its leader key lives until `ttl`: the loudest news.
    let run = Pgha::new()
        .args(["status", "--fail-on", "critical"])
        .lab(lab)
        .run()
        .expect_code(7);
    assert!(
        run.stdout().contains(&format!(
            "{leader} holds the leader key but its REST API does not answer"
        )) || run.stderr().contains(&format!(
            "{leader} holds the leader key but its REST API does not answer"
        )),
        "{}\n{}",
        run.stdout(),
        run.stderr()
    );
    let started = Instant::now();
    wait_until(Duration::from_mins(1), "a replica takes over", || {
        let status = lab.status_json();
        status["leader"].is_string() && status["leader"] != leader.as_str()
    });
    eprintln!(
        "a replica led {:?} after the leader's Patroni was killed",
        started.elapsed()
    );
    // The guard puts the old leader back (`lab up`), as for every test that breaks the lab.
}

#[test]
fn with_every_patroni_stopped_status_reads_etcd_and_delete_tree_takes_only_the_clusters_keys() {
    let guard = Lab::shared().exclusive();
    let lab = guard.lab;
    put_key(lab, "/service/demo2/leader", "a sibling scope, not ours");
    // Patroni running: refused by the pre-checks, nothing deleted.
    let before = cluster_keys(lab);
    assert!(
        before.contains(&"/service/demo/initialize".to_string()),
        "{before:?}"
    );
    Pgha::new()
        .args(["dcs", "delete-tree", "--yes", "--confirm", "demo"])
        .lab(lab)
        .run()
        .expect_code(4);
    assert_eq!(cluster_keys(lab), before);

    let leader = lab.leader();
    for member in ["node1", "node2", "node3"] {
        if member != leader {
            lab_member(lab, "stop", member);
        }
    }
    lab_member(lab, "stop", &leader);
    // No REST API answers: the view stands on etcd's keys. A Patroni stopped cleanly gives up
    // the leader key and records itself `stopped`: no leader, every member as its key says.
    let status = lab.status_json();
    assert!(status["leader"].is_null(), "{status}");
    for member in status["members"].as_array().unwrap() {
        assert_eq!(member["api"], "unreachable", "{member}");
        assert_eq!(member["in_dcs"], true, "{member}");
        assert_eq!(member["state"], "stopped", "{member}");
    }
    assert_eq!(status["warnings"][0]["code"], "no_leader", "{status}");
    assert!(
        status["system_identifier"].is_string(),
        "from the initialize key"
    );
    let dry = Pgha::new()
        .args(["dcs", "delete-tree", "--dry-run"])
        .lab(lab)
        .run()
        .success();
    assert!(
        dry.stdout().contains("/service/demo/initialize"),
        "{}",
        dry.stdout()
    );
    assert!(!dry.stdout().contains("demo2"), "{}", dry.stdout());
    // Without the cluster's name typed, a destructive step does not run.
    Pgha::new()
        .args(["dcs", "delete-tree", "--yes"])
        .lab(lab)
        .run()
        .expect_code(2);
    Pgha::new()
        .args(["dcs", "delete-tree", "--yes", "--confirm", "demo"])
        .lab(lab)
        .run()
        .success();
    assert!(cluster_keys(lab).is_empty(), "{:?}", cluster_keys(lab));
    let (_, client) = lab.etcd_client();
    let sibling = block_on(client.get("/service/demo2/leader")).unwrap();
    assert!(sibling.is_some(), "the sibling scope's key survives");

    // Patroni writes the tree again: the old leader, with its data, takes the lock.
    restart_all(lab, &leader);
    assert!(cluster_keys(lab).contains(&"/service/demo/initialize".to_string()));
    assert_eq!(lab.leader(), leader);
}

#[test]
fn two_run_stores_contend_for_the_etcd_lock_and_a_dead_holder_releases_it() {
    let guard = Lab::shared().exclusive();
    let lab = guard.lab;
    let (_, client) = lab.etcd_client();
    let holder = LockHolder {
        run_id: "20261203-other".into(),
        operator: "alice".into(),
        host: "bastion-2".into(),
        pid: 4242,
        since: "2026-12-03T07:00:00Z".into(),
    };
    // Another machine's run: its own run store, the same cluster.
    let other = block_on(EtcdLock::acquire(&client, client.lock_key("demo"), &holder)).unwrap();
    let runs = scratch();
    let run = Pgha::new()
        .args(["pause", "--yes"])
        .env("PGHA_RUNS_DIR", runs.path())
        .lab(lab)
        .run()
        .expect_code(6);
    assert!(
        run.stderr().contains("/service/pgha-locks/demo")
            && run
                .stderr()
                .contains("run 20261203-other of alice on bastion-2"),
        "{}",
        run.stderr()
    );
    assert_eq!(lab.status_json()["paused"], false, "nothing was done");
    // The holder dies: no keep-alive any more, the lease expires within its TTL.
    drop(other);
    let started = Instant::now();
    wait_until(
        Duration::from_secs(40),
        "the dead holder's lock expires",
        || {
            block_on(client.get("/service/pgha-locks/demo"))
                .unwrap()
                .is_none()
        },
    );
    let released = started.elapsed();
    eprintln!("a dead holder's etcd lock went after {released:?}");
    assert!(
        released <= Duration::from_secs(30),
        "within 2 x TTL: {released:?}"
    );
    Pgha::new()
        .args(["pause", "--yes"])
        .env("PGHA_RUNS_DIR", runs.path())
        .lab(lab)
        .run()
        .success();
    Pgha::new()
        .args(["resume", "--yes"])
        .env("PGHA_RUNS_DIR", runs.path())
        .lab(lab)
        .run()
        .success();
    assert!(
        block_on(client.get("/service/pgha-locks/demo"))
            .unwrap()
            .is_none(),
        "each run released its lock"
    );
}

/// The lab's inventory with its `dcs:` block replaced by `dcs` (lines indented four spaces),
/// written where the test wants it, its relative paths made absolute.
fn inventory_with_dcs(lab: &Lab, dir: &std::path::Path, dcs: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(lab.inventory()).unwrap();
    let base = format!("{}/", lab.dir.display());
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        if line == "    dcs:" {
            skipping = true;
            out.push_str(dcs);
            continue;
        }
        if skipping && line.starts_with("      ") {
            continue;
        }
        skipping = false;
        let line = line
            .replace(
                "password_file: secrets/",
                &format!("password_file: {base}secrets/"),
            )
            .replace("identity_file: ssh/", &format!("identity_file: {base}ssh/"))
            .replace("known_hosts: ssh/", &format!("known_hosts: {base}ssh/"));
        out.push_str(&line);
        out.push('\n');
    }
    crate::harness::write(dir, "pgha.yml", &out)
}

/// A throwaway etcd with authentication on, for the credentials cases: its own address, its own
/// directory, ended by PID when dropped.
struct AuthEtcd {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

const AUTH_ETCD: &str = "127.0.0.91";

impl AuthEtcd {
    fn start() -> AuthEtcd {
        let dir = scratch();
        let client = format!("http://{AUTH_ETCD}:2379");
        let peer = format!("http://{AUTH_ETCD}:2380");
        let child = std::process::Command::new("/usr/bin/etcd")
            .args(["--name", "auth", "--data-dir"])
            .arg(dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("auth={peer}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let etcd = AuthEtcd { child, _dir: dir };
        // pgha's own clients install the TLS provider reqwest needs; make one first.
        let _ = Lab::shared().etcd_client();
        let post = |path: &str, body: serde_json::Value| {
            block_on(async {
                reqwest::Client::new()
                    .post(format!("{client}{path}"))
                    .json(&body)
                    .send()
                    .await
                    .map(|answer| answer.status().is_success())
            })
            .unwrap_or(false)
        };
        wait_until(
            Duration::from_secs(20),
            "the throwaway etcd answers",
            || post("/v3/kv/range", serde_json::json!({ "key": "Lw==" })),
        );
        // A fresh etcd can answer a read before it takes writes (its first election): the user
        // is added once a write is taken, or found there from an attempt the server applied.
        wait_until(Duration::from_secs(20), "the root user exists", || {
            post(
                "/v3/auth/user/add",
                serde_json::json!({ "name": "root", "password": "right-pw" }),
            ) || post("/v3/auth/user/get", serde_json::json!({ "name": "root" }))
        });
        assert!(post(
            "/v3/auth/user/grant",
            serde_json::json!({ "user": "root", "role": "root" })
        ));
        assert!(post("/v3/auth/enable", serde_json::json!({})));
        etcd
    }
}

impl Drop for AuthEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn etcd_settings_that_cannot_work_are_one_line_and_nothing_runs() {
    let guard = Lab::shared().read();
    let lab = guard.lab;
    let dir = scratch();
    let status = |inventory: &std::path::Path| {
        Pgha::new()
            .args(["status", "--env", "lab", "-c"])
            .arg_path(inventory)
            .env("PGHA_TEST_ETCD_PW", "wrong-pw")
    };
    // A namespace without its leading slash: the inventory's fault, named.
    let path = inventory_with_dcs(
        lab,
        dir.path(),
        "    dcs:\n      kind: etcd\n      hosts: [127.0.0.40:2379]\n      namespace: service\n",
    );
    let run = status(&path).run().expect_code(2);
    assert!(
        run.one_error_line().contains("dcs.namespace")
            && run.one_error_line().contains("must start with '/'"),
        "{}",
        run.stderr()
    );
    // https to a plain-HTTP etcd: a TLS mismatch, one line naming the endpoint.
    let path = inventory_with_dcs(
        lab,
        dir.path(),
        "    dcs:\n      kind: etcd\n      scheme: https\n      hosts: [127.0.0.40:2379]\n",
    );
    let run = status(&path).run().expect_code(2);
    let line = run.one_error_line();
    assert!(
        line.contains("127.0.0.40:2379") && line.contains("TLS"),
        "{line}"
    );
    // Nobody at that endpoint: status says so and shows Patroni's view; a runbook cannot take
    // its lock there and does nothing.
    let path = inventory_with_dcs(
        lab,
        dir.path(),
        "    dcs:\n      kind: etcd\n      hosts: [127.0.0.40:2399]\n",
    );
    let document = status(&path).args(["-o", "json"]).run().success().json();
    assert!(
        document["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|warning| warning["code"] == "etcd_unreachable"),
        "{document}"
    );
    let runs = scratch();
    let run = Pgha::new()
        .args(["pause", "--yes", "--env", "lab", "-c"])
        .arg_path(&path)
        .env("PGHA_RUNS_DIR", runs.path())
        .run()
        .expect_code(3);
    assert!(
        run.one_error_line().contains("127.0.0.40:2399"),
        "{}",
        run.stderr()
    );
    assert_eq!(lab.status_json()["paused"], false, "nothing was done");
    // Wrong credentials: etcd refuses them; the password is never shown.
    let _etcd = AuthEtcd::start();
    let path = inventory_with_dcs(
        lab,
        dir.path(),
        &format!(
            "    dcs:\n      kind: etcd\n      hosts: [{AUTH_ETCD}:2379]\n      username: root\n      password_env: PGHA_TEST_ETCD_PW\n"
        ),
    );
    let run = status(&path).run().expect_code(2);
    let line = run.one_error_line();
    assert!(
        line.contains("etcd refused the credentials") && line.contains(AUTH_ETCD),
        "{line}"
    );
    assert!(!run.stderr().contains("wrong-pw") && !run.stdout().contains("wrong-pw"));
    // The right ones: status reads that etcd (an empty tree there) beside the members.
    let document = status(&path)
        .env("PGHA_TEST_ETCD_PW", "right-pw")
        .args(["-o", "json"])
        .run()
        .success()
        .json();
    assert_eq!(
        document["etcd"]["keys"],
        serde_json::json!([]),
        "{document}"
    );
}
