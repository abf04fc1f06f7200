//! The shared Redis connection, used by the cache, the rate limiter and readiness.
//!
//! Redis is an optimisation here, never a requirement: every call is bounded by a short timeout, and after a
//! failure the connection is considered down for a moment (a tiny circuit breaker) so that while Redis is away
//! requests go straight to PostgreSQL instead of each paying for a connect attempt.

use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use redis::{
    FromRedisValue,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

use crate::config::RedisSettings;

/// How long to skip Redis after a failure before trying again.
const BREAKER_COOL_DOWN: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum RedisUnavailable {
    #[error("redis skipped (recent failure)")]
    CoolingDown,
    #[error("redis timed out after {0:?}")]
    Timeout(Duration),
    #[error("redis error: {0}")]
    Redis(#[from] redis::RedisError),
}

#[derive(Clone)]
pub struct RedisConn {
    inner: Arc<Inner>,
}

struct Inner {
    /// Replaced by a fresh (lazy) manager after a failure: the manager only reconnects by itself after I/O errors,
    /// and a new one guarantees a clean connect attempt whatever went wrong (auth, timeouts, DNS).
    manager: RwLock<ConnectionManager>,
    client: redis::Client,
    config: ConnectionManagerConfig,
    prefix: String,
    timeout: Duration,
    started: Instant,
    /// Milliseconds since `started` before which calls are skipped.
    down_until_ms: AtomicU64,
    /// Only log transitions, not every failed call (a down Redis would otherwise flood the logs).
    healthy: AtomicBool,
}

impl RedisConn {
    /// Never touches the network: the connection is made on first use, so the API starts without Redis.
    pub fn new(settings: &RedisSettings) -> anyhow::Result<Self> {
        let client = settings.client()?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.timeout))
            .set_response_timeout(Some(settings.timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(100));
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())?;
        Ok(Self {
            inner: Arc::new(Inner {
                manager: RwLock::new(manager),
                client,
                config,
                prefix: settings.key_prefix.clone(),
                timeout: settings.timeout,
                started: Instant::now(),
                down_until_ms: AtomicU64::new(0),
                healthy: AtomicBool::new(true),
            }),
        })
    }

    /// For the invalidation subscription, which needs a connection of its own (pub/sub mode).
    pub fn client(&self) -> &redis::Client {
        &self.inner.client
    }

    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// A key in this service's namespace.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.inner.prefix)
    }

    fn now_ms(&self) -> u64 {
        self.inner.started.elapsed().as_millis() as u64
    }

    fn record(&self, ok: bool) {
        if ok {
            self.inner.down_until_ms.store(0, Ordering::Relaxed);
            if !self.inner.healthy.swap(true, Ordering::Relaxed) {
                tracing::info!("redis is reachable again; cache and rate limit resumed");
            }
        } else {
            let until = self.now_ms() + BREAKER_COOL_DOWN.as_millis() as u64;
            self.inner.down_until_ms.store(until, Ordering::Relaxed);
            let fresh = ConnectionManager::new_lazy_with_config(self.inner.client.clone(), self.inner.config.clone());
            if let Ok(fresh) = fresh {
                *self.inner.manager.write().unwrap_or_else(|e| e.into_inner()) = fresh;
            }
            if self.inner.healthy.swap(false, Ordering::Relaxed) {
                tracing::warn!("redis unavailable; serving from PostgreSQL without cache or rate limit");
            }
        }
    }

    async fn call<T, F, Fut>(&self, bypass_breaker: bool, f: F) -> Result<T, RedisUnavailable>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if !bypass_breaker && self.now_ms() < self.inner.down_until_ms.load(Ordering::Relaxed) {
            return Err(RedisUnavailable::CoolingDown);
        }
        // A poisoned lock only means a panic elsewhere while swapping managers; the value inside is still usable.
        let manager = self.inner.manager.read().unwrap_or_else(|e| e.into_inner()).clone();
        let result = match tokio::time::timeout(self.inner.timeout, f(manager)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(RedisUnavailable::Redis(e)),
            Err(_) => Err(RedisUnavailable::Timeout(self.inner.timeout)),
        };
        self.record(result.is_ok());
        result
    }

    pub async fn query<T: FromRedisValue + Send>(&self, cmd: redis::Cmd) -> Result<T, RedisUnavailable> {
        self.call(false, |mut conn| async move { cmd.query_async(&mut conn).await })
            .await
    }

    pub async fn query_pipe<T: FromRedisValue + Send>(&self, pipe: redis::Pipeline) -> Result<T, RedisUnavailable> {
        self.call(false, |mut conn| async move { pipe.query_async(&mut conn).await })
            .await
    }

    /// Readiness check: always really asks Redis (and closes the breaker early when Redis is back).
    pub async fn ping(&self) -> Result<(), RedisUnavailable> {
        self.call(true, |mut conn| async move {
            let _: String = redis::cmd("PING").query_async(&mut conn).await?;
            Ok(())
        })
        .await
    }
}
