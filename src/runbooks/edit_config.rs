//! `pgha edit-config` (also `pgha config edit`): the cluster's dynamic configuration changed as
//! `patronictl edit-config` changes it, and then verified. The configuration is read before
//! planning with what says it is unchanged since (etcd's revision, Consul's index); the plan
//! shows the unified diff; the write is a compare-and-set on the DCS key, so a change made by
//! someone else meanwhile aborts it with nothing written. Without the DCS in the inventory it
//! is `PATCH /config` of the changed keys only. A setting Patroni would ignore or adjust (an
//! unknown key, a timing that breaks `loop_wait + 2 × retry_timeout <= ttl`, a parameter it
//! sets itself) is refused before anything is sent: Patroni answers 200 to all of them. Done
//! when every member that answers sees the change, with the restarts it now waits for.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::steps::{
    answering_members, applying_loop_wait, assume_identity, config_picked_up_step,
    config_write_step, frame, lab_config_read, read_before_planning, read_config,
    refuse_what_patroni_would_not_use,
};
use super::{Example, ExampleLab, PlanError, Probe, Runbook};
use crate::inventory::ClusterTarget;
use crate::observe::ClusterView;
use crate::patroni::dynamic_config::{self, ConfigChange, ConfigRead, ConfigSource};
use crate::plan::Plan;

/// Members pick a change up in their next HA loop (`loop_wait`, 10 s by default; longer
/// while one is busy).
const DEFAULT_TIMEOUT: Duration = Duration::from_mins(2);

/// `pgha edit-config`.
pub struct EditConfig;

// What to change: settings one by one, a document merged in, or the whole configuration.
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
pub struct Params {
    /// Set KEY (dotted: `ttl`, `postgresql.use_slots`) to VALUE, read as YAML (`30`, `true`,
    /// `'8MB'`); `KEY=null` removes it (repeat)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Set a PostgreSQL parameter: `--pg max_connections=200` is `--set
    /// postgresql.parameters.max_connections=200` (repeat)
    #[arg(long = "pg", value_name = "NAME=VALUE")]
    pub pg: Vec<String>,
    /// Merge this YAML or JSON into the configuration as `PATCH /config` merges (`null`
    /// removes a key); `-` reads standard input
    #[arg(long, value_name = "FILE")]
    pub apply: Option<PathBuf>,
    /// Replace the whole configuration with this YAML or JSON; `-` reads standard input
    #[arg(long, value_name = "FILE", conflicts_with_all = ["apply", "set", "pg"])]
    pub replace: Option<PathBuf>,
    /// How long members may take to pick the change up [default: 2m]
    #[arg(long, value_name = "DURATION", value_parser = crate::flags::duration)]
    #[serde(default, with = "crate::duration::optional_text")]
    pub timeout: Option<Duration>,
    /// Measured: the configuration as read before planning, and where from.
    #[arg(skip)]
    #[serde(default)]
    pub read: Option<Box<ConfigRead>>,
    /// Measured: the document `--apply` or `--replace` named, as read before planning.
    #[arg(skip)]
    #[serde(default)]
    pub document: Option<Value>,
}

impl Runbook for EditConfig {
    const NAME: &'static str = "edit-config";
    const ABOUT: &'static str = "Change the dynamic configuration (patronictl edit-config): shown as a diff, written with a compare-and-set, verified on every member";
    type Params = Params;

    fn deadline(params: &mut Params) -> Option<&mut Option<Duration>> {
        Some(&mut params.timeout)
    }

    /// The configuration and its revision, and the operator's document: planners read
    /// neither the DCS nor files.
    async fn measure(
        mut params: Params,
        _target: &ClusterTarget,
        view: &ClusterView,
        probe: &impl Probe,
    ) -> Result<Params, PlanError> {
        params.read = Some(read_before_planning(params.read, view, probe).await?);
        if params.document.is_none()
            && let Some(path) = params.replace.as_ref().or(params.apply.as_ref())
        {
            params.document = Some(read_document(path)?);
        }
        Ok(params)
    }

    fn plan(target: &ClusterTarget, view: &ClusterView, params: &Params) -> Result<Plan, PlanError> {
        plan(target, view, params)
    }

    fn examples() -> Vec<Example<Params>> {
        vec![Example {
            file: "edit-config",
            params: Params {
                set: vec!["ttl=30".into()],
                pg: vec!["max_connections=100".into(), "work_mem=8MB".into()],
                apply: None,
                replace: None,
                timeout: None,
                read: Some(Box::new(lab_config_read())),
                document: None,
            },
            lab: ExampleLab::Lab,
        }]
    }
}

fn plan(target: &ClusterTarget, view: &ClusterView, params: &Params) -> Result<Plan, PlanError> {
    let read = read_config(params.read.as_deref())?;
    let new = edited(&read.config, params)?;
    let changes = dynamic_config::changes(&read.config, &new);
    refuse_what_patroni_would_not_use(&new, &changes)?;
    let answering = answering_members(view);
    let timeout = params.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let mut plan = frame(
        target,
        view,
        format!("Change the dynamic configuration of {}", target.cluster),
        summary(target, read, &new, &changes),
    );
    assume_identity(&mut plan, view);
    if changes.is_empty() {
        // Nothing to write: the run still says whether every member sees it so.
        plan.steps.push(config_picked_up_step(&answering, &changes, 0, timeout));
        return Ok(plan);
    }
    let write = config_write_step(target, view, read, &new, &changes, &answering)?;
    plan.steps.push(write);
    let loop_wait = applying_loop_wait(&read.config, &new);
    plan.steps.push(config_picked_up_step(&answering, &changes, loop_wait, timeout));
    plan.rollback = Some(format!(
        "run pgha edit-config again with the previous values (the diff above, read the other way): {}",
        reverse(&read.config, &new)
    ));
    Ok(plan)
}

/// The configuration as it will be: replaced by the document, or the document merged in,
/// then each `--set` and `--pg` in turn.
fn edited(current: &Value, params: &Params) -> Result<Value, PlanError> {
    if params.replace.is_some() {
        return params.document.clone().ok_or_else(|| {
            PlanError::BadInput("--replace: the document was not read".into())
        });
    }
    let mut config = current.clone();
    if let Some(document) = &params.document {
        if !document.is_object() {
            return Err(PlanError::BadInput(
                "--apply: the document must be a mapping of settings".into(),
            ));
        }
        config = dynamic_config::merged(&config, document);
    }
    let assignments = params
        .set
        .iter()
        .map(|text| (text, &[][..]))
        .chain(params.pg.iter().map(|text| (text, &["postgresql", "parameters"][..])));
    for (text, prefix) in assignments {
        let patch = dynamic_config::assignment(text, prefix).map_err(PlanError::BadInput)?;
        config = dynamic_config::merged(&config, &patch);
    }
    if params.document.is_none() && params.set.is_empty() && params.pg.is_empty() {
        return Err(PlanError::BadInput(
            "nothing to change: give --set KEY=VALUE, --pg NAME=VALUE, --apply FILE or --replace FILE (`pgha config show` prints the configuration)".into(),
        ));
    }
    Ok(config)
}

/// What the change request reads: the changes, where they go, and the diff.
fn summary(target: &ClusterTarget, read: &ConfigRead, new: &Value, changes: &[ConfigChange]) -> String {
    if changes.is_empty() {
        return format!(
            "The dynamic configuration of {} already holds what was asked: nothing is written; the run checks that every member sees it so.",
            target.cluster
        );
    }
    let how = match &read.from {
        ConfigSource::Etcd { key, mod_revision, .. } => format!(
            "written to etcd's {key} only if nobody wrote it since it was read (revision {mod_revision}), as patronictl edit-config does"
        ),
        ConfigSource::Consul { key, index, .. } => format!(
            "written to Consul's {key} only if nobody wrote it since it was read (ModifyIndex {index}), as patronictl edit-config does"
        ),
        ConfigSource::Rest { member } => format!(
            "sent as PATCH /config of the changed keys to {member} (the inventory names no DCS, so there is no compare-and-set: a change of other keys meanwhile is kept, one of the same keys is overwritten)"
        ),
    };
    format!(
        "Changes {} in the dynamic configuration of {}: {how}. Done when every member that answers sees the change; members then waiting for a restart are named (`pgha restart --pending-only`).\n\n```diff\n{}```",
        changes
            .iter()
            .map(ConfigChange::describe)
            .collect::<Vec<_>>()
            .join(", "),
        target.cluster,
        dynamic_config::unified_diff(&read.config, new)
    )
}

/// The `--set` flags that put back what the edit changes.
fn reverse(old: &Value, new: &Value) -> String {
    dynamic_config::changes(new, old)
        .iter()
        .map(|change| match &change.value {
            Some(value) => format!("--set '{}={value}'", change.path),
            None => format!("--set '{}=null'", change.path),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The document `--apply`/`--replace` names (`-`: standard input), as YAML (JSON is YAML).
fn read_document(path: &std::path::Path) -> Result<Value, PlanError> {
    let shown = path.display();
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
            .map_err(|error| PlanError::BadInput(format!("standard input: {error}")))?
    } else {
        std::fs::read_to_string(path)
            .map_err(|error| PlanError::BadInput(format!("{shown}: {error}")))?
    };
    let document: Value = serde_saphyr::from_str(&text).map_err(|error| {
        PlanError::BadInput(format!(
            "{shown}: not YAML or JSON: {}",
            error.to_string().lines().next().unwrap_or_default()
        ))
    })?;
    if document.is_object() {
        Ok(document)
    } else {
        Err(PlanError::BadInput(format!(
            "{shown}: the document must be a mapping of settings"
        )))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::plan::{Action, Check, EtcdAction, PatroniAction, PatroniCall};
    use crate::runbooks::tests::lab;

    fn params() -> Params {
        EditConfig::examples().remove(0).params
    }

    #[test]
    fn the_plan_writes_with_a_compare_and_set_then_waits_for_every_member() {
        let (target, view) = lab();
        let plan = EditConfig::plan(&target, &view, &params()).unwrap();
        let ids: Vec<&str> = plan.steps.iter().map(|step| step.id.as_str()).collect();
        assert_eq!(ids, ["write-config", "picked-up"]);
        let Action::Etcd(EtcdAction::SetConfig {
            mod_revision,
            value,
            ..
        }) = &plan.steps[0].action
        else {
            panic!("{:?}", plan.steps[0].action)
        };
        assert_eq!(*mod_revision, 42);
        let written: Value = serde_json::from_str(value).unwrap();
        assert_eq!(written["ttl"], 30);
        assert_eq!(written["postgresql"]["parameters"]["work_mem"], "8MB");
        assert_eq!(written["loop_wait"], 2, "the rest kept");
        assert!(plan.summary.contains("```diff\n--- before\n+++ after\n"), "{}", plan.summary);
        assert!(plan.summary.contains("+ttl: 30"), "{}", plan.summary);
        let Action::Wait(wait) = &plan.steps[1].action else {
            panic!("waits")
        };
        assert_eq!(wait.until.len(), 3, "every member that answers");
        assert!(plan.reads_dynamic_config());
        assert!(plan.rollback.unwrap().contains("--set 'ttl=20'"));
    }

    #[test]
    fn without_the_dcs_the_changed_keys_go_as_a_patch() {
        let (target, view) = lab();
        let mut params = params();
        params.read.as_mut().unwrap().from = ConfigSource::Rest {
            member: "node1".into(),
        };
        let plan = EditConfig::plan(&target, &view, &params).unwrap();
        let Action::Patroni(PatroniAction {
            call: PatroniCall::PatchConfig { patch },
            ..
        }) = &plan.steps[0].action
        else {
            panic!("{:?}", plan.steps[0].action)
        };
        assert_eq!(
            *patch,
            json!({"ttl": 30, "postgresql": {"parameters": {"max_connections": 100, "work_mem": "8MB"}}})
        );
    }

    #[test]
    fn what_patroni_would_not_use_is_refused_in_one_line() {
        let (target, view) = lab();
        let refused = |set: &[&str]| {
            let params = Params {
                set: set.iter().map(ToString::to_string).collect(),
                pg: Vec::new(),
                ..params()
            };
            match EditConfig::plan(&target, &view, &params) {
                Err(PlanError::BadInput(line)) => line,
                other => panic!("{set:?}: {other:?}"),
            }
        };
        assert!(refused(&["tll=30"]).starts_with("`tll` is not a dynamic configuration setting"));
        assert!(refused(&["loop_wait=11"]).contains("more than ttl (20)"));
        assert!(refused(&["ttl=soon"]).contains("whole number"));
        assert!(refused(&["ttl"]).contains("KEY=VALUE"));
        assert!(refused(&["pause=true"]).contains("pgha pause"));
        let two = refused(&["tll=1", "postgresql.data_dir=/x"]);
        assert!(two.contains("(and 1 more:"), "{two}");
        assert!(two.ends_with("nothing was sent"), "{two}");
    }

    #[test]
    fn asking_for_what_is_already_there_writes_nothing() {
        let (target, view) = lab();
        let same = Params {
            set: vec!["ttl=20".into()],
            pg: Vec::new(),
            ..params()
        };
        let plan = EditConfig::plan(&target, &view, &same).unwrap();
        let ids: Vec<&str> = plan.steps.iter().map(|step| step.id.as_str()).collect();
        assert_eq!(ids, ["picked-up"]);
        assert!(plan.summary.contains("nothing is written"));
        let nothing = Params {
            set: Vec::new(),
            pg: Vec::new(),
            ..params()
        };
        assert!(matches!(
            EditConfig::plan(&target, &view, &nothing),
            Err(PlanError::BadInput(line)) if line.starts_with("nothing to change")
        ));
    }

    #[test]
    fn a_replacement_is_the_whole_document() {
        let (target, view) = lab();
        let mut replacement = lab_config();
        replacement["ttl"] = json!(40);
        replacement.as_object_mut().unwrap().remove("maximum_lag_on_failover");
        let params = Params {
            set: Vec::new(),
            pg: Vec::new(),
            replace: Some("-".into()),
            document: Some(replacement),
            ..params()
        };
        let plan = EditConfig::plan(&target, &view, &params).unwrap();
        assert!(plan.summary.contains("maximum_lag_on_failover removed"), "{}", plan.summary);
        assert!(plan.summary.contains("ttl: 40"), "{}", plan.summary);
    }

    /// A member counts once its `/config` shows the change and it began an HA loop a
    /// `loop_wait` after the wait did (the loop that applied it is then over); Patroni 2.x,
    /// which does not say when it last read the DCS, on its `/config` alone.
    #[test]
    fn a_member_has_picked_the_change_up_once_a_loop_after_it_is_over() {
        let (target, mut view) = lab();
        let plan = EditConfig::plan(&target, &view, &params()).unwrap();
        let Action::Wait(wait) = &plan.steps[1].action else {
            panic!("waits")
        };
        let check = &wait.until[0];
        assert!(matches!(check, Check::ConfigPickedUp { loop_wait: 2, .. }), "{check:?}");
        let written = {
            let Action::Etcd(EtcdAction::SetConfig { value, .. }) = &plan.steps[0].action else {
                panic!("etcd")
            };
            serde_json::from_str::<Value>(value).unwrap()
        };
        view.wait_began = Some(1_000);
        let node1 = view.members.iter_mut().find(|m| m.name == "node1").unwrap();
        node1.dynamic_config = Some(lab_config());
        let status = node1.status.as_mut().unwrap();
        status.dcs_last_seen = Some(1_010);
        assert!(!check.evaluate(&view).passed, "not written yet");
        let node1 = view.members.iter_mut().find(|m| m.name == "node1").unwrap();
        node1.dynamic_config = Some(written);
        let seen_at = |view: &mut ClusterView, at| {
            let node1 = view.members.iter_mut().find(|m| m.name == "node1").unwrap();
            node1.status.as_mut().unwrap().dcs_last_seen = at;
        };
        seen_at(&mut view, Some(1_002));
        let verdict = check.evaluate(&view);
        assert!(!verdict.passed, "{}", verdict.observed);
        assert!(verdict.observed.contains("waiting for its next HA loop"));
        seen_at(&mut view, Some(1_003));
        assert!(check.evaluate(&view).passed);
        seen_at(&mut view, None);
        assert!(check.evaluate(&view).passed, "2.x: /config alone");
    }

    fn lab_config() -> Value {
        lab_config_read().config
    }
}
