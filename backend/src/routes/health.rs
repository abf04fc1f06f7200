//! `/health` and `/health/live` say only "the process answers" (a dependency outage must never make an
//! orchestrator restart healthy API processes). `/health/ready` says whether this instance can serve traffic:
//! PostgreSQL is required (503 without it), Redis is optional (200 "degraded": reads come from PostgreSQL).

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use serde::Serialize;

use crate::readiness::{Check, Checks, Readiness};
use crate::state::AppState;

/// Per-check bound: a probe must answer well within the Docker healthcheck timeout.
const CHECK_TIMEOUT: Duration = Duration::from_millis(1000);

#[derive(Serialize)]
struct Status {
    status: &'static str,
}

pub async fn health() -> impl IntoResponse {
    Json(Status { status: "ok" })
}

pub async fn live() -> impl IntoResponse {
    Json(Status { status: "ok" })
}

async fn timed<E: std::fmt::Display>(
    name: &'static str,
    required: bool,
    fut: impl Future<Output = Result<(), E>>,
) -> Check {
    let start = Instant::now();
    let ok = match tokio::time::timeout(CHECK_TIMEOUT, fut).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::warn!(dependency = name, error = %e, "readiness check failed");
            false
        }
        Err(_) => {
            tracing::warn!(
                dependency = name,
                timeout_ms = CHECK_TIMEOUT.as_millis() as u64,
                "readiness check timed out"
            );
            false
        }
    };
    // One decimal is plenty for humans and keeps the JSON short.
    let latency_ms = (start.elapsed().as_secs_f64() * 10_000.0).round() / 10.0;
    Check {
        status: if ok { "up" } else { "down" },
        latency_ms,
        required,
    }
}

pub fn overall(checks: &Checks, shutting_down: bool) -> (StatusCode, &'static str) {
    if shutting_down || checks.postgres.status != "up" {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    } else if checks.redis.status != "up" {
        (StatusCode::OK, "degraded")
    } else {
        (StatusCode::OK, "ok")
    }
}

async fn run_checks(state: &AppState) -> Checks {
    let db = state.db.clone();
    let postgres = timed("postgres", true, async move {
        sqlx::query_scalar::<_, i32>("SELECT 1")
            .fetch_one(&db)
            .await
            .map(|_| ())
    });
    let redis = timed("redis", false, state.redis.ping());
    // Concurrently: the slowest check, not the sum, bounds the probe.
    let (postgres, redis) = tokio::join!(postgres, redis);
    Checks { postgres, redis }
}

pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let shutting_down = state.shutting_down.load(Ordering::SeqCst);
    let max_age = state.settings.readiness_cache;
    let checks = state.readiness.get_or_check(max_age, run_checks(&state)).await;
    let (code, status) = overall(&checks, shutting_down);
    (code, Json(Readiness { status, checks }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(up: bool, required: bool) -> Check {
        Check {
            status: if up { "up" } else { "down" },
            latency_ms: 0.1,
            required,
        }
    }

    #[test]
    fn readiness_rules() {
        let c = |pg, rd| Checks {
            postgres: check(pg, true),
            redis: check(rd, false),
        };
        assert_eq!(overall(&c(true, true), false), (StatusCode::OK, "ok"));
        assert_eq!(overall(&c(true, false), false), (StatusCode::OK, "degraded"));
        assert_eq!(
            overall(&c(false, true), false),
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        );
        assert_eq!(
            overall(&c(false, false), false),
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        );
        assert_eq!(
            overall(&c(true, true), true),
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        );
    }

    #[test]
    fn readiness_json_shape() {
        let r = Readiness {
            status: "ok",
            checks: Checks {
                postgres: check(true, true),
                redis: check(true, false),
            },
        };
        let v = serde_json::to_value(r).unwrap();
        assert_eq!(v["checks"]["postgres"]["required"], true);
        assert_eq!(v["checks"]["redis"]["required"], false);
        assert_eq!(v["checks"]["redis"]["status"], "up");
        assert!(v["checks"]["postgres"]["latency_ms"].is_f64());
    }
}
