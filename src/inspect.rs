//! patronictl's small read-only commands, from one observation: `pgha version` (pgha's own
//! release, then each member's Patroni and PostgreSQL as the member reports them) and `pgha dsn`
//! (a libpq connection string for the primary, the most caught-up streaming replica, or a named
//! member — host and port only: never a user's password).

use std::fmt::Write as _;

use serde::Serialize;

use crate::error::Error;
use crate::observe::{ClusterView, MemberView};
use crate::patroni::{Lag, MemberState};
use crate::ui::OutputFormat;

/// Which member `pgha dsn` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DsnTarget {
    Primary,
    Replica,
    Member(String),
}

/// One member's releases as it reports them.
#[derive(Debug, Serialize)]
pub struct MemberVersions {
    pub name: String,
    pub patroni: Option<String>,
    pub postgres: Option<String>,
    /// Why the member did not say.
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Versions {
    pub pgha: &'static str,
    pub cluster: String,
    pub members: Vec<MemberVersions>,
}

pub fn versions(view: &ClusterView) -> Versions {
    Versions {
        pgha: env!("CARGO_PKG_VERSION"),
        cluster: view.cluster.clone(),
        members: view
            .members
            .iter()
            .map(|member| MemberVersions {
                name: member.name.clone(),
                patroni: member.patroni_version().map(|version| version.to_string()),
                postgres: member.postgres_version(),
                error: member
                    .status
                    .as_ref()
                    .err()
                    .map(|failure| failure.message.clone()),
            })
            .collect(),
    }
}

/// As patronictl prints it: its own release, a blank line, one line per member.
pub fn render_versions(versions: &Versions) -> String {
    let mut text = format!("pgha {}\n\n", versions.pgha);
    for member in &versions.members {
        let _ = match (&member.patroni, &member.error) {
            (Some(patroni), _) => writeln!(
                text,
                "{}: Patroni {patroni} PostgreSQL {}",
                member.name,
                member.postgres.as_deref().unwrap_or("not running")
            ),
            (None, Some(error)) => writeln!(text, "{}: unreachable ({error})", member.name),
            (None, None) => writeln!(text, "{}: unknown", member.name),
        };
    }
    text
}

/// `host=H port=P` for the member `target` names.
/// The member `pgha dsn` chose and where it listens; `-o json`/`yaml` print this.
#[derive(Debug, Serialize)]
pub struct Dsn {
    pub member: String,
    /// `leader`, `standby_leader`, `replica`, … as the DCS names it.
    pub role: Option<String>,
    pub host: String,
    pub port: u16,
    /// `host=H port=P`, for libpq.
    pub dsn: String,
}

pub fn dsn(view: &ClusterView, target: &DsnTarget) -> Result<Dsn, Error> {
    let member = match target {
        DsnTarget::Primary => view
            .leader
            .as_deref()
            .and_then(|leader| view.member(leader))
            .ok_or_else(|| {
                Error::Refused(format!(
                    "no member of {} leads: no primary to connect to",
                    view.cluster
                ))
            })?,
        DsnTarget::Replica => best_replica(view).ok_or_else(|| {
            Error::Refused(format!(
                "no replica of {} streams: none to connect to",
                view.cluster
            ))
        })?,
        DsnTarget::Member(name) => view.member(name).ok_or_else(|| {
            let known: Vec<&str> = view
                .members
                .iter()
                .map(|member| member.name.as_str())
                .collect();
            Error::BadInput(format!(
                "cluster {} has no member {name:?} (members: {})",
                view.cluster,
                known.join(", ")
            ))
        })?,
    };
    let (host, port) = address(member);
    Ok(Dsn {
        member: member.name.clone(),
        role: member
            .dcs
            .as_ref()
            .map(|entry| entry.role.as_str().to_string()),
        dsn: format!("host={host} port={port}"),
        host,
        port,
    })
}

/// The streaming replica with the least receive lag (ties: the first by name).
fn best_replica(view: &ClusterView) -> Option<&MemberView> {
    view.members
        .iter()
        .filter(|member| !member.is_leader() && member.state() == Some(MemberState::Streaming))
        .min_by_key(|member| match member.receive_lag() {
            Some(Lag::Bytes(bytes)) => bytes,
            _ => u64::MAX,
        })
}

/// Where PostgreSQL listens, as the member registered it in the DCS (its `conn_url`), else its
/// host on the default port.
fn address(member: &MemberView) -> (String, u16) {
    let registered = member.dcs.as_ref();
    (
        registered
            .and_then(|entry| entry.host.clone())
            .unwrap_or_else(|| member.host.clone()),
        registered.and_then(|entry| entry.port).unwrap_or(5432),
    )
}

/// `pgha version` as the format asks.
pub fn print_versions(view: &ClusterView, format: OutputFormat) -> Result<(), Error> {
    let versions = versions(view);
    match format {
        OutputFormat::Table => crate::ui::print_stdout(&render_versions(&versions))?,
        other => crate::ui::write_document(other, &versions)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::testing::view_led_by;

    #[test]
    fn versions_read_like_patronictls() {
        let (_, view) = view_led_by("4.1.5", "node3", Some(1));
        let text = render_versions(&versions(&view));
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("pgha "));
        assert_eq!(lines[1], "");
        assert!(
            lines[2..]
                .iter()
                .all(|line| line.contains(": Patroni 4.1.5 PostgreSQL 15.")),
            "{text}"
        );
    }

    #[test]
    fn a_dsn_names_the_primary_a_streaming_replica_or_a_member() {
        let (_, view) = view_led_by("4.1.5", "node3", Some(1));
        let leader = view.member("node3").unwrap();
        let primary = dsn(&view, &DsnTarget::Primary).unwrap();
        assert_eq!(primary.dsn, format!("host={} port=5432", address(leader).0));
        assert_eq!(
            (
                primary.member.as_str(),
                primary.role.as_deref(),
                primary.port
            ),
            ("node3", Some("leader"), 5432)
        );
        let replica = dsn(&view, &DsnTarget::Replica).unwrap();
        assert_ne!(replica.member, "node3");
        assert_eq!(replica.role.as_deref(), Some("replica"));
        assert!(dsn(&view, &DsnTarget::Member("node1".into())).is_ok());
        let unknown = dsn(&view, &DsnTarget::Member("node9".into())).unwrap_err();
        assert!(
            unknown.to_string().contains("members: node1, node2, node3"),
            "{unknown}"
        );
    }

    #[test]
    fn no_leader_means_no_primary_dsn() {
        let (_, mut view) = view_led_by("4.1.5", "node3", Some(1));
        view.leader = None;
        let refused = dsn(&view, &DsnTarget::Primary).unwrap_err();
        assert!(refused.to_string().contains("no primary to connect to"));
    }
}
