//! Turns one JSON event into the fields a person would read (issue 21).
//!
//! Owns [`flatten`]: nested objects become dotted paths (`a.b`), arrays their first few
//! elements (`a[0]`) plus a length field (`a.len`), scalars a [`Leaf`] of one kind. Also owns
//! the canonical JSON writer (keys sorted, no whitespace) and the template miner's masking
//! (Drain's preprocessing: a token holding a digit, or a long run, becomes `<*>`). Bounded:
//! at most [`MAX_LEAVES`] leaves per event and [`MAX_NAME`] bytes per path; it allocates only
//! the leaf list it returns and never panics.

use serde_json::Value;

/// Leaves read from one event; further ones are counted, not modelled.
pub(crate) const MAX_LEAVES: usize = 48;
/// Longest field path kept (longer paths are cut on a character boundary).
pub(crate) const MAX_NAME: usize = 48;
const MAX_DEPTH: usize = 128;
const ARRAY_ELEMENTS: usize = 4;

/// A scalar of an event, by kind.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Leaf<'a> {
    Number(f64),
    Text(&'a str),
    Bool(bool),
    Null,
}

/// Flattens `v` into `(path, leaf)` pairs in key order; returns how many leaves were dropped.
pub(crate) fn flatten<'a>(v: &'a Value, out: &mut Vec<(String, Leaf<'a>)>) -> usize {
    let mut dropped = 0;
    let mut path = String::new();
    walk(v, &mut path, out, &mut dropped, 0);
    dropped
}

fn push<'a>(path: &str, leaf: Leaf<'a>, out: &mut Vec<(String, Leaf<'a>)>, dropped: &mut usize) {
    if out.len() >= MAX_LEAVES {
        *dropped += 1;
        return;
    }
    let name = if path.is_empty() { "(value)" } else { path };
    let mut end = name.len().min(MAX_NAME);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    out.push((name[..end].to_string(), leaf));
}

fn walk<'a>(
    v: &'a Value,
    path: &mut String,
    out: &mut Vec<(String, Leaf<'a>)>,
    dropped: &mut usize,
    depth: usize,
) {
    if depth > MAX_DEPTH || out.len() >= MAX_LEAVES {
        *dropped += 1;
        return;
    }
    match v {
        Value::Null => push(path, Leaf::Null, out, dropped),
        Value::Bool(b) => push(path, Leaf::Bool(*b), out, dropped),
        Value::Number(n) => push(
            path,
            n.as_f64()
                .filter(|x| x.is_finite())
                .map_or(Leaf::Null, Leaf::Number),
            out,
            dropped,
        ),
        Value::String(s) => push(path, Leaf::Text(s), out, dropped),
        Value::Array(a) => {
            let len = path.len();
            path.push_str(".len");
            push(path, Leaf::Number(a.len() as f64), out, dropped);
            path.truncate(len);
            for (i, x) in a.iter().take(ARRAY_ELEMENTS).enumerate() {
                path.push_str(&format!("[{i}]"));
                walk(x, path, out, dropped, depth + 1);
                path.truncate(len);
            }
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            if !keys.windows(2).all(|w| w[0] <= w[1]) {
                keys.sort();
            }
            for k in keys {
                let len = path.len();
                if len > 0 {
                    path.push('.');
                }
                path.push_str(k);
                walk(&m[k.as_str()], path, out, dropped, depth + 1);
                path.truncate(len);
            }
        }
    }
}

/// The template of a text value: tokens split at whitespace and URL punctuation, a token
/// holding a digit (or longer than 32 bytes) masked as `<*>`, runs of one repeated character
/// written once with their length, so `id=42 user=7` and `id=43 user=9` share a template.
/// Cut at `max` bytes. Returns the template and its 64-bit FNV-1a hash (over the whole
/// template, before the cut).
pub(crate) fn template(text: &str, max: usize) -> (String, u64) {
    let mut out = String::with_capacity(text.len().min(max) + 8);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |s: &str, out: &mut String| {
        for &b in s.as_bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        if out.len() < max {
            out.push_str(s);
        }
    };
    let is_sep = |c: char| c.is_whitespace() || "/?&=:,;()[]{}\"'".contains(c);
    let mut token_start: Option<usize> = None;
    let flush = |tok: &str, eat: &mut dyn FnMut(&str, &mut String), out: &mut String| {
        let first = tok.chars().next().unwrap_or(' ');
        let run = tok.chars().all(|c| c == first);
        if tok.len() > 32 && !run || tok.bytes().any(|b| b.is_ascii_digit()) {
            eat("<*>", out);
        } else if tok.len() > 3 && run {
            eat(&format!("{first}×{}", tok.chars().count()), out);
        } else {
            eat(tok, out);
        }
    };
    for (i, c) in text.char_indices() {
        if is_sep(c) {
            if let Some(s) = token_start.take() {
                flush(&text[s..i], &mut eat, &mut out);
            }
            let mut b = [0u8; 4];
            eat(c.encode_utf8(&mut b), &mut out);
        } else if token_start.is_none() {
            token_start = Some(i);
        }
    }
    if let Some(s) = token_start {
        flush(&text[s..], &mut eat, &mut out);
    }
    if out.len() > max {
        let mut end = max;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    (out, h)
}

/// 64-bit FNV-1a of a field's index and a value's bytes (value identity in the tables).
pub(crate) fn value_hash(kind: u8, bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ kind as u64;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Canonical JSON: keys sorted, no whitespace, numbers and strings as serde_json writes them.
pub(crate) fn write_canonical(v: &Value, out: &mut Vec<u8>, depth: usize) {
    if depth > MAX_DEPTH {
        out.extend_from_slice(b"\"...\"");
        return;
    }
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            let _ = serde_json::to_writer(&mut *out, n);
        }
        Value::String(s) => {
            let _ = serde_json::to_writer(&mut *out, s);
        }
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(x, out, depth + 1);
            }
            out.push(b']');
        }
        Value::Object(m) => {
            out.push(b'{');
            let sorted = m.keys().zip(m.keys().skip(1)).all(|(a, b)| a <= b);
            let write = |i: usize, k: &String, x: &Value, out: &mut Vec<u8>| {
                if i > 0 {
                    out.push(b',');
                }
                let _ = serde_json::to_writer(&mut *out, k);
                out.push(b':');
                write_canonical(x, out, depth + 1);
            };
            if sorted {
                for (i, (k, x)) in m.iter().enumerate() {
                    write(i, k, x, out);
                }
            } else {
                // Only maps that keep insertion order get here; sorting them allocates.
                let mut entries: Vec<(&String, &Value)> = m.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                for (i, (k, x)) in entries.into_iter().enumerate() {
                    write(i, k, x, out);
                }
            }
            out.push(b'}');
        }
    }
}

/// The fields of an event as the stream detector reads them (paths and scalar values, in key
/// order, at most [`MAX_LEAVES`]), for rules made from its findings (`core::rules`).
pub fn event_fields(v: &Value) -> Vec<(String, Value)> {
    let mut leaves = Vec::new();
    flatten(v, &mut leaves);
    leaves
        .into_iter()
        .map(|(path, leaf)| {
            let value = match leaf {
                Leaf::Number(x) => {
                    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
                }
                Leaf::Text(s) => Value::String(s.to_string()),
                Leaf::Bool(b) => Value::Bool(b),
                Leaf::Null => Value::Null,
            };
            (path, value)
        })
        .collect()
}

/// The message template of a text value, as the detector's template findings name it.
pub fn text_template(text: &str) -> String {
    template(text, super::TEMPLATE_TEXT).0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_form_sorts_keys_and_drops_whitespace() {
        let v: Value =
            serde_json::from_str(r#"{ "b": [1, 2.5, "x"], "a": {"d": null, "c": true} }"#).unwrap();
        let mut out = Vec::new();
        write_canonical(&v, &mut out, 0);
        assert_eq!(out, br#"{"a":{"c":true,"d":null},"b":[1,2.5,"x"]}"#);
    }

    #[test]
    fn nested_events_flatten_to_dotted_paths() {
        let v = json!({"b": {"y": 2, "x": "s"}, "a": [1, true], "c": null});
        let mut out = Vec::new();
        assert_eq!(flatten(&v, &mut out), 0);
        let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a.len", "a[0]", "a[1]", "b.x", "b.y", "c"]);
        assert_eq!(out[4].1, Leaf::Number(2.0));
        let three = json!(3);
        let mut out = Vec::new();
        assert_eq!(flatten(&three, &mut out), 0);
        assert_eq!(out[0].0, "(value)");
    }

    #[test]
    fn templates_mask_variable_tokens_and_runs() {
        let (a, ha) = template("user 42 logged in from 10.0.0.7", 64);
        let (_, hb) = template("user 43 logged in from 10.0.0.9", 64);
        assert_eq!(a, "user <*> logged in from <*>");
        assert_eq!(ha, hb);
        assert_eq!(
            template("/admin/export?all=1", 64).0,
            "/admin/export?all=<*>"
        );
        assert_eq!(template(&"x".repeat(300), 64).0, "x×300");
        assert_eq!(
            template("fan 1 speed 3333 rpm", 64).0,
            "fan <*> speed <*> rpm"
        );
        let (c, hc) = template("user 42 logged out", 64);
        assert_ne!(ha, hc);
        assert_eq!(c, "user <*> logged out");
    }
}
