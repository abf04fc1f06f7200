//! Items and their review summary.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgExecutor, PgPool, Row, postgres::PgRow};

use crate::validation::{ItemListQuery, NewItem, SortField, SortOrder};

/// The contract's `Item`. Deserialize is for the cache round trip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub review_count: i64,
    pub average_rating: Option<f64>,
}

/// Read by column name, like sqlx's derive would (the derive needs sqlx's proc-macro crate: see `db::migrate`).
impl<'r> sqlx::FromRow<'r, PgRow> for Item {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            created_at: row.try_get("created_at")?,
            review_count: row.try_get("review_count")?,
            average_rating: row.try_get("average_rating")?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemPage {
    pub items: Vec<Item>,
    pub page: u32,
    pub per_page: u32,
    pub total: i64,
}

/// Rounded in SQL so every reader (API, cache, psql) sees the same two-decimal value.
const ITEM_COLUMNS: &str = "id, name, description, created_at, review_count, \
     CASE WHEN review_count = 0 THEN NULL \
          ELSE round(rating_sum::numeric / review_count, 2)::float8 END AS average_rating";

fn order_by(sort: SortField, order: SortOrder) -> String {
    let dir = order.as_str();
    // Built only from enums, never from request text, so this is not an injection point.
    match sort {
        SortField::CreatedAt => format!("created_at {dir}, id {dir}"),
        SortField::Name => format!("name {dir}, id {dir}"),
        SortField::Reviews => format!("review_count {dir}, id {dir}"),
        // Unrated items sort last in both directions: "no rating" is not "worst rating".
        SortField::Rating => {
            format!("(rating_sum::float8 / NULLIF(review_count, 0)) {dir} NULLS LAST, id {dir}")
        }
    }
}

pub async fn list(pool: &PgPool, query: &ItemListQuery) -> sqlx::Result<ItemPage> {
    let sql = format!(
        "SELECT {ITEM_COLUMNS} FROM items ORDER BY {} LIMIT $1 OFFSET $2",
        order_by(query.sort, query.order)
    );
    let items = sqlx::query_as::<_, Item>(&sql)
        .bind(query.page.limit())
        .bind(query.page.offset())
        .fetch_all(pool)
        .await?;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM items").fetch_one(pool).await?;
    Ok(ItemPage {
        items,
        page: query.page.page,
        per_page: query.page.per_page,
        total,
    })
}

pub async fn get<'e>(executor: impl PgExecutor<'e>, id: i64) -> sqlx::Result<Option<Item>> {
    let sql = format!("SELECT {ITEM_COLUMNS} FROM items WHERE id = $1");
    sqlx::query_as::<_, Item>(&sql).bind(id).fetch_optional(executor).await
}

pub async fn create<'e>(executor: impl PgExecutor<'e>, item: &NewItem) -> sqlx::Result<Item> {
    let sql = format!("INSERT INTO items (name, description) VALUES ($1, $2) RETURNING {ITEM_COLUMNS}");
    sqlx::query_as::<_, Item>(&sql)
        .bind(&item.name)
        .bind(&item.description)
        .fetch_one(executor)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_serialises_to_contract_shape() {
        let item = Item {
            id: 1,
            name: "Kettle".into(),
            description: String::new(),
            created_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            review_count: 0,
            average_rating: None,
        };
        let json = serde_json::to_value(&item).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"id":1,"name":"Kettle","description":"","created_at":"2023-11-14T22:13:20Z",
                               "review_count":0,"average_rating":null})
        );
    }

    #[test]
    fn rating_sort_puts_unrated_last() {
        assert!(order_by(SortField::Rating, SortOrder::Asc).contains("asc NULLS LAST"));
        assert_eq!(order_by(SortField::Name, SortOrder::Desc), "name desc, id desc");
    }
}
