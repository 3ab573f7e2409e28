//! `pgha rehearse --like [ENV/]CLUSTER RUNBOOK …`: a runbook run first on a lab shaped like the
//! cluster it will run on. The target is only read: its members, releases, DCS, standby or not,
//! timing settings, database size. A lab of that shape is started (its own addresses and
//! directory), the target's timing settings written into its dynamic configuration, and what
//! could not be mirrored said. The runbook is planned against both: their structures'
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
use crate::lab::{LabDcs, LabSpec};
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
}

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
}

/// How long `dcs-down` keeps the DCS away: shorter than the lab's `ttl` (20 s) would ride it
/// out unseen; this one outlasts it.
const DCS_OUTAGE: Duration = Duration::from_secs(25);

impl Fault {
    /// `KIND@STEP`.
    pub fn parse(text: &str) -> Result<Fault, String> {
        let (kind, at) = text
            .split_once('@')
            .ok_or_else(|| format!("{text:?} is not KIND@STEP (kill-leader@switchover)"))?;
        let kind = match kind {
            "kill-leader" => FaultKind::KillLeader,
            "dcs-down" => FaultKind::DcsDown,
            other => {
                return Err(format!(
                    "{other:?} is not a fault pgha injects (kill-leader, dcs-down)"
                ));
            }
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
    pub settings: BTreeMap<String, Value>,
    pub database_bytes: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct MemberShape {
    pub name: String,
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
    pub lab_at_end: String,
}

pub async fn rehearse(request: Request) -> Result<Exit, Error> {
    // The target: read only, planned as its dry-run plans it.
    let target = Connection::open(&request.target).await?.into_live()?;
    let view = target.observe().await?;
    let shape = shape_of(&target, &view).await;
    let target_plan = planned(&target, &view, &request.params).await?;

    let (spec, not_mirrored) = lab_spec(&shape, request.first_address);
    eprintln!(
        "rehearse: a lab like {}/{} in {} ({} members from {})",
        shape.environment,
        shape.cluster,
        request.lab_dir.display(),
        spec.members,
        spec.first_address
    );
    let started = crate::lab::start(&request.lab_dir, spec, Duration::from_mins(3)).await?;
    if started != Exit::Success {
        return Ok(started);
    }
    let lab_selector = Selector {
        config: Some(request.lab_dir.join(crate::inventory::FILE_NAME)),
        environment: Some("lab".into()),
        ..Selector::default()
    };
    let lab = Connection::open(&lab_selector).await?.into_live()?;
    mirror_settings(&lab, &shape).await?;
    let lab_view = mirror_leader(&lab, &shape, lab.observe().await?).await?;
    let lab_plan = planned(&lab, &lab_view, &request.params).await?;
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
    let run = runner::run(&lab_selector, request.params.clone(), request.options);
    let inject = inject_faults(&request.lab_dir, &lab, &runs, &before, &request.faults);
    let (exit, injected) = tokio::join!(run, inject);
    let journal = journals(&runs)
        .into_iter()
        .filter(|path| !before.contains(path))
        .max();
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
    Ok(runner::prepare(cluster, &cluster.target, &params)
        .await?
        .plan)
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
        standby: target.target.standby,
        settings,
        database_bytes,
    }
}

/// The lab that mirrors `shape`, and what it cannot mirror.
fn lab_spec(shape: &Shape, first_address: Ipv4Addr) -> (LabSpec, Vec<String>) {
    let mut not_mirrored = Vec::new();
    let count = shape.members.len().clamp(1, 9);
    if shape.members.len() > 9 {
        not_mirrored.push(format!(
            "{} members: the lab runs at most 9",
            shape.members.len()
        ));
    }
    let lab_names: Vec<String> = (1..=count).map(|n| format!("node{n}")).collect();
    let names: Vec<&str> = shape.members.iter().map(|m| m.name.as_str()).collect();
    if names != lab_names.iter().map(String::as_str).collect::<Vec<_>>() {
        not_mirrored.push(format!(
            "member names: the lab's are {} (plans are compared with members named by their place)",
            lab_names.join(", ")
        ));
    }
    let releases: Vec<Version> = shape
        .members
        .iter()
        .filter_map(|member| member.patroni.as_deref()?.parse().ok())
        .collect();
    let release = releases.iter().max().copied().unwrap_or_else(|| {
        crate::lab::DEFAULT_PATRONI_VERSION
            .parse()
            .unwrap_or(Version::new(4, 1, 5))
    });
    if releases.iter().any(|other| *other != release) {
        not_mirrored.push(format!(
            "mixed Patroni releases: every lab member runs {release}"
        ));
    }
    if let Some(major) = shape.postgres_major
        && major != LAB_POSTGRES_MAJOR
    {
        not_mirrored.push(format!(
            "PostgreSQL {major}: the lab runs PostgreSQL {LAB_POSTGRES_MAJOR}"
        ));
    }
    let tagged: Vec<String> = shape
        .members
        .iter()
        .filter(|member| !member.tags.is_empty())
        .map(|member| {
            let tags: Vec<&str> = member.tags.keys().map(String::as_str).collect();
            format!("{} ({})", member.name, tags.join(", "))
        })
        .collect();
    if !tagged.is_empty() {
        not_mirrored.push(format!("tags: {}", tagged.join("; ")));
    }
    if shape.standby {
        not_mirrored.push("a standby cluster: the lab's cluster is a primary one".into());
    }
    if let Some(bytes) = shape.database_bytes {
        not_mirrored.push(format!(
            "the database's size ({}): the lab's is its own",
            crate::ui::human_bytes(bytes)
        ));
    }
    let spec = LabSpec {
        members: u8::try_from(count).unwrap_or(9),
        spares: 0,
        patroni_version: release,
        tls: false,
        scope: shape.scope.clone(),
        first_address,
        dcs: if shape.dcs == "consul" {
            LabDcs::Consul
        } else {
            LabDcs::Etcd
        },
        etcd_members: 1,
        standby_members: 0,
    };
    (spec, not_mirrored)
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

/// Watches the run's journal; as each fault's step starts, injects the fault on the lab. Ends
/// with the run (its journal's `run_finished`), or at once without faults.
async fn inject_faults(
    lab_dir: &Path,
    lab: &crate::exec::LiveCluster,
    runs: &Path,
    before: &[PathBuf],
    faults: &[Fault],
) -> Vec<Injected> {
    let mut pending: Vec<&Fault> = faults.iter().collect();
    let mut injected = Vec::new();
    let started = std::time::Instant::now();
    // Bounded: no rehearsal waits longer than a day.
    while !pending.is_empty() && started.elapsed() < Duration::from_hours(24) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Some(journal) = journals(runs)
            .into_iter()
            .filter(|path| !before.contains(path))
            .max()
        else {
            continue;
        };
        let text = std::fs::read_to_string(&journal).unwrap_or_default();
        let events: Vec<Value> = text
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect();
        let mut due = Vec::new();
        pending.retain(|fault| {
            let started_step = events.iter().find_map(|event| {
                let step = event["step"].as_str()?;
                (event["event"] == "step_started" && step.starts_with(&fault.at))
                    .then(|| step.to_string())
            });
            match started_step {
                Some(step) => {
                    due.push(((*fault).clone(), step));
                    false
                }
                None => true,
            }
        });
        for (fault, step) in due {
            let what = inject(lab_dir, lab, fault.kind).await;
            eprintln!("rehearse: fault {:?} at {step}: {what}", fault.kind);
            injected.push(Injected {
                fault: format!("{}@{}", kind_name(fault.kind), fault.at),
                step,
                seconds_into_run: started.elapsed().as_secs_f64(),
                what,
            });
        }
        if events.iter().any(|event| event["event"] == "run_finished") {
            for fault in pending.drain(..) {
                injected.push(Injected {
                    fault: format!("{}@{}", kind_name(fault.kind), fault.at),
                    step: String::new(),
                    seconds_into_run: started.elapsed().as_secs_f64(),
                    what: "not injected: no step with that name started".into(),
                });
            }
        }
    }
    injected
}

fn kind_name(kind: FaultKind) -> &'static str {
    match kind {
        FaultKind::KillLeader => "kill-leader",
        FaultKind::DcsDown => "dcs-down",
    }
}

async fn inject(lab_dir: &Path, lab: &crate::exec::LiveCluster, kind: FaultKind) -> String {
    use crate::lab::{Killed, LabCommand, MemberAction};
    match kind {
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
) -> Result<ClusterView, Error> {
    let mut target_names: Vec<&str> = shape.members.iter().map(|m| m.name.as_str()).collect();
    target_names.sort_unstable();
    let Some(place) = shape
        .members
        .iter()
        .find(|member| member.role.as_deref() == Some("leader"))
        .and_then(|leader| target_names.iter().position(|name| *name == leader.name))
    else {
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
                member.is_leader() || member.state() == Some(crate::patroni::MemberState::Streaming)
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
    for line in text.lines() {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let seconds = |event: &Value| event["duration_ms"].as_f64().map(|ms| ms / 1000.0);
        let step = event["step"].as_str().unwrap_or_default().to_string();
        match event["event"].as_str() {
            Some("run_started") => report.run_id = event["run_id"].as_str().map(String::from),
            Some("step_started") => {
                if let Some(at) = at(&event) {
                    started.insert(step, at);
                }
            }
            Some("step_succeeded" | "step_failed" | "step_skipped") => {
                // A failed step's event has no duration: from its start to its end.
                let measured = seconds(&event).or_else(|| {
                    let span = at(&event)?.duration_since(*started.get(&step)?);
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
                report.seconds = seconds(&event);
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
        .map(|member| {
            format!(
                "{} ({}, Patroni {})",
                member.name,
                member.role.as_deref().unwrap_or("?"),
                member.patroni.as_deref().unwrap_or("?")
            )
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
                    role: None,
                    patroni: Some((*release).into()),
                    tags: BTreeMap::new(),
                })
                .collect(),
            postgres_major: Some(16),
            dcs: "consul".into(),
            standby: false,
            settings: BTreeMap::new(),
            database_bytes: Some(470 << 20),
        }
    }

    #[test]
    fn the_lab_takes_the_shape_and_says_what_it_cannot() {
        let target = shape(
            &["pg-01", "pg-02", "pg-03", "pg-04"],
            &["4.1.5", "3.3.11", "4.1.5", "4.1.5"],
        );
        let (spec, not_mirrored) = lab_spec(&target, Ipv4Addr::new(127, 0, 0, 171));
        assert_eq!(spec.members, 4);
        assert_eq!(spec.patroni_version, Version::new(4, 1, 5));
        assert_eq!(spec.dcs, LabDcs::Consul);
        assert_eq!(spec.scope, "main");
        let said = not_mirrored.join("\n");
        assert!(
            said.contains("member names: the lab's are node1, node2, node3, node4"),
            "{said}"
        );
        assert!(
            said.contains("mixed Patroni releases: every lab member runs 4.1.5"),
            "{said}"
        );
        assert!(
            said.contains("PostgreSQL 16: the lab runs PostgreSQL 15"),
            "{said}"
        );
        assert!(said.contains("the database's size (470.0 MiB)"), "{said}");
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
                .contains("kill-leader, dcs-down")
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
        let text = markdown(&report);
        assert!(
            text.contains("| switchover | succeeded | 2.5 s |"),
            "{text}"
        );
        assert!(text.contains("succeeded in 3.1 s"), "{text}");
    }
}
