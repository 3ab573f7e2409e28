//! When is the lab healthy: one leader running, every started member streaming from it with
//! little lag; for the standby cluster, a standby leader and every other member replicating.
//! The lab asks through pgha's own inventory, client and observation, like any environment.

use std::time::{Duration, Instant};

use super::LabError;
use super::daemons::member_daemon;
use super::files;
use super::layout::{EtcdMember, LabCluster, LabMember, LabState, Layout};
use super::process::{self, Daemon, RunAs};
use crate::consul::ConsulClient;
use crate::inventory::{self, ClusterTarget, Selector};
use crate::observe::{self, ClusterView};
use crate::patroni::{ClusterRole, MemberState, PatroniClient, PostgresRole};
use crate::plan::Check;

/// The lab's `maximum_lag_on_failover`: a replica further behind does not count as healthy.
pub(super) const HEALTHY_LAG_BYTES: u64 = 1024 * 1024;

/// One of the lab's clusters as pgha's own inventory names it: the lab is a client of pgha like
/// any environment.
pub(super) async fn lab_target(layout: &Layout, cluster: &str) -> Result<ClusterTarget, LabError> {
    let selector = Selector {
        config: Some(layout.inventory()),
        environment: Some(inventory::LAB_ENVIRONMENT.into()),
        cluster: Some(cluster.into()),
        ..Selector::default()
    };
    inventory::resolve(&selector)
        .await
        .map_err(|error| LabError::Cluster(error.to_string()))
}

/// What `lab up` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Goal {
    /// The primary cluster: one leader running, every started member streaming from it.
    PrimaryHealthy,
    /// The standby cluster: a standby leader runs.
    StandbyLeaderRuns,
    /// The standby cluster: a standby leader runs and every other started member replicates.
    StandbyHealthy,
}

impl Goal {
    fn cluster(self) -> LabCluster {
        match self {
            Goal::PrimaryHealthy => LabCluster::Primary,
            Goal::StandbyLeaderRuns | Goal::StandbyHealthy => LabCluster::Standby,
        }
    }

    /// With `must_route`, on Consul, every member must also be registered and passing (Patroni
    /// registers services unless a rehearsal mirrors a cluster whose Patroni does not).
    fn reached(self, view: &ClusterView, must_route: bool) -> bool {
        let routed = !must_route || consul_routes_everyone(view);
        match self {
            Goal::PrimaryHealthy => is_healthy(view) && routed,
            Goal::StandbyLeaderRuns => standby_leader_runs(view),
            Goal::StandbyHealthy => is_standby_healthy(view) && routed,
        }
    }
}

/// Polls until the goal is reached; fails early with a member's log when its Patroni dies, and
/// with every unhealthy member's log at the deadline.
pub(super) async fn wait_until_healthy(
    layout: &Layout,
    state: &LabState,
    run_as: RunAs,
    goal: Goal,
    wait: Duration,
) -> Result<ClusterView, LabError> {
    let cluster = goal.cluster();
    let mut target = lab_target(layout, cluster.scope(&state.spec)).await?;
    let running: Vec<LabMember> = state
        .spec
        .members_of(cluster)
        .into_iter()
        .filter(|member| {
            member_daemon(layout, state, member, run_as)
                .running_pid()
                .is_some()
        })
        .collect();
    target.members.retain(|member| {
        running
            .iter()
            .any(|lab_member| lab_member.name == member.name)
    });
    let client =
        PatroniClient::new(&target.rest).map_err(|error| LabError::Cluster(error.to_string()))?;
    let consul = target
        .consul
        .as_ref()
        .map(ConsulClient::new)
        .transpose()
        .map_err(|error| LabError::Cluster(error.to_string()))?;
    let started = Instant::now();
    let mut last_summary = String::new();
    let mut reinitialized = std::collections::BTreeSet::new();
    loop {
        let observation = observe::observe(
            &target,
            &client,
            observe::DcsClients {
                consul: consul.as_ref(),
                etcd: None,
            },
        )
        .await;
        let summary = match &observation {
            Ok(view) => summarize(view),
            Err(crate::observe::ObserveError::NoMemberAnswered { .. }) => {
                "waiting for the REST APIs to answer".into()
            }
            Err(error) => error.to_string(),
        };
        if summary != last_summary {
            eprintln!(
                "lab: [{:>4.1}s] {}",
                started.elapsed().as_secs_f64(),
                crate::ui::printable(&summary)
            );
            last_summary.clone_from(&summary);
        }
        if let Ok(view) = observation {
            if goal.reached(&view, !state.spec.mirror.no_consul_services) {
                return Ok(view);
            }
            if cluster == LabCluster::Standby {
                refuse_a_writable_standby(&view)?;
            }
            let hopeless = Hopeless {
                layout,
                state,
                run_as,
            };
            hopeless
                .reinitialize(&client, &view, &running, &mut reinitialized)
                .await;
        }
        if let Some(dead) = running.iter().find(|member| {
            member_daemon(layout, state, member, run_as)
                .running_pid()
                .is_none()
        }) {
            return Err(LabError::StartFailed {
                component: format!("Patroni of {}", dead.name),
                log_tail: member_daemon(layout, state, dead, run_as).log_tail(25),
            });
        }
        if started.elapsed() >= wait {
            return Err(LabError::NotHealthy {
                waited: wait,
                summary,
                log_tails: log_tails(layout, state, &running, run_as),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Patroni's own words for a data directory it will not rebuild by itself: files but no
/// database ("consider doing reinitialize"), or a database whose files went missing under it,
/// so that PostgreSQL cannot start and Patroni retries forever ("failed to start postgres").
const NEEDS_REINITIALIZE: [&str; 2] = ["consider doing reinitialize", "failed to start postgres"];

/// Whether the end of a member's Patroni log says it waits for someone to reinitialize it.
pub fn waits_for_reinitialize(log_tail: &str) -> bool {
    NEEDS_REINITIALIZE
        .iter()
        .any(|words| log_tail.contains(words))
}

/// Replicas Patroni will not start by itself. A drill that deletes a running member's data can
/// leave files behind (PostgreSQL still writing, Patroni writing its configuration back before
/// it sees the directory empty), and Patroni then waits forever. `lab up` brings the lab back
/// to health: such a replica is reinitialized from the leader, once, as the log advises.
struct Hopeless<'a> {
    layout: &'a Layout,
    state: &'a LabState,
    run_as: RunAs,
}

impl Hopeless<'_> {
    async fn reinitialize(
        &self,
        client: &PatroniClient,
        view: &ClusterView,
        running: &[LabMember],
        done: &mut std::collections::BTreeSet<String>,
    ) {
        if view.leader.is_none() {
            return;
        }
        for member in running {
            let Some(seen) = view.member(&member.name) else {
                continue;
            };
            let stopped = !seen.is_leader()
                && matches!(
                    seen.state(),
                    Some(MemberState::Stopped | MemberState::StartFailed)
                );
            if !stopped || done.contains(&member.name) {
                continue;
            }
            let log = member_daemon(self.layout, self.state, member, self.run_as).log_tail(5);
            if !waits_for_reinitialize(&log) {
                continue;
            }
            eprintln!(
                "lab: {}'s data directory holds no usable database and Patroni will not rebuild it by itself: reinitializing it from the leader",
                member.name
            );
            let request = crate::patroni::ReinitializeRequest {
                force: true,
                from_leader: None,
            };
            if let Err(error) = client.reinitialize(&seen.api_url, &request).await {
                eprintln!("lab: reinitializing {} failed: {error}", member.name);
            }
            done.insert(member.name.clone());
        }
    }
}

/// The end of each member's Patroni log, for a lab that did not become healthy.
fn log_tails(layout: &Layout, state: &LabState, members: &[LabMember], run_as: RunAs) -> String {
    members
        .iter()
        .map(|member| {
            format!(
                "--- {} ({}):\n{}",
                member.name,
                layout.member(&member.name).join("patroni.log").display(),
                member_daemon(layout, state, member, run_as).log_tail(12)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub(super) fn summarize(view: &ClusterView) -> String {
    view.members
        .iter()
        .map(|member| {
            let role = member
                .role()
                .map_or_else(|| "-".to_string(), |role| role.to_string());
            let state = member
                .state()
                .map_or_else(|| "unreachable".to_string(), |state| state.to_string());
            let consul = view
                .consul
                .as_ref()
                .map(|consul| match consul.instance(&view.scope, &member.name) {
                    Some(instance) => format!(
                        " (consul {} {})",
                        instance.tags.join(","),
                        instance.status().as_str()
                    ),
                    None => " (consul -)".to_string(),
                })
                .unwrap_or_default();
            format!("{} {role} {state}{consul}", member.name)
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

/// One leader running and listing a walsender for every replica; every other member streaming
/// with little lag — by the same checks the runbooks use — and the DCS caught up with it (right
/// after a rebuild a member streams while its DCS entry still says `creating replica`).
pub(super) fn is_healthy(view: &ClusterView) -> bool {
    let leader_serves_everyone = view
        .leader
        .as_deref()
        .and_then(|leader| view.member(leader))
        .and_then(|leader| leader.status.as_ref().ok())
        .is_some_and(|status| status.replication.len() + 1 >= view.members.len());
    let replicas_ready = view
        .members
        .iter()
        .filter(|member| !member.is_leader())
        .all(|member| {
            let checks = [
                Check::Streaming {
                    member: member.name.clone(),
                },
                Check::LagAtMost {
                    member: member.name.clone(),
                    bytes: HEALTHY_LAG_BYTES,
                },
            ];
            checks.iter().all(|check| check.evaluate(view).passed)
                && member.dcs.as_ref().is_some_and(|entry| {
                    matches!(entry.state, MemberState::Running | MemberState::Streaming)
                })
        });
    Check::HealthyLeader.evaluate(view).passed && leader_serves_everyone && replicas_ready
}

/// The standby cluster's leader holds the leader key, runs, and is a standby leader.
fn standby_leader_runs(view: &ClusterView) -> bool {
    let is_standby_leader = view
        .leader
        .as_deref()
        .and_then(|leader| view.member(leader))
        .and_then(observe::MemberView::role)
        == Some(ClusterRole::StandbyLeader);
    Check::HealthyLeader.evaluate(view).passed && is_standby_leader
}

/// A standby leader runs; every other member replicates — streaming from it, or replaying the
/// archive by itself (`in archive recovery`: the standby leader holds only what was archived,
/// so its replicas switch between both) — and the DCS says so too.
fn is_standby_healthy(view: &ClusterView) -> bool {
    let replicating = [MemberState::Streaming, MemberState::InArchiveRecovery];
    let replicas_ready = view
        .members
        .iter()
        .filter(|member| !member.is_leader())
        .all(|member| {
            member
                .state()
                .is_some_and(|state| replicating.contains(&state))
                && member.dcs.as_ref().is_some_and(|entry| {
                    entry.state == MemberState::Running || replicating.contains(&entry.state)
                })
        });
    standby_leader_runs(view) && replicas_ready
}

/// A standby cluster's member running as a primary takes writes the primary cluster never
/// sees (a restored `patroni.dynamic.json` without `standby_cluster` does that): stop waiting.
fn refuse_a_writable_standby(view: &ClusterView) -> Result<(), LabError> {
    let writable = view.members.iter().find(|member| {
        member
            .status
            .as_ref()
            .is_ok_and(|status| status.role == PostgresRole::Primary)
    });
    match writable {
        Some(member) => Err(LabError::Invalid(format!(
            "{} of the standby cluster runs as a writable primary: it must only follow the archive (see its patroni.log)",
            member.name
        ))),
        None => Ok(()),
    }
}

/// On Consul, every member registered under its role and passing: what clients resolve.
fn consul_routes_everyone(view: &ClusterView) -> bool {
    if view.consul.is_none() {
        return true;
    }
    view.members.iter().all(|member| {
        let tag = match member.role() {
            Some(ClusterRole::StandbyLeader) => "standby-leader",
            Some(role) if role.is_leader() => "primary",
            _ => "replica",
        };
        Check::ConsulPassing {
            member: member.name.clone(),
            tag: tag.into(),
        }
        .evaluate(view)
        .passed
    })
}

/// Waits until a freshly started member's REST API answers, failing with its log if it dies.
pub(super) async fn wait_for_api(
    layout: &Layout,
    daemon: &Daemon,
    pid: u32,
    name: &str,
    cluster: &str,
) -> Result<(), LabError> {
    let target = lab_target(layout, cluster).await?;
    let url = target
        .member(name)
        .map(|member| member.api_url.clone())
        .ok_or_else(|| LabError::Invalid(format!("{name} is not in the lab inventory")))?;
    let client =
        PatroniClient::new(&target.rest).map_err(|error| LabError::Cluster(error.to_string()))?;
    let deadline = Instant::now() + Duration::from_mins(1);
    loop {
        if client.status(&url).await.is_ok() {
            return Ok(());
        }
        if !process::is_alive(pid, &daemon.identity) || Instant::now() >= deadline {
            return Err(LabError::StartFailed {
                component: format!("Patroni of {name}"),
                log_tail: daemon.log_tail(25),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How many of the lab's etcd members answer `/health` with `{"health":"true"}`. etcd 3.4 says
/// true only while the cluster has a leader and a quorum read succeeds.
pub(super) async fn etcd_healthy_members(members: &[EtcdMember]) -> Result<usize, LabError> {
    let client = crate::web::client_builder()
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(3))
        .build()
        .map_err(|error| LabError::Cluster(error.to_string()))?;
    let answers = futures::future::join_all(members.iter().map(|member| {
        let url = format!(
            "http://{}:{}/health",
            member.address,
            files::ETCD_CLIENT_PORT
        );
        let client = &client;
        async move {
            let Ok(response) = client.get(&url).send().await else {
                return false;
            };
            response
                .json::<serde_json::Value>()
                .await
                .is_ok_and(|body| body["health"] == "true")
        }
    }))
    .await;
    Ok(answers.into_iter().filter(|healthy| *healthy).count())
}

/// Waits (at most `wait`) until a majority of the lab's etcd members is healthy: the cluster
/// has a leader and Patroni can use it. Fails with every member's log tail.
pub(super) async fn wait_for_etcd_leader(
    etcd: &[(EtcdMember, Daemon)],
    wait: Duration,
) -> Result<Duration, LabError> {
    let members: Vec<EtcdMember> = etcd.iter().map(|(member, _)| member.clone()).collect();
    let majority = members.len() / 2 + 1;
    let started = Instant::now();
    loop {
        if etcd_healthy_members(&members).await? >= majority {
            return Ok(started.elapsed());
        }
        if started.elapsed() >= wait {
            return Err(LabError::StartFailed {
                component: format!(
                    "etcd (no leader on a majority of its {} members within {})",
                    members.len(),
                    humantime::format_duration(wait)
                ),
                log_tail: etcd
                    .iter()
                    .map(|(_, daemon)| {
                        format!(
                            "--- {} ({}):\n{}",
                            daemon.name,
                            daemon.log_file.display(),
                            daemon.log_tail(8)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
