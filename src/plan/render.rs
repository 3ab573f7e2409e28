//! Renderings of a plan: Markdown for a change request, plain text for the terminal, JSON for
//! machines. Each shows every step with its exact call (method, URL, body; the REST password as
//! `***`), its gate, its checks, its deadline and how it is verified. With pre-check results
//! (a dry-run), each check also shows what was observed. Markdown and text are printable (no
//! control characters from the cluster); JSON keeps the exact text (serde_json escapes C0).

use std::fmt::Write as _;

use super::estimate::{Estimate, StepEstimate};
use serde::Serialize;

use super::{
    Action, Check, ConsulAction, EtcdAction, Gate, Idempotency, Plan, Progress, Step, Verdict,
    Wait, Window,
};

/// A pre-check with its result, when the plan was checked against the live cluster.
#[derive(Debug, Clone, Serialize)]
pub struct CheckedPrecheck {
    /// The plan's check; none for a probe of access (credentials, Alertmanager).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<Check>,
    pub text: String,
    #[serde(flatten)]
    pub verdict: Verdict,
}

impl CheckedPrecheck {
    pub fn new(check: &Check, verdict: Verdict) -> Self {
        CheckedPrecheck {
            check: Some(check.clone()),
            text: check.to_string(),
            verdict,
        }
    }

    /// A probe of something the plan needs beyond the cluster's state.
    pub fn probe(text: impl Into<String>, verdict: Verdict) -> Self {
        CheckedPrecheck {
            check: None,
            text: text.into(),
            verdict,
        }
    }
}

#[derive(Serialize)]
struct JsonPlan<'a> {
    schema_version: u32,
    plan: &'a Plan,
    plan_hash: String,
    /// The plan's structure's fingerprint (`plan::structure`): equal for a rehearsal and
    /// the real run when they do the same steps behind the same gates.
    plan_structure: String,
    prechecks: Option<&'a [CheckedPrecheck]>,
    /// From earlier runs' journals (a dry-run's); absent without any.
    #[serde(skip_serializing_if = "Option::is_none")]
    estimate: Option<&'a Estimate>,
}

pub fn json(plan: &Plan, checked: Option<&[CheckedPrecheck]>) -> String {
    json_estimated(plan, checked, None)
}

/// The plan as JSON, with its estimate.
pub fn json_estimated(
    plan: &Plan,
    checked: Option<&[CheckedPrecheck]>,
    estimate: Option<&Estimate>,
) -> String {
    let document = JsonPlan {
        schema_version: 1,
        plan,
        plan_hash: plan.hash(),
        plan_structure: super::structure::fingerprint(plan),
        prechecks: checked,
        estimate,
    };
    let mut text = crate::ui::json::pretty(&document).unwrap_or_default();
    text.push('\n');
    text
}

/// How long the plan should take, as a Markdown section: each step, the total, the runs.
pub fn estimate_markdown(estimate: &Estimate) -> String {
    estimate_lines(
        estimate,
        "\n## Estimate\n\nFrom {runs} earlier run(s) of this runbook (journals of runs and rehearsals): about {total}.\n\n| step | estimate | runs |\n| --- | ---: | ---: |",
        |step, estimated| format!("| {} | {estimated} | {} |", step.step, step.runs),
    )
}

/// The estimate as text lines, for the terminal.
pub fn estimate_text(estimate: &Estimate) -> String {
    estimate_lines(
        estimate,
        "Estimate (from {runs} earlier run(s)): about {total}",
        |step, estimated| format!("  {}: {estimated} ({} run(s))", step.step, step.runs),
    )
}

/// A heading (`{runs}` and `{total}` filled in), then one line per step.
fn estimate_lines(
    estimate: &Estimate,
    heading: &str,
    line: impl Fn(&StepEstimate, String) -> String,
) -> String {
    let (fast, slow) = estimate.total_range;
    let mut total = seconds_text(estimate.total_seconds);
    if slow - fast >= 0.1 {
        let _ = write!(total, " ({} to {})", seconds_text(fast), seconds_text(slow));
    }
    // A total that leaves steps out says so: it is a floor, not the run's length.
    let unmeasured = estimate
        .steps
        .iter()
        .filter(|step| step.seconds.is_none())
        .count();
    if unmeasured == 0 {
        total.push_str(" in all");
    } else {
        let _ = write!(
            total,
            " for the steps measured before ({unmeasured} of {} never measured: the run takes longer)",
            estimate.steps.len()
        );
    }
    let mut out = heading
        .replace("{runs}", &estimate.runs.to_string())
        .replace("{total}", &total);
    out.push('\n');
    for step in &estimate.steps {
        out.push_str(&line(step, estimated(step)));
        out.push('\n');
    }
    out
}

fn estimated(step: &StepEstimate) -> String {
    let Some(seconds) = step.seconds else {
        return "unknown".into();
    };
    let mut text = seconds_text(seconds);
    if let Some((fast, slow)) = step.range
        && slow - fast >= 0.1
    {
        let _ = write!(text, " ({} to {})", seconds_text(fast), seconds_text(slow));
    }
    if step.scaled {
        text.push_str(", scaled to the size");
    }
    text
}

fn seconds_text(seconds: f64) -> String {
    if seconds < 120.0 {
        format!("{seconds:.1} s")
    } else {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let whole = std::time::Duration::from_secs(seconds.round() as u64);
        humantime::format_duration(whole).to_string()
    }
}

pub fn markdown(plan: &Plan, checked: Option<&[CheckedPrecheck]>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", plan.title);
    let _ = writeln!(out, "{}\n", plan.summary);
    let _ = writeln!(out, "| | |\n| --- | --- |");
    let _ = writeln!(out, "| Runbook | `pgha {}` |", plan.runbook);
    let _ = writeln!(out, "| Environment | {} |", plan.environment);
    let _ = writeln!(
        out,
        "| Cluster | {} (scope `{}`) |",
        plan.cluster, plan.scope
    );
    for (key, value) in plan.inputs() {
        let _ = writeln!(out, "| {key} | `{value}` |");
    }
    let _ = writeln!(out, "| Plan hash | `{}` |", &plan.hash()[..16]);
    let _ = writeln!(
        out,
        "| Structure | `{}` (steps, gates, checks and waits without addresses, sizes or names: what `pgha rehearse` compares) |",
        super::structure::fingerprint(plan)
    );
    out.push('\n');

    let _ = writeln!(out, "## Pre-checks\n");
    match checked {
        Some(checked) => {
            for result in checked {
                let mark = if result.verdict.passed { "x" } else { " " };
                let _ = writeln!(
                    out,
                    "- [{mark}] {} — observed: {}",
                    result.text, result.verdict.observed
                );
            }
        }
        None => {
            for check in &plan.prechecks {
                let _ = writeln!(out, "- [ ] {check}");
            }
        }
    }
    if !plan.assumes.is_empty() {
        let _ = writeln!(
            out,
            "\nThe plan assumes (a resumed run refuses if this changed):\n"
        );
        for check in &plan.assumes {
            let _ = writeln!(out, "- {check}");
        }
    }

    let _ = writeln!(out, "\n## Steps");
    for (index, step) in plan.steps.iter().enumerate() {
        out.push('\n');
        markdown_step(&mut out, plan, index, step);
    }
    if !plan.compensations.is_empty() {
        markdown_compensations(&mut out, plan);
    }
    if !plan.windows.is_empty() {
        let _ = writeln!(out, "\n## Time limits\n");
        for window in &plan.windows {
            let _ = writeln!(out, "- **Bounded**: {}.", bounded(plan, window));
        }
    }
    if let Some(rollback) = &plan.rollback {
        let _ = writeln!(out, "\n## Rollback\n\n{rollback}");
    }
    // A plan names members as the DCS does, and quotes what checks observed.
    crate::ui::printable_lines(&out).into_owned()
}

fn markdown_step(out: &mut String, plan: &Plan, index: usize, step: &Step) {
    let _ = writeln!(out, "### {}. {}\n", index + 1, step.title);
    if let Some(peers) = parallel_peers(plan, index) {
        let _ = writeln!(
            out,
            "- **Runs in parallel** with {peers} (the group's gates are answered first, in order; then its steps run at once)"
        );
    }
    markdown_gate(out, &step.gate);
    if !step.prechecks.is_empty() {
        let _ = writeln!(
            out,
            "- **Re-checked just before**: {}",
            join(&step.prechecks)
        );
    }
    markdown_action(out, plan, &step.action);
    if let Some(verify) = &step.verify {
        markdown_wait(out, "Verify", verify);
    }
    let _ = writeln!(
        out,
        "- **If interrupted**: {}",
        describe_idempotency(&step.idempotency)
    );
}

/// What the run undoes if it stops part-way: each compensation, from which step it is armed.
fn markdown_compensations(out: &mut String, plan: &Plan) {
    let _ = writeln!(out, "\n## If it stops here");
    let _ = writeln!(
        out,
        "\nIf the run is aborted at a gate or refused by a check once the step named below has started, pgha undoes it at once, the latest first, without asking. If it fails or is interrupted, nothing is undone automatically (except what is marked \"also if the run fails or is interrupted\"): `pgha resume` finishes the run."
    );
    for compensation in &plan.compensations {
        let _ = writeln!(
            out,
            "\n### From {}: {}{}\n",
            numbered_step(plan, &compensation.after),
            compensation.step.title,
            if compensation.on_failure {
                " (also if the run fails or is interrupted)"
            } else {
                ""
            }
        );
        if !compensation.step.prechecks.is_empty() {
            let _ = writeln!(
                out,
                "- **Re-checked just before**: {}",
                join(&compensation.step.prechecks)
            );
        }
        markdown_action(out, plan, &compensation.step.action);
        if let Some(verify) = &compensation.step.verify {
            markdown_wait(out, "Verify", verify);
        }
    }
}

/// `step 1 (Silence alerts for node3 …)`: a step named by its id, as the reader numbers it.
fn numbered_step(plan: &Plan, id: &str) -> String {
    match plan.steps.iter().position(|step| step.id == id) {
        Some(index) => format!("step {} ({})", index + 1, plan.steps[index].title),
        None => format!("step `{id}`"),
    }
}

/// `Bounded: from step 2 (…) to step 9 (…), at most 5m (the cluster has been paused); past it
/// …`: how long a window may last, and what happens past it, one line.
fn bounded(plan: &Plan, window: &Window) -> String {
    format!(
        "from {} to {}, at most {} ({}); past it the run stops (no step starts, a wait ends; a call or command under way ends on its own timeout) and undoes what is marked \"also if the run fails or is interrupted\"",
        numbered_step(plan, &window.from),
        numbered_step(plan, &window.to),
        humantime::format_duration(window.limit),
        window.what
    )
}

/// `steps 3–5`: the other steps of the parallel group the step at `index` belongs to.
fn parallel_peers(plan: &Plan, index: usize) -> Option<String> {
    let batch = plan
        .batches()
        .into_iter()
        .find(|batch| batch.contains(&index) && batch.len() > 1)?;
    let others: Vec<usize> = batch
        .filter(|other| *other != index)
        .map(|other| other + 1)
        .collect();
    Some(step_numbers(&others))
}

/// `step 3`, `steps 3–5`, `steps 2, 4–5`: ascending step numbers, runs collapsed.
fn step_numbers(numbers: &[usize]) -> String {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for &number in numbers {
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == number => *last = number,
            _ => runs.push((number, number)),
        }
    }
    let text: Vec<String> = runs
        .iter()
        .map(|&(first, last)| {
            if first == last {
                first.to_string()
            } else {
                format!("{first}–{last}")
            }
        })
        .collect();
    let noun = if numbers.len() == 1 { "step" } else { "steps" };
    format!("{noun} {}", text.join(", "))
}

fn markdown_gate(out: &mut String, gate: &Gate) {
    match gate {
        Gate::None => {}
        Gate::Confirm { question } => {
            let _ = writeln!(out, "- **Gate**: confirm (y/N): {question}");
        }
        Gate::TypeToConfirm { question, expected } => {
            let _ = writeln!(
                out,
                "- **Gate** (destructive): {question} Type `{expected}` to proceed."
            );
        }
        Gate::ByHand { question, name, .. } => {
            let _ = writeln!(
                out,
                "- **Gate** (by hand): {question} Confirm at the terminal, or pass `--done {name}` once it is done (`--yes` does not answer it)."
            );
        }
    }
}

fn markdown_action(out: &mut String, plan: &Plan, action: &Action) {
    match action {
        Action::Patroni(action) => {
            let auth = plan
                .rest_user
                .as_ref()
                .map_or_else(String::new, |user| format!(" (basic auth `{user}:***`)"));
            let _ = writeln!(
                out,
                "- **Call**: `{}`{auth} on {}",
                action.request_line(),
                action.member
            );
            let body = action.call.body();
            if !body.is_null() {
                let _ = writeln!(out, "\n  ```json\n  {body}\n  ```\n");
            }
        }
        Action::Sql(action) => {
            let _ = writeln!(
                out,
                "- **SQL** on {} ({}): `{}`",
                action.member,
                action.host,
                action.statement.text()
            );
        }
        Action::Remote(action) => {
            let place = match action.transport {
                crate::remote::Transport::Ssh => {
                    format!("on {} (`ssh {}`)", action.member, action.host)
                }
                crate::remote::Transport::Local => {
                    format!("for {} on the operator's machine", action.member)
                }
            };
            let _ = writeln!(
                out,
                "- **Command** {place}, within {}:\n\n  ```sh\n  {}\n  ```\n",
                humantime::format_duration(action.timeout),
                action.command
            );
        }
        Action::Silence(action) => {
            let _ = writeln!(out, "- **Alertmanager**: {}", describe_silence(action));
        }
        Action::Consul(action) => match action {
            ConsulAction::DeleteTree { keys, .. } => {
                markdown_tree_delete(out, "Consul", &action.request_line(), keys);
            }
            ConsulAction::SetConfig { .. } => {
                markdown_config_write(out, "Consul", &action.request_line());
            }
        },
        Action::Etcd(action) => match action {
            EtcdAction::DeleteTree { keys, .. } => {
                markdown_tree_delete(out, "etcd", &action.request_line(), keys);
            }
            EtcdAction::SetConfig { .. } => {
                markdown_config_write(out, "etcd", &action.request_line());
            }
        },
        Action::Manual(manual) => {
            let _ = writeln!(out, "- **By hand**:");
            for line in &manual.instructions {
                let _ = writeln!(out, "  - {line}");
            }
        }
        Action::Tag(action) => {
            let _ = writeln!(
                out,
                "- **Patroni configuration**: set {}; the file is read, changed in that one line, checked by parsing, and written back only if it did not change meanwhile, within {}:\n\n  ```sh\n  {}\n  {} < edited file\n  ```\n",
                action.describe(),
                humantime::format_duration(action.timeout),
                action.read_command(),
                action.write_command("SHA256-OF-WHAT-WAS-READ")
            );
        }
        Action::Wait(wait) => markdown_wait(out, "Wait", wait),
    }
}

fn markdown_wait(out: &mut String, label: &str, wait: &Wait) {
    let _ = writeln!(
        out,
        "- **{label}** up to {}, polling every {}, until: {}",
        humantime::format_duration(wait.timeout),
        humantime::format_duration(wait.poll),
        join(&wait.until)
    );
    if !wait.fail_if.is_empty() {
        let _ = writeln!(out, "- **Fails at once if**: {}", join(&wait.fail_if));
    }
    match &wait.progress {
        Progress::BaseBackup { leader, .. } => {
            let _ = writeln!(
                out,
                "- **Progress**: bytes streamed by {leader} (`pg_stat_progress_basebackup`)"
            );
        }
        Progress::DataDirectory {
            member,
            expected_bytes,
            read,
        } => {
            let _ = writeln!(
                out,
                "- **Progress**: the size of {member}'s data directory against the databases' {} (`{}`, every {})",
                crate::ui::human_bytes(*expected_bytes),
                read.describe(),
                humantime::format_duration(crate::plan::DATA_DIRECTORY_READ_EVERY),
            );
        }
        Progress::MemberState { .. } | Progress::Checks => {}
    }
    for watch in &wait.stuck {
        let _ = writeln!(
            out,
            "- **Stuck recovery**: once {} has stayed `starting` for {}, its log is read (`{}`) every {}; recovery waiting at the same WAL position in two reads, or a fatal line, fails the wait with the log's tail",
            watch.member,
            humantime::format_duration(watch.after),
            watch.read.describe(),
            humantime::format_duration(watch.after),
        );
    }
}

fn describe_silence(action: &crate::plan::SilenceAction) -> String {
    match action {
        crate::plan::SilenceAction::Create {
            url,
            labels,
            duration,
            comment,
        } => {
            let matchers: Vec<String> = labels
                .iter()
                .map(|(name, value)| format!("{name}=\"{value}\""))
                .collect();
            format!(
                "`POST {url}/api/v2/silences` silencing {{{}}} for {} (\"{comment}\")",
                matchers.join(", "),
                humantime::format_duration(*duration)
            )
        }
        crate::plan::SilenceAction::Expire { url, created_by } => {
            format!("`DELETE {url}/api/v2/silence/ID` for the silence created by step {created_by}")
        }
    }
}

fn describe_idempotency(idempotency: &Idempotency) -> String {
    match idempotency {
        Idempotency::SafeToRepeat => "safe to repeat: `pgha resume` runs it again".into(),
        Idempotency::CheckStateFirst { done_when } => format!(
            "`pgha resume` looks first: done if {}; otherwise it is sent again after its checks",
            join(done_when)
        ),
        Idempotency::AskHuman => "`pgha resume` asks the operator".into(),
    }
}

fn join(checks: &[Check]) -> String {
    checks
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The plan as the operator sees it on the terminal before anything runs.
pub fn text(plan: &Plan, checked: Option<&[CheckedPrecheck]>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", plan.title);
    let _ = writeln!(
        out,
        "  environment {}, cluster {} (scope {}), structure {}",
        plan.environment,
        plan.cluster,
        plan.scope,
        super::structure::fingerprint(plan)
    );
    // A summary's diff (a configuration edit) is what the operator confirms: shown here too.
    if let Some(diff) = fenced_diff(&plan.summary) {
        for line in diff.lines() {
            let _ = writeln!(out, "    {line}");
        }
    }
    if let Some(checked) = checked {
        let _ = writeln!(out, "Pre-checks:");
        for result in checked {
            let mark = if result.verdict.passed {
                "ok  "
            } else {
                "FAIL"
            };
            let _ = writeln!(
                out,
                "  [{mark}] {} ({})",
                result.text, result.verdict.observed
            );
        }
    }
    let _ = writeln!(out, "Steps:");
    for (index, step) in plan.steps.iter().enumerate() {
        let gate = match &step.gate {
            Gate::None => String::new(),
            Gate::Confirm { .. } => " [confirm]".into(),
            Gate::TypeToConfirm { expected, .. } => format!(" [type {expected}]"),
            Gate::ByHand { name, .. } => format!(" [by hand: --done {name}]"),
        };
        let parallel = parallel_peers(plan, index).map_or_else(String::new, |peers| {
            format!(" (runs in parallel with {peers})")
        });
        let _ = writeln!(out, "  {}. {}{gate}{parallel}", index + 1, step.title);
        text_action(&mut out, &step.action);
    }
    if !plan.compensations.is_empty() {
        let _ = writeln!(
            out,
            "If it stops here (aborted at a gate or refused by a check; a failed run is left for pgha resume), pgha undoes, the latest first:"
        );
        for compensation in &plan.compensations {
            let _ = writeln!(
                out,
                "  from {}: {}{}",
                numbered_step(plan, &compensation.after),
                compensation.step.title,
                if compensation.on_failure {
                    " (also if the run fails or is interrupted)"
                } else {
                    ""
                }
            );
            text_action(&mut out, &compensation.step.action);
        }
    }
    for window in &plan.windows {
        let _ = writeln!(out, "Bounded: {}.", bounded(plan, window));
    }
    // A plan names members as the DCS does, and quotes what checks observed.
    crate::ui::printable_lines(&out).into_owned()
}

/// The body of the summary's ```` ```diff ```` block, if it has one.
fn fenced_diff(summary: &str) -> Option<&str> {
    let start = summary.find("```diff\n")? + "```diff\n".len();
    let length = summary[start..].find("```")?;
    Some(&summary[start..start + length])
}

/// The lines under a step on the terminal: its exact call or command.
fn text_action(out: &mut String, action: &Action) {
    match action {
        Action::Patroni(action) => {
            let body = action.call.body();
            let body = if body.is_null() {
                String::new()
            } else {
                format!(" {body}")
            };
            let _ = writeln!(out, "       {}{body}", action.request_line());
        }
        Action::Sql(action) => {
            let _ = writeln!(
                out,
                "       SQL on {}: {}",
                action.host,
                action.statement.text()
            );
        }
        Action::Remote(action) => {
            let _ = writeln!(out, "       {}", action.describe());
        }
        Action::Silence(action) => {
            // The Markdown's code spans are noise on a terminal.
            let _ = writeln!(out, "       {}", describe_silence(action).replace('`', ""));
        }
        Action::Consul(consul) => match consul {
            ConsulAction::DeleteTree { keys, .. } => {
                text_tree_delete(out, &consul.request_line(), keys);
            }
            ConsulAction::SetConfig { .. } => {
                let _ = writeln!(out, "       {}", consul.request_line());
            }
        },
        Action::Etcd(etcd) => match etcd {
            EtcdAction::DeleteTree { keys, .. } => {
                text_tree_delete(out, &etcd.request_line(), keys);
            }
            EtcdAction::SetConfig { .. } => {
                let _ = writeln!(out, "       {}", etcd.request_line());
            }
        },
        Action::Manual(manual) => {
            for line in &manual.instructions {
                let _ = writeln!(out, "       by hand: {line}");
            }
        }
        Action::Tag(action) => {
            let _ = writeln!(out, "       ssh {}: set {}", action.host, action.describe());
        }
        Action::Wait(wait) => {
            let _ = writeln!(
                out,
                "       wait up to {}: {}",
                humantime::format_duration(wait.timeout),
                join(&wait.until)
            );
        }
    }
}

/// A DCS tree delete in Markdown: the request as an operator would type it, and every key.
fn markdown_tree_delete(out: &mut String, dcs: &str, request: &str, keys: &[String]) {
    let _ = writeln!(out, "- **{dcs}**: `{request}`");
    let _ = writeln!(
        out,
        "- **Keys deleted** ({} when planned):\n\n  ```\n{}  ```\n",
        keys.len(),
        keys.iter().fold(String::new(), |mut lines, key| {
            let _ = writeln!(lines, "  {key}");
            lines
        })
    );
}

/// A compare-and-set of the dynamic configuration in the DCS, for the change request.
fn markdown_config_write(out: &mut String, dcs: &str, request: &str) {
    let _ = writeln!(
        out,
        "- **{dcs}**: `{request}`: written only if nobody changed it since it was read (the difference is shown above)\n"
    );
}

/// A DCS tree delete on a terminal.
fn text_tree_delete(out: &mut String, request: &str, keys: &[String]) {
    let _ = writeln!(out, "       {request}");
    for key in keys {
        let _ = writeln!(out, "         {key}");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::observe::testing::view_led_by;
    use crate::plan::{Compensation, ParallelGroup, RemoteAction, Window};
    use crate::runbooks::{self, Params};

    fn command(program: &str) -> Step {
        Step {
            id: program.into(),
            title: format!("Run {program}"),
            action: Action::Remote(RemoteAction {
                member: "node1".into(),
                host: "127.0.0.31".into(),
                transport: crate::remote::Transport::Ssh,
                command: crate::remote::HostCommand::new(program),
                timeout: Duration::from_secs(10),
            }),
            gate: Gate::None,
            prechecks: Vec::new(),
            verify: None,
            idempotency: Idempotency::SafeToRepeat,
        }
    }

    /// `a`, then `b`–`d` at once, with `undo-a` armed by `a`.
    fn plan() -> Plan {
        let (target, view) = view_led_by("4.1.5", "node3", Some(1));
        let mut plan = runbooks::plan(
            &target,
            &view,
            &Params::Pause(crate::runbooks::pause::Params { wait: true }),
        )
        .unwrap();
        plan.steps = ["a", "b", "c", "d"].into_iter().map(command).collect();
        plan.parallel = vec![ParallelGroup {
            steps: vec!["b".into(), "c".into(), "d".into()],
        }];
        plan.compensations = vec![Compensation {
            after: "a".into(),
            step: command("undo-a"),
            on_failure: false,
        }];
        plan
    }

    #[test]
    fn steps_in_parallel_and_what_is_undone_are_shown() {
        let plan = plan();
        let text = text(&plan, None);
        for shown in [
            "  1. Run a\n",
            "  2. Run b (runs in parallel with steps 3–4)\n",
            "  3. Run c (runs in parallel with steps 2, 4)\n",
            "  4. Run d (runs in parallel with steps 2–3)\n",
            "If it stops here (aborted at a gate or refused by a check; a failed run is left for pgha resume), pgha undoes, the latest first:\n  from step 1 (Run a): Run undo-a\n       ssh 127.0.0.31: undo-a\n",
        ] {
            assert!(text.contains(shown), "{shown:?} in\n{text}");
        }
        let markdown = markdown(&plan, None);
        for shown in [
            "### 3. Run c\n\n- **Runs in parallel** with steps 2, 4 (the group's gates are answered first, in order; then its steps run at once)\n",
            "\n## If it stops here\n",
            "\n### From step 1 (Run a): Run undo-a\n\n- **Command** on node1 (`ssh 127.0.0.31`)",
        ] {
            assert!(markdown.contains(shown), "{shown:?} in\n{markdown}");
        }
        assert!(
            !markdown.contains("### 1. Run a\n\n- **Runs in parallel**"),
            "{markdown}"
        );
        let json = json(&plan, None);
        assert!(
            json.contains("\"parallel\"") && json.contains("\"compensations\""),
            "{json}"
        );
    }

    /// A window is shown by its steps' numbers and titles, its limit and what it bounds; JSON
    /// has it as it is.
    #[test]
    fn a_window_is_shown_with_its_steps_and_limit() {
        let mut plan = plan();
        plan.windows = vec![Window {
            from: "a".into(),
            to: "d".into(),
            limit: Duration::from_mins(5),
            what: "the cluster has been paused".into(),
        }];
        let line = "from step 1 (Run a) to step 4 (Run d), at most 5m (the cluster has been paused); past it the run stops (no step starts, a wait ends; a call or command under way ends on its own timeout) and undoes what is marked \"also if the run fails or is interrupted\".\n";
        let text = text(&plan, None);
        assert!(text.contains(&format!("\nBounded: {line}")), "{text}");
        let markdown = markdown(&plan, None);
        assert!(
            markdown.contains(&format!("\n## Time limits\n\n- **Bounded**: {line}")),
            "{markdown}"
        );
        let json = json(&plan, None);
        assert!(
            json.contains("\"windows\"") && json.contains("\"limit\": \"5m\""),
            "{json}"
        );
        let read: Plan = serde_json::from_str(&serde_json::to_string(&plan).unwrap()).unwrap();
        assert_eq!(read, plan);
    }

    /// Plans without groups, compensations or windows serialise, and so hash, as before they
    /// existed.
    #[test]
    fn a_plan_without_them_serialises_as_before() {
        let plan = Plan {
            parallel: Vec::new(),
            compensations: Vec::new(),
            windows: Vec::new(),
            members: Vec::new(),
            ..plan()
        };
        let value = serde_json::to_value(&plan).unwrap();
        assert!(value.get("parallel").is_none() && value.get("compensations").is_none());
        assert!(value.get("windows").is_none());
        assert!(!markdown(&plan, None).contains("If it stops here"));
        assert!(!markdown(&plan, None).contains("Bounded"));
        assert!(!text(&plan, None).contains("in parallel"));
        assert!(!text(&plan, None).contains("Bounded"));
        let read: Plan = serde_json::from_value(value).unwrap();
        assert_eq!(read, plan);
    }

    /// A group is consecutive steps; a step listed in it away from the others runs on its own.
    #[test]
    fn batches_are_single_steps_or_consecutive_groups() {
        let mut plan = plan();
        assert_eq!(plan.batches(), [0..1, 1..4]);
        plan.parallel = vec![ParallelGroup {
            steps: vec!["a".into(), "c".into(), "d".into()],
        }];
        assert_eq!(plan.batches(), [0..1, 1..2, 2..4]);
        plan.parallel.clear();
        assert_eq!(plan.batches(), [0..1, 1..2, 2..3, 3..4]);
    }
}

#[cfg(test)]
mod estimate_tests {
    use super::*;

    #[test]
    fn an_estimate_reads_as_each_step_its_spread_and_the_runs() {
        let estimate = Estimate {
            steps: vec![
                StepEstimate {
                    step: "wait-streaming-node2".into(),
                    seconds: Some(400.0),
                    range: Some((300.0, 500.0)),
                    runs: 3,
                    scaled: true,
                },
                StepEstimate {
                    step: "reinit-node2".into(),
                    seconds: None,
                    range: None,
                    runs: 0,
                    scaled: false,
                },
            ],
            total_seconds: 400.0,
            total_range: (300.0, 500.0),
            runs: 3,
        };
        assert_eq!(
            estimate_text(&estimate),
            "Estimate (from 3 earlier run(s)): about 6m 40s (5m to 8m 20s) for the steps measured before (1 of 2 never measured: the run takes longer)\n  wait-streaming-node2: 6m 40s (5m to 8m 20s), scaled to the size (3 run(s))\n  reinit-node2: unknown (0 run(s))\n"
        );
        let markdown = estimate_markdown(&estimate);
        assert!(
            markdown.contains("| reinit-node2 | unknown | 0 |"),
            "{markdown}"
        );
    }
}
