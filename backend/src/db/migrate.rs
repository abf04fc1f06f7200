//! Schema migrations, embedded in the binary so the runtime image needs no migration files.
//! sqlx takes a PostgreSQL advisory lock while migrating, so two `migrate` runs at once are safe.
//!
//! The files are embedded with `include_str!` rather than `sqlx::migrate!`: the macro needs sqlx's
//! proc-macro crate, which compiles sqlx, its PostgreSQL driver and tokio a second time for the host
//! (about 150 crates on every fresh image build). A test keeps this list equal to `migrations/`.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use anyhow::Context;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::{PgPool, postgres::PgPoolOptions};

use crate::config::DatabaseSettings;

/// Every file of `backend/migrations/`, in version order: (file name, SQL).
pub const MIGRATIONS: &[(&str, &str)] = &[(
    "20261122000001_create_items_and_reviews.sql",
    include_str!("../../migrations/20261122000001_create_items_and_reviews.sql"),
)];

/// The embedded files as sqlx migrations, read the way sqlx reads a migrations directory: `<version>_<words>.sql`
/// (a simple migration; description = the words), `-- no-transaction` on the first line to run outside one.
#[derive(Debug, Clone, Copy)]
pub struct Embedded;

impl Embedded {
    pub fn migrations(self) -> Vec<Migration> {
        MIGRATIONS
            .iter()
            .map(|(file, sql)| {
                let stem = file.strip_suffix(".sql").expect("migration files end in .sql");
                let (version, words) = stem.split_once('_').expect("migration files are <version>_<name>.sql");
                Migration::new(
                    version.parse().expect("a migration version is a number"),
                    Cow::Owned(words.replace('_', " ")),
                    MigrationType::Simple,
                    Cow::Borrowed(sql),
                    sql.starts_with("-- no-transaction"),
                )
            })
            .collect()
    }
}

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send>> {
        Box::pin(async move { Ok(self.migrations()) })
    }
}

pub async fn migrator() -> anyhow::Result<Migrator> {
    Migrator::new(Embedded).await.context("reading the embedded migrations")
}

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
    migrator()
        .await?
        .run(pool)
        .await
        .context("applying migrations failed")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new file in `migrations/` that is not in `MIGRATIONS` (or an edited one) fails here, not in production.
    #[test]
    fn the_embedded_list_is_the_migrations_directory() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut on_disk: Vec<(String, String)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(&path).unwrap())
            })
            .collect();
        on_disk.sort();
        let embedded: Vec<(String, String)> = MIGRATIONS.iter().map(|(f, s)| (f.to_string(), s.to_string())).collect();
        assert_eq!(embedded, on_disk);
        let migrations = Embedded.migrations();
        assert_eq!(migrations[0].version, 20261122000001);
        assert_eq!(migrations[0].description, "create items and reviews");
        assert!(migrations.windows(2).all(|w| w[0].version < w[1].version));
        assert!(!migrations[0].no_tx);
    }
}
