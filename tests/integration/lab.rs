//! The lab itself: idempotent `up`, `status`, member stop/start, spare members and its sshd.

use std::time::Duration;

use crate::harness::{Lab, Pgha, entry, wait_until};

#[test]
fn a_second_up_on_a_healthy_lab_does_nothing() {
    let guard = Lab::shared().read();
    let run = Pgha::new()
        .args(["lab", "up", "--first-address", guard.lab.first_address])
        .lab(guard.lab)
        .run()
        .success();
    assert!(
        run.stderr().contains("lab: already up, nothing to do"),
        "{}",
        run.stderr()
    );
    assert!(
        run.elapsed < Duration::from_secs(5),
        "took {:?}",
        run.elapsed
    );
}

#[test]
fn up_refuses_a_different_shape_for_an_existing_lab() {
    let guard = Lab::shared().read();
    let run = Pgha::new()
        .args([
            "lab",
            "up",
            "--first-address",
            guard.lab.first_address,
            "--members",
            "5",
        ])
        .lab(guard.lab)
        .run()
        .expect_code(2);
    let line = run.one_error_line();
    assert!(
        line.contains("was created with 3 members + 0 spare"),
        "{line}"
    );
    assert!(line.contains("asked for 5 members"), "{line}");
}

#[test]
fn lab_status_lists_every_process() {
    let guard = Lab::shared().read();
    let document = guard.lab.lab_status_json();
    let components = document["components"].as_array().unwrap();
    let names: Vec<&str> = components
        .iter()
        .map(|component| component["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["etcd", "sshd", "alertmanager", "node1", "node2", "node3"]
    );
    assert!(
        components
            .iter()
            .all(|component| component["running"] == true && component["pid"].is_u64())
    );
    assert!(
        components[3..]
            .iter()
            .all(|component| component["postgres_pid"].is_u64())
    );
}

#[test]
fn the_lab_sshd_accepts_its_key_and_verifies_its_host_key() {
    let guard = Lab::shared().read();
    let ssh = |address: &str| {
        std::process::Command::new("ssh")
            .args([
                "-F",
                "/dev/null",
                "-p",
                "2222",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=yes",
            ])
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                guard.lab.dir.join("ssh/known_hosts").display()
            ))
            .arg("-i")
            .arg(guard.lab.dir.join("ssh/id_ed25519"))
            .arg(format!("root@{address}"))
            .arg("echo pgha-lab-ssh-ok")
            .output()
            .unwrap()
    };
    for address in [guard.lab.first_address, "127.0.0.40"] {
        let output = ssh(address);
        assert!(
            output.status.success(),
            "{address}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            "pgha-lab-ssh-ok"
        );
    }
}

#[test]
fn a_stopped_member_leaves_and_rejoins() {
    let guard = Lab::shared().exclusive();
    let member = guard.lab.replica();
    Pgha::new()
        .args(["lab", "member", "stop", &member])
        .lab(guard.lab)
        .run()
        .success();
    let document = guard.lab.lab_status_json();
    let record = entry(&document, "components", &member);
    assert_eq!(record["running"], false);
    assert!(
        record["postgres_pid"].is_null(),
        "stopping Patroni (unpaused) stops PostgreSQL"
    );
    Pgha::new()
        .args(["lab", "member", "start", &member])
        .lab(guard.lab)
        .run()
        .success();
    // The guard's `lab up` waits until it streams again.
}

fn fail_on_critical(lab: &Lab) -> i32 {
    Pgha::new()
        .args(["status", "--fail-on", "critical"])
        .lab(lab)
        .run()
        .code()
}

fn etcd_member(lab: &Lab, action: &str, member: &str) -> String {
    Pgha::new()
        .args(["lab", "dcs", action, "--member", member])
        .lab(lab)
        .run()
        .success()
        .stderr()
}

/// A lab of its own with three etcd members on 127.0.0.80-82 (members on .83-.85: clear of the
/// shared labs at .40-.43, .50-.52, .60-.63 and .70-.73). One etcd member down keeps the
/// quorum; two down lose it: Patroni cannot renew its leader key and demotes the leader (within
/// ttl 20 s; about 9 s measured), while the etcd member left keeps serving the old key — status
/// must still say there is no primary. One member back restores the quorum and a leader.
#[test]
fn three_etcd_members_lose_their_quorum_with_two_down_and_a_leader_returns_with_one_back() {
    const UNHEALTHY: i32 = 7;
    let lab = Lab::dedicated("etcd3", "127.0.0.83", &["--etcd-members", "3"]);
    let document = lab.lab_status_json();
    for (name, address) in [
        ("etcd1", "127.0.0.82:2379"),
        ("etcd2", "127.0.0.81:2379"),
        ("etcd3", "127.0.0.80:2379"),
    ] {
        let component = entry(&document, "components", name);
        assert_eq!(component["address"], address);
        assert!(component["pid"].is_u64(), "{component}");
    }
    let inventory = std::fs::read_to_string(lab.inventory()).unwrap();
    assert!(
        inventory.contains("kind: etcd\n      hosts:\n      - 127.0.0.82:2379\n      - 127.0.0.81:2379\n      - 127.0.0.80:2379\n"),
        "{inventory}"
    );
    assert_eq!(fail_on_critical(&lab), 0);

    let run = Pgha::new()
        .args(["lab", "dcs", "stop", "--member", "4"])
        .lab(&lab)
        .run()
        .expect_code(2);
    assert!(
        run.one_error_line().contains("the lab runs 3 etcd members"),
        "{}",
        run.stderr()
    );

    let said = etcd_member(&lab, "stop", "2");
    assert!(said.contains("etcd keeps its quorum"), "{said}");
    wait_until(
        Duration::from_secs(30),
        "the cluster is fine with 2 of 3 etcd members",
        || fail_on_critical(&lab) == 0,
    );

    let said = etcd_member(&lab, "stop", "3");
    assert!(said.contains("quorum (2) lost"), "{said}");
    let lost = std::time::Instant::now();
    // pgha asks every etcd endpoint: it says the quorum is gone before Patroni acts on it.
    wait_until(
        Duration::from_secs(15),
        "etcd_no_quorum is reported",
        || {
            let status = lab.status_json();
            status["warnings"].as_array().is_some_and(|warnings| {
                warnings.iter().any(|warning| {
                    warning["code"] == "etcd_no_quorum" && warning["severity"] == "critical"
                })
            })
        },
    );
    eprintln!("quorum lost: etcd_no_quorum after {:?}", lost.elapsed());
    wait_until(
        Duration::from_mins(1),
        "status fails on critical (the leader demoted)",
        || fail_on_critical(&lab) == UNHEALTHY,
    );
    eprintln!("quorum lost: critical after {:?}", lost.elapsed());
    // Patroni's reads of the etcd member left can time out now and then (a `dcs_unreachable`
    // moment): the news settles on no_leader.
    wait_until(Duration::from_secs(20), "no_leader comes first", || {
        let status = lab.status_json();
        let first = &status["warnings"][0];
        first["code"] == "no_leader" && first["severity"] == "critical"
    });

    let back = std::time::Instant::now();
    etcd_member(&lab, "start", "2");
    wait_until(Duration::from_mins(1), "a leader runs again", || {
        fail_on_critical(&lab) == 0
    });
    eprintln!("quorum back: a leader after {:?}", back.elapsed());
    assert!(lab.status_json()["leader"].is_string());
    // The guard wipes the lab.
}

/// A replica whose data directory holds files but no database (what deleting a running
/// member's data can leave): Patroni logs "consider doing reinitialize" and waits forever;
/// `pgha lab up` reinitializes it from the leader, once, and the lab is healthy again. The
/// same for one whose control file is gone (PostgreSQL cannot start on what is left, and
/// Patroni retries forever: "failed to start postgres").
#[test]
fn up_reinitializes_a_replica_patroni_waits_to_have_reinitialized() {
    let lab = Lab::shared();
    let _guard = lab.exclusive();
    let replica = lab.replica();
    let member = |action: &str| {
        Pgha::new()
            .args(["lab", "member", action, &replica])
            .lab(lab)
            .run()
            .success();
    };
    member("stop");
    let data = lab.dir.join("members").join(&replica).join("data");
    for entry in std::fs::read_dir(&data).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
    }
    std::fs::write(data.join("postgresql.conf"), "# left behind\n").unwrap();
    member("start");
    let log = lab.dir.join("members").join(&replica).join("patroni.log");
    wait_until(
        Duration::from_secs(30),
        "Patroni asks for a reinitialize",
        || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .last()
                .is_some_and(|line| line.contains("consider doing reinitialize"))
        },
    );
    if let Err(why) = lab.up() {
        panic!("{why}");
    }
    let status = lab.status_json();
    assert_eq!(
        entry(&status, "members", &replica)["state"],
        "streaming",
        "{status}"
    );

    member("stop");
    std::fs::remove_file(data.join("global/pg_control")).unwrap();
    member("start");
    wait_until(
        Duration::from_secs(30),
        "PostgreSQL fails to start and Patroni says so",
        || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .rev()
                .take(5)
                .any(pgha::lab::waits_for_reinitialize)
        },
    );
    if let Err(why) = lab.up() {
        panic!("{why}");
    }
    let status = lab.status_json();
    assert_eq!(
        entry(&status, "members", &replica)["state"],
        "streaming",
        "{status}"
    );
}
