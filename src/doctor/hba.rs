//! Whether the leader's `pg_hba.conf` lets the replicas replicate: the first rule that matches
//! a replication connection from a replica's address decides, so a `reject` or a broader rule
//! placed above the replication user's own line takes the cluster's replicas away the next
//! time they reconnect (a restart, a rebuild, a failover). PostgreSQL reads the rules once per
//! connection, so nothing shows until then: the doctor reads them before.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::Finding;
use crate::observe::Severity;
use crate::postgres::{HbaRule, HbaRules};

/// A replica the leader must accept: its name and the address it connects from.
pub struct Replica {
    pub name: String,
    pub address: IpAddr,
}

/// What the first matching rule means for one replication role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    /// No rule matches: PostgreSQL refuses the connection.
    Missing,
    /// The first rule that matches rejects.
    Rejected { line: i32 },
    /// A broader rule matches before the one naming the role.
    Shadowed { line: i32, named: i32 },
}

pub(crate) fn findings(leader: &str, hba: &HbaRules, replicas: &[Replica]) -> Vec<Finding> {
    let mut found: Vec<Finding> = hba
        .rules
        .iter()
        .filter_map(|rule| Some((rule, rule.error.as_deref()?)))
        .map(|(rule, error)| {
            Finding::new(
                "hba_error",
                Severity::Warning,
                format!("pg_hba.conf line {} on {leader} cannot be used: {error}", rule.line),
                "PostgreSQL refuses to load a pg_hba.conf with an error: a reload keeps the old rules, and a restart does not come up",
                "fix the line in Patroni's `postgresql.pg_hba` (or the file) and reload",
            )
            .on(leader)
        })
        .collect();
    // Each verdict once per role, with every replica it applies to.
    let mut verdicts: BTreeMap<(String, Verdict), Vec<&str>> = BTreeMap::new();
    for role in &hba.replication_roles {
        for replica in replicas {
            if let Some(verdict) = verdict(&hba.rules, role, replica.address) {
                verdicts
                    .entry((role.clone(), verdict))
                    .or_default()
                    .push(&replica.name);
            }
        }
    }
    found.extend(
        verdicts
            .into_iter()
            .map(|((role, verdict), names)| finding(leader, &hba.rules, &role, verdict, &names)),
    );
    found
}

fn verdict(rules: &[HbaRule], role: &str, address: IpAddr) -> Option<Verdict> {
    let mut matching = rules
        .iter()
        .filter(|rule| rule.error.is_none() && applies(rule, role, address));
    let Some(first) = matching.next() else {
        return Some(Verdict::Missing);
    };
    if first.method.as_deref() == Some("reject") {
        return Some(Verdict::Rejected { line: first.line });
    }
    if first.users.iter().any(|user| user == role) {
        return None;
    }
    // A line naming the role further down never applies.
    let named = matching.find(|rule| rule.users.iter().any(|user| user == role))?;
    (named.method != first.method).then_some(Verdict::Shadowed {
        line: first.line,
        named: named.line,
    })
}

/// Whether `line` certainly matches a TCP replication connection by `user` from `address`.
/// Lines pgha cannot decide (a group, a host name, `samenet`) are passed over.
fn applies(line: &HbaRule, user: &str, address: IpAddr) -> bool {
    line.kind.starts_with("host")
        && line
            .databases
            .iter()
            .any(|database| database == "replication")
        && line
            .users
            .iter()
            .any(|named| named == "all" || named == user)
        && address_matches(line, address)
}

fn address_matches(rule: &HbaRule, address: IpAddr) -> bool {
    let Some(text) = rule.address.as_deref() else {
        return false;
    };
    if text == "all" {
        return true;
    }
    let (Ok(network), Some(Ok(mask))) = (
        text.parse::<IpAddr>(),
        rule.netmask.as_deref().map(str::parse::<IpAddr>),
    ) else {
        return false;
    };
    match (network, mask, address) {
        (IpAddr::V4(network), IpAddr::V4(mask), IpAddr::V4(address)) => {
            u32::from(network) & u32::from(mask) == u32::from(address) & u32::from(mask)
        }
        (IpAddr::V6(network), IpAddr::V6(mask), IpAddr::V6(address)) => {
            u128::from(network) & u128::from(mask) == u128::from(address) & u128::from(mask)
        }
        _ => false,
    }
}

fn finding(
    leader: &str,
    rules: &[HbaRule],
    role: &str,
    verdict: Verdict,
    replicas: &[&str],
) -> Finding {
    let replicas = replicas.join(", ");
    let line = |number: i32| {
        rules
            .iter()
            .find(|rule| rule.line == number)
            .map_or_else(|| format!("line {number}"), describe)
    };
    let (code, seen, fix) = match verdict {
        Verdict::Missing => (
            "hba_replication_missing",
            format!("no pg_hba.conf rule on {leader} lets {role} replicate from {replicas}"),
            "add `host replication ROLE ADDRESS scram-sha-256` to Patroni's `postgresql.pg_hba` and reload",
        ),
        Verdict::Rejected { line: number } => (
            "hba_replication_rejected",
            format!(
                "pg_hba.conf on {leader} rejects {role}'s replication from {replicas}: {} matches first",
                line(number)
            ),
            "remove the rejecting line, or move the replication rule above it, in Patroni's `postgresql.pg_hba`; reload",
        ),
        Verdict::Shadowed {
            line: number,
            named,
        } => (
            "hba_replication_shadowed",
            format!(
                "pg_hba.conf on {leader}: {} matches {role}'s replication from {replicas} before {}, which never applies",
                line(number),
                line(named)
            ),
            "move the line that names the role above the broader one in Patroni's `postgresql.pg_hba`; reload",
        ),
    };
    let why = match verdict {
        Verdict::Shadowed { .. } => {
            "replicas authenticate by a rule nobody meant for them: a method the replication user's password may not satisfy, and they fail at their next reconnect"
        }
        _ => {
            "streaming replicas keep their connection, but the next restart, rebuild or failover leaves them unable to connect: the cluster loses its replicas"
        }
    };
    Finding::new(code, Severity::Warning, seen, why, fix).on(leader)
}

/// A rule as it reads in the file: `line 3 (host replication all 127.0.0.0/255.0.0.0 reject)`.
fn describe(rule: &HbaRule) -> String {
    let address = match (&rule.address, &rule.netmask) {
        (Some(address), Some(mask)) => format!(" {address}/{mask}"),
        (Some(address), None) => format!(" {address}"),
        _ => String::new(),
    };
    format!(
        "line {} (`{} {} {}{address} {}`)",
        rule.line,
        rule.kind,
        rule.databases.join(","),
        rule.users.join(","),
        rule.method.as_deref().unwrap_or("?")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(line: i32, text: &str) -> HbaRule {
        let words: Vec<&str> = text.split_whitespace().collect();
        let (address, netmask) = match words[3].split_once('/') {
            Some((address, mask)) => (Some(address.to_string()), Some(mask.to_string())),
            None => (Some(words[3].to_string()), None),
        };
        HbaRule {
            line,
            kind: words[0].into(),
            databases: words[1].split(',').map(String::from).collect(),
            users: words[2].split(',').map(String::from).collect(),
            address,
            netmask,
            method: Some(words[4].into()),
            error: None,
        }
    }

    fn hba(rules: &[&str]) -> HbaRules {
        HbaRules {
            rules: rules
                .iter()
                .enumerate()
                .map(|(index, text)| rule(i32::try_from(index).unwrap() + 1, text))
                .collect(),
            replication_roles: vec!["replicator".into()],
        }
    }

    fn replicas() -> Vec<Replica> {
        ["127.0.0.12", "127.0.0.13"]
            .iter()
            .enumerate()
            .map(|(index, address)| Replica {
                name: format!("node{}", index + 2),
                address: address.parse().unwrap(),
            })
            .collect()
    }

    fn codes(rules: &[&str]) -> Vec<(String, String)> {
        findings("node1", &hba(rules), &replicas())
            .into_iter()
            .map(|finding| (finding.code, finding.seen))
            .collect()
    }

    const OWN: &str = "host replication replicator 127.0.0.0/255.0.0.0 scram-sha-256";

    #[test]
    fn the_replication_users_own_rule_first_is_no_finding() {
        assert!(codes(&["host all all 127.0.0.0/255.0.0.0 reject", OWN]).is_empty());
        // `all` in the database column does not match replication connections.
        assert!(codes(&["host all replicator 0.0.0.0/0.0.0.0 reject", OWN]).is_empty());
    }

    #[test]
    fn a_reject_above_the_rule_is_found_with_its_line_and_every_replica() {
        let found = codes(&["host replication all 127.0.0.0/255.0.0.0 reject", OWN]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "hba_replication_rejected");
        assert!(found[0].1.contains("line 1"), "{}", found[0].1);
        assert!(found[0].1.contains("node2, node3"), "{}", found[0].1);
    }

    #[test]
    fn a_reject_for_one_address_names_only_that_replica() {
        let found = codes(&[
            "host replication all 127.0.0.13/255.255.255.255 reject",
            OWN,
        ]);
        assert_eq!(found.len(), 1);
        assert!(found[0].1.ends_with("from node3: line 1 (`host replication all 127.0.0.13/255.255.255.255 reject`) matches first"), "{}", found[0].1);
    }

    #[test]
    fn a_broader_rule_with_another_method_shadows_the_users_own() {
        let found = codes(&["host replication all 127.0.0.0/255.0.0.0 md5", OWN]);
        assert_eq!(found[0].0, "hba_replication_shadowed");
        assert!(found[0].1.contains("before line 2"), "{}", found[0].1);
        // The same method: the order does not matter.
        assert!(
            codes(&[
                "host replication all 127.0.0.0/255.0.0.0 scram-sha-256",
                OWN
            ])
            .is_empty()
        );
    }

    #[test]
    fn no_rule_for_the_replicas_addresses_is_missing() {
        let found = codes(&["host replication replicator 10.0.0.0/255.0.0.0 scram-sha-256"]);
        assert_eq!(found[0].0, "hba_replication_missing");
        assert!(codes(&["host replication all all trust"]).is_empty());
    }

    #[test]
    fn a_line_postgres_cannot_use_is_a_finding_and_decides_nothing() {
        let mut rules = hba(&["host replication all 127.0.0.0/255.0.0.0 reject", OWN]);
        rules.rules[0].error = Some("invalid authentication method \"rejectt\"".into());
        let found = findings("node1", &rules, &replicas());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].code, "hba_error");
    }

    #[test]
    fn ipv6_masks_are_applied() {
        let v6 = |address: &str| Replica {
            name: "node2".into(),
            address: address.parse().unwrap(),
        };
        let rules = hba(&["host replication all fd00::/ffff:: reject", OWN]);
        assert_eq!(findings("node1", &rules, &[v6("fd00::12")]).len(), 1);
        // The only other rule is IPv4: nothing lets an outside address in.
        assert_eq!(
            findings("node1", &rules, &[v6("fe80::1")])[0].code,
            "hba_replication_missing"
        );
    }
}
