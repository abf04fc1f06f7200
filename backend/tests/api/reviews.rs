use serde_json::json;

use crate::helpers::{json, spawn_app};

#[tokio::test]
async fn create_and_list_reviews() {
    let app = spawn_app().await;
    let id = app.create_item("Lamp").await["id"].as_i64().unwrap();
    let resp = app
        .post_json(
            &format!("/api/v1/items/{id}/reviews"),
            &json!({"author": "ann", "rating": 4, "body": "Bright."}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let review = json(resp).await;
    assert_eq!(
        (review["item_id"].as_i64(), review["rating"].as_i64()),
        (Some(id), Some(4))
    );
    assert_eq!(review["author"], "ann");
    assert!(review["created_at"].is_string() && review["id"].is_i64());
    assert_eq!(app.create_review(id, 1).await.status(), 201);
    assert_eq!(app.create_review(id, 2).await.status(), 201);

    let body = json(app.get(&format!("/api/v1/items/{id}/reviews?per_page=2")).await).await;
    assert_eq!(body["total"], 3);
    assert_eq!(body["per_page"], 2);
    let ratings: Vec<i64> = body["reviews"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rating"].as_i64().unwrap())
        .collect();
    assert_eq!(ratings, [2, 1], "newest first");
    let body = json(app.get(&format!("/api/v1/items/{id}/reviews?page=2&per_page=2")).await).await;
    assert_eq!(body["reviews"][0]["author"], "ann");

    let item = json(app.get(&format!("/api/v1/items/{id}")).await).await;
    assert_eq!(item["review_count"], 3);
    assert_eq!(item["average_rating"], 2.33);
}

#[tokio::test]
async fn reviews_of_unknown_items_are_404() {
    let app = spawn_app().await;
    let resp = app.get("/api/v1/items/424242/reviews").await;
    assert_eq!(resp.status(), 404);
    let resp = app.create_review(424242, 3).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(json(resp).await["error"]["code"], "not_found");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM reviews")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 0);
    assert_eq!(app.get("/api/v1/items/1/reviews?per_page=500").await.status(), 400);
}

#[tokio::test]
async fn rating_out_of_range_is_422_with_a_field_message() {
    let app = spawn_app().await;
    let id = app.create_item("Chair").await["id"].as_i64().unwrap();
    for rating in [0, 6, -1, 100] {
        let resp = app.create_review(id, rating).await;
        assert_eq!(resp.status(), 422, "{rating}");
        let body = json(resp).await;
        assert_eq!(body["error"]["code"], "validation_failed");
        assert_eq!(body["error"]["fields"]["rating"], "must be between 1 and 5");
    }
    let resp = app
        .post_json(&format!("/api/v1/items/{id}/reviews"), &json!({"rating": 3}))
        .await;
    assert_eq!(json(resp).await["error"]["fields"]["author"], "is required");
    let resp = app
        .post_json(
            &format!("/api/v1/items/{id}/reviews"),
            &json!({"author": "a", "rating": 4.5}),
        )
        .await;
    assert_eq!(resp.status(), 422, "fractional rating");
    let item = json(app.get(&format!("/api/v1/items/{id}")).await).await;
    assert_eq!(item["review_count"], 0);
}

/// A review insert that fails after the summary update must leave nothing behind.
#[tokio::test]
async fn a_failed_review_insert_rolls_back_the_summary() {
    let app = spawn_app().await;
    let id = app.create_item("Desk").await["id"].as_i64().unwrap();
    sqlx::raw_sql(
        "CREATE FUNCTION fail_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'boom'; END $$;
         CREATE TRIGGER fail_reviews BEFORE INSERT ON reviews FOR EACH ROW EXECUTE FUNCTION fail_insert();",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let resp = app.create_review(id, 5).await;
    assert_eq!(resp.status(), 500);
    let body = json(resp).await;
    assert_eq!(body["error"]["code"], "internal_error");
    assert!(
        !body.to_string().contains("boom"),
        "internal details are not leaked: {body}"
    );
    let (count, sum): (i64, i64) = sqlx::query_as("SELECT review_count, rating_sum FROM items WHERE id = $1")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!((count, sum), (0, 0));
}

#[tokio::test]
async fn concurrent_reviews_keep_the_summary_exact() {
    let app = spawn_app().await;
    let id = app.create_item("Popular").await["id"].as_i64().unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let client = app.client.clone();
        let url = app.url(&format!("/api/v1/items/{id}/reviews"));
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({"author": "a", "rating": 1 + i % 5}))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 201);
    }
    let item = json(app.get(&format!("/api/v1/items/{id}")).await).await;
    assert_eq!(item["review_count"], 20);
    assert_eq!(item["average_rating"], 3.0);
}
