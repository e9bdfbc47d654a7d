//! Detection engine (issue 3): explainable, compression-based streaming anomaly detectors.
//!
//! Two detectors of one family, both pure (no I/O, no clock, no threads, no global state,
//! no randomness), bounded in memory, and resumable from versioned state bytes:
//! - [`MetricDetector`] over `(timestamp, value)` points, used by monitors and `driftlock score`;
//! - [`EventDetector`] over JSON events, used by streams and `driftlock score-events`; since
//!   issue 21 it models each field by its kind (`event/`: `flatten`, `numeric`, `categorical`,
//!   `explain`, `codec`, `settings`) and uses compression for explanation figures only.
//!
//! Map: `compress` (LZ77 cost with the baseline as a live dictionary, NCD, entropy),
//! `context` (order-2 context model over quantized values), `discord` (the metric detector's
//! left-matrix-profile signal and period estimate), `calibrate` (raw score -> p-value,
//! events), `tail` (the metric detector's long-memory per-signal calibration), `alarm` (the
//! metric detector's Fisher combination of its signals, peak filter and time-based hold-off),
//! `metric` / `event` (the detectors; `metric_settings` holds the metric detector's settings,
//! and its child modules `metric_signals`, `metric_residual`, `metric_evidence`,
//! `metric_baseline` and `metric_codec` its raw signals, residual forecast and recurrence
//! memory, calibrated evidence, baseline and state layout), `explain` / `explain_metric` (the numbers and
//! sentence behind each anomaly), `ring` and `state` (bounded `f64`/`f32` histories and their
//! encoding).

mod alarm;
mod calibrate;
mod compress;
mod context;
mod discord;
mod event;
mod explain;
mod explain_metric;
mod metric;
mod metric_settings;
mod ring;
mod state;
mod tail;
#[cfg(test)]
mod tests;

pub use event::{event_fields, text_template, EventDetector, EventSettings, EventVerdict};
pub use explain::num as format_number;
pub use explain::{Explanation, Finding};
pub use metric::{MetricDetector, MetricVerdict, MAX_ABS_VALUE};
pub use metric_settings::MetricSettings;

/// Errors of the detection engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DetectError {
    /// Settings outside their documented ranges; the message names the field.
    InvalidSettings(String),
    /// State bytes that are truncated, corrupted or not from this detector kind.
    CorruptState(String),
    /// State written by a newer (or unknown) format version.
    UnsupportedStateVersion { found: u16, supported: u16 },
}

impl std::fmt::Display for DetectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DetectError::InvalidSettings(m) => write!(f, "invalid detector settings: {m}"),
            DetectError::CorruptState(m) => write!(f, "detector state cannot be read: {m}"),
            DetectError::UnsupportedStateVersion { found, supported } => write!(
                f,
                "detector state version {found} is not supported (this build reads version {supported})"
            ),
        }
    }
}

impl std::error::Error for DetectError {}

impl Default for MetricDetector {
    fn default() -> Self {
        MetricDetector::new(MetricSettings::default())
    }
}

impl Default for EventDetector {
    fn default() -> Self {
        EventDetector::new(EventSettings::default())
    }
}
