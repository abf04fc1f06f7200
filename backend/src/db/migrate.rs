//! Schema migrations, embedded in the binary so the runtime image needs no migration files.
//! sqlx takes a PostgreSQL advisory lock while migrating, so two `migrate` runs at once are safe.

use std::time::Duration;

use anyhow::Context;
use sqlx::{PgPool, migrate::Migrator, postgres::PgPoolOptions};

use crate::config::DatabaseSettings;

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Connects eagerly, retrying for a while: the one-shot `migrate` service may start just before PostgreSQL
/// accepts connections even with a healthcheck (e.g. right after the init scripts restart the server).
pub async fn connect_with_retry(settings: &DatabaseSettings, attempts: u32) -> anyhow::Result<PgPool> {
    let mut last_error = None;
    for attempt in 1..=attempts {
        match PgPoolOptions::new()
            .max_connections(2)
            .connect_with(settings.connect_options())
            .await
        {
            Ok(pool) => return Ok(pool),
            Err(e) => {
                tracing::warn!(attempt, attempts, error = %e, "cannot connect to PostgreSQL yet");
                last_error = Some(e);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    Err(last_error.expect("at least one attempt")).with_context(|| {
        format!(
            "cannot connect to PostgreSQL at {}:{} as {}",
            settings.host, settings.port, settings.user
        )
    })
}

pub async fn run(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR.run(pool).await.context("applying migrations failed")?;
    Ok(())
}
