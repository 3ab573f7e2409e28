//! `pgha failover` on the shared lab. With a healthy leader it is refused unless that leader's
//! name is typed (`--yes` is not enough), and nothing changes. The incident it is for: the
//! cluster paused for maintenance, its leader's machine crashed, nobody leads once the key
//! expires (a paused Patroni promotes no one) — the replica is promoted, verified leading on a
//! new timeline with the other replica streaming from it; then the cluster is resumed and the
//! crashed member rejoins as a replica.

use std::time::{Duration, Instant};

use crate::harness::{Lab, Pgha, fingerprint, timeline, wait_until};

#[test]
fn a_leaderless_paused_cluster_is_failed_over_and_a_healthy_leader_needs_its_name() {
    let lab = Lab::shared();
    let _guard = lab.exclusive();
    let leader = lab.leader();
    let candidate = lab.replica();

    let before = fingerprint(lab);
    let refused = Pgha::new()
        .args(["failover", "--candidate", &candidate, "--yes"])
        .lab(lab)
        .run()
        .expect_code(2);
    assert!(
        refused
            .one_error_line()
            .contains(&format!("pass --confirm {leader} (--yes is not enough)")),
        "{}",
        refused.stderr()
    );
    assert_eq!(fingerprint(lab), before, "refused: nothing changed");

    Pgha::new()
        .args(["pause", "--yes"])
        .lab(lab)
        .run()
        .success();
    Pgha::new()
        .args(["lab", "member", "kill", &leader, "--host"])
        .lab(lab)
        .run()
        .success();
    let crashed = Instant::now();
    wait_until(Duration::from_mins(1), "the leader key expires", || {
        lab.status_json()["leader"].is_null()
    });
    eprintln!("no leader {:.1?} after the crash", crashed.elapsed());
    let timeline_before = timeline(&lab.status_json());

    let started = Instant::now();
    let run = Pgha::new()
        .args(["failover", "--candidate", &candidate, "--yes"])
        .lab(lab)
        .run()
        .success();
    eprintln!("failed over in {:.1?}", started.elapsed());
    assert!(
        run.stderr().contains(&format!("the leader is {candidate}")),
        "{}",
        run.stderr()
    );
    let after = lab.status_json();
    assert_eq!(after["leader"], candidate.as_str());
    assert!(timeline(&after) > timeline_before, "{after}");
    let follower = after["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|member| member["name"] != leader.as_str() && member["name"] != candidate.as_str())
        .unwrap();
    assert_eq!(follower["state"], "streaming", "{after}");

    // Back to normal: resumed, the crashed member started, rejoining as a replica.
    Pgha::new()
        .args(["resume", "--yes"])
        .lab(lab)
        .run()
        .success();
    Pgha::new()
        .args(["lab", "member", "start", &leader])
        .lab(lab)
        .run()
        .success();
    wait_until(Duration::from_mins(2), "the crashed member rejoins", || {
        let status = lab.status_json();
        status["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|member| member["name"] == candidate.as_str() || member["state"] == "streaming")
    });
}
