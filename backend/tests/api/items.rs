use serde_json::json;

use crate::helpers::{json, spawn_app};

#[tokio::test]
async fn create_then_get_an_item() {
    let app = spawn_app().await;
    let resp = app
        .post_json(
            "/api/v1/items",
            &json!({"name": "  Kettle  ", "description": "Boils water"}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let created = json(resp).await;
    assert_eq!(created["name"], "Kettle", "names are trimmed");
    assert_eq!(created["review_count"], 0);
    assert!(created["average_rating"].is_null());
    let id = created["id"].as_i64().unwrap();
    assert_eq!(location, format!("/api/v1/items/{id}"));
    // RFC 3339 timestamp.
    let ts = created["created_at"].as_str().unwrap();
    assert!(ts.contains('T') && (ts.ends_with('Z') || ts.contains('+')), "{ts}");

    let resp = app.get(&format!("/api/v1/items/{id}")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(json(resp).await, created);
}

#[tokio::test]
async fn list_paginates_and_sorts() {
    let app = spawn_app().await;
    let b = app.create_item("Banana").await["id"].as_i64().unwrap();
    let a = app.create_item("Apple").await["id"].as_i64().unwrap();
    let c = app.create_item("Cherry").await["id"].as_i64().unwrap();
    assert_eq!(app.create_review(c, 5).await.status(), 201);
    assert_eq!(app.create_review(c, 4).await.status(), 201);
    assert_eq!(app.create_review(b, 2).await.status(), 201);

    let body = json(app.get("/api/v1/items?per_page=2").await).await;
    assert_eq!(
        (body["page"].as_i64(), body["per_page"].as_i64(), body["total"].as_i64()),
        (Some(1), Some(2), Some(3))
    );
    let ids: Vec<i64> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [c, a], "default: newest first");

    let body = json(app.get("/api/v1/items?per_page=2&page=2").await).await;
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
    let body = json(app.get("/api/v1/items?page=5").await).await;
    assert_eq!(
        body["items"].as_array().unwrap().len(),
        0,
        "past the end is an empty page, not an error"
    );
    assert_eq!(body["total"], 3);

    let ids = |body: serde_json::Value| -> Vec<i64> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(
        ids(json(app.get("/api/v1/items?sort=reviews&order=desc").await).await),
        [c, b, a]
    );
    assert_eq!(
        ids(json(app.get("/api/v1/items?sort=rating&order=desc").await).await),
        [c, b, a],
        "unrated last"
    );
    assert_eq!(
        ids(json(app.get("/api/v1/items?sort=rating&order=asc").await).await),
        [b, c, a],
        "unrated last"
    );
    assert_eq!(
        ids(json(app.get("/api/v1/items?sort=created_at&order=asc").await).await),
        [b, a, c]
    );
    let by_name = json(app.get("/api/v1/items?sort=name").await).await;
    assert_eq!(by_name["items"][0]["name"], "Apple", "name sorts ascending by default");
    let cherry = json(app.get(&format!("/api/v1/items/{c}")).await).await;
    assert_eq!(
        (cherry["review_count"].as_i64(), cherry["average_rating"].as_f64()),
        (Some(2), Some(4.5))
    );
}

#[tokio::test]
async fn bad_pagination_is_400() {
    let app = spawn_app().await;
    for query in [
        "page=0",
        "page=-1",
        "page=abc",
        "per_page=0",
        "per_page=101",
        "sort=price",
        "order=sideways",
    ] {
        let resp = app.get(&format!("/api/v1/items?{query}")).await;
        assert_eq!(resp.status(), 400, "{query}");
        let body = json(resp).await;
        assert_eq!(body["error"]["code"], "bad_request", "{query}");
        assert!(body["error"]["message"].as_str().unwrap().len() > 10, "{query}");
    }
}

#[tokio::test]
async fn unknown_and_invalid_ids() {
    let app = spawn_app().await;
    let resp = app.get("/api/v1/items/999999").await;
    assert_eq!(resp.status(), 404);
    assert_eq!(json(resp).await["error"]["code"], "not_found");
    for bad in ["abc", "0", "-4", "1.5"] {
        let resp = app.get(&format!("/api/v1/items/{bad}")).await;
        assert_eq!(resp.status(), 400, "{bad}");
        assert_eq!(json(resp).await["error"]["code"], "bad_request");
    }
}

#[tokio::test]
async fn invalid_items_are_rejected_with_field_messages() {
    let app = spawn_app().await;
    let resp = app.post_json("/api/v1/items", &json!({"description": "no name"})).await;
    assert_eq!(resp.status(), 422);
    let body = json(resp).await;
    assert_eq!(body["error"]["code"], "validation_failed");
    assert_eq!(body["error"]["fields"]["name"], "is required");

    let resp = app.post_json("/api/v1/items", &json!({"name": "x".repeat(201)})).await;
    assert_eq!(
        json(resp).await["error"]["fields"]["name"],
        "must be at most 200 characters"
    );

    let resp = app.post_json("/api/v1/items", &json!({"name": 42})).await;
    assert_eq!(resp.status(), 422, "wrong type");
    assert_eq!(json(resp).await["error"]["code"], "validation_failed");

    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM items")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 0, "nothing was written");
}

#[tokio::test]
async fn malformed_json_is_400_and_wrong_content_type_is_415() {
    let app = spawn_app().await;
    let resp = app.post_raw("/api/v1/items", "application/json", "{\"name\": ").await;
    assert_eq!(resp.status(), 400);
    let body = json(resp).await;
    assert_eq!(body["error"]["code"], "bad_request");
    assert!(body["error"]["message"].as_str().unwrap().starts_with("malformed JSON"));

    let resp = app.post_raw("/api/v1/items", "text/plain", "name=x").await;
    assert_eq!(resp.status(), 415);
    assert_eq!(json(resp).await["error"]["code"], "unsupported_media_type");
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let app = spawn_app().await;
    let big = json!({"name": "big", "description": "x".repeat(100 * 1024)}).to_string();
    let resp = app.post_raw("/api/v1/items", "application/json", big).await;
    assert_eq!(resp.status(), 413);
    assert_eq!(json(resp).await["error"]["code"], "payload_too_large");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM items")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 0);
}
