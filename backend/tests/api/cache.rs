use std::time::{Duration, Instant};

use crate::helpers::{json, redis_cmd, spawn_app, spawn_app_with};

/// Proves reads come from the cache (a change made behind the API's back is not seen), and that a review
/// invalidates both the item and the lists.
#[tokio::test]
async fn item_and_list_are_cached_and_invalidated_by_reviews() {
    let app = spawn_app().await;
    let id = app.create_item("Original").await["id"].as_i64().unwrap();
    let item_path = format!("/api/v1/items/{id}");

    assert_eq!(app.get(&item_path).await.status(), 200);
    assert_eq!(app.get("/api/v1/items").await.status(), 200);
    assert!(
        app.redis_exists(&format!("item:{id}")).await,
        "item cached after first read"
    );
    assert!(app.redis_exists("items:list").await, "list cached after first read");

    sqlx::query("UPDATE items SET name = 'Changed behind the cache' WHERE id = $1")
        .bind(id)
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(
        json(app.get(&item_path).await).await["name"],
        "Original",
        "served from cache"
    );
    assert_eq!(
        json(app.get("/api/v1/items").await).await["items"][0]["name"],
        "Original"
    );

    assert_eq!(app.create_review(id, 4).await.status(), 201);
    assert!(
        !app.redis_exists(&format!("item:{id}")).await,
        "review invalidates the item"
    );
    assert!(!app.redis_exists("items:list").await, "review invalidates the lists");

    let item = json(app.get(&item_path).await).await;
    assert_eq!(item["name"], "Changed behind the cache");
    assert_eq!(
        (item["review_count"].as_i64(), item["average_rating"].as_f64()),
        (Some(1), Some(4.0))
    );
    let list = json(app.get("/api/v1/items").await).await;
    assert_eq!(list["items"][0]["review_count"], 1);
}

#[tokio::test]
async fn new_items_invalidate_lists() {
    let app = spawn_app().await;
    app.create_item("First").await;
    assert_eq!(json(app.get("/api/v1/items").await).await["total"], 1);
    assert!(app.redis_exists("items:list").await);
    app.create_item("Second").await;
    assert!(!app.redis_exists("items:list").await);
    let list = json(app.get("/api/v1/items").await).await;
    assert_eq!(list["total"], 2);
    assert_eq!(list["items"][0]["name"], "Second");
}

#[tokio::test]
async fn list_cache_entries_are_per_query() {
    let app = spawn_app().await;
    for name in ["A", "B", "C"] {
        app.create_item(name).await;
    }
    let one = json(app.get("/api/v1/items?per_page=1").await).await;
    let two = json(app.get("/api/v1/items?per_page=2").await).await;
    assert_eq!(one["items"].as_array().unwrap().len(), 1);
    assert_eq!(two["items"].as_array().unwrap().len(), 2);
    let again = json(app.get("/api/v1/items?per_page=1").await).await;
    assert_eq!(again, one);
}

/// Two replicas on one database and one Redis: a replica serves list pages from its own memory (even when the
/// row and the Redis entry change behind its back), and a write on the other replica clears that copy through
/// the invalidation channel. The near cache's TTL is 60 s here, so only the invalidation can explain the update.
#[tokio::test]
async fn a_write_on_one_replica_clears_the_near_cache_of_another() {
    let a = spawn_app_with(|s| s.cache.local_ttl = Duration::from_secs(60)).await;
    let first = a.create_item("First").await["id"].as_i64().unwrap();
    // Started after that write, so no invalidation of it is still on its way to this replica.
    let b = a.spawn_replica().await;
    a.near_cache_live().await;
    b.near_cache_live().await;
    assert_eq!(json(b.get("/api/v1/items").await).await["total"], 1);

    sqlx::query("UPDATE items SET name = 'Renamed behind the cache' WHERE id = $1")
        .bind(first)
        .execute(&a.db)
        .await
        .unwrap();
    let _: i64 = a
        .redis
        .query(redis_cmd("DEL", &a.redis.key("items:list")))
        .await
        .expect("redis DEL");
    assert_eq!(
        json(b.get("/api/v1/items").await).await["items"][0]["name"],
        "First",
        "served from the replica's near cache"
    );

    a.create_item("Second").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let list = loop {
        let list = json(b.get("/api/v1/items").await).await;
        if list["total"] == 2 || Instant::now() > deadline {
            break list;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        list["total"], 2,
        "the other replica's write reached this replica's near cache"
    );
    assert_eq!(list["items"][0]["name"], "Second");
    assert_eq!(list["items"][1]["name"], "Renamed behind the cache");
}

/// The replica that writes clears its own copy before it answers: read-your-writes on one replica, at once.
#[tokio::test]
async fn the_writing_replica_sees_its_own_write_at_once() {
    let app = spawn_app_with(|s| s.cache.local_ttl = Duration::from_secs(60)).await;
    app.near_cache_live().await;
    let id = app.create_item("Before").await["id"].as_i64().unwrap();
    let item_path = format!("/api/v1/items/{id}");
    assert_eq!(json(app.get(&item_path).await).await["review_count"], 0);
    assert_eq!(app.create_review(id, 5).await.status(), 201);
    assert_eq!(json(app.get(&item_path).await).await["review_count"], 1);
}
