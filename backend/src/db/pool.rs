//! The connection pool. It is created lazily so the API process starts (and answers `/health`) while
//! PostgreSQL is still booting or down; readiness reports the real state.

use sqlx::{PgPool, postgres::PgPoolOptions};

use crate::config::DatabaseSettings;

pub fn lazy_pool(settings: &DatabaseSettings) -> PgPool {
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        // Fail fast when PostgreSQL is unreachable or the pool is exhausted: the request timeout is the outer
        // bound, this keeps one dead dependency from holding every request for the full timeout.
        .acquire_timeout(settings.acquire_timeout)
        .connect_lazy_with(settings.connect_options())
}
