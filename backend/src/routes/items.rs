//! `/api/v1/items`: list (cached per query), get (cached per item), create.

use axum::{
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::{
    db,
    error::AppError,
    extract::{ApiJson, ApiQuery, IdPath},
    routes::{raw_json, to_json},
    state::AppState,
    validation::{NewItemRequest, RawListQuery},
};

pub async fn list(State(state): State<AppState>, ApiQuery(raw): ApiQuery<RawListQuery>) -> Result<Response, AppError> {
    let query = raw.item_query()?;
    let field = query.cache_field();
    let miss = match state.cache.get_list(&field).await {
        Ok(body) => return Ok(raw_json(StatusCode::OK, body)),
        Err(miss) => miss,
    };
    let page = db::items::list(&state.db, &query).await?;
    let body = to_json(&page)?;
    state.cache.put_list(&field, &body, miss).await;
    Ok(raw_json(StatusCode::OK, body))
}

pub async fn get(State(state): State<AppState>, IdPath(id): IdPath) -> Result<Response, AppError> {
    let miss = match state.cache.get_item(id).await {
        Ok(body) => return Ok(raw_json(StatusCode::OK, body)),
        Err(miss) => miss,
    };
    let item = db::items::get(&state.db, id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("item {id} not found")))?;
    let body = to_json(&item)?;
    state.cache.put_item(id, &body, miss).await;
    Ok(raw_json(StatusCode::OK, body))
}

pub async fn create(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<NewItemRequest>,
) -> Result<Response, AppError> {
    let new = request.validate()?;
    let item = db::items::create(&state.db, &new).await?;
    state.cache.invalidate_lists().await;
    tracing::info!(item_id = item.id, "item created");
    let location = format!("/api/v1/items/{}", item.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], axum::Json(item)).into_response())
}
