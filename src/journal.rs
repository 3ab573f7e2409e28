//! The run store: one append-only JSONL journal per run (mode 0600, each line flushed to disk
//! before the next action), the per-cluster lock that keeps two runs off one cluster, and the
//! reading back that `pgha runs` and `pgha resume` trust. A record is a line with its newline:
//! bytes after the last newline are a write cut by a crash, ignored when read and cut off before
//! anything is appended. Journals carry their format and the pgha version that wrote them, so
//! that another version's journal is told apart from an edited one. A journal holds no secret:
//! plans carry the REST user's name only.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::exec::{Event, EventSink, Outcome, ResumePoint};
use crate::exit::Exit;
use crate::plan::Plan;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot {what} {}: {reason}", .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("no run {id:?} in {} (see `pgha runs list`)", .dir.display())]
    UnknownRun { id: String, dir: PathBuf },
    #[error("{}: line {line}: {reason}", .path.display())]
    Corrupt {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error(
        "cluster {cluster} is locked by run {run_id} on {host} (pid {pid}, since {since}); wait for it, or check it with `pgha runs show {run_id}`"
    )]
    LockHeld {
        cluster: String,
        run_id: String,
        host: String,
        pid: u32,
        since: String,
    },
    #[error("run {id} already succeeded: nothing to resume")]
    AlreadySucceeded { id: String },
    #[error("{}: the plan does not match its recorded hash: the journal was edited", .path.display())]
    Tampered { path: PathBuf },
    /// Plans serialise differently across versions: a hash mismatch proves no edit then.
    #[error(
        "{}: the plan was written by pgha {written_by}; this is pgha {ours}: resume it with pgha {written_by}, or start a new run",
        .path.display()
    )]
    OtherVersion {
        path: PathBuf,
        written_by: String,
        ours: &'static str,
    },
    #[error(
        "{}: journal format {format}, written by pgha {written_by}; this is pgha {ours}, which reads formats up to {supported}: use pgha {written_by} or newer",
        .path.display()
    )]
    NewerFormat {
        path: PathBuf,
        format: u64,
        written_by: String,
        ours: &'static str,
        supported: u32,
    },
}

impl JournalError {
    pub fn exit(&self) -> Exit {
        match self {
            JournalError::LockHeld { .. } => Exit::LockHeld,
            // Nothing was done, and the operator's next move is another command or another pgha;
            // a journal that cannot be trusted (cut, corrupted, edited) is input like any other.
            JournalError::UnknownRun { .. }
            | JournalError::AlreadySucceeded { .. }
            | JournalError::OtherVersion { .. }
            | JournalError::NewerFormat { .. }
            | JournalError::Corrupt { .. }
            | JournalError::Tampered { .. } => Exit::BadInput,
            JournalError::Io { .. } => Exit::Failed,
        }
    }

    /// The error for a row of `pgha runs list`, which names the run: one line, without the path.
    fn listed(&self) -> String {
        match self {
            JournalError::Io { reason, .. } => reason.clone(),
            JournalError::Corrupt { line, reason, .. } => format!("line {line}: {reason}"),
            JournalError::NewerFormat {
                format, written_by, ..
            } => format!("journal format {format}, written by pgha {written_by}"),
            other => other.to_string(),
        }
    }
}

/// The journal layout this pgha writes, and the newest it reads. Raise it when a change would
/// make an older pgha misread a journal (not for new optional fields, which older ones ignore).
/// 2: plans with parallel groups (several steps unfinished at once) or compensations
/// (`compensating` events), which a pgha that reads only format 1 would misread.
pub const FORMAT: u32 = 2;

/// The format a run of `plan` is journalled in: 1 while the plan uses nothing format 2 added,
/// so that an older pgha still reads and resumes the run.
pub fn format_for(plan: &Plan) -> u32 {
    if plan.parallel.is_empty() && plan.compensations.is_empty() {
        1
    } else {
        FORMAT
    }
}

/// This binary's version, as journals record it.
pub const PGHA_VERSION: &str = env!("CARGO_PKG_VERSION");

/// One journal line: the time, then the event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub at: String,
    #[serde(flatten)]
    pub event: Event,
}

/// Where runs live: `PGHA_RUNS_DIR`, else `/var/lib/pgha/runs` (root) or the user's state dir.
pub fn default_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PGHA_RUNS_DIR") {
        return PathBuf::from(dir);
    }
    if rustix::process::getuid().is_root() {
        return PathBuf::from("/var/lib/pgha/runs");
    }
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|path| path.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir)
        .join("pgha/runs")
}

#[derive(Debug, Clone)]
pub struct RunStore {
    dir: PathBuf,
}

/// A journal open for appending; an `EventSink`.
pub struct Journal {
    file: File,
    path: PathBuf,
    pub run_id: String,
    /// The first failure to write or flush. Nothing is written after it (a record with a hole
    /// would mislead `resume`); the executor stops before its next change (`healthy`) and the
    /// runner reports it at the end.
    pub write_error: Option<String>,
}

/// Held for the duration of a run; the lock is released when this is dropped or the process dies.
pub struct ClusterLock {
    _file: File,
}

#[derive(Debug, Serialize, Deserialize)]
struct LockHolder {
    run_id: String,
    host: String,
    pid: u32,
    since: String,
    /// Which cluster the lock is for, for whoever reads the file.
    cluster: ClusterIdentity,
}

/// What a cluster is, whatever name or route reached it (an inventory's environment and
/// cluster, `--api`, `--patroni-config`): its Patroni scope and its database system identifier.
/// The run lock is keyed on it, so one cluster has one lock however it is named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterIdentity {
    pub scope: String,
    /// Unknown only when no member answered with it (every Patroni stopped).
    pub system_identifier: Option<String>,
}

impl ClusterIdentity {
    /// A digest, not a joined name: `a--b` + `c` and `a` + `b--c` must not meet, and a scope
    /// from the network must never become a path.
    fn lock_file_name(&self) -> String {
        let mut identity = self.scope.clone().into_bytes();
        identity.push(0);
        identity.extend(self.system_identifier.as_deref().unwrap_or("").bytes());
        let hex = &crate::plan::sha256_hex(&identity)[..20];
        format!("cluster-{hex}.lock")
    }
}

/// What `pgha runs list` shows of a run.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub id: String,
    pub runbook: String,
    pub environment: String,
    pub cluster: String,
    pub started_at: String,
    pub operator: String,
    /// The last outcome; `running or killed` when the run never recorded an end; `unreadable:
    /// WHY` when its journal cannot be read (then the other fields are `?` where unknown).
    pub status: String,
}

/// A run read back from its journal.
#[derive(Debug, Clone)]
pub struct RecordedRun {
    pub id: String,
    pub path: PathBuf,
    pub entries: Vec<Entry>,
}

impl RunStore {
    pub fn new(dir: PathBuf) -> Self {
        RunStore { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes the lock of the cluster `identity` names, or says who holds it. `cluster` is the
    /// name this invocation knows it by, for the message.
    pub fn lock(
        &self,
        identity: &ClusterIdentity,
        cluster: &str,
        run_id: &str,
    ) -> Result<ClusterLock, JournalError> {
        let dir = self.dir.join("locks");
        ensure_private_dir(&dir)?;
        let path = dir.join(identity.lock_file_name());
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|error| io("open", &path, &error))?;
        if file.try_lock().is_err() {
            let holder: Option<LockHolder> = std::fs::read_to_string(&path)
                .ok()
                .and_then(|text| serde_json::from_str(&text).ok());
            let holder = holder.unwrap_or(LockHolder {
                run_id: "unknown".into(),
                host: "unknown".into(),
                pid: 0,
                since: "unknown".into(),
                cluster: identity.clone(),
            });
            return Err(JournalError::LockHeld {
                cluster: cluster.into(),
                run_id: holder.run_id,
                host: holder.host,
                pid: holder.pid,
                since: holder.since,
            });
        }
        let holder = LockHolder {
            run_id: run_id.into(),
            host: hostname(),
            pid: std::process::id(),
            since: now(),
            cluster: identity.clone(),
        };
        file.set_len(0)
            .map_err(|error| io("write", &path, &error))?;
        file.write_all(
            serde_json::to_string(&holder)
                .unwrap_or_default()
                .as_bytes(),
        )
        .and_then(|()| file.flush())
        .map_err(|error| io("write", &path, &error))?;
        Ok(ClusterLock { _file: file })
    }

    /// A new run id: sortable by time, readable, unique enough for one machine.
    pub fn new_run_id(runbook: &str) -> String {
        let now = jiff::Timestamp::now();
        let stamp = now.strftime("%Y%m%d-%H%M%S");
        format!(
            "{stamp}-{runbook}-{:04x}",
            (now.subsec_nanosecond().unsigned_abs() ^ std::process::id()) & 0xffff
        )
    }

    pub fn create(&self, run_id: &str) -> Result<Journal, JournalError> {
        ensure_private_dir(&self.dir)?;
        let path = self.path_of(run_id);
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|error| io("create", &path, &error))?;
        Ok(Journal {
            file,
            path,
            run_id: run_id.into(),
            write_error: None,
        })
    }

    /// Opens a run's journal to append to it, first cutting a last line that a crash left
    /// unfinished: the next record would be glued onto it and make the journal unreadable.
    pub fn reopen(&self, run_id: &str) -> Result<Journal, JournalError> {
        let path = self.path_of(run_id);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|error| io("open", &path, &error))?;
        cut_torn_tail(&mut file, &path)?;
        Ok(Journal {
            file,
            path,
            run_id: run_id.into(),
            write_error: None,
        })
    }

    fn path_of(&self, run_id: &str) -> PathBuf {
        self.dir.join(format!("{run_id}.jsonl"))
    }

    pub fn read(&self, run_id: &str) -> Result<RecordedRun, JournalError> {
        // Run ids are file names: accept nothing that could leave the directory.
        if crate::names::check_name(run_id).is_err() {
            return Err(JournalError::UnknownRun {
                id: run_id.into(),
                dir: self.dir.clone(),
            });
        }
        let path = self.path_of(run_id);
        let bytes = std::fs::read(&path).map_err(|error| {
            if error.kind() == std::io::ErrorKind::NotFound {
                JournalError::UnknownRun {
                    id: run_id.into(),
                    dir: self.dir.clone(),
                }
            } else {
                io("read", &path, &error)
            }
        })?;
        recorded_run(run_id, path, &bytes)
    }

    /// Every run, newest first; a run whose journal cannot be read is listed as such.
    pub fn list(&self) -> Result<Vec<RunSummary>, JournalError> {
        let directory = match std::fs::read_dir(&self.dir) {
            Ok(directory) => directory,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(io("list", &self.dir, &error)),
        };
        let mut ids: Vec<String> = directory
            .filter_map(Result::ok)
            .filter_map(|entry| {
                entry
                    .file_name()
                    .to_str()?
                    .strip_suffix(".jsonl")
                    .map(str::to_string)
            })
            .collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        Ok(ids.iter().map(|id| self.summary_of(id)).collect())
    }

    fn summary_of(&self, id: &str) -> RunSummary {
        let run = match self.read(id) {
            Ok(run) => run,
            Err(error) => return self.unreadable(id, &error.listed()),
        };
        run.summary().unwrap_or_else(|| {
            let reason = if run.entries.is_empty() {
                "no whole record (the run's start was never written)"
            } else {
                "the first record is not the run's start"
            };
            self.unreadable(id, reason)
        })
    }

    /// A row for a run that cannot be read, with what its first line still tells.
    fn unreadable(&self, id: &str, reason: &str) -> RunSummary {
        let started = first_entry(&self.path_of(id));
        let summary = started.as_ref().and_then(|entry| match &entry.event {
            Event::RunStarted {
                runbook,
                environment,
                cluster,
                operator,
                ..
            } => Some(RunSummary {
                id: id.into(),
                runbook: runbook.clone(),
                environment: environment.clone(),
                cluster: cluster.clone(),
                started_at: entry.at.clone(),
                operator: operator.clone(),
                status: String::new(),
            }),
            _ => None,
        });
        let unknown = || "?".to_string();
        RunSummary {
            status: format!("unreadable: {reason}"),
            ..summary.unwrap_or_else(|| RunSummary {
                id: id.into(),
                runbook: unknown(),
                environment: unknown(),
                cluster: unknown(),
                started_at: unknown(),
                operator: unknown(),
                status: String::new(),
            })
        }
    }
}

/// The length of the complete records: up to and including the last newline.
fn complete_len(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .rposition(|byte| *byte == b'\n')
        .map_or(0, |last| last + 1)
}

/// A journal's bytes as a run. A process killed mid-write leaves a last line without its
/// newline: it holds nothing that was acted upon (a record is flushed before its action), so it
/// is not read.
fn recorded_run(run_id: &str, path: PathBuf, bytes: &[u8]) -> Result<RecordedRun, JournalError> {
    let records = &bytes[..complete_len(bytes)];
    check_format(&path, records)?;
    let entries = parse_records(&path, records)?;
    Ok(RecordedRun {
        id: run_id.into(),
        path,
        entries,
    })
}

fn parse_records(path: &Path, records: &[u8]) -> Result<Vec<Entry>, JournalError> {
    records
        .split(|byte| *byte == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.trim_ascii().is_empty())
        .map(|(index, line)| {
            serde_json::from_slice(line).map_err(|error| JournalError::Corrupt {
                path: path.to_path_buf(),
                line: index + 1,
                reason: error.to_string(),
            })
        })
        .collect()
}

/// Refuses a journal in a format newer than this pgha's before its lines are read as this
/// version's events, which they may not be. Only the start's fields are looked at, loosely.
fn check_format(path: &Path, records: &[u8]) -> Result<(), JournalError> {
    let Some(first) = records
        .split(|byte| *byte == b'\n')
        .find(|line| !line.trim_ascii().is_empty())
    else {
        return Ok(());
    };
    // Not JSON: reported as corrupt when the line is read as a record.
    let Ok(first) = serde_json::from_slice::<serde_json::Value>(first) else {
        return Ok(());
    };
    let format = first
        .get("journal_format")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(1);
    if format <= u64::from(FORMAT) {
        return Ok(());
    }
    let written_by = first
        .get("pgha_version")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("unknown");
    Err(JournalError::NewerFormat {
        path: path.to_path_buf(),
        format,
        written_by: written_by.into(),
        ours: PGHA_VERSION,
        supported: FORMAT,
    })
}

/// The journal's first record, if it can be read as one.
fn first_entry(path: &Path) -> Option<Entry> {
    let mut line = String::new();
    BufReader::new(File::open(path).ok()?)
        .read_line(&mut line)
        .ok()?;
    serde_json::from_str(&line).ok()
}

/// Cuts what follows the last newline (see `reopen`), durably, before anything is appended.
fn cut_torn_tail(file: &mut File, path: &Path) -> Result<(), JournalError> {
    let length = file
        .metadata()
        .map_err(|error| io("read", path, &error))?
        .len();
    let mut bytes = Vec::new();
    // No further than the length: a device (`/dev/full` in a test) reads without end.
    Read::by_ref(file)
        .take(length)
        .read_to_end(&mut bytes)
        .map_err(|error| io("read", path, &error))?;
    let complete = complete_len(&bytes);
    if complete == bytes.len() {
        return Ok(());
    }
    tracing::warn!(
        "{}: cutting {} bytes of a record left unfinished by a crash",
        path.display(),
        bytes.len() - complete
    );
    file.set_len(u64::try_from(complete).unwrap_or(length))
        .and_then(|()| file.sync_data())
        .map_err(|error| io("cut the unfinished last line of", path, &error))
}

fn ensure_private_dir(dir: &Path) -> Result<(), JournalError> {
    std::fs::create_dir_all(dir).map_err(|error| io("create", dir, &error))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|error| io("set permissions on", dir, &error))
}

impl RecordedRun {
    pub fn started(&self) -> Option<&Event> {
        self.entries
            .first()
            .map(|entry| &entry.event)
            .filter(|event| matches!(event, Event::RunStarted { .. }))
    }

    /// The plan in force: the original, or the last one `--replan` made.
    pub fn plan(&self) -> Option<(Plan, String)> {
        self.plan_in_force()
            .map(|(plan, hash, _)| (plan.clone(), hash.to_string()))
    }

    /// The plan in force, its hash, and the version of pgha that serialised both.
    fn plan_in_force(&self) -> Option<(&Plan, &str, &str)> {
        let started_by = match self.started() {
            Some(Event::RunStarted { pgha_version, .. }) => pgha_version.as_str(),
            _ => "unknown",
        };
        self.entries
            .iter()
            .rev()
            .find_map(|entry| match &entry.event {
                Event::RunStarted {
                    plan,
                    plan_hash,
                    pgha_version,
                    ..
                } => Some((plan.as_ref(), plan_hash.as_str(), pgha_version.as_str())),
                Event::RunResumed {
                    plan: Some(plan),
                    plan_hash,
                    pgha_version,
                    ..
                } => {
                    // Older journals recorded no version on resume: the start's is the best guess.
                    let by = if pgha_version.is_empty() {
                        started_by
                    } else {
                        pgha_version.as_str()
                    };
                    Some((plan.as_ref(), plan_hash.as_str(), by))
                }
                _ => None,
            })
    }

    /// Verifies the plan against its recorded hash. Another version of pgha may serialise the
    /// same plan differently, so a mismatch is called an edit only when this version wrote it.
    pub fn verified_plan(&self) -> Result<Plan, JournalError> {
        let corrupt = || JournalError::Corrupt {
            path: self.path.clone(),
            line: 1,
            reason: "no plan recorded".into(),
        };
        let (plan, hash, written_by) = self.plan_in_force().ok_or_else(corrupt)?;
        if plan.hash() == hash {
            return Ok(plan.clone());
        }
        if written_by != PGHA_VERSION {
            return Err(JournalError::OtherVersion {
                path: self.path.clone(),
                written_by: written_by.into(),
                ours: PGHA_VERSION,
            });
        }
        Err(JournalError::Tampered {
            path: self.path.clone(),
        })
    }

    /// The fingerprint of the inventory the plan in force was made from, if recorded.
    pub fn inventory_fingerprint(&self) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find_map(|entry| match &entry.event {
                Event::RunStarted {
                    inventory_fingerprint,
                    ..
                }
                | Event::RunResumed {
                    plan: Some(_),
                    inventory_fingerprint,
                    ..
                } => Some(inventory_fingerprint.as_deref()),
                _ => None,
            })
            .flatten()
    }

    /// The cluster's system identifier when the run started, if it was known and recorded.
    pub fn system_identifier(&self) -> Option<String> {
        match self.started()? {
            Event::RunStarted {
                system_identifier, ..
            } => system_identifier.clone(),
            _ => None,
        }
    }

    /// The outcome recorded last, if the run's last record is its end (a killed run has none).
    pub fn last_outcome(&self) -> Option<Outcome> {
        match self.entries.last().map(|entry| &entry.event) {
            Some(Event::RunFinished { outcome, .. }) => Some(*outcome),
            _ => None,
        }
    }

    /// Which steps are done, and which started without finishing, since the plan in force;
    /// which started at all (arming compensations) and which silences are still on, over the
    /// whole run. A compensation that succeeded (or found its work already done) makes the
    /// step it undid neither done nor started: `resume` runs it again.
    pub fn resume_point(&self) -> ResumePoint {
        let start = self
            .entries
            .iter()
            .rposition(|entry| matches!(&entry.event, Event::RunResumed { plan: Some(_), .. }))
            .unwrap_or(0);
        // Compensations run, by their step id: the step each undoes.
        let mut compensations = std::collections::BTreeMap::new();
        // Silences and what started live across re-plans: collect them from the whole journal.
        let mut silences = std::collections::BTreeMap::new();
        let mut started: Vec<String> = Vec::new();
        for entry in &self.entries {
            match &entry.event {
                Event::SilenceCreated { step, id, .. } => {
                    silences.insert(step.clone(), id.clone());
                }
                Event::SilenceExpired { id, .. } => silences.retain(|_, created| created != id),
                Event::Compensating { step, after, .. } => {
                    compensations.insert(step.clone(), after.clone());
                }
                Event::StepStarted { step, .. }
                    if !compensations.contains_key(step) && !started.contains(step) =>
                {
                    started.push(step.clone());
                }
                Event::StepSucceeded { step, .. } | Event::StepSkipped { step, .. } => {
                    if let Some(undone) = compensations.get(step) {
                        started.retain(|id| id != undone);
                    }
                }
                _ => {}
            }
        }
        let mut finished = BTreeSet::new();
        let mut unfinished = BTreeSet::new();
        for entry in &self.entries[start..] {
            match &entry.event {
                Event::StepStarted { step, .. } if !compensations.contains_key(step) => {
                    unfinished.insert(step.clone());
                }
                Event::StepSucceeded { step, .. } | Event::StepSkipped { step, .. } => {
                    if let Some(undone) = compensations.get(step) {
                        finished.remove(undone);
                    } else {
                        finished.insert(step.clone());
                        unfinished.remove(step);
                    }
                }
                // A failed step stays unfinished: it may have acted (a call whose outcome was
                // not observed in time), so resume treats it like one that was cut short.
                _ => {}
            }
        }
        ResumePoint {
            finished,
            unfinished,
            started,
            silences,
        }
    }

    pub fn summary(&self) -> Option<RunSummary> {
        let first = self.entries.first()?;
        let Event::RunStarted {
            runbook,
            environment,
            cluster,
            operator,
            ..
        } = &first.event
        else {
            return None;
        };
        let status = self.last_outcome().map_or_else(
            || "running or killed".to_string(),
            |outcome| {
                serde_json::to_value(outcome)
                    .ok()
                    .and_then(|value| value.as_str().map(str::to_string))
                    .unwrap_or_default()
            },
        );
        Some(RunSummary {
            id: self.id.clone(),
            runbook: runbook.clone(),
            environment: environment.clone(),
            cluster: cluster.clone(),
            started_at: first.at.clone(),
            operator: operator.clone(),
            status,
        })
    }
}

impl Journal {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl EventSink for Journal {
    fn healthy(&self) -> Result<(), String> {
        match &self.write_error {
            Some(error) => Err(format!("the journal could not be written ({error})")),
            None => Ok(()),
        }
    }

    fn emit(&mut self, event: &Event) {
        if !event.is_journaled() || self.write_error.is_some() {
            return;
        }
        let entry = Entry {
            at: now(),
            event: event.clone(),
        };
        let mut line = serde_json::to_string(&entry).unwrap_or_default();
        line.push('\n');
        // Durable before the next action: resume trusts what is on disk.
        if let Err(error) = self
            .file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.sync_data())
        {
            self.write_error = Some(format!("{}: {error}", self.path.display()));
        }
    }
}

/// UTC, milliseconds, fixed width: journals sort and align.
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

pub fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// Who runs pgha: the sudo user behind root where there is one, else the account's name.
pub fn operator() -> String {
    let uid = rustix::process::getuid().as_raw();
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .ok()
        .or_else(|| account_name(uid))
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// The local account's name from /etc/passwd (enough for an audit line; no NSS lookup).
fn account_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id: u32 = fields.nth(1)?.parse().ok()?;
        (id == uid).then(|| name.to_string())
    })
}

fn io(what: &'static str, path: &Path, error: &std::io::Error) -> JournalError {
    JournalError::Io {
        what,
        path: path.to_path_buf(),
        reason: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::testing::view_led_by;
    use crate::runbooks::{self, Params};

    fn plan() -> Plan {
        let (target, view) = view_led_by("4.1.5", "node3", Some(1));
        runbooks::plan(
            &target,
            &view,
            &Params::Pause(crate::runbooks::pause::Params { wait: true }),
        )
        .unwrap()
    }

    fn started(plan: &Plan) -> Event {
        Event::RunStarted {
            run_id: "r1".into(),
            runbook: plan.runbook.clone(),
            environment: plan.environment.clone(),
            cluster: plan.cluster.clone(),
            plan: Box::new(plan.clone()),
            plan_hash: plan.hash(),
            operator: "tester".into(),
            host: "here".into(),
            pid: 1,
            pgha_version: PGHA_VERSION.into(),
            journal_format: format_for(plan),
            system_identifier: None,
            inventory_fingerprint: None,
        }
    }

    /// The start of a run recorded by another pgha, in another journal format.
    fn started_by(plan: &Plan, version: &str, format: u32) -> Event {
        let Event::RunStarted {
            run_id,
            runbook,
            environment,
            cluster,
            plan,
            plan_hash,
            operator,
            host,
            pid,
            ..
        } = started(plan)
        else {
            unreachable!("started() is a start")
        };
        Event::RunStarted {
            run_id,
            runbook,
            environment,
            cluster,
            plan,
            plan_hash,
            operator,
            host,
            pid,
            pgha_version: version.into(),
            journal_format: format,
            system_identifier: None,
            inventory_fingerprint: None,
        }
    }

    fn append(path: &Path, bytes: &[u8]) {
        let mut file = OpenOptions::new().append(true).open(path).unwrap();
        file.write_all(bytes).unwrap();
    }

    fn step_started(step: &str) -> Event {
        Event::StepStarted {
            step: step.into(),
            index: 1,
            title: step.into(),
        }
    }

    #[test]
    fn a_journal_is_private_and_reads_back_with_its_resume_point() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::new(dir.path().join("runs"));
        let plan = plan();
        let mut journal = store.create("r1").unwrap();
        journal.emit(&started(&plan));
        journal.emit(&step_started("pause"));
        journal.emit(&Event::Progress {
            step: "pause".into(),
            elapsed_ms: 1,
            timeout_ms: 2,
            detail: "ticks are not journaled".into(),
            done_bytes: None,
            total_bytes: None,
        });
        let mode = std::fs::metadata(journal.path())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let directory_mode = std::fs::metadata(store.dir()).unwrap().permissions().mode() & 0o777;
        assert_eq!(directory_mode, 0o700);

        let recorded = store.read("r1").unwrap();
        assert_eq!(
            recorded.entries.len(),
            2,
            "progress ticks stay out of the record"
        );
        assert_eq!(recorded.verified_plan().unwrap(), plan);
        let point = recorded.resume_point();
        assert!(point.finished.is_empty());
        assert_eq!(point.unfinished, BTreeSet::from(["pause".to_string()]));
        assert_eq!(recorded.last_outcome(), None, "killed: no end recorded");
        assert_eq!(recorded.summary().unwrap().status, "running or killed");
    }

    /// A parallel group leaves several steps unfinished at once; a compensation that succeeded
    /// makes the step it undid neither done nor started.
    #[test]
    fn several_unfinished_steps_and_undone_ones_are_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::new(dir.path().to_path_buf());
        let mut journal = store.create("r1").unwrap();
        journal.emit(&started(&plan()));
        for step in ["a", "b", "c", "d"] {
            journal.emit(&step_started(step));
        }
        let succeeded = |step: &str| Event::StepSucceeded {
            step: step.into(),
            duration_ms: 1,
            observed: String::new(),
        };
        journal.emit(&succeeded("b"));
        journal.emit(&succeeded("d"));
        journal.emit(&Event::StepFailed {
            step: "c".into(),
            reason: "exit 1".into(),
        });
        journal.emit(&Event::Compensating {
            step: "undo-d".into(),
            after: "d".into(),
            title: "Undo d".into(),
        });
        journal.emit(&step_started("undo-d"));
        journal.emit(&succeeded("undo-d"));
        let point = store.read("r1").unwrap().resume_point();
        let ids = |ids: &[&str]| ids.iter().map(ToString::to_string).collect::<BTreeSet<_>>();
        assert_eq!(point.unfinished, ids(&["a", "c"]));
        assert_eq!(point.finished, ids(&["b"]), "d was undone");
        assert_eq!(point.started, ["a", "b", "c"]);
    }

    #[test]
    fn finished_steps_and_outcomes_are_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::new(dir.path().to_path_buf());
        let plan = plan();
        let mut journal = store.create("r1").unwrap();
        journal.emit(&started(&plan));
        journal.emit(&step_started("pause"));
        journal.emit(&Event::StepSucceeded {
            step: "pause".into(),
            duration_ms: 5,
            observed: "paused".into(),
        });
        journal.emit(&Event::RunFinished {
            outcome: Outcome::Succeeded,
            detail: "done".into(),
            duration_ms: 6,
        });
        let recorded = store.read("r1").unwrap();
        let point = recorded.resume_point();
        assert_eq!(
            point
                .finished
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            ["pause"]
        );
        assert!(point.unfinished.is_empty());
        assert_eq!(recorded.last_outcome(), Some(Outcome::Succeeded));
        assert_eq!(store.list().unwrap()[0].status, "succeeded");
    }

    #[test]
    fn a_line_cut_by_a_kill_is_ignored_but_corruption_elsewhere_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::new(dir.path().to_path_buf());
        let mut journal = store.create("r1").unwrap();
        journal.emit(&started(&plan()));
        let path = journal.path().to_path_buf();
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"at\":\"2026-11-23T00:00:00.000Z\",\"event\":\"step_sta")
            .unwrap();
        assert_eq!(store.read("r1").unwrap().entries.len(), 1);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("garbage\n{text}\n")).unwrap();
        assert!(matches!(
            store.read("r1"),
            Err(JournalError::Corrupt { line: 1, .. })
        ));
    }

    /// Seed of the defect: `resume` appended to the cut line, and the journal became corrupt.
    #[test]
    fn a_journal_cut_by_a_crash_is_appended_to_after_its_last_whole_line() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::new(dir.path().to_path_buf());
        let mut journal = store.create("r1").unwrap();
        journal.emit(&started(&plan()));
        journal.emit(&step_started("pause"));
        let path = journal.path().to_path_buf();
        drop(journal);
        append(
            &path,
            b"{\"at\":\"2026-11-23T00:00:00.000Z\",\"event\":\"step_succ",
        );

        let mut journal = store.reopen("r1").unwrap();
        journal.emit(&Event::StepSucceeded {
            step: "pause".into(),
            duration_ms: 5,
            observed: "paused".into(),
        });
        journal.emit(&Event::RunFinished {
            outcome: Outcome::Failed,
            detail: "stopped".into(),
            duration_ms: 6,
        });
        assert_eq!(journal.write_error, None);

        let recorded = store.read("r1").unwrap();
        assert_eq!(recorded.entries.len(), 4, "the cut line is gone");
        let point = recorded.resume_point();
        assert!(point.finished.contains("pause"));
        assert!(point.unfinished.is_empty());
        let listed = store.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].status, "failed");
        assert!(std::fs::read_to_string(&path).unwrap().ends_with("}\n"));
    }

    #[test]
    fn a_record_cut_inside_a_character_is_ignored_too() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::new(dir.path().to_path_buf());
        let mut journal = store.create("r1").unwrap();
        journal.emit(&started(&plan()));
        let path = journal.path().to_path_buf();
        // The first two bytes of "…": not UTF-8 on its own.
        append(
            &path,
            b"{\"at\":\"2026-11-23T00:00:00.000Z\",\"detail\":\"\xe2\x80",
        );
        assert_eq!(store.read("r1").unwrap().entries.len(), 1);
    }

    #[test]
    fn runs_that_cannot_be_read_are_listed_as_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::new(dir.path().to_path_buf());
        let plan = plan();
        store.create("r1").unwrap().emit(&started(&plan));
        let mut corrupt = store.create("r2").unwrap();
        corrupt.emit(&started(&plan));
        append(corrupt.path(), b"garbage\n");
        corrupt.emit(&step_started("pause"));
        store.create("r3").unwrap();
        store
            .create("r4")
            .unwrap()
            .emit(&started_by(&plan, "9.9.9", FORMAT + 1));

        let listed = store.list().unwrap();
        let rows: Vec<(&str, &str, &str)> = listed
            .iter()
            .map(|run| (run.id.as_str(), run.runbook.as_str(), run.status.as_str()))
            .collect();
        assert_eq!(
            rows,
            [
                (
                    "r4",
                    plan.runbook.as_str(),
                    format!(
                        "unreadable: journal format {}, written by pgha 9.9.9",
                        FORMAT + 1
                    )
                    .as_str()
                ),
                (
                    "r3",
                    "?",
                    "unreadable: no whole record (the run's start was never written)"
                ),
                (
                    "r2",
                    plan.runbook.as_str(),
                    "unreadable: line 2: expected value at line 1 column 1"
                ),
                ("r1", plan.runbook.as_str(), "running or killed"),
            ]
        );
        assert_eq!(listed[2].cluster, plan.cluster, "its start is still read");
    }

    #[test]
    fn a_journal_in_a_newer_format_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::new(dir.path().to_path_buf());
        let mut journal = store.create("r1").unwrap();
        journal.emit(&started_by(&plan(), "9.9.9", FORMAT + 1));
        let path = journal.path().to_path_buf();
        let error = store.read("r1").unwrap_err();
        assert!(
            matches!(error, JournalError::NewerFormat { format, .. } if format == u64::from(FORMAT) + 1),
            "{error}"
        );
        assert_eq!(error.exit(), Exit::BadInput);
        assert_eq!(
            error.to_string(),
            format!(
                "{}: journal format {}, written by pgha 9.9.9; this is pgha {PGHA_VERSION}, which reads formats up to {FORMAT}: use pgha 9.9.9 or newer",
                path.display(),
                FORMAT + 1
            )
        );
    }

    #[test]
    fn a_journal_from_before_formats_reads_as_format_1() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::new(dir.path().to_path_buf());
        let plan = plan();
        let mut journal = store.create("r1").unwrap();
        journal.emit(&started(&plan));
        journal.emit(&Event::RunResumed {
            operator: "tester".into(),
            host: "here".into(),
            pid: 2,
            plan: None,
            plan_hash: String::new(),
            pgha_version: PGHA_VERSION.into(),
            inventory_fingerprint: None,
        });
        let path = journal.path().to_path_buf();
        let text = std::fs::read_to_string(&path).unwrap();
        let (start, resume) = text.split_once('\n').unwrap();
        let old_start = start.replace(",\"journal_format\":1", "");
        let old_resume = resume.replace(&format!(",\"pgha_version\":\"{PGHA_VERSION}\""), "");
        assert_ne!(old_start, start);
        assert_ne!(old_resume, resume);
        std::fs::write(&path, format!("{old_start}\n{old_resume}")).unwrap();
        let recorded = store.read("r1").unwrap();
        assert_eq!(recorded.entries.len(), 2);
        assert_eq!(recorded.verified_plan().unwrap(), plan);
    }

    /// Another version may serialise the same plan differently: that is not an edit.
    #[test]
    fn a_plan_from_another_pgha_version_is_not_called_edited() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::new(dir.path().to_path_buf());
        let mut journal = store.create("r1").unwrap();
        journal.emit(&started_by(&plan(), "0.0.9", FORMAT));
        let path = journal.path().to_path_buf();
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("Turn maintenance mode on", "Serialised otherwise");
        std::fs::write(&path, text).unwrap();
        let error = store.read("r1").unwrap().verified_plan().unwrap_err();
        assert_eq!(error.exit(), Exit::BadInput);
        assert_eq!(
            error.to_string(),
            format!(
                "{}: the plan was written by pgha 0.0.9; this is pgha {PGHA_VERSION}: resume it with pgha 0.0.9, or start a new run",
                path.display()
            )
        );
    }

    #[test]
    fn an_edited_plan_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::new(dir.path().to_path_buf());
        let mut journal = store.create("r1").unwrap();
        journal.emit(&started(&plan()));
        let path = journal.path().to_path_buf();
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("Turn maintenance mode on", "Something else");
        std::fs::write(&path, text).unwrap();
        assert!(matches!(
            store.read("r1").unwrap().verified_plan(),
            Err(JournalError::Tampered { .. })
        ));
    }

    #[test]
    fn the_lock_names_its_holder_and_is_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::new(dir.path().to_path_buf());
        let demo = identity("demo", "7711");
        let held = store.lock(&demo, "demo", "run-a").unwrap();
        // The same cluster under another name (`--api`, `--patroni-config`, another inventory).
        let Err(error) = store.lock(&demo, "pg-ha-cluster", "run-b") else {
            panic!("a second lock on the same cluster was granted");
        };
        assert_eq!(error.exit(), Exit::LockHeld);
        let message = error.to_string();
        assert!(
            message.starts_with(&format!(
                "cluster pg-ha-cluster is locked by run run-a on {} (pid {}",
                hostname(),
                std::process::id()
            )),
            "{message}"
        );
        let _other_cluster = store
            .lock(&identity("other", "7711"), "demo", "run-c")
            .unwrap();
        let _same_scope_other_database = store
            .lock(&identity("demo", "9999"), "demo", "run-d")
            .unwrap();
        drop(held);
        store.lock(&demo, "demo", "run-b").unwrap();
    }

    #[test]
    fn lock_names_of_different_clusters_never_meet() {
        // Joined names would collide: `a--b` + `c` and `a` + `b--c`.
        let first = identity("a--b", "c");
        let second = identity("a", "b--c");
        assert_ne!(first.lock_file_name(), second.lock_file_name());
        let hostile = identity("../../etc/passwd", "x");
        let name = hostile.lock_file_name();
        let hex = name
            .strip_prefix("cluster-")
            .and_then(|rest| rest.strip_suffix(".lock"))
            .unwrap_or_else(|| panic!("{name}"));
        assert!(hex.chars().all(|digit| digit.is_ascii_hexdigit()), "{name}");
    }

    fn identity(scope: &str, system_identifier: &str) -> ClusterIdentity {
        ClusterIdentity {
            scope: scope.into(),
            system_identifier: Some(system_identifier.into()),
        }
    }

    #[test]
    fn run_ids_that_could_leave_the_directory_are_unknown() {
        let store = RunStore::new(PathBuf::from("/nonexistent"));
        for id in ["../etc/passwd", "/etc/passwd", ".hidden"] {
            assert!(
                matches!(store.read(id), Err(JournalError::UnknownRun { .. })),
                "{id}"
            );
        }
    }

    /// Any bytes, and real journals with one part replaced by anything, read as a run or
    /// refused: never a panic, nor in what resume derives from them.
    mod fuzz {
        use proptest::prelude::*;

        use super::*;
        use crate::fuzzing::{CASES, json_shaped, replaced_somewhere};

        const KEYS: &[&str] = &[
            "at",
            "event",
            "kind",
            "run_id",
            "step",
            "plan",
            "format",
            "steps",
            "id",
            "title",
            "action",
            "gate",
            "outcome",
            "detail",
            "observed",
            "silence",
            "reason",
            "answer",
            "identity",
            "scope",
            "system_identifier",
            "runbook",
            "params",
            "operator",
            "host",
        ];

        fn read_back(bytes: &[u8]) {
            if let Ok(run) = recorded_run("run", PathBuf::from("run.jsonl"), bytes) {
                let _ = run.resume_point();
                let _ = run.summary();
                let _ = run.verified_plan();
                let _ = run.last_outcome();
                let _ = run.system_identifier();
            }
        }

        /// A real run's journal lines: the pause plan's start, a step's start and its end.
        fn real_lines() -> Vec<serde_json::Value> {
            let plan = plan();
            let step = plan.steps[0].id.clone();
            vec![
                started(&plan),
                Event::StepStarted {
                    step,
                    index: 1,
                    title: "the first step".into(),
                },
                Event::RunFinished {
                    outcome: Outcome::Succeeded,
                    detail: "done".into(),
                    duration_ms: 1,
                },
            ]
            .into_iter()
            .map(|event| {
                serde_json::to_value(Entry {
                    at: "2026-12-03T12:00:00Z".into(),
                    event,
                })
                .unwrap()
            })
            .collect()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(CASES))]

            #[test]
            fn any_journal_reads_as_a_run_or_an_error(
                bytes in proptest::collection::vec(any::<u8>(), 0..256),
                line in json_shaped(KEYS),
                choice in any::<usize>(),
                replacement in json_shaped(KEYS),
            ) {
                read_back(&bytes);
                read_back(format!("{line}\n{line}\n").as_bytes());
                for real in real_lines() {
                    let changed = replaced_somewhere(&real, choice, replacement.clone());
                    read_back(format!("{real}\n{changed}\n").as_bytes());
                    read_back(format!("{changed}\n").as_bytes());
                }
            }
        }
    }
}
