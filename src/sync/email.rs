//! The email worker: delivers due rows of the email outbox over SMTP (mail-send: STARTTLS,
//! implicit TLS or plain; AUTH; timeouts), or, with no SMTP configured, into a maildir-style
//! folder under the data directory. Failures are retried with exponential backoff and jitter
//! until the configured number of attempts, then the row is `failed` with its last error.
//! Each message carries a Message-ID made from the row's dedupe key, so a receiver can drop a
//! copy sent twice (a crash between the server's OK and our commit is the only way).

use std::{path::PathBuf, time::Duration};

use mail_send::{mail_builder::MessageBuilder, smtp::message::Message, SmtpClientBuilder};

use super::{
    retry,
    templates::{self, Links},
    Worker,
};
use crate::{
    clock,
    store::{Attempt, OutboxEmail, Store},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// No TLS (only for a relay on localhost or a trusted network).
    None,
    /// Plain connection upgraded with STARTTLS (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Implicit,
}

#[derive(Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub username: Option<String>,
    pub password: Option<String>,
    pub timeout: Duration,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[derive(Debug, Clone)]
pub enum Transport {
    Smtp(SmtpSettings),
    /// Messages are written as files into `DIR/new` (written to `DIR/tmp` first).
    Maildir(PathBuf),
}

#[derive(Debug, Clone)]
pub struct EmailSettings {
    pub transport: Transport,
    pub from: String,
    pub max_attempts: u32,
    pub retry_base_ms: u64,
    pub retry_cap_ms: u64,
    pub poll: Duration,
    pub public_url: String,
}

pub struct EmailWorker {
    store: Store,
    settings: EmailSettings,
}

/// Rows handled per pass.
const BATCH: usize = 16;

impl EmailWorker {
    pub fn new(store: Store, settings: EmailSettings) -> Self {
        EmailWorker { store, settings }
    }

    fn build(&self, row: &OutboxEmail, to: &str) -> Result<Vec<u8>, String> {
        let links = Links {
            public_url: &self.settings.public_url,
        };
        let rendered = templates::render(&row.kind, &row.params, &links);
        let message_id: String = row
            .dedupe_key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '.'
                }
            })
            .collect();
        MessageBuilder::new()
            .from(("Driftlock", self.settings.from.as_str()))
            .to(to)
            .subject(rendered.subject)
            .message_id(format!("{message_id}.{}@driftlock", row.id))
            .text_body(rendered.text)
            .html_body(rendered.html)
            .write_to_vec()
            .map_err(|e| format!("cannot build the message: {e}"))
    }

    async fn deliver(&self, row: &OutboxEmail, to: &str, bytes: Vec<u8>) -> Result<(), String> {
        match &self.settings.transport {
            Transport::Maildir(dir) => write_maildir(dir, row.id, &bytes),
            Transport::Smtp(smtp) => {
                let message = Message::new(self.settings.from.as_str(), [to], bytes);
                let mut builder = SmtpClientBuilder::new(smtp.host.clone(), smtp.port)
                    .map_err(|e| format!("SMTP host {}: {e}", smtp.host))?
                    .implicit_tls(smtp.tls == TlsMode::Implicit)
                    .timeout(smtp.timeout);
                if let (Some(user), Some(pass)) = (&smtp.username, &smtp.password) {
                    builder = builder.credentials((user.clone(), pass.clone()));
                }
                let result = match smtp.tls {
                    TlsMode::None => match builder.connect_plain().await {
                        Ok(mut client) => client.send(message).await,
                        Err(e) => Err(e),
                    },
                    TlsMode::Starttls | TlsMode::Implicit => match builder.connect().await {
                        Ok(mut client) => client.send(message).await,
                        Err(e) => Err(e),
                    },
                };
                result
                    .map(|_| ())
                    .map_err(|e| format!("SMTP {}:{}: {e}", smtp.host, smtp.port))
            }
        }
    }

    async fn handle(&self, row: OutboxEmail) -> Result<(), String> {
        let now = clock::now_ms();
        let attempt = match row.to.as_deref() {
            None => Attempt::GiveUp {
                error: "no recipient".into(),
            },
            Some(to) => match self.build(&row, to) {
                Err(e) => Attempt::GiveUp { error: e },
                Ok(bytes) => match self.deliver(&row, to, bytes).await {
                    Ok(()) => Attempt::Delivered,
                    Err(error) => {
                        let jitter: f64 = rand::random();
                        match retry::next_attempt_at(
                            now,
                            row.attempts + 1,
                            self.settings.max_attempts,
                            self.settings.retry_base_ms,
                            self.settings.retry_cap_ms,
                            jitter,
                        ) {
                            Some(at_ms) => Attempt::RetryAt { error, at_ms },
                            None => Attempt::GiveUp { error },
                        }
                    }
                },
            },
        };
        match &attempt {
            Attempt::Delivered => {
                tracing::info!(email = row.id, kind = %row.kind, "email delivered")
            }
            Attempt::RetryAt { error, at_ms } => {
                tracing::warn!(email = row.id, attempt = row.attempts + 1, retry_in_ms = at_ms - now, %error, "email not delivered; will retry")
            }
            Attempt::GiveUp { error } => {
                tracing::error!(email = row.id, attempts = row.attempts + 1, %error, "email failed for good")
            }
        }
        let store = self.store.clone();
        let id = row.id;
        tokio::task::spawn_blocking(move || {
            store.record_email_attempt(id, attempt, clock::now_ms())
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        Ok(())
    }
}

fn write_maildir(dir: &std::path::Path, id: u64, bytes: &[u8]) -> Result<(), String> {
    let tmp = dir.join("tmp");
    let new = dir.join("new");
    std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::create_dir_all(&new).map_err(|e| format!("{}: {e}", new.display()))?;
    let name = format!("{}.{id}.driftlock.eml", clock::now_ms());
    let staged = tmp.join(&name);
    std::fs::write(&staged, bytes).map_err(|e| format!("{}: {e}", staged.display()))?;
    std::fs::rename(&staged, new.join(&name)).map_err(|e| format!("{}: {e}", new.display()))
}

impl Worker for EmailWorker {
    fn name(&self) -> &'static str {
        "email"
    }

    fn idle_interval(&self) -> Duration {
        self.settings.poll
    }

    async fn run_once(&self) -> Result<usize, String> {
        let store = self.store.clone();
        let now = clock::now_ms();
        let due = tokio::task::spawn_blocking(move || store.due_emails(now, BATCH))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let mut delivered_or_settled = 0;
        let mut last_error = None;
        for row in due {
            match self.handle(row).await {
                Ok(()) => delivered_or_settled += 1,
                Err(e) => last_error = Some(e),
            }
        }
        match last_error {
            Some(e) if delivered_or_settled == 0 => Err(e),
            _ => Ok(delivered_or_settled),
        }
    }
}
