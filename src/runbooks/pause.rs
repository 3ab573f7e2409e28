//! `pgha pause [--wait]`: maintenance mode on. Patroni stops managing the cluster — PostgreSQL
//! keeps running, but nothing fails over automatically until `pgha resume`.

use serde::{Deserialize, Serialize};

use super::steps::maintenance;
use super::{Example, ExampleLab, PlanError, Runbook};
use crate::inventory::ClusterTarget;
use crate::observe::ClusterView;
use crate::plan::Plan;

/// `pgha pause`.
pub struct Pause;

// Whether to wait for every member's own word.
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
pub struct Params {
    /// Also wait until every member reports it (not only the DCS)
    #[arg(long)]
    pub wait: bool,
}

impl Runbook for Pause {
    const NAME: &'static str = "pause";
    const ABOUT: &'static str =
        "Turn maintenance mode on: Patroni stops managing the cluster (no automatic failover)";
    type Params = Params;

    fn plan(
        target: &ClusterTarget,
        view: &ClusterView,
        params: &Params,
    ) -> Result<Plan, PlanError> {
        maintenance(target, view, true, params.wait)
    }

    fn examples() -> Vec<Example<Params>> {
        vec![Example {
            file: "pause",
            params: Params { wait: true },
            lab: ExampleLab::Lab,
        }]
    }
}
