//! Cache-aside for item reads, in Redis.
//!
//! - `item:{id}`: one item's JSON (with its review summary), TTL `CACHE_ITEM_TTL_SECS`.
//! - `items:list`: a hash, one field per list query (page/per_page/sort/order), holding the response JSON.
//!   Any write deletes the whole hash: a new item or review can move items between pages and sort positions,
//!   so precise invalidation is not worth its bugs. The hash TTL (`EXPIRE ... NX`, set once, not extended)
//!   bounds the classic cache-aside race in which a read that started before a write stores stale data after it.
//!
//! Values are the exact response bodies, so a hit is served without deserialising anything.
//! Every failure is a miss: the caller falls back to PostgreSQL.
//!
//! In front of Redis sits each replica's `NearCache` (see there why it stays correct across replicas); every
//! invalidation clears this replica's copy at once and is published to the others.

use std::{sync::Arc, time::Duration};

use axum::body::Bytes;

use crate::{
    cache_invalidation,
    near_cache::{Generation, NearCache},
    redis_conn::RedisConn,
};

#[derive(Clone)]
pub struct Cache {
    redis: RedisConn,
    near: Arc<NearCache>,
    item_ttl: Duration,
    list_ttl: Duration,
}

/// What a read needs to store what it fetched: the near cache's generation from before the fetch.
pub struct Miss(Generation);

#[derive(Clone, Copy)]
enum Kind {
    Item,
    List,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Item => "item",
            Kind::List => "item_list",
        }
    }
}

fn count(kind: Kind, result: &'static str) {
    metrics::counter!("cache_requests_total", "cache" => kind.label(), "result" => result).increment(1);
}

/// A hit from the near cache is a hit (dashboards' hit ratio stays what it was); this says how many were near.
fn count_near(kind: Kind) {
    count(kind, "hit");
    metrics::counter!("near_cache_hits_total", "cache" => kind.label()).increment(1);
}

impl Cache {
    /// Starts the invalidation listener, so it needs a Tokio runtime; it touches no network before its first
    /// attempt, and the API starts whether Redis is there or not.
    pub fn new(redis: RedisConn, item_ttl: Duration, list_ttl: Duration, local_ttl: Duration) -> Self {
        let near = Arc::new(NearCache::new(local_ttl));
        if !local_ttl.is_zero() {
            cache_invalidation::spawn_listener(
                redis.client().clone(),
                cache_invalidation::channel(redis.prefix()),
                redis.timeout().max(Duration::from_secs(1)),
                near.clone(),
            );
        }
        Self {
            redis,
            near,
            item_ttl,
            list_ttl,
        }
    }

    /// Whether this replica serves from its near cache (its invalidation subscription is live).
    pub fn near_is_live(&self) -> bool {
        self.near.is_live()
    }

    fn item_key(&self, id: i64) -> String {
        self.redis.key(&format!("item:{id}"))
    }

    fn list_key(&self) -> String {
        self.redis.key("items:list")
    }

    fn observe(kind: Kind, result: Result<Option<String>, crate::redis_conn::RedisUnavailable>) -> Option<String> {
        match result {
            Ok(Some(v)) => {
                count(kind, "hit");
                Some(v)
            }
            Ok(None) => {
                count(kind, "miss");
                None
            }
            Err(e) => {
                count(kind, "error");
                tracing::debug!(error = %e, cache = kind.label(), "cache read skipped");
                None
            }
        }
    }

    fn near_item_key(id: i64) -> String {
        format!("item:{id}")
    }

    fn near_list_key(field: &str) -> String {
        format!("list:{field}")
    }

    /// Near cache, then Redis; a Redis hit is kept near too. The miss carries the generation from before the
    /// Redis read, for the caller's `put_*` after it read PostgreSQL.
    async fn lookup(&self, kind: Kind, near_key: &str, cmd: redis::Cmd) -> Result<Bytes, Miss> {
        if let Some(body) = self.near.get(near_key) {
            count_near(kind);
            return Ok(body);
        }
        let seen = self.near.generation();
        match Self::observe(kind, self.redis.query(cmd).await) {
            Some(body) => {
                let body = Bytes::from(body);
                self.near.put(near_key, body.clone(), seen);
                Ok(body)
            }
            None => Err(Miss(seen)),
        }
    }

    pub async fn get_item(&self, id: i64) -> Result<Bytes, Miss> {
        let cmd = redis::cmd("GET").arg(self.item_key(id)).to_owned();
        self.lookup(Kind::Item, &Self::near_item_key(id), cmd).await
    }

    pub async fn put_item(&self, id: i64, json: &str, miss: Miss) {
        self.near.put(
            &Self::near_item_key(id),
            Bytes::copy_from_slice(json.as_bytes()),
            miss.0,
        );
        let cmd = redis::cmd("SET")
            .arg(self.item_key(id))
            .arg(json)
            .arg("EX")
            .arg(self.item_ttl.as_secs().max(1))
            .to_owned();
        if let Err(e) = self.redis.query::<()>(cmd).await {
            tracing::debug!(error = %e, "cache write skipped");
        }
    }

    pub async fn get_list(&self, field: &str) -> Result<Bytes, Miss> {
        let cmd = redis::cmd("HGET").arg(self.list_key()).arg(field).to_owned();
        self.lookup(Kind::List, &Self::near_list_key(field), cmd).await
    }

    pub async fn put_list(&self, field: &str, json: &str, miss: Miss) {
        self.near.put(
            &Self::near_list_key(field),
            Bytes::copy_from_slice(json.as_bytes()),
            miss.0,
        );
        let key = self.list_key();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("HSET")
            .arg(&key)
            .arg(field)
            .arg(json)
            .ignore()
            .cmd("EXPIRE")
            .arg(&key)
            .arg(self.list_ttl.as_secs().max(1))
            .arg("NX")
            .ignore();
        if let Err(e) = self.redis.query_pipe::<()>(pipe).await {
            tracing::debug!(error = %e, "cache write skipped");
        }
    }

    /// After a review: the item's summary changed and list pages may be ordered differently.
    pub async fn invalidate_item(&self, id: i64) {
        self.delete(vec![self.item_key(id), self.list_key()]).await;
    }

    /// After a new item: only the lists changed.
    pub async fn invalidate_lists(&self) {
        self.delete(vec![self.list_key()]).await;
    }

    /// Deletes the Redis entries, then tells every replica (this one first, at once) to drop its near copy:
    /// in that order, a replica that refills after the message reads the fresh value from PostgreSQL.
    async fn delete(&self, keys: Vec<String>) {
        self.near.clear();
        let mut pipe = redis::pipe();
        pipe.cmd("DEL")
            .arg(keys)
            .ignore()
            .cmd("PUBLISH")
            .arg(cache_invalidation::channel(self.redis.prefix()))
            .arg("all")
            .ignore();
        if let Err(e) = self.redis.query_pipe::<()>(pipe).await {
            // The write is already committed; entries expire by TTL. Worth a warning: reads may be stale until then.
            tracing::warn!(error = %e, "cache invalidation failed; entries expire by TTL");
        }
    }
}
