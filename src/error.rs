//! The top-level error: every module's error, each knowing its exit code. The binary prints it
//! as one line on stderr.

use crate::exit::Exit;
use crate::inventory::InventoryError;
use crate::lab::LabError;
use crate::observe::ObserveError;
use crate::patroni::PatroniError;

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
            Error::Output(_) => Exit::Failed,
        }
    }
}
