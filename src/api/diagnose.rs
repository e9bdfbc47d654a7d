//! Naming the field behind a request body the framework could not parse. poem-openapi says
//! only which type failed ("failed to parse integer(uint32) ... StreamSettings"); this walks
//! the body against the operation's schema in the finished OpenAPI document and names the
//! first field that breaks a rule, and the rule: `window: -5 is below the minimum 1`,
//! `name: expected a string, found a boolean`, `plan: a required field is missing`.

use std::sync::OnceLock;

use serde_json::Value;

use super::models::json_kind as kind;

/// The finished document, parsed once.
fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| serde_json::from_str(&super::openapi_json()).unwrap_or_default())
}

/// (field path, what is wrong) for the first rule `body` breaks in the JSON request body of
/// `operation_id`; None when the operation is unknown or nothing is found.
pub fn body_violation(operation_id: &str, body: &[u8]) -> Option<(String, String)> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let spec = spec();
    let schema = spec["paths"]
        .as_object()?
        .values()
        .flat_map(|item| item.as_object().into_iter().flatten())
        .map(|(_, op)| op)
        .find(|op| op["operationId"] == operation_id)?
        .pointer("/requestBody/content")?
        .as_object()?
        .iter()
        .find(|(media, _)| media.starts_with("application/json"))?
        .1
        .get("schema")?;
    violation(spec, schema, &value, "")
}

/// The operation the spec declares for `method` on a concrete `path`
/// (`/v1/streams/web/events` -> `ingestStreamEvents`); the most literal template wins.
pub fn operation_for(method: &str, path: &str) -> Option<&'static str> {
    let method = method.to_ascii_lowercase();
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let mut best: Option<(usize, &'static str)> = None;
    for (template, item) in spec()["paths"].as_object()? {
        let parts: Vec<&str> = template.trim_end_matches('/').split('/').collect();
        if parts.len() != segments.len() {
            continue;
        }
        let mut literal = 0;
        let fits = parts.iter().zip(&segments).all(|(t, s)| {
            if t.starts_with('{') && t.ends_with('}') {
                !s.is_empty()
            } else {
                literal += 1;
                t == s
            }
        });
        let op = item[method.as_str()]["operationId"].as_str();
        if let (true, Some(op)) = (fits, op) {
            if best.is_none_or(|(n, _)| literal > n) {
                best = Some((literal, op));
            }
        }
    }
    best.map(|(_, op)| op)
}

/// Whether a JSON body may hold a `null` the framework would read as an absent field (a
/// cheap test before [`body_violation`], which then says where).
pub fn may_hold_null(body: &[u8]) -> bool {
    body.windows(4).any(|w| w == b"null")
}

fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => r
            .strip_prefix('#')
            .and_then(|p| spec.pointer(p))
            .unwrap_or(schema),
        None => schema,
    }
}

fn field(path: &str) -> String {
    if path.is_empty() {
        "body".into()
    } else {
        path.to_string()
    }
}

fn violation(spec: &Value, schema: &Value, value: &Value, path: &str) -> Option<(String, String)> {
    let schema = resolve(spec, schema);
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        return all.iter().find_map(|s| violation(spec, s, value, path));
    }
    if schema.get("oneOf").is_some() || schema.get("anyOf").is_some() {
        return None;
    }
    if value.is_null() {
        return (schema.get("nullable") != Some(&Value::Bool(true))
            && schema.get("type").is_some())
        .then(|| {
            (
                field(path),
                "null is not allowed here; leave the field out instead".into(),
            )
        });
    }
    let wrong = |want: &str| {
        Some((
            field(path),
            format!("expected {want}, found {}", kind(value)),
        ))
    };
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let Some(obj) = value.as_object() else {
                return wrong("an object");
            };
            // Fields that are there and wrong first, then fields that are missing.
            let props = schema.get("properties").and_then(Value::as_object);
            let closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
            let wrong_field = obj.iter().find_map(|(k, v)| {
                let Some(sub) = props.and_then(|p| p.get(k)) else {
                    return closed.then(|| (join(path, k), "is not a known field".to_string()));
                };
                violation(spec, sub, v, &join(path, k))
            });
            wrong_field.or_else(|| {
                schema["required"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .find(|name| !obj.contains_key(*name))
                    .map(|name| (join(path, name), "a required field is missing".into()))
            })
        }
        Some("array") => {
            let Some(items) = value.as_array() else {
                return wrong("an array");
            };
            let item = schema.get("items")?;
            items
                .iter()
                .enumerate()
                .find_map(|(i, v)| violation(spec, item, v, &format!("{}[{i}]", field(path))))
        }
        Some("string") => {
            let Some(s) = value.as_str() else {
                return wrong("a string");
            };
            if let Some(rule) = string_rule(schema, s) {
                return Some((field(path), rule));
            }
            if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
                if !allowed.iter().any(|a| a == value) {
                    let list: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
                    return Some((
                        field(path),
                        format!("{s:?} is not one of {}", list.join(", ")),
                    ));
                }
            }
            None
        }
        Some("boolean") => (!value.is_boolean()).then(|| wrong("a boolean")).flatten(),
        Some(t @ ("integer" | "number")) => {
            let Some(n) = value.as_f64() else {
                return wrong(if t == "integer" {
                    "an integer"
                } else {
                    "a number"
                });
            };
            if t == "integer" && !(value.is_i64() || value.is_u64()) {
                if n.fract() != 0.0 {
                    return wrong("an integer");
                }
                // A whole number past 64 bits.
                let side = if n > 0.0 {
                    "above the largest"
                } else {
                    "below the smallest"
                };
                return Some((
                    field(path),
                    format!("{value} is {side} integer this field holds"),
                ));
            }
            let unsigned = schema["format"]
                .as_str()
                .is_some_and(|f| f.starts_with("uint"));
            let minimum = schema["minimum"].as_f64().or(unsigned.then_some(0.0));
            if let Some(min) = minimum.filter(|&m| n < m) {
                return Some((field(path), format!("{value} is below the minimum {min}")));
            }
            if let Some(max) = schema["maximum"].as_f64().filter(|&m| n > m) {
                return Some((field(path), format!("{value} is above the maximum {max}")));
            }
            let bits = match schema["format"].as_str() {
                Some("uint32") => Some(u32::MAX as f64),
                Some("int32") => Some(i32::MAX as f64),
                _ => None,
            };
            bits.filter(|&m| n > m)
                .map(|m| (field(path), format!("{value} is above the maximum {m}")))
        }
        _ => None,
    }
}

/// The length or pattern rule `s` breaks, if any (lengths in characters, as JSON Schema
/// counts them).
fn string_rule(schema: &Value, s: &str) -> Option<String> {
    let chars = s.chars().count() as u64;
    if let Some(min) = schema["minLength"].as_u64().filter(|&m| chars < m) {
        return Some(if min == 1 {
            "must not be empty".into()
        } else {
            format!("must be at least {min} characters")
        });
    }
    if let Some(max) = schema["maxLength"].as_u64().filter(|&m| chars > m) {
        return Some(format!("must be at most {max} characters"));
    }
    let pattern = schema["pattern"].as_str()?;
    let matches = regex::Regex::new(pattern).map(|re| re.is_match(s));
    (matches == Ok(false)).then(|| format!("{s:?} does not match the pattern {pattern}"))
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_and_the_rule_are_named() {
        let v = |op: &str, body: &str| body_violation(op, body.as_bytes());
        assert_eq!(
            v("putStream", r#"{"window": -5}"#),
            Some(("window".into(), "-5 is below the minimum 1".into()))
        );
        assert_eq!(
            v("createOrganization", r#"{"name": false}"#),
            Some(("name".into(), "expected a string, found a boolean".into()))
        );
        assert_eq!(
            v("createOrganization", r#"{"billing_email": "a@b.c"}"#),
            Some(("name".into(), "a required field is missing".into()))
        );
        assert_eq!(v("createOrganization", r#"{"name": "Acme"}"#), None);
        assert_eq!(
            v(
                "createMonitor",
                r#"{"name": "m", "detector": {"windw": 5}}"#
            ),
            Some(("detector.windw".into(), "is not a known field".into()))
        );
        assert_eq!(
            v(
                "createMonitor",
                r#"{"name": "m", "detector": {"sensitivity": {}}}"#
            ),
            Some((
                "detector.sensitivity".into(),
                "expected a number, found an object".into()
            ))
        );
        assert_eq!(
            v(
                "createOrganization",
                r#"{"name": "Acme", "billing_email": null}"#
            ),
            Some((
                "billing_email".into(),
                "null is not allowed here; leave the field out instead".into()
            ))
        );
        assert_eq!(v("noSuchOperation", "{}"), None);
    }
}
