//! The access log: which responses get a line, and the line. A line per request is what a busy replica can
//! least afford (each one is a write to stdout that the container runtime then carries and stores: on these
//! machines that cost more CPU than serving the request), so successful requests can be sampled while errors
//! and slow requests are always logged. The metrics count every request whatever the log keeps.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use axum::http::StatusCode;

use crate::config::{AccessLog, AccessLogSettings};

/// The span name that marks a health probe (`startup::make_span`).
pub const PROBE_SPAN: &str = "probe";

/// Decides and writes access-log lines (one per router, shared by its requests).
#[derive(Debug)]
pub struct AccessLogger {
    settings: AccessLogSettings,
    /// Successful, fast requests seen so far: every `sample`-th one is logged.
    successes: AtomicU64,
}

impl AccessLogger {
    pub fn new(settings: AccessLogSettings) -> AccessLogger {
        AccessLogger {
            settings,
            successes: AtomicU64::new(0),
        }
    }

    /// After a response: one line (in the request's span, so it carries the request id) when the policy keeps
    /// it. `sample` in the line says how many requests it stands for.
    pub fn on_response(&self, status: StatusCode, latency: Duration, span: &tracing::Span) {
        let probe = span.metadata().is_some_and(|m| m.name() == PROBE_SPAN);
        if let Some(sample) = self.logged(probe, status, latency) {
            tracing::info!(
                parent: span,
                status = status.as_u16(),
                latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
                sample,
                "finished processing request"
            );
        }
    }

    /// `Some(requests the line stands for)` when the response gets a line. Never a successful health probe
    /// (orchestrators send one every few seconds per replica; a failing one logs its own warning).
    fn logged(&self, probe: bool, status: StatusCode, latency: Duration) -> Option<u64> {
        let error = status.is_client_error() || status.is_server_error();
        let slow = latency >= self.settings.slow;
        match self.settings.mode {
            AccessLog::Off => None,
            _ if probe && !error => None,
            _ if error || slow => Some(1),
            AccessLog::Errors => None,
            AccessLog::All => {
                let n = self.successes.fetch_add(1, Ordering::Relaxed);
                (n % self.settings.sample == 0).then_some(self.settings.sample)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logger(mode: AccessLog, sample: u64) -> AccessLogger {
        AccessLogger::new(AccessLogSettings {
            mode,
            sample,
            slow: Duration::from_millis(500),
        })
    }

    const FAST: Duration = Duration::from_millis(2);
    const SLOW: Duration = Duration::from_millis(700);

    #[test]
    fn successful_probes_are_never_logged_and_the_mode_decides_the_rest() {
        let all = logger(AccessLog::All, 1);
        assert_eq!(all.logged(true, StatusCode::OK, FAST), None);
        assert_eq!(all.logged(true, StatusCode::OK, SLOW), None);
        assert_eq!(all.logged(true, StatusCode::SERVICE_UNAVAILABLE, FAST), Some(1));
        assert_eq!(all.logged(false, StatusCode::OK, FAST), Some(1));
        let errors = logger(AccessLog::Errors, 1);
        assert_eq!(errors.logged(false, StatusCode::OK, FAST), None);
        assert_eq!(
            errors.logged(false, StatusCode::OK, SLOW),
            Some(1),
            "slow requests are logged"
        );
        assert_eq!(errors.logged(false, StatusCode::NOT_FOUND, FAST), Some(1));
        assert_eq!(errors.logged(false, StatusCode::INTERNAL_SERVER_ERROR, FAST), Some(1));
        let off = logger(AccessLog::Off, 1);
        assert_eq!(off.logged(false, StatusCode::INTERNAL_SERVER_ERROR, SLOW), None);
    }

    #[test]
    fn sampling_keeps_one_success_in_n_and_every_error_and_slow_request() {
        let sampled = logger(AccessLog::All, 100);
        let kept: Vec<Option<u64>> = (0..300).map(|_| sampled.logged(false, StatusCode::OK, FAST)).collect();
        assert_eq!(kept.iter().filter(|k| k.is_some()).count(), 3);
        assert_eq!(kept[0], Some(100), "the line says how many requests it stands for");
        for _ in 0..5 {
            assert_eq!(sampled.logged(false, StatusCode::BAD_GATEWAY, FAST), Some(1));
            assert_eq!(sampled.logged(false, StatusCode::OK, SLOW), Some(1));
        }
        // Errors and slow requests do not advance the sample: the next success is the 301st.
        assert_eq!(sampled.logged(false, StatusCode::OK, FAST), Some(100));
    }
}
