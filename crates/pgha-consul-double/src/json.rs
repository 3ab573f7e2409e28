//! Case-insensitive access to JSON request bodies.
//!
//! Consul decodes bodies with Go's `encoding/json`, which matches object keys to struct fields
//! case-insensitively, and additionally translates snake_case keys for service and check
//! definitions. Clients rely on both: py-consul sends `"name"`, `"ttl"`, `"lockdelay"`,
//! `"enabletagoverride"`, `"checks"`, `"http"` next to Patroni's `"DeregisterCriticalServiceAfter"`.
//! [`Fields`] therefore looks keys up ignoring ASCII case and underscores.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::duration;

/// Why a body could not be decoded; rendered after Consul's `Request decode failed: ` prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("invalid JSON: {0}")]
    Syntax(String),
    #[error("expected a JSON object")]
    NotAnObject,
    #[error("field {field}: expected {expected}")]
    WrongType {
        field: String,
        expected: &'static str,
    },
    #[error("field {field}: {source}")]
    Duration {
        field: String,
        source: duration::DurationError,
    },
}

/// Parses a request body; an empty body counts as an empty object, as Consul skips decoding it.
pub(crate) fn parse_object(body: &[u8]) -> Result<Value, BodyError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|error| BodyError::Syntax(error.to_string()))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(BodyError::NotAnObject)
    }
}

/// A JSON object whose keys are matched like Go matches struct fields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields<'a> {
    object: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    pub(crate) fn of(value: &'a Value) -> Result<Self, BodyError> {
        value
            .as_object()
            .map(|object| Self { object })
            .ok_or(BodyError::NotAnObject)
    }

    /// The value of `name`: an exact key wins, otherwise the first key equal to it once case and
    /// underscores are ignored. JSON `null` counts as absent, as it leaves a Go field untouched.
    pub(crate) fn get(self, name: &str) -> Option<&'a Value> {
        let found = self.object.get(name).or_else(|| {
            let wanted = normalise(name);
            self.object
                .iter()
                .find(|(key, _)| normalise(key) == wanted)
                .map(|(_, value)| value)
        });
        found.filter(|value| !value.is_null())
    }

    /// Whether the key is present at all, even as `null` or an empty list (Consul tells
    /// "checks absent" from "checks: []").
    pub(crate) fn contains(self, name: &str) -> bool {
        let wanted = normalise(name);
        self.object.keys().any(|key| normalise(key) == wanted)
    }

    pub(crate) fn string(self, name: &str) -> Result<Option<String>, BodyError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(wrong_type(name, "a string")),
        }
    }

    pub(crate) fn bool(self, name: &str) -> Result<Option<bool>, BodyError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(*flag)),
            Some(_) => Err(wrong_type(name, "a boolean")),
        }
    }

    pub(crate) fn u64(self, name: &str) -> Result<Option<u64>, BodyError> {
        match self.get(name) {
            None => Ok(None),
            Some(value) => value
                .as_u64()
                .map(Some)
                .ok_or_else(|| wrong_type(name, "a non-negative integer")),
        }
    }

    pub(crate) fn strings(self, name: &str) -> Result<Option<Vec<String>>, BodyError> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        let items = value
            .as_array()
            .ok_or_else(|| wrong_type(name, "a list of strings"))?;
        items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| wrong_type(name, "a list of strings"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// A `map[string]string` such as `Meta`.
    pub(crate) fn string_map(self, name: &str) -> Result<BTreeMap<String, String>, BodyError> {
        let Some(value) = self.get(name) else {
            return Ok(BTreeMap::new());
        };
        let object = value
            .as_object()
            .ok_or_else(|| wrong_type(name, "an object of strings"))?;
        object
            .iter()
            .map(|(key, item)| match item {
                Value::String(text) => Ok((key.clone(), text.clone())),
                _ => Err(wrong_type(name, "an object of strings")),
            })
            .collect()
    }

    pub(crate) fn object(self, name: &str) -> Result<Option<Fields<'a>>, BodyError> {
        match self.get(name) {
            None => Ok(None),
            Some(value) => Fields::of(value)
                .map(Some)
                .map_err(|_| wrong_type(name, "an object")),
        }
    }

    pub(crate) fn objects(self, name: &str) -> Result<Vec<Fields<'a>>, BodyError> {
        let Some(value) = self.get(name) else {
            return Ok(Vec::new());
        };
        let items = value
            .as_array()
            .ok_or_else(|| wrong_type(name, "a list of objects"))?;
        items
            .iter()
            .map(|item| Fields::of(item).map_err(|_| wrong_type(name, "a list of objects")))
            .collect()
    }

    /// A duration given as a Go duration string or as integer nanoseconds.
    pub(crate) fn duration(self, name: &str) -> Result<Option<Duration>, BodyError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(text)) if text.is_empty() => Ok(None),
            Some(Value::String(text)) => {
                duration::parse(text)
                    .map(Some)
                    .map_err(|source| BodyError::Duration {
                        field: name.to_owned(),
                        source,
                    })
            }
            Some(value) => value
                .as_u64()
                .map(|nanos| Some(Duration::from_nanos(nanos)))
                .ok_or_else(|| wrong_type(name, "a duration")),
        }
    }
}

fn normalise(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn wrong_type(field: &str, expected: &'static str) -> BodyError {
    BodyError::WrongType {
        field: field.to_owned(),
        expected,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn matches_keys_ignoring_case_and_underscores() {
        let body = json!({"name": "geo", "DeregisterCriticalServiceAfter": "100.0s",
                          "enable_tag_override": true, "TLSServerName": "x"});
        let fields = Fields::of(&body).unwrap();
        assert_eq!(fields.string("Name").unwrap().as_deref(), Some("geo"));
        assert_eq!(fields.bool("EnableTagOverride").unwrap(), Some(true));
        assert_eq!(
            fields
                .duration("deregister_critical_service_after")
                .unwrap(),
            Some(Duration::from_secs(100))
        );
        assert_eq!(
            fields.string("tls_server_name").unwrap().as_deref(),
            Some("x")
        );
        assert_eq!(fields.string("missing").unwrap(), None);
    }

    #[test]
    fn prefers_an_exact_key_and_treats_null_as_absent() {
        let body = json!({"name": "lower", "Name": "exact", "Port": null, "checks": []});
        let fields = Fields::of(&body).unwrap();
        assert_eq!(fields.string("Name").unwrap().as_deref(), Some("exact"));
        assert_eq!(fields.u64("Port").unwrap(), None);
        assert!(fields.contains("Checks"));
        assert!(!fields.contains("NodeChecks"));
    }

    #[test]
    fn reports_wrong_types_and_bad_durations() {
        let body = json!({"port": "x", "ttl": "10"});
        let fields = Fields::of(&body).unwrap();
        assert!(fields.u64("Port").is_err());
        let error = fields.duration("TTL").unwrap_err();
        assert!(error.to_string().contains("missing unit"), "{error}");
    }

    #[test]
    fn an_empty_body_is_an_empty_object() {
        assert_eq!(parse_object(b"").unwrap(), json!({}));
        assert_eq!(parse_object(b"[1]"), Err(BodyError::NotAnObject));
        assert!(matches!(parse_object(b"{"), Err(BodyError::Syntax(_))));
    }
}
