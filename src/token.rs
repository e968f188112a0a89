//! The access token cache of one target: shared by its probes, refreshed ahead of expiry,
//! and fetched single-flight so that concurrent needs share one request.

use std::future::Future;
use std::time::{Duration, SystemTime};

use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::secret::Secret;

/// The refresh margin is at most this share of the token's lifetime, so that short-lived
/// tokens are still used for most of their life.
const MAX_MARGIN_SHARE_OF_LIFETIME: u32 = 10;

#[derive(Debug, Clone)]
pub struct Token {
    pub value: Secret,
    pub expires_at: Instant,
    pub expires_at_wall: SystemTime,
    pub lifetime: Duration,
}

impl Token {
    pub fn new(value: Secret, lifetime: Duration) -> Self {
        Token {
            value,
            expires_at: Instant::now() + lifetime,
            expires_at_wall: SystemTime::now() + lifetime,
            lifetime,
        }
    }
}

/// Where a token handed out came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Cached,
    Fetched,
}

#[derive(Debug)]
pub struct TokenCache {
    margin: Duration,
    slot: Mutex<Option<Token>>,
}

impl TokenCache {
    pub fn new(margin: Duration) -> Self {
        TokenCache {
            margin,
            slot: Mutex::new(None),
        }
    }

    /// The margin applied to a token of this lifetime: the configured one, bounded to a tenth
    /// of the lifetime.
    pub fn margin_for(&self, lifetime: Duration) -> Duration {
        self.margin.min(lifetime / MAX_MARGIN_SHARE_OF_LIFETIME)
    }

    /// A token with more than the margin left, fetching one if there is none. Callers that
    /// arrive during a fetch wait for it and share its result.
    pub async fn get_or_fetch<F, Fut, E>(&self, fetch: F) -> Result<(Token, Origin), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Token, E>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some(token) = slot.as_ref().filter(|t| self.is_fresh(t)) {
            return Ok((token.clone(), Origin::Cached));
        }

        *slot = None;
        let token = fetch().await?;
        *slot = Some(token.clone());
        Ok((token, Origin::Fetched))
    }

    /// Always fetches a new token and caches it. While a fresh token is cached, other callers
    /// keep using it during the fetch; without one, they wait for this fetch and share it.
    pub async fn refresh<F, Fut, E>(&self, fetch: F) -> Result<Token, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Token, E>>,
    {
        let mut slot = self.slot.lock().await;
        if slot.as_ref().is_some_and(|t| self.is_fresh(t)) {
            drop(slot);
            let token = fetch().await?;
            *self.slot.lock().await = Some(token.clone());
            return Ok(token);
        }
        let token = fetch().await?;
        *slot = Some(token.clone());
        Ok(token)
    }

    /// Caches a token obtained elsewhere (tests set up the cache with it).
    #[cfg(test)]
    pub async fn store(&self, token: Token) {
        *self.slot.lock().await = Some(token);
    }

    /// Drops the cached token if it is still `value`; a newer one is kept.
    pub async fn invalidate(&self, value: &Secret) {
        let mut slot = self.slot.lock().await;
        if slot.as_ref().is_some_and(|t| &t.value == value) {
            *slot = None;
        }
    }

    /// The cached token, fresh or not.
    pub async fn current(&self) -> Option<Token> {
        self.slot.lock().await.clone()
    }

    fn is_fresh(&self, token: &Token) -> bool {
        Instant::now() + self.margin_for(token.lifetime) < token.expires_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn fetcher(
        count: &Arc<AtomicU32>,
        lifetime: Duration,
    ) -> impl Future<Output = Result<Token, ()>> {
        let count = count.clone();
        async move {
            let n = count.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(Token::new(Secret::new(format!("token-{n}")), lifetime))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_is_reused_until_the_margin_then_refreshed() {
        let cache = TokenCache::new(Duration::from_secs(300));
        let count = Arc::new(AtomicU32::new(0));
        let lifetime = Duration::from_secs(3600);

        let (_, first) = cache
            .get_or_fetch(|| fetcher(&count, lifetime))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(3600 - 301)).await;
        let (_, second) = cache
            .get_or_fetch(|| fetcher(&count, lifetime))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(2)).await;
        let (token, third) = cache
            .get_or_fetch(|| fetcher(&count, lifetime))
            .await
            .unwrap();

        assert_eq!(
            (first, second, third),
            (Origin::Fetched, Origin::Cached, Origin::Fetched)
        );
        assert_eq!(token.value.expose(), "token-1");
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn short_lived_tokens_get_a_bounded_margin() {
        let cache = TokenCache::new(Duration::from_secs(300));
        let count = Arc::new(AtomicU32::new(0));
        let lifetime = Duration::from_secs(10);

        assert_eq!(cache.margin_for(lifetime), Duration::from_secs(1));
        cache
            .get_or_fetch(|| fetcher(&count, lifetime))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_millis(8_800)).await;
        let (_, origin) = cache
            .get_or_fetch(|| fetcher(&count, lifetime))
            .await
            .unwrap();
        assert_eq!(origin, Origin::Cached);
        tokio::time::advance(Duration::from_millis(200)).await;
        let (_, origin) = cache
            .get_or_fetch(|| fetcher(&count, lifetime))
            .await
            .unwrap();
        assert_eq!(
            origin,
            Origin::Fetched,
            "inside the margin a token is never handed out"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_needs_share_one_fetch() {
        let cache = Arc::new(TokenCache::new(Duration::from_secs(300)));
        let count = Arc::new(AtomicU32::new(0));
        let lifetime = Duration::from_secs(3600);

        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (cache, count) = (cache.clone(), count.clone());
                tokio::spawn(async move { cache.get_or_fetch(|| fetcher(&count, lifetime)).await })
            })
            .collect();
        for task in tasks {
            let (token, _) = task.await.unwrap().unwrap();
            assert_eq!(token.value.expose(), "token-0");
        }

        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_forced_refresh_is_shared_with_concurrent_needs() {
        let cache = Arc::new(TokenCache::new(Duration::from_secs(300)));
        let count = Arc::new(AtomicU32::new(0));
        let lifetime = Duration::from_secs(3600);

        let refresh = {
            let (cache, count) = (cache.clone(), count.clone());
            tokio::spawn(async move { cache.refresh(|| fetcher(&count, lifetime)).await })
        };
        tokio::task::yield_now().await;
        let (token, origin) = cache
            .get_or_fetch(|| fetcher(&count, lifetime))
            .await
            .unwrap();

        assert_eq!(refresh.await.unwrap().unwrap().value.expose(), "token-0");
        assert_eq!((token.value.expose(), origin), ("token-0", Origin::Cached));
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_refresh_does_not_hold_up_a_fresh_token() {
        let cache = Arc::new(TokenCache::new(Duration::from_secs(300)));
        let count = Arc::new(AtomicU32::new(0));
        let lifetime = Duration::from_secs(3600);
        cache
            .store(Token::new(Secret::new("cached"), lifetime))
            .await;

        let refresh = {
            let cache = cache.clone();
            tokio::spawn(async move {
                cache
                    .refresh(|| async {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        Ok::<_, ()>(Token::new(Secret::new("new"), lifetime))
                    })
                    .await
            })
        };
        tokio::task::yield_now().await;
        let started = Instant::now();
        let (token, origin) = cache
            .get_or_fetch(|| fetcher(&count, lifetime))
            .await
            .unwrap();

        assert_eq!((token.value.expose(), origin), ("cached", Origin::Cached));
        assert_eq!(started.elapsed(), Duration::ZERO);
        refresh.await.unwrap().unwrap();
        assert_eq!(cache.current().await.unwrap().value.expose(), "new");
    }

    #[tokio::test(start_paused = true)]
    async fn invalidate_drops_only_the_named_token() {
        let cache = TokenCache::new(Duration::from_secs(300));
        let lifetime = Duration::from_secs(3600);
        cache.store(Token::new(Secret::new("new"), lifetime)).await;

        cache.invalidate(&Secret::new("old")).await;
        let kept = cache.get_or_fetch(|| async { Err::<Token, ()>(()) }).await;
        cache.invalidate(&Secret::new("new")).await;
        let dropped = cache.get_or_fetch(|| async { Err::<Token, ()>(()) }).await;

        assert_eq!(kept.unwrap().0.value.expose(), "new");
        assert!(dropped.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_fetch_caches_nothing() {
        let cache = TokenCache::new(Duration::from_secs(300));

        let failed = cache
            .get_or_fetch(|| async { Err::<Token, &str>("down") })
            .await;
        let again = cache
            .get_or_fetch(|| async { Err::<Token, &str>("still down") })
            .await;

        assert_eq!(failed.unwrap_err(), "down");
        assert_eq!(again.unwrap_err(), "still down");
    }
}
