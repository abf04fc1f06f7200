//! What readiness is: the result of each dependency check, the overall answer, and the short-lived cache
//! that makes a storm of probes cost one check per interval. `routes::health` serves it; `AppState` holds
//! the cache.

use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Check {
    pub status: &'static str,
    pub latency_ms: f64,
    pub required: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Checks {
    pub postgres: Check,
    pub redis: Check,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Readiness {
    pub status: &'static str,
    pub checks: Checks,
}

/// The last readiness result and when it was taken, so a storm of probes costs one check per interval.
#[derive(Default)]
pub struct ReadinessCache {
    last: Mutex<Option<(Instant, Checks)>>,
}

impl ReadinessCache {
    /// The cached checks when younger than `max_age`, else the result of `check` (then cached). Holding the
    /// lock while checking also collapses concurrent probes into one check.
    pub async fn get_or_check(&self, max_age: Duration, check: impl Future<Output = Checks>) -> Checks {
        let mut last = self.last.lock().await;
        match *last {
            Some((at, checks)) if at.elapsed() < max_age => checks,
            _ => {
                let checks = check.await;
                *last = Some((Instant::now(), checks));
                checks
            }
        }
    }
}
