//! The methods each documented path allows, read once from the OpenAPI document, for the
//! `Allow` header of 405 answers, and the names of a path's parameters, for errors that name
//! the parameter (the framework calls them `param0`, `param1`, ...).

use std::sync::OnceLock;

/// (path template split in segments, methods) for every path of the spec.
fn table() -> &'static Vec<(Vec<String>, Vec<String>)> {
    static TABLE: OnceLock<Vec<(Vec<String>, Vec<String>)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let spec: serde_json::Value =
            serde_json::from_str(&super::openapi_json()).unwrap_or_default();
        spec["paths"]
            .as_object()
            .map(|paths| {
                paths
                    .iter()
                    .map(|(path, ops)| {
                        let segments = path.split('/').map(str::to_string).collect();
                        let methods = ops
                            .as_object()
                            .map(|o| o.keys().map(|m| m.to_uppercase()).collect())
                            .unwrap_or_default();
                        (segments, methods)
                    })
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// The documented path template `path` matches, as (segments, methods).
fn matching(path: &str) -> Option<&'static (Vec<String>, Vec<String>)> {
    let wanted: Vec<&str> = path.split('/').collect();
    table().iter().find(|(segments, _)| {
        segments.len() == wanted.len()
            && segments
                .iter()
                .zip(&wanted)
                .all(|(s, w)| s == w || (s.starts_with('{') && !w.is_empty()))
    })
}

/// The methods allowed on `path` (empty when no documented path matches).
pub fn allowed_methods(path: &str) -> Vec<String> {
    matching(path)
        .map(|(_, methods)| methods.clone())
        .unwrap_or_default()
}

/// The names of `path`'s parameters in order (`["monitor_id"]` for `/v1/monitors/mon_1`).
pub fn parameter_names(path: &str) -> Vec<String> {
    matching(path)
        .map(|(segments, _)| {
            segments
                .iter()
                .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_methods_of_concrete_and_templated_paths() {
        assert_eq!(allowed_methods("/healthz"), vec!["GET"]);
        let keys = allowed_methods("/v1/keys/key_abc");
        assert!(keys.contains(&"GET".to_string()) && keys.contains(&"DELETE".to_string()));
        assert!(allowed_methods("/nope").is_empty());
        assert_eq!(
            parameter_names("/v1/admin/outbox/email/abc/retry"),
            vec!["email_id"]
        );
    }
}
