//! Gates: who may say yes to a step. `--yes` answers `Confirm` gates only; a destructive
//! `TypeToConfirm` gate needs the name typed at the terminal, or `--confirm NAME` with the very
//! name (repeated for a plan whose gates ask for several: each gate checks its own); a `ByHand` step (work only a human does) is confirmed at the terminal or named with
//! `--done NAME` — `--yes` never answers it. Without a terminal and without what the plan's
//! gates need, the runner refuses before anything starts, saying which flag is missing (see
//! `GatePolicy::refusal`). Prompts run on a blocking thread raced against Ctrl-C.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::watch;

use crate::plan::{Gate, Plan};
use crate::ui::printable;

/// Asks the operator. Blocking; called from a blocking thread.
pub trait Prompt: Send + Sync {
    fn confirm(&self, question: &str) -> std::io::Result<bool>;
    /// Returns what the operator typed.
    fn type_to_confirm(&self, question: &str, expected: &str) -> std::io::Result<String>;
}

/// Prompts on the terminal (stderr), with dialoguer.
pub struct TerminalPrompt;

// Questions name members as the DCS does: only printable text reaches the prompt.
impl Prompt for TerminalPrompt {
    fn confirm(&self, question: &str) -> std::io::Result<bool> {
        dialoguer::Confirm::new()
            .with_prompt(printable(question))
            .default(false)
            .interact_on(&dialoguer::console::Term::stderr())
            .map_err(|dialoguer::Error::IO(error)| error)
    }

    fn type_to_confirm(&self, question: &str, expected: &str) -> std::io::Result<String> {
        dialoguer::Input::<String>::new()
            .with_prompt(format!(
                "{}\nType {} to proceed (anything else cancels)",
                printable(question),
                printable(expected)
            ))
            .allow_empty(true)
            .interact_text_on(&dialoguer::console::Term::stderr())
            .map_err(|dialoguer::Error::IO(error)| error)
    }
}

/// What the operator allowed on the command line, and whether anyone can be asked.
#[derive(Debug, Clone, Default)]
pub struct GatePolicy {
    pub assume_yes: bool,
    /// The names given with `--confirm`: each destructive gate passes with its own among them.
    pub confirm: Vec<String>,
    /// By-hand steps the operator says are done (`--done NAME`).
    pub done: Vec<String>,
    pub interactive: bool,
    /// Who answers at the terminal, for the journal.
    pub operator: String,
}

impl GatePolicy {
    /// Why the plan cannot run unattended as asked, checked before anything starts.
    pub fn refusal(&self, plan: &Plan) -> Option<String> {
        self.refusal_on_resume(plan, &BTreeSet::new())
    }

    /// The same for a resumed run, whose `finished` steps ask for nothing more.
    pub fn refusal_on_resume(&self, plan: &Plan, finished: &BTreeSet<String>) -> Option<String> {
        if !self.interactive && !self.assume_yes {
            return Some("no terminal to ask for confirmation: pass --yes to confirm the steps (and --confirm NAME for destructive ones), or run from a terminal".into());
        }
        if let Some(reason) = self.confirm_refusal(&plan.typed_confirmations()) {
            return Some(reason);
        }
        self.by_hand_refusal(plan, finished)
    }

    /// A `--confirm` that no destructive gate asks for, or (unattended) a gate's name not given.
    fn confirm_refusal(&self, expected: &[&str]) -> Option<String> {
        if let Some(given) = self
            .confirm
            .iter()
            .find(|given| !expected.contains(&given.as_str()))
        {
            return Some(if expected.is_empty() {
                format!("--confirm {given}: this plan has no destructive step to confirm")
            } else {
                format!(
                    "--confirm {given} does not match what the destructive steps ask for ({})",
                    expected.join(", ")
                )
            });
        }
        if self.interactive {
            return None;
        }
        let mut missing: Vec<&str> = Vec::new();
        for name in expected {
            if !self.confirms(name) && !missing.contains(name) {
                missing.push(name);
            }
        }
        let flags: Vec<String> = missing
            .iter()
            .map(|name| format!("--confirm {name}"))
            .collect();
        match flags.len() {
            0 => None,
            1 => Some(format!(
                "a destructive step must be confirmed by name: type it at a terminal or pass {} (--yes is not enough)",
                flags[0]
            )),
            _ => Some(format!(
                "destructive steps must be confirmed by name, each its own: type them at a terminal or pass {} (--yes is not enough)",
                flags.join(" ")
            )),
        }
    }

    /// True when `--confirm` gave this very name.
    fn confirms(&self, name: &str) -> bool {
        self.confirm.iter().any(|given| given == name)
    }

    /// `--done` names no step of the plan, or a by-hand step still to come that nobody can
    /// confirm.
    fn by_hand_refusal(&self, plan: &Plan, finished: &BTreeSet<String>) -> Option<String> {
        let by_hand = plan.by_hand();
        if let Some(unknown) = self
            .done
            .iter()
            .find(|done| !by_hand.iter().any(|(name, _)| name == done))
        {
            let known: Vec<&str> = by_hand.iter().map(|(name, _)| *name).collect();
            return Some(if known.is_empty() {
                format!("--done {unknown}: this plan has no step done by hand")
            } else {
                format!(
                    "--done {unknown}: this plan's steps done by hand are {}",
                    known.join(", ")
                )
            });
        }
        if self.interactive {
            return None;
        }
        let (name, skip_flag) = plan
            .steps
            .iter()
            .filter(|step| !finished.contains(&step.id))
            .find_map(|step| match &step.gate {
                Gate::ByHand {
                    name, skip_flag, ..
                } if !self.done.iter().any(|done| done == name) => {
                    Some((name.as_str(), skip_flag.as_deref()))
                }
                _ => None,
            })?;
        let skip =
            skip_flag.map_or_else(String::new, |flag| format!(", or leave it out with {flag}"));
        Some(format!(
            "the step `{name}` is done by hand and --yes does not answer it: do it, then pass --done {name}{skip}; or run from a terminal"
        ))
    }
}

pub(super) enum Answer {
    NotNeeded,
    Given { yes: bool, by: String },
    Interrupted,
    Refused(String),
}

pub(super) async fn answer(
    gate: &Gate,
    policy: &GatePolicy,
    prompt: &Arc<dyn Prompt>,
    interrupt: &mut watch::Receiver<bool>,
) -> Answer {
    match gate {
        Gate::None => Answer::NotNeeded,
        Gate::Confirm { question } => {
            if policy.assume_yes {
                return Answer::Given {
                    yes: true,
                    by: "--yes".into(),
                };
            }
            if !policy.interactive {
                return Answer::Refused(
                    "a confirmation is needed and there is no terminal (pass --yes)".into(),
                );
            }
            confirm(prompt, question, interrupt, &policy.operator).await
        }
        Gate::ByHand { question, name, .. } => {
            if policy.done.iter().any(|done| done == name) {
                return Answer::Given {
                    yes: true,
                    by: format!("--done {name} by {}", policy.operator),
                };
            }
            if !policy.interactive {
                return Answer::Refused(format!(
                    "the step `{name}` is done by hand: pass --done {name} once it is done, or run from a terminal"
                ));
            }
            // Asked even under --yes: only a human knows the work was done.
            confirm(prompt, question, interrupt, &policy.operator).await
        }
        Gate::TypeToConfirm { question, expected } => {
            if policy.confirms(expected) {
                return Answer::Given {
                    yes: true,
                    by: format!("--confirm {expected}"),
                };
            }
            if !policy.interactive {
                return Answer::Refused(format!(
                    "destructive step: pass --confirm {expected} or run from a terminal"
                ));
            }
            let (prompt, question, wanted) =
                (Arc::clone(prompt), question.clone(), expected.clone());
            let expected = expected.clone();
            ask(
                interrupt,
                move || prompt.type_to_confirm(&question, &wanted),
                move |typed: String| typed.trim() == expected,
                &policy.operator,
            )
            .await
        }
    }
}

/// y/N at the terminal.
async fn confirm(
    prompt: &Arc<dyn Prompt>,
    question: &str,
    interrupt: &mut watch::Receiver<bool>,
    operator: &str,
) -> Answer {
    let (prompt, question) = (Arc::clone(prompt), question.to_string());
    ask(
        interrupt,
        move || prompt.confirm(&question),
        |yes| yes,
        operator,
    )
    .await
}

async fn ask<T: Send + 'static>(
    interrupt: &mut watch::Receiver<bool>,
    question: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    accepted: impl FnOnce(T) -> bool,
    operator: &str,
) -> Answer {
    let answer = tokio::task::spawn_blocking(question);
    tokio::select! {
        result = answer => match result {
            Ok(Ok(value)) => Answer::Given { yes: accepted(value), by: format!("{operator} at the terminal") },
            // Ctrl-C in the prompt's raw mode, or the terminal went away: no is the answer.
            Ok(Err(error)) if error.kind() == std::io::ErrorKind::Interrupted => Answer::Interrupted,
            Ok(Err(error)) => Answer::Refused(format!("cannot ask at the terminal: {error}")),
            Err(_) => Answer::Interrupted,
        },
        _ = interrupt.wait_for(|interrupted| *interrupted) => Answer::Interrupted,
    }
}
