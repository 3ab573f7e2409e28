//! Waits until Consul routes as the cluster now is, where Patroni registers services there.

use std::fmt::Write as _;
use std::time::Duration;

use crate::observe::ClusterView;
use crate::plan::{Check, Step};

/// How long Consul may take to route to a member after Patroni registers it again: its check
/// runs every 5 s, the first run staggered within that, and a re-registration keeps the old
/// verdict until then (measured on the lab: all members passing ≈ 11 s after a switchover).
const CONSUL_ROUTING_TIMEOUT: Duration = Duration::from_mins(1);

/// True when Patroni registers the members in Consul (`register_service`): then clients find
/// them there, and a runbook is not done until Consul routes as the cluster now is.
pub(crate) fn registers_services(view: &ClusterView) -> bool {
    view.consul.as_ref().is_some_and(|consul| {
        consul
            .instances
            .as_ref()
            .is_ok_and(|found| !found.is_empty())
    })
}

/// A wait until Consul agrees with the cluster (`until`), where Patroni registers services;
/// nothing otherwise.
pub(crate) fn consul_routing(
    view: &ClusterView,
    id: String,
    title: String,
    until: Vec<Check>,
) -> Vec<Step> {
    if !registers_services(view) {
        return Vec::new();
    }
    vec![Step::wait(
        id,
        title,
        crate::plan::Wait {
            until,
            fail_if: Vec::new(),
            timeout: CONSUL_ROUTING_TIMEOUT,
            poll: Duration::from_millis(500),
            progress: crate::plan::Progress::Checks,
            stuck: Vec::new(),
        },
    )]
}

/// The wait after a handover until Consul routes the leader's traffic to `leader` only (under
/// `standby-leader` on a standby cluster) and, given `old_leader`, replica traffic to it.
pub(crate) fn consul_routes_leader(
    view: &ClusterView,
    leader: &str,
    standby: bool,
    old_leader: Option<&str>,
) -> Vec<Step> {
    let tag = leader_service_tag(standby);
    let mut until = vec![Check::ConsulServes {
        tag: tag.into(),
        members: vec![leader.into()],
    }];
    let mut title = format!("Wait until Consul routes {tag} traffic to {leader} only");
    if let Some(old_leader) = old_leader {
        until.push(Check::ConsulPassing {
            member: old_leader.into(),
            tag: "replica".into(),
        });
        let _ = write!(title, ", and replica traffic to {old_leader}");
    }
    consul_routing(view, "consul-routing".into(), title, until)
}

/// The tag Patroni registers a cluster's leader under in Consul.
fn leader_service_tag(standby: bool) -> &'static str {
    if standby { "standby-leader" } else { "primary" }
}

/// The wait until `member` is registered as a replica and passing again.
pub(crate) fn consul_routes_replica(view: &ClusterView, member: &str) -> Vec<Step> {
    consul_routing(
        view,
        format!("consul-replica-{member}"),
        format!("Wait until Consul routes replica traffic to {member}"),
        vec![Check::ConsulPassing {
            member: member.into(),
            tag: "replica".into(),
        }],
    )
}
