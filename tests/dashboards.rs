//! Static checks of the Grafana dashboards in `dashboards/`: structure, data source wiring,
//! panel types and units, and every PromQL expression against the exporter's metric names.
//!
//! Grafana is not run here; tests/e2e/run.sh runs the same queries against a real Prometheus.

use std::collections::HashSet;
use std::convert::Infallible;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use promql_parser::parser::{self, Call, Expr, LabelModifier};
use promql_parser::util::{ExprVisitor, walk_expr};
use serde_json::{Value, json};

const PINNED_SCHEMA_VERSION: u64 = 39;

/// React panels only: `graph`, `singlestat` and `table-old` are Angular and gone in Grafana 12.
const ALLOWED_PANEL_TYPES: &[&str] = &[
    "timeseries",
    "stat",
    "gauge",
    "bargauge",
    "table",
    "state-timeline",
    "status-history",
    "text",
];

/// Grafana unit ids the dashboards may use; a typo would silently render as a raw number.
const KNOWN_UNITS: &[&str] = &[
    "none",
    "short",
    "percent",
    "percentunit",
    "s",
    "ms",
    "dtdurations",
    "dateTimeAsIso",
    "dateTimeFromNow",
    "reqps",
    "ops",
    "cps",
    "cpm",
    "opm",
];

const GAUGES: &[&str] = &[
    "up",
    "pinkcloudsync_probe_success",
    "pinkcloudsync_probe_last_run_timestamp_seconds",
    "pinkcloudsync_probe_interval_seconds",
    "pinkcloudsync_ratelimit_limit",
    "pinkcloudsync_ratelimit_remaining",
    "pinkcloudsync_ratelimit_reset_timestamp_seconds",
    "pinkcloudsync_ratelimit_backoff_until_timestamp_seconds",
    "pinkcloudsync_token_expiry_timestamp_seconds",
    "pinkcloudsync_token_refresh_margin_seconds",
    "pinkcloudsync_credentials_valid",
    "pinkcloudsync_api_key_expiry_timestamp_seconds",
    "pinkcloudsync_exporter_build_info",
];

/// Counters as Prometheus stores them (OpenMetrics `_total`), and the histogram's series.
const COUNTERS: &[&str] = &[
    "pinkcloudsync_probe_failures_total",
    "pinkcloudsync_probe_skipped_total",
    "pinkcloudsync_http_responses_total",
    "pinkcloudsync_ratelimit_header_errors_total",
    "pinkcloudsync_token_refreshes_total",
    "pinkcloudsync_token_rejected_total",
    "pinkcloudsync_probe_duration_seconds_bucket",
    "pinkcloudsync_probe_duration_seconds_sum",
    "pinkcloudsync_probe_duration_seconds_count",
];

/// Functions whose result is meaningless on a gauge, and the reverse.
const COUNTER_FUNCTIONS: &[&str] = &["rate", "irate", "increase", "resets"];
const GAUGE_FUNCTIONS: &[&str] = &["delta", "idelta", "deriv", "predict_linear"];

/// Stand-ins for Grafana's interval variables: odd durations nobody writes by hand, so a
/// parsed range tells which variable it came from.
const RATE_INTERVAL: Duration = Duration::from_secs(4321);
const INTERVAL: Duration = Duration::from_secs(2468);
const RANGE: Duration = Duration::from_secs(8642);

fn datasource_ref() -> Value {
    json!({"type": "prometheus", "uid": "${datasource}"})
}

// === Loading ===

fn dashboards_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards")
}

fn dashboard_files() -> Vec<PathBuf> {
    let entries = fs::read_dir(dashboards_dir()).expect("dashboards/ is readable");
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("dashboards/ entry is readable").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}

fn load_dashboard(path: &Path) -> Value {
    let text = fs::read_to_string(path).expect("dashboard file is readable");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", path.display()))
}

fn load_named(name: &str) -> Value {
    load_dashboard(&dashboards_dir().join(name))
}

// === Grafana variables ===

fn variable_value(name: &str) -> Option<String> {
    let value = match name {
        "__rate_interval" => format!("{}s", RATE_INTERVAL.as_secs()),
        "__interval" => format!("{}s", INTERVAL.as_secs()),
        "__interval_ms" => INTERVAL.as_millis().to_string(),
        "__range" => format!("{}s", RANGE.as_secs()),
        "__range_s" => RANGE.as_secs().to_string(),
        "__range_ms" => RANGE.as_millis().to_string(),
        "instance" => "127.0.0.1:9873".to_string(),
        "target" => "sandbox".to_string(),
        _ => return None,
    };
    Some(value)
}

/// Replaces `$name`, `${name}` and `${name:format}` the way Grafana would for one value.
fn substitute_variables(expr: &str) -> Result<String, String> {
    if expr.contains("[[") {
        return Err("deprecated [[variable]] syntax".to_string());
    }

    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let (name, len) = variable_at(&rest[pos + 1..])?;
        let value = variable_value(name).ok_or_else(|| format!("unknown variable ${name}"))?;
        out.push_str(&value);
        rest = &rest[pos + 1 + len..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The variable name after a `$`, and how many bytes its reference takes.
fn variable_at(text: &str) -> Result<(&str, usize), String> {
    if let Some(braced) = text.strip_prefix('{') {
        let end = braced.find('}').ok_or("unclosed ${ in expression")?;
        let name = braced[..end].split(':').next().unwrap_or_default();
        return Ok((name, end + 2));
    }

    let len = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    if len == 0 {
        return Err("a lone $ in expression".to_string());
    }
    Ok((&text[..len], len))
}

// === PromQL rules ===

fn is_counter(name: &str) -> bool {
    COUNTERS.contains(&name)
}

fn is_known_metric(name: &str) -> bool {
    GAUGES.contains(&name) || is_counter(name)
}

/// Parses a dashboard expression after variable substitution and applies the query rules.
fn check_expression(expr: &str) -> Vec<String> {
    let substituted = match substitute_variables(expr) {
        Ok(substituted) => substituted,
        Err(problem) => return vec![problem],
    };
    let parsed = match parser::parse(&substituted) {
        Ok(parsed) => parsed,
        Err(e) => return vec![format!("does not parse as PromQL: {e}")],
    };

    let mut rules = QueryRules::default();
    if matches!(parsed, Expr::MatrixSelector(_)) {
        rules
            .problems
            .push("a bare range vector cannot be graphed".to_string());
    }
    walk_expr(&mut rules, &parsed).expect("the query visitor never fails");
    rules.problems
}

#[derive(Default)]
struct QueryRules {
    problems: Vec<String>,
}

impl ExprVisitor for QueryRules {
    type Error = Infallible;

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, Infallible> {
        match expr {
            Expr::VectorSelector(vs) => self.check_metric(vs.name.as_deref()),
            Expr::MatrixSelector(ms) => self.check_metric(ms.vs.name.as_deref()),
            Expr::Call(call) => self.check_call(call),
            _ => {}
        }
        Ok(true)
    }
}

impl QueryRules {
    fn check_metric(&mut self, name: Option<&str>) {
        match name {
            None => self
                .problems
                .push("selector without a metric name".to_string()),
            Some(name) if !is_known_metric(name) => {
                self.problems.push(format!("unknown metric {name}"));
            }
            Some(_) => {}
        }
    }

    fn check_call(&mut self, call: &Call) {
        let func = call.func.name;
        for arg in &call.args.args {
            if let Expr::MatrixSelector(ms) = arg.as_ref() {
                self.check_range_argument(func, ms.vs.name.as_deref(), ms.range);
            } else if COUNTER_FUNCTIONS.contains(&func) {
                self.problems
                    .push(format!("{func}() needs a range selector"));
            }
        }
        if func == "histogram_quantile" {
            self.check_histogram_quantile(call);
        }
    }

    fn check_range_argument(&mut self, func: &str, metric: Option<&str>, range: Duration) {
        let metric = metric.unwrap_or_default();
        if COUNTER_FUNCTIONS.contains(&func) && !is_counter(metric) {
            self.problems
                .push(format!("{func}() on {metric}, which is not a counter"));
        }
        if GAUGE_FUNCTIONS.contains(&func) && is_counter(metric) {
            self.problems
                .push(format!("{func}() on counter {metric}, meant for gauges"));
        }

        let allowed: &[Duration] = match func {
            "rate" | "irate" => &[RATE_INTERVAL],
            "increase" => &[RATE_INTERVAL, RANGE],
            _ => &[RATE_INTERVAL, INTERVAL, RANGE],
        };
        if !allowed.contains(&range) {
            self.problems.push(format!(
                "{func}() window is fixed or the wrong variable; use {}",
                window_names(allowed)
            ));
        }
    }

    fn check_histogram_quantile(&mut self, call: &Call) {
        let [quantile, input] = call.args.args.as_slice() else {
            self.problems
                .push("histogram_quantile() takes two arguments".to_string());
            return;
        };
        if !matches!(quantile.as_ref(), Expr::NumberLiteral(n) if (0.0..=1.0).contains(&n.val)) {
            self.problems
                .push("histogram_quantile() quantile must be in [0, 1]".to_string());
        }

        match strip_parens(input) {
            Expr::Aggregate(agg) if groups_by_le(agg.modifier.as_ref()) => {}
            Expr::Aggregate(_) => self
                .problems
                .push("histogram_quantile() input must be aggregated by (... le ...)".to_string()),
            _ => self.problems.push(
                "histogram_quantile() input must be an aggregation by (... le ...)".to_string(),
            ),
        }

        for name in metric_names(input) {
            if !name.ends_with("_bucket") {
                self.problems.push(format!(
                    "histogram_quantile() over {name}, not a _bucket series"
                ));
            }
        }
    }
}

fn window_names(allowed: &[Duration]) -> String {
    let name = |d: &Duration| match *d {
        RATE_INTERVAL => "$__rate_interval",
        INTERVAL => "$__interval",
        _ => "$__range",
    };
    allowed.iter().map(name).collect::<Vec<_>>().join(" or ")
}

fn strip_parens(expr: &Expr) -> &Expr {
    match expr {
        Expr::Paren(paren) => strip_parens(&paren.expr),
        other => other,
    }
}

fn groups_by_le(modifier: Option<&LabelModifier>) -> bool {
    match modifier {
        Some(LabelModifier::Include(labels)) => labels.labels.iter().any(|l| l == "le"),
        _ => false,
    }
}

fn metric_names(expr: &Expr) -> Vec<String> {
    struct Names(Vec<String>);

    impl ExprVisitor for Names {
        type Error = Infallible;

        fn pre_visit(&mut self, expr: &Expr) -> Result<bool, Infallible> {
            let name = match expr {
                Expr::VectorSelector(vs) => vs.name.clone(),
                Expr::MatrixSelector(ms) => ms.vs.name.clone(),
                _ => None,
            };
            self.0.extend(name);
            Ok(true)
        }
    }

    let mut names = Names(Vec::new());
    walk_expr(&mut names, expr).expect("the name visitor never fails");
    names.0
}

// === Dashboard and panel rules ===

/// Checks one panel: type, unit, data source wiring and each target's expression.
fn check_panel(panel: &Value) -> Vec<String> {
    let mut problems = Vec::new();

    let kind = panel["type"].as_str().unwrap_or("<none>");
    if !ALLOWED_PANEL_TYPES.contains(&kind) {
        problems.push(format!("panel type {kind} is not an allowed React panel"));
    }

    match panel
        .pointer("/fieldConfig/defaults/unit")
        .and_then(Value::as_str)
    {
        None | Some("") => problems.push("no unit in fieldConfig.defaults.unit".to_string()),
        Some(unit) if !KNOWN_UNITS.contains(&unit) => {
            problems.push(format!("unit {unit} is not a known Grafana unit"));
        }
        Some(_) => {}
    }

    if panel["datasource"] != datasource_ref() {
        problems.push(format!(
            "panel datasource is {}, not ${{datasource}}",
            panel["datasource"]
        ));
    }

    problems.extend(check_targets(panel, kind));
    problems
}

fn check_targets(panel: &Value, kind: &str) -> Vec<String> {
    let targets = panel["targets"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if targets.is_empty() && kind != "text" {
        return vec!["panel has no target".to_string()];
    }

    let mut problems = Vec::new();
    for target in targets {
        let ref_id = target["refId"].as_str().unwrap_or("?");
        if target["datasource"] != datasource_ref() {
            problems.push(format!("target {ref_id} datasource is not ${{datasource}}"));
        }
        match target["expr"].as_str() {
            Some(expr) if !expr.trim().is_empty() => {
                let found = check_expression(expr);
                problems.extend(found.into_iter().map(|p| format!("target {ref_id}: {p}")));
            }
            _ => problems.push(format!("target {ref_id} has no expr")),
        }
    }
    problems
}

/// Checks a whole dashboard: identity, pinned schema, variables, and every panel.
fn check_dashboard(dashboard: &Value) -> Vec<String> {
    let mut problems = check_identity(dashboard);
    problems.extend(check_variables(dashboard));

    let panels = dashboard["panels"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if panels.is_empty() {
        problems.push("dashboard has no panels".to_string());
    }
    let mut ids = HashSet::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("<untitled>");
        if !ids.insert(panel["id"].as_u64()) {
            problems.push(format!("panel {title}: id missing or not unique"));
        }
        problems.extend(
            check_panel(panel)
                .into_iter()
                .map(|p| format!("panel {title}: {p}")),
        );
    }
    problems
}

fn check_identity(dashboard: &Value) -> Vec<String> {
    let mut problems = Vec::new();

    let uid = dashboard["uid"].as_str().unwrap_or_default();
    let uid_ok = !uid.is_empty()
        && uid.len() <= 40
        && uid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !uid_ok {
        problems.push(format!(
            "uid {:?} is missing or not a fixed short id",
            dashboard["uid"]
        ));
    }
    if dashboard["schemaVersion"].as_u64() != Some(PINNED_SCHEMA_VERSION) {
        problems.push(format!(
            "schemaVersion is not pinned to {PINNED_SCHEMA_VERSION}"
        ));
    }
    // A numeric id belongs to one Grafana database; file provisioning and import need null.
    if !dashboard["id"].is_null() {
        problems.push("id must be null".to_string());
    }
    if dashboard["title"].as_str().unwrap_or_default().is_empty() {
        problems.push("title is missing".to_string());
    }
    problems
}

fn check_variables(dashboard: &Value) -> Vec<String> {
    let variables = dashboard
        .pointer("/templating/list")
        .and_then(Value::as_array);
    let variables = variables.map(Vec::as_slice).unwrap_or_default();
    let find = |name: &str| variables.iter().find(|v| v["name"] == name);

    let mut problems = Vec::new();
    match find("datasource") {
        Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {}
        _ => problems.push("no datasource variable of type datasource for prometheus".to_string()),
    }
    for name in ["instance", "target"] {
        match find(name) {
            Some(variable) => problems.extend(check_query_variable(name, variable)),
            None => problems.push(format!("no {name} variable")),
        }
    }
    problems
}

fn check_query_variable(name: &str, variable: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if variable["type"] != "query" {
        problems.push(format!("{name} variable is not a query variable"));
    }
    if variable["datasource"] != datasource_ref() {
        problems.push(format!("{name} variable datasource is not ${{datasource}}"));
    }

    // Grafana 10+ stores the query in an object; older exports keep a plain string.
    let query = variable["query"]["query"]
        .as_str()
        .or(variable["query"].as_str());
    match query.map(check_label_values) {
        Some(found) => problems.extend(found.into_iter().map(|p| format!("{name} variable: {p}"))),
        None => problems.push(format!("{name} variable has no query")),
    }
    problems
}

/// `label_values(selector, label)`: the selector must be valid PromQL over known metrics.
fn check_label_values(query: &str) -> Vec<String> {
    let Some(args) = query
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
    else {
        return vec![format!(
            "query {query:?} is not label_values(selector, label)"
        )];
    };
    let Some((selector, label)) = args.rsplit_once(',') else {
        return vec![format!("query {query:?} has no selector")];
    };
    if label.trim().is_empty() {
        return vec![format!("query {query:?} names no label")];
    }
    check_expression(selector.trim())
}

fn assert_no_problems(what: &str, problems: &[String]) {
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

// === Tests over the shipped dashboards ===

#[test]
fn both_dashboards_are_shipped() {
    let names: Vec<String> = dashboard_files()
        .iter()
        .map(|p| {
            p.file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();

    for expected in ["pinkcloudsync-overview.json", "pinkcloudsync-quota.json"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
}

#[test]
fn every_dashboard_passes_all_checks() {
    for path in dashboard_files() {
        let problems = check_dashboard(&load_dashboard(&path));

        assert_no_problems(&path.display().to_string(), &problems);
    }
}

#[test]
fn dashboard_uids_are_unique_and_fixed() {
    let uids: Vec<String> = dashboard_files()
        .iter()
        .map(|path| {
            load_dashboard(path)["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();

    let unique: HashSet<&String> = uids.iter().collect();
    assert_eq!(unique.len(), uids.len(), "duplicate uids in {uids:?}");
    assert!(uids.contains(&"pinkcloudsync-overview".to_string()));
    assert!(uids.contains(&"pinkcloudsync-quota".to_string()));
}

#[test]
fn every_exported_metric_family_appears_on_a_dashboard() {
    let all_exprs: String = dashboard_files()
        .iter()
        .flat_map(|path| {
            let dashboard = load_dashboard(path);
            let panels = dashboard["panels"].as_array().cloned().unwrap_or_default();
            panels.into_iter().flat_map(|panel| {
                let targets = panel["targets"].as_array().cloned().unwrap_or_default();
                targets
                    .into_iter()
                    .map(|t| t["expr"].as_str().unwrap_or_default().to_string())
            })
        })
        .collect::<Vec<_>>()
        .join("\n");

    // The histogram's _sum and _count are covered by its _bucket series.
    let missing: Vec<&&str> = GAUGES
        .iter()
        .chain(COUNTERS)
        .filter(|m| !m.ends_with("_sum") && !m.ends_with("_count"))
        .filter(|m| !all_exprs.contains(*m))
        .collect();
    assert!(missing.is_empty(), "metrics on no dashboard: {missing:?}");
}

// === The checkers reject what they should ===

#[test]
fn expression_checker_rejects_bad_queries() {
    let cases = [
        (
            "rate(pinkcloudsync_probe_success[$__rate_interval])",
            "not a counter",
        ),
        (
            "increase(pinkcloudsync_ratelimit_remaining[$__range])",
            "not a counter",
        ),
        (
            "rate(pinkcloudsync_probe_failures_total[5m])",
            "$__rate_interval",
        ),
        (
            "rate(pinkcloudsync_probe_failures_total[$__interval])",
            "$__rate_interval",
        ),
        (
            "increase(pinkcloudsync_probe_failures_total[$__interval])",
            "window",
        ),
        ("avg_over_time(pinkcloudsync_probe_success[1h])", "window"),
        (
            "deriv(pinkcloudsync_token_refreshes_total[$__rate_interval])",
            "meant for gauges",
        ),
        (
            "rate(pinkcloudsync_probe_failures_total[$__rate_interval:])",
            "range selector",
        ),
        (
            "pinkcloudsync_probe_sucess",
            "unknown metric pinkcloudsync_probe_sucess",
        ),
        (
            "pinkcloudsync_probe_failures",
            "unknown metric pinkcloudsync_probe_failures",
        ),
        ("pinkcloudsync_probe_duration_seconds", "unknown metric"),
        (r#"{__name__=~"pinkcloudsync_.+"}"#, "without a metric name"),
        ("pinkcloudsync_probe_success[$__range]", "bare range vector"),
        (
            "sum(rate(pinkcloudsync_probe_failures_total[$__rate_interval])",
            "does not parse",
        ),
        (r#"up{instance=~"$nope"}"#, "unknown variable $nope"),
        (r#"up{instance=~"[[instance]]"}"#, "deprecated"),
        (
            "histogram_quantile(0.9, sum by (target) \
             (rate(pinkcloudsync_probe_duration_seconds_bucket[$__rate_interval])))",
            "by (... le ...)",
        ),
        (
            "histogram_quantile(0.9, \
             rate(pinkcloudsync_probe_duration_seconds_bucket[$__rate_interval]))",
            "must be an aggregation",
        ),
        (
            "histogram_quantile(0.9, sum without (le) \
             (rate(pinkcloudsync_probe_duration_seconds_bucket[$__rate_interval])))",
            "by (... le ...)",
        ),
        (
            "histogram_quantile(0.9, sum by (le) \
             (rate(pinkcloudsync_probe_duration_seconds_count[$__rate_interval])))",
            "not a _bucket series",
        ),
        (
            "histogram_quantile(95, sum by (le) \
             (rate(pinkcloudsync_probe_duration_seconds_bucket[$__rate_interval])))",
            "quantile must be in [0, 1]",
        ),
    ];

    for (expr, expected) in cases {
        let problems = check_expression(expr);

        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{expr}: expected a problem containing {expected:?}, got {problems:?}"
        );
    }
}

#[test]
fn expression_checker_accepts_good_queries() {
    let cases = [
        "pinkcloudsync_probe_success",
        r#"up{instance=~"${instance:regex}", job="pinkcloudsync"}"#,
        r#"avg_over_time(pinkcloudsync_probe_success{target=~"${target}"}[$__range])"#,
        "max_over_time(pinkcloudsync_ratelimit_remaining[$__interval])",
        "sum by (target) (increase(pinkcloudsync_token_refreshes_total[$__range]))",
        "sum by (code) (increase(pinkcloudsync_http_responses_total[$__rate_interval]))",
        "rate(pinkcloudsync_probe_duration_seconds_sum[$__rate_interval]) \
         / rate(pinkcloudsync_probe_duration_seconds_count[$__rate_interval])",
        "histogram_quantile(0.99, sum by (target, probe, le) \
         (rate(pinkcloudsync_probe_duration_seconds_bucket{probe=\"auth\"}[$__rate_interval])))",
        "histogram_quantile(0.5, (sum by (le) \
         (rate(pinkcloudsync_probe_duration_seconds_bucket[$__rate_interval]))))",
        "pinkcloudsync_token_expiry_timestamp_seconds - time() \
         < pinkcloudsync_token_refresh_margin_seconds",
        "deriv(pinkcloudsync_ratelimit_remaining[$__rate_interval])",
    ];

    for expr in cases {
        assert_no_problems(expr, &check_expression(expr));
    }
}

#[test]
fn variable_substitution_follows_grafana_syntax() {
    let cases = [
        ("rate(x[$__rate_interval])", "rate(x[4321s])"),
        ("x[$__range] offset $__interval", "x[8642s] offset 2468s"),
        ("$__range_s / $__range_ms", "8642 / 8642000"),
        (
            r#"x{target=~"$target",instance="${instance}"}"#,
            r#"x{target=~"sandbox",instance="127.0.0.1:9873"}"#,
        ),
        (r#"x{target=~"${target:regex}"}"#, r#"x{target=~"sandbox"}"#),
    ];

    for (expr, expected) in cases {
        assert_eq!(
            substitute_variables(expr).as_deref(),
            Ok(expected),
            "{expr}"
        );
    }
    assert!(substitute_variables("x{a=\"${unclosed\"}").is_err());
    assert!(substitute_variables("x / $").is_err());
}

fn good_panel() -> Value {
    json!({
        "id": 1,
        "type": "timeseries",
        "title": "Failures",
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "fieldConfig": {"defaults": {"unit": "cpm"}, "overrides": []},
        "targets": [{
            "refId": "A",
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "expr": "sum by (reason) \
                     (rate(pinkcloudsync_probe_failures_total[$__rate_interval])) * 60"
        }]
    })
}

#[test]
fn panel_checker_accepts_a_good_panel() {
    assert_no_problems("good panel", &check_panel(&good_panel()));
}

#[test]
fn panel_checker_rejects_bad_panels() {
    type Mutation = fn(&mut Value);
    let cases: [(&str, Mutation, &str); 10] = [
        (
            "graph panel",
            |p| p["type"] = json!("graph"),
            "not an allowed React panel",
        ),
        (
            "singlestat panel",
            |p| p["type"] = json!("singlestat"),
            "not an allowed React panel",
        ),
        (
            "table-old panel",
            |p| p["type"] = json!("table-old"),
            "not an allowed React panel",
        ),
        (
            "no unit",
            |p| p["fieldConfig"]["defaults"] = json!({}),
            "no unit",
        ),
        (
            "empty unit",
            |p| p["fieldConfig"]["defaults"]["unit"] = json!(""),
            "no unit",
        ),
        (
            "misspelt unit",
            |p| p["fieldConfig"]["defaults"]["unit"] = json!("secs"),
            "known Grafana unit",
        ),
        (
            "fixed datasource uid",
            |p| p["datasource"] = json!({"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}),
            "panel datasource",
        ),
        (
            "datasource by name",
            |p| p["datasource"] = json!("Prometheus"),
            "panel datasource",
        ),
        (
            "target without datasource",
            |p| {
                let target = p["targets"][0].as_object_mut().expect("target object");
                target.remove("datasource");
            },
            "target A datasource",
        ),
        (
            "rate of a gauge",
            |p| {
                p["targets"][0]["expr"] =
                    json!("rate(pinkcloudsync_probe_success[$__rate_interval])")
            },
            "target A: rate() on pinkcloudsync_probe_success",
        ),
    ];

    for (name, mutate, expected) in cases {
        let mut panel = good_panel();
        mutate(&mut panel);

        let problems = check_panel(&panel);

        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{name}: expected a problem containing {expected:?}, got {problems:?}"
        );
    }

    let mut no_targets = good_panel();
    no_targets["targets"] = json!([]);
    assert!(
        check_panel(&no_targets)
            .iter()
            .any(|p| p.contains("no target"))
    );
}

#[test]
fn dashboard_checker_rejects_broken_dashboards() {
    type Mutation = fn(&mut Value);
    let cases: [(&str, Mutation, &str); 10] = [
        ("no uid", |d| d["uid"] = Value::Null, "uid"),
        (
            "uid with spaces",
            |d| d["uid"] = json!("pink cloud sync"),
            "uid",
        ),
        (
            "schema not pinned",
            |d| d["schemaVersion"] = json!(36),
            "schemaVersion",
        ),
        ("database id", |d| d["id"] = json!(42), "id must be null"),
        (
            "no variables",
            |d| d["templating"]["list"] = json!([]),
            "no datasource variable",
        ),
        (
            "target variable dropped",
            |d| remove_variable(d, "target"),
            "no target variable",
        ),
        (
            "instance variable not a query",
            |d| variable_mut(d, "instance")["type"] = json!("custom"),
            "instance variable is not a query variable",
        ),
        (
            "variable with a fixed datasource",
            |d| {
                variable_mut(d, "target")["datasource"] =
                    json!({"type": "prometheus", "uid": "abc"})
            },
            "target variable datasource",
        ),
        (
            "variable over an unknown metric",
            |d| {
                variable_mut(d, "target")["query"]["query"] =
                    json!("label_values(probe_success, target)")
            },
            "unknown metric probe_success",
        ),
        (
            "angular panel",
            |d| d["panels"][0]["type"] = json!("graph"),
            "not an allowed React panel",
        ),
    ];

    for (name, mutate, expected) in cases {
        let mut dashboard = load_named("pinkcloudsync-overview.json");
        mutate(&mut dashboard);

        let problems = check_dashboard(&dashboard);

        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{name}: expected a problem containing {expected:?}, got {problems:?}"
        );
    }
}

fn variable_mut<'a>(dashboard: &'a mut Value, name: &str) -> &'a mut Value {
    let list = dashboard["templating"]["list"]
        .as_array_mut()
        .expect("variable list");
    list.iter_mut()
        .find(|v| v["name"] == name)
        .expect("variable exists")
}

fn remove_variable(dashboard: &mut Value, name: &str) {
    let list = dashboard["templating"]["list"]
        .as_array_mut()
        .expect("variable list");
    list.retain(|v| v["name"] != name);
}
