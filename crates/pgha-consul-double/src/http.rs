//! Consul's HTTP API over the store: routing (by prefix, because keys and service ids contain
//! `/`), query flags by presence (`?recurse`, `?passing`), blocking queries, the headers clients
//! read (`X-Consul-Index` on every KV answer, 404s included), ACL tokens, and the response
//! shapes of Consul's documentation.

// Handlers answer errors as ready responses: an error is built once per request, so the size
// of `Response` in `Err` costs nothing that matters here.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::duration;
use crate::json::{Fields, parse_object};
use crate::store::{
    Behavior, CheckRequest, HealthCheck, KvEntry, SERF_CHECK, Service, ServiceRequest, Session,
    SessionRequest, Status, Store,
};

const DEFAULT_WAIT: Duration = Duration::from_mins(5);
const MAX_WAIT: Duration = Duration::from_mins(10);

/// Shared by the handlers and the background tasks.
pub(crate) struct App {
    pub store: Mutex<Store>,
    /// Bumped on every write: blocked readers look again.
    pub changes: watch::Sender<u64>,
    pub token: Option<String>,
    pub stagger: bool,
}

impl App {
    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        self.store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Wakes every blocking query.
    pub(crate) fn changed(&self) {
        let index = self.store().index();
        self.changes.send_replace(index);
    }

    /// A random first-run delay within the interval, as Consul's agent staggers checks.
    pub(crate) fn stagger(&self, interval: Duration) -> Duration {
        if !self.stagger || interval.is_zero() {
            return Duration::ZERO;
        }
        let mut bytes = [0u8; 8];
        let _ = getrandom::fill(&mut bytes);
        let fraction = f64::from(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
            / f64::from(u32::MAX);
        interval.mul_f64(fraction)
    }
}

/// Query parameters; a bare `?recurse` is present with an empty value.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(uri: &Uri) -> Self {
        Query(
            url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                .map(|(key, value)| (key.into_owned(), value.into_owned()))
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// Present means true, unless it says `false` or `0`.
    fn flag(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|value| !matches!(value, "false" | "0"))
    }

    fn number(&self, name: &str) -> Result<Option<u64>, Response> {
        self.get(name)
            .map(|text| {
                text.parse()
                    .map_err(|_| bad_request(&format!("Invalid {name} parameter: {text:?}")))
            })
            .transpose()
    }
}

pub(crate) async fn handle(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = Query::parse(&uri);
    let path = percent_decode(uri.path());
    tracing::debug!("{method} {uri}");
    if let Some(refused) = refuse_token(&app, &headers, &query, &path) {
        return refused;
    }
    match route(&app, &method, &path, &query, &body).await {
        Ok(response) | Err(response) => response,
    }
}

fn refuse_token(app: &App, headers: &HeaderMap, query: &Query, path: &str) -> Option<Response> {
    let expected = app.token.as_deref()?;
    if path == "/v1/status/leader" {
        return None;
    }
    let given = headers
        .get("x-consul-token")
        .and_then(|value| value.to_str().ok())
        .or_else(|| query.get("token"));
    (given != Some(expected)).then(|| (StatusCode::FORBIDDEN, "ACL not found").into_response())
}

async fn route(
    app: &Arc<App>,
    method: &Method,
    path: &str,
    query: &Query,
    body: &[u8],
) -> Result<Response, Response> {
    if let Some(key) = path.strip_prefix("/v1/kv/") {
        return kv(app, method, key, query, body).await;
    }
    if let Some(rest) = path.strip_prefix("/v1/session/") {
        return session(app, method, rest, query, body).await;
    }
    if let Some(rest) = path.strip_prefix("/v1/agent/") {
        return agent(app, method, rest, body);
    }
    if let Some(rest) = path.strip_prefix("/v1/catalog/") {
        return catalog(app, rest, query).await;
    }
    if let Some(rest) = path.strip_prefix("/v1/health/") {
        return health(app, rest, query).await;
    }
    let leader = format!("{}:8300", app.store().address);
    match path {
        "/v1/status/leader" => Ok(json_response(&json!(leader), None)),
        "/v1/status/peers" => Ok(json_response(&json!([leader]), None)),
        _ => Err((StatusCode::NOT_FOUND, format!("no route for {path}")).into_response()),
    }
}

// --- KV ---

async fn kv(
    app: &Arc<App>,
    method: &Method,
    key: &str,
    query: &Query,
    body: &[u8],
) -> Result<Response, Response> {
    match *method {
        Method::GET => kv_read(app, key, query).await,
        Method::PUT => {
            let flags = query.number("flags")?;
            let cas = query.number("cas")?;
            let now = std::time::Instant::now();
            let written = {
                let mut store = app.store();
                if let Some(session) = query.get("acquire") {
                    store.kv_acquire(key, session, body.to_vec(), flags, cas, now)
                } else if let Some(session) = query.get("release") {
                    store.kv_release(key, session, body.to_vec(), flags)
                } else {
                    Ok(store.kv_put(key, body.to_vec(), flags, cas))
                }
            };
            let written = written.map_err(|error| server_error(&error.to_string()))?;
            app.changed();
            Ok(json_response(&json!(written), None))
        }
        Method::DELETE => {
            let cas = query.number("cas")?;
            let deleted = app.store().kv_delete(key, query.flag("recurse"), cas);
            app.changed();
            Ok(json_response(&json!(deleted), None))
        }
        _ => Err(method_not_allowed()),
    }
}

async fn kv_read(app: &Arc<App>, key: &str, query: &Query) -> Result<Response, Response> {
    let recurse = query.flag("recurse");
    let keys = query.flag("keys");
    let separator = query.get("separator").map(str::to_string);
    let (entries, index) = blocking(app, query, |store| {
        if recurse || keys {
            store.kv_list(key)
        } else {
            let (entry, index) = store.kv_get(key);
            (entry.into_iter().collect(), index)
        }
    })
    .await?;
    if entries.is_empty() {
        return Ok(with_index(StatusCode::NOT_FOUND.into_response(), index));
    }
    if keys {
        let names = key_names(&entries, key, separator.as_deref());
        return Ok(json_response(&json!(names), Some(index)));
    }
    if query.flag("raw") && !recurse {
        let value = entries[0].value.clone().unwrap_or_default();
        return Ok(with_index(value.into_response(), index));
    }
    let body: Vec<Value> = entries.iter().map(dir_entry).collect();
    Ok(json_response(&Value::Array(body), Some(index)))
}

/// `?keys&separator=/`: the keys, each cut after the first separator past the prefix.
fn key_names(entries: &[KvEntry], prefix: &str, separator: Option<&str>) -> Vec<String> {
    let mut names: Vec<String> = entries
        .iter()
        .map(
            |entry| match separator.filter(|separator| !separator.is_empty()) {
                Some(separator) => {
                    let rest = &entry.key[prefix.len()..];
                    match rest.find(separator) {
                        Some(at) => format!("{prefix}{}", &rest[..at + separator.len()]),
                        None => entry.key.clone(),
                    }
                }
                None => entry.key.clone(),
            },
        )
        .collect();
    names.dedup();
    names
}

fn dir_entry(entry: &KvEntry) -> Value {
    let mut value = json!({
        "LockIndex": entry.lock_index,
        "Key": entry.key,
        "Flags": entry.flags,
        "Value": entry.value.as_ref().map(|bytes| base64::engine::general_purpose::STANDARD.encode(bytes)),
        "CreateIndex": entry.create_index,
        "ModifyIndex": entry.modify_index,
    });
    // Go's `omitempty`: no `Session` on an unlocked key.
    if let Some(session) = &entry.session {
        value["Session"] = json!(session);
    }
    value
}

// --- Sessions ---

async fn session(
    app: &Arc<App>,
    method: &Method,
    rest: &str,
    query: &Query,
    body: &[u8],
) -> Result<Response, Response> {
    let now = std::time::Instant::now();
    let (action, id) = rest.split_once('/').unwrap_or((rest, ""));
    match (method, action) {
        (&Method::PUT, "create") => {
            let request = session_request(body)?;
            let id = new_uuid();
            let created = app.store().session_create(id, request, now);
            let id = created.map_err(|error| server_error(&error.to_string()))?;
            app.changed();
            Ok(json_response(&json!({ "ID": id }), None))
        }
        (&Method::PUT, "renew") => {
            let renewed = app.store().session_renew(id, now);
            match renewed {
                Some(session) => Ok(json_response(&json!([session_json(&session)]), None)),
                None => Err((
                    StatusCode::NOT_FOUND,
                    format!("Session id '{id}' not found"),
                )
                    .into_response()),
            }
        }
        (&Method::PUT, "destroy") => {
            app.store().session_destroy(id, now);
            app.changed();
            Ok(json_response(&json!(true), None))
        }
        (&Method::GET, "info" | "list" | "node") => {
            let id = id.to_string();
            let action = action.to_string();
            let (sessions, index) = blocking(app, query, |store| {
                let sessions: Vec<Session> = match action.as_str() {
                    "info" => store.session(&id).into_iter().collect(),
                    "node" => store
                        .sessions()
                        .into_iter()
                        .filter(|session| session.node == id)
                        .collect(),
                    _ => store.sessions(),
                };
                (sessions, store.index())
            })
            .await?;
            let body: Vec<Value> = sessions.iter().map(session_json).collect();
            Ok(json_response(&Value::Array(body), Some(index)))
        }
        _ => Err(method_not_allowed()),
    }
}

fn session_request(body: &[u8]) -> Result<SessionRequest, Response> {
    let decode =
        |error: crate::json::BodyError| bad_request(&format!("Request decode failed: {error}"));
    let value = parse_object(body).map_err(decode)?;
    let fields = Fields::of(&value).map_err(decode)?;
    let behavior = match fields.string("Behavior").map_err(decode)?.as_deref() {
        None | Some("") => None,
        Some("release") => Some(Behavior::Release),
        Some("delete") => Some(Behavior::Delete),
        Some(other) => return Err(bad_request(&format!("Invalid Behavior setting '{other}'"))),
    };
    // LockDelay: a duration string, or a number — seconds below 1000, nanoseconds above.
    let lock_delay = match fields.get("LockDelay") {
        Some(Value::Number(number)) => number.as_u64().map(|value| {
            if value < 1000 {
                Duration::from_secs(value)
            } else {
                Duration::from_nanos(value)
            }
        }),
        _ => fields.duration("LockDelay").map_err(decode)?,
    };
    let ttl_text = fields.string("TTL").map_err(decode)?.unwrap_or_default();
    Ok(SessionRequest {
        name: fields.string("Name").map_err(decode)?.unwrap_or_default(),
        lock_delay,
        behavior,
        ttl: fields.duration("TTL").map_err(decode)?,
        ttl_text,
        checks: if fields.contains("Checks") {
            Some(
                fields
                    .strings("Checks")
                    .map_err(decode)?
                    .unwrap_or_default(),
            )
        } else {
            None
        },
    })
}

fn session_json(session: &Session) -> Value {
    json!({
        "ID": session.id,
        "Name": session.name,
        "Node": session.node,
        "LockDelay": u64::try_from(session.lock_delay.as_nanos()).unwrap_or(u64::MAX),
        "Behavior": session.behavior.as_str(),
        "TTL": session.ttl_text,
        "Checks": session.checks,
        "NodeChecks": null,
        "ServiceChecks": null,
        "CreateIndex": session.create_index,
        "ModifyIndex": session.modify_index,
    })
}

/// A random (version 4) UUID, as Consul gives session ids.
fn new_uuid() -> String {
    let mut bytes = [0u8; 16];
    let _ = getrandom::fill(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = bytes.iter().fold(String::new(), |mut hex, byte| {
        let _ = write!(hex, "{byte:02x}");
        hex
    });
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

// --- Agent ---

fn agent(app: &Arc<App>, method: &Method, rest: &str, body: &[u8]) -> Result<Response, Response> {
    let now = std::time::Instant::now();
    if rest == "service/register" && method == Method::PUT {
        let request = service_request(body)?;
        app.store()
            .register_service(request, now, |interval| app.stagger(interval));
        app.changed();
        return Ok(StatusCode::OK.into_response());
    }
    if let Some(id) = rest.strip_prefix("service/deregister/") {
        // The id is the rest of the path: Patroni's ids contain `/` (`geo/node1`).
        let removed = app.store().deregister_service(id, now);
        if !removed {
            return Err((
                StatusCode::NOT_FOUND,
                format!("Unknown service ID {id:?}. Ensure that the service ID is passed, not the service name."),
            )
                .into_response());
        }
        app.changed();
        return Ok(StatusCode::OK.into_response());
    }
    let store = app.store();
    match rest {
        "services" => {
            let services: serde_json::Map<String, Value> = store
                .services()
                .iter()
                .map(|service| (service.id.clone(), agent_service(service, &store)))
                .collect();
            Ok(json_response(&Value::Object(services), None))
        }
        "checks" => {
            let checks: serde_json::Map<String, Value> = store
                .checks()
                .iter()
                .map(|check| (check.id.clone(), check_json(check, &store)))
                .collect();
            Ok(json_response(&Value::Object(checks), None))
        }
        "self" => Ok(json_response(
            &json!({
                "Config": {
                    "Datacenter": store.datacenter,
                    "NodeName": store.node,
                    "NodeID": node_id(&store.node),
                    "Server": true,
                    "Version": "1.20.0 (pgha-consul-double)",
                },
                "Member": { "Name": store.node, "Addr": store.address, "Port": 8301, "Status": 1 },
            }),
            None,
        )),
        _ => Err((
            StatusCode::NOT_FOUND,
            format!("no route for /v1/agent/{rest}"),
        )
            .into_response()),
    }
}

fn service_request(body: &[u8]) -> Result<ServiceRequest, Response> {
    let decode =
        |error: crate::json::BodyError| bad_request(&format!("Request decode failed: {error}"));
    let value = parse_object(body).map_err(decode)?;
    let fields = Fields::of(&value).map_err(decode)?;
    let name = fields
        .string("Name")
        .map_err(decode)?
        .filter(|name| !name.is_empty())
        .ok_or_else(|| bad_request("Missing service name"))?;
    let mut definitions = fields.objects("Checks").map_err(decode)?;
    definitions.extend(fields.object("Check").map_err(decode)?);
    let checks = definitions
        .iter()
        .map(|check| check_request(*check).map_err(|reason| bad_request(&reason)))
        .collect::<Result<Vec<_>, _>>()?;
    let port = fields.u64("Port").map_err(decode)?.unwrap_or(0);
    Ok(ServiceRequest {
        id: fields
            .string("ID")
            .map_err(decode)?
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| name.clone()),
        name,
        address: fields
            .string("Address")
            .map_err(decode)?
            .unwrap_or_default(),
        port: u16::try_from(port).map_err(|_| bad_request("Invalid Port"))?,
        tags: fields.strings("Tags").map_err(decode)?.unwrap_or_default(),
        meta: fields.string_map("Meta").map_err(decode)?,
        enable_tag_override: fields
            .bool("EnableTagOverride")
            .map_err(decode)?
            .unwrap_or(false),
        checks,
    })
}

fn check_request(check: Fields<'_>) -> Result<CheckRequest, String> {
    let text = |error: crate::json::BodyError| format!("Request decode failed: {error}");
    let Some(http) = check.string("HTTP").map_err(text)? else {
        return Err(
            "pgha-consul-double runs HTTP checks only (no script, TCP, gRPC or TTL checks)".into(),
        );
    };
    let interval = check
        .duration("Interval")
        .map_err(text)?
        .filter(|interval| !interval.is_zero())
        .ok_or("Interval must be > 0 for Script, HTTP, or TCP checks")?;
    Ok(CheckRequest {
        id: check.string("CheckID").map_err(text)?,
        name: check.string("Name").map_err(text)?,
        http,
        interval,
        timeout: check.duration("Timeout").map_err(text)?,
        deregister_after: check
            .duration("DeregisterCriticalServiceAfter")
            .map_err(text)?,
    })
}

fn agent_service(service: &Service, store: &Store) -> Value {
    json!({
        "ID": service.id,
        "Service": service.name,
        "Tags": service.tags,
        "Meta": service.meta,
        "Port": service.port,
        "Address": service.address,
        "Weights": { "Passing": 1, "Warning": 1 },
        "EnableTagOverride": service.enable_tag_override,
        "Datacenter": store.datacenter,
    })
}

// --- Catalog and health ---

async fn catalog(app: &Arc<App>, rest: &str, query: &Query) -> Result<Response, Response> {
    if rest == "services" {
        let (services, index) = blocking(app, query, |store| {
            let mut services: BTreeMap<String, Vec<String>> =
                BTreeMap::from([("consul".to_string(), Vec::new())]);
            for service in store.services() {
                let tags = services.entry(service.name.clone()).or_default();
                tags.extend(service.tags.iter().cloned());
                tags.sort();
                tags.dedup();
            }
            (services, store.catalog_index())
        })
        .await?;
        return Ok(json_response(&json!(services), Some(index)));
    }
    if rest == "nodes" {
        let store = app.store();
        let node = node_json(&store);
        return Ok(json_response(&json!([node]), Some(store.catalog_index())));
    }
    let Some(name) = rest.strip_prefix("service/") else {
        return Err((
            StatusCode::NOT_FOUND,
            format!("no route for /v1/catalog/{rest}"),
        )
            .into_response());
    };
    let tags: Vec<String> = query.all("tag").into_iter().map(str::to_string).collect();
    let name = name.to_string();
    let (entries, index) = blocking(app, query, |store| {
        let entries: Vec<Value> = instances(store, &name, &tags)
            .iter()
            .map(|service| catalog_entry(service, store))
            .collect();
        (entries, store.catalog_index())
    })
    .await?;
    Ok(json_response(&Value::Array(entries), Some(index)))
}

async fn health(app: &Arc<App>, rest: &str, query: &Query) -> Result<Response, Response> {
    let (kind, name) = rest.split_once('/').unwrap_or((rest, ""));
    let name = name.to_string();
    let tags: Vec<String> = query.all("tag").into_iter().map(str::to_string).collect();
    let passing = query.flag("passing");
    let kind = kind.to_string();
    let (body, index) = blocking(app, query, |store| {
        let body = match kind.as_str() {
            "service" => Some(Value::Array(health_entries(store, &name, &tags, passing))),
            "checks" => Some(Value::Array(
                store
                    .checks()
                    .iter()
                    .filter(|check| check.service_name == name)
                    .map(|check| check_json(check, store))
                    .collect(),
            )),
            "state" | "node" => Some(Value::Array(
                all_checks(store)
                    .into_iter()
                    .filter(|check| {
                        kind == "node"
                            || name == "any"
                            || check["Status"].as_str() == Some(name.as_str())
                    })
                    .collect(),
            )),
            _ => None,
        };
        (body, store.catalog_index())
    })
    .await?;
    match body {
        Some(body) => Ok(json_response(&body, Some(index))),
        None => Err((
            StatusCode::NOT_FOUND,
            format!("no route for /v1/health/{rest}"),
        )
            .into_response()),
    }
}

fn instances(store: &Store, name: &str, tags: &[String]) -> Vec<Service> {
    store
        .services()
        .into_iter()
        .filter(|service| service.name == name)
        .filter(|service| tags.iter().all(|tag| service.tags.contains(tag)))
        .collect()
}

fn health_entries(store: &Store, name: &str, tags: &[String], passing: bool) -> Vec<Value> {
    instances(store, name, tags)
        .iter()
        .filter_map(|service| {
            let checks = store.service_checks(&service.id);
            // `?passing` drops an instance if any check, the node's included, is not passing.
            if passing && checks.iter().any(|check| check.status != Status::Passing) {
                return None;
            }
            let mut all = vec![serf_check(store)];
            all.extend(checks.iter().map(|check| check_json(check, store)));
            Some(json!({
                "Node": node_json(store),
                "Service": {
                    "ID": service.id,
                    "Service": service.name,
                    "Tags": service.tags,
                    "Address": service.address,
                    "Port": service.port,
                    "Meta": service.meta,
                    "Weights": { "Passing": 1, "Warning": 1 },
                    "EnableTagOverride": service.enable_tag_override,
                    "Connect": {},
                    "PeerName": "",
                    "CreateIndex": service.create_index,
                    "ModifyIndex": service.modify_index,
                },
                "Checks": all,
            }))
        })
        .collect()
}

fn all_checks(store: &Store) -> Vec<Value> {
    std::iter::once(serf_check(store))
        .chain(store.checks().iter().map(|check| check_json(check, store)))
        .collect()
}

fn catalog_entry(service: &Service, store: &Store) -> Value {
    json!({
        "ID": node_id(&store.node),
        "Node": store.node,
        "Address": store.address,
        "Datacenter": store.datacenter,
        "TaggedAddresses": { "lan": store.address, "wan": store.address },
        "NodeMeta": {},
        "ServiceID": service.id,
        "ServiceName": service.name,
        "ServiceTags": service.tags,
        "ServiceAddress": service.address,
        "ServicePort": service.port,
        "ServiceMeta": service.meta,
        "ServiceWeights": { "Passing": 1, "Warning": 1 },
        "ServiceEnableTagOverride": service.enable_tag_override,
        "ServiceKind": "",
        "ServiceConnect": {},
        "CreateIndex": service.create_index,
        "ModifyIndex": service.modify_index,
    })
}

fn node_json(store: &Store) -> Value {
    json!({
        "ID": node_id(&store.node),
        "Node": store.node,
        "Address": store.address,
        "Datacenter": store.datacenter,
        "TaggedAddresses": { "lan": store.address, "wan": store.address },
        "Meta": {},
        "CreateIndex": store.node_index(),
        "ModifyIndex": store.node_index(),
    })
}

fn serf_check(store: &Store) -> Value {
    json!({
        "Node": store.node,
        "CheckID": SERF_CHECK,
        "Name": "Serf Health Status",
        "Status": "passing",
        "Notes": "",
        "Output": "Agent alive and reachable",
        "ServiceID": "",
        "ServiceName": "",
        "ServiceTags": [],
        "Type": "",
        "Interval": "",
        "Timeout": "",
        "ExposedPort": 0,
        "Definition": {},
        "CreateIndex": store.node_index(),
        "ModifyIndex": store.node_index(),
    })
}

fn check_json(check: &HealthCheck, store: &Store) -> Value {
    let tags = store
        .services()
        .into_iter()
        .find(|service| service.id == check.service_id)
        .map(|service| service.tags)
        .unwrap_or_default();
    json!({
        "Node": store.node,
        "CheckID": check.id,
        "Name": check.name,
        "Status": check.status.as_str(),
        "Notes": "",
        "Output": check.output,
        "ServiceID": check.service_id,
        "ServiceName": check.service_name,
        "ServiceTags": tags,
        "Type": "http",
        "Interval": duration::format(check.interval),
        "Timeout": duration::format(check.timeout),
        "ExposedPort": 0,
        "Definition": {},
        "CreateIndex": check.create_index,
        "ModifyIndex": check.modify_index,
    })
}

/// A stable UUID-shaped id for the node.
fn node_id(node: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in node.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    let hex = format!("{hash:016x}{:016x}", hash.rotate_left(17));
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

// --- Blocking queries and responses ---

/// Runs `read` until its index passes `?index` or `?wait` (default 5 min, at most 10) ends; with
/// no index, at once. Consul adds random jitter of up to wait/16; the double does not, so tests
/// are deterministic.
async fn blocking<T>(
    app: &Arc<App>,
    query: &Query,
    read: impl Fn(&Store) -> (T, u64),
) -> Result<(T, u64), Response> {
    let wanted = query.number("index")?.unwrap_or(0);
    let wait = match query.get("wait") {
        Some(text) => duration::parse(text)
            .map_err(|error| bad_request(&format!("Invalid wait time: {error}")))?,
        None => DEFAULT_WAIT,
    }
    .min(MAX_WAIT);
    let deadline = Instant::now() + wait;
    let mut changes = app.changes.subscribe();
    loop {
        changes.borrow_and_update();
        let (value, index) = read(&app.store());
        if wanted == 0 || index > wanted {
            return Ok((value, index));
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            _ => return Ok(read(&app.store())),
        }
    }
}

fn json_response(value: &Value, index: Option<u64>) -> Response {
    let mut response = (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response();
    if let Some(index) = index {
        response = with_index(response, index);
    }
    response
}

/// The headers every read carries; Go writes them canonicalised (`Knownleader`).
fn with_index(mut response: Response, index: u64) -> Response {
    let headers = response.headers_mut();
    headers.insert("X-Consul-Index", HeaderValue::from(index.max(1)));
    headers.insert("X-Consul-Knownleader", HeaderValue::from_static("true"));
    headers.insert("X-Consul-Lastcontact", HeaderValue::from_static("0"));
    headers.insert(
        "X-Consul-Effective-Consistency",
        HeaderValue::from_static("leader"),
    );
    response
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, message.to_string()).into_response()
}

/// Consul's 500s carry the text clients parse (`invalid session`, `Invalid Session TTL`).
fn server_error(message: &str) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, message.to_string()).into_response()
}

fn method_not_allowed() -> Response {
    StatusCode::METHOD_NOT_ALLOWED.into_response()
}

fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%'
            && let Some(hex) = path.get(index + 1..index + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What Patroni needs from the double, over real HTTP, in the shapes py-consul sends.
#[cfg(test)]
mod tests {
    use super::*;

    async fn serve() -> String {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (changes, _) = watch::channel(1);
        let app = Arc::new(App {
            store: Mutex::new(Store::new("node", "dc1", "127.0.0.1")),
            changes,
            token: None,
            stagger: false,
        });
        let router = axum::Router::new().fallback(handle).with_state(app);
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("http://{address}")
    }

    async fn get(url: &str) -> (u16, Option<u64>, String) {
        call(reqwest::Method::GET, url, "").await
    }

    async fn put(url: &str, body: &str) -> (u16, Option<u64>, String) {
        call(reqwest::Method::PUT, url, body).await
    }

    async fn call(method: reqwest::Method, url: &str, body: &str) -> (u16, Option<u64>, String) {
        let response = reqwest::Client::new()
            .request(method, url)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let index = response
            .headers()
            .get("x-consul-index")
            .and_then(|value| value.to_str().ok()?.parse().ok());
        (
            response.status().as_u16(),
            index,
            response.text().await.unwrap(),
        )
    }

    #[tokio::test]
    async fn patroni_s_session_and_leader_lock_over_http() {
        let base = serve().await;
        let (status, index, _) = get(&format!("{base}/v1/kv/service/geo/?recurse=1")).await;
        assert_eq!(
            (status, index.is_some()),
            (404, true),
            "X-Consul-Index on a 404"
        );
        // py-consul's lower-case keys and Go durations with fractions.
        let body = r#"{"name":"geo-node1","checks":[],"lockdelay":"0.001s","behavior":"delete","ttl":"10.0s"}"#;
        let (status, _, created) = put(&format!("{base}/v1/session/create"), body).await;
        assert_eq!(status, 200, "{created}");
        let session: Value = serde_json::from_str(&created).unwrap();
        let session = session["ID"].as_str().unwrap().to_string();
        let leader = format!("{base}/v1/kv/service/geo/leader");
        let (_, _, taken) = put(&format!("{leader}?acquire={session}"), "node1").await;
        assert_eq!(taken, "true");
        let (_, index, listed) = get(&format!("{base}/v1/kv/service/geo/?recurse")).await;
        let listed: Value = serde_json::from_str(&listed).unwrap();
        assert_eq!(listed[0]["Session"], session.as_str());
        assert_eq!(listed[0]["Value"], "bm9kZTE=");
        // A replica's watch on the leader key wakes when the session ends.
        let watch = tokio::spawn({
            let url = format!("{leader}?index={}&wait=9.5s", index.unwrap());
            async move { get(&url).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = std::time::Instant::now();
        put(&format!("{base}/v1/session/destroy/{session}"), "").await;
        let (status, woke_at, _) = watch.await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(2), "woke at once");
        assert_eq!(status, 404, "behavior delete took the key");
        assert!(woke_at > index);
        let (status, _, _) = put(&format!("{base}/v1/session/renew/{session}"), "").await;
        assert_eq!(
            status, 404,
            "renew of a gone session is 404, so Patroni makes a new one"
        );
        let (status, _, text) = put(&format!("{leader}?acquire={session}"), "node1").await;
        assert_eq!(
            (status, text.as_str()),
            (500, format!("invalid session \"{session}\"").as_str())
        );
        let (status, _, text) = put(&format!("{base}/v1/session/create"), r#"{"ttl":"5s"}"#).await;
        assert_eq!(status, 500);
        assert!(text.starts_with("Invalid Session TTL"), "{text}");
    }

    #[tokio::test]
    async fn services_register_with_patroni_s_body_and_deregister_by_an_id_with_a_slash() {
        let base = serve().await;
        let body = r#"{"name":"geo","enabletagoverride":true,"id":"geo/node1","address":"127.0.0.31","port":5432,"tags":["primary","master"],"checks":[{"http":"http://127.0.0.1:9/primary","interval":"5s","DeregisterCriticalServiceAfter":"100.0s"}]}"#;
        let (status, _, text) = put(&format!("{base}/v1/agent/service/register"), body).await;
        assert_eq!(status, 200, "{text}");
        let (_, _, all) = get(&format!("{base}/v1/health/service/geo?tag=primary")).await;
        let all: Value = serde_json::from_str(&all).unwrap();
        assert_eq!(all[0]["Service"]["ID"], "geo/node1");
        assert_eq!(
            all[0]["Checks"][1]["Status"], "critical",
            "a new check starts critical"
        );
        let (_, _, passing) = get(&format!("{base}/v1/health/service/geo?passing")).await;
        assert_eq!(passing, "[]", "`?passing` by presence");
        let (status, _, _) =
            put(&format!("{base}/v1/agent/service/deregister/geo/node1"), "").await;
        assert_eq!(status, 200);
        let (status, _, _) =
            put(&format!("{base}/v1/agent/service/deregister/geo/node1"), "").await;
        assert_eq!(status, 404);
    }
}
