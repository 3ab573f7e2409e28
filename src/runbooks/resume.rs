//! `pgha resume [--wait]`: maintenance mode off, Patroni manages the cluster again. With a
//! RUN_ID, `pgha resume` continues that recorded run instead (patronictl's `resume` means the
//! former; `pgha runs resume` is the unambiguous spelling of the latter): the command line
//! hands such a request to `runs`, never to this runbook.

use serde::{Deserialize, Serialize};

use super::steps::maintenance;
use super::{Example, ExampleLab, PlanError, Runbook};
use crate::inventory::ClusterTarget;
use crate::observe::ClusterView;
use crate::plan::Plan;

/// `pgha resume`.
pub struct Resume;

// Whether to wait for every member's own word; or, given a run id, which run to continue.
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
pub struct Params {
    /// A run to continue (see `pgha runs list`)
    #[arg(value_name = "RUN_ID", value_parser = crate::flags::name)]
    #[serde(skip)]
    pub run_id: Option<String>,
    /// Also wait until every member reports it (not only the DCS)
    #[arg(long)]
    pub wait: bool,
    /// With RUN_ID: when the cluster changed, plan again from the cluster as it is
    #[arg(long, requires = "run_id")]
    #[serde(skip)]
    pub replan: bool,
}

impl Runbook for Resume {
    const NAME: &'static str = "resume";
    const ABOUT: &'static str =
        "Turn maintenance mode off; with a RUN_ID, continue that recorded run instead";
    type Params = Params;

    fn plan(
        target: &ClusterTarget,
        view: &ClusterView,
        params: &Params,
    ) -> Result<Plan, PlanError> {
        maintenance(target, view, false, params.wait)
    }

    fn examples() -> Vec<Example<Params>> {
        vec![Example {
            file: "resume",
            params: Params {
                run_id: None,
                wait: true,
                replan: false,
            },
            lab: ExampleLab::Lab,
        }]
    }
}
