//! The cluster as etcd holds it, beside what Patroni says: the keys under the cluster's prefix
//! (`leader`, `members/*`, `config`, `initialize`, `sync`, …) and what each etcd member says about
//! itself. Read concurrently with the members; an etcd that does not answer is a warning, never
//! a failure of the whole observation. With every Patroni stopped, the keys alone describe the
//! cluster. Flagged: an etcd without quorum (Patroni cannot keep the leader key: writes stop at
//! `ttl`), a leader key held by a member whose API does not answer, a leader key that is not
//! the leader the members name.

use serde::Serialize;
use serde_json::Value;

use super::{ClusterView, Warning};
use crate::etcd::{EndpointStatus, EtcdClient, EtcdError, KeyValue};
use crate::patroni::{ClusterMember, ClusterRole, ClusterTopology, Lag, Lsn, MemberState};

/// What etcd answered about one cluster.
#[derive(Debug, Clone, Serialize)]
pub struct EtcdView {
    /// The endpoint asked first.
    pub endpoint: String,
    /// The cluster's key prefix, with its trailing `/`.
    pub prefix: String,
    /// The keys under `prefix`, or why they could not be read.
    #[serde(skip)]
    pub keys: Result<Vec<KeyValue>, String>,
    /// What each endpoint says about itself, or why it did not answer.
    #[serde(skip)]
    pub endpoints: Vec<Result<EndpointStatus, String>>,
}

impl EtcdView {
    /// The key names under the prefix, as a tree delete would remove them.
    pub fn key_names(&self) -> Result<Vec<String>, String> {
        self.keys
            .as_ref()
            .map(|keys| keys.iter().map(|kv| kv.key.clone()).collect())
            .map_err(Clone::clone)
    }

    fn value(&self, name: &str) -> Option<&KeyValue> {
        let key = format!("{}{name}", self.prefix);
        self.keys.as_ref().ok()?.iter().find(|kv| kv.key == key)
    }

    /// The member holding the leader key.
    pub fn leader(&self) -> Option<String> {
        self.value("leader").map(KeyValue::text)
    }

    /// The database system identifier the cluster was initialised with.
    pub fn system_identifier(&self) -> Option<String> {
        self.value("initialize").map(KeyValue::text)
    }

    /// The cluster as its keys describe it (what `/cluster` would answer), when the keys were
    /// read and hold members.
    pub fn topology(&self) -> Option<ClusterTopology> {
        let keys = self.keys.as_ref().ok()?;
        let members_prefix = format!("{}members/", self.prefix);
        let leader = self.leader();
        let sync = self.sync_standbys();
        let entries: Vec<(String, Value)> = keys
            .iter()
            .filter_map(|kv| {
                let name = kv.key.strip_prefix(&members_prefix)?;
                Some((name.to_string(), serde_json::from_slice(&kv.value).ok()?))
            })
            .collect();
        if entries.is_empty() {
            return None;
        }
        let leader_position = entries
            .iter()
            .find(|(name, _)| Some(name) == leader.as_ref())
            .and_then(|(_, entry)| entry["xlog_location"].as_u64());
        let members = entries
            .iter()
            .map(|(name, entry)| {
                let role = if Some(name) == leader.as_ref() {
                    ClusterRole::Leader
                } else if sync.contains(name) {
                    ClusterRole::SyncStandby
                } else {
                    ClusterRole::Replica
                };
                member_from_key(name, entry, role, leader_position)
            })
            .collect();
        let config: Option<Value> = self
            .value("config")
            .and_then(|kv| serde_json::from_slice(&kv.value).ok());
        Some(ClusterTopology {
            scope: None,
            paused: config.is_some_and(|config| config["pause"] == true),
            scheduled_switchover: None,
            members,
        })
    }

    fn sync_standbys(&self) -> Vec<String> {
        let Some(sync) = self
            .value("sync")
            .and_then(|kv| serde_json::from_slice::<Value>(&kv.value).ok())
        else {
            return Vec::new();
        };
        sync["sync_standby"]
            .as_str()
            .map(|names| {
                names
                    .split(',')
                    .map(|name| name.trim().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Endpoints that answered and follow a leader, of all the endpoints known.
    fn quorum(&self) -> (usize, usize) {
        let led = self
            .endpoints
            .iter()
            .filter(|status| status.as_ref().is_ok_and(|status| status.leader.is_some()))
            .count();
        (led, self.endpoints.len())
    }
}

/// One member as its key in the DCS describes it (Patroni writes it every loop).
fn member_from_key(
    name: &str,
    entry: &Value,
    role: ClusterRole,
    leader_position: Option<u64>,
) -> ClusterMember {
    let state = match (&role, entry["replication_state"].as_str()) {
        (ClusterRole::Leader, _) | (_, None) => {
            MemberState::parse(entry["state"].as_str().unwrap_or("unknown"))
        }
        (_, Some(replication)) => MemberState::parse(replication),
    };
    let conn = entry["conn_url"]
        .as_str()
        .and_then(|url| url::Url::parse(url).ok());
    let position = entry["xlog_location"].as_u64();
    let lag = match (&role, leader_position, position) {
        (ClusterRole::Leader, ..) => None,
        (_, Some(leader), Some(position)) => Some(Lag::Bytes(leader.saturating_sub(position))),
        _ => Some(Lag::Unknown),
    };
    ClusterMember {
        name: name.to_string(),
        role,
        state,
        api_url: entry["api_url"]
            .as_str()
            .map(|url| url.trim_end_matches("/patroni").to_string()),
        host: conn
            .as_ref()
            .and_then(|url| url.host_str().map(str::to_string)),
        port: conn.as_ref().and_then(url::Url::port),
        timeline: entry["timeline"]
            .as_u64()
            .and_then(|timeline| u32::try_from(timeline).ok()),
        lag,
        receive_lag: None,
        replay_lag: None,
        lsn: position.map(Lsn),
        receive_lsn: entry["receive_lsn"].as_u64().map(Lsn),
        replay_lsn: entry["replay_lsn"].as_u64().map(Lsn),
        pending_restart: entry["pending_restart"] == true,
        pending_restart_reason: std::collections::BTreeMap::default(),
        scheduled_restart: None,
        tags: entry["tags"]
            .as_object()
            .map(|tags| tags.clone().into_iter().collect())
            .unwrap_or_default(),
    }
}

/// Reads the cluster's keys and every endpoint's own status, all at once. Settings etcd refuses
/// (credentials, TLS) are the operator's to fix: an error, not a warning.
pub async fn read(client: &EtcdClient, scope: &str) -> Result<EtcdView, EtcdError> {
    let prefix = client.cluster_prefix(scope);
    let (keys, endpoints) = tokio::join!(client.range_prefix(&prefix), client.statuses());
    let keys = match keys {
        Err(error) if error.is_bad_input() => return Err(error),
        keys => keys,
    };
    Ok(EtcdView {
        endpoint: client.endpoint().to_string(),
        prefix,
        keys: keys.map_err(|error| error.to_string()),
        endpoints: endpoints
            .into_iter()
            .map(|status| status.map_err(|error| error.to_string()))
            .collect(),
    })
}

/// Adds what etcd says is wrong to the view's warnings.
pub fn check(view: &mut ClusterView, etcd: &EtcdView) {
    if let Some(warning) = quorum_warning(etcd) {
        view.warnings.push(warning);
    }
    if let Err(error) = &etcd.keys {
        view.warnings.push(Warning::EtcdUnreachable {
            message: format!("etcd could not be read: {error}"),
        });
        return;
    }
    let Some(holder) = etcd.leader() else {
        return;
    };
    match &view.leader {
        Some(leader) if *leader != holder => view.warnings.push(Warning::LeaderDisagreement {
            message: format!(
                "etcd's leader key names {holder}, the members name {leader}: one of them is stale"
            ),
        }),
        _ => {}
    }
    let unreachable = view
        .member(&holder)
        .is_some_and(|member| !member.is_reachable());
    if unreachable {
        view.warnings.push(Warning::LeaderUnreachable {
            member: holder.clone(),
            message: format!(
                "{holder} holds the leader key but its REST API does not answer: if its Patroni died, the key expires after ttl and a replica takes over; until then the cluster may take no writes"
            ),
        });
    }
}

/// Without a majority of etcd members following a leader, Patroni cannot renew the leader key:
/// the leader demotes itself after `ttl` and nothing can be elected — the loudest news.
fn quorum_warning(etcd: &EtcdView) -> Option<Warning> {
    let (led, total) = etcd.quorum();
    // Nobody answered pgha: it knows nothing of etcd's quorum (`etcd_unreachable` says so).
    let answered = etcd.endpoints.iter().any(Result::is_ok);
    if total == 0 || led > total / 2 || !answered {
        return None;
    }
    let down: Vec<String> = etcd
        .endpoints
        .iter()
        .filter_map(|status| match status {
            Ok(status) if status.leader.is_some() => None,
            Ok(status) => Some(format!("{} (no leader)", status.endpoint)),
            Err(error) => Some(error.clone()),
        })
        .collect();
    Some(Warning::EtcdNoQuorum {
        message: format!(
            "etcd has no quorum ({led} of the {total} endpoints pgha was given follow a leader): Patroni cannot keep the leader key, so the leader demotes itself after ttl and no failover can happen. Down: {}",
            down.join("; ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::testing::target;
    use crate::observe::{MemberObservation, Severity, merge_answers};
    use crate::patroni::PatroniError;

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.as_bytes().to_vec(),
            create_revision: 2,
            mod_revision: 2,
            lease: 0,
        }
    }

    /// The keys of a Patroni 4.1.5 lab cluster, as etcd 3.4 held them.
    fn recorded() -> Vec<KeyValue> {
        vec![
            kv(
                "/service/demo/config",
                r#"{"ttl":20,"loop_wait":2,"pause":false}"#,
            ),
            kv("/service/demo/initialize", "7714954392945161950"),
            kv("/service/demo/leader", "node1"),
            kv(
                "/service/demo/members/node1",
                r#"{"conn_url":"postgres://127.0.0.31:5432/postgres","api_url":"http://127.0.0.31:8008/patroni","state":"running","role":"primary","version":"4.1.5","xlog_location":385876760,"timeline":11}"#,
            ),
            kv(
                "/service/demo/members/node2",
                r#"{"conn_url":"postgres://127.0.0.32:5432/postgres","api_url":"http://127.0.0.32:8008/patroni","state":"running","role":"replica","version":"4.1.5","xlog_location":385876000,"replay_lsn":385876000,"receive_lsn":385876760,"replication_state":"streaming","timeline":11}"#,
            ),
            kv(
                "/service/demo/members/node3",
                r#"{"conn_url":"postgres://127.0.0.33:5432/postgres","api_url":"http://127.0.0.33:8008/patroni","state":"running","role":"replica","version":"3.3.11","xlog_location":385876760,"timeline":11}"#,
            ),
        ]
    }

    #[allow(clippy::unnecessary_wraps)] // a status as `EtcdView::endpoints` holds it
    fn status(endpoint: &str, leader: Option<&str>) -> Result<EndpointStatus, String> {
        Ok(EndpointStatus {
            endpoint: endpoint.into(),
            version: "3.4.23".into(),
            leader: leader.map(Into::into),
            errors: Vec::new(),
        })
    }

    fn etcd(keys: Vec<KeyValue>, endpoints: Vec<Result<EndpointStatus, String>>) -> EtcdView {
        EtcdView {
            endpoint: "http://127.0.0.30:2379".into(),
            prefix: "/service/demo/".into(),
            keys: Ok(keys),
            endpoints,
        }
    }

    fn healthy_endpoints() -> Vec<Result<EndpointStatus, String>> {
        vec![status("http://127.0.0.30:2379", Some("8e9e05c52164694d"))]
    }

    /// Every Patroni stopped or unreachable: the members' APIs refuse the connection.
    fn nobody_answers(names: &[&str]) -> Vec<MemberObservation> {
        target(names)
            .members
            .into_iter()
            .map(|member| {
                let refused = || PatroniError::Connect {
                    url: member.api_url.clone(),
                    reason: "Connection refused".into(),
                };
                MemberObservation {
                    status: Err(refused()),
                    topology: Err(refused()),
                    target: member,
                }
            })
            .collect()
    }

    #[test]
    fn the_keys_describe_the_cluster_as_cluster_would() {
        let topology = etcd(recorded(), healthy_endpoints()).topology().unwrap();
        let leader = topology.leader().unwrap();
        assert_eq!(leader.name, "node1");
        assert_eq!(leader.api_url.as_deref(), Some("http://127.0.0.31:8008"));
        assert_eq!(leader.host.as_deref(), Some("127.0.0.31"));
        assert_eq!(leader.port, Some(5432));
        let node2 = topology.member("node2").unwrap();
        assert_eq!(node2.role, ClusterRole::Replica);
        assert_eq!(node2.state, MemberState::Streaming, "4.x says it");
        assert_eq!(node2.lag, Some(Lag::Bytes(760)));
        assert_eq!(node2.timeline, Some(11));
        // 3.x keys carry no replication state: `running`, as `/cluster` shows it.
        assert_eq!(
            topology.member("node3").unwrap().state,
            MemberState::Running
        );
        assert!(!topology.paused);
    }

    #[test]
    fn with_every_patroni_stopped_the_view_stands_on_the_keys() {
        let names = ["node1", "node2", "node3"];
        let etcd = etcd(recorded(), healthy_endpoints());
        let mut view = merge_answers(&target(&names), nobody_answers(&names), etcd.topology());
        check(&mut view, &etcd);
        assert_eq!(view.leader.as_deref(), Some("node1"));
        assert_eq!(
            view.topology_from.as_deref(),
            Some(crate::observe::DCS_KEYS)
        );
        assert!(view.members.iter().all(|member| member.dcs.is_some()));
        assert!(view.members.iter().all(|member| !member.is_reachable()));
        let critical: Vec<&Warning> = view
            .warnings
            .iter()
            .filter(|warning| warning.severity() == Severity::Critical)
            .collect();
        assert!(
            critical.iter().any(|warning| matches!(
                warning,
                Warning::LeaderUnreachable { member, .. } if member == "node1"
            )),
            "{critical:?}"
        );
    }

    #[test]
    fn a_quorum_loss_is_critical_and_names_the_members_down() {
        let two_down = vec![
            status("http://127.0.0.30:2379", Some("8e9e05c52164694d")),
            Err("http://127.0.0.29:2379/v3/maintenance/status: etcd did not answer".into()),
            Err("http://127.0.0.28:2379/v3/maintenance/status: etcd did not answer".into()),
        ];
        let warning = quorum_warning(&etcd(recorded(), two_down)).unwrap();
        assert_eq!(warning.severity(), Severity::Critical);
        assert!(
            warning.message().contains("1 of the 3"),
            "{}",
            warning.message()
        );
        assert!(warning.message().contains("127.0.0.29"));
        let one_down = vec![
            status("http://127.0.0.30:2379", Some("8e9e05c52164694d")),
            status("http://127.0.0.29:2379", Some("8e9e05c52164694d")),
            Err("http://127.0.0.28:2379: etcd did not answer".into()),
        ];
        assert!(quorum_warning(&etcd(recorded(), one_down)).is_none());
        let leaderless = vec![
            status("http://127.0.0.30:2379", None),
            status("http://127.0.0.29:2379", None),
            status("http://127.0.0.28:2379", None),
        ];
        assert!(quorum_warning(&etcd(recorded(), leaderless)).is_some());
        // pgha reaching no endpoint knows nothing of the quorum.
        let unreached = vec![Err(
            "http://127.0.0.30:2379: etcd did not answer".to_string()
        )];
        assert!(quorum_warning(&etcd(recorded(), unreached)).is_none());
    }

    #[test]
    fn a_leader_key_the_members_do_not_name_is_a_disagreement() {
        let names = ["node1", "node2", "node3"];
        let mut keys = recorded();
        keys.retain(|kv| kv.key != "/service/demo/leader");
        keys.push(kv("/service/demo/leader", "node2"));
        let from_keys = etcd(recorded(), healthy_endpoints()).topology();
        let mut view = merge_answers(&target(&names), nobody_answers(&names), from_keys);
        check(&mut view, &etcd(keys, healthy_endpoints()));
        assert!(
            view.warnings
                .iter()
                .any(|warning| matches!(warning, Warning::LeaderDisagreement { .. })),
            "{:?}",
            view.warnings
        );
    }
}
