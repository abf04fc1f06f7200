use std::time::Duration;

use crate::helpers::spawn_app;

/// SIGTERM must let a request that is already running finish (here: one blocked on a table lock), then stop.
#[tokio::test]
async fn shutdown_finishes_in_flight_requests() {
    let mut app = spawn_app().await;
    app.create_item("Slow").await;
    let mut lock = app.db.begin().await.unwrap();
    sqlx::query("LOCK TABLE items IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();

    let client = app.client.clone();
    // A list query nobody asked for yet: a cache miss, so it must read the locked table.
    let url = app.url("/api/v1/items?per_page=3");
    let request = tokio::spawn(async move { client.get(url).send().await.map(|r| r.status()) });
    // Signal only once the request is really in flight, i.e. its query waits on the lock. A fixed sleep here
    // raced on a slow machine: a request that has not reached the server yet is refused, not finished.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&app.db)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(!request.is_finished(), "the request ended before it waited on the lock");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the request did not reach the locked table within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.signal_shutdown();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!request.is_finished(), "the request is still waiting on the lock");
    assert!(!app.server.as_ref().unwrap().is_finished(), "the server waits for it");

    lock.rollback().await.unwrap();
    assert_eq!(
        request.await.unwrap().unwrap(),
        200,
        "the in-flight request completed normally"
    );
    let server = app.server.take().unwrap();
    let stopped = tokio::time::timeout(Duration::from_secs(5), server).await;
    assert!(matches!(stopped, Ok(Ok(Ok(())))), "server stopped cleanly: {stopped:?}");
    // New connections are refused once it has stopped.
    assert!(app.client.get(app.url("/health")).send().await.is_err());
}
