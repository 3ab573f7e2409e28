//! `pgha geo-resetup`: a standby cluster (a GitLab Geo secondary: Patroni's `standby_cluster`,
//! following the primary site from its WAL archive) rebuilt on every member from the primary
//! site's newest backup — seed 001, with the traps its rehearsal found closed. Before anything:
//! the target must be a standby cluster (the inventory's marker and a `standby_leader`), its
//! newest backup recent enough, every member reachable over SSH with room for the restore.
//! Then: Patroni stopped everywhere; the cluster's DCS keys deleted; the configuration files kept
//! beside each data directory; every data directory wiped; the first member started alone
//! (Patroni restores it and it becomes the standby leader) while the others are restored by the
//! backup tool; on those, the restored `patroni.dynamic.json` removed (started with it, a member
//! promotes itself), the kept files put back, Patroni started; finally one standby leader and
//! every member replicating. A member that ever runs as a writable primary fails the run at once.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::steps::{
    Groups, Host, consul_routing, delete_tree_of, followed_site_primary, frame,
    inactive_slots_step, listed, member_names, service_control, start_verified, stop_everywhere,
};
use super::{Example, ExampleLab, PlanError, Probe, Runbook, leader_database_size};
use crate::inventory::{BackupPolicy, ClusterTarget};
use crate::observe::{ClusterView, MemberView};
use crate::patroni::MemberState;
use crate::plan::{Check, Gate, Plan, Progress, Step, StuckWatch, Wait};
use crate::remote::ServiceControl;

/// A restore of a large database takes hours (the seeds speak of six).
const DEFAULT_TIMEOUT: Duration = Duration::from_hours(6);

/// Recovery from a backup reaches a consistent state in seconds to minutes; a member that stays
/// `starting` this long has its log read.
const DEFAULT_STUCK_AFTER: Duration = Duration::from_secs(30);

/// An inactive slot on the rebuilt standby leader holding more than this fails the run.
const DEFAULT_SLOT_RETENTION: u64 = 1 << 30;

/// `pgha geo-resetup`.
pub struct GeoResetup;

// Which member goes first, what to keep across the wipe, and how long a restore may take.
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
pub struct Params {
    /// The member started first: Patroni restores it and it becomes the standby leader
    /// [default: the first the inventory lists]
    #[arg(long, value_name = "NAME", value_parser = crate::flags::name)]
    pub first: Option<String>,
    /// A file to keep across the wipe, put back after the restore (absolute path; repeat)
    /// [default: the data directory's pg_hba.conf and pg_ident.conf]
    #[arg(long = "file", value_name = "PATH")]
    pub files: Vec<String>,
    /// Free space every member needs for the restore [default: the databases' size, measured
    /// on the standby leader]
    #[arg(long, value_name = "BYTES", value_parser = crate::flags::bytes)]
    pub need: Option<u64>,
    /// Deadline for the restore and recovery of the first member, and of the others [default: 6h]
    #[arg(long, value_name = "DURATION", value_parser = crate::flags::duration)]
    #[serde(with = "crate::duration::optional_text")]
    pub timeout: Option<Duration>,
    /// How long a member may stay `starting` before its PostgreSQL log (the inventory's
    /// `log_file`) is read; a recovery waiting at the same WAL position in two reads fails the
    /// run with the log's tail instead of at the deadline [default: 30s]
    #[arg(long, value_name = "DURATION", value_parser = crate::flags::duration)]
    #[serde(default, with = "crate::duration::optional_text")]
    pub stuck_after: Option<Duration>,
    /// The WAL position every member must replay past before the run ends [default: the start
    /// of the WAL segment the cluster the inventory says it `follows` last wrote into, read
    /// before planning: a standby following the archive has it once that segment is archived]
    #[arg(long, value_name = "LSN", value_parser = crate::flags::wal_position)]
    pub replay_past: Option<String>,
    /// The WAL an inactive replication slot on the standby leader may hold back when the run
    /// ends (slots nothing consumes fill its disk) [default: 1GiB]
    #[arg(long, value_name = "BYTES", value_parser = crate::flags::bytes)]
    pub slot_retention: Option<u64>,
    /// When it was asked for: names the directory the kept files go to (planners read no clock).
    #[arg(skip = crate::flags::request_label())]
    pub label: String,
}

impl Runbook for GeoResetup {
    const NAME: &'static str = "geo-resetup";
    const ABOUT: &'static str = "Rebuild every member of a standby (Geo) cluster from the primary site's newest backup";
    type Params = Params;

    fn deadline(params: &mut Params) -> Option<&mut Option<Duration>> {
        Some(&mut params.timeout)
    }

    /// The restore needs the room the databases take: measured on the standby leader.
    async fn measure(
        mut params: Params,
        target: &ClusterTarget,
        view: &ClusterView,
        probe: &impl Probe,
    ) -> Result<Params, PlanError> {
        if params.need.is_none() {
            params.need = leader_database_size(view, probe).await?;
        }
        if params.replay_past.is_none() {
            params.replay_past = primary_site_position(target, probe).await?;
        }
        Ok(params)
    }

    fn plan(target: &ClusterTarget, view: &ClusterView, params: &Params) -> Result<Plan, PlanError> {
        plan(target, view, params)
    }

    fn examples() -> Vec<Example<Params>> {
        vec![Example {
            file: "geo-resetup",
            params: Params {
                first: None,
                files: Vec::new(),
                need: Some(512 << 20),
                timeout: None,
                stuck_after: None,
                replay_past: Some("0/7000000".into()),
                slot_retention: None,
                label: "20261203-100000".into(),
            },
            lab: ExampleLab::StandbyLab,
        }]
    }
}

fn plan(target: &ClusterTarget, view: &ClusterView, params: &Params) -> Result<Plan, PlanError> {
    refuse_unless_standby(target)?;
    let policy = target.backup.as_ref().ok_or_else(|| {
        PlanError::Refused(format!(
            "environment {} names no `backup:` (tool, stanza, max_age): geo-resetup restores from the newest backup and checks its age first",
            target.environment
        ))
    })?;
    let members: Vec<&MemberView> = target
        .members
        .iter()
        .map(|member| listed(target, view, &member.name))
        .collect::<Result<_, _>>()?;
    let first = match &params.first {
        Some(name) => listed(target, view, name)?.name.clone(),
        None => members
            .first()
            .map(|member| member.name.clone())
            .ok_or_else(|| PlanError::Refused("the inventory lists no member".into()))?,
    };
    let rebuild = Rebuild {
        target,
        view,
        policy,
        params,
        control: service_control(target, "stop and start Patroni")?,
        hosts: members
            .iter()
            .map(|member| Host::new(target, view, &member.name))
            .collect::<Result<_, _>>()?,
        others: members
            .iter()
            .map(|member| member.name.clone())
            .filter(|name| *name != first)
            .collect(),
        timeout: params.timeout.unwrap_or(DEFAULT_TIMEOUT),
        first,
    };
    let mut plan = frame(
        target,
        view,
        format!("Rebuild standby cluster {} from the newest backup", target.cluster),
        summary(
            target,
            &rebuild.first,
            &rebuild.others,
            params.replay_past.as_deref(),
        ),
    );
    let leader = view.leader.clone().unwrap_or_default();
    plan.prechecks = vec![Check::StandbyLeader { member: leader }, Check::TopologyAgreed];
    plan.prechecks.extend(members.iter().map(|member| Check::Reachable {
        member: member.name.clone(),
    }));
    // No identity assumption: from the stop on, no member answers with one to check (the
    // rebuilt cluster is the primary site's database again; the run's lock names it).
    let mut groups = Groups::default();
    rebuild.check_first(&mut plan, &mut groups)?;
    rebuild.stop_and_forget(&mut plan, &mut groups, &members)?;
    rebuild.keep_and_wipe(&mut plan, &mut groups)?;
    rebuild.restore_and_start(&mut plan, &mut groups)?;
    plan.parallel = groups.into_parallel();
    plan.rollback = Some(format!(
        "none: the data directories are rebuilt from the backup. The configuration files each member had are kept beside its data directory, in {}.",
        rebuild.kept_dir()
    ));
    Ok(plan)
}

/// What the rebuild works with: the cluster, its backup policy, each member's host, and which
/// member starts first.
struct Rebuild<'a> {
    target: &'a ClusterTarget,
    view: &'a ClusterView,
    policy: &'a BackupPolicy,
    params: &'a Params,
    control: &'a ServiceControl,
    hosts: Vec<Host<'a>>,
    first: String,
    others: Vec<String>,
    timeout: Duration,
}

impl Rebuild<'_> {
    fn host(&self, name: &str) -> Result<&Host<'_>, PlanError> {
        self.hosts
            .iter()
            .find(|host| host.name() == name)
            .ok_or_else(|| PlanError::Refused(format!("{name} has no host in the inventory")))
    }

    /// Where each member's kept files go: beside its data directory.
    fn kept_dir(&self) -> String {
        format!("pgha-geo-resetup-{}", self.params.label)
    }

    fn kept(&self, host: &Host<'_>) -> Result<(Vec<String>, String), PlanError> {
        Ok((
            host.files_or_config(&self.params.files)?,
            host.beside_data_directory(&self.kept_dir())?,
        ))
    }

    /// What the first member's wait shows: its data directory filling against the databases'
    /// size, when that is known; its state otherwise.
    fn restore_progress(&self) -> Result<Progress, PlanError> {
        let Some(expected_bytes) = self.params.need else {
            return Ok(Progress::MemberState {
                member: self.first.clone(),
            });
        };
        Ok(Progress::DataDirectory {
            member: self.first.clone(),
            expected_bytes,
            read: self.host(&self.first)?.data_directory_size_read()?,
        })
    }

    /// The members' logs, read when one stays `starting` (where the inventory names them).
    fn stuck_watches(&self, members: &[String]) -> Result<Vec<StuckWatch>, PlanError> {
        let after = self.params.stuck_after.unwrap_or(DEFAULT_STUCK_AFTER);
        let mut watches = Vec::new();
        for name in members {
            watches.extend(self.host(name)?.stuck_watch(after)?);
        }
        Ok(watches)
    }

    /// Read-only, before anything, all at once: the backup's age, SSH to every member, room
    /// for the restore.
    fn check_first(&self, plan: &mut Plan, groups: &mut Groups) -> Result<(), PlanError> {
        let mut checks = vec![self.host(&self.first)?.newest_backup_within(self.policy)?];
        for host in &self.hosts {
            checks.push(host.reachable()?);
            if let Some(need) = self.params.need {
                checks.push(host.free_space_at_least(need)?);
            }
        }
        groups.add(plan, checks);
        Ok(())
    }

    /// Patroni stopped everywhere (one gate, the cluster's name), then the DCS keys deleted.
    fn stop_and_forget(
        &self,
        plan: &mut Plan,
        groups: &mut Groups,
        members: &[&MemberView],
    ) -> Result<(), PlanError> {
        let stops = stop_everywhere(
            self.target,
            self.control,
            members,
            Gate::TypeToConfirm {
                question: format!(
                    "Stop Patroni on every member of {} ({}), delete its DCS keys and wipe every data directory? It serves no reads until the rebuild ends.",
                    self.target.cluster,
                    member_names(members)
                ),
                expected: self.target.cluster.clone(),
            },
        )?;
        groups.add(plan, stops);
        plan.steps.push(delete_tree_of(self.target, self.view)?);
        Ok(())
    }

    /// The configuration files kept beside each data directory, then every data directory
    /// wiped (each wipe behind the cluster's name).
    fn keep_and_wipe(&self, plan: &mut Plan, groups: &mut Groups) -> Result<(), PlanError> {
        let mut keeps = Vec::new();
        let mut wipes = Vec::new();
        for host in &self.hosts {
            let (files, to) = self.kept(host)?;
            keeps.push(host.backup(&files, &to)?);
            wipes.push(Step {
                gate: Gate::TypeToConfirm {
                    question: format!(
                        "Wipe {}'s data directory (the rebuild of {})?",
                        host.name(),
                        self.target.cluster
                    ),
                    expected: self.target.cluster.clone(),
                },
                ..host.wipe_data_directory()?
            });
        }
        groups.add(plan, keeps);
        groups.add(plan, wipes);
        Ok(())
    }

    /// The first member started alone while the others are restored; once it leads, the
    /// others lose the restored `patroni.dynamic.json`, get their files back and start.
    fn restore_and_start(&self, plan: &mut Plan, groups: &mut Groups) -> Result<(), PlanError> {
        let mut first_and_restores = vec![start_verified(self.target, self.control, &self.first)?];
        for name in &self.others {
            first_and_restores.push(self.host(name)?.restore_from_backup(&self.policy.tool)?);
        }
        groups.add(plan, first_and_restores);
        plan.steps.push(standby_leader_step(
            &self.first,
            self.timeout,
            self.restore_progress()?,
            self.stuck_watches(std::slice::from_ref(&self.first))?,
        ));
        let mut forget_dynamic = Vec::new();
        let mut put_back = Vec::new();
        let mut starts = Vec::new();
        for name in &self.others {
            let host = self.host(name)?;
            forget_dynamic.push(host.remove_dynamic_config()?);
            let (files, from) = self.kept(host)?;
            put_back.push(Step {
                gate: Gate::None,
                ..host.restore(&files, &from)?
            });
            starts.push(start_verified(self.target, self.control, name)?);
        }
        groups.add(plan, forget_dynamic);
        groups.add(plan, put_back);
        groups.add(plan, starts);
        plan.steps.push(rebuilt_step(
            &self.first,
            &self.others,
            self.timeout,
            self.stuck_watches(&self.others)?,
        ));
        if let Some(position) = &self.params.replay_past {
            plan.steps.push(caught_up_step(
                std::iter::once(&self.first).chain(&self.others),
                position,
                self.timeout,
            ));
        }
        plan.steps.push(inactive_slots_step(
            self.target,
            self.view,
            &self.first,
            self.params.slot_retention.unwrap_or(DEFAULT_SLOT_RETENTION),
        )?);
        // Where Patroni registers services, clients find the rebuilt members through Consul.
        let mut routed = vec![Check::ConsulPassing {
            member: self.first.clone(),
            tag: "standby-leader".into(),
        }];
        routed.extend(self.others.iter().map(|name| Check::ConsulPassing {
            member: name.clone(),
            tag: "replica".into(),
        }));
        plan.steps.extend(consul_routing(
            self.view,
            "consul-routing".into(),
            format!(
                "Wait until Consul routes to every member of {} again",
                self.target.cluster
            ),
            routed,
        ));
        Ok(())
    }
}

/// Where the primary site is now, from the first member of the cluster the inventory says the
/// standby `follows` that answers as a primary; `None` without `follows:`. The rebuilt
/// standby must replay past it: only then has it caught up with what it missed.
async fn primary_site_position(
    target: &ClusterTarget,
    probe: &impl Probe,
) -> Result<Option<String>, PlanError> {
    match followed_site_primary(target, probe).await {
        Ok(found) => Ok(found.map(|(_, position)| position.to_string())),
        Err(heard) => Err(PlanError::Refused(format!(
            "no member of {} (which {} follows) answered as a primary: {}; pass --replay-past LSN to say where the primary site is",
            target.follows.as_ref().map_or("?", |followed| followed.cluster.as_str()),
            target.cluster,
            heard.join("; ")
        ))),
    }
}

/// Only a standby cluster, marked so in the inventory: rebuilding a primary cluster from a
/// backup loses every write since (that is `cluster-reinit`, with its own gates).
fn refuse_unless_standby(target: &ClusterTarget) -> Result<(), PlanError> {
    if target.standby {
        return Ok(());
    }
    Err(PlanError::Refused(format!(
        "cluster {} is not marked `standby: true` in environment {}: geo-resetup rebuilds standby (Geo) clusters only",
        target.cluster, target.environment
    )))
}

/// The first member restored by Patroni and leading as standby leader; a writable member
/// anywhere fails the wait at once.
fn standby_leader_step(
    first: &str,
    timeout: Duration,
    progress: Progress,
    stuck: Vec<StuckWatch>,
) -> Step {
    Step::wait(
        format!("standby-leader-{first}"),
        format!("Wait until {first} is restored and leads as standby leader"),
        Wait {
            until: vec![
                Check::StandbyLeader {
                    member: first.into(),
                },
                Check::HealthyLeader,
            ],
            fail_if: vec![Check::SomeMemberWritable],
            timeout,
            // An observation costs milliseconds; the rebuild's end should not wait for a poll.
            poll: Duration::from_millis(250),
            progress,
            stuck,
        },
    )
}

/// One standby leader and every other member replicating — by streaming from it or from the
/// archive (an archive-only replica is `in archive recovery`).
fn rebuilt_step(
    first: &str,
    others: &[String],
    timeout: Duration,
    stuck: Vec<StuckWatch>,
) -> Step {
    let mut until = vec![
        Check::StandbyLeader {
            member: first.into(),
        },
        Check::HealthyLeader,
    ];
    until.extend(others.iter().map(|name| {
        Check::state_in(
            name,
            &[MemberState::Streaming, MemberState::InArchiveRecovery],
        )
    }));
    Step::wait(
        "rebuilt".into(),
        format!("Wait until {} replicate from the standby leader or the archive", others.join(", ")),
        Wait {
            until,
            fail_if: vec![Check::SomeMemberWritable],
            timeout,
            // An observation costs milliseconds; the rebuild's end should not wait for a poll.
            poll: Duration::from_millis(250),
            progress: Progress::Checks,
            stuck,
        },
    )
}

/// Every member has replayed past where the primary site was before the run: caught up, not
/// merely running (the rehearsal: running at 12.6 s, caught up at 34.7 s).
fn caught_up_step<'a>(
    members: impl Iterator<Item = &'a String>,
    position: &str,
    timeout: Duration,
) -> Step {
    Step::wait(
        "caught-up".into(),
        format!("Wait until every member has replayed past the primary site's {position}"),
        Wait {
            until: members
                .map(|member| Check::ReplayedPast {
                    member: member.clone(),
                    position: position.into(),
                })
                .collect(),
            fail_if: vec![Check::SomeMemberWritable],
            timeout,
            poll: Duration::from_millis(250),
            progress: Progress::Checks,
            stuck: Vec::new(),
        },
    )
}

fn summary(
    target: &ClusterTarget,
    first: &str,
    others: &[String],
    replay_past: Option<&str>,
) -> String {
    format!(
        "Rebuilds standby cluster {} from the primary site's newest backup (seed 001). Patroni is stopped on every member, the cluster's DCS keys are deleted, the configuration files are kept beside each data directory and every data directory is wiped. {first} starts alone: Patroni restores it and it becomes the standby leader. Meanwhile {} {} restored by the backup tool; then each loses the restored patroni.dynamic.json (started with the primary site's, a member promotes itself), gets its kept files back and starts. The run ends with one standby leader and every member replicating{}; a member that ever runs as a writable primary fails it at once. The standby cluster serves no reads from the stop to the end.",
        target.cluster,
        if others.is_empty() {
            "no other member".to_string()
        } else {
            others.join(", ")
        },
        if others.len() == 1 { "is" } else { "are" },
        match replay_past {
            Some(position) => format!(
                " and past {position}, where the primary site was before the run: caught up, not merely running"
            ),
            None => " (where the primary site is was not read: no `follows:` in the inventory, no --replay-past)".into(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patroni::Lsn;
    use crate::plan::{Action, Gate};
    use crate::postgres::SqlError;
    use crate::runbooks::tests::{lab, standby_lab};

    fn params() -> Params {
        GeoResetup::examples().remove(0).params
    }

    fn ids(plan: &Plan) -> Vec<&str> {
        plan.steps.iter().map(|step| step.id.as_str()).collect()
    }

    #[test]
    fn the_first_member_starts_alone_and_the_others_lose_the_restored_dynamic_config() {
        let (target, view) = standby_lab();
        let plan = GeoResetup::plan(&target, &view, &params()).unwrap();
        let ids = ids(&plan);
        let at = |id: &str| {
            ids.iter()
                .position(|each| *each == id)
                .unwrap_or_else(|| panic!("{id} in {ids:?}"))
        };
        assert_eq!(ids[0], "backup-age-node1", "the backup's age before anything");
        assert!(at("stop-patroni-node3") < at("delete-etcd-tree"));
        assert!(at("delete-etcd-tree") < at("backup-files-node1"));
        assert!(at("backup-files-node3") < at("wipe-data-node1"));
        assert!(at("wipe-data-node3") < at("start-patroni-node1"));
        // The others are restored meanwhile, but start only once the first leads.
        assert!(at("restore-backup-node2") < at("standby-leader-node1"));
        assert!(at("standby-leader-node1") < at("remove-dynamic-config-node2"));
        assert!(at("remove-dynamic-config-node2") < at("restore-files-node2"));
        assert!(at("restore-files-node3") < at("start-patroni-node2"));
        assert!(at("rebuilt") < at("caught-up"));
        assert_eq!(ids.last(), Some(&"inactive-slots-node1"));
        assert!(at("caught-up") < at("inactive-slots-node1"));
        let Action::Wait(caught_up) = &plan.step("caught-up").unwrap().action else {
            panic!("caught-up waits")
        };
        assert_eq!(
            caught_up.until[2],
            Check::ReplayedPast {
                member: "node3".into(),
                position: "0/7000000".into()
            }
        );
        // The members' logs are watched while they start.
        let Action::Wait(first) = &plan.step("standby-leader-node1").unwrap().action else {
            panic!("standby-leader waits")
        };
        assert_eq!(first.stuck.len(), 1);
        assert_eq!(first.stuck[0].member, "node1");
        assert!(
            first.stuck[0]
                .read
                .describe()
                .ends_with("/var/lib/pgha/lab/members/node1/patroni.log"),
            "{}",
            first.stuck[0].read.describe()
        );
        // Its data directory filling against the databases' size, as Patroni restores it;
        // without a size to compare with, its state.
        match &first.progress {
            Progress::DataDirectory {
                member,
                expected_bytes,
                read,
            } => {
                assert_eq!((member.as_str(), *expected_bytes), ("node1", 512 << 20));
                assert!(read.describe().contains("du -s -B1"), "{}", read.describe());
            }
            other => panic!("{other:?}"),
        }
        let unmeasured = Params {
            need: None,
            ..params()
        };
        let plan_unmeasured = GeoResetup::plan(&target, &view, &unmeasured).unwrap();
        let Action::Wait(first) = &plan_unmeasured.step("standby-leader-node1").unwrap().action
        else {
            panic!("standby-leader waits")
        };
        assert_eq!(
            first.progress,
            Progress::MemberState {
                member: "node1".into()
            }
        );
        assert!(!ids.contains(&"restore-backup-node1"), "Patroni restores the first");
        let group = |id: &str| {
            plan.parallel
                .iter()
                .find(|group| group.steps.iter().any(|step| step == id))
                .map(|group| group.steps.clone())
        };
        assert_eq!(
            group("start-patroni-node1"),
            Some(vec![
                "start-patroni-node1".to_string(),
                "restore-backup-node2".into(),
                "restore-backup-node3".into()
            ])
        );
        // A writable member anywhere fails the waits at once.
        for id in ["standby-leader-node1", "rebuilt"] {
            let Action::Wait(wait) = &plan.step(id).unwrap().action else {
                panic!("{id} waits")
            };
            assert_eq!(wait.fail_if, [Check::SomeMemberWritable], "{id}");
        }
    }

    /// Every destructive gate asks for the cluster's name: one `--confirm demo` answers them.
    #[test]
    fn every_destructive_gate_asks_for_the_cluster_name() {
        let (target, view) = standby_lab();
        let plan = GeoResetup::plan(&target, &view, &params()).unwrap();
        let expected: Vec<&str> = plan
            .steps
            .iter()
            .filter_map(|step| match &step.gate {
                Gate::TypeToConfirm { expected, .. } => Some(expected.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(expected.len(), 5, "the stop, the keys, three wipes");
        assert!(expected.iter().all(|name| *name == "demo"), "{expected:?}");
        assert!(plan.prechecks.contains(&Check::StandbyLeader {
            member: "node1".into()
        }));
    }

    /// The two checks that tell a standby cluster from a split brain.
    #[test]
    fn a_standby_leader_is_told_from_a_writable_primary() {
        let checks = [
            Check::StandbyLeader {
                member: "node1".into(),
            },
            Check::SomeMemberWritable,
        ];
        let passed = |view: &ClusterView| -> Vec<(bool, String)> {
            crate::exec::evaluate(&checks, view)
                .into_iter()
                .map(|checked| (checked.verdict.passed, checked.verdict.observed))
                .collect()
        };
        let (_, standby) = standby_lab();
        assert_eq!(
            passed(&standby),
            [
                (true, "node1 is the standby leader".to_string()),
                (false, "no member runs as a writable primary".into())
            ]
        );
        let (_, primary) = lab();
        assert_eq!(
            passed(&primary),
            [
                (false, "node1 leads as primary".to_string()),
                (true, "node1 runs as a writable primary".into())
            ]
        );
    }

    /// What `Probe::primary_position` answers.
    type PositionAnswer = Option<Result<Option<Lsn>, SqlError>>;

    /// Answers from the primary site's members, by host.
    struct PrimarySite(Vec<(&'static str, PositionAnswer)>);

    impl Probe for PrimarySite {
        async fn database_size(&self, _host: &str) -> Option<Result<u64, SqlError>> {
            None
        }

        async fn oldest_transaction(
            &self,
            _host: &str,
        ) -> Option<Result<Option<Duration>, SqlError>> {
            None
        }

        async fn primary_position(&self, host: &str) -> PositionAnswer {
            self.0
                .iter()
                .find(|(each, _)| *each == host)
                .and_then(|(_, answer)| answer.clone())
        }
    }

    #[tokio::test]
    async fn the_position_to_replay_past_is_read_from_the_followed_clusters_primary() {
        let (mut target, _) = standby_lab();
        target.follows = Some(crate::inventory::FollowedCluster {
            cluster: "main".into(),
            hosts: vec!["10.0.0.1".into(), "10.0.0.2".into()],
        });
        let site = PrimarySite(vec![
            ("10.0.0.1", Some(Ok(None))),
            ("10.0.0.2", Some(Ok(Some(Lsn(0x7A00_0028))))),
        ]);
        let position = primary_site_position(&target, &site).await.unwrap();
        assert_eq!(position.as_deref(), Some("0/7A000028"));
        let none = PrimarySite(vec![("10.0.0.1", Some(Ok(None))), ("10.0.0.2", None)]);
        let error = primary_site_position(&target, &none).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "no member of main (which demo follows) answered as a primary: 10.0.0.1 is in recovery; 10.0.0.2: no SQL access (the inventory's `postgres:`); pass --replay-past LSN to say where the primary site is"
        );
        target.follows = None;
        assert_eq!(primary_site_position(&target, &site).await.unwrap(), None);
    }

    #[test]
    fn a_cluster_not_marked_standby_or_without_a_backup_section_is_refused() {
        let (target, view) = lab();
        let error = GeoResetup::plan(&target, &view, &params()).unwrap_err();
        assert!(error.to_string().contains("not marked `standby: true`"), "{error}");
        let (mut target, view) = standby_lab();
        target.backup = None;
        let error = GeoResetup::plan(&target, &view, &params()).unwrap_err();
        assert!(error.to_string().contains("names no `backup:`"), "{error}");
    }
}
