//! The asynchronous Patroni REST client: one reqwest client per cluster (connection reuse, no
//! proxies, no redirects, TLS verification on unless an inventory says otherwise), one method
//! per endpoint.
//! Reads return the normalised model; writes return the raw answer, because only the caller,
//! after observing the cluster, can decide what a 503 "status unknown" meant. Nothing here ever
//! retries a request.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::PatroniError;
use super::model::{ClusterTopology, MemberStatus, TimelineSwitch, history_from_rows};
use super::wire::{ClusterWire, StatusWire};
use crate::secret::Secret;
use crate::ui::root_cause;
use crate::web::Redirect;

/// Username and password for Patroni's `restapi.authentication`.
#[derive(Debug, Clone)]
pub struct BasicAuth {
    pub username: String,
    pub password: Secret,
}

/// TLS settings for HTTPS REST APIs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM bundle of the CAs to trust instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM) for APIs with `verify_client`.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// Off only when an inventory says `verify: false` explicitly.
    pub verify: bool,
}

/// Everything the client needs to talk to the members of one cluster.
#[derive(Debug, Clone)]
pub struct RestSettings {
    pub auth: Option<BasicAuth>,
    pub tls: TlsSettings,
    pub connect_timeout: Duration,
    /// For reads: Patroni answers them at once.
    pub request_timeout: Duration,
    /// For writes: Patroni answers a switchover only after polling for its result (up to
    /// 20 s) and a restart only once PostgreSQL is back.
    pub write_timeout: Duration,
}

impl Default for RestSettings {
    fn default() -> Self {
        RestSettings {
            auth: None,
            tls: TlsSettings {
                verify: true,
                ..TlsSettings::default()
            },
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(4),
            write_timeout: Duration::from_mins(1),
        }
    }
}

/// The answer to a write: Patroni answers with a status and a short text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionResponse {
    pub status: u16,
    pub message: String,
}

impl ActionResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// The health endpoints: Patroni answers 200 or 503 (and a body like `/patroni`'s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthCheck {
    Health,
    Liveness,
    Readiness,
    Primary,
    Replica,
    Leader,
    StandbyLeader,
    ReadWrite,
    ReadOnly,
    Synchronous,
    Asynchronous,
}

impl HealthCheck {
    pub fn path(self) -> &'static str {
        match self {
            HealthCheck::Health => "/health",
            HealthCheck::Liveness => "/liveness",
            HealthCheck::Readiness => "/readiness",
            HealthCheck::Primary => "/primary",
            HealthCheck::Replica => "/replica",
            HealthCheck::Leader => "/leader",
            HealthCheck::StandbyLeader => "/standby-leader",
            HealthCheck::ReadWrite => "/read-write",
            HealthCheck::ReadOnly => "/read-only",
            HealthCheck::Synchronous => "/sync",
            HealthCheck::Asynchronous => "/async",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SwitchoverRequest {
    pub leader: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate: Option<String>,
    /// RFC 3339 with a time zone; Patroni refuses naive times.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailoverRequest {
    pub candidate: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RestartRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_pending: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ReinitializeRequest {
    pub force: bool,
    /// Honoured by Patroni 4.x only (3.3 and older silently ignore it); the caller decides.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_leader: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct PatroniClient {
    http: reqwest::Client,
    auth: Option<BasicAuth>,
    request_timeout: Duration,
    write_timeout: Duration,
}

impl PatroniClient {
    /// The HTTP client, for another API reached with the same TLS settings (Consul): building
    /// one loads the system's trust store, a few milliseconds per command.
    pub(crate) fn http(&self) -> reqwest::Client {
        self.http.clone()
    }

    pub fn new(settings: &RestSettings) -> Result<Self, PatroniError> {
        let http = http_client(&settings.tls, settings.connect_timeout)?;
        Ok(Self::with_http(settings, http))
    }

    /// Over an HTTP client already built for the same TLS settings and connect timeout: a new
    /// one loads the trust store again (milliseconds, per cluster of `status --all`).
    pub(crate) fn with_http(settings: &RestSettings, http: reqwest::Client) -> Self {
        PatroniClient {
            http,
            auth: settings.auth.clone(),
            request_timeout: settings.request_timeout,
            write_timeout: settings.write_timeout,
        }
    }

    /// `GET /patroni`: the member about itself.
    pub async fn status(&self, base_url: &str) -> Result<MemberStatus, PatroniError> {
        let wire: StatusWire = self.get_json(base_url, "/patroni").await?;
        Ok(wire.into())
    }

    /// `GET /cluster`: the cluster as this member's view of the DCS shows it.
    pub async fn cluster(&self, base_url: &str) -> Result<ClusterTopology, PatroniError> {
        let wire: ClusterWire = self.get_json(base_url, "/cluster").await?;
        Ok(wire.into())
    }

    /// `GET /history`: timeline switches.
    pub async fn history(&self, base_url: &str) -> Result<Vec<TimelineSwitch>, PatroniError> {
        let rows: Vec<Vec<Value>> = self.get_json(base_url, "/history").await?;
        Ok(history_from_rows(rows))
    }

    /// `GET /config`: the dynamic configuration stored in the DCS.
    pub async fn config(&self, base_url: &str) -> Result<Value, PatroniError> {
        self.get_json(base_url, "/config").await
    }

    /// A health endpoint: `true` for 200, `false` for 503; anything else is an error.
    pub async fn health(&self, base_url: &str, check: HealthCheck) -> Result<bool, PatroniError> {
        let url = join(base_url, check.path());
        let response = self
            .send(self.http.get(&url), &url, self.request_timeout)
            .await?;
        match response.status() {
            StatusCode::OK => Ok(true),
            StatusCode::SERVICE_UNAVAILABLE => Ok(false),
            other => Err(unexpected_status(&url, other, response).await),
        }
    }

    /// `PATCH /config`: merge `patch` into the dynamic configuration; returns the new config.
    pub async fn patch_config(&self, base_url: &str, patch: &Value) -> Result<Value, PatroniError> {
        let url = join(base_url, "/config");
        let request = self.authorized(Method::PATCH, &url).json(patch);
        let response = self.send(request, &url, self.write_timeout).await?;
        if !response.status().is_success() {
            return Err(unexpected_status(&url, response.status(), response).await);
        }
        decode(&url, response).await
    }

    pub async fn switchover(
        &self,
        base_url: &str,
        request: &SwitchoverRequest,
    ) -> Result<ActionResponse, PatroniError> {
        self.act(Method::POST, base_url, "/switchover", Some(request))
            .await
    }

    pub async fn failover(
        &self,
        base_url: &str,
        request: &FailoverRequest,
    ) -> Result<ActionResponse, PatroniError> {
        self.act(Method::POST, base_url, "/failover", Some(request))
            .await
    }

    /// `DELETE /switchover` or `DELETE /restart`: cancels what is scheduled there.
    pub async fn cancel(&self, base_url: &str, path: &str) -> Result<ActionResponse, PatroniError> {
        self.act::<()>(Method::DELETE, base_url, path, None).await
    }

    pub async fn restart(
        &self,
        base_url: &str,
        request: &RestartRequest,
    ) -> Result<ActionResponse, PatroniError> {
        self.act(Method::POST, base_url, "/restart", Some(request))
            .await
    }

    pub async fn reinitialize(
        &self,
        base_url: &str,
        request: &ReinitializeRequest,
    ) -> Result<ActionResponse, PatroniError> {
        self.act(Method::POST, base_url, "/reinitialize", Some(request))
            .await
    }

    pub async fn reload(&self, base_url: &str) -> Result<ActionResponse, PatroniError> {
        self.act::<()>(Method::POST, base_url, "/reload", None)
            .await
    }

    /// `DELETE /switchover`: cancel a scheduled switchover.
    pub async fn cancel_switchover(&self, base_url: &str) -> Result<ActionResponse, PatroniError> {
        self.act::<()>(Method::DELETE, base_url, "/switchover", None)
            .await
    }

    /// `DELETE /restart`: cancel a scheduled restart.
    pub async fn cancel_restart(&self, base_url: &str) -> Result<ActionResponse, PatroniError> {
        self.act::<()>(Method::DELETE, base_url, "/restart", None)
            .await
    }

    /// Proves the configured credentials without changing anything. Patroni checks credentials
    /// only on writes, so this sends `POST /switchover` with an empty JSON object: Patroni checks
    /// access first (401/403) and then rejects the empty body (400) before any logic runs.
    pub async fn verify_credentials(&self, base_url: &str) -> Result<(), PatroniError> {
        let url = join(base_url, "/switchover");
        let request = self
            .authorized(Method::POST, &url)
            .json(&serde_json::json!({}));
        // Rejected before any work: a read's timeout is plenty.
        let response = self.send(request, &url, self.request_timeout).await?;
        match response.status() {
            StatusCode::BAD_REQUEST => Ok(()),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Err(access_error(&url, response).await)
            }
            other => Err(unexpected_status(&url, other, response).await),
        }
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        base_url: &str,
        path: &str,
    ) -> Result<T, PatroniError> {
        let url = join(base_url, path);
        let response = self
            .send(self.http.get(&url), &url, self.request_timeout)
            .await?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(access_error(&url, response).await);
        }
        // Health-style endpoints answer 503 with a valid body; reads here must be 200.
        if !status.is_success() {
            return Err(unexpected_status(&url, status, response).await);
        }
        decode(&url, response).await
    }

    async fn act<B: Serialize + ?Sized>(
        &self,
        method: Method,
        base_url: &str,
        path: &str,
        body: Option<&B>,
    ) -> Result<ActionResponse, PatroniError> {
        let url = join(base_url, path);
        let mut request = self.authorized(method, &url);
        request = match body {
            Some(body) => request.json(body),
            // Patroni answers 411 to a write without Content-Length.
            None => request.header(reqwest::header::CONTENT_LENGTH, "0"),
        };
        let response = self.send(request, &url, self.write_timeout).await?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(access_error(&url, response).await);
        }
        let message = response.text().await.unwrap_or_default();
        Ok(ActionResponse {
            status: status.as_u16(),
            message: message.trim().to_string(),
        })
    }

    fn authorized(&self, method: Method, url: &str) -> RequestBuilder {
        let request = self.http.request(method, url);
        match &self.auth {
            Some(auth) => request.basic_auth(&auth.username, Some(auth.password.expose())),
            None => request,
        }
    }

    /// Sends once; a redirect is an error, whatever the method (the client follows none).
    async fn send(
        &self,
        request: RequestBuilder,
        url: &str,
        timeout: Duration,
    ) -> Result<reqwest::Response, PatroniError> {
        let response = request
            .timeout(timeout)
            .send()
            .await
            .map_err(|error| transport_error(url, &error, timeout))?;
        match Redirect::of(&response) {
            Some(redirect) => Err(PatroniError::Redirect {
                url: url.to_string(),
                status: redirect.status,
                location: redirect.location,
            }),
            None => Ok(response),
        }
    }
}

/// An HTTP client with pgha's defaults (`web::client_builder`: no proxies, no redirects), TLS
/// verified unless said otherwise, the given CA bundle and client identity. Shared by the
/// Patroni and Consul clients.
pub(crate) fn http_client(
    tls: &TlsSettings,
    connect_timeout: Duration,
) -> Result<reqwest::Client, PatroniError> {
    let mut builder = crate::web::client_builder().connect_timeout(connect_timeout);
    if let Some(ca_file) = &tls.ca_file {
        let pem = read_pem(ca_file, "CA bundle")?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|error| {
            PatroniError::Certificate {
                path: ca_file.clone(),
                reason: root_cause(&error),
            }
        })?;
        builder = builder.tls_certs_only(certificates);
    }
    match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => {
            let mut pem = read_pem(cert, "client certificate")?;
            pem.push(b'\n');
            pem.extend(read_pem(key, "client key")?);
            let identity =
                reqwest::Identity::from_pem(&pem).map_err(|error| PatroniError::Certificate {
                    path: cert.clone(),
                    reason: root_cause(&error),
                })?;
            builder = builder.identity(identity);
        }
        (None, None) => {}
        (Some(path), None) | (None, Some(path)) => {
            return Err(PatroniError::Certificate {
                path: path.clone(),
                reason: "a client certificate needs both cert_file and key_file".into(),
            });
        }
    }
    if !tls.verify {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    builder
        .build()
        .map_err(|error| PatroniError::Setup(root_cause(&error)))
}

fn read_pem(path: &Path, what: &str) -> Result<Vec<u8>, PatroniError> {
    std::fs::read(path).map_err(|error| PatroniError::Certificate {
        path: path.to_path_buf(),
        reason: format!("cannot read {what}: {error}"),
    })
}

fn join(base_url: &str, path: &str) -> String {
    format!("{}{}", base_url.trim_end_matches('/'), path)
}

async fn decode<T: DeserializeOwned>(
    url: &str,
    response: reqwest::Response,
) -> Result<T, PatroniError> {
    let bytes = response
        .bytes()
        .await
        .map_err(|error| PatroniError::Decode {
            url: url.to_string(),
            reason: root_cause(&error),
        })?;
    serde_json::from_slice(&bytes).map_err(|error| PatroniError::Decode {
        url: url.to_string(),
        reason: format!("not the JSON Patroni sends ({error})"),
    })
}

async fn access_error(url: &str, response: reqwest::Response) -> PatroniError {
    let status = response.status();
    let reason = response.text().await.unwrap_or_default().trim().to_string();
    if status == StatusCode::UNAUTHORIZED {
        PatroniError::Unauthorized {
            url: url.to_string(),
            reason,
        }
    } else {
        PatroniError::Forbidden {
            url: url.to_string(),
            reason,
        }
    }
}

async fn unexpected_status(
    url: &str,
    status: StatusCode,
    response: reqwest::Response,
) -> PatroniError {
    let body = response.text().await.unwrap_or_default();
    PatroniError::Status {
        url: url.to_string(),
        status: status.as_u16(),
        body: first_line(&body),
    }
}

fn first_line(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("");
    line.chars().take(200).collect()
}

/// Turns a reqwest failure into the one-line reason an operator can act on.
fn transport_error(url: &str, error: &reqwest::Error, timeout: Duration) -> PatroniError {
    if let Some(reason) = tls_failure(error) {
        return PatroniError::Tls {
            url: url.to_string(),
            reason,
        };
    }
    if error.is_timeout() {
        return PatroniError::Timeout {
            url: url.to_string(),
            after: timeout,
        };
    }
    PatroniError::Connect {
        url: url.to_string(),
        reason: root_cause(error),
    }
}

/// The TLS reason a connection failed, if TLS is why (also for the DCS clients).
pub(crate) fn tls_failure(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = current {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        if let Some(tls) = error
            .downcast_ref::<std::io::Error>()
            .and_then(rustls_inside)
        {
            return Some(tls.to_string());
        }
        current = error.source();
    }
    // A TLS client talking to a plain-HTTP server fails before rustls has a typed error.
    let text = root_cause(error);
    let not_tls = text.contains("InvalidContentType")
        || text.contains("corrupt message")
        || text.contains("tls handshake eof")
        || reset_during_https_connect(error);
    not_tls.then(|| format!("the server did not answer with TLS ({text})"))
}

/// A plain-HTTP server that receives a TLS ClientHello may simply drop the connection (etcd
/// does so under load) instead of answering garbage: a reset while an https connection is still
/// being set up is the same mistake. A reset after the connection was up is not a TLS matter.
fn reset_during_https_connect(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut https_connect = false;
    let mut reset = false;
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = current {
        if let Some(request) = error.downcast_ref::<reqwest::Error>() {
            https_connect |=
                request.is_connect() && request.url().is_some_and(|url| url.scheme() == "https");
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            // The reset can sit inside an I/O error that `source` skips (see `rustls_inside`).
            let inner = io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<std::io::Error>());
            reset |= [Some(io), inner]
                .into_iter()
                .flatten()
                .any(|io| io.kind() == std::io::ErrorKind::ConnectionReset);
        }
        current = error.source();
    }
    https_connect && reset
}

/// hyper wraps rustls's error in an I/O error inside another I/O error, and `io::Error::source`
/// skips the wrapped error itself: look inside explicitly.
fn rustls_inside(io: &std::io::Error) -> Option<&rustls::Error> {
    let inner = io.get_ref()?;
    if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    inner
        .downcast_ref::<std::io::Error>()
        .and_then(rustls_inside)
}

#[cfg(test)]
mod tests {
    use super::{join, tls_failure};

    /// A server that accepts and resets every connection, as a plain server may do when a
    /// TLS ClientHello arrives.
    async fn resetting_server() -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for _ in 0..4 {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let mut buffer = [0u8; 16];
                let _ = stream.readable().await;
                let _ = stream.try_read(&mut buffer);
                stream.set_zero_linger().unwrap();
                drop(stream);
            }
        });
        address
    }

    #[tokio::test]
    async fn a_reset_while_setting_up_https_is_a_tls_failure_and_over_http_is_not() {
        let address = resetting_server().await;
        let client = crate::web::client_builder().build().unwrap();
        let https = client
            .get(format!("https://{address}/"))
            .send()
            .await
            .unwrap_err();
        let reason = tls_failure(&https).expect("a reset during the handshake is about TLS");
        assert!(reason.contains("did not answer with TLS"), "{reason}");
        let http = client
            .get(format!("http://{address}/"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(tls_failure(&http), None, "{http:?}");
    }

    #[test]
    fn join_tolerates_trailing_slashes() {
        assert_eq!(join("http://h:8008/", "/cluster"), "http://h:8008/cluster");
        assert_eq!(join("http://h:8008", "/cluster"), "http://h:8008/cluster");
    }
}
