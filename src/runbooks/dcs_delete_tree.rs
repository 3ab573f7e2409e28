//! `pgha dcs delete-tree`: delete a cluster's keys from its DCS, etcd or Consul, as GitLab's Geo
//! re-setup does before bootstrapping the cluster anew (`consul kv delete -recurse`, `etcdctl del
//! --prefix`). Only the cluster's own prefix with its trailing `/`: a sibling scope (`geo` beside
//! `geo2`) is never touched. Only with every member's REST API down, re-checked just before; behind
//! typing the cluster's name; verified by reading the prefix again.


use super::steps::{DeleteTreeCommand, DeleteTreeParams, delete_tree};
use super::{Example, ExampleLab, PlanError, Runbook};
use crate::inventory::ClusterTarget;
use crate::observe::ClusterView;
use crate::plan::Plan;

/// `pgha dcs delete-tree`.
pub struct DcsDeleteTree;

/// The flags of `delete-tree`, shared with `pgha consul delete-tree`.
pub type Params = DeleteTreeParams;

impl Runbook for DcsDeleteTree {
    const NAME: &'static str = "dcs-delete-tree";
    const ABOUT: &'static str =
        "The cluster's DCS (etcd or Consul): delete the cluster's key tree, with Patroni stopped";
    type Params = Params;

    fn plan(target: &ClusterTarget, view: &ClusterView, params: &Params) -> Result<Plan, PlanError> {
        delete_tree(target, view, params.asked())
    }

    fn examples() -> Vec<Example<Params>> {
        vec![Example {
            file: "dcs-delete-tree",
            params: Params {
                command: DeleteTreeCommand::DeleteTree { prefix: None },
            },
            lab: ExampleLab::EtcdLab,
        }]
    }
}
