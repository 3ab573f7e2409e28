//! The lab's standby cluster `geo` (`lab up --standby-cluster`): a second Patroni cluster, in
//! the same DCS, following the primary cluster from its pgBackRest WAL archive only, as a Geo
//! secondary does. Once the primary is healthy: a backup (once), then `geo1` alone — Patroni
//! restores it from the backup and it becomes the standby leader — then the other members,
//! restored the same way, replaying from the archive.

use std::time::{Duration, Instant};

use super::LabError;
use super::daemons::member_daemon;
use super::health::{Goal, wait_until_healthy};
use super::layout::{LabMember, LabState, Layout, standby_member_name};
use super::pgbackrest;
use super::process::RunAs;
use crate::observe::ClusterView;

/// Brings the standby cluster up behind a healthy primary cluster whose leader is `leader`;
/// adds the members it started to `started`. Waits at most `wait` in all.
pub(super) async fn up(
    layout: &Layout,
    state: &LabState,
    run_as: RunAs,
    leader: &str,
    wait: Duration,
    started: &mut Vec<String>,
) -> Result<ClusterView, LabError> {
    let deadline = Instant::now() + wait;
    pgbackrest::ensure_backup(layout, &state.spec, leader, run_as)?;
    let stopped: Vec<LabMember> = state
        .spec
        .standby_cluster_members()
        .into_iter()
        .filter(|member| {
            member_daemon(layout, state, member, run_as)
                .running_pid()
                .is_none()
        })
        .collect();
    // The first member alone first: started together, any member could win the race to
    // bootstrap the cluster, and the others can only be built once a standby leader exists.
    let (first, others) = match stopped.split_first() {
        Some((first, others)) if first.name == standby_member_name(0) => (Some(first), others),
        _ => (None, stopped.as_slice()),
    };
    if let Some(first) = first {
        let since = Instant::now();
        start(layout, state, run_as, first, started)?;
        let view = wait_until_healthy(
            layout,
            state,
            run_as,
            Goal::StandbyLeaderRuns,
            remaining(deadline),
        )
        .await?;
        eprintln!(
            "lab: {} has a standby leader, {} ({:.1}s after {} started)",
            super::STANDBY_SCOPE,
            view.leader.as_deref().unwrap_or("?"),
            since.elapsed().as_secs_f64(),
            first.name
        );
    }
    for member in others {
        start(layout, state, run_as, member, started)?;
    }
    wait_until_healthy(
        layout,
        state,
        run_as,
        Goal::StandbyHealthy,
        remaining(deadline),
    )
    .await
}

fn start(
    layout: &Layout,
    state: &LabState,
    run_as: RunAs,
    member: &LabMember,
    started: &mut Vec<String>,
) -> Result<(), LabError> {
    eprintln!(
        "lab: starting {} (Patroni {}, standby cluster {}) on {}",
        member.name,
        state.version_of(&member.name),
        super::STANDBY_SCOPE,
        member.address
    );
    member_daemon(layout, state, member, run_as).start()?;
    started.push(member.name.clone());
    Ok(())
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}
