//! The inventory: which clusters exist, where their members are and how to reach them. It owns
//! the three ways of naming a cluster — an inventory file with named environments, Patroni's own
//! `patroni.yml` (like `patronictl -c`), or one member's REST URL — and turns each into one
//! validated `ClusterTarget`. Secrets are read here, at resolution, and only here; a URL that
//! carries credentials (`user:password@`) is refused, wherever it comes from. Commands run only
//! on hosts an inventory file names (`ClusterTarget::remote_host`), never on ones discovered from
//! the DCS; hosts, `ssh.user` and `ssh.jump_host` are checked when the file is read.

mod consul;
mod error;
mod etcd;
mod file;
mod patroni_config;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use error::InventoryError;
pub use file::DcsKind;
use file::{
    AlertmanagerFile, ClusterFile, EnvironmentFile, InventoryFile, MemberFile, RestFile, Scheme,
    ServiceFile, ServiceKind, SshFile,
};

pub use consul::patroni_service_name;

use crate::alerts::AlertmanagerAuth;
use crate::consul::ConsulSettings;
use crate::etcd::EtcdSettings;
use crate::names::{check_host, check_jump_host, check_name, check_ssh_user};
use crate::patroni::{BasicAuth, PatroniClient, RestSettings, TlsSettings};
use crate::postgres::{PgSettings, SslMode};
use crate::remote::ServiceControl;
pub use crate::remote::SshSettings;
use crate::secret::Secret;

/// The environment name the lab writes its inventory under.
pub const LAB_ENVIRONMENT: &str = "lab";
/// The inventory file name inside a lab directory (and in the working directory).
pub const FILE_NAME: &str = "pgha.yml";

/// How the user named the cluster: validated flags, before any file is read.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    /// `--config` or `PGHA_CONFIG`.
    pub config: Option<PathBuf>,
    /// Where to look when no file is named: `./pgha.yml`, then the user config dir.
    pub search_paths: Vec<PathBuf>,
    /// The lab's inventory, used for the `lab` environment when no other file defines it.
    pub lab_inventory: Option<PathBuf>,
    pub environment: Option<String>,
    pub cluster: Option<String>,
    pub patroni_config: Option<PathBuf>,
    pub api: Option<String>,
    /// TLS for `--api` (`--cacert`, `--cert`, `--key`).
    pub api_tls: TlsSettings,
    pub connect_timeout: Option<Duration>,
    pub request_timeout: Option<Duration>,
}

/// The backup tool a cluster's backups are made with (restores, the newest backup's age).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "tool", rename_all = "snake_case")]
pub enum BackupTool {
    Pgbackrest {
        stanza: String,
        /// pgBackRest's configuration file, when not its default.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        config: Option<String>,
    },
    WalG {
        /// WAL-G's configuration file, when not its default.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        config: Option<String>,
    },
    /// WAL-E (seed 001's tool, unmaintained upstream): configured by environment variables,
    /// usually kept in an envdir directory (`envdir /etc/wal-e.d/env wal-e …`).
    WalE {
        /// The envdir directory WAL-E's environment is read from, when it has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        envdir: Option<String>,
    },
}

impl BackupTool {
    /// The tool's own name for it.
    pub fn title(&self) -> &'static str {
        match self {
            BackupTool::Pgbackrest { .. } => "pgBackRest",
            BackupTool::WalG { .. } => "WAL-G",
            BackupTool::WalE { .. } => "WAL-E",
        }
    }
}

/// What the inventory requires of the cluster's backups before risky work (`backup:`): the
/// newest backup, as `tool` lists them, no older than `max_age`; older, a runbook refuses to
/// start (or, `when_older: warn`, says so and goes on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupPolicy {
    pub tool: BackupTool,
    pub max_age: Duration,
    pub refuse_when_older: bool,
}

/// One cluster, resolved: everything a command needs to talk to it.
#[derive(Debug, Clone)]
pub struct ClusterTarget {
    pub environment: String,
    pub cluster: String,
    pub scope: String,
    /// The inventory marks it a standby cluster (`standby: true`).
    pub standby: bool,
    /// The cluster a standby cluster follows (`follows:`), with its members' hosts.
    pub follows: Option<FollowedCluster>,
    pub members: Vec<MemberTarget>,
    pub rest: RestSettings,
    pub dcs: Option<DcsSettings>,
    pub ssh: Option<SshSettings>,
    /// SQL access to the members, where the inventory gives it.
    pub postgres: Option<PgSettings>,
    /// Default deadlines of runbooks' long waits, by runbook name.
    pub runbook_timeouts: BTreeMap<String, Duration>,
    /// How Patroni is stopped and started on the members, where the inventory says.
    pub service: Option<ServiceControl>,
    /// Where runbooks silence the alerts their work would raise.
    pub alertmanager: Option<AlertmanagerSettings>,
    /// The backups risky runbooks require, where the inventory says.
    pub backup: Option<BackupPolicy>,
    /// The Consul agent, when Consul is the DCS (or `CONSUL_HTTP_ADDR` names one).
    pub consul: Option<ConsulSettings>,
    /// The etcd cluster, when etcd is the DCS: the inventory's `dcs:` (kind etcd), else
    /// `ETCDCTL_ENDPOINTS` and its companions, else (`--patroni-config`) Patroni's `etcd3:`.
    pub etcd: Option<EtcdSettings>,
    /// Where this came from, for messages: a file path or the `--api` URL.
    pub origin: String,
    /// Whose word the members' names and hosts are.
    pub members_from: MemberSource,
}

/// Where a target's members come from. Commands run only on hosts an inventory names: the DCS
/// is written by every member (and by whoever holds its credentials), so a host read from
/// `/cluster` is fine for showing and for REST calls, never for choosing where pgha connects
/// over SSH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberSource {
    /// An inventory file (the operator's or the lab's), validated when read.
    Inventory,
    /// One member's `/cluster` answer (`--api`, `--patroni-config`).
    Discovered,
}

/// Why pgha will not run a command on a member's host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteTargetError {
    #[error(
        "{member} is not a member of cluster {cluster} in {origin}: pgha runs commands only on hosts an inventory names, never on one the DCS reports; add {member} under the cluster's `members:` there"
    )]
    NotInInventory {
        member: String,
        cluster: String,
        origin: String,
    },
    #[error(
        "{member}: the members of cluster {cluster} come from the DCS ({origin}): pgha runs commands only on hosts an inventory names; select the cluster from an inventory (--config, --env) that lists {member}"
    )]
    Discovered {
        member: String,
        cluster: String,
        origin: String,
    },
    #[error(
        "{member} is registered in the DCS but is not a member of cluster {cluster} in {origin}: pgha sends its credentials only to members it was given; add {member} under the cluster's `members:` there"
    )]
    Unlisted {
        member: String,
        cluster: String,
        origin: String,
    },
}

impl ClusterTarget {
    /// What a run's plan was made from, as a hash: every setting of the resolved target
    /// (members, hosts, paths, service control, DCS, SSH, timeouts) except where the inventory
    /// lives and the secrets' values (redacted in `Debug`, so a rotated password is no change).
    /// A resume compares it with the one its run recorded.
    pub fn fingerprint(&self) -> String {
        let settings = ClusterTarget {
            origin: String::new(),
            ..self.clone()
        };
        crate::plan::sha256_hex(format!("{settings:?}").as_bytes())
    }

    pub fn member(&self, name: &str) -> Option<&MemberTarget> {
        self.members.iter().find(|member| member.name == name)
    }

    /// The host commands for `member` go to: the inventory's, and only for a member it lists.
    /// Planners ask before building a remote step; the executor asks again before sending one.
    pub fn remote_host(&self, member: &str) -> Result<&str, RemoteTargetError> {
        if self.members_from == MemberSource::Discovered {
            return Err(RemoteTargetError::Discovered {
                member: member.into(),
                cluster: self.cluster.clone(),
                origin: self.origin.clone(),
            });
        }
        self.member(member)
            .map(|listed| listed.host.as_str())
            .ok_or_else(|| RemoteTargetError::NotInInventory {
                member: member.into(),
                cluster: self.cluster.clone(),
                origin: self.origin.clone(),
            })
    }

    /// A member pgha may send its credentials to (REST writes, SQL): one it was given — by the
    /// inventory, or discovered through `--api` when it resolved the cluster — never one that
    /// only the DCS names now.
    pub fn listed_member(&self, member: &str) -> Result<&MemberTarget, RemoteTargetError> {
        self.member(member)
            .ok_or_else(|| RemoteTargetError::Unlisted {
                member: member.into(),
                cluster: self.cluster.clone(),
                origin: self.origin.clone(),
            })
    }

    /// Whether `api_url` is the REST API of a member pgha was given.
    pub fn lists_api(&self, api_url: &str) -> bool {
        self.members.iter().any(|member| member.api_url == api_url)
    }

    /// Whether `host` is the host of a member pgha was given.
    pub fn lists_host(&self, host: &str) -> bool {
        self.members.iter().any(|member| member.host == host)
    }

    /// The credentials for the Alertmanager at `url` (a URL from a plan). Plans and journals
    /// hold URLs only, so credentials are looked up at call time, and only the inventory's own
    /// Alertmanager gets them: a URL from another plan gets none.
    pub fn alertmanager_auth(&self, url: &str) -> Option<AlertmanagerAuth> {
        self.alertmanager
            .as_ref()
            .filter(|alertmanager| alertmanager.url == url)
            .and_then(|alertmanager| alertmanager.auth.clone())
    }
}

/// A standby cluster's primary site, as the inventory names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FollowedCluster {
    pub cluster: String,
    /// Its members' hosts (where PostgreSQL answers).
    pub hosts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberTarget {
    pub name: String,
    pub host: String,
    /// Base URL of the REST API, without a trailing slash.
    pub api_url: String,
    /// PostgreSQL's data directory on the host, where the inventory says.
    pub data_dir: Option<String>,
    /// Patroni's configuration file on the host, where the inventory says.
    pub patroni_config: Option<String>,
    /// PostgreSQL's log on the host (a `*` pattern names the newest match), where the
    /// inventory says: read when a member stays `starting` to tell why.
    pub log_file: Option<String>,
}

/// The inventory's `dcs:` section as `pgha inventory` shows it: secrets by source only.
#[derive(Debug, Clone, Serialize)]
pub struct DcsSettings {
    pub kind: DcsKind,
    pub hosts: Vec<String>,
    /// Consul: the variable's name, never its value.
    pub token_env: Option<String>,
    /// etcd: the user pgha authenticates as.
    pub username: Option<String>,
    /// etcd: where the password comes from (`env:NAME`, `file:PATH`), never its value.
    pub password_from: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertmanagerSettings {
    pub url: String,
    pub matchers: BTreeMap<String, String>,
    /// Read at resolution; never in a plan (see `ClusterTarget::alertmanager_auth`).
    pub auth: Option<AlertmanagerAuth>,
}

/// A summary of one inventory for `pgha inventory`: no secrets, only where they come from.
#[derive(Debug, Serialize)]
pub struct InventorySummary {
    pub path: PathBuf,
    pub environments: BTreeMap<String, BTreeMap<String, ClusterSummary>>,
}

#[derive(Debug, Serialize)]
pub struct ClusterSummary {
    pub scope: String,
    pub members: Vec<MemberTarget>,
    pub rest_username: Option<String>,
    pub rest_password_from: Option<String>,
    pub dcs: Option<DcsSettings>,
    pub ssh: Option<SshSettings>,
    pub alertmanager: Option<AlertmanagerSummary>,
}

/// The environment's Alertmanager, its credentials by source (`env:NAME`, `file:PATH`).
#[derive(Debug, Serialize)]
pub struct AlertmanagerSummary {
    pub url: String,
    pub matchers: BTreeMap<String, String>,
    pub username: Option<String>,
    pub password_from: Option<String>,
    pub token_from: Option<String>,
}

/// Resolves the selector into one cluster, discovering members over REST where the mode
/// requires it.
pub async fn resolve(selector: &Selector) -> Result<ClusterTarget, InventoryError> {
    if let (Some(_), Some(_)) = (&selector.patroni_config, &selector.api) {
        return Err(InventoryError::ConflictingModes {
            flag: "patroni-config",
            other: "api",
        });
    }
    if let Some(path) = &selector.patroni_config {
        let seed = patroni_config::load(path, selector)?;
        return discover(seed).await;
    }
    if let Some(url) = &selector.api {
        let rest = rest_settings_for_api(selector);
        let timeouts = Timeouts {
            connect: rest.connect_timeout,
            request: rest.request_timeout,
        };
        let seed = Seed {
            url: url.trim_end_matches('/').to_string(),
            scope: None,
            rest,
            consul: consul::from_environment(timeouts, &process_env)?,
            etcd: etcd::from_environment(timeouts, &process_env)?,
            origin: format!("--api {url}"),
        };
        return discover(seed).await;
    }
    let (path, inventory) = load_for(selector)?;
    select_cluster(&path, inventory, selector, &process_env)
}

/// Reads an environment variable; a function so tests need not touch the process's.
type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process's environment; an empty variable counts as unset.
fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// The timeouts the REST API uses, reused for the DCS.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    connect: Duration,
    request: Duration,
}

/// Loads and validates the inventory the selector points at, for `pgha inventory`.
pub fn summarize(selector: &Selector) -> Result<InventorySummary, InventoryError> {
    let (path, inventory) = load_for(selector)?;
    let base = base_dir(&path);
    let mut environments = BTreeMap::new();
    for (environment_name, environment) in &inventory.environments {
        let mut clusters = BTreeMap::new();
        for (cluster_name, cluster) in &environment.clusters {
            let context = Context::new(&path, environment_name, cluster_name);
            let rest = cluster.rest.over(&environment.rest);
            clusters.insert(
                cluster_name.clone(),
                ClusterSummary {
                    scope: cluster
                        .scope
                        .clone()
                        .unwrap_or_else(|| cluster_name.clone()),
                    members: members(&context, cluster, &rest)?,
                    rest_username: rest.username.clone(),
                    rest_password_from: secret_source(
                        &base,
                        rest.password_env.as_ref(),
                        rest.password_file.as_ref(),
                    ),
                    dcs: dcs_settings(&base, environment, cluster),
                    ssh: ssh_settings(&base, environment, cluster),
                    alertmanager: environment
                        .alertmanager
                        .as_ref()
                        .map(|alertmanager| alertmanager_summary(&base, alertmanager)),
                },
            );
        }
        environments.insert(environment_name.clone(), clusters);
    }
    Ok(InventorySummary { path, environments })
}

/// Where a secret comes from, for showing: `env:NAME` or `file:PATH`, never its value.
fn secret_source(base: &Path, variable: Option<&String>, file: Option<&PathBuf>) -> Option<String> {
    variable
        .map(|variable| format!("env:{variable}"))
        .or_else(|| file.map(|file| format!("file:{}", resolve_path(base, file).display())))
}

fn alertmanager_summary(base: &Path, alertmanager: &AlertmanagerFile) -> AlertmanagerSummary {
    AlertmanagerSummary {
        url: alertmanager.url.trim_end_matches('/').to_string(),
        matchers: alertmanager.matchers.clone(),
        username: alertmanager.username.clone(),
        password_from: secret_source(
            base,
            alertmanager.password_env.as_ref(),
            alertmanager.password_file.as_ref(),
        ),
        token_from: secret_source(
            base,
            alertmanager.token_env.as_ref(),
            alertmanager.token_file.as_ref(),
        ),
    }
}

/// Which file to read, and its parsed content. The lab's inventory stands in for the `lab`
/// environment and, when no inventory exists at all, for the default.
fn load_for(selector: &Selector) -> Result<(PathBuf, InventoryFile), InventoryError> {
    let wants_lab = selector.environment.as_deref() == Some(LAB_ENVIRONMENT);
    let main = match &selector.config {
        Some(path) => Some(path.clone()),
        None => selector
            .search_paths
            .iter()
            .find(|path| path.is_file())
            .cloned(),
    };
    if let Some(path) = main {
        let inventory = load_file(&path)?;
        if !wants_lab || inventory.environments.contains_key(LAB_ENVIRONMENT) {
            return Ok((path, inventory));
        }
    }
    if let Some(lab) = selector
        .lab_inventory
        .as_ref()
        .filter(|path| path.is_file())
        && (wants_lab || selector.environment.is_none())
    {
        return Ok((lab.clone(), load_file(lab)?));
    }
    let mut searched: Vec<PathBuf> = selector.config.iter().cloned().collect();
    if selector.config.is_none() {
        searched.extend(selector.search_paths.iter().cloned());
    }
    searched.extend(selector.lab_inventory.iter().cloned());
    Err(InventoryError::NotFound { searched })
}

fn load_file(path: &Path) -> Result<InventoryFile, InventoryError> {
    let text = std::fs::read_to_string(path).map_err(|error| InventoryError::Read {
        path: path.to_path_buf(),
        reason: error.to_string(),
    })?;
    let inventory: InventoryFile = parse_yaml(path, &text)?;
    validate(path, &inventory)?;
    Ok(inventory)
}

/// Parses YAML with serde-saphyr, turning its error into `file:line:column: message`.
pub(crate) fn parse_yaml<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
) -> Result<T, InventoryError> {
    serde_saphyr::from_str(text).map_err(|error| {
        let location = error.location();
        let message = error.without_snippet().to_string();
        // serde-saphyr appends " at line X, column Y"; the location is already in front.
        let message = message
            .rsplit_once(" at line ")
            .map_or(message.as_str(), |(head, _)| head)
            .trim();
        // The library's advice is for programmers embedding it; an operator just needs the key.
        let message = match message.strip_prefix("duplicate mapping key: ") {
            Some(rest) => {
                let key = rest.split(',').next().unwrap_or(rest).trim();
                format!("duplicate key `{key}`: each key may appear once")
            }
            None => message.to_string(),
        };
        InventoryError::Parse {
            path: path.to_path_buf(),
            line: location.map_or(0, |location| location.line()),
            column: location.map_or(0, |location| location.column()),
            message,
        }
    })
}

fn validate(path: &Path, inventory: &InventoryFile) -> Result<(), InventoryError> {
    let invalid = |field: String, reason: String| InventoryError::Invalid {
        path: path.to_path_buf(),
        field,
        reason,
    };
    if inventory.environments.is_empty() {
        return Err(invalid(
            "environments".into(),
            "defines no environment".into(),
        ));
    }
    for (environment_name, environment) in &inventory.environments {
        let field = format!("environments.{environment_name}");
        check_name(environment_name).map_err(|reason| invalid(field.clone(), reason))?;
        validate_rest(&environment.rest)
            .map_err(|reason| invalid(format!("{field}.rest"), reason))?;
        if let Some(ssh) = &environment.ssh {
            validate_ssh(ssh)
                .map_err(|(name, reason)| invalid(format!("{field}.ssh{name}"), reason))?;
        }
        if let Some(alertmanager) = &environment.alertmanager {
            validate_alertmanager(alertmanager)
                .map_err(|(name, reason)| invalid(format!("{field}.alertmanager{name}"), reason))?;
        }
        if environment.clusters.is_empty() {
            return Err(invalid(
                format!("{field}.clusters"),
                "defines no cluster".into(),
            ));
        }
        if let Some(default) = &environment.default_cluster
            && !environment.clusters.contains_key(default)
        {
            return Err(invalid(
                format!("{field}.default_cluster"),
                format!(
                    "{default:?} is not one of its clusters ({})",
                    environment
                        .clusters
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        for (cluster_name, cluster) in &environment.clusters {
            let field = format!("{field}.clusters.{cluster_name}");
            check_name(cluster_name).map_err(|reason| invalid(field.clone(), reason))?;
            validate_rest(&cluster.rest.over(&environment.rest))
                .map_err(|reason| invalid(format!("{field}.rest"), reason))?;
            if let Some(ssh) = &cluster.ssh {
                validate_ssh(ssh)
                    .map_err(|(name, reason)| invalid(format!("{field}.ssh{name}"), reason))?;
            }
            validate_members(&cluster.members).map_err(|(member_field, reason)| {
                invalid(format!("{field}.{member_field}"), reason)
            })?;
            validate_host_paths(
                cluster.data_dir.as_ref(),
                cluster.patroni_config.as_ref(),
                cluster.log_file.as_ref(),
            )
            .map_err(|(name, reason)| invalid(format!("{field}.{name}"), reason))?;
            if let Some(dcs) = &cluster.dcs {
                validate_dcs(dcs)
                    .map_err(|(name, reason)| invalid(format!("{field}.dcs{name}"), reason))?;
            }
        }
        if let Some(dcs) = &environment.dcs {
            validate_dcs(dcs)
                .map_err(|(name, reason)| invalid(format!("{field}.dcs{name}"), reason))?;
        }
    }
    Ok(())
}

/// Where REST credentials belong, for a URL refused because it carries some.
const REST_CREDENTIALS: &str =
    "the REST credentials belong in rest.username and rest.password_env or rest.password_file";

/// Where Alertmanager's credentials belong, for a URL refused because it carries some.
const ALERTMANAGER_CREDENTIALS: &str = "the credentials belong in alertmanager.username with password_env or password_file, or in token_env or token_file";

/// The `dcs:` section: hosts without credentials (they have their own fields), only the fields
/// of its kind, and for etcd at least one host, one password source with a username and a
/// namespace written as Patroni's keys show it. Errors name the field after `dcs` (`.hosts[1]`,
/// or nothing for the section as a whole).
fn validate_dcs(dcs: &file::DcsFile) -> Result<(), (String, String)> {
    let instead = match dcs.kind {
        DcsKind::Consul => consul::INVENTORY_TOKEN,
        DcsKind::Etcd => etcd::INVENTORY_CREDENTIALS,
    };
    for (index, host) in dcs.hosts.iter().enumerate() {
        crate::web::refuse_userinfo(host, instead)
            .map_err(|reason| (format!(".hosts[{index}]"), reason))?;
    }
    let (other_kind, foreign, instead) = match dcs.kind {
        DcsKind::Consul => (
            "etcd",
            [
                ("username", dcs.username.is_some()),
                ("password_env", dcs.password_env.is_some()),
                ("password_file", dcs.password_file.is_some()),
            ],
            "Consul takes an ACL token in token_env or token_file",
        ),
        DcsKind::Etcd => (
            "consul",
            [
                ("token_env", dcs.token_env.is_some()),
                ("token_file", dcs.token_file.is_some()),
                ("service", dcs.service.is_some()),
            ],
            "etcd takes username with password_env or password_file",
        ),
    };
    if let Some((name, _)) = foreign.iter().find(|(_, present)| *present) {
        return Err((
            format!(".{name}"),
            format!("`{name}` is for kind {other_kind} only; {instead}"),
        ));
    }
    if dcs.kind == DcsKind::Etcd {
        if dcs.hosts.is_empty() {
            return Err((".hosts".into(), etcd::NO_HOSTS.into()));
        }
        validate_basic_auth(
            dcs.username.as_ref(),
            dcs.password_env.as_ref(),
            dcs.password_file.as_ref(),
        )
        .map_err(|reason| (String::new(), reason))?;
        if let Some(namespace) = &dcs.namespace {
            etcd::check_namespace(namespace).map_err(|reason| (".namespace".into(), reason))?;
        }
    }
    Ok(())
}

fn validate_rest(rest: &RestFile) -> Result<(), String> {
    validate_basic_auth(
        rest.username.as_ref(),
        rest.password_env.as_ref(),
        rest.password_file.as_ref(),
    )
}

/// A username goes with exactly one password source, and a password source with a username.
fn validate_basic_auth(
    username: Option<&String>,
    password_env: Option<&String>,
    password_file: Option<&PathBuf>,
) -> Result<(), String> {
    if password_env.is_some() && password_file.is_some() {
        return Err("password_env and password_file are both set: keep one".into());
    }
    let has_password = password_env.is_some() || password_file.is_some();
    match (username, has_password) {
        (Some(_), false) => Err("username is set but no password_env or password_file".into()),
        (None, true) => Err("a password source is set but no username".into()),
        _ => Ok(()),
    }
}

/// The `alertmanager:` section: a URL without credentials, matchers Alertmanager accepts, and
/// at most one way to authenticate. Errors name the field after `alertmanager` (`.url`, or
/// nothing for the section as a whole).
fn validate_alertmanager(alertmanager: &AlertmanagerFile) -> Result<(), (&'static str, String)> {
    check_api_url(&alertmanager.url, ALERTMANAGER_CREDENTIALS)
        .map_err(|reason| (".url", reason))?;
    validate_matchers(&alertmanager.matchers).map_err(|reason| (".matchers", reason))?;
    validate_basic_auth(
        alertmanager.username.as_ref(),
        alertmanager.password_env.as_ref(),
        alertmanager.password_file.as_ref(),
    )
    .map_err(|reason| ("", reason))?;
    if alertmanager.token_env.is_some() && alertmanager.token_file.is_some() {
        return Err(("", "token_env and token_file are both set: keep one".into()));
    }
    let has_token = alertmanager.token_env.is_some() || alertmanager.token_file.is_some();
    if has_token && alertmanager.username.is_some() {
        return Err((
            "",
            "basic auth (username, password_env or password_file) and a bearer token (token_env or token_file) are both set: keep one".into(),
        ));
    }
    Ok(())
}

fn validate_matchers(matchers: &BTreeMap<String, String>) -> Result<(), String> {
    if matchers.is_empty() {
        return Err("name at least one label to match".into());
    }
    for name in matchers.keys() {
        let label = !name.is_empty()
            && !name.starts_with(|character: char| character.is_ascii_digit())
            && name
                .chars()
                .all(|character| character.is_ascii_alphanumeric() || character == '_');
        if !label {
            return Err(format!("{name:?} is not a label name"));
        }
    }
    for value in matchers.values() {
        let unknown = value
            .replace("{member}", "")
            .replace("{host}", "")
            .replace("{cluster}", "");
        if unknown.contains(['{', '}']) {
            return Err(format!(
                "{value:?}: the placeholders are {{member}}, {{host}} and {{cluster}}"
            ));
        }
    }
    Ok(())
}

fn validate_members(members: &[MemberFile]) -> Result<(), (String, String)> {
    if members.is_empty() {
        return Err(("members".into(), "lists no member".into()));
    }
    let mut seen = BTreeSet::new();
    for (index, member) in members.iter().enumerate() {
        let field = format!("members[{index}]");
        check_name(&member.name).map_err(|reason| (format!("{field}.name"), reason))?;
        if !seen.insert(member.name.as_str()) {
            return Err((
                format!("{field}.name"),
                format!("{:?} appears twice", member.name),
            ));
        }
        check_host(&member.host).map_err(|reason| (format!("{field}.host"), reason))?;
        validate_host_paths(
            member.data_dir.as_ref(),
            member.patroni_config.as_ref(),
            member.log_file.as_ref(),
        )
        .map_err(|(name, reason)| (format!("{field}.{name}"), reason))?;
        if let Some(url) = &member.api_url {
            check_api_url(url, REST_CREDENTIALS)
                .map_err(|reason| (format!("{field}.api_url"), reason))?;
        }
    }
    Ok(())
}

/// Paths on the members' hosts: they reach commands, so they are checked at load (absolute,
/// no control character, no `.` or `..` component), not only when a plan uses them.
fn validate_host_paths(
    data_dir: Option<&String>,
    patroni_config: Option<&String>,
    log_file: Option<&String>,
) -> Result<(), (&'static str, String)> {
    for (name, path) in [
        ("data_dir", data_dir),
        ("patroni_config", patroni_config),
        ("log_file", log_file),
    ] {
        if let Some(path) = path {
            crate::remote::checked_path(name, path).map_err(|error| (name, error.to_string()))?;
        }
    }
    Ok(())
}

/// The `ssh:` section: what reaches ssh's command line is checked here, at load.
fn validate_ssh(ssh: &SshFile) -> Result<(), (&'static str, String)> {
    if let Some(user) = &ssh.user {
        check_ssh_user(user).map_err(|reason| (".user", reason))?;
    }
    if let Some(jump) = &ssh.jump_host {
        check_jump_host(jump).map_err(|reason| (".jump_host", reason))?;
    }
    Ok(())
}

/// An http(s) URL with a host and no credentials; `instead` says where credentials belong.
fn check_api_url(text: &str, instead: &str) -> Result<(), String> {
    // First: the messages below show the text.
    crate::web::refuse_userinfo(text, instead)?;
    let url = url::Url::parse(text).map_err(|error| format!("{text:?} is not a URL: {error}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "{text:?} must be an http:// or https:// URL with a host"
        ));
    }
    Ok(())
}

/// The environment the selector names, or the only one.
fn chosen_environment(
    path: &Path,
    inventory: &InventoryFile,
    selector: &Selector,
) -> Result<String, InventoryError> {
    let environment_names: Vec<String> = inventory.environments.keys().cloned().collect();
    match &selector.environment {
        Some(name) if inventory.environments.contains_key(name) => Ok(name.clone()),
        Some(name) => Err(InventoryError::UnknownEnvironment {
            path: path.to_path_buf(),
            name: name.clone(),
            known: environment_names,
        }),
        None if environment_names.len() == 1 => Ok(environment_names[0].clone()),
        None => Err(InventoryError::EnvironmentRequired {
            path: path.to_path_buf(),
            known: environment_names,
        }),
    }
}

/// The environment the selector chooses and every cluster in it, for `pgha status --all`.
pub fn clusters_of_environment(
    selector: &Selector,
) -> Result<(String, Vec<String>), InventoryError> {
    let (path, inventory) = load_for(selector)?;
    let environment = chosen_environment(&path, &inventory, selector)?;
    let clusters = inventory.environments[&environment]
        .clusters
        .keys()
        .cloned()
        .collect();
    Ok((environment, clusters))
}

fn select_cluster(
    path: &Path,
    mut inventory: InventoryFile,
    selector: &Selector,
    env: Env<'_>,
) -> Result<ClusterTarget, InventoryError> {
    let environment_name = chosen_environment(path, &inventory, selector)?;
    let environment = inventory
        .environments
        .remove(&environment_name)
        .expect("chosen from the keys");
    let cluster_names: Vec<String> = environment.clusters.keys().cloned().collect();
    let cluster_name = match &selector.cluster {
        Some(name) if environment.clusters.contains_key(name) => name.clone(),
        Some(name) => {
            return Err(InventoryError::UnknownCluster {
                path: path.to_path_buf(),
                environment: environment_name,
                name: name.clone(),
                known: cluster_names,
            });
        }
        None => match &environment.default_cluster {
            // Validated when the file was loaded: it names one of the clusters.
            Some(default) => default.clone(),
            None if cluster_names.len() == 1 => cluster_names[0].clone(),
            None => {
                return Err(InventoryError::ClusterRequired {
                    path: path.to_path_buf(),
                    environment: environment_name,
                    known: cluster_names,
                });
            }
        },
    };
    let cluster = &environment.clusters[&cluster_name];
    let context = Context::new(path, &environment_name, &cluster_name);
    let rest_file = cluster.rest.over(&environment.rest);
    let base = base_dir(path);
    let timeouts = dcs_timeouts(&environment, selector);
    Ok(ClusterTarget {
        scope: cluster
            .scope
            .clone()
            .unwrap_or_else(|| cluster_name.clone()),
        standby: cluster.standby,
        follows: followed(&context, &environment, cluster)?,
        members: members(&context, cluster, &rest_file)?,
        rest: rest_settings(&context, &base, &rest_file, &environment, selector)?,
        dcs: dcs_settings(&base, &environment, cluster),
        ssh: ssh_settings(&base, &environment, cluster),
        postgres: postgres_settings(&context, &base, &environment, cluster)?,
        runbook_timeouts: environment.timeouts.runbooks.clone(),
        service: service_control(&context, &base, &environment, cluster)?,
        alertmanager: alertmanager_settings(&context, &base, &environment)?,
        backup: backup_policy(&context, &environment, cluster)?,
        consul: consul_settings(&context, &base, &environment, cluster, timeouts, env)?,
        etcd: etcd_settings(&context, &base, &environment, cluster, timeouts, env)?,
        origin: path.display().to_string(),
        members_from: MemberSource::Inventory,
        environment: environment_name,
        cluster: cluster_name,
    })
}

/// `follows:`: another cluster of the environment, and only on a standby cluster.
fn followed(
    context: &Context<'_>,
    environment: &EnvironmentFile,
    cluster: &ClusterFile,
) -> Result<Option<FollowedCluster>, InventoryError> {
    let Some(name) = &cluster.follows else {
        return Ok(None);
    };
    let invalid = |reason: String| InventoryError::Invalid {
        path: context.path.to_path_buf(),
        field: format!("{}.follows", context.field),
        reason,
    };
    if !cluster.standby {
        return Err(invalid(
            "only a standby cluster (`standby: true`) follows another".into(),
        ));
    }
    let followed = environment.clusters.get(name).ok_or_else(|| {
        invalid(format!(
            "no cluster {name:?} in this environment (known: {})",
            environment
                .clusters
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    if followed.standby {
        return Err(invalid(format!("{name} is a standby cluster itself")));
    }
    Ok(Some(FollowedCluster {
        cluster: name.clone(),
        hosts: followed
            .members
            .iter()
            .map(|member| member.host.clone())
            .collect(),
    }))
}

/// Names the file and the YAML path of the cluster, for error messages.
struct Context<'a> {
    path: &'a Path,
    field: String,
}

impl<'a> Context<'a> {
    fn new(path: &'a Path, environment: &str, cluster: &str) -> Self {
        Context {
            path,
            field: format!("environments.{environment}.clusters.{cluster}"),
        }
    }

    /// `environments.NAME`, for sections that belong to the environment.
    fn environment_field(&self) -> &str {
        self.field
            .split_once(".clusters.")
            .map_or(self.field.as_str(), |(environment, _)| environment)
    }
}

fn members(
    context: &Context<'_>,
    cluster: &ClusterFile,
    rest: &RestFile,
) -> Result<Vec<MemberTarget>, InventoryError> {
    let scheme = match (rest.scheme, &rest.tls) {
        (Some(Scheme::Https), _) | (None, Some(_)) => "https",
        (Some(Scheme::Http), _) | (None, None) => "http",
    };
    let port = rest.port.unwrap_or(8008);
    cluster
        .members
        .iter()
        .map(|member| {
            let api_url = member.api_url.clone().unwrap_or_else(|| {
                let host = if member.host.contains(':') && !member.host.starts_with('[') {
                    format!("[{}]", member.host)
                } else {
                    member.host.clone()
                };
                format!("{scheme}://{host}:{port}")
            });
            if api_url.is_empty() {
                return Err(InventoryError::Invalid {
                    path: context.path.to_path_buf(),
                    field: format!("{}.members", context.field),
                    reason: "empty api_url".into(),
                });
            }
            Ok(MemberTarget {
                name: member.name.clone(),
                host: member.host.clone(),
                api_url: api_url.trim_end_matches('/').to_string(),
                data_dir: member.data_dir.clone().or_else(|| cluster.data_dir.clone()),
                patroni_config: member
                    .patroni_config
                    .clone()
                    .or_else(|| cluster.patroni_config.clone()),
                log_file: member.log_file.clone().or_else(|| cluster.log_file.clone()),
            })
        })
        .collect()
}

fn rest_settings(
    context: &Context<'_>,
    base: &Path,
    rest: &RestFile,
    environment: &EnvironmentFile,
    selector: &Selector,
) -> Result<RestSettings, InventoryError> {
    let defaults = RestSettings::default();
    let auth = match &rest.username {
        Some(username) => Some(BasicAuth {
            username: username.clone(),
            password: read_password(context, base, rest)?,
        }),
        None => None,
    };
    let tls = rest.tls.clone().unwrap_or_default();
    Ok(RestSettings {
        auth,
        tls: TlsSettings {
            ca_file: tls.ca_file.map(|file| resolve_path(base, &file)),
            client_cert: tls.cert_file.map(|file| resolve_path(base, &file)),
            client_key: tls.key_file.map(|file| resolve_path(base, &file)),
            verify: tls.verify.unwrap_or(true),
        },
        connect_timeout: selector
            .connect_timeout
            .or(environment.timeouts.connect)
            .unwrap_or(defaults.connect_timeout),
        request_timeout: selector
            .request_timeout
            .or(environment.timeouts.request)
            .unwrap_or(defaults.request_timeout),
        write_timeout: environment.timeouts.write.unwrap_or(defaults.write_timeout),
    })
}

fn read_password(
    context: &Context<'_>,
    base: &Path,
    rest: &RestFile,
) -> Result<Secret, InventoryError> {
    read_secret(
        context.path,
        base,
        &format!("{}.rest", context.field),
        "password",
        rest.password_env.as_deref(),
        rest.password_file.as_deref(),
    )
}

/// A secret named by an environment variable or a file (relative paths: to the inventory).
/// `section` is the YAML path of the fields naming it, `<kind>_env` and `<kind>_file`, for
/// messages.
fn read_secret(
    path: &Path,
    base: &Path,
    section: &str,
    kind: &str,
    variable: Option<&str>,
    file: Option<&Path>,
) -> Result<Secret, InventoryError> {
    if let Some(variable) = variable {
        return std::env::var(variable).map(Secret::new).map_err(|_| {
            InventoryError::SecretVariableMissing {
                path: path.to_path_buf(),
                field: format!("{section}.{kind}_env"),
                variable: variable.to_string(),
            }
        });
    }
    let file = file.expect("validated: a secret source is present");
    let secret_path = resolve_path(base, file);
    std::fs::read_to_string(&secret_path)
        // Files written by editors and `echo` end with a newline that is not part of the secret.
        .map(|text| Secret::new(text.trim_end_matches(['\r', '\n'])))
        .map_err(|error| InventoryError::SecretFile {
            path: path.to_path_buf(),
            field: format!("{section}.{kind}_file"),
            secret_path,
            reason: error.to_string(),
        })
}

fn postgres_settings(
    context: &Context<'_>,
    base: &Path,
    environment: &EnvironmentFile,
    cluster: &ClusterFile,
) -> Result<Option<PgSettings>, InventoryError> {
    let Some(postgres) = cluster.postgres.as_ref().or(environment.postgres.as_ref()) else {
        return Ok(None);
    };
    let password = match (&postgres.password_env, &postgres.password_file) {
        (None, None) => None,
        (variable, file) => Some(read_secret(
            context.path,
            base,
            &format!("{}.postgres", context.field),
            "password",
            variable.as_deref(),
            file.as_deref(),
        )?),
    };
    Ok(Some(PgSettings {
        user: postgres.user.clone(),
        password,
        port: postgres.port.unwrap_or(5432),
        dbname: postgres.dbname.clone().unwrap_or_else(|| "postgres".into()),
        sslmode: postgres.sslmode.unwrap_or(SslMode::VerifyFull),
        ca_file: postgres
            .ca_file
            .as_ref()
            .map(|file| resolve_path(base, file)),
        connect_timeout: environment
            .timeouts
            .connect
            .unwrap_or(Duration::from_secs(2)),
        statement_timeout: environment
            .timeouts
            .statement
            .unwrap_or(crate::postgres::READ_TIMEOUT),
    }))
}

/// The environment's Alertmanager (validated with the file), its credentials read.
fn alertmanager_settings(
    context: &Context<'_>,
    base: &Path,
    environment: &EnvironmentFile,
) -> Result<Option<AlertmanagerSettings>, InventoryError> {
    let Some(alertmanager) = &environment.alertmanager else {
        return Ok(None);
    };
    let section = format!("{}.alertmanager", context.environment_field());
    let auth = if let Some(username) = &alertmanager.username {
        Some(AlertmanagerAuth::Basic {
            username: username.clone(),
            password: read_secret(
                context.path,
                base,
                &section,
                "password",
                alertmanager.password_env.as_deref(),
                alertmanager.password_file.as_deref(),
            )?,
        })
    } else if alertmanager.token_env.is_some() || alertmanager.token_file.is_some() {
        Some(AlertmanagerAuth::Bearer(read_secret(
            context.path,
            base,
            &section,
            "token",
            alertmanager.token_env.as_deref(),
            alertmanager.token_file.as_deref(),
        )?))
    } else {
        None
    };
    Ok(Some(AlertmanagerSettings {
        url: alertmanager.url.trim_end_matches('/').to_string(),
        matchers: alertmanager.matchers.clone(),
        auth,
    }))
}

/// The cluster's `backup:`, else the environment's.
fn backup_policy(
    context: &Context<'_>,
    environment: &EnvironmentFile,
    cluster: &ClusterFile,
) -> Result<Option<BackupPolicy>, InventoryError> {
    let (backup, field) = match (&cluster.backup, &environment.backup) {
        (Some(backup), _) => (backup, format!("{}.backup", context.field)),
        (None, Some(backup)) => (backup, format!("{}.backup", context.environment_field())),
        (None, None) => return Ok(None),
    };
    let invalid = |reason: String| InventoryError::Invalid {
        path: context.path.to_path_buf(),
        field: field.clone(),
        reason,
    };
    let tool = match (backup.tool, &backup.stanza) {
        (file::BackupToolName::Pgbackrest, Some(stanza)) => {
            crate::remote::checked_name("stanza", stanza)
                .map_err(|error| invalid(error.to_string()))?;
            BackupTool::Pgbackrest {
                stanza: stanza.clone(),
                config: backup.config.clone(),
            }
        }
        (file::BackupToolName::Pgbackrest, None) => {
            return Err(invalid("pgbackrest needs `stanza`".into()));
        }
        (file::BackupToolName::WalG, Some(_)) => {
            return Err(invalid("`stanza` does not apply to wal-g".into()));
        }
        (file::BackupToolName::WalG, None) => BackupTool::WalG {
            config: backup.config.clone(),
        },
        (file::BackupToolName::WalE, Some(_)) => {
            return Err(invalid("`stanza` does not apply to wal-e".into()));
        }
        (file::BackupToolName::WalE, None) => BackupTool::WalE {
            envdir: backup.config.clone(),
        },
    };
    if let Some(config) = &backup.config {
        crate::remote::checked_path("config", config)
            .map_err(|error| invalid(error.to_string()))?;
    }
    Ok(Some(BackupPolicy {
        tool,
        max_age: backup.max_age,
        refuse_when_older: backup.when_older != file::WhenOlder::Warn,
    }))
}

fn service_control(
    context: &Context<'_>,
    base: &Path,
    environment: &EnvironmentFile,
    cluster: &ClusterFile,
) -> Result<Option<ServiceControl>, InventoryError> {
    let Some(service) = cluster.service.as_ref().or(environment.service.as_ref()) else {
        return Ok(None);
    };
    let invalid = |reason: String| InventoryError::Invalid {
        path: context.path.to_path_buf(),
        field: format!("{}.service", context.field),
        reason,
    };
    let not_for = |field: &str, present: bool| -> Result<(), InventoryError> {
        if present {
            return Err(invalid(
                format!("`{field}` does not apply to kind {:?}", service.kind).to_lowercase(),
            ));
        }
        Ok(())
    };
    let db_user = service.db_user.clone().unwrap_or_else(|| "postgres".into());
    Ok(Some(match service.kind {
        ServiceKind::Systemd => {
            let ServiceFile {
                namespace,
                pod,
                context: kube_context,
                pgha,
                dir,
                ..
            } = service;
            not_for(
                "namespace, pod, context, pgha or dir",
                namespace.is_some()
                    || pod.is_some()
                    || kube_context.is_some()
                    || pgha.is_some()
                    || dir.is_some(),
            )?;
            ServiceControl::Systemd {
                unit: service.unit.clone().unwrap_or_else(|| "patroni".into()),
                sudo: service.sudo.unwrap_or(true),
                db_user,
                upgrade: service.upgrade.clone(),
            }
        }
        ServiceKind::Kubernetes => {
            not_for(
                "unit, sudo, pgha or dir",
                service.unit.is_some()
                    || service.sudo.is_some()
                    || service.pgha.is_some()
                    || service.dir.is_some(),
            )?;
            ServiceControl::Kubernetes {
                namespace: service
                    .namespace
                    .clone()
                    .ok_or_else(|| invalid("kind kubernetes needs `namespace`".into()))?,
                pod: service.pod.clone().unwrap_or_else(|| "{member}".into()),
                context: service.context.clone(),
                db_user,
            }
        }
        ServiceKind::Lab => ServiceControl::Lab {
            pgha: service
                .pgha
                .as_ref()
                .map(|path| resolve_path(base, path))
                .ok_or_else(|| invalid("kind lab needs `pgha`".into()))?,
            dir: service
                .dir
                .as_ref()
                .map(|path| resolve_path(base, path))
                .ok_or_else(|| invalid("kind lab needs `dir`".into()))?,
            db_user,
        },
    }))
}

/// The DCS's timeouts: the REST API's.
fn dcs_timeouts(environment: &EnvironmentFile, selector: &Selector) -> Timeouts {
    let defaults = RestSettings::default();
    Timeouts {
        connect: selector
            .connect_timeout
            .or(environment.timeouts.connect)
            .unwrap_or(defaults.connect_timeout),
        request: selector
            .request_timeout
            .or(environment.timeouts.request)
            .unwrap_or(defaults.request_timeout),
    }
}

fn consul_settings(
    context: &Context<'_>,
    base: &Path,
    environment: &EnvironmentFile,
    cluster: &ClusterFile,
    timeouts: Timeouts,
    env: Env<'_>,
) -> Result<Option<ConsulSettings>, InventoryError> {
    match cluster.dcs.as_ref().or(environment.dcs.as_ref()) {
        Some(dcs) if dcs.kind == DcsKind::Consul => {
            consul::from_inventory(context, base, dcs, timeouts, env).map(Some)
        }
        _ => Ok(None),
    }
}

/// etcd: the `dcs:` section when it says etcd; the `ETCDCTL_*` variables when the inventory
/// names no DCS (never when it names Consul).
fn etcd_settings(
    context: &Context<'_>,
    base: &Path,
    environment: &EnvironmentFile,
    cluster: &ClusterFile,
    timeouts: Timeouts,
    env: Env<'_>,
) -> Result<Option<EtcdSettings>, InventoryError> {
    match cluster.dcs.as_ref().or(environment.dcs.as_ref()) {
        Some(dcs) if dcs.kind == DcsKind::Etcd => {
            etcd::from_inventory(context, base, dcs, timeouts, env).map(Some)
        }
        Some(_) => Ok(None),
        None => etcd::from_environment(timeouts, env),
    }
}

fn dcs_settings(
    base: &Path,
    environment: &EnvironmentFile,
    cluster: &ClusterFile,
) -> Option<DcsSettings> {
    cluster
        .dcs
        .as_ref()
        .or(environment.dcs.as_ref())
        .map(|dcs| DcsSettings {
            kind: dcs.kind,
            hosts: dcs.hosts.clone(),
            token_env: dcs.token_env.clone(),
            username: dcs.username.clone(),
            password_from: secret_source(
                base,
                dcs.password_env.as_ref(),
                dcs.password_file.as_ref(),
            ),
        })
}

fn ssh_settings(
    base: &Path,
    environment: &EnvironmentFile,
    cluster: &ClusterFile,
) -> Option<SshSettings> {
    cluster
        .ssh
        .as_ref()
        .or(environment.ssh.as_ref())
        .map(|ssh: &SshFile| SshSettings {
            user: ssh.user.clone(),
            port: ssh.port,
            jump_host: ssh.jump_host.clone(),
            identity_file: ssh
                .identity_file
                .as_ref()
                .map(|file| resolve_path(base, file)),
            known_hosts: ssh
                .known_hosts
                .as_ref()
                .map(|file| resolve_path(base, file)),
            sudo: ssh.sudo,
        })
}

fn base_dir(path: &Path) -> PathBuf {
    path.parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn resolve_path(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

fn rest_settings_for_api(selector: &Selector) -> RestSettings {
    let defaults = RestSettings::default();
    let username = std::env::var("PATRONI_RESTAPI_USERNAME").ok();
    let password = std::env::var("PATRONI_RESTAPI_PASSWORD").ok();
    RestSettings {
        auth: username
            .zip(password)
            .map(|(username, password)| BasicAuth {
                username,
                password: Secret::new(password),
            }),
        tls: selector.api_tls.clone(),
        connect_timeout: selector.connect_timeout.unwrap_or(defaults.connect_timeout),
        request_timeout: selector.request_timeout.unwrap_or(defaults.request_timeout),
        write_timeout: defaults.write_timeout,
    }
}

/// What discovery starts from: one member's URL and how to talk to it.
pub(crate) struct Seed {
    pub url: String,
    pub scope: Option<String>,
    pub rest: RestSettings,
    pub consul: Option<ConsulSettings>,
    pub etcd: Option<EtcdSettings>,
    pub origin: String,
}

/// Asks one member for `/cluster` and builds the target from the members it lists.
async fn discover(seed: Seed) -> Result<ClusterTarget, InventoryError> {
    let client = PatroniClient::new(&seed.rest).map_err(InventoryError::Discovery)?;
    let topology = client
        .cluster(&seed.url)
        .await
        .map_err(InventoryError::Discovery)?;
    let members: Vec<MemberTarget> = topology
        .members
        .iter()
        .filter_map(|member| {
            let api_url = member.api_url.clone()?;
            Some(MemberTarget {
                name: member.name.clone(),
                host: member.host.clone().unwrap_or_else(|| host_of(&api_url)),
                api_url,
                data_dir: None,
                patroni_config: None,
                log_file: None,
            })
        })
        .collect();
    if members.is_empty() {
        return Err(InventoryError::NothingDiscovered { url: seed.url });
    }
    let scope = match seed.scope.or(topology.scope) {
        Some(scope) => scope,
        // Before 3.3 `/cluster` does not name the scope; the member's own status does.
        None => client
            .status(&seed.url)
            .await
            .map_err(InventoryError::Discovery)?
            .scope
            .unwrap_or_else(|| "unknown".into()),
    };
    Ok(ClusterTarget {
        environment: "-".into(),
        cluster: scope.clone(),
        scope,
        standby: false,
        follows: None,
        members,
        rest: seed.rest,
        dcs: None,
        ssh: None,
        postgres: None,
        runbook_timeouts: BTreeMap::new(),
        service: None,
        alertmanager: None,
        backup: None,
        consul: seed.consul,
        etcd: seed.etcd,
        origin: seed.origin,
        members_from: MemberSource::Discovered,
    })
}

fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|url| url.host_str().map(str::to_string))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;

/// An environment and timeouts for the DCS settings' tests, which must not touch the process's.
#[cfg(test)]
pub(super) mod env_testing {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::Timeouts;

    pub(super) fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(name, value)| ((*name).to_string(), (*value).to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    pub(super) const TIMEOUTS: Timeouts = Timeouts {
        connect: Duration::from_secs(2),
        request: Duration::from_secs(4),
    };
}
