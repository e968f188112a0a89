//! The `pinkcloudsync-exporter` binary: parses the command line, sets up logging, and runs the
//! exporter, the sandbox or the demo.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use pinkcloudsync_exporter::demo::{self, DemoArgs};
use pinkcloudsync_exporter::logging::{self, LogFormat, LogLevel};
use pinkcloudsync_exporter::sandbox::{self, SandboxArgs};
use pinkcloudsync_exporter::server::parse_listen_address;
use pinkcloudsync_exporter::{config, exporter};
use tracing::{error, info};

/// Prometheus exporter and health checker for the PinkCloudSync API: logs in, reuses the
/// token, lists sync sessions on a schedule, and reads the rate-limit headers.
#[derive(Debug, Parser)]
#[command(
    name = "pinkcloudsync-exporter",
    version,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// Path to the TOML configuration file.
    #[arg(long = "config.file", value_name = "PATH")]
    config_file: Option<PathBuf>,

    /// Check the configuration file and exit: 0 when valid, 1 naming the bad field otherwise.
    #[arg(long = "config.check", requires = "config_file")]
    config_check: bool,

    /// Address to serve /metrics, the landing page and health checks on.
    #[arg(
        long = "web.listen-address",
        value_name = "ADDR",
        default_value = ":9873",
        value_parser = parse_listen_address
    )]
    web_listen_address: SocketAddr,

    /// Least severe log level to write.
    #[arg(long = "log.level", value_enum, default_value = "info", global = true)]
    log_level: LogLevel,

    /// Log format.
    #[arg(long = "log.format", value_enum, default_value = "text", global = true)]
    log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the simulated PinkCloudSync API with its fault-injection admin API.
    Sandbox(SandboxArgs),
    /// Run the sandbox and the exporter against it, with the sandbox's default credentials.
    Demo(DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_level, cli.log_format);

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let log_format = cli.log_format;
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            // A log pipeline reading JSON gets the fatal error as a JSON line too.
            match log_format {
                LogFormat::Json => error!(error = format!("{e:#}"), "exiting"),
                LogFormat::Text => eprintln!("error: {e:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Some(Command::Sandbox(args)) => sandbox::run(args, shutdown_signal()).await?,
        Some(Command::Demo(args)) => demo::run(args, shutdown_signal()).await?,
        None => return run_exporter(cli).await,
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_exporter(cli: Cli) -> anyhow::Result<ExitCode> {
    let Some(path) = cli.config_file else {
        Cli::command()
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "--config.file is required (or run `pinkcloudsync-exporter demo`)",
            )
            .exit();
    };
    let config = match config::load(&path) {
        Ok(config) => config,
        Err(e) if cli.config_check => {
            eprintln!("{:#}", anyhow::Error::from(e));
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return Err(e.into()),
    };
    if cli.config_check {
        println!("{}: OK ({} targets)", path.display(), config.targets.len());
        return Ok(ExitCode::SUCCESS);
    }

    info!(version = env!("CARGO_PKG_VERSION"), "starting");
    info!(path = %path.display(), targets = config.targets.len(), "config loaded");
    exporter::run(config, cli.web_listen_address, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
