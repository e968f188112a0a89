//! A simulated PinkCloudSync API with faults on demand: its command-line options, and starting
//! and stopping the server.

mod admin;
mod api;
mod body;
mod data;
mod faults;
mod keys;
mod ratelimit;
mod redact;
mod state;
mod stats;
mod token;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::any;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use admin::is_loopback_peer;
pub use keys::{
    Credential, CredentialError, DEFAULT_API_KEY, DEFAULT_API_SECRET, KeyFileError,
    KeyFileParseError, check_credentials, load_key_file,
};

use state::SandboxState;

/// Token lifetime stated by the API documentation.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// The documented rate limits are per minute.
pub const DEFAULT_RATE_WINDOW: Duration = Duration::from_secs(60);
pub const DEFAULT_LIMIT_AUTH: u32 = 10;
pub const DEFAULT_LIMIT_SYNC: u32 = 100;
pub const DEFAULT_LIMIT_READ: u32 = 1000;

/// How long a stop waits for requests in flight before cutting them off.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Options of the `sandbox` subcommand.
#[derive(clap::Args, Debug, Clone)]
pub struct SandboxArgs {
    /// Address to serve the simulated API on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9874")]
    pub listen: SocketAddr,

    /// Lifetime of issued access tokens (whole seconds, e.g. "1h", "30s").
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "1h",
        value_parser = humantime::parse_duration
    )]
    pub token_ttl: Duration,

    /// Authentication requests allowed per key and rate window.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_LIMIT_AUTH)]
    pub limit_auth: u32,

    /// Sync requests (/v1/sync/...) allowed per key and rate window.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_LIMIT_SYNC)]
    pub limit_sync: u32,

    /// Data-reading requests (other /v1 paths) allowed per key and rate window.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_LIMIT_READ)]
    pub limit_read: u32,

    /// Length of the rate-limit window (whole seconds). The real API uses one minute; a
    /// shorter window is a drill and test aid.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "60s",
        value_parser = humantime::parse_duration
    )]
    pub rate_window: Duration,

    /// TOML file with extra key pairs: [[credentials]] tables of api_key ("pk_...") and
    /// api_secret ("sk_...").
    #[arg(long = "config.file", value_name = "PATH")]
    pub config_file: Option<PathBuf>,
}

/// Everything the sandbox needs to run, with the documented values as defaults.
#[derive(Clone, Debug)]
pub struct SandboxOptions {
    pub token_ttl: Duration,
    pub limit_auth: u32,
    pub limit_sync: u32,
    pub limit_read: u32,
    pub rate_window: Duration,
    /// Accepted key pairs. The documentation's example pair is accepted whether listed or not.
    pub credentials: Vec<Credential>,
}

impl Default for SandboxOptions {
    fn default() -> SandboxOptions {
        SandboxOptions {
            token_ttl: DEFAULT_TOKEN_TTL,
            limit_auth: DEFAULT_LIMIT_AUTH,
            limit_sync: DEFAULT_LIMIT_SYNC,
            limit_read: DEFAULT_LIMIT_READ,
            rate_window: DEFAULT_RATE_WINDOW,
            credentials: vec![Credential::documented()],
        }
    }
}

/// Options the sandbox cannot run with.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    #[error("token_ttl must be a whole number of seconds, at least 1s, got {0}")]
    TokenTtl(String),
    #[error("rate_window must be a whole number of seconds, at least 1s, got {0}")]
    RateWindow(String),
    #[error("invalid credentials")]
    Credentials(#[source] CredentialError),
}

impl SandboxOptions {
    /// Builds and checks the options, reading the key-pairs file if one is given.
    pub fn from_args(args: &SandboxArgs) -> anyhow::Result<SandboxOptions> {
        let mut options = SandboxOptions {
            token_ttl: args.token_ttl,
            limit_auth: args.limit_auth,
            limit_sync: args.limit_sync,
            limit_read: args.limit_read,
            rate_window: args.rate_window,
            ..SandboxOptions::default()
        };
        if let Some(path) = &args.config_file {
            // The file may list the documented pair, which is already in the defaults.
            let documented = Credential::documented();
            let added = load_key_file(path)?
                .into_iter()
                .filter(|c| *c != documented);
            options.credentials.extend(added);
        }
        options.check().context("invalid sandbox options")?;
        Ok(options)
    }

    /// Rate windows and tokens are reported in whole seconds, so they must last whole seconds.
    pub fn check(&self) -> Result<(), OptionsError> {
        if !is_whole_seconds(self.token_ttl) {
            return Err(OptionsError::TokenTtl(display(self.token_ttl)));
        }
        if !is_whole_seconds(self.rate_window) {
            return Err(OptionsError::RateWindow(display(self.rate_window)));
        }
        check_credentials(&self.credentials).map_err(OptionsError::Credentials)
    }
}

fn is_whole_seconds(duration: Duration) -> bool {
    duration.as_secs() >= 1 && duration.subsec_nanos() == 0
}

fn display(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

/// A sandbox serving in the background; dropping it or calling [`shutdown`] stops it.
///
/// [`shutdown`]: RunningSandbox::shutdown
#[derive(Debug)]
pub struct RunningSandbox {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
}

impl RunningSandbox {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API base URL, like the documented `https://sandbox.pinkcloudsync.example/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn admin_url(&self) -> String {
        format!("http://{}/_sandbox", self.addr)
    }

    /// Stops accepting requests, ends hanging ones, and waits for the server to finish (at
    /// most [`SHUTDOWN_GRACE`], after which the remaining connections are cut).
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        let Some(mut server) = self.server.take() else {
            return;
        };
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut server)
            .await
            .is_err()
        {
            tracing::warn!(
                grace_seconds = SHUTDOWN_GRACE.as_secs(),
                "sandbox stop timed out"
            );
            server.abort();
        }
    }
}

impl Drop for RunningSandbox {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// Serves the sandbox on an already-bound listener until the returned handle is stopped.
pub async fn start(
    listener: TcpListener,
    options: SandboxOptions,
) -> std::io::Result<RunningSandbox> {
    options
        .check()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    let state = Arc::new(SandboxState::new(options, stopped));
    let app = router(Arc::clone(&state)).into_make_service_with_connect_info::<SocketAddr>();

    let server = tokio::spawn(async move {
        let signal = async move { state.shutdown_requested().await };
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(signal)
            .await
        {
            tracing::error!(%error, "sandbox server failed");
        }
    });
    tracing::info!(%addr, "sandbox listening");
    Ok(RunningSandbox {
        addr,
        stop,
        server: Some(server),
    })
}

/// Runs the `sandbox` subcommand until `shutdown` resolves.
pub async fn run(
    args: SandboxArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let options = SandboxOptions::from_args(&args)?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let sandbox = start(listener, options).await?;

    shutdown.await;
    tracing::info!("sandbox shutting down");
    sandbox.shutdown().await;
    Ok(())
}

/// /v1 for the simulated API, /_sandbox for the admin API, JSON 404 for anything else.
fn router(state: Arc<SandboxState>) -> Router {
    Router::new()
        .route("/v1", any(api::handle))
        .route("/v1/{*rest}", any(api::handle))
        .nest("/_sandbox", admin::router())
        .route("/_sandbox/", admin::index_with_slash())
        .fallback(|| async {
            let body = json!({ "error": "not_found", "message": "No such endpoint" });
            (StatusCode::NOT_FOUND, axum::Json(body))
        })
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::connect_info::MockConnectInfo;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sandbox: SandboxArgs,
    }

    fn parse(args: &[&str]) -> Result<SandboxArgs, clap::Error> {
        let argv = std::iter::once("sandbox").chain(args.iter().copied());
        Cli::try_parse_from(argv).map(|cli| cli.sandbox)
    }

    #[test]
    fn flags_default_to_the_documented_values() {
        let args = parse(&[]).expect("no flags needed");
        let options = SandboxOptions::from_args(&args).expect("defaults are valid");

        assert_eq!(args.listen, "127.0.0.1:9874".parse().expect("address"));
        assert_eq!(options.token_ttl, Duration::from_secs(3600));
        assert_eq!(
            (options.limit_auth, options.limit_sync, options.limit_read),
            (10, 100, 1000)
        );
        assert_eq!(options.rate_window, Duration::from_secs(60));
        assert_eq!(
            options.credentials,
            [Credential::new("pk_live_abc123", "sk_live_xyz789")]
        );
    }

    #[test]
    fn flags_override_the_defaults() {
        let args = parse(&[
            "--listen=127.0.0.1:0",
            "--token-ttl=90s",
            "--limit-auth=1",
            "--limit-sync=2",
            "--limit-read=3",
            "--rate-window=2s",
        ])
        .expect("flags are valid");

        let options = SandboxOptions::from_args(&args).expect("options are valid");

        assert_eq!(options.token_ttl, Duration::from_secs(90));
        assert_eq!(
            (options.limit_auth, options.limit_sync, options.limit_read),
            (1, 2, 3)
        );
        assert_eq!(options.rate_window, Duration::from_secs(2));
    }

    #[test]
    fn durations_must_be_whole_seconds() {
        let cases = [
            (
                "--token-ttl=1500ms",
                "token_ttl must be a whole number of seconds, at least 1s, got 1s 500ms",
            ),
            (
                "--token-ttl=0s",
                "token_ttl must be a whole number of seconds, at least 1s, got 0s",
            ),
            (
                "--rate-window=500ms",
                "rate_window must be a whole number of seconds, at least 1s, got 500ms",
            ),
        ];

        for (flag, expected) in cases {
            let args = parse(&[flag]).expect("flag parses");
            let error = SandboxOptions::from_args(&args).expect_err(flag);
            assert_eq!(
                format!("{error:#}"),
                format!("invalid sandbox options: {expected}")
            );
        }
    }

    #[test]
    fn a_bad_duration_is_refused_by_the_parser() {
        assert!(parse(&["--token-ttl=soon"]).is_err());
    }

    #[test]
    fn the_key_pairs_file_adds_credentials() {
        let path = std::env::temp_dir().join(format!("sandbox-args-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "[[credentials]]\napi_key = \"pk_test_a\"\napi_secret = \"sk_test_a\"\n",
        )
        .expect("temp file is writable");
        let flag = format!("--config.file={}", path.display());

        let args = parse(&[&flag]).expect("flag parses");
        let options = SandboxOptions::from_args(&args).expect("file is valid");

        assert_eq!(
            options.credentials,
            [
                Credential::documented(),
                Credential::new("pk_test_a", "sk_test_a")
            ]
        );
    }

    fn key_file_flag(name: &str, text: &str) -> String {
        let path = std::env::temp_dir().join(format!("sandbox-{name}-{}.toml", std::process::id()));
        std::fs::write(&path, text).expect("temp file is writable");
        format!("--config.file={}", path.display())
    }

    #[test]
    fn a_key_pairs_file_may_list_the_documented_pair() {
        let flag = key_file_flag(
            "documented",
            "[[credentials]]\napi_key = \"pk_live_abc123\"\napi_secret = \"sk_live_xyz789\"\n\n\
             [[credentials]]\napi_key = \"pk_test_a\"\napi_secret = \"sk_test_a\"\n",
        );

        let args = parse(&[&flag]).expect("flag parses");
        let options = SandboxOptions::from_args(&args).expect("the documented pair is allowed");

        assert_eq!(
            options.credentials,
            [
                Credential::documented(),
                Credential::new("pk_test_a", "sk_test_a")
            ]
        );
    }

    #[test]
    fn key_pairs_file_errors_count_the_files_own_entries() {
        let flag = key_file_flag(
            "documented-then-bad",
            "[[credentials]]\napi_key = \"pk_live_abc123\"\napi_secret = \"sk_live_xyz789\"\n\n\
             [[credentials]]\napi_key = \"pk_test_a\"\napi_secret = \"sk_test_a\"\n\n\
             [[credentials]]\napi_key = \"pk_test_a\"\napi_secret = \"sk_test_b\"\n",
        );

        let args = parse(&[&flag]).expect("flag parses");
        let error = SandboxOptions::from_args(&args).expect_err("pk_test_a appears twice");

        let shown = format!("{error:#}");
        assert!(
            shown.ends_with(
                ": credentials[2].api_key: duplicate key \"pk_test_a\", first at credentials[1]"
            ),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn start_refuses_unusable_options() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let options = SandboxOptions {
            rate_window: Duration::ZERO,
            ..SandboxOptions::default()
        };

        let error = start(listener, options).await.expect_err("window is zero");

        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    }

    #[tokio::test]
    async fn the_admin_api_refuses_peers_off_loopback() {
        let (_stop, stopped) = watch::channel(false);
        let state = Arc::new(SandboxState::new(SandboxOptions::default(), stopped));
        let remote: SocketAddr = "192.0.2.7:40000".parse().expect("address");
        let app = router(state).layer(MockConnectInfo(remote));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("bound");
        let server = tokio::spawn(async move { axum::serve(listener, app).await });

        for path in ["/_sandbox/stats", "/_sandbox", "/_sandbox/"] {
            let response = reqwest::get(format!("http://{addr}{path}"))
                .await
                .expect("sandbox answers");
            let status = response.status();
            let body: serde_json::Value = response.json().await.expect("JSON body");

            assert_eq!(status, reqwest::StatusCode::FORBIDDEN, "{path}");
            assert_eq!(
                body,
                json!({"error": "forbidden",
                       "message": "the sandbox admin API answers only to loopback clients"}),
                "{path}"
            );
        }
        server.abort();
    }
}
