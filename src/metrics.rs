//! Every metric the exporter serves: names, help texts, units, labels, and the label sets
//! created at start-up so that `increase()` sees the first failure.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::probe::{FailureReason, ProbeKind, SkipReason};
use crate::ratelimit::Category;

/// Buckets for API latency: 10 ms to 10 s.
const DURATION_BUCKETS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// HTTP codes whose counters exist from start-up: the ones alerts count.
const KNOWN_CODES: [u16; 3] = [200, 401, 429];
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

type FloatGauge = Gauge<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    pub target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProbeLabels {
    pub target: String,
    pub probe: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub target: String,
    pub probe: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabels {
    pub target: String,
    pub probe: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CategoryLabels {
    pub target: String,
    pub category: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: String,
}

pub struct Metrics {
    registry: Registry,
    pub probe_success: Family<ProbeLabels, Gauge>,
    pub probe_duration: Family<ProbeLabels, Histogram, fn() -> Histogram>,
    pub probe_last_run: Family<ProbeLabels, FloatGauge>,
    pub probe_interval: Family<ProbeLabels, FloatGauge>,
    pub probe_failures: Family<ReasonLabels, Counter>,
    pub probe_skipped: Family<ReasonLabels, Counter>,
    pub http_responses: Family<CodeLabels, Counter>,
    pub ratelimit_limit: Family<CategoryLabels, Gauge>,
    pub ratelimit_remaining: Family<CategoryLabels, Gauge>,
    pub ratelimit_reset: Family<CategoryLabels, FloatGauge>,
    pub ratelimit_backoff_until: Family<CategoryLabels, FloatGauge>,
    pub ratelimit_header_errors: Family<TargetLabels, Counter>,
    pub token_expiry: Family<TargetLabels, FloatGauge>,
    pub token_refresh_margin: Family<TargetLabels, FloatGauge>,
    pub token_refreshes: Family<TargetLabels, Counter>,
    pub token_rejected: Family<TargetLabels, Counter>,
    pub credentials_valid: Family<TargetLabels, Gauge>,
    pub api_key_expiry: Family<TargetLabels, FloatGauge>,
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut metrics = Metrics {
            registry: Registry::with_prefix("pinkcloudsync"),
            probe_success: Family::default(),
            probe_duration: Family::new_with_constructor(duration_histogram),
            probe_last_run: Family::default(),
            probe_interval: Family::default(),
            probe_failures: Family::default(),
            probe_skipped: Family::default(),
            http_responses: Family::default(),
            ratelimit_limit: Family::default(),
            ratelimit_remaining: Family::default(),
            ratelimit_reset: Family::default(),
            ratelimit_backoff_until: Family::default(),
            ratelimit_header_errors: Family::default(),
            token_expiry: Family::default(),
            token_refresh_margin: Family::default(),
            token_refreshes: Family::default(),
            token_rejected: Family::default(),
            credentials_valid: Family::default(),
            api_key_expiry: Family::default(),
        };
        metrics.register_all();
        metrics
    }

    fn register_all(&mut self) {
        let r = &mut self.registry;
        r.register(
            "probe_success",
            "1 if the last scheduled probe succeeded, 0 if it failed (set by the probe, not by the scrape)",
            self.probe_success.clone(),
        );
        r.register_with_unit(
            "probe_duration",
            "Duration of scheduled probes, including a token fetch and one retry",
            Unit::Seconds,
            self.probe_duration.clone(),
        );
        r.register_with_unit(
            "probe_last_run_timestamp",
            "Unix time of the last scheduled probe run, skipped runs included",
            Unit::Seconds,
            self.probe_last_run.clone(),
        );
        r.register_with_unit(
            "probe_interval",
            "Configured time between runs of the probe (for a cron schedule, the shortest gap)",
            Unit::Seconds,
            self.probe_interval.clone(),
        );
        r.register(
            "probe_failures",
            "Scheduled probe runs that failed, by reason",
            self.probe_failures.clone(),
        );
        r.register(
            "probe_skipped",
            "Scheduled probe runs not sent: overlap with the previous run, backoff after a 429, or quota reserve",
            self.probe_skipped.clone(),
        );
        r.register(
            "http_responses",
            "HTTP responses received by scheduled probes, by status code",
            self.http_responses.clone(),
        );
        r.register(
            "ratelimit_limit",
            "X-RateLimit-Limit of the last response in the category, from the last scheduled probe",
            self.ratelimit_limit.clone(),
        );
        r.register(
            "ratelimit_remaining",
            "X-RateLimit-Remaining of the last response in the category, from the last scheduled probe",
            self.ratelimit_remaining.clone(),
        );
        r.register_with_unit(
            "ratelimit_reset_timestamp",
            "X-RateLimit-Reset of the last response in the category as unix time, from the last scheduled probe",
            Unit::Seconds,
            self.ratelimit_reset.clone(),
        );
        r.register_with_unit(
            "ratelimit_backoff_until_timestamp",
            "Unix time until which probes send nothing in the category after a 429, 0 when not backing off",
            Unit::Seconds,
            self.ratelimit_backoff_until.clone(),
        );
        r.register(
            "ratelimit_header_errors",
            "Rate-limit headers that could not be parsed and were ignored",
            self.ratelimit_header_errors.clone(),
        );
        r.register_with_unit(
            "token_expiry_timestamp",
            "Unix time at which the cached access token expires, from the last token fetched by a scheduled probe",
            Unit::Seconds,
            self.token_expiry.clone(),
        );
        r.register_with_unit(
            "token_refresh_margin",
            "A token is refreshed when less than this is left of its life",
            Unit::Seconds,
            self.token_refresh_margin.clone(),
        );
        r.register(
            "token_refreshes",
            "Access tokens fetched",
            self.token_refreshes.clone(),
        );
        r.register(
            "token_rejected",
            "401 answers to a request made with a token; the token is dropped and, if it came from the cache, the request retried once with a new one",
            self.token_rejected.clone(),
        );
        r.register(
            "credentials_valid",
            "0 after the auth endpoint answered invalid_credentials, 1 after a token was issued, from the last scheduled probe",
            self.credentials_valid.clone(),
        );
        r.register_with_unit(
            "api_key_expiry_timestamp",
            "Unix time at which the API key expires, as configured in api_key_expires_at",
            Unit::Seconds,
            self.api_key_expiry.clone(),
        );

        let build_info = Family::<VersionLabels, Gauge>::default();
        let version = VersionLabels {
            version: env!("CARGO_PKG_VERSION").to_string(),
        };
        build_info.get_or_create(&version).set(1);
        r.register(
            "exporter_build_info",
            "A metric with a constant 1 labelled by the exporter's version",
            build_info,
        );
    }

    /// Creates the series of a target that must exist before anything happens.
    pub fn init_target(&self, target: &str, probes: &[(ProbeKind, f64)], margin_seconds: f64) {
        let t = target.to_string();
        for (kind, interval_seconds) in probes {
            let probe = kind.as_str().to_string();
            let labels = ProbeLabels {
                target: t.clone(),
                probe: probe.clone(),
            };
            self.probe_interval
                .get_or_create(&labels)
                .set(*interval_seconds);
            for reason in FailureReason::ALL {
                let _ = self.probe_failures.get_or_create(&reason_labels(
                    target,
                    *kind,
                    reason.as_str(),
                ));
            }
            for reason in SkipReason::ALL {
                let _ = self.probe_skipped.get_or_create(&reason_labels(
                    target,
                    *kind,
                    reason.as_str(),
                ));
            }
            for code in KNOWN_CODES {
                let _ = self
                    .http_responses
                    .get_or_create(&code_labels(target, *kind, code));
            }
        }
        let labels = TargetLabels { target: t };
        let _ = self.ratelimit_header_errors.get_or_create(&labels);
        let _ = self.token_refreshes.get_or_create(&labels);
        let _ = self.token_rejected.get_or_create(&labels);
        self.token_refresh_margin
            .get_or_create(&labels)
            .set(margin_seconds);
        for category in Category::ALL {
            let labels = category_labels(target, category);
            self.ratelimit_backoff_until.get_or_create(&labels).set(0.0);
        }
    }

    /// The OpenMetrics text of every registered metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

pub fn target_labels(target: &str) -> TargetLabels {
    TargetLabels {
        target: target.to_string(),
    }
}

pub fn probe_labels(target: &str, kind: ProbeKind) -> ProbeLabels {
    ProbeLabels {
        target: target.to_string(),
        probe: kind.as_str().to_string(),
    }
}

pub fn reason_labels(target: &str, kind: ProbeKind, reason: &str) -> ReasonLabels {
    ReasonLabels {
        target: target.to_string(),
        probe: kind.as_str().to_string(),
        reason: reason.to_string(),
    }
}

pub fn code_labels(target: &str, kind: ProbeKind, code: u16) -> CodeLabels {
    CodeLabels {
        target: target.to_string(),
        probe: kind.as_str().to_string(),
        code: code.to_string(),
    }
}

pub fn category_labels(target: &str, category: Category) -> CategoryLabels {
    CategoryLabels {
        target: target.to_string(),
        category: category.as_str().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_exist_at_zero_from_start_up() {
        let metrics = Metrics::new();
        metrics.init_target("prod", &[(ProbeKind::Sessions, 15.0)], 300.0);

        let text = metrics.encode().unwrap();

        assert!(text.contains(
            "pinkcloudsync_probe_failures_total{target=\"prod\",probe=\"sessions\",reason=\"unauthorized\"} 0"
        ));
        assert!(text.contains(
            "pinkcloudsync_http_responses_total{target=\"prod\",probe=\"sessions\",code=\"429\"} 0"
        ));
        assert!(text.contains(
            "pinkcloudsync_probe_interval_seconds{target=\"prod\",probe=\"sessions\"} 15.0"
        ));
        assert!(text.contains("pinkcloudsync_exporter_build_info{version="));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn help_texts_end_with_one_full_stop() {
        let text = Metrics::new().encode().unwrap();

        for line in text.lines().filter(|l| l.starts_with("# HELP")) {
            assert!(line.ends_with('.') && !line.ends_with(".."), "{line}");
        }
    }
}
