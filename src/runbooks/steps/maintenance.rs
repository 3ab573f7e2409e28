//! Maintenance mode as a plan: `PATCH /config {"pause": …}`, verified in the DCS and, when
//! asked, on every member's own status. Paused, Patroni stops managing the cluster: no
//! automatic failover until resumed.

use std::time::Duration;

use serde_json::json;

use super::{PlanError, assume_identity, cluster_api, frame};
use crate::inventory::ClusterTarget;
use crate::observe::{ClusterView, MemberView};
use crate::plan::{
    Action, Check, Gate, Idempotency, PatroniAction, PatroniCall, Plan, Progress, Step, Wait,
};

/// The plan that turns maintenance mode on (`pause`) or off; with `wait`, done when every
/// member says so itself, else when the DCS does.
pub(crate) fn maintenance(
    target: &ClusterTarget,
    view: &ClusterView,
    pause: bool,
    wait: bool,
) -> Result<Plan, PlanError> {
    let api = cluster_api(view)?;
    let (title, summary, question, rollback) =
        if pause {
            (
            format!("Pause cluster {} (maintenance mode on)", target.cluster),
            "Patroni stops managing the cluster: PostgreSQL keeps running, but nothing fails over \
             automatically until management resumes. Keep the window short."
                .to_string(),
            format!("Pause {}? No automatic failover until it is resumed.", target.cluster),
            format!("`pgha resume --cluster {}`", target.cluster),
        )
        } else {
            (
                format!("Resume cluster {} (maintenance mode off)", target.cluster),
                "Patroni manages the cluster again: automatic failover is back.".to_string(),
                format!("Resume management of {}?", target.cluster),
                format!("`pgha pause --cluster {}`", target.cluster),
            )
        };
    let mut plan = frame(target, view, title, summary);
    plan.prechecks = vec![Check::Reachable {
        member: api.name.clone(),
    }];
    assume_identity(&mut plan, view);
    plan.steps.push(maintenance_step(
        api,
        pause,
        wait,
        Gate::Confirm { question },
    ));
    plan.rollback = Some(rollback);
    Ok(plan)
}

/// `PATCH /config {"pause": …}` through `api`, verified in the DCS and, with `wait`, by every
/// member itself; `pause` or `resume` by id.
pub(crate) fn maintenance_step(api: &MemberView, pause: bool, wait: bool, gate: Gate) -> Step {
    // Without --wait the DCS's word is enough; with it, every member must say so itself.
    let until = if wait {
        vec![
            Check::PauseRecorded { paused: pause },
            Check::Paused { paused: pause },
        ]
    } else {
        vec![Check::PauseRecorded { paused: pause }]
    };
    Step {
        id: if pause {
            "pause".into()
        } else {
            "resume".into()
        },
        title: if pause {
            "Turn maintenance mode on".into()
        } else {
            "Turn maintenance mode off".into()
        },
        action: Action::Patroni(PatroniAction {
            member: api.name.clone(),
            api_url: api.api_url.clone(),
            call: PatroniCall::PatchConfig {
                patch: json!({ "pause": pause }),
            },
        }),
        gate,
        prechecks: Vec::new(),
        verify: Some(Wait {
            until,
            fail_if: Vec::new(),
            timeout: Duration::from_secs(30),
            poll: Duration::from_millis(250),
            progress: Progress::Checks,
            stuck: Vec::new(),
        }),
        idempotency: Idempotency::CheckStateFirst {
            done_when: vec![
                Check::PauseRecorded { paused: pause },
                Check::Paused { paused: pause },
            ],
        },
    }
}
