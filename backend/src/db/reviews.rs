//! Reviews. Creating one also updates the item's summary, in one transaction.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Row, postgres::PgRow};

use crate::validation::{NewReview, Page};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Review {
    pub id: i64,
    pub item_id: i64,
    pub author: String,
    pub rating: i16,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

/// Read by column name, like sqlx's derive would (the derive needs sqlx's proc-macro crate: see `db::migrate`).
impl<'r> sqlx::FromRow<'r, PgRow> for Review {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            item_id: row.try_get("item_id")?,
            author: row.try_get("author")?,
            rating: row.try_get("rating")?,
            body: row.try_get("body")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReviewPage {
    pub reviews: Vec<Review>,
    pub page: u32,
    pub per_page: u32,
    pub total: i64,
}

const REVIEW_COLUMNS: &str = "id, item_id, author, rating, body, created_at";

/// `None` when the item does not exist (so the handler can answer 404 rather than an empty page).
pub async fn list_for_item(pool: &PgPool, item_id: i64, page: Page) -> sqlx::Result<Option<ReviewPage>> {
    // The item's review_count is the total: it is maintained transactionally with the inserts.
    let total: Option<i64> = sqlx::query_scalar("SELECT review_count FROM items WHERE id = $1")
        .bind(item_id)
        .fetch_optional(pool)
        .await?;
    let Some(total) = total else { return Ok(None) };
    let sql = format!(
        "SELECT {REVIEW_COLUMNS} FROM reviews WHERE item_id = $1 \
         ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
    );
    let reviews = sqlx::query_as::<_, Review>(&sql)
        .bind(item_id)
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(pool)
        .await?;
    Ok(Some(ReviewPage {
        reviews,
        page: page.page,
        per_page: page.per_page,
        total,
    }))
}

/// Inserts the review and updates the item summary atomically. `None` when the item does not exist.
///
/// The UPDATE comes first: it takes the item's row lock (serialising concurrent reviews of one item) and tells
/// us whether the item exists. If the INSERT then fails, the transaction is rolled back when `tx` is dropped,
/// so the summary never counts a review that was not stored.
pub async fn create(pool: &PgPool, item_id: i64, review: &NewReview) -> sqlx::Result<Option<Review>> {
    let mut tx = pool.begin().await?;
    let updated =
        sqlx::query("UPDATE items SET review_count = review_count + 1, rating_sum = rating_sum + $2 WHERE id = $1")
            .bind(item_id)
            .bind(i64::from(review.rating))
            .execute(&mut *tx)
            .await?;
    if updated.rows_affected() == 0 {
        return Ok(None);
    }
    let sql = format!(
        "INSERT INTO reviews (item_id, author, rating, body) VALUES ($1, $2, $3, $4) RETURNING {REVIEW_COLUMNS}"
    );
    let created = sqlx::query_as::<_, Review>(&sql)
        .bind(item_id)
        .bind(&review.author)
        .bind(review.rating)
        .bind(&review.body)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(created))
}
