//! `pgha host backup|restore|wipe|mkdir|disk|restore-backup|backup-age --member M`: one host step at a
//! time on a member's host (the step library's `Host` builds them), for an operator working by
//! hand — and for rehearsing what the larger runbooks do on hosts. Wiping a data directory is
//! the one destructive operation: behind the member's name, never on the leader, only with its
//! Patroni stopped.

use serde::{Deserialize, Serialize};

use super::steps::{BackupTool, Host as HostSteps, frame};
use super::{Example, ExampleLab, PlanError, Runbook};
use crate::inventory::{BackupPolicy, ClusterTarget};
use crate::observe::ClusterView;
use crate::plan::{Check, Plan};

/// `pgha host`.
pub struct Host;

// The operation, each with its member: the journal records them flat, tagged by operation.
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
pub struct Params {
    #[command(subcommand)]
    #[serde(flatten)]
    pub operation: HostOperation,
}

/// What `pgha host` does on one member's host.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand, Serialize, Deserialize)]
#[serde(tag = "operation", rename_all = "snake_case")]
pub enum HostOperation {
    /// Copy files (default: the data directory's pg_hba.conf and pg_ident.conf) to a directory
    Backup {
        /// The member whose host to work on
        #[arg(long, value_name = "NAME", value_parser = crate::flags::name)]
        member: String,
        /// A file to copy (absolute path; repeat for more)
        #[arg(long = "file", value_name = "PATH")]
        files: Vec<String>,
        /// Where to copy them [default: pgha-backup-TIME beside the data directory]
        #[arg(long, value_name = "DIR")]
        to: Option<String>,
        /// When it was asked for: names the default directory (planners read no clock).
        #[arg(skip = crate::flags::request_label())]
        label: String,
    },
    /// Copy files back from a backup directory to their original paths
    Restore {
        /// The member whose host to work on
        #[arg(long, value_name = "NAME", value_parser = crate::flags::name)]
        member: String,
        /// The backup directory
        #[arg(long, value_name = "DIR")]
        from: String,
        /// A file to restore, by its original path (default: pg_hba.conf and pg_ident.conf)
        #[arg(long = "file", value_name = "PATH")]
        files: Vec<String>,
    },
    /// Delete everything in the member's data directory (Patroni stopped, never the leader)
    Wipe {
        /// The member whose host to work on
        #[arg(long, value_name = "NAME", value_parser = crate::flags::name)]
        member: String,
    },
    /// Create a directory with an owner and a mode
    Mkdir {
        /// The member whose host to work on
        #[arg(long, value_name = "NAME", value_parser = crate::flags::name)]
        member: String,
        #[arg(long, value_name = "DIR")]
        path: String,
        /// USER or USER:GROUP
        #[arg(long, default_value = "postgres:postgres")]
        owner: String,
        #[arg(long, default_value = "0700")]
        mode: String,
    },
    /// Restore the latest backup into the member's (empty) data directory with a backup tool
    RestoreBackup {
        /// The member whose host to work on
        #[arg(long, value_name = "NAME", value_parser = crate::flags::name)]
        member: String,
        #[arg(long, value_enum)]
        tool: Tool,
        /// pgBackRest's stanza
        #[arg(long, required_if_eq("tool", "pgbackrest"))]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stanza: Option<String>,
        /// The tool's configuration file on the host, when not its default
        #[arg(long, value_name = "FILE")]
        #[serde(rename = "config", default, skip_serializing_if = "Option::is_none")]
        tool_config: Option<String>,
    },
    /// Check that the newest backup (the inventory's `backup:`) is younger than its max_age
    BackupAge {
        /// The member whose host lists the backups
        #[arg(long, value_name = "NAME", value_parser = crate::flags::name)]
        member: String,
        /// The greatest age accepted [default: the inventory's backup.max_age]
        #[arg(long, value_name = "DURATION", value_parser = crate::flags::duration)]
        #[serde(with = "crate::duration::optional_text")]
        max_age: Option<std::time::Duration>,
    },
    /// Check that the data directory's filesystem has enough free space
    Disk {
        /// The member whose host to work on
        #[arg(long, value_name = "NAME", value_parser = crate::flags::name)]
        member: String,
        /// The space needed
        #[arg(long, value_name = "BYTES", value_parser = crate::flags::bytes)]
        need: u64,
    },
}

/// The backup tool a restore uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tool {
    Pgbackrest,
    WalG,
    WalE,
}

impl HostOperation {
    /// The member whose host it works on.
    pub fn member(&self) -> &str {
        match self {
            HostOperation::Backup { member, .. }
            | HostOperation::Restore { member, .. }
            | HostOperation::Wipe { member }
            | HostOperation::Mkdir { member, .. }
            | HostOperation::RestoreBackup { member, .. }
            | HostOperation::BackupAge { member, .. }
            | HostOperation::Disk { member, .. } => member,
        }
    }
}

impl Runbook for Host {
    const NAME: &'static str = "host";
    const ABOUT: &'static str = "Work on a member's host: back up and restore files, wipe the data directory, mkdir, disk space, backup age";
    type Params = Params;

    fn plan(
        target: &ClusterTarget,
        view: &ClusterView,
        params: &Params,
    ) -> Result<Plan, PlanError> {
        plan(target, view, &params.operation)
    }

    fn examples() -> Vec<Example<Params>> {
        let on_node3 = |operation| Example {
            file: "",
            params: Params { operation },
            lab: ExampleLab::Lab,
        };
        let member = || "node3".to_string();
        vec![
            Example {
                file: "host-backup",
                ..on_node3(HostOperation::Backup {
                    member: member(),
                    files: Vec::new(),
                    to: None,
                    label: "20261123T200000Z".into(),
                })
            },
            Example {
                file: "host-wipe",
                ..on_node3(HostOperation::Wipe { member: member() })
            },
            Example {
                file: "host-restore-backup",
                ..on_node3(HostOperation::RestoreBackup {
                    member: member(),
                    tool: Tool::Pgbackrest,
                    stanza: Some("demo".into()),
                    tool_config: None,
                })
            },
        ]
    }
}

/// The plan for one `pgha host` operation.
fn plan(
    target: &ClusterTarget,
    view: &ClusterView,
    operation: &HostOperation,
) -> Result<Plan, PlanError> {
    let name = operation.member();
    let host = HostSteps::new(target, view, name)?;
    let (title, summary) = describe(operation);
    let mut plan = frame(target, view, title, summary);
    plan.prechecks = vec![Check::Registered {
        member: name.into(),
    }];
    let stopped_replica = vec![
        Check::NotLeader {
            member: name.into(),
        },
        Check::Unreachable {
            member: name.into(),
        },
    ];
    let step = match operation {
        HostOperation::Wipe { .. } => {
            plan.prechecks = stopped_replica;
            plan.prechecks.push(Check::HealthyLeader);
            host.wipe_data_directory()?
        }
        HostOperation::RestoreBackup {
            tool,
            stanza,
            tool_config,
            ..
        } => {
            plan.prechecks = stopped_replica;
            let mut step = host.restore_from_backup(&backup_tool(
                *tool,
                stanza.as_ref(),
                tool_config.as_ref(),
            ))?;
            step.prechecks.clone_from(&plan.prechecks);
            step
        }
        HostOperation::Backup {
            files, to, label, ..
        } => {
            let to = match to {
                Some(to) => to.clone(),
                None => host.beside_data_directory(&format!("pgha-backup-{label}"))?,
            };
            host.backup(&host.files_or_config(files)?, &to)?
        }
        HostOperation::Restore { files, from, .. } => {
            host.restore(&host.files_or_config(files)?, from)?
        }
        HostOperation::Mkdir {
            path, owner, mode, ..
        } => host.create_directory(path, owner, mode)?,
        HostOperation::Disk { need, .. } => host.free_space_at_least(*need)?,
        HostOperation::BackupAge { max_age, .. } => {
            let policy = target.backup.as_ref().ok_or_else(|| {
                PlanError::Refused(format!(
                    "environment {} names no `backup:` (tool, stanza, max_age) for cluster {}",
                    target.environment, target.cluster
                ))
            })?;
            // Asked by hand, the answer is the point: too old fails whatever the setting.
            host.newest_backup_within(&BackupPolicy {
                max_age: max_age.unwrap_or(policy.max_age),
                refuse_when_older: true,
                ..policy.clone()
            })?
        }
    };
    plan.steps.push(step);
    Ok(plan)
}

fn backup_tool(tool: Tool, stanza: Option<&String>, config: Option<&String>) -> BackupTool {
    match tool {
        Tool::Pgbackrest => BackupTool::Pgbackrest {
            stanza: stanza.cloned().unwrap_or_default(),
            config: config.cloned(),
        },
        Tool::WalG => BackupTool::WalG {
            config: config.cloned(),
        },
        Tool::WalE => BackupTool::WalE {
            envdir: config.cloned(),
        },
    }
}

fn describe(operation: &HostOperation) -> (String, String) {
    let name = operation.member();
    match operation {
        HostOperation::Backup { .. } => (
            format!("Back up files of {name}"),
            "Copies named files, keeping their modes, and compares each copy.".to_string(),
        ),
        HostOperation::Restore { from, .. } => (
            format!("Restore files of {name} from {from}"),
            "Copies files back to their original paths and compares each.".to_string(),
        ),
        HostOperation::Wipe { .. } => (
            format!("Wipe the data directory of {name}"),
            format!(
                "Deletes everything in {name}'s data directory. Only for a member whose Patroni is stopped and that is not the leader, before a restore or a rebuild."
            ),
        ),
        HostOperation::Mkdir { path, .. } => (
            format!("Create {path} on {name}"),
            "Creates a directory with an owner and a mode.".to_string(),
        ),
        HostOperation::Disk { .. } => (
            format!("Check free disk space on {name}"),
            "Checks the filesystem of the data directory.".to_string(),
        ),
        HostOperation::BackupAge { .. } => (
            format!("Check the age of the newest backup from {name}"),
            "Lists the cluster's backups with the inventory's backup tool and checks that the newest one is recent enough.".to_string(),
        ),
        HostOperation::RestoreBackup { .. } => (
            format!("Restore the latest backup into the data directory of {name}"),
            format!(
                "A backup tool restores the latest backup into {name}'s data directory, for a member whose Patroni is stopped."
            ),
        ),
    }
}
