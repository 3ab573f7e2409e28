//! Command-line parsing. clap lives here and nowhere else: raw flags are validated and converted
//! at once into an `Invocation` (a `Selector` naming the cluster and a typed `Command`), in the
//! ripgrep manner. Help, completions and the man page come from the same definitions.

use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::commands::{Command, DoctorFormat};
use crate::inspect::DsnTarget;
use crate::inventory::{self, Selector};
use crate::lab::{Killed, LabCommand, LabSpec, MemberAction};
use crate::observe::Severity;
use crate::patroni::{TlsSettings, Version};
use crate::runbooks::{Params, PlanOutput, ResumeParams, RunFlags, RunbookCommand};
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

    /// Cluster in the environment (optional when the environment has one); `status` takes
    /// several (repeat) and shows them at once
    #[arg(long, global = true, value_name = "NAME")]
    cluster: Vec<String>,

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
    #[arg(long, global = true, value_name = "DURATION", value_parser = crate::flags::duration)]
    connect_timeout: Option<Duration>,

    /// Request timeout for REST reads, e.g. 4s
    #[arg(long, global = true, value_name = "DURATION", value_parser = crate::flags::duration)]
    request_timeout: Option<Duration>,
}

#[derive(Debug, Subcommand)]
enum RawCommand {
    #[command(flatten)]
    Runbook(RunbookCommand),
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
        #[arg(long, value_name = "INTERVAL", num_args = 0..=1, default_missing_value = "2s", value_parser = crate::flags::duration)]
        watch: Option<Duration>,
        /// Exit 7 when a warning at or above this severity is found (for monitoring and scripts)
        #[arg(long, value_enum, value_name = "SEVERITY", conflicts_with = "watch")]
        fail_on: Option<RawSeverity>,
        /// Table: always show the pending-restart, scheduled-restart and tags columns
        /// (`patronictl list -e`)
        #[arg(long)]
        extended: bool,
        /// Table: the leader first, each replica under the member it replicates from
        /// (`patronictl topology`)
        #[arg(long)]
        topology: bool,
        /// Table: when the cluster was observed, above the table (`patronictl list -t`)
        #[arg(short, long)]
        timestamp: bool,
        /// Every cluster of the environment at once: a table each, then a summary line each
        #[arg(long, conflicts_with = "watch")]
        all: bool,
    },
    /// Show pgha's release, then each member's Patroni and PostgreSQL releases (like
    /// `patronictl version CLUSTER`)
    Version {
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Print a libpq connection string (host and port, never a password) for the primary, the
    /// most caught-up streaming replica, or a member (like `patronictl dsn`)
    Dsn {
        /// Which member: the primary, or the streaming replica with the least lag
        #[arg(long, value_enum, default_value_t = RawDsnRole::Primary, conflicts_with = "member")]
        role: RawDsnRole,
        /// This member, whatever its role
        #[arg(long, value_name = "NAME", value_parser = crate::flags::name)]
        member: Option<String>,
        /// `table` prints the connection string alone; json and yaml add the member, its
        /// role, host and port
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        output: Format,
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
    /// Find what is wrong with the cluster, or will be when something fails (read-only): each
    /// finding with what was seen, why it matters and the fix; exit 7 on a warning or worse
    Doctor {
        #[arg(short, long, value_enum, default_value_t = DoctorOutput::Text)]
        output: DoctorOutput,
        /// The leader's free disk below this share (percent) of its data directory's
        /// filesystem is a warning, below a third of it critical (read over SSH)
        #[arg(long, value_name = "PERCENT", default_value = "15", value_parser = crate::doctor::Percent::parse)]
        min_free_disk: crate::doctor::Percent,
    },
    /// Show the inventory as pgha resolves it (secrets are shown by source, never by value)
    Inventory {
        #[arg(short, long, value_enum, default_value_t = Format::Yaml)]
        output: Format,
    },
    /// Run a runbook first on a lab shaped like a cluster (read only there): the same plan,
    /// shown by its structure's fingerprint, each step timed, for the change request
    Rehearse {
        /// The cluster to rehearse for, `[ENV/]CLUSTER`: only read
        #[arg(long, value_name = "[ENV/]CLUSTER")]
        like: String,
        /// The rehearsal lab's directory [default: the lab's, with `-rehearsal`]
        #[arg(long, value_name = "DIR")]
        lab_dir: Option<PathBuf>,
        /// The rehearsal lab's first member address (the others follow)
        #[arg(long, default_value = "127.0.0.171")]
        first_address: Ipv4Addr,
        /// How the report is printed
        #[arg(long, value_enum, default_value_t = PlanOutput::Markdown)]
        report: PlanOutput,
        /// A fault injected on the lab once the step named starts: kill-leader@STEP (the
        /// leader's Patroni and PostgreSQL killed), dcs-down@STEP (the DCS away for 25 s),
        /// ssh-drop@STEP (SSH and its sessions away for 15 s), pgha-kill@STEP (the run's pgha
        /// killed, then the run resumed). A run that fails after a fault is resumed once it is over
        #[arg(long = "fault", value_name = "KIND@STEP", value_parser = crate::rehearse::Fault::parse)]
        faults: Vec<crate::rehearse::Fault>,
        /// Fill the lab's database with pgbench to this share of the target's size (0.01 =
        /// 1 %), so that base backups and restores copy data in proportion
        #[arg(long, value_name = "SHARE", value_parser = crate::rehearse::Scale::parse)]
        scale: Option<crate::rehearse::Scale>,
        #[command(subcommand)]
        runbook: RunbookCommand,
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

#[derive(Debug, Subcommand)]
enum RawRunsCommand {
    /// Every recorded run, newest first
    List {
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// One run: its plan and what happened
    Show {
        #[arg(value_parser = crate::flags::name)]
        run_id: String,
        #[arg(short, long, value_enum, default_value_t = PlanOutput::Text)]
        output: PlanOutput,
    },
    /// Continue a run that was interrupted, killed or failed
    Resume {
        #[arg(value_parser = crate::flags::name)]
        run_id: String,
        /// Plan again from the cluster as it is (after it changed: a failover, a member gone)
        #[arg(long)]
        replan: bool,
        #[command(flatten)]
        run: RunFlags,
    },
}

#[derive(Debug, Subcommand)]
enum RawConfigCommand {
    /// Print the dynamic configuration stored in the DCS (GET /config)
    Show {
        #[arg(short, long, value_enum, default_value_t = Format::Yaml)]
        output: Format,
    },
    /// Change it: `pgha edit-config` (a diff, a compare-and-set, every member verified)
    Edit {
        #[command(flatten)]
        params: Box<crate::runbooks::edit_config::Params>,
        #[command(flatten)]
        run: RunFlags,
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
        #[arg(long, default_value = crate::lab::DEFAULT_PATRONI_VERSION, value_parser = crate::flags::version)]
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
        /// etcd members: 1, or 3 for quorum-loss drills (on the addresses below the first
        /// member's) [default: 1]
        #[arg(long, value_name = "N")]
        etcd_members: Option<u8>,
        /// Also run a standby cluster `geo` following this one from a pgBackRest WAL archive
        /// (the primary archives into the lab's repository; geo1 is restored from its backup)
        #[arg(long)]
        standby_cluster: bool,
        /// Members of the standby cluster (geo1, geo2, …), on the addresses after the primary's
        /// [default: 2]
        #[arg(long, value_name = "N", requires = "standby_cluster", value_parser = clap::value_parser!(u8).range(1..=9))]
        standby_members: Option<u8>,
        /// How long to wait for the cluster to become healthy
        #[arg(long, default_value = "180s", value_parser = crate::flags::duration)]
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
    /// Stop, start or kill one member's Patroni (kill = SIGKILL, for failure drills), or
    /// delete its data while it runs (wipe-live)
    Member {
        #[arg(value_enum)]
        action: RawMemberAction,
        /// Member name (node1, node2, …)
        name: String,
        /// For start: run this Patroni release instead of the lab's
        #[arg(long, value_parser = crate::flags::version)]
        patroni_version: Option<Version>,
        /// For kill: the postmaster instead of Patroni (as `pkill -9 postgres`)
        #[arg(long, conflicts_with = "host")]
        postgres: bool,
        /// For kill: Patroni and the postmaster together (as a crashed machine)
        #[arg(long)]
        host: bool,
    },
    /// Stop or start the lab's DCS (etcd or the Consul double), for outage drills
    Dcs {
        #[arg(value_enum)]
        action: RawDcsAction,
        /// Only this etcd member (1-based; etcd labs only) [default: every member]
        #[arg(long, value_name = "N")]
        member: Option<u8>,
    },
    /// Stop the lab's sshd with every session it serves (as a network drop), or start it again
    Ssh {
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
    WipeLive,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
    Yaml,
}

/// `pgha dsn --role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RawDsnRole {
    Primary,
    Replica,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DoctorOutput {
    Text,
    Json,
    Markdown,
}

impl From<DoctorOutput> for DoctorFormat {
    fn from(output: DoctorOutput) -> Self {
        match output {
            DoctorOutput::Text => DoctorFormat::Text,
            DoctorOutput::Json => DoctorFormat::Json,
            DoctorOutput::Markdown => DoctorFormat::Markdown,
        }
    }
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
        cluster: selection.cluster.first().cloned(),
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
    for cluster in selection.cluster.iter().skip(1) {
        crate::names::check_name(cluster)
            .map_err(|reason| usage_error(&format!("--cluster: {reason}")))?;
    }
    let several = (selection.cluster.len() > 1).then_some(selection.cluster);
    let command = match several {
        Some(clusters) => match raw.command {
            RawCommand::Status {
                output,
                fail_on,
                extended,
                topology,
                timestamp,
                watch: None,
                ..
            } => Ok(Command::Status {
                fleet: Some(crate::fleet::Fleet::Named(clusters)),
                format: output.into(),
                watch: None,
                fail_on: fail_on.map(Into::into),
                style: crate::status::TableStyle {
                    extended,
                    topology,
                    timestamp,
                },
            }),
            _ => {
                return Err(usage_error(
                    "--cluster is given several times: only `pgha status` (without --watch) shows several clusters; other commands act on one",
                ));
            }
        },
        None => command(raw.command, lab_dir)?,
    };
    let command = match command {
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
    Ok(Ok(match raw {
        RawCommand::Runbook(command) => runbook(command)?,
        RawCommand::Runs { command } => match command {
            RawRunsCommand::List { output } => Command::RunsList {
                format: output.into(),
            },
            RawRunsCommand::Show { run_id, output } => Command::RunsShow {
                run_id,
                format: output.into(),
            },
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
            extended,
            topology,
            timestamp,
            all,
        } => Command::Status {
            fleet: all.then_some(crate::fleet::Fleet::All),
            format: output.into(),
            watch,
            fail_on: fail_on.map(Into::into),
            style: crate::status::TableStyle {
                extended,
                topology,
                timestamp,
            },
        },
        RawCommand::History { output } => Command::History {
            format: output.into(),
        },
        RawCommand::Version { output } => Command::Version {
            format: output.into(),
        },
        RawCommand::Dsn {
            role,
            member,
            output,
        } => Command::Dsn {
            target: match (member, role) {
                (Some(name), _) => DsnTarget::Member(name),
                (None, RawDsnRole::Primary) => DsnTarget::Primary,
                (None, RawDsnRole::Replica) => DsnTarget::Replica,
            },
            format: output.into(),
        },
        RawCommand::Config {
            command: RawConfigCommand::Show { output },
        } => Command::ConfigShow {
            format: output.into(),
        },
        RawCommand::Config {
            command: RawConfigCommand::Edit { params, run },
        } => runbook(RunbookCommand::EditConfig {
            params: *params,
            run,
        })?,
        RawCommand::Doctor {
            output,
            min_free_disk,
        } => Command::Doctor {
            format: output.into(),
            min_free_disk,
        },
        RawCommand::Inventory { output } => Command::Inventory {
            format: output.into(),
        },
        RawCommand::Rehearse {
            like,
            lab_dir: rehearsal_dir,
            first_address,
            report,
            faults,
            scale,
            runbook: raw_runbook,
        } => rehearse(
            &like,
            rehearsal_dir.unwrap_or_else(|| beside(&lab_dir, "-rehearsal")),
            first_address,
            report,
            (faults, scale),
            raw_runbook,
        )?,
        RawCommand::Lab(lab) => Command::Lab {
            dir: lab_dir,
            command: lab_command(lab.command)?,
        },
        RawCommand::Completions { shell } => return Ok(Err(Parsed::Completions(shell))),
        RawCommand::Man => return Ok(Err(Parsed::Manual)),
    }))
}

/// `DIR` with `suffix` appended to its last component.
fn beside(dir: &std::path::Path, suffix: &str) -> PathBuf {
    let mut beside = dir.as_os_str().to_owned();
    beside.push(suffix);
    PathBuf::from(beside)
}

fn run_options(run: RunFlags) -> RunOptions {
    RunOptions {
        dry_run: run.dry_run,
        format: run.output.into(),
        assume_yes: run.yes,
        confirm: run.confirm,
        done: run.done,
    }
}

/// A runbook's command: a run of it, or, for `pgha resume RUN_ID`, the continuation of a
/// recorded run.
/// `pgha rehearse --like [ENV/]CLUSTER RUNBOOK …`, validated.
fn rehearse(
    like: &str,
    lab_dir: PathBuf,
    first_address: Ipv4Addr,
    report: PlanOutput,
    (faults, scale): (Vec<crate::rehearse::Fault>, Option<crate::rehearse::Scale>),
    raw_runbook: RunbookCommand,
) -> Result<Command, clap::Error> {
    let (environment, cluster) = match like.split_once('/') {
        Some((environment, cluster)) => (Some(environment.to_string()), cluster.to_string()),
        None => (None, like.to_string()),
    };
    for name in environment.iter().chain(std::iter::once(&cluster)) {
        crate::names::check_name(name)
            .map_err(|reason| usage_error(&format!("--like: {reason}")))?;
    }
    let Command::Runbook { params, options } = runbook(raw_runbook)? else {
        return Err(usage_error(
            "rehearse runs a runbook: `pgha rehearse --like CLUSTER switchover …`",
        ));
    };
    if options.dry_run {
        return Err(usage_error(
            "rehearse runs the runbook on its lab: leave out --dry-run (the real cluster's dry-run is `pgha RUNBOOK --dry-run`)",
        ));
    }
    Ok(Command::Rehearse {
        environment,
        cluster,
        lab_dir,
        first_address,
        report,
        faults,
        scale,
        params,
        options,
    })
}

fn runbook(command: RunbookCommand) -> Result<Command, clap::Error> {
    match command.into_parts() {
        (
            Params::Resume(ResumeParams {
                run_id: Some(run_id),
                replan,
                ..
            }),
            run,
        ) => resume_run(run_id, replan, run),
        (params, run) => Ok(Command::Runbook {
            params,
            options: run_options(run),
        }),
    }
}

fn resume_run(run_id: String, replan: bool, run: RunFlags) -> Result<Command, clap::Error> {
    if run.dry_run {
        return Err(usage_error("--dry-run does not go with resuming a run"));
    }
    Ok(Command::ResumeRun {
        run_id,
        replan,
        options: run_options(run),
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
            etcd_members,
            standby_cluster,
            standby_members,
            wait,
        } => {
            crate::names::check_name(&scope)
                .map_err(|reason| usage_error(&format!("--scope: {reason}")))?;
            let etcd_members = check_etcd_members(etcd_members, dcs)?;
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
                etcd_members,
                standby_members: match (standby_cluster, standby_members) {
                    (false, _) => 0,
                    (true, members) => members.unwrap_or(crate::lab::DEFAULT_STANDBY_MEMBERS),
                },
                mirror: crate::lab::Mirror::default(),
            };
            spec.check().map_err(|reason| usage_error(&reason))?;
            LabCommand::Up { spec, wait }
        }
        RawLabCommand::Down { wipe } => LabCommand::Down { wipe },
        RawLabCommand::Dcs { action, member } => {
            if member == Some(0) {
                return Err(one_line_error(
                    "--member 0: etcd members are numbered from 1",
                ));
            }
            LabCommand::Dcs {
                start: matches!(action, RawDcsAction::Start),
                member,
            }
        }
        RawLabCommand::Ssh { action } => LabCommand::Ssh {
            start: matches!(action, RawDcsAction::Start),
        },
        RawLabCommand::Status { output } => LabCommand::Status {
            format: output.into(),
        },
        RawLabCommand::Member {
            action,
            name,
            patroni_version,
            postgres,
            host,
        } => {
            crate::names::check_name(&name).map_err(|reason| usage_error(&reason))?;
            if (postgres || host) && !matches!(action, RawMemberAction::Kill) {
                return Err(usage_error(
                    "--postgres and --host only go with `member kill`",
                ));
            }
            let action = match (action, patroni_version) {
                (RawMemberAction::Start, version) => MemberAction::Start {
                    patroni_version: version,
                },
                (RawMemberAction::Stop, None) => MemberAction::Stop,
                (RawMemberAction::Kill, None) => MemberAction::Kill(if postgres {
                    Killed::Postgres
                } else if host {
                    Killed::Host
                } else {
                    Killed::Patroni
                }),
                (RawMemberAction::WipeLive, None) => MemberAction::WipeLive,
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

/// `--etcd-members`: 1 or 3, on etcd only; 1 when not given.
fn check_etcd_members(etcd_members: Option<u8>, dcs: RawDcs) -> Result<u8, clap::Error> {
    match (etcd_members, dcs) {
        (None, _) => Ok(1),
        (Some(_), RawDcs::Consul) => Err(one_line_error(
            "--etcd-members goes with --dcs etcd only (the Consul double is one agent)",
        )),
        (Some(count), RawDcs::Etcd) if crate::lab::ETCD_MEMBER_COUNTS.contains(&count) => Ok(count),
        (Some(count), RawDcs::Etcd) => Err(one_line_error(&format!(
            "--etcd-members {count}: the lab runs 1 or 3 etcd members"
        ))),
    }
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
    fn etcd_members_are_one_or_three_on_etcd_only_refused_in_one_line() {
        let up = |extra: &[&str]| {
            let mut args = vec!["pgha", "lab", "up"];
            args.extend_from_slice(extra);
            parse(args)
        };
        for (extra, expected) in [
            (
                &["--etcd-members", "2"][..],
                "error: --etcd-members 2: the lab runs 1 or 3 etcd members",
            ),
            (
                &["--etcd-members", "3", "--dcs", "consul"][..],
                "error: --etcd-members goes with --dcs etcd only",
            ),
            (
                &["--etcd-members", "1", "--dcs", "consul"][..],
                "error: --etcd-members goes with --dcs etcd only",
            ),
        ] {
            let Err(error) = up(extra) else {
                panic!("{extra:?} was accepted");
            };
            let message = error.to_string();
            assert!(message.starts_with(expected), "{message}");
            assert_eq!(message.trim_end().lines().count(), 1, "{message}");
        }
        let Ok(Parsed::Run(invocation)) = up(&["--etcd-members", "3"]) else {
            panic!("--etcd-members 3 did not parse");
        };
        assert!(matches!(
            invocation.command,
            Command::Lab { command: LabCommand::Up { spec, .. }, .. } if spec.etcd_members == 3
        ));
        let Ok(Parsed::Run(invocation)) = up(&[]) else {
            panic!("lab up did not parse");
        };
        assert!(matches!(
            invocation.command,
            Command::Lab { command: LabCommand::Up { spec, .. }, .. } if spec.etcd_members == 1
        ));
    }

    #[test]
    fn a_standby_cluster_has_two_members_unless_told_and_only_when_asked_for() {
        let standby_members = |extra: &[&str]| {
            let mut args = vec!["pgha", "lab", "up"];
            args.extend_from_slice(extra);
            match parse(args) {
                Ok(Parsed::Run(invocation)) => match invocation.command {
                    Command::Lab {
                        command: LabCommand::Up { spec, .. },
                        ..
                    } => Ok(spec.standby_members),
                    _ => panic!("not lab up"),
                },
                Ok(_) => panic!("not a run"),
                Err(error) => Err(error.to_string()),
            }
        };
        assert_eq!(standby_members(&[]), Ok(0));
        assert_eq!(standby_members(&["--standby-cluster"]), Ok(2));
        assert_eq!(
            standby_members(&["--standby-cluster", "--standby-members", "3"]),
            Ok(3)
        );
        let refused = standby_members(&["--standby-members", "3"]).unwrap_err();
        assert!(refused.contains("--standby-cluster"), "{refused}");
        let refused = standby_members(&["--standby-cluster", "--scope", "geo"]).unwrap_err();
        assert!(refused.contains("standby cluster's scope"), "{refused}");
    }

    #[test]
    fn lab_dcs_takes_one_member_numbered_from_one() {
        let Ok(Parsed::Run(invocation)) = parse(["pgha", "lab", "dcs", "stop", "--member", "2"])
        else {
            panic!("lab dcs stop --member 2 did not parse");
        };
        assert!(matches!(
            invocation.command,
            Command::Lab {
                command: LabCommand::Dcs {
                    start: false,
                    member: Some(2)
                },
                ..
            }
        ));
        let Err(error) = parse(["pgha", "lab", "dcs", "start", "--member", "0"]) else {
            panic!("--member 0 was accepted");
        };
        assert_eq!(error.to_string().trim_end().lines().count(), 1, "{error}");
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
