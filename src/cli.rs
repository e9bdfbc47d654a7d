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
    Serve(Box<ServeArgs>),
    /// Print the OpenAPI 3 document (identical to openapi/openapi.json).
    Openapi,
    /// Score a CSV (`timestamp,value`) with the metric detector's defaults (those of a new
    /// monitor), writing `timestamp,value,anomaly_score,is_anomaly` rows in order.
    Score(ScoreArgs),
    /// Score NDJSON events (one JSON value per line) with the stream detector's defaults
    /// (those of a new stream), writing one verdict JSON line per event in order.
    ScoreEvents(ScoreEventsArgs),
    /// Write a consistent snapshot of the store to a file, while the server runs or not.
    Backup(BackupArgs),
    /// Install a backup as the store of an empty data directory.
    Restore(RestoreArgs),
    /// Billing operations on a running server.
    #[command(subcommand)]
    Billing(BillingCommand),
    /// Check the configuration, data directory, store, SMTP and Stripe, and say what is wrong.
    Doctor(Box<ServeArgs>),
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
    /// SMTP server for outgoing mail; without it mail goes to DATA_DIR/mail (maildir)
    #[arg(long, env = "DRIFTLOCK_SMTP_HOST")]
    pub smtp_host: Option<String>,
    /// SMTP port [default: 587, or 465 with implicit TLS, 25 without TLS]
    #[arg(long, env = "DRIFTLOCK_SMTP_PORT")]
    pub smtp_port: Option<u16>,
    /// SMTP TLS mode [default: starttls]
    #[arg(long, env = "DRIFTLOCK_SMTP_TLS", value_enum)]
    pub smtp_tls: Option<crate::sync::email::TlsMode>,
    /// SMTP user name (the password comes from DRIFTLOCK_SMTP_PASSWORD or a file)
    #[arg(long, env = "DRIFTLOCK_SMTP_USERNAME")]
    pub smtp_username: Option<String>,
    /// Sender address of outgoing mail [default: driftlock@localhost]
    #[arg(long, env = "DRIFTLOCK_SMTP_FROM")]
    pub smtp_from: Option<String>,
    /// Delivery attempts before an email is marked failed [default: 8]
    #[arg(long, env = "DRIFTLOCK_EMAIL_MAX_ATTEMPTS")]
    pub email_max_attempts: Option<u32>,
    /// First retry delay of email delivery in milliseconds, doubled per attempt [default: 30000]
    #[arg(long, env = "DRIFTLOCK_EMAIL_RETRY_BASE_MS")]
    pub email_retry_base_ms: Option<u64>,
    /// How often the email worker looks for due mail, in milliseconds [default: 1000]
    #[arg(long, env = "DRIFTLOCK_EMAIL_POLL_MS")]
    pub email_poll_ms: Option<u64>,
    /// Delivery attempts before a webhook is marked failed [default: 10]
    #[arg(long, env = "DRIFTLOCK_WEBHOOK_MAX_ATTEMPTS")]
    pub webhook_max_attempts: Option<u32>,
    /// First retry delay of webhook delivery in milliseconds, doubled per attempt [default: 30000]
    #[arg(long, env = "DRIFTLOCK_WEBHOOK_RETRY_BASE_MS")]
    pub webhook_retry_base_ms: Option<u64>,
    /// How often the webhook worker looks for due deliveries, in milliseconds [default: 1000]
    #[arg(long, env = "DRIFTLOCK_WEBHOOK_POLL_MS")]
    pub webhook_poll_ms: Option<u64>,
    /// Address blocks monitor webhooks may reach besides public addresses (loopback, private,
    /// link-local and unique-local ones are refused otherwise), comma-separated CIDRs
    #[arg(
        long = "webhook-allow-cidr",
        env = "DRIFTLOCK_WEBHOOK_ALLOW_CIDRS",
        value_delimiter = ','
    )]
    pub webhook_allow_cidrs: Option<Vec<String>>,
    /// Days in `grace` after a failed payment before `past_due` [default: 7]
    #[arg(long, env = "DRIFTLOCK_DUNNING_GRACE_DAYS")]
    pub dunning_grace_days: Option<u32>,
    /// Days in `past_due` before `suspended` [default: 7]
    #[arg(long, env = "DRIFTLOCK_DUNNING_PAST_DUE_DAYS")]
    pub dunning_past_due_days: Option<u32>,
    /// Origins allowed to call the API from a browser (CORS), comma-separated; none by default
    #[arg(long, env = "DRIFTLOCK_CORS_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub cors_allowed_origins: Option<Vec<String>>,
    /// Stripe API base URL (tests point it at a local fake) [default: https://api.stripe.com]
    #[arg(long, env = "DRIFTLOCK_STRIPE_API_BASE")]
    pub stripe_api_base: Option<String>,
    /// Event name of the Stripe Billing Meter that counts overage [default: driftlock_detections]
    #[arg(long, env = "DRIFTLOCK_STRIPE_METER_EVENT_NAME")]
    pub stripe_meter_event_name: Option<String>,
    /// How often overage is batched and sent to Stripe, in milliseconds [default: 60000]
    #[arg(long, env = "DRIFTLOCK_STRIPE_METER_INTERVAL_MS")]
    pub stripe_meter_interval_ms: Option<u64>,
    /// First retry delay of a meter event in milliseconds, doubled per attempt [default: 30000]
    #[arg(long, env = "DRIFTLOCK_STRIPE_RETRY_BASE_MS")]
    pub stripe_retry_base_ms: Option<u64>,
    /// Public base URL of this server, used in links in mail [default: http://LISTEN]
    #[arg(long, env = "DRIFTLOCK_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Seconds in-flight requests get to finish on shutdown [default: 30]
    #[arg(long, env = "DRIFTLOCK_SHUTDOWN_GRACE_SECS")]
    pub shutdown_grace_secs: Option<u64>,
    /// Connections served at once; more wait in the listen queue [default: 512]
    #[arg(long, env = "DRIFTLOCK_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Seconds a connection may stay silent (no request, no bytes) before it is closed [default: 60]
    #[arg(long, env = "DRIFTLOCK_IDLE_TIMEOUT_SECS")]
    pub idle_timeout_secs: Option<u64>,
    /// Seconds a request's head (request line and headers) may take to arrive; a slower one closes the connection [default: 10]
    #[arg(long, env = "DRIFTLOCK_HEADER_TIMEOUT_SECS")]
    pub header_timeout_secs: Option<u64>,
    /// Seconds a request body may take to arrive; slower ones answer 408 [default: 30]
    #[arg(long, env = "DRIFTLOCK_BODY_TIMEOUT_SECS")]
    pub body_timeout_secs: Option<u64>,
    /// Largest body read from a caller that has not authenticated, in bytes [default: 65536]
    #[arg(long, env = "DRIFTLOCK_UNAUTHENTICATED_BODY_BYTES")]
    pub unauthenticated_body_bytes: Option<usize>,
    /// Active API keys one organization may hold [default: 100]
    #[arg(long, env = "DRIFTLOCK_MAX_KEYS_PER_ORG")]
    pub max_keys_per_org: Option<u64>,
    /// Streams one organization may hold [default: 1000]
    #[arg(long, env = "DRIFTLOCK_MAX_STREAMS_PER_ORG")]
    pub max_streams_per_org: Option<u64>,
    /// Monitors one organization may hold [default: 1000]
    #[arg(long, env = "DRIFTLOCK_MAX_MONITORS_PER_ORG")]
    pub max_monitors_per_org: Option<u64>,
    /// Bytes of idempotency records one organization may hold, each kept 24 h [default: 16777216]
    #[arg(long, env = "DRIFTLOCK_MAX_IDEMPOTENCY_BYTES_PER_ORG")]
    pub max_idempotency_bytes_per_org: Option<u64>,
    /// Monitor notification mails one organization may queue per UTC hour; later ones are held back [default: 100]
    #[arg(long, env = "DRIFTLOCK_MAX_MAILS_PER_ORG_PER_HOUR")]
    pub max_mails_per_org_per_hour: Option<u64>,
    /// Detection batches of one organization processed at once; more answer 429 [default: 4]
    #[arg(long, env = "DRIFTLOCK_ORG_CONCURRENT_BATCHES")]
    pub org_concurrent_batches: Option<usize>,
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

#[derive(Debug, Args)]
pub struct ScoreEventsArgs {
    /// Input NDJSON, one event per line
    #[arg(long)]
    pub input: PathBuf,
    /// Output NDJSON, one verdict per event
    #[arg(long)]
    pub output: PathBuf,
}

impl Default for Command {
    fn default() -> Self {
        Command::Serve(Box::default())
    }
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The data directory of the store to back up
    #[arg(long, env = "DRIFTLOCK_DATA_DIR", default_value = "./driftlock-data")]
    pub data_dir: PathBuf,
    /// The backup file to write (must not exist)
    #[arg(long)]
    pub output: PathBuf,
    /// URL of the running server, used when it holds the store [default: http://LISTEN]
    #[arg(long)]
    pub server: Option<String>,
    /// Address the running server listens on
    #[arg(long, env = "DRIFTLOCK_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup file
    #[arg(long)]
    pub input: PathBuf,
    /// An empty data directory to restore into
    #[arg(long, env = "DRIFTLOCK_DATA_DIR")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum BillingCommand {
    /// Compare the overage delivered to Stripe with Stripe's meter, per customer; report, and
    /// with --fix queue corrections where Stripe has less.
    Reconcile(ReconcileArgs),
}

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// Queue corrections for customers Stripe has fewer detections for
    #[arg(long)]
    pub fix: bool,
    /// The data directory of the running server (for its admin token)
    #[arg(long, env = "DRIFTLOCK_DATA_DIR", default_value = "./driftlock-data")]
    pub data_dir: PathBuf,
    /// URL of the running server [default: http://LISTEN]
    #[arg(long)]
    pub server: Option<String>,
    /// Address the running server listens on
    #[arg(long, env = "DRIFTLOCK_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
}
