#!/usr/bin/env bash
# The MX probe in the daemon, against the lab of mx_probe_check_test.sh (a real
# Postfix answering each source as a receiver would, hosts that refuse, never
# greet or greet slowly, a source that is not local; unbound serves the MX data),
# everything in a loopback-only namespace. Expectations come from the servers'
# own config files (tests/lab/mxdata.py), never from copies here.
#   1. `run --once` with a state_dir and a signed standard webhook sink (mx.*):
#      the store holds every result; exactly one mx.rejected per (source, domain)
#      whose class is a problem (blocked_by_list, reputation_block, rate_limit,
#      policy_failure), with the reply and the evidence; signatures verify.
#   2. `run` (daemon) on the same state_dir within min_interval (6 h): no session
#      for a result that got a reply (the stored one is reported, probed_at
#      unchanged); results of class error are retried (the silent host sees a
#      session from each source again); no webhook event.
#   3. that daemon's /metrics: repwatch_mx_not_ok, repwatch_mx_ips and
#      repwatch_mx_tls_ips exactly; promtool check metrics is clean.
#   4. Postfix's access table now accepts a source it banned (reload); once
#      min_interval ("1m" in a copy of the config) has passed since step 1, a
#      `run --once` probes everything again: exactly one mx.resolved per domain
#      Postfix serves, for that source only.
#   bash tests/integration/mx_probe_daemon_test.sh /path/to/repwatch
set -euo pipefail

[[ $# -ge 1 ]] || { echo "usage: $0 /path/to/repwatch" >&2; exit 2; }
REPWATCH=$(readlink -f "$1")
# shellcheck source=tests/lab/lab.sh
source "$(dirname "$(readlink -f "$0")")/../lab/lab.sh"
MXDATA=(python3 "$LAB_ROOT/mxdata.py")
HOOKCHECK=(python3 "$LAB_ROOT/webhook_check.py")

lab_enter_netns "$@"
lab_init

# The binary may be relinked while this runs: wait (briefly) until it is there.
wait_binary() {
  local deadline=$((SECONDS + 60))
  until [[ -x $REPWATCH ]]; do
    ((SECONDS < deadline)) || lab_die "not an executable: $REPWATCH"
    sleep 0.5
  done
}

DNS_ADDR=127.0.0.53
DNS_PORT=$(lab_free_port "$DNS_ADDR")
DATA="$LAB_DIR/mx"
STATE="$LAB_DIR/state"
MAILLOG="$LAB_DIR/postfix-maillog.log"   # in LAB_DIR: shown with the other logs on failure
HOOK_ADDR=127.0.0.61
HOOKS="$LAB_DIR/hooks.jsonl"
WEB_ADDR=127.0.0.1


promtool_clean() {
  local out rc=0
  out=$(promtool check metrics <"$1" 2>&1) || rc=$?
  [[ $rc == 0 && -z $out ]] || { printf '  promtool (rc=%s): %s\n' "$rc" "$out"; return 1; }
}

size() { stat -c %s "$1" 2>/dev/null || echo 0; }
lines() { if [[ -f $1 ]]; then wc -l <"$1"; else echo 0; fi; }
# Where each server's log ends now: the sessions after this are the next run's.
OFFSETS=()
mark_sessions() {
  OFFSETS=(--postfix-from "$(size "$MAILLOG")" --tarpit-from "$(size "$DATA/tarpit.jsonl")"
    --silent-from "$(size "$DATA/silent.jsonl")")
}

# once_delivered LOG: the one-shot cycle finished and left no webhook item behind.
once_delivered() { grep -q "cycle done" "$1" && ! grep -q "not delivered yet" "$1"; }

# run_once NAME CONFIG: `repwatch run --once`, its output in $LAB_DIR/NAME.log;
# sets ONCE_RC, ONCE_FROM and ONCE_TO (unix s around the run).
run_once() {
  wait_binary
  ONCE_RC=0
  ONCE_FROM=$(date +%s)
  timeout 90 "$REPWATCH" run --once --config.file="$2" >"$LAB_DIR/$1.log" 2>&1 || ONCE_RC=$?
  ONCE_TO=$(date +%s)
  lab_log "$1: run --once rc=$ONCE_RC in $((ONCE_TO - ONCE_FROM))s"
}

# ---------------------------------------------------------------------------
# The lab, as mx_probe_check_test.sh starts it, and a webhook receiver.
# --exact-ranges: `run` checks every address of its ranges; only the fixture's sources here.
"${MXDATA[@]}" fixture "$DATA" --dns "$DNS_ADDR:$DNS_PORT" --state-dir "$STATE" --maillog "$MAILLOG" --exact-ranges
# The webhook receiver first: Python's HTTPServer looks its own address up
# (socket.getfqdn) as it binds, which the sentinel would count.
HOOK_PORT=$(lab_free_port "$HOOK_ADDR")
lab_webhook_receiver recv "$HOOK_ADDR:$HOOK_PORT" "$HOOKS"
lab_mx_server sentinel 127.0.0.1:53 "$DATA"   # where resolv.conf points: nothing may ask it
lab_unbound "$DATA/unbound.conf" "$DNS_ADDR:$DNS_PORT"
UNBOUND_PID=$LAB_LAST_PID
lab_postfix "$DATA/postfix"
POSTFIX_PID=$LAB_LAST_PID
lab_mx_receivers "$DATA"
lab_check "lab: every source gets from every receiver what the fixture says" "${MXDATA[@]}" verify-lab "$DATA"

python3 -c 'import base64, os; print("whsec_" + base64.b64encode(os.urandom(32)).decode())' >"$LAB_DIR/hook.secret"
chmod 600 "$LAB_DIR/hook.secret"
CONF="$LAB_DIR/daemon.toml"
{
  cat "$DATA/repwatch.toml"
  cat <<EOF

[[webhooks]]
name = "oncall"
url = "http://$HOOK_ADDR:$HOOK_PORT/hooks/repwatch"
format = "standard"
secret_file = "$LAB_DIR/hook.secret"
events = ["mx.*"]
timeout = "5s"
min_interval = "1s"
retry_initial = "200ms"
retry_max = "2s"
EOF
} >"$CONF"
# The same with [mx_probe] min_interval at its minimum, for step 4.
CONF_1M="$LAB_DIR/daemon-1m.toml"
sed '/^\[mx_probe\]$/a min_interval = "1m"' "$CONF" >"$CONF_1M"
wait_binary
configs_valid() {
  grep -q '^min_interval = "1m"' "$CONF_1M" && "$REPWATCH" validate --config.file="$CONF" &&
    "$REPWATCH" validate --config.file="$CONF_1M"
}
lab_check "the daemon configs validate (default min_interval, and 1m)" configs_valid

# ---------------------------------------------------------------------------
lab_log "step 1: run --once with a state_dir and a webhook sink"
mark_sessions
run_once once1 "$CONF"
STEP1_TO=$ONCE_TO
lab_check "step 1: run --once exits 0 (rc=$ONCE_RC)" test "$ONCE_RC" = 0
lab_check "step 1: the cycle finished and every webhook item left before the exit" \
  once_delivered "$LAB_DIR/once1.log"
lab_check "step 1: one session per source and domain, no DATA, each ended with QUIT" \
  "${MXDATA[@]}" verify-sessions "$DATA" "${OFFSETS[@]}"
lab_check "step 1: repwatch.db (ips.mx, read only) holds every result, probed during the run" \
  "${MXDATA[@]}" verify-stored "$DATA" --db "$STATE/repwatch.db" --probed-from "$ONCE_FROM" \
  --probed-to "$ONCE_TO" --save "$LAB_DIR/probed-1.json"
lab_check "step 1: exactly one mx.rejected per (source, domain) with a problem class, fields as answered" \
  "${MXDATA[@]}" verify-webhooks "$DATA" "$HOOKS" --expect-some
lab_check "step 1: every request signed (Standard Webhooks)" \
  "${HOOKCHECK[@]}" signatures "$HOOKS" --secret-file "$LAB_DIR/hook.secret"
lab_check "step 1: standard payload shape" "${HOOKCHECK[@]}" shape "$HOOKS" --format standard
"${MXDATA[@]}" expected "$DATA" --json >"$LAB_DIR/expected-1.jsonl"

# ---------------------------------------------------------------------------
lab_log "step 2: the daemon on the same state_dir, within min_interval"
hook_lines=$(lines "$HOOKS")
mark_sessions
WEB_PORT=$(lab_free_port "$WEB_ADDR")
WEB="http://$WEB_ADDR:$WEB_PORT"
wait_binary
daemon_from=$(date +%s)
lab_spawn repwatch-daemon "$REPWATCH" run --config.file="$CONF" --web.listen-address="$WEB_ADDR:$WEB_PORT"
AGENT_PID=$LAB_LAST_PID
lab_wait_http "$WEB/-/healthy" 30 "$AGENT_PID"
lab_wait_http "$WEB/-/ready" 60 "$AGENT_PID"
daemon_ready=$(date +%s)
lab_log "daemon ready after $((daemon_ready - daemon_from))s"
lab_check "step 2: sessions only for results of class error (silent host); none to Postfix or the tarpit" \
  "${MXDATA[@]}" verify-sessions "$DATA" "${OFFSETS[@]}" --retried --settle 1
lab_check "step 2: GET /api/v1/ips/IP: results with a reply reused (probed_at unchanged), errors retried" \
  "${MXDATA[@]}" verify-stored "$DATA" --api "$WEB" --probed-from "$daemon_from" --probed-to "$daemon_ready" \
  --reused-from "$LAB_DIR/probed-1.json"

curl -fsS --max-time 10 "$WEB/metrics" >"$LAB_DIR/metrics.txt"
lab_check "step 3: repwatch_mx_not_ok / _ips / _tls_ips exactly as the servers answer" \
  "${MXDATA[@]}" verify-metrics "$DATA" <"$LAB_DIR/metrics.txt"
lab_check "step 3: promtool check metrics is clean" promtool_clean "$LAB_DIR/metrics.txt"

# Events of the cycle would leave within a second (poll 500 ms, sink min_interval 1 s).
sleep 2
curl -fsS --max-time 10 "$WEB/metrics" >"$LAB_DIR/metrics-late.txt"
lab_check "step 2: the daemon's cycle raised no event" \
  grep -q 'cycle done.*events so far: none"' "$LAB_DIR/repwatch-daemon.log"
no_requests_since() {
  [[ $(lines "$HOOKS") == "$1" ]] && "${HOOKCHECK[@]}" metrics "$LAB_DIR/metrics-late.txt" \
    'repwatch_webhook_sent_total{sink="oncall"} == 0' 'repwatch_webhook_queue_items{sink="oncall"} == 0'
}
lab_check "step 2: no webhook request ($hook_lines log lines before, $(lines "$HOOKS") now), nothing queued" \
  no_requests_since "$hook_lines"
rc=0
lab_stop "$AGENT_PID" 20 || rc=$?
lab_check "step 2: the daemon exits 0 on SIGTERM (rc=$rc)" test "$rc" = 0

# ---------------------------------------------------------------------------
lab_log "step 4: a banned source is accepted now; run --once after min_interval = 1m"
CHANGED=$(python3 -c 'import json, sys
print(next(ip for ip, c in json.load(open(sys.argv[1]))["classes"].items() if c == "reputation_block"))' \
  "$DATA/lab.json")
"${MXDATA[@]}" set-access "$DATA" "$CHANGED" OK
reload_rc=0
postfix -c "$DATA/postfix" reload >"$LAB_DIR/postfix-reload.log" 2>&1 || reload_rc=$?
lab_check "step 4: postfix reload (rc=$reload_rc)" test "$reload_rc" = 0
lab_check "step 4: lab: Postfix now accepts $CHANGED, every other answer unchanged" \
  "${MXDATA[@]}" verify-lab "$DATA"
# Every stored result of step 1 was probed by STEP1_TO: wait until 1m has passed
# (the store is not touched; only the clock moves).
wait_s=$((STEP1_TO + 61 - $(date +%s)))
if ((wait_s > 0)); then
  lab_log "waiting ${wait_s}s until min_interval (1m) has passed since step 1"
  sleep "$wait_s"
fi
hook_lines=$(lines "$HOOKS")
mark_sessions
run_once once4 "$CONF_1M"
lab_check "step 4: run --once exits 0 (rc=$ONCE_RC)" test "$ONCE_RC" = 0
lab_check "step 4: the cycle finished and every webhook item left before the exit" \
  once_delivered "$LAB_DIR/once4.log"
lab_check "step 4: min_interval passed: one session per source and domain again" \
  "${MXDATA[@]}" verify-sessions "$DATA" "${OFFSETS[@]}"
lab_check "step 4: exactly one mx.resolved per domain Postfix serves, for $CHANGED only; nothing else" \
  "${MXDATA[@]}" verify-webhooks "$DATA" "$HOOKS" --from-line "$hook_lines" --before "$LAB_DIR/expected-1.jsonl" \
  --expect-some
lab_check "step 4: every request signed" \
  "${HOOKCHECK[@]}" signatures "$HOOKS" --secret-file "$LAB_DIR/hook.secret"
lab_check "step 4: repwatch.db holds the new results, all probed during this run" \
  "${MXDATA[@]}" verify-stored "$DATA" --db "$STATE/repwatch.db" --probed-from "$ONCE_FROM" --probed-to "$ONCE_TO"

lab_check "nothing asked the system resolver (resolv.conf -> 127.0.0.1:53)" test ! -s "$DATA/sentinel.jsonl"
[[ -s $DATA/sentinel.jsonl ]] && head -n 5 "$DATA/sentinel.jsonl"
lab_check "unbound is still running" lab_alive "$UNBOUND_PID"
lab_check "postfix is still running" lab_alive "$POSTFIX_PID"

lab_summary
