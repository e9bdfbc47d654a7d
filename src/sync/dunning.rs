//! The dunning timer: moves accounts that did not pay along grace, past due and suspended as
//! the configured days pass, with a billing action and a mail for each step.

use std::time::Duration;

use super::Worker;
use crate::{clock, core::billing::dunning::DunningPolicy, store::Store};

pub struct DunningWorker {
    pub store: Store,
    pub policy: DunningPolicy,
    pub every: Duration,
}

impl Worker for DunningWorker {
    fn name(&self) -> &'static str {
        "dunning"
    }

    fn idle_interval(&self) -> Duration {
        self.every
    }

    async fn run_once(&self) -> Result<usize, String> {
        let (store, policy) = (self.store.clone(), self.policy);
        let changed =
            tokio::task::spawn_blocking(move || store.advance_dunning(&policy, clock::now_ms()))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
        for (org, state) in &changed {
            tracing::info!(org = %org, state = state.as_str(), "dunning moved on");
        }
        // Changes are not more work: the next look is after the interval.
        Ok(0)
    }
}
