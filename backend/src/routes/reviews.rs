//! `/api/v1/items/{id}/reviews`: list an item's reviews (newest first), create a review.

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};

use crate::{
    db,
    error::AppError,
    extract::{ApiJson, ApiQuery, IdPath},
    state::AppState,
    validation::{NewReviewRequest, RawListQuery},
};

pub async fn list(
    State(state): State<AppState>,
    IdPath(item_id): IdPath,
    ApiQuery(raw): ApiQuery<RawListQuery>,
) -> Result<Response, AppError> {
    let page = raw.page()?;
    let reviews = db::reviews::list_for_item(&state.db, item_id, page)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("item {item_id} not found")))?;
    Ok(Json(reviews).into_response())
}

pub async fn create(
    State(state): State<AppState>,
    IdPath(item_id): IdPath,
    ApiJson(request): ApiJson<NewReviewRequest>,
) -> Result<Response, AppError> {
    let new = request.validate()?;
    let review = db::reviews::create(&state.db, item_id, &new)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("item {item_id} not found")))?;
    // After the commit: the summary in the cache is now stale. (Before the commit a concurrent read could refill
    // the cache with the old summary.)
    state.cache.invalidate_item(item_id).await;
    tracing::info!(item_id, review_id = review.id, "review created");
    Ok((StatusCode::CREATED, Json(review)).into_response())
}
