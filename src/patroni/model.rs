//! The version-normalised model of what Patroni reports. Patroni 2.x says `master` where 4.x says
//! `primary`, reports a streaming replica as `running` before 3.0.4, has a single `lag` before 4.1
//! and `receive_lag`/`replay_lag` after; this module hides all of that behind one set of types,
//! so no caller ever compares a role or state string.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use super::wire::{
    ClusterMemberWire, ClusterWire, NumberOrText, PendingChangeWire, ScheduledRestartWire,
    StatusWire, XlogWire,
};

/// A PostgreSQL WAL position. Patroni sends it as an integer in `/patroni` and as `X/Y` text in
/// `/cluster`; both become this type, displayed the PostgreSQL way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl FromStr for Lsn {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (high, low) = text
            .split_once('/')
            .ok_or_else(|| format!("not an LSN: {text:?}"))?;
        let high = u32::from_str_radix(high, 16).map_err(|_| format!("not an LSN: {text:?}"))?;
        let low = u32::from_str_radix(low, 16).map_err(|_| format!("not an LSN: {text:?}"))?;
        Ok(Lsn((u64::from(high) << 32) | u64::from(low)))
    }
}

impl Serialize for Lsn {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Replication lag in bytes, or Patroni's explicit "unknown" (no WAL position published yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lag {
    Bytes(u64),
    Unknown,
}

impl Serialize for Lag {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Lag::Bytes(bytes) => serializer.serialize_u64(*bytes),
            Lag::Unknown => serializer.serialize_str("unknown"),
        }
    }
}

impl Lag {
    pub fn bytes(self) -> Option<u64> {
        match self {
            Lag::Bytes(bytes) => Some(bytes),
            Lag::Unknown => None,
        }
    }
}

/// A Patroni release, compared numerically (`3.10.0` > `3.9.1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Version {
            major,
            minor,
            patch,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl FromStr for Version {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || format!("not a Patroni version: {text:?} (expected X.Y.Z)");
        let mut parts = text.trim().split('.');
        let mut next = |required: bool| -> Result<u32, String> {
            match parts.next() {
                Some(part) => {
                    // Tolerate suffixes such as "4.0.0rc1" or "3.0.2-1": the numeric prefix counts.
                    let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
                    digits.parse().map_err(|_| invalid())
                }
                None if required => Err(invalid()),
                None => Ok(0),
            }
        };
        let major = next(true)?;
        let minor = next(true)?;
        let patch = next(false)?;
        Ok(Version::new(major, minor, patch))
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Declares an enum of the words Patroni uses, with an `Other` arm that keeps any word a future
/// version adds, so that parsing never fails and the original text survives to the output.
macro_rules! patroni_words {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $($word:literal)|+),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)+
            Other(String),
        }

        impl $name {
            pub fn parse(word: &str) -> Self {
                match word {
                    $($($word)|+ => $name::$variant,)+
                    other => $name::Other(other.to_string()),
                }
            }

            /// The word as current Patroni versions spell it.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => patroni_words!(@first $($word)+),)+
                    $name::Other(word) => word,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    };
    (@first $first:literal $($rest:literal)*) => { $first };
}

patroni_words! {
    /// What PostgreSQL on a member is, as the member itself reports it in `/patroni`.
    /// Patroni up to 3.x says `master`; 4.x says `primary`.
    PostgresRole {
        Primary => "primary" | "master",
        Replica => "replica",
        StandbyLeader => "standby_leader",
        Demoted => "demoted",
        Promoted => "promoted",
        Uninitialized => "uninitialized",
    }
}

patroni_words! {
    /// A member's role in the cluster as `/cluster` reports it (the DCS view).
    ClusterRole {
        Leader => "leader",
        StandbyLeader => "standby_leader",
        SyncStandby => "sync_standby",
        QuorumStandby => "quorum_standby",
        Replica => "replica",
    }
}

patroni_words! {
    /// The state of a member: Patroni's PostgreSQL states plus the replication states that
    /// `/cluster` shows for replicas from 3.0.4 on.
    MemberState {
        Running => "running",
        Streaming => "streaming",
        InArchiveRecovery => "in archive recovery",
        Starting => "starting",
        Stopping => "stopping",
        Stopped => "stopped",
        Restarting => "restarting",
        CreatingReplica => "creating replica",
        InitializingNewCluster => "initializing new cluster",
        RunningCustomBootstrap => "running custom bootstrap script",
        StartingAfterCustomBootstrap => "starting after custom bootstrap",
        StartFailed => "start failed",
        RestartFailed => "restart failed",
        StopFailed => "stop failed",
        InitdbFailed => "initdb failed",
        CustomBootstrapFailed => "custom bootstrap failed",
        Crashed => "crashed",
        Unknown => "unknown",
    }
}

impl PostgresRole {
    /// True for the member that accepts writes (or leads a standby cluster).
    pub fn is_leader(&self) -> bool {
        matches!(self, PostgresRole::Primary | PostgresRole::StandbyLeader)
    }
}

impl ClusterRole {
    pub fn is_leader(&self) -> bool {
        matches!(self, ClusterRole::Leader | ClusterRole::StandbyLeader)
    }

    /// How `patronictl list` titles the role.
    pub fn title(&self) -> String {
        match self {
            ClusterRole::Leader => "Leader".into(),
            ClusterRole::StandbyLeader => "Standby Leader".into(),
            ClusterRole::SyncStandby => "Sync Standby".into(),
            ClusterRole::QuorumStandby => "Quorum Standby".into(),
            ClusterRole::Replica => "Replica".into(),
            ClusterRole::Other(word) => word.clone(),
        }
    }
}

/// One parameter waiting for a restart, e.g. `max_connections: 50->60`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PendingChange {
    pub old_value: Option<Value>,
    pub new_value: Option<Value>,
}

pub type PendingChanges = BTreeMap<String, PendingChange>;
pub type Tags = BTreeMap<String, Value>;

/// WAL positions as the member reports them about itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WalPosition {
    Primary {
        location: Lsn,
    },
    Replica {
        received: Option<Lsn>,
        replayed: Option<Lsn>,
        replayed_timestamp: Option<String>,
        replay_paused: bool,
    },
    /// PostgreSQL is not running or the member could not query it.
    Unknown,
}

/// A walsender on the primary, from `/patroni` `replication`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplicationConnection {
    pub application_name: String,
    pub user: Option<String>,
    pub client_addr: Option<String>,
    pub state: Option<String>,
    pub sync_state: Option<String>,
    pub sync_priority: Option<i64>,
}

/// What one member says about itself (`GET /patroni`), normalised across versions.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(clippy::struct_excessive_bools)] // independent flags Patroni reports
pub struct MemberStatus {
    /// Absent before Patroni 3.3: callers know the name from the inventory or `/cluster`.
    pub name: Option<String>,
    pub scope: Option<String>,
    pub patroni_version: Option<Version>,
    pub role: PostgresRole,
    pub state: MemberState,
    /// `streaming` or `in archive recovery` on replicas of Patroni 3.0+; `None` before.
    pub replication_state: Option<MemberState>,
    pub timeline: Option<u32>,
    /// PostgreSQL's `server_version_num`, e.g. 150018.
    pub server_version: Option<u32>,
    pub system_identifier: Option<String>,
    pub postmaster_start_time: Option<String>,
    pub paused: bool,
    pub pending_restart: bool,
    pub pending_restart_reason: PendingChanges,
    pub scheduled_restart: Option<String>,
    pub tags: Tags,
    pub sync_standby: bool,
    pub quorum_standby: bool,
    /// The member sees no leader key in the DCS.
    pub cluster_unlocked: bool,
    pub wal: WalPosition,
    pub replication: Vec<ReplicationConnection>,
    pub dcs_last_seen: Option<i64>,
}

impl MemberStatus {
    /// True when this replica is known to stream WAL from its upstream. Patroni before 3.0 does
    /// not say, so this is `false` there even for a healthy replica: see `effective_state`.
    pub fn is_streaming(&self) -> bool {
        self.replication_state == Some(MemberState::Streaming)
    }

    /// Patroni reports `replication_state` from 3.0 on, and then only while the walreceiver is
    /// connected: its absence means "not streaming" there, but "not said" before 3.0.
    pub fn reports_replication_state(&self) -> bool {
        self.patroni_version
            .is_some_and(|version| version >= Version::new(3, 0, 0))
    }

    /// The state a current Patroni would show for this member in `/cluster`: the replication
    /// state for running replicas where known, else the PostgreSQL state. A replica still
    /// `starting` reports `in archive recovery` too (recovery has begun, consistency not
    /// reached, possibly never): it is `starting`, not replicating.
    pub fn effective_state(&self) -> MemberState {
        match &self.replication_state {
            Some(replication) if !self.role.is_leader() && self.state == MemberState::Running => {
                replication.clone()
            }
            _ => self.state.clone(),
        }
    }

    /// `15.18` from `150018`.
    pub fn postgres_version(&self) -> Option<String> {
        self.server_version.map(format_server_version)
    }
}

/// `150018` → `15.18`; `90624` → `9.6.24`.
pub fn format_server_version(number: u32) -> String {
    if number >= 100_000 {
        format!("{}.{}", number / 10_000, number % 10_000)
    } else {
        format!(
            "{}.{}.{}",
            number / 10_000,
            number / 100 % 100,
            number % 100
        )
    }
}

/// The cluster as one member's view of the DCS shows it (`GET /cluster`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterTopology {
    /// Absent before Patroni 3.3.
    pub scope: Option<String>,
    pub paused: bool,
    pub scheduled_switchover: Option<ScheduledSwitchover>,
    pub members: Vec<ClusterMember>,
}

impl ClusterTopology {
    pub fn leader(&self) -> Option<&ClusterMember> {
        self.members.iter().find(|member| member.role.is_leader())
    }

    pub fn member(&self, name: &str) -> Option<&ClusterMember> {
        self.members.iter().find(|member| member.name == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScheduledSwitchover {
    pub at: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// One member in `/cluster`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterMember {
    pub name: String,
    pub role: ClusterRole,
    pub state: MemberState,
    /// Base URL of the member's REST API (Patroni publishes `…/patroni`; the suffix is removed).
    pub api_url: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub timeline: Option<u32>,
    /// Patroni's generic lag (all versions).
    pub lag: Option<Lag>,
    /// Patroni 4.1+.
    pub receive_lag: Option<Lag>,
    /// Patroni 4.1+.
    pub replay_lag: Option<Lag>,
    pub lsn: Option<Lsn>,
    pub receive_lsn: Option<Lsn>,
    pub replay_lsn: Option<Lsn>,
    pub pending_restart: bool,
    pub pending_restart_reason: PendingChanges,
    pub scheduled_restart: Option<String>,
    pub tags: Tags,
}

impl ClusterMember {
    /// The receive lag where the version reports it, else the generic lag (which older
    /// versions compute from the received position as well).
    pub fn effective_receive_lag(&self) -> Option<Lag> {
        self.receive_lag.or(self.lag)
    }

    /// The replay lag; only Patroni 4.1+ reports it separately.
    pub fn effective_replay_lag(&self) -> Option<Lag> {
        self.replay_lag
    }

    /// The largest lag this member reports, used for thresholds.
    pub fn worst_lag(&self) -> Option<Lag> {
        [self.lag, self.receive_lag, self.replay_lag]
            .into_iter()
            .flatten()
            .reduce(|worst, lag| match (worst, lag) {
                (Lag::Bytes(a), Lag::Bytes(b)) => Lag::Bytes(a.max(b)),
                _ => Lag::Unknown,
            })
    }
}

/// One line of `GET /history`: a timeline switch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineSwitch {
    pub timeline: u32,
    pub lsn: u64,
    pub reason: String,
    pub timestamp: Option<String>,
    /// Recorded from Patroni 2.1 on.
    pub new_leader: Option<String>,
}

// ---- conversions from the wire ----

impl From<StatusWire> for MemberStatus {
    fn from(wire: StatusWire) -> Self {
        let role = wire
            .role
            .as_deref()
            .map_or(PostgresRole::Other(String::new()), PostgresRole::parse);
        let wal = wal_position(&role, wire.xlog);
        let patroni = wire.patroni.unwrap_or_default();
        MemberStatus {
            name: patroni.name,
            scope: patroni.scope,
            patroni_version: patroni.version.and_then(|text| text.parse().ok()),
            role,
            state: wire
                .state
                .as_deref()
                .map_or(MemberState::Unknown, MemberState::parse),
            replication_state: wire.replication_state.as_deref().map(MemberState::parse),
            timeline: wire.timeline,
            server_version: wire.server_version,
            system_identifier: wire.database_system_identifier,
            postmaster_start_time: wire.postmaster_start_time,
            paused: wire.pause,
            pending_restart: wire.pending_restart,
            pending_restart_reason: pending_changes(wire.pending_restart_reason),
            scheduled_restart: scheduled_restart(wire.scheduled_restart),
            tags: wire.tags,
            sync_standby: wire.sync_standby,
            quorum_standby: wire.quorum_standby,
            cluster_unlocked: wire.cluster_unlocked,
            wal,
            replication: wire
                .replication
                .into_iter()
                .map(|connection| ReplicationConnection {
                    application_name: connection.application_name.unwrap_or_default(),
                    user: connection.usename,
                    client_addr: connection.client_addr,
                    state: connection.state,
                    sync_state: connection.sync_state,
                    sync_priority: connection.sync_priority,
                })
                .collect(),
            dcs_last_seen: wire.dcs_last_seen,
        }
    }
}

fn wal_position(role: &PostgresRole, xlog: Option<XlogWire>) -> WalPosition {
    let Some(xlog) = xlog else {
        return WalPosition::Unknown;
    };
    match (role, xlog.location) {
        (PostgresRole::Primary, Some(location)) => WalPosition::Primary {
            location: Lsn(location),
        },
        _ if xlog.received_location.is_some() || xlog.replayed_location.is_some() => {
            WalPosition::Replica {
                received: xlog.received_location.map(Lsn),
                replayed: xlog.replayed_location.map(Lsn),
                replayed_timestamp: xlog.replayed_timestamp,
                replay_paused: xlog.paused,
            }
        }
        (_, Some(location)) => WalPosition::Primary {
            location: Lsn(location),
        },
        _ => WalPosition::Unknown,
    }
}

impl From<ClusterWire> for ClusterTopology {
    fn from(wire: ClusterWire) -> Self {
        ClusterTopology {
            scope: wire.scope,
            paused: wire.pause,
            scheduled_switchover: wire
                .scheduled_switchover
                .map(|switchover| ScheduledSwitchover {
                    at: switchover.at,
                    from: switchover.from,
                    to: switchover.to,
                }),
            members: wire.members.into_iter().map(ClusterMember::from).collect(),
        }
    }
}

impl From<ClusterMemberWire> for ClusterMember {
    fn from(wire: ClusterMemberWire) -> Self {
        ClusterMember {
            role: wire
                .role
                .as_deref()
                .map_or(ClusterRole::Replica, ClusterRole::parse),
            state: wire
                .state
                .as_deref()
                .map_or(MemberState::Unknown, MemberState::parse),
            api_url: wire.api_url.map(|url| api_base_url(&url)),
            host: wire.host,
            port: wire.port,
            timeline: wire.timeline,
            lag: wire.lag.map(lag),
            receive_lag: wire.receive_lag.map(lag),
            replay_lag: wire.replay_lag.map(lag),
            lsn: wire.lsn.and_then(lsn),
            receive_lsn: wire.receive_lsn.and_then(lsn),
            replay_lsn: wire.replay_lsn.and_then(lsn),
            pending_restart: wire.pending_restart,
            pending_restart_reason: pending_changes(wire.pending_restart_reason),
            scheduled_restart: scheduled_restart(wire.scheduled_restart),
            tags: wire.tags,
            name: wire.name,
        }
    }
}

/// Patroni publishes `http://host:8008/patroni`; requests go to the base.
pub fn api_base_url(published: &str) -> String {
    let trimmed = published.trim_end_matches('/');
    // Credentials in a published URL (from `restapi.connect_address`) are nobody's to send or
    // show: pgha uses the REST credentials of its own settings.
    crate::web::strip_userinfo(trimmed.strip_suffix("/patroni").unwrap_or(trimmed))
}

fn lag(value: NumberOrText) -> Lag {
    match value {
        NumberOrText::Number(bytes) => Lag::Bytes(bytes),
        NumberOrText::Text(text) => text.parse().map_or(Lag::Unknown, Lag::Bytes),
    }
}

fn lsn(value: NumberOrText) -> Option<Lsn> {
    match value {
        NumberOrText::Number(position) => Some(Lsn(position)),
        NumberOrText::Text(text) => text.parse().ok(),
    }
}

fn pending_changes(wire: BTreeMap<String, PendingChangeWire>) -> PendingChanges {
    wire.into_iter()
        .map(|(name, change)| {
            (
                name,
                PendingChange {
                    old_value: change.old_value,
                    new_value: change.new_value,
                },
            )
        })
        .collect()
}

fn scheduled_restart(wire: Option<ScheduledRestartWire>) -> Option<String> {
    wire.and_then(|restart| restart.schedule)
}

/// `/history` rows: `[timeline, lsn, reason, timestamp, new_leader]`; the last two are missing
/// in old versions and rows of clusters upgraded from them.
pub(crate) fn history_from_rows(rows: Vec<Vec<Value>>) -> Vec<TimelineSwitch> {
    rows.into_iter()
        .filter_map(|row| {
            let text = |index: usize| row.get(index).and_then(Value::as_str).map(str::to_string);
            Some(TimelineSwitch {
                timeline: u32::try_from(row.first()?.as_u64()?).ok()?,
                lsn: row.get(1)?.as_u64()?,
                reason: text(2).unwrap_or_default(),
                timestamp: text(3),
                new_leader: text(4),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_round_trips_the_postgres_format() {
        let lsn: Lsn = "0/4045620".parse().unwrap();
        assert_eq!(lsn, Lsn(0x0404_5620));
        assert_eq!(lsn.to_string(), "0/4045620");
        assert_eq!(Lsn(0x1_0000_00AB).to_string(), "1/AB");
        assert!("nonsense".parse::<Lsn>().is_err());
    }

    #[test]
    fn versions_compare_numerically() {
        let old: Version = "3.9.1".parse().unwrap();
        let new: Version = "3.10.0".parse().unwrap();
        assert!(new > old);
        assert_eq!(
            "4.0.0rc1".parse::<Version>().unwrap(),
            Version::new(4, 0, 0)
        );
        assert_eq!("2.1".parse::<Version>().unwrap(), Version::new(2, 1, 0));
        assert!("x.y".parse::<Version>().is_err());
    }

    #[test]
    fn master_and_primary_are_one_role() {
        assert_eq!(PostgresRole::parse("master"), PostgresRole::Primary);
        assert_eq!(PostgresRole::parse("primary"), PostgresRole::Primary);
        assert_eq!(PostgresRole::Primary.as_str(), "primary");
        assert_eq!(
            PostgresRole::parse("someday"),
            PostgresRole::Other("someday".into())
        );
    }

    #[test]
    fn server_versions_format_like_postgres() {
        assert_eq!(format_server_version(150_018), "15.18");
        assert_eq!(format_server_version(90_624), "9.6.24");
    }

    #[test]
    fn api_url_loses_the_patroni_suffix() {
        assert_eq!(
            api_base_url("http://127.0.0.11:8008/patroni"),
            "http://127.0.0.11:8008"
        );
        assert_eq!(api_base_url("https://db1:8008/"), "https://db1:8008");
    }

    #[test]
    fn published_api_urls_lose_any_credentials() {
        assert_eq!(
            api_base_url("http://api:s3cret@127.0.0.11:8008/patroni"),
            "http://127.0.0.11:8008"
        );
    }

    #[test]
    fn unknown_lag_is_kept_apart_from_zero() {
        assert_eq!(lag(NumberOrText::Text("unknown".into())), Lag::Unknown);
        assert_eq!(lag(NumberOrText::Number(0)), Lag::Bytes(0));
    }
}
