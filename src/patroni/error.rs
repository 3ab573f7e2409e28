//! Errors of the Patroni client: each names the URL (so the host) and says what to check.

use std::path::PathBuf;
use std::time::Duration;

use crate::exit::Exit;

#[derive(Debug, Clone, thiserror::Error)]
pub enum PatroniError {
    #[error("cannot set up the HTTP client: {0}")]
    Setup(String),
    #[error("{path}: {reason}")]
    Certificate { path: PathBuf, reason: String },
    #[error("{url}: cannot connect: {reason}")]
    Connect { url: String, reason: String },
    #[error("{url}: no answer within {}", humantime::format_duration(*after))]
    Timeout { url: String, after: Duration },
    #[error("{url}: TLS handshake failed: {reason} (check tls.ca_file, cert_file and key_file)")]
    Tls { url: String, reason: String },
    #[error(
        "{url}: credentials rejected (HTTP 401 {reason:?}): check the REST username and password"
    )]
    Unauthorized { url: String, reason: String },
    #[error(
        "{url}: access denied (HTTP 403 {reason:?}): check restapi.allowlist and the client certificate"
    )]
    Forbidden { url: String, reason: String },
    #[error("{url}: unexpected HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url}: {reason}")]
    Decode { url: String, reason: String },
    #[error(
        "{url} answered HTTP {status} redirecting to {location}: pgha does not follow redirects; give it the member's own REST API address"
    )]
    Redirect {
        url: String,
        status: u16,
        location: String,
    },
    /// A write addressed to a REST API that is not one of the members pgha was given (an
    /// address only the DCS published): pgha's credentials do not go there.
    #[error(
        "{url} is not the REST API of a member pgha was given: pgha sends its credentials only there; plan the run again from the inventory"
    )]
    Unlisted { url: String },
}

impl PatroniError {
    /// Configuration mistakes are the user's to fix (bad input); the rest means the cluster
    /// could not be asked.
    pub fn exit(&self) -> Exit {
        match self {
            PatroniError::Certificate { .. }
            | PatroniError::Tls { .. }
            | PatroniError::Unauthorized { .. }
            | PatroniError::Forbidden { .. }
            // The URL pgha was given is not the API's own: a configuration mistake.
            | PatroniError::Redirect { .. }
            | PatroniError::Unlisted { .. } => Exit::BadInput,
            PatroniError::Setup(_) => Exit::Failed,
            PatroniError::Connect { .. }
            | PatroniError::Timeout { .. }
            | PatroniError::Status { .. }
            | PatroniError::Decode { .. } => Exit::Unreachable,
        }
    }

    /// True when the member simply did not answer (as opposed to answering wrongly).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            PatroniError::Connect { .. } | PatroniError::Timeout { .. }
        )
    }
}
