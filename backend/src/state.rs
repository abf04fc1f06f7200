//! Shared state handed to every handler. Cheap to clone: everything inside is reference-counted.

use std::sync::{Arc, atomic::AtomicBool};

use sqlx::PgPool;

use crate::{cache::Cache, config::Settings, readiness::ReadinessCache, redis_conn::RedisConn};

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: PgPool,
    pub redis: RedisConn,
    pub cache: Cache,
    pub readiness: Arc<ReadinessCache>,
    /// Set when SIGTERM arrives: readiness turns 503 so the proxy stops routing here while requests drain.
    pub shutting_down: Arc<AtomicBool>,
}
