//! Integration tests: the real `driftlock` binary on a loopback port, driven by real HTTP
//! clients. One test binary; each module covers one area.

mod anomaly_status;
mod audit;
mod clients;
mod clock;
mod durability;
mod email;
mod faults;
mod feedback;
mod foundation;
mod hostile;
mod load;
mod metering;
mod monitors;
mod openapi;
mod packaging;
mod schema_fuzz;
mod streams;
mod stripe;
mod stripe_contract;
mod support;
mod test_clock;
mod ui;
