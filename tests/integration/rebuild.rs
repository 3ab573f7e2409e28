//! Runbooks that rebuild a whole cluster, on labs of their own: `pgha cluster-reinit` throws
//! the lab's cluster away and bootstraps it anew, on etcd and on the Consul double.

use crate::harness::{Lab, Pgha, entry, scratch};

#[test]
fn cluster_reinit_bootstraps_a_new_database_behind_the_flag_and_two_names() {
    let lab = Lab::dedicated("reinit", "127.0.0.131", &[]);
    cluster_reinit_bootstraps_a_new_database(&lab);
}

/// The same on the Consul double (127.0.0.161, Consul on .160): the new members registered
/// again, the new leader tagged `primary`, before the run ends.
#[test]
fn cluster_reinit_on_consul_ends_with_every_member_routed() {
    let lab = Lab::dedicated("reinit-consul", "127.0.0.161", &["--dcs", "consul"]);
    let run = cluster_reinit_bootstraps_a_new_database(&lab);
    assert!(run.contains("consul-routing done in"), "{run}");
    let after = lab.status_json();
    let leader = after["leader"].as_str().unwrap();
    assert_eq!(
        entry(&after, "members", leader)["consul"]["tags"],
        serde_json::json!(["primary", "master"]),
        "{after}"
    );
}

/// Refused without the flag and without both names; then a new database, its old leader
/// leading again, every replica streaming. Returns the run's stderr.
fn cluster_reinit_bootstraps_a_new_database(lab: &Lab) -> String {
    let runs = scratch();
    let before = lab.status_json();
    let leader = before["leader"].as_str().unwrap().to_string();
    let identifier = before["system_identifier"].as_str().unwrap().to_string();
    let reinit = |extra: &[&str]| {
        Pgha::new()
            .args(["cluster-reinit"])
            .args(extra)
            .env("PGHA_RUNS_DIR", runs.path())
            .lab(lab)
            .run()
    };
    let refused = reinit(&["--yes"]).expect_code(4);
    assert!(
        refused
            .one_error_line()
            .contains("--i-understand-data-loss"),
        "{}",
        refused.stderr()
    );
    // --yes answers confirmations, never the names a destructive gate asks for.
    let unconfirmed = reinit(&["--i-understand-data-loss", "--yes", "--confirm", "demo"]);
    assert_ne!(unconfirmed.code(), 0);
    assert!(
        unconfirmed
            .stderr()
            .contains(&format!("--confirm {leader}")),
        "{}",
        unconfirmed.stderr()
    );
    assert_eq!(
        lab.status_json()["system_identifier"],
        identifier.as_str(),
        "nothing done"
    );

    let started = std::time::Instant::now();
    let run = reinit(&[
        "--i-understand-data-loss",
        "--yes",
        "--confirm",
        "demo",
        "--confirm",
        &leader,
    ])
    .success();
    eprintln!("cluster-reinit in {:?}", started.elapsed());
    let after = lab.status_json();
    assert_eq!(after["leader"], leader.as_str(), "{}", run.stderr());
    assert_ne!(
        after["system_identifier"],
        identifier.as_str(),
        "a new database"
    );
    for member in after["members"].as_array().unwrap() {
        if member["name"] != leader.as_str() {
            assert_eq!(member["state"], "streaming", "{member}");
        }
    }
    assert!(after["warnings"].as_array().unwrap().is_empty(), "{after}");
    run.stderr()
}
