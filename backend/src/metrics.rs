//! Prometheus metrics: a recorder, the per-request middleware, and the `/metrics` router that is served on its own
//! port (METRICS_PORT) so the public proxy never exposes it.

use std::{sync::OnceLock, time::Instant};

use axum::{
    Router,
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sqlx::PgPool;

use crate::cache::Cache;

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the global recorder once per process (integration tests start many apps in one process).
pub fn recorder() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("http_request_duration_seconds".to_owned()),
                    LATENCY_BUCKETS,
                )
                .expect("bucket list is non-empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder can only be present if an embedding program installed one; then ours just
            // renders nothing, which is better than refusing to start.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(
        "http_requests_total",
        "HTTP requests by matched route, method and status"
    );
    metrics::describe_histogram!(
        "http_request_duration_seconds",
        metrics::Unit::Seconds,
        "HTTP request latency"
    );
    metrics::describe_gauge!(
        "db_pool_connections",
        "PostgreSQL pool connections by state (in_use, idle, max)"
    );
    metrics::describe_counter!(
        "cache_requests_total",
        "Redis cache lookups by cache and result (hit, miss, error)"
    );
    metrics::describe_counter!(
        "near_cache_hits_total",
        "Cache hits served from this replica's memory (also counted as hits in cache_requests_total)"
    );
    metrics::describe_gauge!(
        "cache_invalidation_subscribed",
        "1 while this replica is subscribed to cache invalidations (its near cache is in use), else 0"
    );
    metrics::describe_counter!("rate_limited_total", "Writes rejected by the rate limit");
}

/// Route middleware. Labels use the matched route template (`/api/v1/items/{id}`), never the raw path, so the
/// number of series stays bounded whatever clients request.
pub async fn track(request: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(start.elapsed().as_secs_f64());
    response
}

#[derive(Clone)]
struct MetricsState {
    handle: PrometheusHandle,
    db: PgPool,
    cache: Cache,
}

/// Pool and subscription gauges are sampled at scrape time: exact when Prometheus looks, and no background task to manage.
async fn render(State(state): State<MetricsState>) -> impl IntoResponse {
    let size = state.db.size();
    let idle = state.db.num_idle() as u32;
    metrics::gauge!("db_pool_connections", "state" => "in_use").set(f64::from(size.saturating_sub(idle)));
    metrics::gauge!("db_pool_connections", "state" => "idle").set(f64::from(idle));
    metrics::gauge!("db_pool_connections", "state" => "max").set(f64::from(state.db.options().get_max_connections()));
    metrics::gauge!("cache_invalidation_subscribed").set(if state.cache.near_is_live() { 1.0 } else { 0.0 });
    // Histograms are kept in summaries that need periodic upkeep; doing it per scrape is enough.
    state.handle.run_upkeep();
    (
        [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.handle.render(),
    )
}

pub fn router(handle: PrometheusHandle, db: PgPool, cache: Cache) -> Router {
    Router::new()
        .route("/metrics", get(render))
        .with_state(MetricsState { handle, db, cache })
}
