//! The double's whole state — KV with tombstones, sessions, the agent's services and checks,
//! one global index — and every rule that changes it. Pure: time comes in as `now`, so tests
//! need no clock, and the HTTP layer only translates. One write takes one new index, as one
//! Raft entry does in Consul.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// The node check every node has; sessions are bound to it unless they say otherwise.
pub(crate) const SERF_CHECK: &str = "serfHealth";
/// Consul's bounds for a session TTL.
const MIN_TTL: Duration = Duration::from_secs(10);
const MAX_TTL: Duration = Duration::from_hours(24);
const DEFAULT_LOCK_DELAY: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KvEntry {
    pub key: String,
    pub value: Option<Vec<u8>>,
    pub flags: u64,
    pub session: Option<String>,
    pub create_index: u64,
    pub modify_index: u64,
    pub lock_index: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Behavior {
    Release,
    Delete,
}

impl Behavior {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Behavior::Release => "release",
            Behavior::Delete => "delete",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub id: String,
    pub name: String,
    pub node: String,
    pub lock_delay: Duration,
    pub behavior: Behavior,
    pub ttl: Option<Duration>,
    /// The TTL exactly as the client wrote it (Consul echoes it back).
    pub ttl_text: String,
    pub checks: Vec<String>,
    pub create_index: u64,
    pub modify_index: u64,
    /// 2 × TTL after the last renewal (Consul's `SessionTTLMultiplier`).
    pub expires: Option<Instant>,
}

/// What a client asks for in `PUT /v1/session/create`.
#[derive(Debug, Clone, Default)]
pub(crate) struct SessionRequest {
    pub name: String,
    pub lock_delay: Option<Duration>,
    pub behavior: Option<Behavior>,
    pub ttl: Option<Duration>,
    pub ttl_text: String,
    /// `None`: absent, bound to `serfHealth`; `Some(empty)`: a TTL-only session.
    pub checks: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Status {
    Passing,
    Warning,
    Critical,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Passing => "passing",
            Status::Warning => "warning",
            Status::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Service {
    pub id: String,
    pub name: String,
    pub address: String,
    pub port: u16,
    pub tags: Vec<String>,
    pub meta: BTreeMap<String, String>,
    pub enable_tag_override: bool,
    pub create_index: u64,
    pub modify_index: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct HealthCheck {
    pub id: String,
    pub name: String,
    pub service_id: String,
    pub service_name: String,
    pub status: Status,
    pub output: String,
    pub http: Option<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub deregister_after: Option<Duration>,
    pub critical_since: Option<Instant>,
    pub next_run: Instant,
    pub create_index: u64,
    pub modify_index: u64,
}

/// A check as registered with a service.
#[derive(Debug, Clone)]
pub(crate) struct CheckRequest {
    pub id: Option<String>,
    pub name: Option<String>,
    pub http: String,
    pub interval: Duration,
    pub timeout: Option<Duration>,
    pub deregister_after: Option<Duration>,
}

#[derive(Debug, Clone)]
pub(crate) struct ServiceRequest {
    pub id: String,
    pub name: String,
    pub address: String,
    pub port: u16,
    pub tags: Vec<String>,
    pub meta: BTreeMap<String, String>,
    pub enable_tag_override: bool,
    pub checks: Vec<CheckRequest>,
}

/// Errors whose text clients parse: keep them Consul's, word for word.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum StoreError {
    #[error("invalid session \"{0}\"")]
    InvalidSession(String),
    #[error("Invalid Session TTL '{0}', must be between [10s=24h0m0s]")]
    InvalidTtl(u128),
    #[error("Missing check '{0}' registration")]
    MissingCheck(String),
    #[error("Check '{0}' is in critical state")]
    CriticalCheck(String),
}

#[derive(Debug)]
pub(crate) struct Store {
    pub node: String,
    pub datacenter: String,
    pub address: String,
    index: u64,
    kv: BTreeMap<String, KvEntry>,
    /// Deleted keys and the index of their deletion: a blocking query on a deleted key wakes.
    tombstones: BTreeMap<String, u64>,
    kv_index: u64,
    lock_delays: HashMap<String, Instant>,
    sessions: BTreeMap<String, Session>,
    services: BTreeMap<String, Service>,
    checks: BTreeMap<String, HealthCheck>,
    catalog_index: u64,
    node_index: u64,
}

impl Store {
    pub(crate) fn new(node: &str, datacenter: &str, address: &str) -> Self {
        Store {
            node: node.into(),
            datacenter: datacenter.into(),
            address: address.into(),
            // The node's registration is the first write.
            index: 1,
            kv: BTreeMap::new(),
            tombstones: BTreeMap::new(),
            kv_index: 1,
            lock_delays: HashMap::new(),
            sessions: BTreeMap::new(),
            services: BTreeMap::new(),
            checks: BTreeMap::new(),
            catalog_index: 1,
            node_index: 1,
        }
    }

    fn next_index(&mut self) -> u64 {
        self.index += 1;
        self.index
    }

    pub(crate) fn node_index(&self) -> u64 {
        self.node_index
    }

    // --- KV ---

    /// One key and the index a client watches it by: its ModifyIndex, or the KV table's
    /// index (tombstones included) when it does not exist.
    pub(crate) fn kv_get(&self, key: &str) -> (Option<KvEntry>, u64) {
        match self.kv.get(key) {
            Some(entry) => (Some(entry.clone()), entry.modify_index.max(1)),
            None => (None, self.kv_index.max(1)),
        }
    }

    /// Every key starting with `prefix` (a plain string prefix, as Consul's), and the highest
    /// index under it, tombstones included; the table's index when there is none.
    pub(crate) fn kv_list(&self, prefix: &str) -> (Vec<KvEntry>, u64) {
        let entries: Vec<KvEntry> = self
            .kv
            .range(prefix.to_string()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(_, entry)| entry.clone())
            .collect();
        let highest = entries
            .iter()
            .map(|entry| entry.modify_index)
            .chain(
                self.tombstones
                    .range(prefix.to_string()..)
                    .take_while(|(key, _)| key.starts_with(prefix))
                    .map(|(_, index)| *index),
            )
            .max();
        (entries, highest.unwrap_or(self.kv_index).max(1))
    }

    /// A plain PUT, or with `cas`: create-only for 0, else the key's ModifyIndex must match.
    pub(crate) fn kv_put(
        &mut self,
        key: &str,
        value: Vec<u8>,
        flags: Option<u64>,
        cas: Option<u64>,
    ) -> bool {
        if !self.cas_holds(key, cas) {
            return false;
        }
        if let Some(entry) = self.kv.get(key) {
            // Consul skips a write that changes nothing: the index stays.
            if entry.value.as_deref() == Some(value.as_slice())
                && flags.is_none_or(|flags| flags == entry.flags)
            {
                return true;
            }
        }
        let index = self.next_index();
        self.write_entry(key, value, flags, index);
        true
    }

    fn cas_holds(&self, key: &str, cas: Option<u64>) -> bool {
        match (cas, self.kv.get(key)) {
            (None, _) | (Some(0), None) => true,
            (Some(expected), Some(entry)) => entry.modify_index == expected,
            (Some(_), None) => false,
        }
    }

    fn write_entry(&mut self, key: &str, value: Vec<u8>, flags: Option<u64>, index: u64) {
        self.tombstones.remove(key);
        self.kv_index = index;
        let entry = self.kv.entry(key.to_string()).or_insert_with(|| KvEntry {
            key: key.to_string(),
            value: None,
            flags: 0,
            session: None,
            create_index: index,
            modify_index: index,
            lock_index: 0,
        });
        entry.value = Some(value);
        if let Some(flags) = flags {
            entry.flags = flags;
        }
        entry.modify_index = index;
    }

    /// `?acquire=<session>`: false when another session holds the key, or within the lock-delay
    /// after a holder's session ended; the holder may write again.
    pub(crate) fn kv_acquire(
        &mut self,
        key: &str,
        session: &str,
        value: Vec<u8>,
        flags: Option<u64>,
        cas: Option<u64>,
        now: Instant,
    ) -> Result<bool, StoreError> {
        if !self.sessions.contains_key(session) {
            return Err(StoreError::InvalidSession(session.into()));
        }
        if !self.cas_holds(key, cas) {
            return Ok(false);
        }
        let holder = self.kv.get(key).and_then(|entry| entry.session.clone());
        match holder.as_deref() {
            Some(other) if other != session => return Ok(false),
            Some(_) => {}
            None => {
                if self.lock_delays.get(key).is_some_and(|until| *until > now) {
                    return Ok(false);
                }
            }
        }
        let index = self.next_index();
        self.write_entry(key, value, flags, index);
        if let Some(entry) = self.kv.get_mut(key)
            && holder.is_none()
        {
            entry.lock_index += 1;
            entry.session = Some(session.to_string());
        }
        Ok(true)
    }

    /// `?release=<session>`: only the holder; the value stays.
    pub(crate) fn kv_release(
        &mut self,
        key: &str,
        session: &str,
        value: Vec<u8>,
        flags: Option<u64>,
    ) -> Result<bool, StoreError> {
        if !self.sessions.contains_key(session) {
            return Err(StoreError::InvalidSession(session.into()));
        }
        let held = self
            .kv
            .get(key)
            .is_some_and(|entry| entry.session.as_deref() == Some(session));
        if !held {
            return Ok(false);
        }
        let index = self.next_index();
        self.write_entry(key, value, flags, index);
        if let Some(entry) = self.kv.get_mut(key) {
            entry.session = None;
        }
        Ok(true)
    }

    /// DELETE, of one key or (`recurse`) of every key starting with the text: `service/geo`
    /// also takes `service/geo2/…`, exactly like Consul. A CAS delete of a missing key is true.
    pub(crate) fn kv_delete(&mut self, key: &str, recurse: bool, cas: Option<u64>) -> bool {
        if recurse {
            let doomed: Vec<String> = self
                .kv
                .range(key.to_string()..)
                .take_while(|(name, _)| name.starts_with(key))
                .map(|(name, _)| name.clone())
                .collect();
            if !doomed.is_empty() {
                let index = self.next_index();
                for name in doomed {
                    self.bury(&name, index);
                }
            }
            return true;
        }
        match (self.kv.get(key), cas) {
            (None, _) => true,
            (Some(entry), Some(expected)) if entry.modify_index != expected => false,
            (Some(_), _) => {
                let index = self.next_index();
                self.bury(key, index);
                true
            }
        }
    }

    fn bury(&mut self, key: &str, index: u64) {
        self.kv.remove(key);
        self.tombstones.insert(key.to_string(), index);
        self.kv_index = index;
    }

    // --- Sessions ---

    pub(crate) fn session_create(
        &mut self,
        id: String,
        request: SessionRequest,
        now: Instant,
    ) -> Result<String, StoreError> {
        if let Some(ttl) = request.ttl
            && !ttl.is_zero()
            && !(MIN_TTL..=MAX_TTL).contains(&ttl)
        {
            return Err(StoreError::InvalidTtl(ttl.as_nanos()));
        }
        let checks = request
            .checks
            .unwrap_or_else(|| vec![SERF_CHECK.to_string()]);
        for check in &checks {
            if check == SERF_CHECK {
                continue;
            }
            match self.checks.get(check) {
                None => return Err(StoreError::MissingCheck(check.clone())),
                Some(found) if found.status == Status::Critical => {
                    return Err(StoreError::CriticalCheck(check.clone()));
                }
                Some(_) => {}
            }
        }
        let ttl = request.ttl.filter(|ttl| !ttl.is_zero());
        let index = self.next_index();
        self.sessions.insert(
            id.clone(),
            Session {
                id: id.clone(),
                name: request.name,
                node: self.node.clone(),
                lock_delay: request.lock_delay.unwrap_or(DEFAULT_LOCK_DELAY),
                behavior: request.behavior.unwrap_or(Behavior::Release),
                ttl,
                ttl_text: if ttl.is_some() {
                    request.ttl_text
                } else {
                    String::new()
                },
                checks,
                create_index: index,
                modify_index: index,
                expires: ttl.map(|ttl| now + ttl * 2),
            },
        );
        Ok(id)
    }

    /// Renewal restarts the 2 × TTL countdown; `None` when the session is gone.
    pub(crate) fn session_renew(&mut self, id: &str, now: Instant) -> Option<Session> {
        let session = self.sessions.get_mut(id)?;
        session.expires = session.ttl.map(|ttl| now + ttl * 2);
        Some(session.clone())
    }

    pub(crate) fn session(&self, id: &str) -> Option<Session> {
        self.sessions.get(id).cloned()
    }

    pub(crate) fn sessions(&self) -> Vec<Session> {
        self.sessions.values().cloned().collect()
    }

    /// The index of the sessions table, for session reads.
    pub(crate) fn index(&self) -> u64 {
        self.index
    }

    pub(crate) fn session_destroy(&mut self, id: &str, now: Instant) {
        self.invalidate(&[id.to_string()], now);
    }

    /// Ends every session whose TTL ran out; true when one did.
    pub(crate) fn expire_sessions(&mut self, now: Instant) -> bool {
        let expired: Vec<String> = self
            .sessions
            .values()
            .filter(|session| session.expires.is_some_and(|expires| expires <= now))
            .map(|session| session.id.clone())
            .collect();
        self.invalidate(&expired, now);
        !expired.is_empty()
    }

    /// Ends sessions as one write: held keys are deleted (`delete`) or unlocked (`release`),
    /// and nobody may take them for the session's lock-delay.
    fn invalidate(&mut self, ids: &[String], now: Instant) {
        let sessions: Vec<Session> = ids
            .iter()
            .filter_map(|id| self.sessions.remove(id))
            .collect();
        if sessions.is_empty() {
            return;
        }
        let index = self.next_index();
        for session in sessions {
            let held: Vec<String> = self
                .kv
                .values()
                .filter(|entry| entry.session.as_deref() == Some(session.id.as_str()))
                .map(|entry| entry.key.clone())
                .collect();
            for key in held {
                if !session.lock_delay.is_zero() {
                    self.lock_delays
                        .insert(key.clone(), now + session.lock_delay);
                }
                match session.behavior {
                    Behavior::Delete => self.bury(&key, index),
                    Behavior::Release => {
                        if let Some(entry) = self.kv.get_mut(&key) {
                            entry.session = None;
                            entry.modify_index = index;
                        }
                        self.kv_index = index;
                    }
                }
            }
        }
    }

    /// Sessions bound to `check` end when it turns critical or goes away.
    fn invalidate_bound_to(&mut self, check: &str, now: Instant) {
        let bound: Vec<String> = self
            .sessions
            .values()
            .filter(|session| session.checks.iter().any(|name| name == check))
            .map(|session| session.id.clone())
            .collect();
        self.invalidate(&bound, now);
    }

    // --- Agent services and checks ---

    /// Registers (or re-registers) a service with its checks. A check that already existed keeps
    /// its status and output (Consul's agent restores them), new ones start critical; every check
    /// runs first at `now + stagger(interval)`.
    pub(crate) fn register_service(
        &mut self,
        request: ServiceRequest,
        now: Instant,
        stagger: impl Fn(Duration) -> Duration,
    ) {
        let index = self.next_index();
        self.catalog_index = index;
        let create_index = self
            .services
            .get(&request.id)
            .map_or(index, |service| service.create_index);
        let count = request.checks.len();
        let mut kept = Vec::new();
        for (position, check) in request.checks.iter().enumerate() {
            let id = check.id.clone().unwrap_or_else(|| {
                if count == 1 {
                    format!("service:{}", request.id)
                } else {
                    format!("service:{}:{}", request.id, position + 1)
                }
            });
            let previous = self.checks.get(&id);
            let (status, output, critical_since, check_create) =
                previous.map_or((Status::Critical, String::new(), Some(now), index), |old| {
                    (
                        old.status,
                        old.output.clone(),
                        old.critical_since,
                        old.create_index,
                    )
                });
            self.checks.insert(
                id.clone(),
                HealthCheck {
                    id: id.clone(),
                    name: check
                        .name
                        .clone()
                        .unwrap_or_else(|| format!("Service '{}' check", request.name)),
                    service_id: request.id.clone(),
                    service_name: request.name.clone(),
                    status,
                    output,
                    http: Some(check.http.clone()),
                    interval: check.interval,
                    timeout: check.timeout.unwrap_or(Duration::from_secs(10)),
                    deregister_after: check.deregister_after,
                    critical_since,
                    next_run: now + stagger(check.interval),
                    create_index: check_create,
                    modify_index: index,
                },
            );
            kept.push(id);
        }
        let service_id = request.id.clone();
        let stale: Vec<String> = self
            .checks
            .values()
            .filter(|check| check.service_id == service_id && !kept.contains(&check.id))
            .map(|check| check.id.clone())
            .collect();
        for id in stale {
            self.checks.remove(&id);
            self.invalidate_bound_to(&id, now);
        }
        self.services.insert(
            request.id.clone(),
            Service {
                id: request.id,
                name: request.name,
                address: request.address,
                port: request.port,
                tags: request.tags,
                meta: request.meta,
                enable_tag_override: request.enable_tag_override,
                create_index,
                modify_index: index,
            },
        );
    }

    /// Removes a service and its checks; false when there is no such service.
    pub(crate) fn deregister_service(&mut self, id: &str, now: Instant) -> bool {
        if self.services.remove(id).is_none() {
            return false;
        }
        let index = self.next_index();
        self.catalog_index = index;
        let checks: Vec<String> = self
            .checks
            .values()
            .filter(|check| check.service_id == id)
            .map(|check| check.id.clone())
            .collect();
        for check in checks {
            self.checks.remove(&check);
            self.invalidate_bound_to(&check, now);
        }
        true
    }

    /// Checks due to run, marked as not due again until their next interval.
    pub(crate) fn due_checks(&mut self, now: Instant) -> Vec<(String, String, Duration)> {
        let mut due = Vec::new();
        for check in self.checks.values_mut() {
            if check.next_run <= now
                && let Some(url) = &check.http
            {
                check.next_run = now + check.interval;
                due.push((check.id.clone(), url.clone(), check.timeout));
            }
        }
        due
    }

    /// Records a check's result. A status change is a write (readers blocked on health wake);
    /// an output change alone is not, as Consul syncs outputs lazily. True when the status changed.
    pub(crate) fn check_result(
        &mut self,
        id: &str,
        status: Status,
        output: String,
        now: Instant,
    ) -> bool {
        let Some(check) = self.checks.get_mut(id) else {
            return false;
        };
        check.output = output;
        if check.status == status {
            return false;
        }
        check.status = status;
        check.critical_since = (status == Status::Critical).then_some(now);
        let index = self.next_index();
        if let Some(check) = self.checks.get_mut(id) {
            check.modify_index = index;
        }
        self.catalog_index = index;
        if status == Status::Critical {
            self.invalidate_bound_to(id, now);
        }
        true
    }

    /// Deregisters services whose check has been critical longer than its
    /// `DeregisterCriticalServiceAfter`; true when one went.
    pub(crate) fn reap(&mut self, now: Instant) -> bool {
        let doomed: Vec<String> = self
            .checks
            .values()
            .filter(|check| {
                check.status == Status::Critical
                    && match (check.deregister_after, check.critical_since) {
                        (Some(after), Some(since)) => now.duration_since(since) >= after,
                        _ => false,
                    }
            })
            .map(|check| check.service_id.clone())
            .collect();
        for service in &doomed {
            self.deregister_service(service, now);
        }
        !doomed.is_empty()
    }

    pub(crate) fn catalog_index(&self) -> u64 {
        self.catalog_index.max(1)
    }

    pub(crate) fn services(&self) -> Vec<Service> {
        self.services.values().cloned().collect()
    }

    pub(crate) fn service_checks(&self, service_id: &str) -> Vec<HealthCheck> {
        self.checks
            .values()
            .filter(|check| check.service_id == service_id)
            .cloned()
            .collect()
    }

    pub(crate) fn checks(&self) -> Vec<HealthCheck> {
        self.checks.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Store {
        Store::new("node", "dc1", "127.0.0.1")
    }

    fn session(store: &mut Store, id: &str, behavior: Behavior, now: Instant) {
        store
            .session_create(
                id.into(),
                SessionRequest {
                    name: id.into(),
                    lock_delay: Some(Duration::from_millis(1)),
                    behavior: Some(behavior),
                    ttl: Some(Duration::from_secs(10)),
                    ttl_text: "10.0s".into(),
                    checks: Some(Vec::new()),
                },
                now,
            )
            .unwrap();
    }

    #[test]
    fn cas_zero_creates_only_and_a_mismatch_is_false() {
        let mut store = store();
        assert!(store.kv_put("service/geo/initialize", b"1".to_vec(), None, Some(0)));
        assert!(!store.kv_put("service/geo/initialize", b"2".to_vec(), None, Some(0)));
        let (entry, _) = store.kv_get("service/geo/initialize");
        let index = entry.unwrap().modify_index;
        assert!(!store.kv_put(
            "service/geo/initialize",
            b"3".to_vec(),
            None,
            Some(index + 1)
        ));
        assert!(store.kv_put("service/geo/initialize", b"3".to_vec(), None, Some(index)));
        assert!(
            store.kv_delete("service/geo/missing", false, Some(7)),
            "missing + cas is true"
        );
        let (entry, _) = store.kv_get("service/geo/initialize");
        let index = entry.unwrap().modify_index;
        assert!(!store.kv_delete("service/geo/initialize", false, Some(index - 1)));
        assert!(store.kv_delete("service/geo/initialize", false, Some(index)));
    }

    #[test]
    fn a_put_that_changes_nothing_keeps_the_index_and_the_lock() {
        let now = Instant::now();
        let mut store = store();
        session(&mut store, "s1", Behavior::Delete, now);
        store
            .kv_acquire("k", "s1", b"v".to_vec(), None, None, now)
            .unwrap();
        let before = store.kv_get("k").0.unwrap();
        assert!(store.kv_put("k", b"v".to_vec(), None, None));
        assert_eq!(store.kv_get("k").0.unwrap(), before);
        assert!(store.kv_put("k", b"w".to_vec(), None, None));
        let after = store.kv_get("k").0.unwrap();
        assert!(after.modify_index > before.modify_index);
        assert_eq!(
            after.session.as_deref(),
            Some("s1"),
            "a plain PUT keeps the holder"
        );
    }

    #[test]
    fn acquire_contention_and_lock_index() {
        let now = Instant::now();
        let mut store = store();
        session(&mut store, "s1", Behavior::Delete, now);
        session(&mut store, "s2", Behavior::Delete, now);
        let acquire = |store: &mut Store, session: &str| {
            store.kv_acquire(
                "service/geo/leader",
                session,
                b"node1".to_vec(),
                None,
                None,
                now,
            )
        };
        assert_eq!(acquire(&mut store, "s1"), Ok(true));
        assert_eq!(acquire(&mut store, "s2"), Ok(false), "held by another");
        assert_eq!(acquire(&mut store, "s1"), Ok(true), "the holder again");
        assert_eq!(store.kv_get("service/geo/leader").0.unwrap().lock_index, 1);
        assert_eq!(
            acquire(&mut store, "nope").unwrap_err().to_string(),
            "invalid session \"nope\""
        );
        assert_eq!(
            store.kv_release("service/geo/leader", "s2", Vec::new(), None),
            Ok(false)
        );
        assert_eq!(
            store.kv_release("service/geo/leader", "s1", b"node1".to_vec(), None),
            Ok(true)
        );
        let later = now + Duration::from_millis(5);
        assert_eq!(
            store.kv_acquire(
                "service/geo/leader",
                "s2",
                b"node2".to_vec(),
                None,
                None,
                later
            ),
            Ok(true)
        );
        assert_eq!(store.kv_get("service/geo/leader").0.unwrap().lock_index, 2);
    }

    #[test]
    fn a_session_expires_at_twice_its_ttl_and_takes_its_keys_with_it() {
        let now = Instant::now();
        let mut store = store();
        session(&mut store, "s1", Behavior::Delete, now);
        store
            .kv_acquire(
                "service/geo/leader",
                "s1",
                b"node1".to_vec(),
                None,
                None,
                now,
            )
            .unwrap();
        store
            .kv_acquire(
                "service/geo/members/node1",
                "s1",
                b"{}".to_vec(),
                None,
                None,
                now,
            )
            .unwrap();
        let (_, watched) = store.kv_get("service/geo/leader");
        assert!(!store.expire_sessions(now + Duration::from_secs(19)));
        store
            .session_renew("s1", now + Duration::from_secs(5))
            .unwrap();
        assert!(
            !store.expire_sessions(now + Duration::from_secs(24)),
            "renewed at 5 s"
        );
        assert!(store.expire_sessions(now + Duration::from_secs(25)));
        let (entry, index) = store.kv_get("service/geo/leader");
        assert!(entry.is_none());
        assert!(index > watched, "the tombstone wakes a watch on the key");
        assert!(store.kv_list("service/geo/").0.is_empty());
        assert!(
            store.session_renew("s1", now).is_none(),
            "renew of a gone session: 404"
        );
        // Within the lock-delay nobody takes the key.
        session(&mut store, "s2", Behavior::Delete, now);
        let at = now + Duration::from_secs(25);
        assert_eq!(
            store.kv_acquire("service/geo/leader", "s2", b"x".to_vec(), None, None, at),
            Ok(false)
        );
    }

    #[test]
    fn behavior_release_unlocks_and_keeps_the_value() {
        let now = Instant::now();
        let mut store = store();
        session(&mut store, "s1", Behavior::Release, now);
        store
            .kv_acquire("k", "s1", b"v".to_vec(), None, None, now)
            .unwrap();
        let before = store.kv_get("k").0.unwrap();
        store.session_destroy("s1", now);
        let after = store.kv_get("k").0.unwrap();
        assert_eq!(after.session, None);
        assert_eq!(after.value.as_deref(), Some(&b"v"[..]));
        assert!(after.modify_index > before.modify_index);
    }

    #[test]
    fn ttl_bounds_are_consuls_error_text() {
        let mut store = store();
        let error = store
            .session_create(
                "s".into(),
                SessionRequest {
                    ttl: Some(Duration::from_secs(5)),
                    ..SessionRequest::default()
                },
                Instant::now(),
            )
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "Invalid Session TTL '5000000000', must be between [10s=24h0m0s]"
        );
    }

    #[test]
    fn a_recursive_delete_is_a_plain_string_prefix() {
        let mut store = store();
        for key in [
            "service/geo/leader",
            "service/geo/config",
            "service/geo2/leader",
        ] {
            store.kv_put(key, b"x".to_vec(), None, None);
        }
        store.kv_delete("service/geo/", true, None);
        assert_eq!(
            store.kv_list("service/").0.len(),
            1,
            "the trailing slash spares geo2"
        );
        let (_, index) = store.kv_list("service/geo/");
        assert_eq!(
            index,
            store.index(),
            "the prefix's index is its tombstones'"
        );
        store.kv_delete("service/geo", true, None);
        assert!(
            store.kv_list("service/").0.is_empty(),
            "without it geo2 goes too"
        );
    }

    fn patroni_service(role: &str) -> ServiceRequest {
        ServiceRequest {
            id: "geo/node1".into(),
            name: "geo".into(),
            address: "127.0.0.31".into(),
            port: 5432,
            tags: vec![role.into()],
            meta: BTreeMap::new(),
            enable_tag_override: true,
            checks: vec![CheckRequest {
                id: None,
                name: None,
                http: format!("http://127.0.0.31:8008/{role}"),
                interval: Duration::from_secs(5),
                timeout: None,
                deregister_after: Some(Duration::from_secs(100)),
            }],
        }
    }

    #[test]
    fn a_re_registration_carries_the_check_status_over() {
        let now = Instant::now();
        let mut store = store();
        store.register_service(patroni_service("replica"), now, |_| Duration::ZERO);
        let check = "service:geo/node1";
        assert_eq!(
            store.service_checks("geo/node1")[0].status,
            Status::Critical
        );
        assert!(store.check_result(check, Status::Passing, "200 OK".into(), now));
        assert!(!store.check_result(check, Status::Passing, "200 OK again".into(), now));
        store.register_service(patroni_service("primary"), now, |_| Duration::ZERO);
        let checks = store.service_checks("geo/node1");
        assert_eq!(checks[0].status, Status::Passing, "the old verdict sticks");
        assert_eq!(
            checks[0].http.as_deref(),
            Some("http://127.0.0.31:8008/primary")
        );
        assert!(
            store.deregister_service("geo/node1", now),
            "an id with a slash"
        );
        assert!(!store.deregister_service("geo/node1", now));
        assert!(store.checks().is_empty());
    }

    #[test]
    fn a_service_critical_past_its_deadline_is_reaped() {
        let now = Instant::now();
        let mut store = store();
        store.register_service(patroni_service("primary"), now, |_| Duration::ZERO);
        assert!(!store.reap(now + Duration::from_secs(99)));
        assert!(store.reap(now + Duration::from_secs(100)));
        assert!(store.services().is_empty());
    }
}
