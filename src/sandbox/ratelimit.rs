//! Fixed-window rate limiting per API key and request category, with the admin overrides
//! (exhausted quotas, simulated other consumers of the same key).

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;

/// The rate-limit key of requests that carry no usable API key.
pub const ANONYMOUS: &str = "anonymous";

/// The rate-limit key of token requests whose `api_key` is not shaped like a key, which may be
/// a secret sent in the wrong field; such a value is never logged or counted.
pub const INVALID_KEY: &str = "invalid";

/// Simulated consumer rates are given per minute, whatever the window length.
const CONSUMER_RATE_PERIOD_MS: u128 = 60_000;

/// Counters of past windows are dropped once this many have piled up.
const MAX_COUNTERS: usize = 10_000;

/// The three request types of the API's rate-limit table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Auth,
    Sync,
    Read,
}

impl Category {
    pub const ALL: [Category; 3] = [Category::Auth, Category::Sync, Category::Read];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Auth => "auth",
            Category::Sync => "sync",
            Category::Read => "read",
        }
    }

    pub fn parse(name: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Requests allowed per window for each category.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Limits {
    pub auth: u32,
    pub sync: u32,
    pub read: u32,
}

impl Limits {
    pub fn of(&self, category: Category) -> u32 {
        match category {
            Category::Auth => self.auth,
            Category::Sync => self.sync,
            Category::Read => self.read,
        }
    }
}

/// What the limiter decided for one request, ready to become `X-RateLimit-*` headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Unix time in seconds at which the current window ends.
    pub reset: u64,
    /// Whole seconds until the window ends, at least 1.
    pub retry_after: u64,
}

/// Where a window starts and ends, in unix milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub index: u64,
    pub start_ms: u64,
    pub end_ms: u64,
}

impl Window {
    /// Windows are aligned to multiples of their length since the unix epoch.
    pub fn containing(now_ms: u64, length_ms: u64) -> Window {
        let index = now_ms / length_ms;
        Window {
            index,
            start_ms: index * length_ms,
            end_ms: (index + 1) * length_ms,
        }
    }

    pub fn reset_seconds(&self) -> u64 {
        self.end_ms.div_ceil(1000)
    }

    pub fn retry_after_seconds(&self, now_ms: u64) -> u64 {
        self.end_ms.saturating_sub(now_ms).div_ceil(1000).max(1)
    }
}

#[derive(Clone, Copy, Debug)]
struct Counter {
    window: u64,
    count: u64,
}

/// A quota emptied by the admin API until the end of the window it was emptied in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Exhaustion {
    pub category: Category,
    pub api_key: Option<String>,
    #[serde(skip)]
    window: u64,
    pub until: u64,
}

/// Other clients of the same key, simulated at a steady rate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Consumers {
    pub category: Category,
    pub api_key: Option<String>,
    pub requests_per_minute: u32,
}

/// Counts requests per (category, key) in fixed windows.
#[derive(Debug)]
pub struct RateLimiter {
    limits: Limits,
    window_ms: u64,
    counters: HashMap<(Category, String), Counter>,
    exhaustions: Vec<Exhaustion>,
    consumers: Vec<Consumers>,
}

impl RateLimiter {
    /// `window_ms` must be positive; the options check guarantees it.
    pub fn new(limits: Limits, window_ms: u64) -> RateLimiter {
        RateLimiter {
            limits,
            window_ms: window_ms.max(1),
            counters: HashMap::new(),
            exhaustions: Vec::new(),
            consumers: Vec::new(),
        }
    }

    /// Counts one request, whatever its answer will be, and says whether it is within the limit.
    pub fn admit(&mut self, category: Category, api_key: &str, now_ms: u64) -> Verdict {
        let window = Window::containing(now_ms, self.window_ms);
        let limit = self.limits.of(category);
        let used = self.used_before(category, api_key, window, now_ms);
        self.count(category, api_key, window);

        let allowed = used < u64::from(limit);
        let remaining = if allowed {
            u64::from(limit) - used - 1
        } else {
            0
        };
        Verdict {
            allowed,
            limit,
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
            reset: window.reset_seconds(),
            retry_after: window.retry_after_seconds(now_ms),
        }
    }

    /// Empties the quota of one key (or every key) until the current window ends.
    pub fn exhaust(&mut self, category: Category, api_key: Option<String>, now_ms: u64) -> u64 {
        let window = Window::containing(now_ms, self.window_ms);
        self.exhaustions.retain(|e| e.window >= window.index);
        let until = window.reset_seconds();
        self.exhaustions.push(Exhaustion {
            category,
            api_key,
            window: window.index,
            until,
        });
        until
    }

    /// Starts (or changes) simulated traffic from other clients of one key or of every key.
    pub fn set_consumers(&mut self, consumers: Consumers) {
        self.consumers
            .retain(|c| (c.category, &c.api_key) != (consumers.category, &consumers.api_key));
        self.consumers.push(consumers);
    }

    /// Stops simulated traffic of a category, for one key or for all; returns how many stopped.
    pub fn clear_consumers(&mut self, category: Category, api_key: Option<&str>) -> usize {
        let before = self.consumers.len();
        self.consumers.retain(|c| {
            c.category != category || api_key.is_some_and(|k| c.api_key.as_deref() != Some(k))
        });
        before - self.consumers.len()
    }

    pub fn consumers(&self) -> &[Consumers] {
        &self.consumers
    }

    /// The exhaustions still in force at `now_ms`.
    pub fn exhaustions(&self, now_ms: u64) -> Vec<Exhaustion> {
        let window = Window::containing(now_ms, self.window_ms);
        self.exhaustions
            .iter()
            .filter(|e| e.window == window.index)
            .cloned()
            .collect()
    }

    fn used_before(&self, category: Category, api_key: &str, window: Window, now_ms: u64) -> u64 {
        let limit = u64::from(self.limits.of(category));
        if self.is_exhausted(category, api_key, window) {
            return limit;
        }
        let own = self
            .counters
            .get(&(category, api_key.to_owned()))
            .filter(|c| c.window == window.index)
            .map_or(0, |c| c.count);
        let others = self.others_usage(category, api_key, now_ms - window.start_ms);
        (own + others.min(limit)).min(limit)
    }

    fn is_exhausted(&self, category: Category, api_key: &str, window: Window) -> bool {
        self.exhaustions.iter().any(|e| {
            e.category == category
                && e.window == window.index
                && e.api_key.as_deref().is_none_or(|k| k == api_key)
        })
    }

    fn others_usage(&self, category: Category, api_key: &str, elapsed_ms: u64) -> u64 {
        self.consumers
            .iter()
            .filter(|c| c.category == category)
            .filter(|c| c.api_key.as_deref().is_none_or(|k| k == api_key))
            .map(|c| consumed_by_others(c.requests_per_minute, elapsed_ms))
            .fold(0, u64::saturating_add)
    }

    fn count(&mut self, category: Category, api_key: &str, window: Window) {
        if self.counters.len() >= MAX_COUNTERS {
            self.counters.retain(|_, c| c.window == window.index);
        }
        let counter = self
            .counters
            .entry((category, api_key.to_owned()))
            .or_insert(Counter {
                window: window.index,
                count: 0,
            });
        if counter.window != window.index {
            *counter = Counter {
                window: window.index,
                count: 0,
            };
        }
        counter.count += 1;
    }
}

/// Requests sent by others at a steady `per_minute` rate during the first `elapsed_ms` of a
/// window.
pub fn consumed_by_others(per_minute: u32, elapsed_ms: u64) -> u64 {
    let used = u128::from(per_minute) * u128::from(elapsed_ms) / CONSUMER_RATE_PERIOD_MS;
    u64::try_from(used).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        auth: 3,
        sync: 100,
        read: 1000,
    };
    const MINUTE: u64 = 60_000;

    #[test]
    fn windows_are_aligned_to_the_epoch() {
        let window = Window::containing(1_640_995_230_500, MINUTE);

        assert_eq!(window.start_ms, 1_640_995_200_000);
        assert_eq!(window.end_ms, 1_640_995_260_000);
        assert_eq!(window.reset_seconds(), 1_640_995_260);
        assert_eq!(window.retry_after_seconds(1_640_995_230_500), 30);
    }

    #[test]
    fn retry_after_is_at_least_one_second() {
        let window = Window::containing(59_999, MINUTE);

        assert_eq!(window.retry_after_seconds(59_999), 1);
    }

    #[test]
    fn remaining_counts_down_then_requests_are_refused() {
        let mut limiter = RateLimiter::new(LIMITS, MINUTE);
        let remaining: Vec<(bool, u32)> = (0..5)
            .map(|_| limiter.admit(Category::Auth, "pk_a", 1_000))
            .map(|v| (v.allowed, v.remaining))
            .collect();

        assert_eq!(
            remaining,
            [(true, 2), (true, 1), (true, 0), (false, 0), (false, 0)]
        );
    }

    #[test]
    fn keys_and_categories_have_separate_counters() {
        let mut limiter = RateLimiter::new(LIMITS, MINUTE);
        limiter.admit(Category::Auth, "pk_a", 1_000);

        assert_eq!(limiter.admit(Category::Auth, "pk_b", 1_000).remaining, 2);
        assert_eq!(limiter.admit(Category::Sync, "pk_a", 1_000).remaining, 99);
    }

    #[test]
    fn a_new_window_starts_from_zero() {
        let mut limiter = RateLimiter::new(LIMITS, MINUTE);
        for _ in 0..4 {
            limiter.admit(Category::Auth, "pk_a", 59_000);
        }

        let verdict = limiter.admit(Category::Auth, "pk_a", 60_000);

        assert!(verdict.allowed);
        assert_eq!(verdict.remaining, 2);
        assert_eq!(verdict.reset, 120);
    }

    #[test]
    fn exhaustion_lasts_until_the_window_ends() {
        let mut limiter = RateLimiter::new(LIMITS, MINUTE);
        let until = limiter.exhaust(Category::Sync, None, 10_000);

        assert_eq!(until, 60);
        assert!(!limiter.admit(Category::Sync, "pk_a", 59_999).allowed);
        assert!(limiter.admit(Category::Sync, "pk_a", 60_000).allowed);
    }

    #[test]
    fn exhaustion_of_one_key_leaves_others_alone() {
        let mut limiter = RateLimiter::new(LIMITS, MINUTE);
        limiter.exhaust(Category::Sync, Some("pk_a".to_owned()), 0);

        assert!(!limiter.admit(Category::Sync, "pk_a", 1).allowed);
        assert!(limiter.admit(Category::Sync, "pk_b", 1).allowed);
    }

    #[test]
    fn other_consumers_use_quota_in_proportion_to_elapsed_time() {
        assert_eq!(consumed_by_others(60, 0), 0);
        assert_eq!(consumed_by_others(60, 999), 0);
        assert_eq!(consumed_by_others(60, 1_000), 1);
        assert_eq!(consumed_by_others(90, 30_000), 45);
    }

    #[test]
    fn other_consumers_lower_remaining() {
        let mut limiter = RateLimiter::new(LIMITS, MINUTE);
        limiter.set_consumers(Consumers {
            category: Category::Sync,
            api_key: None,
            requests_per_minute: 120,
        });

        let verdict = limiter.admit(Category::Sync, "pk_a", 15_000);

        assert_eq!(verdict.remaining, 100 - 30 - 1);
    }

    #[test]
    fn other_consumers_never_exceed_the_limit() {
        let mut limiter = RateLimiter::new(LIMITS, MINUTE);
        limiter.set_consumers(Consumers {
            category: Category::Auth,
            api_key: Some("pk_a".to_owned()),
            requests_per_minute: u32::MAX,
        });

        let verdict = limiter.admit(Category::Auth, "pk_a", 59_999);

        assert_eq!((verdict.allowed, verdict.remaining), (false, 0));
        assert!(limiter.admit(Category::Auth, "pk_b", 59_999).allowed);
    }

    #[test]
    fn clearing_consumers_restores_the_quota() {
        let mut limiter = RateLimiter::new(LIMITS, MINUTE);
        limiter.set_consumers(Consumers {
            category: Category::Sync,
            api_key: None,
            requests_per_minute: 6_000,
        });

        assert_eq!(limiter.clear_consumers(Category::Sync, None), 1);
        assert_eq!(limiter.admit(Category::Sync, "pk_a", 30_000).remaining, 99);
    }

    #[test]
    fn categories_parse_from_their_names_only() {
        assert_eq!(Category::parse("auth"), Some(Category::Auth));
        assert_eq!(Category::parse("sync"), Some(Category::Sync));
        assert_eq!(Category::parse("read"), Some(Category::Read));
        assert_eq!(Category::parse("Auth"), None);
    }
}
