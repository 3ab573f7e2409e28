//! Deleting a cluster's key tree from its DCS (Consul or etcd), as GitLab's Geo re-setup does
//! before bootstrapping the cluster anew: only the cluster's own prefix, always with its
//! trailing `/` (without it the delete also takes `<namespace>/<cluster>2/…`); only with Patroni
//! stopped on every member (a running Patroni writes the keys straight back, and a leader
//! losing its key demotes), re-checked just before; behind the cluster's name; verified by
//! reading the prefix again.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::frame;
use crate::inventory::ClusterTarget;
use crate::observe::ClusterView;
use crate::plan::{
    Action, Check, ConsulAction, EtcdAction, Gate, Idempotency, Plan, Progress, Step, Wait,
};
use crate::runbooks::PlanError;

/// `pgha dcs delete-tree` and `pgha consul delete-tree`: `delete-tree` is what each does today;
/// the journal records only its prefix.
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
pub struct DeleteTreeParams {
    #[command(subcommand)]
    #[serde(flatten)]
    pub command: DeleteTreeCommand,
}

#[derive(Debug, Clone, PartialEq, clap::Subcommand, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DeleteTreeCommand {
    /// Delete every key under the cluster's prefix (/service/<scope>/ on etcd, service/<scope>/
    /// on Consul), with Patroni stopped everywhere
    DeleteTree {
        /// The prefix, if you want it checked: only the cluster's own is accepted
        #[arg(long, value_name = "PREFIX")]
        prefix: Option<String>,
    },
}

impl DeleteTreeParams {
    /// The prefix the operator typed, if any.
    pub fn asked(&self) -> Option<&str> {
        let DeleteTreeCommand::DeleteTree { prefix } = &self.command;
        prefix.as_deref()
    }
}

/// The DCS applies a delete before it answers; the wait only has to see it.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(30);

/// The tree delete in whichever DCS the cluster uses (`--prefix`, when given, only checked).
pub(crate) fn delete_tree(
    target: &ClusterTarget,
    view: &ClusterView,
    asked: Option<&str>,
) -> Result<Plan, PlanError> {
    let tree = Tree::of(target, view)?;
    if let Some(asked) = asked
        && asked.trim_end_matches('/') != tree.prefix.trim_end_matches('/')
    {
        return Err(PlanError::Refused(format!(
            "--prefix {asked:?} is not cluster {}'s own prefix {:?}: pgha deletes only the tree of the cluster it was given",
            target.cluster, tree.prefix
        )));
    }
    let prefix = &tree.prefix;
    let mut plan = frame(
        target,
        view,
        format!(
            "Delete cluster {}'s keys under {prefix} in {}",
            target.cluster, tree.dcs
        ),
        format!(
            "Deletes every key under {prefix} in {} at {} ({} now), as `{}` does: the leader lock, the members, the configuration, the history and the initialize key. With Patroni stopped on every member this makes the next start bootstrap the DCS anew; nothing of PostgreSQL's data is touched.",
            tree.dcs,
            tree.address,
            tree.keys.len(),
            tree.command
        ),
    );
    let step = delete_tree_step(target, view, &tree);
    plan.prechecks.clone_from(&step.prechecks);
    plan.steps.push(step);
    plan.rollback = Some(
        "none: the keys are gone. Patroni writes them again when it starts: the first member to start bootstraps (or, with data, takes the leader lock)".into(),
    );
    Ok(plan)
}

/// The step that deletes the cluster's tree (every member's Patroni stopped, the cluster's
/// name typed), verified by the tree being empty: for runbooks that rebuild a cluster.
pub(crate) fn delete_tree_of(
    target: &ClusterTarget,
    view: &ClusterView,
) -> Result<Step, PlanError> {
    Ok(delete_tree_step(target, view, &Tree::of(target, view)?))
}

fn delete_tree_step(target: &ClusterTarget, view: &ClusterView, tree: &Tree) -> Step {
    let prefix = &tree.prefix;
    let stopped: Vec<Check> = view
        .members
        .iter()
        .map(|member| Check::Unreachable {
            member: member.name.clone(),
        })
        .collect();
    Step {
        id: tree.step_id.into(),
        title: format!("Delete the {} keys under {prefix}", tree.keys.len()),
        action: tree.action.clone(),
        gate: Gate::TypeToConfirm {
            question: format!(
                "Delete every key of cluster {} in {}?",
                target.cluster, tree.dcs
            ),
            expected: target.cluster.clone(),
        },
        prechecks: stopped,
        verify: Some(Wait {
            until: vec![tree.empty.clone()],
            fail_if: Vec::new(),
            timeout: VERIFY_TIMEOUT,
            poll: Duration::from_millis(500),
            progress: Progress::Checks,
            stuck: Vec::new(),
        }),
        idempotency: Idempotency::CheckStateFirst {
            done_when: vec![tree.empty.clone()],
        },
    }
}

/// One cluster's tree in its DCS, as observed.
struct Tree {
    dcs: &'static str,
    address: String,
    prefix: String,
    keys: Vec<String>,
    command: String,
    step_id: &'static str,
    action: Action,
    empty: Check,
}

impl Tree {
    fn of(target: &ClusterTarget, view: &ClusterView) -> Result<Tree, PlanError> {
        let unlisted = |prefix: &str, error: &str| {
            PlanError::Refused(format!("cannot list the keys under {prefix}: {error}"))
        };
        if let Some(consul) = &view.consul {
            let prefix = consul.prefix.clone();
            let keys = consul
                .keys
                .clone()
                .map_err(|error| unlisted(&prefix, &error))?;
            return Ok(Tree {
                dcs: "Consul",
                address: consul.address.clone(),
                command: format!("consul kv delete -recurse {prefix}"),
                step_id: "delete-consul-tree",
                action: Action::Consul(ConsulAction::DeleteTree {
                    address: consul.address.clone(),
                    prefix: prefix.clone(),
                    keys: keys.clone(),
                }),
                empty: Check::ConsulTreeEmpty,
                prefix,
                keys,
            });
        }
        if let Some(etcd) = &view.etcd {
            let prefix = etcd.prefix.clone();
            let keys = etcd
                .key_names()
                .map_err(|error| unlisted(&prefix, &error))?;
            return Ok(Tree {
                dcs: "etcd",
                address: etcd.endpoint.clone(),
                command: format!("etcdctl del --prefix {prefix}"),
                step_id: "delete-etcd-tree",
                action: Action::Etcd(EtcdAction::DeleteTree {
                    endpoint: etcd.endpoint.clone(),
                    prefix: prefix.clone(),
                    keys: keys.clone(),
                }),
                empty: Check::EtcdTreeEmpty,
                prefix,
                keys,
            });
        }
        Err(PlanError::Refused(format!(
            "{}: pgha does not know where cluster {}'s DCS is: add a `dcs:` section (kind: etcd or consul, hosts) to its environment",
            target.origin, target.cluster
        )))
    }
}
