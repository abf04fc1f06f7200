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

use std::time::Duration;

use crate::redis_conn::RedisConn;

#[derive(Clone)]
pub struct Cache {
    redis: RedisConn,
    item_ttl: Duration,
    list_ttl: Duration,
}

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

impl Cache {
    pub fn new(redis: RedisConn, item_ttl: Duration, list_ttl: Duration) -> Self {
        Self {
            redis,
            item_ttl,
            list_ttl,
        }
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

    pub async fn get_item(&self, id: i64) -> Option<String> {
        let result = self
            .redis
            .query(redis::cmd("GET").arg(self.item_key(id)).to_owned())
            .await;
        Self::observe(Kind::Item, result)
    }

    pub async fn put_item(&self, id: i64, json: &str) {
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

    pub async fn get_list(&self, field: &str) -> Option<String> {
        let result = self
            .redis
            .query(redis::cmd("HGET").arg(self.list_key()).arg(field).to_owned())
            .await;
        Self::observe(Kind::List, result)
    }

    pub async fn put_list(&self, field: &str, json: &str) {
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

    async fn delete(&self, keys: Vec<String>) {
        if let Err(e) = self.redis.query::<()>(redis::cmd("DEL").arg(keys).to_owned()).await {
            // The write is already committed; entries expire by TTL. Worth a warning: reads may be stale until then.
            tracing::warn!(error = %e, "cache invalidation failed; entries expire by TTL");
        }
    }
}
