//! Command-line definitions (clap). Every `serve` flag can also come from a `DRIFTLOCK_*`
//! environment variable (flags win) and from the TOML config file (lowest, above defaults).
//! Secrets are never flags: see `config`.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "driftlock",
    version,
    about = "Self-hosted, explainable anomaly detection with usage-based billing"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the appliance (the default when no command is given).
    Serve(ServeArgs),
    /// Print the OpenAPI 3 document (identical to openapi/openapi.json).
    Openapi,
    /// Score a CSV (`timestamp,value`) with the metric detector's defaults (those of a new
    /// monitor), writing `timestamp,value,anomaly_score,is_anomaly` rows in order.
    Score(ScoreArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "DRIFTLOCK_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for the store and generated secrets [default: ./driftlock-data]
    #[arg(long, env = "DRIFTLOCK_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// TOML configuration file
    #[arg(long, env = "DRIFTLOCK_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format [default: human]
    #[arg(long, env = "DRIFTLOCK_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `driftlock=debug` [default: info]
    #[arg(long, env = "DRIFTLOCK_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Largest request body accepted, in bytes [default: 16777216]
    #[arg(long, env = "DRIFTLOCK_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Most events accepted in one stream batch [default: 10000]
    #[arg(long, env = "DRIFTLOCK_MAX_BATCH_EVENTS")]
    pub max_batch_events: Option<usize>,
    /// Requests per second per API key on detection and metering routes; 0 = unlimited [default: 100]
    #[arg(long, env = "DRIFTLOCK_RATE_LIMIT_PER_SEC")]
    pub rate_limit_per_sec: Option<u32>,
    /// Burst size of the per-key rate limit [default: 200]
    #[arg(long, env = "DRIFTLOCK_RATE_LIMIT_BURST")]
    pub rate_limit_burst: Option<u32>,
    /// Seconds in-flight requests get to finish on shutdown [default: 30]
    #[arg(long, env = "DRIFTLOCK_SHUTDOWN_GRACE_SECS")]
    pub shutdown_grace_secs: Option<u64>,
}

#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Input CSV with header `timestamp,value`
    #[arg(long)]
    pub input: PathBuf,
    /// Output CSV
    #[arg(long)]
    pub output: PathBuf,
}
