//! Driftlock: a self-hosted anomaly-detection appliance in one binary.
//!
//! Map: `cli` and `config` turn arguments, environment and the TOML file into a `Config`;
//! `app` starts the server (store, HTTP, background work) and shuts it down; `api` holds thin
//! HTTP handlers over `store` (the only module that touches redb) and `core` (pure detection,
//! metering and billing rules); `clock` is the only reader of the wall clock and `secrets`
//! makes and checks keys and tokens; `score` and `score_events` run the detectors offline;
//! `ui` serves the embedded admin web UI.

pub mod api;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod core;
pub mod doctor;
pub mod ops;
pub mod score;
pub mod score_events;
pub mod secrets;
pub mod store;
pub mod sync;
pub mod ui;
