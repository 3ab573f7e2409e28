//! `--patroni-config patroni.yml`: use a member's own Patroni configuration the way
//! `patronictl -c` does. Credentials come from `ctl.authentication`, else
//! `restapi.authentication`; the CA from `ctl.cacert`, else `restapi.cafile`; a client
//! certificate from `ctl.certfile`/`ctl.keyfile`; `ctl.insecure` turns verification off only
//! without a client certificate, as in patronictl. The DCS comes from the file's `consul:` or
//! `etcd3:` (or `etcd:`) section, else from the environment, as without a file. Patroni's file has many sections pgha does not
//! need, so unknown keys are allowed here (but the file must still be valid YAML). Addresses
//! carrying credentials (`user:password@`) are refused: Patroni has its own fields for them.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Env, InventoryError, Seed, Selector, Timeouts, parse_yaml, resolve_path};
use crate::consul::ConsulSettings;
use crate::etcd::EtcdSettings;
use crate::patroni::{BasicAuth, RestSettings, TlsSettings};
use crate::secret::Secret;

#[derive(Debug, Deserialize)]
struct PatroniFile {
    scope: Option<String>,
    namespace: Option<String>,
    consul: Option<ConsulSection>,
    etcd3: Option<EtcdSection>,
    /// Patroni's etcd v2 client; the same keys as `etcd3:`.
    etcd: Option<EtcdSection>,
    restapi: Option<RestApiSection>,
    #[serde(default)]
    ctl: CtlSection,
}

#[derive(Debug, Deserialize)]
struct RestApiSection {
    listen: Option<String>,
    connect_address: Option<String>,
    authentication: Option<Authentication>,
    certfile: Option<PathBuf>,
    cafile: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
struct CtlSection {
    authentication: Option<Authentication>,
    #[serde(default)]
    insecure: bool,
    cacert: Option<PathBuf>,
    certfile: Option<PathBuf>,
    keyfile: Option<PathBuf>,
}

/// Patroni's `consul:` section, the fields that say how to reach the agent.
#[derive(Debug, Deserialize)]
struct ConsulSection {
    host: Option<String>,
    url: Option<String>,
    port: Option<u16>,
    scheme: Option<String>,
    token: Option<String>,
    verify: Option<bool>,
    cacert: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

impl ConsulSection {
    /// As Patroni reads it: `url`, else `scheme://host[:port]` (port 8500 by default).
    fn settings(
        self,
        base: &Path,
        namespace: Option<&str>,
        timeouts: Timeouts,
    ) -> Result<ConsulSettings, String> {
        let https = self.scheme.as_deref() == Some("https");
        let host = self.host.unwrap_or_else(|| "127.0.0.1".into());
        let host = if host.contains(':') {
            host
        } else {
            format!("{host}:{}", self.port.unwrap_or(8500))
        };
        let address = super::consul::address(
            self.url.as_deref().unwrap_or(&host),
            https,
            super::consul::PATRONI_TOKEN,
        )?;
        Ok(ConsulSettings {
            addresses: vec![address],
            token: self.token.map(Secret::new),
            tls: TlsSettings {
                ca_file: self.cacert.map(|file| resolve_path(base, &file)),
                client_cert: self.cert.map(|file| resolve_path(base, &file)),
                client_key: self.key.map(|file| resolve_path(base, &file)),
                verify: self.verify.unwrap_or(true),
            },
            connect_timeout: timeouts.connect,
            request_timeout: timeouts.request,
            namespace: namespace.unwrap_or("service").trim_matches('/').to_string(),
            service: None,
        })
    }
}

/// Patroni's `etcd3:` (or `etcd:`) section, the fields that say how to reach etcd.
#[derive(Debug, Deserialize)]
struct EtcdSection {
    host: Option<String>,
    hosts: Option<EtcdHosts>,
    /// The default port of `host` and `hosts` entries without one (default 2379).
    port: Option<u16>,
    url: Option<String>,
    proxy: Option<String>,
    protocol: Option<String>,
    username: Option<String>,
    password: Option<String>,
    cacert: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    srv: Option<String>,
    discovery_srv: Option<String>,
    srv_domain: Option<String>,
}

/// `hosts`: a YAML list, or one comma-separated string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum EtcdHosts {
    List(Vec<String>),
    Text(String),
}

impl EtcdSection {
    /// As Patroni reads it: `proxy`, else `url`, else `hosts`, else `host`; `protocol` for the
    /// hosts. Errors name the field after the section's name (`.hosts`).
    fn settings(
        self,
        section: &str,
        base: &Path,
        namespace: Option<&str>,
        timeouts: Timeouts,
    ) -> Result<EtcdSettings, (&'static str, String)> {
        let https = match self.protocol.as_deref() {
            None | Some("http") => false,
            Some("https") => true,
            Some(other) => return Err((".protocol", format!("{other:?} is not http or https"))),
        };
        let instead =
            format!("etcd's credentials belong in {section}.username and {section}.password");
        let port = self.port.unwrap_or(super::etcd::DEFAULT_PORT);
        let endpoint = |host: &str| super::etcd::endpoint(host.trim(), https, port, &instead);
        let (field, endpoints) = if let Some(proxy) = &self.proxy {
            (".proxy", endpoint(proxy).map(|url| vec![url]))
        } else if let Some(url) = &self.url {
            (".url", endpoint(url).map(|url| vec![url]))
        } else if let Some(hosts) = &self.hosts {
            let hosts: Vec<&str> = match hosts {
                EtcdHosts::List(list) => list.iter().map(String::as_str).collect(),
                EtcdHosts::Text(text) => text.split(',').collect(),
            };
            let hosts: Vec<&str> = hosts
                .into_iter()
                .filter(|host| !host.trim().is_empty())
                .collect();
            if hosts.is_empty() {
                return Err((".hosts", "names no endpoint".into()));
            }
            (".hosts", hosts.into_iter().map(endpoint).collect())
        } else if let Some(host) = &self.host {
            (".host", endpoint(host).map(|url| vec![url]))
        } else if self.srv.is_some() || self.discovery_srv.is_some() || self.srv_domain.is_some() {
            return Err((
                ".srv",
                "pgha does not look up DNS SRV records: name the endpoints in host, hosts or url"
                    .into(),
            ));
        } else {
            return Err(("", "names no host, hosts, url or proxy".into()));
        };
        let endpoints = endpoints.map_err(|reason| (field, reason))?;
        if self.password.is_some() && self.username.is_none() {
            return Err((
                ".username",
                "missing: a password is set but no username".into(),
            ));
        }
        Ok(EtcdSettings {
            endpoints,
            password: self.password.map(Secret::new),
            username: self.username,
            tls: TlsSettings {
                ca_file: self.cacert.map(|file| resolve_path(base, &file)),
                client_cert: self.cert.map(|file| resolve_path(base, &file)),
                client_key: self.key.map(|file| resolve_path(base, &file)),
                verify: true,
            },
            connect_timeout: timeouts.connect,
            request_timeout: timeouts.request,
            namespace: namespace.map_or_else(
                || super::etcd::DEFAULT_NAMESPACE.to_string(),
                super::etcd::normalise_namespace,
            ),
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
struct Authentication {
    username: String,
    password: String,
}

pub(super) fn load(path: &Path, selector: &Selector) -> Result<Seed, InventoryError> {
    load_with(path, selector, &super::process_env)
}

/// `load`, reading the environment through `env`.
pub(super) fn load_with(
    path: &Path,
    selector: &Selector,
    env: Env<'_>,
) -> Result<Seed, InventoryError> {
    let text = std::fs::read_to_string(path).map_err(|error| InventoryError::Read {
        path: path.to_path_buf(),
        reason: error.to_string(),
    })?;
    let file: PatroniFile = parse_yaml(path, &text)?;
    let invalid = |field: &str, reason: &str| InventoryError::Invalid {
        path: path.to_path_buf(),
        field: field.into(),
        reason: reason.into(),
    };
    let restapi = file
        .restapi
        .ok_or_else(|| invalid("restapi", "missing: pgha needs the REST API's address"))?;
    let (address_field, address) = match (&restapi.connect_address, &restapi.listen) {
        (Some(address), _) => ("restapi.connect_address", address.clone()),
        (None, Some(listen)) => ("restapi.listen", wildcard_to_loopback(listen)),
        (None, None) => {
            return Err(invalid(
                "restapi.connect_address",
                "missing (and no restapi.listen)",
            ));
        }
    };
    let base = super::base_dir(path);
    let scheme = if restapi.certfile.is_some() {
        "https"
    } else {
        "http"
    };
    let url = format!("{scheme}://{address}");
    crate::web::refuse_userinfo(
        &url,
        "Patroni's REST credentials belong in restapi.authentication or ctl.authentication",
    )
    .map_err(|reason| invalid(address_field, &reason))?;
    let rest = rest_settings(file.ctl, restapi, &base, selector);
    let timeouts = Timeouts {
        connect: rest.connect_timeout,
        request: rest.request_timeout,
    };
    let etcd = etcd_settings(
        file.etcd3,
        file.etcd,
        file.consul.is_some(),
        file.namespace.as_deref(),
        &base,
        timeouts,
        env,
        &invalid,
    )?;
    let consul = consul_settings(
        file.consul,
        file.namespace.as_deref(),
        &base,
        timeouts,
        env,
        &invalid,
    )?;
    Ok(Seed {
        url,
        scope: file.scope,
        rest,
        consul,
        etcd,
        origin: path.display().to_string(),
    })
}

/// How pgha reaches the REST API as patronictl would: `ctl:` first, then `restapi:`.
fn rest_settings(
    ctl: CtlSection,
    restapi: RestApiSection,
    base: &Path,
    selector: &Selector,
) -> RestSettings {
    let auth = ctl
        .authentication
        .or(restapi.authentication)
        .map(|authentication| BasicAuth {
            username: authentication.username,
            password: Secret::new(authentication.password),
        });
    let has_client_cert = ctl.certfile.is_some();
    let defaults = RestSettings::default();
    RestSettings {
        auth,
        tls: TlsSettings {
            ca_file: ctl
                .cacert
                .or(restapi.cafile)
                .map(|ca| resolve_path(base, &ca)),
            client_cert: ctl.certfile.map(|cert| resolve_path(base, &cert)),
            client_key: ctl.keyfile.map(|key| resolve_path(base, &key)),
            verify: has_client_cert || !ctl.insecure,
        },
        connect_timeout: selector.connect_timeout.unwrap_or(defaults.connect_timeout),
        request_timeout: selector.request_timeout.unwrap_or(defaults.request_timeout),
        write_timeout: defaults.write_timeout,
    }
}

/// The Consul agent Patroni uses: its `consul:` section, else the environment's.
fn consul_settings(
    section: Option<ConsulSection>,
    namespace: Option<&str>,
    base: &Path,
    timeouts: Timeouts,
    env: Env<'_>,
    invalid: &dyn Fn(&str, &str) -> InventoryError,
) -> Result<Option<ConsulSettings>, InventoryError> {
    match section {
        Some(section) => {
            let field = if section.url.is_some() {
                "consul.url"
            } else {
                "consul.host"
            };
            section
                .settings(base, namespace, timeouts)
                .map(Some)
                .map_err(|reason| invalid(field, &reason))
        }
        None => super::consul::from_environment(timeouts, env),
    }
}

/// The etcd Patroni uses: its `etcd3:` section, else the environment's (`ETCDCTL_ENDPOINTS`)
/// unless the file says Consul or `etcd:`. Patroni's `etcd:` section speaks etcd's v2 API, whose
/// keys live apart from v3's: pgha, reading v3, would find the cluster empty and a tree delete
/// would delete nothing. Such a cluster is seen through its members' REST APIs only.
#[allow(clippy::too_many_arguments)]
fn etcd_settings(
    etcd3: Option<EtcdSection>,
    etcd2: Option<EtcdSection>,
    consul_declared: bool,
    namespace: Option<&str>,
    base: &Path,
    timeouts: Timeouts,
    env: Env<'_>,
    invalid: &dyn Fn(&str, &str) -> InventoryError,
) -> Result<Option<EtcdSettings>, InventoryError> {
    let (name, section) = match (etcd3, etcd2) {
        (Some(section), _) => ("etcd3", section),
        (None, Some(_)) => {
            tracing::warn!(
                "Patroni's `etcd:` section uses etcd's v2 API, whose keys pgha does not read (only `etcd3:`'s): the cluster is seen through its members' REST APIs only"
            );
            return Ok(None);
        }
        (None, None) if consul_declared => return Ok(None),
        (None, None) => return super::etcd::from_environment(timeouts, env),
    };
    section
        .settings(name, base, namespace, timeouts)
        .map(Some)
        .map_err(|(field, reason)| invalid(&format!("{name}{field}"), &reason))
}

/// `listen: 0.0.0.0:8008` is not an address to connect to; this machine is.
fn wildcard_to_loopback(listen: &str) -> String {
    match listen.rsplit_once(':') {
        Some(("0.0.0.0" | "" | "*" | "::" | "[::]", port)) => format!("127.0.0.1:{port}"),
        _ => listen.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::wildcard_to_loopback;

    #[test]
    fn wildcard_listen_addresses_become_loopback() {
        assert_eq!(wildcard_to_loopback("0.0.0.0:8008"), "127.0.0.1:8008");
        assert_eq!(wildcard_to_loopback(":8008"), "127.0.0.1:8008");
        assert_eq!(wildcard_to_loopback("10.0.0.1:8008"), "10.0.0.1:8008");
    }
}
