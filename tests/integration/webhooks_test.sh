#!/usr/bin/env bash
# Webhooks end to end, in a loopback-only namespace: rbldnsd serves the zones,
# tests/lab/webhook_receiver.py plays the receivers (hostile on purpose) and
# logs every request; tests/lab/webhook_check.py verifies the logs.
#   1. durable delivery: 500, 500, 429 + Retry-After: 2, a request stalled past
#      the sink's timeout, then 200 — every listing arrives once, grouped, signed;
#      slack and alertmanager sinks get the same events in their own shapes
#   2. kill -9 while a request is in flight, restart on the same state_dir:
#      nothing lost, no item under a second id, no new events
#   3. flapping with raise_after = clear_after = 2 over six `run --once` cycles
#      (listed, error, listed, clean, error, clean): one listed, one delisted
#   4. 410 Gone disables the sink: logged, exported, no further requests
#   bash tests/integration/webhooks_test.sh /path/to/repwatch
set -euo pipefail

[[ $# -ge 1 ]] || { echo "usage: $0 /path/to/repwatch" >&2; exit 2; }
REPWATCH=$(readlink -f "$1")
# shellcheck source=tests/lab/lab.sh
source "$(dirname "$(readlink -f "$0")")/../lab/lab.sh"

lab_enter_netns "$@"
lab_init
[[ -x $REPWATCH ]] || lab_die "not an executable: $REPWATCH"

CHECK=(python3 "$LAB_ROOT/webhook_check.py")
WEB_ADDR=127.0.0.1
ZONES="$LAB_DIR/zones"
mkdir -p "$ZONES"

lab_check "the signature verifier reproduces the Standard Webhooks test vector" "${CHECK[@]}" selftest

new_secret() {
  python3 -c 'import base64, os; print("whsec_" + base64.b64encode(os.urandom(32)).decode())' >"$1"
  chmod 600 "$1"
}
new_secret "$LAB_DIR/oncall.secret"
new_secret "$LAB_DIR/am.secret"

# ---------------------------------------------------------------------------
# Zones. wh.test lists 30 of the 32 addresses of 192.0.2.32/27 (and the RFC 5782
# test point); flap.test is rewritten per step of scenario 3.
WH_ZONE=wh.test WH_RANGE=wh-out WH_CIDR=192.0.2.32/27 WH_LISTED=30 MAX_ITEMS=10
"${CHECK[@]}" zone "$ZONES/wh.ip4set" --cidr "$WH_CIDR" --listed "$WH_LISTED" --zone-name "$WH_ZONE"
"${CHECK[@]}" expect --zone "$WH_ZONE" --data "$ZONES/wh.ip4set" --range "$WH_RANGE" --cidr "$WH_CIDR" \
  --type dnsbl.listed >"$LAB_DIR/expect-wh.jsonl"
N_WH=$(wc -l <"$LAB_DIR/expect-wh.jsonl")
lab_log "wh.test: $N_WH listings expected"

DNS_ADDR=127.0.0.53
DNS_PORT=$(lab_free_port "$DNS_ADDR")
lab_rbldnsd "$ZONES" "$DNS_ADDR:$DNS_PORT" "$WH_ZONE:ip4set:wh.ip4set"

# config FILE STATE_DIR DNS ZONE RANGE CIDR RAISE_AFTER CLEAR_AFTER: the common part.
config() {
  cat >"$1" <<EOF
# Written by tests/integration/webhooks_test.sh
[agent]
state_dir = "$2"
interval = "1m"
instance = "lab-webhooks"

[dns]
servers = ["$3"]
timeout = "1s"
attempts = 2

[fcrdns]
enabled = false

[spf]
enabled = false

[alerts]
raise_after = $7
clear_after = $8

[[dnsbl]]
zone = "$4"
family = "ipv4"

[[ranges]]
name = "$5"
cidrs = ["$6"]
EOF
}

# sink FILE NAME URL FORMAT SECRET_FILE|- TIMEOUT: appends one [[webhooks]].
sink() {
  {
    printf '\n[[webhooks]]\nname = "%s"\nurl = "%s"\nformat = "%s"\n' "$2" "$3" "$4"
    [[ $5 == - ]] || printf 'secret_file = "%s"\n' "$5"
    printf 'timeout = "%s"\nmin_interval = "1s"\nretry_initial = "200ms"\nretry_max = "2s"\nmax_items = %d\n' \
      "$6" "$MAX_ITEMS"
  } >>"$1"
}

AGENT_PID="" WEB=""
# start_agent NAME CONFIG: the daemon with HTTP on a fresh port; waits for /-/healthy.
start_agent() {
  local port
  port=$(lab_free_port "$WEB_ADDR")
  WEB="http://$WEB_ADDR:$port"
  lab_spawn "repwatch-$1" "$REPWATCH" run --config.file="$2" --web.listen-address="$WEB_ADDR:$port" --log.level=debug
  AGENT_PID=$LAB_LAST_PID
  lab_wait_http "$WEB/-/healthy" 30 "$AGENT_PID"
}

stop_agent() { lab_stop_ok "$AGENT_PID" "$1"; }

# wait_for_log FILE REGEX TIMEOUT_S: true once FILE has a line matching REGEX.
wait_for_log() {
  local deadline=$((SECONDS + $3))
  until grep -Eq -- "$2" "$1" 2>/dev/null; do
    ((SECONDS < deadline)) || return 1
    lab_alive "$AGENT_PID" || return 1
    sleep 0.1
  done
}

# scrape NAME: /metrics into $LAB_DIR/metrics-NAME.txt
scrape() { curl -fsS --max-time 10 "$WEB/metrics" >"$LAB_DIR/metrics-$1.txt"; }

# metrics_eventually NAME TIMEOUT_S COND...: scrapes until every COND holds
# (the sender refreshes its queue gauges every ~2 s) or the time is up.
metrics_eventually() {
  local name=$1 timeout=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  while :; do
    scrape "$name" || true
    "${CHECK[@]}" metrics "$LAB_DIR/metrics-$name.txt" "$@" >/dev/null 2>&1 && return 0
    ((SECONDS < deadline)) || return 0   # the caller's lab_check shows what is wrong
    sleep 0.5
  done
}

promtool_clean() {
  local out rc=0
  out=$(promtool check metrics <"$1" 2>&1) || rc=$?
  [[ $rc == 0 && -z $out ]] || { printf '  promtool (rc=%s): %s\n' "$rc" "$out"; return 1; }
}

count() { "${CHECK[@]}" count "$@"; }

# ---------------------------------------------------------------------------
lab_log "scenario 1: durable delivery under a hostile receiver"
S1_LOG="$LAB_DIR/s1-oncall.jsonl" S1_SLACK="$LAB_DIR/s1-chat.jsonl" S1_AM="$LAB_DIR/s1-am.jsonl"
P1=$(lab_free_port 127.0.0.61)
lab_webhook_receiver recv-s1-oncall "127.0.0.61:$P1" "$S1_LOG" --script "500,500,429:retry-after=2,stall:3"
P2=$(lab_free_port 127.0.0.62)
lab_webhook_receiver recv-s1-chat "127.0.0.62:$P2" "$S1_SLACK"
P3=$(lab_free_port 127.0.0.63)
lab_webhook_receiver recv-s1-am "127.0.0.63:$P3" "$S1_AM"
CONF1="$LAB_DIR/s1.toml"
config "$CONF1" "$LAB_DIR/state1" "$DNS_ADDR:$DNS_PORT" "$WH_ZONE" "$WH_RANGE" "$WH_CIDR" 1 2
sink "$CONF1" oncall "http://127.0.0.61:$P1/hooks/repwatch" standard "$LAB_DIR/oncall.secret" 1s
sink "$CONF1" chat "http://127.0.0.62:$P2/services/T000/B000/XXXX" slack - 5s
sink "$CONF1" am "http://127.0.0.63:$P3/api/v2/alerts" alertmanager "$LAB_DIR/am.secret" 5s
lab_check "scenario 1 config validates" "$REPWATCH" validate --config.file="$CONF1"

start_agent s1 "$CONF1"
t0=$SECONDS
lab_check "s1: every listing answered 2xx at the hostile receiver within 60s" \
  "${CHECK[@]}" wait "$S1_LOG" --expect "$LAB_DIR/expect-wh.jsonl" --timeout 60
lab_check "s1: every listing reached the slack sink" \
  "${CHECK[@]}" wait "$S1_SLACK" --expect "$LAB_DIR/expect-wh.jsonl" --format slack --timeout 20
lab_check "s1: every listing reached the alertmanager sink" \
  "${CHECK[@]}" wait "$S1_AM" --expect "$LAB_DIR/expect-wh.jsonl" --format alertmanager --timeout 20
lab_log "s1: delivered after $((SECONDS - t0))s"
max_ids=$(((N_WH + MAX_ITEMS - 1) / MAX_ITEMS + 2))
lab_check "s1: each listing exactly once, none under two ids, retries byte-identical, <= $max_ids ids" \
  "${CHECK[@]}" delivery "$S1_LOG" --expect "$LAB_DIR/expect-wh.jsonl" --max-ids "$max_ids"
lab_check "s1: every request signed (Standard Webhooks, any v1 of the header, 5 min)" \
  "${CHECK[@]}" signatures "$S1_LOG" --secret-file "$LAB_DIR/oncall.secret"
lab_check "s1: standard payload shape" "${CHECK[@]}" shape "$S1_LOG" --format standard
lab_check "s1: Retry-After: 2 honoured" "${CHECK[@]}" retry-after "$S1_LOG" --status 429 --min 2
lab_check "s1: slack sink: every item announced once, none under two ids" \
  "${CHECK[@]}" delivery "$S1_SLACK" --expect "$LAB_DIR/expect-wh.jsonl" --format slack --max-ids "$max_ids"
lab_check "s1: slack payload shape" "${CHECK[@]}" shape "$S1_SLACK" --format slack
lab_check "s1: alertmanager sink: each listing exactly once, none under two ids" \
  "${CHECK[@]}" delivery "$S1_AM" --expect "$LAB_DIR/expect-wh.jsonl" --format alertmanager --max-ids "$max_ids"
lab_check "s1: alertmanager v4 payload shape" "${CHECK[@]}" shape "$S1_AM" --format alertmanager
lab_check "s1: alertmanager sink signed with its whsec_ secret" \
  "${CHECK[@]}" signatures "$S1_AM" --secret-file "$LAB_DIR/am.secret"
# The metrics must agree with what the receivers saw.
conds=(
  "repwatch_webhook_sent_total{sink=\"oncall\"} == $(count "$S1_LOG" --2xx)"
  "repwatch_webhook_failures_total{sink=\"oncall\",reason=\"http_5xx\"} == $(count "$S1_LOG" --status 500)"
  "repwatch_webhook_failures_total{sink=\"oncall\",reason=\"http_429\"} == $(count "$S1_LOG" --status 429)"
  "repwatch_webhook_failures_total{sink=\"oncall\",reason=\"timeout\"} == $(count "$S1_LOG" --status none)"
  "repwatch_webhook_failures_total{sink=\"oncall\",reason=\"http_5xx\"} > 0"
  "repwatch_webhook_failures_total{sink=\"oncall\",reason=\"http_429\"} > 0"
  "repwatch_webhook_failures_total{sink=\"oncall\",reason=\"timeout\"} > 0"
  "repwatch_webhook_failures_total{sink=\"oncall\",reason=\"connect\"} == 0"
  "repwatch_webhook_failures_total{sink=\"oncall\",reason=\"gone\"} == 0"
  "repwatch_webhook_queue_items{sink=\"oncall\"} == 0"
  "repwatch_webhook_oldest_undelivered_age_seconds{sink=\"oncall\"} == 0"
  "repwatch_webhook_sink_disabled{sink=\"oncall\"} == 0"
  "repwatch_webhook_sent_total{sink=\"chat\"} == $(count "$S1_SLACK" --2xx)"
  "repwatch_webhook_queue_items{sink=\"chat\"} == 0"
  "repwatch_webhook_sent_total{sink=\"am\"} == $(count "$S1_AM" --2xx)"
  "repwatch_webhook_queue_items{sink=\"am\"} == 0"
)
metrics_eventually s1 10 "${conds[@]}"
lab_check "s1: webhook metrics match the receivers' logs; queues back to 0" \
  "${CHECK[@]}" metrics "$LAB_DIR/metrics-s1.txt" "${conds[@]}"
lab_check "s1: promtool check metrics is clean" promtool_clean "$LAB_DIR/metrics-s1.txt"
stop_agent s1

# ---------------------------------------------------------------------------
lab_log "scenario 2: kill -9 while a request is in flight"
S2_LOG="$LAB_DIR/s2.jsonl" S2_STATE="$LAB_DIR/s2.mode"
echo "stall:60" >"$S2_STATE"
P4=$(lab_free_port 127.0.0.64)
lab_webhook_receiver recv-s2 "127.0.0.64:$P4" "$S2_LOG" --state "$S2_STATE"
CONF2="$LAB_DIR/s2.toml"
config "$CONF2" "$LAB_DIR/state2" "$DNS_ADDR:$DNS_PORT" "$WH_ZONE" "$WH_RANGE" "$WH_CIDR" 1 2
sink "$CONF2" oncall "http://127.0.0.64:$P4/hooks/repwatch" standard "$LAB_DIR/oncall.secret" 30s
start_agent s2-first "$CONF2"
lab_check "s2: the first request arrived (and stalls)" "${CHECK[@]}" wait-requests "$S2_LOG" --min 1 --timeout 30
lab_check "s2: the first cycle finished before the kill" wait_for_log "$LAB_DIR/repwatch-s2-first.log" 'cycle done' 30
n_before=$(count "$S2_LOG")
kill -KILL "$AGENT_PID"
rc=0
wait "$AGENT_PID" 2>/dev/null || rc=$?
lab_check "s2: agent killed by SIGKILL mid-request (rc=$rc, $n_before request(s) so far)" test "$rc" = 137
echo ok >"$S2_STATE"
start_agent s2-second "$CONF2"
lab_check "s2: after the restart every listing answered 2xx within 60s" \
  "${CHECK[@]}" wait "$S2_LOG" --expect "$LAB_DIR/expect-wh.jsonl" --timeout 60
lab_check "s2: nothing lost, each listing exactly once across ids, none under two ids, same bytes per id" \
  "${CHECK[@]}" delivery "$S2_LOG" --expect "$LAB_DIR/expect-wh.jsonl" --max-ids "$max_ids"
lab_check "s2: the batch in flight at the kill was resent under its id and delivered" \
  "${CHECK[@]}" first-delivered "$S2_LOG"
lab_check "s2: every request signed" "${CHECK[@]}" signatures "$S2_LOG" --secret-file "$LAB_DIR/oncall.secret"
lab_check "s2: the restart's cycle finished" wait_for_log "$LAB_DIR/repwatch-s2-second.log" 'cycle done' 30
lab_check "s2: the restart raised no event for listings it already knew" \
  grep -q 'cycle done.*events so far: none' "$LAB_DIR/repwatch-s2-second.log"
metrics_eventually s2 10 "repwatch_webhook_queue_items{sink=\"oncall\"} == 0"
lab_check "s2: queue back to 0" "${CHECK[@]}" metrics "$LAB_DIR/metrics-s2.txt" \
  "repwatch_webhook_queue_items{sink=\"oncall\"} == 0"
stop_agent s2

# ---------------------------------------------------------------------------
lab_log "scenario 3: flapping (raise_after = clear_after = 2) over six run --once cycles"
FLAP_ZONE=flap.test FLAP_RANGE=flap FLAP_CIDR=192.0.2.64/30
FLAP="$LAB_DIR/flap"
mkdir -p "$FLAP"
"${CHECK[@]}" zone "$FLAP/listed.ip4set" --cidr "$FLAP_CIDR" --listed 1 --zone-name "$FLAP_ZONE"
"${CHECK[@]}" zone "$FLAP/clean.ip4set" --cidr "$FLAP_CIDR" --listed 0 --zone-name "$FLAP_ZONE"
# Every query from 127/8 (the agent) answered 127.255.255.254, test points too:
# the zone's health is `error`, so each address's result is `error`.
printf '127.0.0.0/8 :127.255.255.254:Open resolver $ is not allowed\n' >"$FLAP/refuse.acl"
"${CHECK[@]}" expect --zone "$FLAP_ZONE" --data "$FLAP/listed.ip4set" --range "$FLAP_RANGE" --cidr "$FLAP_CIDR" \
  --type dnsbl.listed --type dnsbl.delisted >"$LAB_DIR/expect-flap.jsonl"
grep '"dnsbl.listed"' "$LAB_DIR/expect-flap.jsonl" >"$LAB_DIR/expect-flap-listed.jsonl"
FLAP_DNS=127.0.0.54
FLAP_PORT=$(lab_free_port "$FLAP_DNS")
S3_LOG="$LAB_DIR/s3.jsonl"
P5=$(lab_free_port 127.0.0.65)
lab_webhook_receiver recv-s3 "127.0.0.65:$P5" "$S3_LOG"
CONF3="$LAB_DIR/s3.toml"
config "$CONF3" "$LAB_DIR/state3" "$FLAP_DNS:$FLAP_PORT" "$FLAP_ZONE" "$FLAP_RANGE" "$FLAP_CIDR" 2 2
sink "$CONF3" oncall "http://127.0.0.65:$P5/hooks/repwatch" standard "$LAB_DIR/oncall.secret" 5s

step=0
for mode in listed error listed clean error clean; do
  step=$((step + 1))
  case $mode in
    listed) specs=("$FLAP_ZONE:ip4set:listed.ip4set") ;;
    clean) specs=("$FLAP_ZONE:ip4set:clean.ip4set") ;;
    error) specs=("$FLAP_ZONE:ip4set:listed.ip4set" "$FLAP_ZONE:acl:refuse.acl") ;;
  esac
  lab_rbldnsd "$FLAP" "$FLAP_DNS:$FLAP_PORT" "${specs[@]}"
  dns_pid=$LAB_LAST_PID
  # The cycle log line ends: ...; events so far: 1 dnsbl.listed"
  case $step in
    3) want='1 dnsbl.listed' ;;
    6) want='1 dnsbl.delisted' ;;
    *) want='none' ;;
  esac
  log="$LAB_DIR/repwatch-s3-step$step.log"
  rc=0
  t0=$SECONDS
  "$REPWATCH" run --once --config.file="$CONF3" >"$log" 2>&1 || rc=$?
  lab_check "s3 step $step ($mode): run --once exits 0 (rc=$rc, $((SECONDS - t0))s)" test "$rc" = 0
  lab_check "s3 step $step ($mode): its cycle raised: $want" grep -q "cycle done.*events so far: $want\"" "$log"
  if [[ $step == 3 ]]; then
    lab_check "s3 step 3: run --once delivered the listing before it exited" \
      "${CHECK[@]}" wait "$S3_LOG" --expect "$LAB_DIR/expect-flap-listed.jsonl" --timeout 0
  fi
  lab_stop "$dns_pid" 10 >/dev/null 2>&1 || true
done
lab_check "s3: run --once delivered the delisting before it exited" \
  "${CHECK[@]}" wait "$S3_LOG" --expect "$LAB_DIR/expect-flap.jsonl" --timeout 0
lab_check "s3: exactly one dnsbl.listed and one dnsbl.delisted for the address, nothing else" \
  "${CHECK[@]}" delivery "$S3_LOG" --expect "$LAB_DIR/expect-flap.jsonl"
lab_check "s3: every request signed" "${CHECK[@]}" signatures "$S3_LOG" --secret-file "$LAB_DIR/oncall.secret"
lab_check "s3: standard payload shape" "${CHECK[@]}" shape "$S3_LOG" --format standard

# ---------------------------------------------------------------------------
lab_log "scenario 4: 410 Gone disables the sink"
S4_LOG="$LAB_DIR/s4.jsonl"
P6=$(lab_free_port 127.0.0.66)
lab_webhook_receiver recv-s4 "127.0.0.66:$P6" "$S4_LOG" --then gone
CONF4="$LAB_DIR/s4.toml"
config "$CONF4" "$LAB_DIR/state4" "$DNS_ADDR:$DNS_PORT" "$WH_ZONE" "$WH_RANGE" "$WH_CIDR" 1 2
sink "$CONF4" gone-sink "http://127.0.0.66:$P6/hooks/repwatch" standard "$LAB_DIR/oncall.secret" 5s
start_agent s4 "$CONF4"
lab_check "s4: the first request arrived" "${CHECK[@]}" wait-requests "$S4_LOG" --min 1 --timeout 30
lab_check "s4: the cycle finished" wait_for_log "$LAB_DIR/repwatch-s4.log" 'cycle done' 30
sleep 4   # > min_interval + the sender's poll and refresh: time for a second request if it were sent
gone_conds=(
  "repwatch_webhook_sink_disabled{sink=\"gone-sink\"} == 1"
  "repwatch_webhook_failures_total{sink=\"gone-sink\",reason=\"gone\"} == 1"
  "repwatch_webhook_sent_total{sink=\"gone-sink\"} == 0"
  "repwatch_webhook_queue_items{sink=\"gone-sink\"} == $N_WH"
)
metrics_eventually s4 5 "${gone_conds[@]}"
lab_check "s4: disabled sink exported, its $N_WH items kept" \
  "${CHECK[@]}" metrics "$LAB_DIR/metrics-s4.txt" "${gone_conds[@]}"
lab_check "s4: the agent logged an error naming the sink" \
  grep -Eq 'level=error.*webhook gone-sink.*410' "$LAB_DIR/repwatch-s4.log"
lab_check "s4: no request after the 410" "${CHECK[@]}" after "$S4_LOG" --status 410 --max 0
stop_agent s4
start_agent s4-restart "$CONF4"
lab_check "s4: after a restart the sink is still disabled (logged)" \
  wait_for_log "$LAB_DIR/repwatch-s4-restart.log" 'level=error.*webhook gone-sink.*disabled' 10
sleep 3
metrics_eventually s4-restart 3 "repwatch_webhook_sink_disabled{sink=\"gone-sink\"} == 1"
lab_check "s4: after a restart the sink is still disabled (exported)" \
  "${CHECK[@]}" metrics "$LAB_DIR/metrics-s4-restart.txt" "repwatch_webhook_sink_disabled{sink=\"gone-sink\"} == 1"
lab_check "s4: still no request after the 410" "${CHECK[@]}" after "$S4_LOG" --status 410 --max 0
stop_agent s4-restart

lab_summary
