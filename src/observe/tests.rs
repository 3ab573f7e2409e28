//! Merging members' answers, fed with responses recorded from real clusters.

use super::testing::{first_replica, healthy, refused, silence_a_replica, target};
use super::*;
use crate::patroni::fixtures::{cluster, recorded, status};

#[test]
fn a_healthy_cluster_of_every_release_has_no_warnings() {
    for release in ["2.1.7", "3.0.4", "3.3.11", "4.1.5"] {
        let (target, observations) = healthy(release);
        let view = merge(&target, observations).unwrap();
        assert!(view.warnings.is_empty(), "{release}: {:?}", view.warnings);
        let leader = view.leader.clone().expect("a leader");
        assert_eq!(
            view.topology_from.as_deref(),
            Some(leader.as_str()),
            "the leader's view is shown"
        );
        assert!(view.system_identifier.is_some());
        assert!(!view.paused);
        for member in &view.members {
            if member.name == leader {
                assert_eq!(member.state(), Some(MemberState::Running));
                assert_eq!(member.receive_lag(), None, "no lag on the leader");
            } else {
                let expected = if release == "2.1.7" {
                    MemberState::Running
                } else {
                    MemberState::Streaming
                };
                assert_eq!(member.state(), Some(expected), "{release} {}", member.name);
                assert!(member.receive_lag().is_some());
                assert!(
                    member.replay_lsn().is_some(),
                    "{release}: replay position from /patroni at least"
                );
                assert!(
                    member.replay_lag().is_some(),
                    "{release}: computed where not reported"
                );
            }
            assert_eq!(member.patroni_version(), Some(release.parse().unwrap()));
        }
    }
}

#[test]
fn an_unreachable_member_keeps_its_dcs_state_and_is_flagged() {
    let (target, mut observations) = healthy("4.1.5");
    let name = silence_a_replica(&mut observations);
    let view = merge(&target, observations).unwrap();
    let member = view.member(&name).unwrap();
    assert!(!member.is_reachable());
    assert_eq!(
        member.state(),
        Some(MemberState::Streaming),
        "the DCS's last word"
    );
    assert!(matches!(
        view.warnings.as_slice(),
        [Warning::MemberUnreachable { member, message }] if *member == name && message.contains("still lists it as replica streaming")
    ));
}

#[test]
fn a_member_missing_from_the_dcs_is_one_warning() {
    let (mut target, mut observations) = healthy("4.1.5");
    target.members.push(MemberTarget {
        name: "node4".into(),
        host: "127.0.0.34".into(),
        api_url: "http://127.0.0.34:8008".into(),
        data_dir: None,
        patroni_config: None,
        log_file: None,
    });
    observations.push(MemberObservation {
        target: target.members[3].clone(),
        status: Err(refused("node4")),
        topology: Err(refused("node4")),
    });
    let view = merge(&target, observations).unwrap();
    assert_eq!(view.warnings.len(), 1, "{:?}", view.warnings);
    assert!(matches!(&view.warnings[0], Warning::NotInCluster { member, .. } if member == "node4"));
    assert_eq!(view.member("node4").unwrap().state(), None);
}

#[test]
fn members_naming_different_leaders_are_flagged() {
    let (target, mut observations) = healthy("4.1.5");
    // One member's view of the DCS names no leader (for example a stale cache).
    let mut headless = observations[0].topology.as_ref().unwrap().clone();
    for member in &mut headless.members {
        member.role = ClusterRole::Replica;
    }
    first_replica(&mut observations).topology = Ok(headless);
    let view = merge(&target, observations).unwrap();
    assert!(
        view.warnings
            .iter()
            .any(|warning| matches!(warning, Warning::LeaderDisagreement { message } if message.contains("says none"))),
        "{:?}",
        view.warnings
    );
}

#[test]
fn a_second_primary_is_flagged() {
    let (target, mut observations) = healthy("4.1.5");
    let replica = first_replica(&mut observations);
    let name = replica.target.name.clone();
    if let Ok(status) = &mut replica.status {
        status.role = PostgresRole::Primary;
    }
    let view = merge(&target, observations).unwrap();
    assert!(view.warnings.iter().any(|warning| matches!(
        warning,
        Warning::LeaderDisagreement { message } if message.starts_with(&format!("{name} runs PostgreSQL as primary"))
    )));
}

#[test]
fn a_member_of_another_cluster_is_flagged() {
    let (mut target, observations) = healthy("3.3.11");
    target.scope = "production".into();
    let view = merge(&target, observations).unwrap();
    assert!(
        view.warnings
            .iter()
            .any(|warning| matches!(warning, Warning::IdentityMismatch { message, .. } if message.contains("belongs to scope \"demo\"")))
    );
}

#[test]
fn a_dcs_member_outside_the_inventory_is_shown_and_flagged() {
    let (mut target, mut observations) = healthy("4.1.5");
    let dropped = target.members.pop().unwrap();
    observations.retain(|observation| observation.target.name != dropped.name);
    let view = merge(&target, observations).unwrap();
    let member = view.member(&dropped.name).expect("listed from the DCS");
    assert!(!member.in_inventory);
    assert!(member.dcs.is_some());
    assert!(
        view.warnings
            .iter()
            .any(|warning| matches!(warning, Warning::NotInInventory { .. }))
    );
}

/// A 2.1.7 leader in a 4.1.5 cluster: its `/cluster` says `running` for replicas (its version
/// does not know `streaming`), but the replicas' own answers say they stream.
#[test]
fn a_mixed_cluster_is_normalised_to_the_newest_knowledge() {
    let (target, mut observations) = healthy("4.1.5");
    let old_view = cluster(&recorded("2.1.7", "cluster_from_leader"));
    let old_leader = status(&recorded("2.1.7", "patroni_leader"));
    let leader_name = observations
        .iter()
        .find(|observation| {
            observation
                .status
                .as_ref()
                .is_ok_and(|status| status.role.is_leader())
        })
        .map(|observation| observation.target.name.clone())
        .unwrap();
    for observation in &mut observations {
        // The 2.1.7 view lists the same names, so it can stand for the cluster's DCS view.
        let mut view = old_view.clone();
        for member in &mut view.members {
            member.role = if member.name == leader_name {
                ClusterRole::Leader
            } else {
                ClusterRole::Replica
            };
            member.state = MemberState::Running;
        }
        observation.topology = Ok(view);
        if observation.target.name == leader_name {
            let mut leader = old_leader.clone();
            leader.system_identifier = observation
                .status
                .as_ref()
                .unwrap()
                .system_identifier
                .clone();
            observation.status = Ok(leader);
        }
    }
    let view = merge(&target, observations).unwrap();
    assert!(view.warnings.is_empty(), "{:?}", view.warnings);
    let leader = view.member(&leader_name).unwrap();
    assert_eq!(leader.role(), Some(ClusterRole::Leader));
    assert_eq!(leader.patroni_version(), Some(Version::new(2, 1, 7)));
    for replica in view
        .members
        .iter()
        .filter(|member| member.name != leader_name)
    {
        assert_eq!(
            replica.state(),
            Some(MemberState::Streaming),
            "{}: own /patroni wins",
            replica.name
        );
        assert_eq!(replica.patroni_version(), Some(Version::new(4, 1, 5)));
    }
}

#[test]
fn nobody_answering_is_an_error_naming_every_member() {
    let target = target(&["node1", "node2"]);
    let observations = target
        .members
        .iter()
        .map(|member| MemberObservation {
            target: member.clone(),
            status: Err(refused(&member.name)),
            topology: Err(refused(&member.name)),
        })
        .collect();
    let error = merge(&target, observations).unwrap_err();
    assert_eq!(error.exit(), Exit::Unreachable);
    let message = error.to_string();
    assert!(message.starts_with("no member of cluster demo answered"));
    assert!(message.contains("node1") && message.contains("node2"));
}

#[test]
fn the_same_tls_failure_everywhere_is_reported_once_as_bad_input() {
    let target = target(&["node1", "node2"]);
    let tls = |member: &MemberTarget| PatroniError::Tls {
        url: format!("{}/patroni", member.api_url),
        reason: "invalid peer certificate: UnknownIssuer".into(),
    };
    let observations = target
        .members
        .iter()
        .map(|member| MemberObservation {
            target: member.clone(),
            status: Err(tls(member)),
            topology: Err(tls(member)),
        })
        .collect();
    let error = merge(&target, observations).unwrap_err();
    assert_eq!(error.exit(), Exit::BadInput);
    assert!(error.to_string().contains("UnknownIssuer"));
    assert!(!error.to_string().contains('\n'));
}

#[test]
fn pause_is_seen_from_the_dcs_view() {
    let (target, mut observations) = healthy("4.1.5");
    for observation in &mut observations {
        observation.topology = Ok(cluster(&recorded("4.1.5", "cluster_paused")));
    }
    assert!(merge(&target, observations).unwrap().paused);
}

#[test]
fn an_unknown_lag_is_computed_from_positions_when_possible() {
    let (target, mut observations) = healthy("4.1.5");
    for observation in &mut observations {
        if let Ok(topology) = &mut observation.topology {
            for member in &mut topology.members {
                if !member.role.is_leader() {
                    // What a 4.1.5 leader says about a member running Patroni 2.1.7.
                    member.receive_lag = Some(Lag::Unknown);
                    member.replay_lag = Some(Lag::Unknown);
                    member.lag = Some(Lag::Unknown);
                }
            }
        }
    }
    let view = merge(&target, observations).unwrap();
    for member in view.members.iter().filter(|member| !member.is_leader()) {
        assert!(
            matches!(member.receive_lag(), Some(Lag::Bytes(_))),
            "{}",
            member.name
        );
        assert!(
            matches!(member.replay_lag(), Some(Lag::Bytes(_))),
            "{}",
            member.name
        );
    }
}

/// What members answer once the DCS is gone and the leader has demoted itself: `/patroni` says
/// replica, `/cluster` fails (Patroni reads the DCS for it).
fn without_dcs(observations: &mut [MemberObservation], leader_demoted: bool) {
    for observation in observations {
        observation.topology = Err(PatroniError::Connect {
            url: format!("{}/cluster", observation.target.api_url),
            reason: "connection closed before message completed".into(),
        });
        if let Ok(status) = &mut observation.status
            && leader_demoted
        {
            status.role = PostgresRole::Replica;
            status.cluster_unlocked = true;
        }
    }
}

#[test]
fn a_cluster_whose_dcs_nobody_can_read_has_no_leader_first_and_loudly() {
    let (target, mut observations) = healthy("4.1.5");
    without_dcs(&mut observations, true);
    let view = merge(&target, observations).unwrap();
    assert_eq!(view.leader, None);
    let [no_leader, unreadable, ..] = view.warnings.as_slice() else {
        panic!("{:?}", view.warnings)
    };
    assert!(
        matches!(no_leader, Warning::NoLeader { .. }),
        "{no_leader:?}"
    );
    assert_eq!(no_leader.severity(), Severity::Critical);
    let Warning::DcsUnreachable { members, .. } = unreadable else {
        panic!("{unreadable:?}")
    };
    assert_eq!(members.len(), target.members.len(), "every member named");
    assert_eq!(unreadable.severity(), Severity::Critical);
}

#[test]
fn a_leader_key_held_by_a_demoted_member_means_no_leader_first_and_loudly() {
    // etcd without quorum: the isolated member still serves the old leader key, the leader
    // has demoted itself to a replica.
    let (target, mut observations) = healthy("4.1.5");
    for observation in &mut observations {
        if let Ok(status) = &mut observation.status
            && status.role.is_leader()
        {
            status.role = PostgresRole::Replica;
        }
    }
    let view = merge(&target, observations).unwrap();
    assert!(view.leader.is_some(), "the DCS still names it");
    let first = &view.warnings[0];
    assert!(matches!(first, Warning::NoLeader { .. }), "{first:?}");
    assert_eq!(first.severity(), Severity::Critical);
    let expected = format!(
        "no member runs as primary: {} holds the leader key but runs PostgreSQL as replica",
        view.leader.as_deref().unwrap()
    );
    assert!(
        first.message().starts_with(&expected),
        "{}",
        first.message()
    );
}

#[test]
fn a_healthy_cluster_has_no_leader_warning() {
    let (target, observations) = healthy("4.1.5");
    let view = merge(&target, observations).unwrap();
    assert!(
        !view
            .warnings
            .iter()
            .any(|warning| matches!(warning, Warning::NoLeader { .. })),
        "{:?}",
        view.warnings
    );
}

#[test]
fn a_primary_cut_off_from_the_dcs_is_named_before_it_demotes() {
    let (target, mut observations) = healthy("4.1.5");
    without_dcs(&mut observations, false);
    let view = merge(&target, observations).unwrap();
    let message = view.warnings[0].message();
    assert!(
        message.contains("still runs as primary and demotes itself after ttl"),
        "{message}"
    );
    assert!(
        !view
            .warnings
            .iter()
            .any(|warning| matches!(warning, Warning::NoLeader { .. })),
        "a primary still takes writes"
    );
}

#[test]
fn one_replica_that_cannot_read_the_dcs_is_a_warning() {
    let (target, mut observations) = healthy("4.1.5");
    let replica = first_replica(&mut observations);
    replica.topology = Err(refused(&replica.target.name));
    let name = replica.target.name.clone();
    let view = merge(&target, observations).unwrap();
    let unreadable: Vec<&Warning> = view
        .warnings
        .iter()
        .filter(|warning| matches!(warning, Warning::DcsUnreachable { .. }))
        .collect();
    assert_eq!(unreadable.len(), 1, "{:?}", view.warnings);
    assert_eq!(unreadable[0].severity(), Severity::Warning);
    assert!(
        unreadable[0]
            .message()
            .starts_with(&format!("{name} cannot read the DCS"))
    );
}
