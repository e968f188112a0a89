//! The daemon: builds the targets from a checked config, starts the scheduler and the HTTP
//! server, and stops both on shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_cron_scheduler::JobScheduler;
use tracing::{info, warn};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::scheduler::{self, ProbeRunner, SchedulerError};
use crate::server::{self, AppState};
use crate::target::Target;

#[derive(Debug, thiserror::Error)]
pub enum ExporterError {
    #[error("cannot build the HTTP client of target {target}")]
    Client {
        target: String,
        #[source]
        source: reqwest::Error,
    },
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
    #[error("cannot listen on {address}")]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP server failed")]
    Serve(#[source] std::io::Error),
}

/// A started exporter: its address, targets and metrics, for the binary and for tests.
pub struct RunningExporter {
    pub addr: SocketAddr,
    pub metrics: Arc<Metrics>,
    pub targets: Arc<Vec<Arc<Target>>>,
    pub runners: Vec<Arc<ProbeRunner>>,
    scheduler: JobScheduler,
    stop: oneshot::Sender<()>,
    server: JoinHandle<std::io::Result<()>>,
}

/// Builds every target, starts the scheduler, and serves HTTP on `listener`.
pub async fn start(
    config: Config,
    listener: TcpListener,
) -> Result<RunningExporter, ExporterError> {
    let metrics = Arc::new(Metrics::new());
    let mut targets = Vec::new();
    for target_config in config.targets {
        let name = target_config.name.clone();
        let target = Target::new(target_config, metrics.clone()).map_err(|source| {
            ExporterError::Client {
                target: name,
                source,
            }
        })?;
        targets.push(Arc::new(target));
    }
    let targets = Arc::new(targets);

    let ready = Arc::new(AtomicBool::new(false));
    let state = AppState {
        metrics: metrics.clone(),
        targets: targets.clone(),
        ready: ready.clone(),
    };
    let addr = listener.local_addr().map_err(ExporterError::Serve)?;
    let (stop, stopped) = oneshot::channel::<()>();
    let app = server::router(state);
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });

    let runners = scheduler::runners(&targets);
    let scheduler = scheduler::start(&runners).await?;
    ready.store(true, Ordering::SeqCst);
    info!(address = %addr, targets = targets.len(), "listening");

    Ok(RunningExporter {
        addr,
        metrics,
        targets,
        runners,
        scheduler,
        stop,
        server,
    })
}

impl RunningExporter {
    /// Stops the scheduler, then lets the server finish the requests in flight.
    pub async fn shutdown(mut self) -> Result<(), ExporterError> {
        if let Err(e) = self.scheduler.shutdown().await {
            warn!(error = %e, "scheduler did not stop cleanly");
        }
        let _ = self.stop.send(());
        match self.server.await {
            Ok(result) => result.map_err(ExporterError::Serve),
            Err(e) => Err(ExporterError::Serve(std::io::Error::other(e))),
        }
    }
}

/// Runs until `shutdown` completes or the server fails.
pub async fn run(
    config: Config,
    address: SocketAddr,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ExporterError> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| ExporterError::Listen { address, source })?;
    let exporter = start(config, listener).await?;
    shutdown.await;
    info!("shutting down");
    exporter.shutdown().await
}
