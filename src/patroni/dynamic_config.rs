//! Patroni's dynamic configuration (the DCS's `/config`, what `patronictl edit-config` edits):
//! which keys Patroni reads there and what it does with a bad one, merged the way `PATCH
//! /config` merges, and compared leaf by leaf. A key Patroni ignores or silently adjusts is
//! refused here, before anything is sent: Patroni would accept it with a 200 and a log line.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// The dynamic configuration as read before an edit, and from where: what a compare-and-set
/// compares against.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConfigRead {
    pub config: Value,
    pub from: ConfigSource,
}

/// Where the configuration was read, with what says it is unchanged since.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum ConfigSource {
    /// etcd's key and the revision it was last modified at.
    Etcd {
        endpoint: String,
        key: String,
        mod_revision: i64,
    },
    /// Consul's key and its `ModifyIndex`.
    Consul {
        address: String,
        key: String,
        index: u64,
    },
    /// A member's `GET /config`, when pgha does not know the DCS (no `dcs:` in the
    /// inventory): no compare-and-set, the edit goes as `PATCH /config` of the changed keys.
    Rest { member: String },
}

/// One leaf that differs between two configurations: its dotted path and its new value
/// (`None`: removed).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConfigChange {
    pub path: String,
    pub value: Option<Value>,
}

impl ConfigChange {
    /// `ttl: 30` or `ttl removed`.
    pub fn describe(&self) -> String {
        match &self.value {
            Some(value) => format!("{}: {}", self.path, compact(value)),
            None => format!("{} removed", self.path),
        }
    }

    /// Whether `config` has this change: the leaf at the path equals the new value (or is
    /// absent, for a removal). Numbers compare as numbers and Patroni's string forms of them
    /// (`"100"` and `100`) as the same.
    pub fn holds_in(&self, config: &Value) -> bool {
        let found = lookup(config, &self.path);
        match (&self.value, found) {
            (None, found) => found.is_none_or(Value::is_null),
            (Some(wanted), Some(found)) => same_value(wanted, found),
            (Some(_), None) => false,
        }
    }
}

/// `PATCH /config`'s merge (Patroni's `patch_config`): objects merge key by key, `null`
/// removes a key, anything else replaces.
pub fn merged(base: &Value, patch: &Value) -> Value {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            let mut out = base.clone();
            for (key, value) in patch {
                if value.is_null() {
                    out.remove(key);
                } else {
                    let next = merged(out.get(key).unwrap_or(&Value::Null), value);
                    out.insert(key.clone(), next);
                }
            }
            Value::Object(out)
        }
        (_, patch) => patch.clone(),
    }
}

/// The patch that turns `old` into `new` under `merged`: changed keys only, `null` for the
/// removed. Sent as `PATCH /config`, it leaves keys someone else changed meanwhile alone.
pub fn patch_between(old: &Value, new: &Value) -> Value {
    let (Value::Object(old), Value::Object(new)) = (old, new) else {
        return new.clone();
    };
    let mut patch = Map::new();
    for (key, value) in new {
        match old.get(key) {
            Some(before) if before == value => {}
            Some(before @ Value::Object(_)) if value.is_object() => {
                patch.insert(key.clone(), patch_between(before, value));
            }
            _ => {
                patch.insert(key.clone(), value.clone());
            }
        }
    }
    for key in old.keys().filter(|key| !new.contains_key(*key)) {
        patch.insert(key.clone(), Value::Null);
    }
    Value::Object(patch)
}

/// Every leaf that differs, in path order.
pub fn changes(old: &Value, new: &Value) -> Vec<ConfigChange> {
    let (old, new) = (leaves(old), leaves(new));
    let mut changes: Vec<ConfigChange> = new
        .iter()
        .filter(|(path, value)| old.get(*path) != Some(*value))
        .map(|(path, value)| ConfigChange {
            path: path.clone(),
            value: Some((*value).clone()),
        })
        .collect();
    changes.extend(
        old.keys()
            .filter(|path| !new.contains_key(*path))
            .map(|path| ConfigChange {
                path: path.clone(),
                value: None,
            }),
    );
    changes.sort_by(|a, b| a.path.cmp(&b.path));
    changes
}

/// `KEY=VALUE` with a dotted key, the value read as YAML (`30`, `true`, `'5min'`, `null`,
/// `{a: 1}`), as the patch it stands for: `postgresql.use_slots=false` is
/// `{"postgresql": {"use_slots": false}}`.
pub fn assignment(text: &str, prefix: &[&str]) -> Result<Value, String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(format!("{text:?}: the key {key:?} has an empty part"));
    }
    let value: Value = if value.trim().is_empty() {
        Value::String(String::new())
    } else {
        serde_saphyr::from_str(value).map_err(|error| {
            format!(
                "{text:?}: the value is not YAML: {}",
                first_line(&error.to_string())
            )
        })?
    };
    let path: Vec<&str> = prefix.iter().copied().chain(key.split('.')).collect();
    Ok(path.iter().rev().fold(value, |inner, part| {
        Value::Object(Map::from_iter([((*part).to_string(), inner)]))
    }))
}

/// Something in a configuration Patroni would not use as given, and the settings it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted paths: the setting, or the settings a rule ties together.
    pub paths: Vec<String>,
    pub message: String,
}

impl Problem {
    fn at(path: &str, message: String) -> Self {
        Problem {
            paths: vec![path.to_string()],
            message,
        }
    }

    /// Whether one of `changes` touches it: a configuration may already hold what an edit
    /// does not touch, and an edit must be able to fix one thing at a time.
    pub fn touched_by(&self, changes: &[ConfigChange]) -> bool {
        let within = |a: &str, b: &str| a == b || a.starts_with(&format!("{b}."));
        changes.iter().any(|change| {
            self.paths
                .iter()
                .any(|path| within(&change.path, path) || within(path, &change.path))
        })
    }
}

/// Why Patroni would not use `config` as given, setting by setting; empty when it would.
/// Patroni answers `PATCH /config` with a 200 whatever it holds: an unknown key is ignored, a
/// timing that breaks `loop_wait + 2 × retry_timeout <= ttl` is adjusted, a PostgreSQL
/// parameter it sets itself is dropped — each with a log line on every member, none in the
/// answer.
pub fn problems(config: &Value) -> Vec<Problem> {
    let Value::Object(top) = config else {
        return vec![Problem::at(
            "",
            "the dynamic configuration must be a mapping".into(),
        )];
    };
    let mut problems = Vec::new();
    for (key, value) in top {
        match TOP_LEVEL.iter().find(|(name, _)| name == key) {
            Some((_, kind)) => problems.extend(kind.check(key, value)),
            None if key == "postgresql" => problems.extend(postgresql_problems(value)),
            None if key == "standby_cluster" => problems.extend(standby_problems(value)),
            None => problems.push(Problem::at(key, format!(
                "`{key}` is not a dynamic configuration setting: Patroni ignores it (settings: {}, postgresql, standby_cluster)",
                TOP_LEVEL
                    .iter()
                    .map(|(name, _)| *name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }
    problems.extend(timing_problem(top));
    problems
}

#[derive(Clone, Copy)]
enum Kind {
    /// A whole number of at least this.
    Integer(i64),
    Boolean,
    /// `synchronous_mode`: a boolean or Patroni 4's `quorum`.
    SynchronousMode,
    /// `pause`: what `pgha pause`/`resume` change, verified.
    Pause,
    /// Free-form (slots, their names and settings): Patroni reads its own shape.
    Any,
}

impl Kind {
    fn check(self, key: &str, value: &Value) -> Option<Problem> {
        self.message(key, value)
            .map(|message| Problem::at(key, message))
    }

    fn message(self, key: &str, value: &Value) -> Option<String> {
        match self {
            Kind::Integer(minimum) => match integer(value) {
                Some(number) if number >= minimum => None,
                Some(number) => Some(format!(
                    "`{key}` is {number}, below Patroni's minimum of {minimum} (Patroni would raise it)"
                )),
                None => Some(format!(
                    "`{key}` must be a whole number, not {}",
                    compact(value)
                )),
            },
            Kind::Boolean => (!value.is_boolean() && !value.is_null())
                .then(|| format!("`{key}` must be true or false, not {}", compact(value))),
            Kind::SynchronousMode => {
                let fine = value.is_boolean() || value.is_null() || value == "quorum";
                (!fine).then(|| {
                    format!(
                        "`{key}` must be true, false or quorum, not {}",
                        compact(value)
                    )
                })
            }
            Kind::Pause => Some(format!(
                "`{key}` is maintenance mode: use `pgha pause` / `pgha resume`, which verify every member"
            )),
            Kind::Any => None,
        }
    }
}

/// The top-level settings Patroni 2.x–4.x read from the DCS, but `postgresql` and
/// `standby_cluster` (checked key by key).
const TOP_LEVEL: &[(&str, Kind)] = &[
    ("ttl", Kind::Integer(20)),
    ("loop_wait", Kind::Integer(1)),
    ("retry_timeout", Kind::Integer(3)),
    ("maximum_lag_on_failover", Kind::Integer(0)),
    ("maximum_lag_on_syncnode", Kind::Integer(-1)),
    ("max_timelines_history", Kind::Integer(0)),
    ("primary_start_timeout", Kind::Integer(0)),
    ("primary_stop_timeout", Kind::Integer(0)),
    ("master_start_timeout", Kind::Integer(0)),
    ("master_stop_timeout", Kind::Integer(0)),
    ("primary_race_backoff", Kind::Integer(0)),
    ("synchronous_mode", Kind::SynchronousMode),
    ("synchronous_mode_strict", Kind::Boolean),
    ("synchronous_node_count", Kind::Integer(1)),
    ("failsafe_mode", Kind::Boolean),
    ("check_timeline", Kind::Boolean),
    ("member_slots_ttl", Kind::Any),
    ("slots", Kind::Any),
    ("ignore_slots", Kind::Any),
    ("pause", Kind::Pause),
];

/// `postgresql` keys that are the member's own: Patroni drops them from the dynamic
/// configuration.
const POSTGRESQL_LOCAL: &[&str] = &[
    "connect_address",
    "proxy_address",
    "listen",
    "config_dir",
    "data_dir",
    "bin_dir",
    "pgpass",
    "authentication",
];

const POSTGRESQL_KEYS: &[(&str, Kind)] = &[
    ("use_pg_rewind", Kind::Boolean),
    ("use_slots", Kind::Boolean),
    ("remove_data_directory_on_rewind_failure", Kind::Boolean),
    ("remove_data_directory_on_diverged_timelines", Kind::Boolean),
    ("recovery_conf", Kind::Any),
    ("pg_hba", Kind::Any),
    ("pg_ident", Kind::Any),
    ("parameters", Kind::Any),
];

/// PostgreSQL parameters Patroni sets itself whatever the dynamic configuration says.
const PARAMETERS_PATRONI_SETS: &[(&str, &str)] = &[
    ("listen_addresses", "from each member's `postgresql.listen`"),
    ("port", "from each member's `postgresql.listen`"),
    ("cluster_name", "from the scope"),
];

fn postgresql_problems(value: &Value) -> Vec<Problem> {
    let Value::Object(section) = value else {
        return vec![Problem::at(
            "postgresql",
            format!("`postgresql` must be a mapping, not {}", compact(value)),
        )];
    };
    let mut problems = Vec::new();
    for (key, value) in section {
        let path = format!("postgresql.{key}");
        if POSTGRESQL_LOCAL.contains(&key.as_str()) {
            problems.push(Problem::at(&path, format!(
                "`{path}` is each member's own setting (patroni.yml): Patroni drops it from the dynamic configuration"
            )));
        } else if let Some((_, kind)) = POSTGRESQL_KEYS.iter().find(|(name, _)| name == key) {
            problems.extend(kind.check(&path, value));
        }
        // Other keys (bin_name, callbacks, …) are read by some releases: passed through.
    }
    if let Some(parameters) = section.get("parameters") {
        problems.extend(parameter_problems(parameters));
    }
    problems
}

fn parameter_problems(parameters: &Value) -> Vec<Problem> {
    let Value::Object(parameters) = parameters else {
        return vec![Problem::at(
            "postgresql.parameters",
            format!(
                "`postgresql.parameters` must be a mapping, not {}",
                compact(parameters)
            ),
        )];
    };
    let mut problems = Vec::new();
    for (name, value) in parameters {
        let path = format!("postgresql.parameters.{name}");
        let mut say = |message: String| problems.push(Problem::at(&path, message));
        if let Some((_, why)) = PARAMETERS_PATRONI_SETS
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
        {
            say(format!(
                "`{path}` is set by Patroni itself ({why}): the dynamic configuration cannot change it"
            ));
        }
        // Patroni keeps it on whatever is written; writing it on is harmless (the lab does).
        if name.eq_ignore_ascii_case("hot_standby") && !is_on(value) {
            say(format!(
                "`{path}` is {}: Patroni keeps hot_standby on, replicas serve reads",
                compact(value)
            ));
        }
        if name.eq_ignore_ascii_case("wal_level")
            && !matches!(value.as_str(), Some("replica" | "logical" | "hot_standby"))
        {
            say(format!(
                "`{path}` is {}: replicas need replica or logical (Patroni would use its default)",
                compact(value)
            ));
        }
        if matches!(value, Value::Object(_) | Value::Array(_)) {
            say(format!(
                "`{path}` must be a single value, not {}",
                compact(value)
            ));
        }
    }
    problems
}

/// PostgreSQL's spellings of a boolean that is on.
fn is_on(value: &Value) -> bool {
    match value {
        Value::Bool(on) => *on,
        Value::String(text) => matches!(
            text.to_ascii_lowercase().as_str(),
            "on" | "true" | "yes" | "1"
        ),
        Value::Number(number) => number.as_i64() == Some(1),
        _ => false,
    }
}

const STANDBY_KEYS: &[&str] = &[
    "host",
    "port",
    "primary_slot_name",
    "create_replica_methods",
    "restore_command",
    "archive_cleanup_command",
    "recovery_min_apply_delay",
    "leader_tag",
];

fn standby_problems(value: &Value) -> Vec<Problem> {
    match value {
        Value::Null => Vec::new(),
        Value::Object(section) => section
            .keys()
            .filter(|key| !STANDBY_KEYS.contains(&key.as_str()))
            .map(|key| {
                Problem::at(
                    &format!("standby_cluster.{key}"),
                    format!(
                        "`standby_cluster.{key}` is not a standby_cluster setting: Patroni ignores it ({})",
                        STANDBY_KEYS.join(", ")
                    ),
                )
            })
            .collect(),
        other => vec![Problem::at(
            "standby_cluster",
            format!("`standby_cluster` must be a mapping, not {}", compact(other)),
        )],
    }
}

/// Patroni's rule `loop_wait + 2 × retry_timeout <= ttl` (with its defaults 10, 10, 30):
/// broken, Patroni shortens `loop_wait` (or `retry_timeout`) on every member and says so only
/// in their logs.
fn timing_problem(top: &Map<String, Value>) -> Option<Problem> {
    let read = |key: &str, default: i64| top.get(key).map_or(Some(default), integer);
    let (Some(ttl), Some(loop_wait), Some(retry_timeout)) = (
        read("ttl", 30),
        read("loop_wait", 10),
        read("retry_timeout", 10),
    ) else {
        return None;
    };
    (loop_wait + 2 * retry_timeout > ttl).then(|| Problem {
        paths: vec!["ttl".into(), "loop_wait".into(), "retry_timeout".into()],
        message: format!(
            "loop_wait ({loop_wait}) + 2 × retry_timeout ({retry_timeout}) is more than ttl ({ttl}): Patroni would shorten loop_wait or retry_timeout on its own; raise ttl or lower the others"
        ),
    })
}

/// A whole number, as Patroni reads one (it also takes `"30"`).
fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// Patroni stores what it was given; PostgreSQL parameters often arrive as strings (`"100"`)
/// and come back as numbers, or the reverse.
fn same_value(a: &Value, b: &Value) -> bool {
    if a == b {
        return true;
    }
    match (a, b) {
        (Value::Number(_) | Value::String(_), Value::Number(_) | Value::String(_)) => {
            scalar_text(a) == scalar_text(b)
        }
        _ => false,
    }
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn lookup<'a>(config: &'a Value, path: &str) -> Option<&'a Value> {
    // Parameter names hold no dots; a path is split at each.
    path.split('.')
        .try_fold(config, |node, part| node.get(part))
}

/// Every leaf by dotted path (an empty mapping or a list counts as one leaf).
fn leaves(config: &Value) -> BTreeMap<String, &Value> {
    fn walk<'a>(prefix: &str, value: &'a Value, out: &mut BTreeMap<String, &'a Value>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (key, inner) in map {
                    let path = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    walk(&path, inner, out);
                }
            }
            leaf => {
                out.insert(prefix.to_string(), leaf);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", config, &mut out);
    out.remove("");
    out
}

/// A unified diff of the two configurations as YAML (`--- before`, `+++ after`), as
/// `patronictl edit-config` shows it; empty when they are the same.
pub fn unified_diff(old: &Value, new: &Value) -> String {
    let (old, new) = (yaml(old), yaml(new));
    if old == new {
        return String::new();
    }
    similar::TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(3)
        .header("before", "after")
        .to_string()
}

fn yaml(value: &Value) -> String {
    serde_saphyr::to_string(value).unwrap_or_else(|_| format!("{value:#}\n"))
}

fn compact(value: &Value) -> String {
    value.to_string()
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn lab_config() -> Value {
        json!({
            "ttl": 20, "loop_wait": 2, "retry_timeout": 5,
            "maximum_lag_on_failover": 1_048_576,
            "postgresql": {"use_pg_rewind": true, "parameters": {"max_connections": 100, "wal_level": "replica"}}
        })
    }

    #[test]
    fn a_patch_merges_as_patroni_merges_and_null_removes() {
        let merged = merged(
            &lab_config(),
            &json!({"ttl": 30, "maximum_lag_on_failover": null, "postgresql": {"parameters": {"work_mem": "8MB"}}}),
        );
        assert_eq!(merged["ttl"], 30);
        assert!(merged.get("maximum_lag_on_failover").is_none());
        assert_eq!(merged["postgresql"]["parameters"]["max_connections"], 100);
        assert_eq!(merged["postgresql"]["parameters"]["work_mem"], "8MB");
        assert_eq!(merged["postgresql"]["use_pg_rewind"], true);
    }

    #[test]
    fn the_patch_between_two_configurations_holds_only_what_changed() {
        let old = lab_config();
        let new = merged(
            &old,
            &json!({"ttl": 30, "loop_wait": null, "postgresql": {"parameters": {"max_connections": 200}}}),
        );
        let patch = patch_between(&old, &new);
        assert_eq!(
            patch,
            json!({"ttl": 30, "loop_wait": null, "postgresql": {"parameters": {"max_connections": 200}}})
        );
        assert_eq!(
            merged(&old, &patch),
            new,
            "the patch gives the new configuration"
        );
        let described: Vec<String> = changes(&old, &new)
            .iter()
            .map(ConfigChange::describe)
            .collect();
        assert_eq!(
            described,
            [
                "loop_wait removed",
                "postgresql.parameters.max_connections: 200",
                "ttl: 30"
            ]
        );
    }

    #[test]
    fn assignments_are_dotted_keys_with_yaml_values() {
        assert_eq!(assignment("ttl=30", &[]).unwrap(), json!({"ttl": 30}));
        assert_eq!(
            assignment("postgresql.use_slots=false", &[]).unwrap(),
            json!({"postgresql": {"use_slots": false}})
        );
        assert_eq!(
            assignment("work_mem=8MB", &["postgresql", "parameters"]).unwrap(),
            json!({"postgresql": {"parameters": {"work_mem": "8MB"}}})
        );
        assert_eq!(
            assignment("maximum_lag_on_failover=null", &[]).unwrap(),
            json!({"maximum_lag_on_failover": null})
        );
        assert!(assignment("ttl", &[]).unwrap_err().contains("KEY=VALUE"));
        assert!(
            assignment("a..b=1", &[])
                .unwrap_err()
                .contains("empty part")
        );
    }

    #[test]
    fn what_patroni_would_ignore_or_adjust_is_named() {
        assert_eq!(problems(&lab_config()), Vec::<Problem>::new());
        let said = |patch: Value| {
            problems(&merged(&lab_config(), &patch))
                .iter()
                .map(|problem| problem.message.clone())
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert!(said(json!({"tll": 30})).contains("`tll` is not a dynamic configuration setting"));
        assert!(said(json!({"ttl": 10})).contains("below Patroni's minimum of 20"));
        assert!(said(json!({"ttl": "soon"})).contains("`ttl` must be a whole number"));
        assert!(
            said(json!({"loop_wait": 15}))
                .contains("loop_wait (15) + 2 × retry_timeout (5) is more than ttl (20)")
        );
        assert!(said(json!({"synchronous_mode": "maybe"})).contains("true, false or quorum"));
        assert_eq!(said(json!({"synchronous_mode": "quorum"})), "");
        assert!(said(json!({"pause": true})).contains("pgha pause"));
        assert!(
            said(json!({"postgresql": {"data_dir": "/x"}})).contains("each member's own setting")
        );
        assert!(
            said(json!({"postgresql": {"parameters": {"port": 5433}}}))
                .contains("set by Patroni itself")
        );
        assert!(
            said(json!({"postgresql": {"parameters": {"wal_level": "minimal"}}}))
                .contains("replica or logical")
        );
        assert!(said(json!({"standby_cluster": {"hots": "a"}})).contains("`standby_cluster.hots`"));
        assert_eq!(said(json!({"ttl": "30"})), "", "Patroni reads \"30\" as 30");
        assert_eq!(
            said(json!({"postgresql": {"parameters": {"hot_standby": "on"}}})),
            ""
        );
        assert!(
            said(json!({"postgresql": {"parameters": {"hot_standby": "off"}}}))
                .contains("keeps hot_standby on")
        );
    }

    /// A configuration may already hold something odd; an edit is judged on what it touches.
    #[test]
    fn a_problem_counts_only_where_the_edit_touches() {
        let odd = merged(&lab_config(), &json!({"tll": 30}));
        let fixed_elsewhere = merged(&odd, &json!({"maximum_lag_on_failover": 0}));
        let found = problems(&fixed_elsewhere);
        let changed = changes(&odd, &fixed_elsewhere);
        assert!(!found.iter().any(|problem| problem.touched_by(&changed)));
        let timing = merged(&lab_config(), &json!({"retry_timeout": 10}));
        let found = problems(&timing);
        assert!(found[0].touched_by(&changes(&lab_config(), &timing)));
        let params = merged(
            &lab_config(),
            &json!({"postgresql": {"parameters": {"port": 1}}}),
        );
        assert!(problems(&params)[0].touched_by(&changes(&lab_config(), &params)));
    }

    #[test]
    fn the_diff_is_unified_yaml_and_empty_without_a_change() {
        let old = lab_config();
        let new = merged(&old, &json!({"ttl": 30}));
        let diff = unified_diff(&old, &new);
        assert!(diff.starts_with("--- before\n+++ after\n"), "{diff}");
        assert!(diff.contains("-ttl: 20\n+ttl: 30\n"), "{diff}");
        assert_eq!(unified_diff(&old, &old), "");
    }

    #[test]
    fn a_change_holds_whether_patroni_kept_a_number_or_its_text() {
        let change = ConfigChange {
            path: "postgresql.parameters.max_connections".into(),
            value: Some(json!(200)),
        };
        assert!(!change.holds_in(&lab_config()));
        let text = json!({"postgresql": {"parameters": {"max_connections": "200"}}});
        assert!(change.holds_in(&text));
        let removed = ConfigChange {
            path: "loop_wait".into(),
            value: None,
        };
        assert!(!removed.holds_in(&lab_config()));
        assert!(removed.holds_in(&json!({"ttl": 20})));
    }
}
