//! Demo data for `backend seed`. Idempotent: an item is created only if no item with that name exists, and its
//! reviews only together with it, so running seed twice (or alongside the API) never duplicates anything.

use anyhow::Context;
use sqlx::PgPool;

struct DemoItem {
    name: &'static str,
    description: &'static str,
    reviews: &'static [(&'static str, i16, &'static str)],
}

const DEMO: &[DemoItem] = &[
    DemoItem {
        name: "Cast-iron kettle",
        description: "Heavy, slow to boil, keeps tea warm for an hour.",
        reviews: &[
            ("ada", 5, "Worth the weight."),
            ("linus", 4, "Handle gets hot."),
            ("grace", 5, ""),
        ],
    },
    DemoItem {
        name: "Folding bicycle",
        description: "Fits under a desk; 16-inch wheels.",
        reviews: &[
            ("ken", 3, "Fine for short rides."),
            ("barbara", 4, "Folds in ten seconds."),
        ],
    },
    DemoItem {
        name: "Mechanical keyboard",
        description: "Tactile switches, detachable cable.",
        reviews: &[("dennis", 5, "Loud, in a good way.")],
    },
    DemoItem {
        name: "Paper notebook",
        description: "A5, dotted, 120 g/m² paper.",
        reviews: &[],
    },
];

/// Returns how many items were created.
pub async fn run(pool: &PgPool) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await?;
    // Two seeds at once would both see "not there yet"; a transaction-scoped lock makes them take turns.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('drydock-seed'))")
        .execute(&mut *tx)
        .await?;
    let mut created = 0;
    for demo in DEMO {
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO items (name, description) SELECT $1, $2 \
             WHERE NOT EXISTS (SELECT 1 FROM items WHERE name = $1) RETURNING id",
        )
        .bind(demo.name)
        .bind(demo.description)
        .fetch_optional(&mut *tx)
        .await
        .with_context(|| format!("seeding item {:?}", demo.name))?;
        let Some(id) = id else { continue };
        created += 1;
        for (author, rating, body) in demo.reviews {
            sqlx::query("INSERT INTO reviews (item_id, author, rating, body) VALUES ($1, $2, $3, $4)")
                .bind(id)
                .bind(author)
                .bind(rating)
                .bind(body)
                .execute(&mut *tx)
                .await?;
        }
        // Keep the summary columns consistent with what was inserted, exactly as the API does.
        sqlx::query(
            "UPDATE items SET review_count = s.n, rating_sum = s.total \
             FROM (SELECT count(*) AS n, coalesce(sum(rating), 0) AS total FROM reviews WHERE item_id = $1) s \
             WHERE items.id = $1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(created)
}
