//! Writing the dynamic configuration and proving every member applied it: the
//! compare-and-set on the DCS key (or `PATCH /config` without one), the refusal of what
//! Patroni would silently ignore, and the wait for an HA loop after the write on every member.

use std::time::Duration;

use serde_json::Value;

use crate::inventory::ClusterTarget;
use crate::observe::ClusterView;
use crate::patroni::dynamic_config::{self, ConfigChange, ConfigRead, ConfigSource};
use crate::patroni::{PostgresRole, Version};
use crate::plan::{
    Action, Check, ConsulAction, EtcdAction, Gate, Idempotency, PatroniAction, PatroniCall,
    Progress, Step, Wait,
};
use crate::runbooks::PlanError;

/// The release that switches a running cluster between primary and standby in place
/// (`patronictl demote-cluster` / `promote-cluster`).
pub(crate) const STANDBY_SWITCH_SINCE: Version = Version::new(4, 1, 0);

/// Patroni before 4.1 ignores a `standby_cluster` added to a running primary cluster.
pub(crate) fn refuse_unless_every_member_can(view: &ClusterView) -> Result<(), PlanError> {
    let older: Vec<String> = view
        .members
        .iter()
        .filter_map(|member| {
            let version = member.patroni_version()?;
            (version < STANDBY_SWITCH_SINCE).then(|| format!("{} runs {version}", member.name))
        })
        .collect();
    if older.is_empty() {
        return Ok(());
    }
    Err(PlanError::Refused(format!(
        "switching a running cluster between primary and standby needs Patroni {STANDBY_SWITCH_SINCE} on every member: {} (`pgha rolling-upgrade` first)",
        older.join(", ")
    )))
}

/// The lab's dynamic configuration as read from its etcd: what the committed plans that edit
/// it are rendered against.
pub(crate) fn lab_config_read() -> ConfigRead {
    ConfigRead {
        config: lab_dynamic_config(),
        from: ConfigSource::Etcd {
            endpoint: "http://127.0.0.10:2379".into(),
            key: "/service/demo/config".into(),
            mod_revision: 42,
        },
    }
}

/// The lab's dynamic configuration as Patroni stores it after `pgha lab up` (its
/// `bootstrap.dcs`): what the committed plan is rendered against.
fn lab_dynamic_config() -> Value {
    serde_json::json!({
        "ttl": 20, "loop_wait": 2, "retry_timeout": 5, "maximum_lag_on_failover": 1_048_576,
        "postgresql": {
            "use_pg_rewind": true, "use_slots": true,
            "parameters": {
                "wal_level": "replica", "hot_standby": "on", "wal_log_hints": "on",
                "max_connections": 50, "max_wal_senders": 10, "max_replication_slots": 10,
                "wal_keep_size": "256MB", "shared_buffers": "64MB"
            }
        }
    })
}

/// The configuration as read before planning: the one a resumed run recorded, else read now
/// (from the DCS with its revision where pgha knows it).
pub(crate) async fn read_before_planning(
    recorded: Option<Box<ConfigRead>>,
    view: &ClusterView,
    probe: &impl crate::runbooks::Probe,
) -> Result<Box<ConfigRead>, PlanError> {
    if let Some(read) = recorded {
        return Ok(read);
    }
    probe
        .dynamic_config(view)
        .await
        .map(Box::new)
        .map_err(|why| PlanError::Refused(format!("cannot read the dynamic configuration: {why}")))
}

/// The configuration a planner works from (`measure` read it).
pub(crate) fn read_config(read: Option<&ConfigRead>) -> Result<&ConfigRead, PlanError> {
    read.ok_or_else(|| {
        PlanError::Refused("the dynamic configuration was not read before planning".into())
    })
}

/// The leader, running as `role` (a primary to demote, a standby leader to promote); `doing`
/// names the runbook's verb for the refusal.
pub(crate) fn leader_running_as(
    view: &ClusterView,
    role: &PostgresRole,
    doing: &str,
) -> Result<String, PlanError> {
    let leader = view
        .leader
        .as_deref()
        .and_then(|name| view.member(name))
        .ok_or_else(|| PlanError::Refused(format!("no member leads: nothing to {doing}")))?;
    match leader.status.as_ref().map(|status| &status.role) {
        Ok(running) if running == role => Ok(leader.name.clone()),
        Ok(running) => Err(PlanError::Refused(format!(
            "the leader {} runs as {running}, not as {role}: nothing to {doing}",
            leader.name
        ))),
        Err(failure) => Err(PlanError::Refused(format!(
            "the leader {} does not answer: {}",
            leader.name, failure.message
        ))),
    }
}

/// The first member of the site the inventory says the cluster `follows` that answers as a
/// primary, with its WAL position; else what each said. `Ok(None)` without `follows:`.
pub(crate) async fn followed_site_primary(
    target: &ClusterTarget,
    probe: &impl crate::runbooks::Probe,
) -> Result<Option<(String, crate::patroni::Lsn)>, Vec<String>> {
    let Some(followed) = &target.follows else {
        return Ok(None);
    };
    let mut heard = Vec::new();
    for host in &followed.hosts {
        match probe.primary_position(host).await {
            Some(Ok(Some(position))) => return Ok(Some((host.clone(), position))),
            Some(Ok(None)) => heard.push(format!("{host} is in recovery")),
            Some(Err(error)) => heard.push(error.to_string()),
            None => heard.push(format!(
                "{host}: no SQL access (the inventory's `postgres:`)"
            )),
        }
    }
    Err(heard)
}

/// The write of `standby_cluster` (a section, or `null` to remove it) with `edit-config`'s
/// compare-and-set, behind the cluster's name typed; with the diff it makes.
pub(crate) fn standby_switch_step(
    target: &ClusterTarget,
    view: &ClusterView,
    read: &ConfigRead,
    section: &Value,
    (id, title, question): (&str, String, String),
) -> Result<(Step, String), PlanError> {
    let new = dynamic_config::merged(
        &read.config,
        &serde_json::json!({ "standby_cluster": section }),
    );
    let changes = dynamic_config::changes(&read.config, &new);
    refuse_what_patroni_would_not_use(&new, &changes)?;
    let answering = answering_members(view);
    let write = config_write_step(target, view, read, &new, &changes, &answering)?;
    let step = Step {
        id: id.into(),
        title,
        gate: Gate::TypeToConfirm {
            question,
            expected: target.cluster.clone(),
        },
        ..write
    };
    Ok((step, dynamic_config::unified_diff(&read.config, &new)))
}

/// The members whose REST API answers: those a configuration change is verified on.
pub(crate) fn answering_members(view: &ClusterView) -> Vec<String> {
    view.members
        .iter()
        .filter(|member| member.is_reachable())
        .map(|member| member.name.clone())
        .collect()
}

/// The `loop_wait` the members run with while the change is applied: the loop that applies
/// a new one runs on the old one.
pub(crate) fn applying_loop_wait(old: &Value, new: &Value) -> u64 {
    [old, new]
        .iter()
        .filter_map(|config| config["loop_wait"].as_u64())
        .max()
        .unwrap_or(10)
}

/// Refuses, in one line, what Patroni would ignore or adjust among the settings this edit
/// touches (what the configuration already held is not this edit's to judge).
pub(crate) fn refuse_what_patroni_would_not_use(
    new: &Value,
    changes: &[ConfigChange],
) -> Result<(), PlanError> {
    let problems: Vec<String> = dynamic_config::problems(new)
        .into_iter()
        .filter(|problem| problem.touched_by(changes))
        .map(|problem| problem.message)
        .collect();
    match problems.as_slice() {
        [] => Ok(()),
        [one] => Err(PlanError::BadInput(format!("{one}; nothing was sent"))),
        [first, rest @ ..] => Err(PlanError::BadInput(format!(
            "{first} (and {} more: {}); nothing was sent",
            rest.len(),
            rest.join("; ")
        ))),
    }
}

/// The write: a compare-and-set on the DCS key, or `PATCH /config` of the changed keys.
pub(crate) fn config_write_step(
    target: &ClusterTarget,
    view: &ClusterView,
    read: &ConfigRead,
    new: &Value,
    changes: &[ConfigChange],
    answering: &[String],
) -> Result<Step, PlanError> {
    let value = new.to_string();
    let action = match &read.from {
        ConfigSource::Etcd {
            endpoint,
            key,
            mod_revision,
        } => Action::Etcd(EtcdAction::SetConfig {
            endpoint: endpoint.clone(),
            key: key.clone(),
            mod_revision: *mod_revision,
            value,
        }),
        ConfigSource::Consul {
            address,
            key,
            index,
        } => Action::Consul(ConsulAction::SetConfig {
            address: address.clone(),
            key: key.clone(),
            index: *index,
            value,
        }),
        ConfigSource::Rest { member } => {
            let api = view
                .member(member)
                .ok_or_else(|| PlanError::UnknownMember {
                    cluster: target.cluster.clone(),
                    member: member.clone(),
                    known: view.members.iter().map(|m| m.name.clone()).collect(),
                })?;
            Action::Patroni(PatroniAction {
                member: api.name.clone(),
                api_url: api.api_url.clone(),
                call: PatroniCall::PatchConfig {
                    patch: dynamic_config::patch_between(&read.config, new),
                },
            })
        }
    };
    // Looked at first on resume: a member that sees the change means it was written.
    let done_when = answering
        .first()
        .map(|member| {
            vec![Check::ConfigPickedUp {
                member: member.clone(),
                changes: changes.to_vec(),
                // Outside a wait (a resume's look first) only the configuration counts.
                loop_wait: 0,
            }]
        })
        .unwrap_or_default();
    Ok(Step {
        id: "write-config".into(),
        title: format!("Write the new dynamic configuration of {}", target.cluster),
        action,
        gate: Gate::Confirm {
            question: format!(
                "Write {} to the dynamic configuration of {}?",
                changes
                    .iter()
                    .map(ConfigChange::describe)
                    .collect::<Vec<_>>()
                    .join(", "),
                target.cluster
            ),
        },
        prechecks: Vec::new(),
        verify: None,
        idempotency: if done_when.is_empty() {
            Idempotency::AskHuman
        } else {
            Idempotency::CheckStateFirst { done_when }
        },
    })
}

/// Every member that answered when planning sees the change (its `/config`) and has looped
/// since applying it.
pub(crate) fn config_picked_up_step(
    answering: &[String],
    changes: &[ConfigChange],
    loop_wait: u64,
    timeout: Duration,
) -> Step {
    Step::wait(
        "picked-up".into(),
        format!(
            "Wait until {} see the new configuration",
            if answering.is_empty() {
                "the members".to_string()
            } else {
                answering.join(", ")
            }
        ),
        Wait {
            until: answering
                .iter()
                .map(|member| Check::ConfigPickedUp {
                    member: member.clone(),
                    changes: changes.to_vec(),
                    loop_wait,
                })
                .collect(),
            fail_if: Vec::new(),
            timeout,
            poll: Duration::from_millis(500),
            progress: Progress::Checks,
            stuck: Vec::new(),
        },
    )
}
