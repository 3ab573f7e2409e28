//! Consul's answers as pgha reads them: service health entries (with every check, node checks
//! included) and KV entries. Only the fields an operator needs; Consul's CamelCase on the wire.

use serde::{Deserialize, Serialize};

/// A check's state, worst last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Passing,
    Warning,
    Critical,
    /// Anything Consul may add later: never counted as passing.
    #[serde(other)]
    Unknown,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Passing => "passing",
            CheckStatus::Warning => "warning",
            CheckStatus::Critical => "critical",
            CheckStatus::Unknown => "unknown",
        }
    }
}

/// One check of a service instance (or of its node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub id: String,
    pub name: String,
    pub status: CheckStatus,
    pub output: String,
}

/// One registered instance of a service, with its health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceInstance {
    /// Patroni registers `<scope>/<member>`.
    pub id: String,
    pub service: String,
    pub node: String,
    pub address: String,
    pub port: u16,
    pub tags: Vec<String>,
    pub checks: Vec<Check>,
}

impl ServiceInstance {
    /// Consul's own rule: an instance is as healthy as its worst check (node checks included).
    pub fn status(&self) -> CheckStatus {
        self.checks
            .iter()
            .map(|check| check.status)
            .max()
            .unwrap_or(CheckStatus::Passing)
    }

    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|candidate| candidate == tag)
    }
}

/// A KV entry; the value decoded from base64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvEntry {
    pub key: String,
    pub value: Option<Vec<u8>>,
    /// The session holding the key's lock, if any.
    pub session: Option<String>,
    pub modify_index: u64,
}

impl KvEntry {
    pub fn text(&self) -> String {
        self.value
            .as_deref()
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
            .unwrap_or_default()
    }
}

// What Consul sends.

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct HealthEntryWire {
    pub node: NodeWire,
    pub service: ServiceWire,
    #[serde(default)]
    pub checks: Vec<CheckWire>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct NodeWire {
    pub node: String,
    #[serde(default)]
    pub address: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ServiceWire {
    #[serde(rename = "ID")]
    pub id: String,
    pub service: String,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub port: u16,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct CheckWire {
    #[serde(rename = "CheckID")]
    pub check_id: String,
    #[serde(default)]
    pub name: String,
    pub status: CheckStatus,
    #[serde(default)]
    pub output: String,
}

impl From<HealthEntryWire> for ServiceInstance {
    fn from(wire: HealthEntryWire) -> Self {
        // An instance without an address of its own is reached at its node's.
        let address = if wire.service.address.is_empty() {
            wire.node.address
        } else {
            wire.service.address
        };
        ServiceInstance {
            id: wire.service.id,
            service: wire.service.service,
            node: wire.node.node,
            address,
            port: wire.service.port,
            tags: wire.service.tags.unwrap_or_default(),
            checks: wire
                .checks
                .into_iter()
                .map(|check| Check {
                    id: check.check_id,
                    name: check.name,
                    status: check.status,
                    output: check.output,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct KvWire {
    pub key: String,
    pub value: Option<String>,
    #[serde(default)]
    pub session: Option<String>,
    #[serde(default)]
    pub modify_index: u64,
}

#[derive(Debug, Deserialize)]
pub(super) struct SessionCreated {
    #[serde(rename = "ID")]
    pub id: String,
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::fuzzing::{CASES, json_shaped};

    const KEYS: &[&str] = &[
        "Node",
        "Service",
        "Checks",
        "Address",
        "ID",
        "Service",
        "Tags",
        "Port",
        "Meta",
        "CheckID",
        "Name",
        "Status",
        "Output",
        "passing",
        "warning",
        "critical",
        "Key",
        "Value",
        "Session",
        "ModifyIndex",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(CASES))]

        /// Any answer shaped like Consul's health and KV answers: parsed or refused, never a
        /// panic, nor in what status derives from an instance.
        #[test]
        fn any_health_or_kv_answer_parses_or_is_refused(value in json_shaped(KEYS)) {
            if let Ok(entries) = serde_json::from_value::<Vec<HealthEntryWire>>(value.clone()) {
                for entry in entries {
                    let instance = ServiceInstance::from(entry);
                    let _ = (instance.status(), instance.has_tag("primary"));
                }
            }
            let _ = serde_json::from_value::<Vec<KvWire>>(value);
        }
    }
}
