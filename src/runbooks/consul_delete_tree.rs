//! `pgha consul delete-tree`: delete a cluster's keys from Consul, as GitLab's Geo re-setup does
//! with `consul kv delete -recurse service/<cluster>` before bootstrapping the cluster anew.
//! Only the cluster's own prefix, always with its trailing `/` (without it Consul also deletes
//! `service/<cluster>2/…`); only with Patroni stopped on every member (a running Patroni writes
//! the keys straight back, and a leader losing its key demotes); behind the cluster's name.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::steps::frame;
use super::{Example, ExampleLab, PlanError, Runbook};
use crate::inventory::ClusterTarget;
use crate::observe::ClusterView;
use crate::plan::{Action, Check, ConsulAction, Gate, Idempotency, Plan, Progress, Step, Wait};

/// Consul applies a delete before it answers; the wait only has to see it.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(30);

/// `pgha consul delete-tree`.
pub struct ConsulDeleteTree;

// `delete-tree` is the one thing `pgha consul` does; the journal records only its prefix.
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
pub struct Params {
    #[command(subcommand)]
    #[serde(flatten)]
    pub command: Command,
}

#[derive(Debug, Clone, PartialEq, clap::Subcommand, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Command {
    /// Delete every key under the cluster's prefix (service/<scope>/), with Patroni stopped everywhere
    DeleteTree {
        /// The prefix, if you want it checked: only the cluster's own is accepted
        #[arg(long, value_name = "PREFIX")]
        prefix: Option<String>,
    },
}

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
                command: Command::DeleteTree { prefix: None },
            },
            lab: ExampleLab::ConsulLab,
        }]
    }
}

fn plan(target: &ClusterTarget, view: &ClusterView, params: &Params) -> Result<Plan, PlanError> {
    let Params {
        command: Command::DeleteTree { prefix: asked },
    } = params;
    let consul = view.consul.as_ref().ok_or_else(|| {
        PlanError::Refused(format!(
            "{}: cluster {} does not use Consul (its environment's dcs.kind is not consul)",
            target.origin, target.cluster
        ))
    })?;
    let prefix = consul.prefix.clone();
    if let Some(asked) = asked
        && asked.trim_end_matches('/') != prefix.trim_end_matches('/')
    {
        return Err(PlanError::Refused(format!(
            "--prefix {asked:?} is not cluster {}'s own prefix {prefix:?}: pgha deletes only the tree of the cluster it was given",
            target.cluster
        )));
    }
    let keys = consul.keys.clone().map_err(|error| {
        PlanError::Refused(format!("cannot list the keys under {prefix}: {error}"))
    })?;
    let mut plan = frame(
        target,
        view,
        format!(
            "Delete cluster {}'s keys under {prefix} in Consul",
            target.cluster
        ),
        format!(
            "Deletes every key under {prefix} in Consul at {} ({} now), as `consul kv delete -recurse {prefix}` does: the leader lock, the members, the configuration, the history and the initialize key. With Patroni stopped on every member this makes the next start bootstrap the DCS anew; nothing of PostgreSQL's data is touched.",
            consul.address,
            keys.len()
        ),
    );
    let stopped: Vec<Check> = view
        .members
        .iter()
        .map(|member| Check::Unreachable {
            member: member.name.clone(),
        })
        .collect();
    plan.prechecks.clone_from(&stopped);
    plan.steps.push(Step {
        id: "delete-consul-tree".into(),
        title: format!("Delete the {} keys under {prefix}", keys.len()),
        action: Action::Consul(ConsulAction::DeleteTree {
            address: consul.address.clone(),
            prefix,
            keys,
        }),
        gate: Gate::TypeToConfirm {
            question: format!("Delete every key of cluster {} in Consul?", target.cluster),
            expected: target.cluster.clone(),
        },
        prechecks: stopped,
        verify: Some(Wait {
            until: vec![Check::ConsulTreeEmpty],
            fail_if: Vec::new(),
            timeout: VERIFY_TIMEOUT,
            poll: Duration::from_millis(500),
            progress: Progress::Checks,
        }),
        idempotency: Idempotency::CheckStateFirst {
            done_when: vec![Check::ConsulTreeEmpty],
        },
    });
    plan.rollback = Some(
        "none: the keys are gone. Patroni writes them again when it starts: the first member to start bootstraps (or, with data, takes the leader lock)".into(),
    );
    Ok(plan)
}
