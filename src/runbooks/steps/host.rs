//! Host commands as steps — the seeds' work on the machines themselves: back up and restore
//! files, wipe a data directory, create a directory, check free disk, restore a backup with a
//! backup tool, set a tag in Patroni's configuration. Each is one command whose own exit status
//! is its verification (`set -e`, `cmp` after copying, a checked `df`), run as the database's OS
//! user (or with sudo where root is needed) through the environment's service control, only on
//! a member the inventory lists and at the host it gives. Every script is fixed text whose
//! values arrive as positional parameters (`remote::Script`). Wiping a data directory is the one
//! destructive step: it names the member's configured data directory and nothing else, needs
//! the member's name typed, and refuses unless the member is not the leader and its Patroni is
//! stopped — and the command itself refuses if PostgreSQL still runs on that directory.

use std::time::Duration;

use super::{PlanError, remote_host, service_control};
use crate::inventory::{BackupPolicy, BackupTool, ClusterTarget};
use crate::observe::ClusterView;
use crate::plan::{Action, Check, Gate, Idempotency, RemoteAction, Step, StuckWatch, TagAction};
use crate::remote::{Script, ServiceControl, checked_name, checked_path};

/// Copying a few files, wiping a directory: minutes at most.
const COMMAND_TIMEOUT: Duration = Duration::from_mins(10);

/// Restoring a large database takes hours (the seeds speak of six).
const RESTORE_TIMEOUT: Duration = Duration::from_hours(6);

/// One inventory member's host, with what commands on it need to know.
pub(crate) struct Host<'a> {
    name: String,
    /// The inventory's host for the member, never the DCS's.
    address: &'a str,
    control: &'a ServiceControl,
    data_dir: Option<String>,
    patroni_config: Option<String>,
    log_file: Option<String>,
    sudo: bool,
}

impl<'a> Host<'a> {
    pub(crate) fn new(
        target: &'a ClusterTarget,
        view: &ClusterView,
        name: &str,
    ) -> Result<Self, PlanError> {
        let address = remote_host(target, view, name)?;
        let control = service_control(target, "run commands as the database's user")?;
        let member = target.member(name);
        Ok(Host {
            name: name.to_string(),
            address,
            control,
            data_dir: member.and_then(|member| member.data_dir.clone()),
            patroni_config: member.and_then(|member| member.patroni_config.clone()),
            log_file: member.and_then(|member| member.log_file.clone()),
            sudo: target.ssh.as_ref().is_some_and(|ssh| ssh.sudo),
        })
    }

    /// The member whose host this is.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Sets `tags.<tag>: <value>` in the member's Patroni configuration file over SSH, the
    /// original kept beside it as `<file>.pgha-<label>`; `None` where pgha cannot: the inventory
    /// names no `patroni_config` for the member, or it runs on Kubernetes (its configuration
    /// lives in the pod's manifest). Patroni applies it on `POST /reload`.
    pub(crate) fn set_tag(
        &self,
        tag: &str,
        value: bool,
        label: &str,
    ) -> Result<Option<Step>, PlanError> {
        if matches!(self.control, ServiceControl::Kubernetes { .. }) {
            return Ok(None);
        }
        let Some(path) = &self.patroni_config else {
            return Ok(None);
        };
        let path = checked_path("Patroni configuration", path).map_err(unsafe_value)?;
        let name = &self.name;
        let backup = format!("{path}.pgha-{label}");
        Ok(Some(Step {
            id: format!("tag-{tag}-{name}"),
            title: format!("Set tags.{tag}: {value} in {name}'s Patroni configuration"),
            action: Action::Tag(TagAction {
                member: name.clone(),
                host: self.address.to_string(),
                path: path.clone(),
                backup: backup.clone(),
                tag: tag.into(),
                value,
                sudo: self.sudo,
                timeout: Duration::from_mins(1),
            }),
            gate: Gate::Confirm {
                question: format!(
                    "Set tags.{tag}: {value} in {path} on {name} (the original kept as {backup})?"
                ),
            },
            prechecks: Vec::new(),
            verify: None,
            // The edit reads the file first and writes nothing when the tag is already set.
            idempotency: Idempotency::SafeToRepeat,
        }))
    }

    fn data_dir(&self) -> Result<String, PlanError> {
        let configured = self.data_dir.as_deref().ok_or_else(|| {
            PlanError::Refused(format!(
                "the inventory names no data directory for {} (set `data_dir` for the cluster or the member)",
                self.name
            ))
        })?;
        checked_path("data directory", configured).map_err(unsafe_value)
    }

    /// The files asked for, or the seed's: pg_hba.conf and pg_ident.conf of the data directory.
    pub(crate) fn files_or_config(&self, files: &[String]) -> Result<Vec<String>, PlanError> {
        if !files.is_empty() {
            return Ok(files.to_vec());
        }
        let data_dir = self.data_dir()?;
        Ok(vec![
            format!("{data_dir}/pg_hba.conf"),
            format!("{data_dir}/pg_ident.conf"),
        ])
    }

    /// A path next to the data directory (where the seed keeps its copies).
    pub(crate) fn beside_data_directory(&self, name: &str) -> Result<String, PlanError> {
        let data_dir = self.data_dir()?;
        let parent = data_dir.rsplit_once('/').map_or("", |(parent, _)| parent);
        if parent.is_empty() {
            return Err(PlanError::Refused(format!(
                "{data_dir} has no parent directory to keep copies in: pass --to"
            )));
        }
        Ok(format!("{parent}/{name}"))
    }

    fn step(
        &self,
        id: String,
        title: String,
        script: Script,
        as_db_user: bool,
        gate: Gate,
    ) -> Result<Step, PlanError> {
        let command = script.command();
        let (transport, command) = if as_db_user {
            self.control
                .as_db_user(&self.name, command)
                .map_err(|error| PlanError::Refused(error.to_string()))?
        } else {
            (crate::remote::Transport::Ssh, command.sudo(self.sudo))
        };
        Ok(Step {
            id,
            title,
            action: Action::Remote(RemoteAction {
                member: self.name.clone(),
                host: self.address.to_string(),
                transport,
                command,
                timeout: COMMAND_TIMEOUT,
            }),
            gate,
            prechecks: Vec::new(),
            verify: None,
            idempotency: Idempotency::SafeToRepeat,
        })
    }

    /// Copies `files` into `to`, keeping modes, then compares each copy with its original.
    pub(crate) fn backup(&self, files: &[String], to: &str) -> Result<Step, PlanError> {
        let files = checked_files(files)?;
        let to = checked_path("backup directory", to).map_err(unsafe_value)?;
        let script = host_script(&[
            "to=$1; shift",
            r#"mkdir -p -- "$to""#,
            r#"for f do c="$to/${f##*/}"; cp -p -- "$f" "$c"; cmp -- "$f" "$c"; done"#,
        ])
        .value(&to)
        .values(&files);
        let names: Vec<&str> = files.iter().map(|file| base_name(file)).collect();
        self.step(
            format!("backup-files-{}", self.name),
            format!("Back up {} of {} to {to}", names.join(", "), self.name),
            script,
            true,
            Gate::None,
        )
    }

    /// Copies each file back from `from` to its original path, then compares.
    pub(crate) fn restore(&self, files: &[String], from: &str) -> Result<Step, PlanError> {
        let files = checked_files(files)?;
        let from = checked_path("backup directory", from).map_err(unsafe_value)?;
        let script = host_script(&[
            "from=$1; shift",
            r#"for f do c="$from/${f##*/}"; cp -p -- "$c" "$f"; cmp -- "$c" "$f"; done"#,
        ])
        .value(&from)
        .values(&files);
        let names: Vec<&str> = files.iter().map(|file| base_name(file)).collect();
        self.step(
            format!("restore-files-{}", self.name),
            format!("Restore {} of {} from {from}", names.join(", "), self.name),
            script,
            true,
            Gate::Confirm {
                question: format!(
                    "Overwrite {} on {} with the copies in {from}?",
                    names.join(", "),
                    self.name
                ),
            },
        )
    }

    /// Empties the member's configured data directory. Pre-checks (added by the caller's plan
    /// and re-checked before acting): not the leader, Patroni stopped there.
    pub(crate) fn wipe_data_directory(&self) -> Result<Step, PlanError> {
        let data_dir = self.data_dir()?;
        let name = &self.name;
        let script = host_script(&[
            r#"d=$1; refusing="delete it""#,
            r#"test -d "$d""#,
            POSTMASTER_GUARD,
            r#"find "$d" -mindepth 1 -delete"#,
            r#"test -z "$(ls -A -- "$d")""#,
        ])
        .value(&data_dir);
        let mut step = self.step(
            format!("wipe-data-{name}"),
            format!("Delete everything in {data_dir} on {name}"),
            script,
            true,
            Gate::TypeToConfirm {
                question: format!("This deletes every file in {data_dir} on {name}."),
                expected: name.clone(),
            },
        )?;
        step.prechecks = vec![
            Check::NotLeader {
                member: name.clone(),
            },
            Check::Unreachable {
                member: name.clone(),
            },
        ];
        step.idempotency = Idempotency::SafeToRepeat;
        Ok(step)
    }

    /// `mkdir -p` with an owner (`user` or `user:group`) and an octal mode, as root.
    pub(crate) fn create_directory(
        &self,
        path: &str,
        owner: &str,
        mode: &str,
    ) -> Result<Step, PlanError> {
        let path = checked_path("directory", path).map_err(unsafe_value)?;
        let owner = checked_owner(owner)?;
        let mode = checked_mode(mode)?;
        let script = host_script(&[
            "p=$1; owner=$2; mode=$3",
            r#"mkdir -p -- "$p""#,
            r#"chown -- "$owner" "$p""#,
            r#"chmod -- "$mode" "$p""#,
            r#"stat -c '%U:%G %a %n' -- "$p""#,
        ])
        .values([&path, &owner, &mode]);
        self.step(
            format!("mkdir-{}", self.name),
            format!("Create {path} ({owner}, {mode}) on {}", self.name),
            script,
            false,
            Gate::None,
        )
    }

    /// Passes when the host answers over SSH: the operator's access, checked before anything
    /// depends on it.
    pub(crate) fn reachable(&self) -> Result<Step, PlanError> {
        self.step(
            format!("ssh-{}", self.name),
            format!("Check that {} answers over SSH", self.name),
            host_script(&[r#"echo "$(hostname) answers""#]),
            false,
            Gate::None,
        )
    }

    /// Passes when the data directory's filesystem has at least `need` bytes available.
    pub(crate) fn free_space_at_least(&self, need: u64) -> Result<Step, PlanError> {
        let data_dir = self.data_dir()?;
        // A new member has no data directory yet: measure the filesystem that will hold it.
        let script = host_script(&[
            "d=$1; need=$2",
            r#"while [ ! -e "$d" ]; do d=$(dirname -- "$d"); done"#,
            r#"available=$(df -P -B1 -- "$d" | awk 'NR==2 {print $4}')"#,
            // printf, not echo: dash's echo rewrites backslashes in the path.
            r#"printf '%s bytes available on the filesystem of %s, %s needed\n' "$available" "$1" "$need""#,
            r#"test "$available" -ge "$need""#,
        ])
        .value(&data_dir)
        .value(need.to_string());
        self.step(
            format!("disk-{}", self.name),
            format!(
                "Check that {} has {} free for {data_dir}",
                self.name,
                crate::ui::human_bytes(need)
            ),
            script,
            true,
            Gate::None,
        )
    }

    /// Passes when the newest backup `policy.tool` lists finished within `policy.max_age`
    /// (by the host's clock); when it is older (or there is none), fails — or, with
    /// `when_older: warn`, says so and passes. Read-only, as the database's user.
    pub(crate) fn newest_backup_within(&self, policy: &BackupPolicy) -> Result<Step, PlanError> {
        let (list, options, described) = match &policy.tool {
            BackupTool::Pgbackrest { stanza, config } => {
                let stanza = checked_name("pgBackRest stanza", stanza).map_err(unsafe_value)?;
                let mut options = config_option(config.as_ref())?;
                options.push(format!("--stanza={stanza}"));
                (
                    PGBACKREST_FINISHED,
                    options,
                    format!("pgBackRest stanza {stanza}"),
                )
            }
            BackupTool::WalG { config } => (
                WALG_FINISHED,
                config_option(config.as_ref())?,
                "WAL-G".to_string(),
            ),
            BackupTool::WalE { envdir } => (
                WALE_FINISHED,
                envdir_option(envdir.as_ref())?,
                "WAL-E".to_string(),
            ),
        };
        let max_age = policy.max_age.as_secs();
        let script = host_script(&[
            "max=$1; when_older=$2; shift 2",
            list,
            r#"if [ -z "$finished" ]; then age=none; else age=$(( $(date +%s) - finished )); fi"#,
            r#"if [ "$age" != none ] && [ "$age" -le "$max" ]; then printf 'the newest backup finished %s s ago (at most %s s)\n' "$age" "$max"; exit 0; fi"#,
            r#"if [ "$age" = none ]; then said='no backup is listed'; else said="the newest backup finished $age s ago, over the $max s allowed"; fi"#,
            r#"if [ "$when_older" = warn ]; then printf 'WARNING: %s; going on (backup.when_older: warn)\n' "$said"; exit 0; fi"#,
            r#"printf '%s: take a backup first\n' "$said" >&2; exit 1"#,
        ])
        .value(max_age.to_string())
        .value(if policy.refuse_when_older { "refuse" } else { "warn" })
        .values(options);
        self.step(
            format!("backup-age-{}", self.name),
            format!(
                "Check on {} that the newest backup ({described}) finished less than {} ago",
                self.name,
                humantime::format_duration(policy.max_age)
            ),
            script,
            true,
            Gate::None,
        )
    }

    /// Removes the `patroni.dynamic.json` a restore brought from the primary site: Patroni
    /// prefers that cached configuration to `bootstrap.dcs` when the DCS has none, and a member
    /// started with it runs without `standby_cluster` — it promotes itself (a split brain). Only
    /// before the member starts: the command refuses once a postmaster runs there.
    pub(crate) fn remove_dynamic_config(&self) -> Result<Step, PlanError> {
        let data_dir = self.data_dir()?;
        self.step(
            format!("remove-dynamic-config-{}", self.name),
            format!("Remove the restored patroni.dynamic.json on {}", self.name),
            host_script(&[
                r#"d=$1; refusing="remove patroni.dynamic.json (it started with it)""#,
                r#"test -d "$d""#,
                POSTMASTER_GUARD,
                r#"rm -f -- "$d/patroni.dynamic.json""#,
                r#"test ! -e "$d/patroni.dynamic.json""#,
                r#"printf 'no patroni.dynamic.json in %s\n' "$d""#,
            ])
            .value(&data_dir),
            true,
            Gate::None,
        )
    }

    /// A watch on the member's PostgreSQL log while it starts (see `StuckWatch`), read over
    /// SSH; `None` when the inventory names no `log_file` for it (the wait then goes on to its
    /// deadline). The file's name may be a pattern (`postgresql-*.log`): the newest file
    /// matching it is read.
    pub(crate) fn stuck_watch(&self, after: Duration) -> Result<Option<StuckWatch>, PlanError> {
        let Some(log_file) = &self.log_file else {
            return Ok(None);
        };
        let log_file = checked_path("log file", log_file).map_err(unsafe_value)?;
        let read = self.read_action(
            format!("read-log-{}", self.name),
            format!("Read {}'s PostgreSQL log", self.name),
            host_script(&[
                // The directory is literal (quoted); the file name is a pattern, expanded by
                // globbing only (no field splitting).
                r#"dir=$(dirname -- "$1"); pattern=$(basename -- "$1")"#,
                r#"IFS=; newest=; for f in "$dir"/$pattern; do if [ -f "$f" ] && { [ -z "$newest" ] || [ "$f" -nt "$newest" ]; }; then newest=$f; fi; done"#,
                r#"if [ -z "$newest" ]; then printf 'no file matches %s\n' "$1" >&2; exit 1; fi"#,
                r#"tail -n 200 -- "$newest""#,
            ])
            .value(&log_file),
        )?;
        Ok(Some(StuckWatch {
            member: self.name.clone(),
            after,
            read: RemoteAction {
                timeout: Duration::from_secs(20),
                ..read
            },
        }))
    }

    /// A read-only command printing the size and the available bytes of the filesystem that
    /// holds the data directory (`SIZE AVAILABLE`), for the doctor.
    pub(crate) fn disk_usage_read(&self) -> Result<RemoteAction, PlanError> {
        let data_dir = self.data_dir()?;
        self.read_action(
            format!("df-{}", self.name),
            format!("Read the free space of {}'s data directory", self.name),
            host_script(&[
                "d=$1",
                r#"while [ ! -e "$d" ]; do d=$(dirname -- "$d"); done"#,
                r#"df -P -B1 -- "$d" | awk 'NR==2 {print $2, $4}'"#,
            ])
            .value(&data_dir),
        )
    }

    /// A read-only command printing the bytes the data directory holds (0 when it does not
    /// exist yet), as the database's user (the directory is closed to others): a restore's
    /// progress.
    pub(crate) fn data_directory_size_read(&self) -> Result<RemoteAction, PlanError> {
        let data_dir = self.data_dir()?;
        let step = self.step(
            format!("du-{}", self.name),
            format!("Read the size of {}'s data directory", self.name),
            host_script(&[
                "d=$1",
                r#"if [ -d "$d" ]; then du -s -B1 -- "$d" 2>/dev/null | cut -f 1; else echo 0; fi"#,
            ])
            .value(&data_dir),
            true,
            Gate::None,
        )?;
        Ok(remote_of(step))
    }

    /// A read-only command as the operator's SSH user, for pgha to read and not a plan's step.
    fn read_action(
        &self,
        id: String,
        title: String,
        script: Script,
    ) -> Result<RemoteAction, PlanError> {
        let step = self.step(id, title, script, false, Gate::None)?;
        Ok(remote_of(step))
    }

    /// A backup tool's restore into the member's data directory, as the database's user.
    pub(crate) fn restore_from_backup(&self, tool: &BackupTool) -> Result<Step, PlanError> {
        let data_dir = self.data_dir()?;
        // The tool's own options arrive as "$@" after the data directory ($1).
        let (command, options) = match tool {
            BackupTool::Pgbackrest { stanza, config } => {
                let stanza = checked_name("pgBackRest stanza", stanza).map_err(unsafe_value)?;
                let mut options = config_option(config.as_ref())?;
                options.push(format!("--stanza={stanza}"));
                // A member is restored to follow the leader: standby.signal, never a
                // recovery that ends in a promotion. `--delta` lets an interrupted restore be
                // run again (pgBackRest otherwise wants an empty directory).
                (
                    r#"pgbackrest "$@" --pg1-path="$d" --type=standby --delta restore"#,
                    options,
                )
            }
            BackupTool::WalG { config } => (
                r#"wal-g "$@" backup-fetch "$d" LATEST"#,
                config_option(config.as_ref())?,
            ),
            BackupTool::WalE { envdir } => (
                concat!(
                    r#"if [ $# -gt 0 ]; then set -- envdir "$1" wal-e; else set -- wal-e; fi; "#,
                    r#""$@" backup-fetch "$d" LATEST"#
                ),
                envdir_option(envdir.as_ref())?,
            ),
        };
        self.step(
            format!("restore-backup-{}", self.name),
            format!("Restore the latest backup into {data_dir} on {}", self.name),
            host_script(&[
                r#"d=$1; shift; refusing="restore into it""#,
                r#"test -d "$d""#,
                POSTMASTER_GUARD,
                command,
            ])
            .value(&data_dir)
            .values(options),
            true,
            Gate::None,
        )
        .map(|step| with_timeout(step, RESTORE_TIMEOUT))
    }
}

/// `--config=<path>` for a backup tool, when the inventory names its configuration file.
fn config_option(config: Option<&String>) -> Result<Vec<String>, PlanError> {
    match config {
        Some(path) => checked_path("backup tool config", path)
            .map(|path| vec![format!("--config={path}")])
            .map_err(unsafe_value),
        None => Ok(Vec::new()),
    }
}

/// WAL-E's envdir directory, when the inventory names one: the script then runs
/// `envdir DIR wal-e …` (the seed's `/usr/bin/envdir /etc/wal-e.d/env wal-e`).
fn envdir_option(envdir: Option<&String>) -> Result<Vec<String>, PlanError> {
    match envdir {
        Some(path) => checked_path("WAL-E envdir", path)
            .map(|path| vec![path])
            .map_err(unsafe_value),
        None => Ok(Vec::new()),
    }
}

/// Sets `$finished` to when pgBackRest's newest backup stopped (epoch seconds; empty without
/// one), from `info --output=json` (`"timestamp":{"start":…,"stop":…}` per backup). A failing
/// `pgbackrest` says why on stderr and lists nothing.
const PGBACKREST_FINISHED: &str = r#"finished=$(pgbackrest "$@" --output=json info | tr -d ' \n' | grep -o '"timestamp":{"start":[0-9]*,"stop":[0-9]*}' | sed 's/.*"stop":\([0-9]*\)}/\1/' | sort -n | tail -n 1) || true"#;

/// The same from WAL-G's `backup-list --json --detail` (`"finish_time":"<RFC 3339>"`).
const WALG_FINISHED: &str = r#"finished=$(wal-g "$@" backup-list --json --detail | tr -d ' \n' | grep -o '"finish_time":"[^"]*"' | cut -d '"' -f 4 | while read -r at; do date -d "$at" +%s; done | sort -n | tail -n 1) || true"#;

/// The same from WAL-E's `backup-list`: a header line, then one tab-separated line per backup
/// whose second field is `last_modified` (`2019-06-15 04:27:42.235000+00:00` in seed 001,
/// `2015-05-18T10:13:25.000Z` in others; `date -d` reads both). With an envdir (`$1`), WAL-E
/// runs under `envdir`.
const WALE_FINISHED: &str = concat!(
    r#"if [ $# -gt 0 ]; then set -- envdir "$1" wal-e; else set -- wal-e; fi; "#,
    r#"finished=$("$@" backup-list | awk -F '\t' 'NR > 1 && $2 != "" {print $2}' | while IFS= read -r at; do date -d "$at" +%s; done | sort -n | tail -n 1) || true"#
);

/// Shell that stops a script when a postmaster still runs on the data directory `$d`: the
/// command refuses on its own, whatever the pre-checks saw. `$refusing` says what it refuses.
const POSTMASTER_GUARD: &str = r#"if [ -f "$d/postmaster.pid" ] && kill -0 "$(head -n 1 -- "$d/postmaster.pid")" 2>/dev/null; then printf 'PostgreSQL still runs on %s: refusing to %s\n' "$d" "$refusing" >&2; exit 3; fi"#;

/// A host script run from `/` (the login's working directory, root's home, may be closed to
/// the database's user, and `find` returns to where it started), stopping at the first error.
fn host_script(pieces: &[&'static str]) -> Script {
    Script::new(&[&["cd /", "set -eu"], pieces].concat())
}

/// The command of a step built by `Host::step`.
fn remote_of(step: Step) -> RemoteAction {
    match step.action {
        Action::Remote(read) => read,
        _ => unreachable!("a host step runs a command"),
    }
}

fn with_timeout(mut step: Step, timeout: Duration) -> Step {
    if let Action::Remote(action) = &mut step.action {
        action.timeout = timeout;
    }
    step
}

#[allow(clippy::needless_pass_by_value)] // used as `map_err(unsafe_value)`
fn unsafe_value(error: crate::remote::UnsafeValue) -> PlanError {
    PlanError::Refused(error.to_string())
}

fn checked_files(files: &[String]) -> Result<Vec<String>, PlanError> {
    if files.is_empty() {
        return Err(PlanError::Refused("no file named".into()));
    }
    files
        .iter()
        .map(|file| checked_path("file", file).map_err(unsafe_value))
        .collect()
}

fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn checked_owner(owner: &str) -> Result<String, PlanError> {
    let parts: Vec<&str> = owner.split(':').collect();
    if parts.is_empty() || parts.len() > 2 {
        return Err(PlanError::Refused(format!(
            "owner {owner:?} must be USER or USER:GROUP"
        )));
    }
    for part in &parts {
        checked_name("owner", part).map_err(unsafe_value)?;
    }
    Ok(owner.into())
}

fn checked_mode(mode: &str) -> Result<String, PlanError> {
    let valid =
        (3..=4).contains(&mode.len()) && mode.chars().all(|digit| ('0'..='7').contains(&digit));
    if valid {
        Ok(mode.into())
    } else {
        Err(PlanError::Refused(format!(
            "mode {mode:?} must be octal, like 0700"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::testing::view_led_by;

    fn target_with_service() -> (ClusterTarget, ClusterView) {
        let (mut target, view) = view_led_by("4.1.5", "node3", Some(1));
        target.service = Some(ServiceControl::Systemd {
            unit: "patroni".into(),
            sudo: true,
            db_user: "postgres".into(),
            upgrade: Vec::new(),
        });
        target.ssh = Some(crate::remote::SshSettings {
            user: Some("ops".into()),
            port: None,
            jump_host: None,
            identity_file: None,
            known_hosts: None,
            sudo: true,
        });
        (target, view)
    }

    fn line(step: &Step) -> String {
        let Action::Remote(action) = &step.action else {
            panic!("a command")
        };
        action.command.shell_line()
    }

    #[test]
    fn commands_run_as_the_database_user_or_with_sudo() {
        // What each command does with its values is proven in a real shell (shell_proof);
        // here: who runs it.
        let (target, view) = target_with_service();
        let host = Host::new(&target, &view, "node1").unwrap();
        let backup = host.backup(&["/d/pg_hba.conf".into()], "/b").unwrap();
        assert!(line(&backup).starts_with("sudo -n -u postgres sh -c "));
        let mkdir = host.create_directory("/srv/x", "postgres", "0700").unwrap();
        assert!(line(&mkdir).starts_with("sudo -n sh -c "));
    }

    #[test]
    fn wiping_needs_the_configured_data_directory_and_the_name() {
        let (mut target, view) = target_with_service();
        let host = Host::new(&target, &view, "node1").unwrap();
        let step = host.wipe_data_directory().unwrap();
        assert!(matches!(&step.gate, Gate::TypeToConfirm { expected, .. } if expected == "node1"));
        assert!(step.prechecks.contains(&Check::Unreachable {
            member: "node1".into()
        }));
        assert!(step.prechecks.contains(&Check::NotLeader {
            member: "node1".into()
        }));
        assert!(line(&step).ends_with(" pgha /var/lib/pgha/lab/members/node1/data"));
        for member in &mut target.members {
            member.data_dir = None;
        }
        let host = Host::new(&target, &view, "node1").unwrap();
        let error = host.wipe_data_directory().unwrap_err();
        assert!(
            error
                .to_string()
                .contains("names no data directory for node1"),
            "{error}"
        );
    }

    #[test]
    fn hostile_paths_owners_and_modes_are_refused() {
        let (target, view) = target_with_service();
        let host = Host::new(&target, &view, "node1").unwrap();
        assert!(host.backup(&["relative".into()], "/b").is_err());
        assert!(host.backup(&["/a/../etc/shadow".into()], "/b").is_err());
        assert!(
            host.create_directory("/srv/x", "postgres; id", "0700")
                .is_err()
        );
        assert!(host.create_directory("/srv/x", "postgres", "0799").is_err());
        assert!(host.create_directory("/srv/x", "postgres", "7 0").is_err());
    }

    #[test]
    fn backup_tools_restore_into_the_data_directory() {
        let (target, view) = target_with_service();
        let host = Host::new(&target, &view, "node1").unwrap();
        let step = host
            .restore_from_backup(&BackupTool::Pgbackrest {
                stanza: "main".into(),
                config: Some("/etc/pgbackrest/main.conf".into()),
            })
            .unwrap();
        assert!(line(&step).ends_with(
            " pgha /var/lib/pgha/lab/members/node1/data --config=/etc/pgbackrest/main.conf --stanza=main"
        ));
        assert_eq!(
            step.action,
            Action::Remote(RemoteAction {
                timeout: Duration::from_hours(6),
                ..match &step.action {
                    Action::Remote(action) => action.clone(),
                    _ => unreachable!(),
                }
            }),
            "hours, not the 10 minutes of a file copy"
        );
        let step = host
            .restore_from_backup(&BackupTool::WalG { config: None })
            .unwrap();
        assert!(line(&step).ends_with(" pgha /var/lib/pgha/lab/members/node1/data"));
        assert!(
            host.restore_from_backup(&BackupTool::Pgbackrest {
                stanza: "a;b".into(),
                config: None,
            })
            .is_err()
        );
        assert!(
            host.restore_from_backup(&BackupTool::Pgbackrest {
                stanza: "main".into(),
                config: Some("relative.conf".into()),
            })
            .is_err()
        );
    }
}
