//! TEMPORARY experiment knobs (never committed): DLK_<NAME>=value environment overrides.
use std::collections::HashMap;
use std::sync::OnceLock;
static K: OnceLock<HashMap<String, f64>> = OnceLock::new();
pub(crate) fn knob(name: &str, default: f64) -> f64 {
    let m = K.get_or_init(|| {
        std::env::vars()
            .filter_map(|(k, v)| Some((k.strip_prefix("DLK_")?.to_string(), v.parse().ok()?)))
            .collect()
    });
    m.get(name).copied().unwrap_or(default)
}
