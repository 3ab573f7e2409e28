//! The few things pgha asks PostgreSQL itself rather than Patroni: a CHECKPOINT on the leader
//! before a switchover, and the progress of a base backup (`pg_stat_progress_basebackup` on the
//! leader) while a replica is being rebuilt. Connections are short-lived and verify the server's
//! certificate unless the inventory says `sslmode: disable`. Every statement is bounded twice:
//! by the server (`statement_timeout`, sent with the connection) and by pgha's own clock, for a
//! server or a network that stops answering altogether.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::patroni::Lsn;
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
    /// For statements that read (`timeouts.statement`).
    pub statement_timeout: Duration,
}

/// Reads (sizes, progress) unless the inventory's `timeouts.statement` says otherwise.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A CHECKPOINT writes every dirty buffer: minutes on a large, busy server, never hours.
pub const CHECKPOINT_TIMEOUT: Duration = Duration::from_mins(10);

/// How long pgha waits past the server's own `statement_timeout` before giving up on it.
const CLIENT_GRACE: Duration = Duration::from_secs(2);

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
    #[error("PostgreSQL on {host}: {statement} got no answer within {}: its outcome is unknown", humantime::format_duration(*after))]
    NoAnswer {
        host: String,
        statement: String,
        after: Duration,
    },
    #[error("{}: {reason}", .path.display())]
    Certificate { path: PathBuf, reason: String },
    /// The host is not one of the members pgha was given: its password does not go there.
    #[error(
        "{host} is not the host of a member pgha was given: pgha sends its PostgreSQL password only there"
    )]
    Unlisted { host: String },
    /// A transaction open too long for what comes next (a switchover).
    #[error(
        "PostgreSQL on {host}: a transaction has been open {} (over {}): a switchover would wait for it or cut it off; end it, or wait",
        humantime::format_duration(*age),
        humantime::format_duration(*limit)
    )]
    LongTransaction {
        host: String,
        age: Duration,
        limit: Duration,
    },
    /// Replication slots nothing consumes, holding WAL back on the server's disk.
    #[error(
        "PostgreSQL on {host}: inactive replication slots hold back WAL ({slots}; over {} allowed): nothing consumes them and the disk fills; drop the slots of members that are gone (`SELECT pg_drop_replication_slot(name)`)",
        crate::ui::human_bytes(*limit)
    )]
    InactiveSlots {
        host: String,
        slots: String,
        limit: u64,
    },
}

impl SqlError {
    /// A server that cannot be reached is unreachable; a certificate is the user's to fix.
    pub fn exit(&self) -> crate::exit::Exit {
        match self {
            SqlError::Connect { .. } => crate::exit::Exit::Unreachable,
            SqlError::Statement { .. }
            | SqlError::NoAnswer { .. }
            | SqlError::InactiveSlots { .. } => crate::exit::Exit::Failed,
            SqlError::Certificate { .. } | SqlError::Unlisted { .. } => crate::exit::Exit::BadInput,
            SqlError::LongTransaction { .. } => crate::exit::Exit::PrecheckRefused,
        }
    }
}

/// A replication slot nothing consumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InactiveSlot {
    pub name: String,
    /// Bytes of WAL it holds back.
    pub holds: u64,
}

/// One line of `pg_hba.conf` as PostgreSQL parses it (`pg_hba_file_rules`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HbaRule {
    pub line: i32,
    /// `local`, `host`, `hostssl`, `hostnossl`, …
    pub kind: String,
    pub databases: Vec<String>,
    pub users: Vec<String>,
    /// An address, `all`, `samehost`, `samenet` or a host name; `None` for `local`.
    pub address: Option<String>,
    pub netmask: Option<String>,
    pub method: Option<String>,
    /// Why PostgreSQL cannot use the line.
    pub error: Option<String>,
}

/// What decides whether replicas may connect: the rules, in order, and the roles that may
/// replicate (login, `REPLICATION`, not superuser: the ones Patroni's replicas use).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HbaRules {
    pub rules: Vec<HbaRule>,
    pub replication_roles: Vec<String>,
}

/// The start of the WAL segment holding the byte before `position`.
fn segment_start_of_last_byte(position: Lsn, segment: u64) -> Lsn {
    let last = position.0.saturating_sub(1);
    Lsn(last - last % segment.max(1))
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
        let client = self.connect(host, CHECKPOINT_TIMEOUT).await?;
        bounded(
            host,
            "CHECKPOINT",
            CHECKPOINT_TIMEOUT,
            client.batch_execute("CHECKPOINT"),
        )
        .await
    }

    /// The base backups the server at `host` is streaming now; `None` when there is none.
    pub async fn basebackup_progress(
        &self,
        host: &str,
    ) -> Result<Option<BackupProgress>, SqlError> {
        const QUERY: &str = "SELECT coalesce(sum(backup_streamed), 0)::int8, sum(backup_total)::int8, count(*)::int8 \
                             FROM pg_stat_progress_basebackup";
        let client = self.connect(host, self.settings.statement_timeout).await?;
        let row = bounded(
            host,
            "pg_stat_progress_basebackup",
            self.settings.statement_timeout,
            client.query_one(QUERY, &[]),
        )
        .await?;
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
        let client = self.connect(host, self.settings.statement_timeout).await?;
        let row = bounded(
            host,
            "pg_database_size",
            self.settings.statement_timeout,
            client.query_one(
                "SELECT sum(pg_database_size(oid))::int8 FROM pg_database",
                &[],
            ),
        )
        .await?;
        let size: i64 = row.get(0);
        Ok(u64::try_from(size).unwrap_or(0))
    }

    /// How long the oldest open transaction of a client on `host` has been open; `None` when
    /// none is.
    pub async fn oldest_transaction(&self, host: &str) -> Result<Option<Duration>, SqlError> {
        let client = self.connect(host, self.settings.statement_timeout).await?;
        let row = bounded(
            host,
            "pg_stat_activity",
            self.settings.statement_timeout,
            client.query_one(
                "SELECT extract(epoch FROM max(now() - xact_start))::float8 FROM pg_stat_activity \
                 WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
                &[],
            ),
        )
        .await?;
        let seconds: Option<f64> = row.get(0);
        Ok(seconds.map(|seconds| Duration::from_secs_f64(seconds.max(0.0))))
    }

    /// Where the server at `host` last wrote WAL, when it is a primary, as the start of the
    /// WAL segment holding its last byte; `None` when it is in recovery (a replica, a standby
    /// leader). A standby following its archive has replayed into that segment once it is
    /// archived: on an idle primary it is already (after a segment switch the position sits
    /// on the next segment's first byte, which no archive holds until more is written).
    pub async fn primary_position(&self, host: &str) -> Result<Option<Lsn>, SqlError> {
        let client = self.connect(host, self.settings.statement_timeout).await?;
        let row = bounded(
            host,
            "pg_current_wal_lsn",
            self.settings.statement_timeout,
            client.query_one(
                "SELECT CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END, \
                 (SELECT setting::int8 FROM pg_settings WHERE name = 'wal_segment_size')",
                &[],
            ),
        )
        .await?;
        let position: Option<String> = row.get(0);
        let segment: Option<i64> = row.get(1);
        let segment = segment
            .and_then(|size| u64::try_from(size).ok())
            .unwrap_or(16 << 20);
        Ok(position
            .and_then(|text| text.parse::<Lsn>().ok())
            .map(|position| segment_start_of_last_byte(position, segment)))
    }

    /// Fails while an inactive replication slot on `host` holds back more than `limit` bytes
    /// of WAL (from where the server is: its replay position in recovery).
    pub async fn inactive_slots_retain_at_most(
        &self,
        host: &str,
        limit: u64,
    ) -> Result<(), SqlError> {
        let over: Vec<String> = self
            .inactive_slots(host)
            .await?
            .into_iter()
            .filter(|slot| slot.holds > limit)
            .map(|slot| format!("{} holds {}", slot.name, crate::ui::human_bytes(slot.holds)))
            .collect();
        if over.is_empty() {
            return Ok(());
        }
        Err(SqlError::InactiveSlots {
            host: host.into(),
            slots: over.join(", "),
            limit,
        })
    }

    /// The replication slots on `host` nothing consumes, with the WAL each holds back (from
    /// where the server is: its replay position in recovery), the largest first.
    pub async fn inactive_slots(&self, host: &str) -> Result<Vec<InactiveSlot>, SqlError> {
        let client = self.connect(host, self.settings.statement_timeout).await?;
        let rows = bounded(
            host,
            "pg_replication_slots",
            self.settings.statement_timeout,
            client.query(
                "SELECT slot_name::text, coalesce(pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() \
                 THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, restart_lsn), 0)::int8 \
                 FROM pg_replication_slots WHERE NOT active ORDER BY 2 DESC",
                &[],
            ),
        )
        .await?;
        Ok(rows
            .iter()
            .map(|row| InactiveSlot {
                name: row.get(0),
                holds: u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
            })
            .collect())
    }

    /// `pg_hba.conf` on `host` as the server would read it now, and its replication roles.
    pub async fn hba_rules(&self, host: &str) -> Result<HbaRules, SqlError> {
        let client = self.connect(host, self.settings.statement_timeout).await?;
        let timeout = self.settings.statement_timeout;
        let rules = bounded(
            host,
            "pg_hba_file_rules",
            timeout,
            client.query(
                "SELECT line_number, type, coalesce(database, '{}'), coalesce(user_name, '{}'), \
                 address, netmask, auth_method, error FROM pg_hba_file_rules ORDER BY line_number",
                &[],
            ),
        )
        .await?;
        let replication_roles = bounded(
            host,
            "pg_roles",
            timeout,
            client.query(
                "SELECT rolname::text FROM pg_roles \
                 WHERE rolreplication AND rolcanlogin AND NOT rolsuper ORDER BY 1",
                &[],
            ),
        )
        .await?;
        Ok(HbaRules {
            rules: rules
                .iter()
                .map(|row| HbaRule {
                    line: row.get(0),
                    kind: row.get::<_, Option<String>>(1).unwrap_or_default(),
                    databases: row.get(2),
                    users: row.get(3),
                    address: row.get(4),
                    netmask: row.get(5),
                    method: row.get(6),
                    error: row.get(7),
                })
                .collect(),
            replication_roles: replication_roles.iter().map(|row| row.get(0)).collect(),
        })
    }

    /// Refuses while a transaction on `host` has been open longer than `limit`.
    pub async fn no_transaction_older_than(
        &self,
        host: &str,
        limit: Duration,
    ) -> Result<(), SqlError> {
        match self.oldest_transaction(host).await? {
            Some(age) if age > limit => Err(SqlError::LongTransaction {
                host: host.into(),
                age: Duration::from_secs(age.as_secs()),
                limit,
            }),
            _ => Ok(()),
        }
    }

    /// A connection whose statements the server cancels after `statement_timeout`.
    async fn connect(
        &self,
        host: &str,
        statement_timeout: Duration,
    ) -> Result<tokio_postgres::Client, SqlError> {
        let settings = &self.settings;
        let mut config = tokio_postgres::Config::new();
        config
            .host(host)
            .port(settings.port)
            .user(&settings.user)
            .dbname(&settings.dbname)
            .application_name("pgha")
            .options(format!(
                "-c statement_timeout={}",
                statement_timeout.as_millis().max(1)
            ))
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

/// `query`, given up `CLIENT_GRACE` after the server should have cancelled it itself.
async fn bounded<T>(
    host: &str,
    statement: &str,
    timeout: Duration,
    query: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, SqlError> {
    let after = timeout.saturating_add(CLIENT_GRACE);
    match tokio::time::timeout(after, query).await {
        Ok(result) => result.map_err(|error| statement_error(host, statement, &error)),
        Err(_) => Err(SqlError::NoAnswer {
            host: host.into(),
            statement: statement.into(),
            after,
        }),
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
        || crate::ui::root_cause(error),
        |db| db.message().to_string(),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// After a switch, an idle primary stands on the next segment's first byte, which no
    /// archive holds yet: the segment before it is what a standby can have.
    #[test]
    fn the_segment_to_reach_is_the_one_holding_the_last_byte_written() {
        let segment = 16 << 20;
        let at = |text: &str| {
            super::segment_start_of_last_byte(text.parse().unwrap(), segment).to_string()
        };
        assert_eq!(at("0/9000000"), "0/8000000", "idle, just after a switch");
        assert_eq!(at("0/9000028"), "0/9000000", "written into 0/9…");
        assert_eq!(at("1/0"), "0/FF000000", "across the 4 GiB boundary");
    }

    /// A server that lets a client in, then never answers a statement: what a hung server or
    /// a dead network looks like from pgha. Returns its port and what the client asked for.
    async fn silent_server() -> (u16, tokio::sync::oneshot::Receiver<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (startup_sender, startup) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let length = socket.read_u32().await.unwrap() as usize;
            let mut packet = vec![0; length - 4];
            socket.read_exact(&mut packet).await.unwrap();
            let _ = startup_sender.send(String::from_utf8_lossy(&packet).replace('\0', " "));
            // AuthenticationOk, then ReadyForQuery (idle).
            socket
                .write_all(b"R\0\0\0\x08\0\0\0\0Z\0\0\0\x05I")
                .await
                .unwrap();
            let mut ignored = [0; 1024];
            while socket.read(&mut ignored).await.is_ok_and(|read| read > 0) {}
        });
        (port, startup)
    }

    #[tokio::test]
    async fn a_statement_nobody_answers_ends_at_its_bound() {
        let (port, startup) = silent_server().await;
        let sql = Sql::new(PgSettings {
            user: "pgha".into(),
            password: None,
            port,
            dbname: "postgres".into(),
            sslmode: SslMode::Disable,
            ca_file: None,
            connect_timeout: Duration::from_secs(2),
            statement_timeout: Duration::from_millis(200),
        });
        let started = Instant::now();
        let error = sql.database_size("127.0.0.1").await.unwrap_err();
        assert!(
            matches!(&error, SqlError::NoAnswer { statement, .. } if statement == "pg_database_size"),
            "{error}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(error.exit(), crate::exit::Exit::Failed);
        let startup = startup.await.unwrap();
        assert!(
            startup.contains("-c statement_timeout=200"),
            "the server is told to cancel it itself: {startup}"
        );
    }
}
