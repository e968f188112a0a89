//! The demo: the sandbox on a loopback port and the exporter probing it with the sandbox's
//! default credentials, so that `/metrics` shows real probe results with no account.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use tokio::net::TcpListener;
use tracing::info;

use crate::config;
use crate::exporter;
use crate::sandbox::{self, SandboxOptions};
use crate::server::parse_listen_address;

/// The demo's configuration, also shipped as `config/demo.toml`.
pub const DEMO_CONFIG: &str = include_str!("../config/demo.toml");
/// The variable `config/demo.toml` names for its secret; the demo supplies the sandbox's.
pub const DEMO_SECRET_ENV: &str = "PINKCLOUDSYNC_DEMO_API_SECRET";

#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Address of the exporter's HTTP server (metrics, landing page).
    #[arg(
        long = "web.listen-address",
        default_value = "127.0.0.1:9873",
        value_parser = parse_listen_address
    )]
    pub web_listen_address: SocketAddr,
    /// Address of the sandbox API; port 0 picks a free one.
    #[arg(
        long = "sandbox.listen-address",
        default_value = "127.0.0.1:0",
        value_parser = parse_listen_address
    )]
    pub sandbox_listen_address: SocketAddr,
}

pub async fn run(args: DemoArgs, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let sandbox_listener = TcpListener::bind(args.sandbox_listen_address)
        .await
        .with_context(|| format!("cannot listen on {}", args.sandbox_listen_address))?;
    let sandbox = sandbox::start(sandbox_listener, SandboxOptions::default()).await?;

    let config = demo_config(&sandbox.base_url())?;
    let listener = TcpListener::bind(args.web_listen_address)
        .await
        .with_context(|| format!("cannot listen on {}", args.web_listen_address))?;
    let exporter = exporter::start(config, listener).await?;

    println!(
        "sandbox:  {} (admin API: {}/)",
        sandbox.base_url(),
        sandbox.admin_url()
    );
    println!(
        "exporter: http://{}/ (metrics: http://{}/metrics)",
        exporter.addr, exporter.addr
    );
    println!("Press Ctrl-C to stop.");

    shutdown.await;
    info!("shutting down");
    exporter.shutdown().await?;
    sandbox.shutdown().await;
    Ok(())
}

/// `config/demo.toml` pointed at the running sandbox, with its default secret.
pub fn demo_config(base_url: &str) -> anyhow::Result<config::Config> {
    let path = Path::new("config/demo.toml");
    let mut raw = config::parse(path, DEMO_CONFIG)?;
    for target in &mut raw.targets {
        target.base_url = base_url.to_string();
    }
    let env = |name: &str| {
        (name == DEMO_SECRET_ENV)
            .then(|| sandbox::DEFAULT_API_SECRET.to_string())
            .or_else(|| std::env::var(name).ok())
    };
    config::validate(raw, Path::new("."), &env).map_err(|errors| {
        let errors = config::ConfigError::Invalid {
            path: path.to_owned(),
            errors,
        };
        anyhow::Error::new(errors)
    })
}
