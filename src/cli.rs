//! Command-line parsing. clap lives here and nowhere else: raw flags are validated and converted
//! at once into an `Invocation` (a `Selector` naming the cluster and a typed `Command`), in the
//! ripgrep manner. Help, completions and the man page come from the same definitions.

use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::commands::Command;
use crate::inventory::{self, Selector};
use crate::lab::{LabCommand, LabSpec, MemberAction};
use crate::observe::Severity;
use crate::patroni::{TlsSettings, Version};
use crate::remote::ServiceAction;
use crate::runbooks::{BackupTool, HostOperation, Params};
use crate::runner::{PlanFormat, RunOptions};
use crate::ui::OutputFormat;

/// What the user asked for, validated.
#[derive(Debug)]
pub struct Invocation {
    pub selector: Selector,
    pub verbosity: u8,
    pub command: Command,
}

/// Either work to do or text clap wants printed (help, version, completions, errors).
#[derive(Debug)]
pub enum Parsed {
    Run(Box<Invocation>),
    Completions(clap_complete::Shell),
    Manual,
}

#[derive(Debug, Parser)]
#[command(
    name = "pgha",
    version,
    about = "Typed, rehearsable runbooks for PostgreSQL HA clusters (Patroni + etcd or Consul)",
    long_about = None,
    after_help = "Exit codes: 0 success, 1 failed, 2 bad input, 3 cluster unreachable, \
                  4 pre-check refused, 5 aborted by operator, 6 lock held, \
                  7 unhealthy (status --fail-on)."
)]
struct RawArgs {
    #[command(flatten)]
    selection: SelectionArgs,

    /// More logs on stderr (-v, -vv)
    #[arg(short, long, global = true, help_heading = "Logging", action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: RawCommand,
}

/// How to name the cluster: global options, valid before or after the subcommand.
#[derive(Debug, Args)]
#[command(next_help_heading = "Cluster selection")]
struct SelectionArgs {
    /// Environment in the inventory (staging, production, lab…)
    #[arg(
        short = 'e',
        long = "env",
        global = true,
        env = "PGHA_ENV",
        hide_env_values = true,
        value_name = "ENV"
    )]
    environment: Option<String>,

    /// Inventory file [default: ./pgha.yml, then the user config dir]
    #[arg(
        short = 'c',
        long,
        global = true,
        env = "PGHA_CONFIG",
        hide_env_values = true,
        value_name = "FILE"
    )]
    config: Option<PathBuf>,

    /// Cluster in the environment (optional when the environment has one)
    #[arg(long, global = true, value_name = "NAME")]
    cluster: Option<String>,

    /// Use Patroni's own configuration file instead of an inventory (like `patronictl -c`)
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "api")]
    patroni_config: Option<PathBuf>,

    /// Use one member's REST API URL and discover the others from its /cluster
    #[arg(long, global = true, value_name = "URL")]
    api: Option<String>,

    /// CA bundle for --api over HTTPS
    #[arg(long, global = true, value_name = "FILE", requires = "api")]
    cacert: Option<PathBuf>,

    /// Client certificate for --api over HTTPS
    #[arg(long, global = true, value_name = "FILE", requires_all = ["api", "key"])]
    cert: Option<PathBuf>,

    /// Client key for --api over HTTPS
    #[arg(long, global = true, value_name = "FILE", requires_all = ["api", "cert"])]
    key: Option<PathBuf>,

    /// Connect timeout for REST calls, e.g. 2s
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration)]
    connect_timeout: Option<Duration>,

    /// Request timeout for REST reads, e.g. 4s
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration)]
    request_timeout: Option<Duration>,
}

#[derive(Debug, Subcommand)]
enum RawCommand {
    /// Rebuild one replica from the leader (deletes its data directory)
    Reinit {
        /// The member to rebuild (never the leader)
        #[arg(long, value_name = "NAME")]
        member: String,
        /// Deadline of the wait for streaming [default: 2h, or the inventory's timeouts.runbooks.reinit]
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        timeout: Option<Duration>,
        /// A replica lagging more counts as not caught up
        #[arg(long, value_name = "BYTES", default_value = "1MiB", value_parser = parse_bytes)]
        max_lag: u64,
        #[command(flatten)]
        run: RawRunArgs,
    },
    /// Add a replica: a member in the inventory, not yet in the cluster (GitLab's scale-up)
    ScaleUp {
        /// The new member, as the inventory names it
        #[arg(long, value_name = "NAME")]
        member: String,
        /// Deadline of the copy and catch-up [default: 8h, or the inventory's timeouts.runbooks.scale-up]
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        timeout: Option<Duration>,
        /// The replica counts as caught up at this lag
        #[arg(long, value_name = "BYTES", default_value = "1MiB", value_parser = parse_bytes)]
        max_lag: u64,
        /// Free space the new host needs [default: the leader's databases, measured]
        #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
        need: Option<u64>,
        #[command(flatten)]
        run: RawRunArgs,
    },
    /// Remove a replica: drain it, stop and disable Patroni, wait until it left the cluster
    ScaleDown {
        /// The replica to remove (never the leader, never the last replica)
        #[arg(long, value_name = "NAME")]
        member: String,
        /// Skip the drain (no load balancer sends this member reads)
        #[arg(long)]
        no_drain: bool,
        /// How long a drain by hand may take to show [default: 10m]
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        drain_timeout: Option<Duration>,
        #[command(flatten)]
        run: RawRunArgs,
    },
    /// Hand the leader role to a replica
    Switchover {
        /// The new leader [default: the sync standby, else the replica with the lowest lag]
        #[arg(long, value_name = "NAME")]
        candidate: Option<String>,
        /// Schedule it (RFC 3339 with a time zone, e.g. 2026-11-24T02:00:00+00:00)
        #[arg(long, value_name = "TIME", value_parser = parse_future_time)]
        at: Option<String>,
        /// Run CHECKPOINT on the leader first, so its shutdown checkpoint is short
        #[arg(long)]
        checkpoint: bool,
        /// Refuse a candidate lagging more than this
        #[arg(long, value_name = "BYTES", default_value = "1MiB", value_parser = parse_bytes)]
        max_lag: u64,
        /// Deadline for the new leader to run [default: 90s]
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        timeout: Option<Duration>,
        #[command(flatten)]
        run: RawRunArgs,
    },
    /// Turn maintenance mode on: Patroni stops managing the cluster (no automatic failover)
    Pause {
        /// Also wait until every member reports it (not only the DCS)
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        run: RawRunArgs,
    },
    /// Turn maintenance mode off; with a RUN_ID, continue that recorded run instead
    Resume {
        /// A run to continue (see `pgha runs list`)
        #[arg(value_name = "RUN_ID")]
        run_id: Option<String>,
        /// Also wait until every member reports it (not only the DCS)
        #[arg(long)]
        wait: bool,
        /// With RUN_ID: when the cluster changed, plan again from the cluster as it is
        #[arg(long, requires = "run_id")]
        replan: bool,
        #[command(flatten)]
        run: RawRunArgs,
    },
    /// Restart PostgreSQL, one member at a time, replicas first, each healthy before the next
    Restart {
        /// Only this member
        #[arg(long, value_name = "NAME")]
        member: Option<String>,
        /// Only members with a pending restart
        #[arg(long)]
        pending_only: bool,
        /// A replica lagging more counts as not healthy again
        #[arg(long, value_name = "BYTES", default_value = "1MiB", value_parser = parse_bytes)]
        max_lag: u64,
        /// Deadline per member [default: 10m]
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        timeout: Option<Duration>,
        #[command(flatten)]
        run: RawRunArgs,
    },
    /// Stop, start or restart Patroni on one member through the environment's service control
    Service {
        #[arg(value_enum)]
        action: RawServiceAction,
        /// The member (never the leader, to stop or restart)
        #[arg(long, value_name = "NAME")]
        member: String,
        /// A started member lagging more counts as not caught up
        #[arg(long, value_name = "BYTES", default_value = "1MiB", value_parser = parse_bytes)]
        max_lag: u64,
        /// Deadline for the member to stream again [default: 10m]
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        timeout: Option<Duration>,
        #[command(flatten)]
        run: RawRunArgs,
    },
    /// Work on a member's host: back up and restore files, wipe the data directory, mkdir, disk space
    Host {
        #[command(subcommand)]
        operation: RawHostOperation,
    },
    /// Consul, when it is the cluster's DCS: delete the cluster's key tree
    Consul {
        #[command(subcommand)]
        command: RawConsulCommand,
    },
    /// Recorded runs: list, show, resume
    Runs {
        #[command(subcommand)]
        command: RawRunsCommand,
    },
    /// Show every member of a cluster: role, state, lag, versions (like `patronictl list`)
    Status {
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        output: Format,
        /// Refresh every INTERVAL until interrupted [default: 2s]
        #[arg(long, value_name = "INTERVAL", num_args = 0..=1, default_missing_value = "2s", value_parser = parse_duration)]
        watch: Option<Duration>,
        /// Exit 7 when a warning at or above this severity is found (for monitoring and scripts)
        #[arg(long, value_enum, value_name = "SEVERITY", conflicts_with = "watch")]
        fail_on: Option<RawSeverity>,
    },
    /// Show the cluster's timeline history (failovers and switchovers)
    History {
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// The cluster's dynamic configuration
    Config {
        #[command(subcommand)]
        command: RawConfigCommand,
    },
    /// Show the inventory as pgha resolves it (secrets are shown by source, never by value)
    Inventory {
        #[arg(short, long, value_enum, default_value_t = Format::Yaml)]
        output: Format,
    },
    /// A real Patroni cluster on loopback addresses, for demos and rehearsals
    Lab(RawLab),
    /// Print shell completions
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff)
    #[command(hide = true)]
    Man,
}

/// What every runbook command accepts.
#[derive(Debug, Args)]
struct RawRunArgs {
    /// Print the plan and check its pre-conditions against the cluster; change nothing
    #[arg(long)]
    dry_run: bool,
    /// How --dry-run prints the plan
    #[arg(short, long, value_enum, default_value_t = PlanOutput::Text)]
    output: PlanOutput,
    /// Answer yes to confirmations (not to destructive steps: see --confirm)
    #[arg(short = 'y', long)]
    yes: bool,
    /// Confirm a destructive step by the name it asks for (a member or cluster name): repeat for each
    #[arg(long, value_name = "NAME")]
    confirm: Vec<String>,
    /// A step done by hand (drain, provisioning, load-balancing) is done: repeat for each
    #[arg(long, value_name = "STEP")]
    done: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum RawHostOperation {
    /// Copy files (default: the data directory's pg_hba.conf and pg_ident.conf) to a directory
    Backup {
        #[arg(long, value_name = "NAME")]
        member: String,
        /// A file to copy (absolute path; repeat for more)
        #[arg(long = "file", value_name = "PATH")]
        files: Vec<String>,
        /// Where to copy them [default: pgha-backup-TIME beside the data directory]
        #[arg(long, value_name = "DIR")]
        to: Option<String>,
        #[command(flatten)]
        run: RawRunArgs,
    },
    /// Copy files back from a backup directory to their original paths
    Restore {
        #[arg(long, value_name = "NAME")]
        member: String,
        /// The backup directory
        #[arg(long, value_name = "DIR")]
        from: String,
        /// A file to restore, by its original path (default: pg_hba.conf and pg_ident.conf)
        #[arg(long = "file", value_name = "PATH")]
        files: Vec<String>,
        #[command(flatten)]
        run: RawRunArgs,
    },
    /// Delete everything in the member's data directory (Patroni stopped, never the leader)
    Wipe {
        #[arg(long, value_name = "NAME")]
        member: String,
        #[command(flatten)]
        run: RawRunArgs,
    },
    /// Create a directory with an owner and a mode
    Mkdir {
        #[arg(long, value_name = "NAME")]
        member: String,
        #[arg(long, value_name = "DIR")]
        path: String,
        /// USER or USER:GROUP
        #[arg(long, default_value = "postgres:postgres")]
        owner: String,
        #[arg(long, default_value = "0700")]
        mode: String,
        #[command(flatten)]
        run: RawRunArgs,
    },
    /// Restore the latest backup into the member's (empty) data directory with a backup tool
    RestoreBackup {
        #[arg(long, value_name = "NAME")]
        member: String,
        #[arg(long, value_enum)]
        tool: RawBackupTool,
        /// pgBackRest's stanza
        #[arg(long, required_if_eq("tool", "pgbackrest"))]
        stanza: Option<String>,
        /// The tool's configuration file on the host, when not its default
        #[arg(long, value_name = "FILE")]
        tool_config: Option<String>,
        #[command(flatten)]
        run: RawRunArgs,
    },
    /// Check that the data directory's filesystem has enough free space
    Disk {
        #[arg(long, value_name = "NAME")]
        member: String,
        /// The space needed
        #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
        need: u64,
        #[command(flatten)]
        run: RawRunArgs,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RawBackupTool {
    Pgbackrest,
    WalG,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RawServiceAction {
    Stop,
    Start,
    Restart,
    Enable,
    Disable,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PlanOutput {
    Text,
    Markdown,
    Json,
}

#[derive(Debug, Subcommand)]
enum RawConsulCommand {
    /// Delete every key under the cluster's prefix (service/<scope>/), with Patroni stopped everywhere
    DeleteTree {
        /// The prefix, if you want it checked: only the cluster's own is accepted
        #[arg(long, value_name = "PREFIX")]
        prefix: Option<String>,
        #[command(flatten)]
        run: RawRunArgs,
    },
}

#[derive(Debug, Subcommand)]
enum RawRunsCommand {
    /// Every recorded run, newest first
    List {
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// One run: its plan and what happened
    Show {
        run_id: String,
        #[arg(short, long, value_enum, default_value_t = PlanOutput::Text)]
        output: PlanOutput,
    },
    /// Continue a run that was interrupted, killed or failed
    Resume {
        run_id: String,
        /// When the cluster changed, plan again from the cluster as it is
        #[arg(long)]
        replan: bool,
        #[command(flatten)]
        run: RawRunArgs,
    },
}

#[derive(Debug, Subcommand)]
enum RawConfigCommand {
    /// Print the dynamic configuration stored in the DCS (GET /config)
    Show {
        #[arg(short, long, value_enum, default_value_t = Format::Yaml)]
        output: Format,
    },
}

#[derive(Debug, Args)]
struct RawLab {
    /// Lab directory [default: /var/lib/pgha/lab as root]
    #[arg(
        long,
        global = true,
        env = "PGHA_LAB_DIR",
        hide_env_values = true,
        value_name = "DIR"
    )]
    dir: Option<PathBuf>,

    #[command(subcommand)]
    command: RawLabCommand,
}

#[derive(Debug, Subcommand)]
enum RawLabCommand {
    /// Start the DCS, sshd, Alertmanager and the Patroni members; wait until every replica streams
    Up {
        /// Members to start
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=9))]
        members: u8,
        /// Extra members configured but not started (for scale-up rehearsals)
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=8))]
        spare: u8,
        /// Patroni release from PyPI to run
        #[arg(long, default_value = crate::lab::DEFAULT_PATRONI_VERSION, value_parser = parse_version)]
        patroni_version: Version,
        /// Serve the REST API over HTTPS with client certificates (mutual TLS)
        #[arg(long)]
        tls: bool,
        /// Patroni scope of the lab cluster
        #[arg(long, default_value = "demo")]
        scope: String,
        /// Address of the first member; the others follow (…11, …12, …)
        #[arg(long, default_value = "127.0.0.11")]
        first_address: Ipv4Addr,
        /// The DCS: real etcd, or pgha's Consul double (Patroni registers its services there)
        #[arg(long, value_enum, default_value_t = RawDcs::Etcd)]
        dcs: RawDcs,
        /// How long to wait for the cluster to become healthy
        #[arg(long, default_value = "180s", value_parser = parse_duration)]
        wait: Duration,
    },
    /// Stop every lab process (PostgreSQL included); --wipe also deletes the lab directory
    Down {
        #[arg(long)]
        wipe: bool,
    },
    /// Show the lab's processes and addresses
    Status {
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Stop, start or kill one member's Patroni (kill = SIGKILL, for failure drills)
    Member {
        #[arg(value_enum)]
        action: RawMemberAction,
        /// Member name (node1, node2, …)
        name: String,
        /// For start: run this Patroni release instead of the lab's
        #[arg(long, value_parser = parse_version)]
        patroni_version: Option<Version>,
    },
    /// Stop or start the lab's DCS (etcd or the Consul double), for outage drills
    Dcs {
        #[arg(value_enum)]
        action: RawDcsAction,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RawDcsAction {
    Stop,
    Start,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RawDcs {
    Etcd,
    Consul,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RawMemberAction {
    Stop,
    Start,
    Kill,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RawSeverity {
    Critical,
    Warning,
    Info,
}

impl From<RawSeverity> for Severity {
    fn from(severity: RawSeverity) -> Self {
        match severity {
            RawSeverity::Critical => Severity::Critical,
            RawSeverity::Warning => Severity::Warning,
            RawSeverity::Info => Severity::Info,
        }
    }
}

impl From<RawServiceAction> for ServiceAction {
    fn from(action: RawServiceAction) -> Self {
        match action {
            RawServiceAction::Stop => ServiceAction::Stop,
            RawServiceAction::Start => ServiceAction::Start,
            RawServiceAction::Restart => ServiceAction::Restart,
            RawServiceAction::Enable => ServiceAction::Enable,
            RawServiceAction::Disable => ServiceAction::Disable,
        }
    }
}

impl From<PlanOutput> for PlanFormat {
    fn from(format: PlanOutput) -> Self {
        match format {
            PlanOutput::Text => PlanFormat::Text,
            PlanOutput::Markdown => PlanFormat::Markdown,
            PlanOutput::Json => PlanFormat::Json,
        }
    }
}

impl From<Format> for OutputFormat {
    fn from(format: Format) -> Self {
        match format {
            Format::Table => OutputFormat::Table,
            Format::Json => OutputFormat::Json,
            Format::Yaml => OutputFormat::Yaml,
        }
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::duration::parse(text)
}

/// `1MiB`, `512kB`, `1048576`: sizes as operators write them (KiB/MiB/GiB are 1024-based,
/// kB/MB/GB 1000-based, a bare number is bytes).
fn parse_bytes(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|character: char| !character.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 1MiB or 500kB"))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "kB" | "KB" => 1000,
        "KiB" => 1024,
        "MB" => 1000 * 1000,
        "MiB" => 1024 * 1024,
        "GB" => 1000 * 1000 * 1000,
        "GiB" => 1024 * 1024 * 1024,
        other => {
            return Err(format!(
                "{other:?} is not a unit (B, kB, KiB, MB, MiB, GB, GiB)"
            ));
        }
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// A switchover time: RFC 3339 with a zone (Patroni refuses naive times), in the future.
fn parse_future_time(text: &str) -> Result<String, String> {
    let at: jiff::Timestamp = text.parse().map_err(|error| {
        format!(
            "{text:?} is not an RFC 3339 time with a zone, like 2026-11-24T02:00:00+00:00 ({error})"
        )
    })?;
    if at <= jiff::Timestamp::now() {
        return Err(format!("{text:?} is in the past"));
    }
    Ok(at.strftime("%Y-%m-%dT%H:%M:%S+00:00").to_string())
}

fn parse_version(text: &str) -> Result<Version, String> {
    text.parse()
}

/// Parses and validates the arguments. Errors are clap's (usage, exit code 2).
pub fn parse<I, T>(args: I) -> Result<Parsed, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let raw = RawArgs::try_parse_from(args)?;
    let selection = raw.selection;
    let lab_dir = match &raw.command {
        RawCommand::Lab(lab) => lab.dir.clone(),
        _ => std::env::var_os("PGHA_LAB_DIR").map(PathBuf::from),
    }
    .unwrap_or_else(crate::lab::default_dir);
    let selector = Selector {
        config: selection.config,
        search_paths: search_paths(),
        lab_inventory: Some(lab_dir.join(inventory::FILE_NAME)),
        environment: selection.environment,
        cluster: selection.cluster,
        patroni_config: selection.patroni_config,
        api: selection.api,
        api_tls: TlsSettings {
            ca_file: selection.cacert,
            client_cert: selection.cert,
            client_key: selection.key,
            verify: true,
        },
        connect_timeout: selection.connect_timeout,
        request_timeout: selection.request_timeout,
    };
    validate_names(&selector)?;
    let command = match command(raw.command, lab_dir)? {
        Ok(command) => command,
        Err(text) => return Ok(text),
    };
    Ok(Parsed::Run(Box::new(Invocation {
        selector,
        verbosity: raw.verbose,
        command,
    })))
}

/// The validated command, or text clap should print instead (completions, the manual).
fn command(raw: RawCommand, lab_dir: PathBuf) -> Result<Result<Command, Parsed>, clap::Error> {
    let raw = match runbook_params(raw) {
        Ok((params, run)) => return Ok(Ok(runbook(params, run)?)),
        Err(raw) => *raw,
    };
    Ok(Ok(match raw {
        RawCommand::Reinit { .. }
        | RawCommand::Switchover { .. }
        | RawCommand::Pause { .. }
        | RawCommand::Restart { .. }
        | RawCommand::Service { .. }
        | RawCommand::Host { .. }
        | RawCommand::Consul { .. }
        | RawCommand::ScaleUp { .. }
        | RawCommand::ScaleDown { .. }
        | RawCommand::Resume { run_id: None, .. } => {
            unreachable!("runbook commands are converted by runbook_params")
        }
        RawCommand::Resume {
            run_id: Some(run_id),
            replan,
            run,
            ..
        } => resume_run(run_id, replan, run)?,
        RawCommand::Runs { command } => match command {
            RawRunsCommand::List { output } => Command::RunsList {
                format: output.into(),
            },
            RawRunsCommand::Show { run_id, output } => {
                crate::names::check_name(&run_id).map_err(|reason| usage_error(&reason))?;
                Command::RunsShow {
                    run_id,
                    format: output.into(),
                }
            }
            RawRunsCommand::Resume {
                run_id,
                replan,
                run,
            } => resume_run(run_id, replan, run)?,
        },
        RawCommand::Status {
            output,
            watch,
            fail_on,
        } => Command::Status {
            format: output.into(),
            watch,
            fail_on: fail_on.map(Into::into),
        },
        RawCommand::History { output } => Command::History {
            format: output.into(),
        },
        RawCommand::Config {
            command: RawConfigCommand::Show { output },
        } => Command::ConfigShow {
            format: output.into(),
        },
        RawCommand::Inventory { output } => Command::Inventory {
            format: output.into(),
        },
        RawCommand::Lab(lab) => Command::Lab {
            dir: lab_dir,
            command: lab_command(lab.command)?,
        },
        RawCommand::Completions { shell } => return Ok(Err(Parsed::Completions(shell))),
        RawCommand::Man => return Ok(Err(Parsed::Manual)),
    }))
}

/// `pgha host …` as the member, the operation and the run options.
fn host_operation(raw: RawHostOperation) -> (String, HostOperation, RawRunArgs) {
    match raw {
        RawHostOperation::Backup {
            member,
            files,
            to,
            run,
        } => {
            let label = request_label();
            (member, HostOperation::Backup { files, to, label }, run)
        }
        RawHostOperation::Restore {
            member,
            from,
            files,
            run,
        } => (member, HostOperation::Restore { files, from }, run),
        RawHostOperation::Wipe { member, run } => (member, HostOperation::Wipe, run),
        RawHostOperation::Mkdir {
            member,
            path,
            owner,
            mode,
            run,
        } => (member, HostOperation::Mkdir { path, owner, mode }, run),
        RawHostOperation::Disk { member, need, run } => (member, HostOperation::Disk { need }, run),
        RawHostOperation::RestoreBackup {
            member,
            tool,
            stanza,
            tool_config,
            run,
        } => {
            let tool = match tool {
                RawBackupTool::Pgbackrest => BackupTool::Pgbackrest {
                    stanza: stanza.unwrap_or_default(),
                    config: tool_config,
                },
                RawBackupTool::WalG => BackupTool::WalG {
                    config: tool_config,
                },
            };
            (member, HostOperation::RestoreBackup { tool }, run)
        }
    }
}

/// A runbook command's parameters and run options; any other command back unchanged.
fn runbook_params(raw: RawCommand) -> Result<(Params, RawRunArgs), Box<RawCommand>> {
    match raw {
        RawCommand::Reinit {
            member,
            timeout,
            max_lag,
            run,
        } => Ok((
            Params::Reinit {
                member,
                timeout,
                max_lag,
            },
            run,
        )),
        RawCommand::Switchover {
            candidate,
            at,
            checkpoint,
            max_lag,
            timeout,
            run,
        } => Ok((
            Params::Switchover {
                candidate,
                at,
                checkpoint,
                max_lag,
                timeout,
            },
            run,
        )),
        RawCommand::Pause { wait, run } => Ok((Params::Pause { wait }, run)),
        RawCommand::Restart {
            member,
            pending_only,
            max_lag,
            timeout,
            run,
        } => Ok((
            Params::Restart {
                member,
                pending_only,
                max_lag,
                timeout,
            },
            run,
        )),
        RawCommand::Service {
            action,
            member,
            max_lag,
            timeout,
            run,
        } => Ok((
            Params::Service {
                action: action.into(),
                member,
                max_lag,
                timeout,
            },
            run,
        )),
        RawCommand::Resume {
            run_id: None,
            wait,
            run,
            ..
        } => Ok((Params::Resume { wait }, run)),
        RawCommand::Host { operation } => {
            let (member, operation, run) = host_operation(operation);
            Ok((Params::Host { member, operation }, run))
        }
        RawCommand::Consul {
            command: RawConsulCommand::DeleteTree { prefix, run },
        } => Ok((Params::ConsulDeleteTree { prefix }, run)),
        scale @ (RawCommand::ScaleDown { .. } | RawCommand::ScaleUp { .. }) => {
            Ok(scale_params(scale))
        }
        other => Err(Box::new(other)),
    }
}

/// When a command was asked for, naming the copies it keeps; planners read no clock.
fn request_label() -> String {
    jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S").to_string()
}

/// `pgha scale-up` and `pgha scale-down` as runbook parameters.
fn scale_params(raw: RawCommand) -> (Params, RawRunArgs) {
    match raw {
        RawCommand::ScaleDown {
            member,
            no_drain,
            drain_timeout,
            run,
        } => (
            Params::ScaleDown {
                member,
                drain: !no_drain,
                drain_timeout,
                label: request_label(),
            },
            run,
        ),
        RawCommand::ScaleUp {
            member,
            timeout,
            max_lag,
            need,
            run,
        } => (
            Params::ScaleUp {
                member,
                max_lag,
                timeout,
                need,
            },
            run,
        ),
        _ => unreachable!("only scale commands come here"),
    }
}

fn run_options(run: RawRunArgs) -> Result<RunOptions, clap::Error> {
    for name in &run.confirm {
        crate::names::check_name(name)
            .map_err(|reason| usage_error(&format!("--confirm: {reason}")))?;
    }
    for name in &run.done {
        crate::names::check_name(name)
            .map_err(|reason| usage_error(&format!("--done: {reason}")))?;
    }
    Ok(RunOptions {
        dry_run: run.dry_run,
        format: run.output.into(),
        assume_yes: run.yes,
        confirm: run.confirm,
        done: run.done,
    })
}

fn runbook(params: Params, run: RawRunArgs) -> Result<Command, clap::Error> {
    let names = match &params {
        Params::Reinit { member, .. }
        | Params::Service { member, .. }
        | Params::ScaleUp { member, .. }
        | Params::ScaleDown { member, .. }
        | Params::Host { member, .. } => {
            vec![("--member", Some(member))]
        }
        Params::Switchover { candidate, .. } => vec![("--candidate", candidate.as_ref())],
        Params::Restart { member, .. } => vec![("--member", member.as_ref())],
        Params::Pause { .. } | Params::Resume { .. } | Params::ConsulDeleteTree { .. } => {
            Vec::new()
        }
    };
    for (flag, name) in names {
        if let Some(name) = name {
            crate::names::check_name(name)
                .map_err(|reason| usage_error(&format!("{flag}: {reason}")))?;
        }
    }
    Ok(Command::Runbook {
        params,
        options: run_options(run)?,
    })
}

fn resume_run(run_id: String, replan: bool, run: RawRunArgs) -> Result<Command, clap::Error> {
    crate::names::check_name(&run_id)
        .map_err(|reason| usage_error(&format!("RUN_ID: {reason}")))?;
    if run.dry_run {
        return Err(usage_error("--dry-run does not go with resuming a run"));
    }
    Ok(Command::ResumeRun {
        run_id,
        replan,
        options: run_options(run)?,
    })
}

fn lab_command(raw: RawLabCommand) -> Result<LabCommand, clap::Error> {
    Ok(match raw {
        RawLabCommand::Up {
            members,
            spare,
            patroni_version,
            tls,
            scope,
            first_address,
            dcs,
            wait,
        } => {
            crate::names::check_name(&scope)
                .map_err(|reason| usage_error(&format!("--scope: {reason}")))?;
            let spec = LabSpec {
                members,
                spares: spare,
                patroni_version,
                tls,
                scope,
                first_address,
                dcs: match dcs {
                    RawDcs::Etcd => crate::lab::LabDcs::Etcd,
                    RawDcs::Consul => crate::lab::LabDcs::Consul,
                },
            };
            spec.check().map_err(|reason| usage_error(&reason))?;
            LabCommand::Up { spec, wait }
        }
        RawLabCommand::Down { wipe } => LabCommand::Down { wipe },
        RawLabCommand::Dcs { action } => LabCommand::Dcs {
            start: matches!(action, RawDcsAction::Start),
        },
        RawLabCommand::Status { output } => LabCommand::Status {
            format: output.into(),
        },
        RawLabCommand::Member {
            action,
            name,
            patroni_version,
        } => {
            crate::names::check_name(&name).map_err(|reason| usage_error(&reason))?;
            let action = match (action, patroni_version) {
                (RawMemberAction::Start, version) => MemberAction::Start {
                    patroni_version: version,
                },
                (RawMemberAction::Stop, None) => MemberAction::Stop,
                (RawMemberAction::Kill, None) => MemberAction::Kill,
                (_, Some(_)) => {
                    return Err(usage_error(
                        "--patroni-version only goes with `member start`",
                    ));
                }
            };
            LabCommand::Member { action, name }
        }
    })
}

fn validate_names(selector: &Selector) -> Result<(), clap::Error> {
    for (flag, value) in [
        ("--env", &selector.environment),
        ("--cluster", &selector.cluster),
    ] {
        if let Some(value) = value {
            crate::names::check_name(value)
                .map_err(|reason| usage_error(&format!("{flag}: {reason}")))?;
        }
    }
    if let Some(api) = &selector.api {
        // First: the message below shows the URL.
        crate::web::refuse_userinfo(
            api,
            "set PATRONI_RESTAPI_USERNAME and PATRONI_RESTAPI_PASSWORD instead",
        )
        .map_err(|reason| one_line_error(&format!("--api: {reason}")))?;
        let valid = url::Url::parse(api)
            .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.host_str().is_some());
        if !valid {
            return Err(usage_error(&format!(
                "--api: {api:?} is not an http:// or https:// URL"
            )));
        }
    }
    Ok(())
}

fn usage_error(message: &str) -> clap::Error {
    RawArgs::command().error(clap::error::ErrorKind::ValueValidation, message)
}

/// A bad value whose message says it all: `error: MESSAGE`, without the usage that would make
/// it several lines.
fn one_line_error(message: &str) -> clap::Error {
    clap::Error::raw(
        clap::error::ErrorKind::ValueValidation,
        format!("{message}\n"),
    )
}

/// `./pgha.yml`, then `$XDG_CONFIG_HOME/pgha/pgha.yml` (or `~/.config/pgha/pgha.yml`).
fn search_paths() -> Vec<PathBuf> {
    let mut paths = vec![PathBuf::from(inventory::FILE_NAME)];
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|path| path.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")));
    if let Some(config_home) = config_home {
        paths.push(config_home.join("pgha").join(inventory::FILE_NAME));
    }
    paths
}

pub fn write_completions(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    clap_complete::generate(shell, &mut RawArgs::command(), "pgha", out);
}

pub fn write_manual(out: &mut dyn std::io::Write) -> std::io::Result<()> {
    clap_mangen::Man::new(RawArgs::command()).render(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definitions_are_consistent() {
        RawArgs::command().debug_assert();
    }

    #[test]
    fn names_with_shell_metacharacters_are_refused() {
        for name in ["a b", "x;rm", "$(id)", "-rf", "a\nb", ""] {
            let result = parse(["pgha", "--cluster", name, "status"]);
            assert!(result.is_err(), "{name:?} was accepted");
        }
    }

    #[test]
    fn credentials_in_the_api_url_are_refused_in_one_line_without_the_password() {
        let Err(error) = parse(["pgha", "--api", "http://u:secret@127.0.0.1:8008", "status"])
        else {
            panic!("--api with credentials was accepted");
        };
        let message = error.to_string();
        assert!(
            message
                .starts_with("error: --api: \"http://***@127.0.0.1:8008\": no credentials in URLs"),
            "{message}"
        );
        assert_eq!(message.trim_end().lines().count(), 1, "{message}");
        assert!(!message.contains("secret"), "{message}");
        assert!(error.use_stderr(), "an error, exit 2");
    }

    #[test]
    fn help_texts() {
        let mut command = RawArgs::command().term_width(100);
        insta::assert_snapshot!("help", command.render_help().to_string());
        let status = command.find_subcommand_mut("status").unwrap();
        insta::assert_snapshot!("status_help", status.render_help().to_string());
        let lab = command
            .find_subcommand_mut("lab")
            .unwrap()
            .find_subcommand_mut("up")
            .unwrap();
        insta::assert_snapshot!("lab_up_help", lab.render_help().to_string());
    }

    #[test]
    fn durations_past_a_week_are_refused_naming_the_flag() {
        for (flag, command) in [("--timeout", "reinit"), ("--request-timeout", "status")] {
            let mut args = vec!["pgha", command, flag, "9000y"];
            if command == "reinit" {
                args.extend(["--member", "node1"]);
            }
            let error = parse(args).unwrap_err().to_string();
            assert!(
                error.contains(flag) && error.contains("longer than 7days"),
                "{error}"
            );
        }
    }

    #[test]
    fn watch_defaults_to_two_seconds() {
        let Ok(Parsed::Run(invocation)) = parse(["pgha", "status", "--watch"]) else {
            panic!("status --watch did not parse");
        };
        assert!(matches!(
            invocation.command,
            Command::Status { watch: Some(interval), .. } if interval == Duration::from_secs(2)
        ));
    }
}
