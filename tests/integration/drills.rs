//! Seed 003's drills on the shared lab, each healing on its own: PostgreSQL killed on a
//! replica and on the leader, a member's machine crashed (Patroni and PostgreSQL killed at
//! once), a running replica's data deleted. For each, what Patroni does, what `pgha status`
//! says meanwhile, and how long the cluster takes to heal (printed; `bench/drills.sh` measures
//! the same drills several times for the README).

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Lab, Pgha, timeline, wait_until};

/// `pgha lab member ARGS…`, which must succeed.
fn lab_member(lab: &Lab, args: &[&str]) {
    Pgha::new()
        .args(["lab", "member"])
        .args(args)
        .lab(lab)
        .run()
        .success();
}

/// Every member answers, one leader, every replica streaming: the status and the time taken.
fn healed(lab: &Lab, within: Duration, drill: &str) -> (Value, Duration) {
    let started = Instant::now();
    let mut last = Value::Null;
    wait_until(within, &format!("the lab heals after {drill}"), || {
        let output = Pgha::new().args(["status", "-o", "json"]).lab(lab).run();
        if output.code() != 0 {
            return false;
        }
        last = output.json();
        let members = last["members"].as_array().unwrap();
        members.len() == 3
            && members.iter().all(|member| {
                member["role"] == "leader"
                    || (member["role"] == "replica" && member["state"] == "streaming")
            })
            && last["warnings"].as_array().unwrap().is_empty()
    });
    let took = started.elapsed();
    eprintln!("{drill}: healed in {took:.1?}");
    (last, took)
}

/// The leader as `pgha status` reports it now, if there is one.
fn current_leader(lab: &Lab) -> Option<String> {
    let output = Pgha::new().args(["status", "-o", "json"]).lab(lab).run();
    output.json()["leader"].as_str().map(str::to_string)
}

#[test]
fn seed_003_drills_heal_on_their_own() {
    let lab = Lab::shared();
    let _guard = lab.exclusive();
    let before = lab.status_json();

    // PostgreSQL killed on a replica: Patroni starts it again; no failover.
    let replica = lab.replica();
    let leader = lab.leader();
    lab_member(lab, &["kill", &replica, "--postgres"]);
    let (after, _) = healed(lab, Duration::from_mins(1), "postgres killed on a replica");
    assert_eq!(after["leader"], leader.as_str());
    assert_eq!(timeline(&after), timeline(&before));

    // PostgreSQL killed on the leader: Patroni, holding the key, recovers it in place.
    lab_member(lab, &["kill", &leader, "--postgres"]);
    let (after, _) = healed(lab, Duration::from_mins(1), "postgres killed on the leader");
    eprintln!(
        "the leader after its postgres died: {} on timeline {}",
        after["leader"],
        timeline(&after)
    );

    // A running replica's data deleted: PostgreSQL fails, Patroni rebuilds it from the leader.
    let replica = lab.replica();
    lab_member(lab, &["wipe-live", &replica]);
    healed(
        lab,
        Duration::from_mins(2),
        "a running replica's data deleted",
    );

    // The leader's machine crashed: its key expires at ttl, a replica takes over on a new
    // timeline; status says no member answers for the old leader meanwhile.
    let leader = lab.leader();
    let timeline_before = timeline(&lab.status_json());
    let crashed = Instant::now();
    lab_member(lab, &["kill", &leader, "--host"]);
    let status = Pgha::new()
        .args(["status", "-o", "json"])
        .lab(lab)
        .run()
        .json();
    assert!(
        status["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|warning| warning["code"] == "leader_unreachable"
                || warning["code"] == "member_unreachable"),
        "{status}"
    );
    wait_until(Duration::from_mins(1), "a replica takes over", || {
        current_leader(lab).is_some_and(|now| now != leader)
    });
    eprintln!(
        "the leader's machine crashed: a new leader after {:.1?}",
        crashed.elapsed()
    );
    // The key is taken before the promotion ends: the new timeline follows within seconds.
    wait_until(
        Duration::from_secs(20),
        "the new leader on a new timeline",
        || {
            let output = Pgha::new().args(["status", "-o", "json"]).lab(lab).run();
            timeline(&output.json()) > timeline_before
        },
    );
    // The crashed member comes back (the guard's `lab up` would too) and rejoins as a replica.
    lab_member(lab, &["start", &leader]);
    healed(
        lab,
        Duration::from_mins(2),
        "the crashed leader back as a replica",
    );
}
