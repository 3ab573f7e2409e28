//! The lab: a real Patroni cluster on this machine — real etcd, real Patroni from PyPI, real
//! PostgreSQL 15, a real sshd — with one loopback address per member (node1 = 127.0.0.11, …) and
//! the production ports on each. It is the demo, the integration tests' cluster and the
//! rehearsal sandbox for runbooks; with `--standby-cluster`, a second cluster `geo` follows it
//! from its WAL archive. `up` is idempotent; every daemon is tracked by a PID file and stopped
//! by that PID only. This file orchestrates; `daemons`, `health`, `report`, `files`, `layout`,
//! `pgbackrest`, `process`, `standby` and `venv` hold the parts.

mod daemons;
mod files;
mod health;
mod layout;
mod pgbackrest;
mod process;
mod rehearsal;
mod report;
mod standby;
mod venv;

use std::collections::BTreeMap;
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::exit::Exit;
use crate::patroni::Version;
use crate::ui::OutputFormat;
use daemons::{
    alertmanager_daemon, consul_daemon, etcd_daemons, member_daemon, sshd_daemon, start_and_listen,
    stop_orphaned_postgres,
};
use files::Passwords;
pub use health::waits_for_reinitialize;
use health::{Goal, wait_for_api, wait_for_etcd_leader, wait_until_healthy};
use layout::{EtcdMember, LabMember, LabState, Layout};
pub(crate) use layout::{own_member_name, standby_member_name};
use process::{Daemon, RunAs};
use report::{print_view_summary, status};

pub const DEFAULT_PATRONI_VERSION: &str = "4.1.5";

/// What a lab is made of. Recorded in `lab.json`; a later `up` must ask for the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabSpec {
    pub members: u8,
    pub spares: u8,
    pub patroni_version: Version,
    pub tls: bool,
    pub scope: String,
    pub first_address: Ipv4Addr,
    /// Labs recorded before Consul existed ran on etcd.
    #[serde(default)]
    pub dcs: LabDcs,
    /// etcd's members: 1, or 3 for quorum-loss drills. Labs recorded before ran one.
    #[serde(default = "one_etcd_member")]
    pub etcd_members: u8,
    /// Members of the standby cluster `geo` following this one from its pgBackRest WAL
    /// archive; 0: no standby cluster and no archiving (labs recorded before had none).
    #[serde(default)]
    pub standby_members: u8,
    /// What a rehearsal mirrors of the cluster it rehearses for (names, tags, releases); empty
    /// for a lab of its own (and labs recorded before).
    #[serde(default, skip_serializing_if = "Mirror::is_empty")]
    pub mirror: Mirror,
}

/// The lab's members as another cluster's: the primary cluster's names (in order, in place of
/// `node1`, …), and by the lab's name for a member of either cluster (`geo1` for the standby
/// cluster's first), the tags in its Patroni configuration and the Patroni release it starts
/// with when it is not the lab's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mirror {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub releases: BTreeMap<String, Version>,
    /// On Consul, Patroni registers no service (`register_service: false`), as the target's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_consul_services: bool,
}

impl Mirror {
    pub fn is_empty(&self) -> bool {
        self == &Mirror::default()
    }

    /// Names that are names, one per member (spares included); tags that are Patroni's scalars
    /// under plain keys (they are written into YAML); tags and releases of members the lab has
    /// (`lab_names`).
    fn check(&self, members: u8, lab_names: &[String]) -> Result<(), String> {
        if !self.names.is_empty() && self.names.len() != usize::from(members) {
            return Err(format!(
                "{} member names for {members} members",
                self.names.len()
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for name in &self.names {
            crate::names::check_name(name).map_err(|why| format!("member name {name:?}: {why}"))?;
            if name.starts_with(STANDBY_SCOPE) || !seen.insert(name) {
                return Err(format!("member name {name:?}: taken"));
            }
        }
        let known = |name: &String| lab_names.contains(name);
        for (member, tags) in &self.tags {
            if !known(member) {
                return Err(format!("tags of {member:?}: no such member"));
            }
            for (key, value) in tags {
                let plain = !key.is_empty()
                    && key
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                let scalar = value.is_boolean() || value.is_number() || value.is_string();
                if !plain || !scalar {
                    return Err(format!(
                        "tag {key:?} of {member}: a lowercase key and a boolean, number or string"
                    ));
                }
            }
        }
        match self.releases.keys().find(|member| !known(member)) {
            Some(member) => Err(format!("release of {member:?}: no such member")),
            None => Ok(()),
        }
    }
}

/// The standby cluster's scope and the prefix of its members' names.
pub const STANDBY_SCOPE: &str = "geo";

/// `--standby-members` when `--standby-cluster` is given alone.
pub const DEFAULT_STANDBY_MEMBERS: u8 = 2;

fn one_etcd_member() -> u8 {
    1
}

/// The etcd cluster sizes the lab runs.
pub const ETCD_MEMBER_COUNTS: [u8; 2] = [1, 3];

/// The DCS the lab's Patroni runs on: real etcd, or pgha's Consul double.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabDcs {
    #[default]
    Etcd,
    Consul,
}

impl LabDcs {
    pub fn as_str(self) -> &'static str {
        match self {
            LabDcs::Etcd => "etcd",
            LabDcs::Consul => "consul",
        }
    }
}

impl LabSpec {
    /// Addresses must stay inside 127.0.0.0/8 with room for etcd and sshd just below node1
    /// (and for etcd's other members below that).
    pub fn check(&self) -> Result<(), String> {
        let [first_octet, _, _, last_octet] = self.first_address.octets();
        if first_octet != 127 {
            return Err(format!(
                "--first-address {}: the lab lives on loopback (127.x.y.z)",
                self.first_address
            ));
        }
        if !ETCD_MEMBER_COUNTS.contains(&self.etcd_members) {
            return Err(format!(
                "--etcd-members {}: the lab runs 1 or 3 etcd members",
                self.etcd_members
            ));
        }
        if self.etcd_members != 1 && self.dcs != LabDcs::Etcd {
            return Err("--etcd-members goes with --dcs etcd only".into());
        }
        if self.etcd_members > 1 && last_octet <= self.etcd_members {
            return Err(format!(
                "--first-address {}: no room below it for {} etcd members (they take the {} addresses below the first member, down to .1): use a first address ending in .{} or higher",
                self.first_address,
                self.etcd_members,
                self.etcd_members,
                self.etcd_members + 1
            ));
        }
        let members =
            u16::from(self.members) + u16::from(self.spares) + u16::from(self.standby_members);
        if last_octet < 2 || u16::from(last_octet) + members > 255 {
            return Err(format!(
                "--first-address {}: no room for {members} members below .255 and the lab's own address below it",
                self.first_address,
            ));
        }
        if self.archives_wal() && self.scope == STANDBY_SCOPE {
            return Err(format!(
                "--scope {STANDBY_SCOPE}: that is the standby cluster's scope; choose another for the primary cluster"
            ));
        }
        if self.tls && self.dcs == LabDcs::Consul {
            // Consul's HTTP checks would need client certificates for a REST API that requires them.
            return Err("--tls and --dcs consul together are not supported by the lab".into());
        }
        // The names the lab gives its members (the mirrored ones, or its own), both clusters'.
        let names: Vec<String> = self.every_member().into_iter().map(|m| m.name).collect();
        self.mirror.check(self.members + self.spares, &names)
    }
}

#[derive(Debug)]
pub enum LabCommand {
    Up {
        spec: LabSpec,
        wait: Duration,
    },
    Down {
        wipe: bool,
    },
    Status {
        format: OutputFormat,
    },
    Member {
        action: MemberAction,
        name: String,
    },
    /// Start (`true`) or stop the DCS: every etcd member, or only `member` (1-based).
    Dcs {
        start: bool,
        member: Option<u8>,
    },
    /// Stop the lab's sshd and its sessions (`false`), or start it (`true`).
    Ssh {
        start: bool,
    },
}

pub use rehearsal::{PGBENCH_UNIT_BYTES, backup, fill};

#[derive(Debug, Clone, Copy)]
pub enum MemberAction {
    Start {
        patroni_version: Option<Version>,
    },
    Stop,
    /// SIGKILL: Patroni alone (PostgreSQL keeps running), the postmaster alone, or both (a
    /// crashed machine) — seed 003's drills.
    Kill(Killed),
    /// Everything in the data directory deleted while PostgreSQL runs on it (seed 003).
    WipeLive,
}

/// What `lab member kill` kills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Killed {
    Patroni,
    Postgres,
    Host,
}

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("{what} is missing: {hint}")]
    Missing { what: String, hint: String },
    #[error("cannot {what} {}: {reason}", .path.display())]
    Io {
        what: String,
        path: PathBuf,
        reason: String,
    },
    #[error("{what} failed: {output}")]
    ToolFailed { what: String, output: String },
    #[error("the lab in {} was created with {existing}; asked for {wanted}: run `pgha lab down --wipe` first or use another --dir", .dir.display())]
    SpecMismatch {
        dir: PathBuf,
        existing: String,
        wanted: String,
    },
    #[error("no lab in {} (start one with `pgha lab up`)", .dir.display())]
    NoLab { dir: PathBuf },
    #[error("the lab has no member {name:?} (members: {})", .known.join(", "))]
    UnknownMember { name: String, known: Vec<String> },
    #[error("{component} did not start:\n{log_tail}")]
    StartFailed { component: String, log_tail: String },
    #[error("the lab did not become healthy within {}: {summary}\n{log_tails}", humantime::format_duration(*waited))]
    NotHealthy {
        waited: Duration,
        summary: String,
        log_tails: String,
    },
    #[error("{0}")]
    Invalid(String),
    /// A request the lab cannot do as asked (bad input, exit 2).
    #[error("{0}")]
    Refused(String),
    #[error("cannot reach the lab's cluster: {0}")]
    Cluster(String),
}

impl LabError {
    pub(crate) fn io(what: &str, path: &Path, error: &std::io::Error) -> Self {
        LabError::Io {
            what: what.to_string(),
            path: path.to_path_buf(),
            reason: error.to_string(),
        }
    }

    pub fn exit(&self) -> Exit {
        match self {
            LabError::Missing { .. }
            | LabError::SpecMismatch { .. }
            | LabError::NoLab { .. }
            | LabError::UnknownMember { .. }
            | LabError::Refused(_) => Exit::BadInput,
            _ => Exit::Failed,
        }
    }
}

/// `/var/lib/pgha` for root; `$XDG_DATA_HOME/pgha` (or `~/.local/share/pgha`) otherwise.
pub fn state_root() -> PathBuf {
    if rustix::process::getuid().is_root() {
        return PathBuf::from("/var/lib/pgha");
    }
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|path| path.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share")))
        .unwrap_or_else(std::env::temp_dir)
        .join("pgha")
}

pub fn default_dir() -> PathBuf {
    state_root().join("lab")
}

pub async fn execute(dir: &Path, command: LabCommand) -> Result<Exit, LabError> {
    let layout = Layout::new(dir);
    match command {
        LabCommand::Up { spec, wait } => up(&layout, spec, wait, true).await,
        LabCommand::Down { wipe } => down(&layout, wipe),
        LabCommand::Status { format } => status(&layout, format),
        LabCommand::Member { action, name } => member(&layout, action, &name).await,
        LabCommand::Dcs { start, member } => dcs(&layout, start, member).await,
        LabCommand::Ssh { start } => rehearsal::ssh(&layout, start).await,
    }
}

/// `lab up` without the status table on stdout: for a command whose stdout is its own report
/// (a rehearsal).
pub async fn start(dir: &Path, spec: LabSpec, wait: Duration) -> Result<Exit, LabError> {
    up(&Layout::new(dir), spec, wait, false).await
}

/// Holds the lab's lock file for the duration of a command that changes the lab as a whole.
fn lock(layout: &Layout) -> Result<File, LabError> {
    hold(&layout.lock_file(), layout, LockKind::Exclusive)
}

/// Holds one member's lock, inside the lab's lock shared: commands on different members run
/// at once (a runbook stops every member in parallel, as systemd on separate hosts would),
/// commands on one member and `up`/`down` one at a time.
fn lock_member(layout: &Layout, name: &str) -> Result<(File, File), LabError> {
    let lab = hold(&layout.lock_file(), layout, LockKind::Shared)?;
    let member = hold(
        &layout.dir.join(format!(".lock-{name}")),
        layout,
        LockKind::Exclusive,
    )?;
    Ok((lab, member))
}

#[derive(Clone, Copy)]
enum LockKind {
    Shared,
    Exclusive,
}

fn hold(path: &Path, layout: &Layout, kind: LockKind) -> Result<File, LabError> {
    let file = File::create(path).map_err(|error| LabError::io("create", path, &error))?;
    let tried = match kind {
        LockKind::Shared => file.try_lock_shared(),
        LockKind::Exclusive => file.try_lock(),
    };
    if tried.is_err() {
        eprintln!(
            "lab: waiting for another pgha lab command on {}",
            layout.dir.display()
        );
        match kind {
            LockKind::Shared => file.lock_shared(),
            LockKind::Exclusive => file.lock(),
        }
        .map_err(|error| LabError::io("lock", path, &error))?;
    }
    Ok(file)
}

fn check_prerequisites(spec: &LabSpec) -> Result<(), LabError> {
    let mut required = vec![
        ("/usr/bin/etcd", "etcd (Debian etcd-server)"),
        ("/usr/sbin/sshd", "sshd (Debian openssh-server)"),
        (
            "/usr/bin/prometheus-alertmanager",
            "Alertmanager (Debian prometheus-alertmanager)",
        ),
        ("/usr/bin/ssh-keygen", "ssh-keygen (Debian openssh-client)"),
    ];
    let postgres = format!("{}/postgres", files::POSTGRES_BIN);
    required.push((&postgres, "PostgreSQL 15 (Debian postgresql-15)"));
    if spec.tls {
        required.push(("/usr/bin/openssl", "openssl"));
    }
    for (path, what) in required {
        if !Path::new(path).exists() {
            return Err(LabError::Missing {
                what: format!("{what} at {path}"),
                hint: "run scripts/install-deps.sh (as root)".into(),
            });
        }
    }
    Ok(())
}

fn describe(spec: &LabSpec) -> String {
    format!(
        "{} members + {} spare, Patroni {}, scope {}, from {}, {}{}{}{}{}",
        spec.members,
        spec.spares,
        spec.patroni_version,
        spec.scope,
        spec.first_address,
        spec.dcs.as_str(),
        if spec.etcd_members > 1 {
            format!(" ({} members)", spec.etcd_members)
        } else {
            String::new()
        },
        if spec.tls { ", TLS" } else { "" },
        if spec.archives_wal() {
            format!(
                ", standby cluster {STANDBY_SCOPE} of {} members",
                spec.standby_members
            )
        } else {
            String::new()
        },
        if spec.mirror.is_empty() {
            String::new()
        } else {
            format!(
                ", mirroring {}",
                serde_json::to_string(&spec.mirror).unwrap_or_default()
            )
        }
    )
}

async fn up(
    layout: &Layout,
    spec: LabSpec,
    wait: Duration,
    show_tables: bool,
) -> Result<Exit, LabError> {
    let deadline = Instant::now() + wait;
    // Every way in (`lab up`, a rehearsal's lab) is checked here, before anything is written:
    // addresses, names, and mirrored tags that go into YAML.
    spec.check().map_err(LabError::Refused)?;
    check_prerequisites(&spec)?;
    files::create_dir(&layout.dir, 0o755)?;
    let _lock = lock(layout)?;
    let state = match LabState::load(layout)? {
        Some(state) if state.spec != spec => {
            return Err(LabError::SpecMismatch {
                dir: layout.dir.clone(),
                existing: describe(&state.spec),
                wanted: describe(&spec),
            });
        }
        Some(state) => state,
        None => {
            // A mirrored member's release is where it starts; `member start` may change it.
            let state = LabState {
                spec: spec.clone(),
                member_versions: spec.mirror.releases.clone(),
            };
            state.save(layout)?;
            state
        }
    };
    let run_as = RunAs::detect()?;
    prepare_files(layout, &state, run_as)?;

    let mut started = start_dcs(layout, &spec).await?;
    let sshd = sshd_daemon(layout);
    if sshd.running_pid().is_none() {
        eprintln!(
            "lab: starting sshd on port {} of every lab address",
            files::SSH_PORT
        );
        if run_as.is_root_caller {
            // sshd refuses to start without its privilege separation directory.
            files::create_dir(Path::new("/run/sshd"), 0o755)?;
        }
        start_and_listen(&sshd, (spec.infrastructure_address(), files::SSH_PORT)).await?;
        started.push("sshd".to_string());
    }
    let alertmanager = alertmanager_daemon(layout, &spec);
    if alertmanager.running_pid().is_none() {
        eprintln!(
            "lab: starting Alertmanager on {}:{}",
            spec.infrastructure_address(),
            files::ALERTMANAGER_PORT
        );
        start_and_listen(
            &alertmanager,
            (spec.infrastructure_address(), files::ALERTMANAGER_PORT),
        )
        .await?;
        started.push("alertmanager".to_string());
    }
    for member in spec.all_members().iter().filter(|member| !member.spare) {
        let daemon = member_daemon(layout, &state, member, run_as);
        if daemon.running_pid().is_none() {
            eprintln!(
                "lab: starting {} (Patroni {}) on {}",
                member.name,
                state.version_of(&member.name),
                member.address
            );
            daemon.start()?;
            started.push(member.name.clone());
        }
    }
    let view = wait_until_healthy(layout, &state, run_as, Goal::PrimaryHealthy, wait).await?;
    let standby_view = match (&view.leader, spec.archives_wal()) {
        (Some(leader), true) => {
            let remaining = deadline.saturating_duration_since(Instant::now());
            Some(standby::up(layout, &state, run_as, leader, remaining, &mut started).await?)
        }
        _ => None,
    };
    if started.is_empty() {
        eprintln!("lab: already up, nothing to do");
    } else {
        eprintln!("lab: up (started {})", started.join(", "));
    }
    if !show_tables {
        return Ok(Exit::Success);
    }
    eprintln!("lab: try `pgha --env lab status`");
    print_view_summary(&view)?;
    if let Some(standby_view) = standby_view {
        eprintln!("lab: and `pgha --env lab status --cluster {STANDBY_SCOPE}`");
        print_view_summary(&standby_view)?;
    }
    Ok(Exit::Success)
}

/// Starts whatever of the DCS does not run; returns the names of the daemons it started. etcd's
/// members start together (each waits for its peers), then the lab waits for a leader:
/// Patroni must not start against a cluster that cannot answer yet.
async fn start_dcs(layout: &Layout, spec: &LabSpec) -> Result<Vec<String>, LabError> {
    match spec.dcs {
        LabDcs::Consul => {
            let daemon = consul_daemon(layout, spec)?;
            if daemon.running_pid().is_some() {
                return Ok(Vec::new());
            }
            let address = (spec.infrastructure_address(), files::CONSUL_PORT);
            eprintln!(
                "lab: starting {} on {}:{}",
                daemon.name, address.0, address.1
            );
            start_and_listen(&daemon, address).await?;
            Ok(vec![daemon.name])
        }
        LabDcs::Etcd => {
            let etcd = etcd_daemons(layout, spec);
            let stopped: Vec<&(EtcdMember, Daemon)> = etcd
                .iter()
                .filter(|(_, daemon)| daemon.running_pid().is_none())
                .collect();
            if stopped.is_empty() {
                return Ok(Vec::new());
            }
            start_etcd_members(&stopped).await?;
            let waited = wait_for_etcd_leader(&etcd, ETCD_LEADER_WAIT).await?;
            if etcd.len() > 1 {
                eprintln!(
                    "lab: etcd has a leader ({:.1}s after its members started)",
                    waited.as_secs_f64()
                );
            }
            Ok(stopped
                .iter()
                .map(|(_, daemon)| daemon.name.clone())
                .collect())
        }
    }
}

/// How long a starting etcd cluster may take to elect a leader.
const ETCD_LEADER_WAIT: Duration = Duration::from_secs(30);

/// Starts these etcd members concurrently and waits until each listens.
async fn start_etcd_members(members: &[&(EtcdMember, Daemon)]) -> Result<(), LabError> {
    for (member, daemon) in members {
        files::create_dir(&daemon.working_dir, 0o700)?;
        eprintln!(
            "lab: starting {} on {}:{}",
            daemon.name,
            member.address,
            files::ETCD_CLIENT_PORT
        );
    }
    futures::future::try_join_all(members.iter().map(|(member, daemon)| {
        start_and_listen(daemon, (member.address, files::ETCD_CLIENT_PORT))
    }))
    .await?;
    Ok(())
}

/// `pgha lab dcs stop|start [--member N]`: takes the DCS away from Patroni (the leader demotes
/// itself after `ttl`) and gives it back, for rehearsing an outage — all of it, or one etcd
/// member (two of three stopped: quorum lost). Members are left as they are.
async fn dcs(layout: &Layout, start: bool, member: Option<u8>) -> Result<Exit, LabError> {
    let _lock = lock(layout)?;
    let state = LabState::load(layout)?.ok_or_else(|| LabError::NoLab {
        dir: layout.dir.clone(),
    })?;
    let spec = &state.spec;
    if let Some(number) = member {
        check_etcd_member(spec, number)?;
    }
    match (spec.dcs, start) {
        (LabDcs::Consul, true) => {
            if start_dcs(layout, spec).await?.is_empty() {
                eprintln!("lab: consul already runs");
            }
        }
        (LabDcs::Consul, false) => {
            let daemon = consul_daemon(layout, spec)?;
            stop_dcs_daemons(&[&daemon])?;
        }
        (LabDcs::Etcd, true) => start_etcd(layout, spec, member).await?,
        (LabDcs::Etcd, false) => {
            let etcd = etcd_daemons(layout, spec);
            let chosen: Vec<&Daemon> = etcd
                .iter()
                .filter(|(etcd_member, _)| member.is_none_or(|number| etcd_member.number == number))
                .map(|(_, daemon)| daemon)
                .collect();
            stop_dcs_daemons(&chosen)?;
            if etcd.len() > 1 {
                let running = etcd
                    .iter()
                    .filter(|(_, daemon)| daemon.running_pid().is_some())
                    .count();
                eprintln!("lab: {}", etcd_quorum_note(running, etcd.len()));
            }
        }
    }
    Ok(Exit::Success)
}

/// `--member N` names one of the lab's etcd members.
fn check_etcd_member(spec: &LabSpec, number: u8) -> Result<(), LabError> {
    if spec.dcs != LabDcs::Etcd {
        return Err(LabError::Refused(format!(
            "--member {number}: the lab runs the {} double, not etcd; `pgha lab dcs` takes --member on etcd labs only",
            spec.dcs.as_str()
        )));
    }
    if number == 0 || number > spec.etcd_members {
        return Err(LabError::Refused(format!(
            "--member {number}: the lab runs {} etcd member{} (1..={})",
            spec.etcd_members,
            if spec.etcd_members == 1 { "" } else { "s" },
            spec.etcd_members
        )));
    }
    Ok(())
}

/// Where the etcd cluster stands after members stopped or started.
fn etcd_quorum_note(running: usize, members: usize) -> String {
    let majority = members / 2 + 1;
    if running >= majority {
        format!("{running} of {members} etcd members run: etcd keeps its quorum ({majority})")
    } else {
        format!(
            "{running} of {members} etcd members run: quorum ({majority}) lost, Patroni cannot renew its leader key and the leader demotes itself after ttl"
        )
    }
}

/// Starts every etcd member, or one: with a majority running again it waits (bounded) for a
/// leader, else it says a quorum is still missing.
async fn start_etcd(layout: &Layout, spec: &LabSpec, member: Option<u8>) -> Result<(), LabError> {
    let Some(number) = member else {
        if start_dcs(layout, spec).await?.is_empty() {
            eprintln!("lab: etcd already runs");
        }
        return Ok(());
    };
    let etcd = etcd_daemons(layout, spec);
    let Some(chosen) = etcd
        .iter()
        .find(|(etcd_member, _)| etcd_member.number == number)
    else {
        return Err(LabError::Refused(format!(
            "--member {number}: no such etcd member"
        )));
    };
    if let Some(pid) = chosen.1.running_pid() {
        eprintln!("lab: {} already runs (pid {pid})", chosen.1.name);
        return Ok(());
    }
    start_etcd_members(&[chosen]).await?;
    let running = etcd
        .iter()
        .filter(|(_, daemon)| daemon.running_pid().is_some())
        .count();
    if running > etcd.len() / 2 {
        let waited = wait_for_etcd_leader(&etcd, ETCD_LEADER_WAIT).await?;
        eprintln!(
            "lab: started {}; {running} of {} etcd members run and etcd has a leader ({:.1}s)",
            chosen.1.name,
            etcd.len(),
            waited.as_secs_f64()
        );
    } else {
        eprintln!(
            "lab: started {}; {}",
            chosen.1.name,
            etcd_quorum_note(running, etcd.len())
        );
    }
    Ok(())
}

/// SIGTERM to each running daemon first, then wait for each (SIGKILL after 20 s): by PID only.
fn stop_dcs_daemons(daemons: &[&Daemon]) -> Result<(), LabError> {
    let mut stopping = Vec::new();
    for daemon in daemons {
        match daemon.running_pid() {
            None => eprintln!("lab: {} is not running", daemon.name),
            Some(pid) => {
                process::signal(pid, rustix::process::Signal::TERM)?;
                stopping.push((daemon, pid));
            }
        }
    }
    for (daemon, pid) in stopping {
        if !daemon.stop(Duration::from_secs(20))? {
            daemon.kill()?;
        }
        eprintln!("lab: stopped {} (pid {pid})", daemon.name);
    }
    Ok(())
}

/// Writes every generated file. Cheap and idempotent, so every `up` rewrites them: a lab dir
/// from an older pgha picks up new settings.
fn prepare_files(layout: &Layout, state: &LabState, run_as: RunAs) -> Result<(), LabError> {
    let spec = &state.spec;
    let mut versions: Vec<Version> = vec![spec.patroni_version];
    versions.extend(state.member_versions.values().copied());
    versions.sort();
    versions.dedup();
    for version in versions {
        venv::ensure(version)?;
    }
    let passwords = Passwords::ensure(layout)?;
    files::ensure_ssh_keys(layout)?;
    files::write_alertmanager_config(layout)?;
    files::write_sshd_config(layout, spec)?;
    if spec.tls {
        files::ensure_tls(layout, spec, run_as)?;
    }
    for member in spec.etcd_members() {
        files::create_dir(&layout.etcd_member(member.number), 0o700)?;
    }
    files::create_dir(&layout.consul(), 0o700)?;
    files::create_dir(&layout.dir.join("members"), 0o755)?;
    for member in spec.every_member() {
        write_member_config(layout, spec, &member, &passwords, run_as)?;
    }
    if spec.archives_wal() {
        check_pgbackrest()?;
        pgbackrest::write_shared_files(layout, run_as)?;
        for member in spec.every_member() {
            pgbackrest::write_member_files(layout, spec, &member, run_as)?;
        }
    }
    // The lab's service control runs this binary on the hosts (they are this machine).
    let pgha = std::env::current_exe()
        .map_err(|error| LabError::io("locate", Path::new("pgha"), &error))?;
    files::write_file(
        &layout.inventory(),
        &files::inventory(layout, spec, &pgha),
        0o644,
    )
}

/// The standby cluster follows the primary through pgBackRest's archive.
fn check_pgbackrest() -> Result<(), LabError> {
    if Path::new(pgbackrest::PROGRAM).exists() {
        return Ok(());
    }
    Err(LabError::Missing {
        what: format!(
            "pgBackRest at {} (for --standby-cluster)",
            pgbackrest::PROGRAM
        ),
        hint: "run scripts/install-deps.sh (as root), or `apt-get install pgbackrest`".into(),
    })
}

fn write_member_config(
    layout: &Layout,
    spec: &LabSpec,
    member: &LabMember,
    passwords: &Passwords,
    run_as: RunAs,
) -> Result<(), LabError> {
    let dir = layout.member(&member.name);
    files::create_dir(&dir, 0o700)?;
    run_as.own(&dir)?;
    let config = layout.member_config(&member.name);
    files::write_file(
        &config,
        &files::patroni_config(layout, spec, member, passwords),
        0o600,
    )?;
    run_as.own(&config)
}

fn down(layout: &Layout, wipe: bool) -> Result<Exit, LabError> {
    if !layout.dir.exists() {
        eprintln!("lab: nothing in {}", layout.dir.display());
        return Ok(Exit::Success);
    }
    let lock_file = lock(layout)?;
    let run_as = RunAs::detect()?;
    let state = LabState::load(layout)?;
    if let Some(state) = &state {
        stop_members(layout, state, run_as)?;
    }
    let mut infrastructure = vec![sshd_daemon(layout)];
    if let Some(state) = &state {
        infrastructure.push(alertmanager_daemon(layout, &state.spec));
        infrastructure.extend(
            etcd_daemons(layout, &state.spec)
                .into_iter()
                .map(|(_, daemon)| daemon),
        );
        if let Ok(consul) = consul_daemon(layout, &state.spec) {
            infrastructure.push(consul);
        }
    }
    for daemon in infrastructure {
        if daemon.running_pid().is_some() {
            eprintln!("lab: stopping {}", daemon.name);
            if !daemon.stop(Duration::from_secs(20))? {
                daemon.kill()?;
            }
        }
    }
    drop(lock_file);
    if wipe {
        std::fs::remove_dir_all(&layout.dir)
            .map_err(|error| LabError::io("remove", &layout.dir, &error))?;
        eprintln!("lab: wiped {}", layout.dir.display());
    } else {
        eprintln!(
            "lab: down (data kept in {}; `pgha lab up` restarts it)",
            layout.dir.display()
        );
    }
    Ok(Exit::Success)
}

/// SIGTERM to every Patroni first, then wait: members stop in parallel. A paused cluster's
/// Patroni leaves PostgreSQL running, and so does a killed one: stop those too.
fn stop_members(layout: &Layout, state: &LabState, run_as: RunAs) -> Result<(), LabError> {
    let members = state.spec.every_member();
    let daemons: Vec<Daemon> = members
        .iter()
        .map(|member| member_daemon(layout, state, member, run_as))
        .collect();
    for daemon in &daemons {
        if let Some(pid) = daemon.running_pid() {
            eprintln!("lab: stopping {} (pid {pid})", daemon.name);
            process::signal(pid, rustix::process::Signal::TERM)?;
        }
    }
    for daemon in &daemons {
        if !daemon.stop(Duration::from_mins(1))? {
            eprintln!("lab: {} did not stop within 60 s; killing it", daemon.name);
            daemon.kill()?;
        }
    }
    for member in &members {
        stop_orphaned_postgres(layout, member, run_as)?;
    }
    Ok(())
}

async fn member(layout: &Layout, action: MemberAction, name: &str) -> Result<Exit, LabError> {
    if let MemberAction::Start {
        patroni_version: Some(version),
    } = &action
    {
        // The lab's state changes: alone, before the member's own lock.
        let _lock = lock(layout)?;
        record_version(layout, name, version)?;
    }
    let _locks = lock_member(layout, name)?;
    let state = LabState::load(layout)?.ok_or_else(|| LabError::NoLab {
        dir: layout.dir.clone(),
    })?;
    let members = state.spec.every_member();
    let Some(member) = members.iter().find(|member| member.name == name) else {
        return Err(LabError::UnknownMember {
            name: name.into(),
            known: members.into_iter().map(|member| member.name).collect(),
        });
    };
    let run_as = RunAs::detect()?;
    match action {
        MemberAction::Kill(killed) => {
            let daemon = member_daemon(layout, &state, member, run_as);
            if killed != Killed::Postgres {
                match daemon.running_pid() {
                    Some(pid) => {
                        daemon.kill()?;
                        eprintln!("lab: killed Patroni of {name} (pid {pid}, SIGKILL)");
                    }
                    None => eprintln!("lab: Patroni of {name} is not running"),
                }
            }
            if killed != Killed::Patroni {
                kill_postmaster(layout, name)?;
            }
            eprintln!(
                "lab: {}",
                match killed {
                    Killed::Patroni => "PostgreSQL keeps running, as after Patroni crashed alone",
                    Killed::Postgres =>
                        "Patroni notices within loop_wait: it restarts PostgreSQL, or, on the leader, recovers it or fails over",
                    Killed::Host =>
                        "as after the machine crashed: the leader key expires at ttl if it was the leader",
                }
            );
        }
        MemberAction::WipeLive => {
            let data = layout.member_data(name);
            let mut removed = 0;
            for entry in std::fs::read_dir(&data)
                .map_err(|error| LabError::io("list", &data, &error))?
                .flatten()
            {
                let path = entry.path();
                let result = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                // PostgreSQL writes while this runs: a file may come or go meanwhile.
                if result.is_ok() {
                    removed += 1;
                }
            }
            eprintln!("lab: deleted {removed} entries of {name}'s data directory while it runs");
        }
        MemberAction::Stop => {
            let daemon = member_daemon(layout, &state, member, run_as);
            if daemon.running_pid().is_none() {
                eprintln!("lab: Patroni of {name} is not running");
            } else if daemon.stop(Duration::from_mins(1))? {
                eprintln!("lab: stopped Patroni of {name}");
            } else {
                return Err(LabError::Invalid(format!(
                    "Patroni of {name} did not stop within 60 s (see {})",
                    daemon.log_file.display()
                )));
            }
        }
        MemberAction::Start { .. } => {
            let version = state.version_of(name);
            venv::ensure(version)?;
            let daemon = member_daemon(layout, &state, member, run_as);
            if let Some(pid) = daemon.running_pid() {
                eprintln!("lab: Patroni of {name} already runs (pid {pid})");
                return Ok(Exit::Success);
            }
            let pid = daemon.start()?;
            let cluster = member.cluster.scope(&state.spec);
            wait_for_api(layout, &daemon, pid, name, cluster).await?;
            eprintln!(
                "lab: started Patroni {version} for {name} (pid {pid}); its REST API answers"
            );
        }
    }
    Ok(Exit::Success)
}

/// SIGKILLs the postmaster of `name`'s data directory, if one runs there.
fn kill_postmaster(layout: &Layout, name: &str) -> Result<(), LabError> {
    // The pid file outlives a crash: only a live postgres process is killed.
    match daemons::postmaster_pid(&layout.member_data(name)) {
        Some(pid) => {
            process::signal(pid, rustix::process::Signal::KILL)?;
            eprintln!("lab: killed the postmaster of {name} (pid {pid}, SIGKILL)");
        }
        None => eprintln!("lab: no postmaster runs for {name}"),
    }
    Ok(())
}

/// The Patroni release a member runs from its next start.
fn record_version(layout: &Layout, name: &str, version: &Version) -> Result<(), LabError> {
    let mut state = LabState::load(layout)?.ok_or_else(|| LabError::NoLab {
        dir: layout.dir.clone(),
    })?;
    let members = state.spec.every_member();
    if !members.iter().any(|member| member.name == name) {
        return Err(LabError::UnknownMember {
            name: name.into(),
            known: members.into_iter().map(|member| member.name).collect(),
        });
    }
    if *version == state.spec.patroni_version {
        state.member_versions.remove(name);
    } else {
        state.member_versions.insert(name.to_string(), *version);
    }
    state.save(layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(members: u8, spares: u8, first: &str) -> LabSpec {
        LabSpec {
            members,
            spares,
            patroni_version: Version::new(4, 1, 5),
            tls: false,
            scope: "demo".into(),
            first_address: first.parse().unwrap(),
            dcs: LabDcs::Etcd,
            etcd_members: 1,
            standby_members: 0,
            mirror: Mirror::default(),
        }
    }

    #[test]
    fn members_get_consecutive_addresses_and_spares_come_last() {
        let members = spec(3, 1, "127.0.0.11").all_members();
        let names: Vec<&str> = members.iter().map(|member| member.name.as_str()).collect();
        assert_eq!(names, ["node1", "node2", "node3", "node4"]);
        assert_eq!(members[3].address, Ipv4Addr::new(127, 0, 0, 14));
        assert!(members[3].spare && !members[2].spare);
        assert_eq!(
            spec(3, 0, "127.0.0.11").infrastructure_address(),
            Ipv4Addr::new(127, 0, 0, 10)
        );
    }

    #[test]
    fn the_lab_stays_on_loopback_with_room_below_the_first_member() {
        assert!(spec(3, 0, "127.0.0.11").check().is_ok());
        assert!(
            spec(3, 0, "10.0.0.11")
                .check()
                .unwrap_err()
                .contains("loopback")
        );
        assert!(
            spec(3, 0, "127.0.0.1").check().is_err(),
            "no room for etcd below node1"
        );
        assert!(spec(9, 8, "127.0.0.240").check().is_err(), "past .255");
    }

    fn passwords() -> Passwords {
        Passwords {
            rest: "r".into(),
            superuser: "s".into(),
            replication: "p".into(),
            rewind: "w".into(),
        }
    }

    fn arg_after<'a>(daemon: &'a Daemon, flag: &str) -> &'a str {
        let index = daemon
            .args
            .iter()
            .position(|arg| arg == flag)
            .unwrap_or_else(|| panic!("no {flag} in {:?}", daemon.args));
        &daemon.args[index + 1]
    }

    #[test]
    fn three_etcd_members_need_two_more_addresses_below_the_infrastructure_one() {
        let mut three = spec(3, 0, "127.0.0.11");
        three.etcd_members = 3;
        assert!(three.check().is_ok());
        let addresses: Vec<Ipv4Addr> = three
            .etcd_members()
            .iter()
            .map(|member| member.address)
            .collect();
        assert_eq!(
            addresses,
            [
                Ipv4Addr::new(127, 0, 0, 10),
                Ipv4Addr::new(127, 0, 0, 9),
                Ipv4Addr::new(127, 0, 0, 8)
            ]
        );
        three.first_address = "127.0.0.4".parse().unwrap();
        assert!(three.check().is_ok(), "etcd on .3, .2 and .1");
        three.first_address = "127.0.0.3".parse().unwrap();
        let message = three.check().unwrap_err();
        assert!(
            message.contains("no room below it for 3 etcd members")
                && message.contains("ending in .4 or higher"),
            "{message}"
        );
        assert!(
            spec(3, 0, "127.0.0.2").check().is_ok(),
            "one etcd member still fits"
        );
        let mut two = spec(3, 0, "127.0.0.11");
        two.etcd_members = 2;
        assert!(two.check().unwrap_err().contains("1 or 3"));
        let mut consul = spec(3, 0, "127.0.0.11");
        consul.dcs = LabDcs::Consul;
        consul.etcd_members = 3;
        assert!(consul.check().unwrap_err().contains("--dcs etcd only"));
    }

    #[test]
    fn a_lab_recorded_before_etcd_members_existed_runs_one() {
        let recorded = r#"{"spec": {"members": 3, "spares": 0, "patroni_version": "4.1.5",
            "tls": false, "scope": "demo", "first_address": "127.0.0.11"}}"#;
        let state: LabState = serde_json::from_str(recorded).unwrap();
        assert_eq!(state.spec.etcd_members, 1);
        assert_eq!(state.spec.dcs, LabDcs::Etcd);
        assert_eq!(state.spec, spec(3, 0, "127.0.0.11"));
    }

    #[test]
    fn a_one_member_etcd_keeps_its_name_and_paths() {
        let layout = Layout::new(Path::new("/lab"));
        let daemons = etcd_daemons(&layout, &spec(3, 0, "127.0.0.11"));
        assert_eq!(daemons.len(), 1);
        let (member, daemon) = &daemons[0];
        assert_eq!((member.number, daemon.name.as_str()), (1, "etcd"));
        assert_eq!(daemon.pid_file, Path::new("/lab/etcd/etcd.pid"));
        assert_eq!(daemon.log_file, Path::new("/lab/etcd/etcd.log"));
        assert_eq!(arg_after(daemon, "--name"), "lab");
        assert_eq!(arg_after(daemon, "--data-dir"), "/lab/etcd/data");
        assert_eq!(
            arg_after(daemon, "--initial-cluster"),
            "lab=http://127.0.0.10:2380"
        );
        assert_eq!(
            arg_after(daemon, "--listen-client-urls"),
            "http://127.0.0.10:2379"
        );
    }

    #[test]
    fn etcd_members_two_and_three_have_their_own_address_dir_and_the_whole_cluster() {
        let layout = Layout::new(Path::new("/lab"));
        let mut spec = spec(3, 0, "127.0.0.11");
        spec.etcd_members = 3;
        let daemons = etcd_daemons(&layout, &spec);
        let names: Vec<&str> = daemons
            .iter()
            .map(|(_, daemon)| daemon.name.as_str())
            .collect();
        assert_eq!(names, ["etcd1", "etcd2", "etcd3"]);
        let cluster =
            "etcd1=http://127.0.0.10:2380,etcd2=http://127.0.0.9:2380,etcd3=http://127.0.0.8:2380";
        for (number, address, dir) in [
            (2, "127.0.0.9", "/lab/etcd2"),
            (3, "127.0.0.8", "/lab/etcd3"),
        ] {
            let (member, daemon) = &daemons[number - 1];
            assert_eq!(usize::from(member.number), number);
            assert_eq!(arg_after(daemon, "--name"), format!("etcd{number}"));
            assert_eq!(arg_after(daemon, "--data-dir"), format!("{dir}/data"));
            assert_eq!(
                daemon.identity,
                format!("{dir}/data"),
                "found again by its own data dir"
            );
            assert_eq!(daemon.pid_file, Path::new(dir).join("etcd.pid"));
            assert_eq!(daemon.log_file, Path::new(dir).join("etcd.log"));
            assert_eq!(daemon.working_dir, Path::new(dir));
            assert_eq!(
                arg_after(daemon, "--listen-client-urls"),
                format!("http://{address}:2379")
            );
            assert_eq!(
                arg_after(daemon, "--advertise-client-urls"),
                format!("http://{address}:2379")
            );
            assert_eq!(
                arg_after(daemon, "--initial-advertise-peer-urls"),
                format!("http://{address}:2380")
            );
            assert_eq!(arg_after(daemon, "--initial-cluster"), cluster);
            assert_eq!(arg_after(daemon, "--initial-cluster-state"), "new");
        }
        assert_eq!(daemons[0].1.pid_file, Path::new("/lab/etcd/etcd.pid"));
    }

    #[test]
    fn patroni_and_the_inventory_know_every_etcd_member() {
        let layout = Layout::new(Path::new("/lab"));
        let mut spec = spec(3, 0, "127.0.0.61");
        spec.etcd_members = 3;
        let config: serde_json::Value = serde_saphyr::from_str(&files::patroni_config(
            &layout,
            &spec,
            &spec.all_members()[2],
            &passwords(),
        ))
        .unwrap();
        assert_eq!(
            config["etcd3"]["hosts"],
            "127.0.0.60:2379,127.0.0.59:2379,127.0.0.58:2379"
        );
        let inventory: serde_json::Value = serde_saphyr::from_str(&files::inventory(
            &layout,
            &spec,
            Path::new("/usr/bin/pgha"),
        ))
        .unwrap();
        let lab = &inventory["environments"]["lab"];
        assert_eq!(
            lab["dcs"],
            serde_json::json!({
                "kind": "etcd",
                "hosts": ["127.0.0.60:2379", "127.0.0.59:2379", "127.0.0.58:2379"]
            })
        );
        assert_eq!(
            lab["ssh"]["port"], 2222,
            "the sections after dcs are intact"
        );
        assert_eq!(lab["clusters"]["demo"]["members"][0]["host"], "127.0.0.61");
    }

    /// The inventory `lab up` writes for `spec`, and the secrets it names, as a test needs
    /// them to resolve it.
    fn write_inventory_with_secrets(layout: &Layout, spec: &LabSpec) {
        std::fs::write(
            layout.inventory(),
            files::inventory(layout, spec, Path::new("/usr/bin/pgha")),
        )
        .unwrap();
        std::fs::create_dir(layout.secrets()).unwrap();
        for secret in ["rest-password", "superuser-password"] {
            std::fs::write(layout.secret(secret), "x\n").unwrap();
        }
    }

    #[test]
    fn the_lab_inventory_with_three_etcd_members_resolves() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let mut spec = spec(3, 0, "127.0.0.61");
        spec.etcd_members = 3;
        write_inventory_with_secrets(&layout, &spec);
        let selector = crate::inventory::Selector {
            config: Some(layout.inventory()),
            environment: Some(crate::inventory::LAB_ENVIRONMENT.into()),
            ..crate::inventory::Selector::default()
        };
        let target = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(crate::inventory::resolve(&selector))
            .unwrap();
        assert_eq!(target.members.len(), 3);
    }

    #[test]
    fn the_inventory_names_every_member_and_no_secret() {
        let mut spec = spec(2, 1, "127.0.0.11");
        spec.tls = true;
        let text = files::inventory(
            &Layout::new(Path::new("/var/lib/pgha/lab")),
            &spec,
            Path::new("/usr/bin/pgha"),
        );
        let inventory: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        let lab = &inventory["environments"]["lab"];
        assert_eq!(lab["rest"]["password_file"], "secrets/rest-password");
        assert_eq!(lab["rest"]["tls"]["ca_file"], "tls/ca.crt");
        assert_eq!(lab["dcs"]["hosts"][0], "127.0.0.10:2379");
        assert_eq!(lab["ssh"]["port"], 2222);
        let members = lab["clusters"]["demo"]["members"].as_array().unwrap();
        assert_eq!(
            members.len(),
            3,
            "spares are in the inventory: scale-up needs them"
        );
        assert_eq!(members[2]["host"], "127.0.0.13");
        assert_eq!(
            members[2]["data_dir"],
            "/var/lib/pgha/lab/members/node3/data"
        );
        assert_eq!(lab["service"]["kind"], "lab");
        assert_eq!(lab["service"]["pgha"], "/usr/bin/pgha");
    }

    #[test]
    fn member_configs_use_the_measured_timings_and_own_sockets() {
        let layout = Layout::new(Path::new("/lab"));
        let spec = spec(3, 0, "127.0.0.11");
        let passwords = Passwords {
            rest: "r".into(),
            superuser: "s".into(),
            replication: "p".into(),
            rewind: "w".into(),
        };
        let member = &spec.all_members()[1];
        let config: serde_json::Value =
            serde_saphyr::from_str(&files::patroni_config(&layout, &spec, member, &passwords))
                .unwrap();
        assert_eq!(config["name"], "node2");
        assert_eq!(config["restapi"]["listen"], "127.0.0.12:8008");
        assert_eq!(config["etcd3"]["hosts"], "127.0.0.10:2379");
        let dcs = &config["bootstrap"]["dcs"];
        assert_eq!(
            (
                dcs["ttl"].as_u64(),
                dcs["loop_wait"].as_u64(),
                dcs["retry_timeout"].as_u64()
            ),
            (Some(20), Some(2), Some(5))
        );
        // Every member listens on 5432: each needs its own socket directory.
        assert_eq!(
            config["postgresql"]["parameters"]["unix_socket_directories"],
            "/lab/members/node2"
        );
        assert_eq!(config["postgresql"]["basebackup"][0]["checkpoint"], "fast");
        assert!(config.get("ctl").is_none(), "no TLS, no ctl section");
    }

    #[test]
    fn a_consul_lab_registers_services_and_names_the_agent_in_the_inventory() {
        let layout = Layout::new(Path::new("/lab"));
        let mut spec = spec(3, 1, "127.0.0.11");
        spec.dcs = LabDcs::Consul;
        let passwords = Passwords {
            rest: "r".into(),
            superuser: "s".into(),
            replication: "p".into(),
            rewind: "w".into(),
        };
        let config: serde_json::Value = serde_saphyr::from_str(&files::patroni_config(
            &layout,
            &spec,
            &spec.all_members()[0],
            &passwords,
        ))
        .unwrap();
        assert_eq!(config["consul"]["host"], "127.0.0.10:8500");
        assert_eq!(config["consul"]["register_service"], true);
        assert!(config.get("etcd3").is_none());
        // A rehearsal mirroring a cluster whose Patroni registers no service.
        let mut unregistered = spec.clone();
        unregistered.mirror.no_consul_services = true;
        let quiet: serde_json::Value = serde_saphyr::from_str(&files::patroni_config(
            &layout,
            &unregistered,
            &unregistered.all_members()[0],
            &passwords,
        ))
        .unwrap();
        assert_eq!(quiet["consul"]["register_service"], false);
        let inventory: serde_json::Value = serde_saphyr::from_str(&files::inventory(
            &layout,
            &spec,
            Path::new("/usr/bin/pgha"),
        ))
        .unwrap();
        let dcs = &inventory["environments"]["lab"]["dcs"];
        assert_eq!(dcs["kind"], "consul");
        assert_eq!(dcs["hosts"][0], "127.0.0.10:8500");
        spec.tls = true;
        assert!(
            spec.check().is_err(),
            "TLS REST APIs cannot be checked by the double"
        );
    }

    fn standby_spec() -> LabSpec {
        let mut spec = spec(3, 1, "127.0.0.141");
        spec.standby_members = 2;
        spec
    }

    fn member_config(spec: &LabSpec, member: &LabMember) -> serde_json::Value {
        let layout = Layout::new(Path::new("/lab"));
        serde_saphyr::from_str(&files::patroni_config(&layout, spec, member, &passwords())).unwrap()
    }

    #[test]
    fn a_mirrored_lab_names_tags_and_releases_its_members_as_the_target() {
        let mut spec = spec(3, 0, "127.0.0.171");
        spec.mirror = Mirror {
            names: vec!["pg-a".into(), "pg-b".into(), "pg-c".into()],
            tags: BTreeMap::from([(
                "pg-c".to_string(),
                BTreeMap::from([
                    ("nofailover".to_string(), serde_json::json!(true)),
                    ("replicatefrom".to_string(), serde_json::json!("pg-b")),
                ]),
            )]),
            releases: BTreeMap::from([("pg-b".to_string(), Version::new(3, 3, 11))]),
            no_consul_services: false,
        };
        assert_eq!(spec.check(), Ok(()));
        let members = spec.all_members();
        assert_eq!(members[2].name, "pg-c");
        let config = member_config(&spec, &members[2]);
        assert_eq!(config["name"], "pg-c");
        assert_eq!(config["tags"]["nofailover"], true);
        assert_eq!(config["tags"]["replicatefrom"], "pg-b");
        assert_eq!(config["tags"]["nosync"], false);
        assert_eq!(
            member_config(&spec, &members[0])["tags"]["nofailover"],
            false
        );

        let hostile = |change: &dyn Fn(&mut Mirror)| {
            let mut bad = spec.clone();
            change(&mut bad.mirror);
            bad.check().unwrap_err()
        };
        let key = hostile(&|mirror| {
            mirror.tags.insert(
                "pg-a".into(),
                BTreeMap::from([("x: 1\nevil".to_string(), serde_json::json!(true))]),
            );
        });
        assert!(key.contains("a lowercase key"), "{key}");
        let value = hostile(&|mirror| {
            mirror.tags.insert(
                "pg-a".into(),
                BTreeMap::from([("nofailover".to_string(), serde_json::json!({"a": 1}))]),
            );
        });
        assert!(value.contains("a boolean, number or string"), "{value}");
        assert!(hostile(&|mirror| mirror.names.pop().map_or((), drop)).contains("2 member names"));
        assert!(hostile(&|mirror| mirror.names[0] = "a b".into()).contains("member name"));
        assert!(hostile(&|mirror| mirror.names[0] = "pg-b".into()).contains("taken"));
        let release = hostile(&|mirror| {
            mirror
                .releases
                .insert("node9".into(), Version::new(4, 0, 0));
        });
        assert!(release.contains("no such member"), "{release}");
    }

    /// Found trying a rehearsal with `--first-address 127.0.0.253`: the lab a rehearsal starts
    /// was not checked as `lab up`'s is. Every start is, before anything is written.
    #[tokio::test]
    async fn a_lab_is_checked_before_anything_is_written_whoever_starts_it() {
        let dir = tempfile::tempdir().unwrap();
        let lab = dir.path().join("lab");
        let mut spec = standby_spec();
        spec.first_address = "127.0.0.253".parse().unwrap();
        let error = start(&lab, spec, Duration::from_secs(1)).await.unwrap_err();
        assert!(error.to_string().contains("no room for"), "{error}");
        assert_eq!(error.exit(), Exit::BadInput);
        assert!(!lab.exists(), "nothing written");
    }

    /// A rehearsal like a standby cluster: tags and releases by the standby members' names.
    #[test]
    fn a_mirrored_standby_cluster_takes_tags_and_releases_by_its_members_names() {
        let mut spec = standby_spec();
        spec.mirror.tags.insert(
            "geo2".into(),
            BTreeMap::from([("nofailover".to_string(), serde_json::json!(true))]),
        );
        spec.mirror
            .releases
            .insert("geo1".into(), Version::new(3, 3, 11));
        assert_eq!(spec.check(), Ok(()));
        let geo = spec.standby_cluster_members();
        assert_eq!(member_config(&spec, &geo[1])["tags"]["nofailover"], true);
        assert_eq!(member_config(&spec, &geo[0])["tags"]["nofailover"], false);
        spec.mirror.tags.insert("geo3".into(), BTreeMap::new());
        assert!(spec.check().unwrap_err().contains("no such member"));
    }

    #[test]
    fn standby_members_follow_the_spares_and_need_room_too() {
        let spec = standby_spec();
        let geo = spec.standby_cluster_members();
        let named: Vec<(&str, Ipv4Addr)> = geo
            .iter()
            .map(|member| (member.name.as_str(), member.address))
            .collect();
        assert_eq!(
            named,
            [
                ("geo1", Ipv4Addr::new(127, 0, 0, 145)),
                ("geo2", Ipv4Addr::new(127, 0, 0, 146))
            ]
        );
        assert_eq!(spec.every_member().len(), 6);
        assert_eq!(spec.all_members().len(), 4, "the primary's members only");
        assert!(spec.check().is_ok());
        let mut crowded = spec.clone();
        crowded.first_address = "127.0.0.250".parse().unwrap();
        assert!(
            crowded
                .check()
                .unwrap_err()
                .contains("no room for 6 members")
        );
        let mut same_scope = spec;
        same_scope.scope = STANDBY_SCOPE.into();
        assert!(
            same_scope
                .check()
                .unwrap_err()
                .contains("standby cluster's scope")
        );
    }

    #[test]
    fn the_standby_cluster_follows_the_archive_only_and_restores_with_pgbackrest() {
        let spec = standby_spec();
        let config = member_config(&spec, &spec.standby_cluster_members()[0]);
        assert_eq!(config["scope"], "geo");
        assert_eq!(config["name"], "geo1");
        let dcs = &config["bootstrap"]["dcs"];
        assert_eq!(
            dcs["standby_cluster"],
            serde_json::json!({
                "restore_command": "pgbackrest --stanza=demo archive-get %f \"%p\"",
                "create_replica_methods": ["pgbackrest"]
            }),
            "no host: archive-only"
        );
        assert_eq!(dcs["postgresql"]["parameters"]["archive_mode"], "off");
        let postgresql = &config["postgresql"];
        assert_eq!(
            postgresql["create_replica_methods"],
            serde_json::json!(["pgbackrest", "basebackup"])
        );
        assert_eq!(
            postgresql["pgbackrest"],
            serde_json::json!({
                "command": "pgbackrest --stanza=demo --delta --type=standby restore",
                "keep_data": true,
                "no_params": true,
                "no_leader": true
            })
        );
        assert!(postgresql["parameters"].get("archive_command").is_none());
        let mut old = spec;
        old.patroni_version = Version::new(2, 1, 7);
        let config = member_config(&old, &old.standby_cluster_members()[1]);
        assert_eq!(config["postgresql"]["pgbackrest"]["no_master"], true);
    }

    #[test]
    fn only_a_lab_with_a_standby_cluster_archives_its_wal() {
        let standby = standby_spec();
        let config = member_config(&standby, &standby.all_members()[0]);
        assert_eq!(config["scope"], "demo");
        let parameters = &config["bootstrap"]["dcs"]["postgresql"]["parameters"];
        assert_eq!(
            (&parameters["archive_mode"], &parameters["archive_timeout"]),
            (&serde_json::json!("on"), &serde_json::json!("10s"))
        );
        assert_eq!(
            config["postgresql"]["parameters"]["archive_command"],
            "pgbackrest --stanza=demo archive-push %p"
        );
        assert!(config["bootstrap"]["dcs"].get("standby_cluster").is_none());
        assert!(config["postgresql"].get("create_replica_methods").is_none());

        let plain = spec(3, 1, "127.0.0.141");
        let config = member_config(&plain, &plain.all_members()[0]);
        assert!(
            config["bootstrap"]["dcs"]["postgresql"]["parameters"]
                .get("archive_mode")
                .is_none()
        );
        assert!(
            config["postgresql"]["parameters"]
                .get("archive_command")
                .is_none()
        );
    }

    #[test]
    fn each_member_finds_its_own_pgbackrest_config_through_the_environment() {
        let layout = Layout::new(Path::new("/lab"));
        let run_as = RunAs {
            uid: 1,
            gid: 1,
            is_root_caller: false,
        };
        let standby = standby_spec();
        let state = LabState {
            spec: standby.clone(),
            member_versions: std::collections::BTreeMap::new(),
        };
        let daemon = member_daemon(
            &layout,
            &state,
            &standby.standby_cluster_members()[1],
            run_as,
        );
        assert!(daemon.env.contains(&(
            "PGBACKREST_CONFIG".to_string(),
            "/lab/members/geo2/pgbackrest/pgbackrest.conf".to_string()
        )));
        let config =
            pgbackrest::member_config(&layout, &standby, &standby.standby_cluster_members()[1]);
        assert!(
            config.contains("[demo]\npg1-path=/lab/members/geo2/data\n")
                && config.contains("repo1-path=/lab/pgbackrest/repo\n")
                && config.contains("[global:archive-get]\nlog-level-console=warn\n"),
            "{config}"
        );
        assert!(!pgbackrest::shared_config(&layout).contains("pg1-path"));
        let plain = LabState {
            spec: spec(3, 0, "127.0.0.11"),
            member_versions: std::collections::BTreeMap::new(),
        };
        let daemon = member_daemon(&layout, &plain, &plain.spec.all_members()[0], run_as);
        assert!(
            daemon
                .env
                .iter()
                .all(|(name, _)| name != "PGBACKREST_CONFIG")
        );
    }

    #[test]
    fn the_standby_lab_inventory_keeps_its_primary_as_the_default_and_names_its_backups() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let spec = standby_spec();
        write_inventory_with_secrets(&layout, &spec);
        let resolve = |cluster: Option<&str>| {
            let selector = crate::inventory::Selector {
                config: Some(layout.inventory()),
                environment: Some(crate::inventory::LAB_ENVIRONMENT.into()),
                cluster: cluster.map(str::to_string),
                ..crate::inventory::Selector::default()
            };
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(crate::inventory::resolve(&selector))
                .unwrap()
        };
        let primary = resolve(None);
        assert_eq!((primary.cluster.as_str(), primary.standby), ("demo", false));
        assert_eq!(primary.members.len(), 4);
        let geo = resolve(Some("geo"));
        assert_eq!((geo.scope.as_str(), geo.standby), ("geo", true));
        let names: Vec<&str> = geo
            .members
            .iter()
            .map(|member| member.name.as_str())
            .collect();
        assert_eq!(names, ["geo1", "geo2"]);
        assert_eq!(
            geo.members[1].data_dir.as_deref(),
            Some(layout.member_data("geo2").to_str().unwrap())
        );
        let backup = geo.backup.expect("the environment's backup: section");
        assert_eq!(
            backup.tool,
            crate::inventory::BackupTool::Pgbackrest {
                stanza: "demo".into(),
                config: Some(layout.pgbackrest_config().display().to_string()),
            }
        );
        assert_eq!(backup.max_age, Duration::from_hours(24));
    }
}
