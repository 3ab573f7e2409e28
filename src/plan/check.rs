//! Checks: predicates on the observed cluster. Pre-checks, post-checks, wait conditions and a
//! plan's assumptions are all checks, evaluated purely against a `ClusterView` — so a dry-run,
//! the executor and `resume` judge the cluster the same way, and tests need no cluster.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::consul::CheckStatus;
use crate::observe::{ClusterView, ConsulView, MemberView};
use crate::patroni::dynamic_config::ConfigChange;
use crate::patroni::{Lag, MemberState};
use crate::ui::human_bytes;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "check", rename_all = "snake_case")]
pub enum Check {
    /// One member holds the leader key and runs PostgreSQL.
    HealthyLeader,
    /// This member holds the leader key.
    LeaderIs { member: String },
    /// This member does not hold the leader key (and does not run as primary).
    NotLeader { member: String },
    /// The member's REST API answers.
    Reachable { member: String },
    /// The member's REST API does not answer (its Patroni is stopped).
    Unreachable { member: String },
    /// The member is registered in the DCS.
    Registered { member: String },
    /// The member is not registered in the DCS (not yet a member of the cluster).
    NotRegistered { member: String },
    /// Every member that answers lists the same members and names the same leader.
    TopologyAgreed,
    /// The member's state is one of these.
    StateIn { member: String, states: Vec<String> },
    /// The member streams from the leader (or runs as a replica with WAL received, on Patroni
    /// releases that cannot say "streaming").
    Streaming { member: String },
    /// The member's receive and replay lags are known and at most `bytes`.
    LagAtMost { member: String, bytes: u64 },
    /// The member does not carry this tag set to true (e.g. `nofailover`).
    NotTagged { member: String, tag: String },
    /// The member carries this tag set to true (e.g. `noloadbalance` once drained).
    Tagged { member: String, tag: String },
    /// Every member that answers reports maintenance mode on (or off).
    Paused { paused: bool },
    /// The DCS records maintenance mode on (or off), as the leader's `/cluster` shows it.
    PauseRecorded { paused: bool },
    /// PostgreSQL on the member started after `before` (its `postmaster_start_time` changed).
    RestartedSince { member: String, before: String },
    /// The member's own `/patroni` reports this Patroni release.
    PatroniVersion { member: String, version: String },
    /// The member's running PostgreSQL reports this release (`server_version`, as `15.10`):
    /// what a binary update changes only once PostgreSQL restarts.
    PostgresVersion { member: String, version: String },
    /// The cluster's timeline is above this one (a switchover or failover happened).
    TimelineAbove { timeline: u32 },
    /// The cluster's timeline is exactly this one (one switchover, no more).
    TimelineIs { timeline: u32 },
    /// The database is still this one.
    SystemIdentifier { identifier: String },
    /// A scheduled switchover to `to` is registered.
    SwitchoverScheduled { to: String },
    /// No switchover is scheduled.
    NoSwitchoverScheduled,
    /// The member has no restart scheduled.
    NoRestartScheduled { member: String },
    /// No member reports a pending restart.
    NoPendingRestart { member: String },
    /// The member is registered in Consul with `tag` and every check of it passing: what a
    /// client resolving `<tag>.<service>` would find.
    ConsulPassing { member: String, tag: String },
    /// The member has no instance in Consul (Patroni deregisters when PostgreSQL stops).
    ConsulDeregistered { member: String },
    /// The instances passing with `tag` are exactly these members: no stale primary, no
    /// missing replica.
    ConsulServes { tag: String, members: Vec<String> },
    /// No key is left under the cluster's Consul prefix.
    ConsulTreeEmpty,
    /// No key is left under the cluster's etcd prefix.
    EtcdTreeEmpty,
    /// The member leads a standby cluster: it holds the leader key and runs as
    /// `standby_leader`, following another cluster, writable by nobody.
    StandbyLeader { member: String },
    /// Some member that answers runs PostgreSQL as a writable primary (for `fail_if`: in a
    /// standby cluster this is a split brain).
    SomeMemberWritable,
    /// No member that answers runs as a writable primary (a cluster demoted to a standby).
    NoMemberWritable,
    /// The member has replayed WAL up to `position` at least (`X/Y`): a standby has caught up
    /// with where its primary site was, not merely started (`running` is not caught up).
    ReplayedPast { member: String, position: String },
    /// No other member that answers has received or replayed more WAL than this one: promoting
    /// it loses nothing another replica has (a failover's candidate, with no leader to
    /// measure lag against).
    MostAdvanced { member: String },
    /// The member sees the dynamic configuration with every one of these changes (its `GET
    /// /config`) and, where it reports when it last read the DCS, has begun an HA loop at
    /// least `loop_wait` + 1 s after the wait began: the loop after the one that applied the
    /// change (and reloaded PostgreSQL), so its pending restarts are those of the new values.
    ConfigPickedUp {
        member: String,
        changes: Vec<ConfigChange>,
        loop_wait: u64,
    },
    /// At least one of these holds.
    Any { checks: Vec<Check> },
    /// Every one of these holds (for `fail_if`, where a list means "any").
    All { checks: Vec<Check> },
}

/// The outcome of one check: whether it holds and what was seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub passed: bool,
    pub observed: String,
}

impl Verdict {
    fn new(passed: bool, observed: impl Into<String>) -> Self {
        Verdict {
            passed,
            observed: observed.into(),
        }
    }
}

impl Check {
    /// Caught up: streams from the leader and lags at most `max_lag` bytes.
    pub fn caught_up(member: &str, max_lag: u64) -> [Check; 2] {
        [
            Check::Streaming {
                member: member.into(),
            },
            Check::LagAtMost {
                member: member.into(),
                bytes: max_lag,
            },
        ]
    }

    /// Whether judging it needs the members' dynamic configuration (`MemberView::dynamic_config`).
    pub fn reads_dynamic_config(&self) -> bool {
        match self {
            Check::ConfigPickedUp { .. } => true,
            Check::Any { checks } | Check::All { checks } => {
                checks.iter().any(Check::reads_dynamic_config)
            }
            _ => false,
        }
    }

    pub fn state_in(member: &str, states: &[MemberState]) -> Check {
        Check::StateIn {
            member: member.into(),
            states: states
                .iter()
                .map(|state| state.as_str().to_string())
                .collect(),
        }
    }

    pub fn evaluate(&self, view: &ClusterView) -> Verdict {
        match self {
            Check::HealthyLeader => healthy_leader(view),
            Check::LeaderIs { member } => {
                let leader = view.leader.as_deref().unwrap_or("none");
                Verdict::new(leader == member, format!("the leader is {leader}"))
            }
            Check::NotLeader { member } => not_leader(view, member),
            Check::Reachable { member } => with_member(view, member, reachable),
            Check::Unreachable { member } => with_member(view, member, unreachable),
            Check::Registered { member } => with_member(view, member, registered),
            Check::NotRegistered { member } => not_registered(view, member),
            Check::TopologyAgreed => topology_agreed(view),
            Check::StateIn { member, states } => with_member(view, member, |view| {
                let state = state_text(view);
                Verdict::new(states.contains(&state), format!("{member} is {state}"))
            }),
            Check::Streaming { member } => {
                with_member(view, member, |view| streaming(member, view))
            }
            Check::LagAtMost { member, bytes } => {
                with_member(view, member, |view| lag_at_most(member, view, *bytes))
            }
            Check::NotTagged { member, tag } => {
                with_member(view, member, |view| not_tagged(member, view, tag))
            }
            Check::Tagged { member, tag } => with_member(view, member, |view| {
                let verdict = not_tagged(member, view, tag);
                Verdict::new(!verdict.passed, verdict.observed)
            }),
            Check::Paused { paused } => every_member_paused(view, *paused),
            Check::PauseRecorded { paused } => Verdict::new(
                view.paused == *paused,
                format!("the DCS records maintenance mode {}", on_off(view.paused)),
            ),
            Check::RestartedSince { member, before } => {
                with_member(view, member, |view| restarted_since(member, view, before))
            }
            Check::TimelineAbove { timeline } => timeline_above(view, *timeline),
            Check::TimelineIs { timeline } => timeline_is(view, *timeline),
            Check::PatroniVersion { member, version } => {
                with_member(view, member, |view| patroni_version(member, view, version))
            }
            Check::PostgresVersion { member, version } => {
                with_member(view, member, |view| postgres_version(member, view, version))
            }
            Check::StandbyLeader { member } => standby_leader(view, member),
            Check::SomeMemberWritable => some_member_writable(view),
            Check::NoMemberWritable => {
                let verdict = some_member_writable(view);
                Verdict::new(!verdict.passed, verdict.observed)
            }
            Check::ReplayedPast { member, position } => {
                with_member(view, member, |view| replayed_past(member, view, position))
            }
            Check::SystemIdentifier { identifier } => {
                let current = view.system_identifier.as_deref().unwrap_or("unknown");
                Verdict::new(
                    current == identifier,
                    format!("system identifier {current}"),
                )
            }
            Check::SwitchoverScheduled { to } => switchover_scheduled(view, to),
            Check::MostAdvanced { member } => most_advanced(view, member),
            Check::NoSwitchoverScheduled => match &view.scheduled_switchover {
                None => Verdict::new(true, "no switchover scheduled"),
                Some(switchover) => Verdict::new(
                    false,
                    format!(
                        "a switchover is scheduled at {}",
                        switchover.at.as_deref().unwrap_or("an unknown time")
                    ),
                ),
            },
            Check::NoRestartScheduled { member } => {
                with_member(view, member, |view| match view.scheduled_restart() {
                    None => Verdict::new(true, format!("{member} has no restart scheduled")),
                    Some(at) => Verdict::new(false, format!("{member} restarts at {at}")),
                })
            }
            Check::NoPendingRestart { member } => with_member(view, member, no_pending_restart),
            Check::ConfigPickedUp {
                member,
                changes,
                loop_wait,
            } => with_member(view, member, |member_view| {
                let settled_after = view
                    .wait_began
                    .map(|began| began.saturating_add_unsigned(*loop_wait) + 1);
                config_picked_up(member, member_view, changes, settled_after)
            }),
            Check::ConsulPassing { .. }
            | Check::ConsulDeregistered { .. }
            | Check::ConsulServes { .. }
            | Check::ConsulTreeEmpty => with_consul(view, |consul| self.on_consul(view, consul)),
            Check::EtcdTreeEmpty => etcd_tree_empty(view),
            Check::Any { checks } => combined(checks, view, false),
            Check::All { checks } => combined(checks, view, true),
        }
    }
}

fn timeline_is(view: &ClusterView, timeline: u32) -> Verdict {
    let current = cluster_timeline(view);
    Verdict::new(
        current == Some(timeline),
        current.map_or_else(|| "timeline unknown".into(), |t| format!("timeline {t}")),
    )
}

fn patroni_version(member: &str, view: &MemberView, version: &str) -> Verdict {
    let running = view.patroni_version().map(|version| version.to_string());
    Verdict::new(
        running.as_deref() == Some(version),
        running.map_or_else(
            || format!("{member} does not report its Patroni release"),
            |running| format!("{member} runs Patroni {running}"),
        ),
    )
}

fn standby_leader(view: &ClusterView, member: &str) -> Verdict {
    let leader = view.leader.as_deref().unwrap_or("none");
    if leader != member {
        return Verdict::new(false, format!("the leader is {leader}"));
    }
    let role = view
        .member(member)
        .and_then(|view| view.status.as_ref().ok())
        .map(|status| status.role.clone());
    match role {
        Some(crate::patroni::PostgresRole::StandbyLeader) => {
            Verdict::new(true, format!("{member} is the standby leader"))
        }
        Some(role) => Verdict::new(false, format!("{member} leads as {role}")),
        None => Verdict::new(false, format!("{member}'s REST API does not answer")),
    }
}

fn replayed_past(member: &str, view: &MemberView, position: &str) -> Verdict {
    let Ok(wanted) = position.parse::<crate::patroni::Lsn>() else {
        return Verdict::new(false, format!("{position:?} is not a WAL position"));
    };
    match view.status.as_ref().map(|status| &status.wal) {
        Ok(crate::patroni::WalPosition::Replica {
            replayed: Some(replayed),
            ..
        }) => Verdict::new(
            *replayed >= wanted,
            format!("{member} has replayed up to {replayed}"),
        ),
        Ok(crate::patroni::WalPosition::Primary { .. }) => {
            Verdict::new(false, format!("{member} runs as a primary"))
        }
        Ok(_) => Verdict::new(false, format!("{member} reports no replayed position")),
        Err(_) => Verdict::new(false, format!("{member}'s REST API does not answer")),
    }
}

fn some_member_writable(view: &ClusterView) -> Verdict {
    let writable: Vec<&str> = view
        .members
        .iter()
        .filter(|member| {
            member
                .status
                .as_ref()
                .is_ok_and(|status| status.role == crate::patroni::PostgresRole::Primary)
        })
        .map(|member| member.name.as_str())
        .collect();
    if writable.is_empty() {
        Verdict::new(false, "no member runs as a writable primary")
    } else {
        Verdict::new(
            true,
            format!("{} runs as a writable primary", writable.join(", ")),
        )
    }
}

fn postgres_version(member: &str, view: &MemberView, version: &str) -> Verdict {
    let running = view
        .status
        .as_ref()
        .ok()
        .and_then(|status| status.server_version)
        .map(crate::patroni::format_server_version);
    Verdict::new(
        running.as_deref() == Some(version),
        running.map_or_else(
            || format!("{member} does not report its PostgreSQL release"),
            |running| format!("{member} runs PostgreSQL {running}"),
        ),
    )
}

fn unreachable(view: &MemberView) -> Verdict {
    let verdict = reachable(view);
    Verdict::new(
        !verdict.passed,
        if verdict.passed {
            "its REST API still answers".to_string()
        } else {
            verdict.observed
        },
    )
}

fn registered(view: &MemberView) -> Verdict {
    let registered = view.dcs.is_some();
    Verdict::new(
        registered,
        if registered {
            "registered in the DCS"
        } else {
            "not registered in the DCS"
        },
    )
}

fn timeline_above(view: &ClusterView, timeline: u32) -> Verdict {
    let current = cluster_timeline(view);
    let observed = current.map_or_else(
        || "timeline unknown".into(),
        |current| format!("timeline {current}"),
    );
    Verdict::new(current.is_some_and(|current| current > timeline), observed)
}

/// Every change in the member's view of `/config`, and (where Patroni reports when it last
/// read the DCS: 3.x on) an HA loop of the member begun after the wait did: Patroni applies a
/// new dynamic configuration in the loop that reads it, while `/config` may show it at once
/// (etcd's watch). Then which parameters it waits to restart for.
fn config_picked_up(
    member: &str,
    view: &MemberView,
    changes: &[ConfigChange],
    settled_after: Option<i64>,
) -> Verdict {
    let Some(config) = &view.dynamic_config else {
        return Verdict::new(false, format!("{member}'s /config could not be read"));
    };
    let last_seen = view
        .status
        .as_ref()
        .ok()
        .and_then(|status| status.dcs_last_seen);
    if let (Some(settled), Some(seen)) = (settled_after, last_seen)
        && seen < settled
    {
        return Verdict::new(
            false,
            format!("{member} sees the change; waiting for its next HA loop to have applied it"),
        );
    }
    let missing: Vec<String> = changes
        .iter()
        .filter(|change| !change.holds_in(config))
        .map(|change| change.path.clone())
        .collect();
    if !missing.is_empty() {
        return Verdict::new(
            false,
            format!("{member} does not see {} yet", missing.join(", ")),
        );
    }
    let pending = view.pending_restart_reason();
    let restart = if pending.is_empty() && view.pending_restart() {
        "; restart pending".to_string()
    } else if pending.is_empty() {
        String::new()
    } else {
        format!(
            "; restart pending for {}",
            pending
                .iter()
                .map(|(name, change)| format!(
                    "{name} ({} -> {})",
                    setting_text(change.old_value.as_ref()),
                    setting_text(change.new_value.as_ref())
                ))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Verdict::new(true, format!("{member} has the new configuration{restart}"))
}

/// `ttl: 30, postgresql.parameters.work_mem: "8MB"`.
fn described(changes: &[ConfigChange]) -> String {
    changes
        .iter()
        .map(ConfigChange::describe)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A setting as PostgreSQL shows it: `50`, not `"50"`.
fn setting_text(value: Option<&serde_json::Value>) -> String {
    match value {
        Some(serde_json::Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => "?".into(),
    }
}

fn no_pending_restart(view: &MemberView) -> Verdict {
    let pending = view.pending_restart();
    Verdict::new(
        !pending,
        if pending {
            "restart pending"
        } else {
            "no restart pending"
        },
    )
}

impl Check {
    /// The checks on what Consul answered.
    fn on_consul(&self, view: &ClusterView, consul: &ConsulView) -> Verdict {
        match self {
            Check::ConsulPassing { member, tag } => consul_passing(view, consul, member, tag),
            Check::ConsulDeregistered { member } => match consul.instance(&view.scope, member) {
                Some(instance) => Verdict::new(
                    false,
                    format!(
                        "{} is still registered ({}, {})",
                        instance.id,
                        instance.tags.join(","),
                        instance.status().as_str()
                    ),
                ),
                None => Verdict::new(true, format!("{member} is not registered")),
            },
            Check::ConsulServes { tag, members } => consul_serves(view, consul, tag, members),
            Check::ConsulTreeEmpty => match &consul.keys {
                Ok(keys) if keys.is_empty() => {
                    Verdict::new(true, format!("no key under {}", consul.prefix))
                }
                Ok(keys) => Verdict::new(
                    false,
                    format!("{} keys under {}", keys.len(), consul.prefix),
                ),
                Err(error) => Verdict::new(false, error.clone()),
            },
            _ => unreachable!("only Consul checks are judged on Consul"),
        }
    }
}

/// `Any` (`every` false) or `All` (`every` true) of `checks`, with every observation.
fn combined(checks: &[Check], view: &ClusterView, every: bool) -> Verdict {
    let verdicts: Vec<Verdict> = checks.iter().map(|check| check.evaluate(view)).collect();
    let observed = verdicts
        .iter()
        .map(|verdict| verdict.observed.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    let passed = if every {
        verdicts.iter().all(|verdict| verdict.passed)
    } else {
        verdicts.iter().any(|verdict| verdict.passed)
    };
    Verdict::new(passed, observed)
}

fn not_registered(view: &ClusterView, member: &str) -> Verdict {
    let registered = view.member(member).is_some_and(|view| view.dcs.is_some());
    let observed = if registered {
        format!("{member} is already registered in the DCS")
    } else {
        format!("{member} is not registered in the DCS")
    };
    Verdict::new(!registered, observed)
}

fn topology_agreed(view: &ClusterView) -> Verdict {
    let disagreements: Vec<&str> = view
        .warnings
        .iter()
        .filter(|warning| {
            matches!(
                warning,
                crate::observe::Warning::LeaderDisagreement { .. }
                    | crate::observe::Warning::MembershipDisagreement { .. }
            )
        })
        .map(crate::observe::Warning::message)
        .collect();
    let answering = view
        .members
        .iter()
        .filter(|member| member.is_reachable())
        .count();
    if disagreements.is_empty() {
        Verdict::new(
            true,
            format!("the {answering} members that answer agree on the members and the leader"),
        )
    } else {
        Verdict::new(false, disagreements.join("; "))
    }
}

fn on_off(flag: bool) -> &'static str {
    if flag { "on" } else { "off" }
}

fn healthy_leader(view: &ClusterView) -> Verdict {
    match view.leader.as_deref().and_then(|name| view.member(name)) {
        Some(leader) if leader.state() == Some(MemberState::Running) => {
            Verdict::new(true, format!("{} leads and runs", leader.name))
        }
        Some(leader) => Verdict::new(
            false,
            format!("{} leads but is {}", leader.name, state_text(leader)),
        ),
        None => Verdict::new(false, "no member holds the leader key"),
    }
}

/// Not the leader by the DCS, and not running PostgreSQL as a primary either.
fn not_leader(view: &ClusterView, member: &str) -> Verdict {
    let leader = view.leader.as_deref().unwrap_or("none");
    let primary = view
        .member(member)
        .and_then(|view| view.status.as_ref().ok())
        .is_some_and(|status| status.role.is_leader());
    let also = if primary {
        format!("; {member} runs as primary")
    } else {
        String::new()
    };
    Verdict::new(
        leader != member && !primary,
        format!("the leader is {leader}{also}"),
    )
}

fn reachable(view: &MemberView) -> Verdict {
    match &view.status {
        Ok(_) => Verdict::new(true, "its REST API answers"),
        Err(failure) => Verdict::new(false, failure.message.clone()),
    }
}

fn not_tagged(member: &str, view: &MemberView, tag: &str) -> Verdict {
    let tagged = view
        .tags()
        .get(tag)
        .is_some_and(|value| value == &serde_json::Value::Bool(true));
    let observed = if tagged {
        format!("{member} is tagged {tag}")
    } else {
        format!("{member} is not tagged {tag}")
    };
    Verdict::new(!tagged, observed)
}

fn every_member_paused(view: &ClusterView, wanted: bool) -> Verdict {
    let answering: Vec<&MemberView> = view
        .members
        .iter()
        .filter(|member| member.is_reachable())
        .collect();
    let disagreeing: Vec<&str> = answering
        .iter()
        .filter(|member| {
            member
                .status
                .as_ref()
                .is_ok_and(|status| status.paused != wanted)
        })
        .map(|member| member.name.as_str())
        .collect();
    let holds = !answering.is_empty() && disagreeing.is_empty() && view.paused == wanted;
    let observed = if disagreeing.is_empty() {
        format!(
            "maintenance mode {} as reported by all {} members",
            on_off(view.paused),
            answering.len()
        )
    } else {
        format!("not yet on {}", disagreeing.join(", "))
    };
    Verdict::new(holds, observed)
}

fn restarted_since(member: &str, view: &MemberView, before: &str) -> Verdict {
    match view
        .status
        .as_ref()
        .ok()
        .and_then(|status| status.postmaster_start_time.clone())
    {
        Some(started) => Verdict::new(
            started != before,
            format!("PostgreSQL started at {started}"),
        ),
        None => Verdict::new(false, format!("{member} does not report its start time")),
    }
}

fn switchover_scheduled(view: &ClusterView, to: &str) -> Verdict {
    match &view.scheduled_switchover {
        Some(scheduled) => Verdict::new(
            scheduled.to.as_deref() == Some(to),
            format!(
                "switchover to {} scheduled at {}",
                scheduled.to.as_deref().unwrap_or("any"),
                scheduled.at.as_deref().unwrap_or("?")
            ),
        ),
        None => Verdict::new(false, "no switchover scheduled"),
    }
}

/// Judges by what Consul answered; a check on Consul fails when Consul was not read.
fn etcd_tree_empty(view: &ClusterView) -> Verdict {
    let Some(etcd) = &view.etcd else {
        return Verdict::new(false, "etcd is not configured for this cluster");
    };
    match &etcd.keys {
        Ok(keys) if keys.is_empty() => Verdict::new(true, format!("no key under {}", etcd.prefix)),
        Ok(keys) => Verdict::new(false, format!("{} keys under {}", keys.len(), etcd.prefix)),
        Err(error) => Verdict::new(false, format!("etcd did not answer: {error}")),
    }
}

fn with_consul(view: &ClusterView, judge: impl FnOnce(&ConsulView) -> Verdict) -> Verdict {
    match &view.consul {
        None => Verdict::new(false, "Consul is not configured for this cluster"),
        Some(consul) => match &consul.instances {
            Err(error) => Verdict::new(false, format!("Consul did not answer: {error}")),
            Ok(_) => judge(consul),
        },
    }
}

fn consul_passing(view: &ClusterView, consul: &ConsulView, member: &str, tag: &str) -> Verdict {
    let Some(instance) = consul.instance(&view.scope, member) else {
        return Verdict::new(
            false,
            format!("{member} is not registered in {}", consul.service),
        );
    };
    let status = instance.status();
    let observed = format!(
        "{} is tagged {} and {}",
        instance.id,
        instance.tags.join(","),
        status.as_str()
    );
    Verdict::new(
        instance.has_tag(tag) && status == CheckStatus::Passing,
        observed,
    )
}

fn consul_serves(
    view: &ClusterView,
    consul: &ConsulView,
    tag: &str,
    members: &[String],
) -> Verdict {
    let mut serving: Vec<String> = consul
        .passing_with_tag(tag)
        .iter()
        .map(|instance| {
            instance
                .id
                .strip_prefix(&format!("{}/", view.scope))
                .unwrap_or(&instance.id)
                .to_string()
        })
        .collect();
    serving.sort();
    let mut expected = members.to_vec();
    expected.sort();
    let listed = if serving.is_empty() {
        "none".to_string()
    } else {
        serving.join(", ")
    };
    Verdict::new(
        serving == expected,
        format!("{tag}.{} resolves to {listed}", consul.service),
    )
}

fn with_member(
    view: &ClusterView,
    member: &str,
    judge: impl FnOnce(&MemberView) -> Verdict,
) -> Verdict {
    match view.member(member) {
        Some(member_view) => judge(member_view),
        None => Verdict::new(false, format!("{member} is not in the cluster")),
    }
}

fn state_text(member: &MemberView) -> String {
    member.state().map_or_else(
        || "unreachable".to_string(),
        |state| state.as_str().to_string(),
    )
}

fn streaming(member: &str, view: &MemberView) -> Verdict {
    if view.is_leader() {
        return Verdict::new(false, format!("{member} is the leader"));
    }
    let state = view.state();
    let old_release_running = state == Some(MemberState::Running)
        && view
            .status
            .as_ref()
            .is_ok_and(|status| !status.reports_replication_state())
        && view.receive_lsn().is_some();
    let passed = state == Some(MemberState::Streaming) || old_release_running;
    Verdict::new(passed, format!("{member} is {}", state_text(view)))
}

fn lag_at_most(member: &str, view: &MemberView, limit: u64) -> Verdict {
    let lags = [view.receive_lag(), view.replay_lag()];
    let worst = lags
        .iter()
        .flatten()
        .try_fold(0u64, |worst, lag| match lag {
            Lag::Bytes(bytes) => Some(worst.max(*bytes)),
            Lag::Unknown => None,
        });
    match (worst, lags.iter().all(Option::is_none)) {
        (_, true) => Verdict::new(false, format!("{member} reports no lag")),
        (Some(bytes), false) => Verdict::new(
            bytes <= limit,
            format!("{member} lags {}", human_bytes(bytes)),
        ),
        (None, false) => Verdict::new(false, format!("{member}'s lag is unknown")),
    }
}

/// The furthest WAL position a replica reports (received or replayed).
fn position(view: &MemberView) -> Option<crate::patroni::Lsn> {
    view.receive_lsn().max(view.replay_lsn())
}

fn most_advanced(view: &ClusterView, member: &str) -> Verdict {
    with_member(view, member, |candidate| {
        let Some(own) = position(candidate) else {
            return Verdict::new(false, format!("{member} reports no WAL position"));
        };
        let ahead: Vec<String> = view
            .members
            .iter()
            .filter(|other| other.name != member && other.is_reachable())
            .filter_map(|other| Some((other, position(other)?)))
            .filter(|(_, theirs)| *theirs > own)
            .map(|(other, theirs)| format!("{} at {theirs}", other.name))
            .collect();
        if ahead.is_empty() {
            Verdict::new(true, format!("{member} is at {own}, no replica further"))
        } else {
            Verdict::new(
                false,
                format!("{member} is at {own}; further: {}", ahead.join(", ")),
            )
        }
    })
}

/// The leader's timeline, else the highest any member reports.
pub fn cluster_timeline(view: &ClusterView) -> Option<u32> {
    view.leader
        .as_deref()
        .and_then(|leader| view.member(leader))
        .and_then(MemberView::timeline)
        .or_else(|| view.members.iter().filter_map(MemberView::timeline).max())
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::HealthyLeader => write!(f, "a leader holds the leader key and runs"),
            Check::LeaderIs { member } => write!(f, "{member} is the leader"),
            Check::NotLeader { member } => write!(f, "{member} is not the leader"),
            Check::Reachable { member } => write!(f, "{member}'s REST API answers"),
            Check::Unreachable { member } => write!(f, "{member}'s REST API does not answer"),
            Check::Registered { member } => write!(f, "{member} is registered in the DCS"),
            Check::NotRegistered { member } => {
                write!(f, "{member} is not yet registered in the DCS")
            }
            Check::TopologyAgreed => write!(
                f,
                "every member that answers lists the same members and the same leader"
            ),
            Check::StateIn { member, states } => write!(f, "{member} is {}", states.join(" or ")),
            Check::Streaming { member } => write!(f, "{member} streams from the leader"),
            Check::NoSwitchoverScheduled => write!(f, "no switchover is scheduled"),
            Check::ConfigPickedUp {
                member, changes, ..
            } => write!(f, "{member} sees {}", described(changes)),
            Check::NoRestartScheduled { member } => {
                write!(f, "{member} has no restart scheduled")
            }
            Check::MostAdvanced { member } => write!(
                f,
                "no other replica has received or replayed more WAL than {member}"
            ),
            Check::LagAtMost { member, bytes } => {
                write!(f, "{member} lags at most {}", human_bytes(*bytes))
            }
            Check::NotTagged { member, tag } => write!(f, "{member} is not tagged {tag}"),
            Check::Tagged { member, tag } => write!(f, "{member} is tagged {tag}"),
            Check::Paused { paused: true } => write!(f, "every member reports maintenance mode on"),
            Check::Paused { paused: false } => {
                write!(f, "every member reports maintenance mode off")
            }
            Check::PauseRecorded { paused } => {
                write!(
                    f,
                    "the DCS records maintenance mode {}",
                    if *paused { "on" } else { "off" }
                )
            }
            Check::RestartedSince { member, before } => write!(
                f,
                "PostgreSQL on {member} restarted (it started at {before})"
            ),
            Check::PatroniVersion { member, version } => {
                write!(f, "{member} runs Patroni {version}")
            }
            Check::PostgresVersion { member, version } => {
                write!(f, "{member} runs PostgreSQL {version}")
            }
            Check::StandbyLeader { member } => {
                write!(f, "{member} leads the standby cluster as standby_leader")
            }
            Check::SomeMemberWritable => write!(f, "a member runs as a writable primary"),
            Check::NoMemberWritable => write!(f, "no member runs as a writable primary"),
            Check::ReplayedPast { member, position } => {
                write!(f, "{member} has replayed past {position}")
            }
            Check::TimelineIs { timeline } => write!(f, "the cluster is on timeline {timeline}"),
            Check::TimelineAbove { timeline } => write!(f, "the timeline is above {timeline}"),
            Check::SystemIdentifier { identifier } => {
                write!(f, "the database system identifier is {identifier}")
            }
            Check::SwitchoverScheduled { to } => write!(f, "a switchover to {to} is scheduled"),
            Check::NoPendingRestart { member } => write!(f, "{member} has no pending restart"),
            Check::ConsulPassing { member, tag } => {
                write!(f, "{member} is registered in Consul as {tag} and passing")
            }
            Check::ConsulDeregistered { member } => {
                write!(f, "{member} is not registered in Consul")
            }
            Check::ConsulServes { tag, members } => write!(
                f,
                "Consul's passing {tag} instances are exactly {}",
                if members.is_empty() {
                    "none".to_string()
                } else {
                    members.join(", ")
                }
            ),
            Check::ConsulTreeEmpty => write!(f, "no key is left under the cluster's Consul prefix"),
            Check::EtcdTreeEmpty => write!(f, "no key is left under the cluster's etcd prefix"),
            Check::Any { checks } => {
                let parts: Vec<String> = checks.iter().map(ToString::to_string).collect();
                write!(f, "{}", parts.join(", or "))
            }
            Check::All { checks } => {
                let parts: Vec<String> = checks.iter().map(ToString::to_string).collect();
                write!(f, "{}", parts.join(", and "))
            }
        }
    }
}
