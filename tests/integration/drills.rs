//! Seed 003's drills on the shared lab, each healing on its own: PostgreSQL killed on a
//! replica and on the leader, a member's machine crashed (Patroni and PostgreSQL killed at
//! once), a running replica's data deleted (rebuilt by Patroni; or, when files came back first
//! and Patroni waits for a reinitialize, by `pgha reinit`). For each, what Patroni does, what
//! `pgha status` says meanwhile, and how long the cluster takes to heal (printed;
//! `bench/drills.sh` measures the same drills several times for the README).

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

/// The status when every member answers, one leads and every replica streams.
fn healthy_status(lab: &Lab) -> Option<Value> {
    let output = Pgha::new().args(["status", "-o", "json"]).lab(lab).run();
    if output.code() != 0 {
        return None;
    }
    let status = output.json();
    let members = status["members"].as_array().unwrap();
    let healthy = members.len() == 3
        && members.iter().all(|member| {
            member["role"] == "leader"
                || (member["role"] == "replica" && member["state"] == "streaming")
        })
        && status["warnings"].as_array().unwrap().is_empty();
    healthy.then_some(status)
}

/// Every member answers, one leader, every replica streaming: the status and the time taken.
fn healed(lab: &Lab, within: Duration, drill: &str) -> (Value, Duration) {
    let started = Instant::now();
    let mut last = Value::Null;
    wait_until(within, &format!("the lab heals after {drill}"), || {
        healthy_status(lab).map(|status| last = status).is_some()
    });
    let took = started.elapsed();
    eprintln!("{drill}: healed in {took:.1?}");
    (last, took)
}

/// Whether the lab heals within `limit`, without failing the test when it does not.
fn heals_within(lab: &Lab, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if healthy_status(lab).is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    false
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

    // A running replica's data deleted: PostgreSQL fails, and Patroni rebuilds it from the
    // leader — unless files came back before it saw the directory empty (PostgreSQL still
    // writing, Patroni writing its configuration): then Patroni waits for a reinitialize
    // ("consider doing reinitialize", or PostgreSQL failing to start on what is left: seen
    // in CI), says so in its log, and `pgha reinit` is the remedy.
    let replica = lab.replica();
    let wiped = Instant::now();
    lab_member(lab, &["wipe-live", &replica]);
    if heals_within(lab, Duration::from_secs(90)) {
        eprintln!(
            "a running replica's data deleted: rebuilt by Patroni in {:.1?}",
            wiped.elapsed()
        );
    } else {
        let log =
            std::fs::read_to_string(lab.dir.join("members").join(&replica).join("patroni.log"))
                .unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        assert!(
            tail.iter()
                .any(|line| pgha::lab::waits_for_reinitialize(line)),
            "not healed, and not waiting for a reinitialize: {tail:?}"
        );
        lab.reinit(&replica);
        healed(
            lab,
            Duration::from_mins(2),
            "a running replica's data deleted, then reinitialized by pgha",
        );
    }

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
