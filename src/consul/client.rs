//! The Consul HTTP client: health with `?passing`, KV reads, a guarded tree delete, sessions
//! and `acquire` for locks. One reqwest client, no proxies, no redirects (reqwest would carry
//! `X-Consul-Token` along), TLS verified unless the settings say otherwise, the token in
//! `X-Consul-Token`. A write is never retried: the next agent is tried only when the previous
//! one refused the connection (nothing was sent).

use std::fmt::Write as _;
use std::time::Duration;

use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

use super::model::{HealthEntryWire, KvWire, SessionCreated};
use super::{ConsulError, ConsulSettings, KvEntry, ServiceInstance};
use crate::patroni::{PatroniError, http_client};
use crate::secret::Secret;
use crate::ui::root_cause;
use crate::web::Redirect;

#[derive(Debug, Clone)]
pub struct ConsulClient {
    http: reqwest::Client,
    addresses: Vec<String>,
    token: Option<Secret>,
    request_timeout: Duration,
}

impl ConsulClient {
    pub fn new(settings: &ConsulSettings) -> Result<Self, ConsulError> {
        let http =
            http_client(&settings.tls, settings.connect_timeout).map_err(|error| match error {
                PatroniError::Certificate { path, reason } => {
                    ConsulError::Setup(format!("{}: {reason}", path.display()))
                }
                other => ConsulError::Setup(other.to_string()),
            })?;
        Self::with_http(settings, http)
    }

    /// Over an existing HTTP client built with the same TLS settings and connect timeout.
    pub fn with_http(
        settings: &ConsulSettings,
        http: reqwest::Client,
    ) -> Result<Self, ConsulError> {
        if settings.addresses.is_empty() {
            return Err(ConsulError::Setup("no Consul address".into()));
        }
        Ok(ConsulClient {
            http,
            addresses: settings
                .addresses
                .iter()
                .map(|address| address.trim_end_matches('/').to_string())
                .collect(),
            token: settings.token.clone(),
            request_timeout: settings.request_timeout,
        })
    }

    /// The agent asked first, for messages.
    pub fn address(&self) -> &str {
        &self.addresses[0]
    }

    /// Every instance of `service` with its checks; with `passing`, only those Consul itself
    /// counts as healthy (every check passing, node checks included).
    pub async fn health(
        &self,
        service: &str,
        tag: Option<&str>,
        passing: bool,
    ) -> Result<Vec<ServiceInstance>, ConsulError> {
        let mut query = Vec::new();
        if passing {
            query.push("passing".to_string());
        }
        if let Some(tag) = tag {
            query.push(format!("tag={}", encode(tag)));
        }
        let path = with_query(&format!("/v1/health/service/{}", encode(service)), &query);
        let entries: Vec<HealthEntryWire> = self.read_json(&path).await?.unwrap_or_default();
        Ok(entries.into_iter().map(ServiceInstance::from).collect())
    }

    /// The keys under `prefix` (none is an empty list, not an error).
    pub async fn keys(&self, prefix: &str) -> Result<Vec<String>, ConsulError> {
        let path = format!("/v1/kv/{}?keys", encode_key(prefix));
        Ok(self.read_json(&path).await?.unwrap_or_default())
    }

    pub async fn get(&self, key: &str) -> Result<Option<KvEntry>, ConsulError> {
        let path = format!("/v1/kv/{}", encode_key(key));
        let entries: Option<Vec<KvWire>> = self.read_json(&path).await?;
        let Some(wire) = entries.and_then(|entries| entries.into_iter().next()) else {
            return Ok(None);
        };
        let value = match wire.value {
            Some(text) => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|error| ConsulError::Invalid {
                        url: self.url(&path),
                        reason: format!("a value is not base64: {error}"),
                    })?,
            ),
            None => None,
        };
        Ok(Some(KvEntry {
            key: wire.key,
            value,
            session: wire.session.filter(|session| !session.is_empty()),
            modify_index: wire.modify_index,
        }))
    }

    /// Writes `value` to `key` only if its `ModifyIndex` is still `index` (Consul's `?cas=`):
    /// `patronictl edit-config`'s compare-and-set. False when it changed, and nothing was
    /// written.
    pub async fn compare_and_put(
        &self,
        key: &str,
        index: u64,
        value: &[u8],
    ) -> Result<bool, ConsulError> {
        let path = format!("/v1/kv/{}?cas={index}", encode_key(key));
        self.write_bool(Method::PUT, &path, Some(value.to_vec()))
            .await
    }

    /// Deletes every key under `prefix`, which must end with `/`: Consul deletes by plain
    /// string prefix, so `service/geo` would take `service/geo2/…` with it.
    pub async fn delete_tree(&self, prefix: &str) -> Result<(), ConsulError> {
        check_tree_prefix(prefix)?;
        let path = format!("/v1/kv/{}?recurse", encode_key(prefix));
        self.write_bool(Method::DELETE, &path, None)
            .await
            .map(|_| ())
    }

    /// A session that deletes what it holds when it ends, and ends `2 × ttl` after its last
    /// renewal (Consul's rule).
    pub async fn create_session(&self, name: &str, ttl: Duration) -> Result<String, ConsulError> {
        let body = serde_json::json!({
            "Name": name,
            "TTL": format!("{}s", ttl.as_secs().max(10)),
            "Behavior": "delete",
            "LockDelay": "0s",
            "Checks": [],
        });
        let path = "/v1/session/create";
        let response = self
            .send(Method::PUT, path, Some(body.to_string().into_bytes()))
            .await?;
        let created: SessionCreated = decode(&self.url(path), response).await?;
        Ok(created.id)
    }

    /// False when the session is gone (expired or destroyed).
    pub async fn renew_session(&self, id: &str) -> Result<bool, ConsulError> {
        let path = format!("/v1/session/renew/{}", encode(id));
        let response = self.send(Method::PUT, &path, None).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        check_status(&self.url(&path), response).await.map(|_| true)
    }

    pub async fn destroy_session(&self, id: &str) -> Result<(), ConsulError> {
        let path = format!("/v1/session/destroy/{}", encode(id));
        self.write_bool(Method::PUT, &path, None).await.map(|_| ())
    }

    /// Takes `key`'s lock for `session`, writing `value`; false when another session holds it.
    pub async fn acquire(
        &self,
        key: &str,
        session: &str,
        value: &[u8],
    ) -> Result<bool, ConsulError> {
        let path = format!("/v1/kv/{}?acquire={}", encode_key(key), encode(session));
        self.write_bool(Method::PUT, &path, Some(value.to_vec()))
            .await
    }

    async fn read_json<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, ConsulError> {
        let response = self.send(Method::GET, path, None).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        decode(&self.url(path), response).await.map(Some)
    }

    async fn write_bool(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<bool, ConsulError> {
        let response = self.send(method, path, body).await?;
        decode(&self.url(path), response).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address())
    }

    /// Sends to the first agent that accepts the connection.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<reqwest::Response, ConsulError> {
        let mut last = None;
        for address in &self.addresses {
            let url = format!("{address}{path}");
            let mut request = self
                .http
                .request(method.clone(), &url)
                .timeout(self.request_timeout);
            if let Some(token) = &self.token {
                request = request.header("X-Consul-Token", token.expose());
            }
            if let Some(body) = &body {
                request = request.body(body.clone());
            }
            match request.send().await {
                Ok(response) => {
                    if let Some(redirect) = Redirect::of(&response) {
                        return Err(ConsulError::Redirect {
                            url,
                            status: redirect.status,
                            location: redirect.location,
                        });
                    }
                    return denied(&url, response).await;
                }
                Err(error) if error.is_connect() => {
                    last = Some(ConsulError::Unreachable {
                        url,
                        reason: root_cause(&error),
                    });
                }
                Err(error) => {
                    return Err(ConsulError::Unreachable {
                        url,
                        reason: root_cause(&error),
                    });
                }
            }
        }
        Err(last.unwrap_or_else(|| ConsulError::Setup("no Consul address".into())))
    }
}

/// 401 and 403 are the token's fault, whatever the endpoint.
async fn denied(url: &str, response: reqwest::Response) -> Result<reqwest::Response, ConsulError> {
    let status = response.status();
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Err(ConsulError::Denied {
            url: url.into(),
            status: status.as_u16(),
            body: body_text(response).await,
        });
    }
    Ok(response)
}

async fn check_status(
    url: &str,
    response: reqwest::Response,
) -> Result<reqwest::Response, ConsulError> {
    if response.status().is_success() {
        return Ok(response);
    }
    Err(ConsulError::Status {
        url: url.into(),
        status: response.status().as_u16(),
        body: body_text(response).await,
    })
}

async fn decode<T: DeserializeOwned>(
    url: &str,
    response: reqwest::Response,
) -> Result<T, ConsulError> {
    let response = check_status(url, response).await?;
    let bytes = response
        .bytes()
        .await
        .map_err(|error| ConsulError::Unreachable {
            url: url.into(),
            reason: root_cause(&error),
        })?;
    serde_json::from_slice(&bytes).map_err(|error| ConsulError::Invalid {
        url: url.into(),
        reason: error.to_string(),
    })
}

async fn body_text(response: reqwest::Response) -> String {
    let text = response.text().await.unwrap_or_default();
    text.trim().chars().take(200).collect()
}

/// A tree prefix pgha may send to a recursive delete.
pub(super) fn check_tree_prefix(prefix: &str) -> Result<(), ConsulError> {
    let refuse = |reason: &str| {
        Err(ConsulError::UnsafePrefix {
            prefix: prefix.into(),
            reason: reason.into(),
        })
    };
    if !prefix.ends_with('/') {
        return refuse("a tree prefix must end with `/` (Consul deletes by plain string prefix)");
    }
    if prefix.starts_with('/') || prefix.trim_matches('/').is_empty() {
        return refuse("it would delete from the root of the key space");
    }
    if prefix.split('/').any(|segment| segment == "..") {
        return refuse("it contains `..`");
    }
    Ok(())
}

fn with_query(path: &str, query: &[String]) -> String {
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

/// Percent-encodes one path segment or query value.
fn encode(text: &str) -> String {
    encode_with(text, false)
}

/// Percent-encodes a key, keeping its `/` separators.
fn encode_key(key: &str) -> String {
    encode_with(key, true)
}

fn encode_with(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        let plain = byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && byte == b'/');
        if plain {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use wiremock::matchers::{header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::consul::CheckStatus;

    fn settings(addresses: Vec<String>) -> ConsulSettings {
        ConsulSettings {
            addresses,
            token: Some(Secret::new("s3cret-token")),
            tls: crate::patroni::TlsSettings {
                verify: true,
                ..Default::default()
            },
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(2),
            namespace: "service".into(),
            service: None,
        }
    }

    /// Recorded from the double as Patroni 4.1.5 registered node1 (primary) on it.
    const HEALTH: &str = r#"[{"Node":{"ID":"x","Node":"pgha-consul-double","Address":"127.0.0.10","Datacenter":"dc1"},
      "Service":{"ID":"demo/node1","Service":"demo","Tags":["primary","master"],"Address":"127.0.0.11","Port":5432},
      "Checks":[{"Node":"pgha-consul-double","CheckID":"serfHealth","Name":"Serf Health Status","Status":"passing","Output":""},
                {"Node":"pgha-consul-double","CheckID":"service:demo/node1","Name":"Service 'demo' check","Status":"critical","Output":"HTTP GET http://127.0.0.11:8008/primary: connection refused","ServiceID":"demo/node1"}]}]"#;

    #[tokio::test]
    async fn health_is_read_with_passing_and_the_token_in_its_header() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v1/health/service/demo"))
            .and(query_param("passing", ""))
            .and(query_param("tag", "primary"))
            .and(header("X-Consul-Token", "s3cret-token"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(HEALTH, "application/json"))
            .mount(&server)
            .await;
        let client = ConsulClient::new(&settings(vec![server.uri()])).unwrap();
        let instances = client.health("demo", Some("primary"), true).await.unwrap();
        assert_eq!(instances.len(), 1);
        let node1 = &instances[0];
        assert_eq!(node1.id, "demo/node1");
        assert_eq!(node1.address, "127.0.0.11");
        assert!(node1.has_tag("primary"));
        assert_eq!(
            node1.status(),
            CheckStatus::Critical,
            "the worst check wins"
        );
    }

    #[tokio::test]
    async fn a_refused_token_names_the_setting_and_never_the_token() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(403).set_body_string("ACL not found"))
            .mount(&server)
            .await;
        let client = ConsulClient::new(&settings(vec![server.uri()])).unwrap();
        let error = client.keys("service/demo/").await.unwrap_err().to_string();
        assert!(error.contains("Consul refused the token (403: ACL not found)"));
        assert!(error.contains("CONSUL_HTTP_TOKEN"));
        assert!(!error.contains("s3cret"));
    }

    #[tokio::test]
    async fn the_next_agent_is_asked_only_when_the_first_refuses_the_connection() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v1/kv/service/demo/"))
            .and(query_param("keys", ""))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(serde_json::json!(["service/demo/leader"])),
            )
            .mount(&server)
            .await;
        // Port 9 on loopback: nothing listens, the connection is refused.
        let client =
            ConsulClient::new(&settings(vec!["http://127.0.0.1:9".into(), server.uri()])).unwrap();
        assert_eq!(
            client.keys("service/demo/").await.unwrap(),
            ["service/demo/leader"]
        );
    }

    #[tokio::test]
    async fn a_missing_key_is_none_and_values_are_decoded() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v1/kv/service/demo/leader"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(serde_json::json!([{
                    "LockIndex": 1, "Key": "service/demo/leader", "Flags": 0,
                    "Value": "bm9kZTE=", "Session": "6f1c", "CreateIndex": 22, "ModifyIndex": 22
                }])),
            )
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1/kv/service/demo/sync"))
            .respond_with(ResponseTemplate::new(404).insert_header("X-Consul-Index", "40"))
            .mount(&server)
            .await;
        let client = ConsulClient::new(&settings(vec![server.uri()])).unwrap();
        let leader = client.get("service/demo/leader").await.unwrap().unwrap();
        assert_eq!(leader.text(), "node1");
        assert_eq!(leader.session.as_deref(), Some("6f1c"));
        assert_eq!(client.get("service/demo/sync").await.unwrap(), None);
    }

    /// reqwest strips `Authorization` on a cross-host redirect but not `X-Consul-Token`: a
    /// followed redirect would hand the token (and a write's body) to the host the answer names.
    #[tokio::test]
    async fn a_redirect_is_an_error_and_neither_request_nor_token_reaches_the_other_host() {
        let other = MockServer::start().await;
        let agent = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v1/kv/service/demo/"))
            .respond_with(ResponseTemplate::new(307).insert_header(
                "Location",
                format!("{}/v1/kv/service/demo/?keys", other.uri()),
            ))
            .mount(&agent)
            .await;
        // Consul's writes are PUTs: the body is what a 307/308 would re-send.
        Mock::given(method("PUT"))
            .and(path("/v1/session/create"))
            .respond_with(
                ResponseTemplate::new(308)
                    .insert_header("Location", format!("{}/v1/session/create", other.uri())),
            )
            .mount(&agent)
            .await;
        let client = ConsulClient::new(&settings(vec![agent.uri()])).unwrap();
        let error = client.keys("service/demo/").await.unwrap_err();
        assert!(
            error.to_string().starts_with(&format!(
                "{}/v1/kv/service/demo/?keys answered HTTP 307 redirecting to {}/v1/kv/service/demo/?keys: pgha does not follow redirects",
                agent.uri(),
                other.uri()
            )),
            "{error}"
        );
        assert_eq!(error.exit(), crate::exit::Exit::BadInput);
        let error = client
            .create_session("pgha", Duration::from_secs(15))
            .await
            .unwrap_err();
        assert!(
            error.to_string().starts_with(&format!(
                "{}/v1/session/create answered HTTP 308 redirecting to {}/v1/session/create: pgha does not follow redirects",
                agent.uri(),
                other.uri()
            )),
            "{error}"
        );
        assert!(!error.to_string().contains("s3cret"));
        let heard = other.received_requests().await.unwrap();
        assert!(
            heard.is_empty(),
            "the other host received {} request(s), token: {:?}",
            heard.len(),
            heard
                .iter()
                .map(|request| request.headers.contains_key("x-consul-token"))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn tree_prefixes_must_end_with_a_slash_and_stay_off_the_root() {
        assert!(check_tree_prefix("service/geo/").is_ok());
        for prefix in [
            "service/geo",
            "/",
            "",
            "//",
            "/service/geo/",
            "service/../x/",
        ] {
            assert!(check_tree_prefix(prefix).is_err(), "{prefix:?}");
        }
    }

    #[test]
    fn keys_keep_their_slashes_and_nothing_else_slips_through() {
        assert_eq!(
            encode_key("service/demo/members/node1"),
            "service/demo/members/node1"
        );
        assert_eq!(encode_key("a b?c&d#e"), "a%20b%3Fc%26d%23e");
        assert_eq!(encode("demo/node1"), "demo%2Fnode1");
    }
}
