use crate::helpers::{closed_port, json, spawn_app_with, spawn_app_without_postgres};

#[tokio::test]
async fn redis_down_means_degraded_but_reads_and_writes_work() {
    let app = spawn_app_with(|s| {
        s.redis.port = closed_port();
        s.rate_limit.writes_per_window = 1;
    })
    .await;
    let resp = app.get("/health/ready").await;
    assert_eq!(resp.status(), 200);
    let body = json(resp).await;
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["checks"]["redis"]["status"], "down");
    assert_eq!(body["checks"]["postgres"]["status"], "up");

    // Writes keep working (the rate limit, which lives in Redis, fails open: limit 1, yet two writes pass).
    let id = app.create_item("No cache").await["id"].as_i64().unwrap();
    app.create_item("Still no cache").await;
    assert_eq!(app.create_review(id, 5).await.status(), 201);
    // Reads come from PostgreSQL, fresh every time.
    let item = json(app.get(&format!("/api/v1/items/{id}")).await).await;
    assert_eq!(item["review_count"], 1);
    let list = json(app.get("/api/v1/items").await).await;
    assert_eq!(list["total"], 2);
    assert_eq!(
        json(app.get(&format!("/api/v1/items/{id}/reviews")).await).await["total"],
        1
    );
    assert_eq!(app.get("/health").await.status(), 200);
}

#[tokio::test]
async fn postgres_down_means_unavailable() {
    let app = spawn_app_without_postgres().await;
    // The process is up: liveness is fine.
    assert_eq!(app.get("/health").await.status(), 200);
    assert_eq!(app.get("/health/live").await.status(), 200);
    let resp = app.get("/health/ready").await;
    assert_eq!(resp.status(), 503);
    let body = json(resp).await;
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["checks"]["postgres"]["status"], "down");
    assert_eq!(body["checks"]["redis"]["status"], "up");
    // Requests needing the database fail cleanly with a JSON 503, not a hang or a 500.
    let resp = app.get("/api/v1/items/1").await;
    assert_eq!(resp.status(), 503);
    assert_eq!(json(resp).await["error"]["code"], "service_unavailable");
}
