use crate::helpers::{json, spawn_app};

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
