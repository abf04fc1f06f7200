use crate::helpers::{json, spawn_app};

#[tokio::test]
async fn health_and_live_are_ok() {
    let app = spawn_app().await;
    for path in ["/health", "/health/live"] {
        let resp = app.get(path).await;
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(json(resp).await, serde_json::json!({"status": "ok"}), "{path}");
    }
}

#[tokio::test]
async fn ready_reports_each_dependency() {
    let app = spawn_app().await;
    let resp = app.get("/health/ready").await;
    assert_eq!(resp.status(), 200);
    let body = json(resp).await;
    assert_eq!(body["status"], "ok");
    assert_eq!(body["checks"]["postgres"]["status"], "up");
    assert_eq!(body["checks"]["postgres"]["required"], true);
    assert_eq!(body["checks"]["redis"]["status"], "up");
    assert_eq!(body["checks"]["redis"]["required"], false);
    assert!(body["checks"]["postgres"]["latency_ms"].as_f64().is_some());
}

#[tokio::test]
async fn the_healthcheck_client_agrees_with_the_server() {
    let app = spawn_app().await;
    let port: u16 = app.address.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(backend::healthcheck::get_status(port, "/health").await.unwrap(), 200);
    assert_eq!(
        backend::healthcheck::get_status(port, "/health/ready").await.unwrap(),
        200
    );
}

#[tokio::test]
async fn request_ids_are_generated_and_propagated() {
    let app = spawn_app().await;
    let resp = app.get("/health").await;
    assert!(!resp.headers()["x-request-id"].is_empty());
    let resp = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "abc-123");
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let app = spawn_app().await;
    let resp = app.get("/api/v1/nothing-here").await;
    assert_eq!(resp.status(), 404);
    assert_eq!(json(resp).await["error"]["code"], "not_found");
    let resp = app.client.delete(app.url("/api/v1/items")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert!(json(resp).await["error"]["message"].is_string());
}
