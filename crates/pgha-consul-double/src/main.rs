//! `pgha-consul-double`: the Consul HTTP API surface that Patroni's Consul DCS uses and an
//! operator reads — KV, blocking queries, sessions, agent services with real HTTP checks,
//! catalog, health, status — in memory, on one node. The lab and the tests run real Patroni on
//! it, which is what proves it faithful. Not a Consul: no Raft, no DNS, no persistence.

mod checks;
mod duration;
mod http;
mod json;
mod store;

use std::ffi::OsStr;
use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(version, about = "A Consul HTTP API double for Patroni labs and tests")]
struct Args {
    /// Address to serve Consul's HTTP API on
    #[arg(long, default_value = "127.0.0.1:8500")]
    listen: SocketAddr,
    /// The agent's node name
    #[arg(long, default_value = "pgha-consul-double")]
    node: String,
    #[arg(long, default_value = "dc1")]
    datacenter: String,
    /// Require this ACL token (X-Consul-Token or ?token=) on every request
    #[arg(long, value_name = "FILE")]
    acl_token_file: Option<PathBuf>,
    /// How often services critical past DeregisterCriticalServiceAfter are removed
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    reap_interval: Duration,
    /// Run each check at once instead of at a random moment within its first interval
    #[arg(long)]
    no_check_stagger: bool,
    /// Write the process id here once listening
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // The lab sends this to a log file: colour codes only on a terminal.
        .with_ansi(colour_stderr())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    // reqwest is built without a default TLS provider; checks are plain HTTP, but the client
    // still wants one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match serve(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("pgha-consul-double: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Colour on stderr as pgha decides it (a test double does not depend on the product, so these
/// lines are copied): a terminal, `NO_COLOR` absent or empty (<https://no-color.org>), and not a
/// `dumb` terminal.
fn colour_stderr() -> bool {
    let no_color = std::env::var_os("NO_COLOR");
    let term = std::env::var_os("TERM");
    no_color.as_deref().is_none_or(OsStr::is_empty)
        && term.as_deref().is_none_or(|term| term != "dumb")
        && std::io::stderr().is_terminal()
}

async fn serve(args: Args) -> Result<(), String> {
    let token = match &args.acl_token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|error| format!("{}: {error}", path.display()))?
                .trim()
                .to_string(),
        ),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", args.listen))?;
    if let Some(path) = &args.pid_file {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .map_err(|error| format!("{}: {error}", path.display()))?;
    }
    let store = store::Store::new(&args.node, &args.datacenter, &args.listen.ip().to_string());
    let (changes, _) = tokio::sync::watch::channel(1);
    let app = Arc::new(http::App {
        store: Mutex::new(store),
        changes,
        token,
        stagger: !args.no_check_stagger,
    });
    tokio::spawn(checks::run(Arc::clone(&app), args.reap_interval));
    let router = axum::Router::new().fallback(http::handle).with_state(app);
    tracing::info!("serving the Consul API on {}", args.listen);
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown())
        .await
        .map_err(|error| error.to_string())
}

async fn shutdown() {
    let Ok(mut terminate) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("stopping");
}
