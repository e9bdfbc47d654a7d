//! Metering: the plan catalog, and (as billing grows) periods, counters, quota decisions,
//! alert thresholds and money in integer cents. Pure: no I/O, no clock.

pub mod plans;
