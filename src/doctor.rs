//! `pgha doctor`: what is wrong with a cluster, or will be when something fails, found
//! read-only — seed 004's reasons clusters fail and seed 001's slots that fill a disk. Every
//! finding says what was seen, why it matters and what fixes it, with a severity: critical
//! takes writes away or risks data, warning degrades the cluster or its next failover, info is
//! worth knowing. Built from one observation (the status view and its warnings), the dynamic
//! configuration and, where pgha has SQL access, the leader's replication slots; the findings
//! are pure functions of those, so each is proven by a unit test and provoked on the lab.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use crate::inventory::ClusterTarget;
use crate::observe::{ClusterView, Severity, Warning};
use crate::patroni::{Lag, MemberState, PostgresRole};
use crate::postgres::{HbaRules, InactiveSlot};

pub use hba::Replica;

mod hba;
use crate::ui::human_bytes;

/// An inactive slot holding more than this is a finding: a WAL segment is 16 MiB.
pub const SLOT_RETENTION: u64 = 64 << 20;

/// Patroni's defaults where the dynamic configuration does not say.
const DEFAULT_TTL: u64 = 30;
const DEFAULT_LOOP_WAIT: u64 = 10;
const DEFAULT_RETRY_TIMEOUT: u64 = 10;
const DEFAULT_MAXIMUM_LAG: u64 = 1 << 20;

/// What the doctor reads, besides the view.
pub struct Inputs<'a> {
    pub target: &'a ClusterTarget,
    pub view: &'a ClusterView,
    /// `GET /config`, or why it could not be read.
    pub config: Result<Value, String>,
    /// The leader's inactive slots; `None` without SQL access or without a leader.
    pub slots: Option<Result<Vec<InactiveSlot>, String>>,
    /// The leader's `pg_hba.conf` rules, and the replicas that must pass them; `None` without
    /// SQL access or without a leader.
    pub hba: Option<(Result<HbaRules, String>, Vec<Replica>)>,
    /// The filesystem of the leader's data directory; `None` without SSH or a data directory.
    pub disk: Option<Result<DiskUsage, String>>,
    /// Below this share of its filesystem free, the leader's disk is a warning (below a third
    /// of it, critical).
    pub min_free_disk: Percent,
}

/// A filesystem's size and what is available to PostgreSQL, in bytes (`df`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DiskUsage {
    pub size: u64,
    pub available: u64,
}

impl DiskUsage {
    /// `df`'s `SIZE AVAILABLE`, as pgha's read prints it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let numbers: Vec<u64> = text
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| format!("df printed {:?}", text.trim()))?;
        match numbers[..] {
            [size, available] if size > 0 => Ok(DiskUsage { size, available }),
            _ => Err(format!("df printed {:?}", text.trim())),
        }
    }

    fn free_share(self) -> f64 {
        // Bytes to f64 loses nothing that matters for a percentage.
        #[allow(clippy::cast_precision_loss)]
        let share = self.available as f64 / self.size as f64 * 100.0;
        share
    }
}

/// A share, 0 to 100 (`--min-free-disk 15`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percent(f64);

impl Percent {
    pub const DEFAULT_MIN_FREE_DISK: Percent = Percent(15.0);

    pub fn parse(text: &str) -> Result<Self, String> {
        let number: f64 = text
            .trim()
            .trim_end_matches('%')
            .parse()
            .map_err(|_| format!("{text:?} is not a percentage (a number from 0 to 100)"))?;
        if (0.0..=100.0).contains(&number) {
            Ok(Percent(number))
        } else {
            Err(format!("{text:?} is not between 0 and 100"))
        }
    }
}

/// One thing found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub code: String,
    pub severity: Severity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// What was seen.
    pub seen: String,
    /// Why it matters.
    pub why: String,
    /// What fixes it.
    pub fix: String,
}

impl Finding {
    fn new(code: &str, severity: Severity, seen: String, why: &str, fix: &str) -> Self {
        Finding {
            code: code.into(),
            severity,
            member: None,
            seen,
            why: why.into(),
            fix: fix.into(),
        }
    }

    fn on(mut self, member: &str) -> Self {
        self.member = Some(member.into());
        self
    }
}

/// Every finding, the most severe first.
pub fn diagnose(inputs: &Inputs<'_>) -> Vec<Finding> {
    let mut findings: Vec<Finding> = inputs
        .view
        .warnings
        .iter()
        // The doctor's own `standby_cluster_writable` says it with the leader's role.
        .filter(|warning| !matches!(warning, Warning::StandbyWritable { .. }))
        .map(from_warning)
        .collect();
    findings.extend(mixed_versions(inputs.view));
    findings.extend(pending_restarts(inputs.view));
    findings.extend(standby_leader(inputs.target, inputs.view));
    findings.extend(no_failover_candidate(inputs.view));
    findings.extend(paused(inputs.view));
    findings.extend(replicas_behind(
        inputs.view,
        inputs
            .config
            .as_ref()
            .ok()
            .map_or(DEFAULT_MAXIMUM_LAG, |config| {
                config["maximum_lag_on_failover"]
                    .as_u64()
                    .unwrap_or(DEFAULT_MAXIMUM_LAG)
            }),
    ));
    match &inputs.config {
        Ok(config) => {
            findings.extend(timing(config));
            findings.extend(failsafe(inputs.target, config));
        }
        Err(why) => findings.push(Finding::new(
            "config_unread",
            Severity::Info,
            format!("the dynamic configuration could not be read: {why}"),
            "the timing and failsafe checks need it",
            "check that a member's REST API answers `GET /config`",
        )),
    }
    findings.extend(slots(inputs.view, inputs.slots.as_ref()));
    findings.extend(leader_disk(inputs));
    let leader = inputs.view.leader.as_deref().unwrap_or_default();
    match &inputs.hba {
        Some((Ok(rules), replicas)) => findings.extend(hba::findings(leader, rules, replicas)),
        Some((Err(why), _)) => findings.push(Finding::new(
            "hba_unread",
            Severity::Info,
            format!("the leader's pg_hba.conf rules could not be read: {why}"),
            "a rule that shuts the replicas out shows only when they reconnect",
            "check the inventory's `postgres:` access (reading `pg_hba_file_rules` needs a superuser)",
        )),
        None => {}
    }
    findings.sort_by_key(|finding| std::cmp::Reverse(finding.severity));
    findings
}

/// The worst severity found.
pub fn worst(findings: &[Finding]) -> Option<Severity> {
    findings.iter().map(|finding| finding.severity).max()
}

/// A status warning as a finding: the status line, with why and the fix.
fn from_warning(warning: &Warning) -> Finding {
    let code = serde_json::to_value(warning)
        .ok()
        .and_then(|value| value["code"].as_str().map(str::to_string))
        .unwrap_or_else(|| "warning".into());
    let (why, fix) = advice(warning);
    let member = match warning {
        Warning::MemberUnreachable { member, .. }
        | Warning::NotInCluster { member, .. }
        | Warning::NotInInventory { member, .. }
        | Warning::IdentityMismatch { member, .. }
        | Warning::ConsulNotRegistered { member, .. }
        | Warning::ConsulWrongTag { member, .. }
        | Warning::ConsulCheckFailing { member, .. }
        | Warning::LeaderUnreachable { member, .. }
        | Warning::StandbyWritable { member, .. } => Some(member.clone()),
        _ => None,
    };
    Finding {
        code,
        severity: warning.severity(),
        member,
        seen: warning.message().to_string(),
        why: why.into(),
        fix: fix.into(),
    }
}

fn advice(warning: &Warning) -> (&'static str, &'static str) {
    match warning {
        Warning::MemberUnreachable { .. } => (
            "pgha cannot see the member: it may be down, and it cannot be a failover candidate",
            "check that Patroni runs on the host and that its REST API is reachable from here",
        ),
        Warning::LeaderDisagreement { .. } => (
            "members disagree on who leads: a split brain, or a view of the DCS that is stale",
            "find the member running as primary without the leader key and stop it; check the DCS",
        ),
        Warning::MembershipDisagreement { .. } => (
            "members see different members: some read a stale or different DCS",
            "check that every member's DCS settings point at the same cluster",
        ),
        Warning::NoLeader { .. } => (
            "no member holds the leader key: the cluster takes no writes",
            "see why the leader race fails (members' logs); `pgha failover` once a candidate is healthy",
        ),
        Warning::DcsUnreachable { .. } => (
            "a member that cannot read the DCS cannot keep or take the leader key: the leader demotes at `ttl` unless failsafe mode holds it",
            "restore the DCS or the members' path to it",
        ),
        Warning::NotInCluster { .. } => (
            "the inventory lists a member the DCS does not: it is down, or the inventory is stale",
            "start it, or remove it from the inventory",
        ),
        Warning::NotInInventory { .. } => (
            "a member pgha was not told about: runbooks will not act on it",
            "add it to the inventory, or remove it from the cluster",
        ),
        Warning::IdentityMismatch { .. } => (
            "a member of another cluster or another database answers here",
            "fix the inventory's host or the member's Patroni scope",
        ),
        Warning::ConsulUnreachable { .. } | Warning::EtcdUnreachable { .. } => (
            "pgha cannot read the DCS itself; the members' view is shown alone",
            "check the inventory's `dcs:` settings and the DCS's health",
        ),
        Warning::ConsulNotRegistered { .. } => (
            "clients that find the cluster through Consul do not see this member",
            "check Patroni's `consul.register_service` and the local Consul agent",
        ),
        Warning::ConsulWrongTag { .. } => (
            "clients that find the primary through Consul may be sent to a replica, or the reverse",
            "wait one loop_wait; if it stays, restart the member's Consul agent",
        ),
        Warning::ConsulCheckFailing { .. } => (
            "Consul skips a member whose checks fail: clients do not reach it",
            "see the member's Consul health checks",
        ),
        Warning::ConsulNotMember { .. } => (
            "Consul still serves an instance that is no member: clients may be sent to it",
            "deregister the dead instance (`consul services deregister`)",
        ),
        Warning::EtcdNoQuorum { .. } => (
            "etcd without quorum accepts no writes: Patroni cannot keep the leader key, the leader demotes at `ttl`",
            "bring etcd members back until a majority runs",
        ),
        Warning::LeaderUnreachable { .. } => (
            "the leader key is held by a member whose API does not answer: when it is gone, writes stop until the key expires",
            "check the leader's host; the key expires after `ttl` and a replica takes over",
        ),
        Warning::StandbyWritable { .. } => (
            "a standby cluster that takes writes has split from its primary site: two primaries",
            "stop writes to it; rebuild it from the primary site (`pgha geo-resetup`), or fix the inventory",
        ),
    }
}

fn mixed_versions(view: &ClusterView) -> Option<Finding> {
    let versions: BTreeSet<String> = view
        .members
        .iter()
        .filter_map(|member| member.status.as_ref().ok()?.patroni_version)
        .map(|version| version.to_string())
        .collect();
    (versions.len() > 1).then(|| {
        Finding::new(
            "mixed_patroni_versions",
            Severity::Warning,
            format!(
                "members run different Patroni releases: {}",
                versions.into_iter().collect::<Vec<_>>().join(", ")
            ),
            "an unfinished upgrade: releases differ in their REST API and their failover behaviour",
            "finish the upgrade (`pgha rolling-upgrade --to VERSION`)",
        )
    })
}

fn pending_restarts(view: &ClusterView) -> Vec<Finding> {
    view.members
        .iter()
        .filter_map(|member| {
            let status = member.status.as_ref().ok()?;
            status.pending_restart.then(|| {
                let reasons: Vec<&str> = status
                    .pending_restart_reason
                    .keys()
                    .map(String::as_str)
                    .collect();
                Finding::new(
                    "pending_restart",
                    Severity::Warning,
                    if reasons.is_empty() {
                        format!("{} has a restart pending", member.name)
                    } else {
                        format!(
                            "{} has a restart pending for {}",
                            member.name,
                            reasons.join(", ")
                        )
                    },
                    "a setting changed but is not in effect: the member runs with the old value until it restarts, perhaps at the worst moment",
                    "restart it (`pgha restart --member NAME`)",
                )
                .on(&member.name)
            })
        })
        .collect()
}

/// A cluster the inventory calls a standby must be led by a standby leader.
fn standby_leader(target: &ClusterTarget, view: &ClusterView) -> Option<Finding> {
    let leader = view.member(view.leader.as_deref()?)?;
    let role = &leader.status.as_ref().ok()?.role;
    let leads_a_standby = *role == PostgresRole::StandbyLeader;
    if target.standby && !leads_a_standby {
        return Some(
            Finding::new(
                "standby_cluster_writable",
                Severity::Critical,
                format!(
                    "the inventory marks {} a standby cluster, but its leader {} runs as {role}",
                    target.cluster, leader.name
                ),
                "a standby cluster that takes writes has split from its primary site: two primaries",
                "stop writes to it; rebuild it from the primary site (`pgha geo-resetup`), or fix the inventory",
            )
            .on(&leader.name),
        );
    }
    (!target.standby && leads_a_standby).then(|| {
        Finding::new(
            "standby_not_in_inventory",
            Severity::Info,
            format!(
                "{} is led by a standby leader, but the inventory does not mark it `standby: true`",
                target.cluster
            ),
            "runbooks for standby clusters (geo-resetup) refuse it, and cluster-reinit would treat it as a primary",
            "set `standby: true` for the cluster in the inventory",
        )
        .on(&leader.name)
    })
}

fn no_failover_candidate(view: &ClusterView) -> Option<Finding> {
    let leader = view.leader.as_deref();
    // The replicas that answer, each with whether it is tagged nofailover.
    let replicas: Vec<(&str, bool)> = view
        .members
        .iter()
        .filter(|member| Some(member.name.as_str()) != leader)
        .filter_map(|member| {
            let status = member.status.as_ref().ok()?;
            let tagged = status.tags.get("nofailover").and_then(Value::as_bool) == Some(true);
            Some((member.name.as_str(), tagged))
        })
        .collect();
    let all_nofailover = !replicas.is_empty() && replicas.iter().all(|(_, tagged)| *tagged);
    let replicas: Vec<&str> = replicas.into_iter().map(|(name, _)| name).collect();
    all_nofailover.then(|| {
        Finding::new(
            "no_failover_candidate",
            Severity::Critical,
            format!(
                "every replica ({}) is tagged nofailover",
                replicas.join(", ")
            ),
            "when the leader fails, no member may take over: the cluster takes no writes until someone acts",
            "remove `nofailover` from at least one replica's tags and reload it",
        )
    })
}

/// A replica that runs but does not stream, further behind than Patroni lets a failover
/// candidate be: seen on the lab as a replica asking for WAL its leader had already removed,
/// which waits forever and looks like any running replica in a table.
fn replicas_behind(view: &ClusterView, maximum_lag: u64) -> Vec<Finding> {
    view.members
        .iter()
        .filter(|member| !member.is_leader() && member.is_reachable())
        .filter(|member| member.state() == Some(MemberState::Running))
        .filter_map(|member| match member.receive_lag() {
            Some(Lag::Bytes(behind)) if behind > maximum_lag => Some(
                Finding::new(
                    "replica_not_streaming",
                    Severity::Warning,
                    format!(
                        "{} runs but does not stream, {} behind the leader (maximum_lag_on_failover {})",
                        member.name,
                        human_bytes(behind),
                        human_bytes(maximum_lag)
                    ),
                    "it is no failover candidate, and a replica that cannot fetch the WAL it needs (removed from the leader, missing from the archive) stays like this",
                    "read its PostgreSQL log: if the leader's WAL it asks for is gone, rebuild it (`pgha reinit --member NAME`)",
                )
                .on(&member.name),
            ),
            _ => None,
        })
        .collect()
}

fn paused(view: &ClusterView) -> Option<Finding> {
    view.paused.then(|| {
        Finding::new(
            "maintenance_mode",
            Severity::Info,
            "the cluster is paused (maintenance mode)".into(),
            "Patroni fails over nothing while paused: a leader that dies stays dead",
            "`pgha resume` once the maintenance is over",
        )
    })
}

fn seconds(config: &Value, key: &str, default: u64) -> u64 {
    config[key].as_u64().unwrap_or(default)
}

/// Patroni's rule: `loop_wait + 2 × retry_timeout ≤ ttl`, or a leader can lose its key while it
/// is still retrying the DCS.
fn timing(config: &Value) -> Option<Finding> {
    let ttl = seconds(config, "ttl", DEFAULT_TTL);
    let loop_wait = seconds(config, "loop_wait", DEFAULT_LOOP_WAIT);
    let retry_timeout = seconds(config, "retry_timeout", DEFAULT_RETRY_TIMEOUT);
    (loop_wait + 2 * retry_timeout > ttl).then(|| {
        Finding::new(
            "timing",
            Severity::Warning,
            format!(
                "loop_wait {loop_wait} s + 2 × retry_timeout {retry_timeout} s = {} s, over ttl {ttl} s",
                loop_wait + 2 * retry_timeout
            ),
            "the leader key can expire while the leader still retries the DCS: needless failovers, or a demotion on a short DCS hiccup",
            "raise ttl or lower loop_wait/retry_timeout in the dynamic configuration (`PATCH /config`)",
        )
    })
}

/// Without failsafe mode, a leader that cannot reach the DCS demotes itself; with one DCS
/// endpoint, that endpoint is a single point of failure for writes.
fn failsafe(target: &ClusterTarget, config: &Value) -> Option<Finding> {
    let on = config["failsafe_mode"].as_bool() == Some(true);
    let endpoints = target.dcs.as_ref().map_or(0, |dcs| dcs.hosts.len());
    (!on && endpoints == 1).then(|| {
        Finding::new(
            "failsafe_off_single_dcs",
            Severity::Warning,
            format!(
                "failsafe_mode is off and the inventory names one DCS endpoint ({})",
                target.dcs.as_ref().map(|dcs| dcs.hosts.join(", ")).unwrap_or_default()
            ),
            "when that DCS endpoint goes down, the leader demotes itself at ttl: writes stop though every PostgreSQL is fine",
            "run the DCS as a cluster (3 or 5 members), or set `failsafe_mode: true` in the dynamic configuration",
        )
    })
}

fn slots(view: &ClusterView, slots: Option<&Result<Vec<InactiveSlot>, String>>) -> Vec<Finding> {
    let leader = view.leader.clone().unwrap_or_default();
    match slots {
        None => Vec::new(),
        Some(Err(why)) => vec![Finding::new(
            "slots_unread",
            Severity::Info,
            format!("the leader's replication slots could not be read: {why}"),
            "slots nothing consumes fill the leader's disk",
            "check the inventory's `postgres:` access",
        )],
        Some(Ok(slots)) => slots
            .iter()
            .filter(|slot| slot.holds > SLOT_RETENTION)
            .map(|slot| {
                Finding::new(
                    "inactive_slot",
                    Severity::Warning,
                    format!(
                        "inactive replication slot {} on {leader} holds back {} of WAL",
                        slot.name,
                        human_bytes(slot.holds)
                    ),
                    "nothing consumes it: the WAL it holds grows until the leader's disk is full, and a full disk stops the leader",
                    "drop it if its member is gone (`SELECT pg_drop_replication_slot('NAME')` on the leader), or bring the member back",
                )
                .on(&leader)
            })
            .collect(),
    }
}

/// The leader's disk: a full one stops the leader, and seed 001's slots fill it.
fn leader_disk(inputs: &Inputs<'_>) -> Option<Finding> {
    let leader = inputs.view.leader.as_deref()?;
    let usage = match inputs.disk.as_ref()? {
        Ok(usage) => *usage,
        Err(why) => {
            return Some(
                Finding::new(
                    "disk_unread",
                    Severity::Info,
                    format!("the leader's free disk could not be read: {why}"),
                    "a leader whose disk fills stops taking writes",
                    "check the inventory's `ssh:` settings and the member's `data_dir`",
                )
                .on(leader),
            );
        }
    };
    let free = usage.free_share();
    let threshold = inputs.min_free_disk.0;
    if free >= threshold {
        return None;
    }
    let severity = if free < threshold / 3.0 {
        Severity::Critical
    } else {
        Severity::Warning
    };
    Some(
        Finding::new(
            "leader_disk_low",
            severity,
            format!(
                "the leader {leader} has {} free of {} ({free:.1} %) where its data lives, below {threshold} %",
                human_bytes(usage.available),
                human_bytes(usage.size)
            ),
            "WAL, slots nothing consumes and temporary files fill it; a full disk stops the leader, and its replicas usually have the same disk",
            "free or grow the filesystem; drop slots nothing consumes; check that WAL archiving keeps up",
        )
        .on(leader),
    )
}

/// One block per finding, for a terminal.
pub fn render_text(view: &ClusterView, findings: &[Finding]) -> String {
    let mut out = String::new();
    if findings.is_empty() {
        let _ = writeln!(out, "{}: no finding", view.cluster);
        return out;
    }
    for finding in findings {
        let _ = writeln!(
            out,
            "{:<8} {}: {}\n         why: {}\n         fix: {}",
            finding.severity.as_str().to_uppercase(),
            finding.code,
            finding.seen,
            finding.why,
            finding.fix
        );
    }
    let _ = writeln!(out, "{}", summary(view, findings));
    out
}

/// A Markdown table, for a change request or an incident document.
pub fn render_markdown(view: &ClusterView, findings: &[Finding]) -> String {
    let mut out = format!("# pgha doctor: {}\n\n", view.cluster);
    if findings.is_empty() {
        out.push_str("No finding.\n");
        return out;
    }
    out.push_str(
        "| severity | finding | seen | why it matters | fix |\n| --- | --- | --- | --- | --- |\n",
    );
    for finding in findings {
        let cell = |text: &str| text.replace('|', "\\|");
        let _ = writeln!(
            out,
            "| {} | `{}` | {} | {} | {} |",
            finding.severity.as_str(),
            finding.code,
            cell(&finding.seen),
            cell(&finding.why),
            cell(&finding.fix)
        );
    }
    let _ = writeln!(out, "\n{}", summary(view, findings));
    out
}

fn summary(view: &ClusterView, findings: &[Finding]) -> String {
    let count = |severity| {
        findings
            .iter()
            .filter(|finding| finding.severity == severity)
            .count()
    };
    format!(
        "{}: {} critical, {} warning, {} info",
        view.cluster,
        count(Severity::Critical),
        count(Severity::Warning),
        count(Severity::Info)
    )
}

#[cfg(test)]
mod tests;
