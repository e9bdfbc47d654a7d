//! Metering: the plan catalog, billing periods, usage counters and the money they imply, quota
//! policy and its decisions (admission, alerts, early invoices). Pure: no I/O, no clock.

pub mod disclosure;
pub mod overview;
pub mod period;
pub mod plans;
pub mod promotions;
pub mod quota;
pub mod usage;
