//! The few things pgha asks PostgreSQL itself rather than Patroni: a CHECKPOINT on the leader
//! before a switchover, and the progress of a base backup (`pg_stat_progress_basebackup` on the
//! leader) while a replica is being rebuilt. Connections are short-lived, bounded by a timeout,
//! and verify the server's certificate unless the inventory says `sslmode: disable`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::secret::Secret;

/// How to reach PostgreSQL on the members (the `postgres:` section of an environment).
#[derive(Debug, Clone)]
pub struct PgSettings {
    pub user: String,
    pub password: Option<Secret>,
    pub port: u16,
    pub dbname: String,
    pub sslmode: SslMode,
    pub ca_file: Option<PathBuf>,
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// No TLS (a lab, or a network the operator trusts).
    Disable,
    /// TLS, with the server's certificate and host name verified.
    VerifyFull,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SqlError {
    #[error("PostgreSQL on {host}:{port}: cannot connect: {reason}")]
    Connect {
        host: String,
        port: u16,
        reason: String,
    },
    #[error("PostgreSQL on {host}: {statement} failed: {reason}")]
    Statement {
        host: String,
        statement: String,
        reason: String,
    },
    #[error("{}: {reason}", .path.display())]
    Certificate { path: PathBuf, reason: String },
}

impl SqlError {
    /// A server that cannot be reached is unreachable; a certificate is the user's to fix.
    pub fn exit(&self) -> crate::exit::Exit {
        match self {
            SqlError::Connect { .. } => crate::exit::Exit::Unreachable,
            SqlError::Statement { .. } => crate::exit::Exit::Failed,
            SqlError::Certificate { .. } => crate::exit::Exit::BadInput,
        }
    }
}

/// A base backup as the leader reports it while it streams one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BackupProgress {
    pub streamed: u64,
    /// Null while PostgreSQL estimates, or when the client asked for no estimate.
    pub total: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Sql {
    settings: PgSettings,
}

impl Sql {
    pub fn new(settings: PgSettings) -> Self {
        Sql { settings }
    }

    pub async fn checkpoint(&self, host: &str) -> Result<(), SqlError> {
        let client = self.connect(host).await?;
        client
            .batch_execute("CHECKPOINT")
            .await
            .map_err(|error| statement_error(host, "CHECKPOINT", &error))
    }

    /// The base backups the server at `host` is streaming now; `None` when there is none.
    pub async fn basebackup_progress(
        &self,
        host: &str,
    ) -> Result<Option<BackupProgress>, SqlError> {
        const QUERY: &str = "SELECT coalesce(sum(backup_streamed), 0)::int8, sum(backup_total)::int8, count(*)::int8 \
                             FROM pg_stat_progress_basebackup";
        let client = self.connect(host).await?;
        let row = client
            .query_one(QUERY, &[])
            .await
            .map_err(|error| statement_error(host, "pg_stat_progress_basebackup", &error))?;
        let streamed: i64 = row.get(0);
        let total: Option<i64> = row.get(1);
        let backups: i64 = row.get(2);
        Ok((backups > 0).then(|| BackupProgress {
            streamed: u64::try_from(streamed).unwrap_or(0),
            total: total.and_then(|total| u64::try_from(total).ok()),
        }))
    }

    /// The size of all databases at `host`: what a base backup will copy, roughly.
    pub async fn database_size(&self, host: &str) -> Result<u64, SqlError> {
        let client = self.connect(host).await?;
        let row = client
            .query_one(
                "SELECT sum(pg_database_size(oid))::int8 FROM pg_database",
                &[],
            )
            .await
            .map_err(|error| statement_error(host, "pg_database_size", &error))?;
        let size: i64 = row.get(0);
        Ok(u64::try_from(size).unwrap_or(0))
    }

    async fn connect(&self, host: &str) -> Result<tokio_postgres::Client, SqlError> {
        let settings = &self.settings;
        let mut config = tokio_postgres::Config::new();
        config
            .host(host)
            .port(settings.port)
            .user(&settings.user)
            .dbname(&settings.dbname)
            .application_name("pgha")
            .connect_timeout(settings.connect_timeout);
        if let Some(password) = &settings.password {
            config.password(password.expose());
        }
        let connect_error = |reason: String| SqlError::Connect {
            host: host.into(),
            port: settings.port,
            reason,
        };
        let client = match settings.sslmode {
            SslMode::Disable => {
                config.ssl_mode(tokio_postgres::config::SslMode::Disable);
                let (client, connection) = tokio::time::timeout(
                    settings.connect_timeout,
                    config.connect(tokio_postgres::NoTls),
                )
                .await
                .map_err(|_| connect_error("timed out".into()))?
                .map_err(|error| connect_error(cause(&error)))?;
                tokio::spawn(connection);
                client
            }
            SslMode::VerifyFull => {
                config.ssl_mode(tokio_postgres::config::SslMode::Require);
                let tls = tokio_postgres_rustls::MakeRustlsConnect::new(self.tls_config()?);
                let (client, connection) =
                    tokio::time::timeout(settings.connect_timeout, config.connect(tls))
                        .await
                        .map_err(|_| connect_error("timed out".into()))?
                        .map_err(|error| connect_error(cause(&error)))?;
                tokio::spawn(connection);
                client
            }
        };
        Ok(client)
    }

    fn tls_config(&self) -> Result<rustls::ClientConfig, SqlError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        let path = self
            .settings
            .ca_file
            .clone()
            .unwrap_or_else(|| PathBuf::from("/etc/ssl/certs/ca-certificates.crt"));
        let pem = std::fs::read(&path).map_err(|error| SqlError::Certificate {
            path: path.clone(),
            reason: error.to_string(),
        })?;
        for certificate in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
            let certificate: rustls::pki_types::CertificateDer<'static> =
                certificate.map_err(|error| SqlError::Certificate {
                    path: path.clone(),
                    reason: error.to_string(),
                })?;
            roots
                .add(certificate)
                .map_err(|error| SqlError::Certificate {
                    path: path.clone(),
                    reason: error.to_string(),
                })?;
        }
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| SqlError::Certificate {
                path,
                reason: error.to_string(),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth())
    }
}

fn statement_error(host: &str, statement: &str, error: &tokio_postgres::Error) -> SqlError {
    SqlError::Statement {
        host: host.into(),
        statement: statement.into(),
        reason: cause(error),
    }
}

/// PostgreSQL's own message where there is one ("password authentication failed for user …").
fn cause(error: &tokio_postgres::Error) -> String {
    error.as_db_error().map_or_else(
        || crate::patroni::root_cause(error),
        |db| db.message().to_string(),
    )
}
