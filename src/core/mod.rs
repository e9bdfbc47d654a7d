//! The pure core: detection, metering and billing decisions. Nothing here touches the
//! network, the disk or the clock; callers pass `now` and plain values in.

pub mod billing;
pub mod calendar;
pub mod detect;
pub mod feedback;
pub mod metering;
pub mod rules;
pub mod triage;
