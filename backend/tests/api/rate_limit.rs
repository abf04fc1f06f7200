use crate::helpers::{json, spawn_app_with};

#[tokio::test]
async fn writes_over_the_limit_get_429_with_retry_after() {
    let app = spawn_app_with(|s| {
        s.rate_limit.writes_per_window = 3;
        s.rate_limit.window = std::time::Duration::from_secs(60);
    })
    .await;
    for i in 0..3 {
        app.create_item(&format!("item {i}")).await;
    }
    let resp = app
        .post_json("/api/v1/items", &serde_json::json!({"name": "one too many"}))
        .await;
    assert_eq!(resp.status(), 429);
    let retry_after: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(json(resp).await["error"]["code"], "rate_limited");

    // Reads are not limited, and the rejected write was not performed.
    let list = json(app.get("/api/v1/items").await).await;
    assert_eq!(list["total"], 3);

    // The limit is per client: another address (as the proxy reports it) still may write.
    let resp = app
        .client
        .post(app.url("/api/v1/items"))
        .header("x-real-ip", "198.51.100.20")
        .json(&serde_json::json!({"name": "other client"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
}
