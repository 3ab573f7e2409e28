//! The normalised model against responses recorded from real clusters of every supported
//! Patroni release (tests/fixtures/patroni, captured by scripts/capture-fixtures.sh).

use super::fixtures::{cluster, history, recorded, status};
use super::model::WalPosition;
use super::{ClusterRole, Lag, MemberState, PostgresRole, Version};

const RELEASES: [&str; 4] = ["2.1.7", "3.0.4", "3.3.11", "4.1.5"];

#[test]
fn every_release_reports_its_leader_as_primary() {
    for release in RELEASES {
        let leader = status(&recorded(release, "patroni_leader"));
        assert_eq!(leader.role, PostgresRole::Primary, "{release}");
        assert!(leader.role.is_leader());
        assert_eq!(
            leader.patroni_version,
            Some(release.parse().unwrap()),
            "{release}"
        );
        assert_eq!(leader.state, MemberState::Running, "{release}");
        assert!(
            matches!(leader.wal, WalPosition::Primary { .. }),
            "{release}"
        );
        assert!(leader.system_identifier.is_some(), "{release}");
        assert_eq!(leader.scope.as_deref(), Some("demo"), "{release}");
        assert_eq!(
            leader
                .postgres_version()
                .as_deref()
                .map(|v| v.starts_with("15.")),
            Some(true)
        );
        assert!(
            !leader.replication.is_empty(),
            "{release}: the leader lists its walsenders"
        );
    }
}

#[test]
fn old_releases_say_master_new_ones_primary() {
    let raw = |release| recorded(release, "patroni_leader");
    assert!(raw("2.1.7").contains(r#""role": "master""#));
    assert!(raw("3.3.11").contains(r#""role": "master""#));
    assert!(raw("4.1.5").contains(r#""role": "primary""#));
}

#[test]
fn streaming_is_known_from_3_0_on_and_unknown_before() {
    let replica = |release| status(&recorded(release, "patroni_replica"));
    let old = replica("2.1.7");
    assert_eq!(old.replication_state, None);
    assert_eq!(old.effective_state(), MemberState::Running);
    assert!(!old.is_streaming());
    for release in ["3.0.4", "3.3.11", "4.1.5"] {
        let replica = replica(release);
        assert_eq!(
            replica.replication_state,
            Some(MemberState::Streaming),
            "{release}"
        );
        assert_eq!(
            replica.effective_state(),
            MemberState::Streaming,
            "{release}"
        );
        // /patroni's own state stays `running` even in 4.x: streaming is a separate field.
        assert_eq!(replica.state, MemberState::Running, "{release}");
    }
}

/// As the rehearsal recorded a restored member whose recovery cannot reach consistency: it
/// reports `in archive recovery` while `starting` — it is starting, not replicating.
#[test]
fn a_replica_still_starting_is_starting_whatever_its_replication_state() {
    let mut replica = status(&recorded("4.1.5", "patroni_replica"));
    replica.state = MemberState::Starting;
    replica.replication_state = Some(MemberState::InArchiveRecovery);
    assert_eq!(replica.effective_state(), MemberState::Starting);
    replica.state = MemberState::Running;
    assert_eq!(replica.effective_state(), MemberState::InArchiveRecovery);
}

#[test]
fn member_name_appears_in_status_from_3_3_on() {
    assert_eq!(status(&recorded("2.1.7", "patroni_leader")).name, None);
    assert_eq!(status(&recorded("3.0.4", "patroni_leader")).name, None);
    assert!(status(&recorded("3.3.11", "patroni_leader")).name.is_some());
    assert!(status(&recorded("4.1.5", "patroni_leader")).name.is_some());
}

#[test]
fn replicas_report_received_and_replayed_positions() {
    for release in RELEASES {
        let replica = status(&recorded(release, "patroni_replica"));
        let WalPosition::Replica {
            received, replayed, ..
        } = replica.wal
        else {
            panic!("{release}: replica without replica positions");
        };
        assert!(received.is_some() && replayed.is_some(), "{release}");
    }
}

#[test]
fn cluster_view_scope_lags_and_states_by_release() {
    for release in RELEASES {
        let topology = cluster(&recorded(release, "cluster_from_leader"));
        assert_eq!(topology.members.len(), 3, "{release}");
        let leader = topology.leader().expect("a leader");
        assert_eq!(leader.role, ClusterRole::Leader);
        assert!(
            leader
                .api_url
                .as_deref()
                .is_some_and(|url| !url.ends_with("/patroni"))
        );
        let version: Version = release.parse().unwrap();
        let replicas: Vec<_> = topology
            .members
            .iter()
            .filter(|member| !member.role.is_leader())
            .collect();
        for replica in replicas {
            assert!(
                matches!(replica.lag, Some(Lag::Bytes(_))),
                "{release}: all versions report `lag`"
            );
            assert_eq!(
                replica.effective_receive_lag(),
                replica.receive_lag.or(replica.lag)
            );
            if version >= Version::new(4, 1, 0) {
                assert!(matches!(replica.replay_lag, Some(Lag::Bytes(_))));
                assert!(replica.receive_lsn.is_some() && replica.replay_lsn.is_some());
            } else {
                assert_eq!(
                    replica.replay_lag, None,
                    "{release}: no replay lag before 4.1"
                );
                assert_eq!(replica.receive_lsn, None);
            }
            let expected = if version >= Version::new(3, 0, 4) {
                MemberState::Streaming
            } else {
                MemberState::Running
            };
            assert_eq!(replica.state, expected, "{release}");
        }
        let has_scope = version >= Version::new(3, 3, 0);
        assert_eq!(topology.scope.is_some(), has_scope, "{release}");
    }
}

#[test]
fn pause_shows_in_cluster_and_status_of_every_release() {
    for release in RELEASES {
        assert!(
            cluster(&recorded(release, "cluster_paused")).paused,
            "{release}"
        );
        assert!(
            !cluster(&recorded(release, "cluster_from_leader")).paused,
            "{release}"
        );
        assert!(
            status(&recorded(release, "patroni_paused")).paused,
            "{release}"
        );
    }
}

#[test]
fn history_records_the_switchover_of_every_release() {
    for release in RELEASES {
        let timelines = history(&recorded(release, "history"));
        assert_eq!(timelines.len(), 1, "{release}");
        assert_eq!(timelines[0].timeline, 1);
        assert!(timelines[0].lsn > 0);
        assert!(
            timelines[0].new_leader.is_some(),
            "{release}: new_leader recorded"
        );
    }
}

#[test]
fn history_rows_of_old_clusters_lack_the_last_columns() {
    let timelines = history(r#"[[1, 25165984, "no recovery target specified"], ["bad row"]]"#);
    assert_eq!(timelines.len(), 1);
    assert_eq!(timelines[0].timestamp, None);
    assert_eq!(timelines[0].new_leader, None);
}

#[test]
fn unknown_words_survive_instead_of_failing() {
    let member = cluster(
        r#"{"members": [{"name": "n1", "role": "quorum_standby", "state": "something new", "lag": "unknown",
            "receive_lsn": "unknown"}]}"#,
    );
    let entry = &member.members[0];
    assert_eq!(entry.role, ClusterRole::QuorumStandby);
    assert_eq!(entry.state, MemberState::Other("something new".into()));
    assert_eq!(entry.state.to_string(), "something new");
    assert_eq!(entry.lag, Some(Lag::Unknown));
    assert_eq!(entry.receive_lsn, None);
}

#[test]
fn pending_restart_and_tags_are_read() {
    let topology = cluster(
        r#"{"members": [{"name": "n1", "role": "replica", "state": "streaming", "pending_restart": true,
            "pending_restart_reason": {"max_connections": {"old_value": "50", "new_value": "60"}},
            "tags": {"nofailover": true}, "scheduled_restart": {"schedule": "2026-11-22T15:51:15+00:00"}}],
            "scheduled_switchover": {"at": "2026-11-22T15:51:15+00:00", "from": "n0", "to": "n1"}}"#,
    );
    let entry = &topology.members[0];
    assert!(entry.pending_restart);
    assert_eq!(
        entry.pending_restart_reason["max_connections"].new_value,
        Some("60".into())
    );
    assert_eq!(entry.tags["nofailover"], serde_json::json!(true));
    assert_eq!(
        entry.scheduled_restart.as_deref(),
        Some("2026-11-22T15:51:15+00:00")
    );
    assert_eq!(
        topology
            .scheduled_switchover
            .as_ref()
            .and_then(|s| s.to.as_deref()),
        Some("n1")
    );
}

mod client {
    //! The client against a local HTTP double: what it sends, and how it reads answers.

    use std::time::Duration;

    use wiremock::matchers::{body_json, header, header_exists, method, path};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};

    use crate::patroni::{
        BasicAuth, HealthCheck, PatroniClient, PatroniError, ReinitializeRequest, RestSettings,
        SwitchoverRequest,
    };
    use crate::secret::Secret;

    fn client(timeout: Duration) -> PatroniClient {
        PatroniClient::new(&RestSettings {
            auth: Some(BasicAuth {
                username: "patroni".into(),
                password: Secret::new("pw"),
            }),
            request_timeout: timeout,
            ..RestSettings::default()
        })
        .unwrap()
    }

    const BASIC_PATRONI_PW: &str = "Basic cGF0cm9uaTpwdw==";

    #[tokio::test]
    async fn reads_send_no_credentials_and_writes_do() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/cluster"))
            .respond_with(|request: &Request| {
                let has_auth = request.headers.contains_key("authorization");
                ResponseTemplate::new(if has_auth { 500 } else { 200 })
                    .set_body_json(serde_json::json!({"members": []}))
            })
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/switchover"))
            .and(header("authorization", BASIC_PATRONI_PW))
            .and(body_json(
                serde_json::json!({"leader": "node1", "candidate": "node2"}),
            ))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_string("Successfully switched over to \"node2\""),
            )
            .mount(&server)
            .await;
        let client = client(Duration::from_secs(2));
        assert!(
            client
                .cluster(&server.uri())
                .await
                .unwrap()
                .members
                .is_empty()
        );
        let answer = client
            .switchover(
                &server.uri(),
                &SwitchoverRequest {
                    leader: "node1".into(),
                    candidate: Some("node2".into()),
                    scheduled_at: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.message, "Successfully switched over to \"node2\"");
    }

    #[tokio::test]
    async fn the_credential_probe_reads_400_as_accepted_and_401_as_rejected() {
        for (status, accepted) in [(400, true), (401, false), (403, false)] {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .and(path("/switchover"))
                .and(body_json(serde_json::json!({})))
                .respond_with(ResponseTemplate::new(status).set_body_string("not authenticated"))
                .mount(&server)
                .await;
            let result = client(Duration::from_secs(2))
                .verify_credentials(&server.uri())
                .await;
            assert_eq!(result.is_ok(), accepted, "HTTP {status}");
            if status == 401 {
                let message = result.unwrap_err().to_string();
                assert!(
                    message.contains("credentials rejected (HTTP 401 \"not authenticated\")"),
                    "{message}"
                );
                assert!(!message.contains("pw"), "no secret in errors");
            }
        }
    }

    #[tokio::test]
    async fn health_endpoints_map_200_and_503() {
        let server = MockServer::start().await;
        Mock::given(path("/primary"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        Mock::given(path("/replica"))
            .respond_with(ResponseTemplate::new(503))
            .mount(&server)
            .await;
        Mock::given(path("/read-only"))
            .respond_with(ResponseTemplate::new(500))
            .mount(&server)
            .await;
        let client = client(Duration::from_secs(2));
        assert!(
            client
                .health(&server.uri(), HealthCheck::Primary)
                .await
                .unwrap()
        );
        assert!(
            !client
                .health(&server.uri(), HealthCheck::Replica)
                .await
                .unwrap()
        );
        assert!(matches!(
            client.health(&server.uri(), HealthCheck::ReadOnly).await,
            Err(PatroniError::Status { status: 500, .. })
        ));
    }

    #[tokio::test]
    async fn writes_without_a_body_send_content_length_zero() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/reload"))
            .and(header("content-length", "0"))
            .respond_with(ResponseTemplate::new(202).set_body_string("reload scheduled"))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/reinitialize"))
            .and(body_json(serde_json::json!({"force": false})))
            .and(header_exists("authorization"))
            .respond_with(ResponseTemplate::new(200).set_body_string("reinitialize started"))
            .mount(&server)
            .await;
        let client = client(Duration::from_secs(2));
        assert_eq!(client.reload(&server.uri()).await.unwrap().status, 202);
        let answer = client
            .reinitialize(&server.uri(), &ReinitializeRequest::default())
            .await
            .unwrap();
        assert!(answer.is_success());
    }

    #[tokio::test]
    async fn a_slow_member_times_out_within_the_request_timeout() {
        let server = MockServer::start().await;
        Mock::given(path("/patroni"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
            .mount(&server)
            .await;
        let started = std::time::Instant::now();
        let error = client(Duration::from_millis(300))
            .status(&server.uri())
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(error.is_unreachable());
        assert!(
            error
                .to_string()
                .ends_with("/patroni: no answer within 300ms"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable_with_the_os_reason() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let error = client(Duration::from_secs(2))
            .status(&format!("http://{address}"))
            .await
            .unwrap_err();
        assert!(error.is_unreachable());
        assert!(error.to_string().contains("Connection refused"), "{error}");
    }

    #[tokio::test]
    async fn https_to_a_plain_http_server_is_a_tls_error() {
        let server = MockServer::start().await;
        let url = server.uri().replace("http://", "https://");
        let error = client(Duration::from_secs(2))
            .status(&url)
            .await
            .unwrap_err();
        assert!(matches!(error, PatroniError::Tls { .. }), "{error:?}");
        assert_eq!(error.exit(), crate::exit::Exit::BadInput);
    }

    #[tokio::test]
    async fn a_non_json_answer_is_a_decode_error_naming_the_url() {
        let server = MockServer::start().await;
        Mock::given(path("/cluster"))
            .respond_with(ResponseTemplate::new(200).set_body_string("<html>proxy login</html>"))
            .mount(&server)
            .await;
        let error = client(Duration::from_secs(2))
            .cluster(&server.uri())
            .await
            .unwrap_err();
        assert!(
            error.to_string().starts_with(&format!(
                "{}/cluster: not the JSON Patroni sends",
                server.uri()
            )),
            "{error}"
        );
    }

    /// A 307/308 would have reqwest re-send the request, its body and its headers to the host
    /// the answer names: it is an error naming both URLs, and the other host hears nothing.
    #[tokio::test]
    async fn a_redirect_is_an_error_and_nothing_reaches_the_other_host() {
        let other = MockServer::start().await;
        let member = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/cluster"))
            .respond_with(
                ResponseTemplate::new(307)
                    .insert_header("Location", format!("{}/cluster", other.uri())),
            )
            .mount(&member)
            .await;
        Mock::given(method("POST"))
            .and(path("/switchover"))
            .respond_with(
                ResponseTemplate::new(308)
                    .insert_header("Location", format!("{}/switchover", other.uri())),
            )
            .mount(&member)
            .await;
        let client = client(Duration::from_secs(2));
        let error = client.cluster(&member.uri()).await.unwrap_err();
        assert!(
            error.to_string().starts_with(&format!(
                "{}/cluster answered HTTP 307 redirecting to {}/cluster: pgha does not follow redirects",
                member.uri(),
                other.uri()
            )),
            "{error}"
        );
        assert_eq!(error.exit(), crate::exit::Exit::BadInput);
        let request = SwitchoverRequest {
            leader: "node1".into(),
            candidate: None,
            scheduled_at: None,
        };
        let error = client
            .switchover(&member.uri(), &request)
            .await
            .unwrap_err();
        assert!(
            error.to_string().starts_with(&format!(
                "{}/switchover answered HTTP 308 redirecting to {}/switchover: pgha does not follow redirects",
                member.uri(),
                other.uri()
            )),
            "{error}"
        );
        assert!(
            other.received_requests().await.unwrap().is_empty(),
            "the other host received nothing"
        );
    }

    #[test]
    fn a_missing_ca_file_is_refused_before_any_request() {
        let mut settings = RestSettings::default();
        settings.tls.ca_file = Some("/nonexistent/ca.pem".into());
        let error = PatroniClient::new(&settings).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("/nonexistent/ca.pem: cannot read CA bundle"),
            "{error}"
        );
    }
}

/// Any answer shaped like Patroni's, and every recorded answer with one part replaced by
/// anything: parsed into the model or refused, never a panic, nor in what is derived from it.
mod fuzz {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::super::{ClusterTopology, MemberStatus, wire};
    use super::{RELEASES, recorded};
    use crate::fuzzing::{CASES, json_shaped, replaced_somewhere};

    const KEYS: &[&str] = &[
        "state",
        "role",
        "server_version",
        "xlog",
        "location",
        "received_location",
        "replayed_location",
        "replayed_timestamp",
        "paused",
        "timeline",
        "replication",
        "usename",
        "application_name",
        "client_addr",
        "sync_state",
        "sync_priority",
        "cluster_unlocked",
        "dcs_last_seen",
        "database_system_identifier",
        "patroni",
        "version",
        "scope",
        "name",
        "pending_restart",
        "pending_restart_reason",
        "old_value",
        "new_value",
        "scheduled_restart",
        "schedule",
        "postmaster_start_time",
        "tags",
        "nofailover",
        "replication_state",
        "members",
        "host",
        "port",
        "api_url",
        "lag",
        "receive_lag",
        "replay_lag",
        "lsn",
        "receive_lsn",
        "replay_lsn",
        "scheduled_switchover",
        "at",
        "from",
        "to",
        "pause",
        "sync_standby",
        "quorum_standby",
    ];

    fn parse(value: &Value) {
        if let Ok(wire) = serde_json::from_value::<wire::StatusWire>(value.clone()) {
            let status: MemberStatus = wire.into();
            let _ = (status.effective_state(), status.postgres_version());
        }
        if let Ok(wire) = serde_json::from_value::<wire::ClusterWire>(value.clone()) {
            let topology: ClusterTopology = wire.into();
            for member in &topology.members {
                let _ = (
                    member.effective_receive_lag(),
                    member.effective_replay_lag(),
                );
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(CASES))]

        #[test]
        fn any_status_or_cluster_answer_parses_or_is_refused(
            value in json_shaped(KEYS),
            release in proptest::sample::select(&RELEASES[..]),
            answer in proptest::sample::select(&["patroni_leader", "patroni_replica", "cluster_from_leader"][..]),
            choice in any::<usize>(),
            replacement in json_shaped(KEYS),
        ) {
            parse(&value);
            let real: Value = serde_json::from_str(&recorded(release, answer)).unwrap();
            parse(&replaced_somewhere(&real, choice, replacement));
        }
    }
}
