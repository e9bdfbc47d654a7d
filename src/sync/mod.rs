//! Background workers that deliver what the store's outboxes hold. Every worker implements
//! `Worker` and runs under `spawn`, which records its status (busy or idle, runs, items,
//! errors, last error) for admins and `/readyz`, and stops it on shutdown.

pub mod destination;
pub mod dunning;
pub mod email;
pub mod retry;
pub mod store_health;
pub mod stripe;
pub mod stripe_requests;
pub mod templates;
pub mod webhooks;

use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde::Serialize;
use tokio::sync::watch;

use crate::clock;

/// One kind of background work, run in passes.
pub trait Worker: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Pause between passes that found nothing to do.
    fn idle_interval(&self) -> Duration;
    /// Does what is due now; returns how many items it handled.
    fn run_once(&self) -> impl Future<Output = Result<usize, String>> + Send;
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WorkerStatus {
    pub name: &'static str,
    /// `idle`, `busy` or `stopped`.
    pub state: &'static str,
    pub passes: u64,
    pub items: u64,
    pub errors: u64,
    pub last_error: Option<String>,
    pub last_pass_at_ms: Option<i64>,
}

/// The status of every worker, shared with the API.
#[derive(Default)]
pub struct Workers {
    statuses: Mutex<Vec<WorkerStatus>>,
}

impl Workers {
    pub fn snapshot(&self) -> Vec<WorkerStatus> {
        self.statuses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether every registered worker is still running.
    pub fn all_running(&self) -> bool {
        self.snapshot().iter().all(|w| w.state != "stopped")
    }

    fn update(&self, name: &str, f: impl FnOnce(&mut WorkerStatus)) {
        let mut statuses = self.statuses.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = statuses.iter_mut().find(|s| s.name == name) {
            f(s);
        }
    }
}

/// Runs `worker` until `shutdown` turns true. A pass that handled items is followed at once
/// by another; an idle or failed pass waits `idle_interval`.
pub fn spawn<W: Worker>(
    worker: W,
    workers: Arc<Workers>,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let name = worker.name();
    workers
        .statuses
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(WorkerStatus {
            name,
            state: "idle",
            passes: 0,
            items: 0,
            errors: 0,
            last_error: None,
            last_pass_at_ms: None,
        });
    tokio::spawn(async move {
        tracing::info!(worker = name, "worker started");
        while !*shutdown.borrow() {
            workers.update(name, |s| s.state = "busy");
            let result = worker.run_once().await;
            let now = clock::now_ms();
            let wait = match &result {
                Ok(n) if *n > 0 => Duration::ZERO,
                _ => worker.idle_interval(),
            };
            workers.update(name, |s| {
                s.state = "idle";
                s.passes += 1;
                s.last_pass_at_ms = Some(now);
                match result {
                    Ok(n) => s.items += n as u64,
                    Err(e) => {
                        tracing::warn!(worker = name, error = %e, "worker pass failed");
                        s.errors += 1;
                        s.last_error = Some(e);
                    }
                }
            });
            if !wait.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
        workers.update(name, |s| s.state = "stopped");
        tracing::info!(worker = name, "worker stopped");
    })
}
