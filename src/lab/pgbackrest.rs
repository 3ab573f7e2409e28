//! The WAL archive a standby lab's `geo` cluster follows: a pgBackRest repository on local
//! disk (`pgbackrest/repo`, stanza = the primary's scope). Each member has its own
//! configuration (its `pg1-path`: `archive-get` and `restore` need it), found through
//! `PGBACKREST_CONFIG` in Patroni's environment, which PostgreSQL inherits; so the cluster-wide
//! `restore_command` is the same on every member. A shared one without `pg1-path` serves the
//! inventory's `backup:` (listing backups needs none). pgBackRest runs as the daemon account.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::LabError;
use super::LabSpec;
use super::files;
use super::layout::{LabMember, Layout};
use super::process::RunAs;

pub(crate) const PROGRAM: &str = "/usr/bin/pgbackrest";

/// `[global]` settings every configuration shares: lz4 (fast on 2 cores), a fast checkpoint to
/// start a backup, retention set (pgBackRest warns on every backup without one).
fn global_section(layout: &Layout, logs: &Path) -> String {
    format!(
        "[global]\n\
         repo1-path={repo}\n\
         repo1-retention-full=2\n\
         compress-type=lz4\n\
         process-max=2\n\
         start-fast=y\n\
         log-path={log}\n\
         lock-path={lock}\n\
         spool-path={spool}\n\
         log-level-console=info\n\
         log-level-file=detail\n",
        repo = layout.pgbackrest_repo().display(),
        log = logs.join("log").display(),
        lock = logs.join("lock").display(),
        spool = logs.join("spool").display(),
    )
}

/// A member's configuration. `archive-get` runs once per `wal_retrieve_retry_interval` while a
/// standby waits for the next segment, `archive-push` once per segment: at `warn` they do not
/// fill patroni.log with INFO lines (their log files keep the detail).
pub(crate) fn member_config(layout: &Layout, spec: &LabSpec, member: &LabMember) -> String {
    let member_dir = layout.member(&member.name);
    format!(
        "# Written by `pgha lab up`.\n{global}\n\
         [{stanza}]\n\
         pg1-path={data}\n\
         pg1-socket-path={socket}\n\
         pg1-port=5432\n\
         pg1-user=postgres\n\n\
         [global:archive-get]\n\
         log-level-console=warn\n\n\
         [global:archive-push]\n\
         log-level-console=warn\n",
        global = global_section(layout, &layout.member_pgbackrest(&member.name)),
        stanza = spec.scope,
        data = layout.member_data(&member.name).display(),
        socket = member_dir.display(),
    )
}

/// The configuration the inventory names: the repository only (`info` needs no `pg1-path`;
/// a restore by pgha passes its own).
pub(crate) fn shared_config(layout: &Layout) -> String {
    format!(
        "# Written by `pgha lab up`: the repository, for listing and restoring backups.\n{}",
        global_section(layout, &layout.pgbackrest())
    )
}

/// The lines `patroni.yml` gains on a primary member of an archiving lab: WAL goes to the
/// repository. A local parameter (not DCS-wide): it names this member's configuration through
/// the environment, and the standby cluster's DCS never gets it.
pub(crate) fn archive_command(spec: &LabSpec) -> String {
    format!("pgbackrest --stanza={} archive-push %p", spec.scope)
}

/// What the standby cluster's members restore WAL with (`standby_cluster.restore_command`).
pub(crate) fn restore_command(spec: &LabSpec) -> String {
    format!("pgbackrest --stanza={} archive-get %f \"%p\"", spec.scope)
}

/// The create-replica method of the standby cluster's members: a standby restore of the
/// newest backup, `--delta` so that a retry works over what the last attempt left.
pub(crate) fn restore_replica_command(spec: &LabSpec) -> String {
    format!(
        "pgbackrest --stanza={} --delta --type=standby restore",
        spec.scope
    )
}

/// Writes the repository's directories and the shared configuration, owned by the daemon
/// account.
pub(crate) fn write_shared_files(layout: &Layout, run_as: RunAs) -> Result<(), LabError> {
    let dir = layout.pgbackrest();
    for path in [
        dir.clone(),
        layout.pgbackrest_repo(),
        dir.join("log"),
        dir.join("lock"),
    ] {
        files::create_dir(&path, 0o750)?;
        run_as.own(&path)?;
    }
    let config = layout.pgbackrest_config();
    files::write_file(&config, &shared_config(layout), 0o640)?;
    run_as.own(&config)
}

/// Writes a member's configuration and its log, lock and spool directories.
pub(crate) fn write_member_files(
    layout: &Layout,
    spec: &LabSpec,
    member: &LabMember,
    run_as: RunAs,
) -> Result<(), LabError> {
    let dir = layout.member_pgbackrest(&member.name);
    for path in [
        dir.clone(),
        dir.join("log"),
        dir.join("lock"),
        dir.join("spool"),
    ] {
        files::create_dir(&path, 0o700)?;
        run_as.own(&path)?;
    }
    let config = layout.member_pgbackrest_config(&member.name);
    files::write_file(&config, &member_config(layout, spec, member), 0o600)?;
    run_as.own(&config)
}

/// Makes sure the repository holds a backup to restore the standby cluster from: the stanza
/// and one full backup of `leader`, once. Returns whether it took one.
pub(crate) fn ensure_backup(
    layout: &Layout,
    spec: &LabSpec,
    leader: &str,
    run_as: RunAs,
) -> Result<bool, LabError> {
    let shared = layout.pgbackrest_config();
    // A failing `info` (no stanza yet) lists nothing: stanza-create says what is wrong, if anything.
    if run(&shared, &spec.scope, &["--output=json", "info"], run_as)
        .is_ok_and(|info| has_backup(&info))
    {
        return Ok(false);
    }
    let config = layout.member_pgbackrest_config(leader);
    let started = Instant::now();
    eprintln!(
        "lab: pgBackRest stanza {} and a full backup of {leader}",
        spec.scope
    );
    run(&config, &spec.scope, &["stanza-create"], run_as)?;
    run(&config, &spec.scope, &["--type=full", "backup"], run_as)?;
    eprintln!("lab: backup done ({:.1}s)", started.elapsed().as_secs_f64());
    Ok(true)
}

/// A full backup of `member` (a primary) now: what a rehearsal's standby restores once its
/// primary's database is filled.
pub(crate) fn full_backup(
    layout: &Layout,
    spec: &LabSpec,
    member: &str,
    run_as: RunAs,
) -> Result<(), LabError> {
    let config = layout.member_pgbackrest_config(member);
    run(&config, &spec.scope, &["--type=full", "backup"], run_as).map(drop)
}

/// Whether `info --output=json` lists at least one backup of the stanza.
fn has_backup(info: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(info).is_ok_and(|stanzas| {
        stanzas[0]["backup"]
            .as_array()
            .is_some_and(|backups| !backups.is_empty())
    })
}

/// Runs pgBackRest as the daemon account, from `/` (the caller's directory may be closed to
/// it); its stdout, or its output as the error.
fn run(config: &Path, stanza: &str, args: &[&str], run_as: RunAs) -> Result<String, LabError> {
    let mut command = Command::new(PROGRAM);
    command
        .arg(format!("--config={}", config.display()))
        .arg(format!("--stanza={stanza}"))
        .args(args)
        .current_dir("/")
        .env_clear()
        .env("PATH", "/usr/bin:/bin");
    if run_as.is_root_caller {
        std::os::unix::process::CommandExt::uid(&mut command, run_as.uid);
        std::os::unix::process::CommandExt::gid(&mut command, run_as.gid);
    }
    let output = command
        .output()
        .map_err(|error| LabError::io("run", &PathBuf::from(PROGRAM), &error))?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    Err(LabError::ToolFailed {
        what: format!("pgbackrest {}", args.join(" ")),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout).trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_is_found_in_info_only_when_listed() {
        assert!(!has_backup(
            r#"[{"name":"demo","backup":[],"status":{"code":2}}]"#
        ));
        assert!(has_backup(
            r#"[{"name":"demo","backup":[{"label":"20261123-082054F"}],"status":{"code":0}}]"#
        ));
        assert!(!has_backup("[]"));
        assert!(!has_backup("not json"));
    }
}
