//! `pgha rolling-upgrade` on a lab of its own, from Patroni 2.1.7 (role `master`, no `streaming`,
//! the old lag fields) to 4.1.5: the replicas swapped while paused without restarting their
//! PostgreSQL, one switchover, the old leader upgraded as a replica, every member on 4.1.5.

use std::collections::BTreeMap;

use crate::harness::{Lab, Pgha, block_on, scratch};

/// Each member's PostgreSQL start time, from its own `/patroni`.
fn postmaster_starts(lab: &Lab) -> BTreeMap<String, Option<String>> {
    let (target, client) = lab.client();
    target
        .members
        .iter()
        .map(|member| {
            let started = block_on(client.status(&member.api_url))
                .ok()
                .and_then(|status| status.postmaster_start_time);
            (member.name.clone(), started)
        })
        .collect()
}

/// `BEGIN` and a long sleep on `member` through psql, ended (by its PID) when dropped.
struct OpenTransaction(std::process::Child);

impl Drop for OpenTransaction {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn open_transaction(lab: &Lab, member: &str) -> OpenTransaction {
    let password = std::fs::read_to_string(lab.dir.join("secrets/superuser-password")).unwrap();
    let (target, _) = lab.client();
    let host = target.member(member).unwrap().host.clone();
    let child = std::process::Command::new("/usr/lib/postgresql/15/bin/psql")
        .args(["-h", &host, "-U", "postgres", "-d", "postgres", "-c"])
        // The server cancels the sleep at 18 s: the transaction ends even though a killed psql
        // would leave its backend sleeping.
        .arg("SET statement_timeout = '18s'; BEGIN; SELECT txid_current(); SELECT pg_sleep(60);")
        .env("PGPASSWORD", password.trim())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    OpenTransaction(child)
}

/// Ctrl-C (SIGINT) while the cluster is paused for a replica's swap: the run stops after the
/// action in flight and turns maintenance mode off on its way out.
fn interrupted_while_paused_leaves_the_cluster_resumed(
    lab: &Lab,
    runs: &std::path::Path,
    to: &str,
) {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pgha"))
        .args(["rolling-upgrade", "--to", to, "--yes"])
        .env("PGHA_LAB_DIR", &lab.dir)
        .env("PGHA_RUNS_DIR", runs)
        .env("XDG_CONFIG_HOME", "/nonexistent-pgha-test-config")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    for line in stderr.lines().map_while(Result::ok) {
        let stop = line.contains("] Stop Patroni on");
        seen.push(line);
        if stop {
            break;
        }
    }
    assert!(
        lab.status_json()["paused"] == true,
        "paused when interrupted: {seen:?}"
    );
    // Ctrl-C, to the child this test spawned, by its PID.
    let signalled = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(signalled.success());
    let status = child.wait().unwrap();
    assert!(!status.success(), "an interrupted run does not succeed");
    assert_eq!(
        lab.status_json()["paused"],
        false,
        "maintenance mode turned off on the way out"
    );
}

#[test]
fn a_cluster_on_2_1_7_is_upgraded_to_4_1_5_member_by_member() {
    let lab = Lab::dedicated("upgrade", "127.0.0.111", &["--patroni-version", "2.1.7"]);
    let runs = scratch();
    let leader = lab.leader();

    // The leader cannot be the candidate: it is the last member upgraded.
    let refused = Pgha::new()
        .args([
            "rolling-upgrade",
            "--to",
            "4.1.5",
            "--yes",
            "--candidate",
            &leader,
        ])
        .env("PGHA_RUNS_DIR", runs.path())
        .lab(&lab)
        .run()
        .expect_code(4);
    assert!(
        refused
            .one_error_line()
            .contains("only a replica this run upgrades"),
        "{}",
        refused.stderr()
    );

    // A transaction open 16 s on the leader: refused before anything is paused (exit 4).
    let opened = std::time::Instant::now();
    let transaction = open_transaction(&lab, &leader);
    std::thread::sleep(std::time::Duration::from_secs(16));
    let refused = Pgha::new()
        .args(["rolling-upgrade", "--to", "4.1.5", "--yes"])
        .env("PGHA_RUNS_DIR", runs.path())
        .lab(&lab)
        .run()
        .expect_code(4);
    assert!(
        refused
            .one_error_line()
            .contains("a transaction has been open"),
        "{}",
        refused.stderr()
    );
    assert_eq!(lab.status_json()["paused"], false, "nothing was paused");
    std::thread::sleep(std::time::Duration::from_secs(19).saturating_sub(opened.elapsed()));
    drop(transaction);

    let before = lab.status_json();
    let timeline = before["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|member| member["timeline"].as_u64())
        .max()
        .unwrap();
    let starts = postmaster_starts(&lab);

    let started = std::time::Instant::now();
    let run = Pgha::new()
        .args(["rolling-upgrade", "--to", "4.1.5", "--yes"])
        .env("PGHA_RUNS_DIR", runs.path())
        .lab(&lab)
        .run()
        .success();
    eprintln!("rolling upgrade 2.1.7 -> 4.1.5 in {:?}", started.elapsed());
    assert!(
        run.stderr().contains("Turn maintenance mode on"),
        "{}",
        run.stderr()
    );

    let after = lab.status_json();
    assert_eq!(after["paused"], false, "{after}");
    let new_leader = after["leader"].as_str().unwrap().to_string();
    assert_ne!(new_leader, leader, "one switchover: {}", run.stderr());
    for member in after["members"].as_array().unwrap() {
        assert_eq!(member["patroni_version"], "4.1.5", "{member}");
        assert_eq!(member["timeline"].as_u64(), Some(timeline + 1), "{member}");
    }
    // The replicas' PostgreSQL kept running through their Patroni swap.
    let now = postmaster_starts(&lab);
    for (name, started) in &starts {
        if *name != leader {
            assert_eq!(&now[name], started, "{name}'s PostgreSQL did not restart");
        }
    }
    // Nothing to do the second time.
    Pgha::new()
        .args(["rolling-upgrade", "--to", "4.1.5", "--yes"])
        .env("PGHA_RUNS_DIR", runs.path())
        .lab(&lab)
        .run()
        .expect_code(4);
    // Going back to 2.1.7, interrupted while paused: maintenance mode is turned off on the way
    // out. (The lab is wiped afterwards.)
    interrupted_while_paused_leaves_the_cluster_resumed(&lab, runs.path(), "2.1.7");
}
