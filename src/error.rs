//! The top-level error: every module's error, each knowing its exit code. The binary prints it
//! as one line on stderr.

use crate::consul::ConsulError;
use crate::exit::Exit;
use crate::inventory::InventoryError;
use crate::journal::JournalError;
use crate::lab::LabError;
use crate::observe::ObserveError;
use crate::patroni::PatroniError;
use crate::postgres::SqlError;
use crate::runbooks::PlanError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error(transparent)]
    Patroni(#[from] PatroniError),
    #[error(transparent)]
    Observe(#[from] ObserveError),
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Consul(#[from] ConsulError),
    #[error(transparent)]
    Etcd(#[from] crate::etcd::EtcdError),
    #[error(transparent)]
    Sql(#[from] SqlError),
    /// The invocation cannot be carried out as given; nothing was done.
    #[error("{0}")]
    BadInput(String),
    /// A check refused; nothing was done.
    #[error("{0}")]
    Refused(String),
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

impl Error {
    pub fn exit(&self) -> Exit {
        match self {
            Error::Inventory(error) => error.exit(),
            Error::Patroni(error) => error.exit(),
            Error::Observe(error) => error.exit(),
            Error::Lab(error) => error.exit(),
            Error::Plan(error) => error.exit(),
            Error::Journal(error) => error.exit(),
            Error::Consul(error) => error.exit(),
            Error::Etcd(error) => error.exit(),
            Error::Sql(error) => error.exit(),
            Error::BadInput(_) => Exit::BadInput,
            Error::Refused(_) => Exit::PrecheckRefused,
            Error::Output(_) => Exit::Failed,
        }
    }
}
