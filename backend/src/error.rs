//! The one error type handlers return, and its mapping to the contract's JSON error body:
//! `{"error":{"code","message","fields"?}}`. Internal details are logged, never sent to clients.

use std::collections::BTreeMap;

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

/// Field name -> human message. BTreeMap keeps the output order stable (tests and humans diff it).
pub type FieldErrors = BTreeMap<&'static str, String>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("validation failed")]
    Validation(FieldErrors),
    /// Body had the right syntax but the wrong shape (wrong type, not an object).
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    NotFound(String),
    #[error("request body is too large")]
    PayloadTooLarge,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("too many writes; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("database unavailable")]
    DatabaseUnavailable(#[source] sqlx::Error),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Validation(_) | AppError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::DatabaseUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AppError::BadRequest(_) => "bad_request",
            AppError::Validation(_) | AppError::Unprocessable(_) => "validation_failed",
            AppError::NotFound(_) => "not_found",
            AppError::PayloadTooLarge => "payload_too_large",
            AppError::UnsupportedMediaType(_) => "unsupported_media_type",
            AppError::RateLimited { .. } => "rate_limited",
            AppError::DatabaseUnavailable(_) => "service_unavailable",
            AppError::Internal(_) => "internal_error",
        }
    }

    fn message(&self) -> String {
        match self {
            AppError::Validation(_) => "the request has invalid fields".to_owned(),
            AppError::DatabaseUnavailable(_) => "the database is unavailable; retry later".to_owned(),
            other => other.to_string(),
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            // Pool exhaustion or an unreachable server is a temporary condition: 503 tells clients (and the
            // proxy) to retry, where a 500 would suggest a bug.
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                AppError::DatabaseUnavailable(e)
            }
            other => AppError::Internal(other.into()),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<&'a FieldErrors>,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            // `{:#}` prints the whole cause chain; this is the only place the details go.
            let cause = match &self {
                AppError::DatabaseUnavailable(e) => format!("{e}"),
                AppError::Internal(e) => format!("{e:#}"),
                _ => String::new(),
            };
            tracing::error!(code = self.code(), error = %cause, "request failed");
        }
        let fields = match &self {
            AppError::Validation(fields) => Some(fields),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.message(),
                fields,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let AppError::RateLimited { retry_after_secs } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;

    async fn body_json(err: AppError) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
        let resp = err.into_response();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = to_bytes(resp.into_body(), 64 * 1024).await.unwrap();
        (status, headers, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn validation_error_lists_fields() {
        let mut fields = FieldErrors::new();
        fields.insert("rating", "must be between 1 and 5".into());
        let (status, _, body) = body_json(AppError::Validation(fields)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["error"]["code"], "validation_failed");
        assert_eq!(body["error"]["fields"]["rating"], "must be between 1 and 5");
    }

    #[tokio::test]
    async fn non_validation_errors_have_no_fields() {
        let (status, _, body) = body_json(AppError::NotFound("item 7 not found".into())).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "not_found", "message": "item 7 not found"}})
        );
    }

    #[tokio::test]
    async fn rate_limited_sets_retry_after() {
        let (status, headers, body) = body_json(AppError::RateLimited { retry_after_secs: 17 }).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers[header::RETRY_AFTER], "17");
        assert_eq!(body["error"]["code"], "rate_limited");
    }

    #[tokio::test]
    async fn internal_errors_hide_details() {
        let (status, _, body) = body_json(AppError::Internal(anyhow::anyhow!("password=hunter2 leaked"))).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"]["message"], "internal error");
    }

    #[test]
    fn pool_timeouts_map_to_503() {
        assert_eq!(
            AppError::from(sqlx::Error::PoolTimedOut).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            AppError::from(sqlx::Error::RowNotFound).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
