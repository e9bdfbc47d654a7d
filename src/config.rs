//! Configuration in two stages: a raw layer where everything is optional (defaults < TOML
//! file < `DRIFTLOCK_*` environment < flags), then a validated `Config` where everything is
//! resolved. Secrets (the admin token) come from the environment or a file, never a flag, and
//! a secret file readable by other users is refused.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use crate::{
    cli::{LogFormat, ServeArgs},
    core::billing::dunning::DunningPolicy,
    sync::{
        destination::{Cidr, DestinationPolicy},
        email::{EmailSettings, SmtpSettings, TlsMode, Transport},
        stripe::StripeSettings,
        webhooks::WebhookSettings,
    },
};

/// Environment variables this binary reads; any other `DRIFTLOCK_*` variable earns a warning.
pub const KNOWN_ENV: &[&str] = &[
    "DRIFTLOCK_LISTEN",
    "DRIFTLOCK_DATA_DIR",
    "DRIFTLOCK_CONFIG",
    "DRIFTLOCK_LOG_FORMAT",
    "DRIFTLOCK_LOG_LEVEL",
    "DRIFTLOCK_MAX_BODY_BYTES",
    "DRIFTLOCK_SHUTDOWN_GRACE_SECS",
    "DRIFTLOCK_MAX_BATCH_EVENTS",
    "DRIFTLOCK_RATE_LIMIT_PER_SEC",
    "DRIFTLOCK_RATE_LIMIT_BURST",
    "DRIFTLOCK_SMTP_HOST",
    "DRIFTLOCK_SMTP_PORT",
    "DRIFTLOCK_SMTP_TLS",
    "DRIFTLOCK_SMTP_USERNAME",
    "DRIFTLOCK_SMTP_PASSWORD",
    "DRIFTLOCK_SMTP_PASSWORD_FILE",
    "DRIFTLOCK_SMTP_FROM",
    "DRIFTLOCK_EMAIL_MAX_ATTEMPTS",
    "DRIFTLOCK_EMAIL_RETRY_BASE_MS",
    "DRIFTLOCK_EMAIL_POLL_MS",
    "DRIFTLOCK_PUBLIC_URL",
    "DRIFTLOCK_WEBHOOK_MAX_ATTEMPTS",
    "DRIFTLOCK_WEBHOOK_RETRY_BASE_MS",
    "DRIFTLOCK_WEBHOOK_POLL_MS",
    "DRIFTLOCK_DUNNING_GRACE_DAYS",
    "DRIFTLOCK_DUNNING_PAST_DUE_DAYS",
    "DRIFTLOCK_STRIPE_WEBHOOK_SECRET",
    "DRIFTLOCK_STRIPE_WEBHOOK_SECRET_FILE",
    "DRIFTLOCK_CORS_ALLOWED_ORIGINS",
    "DRIFTLOCK_STRIPE_SECRET_KEY",
    "DRIFTLOCK_STRIPE_SECRET_KEY_FILE",
    "DRIFTLOCK_STRIPE_PUBLISHABLE_KEY",
    "DRIFTLOCK_STRIPE_PUBLISHABLE_KEY_FILE",
    "DRIFTLOCK_STRIPE_API_BASE",
    "DRIFTLOCK_STRIPE_METER_EVENT_NAME",
    "DRIFTLOCK_STRIPE_METER_INTERVAL_MS",
    "DRIFTLOCK_STRIPE_RETRY_BASE_MS",
    "DRIFTLOCK_ADMIN_TOKEN",
    "DRIFTLOCK_ADMIN_TOKEN_FILE",
    "DRIFTLOCK_MAX_CONNECTIONS",
    "DRIFTLOCK_IDLE_TIMEOUT_SECS",
    "DRIFTLOCK_BODY_TIMEOUT_SECS",
    "DRIFTLOCK_HEADER_TIMEOUT_SECS",
    "DRIFTLOCK_UNAUTHENTICATED_BODY_BYTES",
    "DRIFTLOCK_WEBHOOK_ALLOW_CIDRS",
    "DRIFTLOCK_MAX_KEYS_PER_ORG",
    "DRIFTLOCK_MAX_STREAMS_PER_ORG",
    "DRIFTLOCK_MAX_MONITORS_PER_ORG",
    "DRIFTLOCK_MAX_IDEMPOTENCY_BYTES_PER_ORG",
    "DRIFTLOCK_ORG_CONCURRENT_BATCHES",
    "DRIFTLOCK_MAX_MAILS_PER_ORG_PER_HOUR",
];

/// The TOML file's shape: every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub log_format: Option<LogFormat>,
    pub log_level: Option<String>,
    pub max_body_bytes: Option<usize>,
    pub shutdown_grace_secs: Option<u64>,
    pub max_connections: Option<usize>,
    pub idle_timeout_secs: Option<u64>,
    pub header_timeout_secs: Option<u64>,
    pub body_timeout_secs: Option<u64>,
    pub unauthenticated_body_bytes: Option<usize>,
    pub max_keys_per_org: Option<u64>,
    pub max_streams_per_org: Option<u64>,
    pub max_monitors_per_org: Option<u64>,
    pub max_idempotency_bytes_per_org: Option<u64>,
    pub max_mails_per_org_per_hour: Option<u64>,
    pub org_concurrent_batches: Option<usize>,
    pub max_batch_events: Option<usize>,
    pub rate_limit_per_sec: Option<u32>,
    pub rate_limit_burst: Option<u32>,
    pub admin_token_file: Option<PathBuf>,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<u16>,
    pub smtp_tls: Option<TlsMode>,
    pub smtp_username: Option<String>,
    pub smtp_password_file: Option<PathBuf>,
    pub smtp_from: Option<String>,
    pub email_max_attempts: Option<u32>,
    pub email_retry_base_ms: Option<u64>,
    pub email_poll_ms: Option<u64>,
    pub public_url: Option<String>,
    pub webhook_max_attempts: Option<u32>,
    pub webhook_retry_base_ms: Option<u64>,
    pub webhook_poll_ms: Option<u64>,
    pub webhook_allow_cidrs: Option<Vec<String>>,
    pub dunning_grace_days: Option<u32>,
    pub dunning_past_due_days: Option<u32>,
    pub stripe_webhook_secret_file: Option<PathBuf>,
    pub cors_allowed_origins: Option<Vec<String>>,
    pub stripe_secret_key_file: Option<PathBuf>,
    pub stripe_publishable_key_file: Option<PathBuf>,
    pub stripe_api_base: Option<String>,
    pub stripe_meter_event_name: Option<String>,
    pub stripe_meter_interval_ms: Option<u64>,
    pub stripe_retry_base_ms: Option<u64>,
}

/// Where the admin token comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum AdminTokenSource {
    /// Given by the operator (environment or file).
    Configured(String),
    /// Read from, or created at first start in, `DATA_DIR/admin.token`.
    DataDir,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub log_format: LogFormat,
    pub log_level: String,
    pub max_body_bytes: usize,
    pub shutdown_grace_secs: u64,
    /// Connections served at once.
    pub max_connections: usize,
    /// A connection silent this long is closed.
    pub idle_timeout: std::time::Duration,
    /// A request head must arrive within this.
    pub header_timeout: std::time::Duration,
    /// A request body must arrive within this.
    pub body_timeout: std::time::Duration,
    /// Body limit for callers that have not authenticated.
    pub unauthenticated_body_bytes: usize,
    /// What one organization may hold (keys, streams, monitors, idempotency bytes).
    pub org_limits: crate::store::OrgLimits,
    /// Detection batches of one organization processed at once.
    pub org_concurrent_batches: usize,
    pub max_batch_events: usize,
    pub rate_limit_per_sec: u32,
    pub rate_limit_burst: u32,
    pub admin_token: AdminTokenSource,
    /// Outgoing mail; `transport` is `Maildir` under the data dir when no SMTP host is set.
    pub email: EmailSettings,
    pub webhooks: WebhookSettings,
    pub dunning: DunningPolicy,
    /// Stripe API access; without a secret key billing runs offline.
    pub stripe: StripeSettings,
    /// Stripe's publishable key, handed to browsers (Stripe.js).
    pub stripe_publishable_key: Option<String>,
    /// Browser origins allowed by CORS; empty means CORS is off.
    pub cors_allowed_origins: Vec<String>,
    /// Stripe's webhook signing secret (`whsec_...`), from the environment or a file.
    pub stripe_webhook_secret: Option<String>,
    /// Problems worth a warning once logging is up (unknown env variables, ...).
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    ParseFile { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error("secret file {path}: {message}")]
    SecretFile { path: PathBuf, message: String },
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./driftlock-data";
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Resolves the configuration from flags/env (already merged by clap), the optional TOML
/// file, and the process environment for secrets.
pub fn resolve(args: &ServeArgs, env: &[(String, String)]) -> Result<Config, ConfigError> {
    let file = match &args.config {
        Some(path) => read_file_config(path)?,
        None => FileConfig::default(),
    };
    let env_get = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());

    let max_body_bytes = args
        .max_body_bytes
        .or(file.max_body_bytes)
        .unwrap_or(DEFAULT_MAX_BODY_BYTES);
    if max_body_bytes < 1024 {
        return Err(ConfigError::Invalid(format!(
            "max_body_bytes must be at least 1024, got {max_body_bytes}"
        )));
    }

    let max_batch_events = args
        .max_batch_events
        .or(file.max_batch_events)
        .unwrap_or(10_000);
    if !(1..=1_000_000).contains(&max_batch_events) {
        return Err(ConfigError::Invalid(format!(
            "max_batch_events must be between 1 and 1000000, got {max_batch_events}"
        )));
    }

    let admin_token = match (
        env_get("DRIFTLOCK_ADMIN_TOKEN"),
        env_get("DRIFTLOCK_ADMIN_TOKEN_FILE")
            .map(PathBuf::from)
            .or(file.admin_token_file.clone()),
    ) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::Invalid(
                "set DRIFTLOCK_ADMIN_TOKEN or an admin token file, not both".into(),
            ))
        }
        (Some(token), None) => AdminTokenSource::Configured(check_token(token)?),
        (None, Some(path)) => AdminTokenSource::Configured(check_token(read_secret_file(&path)?)?),
        (None, None) => AdminTokenSource::DataDir,
    };

    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("default address parses"));
    let data_dir = args
        .data_dir
        .clone()
        .or(file.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let email = resolve_email(args, &file, &env_get, listen, &data_dir)?;

    let warnings = env
        .iter()
        .filter(|(k, _)| k.starts_with("DRIFTLOCK_") && !KNOWN_ENV.contains(&k.as_str()))
        .map(|(k, _)| format!("unknown environment variable {k} is ignored"))
        .collect();

    Ok(Config {
        listen,
        data_dir,
        log_format: args
            .log_format
            .or(file.log_format)
            .unwrap_or(LogFormat::Human),
        log_level: args
            .log_level
            .clone()
            .or(file.log_level)
            .unwrap_or_else(|| "info".into()),
        max_body_bytes,
        shutdown_grace_secs: args
            .shutdown_grace_secs
            .or(file.shutdown_grace_secs)
            .unwrap_or(30),
        max_connections: args
            .max_connections
            .or(file.max_connections)
            .unwrap_or(512)
            .clamp(1, 1_000_000),
        idle_timeout: std::time::Duration::from_secs(
            args.idle_timeout_secs
                .or(file.idle_timeout_secs)
                .unwrap_or(60)
                .clamp(1, 86_400),
        ),
        header_timeout: std::time::Duration::from_secs(
            args.header_timeout_secs
                .or(file.header_timeout_secs)
                .unwrap_or(10)
                .clamp(1, 86_400),
        ),
        body_timeout: std::time::Duration::from_secs(
            args.body_timeout_secs
                .or(file.body_timeout_secs)
                .unwrap_or(30)
                .clamp(1, 86_400),
        ),
        unauthenticated_body_bytes: args
            .unauthenticated_body_bytes
            .or(file.unauthenticated_body_bytes)
            .unwrap_or(65_536)
            .clamp(1024, max_body_bytes),
        org_limits: {
            let d = crate::store::OrgLimits::default();
            crate::store::OrgLimits {
                api_keys: args
                    .max_keys_per_org
                    .or(file.max_keys_per_org)
                    .unwrap_or(d.api_keys)
                    .max(1),
                streams: args
                    .max_streams_per_org
                    .or(file.max_streams_per_org)
                    .unwrap_or(d.streams)
                    .max(1),
                monitors: args
                    .max_monitors_per_org
                    .or(file.max_monitors_per_org)
                    .unwrap_or(d.monitors)
                    .max(1),
                idempotency_bytes: args
                    .max_idempotency_bytes_per_org
                    .or(file.max_idempotency_bytes_per_org)
                    .unwrap_or(d.idempotency_bytes)
                    .max(4096),
                mails_per_hour: args
                    .max_mails_per_org_per_hour
                    .or(file.max_mails_per_org_per_hour)
                    .unwrap_or(d.mails_per_hour),
            }
        },
        org_concurrent_batches: args
            .org_concurrent_batches
            .or(file.org_concurrent_batches)
            .unwrap_or(4)
            .clamp(1, 10_000),
        max_batch_events,
        rate_limit_per_sec: args
            .rate_limit_per_sec
            .or(file.rate_limit_per_sec)
            .unwrap_or(100),
        rate_limit_burst: args
            .rate_limit_burst
            .or(file.rate_limit_burst)
            .unwrap_or(200),
        admin_token,
        email,
        webhooks: WebhookSettings {
            max_attempts: args
                .webhook_max_attempts
                .or(file.webhook_max_attempts)
                .unwrap_or(10)
                .clamp(1, 100),
            retry_base_ms: args
                .webhook_retry_base_ms
                .or(file.webhook_retry_base_ms)
                .unwrap_or(30_000)
                .max(10),
            retry_cap_ms: 3_600_000,
            poll: std::time::Duration::from_millis(
                args.webhook_poll_ms
                    .or(file.webhook_poll_ms)
                    .unwrap_or(1_000)
                    .max(10),
            ),
            timeout: std::time::Duration::from_secs(10),
            destinations: DestinationPolicy {
                allowed: args
                    .webhook_allow_cidrs
                    .clone()
                    .or(file.webhook_allow_cidrs.clone())
                    .unwrap_or_default()
                    .iter()
                    .filter(|c| !c.trim().is_empty())
                    .map(|c| {
                        c.parse::<Cidr>()
                            .map_err(|e| ConfigError::Invalid(format!("webhook_allow_cidrs: {e}")))
                    })
                    .collect::<Result<_, _>>()?,
            },
        },
        dunning: DunningPolicy {
            grace_days: args
                .dunning_grace_days
                .or(file.dunning_grace_days)
                .unwrap_or(7),
            past_due_days: args
                .dunning_past_due_days
                .or(file.dunning_past_due_days)
                .unwrap_or(7),
        },
        stripe: StripeSettings {
            api_base: args
                .stripe_api_base
                .clone()
                .or(file.stripe_api_base.clone())
                .unwrap_or_else(|| "https://api.stripe.com".into()),
            secret_key: secret_from(
                env_get("DRIFTLOCK_STRIPE_SECRET_KEY"),
                env_get("DRIFTLOCK_STRIPE_SECRET_KEY_FILE")
                    .map(PathBuf::from)
                    .or(file.stripe_secret_key_file.clone()),
                "DRIFTLOCK_STRIPE_SECRET_KEY",
            )?,
            meter_event_name: args
                .stripe_meter_event_name
                .clone()
                .or(file.stripe_meter_event_name.clone())
                .unwrap_or_else(|| "driftlock_detections".into()),
            meter_interval: std::time::Duration::from_millis(
                args.stripe_meter_interval_ms
                    .or(file.stripe_meter_interval_ms)
                    .unwrap_or(60_000)
                    .max(10),
            ),
            max_attempts: 20,
            retry_base_ms: args
                .stripe_retry_base_ms
                .or(file.stripe_retry_base_ms)
                .unwrap_or(30_000)
                .max(10),
        },
        stripe_publishable_key: secret_from(
            env_get("DRIFTLOCK_STRIPE_PUBLISHABLE_KEY"),
            env_get("DRIFTLOCK_STRIPE_PUBLISHABLE_KEY_FILE")
                .map(PathBuf::from)
                .or(file.stripe_publishable_key_file.clone()),
            "DRIFTLOCK_STRIPE_PUBLISHABLE_KEY",
        )?,
        cors_allowed_origins: args
            .cors_allowed_origins
            .clone()
            .or(file.cors_allowed_origins.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|o| o.trim().trim_end_matches('/').to_string())
            .filter(|o| !o.is_empty())
            .collect(),
        stripe_webhook_secret: match (
            env_get("DRIFTLOCK_STRIPE_WEBHOOK_SECRET"),
            env_get("DRIFTLOCK_STRIPE_WEBHOOK_SECRET_FILE")
                .map(PathBuf::from)
                .or(file.stripe_webhook_secret_file.clone()),
        ) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid(
                    "set DRIFTLOCK_STRIPE_WEBHOOK_SECRET or a webhook secret file, not both".into(),
                ))
            }
            (Some(s), None) => Some(s),
            (None, Some(path)) => Some(read_secret_file(&path)?.trim().to_string()),
            (None, None) => None,
        },
        warnings,
    })
}

fn resolve_email(
    args: &ServeArgs,
    file: &FileConfig,
    env_get: &dyn Fn(&str) -> Option<String>,
    listen: SocketAddr,
    data_dir: &Path,
) -> Result<EmailSettings, ConfigError> {
    let password = match (
        env_get("DRIFTLOCK_SMTP_PASSWORD"),
        env_get("DRIFTLOCK_SMTP_PASSWORD_FILE")
            .map(PathBuf::from)
            .or(file.smtp_password_file.clone()),
    ) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::Invalid(
                "set DRIFTLOCK_SMTP_PASSWORD or an SMTP password file, not both".into(),
            ))
        }
        (Some(p), None) => Some(p),
        (None, Some(path)) => Some(
            read_secret_file(&path)?
                .trim_end_matches(['\r', '\n'])
                .to_string(),
        ),
        (None, None) => None,
    };
    let transport = match args.smtp_host.clone().or(file.smtp_host.clone()) {
        None => Transport::Maildir(data_dir.join("mail")),
        Some(host) => {
            let tls = args.smtp_tls.or(file.smtp_tls).unwrap_or(TlsMode::Starttls);
            let default_port = match tls {
                TlsMode::None => 25,
                TlsMode::Starttls => 587,
                TlsMode::Implicit => 465,
            };
            Transport::Smtp(SmtpSettings {
                host,
                port: args.smtp_port.or(file.smtp_port).unwrap_or(default_port),
                tls,
                username: args.smtp_username.clone().or(file.smtp_username.clone()),
                password,
                timeout: std::time::Duration::from_secs(30),
            })
        }
    };
    let max_attempts = args
        .email_max_attempts
        .or(file.email_max_attempts)
        .unwrap_or(8);
    if !(1..=100).contains(&max_attempts) {
        return Err(ConfigError::Invalid(format!(
            "email_max_attempts must be between 1 and 100, got {max_attempts}"
        )));
    }
    Ok(EmailSettings {
        transport,
        from: args
            .smtp_from
            .clone()
            .or(file.smtp_from.clone())
            .unwrap_or_else(|| "driftlock@localhost".into()),
        max_attempts,
        retry_base_ms: args
            .email_retry_base_ms
            .or(file.email_retry_base_ms)
            .unwrap_or(30_000)
            .max(10),
        retry_cap_ms: 3_600_000,
        poll: std::time::Duration::from_millis(
            args.email_poll_ms
                .or(file.email_poll_ms)
                .unwrap_or(1_000)
                .max(10),
        ),
        public_url: args
            .public_url
            .clone()
            .or(file.public_url.clone())
            .unwrap_or_else(|| format!("http://{listen}"))
            .trim_end_matches('/')
            .to_string(),
    })
}

/// A secret given in the environment or in a private file, not both.
fn secret_from(
    value: Option<String>,
    file: Option<PathBuf>,
    name: &str,
) -> Result<Option<String>, ConfigError> {
    match (value, file) {
        (Some(_), Some(_)) => Err(ConfigError::Invalid(format!(
            "set {name} or {name}_FILE (or the config file key), not both"
        ))),
        (Some(v), None) => Ok(Some(v.trim().to_string())),
        (None, Some(path)) => Ok(Some(read_secret_file(&path)?.trim().to_string())),
        (None, None) => Ok(None),
    }
}

fn check_token(token: String) -> Result<String, ConfigError> {
    let token = token.trim().to_string();
    if token.len() < 24 {
        return Err(ConfigError::Invalid(
            "the admin token must be at least 24 characters".into(),
        ));
    }
    Ok(token)
}

fn read_file_config(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::ParseFile {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Reads a secret from a file that only its owner may read.
pub fn read_secret_file(path: &Path) -> Result<String, ConfigError> {
    let err = |message: String| ConfigError::SecretFile {
        path: path.to_path_buf(),
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode();
        if mode & 0o007 != 0 {
            return Err(err(format!(
                "is readable by other users (mode {:o}); run chmod 600 on it",
                mode & 0o777
            )));
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    std::fs::read_to_string(path).map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every environment variable a flag reads is known, so it is never warned about as
    /// unknown (and the packaging test checks each is documented).
    #[test]
    fn every_flag_environment_variable_is_known() {
        use clap::CommandFactory;
        fn walk(cmd: &clap::Command, out: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                if let Some(env) = arg.get_env() {
                    out.push(env.to_string_lossy().into_owned());
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, out);
            }
        }
        let mut envs = Vec::new();
        walk(&crate::cli::Cli::command(), &mut envs);
        let unknown: Vec<&String> = envs
            .iter()
            .filter(|e| !KNOWN_ENV.contains(&e.as_str()))
            .collect();
        assert!(unknown.is_empty(), "not in KNOWN_ENV: {unknown:?}");
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_apply_with_nothing_set() {
        let c = resolve(&ServeArgs::default(), &[]).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(c.admin_token, AdminTokenSource::DataDir);
        assert_eq!(c.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\nlog_level = \"debug\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            listen: Some("127.0.0.1:9100".parse().unwrap()),
            ..Default::default()
        };
        let c = resolve(&args, &[]).unwrap();
        assert_eq!(c.listen.port(), 9100);
        assert_eq!(c.log_level, "debug");
    }

    #[test]
    fn unknown_file_keys_and_env_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.toml");
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        let args = ServeArgs {
            config: Some(path),
            ..Default::default()
        };
        assert!(matches!(
            resolve(&args, &[]),
            Err(ConfigError::ParseFile { .. })
        ));
        let c = resolve(&ServeArgs::default(), &env(&[("DRIFTLOCK_LISTN", "x")])).unwrap();
        assert_eq!(c.warnings.len(), 1);
    }

    #[test]
    fn admin_token_from_env_or_private_file_only() {
        let token = "t".repeat(30);
        let c = resolve(
            &ServeArgs::default(),
            &env(&[("DRIFTLOCK_ADMIN_TOKEN", &token)]),
        )
        .unwrap();
        assert_eq!(c.admin_token, AdminTokenSource::Configured(token.clone()));
        assert!(resolve(
            &ServeArgs::default(),
            &env(&[("DRIFTLOCK_ADMIN_TOKEN", "short")])
        )
        .is_err());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, format!("{token}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let file_env = env(&[("DRIFTLOCK_ADMIN_TOKEN_FILE", path.to_str().unwrap())]);
        assert!(matches!(
            resolve(&ServeArgs::default(), &file_env),
            Err(ConfigError::SecretFile { .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = resolve(&ServeArgs::default(), &file_env).unwrap();
        assert_eq!(c.admin_token, AdminTokenSource::Configured(token));
    }
}
