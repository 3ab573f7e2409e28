//! Observing a cluster: ask every member at once for `/patroni` (what it says about itself) and
//! `/cluster` (its view of the DCS), then merge the answers into one `ClusterView` — the observed
//! cluster that `status` prints and runbooks plan from. Disagreements between members are kept
//! as typed warnings, never smoothed over: at 3 a.m. they are the news.

pub mod consul;
pub mod etcd;

use std::collections::{BTreeMap, BTreeSet};

use futures::future::join_all;
use serde::Serialize;

pub use consul::ConsulView;
pub use etcd::EtcdView;

use crate::consul::ConsulClient;
use crate::etcd::EtcdClient;
use crate::exit::Exit;
use crate::inventory::{ClusterTarget, MemberTarget};
use crate::patroni::model::ScheduledSwitchover;
use crate::patroni::{
    ClusterMember, ClusterRole, ClusterTopology, Lag, Lsn, MemberState, MemberStatus,
    PatroniClient, PatroniError, PostgresRole, Version, WalPosition,
};

/// What one member answered (or why it did not).
#[derive(Debug)]
pub struct MemberObservation {
    pub target: MemberTarget,
    pub status: Result<MemberStatus, PatroniError>,
    pub topology: Result<ClusterTopology, PatroniError>,
}

/// The cluster as observed at one instant.
#[derive(Debug, Clone)]
pub struct ClusterView {
    pub environment: String,
    pub cluster: String,
    pub scope: String,
    pub system_identifier: Option<String>,
    pub paused: bool,
    pub leader: Option<String>,
    pub scheduled_switchover: Option<ScheduledSwitchover>,
    pub members: Vec<MemberView>,
    pub warnings: Vec<Warning>,
    /// The member whose `/cluster` answer is shown (the leader's, when it answered).
    pub topology_from: Option<String>,
    /// What Consul says, when the cluster's DCS is Consul.
    pub consul: Option<ConsulView>,
    /// What etcd says, when the cluster's DCS is etcd and pgha knows where it is.
    pub etcd: Option<EtcdView>,
    /// Set by the executor while it waits: when the wait began (Unix seconds), for checks that
    /// need a member to have done something since (an HA loop after a configuration write).
    pub wait_began: Option<i64>,
}

/// One member: its own answer and the DCS entry the cluster view shows for it.
#[derive(Debug, Clone)]
pub struct MemberView {
    pub name: String,
    pub host: String,
    pub api_url: String,
    pub in_inventory: bool,
    /// The member's entry in the chosen `/cluster` answer; `None` when it is not registered.
    pub dcs: Option<ClusterMember>,
    /// The member's own `/patroni`, or why it could not be had.
    pub status: Result<MemberStatus, ApiFailure>,
    /// The leader's current WAL position, to compute lags older versions do not report.
    leader_position: Option<Lsn>,
    /// The dynamic configuration as this member sees it (its `GET /config`): read only for
    /// plans that check it (`pgha edit-config`), `None` otherwise.
    pub dynamic_config: Option<serde_json::Value>,
}

/// Why a member's API gave no status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiFailure {
    pub unreachable: bool,
    pub message: String,
}

/// Something an operator must know about the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Warning {
    /// The member's REST API did not answer (or answered with an error).
    MemberUnreachable { member: String, message: String },
    /// Members name different leaders, or a member runs as primary without being the leader.
    LeaderDisagreement { message: String },
    /// Members list different sets of members.
    MembershipDisagreement { message: String },
    /// No member holds the leader key: the cluster takes no writes.
    NoLeader { message: String },
    /// Members whose REST API answers cannot read the DCS (their `/cluster` fails).
    DcsUnreachable {
        members: Vec<String>,
        message: String,
        /// Critical when nobody can read the DCS or the leader cannot: writes stop at `ttl`.
        #[serde(skip)]
        critical: bool,
    },
    /// In the inventory but not registered in the DCS.
    NotInCluster { member: String, message: String },
    /// Registered in the DCS but not in the inventory.
    NotInInventory { member: String, message: String },
    /// A member belongs to another cluster or another database.
    IdentityMismatch { member: String, message: String },
    /// Consul's API did not answer; Patroni's view is shown alone.
    ConsulUnreachable { message: String },
    /// A running member has no registration in the cluster's Consul service.
    ConsulNotRegistered { member: String, message: String },
    /// Consul's role tag is not the member's role (e.g. `primary` on a replica).
    ConsulWrongTag { member: String, message: String },
    /// The member's Consul checks are not all passing: clients skip it.
    ConsulCheckFailing { member: String, message: String },
    /// Consul lists an instance of the service that is no member (a dead node not yet reaped).
    ConsulNotMember { instance: String, message: String },
    /// etcd's keys could not be read; Patroni's view is shown alone.
    EtcdUnreachable { message: String },
    /// Too few etcd members follow a leader: Patroni cannot keep the leader key.
    EtcdNoQuorum { message: String },
    /// The leader key is held by a member whose REST API does not answer.
    LeaderUnreachable { member: String, message: String },
    /// A member of a cluster the inventory marks `standby: true` runs as a writable primary:
    /// the standby has split from its primary site (seed 001's restored
    /// `patroni.dynamic.json`).
    StandbyWritable { member: String, message: String },
}

impl Warning {
    pub fn message(&self) -> &str {
        match self {
            Warning::MemberUnreachable { message, .. }
            | Warning::LeaderDisagreement { message }
            | Warning::MembershipDisagreement { message }
            | Warning::NoLeader { message }
            | Warning::DcsUnreachable { message, .. }
            | Warning::NotInCluster { message, .. }
            | Warning::NotInInventory { message, .. }
            | Warning::IdentityMismatch { message, .. }
            | Warning::ConsulUnreachable { message }
            | Warning::ConsulNotRegistered { message, .. }
            | Warning::ConsulWrongTag { message, .. }
            | Warning::ConsulCheckFailing { message, .. }
            | Warning::ConsulNotMember { message, .. }
            | Warning::EtcdUnreachable { message }
            | Warning::EtcdNoQuorum { message }
            | Warning::LeaderUnreachable { message, .. }
            | Warning::StandbyWritable { message, .. } => message,
        }
    }

    /// How loud it is: critical takes writes away or risks data (no leader, the DCS unreadable,
    /// two primaries, a member of another cluster); warning degrades the cluster or a runbook;
    /// info is worth knowing.
    pub fn severity(&self) -> Severity {
        match self {
            Warning::NoLeader { .. }
            | Warning::LeaderDisagreement { .. }
            | Warning::IdentityMismatch { .. }
            | Warning::DcsUnreachable { critical: true, .. }
            | Warning::EtcdNoQuorum { .. }
            | Warning::LeaderUnreachable { .. }
            | Warning::StandbyWritable { .. } => Severity::Critical,
            Warning::MemberUnreachable { .. }
            | Warning::MembershipDisagreement { .. }
            | Warning::DcsUnreachable {
                critical: false, ..
            }
            | Warning::NotInCluster { .. }
            | Warning::ConsulUnreachable { .. }
            | Warning::ConsulNotRegistered { .. }
            | Warning::ConsulWrongTag { .. }
            | Warning::ConsulCheckFailing { .. }
            | Warning::EtcdUnreachable { .. } => Severity::Warning,
            Warning::NotInInventory { .. } | Warning::ConsulNotMember { .. } => Severity::Info,
        }
    }
}

/// How much a warning matters, from the least to the most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error("cannot set up the REST client: {0}")]
    Client(#[source] PatroniError),
    /// Every member failed the same way for a reason the user must fix (TLS, credentials).
    #[error("{0}")]
    Access(#[source] PatroniError),
    /// etcd refused pgha's settings (credentials, TLS).
    #[error(transparent)]
    Etcd(crate::etcd::EtcdError),
    #[error("no member of cluster {cluster} answered: {}", .failures.join("; "))]
    NoMemberAnswered {
        cluster: String,
        failures: Vec<String>,
    },
}

impl ObserveError {
    pub fn exit(&self) -> Exit {
        match self {
            ObserveError::Client(error) | ObserveError::Access(error) => error.exit(),
            ObserveError::NoMemberAnswered { .. } => Exit::Unreachable,
            ObserveError::Etcd(error) => error.exit(),
        }
    }
}

/// The DCS clients an observation reads besides the members (whichever the cluster uses).
#[derive(Clone, Copy, Default)]
pub struct DcsClients<'a> {
    pub consul: Option<&'a ConsulClient>,
    pub etcd: Option<&'a EtcdClient>,
}

/// Asks every member for `/patroni` and `/cluster`, and the DCS (Consul's service and keys, or
/// etcd's keys and members) when pgha reaches it, all concurrently; never waits longer than
/// the request timeouts.
pub async fn observe(
    target: &ClusterTarget,
    client: &PatroniClient,
    dcs: DcsClients<'_>,
) -> Result<ClusterView, ObserveError> {
    let consul = dcs.consul;
    let members = join_all(target.members.iter().map(|member| async move {
        let (status, topology) = tokio::join!(
            client.status(&member.api_url),
            client.cluster(&member.api_url)
        );
        MemberObservation {
            target: member.clone(),
            status,
            topology,
        }
    }));
    let consul_view = async {
        match (consul, &target.consul) {
            (Some(client), Some(settings)) => {
                Some(consul::read(settings, client, &target.scope).await)
            }
            _ => None,
        }
    };
    let etcd_view = async {
        match dcs.etcd {
            Some(client) => Some(etcd::read(client, &target.scope).await),
            None => None,
        }
    };
    let (observations, consul_view, etcd_view) = tokio::join!(members, consul_view, etcd_view);
    let etcd_view = etcd_view.transpose().map_err(ObserveError::Etcd)?;
    // With every Patroni stopped (before a tree delete, for one) the DCS still describes the
    // cluster: the view stands on its word, every member unreachable.
    let dcs_answered = consul_view
        .as_ref()
        .is_some_and(|consul_view| consul_view.instances.is_ok())
        || etcd_view
            .as_ref()
            .is_some_and(|etcd_view| etcd_view.keys.is_ok());
    match refuse_if_nobody_answered(target, &observations) {
        Err(ObserveError::NoMemberAnswered { .. }) if dcs_answered => {}
        other => other?,
    }
    let from_etcd = etcd_view.as_ref().and_then(EtcdView::topology);
    let mut view = merge_answers(target, observations, from_etcd);
    if let Some(consul_view) = consul_view {
        consul::check(&mut view, &consul_view);
        view.consul = Some(consul_view);
    }
    if let Some(etcd_view) = etcd_view {
        etcd::check(&mut view, &etcd_view);
        if view.system_identifier.is_none() {
            view.system_identifier = etcd_view.system_identifier();
        }
        view.etcd = Some(etcd_view);
    }
    order_warnings(&mut view.warnings);
    Ok(view)
}

/// `topology_from` when the view stands on the DCS's keys, no member's `/cluster` answering.
pub const DCS_KEYS: &str = "the DCS keys";

/// Merges the members' answers. Pure: tests feed it recorded answers.
pub fn merge(
    target: &ClusterTarget,
    observations: Vec<MemberObservation>,
) -> Result<ClusterView, ObserveError> {
    refuse_if_nobody_answered(target, &observations)?;
    Ok(merge_answers(target, observations, None))
}

/// Merges the members' answers; `from_dcs` is the cluster as the DCS's keys describe it, shown
/// when no member's `/cluster` answered.
fn merge_answers(
    target: &ClusterTarget,
    observations: Vec<MemberObservation>,
    from_dcs: Option<ClusterTopology>,
) -> ClusterView {
    let mut warnings = Vec::new();
    let reference = reference_topology(&observations)
        .map(|(name, topology)| (name.to_string(), topology.clone()))
        .or_else(|| from_dcs.map(|topology| (DCS_KEYS.to_string(), topology)));
    let topology = reference.as_ref().map(|(_, topology)| topology);
    let leader = topology
        .and_then(ClusterTopology::leader)
        .map(|member| member.name.clone());
    check_dcs_access(&observations, leader.as_deref(), &mut warnings);
    check_leader_agreement(&observations, leader.as_deref(), &mut warnings);
    check_leader_runs_as_primary(&observations, leader.as_deref(), &mut warnings);
    check_membership_agreement(&observations, &mut warnings);
    let leader_position = leader_position(&observations);

    let mut members: Vec<MemberView> = observations
        .into_iter()
        .map(|observation| inventory_member(observation, topology, leader_position, &mut warnings))
        .collect();
    if let Some(topology) = topology {
        add_unlisted_members(
            target,
            topology,
            leader_position,
            &mut members,
            &mut warnings,
        );
        if leader.is_none() {
            warnings.push(Warning::NoLeader {
                message: "no member holds the leader key: the cluster accepts no writes".into(),
            });
        }
    }
    check_identity(target, &members, &mut warnings);
    check_standby_takes_no_writes(target, &members, &mut warnings);
    order_warnings(&mut warnings);

    let system_identifier = leader
        .as_deref()
        .and_then(|name| members.iter().find(|member| member.name == name))
        .and_then(|member| member.status.as_ref().ok())
        .and_then(|status| status.system_identifier.clone())
        .or_else(|| {
            members
                .iter()
                .find_map(|member| member.status.as_ref().ok()?.system_identifier.clone())
        });
    let paused = topology.is_some_and(|topology| topology.paused)
        || members
            .iter()
            .any(|member| member.status.as_ref().is_ok_and(|status| status.paused));

    ClusterView {
        environment: target.environment.clone(),
        cluster: target.cluster.clone(),
        scope: topology
            .and_then(|topology| topology.scope.clone())
            .unwrap_or_else(|| target.scope.clone()),
        system_identifier,
        paused,
        scheduled_switchover: topology.and_then(|topology| topology.scheduled_switchover.clone()),
        leader,
        members,
        warnings,
        topology_from: reference.map(|(name, _)| name),
        consul: None,
        etcd: None,
        wait_began: None,
    }
}

/// A member whose own API answers but whose `/cluster` fails cannot read the DCS (Patroni reads
/// it live for `/cluster`): name every such member. With nobody able to read it, the leader
/// demotes itself after `ttl` and no new one can be elected — say whether that already happened.
fn check_dcs_access(
    observations: &[MemberObservation],
    leader: Option<&str>,
    warnings: &mut Vec<Warning>,
) {
    let cut_off: Vec<&MemberObservation> = observations
        .iter()
        .filter(|observation| observation.status.is_ok() && observation.topology.is_err())
        .collect();
    if cut_off.is_empty() {
        return;
    }
    let names: Vec<String> = cut_off
        .iter()
        .map(|observation| observation.target.name.clone())
        .collect();
    let last_contact = cut_off
        .iter()
        .filter_map(|observation| observation.status.as_ref().ok()?.dcs_last_seen)
        .max()
        .and_then(|seconds| jiff::Timestamp::from_second(seconds).ok())
        .map_or_else(String::new, |at| {
            format!("; last DCS contact {}", at.strftime("%H:%M:%S UTC"))
        });
    let nobody_reads_it = !observations
        .iter()
        .any(|observation| observation.topology.is_ok());
    let primaries: Vec<&str> = cut_off
        .iter()
        .filter(|observation| {
            observation
                .status
                .as_ref()
                .is_ok_and(|status| status.role.is_leader())
        })
        .map(|observation| observation.target.name.as_str())
        .collect();
    let consequence = if !nobody_reads_it {
        String::new()
    } else if primaries.is_empty() {
        ": no leader can be elected until it is back".to_string()
    } else {
        format!(
            ": {} still runs as primary and demotes itself after ttl (unless failsafe_mode)",
            primaries.join(", ")
        )
    };
    if nobody_reads_it && primaries.is_empty() {
        warnings.push(Warning::NoLeader {
            message:
                "no member runs as primary and the DCS cannot be read: the cluster takes no writes"
                    .into(),
        });
    }
    warnings.push(Warning::DcsUnreachable {
        message: format!(
            "{} cannot read the DCS (the REST API answers, /cluster fails{last_contact}){consequence}",
            names.join(", ")
        ),
        critical: nobody_reads_it || leader.is_some_and(|leader| names.iter().any(|name| name == leader)),
        members: names,
    });
}

/// The loudest first, and "no leader" before everything: it is the news at 3 a.m.
fn order_warnings(warnings: &mut [Warning]) {
    warnings.sort_by_key(|warning| {
        (
            std::cmp::Reverse(warning.severity()),
            !matches!(warning, Warning::NoLeader { .. }),
        )
    });
}

/// The WAL position of the member running as primary, as it answered.
fn leader_position(observations: &[MemberObservation]) -> Option<Lsn> {
    observations
        .iter()
        .find_map(|observation| match &observation.status {
            Ok(status) if status.role.is_leader() => match status.wal {
                WalPosition::Primary { location } => Some(location),
                _ => None,
            },
            _ => None,
        })
}

/// One inventory member with its DCS entry, and the warning its absence or silence deserves.
fn inventory_member(
    observation: MemberObservation,
    topology: Option<&ClusterTopology>,
    leader_position: Option<Lsn>,
    warnings: &mut Vec<Warning>,
) -> MemberView {
    let dcs = topology
        .and_then(|topology| topology.member(&observation.target.name))
        .cloned();
    let status = observation.status.map_err(|error| ApiFailure {
        unreachable: error.is_unreachable(),
        message: error.to_string(),
    });
    let name = &observation.target.name;
    match (&status, &dcs, topology.is_some()) {
        (Err(failure), Some(entry), _) => warnings.push(Warning::MemberUnreachable {
            member: name.clone(),
            message: format!(
                "{name}: REST API failed ({}); the DCS still lists it as {} {}",
                failure.message, entry.role, entry.state
            ),
        }),
        (Err(failure), None, _) => warnings.push(Warning::NotInCluster {
            member: name.clone(),
            message: format!(
                "{name} is in the inventory but not registered in the DCS, and its REST API failed ({})",
                failure.message
            ),
        }),
        (Ok(_), None, true) => warnings.push(Warning::NotInCluster {
            member: name.clone(),
            message: format!("{name} answers but is not registered in the DCS"),
        }),
        (Ok(_), _, _) => {}
    }
    MemberView {
        name: observation.target.name,
        host: observation.target.host,
        api_url: observation.target.api_url,
        in_inventory: true,
        dcs,
        status,
        leader_position,
        dynamic_config: None,
    }
}

/// Members the DCS knows that the inventory does not: shown, flagged, never asked.
fn add_unlisted_members(
    target: &ClusterTarget,
    topology: &ClusterTopology,
    leader_position: Option<Lsn>,
    members: &mut Vec<MemberView>,
    warnings: &mut Vec<Warning>,
) {
    for entry in &topology.members {
        if members.iter().any(|member| member.name == entry.name) {
            continue;
        }
        warnings.push(Warning::NotInInventory {
            member: entry.name.clone(),
            message: format!(
                "{} is registered in the DCS but not in the inventory ({})",
                entry.name, target.origin
            ),
        });
        members.push(MemberView {
            name: entry.name.clone(),
            host: entry.host.clone().unwrap_or_default(),
            api_url: entry.api_url.clone().unwrap_or_default(),
            in_inventory: false,
            dcs: Some(entry.clone()),
            status: Err(ApiFailure {
                unreachable: false,
                message: "not asked: not in the inventory".into(),
            }),
            leader_position,
            dynamic_config: None,
        });
    }
}

fn refuse_if_nobody_answered(
    target: &ClusterTarget,
    observations: &[MemberObservation],
) -> Result<(), ObserveError> {
    let anybody_answered = observations
        .iter()
        .any(|observation| observation.status.is_ok() || observation.topology.is_ok());
    if anybody_answered {
        return Ok(());
    }
    // The same TLS or credential failure on every member is a configuration error: say that
    // once, plainly, instead of listing it per member.
    let access_failure = observations
        .iter()
        .find_map(|observation| match &observation.status {
            Err(error) if error.exit() == Exit::BadInput => Some(error),
            _ => None,
        });
    if let Some(error) = access_failure {
        return Err(ObserveError::Access(error.clone()));
    }
    Err(ObserveError::NoMemberAnswered {
        cluster: target.cluster.clone(),
        failures: observations
            .iter()
            .map(|observation| match &observation.status {
                Err(error) => error.to_string(),
                Ok(_) => unreachable!("nobody answered"),
            })
            .collect(),
    })
}

/// The `/cluster` answer to show: the one from the member that runs as leader, else the first
/// member (in inventory order) that answered.
fn reference_topology(observations: &[MemberObservation]) -> Option<(&str, &ClusterTopology)> {
    let from_leader = observations.iter().find_map(|observation| {
        let status = observation.status.as_ref().ok()?;
        let topology = observation.topology.as_ref().ok()?;
        status
            .role
            .is_leader()
            .then_some((observation.target.name.as_str(), topology))
    });
    from_leader.or_else(|| {
        observations.iter().find_map(|observation| {
            observation
                .topology
                .as_ref()
                .ok()
                .map(|topology| (observation.target.name.as_str(), topology))
        })
    })
}

fn check_leader_agreement(
    observations: &[MemberObservation],
    leader: Option<&str>,
    warnings: &mut Vec<Warning>,
) {
    let views: BTreeMap<&str, Option<&str>> = observations
        .iter()
        .filter_map(|observation| {
            let topology = observation.topology.as_ref().ok()?;
            Some((
                observation.target.name.as_str(),
                topology.leader().map(|member| member.name.as_str()),
            ))
        })
        .collect();
    let distinct: BTreeSet<Option<&str>> = views.values().copied().collect();
    if distinct.len() > 1 {
        let described: Vec<String> = views
            .iter()
            .map(|(member, leader)| format!("{member} says {}", leader.unwrap_or("none")))
            .collect();
        warnings.push(Warning::LeaderDisagreement {
            message: format!(
                "members disagree about the leader: {}",
                described.join(", ")
            ),
        });
    }
    for observation in observations {
        let Ok(status) = &observation.status else {
            continue;
        };
        let name = observation.target.name.as_str();
        if status.role == PostgresRole::Primary && leader.is_some_and(|leader| leader != name) {
            warnings.push(Warning::LeaderDisagreement {
                message: format!(
                    "{name} runs PostgreSQL as primary but the leader is {}",
                    leader.unwrap_or("none")
                ),
            });
        }
    }
}

/// The leader key names a member whose own API says it runs as a replica, and no member runs
/// as primary: nothing takes writes. Seen when etcd loses its quorum: the leader cannot renew
/// its key and demotes itself, while the etcd member still up keeps serving the old key (no
/// etcd leader, no lease expiry), so `/cluster` still names it.
fn check_leader_runs_as_primary(
    observations: &[MemberObservation],
    leader: Option<&str>,
    warnings: &mut Vec<Warning>,
) {
    let Some(leader) = leader else {
        return;
    };
    let Some(role) = observations
        .iter()
        .find(|observation| observation.target.name == leader)
        .and_then(|observation| observation.status.as_ref().ok())
        .map(|status| &status.role)
        .filter(|role| matches!(role, PostgresRole::Replica | PostgresRole::Demoted))
    else {
        return;
    };
    let someone_is_primary = observations.iter().any(|observation| {
        observation
            .status
            .as_ref()
            .is_ok_and(|status| status.role.is_leader())
    });
    if someone_is_primary {
        return;
    }
    warnings.push(Warning::NoLeader {
        message: format!(
            "no member runs as primary: {leader} holds the leader key but runs PostgreSQL as {}, the cluster takes no writes (a leader key nobody renews: has the DCS lost its quorum?)",
            role.as_str()
        ),
    });
}

fn check_membership_agreement(observations: &[MemberObservation], warnings: &mut Vec<Warning>) {
    let views: BTreeMap<&str, BTreeSet<&str>> = observations
        .iter()
        .filter_map(|observation| {
            let topology = observation.topology.as_ref().ok()?;
            Some((
                observation.target.name.as_str(),
                topology
                    .members
                    .iter()
                    .map(|member| member.name.as_str())
                    .collect(),
            ))
        })
        .collect();
    let distinct: BTreeSet<&BTreeSet<&str>> = views.values().collect();
    if distinct.len() > 1 {
        let described: Vec<String> = views
            .iter()
            .map(|(member, seen)| {
                format!(
                    "{member} sees {}",
                    seen.iter().copied().collect::<Vec<_>>().join("+")
                )
            })
            .collect();
        warnings.push(Warning::MembershipDisagreement {
            message: format!("members list different members: {}", described.join(", ")),
        });
    }
}

/// A member of another cluster in the inventory is the mistake that turns a runbook into an
/// outage: compare each member's scope and database system identifier.
/// In a cluster the inventory marks a standby, no member may run as a writable primary: one
/// that does takes writes its primary site never sees (two primaries).
fn check_standby_takes_no_writes(
    target: &ClusterTarget,
    members: &[MemberView],
    warnings: &mut Vec<Warning>,
) {
    if !target.standby {
        return;
    }
    for member in members {
        let Ok(status) = &member.status else { continue };
        if status.role == PostgresRole::Primary {
            warnings.push(Warning::StandbyWritable {
                member: member.name.clone(),
                message: format!(
                    "{} runs as a writable primary, but the inventory marks {} a standby cluster: it has split from its primary site (two primaries); stop writes to it and rebuild it (`pgha geo-resetup`)",
                    member.name, target.cluster
                ),
            });
        }
    }
}

fn check_identity(target: &ClusterTarget, members: &[MemberView], warnings: &mut Vec<Warning>) {
    let identifiers: BTreeSet<&str> = members
        .iter()
        .filter_map(|member| member.status.as_ref().ok()?.system_identifier.as_deref())
        .collect();
    for member in members {
        let Ok(status) = &member.status else { continue };
        if let Some(scope) = &status.scope
            && scope != &target.scope
        {
            warnings.push(Warning::IdentityMismatch {
                member: member.name.clone(),
                message: format!(
                    "{} belongs to scope {scope:?}, not {:?}: check the inventory",
                    member.name, target.scope
                ),
            });
        }
    }
    if identifiers.len() > 1 {
        warnings.push(Warning::IdentityMismatch {
            member: String::new(),
            message: format!(
                "members report different database system identifiers: {}",
                identifiers.into_iter().collect::<Vec<_>>().join(", ")
            ),
        });
    }
}

impl MemberView {
    pub fn is_reachable(&self) -> bool {
        self.status.is_ok()
    }

    /// The role in the cluster: the DCS's word where the member is registered, else what the
    /// member says about itself.
    pub fn role(&self) -> Option<ClusterRole> {
        if let Some(entry) = &self.dcs {
            return Some(entry.role.clone());
        }
        let status = self.status.as_ref().ok()?;
        Some(match &status.role {
            PostgresRole::Primary => ClusterRole::Leader,
            PostgresRole::StandbyLeader => ClusterRole::StandbyLeader,
            PostgresRole::Replica if status.sync_standby => ClusterRole::SyncStandby,
            PostgresRole::Replica => ClusterRole::Replica,
            other => ClusterRole::Other(other.to_string()),
        })
    }

    /// The member's live state from its own API (normalised: `streaming` wherever the version
    /// reports it); the DCS's last word when the API did not answer.
    pub fn state(&self) -> Option<MemberState> {
        match (&self.status, &self.dcs) {
            (Ok(status), Some(entry))
                if status.replication_state.is_none() && status.state == MemberState::Running =>
            {
                // Patroni before 3.0 reports a running replica without its replication state;
                // the DCS entry (possibly published by a newer member) may know better.
                Some(if entry.state == MemberState::Streaming {
                    MemberState::Streaming
                } else {
                    status.effective_state()
                })
            }
            (Ok(status), _) => Some(status.effective_state()),
            (Err(_), Some(entry)) => Some(entry.state.clone()),
            (Err(_), None) => None,
        }
    }

    pub fn timeline(&self) -> Option<u32> {
        self.status
            .as_ref()
            .ok()
            .and_then(|status| status.timeline)
            .or_else(|| self.dcs.as_ref().and_then(|entry| entry.timeline))
    }

    pub fn is_leader(&self) -> bool {
        self.role().is_some_and(|role| role.is_leader())
    }

    fn own_positions(&self) -> (Option<Lsn>, Option<Lsn>) {
        match self.status.as_ref().map(|status| &status.wal) {
            Ok(WalPosition::Replica {
                received, replayed, ..
            }) => (*received, *replayed),
            _ => (None, None),
        }
    }

    pub fn receive_lsn(&self) -> Option<Lsn> {
        if self.is_leader() {
            return None;
        }
        self.dcs
            .as_ref()
            .and_then(|entry| entry.receive_lsn)
            .or(self.own_positions().0)
    }

    pub fn replay_lsn(&self) -> Option<Lsn> {
        if self.is_leader() {
            return None;
        }
        self.dcs
            .as_ref()
            .and_then(|entry| entry.replay_lsn)
            .or(self.own_positions().1)
    }

    /// Patroni's receive lag where it knows one; else computed from the leader's and this
    /// member's positions as they answered (older releases report no receive lag, and a 4.x
    /// leader reports "unknown" for members on 2.x/3.x, which publish other fields).
    pub fn receive_lag(&self) -> Option<Lag> {
        if self.is_leader() {
            return None;
        }
        let reported = self
            .dcs
            .as_ref()
            .and_then(ClusterMember::effective_receive_lag);
        known_or(reported, || self.computed_lag(self.receive_lsn()))
    }

    pub fn replay_lag(&self) -> Option<Lag> {
        if self.is_leader() {
            return None;
        }
        let reported = self
            .dcs
            .as_ref()
            .and_then(ClusterMember::effective_replay_lag);
        known_or(reported, || self.computed_lag(self.replay_lsn()))
    }

    fn computed_lag(&self, position: Option<Lsn>) -> Option<Lag> {
        let leader = self.leader_position?;
        let position = position?;
        Some(Lag::Bytes(leader.0.saturating_sub(position.0)))
    }

    pub fn pending_restart(&self) -> bool {
        self.status
            .as_ref()
            .is_ok_and(|status| status.pending_restart)
            || self.dcs.as_ref().is_some_and(|entry| entry.pending_restart)
    }

    pub fn pending_restart_reason(&self) -> crate::patroni::model::PendingChanges {
        match (&self.status, &self.dcs) {
            (Ok(status), _) if !status.pending_restart_reason.is_empty() => {
                status.pending_restart_reason.clone()
            }
            (_, Some(entry)) => entry.pending_restart_reason.clone(),
            _ => BTreeMap::new(),
        }
    }

    pub fn scheduled_restart(&self) -> Option<String> {
        self.status
            .as_ref()
            .ok()
            .and_then(|status| status.scheduled_restart.clone())
            .or_else(|| {
                self.dcs
                    .as_ref()
                    .and_then(|entry| entry.scheduled_restart.clone())
            })
    }

    pub fn tags(&self) -> crate::patroni::model::Tags {
        match (&self.status, &self.dcs) {
            (_, Some(entry)) if !entry.tags.is_empty() => entry.tags.clone(),
            (Ok(status), _) => status.tags.clone(),
            _ => BTreeMap::new(),
        }
    }

    pub fn patroni_version(&self) -> Option<Version> {
        self.status
            .as_ref()
            .ok()
            .and_then(|status| status.patroni_version)
    }

    pub fn postgres_version(&self) -> Option<String> {
        self.status
            .as_ref()
            .ok()
            .and_then(MemberStatus::postgres_version)
    }
}

/// A lag Patroni reported in bytes; else what pgha can compute; else Patroni's "unknown".
fn known_or(reported: Option<Lag>, computed: impl FnOnce() -> Option<Lag>) -> Option<Lag> {
    match reported {
        Some(Lag::Bytes(_)) => reported,
        _ => computed().or(reported),
    }
}

impl ClusterView {
    pub fn member(&self, name: &str) -> Option<&MemberView> {
        self.members.iter().find(|member| member.name == name)
    }
}

#[cfg(test)]
mod tests;

/// Recorded observations for tests of this module and of the renderers.
#[cfg(test)]
pub(crate) mod testing {
    use super::MemberObservation;
    use crate::inventory::{ClusterTarget, MemberTarget};
    use crate::patroni::fixtures::{cluster, recorded, status};
    use crate::patroni::{PatroniError, RestSettings};

    pub(crate) fn target(names: &[&str]) -> ClusterTarget {
        ClusterTarget {
            environment: "test".into(),
            cluster: "demo".into(),
            scope: "demo".into(),
            standby: false,
            follows: None,
            members: names
                .iter()
                .enumerate()
                .map(|(index, name)| MemberTarget {
                    name: (*name).to_string(),
                    host: format!("127.0.0.{}", 31 + index),
                    api_url: format!("http://127.0.0.{}:8008", 31 + index),
                    data_dir: Some(format!("/var/lib/pgha/lab/members/{name}/data")),
                    patroni_config: None,
                    log_file: None,
                })
                .collect(),
            rest: RestSettings::default(),
            dcs: None,
            ssh: None,
            postgres: None,
            runbook_timeouts: std::collections::BTreeMap::new(),
            service: None,
            alertmanager: None,
            backup: None,
            consul: None,
            etcd: None,
            origin: "test inventory".into(),
            members_from: crate::inventory::MemberSource::Inventory,
        }
    }

    /// What Consul shows for `view` when Patroni registers every member: role tags, all passing.
    pub(crate) fn registered(view: &super::ClusterView) -> super::ConsulView {
        use crate::consul::{Check, CheckStatus, ServiceInstance};
        let instances = view
            .members
            .iter()
            .map(|member| {
                let tags: &[&str] = if member.is_leader() {
                    &["primary", "master"]
                } else {
                    &["replica"]
                };
                let role = tags[0];
                ServiceInstance {
                    id: format!("{}/{}", view.scope, member.name),
                    service: view.scope.clone(),
                    node: "consul".into(),
                    address: member.host.clone(),
                    port: 5432,
                    tags: tags.iter().map(ToString::to_string).collect(),
                    checks: vec![
                        Check {
                            id: "serfHealth".into(),
                            name: "Serf Health Status".into(),
                            status: CheckStatus::Passing,
                            output: "Agent alive and reachable".into(),
                        },
                        Check {
                            id: format!("service:{}/{}", view.scope, member.name),
                            name: format!("Service '{}' check", view.scope),
                            status: CheckStatus::Passing,
                            output: format!(
                                "HTTP GET http://{}:8008/{role}: 200 OK Output: ",
                                member.host
                            ),
                        },
                    ],
                }
            })
            .collect();
        super::ConsulView {
            address: "127.0.0.10:8500".into(),
            service: view.scope.clone(),
            prefix: format!("service/{}/", view.scope),
            instances: Ok(instances),
            keys: Ok(["config", "history", "initialize", "leader", "status"]
                .iter()
                .map(|key| format!("service/{}/{key}", view.scope))
                .collect()),
        }
    }

    pub(crate) fn refused(name: &str) -> PatroniError {
        PatroniError::Connect {
            url: format!("http://{name}:8008/patroni"),
            reason: "Connection refused (os error 111)".into(),
        }
    }

    /// Observations of a healthy recorded cluster: the leader answers with the leader fixtures,
    /// the others with the replica fixtures.
    pub(crate) fn healthy(release: &str) -> (ClusterTarget, Vec<MemberObservation>) {
        let topology = cluster(&recorded(release, "cluster_from_leader"));
        let leader = topology.leader().unwrap().name.clone();
        let target = target_of(&topology);
        let observations = target
            .members
            .iter()
            .map(|member| {
                let is_leader = member.name == leader;
                MemberObservation {
                    target: member.clone(),
                    status: Ok(status(&recorded(
                        release,
                        if is_leader {
                            "patroni_leader"
                        } else {
                            "patroni_replica"
                        },
                    ))),
                    topology: Ok(cluster(&recorded(
                        release,
                        if is_leader {
                            "cluster_from_leader"
                        } else {
                            "cluster_from_replica"
                        },
                    ))),
                }
            })
            .collect();
        (target, observations)
    }

    /// An inventory listing the members of a recorded topology.
    fn target_of(topology: &crate::patroni::ClusterTopology) -> ClusterTarget {
        let names: Vec<&str> = topology
            .members
            .iter()
            .map(|member| member.name.as_str())
            .collect();
        target(&names)
    }

    /// The recorded cluster with `leader` leading (and, given, on `timeline`): what it looks
    /// like after a switchover to it.
    pub(crate) fn led_by(
        release: &str,
        leader: &str,
        timeline: Option<u32>,
    ) -> (ClusterTarget, Vec<MemberObservation>) {
        use crate::patroni::{ClusterRole, Lag, MemberState};
        let mut topology = cluster(&recorded(release, "cluster_from_leader"));
        for member in &mut topology.members {
            let leads = member.name == leader;
            member.role = if leads {
                ClusterRole::Leader
            } else {
                ClusterRole::Replica
            };
            if leads {
                member.state = MemberState::Running;
                (member.lag, member.receive_lag, member.replay_lag) = (None, None, None);
            } else if member.lag.is_none() {
                member.state = MemberState::Streaming;
                member.lag = Some(Lag::Bytes(0));
            }
            if let Some(timeline) = timeline {
                member.timeline = Some(timeline);
            }
        }
        let target = target_of(&topology);
        let observations = target
            .members
            .iter()
            .map(|member| {
                let fixture = if member.name == leader {
                    "patroni_leader"
                } else {
                    "patroni_replica"
                };
                let mut status = status(&recorded(release, fixture));
                if let Some(timeline) = timeline {
                    status.timeline = Some(timeline);
                }
                MemberObservation {
                    target: member.clone(),
                    status: Ok(status),
                    topology: Ok(topology.clone()),
                }
            })
            .collect();
        (target, observations)
    }

    /// The merged view of `led_by`.
    pub(crate) fn view_led_by(
        release: &str,
        leader: &str,
        timeline: Option<u32>,
    ) -> (ClusterTarget, super::ClusterView) {
        let (target, observations) = led_by(release, leader, timeline);
        let view = super::merge(&target, observations).unwrap();
        (target, view)
    }

    /// The first observation of a member that answered as a replica.
    pub(crate) fn first_replica(observations: &mut [MemberObservation]) -> &mut MemberObservation {
        observations
            .iter_mut()
            .find(|observation| {
                observation
                    .status
                    .as_ref()
                    .is_ok_and(|status| !status.role.is_leader())
            })
            .expect("a replica among the observations")
    }

    /// Makes the first replica's API fail as a refused connection; returns its name.
    pub(crate) fn silence_a_replica(observations: &mut [MemberObservation]) -> String {
        let replica = first_replica(observations);
        let name = replica.target.name.clone();
        replica.status = Err(refused(&name));
        replica.topology = Err(refused(&name));
        name
    }
}
