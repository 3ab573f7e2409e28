//! How long a plan's steps will take, from the journals of earlier runs and rehearsals of the
//! same runbook. A step is matched by its kind — its structure with every member named alike
//! (a reinit of node2 teaches about a reinit of node3) and the cluster's name left out, so a
//! rehearsal on a lab teaches about the real cluster. A step that copies data (a wait with the
//! bytes it expects: base backups, restores) is scaled to the new plan's size: a larger copy
//! takes proportionally longer than the median earlier one; a smaller one is held at the
//! measured time, which is mostly fixed cost (Patroni's loops, PostgreSQL's start).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use super::{Plan, structure};

/// At most this many journals are read (the newest): a dry-run stays fast on a busy run store.
const MAX_JOURNALS: usize = 500;

/// One step's estimate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepEstimate {
    pub step: String,
    /// `None`: no earlier run had a step of this kind.
    pub seconds: Option<f64>,
    /// The fastest and slowest earlier times (scaled like `seconds`): what one run may differ
    /// by, mostly Patroni's loop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range: Option<(f64, f64)>,
    /// Earlier runs it is based on.
    pub runs: usize,
    /// Scaled from the earlier runs' size to this plan's.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub scaled: bool,
}

/// The plan's estimate: each step's, and the sum of those known.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    pub steps: Vec<StepEstimate>,
    pub total_seconds: f64,
    /// The steps' fastest and slowest times added up.
    pub total_range: (f64, f64),
    /// Earlier runs of the runbook whose journals were read.
    pub runs: usize,
}

/// What one earlier run took for one kind of step.
#[derive(Debug, Clone, Copy)]
struct Sample {
    seconds: f64,
    bytes: Option<u64>,
}

/// The estimate of `plan` from the journals in `dir`; `None` when no earlier run of its runbook
/// finished a step.
pub fn from_journals(plan: &Plan, dir: &Path) -> Option<Estimate> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "jsonl"))
        .collect();
    // Run ids begin with their start time: the newest sort last.
    paths.sort();
    let newest = paths.len().saturating_sub(MAX_JOURNALS);
    let mut samples: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
    let mut runs = 0;
    for path in &paths[newest..] {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        if read_run(&plan.runbook, &text, &mut samples) {
            runs += 1;
        }
    }
    estimate(plan, &samples, runs)
}

fn estimate(plan: &Plan, samples: &BTreeMap<String, Vec<Sample>>, runs: usize) -> Option<Estimate> {
    let keys = step_kinds(plan);
    let steps: Vec<StepEstimate> = plan
        .steps
        .iter()
        .zip(&keys)
        .map(|(step, (key, bytes))| {
            let known = samples.get(key).map(Vec::as_slice).unwrap_or_default();
            let (seconds, scaled) = match scaled_median(known, *bytes) {
                Some((seconds, scaled)) => (Some(seconds), scaled),
                None => (None, false),
            };
            StepEstimate {
                step: step.id.clone(),
                range: seconds.and_then(|median| range(known, median)),
                seconds,
                runs: known.len(),
                scaled,
            }
        })
        .collect();
    if steps.iter().all(|step| step.seconds.is_none()) {
        return None;
    }
    let total_range = steps
        .iter()
        .filter_map(|step| step.range)
        .fold((0.0, 0.0), |(low, high), (fast, slow)| {
            (low + fast, high + slow)
        });
    Some(Estimate {
        total_seconds: steps.iter().filter_map(|step| step.seconds).sum(),
        total_range,
        steps,
        runs,
    })
}

/// The earlier times' spread around `median`, as scaled as the median is.
fn range(samples: &[Sample], median: f64) -> Option<(f64, f64)> {
    let times = samples.iter().map(|sample| sample.seconds);
    let fastest = times.clone().min_by(f64::total_cmp)?;
    let slowest = times.max_by(f64::total_cmp)?;
    let measured = self::median(samples.iter().map(|sample| sample.seconds))?;
    let factor = if measured > 0.0 {
        median / measured
    } else {
        1.0
    };
    Some((fastest * factor, slowest * factor))
}

/// The median earlier time, scaled up when this step copies more than the median earlier one.
// Byte counts far below 2^52: exact enough as f64.
#[allow(clippy::cast_precision_loss)]
fn scaled_median(samples: &[Sample], bytes: Option<u64>) -> Option<(f64, bool)> {
    let seconds = median(samples.iter().map(|sample| sample.seconds))?;
    let earlier_bytes = median(
        samples
            .iter()
            .filter_map(|sample| sample.bytes)
            .map(|bytes| bytes as f64),
    );
    match (bytes, earlier_bytes) {
        (Some(bytes), Some(earlier)) if earlier > 0.0 && bytes as f64 > earlier * 1.1 => {
            Some((seconds * bytes as f64 / earlier, true))
        }
        _ => Some((seconds, false)),
    }
}

fn median(values: impl Iterator<Item = f64>) -> Option<f64> {
    let mut values: Vec<f64> = values.collect();
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        f64::midpoint(values[middle - 1], values[middle])
    } else {
        values[middle]
    })
}

/// One journal: when it is a run of `runbook`, each step it finished, by kind. Whether it was.
fn read_run(runbook: &str, text: &str, samples: &mut BTreeMap<String, Vec<Sample>>) -> bool {
    let mut lines = text.lines();
    let Some(started) = lines
        .next()
        .and_then(|line| serde_json::from_str::<Value>(line).ok())
    else {
        return false;
    };
    if started["event"] != "run_started" || started["runbook"] != runbook {
        return false;
    }
    let Ok(plan) = serde_json::from_value::<Plan>(started["plan"].clone()) else {
        return false;
    };
    let kinds: BTreeMap<&str, (String, Option<u64>)> = plan
        .steps
        .iter()
        .map(|step| step.id.as_str())
        .zip(step_kinds(&plan))
        .collect();
    // A step its pgha died in finishes after the resume in no time: not what it takes.
    let mut unfinished: Vec<String> = Vec::new();
    let mut interrupted: Vec<String> = Vec::new();
    for event in lines.filter_map(|line| serde_json::from_str::<Value>(line).ok()) {
        let step = event["step"].as_str().unwrap_or_default().to_string();
        match event["event"].as_str() {
            Some("step_started") => unfinished.push(step.clone()),
            Some("run_resumed") => interrupted.append(&mut unfinished),
            Some("step_succeeded" | "step_failed" | "step_skipped") => {
                unfinished.retain(|other| *other != step);
            }
            _ => {}
        }
        let (Some("step_succeeded"), Some(ms)) =
            (event["event"].as_str(), event["duration_ms"].as_f64())
        else {
            continue;
        };
        if interrupted.contains(&step) {
            continue;
        }
        if let Some((kind, bytes)) = kinds.get(step.as_str()) {
            samples.entry(kind.clone()).or_default().push(Sample {
                seconds: ms / 1000.0,
                bytes: *bytes,
            });
        }
    }
    true
}

/// Each step's kind (its structure, every member by one name, hashed) and the bytes it
/// expects to copy, if any.
fn step_kinds(plan: &Plan) -> Vec<(String, Option<u64>)> {
    let mut alone = plan.clone();
    let document = serde_json::to_value(plan).unwrap_or_default();
    plan.steps
        .iter()
        .enumerate()
        .map(|(index, step)| {
            alone.steps = vec![step.clone()];
            let text = structure::structure(&alone)["steps"][0].to_string();
            let kind = super::sha256_hex(any_member(&text).as_bytes())[..16].to_string();
            (kind, expected_bytes(&document["steps"][index]))
        })
        .collect()
}

/// `text` with the structure's member places (`m1`, `m12`, … as whole words) all `m`.
fn any_member(text: &str) -> String {
    let bytes = text.as_bytes();
    let word = |at: usize| bytes.get(at).is_some_and(u8::is_ascii_alphanumeric);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while at < bytes.len() {
        let digits = bytes[at + 1..]
            .iter()
            .take_while(|byte| byte.is_ascii_digit())
            .count();
        let place =
            bytes[at] == b'm' && digits > 0 && (at == 0 || !word(at - 1)) && !word(at + 1 + digits);
        if place {
            out.push('m');
            at += 1 + digits;
        } else {
            let next = text[at..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&text[at..at + next]);
            at += next;
        }
    }
    out
}

/// The first `expected_bytes` in a step's JSON.
fn expected_bytes(value: &Value) -> Option<u64> {
    match value {
        Value::Object(map) => map
            .get("expected_bytes")
            .and_then(Value::as_u64)
            .or_else(|| map.values().find_map(expected_bytes)),
        Value::Array(items) => items.iter().find_map(expected_bytes),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::testing::view_led_by;
    use crate::runbooks::{self, Params};

    fn reinit(member: &str) -> Plan {
        let (target, view) = view_led_by("4.1.5", "node1", Some(1));
        let params = Params::Reinit(crate::runbooks::reinit::Params {
            member: member.into(),
            timeout: None,
            max_lag: 1 << 20,
        });
        runbooks::plan(&target, &view, &params).unwrap()
    }

    /// A journal of `plan` whose steps took `seconds` each.
    fn journal(dir: &Path, name: &str, plan: &Plan, seconds: &[f64]) {
        let mut lines = vec![
            serde_json::json!({"event": "run_started", "runbook": plan.runbook, "plan": plan})
                .to_string(),
        ];
        for (step, seconds) in plan.steps.iter().zip(seconds) {
            lines.push(
                serde_json::json!({"event": "step_succeeded", "step": step.id,
                                   "duration_ms": seconds * 1000.0})
                .to_string(),
            );
        }
        std::fs::write(dir.join(format!("{name}.jsonl")), lines.join("\n")).unwrap();
    }

    #[test]
    fn a_step_is_estimated_from_runs_on_other_members_and_clusters() {
        let dir = tempfile::tempdir().unwrap();
        let (node2, node3) = (reinit("node2"), reinit("node3"));
        let steps = node2.steps.len();
        journal(dir.path(), "a", &node2, &vec![2.0; steps]);
        journal(dir.path(), "b", &node3, &vec![4.0; steps]);
        journal(dir.path(), "c", &node3, &vec![3.0; steps]);
        // A run whose pgha died in its first step, resumed: that step is not learned from.
        let first = &node3.steps[0].id;
        std::fs::write(
            dir.path().join("e.jsonl"),
            [
                serde_json::json!({"event": "run_started", "runbook": "reinit", "plan": node3})
                    .to_string(),
                serde_json::json!({"event": "step_started", "step": first}).to_string(),
                serde_json::json!({"event": "run_resumed"}).to_string(),
                serde_json::json!({"event": "step_started", "step": first}).to_string(),
                serde_json::json!({"event": "step_succeeded", "step": first, "duration_ms": 1})
                    .to_string(),
            ]
            .join("\n"),
        )
        .unwrap();
        // Another runbook's journal and a file that is not one: not read as runs.
        std::fs::write(dir.path().join("d.jsonl"), "not json").unwrap();
        let estimate = from_journals(&reinit("node2"), dir.path()).unwrap();
        assert_eq!(estimate.runs, 4);
        assert!(
            estimate.steps.iter().all(|step| step.runs == 3),
            "{estimate:?}"
        );
        assert!(
            estimate
                .steps
                .iter()
                .all(|step| step.seconds == Some(3.0) && step.range == Some((2.0, 4.0))),
            "the median and the spread: {estimate:?}"
        );
        #[allow(clippy::cast_precision_loss)]
        let total = 3.0 * steps as f64;
        assert!((estimate.total_seconds - total).abs() < 1e-9);
        assert!(from_journals(&reinit("node2"), Path::new("/nonexistent")).is_none());
    }

    #[test]
    fn a_larger_copy_is_scaled_and_a_smaller_one_held_at_the_measured_time() {
        let samples = [
            Sample {
                seconds: 10.0,
                bytes: Some(100),
            },
            Sample {
                seconds: 30.0,
                bytes: Some(100),
            },
        ];
        assert_eq!(scaled_median(&samples, Some(400)), Some((80.0, true)));
        assert_eq!(scaled_median(&samples, Some(10)), Some((20.0, false)));
        assert_eq!(scaled_median(&samples, None), Some((20.0, false)));
        assert_eq!(scaled_median(&[], Some(10)), None);
        assert_eq!(
            range(&samples, 80.0),
            Some((40.0, 120.0)),
            "scaled as the median"
        );
    }

    #[test]
    fn member_places_are_one_name_as_whole_words_only() {
        assert_eq!(
            any_member(r#"{"id":"wait-m2","x":"m10 mm2 am3 m4b m"}"#),
            r#"{"id":"wait-m","x":"m mm2 am3 m4b m"}"#
        );
    }
}
