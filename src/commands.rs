//! The commands: thin glue that resolves the cluster, asks it through `observe` or the client,
//! and hands the answer to a renderer. No business logic lives here.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::cluster::Connection;
use crate::error::Error;
use crate::exit::Exit;
use crate::inventory::{self, ClusterTarget, Selector};
use crate::lab::{self, LabCommand};
use crate::observe::{self, ClusterView, Severity};
use crate::patroni::{PatroniClient, PatroniError, TimelineSwitch};
use crate::runbooks::Params;
use crate::runner::{self, PlanFormat, RunOptions};
use crate::runs;
use crate::status::{StatusDocument, render_table_styled};
use crate::ui::{self, OutputFormat};

/// A validated command, ready to run.
#[derive(Debug)]
pub enum Command {
    Status {
        format: OutputFormat,
        watch: Option<Duration>,
        /// Exit `Unhealthy` when a warning at or above this severity is found.
        fail_on: Option<Severity>,
        style: crate::status::TableStyle,
        /// Every cluster of the environment.
        /// Several clusters at once (`--all`, or `--cluster` repeated).
        fleet: Option<crate::fleet::Fleet>,
    },
    History {
        format: OutputFormat,
    },
    Version {
        format: OutputFormat,
    },
    Dsn {
        target: crate::inspect::DsnTarget,
        format: OutputFormat,
    },
    ConfigShow {
        format: OutputFormat,
    },
    Doctor {
        format: DoctorFormat,
        min_free_disk: crate::doctor::Percent,
    },
    Inventory {
        format: OutputFormat,
    },
    Lab {
        dir: PathBuf,
        command: LabCommand,
    },
    /// `pgha rehearse`: the runbook on a lab shaped like the cluster named.
    Rehearse {
        environment: Option<String>,
        cluster: String,
        lab_dir: std::path::PathBuf,
        first_address: std::net::Ipv4Addr,
        report: crate::runbooks::PlanOutput,
        faults: Vec<crate::rehearse::Fault>,
        scale: Option<crate::rehearse::Scale>,
        params: crate::runbooks::Params,
        options: crate::runner::RunOptions,
    },
    Runbook {
        params: Params,
        options: RunOptions,
    },
    ResumeRun {
        run_id: String,
        replan: bool,
        options: RunOptions,
    },
    RunsList {
        format: OutputFormat,
    },
    RunsShow {
        run_id: String,
        format: PlanFormat,
    },
}

pub async fn execute(selector: &Selector, command: Command) -> Result<Exit, Error> {
    match command {
        Command::Status {
            format,
            fail_on,
            style,
            fleet: Some(fleet),
            ..
        } => crate::fleet::status_all(selector, &fleet, format, fail_on, style).await,
        Command::Status {
            format,
            watch,
            fail_on,
            style,
            fleet: None,
        } => status(selector, format, watch, fail_on, style).await,
        Command::History { format } => history(selector, format).await,
        Command::Version { format } => {
            let view = Connection::open(selector).await?.observe().await?;
            crate::inspect::print_versions(&view, format)?;
            Ok(Exit::Success)
        }
        Command::Dsn { target, format } => {
            let view = Connection::open(selector).await?.observe().await?;
            let dsn = crate::inspect::dsn(&view, &target)?;
            if format == OutputFormat::Table {
                ui::print_stdout(&format!("{}\n", dsn.dsn))?;
            } else {
                ui::write_document(format, &dsn)?;
            }
            Ok(Exit::Success)
        }
        Command::ConfigShow { format } => config_show(selector, format).await,
        Command::Doctor {
            format,
            min_free_disk,
        } => Box::pin(doctor(selector, format, min_free_disk)).await,
        Command::Inventory { format } => {
            let summary = inventory::summarize(selector)?;
            ui::write_document(
                if format == OutputFormat::Table {
                    OutputFormat::Yaml
                } else {
                    format
                },
                &summary,
            )?;
            Ok(Exit::Success)
        }
        Command::Lab { dir, command } => Ok(lab::execute(&dir, command).await?),
        Command::Runbook { params, options } => runner::run(selector, params, options).await,
        Command::Rehearse {
            environment,
            cluster,
            lab_dir,
            first_address,
            report,
            faults,
            scale,
            params,
            options,
        } => {
            let target = Selector {
                environment: environment.or_else(|| selector.environment.clone()),
                cluster: Some(cluster),
                ..selector.clone()
            };
            Box::pin(crate::rehearse::rehearse(crate::rehearse::Request {
                target,
                lab_dir,
                first_address,
                params,
                options,
                report,
                faults,
                scale,
            }))
            .await
        }
        Command::ResumeRun {
            run_id,
            replan,
            options,
        } => runs::resume(selector, &run_id, replan, options).await,
        Command::RunsList { format } => runs::list_runs(format),
        Command::RunsShow { run_id, format } => runs::show_run(&run_id, format),
    }
}

async fn status(
    selector: &Selector,
    format: OutputFormat,
    watch: Option<Duration>,
    fail_on: Option<Severity>,
    style: crate::status::TableStyle,
) -> Result<Exit, Error> {
    let connection = Connection::open(selector).await?;
    let (target, client) = (&connection.target, &connection.client);
    let Some(interval) = watch else {
        let (view, credentials) = tokio::join!(
            connection.observe(),
            verify_credentials(target, client, None)
        );
        let view = view?;
        match credentials {
            Ok(true) => {}
            // The member probed first did not answer: ask one that did.
            Ok(false) => {
                verify_credentials(target, client, Some(&view)).await?;
            }
            Err(error) => return Err(error),
        }
        let worst = print_status(&view, format, false, style)?;
        let unhealthy =
            fail_on.is_some_and(|threshold| worst.is_some_and(|worst| worst >= threshold));
        return Ok(if unhealthy {
            Exit::Unhealthy
        } else {
            Exit::Success
        });
    };
    let clear_screen = format == OutputFormat::Table && std::io::stdout().is_terminal();
    // One listener for the whole loop: a Ctrl-C that arrives mid-round is not lost.
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let round = async {
            // A failed round is shown and retried: `--watch` is for watching an incident.
            match connection.observe().await {
                Ok(view) => {
                    if clear_screen {
                        ui::print_stdout("\x1b[H\x1b[2J")?;
                    }
                    print_status(&view, format, true, style)?;
                }
                Err(error) => eprintln!("pgha: {}", ui::printable(&error.to_string())),
            }
            tokio::time::sleep(interval).await;
            Ok::<(), Error>(())
        };
        tokio::select! {
            result = round => result?,
            _ = &mut interrupted => return Ok(Exit::Success),
        }
    }
}

/// Credentials matter only for writes, which `status` never makes; but an operator about to
/// run a runbook wants to know now, not at the first gate. One harmless request to one member:
/// the first in the inventory (concurrently with the observation), or, given a view, one that
/// answered. `Ok(false)` means the member did not answer, so nothing was learnt.
async fn verify_credentials(
    target: &ClusterTarget,
    client: &PatroniClient,
    view: Option<&ClusterView>,
) -> Result<bool, Error> {
    if target.rest.auth.is_none() {
        return Ok(true);
    }
    let url = match view {
        None => target.members.first().map(|member| member.api_url.clone()),
        Some(view) => view
            .members
            .iter()
            .find(|member| member.is_reachable())
            .map(|member| member.api_url.clone()),
    };
    let Some(url) = url else { return Ok(true) };
    match client.verify_credentials(&url).await {
        Err(error @ (PatroniError::Unauthorized { .. } | PatroniError::Forbidden { .. })) => {
            Err(error.into())
        }
        Err(error) if error.is_unreachable() => Ok(false),
        // Accepted, or answered in a way (an old Patroni…) that says nothing about the
        // credentials; the status itself was read fine.
        Ok(()) | Err(_) => Ok(true),
    }
}

/// Prints the status; returns its most severe warning.
fn print_status(
    view: &ClusterView,
    format: OutputFormat,
    compact: bool,
    style: crate::status::TableStyle,
) -> Result<Option<Severity>, Error> {
    let observed_at = jiff::Timestamp::now()
        .round(jiff::Unit::Millisecond)
        .unwrap_or_else(|_| jiff::Timestamp::now());
    let document = StatusDocument::from_view(view, observed_at.to_string());
    match format {
        OutputFormat::Table => ui::print_stdout(&render_table_styled(&document, style))?,
        OutputFormat::Json if compact => {
            let mut line = ui::json::compact(&document)?;
            line.push('\n');
            ui::print_stdout(&line)?;
        }
        other => ui::print_stdout(&ui::render_document(other, &document)?)?,
    }
    Ok(document.worst())
}

/// The member to ask for cluster-wide facts: the leader if it answers, else anyone who does.
async fn cluster_wide_source(
    target: &ClusterTarget,
    client: &PatroniClient,
) -> Result<String, Error> {
    let view = observe::observe(target, client, observe::DcsClients::default()).await?;
    source_in(&view)
}

/// The member of `view` to ask for cluster-wide facts.
fn source_in(view: &ClusterView) -> Result<String, Error> {
    let member = view
        .members
        .iter()
        .filter(|member| member.is_reachable())
        .find(|member| member.is_leader())
        .or_else(|| view.members.iter().find(|member| member.is_reachable()));
    match member {
        Some(member) => Ok(member.api_url.clone()),
        // Some member answered /cluster, but none /patroni: nobody to ask with confidence.
        None => Err(observe::ObserveError::NoMemberAnswered {
            cluster: view.cluster.clone(),
            failures: view
                .members
                .iter()
                .filter_map(|member| {
                    member
                        .status
                        .as_ref()
                        .err()
                        .map(|failure| failure.message.clone())
                })
                .collect(),
        }
        .into()),
    }
}

#[derive(Serialize)]
struct HistoryDocument<'a> {
    schema_version: u32,
    cluster: &'a str,
    scope: &'a str,
    timelines: &'a [TimelineSwitch],
}

async fn history(selector: &Selector, format: OutputFormat) -> Result<Exit, Error> {
    let Connection { target, client, .. } = Connection::open(selector).await?;
    let source = cluster_wide_source(&target, &client).await?;
    let timelines = client.history(&source).await?;
    if format == OutputFormat::Table {
        let rows = timelines
            .iter()
            .map(|switch| {
                vec![
                    switch.timeline.to_string(),
                    switch.lsn.to_string(),
                    switch.reason.clone(),
                    switch.timestamp.clone().unwrap_or_default(),
                    switch.new_leader.clone().unwrap_or_default(),
                ]
            })
            .collect();
        let mut text = ui::table(
            None,
            &["TL", "LSN", "Reason", "Timestamp", "New Leader"],
            rows,
            &[0, 1],
        );
        text.push('\n');
        ui::print_stdout(&text)?;
    } else {
        ui::write_document(
            format,
            &HistoryDocument {
                schema_version: 1,
                cluster: &target.cluster,
                scope: &target.scope,
                timelines: &timelines,
            },
        )?;
    }
    Ok(Exit::Success)
}

/// How `pgha doctor` prints its findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoctorFormat {
    Text,
    Json,
    Markdown,
}

/// `pgha doctor`: one observation; then the dynamic configuration, the leader's slots and
/// `pg_hba.conf` rules (SQL) and its free disk (SSH), read at once; the findings printed; exit
/// `Unhealthy` when one is a warning or worse.
async fn doctor(
    selector: &Selector,
    format: DoctorFormat,
    min_free_disk: crate::doctor::Percent,
) -> Result<Exit, Error> {
    use crate::exec::{Actuator as _, Observer as _};
    let live = Connection::open(selector).await?.into_live()?;
    let view = live.observe().await?;
    let (target, client) = (&live.target, &live.client);
    let leader = view
        .leader
        .as_deref()
        .and_then(|leader| view.member(leader))
        .filter(|leader| leader.is_reachable());
    let config = async {
        match source_in(&view) {
            Ok(source) => client
                .config(&source)
                .await
                .map_err(|error| error.to_string()),
            Err(error) => Err(error.to_string()),
        }
    };
    let sql = live.sql.as_ref().zip(leader);
    let slots = async {
        let (sql, leader) = sql?;
        Some(
            sql.inactive_slots(&leader.host)
                .await
                .map_err(|error| error.to_string()),
        )
    };
    let hba = async {
        let (sql, leader) = sql?;
        let rules = sql
            .hba_rules(&leader.host)
            .await
            .map_err(|error| error.to_string());
        Some((rules, replica_addresses(&view).await))
    };
    let disk = async {
        let leader = leader?;
        target.ssh.as_ref()?;
        let read = crate::runbooks::Host::new(target, &view, &leader.name)
            .and_then(|host| host.disk_usage_read())
            .ok()?;
        Some(match live.remote(&read).await {
            Ok(output) if output.success() => crate::doctor::DiskUsage::parse(&output.stdout),
            Ok(output) => Err(output.stderr.trim().to_string()),
            Err(error) => Err(error.to_string()),
        })
    };
    let (config, slots, hba, disk) = tokio::join!(config, slots, hba, disk);
    let findings = crate::doctor::diagnose(&crate::doctor::Inputs {
        target,
        view: &view,
        config,
        slots,
        hba,
        disk,
        min_free_disk,
    });
    match format {
        DoctorFormat::Text => ui::print_stdout(&crate::doctor::render_text(&view, &findings))?,
        DoctorFormat::Markdown => {
            ui::print_stdout(&crate::doctor::render_markdown(&view, &findings))?;
        }
        DoctorFormat::Json => ui::write_document(
            OutputFormat::Json,
            &serde_json::json!({ "cluster": view.cluster, "findings": findings }),
        )?,
    }
    Ok(
        if crate::doctor::worst(&findings).is_some_and(|worst| worst >= Severity::Warning) {
            Exit::Unhealthy
        } else {
            Exit::Success
        },
    )
}

/// The addresses the replicas connect to the leader from: their hosts, resolved.
async fn replica_addresses(view: &ClusterView) -> Vec<crate::doctor::Replica> {
    let mut replicas = Vec::new();
    for member in &view.members {
        if Some(member.name.as_str()) == view.leader.as_deref() {
            continue;
        }
        let address = match member.host.parse() {
            Ok(address) => Some(address),
            Err(_) => tokio::net::lookup_host((member.host.as_str(), 0))
                .await
                .ok()
                .and_then(|mut found| found.next())
                .map(|socket| socket.ip()),
        };
        if let Some(address) = address {
            replicas.push(crate::doctor::Replica {
                name: member.name.clone(),
                address,
            });
        }
    }
    replicas
}

async fn config_show(selector: &Selector, format: OutputFormat) -> Result<Exit, Error> {
    let Connection { target, client, .. } = Connection::open(selector).await?;
    let source = cluster_wide_source(&target, &client).await?;
    let config = client.config(&source).await?;
    let format = if format == OutputFormat::Table {
        OutputFormat::Yaml
    } else {
        format
    };
    ui::write_document(format, &config)?;
    Ok(Exit::Success)
}
