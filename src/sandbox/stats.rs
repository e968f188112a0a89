//! Counts of the /v1 requests the sandbox received, so tests can prove what a client sent.

use std::collections::BTreeMap;

use serde::Serialize;

use super::ratelimit::Category;

/// The status label of a request that was never answered (a `hang` fault).
pub const NO_ANSWER: &str = "none";

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct RequestKind {
    endpoint: String,
    key: String,
    category: Category,
    status: String,
}

/// Request counts by endpoint, rate-limit key, category and answered status.
#[derive(Debug, Default)]
pub struct Stats {
    counts: BTreeMap<RequestKind, u64>,
}

/// One row of [`StatsView::requests`].
#[derive(Debug, Serialize)]
pub struct RequestCount {
    endpoint: String,
    key: String,
    category: Category,
    status: String,
    count: u64,
}

/// The JSON answer of `GET /_sandbox/stats`.
#[derive(Debug, Serialize)]
pub struct StatsView {
    total: u64,
    by_endpoint: BTreeMap<String, u64>,
    by_key: BTreeMap<String, u64>,
    by_category: BTreeMap<Category, u64>,
    by_status: BTreeMap<String, u64>,
    requests: Vec<RequestCount>,
}

impl Stats {
    pub fn record(&mut self, endpoint: &str, key: &str, category: Category, status: &str) {
        let kind = RequestKind {
            endpoint: endpoint.to_owned(),
            key: key.to_owned(),
            category,
            status: status.to_owned(),
        };
        *self.counts.entry(kind).or_insert(0) += 1;
    }

    pub fn reset(&mut self) {
        self.counts.clear();
    }

    pub fn view(&self) -> StatsView {
        let mut view = StatsView {
            total: 0,
            by_endpoint: BTreeMap::new(),
            by_key: BTreeMap::new(),
            by_category: Category::ALL.into_iter().map(|c| (c, 0)).collect(),
            by_status: BTreeMap::new(),
            requests: Vec::new(),
        };
        for (kind, &count) in &self.counts {
            view.add(kind, count);
        }
        view
    }
}

impl StatsView {
    fn add(&mut self, kind: &RequestKind, count: u64) {
        self.total += count;
        *self.by_endpoint.entry(kind.endpoint.clone()).or_insert(0) += count;
        *self.by_key.entry(kind.key.clone()).or_insert(0) += count;
        *self.by_category.entry(kind.category).or_insert(0) += count;
        *self.by_status.entry(kind.status.clone()).or_insert(0) += count;
        self.requests.push(RequestCount {
            endpoint: kind.endpoint.clone(),
            key: kind.key.clone(),
            category: kind.category,
            status: kind.status.clone(),
            count,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_empty_view_lists_every_category() {
        let view = serde_json::to_value(Stats::default().view()).expect("serializes");

        assert_eq!(
            view,
            json!({
                "total": 0, "by_endpoint": {}, "by_key": {},
                "by_category": {"auth": 0, "sync": 0, "read": 0},
                "by_status": {}, "requests": []
            })
        );
    }

    #[test]
    fn requests_are_summed_along_each_dimension() {
        let mut stats = Stats::default();
        stats.record("POST /v1/auth/token", "pk_a", Category::Auth, "200");
        stats.record("POST /v1/auth/token", "pk_a", Category::Auth, "200");
        stats.record("GET /v1/sync/sessions", "pk_a", Category::Sync, "401");

        let view = serde_json::to_value(stats.view()).expect("serializes");

        assert_eq!(view["total"], 3);
        assert_eq!(view["by_endpoint"]["POST /v1/auth/token"], 2);
        assert_eq!(view["by_key"]["pk_a"], 3);
        assert_eq!(
            view["by_category"],
            json!({"auth": 2, "sync": 1, "read": 0})
        );
        assert_eq!(view["by_status"], json!({"200": 2, "401": 1}));
        assert_eq!(
            view["requests"][0],
            json!({"endpoint": "GET /v1/sync/sessions", "key": "pk_a", "category": "sync",
                   "status": "401", "count": 1})
        );
    }

    #[test]
    fn reset_zeroes_every_count() {
        let mut stats = Stats::default();
        stats.record("GET /v1/account", "anonymous", Category::Read, "401");

        stats.reset();

        assert_eq!(stats.view().total, 0);
    }
}
