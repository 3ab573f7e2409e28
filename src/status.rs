//! The status report: the stable, documented document that `pgha status -o json|yaml` prints
//! (schema version 1, see docs/status.md), and the patronictl-like table. Both are renderings
//! of one `ClusterView`; neither asks the cluster anything. The document keeps the cluster's
//! words exactly; the table prints them without control characters.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::observe::{ClusterView, ConsulView, EtcdView, MemberView, Severity, Warning};
use crate::patroni::model::{PendingChange, ScheduledSwitchover};
use crate::patroni::{Lag, Lsn};
use crate::ui::{human_bytes, printable, table};

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Serialize)]
pub struct StatusDocument {
    pub schema_version: u32,
    pub environment: String,
    pub cluster: String,
    pub scope: String,
    pub system_identifier: Option<String>,
    pub paused: bool,
    pub leader: Option<String>,
    pub scheduled_switchover: Option<ScheduledSwitchover>,
    pub observed_at: String,
    pub members: Vec<MemberDocument>,
    /// Null when the cluster does not use Consul.
    pub consul: Option<ConsulDocument>,
    /// Null unless pgha knows where the cluster's etcd is.
    pub etcd: Option<EtcdDocument>,
    /// The loudest first; `no_leader` leads when present.
    pub warnings: Vec<WarningDocument>,
}

/// A warning with its severity.
#[derive(Debug, Serialize)]
pub struct WarningDocument {
    pub severity: Severity,
    #[serde(flatten)]
    pub warning: Warning,
}

impl StatusDocument {
    /// The most severe warning, if any: what `--fail-on` compares.
    pub fn worst(&self) -> Option<Severity> {
        self.warnings.iter().map(|warning| warning.severity).max()
    }

    /// One line for `status --all`: the leader, how many replicas stream, the worst warning.
    pub fn summary_line(&self) -> String {
        let replicas: Vec<&MemberDocument> = self
            .members
            .iter()
            .filter(|member| Some(&member.name) != self.leader.as_ref())
            .collect();
        let streaming = replicas
            .iter()
            .filter(|member| member.state.as_deref() == Some("streaming"))
            .count();
        let worst = self.worst().map_or_else(
            || "no warning".to_string(),
            |worst| {
                let first = self
                    .warnings
                    .iter()
                    .find(|warning| warning.severity == worst)
                    .map(|warning| warning.warning.message())
                    .unwrap_or_default();
                format!("{}: {first}", worst.as_str())
            },
        );
        printable(&format!(
            "{}: leader {}, {streaming}/{} replicas streaming, {worst}",
            self.cluster,
            self.leader.as_deref().unwrap_or("none"),
            replicas.len()
        ))
        .into_owned()
    }

    fn has_no_leader(&self) -> bool {
        self.warnings
            .iter()
            .any(|warning| matches!(warning.warning, Warning::NoLeader { .. }))
    }
}

/// What Consul says about the cluster as a whole.
#[derive(Debug, Serialize)]
pub struct ConsulDocument {
    pub address: String,
    pub service: String,
    /// The cluster's KV prefix, with its trailing `/`.
    pub prefix: String,
    /// Null when Consul answered.
    pub error: Option<String>,
    /// Keys under `prefix`; null when they could not be read.
    pub keys: Option<Vec<String>>,
    /// Members found through `<tag>` with every check passing, as clients find them.
    pub passing_primary: Vec<String>,
    pub passing_replica: Vec<String>,
}

/// What etcd says about the cluster as a whole.
#[derive(Debug, Serialize)]
pub struct EtcdDocument {
    /// The endpoint asked first.
    pub endpoint: String,
    /// The cluster's key prefix, always with its trailing `/`.
    pub prefix: String,
    /// Null when etcd answered.
    pub error: Option<String>,
    /// Keys under `prefix`; null when they could not be read.
    pub keys: Option<Vec<String>>,
    /// Every endpoint pgha was given, with what it says about itself.
    pub endpoints: Vec<EtcdEndpointDocument>,
}

/// One etcd endpoint.
#[derive(Debug, Serialize)]
pub struct EtcdEndpointDocument {
    pub endpoint: Option<String>,
    pub version: Option<String>,
    /// The id of the etcd member this one follows; null without a leader.
    pub leader: Option<String>,
    /// Why it did not answer.
    pub error: Option<String>,
}

impl EtcdDocument {
    fn from_view(etcd: &EtcdView) -> Self {
        EtcdDocument {
            endpoint: etcd.endpoint.clone(),
            prefix: etcd.prefix.clone(),
            error: etcd.keys.as_ref().err().cloned(),
            keys: etcd.key_names().ok(),
            endpoints: etcd
                .endpoints
                .iter()
                .map(|status| match status {
                    Ok(status) => EtcdEndpointDocument {
                        endpoint: Some(status.endpoint.clone()),
                        version: Some(status.version.clone()),
                        leader: status.leader.clone(),
                        error: None,
                    },
                    Err(error) => EtcdEndpointDocument {
                        endpoint: None,
                        version: None,
                        leader: None,
                        error: Some(error.clone()),
                    },
                })
                .collect(),
        }
    }
}

/// One member's registration in Consul.
#[derive(Debug, Serialize)]
pub struct MemberConsulDocument {
    pub registered: bool,
    pub service_id: Option<String>,
    pub tags: Vec<String>,
    /// The worst of the instance's checks (node checks included), as Consul counts it.
    pub status: Option<&'static str>,
    pub checks: Vec<crate::consul::Check>,
}

#[derive(Debug, Serialize)]
pub struct MemberDocument {
    pub name: String,
    pub host: String,
    pub api_url: String,
    /// `ok`, `unreachable` (no connection or no answer in time) or `error`.
    pub api: &'static str,
    pub api_error: Option<String>,
    pub in_inventory: bool,
    pub in_dcs: bool,
    /// `leader`, `standby_leader`, `sync_standby`, `quorum_standby`, `replica`, or null.
    pub role: Option<String>,
    /// Patroni's state words, normalised: `streaming` wherever the version reports it.
    pub state: Option<String>,
    pub timeline: Option<u32>,
    pub receive_lsn: Option<Lsn>,
    /// Null on the leader, and when Patroni reports the lag as unknown.
    pub receive_lag_bytes: Option<u64>,
    pub replay_lsn: Option<Lsn>,
    pub replay_lag_bytes: Option<u64>,
    pub pending_restart: bool,
    pub pending_restart_reason: BTreeMap<String, PendingChange>,
    pub scheduled_restart: Option<String>,
    pub tags: BTreeMap<String, Value>,
    pub patroni_version: Option<String>,
    pub postgres_version: Option<String>,
    /// Null when the cluster does not use Consul or Consul did not answer.
    pub consul: Option<MemberConsulDocument>,
}

impl StatusDocument {
    pub fn from_view(view: &ClusterView, observed_at: String) -> Self {
        StatusDocument {
            schema_version: SCHEMA_VERSION,
            environment: view.environment.clone(),
            cluster: view.cluster.clone(),
            scope: view.scope.clone(),
            system_identifier: view.system_identifier.clone(),
            paused: view.paused,
            leader: view.leader.clone(),
            scheduled_switchover: view.scheduled_switchover.clone(),
            observed_at,
            members: view
                .members
                .iter()
                .map(|member| MemberDocument::from_view(member, view))
                .collect(),
            consul: view.consul.as_ref().map(ConsulDocument::from_view),
            etcd: view.etcd.as_ref().map(EtcdDocument::from_view),
            warnings: view
                .warnings
                .iter()
                .map(|warning| WarningDocument {
                    severity: warning.severity(),
                    warning: warning.clone(),
                })
                .collect(),
        }
    }
}

impl ConsulDocument {
    fn from_view(consul: &ConsulView) -> Self {
        let names = |tag: &str| {
            consul
                .passing_with_tag(tag)
                .iter()
                .map(|instance| instance.id.clone())
                .collect()
        };
        ConsulDocument {
            address: consul.address.clone(),
            service: consul.service.clone(),
            prefix: consul.prefix.clone(),
            error: consul.instances.as_ref().err().cloned(),
            keys: consul.keys.as_ref().ok().cloned(),
            passing_primary: names("primary"),
            passing_replica: names("replica"),
        }
    }
}

impl MemberConsulDocument {
    fn from_view(consul: &ConsulView, scope: &str, member: &str) -> Option<Self> {
        consul.instances.as_ref().ok()?;
        Some(match consul.instance(scope, member) {
            Some(instance) => MemberConsulDocument {
                registered: true,
                service_id: Some(instance.id.clone()),
                tags: instance.tags.clone(),
                status: Some(instance.status().as_str()),
                checks: instance.checks.clone(),
            },
            None => MemberConsulDocument {
                registered: false,
                service_id: None,
                tags: Vec::new(),
                status: None,
                checks: Vec::new(),
            },
        })
    }

    /// The table cell: `primary,master passing`, or `-` when not registered.
    fn cell(&self) -> String {
        if self.registered {
            format!("{} {}", self.tags.join(","), self.status.unwrap_or(""))
        } else {
            "-".to_string()
        }
    }
}

impl MemberDocument {
    fn from_view(member: &MemberView, view: &ClusterView) -> Self {
        let (api, api_error) = match &member.status {
            Ok(_) => ("ok", None),
            Err(failure) if failure.unreachable => ("unreachable", Some(failure.message.clone())),
            Err(failure) => ("error", Some(failure.message.clone())),
        };
        MemberDocument {
            name: member.name.clone(),
            host: member.host.clone(),
            api_url: member.api_url.clone(),
            api,
            api_error,
            in_inventory: member.in_inventory,
            in_dcs: member.dcs.is_some(),
            role: member.role().map(|role| role.as_str().to_string()),
            state: member.state().map(|state| state.as_str().to_string()),
            timeline: member.timeline(),
            receive_lsn: member.receive_lsn(),
            receive_lag_bytes: member.receive_lag().and_then(Lag::bytes),
            replay_lsn: member.replay_lsn(),
            replay_lag_bytes: member.replay_lag().and_then(Lag::bytes),
            pending_restart: member.pending_restart(),
            pending_restart_reason: member.pending_restart_reason(),
            scheduled_restart: member.scheduled_restart(),
            tags: member.tags(),
            patroni_version: member.patroni_version().map(|version| version.to_string()),
            postgres_version: member.postgres_version(),
            consul: view.consul.as_ref().and_then(|consul| {
                MemberConsulDocument::from_view(consul, &view.scope, &member.name)
            }),
        }
    }
}

/// How the table is laid out, as `patronictl list` flags say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableStyle {
    /// `-e`: the pending-restart, scheduled-restart and tags columns, always.
    pub extended: bool,
    /// `--topology`: the leader first, each replica under the member it replicates from.
    pub topology: bool,
    /// `-t`: when the cluster was observed, above the table.
    pub timestamp: bool,
}

/// The table: like `patronictl list`, plus the Patroni version of each member and the API
/// state; the pending-restart and tags columns appear only when a member has one.
pub fn render_table(document: &StatusDocument) -> String {
    render_table_styled(document, TableStyle::default())
}

/// The table laid out as `style` says.
pub fn render_table_styled(document: &StatusDocument, style: TableStyle) -> String {
    let show_pending =
        style.extended || document.members.iter().any(|member| member.pending_restart);
    let show_scheduled = style.extended
        || document
            .members
            .iter()
            .any(|member| member.scheduled_restart.is_some());
    let show_tags = style.extended
        || document
            .members
            .iter()
            .any(|member| !member.tags.is_empty());
    let mut header = vec![
        "Member",
        "Host",
        "Role",
        "State",
        "TL",
        "Receive LSN",
        "Lag",
        "Replay LSN",
        "Lag",
    ];
    if show_pending {
        header.extend(["Pending restart", "Pending restart reason"]);
    }
    if show_scheduled {
        header.push("Scheduled restart");
    }
    if show_tags {
        header.push("Tags");
    }
    header.push("Patroni");
    let show_consul = document
        .members
        .iter()
        .any(|member| member.consul.is_some());
    if show_consul {
        header.push("Consul");
    }
    let no_leader = document.has_no_leader();
    let columns = Columns {
        pending: show_pending,
        scheduled: show_scheduled,
        tags: show_tags,
    };
    let ordered: Vec<(usize, &MemberDocument)> = if style.topology {
        topology(document)
    } else {
        document.members.iter().map(|member| (0, member)).collect()
    };
    let rows = ordered
        .into_iter()
        .map(|(depth, member)| {
            let mut row = member_row(member, columns, no_leader);
            if depth > 0 {
                row[0] = format!("{}+ {}", "  ".repeat(depth - 1), row[0]);
            }
            if show_consul {
                row.push(
                    member
                        .consul
                        .as_ref()
                        .map(MemberConsulDocument::cell)
                        .unwrap_or_default(),
                );
            }
            row
        })
        .collect();
    // The inventory's name first when it is not the scope (`status --all` shows several).
    let name = if document.cluster == document.scope {
        document.scope.clone()
    } else {
        format!("{}, scope {}", document.cluster, document.scope)
    };
    let title = format!(
        "Cluster: {name} ({})",
        document
            .system_identifier
            .as_deref()
            .unwrap_or("system id unknown")
    );
    // What takes writes away is said first, above the table, not under it.
    let mut text = if style.timestamp {
        format!("{}\n", document.observed_at)
    } else {
        String::new()
    };
    text.push_str(&banner(document));
    text.push_str(&table(Some(&title), &header, rows, &[4, 5, 6, 7, 8]));
    text.push('\n');
    text.push_str(&footer(document));
    text
}

/// The critical warnings, one line each, marked for the eye (in red on a terminal).
fn banner(document: &StatusDocument) -> String {
    let mut text = String::new();
    for warning in &document.warnings {
        if warning.severity == Severity::Critical {
            // Warnings quote members' names and answers: only pgha's own red may reach the screen.
            text.push_str(&crate::ui::loud(&printable(&format!(
                "CRITICAL: {}",
                warning.warning.message()
            ))));
            text.push('\n');
        }
    }
    text
}

/// Which optional columns the table has.
#[derive(Debug, Clone, Copy)]
struct Columns {
    pending: bool,
    scheduled: bool,
    tags: bool,
}

/// The members as a tree: the leader (or, without one, every member not replicating from
/// another) at depth 0, each replica under the member its `replicatefrom` tag names, else
/// under the leader; cycles and unknown names fall back to the leader.
fn topology(document: &StatusDocument) -> Vec<(usize, &MemberDocument)> {
    let leader = document.leader.as_deref();
    let upstream = |member: &MemberDocument| -> Option<String> {
        if Some(member.name.as_str()) == leader {
            return None;
        }
        let named = member
            .tags
            .get("replicatefrom")
            .and_then(Value::as_str)
            .filter(|name| {
                *name != member.name && document.members.iter().any(|m| m.name == *name)
            });
        named
            .map(str::to_string)
            .or_else(|| leader.map(str::to_string))
    };
    let mut ordered = Vec::new();
    let mut placed = std::collections::BTreeSet::new();
    let mut stack: Vec<(usize, &MemberDocument)> = document
        .members
        .iter()
        .filter(|member| upstream(member).is_none())
        .rev()
        .map(|member| (0, member))
        .collect();
    while let Some((depth, member)) = stack.pop() {
        if !placed.insert(member.name.as_str()) {
            continue;
        }
        ordered.push((depth, member));
        let children = document
            .members
            .iter()
            .filter(|child| upstream(child).as_deref() == Some(member.name.as_str()))
            .rev();
        stack.extend(children.map(|child| (depth + 1, child)));
    }
    // Members in a replicatefrom cycle hang under nothing: shown last, at depth 1.
    for member in &document.members {
        if placed.insert(member.name.as_str()) {
            ordered.push((1, member));
        }
    }
    ordered
}

fn member_row(member: &MemberDocument, columns: Columns, no_leader: bool) -> Vec<String> {
    let lag = |lag: Option<u64>, lsn: Option<Lsn>| match (lag, lsn) {
        (Some(bytes), _) => human_bytes(bytes),
        (None, Some(_)) => "unknown".to_string(),
        (None, None) => String::new(),
    };
    let state = match (member.api, &member.state, member.in_dcs) {
        // A replica with no leader to follow replicates nothing that takes writes.
        ("ok", Some(state), _) if no_leader && member.role.as_deref() != Some("leader") => {
            format!("{state} (no leader)")
        }
        ("ok", Some(state), _) => state.clone(),
        (_, Some(state), true) => format!("unreachable (DCS: {state})"),
        ("ok", None, _) => String::new(),
        _ => "unreachable".to_string(),
    };
    let mut row = vec![
        member.name.clone(),
        member.host.clone(),
        member.role.as_deref().map_or_else(
            || {
                if member.in_dcs {
                    String::new()
                } else {
                    "-".into()
                }
            },
            |role| crate::patroni::ClusterRole::parse(role).title(),
        ),
        state,
        member
            .timeline
            .map(|timeline| timeline.to_string())
            .unwrap_or_default(),
        member
            .receive_lsn
            .map(|lsn| lsn.to_string())
            .unwrap_or_default(),
        lag(member.receive_lag_bytes, member.receive_lsn),
        member
            .replay_lsn
            .map(|lsn| lsn.to_string())
            .unwrap_or_default(),
        lag(member.replay_lag_bytes, member.replay_lsn),
    ];
    if columns.pending {
        row.push(if member.pending_restart {
            "*".into()
        } else {
            String::new()
        });
        row.push(
            member
                .pending_restart_reason
                .iter()
                .map(|(name, change)| {
                    format!(
                        "{name}: {}->{}",
                        plain(change.old_value.as_ref()),
                        plain(change.new_value.as_ref())
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    if columns.scheduled {
        row.push(member.scheduled_restart.clone().unwrap_or_default());
    }
    if columns.tags {
        row.push(
            member
                .tags
                .iter()
                .map(|(name, value)| format!("{name}: {}", plain(Some(value))))
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    row.push(member.patroni_version.clone().unwrap_or_default());
    row
}

fn plain(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

fn footer(document: &StatusDocument) -> String {
    let mut lines = Vec::new();
    if document.paused {
        lines.push(" Maintenance mode: on".to_string());
    }
    if let Some(switchover) = &document.scheduled_switchover {
        lines.push(format!(
            " Switchover scheduled at: {}",
            switchover.at.as_deref().unwrap_or("?")
        ));
        lines.push(format!(
            "                    from: {}",
            switchover.from.as_deref().unwrap_or("?")
        ));
        if let Some(to) = &switchover.to {
            lines.push(format!("                      to: {to}"));
        }
    }
    if let Some(consul) = &document.consul {
        lines.push(consul_line(consul));
    }
    for warning in &document.warnings {
        if warning.severity != Severity::Critical {
            lines.push(format!(
                " ! {}: {}",
                warning.severity.as_str(),
                warning.warning.message()
            ));
        }
    }
    // Every line quotes the cluster or Consul (names, times, addresses, warnings).
    let mut text = lines
        .iter()
        .map(|line| printable(line))
        .collect::<Vec<_>>()
        .join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    text
}

/// One line on Consul: where, which service, and what clients find through it right now.
fn consul_line(consul: &ConsulDocument) -> String {
    if consul.error.is_some() {
        return format!(" Consul {}: not answering", consul.address);
    }
    let keys = consul.keys.as_ref().map_or_else(
        || "keys unreadable".to_string(),
        |keys| format!("{} keys", keys.len()),
    );
    let names = |ids: &[String]| {
        if ids.is_empty() {
            "none".to_string()
        } else {
            ids.join(", ")
        }
    };
    format!(
        " Consul {}: service {} (passing primary: {}; passing replica: {}), {keys} under {}",
        consul.address,
        consul.service,
        names(&consul.passing_primary),
        names(&consul.passing_replica),
        consul.prefix
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::merge;
    use crate::observe::testing::{healthy, silence_a_replica};

    const OBSERVED_AT: &str = "2026-11-23T20:00:00.000Z";

    #[test]
    fn healthy_cluster_table() {
        let (target, observations) = healthy("4.1.5");
        let view = merge(&target, observations).unwrap();
        insta::assert_snapshot!(render_table(&StatusDocument::from_view(
            &view,
            OBSERVED_AT.into()
        )));
    }

    /// A replica cascading from another sits under it; `-t` puts the time on top; `--extended`
    /// shows the optional columns even when empty.
    #[test]
    fn topology_nests_cascading_replicas_under_their_upstream() {
        let (target, observations) = healthy("4.1.5");
        let view = merge(&target, observations).unwrap();
        let mut document = StatusDocument::from_view(&view, OBSERVED_AT.into());
        let leader = document.leader.clone().unwrap();
        let replicas: Vec<String> = document
            .members
            .iter()
            .map(|member| member.name.clone())
            .filter(|name| *name != leader)
            .collect();
        let (upstream, cascading) = (&replicas[0], &replicas[1]);
        for member in &mut document.members {
            if member.name == *cascading {
                member
                    .tags
                    .insert("replicatefrom".into(), Value::String(upstream.clone()));
            }
        }
        let names: Vec<String> = topology(&document)
            .into_iter()
            .map(|(depth, member)| format!("{depth} {}", member.name))
            .collect();
        assert_eq!(
            names,
            [
                format!("0 {leader}"),
                format!("1 {upstream}"),
                format!("2 {cascading}")
            ]
        );
        let style = TableStyle {
            extended: true,
            topology: true,
            timestamp: true,
        };
        let table = render_table_styled(&document, style);
        assert!(table.starts_with(&format!("{OBSERVED_AT}\n")), "{table}");
        assert!(table.contains(&format!("| + {upstream} ")), "{table}");
        assert!(table.contains(&format!("|   + {cascading} ")), "{table}");
        assert!(table.contains("| Scheduled restart |"), "{table}");
        // A replicatefrom naming the member itself, or nobody there: under the leader.
        for member in &mut document.members {
            if member.name == *cascading {
                member
                    .tags
                    .insert("replicatefrom".into(), Value::String(cascading.clone()));
            }
        }
        assert!(
            topology(&document)
                .iter()
                .all(|(depth, member)| *depth == usize::from(member.name != leader))
        );
    }

    #[test]
    fn old_release_table_shows_computed_replay_lag() {
        let (target, observations) = healthy("2.1.7");
        let view = merge(&target, observations).unwrap();
        insta::assert_snapshot!(render_table(&StatusDocument::from_view(
            &view,
            OBSERVED_AT.into()
        )));
    }

    #[test]
    fn degraded_cluster_table_shows_every_problem() {
        let (target, mut observations) = healthy("4.1.5");
        silence_a_replica(&mut observations);
        for observation in &mut observations {
            if let Ok(topology) = &mut observation.topology {
                topology.paused = true;
                for member in &mut topology.members {
                    member.pending_restart = true;
                    member.pending_restart_reason.insert(
                        "max_connections".into(),
                        crate::patroni::model::PendingChange {
                            old_value: Some("50".into()),
                            new_value: Some("60".into()),
                        },
                    );
                }
            }
        }
        let view = merge(&target, observations).unwrap();
        insta::assert_snapshot!(render_table(&StatusDocument::from_view(
            &view,
            OBSERVED_AT.into()
        )));
    }

    #[test]
    fn consul_column_and_line() {
        let (target, observations) = healthy("4.1.5");
        let mut view = merge(&target, observations).unwrap();
        let mut consul = crate::observe::testing::registered(&view);
        if let Ok(instances) = &mut consul.instances {
            instances.remove(2);
        }
        crate::observe::consul::check(&mut view, &consul);
        view.consul = Some(consul);
        let document = StatusDocument::from_view(&view, OBSERVED_AT.into());
        insta::assert_snapshot!(render_table(&document));
        insta::assert_json_snapshot!(
            document
                .members
                .iter()
                .map(|member| &member.consul)
                .collect::<Vec<_>>()
        );
    }

    /// What a terminal would act on; the table and its lines keep only their newlines.
    fn controls(text: &str) -> Vec<char> {
        text.chars()
            .filter(|character| character.is_control() && *character != '\n')
            .collect()
    }

    #[test]
    fn the_table_prints_no_control_characters_from_the_cluster() {
        use crate::patroni::{ClusterRole, MemberState, PatroniError};
        let (target, mut observations) = healthy("4.1.5");
        for observation in &mut observations {
            if let Ok(topology) = &mut observation.topology {
                topology.scope = Some("demo\x1b]0;pwned\x07".into());
                let mut stranger = topology.members[0].clone();
                stranger.name = "node9\x1b[2J\x1b[31m".into();
                stranger.role = ClusterRole::parse("replica\r");
                stranger.state = MemberState::parse("streaming\u{9b}5m");
                stranger
                    .tags
                    .insert("zone\x08".into(), Value::String("a\x1b[8mb".into()));
                topology.members.push(stranger);
            }
        }
        crate::observe::testing::first_replica(&mut observations).status =
            Err(PatroniError::Status {
                url: "http://127.0.0.32:8008/patroni".into(),
                status: 500,
                body: "boom\x1b[2J\rall is well\x07".into(),
            });
        let view = merge(&target, observations).unwrap();
        let table = render_table(&StatusDocument::from_view(&view, OBSERVED_AT.into()));
        assert_eq!(controls(&table), Vec::<char>::new(), "{table}");
        for shown in [
            "node9",
            "Cluster: demo, scope demo (",
            "streaming",
            "zone: ab",
            "boomall is well",
        ] {
            assert!(table.contains(shown), "{shown:?} in\n{table}");
        }
    }

    #[test]
    fn json_document_schema() {
        let (target, observations) = healthy("4.1.5");
        let view = merge(&target, observations).unwrap();
        insta::assert_json_snapshot!(StatusDocument::from_view(&view, OBSERVED_AT.into()));
    }
}
