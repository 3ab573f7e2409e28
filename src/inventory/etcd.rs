//! etcd settings, resolved the etcdctl way: the inventory's `dcs:` section (`kind: etcd`)
//! first, else the variables `etcdctl` reads (`ETCDCTL_ENDPOINTS`, `ETCDCTL_CACERT`,
//! `ETCDCTL_CERT`, `ETCDCTL_KEY`, `ETCDCTL_USER`, `ETCDCTL_PASSWORD`,
//! `ETCDCTL_INSECURE_SKIP_TLS_VERIFY`), and only when `ETCDCTL_ENDPOINTS` says where etcd is.
//! Patroni's own `etcd3:` section is read by `patroni_config`, with `endpoint` from here.
//!
//! Unlike Consul's, a `dcs:` section of kind etcd is the whole truth: the `ETCDCTL_*` variables
//! describe whichever etcd etcdctl points at, and etcd's credentials are not sent to hosts they
//! were not given for (an etcd without authentication refuses to authenticate anyone, too). The
//! password is read here and nowhere else, and only its source is ever shown; an endpoint
//! carrying credentials (`user:password@`) is refused.

use std::path::{Path, PathBuf};

use super::file::{DcsFile, Scheme};
use super::{Context, Env, InventoryError, Timeouts, resolve_path};
use crate::etcd::EtcdSettings;
use crate::patroni::TlsSettings;
use crate::secret::Secret;

/// Where etcd's credentials belong, for an endpoint refused because it carries some.
pub(super) const INVENTORY_CREDENTIALS: &str =
    "etcd's credentials belong in dcs.username with dcs.password_env or dcs.password_file";
const ENV_CREDENTIALS: &str = "etcd's credentials belong in ETCDCTL_USER and ETCDCTL_PASSWORD";

/// etcd's client port, for a host given without one (as Patroni does).
pub(super) const DEFAULT_PORT: u16 = 2379;
/// Patroni's default namespace.
pub(super) const DEFAULT_NAMESPACE: &str = "/service";

pub(super) fn from_inventory(
    context: &Context<'_>,
    base: &Path,
    dcs: &DcsFile,
    timeouts: Timeouts,
    env: Env<'_>,
) -> Result<EtcdSettings, InventoryError> {
    let field = |name: &str| format!("{}.dcs.{name}", context.field);
    let invalid = |name: &str, reason: String| InventoryError::Invalid {
        path: context.path.to_path_buf(),
        field: field(name),
        reason,
    };
    // Checked when the file is read too; here so this never builds settings without them.
    if dcs.hosts.is_empty() {
        return Err(invalid("hosts", NO_HOSTS.into()));
    }
    let https = match dcs.scheme {
        Some(scheme) => scheme == Scheme::Https,
        None => dcs.tls.is_some(),
    };
    let endpoints = dcs
        .hosts
        .iter()
        .map(|host| endpoint(host, https, DEFAULT_PORT, INVENTORY_CREDENTIALS))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|reason| invalid("hosts", reason))?;
    let password = match (&dcs.username, &dcs.password_env, &dcs.password_file) {
        (None, _, _) => None,
        (Some(_), Some(variable), _) => Some(env(variable).map(Secret::new).ok_or_else(|| {
            InventoryError::SecretVariableMissing {
                path: context.path.to_path_buf(),
                field: field("password_env"),
                variable: variable.clone(),
            }
        })?),
        (Some(_), None, Some(file)) => {
            let secret_path = resolve_path(base, file);
            Some(
                read_password(&secret_path).map_err(|reason| InventoryError::SecretFile {
                    path: context.path.to_path_buf(),
                    field: field("password_file"),
                    secret_path: secret_path.clone(),
                    reason,
                })?,
            )
        }
        (Some(_), None, None) => {
            return Err(invalid(
                "username",
                "is set but no password_env or password_file".into(),
            ));
        }
    };
    let tls = match &dcs.tls {
        Some(tls) => TlsSettings {
            ca_file: tls.ca_file.as_ref().map(|file| resolve_path(base, file)),
            client_cert: tls.cert_file.as_ref().map(|file| resolve_path(base, file)),
            client_key: tls.key_file.as_ref().map(|file| resolve_path(base, file)),
            verify: tls.verify.unwrap_or(true),
        },
        None => TlsSettings {
            verify: true,
            ..TlsSettings::default()
        },
    };
    let namespace = match &dcs.namespace {
        Some(namespace) => {
            check_namespace(namespace).map_err(|reason| invalid("namespace", reason))?;
            normalise_namespace(namespace)
        }
        None => DEFAULT_NAMESPACE.into(),
    };
    Ok(EtcdSettings {
        endpoints,
        username: dcs.username.clone(),
        password,
        tls,
        connect_timeout: timeouts.connect,
        request_timeout: timeouts.request,
        namespace,
    })
}

/// Why a `dcs:` section of kind etcd names no endpoint.
pub(super) const NO_HOSTS: &str =
    "kind etcd needs at least one endpoint (host:port or an http(s):// URL)";

/// An inventory's namespace is written as Patroni's keys show it: `/service`.
pub(super) fn check_namespace(namespace: &str) -> Result<(), String> {
    if namespace.starts_with('/') {
        Ok(())
    } else {
        Err(format!(
            "{namespace:?} must start with '/', as Patroni's keys in etcd do (/{})",
            namespace.trim_end_matches('/')
        ))
    }
}

/// Patroni's namespace as its keys start: a leading `/`, no trailing one, no doubled ones
/// (Patroni joins `/`, the namespace and the scope, then squeezes the slashes). `/` alone is
/// the empty namespace: keys at `/<scope>/`.
pub(super) fn normalise_namespace(namespace: &str) -> String {
    namespace
        .split('/')
        .filter(|part| !part.is_empty())
        .fold(String::new(), |path, part| format!("{path}/{part}"))
}

/// etcd from the environment alone, the etcdctl way: only when `ETCDCTL_ENDPOINTS` says where
/// etcd is. Endpoints pgha cannot use (unix sockets, which etcdctl can) leave etcd out; one
/// carrying credentials is refused.
pub(super) fn from_environment(
    timeouts: Timeouts,
    env: Env<'_>,
) -> Result<Option<EtcdSettings>, InventoryError> {
    let Some(list) = env("ETCDCTL_ENDPOINTS") else {
        return Ok(None);
    };
    let variable_error = |reason: String| InventoryError::Variable {
        variable: "ETCDCTL_ENDPOINTS",
        reason,
    };
    let tls = env_tls(env);
    // etcd's client: an endpoint without a scheme is secure when TLS files are given.
    let https = tls.ca_file.is_some() || tls.client_cert.is_some();
    let mut endpoints = Vec::new();
    for text in list
        .split(',')
        .map(str::trim)
        .filter(|text| !text.is_empty())
    {
        crate::web::refuse_userinfo(text, ENV_CREDENTIALS).map_err(variable_error)?;
        if text.starts_with("unix://") || text.starts_with("unixs://") {
            return Ok(None);
        }
        endpoints
            .push(endpoint(text, https, DEFAULT_PORT, ENV_CREDENTIALS).map_err(variable_error)?);
    }
    if endpoints.is_empty() {
        return Err(variable_error("names no endpoint".into()));
    }
    let (username, password) = env_credentials(env)?;
    Ok(Some(EtcdSettings {
        endpoints,
        username,
        password,
        tls,
        connect_timeout: timeouts.connect,
        request_timeout: timeouts.request,
        namespace: DEFAULT_NAMESPACE.into(),
    }))
}

/// `host[:port]` or a URL, as an `http(s)://host:port` base URL without a trailing slash; a
/// host without a port gets `default_port`. `instead` says where credentials belong if the
/// endpoint carries some.
pub(super) fn endpoint(
    host: &str,
    https: bool,
    default_port: u16,
    instead: &str,
) -> Result<String, String> {
    let bare = !host.contains("://");
    let url = if bare {
        let scheme = if https { "https" } else { "http" };
        let has_port = if host.starts_with('[') {
            host.contains("]:")
        } else {
            host.contains(':')
        };
        if has_port {
            format!("{scheme}://{host}")
        } else {
            format!("{scheme}://{host}:{default_port}")
        }
    } else {
        host.to_string()
    };
    // First: the messages below show the endpoint.
    crate::web::refuse_userinfo(&url, instead)?;
    let parsed =
        url::Url::parse(&url).map_err(|error| format!("{host:?} is not an endpoint: {error}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!(
            "{host:?}: pgha talks to etcd over http:// or https:// (not unix sockets)"
        ));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// `ETCDCTL_USER` is `user:password`, or the user alone with `ETCDCTL_PASSWORD` (then the whole
/// of `ETCDCTL_USER` is the name, as in etcdctl). pgha never prompts for a password.
fn env_credentials(env: Env<'_>) -> Result<(Option<String>, Option<Secret>), InventoryError> {
    match (env("ETCDCTL_USER"), env("ETCDCTL_PASSWORD")) {
        (None, None) => Ok((None, None)),
        (None, Some(_)) => Err(InventoryError::Variable {
            variable: "ETCDCTL_PASSWORD",
            reason: "is set but ETCDCTL_USER is not: name the user too".into(),
        }),
        (Some(user), Some(password)) => Ok((Some(user), Some(Secret::new(password)))),
        (Some(user), None) => match user.split_once(':') {
            Some((name, password)) if !name.is_empty() => {
                Ok((Some(name.to_string()), Some(Secret::new(password))))
            }
            // Never shown: the text may be a password.
            _ => Err(InventoryError::Variable {
                variable: "ETCDCTL_USER",
                reason: "is not user:password, and ETCDCTL_PASSWORD is not set (pgha does not prompt for a password)".into(),
            }),
        },
    }
}

fn env_tls(env: Env<'_>) -> TlsSettings {
    TlsSettings {
        ca_file: env("ETCDCTL_CACERT").map(PathBuf::from),
        client_cert: env("ETCDCTL_CERT").map(PathBuf::from),
        client_key: env("ETCDCTL_KEY").map(PathBuf::from),
        // etcdctl reads it as a Go boolean.
        verify: env("ETCDCTL_INSECURE_SKIP_TLS_VERIFY").is_none_or(|value| {
            !matches!(value.as_str(), "1" | "t" | "T" | "true" | "TRUE" | "True")
        }),
    }
}

/// A password file, without the newline editors and `echo` end it with.
fn read_password(path: &Path) -> Result<Secret, String> {
    std::fs::read_to_string(path)
        .map(|text| Secret::new(text.trim_end_matches(['\r', '\n'])))
        .map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    use super::super::env_testing::{TIMEOUTS, env_of};

    #[test]
    fn endpoints_get_a_scheme_and_etcds_port() {
        let endpoint = |host: &str, https: bool| endpoint(host, https, DEFAULT_PORT, "x");
        assert_eq!(endpoint("10.0.0.5", false).unwrap(), "http://10.0.0.5:2379");
        assert_eq!(
            endpoint("10.0.0.5:80", false).unwrap(),
            "http://10.0.0.5:80"
        );
        assert_eq!(
            endpoint("etcd.example", true).unwrap(),
            "https://etcd.example:2379"
        );
        assert_eq!(endpoint("[::1]", false).unwrap(), "http://[::1]:2379");
        assert_eq!(endpoint("[::1]:2381", false).unwrap(), "http://[::1]:2381");
        assert_eq!(
            endpoint("https://e:2379/", false).unwrap(),
            "https://e:2379"
        );
        let message = endpoint("unix:///run/etcd.sock", false).unwrap_err();
        assert!(message.contains("not unix sockets"), "{message}");
        let message = endpoint("root:s3cret@e:2379", false).unwrap_err();
        assert!(message.contains("no credentials in URLs"), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
    }

    #[test]
    fn namespaces_are_normalised_like_patronis_keys() {
        assert_eq!(normalise_namespace("/service"), "/service");
        assert_eq!(normalise_namespace("/service/"), "/service");
        assert_eq!(normalise_namespace("//db//ha/"), "/db/ha");
        assert_eq!(normalise_namespace("service"), "/service");
        assert_eq!(normalise_namespace("/"), "");
        assert!(check_namespace("service").is_err());
        assert!(check_namespace("/service").is_ok());
    }

    #[test]
    fn only_etcdctl_endpoints_turns_etcd_on_from_the_environment() {
        let without = env_of(&[("ETCDCTL_USER", "root:pw"), ("ETCDCTL_CACERT", "/ca.pem")]);
        assert!(from_environment(TIMEOUTS, &without).unwrap().is_none());
        let socket = env_of(&[("ETCDCTL_ENDPOINTS", "unix://localhost:2379")]);
        assert!(from_environment(TIMEOUTS, &socket).unwrap().is_none());
        let message = from_environment(TIMEOUTS, &env_of(&[("ETCDCTL_ENDPOINTS", " , ")]))
            .unwrap_err()
            .to_string();
        assert_eq!(message, "ETCDCTL_ENDPOINTS: names no endpoint");
    }

    #[test]
    fn the_etcdctl_variables_give_endpoints_tls_and_credentials() {
        let env = env_of(&[
            ("ETCDCTL_ENDPOINTS", "https://e1:2379, e2:2379,e3"),
            ("ETCDCTL_CACERT", "/etc/etcd/ca.pem"),
            ("ETCDCTL_CERT", "/etc/etcd/client.pem"),
            ("ETCDCTL_KEY", "/etc/etcd/client.key"),
            ("ETCDCTL_USER", "root:pa:ss"),
            ("ETCDCTL_INSECURE_SKIP_TLS_VERIFY", "true"),
        ]);
        let settings = from_environment(TIMEOUTS, &env).unwrap().unwrap();
        assert_eq!(
            settings.endpoints,
            ["https://e1:2379", "https://e2:2379", "https://e3:2379"],
            "TLS files make bare endpoints https, as in etcd's client"
        );
        assert_eq!(settings.username.as_deref(), Some("root"));
        assert_eq!(
            settings.password.as_ref().unwrap().expose(),
            "pa:ss",
            "split at the first colon"
        );
        assert_eq!(
            settings.tls.ca_file.as_deref(),
            Some(Path::new("/etc/etcd/ca.pem"))
        );
        assert_eq!(
            settings.tls.client_key.as_deref(),
            Some(Path::new("/etc/etcd/client.key"))
        );
        assert!(!settings.tls.verify);
        assert_eq!(settings.namespace, "/service");
        assert_eq!(settings.connect_timeout, Duration::from_secs(2));
        assert_eq!(settings.request_timeout, Duration::from_secs(4));
        assert!(!format!("{settings:?}").contains("pa:ss"));

        let env = env_of(&[
            ("ETCDCTL_ENDPOINTS", "10.0.0.1:2379"),
            ("ETCDCTL_USER", "pgha:not-split"),
            ("ETCDCTL_PASSWORD", "s3cret"),
        ]);
        let settings = from_environment(TIMEOUTS, &env).unwrap().unwrap();
        assert_eq!(settings.endpoints, ["http://10.0.0.1:2379"]);
        assert!(settings.tls.verify);
        assert_eq!(
            settings.username.as_deref(),
            Some("pgha:not-split"),
            "with ETCDCTL_PASSWORD the user is taken whole, as etcdctl does"
        );
        assert_eq!(settings.password.unwrap().expose(), "s3cret");
    }

    #[test]
    fn incomplete_etcdctl_credentials_are_refused_without_showing_them() {
        let cases = [
            (
                vec![("ETCDCTL_USER", "root")],
                "ETCDCTL_USER: is not user:password, and ETCDCTL_PASSWORD is not set (pgha does not prompt for a password)",
            ),
            (
                vec![("ETCDCTL_USER", ":s3cret")],
                "ETCDCTL_USER: is not user:password",
            ),
            (
                vec![("ETCDCTL_PASSWORD", "s3cret")],
                "ETCDCTL_PASSWORD: is set but ETCDCTL_USER is not: name the user too",
            ),
            (
                vec![("ETCDCTL_ENDPOINTS", "http://root:s3cret@e1:2379")],
                "ETCDCTL_ENDPOINTS: \"http://***@e1:2379\": no credentials in URLs",
            ),
        ];
        for (mut pairs, expected) in cases {
            if !pairs.iter().any(|(name, _)| *name == "ETCDCTL_ENDPOINTS") {
                pairs.push(("ETCDCTL_ENDPOINTS", "e1:2379"));
            }
            let message = from_environment(TIMEOUTS, &env_of(&pairs))
                .unwrap_err()
                .to_string();
            assert!(
                message.starts_with(expected),
                "{message}\n  expected: {expected}"
            );
            assert!(!message.contains("s3cret"), "{message}");
        }
    }
}
