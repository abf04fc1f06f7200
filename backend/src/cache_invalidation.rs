//! Keeps every replica's near cache honest: a Redis pub/sub subscription on which each write announces itself.
//!
//! The listener runs for the life of the process. While it is subscribed the near cache is live; when the
//! connection ends (Redis restarted, network cut) the near cache is emptied and bypassed until a new
//! subscription is confirmed, so a replica never serves its own copy while it could be missing an invalidation.

use std::{sync::Arc, time::Duration};

use futures_util::StreamExt;

use crate::near_cache::NearCache;

/// Between two subscription attempts while Redis is away.
const RETRY: Duration = Duration::from_secs(1);

/// The channel's name within this service's key prefix (replicas of one deployment share the prefix).
pub fn channel(prefix: &str) -> String {
    format!("{prefix}cache:invalidate")
}

pub fn spawn_listener(client: redis::Client, channel: String, timeout: Duration, near: Arc<NearCache>) {
    tokio::spawn(async move {
        let mut was_live = false;
        loop {
            match subscribe(&client, &channel, timeout).await {
                Ok(mut pubsub) => {
                    near.set_live(true);
                    if !was_live {
                        tracing::debug!(%channel, "near cache live: subscribed to invalidations");
                    }
                    was_live = true;
                    let mut messages = pubsub.on_message();
                    while messages.next().await.is_some() {
                        near.clear();
                    }
                    near.set_live(false);
                    tracing::warn!(%channel, "invalidation subscription ended; near cache off until it is back");
                }
                Err(e) => {
                    if was_live {
                        tracing::debug!(error = %e, "cannot subscribe to cache invalidations yet");
                    }
                    was_live = false;
                }
            }
            tokio::time::sleep(RETRY).await;
        }
    });
}

async fn subscribe(client: &redis::Client, channel: &str, timeout: Duration) -> anyhow::Result<redis::aio::PubSub> {
    let attempt = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok::<_, redis::RedisError>(pubsub)
    };
    Ok(tokio::time::timeout(timeout, attempt).await??)
}
