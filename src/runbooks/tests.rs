//! The planners on recorded clusters: which candidate, which members, which gates; and the
//! committed `runbooks/*.md`, which must be exactly what pgha renders for the lab cluster.
//! Regenerate them with `scripts/render-runbooks.sh`.

use std::path::PathBuf;
use std::time::Duration;

use super::service::Verb;
use super::*;
use crate::inventory::MemberTarget;
use crate::observe::testing::led_by;
use crate::observe::{ClusterView, merge};
use crate::patroni::{BasicAuth, ClusterRole, Lag, Version};
use crate::plan::{Action, Check, Gate, PatroniCall, SilenceAction, render};
use crate::secret::Secret;

/// The lab as `pgha lab up` starts it: node1..3 on 127.0.0.11-13, node1 leading, REST user
/// `patroni`, environment `lab`. Built from responses recorded from a real 4.1.5 cluster.
pub(crate) fn lab() -> (ClusterTarget, ClusterView) {
    let (target, observations) = lab_observed();
    let view = merge(&target, observations).unwrap();
    (target, view)
}

/// The lab's inventory and what its members answered, before merging.
fn lab_observed() -> (ClusterTarget, Vec<crate::observe::MemberObservation>) {
    lab_observed_on("4.1.5")
}

/// `pgha lab up --patroni-version 2.1.7`: every member on the old release, to upgrade.
pub(crate) fn lab_on_old_patroni() -> (ClusterTarget, ClusterView) {
    let (mut target, observations) = lab_observed_on("2.1.7");
    // The lab's inventory names its superuser: the plan re-checks long transactions by SQL.
    target.postgres = Some(crate::postgres::PgSettings {
        user: "postgres".into(),
        password: Some(Secret::new("not-in-any-plan")),
        port: 5432,
        dbname: "postgres".into(),
        sslmode: crate::postgres::SslMode::Disable,
        ca_file: None,
        connect_timeout: Duration::from_secs(2),
        statement_timeout: Duration::from_secs(10),
    });
    let view = merge(&target, observations).unwrap();
    (target, view)
}

/// The same cluster run by Kubernetes: pods of a StatefulSet named after the members.
pub(super) fn kubernetes_on_old_patroni() -> (ClusterTarget, ClusterView) {
    let (mut target, view) = lab_on_old_patroni();
    target.environment = "staging".into();
    target.service = Some(crate::remote::ServiceControl::Kubernetes {
        namespace: "databases".into(),
        pod: "{member}".into(),
        context: None,
        db_user: "postgres".into(),
    });
    (target, view)
}

fn lab_observed_on(release: &str) -> (ClusterTarget, Vec<crate::observe::MemberObservation>) {
    let (mut target, mut observations) = led_by(release, "node1", Some(1));
    target.environment = "lab".into();
    target.origin = "/var/lib/pgha/lab/pgha.yml".into();
    target.service = Some(crate::remote::ServiceControl::Lab {
        pgha: "/usr/local/bin/pgha".into(),
        dir: "/var/lib/pgha/lab".into(),
        db_user: "postgres".into(),
    });
    target.rest.auth = Some(BasicAuth {
        username: "patroni".into(),
        password: Secret::new("not-in-any-plan"),
    });
    target.alertmanager = Some(crate::inventory::AlertmanagerSettings {
        url: "http://127.0.0.10:9093".into(),
        matchers: [
            ("alertname", "PostgresReplicationLagHigh"),
            ("fqdn", "{host}"),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect(),
        auth: None,
    });
    let relabel = |address: &str| address.replace("127.0.0.3", "127.0.0.1");
    target.members = target
        .members
        .iter()
        .map(|member| MemberTarget {
            name: member.name.clone(),
            host: relabel(&member.host),
            api_url: relabel(&member.api_url),
            data_dir: member.data_dir.clone(),
            patroni_config: Some(format!(
                "/var/lib/pgha/lab/members/{}/patroni.yml",
                member.name
            )),
            log_file: Some(format!(
                "/var/lib/pgha/lab/members/{}/patroni.log",
                member.name
            )),
        })
        .collect();
    for observation in &mut observations {
        observation.target.host = relabel(&observation.target.host);
        observation.target.api_url = relabel(&observation.target.api_url);
        if let Ok(topology) = &mut observation.topology {
            for member in &mut topology.members {
                member.host = member.host.as_deref().map(relabel);
                member.api_url = member.api_url.as_deref().map(relabel);
            }
        }
    }
    (target, observations)
}

/// The lab with `dropped` left out of the inventory: the DCS still lists it, with a host only
/// the DCS names, so the view shows it as a member the inventory does not know.
pub(super) fn lab_without(dropped: &str) -> (ClusterTarget, ClusterView) {
    let (mut target, mut observations) = lab_observed();
    target.members.retain(|member| member.name != dropped);
    observations.retain(|observation| observation.target.name != dropped);
    for observation in &mut observations {
        if let Ok(topology) = &mut observation.topology {
            for member in &mut topology.members {
                if member.name == dropped {
                    member.host = Some(DCS_ONLY_HOST.into());
                }
            }
        }
    }
    let view = merge(&target, observations).unwrap();
    (target, view)
}

/// The host a member outside the inventory published in the DCS.
const DCS_ONLY_HOST: &str = "10.66.0.3";

/// The lab started with `--spare 1`: node4 (127.0.0.14) configured, Patroni not started.
pub(super) fn lab_with_spare() -> (ClusterTarget, ClusterView) {
    let (mut target, _) = lab();
    let spare = MemberTarget {
        name: "node4".into(),
        host: "127.0.0.14".into(),
        api_url: "http://127.0.0.14:8008".into(),
        data_dir: Some("/var/lib/pgha/lab/members/node4/data".into()),
        patroni_config: Some("/var/lib/pgha/lab/members/node4/patroni.yml".into()),
        log_file: Some("/var/lib/pgha/lab/members/node4/patroni.log".into()),
    };
    target.members.push(spare.clone());
    let (_, mut observations) = led_by("4.1.5", "node1", Some(1));
    let relabel = |address: &str| address.replace("127.0.0.3", "127.0.0.1");
    for observation in &mut observations {
        observation.target = target.member(&observation.target.name).cloned().unwrap();
        if let Ok(topology) = &mut observation.topology {
            for member in &mut topology.members {
                member.host = member.host.as_deref().map(relabel);
                member.api_url = member.api_url.as_deref().map(relabel);
            }
        }
    }
    observations.push(crate::observe::MemberObservation {
        target: spare,
        status: Err(crate::observe::testing::refused("127.0.0.14")),
        topology: Err(crate::observe::testing::refused("127.0.0.14")),
    });
    let view = merge(&target, observations).unwrap();
    (target, view)
}

fn scale_up(member: &str) -> Params {
    Params::ScaleUp(scale_up::Params {
        member: member.into(),
        max_lag: DEFAULT_MAX_LAG_BYTES,
        timeout: None,
        need: Some(770 * 1024 * 1024),
    })
}

fn scale_down(member: &str) -> Params {
    Params::ScaleDown(scale_down::Params {
        member: member.into(),
        drain: true,
        drain_timeout: None,
        label: "20261203-041500".into(),
    })
}

fn reinit(member: &str) -> Params {
    Params::Reinit(reinit::Params {
        member: member.into(),
        timeout: None,
        max_lag: DEFAULT_MAX_LAG_BYTES,
    })
}

fn switchover(candidate: Option<&str>) -> Params {
    Params::Switchover(switchover::Params {
        candidate: candidate.map(str::to_string),
        at: None,
        checkpoint: false,
        max_lag: DEFAULT_MAX_LAG_BYTES,
        timeout: None,
    })
}

/// Every runbook as committed in runbooks/, with the parameters the file is named after.
/// The lab started with `--dcs consul`: Patroni registers every member, all passing.
fn consul_lab() -> (ClusterTarget, ClusterView) {
    let (mut target, mut view) = lab();
    target.consul = Some(crate::consul::ConsulSettings {
        addresses: vec!["http://127.0.0.10:8500".into()],
        token: Some(Secret::new("not-in-any-plan")),
        tls: crate::patroni::TlsSettings::default(),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        namespace: "service".into(),
        service: None,
    });
    let mut consul = crate::observe::testing::registered(&view);
    consul.address = "http://127.0.0.10:8500".into();
    consul.keys = Ok([
        "config",
        "failover",
        "history",
        "initialize",
        "leader",
        "members/node1",
        "members/node2",
        "members/node3",
        "status",
    ]
    .iter()
    .map(|key| format!("service/demo/{key}"))
    .collect());
    view.consul = Some(consul);
    (target, view)
}

/// The lab on etcd with every Patroni stopped (as before a tree delete): the view stands on
/// etcd's keys, every member unreachable.
/// The lab's cluster as a standby cluster: node1 leads as `standby_leader`, the inventory
/// marks it `standby: true` and requires a pgBackRest backup under a day old.
pub(super) fn standby_lab() -> (ClusterTarget, ClusterView) {
    let (mut target, mut view) = etcd_lab();
    target.standby = true;
    target.backup = Some(crate::inventory::BackupPolicy {
        tool: crate::inventory::BackupTool::Pgbackrest {
            stanza: "demo".into(),
            config: Some("/var/lib/pgha/lab/pgbackrest/pgbackrest.conf".into()),
        },
        max_age: Duration::from_hours(24),
        refuse_when_older: true,
    });
    for member in &mut view.members {
        if let Ok(status) = &mut member.status
            && status.role.is_leader()
        {
            status.role = crate::patroni::PostgresRole::StandbyLeader;
        }
        if let Some(entry) = &mut member.dcs
            && entry.role.is_leader()
        {
            entry.role = crate::patroni::ClusterRole::StandbyLeader;
        }
    }
    (target, view)
}

pub(super) fn etcd_lab() -> (ClusterTarget, ClusterView) {
    let (target, mut view) = lab();
    let keys = [
        "config",
        "failover",
        "history",
        "initialize",
        "leader",
        "members/node1",
        "members/node2",
        "members/node3",
        "status",
    ]
    .iter()
    .map(|key| crate::etcd::KeyValue {
        key: format!("/service/demo/{key}"),
        value: Vec::new(),
        create_revision: 2,
        mod_revision: 2,
        lease: 0,
    })
    .collect();
    view.etcd = Some(crate::observe::EtcdView {
        endpoint: "http://127.0.0.10:2379".into(),
        prefix: "/service/demo/".into(),
        keys: Ok(keys),
        endpoints: Vec::new(),
    });
    (target, view)
}

/// The lab paused, its leader's machine gone: the key expired, its API silent.
fn leaderless_lab() -> (ClusterTarget, ClusterView) {
    let (target, mut view) = lab();
    let leader = view.leader.take().expect("the lab has a leader");
    view.paused = true;
    if let Some(dead) = view.members.iter_mut().find(|member| member.name == leader) {
        dead.status = Err(crate::observe::ApiFailure {
            unreachable: true,
            message: "connection refused".into(),
        });
        dead.dcs = None;
    }
    (target, view)
}

/// The lab with `pgha switchover --at` done: its leader to node2 at 02:00 UTC.
fn lab_with_scheduled_switchover() -> (ClusterTarget, ClusterView) {
    let (target, mut view) = lab();
    view.scheduled_switchover = Some(crate::patroni::model::ScheduledSwitchover {
        at: Some("2026-11-24T02:00:00+00:00".into()),
        from: view.leader.clone(),
        to: Some("node2".into()),
    });
    (target, view)
}

fn delete_tree(prefix: Option<&str>) -> Params {
    Params::ConsulDeleteTree(consul_delete_tree::Params {
        command: steps::DeleteTreeCommand::DeleteTree {
            prefix: prefix.map(Into::into),
        },
    })
}

/// Every committed example with the lab it is planned against.
fn examples_on_their_labs() -> Vec<(&'static str, Params, ClusterTarget, ClusterView)> {
    examples()
        .into_iter()
        .map(|(name, params, shape)| {
            let (target, view) = match shape {
                ExampleLab::Lab => lab(),
                ExampleLab::LeaderlessLab => leaderless_lab(),
                ExampleLab::LabWithScheduledSwitchover => lab_with_scheduled_switchover(),
                ExampleLab::LabWithSpare => lab_with_spare(),
                ExampleLab::ConsulLab => consul_lab(),
                ExampleLab::EtcdLab => etcd_lab(),
                ExampleLab::LabOnOldPatroni => lab_on_old_patroni(),
                ExampleLab::KubernetesOnOldPatroni => kubernetes_on_old_patroni(),
                ExampleLab::StandbyLab => standby_lab(),
            };
            (name, params, target, view)
        })
        .collect()
}

#[test]
fn committed_runbooks_match_the_rendering_for_the_lab() {
    let directory = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("runbooks");
    let update = std::env::var_os("PGHA_UPDATE_RUNBOOKS").is_some();
    let mut stale = Vec::new();
    let examples = examples_on_their_labs();
    assert!(examples.len() >= 19, "every runbook has its committed plan");
    for (name, params, target, view) in examples {
        let rendered = render::markdown(&plan(&target, &view, &params).unwrap(), None);
        let path = directory.join(format!("{name}.md"));
        if update {
            std::fs::create_dir_all(&directory).unwrap();
            std::fs::write(&path, &rendered).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(rendered.as_str()) {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "runbooks/{{{}}}.md differ from what pgha renders: run scripts/render-runbooks.sh and review the diff",
        stale.join(",")
    );
}

/// No file in runbooks/ is left over from a runbook or example that no longer exists.
#[test]
fn every_committed_runbook_file_is_an_example() {
    let directory = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("runbooks");
    let names: std::collections::BTreeSet<String> = examples()
        .into_iter()
        .map(|(name, ..)| format!("{name}.md"))
        .collect();
    for entry in std::fs::read_dir(&directory).unwrap() {
        let file = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            !file.to_ascii_lowercase().ends_with(".md")
                || file == "README.md"
                || names.contains(&file),
            "runbooks/{file} is no runbook's example"
        );
    }
}

#[test]
fn no_plan_carries_a_secret() {
    for (name, params, target, view) in examples_on_their_labs() {
        let plan = plan(&target, &view, &params).unwrap();
        let json = serde_json::to_string(&plan).unwrap();
        assert!(!json.contains("not-in-any-plan"), "{name}");
        assert!(
            !render::markdown(&plan, None).contains("not-in-any-plan"),
            "{name}"
        );
    }
}

#[test]
fn plans_are_pure_and_hash_stably() {
    let (target, view) = lab();
    let first = plan(&target, &view, &reinit("node3")).unwrap();
    let second = plan(&target, &view, &reinit("node3")).unwrap();
    assert_eq!(first, second);
    assert_eq!(first.hash(), second.hash());
    assert_eq!(first.hash().len(), 64);
    let other = plan(&target, &view, &reinit("node2")).unwrap();
    assert_ne!(first.hash(), other.hash());
}

#[test]
fn reinit_plans_a_destructive_gate_and_a_bounded_wait_with_progress() {
    let (target, view) = lab();
    let plan = plan(&target, &view, &reinit("node3")).unwrap();
    assert_eq!(plan.typed_confirmations(), ["node3"]);
    assert!(plan.prechecks.contains(&Check::NotLeader {
        member: "node3".into()
    }));
    assert!(plan.assumes.contains(&Check::LeaderIs {
        member: "node1".into()
    }));
    let Action::Patroni(call) = &plan.steps[1].action else {
        panic!("a REST call after the silence")
    };
    assert_eq!(call.api_url, "http://127.0.0.13:8008");
    assert_eq!(
        call.call,
        PatroniCall::Reinitialize {
            force: false,
            from_leader: Some(true)
        }
    );
    let Action::Wait(wait) = &plan.steps[2].action else {
        panic!("then a wait")
    };
    assert_eq!(wait.timeout, Duration::from_hours(2));
    assert!(
        matches!(&wait.progress, crate::plan::Progress::BaseBackup { leader, leader_host, .. } if leader == "node1" && leader_host == "127.0.0.11")
    );
}

#[test]
fn reinit_silences_the_member_alerts_around_the_copy_when_there_is_an_alertmanager() {
    let (mut target, view) = lab();
    let silenced = plan(&target, &view, &reinit("node3")).unwrap();
    let ids: Vec<&str> = silenced.steps.iter().map(|step| step.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "silence-node3",
            "reinitialize-node3",
            "wait-streaming-node3",
            "expire-silence-node3"
        ]
    );
    let Action::Silence(SilenceAction::Create {
        url,
        labels,
        duration,
        ..
    }) = &silenced.steps[0].action
    else {
        panic!("a silence first")
    };
    assert_eq!(url, "http://127.0.0.10:9093");
    assert_eq!(
        labels["fqdn"], "127.0.0.13",
        "{{host}} is the member's host"
    );
    assert_eq!(labels["alertname"], "PostgresReplicationLagHigh");
    // It outlives the wait, and ends by itself if pgha dies.
    assert_eq!(*duration, Duration::from_hours(2) + Duration::from_mins(15));
    assert_eq!(
        silenced.steps[3].action,
        Action::Silence(SilenceAction::Expire {
            url: url.clone(),
            created_by: "silence-node3".into()
        })
    );
    target.alertmanager = None;
    let bare = plan(&target, &view, &reinit("node3")).unwrap();
    assert_eq!(bare.steps.len(), 2);
}

/// Credentials for Alertmanager stay in the inventory: a plan that silences holds its URL only,
/// in every rendering and in the JSON a journal records.
#[test]
fn silence_plans_carry_no_alertmanager_credentials() {
    use crate::alerts::AlertmanagerAuth;

    for auth in [
        AlertmanagerAuth::Basic {
            username: "pgha".into(),
            password: Secret::new("am-password-not-in-any-plan"),
        },
        AlertmanagerAuth::Bearer(Secret::new("am-token-not-in-any-plan")),
    ] {
        let (mut target, view) = lab();
        let secret = auth.secret().expose().to_string();
        target.alertmanager.as_mut().unwrap().auth = Some(auth);
        let plan = plan(&target, &view, &reinit("node3")).unwrap();
        assert!(matches!(
            plan.steps[0].action,
            Action::Silence(SilenceAction::Create { .. })
        ));
        for rendered in [
            render::text(&plan, None),
            render::markdown(&plan, None),
            render::json(&plan, None),
            serde_json::to_string(&plan).unwrap(),
        ] {
            assert!(rendered.contains("http://127.0.0.10:9093"));
            assert!(!rendered.contains(&secret), "{rendered}");
        }
    }
}

#[test]
fn reinit_sends_from_leader_only_to_patroni_4() {
    let (target, mut view) = lab();
    let member = view
        .members
        .iter_mut()
        .find(|member| member.name == "node3")
        .unwrap();
    if let Ok(status) = &mut member.status {
        status.patroni_version = Some(Version::new(3, 3, 11));
    }
    let plan = plan(&target, &view, &reinit("node3")).unwrap();
    let Action::Patroni(call) = &plan.steps[1].action else {
        panic!()
    };
    assert_eq!(
        call.call,
        PatroniCall::Reinitialize {
            force: false,
            from_leader: None
        }
    );
    assert_eq!(call.call.body(), serde_json::json!({ "force": false }));
}

#[test]
fn reinit_of_an_unknown_member_is_bad_input() {
    let (target, view) = lab();
    let error = plan(&target, &view, &reinit("node9")).unwrap_err();
    assert_eq!(error.exit(), Exit::BadInput);
    assert_eq!(
        error.to_string(),
        "cluster demo has no member \"node9\" (members: node1, node2, node3)"
    );
}

/// The leader is refused by a pre-check (reported by a dry-run), not by the planner.
#[test]
fn reinit_of_the_leader_fails_its_prechecks() {
    let (target, view) = lab();
    let plan = plan(&target, &view, &reinit("node1")).unwrap();
    let failed: Vec<String> = plan
        .prechecks
        .iter()
        .filter(|check| !check.evaluate(&view).passed)
        .map(ToString::to_string)
        .collect();
    assert_eq!(failed, ["node1 is not the leader"]);
}

fn candidate(view: &ClusterView, target: &ClusterTarget) -> Result<String, PlanError> {
    let plan = plan(target, view, &switchover(None))?;
    let switch = plan
        .steps
        .iter()
        .find(|step| step.id == "switchover")
        .unwrap();
    let Action::Patroni(call) = &switch.action else {
        panic!()
    };
    let PatroniCall::Switchover { candidate, .. } = &call.call else {
        panic!()
    };
    Ok(candidate.clone().unwrap())
}

fn member_mut<'a>(view: &'a mut ClusterView, name: &str) -> &'a mut crate::observe::MemberView {
    view.members
        .iter_mut()
        .find(|member| member.name == name)
        .unwrap()
}

#[test]
fn switchover_prefers_the_sync_standby_then_the_lowest_lag() {
    let (target, mut view) = lab();
    assert_eq!(
        candidate(&view, &target).unwrap(),
        "node2",
        "equal lags: by name"
    );
    member_mut(&mut view, "node2")
        .dcs
        .as_mut()
        .unwrap()
        .receive_lag = Some(Lag::Bytes(4096));
    assert_eq!(
        candidate(&view, &target).unwrap(),
        "node3",
        "lower lag wins"
    );
    member_mut(&mut view, "node2").dcs.as_mut().unwrap().role = ClusterRole::SyncStandby;
    assert_eq!(
        candidate(&view, &target).unwrap(),
        "node2",
        "the sync standby first"
    );
}

#[test]
fn switchover_never_picks_nofailover_or_a_lagging_replica() {
    let (target, mut view) = lab();
    member_mut(&mut view, "node2")
        .dcs
        .as_mut()
        .unwrap()
        .tags
        .insert("nofailover".into(), serde_json::json!(true));
    assert_eq!(candidate(&view, &target).unwrap(), "node3");
    member_mut(&mut view, "node3")
        .dcs
        .as_mut()
        .unwrap()
        .receive_lag = Some(Lag::Bytes(64 * 1024 * 1024));
    let error = candidate(&view, &target).unwrap_err();
    assert_eq!(error.exit(), Exit::PrecheckRefused);
    let message = error.to_string();
    assert!(
        message.starts_with("no member can take over from node1:"),
        "{message}"
    );
    assert!(message.contains("node2 is tagged nofailover"), "{message}");
    assert!(message.contains("node3 lags 64.0 MiB"), "{message}");
}

#[test]
fn a_named_candidate_over_the_threshold_fails_its_prechecks() {
    let (target, mut view) = lab();
    member_mut(&mut view, "node3")
        .dcs
        .as_mut()
        .unwrap()
        .receive_lag = Some(Lag::Bytes(8 * 1024 * 1024));
    let plan = plan(&target, &view, &switchover(Some("node3"))).unwrap();
    let failed: Vec<String> = plan
        .prechecks
        .iter()
        .filter_map(|check| {
            let verdict = check.evaluate(&view);
            (!verdict.passed).then(|| format!("{check}: {}", verdict.observed))
        })
        .collect();
    assert_eq!(failed, ["node3 lags at most 1.0 MiB: node3 lags 8.0 MiB"]);
}

#[test]
fn restart_goes_replicas_first_and_asks_the_leaders_name() {
    let (target, view) = lab();
    let params = Params::Restart(restart::Params {
        member: None,
        pending_only: false,
        max_lag: DEFAULT_MAX_LAG_BYTES,
        timeout: None,
    });
    let plan = plan(&target, &view, &params).unwrap();
    let order: Vec<&str> = plan.steps.iter().map(|step| step.id.as_str()).collect();
    assert_eq!(
        order,
        [
            "restart-node2",
            "wait-healthy-node2",
            "restart-node3",
            "wait-healthy-node3",
            "restart-node1",
            "wait-healthy-node1"
        ]
    );
    assert!(matches!(plan.steps[0].gate, Gate::Confirm { .. }));
    assert!(
        matches!(&plan.steps[4].gate, Gate::TypeToConfirm { expected, .. } if expected == "node1")
    );
}

#[test]
fn restart_pending_only_plans_nothing_when_nothing_is_pending() {
    let (target, view) = lab();
    let params = Params::Restart(restart::Params {
        member: None,
        pending_only: true,
        max_lag: DEFAULT_MAX_LAG_BYTES,
        timeout: None,
    });
    let error = plan(&target, &view, &params).unwrap_err();
    assert_eq!(error.to_string(), "no member has a pending restart");
}

#[test]
fn params_round_trip_through_the_journal() {
    for (_, params, ..) in examples_on_their_labs() {
        let value = serde_json::to_value(&params).unwrap();
        let back: Params = serde_json::from_value(value).unwrap();
        assert_eq!(back, params);
    }
}

#[test]
fn the_inventorys_runbook_timeouts_apply_unless_the_operator_gave_one() {
    let defaults =
        std::collections::BTreeMap::from([("reinit".to_string(), Duration::from_hours(6))]);
    let Params::Reinit(reinit::Params { timeout, .. }) =
        reinit("node3").with_default_timeout(&defaults)
    else {
        unreachable!()
    };
    assert_eq!(timeout, Some(Duration::from_hours(6)));
    let explicit = Params::Reinit(reinit::Params {
        member: "node3".into(),
        timeout: Some(Duration::from_mins(5)),
        max_lag: 1,
    });
    let Params::Reinit(reinit::Params { timeout, .. }) = explicit.with_default_timeout(&defaults)
    else {
        unreachable!()
    };
    assert_eq!(timeout, Some(Duration::from_mins(5)));
    let Params::Switchover(switchover::Params { timeout, .. }) =
        switchover(None).with_default_timeout(&defaults)
    else {
        unreachable!()
    };
    assert_eq!(timeout, None, "another runbook's default does not apply");
}

#[test]
fn consul_delete_tree_takes_only_the_clusters_own_prefix_behind_its_name() {
    let (target, view) = consul_lab();
    for own in [None, Some("service/demo"), Some("service/demo/")] {
        let plan = plan(&target, &view, &delete_tree(own)).unwrap();
        let step = &plan.steps[0];
        let Action::Consul(crate::plan::ConsulAction::DeleteTree { prefix, keys, .. }) =
            &step.action
        else {
            panic!("a Consul delete: {:?}", step.action)
        };
        assert_eq!(prefix, "service/demo/", "always with the trailing slash");
        assert_eq!(keys.len(), 9, "the change request lists the keys");
        assert!(matches!(&step.gate, Gate::TypeToConfirm { expected, .. } if expected == "demo"));
        assert_eq!(
            plan.prechecks,
            ["node1", "node2", "node3"]
                .iter()
                .map(|member| Check::Unreachable {
                    member: (*member).into()
                })
                .collect::<Vec<_>>(),
            "every Patroni must be stopped"
        );
    }
    for foreign in [
        "service/demo2",
        "service/",
        "service/dem",
        "",
        "service/other/",
    ] {
        let error = plan(&target, &view, &delete_tree(Some(foreign))).unwrap_err();
        assert!(
            matches!(&error, PlanError::Refused(reason) if reason.contains("is not cluster demo's own prefix")),
            "{foreign}: {error}"
        );
    }
    let (target, view) = lab();
    let error = plan(&target, &view, &delete_tree(None)).unwrap_err();
    assert!(error.to_string().contains("does not use Consul"), "{error}");
}

#[test]
fn runbooks_wait_for_consul_routing_only_where_patroni_registers_services() {
    let routed = |target: &ClusterTarget, view: &ClusterView, params: &Params| {
        plan(target, view, params)
            .unwrap()
            .steps
            .iter()
            .filter(|step| step.id.starts_with("consul-"))
            .map(|step| step.id.clone())
            .collect::<Vec<_>>()
    };
    let (target, view) = consul_lab();
    assert_eq!(
        routed(&target, &view, &switchover(Some("node2"))),
        ["consul-routing"]
    );
    assert_eq!(
        routed(&target, &view, &reinit("node3")),
        ["consul-replica-node3"]
    );
    let (plain_target, plain_view) = lab();
    assert!(routed(&plain_target, &plain_view, &switchover(Some("node2"))).is_empty());
    let mut unregistered = view.clone();
    if let Some(consul) = &mut unregistered.consul {
        consul.instances = Ok(Vec::new());
    }
    assert!(
        routed(&target, &unregistered, &reinit("node3")).is_empty(),
        "register_service off: nothing to wait for"
    );
    let plan = plan(&target, &view, &switchover(Some("node2"))).unwrap();
    let Action::Wait(wait) = &plan.steps.last().unwrap().action else {
        panic!("a wait")
    };
    assert!(wait.until.contains(&Check::ConsulServes {
        tag: "primary".into(),
        members: vec!["node2".into()]
    }));
}

#[test]
fn scale_up_adds_only_a_new_member_and_follows_it_to_streaming() {
    let (target, view) = lab_with_spare();
    let planned = plan(&target, &view, &scale_up("node4")).unwrap();
    let ids: Vec<&str> = planned.steps.iter().map(|step| step.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "provisioned-node4",
            "ssh-node4",
            "installed-node4",
            "disk-node4",
            "silence-node4",
            "enable-patroni-node4",
            "start-patroni-node4",
            "wait-streaming-node4",
            "agreement-node4",
            "expire-silence-node4",
            "load-balancing-node4",
        ]
    );
    assert!(planned.prechecks.contains(&Check::NotRegistered {
        member: "node4".into()
    }));
    assert!(planned.prechecks.contains(&Check::Unreachable {
        member: "node4".into()
    }));
    let checked = crate::exec::evaluate(&planned.prechecks, &view);
    assert!(
        checked.iter().all(|check| check.verdict.passed),
        "{checked:?}"
    );
    // A member that already runs fails its pre-checks; an unknown one is bad input.
    let running = plan_checks(&target, &view, &scale_up("node2"));
    assert!(
        running
            .iter()
            .any(|(text, passed)| !passed && text.contains("node2 is not yet registered")),
        "{running:?}"
    );
    assert!(matches!(
        plan(&target, &view, &scale_up("node9")),
        Err(PlanError::UnknownMember { .. })
    ));
    let mut unmeasured = scale_up("node4");
    if let Params::ScaleUp(params) = &mut unmeasured {
        params.need = None;
    }
    assert!(
        plan(&target, &view, &unmeasured)
            .unwrap_err()
            .to_string()
            .contains("--need")
    );
    let mut leaderless = view.clone();
    leaderless.leader = None;
    let checks = crate::exec::evaluate(&planned.prechecks, &leaderless);
    assert!(!checks[0].verdict.passed, "no leader: refused");
}

fn plan_checks(target: &ClusterTarget, view: &ClusterView, params: &Params) -> Vec<(String, bool)> {
    let plan = plan(target, view, params).unwrap();
    crate::exec::evaluate(&plan.prechecks, view)
        .into_iter()
        .map(|check| (check.text, check.verdict.passed))
        .collect()
}

#[test]
fn scale_down_drains_stops_and_waits_for_the_member_to_leave_never_the_leader_or_last_replica() {
    let (target, view) = lab();
    let planned = plan(&target, &view, &scale_down("node3")).unwrap();
    let ids: Vec<&str> = planned.steps.iter().map(|step| step.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "tag-noloadbalance-node3",
            "reload-node3",
            "silence-node3",
            "stop-patroni-node3",
            "disable-patroni-node3",
            "left-node3",
            "expire-silence-node3",
        ]
    );
    assert!(
        matches!(&planned.steps[3].gate, Gate::TypeToConfirm { expected, .. } if expected == "node3")
    );
    // Where the inventory does not say where Patroni's configuration is: a drain by hand,
    // which --yes does not answer.
    let mut unknown = target.clone();
    for member in &mut unknown.members {
        member.patroni_config = None;
    }
    let by_hand = plan(&unknown, &view, &scale_down("node3")).unwrap();
    assert_eq!(by_hand.steps[0].id, "drain-node3");
    assert_eq!(by_hand.by_hand(), [("drain", Some("--no-drain"))]);
    let checked = crate::exec::evaluate(&planned.prechecks, &view);
    assert!(
        checked.iter().all(|check| check.verdict.passed),
        "{checked:?}"
    );
    let leader = plan_checks(&target, &view, &scale_down("node1"));
    assert!(
        leader
            .iter()
            .any(|(text, passed)| !passed && text == "node1 is not the leader"),
        "{leader:?}"
    );
    // With node2 gone, node3 is the last replica.
    let mut alone = view.clone();
    alone.members.retain(|member| member.name != "node2");
    let last = plan_checks(&target, &alone, &scale_down("node3"));
    assert!(last.iter().any(|(_, passed)| !passed), "{last:?}");
    let undrained = plan(
        &target,
        &view,
        &Params::ScaleDown(scale_down::Params {
            member: "node3".into(),
            drain: false,
            drain_timeout: None,
            label: "20261203-041500".into(),
        }),
    )
    .unwrap();
    assert_eq!(undrained.steps[0].id, "silence-node3");
}

fn service(action: Verb, member: &str) -> Params {
    Params::Service(service::Params {
        action,
        member: member.into(),
        max_lag: DEFAULT_MAX_LAG_BYTES,
        timeout: None,
    })
}

fn remote_actions(plan: &Plan) -> Vec<&crate::plan::RemoteAction> {
    plan.steps
        .iter()
        .filter_map(|step| match &step.action {
            Action::Remote(action) => Some(action),
            _ => None,
        })
        .collect()
}

/// Defect 9: a member only the DCS lists gets no command, over SSH or through local service
/// control: its host is the DCS's word (whoever can write there chooses where pgha connects).
/// Refused while planning, as bad input naming the member and the inventory to add it to.
#[test]
fn remote_steps_refuse_a_member_only_the_dcs_lists() {
    let (target, view) = lab_without("node3");
    let unlisted = view.member("node3").expect("shown from the DCS");
    assert!(!unlisted.in_inventory);
    assert_eq!(unlisted.host, DCS_ONLY_HOST);
    let host_operation = |operation| Params::Host(host::Params { operation });
    let member = || "node3".to_string();
    for params in [
        service(Verb::Stop, "node3"),
        service(Verb::Start, "node3"),
        service(Verb::Restart, "node3"),
        service(Verb::Disable, "node3"),
        host_operation(HostOperation::Wipe { member: member() }),
        host_operation(HostOperation::Disk {
            member: member(),
            need: 1,
        }),
        host_operation(HostOperation::Backup {
            member: member(),
            files: Vec::new(),
            to: None,
            label: "x".into(),
        }),
        scale_down("node3"),
    ] {
        let error = plan(&target, &view, &params).expect_err(params.runbook());
        assert_eq!(error.exit(), Exit::BadInput, "{error}");
        assert_eq!(
            error.to_string(),
            "node3 is not a member of cluster demo in /var/lib/pgha/lab/pgha.yml: pgha runs commands only on hosts an inventory names, never on one the DCS reports; add node3 under the cluster's `members:` there"
        );
    }
    // Commands on the members the inventory lists still plan.
    assert!(plan(&target, &view, &service(Verb::Stop, "node2")).is_ok());
}

/// The REST password goes only to members pgha was given: a reinit or restart of a member
/// only the DCS lists is refused while planning (the executor refuses such a call again).
#[test]
fn credentials_never_go_to_a_member_only_the_dcs_lists() {
    let (target, view) = lab_without("node3");
    for params in [
        reinit("node3"),
        Params::Restart(restart::Params {
            member: Some("node3".into()),
            pending_only: false,
            max_lag: DEFAULT_MAX_LAG_BYTES,
            timeout: None,
        }),
        Params::Restart(restart::Params {
            member: None,
            pending_only: false,
            max_lag: DEFAULT_MAX_LAG_BYTES,
            timeout: None,
        }),
    ] {
        let error = plan(&target, &view, &params).expect_err(params.runbook());
        assert_eq!(error.exit(), Exit::BadInput, "{error}");
        assert!(
            error
                .to_string()
                .starts_with("node3 is registered in the DCS but is not a member of cluster demo"),
            "{error}"
        );
    }
    assert!(plan(&target, &view, &reinit("node2")).is_ok());
}

/// Defect 9: the host a remote step connects to is the inventory's, whatever the view says.
#[test]
fn remote_steps_take_the_host_from_the_inventory_never_the_view() {
    let (target, mut view) = lab();
    member_mut(&mut view, "node3").host = DCS_ONLY_HOST.into();
    for params in [
        service(Verb::Stop, "node3"),
        Params::Host(host::Params {
            operation: HostOperation::Wipe {
                member: "node3".into(),
            },
        }),
    ] {
        let planned = plan(&target, &view, &params).unwrap();
        let actions = remote_actions(&planned);
        assert!(!actions.is_empty());
        for action in actions {
            assert_eq!(action.host, "127.0.0.13", "{}", params.runbook());
        }
    }
    let (target, mut view) = lab_with_spare();
    member_mut(&mut view, "node4").host = DCS_ONLY_HOST.into();
    let planned = plan(&target, &view, &scale_up("node4")).unwrap();
    for action in remote_actions(&planned) {
        assert_eq!(action.host, "127.0.0.14", "{}", action.describe());
    }
    assert!(!render::markdown(&planned, None).contains(DCS_ONLY_HOST));
}

/// `--api` and `--patroni-config` take the members from `/cluster`: every host there is the
/// DCS's word, so no remote step is planned at all.
#[test]
fn remote_steps_refuse_members_discovered_from_the_dcs() {
    let (mut target, view) = lab();
    target.members_from = crate::inventory::MemberSource::Discovered;
    target.origin = "--api http://127.0.0.11:8008".into();
    let error = plan(&target, &view, &service(Verb::Stop, "node3")).unwrap_err();
    assert_eq!(error.exit(), Exit::BadInput);
    assert_eq!(
        error.to_string(),
        "node3: the members of cluster demo come from the DCS (--api http://127.0.0.11:8008): pgha runs commands only on hosts an inventory names; select the cluster from an inventory (--config, --env) that lists node3"
    );
}

/// Journals written before the runbook contract hold parameters in the same JSON: a run
/// recorded then can still be resumed.
#[test]
fn parameters_journalled_before_the_contract_still_read() {
    let recorded = [
        r#"{"runbook":"host","member":"node3","operation":"restore_backup","tool":"pgbackrest","stanza":"demo"}"#,
        r#"{"runbook":"host","member":"node3","operation":"backup","files":[],"to":null,"label":"20261123T200000Z"}"#,
        r#"{"runbook":"consul_delete_tree","prefix":null}"#,
        r#"{"runbook":"scale_down","member":"node3","drain":true,"drain_timeout":null,"label":"20261203-041500"}"#,
        r#"{"runbook":"service","action":"stop","member":"node3","max_lag":1048576,"timeout":null}"#,
        r#"{"runbook":"resume","wait":true}"#,
    ];
    for text in recorded {
        let params: Params =
            serde_json::from_str(text).unwrap_or_else(|error| panic!("{text}: {error}"));
        let again = serde_json::to_value(&params).unwrap();
        let back: Params = serde_json::from_value(again).unwrap();
        assert_eq!(back, params, "{text}");
    }
}

/// A cluster of the same shape elsewhere: other addresses, data directories, names of the
/// cluster and scope — what a rehearsal lab and the real cluster differ by.
fn moved((mut target, mut view): (ClusterTarget, ClusterView)) -> (ClusterTarget, ClusterView) {
    let elsewhere = |text: &str| text.replace("127.0.0.", "10.20.0.");
    target.cluster = "main-db".into();
    view.cluster = "main-db".into();
    for member in &mut target.members {
        member.host = elsewhere(&member.host);
        member.api_url = elsewhere(&member.api_url);
        member.data_dir = member
            .data_dir
            .as_ref()
            .map(|dir| dir.replace("/var/lib/pgha/lab/members", "/srv/postgres"));
    }
    for member in &mut view.members {
        member.host = elsewhere(&member.host);
        member.api_url = elsewhere(&member.api_url);
        if let Some(entry) = &mut member.dcs {
            entry.host = entry.host.as_deref().map(elsewhere);
            entry.api_url = entry.api_url.as_deref().map(elsewhere);
        }
    }
    (target, view)
}

/// The structure's fingerprint is the same for every committed plan on the lab and on the
/// same cluster elsewhere, and differs when the plan does something else (another member).
#[test]
fn a_plans_structure_is_the_same_wherever_the_cluster_lives() {
    for (name, params, target, view) in examples_on_their_labs() {
        let here = plan(&target, &view, &params).unwrap();
        let (far_target, far_view) = moved((target, view));
        let there = plan(&far_target, &far_view, &params).unwrap();
        assert_ne!(
            here.hash(),
            there.hash(),
            "{name}: the plans differ in their addresses"
        );
        assert_eq!(
            crate::plan::structure::fingerprint(&here),
            crate::plan::structure::fingerprint(&there),
            "{name}: {}",
            serde_json::to_string(&crate::plan::structure::structure(&there)).unwrap()
        );
    }
    let (target, view) = lab();
    let reinit = |member: &str| {
        let params = Params::Reinit(crate::runbooks::reinit::Params {
            member: member.into(),
            ..crate::runbooks::reinit::Reinit::examples().remove(0).params
        });
        crate::plan::structure::fingerprint(&plan(&target, &view, &params).unwrap())
    };
    assert_ne!(reinit("node2"), reinit("node3"));
}

/// Found by rehearsing a switchover like a standby cluster: its leader is handed over, never
/// promoted, so the timeline stays, and waiting for a new one failed a switchover Patroni had
/// done. On a standby cluster the new leader is verified as the standby leader, the old one
/// must lead as one before anything is sent, and Consul routes the `standby-leader` tag.
#[test]
fn a_standby_clusters_leader_is_handed_over_on_the_same_timeline() {
    let (target, view) = standby_lab();
    let until = |plan: &Plan, id: &str| -> Vec<Check> {
        let step = plan.steps.iter().find(|step| step.id == id).unwrap();
        step.verify.as_ref().unwrap().until.clone()
    };
    let switched = plan(&target, &view, &switchover(Some("node2"))).unwrap();
    let verified = until(&switched, "switchover");
    assert!(verified.contains(&Check::StandbyLeader {
        member: "node2".into()
    }));
    assert!(
        !verified
            .iter()
            .any(|check| matches!(check, Check::TimelineAbove { .. })),
        "{verified:?}"
    );
    assert!(switched.prechecks.contains(&Check::StandbyLeader {
        member: "node1".into()
    }));
    assert!(
        switched.summary.contains("neither is promoted"),
        "{}",
        switched.summary
    );

    let failover = Params::Failover(crate::runbooks::failover::Params {
        candidate: "node2".into(),
        timeout: None,
    });
    let failed_over = plan(&target, &view, &failover).unwrap();
    assert!(
        until(&failed_over, "failover").contains(&Check::StandbyLeader {
            member: "node2".into()
        })
    );

    // A primary cluster's new leader: a new timeline, as before.
    let (primary_target, primary_view) = lab();
    let primary = plan(&primary_target, &primary_view, &switchover(Some("node2"))).unwrap();
    assert!(
        until(&primary, "switchover")
            .iter()
            .any(|check| matches!(check, Check::TimelineAbove { .. }))
    );

    // On Consul: the standby leader's tag.
    let (mut consul_target, consul_view) = consul_lab();
    consul_target.standby = true;
    let routed = plan(&consul_target, &consul_view, &switchover(Some("node2"))).unwrap();
    let Action::Wait(wait) = &routed.steps.last().unwrap().action else {
        panic!("a wait")
    };
    assert!(wait.until.contains(&Check::ConsulServes {
        tag: "standby-leader".into(),
        members: vec!["node2".into()]
    }));
}
