//! What the generated OpenAPI document cannot say by itself, added to it in one place: the
//! headers every answer carries (`X-Request-Id`), `Retry-After` on the answers that may carry
//! it (429, 503), and the admin web UI's session (the `driftlock_session` cookie with its
//! `X-CSRF-Token`) as a way to call every admin operation and the session routes; links and
//! generator-friendly enum references come from [`super::spec_links`]. The served
//! `/openapi.json` and `driftlock openapi` are both this finished document.

use serde_json::{json, Map, Value};

/// The finished document, from the one poem-openapi generates.
pub fn finish(generated: &str) -> String {
    let Ok(mut spec) = serde_json::from_str::<Value>(generated) else {
        return generated.to_string();
    };
    add_session_security(&mut spec);
    super::spec_links::plain_enum_refs(&mut spec);
    super::spec_links::add_links(&mut spec);
    unsigned_bounds(&mut spec);
    // poem-openapi cannot say "no other fields"; the detector refuses unknown settings.
    if let Some(detector) = spec.pointer_mut("/components/schemas/DetectorSettings") {
        detector["additionalProperties"] = Value::Bool(false);
    }
    if let Some(paths) = spec.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, operation) in item.iter_mut() {
                finish_operation(path, method, operation);
            }
        }
    }
    serde_json::to_string_pretty(&spec).unwrap_or_else(|_| generated.to_string())
}

fn finish_operation(path: &str, method: &str, operation: &mut Value) {
    let session = json!({"AdminSession": [], "AdminCsrf": []});
    if let Some(security) = operation.get_mut("security").and_then(Value::as_array_mut) {
        let admin = security.iter().any(|s| s.get("AdminAuth").is_some());
        if admin && !security.contains(&session) {
            security.push(session.clone());
        }
    } else if path == "/v1/admin/session" && method != "post" {
        operation["security"] = json!([session]);
    }
    for param in operation
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if param["in"] == "query" && param["name"] == "cursor" {
            param["description"] = json!(
                "The `next_cursor` of the previous page, an opaque token; a value this server did not give out is refused with 400 `bad_request`."
            );
        }
    }
    let Some(responses) = operation
        .get_mut("responses")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (status, response) in responses.iter_mut() {
        let Some(response) = response.as_object_mut() else {
            continue;
        };
        let headers = response
            .entry("headers")
            .or_insert_with(|| Value::Object(Map::new()));
        let Some(headers) = headers.as_object_mut() else {
            continue;
        };
        // The generator writes header names in capitals (`SET-COOKIE`); the server sends and
        // the spec now names them the usual way (`Set-Cookie`).
        let named: Map<String, Value> = std::mem::take(headers)
            .into_iter()
            .map(|(name, header)| (canonical_header(&name), header))
            .collect();
        *headers = named;
        if let Some(stream) = response
            .get_mut("content")
            .and_then(|c| c.get_mut("text/event-stream"))
        {
            stream["schema"] = server_sent_event_schema(stream.get("schema"));
        }
        let Some(headers) = response.get_mut("headers").and_then(Value::as_object_mut) else {
            continue;
        };
        headers.insert(
            "X-Request-Id".into(),
            json!({
                "description": "The request's id (the caller's own when it sent a plain one); error bodies carry it as `request_id`.",
                "required": true,
                "schema": {"type": "string"},
            }),
        );
        if status == "429" || status == "503" {
            headers.insert(
                "Retry-After".into(),
                json!({
                    "description": "Seconds after which the request may succeed, when that is known (rate and quota limits, limits that free up with time, a store that cannot write).",
                    "schema": {"type": "integer", "format": "int64", "minimum": 0},
                }),
            );
        }
    }
}

/// The schema of one event of a `text/event-stream` answer, as OpenAPI 3.2's `itemSchema`
/// describes it and as validators of 3.0 documents read `schema` (one parsed event, not the
/// whole stream): the generator says "an array of items"; each event is `event`, `id` and
/// `data`, where `data` is one item as JSON (named in `x-data-schema`).
fn server_sent_event_schema(generated: Option<&Value>) -> Value {
    let item = generated
        .and_then(|g| g.get("items"))
        .cloned()
        .unwrap_or_else(|| json!({}));
    json!({
        "type": "object",
        "required": ["data"],
        "properties": {
            "event": {"type": "string", "description": "The event's type; the item's `kind`."},
            "id": {"type": "string", "description": "Present on events a client may resume after (`Last-Event-ID`)."},
            "retry": {"type": "integer"},
            "data": {
                "type": "string",
                "description": "One item as JSON; its schema is `x-data-schema`.",
                "x-data-schema": item,
            },
        },
    })
}

/// Every `uint32` or `uint64` says what it holds (`minimum: 0`; `maximum: 4294967295` for
/// `uint32`): the formats alone tell a generic validator nothing, so generated requests
/// carried negative ids.
fn unsigned_bounds(node: &mut Value) {
    match node {
        Value::Object(map) => {
            let format = map
                .get("format")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if map.get("type") == Some(&json!("integer")) && format.starts_with("uint") {
                map.entry("minimum").or_insert(json!(0));
                if format == "uint32" {
                    map.entry("maximum").or_insert(json!(u32::MAX));
                }
            }
            map.values_mut().for_each(unsigned_bounds);
        }
        Value::Array(items) => items.iter_mut().for_each(unsigned_bounds),
        _ => {}
    }
}

/// `SET-COOKIE` -> `Set-Cookie`; `X-REQUEST-ID` -> `X-Request-Id`.
fn canonical_header(name: &str) -> String {
    name.split('-')
        .map(|word| {
            let lower = word.to_ascii_lowercase();
            let mut chars = lower.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

fn add_session_security(spec: &mut Value) {
    let Some(schemes) = spec
        .pointer_mut("/components/securitySchemes")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    schemes.insert(
        "AdminSession".into(),
        json!({
            "type": "apiKey",
            "in": "cookie",
            "name": super::session::COOKIE,
            "description": "The admin web UI's session, set by `POST /v1/admin/session`; it opens nothing without its `X-CSRF-Token`.",
        }),
    );
    schemes.insert(
        "AdminCsrf".into(),
        json!({
            "type": "apiKey",
            "in": "header",
            "name": "X-CSRF-Token",
            "description": "The CSRF token `POST /v1/admin/session` answered, sent with the session cookie.",
        }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answer_declares_its_request_id_and_429s_their_retry_after() {
        let spec: Value = serde_json::from_str(&finish(&super::super::service().spec())).unwrap();
        let mut answers = 0;
        for (path, item) in spec["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for (status, response) in op["responses"].as_object().unwrap() {
                    answers += 1;
                    let headers = &response["headers"];
                    assert!(
                        headers["X-Request-Id"].is_object(),
                        "{method} {path} {status}"
                    );
                    if status == "429" {
                        assert!(headers["Retry-After"].is_object(), "{method} {path}");
                    }
                }
            }
        }
        assert!(answers > 100, "{answers}");
        let session = &spec["paths"]["/v1/admin/session"];
        assert!(session["get"]["security"][0]["AdminSession"].is_array());
        assert!(session["post"].get("security").is_none());
        let orgs = &spec["paths"]["/v1/admin/orgs"]["get"]["security"];
        assert_eq!(orgs.as_array().unwrap().len(), 2, "{orgs}");
    }

    #[test]
    fn every_instant_in_an_answer_is_declared_a_date_time() {
        let spec: Value = serde_json::from_str(&finish(&super::super::service().spec())).unwrap();
        let mut instants = 0;
        for (name, schema) in spec["components"]["schemas"].as_object().unwrap() {
            for (field, prop) in schema["properties"].as_object().into_iter().flatten() {
                let time_named = field.ends_with("_at")
                    || field.ends_with("_since")
                    || ["since", "period_start", "period_end", "settled_until"]
                        .contains(&field.as_str());
                if time_named && prop["type"] == "string" {
                    instants += 1;
                    assert_eq!(prop["format"], "date-time", "{name}.{field}");
                }
            }
        }
        assert!(instants > 20, "{instants}");
    }
}
