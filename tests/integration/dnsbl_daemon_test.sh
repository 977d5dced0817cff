#!/usr/bin/env bash
# `repwatch run` against the same rbldnsd zones as dnsbl_check_test.sh, in a
# loopback-only namespace: waits for /-/ready, compares /metrics and the IP API
# with the zone data, lints the exposition with promtool, then stops the agent
# with SIGTERM, restarts it on the same state_dir and checks that the listings
# kept their first_seen.
#   bash tests/integration/dnsbl_daemon_test.sh /path/to/repwatch
set -euo pipefail

[[ $# -ge 1 ]] || { echo "usage: $0 /path/to/repwatch" >&2; exit 2; }
REPWATCH=$(readlink -f "$1")
# shellcheck source=tests/lab/lab.sh
source "$(dirname "$(readlink -f "$0")")/../lab/lab.sh"

lab_enter_netns "$@"
lab_init
[[ -x $REPWATCH ]] || lab_die "not an executable: $REPWATCH"

DNS_ADDR=127.0.0.53
DNS_PORT=$(lab_free_port "$DNS_ADDR")
WEB_ADDR=127.0.0.1
WEB_PORT=$(lab_free_port "$WEB_ADDR")
WEB="http://$WEB_ADDR:$WEB_PORT"
DATA="$LAB_DIR/zones"
STATE="$LAB_DIR/state"
READY_TIMEOUT=120   # the first cycle is spread over at most one interval (1m)

python3 "$LAB_ZONES" fixture "$DATA" --dns "$DNS_ADDR:$DNS_PORT" --state-dir "$STATE" --interval 1m
mapfile -t specs < <(python3 "$LAB_ZONES" specs "$DATA")
lab_rbldnsd "$DATA" "$DNS_ADDR:$DNS_PORT" "${specs[@]}"

AGENT_PID=""
start_agent() {
  lab_spawn "repwatch-$1" "$REPWATCH" run --config.file="$DATA/repwatch.toml" \
    --web.listen-address="$WEB_ADDR:$WEB_PORT"
  AGENT_PID=$LAB_LAST_PID
  local t0=$SECONDS
  lab_wait_http "$WEB/-/healthy" 30 "$AGENT_PID"
  lab_wait_http "$WEB/-/ready" "$READY_TIMEOUT" "$AGENT_PID"
  lab_log "agent ($1 start) ready after $((SECONDS - t0))s"
}

stop_agent() { lab_stop_ok "$AGENT_PID" "$1"; }

check_metrics() {
  local file="$LAB_DIR/metrics-$1.txt"
  curl -fsS --max-time 10 "$WEB/metrics" >"$file"
  lab_check "metrics ($1) match the zone data exactly" \
    python3 "$LAB_ZONES" verify-metrics "$DATA" <"$file"
  lab_check "promtool check metrics ($1) is clean" promtool_clean "$file"
}

promtool_clean() {
  local out rc=0
  out=$(promtool check metrics <"$1" 2>&1) || rc=$?
  [[ $rc == 0 && -z $out ]] || { printf '  promtool (rc=%s): %s\n' "$rc" "$out"; return 1; }
}

check_api() {
  local ip=$1 file="$LAB_DIR/api-${1//:/_}.json" code
  code=$(curl -s -o "$file" -w '%{http_code}' --max-time 10 "$WEB/api/v1/ips/$ip") || true
  if [[ $code != 200 ]]; then
    lab_not_ok "GET /api/v1/ips/$ip: HTTP $code $(head -c 200 "$file" 2>/dev/null)"
    return
  fi
  lab_check "GET /api/v1/ips/$ip matches the zone data" \
    python3 "$LAB_ZONES" verify-ip "$DATA" "$ip" <"$file"
}

start_agent first
check_metrics first
lab_check "GET / answers 200" test "$(lab_http_code "$WEB/")" = 200
check_api 192.0.2.3      # listed twice on good.test, error on the broken zones
check_api 192.0.2.1      # clean on every healthy zone
check_api 2001:db8::5    # listed on v6.test
stop_agent first
lab_check "state after the first run holds exactly the listings" \
  python3 "$LAB_ZONES" verify-db "$DATA" "$STATE/repwatch.db" --dump "$LAB_DIR/first.json"

# first_seen is in seconds: make sure a re-created listing would differ.
sleep 1.5
start_agent second
check_metrics second
stop_agent second
lab_check "state after a restart kept every listing's first_seen" \
  python3 "$LAB_ZONES" verify-db "$DATA" "$STATE/repwatch.db" --before "$LAB_DIR/first.json"

lab_summary
