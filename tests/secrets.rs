//! The API secret and every issued token stay out of logs at the most verbose level, out of
//! `/metrics` and out of the landing page, in success and in failure.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pinkcloudsync_exporter::sandbox::SandboxOptions;
use serde_json::json;
use support::*;
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn secret_and_tokens_never_appear_in_logs_metrics_or_the_page() {
    let logs = Captured::default();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .init();
    let options = SandboxOptions {
        token_ttl: Duration::from_secs(3),
        limit_auth: 1000,
        limit_sync: 1000,
        ..SandboxOptions::default()
    };
    let sandbox = start_sandbox(options).await;
    let exporter = start_exporter(
        &config_for("leak", &sandbox.base_url(), FAST_PROBES),
        API_SECRET,
    )
    .await;
    let target = exporter.targets[0].clone();

    // Collect tokens as they are issued, through refreshes, an expiry and some faults.
    let mut tokens = Vec::new();
    for step in 0..8 {
        tokio::time::sleep(Duration::from_millis(900)).await;
        if let Some(token) = target.tokens.current().await {
            tokens.push(token.value.expose().to_string());
        }
        match step {
            2 => post(&sandbox, "/tokens/expire").await,
            4 => set_faults(&sandbox, json!({"malformed_body": true})).await,
            5 => set_faults(&sandbox, json!({"status": 500, "status_ratio": 1.0})).await,
            6 => admin(&sandbox, reqwest::Method::DELETE, "/faults", None).await,
            _ => {}
        }
    }
    tokens.sort();
    tokens.dedup();
    let metrics = scrape(&exporter).await.text;
    let page = reqwest::get(format!("http://{}/", exporter.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();

    assert!(
        tokens.len() >= 2,
        "expected refreshed tokens, got {}",
        tokens.len()
    );
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "logs were not captured verbosely"
    );
    assert!(logs.contains("probe succeeded"), "no probe logged at debug");
    for (place, text) in [("logs", &logs), ("/metrics", &metrics), ("/", &page)] {
        assert!(
            !text.contains(API_SECRET),
            "the API secret appears in {place}"
        );
        for token in &tokens {
            assert!(
                !text.contains(token.as_str()),
                "an access token appears in {place}"
            );
            let signature = token.rsplit('.').next().unwrap();
            assert!(
                !text.contains(signature),
                "a token's signature appears in {place}"
            );
        }
    }
}
