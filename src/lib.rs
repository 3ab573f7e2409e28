//! pgha: typed, rehearsable runbooks for PostgreSQL high-availability clusters run by Patroni.
//!
//! The binary is a thin shell over [`run`]. Modules, from the leaves up (no module imports one
//! above it):
//! - leaves: `names` (safe alphabets), `duration`, `secret`, `web` (the rules of every HTTP
//!   client: no proxies, no redirects), `ui` (tables, printable text, JSON), `exit`;
//! - the systems pgha talks to: `patroni` (REST client and the version-normalised model),
//!   `consul`, `postgres`, `alerts` (Alertmanager), `remote` (SSH, local commands, service
//!   control);
//! - `inventory` (which clusters exist and how to reach them), `observe` (all members at once →
//!   one `ClusterView`), `status` (the status document and table);
//! - `plan` (steps, checks, renderers), `runbooks` (pure planners), `exec` (the executor,
//!   gates, waits, events), `journal` (runs, locks, resume's record), `report` (events as text:
//!   the terminal and `runs show`);
//! - `cluster` (a selection → the clients and the live world), `runner` (a runbook end to end),
//!   `runs` (list, show, resume), `lab` (a real local cluster), `commands` and `cli` (glue),
//!   `error`.

pub mod alerts;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod consul;
pub mod dcs;
pub mod doctor;
pub mod duration;
pub mod error;
pub mod etcd;
pub mod exec;
pub mod exit;
pub mod flags;
pub mod fleet;
#[cfg(test)]
mod fuzzing;
pub mod inspect;
pub mod inventory;
pub mod journal;
pub mod lab;
pub mod names;
pub mod observe;
pub mod patroni;
pub(crate) mod pid;
pub mod plan;
pub mod postgres;
pub mod rehearse;
pub mod remote;
pub mod report;
pub mod runbooks;
pub mod runner;
pub mod runs;
pub mod secret;
pub mod status;
pub mod ui;
pub mod web;

use std::ffi::OsString;

use cli::Parsed;
use exit::Exit;

/// Runs pgha with these arguments (the first is the program name) and says how it ended.
pub fn run<I, T>(args: I) -> Exit
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let invocation = match cli::parse(args) {
        Ok(Parsed::Run(invocation)) => invocation,
        Ok(Parsed::Completions(shell)) => {
            cli::write_completions(shell, &mut std::io::stdout());
            return Exit::Success;
        }
        Ok(Parsed::Manual) => {
            return match cli::write_manual(&mut std::io::stdout()) {
                Ok(()) => Exit::Success,
                Err(_) => Exit::Failed,
            };
        }
        Err(error) => {
            // clap prints help and version to stdout (success) and usage errors to stderr.
            let _ = error.print();
            return if error.use_stderr() {
                Exit::BadInput
            } else {
                Exit::Success
            };
        }
    };
    ui::init_colour();
    init_logging(invocation.verbosity);
    // One thread: pgha's work is waiting on sockets, and a single-threaded runtime starts fast.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return Exit::Failed;
        }
    };
    let Invocation {
        selector, command, ..
    } = *invocation;
    let exit = match runtime.block_on(commands::execute(&selector, command)) {
        Ok(exit) => exit,
        Err(error) => {
            // Errors quote servers and hosts (an HTTP body, a command's last line).
            eprintln!("error: {}", ui::printable_lines(&error.to_string()));
            error.exit()
        }
    };
    // A prompt abandoned by Ctrl-C still blocks a thread on the terminal: do not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    exit
}

use cli::Invocation;

fn init_logging(verbosity: u8) {
    // Only pgha's own events by default: dependencies (rustls's verifier, hyper) log errors
    // that pgha already reports, once and better, as its own error line.
    let default = match verbosity {
        0 => "off,pgha=warn",
        1 => "off,pgha=info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("PGHA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes in a log file or a CI log are noise; tracing's own default only asks
        // for `NO_COLOR`, not whether stderr is a terminal.
        .with_ansi(ui::colour_stderr())
        .with_target(false)
        .try_init();
}
