//! Per-client rate limit for writes: a fixed window counter in Redis (`INCR` + `EXPIRE NX` + `TTL`, atomic).
//!
//! Fixed windows allow a burst of 2x at a window edge; for abuse protection on a review board that is fine and
//! it costs one round trip. If Redis is down the limit is not enforced ("fail open"): the issue requires writes
//! to keep working, and the edge proxy has its own per-IP limit.

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, Method},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{error::AppError, state::AppState};

/// Who a request counts against. Behind the edge proxy every peer is the proxy, so the proxy's `X-Real-IP`
/// (then the first `X-Forwarded-For` hop) is used; the API port is never published in production, so clients
/// cannot forge these by talking to the API directly.
pub fn client_id(headers: &HeaderMap, peer: Option<SocketAddr>) -> String {
    // Capped: the value becomes part of a Redis key, and an address is never longer than this.
    const MAX_LEN: usize = 64;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    if let Some(ip) = header("x-real-ip") {
        return ip.chars().take(MAX_LEN).collect();
    }
    if let Some(first) = header("x-forwarded-for").and_then(|v| v.split(',').next()) {
        return first.trim().chars().take(MAX_LEN).collect();
    }
    peer.map(|p| p.ip().to_string()).unwrap_or_else(|| "unknown".to_owned())
}

/// Middleware: only writes are limited; reads are cheap (cached) and must stay available.
pub async fn limit_writes(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let settings = &state.settings.rate_limit;
    if request.method() == Method::GET || request.method() == Method::HEAD || settings.writes_per_window == 0 {
        return next.run(request).await;
    }
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let client = client_id(request.headers(), peer);
    let window = settings.window.as_secs().max(1);
    let key = state.redis.key(&format!("ratelimit:writes:{client}"));
    let mut pipe = redis::pipe();
    pipe.atomic()
        .cmd("INCR")
        .arg(&key)
        .cmd("EXPIRE")
        .arg(&key)
        .arg(window)
        .arg("NX")
        .ignore()
        .cmd("TTL")
        .arg(&key);
    match state.redis.query_pipe::<(u64, i64)>(pipe).await {
        Ok((count, ttl)) if count > u64::from(settings.writes_per_window) => {
            metrics::counter!("rate_limited_total").increment(1);
            // TTL can be -1 for a key that lost its expiry (should not happen with EXPIRE NX); never say 0.
            let retry_after_secs = if ttl > 0 { ttl as u64 } else { window };
            AppError::RateLimited { retry_after_secs }.into_response()
        }
        Ok(_) => next.run(request).await,
        Err(e) => {
            tracing::debug!(error = %e, "rate limit not enforced: redis unavailable");
            next.run(request).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_id_prefers_proxy_headers() {
        let peer: SocketAddr = "10.0.0.2:5555".parse().unwrap();
        let mut h = HeaderMap::new();
        assert_eq!(client_id(&h, Some(peer)), "10.0.0.2");
        h.insert("x-forwarded-for", "203.0.113.9, 10.0.0.2".parse().unwrap());
        assert_eq!(client_id(&h, Some(peer)), "203.0.113.9");
        h.insert("x-real-ip", "198.51.100.7".parse().unwrap());
        assert_eq!(client_id(&h, Some(peer)), "198.51.100.7");
        assert_eq!(client_id(&HeaderMap::new(), None), "unknown");
    }
}
