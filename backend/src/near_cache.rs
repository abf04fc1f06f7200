//! A replica's own short-lived copy of the hottest cache entries, in front of Redis.
//!
//! Why: a cached read that goes to Redis pays a network round trip and a copy of the body on every request,
//! which costs more than the rest of the request. Serving the same bytes from memory makes a cached read cost
//! what axum and the kernel cost.
//!
//! Why it stays correct with several replicas:
//! - It is used only while this replica is subscribed to the invalidation channel (`cache_invalidation`): every
//!   write publishes there after deleting the Redis entries, and every replica clears its copy on the message.
//!   While the subscription is down (Redis away, reconnecting), the near cache is empty and bypassed.
//! - A read that started before an invalidation may not store what it read afterwards: each read takes the
//!   generation first, and `put` refuses a value read under an older generation (the cache-aside race, closed
//!   here rather than bounded by a TTL).
//! - `CACHE_LOCAL_TTL_MS` (default 1 s; 0 turns the near cache off) bounds what is left: a subscription that died
//!   without the replica noticing yet.

use std::{
    collections::HashMap,
    sync::{
        RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use axum::body::Bytes;

/// A bound on memory, not a tuning knob: keys are list queries and item ids, so a full map means someone walks
/// many pages or ids; it is then emptied and refilled from Redis.
const MAX_ENTRIES: usize = 4096;

pub struct NearCache {
    ttl: Duration,
    /// Set by the invalidation listener while its subscription is live.
    live: AtomicBool,
    map: RwLock<Map>,
}

#[derive(Default)]
struct Map {
    /// Bumped by every invalidation, under the same lock as the entries, so `put` can compare it atomically.
    generation: u64,
    entries: HashMap<String, (Instant, Bytes)>,
}

/// What a read saw before it went to Redis or PostgreSQL; handed back to `put`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generation(u64);

impl NearCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            live: AtomicBool::new(false),
            map: RwLock::new(Map::default()),
        }
    }

    fn enabled(&self) -> bool {
        !self.ttl.is_zero() && self.live.load(Ordering::Acquire)
    }

    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Called by the invalidation listener. Either way the entries go: on the way up, nothing that was missed
    /// while the subscription was down may survive it; on the way down, nothing may be served unwatched.
    pub fn set_live(&self, live: bool) {
        self.clear();
        self.live.store(live, Ordering::Release);
        if live {
            // Whatever was stored between the clear above and now was read while not live; drop it too.
            self.clear();
        }
    }

    pub fn get(&self, key: &str) -> Option<Bytes> {
        if !self.enabled() {
            return None;
        }
        // A poisoned lock only means a panic elsewhere mid-insert; the map is still a valid map.
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        let (stored, body) = map.entries.get(key)?;
        (stored.elapsed() < self.ttl).then(|| body.clone())
    }

    pub fn generation(&self) -> Generation {
        Generation(self.map.read().unwrap_or_else(|e| e.into_inner()).generation)
    }

    /// Stores `body` unless an invalidation happened since `seen` was taken.
    pub fn put(&self, key: &str, body: Bytes, seen: Generation) {
        if !self.enabled() {
            return;
        }
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if map.generation != seen.0 {
            return;
        }
        if map.entries.len() >= MAX_ENTRIES {
            map.entries.clear();
        }
        map.entries.insert(key.to_owned(), (Instant::now(), body));
    }

    /// Every write clears everything: writes are rare next to reads, and precise invalidation is not worth its
    /// bugs (a new review moves items between list pages and sort positions).
    pub fn clear(&self) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        map.generation += 1;
        map.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(ttl: Duration) -> NearCache {
        let cache = NearCache::new(ttl);
        cache.set_live(true);
        cache
    }

    #[test]
    fn serves_what_was_stored_only_while_live() {
        let cache = live(Duration::from_secs(60));
        cache.put("k", Bytes::from_static(b"v"), cache.generation());
        assert_eq!(cache.get("k").as_deref(), Some(&b"v"[..]));
        cache.set_live(false);
        assert_eq!(cache.get("k"), None, "not served while the subscription is down");
        cache.put("k", Bytes::from_static(b"v"), cache.generation());
        cache.set_live(true);
        assert_eq!(cache.get("k"), None, "nothing read while down survives going live");
    }

    #[test]
    fn a_read_older_than_an_invalidation_is_not_stored() {
        let cache = live(Duration::from_secs(60));
        let seen = cache.generation();
        cache.clear();
        cache.put("k", Bytes::from_static(b"stale"), seen);
        assert_eq!(cache.get("k"), None);
    }

    #[test]
    fn entries_expire_and_a_zero_ttl_turns_it_off() {
        let cache = live(Duration::from_millis(1));
        cache.put("k", Bytes::from_static(b"v"), cache.generation());
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(cache.get("k"), None);
        let off = live(Duration::ZERO);
        off.put("k", Bytes::from_static(b"v"), off.generation());
        assert_eq!(off.get("k"), None);
    }

    #[test]
    fn memory_is_bounded() {
        let cache = live(Duration::from_secs(60));
        for i in 0..=MAX_ENTRIES {
            cache.put(&i.to_string(), Bytes::from_static(b"v"), cache.generation());
        }
        assert!(cache.map.read().unwrap().entries.len() <= MAX_ENTRIES);
        assert!(
            cache.get(&MAX_ENTRIES.to_string()).is_some(),
            "the newest entry is kept"
        );
    }
}
