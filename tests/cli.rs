//! The binary as users run it: `--config.check`, `--version`, bad flags, the demo, and a clean
//! stop on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_pinkcloudsync-exporter");

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BIN);
    command.args(args).env_remove("PINKCLOUDSYNC_API_SECRET");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("run the binary")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn shipped_configs_pass_the_check() {
    let example = run(
        &[
            "--config.file",
            "config/pinkcloudsync.example.toml",
            "--config.check",
        ],
        &[("PINKCLOUDSYNC_API_SECRET", "sk_live_check")],
    );
    let demo = run(
        &["--config.file", "config/demo.toml", "--config.check"],
        &[("PINKCLOUDSYNC_DEMO_API_SECRET", "sk_live_xyz789")],
    );

    assert_eq!(example.status.code(), Some(0), "{}", stderr(&example));
    assert_eq!(demo.status.code(), Some(0), "{}", stderr(&demo));
}

#[test]
fn a_bad_config_exits_1_naming_the_field_and_hiding_the_secret() {
    let dir = std::env::temp_dir().join(format!("pcs-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    let text = std::fs::read_to_string("config/demo.toml")
        .unwrap()
        .replace("timeout = \"3s\"", "timeout = \"10s\"");
    std::fs::write(&path, text).unwrap();

    let output = run(
        &["--config.file", path.to_str().unwrap(), "--config.check"],
        &[("PINKCLOUDSYNC_DEMO_API_SECRET", "sk_live_do_not_print")],
    );

    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("targets[0].probes.sessions.timeout: 10s must be"),
        "{message}"
    );
    assert!(!message.contains("sk_live_do_not_print"), "{message}");
    assert!(!message.contains("panicked"), "{message}");
}

#[test]
fn a_missing_config_file_is_a_clear_error() {
    let output = run(
        &["--config.file", "/nonexistent/pcs.toml", "--config.check"],
        &[],
    );

    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output)
            .contains("cannot read config file /nonexistent/pcs.toml: No such file or directory"),
        "{}",
        stderr(&output)
    );
}

#[cfg(unix)]
#[test]
fn an_endless_config_file_is_refused_not_read() {
    let output = run(&["--config.file", "/dev/zero", "--config.check"], &[]);

    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("config file /dev/zero is larger than 1048576 bytes"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn version_and_bad_flags_behave_like_other_exporters() {
    let version = run(&["--version"], &[]);
    let unknown = run(&["--no-such-flag"], &[]);
    let level = run(&["--log.level", "loud", "demo"], &[]);
    let missing = run(&[], &[]);

    assert_eq!(version.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&version.stdout).contains(env!("CARGO_PKG_VERSION")));
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("--no-such-flag"));
    assert_eq!(level.status.code(), Some(2));
    assert!(stderr(&level).contains("loud"));
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("--config.file is required"),
        "{}",
        stderr(&missing)
    );
}

#[cfg(unix)]
#[tokio::test]
async fn the_demo_serves_metrics_and_stops_cleanly_on_sigterm() {
    let mut child = Command::new(BIN)
        .args(["demo", "--web.listen-address", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let sandbox_line = lines.next().unwrap().unwrap();
    let exporter_line = lines.next().unwrap().unwrap();
    assert!(
        sandbox_line.starts_with("sandbox:  http://127.0.0.1:"),
        "{sandbox_line}"
    );
    let metrics_url = exporter_line
        .split("metrics: ")
        .nth(1)
        .unwrap()
        .trim_end_matches(')')
        .to_string();

    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let body = reqwest::get(&metrics_url)
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if body.contains("pinkcloudsync_probe_success{target=\"sandbox\",probe=\"sessions\"} 1") {
            break body;
        }
        assert!(Instant::now() < deadline, "no successful probe in:\n{body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(body.contains("pinkcloudsync_credentials_valid{target=\"sandbox\"} 1"));

    let stopping = Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();

    assert!(status.success(), "{status}");
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "{:?}",
        stopping.elapsed()
    );
}
