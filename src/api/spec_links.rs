//! The OpenAPI links of the finished document: from the answer that creates or first names a
//! resource to the operations that take its id (`createMonitor` 201 -> `getMonitor` with
//! `monitor_id = $response.body#/id`), so that clients and stateful testers (schemathesis)
//! can follow one resource through its life. Owns the table of those links and the shape
//! generators read two schema forms in: a `$ref` to an enum beside its description rather
//! than `allOf` (openapi-python-client cannot take `allOf` of a non-object).

use serde_json::{json, Map, Value};

/// (source operation, status, id parameter, runtime expression, target operations).
const LINKS: &[(&str, &str, &str, &str, &[&str])] = &[
    (
        "createOrganization",
        "201",
        "org_id",
        "$response.body#/id",
        &[
            "getOrganization",
            "getOrganizationById",
            "getOrganizationBilling",
            "getOrganizationUsage",
            "resetOrganizationUsage",
            "getQuotaPolicy",
            "setQuotaPolicy",
            "setOrganizationPlan",
            "setDunning",
            "createOrganizationKey",
            "listOrganizationKeys",
            "listOrganizationStreams",
            "listOrganizationMonitors",
        ],
    ),
    (
        "createOrganizationKey",
        "201",
        "key_id",
        "$response.body#/key/id",
        &["getKey", "revokeKey"],
    ),
    (
        "createPlatformKey",
        "201",
        "key_id",
        "$response.body#/key/id",
        &["getKey", "revokeKey"],
    ),
    (
        "createOwnKey",
        "201",
        "key_id",
        "$response.body#/key/id",
        &["getOwnKey", "revokeOwnKey"],
    ),
    (
        "createMonitor",
        "201",
        "monitor_id",
        "$response.body#/id",
        &[
            "getMonitor",
            "updateMonitor",
            "deleteMonitor",
            "sendMonitorPoints",
            "listMonitorAnomalies",
            "getMonitorSeries",
            "listMonitorDeliveries",
            "pauseMonitor",
            "resumeMonitor",
        ],
    ),
    (
        "ingestStreamEvents",
        "200",
        "stream_id",
        "$response.body#/stream_id",
        STREAM_OPERATIONS,
    ),
    (
        "ingestStreamEventsNdjson",
        "200",
        "stream_id",
        "$response.body#/stream_id",
        STREAM_OPERATIONS,
    ),
    (
        "putStream",
        "200",
        "stream_id",
        "$response.body#/id",
        STREAM_OPERATIONS,
    ),
];

const STREAM_OPERATIONS: &[&str] = &[
    "getStream",
    "putStream",
    "deleteStream",
    "listStreamAnomalies",
    "ingestStreamEvents",
    "ingestStreamEventsNdjson",
];

/// `getMonitor` -> `GetMonitor`: the link's name.
fn link_name(operation_id: &str) -> String {
    let mut chars = operation_id.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// Adds every link of [`LINKS`] whose operations both exist.
pub fn add_links(spec: &mut Value) {
    let known: Vec<String> = operations(spec)
        .filter_map(|op| op["operationId"].as_str().map(str::to_string))
        .collect();
    let Some(paths) = spec.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut() {
        for operation in item
            .as_object_mut()
            .into_iter()
            .flat_map(|i| i.values_mut())
        {
            let id = operation["operationId"].as_str().unwrap_or("").to_string();
            for (source, status, param, expression, targets) in LINKS {
                if *source != id {
                    continue;
                }
                let Some(response) = operation
                    .pointer_mut(&format!("/responses/{status}"))
                    .and_then(Value::as_object_mut)
                else {
                    continue;
                };
                let links = response
                    .entry("links")
                    .or_insert_with(|| Value::Object(Map::new()));
                for target in targets.iter().filter(|t| known.iter().any(|k| k == *t)) {
                    links[link_name(target)] = json!({
                        "operationId": target,
                        "parameters": {*param: expression},
                        "description": format!("The `{param}` of this answer, for `{target}`."),
                    });
                }
            }
        }
    }
}

fn operations(spec: &Value) -> impl Iterator<Item = &Value> {
    spec["paths"]
        .as_object()
        .into_iter()
        .flat_map(|paths| paths.values())
        .flat_map(|item| item.as_object().into_iter().flat_map(|i| i.values()))
}

/// `{"allOf": [{"$ref": enum}, {"description": d}]}` -> `{"$ref": enum, "description": d}`
/// wherever the referenced schema is not an object.
pub fn plain_enum_refs(spec: &mut Value) {
    let schemas = spec["components"]["schemas"].clone();
    rewrite(spec, &schemas);
}

fn rewrite(node: &mut Value, schemas: &Value) {
    match node {
        Value::Object(map) => {
            let only_ref = map
                .get("allOf")
                .and_then(Value::as_array)
                .filter(|all| all.len() <= 2 && all.iter().skip(1).all(|s| s.get("$ref").is_none()))
                .and_then(|all| all.first()?.get("$ref")?.as_str().map(str::to_string));
            if let Some(reference) = only_ref {
                let name = reference.rsplit('/').next().unwrap_or("");
                if schemas[name]["type"] != "object" {
                    map.remove("allOf");
                    map.insert("$ref".into(), Value::String(reference));
                }
            }
            for value in map.values_mut() {
                rewrite(value, schemas);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite(v, schemas)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished() -> Value {
        serde_json::from_str(&super::super::spec::finish(&super::super::service().spec())).unwrap()
    }

    #[test]
    fn every_link_names_a_real_operation_and_one_of_its_path_parameters() {
        let spec = finished();
        let by_id = |id: &str| {
            operations(&spec)
                .find(|op| op["operationId"] == id)
                .cloned()
        };
        let mut links = 0;
        for op in operations(&spec) {
            for response in op["responses"].as_object().unwrap().values() {
                for (name, link) in response["links"].as_object().into_iter().flatten() {
                    links += 1;
                    let target = link["operationId"].as_str().unwrap();
                    let target = by_id(target).unwrap_or_else(|| panic!("{name}: {target}"));
                    for param in link["parameters"].as_object().unwrap().keys() {
                        let declared = target["parameters"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|p| p["name"] == *param && p["in"] == "path");
                        assert!(declared, "{name}: {param}");
                    }
                }
            }
        }
        let expected: usize = LINKS.iter().map(|l| l.4.len()).sum();
        assert_eq!(links, expected);
    }

    #[test]
    fn enum_properties_are_plain_refs() {
        let spec = finished();
        let policy = &spec["components"]["schemas"]["QuotaPolicyView"]["properties"];
        assert_eq!(
            policy["behavior_on_exceed"]["$ref"],
            "#/components/schemas/Behavior"
        );
        assert!(policy["behavior_on_exceed"].get("allOf").is_none());
        let event = &spec["components"]["schemas"]["EventResult"]["properties"]["explanation"];
        assert!(
            event.get("allOf").is_some(),
            "object refs keep allOf: {event}"
        );
    }
}
