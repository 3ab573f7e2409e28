//! Alertmanager silences (API v2): created while a runbook's work would raise alerts (a
//! replica catching up, seed 000), checked active, expired when the work is done — or when the
//! run is aborted. The silence's id goes to the journal, so `resume` and cleanup find it. The
//! client follows no redirects (`web`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::web::Redirect;

#[derive(Debug, Clone, thiserror::Error)]
pub enum AlertError {
    #[error("{url}: Alertmanager did not answer: {reason}")]
    Unreachable { url: String, reason: String },
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

#[derive(Debug, Clone)]
pub struct Alertmanager {
    http: reqwest::Client,
    url: String,
}

impl Alertmanager {
    pub fn new(url: &str, timeout: Duration) -> Result<Self, AlertError> {
        let http = crate::web::client_builder()
            .timeout(timeout)
            .build()
            .map_err(|error| AlertError::Unreachable {
                url: url.into(),
                reason: crate::patroni::root_cause(&error),
            })?;
        Ok(Alertmanager {
            http,
            url: url.trim_end_matches('/').to_string(),
        })
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
        let until = now
            + jiff::SignedDuration::try_from(duration)
                .unwrap_or(jiff::SignedDuration::from_hours(1));
        let body = NewSilence {
            matchers: Self::matchers(labels),
            starts_at: now.to_string(),
            ends_at: until.to_string(),
            created_by,
            comment,
        };
        let url = format!("{}/api/v2/silences", self.url);
        let response = send(self.http.post(&url).json(&body), &url).await?;
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
        let response = send(self.http.get(url), url).await?;
        ok_json(url, response).await
    }

    /// Every silence Alertmanager knows, expired ones included (it keeps them for a while).
    pub async fn list(&self) -> Result<Vec<Silence>, AlertError> {
        let url = format!("{}/api/v2/silences", self.url);
        self.get(&url).await
    }

    pub async fn expire(&self, id: &str) -> Result<(), AlertError> {
        let url = format!("{}/api/v2/silence/{}", self.url, path_segment(id));
        let response = send(self.http.delete(&url), &url).await?;
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
            reason: crate::patroni::root_cause(&error),
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
            reason: format!(
                "not Alertmanager's JSON: {}",
                crate::patroni::root_cause(&error)
            ),
        })
}

async fn status_error(url: &str, response: reqwest::Response) -> AlertError {
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    AlertError::Status {
        url: url.into(),
        status,
        body: body.trim().chars().take(200).collect(),
    }
}

#[cfg(test)]
mod tests {
    use wiremock::matchers::{body_partial_json, method, path};
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

    #[test]
    fn ids_cannot_escape_their_path_segment() {
        assert_eq!(path_segment("../../api/v2/status?x"), "a2a");
        assert_eq!(
            path_segment("0b1f4c2e-9d3a-4b7e-8f00-1a2b3c4d5e6f"),
            "0b1f4c2e-9d3a-4b7e-8f00-1a2b3c4d5e6f"
        );
    }
}
