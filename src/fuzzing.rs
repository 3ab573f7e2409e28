//! Test-only strategies for the parsers' fuzz tests: arbitrary JSON shaped like what a server
//! sends (its own keys, any values), and real answers with one part replaced by anything. Each
//! parser of outside input — the inventory, Patroni's answers, Consul's and etcd's, the
//! journal — must turn every input into a value or an error, never a panic.

use proptest::prelude::*;
use serde_json::{Map, Value};

/// How many inputs each parser gets in CI.
pub(crate) const CASES: u32 = 10_000;

/// Any JSON value whose object keys are mostly `keys` (so the parser goes deep) and whose
/// leaves are anything: numbers at the edges, strings, nulls.
pub(crate) fn json_shaped(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(
            |number| serde_json::Number::from_f64(number).map_or(Value::Null, Value::Number)
        ),
        ".{0,12}".prop_map(Value::String),
        "[0-9A-F]{1,8}/[0-9A-F]{1,8}".prop_map(Value::String),
        "[a-z_]{1,12}".prop_map(Value::String),
    ];
    let key = prop_oneof![
        4 => proptest::sample::select(keys).prop_map(str::to_string),
        1 => "[a-z_]{1,10}",
    ];
    leaf.prop_recursive(4, 48, 8, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((key.clone(), inner), 0..10)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// `base` with one value somewhere in it replaced by `replacement` (or the whole of it).
pub(crate) fn replaced_somewhere(base: &Value, choice: usize, replacement: Value) -> Value {
    let mut value = base.clone();
    let mut slots = Vec::new();
    paths(&value, &mut Vec::new(), &mut slots);
    let path = &slots[choice % slots.len()];
    let mut at = &mut value;
    for step in path {
        at = match step {
            Step::Key(key) => &mut at[key.as_str()],
            Step::Index(index) => &mut at[*index],
        };
    }
    *at = replacement;
    value
}

enum Step {
    Key(String),
    Index(usize),
}

fn paths(value: &Value, here: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(
        here.iter()
            .map(|step| match step {
                Step::Key(key) => Step::Key(key.clone()),
                Step::Index(index) => Step::Index(*index),
            })
            .collect(),
    );
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                here.push(Step::Key(key.clone()));
                paths(child, here, out);
                here.pop();
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                here.push(Step::Index(index));
                paths(child, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}
