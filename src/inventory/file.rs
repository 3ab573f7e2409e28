//! The inventory file's schema: what a team commits. Unknown and duplicate keys are errors with
//! file, line and column; secrets are never inline, only named (an environment variable or a
//! file), so the file can be reviewed and committed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InventoryFile {
    pub environments: BTreeMap<String, EnvironmentFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnvironmentFile {
    #[serde(default)]
    pub rest: RestFile,
    #[serde(default)]
    pub timeouts: TimeoutsFile,
    pub dcs: Option<DcsFile>,
    pub ssh: Option<SshFile>,
    pub postgres: Option<PostgresFile>,
    pub service: Option<ServiceFile>,
    pub alertmanager: Option<AlertmanagerFile>,
    pub backup: Option<BackupFile>,
    /// The cluster commands act on when `--cluster` is not given and there are several.
    pub default_cluster: Option<String>,
    pub clusters: BTreeMap<String, ClusterFile>,
}

/// What the cluster's backups must be before risky work: the tool that lists them, and the
/// newest one's greatest age (`26h`). Older: refuse (default) or warn.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BackupFile {
    pub tool: BackupToolName,
    /// pgBackRest's stanza.
    pub stanza: Option<String>,
    /// The tool's configuration file, when not its default (for wal-e: its envdir directory).
    pub config: Option<String>,
    #[serde(deserialize_with = "required_duration")]
    pub max_age: Duration,
    #[serde(default)]
    pub when_older: WhenOlder,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum BackupToolName {
    Pgbackrest,
    WalG,
    WalE,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WhenOlder {
    #[default]
    Refuse,
    Warn,
}

/// Where to silence alerts while a runbook works, which alerts, and how to prove who we are:
/// basic auth (`username` with `password_env` or `password_file`) or a bearer token
/// (`token_env` or `token_file`), for an Alertmanager behind `--web.config.file` or a proxy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlertmanagerFile {
    pub url: String,
    /// Label matchers of the alerts to silence for a member; `{member}`, `{host}` and
    /// `{cluster}` in a value are replaced by the member's name and host and the cluster's name.
    pub matchers: BTreeMap<String, String>,
    pub username: Option<String>,
    /// Name of an environment variable holding the basic-auth password.
    pub password_env: Option<String>,
    /// Path of a file holding the basic-auth password (relative: to the inventory's directory).
    pub password_file: Option<PathBuf>,
    /// Name of an environment variable holding the bearer token.
    pub token_env: Option<String>,
    /// Path of a file holding the bearer token (relative: to the inventory's directory).
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClusterFile {
    /// Patroni's `scope`; defaults to the cluster's name.
    pub scope: Option<String>,
    /// A standby cluster (a Geo secondary: Patroni's `standby_cluster`, following another
    /// cluster from its archive or by streaming): runbooks that would make it writable refuse.
    #[serde(default)]
    pub standby: bool,
    /// The cluster of the same environment a standby cluster follows (its primary site):
    /// where geo-resetup reads the WAL position the rebuilt standby must replay past.
    pub follows: Option<String>,
    pub members: Vec<MemberFile>,
    #[serde(default)]
    pub rest: RestFile,
    pub dcs: Option<DcsFile>,
    pub ssh: Option<SshFile>,
    pub postgres: Option<PostgresFile>,
    pub service: Option<ServiceFile>,
    pub backup: Option<BackupFile>,
    /// The members' PostgreSQL data directory, unless a member names its own.
    pub data_dir: Option<String>,
    /// The members' Patroni configuration file, unless a member names its own: where pgha sets
    /// a tag (the drain of a scale-down).
    pub patroni_config: Option<String>,
    /// The members' PostgreSQL log (a `*` pattern names the newest match), unless a member
    /// names its own: read to tell why a member stays `starting`.
    pub log_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MemberFile {
    pub name: String,
    /// Address used for SSH and PostgreSQL, and for the REST API unless `api_url` is given.
    pub host: String,
    pub api_url: Option<String>,
    pub data_dir: Option<String>,
    pub patroni_config: Option<String>,
    pub log_file: Option<String>,
}

/// REST API access. Every field may be set per environment and overridden per cluster.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RestFile {
    pub scheme: Option<Scheme>,
    pub port: Option<u16>,
    pub username: Option<String>,
    /// Name of an environment variable holding the password.
    pub password_env: Option<String>,
    /// Path of a file holding the password (relative paths: to the inventory's directory).
    pub password_file: Option<PathBuf>,
    pub tls: Option<TlsFile>,
}

impl RestFile {
    /// Cluster settings over environment settings, field by field.
    pub(super) fn over(&self, defaults: &RestFile) -> RestFile {
        RestFile {
            scheme: self.scheme.or(defaults.scheme),
            port: self.port.or(defaults.port),
            username: self.username.clone().or_else(|| defaults.username.clone()),
            password_env: self
                .password_env
                .clone()
                .or_else(|| defaults.password_env.clone()),
            password_file: self
                .password_file
                .clone()
                .or_else(|| defaults.password_file.clone()),
            tls: self.tls.clone().or_else(|| defaults.tls.clone()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Scheme {
    Http,
    Https,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsFile {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Verification is on unless this says `false`.
    pub verify: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TimeoutsFile {
    #[serde(default, deserialize_with = "human_duration")]
    pub connect: Option<Duration>,
    #[serde(default, deserialize_with = "human_duration")]
    pub request: Option<Duration>,
    #[serde(default, deserialize_with = "human_duration")]
    pub write: Option<Duration>,
    /// SQL statements that read (sizes, base-backup progress).
    #[serde(default, deserialize_with = "human_duration")]
    pub statement: Option<Duration>,
    /// Default deadlines of runbooks' long waits, by runbook name (`reinit: 4h`).
    #[serde(default, deserialize_with = "human_durations")]
    pub runbooks: BTreeMap<String, Duration>,
}

/// How the environment controls Patroni on its members (see `remote::ServiceControl`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServiceFile {
    pub kind: ServiceKind,
    /// systemd: the unit (default `patroni`).
    pub unit: Option<String>,
    /// systemd: through `sudo -n` (default true).
    pub sudo: Option<bool>,
    /// kubernetes: the namespace.
    pub namespace: Option<String>,
    /// kubernetes: the pod's name; `{member}` is replaced (default `{member}`).
    pub pod: Option<String>,
    /// kubernetes: the kubectl context.
    pub context: Option<String>,
    /// lab: the pgha binary on the hosts.
    pub pgha: Option<PathBuf>,
    /// lab: the lab's directory.
    pub dir: Option<PathBuf>,
    /// The database's OS user (default `postgres`).
    pub db_user: Option<String>,
    /// systemd: the command that installs a Patroni release on a member's host, one word per
    /// item, `{version}` replaced (e.g. `[apt-get, install, -y, "patroni={version}*"]`).
    #[serde(default)]
    pub upgrade: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ServiceKind {
    Systemd,
    Kubernetes,
    Lab,
}

/// SQL access to the members, for the few things pgha asks PostgreSQL itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PostgresFile {
    pub user: String,
    pub password_env: Option<String>,
    pub password_file: Option<PathBuf>,
    pub port: Option<u16>,
    pub dbname: Option<String>,
    /// `verify-full` unless the inventory says `disable`.
    pub sslmode: Option<crate::postgres::SslMode>,
    pub ca_file: Option<PathBuf>,
}

/// Where the DCS is. The whole section is taken from the cluster when it has one, else from the
/// environment. Fields of the other kind are refused when the file is read.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DcsFile {
    pub kind: DcsKind,
    /// `host:port` (or a URL) of the DCS endpoints: etcd client URLs or the Consul agents.
    /// etcd: at least one. Consul: none means `CONSUL_HTTP_ADDR`, else `127.0.0.1:8500`.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// `http` or `https` for hosts given without a scheme (Consul: else `CONSUL_HTTP_SSL`;
    /// etcd: else https when `tls` is set).
    pub scheme: Option<Scheme>,
    /// Consul: name of the environment variable holding the ACL token (else `CONSUL_HTTP_TOKEN`).
    pub token_env: Option<String>,
    /// Consul: a file holding the ACL token.
    pub token_file: Option<PathBuf>,
    /// etcd: the user pgha authenticates as (`etcdctl --user`), with `password_env` or
    /// `password_file`.
    pub username: Option<String>,
    /// etcd: name of an environment variable holding the user's password.
    pub password_env: Option<String>,
    /// etcd: a file holding the user's password (relative: to the inventory's directory).
    pub password_file: Option<PathBuf>,
    /// TLS to the DCS (Consul: else `CONSUL_CACERT`, `CONSUL_CLIENT_CERT`, `CONSUL_CLIENT_KEY`).
    pub tls: Option<TlsFile>,
    /// Patroni's `namespace` (default `service`; etcd: `/service`, and a leading `/` required).
    pub namespace: Option<String>,
    /// Consul: the service Patroni registers (default: derived from the scope, as Patroni does).
    pub service: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DcsKind {
    Etcd,
    Consul,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SshFile {
    pub user: Option<String>,
    pub port: Option<u16>,
    pub jump_host: Option<String>,
    pub identity_file: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    #[serde(default)]
    pub sudo: bool,
}

fn human_durations<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, Duration>, D::Error> {
    let texts = BTreeMap::<String, String>::deserialize(deserializer)?;
    texts
        .into_iter()
        .map(|(name, text)| {
            crate::duration::parse(&text)
                .map_err(|reason| serde::de::Error::custom(format!("runbooks.{name}: {reason}")))
                .map(|duration| (name, duration))
        })
        .collect()
}

fn required_duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    crate::duration::parse(&text).map_err(serde::de::Error::custom)
}

fn human_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(deserializer)?;
    crate::duration::parse(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}
