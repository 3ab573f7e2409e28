//! A plan's structure and its fingerprint: the steps, their gates, pre-checks, actions and
//! waits, with what differs between two clusters of the same shape left out — addresses,
//! URLs, paths, commands' text, sizes, deadlines, WAL positions, identifiers, the cluster's
//! name — and members named by their place (`m1`, `m2`, … in sorted order). Two plans with one
//! fingerprint do the same thing in the same order behind the same gates: what a rehearsal on
//! a lab shows the reviewer of the real run's dry-run.

use serde_json::{Map, Value};

use super::Plan;

/// Keys whose values belong to one cluster, not to what the plan does.
const LEFT_OUT: &[&str] = &[
    "title",
    "summary",
    "environment",
    "cluster",
    "scope",
    "params",
    "rest_user",
    "rollback",
    "question",
    "instructions",
    "host",
    "api_url",
    "url",
    "endpoint",
    "address",
    "command",
    "path",
    "backup",
    "keys",
    "key",
    "prefix",
    "labels",
    "comment",
    "value",
    "timeout",
    "poll",
    "limit",
    "duration",
    "identifier",
    "position",
    "timeline",
    "before",
    "mod_revision",
    "index",
    "expected_bytes",
    "read",
    "what",
    "schedule",
    "scheduled_at",
    "at",
    "patch",
    "stuck",
];

/// Whether a key's value belongs to one cluster (`leader_host`, `api_url` and the like too).
fn left_out(key: &str) -> bool {
    LEFT_OUT.contains(&key) || key.ends_with("_host") || key.ends_with("_url")
}

/// The structure: the plan's JSON with what belongs to one cluster left out.
pub fn structure(plan: &Plan) -> Value {
    let document = serde_json::to_value(plan).unwrap_or_default();
    // The cluster's members as observed (a plan made before they were recorded: those it
    // names), in sorted order: members are told apart by their place.
    let mut members = plan.members.clone();
    if members.is_empty() {
        collect_members(&document, &mut members);
    }
    members.sort();
    members.dedup();
    // Longest first: `node10` is renamed before `node1` could match inside it.
    let mut renames: Vec<(String, String)> = members
        .iter()
        .enumerate()
        .map(|(place, name)| (name.clone(), format!("m{}", place + 1)))
        .collect();
    renames.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    let mut names = renames;
    for cluster in [&plan.cluster, &plan.scope] {
        if !cluster.is_empty() {
            names.push((cluster.clone(), "<cluster>".into()));
        }
    }
    normalised(&document, &names)
}

/// 16 hex digits of the SHA-256 of the structure.
pub fn fingerprint(plan: &Plan) -> String {
    let text = serde_json::to_string(&structure(plan)).unwrap_or_default();
    super::sha256_hex(text.as_bytes())[..16].to_string()
}

fn collect_members(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("member" | "candidate" | "leader" | "first", Value::String(name)) => {
                        out.push(name.clone());
                    }
                    ("members", Value::Array(names)) => {
                        out.extend(
                            names
                                .iter()
                                .filter_map(|name| name.as_str().map(String::from)),
                        );
                    }
                    _ => collect_members(inner, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_members(item, out)),
        _ => {}
    }
}

fn normalised(value: &Value, names: &[(String, String)]) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(key, _)| !left_out(key))
                .map(|(key, inner)| (key.clone(), normalised(inner, names)))
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(items) => {
            Value::Array(items.iter().map(|item| normalised(item, names)).collect())
        }
        Value::String(text) => Value::String(renamed(text, names)),
        other => other.clone(),
    }
}

/// `text` with each whole name replaced: `wait-streaming-node3` → `wait-streaming-m3`.
fn renamed(text: &str, names: &[(String, String)]) -> String {
    let mut out = text.to_string();
    for (name, replacement) in names {
        let mut result = String::with_capacity(out.len());
        let mut rest = out.as_str();
        while let Some(found) = rest.find(name.as_str()) {
            let before = rest[..found].chars().next_back();
            let after = rest[found + name.len()..].chars().next();
            let whole = !before.is_some_and(char::is_alphanumeric)
                && !after.is_some_and(char::is_alphanumeric);
            result.push_str(&rest[..found]);
            result.push_str(if whole { replacement } else { name });
            rest = &rest[found + name.len()..];
        }
        result.push_str(rest);
        out = result;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_replaced_whole_and_longest_first() {
        let names = vec![
            ("node10".to_string(), "m2".to_string()),
            ("node1".to_string(), "m1".to_string()),
        ];
        assert_eq!(renamed("wait-node1-node10", &names), "wait-m1-m2");
        assert_eq!(renamed("xnode1", &names), "xnode1");
    }
}
