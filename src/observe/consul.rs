//! The cluster as Consul sees it, beside what Patroni says: each member's service registration
//! (tags, checks) and the keys under the cluster's prefix. Read concurrently with the members;
//! a Consul that does not answer is a warning, never a failure of the whole observation.
//! Disagreements are flagged: a running member that is not registered, a role tag that is not
//! the member's role, a check that is not passing, an instance of no member.

use serde::Serialize;

use super::{ClusterView, Warning};
use crate::consul::{CheckStatus, ConsulClient, ConsulSettings, ServiceInstance};
use crate::patroni::MemberState;

/// What Consul answered about one cluster.
#[derive(Debug, Clone, Serialize)]
pub struct ConsulView {
    pub address: String,
    /// The service Patroni registers the members under.
    pub service: String,
    /// The cluster's key prefix, with its trailing `/`.
    pub prefix: String,
    /// Every instance of the service, passing or not; the error when Consul did not answer.
    pub instances: Result<Vec<ServiceInstance>, String>,
    /// The keys under `prefix`.
    pub keys: Result<Vec<String>, String>,
}

impl ConsulView {
    /// Instances with every check passing and `tag`: how a client of `<tag>.<service>` finds
    /// members. Never from tags alone.
    pub fn passing_with_tag(&self, tag: &str) -> Vec<&ServiceInstance> {
        self.instances
            .iter()
            .flatten()
            .filter(|instance| instance.has_tag(tag) && instance.status() == CheckStatus::Passing)
            .collect()
    }

    /// The instance Patroni registers for `member` (`<scope>/<member>`).
    pub fn instance(&self, scope: &str, member: &str) -> Option<&ServiceInstance> {
        let id = format!("{scope}/{member}");
        self.instances
            .as_ref()
            .ok()?
            .iter()
            .find(|instance| instance.id == id)
    }
}

/// Reads the service's health and the cluster's keys, both at once.
pub async fn read(settings: &ConsulSettings, client: &ConsulClient, scope: &str) -> ConsulView {
    let service = settings.service_name(scope).to_string();
    let prefix = settings.cluster_prefix(scope);
    let (instances, keys) =
        tokio::join!(client.health(&service, None, false), client.keys(&prefix));
    ConsulView {
        address: client.address().to_string(),
        service,
        prefix,
        instances: instances.map_err(|error| error.to_string()),
        keys: keys.map_err(|error| error.to_string()),
    }
}

/// Adds what Consul disagrees with to the view's warnings.
pub fn check(view: &mut ClusterView, consul: &ConsulView) {
    let instances = match &consul.instances {
        Ok(instances) => instances,
        Err(error) => {
            view.warnings.push(Warning::ConsulUnreachable {
                message: format!("Consul could not be read: {error}"),
            });
            return;
        }
    };
    // Patroni registers only with `register_service`; with none registered, nothing to compare.
    if instances.is_empty() {
        return;
    }
    let mut warnings = Vec::new();
    for member in &view.members {
        let instance = consul.instance(&view.scope, &member.name);
        let running = member.is_reachable()
            && matches!(
                member.state(),
                Some(MemberState::Running | MemberState::Streaming)
            );
        let Some(instance) = instance else {
            if running {
                warnings.push(Warning::ConsulNotRegistered {
                    member: member.name.clone(),
                    message: format!(
                        "{} runs but is not registered in Consul service {}",
                        member.name, consul.service
                    ),
                });
            }
            continue;
        };
        if let Some(message) = tag_disagreement(instance, member.is_leader(), &member.name) {
            warnings.push(Warning::ConsulWrongTag {
                member: member.name.clone(),
                message,
            });
        }
        if instance.status() != CheckStatus::Passing {
            warnings.push(Warning::ConsulCheckFailing {
                member: member.name.clone(),
                message: check_failing(instance, &member.name),
            });
        }
    }
    for instance in instances {
        let known = view
            .members
            .iter()
            .any(|member| instance.id == format!("{}/{}", view.scope, member.name));
        if !known {
            warnings.push(Warning::ConsulNotMember {
                instance: instance.id.clone(),
                message: format!(
                    "Consul lists {} ({}:{}, {}) but the cluster has no such member",
                    instance.id,
                    instance.address,
                    instance.port,
                    instance.status().as_str()
                ),
            });
        }
    }
    view.warnings.extend(warnings);
}

fn tag_disagreement(instance: &ServiceInstance, leader: bool, member: &str) -> Option<String> {
    if !leader && instance.has_tag("primary") {
        return Some(format!(
            "{member} is not the leader but Consul tags it primary ({})",
            instance.status().as_str()
        ));
    }
    if leader && !instance.has_tag("primary") && !instance.has_tag("standby-leader") {
        return Some(format!(
            "{member} is the leader but Consul tags it {}",
            instance.tags.join(",")
        ));
    }
    None
}

fn check_failing(instance: &ServiceInstance, member: &str) -> String {
    let worst = instance
        .checks
        .iter()
        .max_by_key(|check| check.status)
        .map(|check| {
            let output = check.output.lines().next().unwrap_or("");
            format!("{} {}: {output}", check.id, check.status.as_str())
        })
        .unwrap_or_default();
    format!("{member}'s Consul check is not passing ({worst})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::merge;
    use crate::observe::testing::{healthy, registered};

    fn checked(edit: impl FnOnce(&mut ConsulView)) -> Vec<Warning> {
        let (target, observations) = healthy("4.1.5");
        let mut view = merge(&target, observations).unwrap();
        let mut consul = registered(&view);
        edit(&mut consul);
        check(&mut view, &consul);
        view.warnings
    }

    fn instances(consul: &mut ConsulView) -> &mut Vec<ServiceInstance> {
        consul.instances.as_mut().unwrap()
    }

    #[test]
    fn a_registered_healthy_cluster_has_no_warnings() {
        assert!(checked(|_| ()).is_empty());
    }

    #[test]
    fn passing_with_tag_never_counts_a_critical_instance() {
        let (target, observations) = healthy("4.1.5");
        let view = merge(&target, observations).unwrap();
        let mut consul = registered(&view);
        assert_eq!(consul.passing_with_tag("primary").len(), 1);
        assert_eq!(consul.passing_with_tag("replica").len(), 2);
        instances(&mut consul)[1].checks[1].status = CheckStatus::Critical;
        instances(&mut consul)[0].checks[0].status = CheckStatus::Warning;
        assert_eq!(
            consul.passing_with_tag("replica").len() + consul.passing_with_tag("primary").len(),
            1,
            "a warning on the node check counts too"
        );
    }

    #[test]
    fn a_running_member_missing_from_consul_is_flagged() {
        let warnings = checked(|consul| {
            instances(consul).remove(1);
        });
        assert!(
            matches!(warnings.as_slice(), [Warning::ConsulNotRegistered { message, .. }] if message.contains("is not registered in Consul service demo")),
            "{warnings:?}"
        );
    }

    #[test]
    fn a_primary_tag_on_a_replica_is_flagged() {
        let (target, observations) = healthy("4.1.5");
        let view = merge(&target, observations).unwrap();
        let replica = view
            .members
            .iter()
            .find(|m| !m.is_leader())
            .unwrap()
            .name
            .clone();
        let warnings = checked(|consul| {
            let id = format!("demo/{replica}");
            let instance = instances(consul).iter_mut().find(|i| i.id == id).unwrap();
            instance.tags = vec!["primary".into(), "master".into()];
        });
        assert!(
            matches!(warnings.as_slice(), [Warning::ConsulWrongTag { member, message }] if *member == replica && message.contains("tags it primary")),
            "{warnings:?}"
        );
    }

    #[test]
    fn a_failing_check_is_flagged_with_its_output() {
        let warnings = checked(|consul| {
            let check = &mut instances(consul)[2].checks[1];
            check.status = CheckStatus::Critical;
            check.output =
                "HTTP GET http://127.0.0.33:8008/replica: 503 Service Unavailable".into();
        });
        assert!(
            matches!(warnings.as_slice(), [Warning::ConsulCheckFailing { message, .. }] if message.contains("critical: HTTP GET") && message.contains("503")),
            "{warnings:?}"
        );
    }

    #[test]
    fn an_instance_of_no_member_and_an_unreachable_consul_are_flagged() {
        let warnings = checked(|consul| {
            let mut stranger = instances(consul)[0].clone();
            stranger.id = "demo/node9".into();
            instances(consul).push(stranger);
        });
        assert!(
            matches!(warnings.as_slice(), [Warning::ConsulNotMember { instance, .. }] if instance == "demo/node9"),
            "{warnings:?}"
        );
        let warnings = checked(|consul| consul.instances = Err("connection refused".into()));
        assert!(
            matches!(warnings.as_slice(), [Warning::ConsulUnreachable { message }] if message.contains("connection refused")),
            "{warnings:?}"
        );
    }
}
