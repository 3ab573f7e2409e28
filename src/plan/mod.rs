//! Plans: what a runbook will do, as data. A `Plan` is an ordered list of typed `Step`s — each
//! with its target, gate, pre-checks, verification and idempotency class — plus the checks that
//! must hold to start and the assumptions that must still hold to resume. Plans are pure: built
//! without I/O by `runbooks`, executed by `exec`, rendered by `render`, stored in the journal.

mod check;
pub mod estimate;
pub mod render;
pub mod structure;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use check::{Check, Verdict, cluster_timeline};

use crate::patroni::{FailoverRequest, ReinitializeRequest, RestartRequest, SwitchoverRequest};
use crate::remote::{HostCommand, Script, Transport};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The runbook's command name: `reinit`, `switchover`, …
    pub runbook: String,
    pub title: String,
    /// One paragraph: what and why, for the change request.
    pub summary: String,
    pub environment: String,
    pub cluster: String,
    pub scope: String,
    /// The runbook's parameters as given (no secrets), to re-plan on resume.
    pub params: Value,
    /// The REST user the calls authenticate as (the password is never in a plan).
    pub rest_user: Option<String>,
    /// Must hold before the first step runs; a dry-run reports each.
    pub prechecks: Vec<Check>,
    /// Must still hold on resume: what the plan was computed from (the Terraform stale-plan rule).
    pub assumes: Vec<Check>,
    pub steps: Vec<Step>,
    /// How to undo, where that is possible.
    pub rollback: Option<String>,
    /// Steps that run at once (see `ParallelGroup`). Not serialised when empty: a plan without
    /// groups reads and hashes exactly as before groups existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parallel: Vec<ParallelGroup>,
    /// What the run undoes when it stops part-way (see `Compensation`). Not serialised when
    /// empty, like `parallel`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compensations: Vec<Compensation>,
    /// How long a state between two steps may last (see `Window`). Not serialised when empty,
    /// like `parallel`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<Window>,
    /// The cluster's members when it was planned, in the order observed: what the structure's
    /// fingerprint names members by (`m1`, `m2`, …). Not serialised when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
}

/// Steps that run at once, on different members (restores, stops): the ids of consecutive
/// steps of the plan. Their gates are answered first, one after the other in the plan's order;
/// then their bodies run concurrently, each journalled and verified on its own, and the group
/// ends when all of them have ended. Once one fails, the others that have not started yet are
/// not started (those running finish or fail on their own), and the run stops, resumable:
/// `resume` redoes only the steps that did not finish. A listed step that is not next to the
/// group's others runs on its own, in its place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParallelGroup {
    pub steps: Vec<String>,
}

/// A step to run when the run is aborted at a gate or refused by a check after the step
/// `after` has started (in this run or an earlier one of it): what undoes `after` (resume
/// maintenance mode after a pause, expire a silence). Armed compensations run the latest armed
/// first, without a gate (the plan declared them, the operator read them), each re-checked and
/// verified like a step and journalled under its own step id, which no step of the plan has.
/// A step skipped because its effect was already there does not arm its compensation: the run
/// did not cause that effect. A failed or interrupted run runs none of them (the cluster's
/// state is uncertain, and the run is resumable): its end lists them instead. A compensation
/// that succeeded makes `after` undone, so `resume` runs it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Compensation {
    pub after: String,
    pub step: Step,
    /// Also when the run fails or is interrupted (Ctrl-C), not only when it is aborted or
    /// refused: for a state no run may leave behind (a paused cluster fails nothing over).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub on_failure: bool,
}

/// A state the run puts the cluster in that must not last: a paused cluster fails nothing
/// over, so a rolling upgrade bounds its pause. The window opens when the step `from` finishes
/// (or is skipped as already done: the state is there all the same) and closes when the step
/// `to` does. While it is open, a step starts only within `limit` of its opening, and a wait
/// (a waiting step, a step's verification) ends at the window's end at the latest; past it the
/// run fails, so it undoes what is declared to undo on failure (`Compensation::on_failure`).
/// A call or command in flight is never cut off by the window (it would leave its effect
/// unknown): its own timeout bounds it, and the window is checked again when it ends. A run
/// resumed while the window is open (`from` finished in an earlier run, `to` did not) counts
/// from its own start: how long the process that died held it is not known here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// The step whose end opens the window.
    pub from: String,
    /// The step whose end closes it.
    pub to: String,
    #[serde(with = "crate::duration::text")]
    pub limit: Duration,
    /// What the state is, for the run's end: `the cluster has been paused`.
    pub what: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Unique within the plan, stable across re-renderings: `reinit-node3`, `wait-streaming-node3`.
    pub id: String,
    pub title: String,
    pub action: Action,
    pub gate: Gate,
    /// Re-checked immediately before acting: the cluster moves while a human reads a prompt.
    pub prechecks: Vec<Check>,
    /// How the outcome is verified: by observing the cluster, within a deadline.
    pub verify: Option<Wait>,
    pub idempotency: Idempotency,
}

impl Plan {
    /// Whether any check of the plan looks at the members' dynamic configuration: the
    /// executor then reads each member's `/config` with every observation.
    pub fn reads_dynamic_config(&self) -> bool {
        let waits = self.steps.iter().flat_map(|step| {
            let action_wait = match &step.action {
                Action::Wait(wait) => Some(wait),
                _ => None,
            };
            action_wait.into_iter().chain(step.verify.as_ref())
        });
        let step_checks = self.steps.iter().flat_map(|step| {
            let done_when = match &step.idempotency {
                Idempotency::CheckStateFirst { done_when } => done_when.as_slice(),
                _ => &[],
            };
            step.prechecks.iter().chain(done_when)
        });
        self.prechecks
            .iter()
            .chain(&self.assumes)
            .chain(step_checks)
            .chain(waits.flat_map(|wait| wait.until.iter().chain(&wait.fail_if)))
            .any(Check::reads_dynamic_config)
    }
}

impl Step {
    /// A step that only waits: no gate, nothing to re-check, safe to repeat.
    pub fn wait(id: String, title: String, wait: Wait) -> Step {
        Step {
            id,
            title,
            action: Action::Wait(wait),
            gate: Gate::None,
            prechecks: Vec::new(),
            verify: None,
            idempotency: Idempotency::SafeToRepeat,
        }
    }
}

/// SHA-256 in lower-case hex, as `sha256sum` prints it: plan hashes, file checksums.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            use std::fmt::Write as _;
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

/// What a step does. A closed set: adding a kind of step means adding an arm here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// One REST call to one member.
    Patroni(PatroniAction),
    /// One SQL statement on one member.
    Sql(SqlAction),
    /// One command on a member's host (over SSH) or on the operator's machine.
    Remote(RemoteAction),
    /// An Alertmanager silence: created, or expired.
    Silence(SilenceAction),
    /// A write to Consul's KV store.
    Consul(ConsulAction),
    /// A write to etcd's key space.
    Etcd(EtcdAction),
    /// Something only a human does (provisioning, load balancing): shown, then confirmed.
    Manual(ManualAction),
    /// A tag set in a member's Patroni configuration file, over SSH: read, edited, written
    /// back with a backup (Patroni applies it on `POST /reload`).
    Tag(TagAction),
    /// Wait until checks hold.
    Wait(Wait),
}

impl Action {
    /// True when the step changes the cluster (as opposed to waiting and looking, or asking).
    pub fn mutates(&self) -> bool {
        !matches!(self, Action::Wait(_) | Action::Manual(_))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManualAction {
    /// What to do and what to check, one item per line.
    pub instructions: Vec<String>,
}

/// `tags.<tag>: <value>` in the Patroni configuration file at `path` on the member's host.
/// The file is read, edited with the smallest textual change (proven by parsing: see
/// `patroni::config_file`), and written back only if it did not change meanwhile, after a copy
/// to `backup`. Its content never reaches a command line, a log or the journal: it holds
/// passwords.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagAction {
    pub member: String,
    pub host: String,
    pub path: String,
    pub backup: String,
    pub tag: String,
    pub value: bool,
    /// Through `sudo -n`: root owns Patroni's configuration on most hosts.
    pub sudo: bool,
    #[serde(with = "crate::duration::text")]
    pub timeout: Duration,
}

impl TagAction {
    /// `cat` of the file: its output is kept by pgha, never shown.
    pub fn read_command(&self) -> HostCommand {
        Script::new(&[r#"cat -- "$1""#])
            .value(&self.path)
            .command()
            .sudo(self.sudo)
    }

    /// Writes stdin over the file, atomically and keeping its owner and mode, only when the
    /// file's SHA-256 is still `expected` (it was not changed since it was read); the original
    /// is copied to the backup first.
    pub fn write_command(&self, expected: &str) -> HostCommand {
        Script::new(&[
            "set -eu; f=$1; expected=$2; backup=$3",
            r#"now=$(sha256sum < "$f"); now=${now%% *}"#,
            r#"if [ "$now" != "$expected" ]; then printf '%s changed since pgha read it: nothing written\n' "$f" >&2; exit 3; fi"#,
            r#"cp -p -- "$f" "$backup""#,
            r#"cp -p -- "$f" "$f.pgha-new""#,
            r#"cat > "$f.pgha-new""#,
            r#"mv -f -- "$f.pgha-new" "$f""#,
        ])
        .values([self.path.as_str(), expected, self.backup.as_str()])
        .command()
        .sudo(self.sudo)
    }

    /// `tags.noloadbalance: true in /etc/patroni/patroni.yml on 10.0.0.3`.
    pub fn describe(&self) -> String {
        format!(
            "tags.{}: {} in {} on {} (the original kept as {})",
            self.tag, self.value, self.path, self.host, self.backup
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatroniAction {
    pub member: String,
    /// Base URL of the member's REST API.
    pub api_url: String,
    pub call: PatroniCall,
}

impl PatroniAction {
    /// `POST http://127.0.0.13:8008/reinitialize`: the request as an operator would type it.
    pub fn request_line(&self) -> String {
        format!(
            "{} {}{}",
            self.call.method(),
            self.api_url,
            self.call.path()
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum PatroniCall {
    Reinitialize {
        force: bool,
        from_leader: Option<bool>,
    },
    Switchover {
        leader: String,
        candidate: Option<String>,
        scheduled_at: Option<String>,
    },
    /// Promote `candidate` whatever the leader (`POST /failover`): for a cluster with none.
    Failover {
        candidate: String,
    },
    PatchConfig {
        patch: Value,
    },
    Restart {
        restart_pending: Option<bool>,
    },
    /// Re-read the configuration file (tags among it).
    Reload,
    /// Cancel the scheduled switchover (`DELETE /switchover`).
    CancelSwitchover,
    /// Cancel the member's scheduled restart (`DELETE /restart`).
    CancelRestart,
}

impl PatroniCall {
    pub fn method(&self) -> &'static str {
        match self {
            PatroniCall::PatchConfig { .. } => "PATCH",
            PatroniCall::CancelSwitchover | PatroniCall::CancelRestart => "DELETE",
            _ => "POST",
        }
    }

    pub fn path(&self) -> &'static str {
        match self {
            PatroniCall::Reinitialize { .. } => "/reinitialize",
            PatroniCall::Switchover { .. } | PatroniCall::CancelSwitchover => "/switchover",
            PatroniCall::Failover { .. } => "/failover",
            PatroniCall::PatchConfig { .. } => "/config",
            PatroniCall::Restart { .. } | PatroniCall::CancelRestart => "/restart",
            PatroniCall::Reload => "/reload",
        }
    }

    /// The JSON body exactly as sent.
    pub fn body(&self) -> Value {
        let value = match self {
            PatroniCall::Reinitialize { force, from_leader } => {
                serde_json::to_value(ReinitializeRequest {
                    force: *force,
                    from_leader: *from_leader,
                })
            }
            PatroniCall::Switchover {
                leader,
                candidate,
                scheduled_at,
            } => serde_json::to_value(SwitchoverRequest {
                leader: leader.clone(),
                candidate: candidate.clone(),
                scheduled_at: scheduled_at.clone(),
            }),
            PatroniCall::Failover { candidate } => serde_json::to_value(FailoverRequest {
                candidate: candidate.clone(),
            }),
            PatroniCall::PatchConfig { patch } => Ok(patch.clone()),
            PatroniCall::Restart { restart_pending } => serde_json::to_value(RestartRequest {
                restart_pending: *restart_pending,
                ..RestartRequest::default()
            }),
            PatroniCall::Reload | PatroniCall::CancelSwitchover | PatroniCall::CancelRestart => {
                Ok(Value::Null)
            }
        };
        value.unwrap_or(Value::Null)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteAction {
    pub member: String,
    /// The member's host (where SSH connects), even when the command runs locally.
    pub host: String,
    pub transport: Transport,
    pub command: HostCommand,
    #[serde(with = "crate::duration::text")]
    pub timeout: Duration,
}

impl RemoteAction {
    /// Where and what, as an operator would say it: `ssh 127.0.0.12: sudo -n systemctl stop patroni`.
    pub fn describe(&self) -> String {
        match self.transport {
            Transport::Ssh => format!("ssh {}: {}", self.host, self.command),
            Transport::Local => format!("local: {}", self.command),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "silence", rename_all = "snake_case")]
pub enum SilenceAction {
    /// Silence alerts matching `labels` for `duration` (the run id and operator are added to
    /// the comment when it runs).
    Create {
        url: String,
        labels: BTreeMap<String, String>,
        #[serde(with = "crate::duration::text")]
        duration: Duration,
        comment: String,
    },
    /// Expire the silence the step `created_by` created in this run.
    Expire { url: String, created_by: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "consul", rename_all = "snake_case")]
pub enum ConsulAction {
    /// `DELETE /v1/kv/<prefix>?recurse`. The prefix always ends with `/`: without it Consul
    /// also deletes every key that merely starts with the same text (`service/geo2/…`).
    DeleteTree {
        /// The agent, for the reader.
        address: String,
        prefix: String,
        /// The keys there when the plan was made: what the change request shows.
        keys: Vec<String>,
    },
    /// `PUT /v1/kv/<key>?cas=<index>`: the key written only if nobody wrote it since it was
    /// read at `index` (the dynamic configuration, as `patronictl edit-config` writes it).
    SetConfig {
        address: String,
        key: String,
        index: u64,
        /// The whole new value (JSON text).
        value: String,
    },
}

impl ConsulAction {
    /// `DELETE http://127.0.0.10:8500/v1/kv/service/demo/?recurse`: as an operator would type it.
    pub fn request_line(&self) -> String {
        match self {
            ConsulAction::DeleteTree {
                address, prefix, ..
            } => format!("DELETE {address}/v1/kv/{prefix}?recurse"),
            ConsulAction::SetConfig {
                address,
                key,
                index,
                ..
            } => format!("PUT {address}/v1/kv/{key}?cas={index} (the new configuration)"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "etcd", rename_all = "snake_case")]
pub enum EtcdAction {
    /// A range delete of every key under `prefix` (`etcdctl del --prefix`). The prefix always
    /// ends with `/`: without it the range also holds every key that merely starts with the
    /// same text (`/service/geo2/…`).
    DeleteTree {
        /// The endpoint asked first, for the reader.
        endpoint: String,
        prefix: String,
        /// The keys there when the plan was made: what the change request shows.
        keys: Vec<String>,
    },
    /// A transaction: `key` written only if it was last modified at `mod_revision` (nobody
    /// wrote it since it was read): the dynamic configuration, as `patronictl edit-config`
    /// writes it.
    SetConfig {
        endpoint: String,
        key: String,
        mod_revision: i64,
        /// The whole new value (JSON text).
        value: String,
    },
}

impl EtcdAction {
    /// `etcdctl del --prefix /service/demo/ (at http://127.0.0.10:2379)`: as an operator would
    /// type it.
    pub fn request_line(&self) -> String {
        match self {
            EtcdAction::DeleteTree {
                endpoint, prefix, ..
            } => format!("etcdctl --endpoints {endpoint} del --prefix {prefix}"),
            EtcdAction::SetConfig {
                endpoint,
                key,
                mod_revision,
                ..
            } => format!(
                "etcdctl --endpoints {endpoint} txn: if mod_revision({key}) = {mod_revision} then put {key} (the new configuration)"
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SqlAction {
    pub member: String,
    pub host: String,
    pub statement: SqlStatement,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SqlStatement {
    Checkpoint,
    /// Refuses (exit 4) while a transaction older than `seconds` is open: a switchover would
    /// wait for it, or cut it off. Reads `pg_stat_activity`; changes nothing.
    NoTransactionOlderThan {
        seconds: u64,
    },
    /// Fails while an inactive replication slot holds back more than `bytes` of WAL: nothing
    /// consumes it, and the server's disk fills (seed 001). Reads `pg_replication_slots`.
    InactiveSlotsRetainAtMost {
        bytes: u64,
    },
}

impl SqlStatement {
    pub fn text(self) -> String {
        match self {
            SqlStatement::Checkpoint => "CHECKPOINT".into(),
            SqlStatement::NoTransactionOlderThan { seconds } => format!(
                "SELECT max(now() - xact_start) FROM pg_stat_activity (refused over {seconds} s)"
            ),
            SqlStatement::InactiveSlotsRetainAtMost { bytes } => format!(
                "SELECT the WAL each inactive slot of pg_replication_slots holds back (fails over {})",
                crate::ui::human_bytes(bytes)
            ),
        }
    }
}

/// Poll until every check in `until` holds, at most `timeout`; fail at once if any check in
/// `fail_if` holds (a state from which waiting longer cannot help).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Wait {
    pub until: Vec<Check>,
    #[serde(default)]
    pub fail_if: Vec<Check>,
    #[serde(with = "crate::duration::text")]
    pub timeout: Duration,
    #[serde(with = "crate::duration::text")]
    pub poll: Duration,
    pub progress: Progress,
    /// Members whose log is read when they stay `starting`, to fail the wait with the reason
    /// a recovery cannot go on instead of at its deadline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stuck: Vec<StuckWatch>,
}

/// A member that may start and never become consistent: PostgreSQL in archive recovery whose
/// next WAL segment is not where `restore_command` looks (missing from the archive, a wrong
/// stanza) waits for it forever, and Patroni reports only `starting`. Once the member has
/// stayed `starting` for `after`, its log's tail is read, and again every `after`: a fatal line,
/// or recovery waiting at the same WAL position in two reads, fails the wait with that tail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StuckWatch {
    pub member: String,
    #[serde(with = "crate::duration::text")]
    pub after: Duration,
    /// A read-only command printing the tail of the member's PostgreSQL log.
    pub read: RemoteAction,
}

impl Wait {
    /// Until `until` holds, showing how `member`'s state changes.
    pub fn for_member(until: Vec<Check>, timeout: Duration, poll: Duration, member: &str) -> Wait {
        Wait {
            until,
            fail_if: Vec::new(),
            timeout,
            poll,
            progress: Progress::MemberState {
                member: member.into(),
            },
            stuck: Vec::new(),
        }
    }
}

/// What a wait shows while it waits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Progress {
    /// The state of one member, as it changes.
    MemberState { member: String },
    /// Bytes of a base backup streamed by the leader to `member` (`pg_stat_progress_basebackup`).
    BaseBackup {
        member: String,
        leader: String,
        leader_host: String,
    },
    /// Which checks hold yet.
    Checks,
    /// The state of `member` and the bytes its data directory holds as a restore fills it,
    /// against the databases' size (`expected_bytes`); read with `read`, at most every
    /// `DATA_DIRECTORY_READ_EVERY`.
    DataDirectory {
        member: String,
        expected_bytes: u64,
        read: RemoteAction,
    },
}

/// How often a data directory's size is read while a restore fills it (`du` walks it).
pub const DATA_DIRECTORY_READ_EVERY: Duration = Duration::from_secs(5);

/// What to do with a step that started but did not finish (pgha was killed, the host died).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "class", rename_all = "snake_case")]
pub enum Idempotency {
    /// Waits, reads and requests whose repetition changes nothing: run it again.
    SafeToRepeat,
    /// Look first: if `done_when` holds the step took effect; otherwise it did not, and it is
    /// sent again after its pre-checks.
    CheckStateFirst { done_when: Vec<Check> },
    /// Neither is safe to decide alone: ask the operator.
    AskHuman,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "gate", rename_all = "snake_case")]
pub enum Gate {
    None,
    /// y/N; `--yes` answers it.
    Confirm {
        question: String,
    },
    /// Destructive: the operator types the name; only `--confirm NAME` answers it for them.
    TypeToConfirm {
        question: String,
        expected: String,
    },
    /// Work a human does by hand: confirmed at the terminal, or named with `--done NAME`
    /// before the run. `--yes` never answers it: it cannot know the work was done.
    ByHand {
        question: String,
        /// What `--done` names it by: `drain`, `provisioning`, `load-balancing`.
        name: String,
        /// The runbook's flag that leaves the step out, if it has one (`--no-drain`).
        skip_flag: Option<String>,
    },
}

impl Plan {
    /// SHA-256 of the plan's canonical JSON: what the journal records and `resume` verifies.
    pub fn hash(&self) -> String {
        sha256_hex(serde_json::to_string(self).unwrap_or_default().as_bytes())
    }

    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|step| step.id == id)
    }

    /// The plan of a run journalled before compensations existed, with the one its pgha
    /// applied without declaring it: a silence created by the run is expired when the run is
    /// aborted or refused (`undo-<creating step>`, as `runbooks` now declares it). A plan with
    /// compensations of its own is returned as it is.
    #[must_use]
    pub fn with_implicit_compensations(mut self) -> Plan {
        if !self.compensations.is_empty() {
            return self;
        }
        let implicit: Vec<Compensation> = self
            .steps
            .iter()
            .filter_map(|step| match &step.action {
                Action::Silence(SilenceAction::Expire { created_by, .. })
                    if self.step(created_by).is_some() =>
                {
                    Some(Compensation {
                        after: created_by.clone(),
                        step: Step {
                            id: format!("undo-{created_by}"),
                            ..step.clone()
                        },
                        on_failure: false,
                    })
                }
                _ => None,
            })
            .collect();
        self.compensations = implicit;
        self
    }

    /// The steps in the order they run: each batch is one step, or a parallel group of
    /// consecutive steps (see `ParallelGroup`), as a range of indices into `steps`.
    pub fn batches(&self) -> Vec<std::ops::Range<usize>> {
        let group_of = |step: &Step| {
            self.parallel
                .iter()
                .position(|group| group.steps.contains(&step.id))
        };
        let mut batches: Vec<std::ops::Range<usize>> = Vec::new();
        for (index, step) in self.steps.iter().enumerate() {
            let group = group_of(step);
            match batches.last_mut() {
                Some(last) if group.is_some() && group_of(&self.steps[last.end - 1]) == group => {
                    last.end = index + 1;
                }
                _ => batches.push(index..index + 1),
            }
        }
        batches
    }

    /// The inputs, for display.
    pub fn inputs(&self) -> BTreeMap<String, String> {
        match &self.params {
            Value::Object(map) => map
                .iter()
                .filter(|(key, value)| !value.is_null() && key.as_str() != "runbook")
                .map(|(key, value)| {
                    let text = match value {
                        Value::String(text) => text.clone(),
                        other => other.to_string(),
                    };
                    (key.clone(), text)
                })
                .collect(),
            _ => BTreeMap::new(),
        }
    }

    /// Every destructive gate's expected answer, to refuse up front when it cannot be given.
    pub fn typed_confirmations(&self) -> Vec<&str> {
        self.steps
            .iter()
            .filter_map(|step| match &step.gate {
                Gate::TypeToConfirm { expected, .. } => Some(expected.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The steps done by hand: their `--done` name, and the flag that skips each, if any.
    pub fn by_hand(&self) -> Vec<(&str, Option<&str>)> {
        self.steps
            .iter()
            .filter_map(|step| match &step.gate {
                Gate::ByHand {
                    name, skip_flag, ..
                } => Some((name.as_str(), skip_flag.as_deref())),
                _ => None,
            })
            .collect()
    }
}
