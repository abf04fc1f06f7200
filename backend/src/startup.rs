//! Builds the application (state, routers, listeners) and runs it until a shutdown signal.
//! Listeners are bound in `build` so callers (tests) can use port 0 and read the real ports before serving.

use std::{
    net::SocketAddr,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use anyhow::Context;
use axum::{
    Router,
    body::Body,
    extract::DefaultBodyLimit,
    http::{Request, Response, StatusCode},
    middleware,
    routing::get,
};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    timeout::TimeoutLayer,
    trace::TraceLayer,
};

use crate::{
    access_log::{AccessLogger, PROBE_SPAN},
    cache::Cache,
    config::Settings,
    db, metrics, rate_limit,
    readiness::ReadinessCache,
    redis_conn::RedisConn,
    routes, shutdown,
    state::AppState,
};

pub struct Application {
    api_listener: TcpListener,
    metrics_listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Binds both ports and prepares connections lazily: nothing here waits for PostgreSQL or Redis.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let api_addr = format!("{}:{}", settings.api_host, settings.api_port);
        let api_listener = TcpListener::bind(&api_addr)
            .await
            .with_context(|| format!("cannot listen on {api_addr} (API_PORT)"))?;
        let metrics_addr = format!("{}:{}", settings.api_host, settings.metrics_port);
        let metrics_listener = TcpListener::bind(&metrics_addr)
            .await
            .with_context(|| format!("cannot listen on {metrics_addr} (METRICS_PORT)"))?;
        let db = db::pool::lazy_pool(&settings.database);
        let redis = RedisConn::new(&settings.redis).context("invalid Redis settings")?;
        let cache = Cache::new(
            redis.clone(),
            settings.cache.item_ttl,
            settings.cache.list_ttl,
            settings.cache.local_ttl,
        );
        let state = AppState {
            settings: Arc::new(settings),
            db,
            redis,
            cache,
            readiness: Arc::new(ReadinessCache::default()),
            shutting_down: Arc::new(AtomicBool::new(false)),
        };
        Ok(Self {
            api_listener,
            metrics_listener,
            state,
        })
    }

    pub fn api_port(&self) -> u16 {
        self.api_listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn metrics_port(&self) -> u16 {
        self.metrics_listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `signal` completes, then stops accepting, lets in-flight requests finish (each is bounded by
    /// the request timeout, so draining is bounded too) and returns.
    pub async fn run_until_stopped(self, signal: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let flag = self.state.shutting_down.clone();
        tokio::spawn(async move {
            shutdown::flag_on(signal, flag).await;
            let _ = stop_tx.send(true);
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };

        let api_addr = self.api_listener.local_addr()?;
        let metrics_addr = self.metrics_listener.local_addr()?;
        let handle = metrics::recorder();
        let metrics_app = metrics::router(handle, self.state.db.clone(), self.state.cache.clone());
        let metrics_server =
            axum::serve(self.metrics_listener, metrics_app).with_graceful_shutdown(stopped(stop_rx.clone()));

        let app = router(self.state.clone());
        tracing::info!(
            api = %api_addr,
            metrics = %metrics_addr,
            "listening"
        );
        let api_server = axum::serve(
            self.api_listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(stopped(stop_rx));

        let (api, metrics) = tokio::join!(api_server, metrics_server);
        api.context("API server failed")?;
        metrics.context("metrics server failed")?;
        self.state.db.close().await;
        tracing::info!("shut down cleanly");
        Ok(())
    }
}

/// The public router with its middleware stack.
pub fn router(state: AppState) -> Router {
    let settings = state.settings.clone();
    let access_log = Arc::new(AccessLogger::new(settings.access_log));
    let api = Router::new()
        .route("/api/v1/items", get(routes::items::list).post(routes::items::create))
        .route("/api/v1/items/{id}", get(routes::items::get))
        .route(
            "/api/v1/items/{id}/reviews",
            get(routes::reviews::list).post(routes::reviews::create),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), rate_limit::limit_writes));

    Router::new()
        .route("/health", get(routes::health::health))
        .route("/health/live", get(routes::health::live))
        .route("/health/ready", get(routes::health::ready))
        .merge(api)
        // `route_layer` sees the matched route template, which is what keeps metric labels bounded.
        .route_layer(middleware::from_fn(metrics::track))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(
            // Outermost first: the request id exists before the span is made, so every log line carries it.
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(make_span).on_response(
                    move |response: &Response<Body>, latency: Duration, span: &tracing::Span| {
                        access_log.on_response(response.status(), latency, span);
                    },
                ))
                .layer(PropagateRequestIdLayer::x_request_id())
                // Bounds every request, and therefore how long graceful shutdown can take.
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    settings.request_timeout,
                ))
                .layer(DefaultBodyLimit::max(settings.body_limit_bytes)),
        )
        .with_state(state)
}

/// The request's span (method, path, request id on every line it logs); a health probe's is named
/// [`PROBE_SPAN`], which tells the access log a probe from a request.
fn make_span(request: &Request<Body>) -> tracing::Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let path = request.uri().path();
    if path == "/health" || path.starts_with("/health/") {
        tracing::info_span!(PROBE_SPAN, method = %request.method(), path = %path, request_id = %request_id)
    } else {
        tracing::info_span!("request", method = %request.method(), path = %path, request_id = %request_id)
    }
}
