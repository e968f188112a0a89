//! Rate limits: reading `X-RateLimit-*` and `Retry-After` headers, backing off after a 429,
//! and keeping probes out of the share of each window reserved for the real workload.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backon::{BackoffBuilder, ExponentialBuilder};
use reqwest::header::HeaderMap;

use crate::config::PerCategory;
use crate::probe::SkipReason;

/// The API's rate-limit categories, each with its own window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

    /// Requests per minute, as the API document gives them.
    pub fn documented_limit(self) -> u32 {
        match self {
            Category::Auth => 10,
            Category::Sync => 100,
            Category::Read => 1000,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Reset values below this are read as seconds from now, above it as unix seconds, and above
/// `MILLIS_THRESHOLD` as unix milliseconds: servers in the wild send all three.
const UNIX_SECONDS_THRESHOLD: f64 = 1.0e9;
const MILLIS_THRESHOLD: f64 = 1.0e12;
/// Without a known reset, the last Remaining is trusted for one window of the documented size.
const ASSUMED_WINDOW: Duration = Duration::from_secs(60);
/// Jitter added after a known reset, so that many exporters do not return at the same instant.
const MAX_RESET_JITTER: Duration = Duration::from_secs(2);
/// Longest backoff taken from a server's headers: a bogus Retry-After or reset (years ahead)
/// must not silence a probe until the exporter restarts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// What one response said about the rate limit.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RateLimitHeaders {
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
    pub reset_at: Option<SystemTime>,
    pub retry_after: Option<SystemTime>,
    /// Headers present but unreadable; counted, then ignored.
    pub errors: u32,
}

impl RateLimitHeaders {
    pub fn parse(headers: &HeaderMap, now: SystemTime) -> Self {
        let mut parsed = RateLimitHeaders::default();
        parsed.limit = parsed.read(headers, "x-ratelimit-limit", parse_count);
        parsed.remaining = parsed.read(headers, "x-ratelimit-remaining", parse_count);
        parsed.reset_at = parsed.read(headers, "x-ratelimit-reset", |v| parse_reset(v, now));
        parsed.retry_after = parsed.read(headers, "retry-after", |v| parse_retry_after(v, now));
        parsed
    }

    fn read<T>(
        &mut self,
        headers: &HeaderMap,
        name: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<T> {
        let value = headers.get(name)?;
        let parsed = value.to_str().ok().map(str::trim).and_then(parse);
        if parsed.is_none() {
            self.errors += 1;
        }
        parsed
    }
}

fn parse_count(value: &str) -> Option<u64> {
    value.parse().ok()
}

/// `X-RateLimit-Reset`: unix seconds, unix milliseconds, or seconds from now.
pub fn parse_reset(value: &str, now: SystemTime) -> Option<SystemTime> {
    let number: f64 = value.parse().ok()?;
    if !number.is_finite() || number < 0.0 {
        return None;
    }
    let seconds = |value: f64| Duration::try_from_secs_f64(value).ok();
    if number >= MILLIS_THRESHOLD {
        UNIX_EPOCH.checked_add(seconds(number / 1000.0)?)
    } else if number >= UNIX_SECONDS_THRESHOLD {
        UNIX_EPOCH.checked_add(seconds(number)?)
    } else {
        now.checked_add(seconds(number)?)
    }
}

/// `Retry-After`: delay-seconds or an HTTP date (RFC 9110, section 10.2.3).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<SystemTime> {
    if let Ok(seconds) = value.parse::<u64>() {
        return now.checked_add(Duration::from_secs(seconds));
    }
    httpdate::parse_http_date(value).ok()
}

pub fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[derive(Debug, Default, Clone)]
struct CategoryState {
    limit: Option<u64>,
    remaining: Option<u64>,
    /// Until when `remaining` describes the current window.
    valid_until: Option<SystemTime>,
    /// The last reset a response gave.
    window_reset: Option<SystemTime>,
    backoff_until: Option<SystemTime>,
    consecutive_429: u32,
}

/// Per-target view of the quota: what the last responses said, and whether a probe may send.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    reserve: PerCategory<f64>,
    states: [CategoryState; 3],
}

impl RateLimiter {
    pub fn new(reserve: PerCategory<f64>) -> Self {
        RateLimiter {
            reserve,
            states: Default::default(),
        }
    }

    /// May a request in `category` be sent now?
    pub fn admit(&self, category: Category, now: SystemTime) -> Result<(), SkipReason> {
        let state = &self.states[category.index()];
        if state.backoff_until.is_some_and(|until| until > now) {
            return Err(SkipReason::Backoff);
        }
        let window_known = state.valid_until.is_some_and(|until| until > now);
        if let (true, Some(limit), Some(remaining)) = (window_known, state.limit, state.remaining) {
            let reserved = (limit as f64 * self.reserve.get(category)).ceil() as u64;
            if reserved > 0 && remaining <= reserved {
                return Err(SkipReason::QuotaReserve);
            }
        }
        Ok(())
    }

    /// Records a response; returns the time until which the category is backed off, if a
    /// 429 started or extended a backoff.
    pub fn observe(
        &mut self,
        category: Category,
        status: u16,
        headers: &RateLimitHeaders,
        now: SystemTime,
    ) -> Option<SystemTime> {
        let state = &mut self.states[category.index()];
        if headers.limit.is_some() {
            state.limit = headers.limit;
        }
        if headers.reset_at.is_some() {
            state.window_reset = headers.reset_at;
        }
        if headers.remaining.is_some() {
            state.remaining = headers.remaining;
            state.valid_until = Some(headers.reset_at.unwrap_or(now + ASSUMED_WINDOW));
        }

        if status != 429 {
            state.consecutive_429 = 0;
            state.backoff_until = None;
            return None;
        }
        state.consecutive_429 += 1;
        let window_reset = state.window_reset.filter(|at| *at > now);
        let until = backoff_until(headers, window_reset, state.consecutive_429, now);
        state.backoff_until = Some(until);
        Some(until)
    }
}

/// After a 429: wait for Retry-After or the window's reset (plus jitter), taking the reset an
/// earlier response gave when this one has none; a reset in the past means retry now.
/// Without any, back off exponentially. Never longer than `MAX_BACKOFF`.
fn backoff_until(
    headers: &RateLimitHeaders,
    window_reset: Option<SystemTime>,
    attempt: u32,
    now: SystemTime,
) -> SystemTime {
    let known = headers.retry_after.or(headers.reset_at).or(window_reset);
    let until = match known {
        Some(at) if at <= now => now,
        Some(at) => at.checked_add(jitter()).unwrap_or(at),
        None => now + exponential_delay(attempt),
    };
    until.min(now + MAX_BACKOFF)
}

fn jitter() -> Duration {
    let millis = MAX_RESET_JITTER.as_millis() as u64;
    Duration::from_millis(rand::random_range(0..=millis))
}

/// The delay before the `attempt`-th retry (1-based) when the server gave no reset.
pub fn exponential_delay(attempt: u32) -> Duration {
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(5))
        .with_max_delay(Duration::from_secs(300))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build();
    let skip = attempt.saturating_sub(1).min(32) as usize;
    delays.nth(skip).unwrap_or(Duration::from_secs(300))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    const NOW: u64 = 1_700_000_000;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn reserve(share: f64) -> PerCategory<f64> {
        PerCategory {
            auth: share,
            sync: share,
            read: share,
        }
    }

    #[test]
    fn reset_accepts_unix_seconds_millis_and_deltas() {
        let now = at(NOW);
        let cases = [
            ("1700000060", Some(at(NOW + 60))),
            ("1700000060000", Some(at(NOW + 60))),
            ("30", Some(at(NOW + 30))),
            ("0", Some(now)),
            ("-5", None),
            ("soon", None),
            ("1e300", None),
            ("NaN", None),
        ];
        for (value, expected) in cases {
            assert_eq!(parse_reset(value, now), expected, "{value}");
        }
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now = at(NOW);

        assert_eq!(parse_retry_after("120", now), Some(at(NOW + 120)));
        let date = httpdate::fmt_http_date(at(NOW + 90));
        assert_eq!(parse_retry_after(&date, now), Some(at(NOW + 90)));
        assert_eq!(parse_retry_after("tomorrow", now), None);
    }

    #[test]
    fn unreadable_headers_are_counted_and_ignored() {
        let map = headers(&[
            ("x-ratelimit-limit", "ten"),
            ("x-ratelimit-remaining", "7"),
            ("x-ratelimit-reset", "later"),
        ]);

        let parsed = RateLimitHeaders::parse(&map, at(NOW));

        assert_eq!(parsed.limit, None);
        assert_eq!(parsed.remaining, Some(7));
        assert_eq!(parsed.errors, 2);
    }

    #[test]
    fn a_429_backs_off_until_the_reset_and_no_longer() {
        let mut limiter = RateLimiter::new(reserve(0.0));
        let map = headers(&[
            ("x-ratelimit-limit", "10"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", &(NOW + 40).to_string()),
        ]);
        let parsed = RateLimitHeaders::parse(&map, at(NOW));

        let until = limiter
            .observe(Category::Auth, 429, &parsed, at(NOW))
            .unwrap();

        assert!(until >= at(NOW + 40) && until <= at(NOW + 42), "{until:?}");
        assert_eq!(
            limiter.admit(Category::Auth, at(NOW + 39)),
            Err(SkipReason::Backoff)
        );
        assert_eq!(limiter.admit(Category::Sync, at(NOW + 1)), Ok(()));
        assert_eq!(limiter.admit(Category::Auth, at(NOW + 43)), Ok(()));
    }

    #[test]
    fn a_bogus_reset_far_ahead_is_capped() {
        let mut limiter = RateLimiter::new(reserve(0.0));
        let cases = [
            ("retry-after", "99999999999999".to_string()),
            ("retry-after", "Fri, 31 Dec 9999 23:59:59 GMT".to_string()),
            ("x-ratelimit-reset", "9223372036854775807".to_string()),
            ("x-ratelimit-reset", (NOW + 10 * 86_400).to_string()),
        ];
        for (name, value) in cases {
            let parsed = RateLimitHeaders::parse(&headers(&[(name, &value)]), at(NOW));

            let until = limiter
                .observe(Category::Sync, 429, &parsed, at(NOW))
                .unwrap();

            assert_eq!(until, at(NOW) + MAX_BACKOFF, "{name}: {value}");
        }
    }

    #[test]
    fn a_reset_in_the_past_means_retry_now() {
        let mut limiter = RateLimiter::new(reserve(0.0));
        let map = headers(&[("x-ratelimit-reset", &(NOW - 3600).to_string())]);
        let parsed = RateLimitHeaders::parse(&map, at(NOW));

        let until = limiter
            .observe(Category::Sync, 429, &parsed, at(NOW))
            .unwrap();

        assert_eq!(until, at(NOW));
        assert_eq!(limiter.admit(Category::Sync, at(NOW)), Ok(()));
    }

    #[test]
    fn a_429_without_headers_backs_off_exponentially_and_capped() {
        let mut limiter = RateLimiter::new(reserve(0.0));
        let none = RateLimitHeaders::default();
        let mut delays = Vec::new();
        for _ in 0..12 {
            let until = limiter
                .observe(Category::Sync, 429, &none, at(NOW))
                .unwrap();
            delays.push(until.duration_since(at(NOW)).unwrap());
        }

        assert!(delays[0] >= Duration::from_secs(5) && delays[0] < Duration::from_secs(11));
        assert!(delays[2] >= Duration::from_secs(20), "{delays:?}");
        assert!(
            delays.iter().all(|d| *d <= Duration::from_secs(600)),
            "{delays:?}"
        );
        assert_eq!(
            limiter.admit(Category::Sync, at(NOW + 1)),
            Err(SkipReason::Backoff)
        );
    }

    #[test]
    fn a_bare_429_waits_for_the_reset_an_earlier_response_gave_and_keeps_no_reserve() {
        let mut limiter = RateLimiter::new(reserve(0.2));
        let earlier = headers(&[
            ("x-ratelimit-limit", "1000"),
            ("x-ratelimit-remaining", "200"),
            ("x-ratelimit-reset", &(NOW + 30).to_string()),
        ]);
        limiter.observe(
            Category::Sync,
            200,
            &RateLimitHeaders::parse(&earlier, at(NOW)),
            at(NOW),
        );

        let until = limiter
            .observe(
                Category::Sync,
                429,
                &RateLimitHeaders::default(),
                at(NOW + 1),
            )
            .unwrap();

        assert!(until >= at(NOW + 30) && until <= at(NOW + 32), "{until:?}");
        assert_eq!(limiter.admit(Category::Sync, at(NOW + 33)), Ok(()));
    }

    #[test]
    fn success_clears_the_backoff() {
        let mut limiter = RateLimiter::new(reserve(0.0));
        limiter.observe(Category::Sync, 429, &RateLimitHeaders::default(), at(NOW));

        limiter.observe(
            Category::Sync,
            200,
            &RateLimitHeaders::default(),
            at(NOW + 1),
        );

        assert_eq!(limiter.admit(Category::Sync, at(NOW + 1)), Ok(()));
    }

    #[test]
    fn the_reserve_keeps_probes_off_the_last_share_of_the_window() {
        let mut limiter = RateLimiter::new(reserve(0.2));
        let reset = (NOW + 30).to_string();
        let observe = |limiter: &mut RateLimiter, remaining: &str| {
            let map = headers(&[
                ("x-ratelimit-limit", "100"),
                ("x-ratelimit-remaining", remaining),
                ("x-ratelimit-reset", &reset),
            ]);
            let parsed = RateLimitHeaders::parse(&map, at(NOW));
            limiter.observe(Category::Sync, 200, &parsed, at(NOW));
        };

        observe(&mut limiter, "21");
        assert_eq!(limiter.admit(Category::Sync, at(NOW)), Ok(()));
        observe(&mut limiter, "20");
        assert_eq!(
            limiter.admit(Category::Sync, at(NOW)),
            Err(SkipReason::QuotaReserve)
        );
        assert_eq!(
            limiter.admit(Category::Sync, at(NOW + 31)),
            Ok(()),
            "new window"
        );
    }
}
