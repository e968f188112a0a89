//! The sandbox's shared state: keys, tokens, rate windows, faults and stats behind one lock,
//! plus the clock and the shutdown signal.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::SandboxOptions;
use super::faults::Faults;
use super::keys::KeyStore;
use super::ratelimit::{Limits, RateLimiter};
use super::stats::Stats;
use super::token::TokenStore;

/// Everything the handlers change, guarded together so one request sees one consistent state.
#[derive(Debug)]
pub struct Inner {
    pub keys: KeyStore,
    pub tokens: TokenStore,
    pub limiter: RateLimiter,
    pub faults: Faults,
    pub stats: Stats,
}

/// Shared by every handler through an `Arc`.
#[derive(Debug)]
pub struct SandboxState {
    pub options: SandboxOptions,
    pub started_at: DateTime<Utc>,
    inner: Mutex<Inner>,
    shutdown: watch::Receiver<bool>,
}

impl SandboxState {
    /// `options` must already be checked.
    pub fn new(options: SandboxOptions, shutdown: watch::Receiver<bool>) -> SandboxState {
        let limits = Limits {
            auth: options.limit_auth,
            sync: options.limit_sync,
            read: options.limit_read,
        };
        let window_ms = duration_ms(options.rate_window);
        let inner = Inner {
            keys: KeyStore::new(&options.credentials),
            tokens: TokenStore::default(),
            limiter: RateLimiter::new(limits, window_ms),
            faults: Faults::default(),
            stats: Stats::default(),
        };
        SandboxState {
            options,
            started_at: Utc::now(),
            inner: Mutex::new(inner),
            shutdown,
        }
    }

    /// The lock is never held across an await, and a panic while holding it leaves the
    /// state usable, so a poisoned lock is taken as is.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn token_ttl_secs(&self) -> u64 {
        self.options.token_ttl.as_secs()
    }

    /// Resolves once the sandbox is told to stop.
    pub async fn shutdown_requested(&self) {
        let mut shutdown = self.shutdown.clone();
        // An error means the sender is gone, which also means stopping.
        let _ = shutdown.wait_for(|stop| *stop).await;
    }

    /// Sleeps for `duration`, or less if the sandbox stops first.
    pub async fn sleep(&self, duration: Duration) {
        tokio::select! {
            () = tokio::time::sleep(duration) => {}
            () = self.shutdown_requested() => {}
        }
    }
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    duration_ms(since_epoch)
}

pub fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
