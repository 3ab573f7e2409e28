//! Inventory errors: one line each, naming the file, the field or the name that is wrong and,
//! where there is a choice, the names that would have been right.

use std::path::PathBuf;

use crate::exit::Exit;
use crate::patroni::PatroniError;

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("no inventory found (looked for {}); pass --config FILE, --patroni-config FILE or --api URL, or start a lab with `pgha lab up`", list_paths(.searched))]
    NotFound { searched: Vec<PathBuf> },
    #[error("{}: cannot read: {reason}", .path.display())]
    Read { path: PathBuf, reason: String },
    #[error("{}:{line}:{column}: {message}", .path.display())]
    Parse {
        path: PathBuf,
        line: u64,
        column: u64,
        message: String,
    },
    #[error("{}: {field}: {reason}", .path.display())]
    Invalid {
        path: PathBuf,
        field: String,
        reason: String,
    },
    #[error("{}: no environment {name:?} (known: {})", .path.display(), .known.join(", "))]
    UnknownEnvironment {
        path: PathBuf,
        name: String,
        known: Vec<String>,
    },
    #[error("{}: several environments ({}): choose one with --env or PGHA_ENV", .path.display(), .known.join(", "))]
    EnvironmentRequired { path: PathBuf, known: Vec<String> },
    #[error("{}: environment {environment:?} has no cluster {name:?} (known: {})", .path.display(), .known.join(", "))]
    UnknownCluster {
        path: PathBuf,
        environment: String,
        name: String,
        known: Vec<String>,
    },
    #[error("{}: environment {environment:?} has several clusters ({}): choose one with --cluster (or name the environment's default_cluster)", .path.display(), .known.join(", "))]
    ClusterRequired {
        path: PathBuf,
        environment: String,
        known: Vec<String>,
    },
    #[error("{}: {field}: environment variable {variable} is not set", .path.display())]
    SecretVariableMissing {
        path: PathBuf,
        field: String,
        variable: String,
    },
    #[error("{}: {field}: cannot read {}: {reason}", .path.display(), .secret_path.display())]
    SecretFile {
        path: PathBuf,
        field: String,
        secret_path: PathBuf,
        reason: String,
    },
    #[error("{variable}: {reason}")]
    Variable {
        variable: &'static str,
        reason: String,
    },
    #[error("--{flag} conflicts with --{other}: use one way to name the cluster")]
    ConflictingModes {
        flag: &'static str,
        other: &'static str,
    },
    #[error("cannot discover the cluster's members: {0}")]
    Discovery(#[source] PatroniError),
    #[error("{url}: /cluster lists no members with a REST API URL")]
    NothingDiscovered { url: String },
}

impl InventoryError {
    pub fn exit(&self) -> Exit {
        match self {
            InventoryError::Discovery(error) => error.exit(),
            _ => Exit::BadInput,
        }
    }
}

fn list_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|path| path.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
