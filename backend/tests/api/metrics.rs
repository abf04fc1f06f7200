use crate::helpers::spawn_app;

#[tokio::test]
async fn metrics_are_served_on_their_own_port() {
    let app = spawn_app().await;
    app.near_cache_live().await;
    let id = app.create_item("Measured").await["id"].as_i64().unwrap();
    app.get(&format!("/api/v1/items/{id}")).await;
    app.get(&format!("/api/v1/items/{id}")).await;
    let resp = app
        .client
        .get(format!("{}/metrics", app.metrics_address))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    for needle in [
        "http_requests_total{",
        r#"route="/api/v1/items/{id}""#,
        r#"method="POST""#,
        "http_request_duration_seconds_bucket{",
        r#"db_pool_connections{state="in_use"}"#,
        r#"db_pool_connections{state="idle"}"#,
        r#"cache_requests_total{cache="item",result="hit"}"#,
        r#"cache_requests_total{cache="item",result="miss"}"#,
        // Live (awaited above), and the second read of the item came from this replica's memory.
        "cache_invalidation_subscribed 1",
        r#"near_cache_hits_total{cache="item"}"#,
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    // Raw ids never become labels.
    assert!(
        !text.contains(&format!("/api/v1/items/{id}\"")),
        "raw path leaked into labels"
    );

    // And the public port does not serve them.
    assert_eq!(app.get("/metrics").await.status(), 404);
}
