//! What a rehearsal does to its lab beyond `up`: the lab's sshd taken away with every session
//! it serves (`lab ssh stop`, the `ssh-drop` fault) and given back, and a database filled with
//! pgbench to a share of the real one's size (and, for a standby cluster, backed up again: the
//! backup its members are restored from then holds it).

use std::path::Path;
use std::time::Duration;

use super::daemons::{sshd_daemon, start_and_listen};
use super::layout::{LabState, Layout};
use super::process::{self, RunAs};
use super::{LabError, files, lock, pgbackrest};
use crate::exit::Exit;

/// pgbench's scale unit on PostgreSQL 15: 100 000 accounts, their indexes and the small tables.
pub const PGBENCH_UNIT_BYTES: u64 = 15 << 20;

/// `lab ssh stop|start`. Stopping ends the listener and every session it serves (their
/// processes are its children: found by their parent's PID, never by name), as a machine
/// whose network drops; starting waits until it listens again.
pub(super) async fn ssh(layout: &Layout, start: bool) -> Result<Exit, LabError> {
    let _lock = lock(layout)?;
    let state = LabState::load(layout)?.ok_or_else(|| LabError::NoLab {
        dir: layout.dir.clone(),
    })?;
    let sshd = sshd_daemon(layout);
    if start {
        if sshd.running_pid().is_none() {
            start_and_listen(
                &sshd,
                (state.spec.infrastructure_address(), files::SSH_PORT),
            )
            .await?;
            eprintln!("lab: sshd listens again");
        }
        return Ok(Exit::Success);
    }
    let Some(listener) = sshd.running_pid() else {
        eprintln!("lab: sshd is not running");
        return Ok(Exit::Success);
    };
    let sessions = children_of(listener);
    if !sshd.stop(Duration::from_secs(10))? {
        sshd.kill()?;
    }
    for pid in &sessions {
        // A session already gone is what was wanted.
        let _ = process::signal(*pid, rustix::process::Signal::KILL);
    }
    eprintln!(
        "lab: sshd stopped (pid {listener}) with {} session(s)",
        sessions.len()
    );
    Ok(Exit::Success)
}

/// The processes whose parent is `parent` (`/proc/PID/stat`'s fourth field).
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // The command may hold spaces and parentheses: the fields follow the last ')'.
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                == Some(parent)
        })
        .collect()
}

/// `pgbench -i -s UNITS` on `member` (the leader), through its own socket as the database's
/// account: the tables a rehearsal's base backups and restores copy.
pub async fn fill(dir: &Path, member: &str, units: u32) -> Result<(), LabError> {
    let layout = Layout::new(dir);
    let socket_dir = layout.member(member);
    let run_as = RunAs::detect()?;
    let mut command = tokio::process::Command::new(format!("{}/pgbench", files::POSTGRES_BIN));
    command
        .args([
            "-i",
            "-q",
            "-s",
            &units.to_string(),
            "-p",
            "5432",
            "-U",
            "postgres",
        ])
        .arg("-h")
        .arg(&socket_dir)
        .arg("postgres")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    if run_as.is_root_caller {
        command.uid(run_as.uid).gid(run_as.gid);
    }
    let output = command
        .output()
        .await
        .map_err(|error| LabError::io("run pgbench for", &socket_dir, &error))?;
    if output.status.success() {
        return Ok(());
    }
    Err(LabError::ToolFailed {
        what: format!("pgbench -i -s {units} on {member}"),
        output: String::from_utf8_lossy(&output.stderr).trim().to_string(),
    })
}

/// A full pgBackRest backup of `member`, the primary cluster's leader, taken now.
pub async fn backup(dir: &Path, member: &str) -> Result<(), LabError> {
    let layout = Layout::new(dir);
    let state = LabState::load(&layout)?.ok_or_else(|| LabError::NoLab {
        dir: layout.dir.clone(),
    })?;
    if !state.spec.archives_wal() {
        return Err(LabError::Refused(
            "the lab has no standby cluster: it keeps no backups".into(),
        ));
    }
    let run_as = RunAs::detect()?;
    let member = member.to_string();
    tokio::task::spawn_blocking(move || {
        pgbackrest::full_backup(&layout, &state.spec, &member, run_as)
    })
    .await
    .map_err(|error| LabError::Invalid(format!("the backup's task failed: {error}")))?
}
