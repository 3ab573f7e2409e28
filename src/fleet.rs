//! `pgha status --all`: every cluster of an environment at once. Each cluster is resolved and
//! observed concurrently (every member of every cluster asked at the same time), then printed
//! one table per cluster in the inventory's order, and a one-line summary per cluster at the
//! end: its leader, how many replicas stream, its worst warning. A cluster that cannot be
//! observed is said in its summary line and sets the exit code; the others are still shown.

use futures::future::join_all;
use serde::Serialize;

use crate::cluster::Connection;
use crate::error::Error;
use crate::exit::Exit;
use crate::inventory::Selector;
use crate::observe::Severity;
use crate::status::{StatusDocument, TableStyle, render_table_styled};
use crate::ui::{self, OutputFormat};

/// One cluster's outcome.
struct Observed {
    cluster: String,
    result: Result<StatusDocument, Error>,
}

/// `status --all` as JSON or YAML: every document, and the clusters that could not be read.
#[derive(Serialize)]
struct FleetDocument<'a> {
    environment: &'a str,
    clusters: Vec<&'a StatusDocument>,
    errors: Vec<FleetError>,
}

#[derive(Serialize)]
struct FleetError {
    cluster: String,
    error: String,
}

/// Which clusters `pgha status` shows at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fleet {
    /// `--all`: every cluster of the environment.
    All,
    /// `--cluster A --cluster B`: these, in this order.
    Named(Vec<String>),
}

pub async fn status_all(
    selector: &Selector,
    fleet: &Fleet,
    format: OutputFormat,
    fail_on: Option<Severity>,
    style: TableStyle,
) -> Result<Exit, Error> {
    let asked_for_one = matches!(fleet, Fleet::All) && selector.cluster.is_some();
    if asked_for_one || selector.api.is_some() || selector.patroni_config.is_some() {
        return Err(Error::BadInput(
            "--all shows every cluster of an inventory's environment: it does not go with --cluster, --api or --patroni-config".into(),
        ));
    }
    let (environment, known) = crate::inventory::clusters_of_environment(selector)?;
    let clusters = match fleet {
        Fleet::All => known,
        Fleet::Named(named) => {
            if let Some(unknown) = named.iter().find(|name| !known.contains(name)) {
                return Err(Error::BadInput(format!(
                    "environment {environment} has no cluster {unknown:?} (clusters: {})",
                    known.join(", ")
                )));
            }
            named.clone()
        }
    };
    let observed_at = jiff::Timestamp::now()
        .round(jiff::Unit::Millisecond)
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .to_string();
    // Resolved one by one (files and environment variables), then every member of every
    // cluster asked at once, over one HTTP client where the TLS settings allow.
    let mut targets = Vec::new();
    let mut failed = Vec::new();
    for cluster in &clusters {
        let selector = Selector {
            environment: Some(environment.clone()),
            cluster: Some(cluster.clone()),
            ..selector.clone()
        };
        match crate::inventory::resolve(&selector).await {
            Ok(target) => targets.push(target),
            Err(error) => failed.push(Observed {
                cluster: cluster.clone(),
                result: Err(error.into()),
            }),
        }
    }
    let names: Vec<String> = targets
        .iter()
        .map(|target| target.cluster.clone())
        .collect();
    let connections = Connection::open_many(targets);
    let mut observed: Vec<Observed> = join_all(connections.into_iter().zip(names).map(
        |(connection, cluster)| {
            let observed_at = observed_at.clone();
            async move {
                let result = match connection {
                    Ok(connection) => connection
                        .observe()
                        .await
                        .map(|view| StatusDocument::from_view(&view, observed_at))
                        .map_err(Error::from),
                    Err(error) => Err(error),
                };
                Observed { cluster, result }
            }
        },
    ))
    .await;
    observed.extend(failed);
    // The inventory's order, whatever failed first.
    observed.sort_by_key(|one| clusters.iter().position(|name| *name == one.cluster));
    match format {
        OutputFormat::Table => ui::print_stdout(&render(&observed, style))?,
        other => ui::write_document(
            other,
            &FleetDocument {
                environment: &environment,
                clusters: observed
                    .iter()
                    .filter_map(|one| one.result.as_ref().ok())
                    .collect(),
                errors: observed
                    .iter()
                    .filter_map(|one| {
                        Some(FleetError {
                            cluster: one.cluster.clone(),
                            error: ui::printable(&one.result.as_ref().err()?.to_string())
                                .into_owned(),
                        })
                    })
                    .collect(),
            },
        )?,
    }
    Ok(exit_for(&observed, fail_on))
}

/// The tables, then one summary line per cluster.
fn render(observed: &[Observed], style: TableStyle) -> String {
    let mut text = String::new();
    for one in observed {
        if let Ok(document) = &one.result {
            text.push_str(&render_table_styled(document, style));
            text.push('\n');
        }
    }
    for one in observed {
        let line = match &one.result {
            Ok(document) => document.summary_line(),
            Err(error) => {
                ui::printable(&format!("{}: cannot be read: {error}", one.cluster)).into_owned()
            }
        };
        text.push_str(&line);
        text.push('\n');
    }
    text
}

/// A cluster that could not be read decides (its own exit code, the first such); else
/// `--fail-on` against the worst warning of any cluster.
fn exit_for(observed: &[Observed], fail_on: Option<Severity>) -> Exit {
    if let Some(error) = observed.iter().find_map(|one| one.result.as_ref().err()) {
        return error.exit();
    }
    let worst = observed
        .iter()
        .filter_map(|one| one.result.as_ref().ok()?.worst())
        .max();
    if fail_on.is_some_and(|threshold| worst.is_some_and(|worst| worst >= threshold)) {
        Exit::Unhealthy
    } else {
        Exit::Success
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::merge;
    use crate::observe::testing::healthy;

    fn document(cluster: &str) -> StatusDocument {
        let (mut target, observations) = healthy("4.1.5");
        target.cluster = cluster.into();
        let view = merge(&target, observations).unwrap();
        StatusDocument::from_view(&view, "2026-12-03T16:00:00.000Z".into())
    }

    #[test]
    fn every_table_then_a_line_per_cluster_and_the_unreadable_one_decides_the_exit() {
        let observed = vec![
            Observed {
                cluster: "main".into(),
                result: Ok(document("main")),
            },
            Observed {
                cluster: "gone".into(),
                result: Err(Error::Refused("no member of cluster gone answered".into())),
            },
        ];
        let text = render(&observed, TableStyle::default());
        let lines: Vec<&str> = text.lines().collect();
        assert!(text.starts_with("+ Cluster: main, scope demo ("), "{text}");
        assert!(
            lines[lines.len() - 2].starts_with("main: leader node"),
            "{text}"
        );
        assert!(
            lines[lines.len() - 2].ends_with("2/2 replicas streaming, no warning"),
            "{text}"
        );
        assert_eq!(
            lines[lines.len() - 1],
            "gone: cannot be read: no member of cluster gone answered"
        );
        assert_eq!(exit_for(&observed, None), Exit::PrecheckRefused);
        assert_eq!(
            exit_for(&observed[..1], Some(Severity::Info)),
            Exit::Success
        );
    }
}
