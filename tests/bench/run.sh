#!/usr/bin/env bash
# Benchmark: CPU per probe and resident memory of the exporter with 1 and 100 targets,
# against the sandbox on loopback. Not a test: it prints numbers to record in the README.
#
#   bash tests/bench/run.sh [SECONDS]     (default 60 s per run)
#
# Each target runs a sessions probe every second and an auth probe every 10 seconds. The
# exporter's CPU time (the sum over its threads of /proc/PID/task/*/schedstat, in nanoseconds)
# is divided by the probe runs it reports in pinkcloudsync_probe_duration_seconds_count; RSS is
# VmRSS at the end of the run.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-60}
cargo build --release --quiet
bin=$PWD/target/release/pinkcloudsync-exporter
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

sandbox_port=$(free_port)
"$bin" sandbox --listen "127.0.0.1:$sandbox_port" --limit-auth 1000000 --limit-sync 1000000 \
    --log.level warn &
pids+=($!)
sleep 1

cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END {printf "%d", s}'; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

run() {
    local targets=$1 config=$work/bench-$1.toml port
    port=$(free_port)
    echo "max_quota_share = 1.0" > "$config"
    for i in $(seq 1 "$targets"); do
        cat >> "$config" <<TOML
[[targets]]
name = "bench-$i"
base_url = "http://127.0.0.1:$sandbox_port/v1"
api_key = "pk_live_abc123"
api_secret_env = "BENCH_SECRET"
quota_reserve = { auth = 0.0, sync = 0.0, read = 0.0 }
rate_limits = { auth = 1000000, sync = 1000000 }
[targets.probes.auth]
interval = "10s"
timeout = "2s"
[targets.probes.sessions]
interval = "1s"
timeout = "900ms"
TOML
    done
    BENCH_SECRET=sk_live_xyz789 "$bin" --config.file "$config" \
        --web.listen-address "127.0.0.1:$port" --log.level warn &
    local pid=$!
    pids+=($pid)
    sleep 3  # start-up and first runs, not counted
    local probes_before ns_before probes_after ns_after
    probes() { curl -s "http://127.0.0.1:$port/metrics" | awk '/^pinkcloudsync_probe_duration_seconds_count/ {s += $2} END {print s + 0}'; }
    probes_before=$(probes); ns_before=$(cpu_ns "$pid")
    sleep "$seconds"
    probes_after=$(probes); ns_after=$(cpu_ns "$pid")
    python3 - "$targets" "$seconds" "$probes_before" "$probes_after" "$ns_before" "$ns_after" "$(rss_kib "$pid")" <<'PY'
import sys
targets, seconds, p0, p1, t0, t1, rss = sys.argv[1:]
probes = float(p1) - float(p0)
cpu = (float(t1) - float(t0)) / 1e9
print(f"targets={targets} seconds={seconds} probe_runs={probes:.0f} cpu_seconds={cpu:.3f} "
      f"cpu_ms_per_probe={1000 * cpu / max(probes, 1):.3f} cpu_share_of_one_core={cpu / float(seconds):.3%} "
      f"rss_mib={int(rss) / 1024:.1f}")
PY
    kill "$pid"; wait "$pid" 2>/dev/null || true
}

run 1
run 100
