//! The etcd v3 client over the JSON gateway: prefix reads (serializable, so a member that lost
//! quorum still answers what it has), a guarded tree delete, a create-if-absent transaction and
//! leases, for the run lock. One reqwest client, no proxies, no redirects, TLS verified unless
//! the settings say otherwise. With a user, pgha authenticates once and sends the token etcd
//! gives; a token etcd no longer knows (401) is renewed once — a 401 means nothing was done. A
//! write is never retried otherwise: the next endpoint is tried only when the previous one
//! refused the connection (nothing was sent).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use super::{EtcdError, EtcdSettings};
use crate::patroni::{PatroniError, http_client};
use crate::secret::Secret;
use crate::ui::root_cause;
use crate::web::Redirect;

/// One key as etcd holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
    /// The lease the key lives with (0: none).
    pub lease: i64,
}

impl KeyValue {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.value).into_owned()
    }
}

/// What one endpoint says about itself (`/v3/maintenance/status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointStatus {
    pub endpoint: String,
    pub version: String,
    /// The member id of the leader this endpoint follows; `None` without a leader.
    pub leader: Option<String>,
    /// Errors the member reports about itself (`NOSPACE` alarms and the like).
    pub errors: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct EtcdClient {
    http: reqwest::Client,
    endpoints: Vec<String>,
    credentials: Option<(String, Secret)>,
    request_timeout: Duration,
    /// The auth token, once authenticated. Shared by clones (the lock's keep-alive task).
    token: Arc<tokio::sync::Mutex<Option<Secret>>>,
    namespace: String,
}

impl EtcdClient {
    pub fn new(settings: &EtcdSettings) -> Result<Self, EtcdError> {
        let http =
            http_client(&settings.tls, settings.connect_timeout).map_err(|error| match error {
                PatroniError::Certificate { path, reason } => {
                    EtcdError::Setup(format!("{}: {reason}", path.display()))
                }
                other => EtcdError::Setup(other.to_string()),
            })?;
        Self::with_http(settings, http)
    }

    /// Over an existing HTTP client built with the same TLS settings and connect timeout.
    pub fn with_http(settings: &EtcdSettings, http: reqwest::Client) -> Result<Self, EtcdError> {
        if settings.endpoints.is_empty() {
            return Err(EtcdError::Setup("no etcd endpoint".into()));
        }
        let credentials = match (&settings.username, &settings.password) {
            (Some(user), Some(password)) => Some((user.clone(), password.clone())),
            (Some(user), None) => Some((user.clone(), Secret::new(String::new()))),
            _ => None,
        };
        Ok(EtcdClient {
            http,
            endpoints: settings
                .endpoints
                .iter()
                .map(|endpoint| endpoint.trim_end_matches('/').to_string())
                .collect(),
            credentials,
            request_timeout: settings.request_timeout,
            token: Arc::new(tokio::sync::Mutex::new(None)),
            namespace: settings.namespace.clone(),
        })
    }

    /// Patroni's tree for `scope`: `/service/<scope>/`.
    pub fn cluster_prefix(&self, scope: &str) -> String {
        super::cluster_prefix(&self.namespace, scope)
    }

    /// Where a run's lock on `scope` lives.
    pub fn lock_key(&self, scope: &str) -> String {
        super::lock_key(&self.namespace, scope)
    }

    /// The endpoint asked first, for messages.
    pub fn endpoint(&self) -> &str {
        &self.endpoints[0]
    }

    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// Every key under `prefix`, read from the member asked (serializable: answered without a
    /// round of consensus, so also by a member that lost quorum — it says what it last knew).
    pub async fn range_prefix(&self, prefix: &str) -> Result<Vec<KeyValue>, EtcdError> {
        let body = json!({
            "key": BASE64.encode(prefix),
            "range_end": BASE64.encode(prefix_end(prefix)),
            "serializable": true,
        });
        let answer: RangeWire = self.call("/v3/kv/range", &body).await?;
        answer.kvs.into_iter().map(KeyValue::try_from).collect()
    }

    /// One key, read linearizably (the lock's holder).
    pub async fn get(&self, key: &str) -> Result<Option<KeyValue>, EtcdError> {
        let body = json!({ "key": BASE64.encode(key) });
        let answer: RangeWire = self.call("/v3/kv/range", &body).await?;
        answer
            .kvs
            .into_iter()
            .next()
            .map(KeyValue::try_from)
            .transpose()
    }

    /// Deletes every key under `prefix`, which must end with `/`: etcd deletes a key range,
    /// so `/service/geo` would take `/service/geo2/…` with it. Returns how many were deleted.
    pub async fn delete_tree(&self, prefix: &str) -> Result<u64, EtcdError> {
        check_tree_prefix(prefix)?;
        let body = json!({
            "key": BASE64.encode(prefix),
            "range_end": BASE64.encode(prefix_end(prefix)),
        });
        let answer: DeleteWire = self.call("/v3/kv/deleterange", &body).await?;
        Ok(answer.deleted.max(0).unsigned_abs())
    }

    /// Writes `value` to `key` only if the key was last modified at `mod_revision` (nobody
    /// wrote it since it was read): `patronictl edit-config`'s compare-and-set. False when it
    /// was, and nothing was written.
    pub async fn compare_and_put(
        &self,
        key: &str,
        mod_revision: i64,
        value: &[u8],
    ) -> Result<bool, EtcdError> {
        let key64 = BASE64.encode(key);
        let body = json!({
            "compare": [{ "target": "MOD", "key": key64, "mod_revision": mod_revision.to_string() }],
            "success": [{ "request_put": { "key": key64, "value": BASE64.encode(value) } }],
        });
        let answer: TxnWire = self.call("/v3/kv/txn", &body).await?;
        Ok(answer.succeeded)
    }

    /// Writes `key` with `lease` only if no such key exists; otherwise the key that does.
    pub async fn create_if_absent(
        &self,
        key: &str,
        value: &[u8],
        lease: i64,
    ) -> Result<Result<(), KeyValue>, EtcdError> {
        let key64 = BASE64.encode(key);
        let body = json!({
            "compare": [{ "target": "CREATE", "key": key64, "create_revision": "0" }],
            "success": [{ "request_put": {
                "key": key64, "value": BASE64.encode(value), "lease": lease.to_string(),
            }}],
            "failure": [{ "request_range": { "key": key64 } }],
        });
        let answer: TxnWire = self.call("/v3/kv/txn", &body).await?;
        if answer.succeeded {
            return Ok(Ok(()));
        }
        let holder = answer
            .responses
            .into_iter()
            .filter_map(|response| response.response_range)
            .flat_map(|range| range.kvs)
            .next();
        match holder {
            Some(wire) => Ok(Err(KeyValue::try_from(wire)?)),
            // Gone between the compare and the read: nothing holds it now, yet this run did
            // not take it either. Said as held by nobody known; the operator retries.
            None => Ok(Err(KeyValue {
                key: key.into(),
                value: Vec::new(),
                create_revision: 0,
                mod_revision: 0,
                lease: 0,
            })),
        }
    }

    /// A lease of `ttl`; keys written with it go when it expires or is revoked.
    pub async fn grant_lease(&self, ttl: Duration) -> Result<i64, EtcdError> {
        let answer: LeaseWire = self
            .call("/v3/lease/grant", &json!({ "TTL": ttl.as_secs().max(5) }))
            .await?;
        Ok(answer.id)
    }

    /// Renews a lease; false when etcd no longer has it (expired or revoked).
    pub async fn keep_alive(&self, lease: i64) -> Result<bool, EtcdError> {
        let answer: KeepAliveWire = self
            .call("/v3/lease/keepalive", &json!({ "ID": lease.to_string() }))
            .await?;
        Ok(answer.result.is_some_and(|result| result.ttl > 0))
    }

    /// Ends a lease at once; its keys are deleted with it.
    pub async fn revoke_lease(&self, lease: i64) -> Result<(), EtcdError> {
        match self
            .call::<Value>("/v3/lease/revoke", &json!({ "ID": lease.to_string() }))
            .await
        {
            Ok(_) => Ok(()),
            // Already gone: what a revoke wants.
            Err(EtcdError::Status { body, .. }) if body.contains("lease not found") => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// What every endpoint says about itself, each asked on its own and at once: a member that
    /// does not answer is `Err`, so that a quorum loss shows which members are down.
    pub async fn statuses(&self) -> Vec<Result<EndpointStatus, EtcdError>> {
        let asks = self
            .endpoints
            .iter()
            .map(|endpoint| self.status_of(endpoint));
        futures::future::join_all(asks).await
    }

    async fn status_of(&self, endpoint: &str) -> Result<EndpointStatus, EtcdError> {
        let answer: StatusWire = self
            .call_at(endpoint, "/v3/maintenance/status", &json!({}))
            .await?;
        Ok(EndpointStatus {
            endpoint: endpoint.to_string(),
            version: answer.version,
            leader: Some(answer.leader).filter(|leader| leader != "0" && !leader.is_empty()),
            errors: answer.errors,
        })
    }

    /// One call, at the first endpoint that accepts the connection.
    async fn call<T: DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T, EtcdError> {
        let mut last = None;
        for endpoint in &self.endpoints {
            match self.call_at(endpoint, path, body).await {
                Err(EtcdError::Unreachable { url, reason }) if reason.starts_with(REFUSED) => {
                    last = Some(EtcdError::Unreachable { url, reason });
                }
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| EtcdError::Setup("no etcd endpoint".into())))
    }

    async fn call_at<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        path: &str,
        body: &Value,
    ) -> Result<T, EtcdError> {
        let url = format!("{endpoint}{path}");
        let mut renewed = false;
        loop {
            let token = self.token(endpoint).await?;
            let response = self.post(&url, body, token.as_ref()).await?;
            if response.status() == StatusCode::UNAUTHORIZED && !renewed && token.is_some() {
                // The token expired (etcd's simple tokens end after 5 idle minutes).
                *self.token.lock().await = None;
                renewed = true;
                continue;
            }
            return decode(&url, response).await;
        }
    }

    /// The auth token, authenticating first when a user is set and none is held.
    async fn token(&self, endpoint: &str) -> Result<Option<Secret>, EtcdError> {
        let Some((user, password)) = &self.credentials else {
            return Ok(None);
        };
        let mut held = self.token.lock().await;
        if let Some(token) = held.as_ref() {
            return Ok(Some(token.clone()));
        }
        let url = format!("{endpoint}/v3/auth/authenticate");
        let body = json!({ "name": user, "password": password.expose() });
        let response = self.post(&url, &body, None).await?;
        let answer: AuthWire = decode(&url, response).await?;
        let token = Secret::new(answer.token);
        *held = Some(token.clone());
        Ok(Some(token))
    }

    async fn post(
        &self,
        url: &str,
        body: &Value,
        token: Option<&Secret>,
    ) -> Result<reqwest::Response, EtcdError> {
        let mut request = self.http.post(url).timeout(self.request_timeout).json(body);
        if let Some(token) = token {
            request = request.header("Authorization", token.expose());
        }
        let response = request.send().await.map_err(|error| {
            if let Some(reason) = crate::patroni::tls_failure(&error) {
                return EtcdError::Tls {
                    url: url.into(),
                    reason,
                };
            }
            let reason = root_cause(&error);
            EtcdError::Unreachable {
                url: url.into(),
                reason: if error.is_connect() {
                    format!("{REFUSED}{reason}")
                } else {
                    reason
                },
            }
        })?;
        if let Some(redirect) = Redirect::of(&response) {
            return Err(EtcdError::Status {
                url: url.into(),
                status: redirect.status,
                body: format!(
                    "a redirect to {}: pgha does not follow redirects; give it etcd's own client URL",
                    redirect.location
                ),
            });
        }
        Ok(response)
    }
}

/// How a connection error starts, so that only those move on to the next endpoint.
const REFUSED: &str = "cannot connect: ";

/// The end of the key range that holds exactly the keys starting with `prefix`: the prefix
/// with its last byte incremented (etcd's own `WithPrefix`).
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte 0xff: the whole key space from the prefix on (etcd's "\0").
    vec![0]
}

/// A tree prefix pgha may send to a range delete.
pub(super) fn check_tree_prefix(prefix: &str) -> Result<(), EtcdError> {
    let refuse = |reason: &str| {
        Err(EtcdError::UnsafePrefix {
            prefix: prefix.into(),
            reason: reason.into(),
        })
    };
    if !prefix.ends_with('/') {
        return refuse("a tree prefix must end with `/` (etcd deletes a key range)");
    }
    let segments: Vec<&str> = prefix.split('/').filter(|part| !part.is_empty()).collect();
    if segments.len() < 2 {
        return refuse("it would delete a whole namespace, not one cluster's tree");
    }
    if segments.contains(&"..") {
        return refuse("it contains `..`");
    }
    Ok(())
}

async fn decode<T: DeserializeOwned>(
    url: &str,
    response: reqwest::Response,
) -> Result<T, EtcdError> {
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|error| EtcdError::Unreachable {
            url: url.into(),
            reason: root_cause(&error),
        })?;
    if !status.is_success() {
        return Err(refusal(url, status, &bytes));
    }
    serde_json::from_slice(&bytes).map_err(|error| EtcdError::Invalid {
        url: url.into(),
        reason: error.to_string(),
    })
}

/// etcd's error body (`{"error", "code", "message"}`) as pgha's error: the credentials'
/// fault (gRPC codes 16 and 7, or a failed authentication) or any other.
fn refusal(url: &str, status: StatusCode, bytes: &[u8]) -> EtcdError {
    let wire: ErrorWire = serde_json::from_slice(bytes).unwrap_or_default();
    let message = if wire.message.is_empty() {
        String::from_utf8_lossy(bytes)
            .trim()
            .chars()
            .take(200)
            .collect()
    } else {
        wire.message
    };
    let auth = matches!(wire.code, 7 | 16)
        || message.contains("authentication failed")
        || message.contains("user name is empty")
        || status == StatusCode::UNAUTHORIZED
        || status == StatusCode::FORBIDDEN;
    if auth {
        EtcdError::Denied {
            url: url.into(),
            reason: message,
        }
    } else {
        EtcdError::Status {
            url: url.into(),
            status: status.as_u16(),
            body: message,
        }
    }
}

/// etcd's JSON gateway writes 64-bit integers as strings, and leaves out zero values.
fn int64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Wire {
        Text(String),
        Number(i64),
    }
    match Wire::deserialize(deserializer)? {
        Wire::Number(number) => Ok(number),
        Wire::Text(text) => text.parse().map_err(serde::de::Error::custom),
    }
}

#[derive(Debug, Default, Deserialize)]
struct ErrorWire {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    message: String,
}

#[derive(Debug, Deserialize)]
struct KvWire {
    key: String,
    #[serde(default)]
    value: String,
    #[serde(default, deserialize_with = "int64")]
    create_revision: i64,
    #[serde(default, deserialize_with = "int64")]
    mod_revision: i64,
    #[serde(default, deserialize_with = "int64")]
    lease: i64,
}

impl TryFrom<KvWire> for KeyValue {
    type Error = EtcdError;

    fn try_from(wire: KvWire) -> Result<Self, EtcdError> {
        let invalid = |what: &str, error: base64::DecodeError| EtcdError::Invalid {
            url: "etcd".into(),
            reason: format!("a {what} is not base64: {error}"),
        };
        let key = BASE64
            .decode(&wire.key)
            .map_err(|error| invalid("key", error))?;
        Ok(KeyValue {
            key: String::from_utf8_lossy(&key).into_owned(),
            value: BASE64
                .decode(&wire.value)
                .map_err(|error| invalid("value", error))?,
            create_revision: wire.create_revision,
            mod_revision: wire.mod_revision,
            lease: wire.lease,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
struct RangeWire {
    #[serde(default)]
    kvs: Vec<KvWire>,
}

#[derive(Debug, Deserialize)]
struct DeleteWire {
    #[serde(default, deserialize_with = "int64")]
    deleted: i64,
}

#[derive(Debug, Deserialize)]
struct TxnWire {
    /// Left out when false.
    #[serde(default)]
    succeeded: bool,
    #[serde(default)]
    responses: Vec<TxnResponseWire>,
}

#[derive(Debug, Deserialize)]
struct TxnResponseWire {
    response_range: Option<RangeWire>,
}

#[derive(Debug, Deserialize)]
struct LeaseWire {
    #[serde(rename = "ID", deserialize_with = "int64")]
    id: i64,
}

#[derive(Debug, Deserialize)]
struct KeepAliveWire {
    result: Option<KeepAliveResult>,
}

#[derive(Debug, Deserialize)]
struct KeepAliveResult {
    /// Left out (0) when the lease is gone.
    #[serde(rename = "TTL", default, deserialize_with = "int64")]
    ttl: i64,
}

#[derive(Debug, Deserialize)]
struct StatusWire {
    #[serde(default)]
    version: String,
    #[serde(default)]
    leader: String,
    #[serde(default)]
    errors: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct AuthWire {
    token: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    mod fuzz {
        use proptest::prelude::*;

        use super::*;
        use crate::fuzzing::{CASES, json_shaped};

        const KEYS: &[&str] = &[
            "header",
            "revision",
            "kvs",
            "key",
            "value",
            "create_revision",
            "mod_revision",
            "version",
            "lease",
            "count",
            "deleted",
            "succeeded",
            "responses",
            "response_range",
            "ID",
            "TTL",
            "result",
            "error",
            "message",
            "code",
            "leader",
            "raftTerm",
            "dbSize",
            "token",
        ];

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(CASES))]

            /// Any answer shaped like etcd's JSON gateway's: parsed or refused, each key
            /// decoded or refused, never a panic.
            #[test]
            fn any_gateway_answer_parses_or_is_refused(value in json_shaped(KEYS)) {
                if let Ok(range) = serde_json::from_value::<RangeWire>(value.clone()) {
                    for kv in range.kvs {
                        let _ = KeyValue::try_from(kv);
                    }
                }
                let _ = serde_json::from_value::<TxnWire>(value.clone());
                let _ = serde_json::from_value::<DeleteWire>(value.clone());
                let _ = serde_json::from_value::<LeaseWire>(value.clone());
                let _ = serde_json::from_value::<KeepAliveWire>(value.clone());
                let _ = serde_json::from_value::<StatusWire>(value.clone());
                let _ = serde_json::from_value::<AuthWire>(value.clone());
                let _: ErrorWire = serde_json::from_value(value).unwrap_or_default();
            }
        }
    }

    #[test]
    fn a_prefix_range_ends_at_the_next_key_after_every_key_it_holds() {
        assert_eq!(prefix_end("/service/geo/"), b"/service/geo0");
        assert!(b"/service/geo/leader".as_slice() < prefix_end("/service/geo/").as_slice());
        // The sibling scope is outside the range.
        assert!(b"/service/geo2/leader".as_slice() >= prefix_end("/service/geo/").as_slice());
    }

    #[test]
    fn only_one_clusters_tree_may_be_deleted() {
        assert!(check_tree_prefix("/service/geo/").is_ok());
        for unsafe_prefix in ["/service/geo", "/service/", "/", "", "/service/../"] {
            assert!(
                check_tree_prefix(unsafe_prefix).is_err(),
                "{unsafe_prefix:?} must be refused"
            );
        }
    }

    /// Shapes recorded from etcd 3.4.23's gateway.
    #[test]
    fn the_gateways_answers_decode() {
        let range: RangeWire = serde_json::from_str(
            r#"{"header":{"revision":"2"},"kvs":[{"key":"L3NlcnZpY2UvZGVtby9sZWFkZXI=","create_revision":"2","mod_revision":"2","version":"1","value":"bm9kZTE="}],"count":"1"}"#,
        )
        .unwrap();
        let kv = KeyValue::try_from(range.kvs.into_iter().next().unwrap()).unwrap();
        assert_eq!(kv.key, "/service/demo/leader");
        assert_eq!(kv.text(), "node1");
        assert_eq!(kv.create_revision, 2);
        let empty: RangeWire = serde_json::from_str(r#"{"header":{"revision":"4"}}"#).unwrap();
        assert!(empty.kvs.is_empty());
        let failed: TxnWire = serde_json::from_str(
            r#"{"header":{"revision":"3"},"responses":[{"response_range":{"header":{"revision":"3"},"kvs":[{"key":"L3NlcnZpY2UvcGdoYS1sb2Nrcy9kZW1v","create_revision":"3","mod_revision":"3","version":"1","value":"aG9sZGVy","lease":"6174894936504497927"}],"count":"1"}}]}"#,
        )
        .unwrap();
        assert!(!failed.succeeded, "a failed txn leaves `succeeded` out");
        let expired: KeepAliveWire = serde_json::from_str(
            r#"{"result":{"header":{"revision":"4"},"ID":"6174894936504497927"}}"#,
        )
        .unwrap();
        assert_eq!(expired.result.unwrap().ttl, 0);
        let lease: LeaseWire =
            serde_json::from_str(r#"{"ID":"6174894936504497927","TTL":"15"}"#).unwrap();
        assert_eq!(lease.id, 6_174_894_936_504_497_927);
    }

    #[test]
    fn etcds_refusals_of_credentials_are_the_operators_to_fix() {
        let url = "http://127.0.0.3:2379/v3/kv/range";
        for (status, body) in [
            (
                400,
                r#"{"error":"etcdserver: authentication failed, invalid user ID or password","message":"etcdserver: authentication failed, invalid user ID or password","code":3}"#,
            ),
            (
                400,
                r#"{"error":"etcdserver: user name is empty","message":"etcdserver: user name is empty","code":3}"#,
            ),
            (
                401,
                r#"{"error":"etcdserver: invalid auth token","message":"etcdserver: invalid auth token","code":16}"#,
            ),
            (
                403,
                r#"{"error":"etcdserver: permission denied","message":"etcdserver: permission denied","code":7}"#,
            ),
        ] {
            let error = refusal(url, StatusCode::from_u16(status).unwrap(), body.as_bytes());
            assert!(matches!(error, EtcdError::Denied { .. }), "{error}");
            assert_eq!(error.exit(), crate::exit::Exit::BadInput);
        }
        let other = refusal(
            url,
            StatusCode::BAD_REQUEST,
            br#"{"error":"illegal base64 data","message":"illegal base64 data at input byte 0","code":3}"#,
        );
        assert!(
            matches!(other, EtcdError::Status { status: 400, .. }),
            "{other}"
        );
    }
}
