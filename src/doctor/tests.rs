//! Each finding provoked on a recorded 4.1.5 cluster (node3 leading), and its absence on the
//! healthy one.

use serde_json::json;

use super::*;
use crate::inventory::DcsSettings;
use crate::observe::testing::{led_by, silence_a_replica};
use crate::observe::{MemberObservation, merge};

fn healthy_config() -> Value {
    json!({"ttl": 30, "loop_wait": 10, "retry_timeout": 10, "failsafe_mode": false})
}

/// The findings for the recorded cluster after `change`, with `config` and `slots`.
fn findings_after(
    change: impl FnOnce(&mut ClusterTarget, &mut Vec<MemberObservation>),
    config: Value,
    slots: Option<Result<Vec<InactiveSlot>, String>>,
) -> Vec<Finding> {
    let (mut target, mut observations) = led_by("4.1.5", "node3", Some(1));
    change(&mut target, &mut observations);
    let view = merge(&target, observations).unwrap();
    diagnose(&Inputs {
        target: &target,
        view: &view,
        config: Ok(config),
        slots,
        hba: None,
        disk: None,
        min_free_disk: Percent::DEFAULT_MIN_FREE_DISK,
    })
}

/// The disk findings for the healthy recorded cluster whose leader reads `disk`.
fn disk_findings(disk: Result<DiskUsage, String>, min_free: &str) -> Vec<Finding> {
    let (target, observations) = led_by("4.1.5", "node3", Some(1));
    let view = merge(&target, observations).unwrap();
    diagnose(&Inputs {
        target: &target,
        view: &view,
        config: Ok(healthy_config()),
        slots: None,
        hba: None,
        disk: Some(disk),
        min_free_disk: Percent::parse(min_free).unwrap(),
    })
    .into_iter()
    .filter(|finding| finding.code.contains("disk"))
    .collect()
}

#[test]
fn the_leaders_disk_is_a_warning_below_the_threshold_and_critical_below_a_third() {
    let usage = |available| DiskUsage {
        size: 100 << 30,
        available,
    };
    assert!(disk_findings(Ok(usage(20 << 30)), "15").is_empty());
    let low = disk_findings(Ok(usage(10 << 30)), "15");
    assert_eq!(low[0].severity, Severity::Warning);
    assert_eq!(low[0].member.as_deref(), Some("node3"));
    assert!(
        low[0].seen.contains("10.0 GiB free of 100.0 GiB (10.0 %)"),
        "{}",
        low[0].seen
    );
    assert_eq!(
        disk_findings(Ok(usage(4 << 30)), "15")[0].severity,
        Severity::Critical
    );
    let unread = disk_findings(Err("ssh: connection refused".into()), "15");
    assert_eq!(
        (unread[0].code.as_str(), unread[0].severity),
        ("disk_unread", Severity::Info)
    );
}

#[test]
fn df_output_and_percentages_are_parsed_or_refused() {
    assert_eq!(
        DiskUsage::parse("1000 250\n"),
        Ok(DiskUsage {
            size: 1000,
            available: 250
        })
    );
    for bad in ["", "1000", "0 0", "a b", "1 2 3"] {
        assert!(DiskUsage::parse(bad).is_err(), "{bad:?}");
    }
    assert_eq!(Percent::parse("15%"), Ok(Percent(15.0)));
    for bad in ["-1", "101", "x", "NaN"] {
        assert!(Percent::parse(bad).is_err(), "{bad:?}");
    }
}

fn codes(findings: &[Finding]) -> Vec<&str> {
    findings
        .iter()
        .map(|finding| finding.code.as_str())
        .collect()
}

fn status_of<'a>(
    observations: &'a mut [MemberObservation],
    name: &str,
) -> &'a mut crate::patroni::MemberStatus {
    observations
        .iter_mut()
        .find(|observation| observation.target.name == name)
        .unwrap()
        .status
        .as_mut()
        .unwrap()
}

#[test]
fn a_healthy_cluster_has_no_finding() {
    let findings = findings_after(|_, _| {}, healthy_config(), Some(Ok(Vec::new())));
    assert_eq!(findings, []);
}

#[test]
fn timing_that_lets_the_leader_key_expire_while_retrying_is_found() {
    let config = json!({"ttl": 20, "loop_wait": 10, "retry_timeout": 10});
    let findings = findings_after(|_, _| {}, config, None);
    assert_eq!(codes(&findings), ["timing"]);
    assert_eq!(
        findings[0].seen,
        "loop_wait 10 s + 2 × retry_timeout 10 s = 30 s, over ttl 20 s"
    );
    // Patroni's defaults (30/10/10) satisfy the rule.
    assert_eq!(findings_after(|_, _| {}, json!({}), None), []);
}

#[test]
fn failsafe_off_with_one_dcs_endpoint_is_found_and_three_endpoints_are_not() {
    let with_hosts = |hosts: &[&str]| {
        let hosts: Vec<String> = hosts.iter().map(|host| (*host).to_string()).collect();
        move |target: &mut ClusterTarget, _: &mut Vec<MemberObservation>| {
            target.dcs = Some(DcsSettings {
                kind: crate::inventory::DcsKind::Etcd,
                hosts,
                token_env: None,
                username: None,
                password_from: None,
            });
        }
    };
    let one = findings_after(with_hosts(&["10.0.0.9:2379"]), healthy_config(), None);
    assert_eq!(codes(&one), ["failsafe_off_single_dcs"]);
    let three = findings_after(
        with_hosts(&["10.0.0.7:2379", "10.0.0.8:2379", "10.0.0.9:2379"]),
        healthy_config(),
        None,
    );
    assert_eq!(three, []);
    let mut failsafe = healthy_config();
    failsafe["failsafe_mode"] = json!(true);
    assert_eq!(
        findings_after(with_hosts(&["10.0.0.9:2379"]), failsafe, None),
        []
    );
}

#[test]
fn mixed_versions_and_pending_restarts_are_found_per_member() {
    let findings = findings_after(
        |_, observations| {
            status_of(observations, "node1").patroni_version =
                Some(crate::patroni::Version::new(3, 3, 11));
            let node2 = status_of(observations, "node2");
            node2.pending_restart = true;
            node2.pending_restart_reason.insert(
                "max_connections".into(),
                crate::patroni::model::PendingChange {
                    old_value: Some(json!(50)),
                    new_value: Some(json!(60)),
                },
            );
        },
        healthy_config(),
        None,
    );
    assert_eq!(
        codes(&findings),
        ["mixed_patroni_versions", "pending_restart"]
    );
    assert_eq!(
        findings[0].seen,
        "members run different Patroni releases: 3.3.11, 4.1.5"
    );
    assert_eq!(
        findings[1].seen,
        "node2 has a restart pending for max_connections"
    );
    assert_eq!(findings[1].member.as_deref(), Some("node2"));
}

#[test]
fn every_replica_tagged_nofailover_leaves_no_candidate() {
    let tag = |names: &'static [&'static str]| {
        move |_: &mut ClusterTarget, observations: &mut Vec<MemberObservation>| {
            for name in names {
                status_of(observations, name)
                    .tags
                    .insert("nofailover".into(), json!(true));
            }
        }
    };
    let all = findings_after(tag(&["node1", "node2"]), healthy_config(), None);
    assert_eq!(codes(&all), ["no_failover_candidate"]);
    assert_eq!(all[0].severity, Severity::Critical);
    assert_eq!(
        all[0].seen,
        "every replica (node1, node2) is tagged nofailover"
    );
    assert_eq!(findings_after(tag(&["node1"]), healthy_config(), None), []);
}

#[test]
fn a_standby_cluster_led_by_a_writable_primary_is_critical() {
    let findings = findings_after(|target, _| target.standby = true, healthy_config(), None);
    assert_eq!(codes(&findings), ["standby_cluster_writable"]);
    assert_eq!(findings[0].severity, Severity::Critical);
    assert_eq!(findings[0].member.as_deref(), Some("node3"));
}

#[test]
fn inactive_slots_holding_wal_are_found_small_ones_are_not() {
    let slots = vec![
        InactiveSlot {
            name: "gone_member".into(),
            holds: 3 << 30,
        },
        InactiveSlot {
            name: "catching_up".into(),
            holds: 1 << 20,
        },
    ];
    let findings = findings_after(|_, _| {}, healthy_config(), Some(Ok(slots)));
    assert_eq!(codes(&findings), ["inactive_slot"]);
    assert_eq!(
        findings[0].seen,
        "inactive replication slot gone_member on node3 holds back 3.0 GiB of WAL"
    );
}

#[test]
fn status_warnings_become_findings_with_why_and_fix_the_worst_first() {
    let findings = findings_after(
        |_, observations| {
            silence_a_replica(observations);
        },
        json!({"ttl": 10, "loop_wait": 10, "retry_timeout": 10}),
        None,
    );
    assert_eq!(codes(&findings), ["member_unreachable", "timing"]);
    let unreachable = &findings[0];
    assert!(unreachable.member.is_some());
    assert!(unreachable.fix.contains("REST API"), "{unreachable:?}");
    assert_eq!(worst(&findings), Some(Severity::Warning));
}

#[test]
fn text_and_markdown_say_what_why_and_fix() {
    let findings = findings_after(
        |_, _| {},
        json!({"ttl": 20, "loop_wait": 10, "retry_timeout": 10}),
        None,
    );
    let (target, observations) = led_by("4.1.5", "node3", Some(1));
    let view = merge(&target, observations).unwrap();
    let text = render_text(&view, &findings);
    assert!(
        text.starts_with("WARNING  timing: loop_wait 10 s"),
        "{text}"
    );
    assert!(text.contains("\n         fix: raise ttl"), "{text}");
    assert!(
        text.ends_with(": 0 critical, 1 warning, 0 info\n"),
        "{text}"
    );
    let markdown = render_markdown(&view, &findings);
    assert!(
        markdown.contains("| warning | `timing` | loop_wait 10 s"),
        "{markdown}"
    );
    assert_eq!(
        render_text(&view, &[]),
        format!("{}: no finding\n", view.cluster)
    );
}

/// The first replica running without streaming, `behind` bytes behind, as every member's
/// `/cluster` and its own `/patroni` say.
fn replica_behind(observations: &mut [MemberObservation], behind: u64) -> String {
    let replica = crate::observe::testing::first_replica(observations);
    let name = replica.target.name.clone();
    let status = replica.status.as_mut().unwrap();
    status.state = MemberState::Running;
    status.replication_state = None;
    for observation in observations.iter_mut() {
        let Ok(topology) = observation.topology.as_mut() else {
            continue;
        };
        for member in topology.members.iter_mut().filter(|m| m.name == name) {
            member.state = MemberState::Running;
            member.lag = Some(Lag::Bytes(behind));
            member.receive_lag = Some(Lag::Bytes(behind));
            member.replay_lag = Some(Lag::Bytes(behind));
        }
    }
    name
}

#[test]
fn a_replica_running_without_streaming_far_behind_is_found() {
    let mut name = String::new();
    let findings = findings_after(
        |_, observations| name = replica_behind(observations, 352 << 20),
        healthy_config(),
        None,
    );
    assert_eq!(codes(&findings), ["replica_not_streaming"]);
    assert_eq!(findings[0].member.as_deref(), Some(name.as_str()));
    assert!(
        findings[0].seen.ends_with(
            "runs but does not stream, 352.0 MiB behind the leader (maximum_lag_on_failover 1.0 MiB)"
        ),
        "{}",
        findings[0].seen
    );
    // Within maximum_lag_on_failover (a replica that just restarted): nothing.
    let findings = findings_after(
        |_, observations| {
            replica_behind(observations, 4096);
        },
        healthy_config(),
        None,
    );
    assert_eq!(codes(&findings), Vec::<&str>::new());
}
