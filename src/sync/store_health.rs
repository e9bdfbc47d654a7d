//! The store-health worker: after a storage failure (disk full, a failing disk) it proves the
//! store takes a durable write again, reopening the database when redb asks for it, so the
//! server recovers by itself once space returns. `/readyz` answers 503 until then. When no
//! failure is outstanding a pass does nothing (no probe writes on a healthy server).

use std::time::Duration;

use super::Worker;
use crate::{clock, store::Store};

pub struct StoreHealthWorker {
    pub store: Store,
}

impl Worker for StoreHealthWorker {
    fn name(&self) -> &'static str {
        "store-health"
    }

    fn idle_interval(&self) -> Duration {
        Duration::from_secs(1)
    }

    async fn run_once(&self) -> Result<usize, String> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.recover(clock::now_ms())).await {
            Ok(Ok(true)) => {
                tracing::info!("the store takes writes again");
                // Zero items: the next probe waits the idle interval.
                Ok(0)
            }
            Ok(Ok(false)) => Ok(0),
            Ok(Err(e)) => Err(format!("the store still cannot take writes: {e}")),
            Err(e) => Err(format!("store probe task failed: {e}")),
        }
    }
}
