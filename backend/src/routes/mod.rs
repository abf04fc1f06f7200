//! HTTP routes. `health` is for orchestrators and probes; `items` and `reviews` are the public JSON API
//! (everything under `/api/v1`).

pub mod health;
pub mod items;
pub mod reviews;

use axum::response::{IntoResponse, Response};

use crate::error::AppError;

/// A JSON body that is already serialised (e.g. straight from the cache).
pub fn raw_json(status: axum::http::StatusCode, body: impl Into<axum::body::Body>) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.into(),
    )
        .into_response()
}

pub fn to_json<T: serde::Serialize>(value: &T) -> Result<String, AppError> {
    serde_json::to_string(value).map_err(|e| AppError::Internal(e.into()))
}

/// Unknown paths get the contract's JSON error too (and count in metrics, which only see matched routes).
pub async fn not_found(method: axum::http::Method) -> AppError {
    metrics::counter!("http_requests_total", "method" => method.to_string(), "route" => "unmatched", "status" => "404")
        .increment(1);
    AppError::NotFound("no such endpoint".to_owned())
}

pub async fn method_not_allowed() -> Response {
    let mut response = AppError::BadRequest("method not allowed on this endpoint".to_owned()).into_response();
    *response.status_mut() = axum::http::StatusCode::METHOD_NOT_ALLOWED;
    response
}
