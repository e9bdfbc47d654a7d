//! What a deliberate replay must repeat. A stream or monitor replay answers the stored first
//! answer, so it must be the same JSON; a meter-usage replay says `replayed: true` and repeats
//! the count (its usage figures may be newer). Stored answers come back through serde_json
//! without `float_roundtrip`, which may move a float by a unit in the last place, so floats
//! within a relative 1e-12 are told apart from real differences rather than hidden.

use std::collections::BTreeSet;

use serde_json::Value;

/// Floats this close (relative) count as equal but for their last digits.
const FLOAT_SLACK: f64 = 1e-12;

pub enum Sameness {
    Same,
    /// Equal except for floats within `FLOAT_SLACK`.
    LastDigits,
    /// Where they differ, with both values.
    Different(String),
}

pub fn same_body(first: &Value, replay: &Value) -> Sameness {
    if first_difference(first, replay, "", false).is_none() {
        return Sameness::Same;
    }
    match first_difference(first, replay, "", true) {
        None => Sameness::LastDigits,
        Some(at) => Sameness::Different(format!("the replay answered differently at {at}")),
    }
}

pub fn same_metering(first: &Value, replay: &Value) -> Sameness {
    if replay["replayed"] == true && replay["counted"] == first["counted"] {
        Sameness::Same
    } else {
        Sameness::Different(format!(
            "replay answered replayed={} counted={} after counted={}",
            replay["replayed"], replay["counted"], first["counted"]
        ))
    }
}

/// The JSON path where `a` and `b` first differ, with both values; floats within
/// `FLOAT_SLACK` are equal when `slack` is set.
fn first_difference(a: &Value, b: &Value, path: &str, slack: bool) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<_> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                (Some(va), Some(vb)) => first_difference(va, vb, &format!("{path}.{k}"), slack),
                (va, vb) => Some(format!("{path}.{k}: {va:?} vs {vb:?}")),
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (va, vb))| first_difference(va, vb, &format!("{path}[{i}]"), slack)),
        (Value::Number(x), Value::Number(y)) if slack => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) if (x - y).abs() <= FLOAT_SLACK * x.abs().max(y.abs()) => None,
            _ => Some(format!("{path}: {a} vs {b}")),
        },
        _ if a == b => None,
        _ => Some(format!("{path}: {a} vs {b}")),
    }
}
