//! PinkCloudSync exporter: synthetic API probes exported as Prometheus metrics, and a
//! simulated PinkCloudSync API (the sandbox) to run them against.

pub mod client;
pub mod config;
pub mod demo;
pub mod exporter;
pub mod logging;
pub mod metrics;
pub mod probe;
pub mod ratelimit;
pub mod sandbox;
pub mod scheduler;
pub mod secret;
pub mod server;
pub mod target;
pub mod token;
