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

#[test]
fn a_cluster_on_2_1_7_is_upgraded_to_4_1_5_member_by_member() {
    let lab = Lab::dedicated("upgrade", "127.0.0.111", &["--patroni-version", "2.1.7"]);
    let runs = scratch();
    let before = lab.status_json();
    let leader = lab.leader();
    let timeline = before["members"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|member| member["timeline"].as_u64())
        .unwrap();
    let starts = postmaster_starts(&lab);

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
    assert_ne!(new_leader, leader, "one switchover");
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
}
