//! `pgha rehearse --like [ENV/]CLUSTER RUNBOOK …`: a runbook run first on a lab shaped like the
//! cluster it will run on. The target is only read: its members, releases, DCS, standby or not,
//! timing settings, database size. A lab of that shape is started (its own addresses and
//! directory; a standby cluster is mirrored by the lab's standby cluster, behind a one-member
//! primary site), the target's timing settings written into its dynamic configuration, and
//! what could not be mirrored said. The runbook is planned against both: their structures'
//! fingerprints (`plan::structure`) show the rehearsal is the plan that will run. Then it runs
//! on the lab through the same runner as any run (gates, journal), and the report gives each
//! step's time from the journal, the faults injected as named steps started (`--fault
//! kill-leader@switchover`, `dcs-down@wait`) and how the run ended, and the lab's state.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::cluster::Connection;
use crate::error::Error;
use crate::exec::Observer;
use crate::exit::Exit;
use crate::inventory::Selector;
use crate::lab::{LabDcs, LabSpec, Mirror};
use crate::observe::ClusterView;
use crate::patroni::{Version, dynamic_config::ConfigRead};
use crate::plan::structure;
use crate::runbooks::{Params, PlanOutput, Probe};
use crate::runner::{self, RunOptions};

/// The settings of the target's dynamic configuration the lab takes over.
const MIRRORED_SETTINGS: &[&str] = &[
    "ttl",
    "loop_wait",
    "retry_timeout",
    "maximum_lag_on_failover",
    "synchronous_mode",
    "synchronous_mode_strict",
    "synchronous_node_count",
    "failsafe_mode",
];

/// The tags Patroni acts on that the lab writes into its members' configuration.
const MIRRORED_TAGS: &[&str] = &[
    "nofailover",
    "failover_priority",
    "noloadbalance",
    "clonefrom",
    "nosync",
    "nostream",
    "replicatefrom",
];

/// The most members a rehearsal lab runs.
const MAX_LAB_MEMBERS: usize = 9;

/// The PostgreSQL major the lab runs.
const LAB_POSTGRES_MAJOR: u32 = 15;

/// What the operator asked for.
#[derive(Debug)]
pub struct Request {
    /// The cluster rehearsed for (read only).
    pub target: Selector,
    /// Where the rehearsal lab lives, and its first member's address.
    pub lab_dir: PathBuf,
    pub first_address: Ipv4Addr,
    pub params: Params,
    pub options: RunOptions,
    pub report: PlanOutput,
    /// Faults injected on the lab as named steps start.
    pub faults: Vec<Fault>,
    /// The lab's database filled with pgbench to this share of the target's size.
    pub scale: Option<Scale>,
}

/// `--scale`: a share of the target database's size, above 0 and at most 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale(f64);

impl Scale {
    pub fn parse(text: &str) -> Result<Scale, String> {
        match text.parse::<f64>() {
            Ok(share) if share > 0.0 && share <= 1.0 => Ok(Scale(share)),
            _ => Err(format!(
                "{text:?} is not a share of the database's size above 0 and at most 1 (0.01)"
            )),
        }
    }

    /// pgbench's scale for `bytes × share`: at least 1, at most `MAX_PGBENCH_UNITS`.
    fn pgbench_units(self, bytes: u64) -> u32 {
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let units = (bytes as f64 * self.0 / crate::lab::PGBENCH_UNIT_BYTES as f64).ceil() as u64;
        u32::try_from(units.clamp(1, u64::from(MAX_PGBENCH_UNITS))).unwrap_or(MAX_PGBENCH_UNITS)
    }
}

/// The most pgbench units a rehearsal fills (about 3 GiB): a lab on one machine's disk.
const MAX_PGBENCH_UNITS: u32 = 200;

/// A fault injected on the rehearsal lab once the step named starts (`kill-leader@switchover`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fault {
    pub kind: FaultKind,
    /// The step's id, or its start (`wait-streaming` for `wait-streaming-node3`).
    pub at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// The leader's machine dies: Patroni and PostgreSQL SIGKILLed.
    KillLeader,
    /// The DCS stops for `DCS_OUTAGE`, then starts again.
    DcsDown,
    /// SSH goes away, open sessions included, for `SSH_OUTAGE`.
    SshDrop,
    /// The run's own pgha dies mid-step (its future dropped: no further journal line, its
    /// locks left to expire as a killed process's would); the rehearsal resumes the run.
    PghaKill,
}

impl FaultKind {
    const ALL: [FaultKind; 4] = [
        FaultKind::KillLeader,
        FaultKind::DcsDown,
        FaultKind::SshDrop,
        FaultKind::PghaKill,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::KillLeader => "kill-leader",
            FaultKind::DcsDown => "dcs-down",
            FaultKind::SshDrop => "ssh-drop",
            FaultKind::PghaKill => "pgha-kill",
        }
    }
}

/// How long `dcs-down` keeps the DCS away: shorter than the lab's `ttl` (20 s) would ride it
/// out unseen; this one outlasts it.
const DCS_OUTAGE: Duration = Duration::from_secs(25);

/// How long `ssh-drop` keeps SSH away: longer than a step's SSH command waits to connect.
const SSH_OUTAGE: Duration = Duration::from_secs(15);

/// How long a resume after `pgha-kill` may wait for the dead run's DCS lock to go: twice the
/// locks' 15 s TTL (Consul may keep a session that long), and a margin.
const DEAD_LOCK_WAIT: Duration = Duration::from_secs(45);

impl Fault {
    /// `KIND@STEP`.
    pub fn parse(text: &str) -> Result<Fault, String> {
        let (kind, at) = text
            .split_once('@')
            .ok_or_else(|| format!("{text:?} is not KIND@STEP (kill-leader@switchover)"))?;
        let Some(kind) = FaultKind::ALL
            .into_iter()
            .find(|known| known.name() == kind)
        else {
            let known: Vec<&str> = FaultKind::ALL.iter().map(|known| known.name()).collect();
            return Err(format!(
                "{kind:?} is not a fault pgha injects ({})",
                known.join(", ")
            ));
        };
        crate::names::check_name(at).map_err(|why| format!("{text:?}: {why}"))?;
        Ok(Fault {
            kind,
            at: at.to_string(),
        })
    }
}

/// A fault as it happened.
#[derive(Debug, Serialize)]
pub struct Injected {
    pub fault: String,
    pub step: String,
    pub seconds_into_run: f64,
    pub what: String,
}

/// The target's shape, as read.
#[derive(Debug, Serialize)]
pub struct Shape {
    pub environment: String,
    pub cluster: String,
    pub scope: String,
    pub members: Vec<MemberShape>,
    pub postgres_major: Option<u32>,
    pub dcs: String,
    pub standby: bool,
    /// A standby cluster's primary site, as the inventory's `follows:` names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follows: Option<Followed>,
    /// On Consul: whether Patroni registers its members as services there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consul_services: Option<bool>,
    /// The tool the inventory's `backup:` names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_tool: Option<String>,
    pub settings: BTreeMap<String, Value>,
    pub database_bytes: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct Followed {
    pub cluster: String,
    pub members: usize,
}

#[derive(Debug, Serialize)]
pub struct MemberShape {
    pub name: String,
    /// In the inventory, not in the cluster (a host `scale-up` adds): a spare in the lab.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub spare: bool,
    pub role: Option<String>,
    pub patroni: Option<String>,
    pub tags: BTreeMap<String, Value>,
}

/// One step of the rehearsal run, from its journal.
#[derive(Debug, Serialize)]
pub struct StepTime {
    pub step: String,
    pub outcome: String,
    pub seconds: f64,
}

/// What goes into the change request.
#[derive(Debug, Serialize)]
pub struct Report {
    pub runbook: String,
    pub target: Shape,
    pub lab: String,
    pub not_mirrored: Vec<String>,
    pub target_structure: String,
    pub lab_structure: String,
    pub same_structure: bool,
    pub run_id: Option<String>,
    pub outcome: String,
    pub seconds: Option<f64>,
    pub steps: Vec<StepTime>,
    pub gates: Vec<String>,
    pub faults: Vec<Injected>,
    /// Each `pgha resume` the rehearsal ran after a fault, and how it ended.
    pub resumes: Vec<String>,
    pub lab_at_end: String,
}

pub async fn rehearse(request: Request) -> Result<Exit, Error> {
    // The target: read only, planned as its dry-run plans it.
    let target = Connection::open(&request.target).await?.into_live()?;
    let view = target.observe().await?;
    let shape = shape_of(&target, &view).await;
    let target_plan = planned(&target, &view, &request.params).await?;

    let (spec, mut not_mirrored, renames) = lab_spec(&shape, request.first_address, request.scale);
    let lab_run = LabRun {
        params: renames.params(&request.params),
        options: renames.options(&request.options),
        faults: request.faults.len(),
    };
    let lab = match ready_lab(&request, &shape, spec, &mut not_mirrored).await? {
        Ok(lab) => lab,
        Err(exit) => return Ok(exit),
    };
    let (lab_selector, lab_view, lab) = (lab.selector, lab.view, lab.cluster);
    let lab_plan = planned(&lab, &lab_view, &lab_run.params).await?;
    let (target_structure, lab_structure) = (
        structure::fingerprint(&target_plan),
        structure::fingerprint(&lab_plan),
    );
    eprintln!(
        "rehearse: plan structure {target_structure} on {}, {lab_structure} on the lab{}",
        shape.cluster,
        if target_structure == lab_structure {
            ": the same"
        } else {
            ": DIFFERENT"
        }
    );

    let runs = crate::journal::default_dir();
    let before = journals(&runs);
    let state = std::sync::Mutex::new(FaultState::default());
    let (kill, killed) = tokio::sync::mpsc::unbounded_channel();
    let watch = Watch {
        runs: &runs,
        before: &before,
        state: &state,
    };
    let drive = drive(&lab_selector, &lab_run, &watch, killed);
    let inject = inject_faults(&request.lab_dir, &lab, &watch, &request.faults, kill);
    let ((exit, resumes), injected) = tokio::join!(drive, inject);
    let journal = watch.journal();
    let end = lab.observe().await.map_or_else(
        |error| format!("cannot be read: {error}"),
        |view| crate::status::StatusDocument::from_view(&view, String::new()).summary_line(),
    );
    let mut report = Report {
        runbook: target_plan.runbook.clone(),
        target: shape,
        lab: format!(
            "{} (from {})",
            request.lab_dir.display(),
            request.first_address
        ),
        not_mirrored,
        same_structure: target_structure == lab_structure,
        target_structure,
        lab_structure,
        run_id: None,
        outcome: match &exit {
            Ok(code) => format!("exit {}", code.as_code()),
            Err(error) => error.to_string(),
        },
        seconds: None,
        steps: Vec::new(),
        gates: Vec::new(),
        faults: injected,
        resumes,
        lab_at_end: end,
    };
    if let Some(path) = journal {
        read_journal(&path, &mut report);
    }
    crate::ui::print_stdout(&render(&report, request.report))?;
    let exit = exit?;
    Ok(if exit == Exit::Success && !report.same_structure {
        Exit::Failed
    } else {
        exit
    })
}

/// The rehearsal lab, started, shaped like the target and at rest: the cluster that mirrors
/// the target (the standby one for a standby cluster), how it is selected, and its view.
struct ReadyLab {
    selector: Selector,
    cluster: crate::exec::LiveCluster,
    view: ClusterView,
}

/// Starts the lab of `spec`, then gives its cluster the target's settings, leader's place and
/// database size; the lab's exit when it did not start.
async fn ready_lab(
    request: &Request,
    shape: &Shape,
    spec: LabSpec,
    not_mirrored: &mut Vec<String>,
) -> Result<Result<ReadyLab, Exit>, Error> {
    eprintln!(
        "rehearse: a lab like {}/{} in {} ({} from {})",
        shape.environment,
        shape.cluster,
        request.lab_dir.display(),
        if spec.standby_members > 0 {
            format!(
                "a standby cluster of {} behind a primary of {}",
                spec.standby_members, spec.members
            )
        } else {
            format!("{} members", spec.members + spec.spares)
        },
        spec.first_address
    );
    let started = crate::lab::start(&request.lab_dir, spec, Duration::from_mins(3)).await?;
    if started != Exit::Success {
        return Ok(Err(started));
    }
    // The lab's primary cluster is its inventory's default; a standby target is mirrored by
    // its standby cluster.
    let primary = Selector {
        config: Some(request.lab_dir.join(crate::inventory::FILE_NAME)),
        environment: Some("lab".into()),
        ..Selector::default()
    };
    let selector = Selector {
        cluster: shape.standby.then(|| crate::lab::STANDBY_SCOPE.to_string()),
        ..primary.clone()
    };
    let cluster = Connection::open(&selector).await?.into_live()?;
    mirror_settings(&cluster, shape).await?;
    let view = mirror_leader(&cluster, shape, cluster.observe().await?, not_mirrored).await?;
    if let Some(filled) = fill_database(request, shape, &cluster, &primary).await? {
        not_mirrored.push(filled);
    }
    // Plans choose by lag (a switchover's candidate): planned once the fill's WAL is replayed.
    let view = at_rest(&cluster, view).await;
    Ok(Ok(ReadyLab {
        selector,
        cluster,
        view,
    }))
}

/// The lab once every replica streams with nothing left to receive or replay (at most a
/// minute; as it is then, the plans' fingerprints tell whether it mattered).
async fn at_rest(lab: &crate::exec::LiveCluster, view: ClusterView) -> ClusterView {
    use crate::patroni::Lag;
    let deadline = std::time::Instant::now() + Duration::from_mins(1);
    let mut view = view;
    loop {
        let rested = view.members.iter().all(|member| {
            member.dcs.is_none()
                || member.is_leader()
                || (following(member)
                    && member.receive_lag() == Some(Lag::Bytes(0))
                    && member.replay_lag() == Some(Lag::Bytes(0)))
        });
        if rested || std::time::Instant::now() > deadline {
            return view;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        match lab.observe().await {
            Ok(now) => view = now,
            Err(_) => return view,
        }
    }
}

/// A replica that follows its leader: streaming, or (a standby cluster's) replaying the
/// archive its standby leader replays too.
fn following(member: &crate::observe::MemberView) -> bool {
    use crate::patroni::MemberState;
    matches!(
        member.state(),
        Some(MemberState::Streaming | MemberState::InArchiveRecovery)
    )
}

/// With `--scale`, the lab's primary cluster's leader filled with pgbench in proportion to the
/// target's database; what the lab then holds. `mirrored` is that cluster, unless the target
/// is a standby one: then the primary is opened (`primary`), and after the fill takes a full
/// backup, so that what the standby members are restored from holds the filled database too.
async fn fill_database(
    request: &Request,
    shape: &Shape,
    mirrored: &crate::exec::LiveCluster,
    primary: &Selector,
) -> Result<Option<String>, Error> {
    let (Some(scale), Some(bytes)) = (request.scale, shape.database_bytes) else {
        return Ok(None);
    };
    let opened;
    let lab = if shape.standby {
        opened = Connection::open(primary).await?.into_live()?;
        &opened
    } else {
        mirrored
    };
    let view = lab.observe().await?;
    let Some(leader) = view.leader.as_deref().and_then(|name| view.member(name)) else {
        return Ok(Some(format!(
            "the database's size ({}): the lab's primary cluster had no leader to fill",
            crate::ui::human_bytes(bytes)
        )));
    };
    let units = scale.pgbench_units(bytes);
    eprintln!("rehearse: filling the lab's database with pgbench -s {units}");
    crate::lab::fill(&request.lab_dir, &leader.name, units).await?;
    if shape.standby {
        eprintln!(
            "rehearse: a full backup of {}, for the standby cluster's restores",
            leader.name
        );
        crate::lab::backup(&request.lab_dir, &leader.name).await?;
    }
    let filled = match lab.database_size(&leader.host).await {
        Some(Ok(filled)) => crate::ui::human_bytes(filled),
        _ => "unknown".into(),
    };
    Ok(Some(format!(
        "the database's size ({}): the lab's is {filled} (pgbench -s {units}, --scale {})",
        crate::ui::human_bytes(bytes),
        scale.0
    )))
}

/// The runbook's plan for `cluster` as its dry-run makes it (measured, then planned).
async fn planned(
    cluster: &crate::exec::LiveCluster,
    view: &ClusterView,
    params: &Params,
) -> Result<crate::plan::Plan, Error> {
    let params = params
        .clone()
        .with_default_timeout(&cluster.target.runbook_timeouts)
        .measured(&cluster.target, view, cluster)
        .await?;
    // The view measured (the lab's at rest) is the one planned from: not observed again.
    Ok(
        runner::prepare_from(cluster, view.clone(), &cluster.target, &params)
            .await?
            .plan,
    )
}

async fn shape_of(target: &crate::exec::LiveCluster, view: &ClusterView) -> Shape {
    let config: Option<ConfigRead> = target.dynamic_config(view).await.ok();
    let settings = MIRRORED_SETTINGS
        .iter()
        .filter_map(|key| {
            let value = config.as_ref()?.config.get(*key)?;
            Some(((*key).to_string(), value.clone()))
        })
        .collect();
    let leader_host = view
        .leader
        .as_deref()
        .and_then(|name| view.member(name))
        .map(|member| member.host.clone());
    let database_bytes = match leader_host {
        Some(host) => target.database_size(&host).await.and_then(Result::ok),
        None => None,
    };
    Shape {
        environment: view.environment.clone(),
        cluster: view.cluster.clone(),
        scope: view.scope.clone(),
        members: view
            .members
            .iter()
            .map(|member| {
                let status = member.status.as_ref().ok();
                MemberShape {
                    name: member.name.clone(),
                    spare: member.in_inventory && member.dcs.is_none() && status.is_none(),
                    role: member.role().map(|role| role.as_str().to_string()),
                    patroni: member.patroni_version().map(|version| version.to_string()),
                    tags: status
                        .map(|status| status.tags.clone().into_iter().collect())
                        .unwrap_or_default(),
                }
            })
            .collect(),
        postgres_major: view
            .members
            .iter()
            .find_map(|member| member.status.as_ref().ok()?.server_version)
            .map(|version| version / 10_000),
        dcs: if view.consul.is_some() || target.target.consul.is_some() {
            "consul".into()
        } else {
            "etcd".into()
        },
        consul_services: view
            .consul
            .is_some()
            .then(|| crate::runbooks::steps::registers_services(view)),
        standby: target.target.standby,
        follows: target.target.follows.as_ref().map(|followed| Followed {
            cluster: followed.cluster.clone(),
            members: followed.hosts.len(),
        }),
        backup_tool: target
            .target
            .backup
            .as_ref()
            .map(|backup| backup.tool.title().to_string()),
        settings,
        database_bytes,
    }
}

/// The lab that mirrors `shape`, and what it cannot mirror. A standby cluster is mirrored by
/// the lab's standby cluster (`geo1`, …), following a one-member primary cluster.
fn lab_spec(
    shape: &Shape,
    first_address: Ipv4Addr,
    scale: Option<Scale>,
) -> (LabSpec, Vec<String>, Renames) {
    let mut not_mirrored = Vec::new();
    // Members first, spares last (the lab's order), each sorted by name: the lab's names then
    // keep the places plans name members by.
    let (mut members, mut spares): (Vec<&MemberShape>, Vec<&MemberShape>) =
        shape.members.iter().partition(|member| !member.spare);
    members.sort_by(|a, b| a.name.cmp(&b.name));
    spares.sort_by(|a, b| a.name.cmp(&b.name));
    if shape.standby {
        not_mirrored.extend(spares.drain(..).map(|spare| {
            format!(
                "{}: a host in the inventory, not in the cluster; the lab's standby cluster has no spare",
                spare.name
            )
        }));
    }
    let spare_count = spares.len();
    members.extend(spares);
    let count = members.len().clamp(1, MAX_LAB_MEMBERS);
    if members.len() > MAX_LAB_MEMBERS {
        not_mirrored.push(format!(
            "{} members: the lab runs at most {MAX_LAB_MEMBERS}",
            members.len()
        ));
    }
    members.truncate(count);
    let spares = spare_count.min(count.saturating_sub(1));
    let mut mirror = Mirror::default();
    let names: Vec<String> = members.iter().map(|member| member.name.clone()).collect();
    let (lab_names, names_mirrored) = lab_names(&names, shape.standby);
    // The lab's name for a member, by its place.
    let renamed = |name: &str| {
        let place = names.iter().position(|other| other == name).unwrap_or(0);
        lab_names[place].clone()
    };
    if names_mirrored && !shape.standby && lab_names != default_names(names.len()) {
        mirror.names.clone_from(&names);
    }
    if !names_mirrored {
        not_mirrored.push(format!(
            "member names ({}): the lab names them {} (plans are compared with members named by their sorted place)",
            names.join(", "),
            lab_names.join(", ")
        ));
    }
    let release = lab_release(&members);
    for member in &members {
        mirror_member(
            member,
            &names,
            &renamed,
            release,
            &mut mirror,
            &mut not_mirrored,
        );
    }
    if let Some(major) = shape.postgres_major
        && major != LAB_POSTGRES_MAJOR
    {
        not_mirrored.push(format!(
            "PostgreSQL {major}: the lab runs PostgreSQL {LAB_POSTGRES_MAJOR}"
        ));
    }
    mirror.no_consul_services = shape.consul_services == Some(false);
    let primary_scope = primary_scope(shape);
    not_mirrored.extend(sites_not_mirrored(shape, &primary_scope));
    not_mirrored.extend(size_not_mirrored(shape.database_bytes, scale));
    let count = u8::try_from(count).unwrap_or(1);
    let spares = u8::try_from(spares).unwrap_or(0);
    let (members, spares, standby_members) = if shape.standby {
        (1, 0, count)
    } else {
        (count - spares, spares, 0)
    };
    let spec = LabSpec {
        members,
        spares,
        patroni_version: release,
        tls: false,
        scope: primary_scope,
        first_address,
        dcs: if shape.dcs == "consul" {
            LabDcs::Consul
        } else {
            LabDcs::Etcd
        },
        etcd_members: 1,
        standby_members,
        mirror,
    };
    let mut lab_name_of: BTreeMap<String, String> = names
        .iter()
        .map(|name| (name.clone(), renamed(name)))
        .collect();
    let lab_cluster = if shape.standby {
        crate::lab::STANDBY_SCOPE.to_string()
    } else {
        spec.scope.clone()
    };
    lab_name_of.insert(shape.cluster.clone(), lab_cluster);
    lab_name_of.retain(|target, lab| target != lab);
    (spec, not_mirrored, Renames(lab_name_of))
}

/// The lab's names for the target's where they differ: its cluster's (the lab's inventory names
/// a cluster by its scope; a standby cluster `geo`) and its members'. The operator's request
/// names the target's; the lab's run is asked the same with the lab's names.
#[derive(Debug, Default, PartialEq)]
struct Renames(BTreeMap<String, String>);

impl Renames {
    /// The runbook's parameters with every value that names a target's member (or the
    /// cluster) naming the lab's instead (`--member pg-02` is `--member node2`).
    fn params(&self, params: &Params) -> Params {
        let Ok(mut value) = serde_json::to_value(params) else {
            return params.clone();
        };
        self.rename(&mut value);
        serde_json::from_value(value).unwrap_or_else(|_| params.clone())
    }

    /// `--confirm NAME` for the lab: the lab's name for the cluster or member typed.
    fn options(&self, options: &RunOptions) -> RunOptions {
        let mut options = options.clone();
        for name in &mut options.confirm {
            if let Some(lab) = self.0.get(name.as_str()) {
                name.clone_from(lab);
            }
        }
        options
    }

    fn rename(&self, value: &mut Value) {
        match value {
            Value::String(text) => {
                if let Some(lab) = self.0.get(text.as_str()) {
                    text.clone_from(lab);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| self.rename(item)),
            // Keys are the parameters' names (`runbook`, `member`): never renamed.
            Value::Object(fields) => fields.values_mut().for_each(|field| self.rename(field)),
            _ => {}
        }
    }
}

/// One member's release and tags into `mirror` (by the lab's name for it, `renamed`), or
/// into `not_mirrored`; `names` are the target's members' (`replicatefrom` must name one).
fn mirror_member(
    member: &MemberShape,
    names: &[String],
    renamed: &dyn Fn(&str) -> String,
    release: Version,
    mirror: &mut Mirror,
    not_mirrored: &mut Vec<String>,
) {
    match member.patroni.as_deref().map(str::parse::<Version>) {
        Some(Ok(version)) if version != release => {
            mirror.releases.insert(renamed(&member.name), version);
        }
        Some(Ok(_)) => {}
        // A spare runs no Patroni yet: the runbook starts the lab's.
        None if member.spare => {}
        Some(Err(_)) | None => not_mirrored.push(format!(
            "{}'s Patroni release ({}): it runs {release}",
            member.name,
            member.patroni.as_deref().unwrap_or("unknown")
        )),
    }
    let mut tags = BTreeMap::new();
    for (key, value) in &member.tags {
        if MIRRORED_TAGS.contains(&key.as_str()) && mirrorable_tag(key, value, names) {
            let value = match (key.as_str(), value.as_str()) {
                // replicatefrom names a member: the lab's name for it.
                ("replicatefrom", Some(from)) => Value::String(renamed(from)),
                _ => value.clone(),
            };
            tags.insert(key.clone(), value);
        } else {
            not_mirrored.push(format!("{}'s tag {key}: {value}", member.name));
        }
    }
    if !tags.is_empty() {
        mirror.tags.insert(renamed(&member.name), tags);
    }
}

/// The lab's names for members `names` (sorted, spares last), and whether they are the same:
/// a primary cluster's own when pgha and the lab accept them all (else `node1`, …); a standby
/// cluster's always `geo1`, … (the lab's standby cluster names its members).
fn lab_names(names: &[String], standby: bool) -> (Vec<String>, bool) {
    if standby {
        let lab: Vec<String> = (0..names.len())
            .map(crate::lab::standby_member_name)
            .collect();
        let same = lab == names;
        return (lab, same);
    }
    if names.iter().all(|name| lab_can_name(name)) {
        (names.to_vec(), true)
    } else {
        (default_names(names.len()), false)
    }
}

/// `node1`, … `nodeN`: the names a lab gives its primary cluster's members of its own.
fn default_names(count: usize) -> Vec<String> {
    (0..count).map(crate::lab::own_member_name).collect()
}

/// The lab's primary cluster's scope: the target's, or for a standby cluster the site it
/// follows (a name the lab can take), else `primary`.
fn primary_scope(shape: &Shape) -> String {
    if !shape.standby {
        return shape.scope.clone();
    }
    shape
        .follows
        .as_ref()
        .map(|followed| followed.cluster.clone())
        .filter(|name| lab_can_name(name))
        .unwrap_or_else(|| "primary".into())
}

/// What the lab's sites and backups leave of the target's: only a lab with a standby cluster
/// keeps backups (pgBackRest's), and its primary site is one member.
fn sites_not_mirrored(shape: &Shape, primary_scope: &str) -> Vec<String> {
    let mut not_mirrored = Vec::new();
    if shape.standby {
        not_mirrored.push(format!(
            "the primary site{}: the lab's standby cluster follows a one-member primary cluster, {primary_scope}, through pgBackRest's WAL archive",
            shape.follows.as_ref().map_or_else(String::new, |followed| format!(
                " ({}, {} members)",
                followed.cluster, followed.members
            ))
        ));
        match shape.backup_tool.as_deref() {
            Some("pgBackRest") => {}
            Some(tool) => not_mirrored.push(format!(
                "backups made with {tool}: the lab's are pgBackRest's"
            )),
            None => not_mirrored.push(
                "no `backup:` in the inventory: the lab's standby cluster has pgBackRest's".into(),
            ),
        }
    } else if let Some(tool) = &shape.backup_tool {
        not_mirrored.push(format!(
            "backups made with {tool}: a lab without a standby cluster keeps none"
        ));
    }
    not_mirrored
}

/// What `--scale` leaves of the database's size unmirrored.
fn size_not_mirrored(database_bytes: Option<u64>, scale: Option<Scale>) -> Option<String> {
    match (database_bytes, scale) {
        (Some(bytes), None) => Some(format!(
            "the database's size ({}): the lab's is nearly empty (--scale fills it with pgbench)",
            crate::ui::human_bytes(bytes)
        )),
        (Some(bytes), Some(scale)) if scale.pgbench_units(bytes) == MAX_PGBENCH_UNITS => {
            Some(format!(
                "the database's size ({}) at --scale {}: the lab fills at most {MAX_PGBENCH_UNITS} pgbench units",
                crate::ui::human_bytes(bytes),
                scale.0
            ))
        }
        (None, Some(_)) => {
            Some("the database's size could not be read: --scale fills nothing".into())
        }
        _ => None,
    }
}

/// The most members' release (the newest of a tie): the lab's own; the others' are mirrored
/// member by member.
fn lab_release(members: &[&MemberShape]) -> Version {
    let mut counts: BTreeMap<Version, usize> = BTreeMap::new();
    for member in members {
        if let Some(Ok(version)) = member.patroni.as_deref().map(str::parse::<Version>) {
            *counts.entry(version).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .max_by_key(|(version, count)| (*count, *version))
        .map_or_else(
            || {
                crate::lab::DEFAULT_PATRONI_VERSION
                    .parse()
                    .unwrap_or(Version::new(4, 1, 5))
            },
            |(version, _)| version,
        )
}

/// Whether the lab can call a member `name`: a name pgha accepts, not the standby cluster's.
fn lab_can_name(name: &str) -> bool {
    crate::names::check_name(name).is_ok() && !name.starts_with(crate::lab::STANDBY_SCOPE)
}

/// A tag the lab can write: a scalar, and a `replicatefrom` naming one of the members.
fn mirrorable_tag(key: &str, value: &Value, names: &[String]) -> bool {
    match key {
        "replicatefrom" => value
            .as_str()
            .is_some_and(|from| names.iter().any(|name| name == from)),
        _ => value.is_boolean() || value.is_number(),
    }
}

/// The target's timing and synchronous settings, written into the lab's configuration.
async fn mirror_settings(lab: &crate::exec::LiveCluster, shape: &Shape) -> Result<(), Error> {
    if shape.settings.is_empty() {
        return Ok(());
    }
    let patch = Value::Object(shape.settings.clone().into_iter().collect());
    let api = lab
        .target
        .members
        .first()
        .map(|member| member.api_url.clone())
        .unwrap_or_default();
    lab.client.patch_config(&api, &patch).await?;
    Ok(())
}

/// What the run and the fault injector share: where the run's journal appears, how many faults
/// fired, whether one is being injected, and whether the rehearsal's run is over.
struct Watch<'a> {
    runs: &'a Path,
    before: &'a [PathBuf],
    state: &'a std::sync::Mutex<FaultState>,
}

#[derive(Default)]
struct FaultState {
    injected: usize,
    injecting: bool,
    done: bool,
}

impl Watch<'_> {
    /// The rehearsal run's journal: the one that appeared since it began.
    fn journal(&self) -> Option<PathBuf> {
        journals(self.runs)
            .into_iter()
            .filter(|path| !self.before.contains(path))
            .max()
    }

    fn events(&self) -> Vec<Value> {
        self.journal()
            .and_then(|path| std::fs::read_to_string(path).ok())
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    fn run_id(&self) -> Option<String> {
        self.events().iter().find_map(|event| {
            (event["event"] == "run_started").then(|| event["run_id"].as_str().map(String::from))?
        })
    }

    fn with<T>(&self, change: impl FnOnce(&mut FaultState) -> T) -> T {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        change(&mut state)
    }
}

/// Runs the runbook on the lab as an operator would through the faults: a run killed
/// (`pgha-kill`) is resumed at once, as a new pgha would be started; a run that failed after a
/// fault is resumed once the fault is over. Each resume waits out the dead run's DCS lock
/// (bounded by twice its TTL).
/// The run asked of the lab: the operator's request in the lab's names.
struct LabRun {
    params: Params,
    options: RunOptions,
    /// How many faults the rehearsal injects (as many resumes, at most).
    faults: usize,
}

async fn drive(
    lab: &Selector,
    request: &LabRun,
    watch: &Watch<'_>,
    mut killed: tokio::sync::mpsc::UnboundedReceiver<()>,
) -> (Result<Exit, Error>, Vec<String>) {
    type Attempt<'a> =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Exit, Error>> + 'a>>;
    let mut attempt: Attempt = Box::pin(runner::run(
        lab,
        request.params.clone(),
        request.options.clone(),
    ));
    let mut resumes = Vec::new();
    let mut resumed_after = 0;
    let ended = loop {
        let killed_now = tokio::select! {
            ended = &mut attempt => Err(ended),
            Some(()) = killed.recv() => Ok(()),
        };
        let reason = match killed_now {
            Ok(()) => "the run's pgha killed".to_string(),
            Err(Ok(Exit::Success)) => break Ok(Exit::Success),
            Err(ended) => {
                let injected = watch.with(|state| state.injected);
                if injected <= resumed_after || resumes.len() >= request.faults {
                    break ended;
                }
                // The fault's own time (an outage) ends before the operator resumes.
                while watch.with(|state| state.injecting) {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                match &ended {
                    Ok(exit) => format!("the run ended with exit {}", exit.as_code()),
                    Err(error) => format!("the run failed: {error}"),
                }
            }
        };
        drop(attempt);
        resumed_after = watch.with(|state| state.injected);
        let Some(run_id) = watch.run_id() else {
            break Err(Error::Refused(format!(
                "{reason} before its journal began: nothing to resume"
            )));
        };
        eprintln!("rehearse: {reason}; pgha resume {run_id}");
        let (result, waited) = resume_when_unlocked(lab, &run_id, &request.options).await;
        resumes.push(format!(
            "{reason}; `pgha resume {run_id}`{}: {}",
            if waited < 1.0 {
                String::new()
            } else {
                format!(" once the dead run's DCS lock expired ({waited:.1} s)")
            },
            match &result {
                Ok(exit) => format!("exit {}", exit.as_code()),
                Err(error) => error.to_string(),
            }
        ));
        attempt = Box::pin(std::future::ready(result));
    };
    watch.with(|state| state.done = true);
    (ended, resumes)
}

/// `pgha resume RUN_ID` on the lab, tried again while the dead run's lock is held (its lease
/// ends within the lock's TTL); the seconds it waited for the lock.
async fn resume_when_unlocked(
    lab: &Selector,
    run_id: &str,
    options: &RunOptions,
) -> (Result<Exit, Error>, f64) {
    let started = std::time::Instant::now();
    loop {
        let waited = started.elapsed();
        let result = crate::runs::resume(lab, run_id, false, options.clone()).await;
        let held = matches!(&result, Err(error) if error.exit() == Exit::LockHeld);
        if !held || started.elapsed() > DEAD_LOCK_WAIT {
            return (result, waited.as_secs_f64());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Watches the run's journal; as each fault's step starts, injects the fault on the lab. Ends
/// once every fault is injected, or once the rehearsal's run is over (resumes included).
async fn inject_faults(
    lab_dir: &Path,
    lab: &crate::exec::LiveCluster,
    watch: &Watch<'_>,
    faults: &[Fault],
    kill: tokio::sync::mpsc::UnboundedSender<()>,
) -> Vec<Injected> {
    let mut pending: Vec<&Fault> = faults.iter().collect();
    let mut injected = Vec::new();
    let started = std::time::Instant::now();
    // Bounded: no rehearsal waits longer than a day. Nothing left to inject: nothing to read.
    while !pending.is_empty() && started.elapsed() < Duration::from_hours(24) {
        if watch.with(|state| state.done) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let events = watch.events();
        let mut due = Vec::new();
        pending.retain(|fault| match started_step(&events, &fault.at) {
            Some(step) => {
                due.push(((*fault).clone(), step));
                false
            }
            None => true,
        });
        for (fault, step) in due {
            watch.with(|state| {
                state.injecting = true;
                state.injected += 1;
            });
            let what = inject(lab_dir, lab, fault.kind, &kill).await;
            watch.with(|state| state.injecting = false);
            eprintln!("rehearse: fault {}@{step}: {what}", fault.kind.name());
            injected.push(Injected {
                fault: format!("{}@{}", fault.kind.name(), fault.at),
                step,
                seconds_into_run: started.elapsed().as_secs_f64(),
                what,
            });
        }
    }
    injected.extend(pending.into_iter().map(|fault| Injected {
        fault: format!("{}@{}", fault.kind.name(), fault.at),
        step: String::new(),
        seconds_into_run: started.elapsed().as_secs_f64(),
        what: "not injected: no step with that name started".into(),
    }));
    injected
}

/// The first step whose id starts with `at` that the journal shows started.
fn started_step(events: &[Value], at: &str) -> Option<String> {
    events.iter().find_map(|event| {
        let step = event["step"].as_str()?;
        (event["event"] == "step_started" && step.starts_with(at)).then(|| step.to_string())
    })
}

async fn inject(
    lab_dir: &Path,
    lab: &crate::exec::LiveCluster,
    kind: FaultKind,
    kill: &tokio::sync::mpsc::UnboundedSender<()>,
) -> String {
    use crate::lab::{Killed, LabCommand, MemberAction};
    match kind {
        FaultKind::PghaKill => match kill.send(()) {
            Ok(()) => "the run's pgha killed mid-step".into(),
            Err(_) => "the run had already ended".into(),
        },
        FaultKind::SshDrop => {
            let (stop, start) = (
                LabCommand::Ssh { start: false },
                LabCommand::Ssh { start: true },
            );
            if let Err(error) = crate::lab::execute(lab_dir, stop).await {
                return format!("stopping SSH failed: {error}");
            }
            tokio::time::sleep(SSH_OUTAGE).await;
            match crate::lab::execute(lab_dir, start).await {
                Ok(_) => format!(
                    "SSH dropped (sessions included) for {}s, then back",
                    SSH_OUTAGE.as_secs()
                ),
                Err(error) => format!("SSH dropped; starting it again failed: {error}"),
            }
        }
        FaultKind::KillLeader => {
            let leader = match lab.observe().await {
                Ok(view) => view.leader,
                Err(error) => return format!("the lab could not be read: {error}"),
            };
            let Some(leader) = leader else {
                return "no member led: nothing to kill".into();
            };
            let command = LabCommand::Member {
                action: MemberAction::Kill(Killed::Host),
                name: leader.clone(),
            };
            match crate::lab::execute(lab_dir, command).await {
                Ok(_) => format!("{leader}'s Patroni and PostgreSQL killed"),
                Err(error) => format!("killing {leader} failed: {error}"),
            }
        }
        FaultKind::DcsDown => {
            let stop = LabCommand::Dcs {
                start: false,
                member: None,
            };
            if let Err(error) = crate::lab::execute(lab_dir, stop).await {
                return format!("stopping the DCS failed: {error}");
            }
            tokio::time::sleep(DCS_OUTAGE).await;
            let start = LabCommand::Dcs {
                start: true,
                member: None,
            };
            match crate::lab::execute(lab_dir, start).await {
                Ok(_) => format!(
                    "the DCS stopped for {}s, then started",
                    DCS_OUTAGE.as_secs()
                ),
                Err(error) => format!("the DCS stopped; starting it again failed: {error}"),
            }
        }
    }
}

/// The lab led by the member in the target leader's place (members sorted by name, as the
/// plan's structure names them): a switchover on the lab when another leads it. Else a
/// runbook would plan from the other side (a switchover the other way round).
async fn mirror_leader(
    lab: &crate::exec::LiveCluster,
    shape: &Shape,
    view: ClusterView,
    not_mirrored: &mut Vec<String>,
) -> Result<ClusterView, Error> {
    let mut target_names: Vec<&str> = shape.members.iter().map(|m| m.name.as_str()).collect();
    target_names.sort_unstable();
    let Some(leader) = shape
        .members
        .iter()
        .find(|member| matches!(member.role.as_deref(), Some("leader" | "standby_leader")))
    else {
        return Ok(view);
    };
    // Patroni switches over to no member tagged nofailover: such a leader (it led before it
    // was tagged) cannot be given the lab's lead.
    if leader.tags.get("nofailover") == Some(&Value::Bool(true)) {
        not_mirrored.push(format!(
            "the leader's place: {} leads the target but is tagged nofailover, and no switchover goes to such a member; the lab's leader is {}",
            leader.name,
            view.leader.as_deref().unwrap_or("none")
        ));
        return Ok(view);
    }
    let Some(place) = target_names.iter().position(|name| *name == leader.name) else {
        return Ok(view);
    };
    let mut lab_names: Vec<String> = view.members.iter().map(|m| m.name.clone()).collect();
    lab_names.sort_unstable();
    let (Some(wanted), Some(current)) = (lab_names.get(place), view.leader.clone()) else {
        return Ok(view);
    };
    if *wanted == current {
        return Ok(view);
    }
    eprintln!(
        "rehearse: the lab's leader is {current}; switching over to {wanted}, in the target leader's place"
    );
    let api = view
        .member(&current)
        .map(|member| member.api_url.clone())
        .unwrap_or_default();
    let request = crate::patroni::SwitchoverRequest {
        leader: current,
        candidate: Some(wanted.clone()),
        scheduled_at: None,
    };
    lab.client.switchover(&api, &request).await?;
    let deadline = std::time::Instant::now() + Duration::from_mins(1);
    loop {
        let view = lab.observe().await?;
        let settled = view.leader.as_deref() == Some(wanted.as_str())
            && view.members.iter().all(|member| {
                // A spare is not in the cluster: nothing to settle.
                member.dcs.is_none() || member.is_leader() || following(member)
            });
        if settled {
            return Ok(view);
        }
        if std::time::Instant::now() > deadline {
            return Err(Error::Refused(format!(
                "the lab did not settle with {wanted} leading within a minute: {}",
                crate::status::StatusDocument::from_view(&view, String::new()).summary_line()
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn journals(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|entry| Some(entry.ok()?.path()))
                .filter(|path| path.extension().is_some_and(|ext| ext == "jsonl"))
                .collect()
        })
        .unwrap_or_default()
}

/// Each step's time and outcome, the gates and how they were answered, the run's end.
fn read_journal(path: &Path, report: &mut Report) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    let at = |event: &Value| {
        event["at"]
            .as_str()
            .and_then(|text| text.parse::<jiff::Timestamp>().ok())
    };
    let mut started: BTreeMap<String, jiff::Timestamp> = BTreeMap::new();
    let mut run_began = None;
    let mut last_at: Option<jiff::Timestamp> = None;
    for line in text.lines() {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let seconds = |event: &Value| event["duration_ms"].as_f64().map(|ms| ms / 1000.0);
        let step = event["step"].as_str().unwrap_or_default().to_string();
        // The resume's own line is not the dead run's last.
        if event["event"] != "run_resumed" {
            last_at = at(&event).or(last_at);
        }
        match event["event"].as_str() {
            Some("run_started") => {
                report.run_id = event["run_id"].as_str().map(String::from);
                run_began = at(&event);
            }
            Some("step_started") => {
                if let Some(at) = at(&event) {
                    started.insert(step, at);
                }
            }
            Some("run_resumed") => {
                // A step started and never ended: the run's pgha died in it, after the last
                // line its journal got (not when the resume came).
                for (step, since) in std::mem::take(&mut started) {
                    let span = last_at.map(|died| died.duration_since(since).as_secs_f64());
                    report.steps.push(StepTime {
                        step,
                        outcome: "interrupted".into(),
                        seconds: span.unwrap_or(0.0),
                    });
                }
            }
            Some("step_succeeded" | "step_failed" | "step_skipped") => {
                let began = started.remove(&step);
                // A failed step's event has no duration: from its start to its end.
                let measured = seconds(&event).or_else(|| {
                    let span = at(&event)?.duration_since(began?);
                    Some(span.as_secs_f64())
                });
                report.steps.push(StepTime {
                    outcome: event["event"]
                        .as_str()
                        .unwrap_or_default()
                        .trim_start_matches("step_")
                        .to_string(),
                    step,
                    seconds: measured.unwrap_or(0.0),
                });
            }
            Some("gate_answered") => report.gates.push(format!(
                "{}: {} ({})",
                event["step"].as_str().unwrap_or_default(),
                if event["answer"] == true { "yes" } else { "no" },
                event["by"].as_str().unwrap_or_default()
            )),
            Some("run_finished") => {
                report.outcome = event["outcome"].as_str().unwrap_or_default().to_string();
                // Resumed: from the run's start to its last end, the waits between included.
                let wall = run_began
                    .zip(at(&event))
                    .map(|(began, ended)| ended.duration_since(began).as_secs_f64());
                report.seconds = wall.or_else(|| seconds(&event));
            }
            _ => {}
        }
    }
}

fn render(report: &Report, format: PlanOutput) -> String {
    match format {
        PlanOutput::Json => {
            let mut text = crate::ui::json::pretty(report).unwrap_or_default();
            text.push('\n');
            text
        }
        PlanOutput::Markdown | PlanOutput::Text => markdown(report),
    }
}

fn markdown(report: &Report) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let target = &report.target;
    let _ = writeln!(
        out,
        "# Rehearsal of `pgha {}` like {}/{}\n",
        report.runbook, target.environment, target.cluster
    );
    let members: Vec<String> = target
        .members
        .iter()
        .map(|member| match (&member.role, &member.patroni) {
            _ if member.spare => {
                format!("{} (spare: in the inventory, not the cluster)", member.name)
            }
            (role, patroni) => format!(
                "{} ({}, Patroni {})",
                member.name,
                role.as_deref().unwrap_or("?"),
                patroni.as_deref().unwrap_or("?")
            ),
        })
        .collect();
    let _ = writeln!(out, "| | |\n| --- | --- |");
    let _ = writeln!(out, "| Target | {} |", members.join(", "));
    let _ = writeln!(
        out,
        "| Target's PostgreSQL, DCS | {}, {} |",
        target
            .postgres_major
            .map_or_else(|| "?".into(), |major| major.to_string()),
        target.dcs
    );
    let settings: Vec<String> = target
        .settings
        .iter()
        .map(|(key, value)| format!("{key} {value}"))
        .collect();
    let _ = writeln!(out, "| Settings mirrored | {} |", settings.join(", "));
    let _ = writeln!(out, "| Lab | {} |", report.lab);
    let _ = writeln!(
        out,
        "| Plan structure | target `{}`, lab `{}`: {} |",
        report.target_structure,
        report.lab_structure,
        if report.same_structure {
            "the same plan"
        } else {
            "**different plans**"
        }
    );
    let _ = writeln!(
        out,
        "| Run | {} — {}{} |",
        report.run_id.as_deref().unwrap_or("none"),
        report.outcome,
        report
            .seconds
            .map_or_else(String::new, |seconds| format!(" in {seconds:.1} s"))
    );
    let _ = writeln!(out, "| Lab at the end | {} |", report.lab_at_end);
    if !report.not_mirrored.is_empty() {
        let _ = writeln!(out, "\n## Not mirrored\n");
        for line in &report.not_mirrored {
            let _ = writeln!(out, "- {line}");
        }
    }
    let _ = writeln!(
        out,
        "\n## Steps\n\n| step | outcome | time |\n| --- | --- | ---: |"
    );
    for step in &report.steps {
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} s |",
            step.step, step.outcome, step.seconds
        );
    }
    if !report.gates.is_empty() {
        let _ = writeln!(out, "\n## Gates\n");
        for gate in &report.gates {
            let _ = writeln!(out, "- {gate}");
        }
    }
    if !report.faults.is_empty() {
        let _ = writeln!(out, "\n## Faults\n");
        for fault in &report.faults {
            let _ = writeln!(
                out,
                "- `{}` at {} ({:.1} s into the run): {}",
                fault.fault, fault.step, fault.seconds_into_run, fault.what
            );
        }
        for resume in &report.resumes {
            let _ = writeln!(out, "- then {resume}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(names: &[&str], patroni: &[&str]) -> Shape {
        Shape {
            environment: "prod".into(),
            cluster: "main-db".into(),
            scope: "main".into(),
            members: names
                .iter()
                .zip(patroni)
                .map(|(name, release)| MemberShape {
                    name: (*name).into(),
                    spare: false,
                    role: None,
                    patroni: Some((*release).into()),
                    tags: BTreeMap::new(),
                })
                .collect(),
            postgres_major: Some(16),
            dcs: "consul".into(),
            standby: false,
            follows: None,
            consul_services: Some(true),
            backup_tool: None,
            settings: BTreeMap::new(),
            database_bytes: Some(470 << 20),
        }
    }

    #[test]
    fn the_lab_takes_the_shape_and_says_what_it_cannot() {
        let mut target = shape(
            &["pg-01", "pg-02", "pg-03", "pg-04"],
            &["4.1.5", "3.3.11", "4.1.5", "4.1.5"],
        );
        target.members[2]
            .tags
            .insert("nofailover".into(), Value::Bool(true));
        target.members[3]
            .tags
            .insert("replicatefrom".into(), Value::String("pg-02".into()));
        target.members[3]
            .tags
            .insert("datacenter".into(), Value::String("east".into()));
        let (spec, not_mirrored, _) = lab_spec(&target, Ipv4Addr::new(127, 0, 0, 171), None);
        assert_eq!(spec.members, 4);
        assert_eq!(spec.patroni_version, Version::new(4, 1, 5));
        assert_eq!(spec.dcs, LabDcs::Consul);
        assert_eq!(spec.scope, "main");
        assert_eq!(spec.mirror.names, ["pg-01", "pg-02", "pg-03", "pg-04"]);
        assert_eq!(
            spec.mirror.releases,
            BTreeMap::from([("pg-02".to_string(), Version::new(3, 3, 11))])
        );
        assert_eq!(spec.mirror.tags["pg-03"]["nofailover"], true);
        assert_eq!(spec.mirror.tags["pg-04"]["replicatefrom"], "pg-02");
        assert!(!spec.mirror.no_consul_services);
        target.consul_services = Some(false);
        let (quiet, _, _) = lab_spec(&target, Ipv4Addr::new(127, 0, 0, 171), None);
        assert!(
            quiet.mirror.no_consul_services,
            "register_service: false mirrored"
        );
        target.consul_services = Some(true);
        assert!(spec.check().is_ok(), "{:?}", spec.check());
        let said = not_mirrored.join("\n");
        assert!(!said.contains("member names"), "{said}");
        assert!(said.contains("pg-04's tag datacenter"), "{said}");
        assert!(
            said.contains("PostgreSQL 16: the lab runs PostgreSQL 15"),
            "{said}"
        );

        // A host in the inventory, not in the cluster: the lab's spare, last.
        target.members.insert(
            0,
            MemberShape {
                name: "pg-00".into(),
                spare: true,
                role: None,
                patroni: None,
                tags: BTreeMap::new(),
            },
        );
        let (spec, _, _) = lab_spec(&target, Ipv4Addr::new(127, 0, 0, 171), None);
        assert_eq!((spec.members, spec.spares), (4, 1));
        assert_eq!(spec.mirror.names.last().map(String::as_str), Some("pg-00"));
        assert!(spec.check().is_ok(), "{:?}", spec.check());
        assert!(
            said.contains("the database's size (470.0 MiB): the lab's is nearly empty"),
            "{said}"
        );
    }

    #[test]
    fn names_the_lab_cannot_take_are_said_and_tags_follow_the_lab_names() {
        let mut target = shape(&["db 1", "db-2"], &["4.1.5", "4.1.5"]);
        target.members[1]
            .tags
            .insert("replicatefrom".into(), Value::String("db 1".into()));
        let (spec, not_mirrored, _) = lab_spec(&target, Ipv4Addr::new(127, 0, 0, 171), None);
        assert!(spec.mirror.names.is_empty());
        assert_eq!(spec.mirror.tags["node2"]["replicatefrom"], "node1");
        assert!(
            not_mirrored[0].starts_with("member names (db 1, db-2)"),
            "{not_mirrored:?}"
        );
    }

    #[test]
    fn a_standby_cluster_is_mirrored_by_the_labs_standby_cluster_behind_a_one_member_site() {
        let mut target = shape(&["pg-geo-b", "pg-geo-a"], &["4.1.5", "3.3.11"]);
        target.standby = true;
        target.follows = Some(Followed {
            cluster: "main".into(),
            members: 3,
        });
        target.backup_tool = Some("WAL-G".into());
        target.members[0]
            .tags
            .insert("nofailover".into(), Value::Bool(true));
        target.members[0]
            .tags
            .insert("replicatefrom".into(), Value::String("pg-geo-a".into()));
        target.members.push(MemberShape {
            name: "pg-geo-c".into(),
            spare: true,
            role: None,
            patroni: None,
            tags: BTreeMap::new(),
        });
        let (spec, not_mirrored, _) = lab_spec(&target, Ipv4Addr::new(127, 0, 1, 11), None);
        assert_eq!((spec.members, spec.spares, spec.standby_members), (1, 0, 2));
        assert_eq!(spec.scope, "main", "the primary site's name");
        // Sorted by name: pg-geo-a is geo1, pg-geo-b geo2.
        assert_eq!(
            spec.mirror.releases,
            BTreeMap::from([("geo1".to_string(), Version::new(3, 3, 11))])
        );
        assert_eq!(spec.mirror.tags["geo2"]["nofailover"], true);
        assert_eq!(spec.mirror.tags["geo2"]["replicatefrom"], "geo1");
        assert!(spec.mirror.names.is_empty());
        assert!(spec.check().is_ok(), "{:?}", spec.check());
        let said = not_mirrored.join("\n");
        for expected in [
            "member names (pg-geo-a, pg-geo-b): the lab names them geo1, geo2",
            "pg-geo-c: a host in the inventory, not in the cluster; the lab's standby cluster has no spare",
            "the primary site (main, 3 members): the lab's standby cluster follows a one-member primary cluster, main,",
            "backups made with WAL-G: the lab's are pgBackRest's",
        ] {
            assert!(said.contains(expected), "{expected}\n{said}");
        }
        assert!(!said.contains("a standby cluster:"), "{said}");

        // A followed site named like the lab's standby cluster: the primary is `primary`.
        target.follows = None;
        target.backup_tool = Some("pgBackRest".into());
        target.members.truncate(2);
        target.members[0].name = "geo1".into();
        target.members[1].name = "geo2".into();
        target.members[0].tags.clear();
        let (spec, not_mirrored, _) = lab_spec(&target, Ipv4Addr::new(127, 0, 1, 11), None);
        assert_eq!(spec.scope, "primary");
        let said = not_mirrored.join("\n");
        assert!(!said.contains("member names"), "{said}");
        assert!(!said.contains("backups"), "{said}");
    }

    #[test]
    fn the_lab_is_asked_with_its_own_names_for_the_members_and_the_cluster_typed() {
        let mut target = shape(&["db 2", "db 1"], &["4.1.5", "4.1.5"]);
        target.cluster = "main-db".into();
        let (_, _, renames) = lab_spec(&target, Ipv4Addr::new(127, 0, 0, 171), None);
        let asked = Params::Reinit(crate::runbooks::reinit::Params {
            member: "db 2".into(),
            timeout: None,
            max_lag: 7,
        });
        let Params::Reinit(lab) = renames.params(&asked) else {
            panic!("still a reinit");
        };
        assert_eq!((lab.member.as_str(), lab.max_lag), ("node2", 7));
        let options = RunOptions {
            dry_run: false,
            format: crate::runner::PlanFormat::Text,
            assume_yes: true,
            confirm: vec!["main-db".into(), "db 1".into(), "other".into()],
            done: Vec::new(),
        };
        assert_eq!(
            renames.options(&options).confirm,
            ["main", "node1", "other"],
            "the typed names become the lab's; anything else stays, for the gate to refuse"
        );

        // A standby cluster: the lab's `geo`, its members geo1, ….
        target.standby = true;
        target.members[0].name = "geo-b".into();
        target.members[1].name = "geo-a".into();
        let (_, _, renames) = lab_spec(&target, Ipv4Addr::new(127, 0, 1, 11), None);
        assert_eq!(
            renames,
            Renames(BTreeMap::from([
                ("geo-a".to_string(), "geo1".to_string()),
                ("geo-b".to_string(), "geo2".to_string()),
                ("main-db".to_string(), "geo".to_string()),
            ]))
        );
    }

    #[test]
    fn scale_is_a_share_filled_in_pgbench_units() {
        let scale = Scale::parse("0.1").unwrap();
        assert_eq!(scale.pgbench_units(300 << 20), 2);
        assert_eq!(scale.pgbench_units(1), 1);
        assert_eq!(
            Scale::parse("1").unwrap().pgbench_units(1 << 40),
            MAX_PGBENCH_UNITS
        );
        for bad in ["0", "-1", "1.5", "x", "NaN"] {
            assert!(Scale::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn faults_are_kind_at_step() {
        assert_eq!(
            Fault::parse("kill-leader@switchover").unwrap(),
            Fault {
                kind: FaultKind::KillLeader,
                at: "switchover".into()
            }
        );
        assert!(Fault::parse("dcs-down@wait-streaming").is_ok());
        assert!(
            Fault::parse("reboot@x")
                .unwrap_err()
                .contains("kill-leader, dcs-down, ssh-drop, pgha-kill")
        );
        assert!(
            Fault::parse("kill-leader")
                .unwrap_err()
                .contains("KIND@STEP")
        );
        assert!(Fault::parse("kill-leader@a;b").is_err());
    }

    #[test]
    fn a_journal_gives_each_steps_time_and_the_gates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.jsonl");
        std::fs::write(
            &path,
            [
                r#"{"at":"x","event":"run_started","run_id":"r1"}"#,
                r#"{"at":"x","event":"gate_answered","step":"switchover","answer":true,"by":"--yes"}"#,
                r#"{"at":"x","event":"step_succeeded","step":"switchover","duration_ms":2500}"#,
                r#"{"at":"2026-12-03T10:00:00.000Z","event":"step_started","step":"wait"}"#,
                r#"{"at":"2026-12-03T10:02:00.500Z","event":"step_failed","step":"wait","reason":"r"}"#,
                r#"{"at":"2026-12-03T10:03:00.000Z","event":"step_started","step":"rejoin"}"#,
                r#"{"at":"2026-12-03T10:03:01.500Z","event":"observed","step":"rejoin"}"#,
                r#"{"at":"2026-12-03T10:03:30.000Z","event":"run_resumed"}"#,
                r#"{"at":"x","event":"run_finished","outcome":"succeeded","duration_ms":3100}"#,
            ]
            .join("\n"),
        )
        .unwrap();
        let mut report = Report {
            runbook: "switchover".into(),
            target: shape(&["node1"], &["4.1.5"]),
            lab: String::new(),
            not_mirrored: Vec::new(),
            target_structure: "a".into(),
            lab_structure: "a".into(),
            same_structure: true,
            run_id: None,
            outcome: String::new(),
            seconds: None,
            steps: Vec::new(),
            gates: Vec::new(),
            faults: Vec::new(),
            resumes: Vec::new(),
            lab_at_end: "leader node1".into(),
        };
        read_journal(&path, &mut report);
        assert_eq!(report.run_id.as_deref(), Some("r1"));
        assert!((report.steps[0].seconds - 2.5).abs() < 1e-9);
        assert!(
            (report.steps[1].seconds - 120.5).abs() < 1e-9,
            "{:?}",
            report.steps
        );
        assert_eq!(report.gates, ["switchover: yes (--yes)"]);
        let interrupted = &report.steps[2];
        assert_eq!(
            (interrupted.step.as_str(), interrupted.outcome.as_str()),
            ("rejoin", "interrupted")
        );
        assert!(
            (interrupted.seconds - 1.5).abs() < 1e-9,
            "until the dead run's last line, not the resume: {:?}",
            report.steps
        );
        let text = markdown(&report);
        assert!(
            text.contains("| switchover | succeeded | 2.5 s |"),
            "{text}"
        );
        assert!(text.contains("succeeded in 3.1 s"), "{text}");
    }
}
