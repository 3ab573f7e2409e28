//! The lab itself: idempotent `up`, `status`, member stop/start, spare members and its sshd.

use std::time::Duration;

use crate::harness::{Lab, Pgha, entry};

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
