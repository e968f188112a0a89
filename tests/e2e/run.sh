#!/usr/bin/env bash
# End-to-end check of the monitoring content against a real Prometheus.
#
# Starts `pinkcloudsync-exporter demo` (sandbox API plus the exporter probing it) and a
# Prometheus scraping it every second with config/prometheus/pinkcloudsync.rules.yml loaded,
# then checks through Prometheus's HTTP API that:
#   - the scrape target is up without errors, and every rule evaluates with health ok;
#   - every dashboard query and variable query returns data;
#   - no alert is active while the sandbox is healthy;
#   - faults injected through the sandbox admin API raise the matching alerts
#     (pending is enough: the rules keep their production `for:` durations).
#
# Needs: prometheus (Debian package `prometheus`, 2.42 or later), curl, python3.
# Uses target/release/pinkcloudsync-exporter, building it first if it is missing
# (override with PINKCLOUDSYNC_EXPORTER_BIN). Runs in about three minutes; every wait is
# bounded and the whole run stops after E2E_TIMEOUT_SECONDS (default 330).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${PINKCLOUDSYNC_EXPORTER_BIN:-$ROOT/target/release/pinkcloudsync-exporter}
RULES=$ROOT/config/prometheus/pinkcloudsync.rules.yml
DASHBOARDS=$ROOT/dashboards
TARGET_NAME=sandbox
API_KEY=pk_live_abc123

passed=0
failed=0
pids=()
workdir=$(mktemp -d "${TMPDIR:-/tmp}/pinkcloudsync-e2e.XXXXXX")

# shellcheck disable=SC2317 # called through the trap
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$workdir"
}
trap cleanup EXIT

pass() {
    passed=$((passed + 1))
    echo "ok   - $*"
}

fail() {
    failed=$((failed + 1))
    echo "FAIL - $*"
}

summary_and_exit() {
    echo
    echo "e2e: $passed passed, $failed failed"
    if ((failed > 0)); then
        exit 1
    fi
    exit 0
}

# A setup step that failed: nothing after it can run.
abort() {
    fail "$*"
    for log in "$workdir"/*.log; do
        [[ -s $log ]] || continue
        echo "--- last lines of $(basename "$log")"
        tail -n 20 "$log"
    done
    summary_and_exit
}

time_left() {
    ((SECONDS < deadline))
}

# --- Prerequisites ------------------------------------------------------------------------

for tool in prometheus curl python3; do
    command -v "$tool" >/dev/null || abort "$tool is not installed (apt-get install -y $tool)"
done

if [[ ! -x $BIN ]]; then
    echo "building $BIN"
    (cd "$ROOT" && cargo build --release) || abort "cargo build --release failed"
fi
"$BIN" demo --help >/dev/null 2>&1 || abort "$BIN has no demo subcommand"

deadline=$((SECONDS + ${E2E_TIMEOUT_SECONDS:-330}))

read -r EXPORTER_PORT SANDBOX_PORT PROM_PORT < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
EOF
)
EXPORTER=127.0.0.1:$EXPORTER_PORT
SANDBOX=http://127.0.0.1:$SANDBOX_PORT
PROM=http://127.0.0.1:$PROM_PORT

# --- HTTP helpers ---------------------------------------------------------------------------

get() {
    curl -fsS --max-time 5 "$@"
}

prom_api() {
    local path=$1
    shift
    get --get "$PROM$path" "$@"
}

# Prints the length of .data.result (or of .data) of an API answer on stdin, 0 on an error.
count_data() {
    python3 -c '
import json, sys
data = json.load(sys.stdin)["data"]
print(len(data["result"] if isinstance(data, dict) else data))
' 2>/dev/null || echo 0
}

# Prints the number of series an instant query returns.
query_count() {
    { prom_api /api/v1/query --data-urlencode "query=$1" 2>/dev/null || true; } | count_data
}

# Prints "state" of each active alert with this name for our target, one per line.
alert_states() {
    prom_api /api/v1/alerts 2>/dev/null | python3 -c '
import json, sys
name = sys.argv[1]
for alert in json.load(sys.stdin)["data"]["alerts"]:
    if alert["labels"].get("alertname") == name:
        print(alert["state"])
' "$1" || true
}

# Polls until the alert is pending or firing, for at most $2 seconds.
wait_for_alert() {
    local name=$1 timeout=$2 why=$3
    local until=$((SECONDS + timeout)) states
    while ((SECONDS < until)) && time_left; do
        states=$(alert_states "$name")
        if grep -qE '^(pending|firing)$' <<<"$states"; then
            pass "$name is $(sort -u <<<"$states" | paste -sd, -) after $why"
            return 0
        fi
        sleep 2
    done
    fail "$name did not become pending or firing within ${timeout}s after $why"
    return 1
}

# Polls until the query returns at least one series, for at most $2 seconds.
wait_for_query() {
    local query=$1 timeout=$2
    local until=$((SECONDS + timeout))
    while ((SECONDS < until)) && time_left; do
        if (($(query_count "$query") > 0)); then
            return 0
        fi
        sleep 2
    done
    return 1
}

sandbox_admin() {
    local method=$1 path=$2
    shift 2
    get -X "$method" "$SANDBOX/_sandbox/$path" "$@" >/dev/null
}

# --- Start the demo and Prometheus -----------------------------------------------------

echo "demo exporter on $EXPORTER, sandbox on $SANDBOX, prometheus on $PROM"

"$BIN" demo --web.listen-address "$EXPORTER" --sandbox.listen-address "127.0.0.1:$SANDBOX_PORT" \
    >"$workdir/demo.log" 2>&1 &
pids+=("$!")

startup_deadline=$((SECONDS + 30))
until get "http://$EXPORTER/metrics" >/dev/null 2>&1; do
    ((SECONDS < startup_deadline)) || abort "the demo exporter did not serve /metrics within 30s"
    sleep 1
done
pass "demo exporter serves /metrics"

cat >"$workdir/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - $RULES
scrape_configs:
  - job_name: pinkcloudsync
    static_configs:
      - targets: ["$EXPORTER"]
EOF

prometheus --config.file="$workdir/prometheus.yml" --storage.tsdb.path="$workdir/data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn \
    >"$workdir/prometheus.log" 2>&1 &
pids+=("$!")

startup_deadline=$((SECONDS + 30))
until get "$PROM/-/ready" >/dev/null 2>&1; do
    ((SECONDS < startup_deadline)) || abort "prometheus was not ready within 30s"
    sleep 1
done
pass "prometheus $(prometheus --version 2>&1 | awk 'NR == 1 {print $3}') is ready"

# --- Scrape target and rules ----------------------------------------------------------

target_status() {
    prom_api /api/v1/targets 2>/dev/null | python3 -c '
import json, sys
for t in json.load(sys.stdin)["data"]["activeTargets"]:
    if t["labels"].get("job") == "pinkcloudsync":
        print(t["health"], t["lastError"] or "-")
' || true
}

status=""
for _ in $(seq 20); do
    status=$(target_status)
    [[ $status == "up -" ]] && break
    sleep 1
done
if [[ $status == "up -" ]]; then
    pass "scrape target $EXPORTER is up with no scrape error"
else
    fail "scrape target $EXPORTER: expected 'up' with no error, got '${status:-no target}'"
fi

# Prints "health name lastError" for every rule.
rule_health() {
    prom_api /api/v1/rules 2>/dev/null | python3 -c '
import json, sys
for group in json.load(sys.stdin)["data"]["groups"]:
    for rule in group["rules"]:
        print(rule["health"], rule["name"], rule.get("lastError") or "")
' || true
}

health=""
for _ in $(seq 20); do
    health=$(rule_health)
    [[ -n $health ]] && ! grep -qv '^ok ' <<<"$health" && break
    sleep 1
done
if [[ -z $health ]]; then
    fail "prometheus loaded no rules from $RULES"
fi
while read -r state name error; do
    [[ -n $name ]] || continue
    if [[ $state == ok ]]; then
        pass "rule $name health ok"
    else
        fail "rule $name health $state ${error}"
    fi
done <<<"$health"

# --- Dashboard queries -----------------------------------------------------------------

# Every panel target and variable query, with Grafana's variables replaced as Grafana would
# for one selected value. Prints "kind<TAB>where<TAB>query" lines.
python3 - "$DASHBOARDS" "$EXPORTER" "$TARGET_NAME" >"$workdir/queries.tsv" <<'EOF'
import glob, json, os, re, sys

directory, instance, target = sys.argv[1:]
values = {
    "__rate_interval": "1m", "__range": "5m", "__interval": "15s",
    "__range_s": "300", "__range_ms": "300000", "__interval_ms": "15000",
    "instance": instance, "target": target, "datasource": "prometheus",
}

def substitute(text):
    def one(match):
        name = match.group(1) or match.group(2)
        if name not in values:
            sys.exit(f"unknown Grafana variable ${name} in {text!r}")
        return values[name]
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", one, text)

for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
    dashboard = json.load(open(path))
    uid = dashboard["uid"]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        if variable["type"] == "query":
            print("variable", f"{uid} ${variable['name']}", substitute(query), sep="\t")
    for panel in dashboard["panels"]:
        for t in panel.get("targets", []):
            print("panel", f"{uid} / {panel['title']} / {t['refId']}", substitute(t["expr"]),
                  sep="\t")
EOF

# label_values(selector, label) answered like Grafana does, through the series API.
label_values_count() {
    local query=$1 args selector label
    args=${query#label_values(}
    args=${args%)}
    selector=${args%,*}
    label=${args##*,}
    label=${label// /}
    { prom_api "/api/v1/label/$label/values" --data-urlencode "match[]=$selector" 2>/dev/null ||
        true; } | count_data
}

# Rates over 1m need two samples of each probe; the auth probe runs every 15s.
echo "waiting 40s for probes to run before checking dashboard queries"
sleep 40

pending_queries=$(cat "$workdir/queries.tsv")
queries_deadline=$((SECONDS + 60))
while [[ -n $pending_queries ]] && ((SECONDS < queries_deadline)) && time_left; do
    still_empty=""
    while IFS=$'\t' read -r kind where query; do
        if [[ $kind == variable ]]; then
            count=$(label_values_count "$query")
        else
            count=$(query_count "$query")
        fi
        if ((count > 0)); then
            pass "$kind $where returns $count series"
        else
            still_empty+="$kind"$'\t'"$where"$'\t'"$query"$'\n'
        fi
    done <<<"$pending_queries"
    pending_queries=${still_empty%$'\n'}
    [[ -n $pending_queries ]] && sleep 5
done
while IFS=$'\t' read -r kind where query; do
    [[ -n $kind ]] || continue
    fail "$kind $where returned no data: $query"
done <<<"$pending_queries"

# --- Alerts while healthy --------------------------------------------------------------

active=$(prom_api /api/v1/alerts 2>/dev/null | python3 -c '
import json, sys
print(" ".join(sorted({a["labels"]["alertname"] for a in json.load(sys.stdin)["data"]["alerts"]})))
' || echo "<alerts API failed>")
if [[ -z $active ]]; then
    pass "no alert is pending or firing while the sandbox is healthy"
else
    fail "alerts active while the sandbox is healthy: $active"
fi

# --- Faults ------------------------------------------------------------------------------

# Expired tokens: the next sessions probe gets a 401 on its cached token and fetches another.
# An auth probe run may replace the expired token first, so expire again until one is used.
rejected_query="pinkcloudsync_token_rejected_total{target=\"$TARGET_NAME\"} > 0"
rejected=0
expire_until=$((SECONDS + 30))
while ((SECONDS < expire_until)) && time_left; do
    sandbox_admin POST tokens/expire || fail "POST /_sandbox/tokens/expire failed"
    sleep 3
    rejected=$(query_count "$rejected_query")
    ((rejected == 0)) || break
done
if ((rejected > 0)); then
    pass "pinkcloudsync_token_rejected_total counts a 401 on an expired cached token"
else
    fail "pinkcloudsync_token_rejected_total did not rise within 30s of POST tokens/expire"
fi

# The API answers 503 to everything.
sandbox_admin PUT faults -H 'Content-Type: application/json' \
    -d '{"status":503,"status_ratio":1.0}' || fail "PUT /_sandbox/faults failed"
wait_for_alert PinkCloudSyncApiDown 45 "the sandbox answered 503 to every request" || true
sandbox_admin DELETE faults || fail "DELETE /_sandbox/faults failed"
if wait_for_query "min(pinkcloudsync_probe_success{target=\"$TARGET_NAME\"}) == 1" 45; then
    pass "every probe succeeds again after the faults were removed"
else
    fail "probes did not all succeed within 45s after DELETE /_sandbox/faults"
fi

# The API key is revoked: the auth probe gets 401 invalid_credentials.
sandbox_admin POST "keys/$API_KEY/revoke" || fail "POST /_sandbox/keys/$API_KEY/revoke failed"
wait_for_alert PinkCloudSyncCredentialsInvalid 45 "the API key was revoked" || true
sandbox_admin POST "keys/$API_KEY/restore" || fail "POST /_sandbox/keys/$API_KEY/restore failed"
if wait_for_query "pinkcloudsync_credentials_valid{target=\"$TARGET_NAME\"} == 1" 45; then
    pass "credentials are valid again after the key was restored"
else
    fail "pinkcloudsync_credentials_valid did not return to 1 within 45s after the restore"
fi

# The sync quota (used by the sessions probe) is used up.
sandbox_admin POST quota/sync/exhaust || fail "POST /_sandbox/quota/sync/exhaust failed"
wait_for_alert PinkCloudSyncRateLimited 45 "the sync quota was exhausted" || true
if grep -qE '^(pending|firing)$' <<<"$(alert_states PinkCloudSyncQuotaNearlyExhausted)"; then
    pass "PinkCloudSyncQuotaNearlyExhausted is active after the sync quota was exhausted"
else
    echo "note - PinkCloudSyncQuotaNearlyExhausted is not active: the 429 carried no" \
        "remaining count or the window already reset"
fi

time_left || fail "the run exceeded its time limit of ${E2E_TIMEOUT_SECONDS:-330}s"
summary_and_exit
