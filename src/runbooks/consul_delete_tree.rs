//! `pgha consul delete-tree`: delete a cluster's keys from Consul, as GitLab's Geo re-setup does
//! with `consul kv delete -recurse service/<cluster>` before bootstrapping the cluster anew — the
//! Consul spelling of `pgha dcs delete-tree`, kept for the runbooks that name it. The rules are
//! the step library's (`steps::delete_tree`).


use super::steps::{DeleteTreeCommand, DeleteTreeParams, delete_tree};
use super::{Example, ExampleLab, PlanError, Runbook};
use crate::inventory::ClusterTarget;
use crate::observe::ClusterView;
use crate::plan::Plan;

/// `pgha consul delete-tree`.
pub struct ConsulDeleteTree;

/// The flags of `delete-tree`, shared with `pgha dcs delete-tree`.
pub type Params = DeleteTreeParams;

impl Runbook for ConsulDeleteTree {
    const NAME: &'static str = "consul-delete-tree";
    const ABOUT: &'static str =
        "Consul, when it is the cluster's DCS: delete the cluster's key tree";
    type Params = Params;

    fn plan(
        target: &ClusterTarget,
        view: &ClusterView,
        params: &Params,
    ) -> Result<Plan, PlanError> {
        plan(target, view, params)
    }

    fn examples() -> Vec<Example<Params>> {
        vec![Example {
            file: "consul-delete-tree",
            params: Params {
                command: DeleteTreeCommand::DeleteTree { prefix: None },
            },
            lab: ExampleLab::ConsulLab,
        }]
    }
}

fn plan(target: &ClusterTarget, view: &ClusterView, params: &Params) -> Result<Plan, PlanError> {
    if view.consul.is_none() {
        return Err(PlanError::Refused(format!(
            "{}: cluster {} does not use Consul (its environment's dcs.kind is not consul): see `pgha dcs delete-tree`",
            target.origin, target.cluster
        )));
    }
    delete_tree(target, view, params.asked())
}
