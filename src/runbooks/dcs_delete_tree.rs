//! `pgha dcs delete-tree`: delete a cluster's keys from its DCS, etcd or Consul, as GitLab's Geo
//! re-setup does before bootstrapping the cluster anew (`consul kv delete -recurse`, `etcdctl del
//! --prefix`). Only the cluster's own prefix with its trailing `/`: a sibling scope (`geo` beside
//! `geo2`) is never touched. Only with every member's REST API down, re-checked just before; behind
//! typing the cluster's name; verified by reading the prefix again.

use serde::{Deserialize, Serialize};

use super::steps::delete_tree;
use super::{Example, ExampleLab, PlanError, Runbook};
use crate::inventory::ClusterTarget;
use crate::observe::ClusterView;
use crate::plan::Plan;

/// `pgha dcs delete-tree`.
pub struct DcsDeleteTree;

// `delete-tree` is what `pgha dcs` does today; the journal records only its prefix.
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
pub struct Params {
    #[command(subcommand)]
    #[serde(flatten)]
    pub command: Command,
}

#[derive(Debug, Clone, PartialEq, clap::Subcommand, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Command {
    /// Delete every key under the cluster's prefix (/service/<scope>/ on etcd, service/<scope>/ on
    /// Consul), with Patroni stopped everywhere
    DeleteTree {
        /// The prefix, if you want it checked: only the cluster's own is accepted
        #[arg(long, value_name = "PREFIX")]
        prefix: Option<String>,
    },
}

impl Runbook for DcsDeleteTree {
    const NAME: &'static str = "dcs-delete-tree";
    const ABOUT: &'static str =
        "The cluster's DCS (etcd or Consul): delete the cluster's key tree, with Patroni stopped";
    type Params = Params;

    fn plan(target: &ClusterTarget, view: &ClusterView, params: &Params) -> Result<Plan, PlanError> {
        let Params {
            command: Command::DeleteTree { prefix },
        } = params;
        delete_tree(target, view, prefix.as_deref())
    }

    fn examples() -> Vec<Example<Params>> {
        vec![Example {
            file: "dcs-delete-tree",
            params: Params {
                command: Command::DeleteTree { prefix: None },
            },
            lab: ExampleLab::EtcdLab,
        }]
    }
}
