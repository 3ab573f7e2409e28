//! Alertmanager silences (API v2): created while a runbook's work would raise alerts (a
//! replica catching up, seed 000), checked active, expired when the work is done — or when the
//! run is aborted. The silence's id goes to the journal, so `resume` and cleanup find it. The
//! client follows no redirects (`web`) and proves itself, where the inventory says how, with
//! basic auth or a bearer token (`AlertmanagerAuth`): never part of the URL, so never part of a
//! plan, a journal or a message.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::secret::Secret;
use crate::web::Redirect;

#[derive(Debug, Clone, thiserror::Error)]
pub enum AlertError {
    #[error("{url}: Alertmanager did not answer: {reason}")]
    Unreachable { url: String, reason: String },
    #[error(
        "{url}: Alertmanager refused the credentials (HTTP {status}: {body}); check the inventory's alertmanager.username and password_env or password_file, or token_env or token_file"
    )]
    Denied {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url}: Alertmanager answered HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error(
        "{url} answered HTTP {status} redirecting to {location}: pgha does not follow redirects; set alertmanager.url to Alertmanager's own address"
    )]
    Redirect {
        url: String,
        status: u16,
        location: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Matcher {
    pub name: String,
    pub value: String,
    pub is_regex: bool,
    pub is_equal: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct NewSilence<'a> {
    matchers: Vec<Matcher>,
    starts_at: String,
    ends_at: String,
    created_by: &'a str,
    comment: &'a str,
}

#[derive(Debug, Deserialize)]
struct Created {
    #[serde(rename = "silenceID")]
    silence_id: String,
}

/// A silence as Alertmanager lists it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Silence {
    pub id: String,
    pub status: State,
    pub matchers: Vec<Matcher>,
    pub created_by: String,
    pub comment: String,
    pub ends_at: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct State {
    pub state: String,
}

/// How pgha proves itself to Alertmanager (its `--web.config.file`) or to the proxy in front of
/// it. `Debug` masks the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertmanagerAuth {
    Basic { username: String, password: Secret },
    Bearer(Secret),
}

impl AlertmanagerAuth {
    /// The password or the token, for masking in command output.
    pub fn secret(&self) -> &Secret {
        match self {
            AlertmanagerAuth::Basic { password, .. } => password,
            AlertmanagerAuth::Bearer(token) => token,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Alertmanager {
    http: reqwest::Client,
    url: String,
    auth: Option<AlertmanagerAuth>,
}

impl Alertmanager {
    pub fn new(url: &str, timeout: Duration) -> Result<Self, AlertError> {
        let http = crate::web::client_builder()
            .timeout(timeout)
            .build()
            .map_err(|error| AlertError::Unreachable {
                url: url.into(),
                reason: crate::ui::root_cause(&error),
            })?;
        Ok(Alertmanager {
            http,
            url: url.trim_end_matches('/').to_string(),
            auth: None,
        })
    }

    /// Sends these credentials with every request.
    #[must_use]
    pub fn with_auth(mut self, auth: Option<AlertmanagerAuth>) -> Self {
        self.auth = auth;
        self
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, url);
        match &self.auth {
            Some(AlertmanagerAuth::Basic { username, password }) => {
                request.basic_auth(username, Some(password.expose()))
            }
            Some(AlertmanagerAuth::Bearer(token)) => request.bearer_auth(token.expose()),
            None => request,
        }
    }

    /// Exact matchers for these labels.
    pub fn matchers(labels: &BTreeMap<String, String>) -> Vec<Matcher> {
        labels
            .iter()
            .map(|(name, value)| Matcher {
                name: name.clone(),
                value: value.clone(),
                is_regex: false,
                is_equal: true,
            })
            .collect()
    }

    /// Creates a silence from now for `duration`; returns its id.
    pub async fn create(
        &self,
        labels: &BTreeMap<String, String>,
        duration: Duration,
        created_by: &str,
        comment: &str,
    ) -> Result<String, AlertError> {
        let now = jiff::Timestamp::now();
        // Never longer than pgha's longest duration: a silence must end by itself.
        let until = jiff::SignedDuration::try_from(duration.min(crate::duration::MAX))
            .ok()
            .and_then(|span| now.checked_add(span).ok())
            .unwrap_or(now);
        let body = NewSilence {
            matchers: Self::matchers(labels),
            starts_at: now.to_string(),
            ends_at: until.to_string(),
            created_by,
            comment,
        };
        let url = format!("{}/api/v2/silences", self.url);
        let response = send(self.request(reqwest::Method::POST, &url).json(&body), &url).await?;
        let created: Created = ok_json(&url, response).await?;
        Ok(created.silence_id)
    }

    /// `active`, `pending` or `expired`.
    pub async fn state(&self, id: &str) -> Result<String, AlertError> {
        let url = format!("{}/api/v2/silence/{}", self.url, path_segment(id));
        let silence: Silence = self.get(&url).await?;
        Ok(silence.status.state)
    }

    /// The running version (`GET /api/v2/status`): proves the v2 API answers.
    pub async fn version(&self) -> Result<String, AlertError> {
        #[derive(Deserialize)]
        struct Status {
            #[serde(rename = "versionInfo")]
            version_info: BTreeMap<String, String>,
        }
        let url = format!("{}/api/v2/status", self.url);
        let status: Status = self.get(&url).await?;
        Ok(status
            .version_info
            .get("version")
            .cloned()
            .unwrap_or_else(|| "(version unknown)".into()))
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, AlertError> {
        let response = send(self.request(reqwest::Method::GET, url), url).await?;
        ok_json(url, response).await
    }

    /// Every silence Alertmanager knows, expired ones included (it keeps them for a while).
    pub async fn list(&self) -> Result<Vec<Silence>, AlertError> {
        let url = format!("{}/api/v2/silences", self.url);
        self.get(&url).await
    }

    pub async fn expire(&self, id: &str) -> Result<(), AlertError> {
        let url = format!("{}/api/v2/silence/{}", self.url, path_segment(id));
        let response = send(self.request(reqwest::Method::DELETE, &url), &url).await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(status_error(&url, response).await)
        }
    }
}

/// Silence ids are UUIDs: anything else is not sent into a URL.
fn path_segment(id: &str) -> String {
    id.chars()
        .filter(|character| character.is_ascii_hexdigit() || *character == '-')
        .collect()
}

/// Sends once; a redirect is an error (the client follows none).
async fn send(
    request: reqwest::RequestBuilder,
    url: &str,
) -> Result<reqwest::Response, AlertError> {
    let response = request
        .send()
        .await
        .map_err(|error| AlertError::Unreachable {
            url: url.into(),
            reason: crate::ui::root_cause(&error),
        })?;
    match Redirect::of(&response) {
        Some(redirect) => Err(AlertError::Redirect {
            url: url.into(),
            status: redirect.status,
            location: redirect.location,
        }),
        None => Ok(response),
    }
}

async fn ok_json<T: serde::de::DeserializeOwned>(
    url: &str,
    response: reqwest::Response,
) -> Result<T, AlertError> {
    if !response.status().is_success() {
        return Err(status_error(url, response).await);
    }
    response
        .json()
        .await
        .map_err(|error| AlertError::Unreachable {
            url: url.into(),
            reason: format!("not Alertmanager's JSON: {}", crate::ui::root_cause(&error)),
        })
}

async fn status_error(url: &str, response: reqwest::Response) -> AlertError {
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    let body = body.trim().chars().take(200).collect();
    let url = url.into();
    // 401 and 403 come from Alertmanager's `--web.config.file` or a proxy in front of it.
    if matches!(status, 401 | 403) {
        AlertError::Denied { url, status, body }
    } else {
        AlertError::Status { url, status, body }
    }
}

#[cfg(test)]
mod tests {
    use wiremock::matchers::{body_partial_json, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;

    #[tokio::test]
    async fn a_silence_is_created_checked_and_expired() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/api/v2/silences"))
            .and(body_partial_json(serde_json::json!({
                "matchers": [{"name": "alertname", "value": "Lag", "isRegex": false, "isEqual": true}],
                "createdBy": "pgha", "comment": "reinit node3"
            })))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"silenceID": "0b1f-42"})))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/v2/silence/0b1f-42"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "id": "0b1f-42", "status": {"state": "active"}, "matchers": [],
                "createdBy": "pgha", "comment": "reinit node3",
                "startsAt": "2026-11-23T20:00:00Z", "endsAt": "2026-11-23T22:00:00Z",
                "updatedAt": "2026-11-23T20:00:00Z"
            })))
            .mount(&server)
            .await;
        Mock::given(method("DELETE"))
            .and(path("/api/v2/silence/0b1f-42"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        let alertmanager = Alertmanager::new(&server.uri(), Duration::from_secs(2)).unwrap();
        let labels = BTreeMap::from([("alertname".to_string(), "Lag".to_string())]);
        let id = alertmanager
            .create(&labels, Duration::from_hours(2), "pgha", "reinit node3")
            .await
            .unwrap();
        assert_eq!(id, "0b1f-42");
        assert_eq!(alertmanager.state(&id).await.unwrap(), "active");
        alertmanager.expire(&id).await.unwrap();
    }

    /// A followed 307/308 would re-send the silence (and any credentials) to another host.
    #[tokio::test]
    async fn a_redirect_is_an_error_and_nothing_reaches_the_other_host() {
        let other = MockServer::start().await;
        let alertmanager = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/v2/status"))
            .respond_with(
                ResponseTemplate::new(307)
                    .insert_header("Location", format!("{}/api/v2/status", other.uri())),
            )
            .mount(&alertmanager)
            .await;
        Mock::given(method("POST"))
            .and(path("/api/v2/silences"))
            .respond_with(ResponseTemplate::new(308).insert_header("Location", "/elsewhere"))
            .mount(&alertmanager)
            .await;
        let client = Alertmanager::new(&alertmanager.uri(), Duration::from_secs(2)).unwrap();
        let error = client.version().await.unwrap_err().to_string();
        assert!(
            error.starts_with(&format!(
                "{}/api/v2/status answered HTTP 307 redirecting to {}/api/v2/status: pgha does not follow redirects",
                alertmanager.uri(),
                other.uri()
            )),
            "{error}"
        );
        let labels = BTreeMap::from([("alertname".to_string(), "Lag".to_string())]);
        let error = client
            .create(&labels, Duration::from_hours(1), "pgha", "reinit node3")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(&format!(
                "{0}/api/v2/silences answered HTTP 308 redirecting to {0}/elsewhere: pgha does not follow redirects",
                alertmanager.uri()
            )),
            "a relative Location is shown resolved: {error}"
        );
        assert!(other.received_requests().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn credentials_go_in_the_authorization_header_of_every_request() {
        let cases = [
            (
                AlertmanagerAuth::Basic {
                    username: "pgha".into(),
                    password: Secret::new("am-s3cret"),
                },
                // base64("pgha:am-s3cret")
                "Basic cGdoYTphbS1zM2NyZXQ=",
            ),
            (
                AlertmanagerAuth::Bearer(Secret::new("t0ken")),
                "Bearer t0ken",
            ),
        ];
        for (auth, expected) in cases {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .and(path("/api/v2/silences"))
                .and(header("authorization", expected))
                .respond_with(
                    ResponseTemplate::new(200)
                        .set_body_json(serde_json::json!({"silenceID": "0b1f-42"})),
                )
                .mount(&server)
                .await;
            Mock::given(method("DELETE"))
                .and(path("/api/v2/silence/0b1f-42"))
                .and(header("authorization", expected))
                .respond_with(ResponseTemplate::new(200))
                .mount(&server)
                .await;
            // Anything without the header is refused, as a proxy would.
            Mock::given(wiremock::matchers::any())
                .respond_with(ResponseTemplate::new(401).set_body_string("unauthorized"))
                .with_priority(10)
                .mount(&server)
                .await;
            let alertmanager = Alertmanager::new(&server.uri(), Duration::from_secs(2))
                .unwrap()
                .with_auth(Some(auth.clone()));
            let labels = BTreeMap::from([("alertname".to_string(), "Lag".to_string())]);
            let id = alertmanager
                .create(&labels, Duration::from_hours(1), "pgha", "reinit node3")
                .await
                .unwrap();
            alertmanager.expire(&id).await.unwrap();
            assert!(!format!("{alertmanager:?}").contains("s3cret"));
            assert!(!format!("{alertmanager:?}").contains("t0ken"));
            let without = Alertmanager::new(&server.uri(), Duration::from_secs(2)).unwrap();
            let error = without.version().await.unwrap_err().to_string();
            assert!(
                error.contains("Alertmanager refused the credentials (HTTP 401: unauthorized); check the inventory's alertmanager.username"),
                "{error}"
            );
        }
    }

    #[test]
    fn ids_cannot_escape_their_path_segment() {
        assert_eq!(path_segment("../../api/v2/status?x"), "a2a");
        assert_eq!(
            path_segment("0b1f4c2e-9d3a-4b7e-8f00-1a2b3c4d5e6f"),
            "0b1f4c2e-9d3a-4b7e-8f00-1a2b3c4d5e6f"
        );
    }

    mod fuzz {
        use proptest::prelude::*;

        use super::super::{Created, Silence};
        use crate::fuzzing::{CASES, json_shaped};

        /// The keys of Alertmanager's v2 answers pgha reads.
        const KEYS: &[&str] = &[
            "silenceID",
            "id",
            "status",
            "state",
            "matchers",
            "name",
            "value",
            "isRegex",
            "isEqual",
            "createdBy",
            "comment",
            "endsAt",
            "startsAt",
            "versionInfo",
            "version",
        ];

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(CASES))]

            /// Any answer shaped like Alertmanager's (a created silence, one silence, the list):
            /// read or refused, never a panic; what is read says its state.
            #[test]
            fn any_alertmanager_answer_is_read_or_refused(value in json_shaped(KEYS)) {
                let _ = serde_json::from_value::<Created>(value.clone());
                if let Ok(silence) = serde_json::from_value::<Silence>(value.clone()) {
                    prop_assert!(silence.status.state.len() <= value.to_string().len());
                }
                let _ = serde_json::from_value::<Vec<Silence>>(value);
            }

            /// Any bytes as a body: refused as not JSON, never a panic.
            #[test]
            fn any_body_is_read_or_refused(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
                let _ = serde_json::from_slice::<Created>(&bytes);
                let _ = serde_json::from_slice::<Vec<Silence>>(&bytes);
            }
        }
    }
}
