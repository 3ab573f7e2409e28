//! The lab: a real Patroni cluster on this machine — real etcd, real Patroni from PyPI, real
//! PostgreSQL 15, a real sshd — with one loopback address per member (node1 = 127.0.0.11, …) and
//! the production ports on each. It is the demo, the integration tests' cluster and the
//! rehearsal sandbox for runbooks. `up` is idempotent; every daemon is tracked by a PID file and
//! stopped by that PID only.

mod files;
mod layout;
mod process;
mod venv;

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::exit::Exit;
use crate::inventory::{self, ClusterTarget, Selector};
use crate::observe::{self, ClusterView};
use crate::patroni::{MemberState, PatroniClient, Version};
use crate::ui::{self, OutputFormat};
use files::Passwords;
use layout::{LabMember, LabState, Layout};
use process::{Daemon, RunAs};

pub const DEFAULT_PATRONI_VERSION: &str = "4.1.5";
/// The lab's `maximum_lag_on_failover`: a replica further behind does not count as healthy.
const HEALTHY_LAG_BYTES: u64 = 1024 * 1024;

/// What a lab is made of. Recorded in `lab.json`; a later `up` must ask for the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabSpec {
    pub members: u8,
    pub spares: u8,
    pub patroni_version: Version,
    pub tls: bool,
    pub scope: String,
    pub first_address: Ipv4Addr,
}

impl LabSpec {
    /// Addresses must stay inside 127.0.0.0/8 with room for etcd and sshd just below node1.
    pub fn check(&self) -> Result<(), String> {
        let [first_octet, _, _, last_octet] = self.first_address.octets();
        if first_octet != 127 {
            return Err(format!(
                "--first-address {}: the lab lives on loopback (127.x.y.z)",
                self.first_address
            ));
        }
        if last_octet < 2
            || u16::from(last_octet) + u16::from(self.members) + u16::from(self.spares) > 255
        {
            return Err(format!(
                "--first-address {}: no room for {} members below .255 and the lab's own address below it",
                self.first_address,
                self.members + self.spares
            ));
        }
        Ok(())
    }
}

#[derive(Debug)]
pub enum LabCommand {
    Up { spec: LabSpec, wait: Duration },
    Down { wipe: bool },
    Status { format: OutputFormat },
    Member { action: MemberAction, name: String },
}

#[derive(Debug, Clone, Copy)]
pub enum MemberAction {
    Start { patroni_version: Option<Version> },
    Stop,
    Kill,
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
            | LabError::UnknownMember { .. } => Exit::BadInput,
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
        LabCommand::Up { spec, wait } => up(&layout, spec, wait).await,
        LabCommand::Down { wipe } => down(&layout, wipe),
        LabCommand::Status { format } => status(&layout, format),
        LabCommand::Member { action, name } => member(&layout, action, &name).await,
    }
}

/// Holds the lab's lock file for the duration of a command that changes the lab.
fn lock(layout: &Layout) -> Result<File, LabError> {
    let path = layout.lock_file();
    let file = File::create(&path).map_err(|error| LabError::io("create", &path, &error))?;
    if file.try_lock().is_err() {
        eprintln!(
            "lab: waiting for another pgha lab command on {}",
            layout.dir.display()
        );
        file.lock()
            .map_err(|error| LabError::io("lock", &path, &error))?;
    }
    Ok(file)
}

fn check_prerequisites(spec: &LabSpec) -> Result<(), LabError> {
    let mut required = vec![
        ("/usr/bin/etcd", "etcd (Debian etcd-server)"),
        ("/usr/sbin/sshd", "sshd (Debian openssh-server)"),
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
        "{} members + {} spare, Patroni {}, scope {}, from {}{}",
        spec.members,
        spec.spares,
        spec.patroni_version,
        spec.scope,
        spec.first_address,
        if spec.tls { ", TLS" } else { "" }
    )
}

async fn up(layout: &Layout, spec: LabSpec, wait: Duration) -> Result<Exit, LabError> {
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
            let state = LabState {
                spec: spec.clone(),
                member_versions: std::collections::BTreeMap::new(),
            };
            state.save(layout)?;
            state
        }
    };
    let run_as = RunAs::detect()?;
    prepare_files(layout, &state, run_as)?;

    let mut started = Vec::new();
    let etcd = etcd_daemon(layout, &spec);
    if etcd.running_pid().is_none() {
        eprintln!(
            "lab: starting etcd on {}:{}",
            spec.infrastructure_address(),
            files::ETCD_CLIENT_PORT
        );
        start_and_listen(
            &etcd,
            (spec.infrastructure_address(), files::ETCD_CLIENT_PORT),
        )
        .await?;
        started.push("etcd".to_string());
    }
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
    let view = wait_until_healthy(layout, &state, run_as, wait).await?;
    if started.is_empty() {
        eprintln!("lab: already up, nothing to do");
    } else {
        eprintln!("lab: up (started {})", started.join(", "));
    }
    eprintln!("lab: try `pgha --env lab status`");
    print_view_summary(&view)?;
    Ok(Exit::Success)
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
    files::write_sshd_config(layout, spec)?;
    if spec.tls {
        files::ensure_tls(layout, spec, run_as)?;
    }
    files::create_dir(&layout.etcd(), 0o700)?;
    files::create_dir(&layout.dir.join("members"), 0o755)?;
    for member in spec.all_members() {
        write_member_config(layout, spec, &member, &passwords, run_as)?;
    }
    files::write_file(&layout.inventory(), &files::inventory(spec), 0o644)
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

fn etcd_daemon(layout: &Layout, spec: &LabSpec) -> Daemon {
    let address = spec.infrastructure_address();
    let data = layout.etcd().join("data");
    let client = format!("http://{address}:{}", files::ETCD_CLIENT_PORT);
    let peer = format!("http://{address}:{}", files::ETCD_PEER_PORT);
    Daemon {
        name: "etcd".into(),
        program: PathBuf::from("/usr/bin/etcd"),
        args: vec![
            "--name".into(),
            "lab".into(),
            "--data-dir".into(),
            data.to_string_lossy().into_owned(),
            "--listen-client-urls".into(),
            client.clone(),
            "--advertise-client-urls".into(),
            client,
            "--listen-peer-urls".into(),
            peer.clone(),
            "--initial-advertise-peer-urls".into(),
            peer.clone(),
            "--initial-cluster".into(),
            format!("lab={peer}"),
            "--initial-cluster-state".into(),
            "new".into(),
            "--logger".into(),
            "zap".into(),
        ],
        pid_file: layout.etcd().join("etcd.pid"),
        log_file: layout.etcd().join("etcd.log"),
        working_dir: layout.etcd(),
        identity: data.to_string_lossy().into_owned(),
        run_as: None,
        env: Vec::new(),
    }
}

fn sshd_daemon(layout: &Layout) -> Daemon {
    let config = layout.ssh().join("sshd_config");
    Daemon {
        name: "sshd".into(),
        program: PathBuf::from("/usr/sbin/sshd"),
        args: vec![
            "-D".into(),
            "-e".into(),
            "-f".into(),
            config.to_string_lossy().into_owned(),
        ],
        pid_file: layout.ssh().join("sshd.pid"),
        log_file: layout.ssh().join("sshd.log"),
        working_dir: layout.ssh(),
        identity: config.to_string_lossy().into_owned(),
        run_as: None,
        env: Vec::new(),
    }
}

fn member_daemon(layout: &Layout, state: &LabState, member: &LabMember, run_as: RunAs) -> Daemon {
    let dir = layout.member(&member.name);
    let config = layout.member_config(&member.name);
    let venv = venv::cache_dir().join(format!("patroni-{}", state.version_of(&member.name)));
    Daemon {
        name: member.name.clone(),
        program: venv::patroni_binary(&venv),
        args: vec![config.to_string_lossy().into_owned()],
        pid_file: dir.join("patroni.pid"),
        log_file: dir.join("patroni.log"),
        working_dir: dir.clone(),
        identity: config.to_string_lossy().into_owned(),
        run_as: Some(run_as),
        env: vec![("HOME".into(), dir.to_string_lossy().into_owned())],
    }
}

/// Starts a daemon and waits until it accepts TCP connections on `address`.
async fn start_and_listen(daemon: &Daemon, address: (Ipv4Addr, u16)) -> Result<(), LabError> {
    let pid = daemon.start()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if tokio::net::TcpStream::connect(address).await.is_ok() {
            return Ok(());
        }
        if !process::is_alive(pid, &daemon.identity) || Instant::now() >= deadline {
            return Err(LabError::StartFailed {
                component: format!("{} ({}:{})", daemon.name, address.0, address.1),
                log_tail: daemon.log_tail(20),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The lab's cluster as pgha's own inventory names it: the lab is a client of pgha like any
/// environment.
async fn lab_target(layout: &Layout) -> Result<ClusterTarget, LabError> {
    let selector = Selector {
        config: Some(layout.inventory()),
        environment: Some(inventory::LAB_ENVIRONMENT.into()),
        ..Selector::default()
    };
    inventory::resolve(&selector)
        .await
        .map_err(|error| LabError::Cluster(error.to_string()))
}

/// Polls until one leader runs and every started member streams from it; fails early with
/// a member's log when its Patroni dies, and with every unhealthy member's log at the deadline.
async fn wait_until_healthy(
    layout: &Layout,
    state: &LabState,
    run_as: RunAs,
    wait: Duration,
) -> Result<ClusterView, LabError> {
    let mut target = lab_target(layout).await?;
    let running: Vec<LabMember> = state
        .spec
        .all_members()
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
    let started = Instant::now();
    let mut last_summary = String::new();
    loop {
        let observation = observe::observe(&target, &client).await;
        let summary = match &observation {
            Ok(view) => summarize(view),
            Err(crate::observe::ObserveError::NoMemberAnswered { .. }) => {
                "waiting for the REST APIs to answer".into()
            }
            Err(error) => error.to_string(),
        };
        if summary != last_summary {
            eprintln!("lab: [{:>4.1}s] {summary}", started.elapsed().as_secs_f64());
            last_summary.clone_from(&summary);
        }
        if let Ok(view) = observation
            && is_healthy(&view)
        {
            return Ok(view);
        }
        for member in &running {
            let daemon = member_daemon(layout, state, member, run_as);
            if daemon.running_pid().is_none() {
                return Err(LabError::StartFailed {
                    component: format!("Patroni of {}", member.name),
                    log_tail: daemon.log_tail(25),
                });
            }
        }
        if started.elapsed() >= wait {
            let log_tails = running
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
                .join("\n");
            return Err(LabError::NotHealthy {
                waited: wait,
                summary,
                log_tails,
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn summarize(view: &ClusterView) -> String {
    view.members
        .iter()
        .map(|member| {
            let role = member
                .role()
                .map_or_else(|| "-".to_string(), |role| role.to_string());
            let state = member
                .state()
                .map_or_else(|| "unreachable".to_string(), |state| state.to_string());
            format!("{} {role} {state}", member.name)
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

/// One leader running; every other member streaming. A replica on a Patroni that does not
/// report replication state (before 3.0) counts once it runs and has received WAL, and the
/// leader must list a walsender for every replica.
fn is_healthy(view: &ClusterView) -> bool {
    let leaders: Vec<_> = view
        .members
        .iter()
        .filter(|member| member.is_leader())
        .collect();
    let walsenders = leaders
        .first()
        .and_then(|leader| leader.status.as_ref().ok())
        .map_or(0, |status| status.replication.len());
    leaders.len() == 1
        && walsenders + 1 >= view.members.len()
        && view.members.iter().all(|member| {
            let Ok(status) = &member.status else {
                return false;
            };
            if member.is_leader() {
                return status.state == MemberState::Running;
            }
            // Right after bootstrap the leader has not published its position yet ("unknown"),
            // and old releases publish replica positions once per loop.
            let lag = member.receive_lag().and_then(crate::patroni::Lag::bytes);
            if lag.is_none_or(|bytes| bytes > HEALTHY_LAG_BYTES) {
                return false;
            }
            match member.state() {
                Some(MemberState::Streaming) => true,
                Some(MemberState::Running) => {
                    !status.reports_replication_state() && member.receive_lsn().is_some()
                }
                _ => false,
            }
        })
}

fn print_view_summary(view: &ClusterView) -> Result<(), LabError> {
    let document =
        crate::status::StatusDocument::from_view(view, jiff::Timestamp::now().to_string());
    ui::print_stdout(&crate::status::render_table(&document))
        .map_err(|error| LabError::io("write", Path::new("stdout"), &error))
}

fn down(layout: &Layout, wipe: bool) -> Result<Exit, LabError> {
    if !layout.dir.exists() {
        eprintln!("lab: nothing in {}", layout.dir.display());
        return Ok(Exit::Success);
    }
    let lock_file = lock(layout)?;
    let run_as = RunAs::detect()?;
    if let Some(state) = LabState::load(layout)? {
        let members = state.spec.all_members();
        let daemons: Vec<Daemon> = members
            .iter()
            .map(|member| member_daemon(layout, &state, member, run_as))
            .collect();
        // SIGTERM every Patroni first, then wait: members stop in parallel.
        for daemon in &daemons {
            if let Some(pid) = daemon.running_pid() {
                eprintln!("lab: stopping {} (pid {pid})", daemon.name);
                process::signal(pid, rustix::process::Signal::TERM)?;
            }
        }
        for daemon in &daemons {
            if !daemon.stop(Duration::from_secs(60))? {
                eprintln!("lab: {} did not stop within 60 s; killing it", daemon.name);
                daemon.kill()?;
            }
        }
        // A paused cluster's Patroni leaves PostgreSQL running, and so does a killed Patroni.
        for member in &members {
            stop_orphaned_postgres(layout, member, run_as)?;
        }
    }
    for daemon in [Some(sshd_daemon(layout)), etcd_daemon_for_down(layout)]
        .into_iter()
        .flatten()
    {
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

/// etcd's command line does not depend on the spec's details except the address; read the spec
/// to rebuild it, and skip when the lab never recorded one.
fn etcd_daemon_for_down(layout: &Layout) -> Option<Daemon> {
    LabState::load(layout)
        .ok()
        .flatten()
        .map(|state| etcd_daemon(layout, &state.spec))
}

fn stop_orphaned_postgres(
    layout: &Layout,
    member: &LabMember,
    run_as: RunAs,
) -> Result<(), LabError> {
    let data = layout.member_data(&member.name);
    let Some(pid) = postmaster_pid(&data) else {
        return Ok(());
    };
    eprintln!("lab: stopping PostgreSQL of {} (pid {pid})", member.name);
    let mut command = std::process::Command::new(format!("{}/pg_ctl", files::POSTGRES_BIN));
    command
        .args(["stop", "-m", "fast", "-w", "-t", "60", "-D"])
        .arg(&data)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdout(std::process::Stdio::null());
    if run_as.is_root_caller {
        std::os::unix::process::CommandExt::uid(&mut command, run_as.uid);
        std::os::unix::process::CommandExt::gid(&mut command, run_as.gid);
    }
    let output = command
        .output()
        .map_err(|error| LabError::io("run pg_ctl for", &data, &error))?;
    if !output.status.success() && postmaster_pid(&data).is_some() {
        return Err(LabError::ToolFailed {
            what: format!("pg_ctl stop of {}", member.name),
            output: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// The running postmaster of a data directory, by its `postmaster.pid`.
fn postmaster_pid(data: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(data.join("postmaster.pid")).ok()?;
    let pid: u32 = text.lines().next()?.trim().parse().ok()?;
    process::is_alive(pid, "postgres").then_some(pid)
}

#[derive(Debug, Serialize)]
struct LabStatusDocument {
    dir: PathBuf,
    spec: LabSpec,
    components: Vec<ComponentStatus>,
}

#[derive(Debug, Serialize)]
struct ComponentStatus {
    name: String,
    address: String,
    pid: Option<u32>,
    running: bool,
    patroni_version: Option<Version>,
    postgres_pid: Option<u32>,
    spare: bool,
}

fn status(layout: &Layout, format: OutputFormat) -> Result<Exit, LabError> {
    let state = LabState::load(layout)?.ok_or_else(|| LabError::NoLab {
        dir: layout.dir.clone(),
    })?;
    let run_as = RunAs::detect()?;
    let spec = &state.spec;
    let infrastructure = spec.infrastructure_address();
    let mut components = vec![
        ComponentStatus {
            name: "etcd".into(),
            address: format!("{infrastructure}:{}", files::ETCD_CLIENT_PORT),
            pid: etcd_daemon(layout, spec).running_pid(),
            running: false,
            patroni_version: None,
            postgres_pid: None,
            spare: false,
        },
        ComponentStatus {
            name: "sshd".into(),
            address: format!(
                "*:{} ({} addresses)",
                files::SSH_PORT,
                files::ssh_addresses(spec).len()
            ),
            pid: sshd_daemon(layout).running_pid(),
            running: false,
            patroni_version: None,
            postgres_pid: None,
            spare: false,
        },
    ];
    for member in spec.all_members() {
        components.push(ComponentStatus {
            address: format!("{}:8008 / :5432", member.address),
            pid: member_daemon(layout, &state, &member, run_as).running_pid(),
            running: false,
            patroni_version: Some(state.version_of(&member.name)),
            postgres_pid: postmaster_pid(&layout.member_data(&member.name)),
            spare: member.spare,
            name: member.name,
        });
    }
    for component in &mut components {
        component.running = component.pid.is_some();
    }
    let document = LabStatusDocument {
        dir: layout.dir.clone(),
        spec: spec.clone(),
        components,
    };
    let text = match format {
        OutputFormat::Table => render_lab_status(&document),
        other => ui::render_document(other, &document)
            .map_err(|error| LabError::io("render", Path::new("stdout"), &error))?,
    };
    ui::print_stdout(&text).map_err(|error| LabError::io("write", Path::new("stdout"), &error))?;
    Ok(Exit::Success)
}

fn render_lab_status(document: &LabStatusDocument) -> String {
    let rows = document
        .components
        .iter()
        .map(|component| {
            vec![
                component.name.clone(),
                component.address.clone(),
                component
                    .pid
                    .map_or_else(|| "-".into(), |pid| pid.to_string()),
                if component.running {
                    "running".into()
                } else {
                    "stopped".into()
                },
                component
                    .patroni_version
                    .map(|version| version.to_string())
                    .unwrap_or_default(),
                component
                    .postgres_pid
                    .map(|pid| pid.to_string())
                    .unwrap_or_default(),
                if component.spare {
                    "spare".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    let title = format!("Lab: {} ({})", document.dir.display(), document.spec.scope);
    let mut text = ui::table(
        Some(&title),
        &[
            "Component",
            "Address",
            "PID",
            "State",
            "Patroni",
            "PostgreSQL PID",
            "Note",
        ],
        rows,
        &[2, 5],
    );
    text.push('\n');
    text
}

async fn member(layout: &Layout, action: MemberAction, name: &str) -> Result<Exit, LabError> {
    let _lock = lock(layout)?;
    let mut state = LabState::load(layout)?.ok_or_else(|| LabError::NoLab {
        dir: layout.dir.clone(),
    })?;
    let members = state.spec.all_members();
    let Some(member) = members.iter().find(|member| member.name == name) else {
        return Err(LabError::UnknownMember {
            name: name.into(),
            known: members.into_iter().map(|member| member.name).collect(),
        });
    };
    let run_as = RunAs::detect()?;
    match action {
        MemberAction::Kill => {
            let daemon = member_daemon(layout, &state, member, run_as);
            match daemon.running_pid() {
                Some(pid) => {
                    daemon.kill()?;
                    eprintln!(
                        "lab: killed Patroni of {name} (pid {pid}, SIGKILL); PostgreSQL keeps running, as after a crash"
                    );
                }
                None => eprintln!("lab: Patroni of {name} is not running"),
            }
        }
        MemberAction::Stop => {
            let daemon = member_daemon(layout, &state, member, run_as);
            if daemon.running_pid().is_none() {
                eprintln!("lab: Patroni of {name} is not running");
            } else if daemon.stop(Duration::from_secs(60))? {
                eprintln!("lab: stopped Patroni of {name}");
            } else {
                return Err(LabError::Invalid(format!(
                    "Patroni of {name} did not stop within 60 s (see {})",
                    daemon.log_file.display()
                )));
            }
        }
        MemberAction::Start { patroni_version } => {
            if let Some(version) = patroni_version {
                if version == state.spec.patroni_version {
                    state.member_versions.remove(name);
                } else {
                    state.member_versions.insert(name.to_string(), version);
                }
                state.save(layout)?;
            }
            let version = state.version_of(name);
            venv::ensure(version)?;
            let daemon = member_daemon(layout, &state, member, run_as);
            if let Some(pid) = daemon.running_pid() {
                eprintln!("lab: Patroni of {name} already runs (pid {pid})");
                return Ok(Exit::Success);
            }
            let pid = daemon.start()?;
            wait_for_api(layout, &daemon, pid, name).await?;
            eprintln!(
                "lab: started Patroni {version} for {name} (pid {pid}); its REST API answers"
            );
        }
    }
    Ok(Exit::Success)
}

/// Waits until a freshly started member's REST API answers, failing with its log if it dies.
async fn wait_for_api(
    layout: &Layout,
    daemon: &Daemon,
    pid: u32,
    name: &str,
) -> Result<(), LabError> {
    let target = lab_target(layout).await?;
    let url = target
        .member(name)
        .map(|member| member.api_url.clone())
        .ok_or_else(|| LabError::Invalid(format!("{name} is not in the lab inventory")))?;
    let client =
        PatroniClient::new(&target.rest).map_err(|error| LabError::Cluster(error.to_string()))?;
    let deadline = Instant::now() + Duration::from_secs(60);
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

    #[test]
    fn the_inventory_names_every_member_and_no_secret() {
        let mut spec = spec(2, 1, "127.0.0.11");
        spec.tls = true;
        let text = files::inventory(&spec);
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
}
