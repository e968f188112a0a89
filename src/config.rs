//! Configuration: the TOML schema, its defaults, and the checks that turn the raw file into a
//! typed `Config`, naming the path of every bad field.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use serde::Deserialize;

use crate::probe::ProbeKind;
use crate::ratelimit::Category;
use crate::secret::Secret;

/// Share of a category's limit that the configured schedules may use, unless set.
pub const DEFAULT_MAX_QUOTA_SHARE: f64 = 0.5;
/// Share of each category's window that probes leave to the real workload, unless set.
pub const DEFAULT_QUOTA_RESERVE: f64 = 0.2;
/// A token is refreshed when less than this is left of its life, unless set.
pub const DEFAULT_TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(300);
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 1024 * 1024;
/// Config files larger than this are refused rather than read into memory.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
/// A secret file longer than this is not a secret file.
const MAX_SECRET_BYTES: u64 = 4096;
/// Values longer than this are shortened in error messages.
const MAX_SHOWN_CHARS: usize = 80;
/// The token lifetime the API document gives; used to estimate refreshes at config time.
pub const DOCUMENTED_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

// === Raw form: exactly what the file says ===

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub max_quota_share: Option<f64>,
    #[serde(default)]
    pub targets: Vec<RawTarget>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    pub name: String,
    pub base_url: String,
    pub api_key: String,
    pub api_secret_env: Option<String>,
    pub api_secret_file: Option<PathBuf>,
    pub api_key_expires_at: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub token_refresh_margin: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub connect_timeout: Option<Duration>,
    pub max_response_bytes: Option<u64>,
    #[serde(default)]
    pub quota_reserve: RawPerCategory<f64>,
    #[serde(default)]
    pub rate_limits: RawPerCategory<u32>,
    #[serde(default)]
    pub probes: RawProbes,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPerCategory<T> {
    pub auth: Option<T>,
    pub sync: Option<T>,
    pub read: Option<T>,
}

impl<T> Default for RawPerCategory<T> {
    fn default() -> Self {
        RawPerCategory {
            auth: None,
            sync: None,
            read: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProbes {
    pub auth: Option<RawProbe>,
    pub sessions: Option<RawProbe>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProbe {
    #[serde(default, with = "humantime_serde")]
    pub interval: Option<Duration>,
    pub schedule: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

// === Typed form: what the daemon runs with ===

#[derive(Debug, Clone)]
pub struct Config {
    pub max_quota_share: f64,
    pub targets: Vec<TargetConfig>,
}

#[derive(Debug, Clone)]
pub struct TargetConfig {
    pub name: String,
    /// Without a trailing slash; endpoint paths are appended to it.
    pub base_url: reqwest::Url,
    pub api_key: String,
    pub api_secret: Secret,
    pub api_key_expires_at: Option<DateTime<Utc>>,
    pub token_refresh_margin: Duration,
    pub connect_timeout: Duration,
    pub max_response_bytes: u64,
    pub quota_reserve: PerCategory<f64>,
    pub rate_limits: PerCategory<u32>,
    pub probes: Vec<ProbeConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerCategory<T> {
    pub auth: T,
    pub sync: T,
    pub read: T,
}

impl<T: Copy> PerCategory<T> {
    pub fn get(&self, category: Category) -> T {
        match category {
            Category::Auth => self.auth,
            Category::Sync => self.sync,
            Category::Read => self.read,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ProbeConfig {
    pub kind: ProbeKind,
    pub schedule: Schedule,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub enum Schedule {
    Every(Duration),
    Cron { expression: String, cron: Box<Cron> },
}

impl Schedule {
    /// The time between runs: the interval, or for a cron expression the shortest gap among
    /// its next occurrences.
    pub fn period(&self) -> Duration {
        match self {
            Schedule::Every(interval) => *interval,
            Schedule::Cron { cron, .. } => cron_min_gap(cron),
        }
    }

    /// Runs per minute on average, for the quota budget.
    pub fn runs_per_minute(&self) -> f64 {
        match self {
            Schedule::Every(interval) => 60.0 / interval.as_secs_f64(),
            Schedule::Cron { cron, .. } => cron_runs_per_minute(cron),
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Every(interval) => {
                write!(f, "every {}", humantime::format_duration(*interval))
            }
            Schedule::Cron { expression, .. } => write!(f, "on schedule \"{expression}\""),
        }
    }
}

// === Errors ===

/// One bad field: its path in the file and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is larger than {MAX_CONFIG_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("config file {path}: {field}: {message}")]
    Parse {
        path: PathBuf,
        field: String,
        message: String,
    },
    #[error("config file {path} is invalid:\n  {}", list(.errors))]
    Invalid {
        path: PathBuf,
        errors: Vec<FieldError>,
    },
}

fn list(errors: &[FieldError]) -> String {
    let lines: Vec<String> = errors.iter().map(FieldError::to_string).collect();
    lines.join("\n  ")
}

// === Loading ===

/// Reads, parses and checks a config file, taking secrets from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = read_bounded(path)?;
    let raw = parse(path, &text)?;
    let base_dir = path.parent().unwrap_or(Path::new("."));

    validate(raw, base_dir, &|name| std::env::var(name).ok()).map_err(|errors| {
        ConfigError::Invalid {
            path: path.to_owned(),
            errors,
        }
    })
}

/// Reads the config file, refusing one over `MAX_CONFIG_BYTES` (`/dev/zero` included).
fn read_bounded(path: &Path) -> Result<String, ConfigError> {
    match read_at_most(path, MAX_CONFIG_BYTES) {
        Ok(Some(text)) => Ok(text),
        Ok(None) => Err(ConfigError::TooLarge {
            path: path.to_owned(),
        }),
        Err(source) => Err(ConfigError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// A file's text, or None when it is longer than `max` bytes.
fn read_at_most(path: &Path, max: u64) -> std::io::Result<Option<String>> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(max + 1)
        .read_to_string(&mut text)?;
    Ok((text.len() as u64 <= max).then_some(text))
}

/// Parses TOML into the raw form, reporting the path of the field that does not fit.
pub fn parse(path: &Path, text: &str) -> Result<RawConfig, ConfigError> {
    let parse_error = |field: String, message: String| ConfigError::Parse {
        path: path.to_owned(),
        field,
        message,
    };
    let deserializer = toml::Deserializer::parse(text)
        .map_err(|e| parse_error(position(text, &e), shorten(e.message().trim())))?;

    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let field = match e.path().to_string() {
            p if p == "." => position(text, e.inner()),
            p => p,
        };
        parse_error(field, shorten(e.inner().message().trim()))
    })
}

/// "line L, column C" of a TOML error, for errors that no field path can name.
fn position(text: &str, error: &toml::de::Error) -> String {
    let Some(offset) = error.span().map(|span| span.start.min(text.len())) else {
        return "(document)".to_string();
    };
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.chars().rev().take_while(|c| *c != '\n').count() + 1;
    format!("line {line}, column {column}")
}

/// A value as shown in an error: at most `MAX_SHOWN_CHARS` characters.
fn shown(value: &str) -> String {
    shorten_to(value, MAX_SHOWN_CHARS)
}

/// A parser message, which may quote a value: bounded too.
fn shorten(message: &str) -> String {
    shorten_to(message, 3 * MAX_SHOWN_CHARS)
}

fn shorten_to(value: &str, max: usize) -> String {
    match value.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_string(),
    }
}

/// Checks the raw config into the typed one. `env` looks up environment variables, so that
/// the demo and tests can supply secrets without touching the process environment.
pub fn validate(
    raw: RawConfig,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Vec<FieldError>> {
    let mut errors = Vec::new();
    let max_quota_share = raw.max_quota_share.unwrap_or(DEFAULT_MAX_QUOTA_SHARE);
    let share_valid = max_quota_share > 0.0 && max_quota_share <= 1.0;
    if !share_valid {
        errors.push(field_error(
            "max_quota_share",
            format!("{max_quota_share} must be greater than 0 and at most 1"),
        ));
    }
    if raw.targets.is_empty() {
        errors.push(field_error(
            "targets",
            "at least one [[targets]] entry is required",
        ));
    }

    let mut names = HashSet::new();
    let mut targets = Vec::new();
    for (index, raw_target) in raw.targets.into_iter().enumerate() {
        let checker = TargetChecker {
            path: format!("targets[{index}]"),
            base_dir,
            env,
            max_quota_share: share_valid.then_some(max_quota_share),
            errors: &mut errors,
        };
        if let Some(target) = checker.check(raw_target) {
            if !names.insert(target.name.clone()) {
                errors.push(field_error(
                    format!("targets[{index}].name"),
                    format!(
                        "\"{}\" is used by another target; names must be unique",
                        target.name
                    ),
                ));
            }
            targets.push(target);
        }
    }

    if errors.is_empty() && share_valid {
        errors.extend(check_shared_keys(&targets, max_quota_share));
    }
    if errors.is_empty() {
        Ok(Config {
            max_quota_share,
            targets,
        })
    } else {
        Err(errors)
    }
}

fn field_error(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

struct TargetChecker<'a> {
    path: String,
    base_dir: &'a Path,
    env: &'a dyn Fn(&str) -> Option<String>,
    /// None when the share itself is invalid: the budget is then not checked.
    max_quota_share: Option<f64>,
    errors: &'a mut Vec<FieldError>,
}

impl TargetChecker<'_> {
    fn error(&mut self, field: &str, message: impl Into<String>) {
        let field = format!("{}.{field}", self.path);
        self.errors.push(field_error(field, message));
    }

    fn check(mut self, raw: RawTarget) -> Option<TargetConfig> {
        let before = self.errors.len();
        self.check_name(&raw.name);
        let base_url = self.check_base_url(&raw.base_url);
        self.check_api_key(&raw.api_key);
        let api_secret = self.check_secret(&raw);
        let api_key_expires_at = self.check_key_expiry(raw.api_key_expires_at.as_deref());
        let token_refresh_margin = raw
            .token_refresh_margin
            .unwrap_or(DEFAULT_TOKEN_REFRESH_MARGIN);
        if token_refresh_margin.is_zero() {
            self.error("token_refresh_margin", "must be greater than 0s");
        }
        let connect_timeout = raw.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        if connect_timeout.is_zero() {
            self.error("connect_timeout", "must be greater than 0s");
        }
        let max_response_bytes = raw.max_response_bytes.unwrap_or(DEFAULT_MAX_RESPONSE_BYTES);
        if max_response_bytes < 1024 {
            self.error(
                "max_response_bytes",
                format!("{max_response_bytes} is too small; use at least 1024"),
            );
        }
        let quota_reserve = self.check_reserve(&raw.quota_reserve);
        let rate_limits = self.check_limits(&raw.rate_limits);
        let probes = self.check_probes(&raw.probes);
        self.check_budget(&raw.name, &probes, &rate_limits);

        if self.errors.len() > before {
            return None;
        }
        Some(TargetConfig {
            name: raw.name,
            base_url: base_url?,
            api_key: raw.api_key,
            api_secret: api_secret?,
            api_key_expires_at,
            token_refresh_margin,
            connect_timeout,
            max_response_bytes,
            quota_reserve,
            rate_limits,
            probes,
        })
    }

    fn check_name(&mut self, name: &str) {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid {
            self.error(
                "name",
                format!(
                    "\"{}\" must be 1 to 64 characters of letters, digits, '_', '-', '.'",
                    shown(name)
                ),
            );
        }
    }

    fn check_base_url(&mut self, text: &str) -> Option<reqwest::Url> {
        let url = match reqwest::Url::parse(text) {
            Ok(url) => url,
            Err(e) => {
                let message = format!("\"{}\" is not a URL: {e}", shown(text));
                self.error("base_url", message);
                return None;
            }
        };
        let problem = if !matches!(url.scheme(), "http" | "https") {
            Some("must use http or https")
        } else if url.host_str().is_none() {
            Some("must name a host")
        } else if !url.username().is_empty() || url.password().is_some() {
            Some("must not carry credentials; use api_key and api_secret_env or api_secret_file")
        } else if url.query().is_some() || url.fragment().is_some() {
            Some("must not have a query or fragment")
        } else if url.path().trim_end_matches('/').is_empty() {
            Some("must include the API's version path, e.g. https://api.pinkcloudsync.example/v1")
        } else {
            None
        };
        if let Some(problem) = problem {
            let message = format!("\"{}\" {problem}", shown(&redact_url(&url)));
            self.error("base_url", message);
            return None;
        }

        let mut url = url;
        let trimmed = url.path().trim_end_matches('/').to_string();
        url.set_path(&trimmed);
        Some(url)
    }

    fn check_api_key(&mut self, api_key: &str) {
        if !api_key.starts_with("pk_") || api_key.len() <= 3 {
            self.error(
                "api_key",
                "must be a public API key starting with \"pk_\" (the secret goes in api_secret_env or api_secret_file)",
            );
        }
    }

    fn check_secret(&mut self, raw: &RawTarget) -> Option<Secret> {
        let value = match (&raw.api_secret_env, &raw.api_secret_file) {
            (Some(_), Some(_)) => {
                self.error(
                    "api_secret_env",
                    "set only one of api_secret_env and api_secret_file",
                );
                return None;
            }
            (None, None) => {
                self.error(
                    "api_secret_env",
                    "one of api_secret_env or api_secret_file is required",
                );
                return None;
            }
            (Some(var), None) => match (self.env)(var) {
                Some(value) => value,
                None => {
                    self.error(
                        "api_secret_env",
                        format!("environment variable {var} is not set"),
                    );
                    return None;
                }
            },
            (None, Some(file)) => {
                let path = self.base_dir.join(file);
                match read_at_most(&path, MAX_SECRET_BYTES) {
                    Ok(Some(text)) => text.trim_end_matches(['\r', '\n']).to_string(),
                    Ok(None) => {
                        let message =
                            format!("{} is longer than {MAX_SECRET_BYTES} bytes", path.display());
                        self.error("api_secret_file", message);
                        return None;
                    }
                    Err(e) => {
                        let shown = path.display();
                        self.error("api_secret_file", format!("cannot read {shown}: {e}"));
                        return None;
                    }
                }
            }
        };
        let field = if raw.api_secret_env.is_some() {
            "api_secret_env"
        } else {
            "api_secret_file"
        };
        if value.is_empty() {
            self.error(field, "the secret is empty");
            return None;
        }
        if !value.starts_with("sk_") {
            self.error(
                field,
                "the secret does not start with \"sk_\" (value not shown)",
            );
            return None;
        }
        Some(Secret::new(value))
    }

    fn check_key_expiry(&mut self, text: Option<&str>) -> Option<DateTime<Utc>> {
        let text = text?;
        match DateTime::parse_from_rfc3339(text) {
            Ok(at) => Some(at.with_timezone(&Utc)),
            Err(e) => {
                let message = format!("\"{}\" is not an RFC 3339 time: {e}", shown(text));
                self.error("api_key_expires_at", message);
                None
            }
        }
    }

    fn check_reserve(&mut self, raw: &RawPerCategory<f64>) -> PerCategory<f64> {
        let mut pick = |name: &str, value: Option<f64>| {
            let value = value.unwrap_or(DEFAULT_QUOTA_RESERVE);
            if !(0.0..1.0).contains(&value) {
                let message = format!("{value} must be at least 0 and less than 1");
                self.error(&format!("quota_reserve.{name}"), message);
            }
            value
        };
        PerCategory {
            auth: pick("auth", raw.auth),
            sync: pick("sync", raw.sync),
            read: pick("read", raw.read),
        }
    }

    fn check_limits(&mut self, raw: &RawPerCategory<u32>) -> PerCategory<u32> {
        let mut pick = |category: Category, value: Option<u32>| {
            let value = value.unwrap_or(category.documented_limit());
            if value == 0 {
                let name = category.as_str();
                self.error(&format!("rate_limits.{name}"), "must be at least 1");
            }
            value
        };
        PerCategory {
            auth: pick(Category::Auth, raw.auth),
            sync: pick(Category::Sync, raw.sync),
            read: pick(Category::Read, raw.read),
        }
    }

    fn check_probes(&mut self, raw: &RawProbes) -> Vec<ProbeConfig> {
        let configured = [
            (ProbeKind::Auth, raw.auth.as_ref()),
            (ProbeKind::Sessions, raw.sessions.as_ref()),
        ];
        let mut probes = Vec::new();
        for (kind, raw_probe) in configured {
            if let Some(raw_probe) = raw_probe {
                let field = format!("probes.{}", kind.as_str());
                if let Some(probe) = self.check_probe(&field, kind, raw_probe) {
                    probes.push(probe);
                }
            }
        }
        if raw.auth.is_none() && raw.sessions.is_none() {
            self.error(
                "probes",
                "configure at least one of [probes.auth] and [probes.sessions]",
            );
        }
        probes
    }

    fn check_probe(&mut self, field: &str, kind: ProbeKind, raw: &RawProbe) -> Option<ProbeConfig> {
        let schedule = match (&raw.interval, &raw.schedule) {
            (Some(_), Some(_)) => {
                self.error(
                    &format!("{field}.interval"),
                    "set only one of interval and schedule",
                );
                return None;
            }
            (None, None) => {
                self.error(
                    &format!("{field}.interval"),
                    "one of interval or schedule is required",
                );
                return None;
            }
            (Some(interval), None) => self.check_interval(field, *interval)?,
            (None, Some(expression)) => self.check_cron(field, expression)?,
        };
        let timeout = raw.timeout.unwrap_or(DEFAULT_PROBE_TIMEOUT);
        let period = schedule.period();
        if timeout.is_zero() || timeout >= period {
            let message = format!(
                "{} must be greater than 0s and shorter than the time between runs ({})",
                humantime::format_duration(timeout),
                humantime::format_duration(period)
            );
            self.error(&format!("{field}.timeout"), message);
            return None;
        }
        Some(ProbeConfig {
            kind,
            schedule,
            timeout,
        })
    }

    fn check_interval(&mut self, field: &str, interval: Duration) -> Option<Schedule> {
        // The scheduler ticks once a second, so intervals are whole seconds.
        if interval < Duration::from_secs(1) || interval.subsec_nanos() != 0 {
            let message = format!(
                "{} must be a whole number of seconds, at least 1s",
                humantime::format_duration(interval)
            );
            self.error(&format!("{field}.interval"), message);
            return None;
        }
        Some(Schedule::Every(interval))
    }

    fn check_cron(&mut self, field: &str, expression: &str) -> Option<Schedule> {
        match parse_cron(expression) {
            Ok(cron) => Some(Schedule::Cron {
                expression: expression.to_string(),
                cron: Box::new(cron),
            }),
            Err(message) => {
                self.error(&format!("{field}.schedule"), message);
                None
            }
        }
    }

    /// Refuses schedules that would use more than `max_quota_share` of a category's limit.
    fn check_budget(&mut self, name: &str, probes: &[ProbeConfig], limits: &PerCategory<u32>) {
        let Some(share) = self.max_quota_share else {
            return;
        };
        for category in [Category::Auth, Category::Sync] {
            let per_minute = expected_requests_per_minute(probes, category);
            let limit = limits.get(category);
            if limit == 0 {
                continue; // already reported
            }
            if let Some(excess) = budget_excess(per_minute, limit, share, category) {
                self.error("probes", format!("target \"{}\" {excess}", shown(name)));
            }
        }
    }
}

/// Why `per_minute` requests in `category` are too many for `limit` at `share`, if they are.
fn budget_excess(per_minute: f64, limit: u32, share: f64, category: Category) -> Option<String> {
    let allowed = limit as f64 * share;
    (per_minute > allowed).then(|| {
        format!(
            "would send {per_minute:.1} {} requests per minute, more than {:.0}% of the {limit}/min limit ({allowed:.1}); lengthen the probe intervals",
            category.as_str(),
            share * 100.0
        )
    })
}

/// Limits are per API key: targets sharing a key (on one host) share its budget.
fn check_shared_keys(targets: &[TargetConfig], share: f64) -> Vec<FieldError> {
    let mut groups: std::collections::BTreeMap<(String, &str), Vec<&TargetConfig>> =
        Default::default();
    for target in targets {
        let host = target.base_url.host_str().unwrap_or_default().to_string();
        groups
            .entry((host, &target.api_key))
            .or_default()
            .push(target);
    }

    let mut errors = Vec::new();
    for ((_, api_key), group) in groups.into_iter().filter(|(_, g)| g.len() > 1) {
        for category in [Category::Auth, Category::Sync] {
            let per_minute: f64 = group
                .iter()
                .map(|t| expected_requests_per_minute(&t.probes, category))
                .sum();
            let limit = group.iter().map(|t| t.rate_limits.get(category)).min();
            let excess = limit.and_then(|l| budget_excess(per_minute, l, share, category));
            if let Some(excess) = excess {
                let names: Vec<String> = group.iter().map(|t| format!("\"{}\"", t.name)).collect();
                let message = format!(
                    "targets {} share API key {} and together {excess}",
                    names.join(", "),
                    shown(api_key)
                );
                errors.push(field_error("targets", message));
            }
        }
    }
    errors
}

/// Requests per minute that a target's probes send in one category, assuming tokens live as
/// long as the API document says.
pub fn expected_requests_per_minute(probes: &[ProbeConfig], category: Category) -> f64 {
    // The auth probe's tokens are cached, so with one the sessions probe fetches none.
    let has_auth_probe = probes.iter().any(|p| p.kind == ProbeKind::Auth);
    let refreshes_per_minute = match has_auth_probe {
        true => 0.0,
        false => 60.0 / DOCUMENTED_TOKEN_LIFETIME.as_secs_f64(),
    };
    probes
        .iter()
        .map(|probe| match (probe.kind, category) {
            (ProbeKind::Auth, Category::Auth) => probe.schedule.runs_per_minute(),
            (ProbeKind::Sessions, Category::Sync) => probe.schedule.runs_per_minute(),
            (ProbeKind::Sessions, Category::Auth) => refreshes_per_minute,
            _ => 0.0,
        })
        .sum()
}

/// Parses a six-field cron expression (with seconds), as the scheduler reads it.
pub fn parse_cron(expression: &str) -> Result<Cron, String> {
    let fields = expression.split_whitespace().count();
    let shown_expression = shown(expression);
    if fields != 6 {
        return Err(format!(
            "\"{shown_expression}\" has {fields} fields; use six: second minute hour day-of-month month day-of-week"
        ));
    }
    let cron = CronParser::builder()
        .seconds(Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(expression)
        .map_err(|e| format!("\"{shown_expression}\" is not a valid cron expression: {e}"))?;
    // croner searches a bounded number of years and errs past that.
    if cron.find_next_occurrence(&Utc::now(), false).is_err() {
        return Err(format!("\"{shown_expression}\" never runs"));
    }
    Ok(cron)
}

/// The next `count` runs of a cron schedule, each found after the previous one.
fn cron_runs(
    cron: &Cron,
    after: DateTime<Utc>,
    until: DateTime<Utc>,
    count: usize,
) -> Vec<DateTime<Utc>> {
    // Stepping with find_next_occurrence: croner's iterator was seen to skip the run right
    // after each one it yields for every-second schedules.
    let mut runs = Vec::new();
    let mut at = after;
    while runs.len() < count {
        match cron.find_next_occurrence(&at, false) {
            Ok(next) if next < until => {
                runs.push(next);
                at = next;
            }
            _ => break,
        }
    }
    runs
}

fn cron_min_gap(cron: &Cron) -> Duration {
    let now = Utc::now();
    let runs = cron_runs(cron, now, now + chrono::Duration::days(3660), 64);
    runs.windows(2)
        .filter_map(|pair| (pair[1] - pair[0]).to_std().ok())
        .min()
        .unwrap_or(Duration::from_secs(86_400))
}

fn cron_runs_per_minute(cron: &Cron) -> f64 {
    // The busiest minute among the next day's runs decides the budget.
    let now = Utc::now();
    let runs = cron_runs(cron, now, now + chrono::Duration::days(1), 100_000);
    let mut per_minute = std::collections::HashMap::<i64, u32>::new();
    for at in runs {
        *per_minute.entry(at.timestamp() / 60).or_default() += 1;
    }
    per_minute.values().copied().max().unwrap_or(0) as f64
}

/// A URL as it may be shown: no userinfo, no query.
pub fn redact_url(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[targets]]
name = "production"
base_url = "https://api.pinkcloudsync.example/v1/"
api_key = "pk_live_abc123"
api_secret_env = "TEST_SECRET"
[targets.probes.auth]
interval = "60s"
timeout = "5s"
[targets.probes.sessions]
interval = "15s"
"#;

    fn env(name: &str) -> Option<String> {
        (name == "TEST_SECRET").then(|| "sk_live_xyz789".to_string())
    }

    fn check(text: &str) -> Result<Config, String> {
        let raw = parse(Path::new("test.toml"), text).map_err(|e| e.to_string())?;
        validate(raw, Path::new("."), &env).map_err(|errors| {
            let lines: Vec<String> = errors.iter().map(FieldError::to_string).collect();
            lines.join("\n")
        })
    }

    #[test]
    fn good_config_gets_defaults_and_a_trimmed_base_url() {
        let config = check(GOOD).expect("valid config");
        let target = &config.targets[0];

        assert_eq!(
            target.base_url.as_str(),
            "https://api.pinkcloudsync.example/v1"
        );
        assert_eq!(target.api_secret.expose(), "sk_live_xyz789");
        assert_eq!(target.token_refresh_margin, DEFAULT_TOKEN_REFRESH_MARGIN);
        assert_eq!(target.probes.len(), 2);
        assert_eq!(target.probes[1].timeout, DEFAULT_PROBE_TIMEOUT);
        assert_eq!(target.rate_limits.auth, 10);
    }

    #[test]
    fn cron_schedule_gives_its_period() {
        let text = GOOD.replace("interval = \"60s\"", "schedule = \"*/30 * * * * *\"");
        let config = check(&text).expect("valid config");

        let schedule = &config.targets[0].probes[0].schedule;
        assert_eq!(schedule.period(), Duration::from_secs(30));
        assert_eq!(schedule.runs_per_minute(), 2.0);
    }

    #[test]
    fn every_second_cron_schedules_count_every_run() {
        let every_second = parse_cron("* * * * * *").unwrap();
        let ten_a_minute = parse_cron("0-9 * * * * *").unwrap();
        let every_second = Schedule::Cron {
            expression: String::new(),
            cron: Box::new(every_second),
        };
        let ten_a_minute = Schedule::Cron {
            expression: String::new(),
            cron: Box::new(ten_a_minute),
        };

        assert_eq!(every_second.period(), Duration::from_secs(1));
        assert_eq!(every_second.runs_per_minute(), 60.0);
        assert_eq!(ten_a_minute.period(), Duration::from_secs(1));
        assert_eq!(ten_a_minute.runs_per_minute(), 10.0);
    }

    #[test]
    fn bad_configs_name_the_field() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "unknown key",
                "interval = \"15s\"",
                "interval = \"15s\"\nintervl = \"1s\"",
            ),
            (
                "bad duration",
                "interval = \"15s\"",
                "interval = \"fifteen\"",
            ),
            ("timeout too long", "timeout = \"5s\"", "timeout = \"90s\""),
            (
                "sub-second interval",
                "interval = \"15s\"",
                "interval = \"1500ms\"",
            ),
            ("bad cron", "interval = \"60s\"", "schedule = \"* * *\""),
            (
                "both schedules",
                "interval = \"60s\"",
                "interval = \"60s\"\nschedule = \"0 * * * * *\"",
            ),
            (
                "bad url",
                "https://api.pinkcloudsync.example/v1/",
                "ftp://x/v1",
            ),
            ("key shape", "pk_live_abc123", "sk_live_abc123"),
            ("missing env", "TEST_SECRET", "NOT_SET_ANYWHERE"),
            (
                "bad name",
                "name = \"production\"",
                "name = \"prod uction\"",
            ),
            (
                "no version path",
                "https://api.pinkcloudsync.example/v1/",
                "http://127.0.0.1:9875",
            ),
            (
                "never runs",
                "interval = \"60s\"",
                "schedule = \"0 0 0 31 2 *\"",
            ),
            (
                "duplicate key",
                "timeout = \"5s\"",
                "timeout = \"5s\"\ntimeout = \"6s\"",
            ),
            (
                "auth budget",
                "interval = \"60s\"\ntimeout = \"5s\"",
                "interval = \"5s\"\ntimeout = \"2s\"",
            ),
        ];
        let expected = [
            "targets[0].probes.sessions.intervl: unknown field `intervl`",
            "targets[0].probes.sessions.interval: invalid value",
            "targets[0].probes.auth.timeout: 1m 30s must be greater than 0s and shorter",
            "targets[0].probes.sessions.interval: 1s 500ms must be a whole number of seconds",
            "targets[0].probes.auth.schedule: \"* * *\" has 3 fields",
            "targets[0].probes.auth.interval: set only one of interval and schedule",
            "targets[0].base_url: \"ftp://x/v1\" must use http or https",
            "targets[0].api_key: must be a public API key",
            "targets[0].api_secret_env: environment variable NOT_SET_ANYWHERE is not set",
            "targets[0].name: \"prod uction\" must be",
            "targets[0].base_url: \"http://127.0.0.1:9875/\" must include the API's version path",
            "targets[0].probes.auth.schedule: \"0 0 0 31 2 *\" never runs",
            "line 10, column 1: duplicate key",
            "targets[0].probes: target \"production\" would send 12.0 auth requests per minute, more than 50% of the 10/min limit (5.0)",
        ];
        for ((case, from, to), expected) in cases.iter().zip(expected) {
            let text = GOOD.replacen(from, to, 1);
            let error = check(&text).expect_err(case);
            assert!(
                error.contains(expected),
                "{case}: got {error:?}, want {expected:?}"
            );
        }
    }

    #[test]
    fn targets_sharing_a_key_share_its_budget() {
        let one = GOOD.replace("interval = \"60s\"", "interval = \"30s\"");
        let two = one.replace("name = \"production\"", "name = \"second\"");
        let three = one.replace("name = \"production\"", "name = \"third\"");

        let error = check(&format!("{one}{two}{three}")).expect_err("12 auth/min on one key");

        assert!(
            error.contains("targets: targets \"production\", \"second\", \"third\" share API key pk_live_abc123 and together would send 6.0 auth requests per minute"),
            "{error}"
        );
        check(&format!("{one}{two}")).expect("4 auth requests a minute on one key");
    }

    #[test]
    fn long_values_are_shortened_in_errors() {
        let long = "x".repeat(10_000);
        let text = GOOD.replace("name = \"production\"", &format!("name = \"{long}\""));

        let error = check(&text).expect_err("long name");

        assert!(error.len() < 400, "{} bytes", error.len());
        assert!(
            error.contains("xxx…\" must be 1 to 64 characters"),
            "{error}"
        );
    }

    #[test]
    fn an_invalid_share_is_reported_alone() {
        let error = check(&format!("max_quota_share = -1\n{GOOD}")).expect_err("bad share");

        assert_eq!(
            error,
            "max_quota_share: -1 must be greater than 0 and at most 1"
        );
    }

    #[test]
    fn duplicate_names_are_refused() {
        let second = GOOD.replace("[[targets]]", "\n[[targets]]");
        let error = check(&format!("{GOOD}{second}")).expect_err("duplicate");

        assert!(error.contains("targets[1].name: \"production\" is used by another target"));
    }

    #[test]
    fn secret_file_is_read_and_trimmed() {
        let dir = std::env::temp_dir().join(format!("pcs-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("secret"), "sk_file_secret\n").unwrap();
        let text = GOOD.replace(
            "api_secret_env = \"TEST_SECRET\"",
            "api_secret_file = \"secret\"",
        );
        let raw = parse(Path::new("x.toml"), &text).unwrap();

        let config = validate(raw, &dir, &env).unwrap();

        assert_eq!(config.targets[0].api_secret.expose(), "sk_file_secret");
    }

    #[test]
    fn an_endless_secret_file_is_refused() {
        let text = GOOD.replace(
            "api_secret_env = \"TEST_SECRET\"",
            "api_secret_file = \"/dev/zero\"",
        );
        let error = check(&text).expect_err("endless secret file");

        assert!(
            error.contains("targets[0].api_secret_file: /dev/zero is longer than 4096 bytes"),
            "{error}"
        );
    }

    #[test]
    fn wrong_secret_shape_is_refused_without_showing_it() {
        let raw = parse(Path::new("x.toml"), GOOD).unwrap();
        let errors = validate(raw, Path::new("."), &|_| Some("hunter2".into())).unwrap_err();

        assert_eq!(errors.len(), 1);
        assert!(!errors[0].message.contains("hunter2"));
    }
}
