//! The lab's daemons as `Daemon` definitions — etcd or the Consul double, sshd, Alertmanager,
//! one Patroni per member — and the PostgreSQL a paused or killed Patroni leaves behind, found by its `postmaster.pid`.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::files;
use super::layout::{EtcdMember, LabMember, LabState, Layout};
use super::process::{self, Daemon, RunAs};
use super::venv;
use super::{LabError, LabSpec};

/// One etcd member's daemon. Every member lists the whole cluster in `--initial-cluster`; etcd
/// reads it only when its data directory is new.
pub(super) fn etcd_daemon(layout: &Layout, spec: &LabSpec, member: &EtcdMember) -> Daemon {
    let dir = layout.etcd_member(member.number);
    let data = dir.join("data");
    let client = format!("http://{}:{}", member.address, files::ETCD_CLIENT_PORT);
    let peer = peer_url(member);
    let initial_cluster = spec
        .etcd_members()
        .iter()
        .map(|other| format!("{}={}", other.name, peer_url(other)))
        .collect::<Vec<_>>()
        .join(",");
    Daemon {
        name: member.daemon.clone(),
        program: PathBuf::from("/usr/bin/etcd"),
        args: vec![
            "--name".into(),
            member.name.clone(),
            "--data-dir".into(),
            data.to_string_lossy().into_owned(),
            "--listen-client-urls".into(),
            client.clone(),
            "--advertise-client-urls".into(),
            client,
            "--listen-peer-urls".into(),
            peer.clone(),
            "--initial-advertise-peer-urls".into(),
            peer,
            "--initial-cluster".into(),
            initial_cluster,
            "--initial-cluster-state".into(),
            "new".into(),
            "--logger".into(),
            "zap".into(),
        ],
        pid_file: dir.join("etcd.pid"),
        log_file: dir.join("etcd.log"),
        working_dir: dir,
        identity: data.to_string_lossy().into_owned(),
        run_as: None,
        env: Vec::new(),
    }
}

fn peer_url(member: &EtcdMember) -> String {
    format!("http://{}:{}", member.address, files::ETCD_PEER_PORT)
}

/// Every etcd member's daemon, member 1 first.
pub(super) fn etcd_daemons(layout: &Layout, spec: &LabSpec) -> Vec<(EtcdMember, Daemon)> {
    spec.etcd_members()
        .into_iter()
        .map(|member| {
            let daemon = etcd_daemon(layout, spec, &member);
            (member, daemon)
        })
        .collect()
}

/// pgha's Consul double (its own crate in pgha's workspace), shipped beside the pgha binary
/// (`PGHA_CONSUL_DOUBLE` overrides).
pub(super) fn consul_daemon(layout: &Layout, spec: &LabSpec) -> Result<Daemon, LabError> {
    let program = match std::env::var_os("PGHA_CONSUL_DOUBLE") {
        Some(path) => PathBuf::from(path),
        None => std::env::current_exe()
            .map_err(|error| LabError::io("locate", Path::new("pgha"), &error))?
            .with_file_name("pgha-consul-double"),
    };
    if !program.is_file() {
        return Err(LabError::Missing {
            what: format!("the Consul double at {}", program.display()),
            hint: "build it with `cargo build --release` at the workspace root (it ships beside pgha) or set PGHA_CONSUL_DOUBLE".into(),
        });
    }
    let dir = layout.consul();
    let listen = format!("{}:{}", spec.infrastructure_address(), files::CONSUL_PORT);
    Ok(Daemon {
        name: "consul".into(),
        program,
        args: vec![
            "--listen".into(),
            listen.clone(),
            "--node".into(),
            "lab".into(),
            "--datacenter".into(),
            "lab".into(),
        ],
        pid_file: dir.join("consul.pid"),
        log_file: dir.join("consul.log"),
        working_dir: dir,
        identity: listen,
        run_as: None,
        env: vec![("RUST_LOG".into(), "info".into())],
    })
}

pub(super) fn sshd_daemon(layout: &Layout) -> Daemon {
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

pub(super) fn alertmanager_daemon(layout: &Layout, spec: &LabSpec) -> Daemon {
    let dir = layout.alertmanager();
    let config = dir.join("alertmanager.yml");
    Daemon {
        name: "alertmanager".into(),
        program: PathBuf::from("/usr/bin/prometheus-alertmanager"),
        args: vec![
            format!("--config.file={}", config.display()),
            format!("--storage.path={}", dir.join("data").display()),
            format!(
                "--web.listen-address={}:{}",
                spec.infrastructure_address(),
                files::ALERTMANAGER_PORT
            ),
            // A single instance: no gossip port to collide with another lab's.
            "--cluster.listen-address=".into(),
        ],
        pid_file: dir.join("alertmanager.pid"),
        log_file: dir.join("alertmanager.log"),
        working_dir: dir.clone(),
        identity: config.to_string_lossy().into_owned(),
        run_as: None,
        env: Vec::new(),
    }
}

pub(super) fn member_daemon(
    layout: &Layout,
    state: &LabState,
    member: &LabMember,
    run_as: RunAs,
) -> Daemon {
    let dir = layout.member(&member.name);
    let config = layout.member_config(&member.name);
    let venv = venv::cache_dir().join(format!("patroni-{}", state.version_of(&member.name)));
    let mut env = vec![("HOME".into(), dir.to_string_lossy().into_owned())];
    if state.spec.archives_wal() {
        // PostgreSQL inherits it: archive_command, restore_command and the create-replica
        // method find this member's own pgBackRest configuration (its pg1-path) there.
        env.push((
            "PGBACKREST_CONFIG".into(),
            layout
                .member_pgbackrest_config(&member.name)
                .to_string_lossy()
                .into_owned(),
        ));
    }
    Daemon {
        name: member.name.clone(),
        program: venv::patroni_binary(&venv),
        args: vec![config.to_string_lossy().into_owned()],
        pid_file: dir.join("patroni.pid"),
        log_file: dir.join("patroni.log"),
        working_dir: dir.clone(),
        identity: config.to_string_lossy().into_owned(),
        run_as: Some(run_as),
        env,
    }
}

/// Starts a daemon and waits until it accepts TCP connections on `address`.
pub(super) async fn start_and_listen(
    daemon: &Daemon,
    address: (Ipv4Addr, u16),
) -> Result<(), LabError> {
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

pub(super) fn stop_orphaned_postgres(
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
pub(super) fn postmaster_pid(data: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(data.join("postmaster.pid")).ok()?;
    let pid: u32 = text.lines().next()?.trim().parse().ok()?;
    process::is_alive(pid, "postgres").then_some(pid)
}
