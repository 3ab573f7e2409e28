//! `pgha rolling-upgrade --to VERSION`: Patroni upgraded member by member (seed 002, with the
//! operating notes of seed 004). Maintenance mode on, verified on every member; each replica in
//! turn: its Patroni stopped (PostgreSQL keeps running: paused, Patroni leaves it alone), moved to
//! the release, started, and verified — `/patroni` reports the release, PostgreSQL did not restart,
//! the member streams within `--max-lag`; maintenance mode off; a switchover to an upgraded
//! replica; the old leader, now a replica, upgraded the same way without a pause (a replica's
//! PostgreSQL restart, which takes no writes away); finally every member on the release and
//! exactly one new timeline. Aborted, refused or failed while paused, the run resumes maintenance
//! mode on the way out.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::steps::{
    DEFAULT_MAX_LAG_BYTES, Host, RestartOf, Switch, restart_steps, assume_identity, candidate_ready, checkpoint_step,
    choose_candidate, cluster_api, command_step, consul_routes_leader, frame, listed, maintenance_step,
    rejoin_step, service_control, postmaster_started, switchover_step, with_verification,
};
use super::{Example, ExampleLab, PlanError, Probe, Runbook};
use crate::inventory::ClusterTarget;
use crate::observe::{ClusterView, MemberView};
use crate::patroni::Version;
use crate::plan::{
    Action, Check, Compensation, Gate, Idempotency, ManualAction, Plan, Progress, RemoteAction,
    SqlAction, SqlStatement, Step, Wait, Window, cluster_timeline,
};
use crate::remote::{ServiceAction, ServiceControl, Upgrade};

/// How long one replica's swap takes, for the pause estimate: Patroni stops in a second or two
/// and a new release answers within one `loop_wait` of starting (lab: 5–10 s; a real host
/// installing a package, longer).
const SWAP_ESTIMATE: Duration = Duration::from_secs(30);
/// A maintenance window longer than this is refused unless the operator says otherwise.
const DEFAULT_MAX_PAUSE: Duration = Duration::from_mins(5);
/// A member back on the new release and streaming again.
const DEFAULT_TIMEOUT: Duration = Duration::from_mins(5);
const SWITCHOVER_TIMEOUT: Duration = Duration::from_secs(90);
/// A transaction open longer on the leader refuses the switchover (seed 004: a switchover waits
/// for, or cuts off, what is in flight).
const LONGEST_TRANSACTION: Duration = Duration::from_secs(15);

/// `pgha rolling-upgrade`.
pub struct RollingUpgrade;

// The release to reach, and the bounds of the window without automatic failover.
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
pub struct Params {
    /// The release every member ends on: Patroni's (4.1.5), or PostgreSQL's with
    /// --restart-postgres (15.10)
    #[arg(long, value_name = "VERSION", value_parser = crate::flags::version)]
    pub to: Version,
    /// The new leader [default: the sync standby, else the replica with the lowest lag]
    #[arg(long, value_name = "NAME", value_parser = crate::flags::name)]
    pub candidate: Option<String>,
    /// Refuse to start when the replicas' swaps would keep the cluster paused longer [default: 5m]
    #[arg(long, value_name = "DURATION", value_parser = crate::flags::duration)]
    #[serde(with = "crate::duration::optional_text")]
    pub max_pause: Option<Duration>,
    /// A replica lagging more counts as not caught up
    #[arg(long, value_name = "BYTES", default_value = "1MiB", value_parser = crate::flags::bytes)]
    pub max_lag: u64,
    /// Deadline for each member to answer on the new release and stream [default: 5m]
    #[arg(long, value_name = "DURATION", value_parser = crate::flags::duration)]
    #[serde(with = "crate::duration::optional_text")]
    pub timeout: Option<Duration>,
    /// Run CHECKPOINT on the leader before the switchover, so its shutdown checkpoint is short
    #[arg(long)]
    pub checkpoint: bool,
    /// A PostgreSQL minor update instead, its packages already installed: --to is PostgreSQL's
    /// release (15.10); replicas restarted one by one, a switchover, the old leader restarted
    /// by its demotion; each verified by the release PostgreSQL reports
    #[arg(long)]
    #[serde(default)]
    pub restart_postgres: bool,
    /// Free space every member's data-directory filesystem needs before anything changes
    /// (packages, WAL kept while members restart) [default: not checked]
    #[arg(long, value_name = "BYTES", value_parser = crate::flags::bytes)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub need_disk: Option<u64>,
    /// Also start replicas whose Patroni does not answer, on the release (after a crash, or a
    /// failover part-way through an upgrade) [default: refuse]
    #[arg(long)]
    #[serde(default)]
    pub start_stopped: bool,
}

impl Runbook for RollingUpgrade {
    const NAME: &'static str = "rolling-upgrade";
    const ABOUT: &'static str = "Upgrade Patroni member by member: replicas paused, a switchover, then the old leader";
    type Params = Params;

    fn deadline(params: &mut Params) -> Option<&mut Option<Duration>> {
        Some(&mut params.timeout)
    }

    /// A transaction open on the leader longer than the switchover can wait for refuses the
    /// run before anything is paused (re-checked just before the switchover).
    async fn measure(
        params: Params,
        _target: &ClusterTarget,
        view: &ClusterView,
        probe: &impl Probe,
    ) -> Result<Params, PlanError> {
        let Some(leader) = view.leader.as_deref().and_then(|leader| view.member(leader)) else {
            return Ok(params);
        };
        if let Some(age) = probe.oldest_transaction(&leader.host).await.transpose()?.flatten()
            && age > LONGEST_TRANSACTION
        {
            return Err(crate::postgres::SqlError::LongTransaction {
                host: leader.host.clone(),
                age: Duration::from_secs(age.as_secs()),
                limit: LONGEST_TRANSACTION,
            }
            .into());
        }
        Ok(params)
    }

    fn plan(target: &ClusterTarget, view: &ClusterView, params: &Params) -> Result<Plan, PlanError> {
        plan(target, view, params)
    }

    /// The run itself may have stopped a member's Patroni (pgha killed mid-swap), or a
    /// failover may have taken the old leader's: the new plan starts those on the release.
    fn replanning(params: Params) -> Params {
        Params {
            start_stopped: true,
            ..params
        }
    }

    fn examples() -> Vec<Example<Params>> {
        let params = Params {
            to: Version {
                major: 4,
                minor: 1,
                patch: 5,
            },
            candidate: None,
            max_pause: None,
            max_lag: DEFAULT_MAX_LAG_BYTES,
            timeout: None,
            checkpoint: true,
            restart_postgres: false,
            need_disk: None,
            start_stopped: false,
        };
        vec![
            Example {
                file: "rolling-upgrade",
                params: params.clone(),
                lab: ExampleLab::LabOnOldPatroni,
            },
            Example {
                file: "rolling-upgrade-kubernetes",
                params: params.clone(),
                lab: ExampleLab::KubernetesOnOldPatroni,
            },
            Example {
                file: "rolling-upgrade-postgres",
                params: Params {
                    to: Version::new(15, 19, 0),
                    restart_postgres: true,
                    ..params
                },
                lab: ExampleLab::Lab,
            },
        ]
    }
}

/// What the run moves every member to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Release {
    /// Patroni's release: each member's Patroni swapped.
    Patroni(String),
    /// PostgreSQL's minor release, installed already: each member's PostgreSQL restarted.
    Postgres(String),
}

impl Release {
    fn of(params: &Params) -> Result<Release, PlanError> {
        let to = params.to;
        if !params.restart_postgres {
            return Ok(Release::Patroni(to.to_string()));
        }
        // PostgreSQL 10 and later number releases MAJOR.MINOR.
        if to.major < 10 || to.patch != 0 {
            return Err(PlanError::Refused(format!(
                "--to {to} is not a PostgreSQL release: with --restart-postgres give MAJOR.MINOR (e.g. 15.10)"
            )));
        }
        Ok(Release::Postgres(format!("{}.{}", to.major, to.minor)))
    }

    /// Done for this member: it reports the release.
    fn check(&self, member: &str) -> Check {
        match self {
            Release::Patroni(version) => Check::PatroniVersion {
                member: member.into(),
                version: version.clone(),
            },
            Release::Postgres(version) => Check::PostgresVersion {
                member: member.into(),
                version: version.clone(),
            },
        }
    }

    fn runs_on(&self, member: &MemberView) -> bool {
        let (running, wanted) = match self {
            Release::Patroni(version) => (
                member.patroni_version().map(|running| running.to_string()),
                version,
            ),
            Release::Postgres(version) => (running_postgres(member), version),
        };
        running.as_ref() == Some(wanted)
    }
}

impl std::fmt::Display for Release {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Release::Patroni(version) => write!(f, "Patroni {version}"),
            Release::Postgres(version) => write!(f, "PostgreSQL {version}"),
        }
    }
}

fn running_postgres(member: &MemberView) -> Option<String> {
    member
        .status
        .as_ref()
        .ok()
        .and_then(|status| status.server_version)
        .map(crate::patroni::format_server_version)
}

/// What the plan is made of: the cluster's members by role, and the environment's tools.
struct Upgrading<'a> {
    target: &'a ClusterTarget,
    view: &'a ClusterView,
    control: Option<&'a ServiceControl>,
    release: Release,
    to: String,
    max_lag: u64,
    max_pause: Duration,
    timeout: Duration,
}

fn plan(target: &ClusterTarget, view: &ClusterView, params: &Params) -> Result<Plan, PlanError> {
    let release = Release::of(params)?;
    let leader = view.leader.clone().ok_or_else(|| {
        PlanError::Refused("no member holds the leader key: fix that before upgrading".into())
    })?;
    let members: Vec<&MemberView> = view
        .members
        .iter()
        .filter(|member| member.dcs.is_some() || member.in_inventory)
        .map(|member| listed(target, view, &member.name))
        .collect::<Result<_, _>>()?;
    let (stopped, running): (Vec<&MemberView>, Vec<&MemberView>) =
        members.iter().copied().partition(|member| is_stopped(member));
    refuse_stopped(&stopped, &leader, params, &release)?;
    let replicas: Vec<&MemberView> = running
        .iter()
        .copied()
        .filter(|member| member.name != leader)
        .collect();
    let behind: Vec<&MemberView> = replicas
        .iter()
        .copied()
        .filter(|member| !release.runs_on(member))
        .collect();
    let leader_behind = view
        .member(&leader)
        .is_none_or(|member| !release.runs_on(member));
    if behind.is_empty() && !leader_behind && stopped.is_empty() {
        return Err(PlanError::Refused(format!(
            "every member already runs {release}"
        )));
    }
    if let Release::Postgres(version) = &release {
        refuse_major_change(&running, version)?;
    }
    // A new leader only where the leader itself must move to the release.
    let candidate = if leader_behind {
        Some(pick_candidate(view, &leader, &replicas, params)?)
    } else {
        None
    };
    let estimate = pause_estimate(&release, &behind, params)?;
    let upgrading = Upgrading {
        target,
        view,
        control: match release {
            Release::Patroni(_) => Some(service_control(target, "stop and start Patroni")?),
            Release::Postgres(_) => None,
        },
        release: release.clone(),
        to: params.to.to_string(),
        max_lag: params.max_lag,
        max_pause: params.max_pause.unwrap_or(DEFAULT_MAX_PAUSE),
        timeout: params.timeout.unwrap_or(DEFAULT_TIMEOUT),
    };
    let mut plan = frame(
        target,
        view,
        format!("Upgrade cluster {} to {release}, member by member", target.cluster),
        summary(&upgrading, &leader, candidate.as_deref(), (&behind, &stopped), estimate),
    );
    plan.prechecks = prechecks(&running, &stopped, &leader, params.max_lag);
    assume_identity(&mut plan, view);
    // Before anything changes: a recent backup, where the inventory requires one, and the
    // space the operator says the upgrade needs on every member.
    if let Some(policy) = &target.backup {
        plan.steps
            .push(Host::new(target, view, &leader)?.newest_backup_within(policy)?);
    }
    if let Some(need) = params.need_disk {
        for member in &members {
            plan.steps
                .push(Host::new(target, view, &member.name)?.free_space_at_least(need)?);
        }
    }
    let timeline = cluster_timeline(view).unwrap_or(0);
    if !behind.is_empty() {
        match release {
            Release::Patroni(_) => upgrading.paused_swaps(&mut plan, &behind)?,
            Release::Postgres(_) => upgrading.restarts(&mut plan, &leader, &behind),
        }
    }
    // Unpaused: a stopped member's PostgreSQL may still run as a primary (its Patroni crashed
    // while leading), and only a managed cluster demotes and rewinds it.
    for member in &stopped {
        plan.steps.extend(upgrading.start_stopped(&member.name)?);
    }
    // A leader already on the release (a run resumed with --replan after a failover, say)
    // needs no switchover: the run ends with it still leading, on the same timeline.
    let ending = if let Some(candidate) = &candidate {
        upgrading.switch(&mut plan, &leader, candidate, timeline, params.checkpoint)?;
        match release {
            Release::Patroni(_) => plan
                .steps
                .extend(upgrading.swap(&leader, None, "the old leader, now a replica")?),
            Release::Postgres(_) => plan.steps.push(upgrading.demoted_step(&leader)),
        }
        // A standby cluster's new leader is not promoted: the same timeline.
        (candidate.as_str(), timeline + u32::from(!target.standby))
    } else {
        (leader.as_str(), timeline)
    };
    plan.steps.push(finished_step(&members, ending, &release));
    plan.rollback = Some(rollback(&release, &members));
    Ok(plan)
}

/// The replicas' swaps keep the cluster paused (a PostgreSQL update pauses nothing): refused
/// when that would last longer than `--max-pause`.
fn pause_estimate(
    release: &Release,
    behind: &[&MemberView],
    params: &Params,
) -> Result<Duration, PlanError> {
    if matches!(release, Release::Postgres(_)) {
        return Ok(Duration::ZERO);
    }
    let max_pause = params.max_pause.unwrap_or(DEFAULT_MAX_PAUSE);
    let estimate = SWAP_ESTIMATE * u32::try_from(behind.len()).unwrap_or(u32::MAX);
    if estimate > max_pause {
        return Err(PlanError::Refused(format!(
            "swapping {} replicas keeps the cluster paused about {}, over --max-pause {}: raise --max-pause or upgrade in smaller steps",
            behind.len(),
            humantime::format_duration(estimate),
            humantime::format_duration(max_pause)
        )));
    }
    Ok(estimate)
}

/// A restart picks up a minor release; a major upgrade is `pg_upgrade`, not this runbook.
fn refuse_major_change(members: &[&MemberView], version: &str) -> Result<(), PlanError> {
    let major = |release: &str| release.split('.').next().map(str::to_string);
    for member in members {
        if let Some(running) = running_postgres(member)
            && major(&running) != major(version)
        {
            return Err(PlanError::Refused(format!(
                "{} runs PostgreSQL {running}: a restart moves to another minor release of the same major only, not to {version}",
                member.name
            )));
        }
    }
    Ok(())
}

fn rollback(release: &Release, members: &[&MemberView]) -> String {
    match release {
        Release::Patroni(_) => format!(
            "Each member can go back the same way: `pgha rolling-upgrade --to <the old release>` (the members' current releases are recorded in this plan's pre-checks). Releases now: {}.",
            releases(members)
        ),
        Release::Postgres(_) => "Reinstall the previous minor release's packages and run `pgha rolling-upgrade --restart-postgres --to <it>` (the releases running now are recorded in this plan's pre-checks).".into(),
    }
}

impl Upgrading<'_> {
    /// Pause, each replica behind swapped with PostgreSQL left running, resume — and, if the run
    /// stops in between, maintenance mode resumed on the way out.
    fn paused_swaps(&self, plan: &mut Plan, behind: &[&MemberView]) -> Result<(), PlanError> {
        let api = cluster_api(self.view)?;
        let pause = maintenance_step(
            api,
            true,
            true,
            Gate::Confirm {
                question: format!(
                    "Pause {} and upgrade {} to Patroni {}? No automatic failover until it is resumed.",
                    self.target.cluster,
                    names(behind),
                    self.to
                ),
            },
        );
        let resume = maintenance_step(api, false, true, Gate::None);
        plan.compensations.push(Compensation {
            after: pause.id.clone(),
            step: Step {
                id: "undo-pause".into(),
                title: "Turn maintenance mode off again".into(),
                ..resume.clone()
            },
            on_failure: true,
        });
        // The estimate let the plan start; the window holds the run to it.
        plan.windows.push(Window {
            from: pause.id.clone(),
            to: resume.id.clone(),
            limit: self.max_pause,
            what: "the cluster has been paused".into(),
        });
        plan.steps.push(pause);
        for member in behind {
            // PostgreSQL's start time, where the member reports it: it must not change.
            let started = postmaster_started(member);
            plan.steps
                .extend(self.swap(&member.name, started, "paused")?);
        }
        plan.steps.push(resume);
        Ok(())
    }

    /// Each replica behind restarted by Patroni in turn, back on the release and streaming
    /// before the next. Nothing is paused: a replica's restart fails nothing over.
    fn restarts(&self, plan: &mut Plan, leader: &str, behind: &[&MemberView]) {
        for member in behind {
            plan.steps.extend(restart_steps(
                member,
                &RestartOf {
                    leader,
                    pending_only: false,
                    max_lag: self.max_lag,
                    timeout: self.timeout,
                    also: vec![self.release.check(&member.name)],
                },
            ));
        }
    }

    /// The old leader after the switchover: its demotion restarted PostgreSQL, on the binaries
    /// installed, so it only has to report the release and stream.
    fn demoted_step(&self, name: &str) -> Step {
        let mut until = vec![self.release.check(name)];
        until.extend(Check::caught_up(name, self.max_lag));
        Step::wait(
            format!("restarted-{name}"),
            format!("Wait until {name} (restarted by its demotion) runs {} and streams", self.release),
            Wait::for_member(until, self.timeout, Duration::from_secs(1), name),
        )
    }

    /// Stop Patroni on `name`, move it to the release, start it, and verify. `kept` is
    /// PostgreSQL's start time when it must survive the swap (paused).
    fn swap(&self, name: &str, kept: Option<String>, how: &str) -> Result<Vec<Step>, PlanError> {
        let control = self
            .control
            .ok_or_else(|| PlanError::Refused("a PostgreSQL update swaps no Patroni".into()))?;
        let upgrade = control
            .upgrade(name, &self.to)
            .map_err(|error| PlanError::Refused(error.to_string()))?;
        let mut steps = Vec::new();
        if let Upgrade::Commands(commands) = &upgrade {
            let stop = command_step(self.target, control, ServiceAction::Stop, name)?;
            let mut stop_checks = vec![Check::NotLeader { member: name.into() }];
            if kept.is_some() {
                stop_checks.push(Check::PauseRecorded { paused: true });
            }
            steps.push(Step {
                gate: Gate::None,
                title: format!("Stop Patroni on {name} ({how})"),
                ..with_verification(
                    stop,
                    stop_checks,
                    vec![Check::Unreachable { member: name.into() }],
                    Duration::from_mins(1),
                )
            });
            let host = self.target.remote_host(name)?;
            for (index, (transport, command)) in commands.iter().enumerate() {
                steps.push(Step {
                    id: format!("upgrade-{name}-{}", index + 1),
                    title: if index + 1 == commands.len() {
                        format!("Start Patroni {} on {name}", self.to)
                    } else {
                        format!("Install Patroni {} on {name}", self.to)
                    },
                    action: Action::Remote(RemoteAction {
                        member: name.into(),
                        host: host.into(),
                        transport: *transport,
                        command: command.clone(),
                        timeout: Duration::from_mins(10),
                    }),
                    gate: Gate::None,
                    prechecks: vec![Check::Unreachable { member: name.into() }],
                    verify: None,
                    // Started already (a resumed run): its Patroni answers on the release.
                    idempotency: Idempotency::CheckStateFirst {
                        done_when: vec![
                            Check::Reachable { member: name.into() },
                            Check::PatroniVersion {
                                member: name.into(),
                                version: self.to.clone(),
                            },
                        ],
                    },
                });
            }
        }
        let kept = match upgrade {
            Upgrade::ByHand(instructions) => {
                steps.push(by_hand_step(name, &self.to, instructions));
                // A pod comes back with a new PostgreSQL too: only its release is checked.
                None
            }
            Upgrade::Commands(_) => kept,
        };
        steps.push(self.upgraded_step(name, kept));
        Ok(steps)
    }

    /// A member whose Patroni does not answer: started on the release, then verified like a
    /// swapped one (its PostgreSQL may restart: it may have to rejoin as a replica).
    fn start_stopped(&self, name: &str) -> Result<Vec<Step>, PlanError> {
        let mut steps = self.swap(name, None, "not running")?;
        // Nothing to stop: the swap begins at the start.
        steps.retain(|step| step.id != format!("stop-patroni-{name}"));
        Ok(steps)
    }

    /// Done when the member answers on the release, streams within the lag, and — paused —
    /// PostgreSQL still runs since before.
    fn upgraded_step(&self, name: &str, kept: Option<String>) -> Step {
        let mut until = vec![
            Check::Reachable { member: name.into() },
            self.release.check(name),
        ];
        until.extend(Check::caught_up(name, self.max_lag));
        let fail_if = kept
            .into_iter()
            .map(|at| Check::RestartedSince {
                member: name.into(),
                before: at,
            })
            .collect();
        Step::wait(
            format!("upgraded-{name}"),
            format!("Wait until {name} runs Patroni {} and streams", self.to),
            Wait {
                until,
                fail_if,
                timeout: self.timeout,
                poll: Duration::from_secs(1),
                progress: Progress::MemberState { member: name.into() },
                stuck: Vec::new(),
            },
        )
    }

    /// Management resumed, the leader handed to an upgraded replica and the old one rejoined.
    fn switch(
        &self,
        plan: &mut Plan,
        leader: &str,
        candidate: &str,
        timeline: u32,
        checkpoint: bool,
    ) -> Result<(), PlanError> {
        let leader_host = self
            .view
            .member(leader)
            .map_or_else(String::new, |member| member.host.clone());
        if self.target.postgres.is_some() {
            plan.steps.push(no_long_transaction_step(leader, &leader_host));
        }
        if checkpoint {
            plan.steps.push(checkpoint_step(leader, &leader_host));
        }
        let switch = Switch {
            leader,
            candidate,
            at: None,
            timeline,
            timeout: SWITCHOVER_TIMEOUT,
            cluster: &self.target.cluster,
            standby: self.target.standby,
        };
        let mut ready = candidate_ready(candidate, self.max_lag);
        ready.push(self.release.check(candidate));
        ready.push(Check::Paused { paused: false });
        plan.steps
            .push(switchover_step(&switch, cluster_api(self.view)?, ready));
        plan.steps.push(rejoin_step(leader, candidate));
        plan.steps.extend(consul_routes_leader(
            self.view,
            candidate,
            self.target.standby,
            None,
        ));
        Ok(())
    }
}

/// The new leader: the operator's (a replica, which the plan upgrades first), else the sync
/// standby or the lowest lag.
fn pick_candidate(
    view: &ClusterView,
    leader: &str,
    replicas: &[&MemberView],
    params: &Params,
) -> Result<String, PlanError> {
    match &params.candidate {
        Some(name) if replicas.iter().any(|member| member.name == *name) => Ok(name.clone()),
        Some(name) => Err(PlanError::Refused(format!(
            "--candidate {name}: only a replica this run upgrades before the switchover can take over ({})",
            names(replicas)
        ))),
        None => choose_candidate(view, leader, params.max_lag),
    }
}

/// The member's Patroni does not answer at all (an answer with an error is not "stopped").
fn is_stopped(member: &MemberView) -> bool {
    member
        .status
        .as_ref()
        .is_err_and(|failure| failure.unreachable)
}

/// Members whose Patroni does not answer are refused unless the operator (or a `--replan`)
/// asks for them to be started on the release; the leader's never is.
fn refuse_stopped(
    stopped: &[&MemberView],
    leader: &str,
    params: &Params,
    release: &Release,
) -> Result<(), PlanError> {
    if stopped.iter().any(|member| member.name == leader) {
        return Err(PlanError::Refused(format!(
            "the leader {leader}'s Patroni does not answer: wait for a failover or start it before upgrading"
        )));
    }
    if stopped.is_empty() || (params.start_stopped && matches!(release, Release::Patroni(_))) {
        return Ok(());
    }
    let how = match release {
        Release::Patroni(_) => format!(
            "start it first, or pass --start-stopped to start it on {release} as part of the upgrade"
        ),
        Release::Postgres(_) => "start it first".into(),
    };
    Err(PlanError::Refused(format!(
        "{}'s Patroni does not answer: {how}",
        names(stopped)
    )))
}

/// A healthy, agreeing cluster whose replicas stream, and every member answering but those
/// the run starts.
fn prechecks(
    members: &[&MemberView],
    stopped: &[&MemberView],
    leader: &str,
    max_lag: u64,
) -> Vec<Check> {
    let mut checks = vec![
        Check::HealthyLeader,
        Check::LeaderIs {
            member: leader.into(),
        },
        Check::TopologyAgreed,
        Check::Paused { paused: false },
    ];
    for member in members {
        checks.push(Check::Reachable {
            member: member.name.clone(),
        });
        if member.name != leader {
            checks.extend(Check::caught_up(&member.name, max_lag));
        }
        if let Some(running) = member.patroni_version() {
            checks.push(Check::PatroniVersion {
                member: member.name.clone(),
                version: running.to_string(),
            });
        }
        if let Some(running) = running_postgres(member) {
            checks.push(Check::PostgresVersion {
                member: member.name.clone(),
                version: running,
            });
        }
    }
    checks.extend(stopped.iter().map(|member| Check::Unreachable {
        member: member.name.clone(),
    }));
    checks
}

/// Re-checked just before the switchover: no transaction on the leader older than the limit.
fn no_long_transaction_step(leader: &str, host: &str) -> Step {
    Step {
        id: "no-long-transaction".into(),
        title: format!(
            "Check that no transaction on {leader} is open longer than {}",
            humantime::format_duration(LONGEST_TRANSACTION)
        ),
        action: Action::Sql(SqlAction {
            member: leader.into(),
            host: host.into(),
            statement: SqlStatement::NoTransactionOlderThan {
                seconds: LONGEST_TRANSACTION.as_secs(),
            },
        }),
        gate: Gate::None,
        prechecks: vec![Check::LeaderIs {
            member: leader.into(),
        }],
        verify: None,
        idempotency: Idempotency::SafeToRepeat,
    }
}

fn by_hand_step(name: &str, to: &str, instructions: Vec<String>) -> Step {
    Step {
        id: format!("upgrade-{name}"),
        title: format!("Move {name} to Patroni {to}"),
        action: Action::Manual(ManualAction { instructions }),
        gate: Gate::ByHand {
            question: format!("Does {name}'s pod run Patroni {to} now?"),
            name: format!("upgrade-{name}"),
            skip_flag: None,
        },
        prechecks: vec![Check::NotLeader { member: name.into() }],
        verify: None,
        idempotency: Idempotency::SafeToRepeat,
    }
}

/// Every member on the release, `leader` leading on `timeline`: one more than before when the
/// run switched over a primary cluster, the same when it did not need to or the cluster is a
/// standby one.
fn finished_step(
    members: &[&MemberView],
    (leader, timeline): (&str, u32),
    release: &Release,
) -> Step {
    let mut until = vec![
        Check::HealthyLeader,
        Check::LeaderIs {
            member: leader.into(),
        },
        Check::TimelineIs { timeline },
    ];
    until.extend(members.iter().map(|member| release.check(&member.name)));
    Step::wait(
        "upgrade-done".into(),
        format!("Check that every member runs {release}, {leader} leading on timeline {timeline}"),
        Wait {
            until,
            fail_if: Vec::new(),
            timeout: Duration::from_mins(1),
            poll: Duration::from_secs(1),
            progress: Progress::Checks,
            stuck: Vec::new(),
        },
    )
}

fn summary(
    upgrading: &Upgrading<'_>,
    leader: &str,
    candidate: Option<&str>,
    (behind, stopped): (&[&MemberView], &[&MemberView]),
    estimate: Duration,
) -> String {
    let (view, release) = (upgrading.view, &upgrading.release);
    let stopped = if stopped.is_empty() {
        String::new()
    } else {
        format!(
            " {}'s Patroni does not answer: it is started on {release} with the cluster managed, so that Patroni can demote and rewind a PostgreSQL left running as a primary.",
            names(stopped)
        )
    };
    let (how, old_leader) = match release {
        Release::Patroni(_) => ("upgraded as a replica", "its PostgreSQL restarts as a replica's"),
        Release::Postgres(_) => ("left to its demotion", "the demotion restarts its PostgreSQL on the installed binaries"),
    };
    let (writes, timeline) = if upgrading.target.standby {
        (
            "a standby cluster takes no writes",
            "on the same timeline (a standby leader is not promoted)",
        )
    } else {
        ("writes stop for a few seconds", "and exactly one new timeline")
    };
    let ending = match candidate {
        Some(candidate) => format!(
            "{leader} hands the leader role to {candidate} ({writes}), and is then {how}: {old_leader}, which takes no writes away. The run ends with every member on {release} {timeline}."
        ),
        None => format!(
            "{leader} already runs {release}: no switchover. The run ends with every member on {release}, {leader} leading on the same timeline."
        ),
    };
    let replicas = if behind.is_empty() {
        "no replica".to_string()
    } else {
        names(behind)
    };
    let body = match release {
        Release::Patroni(_) => format!(
            "Maintenance mode goes on (no automatic failover, about {} for {replicas}), each replica's Patroni is swapped while its PostgreSQL keeps running, then maintenance mode goes off.",
            humantime::format_duration(estimate)
        ),
        Release::Postgres(_) => format!(
            "Its packages are installed already. Patroni restarts PostgreSQL on {replicas}, one at a time, each streaming on the release before the next; nothing is paused."
        ),
    };
    format!(
        "Upgrades cluster {} to {release}. {body}{stopped} {ending}",
        view.cluster
    )
}

fn names(members: &[&MemberView]) -> String {
    members
        .iter()
        .map(|member| member.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn releases(members: &[&MemberView]) -> String {
    members
        .iter()
        .map(|member| {
            format!(
                "{} {}",
                member.name,
                member
                    .patroni_version()
                    .map_or_else(|| "unknown".into(), |version| version.to_string())
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runbooks::tests::{lab, lab_on_old_patroni};

    fn params() -> Params {
        RollingUpgrade::examples().remove(0).params
    }

    #[test]
    fn the_replicas_are_swapped_paused_then_the_leader_after_a_switchover() {
        let (target, view) = lab_on_old_patroni();
        let plan = RollingUpgrade::plan(&target, &view, &params()).unwrap();
        let ids: Vec<&str> = plan.steps.iter().map(|step| step.id.as_str()).collect();
        let at = |id: &str| ids.iter().position(|each| *each == id).unwrap();
        assert!(at("pause") < at("stop-patroni-node2"));
        assert!(at("upgraded-node3") < at("resume"));
        assert!(at("resume") < at("switchover"));
        assert!(at("switchover") < at("stop-patroni-node1"), "the leader last");
        assert_eq!(ids.last(), Some(&"upgrade-done"));
        // Paused, a replica's PostgreSQL must survive its Patroni swap.
        let upgraded = plan.step("upgraded-node2").unwrap();
        let Action::Wait(wait) = &upgraded.action else {
            panic!("a wait")
        };
        assert!(matches!(wait.fail_if[..], [Check::RestartedSince { .. }]));
        // Never left paused: the resume is a compensation, also on failure.
        let [undo] = &plan.compensations[..] else {
            panic!("one compensation")
        };
        assert_eq!(undo.after, "pause");
        assert!(undo.on_failure);
        // And never paused longer than --max-pause at run time either.
        let [window] = &plan.windows[..] else {
            panic!("one window")
        };
        assert_eq!((window.from.as_str(), window.to.as_str()), ("pause", "resume"));
        assert_eq!(window.limit, DEFAULT_MAX_PAUSE);
    }

    #[test]
    fn a_candidate_the_run_does_not_upgrade_first_is_refused() {
        let (target, view) = lab_on_old_patroni();
        let leader = Params {
            candidate: Some("node1".into()),
            ..params()
        };
        let error = RollingUpgrade::plan(&target, &view, &leader).unwrap_err();
        assert!(error.to_string().contains("only a replica"), "{error}");
        assert_eq!(error.exit(), crate::exit::Exit::PrecheckRefused);
    }

    #[test]
    fn a_pause_longer_than_allowed_is_refused_before_anything() {
        let (target, view) = lab_on_old_patroni();
        let short = Params {
            max_pause: Some(Duration::from_secs(20)),
            ..params()
        };
        let error = RollingUpgrade::plan(&target, &view, &short).unwrap_err();
        assert!(error.to_string().contains("--max-pause"), "{error}");
    }

    /// Resumed with --replan after a failover to an upgraded replica: the replicas left are
    /// swapped, and the leader, already on the release, is not switched over again.
    #[test]
    fn a_leader_already_on_the_release_is_not_switched_over() {
        let (target, mut view) = lab_on_old_patroni();
        for member in &mut view.members {
            if member.name == "node1"
                && let Ok(status) = &mut member.status
            {
                status.patroni_version = Some("4.1.5".parse().unwrap());
            }
        }
        let plan = RollingUpgrade::plan(&target, &view, &params()).unwrap();
        let ids: Vec<&str> = plan.steps.iter().map(|step| step.id.as_str()).collect();
        assert!(ids.contains(&"upgraded-node2") && ids.contains(&"upgraded-node3"));
        assert!(!ids.contains(&"switchover"), "{ids:?}");
        assert!(!ids.contains(&"stop-patroni-node1"), "{ids:?}");
        let Action::Wait(done) = &plan.step("upgrade-done").unwrap().action else {
            panic!("a wait")
        };
        assert!(done.until.contains(&Check::LeaderIs {
            member: "node1".into()
        }));
        assert!(done.until.contains(&Check::TimelineIs { timeline: 1 }));
    }

    /// node3's Patroni killed (its key may still be in the DCS).
    fn with_node3_stopped(view: &mut ClusterView) {
        for member in &mut view.members {
            if member.name == "node3" {
                member.status = Err(crate::observe::ApiFailure {
                    unreachable: true,
                    message: "Connection refused".into(),
                });
            }
        }
    }

    #[test]
    fn a_stopped_member_is_refused_unless_the_run_may_start_it() {
        let (target, mut view) = lab_on_old_patroni();
        with_node3_stopped(&mut view);
        let error = RollingUpgrade::plan(&target, &view, &params()).unwrap_err();
        assert!(
            error.to_string().contains("node3's Patroni does not answer")
                && error.to_string().contains("--start-stopped"),
            "{error}"
        );
        // A --replan may: the run itself can have stopped it.
        let replanned = RollingUpgrade::replanning(params());
        let plan = RollingUpgrade::plan(&target, &view, &replanned).unwrap();
        let ids: Vec<&str> = plan.steps.iter().map(|step| step.id.as_str()).collect();
        let at = |id: &str| ids.iter().position(|each| *each == id).unwrap();
        assert!(!ids.contains(&"stop-patroni-node3"), "nothing to stop: {ids:?}");
        assert!(at("resume") < at("upgrade-node3-1"), "started unpaused: {ids:?}");
        assert!(at("upgraded-node3") < at("switchover"), "{ids:?}");
        assert!(
            plan.prechecks.contains(&Check::Unreachable {
                member: "node3".into()
            })
        );
        assert!(!plan.prechecks.contains(&Check::Reachable {
            member: "node3".into()
        }));
        // Its PostgreSQL may restart (a crashed leader's is demoted).
        let Action::Wait(wait) = &plan.step("upgraded-node3").unwrap().action else {
            panic!("a wait")
        };
        assert!(wait.fail_if.is_empty());
        assert!(plan.summary.contains("node3's Patroni does not answer"));
    }

    fn postgres(to: &str) -> Params {
        Params {
            to: to.parse().unwrap(),
            restart_postgres: true,
            ..params()
        }
    }

    /// A minor update: replicas restarted by Patroni (no pause, no Patroni swap), each on the
    /// release before the next; the old leader restarted by its demotion.
    #[test]
    fn a_postgres_minor_update_restarts_replicas_then_switches_over() {
        let (target, view) = lab();
        let plan = RollingUpgrade::plan(&target, &view, &postgres("15.19")).unwrap();
        let ids: Vec<&str> = plan.steps.iter().map(|step| step.id.as_str()).collect();
        assert!(!ids.contains(&"pause") && plan.compensations.is_empty(), "{ids:?}");
        assert!(!ids.iter().any(|id| id.starts_with("stop-patroni")), "{ids:?}");
        let at = |id: &str| ids.iter().position(|each| *each == id).unwrap();
        assert!(at("restart-node2") < at("wait-healthy-node2"));
        assert!(at("wait-healthy-node2") < at("restart-node3"));
        assert!(at("wait-healthy-node3") < at("switchover"));
        assert!(at("switchover") < at("restarted-node1"));
        let on_release = Check::PostgresVersion {
            member: "node2".into(),
            version: "15.19".into(),
        };
        let Action::Wait(healthy) = &plan.step("wait-healthy-node2").unwrap().action else {
            panic!("a wait")
        };
        assert!(healthy.until.contains(&on_release), "{:?}", healthy.until);
        assert!(plan.step("switchover").unwrap().prechecks.contains(&on_release));
        // The releases running now are recorded.
        assert!(plan.prechecks.contains(&Check::PostgresVersion {
            member: "node1".into(),
            version: "15.18".into(),
        }));
        assert!(plan.title.contains("PostgreSQL 15.19"), "{}", plan.title);
    }

    #[test]
    fn a_postgres_release_that_is_not_a_minor_update_is_refused() {
        let (target, view) = lab();
        for (to, says) in [
            ("16.1", "same major only"),
            ("15.2.1", "not a PostgreSQL release"),
            ("15.18", "already runs PostgreSQL 15.18"),
        ] {
            let error = RollingUpgrade::plan(&target, &view, &postgres(to)).unwrap_err();
            assert!(error.to_string().contains(says), "{to}: {error}");
        }
    }

    /// Where the inventory requires a recent backup (and the operator names the space needed),
    /// the checks come before anything changes.
    #[test]
    fn a_required_backup_and_the_disk_are_checked_before_the_pause() {
        let (mut target, view) = lab_on_old_patroni();
        target.backup = Some(crate::inventory::BackupPolicy {
            tool: crate::inventory::BackupTool::Pgbackrest {
                stanza: "demo".into(),
                config: None,
            },
            max_age: Duration::from_hours(26),
            refuse_when_older: true,
        });
        let with_disk = Params {
            need_disk: Some(1 << 30),
            ..params()
        };
        let plan = RollingUpgrade::plan(&target, &view, &with_disk).unwrap();
        let ids: Vec<&str> = plan.steps.iter().map(|step| step.id.as_str()).collect();
        assert_eq!(
            ids[..5],
            ["backup-age-node1", "disk-node1", "disk-node2", "disk-node3", "pause"],
            "{ids:?}"
        );
    }

    #[test]
    fn a_cluster_already_on_the_release_has_nothing_to_do() {
        let (target, view) = lab();
        let error = RollingUpgrade::plan(&target, &view, &params()).unwrap_err();
        assert!(
            error.to_string().contains("already runs Patroni 4.1.5"),
            "{error}"
        );
    }
}
