//! Consul settings, resolved the Consul way: the inventory's `dcs:` section first, then the
//! variables the `consul` CLI reads (`CONSUL_HTTP_ADDR`, `CONSUL_HTTP_TOKEN`,
//! `CONSUL_HTTP_TOKEN_FILE`, `CONSUL_HTTP_SSL`, `CONSUL_HTTP_SSL_VERIFY`, `CONSUL_CACERT`,
//! `CONSUL_CLIENT_CERT`, `CONSUL_CLIENT_KEY`), then the agent's defaults. The token is read
//! here and nowhere else, and only its source is ever shown; an address carrying credentials
//! (`user:password@`) is refused.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::file::{DcsFile, Scheme};
use super::{Context, Env, InventoryError, Timeouts, resolve_path};
use crate::consul::ConsulSettings;
use crate::patroni::TlsSettings;
use crate::secret::Secret;

/// Where the token belongs, for an address refused because it carries credentials.
pub(super) const INVENTORY_TOKEN: &str = "the token belongs in dcs.token_env or dcs.token_file";
const ENV_TOKEN: &str = "the token belongs in CONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE";
pub(super) const PATRONI_TOKEN: &str = "the token belongs in consul.token";

pub(super) fn from_inventory(
    context: &Context<'_>,
    base: &Path,
    dcs: &DcsFile,
    timeouts: Timeouts,
    env: Env<'_>,
) -> Result<ConsulSettings, InventoryError> {
    let field = |name: &str| format!("{}.dcs.{name}", context.field);
    let invalid = |name: &str, reason: String| InventoryError::Invalid {
        path: context.path.to_path_buf(),
        field: field(name),
        reason,
    };
    let https = match dcs.scheme {
        Some(scheme) => scheme == Scheme::Https,
        None => env_https(env),
    };
    let (hosts, hosts_field, instead) = if dcs.hosts.is_empty() {
        let host = env("CONSUL_HTTP_ADDR").unwrap_or_else(|| "127.0.0.1:8500".into());
        (vec![host], "hosts (empty: CONSUL_HTTP_ADDR)", ENV_TOKEN)
    } else {
        (dcs.hosts.clone(), "hosts", INVENTORY_TOKEN)
    };
    let addresses = hosts
        .iter()
        .map(|host| address(host, https, instead))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|reason| invalid(hosts_field, reason))?;
    if dcs.token_env.is_some() && dcs.token_file.is_some() {
        return Err(invalid(
            "token_env",
            "token_env and token_file are both set: keep one".into(),
        ));
    }
    let token = match (&dcs.token_env, &dcs.token_file) {
        (Some(variable), _) => Some(env(variable).map(Secret::new).ok_or_else(|| {
            InventoryError::SecretVariableMissing {
                path: context.path.to_path_buf(),
                field: field("token_env"),
                variable: variable.clone(),
            }
        })?),
        (None, Some(file)) => Some(read_token(&resolve_path(base, file)).map_err(|reason| {
            InventoryError::SecretFile {
                path: context.path.to_path_buf(),
                field: field("token_file"),
                secret_path: resolve_path(base, file),
                reason,
            }
        })?),
        (None, None) => env_token(env).map_err(|reason| invalid("token_file", reason))?,
    };
    let tls = match &dcs.tls {
        Some(tls) => TlsSettings {
            ca_file: tls.ca_file.as_ref().map(|file| resolve_path(base, file)),
            client_cert: tls.cert_file.as_ref().map(|file| resolve_path(base, file)),
            client_key: tls.key_file.as_ref().map(|file| resolve_path(base, file)),
            verify: tls.verify.unwrap_or(true),
        },
        None => env_tls(env),
    };
    let namespace = dcs
        .namespace
        .as_deref()
        .unwrap_or("service")
        .trim_matches('/');
    if namespace.is_empty() {
        return Err(invalid("namespace", "must not be empty".into()));
    }
    Ok(ConsulSettings {
        addresses,
        token,
        tls,
        connect_timeout: timeouts.connect,
        request_timeout: timeouts.request,
        namespace: namespace.to_string(),
        service: dcs.service.clone(),
    })
}

/// Consul from the environment alone (`--api`, `--patroni-config` without a `consul:`
/// section): only when `CONSUL_HTTP_ADDR` says where the agent is. An address pgha cannot use
/// (a unix socket, for the `consul` CLI) leaves Consul out; one carrying credentials is refused.
pub(super) fn from_environment(
    timeouts: Timeouts,
    env: Env<'_>,
) -> Result<Option<ConsulSettings>, InventoryError> {
    let Some(host) = env("CONSUL_HTTP_ADDR") else {
        return Ok(None);
    };
    crate::web::refuse_userinfo(&host, ENV_TOKEN).map_err(|reason| InventoryError::Variable {
        variable: "CONSUL_HTTP_ADDR",
        reason,
    })?;
    let Ok(address) = address(&host, env_https(env), ENV_TOKEN) else {
        return Ok(None);
    };
    Ok(Some(ConsulSettings {
        addresses: vec![address],
        token: env_token(env).ok().flatten(),
        tls: env_tls(env),
        connect_timeout: timeouts.connect,
        request_timeout: timeouts.request,
        namespace: "service".into(),
        service: None,
    }))
}

/// `host:port` or a URL, as an `http(s)://host:port` base URL; `instead` says where the token
/// belongs if the address carries credentials.
pub(super) fn address(host: &str, https: bool, instead: &str) -> Result<String, String> {
    let url = if host.contains("://") {
        host.to_string()
    } else {
        format!("{}://{host}", if https { "https" } else { "http" })
    };
    // First: the messages below show the address.
    crate::web::refuse_userinfo(&url, instead)?;
    let parsed =
        url::Url::parse(&url).map_err(|error| format!("{host:?} is not an address: {error}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!(
            "{host:?}: pgha talks to Consul over http:// or https:// (not unix sockets)"
        ));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// Patroni's service name for a scope (`service_name_from_scope_name`): lower case, `.`, ` `
/// and `_` become `-`, other characters `uNNNN`, at most 230 characters.
pub fn patroni_service_name(scope: &str) -> String {
    let mut name = String::new();
    for character in scope.to_lowercase().chars() {
        if character.is_ascii_lowercase() || character.is_ascii_digit() || character == '-' {
            name.push(character);
        } else if ". _".contains(character) {
            name.push('-');
        } else {
            let _ = write!(name, "u{:04}", u32::from(character));
        }
    }
    name.chars().take(230).collect()
}

fn env_https(env: Env<'_>) -> bool {
    env("CONSUL_HTTP_SSL").is_some_and(|value| matches!(value.as_str(), "1" | "true" | "TRUE"))
}

fn env_token(env: Env<'_>) -> Result<Option<Secret>, String> {
    if let Some(token) = env("CONSUL_HTTP_TOKEN") {
        return Ok(Some(Secret::new(token)));
    }
    match env("CONSUL_HTTP_TOKEN_FILE") {
        Some(file) => read_token(Path::new(&file))
            .map(|token| Some(Secret::new(token.expose())))
            .map_err(|reason| format!("CONSUL_HTTP_TOKEN_FILE {file}: {reason}")),
        None => Ok(None),
    }
}

fn env_tls(env: Env<'_>) -> TlsSettings {
    TlsSettings {
        ca_file: env("CONSUL_CACERT").map(PathBuf::from),
        client_cert: env("CONSUL_CLIENT_CERT").map(PathBuf::from),
        client_key: env("CONSUL_CLIENT_KEY").map(PathBuf::from),
        verify: env("CONSUL_HTTP_SSL_VERIFY")
            .is_none_or(|value| !matches!(value.as_str(), "0" | "false" | "FALSE")),
    }
}

fn read_token(path: &Path) -> Result<Secret, String> {
    std::fs::read_to_string(path)
        .map(|text| Secret::new(text.trim()))
        .map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {

    use super::*;

    use super::super::env_testing::{TIMEOUTS, env_of};

    fn dcs(yaml_hosts: &[&str]) -> DcsFile {
        DcsFile {
            kind: crate::inventory::DcsKind::Consul,
            hosts: yaml_hosts.iter().map(|host| (*host).to_string()).collect(),
            scheme: None,
            token_env: None,
            token_file: None,
            username: None,
            password_env: None,
            password_file: None,
            tls: None,
            namespace: None,
            service: None,
        }
    }

    fn resolve(dcs: &DcsFile, env: Env<'_>) -> Result<ConsulSettings, InventoryError> {
        let path = Path::new("/etc/pgha/pgha.yml");
        let context = Context::new(path, "production", "main-db");
        from_inventory(&context, Path::new("/etc/pgha"), dcs, TIMEOUTS, env)
    }

    #[test]
    fn the_inventory_wins_and_the_consul_variables_fill_the_gaps() {
        let env = env_of(&[
            ("CONSUL_HTTP_ADDR", "10.9.9.9:8500"),
            ("CONSUL_HTTP_TOKEN", "from-env"),
            ("CONSUL_CACERT", "/etc/consul/ca.pem"),
        ]);
        let settings = resolve(&dcs(&["10.0.0.5:8500"]), &env).unwrap();
        assert_eq!(settings.addresses, ["http://10.0.0.5:8500"]);
        assert_eq!(settings.token.unwrap().expose(), "from-env");
        assert_eq!(
            settings.tls.ca_file.as_deref(),
            Some(Path::new("/etc/consul/ca.pem"))
        );
        let settings = resolve(&dcs(&[]), &env).unwrap();
        assert_eq!(settings.addresses, ["http://10.9.9.9:8500"]);
        let nothing = env_of(&[]);
        let settings = resolve(&dcs(&[]), &nothing).unwrap();
        assert_eq!(settings.addresses, ["http://127.0.0.1:8500"]);
        assert!(settings.token.is_none());
        assert_eq!(settings.cluster_prefix("geo"), "service/geo/");
    }

    #[test]
    fn https_comes_from_the_scheme_or_consul_http_ssl() {
        let env = env_of(&[("CONSUL_HTTP_SSL", "true")]);
        let settings = resolve(&dcs(&["consul.example:8501"]), &env).unwrap();
        assert_eq!(settings.addresses, ["https://consul.example:8501"]);
        let mut explicit = dcs(&["consul.example:8500"]);
        explicit.scheme = Some(Scheme::Http);
        assert_eq!(
            resolve(&explicit, &env).unwrap().addresses,
            ["http://consul.example:8500"]
        );
    }

    #[test]
    fn a_named_token_variable_must_exist_and_is_never_shown() {
        let mut named = dcs(&["127.0.0.1:8500"]);
        named.token_env = Some("PROD_CONSUL_TOKEN".into());
        let message = resolve(&named, &env_of(&[])).unwrap_err().to_string();
        assert!(
            message.contains("environments.production.clusters.main-db.dcs.token_env"),
            "{message}"
        );
        assert!(message.contains("PROD_CONSUL_TOKEN"), "{message}");
        let env = env_of(&[("PROD_CONSUL_TOKEN", "t0k3n")]);
        let settings = resolve(&named, &env).unwrap();
        assert_eq!(settings.token.as_ref().unwrap().expose(), "t0k3n");
        assert!(!format!("{settings:?}").contains("t0k3n"));
    }

    #[test]
    fn unix_sockets_and_garbage_are_refused_with_the_field() {
        let message = resolve(&dcs(&["unix:///var/run/consul.sock"]), &env_of(&[]))
            .unwrap_err()
            .to_string();
        assert!(message.contains("dcs.hosts"), "{message}");
        assert!(message.contains("not unix sockets"), "{message}");
    }

    #[test]
    fn credentials_in_consul_http_addr_are_refused_and_never_shown() {
        let env = env_of(&[("CONSUL_HTTP_ADDR", "http://acl:s3cret@10.9.9.9:8500")]);
        let message = resolve(&dcs(&[]), &env).unwrap_err().to_string();
        assert!(
            message.contains("dcs.hosts (empty: CONSUL_HTTP_ADDR): \"http://***@10.9.9.9:8500\""),
            "{message}"
        );
        assert!(!message.contains("s3cret"), "{message}");
        let message = from_environment(TIMEOUTS, &env).unwrap_err().to_string();
        assert!(
            message.starts_with(
                "CONSUL_HTTP_ADDR: \"http://***@10.9.9.9:8500\": no credentials in URLs"
            ),
            "{message}"
        );
        assert!(!message.contains("s3cret"), "{message}");
    }

    #[test]
    fn only_consul_http_addr_turns_consul_on_without_an_inventory() {
        assert!(from_environment(TIMEOUTS, &env_of(&[])).unwrap().is_none());
        let settings =
            from_environment(TIMEOUTS, &env_of(&[("CONSUL_HTTP_ADDR", "https://c:8501")]))
                .unwrap()
                .unwrap();
        assert_eq!(settings.addresses, ["https://c:8501"]);
    }

    #[test]
    fn service_names_follow_patroni() {
        assert_eq!(patroni_service_name("pg-ha-cluster"), "pg-ha-cluster");
        assert_eq!(patroni_service_name("Geo_Main.db"), "geo-main-db");
        assert_eq!(patroni_service_name("a+b"), "au0043b");
    }
}
